/*
 * test_net.c - whole networks: gradient checks through every op of
 * ARCH-FORMAT.md (graft included), frozen parts that stay frozen, seeded
 * reproducibility, saving and loading, and a real (tiny) training run.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/nn.h"

TestSuite(net, .timeout = 120);

/* Every op: conv stem, graft, conv3, conv5, sep3, res3 (identity and
 * projected shortcut), pool, skip_from with and without projection. */
static void every_op_arch(nn_arch *a, int graft)
{
	nn_arch_defaults(a);
	a->in_c = 2;
	a->in_h = a->in_w = 9;
	a->classes = 4;
	a->stem_kernel = 3;
	a->stem_channels = 4;
	if (graft) {
		a->graft_nlayers = 2;
		a->graft_kernel[0] = a->graft_kernel[1] = 3;
		a->graft_channels[0] = a->graft_channels[1] = 3;
	}
	nn_block_spec b[] = {
		{ NN_OP_CONV3, 5, 1, NN_SKIP_NONE }, { NN_OP_RES3, 5, 1, -1 },
		{ NN_OP_SEP3, 6, 2, NN_SKIP_NONE }, { NN_OP_RES3, 7, 1, NN_SKIP_NONE },
		{ NN_OP_CONV5, 7, 1, 2 },           { NN_OP_POOL, 6, 1, NN_SKIP_NONE },
	};
	a->nblocks = sizeof(b) / sizeof(b[0]);
	memcpy(a->blocks, b, sizeof(b));
}

static void random_batch(float *x, int *y, int n, size_t img, int classes, uint64_t seed)
{
	nn_rng r;
	nn_rng_seed(&r, seed);
	for (size_t i = 0; i < n * img; i++)
		x[i] = (float)nn_rng_normal(&r);
	for (int i = 0; i < n; i++)
		y[i] = (int)nn_rng_below(&r, (uint32_t)classes);
}

static double loss_of(nn_net *net, const float *x, const int *y, int n, int k)
{
	return nn_softmax_xent(n, k, nn_net_forward(net, x, n, 1), y, NULL);
}

/* Directional central differences, per trainable tensor: along a random unit
 * direction v inside that tensor, (L(p + hv) - L(p - hv)) / 2h must tend to
 * g . v as h shrinks.  A single coordinate's difference drowns in float32
 * rounding of the loss once batch norm has normalized it away; a direction
 * sums many coordinates, so it stays above the noise.  Whole nets have ReLU
 * and max-pool kinks, and batch norm over a tiny batch can be sharply curved,
 * so no single h is right for every tensor (measured: at h = 1e-3 differences
 * were off by up to 60% where h = 3e-5 agreed with g . v to 1%).  A direction
 * therefore passes when the difference at any of h = 3e-4, 1e-4, 3e-5 agrees
 * within 2% (plus 5e-4 absolute, above the rounding noise at the smallest h),
 * and a tensor when three of its five directions pass.  A wrong backward
 * cannot pass this way: every difference tends to the true derivative, not to
 * the wrong one (tried: 10% errors in batch norm's and the convolution's input
 * gradients fail the affected tensors).  Every op's weights are a tensor of
 * their own, so every op's backward is held to this. */
static double directional(nn_net *net, const float *x, const int *y, int n, int k,
                          float *w, const float *keep, const double *v, size_t m,
                          double h)
{
	for (size_t j = 0; j < m; j++)
		w[j] = (float)(keep[j] + h * v[j]);
	double lp = loss_of(net, x, y, n, k);
	for (size_t j = 0; j < m; j++)
		w[j] = (float)(keep[j] - h * v[j]);
	double lm = loss_of(net, x, y, n, k);
	memcpy(w, keep, sizeof(float) * m);
	return (lp - lm) / (2 * h);
}

