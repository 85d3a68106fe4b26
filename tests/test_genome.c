/*
 * test_genome.c - genomes: every sampled and every mutated architecture is
 * valid in the space, builds, and costs what nn says; the hash sees exactly
 * the fields that change the network or its recipe; mutations are
 * deterministic for a seed, each kind occurs, and skips follow removed
 * blocks; architectures outside the space are refused with a reason.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "nn/nn.h"
#include "search/search.h"
#include "tests/support/small_space.h"

TestSuite(genome, .timeout = 120);

#define NSAMPLES 3000
#define NCHAINS 2000
#define CHAIN_LEN 20

/* A 1x28x28, 10-class base without blocks. */
static void base_arch(nn_arch *a)
{
	nn_arch_defaults(a);
	a->in_c = 1;
	a->in_h = a->in_w = 28;
	a->mean[0] = 0.286f;
	a->std[0] = 0.353f;
	a->classes = 10;
	a->stem_kernel = 3;
	a->stem_channels = 16;
	a->train.steps = 300;
	a->train.batch = 64;
	a->train.lr = 0.08f;
	a->train.seed = 7;
	a->nblocks = 0;
}

/* A fixed valid arch of the default space with every op, a stride and skips. */
static void fixed_arch(nn_arch *a)
{
	base_arch(a);
	a->nblocks = 5;
	a->blocks[0] = (nn_block_spec){ NN_OP_CONV3, 16, 1, NN_SKIP_NONE };
	a->blocks[1] = (nn_block_spec){ NN_OP_RES3, 24, 1, -1 };
	a->blocks[2] = (nn_block_spec){ NN_OP_CONV5, 32, 2, NN_SKIP_NONE };
	a->blocks[3] = (nn_block_spec){ NN_OP_SEP3, 40, 1, 2 };
	a->blocks[4] = (nn_block_spec){ NN_OP_POOL, 48, 1, NN_SKIP_NONE };
}

/* Valid, builds, and nn agrees with the search's cost. */
static void expect_good(const search_space *s, const nn_arch *a, const char *what,
                        int i)
{
	char err[GRAFT_ERRLEN] = "";
	nn_net *net = NULL;

	int rc = search_arch_valid(s, a, err, sizeof err);
	cr_assert_eq(rc, 0, "%s %d: not valid: %s", what, i, err);
	rc = nn_net_from_arch(&net, a, 1, 1, err, sizeof err);
	cr_assert_eq(rc, 0, "%s %d: nn_net_from_arch: %s", what, i, err);
	int64_t np = nn_net_params(net), nf = nn_net_flops(net);
	nn_net_free(net);
	cr_assert_eq(np, search_arch_params(a), "%s %d: params nn %lld search %lld", what,
	             i, (long long)np, (long long)search_arch_params(a));
	cr_assert_eq(nf, search_arch_flops(a), "%s %d: flops nn %lld search %lld", what,
	             i, (long long)nf, (long long)search_arch_flops(a));
}

/* Whether the canonical forms of a and b agree in every field the hash must
 * see (a field-by-field compare: struct padding is not comparable). */
static int same_network(const nn_arch *x, const nn_arch *y)
{
	nn_arch a, b;

	search_arch_canonical(x, &a);
	search_arch_canonical(y, &b);
	if (a.in_c != b.in_c || a.in_h != b.in_h || a.in_w != b.in_w ||
	    a.classes != b.classes || a.stem_kernel != b.stem_kernel ||
	    a.stem_channels != b.stem_channels || a.graft_nlayers != b.graft_nlayers ||
	    strcmp(a.graft_sha256, b.graft_sha256) || a.nblocks != b.nblocks ||
	    a.graft_trainable != b.graft_trainable)
		return 0;
	for (int i = 0; i < NN_MAX_CHANNELS; i++)
		if (a.mean[i] != b.mean[i] || a.std[i] != b.std[i])
			return 0;
	for (int i = 0; i < a.graft_nlayers; i++)
		if (a.graft_kernel[i] != b.graft_kernel[i] ||
		    a.graft_channels[i] != b.graft_channels[i])
			return 0;
	for (int i = 0; i < a.nblocks; i++) {
		const nn_block_spec *p = &a.blocks[i], *q = &b.blocks[i];
		if (p->op != q->op || p->channels != q->channels || p->stride != q->stride ||
		    p->skip_from != q->skip_from)
			return 0;
	}
	const nn_recipe *p = &a.train, *q = &b.train;
	return p->steps == q->steps && p->batch == q->batch && p->lr == q->lr &&
	       p->momentum == q->momentum && p->weight_decay == q->weight_decay &&
	       p->nesterov == q->nesterov && p->schedule == q->schedule &&
	       p->warmup == q->warmup && p->crop == q->crop && p->flip == q->flip &&
	       p->seed == q->seed;
}

