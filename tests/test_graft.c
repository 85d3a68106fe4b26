/*
 * test_graft.c - the graft: the frozen module joined beside every candidate's
 * stem.  Its feature cache must be exact (training and evaluating from cached
 * G(x) gives the very bits computing G(x) gives), a frozen graft must never
 * move while a fine-tuned one must, graft files must say how they were made
 * and be refused clearly when they are wrong, and search_graft_obtain must
 * pretrain a request once, deterministically, and reuse it after.
 *
 * The data is nn_synth_dataset's: a few hundred 1x12x12 images of 22 classes,
 * enough to train a small net for a few dozen steps in well under a second.
 * Everything runs on one thread, where nn promises bit-for-bit repeatability.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/nn.h"
#include "search/search.h"
#include "tests/support/scratch.h"

#define SIDE 12
#define NIMAGES 410 /* 320 train + 90 validation (not a whole number of batches) */
#define NVAL 90
#define BATCH 16
#define GCH 4 /* graft channels */

TestSuite(graft, .timeout = 120);

/* ---- fixtures -------------------------------------------------------------- */

static nn_dataset train_ds, val_ds;
static float mean[NN_MAX_CHANNELS], stdv[NN_MAX_CHANNELS];

static void setup(void)
{
	nn_set_threads(1);
	scratch_make("graft");
	scratch_synth_split(NIMAGES, NVAL, SIDE, 42, &train_ds, &val_ds, mean, stdv);
}

static void teardown(void)
{
	nn_dataset_free(&train_ds);
	nn_dataset_free(&val_ds);
	scratch_remove();
}

/* Stem 3x3x8, a graft of 2 layers of 3x3x4, a stride-2 conv3 and a stride-2
 * res3 with a projected shortcut, the linear head; 25 steps of 16 (so the
 * 320 training images are reshuffled once, at step 20). */
static void small_arch(nn_arch *a, int graft, int trainable)
{
	nn_arch_defaults(a);
	a->in_c = 1;
	a->in_h = a->in_w = SIDE;
	a->mean[0] = mean[0];
	a->std[0] = stdv[0];
	a->classes = train_ds.classes;
	a->stem_kernel = 3;
	a->stem_channels = 8;
	if (graft) {
		a->graft_nlayers = 2;
		a->graft_kernel[0] = a->graft_kernel[1] = 3;
		a->graft_channels[0] = a->graft_channels[1] = GCH;
	}
	a->nblocks = 2;
	a->blocks[0] = (nn_block_spec){ NN_OP_CONV3, 8, 2, NN_SKIP_NONE };
	a->blocks[1] = (nn_block_spec){ NN_OP_RES3, 16, 2, NN_SKIP_NONE };
	a->train.steps = 25;
	a->train.batch = BATCH;
	a->train.lr = 0.05f;
	a->train.seed = 5;
	a->graft_trainable = trainable;
}

static nn_net *build(const nn_arch *a, uint64_t seed)
{
	char err[GRAFT_ERRLEN] = "";
	nn_net *net = NULL;
	int rc = nn_net_from_arch(&net, a, BATCH, seed, err, sizeof err);

	cr_assert_eq(rc, 0, "nn_net_from_arch: %s (%s)", err, graft_strerror(rc));
	cr_assert_not_null(net);
	return net;
}

static nn_graft_opts gopts(const char *source, int steps, uint64_t seed)
{
	return (nn_graft_opts){ .source = source, .steps = steps, .batch = BATCH,
	                        .lr = 0.05f, .seed = seed };
}

/* Pretrains a graft of small_arch's shape into path; returns its sha in sha. */
static void pretrain(const char *source, int steps, uint64_t seed, const char *path,
                     char sha[65])
{
	char err[GRAFT_ERRLEN] = "";
	nn_arch a;
	nn_graft_opts o = gopts(source, steps, seed);

	small_arch(&a, 1, 0);
	int rc = nn_graft_pretrain(&a, &train_ds, mean, stdv, &o, path, sha, err, sizeof err);
	cr_assert_eq(rc, 0, "nn_graft_pretrain(%s): %s (%s)", source, err, graft_strerror(rc));
	cr_assert_eq(strlen(sha), 64, "sha '%s' is not 64 hex digits", sha);
}

static void load(nn_net *net, const char *path, const char *expect, char sha[65])
{
	char err[GRAFT_ERRLEN] = "";
	int rc = nn_graft_load(net, path, expect, sha, err, sizeof err);

	cr_assert_eq(rc, 0, "nn_graft_load %s: %s (%s)", path, err, graft_strerror(rc));
}

/* ---- comparing tensors ----------------------------------------------------- */

static int has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A copy of every tensor of net whose name starts with prefix ("" = all),
 * concatenated in node order; *len gets the float count. */
static float *snapshot(const nn_net *net, const char *prefix, size_t *len)
{
	nn_tensor *t;
	int n = nn_net_tensors(net, &t);
	size_t total = 0, off = 0;

	cr_assert_gt(n, 0, "nn_net_tensors: %d", n);
	for (int i = 0; i < n; i++)
		if (has_prefix(t[i].name, prefix))
			total += (size_t)nn_tensor_numel(&t[i]);
	float *out = malloc(sizeof(float) * (total + 1));
	cr_assert_not_null(out);
	for (int i = 0; i < n; i++)
		if (has_prefix(t[i].name, prefix)) {
			size_t m = (size_t)nn_tensor_numel(&t[i]);
			memcpy(out + off, t[i].data, sizeof(float) * m);
			off += m;
		}
	free(t);
	*len = total;
	return out;
}

/* Fails unless a and b hold the same bits, naming the first difference. */
static void expect_same_bits(const float *a, const float *b, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++)
		cr_assert(memcmp(&a[i], &b[i], sizeof(float)) == 0,
		          "%s: element %zu of %zu differs: %.9g vs %.9g", what, i, n,
		          (double)a[i], (double)b[i]);
}

