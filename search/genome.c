/*
 * genome.c - the genome the search evolves: whether an architecture lies in
 * the search space, its canonical form and hash, and the mutations of Real et
 * al. 2017.
 *
 * A genome is an nn_arch, not a struct of its own, so that what the search
 * mutates is exactly what is exported, built and trained.  The hash is the
 * identity the store caches results under, so it must see every field that
 * changes the network or its training and none that does not; the canonical
 * form is where that line is drawn.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search/search.h"
#include "search/search_internal.h"

typedef struct hw {
	int h, w;
} hw;

/* Formats a message into err, if there is room for one, and returns
 * GRAFT_EINVAL so that callers can write `return fail(...)`. */
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return GRAFT_EINVAL;
}

/* Whether c is on the grid lo, lo + 8, ... not above hi. */
static int on_grid(int c, int lo, int hi)
{
	return c >= lo && c <= hi && (c - lo) % SEARCH_WIDTH_STEP == 0;
}

static int width_ok(const search_space *s, int c)
{
	if (s->nwidths > 0) {
		for (int i = 0; i < s->nwidths && i < SEARCH_MAX_WIDTHS; i++)
			if (s->widths[i] == c)
				return 1;
		return 0;
	}
	return on_grid(c, s->min_width, s->max_width);
}

/* The spatial size of the stem's output (sz[0]) and of each block's
 * (sz[i + 1]), as nn builds them; strides below 1 count as 1 here, the
 * callers having refused them already where it matters. */
static void spatial_sizes(const nn_arch *a, hw *sz)
{
	hw x = { a->in_h, a->in_w };

	sz[0] = x;
	for (int i = 0; i < a->nblocks && i < NN_MAX_BLOCKS; i++) {
		const nn_block_spec *b = &a->blocks[i];
		if (b->op == NN_OP_POOL) {
			x.h /= 2;
			x.w /= 2;
		} else {
			int st = b->stride < 1 ? 1 : b->stride;
			x.h = (x.h - 1) / st + 1;
			x.w = (x.w - 1) / st + 1;
		}
		sz[i + 1] = x;
	}
}

/* ---- validity ------------------------------------------------------------- */

/* Checks one block i of a against s; counts its downsampling into *down. */
static int block_valid(const search_space *s, const nn_arch *a, int i, const hw *sz,
                       int *down, char *err, size_t errlen)
{
	const nn_block_spec *b = &a->blocks[i];

	if ((int)b->op < 0 || b->op > NN_OP_POOL)
		return fail(err, errlen, "block %d: unknown op %d", i, (int)b->op);
	if (!((s->ops >> b->op) & 1))
		return fail(err, errlen, "block %d: op %d is not in the space", i, (int)b->op);
	if (!width_ok(s, b->channels))
		return fail(err, errlen, "block %d: width %d is not allowed", i, b->channels);
	if (b->op == NN_OP_POOL) {
		(*down)++;
	} else if (b->stride == 2) {
		(*down)++;
	} else if (b->stride != 1) {
		return fail(err, errlen, "block %d: stride %d is not 1 or 2", i, b->stride);
	}
	if (sz[i + 1].h < 1 || sz[i + 1].w < 1)
		return fail(err, errlen, "block %d: the feature map vanishes", i);
	if (b->skip_from != NN_SKIP_NONE) {
		int j = b->skip_from;
		if (j < -1 || j >= i)
			return fail(err, errlen, "block %d: skip_from %d is not the stem or an "
			            "earlier block", i, j);
		if (sz[j + 1].h != sz[i + 1].h || sz[j + 1].w != sz[i + 1].w)
			return fail(err, errlen, "block %d: skip_from %d joins %dx%d to %dx%d",
			            i, j, sz[j + 1].h, sz[j + 1].w, sz[i + 1].h, sz[i + 1].w);
	}
	return 0;
}

