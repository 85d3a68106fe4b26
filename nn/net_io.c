/*
 * net_io.c - a network's named tensors, and saving and loading them as
 * safetensors with the names of ARCH-FORMAT.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/net_internal.h"

/* The optimizer state's tensor in optimizer and checkpoint files. */
#define OPTIM_TENSOR "sgd.momentum"

static void put(nn_tensor *t, int *k, const char *prefix, const char *suffix,
                float *data, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
	nn_tensor *p = &t[(*k)++];
	snprintf(p->name, sizeof(p->name), "%s.%s", prefix, suffix);
	p->ndim = ndim;
	p->shape[0] = d0;
	p->shape[1] = d1;
	p->shape[2] = d2;
	p->shape[3] = d3;
	p->data = data;
}

int nn_net_tensors(const nn_net *net, nn_tensor **out)
{
	nn_tensor *t = calloc((size_t)net->n * 4 + 1, sizeof(*t));
	int k = 0;

	*out = t;
	if (!t)
		return GRAFT_ENOMEM;
	for (int i = 1; i < net->n; i++) {
		const struct nn__node *d = &net->node[i];
		switch (d->kind) {
		case NODE_CONV:
			put(t, &k, d->name, "weight", d->wt, 4, d->c, d->conv.cin / d->conv.groups,
			    d->conv.k, d->conv.k);
			break;
		case NODE_BN:
			put(t, &k, d->name, "weight", d->wt, 1, d->c, 0, 0, 0);
			put(t, &k, d->name, "bias", d->bs, 1, d->c, 0, 0, 0);
			put(t, &k, d->name, "running_mean", d->rmean, 1, d->c, 0, 0, 0);
			put(t, &k, d->name, "running_var", d->rvar, 1, d->c, 0, 0, 0);
			break;
		case NODE_LINEAR:
			put(t, &k, d->name, "weight", d->wt, 2, d->c, (int64_t)(d->nw / d->nb), 0, 0);
			put(t, &k, d->name, "bias", d->bs, 1, d->c, 0, 0, 0);
			break;
		default:
			break;
		}
	}
	return k;
}

/* Writes the net's tensors, and the optimizer's momentum when step >= 0 (a
 * checkpoint, with that step in its metadata). */
static int save(const nn_net *net, const char *path, int step, char *err, size_t errlen)
{
	char steps[24];
	const char *meta[] = { "format", "graft-checkpoint/1", "step", steps };
	nn_tensor *t;
	int n = nn_net_tensors(net, &t);
	if (n < 0) {
		snprintf(err, errlen, "%s: out of memory", path);
		free(t);
		return n;
	}
	/* nn_net_tensors leaves room for one more. */
	if (step >= 0)
		t[n++] = (nn_tensor){ .name = OPTIM_TENSOR, .ndim = 1,
		                      .shape = { (int64_t)net->nparams }, .data = net->moments };
	snprintf(steps, sizeof(steps), "%d", step);
	int rc = nn_safetensors_write_meta(path, t, n, meta, step >= 0 ? 2 : 0, err, errlen);
	free(t);
	return rc;
}

int nn_net_save(const nn_net *net, const char *path, char *err, size_t errlen)
{
	return save(net, path, -1, err, errlen);
}

const char *nn_tensor_shape_str(const nn_tensor *t, char *buf, size_t len)
{
	size_t off = 0;
	off += snprintf(buf + off, len - off, "(");
	for (int i = 0; i < t->ndim && off < len; i++)
		off += snprintf(buf + off, len - off, "%s%lld", i ? "," : "",
		                (long long)t->shape[i]);
	if (off < len)
		snprintf(buf + off, len - off, ")");
	return buf;
}

/* Checks every wanted tensor first and copies only when all are present and
 * of the right shape, so a bad file leaves the net as it was. */
int nn_net_load(nn_net *net, const char *path, const char *prefix, char *err,
                size_t errlen)
{
	nn_weights wf = { 0 };
	nn_tensor *t = NULL;
	int rc = nn_safetensors_read(path, &wf, err, errlen);
	if (rc)
		return rc;
	int n = nn_net_tensors(net, &t);
	if (n < 0) {
		rc = n;
		goto out;
	}
	size_t plen = strlen(prefix);
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < n; i++) {
			if (strncmp(t[i].name, prefix, plen) != 0)
				continue;
			const nn_tensor *f = nn_weights_find(&wf, t[i].name);
			if (pass == 1) {
				memcpy(t[i].data, f->data, nn_tensor_numel(f) * sizeof(float));
				continue;
			}
			if (!f) {
				snprintf(err, errlen, "%s: has no tensor '%s'", path, t[i].name);
				rc = GRAFT_EFORMAT;
				goto out;
			}
			if (!nn_tensor_same_shape(f, &t[i])) {
				char want[64], got[64];
				nn_tensor_shape_str(&t[i], want, sizeof(want));
				nn_tensor_shape_str(f, got, sizeof(got));
				snprintf(err, errlen, "%s: tensor '%s' has shape %s, the network needs %s",
				         path, t[i].name, got, want);
				rc = GRAFT_EFORMAT;
				goto out;
			}
		}
out:
	free(t);
	nn_weights_free(&wf);
	return rc;
}

/* The optimizer's state beside the weights: SGD's momentum, one tensor over
 * the net's flat parameter block (net.c keeps every trainable parameter in
 * one block and its momentum in a block of the same layout), and the step
 * training stopped at.  Weights and momentum together let a training run
 * stop and go on as if it had not stopped. */

int nn_net_save_optim(const nn_net *net, const char *path, int step, char *err, size_t errlen)
{
	char steps[24];
	const char *meta[] = { "format", "graft-optim/1", "step", steps };
	nn_tensor t = { .name = OPTIM_TENSOR, .ndim = 1, .shape = { (int64_t)net->nparams },
	                .data = net->moments };

	snprintf(steps, sizeof(steps), "%d", step);
	return nn_safetensors_write_meta(path, &t, 1, meta, 2, err, errlen);
}

int nn_net_load_optim(nn_net *net, const char *path, int *step, char *err, size_t errlen)
{
	nn_weights w = { 0 };
	int rc = nn_safetensors_read(path, &w, err, errlen);
	if (rc)
		return rc;
	const nn_tensor *t = nn_weights_find(&w, OPTIM_TENSOR);
	const char *s = nn_weights_meta(&w, "step");
	char *end = NULL;
	long v = s ? strtol(s, &end, 10) : -1;
	if (!t || t->ndim != 1 || t->shape[0] != (int64_t)net->nparams || !s || *end || v < 0 ||
	    v > 1000000000L) {
		snprintf(err, errlen, "%s: not the optimizer state of this network (expected "
		         "graft-optim/1 with %zu momentum values and a step)", path, net->nparams);
		rc = GRAFT_EFORMAT;
	} else {
		memcpy(net->moments, t->data, sizeof(float) * net->nparams);
		if (step)
			*step = (int)v;
	}
	nn_weights_free(&w);
	return rc;
}

int nn_net_save_checkpoint(const nn_net *net, const char *path, int step, char *err,
                           size_t errlen)
{
	return save(net, path, step, err, errlen);
}
