/*
 * test_gradcheck.c - central-difference gradient checks for every layer of
 * nn/nn.h, independent of PyTorch, plus the fast convolution held to the naive
 * one on random odd shapes and a determinism check.
 *
 * Each check takes a small layer, a fixed random r of the output's shape and
 * the loss L = sum(y * r), summed in double (softmax cross-entropy uses its own
 * mean loss).  The analytic gradient is the layer's backward given dy = r; the
 * numerical one is (L(p + h) - L(p - h)) / (2h) for every element p of every
 * input and parameter, with h = 1e-2 (divided by the step actually taken after
 * float rounding).  The forward passes run in float32, as the layers do.
 *
 * Tolerance: |a - n| / max(1e-2, |a| + |n|) < 1e-2 for analytic a, numerical n.
 * Why these numbers: a step re-rounds the float32 outputs it changes, which
 * puts about 1e-7 * |y| * |r| of noise per changed output into L; divided by
 * 2h = 0.02 that is 1e-5..1e-4 in the numerical gradient.  The truncation
 * error of a central difference is O(h^2 * L''') and our ops are linear or
 * gently curved (batch norm, softmax), so it is smaller still; max pool and
 * ReLU are kinked, so their inputs are kept more than h away from ties and
 * from zero.  The largest relative error measured when the tests were written
 * was 1e-3, ten times below the bound, while a real mistake (a wrong index, a
 * missing term, a factor of two) gives 0.1 and up.  The 1e-2 floor keeps a
 * gradient that is zero up to noise on both sides from failing on a relative
 * scale.
 *
 * The fast convolution is held to the naive one on 200 random shapes with one
 * and with two threads: |fast - naive| < 1e-4 * max(1, max|naive|) for y, dx
 * and dw (both accumulating onto the same random start).  Two runs with two
 * threads must agree to the bit.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

#define GC_H 1e-2
#define GC_TOL 1e-2
#define GC_FLOOR 1e-2

TestSuite(gradcheck, .timeout = 120);

/* ---- a private generator, so the test data does not depend on nn's rng ---- */

static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
	rng_state = s * 0x9e3779b97f4a7c15ULL + 1;
}