int search_arch_valid(const search_space *s, const nn_arch *a, char *err,
                      size_t errlen)
{
	hw sz[NN_MAX_BLOCKS + 1];
	int down = 0, rc;

	if (!s || !a)
		return fail(err, errlen, "no space or no architecture");
	if (a->nblocks < s->min_blocks || a->nblocks > s->max_blocks ||
	    a->nblocks > NN_MAX_BLOCKS)
		return fail(err, errlen, "%d blocks, the space allows %d to %d", a->nblocks,
		            s->min_blocks, s->max_blocks);
	if (!on_grid(a->stem_channels, s->stem_min, s->stem_max))
		return fail(err, errlen, "stem width %d is not allowed (%d..%d in steps of %d)",
		            a->stem_channels, s->stem_min, s->stem_max, SEARCH_WIDTH_STEP);
	if (a->in_h < 1 || a->in_w < 1)
		return fail(err, errlen, "input %dx%d is empty", a->in_h, a->in_w);
	spatial_sizes(a, sz);
	for (int i = 0; i < a->nblocks; i++)
		if ((rc = block_valid(s, a, i, sz, &down, err, errlen)))
			return rc;
	if (down > s->max_downsamples)
		return fail(err, errlen, "%d downsamplings, the space allows %d", down,
		            s->max_downsamples);

	int64_t params = search_arch_params(a), flops = search_arch_flops(a);
	if (params < 0 || flops < 0)
		return fail(err, errlen, "the architecture does not build: %s",
		            graft_strerror((int)(params < 0 ? params : flops)));
	if (params > s->max_params)
		return fail(err, errlen, "%lld parameters, over the limit of %lld",
		            (long long)params, (long long)s->max_params);
	if (flops > s->max_flops)
		return fail(err, errlen, "%lld FLOPs, over the limit of %lld",
		            (long long)flops, (long long)s->max_flops);
	return 0;
}

/* ---- canonical form and hash ------------------------------------------------ */

/* x to 6 significant digits, the precision the hash and the YAML keep. */
static float round6(float x)
{
	char buf[32];

	if (!isfinite(x))
		return x;
	snprintf(buf, sizeof buf, "%.6g", (double)x);
	return strtof(buf, NULL);
}

/* Copies the C string src into dst[n] and zeroes the rest of dst, so that
 * equal strings make equal bytes. */
static void copy_str(char *dst, const char *src, size_t n)
{
	size_t len = strnlen(src, n - 1);
	memmove(dst, src, len);
	memset(dst + len, 0, n - len);
}

void search_arch_canonical(const nn_arch *a, nn_arch *out)
{
	nn_arch c = *a;
	int nb = c.nblocks < 0 ? 0 : c.nblocks > NN_MAX_BLOCKS ? NN_MAX_BLOCKS : c.nblocks;
	int ng = c.graft_nlayers < 0 ? 0 :
	         c.graft_nlayers > NN_MAX_GRAFT_LAYERS ? NN_MAX_GRAFT_LAYERS : c.graft_nlayers;
	int nc = c.in_c < 0 ? 0 : c.in_c > NN_MAX_CHANNELS ? NN_MAX_CHANNELS : c.in_c;

	for (int i = 0; i < NN_MAX_CHANNELS; i++) {
		c.mean[i] = i < nc ? round6(c.mean[i]) : 0;
		c.std[i] = i < nc ? round6(c.std[i]) : 0;
	}
	for (int i = 0; i < NN_MAX_GRAFT_LAYERS; i++)
		if (i >= ng)
			c.graft_kernel[i] = c.graft_channels[i] = 0;
	if (c.graft_nlayers > 0) {
		copy_str(c.graft_sha256, a->graft_sha256, sizeof c.graft_sha256);
	} else {
		memset(c.graft_sha256, 0, sizeof c.graft_sha256);
		c.graft_trainable = 0;
	}
	memset(c.graft_source, 0, sizeof c.graft_source);
	for (int i = 0; i < NN_MAX_BLOCKS; i++) {
		if (i >= nb)
			c.blocks[i] = (nn_block_spec){ 0, 0, 0, NN_SKIP_NONE };
		else if (c.blocks[i].op == NN_OP_POOL)
			c.blocks[i].stride = 1;
	}
	c.train.lr = round6(c.train.lr);
	c.train.momentum = round6(c.train.momentum);
	c.train.weight_decay = round6(c.train.weight_decay);
	c.has_result = 0;
	c.result_val_accuracy = 0;
	c.result_params = c.result_flops = 0;
	*out = c;
}

/* A text buffer that never overflows; what does not fit is cut, which cannot
 * happen for the sizes an nn_arch bounds (about 2 KiB at most). */
typedef struct text {
	char buf[8192];
	size_t len;
} text;

