/*
 * fidelity.c - multi-fidelity search: the promotion rule of asynchronous
 * successive halving (ASHA, Li et al. 2020).
 *
 * Candidates climb rungs of growing training budget.  A rung is never
 * waited for: whenever a worker is free, the best candidate of a rung that
 * is in the top 1/eta of everything that rung has scored so far, and not yet
 * promoted, goes up one rung.  Early in a job few candidates qualify and
 * promotions are rare; as a rung fills, its top third (eta 3) goes on.  The
 * rule looks only at the set of results and of promotions, never at their
 * order, so a job that resumes from the store decides as it would have.
 */
#include <math.h>
#include <stdlib.h>

#include "search/search.h"

struct ranked {
	double score;
	int index;
};

/* Best first; failed (NAN) last; equal scores by index, so the rule is a
 * function of the results alone. */
static int by_score(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;
	int xn = isnan(x->score), yn = isnan(y->score);

	if (xn != yn)
		return xn - yn;
	if (!xn && x->score != y->score)
		return x->score < y->score ? 1 : -1;
	return (x->index > y->index) - (x->index < y->index);
}

int search_asha_pick(const double *score, const unsigned char *promoted, int n, int eta)
{
	if (eta < 2 || (n > 0 && (!score || !promoted)))
		return GRAFT_EINVAL;
	if (n < 1)
		return -1;
	int top = n / eta, pick = -1;
	if (top == 0)
		return -1;
	struct ranked *r = malloc(sizeof(*r) * (size_t)n);
	if (!r)
		return GRAFT_ENOMEM;
	for (int i = 0; i < n; i++)
		r[i] = (struct ranked){ score[i], i };
	qsort(r, (size_t)n, sizeof(*r), by_score);
	for (int i = 0; i < top && pick < 0; i++)
		if (!isnan(r[i].score) && !promoted[r[i].index])
			pick = r[i].index;
	free(r);
	return pick;
}
