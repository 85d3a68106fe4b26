/*
 * test_torch_layers.c - the layers, the SGD step and the cosine schedule of
 * nn/nn.h against PyTorch 1.13, through the fixtures that
 * tests/fixtures/make_fixtures.py writes (format in tests/support/fixture.h).
 *
 * Every case of every fixture runs the C function(s) and compares every output
 * and gradient.  Tolerances (|got - want| <= atol + rtol * |want|):
 *
 *     forward outputs, running statistics, SGD parameters, learning rates:
 *         atol 1e-5, rtol 1e-4
 *     gradients:
 *         atol 1e-4, rtol 1e-3
 *
 * Both sides compute in float32 but sum in different orders (im2col + sgemm
 * or direct loops here, PyTorch's own kernels there), so equality to the bit is
 * not expected.  The values are O(1) by construction, so these bounds sit
 * well above the rounding noise (the largest difference measured when the
 * tests were written was 3% of its bound) and far below any real mistake (a
 * wrong index or a missed term moves values by O(0.1)).  Gradients get ten
 * times more room because they are sums over the batch and the positions.
 *
 * Backward functions accumulate, so every gradient buffer starts at zero, and
 * each backward is then called a second time into the same buffers, which must
 * then hold twice the reference.  Outputs the API says are overwritten are
 * pre-filled with garbage, and so is the conv workspace.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/nn.h"
#include "tests/support/fixture.h"

#define FWD_ATOL 1e-5
#define FWD_RTOL 1e-4
#define GRAD_ATOL 1e-4
#define GRAD_RTOL 1e-3

/* What an overwritten output holds before the call: large enough to show in
 * any comparison if the function forgot to write an element. */
#define GARBAGE 1e30f

TestSuite(torch_layers, .timeout = 120);

/* ---- helpers ------------------------------------------------------------ */

static fixture *load(const char *file)
{
	char err[GRAFT_ERRLEN];
	fixture *f = fixture_load(file, err, sizeof err);
	cr_assert_not_null(f, "cannot load fixture %s: %s (regenerate with `make fixtures`)",
	                   file, err);
	cr_assert_gt(f->ncases, 0, "%s has no cases", f->path);
	return f;
}

static float *filled(size_t n, float v)
{
	float *p = malloc((n ? n : 1) * sizeof *p);
	cr_assert_not_null(p, "out of memory");
	for (size_t i = 0; i < n; i++)
		p[i] = v;
	return p;
}

static float *copy(const float *src, size_t n)
{
	float *p = filled(n, 0.0f);
	memcpy(p, src, n * sizeof *p);
	return p;
}

static const float *need(const fixture_case *c, const char *name, size_t numel)
{
	const float *d = fixture_data(c, name, numel);
	cr_assert_not_null(d, "case %s: tensor %s missing or of the wrong size", c->name, name);
	return d;
}

static void need_params(const fixture_case *c, int n)
{
	cr_assert_eq(c->nparams, n, "case %s has %d parameters, want %d", c->name,
	             c->nparams, n);
	for (int i = 0; i < n; i++)
		cr_assert_geq(c->params[i], 0, "case %s parameter %d is negative", c->name, i);
}

/* Compares one output of one case; on a mismatch marks the test failed with
 * the worst element (got and want) without stopping it, so one run lists
 * every bad case. */
static void expect_close(const char *kind, const fixture_case *c, const char *what,
                         const float *got, const float *want, size_t n,
                         double atol, double rtol)
{
	char label[256], msg[768];
	snprintf(label, sizeof label, "%s case %s: %s", kind, c->name, what);
	int bad = fixture_compare_msg(label, got, want, n, atol, rtol, msg, sizeof msg);
	cr_expect_eq(bad, 0, "%s", msg);
}

static void expect_fwd(const char *kind, const fixture_case *c, const char *what,
                       const float *got, const float *want, size_t n)
{
	expect_close(kind, c, what, got, want, n, FWD_ATOL, FWD_RTOL);
}

