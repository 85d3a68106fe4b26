/*
 * train.c - the training loop and evaluation.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/net_internal.h"

static double now(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void shuffle(int *idx, int n, nn_rng *r)
{
	for (int i = 0; i < n; i++)
		idx[i] = i;
	for (int i = n - 1; i > 0; i--) {
		int j = (int)nn_rng_below(r, (uint32_t)i + 1);
		int t = idx[i];
		idx[i] = idx[j];
		idx[j] = t;
	}
}

/* The cached graft outputs of images idx[0..n), widened into a batch. */
static void gather(const nn_half *cache, size_t feat, const int *idx, int n, float *out)
{
	for (int i = 0; i < n; i++)
		nn_half_to_floats(cache + (size_t)idx[i] * feat, out + i * feat, feat);
}

int nn_train(nn_net *net, const nn_dataset *ds, const nn_train_opts *o,
             nn_train_result *res)
{
	const nn_recipe *rc = &o->recipe;
	int b = rc->batch, every = o->report_every > 0 ? o->report_every : 50;

	if (b < 1 || b > net->max_batch || b > ds->n || rc->steps < 0 || o->start_step < 0 ||
	    o->start_step > rc->steps)
		return GRAFT_EINVAL;
	size_t img = (size_t)ds->c * ds->h * ds->w;
	nn_augment aug = { rc->crop, rc->flip };
	int augmented = aug.crop_pad || aug.flip;
	size_t feat = augmented || !o->graft_cache ? 0 : nn_graft_feature_size(net);
	float *x = malloc(sizeof(float) * img * b), *f = malloc(sizeof(float) * (feat * b + 1));
	int *y = malloc(sizeof(int) * b), *perm = malloc(sizeof(int) * ds->n);
	if (!x || !f || !y || !perm) {
		free(x);
		free(f);
		free(y);
		free(perm);
		return GRAFT_ENOMEM;
	}
	nn_rng data_rng, aug_rng;
	/* A resumed run draws from streams of its own rather than replaying the
	 * first start_step batches to reach the same place. */
	uint64_t seed = rc->seed ^ ((uint64_t)o->start_step * 0x9e3779b97f4a7c15u);
	nn_rng_seed(&data_rng, seed);
	nn_rng_seed(&aug_rng, seed ^ 0x5eed0f0a6u);
	nn_sgd opt = { rc->momentum, rc->weight_decay, rc->nesterov };
	double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
	double window = 0.0, last = 0.0;
	int pos = ds->n, inwin = 0, stopped = 0;

	for (int step = o->start_step; step < rc->steps && !stopped; step++) {
		if (pos + b > ds->n) {
			shuffle(perm, ds->n, &data_rng);
			pos = 0;
		}
		nn_dataset_batch(ds, perm + pos, b, o->mean, o->std,
		                 augmented ? &aug : NULL, &aug_rng, x, y);
		if (feat)
			gather(o->graft_cache, feat, perm + pos, b, f);
		nn_net_set_graft_features(net, feat ? f : NULL);
		pos += b;
		float lr = nn_lr_at(rc->schedule, rc->lr, step, rc->steps, rc->warmup);
		window += nn_net_train_step(net, x, y, b, &opt, lr);
		inwin++;
		if ((step + 1) % every == 0 || step + 1 == rc->steps) {
			last = window / inwin;
			window = 0.0;
			inwin = 0;
			if (o->progress) {
				double el = now(CLOCK_MONOTONIC) - t0;
				nn_progress p = { step + 1, rc->steps, last,
				                  (double)(step + 1 - o->start_step) * b /
				                  (el > 0 ? el : 1e-9), el };
				o->progress(&p, o->ctx);
			}
		}
		if (o->checkpoint && o->checkpoint_every > 0 && (step + 1) % o->checkpoint_every == 0 &&
		    step + 1 < rc->steps)
			stopped = o->checkpoint(net, step + 1, o->ctx);
	}
	nn_net_set_graft_features(net, NULL);
	if (res) {
		res->final_loss = last;
		res->wall_s = now(CLOCK_MONOTONIC) - t0;
		res->cpu_s = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
		res->images_per_s = res->wall_s > 0 ? (double)(rc->steps - o->start_step) * b /
		                    res->wall_s : 0;
	}
	free(x);
	free(f);
	free(y);
	free(perm);
	return stopped;
}

double nn_evaluate(nn_net *net, const nn_dataset *ds, const float *mean,
                   const float *std, const nn_half *graft_cache, double *loss)
{
	int b = net->max_batch, k = net->node[net->n - 1].c, correct = 0;
	size_t img = (size_t)ds->c * ds->h * ds->w, feat = graft_cache ? nn_graft_feature_size(net) : 0;
	float *x = malloc(sizeof(float) * img * b), *f = malloc(sizeof(float) * (feat * b + 1));
	int *y = malloc(sizeof(int) * b), *idx = malloc(sizeof(int) * b);
	double total = 0.0;

	if (!x || !f || !y || !idx) {
		free(f);
		free(x);
		free(y);
		free(idx);
		return -1.0;
	}
	for (int start = 0; start < ds->n; start += b) {
		int n = ds->n - start < b ? ds->n - start : b;
		for (int i = 0; i < n; i++)
			idx[i] = start + i;
		nn_dataset_batch(ds, idx, n, mean, std, NULL, NULL, x, y);
		/* The cache holds images in order, so a batch's rows are contiguous. */
		if (feat) {
			nn_half_to_floats(graft_cache + (size_t)start * feat, f, feat * n);
			nn_net_set_graft_features(net, f);
		}
		const float *z = nn_net_forward(net, x, n, 0);
		total += nn_softmax_xent(n, k, z, y, NULL) * n;
		for (int i = 0; i < n; i++) {
			int best = 0;
			for (int j = 1; j < k; j++)
				if (z[(size_t)i * k + j] > z[(size_t)i * k + best])
					best = j;
			correct += best == y[i];
		}
	}
	nn_net_set_graft_features(net, NULL);
	if (loss)
		*loss = ds->n ? total / ds->n : 0.0;
	free(f);
	free(x);
	free(y);
	free(idx);
	return ds->n ? (double)correct / ds->n : 0.0;
}