static uint64_t rng_next(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static double rng_uniform(void)
{
	return (double)(rng_next() >> 11) * 0x1.0p-53;
}

static int rng_int(int lo, int hi) /* [lo, hi] */
{
	return lo + (int)(rng_next() % (uint64_t)(hi - lo + 1));
}

static double rng_normal(void)
{
	double u = rng_uniform(), v = rng_uniform();
	return sqrt(-2.0 * log(u + 1e-300)) * cos(2.0 * M_PI * v);
}

static float *alloc_floats(size_t n)
{
	float *p = malloc((n ? n : 1) * sizeof *p);
	cr_assert_not_null(p, "out of memory");
	return p;
}

static float *randn(size_t n, double scale)
{
	float *p = alloc_floats(n);
	for (size_t i = 0; i < n; i++)
		p[i] = (float)(rng_normal() * scale);
	return p;
}

static float *zeros(size_t n)
{
	float *p = alloc_floats(n);
	memset(p, 0, (n ? n : 1) * sizeof *p);
	return p;
}

static float *filled(size_t n, float v)
{
	float *p = alloc_floats(n);
	for (size_t i = 0; i < n; i++)
		p[i] = v;
	return p;
}

/* Values at least 0.1 away from zero, of either sign. */
static float *away_from_zero(size_t n)
{
	float *p = alloc_floats(n);
	for (size_t i = 0; i < n; i++) {
		float m = (float)(0.1 + rng_uniform());
		p[i] = rng_next() & 1 ? m : -m;
	}
	return p;
}

static double dot(const float *y, const float *r, size_t n)
{
	double s = 0.0;
	for (size_t i = 0; i < n; i++)
		s += (double)y[i] * r[i];
	return s;
}

/* ---- the check --------------------------------------------------------- */

typedef double (*loss_fn)(void *ctx);

typedef struct gc_result {
	size_t bad, worst;
	double a, n, err;  /* analytic, numerical and relative error at worst */
} gc_result;

/* Compares analytic[i] with the central difference of loss(ctx) in param[i]
 * for every i; param is restored.  Returns the count of failing elements and
 * the worst one; a NaN anywhere counts as a failure. */
static gc_result gradcheck(float *param, size_t len, const float *analytic, loss_fn loss,
                           void *ctx)
{
	gc_result g = { 0, 0, 0.0, 0.0, -1.0 };
	for (size_t i = 0; i < len; i++) {
		float old = param[i];
		float xp = (float)(old + GC_H), xm = (float)(old - GC_H);
		param[i] = xp;
		double lp = loss(ctx);
		param[i] = xm;
		double lm = loss(ctx);
		param[i] = old;
		double num = (lp - lm) / ((double)xp - (double)xm), a = analytic[i];
		double err = fabs(a - num) / fmax(GC_FLOOR, fabs(a) + fabs(num));
		if (!(err < GC_TOL))
			g.bad++;
		if (!isnan(g.err) && !(err <= g.err)) {
			g.worst = i;
			g.a = a;
			g.n = num;
			g.err = err;
		}
	}
	return g;
}

/* Runs gradcheck and records a test failure naming both values. */
#define EXPECT_GRAD(what, param, len, analytic, loss, ctx)                               \
	do {                                                                              \
		gc_result g_ = gradcheck((param), (len), (analytic), (loss), (ctx));          \
		cr_expect_eq(g_.bad, 0, "%s: %zu of %zu elements fail; worst [%zu]: "        \
		             "analytic %.7g, numerical %.7g (rel. error %.3g >= %g)",         \
		             (what), g_.bad, (size_t)(len), g_.worst, g_.a, g_.n, g_.err,     \
		             GC_TOL);                                                         \
	} while (0)

/* ---- convolution --------------------------------------------------------- */

typedef struct conv_ctx {
	nn_conv_shape s;
	int n, fast;
	size_t nx, nw, ny;
	float *x, *w, *y, *r, *ws;
} conv_ctx;

static double conv_loss(void *p)
{
	conv_ctx *c = p;
	if (c->fast)
		nn_conv_forward(&c->s, c->n, c->x, c->w, c->y, c->ws);
	else
		nn_conv_forward_naive(&c->s, c->n, c->x, c->w, c->y);
	return dot(c->y, c->r, c->ny);
}

/* n, cin, h, w, cout, k, stride, pad, groups */
static const int conv_shapes[][9] = {
	{ 2, 3, 5, 5, 4, 3, 1, 1, 1 },
	{ 1, 4, 7, 6, 4, 3, 2, 1, 1 },   /* stride 2 */
	{ 2, 4, 5, 5, 6, 3, 1, 1, 2 },   /* groups */
	{ 2, 3, 6, 6, 3, 3, 1, 1, 3 },   /* depthwise */
	{ 1, 3, 6, 6, 6, 3, 2, 1, 3 },   /* depthwise x2, stride 2 */
	{ 1, 2, 7, 7, 3, 5, 1, 2, 1 },   /* 5x5 */
	{ 1, 3, 7, 5, 2, 5, 2, 0, 1 },   /* 5x5, stride 2, no padding, odd */
	{ 2, 5, 4, 4, 3, 1, 1, 0, 1 },   /* pointwise */
	{ 1, 4, 5, 7, 4, 3, 2, 0, 4 },   /* depthwise, no padding */
};

static void conv_gradcheck(int fast)
{
	nn_set_threads(fast ? 2 : 1);
	for (size_t si = 0; si < sizeof conv_shapes / sizeof conv_shapes[0]; si++) {
		const int *p = conv_shapes[si];
		conv_ctx c = { .n = p[0], .fast = fast };
		c.s = (nn_conv_shape){ .cin = p[1], .h = p[2], .w = p[3], .cout = p[4], .k = p[5],
		                       .stride = p[6], .pad = p[7], .groups = p[8] };
		cr_assert_eq(nn_conv_shape_init(&c.s), 0, "shape %zu rejected", si);
		rng_seed(100 + si);
		c.nx = (size_t)c.n * c.s.cin * c.s.h * c.s.w;
		c.nw = (size_t)c.s.cout * (c.s.cin / c.s.groups) * c.s.k * c.s.k;
		c.ny = (size_t)c.n * c.s.cout * c.s.oh * c.s.ow;
		/* Small x and w keep y small: the float32 rounding of y, which is the
		 * noise of the numerical gradient, scales with |x| |w| while each
		 * gradient scales with only one of them. */
		c.x = randn(c.nx, 0.3);
		c.w = randn(c.nw, 0.3);
		c.r = randn(c.ny, 1.0);
		c.y = zeros(c.ny);
		c.ws = filled(fast ? nn_conv_workspace(&c.s) : 0, NAN);
		float *dx = zeros(c.nx), *dw = zeros(c.nw);
		if (fast)
			nn_conv_backward(&c.s, c.n, c.x, c.w, c.r, dx, dw, c.ws);
		else
			nn_conv_backward_naive(&c.s, c.n, c.x, c.w, c.r, dx, dw);

		char what[160];
		snprintf(what, sizeof what, "conv(%s) n%d cin%d %dx%d cout%d k%d s%d p%d g%d: ",
		         fast ? "fast" : "naive", c.n, c.s.cin, c.s.h, c.s.w, c.s.cout, c.s.k,
		         c.s.stride, c.s.pad, c.s.groups);
		size_t wl = strlen(what);
		snprintf(what + wl, sizeof what - wl, "dx");
		EXPECT_GRAD(what, c.x, c.nx, dx, conv_loss, &c);
		snprintf(what + wl, sizeof what - wl, "dw");
		EXPECT_GRAD(what, c.w, c.nw, dw, conv_loss, &c);
		free(c.x);
		free(c.w);
		free(c.r);
		free(c.y);
		free(c.ws);
		free(dx);
		free(dw);
	}
}

Test(gradcheck, conv_naive)
{
	conv_gradcheck(0);
}

Test(gradcheck, conv_onednn)
{
	nn_conv_set_engine(NN_ENGINE_ONEDNN);
	cr_assert_eq(nn_conv_engine(), NN_ENGINE_ONEDNN, "oneDNN is not available");
	conv_gradcheck(1);
}

Test(gradcheck, conv_reference)
{
	nn_conv_set_engine(NN_ENGINE_REFERENCE);
	conv_gradcheck(1);
}

/* ---- batch norm ---------------------------------------------------------- */

typedef struct bn_ctx {
	int n, c, hw, relu;
	size_t nx;
	float *x, *gamma, *beta, *y, *r, *rm, *rv, *sm, *si;
} bn_ctx;

static double bn_loss(void *p)
{
	bn_ctx *b = p;
	nn_bn_forward_train(b->n, b->c, b->hw, b->x, b->gamma, b->beta, b->rm, b->rv,
	                    b->sm, b->si, b->relu, b->y);
	return dot(b->y, b->r, b->nx);
}

/* Moves x until every pre-ReLU output is at least 0.15 away from zero, so that
 * no step of h crosses the ReLU's kink (a step moves an output by about
 * gamma * h / std <= 0.03 here). */
static void bn_keep_off_kink(bn_ctx *b)
{
	int relu = b->relu;
	b->relu = 0;
	for (int iter = 0;; iter++) {
		cr_assert_lt(iter, 1000, "could not move the BN outputs off zero");
		bn_loss(b);
		int moved = 0;
		for (size_t i = 0; i < b->nx; i++)
			if (fabsf(b->y[i]) < 0.15f) {
				b->x[i] += b->y[i] >= 0 ? 0.3f : -0.3f;
				moved = 1;
			}
		if (!moved)
			break;
	}
	b->relu = relu;
}

static void bn_gradcheck(int n, int c, int hw, int relu, uint64_t seed)
{
	bn_ctx b = { .n = n, .c = c, .hw = hw, .relu = relu, .nx = (size_t)n * c * hw };
	rng_seed(seed);
	b.x = randn(b.nx, 1.0);
	for (size_t i = 0; i < b.nx; i++)
		b.x[i] += (float)((i / hw) % c) * 0.5f; /* a different mean per channel */
	b.gamma = alloc_floats((size_t)c);
	b.beta = randn((size_t)c, 0.3);
	for (int i = 0; i < c; i++)
		b.gamma[i] = (float)(0.5 + rng_uniform());
	b.r = randn(b.nx, 1.0);
	b.y = zeros(b.nx);
	b.rm = zeros((size_t)c);
	b.rv = filled((size_t)c, 1.0f);
	b.sm = zeros((size_t)c);
	b.si = zeros((size_t)c);
	if (relu)
		bn_keep_off_kink(&b);

	float *dx = zeros(b.nx), *dg = zeros((size_t)c), *db = zeros((size_t)c);
	bn_loss(&b); /* fills y and the saved statistics */
	nn_bn_backward(n, c, hw, b.x, b.y, b.r, b.gamma, b.sm, b.si, relu, dx, dg, db);

	char what[96];
	snprintf(what, sizeof what, "bn n%d c%d hw%d relu%d: dx", n, c, hw, relu);
	EXPECT_GRAD(what, b.x, b.nx, dx, bn_loss, &b);
	snprintf(what, sizeof what, "bn n%d c%d hw%d relu%d: dgamma", n, c, hw, relu);
	EXPECT_GRAD(what, b.gamma, (size_t)c, dg, bn_loss, &b);
	snprintf(what, sizeof what, "bn n%d c%d hw%d relu%d: dbeta", n, c, hw, relu);
	EXPECT_GRAD(what, b.beta, (size_t)c, db, bn_loss, &b);

	free(b.x);
	free(b.gamma);
	free(b.beta);
	free(b.r);
	free(b.y);
	free(b.rm);
	free(b.rv);
	free(b.sm);
	free(b.si);
	free(dx);
	free(dg);
	free(db);
}

Test(gradcheck, batch_norm_train)
{
	bn_gradcheck(2, 3, 9, 0, 200);
	bn_gradcheck(1, 2, 12, 0, 201);
	bn_gradcheck(6, 4, 1, 0, 202);
}

Test(gradcheck, batch_norm_train_relu)
{
	bn_gradcheck(2, 3, 9, 1, 210);
	bn_gradcheck(1, 2, 12, 1, 211);
	bn_gradcheck(6, 4, 1, 1, 212);
}

/* ---- linear -------------------------------------------------------------- */

typedef struct linear_ctx {
	int n, in, out;
	float *x, *w, *b, *y, *r;
} linear_ctx;

static double linear_loss(void *p)
{
	linear_ctx *l = p;
	nn_linear_forward(l->n, l->in, l->out, l->x, l->w, l->b, l->y);
	return dot(l->y, l->r, (size_t)l->n * l->out);
}

Test(gradcheck, linear)
{
	static const int shapes[][3] = { { 1, 3, 2 }, { 4, 7, 5 }, { 3, 16, 10 } };
	for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
		linear_ctx l = { shapes[si][0], shapes[si][1], shapes[si][2], 0, 0, 0, 0, 0 };
		size_t nx = (size_t)l.n * l.in, nw = (size_t)l.out * l.in, ny = (size_t)l.n * l.out;
		rng_seed(300 + si);
		l.x = randn(nx, 1.0);
		l.w = randn(nw, 0.5);
		l.b = randn((size_t)l.out, 0.5);
		l.r = randn(ny, 1.0);
		l.y = zeros(ny);
		float *dx = zeros(nx), *dw = zeros(nw), *db = zeros((size_t)l.out);
		nn_linear_backward(l.n, l.in, l.out, l.x, l.w, l.r, dx, dw, db);
		char what[64];
		snprintf(what, sizeof what, "linear n%d in%d out%d: dx", l.n, l.in, l.out);
		EXPECT_GRAD(what, l.x, nx, dx, linear_loss, &l);
		snprintf(what, sizeof what, "linear n%d in%d out%d: dw", l.n, l.in, l.out);
		EXPECT_GRAD(what, l.w, nw, dw, linear_loss, &l);
		snprintf(what, sizeof what, "linear n%d in%d out%d: db", l.n, l.in, l.out);
		EXPECT_GRAD(what, l.b, (size_t)l.out, db, linear_loss, &l);
		free(l.x);
		free(l.w);
		free(l.b);
		free(l.r);
		free(l.y);
		free(dx);
		free(dw);
		free(db);
	}
}