static void expect_grad(const char *kind, const fixture_case *c, const char *what,
                        const float *got, const float *want, size_t n)
{
	expect_close(kind, c, what, got, want, n, GRAD_ATOL, GRAD_RTOL);
}

/* After a second backward call into the same buffers, got must be 2 * want. */
static void expect_twice(const char *kind, const fixture_case *c, const char *what,
                         const float *got, const float *want, size_t n)
{
	char label[128];
	float *w2 = filled(n, 0.0f);
	for (size_t i = 0; i < n; i++)
		w2[i] = 2.0f * want[i];
	snprintf(label, sizeof label, "%s after two backward calls (must accumulate)", what);
	expect_close(kind, c, label, got, w2, n, 2 * GRAD_ATOL, GRAD_RTOL);
	free(w2);
}

/* ---- the fixture reader itself ------------------------------------------- */

static unsigned char *read_all(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	cr_assert_not_null(fp, "cannot open %s", path);
	fseek(fp, 0, SEEK_END);
	long n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	cr_assert_gt(n, 0, "%s is empty", path);
	unsigned char *buf = malloc((size_t)n);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	*len = (size_t)n;
	return buf;
}

/* Writes buf to path and returns whether fixture_open accepts it; a rejection
 * must come with a message. */
static int accepts(const char *path, const unsigned char *buf, size_t len)
{
	FILE *fp = fopen(path, "wb");
	cr_assert_not_null(fp);
	cr_assert_eq(fwrite(buf, 1, len, fp), len);
	fclose(fp);
	char err[GRAFT_ERRLEN] = "";
	fixture *f = fixture_open(path, err, sizeof err);
	if (f == NULL)
		cr_assert_neq(err[0], '\0', "fixture_open failed without a message");
	fixture_free(f);
	return f != NULL;
}

Test(torch_layers, fixture_reader_is_strict)
{
	char src[1024], tmp[] = "/tmp/graft-fixture-XXXXXX";
	snprintf(src, sizeof src, "%s/xent.bin", fixture_dir());
	size_t len;
	unsigned char *buf = read_all(src, &len);
	int fd = mkstemp(tmp);
	cr_assert_geq(fd, 0);
	close(fd);

	cr_assert(accepts(tmp, buf, len), "the unmodified %s is rejected", src);
	for (size_t cut = 0; cut < len; cut++)
		cr_assert_not(accepts(tmp, buf, cut), "%s cut to %zu of %zu bytes is accepted",
		              src, cut, len);

	unsigned char *bad = malloc(len + 1);
	cr_assert_not_null(bad);
	memcpy(bad, buf, len);
	bad[len] = 0;
	cr_assert_not(accepts(tmp, bad, len + 1), "a trailing byte is accepted");
	bad[0] = 'X';
	cr_assert_not(accepts(tmp, bad, len), "a bad magic is accepted");
	memcpy(bad, buf, len);
	bad[8] = 2;
	cr_assert_not(accepts(tmp, bad, len), "version 2 is accepted");
	memcpy(bad, buf, len);
	bad[12] = bad[13] = bad[14] = bad[15] = 0xff;
	cr_assert_not(accepts(tmp, bad, len), "ncases 0xffffffff is accepted");

	char err[GRAFT_ERRLEN] = "";
	cr_assert_null(fixture_open("/nonexistent/graft.bin", err, sizeof err));
	cr_assert_neq(err[0], '\0');
	fixture_free(NULL);
	unlink(tmp);
	free(bad);
	free(buf);
}

/* ---- convolution --------------------------------------------------------- */

/* One conv case unpacked: the shape, the inputs and PyTorch's answers. */
typedef struct conv_case {
	nn_conv_shape s;
	int n;
	size_t nx, nw, ny;
	const float *x, *w, *dy, *y, *dx, *dw;
} conv_case;