/* How many of the n floats differ between a and b. */
static size_t count_diff(const float *a, const float *b, size_t n)
{
	size_t d = 0;
	for (size_t i = 0; i < n; i++)
		d += memcmp(&a[i], &b[i], sizeof(float)) != 0;
	return d;
}

static void expect_same_params(nn_net *a, nn_net *b, const char *what)
{
	float *pa, *pb;
	size_t la, lb;

	nn_net_param_block(a, &pa, NULL, &la);
	nn_net_param_block(b, &pb, NULL, &lb);
	cr_assert_eq(la, lb, "%s: trainable blocks of %zu and %zu floats", what, la, lb);
	cr_assert_gt(la, 0, "%s: empty trainable block", what);
	expect_same_bits(pa, pb, la, what);
	/* The running statistics are outside the block; they must agree too. */
	size_t sa, sb;
	float *ta = snapshot(a, "", &sa), *tb = snapshot(b, "", &sb);
	cr_assert_eq(sa, sb);
	expect_same_bits(ta, tb, sa, what);
	free(ta);
	free(tb);
}

/* The trainable parameters of a and b within tol of each other, relative to
 * the largest of b's. */
static void expect_close_params(nn_net *a, nn_net *b, double tol, const char *what)
{
	float *pa, *pb;
	size_t la, lb;
	nn_net_param_block(a, &pa, NULL, &la);
	nn_net_param_block(b, &pb, NULL, &lb);
	cr_assert_eq(la, lb, "%s: trainable blocks of %zu and %zu floats", what, la, lb);
	double scale = 0, worst = 0;
	for (size_t i = 0; i < la; i++) {
		scale = fabs(pb[i]) > scale ? fabs(pb[i]) : scale;
		worst = fabs(pa[i] - pb[i]) > worst ? fabs(pa[i] - pb[i]) : worst;
	}
	cr_assert(worst <= tol * scale, "%s: parameters differ by up to %g (largest %g)", what,
	          worst, scale);
}

static nn_train_opts topts(const nn_arch *a, const nn_half *cache)
{
	return (nn_train_opts){ .recipe = a->train, .mean = mean, .std = stdv,
	                        .report_every = 5, .graft_cache = cache };
}

static void train(nn_net *net, const nn_arch *a, const nn_half *cache)
{
	nn_train_opts o = topts(a, cache);
	int rc = nn_train(net, &train_ds, &o, NULL);
	cr_assert_eq(rc, 0, "nn_train: %s", graft_strerror(rc));
}

/* ---- 1. the feature cache ------------------------------------------------ */

/* The graft's outputs for every image, in half precision. */
static nn_half *features(nn_net *net, const nn_dataset *ds)
{
	nn_half *f = malloc(sizeof(nn_half) * nn_graft_feature_size(net) * ds->n + 1);
	cr_assert_not_null(f);
	cr_assert_eq(nn_graft_features(net, ds, mean, stdv, f), 0);
	return f;
}

/* Half precision rounds G(x) to 11 bits: training and scoring from the cache
 * land within noise of computing G(x) every step (issue 11's note measures
 * it on Fashion-MNIST). */
Test(graft, cached_features_train_and_evaluate_within_rounding, .init = setup,
     .fini = teardown)
{
	char sha[65], sha2[65];
	nn_arch a;
	int c, h, w;

	pretrain("target", 10, 3, scratch_path("g.safetensors"), sha);
	small_arch(&a, 1, 0);
	nn_net *cached = build(&a, 7), *plain = build(&a, 7), *zeros = build(&a, 7);
	load(cached, scratch_path("g.safetensors"), sha, sha2);
	load(plain, scratch_path("g.safetensors"), sha, sha2);
	load(zeros, scratch_path("g.safetensors"), sha, sha2);

	cr_assert_eq(nn_net_graft_shape(cached, &c, &h, &w), 1, "a frozen graft has no shape");
	cr_assert(c == GCH && h == SIDE && w == SIDE, "graft shape %dx%dx%d, want %dx%dx%d",
	          c, h, w, GCH, SIDE, SIDE);
	cr_assert_eq(nn_graft_feature_size(cached), (size_t)c * h * w);
	nn_half *tf = features(cached, &train_ds), *vf = features(cached, &val_ds);
	size_t feat = (size_t)c * h * w;

	/* Evaluating before training: from the cache or not, the same up to
	 * the rounding. */
	double l_plain, l_cached, l_zeros;
	double a_plain = nn_evaluate(plain, &val_ds, mean, stdv, NULL, &l_plain);
	double a_cached = nn_evaluate(cached, &val_ds, mean, stdv, vf, &l_cached);
	cr_assert(fabs(a_plain - a_cached) <= 2.0 / val_ds.n &&
	          fabs(l_plain - l_cached) <= 1e-3 * fabs(l_plain), "untrained: accuracy %.17g / "
	          "%.17g, loss %.17g / %.17g with and without the cache", a_cached, a_plain,
	          l_cached, l_plain);

	float *pa;
	size_t np;
	nn_net_param_block(plain, &pa, NULL, &np);
	float *before = malloc(sizeof(float) * np);
	cr_assert_not_null(before);
	memcpy(before, pa, sizeof(float) * np);

	train(cached, &a, tf);
	train(plain, &a, NULL);
	expect_close_params(cached, plain, 0.05, "trained with the cache vs without");
	cr_assert_gt(count_diff(before, pa, np), np / 2, "training barely moved the "
	             "parameters: the comparison would prove nothing");

	/* The cache is really read: a cache of zeros (G(x) = 0) trains otherwise. */
	nn_half *zf = calloc(feat * train_ds.n, sizeof(nn_half));
	cr_assert_not_null(zf);
	train(zeros, &a, zf);
	float *pz;
	nn_net_param_block(zeros, &pz, NULL, NULL);
	cr_assert_gt(count_diff(pz, pa, np), 0, "a cache of zeros trained the same "
	             "parameters: nn_train ignores graft_cache");

	a_plain = nn_evaluate(plain, &val_ds, mean, stdv, NULL, &l_plain);
	a_cached = nn_evaluate(cached, &val_ds, mean, stdv, vf, &l_cached);
	cr_assert(fabs(a_plain - a_cached) <= 0.05 && fabs(l_plain - l_cached) <= 0.05 * l_plain,
	          "trained: accuracy %.17g / %.17g, loss %.17g / %.17g with and without the "
	          "cache", a_cached, a_plain, l_cached, l_plain);
	cr_assert(a_plain >= 0 && a_plain <= 1 && isfinite(l_plain), "accuracy %g loss %g",
	          a_plain, l_plain);
	/* The same net, its cached features replaced by zeros: another loss. */
	nn_half *zv = calloc(feat * val_ds.n, sizeof(nn_half));
	cr_assert_not_null(zv);
	nn_evaluate(plain, &val_ds, mean, stdv, zv, &l_zeros);
	cr_assert_neq(l_zeros, l_plain, "nn_evaluate ignores graft_cache");
	/* ... and evaluating from it left the net computing G(x) again after. */
	double l_again;
	nn_evaluate(plain, &val_ds, mean, stdv, NULL, &l_again);
	cr_assert_eq(l_again, l_plain, "after a cached evaluation the loss is %.17g, was "
	             "%.17g: the cache stayed installed", l_again, l_plain);

	free(before);
	free(zf);
	free(zv);
	free(tf);
	free(vf);
	nn_net_free(cached);
	nn_net_free(plain);
	nn_net_free(zeros);
}

