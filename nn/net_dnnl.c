/*
 * net_dnnl.c - a network on oneDNN with its activations in oneDNN's blocked
 * layouts from the first convolution to the global average pool, so that
 * nothing is reordered between layers: channels in blocks of 16 (nChw16c,
 * what its AVX-512 convolutions read and write) when 16 divides them on an
 * AVX-512 machine, of 8 (nChw8c) when 8 does, else plain.  Only the input
 * batch (when a layer other than a convolution reads it), a cached graft output, the feature
 * maps the plain head reads, and the weights (plain in the parameter block,
 * which SGD walks) are reordered; so is a convolution whose layouts would
 * leave oneDNN only its reference loops (16 channels in, 24 out, say).
 *
 * A plan is made per network, batch size and mode: every primitive and
 * buffer it needs is created once (oneDNN's own primitive cache makes a
 * shape seen before cheap: 3-8 ms a candidate), and a step is a list of
 * executions.  Which op runs how, in ms per training step of net M at batch
 * 64 on 2 threads (make bench: this plan | the reference path, plain NCHW,
 * im2col + sgemm and graft's own loops; the note of issue 11 has the rest):
 *   convolution forward     10.7 | 96.3   oneDNN JIT
 *   conv backward d + w     23.2 | 187.1  oneDNN JIT
 *   batch norm + ReLU fwd    1.9 | 4.7    oneDNN, ReLU fused (a workspace bitmask)
 *   batch norm + ReLU bwd    3.2 | 6.7    oneDNN
 *   max-pool 2x2             3.8 | 7.2    oneDNN, with the argmax workspace (graft's
 *                                         own loops on the blocked layout, in one
 *                                         sitting: 4.7-5.0 against oneDNN's 4.4-4.7)
 *   ReLU alone                            oneDNN eltwise, backward from its output
 *   residual add (+ReLU)   11.9 | 18.1    graft's own loops, forward and backward
 *                          (net A)        (oneDNN 2.6's binary with a ReLU
 *                                         post-op is wrong on nChw8c)
 *   gradient sums           1.5 |  -      graft's own loop (a node read twice)
 *   reorders                0.7 |  -
 *   GAP, linear, loss, SGD  0.6 | 0.9     graft's own loops on plain buffers
 *
 * Gradients: oneDNN overwrites its outputs, so the first gradient into a
 * node (in backward order) is written in place and any later one goes
 * through a scratch buffer and is added.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/dnnl_internal.h"
#include "nn/net_internal.h"

enum step_kind {
	STEP_PRIM,     /* a primitive's execution */
	STEP_ACCUM,    /* dst += src */
	STEP_RUNNING,  /* BN running statistics from the batch's */
	STEP_ADD_FWD,  /* a residual add (+ReLU): dst = src + dst2 */
	STEP_ADD_BWD,  /* a residual add's gradient into its two inputs */
	STEP_ZERO,     /* a gradient nothing writes */
	STEP_FOLD      /* a BN folded into the convolution before it */
};

struct step {
	enum step_kind kind;
	int node;
	int graft;           /* 1: a graft layer's, skipped when the graft's
	                        output is cached; 2: run only then; 3: run
	                        only when computing the graft's output alone */
	dnnl_primitive_t p;
	int nargs;
	dnnl_exec_arg_t args[10];
	float *dst, *src, *mask; /* ACCUM, ZERO, ADD_BWD (mask: the add's output);
	                            RUNNING: src, mask the batch's mean, variance */
	float *dst2;         /* ADD_BWD: the second input's gradient; ADD_FWD:
	                        the second input */
	enum nn_prof_part prof; /* what nn_net_profile_step counts it as */
	int first, first2;   /* ADD_BWD: whether dst, dst2 are written, not added;
	                        ADD_FWD: first is the ReLU; FOLD: the BN node,
	                        dst, dst2 the folded weights and bias */
	size_t len;
};

/* What a node's forward build leaves for its backward one. */
struct node_plan {
	dnnl_primitive_desc_t hint;      /* the forward primitive's, for the backward */
	dnnl_memory_t src, w, ws, mean, var, scale, shift;
	dnnl_memory_t csrc;              /* a convolution's src in its own layout */
	int folded;                      /* a BN folded into its convolution */
	dnnl_memory_desc_t wplain;
};

struct nn__plan {
	int n, train, last;
	unsigned long used;
	dnnl_memory_desc_t *md;    /* per node: its activations' layout */
	dnnl_memory_t *y, *dy;     /* per node, blocked */
	int *grads_in;             /* per node: gradients written into dy so far */
	struct node_plan *np;      /* per node, while building */
	dnnl_memory_t input;       /* the caller's batch, plain NCHW */
	dnnl_memory_t graft_feats; /* a cached graft output, plain NCHW */
	float *scratch;            /* a gradient that is added, not written */
	size_t scratch_len;
	struct step *fwd, *bwd;
	int nfwd, nbwd, capfwd, capbwd;
	dnnl_memory_t *mems;       /* everything to destroy */
	int nmems, capmems;
	int graft_first, graft_last;
	const nn_net *net;         /* while building */
	int refs;                  /* steps on oneDNN's reference loops */
	int ok;
};

static void *grow(void *p, int *cap, int n, size_t size)
{
	if (n < *cap)
		return p;
	int c = *cap ? 2 * *cap : 16;
	void *q = realloc(p, c * size);
	if (q)
		*cap = c;
	return q;
}

/* What a step counts as in a profile (a reorder's and a convolution's
 * backward weights are set where they are made). */
static enum nn_prof_part prof_part(enum nn__kind node, enum step_kind kind, int backward)
{
	switch (kind) {
	case STEP_ACCUM:
	case STEP_ZERO: return NN_PROF_GRAD_SUM;
	case STEP_RUNNING:
	case STEP_FOLD: return NN_PROF_BN_FWD;
	case STEP_ADD_FWD:
	case STEP_ADD_BWD: return NN_PROF_ADD;
	case STEP_PRIM: break;
	}
	switch (node) {
	case NODE_CONV: return backward ? NN_PROF_CONV_BWD_DATA : NN_PROF_CONV_FWD;
	case NODE_BN: return backward ? NN_PROF_BN_BWD : NN_PROF_BN_FWD;
	case NODE_RELU: return NN_PROF_RELU;
	case NODE_MAXPOOL: return NN_PROF_POOL;
	case NODE_ADD: return NN_PROF_ADD;
	default: return NN_PROF_REORDER;
	}
}

