/*
 * test_evaluate.c - evaluating one candidate (search_evaluate) and weight
 * inheritance (search_inherit).  The metrics must be sane and repeatable, the
 * saved weights must read back, inheritance must copy exactly the tensors
 * whose name and shape are unchanged and never the graft's, inheriting must
 * beat a fresh start at equal steps, and failures must come back as codes with
 * a sentence.
 *
 * The data is nn_synth_dataset's: 600 1x12x12 images, 450 to train on and 150
 * to validate.  Everything runs on one thread, where nn promises bit-for-bit
 * repeatability.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nn/nn.h"
#include "search/search.h"
#include "tests/support/scratch.h"

#define SIDE 12
#define NIMAGES 600
#define NVAL 150
#define BATCH 16
#define GCH 4 /* graft channels */

TestSuite(evaluate, .timeout = 120);

/* ---- fixtures -------------------------------------------------------------- */

static nn_dataset train_ds, val_ds;
static float mean[NN_MAX_CHANNELS], stdv[NN_MAX_CHANNELS];

static void setup(void)
{
	nn_set_threads(1);
	scratch_make("evaluate");
	scratch_synth_split(NIMAGES, NVAL, SIDE, 42, &train_ds, &val_ds, mean, stdv);
}

static void teardown(void)
{
	nn_dataset_free(&train_ds);
	nn_dataset_free(&val_ds);
	scratch_remove();
}

/* Stem 3x3x8, optionally a graft of 2 layers of 3x3x4, a stride-2 conv3 of 8
 * and a stride-2 conv3 of width1, the linear head. */
static void small_arch(nn_arch *a, int graft, int width1, int steps, uint64_t seed)
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
	a->blocks[1] = (nn_block_spec){ NN_OP_CONV3, width1, 2, NN_SKIP_NONE };
	a->train.steps = steps;
	a->train.batch = BATCH;
	a->train.lr = 0.05f;
	a->train.seed = seed;
}

static search_eval_in eval_in(const nn_arch *a)
{
	return (search_eval_in){ .arch = a, .train = &train_ds, .val = &val_ds,
	                         .mean = mean, .std = stdv };
}

static search_eval_out run(const search_eval_in *in)
{
	char err[GRAFT_ERRLEN] = "";
	search_eval_out out;
	int rc = search_evaluate(in, &out, err, sizeof err);

	cr_assert_eq(rc, 0, "search_evaluate: %s (%s)", err, graft_strerror(rc));
	return out;
}

static void read_weights(const char *path, nn_weights *w)
{
	char err[GRAFT_ERRLEN] = "";
	int rc = nn_safetensors_read(path, w, err, sizeof err);

	cr_assert_eq(rc, 0, "nn_safetensors_read %s: %s", path, err);
}

/* Trains small_arch(graft, 16, steps, 5) and reads its weights into *w. */
static search_eval_out train_parent(int graft, int steps, const char *gpath,
                                    const char *gsha, nn_weights *w)
{
	nn_arch a;
	small_arch(&a, graft, 16, steps, 5);
	search_eval_in in = eval_in(&a);
	in.graft_path = gpath;
	in.graft_sha = gsha;
	in.save_path = scratch_path("parent.safetensors");
	search_eval_out out = run(&in);
	read_weights(in.save_path, w);
	return out;
}

static nn_net *build(const nn_arch *a)
{
	char err[GRAFT_ERRLEN] = "";
	nn_net *net = NULL;
	int rc = nn_net_from_arch(&net, a, a->train.batch, a->train.seed, err, sizeof err);

	cr_assert_eq(rc, 0, "nn_net_from_arch: %s (%s)", err, graft_strerror(rc));
	return net;
}

static int same_shape(const nn_tensor *a, const nn_tensor *b)
{
	if (a->ndim != b->ndim)
		return 0;
	for (int d = 0; d < a->ndim; d++)
		if (a->shape[d] != b->shape[d])
			return 0;
	return 1;
}

static void expect_bits(const float *a, const float *b, int64_t n, const char *name,
                        const char *what)
{
	for (int64_t i = 0; i < n; i++)
		cr_assert(memcmp(&a[i], &b[i], sizeof(float)) == 0,
		          "%s: element %lld of %lld is %.9g, %s has %.9g", name, (long long)i,
		          (long long)n, (double)a[i], what, (double)b[i]);
}