/* G of an augmented image is not G of the image: with crop or flip on, the
 * cache must be ignored, and training equal training without it. */
Test(graft, cache_is_ignored_under_augmentation, .init = setup, .fini = teardown)
{
	char sha[65], sha2[65];
	nn_arch a;

	pretrain("target", 10, 3, scratch_path("g.safetensors"), sha);
	small_arch(&a, 1, 0);
	nn_net *cached = build(&a, 7), *plain = build(&a, 7), *noaug = build(&a, 7);
	load(cached, scratch_path("g.safetensors"), sha, sha2);
	load(plain, scratch_path("g.safetensors"), sha, sha2);
	load(noaug, scratch_path("g.safetensors"), sha, sha2);
	nn_half *tf = features(cached, &train_ds);

	train(noaug, &a, NULL);
	a.train.crop = 2;
	a.train.flip = 1;
	train(cached, &a, tf);
	train(plain, &a, NULL);
	expect_same_params(cached, plain, "augmented, with the cache vs without");

	float *p1, *p2;
	size_t n;
	nn_net_param_block(plain, &p1, NULL, &n);
	nn_net_param_block(noaug, &p2, NULL, NULL);
	cr_assert_gt(count_diff(p1, p2, n), 0, "augmentation changed nothing: the test "
	             "would prove nothing");

	/* Flip alone, and crop alone, are augmentation too. */
	for (int k = 0; k < 2; k++) {
		nn_net *x = build(&a, 7), *y = build(&a, 7);
		load(x, scratch_path("g.safetensors"), sha, sha2);
		load(y, scratch_path("g.safetensors"), sha, sha2);
		a.train.crop = k ? 0 : 2;
		a.train.flip = k ? 1 : 0;
		train(x, &a, tf);
		train(y, &a, NULL);
		expect_same_params(x, y, k ? "flip only" : "crop only");
		nn_net_free(x);
		nn_net_free(y);
	}
	free(tf);
	nn_net_free(cached);
	nn_net_free(plain);
	nn_net_free(noaug);
}

/* A fine-tuned graft changes every step: it has no cacheable output. */
Test(graft, finetuned_graft_has_no_cache, .init = setup, .fini = teardown)
{
	nn_arch a;
	nn_half f[1];
	int c = -1, h = -1, w = -1;

	small_arch(&a, 1, 1);
	nn_net *net = build(&a, 7);
	cr_assert_eq(nn_net_graft_shape(net, &c, &h, &w), 0, "a fine-tuned graft reports a "
	             "cacheable shape %dx%dx%d", c, h, w);
	cr_assert_eq(nn_graft_feature_size(net), 0);
	cr_assert_eq(nn_graft_features(net, &train_ds, mean, stdv, f), GRAFT_EINVAL);
	nn_net_free(net);

	small_arch(&a, 0, 0);
	net = build(&a, 7);
	cr_assert_eq(nn_net_graft_shape(net, &c, &h, &w), 0, "a net without a graft has one");
	nn_net_free(net);
}

/* ---- 2. frozen and fine-tuned grafts ---------------------------------------- */

/* Whether p lies inside the trainable block of net. */
static int in_block(nn_net *net, const float *p)
{
	float *b;
	size_t n;
	nn_net_param_block(net, &b, NULL, &n);
	return p >= b && p < b + n;
}

/* Parameters (not running statistics) of the tensors named prefix*. */
static int64_t params_of(const nn_net *net, const char *prefix)
{
	nn_tensor *t;
	int n = nn_net_tensors(net, &t);
	int64_t total = 0;

	for (int i = 0; i < n; i++)
		if (has_prefix(t[i].name, prefix) && !strstr(t[i].name, "running_"))
			total += nn_tensor_numel(&t[i]);
	free(t);
	return total;
}

static void check_block_membership(nn_net *net, int trainable)
{
	nn_tensor *t;
	int n = nn_net_tensors(net, &t), graft = 0;

	for (int i = 0; i < n; i++) {
		int stat = strstr(t[i].name, "running_") != NULL;
		int in = in_block(net, t[i].data);
		if (stat)
			cr_assert(!in, "running statistic %s is in the trainable block", t[i].name);
		else if (has_prefix(t[i].name, "graft."))
			cr_assert_eq(in, trainable, "%s is %sin the trainable block", t[i].name,
			             in ? "" : "not ");
		else
			cr_assert(in, "%s is not in the trainable block", t[i].name);
		graft += has_prefix(t[i].name, "graft.");
	}
	cr_assert_eq(graft, 10, "%d graft tensors, want 2 x (conv + 4 BN)", graft);
	free(t);

	size_t len;
	nn_net_param_block(net, NULL, NULL, &len);
	int64_t want = nn_net_params(net) - (trainable ? 0 : params_of(net, "graft."));
	cr_assert_eq((int64_t)len, want, "trainable block of %zu floats, want %lld", len,
	             (long long)want);
}