/* ---- pooling ------------------------------------------------------------- */

typedef struct pool_ctx {
	int n, c, h, w;
	size_t ny;
	float *x, *y, *r;
} pool_ctx;

static double maxpool_loss(void *p)
{
	pool_ctx *m = p;
	nn_maxpool_forward(m->n, m->c, m->h, m->w, m->x, m->y);
	return dot(m->y, m->r, m->ny);
}

static double gap_loss(void *p)
{
	pool_ctx *m = p;
	nn_gap_forward(m->n, m->c, m->h * m->w, m->x, m->y);
	return dot(m->y, m->r, m->ny);
}

Test(gradcheck, maxpool)
{
	static const int shapes[][4] = { { 1, 1, 4, 4 }, { 2, 3, 7, 7 }, { 1, 2, 6, 5 },
	                                 { 2, 1, 3, 2 } };
	for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
		pool_ctx m = { shapes[si][0], shapes[si][1], shapes[si][2], shapes[si][3], 0,
		               NULL, NULL, NULL };
		size_t nx = (size_t)m.n * m.c * m.h * m.w;
		m.ny = (size_t)m.n * m.c * (m.h / 2) * (m.w / 2);
		rng_seed(400 + si);
		/* A shuffled ladder of values 0.05 apart: no two elements of a window
		 * are within 2h of each other, so a step never changes the argmax. */
		m.x = alloc_floats(nx);
		for (size_t i = 0; i < nx; i++)
			m.x[i] = ((float)i - (float)nx / 2) * 0.05f;
		for (size_t i = nx - 1; i > 0; i--) {
			size_t j = (size_t)(rng_next() % (i + 1));
			float t = m.x[i];
			m.x[i] = m.x[j];
			m.x[j] = t;
		}
		m.r = randn(m.ny, 1.0);
		m.y = zeros(m.ny);
		float *dx = zeros(nx);
		maxpool_loss(&m);
		nn_maxpool_backward(m.n, m.c, m.h, m.w, m.x, m.y, m.r, dx);
		char what[64];
		snprintf(what, sizeof what, "maxpool n%d c%d %dx%d: dx", m.n, m.c, m.h, m.w);
		EXPECT_GRAD(what, m.x, nx, dx, maxpool_loss, &m);
		free(m.x);
		free(m.r);
		free(m.y);
		free(dx);
	}
}

