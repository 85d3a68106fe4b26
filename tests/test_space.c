/*
 * test_space.c - the search space: every sampled architecture builds, costs
 * exactly what nn says it costs, and stays inside the space; sampling is
 * deterministic for a seed; impossible spaces are refused.  The cost functions
 * are also held to hand-computed values and to nn on architectures the
 * sampler never draws (identity shortcuts and skips, stride 3, absurd widths).
 */
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "nn/nn.h"
#include "proto/proto.h"
#include "search/search.h"
#include "tests/support/small_space.h"

TestSuite(space, .timeout = 120);

#define NSAMPLES 2000

/* A 1x28x28, 10-class base; with graft, a two-layer graft of unequal layers so
 * that a cost walk that assumed equal layers would be caught. */
static void base_arch(nn_arch *a, int graft)
{
	nn_arch_defaults(a);
	a->in_c = 1;
	a->in_h = a->in_w = 28;
	a->mean[0] = 0.286f;
	a->std[0] = 0.353f;
	a->classes = 10;
	a->stem_kernel = 3;
	a->stem_channels = 24;
	a->train.steps = 321;
	a->train.lr = 0.08f;
	a->train.seed = 77;
	if (graft) {
		a->graft_nlayers = 2;
		a->graft_kernel[0] = 3;
		a->graft_channels[0] = 16;
		a->graft_kernel[1] = 5;
		a->graft_channels[1] = 12;
		strcpy(a->graft_sha256, "ab12");
		strcpy(a->graft_source, "target");
	}
	/* Blocks and a result in the base must not leak into samples. */
	a->nblocks = 1;
	a->blocks[0] = (nn_block_spec){ NN_OP_CONV5, 500, 1, NN_SKIP_NONE };
	a->has_result = 1;
	a->result_params = 5;
}

/* Builds a and checks that nn agrees with the search's cost functions. */
static void expect_cost_matches_nn(const nn_arch *a, const char *what, int i)
{
	char err[GRAFT_ERRLEN] = "";
	nn_net *net = NULL;

	int rc = nn_net_from_arch(&net, a, 1, 1, err, sizeof err);
	cr_assert_eq(rc, 0, "%s %d: nn_net_from_arch: %s", what, i, err);
	int64_t np = nn_net_params(net), nf = nn_net_flops(net);
	int64_t sp = search_arch_params(a), sf = search_arch_flops(a);
	nn_net_free(net);
	cr_assert_eq(sp, np, "%s %d: params: search %lld, nn %lld", what, i,
	             (long long)sp, (long long)np);
	cr_assert_eq(sf, nf, "%s %d: flops: search %lld, nn %lld", what, i,
	             (long long)sf, (long long)nf);
}

/* Fields of the draw (stem and blocks) equal. */
static int same_draw(const nn_arch *a, const nn_arch *b)
{
	if (a->stem_kernel != b->stem_kernel || a->stem_channels != b->stem_channels ||
	    a->nblocks != b->nblocks)
		return 0;
	for (int i = 0; i < a->nblocks; i++) {
		const nn_block_spec *x = &a->blocks[i], *y = &b->blocks[i];
		if (x->op != y->op || x->channels != y->channels || x->stride != y->stride ||
		    x->skip_from != y->skip_from)
			return 0;
	}
	return 1;
}

/* What base supplies must be copied unchanged. */
static void expect_base_copied(const nn_arch *a, const nn_arch *base, int i)
{
	cr_assert(a->in_c == base->in_c && a->in_h == base->in_h && a->in_w == base->in_w,
	          "sample %d: input shape not copied", i);
	cr_assert(a->mean[0] == base->mean[0] && a->std[0] == base->std[0],
	          "sample %d: normalization not copied", i);
	cr_assert_eq(a->classes, base->classes, "sample %d: classes", i);
	cr_assert(a->train.steps == base->train.steps && a->train.lr == base->train.lr &&
	          a->train.seed == base->train.seed, "sample %d: recipe not copied", i);
	cr_assert_eq(a->graft_nlayers, base->graft_nlayers, "sample %d: graft", i);
	for (int g = 0; g < base->graft_nlayers; g++)
		cr_assert(a->graft_kernel[g] == base->graft_kernel[g] &&
		          a->graft_channels[g] == base->graft_channels[g],
		          "sample %d: graft layer %d not copied", i, g);
	cr_assert_str_eq(a->graft_sha256, base->graft_sha256);
	cr_assert_str_eq(a->graft_source, base->graft_source);
	cr_assert_eq(a->has_result, 0, "sample %d: base's result leaked", i);
}