/* Builds child twice from the same seed, inherits parent into one, and checks
 * every tensor: name and shape in parent -> parent's bits, else the fresh
 * twin's bits.  Returns how many matched; the count must equal
 * search_inherit's. */
static int check_inherit(const nn_arch *child, const nn_weights *parent)
{
	nn_net *net = build(child), *fresh = build(child);
	nn_tensor *t, *f;
	int n = nn_net_tensors(net, &t), nf = nn_net_tensors(fresh, &f), match = 0;
	int got = search_inherit(net, parent);

	cr_assert_eq(n, nf);
	for (int i = 0; i < n; i++) {
		const nn_tensor *p = nn_weights_find(parent, t[i].name);
		int64_t m = nn_tensor_numel(&t[i]);
		if (p && same_shape(p, &t[i]) && strncmp(t[i].name, "graft.", 6) != 0) {
			expect_bits(t[i].data, p->data, m, t[i].name, "the parent");
			match++;
		} else {
			expect_bits(t[i].data, f[i].data, m, t[i].name, "the fresh init");
		}
	}
	cr_assert_eq(got, match, "search_inherit copied %d tensors, %d match", got, match);
	free(t);
	free(f);
	nn_net_free(net);
	nn_net_free(fresh);
	return match;
}

/* ---- metrics --------------------------------------------------------------- */

Test(evaluate, metrics_deterministic_and_saved, .init = setup, .fini = teardown)
{
	nn_arch a;
	small_arch(&a, 0, 16, 40, 7);
	search_eval_in in = eval_in(&a);
	in.save_path = scratch_path("w.safetensors");
	search_eval_out o1 = run(&in);
	in.save_path = NULL;
	search_eval_out o2 = run(&in);

	cr_expect(o1.val_accuracy >= 0 && o1.val_accuracy <= 1, "accuracy %g",
	          o1.val_accuracy);
	cr_expect(isfinite(o1.val_loss) && o1.val_loss > 0, "val loss %g", o1.val_loss);
	cr_expect(isfinite(o1.train_loss) && o1.train_loss > 0, "train loss %g",
	          o1.train_loss);
	cr_expect_eq(o1.steps, 40);
	cr_expect_eq(o1.inherited, 0);
	cr_expect(o1.wall_s > 0 && o1.cpu_s > 0, "wall %g, cpu %g", o1.wall_s, o1.cpu_s);
	/* Better than chance (1 / classes) after 40 steps. */
	cr_expect_gt(o1.val_accuracy, 1.5 / train_ds.classes, "accuracy %g", o1.val_accuracy);

	nn_net *net = build(&a);
	cr_expect_eq(o1.params, nn_net_params(net), "params %lld vs %lld",
	             (long long)o1.params, (long long)nn_net_params(net));
	cr_expect_eq(o1.flops, nn_net_flops(net));
	cr_expect_eq(o1.params, search_arch_params(&a));
	cr_expect_eq(o1.flops, search_arch_flops(&a));

	cr_expect_eq(memcmp(&o1.val_accuracy, &o2.val_accuracy, sizeof(double)), 0,
	             "accuracy %.17g vs %.17g", o1.val_accuracy, o2.val_accuracy);
	cr_expect_eq(memcmp(&o1.val_loss, &o2.val_loss, sizeof(double)), 0,
	             "val loss %.17g vs %.17g", o1.val_loss, o2.val_loss);
	cr_expect_eq(memcmp(&o1.train_loss, &o2.train_loss, sizeof(double)), 0,
	             "train loss %.17g vs %.17g", o1.train_loss, o2.train_loss);

	/* The saved file holds every tensor of the net and loads back into it,
	 * giving the same accuracy as the evaluation measured. */
	nn_weights w = { 0 };
	nn_tensor *t;
	read_weights(scratch_path("w.safetensors"), &w);
	int n = nn_net_tensors(net, &t);
	cr_expect_eq(w.n, n, "file has %d tensors, net %d", w.n, n);
	free(t);
	cr_expect_eq(search_inherit(net, &w), n);
	double acc = nn_evaluate(net, &val_ds, mean, stdv, NULL, NULL);
	cr_expect_eq(acc, o1.val_accuracy, "reloaded accuracy %.17g vs %.17g", acc,
	             o1.val_accuracy);
	nn_weights_free(&w);
	nn_net_free(net);
}

