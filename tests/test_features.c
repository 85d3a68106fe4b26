/*
 * test_features.c - the graft feature cache: half precision conversions
 * (against hand-worked binary16 values, the vector and the scalar paths
 * alike), and the file every worker maps (daemon/runtime/features.c):
 * computed once, found again by the next opener, in another process too,
 * holding what nn_graft_features computes, and not reused for other data.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/runtime/runtime.h"
#include "nn/nn.h"
#include "tests/support/scratch.h"

TestSuite(features, .timeout = 120);

/* Each value at index 0 (F16C's 8-wide path) and at index 8 of 9 (the
 * scalar tail) must give the same bits. */
static nn_half one_half(float v)
{
	float in[9] = { v, 0, 0, 0, 0, 0, 0, 0, v };
	nn_half out[9];
	nn_half_from_floats(in, out, 9);
	cr_assert_eq(out[0], out[8], "%.9g: 0x%04x vector, 0x%04x scalar", v, out[0], out[8]);
	return out[0];
}

Test(features, half_rounds_to_nearest_even)
{
	struct { float f; nn_half h; } cases[] = {
		{ 0.0f, 0x0000 },         { -0.0f, 0x8000 },       { 1.0f, 0x3c00 },
		{ -2.0f, 0xc000 },        { 65504.0f, 0x7bff },    { 65520.0f, 0x7c00 },
		{ 1e9f, 0x7c00 },         { INFINITY, 0x7c00 },    { 5.9604645e-8f, 0x0001 },
		{ 2.9e-8f, 0x0000 },      { 6.1035156e-5f, 0x0400 },
		{ 1.0f + 1.0f / 2048, 0x3c00 },       /* a tie: to even */
		{ 1.0f + 3.0f / 2048, 0x3c02 },       /* a tie: to even, up */
		{ 1.0f + 1.0f / 2048 + 1e-7f, 0x3c01 },
		{ 0.1f, 0x2e66 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		nn_half h = one_half(cases[i].f);
		cr_expect_eq(h, cases[i].h, "%.9g: 0x%04x, want 0x%04x", cases[i].f, h, cases[i].h);
	}
	cr_assert_eq(one_half(NAN) & 0x7c00, 0x7c00);
	cr_assert_neq(one_half(NAN) & 0x3ff, 0, "a NaN became infinity");
}

Test(features, half_round_trip_within_its_precision)
{
	nn_rng r;
	nn_rng_seed(&r, 3);
	enum { N = 1003 };
	float in[N], back[N];
	nn_half h[N];
	for (int i = 0; i < N; i++)
		in[i] = (float)(nn_rng_normal(&r) * pow(10.0, (double)(i % 9) - 4));
	nn_half_from_floats(in, h, N);
	nn_half_to_floats(h, back, N);
	for (int i = 0; i < N; i++) {
		float tol = fabsf(in[i]) >= 6.1e-5f ? fabsf(in[i]) / 2048 : 3e-8f;
		cr_assert(fabsf(back[i] - in[i]) <= tol, "%.9g came back %.9g", in[i], back[i]);
	}
	/* Every half widens exactly, and narrows back to itself. */
	for (int v = 0; v < 65536; v++) {
		nn_half x = (nn_half)v, y;
		float f;
		nn_half_to_floats(&x, &f, 1);
		if (isnan(f))
			continue;
		nn_half_from_floats(&f, &y, 1);
		cr_assert_eq(x, y, "0x%04x -> %.9g -> 0x%04x", x, f, y);
	}
}

/* ---- the shared file -------------------------------------------------------- */

static nn_dataset train_ds, val_ds;
static float mean[NN_MAX_CHANNELS], stdv[NN_MAX_CHANNELS];

static void setup(void)
{
	nn_set_threads(1);
	scratch_make("features");
	scratch_synth_split(300, 60, 12, 9, &train_ds, &val_ds, mean, stdv);
}

static void teardown(void)
{
	nn_dataset_free(&train_ds);
	nn_dataset_free(&val_ds);
	scratch_remove();
}

static void graft_arch(nn_arch *a)
{
	nn_arch_defaults(a);
	a->in_c = 1;
	a->in_h = a->in_w = 12;
	a->mean[0] = mean[0];
	a->std[0] = stdv[0];
	a->classes = train_ds.classes;
	a->stem_kernel = 3;
	a->stem_channels = 8;
	a->graft_nlayers = 2;
	a->graft_kernel[0] = a->graft_kernel[1] = 3;
	a->graft_channels[0] = a->graft_channels[1] = 4;
	a->nblocks = 1;
	a->blocks[0] = (nn_block_spec){ NN_OP_CONV3, 8, 2, NN_SKIP_NONE };
	a->train.batch = 16;
}

static void make_graft(const nn_arch *a, const char *path, char sha[65])
{
	char err[GRAFT_ERRLEN] = "";
	nn_graft_opts o = { .source = "target", .steps = 5, .batch = 16, .lr = 0.05f, .seed = 1 };
	cr_assert_eq(nn_graft_pretrain(a, &train_ds, mean, stdv, &o, path, sha, err, sizeof err),
	             0, "%s", err);
}

static int count_files(const char *dir, const char *suffix)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "ls %s | grep -c '%s$'", dir, suffix);
	FILE *p = popen(cmd, "r");
	int n = -1;
	cr_assert(p && fscanf(p, "%d", &n) == 1);
	pclose(p);
	return n;
}