Test(gradcheck, global_average_pool)
{
	static const int shapes[][4] = { { 1, 1, 1, 1 }, { 2, 3, 4, 4 }, { 3, 2, 5, 3 } };
	for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
		pool_ctx m = { shapes[si][0], shapes[si][1], shapes[si][2], shapes[si][3], 0,
		               NULL, NULL, NULL };
		size_t nx = (size_t)m.n * m.c * m.h * m.w;
		m.ny = (size_t)m.n * m.c;
		rng_seed(500 + si);
		m.x = randn(nx, 1.0);
		m.r = randn(m.ny, 1.0);
		m.y = zeros(m.ny);
		float *dx = zeros(nx);
		nn_gap_backward(m.n, m.c, m.h * m.w, m.r, dx);
		char what[64];
		snprintf(what, sizeof what, "gap n%d c%d %dx%d: dx", m.n, m.c, m.h, m.w);
		EXPECT_GRAD(what, m.x, nx, dx, gap_loss, &m);
		free(m.x);
		free(m.r);
		free(m.y);
		free(dx);
	}
}

/* ---- element-wise -------------------------------------------------------- */

typedef struct ew_ctx {
	size_t len;
	int relu;
	float *a, *b, *y, *r;
} ew_ctx;

static double relu_loss(void *p)
{
	ew_ctx *e = p;
	nn_relu_forward(e->len, e->a, e->y);
	return dot(e->y, e->r, e->len);
}

static double add_loss(void *p)
{
	ew_ctx *e = p;
	nn_add_forward(e->len, e->a, e->b, e->relu, e->y);
	return dot(e->y, e->r, e->len);
}

Test(gradcheck, relu)
{
	rng_seed(600);
	ew_ctx e = { .len = 57 };
	e.a = away_from_zero(e.len);
	e.r = randn(e.len, 1.0);
	e.y = zeros(e.len);
	float *dx = zeros(e.len);
	relu_loss(&e);
	nn_relu_backward(e.len, e.y, e.r, dx);
	EXPECT_GRAD("relu: dx", e.a, e.len, dx, relu_loss, &e);
	free(e.a);
	free(e.r);
	free(e.y);
	free(dx);
}

Test(gradcheck, add)
{
	for (int relu = 0; relu <= 1; relu++) {
		rng_seed(700 + relu);
		ew_ctx e = { .len = 61, .relu = relu };
		/* a + b is kept 0.1 away from zero: b = s - a with s off zero. */
		e.a = randn(e.len, 1.0);
		e.b = away_from_zero(e.len);
		for (size_t i = 0; i < e.len; i++)
			e.b[i] -= e.a[i];
		e.r = randn(e.len, 1.0);
		e.y = zeros(e.len);
		float *da = zeros(e.len), *db = zeros(e.len);
		add_loss(&e);
		nn_add_backward(e.len, e.y, e.r, relu, da, db);
		char what[32];
		snprintf(what, sizeof what, "add relu%d: da", relu);
		EXPECT_GRAD(what, e.a, e.len, da, add_loss, &e);
		snprintf(what, sizeof what, "add relu%d: db", relu);
		EXPECT_GRAD(what, e.b, e.len, db, add_loss, &e);
		free(e.a);
		free(e.b);
		free(e.r);
		free(e.y);
		free(da);
		free(db);
	}
}