/* ---- inheritance ----------------------------------------------------------- */

Test(evaluate, inherit_matching_tensors_only, .init = setup, .fini = teardown)
{
	nn_weights pw = { 0 };
	nn_arch child;
	nn_tensor *t;

	train_parent(0, 30, NULL, NULL, &pw);

	/* An identical child inherits every tensor. */
	small_arch(&child, 0, 16, 10, 9);
	nn_net *net = build(&child);
	int n = nn_net_tensors(net, &t);
	free(t);
	nn_net_free(net);
	cr_expect_eq(check_inherit(&child, &pw), n, "identical child");

	/* Block 1 widened 16 -> 24: its conv and BN and the head's weight change
	 * shape; everything else (stem, block 0, head bias) is inherited. */
	small_arch(&child, 0, 24, 10, 9);
	int m = check_inherit(&child, &pw);
	cr_expect(m > 0 && m < n, "widened child inherited %d of %d", m, n);
	cr_expect_eq(m, n - 6, "widened child inherited %d, expected %d", m, n - 6);

	/* search_evaluate reports the same count. */
	search_eval_in in = eval_in(&child);
	in.parent = &pw;
	search_eval_out o = run(&in);
	cr_expect_eq(o.inherited, m);

	cr_expect_eq(search_inherit(NULL, &pw), GRAFT_EINVAL);
	nn_weights_free(&pw);
}

Test(evaluate, inheritance_helps_at_equal_steps, .init = setup, .fini = teardown)
{
	nn_weights pw = { 0 };
	nn_arch child;
	search_eval_out p = train_parent(0, 200, NULL, NULL, &pw);

	/* The identical child gets 10 steps.  Widening the last block re-initializes
	 * it and the head (11 of 17 tensors inherited), which 10 steps cannot
	 * recover from (0.047 inherited vs 0.053 fresh when measured), so the
	 * widened child gets 40 steps, still a fifth of the parent's. */
	for (int width = 16; width <= 24; width += 8) {
		small_arch(&child, 0, width, width == 16 ? 10 : 40, 11);
		search_eval_in in = eval_in(&child);
		search_eval_out fresh = run(&in);
		in.parent = &pw;
		search_eval_out inh = run(&in);
		cr_log_info("width %d: parent %.4f @200, child @%d fresh %.4f, inherited "
		            "%.4f (%d tensors)", width, p.val_accuracy, child.train.steps,
		            fresh.val_accuracy,
		            inh.val_accuracy, inh.inherited);
		cr_expect_gt(inh.val_accuracy, fresh.val_accuracy + 0.05,
		             "width %d: inherited %.4f vs fresh %.4f", width, inh.val_accuracy,
		             fresh.val_accuracy);
	}
	nn_weights_free(&pw);
}

/* ---- the graft ------------------------------------------------------------- */

static void make_graft(const char *path, char sha[65])
{
	char err[GRAFT_ERRLEN] = "";
	nn_arch a;
	nn_graft_opts o = { .source = "random", .steps = 10, .batch = BATCH, .lr = 0.05f,
	                    .seed = 3 };

	small_arch(&a, 1, 16, 0, 0);
	int rc = nn_graft_pretrain(&a, &train_ds, mean, stdv, &o, path, sha, err, sizeof err);
	cr_assert_eq(rc, 0, "nn_graft_pretrain: %s (%s)", err, graft_strerror(rc));
}

