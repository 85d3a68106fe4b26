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
 * direction v inside that tensor, (L(p + hv) - L(p - hv)) / 2h must equal
 * g . v.  A single coordinate's difference drowns in float32 rounding of the
 * loss once batch norm has normalized it away; a direction sums many
 * coordinates, so it stays well above the noise.  Whole nets are full of ReLU
 * and max-pool kinks, and a difference that straddles one is off by a few
 * percent, so each tensor is checked along five directions and the median
 * relative error must stay under 3e-2: a kink spoils a direction or two, a
 * wrong backward spoils all five (by 10% and more).  Every op's weights are a
 * tensor of their own, so every op's backward is held to this. */
static double directional_error(nn_net *net, const float *x, const int *y, int n,
                                int k, float *w, const float *ga, size_t m, nn_rng *r)
{
	double *v = malloc(sizeof(double) * m), norm = 0.0, dot = 0.0, h = 1e-3;
	float *keep = malloc(sizeof(float) * m);

	for (size_t j = 0; j < m; j++) {
		v[j] = nn_rng_normal(r);
		norm += v[j] * v[j];
	}
	for (size_t j = 0; j < m; j++) {
		v[j] /= sqrt(norm);
		dot += v[j] * ga[j];
	}
	memcpy(keep, w, sizeof(float) * m);
	for (size_t j = 0; j < m; j++)
		w[j] = (float)(keep[j] + h * v[j]);
	double lp = loss_of(net, x, y, n, k);
	for (size_t j = 0; j < m; j++)
		w[j] = (float)(keep[j] - h * v[j]);
	double lm = loss_of(net, x, y, n, k);
	memcpy(w, keep, sizeof(float) * m);
	free(v);
	free(keep);
	double num = (lp - lm) / (2 * h);
	return fabs(dot - num) / fmax(1e-3, fabs(dot) + fabs(num));
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
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
		size_t m = (size_t)nn_tensor_numel(&t[i]);
		if (t[i].data < p || t[i].data >= p + len)
			continue; /* frozen weights and running statistics */
		double e[5];
		for (int d = 0; d < 5; d++)
			e[d] = directional_error(net, x, y, n, k, t[i].data,
			                         analytic + (t[i].data - p), m, &r);
		qsort(e, 5, sizeof(double), cmp_double);
		cr_expect(e[2] < 3e-2, "%s: median relative error %.3g (min %.3g, max %.3g)",
		          t[i].name, e[2], e[0], e[4]);
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
	nn_sgd opt = { 0.1f, 0.9f, 5e-4f, 1 };

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
	nn_sgd opt = { 0.05f, 0.9f, 5e-4f, 0 };

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