static void conv_unpack(const fixture_case *c, conv_case *cc)
{
	need_params(c, 9);
	cc->n = c->params[0];
	cc->s = (nn_conv_shape){
		.cin = c->params[1], .h = c->params[2], .w = c->params[3],
		.cout = c->params[4], .k = c->params[5], .stride = c->params[6],
		.pad = c->params[7], .groups = c->params[8],
	};
	nn_conv_shape *s = &cc->s;
	cr_assert_eq(nn_conv_shape_init(s), 0, "case %s: nn_conv_shape_init rejects it",
	             c->name);
	const fixture_tensor *ty = fixture_find(c, "y");
	cr_assert_not_null(ty);
	cr_assert(ty->ndim == 4 && (int)ty->dims[2] == s->oh && (int)ty->dims[3] == s->ow,
	          "case %s: nn_conv_shape_init gives %dx%d, PyTorch %zux%zu", c->name,
	          s->oh, s->ow, ty->dims[2], ty->dims[3]);
	cc->nx = (size_t)cc->n * s->cin * s->h * s->w;
	cc->nw = (size_t)s->cout * (s->cin / s->groups) * s->k * s->k;
	cc->ny = (size_t)cc->n * s->cout * s->oh * s->ow;
	cc->x = need(c, "x", cc->nx);
	cc->w = need(c, "w", cc->nw);
	cc->dy = need(c, "dy", cc->ny);
	cc->y = need(c, "y", cc->ny);
	cc->dx = need(c, "dx", cc->nx);
	cc->dw = need(c, "dw", cc->nw);
}

static void conv_fwd(int fast, const conv_case *cc, float *y, float *ws)
{
	if (fast)
		nn_conv_forward(&cc->s, cc->n, cc->x, cc->w, y, ws);
	else
		nn_conv_forward_naive(&cc->s, cc->n, cc->x, cc->w, y);
}

static void conv_bwd(int fast, const conv_case *cc, float *dx, float *dw, float *ws)
{
	if (fast)
		nn_conv_backward(&cc->s, cc->n, cc->x, cc->w, cc->dy, dx, dw, ws);
	else
		nn_conv_backward_naive(&cc->s, cc->n, cc->x, cc->w, cc->dy, dx, dw);
}

/* Runs every conv case through the fast path (fast = 1) or the naive twins.
 * With null_grads, only the backward calls with dx or dw NULL are checked (a
 * separate test, so that a crash there does not hide the main results). */
static void run_conv(int fast, int null_grads)
{
	const char *kind = fast ? "conv(fast)" : "conv(naive)";
	fixture *f = load("conv.bin");
	for (int ci = 0; ci < f->ncases; ci++) {
		const fixture_case *c = &f->cases[ci];
		conv_case cc;
		conv_unpack(c, &cc);
		/* The workspace is scratch: its contents on entry must not matter. */
		float *ws = filled(fast ? nn_conv_workspace(&cc.s) : 0, NAN);
		float *y = filled(cc.ny, GARBAGE);
		float *dx = filled(cc.nx, 0.0f), *dw = filled(cc.nw, 0.0f);

		if (null_grads) {
			/* Either gradient may be NULL; the other must still be right. */
			conv_bwd(fast, &cc, dx, NULL, ws);
			conv_bwd(fast, &cc, NULL, dw, ws);
			expect_grad(kind, c, "dx (dw NULL)", dx, cc.dx, cc.nx);
			expect_grad(kind, c, "dw (dx NULL)", dw, cc.dw, cc.nw);
		} else {
			conv_fwd(fast, &cc, y, ws);
			expect_fwd(kind, c, "y", y, cc.y, cc.ny);
			conv_bwd(fast, &cc, dx, dw, ws);
			expect_grad(kind, c, "dx", dx, cc.dx, cc.nx);
			expect_grad(kind, c, "dw", dw, cc.dw, cc.nw);
			conv_bwd(fast, &cc, dx, dw, ws);
			expect_twice(kind, c, "dx", dx, cc.dx, cc.nx);
			expect_twice(kind, c, "dw", dw, cc.dw, cc.nw);
		}
		free(ws);
		free(y);
		free(dx);
		free(dw);
	}
	fixture_free(f);
}