Test(graft, frozen_graft_never_moves, .init = setup, .fini = teardown)
{
	char sha[65], sha2[65];
	nn_arch a;
	size_t ng, nproj;

	pretrain("random", 10, 3, scratch_path("g.safetensors"), sha);
	small_arch(&a, 1, 0);
	nn_net *net = build(&a, 7);
	load(net, scratch_path("g.safetensors"), sha, sha2);
	check_block_membership(net, 0);
	cr_assert_eq(params_of(net, "graft."), (int64_t)(GCH * 9 + 2 * GCH) +
	             (GCH * GCH * 9 + 2 * GCH), "graft parameter count");

	float *g0 = snapshot(net, "graft.", &ng), *p0 = snapshot(net, "graft_proj.", &nproj);
	cr_assert_eq(ng, (size_t)(GCH * 9 + 4 * GCH + GCH * GCH * 9 + 4 * GCH));
	train(net, &a, NULL);
	size_t n1;
	float *g1 = snapshot(net, "graft.", &n1), *p1 = snapshot(net, "graft_proj.", &n1);
	expect_same_bits(g0, g1, ng, "the frozen graft after training (weights and BN "
	                 "statistics)");
	/* The projection beside it is the candidate's own and trains. */
	cr_assert_gt(count_diff(p0, p1, nproj), 0, "graft_proj did not train");
	/* Its identity is unchanged too, so the net still holds the file's graft. */
	char sha3[65];
	load(net, scratch_path("g.safetensors"), sha, sha3);
	cr_assert_str_eq(sha3, sha);
	free(g0);
	free(g1);
	free(p0);
	free(p1);
	nn_net_free(net);
}

Test(graft, finetuned_graft_trains, .init = setup, .fini = teardown)
{
	char sha[65], sha2[65];
	nn_arch a;
	nn_tensor *t;
	size_t ng, n1;

	pretrain("random", 10, 3, scratch_path("g.safetensors"), sha);
	small_arch(&a, 1, 1);
	nn_net *net = build(&a, 7);
	load(net, scratch_path("g.safetensors"), sha, sha2);
	check_block_membership(net, 1);

	float *g0 = snapshot(net, "graft.", &ng);
	train(net, &a, NULL);
	float *g1 = snapshot(net, "graft.", &n1);
	cr_assert_eq(ng, n1);
	/* Every graft tensor moves: weights by SGD, running statistics because its
	 * batch norms now run in training mode. */
	int n = nn_net_tensors(net, &t);
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		if (!has_prefix(t[i].name, "graft."))
			continue;
		size_t m = (size_t)nn_tensor_numel(&t[i]);
		cr_assert_gt(count_diff(g0 + off, g1 + off, m), 0, "fine-tuning did not change "
		             "%s", t[i].name);
		off += m;
	}
	free(t);
	free(g0);
	free(g1);
	nn_net_free(net);
}

/* ---- 3. graft files ------------------------------------------------------- */

static void expect_meta(const nn_weights *w, const char *key, const char *want)
{
	const char *v = nn_weights_meta(w, key);
	cr_assert_not_null(v, "the graft file has no metadata '%s'", key);
	cr_assert_str_eq(v, want, "metadata %s is '%s', want '%s'", key, v, want);
}

static void read_weights(const char *path, nn_weights *w)
{
	char err[GRAFT_ERRLEN] = "";
	int rc = nn_safetensors_read(path, w, err, sizeof err);
	cr_assert_eq(rc, 0, "nn_safetensors_read %s: %s", path, err);
}

static const char *const graft_names[10] = {
	"graft.0.conv.weight", "graft.0.bn.weight", "graft.0.bn.bias",
	"graft.0.bn.running_mean", "graft.0.bn.running_var",
	"graft.1.conv.weight", "graft.1.bn.weight", "graft.1.bn.bias",
	"graft.1.bn.running_mean", "graft.1.bn.running_var",
};

/* Exactly the ten graft tensors, in node order, of the right shapes. */
static void expect_graft_tensors(const nn_weights *w)
{
	cr_assert_eq(w->n, 10, "the graft file holds %d tensors, want 10", w->n);
	for (int i = 0; i < 10; i++) {
		const nn_tensor *t = &w->t[i];
		cr_assert_str_eq(t->name, graft_names[i], "tensor %d is %s, want %s", i,
		                 t->name, graft_names[i]);
		if (strstr(t->name, "conv")) {
			int cin = i < 5 ? 1 : GCH;
			cr_assert(t->ndim == 4 && t->shape[0] == GCH && t->shape[1] == cin &&
			          t->shape[2] == 3 && t->shape[3] == 3, "%s has a wrong shape",
			          t->name);
		} else {
			cr_assert(t->ndim == 1 && t->shape[0] == GCH, "%s has a wrong shape",
			          t->name);
		}
		for (int64_t k = 0; k < nn_tensor_numel(t); k++)
			cr_assert(isfinite(t->data[k]), "%s[%lld] = %g", t->name, (long long)k,
			          (double)t->data[k]);
	}
}

/* The net's graft tensors equal the file's, bit for bit. */
static void expect_net_holds(const nn_net *net, const nn_weights *w)
{
	nn_tensor *t;
	int n = nn_net_tensors(net, &t), found = 0;

	for (int i = 0; i < n; i++) {
		if (!has_prefix(t[i].name, "graft."))
			continue;
		const nn_tensor *f = nn_weights_find(w, t[i].name);
		cr_assert_not_null(f, "the file lacks %s", t[i].name);
		cr_assert_eq(nn_tensor_numel(f), nn_tensor_numel(&t[i]));
		expect_same_bits(f->data, t[i].data, (size_t)nn_tensor_numel(f), t[i].name);
		found++;
	}
	cr_assert_eq(found, 10);
	free(t);
}