/* ---- softmax cross-entropy ------------------------------------------------ */

typedef struct xent_ctx {
	int n, k;
	float *logits;
	int *labels;
} xent_ctx;

static double xent_loss(void *p)
{
	xent_ctx *x = p;
	return nn_softmax_xent(x->n, x->k, x->logits, x->labels, NULL);
}

Test(gradcheck, softmax_cross_entropy)
{
	static const int shapes[][2] = { { 1, 2 }, { 4, 10 }, { 7, 3 } };
	for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
		xent_ctx x = { shapes[si][0], shapes[si][1], NULL, NULL };
		size_t nl = (size_t)x.n * x.k;
		rng_seed(800 + si);
		x.logits = randn(nl, 2.0);
		x.labels = malloc((size_t)x.n * sizeof *x.labels);
		cr_assert_not_null(x.labels);
		for (int i = 0; i < x.n; i++)
			x.labels[i] = rng_int(0, x.k - 1);
		float *dl = zeros(nl);
		nn_softmax_xent(x.n, x.k, x.logits, x.labels, dl);
		char what[48];
		snprintf(what, sizeof what, "xent n%d k%d: dlogits", x.n, x.k);
		EXPECT_GRAD(what, x.logits, nl, dl, xent_loss, &x);
		free(x.logits);
		free(x.labels);
		free(dl);
	}
}

/* ---- a chain of layers ---------------------------------------------------- */

/* conv -> bn -> depthwise conv -> add (skip from the bn) -> gap -> linear ->
 * softmax cross-entropy, wired by hand from the layer functions: gradients
 * must compose, and the bn output, read twice, must get the sum of both.  The
 * chain is kept smooth (no ReLU, no max pool): a step on an early weight moves
 * every activation, and some would cross a kink, where a central difference
 * means nothing.  Those layers' kinks are checked alone above. */
typedef struct chain_ctx {
	int n;
	nn_conv_shape c1, c2;
	float *x, *w1, *gamma, *beta, *w2, *wl, *bl;
	int *labels;
	float *a1, *a2, *a3, *a4, *a5, *logits;  /* activations */
	float *rm, *rv, *sm, *si, *ws;
} chain_ctx;

enum { CH_C = 3, CH_H = 6, CH_F = 4, CH_K = 5 };

static double chain_loss(void *p)
{
	chain_ctx *c = p;
	int n = c->n, hw = CH_H * CH_H;
	nn_conv_forward(&c->c1, n, c->x, c->w1, c->a1, c->ws);
	nn_bn_forward_train(n, CH_F, hw, c->a1, c->gamma, c->beta, c->rm, c->rv, c->sm,
	                    c->si, 0, c->a2);
	nn_conv_forward(&c->c2, n, c->a2, c->w2, c->a3, c->ws);
	nn_add_forward((size_t)n * CH_F * hw, c->a3, c->a2, 0, c->a4);
	nn_gap_forward(n, CH_F, hw, c->a4, c->a5);
	nn_linear_forward(n, CH_F, CH_K, c->a5, c->wl, c->bl, c->logits);
	return nn_softmax_xent(n, CH_K, c->logits, c->labels, NULL);
}