typedef struct tally {
	int ops[NN_OP_POOL + 1];
	int nblocks[NN_MAX_BLOCKS + 1];
	int stems[5];                       /* stem channels 8, 16, 24, 32 */
	int blocks, eligible, skips, skip_stem, stride2, downsamples[3];
	int64_t max_flops;
} tally;

/* Checks one sample against the default space s, block by block, computing
 * the spatial sizes independently of space.c. */
static void check_sample(const search_space *s, const nn_arch *a, int i, tally *t)
{
	int hs[NN_MAX_BLOCKS + 1], ws[NN_MAX_BLOCKS + 1], down = 0;

	cr_assert(a->nblocks >= s->min_blocks && a->nblocks <= s->max_blocks,
	          "sample %d: %d blocks", i, a->nblocks);
	cr_assert_eq(a->stem_kernel, 3, "sample %d: stem kernel %d", i, a->stem_kernel);
	cr_assert(a->stem_channels >= 8 && a->stem_channels <= 32 &&
	          a->stem_channels % 8 == 0, "sample %d: stem %d", i, a->stem_channels);
	t->stems[a->stem_channels / 8]++;
	t->nblocks[a->nblocks]++;
	hs[0] = a->in_h;
	ws[0] = a->in_w;
	for (int b = 0; b < a->nblocks; b++) {
		const nn_block_spec *k = &a->blocks[b];
		int h = hs[b], w = ws[b];
		cr_assert(k->op >= NN_OP_CONV3 && k->op <= NN_OP_POOL && (s->ops >> k->op) & 1,
		          "sample %d block %d: op %d", i, b, k->op);
		cr_assert(k->channels >= 16 && k->channels <= 96 && k->channels % 8 == 0,
		          "sample %d block %d: %d channels", i, b, k->channels);
		cr_assert(k->stride == 1 || (k->stride == 2 && k->op != NN_OP_POOL),
		          "sample %d block %d: op %d stride %d", i, b, k->op, k->stride);
		t->ops[k->op]++;
		t->blocks++;
		if (k->op == NN_OP_POOL) {
			h /= 2;
			w /= 2;
			down++;
		} else if (k->stride == 2) {
			h = (h - 1) / 2 + 1;
			w = (w - 1) / 2 + 1;
			down++;
			t->stride2++;
		}
		hs[b + 1] = h;
		ws[b + 1] = w;
		for (int j = -1; j < b; j++)
			if (hs[j + 1] == h && ws[j + 1] == w) {
				t->eligible++; /* a skip is possible here */
				break;
			}
		if (k->skip_from != NN_SKIP_NONE) {
			int j = k->skip_from;
			cr_assert(j >= -1 && j < b, "sample %d block %d: skip_from %d", i, b, j);
			cr_assert(hs[j + 1] == h && ws[j + 1] == w,
			          "sample %d block %d: skip from %d of %dx%d to %dx%d", i, b, j,
			          hs[j + 1], ws[j + 1], h, w);
			t->skips++;
			t->skip_stem += j == -1;
		}
	}
	cr_assert_leq(down, s->max_downsamples, "sample %d: %d downsamplings", i, down);
	t->downsamples[down]++;
	int64_t p = search_arch_params(a), f = search_arch_flops(a);
	cr_assert(p > 0 && p <= s->max_params, "sample %d: %lld params", i, (long long)p);
	cr_assert(f > 0 && f <= s->max_flops, "sample %d: %lld flops", i, (long long)f);
	if (f > t->max_flops)
		t->max_flops = f;
}

