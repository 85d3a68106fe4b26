/*
 * test_strategy.c - regularized evolution and random search: deterministic
 * for a seed, resumable by replaying asks and tells, aging the population in
 * admission order, choosing parents by tournament (never a failed one), and
 * beating random search on a toy fitness.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "nn/nn.h"
#include "search/search.h"

TestSuite(strategy, .timeout = 120);

/* A 1x28x28, 10-class base without blocks. */
static void base_arch(nn_arch *a)
{
	nn_arch_defaults(a);
	a->in_c = 1;
	a->in_h = a->in_w = 28;
	a->classes = 10;
	a->nblocks = 0;
}

static search_strategy *make(enum search_kind kind, int p, int s, uint64_t seed)
{
	search_space sp;
	nn_arch base;

	search_space_defaults(&sp);
	base_arch(&base);
	search_strategy *st = search_strategy_new(kind, &sp, &base, p, s, seed);
	cr_assert_not_null(st);
	return st;
}

/* A cheap deterministic fitness with one optimum: how closely the blocks
 * match a target sequence of ops and widths, less a penalty per block too
 * many or too few.  Random sampling rarely lands near the target; mutation
 * climbs towards it. */
static double toy_fitness(const nn_arch *a)
{
	static const enum nn_block_op op[5] = { NN_OP_CONV3, NN_OP_SEP3, NN_OP_RES3,
		                                NN_OP_SEP3, NN_OP_CONV3 };
	static const int w[5] = { 24, 48, 64, 32, 40 };
	double f = -0.75 * abs(a->nblocks - 5);

	for (int i = 0; i < a->nblocks && i < 5; i++) {
		f += a->blocks[i].op == op[i];
		f += 1.0 - fabs((double)(a->blocks[i].channels - w[i])) / 80.0;
		f += 0.25 * (a->blocks[i].stride == 1);
	}
	return f;
}

/* Asks and tells n candidates in lock step, recording hashes and parents. */
static void run_sequential(search_strategy *st, int n, char (*hash)[65], int *parents,
                           double *best)
{
	nn_arch a;

	*best = -INFINITY;
	for (int i = 0; i < n; i++) {
		int par, id = search_ask(st, &a, &par);
		cr_assert_eq(id, i, "ask %d returned %d", i, id);
		if (hash)
			search_arch_hash(&a, hash[i]);
		if (parents)
			parents[i] = par;
		double f = toy_fitness(&a);
		if (f > *best)
			*best = f;
		cr_assert_eq(search_tell(st, id, f), 0);
	}
}

Test(strategy, deterministic_for_a_seed)
{
	enum { N = 120 };
	static char h1[N][65], h2[N][65], h3[N][65];
	int p1[N], p2[N], p3[N];
	double b;

	for (int kind = SEARCH_EVOLUTION; kind <= SEARCH_RANDOM; kind++) {
		search_strategy *a = make(kind, 20, 5, 42), *c = make(kind, 20, 5, 42),
		                *d = make(kind, 20, 5, 43);
		run_sequential(a, N, h1, p1, &b);
		run_sequential(c, N, h2, p2, &b);
		run_sequential(d, N, h3, p3, &b);
		int differ = 0;
		for (int i = 0; i < N; i++) {
			cr_assert_str_eq(h1[i], h2[i], "kind %d candidate %d differs", kind, i);
			cr_assert_eq(p1[i], p2[i], "kind %d parent %d: %d vs %d", kind, i,
			             p1[i], p2[i]);
			differ += strcmp(h1[i], h3[i]) != 0;
		}
		cr_assert_gt(differ, N / 2, "kind %d: seeds 42 and 43 differ in only %d", kind,
		             differ);
		cr_assert_eq(search_strategy_asked(a), N);
		search_strategy_free(a);
		search_strategy_free(c);
		search_strategy_free(d);
	}
}

/* One event of a search: an ask (id >= 0 returned) or a tell of id. */
typedef struct event {
	int tell, id;
	double fitness;
	char hash[65];
	int parent;
} event;