static void hash_of(const nn_arch *a, char hex[65])
{
	search_arch_hash(a, hex);
	cr_assert_eq(strlen(hex), 64, "hash '%s' is not 64 hex digits", hex);
}

Test(genome, sampled_archs_are_valid_and_build)
{
	search_space s;
	nn_arch base, a;
	nn_rng r;

	small_space(&s);
	base_arch(&base);
	nn_rng_seed(&r, 11);
	for (int i = 0; i < NSAMPLES; i++) {
		cr_assert_eq(search_sample_arch(&s, &base, &r, &a), 0, "sample %d", i);
		expect_good(&s, &a, "sample", i);
	}
}

/* 17 s in an optimized build; several times that under the sanitizers
 * (make SAN=address,undefined test), hence its own timeout. */
Test(genome, mutation_chains_stay_valid_and_hash_right, .timeout = 600)
{
	search_space s;
	nn_arch base, parent, child;
	nn_rng r;
	long seen[SEARCH_MUT_COUNT] = { 0 };
	char hp[65], hc[65];

	small_space(&s);
	base_arch(&base);
	nn_rng_seed(&r, 2024);
	for (int c = 0; c < NCHAINS; c++) {
		cr_assert_eq(search_sample_arch(&s, &base, &r, &parent), 0);
		for (int k = 0; k < CHAIN_LEN; k++) {
			enum search_mutation m = SEARCH_MUT_COUNT;
			int rc = search_mutate(&s, &parent, &r, &child, &m);
			cr_assert_eq(rc, 0, "chain %d step %d: rc %d", c, k, rc);
			cr_assert(m >= 0 && m < SEARCH_MUT_COUNT, "chain %d step %d: kind %d",
			          c, k, (int)m);
			seen[m]++;
			expect_good(&s, &child, search_mutation_name(m), c * CHAIN_LEN + k);
			hash_of(&parent, hp);
			hash_of(&child, hc);
			int same = same_network(&parent, &child);
			if (m == SEARCH_MUT_IDENTITY)
				cr_assert(same, "chain %d step %d: identity changed the arch", c, k);
			else if (m != SEARCH_MUT_LR)
				/* Every structural mutation changes the network. */
				cr_assert(!same, "chain %d step %d: %s changed nothing", c, k,
				          search_mutation_name(m));
			if (same)
				cr_assert_str_eq(hp, hc, "chain %d step %d: %s: equal archs hash "
				                 "differently", c, k, search_mutation_name(m));
			else
				cr_assert_str_neq(hp, hc, "chain %d step %d: %s: different archs "
				                  "hash equal", c, k, search_mutation_name(m));
			if (m == SEARCH_MUT_LR) {
				cr_assert(child.train.lr >= 1e-4f && child.train.lr <= 1.0f,
				          "lr %g out of range", (double)child.train.lr);
				double f = (double)child.train.lr / parent.train.lr;
				cr_assert((f >= 0.5 * (1 - 1e-5) && f <= 2 * (1 + 1e-5)) ||
				          child.train.lr == 1e-4f || child.train.lr == 1.0f,
				          "lr factor %g", f);
			}
			parent = child;
		}
	}
	for (int m = 0; m < SEARCH_MUT_COUNT; m++)
		cr_assert(seen[m] > 100, "mutation %s applied only %ld times",
		          search_mutation_name((enum search_mutation)m), seen[m]);
}

