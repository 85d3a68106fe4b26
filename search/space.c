/*
 * space.c - the search space: random architectures drawn from it, and what an
 * architecture costs in parameters and FLOPs.
 *
 * The cost is computed from the op definitions of ARCH-FORMAT.md rather than
 * by building the network, because the sampler rejects candidates over the
 * limits many times per accepted one and building a net allocates its
 * activations.  The walk below mirrors nn/arch_build.c node for node (which
 * convolution, which batch norm, where a projection appears); the tests hold
 * the two to exact agreement, graft included.
 */
#include <string.h>

#include "search/search.h"
#include "search/search_internal.h"

#define ALL_OPS ((1 << NN_OP_CONV3) | (1 << NN_OP_CONV5) | (1 << NN_OP_SEP3) | \
                 (1 << NN_OP_RES3) | (1 << NN_OP_POOL))

/* The probabilities of the draw; search.h promises them. */
#define STRIDE2_ONE_IN 3 /* stride 2 with probability 1/3 while allowed */
#define SKIP_PROB 0.2

void search_space_defaults(search_space *s)
{
	memset(s, 0, sizeof *s);
	s->ops = ALL_OPS;
	/* Room for the networks that do well on 28x28 and 32x32 images (a
	 * VGG- or ResNet-like stack of 6-10 blocks, 32 to 256 wide, three
	 * downsamplings to 4x4) while the FLOPs limit keeps a random draw
	 * cheap enough to be worth a short budget. */
	static const int widths[] = { 16, 24, 32, 48, 64, 96, 128, 192, 256 };
	s->min_blocks = 2;
	s->max_blocks = 10;
	s->nwidths = (int)(sizeof(widths) / sizeof(*widths));
	memcpy(s->widths, widths, sizeof(widths));
	s->min_width = 16;
	s->max_width = 256;
	s->stem_min = 8;
	s->stem_max = 64;
	s->max_downsamples = 3;
	s->max_params = 3000000;
	s->max_flops = 150000000;
}

/* ---- cost ----------------------------------------------------------------- */

/* Running totals; overflow is sticky so that the walk needs no checks of its
 * own and an absurd architecture is reported once, at the end. */
typedef struct cost {
	int64_t params, flops;
	int overflow;
} cost;

typedef struct shape {
	int c, h, w;
} shape;

/* a * b for non-negative a, b, or 0 with the overflow flag set. */
static int64_t mul(cost *k, int64_t a, int64_t b)
{
	if (a != 0 && b > INT64_MAX / a) {
		k->overflow = 1;
		return 0;
	}
	return a * b;
}

static void add(cost *k, int64_t *acc, int64_t v)
{
	if (v > INT64_MAX - *acc)
		k->overflow = 1;
	else
		*acc += v;
}

/* A convolution with cin_g input channels per group, cout outputs, a k x k
 * kernel and an oh x ow output: nn counts cout * cin_g * k * k weights and
 * 2 x weights x output pixels FLOPs. */
static void conv(cost *k, int cin_g, int cout, int ksize, int oh, int ow)
{
	int64_t nw = mul(k, mul(k, cout, cin_g), (int64_t)ksize * ksize);
	add(k, &k->params, nw);
	add(k, &k->flops, mul(k, mul(k, 2 * nw, oh), ow));
}

/* Batch norm: a weight and a bias per channel (running statistics are not
 * parameters). */
static void bn(cost *k, int c)
{
	add(k, &k->params, 2 * (int64_t)c);
}

/* Conv1x1 -> BN from x to cout channels with the given stride, unless x
 * already has cout channels and the stride is 1 (then the identity). */
static void project(cost *k, shape x, int cout, int stride, int oh, int ow)
{
	if (x.c == cout && stride == 1)
		return;
	conv(k, x.c, cout, 1, oh, ow);
	bn(k, cout);
}

/* Output size of a convolution with an odd kernel, padding k/2. */
static int conv_out(int n, int stride)
{
	return (n - 1) / stride + 1;
}