static struct step *push_step(struct nn__plan *p, int backward, enum step_kind kind, int node)
{
	struct step **v = backward ? &p->bwd : &p->fwd;
	int *n = backward ? &p->nbwd : &p->nfwd, *cap = backward ? &p->capbwd : &p->capfwd;
	struct step *q = grow(*v, cap, *n, sizeof(**v));
	if (!q) {
		p->ok = 0;
		return NULL;
	}
	*v = q;
	struct step *s = &q[(*n)++];
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->node = node;
	s->graft = !backward && p->graft_last && node >= p->graft_first && node <= p->graft_last;
	s->prof = prof_part(kind == STEP_PRIM ? p->net->node[node].kind : NODE_INPUT, kind,
	                    backward);
	return s;
}

/* A memory of layout md on buf (DNNL_MEMORY_ALLOCATE: oneDNN's own;
 * DNNL_MEMORY_NONE: set before each run), owned by p. */
static dnnl_memory_t mem(struct nn__plan *p, const dnnl_memory_desc_t *md, void *buf)
{
	dnnl_memory_t m = NULL;
	dnnl_memory_t *v = grow(p->mems, &p->capmems, p->nmems, sizeof(*v));
	if (!v || !md) {
		p->ok = 0;
		return NULL;
	}
	p->mems = v;
	if (dnnl_memory_create(&m, md, nn__dnnl_engine(), buf) != dnnl_success) {
		p->ok = 0;
		return NULL;
	}
	p->mems[p->nmems++] = m;
	return m;
}

static dnnl_memory_t owned(struct nn__plan *p, const dnnl_memory_desc_t *md)
{
	return mem(p, md, DNNL_MEMORY_ALLOCATE);
}

static float *data_of(dnnl_memory_t m)
{
	void *h = NULL;
	if (m)
		dnnl_memory_get_data_handle(m, &h);
	return h;
}

static size_t floats_of(const dnnl_memory_desc_t *md)
{
	return dnnl_memory_desc_get_size(md) / sizeof(float);
}

static dnnl_primitive_desc_t pd_of(const void *op_desc, const_dnnl_primitive_attr_t attr,
                                   const_dnnl_primitive_desc_t hint)
{
	dnnl_primitive_desc_t pd = NULL;
	if (dnnl_primitive_desc_create(&pd, op_desc, attr, nn__dnnl_engine(), hint) !=
	    dnnl_success)
		return NULL;
	return pd;
}

/* Whether oneDNN gave pd its reference implementation (plain loops, 10-100x
 * slower than its JIT kernels; named "ref:any", "bnorm_ref:any", ...): it
 * does so for a convolution between layouts its kernels do not pair, such
 * as 8 channel blocks in and 16 out, and for layouts no kernel of the
 * machine takes. */
static int is_ref(const_dnnl_primitive_desc_t pd)
{
	const char *impl = NULL;
	dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
	return impl && strstr(impl, "ref");
}

/* A step executing the primitive of pd (which it destroys) on args. */
static struct step *prim_step(struct nn__plan *p, int backward, int node,
                              dnnl_primitive_desc_t pd, const dnnl_exec_arg_t *args, int nargs)
{
	struct step *s = pd && p->ok ? push_step(p, backward, STEP_PRIM, node) : NULL;
	if (s && dnnl_primitive_create(&s->p, pd) == dnnl_success) {
		memcpy(s->args, args, nargs * sizeof(*args));
		s->nargs = nargs;
		p->refs += is_ref(pd);
	} else {
		p->ok = 0;
	}
	dnnl_primitive_desc_destroy(pd);
	return s;
}

/* A step that reorders from into to. */
static struct step *reorder_step(struct nn__plan *p, int backward, int node,
                                 dnnl_memory_t from, dnnl_memory_t to)
{
	const dnnl_memory_desc_t *a, *b;
	dnnl_primitive_desc_t pd = NULL;
	if (!p->ok || dnnl_memory_get_memory_desc(from, &a) != dnnl_success ||
	    dnnl_memory_get_memory_desc(to, &b) != dnnl_success ||
	    dnnl_reorder_primitive_desc_create(&pd, a, nn__dnnl_engine(), b, nn__dnnl_engine(),
	                                       NULL) != dnnl_success) {
		p->ok = 0;
		return NULL;
	}
	dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, from }, { DNNL_ARG_TO, to } };
	struct step *s = prim_step(p, backward, node, pd, args, 2);
	if (s)
		s->prof = NN_PROF_REORDER;
	return s;
}

/* Keeps a clone of pd as node i's hint for its backward primitives. */
static void keep_hint(struct nn__plan *p, int i, const_dnnl_primitive_desc_t pd)
{
	if (pd && dnnl_primitive_desc_clone(&p->np[i].hint, pd) != dnnl_success)
		p->ok = 0;
}

/* The memory a gradient into node j is written to: dy[j] itself when it
 * is the first, else the scratch buffer in j's layout, which accum_after
 * then adds to dy[j]. */
static dnnl_memory_t grad_target(struct nn__plan *p, int j)
{
	if (p->grads_in[j]++ == 0)
		return p->dy[j];
	return mem(p, &p->md[j], p->scratch);
}

static void accum_after(struct nn__plan *p, int j, dnnl_memory_t target)
{
	if (!p->ok || target == p->dy[j])
		return;
	struct step *s = push_step(p, 1, STEP_ACCUM, j);
	if (s) {
		s->dst = data_of(p->dy[j]);
		s->src = p->scratch;
		s->len = floats_of(&p->md[j]);
	}
}

