/*
 * conv_dnnl.c - convolutions on oneDNN (libdnnl, the library Debian's
 * PyTorch links): forward, backward-data and backward-weights primitives,
 * JIT-compiled for the machine, created once per shape and batch and kept,
 * so a training step only executes them.  nn_conv_forward and
 * nn_conv_backward come here unless the reference path is asked for
 * (GRAFT_ENGINE=reference); the im2col + sgemm path of conv.c stays as the
 * reference twin the tests compare against.
 *
 * Layouts.  Tensors stay in graft's plain layouts (x and y NCHW, w OIHW,
 * GOIHW for groups), which oneDNN is told exactly; when it prefers a
 * blocked layout for a tensor (nChw16c for the activations of wide
 * layers, blocked weights), the tensor is reordered into a buffer of the
 * primitive's own for the call and back.  Keeping activations blocked
 * from layer to layer is the next step; this is the per-layer one.
 */
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "nn/dnnl_internal.h"
#include "nn/nn.h"

/* Primitives kept: a search trains many networks in one worker, each of
 * a few shapes at a training and an evaluation batch size. */
#define MAX_KEPT 256

enum { FWD, BWD_DATA, BWD_WEIGHTS, NKINDS };

/* One tensor argument of a primitive: the plain layout graft holds it in,
 * and, when the primitive wants another, the reorders and buffer for it. */
struct arg {
	int id;                          /* DNNL_ARG_* */
	dnnl_memory_desc_t user, want;
	dnnl_primitive_t to_want, to_user;
	dnnl_memory_t user_mem, want_mem;
	int blocked;
};

struct prim {
	nn_conv_shape s;
	int n, kind;
	dnnl_primitive_t p;
	dnnl_memory_t scratch;
	struct arg a[3];                 /* src/dst/weights or their diffs */
	int nargs;
	float *out;                      /* backward: the gradient before it is added */
	unsigned long used;              /* for evicting the least recently used */
};

/* The engine is shared; streams and primitives are not safe to share
 * between threads (graftd pretrains the grafts of two jobs at once on its
 * thread pool), so each thread keeps its own. */
static struct {
	pthread_once_t once;
	int ok;
	dnnl_engine_t eng;
	pthread_key_t key;       /* its destructor frees an ending thread's primitives */
} g = { .once = PTHREAD_ONCE_INIT };

static _Thread_local struct {
	dnnl_stream_t stream;
	struct prim *kept[MAX_KEPT];
	int nkept;
	unsigned long clock;
} t;

static void prim_free(struct prim *p);

/* A thread ends: what it kept goes with it. */
static void thread_done(void *unused)
{
	(void)unused;
	for (int i = 0; i < t.nkept; i++)
		prim_free(t.kept[i]);
	t.nkept = 0;
	if (t.stream)
		dnnl_stream_destroy(t.stream);
	t.stream = NULL;
}

static void init(void)
{
	g.ok = dnnl_engine_create(&g.eng, dnnl_cpu, 0) == dnnl_success &&
	       pthread_key_create(&g.key, thread_done) == 0;
}

int nn__dnnl_available(void)
{
	pthread_once(&g.once, init);
	return g.ok;
}

dnnl_engine_t nn__dnnl_engine(void)
{
	return g.eng;
}

/* This thread's stream, made on first use. */
dnnl_stream_t nn__dnnl_stream(void)
{
	if (!t.stream) {
		if (dnnl_stream_create(&t.stream, g.eng, dnnl_stream_default_flags) != dnnl_success)
			return t.stream = NULL;
		/* Any non-NULL value: the destructor runs at this thread's end. */
		pthread_setspecific(g.key, &t);
	}
	return t.stream;
}

static void arg_free(struct arg *a)
{
	dnnl_primitive_destroy(a->to_want);
	dnnl_primitive_destroy(a->to_user);
	dnnl_memory_destroy(a->user_mem);
	dnnl_memory_destroy(a->want_mem);
}

static void prim_free(struct prim *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->nargs; i++)
		arg_free(&p->a[i]);
	dnnl_primitive_destroy(p->p);
	dnnl_memory_destroy(p->scratch);
	free(p->out);
	free(p);
}