/* How many of five random directions pass (see above). */
static int tensor_passes(nn_net *net, const float *x, const int *y, int n, int k,
                         const nn_tensor *t, const float *ga, nn_rng *r)
{
	static const double steps[] = { 3e-4, 1e-4, 3e-5 };
	size_t m = (size_t)nn_tensor_numel(t);
	double *v = malloc(sizeof(double) * m);
	float *keep = malloc(sizeof(float) * m);
	int passed = 0;

	memcpy(keep, t->data, sizeof(float) * m);
	for (int d = 0; d < 5; d++) {
		double norm = 0.0, dot = 0.0;
		for (size_t j = 0; j < m; j++) {
			v[j] = nn_rng_normal(r);
			norm += v[j] * v[j];
		}
		for (size_t j = 0; j < m; j++) {
			v[j] /= sqrt(norm);
			dot += v[j] * ga[j];
		}
		int ok = 0;
		for (int i = 0; i < 3 && !ok; i++) {
			double num = directional(net, x, y, n, k, t->data, keep, v, m, steps[i]);
			ok = fabs(dot - num) <= 2e-2 * (fabs(dot) + fabs(num)) + 5e-4;
			if (!ok && i == 2)
				fprintf(stderr, "%s: g.v %.6g, difference at h=3e-5 %.6g\n", t->name,
				        dot, num);
		}
		passed += ok;
	}
	free(v);
	free(keep);
	return passed;
}

static void gradcheck_arch(int graft)
{
	nn_arch a;
	nn_net *net;
	char err[GRAFT_ERRLEN] = "";
	const int n = 6, k = 4;
	float x[6 * 2 * 9 * 9], *p, *g;
	int y[6];
	size_t len;
	nn_tensor *t;
	nn_rng r;

	every_op_arch(&a, graft);
	nn_set_threads(2);
	cr_assert_eq(nn_net_from_arch(&net, &a, n, 3, err, sizeof(err)), 0, "%s", err);
	random_batch(x, y, n, 2 * 9 * 9, k, 7);
	nn_net_param_block(net, &p, &g, &len);

	float *dlogits = malloc(sizeof(float) * n * k);
	nn_softmax_xent(n, k, nn_net_forward(net, x, n, 1), y, dlogits);
	nn_net_backward(net, dlogits);
	float *analytic = malloc(sizeof(float) * len);
	memcpy(analytic, g, sizeof(float) * len);

	int nt = nn_net_tensors(net, &t), checked = 0;
	nn_rng_seed(&r, 11);
	for (int i = 0; i < nt; i++) {
		if (t[i].data < p || t[i].data >= p + len)
			continue; /* frozen weights and running statistics */
		int passed = tensor_passes(net, x, y, n, k, &t[i], analytic + (t[i].data - p), &r);
		cr_expect(passed >= 3, "%s: %d of 5 directions agree with the gradient",
		          t[i].name, passed);
		checked++;
	}
	cr_assert_geq(checked, graft ? 28 : 24, "only %d tensors checked", checked);
	free(t);
	free(dlogits);
	free(analytic);
	nn_net_free(net);
}

Test(net, gradcheck_every_op)
{
	gradcheck_arch(0);
}

Test(net, gradcheck_every_op_with_graft)
{
	gradcheck_arch(1);
}

/* A frozen graft: its weights and statistics are bit-identical after
 * training steps, and it contributes nothing to the trainable block. */