/* The widest block this machine's kernels take: 16 channels on AVX-512,
 * else 8.  On an AVX2 machine oneDNN has no kernel for blocks of 16 but
 * reference loops: measured there, blocks of 16 made batch norm and
 * pooling run those loops and every convolution reorder to 8 and back, and
 * a candidate trained 6-37x slower than on blocks of 8. */
static int widest_block(void)
{
	dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
	return (isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core ? 16 : 8;
}

/* The block of a node's activations: channels in blocks of 16 (what the
 * AVX-512 convolutions read and write; AVX-512 machines only) or 8 (the
 * AVX2 ones) when they divide the channels, else 1 (plain NCHW): oneDNN
 * pads a block with zeros, but its JIT convolutions refuse a padded input
 * block (a reference loop, 10-100x slower, would run). */
static int block_of(int c)
{
	return c % 16 == 0 && widest_block() == 16 ? 16 : c % 8 == 0 ? 8 : 1;
}

static dnnl_format_tag_t blocked_tag(int c)
{
	int b = block_of(c);
	return b == 16 ? dnnl_aBcd16b : b == 8 ? dnnl_aBcd8b : dnnl_abcd;
}

/* ---- each kind of node: its forward steps, then (separately) its backward -- */

/* m in layout want: m itself, or a copy a step before fills (kept in
 * *reuse, and reused when another primitive wants the same). */
static dnnl_memory_t as_layout(struct nn__plan *p, int backward, int node, dnnl_memory_t m,
                               const dnnl_memory_desc_t *want, dnnl_memory_t *reuse)
{
	const dnnl_memory_desc_t *have;
	if (!want || dnnl_memory_get_memory_desc(m, &have) != dnnl_success) {
		p->ok = 0;
		return NULL;
	}
	if (dnnl_memory_desc_equal(have, want))
		return m;
	if (reuse && *reuse) {
		const dnnl_memory_desc_t *r;
		dnnl_memory_get_memory_desc(*reuse, &r);
		if (dnnl_memory_desc_equal(r, want))
			return *reuse;
	}
	dnnl_memory_t c = owned(p, want);
	if (c)
		reorder_step(p, backward, node, m, c);
	if (reuse)
		*reuse = c;
	return c;
}

/* Where a primitive writes an output meant for m: m itself when it wants
 * m's layout, else a buffer of its own that out_done reorders into m. */
static dnnl_memory_t out_for(struct nn__plan *p, dnnl_memory_t m, const dnnl_memory_desc_t *want)
{
	const dnnl_memory_desc_t *have;
	if (!want || dnnl_memory_get_memory_desc(m, &have) != dnnl_success) {
		p->ok = 0;
		return NULL;
	}
	return dnnl_memory_desc_equal(have, want) ? m : owned(p, want);
}

static void out_done(struct nn__plan *p, int backward, int node, dnnl_memory_t out,
                     dnnl_memory_t m)
{
	if (p->ok && out != m)
		reorder_step(p, backward, node, out, m);
}

/* A convolution's descriptors: src and dst in the nodes' layouts, or, when
 * that leaves only the reference loops (use_any), in the layouts the
 * convolution prefers, reordered to and from around it. */
static const dnnl_memory_desc_t *conv_md(int use_any, const dnnl_memory_desc_t *node,
                                         dnnl_memory_desc_t *any)
{
	if (!use_any)
		return node;
	dnnl_memory_desc_init_by_tag(any, node->ndims, node->dims, dnnl_f32, dnnl_format_tag_any);
	return any;
}

enum conv_kind { CONV_FWD_TRAINING, CONV_FWD_INFERENCE, CONV_BWD_DATA, CONV_BWD_WEIGHTS };

/* Convolution i's primitive of the given kind between src and dst (for the
 * backward kinds: the forward's src and dst, whose diffs they are): in
 * those layouts, or, when that leaves only oneDNN's reference loops, in
 * layouts of its choosing (the caller reorders to and from them).  bias
 * and attr only for the forward. */
static dnnl_primitive_desc_t conv_pd(const nn_net *net, int i, enum conv_kind kind,
                                     const dnnl_memory_desc_t *src,
                                     const dnnl_memory_desc_t *dst,
                                     const dnnl_memory_desc_t *bias,
                                     const_dnnl_primitive_attr_t attr,
                                     const_dnnl_primitive_desc_t hint)
{
	nn__dnnl_conv_geom g;
	dnnl_memory_desc_t wany, sany, dany;
	nn__dnnl_conv_geometry(&net->node[i].conv, &g);
	const dnnl_dim_t *strides = g.strides, *pad = g.pad, *pad_r = g.pad_r;
	dnnl_memory_desc_init_by_tag(&wany, g.wnd, g.wei, dnnl_f32, dnnl_format_tag_any);
	dnnl_primitive_desc_t pd = NULL;
	for (int any = 0; any < 2 && !pd; any++) {
		const dnnl_memory_desc_t *sm = conv_md(any, src, &sany), *dm = conv_md(any, dst, &dany);
		dnnl_convolution_desc_t cd;
		dnnl_status_t st =
			kind == CONV_BWD_DATA
				? dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, sm,
				                                           &wany, dm, strides, pad, pad_r)
			: kind == CONV_BWD_WEIGHTS
				? dnnl_convolution_backward_weights_desc_init(
					  &cd, dnnl_convolution_direct, sm, &wany, NULL, dm, strides, pad, pad_r)
				: dnnl_convolution_forward_desc_init(
					  &cd, kind == CONV_FWD_TRAINING ? dnnl_forward_training
					                                 : dnnl_forward_inference,
					  dnnl_convolution_direct, sm, &wany, bias, dm, strides, pad, pad_r);
		if (st == dnnl_success)
			pd = pd_of(&cd, attr, hint);
		if (pd && !any && is_ref(pd)) {
			dnnl_primitive_desc_destroy(pd);
			pd = NULL;
		}
	}
	return pd;
}

/* The BN node that convolution i's output goes to alone and that runs on
 * its running statistics in this plan (evaluation, or a frozen graft), when
 * the convolution needs no backward: it can be folded into the convolution
 * (weights scaled, a bias, the ReLU a post-op).  0: none. */