Test(genome, mutation_is_deterministic_for_a_seed)
{
	search_space s;
	nn_arch base, a[2];
	nn_rng r[2];
	char h[2][65];
	int differs = 0;

	small_space(&s);
	base_arch(&base);
	for (int t = 0; t < 2; t++) {
		nn_rng_seed(&r[t], 99);
		cr_assert_eq(search_sample_arch(&s, &base, &r[t], &a[t]), 0);
	}
	for (int k = 0; k < 500; k++) {
		enum search_mutation m[2];
		for (int t = 0; t < 2; t++) {
			cr_assert_eq(search_mutate(&s, &a[t], &r[t], &a[t], &m[t]), 0);
			hash_of(&a[t], h[t]);
		}
		cr_assert_eq(m[0], m[1], "step %d: %s vs %s", k, search_mutation_name(m[0]),
		             search_mutation_name(m[1]));
		cr_assert_str_eq(h[0], h[1], "step %d", k);
	}

	/* Another seed takes another path. */
	nn_rng_seed(&r[1], 100);
	cr_assert_eq(search_sample_arch(&s, &base, &r[1], &a[1]), 0);
	nn_rng_seed(&r[0], 99);
	cr_assert_eq(search_sample_arch(&s, &base, &r[0], &a[0]), 0);
	for (int k = 0; k < 20; k++) {
		for (int t = 0; t < 2; t++) {
			cr_assert_eq(search_mutate(&s, &a[t], &r[t], &a[t], NULL), 0);
			hash_of(&a[t], h[t]);
		}
		differs |= strcmp(h[0], h[1]) != 0;
	}
	cr_assert(differs, "seeds 99 and 100 gave the same chain");
}

Test(genome, irrelevant_fields_do_not_change_the_hash)
{
	nn_arch a, b, c;
	char ha[65], hb[65];

	fixed_arch(&a);
	hash_of(&a, ha);

	b = a;
	b.blocks[4].stride = 2; /* pool ignores its stride */
	b.has_result = 1;
	b.result_val_accuracy = 0.91;
	b.result_params = 12345;
	b.result_flops = 67890;
	strcpy(b.graft_source, "target");
	for (int i = b.nblocks; i < NN_MAX_BLOCKS; i++)
		b.blocks[i] = (nn_block_spec){ NN_OP_RES3, 777 + i, 3, i - 1 };
	b.mean[1] = b.std[2] = 0.5f; /* channels the input does not have */
	b.graft_kernel[3] = 9;        /* no graft: its slots do not matter */
	strcpy(b.graft_sha256, "deadbeef");
	b.graft_trainable = 1;
	b.train.lr = 0.0800000001f;  /* the same to 6 significant digits */
	hash_of(&b, hb);
	cr_assert_str_eq(ha, hb, "irrelevant fields changed the hash");

	/* The canonical form agrees with the original field by field, and is a
	 * fixed point. */
	search_arch_canonical(&b, &c);
	cr_assert_eq(c.blocks[4].stride, 1);
	cr_assert_eq(c.has_result, 0);
	cr_assert_eq(c.result_params, 0);
	cr_assert_str_eq(c.graft_source, "");
	cr_assert_str_eq(c.graft_sha256, "");
	cr_assert_eq(c.blocks[7].channels, 0);
	cr_assert_eq(c.blocks[7].skip_from, NN_SKIP_NONE);
	cr_assert(same_network(&a, &c));
	search_arch_canonical(&c, &c);
	hash_of(&c, hb);
	cr_assert_str_eq(ha, hb);

	/* With a graft, unused graft slots are irrelevant too. */
	a.graft_nlayers = 1;
	a.graft_kernel[0] = 3;
	a.graft_channels[0] = 8;
	strcpy(a.graft_sha256, "ab12");
	b = a;
	b.graft_kernel[1] = 5;
	b.graft_channels[5] = 99;
	strcpy(b.graft_source, "synthetic");
	hash_of(&a, ha);
	hash_of(&b, hb);
	cr_assert_str_eq(ha, hb, "unused graft slots changed the hash");
}