/* The fast paths: oneDNN's convolutions (the default) and the reference
 * im2col + sgemm twin, each against PyTorch. */
static void use_engine(enum nn_engine e)
{
	nn_conv_set_engine(e);
	cr_assert_eq(nn_conv_engine(), e, "oneDNN is not available");
}

Test(torch_layers, conv_onednn_1_thread)
{
	use_engine(NN_ENGINE_ONEDNN);
	nn_set_threads(1);
	cr_assert_eq(nn_threads(), 1);
	run_conv(1, 0);
}

Test(torch_layers, conv_onednn_2_threads)
{
	use_engine(NN_ENGINE_ONEDNN);
	nn_set_threads(2);
	cr_assert_eq(nn_threads(), 2);
	run_conv(1, 0);
}

Test(torch_layers, conv_reference_1_thread)
{
	use_engine(NN_ENGINE_REFERENCE);
	nn_set_threads(1);
	run_conv(1, 0);
}

Test(torch_layers, conv_reference_2_threads)
{
	use_engine(NN_ENGINE_REFERENCE);
	nn_set_threads(2);
	run_conv(1, 0);
}

Test(torch_layers, conv_naive)
{
	nn_set_threads(1);
	run_conv(0, 0);
}

Test(torch_layers, conv_null_gradients)
{
	nn_set_threads(2);
	use_engine(NN_ENGINE_ONEDNN);
	run_conv(1, 1);
	use_engine(NN_ENGINE_REFERENCE);
	run_conv(1, 1);
	run_conv(0, 1);
}

/* ---- batch norm ---------------------------------------------------------- */

static void bn_train_case(const fixture_case *c, int n, int ch, int hw, int relu)
{
	const char *kind = "bn(train)";
	size_t nx = (size_t)n * ch * hw, nc = (size_t)ch;
	const float *x = need(c, "x", nx), *gamma = need(c, "gamma", nc);
	const float *beta = need(c, "beta", nc), *dy = need(c, "dy", nx);
	float *rm = copy(need(c, "running_mean0", nc), nc);
	float *rv = copy(need(c, "running_var0", nc), nc);
	float *save_mean = filled(nc, GARBAGE), *save_invstd = filled(nc, GARBAGE);
	float *y = filled(nx, GARBAGE);

	nn_bn_forward_train(n, ch, hw, x, gamma, beta, rm, rv, save_mean, save_invstd, relu, y);
	expect_fwd(kind, c, "y", y, need(c, "y", nx), nx);
	expect_fwd(kind, c, "running_mean", rm, need(c, "running_mean1", nc), nc);
	expect_fwd(kind, c, "running_var", rv, need(c, "running_var1", nc), nc);

	const float *want_dx = need(c, "dx", nx);
	const float *want_dg = need(c, "dgamma", nc), *want_db = need(c, "dbeta", nc);
	float *dx = filled(nx, 0.0f), *dg = filled(nc, 0.0f), *db = filled(nc, 0.0f);
	for (int pass = 0; pass < 2; pass++) {
		nn_bn_backward(n, ch, hw, x, y, dy, gamma, save_mean, save_invstd, relu,
		               dx, dg, db);
		if (pass == 0) {
			expect_grad(kind, c, "dx", dx, want_dx, nx);
			expect_grad(kind, c, "dgamma", dg, want_dg, nc);
			expect_grad(kind, c, "dbeta", db, want_db, nc);
		} else {
			expect_twice(kind, c, "dx", dx, want_dx, nx);
			expect_twice(kind, c, "dgamma", dg, want_dg, nc);
			expect_twice(kind, c, "dbeta", db, want_db, nc);
		}
	}
	memset(dg, 0, nc * sizeof *dg);
	memset(db, 0, nc * sizeof *db);
	nn_bn_backward(n, ch, hw, x, y, dy, gamma, save_mean, save_invstd, relu, NULL, dg, db);
	expect_grad(kind, c, "dgamma (dx NULL)", dg, want_dg, nc);
	expect_grad(kind, c, "dbeta (dx NULL)", db, want_db, nc);

	free(rm);
	free(rv);
	free(save_mean);
	free(save_invstd);
	free(y);
	free(dx);
	free(dg);
	free(db);
}