/* One block of op b reading x; writes its output shape to *y. */
static int block_cost(cost *k, shape x, const nn_block_spec *b, shape *y)
{
	int c = b->channels, s = b->stride;

	if (c < 1)
		return GRAFT_EINVAL;
	if (b->op == NN_OP_POOL) {
		*y = (shape){ c, x.h / 2, x.w / 2 };
		if (y->h < 1 || y->w < 1)
			return GRAFT_EINVAL;
		conv(k, x.c, c, 1, y->h, y->w);
		bn(k, c);
		return 0;
	}
	if (s < 1)
		return GRAFT_EINVAL;
	*y = (shape){ c, conv_out(x.h, s), conv_out(x.w, s) };
	switch (b->op) {
	case NN_OP_CONV3:
	case NN_OP_CONV5:
		conv(k, x.c, c, b->op == NN_OP_CONV3 ? 3 : 5, y->h, y->w);
		bn(k, c);
		return 0;
	case NN_OP_SEP3:
		conv(k, 1, x.c, 3, y->h, y->w); /* depthwise: groups = cin */
		conv(k, x.c, c, 1, y->h, y->w);
		bn(k, c);
		return 0;
	case NN_OP_RES3:
		conv(k, x.c, c, 3, y->h, y->w);
		bn(k, c);
		conv(k, c, c, 3, y->h, y->w);
		bn(k, c);
		project(k, x, c, s, y->h, y->w);
		return 0;
	case NN_OP_POOL:
		break;
	}
	return GRAFT_EINVAL;
}

/* Walks the network nn_net_from_arch builds from a and totals its cost. */
static int arch_cost(const nn_arch *a, cost *k)
{
	shape out[NN_MAX_BLOCKS + 1], x; /* out[0] the stem's output, [i + 1] block i's */
	int rc;

	memset(k, 0, sizeof *k);
	if (a->in_c < 1 || a->in_h < 1 || a->in_w < 1 || a->classes < 1 ||
	    a->stem_kernel < 1 || a->stem_kernel % 2 == 0 || a->stem_channels < 1 ||
	    a->graft_nlayers < 0 || a->graft_nlayers > NN_MAX_GRAFT_LAYERS ||
	    a->nblocks < 0 || a->nblocks > NN_MAX_BLOCKS)
		return GRAFT_EINVAL;

	/* The stem, stride 1; the graft runs beside it at the same resolution. */
	x = (shape){ a->stem_channels, a->in_h, a->in_w };
	conv(k, a->in_c, x.c, a->stem_kernel, x.h, x.w);
	bn(k, x.c);
	if (a->graft_nlayers > 0) {
		int gc = a->in_c;
		for (int i = 0; i < a->graft_nlayers; i++) {
			int kk = a->graft_kernel[i], c = a->graft_channels[i];
			if (kk < 1 || kk % 2 == 0 || c < 1)
				return GRAFT_EINVAL;
			conv(k, gc, c, kk, x.h, x.w);
			bn(k, c);
			gc = c;
		}
		conv(k, gc, x.c, 1, x.h, x.w); /* graft_proj, always a projection */
		bn(k, x.c);
	}
	out[0] = x;

	for (int i = 0; i < a->nblocks; i++) {
		const nn_block_spec *b = &a->blocks[i];
		if ((rc = block_cost(k, x, b, &x)))
			return rc;
		if (b->skip_from != NN_SKIP_NONE) {
			if (b->skip_from < -1 || b->skip_from >= i)
				return GRAFT_EINVAL;
			shape f = out[b->skip_from + 1];
			if (f.h != x.h || f.w != x.w)
				return GRAFT_EINVAL;
			project(k, f, x.c, 1, x.h, x.w);
		}
		out[i + 1] = x;
	}

	/* Global average pooling leaves x.c features for the linear head. */
	int64_t nw = mul(k, x.c, a->classes);
	add(k, &k->params, nw);
	add(k, &k->params, a->classes);
	add(k, &k->flops, mul(k, 2, nw));
	return k->overflow ? GRAFT_ERANGE : 0;
}

int64_t search_arch_params(const nn_arch *a)
{
	cost k;
	int rc = arch_cost(a, &k);
	return rc ? rc : k.params;
}

int64_t search_arch_flops(const nn_arch *a)
{
	cost k;
	int rc = arch_cost(a, &k);
	return rc ? rc : k.flops;
}

/* ---- sampling ------------------------------------------------------------- */

/* Checks that s describes something a draw can come from (limits aside: a
 * space whose limits nothing meets is found out by drawing). */
static int space_check(const search_space *s)
{
	if (s->ops == 0 || (s->ops & ~ALL_OPS) || s->min_blocks < 1 ||
	    s->min_blocks > s->max_blocks || s->max_blocks > NN_MAX_BLOCKS ||
	    s->nwidths < 0 || s->nwidths > SEARCH_MAX_WIDTHS || s->stem_min < 1 ||
	    s->stem_min > s->stem_max || s->max_downsamples < 0)
		return GRAFT_EINVAL;
	if (s->nwidths == 0)
		return s->min_width >= 1 && s->min_width <= s->max_width ? 0 : GRAFT_EINVAL;
	for (int i = 0; i < s->nwidths; i++)
		if (s->widths[i] < 1)
			return GRAFT_EINVAL;
	return 0;
}