Test(gradcheck, layer_chain)
{
	nn_set_threads(2);
	chain_ctx c = { .n = 3 };
	c.c1 = (nn_conv_shape){ .cin = CH_C, .h = CH_H, .w = CH_H, .cout = CH_F, .k = 3,
	                        .stride = 1, .pad = 1, .groups = 1 };
	c.c2 = (nn_conv_shape){ .cin = CH_F, .h = CH_H, .w = CH_H, .cout = CH_F, .k = 3,
	                        .stride = 1, .pad = 1, .groups = CH_F };
	cr_assert_eq(nn_conv_shape_init(&c.c1), 0);
	cr_assert_eq(nn_conv_shape_init(&c.c2), 0);
	int n = c.n, hw = CH_H * CH_H;
	size_t nx = (size_t)n * CH_C * hw, na = (size_t)n * CH_F * hw;
	size_t nw1 = CH_F * CH_C * 9, nw2 = CH_F * 9, nwl = CH_K * CH_F;
	size_t wsn = nn_conv_workspace(&c.c1), wsn2 = nn_conv_workspace(&c.c2);
	rng_seed(900);
	c.x = randn(nx, 1.0);
	c.w1 = randn(nw1, 0.3);
	c.gamma = filled(CH_F, 1.0f);
	c.beta = randn(CH_F, 0.2);
	c.w2 = randn(nw2, 0.3);
	c.wl = randn(nwl, 1.0);
	c.bl = randn(CH_K, 0.1);
	c.labels = malloc((size_t)n * sizeof *c.labels);
	cr_assert_not_null(c.labels);
	for (int i = 0; i < n; i++)
		c.labels[i] = rng_int(0, CH_K - 1);
	c.a1 = zeros(na);
	c.a2 = zeros(na);
	c.a3 = zeros(na);
	c.a4 = zeros(na);
	c.a5 = zeros((size_t)n * CH_F);
	c.logits = zeros((size_t)n * CH_K);
	c.rm = zeros(CH_F);
	c.rv = filled(CH_F, 1.0f);
	c.sm = zeros(CH_F);
	c.si = zeros(CH_F);
	c.ws = filled(wsn > wsn2 ? wsn : wsn2, NAN);

	/* Backward by hand, in reverse; d2 gets both of its readers' gradients. */
	float *dlog = zeros((size_t)n * CH_K), *d5 = zeros((size_t)n * CH_F);
	float *d4 = zeros(na), *d3 = zeros(na), *d2 = zeros(na), *d1 = zeros(na);
	float *dx = zeros(nx), *dw1 = zeros(nw1), *dg = zeros(CH_F), *db = zeros(CH_F);
	float *dw2 = zeros(nw2), *dwl = zeros(nwl), *dbl = zeros(CH_K);
	chain_loss(&c);
	nn_softmax_xent(n, CH_K, c.logits, c.labels, dlog);
	nn_linear_backward(n, CH_F, CH_K, c.a5, c.wl, dlog, d5, dwl, dbl);
	nn_gap_backward(n, CH_F, hw, d5, d4);
	nn_add_backward(na, c.a4, d4, 0, d3, d2);
	nn_conv_backward(&c.c2, n, c.a2, c.w2, d3, d2, dw2, c.ws);
	nn_bn_backward(n, CH_F, hw, c.a1, c.a2, d2, c.gamma, c.sm, c.si, 0, d1, dg, db);
	nn_conv_backward(&c.c1, n, c.x, c.w1, d1, dx, dw1, c.ws);

	EXPECT_GRAD("chain: dx", c.x, nx, dx, chain_loss, &c);
	EXPECT_GRAD("chain: dw1", c.w1, nw1, dw1, chain_loss, &c);
	EXPECT_GRAD("chain: dgamma", c.gamma, CH_F, dg, chain_loss, &c);
	EXPECT_GRAD("chain: dbeta", c.beta, CH_F, db, chain_loss, &c);
	EXPECT_GRAD("chain: dw2 (depthwise)", c.w2, nw2, dw2, chain_loss, &c);
	EXPECT_GRAD("chain: dw (linear)", c.wl, nwl, dwl, chain_loss, &c);
	EXPECT_GRAD("chain: db (linear)", c.bl, CH_K, dbl, chain_loss, &c);

	float *bufs[] = { c.x, c.w1, c.gamma, c.beta, c.w2, c.wl, c.bl, c.a1, c.a2, c.a3,
	                  c.a4, c.a5, c.logits, c.rm, c.rv, c.sm, c.si, c.ws, dlog, d5, d4,
	                  d3, d2, d1, dx, dw1, dg, db, dw2, dwl, dbl };
	for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
		free(bufs[i]);
	free(c.labels);
}

/* ---- the fast convolution against the naive one --------------------------- */