static void bn_eval_case(const fixture_case *c, int n, int ch, int hw, int relu)
{
	size_t nx = (size_t)n * ch * hw, nc = (size_t)ch;
	float *y = filled(nx, GARBAGE);
	nn_bn_forward_eval(n, ch, hw, need(c, "x", nx), need(c, "gamma", nc),
	                   need(c, "beta", nc), need(c, "running_mean", nc),
	                   need(c, "running_var", nc), relu, y);
	expect_fwd("bn(eval)", c, "y", y, need(c, "y", nx), nx);
	free(y);
}

Test(torch_layers, batch_norm)
{
	fixture *f = load("bn.bin");
	int ntrain = 0, neval = 0, nrelu = 0;
	for (int ci = 0; ci < f->ncases; ci++) {
		const fixture_case *c = &f->cases[ci];
		need_params(c, 6);
		int n = c->params[0], ch = c->params[1], hw = c->params[2] * c->params[3];
		int train = c->params[4], relu = c->params[5];
		if (train) {
			bn_train_case(c, n, ch, hw, relu);
			ntrain++;
		} else {
			bn_eval_case(c, n, ch, hw, relu);
			neval++;
		}
		nrelu += relu;
	}
	cr_assert(ntrain > 0 && neval > 0 && nrelu > 0, "bn.bin lacks a kind of case");
	fixture_free(f);
}

/* ---- element-wise, pooling, linear, loss ---------------------------------- */

Test(torch_layers, relu)
{
	fixture *f = load("relu.bin");
	for (int ci = 0; ci < f->ncases; ci++) {
		const fixture_case *c = &f->cases[ci];
		need_params(c, 4);
		size_t len = (size_t)c->params[0] * c->params[1] * c->params[2] * c->params[3];
		const float *x = need(c, "x", len), *dy = need(c, "dy", len);
		const float *want_dx = need(c, "dx", len);
		float *y = filled(len, GARBAGE), *dx = filled(len, 0.0f);
		nn_relu_forward(len, x, y);
		expect_fwd("relu", c, "y", y, need(c, "y", len), len);
		nn_relu_backward(len, y, dy, dx);
		expect_grad("relu", c, "dx", dx, want_dx, len);
		nn_relu_backward(len, y, dy, dx);
		expect_twice("relu", c, "dx", dx, want_dx, len);
		free(y);
		free(dx);
	}
	fixture_free(f);
}

Test(torch_layers, add)
{
	fixture *f = load("add.bin");
	for (int ci = 0; ci < f->ncases; ci++) {
		const fixture_case *c = &f->cases[ci];
		need_params(c, 5);
		size_t len = (size_t)c->params[0] * c->params[1] * c->params[2] * c->params[3];
		int relu = c->params[4];
		const float *a = need(c, "a", len), *b = need(c, "b", len);
		const float *dy = need(c, "dy", len);
		const float *want_da = need(c, "da", len), *want_db = need(c, "db", len);
		float *y = filled(len, GARBAGE);
		float *da = filled(len, 0.0f), *db = filled(len, 0.0f);
		nn_add_forward(len, a, b, relu, y);
		expect_fwd("add", c, "y", y, need(c, "y", len), len);
		nn_add_backward(len, y, dy, relu, da, db);
		expect_grad("add", c, "da", da, want_da, len);
		expect_grad("add", c, "db", db, want_db, len);
		nn_add_backward(len, y, dy, relu, da, db);
		expect_twice("add", c, "da", da, want_da, len);
		expect_twice("add", c, "db", db, want_db, len);
		memset(da, 0, len * sizeof *da);
		memset(db, 0, len * sizeof *db);
		nn_add_backward(len, y, dy, relu, da, NULL);
		nn_add_backward(len, y, dy, relu, NULL, db);
		expect_grad("add", c, "da (db NULL)", da, want_da, len);
		expect_grad("add", c, "db (da NULL)", db, want_db, len);
		free(y);
		free(da);
		free(db);
	}
	fixture_free(f);
}