static int plain_md(dnnl_memory_desc_t *md, int ndims, const dnnl_dims_t dims,
                    dnnl_format_tag_t tag)
{
	return dnnl_memory_desc_init_by_tag(md, ndims, dims, dnnl_f32, tag) == dnnl_success ? 0
	                                                                                   : -1;
}

/* A reorder primitive from layout from to layout to. */
static int make_reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                        dnnl_primitive_t *out)
{
	dnnl_primitive_desc_t rpd;
	if (dnnl_reorder_primitive_desc_create(&rpd, from, g.eng, to, g.eng, NULL) != dnnl_success)
		return -1;
	int rc = dnnl_primitive_create(out, rpd);
	dnnl_primitive_desc_destroy(rpd);
	return rc == dnnl_success ? 0 : -1;
}

/* Sets up argument a: the plain layout user, the layout the primitive
 * wants (queried from pd), and reorders between them when they differ.
 * to_want and to_user say which way data has to go. */
static int arg_init(struct arg *a, int id, const dnnl_memory_desc_t *user,
                    const_dnnl_primitive_desc_t pd, dnnl_query_t what, int to_want,
                    int to_user)
{
	const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, what, 0);
	memset(a, 0, sizeof(*a));
	a->id = id;
	a->user = *user;
	if (!want)
		return -1;
	a->want = *want;
	if (dnnl_memory_create(&a->user_mem, &a->user, g.eng, DNNL_MEMORY_NONE) != dnnl_success)
		return -1;
	a->blocked = !dnnl_memory_desc_equal(&a->user, &a->want);
	if (!a->blocked)
		return 0;
	if (dnnl_memory_create(&a->want_mem, &a->want, g.eng, DNNL_MEMORY_ALLOCATE) !=
	    dnnl_success)
		return -1;
	if (to_want && make_reorder(&a->user, &a->want, &a->to_want))
		return -1;
	if (to_user && make_reorder(&a->want, &a->user, &a->to_user))
		return -1;
	return 0;
}

void nn__dnnl_conv_geometry(const nn_conv_shape *s, nn__dnnl_conv_geom *out)
{
	if (s->groups > 1) {
		out->wnd = 5;
		out->wtag = dnnl_goihw;
		out->wei[0] = s->groups, out->wei[1] = s->cout / s->groups;
		out->wei[2] = s->cin / s->groups, out->wei[3] = out->wei[4] = s->k;
	} else {
		out->wnd = 4;
		out->wtag = dnnl_oihw;
		out->wei[0] = s->cout, out->wei[1] = s->cin, out->wei[2] = out->wei[3] = s->k;
	}
	out->strides[0] = out->strides[1] = s->stride;
	out->pad[0] = out->pad[1] = s->pad;
	/* The right padding that gives oh, ow exactly (the sizes oneDNN checks). */
	out->pad_r[0] = (s->oh - 1) * s->stride + s->k - s->h - s->pad;
	out->pad_r[1] = (s->ow - 1) * s->stride + s->k - s->w - s->pad;
}

/* Creates the primitive of one kind for shape s and batch n. */
static struct prim *prim_new(const nn_conv_shape *s, int n, int kind)
{
	dnnl_dims_t src = { n, s->cin, s->h, s->w }, dst = { n, s->cout, s->oh, s->ow };
	dnnl_memory_desc_t src_u, wei_u, dst_u, src_a, wei_a, dst_a;
	nn__dnnl_conv_geom geo;
	struct prim *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->s = *s;
	p->n = n;
	p->kind = kind;
	nn__dnnl_conv_geometry(s, &geo);
	const dnnl_dim_t *strides = geo.strides, *pad = geo.pad, *pad_r = geo.pad_r;
	if (plain_md(&src_u, 4, src, dnnl_nchw) || plain_md(&wei_u, geo.wnd, geo.wei, geo.wtag) ||
	    plain_md(&dst_u, 4, dst, dnnl_nchw) || plain_md(&src_a, 4, src, dnnl_format_tag_any) ||
	    plain_md(&wei_a, geo.wnd, geo.wei, dnnl_format_tag_any) ||
	    plain_md(&dst_a, 4, dst, dnnl_format_tag_any))
		goto fail;