static void put(text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		t->len += (size_t)n < sizeof t->buf - t->len ? (size_t)n
		                                             : sizeof t->buf - 1 - t->len;
}

void search_arch_hash(const nn_arch *a, char hex[65])
{
	text t;
	nn_arch c;

	search_arch_canonical(a, &c);
	t.len = 0;
	t.buf[0] = '\0';
	put(&t, "graft-genome/1\ninput %d %d %d\nnormalize", c.in_c, c.in_h, c.in_w);
	for (int i = 0; i < c.in_c && i < NN_MAX_CHANNELS; i++)
		put(&t, " %.6g/%.6g", (double)c.mean[i], (double)c.std[i]);
	put(&t, "\nclasses %d\nstem %d %d\ngraft %d", c.classes, c.stem_kernel,
	    c.stem_channels, c.graft_nlayers);
	for (int i = 0; i < c.graft_nlayers && i < NN_MAX_GRAFT_LAYERS; i++)
		put(&t, " %d:%d", c.graft_kernel[i], c.graft_channels[i]);
	put(&t, " sha256=%s trainable=%d\nblocks %d\n", c.graft_sha256,
	    c.graft_trainable, c.nblocks);
	for (int i = 0; i < c.nblocks && i < NN_MAX_BLOCKS; i++) {
		const nn_block_spec *b = &c.blocks[i];
		put(&t, "block %d op=%d channels=%d stride=%d skip=%d\n", i, (int)b->op,
		    b->channels, b->stride, b->skip_from);
	}
	put(&t, "train steps=%d batch=%d lr=%.6g momentum=%.6g weight_decay=%.6g "
	    "nesterov=%d schedule=%d warmup=%d crop=%d flip=%d seed=%llu\n",
	    c.train.steps, c.train.batch, (double)c.train.lr, (double)c.train.momentum,
	    (double)c.train.weight_decay, c.train.nesterov, (int)c.train.schedule,
	    c.train.warmup, c.train.crop, c.train.flip,
	    (unsigned long long)c.train.seed);
	nn_sha256_hex(t.buf, t.len, hex);
}

/* ---- mutation --------------------------------------------------------------- */

static const char *const mutation_names[SEARCH_MUT_COUNT] = {
	"insert", "remove", "channels", "kernel", "stride", "op", "add_skip",
	"remove_skip", "lr", "identity",
};

const char *search_mutation_name(enum search_mutation m)
{
	return (int)m >= 0 && m < SEARCH_MUT_COUNT ? mutation_names[m] : "?";
}

/* The number of distinct widths the space allows. */
static int count_widths(const search_space *s)
{
	int n = 0;

	if (s->nwidths == 0)
		return (s->max_width - s->min_width) / SEARCH_WIDTH_STEP + 1;
	for (int i = 0; i < s->nwidths; i++) {
		int dup = 0;
		for (int j = 0; j < i; j++)
			dup |= s->widths[j] == s->widths[i];
		n += !dup;
	}
	return n;
}

/* A width the space allows other than cur (uniformly among them), or any one
 * of them when cur is none of them; needs count_widths(s) >= 2. */
static int draw_other_width(const search_space *s, nn_rng *r, int cur)
{
	int cand[SEARCH_MAX_WIDTHS], n = 0;

	if (s->nwidths == 0) {
		int total = count_widths(s);
		if (!on_grid(cur, s->min_width, s->max_width))
			return s->min_width + SEARCH_WIDTH_STEP * (int)nn_rng_below(r, (uint32_t)total);
		int k = (int)nn_rng_below(r, (uint32_t)(total - 1));
		int c = s->min_width + SEARCH_WIDTH_STEP * k;
		return c >= cur ? c + SEARCH_WIDTH_STEP : c;
	}
	for (int i = 0; i < s->nwidths; i++) {
		int dup = s->widths[i] == cur;
		for (int j = 0; j < n; j++)
			dup |= cand[j] == s->widths[i];
		if (!dup)
			cand[n++] = s->widths[i];
	}
	return cand[nn_rng_below(r, (uint32_t)n)];
}

static int space_ops(const search_space *s)
{
	return s->ops & ((1 << (NN_OP_POOL + 1)) - 1);
}

static int popcount(int x)
{
	int n = 0;
	for (; x; x &= x - 1)
		n++;
	return n;
}