Test(torch_layers, maxpool)
{
	fixture *f = load("maxpool.bin");
	for (int ci = 0; ci < f->ncases; ci++) {
		const fixture_case *c = &f->cases[ci];
		need_params(c, 4);
		int n = c->params[0], ch = c->params[1], h = c->params[2], w = c->params[3];
		size_t nx = (size_t)n * ch * h * w, ny = (size_t)n * ch * (h / 2) * (w / 2);
		const float *x = need(c, "x", nx), *dy = need(c, "dy", ny);
		const float *want_dx = need(c, "dx", nx);
		float *y = filled(ny, GARBAGE), *dx = filled(nx, 0.0f);
		nn_maxpool_forward(n, ch, h, w, x, y);
		expect_fwd("maxpool", c, "y", y, need(c, "y", ny), ny);
		nn_maxpool_backward(n, ch, h, w, x, y, dy, dx);
		expect_grad("maxpool", c, "dx", dx, want_dx, nx);
		nn_maxpool_backward(n, ch, h, w, x, y, dy, dx);
		expect_twice("maxpool", c, "dx", dx, want_dx, nx);
		free(y);
		free(dx);
	}
	fixture_free(f);
}

Test(torch_layers, global_average_pool)
{
	fixture *f = load("gap.bin");
	for (int ci = 0; ci < f->ncases; ci++) {
		const fixture_case *c = &f->cases[ci];
		need_params(c, 4);
		int n = c->params[0], ch = c->params[1], hw = c->params[2] * c->params[3];
		size_t nx = (size_t)n * ch * hw, ny = (size_t)n * ch;
		const float *x = need(c, "x", nx), *dy = need(c, "dy", ny);
		const float *want_dx = need(c, "dx", nx);
		float *y = filled(ny, GARBAGE), *dx = filled(nx, 0.0f);
		nn_gap_forward(n, ch, hw, x, y);
		expect_fwd("gap", c, "y", y, need(c, "y", ny), ny);
		nn_gap_backward(n, ch, hw, dy, dx);
		expect_grad("gap", c, "dx", dx, want_dx, nx);
		nn_gap_backward(n, ch, hw, dy, dx);
		expect_twice("gap", c, "dx", dx, want_dx, nx);
		free(y);
		free(dx);
	}
	fixture_free(f);
}

Test(torch_layers, linear)
{
	fixture *f = load("linear.bin");
	for (int ci = 0; ci < f->ncases; ci++) {
		const fixture_case *c = &f->cases[ci];
		need_params(c, 3);
		int n = c->params[0], in = c->params[1], out = c->params[2];
		size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
		const float *x = need(c, "x", nx), *w = need(c, "w", nw);
		const float *b = need(c, "b", (size_t)out), *dy = need(c, "dy", ny);
		const float *want_dx = need(c, "dx", nx), *want_dw = need(c, "dw", nw);
		const float *want_db = need(c, "db", (size_t)out);
		float *y = filled(ny, GARBAGE);
		float *dx = filled(nx, 0.0f), *dw = filled(nw, 0.0f), *db = filled((size_t)out, 0.0f);
		nn_linear_forward(n, in, out, x, w, b, y);
		expect_fwd("linear", c, "y", y, need(c, "y", ny), ny);
		for (int pass = 0; pass < 2; pass++) {
			nn_linear_backward(n, in, out, x, w, dy, dx, dw, db);
			if (pass == 0) {
				expect_grad("linear", c, "dx", dx, want_dx, nx);
				expect_grad("linear", c, "dw", dw, want_dw, nw);
				expect_grad("linear", c, "db", db, want_db, (size_t)out);
			} else {
				expect_twice("linear", c, "dx", dx, want_dx, nx);
				expect_twice("linear", c, "dw", dw, want_dw, nw);
				expect_twice("linear", c, "db", db, want_db, (size_t)out);
			}
		}
		free(y);
		free(dx);
		free(dw);
		free(db);
	}
	fixture_free(f);
}

