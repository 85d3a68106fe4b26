/*
 * test_torch_net.c - whole networks against PyTorch: a graft-arch/1 YAML read
 * by proto_arch_load and built by nn_net_from_arch must compute what the same
 * YAML built in PyTorch computes, from the same weight file loaded by name.
 *
 * tests/fixtures/make_net_fixture.py builds each network in PyTorch from the
 * YAML alone (ARCH-FORMAT.md), writes its weights (net_*.safetensors) and the
 * reference numbers (net.bin, GRFXLAY1, one case per architecture, named by
 * the YAML's path from the repository root, which is where `make test` runs).
 * For each architecture this checks, with the weights loaded by nn_net_load:
 *
 *   - the logits in eval mode;
 *   - the logits in train mode (batch statistics; the frozen graft in eval
 *     mode) and every non-graft batch norm's running statistics after it;
 *   - the mean cross-entropy, and the gradient of every trainable tensor after
 *     nn_net_backward of its dlogits; the trainable block holds exactly the
 *     non-graft weights, each once, and no graft tensor;
 *   - every parameter after one nn_net_train_step (SGD lr 0.1, momentum 0.9,
 *     weight decay 5e-4, Nesterov) from freshly reloaded weights, and the
 *     graft's tensors bit-identical to the file.
 *
 * Tolerances (|got - want| <= atol + rtol * |want|):
 *
 *     logits, loss, running statistics, parameters after the step:
 *         atol 1e-4, rtol 1e-4
 *     gradients:
 *         atol 1e-4, rtol 2e-3
 *
 * The reference is computed in float64 from the float32 weights and inputs, so
 * it carries no rounding error of its own beyond the final one; graft computes
 * in float32 through up to ~30 layers (im2col + sgemm, several threads), whose
 * accumulated error is a few 1e-6 relative on O(1) values.  The layer
 * fixtures already bound each op at 1e-5 + 1e-4 rel; a whole net gets ten
 * times the absolute room for the depth.  Gradients pass back through batch
 * norms in train mode, whose mean-subtraction cancels most of each sum, and
 * are summed over the batch and every position, so they get twenty times
 * more relative room; a wrong index, a missed term or a wrong op moves values
 * by O(0.1) relative, far outside either bound.  Parameters after one step
 * move by 0.19 * (g + 5e-4 p), so a gradient within its bound keeps the step
 * within the forward bound.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/nn.h"
#include "proto/proto.h"
#include "tests/support/fixture.h"

#define FWD_ATOL 1e-4
#define FWD_RTOL 1e-4
#define GRAD_ATOL 1e-4
#define GRAD_RTOL 2e-3

TestSuite(torch_net, .timeout = 120);

/* An architecture of the fixture: its YAML (relative to the repository root,
 * also the fixture case's name) and its weight file (in the fixture dir). */
typedef struct net_ref {
	const char *yaml;
	const char *weights;
} net_ref;

static const net_ref FULL = { "tests/fixtures/net_full.yaml", "net_full.safetensors" };
static const net_ref SMALL = { "tests/fixtures/net_small.yaml", "net_small.safetensors" };

/* Everything one architecture's checks share. */
typedef struct rig {
	fixture *f;
	const fixture_case *c;
	nn_arch arch;
	nn_net *net;
	char wpath[1024];
	nn_weights w0;         /* the weight file as written, for unchanged checks */
	nn_tensor *t;          /* the net's named tensors */
	int nt;
	float *params, *grads; /* the trainable block */
	size_t len;
	int n, k;              /* batch, classes */
	const float *x;
	int *y;
} rig;

/* ---- helpers ------------------------------------------------------------ */

static int has_suffix(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);
	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static int is_running_stat(const char *name)
{
	return has_suffix(name, ".running_mean") || has_suffix(name, ".running_var");
}

static int is_graft(const char *name)
{
	return strncmp(name, "graft.", 6) == 0;
}

static int in_block(const rig *r, const nn_tensor *t)
{
	return t->data >= r->params && t->data < r->params + r->len;
}

static const float *need(const rig *r, const char *name, size_t numel)
{
	const float *d = fixture_data(r->c, name, numel);
	cr_assert_not_null(d, "%s: fixture tensor %s missing or of the wrong size (regenerate "
	                   "with /usr/bin/python3 tests/fixtures/make_net_fixture.py)",
	                   r->c->name, name);
	return d;
}

/* Marks the test failed, without stopping it, when got and want differ beyond
 * the tolerance, naming the worst element with both values; returns 1 then. */