/* Every variant of the fixed arch below changes one field that matters. */
#define NVARIANTS 40
static int make_variants(nn_arch *v)
{
	int n = 0;
	nn_arch a;

	fixed_arch(&a);
	a.graft_nlayers = 1;
	a.graft_kernel[0] = 3;
	a.graft_channels[0] = 8;
	strcpy(a.graft_sha256, "ab12");
	v[n++] = a;
#define VARIANT(stmt) do { v[n] = a; { nn_arch *x = &v[n]; stmt; } n++; } while (0)
	VARIANT(x->blocks[0].op = NN_OP_CONV5);
	VARIANT(x->blocks[0].channels = 24);
	VARIANT(x->blocks[0].stride = 2);
	VARIANT(x->blocks[0].skip_from = -1);
	VARIANT(x->blocks[3].skip_from = NN_SKIP_NONE);
	VARIANT(x->blocks[1].skip_from = 0);
	VARIANT(x->blocks[2].stride = 1);
	VARIANT(x->blocks[4].op = NN_OP_CONV3);
	VARIANT(x->blocks[4].channels = 56);
	VARIANT(x->nblocks = 4);
	VARIANT(x->stem_channels = 24);
	VARIANT(x->stem_kernel = 5);
	VARIANT(x->classes = 11);
	VARIANT(x->in_h = 32);
	VARIANT(x->in_w = 32);
	VARIANT(x->mean[0] = 0.3f);
	VARIANT(x->std[0] = 0.3f);
	VARIANT(strcpy(x->graft_sha256, "ab13"));
	VARIANT(x->graft_kernel[0] = 5);
	VARIANT(x->graft_channels[0] = 16);
	VARIANT(x->graft_nlayers = 0);
	VARIANT(x->graft_trainable = 1);
	VARIANT(x->train.lr = 0.0800001f);
	VARIANT(x->train.steps = 301);
	VARIANT(x->train.batch = 128);
	VARIANT(x->train.momentum = 0.8f);
	VARIANT(x->train.weight_decay = 0.001f);
	VARIANT(x->train.nesterov = !x->train.nesterov);
	VARIANT(x->train.schedule = x->train.schedule == NN_SCHEDULE_COSINE ?
	                            NN_SCHEDULE_CONSTANT : NN_SCHEDULE_COSINE);
	VARIANT(x->train.warmup = x->train.warmup + 10);
	VARIANT(x->train.crop = x->train.crop + 2);
	VARIANT(x->train.flip = !x->train.flip);
	VARIANT(x->train.seed = 8);
#undef VARIANT
	cr_assert(n <= NVARIANTS);
	return n;
}

Test(genome, relevant_fields_change_the_hash)
{
	nn_arch v[NVARIANTS];
	char h[NVARIANTS][65];
	int n = make_variants(v);

	for (int i = 0; i < n; i++)
		hash_of(&v[i], h[i]);
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			cr_assert_str_neq(h[i], h[j], "variants %d and %d hash equal", i, j);
}

