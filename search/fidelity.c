/*
 * fidelity.c - multi-fidelity search: the promotion rule of asynchronous
 * successive halving (ASHA, Li et al. 2020), with a cap.
 *
 * Candidates climb rungs of growing training budget.  A rung is never
 * waited for: whenever a worker is free, the best candidate of a rung that
 * is in the top 1/eta of everything that rung has scored so far, and not yet
 * promoted, goes up one rung — as long as fewer than 1/eta of the rung have
 * gone up.  ASHA as published has no such cap, and a promotion is never
 * taken back when the rung's top moves on; in a search whose candidates keep
 * getting better (evolution's do), nearly every newcomer is in the top third
 * of what came before, and the first 4-CPU-hour run sent 60 of 127
 * candidates to the top rung, its cost per candidate rising from 32 to 76
 * CPU-s over the job.  With the cap a rung sends up 1/eta of what it scored,
 * as successive halving means to.  The rule looks only at the set of
 * results and of promotions, never at their order, so a job that resumes
 * from the store decides as it would have.
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
	int top = n / eta, pick = -1, sent = 0;
	for (int i = 0; i < n; i++)
		sent += promoted[i] != 0;
	if (sent >= top)
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