Test(graft, pretrained_file_has_metadata_tensors_and_identity, .init = setup,
     .fini = teardown)
{
	char sha[65], got[65], hex[65], path[512];
	nn_weights w;
	nn_arch a;

	snprintf(path, sizeof path, "%s", scratch_path("target.safetensors"));
	pretrain("target", 7, 3, path, sha);
	read_weights(path, &w);
	expect_meta(&w, "format", "graft-module/1");
	expect_meta(&w, "source", "target");
	expect_meta(&w, "layers", "3x4,3x4");
	expect_meta(&w, "input", "1x12x12");
	expect_meta(&w, "steps", "7");
	expect_meta(&w, "batch", "16");
	expect_meta(&w, "seed", "3");
	cr_assert_not_null(nn_weights_meta(&w, "lr"), "no lr metadata");
	cr_assert(fabs(strtod(nn_weights_meta(&w, "lr"), NULL) - 0.05) < 1e-6, "lr '%s'",
	          nn_weights_meta(&w, "lr"));
	expect_graft_tensors(&w);
	/* The sha is the identity of the tensors as stored. */
	cr_assert_eq(nn_tensors_sha256(w.t, w.n, hex), 0);
	cr_assert_str_eq(hex, sha, "the file's tensors hash to %s, pretrain said %s", hex, sha);

	/* Loaded into a fresh grafted net: the same identity, the same values. */
	small_arch(&a, 1, 0);
	nn_net *net = build(&a, 9);
	load(net, path, sha, got);
	cr_assert_str_eq(got, sha);
	expect_net_holds(net, &w);
	/* Uppercase hex, NULL and "" expect nothing in particular. */
	load(net, path, NULL, got);
	cr_assert_str_eq(got, sha);
	load(net, path, "", got);
	cr_assert_str_eq(got, sha);
	/* A fine-tuned net takes the same file. */
	nn_net *ft;
	small_arch(&a, 1, 1);
	ft = build(&a, 9);
	load(ft, path, sha, got);
	cr_assert_str_eq(got, sha);
	expect_net_holds(ft, &w);
	nn_net_free(ft);
	nn_weights_free(&w);
	nn_net_free(net);
}

Test(graft, random_graft_is_calibrated_not_trained, .init = setup, .fini = teardown)
{
	char sha_r[65], sha_t[65];
	nn_weights r, t;

	pretrain("random", 7, 3, scratch_path("random.safetensors"), sha_r);
	pretrain("target", 7, 3, scratch_path("target.safetensors"), sha_t);
	cr_assert_str_neq(sha_r, sha_t, "random and target grafts hash the same");
	read_weights(scratch_path("random.safetensors"), &r);
	read_weights(scratch_path("target.safetensors"), &t);
	expect_meta(&r, "format", "graft-module/1");
	expect_meta(&r, "source", "random");
	expect_meta(&r, "layers", "3x4,3x4");
	expect_meta(&r, "seed", "3");
	expect_graft_tensors(&r);
	for (int l = 0; l < 2; l++) {
		char name[64];
		snprintf(name, sizeof name, "graft.%d.bn.running_mean", l);
		const nn_tensor *m = nn_weights_find(&r, name);
		snprintf(name, sizeof name, "graft.%d.bn.running_var", l);
		const nn_tensor *v = nn_weights_find(&r, name);
		snprintf(name, sizeof name, "graft.%d.bn.weight", l);
		const nn_tensor *g = nn_weights_find(&r, name);
		snprintf(name, sizeof name, "graft.%d.bn.bias", l);
		const nn_tensor *b = nn_weights_find(&r, name);
		for (int c = 0; c < GCH; c++) {
			/* Calibrated: no longer PyTorch's initial 0 and 1. */
			cr_assert(m->data[c] != 0.0f, "layer %d channel %d: running_mean is still 0",
			          l, c);
			cr_assert(v->data[c] != 1.0f && v->data[c] > 0.0f, "layer %d channel %d: "
			          "running_var is %g", l, c, (double)v->data[c]);
			/* Random: calibration touches no weight. */
			cr_assert(g->data[c] == 1.0f && b->data[c] == 0.0f, "layer %d channel %d: "
			          "BN weight %g bias %g, want the initial 1 and 0", l, c,
			          (double)g->data[c], (double)b->data[c]);
		}
		snprintf(name, sizeof name, "graft.%d.conv.weight", l);
		const nn_tensor *cr = nn_weights_find(&r, name), *ct = nn_weights_find(&t, name);
		cr_assert_gt(count_diff(cr->data, ct->data, (size_t)nn_tensor_numel(cr)), 0,
		             "%s: the random graft's weights equal the pretrained one's", name);
	}
	nn_weights_free(&r);
	nn_weights_free(&t);
}

static void copy_file(const char *from, const char *to, long keep)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	char buf[4096];
	size_t n;
	long total = 0;

	cr_assert(in && out, "cannot copy %s to %s", from, to);
	while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
		if (keep >= 0 && total + (long)n > keep)
			n = (size_t)(keep - total);
		cr_assert_eq(fwrite(buf, 1, n, out), n);
		total += (long)n;
		if (keep >= 0 && total >= keep)
			break;
	}
	fclose(in);
	cr_assert_eq(fclose(out), 0);
}

/* Loading a bad file fails with rc and a message holding every needle, and
 * leaves the net's graft as it was. */
static void expect_load_fails(nn_net *net, const char *path, const char *expect, int rc,
                              const char *n1, const char *n2)
{
	char err[GRAFT_ERRLEN] = "", sha[65];
	size_t n0, n1len;
	float *before = snapshot(net, "graft.", &n0);
	int got = nn_graft_load(net, path, expect, sha, err, sizeof err);

	cr_assert_eq(got, rc, "loading %s: %d (%s), want %d (%s); message: %s", path, got,
	             graft_strerror(got), rc, graft_strerror(rc), err);
	cr_assert_not_null(strstr(err, path), "the message does not name %s: %s", path, err);
	if (n1)
		cr_assert_not_null(strstr(err, n1), "the message lacks '%s': %s", n1, err);
	if (n2)
		cr_assert_not_null(strstr(err, n2), "the message lacks '%s': %s", n2, err);
	if (!expect) {
		float *after = snapshot(net, "graft.", &n1len);
		expect_same_bits(before, after, n0, "the graft after a failed load");
		free(after);
	}
	free(before);
}