static int expect_close(const rig *r, const char *what, const float *got,
                        const float *want, size_t n, double atol, double rtol)
{
	char label[256], msg[1024];
	snprintf(label, sizeof label, "%s: %s", r->c->name, what);
	int bad = fixture_compare_msg(label, got, want, n, atol, rtol, msg, sizeof msg);
	cr_expect_eq(bad, 0, "%s", msg);
	return bad;
}

/* The number of fixture tensors whose name starts with prefix. */
static int count_prefixed(const fixture_case *c, const char *prefix)
{
	int k = 0;
	for (int i = 0; i < c->ntensors; i++)
		if (strncmp(c->tensors[i].name, prefix, strlen(prefix)) == 0)
			k++;
	return k;
}

/* Loads the fixture case, the architecture and the weights, and builds the
 * net for the fixture's batch. */
static void rig_open(rig *r, const net_ref *ref, int threads)
{
	char err[GRAFT_ERRLEN] = "";

	memset(r, 0, sizeof *r);
	nn_set_threads(threads);
	r->f = fixture_load("net.bin", err, sizeof err);
	cr_assert_not_null(r->f, "cannot load net.bin: %s (regenerate with "
	                   "/usr/bin/python3 tests/fixtures/make_net_fixture.py)", err);
	for (int i = 0; i < r->f->ncases; i++)
		if (strcmp(r->f->cases[i].name, ref->yaml) == 0)
			r->c = &r->f->cases[i];
	cr_assert_not_null(r->c, "%s has no case %s", r->f->path, ref->yaml);
	cr_assert_eq(r->c->nparams, 5, "case %s has %d parameters, want 5 (n,c,h,w,classes)",
	             r->c->name, r->c->nparams);

	int rc = proto_arch_load(ref->yaml, &r->arch, err, sizeof err);
	cr_assert_eq(rc, 0, "proto_arch_load(%s): %s (%s)", ref->yaml, err, graft_strerror(rc));
	r->n = r->c->params[0];
	r->k = r->c->params[4];
	cr_assert(r->n >= 1 && r->c->params[1] == r->arch.in_c &&
	          r->c->params[2] == r->arch.in_h && r->c->params[3] == r->arch.in_w &&
	          r->k == r->arch.classes,
	          "case %s is for n=%d %dx%dx%d, %d classes; %s says %dx%dx%d, %d classes",
	          r->c->name, r->n, r->c->params[1], r->c->params[2], r->c->params[3], r->k,
	          ref->yaml, r->arch.in_c, r->arch.in_h, r->arch.in_w, r->arch.classes);

	rc = nn_net_from_arch(&r->net, &r->arch, r->n, 1, err, sizeof err);
	cr_assert_eq(rc, 0, "nn_net_from_arch(%s): %s", ref->yaml, err);
	snprintf(r->wpath, sizeof r->wpath, "%s/%s", fixture_dir(), ref->weights);
	rc = nn_net_load(r->net, r->wpath, "", err, sizeof err);
	cr_assert_eq(rc, 0, "nn_net_load(%s): %s", r->wpath, err);
	rc = nn_safetensors_read(r->wpath, &r->w0, err, sizeof err);
	cr_assert_eq(rc, 0, "nn_safetensors_read(%s): %s", r->wpath, err);

	r->nt = nn_net_tensors(r->net, &r->t);
	cr_assert_gt(r->nt, 0, "nn_net_tensors failed");
	nn_net_param_block(r->net, &r->params, &r->grads, &r->len);

	size_t img = (size_t)r->arch.in_c * r->arch.in_h * r->arch.in_w;
	r->x = need(r, "x", (size_t)r->n * img);
	const float *yf = need(r, "y", (size_t)r->n);
	r->y = malloc(sizeof(int) * (size_t)r->n);
	cr_assert_not_null(r->y);
	for (int i = 0; i < r->n; i++) {
		r->y[i] = (int)yf[i];
		cr_assert(r->y[i] >= 0 && r->y[i] < r->k && (float)r->y[i] == yf[i],
		          "case %s: label %d is %g", r->c->name, i, (double)yf[i]);
	}
}

static void rig_close(rig *r)
{
	free(r->y);
	free(r->t);
	nn_weights_free(&r->w0);
	nn_net_free(r->net);
	fixture_free(r->f);
}

/* The file's copy of one of the net's tensors. */
static const nn_tensor *original(const rig *r, const nn_tensor *t)
{
	const nn_tensor *o = nn_weights_find(&r->w0, t->name);
	cr_assert_not_null(o, "%s has no tensor %s", r->wpath, t->name);
	cr_assert_eq(nn_tensor_numel(o), nn_tensor_numel(t), "%s: %s has the wrong size",
	             r->wpath, t->name);
	return o;
}

