/*
 * evaluate.c - evaluating one candidate: build the network its architecture
 * describes, attach the graft, start from the parent's weights where they
 * fit, train for the recipe's budget and score on the validation split.
 *
 * This is the one place a candidate is trained and scored, so that an
 * ablation and the search measure the same thing.  Weight inheritance follows
 * Real et al. 2017: a child starts from its parent's trained weights for every
 * tensor whose name and shape are unchanged, and from a fresh initialization
 * for the rest.  The graft is never inherited: its tensors always come from
 * the graft file, whose SHA-256 is the graft's identity, so a parent saved
 * with other graft values cannot change which graft a child runs with.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "search/search.h"

#define GRAFT_PREFIX "graft."

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Copies into child every tensor of parent with the same name and shape, the
 * graft's excepted (they belong to the graft file).  A tensor whose name
 * matches but whose shape does not keeps its fresh initialization. */
int search_inherit(nn_net *child, const nn_weights *parent)
{
	nn_tensor *t = NULL;
	int count = 0;

	if (child == NULL)
		return GRAFT_EINVAL;
	if (parent == NULL)
		return 0;
	int n = nn_net_tensors(child, &t);
	if (n < 0) {
		free(t);
		return n;
	}
	for (int i = 0; i < n; i++) {
		if (strncmp(t[i].name, GRAFT_PREFIX, strlen(GRAFT_PREFIX)) == 0)
			continue;
		const nn_tensor *p = nn_weights_find(parent, t[i].name);
		if (p == NULL || !nn_tensor_same_shape(p, &t[i]))
			continue;
		memcpy(t[i].data, p->data, sizeof(float) * (size_t)nn_tensor_numel(&t[i]));
		count++;
	}
	free(t);
	return count;
}

/* A training that checkpoints: the caller's progress callback and context
 * travel beside what the checkpoint needs. */
struct ckpt {
	const search_eval_in *in;
	void *ctx;
	nn_progress_fn progress;
	char err[GRAFT_ERRLEN];
};

static void relay_progress(const nn_progress *p, void *ctx)
{
	struct ckpt *c = ctx;
	c->progress(p, c->ctx);
}

static int write_checkpoint(nn_net *net, int step, void *ctx)
{
	struct ckpt *c = ctx;
	return nn_net_save_checkpoint(net, c->in->checkpoint, step, c->err, sizeof(c->err));
}

/* Checks what the call needs before anything is built, so that a bad request
 * fails with a sentence rather than deep inside nn. */
static int check_input(const search_eval_in *in, char *err, size_t errlen)
{
	const nn_arch *a = in->arch;

	if (a == NULL || in->train == NULL || in->val == NULL) {
		snprintf(err, errlen, "search_evaluate: arch, train and val are required");
		return GRAFT_EINVAL;
	}
	if (a->graft_nlayers > 0 && (in->graft_path == NULL || !*in->graft_path)) {
		snprintf(err, errlen, "the architecture has a graft but no graft file was given");
		return GRAFT_EINVAL;
	}
	if (a->train.batch < 1 || a->train.steps < 0) {
		snprintf(err, errlen, "bad recipe: batch %d, steps %d", a->train.batch,
		         a->train.steps);
		return GRAFT_EINVAL;
	}
	if (a->train.batch > in->train->n) {
		snprintf(err, errlen, "batch %d is larger than the training split (%d images)",
		         a->train.batch, in->train->n);
		return GRAFT_EINVAL;
	}
	if (in->train->c != a->in_c || in->train->h != a->in_h || in->train->w != a->in_w ||
	    in->val->c != a->in_c || in->val->h != a->in_h || in->val->w != a->in_w) {
		snprintf(err, errlen, "the data's images are %dx%dx%d, the architecture takes "
		         "%dx%dx%d", in->train->c, in->train->h, in->train->w, a->in_c,
		         a->in_h, a->in_w);
		return GRAFT_EINVAL;
	}
	return 0;
}

