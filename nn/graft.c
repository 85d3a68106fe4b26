/*
 * graft.c - the graft: a few conv + BN + ReLU layers at full resolution,
 * pretrained once behind a throw-away head, frozen, and joined beside every
 * candidate's stem (arch_build.c does the joining).
 *
 * A graft file is a safetensors file holding the graft.{i}.conv / .bn tensors
 * of ARCH-FORMAT.md and metadata saying how it was made.  Its identity is the
 * SHA-256 of its tensors (names, shapes, values), not of the file's bytes, so
 * metadata and layout do not change it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/dnnl_internal.h"
#include "nn/net_internal.h"

#define GRAFT_FORMAT "graft-module/1"

/* The pretraining network: the graft layers (trainable here) and a small head
 * that must classify from them: two stride-2 convs, pooling, a linear layer.
 * The head is strong enough that the graft need not be linearly separable on
 * its own, and thrown away afterwards. */
static int pretrain_net(nn_net **out, const nn_arch *a, int classes, int batch,
                        uint64_t seed)
{
	char p[32], q[32];
	nn_net *net = nn_net_new(a->in_c, a->in_h, a->in_w);
	int x = 0;

	if (!net)
		return GRAFT_ENOMEM;
	for (int i = 0; i < a->graft_nlayers && x >= 0; i++) {
		snprintf(p, sizeof(p), "graft.%d.conv", i);
		snprintf(q, sizeof(q), "graft.%d.bn", i);
		x = nn_net_conv(net, x, a->graft_channels[i], a->graft_kernel[i], 1, 1, p);
		x = x < 0 ? x : nn_net_bn(net, x, 1, q);
	}
	const int widths[2] = { 32, 64 };
	for (int i = 0; i < 2 && x >= 0; i++) {
		snprintf(p, sizeof(p), "pretrain.%d.conv", i);
		snprintf(q, sizeof(q), "pretrain.%d.bn", i);
		x = nn_net_conv(net, x, widths[i], 3, 2, 1, p);
		x = x < 0 ? x : nn_net_bn(net, x, 1, q);
	}
	x = x < 0 ? x : nn_net_gap(net, x);
	x = x < 0 ? x : nn_net_linear(net, x, classes, "pretrain.head");
	int rc = x < 0 ? x : nn_net_finalize(net, batch, seed);
	if (rc) {
		nn_net_free(net);
		return rc;
	}
	*out = net;
	return 0;
}

/* The graft's tensors of a net: the ones named graft.{i}.*. */
static int graft_tensors(const nn_net *net, nn_tensor **out)
{
	int n = nn_net_tensors(net, out), k = 0;
	for (int i = 0; i < n; i++)
		if (!strncmp((*out)[i].name, "graft.", 6))
			(*out)[k++] = (*out)[i];
	return n < 0 ? n : k;
}

static int graft_identity(const nn_net *net, char sha[65])
{
	nn_tensor *t;
	int n = graft_tensors(net, &t);
	int rc = n <= 0 ? GRAFT_EINVAL : nn_tensors_sha256(t, n, sha);
	free(t);
	return rc;
}

/* Random frozen weights still need BN statistics that match the data, or the
 * graft would feed the candidate garbage scales: forward passes in train mode
 * update the running statistics (momentum 0.1; 60 batches leave under 0.2% of
 * the initial values) without touching any weight. */
static void calibrate(nn_net *net, const nn_dataset *ds, const float *mean,
                      const float *std, int batch, uint64_t seed)
{
	size_t img = (size_t)ds->c * ds->h * ds->w;
	float *x = malloc(sizeof(float) * img * batch);
	int *y = malloc(sizeof(int) * batch), *idx = malloc(sizeof(int) * batch);
	nn_rng r;

	nn_rng_seed(&r, seed);
	for (int s = 0; x && y && idx && s < 60; s++) {
		for (int i = 0; i < batch; i++)
			idx[i] = (int)nn_rng_below(&r, (uint32_t)ds->n);
		nn_dataset_batch(ds, idx, batch, mean, std, NULL, NULL, x, y);
		nn_net_forward(net, x, batch, 1);
	}
	free(x);
	free(y);
	free(idx);
}

static int write_graft(const nn_net *net, const nn_arch *a, const nn_graft_opts *o,
                       const char *path, char *err, size_t errlen)
{
	char layers[128] = "", shape[64], steps[32], seed[32], batch[32], lr[32];
	size_t off = 0;
	nn_tensor *t;

	for (int i = 0; i < a->graft_nlayers && off < sizeof(layers); i++)
		off += snprintf(layers + off, sizeof(layers) - off, "%s%dx%d", i ? "," : "",
		                a->graft_kernel[i], a->graft_channels[i]);
	snprintf(shape, sizeof(shape), "%dx%dx%d", a->in_c, a->in_h, a->in_w);
	snprintf(steps, sizeof(steps), "%d", o->steps);
	snprintf(batch, sizeof(batch), "%d", o->batch);
	snprintf(lr, sizeof(lr), "%g", o->lr);
	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)o->seed);
	const char *meta[] = { "format", GRAFT_FORMAT, "source", o->source, "layers", layers,
	                       "input", shape, "steps", steps, "batch", batch, "lr", lr,
	                       "seed", seed };
	int n = graft_tensors(net, &t);
	int rc = n < 0 ? n : nn_safetensors_write_meta(path, t, n, meta, 8, err, errlen);
	free(t);
	return rc;
}