/* The trainable block holds every non-graft weight and bias, each once, and
 * nothing else; graft tensors and running statistics live outside it, so the
 * graft has no gradient slot and no optimizer state. */
static void check_layout(const rig *r)
{
	size_t covered = 0;
	int trainable = 0, graft = 0;

	for (int i = 0; i < r->nt; i++) {
		const nn_tensor *t = &r->t[i];
		int want_in = !is_graft(t->name) && !is_running_stat(t->name);
		cr_expect_eq(in_block(r, t), want_in, "%s: %s is %s the trainable block",
		             r->c->name, t->name, in_block(r, t) ? "inside" : "outside");
		if (in_block(r, t)) {
			covered += (size_t)nn_tensor_numel(t);
			trainable++;
		}
		graft += is_graft(t->name);
	}
	cr_expect_eq(covered, r->len, "%s: named trainable tensors cover %zu of %zu floats",
	             r->c->name, covered, r->len);
	cr_expect_eq(trainable, count_prefixed(r->c, "grad:"),
	             "%s: %d trainable tensors in the net, %d in PyTorch", r->c->name,
	             trainable, count_prefixed(r->c, "grad:"));
	cr_expect_eq(count_prefixed(r->c, "grad:graft."), 0,
	             "%s: PyTorch has gradients for the graft", r->c->name);
	cr_expect_eq(graft > 0, r->arch.graft_nlayers > 0, "%s: %d graft tensors for %d layers",
	             r->c->name, graft, r->arch.graft_nlayers);
}

/* Compares each non-graft running statistic with after:<name>, and the graft's
 * (which must not move) with the file, bit for bit. */
static void check_running_stats(const rig *r, const char *when)
{
	char key[NN_NAME_MAX + 16], what[NN_NAME_MAX + 64];
	int checked = 0;

	for (int i = 0; i < r->nt; i++) {
		const nn_tensor *t = &r->t[i];
		size_t m = (size_t)nn_tensor_numel(t);
		if (!is_running_stat(t->name))
			continue;
		if (is_graft(t->name)) {
			cr_expect(!memcmp(t->data, original(r, t)->data, m * sizeof(float)),
			          "%s: frozen %s changed %s", r->c->name, t->name, when);
			continue;
		}
		snprintf(key, sizeof key, "after:%s", t->name);
		snprintf(what, sizeof what, "%s %s", t->name, when);
		expect_close(r, what, t->data, need(r, key, m), m, FWD_ATOL, FWD_RTOL);
		checked++;
	}
	cr_expect_eq(checked, count_prefixed(r->c, "after:"),
	             "%s: %d running statistics checked, PyTorch has %d", r->c->name,
	             checked, count_prefixed(r->c, "after:"));
}

/* ---- whole networks against PyTorch ------------------------------------ */

static void forward_backward(rig *r)
{
	size_t nk = (size_t)r->n * r->k;

	const float *out = nn_net_forward(r->net, r->x, r->n, 0);
	cr_assert_not_null(out, "nn_net_forward (eval) refused batch %d", r->n);
	expect_close(r, "logits in eval mode", out, need(r, "logits_eval", nk), nk,
	             FWD_ATOL, FWD_RTOL);

	out = nn_net_forward(r->net, r->x, r->n, 1);
	cr_assert_not_null(out, "nn_net_forward (train) refused batch %d", r->n);
	expect_close(r, "logits in train mode", out, need(r, "logits_train", nk), nk,
	             FWD_ATOL, FWD_RTOL);
	check_running_stats(r, "after a train-mode forward");

	float *dlogits = malloc(sizeof(float) * nk), loss;
	cr_assert_not_null(dlogits);
	loss = (float)nn_softmax_xent(r->n, r->k, out, r->y, dlogits);
	expect_close(r, "loss", &loss, need(r, "loss", 1), 1, FWD_ATOL, FWD_RTOL);

	/* Garbage in the gradient block: backward must overwrite, not add. */
	for (size_t i = 0; i < r->len; i++)
		r->grads[i] = 1e3f;
	nn_net_backward(r->net, dlogits);
	char key[NN_NAME_MAX + 16], what[NN_NAME_MAX + 32];
	for (int i = 0; i < r->nt; i++) {
		const nn_tensor *t = &r->t[i];
		if (!in_block(r, t))
			continue;
		size_t m = (size_t)nn_tensor_numel(t);
		snprintf(key, sizeof key, "grad:%s", t->name);
		snprintf(what, sizeof what, "gradient of %s", t->name);
		expect_close(r, what, r->grads + (t->data - r->params), need(r, key, m), m,
		             GRAD_ATOL, GRAD_RTOL);
	}
	free(dlogits);
}