	dnnl_convolution_desc_t fwd_d, d;
	if (dnnl_convolution_forward_desc_init(&fwd_d, dnnl_forward_training,
	                                       dnnl_convolution_direct, &src_a, &wei_a, NULL,
	                                       &dst_a, strides, pad, pad_r) != dnnl_success)
		goto fail;
	dnnl_primitive_attr_t attr;
	if (dnnl_primitive_attr_create(&attr) != dnnl_success)
		goto fail;
	dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
	dnnl_primitive_desc_t hint = NULL, pd = NULL;
	int rc = dnnl_primitive_desc_create(&hint, &fwd_d, attr, g.eng, NULL);
	if (rc == dnnl_success && kind == FWD) {
		pd = hint;
		hint = NULL;
	} else if (rc == dnnl_success && kind == BWD_DATA) {
		rc = dnnl_convolution_backward_data_desc_init(&d, dnnl_convolution_direct, &src_a,
		                                              &wei_a, &dst_a, strides, pad, pad_r);
		if (rc == dnnl_success)
			rc = dnnl_primitive_desc_create(&pd, &d, attr, g.eng, hint);
	} else if (rc == dnnl_success) {
		rc = dnnl_convolution_backward_weights_desc_init(&d, dnnl_convolution_direct, &src_a,
		                                                 &wei_a, NULL, &dst_a, strides, pad,
		                                                 pad_r);
		if (rc == dnnl_success)
			rc = dnnl_primitive_desc_create(&pd, &d, attr, g.eng, hint);
	}
	dnnl_primitive_desc_destroy(hint);
	dnnl_primitive_attr_destroy(attr);
	if (rc != dnnl_success || !pd)
		goto fail_pd;

	/* The arguments: the inputs go to the primitive's layout, the outputs
	 * come back from it. */
	if (kind == FWD)
		rc = arg_init(&p->a[0], DNNL_ARG_SRC, &src_u, pd, dnnl_query_src_md, 1, 0) ||
		     arg_init(&p->a[1], DNNL_ARG_WEIGHTS, &wei_u, pd, dnnl_query_weights_md, 1, 0) ||
		     arg_init(&p->a[2], DNNL_ARG_DST, &dst_u, pd, dnnl_query_dst_md, 0, 1);
	else if (kind == BWD_DATA)
		rc = arg_init(&p->a[0], DNNL_ARG_DIFF_DST, &dst_u, pd, dnnl_query_diff_dst_md, 1, 0) ||
		     arg_init(&p->a[1], DNNL_ARG_WEIGHTS, &wei_u, pd, dnnl_query_weights_md, 1, 0) ||
		     arg_init(&p->a[2], DNNL_ARG_DIFF_SRC, &src_u, pd, dnnl_query_diff_src_md, 0, 1);
	else
		rc = arg_init(&p->a[0], DNNL_ARG_SRC, &src_u, pd, dnnl_query_src_md, 1, 0) ||
		     arg_init(&p->a[1], DNNL_ARG_DIFF_DST, &dst_u, pd, dnnl_query_diff_dst_md, 1, 0) ||
		     arg_init(&p->a[2], DNNL_ARG_DIFF_WEIGHTS, &wei_u, pd,
		              dnnl_query_diff_weights_md, 0, 1);
	p->nargs = 3;
	const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
	if (!rc && smd && dnnl_memory_desc_get_size(smd) > 0)
		rc = dnnl_memory_create(&p->scratch, smd, g.eng, DNNL_MEMORY_ALLOCATE) != dnnl_success;
	if (!rc)
		rc = dnnl_primitive_create(&p->p, pd) != dnnl_success;
	if (!rc && kind != FWD) {
		size_t len = kind == BWD_DATA ? (size_t)n * s->cin * s->h * s->w
		                              : (size_t)s->cout * (s->cin / s->groups) * s->k * s->k;
		rc = !(p->out = malloc(len * sizeof(float)));
	}
	dnnl_primitive_desc_destroy(pd);
	if (rc)
		goto fail;
	return p;
fail_pd:
	dnnl_primitive_desc_destroy(pd);
fail:
	prim_free(p);
	return NULL;
}

static int same_shape(const nn_conv_shape *a, const nn_conv_shape *b)
{
	return a->cin == b->cin && a->h == b->h && a->w == b->w && a->cout == b->cout &&
	       a->k == b->k && a->stride == b->stride && a->pad == b->pad &&
	       a->groups == b->groups;
}