static int foldable_bn(const struct nn__plan *p, const nn_net *net, int i)
{
	const struct nn__node *d = &net->node[i];
	int k = i + 1;
	if (k > p->last || net->node[k].kind != NODE_BN || net->node[k].in != i)
		return 0;
	int stats = !p->train || net->node[k].frozen;
	int no_backward = !p->train || (d->frozen && !d->needs_grad);
	return nn__readers(net, i, i + 1) == 1 && stats && no_backward ? k : 0;
}

/* Folds BN node k into convolution i's weights wf and bias bf. */
static void fold(const nn_net *net, int i, int k, float *wf, float *bf)
{
	const struct nn__node *d = &net->node[i], *bn = &net->node[k];
	size_t per = d->nw / (size_t)d->c;
	for (int o = 0; o < d->c; o++) {
		float s = bn->wt[o] / sqrtf(bn->rvar[o] + NN_BN_EPS);
		for (size_t q = 0; q < per; q++)
			wf[o * per + q] = d->wt[o * per + q] * s;
		bf[o] = bn->bs[o] - bn->rmean[o] * s;
	}
}

static void conv_fwd(struct nn__plan *p, nn_net *net, int i)
{
	struct nn__node *d = &net->node[i];
	struct node_plan *np = &p->np[i];
	nn__dnnl_conv_geom g;
	dnnl_memory_desc_t bias;
	int k = foldable_bn(p, net, i);
	nn__dnnl_conv_geometry(&d->conv, &g);
	dnnl_memory_desc_init_by_tag(&np->wplain, g.wnd, g.wei, dnnl_f32, g.wtag);
	dnnl_dims_t bd = { d->c };
	dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_a);
	/* A convolution reads the input batch as it is, plain. */
	np->src = d->in == 0 ? p->input : p->y[d->in];
	const dnnl_memory_desc_t *src_md;
	dnnl_memory_get_memory_desc(np->src, &src_md);
	/* Folded, the BN's ReLU is the convolution's post-op. */
	dnnl_primitive_attr_t attr = NULL;
	dnnl_post_ops_t po = NULL;
	if (k && net->node[k].relu &&
	    (dnnl_primitive_attr_create(&attr) != dnnl_success ||
	     dnnl_post_ops_create(&po) != dnnl_success ||
	     dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0, 0) != dnnl_success ||
	     dnnl_primitive_attr_set_post_ops(attr, po) != dnnl_success))
		p->ok = 0;
	dnnl_primitive_desc_t pd = NULL;
	if (p->ok)
		pd = conv_pd(net, i, p->train && !k ? CONV_FWD_TRAINING : CONV_FWD_INFERENCE, src_md,
		             &p->md[i], k ? &bias : NULL, attr, NULL);
	dnnl_post_ops_destroy(po);
	dnnl_primitive_attr_destroy(attr);
	if (!pd) {
		p->ok = 0;
		return;
	}
	np->csrc = as_layout(p, 0, i, np->src, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0),
	                     NULL);
	/* Folded, the convolution writes the BN's output; the BN runs no step. */
	dnnl_memory_t out = k ? p->y[k] : p->y[i];
	dnnl_memory_t dst = out_for(p, out, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0));
	float *w = d->wt;
	dnnl_memory_t b = NULL;
	if (k) {
		dnnl_memory_t wf = owned(p, &np->wplain);
		b = owned(p, &bias);
		struct step *s = push_step(p, 0, STEP_FOLD, i);
		if (s) {
			s->dst = data_of(wf);
			s->dst2 = data_of(b);
			s->first = k;
		}
		w = data_of(wf);
		p->np[k].folded = 1;
	}
	np->w = as_layout(p, 0, i, mem(p, &np->wplain, w),
	                  dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), NULL);
	if (p->train && d->needs_grad)
		keep_hint(p, i, pd);
	dnnl_exec_arg_t a[4] = { { DNNL_ARG_SRC, np->csrc }, { DNNL_ARG_WEIGHTS, np->w },
		                 { DNNL_ARG_DST, dst }, { DNNL_ARG_BIAS, b } };
	prim_step(p, 0, i, pd, a, k ? 4 : 3);
	out_done(p, 0, i, dst, out);
}

static void conv_bwd(struct nn__plan *p, nn_net *net, int i)
{
	struct nn__node *d = &net->node[i];
	struct node_plan *np = &p->np[i];
	int j = d->in;
	dnnl_memory_t dd = NULL; /* dy in the convolution's layout, when another */
	const dnnl_memory_desc_t *src_md;
	dnnl_memory_get_memory_desc(np->src, &src_md);

	if (j > 0 && net->node[j].needs_grad) {
		dnnl_primitive_desc_t pd =
			conv_pd(net, i, CONV_BWD_DATA, &p->md[j], &p->md[i], NULL, NULL, np->hint);
		if (!pd) {
			p->ok = 0;
			return;
		}
		/* The forward's copy of the weights when it is in this layout too. */
		dnnl_memory_t w = as_layout(p, 1, i, mem(p, &np->wplain, d->wt),
		                            dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
		                            &np->w);
		dnnl_memory_t g = as_layout(p, 1, i, p->dy[i],
		                            dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0),
		                            &dd);
		dnnl_memory_t to = grad_target(p, j);
		dnnl_memory_t out = out_for(p, to,
		                            dnnl_primitive_desc_query_md(pd, dnnl_query_diff_src_md, 0));
		dnnl_exec_arg_t a[3] = { { DNNL_ARG_DIFF_DST, g }, { DNNL_ARG_WEIGHTS, w },
			                 { DNNL_ARG_DIFF_SRC, out } };
		prim_step(p, 1, i, pd, a, 3);
		out_done(p, 1, i, out, to);
		accum_after(p, j, to);
	}
	if (!d->frozen) {
		dnnl_primitive_desc_t pd =
			conv_pd(net, i, CONV_BWD_WEIGHTS, src_md, &p->md[i], NULL, NULL, np->hint);
		if (!pd) {
			p->ok = 0;
			return;
		}
		dnnl_memory_t dw_plain = mem(p, &np->wplain, d->dwt);
		dnnl_memory_t dw = out_for(p, dw_plain, dnnl_primitive_desc_query_md(
		                                                pd, dnnl_query_diff_weights_md, 0));
		dnnl_memory_t src = as_layout(p, 1, i, np->csrc,
		                              dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0),
		                              NULL);
		dnnl_memory_t g = as_layout(p, 1, i, p->dy[i],
		                            dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0),
		                            &dd);
		dnnl_exec_arg_t a[3] = { { DNNL_ARG_SRC, src }, { DNNL_ARG_DIFF_DST, g },
			                 { DNNL_ARG_DIFF_WEIGHTS, dw } };
		struct step *s = prim_step(p, 1, i, pd, a, 3);
		if (s)
			s->prof = NN_PROF_CONV_BWD_WEIGHTS;
		out_done(p, 1, i, dw, dw_plain);
	}
}