/* The sites a mutation can act on: blocks (site = i), for ADD_SKIP block and
 * source pairs (site = i * (NN_MAX_BLOCKS + 1) + j + 1), for LR and IDENTITY
 * the one site 0.  Returns their
 * number; 0 means the mutation does not apply to a.  sites may be NULL. */
#define MAX_SITES (NN_MAX_BLOCKS * (NN_MAX_BLOCKS + 1))
static int mutation_sites(const search_space *s, const nn_arch *a,
                          enum search_mutation m, int *sites)
{
	int ops = space_ops(s), n = 0;
	hw sz[NN_MAX_BLOCKS + 1];

#define SITE(v) do { if (sites) sites[n] = (v); n++; } while (0)
	switch (m) {
	case SEARCH_MUT_INSERT: /* the site is the new block's index */
		if (a->nblocks < s->max_blocks && a->nblocks < NN_MAX_BLOCKS && ops)
			for (int i = 0; i <= a->nblocks; i++)
				SITE(i);
		return n;
	case SEARCH_MUT_REMOVE:
		if (a->nblocks > s->min_blocks)
			for (int i = 0; i < a->nblocks; i++)
				SITE(i);
		return n;
	case SEARCH_MUT_CHANNELS:
		if (count_widths(s) >= 2)
			for (int i = 0; i < a->nblocks; i++)
				SITE(i);
		return n;
	case SEARCH_MUT_KERNEL:
		for (int i = 0; i < a->nblocks; i++) {
			enum nn_block_op op = a->blocks[i].op;
			if ((op == NN_OP_CONV3 && (ops >> NN_OP_CONV5 & 1)) ||
			    (op == NN_OP_CONV5 && (ops >> NN_OP_CONV3 & 1)))
				SITE(i);
		}
		return n;
	case SEARCH_MUT_STRIDE:
		for (int i = 0; i < a->nblocks; i++)
			if (a->blocks[i].op != NN_OP_POOL)
				SITE(i);
		return n;
	case SEARCH_MUT_OP:
		if (popcount(ops) >= 2)
			for (int i = 0; i < a->nblocks; i++)
				SITE(i);
		return n;
	case SEARCH_MUT_ADD_SKIP:
		spatial_sizes(a, sz);
		for (int i = 0; i < a->nblocks; i++) {
			if (a->blocks[i].skip_from != NN_SKIP_NONE)
				continue;
			for (int j = -1; j < i; j++)
				if (sz[j + 1].h == sz[i + 1].h && sz[j + 1].w == sz[i + 1].w)
					SITE(i * (NN_MAX_BLOCKS + 1) + j + 1);
		}
		return n;
	case SEARCH_MUT_REMOVE_SKIP:
		for (int i = 0; i < a->nblocks; i++)
			if (a->blocks[i].skip_from != NN_SKIP_NONE)
				SITE(i);
		return n;
	case SEARCH_MUT_LR:
	case SEARCH_MUT_IDENTITY:
		SITE(0);
		return n;
	case SEARCH_MUT_COUNT:
		break;
	}
#undef SITE
	return 0;
}

/* Inserts a new block at p: a random allowed op and width, stride 1, no skip.
 * Later blocks' skips from p or beyond follow their sources up by one. */
static void insert_block(const search_space *s, nn_rng *r, nn_arch *a, int p)
{
	nn_block_spec b = { search__draw_op(r, space_ops(s)), 0, 1, NN_SKIP_NONE };

	b.channels = s->nwidths > 0 ? s->widths[nn_rng_below(r, (uint32_t)s->nwidths)]
	                            : draw_other_width(s, r, -1);
	memmove(&a->blocks[p + 1], &a->blocks[p],
	        (size_t)(a->nblocks - p) * sizeof a->blocks[0]);
	a->blocks[p] = b;
	a->nblocks++;
	for (int i = p + 1; i < a->nblocks; i++)
		if (a->blocks[i].skip_from != NN_SKIP_NONE && a->blocks[i].skip_from >= p)
			a->blocks[i].skip_from++;
}

/* Removes block p.  A skip from p is dropped rather than re-pointed to p's
 * input: re-pointing would add a connection the parent never had. */