Test(strategy, replay_resumes_exactly)
{
	enum { N = 60, MORE = 20, P = 12, S = 4 };
	static event ev[4 * N];
	static double fit[N];
	int nev = 0, out[N], nout = 0, asked = 0;
	nn_rng r;
	nn_arch a;

	nn_rng_seed(&r, 99);
	search_strategy *st = make(SEARCH_EVOLUTION, P, S, 7);
	/* Asks run ahead of tells by up to 8 (parallel workers), and tells come
	 * in a random order; some candidates fail. */
	while (asked < N || nout > 0) {
		int do_ask = asked < N && (nout == 0 || (nout < 8 && nn_rng_below(&r, 2)));
		event *e = &ev[nev++];
		if (do_ask) {
			e->tell = 0;
			e->id = search_ask(st, &a, &e->parent);
			cr_assert_eq(e->id, asked);
			search_arch_hash(&a, e->hash);
			fit[e->id] = toy_fitness(&a);
			out[nout++] = e->id;
			asked++;
		} else {
			int k = (int)nn_rng_below(&r, (uint32_t)nout);
			e->tell = 1;
			e->id = out[k];
			out[k] = out[--nout];
			e->fitness = nn_rng_below(&r, 10) == 0 ? NAN : fit[e->id];
			cr_assert_eq(search_tell(st, e->id, e->fitness), 0);
		}
	}
	cr_assert_eq(nev, 2 * N);

	search_strategy *re = make(SEARCH_EVOLUTION, P, S, 7);
	for (int i = 0; i < nev; i++) {
		if (ev[i].tell) {
			cr_assert_eq(search_tell(re, ev[i].id, ev[i].fitness), 0);
			continue;
		}
		char h[65];
		int par, id = search_ask(re, &a, &par);
		search_arch_hash(&a, h);
		cr_assert_eq(id, ev[i].id, "event %d: id %d vs %d", i, id, ev[i].id);
		cr_assert_str_eq(h, ev[i].hash, "event %d: candidate %d differs on replay", i,
		                 id);
		cr_assert_eq(par, ev[i].parent, "event %d: parent %d vs %d", i, par,
		             ev[i].parent);
	}
	int pa[P], pb[P];
	int na = search_strategy_population(st, pa, P), nb = search_strategy_population(re, pb, P);
	cr_assert_eq(na, nb);
	cr_assert_eq(memcmp(pa, pb, sizeof(int) * (size_t)na), 0, "populations differ");

	/* Both go on identically. */
	for (int i = 0; i < MORE; i++) {
		nn_arch x, y;
		int px, py, ix = search_ask(st, &x, &px), iy = search_ask(re, &y, &py);
		char hx[65], hy[65];
		search_arch_hash(&x, hx);
		search_arch_hash(&y, hy);
		cr_assert_eq(ix, iy);
		cr_assert_eq(ix, N + i);
		cr_assert_str_eq(hx, hy, "continuation %d differs", i);
		cr_assert_eq(px, py, "continuation %d: parent %d vs %d", i, px, py);
		cr_assert_eq(search_tell(st, ix, toy_fitness(&x)), 0);
		cr_assert_eq(search_tell(re, iy, toy_fitness(&y)), 0);
	}
	search_strategy_free(st);
	search_strategy_free(re);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

Test(strategy, evolution_ages_and_selects_by_tournament)
{
	enum { P = 16, S = 5, N = 200, LAG = 5 };
	static double fit[N];
	static int admitted[N];
	int nadm = 0, pending[LAG], npend = 0, ids[N], mutated = 0, above = 0;
	nn_rng r;
	nn_arch a;

	nn_rng_seed(&r, 3);
	search_strategy *st = make(SEARCH_EVOLUTION, P, S, 11);
	for (int i = 0; i < N || npend > 0;) {
		if (i < N && npend < LAG) {
			int pop[P], np = search_strategy_population(st, pop, P), par;
			int told = search_strategy_told(st);
			int id = search_ask(st, &a, &par);
			cr_assert_eq(id, i);
			fit[id] = toy_fitness(&a);
			pending[npend++] = id;
			i++;
			if (told < P) {
				cr_assert_eq(par, -1, "ask %d with %d told has parent %d", id, told,
				             par);
				continue;
			}
			cr_assert_geq(par, 0, "ask %d after %d tells was not mutated", id, told);
			cr_assert_eq(np, P);
			int in = 0;
			double pf[P];
			for (int k = 0; k < np; k++) {
				in |= pop[k] == par;
				pf[k] = fit[pop[k]];
			}
			cr_assert(in, "parent %d of %d was not in the population", par, id);
			qsort(pf, P, sizeof *pf, cmp_double);
			mutated++;
			above += fit[par] >= pf[P / 2];
		} else {
			/* Tell a pending result, not always the oldest. */
			int k = (int)nn_rng_below(&r, (uint32_t)npend), id = pending[k];
			pending[k] = pending[--npend];
			cr_assert_eq(search_tell(st, id, fit[id]), 0);
			admitted[nadm++] = id;
			int want = nadm < P ? nadm : P;
			int np = search_strategy_population(st, ids, N);
			cr_assert_eq(np, want, "after %d tells: %d members", nadm, np);
			for (int j = 0; j < np; j++)
				cr_assert_eq(ids[j], admitted[nadm - np + j],
				             "after %d tells member %d is %d, want %d", nadm, j,
				             ids[j], admitted[nadm - np + j]);
		}
	}
	/* The best of 5 uniform draws is at or above the median with
	 * probability 1 - 2^-5 (about 97%). */
	cr_assert_gt(mutated, N - P - LAG - 1);
	cr_assert_geq(above * 100, mutated * 85, "only %d of %d parents at or above the median",
	              above, mutated);
	search_strategy_free(st);
}

Test(strategy, evolution_beats_random)
{
	enum { N = 300 };
	int wins = 0;
	double be[5], br[5];

	for (int seed = 0; seed < 5; seed++) {
		search_strategy *e = make(SEARCH_EVOLUTION, 30, 8, 1000 + seed);
		search_strategy *r = make(SEARCH_RANDOM, 30, 8, 1000 + seed);
		run_sequential(e, N, NULL, NULL, &be[seed]);
		run_sequential(r, N, NULL, NULL, &br[seed]);
		wins += be[seed] >= br[seed];
		cr_log_info("seed %d: evolution %.3f random %.3f", seed, be[seed], br[seed]);
		search_strategy_free(e);
		search_strategy_free(r);
	}
	cr_assert_geq(wins, 4, "evolution won %d of 5: %.3f/%.3f %.3f/%.3f %.3f/%.3f "
	              "%.3f/%.3f %.3f/%.3f", wins, be[0], br[0], be[1], br[1], be[2],
	              br[2], be[3], br[3], be[4], br[4]);
}

Test(strategy, every_candidate_valid_random_has_no_parents)
{
	search_space sp;
	nn_arch a;
	char err[GRAFT_ERRLEN];

	search_space_defaults(&sp);
	for (int kind = SEARCH_EVOLUTION; kind <= SEARCH_RANDOM; kind++) {
		search_strategy *st = make(kind, 10, 3, 5);
		for (int i = 0; i < 150; i++) {
			int par, id = search_ask(st, &a, &par);
			cr_assert_eq(id, i);
			err[0] = 0;
			cr_assert_eq(search_arch_valid(&sp, &a, err, sizeof err), 0,
			             "kind %d candidate %d invalid: %s", kind, i, err);
			if (kind == SEARCH_RANDOM)
				cr_assert_eq(par, -1, "random candidate %d has parent %d", i, par);
			else
				cr_assert(par < id);
			cr_assert_eq(search_tell(st, id, toy_fitness(&a)), 0);
		}
		search_strategy_free(st);
	}
}

Test(strategy, failed_never_parent_and_bad_tells_refused)
{
	enum { N = 200 };
	static double fit[N];
	nn_arch a;
	int par;

	search_strategy *st = make(SEARCH_EVOLUTION, 10, 4, 21);
	for (int i = 0; i < N; i++) {
		int id = search_ask(st, &a, &par);
		cr_assert_eq(id, i);
		if (par >= 0)
			cr_assert(!isnan(fit[par]), "failed candidate %d chosen as parent of %d",
			          par, id);
		/* Most fail, so that samples of only failed members do happen. */
		fit[id] = id % 3 ? NAN : toy_fitness(&a);
		cr_assert_eq(search_tell(st, id, fit[id]), 0);
	}
	cr_assert_eq(search_tell(st, N, 1.0), GRAFT_EINVAL, "tell of an unasked id");
	cr_assert_eq(search_tell(st, -1, 1.0), GRAFT_EINVAL);
	cr_assert_eq(search_tell(st, 5, 1.0), GRAFT_EINVAL, "second tell of an id");
	cr_assert_eq(search_strategy_told(st), N);
	search_strategy_free(st);

	search_space sp;
	nn_arch base;
	search_space_defaults(&sp);
	base_arch(&base);
	cr_assert_null(search_strategy_new(SEARCH_EVOLUTION, &sp, &base, 4, 5, 1));
	cr_assert_null(search_strategy_new(SEARCH_EVOLUTION, &sp, &base, 0, 0, 1));
	cr_assert_null(search_strategy_new(SEARCH_RANDOM, NULL, &base, 4, 2, 1));
	cr_assert_null(search_strategy_new((enum search_kind)7, &sp, &base, 4, 2, 1));
	search_strategy_free(NULL);
}