/* A value of lo, lo + 8, ... not above hi, uniformly. */
static int draw_stepped(nn_rng *r, int lo, int hi)
{
	uint32_t n = (uint32_t)((hi - lo) / SEARCH_WIDTH_STEP) + 1;
	return lo + SEARCH_WIDTH_STEP * (int)nn_rng_below(r, n);
}

static int draw_width(const search_space *s, nn_rng *r)
{
	if (s->nwidths > 0)
		return s->widths[nn_rng_below(r, (uint32_t)s->nwidths)];
	return draw_stepped(r, s->min_width, s->max_width);
}

/* One of the ops in the bit set ops (not empty), uniformly. */
enum nn_block_op search__draw_op(nn_rng *r, int ops)
{
	uint32_t n = 0, pick;
	int op;

	for (op = 0; op <= NN_OP_POOL; op++)
		n += (ops >> op) & 1;
	pick = nn_rng_below(r, n);
	for (op = 0; op <= NN_OP_POOL; op++)
		if (((ops >> op) & 1) && pick-- == 0)
			break;
	return (enum nn_block_op)op;
}

/* With probability SKIP_PROB, an earlier output (the stem is -1) of block i's
 * spatial size y, uniformly among those; else NN_SKIP_NONE. */
static int draw_skip(nn_rng *r, const shape *sizes, int i, shape y)
{
	int cand[NN_MAX_BLOCKS + 1], n = 0;

	if (nn_rng_uniform(r) >= SKIP_PROB)
		return NN_SKIP_NONE;
	for (int j = -1; j < i; j++)
		if (sizes[j + 1].h == y.h && sizes[j + 1].w == y.w)
			cand[n++] = j;
	return n ? cand[nn_rng_below(r, (uint32_t)n)] : NN_SKIP_NONE;
}

/* Draws a's stem and blocks (a already holds base's other fields).  Returns 0,
 * or 1 when a block found no allowed op (only pool allowed, no downsampling
 * left): that draw is discarded like one over the limits. */
static int draw_once(const search_space *s, nn_rng *r, nn_arch *a)
{
	shape sizes[NN_MAX_BLOCKS + 1], x;
	int left = s->max_downsamples;

	a->stem_kernel = 3;
	a->stem_channels = draw_stepped(r, s->stem_min, s->stem_max);
	a->nblocks = s->min_blocks +
	             (int)nn_rng_below(r, (uint32_t)(s->max_blocks - s->min_blocks + 1));
	x = (shape){ a->stem_channels, a->in_h, a->in_w };
	sizes[0] = x;
	for (int i = 0; i < a->nblocks; i++) {
		nn_block_spec *b = &a->blocks[i];
		int can_down = left > 0 && x.h >= 2 && x.w >= 2;
		int ops = can_down ? s->ops : s->ops & ~(1 << NN_OP_POOL);
		if (ops == 0)
			return 1;
		b->op = search__draw_op(r, ops);
		b->channels = draw_width(s, r);
		b->stride = 1;
		if (b->op == NN_OP_POOL) {
			left--;
			x = (shape){ b->channels, x.h / 2, x.w / 2 };
		} else {
			if (can_down && nn_rng_below(r, STRIDE2_ONE_IN) == 0) {
				b->stride = 2;
				left--;
			}
			x = (shape){ b->channels, conv_out(x.h, b->stride),
			             conv_out(x.w, b->stride) };
		}
		b->skip_from = draw_skip(r, sizes, i, x);
		sizes[i + 1] = x;
	}
	return 0;
}

int search_sample_arch(const search_space *s, const nn_arch *base, nn_rng *r,
                       nn_arch *out)
{
	nn_arch a;
	cost k;

	if (!s || !base || !r || !out || space_check(s))
		return GRAFT_EINVAL;
	/* Base alone (input, classes, graft) must make sense before any drawing. */
	a = *base;
	a.stem_kernel = 3;
	a.stem_channels = s->stem_min;
	a.nblocks = 0;
	if (a.in_c > NN_MAX_CHANNELS || arch_cost(&a, &k))
		return GRAFT_EINVAL;

	for (int t = 0; t < SEARCH_SAMPLE_TRIES; t++) {
		a = *base;
		for (int i = 0; i < NN_MAX_BLOCKS; i++)
			a.blocks[i] = (nn_block_spec){ NN_OP_CONV3, 0, 1, NN_SKIP_NONE };
		a.has_result = 0;
		a.result_val_accuracy = 0;
		a.result_params = a.result_flops = 0;
		if (draw_once(s, r, &a))
			continue;
		if (arch_cost(&a, &k) == 0 && k.params <= s->max_params &&
		    k.flops <= s->max_flops) {
			*out = a;
			return 0;
		}
	}
	return GRAFT_EINVAL;
}