static int gcd(int a, int b)
{
	while (b) {
		int t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* Draws a valid random shape: n 1..5, cin and cout 1..9, h, w 1..13, k in
 * {1,3,5}, stride 1..2, pad 0..k/2, groups among 1, gcd(cin, cout) and cin
 * (depthwise) when cout is a multiple of cin. */
static void random_shape(nn_conv_shape *s, int *n)
{
	static const int ks[] = { 1, 3, 5 };
	for (;;) {
		*n = rng_int(1, 5);
		s->cin = rng_int(1, 9);
		s->cout = rng_int(1, 9);
		s->h = rng_int(1, 13);
		s->w = rng_int(1, 13);
		s->k = ks[rng_int(0, 2)];
		s->stride = rng_int(1, 2);
		s->pad = rng_int(0, s->k / 2);
		int choice[3] = { 1, gcd(s->cin, s->cout), s->cout % s->cin == 0 ? s->cin : 1 };
		s->groups = choice[rng_int(0, 2)];
		if (s->h + 2 * s->pad >= s->k && s->w + 2 * s->pad >= s->k)
			return;
	}
}

static double max_abs(const float *a, size_t n)
{
	double m = 0.0;
	for (size_t i = 0; i < n; i++)
		m = fmax(m, fabs((double)a[i]));
	return m;
}

/* Expects got within 1e-4 * max(1, max|want|) of want everywhere. */
static void expect_near(const char *what, const nn_conv_shape *s, int n, const float *got,
                        const float *want, size_t len)
{
	double scale = fmax(1.0, max_abs(want, len)), worst = -1.0;
	size_t wi = 0;
	for (size_t i = 0; i < len; i++) {
		double d = fabs((double)got[i] - (double)want[i]);
		if (!(d <= worst)) {
			worst = d;
			wi = i;
		}
	}
	if (len == 0)
		return;
	cr_expect(worst < 1e-4 * scale,
	          "fast vs naive %s, n%d cin%d %dx%d cout%d k%d s%d p%d g%d, threads %d: "
	          "[%zu] fast %.9g, naive %.9g (diff %.3g, limit %.3g)", what, n, s->cin, s->h,
	          s->w, s->cout, s->k, s->stride, s->pad, s->groups, nn_threads(), wi,
	          (double)got[wi], (double)want[wi], worst, 1e-4 * scale);
}

static void fast_vs_naive(int threads)
{
	nn_set_threads(threads);
	rng_seed(1234);
	int ndepthwise = 0, ngrouped = 0, nstride2 = 0;
	for (int iter = 0; iter < 200; iter++) {
		nn_conv_shape s;
		int n;
		random_shape(&s, &n);
		int oh = (s.h + 2 * s.pad - s.k) / s.stride + 1;
		int ow = (s.w + 2 * s.pad - s.k) / s.stride + 1;
		cr_assert_eq(nn_conv_shape_init(&s), 0, "valid shape %d rejected", iter);
		cr_assert(s.oh == oh && s.ow == ow, "shape %d: oh, ow %d, %d, want %d, %d", iter,
		          s.oh, s.ow, oh, ow);
		ndepthwise += s.groups == s.cin && s.groups > 1;
		ngrouped += s.groups > 1 && s.groups < s.cin;
		nstride2 += s.stride == 2;

		size_t nx = (size_t)n * s.cin * s.h * s.w;
		size_t nw = (size_t)s.cout * (s.cin / s.groups) * s.k * s.k;
		size_t ny = (size_t)n * s.cout * s.oh * s.ow;
		float *x = randn(nx, 1.0), *w = randn(nw, 1.0), *dy = randn(ny, 1.0);
		/* Both paths start their gradients from the same non-zero values. */
		float *dx0 = randn(nx, 1.0), *dw0 = randn(nw, 1.0);
		float *y1 = filled(ny, 1e30f), *y2 = filled(ny, -1e30f);
		float *dx1 = alloc_floats(nx), *dx2 = alloc_floats(nx);
		float *dw1 = alloc_floats(nw), *dw2 = alloc_floats(nw);
		memcpy(dx1, dx0, nx * sizeof *dx0);
		memcpy(dx2, dx0, nx * sizeof *dx0);
		memcpy(dw1, dw0, nw * sizeof *dw0);
		memcpy(dw2, dw0, nw * sizeof *dw0);
		float *ws = filled(nn_conv_workspace(&s), NAN);

		nn_conv_forward_naive(&s, n, x, w, y1);
		nn_conv_backward_naive(&s, n, x, w, dy, dx1, dw1);
		nn_conv_forward(&s, n, x, w, y2, ws);
		nn_conv_backward(&s, n, x, w, dy, dx2, dw2, ws);
		expect_near("y", &s, n, y2, y1, ny);
		expect_near("dx", &s, n, dx2, dx1, nx);
		expect_near("dw", &s, n, dw2, dw1, nw);

		float *bufs[] = { x, w, dy, dx0, dw0, y1, y2, dx1, dx2, dw1, dw2, ws };
		for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
			free(bufs[i]);
	}
	/* The draw must actually exercise the interesting paths. */
	cr_assert(ndepthwise >= 10 && ngrouped >= 5 && nstride2 >= 50,
	          "shape draw too narrow: %d depthwise, %d grouped, %d stride 2", ndepthwise,
	          ngrouped, nstride2);
}

Test(gradcheck, conv_onednn_vs_naive_1_thread)
{
	nn_conv_set_engine(NN_ENGINE_ONEDNN);
	cr_assert_eq(nn_conv_engine(), NN_ENGINE_ONEDNN, "oneDNN is not available");
	fast_vs_naive(1);
}

Test(gradcheck, conv_onednn_vs_naive_2_threads)
{
	nn_conv_set_engine(NN_ENGINE_ONEDNN);
	cr_assert_eq(nn_conv_engine(), NN_ENGINE_ONEDNN, "oneDNN is not available");
	fast_vs_naive(2);
}

Test(gradcheck, conv_reference_vs_naive_1_thread)
{
	nn_conv_set_engine(NN_ENGINE_REFERENCE);
	fast_vs_naive(1);
}

Test(gradcheck, conv_reference_vs_naive_2_threads)
{
	nn_conv_set_engine(NN_ENGINE_REFERENCE);
	fast_vs_naive(2);
}

/* ---- threads ---------------------------------------------------------- */

/* graftd pretrains the grafts of two jobs at once, on two threads: the
 * oneDNN path keeps its primitives and stream per thread (a shared cache
 * corrupted itself and hung a job).  Two threads, each its own shapes, many
 * times: every result equals the naive one. */
struct conv_job {
	nn_conv_shape s;
	int n, bad;
	float *x, *w, *want, *y;
};

static void *conv_thread(void *arg)
{
	struct conv_job *j = arg;
	size_t ny = (size_t)j->n * j->s.cout * j->s.oh * j->s.ow;
	for (int it = 0; it < 100; it++) {
		/* Alternate two batch sizes, so that primitives are looked up and
		 * made while the other thread does the same. */
		int n = it % 2 ? j->n : 1;
		nn_conv_forward(&j->s, n, j->x, j->w, j->y, NULL);
		size_t len = n == j->n ? ny : ny / (size_t)j->n;
		for (size_t i = 0; i < len; i++)
			j->bad += fabsf(j->y[i] - j->want[i]) > 1e-3f * (1.0f + fabsf(j->want[i]));
	}
	return NULL;
}

Test(gradcheck, conv_onednn_on_two_threads_at_once)
{
	nn_conv_set_engine(NN_ENGINE_ONEDNN);
	cr_assert_eq(nn_conv_engine(), NN_ENGINE_ONEDNN, "oneDNN is not available");
	nn_set_threads(1);
	rng_seed(99);
	struct conv_job jobs[2] = {
		{ .s = { .cin = 8, .h = 12, .w = 12, .cout = 16, .k = 3, .stride = 1, .pad = 1,
		         .groups = 1 }, .n = 4 },
		{ .s = { .cin = 16, .h = 9, .w = 9, .cout = 16, .k = 5, .stride = 2, .pad = 2,
		         .groups = 16 }, .n = 3 },
	};
	pthread_t th[2];
	for (int k = 0; k < 2; k++) {
		struct conv_job *j = &jobs[k];
		cr_assert_eq(nn_conv_shape_init(&j->s), 0);
		size_t nx = (size_t)j->n * j->s.cin * j->s.h * j->s.w;
		size_t nw = (size_t)j->s.cout * (j->s.cin / j->s.groups) * j->s.k * j->s.k;
		size_t ny = (size_t)j->n * j->s.cout * j->s.oh * j->s.ow;
		j->x = randn(nx, 1.0);
		j->w = randn(nw, 1.0);
		j->want = alloc_floats(ny);
		j->y = alloc_floats(ny);
		nn_conv_forward_naive(&j->s, j->n, j->x, j->w, j->want);
	}
	for (int k = 0; k < 2; k++)
		pthread_create(&th[k], NULL, conv_thread, &jobs[k]);
	for (int k = 0; k < 2; k++) {
		pthread_join(th[k], NULL);
		cr_assert_eq(jobs[k].bad, 0, "thread %d: %d wrong outputs", k, jobs[k].bad);
		free(jobs[k].x);
		free(jobs[k].w);
		free(jobs[k].want);
		free(jobs[k].y);
	}
}

/* ---- determinism ------------------------------------------------------- */

/* Same inputs, two threads, two runs: forward and backward bit-identical.  The
 * batch is larger than the thread count so the batch split (and the weight
 * gradient reduction across threads) is exercised. */
Test(gradcheck, conv_deterministic_2_threads)
{
	nn_set_threads(2);
	static const int shapes[][9] = {
		{ 7, 6, 11, 9, 8, 3, 1, 1, 1 },
		{ 5, 8, 9, 9, 8, 3, 2, 1, 8 },
		{ 6, 4, 10, 10, 6, 5, 1, 2, 2 },
		{ 9, 5, 6, 6, 7, 1, 1, 0, 1 },
	};
	for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
		const int *p = shapes[si];
		int n = p[0];
		nn_conv_shape s = { .cin = p[1], .h = p[2], .w = p[3], .cout = p[4], .k = p[5],
		                    .stride = p[6], .pad = p[7], .groups = p[8] };
		cr_assert_eq(nn_conv_shape_init(&s), 0);
		size_t nx = (size_t)n * s.cin * s.h * s.w;
		size_t nw = (size_t)s.cout * (s.cin / s.groups) * s.k * s.k;
		size_t ny = (size_t)n * s.cout * s.oh * s.ow;
		rng_seed(1300 + si);
		float *x = randn(nx, 1.0), *w = randn(nw, 1.0), *dy = randn(ny, 1.0);
		float *out[2][3];
		for (int run = 0; run < 2; run++) {
			float *ws = filled(nn_conv_workspace(&s), NAN);
			out[run][0] = zeros(ny);
			out[run][1] = zeros(nx);
			out[run][2] = zeros(nw);
			nn_conv_forward(&s, n, x, w, out[run][0], ws);
			nn_conv_backward(&s, n, x, w, dy, out[run][1], out[run][2], ws);
			free(ws);
		}
		static const char *names[3] = { "y", "dx", "dw" };
		size_t lens[3] = { ny, nx, nw };
		for (int k = 0; k < 3; k++) {
			size_t first = lens[k];
			for (size_t i = 0; i < lens[k] && first == lens[k]; i++)
				if (memcmp(&out[0][k][i], &out[1][k][i], sizeof(float)) != 0)
					first = i;
			cr_expect_eq(first, lens[k], "shape %zu %s differs between runs at [%zu]: "
			             "%.9g then %.9g", si, names[k], first,
			             first < lens[k] ? (double)out[0][k][first] : 0.0,
			             first < lens[k] ? (double)out[1][k][first] : 0.0);
			free(out[0][k]);
			free(out[1][k]);
		}
		free(x);
		free(w);
		free(dy);
	}
}

/* ---- shape validation -------------------------------------------------- */

Test(gradcheck, conv_shape_init_rejects_impossible_shapes)
{
	/* cin, h, w, cout, k, stride, pad, groups */
	static const int bad[][8] = {
		{ 0, 5, 5, 4, 3, 1, 1, 1 },   /* no input channels */
		{ 3, 0, 5, 4, 3, 1, 1, 1 },   /* empty image */
		{ 3, 5, 5, 0, 3, 1, 1, 1 },   /* no output channels */
		{ 3, 5, 5, 4, 0, 1, 1, 1 },   /* empty kernel */
		{ 3, 5, 5, 4, 3, 0, 1, 1 },   /* stride 0 */
		{ 3, 5, 5, 4, 3, 1, -1, 1 },  /* negative padding */
		{ 3, 5, 5, 4, 3, 1, 1, 0 },   /* zero groups */
		{ 3, 5, 5, 4, 3, 1, 1, 2 },   /* groups does not divide cin */
		{ 4, 5, 5, 6, 3, 1, 1, 4 },   /* groups does not divide cout */
		{ 3, 2, 5, 4, 5, 1, 1, 1 },   /* kernel taller than the padded image */
		{ 3, 5, 2, 4, 5, 1, 1, 1 },   /* kernel wider than the padded image */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const int *p = bad[i];
		nn_conv_shape s = { .cin = p[0], .h = p[1], .w = p[2], .cout = p[3], .k = p[4],
		                    .stride = p[5], .pad = p[6], .groups = p[7] };
		cr_expect_eq(nn_conv_shape_init(&s), GRAFT_EINVAL, "bad shape %zu accepted", i);
	}
	nn_conv_shape s = { .cin = 4, .h = 7, .w = 6, .cout = 8, .k = 3, .stride = 2, .pad = 1,
	                    .groups = 4 };
	cr_assert_eq(nn_conv_shape_init(&s), 0);
	cr_expect(s.oh == 4 && s.ow == 3, "7x6, k3 s2 p1 gives %dx%d, want 4x3", s.oh, s.ow);
}