Test(evaluate, graft_from_file_not_parent, .init = setup, .fini = teardown)
{
	char sha[65];
	const char *gpath = scratch_path("g.safetensors");
	nn_weights pw = { 0 }, gw = { 0 }, cw = { 0 };
	nn_arch child;

	make_graft(gpath, sha);
	train_parent(1, 20, gpath, sha, &pw);
	/* Spoil the parent's graft tensors: a child must not pick them up. */
	int spoiled = 0;
	for (int i = 0; i < pw.n; i++)
		if (!strncmp(pw.t[i].name, "graft.", 6)) {
			for (int64_t k = 0; k < nn_tensor_numel(&pw.t[i]); k++)
				pw.t[i].data[k] += 1.0f;
			spoiled++;
		}
	cr_assert_gt(spoiled, 0, "the parent's file has no graft tensors");

	small_arch(&child, 1, 16, 10, 13);
	int m = check_inherit(&child, &pw);
	cr_expect_eq(m, pw.n - spoiled, "inherited %d of %d non-graft tensors", m,
	             pw.n - spoiled);

	search_eval_in in = eval_in(&child);
	in.graft_path = gpath;
	in.graft_sha = sha;
	in.parent = &pw;
	in.save_path = scratch_path("child.safetensors");
	search_eval_out o = run(&in);
	cr_expect_eq(o.inherited, m);
	read_weights(gpath, &gw);
	read_weights(in.save_path, &cw);
	for (int i = 0; i < gw.n; i++) {
		const nn_tensor *c = nn_weights_find(&cw, gw.t[i].name);
		cr_assert_not_null(c, "the child has no '%s'", gw.t[i].name);
		expect_bits(c->data, gw.t[i].data, nn_tensor_numel(c), c->name,
		            "the graft file");
	}
	nn_weights_free(&pw);
	nn_weights_free(&gw);
	nn_weights_free(&cw);
}

Test(evaluate, feature_cache_same_accuracy, .init = setup, .fini = teardown)
{
	char sha[65], err[GRAFT_ERRLEN] = "";
	const char *gpath = scratch_path("g.safetensors");
	nn_arch a;

	make_graft(gpath, sha);
	small_arch(&a, 1, 16, 40, 17);
	nn_net *net = build(&a);
	int rc = nn_graft_load(net, gpath, sha, (char[65]){ 0 }, err, sizeof err);
	cr_assert_eq(rc, 0, "nn_graft_load: %s", err);
	size_t feat = nn_graft_feature_size(net);
	nn_half *tf = malloc(sizeof(nn_half) * feat * train_ds.n);
	nn_half *vf = malloc(sizeof(nn_half) * feat * val_ds.n);
	cr_assert(tf && vf);
	cr_assert_eq(nn_graft_features(net, &train_ds, mean, stdv, tf), 0);
	cr_assert_eq(nn_graft_features(net, &val_ds, mean, stdv, vf), 0);
	nn_net_free(net);

	search_eval_in in = eval_in(&a);
	in.graft_path = gpath;
	in.graft_sha = sha;
	search_eval_out plain = run(&in);
	in.train_feats = tf;
	in.val_feats = vf;
	search_eval_out cached = run(&in);
	/* The cache is half precision: within two images of the split, and
	 * about a percent of the loss (Fashion-MNIST: issue 11's note). */
	cr_expect(fabs(plain.val_accuracy - cached.val_accuracy) <= 2.0 / val_ds.n + 1e-9,
	          "accuracy %.6f without the cache, %.6f with", plain.val_accuracy,
	          cached.val_accuracy);
	cr_expect(fabs(plain.val_loss - cached.val_loss) <= 1e-2 * plain.val_loss,
	          "loss %.6f vs %.6f", plain.val_loss, cached.val_loss);
	free(tf);
	free(vf);
}

/* ---- errors ---------------------------------------------------------------- */