static void remove_block(nn_arch *a, int p)
{
	memmove(&a->blocks[p], &a->blocks[p + 1],
	        (size_t)(a->nblocks - p - 1) * sizeof a->blocks[0]);
	a->nblocks--;
	a->blocks[a->nblocks] = (nn_block_spec){ 0, 0, 0, NN_SKIP_NONE };
	for (int i = p; i < a->nblocks; i++) {
		int *j = &a->blocks[i].skip_from;
		if (*j == p)
			*j = NN_SKIP_NONE;
		else if (*j != NN_SKIP_NONE && *j > p)
			(*j)--;
	}
}

/* Applies m to a at a random site (mutation_sites(s, a, m, NULL) > 0). */
static void apply_mutation(const search_space *s, nn_rng *r, nn_arch *a,
                           enum search_mutation m)
{
	int sites[MAX_SITES];
	int n = mutation_sites(s, a, m, sites);
	int site = n > 1 ? sites[nn_rng_below(r, (uint32_t)n)] : sites[0];
	nn_block_spec *b = site < NN_MAX_BLOCKS ? &a->blocks[site] : NULL;

	switch (m) {
	case SEARCH_MUT_INSERT:
		insert_block(s, r, a, site);
		break;
	case SEARCH_MUT_REMOVE:
		remove_block(a, site);
		break;
	case SEARCH_MUT_CHANNELS:
		b->channels = draw_other_width(s, r, b->channels);
		break;
	case SEARCH_MUT_KERNEL:
		b->op = b->op == NN_OP_CONV3 ? NN_OP_CONV5 : NN_OP_CONV3;
		break;
	case SEARCH_MUT_STRIDE:
		b->stride = b->stride == 2 ? 1 : 2;
		break;
	case SEARCH_MUT_OP:
		b->op = search__draw_op(r, space_ops(s) & ~(1 << b->op));
		b->stride = b->op == NN_OP_POOL ? 1 : b->stride;
		break;
	case SEARCH_MUT_ADD_SKIP:
		a->blocks[site / (NN_MAX_BLOCKS + 1)].skip_from = site % (NN_MAX_BLOCKS + 1) - 1;
		break;
	case SEARCH_MUT_REMOVE_SKIP:
		b->skip_from = NN_SKIP_NONE;
		break;
	case SEARCH_MUT_LR: {
		double f = exp((2 * nn_rng_uniform(r) - 1) * log(2.0));
		double lr = a->train.lr * f;
		lr = lr < 1e-4 ? 1e-4 : lr > 1 ? 1 : lr;
		a->train.lr = round6((float)lr);
		break;
	}
	case SEARCH_MUT_IDENTITY:
	case SEARCH_MUT_COUNT:
		break;
	}
}

/* What every child gets whatever the mutation: no result of its own, pool
 * strides 1 (pool ignores them). */
static void tidy_child(nn_arch *a)
{
	a->has_result = 0;
	a->result_val_accuracy = 0;
	a->result_params = a->result_flops = 0;
	for (int i = 0; i < a->nblocks; i++)
		if (a->blocks[i].op == NN_OP_POOL)
			a->blocks[i].stride = 1;
}

int search_mutate(const search_space *s, const nn_arch *parent, nn_rng *r,
                  nn_arch *child, enum search_mutation *applied)
{
	enum search_mutation kinds[SEARCH_MUT_COUNT];
	nn_arch p, c;
	int nk = 0;

	if (!s || !parent || !r || !child || search_arch_valid(s, parent, NULL, 0))
		return GRAFT_EINVAL;
	p = *parent;
	tidy_child(&p);
	for (int m = 0; m < SEARCH_MUT_COUNT; m++)
		if (mutation_sites(s, &p, (enum search_mutation)m, NULL) > 0)
			kinds[nk++] = (enum search_mutation)m;

	for (int t = 0; t < SEARCH_MUTATE_TRIES; t++) {
		enum search_mutation m = kinds[nn_rng_below(r, (uint32_t)nk)];
		c = p;
		apply_mutation(s, r, &c, m);
		tidy_child(&c);
		if (search_arch_valid(s, &c, NULL, 0) == 0) {
			*child = c;
			if (applied)
				*applied = m;
			return 0;
		}
	}
	*child = p;
	if (applied)
		*applied = SEARCH_MUT_IDENTITY;
	return 0;
}
