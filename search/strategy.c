/*
 * strategy.c - the search strategies: regularized (aging) evolution after
 * Real et al. 2019, and random search, both driven one candidate at a time.
 *
 * The strategy keeps every candidate it has proposed (the arch, its parent and
 * its result once told) and the population as a ring of ids in admission
 * order.  All randomness comes from one rng that only search_ask touches, so
 * that a search can be resumed by replaying its asks and tells in order.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "search/search.h"

typedef struct cand {
	nn_arch arch;
	double fitness;
	int told;
} cand;

struct search_strategy {
	enum search_kind kind;
	search_space space;
	nn_arch base;
	int population, sample;
	nn_rng rng;
	cand *cands;      /* cands[0..nasked), capacity cap */
	int nasked, cap;
	int ntold;
	int *ring;        /* the population: ring[(head + i) % population], */
	int head, npop;   /* i in [0, npop), oldest admitted first */
	int last_mutation; /* of the last ask: a search_mutation, or -1 */
	nn_arch *warm;     /* the first asks, as given (search_strategy_warm) */
	int nwarm;
};

search_strategy *search_strategy_new(enum search_kind kind, const search_space *s,
                                     const nn_arch *base, int population,
                                     int sample, uint64_t seed)
{
	search_strategy *st;

	if (!s || !base || population < 1 || sample < 1 || sample > population ||
	    (kind != SEARCH_EVOLUTION && kind != SEARCH_RANDOM))
		return NULL;
	st = calloc(1, sizeof *st);
	if (!st)
		return NULL;
	st->last_mutation = -1;
	st->ring = malloc((size_t)population * sizeof *st->ring);
	if (!st->ring) {
		free(st);
		return NULL;
	}
	st->kind = kind;
	st->space = *s;
	st->base = *base;
	st->population = population;
	st->sample = sample;
	nn_rng_seed(&st->rng, seed);
	return st;
}

void search_strategy_free(search_strategy *st)
{
	if (!st)
		return;
	free(st->cands);
	free(st->ring);
	free(st->warm);
	free(st);
}

int search_strategy_asked(const search_strategy *st)
{
	return st ? st->nasked : 0;
}

int search_strategy_told(const search_strategy *st)
{
	return st ? st->ntold : 0;
}

int search_strategy_population(const search_strategy *st, int *ids, int max)
{
	if (!st)
		return 0;
	for (int i = 0; i < st->npop && i < max; i++)
		ids[i] = st->ring[(st->head + i) % st->population];
	return st->npop;
}

/* Makes room for one more candidate, doubling the array so that a long
 * search costs amortised constant time per ask. */
static int reserve(search_strategy *st)
{
	if (st->nasked < st->cap)
		return 0;
	int ncap = st->cap ? st->cap * 2 : 64;
	cand *c = realloc(st->cands, (size_t)ncap * sizeof *c);
	if (!c)
		return GRAFT_ENOMEM;
	st->cands = c;
	st->cap = ncap;
	return 0;
}

/* Tournament selection: draws S members uniformly with replacement and
 * returns the id of the fittest, the first drawn winning ties; -1 when every
 * draw was a failed (NAN) member.  NAN compares false, so it never wins. */
static int tournament(search_strategy *st)
{
	int best = -1;
	double bestf = 0;

	for (int i = 0; i < st->sample; i++) {
		uint32_t k = nn_rng_below(&st->rng, (uint32_t)st->npop);
		int id = st->ring[(st->head + (int)k) % st->population];
		double f = st->cands[id].fitness;
		if (isnan(f))
			continue;
		if (best < 0 || f > bestf) {
			best = id;
			bestf = f;
		}
	}
	return best;
}

int search_ask(search_strategy *st, nn_arch *out, int *parent)
{
	nn_arch a;
	int par = -1, rc;

	if (!st || !out)
		return GRAFT_EINVAL;
	if ((rc = reserve(st)) < 0)
		return rc;
	enum search_mutation m = SEARCH_MUT_COUNT;
	if (st->nasked < st->nwarm) {
		a = st->warm[st->nasked];
		st->last_mutation = SEARCH_WARM;
		goto asked;
	}
	if (st->kind == SEARCH_EVOLUTION && st->ntold >= st->population)
		par = tournament(st);
	if (par >= 0)
		rc = search_mutate(&st->space, &st->cands[par].arch, &st->rng, &a, &m);
	else
		rc = search_sample_arch(&st->space, &st->base, &st->rng, &a);
	if (rc < 0)
		return rc;
	st->last_mutation = par >= 0 ? (int)m : -1;
asked:;
	int id = st->nasked++;
	st->cands[id].arch = a;
	st->cands[id].fitness = NAN;
	st->cands[id].told = 0;
	*out = a;
	if (parent)
		*parent = par;
	return id;
}

int search_tell(search_strategy *st, int id, double fitness)
{
	if (!st || id < 0 || id >= st->nasked || st->cands[id].told)
		return GRAFT_EINVAL;
	st->cands[id].told = 1;
	st->cands[id].fitness = fitness;
	st->ntold++;
	/* Admission: a full population retires its oldest member, whatever its
	 * fitness; that is the "regularized" in regularized evolution. */
	if (st->npop < st->population) {
		st->ring[(st->head + st->npop) % st->population] = id;
		st->npop++;
	} else {
		st->ring[st->head] = id;
		st->head = (st->head + 1) % st->population;
	}
	return 0;
}

int search_strategy_warm(search_strategy *st, const nn_arch *a, int n)
{
	if (!st || n < 0 || (n > 0 && !a) || st->nasked > 0)
		return GRAFT_EINVAL;
	nn_arch *w = n ? malloc(sizeof(*w) * (size_t)n) : NULL;
	if (n && !w)
		return GRAFT_ENOMEM;
	if (n)
		memcpy(w, a, sizeof(*w) * (size_t)n);
	free(st->warm);
	st->warm = w;
	st->nwarm = n;
	return 0;
}

int search_tell_update(search_strategy *st, int id, double fitness)
{
	if (!st || id < 0 || id >= st->nasked || !st->cands[id].told)
		return GRAFT_EINVAL;
	st->cands[id].fitness = fitness;
	return 0;
}

int search_strategy_last_mutation(const search_strategy *st)
{
	return st->last_mutation;
}