Test(graft, bad_graft_files_are_refused_clearly, .init = setup, .fini = teardown)
{
	char sha[65], other[65], good[512];
	nn_weights w;
	nn_arch a;
	struct stat st;

	snprintf(good, sizeof good, "%s", scratch_path("good.safetensors"));
	pretrain("target", 5, 3, good, sha);
	pretrain("target", 5, 4, scratch_path("other.safetensors"), other);
	small_arch(&a, 1, 0);
	nn_net *net = build(&a, 9);
	load(net, scratch_path("other.safetensors"), other, (char[65]){ 0 });

	/* The wrong identity: GRAFT_EFORMAT naming both hashes. */
	expect_load_fails(net, good, other, GRAFT_EFORMAT, sha, other);

	/* Truncated by a few bytes, and to half. */
	cr_assert_eq(stat(good, &st), 0);
	copy_file(good, scratch_path("short.safetensors"), (long)st.st_size - 6);
	expect_load_fails(net, scratch_path("short.safetensors"), NULL, GRAFT_EFORMAT, NULL, NULL);
	copy_file(good, scratch_path("half.safetensors"), (long)st.st_size / 2);
	expect_load_fails(net, scratch_path("half.safetensors"), NULL, GRAFT_EFORMAT, NULL, NULL);
	copy_file(good, scratch_path("tiny.safetensors"), 5);
	expect_load_fails(net, scratch_path("tiny.safetensors"), NULL, GRAFT_EFORMAT, NULL, NULL);

	read_weights(good, &w);
	nn_tensor t[10];
	const char *meta[] = { "format", "graft-module/1" };
	char err[GRAFT_ERRLEN] = "";

	/* One tensor missing: each of them, in turn. */
	for (int drop = 0; drop < 10; drop++) {
		int k = 0;
		for (int i = 0; i < 10; i++)
			if (i != drop)
				t[k++] = w.t[i];
		cr_assert_eq(nn_safetensors_write_meta(scratch_path("missing.safetensors"), t, 9, meta, 1,
		                                       err, sizeof err), 0, "%s", err);
		expect_load_fails(net, scratch_path("missing.safetensors"), NULL, GRAFT_EFORMAT,
		                  graft_names[drop], NULL);
	}

	/* A conv of the wrong kernel, a BN of the wrong width. */
	memcpy(t, w.t, sizeof t);
	t[5].shape[2] = t[5].shape[3] = 1; /* (4,4,1,1): reads the first 16 floats */
	cr_assert_eq(nn_safetensors_write_meta(scratch_path("shape.safetensors"), t, 10, meta, 1,
	                                       err, sizeof err), 0, "%s", err);
	expect_load_fails(net, scratch_path("shape.safetensors"), NULL, GRAFT_EFORMAT,
	                  "graft.1.conv.weight", "(4,4,1,1)");
	memcpy(t, w.t, sizeof t);
	t[2].shape[0] = 3;
	cr_assert_eq(nn_safetensors_write_meta(scratch_path("shape2.safetensors"), t, 10, meta, 1,
	                                       err, sizeof err), 0, "%s", err);
	expect_load_fails(net, scratch_path("shape2.safetensors"), NULL, GRAFT_EFORMAT,
	                  "graft.0.bn.bias", "(3)");
	nn_weights_free(&w);

	/* No such file. */
	expect_load_fails(net, scratch_path("absent.safetensors"), NULL, GRAFT_EIO, NULL, NULL);

	/* A net without a graft cannot take one. */
	char sha2[65];
	small_arch(&a, 0, 0);
	nn_net *bare = build(&a, 9);
	err[0] = 0;
	int rc = nn_graft_load(bare, good, NULL, sha2, err, sizeof err);
	cr_assert_eq(rc, GRAFT_EINVAL, "loading into a net without a graft: %d (%s)", rc,
	             graft_strerror(rc));
	cr_assert_not_null(strstr(err, "no graft"), "message: %s", err);
	cr_assert_not_null(strstr(err, good), "message: %s", err);
	nn_net_free(bare);

	/* After all that, the good file still loads. */
	load(net, good, sha, sha2);
	cr_assert_str_eq(sha2, sha);
	nn_net_free(net);
}

Test(graft, pretrain_refuses_impossible_requests, .init = setup, .fini = teardown)
{
	char err[GRAFT_ERRLEN] = "", sha[65];
	nn_arch a;
	nn_graft_opts o = gopts("target", 5, 1);

	small_arch(&a, 0, 0); /* no graft section */
	int rc = nn_graft_pretrain(&a, &train_ds, mean, stdv, &o, scratch_path("x.safetensors"), sha,
	                           err, sizeof err);
	cr_assert_eq(rc, GRAFT_EINVAL, "no graft layers: %d", rc);
	cr_assert_neq(err[0], 0, "no message");
	small_arch(&a, 1, 0);
	a.in_c = 3; /* the data has 1 channel */
	err[0] = 0;
	rc = nn_graft_pretrain(&a, &train_ds, mean, stdv, &o, scratch_path("x.safetensors"), sha,
	                       err, sizeof err);
	cr_assert_eq(rc, GRAFT_EINVAL, "3-channel graft on 1-channel data: %d", rc);
	cr_assert_neq(err[0], 0, "no message");
	small_arch(&a, 1, 0);
	o.batch = train_ds.n + 1;
	rc = nn_graft_pretrain(&a, &train_ds, mean, stdv, &o, scratch_path("x.safetensors"), sha,
	                       err, sizeof err);
	cr_assert_eq(rc, GRAFT_EINVAL, "batch larger than the data: %d", rc);
	cr_assert_neq(access(scratch_path("x.safetensors"), F_OK), 0, "a file was written");
}

