/*
 * test_plan.c - the oneDNN plans (nn/net_dnnl.c: activations blocked from
 * layer to layer) against the reference path, node by node, on random
 * architectures of every op and of channel counts that do and do not fill
 * oneDNN's blocks of 8 and 16: logits in both modes, every gradient, the
 * running statistics; that the plan really ran, and on no reference loop.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "search/search.h"

TestSuite(plan, .timeout = 300);

static void fini(void)
{
	nn_conv_set_engine(NN_ENGINE_ONEDNN);
}

/* |a - b| within atol + rtol * max|b| over the whole tensor. */
static void expect_close(const char *what, int cand, const float *a, const float *b, size_t n,
                         float atol, float rtol)
{
	float scale = 0;
	for (size_t i = 0; i < n; i++)
		scale = fabsf(b[i]) > scale ? fabsf(b[i]) : scale;
	for (size_t i = 0; i < n; i++)
		cr_assert(fabsf(a[i] - b[i]) <= atol + rtol * scale && isfinite(a[i]),
		          "candidate %d: %s[%zu] = %g on the plan, %g node by node (scale %g)",
		          cand, what, i, a[i], b[i], scale);
}

struct run {
	float *logits_eval, *logits, *grads, *rvar;
	size_t nlogits, nparams;
};

/* One eval forward, one training forward and backward of a fresh net. */
static void run_net(const nn_arch *a, enum nn_engine e, int n, const float *x, const int *y,
                    struct run *out, int *planned, int *refs)
{
	char err[GRAFT_ERRLEN];
	nn_net *net = NULL;
	nn_conv_set_engine(e);
	cr_assert_eq(nn_net_from_arch(&net, a, n, 3, err, sizeof err), 0, "%s", err);
	out->nlogits = (size_t)n * a->classes;
	out->logits_eval = malloc(sizeof(float) * out->nlogits);
	out->logits = malloc(sizeof(float) * out->nlogits);
	memcpy(out->logits_eval, nn_net_forward(net, x, n, 0), sizeof(float) * out->nlogits);
	*refs = nn_net_reference_kernels(net);
	const float *z = nn_net_forward(net, x, n, 1);
	*planned = nn_net_planned(net);
	*refs += nn_net_reference_kernels(net);
	memcpy(out->logits, z, sizeof(float) * out->nlogits);
	float *dz = malloc(sizeof(float) * out->nlogits);
	nn_softmax_xent(n, a->classes, z, y, dz);
	nn_net_backward(net, dz);
	free(dz);
	float *g;
	nn_net_param_block(net, NULL, &g, &out->nparams);
	out->grads = malloc(sizeof(float) * out->nparams);
	memcpy(out->grads, g, sizeof(float) * out->nparams);
	/* The first BN's running variance, after the training forward. */
	out->rvar = NULL;
	nn_tensor *t;
	int nt = nn_net_tensors(net, &t);
	cr_assert_gt(nt, 0);
	for (int i = 0; i < nt; i++)
		if (strstr(t[i].name, "stem.bn.running_var")) {
			size_t m = (size_t)nn_tensor_numel(&t[i]);
			out->rvar = malloc(sizeof(float) * m);
			memcpy(out->rvar, t[i].data, sizeof(float) * m);
		}
	free(t);
	nn_net_free(net);
}

static void run_free(struct run *r)
{
	free(r->logits_eval);
	free(r->logits);
	free(r->grads);
	free(r->rvar);
}

Test(plan, random_architectures_agree_with_the_reference_path, .fini = fini)
{
	static const int widths[] = { 4, 8, 12, 16, 20, 24, 32, 40 };
	search_space s;
	nn_rng r;
	search_space_defaults(&s);
	s.nwidths = sizeof(widths) / sizeof(widths[0]);
	memcpy(s.widths, widths, sizeof(widths));
	s.stem_min = 4;
	s.stem_max = 20;
	s.max_blocks = 4;
	nn_rng_seed(&r, 11);
	nn_set_threads(2);
	for (int cand = 0; cand < 14; cand++) {
		nn_arch base, a;
		nn_arch_defaults(&base);
		base.in_c = cand % 2 ? 3 : 1;
		base.in_h = base.in_w = cand % 3 ? 12 : 16;
		base.classes = 5;
		cr_assert_eq(search_sample_arch(&s, &base, &r, &a), 0);
		if (cand % 4 == 1) { /* a frozen graft on some of them */
			a.graft_nlayers = 2;
			a.graft_kernel[0] = 5;
			a.graft_kernel[1] = 3;
			a.graft_channels[0] = a.graft_channels[1] = cand % 8 == 1 ? 4 : 16;
		}
		int n = 6, img = a.in_c * a.in_h * a.in_w, planned_ref, planned, refs;
		float *x = malloc(sizeof(float) * img * n);
		int y[6];
		for (int i = 0; i < img * n; i++)
			x[i] = (float)nn_rng_normal(&r);
		for (int i = 0; i < n; i++)
			y[i] = (int)nn_rng_below(&r, 5);
		struct run ref, got;
		run_net(&a, NN_ENGINE_REFERENCE, n, x, y, &ref, &planned_ref, &refs);
		run_net(&a, NN_ENGINE_ONEDNN, n, x, y, &got, &planned, &refs);
		cr_assert(!planned_ref && planned, "candidate %d: planned %d on the reference path, "
		          "%d on oneDNN (want 0, 1)", cand, planned_ref, planned);
		/* On this machine's kernels, whatever its ISA: blocks of 16 on an
		 * AVX2 machine put batch norm and pooling on reference loops. */
		cr_assert_eq(refs, 0, "candidate %d: %d primitives on oneDNN's reference loops",
		             cand, refs);
		expect_close("eval logits", cand, got.logits_eval, ref.logits_eval, ref.nlogits,
		             1e-4f, 1e-3f);
		expect_close("train logits", cand, got.logits, ref.logits, ref.nlogits, 1e-4f, 1e-3f);
		cr_assert_eq(got.nparams, ref.nparams);
		expect_close("gradients", cand, got.grads, ref.grads, ref.nparams, 1e-5f, 2e-3f);
		cr_assert(ref.rvar && got.rvar, "candidate %d: no stem.bn.running_var", cand);
		expect_close("stem running variance", cand, got.rvar, ref.rvar, a.stem_channels,
		             1e-5f, 1e-4f);
		run_free(&ref);
		run_free(&got);
		free(x);
	}
}