static unsigned bn_flags(const struct nn__node *d, int train)
{
	return dnnl_use_scale | dnnl_use_shift | (d->relu ? dnnl_fuse_norm_relu : 0) |
	       (train ? 0 : dnnl_use_global_stats);
}

static void bn_fwd(struct nn__plan *p, nn_net *net, int i)
{
	struct nn__node *d = &net->node[i];
	struct node_plan *np = &p->np[i];
	if (np->folded)
		return; /* into the convolution before it */
	int train = p->train && !d->frozen;
	dnnl_dims_t cd = { d->c };
	dnnl_memory_desc_t vec;
	dnnl_memory_desc_init_by_tag(&vec, 1, cd, dnnl_f32, dnnl_a);
	dnnl_batch_normalization_desc_t bd;
	dnnl_primitive_desc_t pd = NULL;
	if (dnnl_batch_normalization_forward_desc_init(&bd, train ? dnnl_forward_training
	                                                          : dnnl_forward_inference,
	                                               &p->md[d->in], NN_BN_EPS,
	                                               bn_flags(d, train)) == dnnl_success)
		pd = pd_of(&bd, NULL, NULL);
	if (!pd) {
		p->ok = 0;
		return;
	}
	np->mean = train ? owned(p, &vec) : mem(p, &vec, d->rmean);
	np->var = train ? owned(p, &vec) : mem(p, &vec, d->rvar);
	np->scale = mem(p, &vec, d->wt);
	np->shift = mem(p, &vec, d->bs);
	if (train && d->relu)
		np->ws = owned(p, dnnl_primitive_desc_query_md(pd, dnnl_query_workspace_md, 0));
	if (train)
		keep_hint(p, i, pd);
	dnnl_exec_arg_t a[7] = { { DNNL_ARG_SRC, p->y[d->in] }, { DNNL_ARG_DST, p->y[i] },
		                 { DNNL_ARG_MEAN, np->mean },   { DNNL_ARG_VARIANCE, np->var },
		                 { DNNL_ARG_SCALE, np->scale }, { DNNL_ARG_SHIFT, np->shift },
		                 { DNNL_ARG_WORKSPACE, np->ws } };
	prim_step(p, 0, i, pd, a, np->ws ? 7 : 6);
	if (train) {
		struct step *s = push_step(p, 0, STEP_RUNNING, i);
		if (s) {
			s->src = data_of(np->mean);
			s->mask = data_of(np->var);
		}
	}
}

/* Only a training BN has a backward here (plan_extent keeps frozen ones
 * off a gradient's way). */
static void bn_bwd(struct nn__plan *p, nn_net *net, int i)
{
	struct nn__node *d = &net->node[i];
	struct node_plan *np = &p->np[i];
	int j = d->in;
	dnnl_dims_t cd = { d->c };
	dnnl_memory_desc_t vec;
	dnnl_memory_desc_init_by_tag(&vec, 1, cd, dnnl_f32, dnnl_a);
	dnnl_batch_normalization_desc_t bd;
	dnnl_primitive_desc_t pd = NULL;
	if (dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &p->md[i], &p->md[j],
	                                                NN_BN_EPS, bn_flags(d, 1)) ==
	    dnnl_success)
		pd = pd_of(&bd, NULL, np->hint);
	if (!pd) {
		p->ok = 0;
		return;
	}
	int into = j > 0 && net->node[j].needs_grad;
	dnnl_memory_t to = into ? grad_target(p, j) : mem(p, &p->md[j], p->scratch);
	dnnl_exec_arg_t a[10] = { { DNNL_ARG_SRC, p->y[j] },
		                  { DNNL_ARG_MEAN, np->mean },
		                  { DNNL_ARG_VARIANCE, np->var },
		                  { DNNL_ARG_DIFF_DST, p->dy[i] },
		                  { DNNL_ARG_SCALE, np->scale },
		                  { DNNL_ARG_SHIFT, np->shift },
		                  { DNNL_ARG_DIFF_SRC, to },
		                  { DNNL_ARG_DIFF_SCALE, mem(p, &vec, d->dwt) },
		                  { DNNL_ARG_DIFF_SHIFT, mem(p, &vec, d->dbs) },
		                  { DNNL_ARG_WORKSPACE, np->ws } };
	prim_step(p, 1, i, pd, a, np->ws ? 10 : 9);
	if (into)
		accum_after(p, j, to);
}

static void relu_fwd(struct nn__plan *p, nn_net *net, int i)
{
	int j = net->node[i].in;
	dnnl_eltwise_desc_t ed;
	dnnl_primitive_desc_t pd = NULL;
	if (dnnl_eltwise_forward_desc_init(&ed, p->train ? dnnl_forward_training
	                                                 : dnnl_forward_inference,
	                                   dnnl_eltwise_relu_use_dst_for_bwd, &p->md[j], 0, 0) ==
	    dnnl_success)
		pd = pd_of(&ed, NULL, NULL);
	if (p->train && pd)
		keep_hint(p, i, pd);
	dnnl_exec_arg_t a[2] = { { DNNL_ARG_SRC, p->y[j] }, { DNNL_ARG_DST, p->y[i] } };
	if (!pd)
		p->ok = 0;
	prim_step(p, 0, i, pd, a, 2);
}