/* ---- 4. search_graft_obtain: determinism and reuse ------------------------ */

static search_graft_req request(const char *source, const char *cache_dir)
{
	return (search_graft_req){ .source = source, .target = &train_ds,
	                           .target_mean = mean, .target_std = stdv, .layers = 2,
	                           .kernel = 3, .channels = GCH, .steps = 5, .batch = BATCH,
	                           .lr = 0.05f, .seed = 1, .cache_dir = cache_dir };
}

static void obtain(const search_graft_req *r, char path[4200], char sha[65], int *reused)
{
	char err[GRAFT_ERRLEN] = "";
	int rc = search_graft_obtain(r, path, 4200, sha, reused, err, sizeof err);

	cr_assert_eq(rc, 0, "search_graft_obtain(%s): %s (%s)", r->source, err,
	             graft_strerror(rc));
	cr_assert_eq(strlen(sha), 64, "sha '%s'", sha);
	cr_assert_eq(access(path, R_OK), 0, "%s does not exist", path);
}

/* How many entries dir holds (not . and ..); bad gets the name of one that
 * does not end in suffix, if any. */
static int count_files(const char *dir, const char *suffix, char *bad, size_t badlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name), sl = strlen(suffix);
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		n++;
		if (len < sl || strcmp(e->d_name + len - sl, suffix))
			snprintf(bad, badlen, "%s", e->d_name);
	}
	closedir(d);
	return n;
}

/* The identity of a file's tensors, computed here. */
static void file_sha(const char *path, char hex[65])
{
	nn_weights w;

	read_weights(path, &w);
	cr_assert_eq(nn_tensors_sha256(w.t, w.n, hex), 0);
	nn_weights_free(&w);
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

Test(graft, obtain_pretrains_once_then_reuses, .init = setup, .fini = teardown)
{
	char c1[512], c2[512], grafts[600], p1[4200], p2[4200], p3[4200], bad[256] = "";
	char s1[65], s2[65], s3[65];
	int reused = -1;
	nn_weights w;

	snprintf(c1, sizeof c1, "%s", scratch_path("cache1/nested")); /* made as needed */
	snprintf(c2, sizeof c2, "%s", scratch_path("cache2"));
	search_graft_req r = request("target", c1);

	obtain(&r, p1, s1, &reused);
	cr_assert_eq(reused, 0, "the first request was taken from an empty cache");
	snprintf(grafts, sizeof grafts, "%s/grafts/", c1);
	cr_assert(has_prefix(p1, grafts), "%s is not in %s", p1, grafts);
	cr_assert_eq(count_files(grafts, ".safetensors", bad, sizeof bad), 1,
	             "the cache holds other files than the graft (e.g. %s)", bad);
	cr_assert_eq(bad[0], 0, "a leftover file in the cache: %s", bad);
	/* What the cache holds is a graft file of the request, hashing to sha. */
	read_weights(p1, &w);
	expect_meta(&w, "format", "graft-module/1");
	expect_meta(&w, "source", "target");
	expect_meta(&w, "layers", "3x4,3x4");
	expect_meta(&w, "steps", "5");
	expect_meta(&w, "seed", "1");
	expect_graft_tensors(&w);
	char hex[65];
	cr_assert_eq(nn_tensors_sha256(w.t, w.n, hex), 0);
	cr_assert_str_eq(hex, s1);
	nn_weights_free(&w);

	/* The same request again: reused, same file, same identity. */
	struct stat st1, st2;
	cr_assert_eq(stat(p1, &st1), 0);
	obtain(&r, p2, s2, &reused);
	cr_assert_eq(reused, 1, "the same request was pretrained again");
	cr_assert_str_eq(p2, p1);
	cr_assert_str_eq(s2, s1);
	cr_assert_eq(stat(p2, &st2), 0);
	cr_assert(st1.st_mtim.tv_sec == st2.st_mtim.tv_sec &&
	          st1.st_mtim.tv_nsec == st2.st_mtim.tv_nsec, "the reused file was rewritten");

	/* Another seed, other steps: another graft, elsewhere. */
	search_graft_req r2 = r;
	r2.seed = 2;
	obtain(&r2, p3, s3, &reused);
	cr_assert_eq(reused, 0, "seed 2 was taken from the cache of seed 1");
	cr_assert_str_neq(p3, p1, "seed 2 has the path of seed 1");
	cr_assert_str_neq(s3, s1, "seed 2 has the sha of seed 1");
	r2 = r;
	r2.steps = 6;
	obtain(&r2, p3, s3, &reused);
	cr_assert_eq(reused, 0, "6 steps were taken from the cache of 5");
	cr_assert_str_neq(p3, p1, "6 steps have the path of 5");
	cr_assert_str_neq(s3, s1, "6 steps have the sha of 5");
	/* Other data (one pixel changed): another key. */
	r2 = r;
	train_ds.pixels[0] ^= 0x40;
	obtain(&r2, p3, s3, &reused);
	train_ds.pixels[0] ^= 0x40;
	cr_assert_eq(reused, 0, "other data was taken from the cache");
	cr_assert_str_neq(p3, p1, "other data has the same path");

	/* A damaged cache entry is not trusted: made again, to the same graft. */
	cr_assert_eq(truncate(p1, 20), 0, "truncate %s", p1);
	obtain(&r, p3, s3, &reused);
	cr_assert_eq(reused, 0, "a truncated cache file was reused");
	cr_assert_str_eq(p3, p1);
	cr_assert_str_eq(s3, s1, "remade: %s, first made: %s", s3, s1);
	file_sha(p1, hex);
	cr_assert_str_eq(hex, s1, "the remade cache file hashes to %s", hex);

	/* A fresh cache: pretrained again, to the very same graft. */
	obtain(&r, p3, s3, &reused);
	cr_assert_eq(reused, 1);
	r.cache_dir = c2;
	obtain(&r, p3, s3, &reused);
	cr_assert_eq(reused, 0, "a fresh cache had the graft");
	cr_assert_str_eq(s3, s1, "pretraining is not deterministic: %s then %s", s1, s3);
	cr_assert_str_eq(base_name(p3), base_name(p1), "the same request has another key");
	cr_assert_neq(strcmp(p3, p1), 0);
}

Test(graft, obtain_random_and_synthetic, .init = setup, .fini = teardown)
{
	char c1[512], p1[4200], p2[4200], s1[65], s2[65];
	int reused = -1;
	nn_weights w;

	snprintf(c1, sizeof c1, "%s", scratch_path("cache"));
	search_graft_req r = request("random", c1);
	obtain(&r, p1, s1, &reused);
	cr_assert_eq(reused, 0);
	read_weights(p1, &w);
	expect_meta(&w, "source", "random");
	expect_graft_tensors(&w);
	nn_weights_free(&w);
	obtain(&r, p2, s2, &reused);
	cr_assert_eq(reused, 1);
	cr_assert_str_eq(s2, s1);

	r = request("synthetic", c1);
	obtain(&r, p2, s2, &reused);
	cr_assert_eq(reused, 0);
	cr_assert_str_neq(p2, p1);
	cr_assert_str_neq(s2, s1, "synthetic and random grafts are the same");
	read_weights(p2, &w);
	expect_meta(&w, "source", "synthetic");
	expect_meta(&w, "input", "1x12x12");
	expect_graft_tensors(&w);
	nn_weights_free(&w);

	/* search_graft_section describes the module the request made. */
	nn_arch a;
	nn_arch_defaults(&a);
	search_graft_section(&r, s2, &a);
	cr_assert_eq(a.graft_nlayers, 2);
	cr_assert(a.graft_kernel[0] == 3 && a.graft_kernel[1] == 3);
	cr_assert(a.graft_channels[0] == GCH && a.graft_channels[1] == GCH);
	cr_assert_str_eq(a.graft_sha256, s2);
	cr_assert_str_eq(a.graft_source, "synthetic");
}

/* Writes a CIFAR-10 binary directory of 3-channel images (2 per batch). */
static void write_cifar(const char *dir)
{
	static uint8_t rec[2][1 + 3072];
	char path[700];

	cr_assert_eq(mkdir(dir, 0700), 0);
	for (int r = 0; r < 2; r++) {
		rec[r][0] = (uint8_t)r;
		for (int i = 1; i <= 3072; i++)
			rec[r][i] = (uint8_t)(i * (r + 3));
	}
	for (int b = 0; b < 6; b++) {
		if (b < 5)
			snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, b + 1);
		else
			snprintf(path, sizeof path, "%s/test_batch.bin", dir);
		FILE *f = fopen(path, "wb");
		cr_assert_not_null(f, "fopen %s", path);
		cr_assert_eq(fwrite(rec, 1, sizeof rec, f), sizeof rec);
		cr_assert_eq(fclose(f), 0);
	}
}