Test(net, frozen_graft_stays_frozen)
{
	nn_arch a, plain;
	nn_net *net, *ref;
	char err[GRAFT_ERRLEN] = "";
	float x[8 * 2 * 9 * 9];
	int y[8];
	nn_sgd opt = { 0.9f, 5e-4f, 1 };

	every_op_arch(&a, 1);
	every_op_arch(&plain, 0);
	cr_assert_eq(nn_net_from_arch(&net, &a, 8, 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(nn_net_from_arch(&ref, &plain, 8, 1, err, sizeof(err)), 0, "%s", err);

	nn_tensor *t;
	int nt = nn_net_tensors(net, &t);
	size_t graft_floats = 0;
	for (int i = 0; i < nt; i++)
		if (!strncmp(t[i].name, "graft.", 6))
			graft_floats += nn_tensor_numel(&t[i]);
	/* conv 2->3 3x3 (54) + BN (4 x 3), conv 3->3 3x3 (81) + BN (4 x 3). */
	cr_assert_eq(graft_floats, 54 + 12 + 81 + 12, "graft holds %zu floats", graft_floats);
	float *before = malloc(sizeof(float) * graft_floats), *q = before;
	for (int i = 0; i < nt; i++)
		if (!strncmp(t[i].name, "graft.", 6)) {
			memcpy(q, t[i].data, sizeof(float) * nn_tensor_numel(&t[i]));
			q += nn_tensor_numel(&t[i]);
		}
	for (int s = 0; s < 5; s++) {
		random_batch(x, y, 8, 2 * 9 * 9, 4, 100 + s);
		nn_net_train_step(net, x, y, 8, &opt, 0.1f);
	}
	q = before;
	for (int i = 0; i < nt; i++)
		if (!strncmp(t[i].name, "graft.", 6)) {
			cr_assert(!memcmp(q, t[i].data, sizeof(float) * nn_tensor_numel(&t[i])),
			          "frozen tensor %s changed", t[i].name);
			q += nn_tensor_numel(&t[i]);
		}
	/* The trainable block holds exactly the graft-free net's parameters plus
	 * the projection (1x1 conv 3->4 and its BN): the graft has no gradient
	 * and no optimizer state. */
	size_t len, len_ref;
	nn_net_param_block(net, NULL, NULL, &len);
	nn_net_param_block(ref, NULL, NULL, &len_ref);
	cr_assert_eq(len, len_ref + 3 * 4 + 2 * 4, "trainable %zu, graft-free %zu", len, len_ref);
	free(before);
	free(t);
	nn_net_free(net);
	nn_net_free(ref);
}

/* Same seed, same threads: the same numbers, bit for bit. */
Test(net, seeded_training_is_reproducible)
{
	float *params[2];
	size_t len = 0;
	nn_sgd opt = { 0.9f, 5e-4f, 0 };

	nn_set_threads(2);
	for (int run = 0; run < 2; run++) {
		nn_arch a;
		nn_net *net;
		char err[GRAFT_ERRLEN] = "";
		float x[8 * 2 * 9 * 9], *p;
		int y[8];
		every_op_arch(&a, 1);
		cr_assert_eq(nn_net_from_arch(&net, &a, 8, 42, err, sizeof(err)), 0, "%s", err);
		for (int s = 0; s < 4; s++) {
			random_batch(x, y, 8, 2 * 9 * 9, 4, s);
			nn_net_train_step(net, x, y, 8, &opt, 0.05f);
		}
		nn_net_param_block(net, &p, NULL, &len);
		params[run] = malloc(sizeof(float) * len);
		memcpy(params[run], p, sizeof(float) * len);
		nn_net_free(net);
	}
	cr_assert(!memcmp(params[0], params[1], sizeof(float) * len),
	          "two seeded runs gave different parameters");
	free(params[0]);
	free(params[1]);
}

/* A tensor's initial values depend on the seed and its name only: the same
 * architecture with and without a graft starts from the same weights
 * everywhere else, so comparing the two compares the graft alone. */
Test(net, initialization_is_per_tensor)
{
	nn_arch a, g;
	nn_net *plain, *grafted;
	char err[GRAFT_ERRLEN] = "";
	nn_tensor *tp, *tg;

	every_op_arch(&a, 0);
	every_op_arch(&g, 1);
	cr_assert_eq(nn_net_from_arch(&plain, &a, 2, 9, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(nn_net_from_arch(&grafted, &g, 2, 9, err, sizeof(err)), 0, "%s", err);
	int np = nn_net_tensors(plain, &tp), ng = nn_net_tensors(grafted, &tg), same = 0;
	for (int i = 0; i < np; i++)
		for (int j = 0; j < ng; j++)
			if (!strcmp(tp[i].name, tg[j].name)) {
				cr_assert(!memcmp(tp[i].data, tg[j].data,
				                  sizeof(float) * nn_tensor_numel(&tp[i])),
				          "%s starts differently with a graft", tp[i].name);
				same++;
			}
	cr_assert_eq(same, np, "only %d of %d tensors matched by name", same, np);
	/* And the seed matters: another seed gives other weights. */
	nn_net *other;
	nn_tensor *to;
	cr_assert_eq(nn_net_from_arch(&other, &a, 2, 10, err, sizeof(err)), 0, "%s", err);
	nn_net_tensors(other, &to);
	cr_assert(memcmp(tp[0].data, to[0].data, sizeof(float) * nn_tensor_numel(&tp[0])),
	          "seeds 9 and 10 gave the same %s", tp[0].name);
	free(tp);
	free(tg);
	free(to);
	nn_net_free(plain);
	nn_net_free(grafted);
	nn_net_free(other);
}