static void property(int graft)
{
	search_space s;
	nn_arch base, a;
	nn_rng r;
	tally t;

	memset(&t, 0, sizeof t);
	small_space(&s);
	base_arch(&base, graft);
	nn_rng_seed(&r, 2024 + graft);
	for (int i = 0; i < NSAMPLES; i++) {
		cr_assert_eq(search_sample_arch(&s, &base, &r, &a), 0, "sample %d", i);
		expect_base_copied(&a, &base, i);
		check_sample(&s, &a, i, &t);
		expect_cost_matches_nn(&a, "sample", i);
	}
	/* Everything the space allows turns up, at roughly the promised rates. */
	static const char *names[] = { "conv3", "conv5", "sep3", "res3", "pool" };
	for (int op = 0; op <= NN_OP_POOL; op++)
		cr_expect_gt(t.ops[op], t.blocks / 20, "%s drawn %d times of %d blocks",
		             names[op], t.ops[op], t.blocks);
	for (int n = 2; n <= 5; n++)
		cr_expect_gt(t.nblocks[n], NSAMPLES / 8, "%d blocks: %d times", n, t.nblocks[n]);
	for (int c = 1; c <= 4; c++)
		cr_expect_gt(t.stems[c], NSAMPLES / 8, "stem %d: %d times", 8 * c, t.stems[c]);
	for (int d = 0; d <= 2; d++)
		cr_expect_gt(t.downsamples[d], NSAMPLES / 20, "%d downsamplings: %d times", d,
		             t.downsamples[d]);
	/* A skip is drawn with probability 0.2 where an earlier output has the
	 * block's size (a downsampling block has none). */
	double skip_rate = (double)t.skips / t.eligible;
	cr_expect(skip_rate > 0.17 && skip_rate < 0.23, "skip rate %.3f of %d blocks",
	          skip_rate, t.eligible);
	cr_expect_gt(t.skip_stem, 0, "no skip from the stem");
	cr_expect_gt(t.stride2, t.blocks / 20, "stride 2 in %d of %d blocks", t.stride2,
	             t.blocks);
	/* The FLOPs limit binds in this space (conv5 at 96 channels and full
	 * resolution alone is 361 MFLOPs), so accepted samples come close to it. */
	cr_expect_gt(t.max_flops, 150000000, "largest sample %lld flops",
	             (long long)t.max_flops);
}

Test(space, samples_build_and_cost_what_nn_says)
{
	property(0);
}

Test(space, samples_with_graft_build_and_cost_what_nn_says)
{
	property(1);
}

/* A 3-channel, non-square input (odd width, so a pool and a stride-2 conv
 * disagree on it) with a graft: the walk must track height and width apart. */
Test(space, samples_of_a_non_square_input)
{
	search_space s;
	nn_arch base, a;
	nn_rng r;
	tally t;

	memset(&t, 0, sizeof t);
	small_space(&s);
	base_arch(&base, 1);
	base.in_c = 3;
	base.in_h = 30;
	base.in_w = 23;
	nn_rng_seed(&r, 8);
	for (int i = 0; i < 500; i++) {
		cr_assert_eq(search_sample_arch(&s, &base, &r, &a), 0, "sample %d", i);
		check_sample(&s, &a, i, &t);
		expect_cost_matches_nn(&a, "non-square", i);
	}
	cr_expect_gt(t.skips, 0);
	cr_expect_gt(t.ops[NN_OP_POOL], 0);
}

Test(space, sampling_is_deterministic_for_a_seed)
{
	search_space s;
	nn_arch base, a, b;
	nn_rng r1, r2;

	small_space(&s);
	base_arch(&base, 1);
	nn_rng_seed(&r1, 99);
	nn_rng_seed(&r2, 99);
	for (int i = 0; i < 200; i++) {
		cr_assert_eq(search_sample_arch(&s, &base, &r1, &a), 0);
		cr_assert_eq(search_sample_arch(&s, &base, &r2, &b), 0);
		cr_assert(same_draw(&a, &b), "sample %d differs for the same seed", i);
		cr_assert_eq(memcmp(&r1, &r2, sizeof r1), 0, "rng states diverged at %d", i);
	}
}

Test(space, different_seeds_give_different_archs)
{
	search_space s;
	nn_arch base, a, b;
	nn_rng r1, r2;
	int differ = 0;

	small_space(&s);
	base_arch(&base, 0);
	nn_rng_seed(&r1, 1);
	nn_rng_seed(&r2, 2);
	for (int i = 0; i < 50; i++) {
		cr_assert_eq(search_sample_arch(&s, &base, &r1, &a), 0);
		cr_assert_eq(search_sample_arch(&s, &base, &r2, &b), 0);
		differ += !same_draw(&a, &b);
	}
	cr_expect_geq(differ, 45, "only %d of 50 pairs differ", differ);
	/* Successive draws from one stream differ too. */
	nn_rng_seed(&r1, 1);
	cr_assert_eq(search_sample_arch(&s, &base, &r1, &a), 0);
	cr_assert_eq(search_sample_arch(&s, &base, &r1, &b), 0);
	cr_expect(!same_draw(&a, &b), "two successive draws are equal");
}