Test(evaluate, errors, .init = setup, .fini = teardown)
{
	char err[GRAFT_ERRLEN] = "", sha[65];
	search_eval_out o;
	nn_arch a;

	/* An even stem kernel does not build. */
	small_arch(&a, 0, 16, 5, 1);
	a.stem_kernel = 4;
	search_eval_in in = eval_in(&a);
	int rc = search_evaluate(&in, &o, err, sizeof err);
	cr_expect(rc < 0, "even kernel: rc %d", rc);
	cr_expect_neq(err[0], '\0', "even kernel: no message");

	/* A graft without a file, and a graft file that is not there. */
	small_arch(&a, 1, 16, 5, 1);
	in = eval_in(&a);
	err[0] = '\0';
	rc = search_evaluate(&in, &o, err, sizeof err);
	cr_expect_eq(rc, GRAFT_EINVAL, "no graft path: rc %d (%s)", rc, err);
	cr_expect_neq(err[0], '\0');
	in.graft_path = scratch_path("missing.safetensors");
	err[0] = '\0';
	rc = search_evaluate(&in, &o, err, sizeof err);
	cr_expect_eq(rc, GRAFT_EIO, "missing graft file: rc %d (%s)", rc, err);
	cr_expect(strstr(err, "missing.safetensors") != NULL, "message: %s", err);

	/* A graft file whose identity is not the one asked for. */
	make_graft(scratch_path("g.safetensors"), sha);
	in.graft_path = scratch_path("g.safetensors");
	in.graft_sha = "0000000000000000000000000000000000000000000000000000000000000000";
	err[0] = '\0';
	rc = search_evaluate(&in, &o, err, sizeof err);
	cr_expect_eq(rc, GRAFT_EFORMAT, "wrong sha: rc %d (%s)", rc, err);
	cr_expect_neq(err[0], '\0');

	/* Missing arguments. */
	cr_expect_eq(search_evaluate(NULL, &o, err, sizeof err), GRAFT_EINVAL);
	in.train = NULL;
	cr_expect_eq(search_evaluate(&in, &o, err, sizeof err), GRAFT_EINVAL);
}

/* Issue 12: a training that checkpoints can be killed and go on from its
 * last checkpoint: its weights, its momentum and its step; and a climb's
 * optimizer state file holds the momentum training ended with. */
Test(evaluate, a_checkpoint_holds_weights_momentum_and_step_and_a_resume_starts_there,
     .init = setup, .fini = teardown)
{
	nn_arch a;
	search_eval_out out;
	char err[GRAFT_ERRLEN], ckpt[600], optim[600], w[600];
	snprintf(ckpt, sizeof(ckpt), "%s", scratch_path("run.ckpt"));
	snprintf(optim, sizeof(optim), "%s", scratch_path("run.optim"));
	snprintf(w, sizeof(w), "%s", scratch_path("run.safetensors"));

	small_arch(&a, 0, 8, 40, 3);
	search_eval_in in = eval_in(&a);
	in.checkpoint = ckpt;
	in.checkpoint_every = 15;
	in.optim_save = optim;
	in.save_path = w;
	cr_assert_eq(search_evaluate(&in, &out, err, sizeof(err)), 0, "%s", err);
	double straight = out.val_accuracy;

	/* The last checkpoint before the end: step 30. */
	nn_net *net;
	int step = -1;
	cr_assert_eq(nn_net_from_arch(&net, &a, BATCH, 9, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(nn_net_load(net, ckpt, "", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(nn_net_load_optim(net, ckpt, &step, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(step, 30);
	double at30 = nn_evaluate(net, &val_ds, mean, stdv, NULL, NULL);
	cr_assert_eq(nn_net_load_optim(net, optim, &step, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(step, 40, "the optimizer state of the finished training");
	nn_net_free(net);

	/* Resumed from the checkpoint, it trains the 10 steps left. */
	search_eval_in again = eval_in(&a);
	again.resume = ckpt;
	cr_assert_eq(search_evaluate(&again, &out, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(out.start_step, 30);
	cr_assert(fabs(out.val_accuracy - straight) < 0.15, "resumed %g, straight %g",
	          out.val_accuracy, straight);
	/* With no steps left, a resume is the checkpoint's network exactly. */
	nn_arch done = a;
	done.train.steps = 30;
	search_eval_in none_left = eval_in(&done);
	none_left.resume = ckpt;
	cr_assert_eq(search_evaluate(&none_left, &out, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(out.val_accuracy, at30, "resumed %g, the checkpoint's network %g",
	             out.val_accuracy, at30);

	/* A checkpoint of another network is refused with a sentence. */
	nn_arch b;
	small_arch(&b, 0, 16, 40, 3);
	search_eval_in other = eval_in(&b);
	other.resume = ckpt;
	cr_assert_neq(search_evaluate(&other, &out, err, sizeof(err)), 0);
	cr_assert(strstr(err, "run.ckpt"), "%s", err);
}