int nn_graft_pretrain(const nn_arch *a, const nn_dataset *ds, const float *mean,
                      const float *std, const nn_graft_opts *o, const char *path,
                      char sha[65], char *err, size_t errlen)
{
	nn_net *net = NULL;
	int random = !strcmp(o->source, "random");

	if (a->graft_nlayers < 1 || o->batch < 1 || o->batch > ds->n || ds->c != a->in_c) {
		snprintf(err, errlen, "cannot pretrain a graft of %d layers for %d-channel "
		         "input on %d images of %d channels with batch %d", a->graft_nlayers,
		         a->in_c, ds->n, ds->c, o->batch);
		return GRAFT_EINVAL;
	}
	/* Convolutions do not care about image size: the data may be any size. */
	nn_arch shaped = *a;
	shaped.in_h = ds->h;
	shaped.in_w = ds->w;
	int rc = pretrain_net(&net, &shaped, ds->classes, o->batch, o->seed);
	if (rc) {
		snprintf(err, errlen, "cannot build the pretraining network: %s",
		         graft_strerror(rc));
		return rc;
	}
	if (random) {
		calibrate(net, ds, mean, std, o->batch, o->seed);
	} else {
		nn_train_opts to = { .mean = mean, .std = std, .progress = o->progress,
		                     .ctx = o->ctx, .report_every = 100 };
		nn_arch_defaults(&shaped);
		to.recipe = shaped.train;
		to.recipe.steps = o->steps;
		to.recipe.batch = o->batch;
		to.recipe.lr = o->lr;
		to.recipe.seed = o->seed;
		rc = nn_train(net, ds, &to, NULL);
		if (rc)
			snprintf(err, errlen, "pretraining failed: %s", graft_strerror(rc));
	}
	if (!rc)
		rc = write_graft(net, a, o, path, err, errlen);
	if (!rc)
		rc = graft_identity(net, sha);
	nn_net_free(net);
	return rc;
}

/* Loads and checks; on any failure the net's graft is left as it was. */
int nn_graft_load(nn_net *net, const char *path, const char *expect_sha, char sha[65],
                  char *err, size_t errlen)
{
	nn_tensor *t;
	int n = graft_tensors(net, &t);
	size_t total = 0;

	for (int i = 0; i < n; i++)
		total += (size_t)nn_tensor_numel(&t[i]);
	float *keep = n > 0 ? malloc(sizeof(float) * total) : NULL;
	if (n <= 0 || !keep) {
		snprintf(err, errlen, n <= 0 ? "%s: the network has no graft to load it into"
		                             : "%s: out of memory", path);
		free(t);
		return n <= 0 ? GRAFT_EINVAL : GRAFT_ENOMEM;
	}
	for (size_t i = 0, off = 0; i < (size_t)n; off += nn_tensor_numel(&t[i]), i++)
		memcpy(keep + off, t[i].data, sizeof(float) * nn_tensor_numel(&t[i]));
	int rc = nn_net_load(net, path, "graft.", err, errlen);
	if (!rc)
		rc = graft_identity(net, sha);
	if (!rc && expect_sha && *expect_sha && strcmp(expect_sha, sha)) {
		snprintf(err, errlen, "%s: the graft's tensors hash to %s, the architecture "
		         "names %s", path, sha, expect_sha);
		rc = GRAFT_EFORMAT;
	}
	if (rc)
		for (size_t i = 0, off = 0; i < (size_t)n; off += nn_tensor_numel(&t[i]), i++)
			memcpy(t[i].data, keep + off, sizeof(float) * nn_tensor_numel(&t[i]));
	free(keep);
	free(t);
	return rc;
}

size_t nn_graft_feature_size(const nn_net *net)
{
	int c, h, w;
	return nn_net_graft_shape(net, &c, &h, &w) ? (size_t)c * h * w : 0;
}

int nn_graft_features(nn_net *net, const nn_dataset *ds, const float *mean,
                      const float *std, nn_half *out)
{
	int b = net->max_batch;
	size_t feat = nn_graft_feature_size(net), img = (size_t)ds->c * ds->h * ds->w;
	if (!feat)
		return GRAFT_EINVAL;
	float *x = malloc(sizeof(float) * img * b);
	int *y = malloc(sizeof(int) * b), *idx = malloc(sizeof(int) * b);
	if (!x || !y || !idx) {
		free(x);
		free(y);
		free(idx);
		return GRAFT_ENOMEM;
	}
	nn_net_set_graft_features(net, NULL);
	for (int start = 0; start < ds->n; start += b) {
		int n = ds->n - start < b ? ds->n - start : b;
		for (int i = 0; i < n; i++)
			idx[i] = start + i;
		nn_dataset_batch(ds, idx, n, mean, std, NULL, NULL, x, y);
		net->input = x;
		net->batch = n;
		/* Only the graft's own nodes: the rest of the net is not needed.
		 * On oneDNN, the plan's, so that the cache holds the numbers an
		 * uncached forward pass would compute. */
		struct nn__plan *plan = nn__plan_get(net, n, 0);
		if (!plan || nn__plan_graft_forward(plan, net))
			for (int i = net->graft_first; i <= net->graft_last; i++)
				nn__forward_node(net, i, n);
		nn_half_from_floats(net->node[net->graft_last].y, out + (size_t)start * feat,
		                    feat * n);
	}
	free(x);
	free(y);
	free(idx);
	return 0;
}