Test(features, one_file_computed_once_and_mapped_by_all, .init = setup, .fini = teardown)
{
	char sha[65], err[GRAFT_ERRLEN] = "", dir[600];
	nn_arch a;
	graft_arch(&a);
	const char *g = scratch_path("g.safetensors");
	make_graft(&a, g, sha);
	snprintf(dir, sizeof dir, "%s", scratch_path("features"));

	/* Two processes at once: one computes, the other waits and maps. */
	pid_t kids[2];
	for (int k = 0; k < 2; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			rt_features f;
			int rc = rt_features_open(&f, dir, "data-1", &a, g, sha, &train_ds, &val_ds, err,
			                          sizeof err);
			_exit(rc ? 1 : f.computed ? 10 : 11);
		}
	}
	int computed = 0;
	for (int k = 0; k < 2; k++) {
		int st;
		cr_assert_eq(waitpid(kids[k], &st, 0), kids[k]);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) >= 10, "opener %d failed", k);
		computed += WEXITSTATUS(st) == 10;
	}
	cr_assert_eq(computed, 1, "%d of the two openers computed the features", computed);
	cr_assert_eq(count_files(dir, ".f16"), 1, "not exactly one cache file");
	cr_assert_eq(count_files(dir, ".tmp"), 0, "a partial file was left");

	/* What it holds: nn_graft_features' values, training images then
	 * validation. */
	rt_features f;
	cr_assert_eq(rt_features_open(&f, dir, "data-1", &a, g, sha, &train_ds, &val_ds, err,
	                              sizeof err), 0, "%s", err);
	cr_assert(!f.computed, "a third open computed the features again");
	nn_net *net = NULL;
	cr_assert_eq(nn_net_from_arch(&net, &a, 16, 0, err, sizeof err), 0);
	cr_assert_eq(nn_graft_load(net, g, sha, (char[65]){ 0 }, err, sizeof err), 0);
	size_t feat = nn_graft_feature_size(net);
	nn_half *want = malloc(sizeof(nn_half) * feat * train_ds.n);
	cr_assert_eq(nn_graft_features(net, &train_ds, mean, stdv, want), 0);
	cr_assert(!memcmp(f.train, want, sizeof(nn_half) * feat * train_ds.n),
	          "the mapped training features are not nn_graft_features'");
	cr_assert_eq(nn_graft_features(net, &val_ds, mean, stdv, want), 0);
	cr_assert(!memcmp(f.val, want, sizeof(nn_half) * feat * val_ds.n),
	          "the mapped validation features are not nn_graft_features'");
	free(want);
	nn_net_free(net);
	rt_features_close(&f);

	/* Other data: another file. */
	cr_assert_eq(rt_features_open(&f, dir, "data-2", &a, g, sha, &train_ds, &val_ds, err,
	                              sizeof err), 0, "%s", err);
	cr_assert(f.computed, "other data mapped the first data's features");
	rt_features_close(&f);
	cr_assert_eq(count_files(dir, ".f16"), 2, "other data reused the first file");
}

Test(features, an_unwritable_directory_is_an_error_naming_it, .init = setup, .fini = teardown)
{
	char sha[65], err[GRAFT_ERRLEN] = "";
	nn_arch a;
	rt_features f;
	graft_arch(&a);
	const char *g = scratch_path("g.safetensors");
	make_graft(&a, g, sha);
	int rc = rt_features_open(&f, "/proc/graft-features", "d", &a, g, sha, &train_ds,
	                          &val_ds, err, sizeof err);
	cr_assert_neq(rc, 0);
	cr_assert(strstr(err, "/proc/graft-features"), "the error does not name the path: %s", err);
}