static void train_step(rig *r)
{
	char err[GRAFT_ERRLEN] = "", key[NN_NAME_MAX + 16], what[NN_NAME_MAX + 32];
	nn_sgd opt = { 0.9f, 5e-4f, 1 };

	/* Back to the file's weights and running statistics; no step has run, so
	 * the momentum buffers are still zero, as PyTorch's are at its first. */
	int rc = nn_net_load(r->net, r->wpath, "", err, sizeof err);
	cr_assert_eq(rc, 0, "reloading %s: %s", r->wpath, err);
	float loss = (float)nn_net_train_step(r->net, r->x, r->y, r->n, &opt, 0.1f);
	expect_close(r, "loss of nn_net_train_step", &loss, need(r, "loss", 1), 1,
	             FWD_ATOL, FWD_RTOL);
	check_running_stats(r, "after nn_net_train_step");

	for (int i = 0; i < r->nt; i++) {
		const nn_tensor *t = &r->t[i];
		size_t m = (size_t)nn_tensor_numel(t);
		if (is_graft(t->name)) {
			cr_expect(!memcmp(t->data, original(r, t)->data, m * sizeof(float)),
			          "%s: frozen %s changed in a training step", r->c->name, t->name);
		} else if (in_block(r, t)) {
			snprintf(key, sizeof key, "step:%s", t->name);
			snprintf(what, sizeof what, "%s after one SGD step", t->name);
			expect_close(r, what, t->data, need(r, key, m), m, FWD_ATOL, FWD_RTOL);
		}
	}
}

static void matches_pytorch(const net_ref *ref, int threads)
{
	rig r;
	rig_open(&r, ref, threads);
	check_layout(&r);
	forward_backward(&r);
	/* On oneDNN the whole net runs as one plan, blocked from layer to
	 * layer; a plan that failed to build would fall back unseen. */
	int planned = nn_conv_engine() == NN_ENGINE_ONEDNN;
	cr_assert_eq(nn_net_planned(r.net), planned, "%s: the net ran %s", ref->yaml,
	             planned ? "node by node, not on a oneDNN plan" : "on a plan");
	train_step(&r);
	rig_close(&r);
}

Test(torch_net, full_arch_matches_pytorch_2_threads)
{
	matches_pytorch(&FULL, 2);
}

Test(torch_net, full_arch_matches_pytorch_1_thread)
{
	matches_pytorch(&FULL, 1);
}

Test(torch_net, small_net_matches_pytorch_1_thread)
{
	matches_pytorch(&SMALL, 1);
}

Test(torch_net, small_net_matches_pytorch_2_threads)
{
	matches_pytorch(&SMALL, 2);
}

/* The same nets on the reference convolutions (the default is oneDNN). */
Test(torch_net, full_arch_matches_pytorch_on_the_reference_path)
{
	nn_conv_set_engine(NN_ENGINE_REFERENCE);
	matches_pytorch(&FULL, 2);
}

Test(torch_net, small_net_matches_pytorch_on_the_reference_path)
{
	nn_conv_set_engine(NN_ENGINE_REFERENCE);
	matches_pytorch(&SMALL, 1);
}

/* ---- nn_net_load refuses a file that does not fit the net ---------------- */

/* A temporary directory for rewritten weight files, removed by tmp_done. */
typedef struct tmpdir {
	char dir[64];
	char path[128];
} tmpdir;

static void tmp_init(tmpdir *d)
{
	strcpy(d->dir, "/tmp/graft-torch-net-XXXXXX");
	cr_assert_not_null(mkdtemp(d->dir), "mkdtemp failed");
	snprintf(d->path, sizeof d->path, "%s/w.safetensors", d->dir);
}

static void tmp_done(tmpdir *d)
{
	unlink(d->path);
	rmdir(d->dir);
}

/* Writes the tensors of w as a file (with the given edit applied by the
 * caller) and tries to load it into the rig's net; returns nn_net_load's code
 * with its message in err. */
static int load_edited(rig *r, const tmpdir *d, const nn_tensor *t, int n, char *err,
                       size_t errlen)
{
	char werr[GRAFT_ERRLEN] = "";
	int rc = nn_safetensors_write(d->path, t, n, werr, sizeof werr);
	cr_assert_eq(rc, 0, "nn_safetensors_write(%s): %s", d->path, werr);
	err[0] = '\0';
	return nn_net_load(r->net, d->path, "", err, errlen);
}