int search_evaluate(const search_eval_in *in, search_eval_out *out, char *err,
                    size_t errlen)
{
	double c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), w0 = clock_s(CLOCK_MONOTONIC);
	char dummy[1];
	nn_net *net = NULL;
	nn_train_result tr = { 0 };
	int rc;

	if (err == NULL || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (in == NULL || out == NULL) {
		snprintf(err, errlen, "search_evaluate: in and out are required");
		return GRAFT_EINVAL;
	}
	memset(out, 0, sizeof(*out));
	rc = check_input(in, err, errlen);
	if (rc)
		return rc;

	const nn_arch *a = in->arch;
	const float *mean = in->mean ? in->mean : a->mean;
	const float *std = in->std ? in->std : a->std;
	int graft = a->graft_nlayers > 0;

	double t = clock_s(CLOCK_MONOTONIC);
	rc = nn_net_from_arch(&net, a, a->train.batch, a->train.seed, err, errlen);
	if (rc)
		goto out;
	/* Inherit first, then load the graft: the graft file has the last word on
	 * the graft's tensors whatever the parent held. */
	rc = search_inherit(net, in->parent);
	if (rc < 0) {
		snprintf(err, errlen, "inheriting the parent's weights: %s", graft_strerror(rc));
		goto out;
	}
	out->inherited = rc;
	rc = 0;
	if (graft) {
		char sha[65];
		rc = nn_graft_load(net, in->graft_path, in->graft_sha, sha, err, errlen);
		if (rc)
			goto out;
	}
	if (in->optim_in && (rc = nn_net_load_optim(net, in->optim_in, NULL, err, errlen)))
		goto out;
	if (in->weights_in && (rc = nn_net_load(net, in->weights_in, "", err, errlen)))
		goto out;
	int start = 0;
	if (in->resume && ((rc = nn_net_load(net, in->resume, "", err, errlen)) ||
	                   (rc = nn_net_load_optim(net, in->resume, &start, err, errlen))))
		goto out;
	if (start > a->train.steps) {
		snprintf(err, errlen, "%s: a checkpoint at step %d of a %d-step training",
		         in->resume, start, a->train.steps);
		rc = GRAFT_EFORMAT;
		goto out;
	}
	out->start_step = start;

	nn_train_opts o = { .recipe = a->train, .mean = mean, .std = std,
	                    .progress = in->progress, .ctx = in->ctx,
	                    .report_every = in->report_every > 0 ? in->report_every
	                                    : a->train.steps > 0 ? a->train.steps : 1,
	                    .graft_cache = graft ? in->train_feats : NULL,
	                    .start_step = start,
	                    .checkpoint_every = in->checkpoint ? in->checkpoint_every : 0,
	                    .checkpoint = in->checkpoint ? write_checkpoint : NULL };
	struct ckpt ck = { .in = in, .ctx = o.ctx, .progress = o.progress, .err = "" };
	if (in->checkpoint) {
		/* The checkpoint rides on the progress context. */
		o.ctx = &ck;
		o.progress = in->progress ? relay_progress : NULL;
	}
	out->feature_cache = o.graft_cache && !a->train.crop && !a->train.flip;
	out->build_s = clock_s(CLOCK_MONOTONIC) - t;
	t = clock_s(CLOCK_MONOTONIC);
	rc = nn_train(net, in->train, &o, &tr);
	out->train_s = clock_s(CLOCK_MONOTONIC) - t;
	out->setup_s = nn_net_setup_seconds(net);
	if (rc) {
		if (ck.err[0])
			snprintf(err, errlen, "%s", ck.err);
		else
			snprintf(err, errlen, "training failed: %s", graft_strerror(rc));
		goto out;
	}
	t = clock_s(CLOCK_MONOTONIC);
	/* A slice is the split's first images, and the feature cache holds
	 * them in order, so the same cache serves it. */
	nn_dataset val = *in->val;
	if (in->val_images > 0 && in->val_images < val.n)
		val.n = in->val_images;
	out->val_images = val.n;
	out->val_accuracy = nn_evaluate(net, &val, mean, std, graft ? in->val_feats : NULL,
	                                &out->val_loss);
	out->test_accuracy = in->test ? nn_evaluate(net, in->test, mean, std, NULL, NULL) : NAN;
	out->score_s = clock_s(CLOCK_MONOTONIC) - t;
	out->train_loss = tr.final_loss;
	out->steps = a->train.steps;
	out->params = nn_net_params(net);
	out->flops = nn_net_flops(net);
	t = clock_s(CLOCK_MONOTONIC);
	if (in->save_path)
		rc = nn_net_save(net, in->save_path, err, errlen);
	if (!rc && in->optim_save)
		rc = nn_net_save_optim(net, in->optim_save, a->train.steps, err, errlen);
	out->save_s = clock_s(CLOCK_MONOTONIC) - t;
out:
	nn_net_free(net);
	out->cpu_s = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
	out->wall_s = clock_s(CLOCK_MONOTONIC) - w0;
	return rc;
}