Test(graft, obtain_refuses_bad_sources, .init = setup, .fini = teardown)
{
	char c1[512], grafts[600], path[4200], sha[65], err[GRAFT_ERRLEN] = "";
	int reused = -1;

	snprintf(c1, sizeof c1, "%s", scratch_path("cache"));
	snprintf(grafts, sizeof grafts, "%s/grafts", c1);
	search_graft_req r = request("imagenet", c1);
	int rc = search_graft_obtain(&r, path, sizeof path, sha, &reused, err, sizeof err);
	cr_assert_eq(rc, GRAFT_EINVAL, "unknown source: %d (%s)", rc, graft_strerror(rc));
	cr_assert_eq(reused, 0);
	const char *want[] = { "imagenet", "random", "synthetic", "target", "dataset" };
	for (int i = 0; i < 5; i++)
		cr_assert_not_null(strstr(err, want[i]), "the message lacks '%s': %s", want[i],
		                   err);

	/* "dataset" without a directory is not a source either. */
	err[0] = 0;
	r = request("dataset", c1);
	rc = search_graft_obtain(&r, path, sizeof path, sha, &reused, err, sizeof err);
	cr_assert_eq(rc, GRAFT_EINVAL, "dataset without a dir: %d", rc);
	cr_assert_neq(err[0], 0);

	/* A dataset of 3-channel images for a 1-channel target. */
	write_cifar(scratch_path("rgb"));
	err[0] = 0;
	r.dataset_dir = scratch_path("rgb");
	rc = search_graft_obtain(&r, path, sizeof path, sha, &reused, err, sizeof err);
	cr_assert_lt(rc, 0, "a 3-channel dataset for a 1-channel target was accepted");
	cr_assert_not_null(strstr(err, scratch_path("rgb")), "the message does not name the dir: %s",
	                   err);
	cr_assert_not_null(strstr(err, "3-channel"), "message: %s", err);
	/* A missing directory. */
	err[0] = 0;
	r.dataset_dir = scratch_path("nowhere");
	rc = search_graft_obtain(&r, path, sizeof path, sha, &reused, err, sizeof err);
	cr_assert_lt(rc, 0, "a missing dataset dir was accepted");
	cr_assert_not_null(strstr(err, scratch_path("nowhere")), "message: %s", err);

	/* Bad module shapes. */
	r = request("target", c1);
	r.kernel = 2;
	cr_assert_eq(search_graft_obtain(&r, path, sizeof path, sha, &reused, err, sizeof err),
	             GRAFT_EINVAL, "an even kernel was accepted");
	r = request("target", c1);
	r.layers = 0;
	cr_assert_eq(search_graft_obtain(&r, path, sizeof path, sha, &reused, err, sizeof err),
	             GRAFT_EINVAL, "0 layers were accepted");

	/* None of the failures left anything in the cache. */
	char bad[256] = "";
	cr_assert_eq(count_files(grafts, ".safetensors", bad, sizeof bad), 0,
	             "the failed requests left files in %s (e.g. %s)", grafts, bad);
}