Test(torch_layers, softmax_cross_entropy)
{
	fixture *f = load("xent.bin");
	for (int ci = 0; ci < f->ncases; ci++) {
		const fixture_case *c = &f->cases[ci];
		need_params(c, 2);
		int n = c->params[0], k = c->params[1];
		size_t nl = (size_t)n * k;
		const float *logits = need(c, "logits", nl);
		const float *flabels = need(c, "labels", (size_t)n);
		int *labels = malloc((size_t)n * sizeof *labels);
		cr_assert_not_null(labels);
		for (int i = 0; i < n; i++) {
			labels[i] = (int)flabels[i];
			cr_assert(labels[i] >= 0 && labels[i] < k && (float)labels[i] == flabels[i],
			          "case %s: bad label %g", c->name, (double)flabels[i]);
		}
		float *dl = filled(nl, GARBAGE);
		double loss = nn_softmax_xent(n, k, logits, labels, dl);
		float got_loss = (float)loss;
		expect_fwd("xent", c, "loss", &got_loss, need(c, "loss", 1), 1);
		expect_grad("xent", c, "dlogits", dl, need(c, "dlogits", nl), nl);
		double loss2 = nn_softmax_xent(n, k, logits, labels, NULL);
		cr_expect_eq(loss2, loss, "case %s: loss %.17g without dlogits, %.17g with",
		             c->name, loss2, loss);
		free(dl);
		free(labels);
	}
	fixture_free(f);
}

/* ---- optimizer and schedule --------------------------------------------- */

/*
 * PyTorch's SGD keeps no momentum buffer until the first step, which sets
 * buf = d_p (a clone); nn_sgd_step starts from v = 0 and computes v = mu*0 + g,
 * which is the same value exactly (mu*0 is +0 and 0 + g is g).  With momentum 0
 * PyTorch skips the buffer and nn_sgd_step's v is just g: the same again.
 */
Test(torch_layers, sgd)
{
	fixture *f = load("sgd.bin");
	for (int ci = 0; ci < f->ncases; ci++) {
		const fixture_case *c = &f->cases[ci];
		need_params(c, 2);
		size_t len = (size_t)c->params[0];
		const float *hyper = need(c, "hyper", 3);
		nn_sgd o = { .momentum = hyper[1], .weight_decay = hyper[2],
		             .nesterov = c->params[1] };
		float *p = copy(need(c, "p0", len), len), *v = filled(len, 0.0f);
		for (int t = 1; t <= 3; t++) {
			char gname[16], pname[16];
			snprintf(gname, sizeof gname, "g%d", t);
			snprintf(pname, sizeof pname, "p%d", t);
			const float *g = need(c, gname, len);
			float *gcopy = copy(g, len);
			nn_sgd_step(&o, hyper[0], len, p, gcopy, v);
			expect_fwd("sgd", c, pname, p, need(c, pname, len), len);
			cr_expect(memcmp(gcopy, g, len * sizeof *g) == 0,
			          "case %s: nn_sgd_step changed its const gradient", c->name);
			free(gcopy);
		}
		free(p);
		free(v);
	}
	fixture_free(f);
}

Test(torch_layers, cosine_schedule)
{
	fixture *f = load("cosine.bin");
	for (int ci = 0; ci < f->ncases; ci++) {
		const fixture_case *c = &f->cases[ci];
		need_params(c, 1);
		int total = c->params[0];
		float base = need(c, "base", 1)[0];
		const float *want = need(c, "lr", (size_t)total + 1);
		float *got = filled((size_t)total + 1, GARBAGE);
		for (int t = 0; t <= total; t++)
			got[t] = nn_lr_at(NN_SCHEDULE_COSINE, base, t, total, 0);
		expect_fwd("cosine", c, "lr", got, want, (size_t)total + 1);
		free(got);
	}
	fixture_free(f);
}