static void relu_bwd(struct nn__plan *p, nn_net *net, int i)
{
	int j = net->node[i].in;
	if (j == 0 || !net->node[j].needs_grad)
		return;
	dnnl_eltwise_desc_t ed;
	dnnl_primitive_desc_t pd = NULL;
	if (dnnl_eltwise_backward_desc_init(&ed, dnnl_eltwise_relu_use_dst_for_bwd, &p->md[i],
	                                    &p->md[i], 0, 0) == dnnl_success)
		pd = pd_of(&ed, NULL, p->np[i].hint);
	if (!pd) {
		p->ok = 0;
		return;
	}
	dnnl_memory_t to = grad_target(p, j);
	dnnl_exec_arg_t a[3] = { { DNNL_ARG_DST, p->y[i] }, { DNNL_ARG_DIFF_DST, p->dy[i] },
		                 { DNNL_ARG_DIFF_SRC, to } };
	prim_step(p, 1, i, pd, a, 3);
	accum_after(p, j, to);
}

/* graft's own loop, not oneDNN's binary primitive: with a ReLU post-op,
 * oneDNN 2.6's binary miscomputes nChw8c tensors on AVX-512 machines and
 * writes past their end (tests/test_plan.c found it). */
static void add_fwd(struct nn__plan *p, nn_net *net, int i)
{
	struct nn__node *d = &net->node[i];
	struct step *s = push_step(p, 0, STEP_ADD_FWD, i);
	if (!s)
		return;
	s->dst = data_of(p->y[i]);
	s->src = data_of(p->y[d->in]);
	s->dst2 = data_of(p->y[d->in2]); /* read, not written: the second input */
	s->first = d->relu;
	s->len = floats_of(&p->md[i]);
}

/* The gradient is dy (masked where the ReLU was off) into both inputs,
 * written or added in one loop: no scratch needed. */
static void add_bwd(struct nn__plan *p, nn_net *net, int i)
{
	struct nn__node *d = &net->node[i];
	struct step *s = push_step(p, 1, STEP_ADD_BWD, i);
	if (!s)
		return;
	s->src = data_of(p->dy[i]);
	s->mask = d->relu ? data_of(p->y[i]) : NULL;
	s->len = floats_of(&p->md[i]);
	if (d->in > 0 && net->node[d->in].needs_grad) {
		s->first = p->grads_in[d->in]++ == 0;
		s->dst = data_of(p->dy[d->in]);
	}
	if (d->in2 > 0 && net->node[d->in2].needs_grad) {
		s->first2 = p->grads_in[d->in2]++ == 0;
		s->dst2 = data_of(p->dy[d->in2]);
	}
	if (s->dst && s->dst == s->dst2) {
		p->ok = 0; /* x + x: not planned (graft never builds it) */
	}
}

static void pool_fwd(struct nn__plan *p, nn_net *net, int i)
{
	int j = net->node[i].in;
	dnnl_dims_t k = { 2, 2 }, zero = { 0, 0 };
	dnnl_pooling_desc_t pdsc;
	dnnl_primitive_desc_t pd = NULL;
	if (dnnl_pooling_forward_desc_init(&pdsc, p->train ? dnnl_forward_training
	                                                   : dnnl_forward_inference,
	                                   dnnl_pooling_max, &p->md[j], &p->md[i], k, k, zero,
	                                   zero) == dnnl_success)
		pd = pd_of(&pdsc, NULL, NULL);
	if (!pd) {
		p->ok = 0;
		return;
	}
	int back = p->train && j > 0 && net->node[j].needs_grad;
	if (back) {
		p->np[i].ws = owned(p, dnnl_primitive_desc_query_md(pd, dnnl_query_workspace_md, 0));
		keep_hint(p, i, pd);
	}
	dnnl_exec_arg_t a[3] = { { DNNL_ARG_SRC, p->y[j] }, { DNNL_ARG_DST, p->y[i] },
		                 { DNNL_ARG_WORKSPACE, p->np[i].ws } };
	prim_step(p, 0, i, pd, a, back ? 3 : 2);
}

static void pool_bwd(struct nn__plan *p, nn_net *net, int i)
{
	int j = net->node[i].in;
	if (j == 0 || !net->node[j].needs_grad)
		return;
	dnnl_dims_t k = { 2, 2 }, zero = { 0, 0 };
	dnnl_pooling_desc_t pdsc;
	dnnl_primitive_desc_t pd = NULL;
	if (dnnl_pooling_backward_desc_init(&pdsc, dnnl_pooling_max, &p->md[j], &p->md[i], k, k,
	                                    zero, zero) == dnnl_success)
		pd = pd_of(&pdsc, NULL, p->np[i].hint);
	if (!pd) {
		p->ok = 0;
		return;
	}
	dnnl_memory_t to = grad_target(p, j);
	dnnl_exec_arg_t a[3] = { { DNNL_ARG_DIFF_DST, p->dy[i] },
		                 { DNNL_ARG_WORKSPACE, p->np[i].ws },
		                 { DNNL_ARG_DIFF_SRC, to } };
	prim_step(p, 1, i, pd, a, 3);
	accum_after(p, j, to);
}

/* ---- making a plan ------------------------------------------------------------ */

static int on_plan(enum nn__kind k)
{
	return k == NODE_CONV || k == NODE_BN || k == NODE_RELU || k == NODE_ADD ||
	       k == NODE_MAXPOOL;
}

/* The plan's nodes are 1..last; the nodes after them must all be plain ones
 * (what follows the global average pool).  -1: the net has another shape,
 * or a frozen layer a gradient has to cross (not planned: graft's networks
 * have neither). */
static int plan_extent(const nn_net *net)
{
	int last = 0;
	while (last + 1 < net->n && on_plan(net->node[last + 1].kind))
		last++;
	for (int i = last + 1; i < net->n; i++)
		if (on_plan(net->node[i].kind))
			return -1;
	for (int i = 1; i <= last; i++)
		if (net->node[i].frozen && net->node[i].needs_grad)
			return -1;
	return last;
}