Test(space, base_and_out_may_alias)
{
	search_space s;
	nn_arch a, b;
	nn_rng r1, r2;

	small_space(&s);
	base_arch(&a, 1);
	b = a;
	nn_rng_seed(&r1, 5);
	nn_rng_seed(&r2, 5);
	nn_arch other;
	cr_assert_eq(search_sample_arch(&s, &b, &r2, &other), 0);
	cr_assert_eq(search_sample_arch(&s, &a, &r1, &a), 0);
	cr_assert(same_draw(&a, &other));
}

Test(space, explicit_widths_and_tight_limits)
{
	search_space s;
	nn_arch base, a;
	nn_rng r;
	int seen[2] = { 0, 0 };

	small_space(&s);
	s.ops = 1 << NN_OP_SEP3 | 1 << NN_OP_RES3;
	s.nwidths = 2;
	s.widths[0] = 20;
	s.widths[1] = 52;
	s.min_blocks = s.max_blocks = 3;
	s.stem_min = s.stem_max = 16;
	s.max_downsamples = 0;
	s.max_flops = 40000000;
	base_arch(&base, 0);
	nn_rng_seed(&r, 3);
	for (int i = 0; i < 300; i++) {
		cr_assert_eq(search_sample_arch(&s, &base, &r, &a), 0, "sample %d", i);
		cr_assert_eq(a.nblocks, 3);
		cr_assert_eq(a.stem_channels, 16);
		for (int b = 0; b < 3; b++) {
			const nn_block_spec *k = &a.blocks[b];
			cr_assert(k->op == NN_OP_SEP3 || k->op == NN_OP_RES3, "op %d", k->op);
			cr_assert(k->channels == 20 || k->channels == 52, "%d channels",
			          k->channels);
			cr_assert_eq(k->stride, 1, "stride 2 with no downsampling allowed");
			seen[k->channels == 52]++;
		}
		cr_assert_leq(search_arch_flops(&a), s.max_flops);
		expect_cost_matches_nn(&a, "tight", i);
	}
	cr_expect(seen[0] > 0 && seen[1] > 0, "widths seen %d and %d", seen[0], seen[1]);
}

Test(space, impossible_spaces_are_refused)
{
	search_space s;
	nn_arch base, a, before;
	nn_rng r;

	base_arch(&base, 1);
	nn_rng_seed(&r, 1);
	memset(&a, 0x5a, sizeof a);
	before = a;

	small_space(&s);
	s.max_params = 10;
	cr_assert_eq(search_sample_arch(&s, &base, &r, &a), GRAFT_EINVAL);
	cr_assert_eq(memcmp(&a, &before, sizeof a), 0, "out written on failure");

	small_space(&s);
	s.max_flops = 1000;
	cr_assert_eq(search_sample_arch(&s, &base, &r, &a), GRAFT_EINVAL);

	small_space(&s);
	s.ops = 0;
	cr_assert_eq(search_sample_arch(&s, &base, &r, &a), GRAFT_EINVAL);

	small_space(&s);
	s.ops |= 1 << 7; /* not an op */
	cr_assert_eq(search_sample_arch(&s, &base, &r, &a), GRAFT_EINVAL);

	small_space(&s);
	s.min_blocks = 4;
	s.max_blocks = 3;
	cr_assert_eq(search_sample_arch(&s, &base, &r, &a), GRAFT_EINVAL);

	small_space(&s);
	s.max_blocks = NN_MAX_BLOCKS + 1;
	cr_assert_eq(search_sample_arch(&s, &base, &r, &a), GRAFT_EINVAL);

	small_space(&s);
	s.min_width = 0;
	cr_assert_eq(search_sample_arch(&s, &base, &r, &a), GRAFT_EINVAL);

	small_space(&s);
	s.nwidths = 1;
	s.widths[0] = -8;
	cr_assert_eq(search_sample_arch(&s, &base, &r, &a), GRAFT_EINVAL);

	/* Only pool, but three blocks and two downsamplings: no block 3. */
	small_space(&s);
	s.ops = 1 << NN_OP_POOL;
	s.min_blocks = s.max_blocks = 3;
	cr_assert_eq(search_sample_arch(&s, &base, &r, &a), GRAFT_EINVAL);
	s.max_blocks = 4;
	s.min_blocks = 2; /* two pools fit */
	cr_assert_eq(search_sample_arch(&s, &base, &r, &a), 0);
	cr_assert_eq(a.nblocks, 2);

	/* A malformed base: no input, or an even graft kernel. */
	small_space(&s);
	nn_arch bad = base;
	bad.in_h = 0;
	cr_assert_eq(search_sample_arch(&s, &bad, &r, &a), GRAFT_EINVAL);
	bad = base;
	bad.graft_kernel[1] = 4;
	cr_assert_eq(search_sample_arch(&s, &bad, &r, &a), GRAFT_EINVAL);
	cr_assert_eq(search_sample_arch(NULL, &base, &r, &a), GRAFT_EINVAL);
}