/* The kept primitive for (s, n, kind), made on first use; NULL when oneDNN
 * cannot do it (the caller falls back to the reference path). */
static struct prim *get(const nn_conv_shape *s, int n, int kind)
{
	if (!nn__dnnl_available() || !nn__dnnl_stream())
		return NULL;
	for (int i = 0; i < t.nkept; i++) {
		struct prim *p = t.kept[i];
		if (p->n == n && p->kind == kind && same_shape(&p->s, s)) {
			p->used = ++t.clock;
			return p;
		}
	}
	struct prim *p = prim_new(s, n, kind);
	if (!p)
		return NULL;
	if (t.nkept == MAX_KEPT) {
		int old = 0;
		for (int i = 1; i < t.nkept; i++)
			if (t.kept[i]->used < t.kept[old]->used)
				old = i;
		prim_free(t.kept[old]);
		t.kept[old] = t.kept[--t.nkept];
	}
	p->used = ++t.clock;
	t.kept[t.nkept++] = p;
	return p;
}

static int reorder(dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to)
{
	dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, from }, { DNNL_ARG_TO, to } };
	return dnnl_primitive_execute(r, t.stream, 2, args) == dnnl_success ? 0 : -1;
}

/* Runs p on the user buffers (in the order of p->a). */
static int run(struct prim *p, const float *b0, const float *b1, float *b2)
{
	const float *user[3] = { b0, b1, b2 };
	dnnl_exec_arg_t args[4];
	int n = 0;
	for (int i = 0; i < 3; i++) {
		struct arg *a = &p->a[i];
		if (dnnl_memory_set_data_handle(a->user_mem, (void *)user[i]) != dnnl_success)
			return -1;
		if (a->blocked && a->to_want && reorder(a->to_want, a->user_mem, a->want_mem))
			return -1;
		args[n++] = (dnnl_exec_arg_t){ a->id, a->blocked ? a->want_mem : a->user_mem };
	}
	if (p->scratch)
		args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, p->scratch };
	if (dnnl_primitive_execute(p->p, t.stream, n, args) != dnnl_success)
		return -1;
	struct arg *out = &p->a[2];
	if (out->blocked && reorder(out->to_user, out->want_mem, out->user_mem))
		return -1;
	return dnnl_stream_wait(t.stream) == dnnl_success ? 0 : -1;
}

int nn__dnnl_conv_forward(const nn_conv_shape *s, int n, const float *x, const float *w,
                          float *y)
{
	struct prim *p = get(s, n, FWD);
	return p ? run(p, x, w, y) : -1;
}

/* Adds the gradient oneDNN wrote (it overwrites its outputs; nn's backward
 * accumulates into dx and dw). */
static void add(float *to, const float *from, size_t len)
{
	#pragma omp parallel for schedule(static) if (len > 65536)
	for (size_t i = 0; i < len; i++)
		to[i] += from[i];
}

int nn__dnnl_conv_backward(const nn_conv_shape *s, int n, const float *x, const float *w,
                           const float *dy, float *dx, float *dw)
{
	if (dx) {
		struct prim *p = get(s, n, BWD_DATA);
		if (!p || run(p, dy, w, p->out))
			return -1;
		add(dx, p->out, (size_t)n * s->cin * s->h * s->w);
	}
	if (dw) {
		struct prim *p = get(s, n, BWD_WEIGHTS);
		if (!p || run(p, x, dy, p->out))
			return -1;
		add(dw, p->out, (size_t)s->cout * (s->cin / s->groups) * s->k * s->k);
	}
	return 0;
}

/* ---- which path runs ---------------------------------------------------------- */

static int engine = -1;   /* -1: not decided yet; else enum nn_engine */

enum nn_engine nn_conv_engine(void)
{
	if (engine < 0) {
		const char *e = getenv("GRAFT_ENGINE");
		engine = (e && !strcmp(e, "reference")) || !nn__dnnl_available() ? NN_ENGINE_REFERENCE
		                                                                  : NN_ENGINE_ONEDNN;
	}
	return (enum nn_engine)engine;
}

void nn_conv_set_engine(enum nn_engine e)
{
	engine = e == NN_ENGINE_ONEDNN && !nn__dnnl_available() ? NN_ENGINE_REFERENCE : e;
}