static void plan_free(struct nn__plan *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->nfwd; i++)
		dnnl_primitive_destroy(p->fwd[i].p);
	for (int i = 0; i < p->nbwd; i++)
		dnnl_primitive_destroy(p->bwd[i].p);
	for (int i = 0; i < p->nmems; i++)
		dnnl_memory_destroy(p->mems[i]);
	if (p->np)
		for (int i = 0; i <= p->last; i++)
			dnnl_primitive_desc_destroy(p->np[i].hint);
	free(p->fwd);
	free(p->bwd);
	free(p->mems);
	free(p->md);
	free(p->y);
	free(p->dy);
	free(p->grads_in);
	free(p->np);
	free(p->scratch);
	free(p);
}

static void plain_md(dnnl_memory_desc_t *md, int n, const struct nn__node *d)
{
	dnnl_dims_t dims = { n, d->c, d->h, d->w };
	dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, dnnl_nchw);
}

/* Every node's blocked buffers, the input's, the cached graft output's. */
static void plan_buffers(struct nn__plan *p, nn_net *net)
{
	int n = p->n;
	for (int i = 0; i <= p->last && p->ok; i++) {
		const struct nn__node *d = &net->node[i];
		dnnl_dims_t dims = { n, d->c, d->h, d->w };
		if (dnnl_memory_desc_init_by_tag(&p->md[i], 4, dims, dnnl_f32, blocked_tag(d->c)) !=
		    dnnl_success) {
			p->ok = 0;
			break;
		}
		p->y[i] = owned(p, &p->md[i]);
		if (p->train && i > 0 && d->needs_grad)
			p->dy[i] = owned(p, &p->md[i]);
		size_t len = floats_of(&p->md[i]);
		p->scratch_len = len > p->scratch_len ? len : p->scratch_len;
	}
	p->scratch = malloc((p->scratch_len + 1) * sizeof(float));
	if (!p->scratch)
		p->ok = 0;
	dnnl_memory_desc_t md;
	plain_md(&md, n, &net->node[0]);
	p->input = mem(p, &md, DNNL_MEMORY_NONE);
	if (net->graft_last && net->graft_last <= p->last) {
		plain_md(&md, n, &net->node[net->graft_last]);
		p->graft_feats = mem(p, &md, DNNL_MEMORY_NONE);
	}
}

static void plan_forward_steps(struct nn__plan *p, nn_net *net)
{
	/* The input blocked, for a layer other than a convolution that reads it. */
	for (int i = 1; i <= p->last; i++) {
		const struct nn__node *d = &net->node[i];
		if ((d->in == 0 && d->kind != NODE_CONV) || d->in2 == 0) {
			reorder_step(p, 0, 0, p->input, p->y[0]);
			break;
		}
	}
	/* A cached graft output stands in for the graft's layers. */
	if (p->graft_feats) {
		struct step *s = reorder_step(p, 0, net->graft_last, p->graft_feats,
		                              p->y[net->graft_last]);
		if (s)
			s->graft = 2;
	}
	for (int i = 1; i <= p->last && p->ok; i++) {
		switch (net->node[i].kind) {
		case NODE_CONV: conv_fwd(p, net, i); break;
		case NODE_BN: bn_fwd(p, net, i); break;
		case NODE_RELU: relu_fwd(p, net, i); break;
		case NODE_ADD: add_fwd(p, net, i); break;
		case NODE_MAXPOOL: pool_fwd(p, net, i); break;
		default: p->ok = 0;
		}
		if (p->graft_feats && i == net->graft_last) {
			/* nn_graft_features: the graft's output, plain. */
			dnnl_memory_desc_t md;
			plain_md(&md, p->n, &net->node[i]);
			struct step *s = reorder_step(p, 0, i, p->y[i], mem(p, &md, net->node[i].y));
			if (s)
				s->graft = 3;
		}
	}
	/* The feature maps the plain nodes read, into their plain buffers. */
	for (int j = 1; j <= p->last && p->ok; j++) {
		if (!nn__readers(net, j, p->last + 1))
			continue;
		dnnl_memory_desc_t md;
		plain_md(&md, p->n, &net->node[j]);
		struct step *s = reorder_step(p, 0, j, p->y[j], mem(p, &md, net->node[j].y));
		if (s)
			s->graft = 0;
	}
}

/* Backward steps in the order they run: the plain nodes' gradients into
 * the blocked ones first (the plain nodes come last, so theirs are each
 * node's first gradient), then the nodes from the last to the first. */
static void plan_backward_steps(struct nn__plan *p, nn_net *net)
{
	for (int j = 1; j <= p->last && p->ok; j++) {
		if (!nn__readers(net, j, p->last + 1) || !net->node[j].needs_grad)
			continue;
		dnnl_memory_desc_t md;
		plain_md(&md, p->n, &net->node[j]);
		p->grads_in[j]++;
		reorder_step(p, 1, j, mem(p, &md, net->node[j].dy), p->dy[j]);
	}
	for (int i = p->last; i >= 1 && p->ok; i--) {
		if (!net->node[i].needs_grad)
			continue;
		/* Every reader of node i is built by now: if none gave it a
		 * gradient (a dead end), it is zero. */
		if (p->grads_in[i] == 0) {
			struct step *s = push_step(p, 1, STEP_ZERO, i);
			if (s) {
				s->dst = data_of(p->dy[i]);
				s->len = floats_of(&p->md[i]);
			}
		}
		switch (net->node[i].kind) {
		case NODE_CONV: conv_bwd(p, net, i); break;
		case NODE_BN: bn_bwd(p, net, i); break;
		case NODE_RELU: relu_bwd(p, net, i); break;
		case NODE_ADD: add_bwd(p, net, i); break;
		case NODE_MAXPOOL: pool_bwd(p, net, i); break;
		default: p->ok = 0;
		}
	}
}