/* A net small enough to count by hand. */
static void tiny_arch(nn_arch *a)
{
	nn_arch_defaults(a);
	a->in_c = 1;
	a->in_h = a->in_w = 28;
	a->classes = 10;
	a->stem_kernel = 3;
	a->stem_channels = 8;
	a->nblocks = 1;
	a->blocks[0] = (nn_block_spec){ NN_OP_CONV3, 16, 2, NN_SKIP_NONE };
}

Test(space, cost_of_a_hand_counted_net)
{
	nn_arch a;

	tiny_arch(&a);
	/* stem: 1*8*9 weights + 16 BN = 88; 2*72*28*28 = 112896 FLOPs.
	 * conv3 stride 2: 8*16*9 = 1152 + 32 = 1184; 2*1152*14*14 = 451584.
	 * head: 16*10 + 10 = 170; 2*160 = 320. */
	cr_assert_eq(search_arch_params(&a), 88 + 1184 + 170);
	cr_assert_eq(search_arch_flops(&a), 112896 + 451584 + 320);
	expect_cost_matches_nn(&a, "tiny", 0);

	/* A graft of one 3x3 layer of 4 channels: 1*4*9 + 8 = 44 and
	 * 2*36*784 = 56448; graft_proj 4 -> 8: 32 + 16 = 48 and 2*32*784 = 50176. */
	a.graft_nlayers = 1;
	a.graft_kernel[0] = 3;
	a.graft_channels[0] = 4;
	cr_assert_eq(search_arch_params(&a), 88 + 1184 + 170 + 44 + 48);
	cr_assert_eq(search_arch_flops(&a), 112896 + 451584 + 320 + 56448 + 50176);
	expect_cost_matches_nn(&a, "tiny graft", 0);
}

/* Shapes the sampler never draws but nn builds: identity shortcut and skip,
 * a skip projection from the stem, stride 3, a 3-channel 9x7 input. */
Test(space, cost_matches_nn_off_the_sampler)
{
	nn_arch a;

	nn_arch_defaults(&a);
	a.in_c = 3;
	a.in_h = 9;
	a.in_w = 7;
	a.classes = 4;
	a.stem_kernel = 5;
	a.stem_channels = 6;
	a.nblocks = 6;
	a.blocks[0] = (nn_block_spec){ NN_OP_RES3, 6, 1, -1 };  /* identity, identity */
	a.blocks[1] = (nn_block_spec){ NN_OP_RES3, 10, 1, -1 }; /* projections */
	a.blocks[2] = (nn_block_spec){ NN_OP_SEP3, 10, 3, NN_SKIP_NONE };
	a.blocks[3] = (nn_block_spec){ NN_OP_CONV5, 12, 1, 2 };
	a.blocks[4] = (nn_block_spec){ NN_OP_POOL, 7, 2, NN_SKIP_NONE };
	a.blocks[5] = (nn_block_spec){ NN_OP_RES3, 7, 2, 4 };
	expect_cost_matches_nn(&a, "handmade", 0);
	a.graft_nlayers = 3;
	for (int g = 0; g < 3; g++) {
		a.graft_kernel[g] = 2 * g + 1;
		a.graft_channels[g] = 3 + g;
	}
	expect_cost_matches_nn(&a, "handmade graft", 0);
}