Test(torch_net, load_refuses_a_missing_tensor)
{
	rig r;
	tmpdir d;
	char err[GRAFT_ERRLEN];
	const char *gone[] = { "blocks.4.skip.bn.running_var", "graft.1.conv.weight",
	                       "head.bias", "blocks.1.shortcut.conv.weight" };

	rig_open(&r, &SMALL, 1);
	tmp_init(&d);
	nn_tensor *t = malloc(sizeof(nn_tensor) * (size_t)r.w0.n);
	cr_assert_not_null(t);
	for (size_t g = 0; g < sizeof gone / sizeof gone[0]; g++) {
		int n = 0;
		for (int i = 0; i < r.w0.n; i++)
			if (strcmp(r.w0.t[i].name, gone[g]) != 0)
				t[n++] = r.w0.t[i];
		cr_assert_eq(n, r.w0.n - 1, "%s has no tensor %s to leave out", r.wpath, gone[g]);
		int rc = load_edited(&r, &d, t, n, err, sizeof err);
		cr_expect_eq(rc, GRAFT_EFORMAT, "loading a file without %s: rc %d (%s), want "
		             "GRAFT_EFORMAT", gone[g], rc, graft_strerror(rc));
		cr_expect(strstr(err, gone[g]) != NULL,
		          "the message for a missing %s does not name it: \"%s\"", gone[g], err);
	}
	/* The complete file still loads, and a tensor the net lacks is ignored. */
	for (int i = 0; i < r.w0.n; i++)
		t[i] = r.w0.t[i];
	cr_expect_eq(load_edited(&r, &d, t, r.w0.n, err, sizeof err), 0, "%s", err);
	nn_tensor *more = malloc(sizeof(nn_tensor) * ((size_t)r.w0.n + 1));
	cr_assert_not_null(more);
	memcpy(more, t, sizeof(nn_tensor) * (size_t)r.w0.n);
	more[r.w0.n] = r.w0.t[0];
	snprintf(more[r.w0.n].name, NN_NAME_MAX, "blocks.99.conv.weight");
	cr_expect_eq(load_edited(&r, &d, more, r.w0.n + 1, err, sizeof err), 0,
	             "an extra tensor is refused: %s", err);
	free(more);
	free(t);
	tmp_done(&d);
	rig_close(&r);
}

Test(torch_net, load_refuses_a_wrong_shape)
{
	rig r;
	tmpdir d;
	char err[GRAFT_ERRLEN];
	/* Same element count in another shape, so a loader that compared sizes
	 * only would accept it; and a shape of another element count. */
	struct {
		const char *name;
		int ndim;
		int64_t shape[4];
	} bad[] = {
		{ "blocks.1.conv1.weight", 4, { 4, 6, 3, 3 } },  /* is (6,4,3,3) */
		{ "head.weight", 2, { 6, 3 } },                  /* is (3,6) */
		{ "graft.0.conv.weight", 4, { 3, 2, 1, 9 } },    /* is (3,2,3,3) */
		{ "stem.bn.weight", 2, { 2, 2 } },               /* is (4) */
		{ "blocks.5.dw.weight", 4, { 4, 1, 3, 3 } },     /* is (5,1,3,3): fewer floats */
	};

	rig_open(&r, &SMALL, 1);
	tmp_init(&d);
	nn_tensor *t = malloc(sizeof(nn_tensor) * (size_t)r.w0.n);
	cr_assert_not_null(t);
	for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
		int found = 0;
		for (int i = 0; i < r.w0.n; i++) {
			t[i] = r.w0.t[i];
			if (strcmp(t[i].name, bad[b].name) == 0) {
				found = 1;
				t[i].ndim = bad[b].ndim;
				memcpy(t[i].shape, bad[b].shape, sizeof t[i].shape);
			}
		}
		cr_assert(found, "%s has no tensor %s", r.wpath, bad[b].name);
		int rc = load_edited(&r, &d, t, r.w0.n, err, sizeof err);
		cr_expect_eq(rc, GRAFT_EFORMAT, "loading %s with a wrong shape: rc %d (%s), want "
		             "GRAFT_EFORMAT", bad[b].name, rc, graft_strerror(rc));
		cr_expect(strstr(err, bad[b].name) != NULL,
		          "the message for %s's wrong shape does not name it: \"%s\"",
		          bad[b].name, err);
	}
	free(t);
	tmp_done(&d);
	rig_close(&r);
}