static struct nn__plan *plan_new(nn_net *net, int n, int train, int last)
{
	struct nn__plan *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->n = n;
	p->train = train;
	p->last = last;
	p->ok = 1;
	p->graft_first = net->graft_first;
	p->graft_last = net->graft_last;
	p->net = net;
	p->md = calloc(last + 1, sizeof(*p->md));
	p->y = calloc(last + 1, sizeof(*p->y));
	p->dy = calloc(last + 1, sizeof(*p->dy));
	p->grads_in = calloc(last + 1, sizeof(*p->grads_in));
	p->np = calloc(last + 1, sizeof(*p->np));
	if (!p->md || !p->y || !p->dy || !p->grads_in || !p->np) {
		plan_free(p);
		return NULL;
	}
	plan_buffers(p, net);
	if (p->ok)
		plan_forward_steps(p, net);
	if (p->ok && train)
		plan_backward_steps(p, net);
	p->net = NULL;
	if (!p->ok) {
		plan_free(p);
		return NULL;
	}
	return p;
}

/* ---- keeping and running plans ------------------------------------------------ */

struct nn__plan *nn__plan_get(nn_net *net, int n, int train)
{
	if (nn_conv_engine() != NN_ENGINE_ONEDNN || net->plan_failed ||
	    !nn__dnnl_available() || !nn__dnnl_stream())
		return NULL;
	struct nn__plan **kept = net->plans;
	int slot = -1;
	for (int i = 0; i < NN__MAX_PLANS; i++) {
		if (kept[i] && kept[i]->n == n && kept[i]->train == train) {
			kept[i]->used = ++net->plan_clock;
			return kept[i];
		}
		if (slot < 0 || (kept[slot] && (!kept[i] || kept[i]->used < kept[slot]->used)))
			slot = i; /* an empty slot, else the least recently used */
	}
	int last = plan_extent(net);
	double t0 = nn__now();
	struct nn__plan *p = last > 0 ? plan_new(net, n, train, last) : NULL;
	net->plan_seconds += nn__now() - t0;
	if (!p) {
		/* The net's shape is what failed: not worth trying again. */
		net->plan_failed = 1;
		return NULL;
	}
	plan_free(kept[slot]);
	p->used = ++net->plan_clock;
	kept[slot] = p;
	return p;
}

void nn__plans_free(nn_net *net)
{
	for (int i = 0; i < NN__MAX_PLANS; i++) {
		plan_free(net->plans[i]);
		net->plans[i] = NULL;
	}
}

int nn__plan_training(const struct nn__plan *p)
{
	return p->train;
}

int nn__plan_last(const struct nn__plan *p)
{
	return p->last;
}

int nn__plan_refs(const struct nn__plan *p)
{
	return p->refs;
}

static void add_backward(const struct step *s)
{
	if (s->dst)
		nn__grad_into(s->dst, s->src, s->mask, s->len, s->first);
	if (s->dst2)
		nn__grad_into(s->dst2, s->src, s->mask, s->len, s->first2);
}

/* PyTorch's running statistics: the unbiased batch variance goes in. */
static void running_stats(struct nn__node *d, int n, const float *mean, const float *var)
{
	double m = (double)n * d->h * d->w;
	float corr = m > 1 ? (float)(m / (m - 1)) : 1.0f;
	for (int c = 0; c < d->c; c++) {
		d->rmean[c] = (1 - NN_BN_MOMENTUM) * d->rmean[c] + NN_BN_MOMENTUM * mean[c];
		d->rvar[c] = (1 - NN_BN_MOMENTUM) * d->rvar[c] + NN_BN_MOMENTUM * var[c] * corr;
	}
}

/* Whether step s runs: graft_only, the graft's layers and what feeds them;
 * else all but those a cached graft output stands in for. */
static int runs(const struct step *s, int cached, int graft_only)
{
	if (graft_only)
		return s->graft == 1 || s->graft == 3 || s->node == 0;
	return s->graft == 0 || (s->graft == 1 && !cached) || (s->graft == 2 && cached);
}

static int run(struct nn__plan *p, nn_net *net, const struct step *v, int nsteps,
               int graft_only)
{
	dnnl_stream_t st = nn__dnnl_stream();
	int cached = net->graft_feats != NULL;
	double *prof = nn__prof, t0 = 0;
	for (int k = 0; k < nsteps; k++) {
		const struct step *s = &v[k];
		if (!runs(s, cached, graft_only))
			continue;
		if (prof) {
			int conv = s->prof <= NN_PROF_CONV_BWD_WEIGHTS;
			if (nn__prof_convs_only && !conv)
				continue;
			t0 = nn__now();
		}
		switch (s->kind) {
		case STEP_PRIM:
			if (dnnl_primitive_execute(s->p, st, s->nargs, s->args) != dnnl_success)
				return GRAFT_EINVAL;
			break;
		case STEP_ACCUM:
			nn__grad_into(s->dst, s->src, NULL, s->len, 0);
			break;
		case STEP_ADD_FWD:
			nn__add_forward(s->src, s->dst2, s->dst, s->len, s->first);
			break;
		case STEP_ADD_BWD:
			add_backward(s);
			break;
		case STEP_ZERO:
			memset(s->dst, 0, s->len * sizeof(float));
			break;
		case STEP_RUNNING:
			running_stats(&net->node[s->node], p->n, s->src, s->mask);
			break;
		case STEP_FOLD:
			fold(net, s->node, s->first, s->dst, s->dst2);
			break;
		}
		if (prof)
			prof[s->prof] += nn__now() - t0;
	}
	return dnnl_stream_wait(st) == dnnl_success ? 0 : GRAFT_EINVAL;
}

int nn__plan_forward(struct nn__plan *p, nn_net *net)
{
	dnnl_memory_set_data_handle(p->input, (void *)net->input);
	if (p->graft_feats)
		dnnl_memory_set_data_handle(p->graft_feats, (void *)net->graft_feats);
	return run(p, net, p->fwd, p->nfwd, 0);
}

int nn__plan_graft_forward(struct nn__plan *p, nn_net *net)
{
	if (!p->graft_feats)
		return GRAFT_EINVAL;
	dnnl_memory_set_data_handle(p->input, (void *)net->input);
	return run(p, net, p->fwd, p->nfwd, 1);
}

int nn__plan_backward(struct nn__plan *p, nn_net *net)
{
	return run(p, net, p->bwd, p->nbwd, 0);
}