Test(space, cost_of_what_does_not_build)
{
	nn_arch a;
	char err[GRAFT_ERRLEN];
	nn_net *net;

	tiny_arch(&a);
	a.nblocks = 2;
	a.blocks[1] = (nn_block_spec){ NN_OP_CONV3, 16, 1, -1 }; /* 14x14 from 28x28 */
	cr_assert_eq(search_arch_params(&a), GRAFT_EINVAL);
	cr_assert_eq(search_arch_flops(&a), GRAFT_EINVAL);
	cr_assert_neq(nn_net_from_arch(&net, &a, 1, 1, err, sizeof err), 0);

	a.blocks[1].skip_from = 1; /* itself, not an earlier block */
	cr_assert_eq(search_arch_params(&a), GRAFT_EINVAL);
	a.blocks[1].skip_from = -3;
	cr_assert_eq(search_arch_params(&a), GRAFT_EINVAL);

	tiny_arch(&a);
	a.stem_kernel = 4;
	cr_assert_eq(search_arch_params(&a), GRAFT_EINVAL);
	tiny_arch(&a);
	a.blocks[0].channels = 0;
	cr_assert_eq(search_arch_flops(&a), GRAFT_EINVAL);
	tiny_arch(&a);
	a.blocks[0].stride = 0;
	cr_assert_eq(search_arch_flops(&a), GRAFT_EINVAL);
	tiny_arch(&a);
	a.in_h = a.in_w = 1;
	a.blocks[0].op = NN_OP_POOL; /* 1x1 pools to nothing */
	cr_assert_eq(search_arch_params(&a), GRAFT_EINVAL);

	/* Absurd widths overflow int64 instead of wrapping to a small count. */
	tiny_arch(&a);
	a.nblocks = 2;
	a.blocks[0] = (nn_block_spec){ NN_OP_CONV5, 1000000000, 1, NN_SKIP_NONE };
	a.blocks[1] = (nn_block_spec){ NN_OP_CONV5, 1000000000, 1, NN_SKIP_NONE };
	cr_assert_eq(search_arch_params(&a), GRAFT_ERANGE);
	cr_assert_eq(search_arch_flops(&a), GRAFT_ERANGE);
}

/* Issue 12: the default space reaches networks that do well on 28x28 and
 * 32x32 images (deep, up to 256 wide, three downsamplings) and keeps every
 * draw within its limits; the hand-made small ResNet of the headline
 * benchmark is one of its networks. */
Test(space, the_default_space_is_deep_and_wide_enough_and_holds_the_small_resnet)
{
	search_space s;
	nn_arch base, a;
	nn_rng r;
	char err[GRAFT_ERRLEN];
	int deep = 0, wide = 0, three_down = 0;

	search_space_defaults(&s);
	cr_assert_eq(s.max_blocks, 10);
	for (int shape = 0; shape < 2; shape++) {
		nn_arch_defaults(&base);
		base.in_c = shape ? 3 : 1;
		base.in_h = base.in_w = shape ? 32 : 28;
		base.classes = 10;
		nn_rng_seed(&r, 12);
		for (int i = 0; i < 1500; i++) {
			cr_assert_eq(search_sample_arch(&s, &base, &r, &a), 0);
			cr_assert_eq(search_arch_valid(&s, &a, err, sizeof(err)), 0, "%s", err);
			cr_assert_leq(search_arch_flops(&a), s.max_flops);
			deep += a.nblocks >= 8;
			int down = 0, w = 0;
			for (int b = 0; b < a.nblocks; b++) {
				down += a.blocks[b].op == NN_OP_POOL || a.blocks[b].stride == 2;
				w = a.blocks[b].channels > w ? a.blocks[b].channels : w;
			}
			wide += w >= 192;
			three_down += down == 3;
		}
	}
	cr_assert_gt(deep, 0, "no draw has 8 or more blocks");
	cr_assert_gt(wide, 0, "no draw is 192 or more wide");
	cr_assert_gt(three_down, 0, "no draw downsamples three times");

	char path[512];
	snprintf(path, sizeof(path), "%s/../../examples/resnet-small.yaml",
	         getenv("GRAFT_TEST_DATA") ? getenv("GRAFT_TEST_DATA") : "tests/fixtures");
	cr_assert_eq(proto_arch_load(path, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(search_arch_valid(&s, &a, err, sizeof(err)), 0, "%s", err);
}