Test(genome, archs_outside_the_space_are_refused)
{
	search_space s;
	nn_arch a, b;
	char err[GRAFT_ERRLEN];

	small_space(&s);
	fixed_arch(&a);
	cr_assert_eq(search_arch_valid(&s, &a, err, sizeof err), 0, "%s", err);

#define REFUSED(stmt, word) do { \
		b = a; { nn_arch *x = &b; stmt; } \
		err[0] = '\0'; \
		cr_assert_eq(search_arch_valid(&s, &b, err, sizeof err), GRAFT_EINVAL, \
		             "accepted: %s", #stmt); \
		cr_assert(strstr(err, word), "%s: message '%s' lacks '%s'", #stmt, err, word); \
	} while (0)
	REFUSED((x->nblocks = 6, x->blocks[5] = x->blocks[0]), "blocks");
	REFUSED(x->nblocks = 1, "blocks");
	REFUSED(x->blocks[1].channels = 20, "width");
	REFUSED(x->blocks[1].channels = 104, "width");
	REFUSED(x->stem_channels = 40, "stem");
	REFUSED((x->blocks[0].stride = 2, x->blocks[1].skip_from = NN_SKIP_NONE),
	        "downsampling"); /* 3: two strides and a pool */
	REFUSED(x->blocks[0].stride = 3, "stride");
	REFUSED(x->blocks[3].skip_from = 1, "skip_from");
	REFUSED(x->blocks[3].skip_from = 3, "skip_from");
	REFUSED((x->blocks[0].channels = 96, x->blocks[1].channels = 96,
	         x->blocks[1].op = NN_OP_CONV5), "FLOPs");
	s.ops &= ~(1 << NN_OP_SEP3);
	REFUSED((void)x, "op");
	small_space(&s);
	s.max_params = 1000;
	REFUSED((void)x, "parameters");
#undef REFUSED

	/* A parent outside the space cannot be mutated. */
	small_space(&s);
	nn_rng r;
	nn_rng_seed(&r, 1);
	b = a;
	b.blocks[1].channels = 20;
	cr_assert_eq(search_mutate(&s, &b, &r, &a, NULL), GRAFT_EINVAL);
}

/* Removing a block drops the skips from it and shifts the later ones. */
Test(genome, remove_drops_and_shifts_skips)
{
	search_space s;
	nn_arch a, c;
	nn_rng r;
	int removed_seen = 0, first_removed = 0;

	small_space(&s);
	base_arch(&a);
	a.nblocks = 5; /* distinct widths identify the blocks; all 28x28 */
	a.blocks[0] = (nn_block_spec){ NN_OP_CONV3, 16, 1, NN_SKIP_NONE };
	a.blocks[1] = (nn_block_spec){ NN_OP_CONV3, 24, 1, -1 };
	a.blocks[2] = (nn_block_spec){ NN_OP_CONV3, 32, 1, 0 };
	a.blocks[3] = (nn_block_spec){ NN_OP_CONV3, 40, 1, 1 };
	a.blocks[4] = (nn_block_spec){ NN_OP_CONV3, 48, 1, 1 };
	/* Removing block 0 without shifting would leave skips that are valid but
	 * wrong; count that case so that the test knows it happened. */
	nn_rng_seed(&r, 5);
	for (int t = 0; t < 2000 && removed_seen < 20; t++) {
		enum search_mutation m;
		cr_assert_eq(search_mutate(&s, &a, &r, &c, &m), 0);
		if (m != SEARCH_MUT_REMOVE)
			continue;
		removed_seen++;
		cr_assert_eq(c.nblocks, 4);
		int p = 0;
		while (p < 4 && c.blocks[p].channels == a.blocks[p].channels)
			p++;
		first_removed += p == 0;
		for (int i = 0; i < 4; i++) {
			int orig = i < p ? i : i + 1, j = a.blocks[orig].skip_from;
			int want = j == NN_SKIP_NONE || j == p ? NN_SKIP_NONE : j > p ? j - 1 : j;
			cr_assert_eq(c.blocks[i].channels, a.blocks[orig].channels);
			cr_assert_eq(c.blocks[i].skip_from, want,
			             "removed %d: block %d skip %d, want %d", p, i,
			             c.blocks[i].skip_from, want);
		}
	}
	cr_assert_geq(removed_seen, 20);
	cr_assert_gt(first_removed, 0, "block 0 was never removed");
}

Test(genome, mutation_names)
{
	const char *want[SEARCH_MUT_COUNT] = { "insert", "remove", "channels", "kernel",
	                                       "stride", "op", "add_skip", "remove_skip",
	                                       "lr", "identity" };
	for (int m = 0; m < SEARCH_MUT_COUNT; m++)
		cr_assert_str_eq(search_mutation_name((enum search_mutation)m), want[m]);
	cr_assert_str_eq(search_mutation_name(SEARCH_MUT_COUNT), "?");
}
