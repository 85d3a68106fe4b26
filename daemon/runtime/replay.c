/*
 * replay.c - reopening a job's search from the store: its warm start, then
 * every ask, tell and update replayed in the order recorded, each candidate's
 * climb restored rung by rung, and the decisions in the order made (with a
 * lag, how far their results were fed).  After it, the jobrun stands where
 * the process that recorded it stood.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/runtime/jobrun_internal.h"

/* One tell of the strategy, or one update (a promotion's result), at its
 * place in the order the store recorded. */
struct event {
	int order, seq, update;
	double fitness;
};

static int cmp_event(const void *a, const void *b)
{
	const struct event *x = a, *y = b;
	return (x->order > y->order) - (x->order < y->order);
}

static int apply_event(rt_jobrun *jr, const struct event *ev)
{
	struct cand *k = &jr->c[ev->seq];
	k->fitness = ev->fitness;
	if (ev->update)
		return search_tell_update(jr->strat, ev->seq, ev->fitness);
	k->told = 1;
	if (isnan(ev->fitness))
		jr->failed++;
	return search_tell(jr->strat, ev->seq, ev->fitness);
}

/* A decision as the store shows it: its first evaluation's id gives its
 * place among the job's decisions. */
struct decision {
	int64_t first_eval;
	int seq, rung, fed;
};

static int cmp_decision(const void *a, const void *b)
{
	const struct decision *x = a, *y = b;
	return (x->first_eval > y->first_eval) - (x->first_eval < y->first_eval);
}

/* What the store holds of candidate k's climb (c its row): per rung its
 * score, key and weights, which rungs are over, and which evaluation is to
 * run again; its tell and updates go to ev, its decisions to d. */
static int restore_climb(rt_jobrun *jr, struct cand *k, int seq, const store_candidate *c,
                         struct event *ev, int *nev, struct decision *d, int *nd, char *err,
                         size_t errlen)
{
	int rows[SEARCH_MAX_RUNGS] = { 0 }, fails[SEARCH_MAX_RUNGS] = { 0 }, n, R = rt__nrungs(jr);
	int64_t first[SEARCH_MAX_RUNGS] = { 0 };
	int fed[SEARCH_MAX_RUNGS] = { 0 };
	store_eval *e;
	int rc = store_evals_of(jr->st, c->id, &e, &n);
	if (rc)
		return rt__fail(err, errlen, rc, "reading evaluations: %s", store_errmsg(jr->st));
	for (int i = 0; i < n; i++) {
		int r = e[i].rung;
		if (r < 0 || r >= R) {
			snprintf(err, errlen, "candidate %d has an evaluation at rung %d, but the job "
			         "has %d rung%s: the store was changed", seq, r, R, R > 1 ? "s" : "");
			free(e);
			return GRAFT_EFORMAT;
		}
		if (!rows[r]++)
			first[r] = e[i].id;
		if (!e[i].cached)
			jr->cpu_spent += e[i].cpu_s;
		if (e[i].status == STORE_EVAL_DONE) {
			k->score[r] = e[i].val_accuracy;
			k->ended[r] = 1;
			k->rung = r > k->rung ? r : k->rung;
			k->done_eval[r] = e[i].id;
			memcpy(k->key[r], e[i].key, sizeof(e[i].key));
			free(k->weights[r]);
			k->weights[r] = e[i].weights[0] ? strdup(e[i].weights) : NULL;
			jr->cache_hits += e[i].cached;
			if (r > 0 && e[i].tell_seq >= 0) {
				ev[(*nev)++] = (struct event){ e[i].tell_seq, seq, 1, e[i].val_accuracy };
				fed[r] = 1;
			}
		} else if (e[i].status == STORE_EVAL_FAILED && !e[i].interrupted) {
			fails[r]++;
		}
	}
	free(e);
	if (c->tell_seq >= 0) {
		ev[(*nev)++] = (struct event){ c->tell_seq, seq, 0, k->score[0] };
		fed[0] = 1;
	}
	for (int r = 0; r < R; r++) {
		if (r > 0 && rows[r])
			k->promoted[r - 1] = 1;
		/* Over: scored, told, or failed for good (then it stays at the rung
		 * below; a first rung is told as failed).  With a lag, a rung may be
		 * over and not yet fed to the search. */
		if (rows[r] && !k->ended[r] && (fails[r] > jr->spec.retries || (r == 0 && fed[0])))
			k->ended[r] = 1;
		if (rows[r])
			d[(*nd)++] = (struct decision){ first[r], seq, r, fed[r] };
	}
	/* At most one rung of a candidate is unfinished: the one it climbs. */
	for (int r = 0; r < R; r++)
		if (!k->ended[r] && (r == 0 || rows[r]))
			jr->pending[jr->npending++] = (struct pending){ seq, r };
	return 0;
}

/* The job's decisions in the order made, and how many were fed. */
static int restore_decisions(rt_jobrun *jr, struct decision *d, int nd)
{
	qsort(d, (size_t)nd, sizeof(*d), cmp_decision);
	int last_fed = -1;
	for (int i = 0; i < nd; i++) {
		int rc = rt__add_item(jr, d[i].seq, d[i].rung);
		if (rc)
			return rc;
		if (d[i].fed)
			last_fed = i;
	}
	/* Feeding goes in order, each with its record (but a climb failed for
	 * good, which teaches nothing): all up to the last recorded were fed. */
	jr->fed = rt__lagged(jr) ? last_fed + 1 : nd;
	return 0;
}

int rt__replay(rt_jobrun *jr, char *err, size_t errlen)
{
	store_candidate *c = NULL;
	struct event *ev = NULL;
	struct decision *d = NULL;
	int n = 0, nev = 0, nd = 0, ti = 0, rc;

	rc = store_candidates(jr->st, jr->job_id, &c, &n);
	if (rc)
		return rt__fail(err, errlen, rc, "reading candidates: %s", store_errmsg(jr->st));
	ev = calloc((size_t)n * (size_t)rt__nrungs(jr) + 1, sizeof(*ev));
	d = calloc((size_t)n * (size_t)rt__nrungs(jr) + 1, sizeof(*d));
	if (!ev || !d) {
		rc = GRAFT_ENOMEM;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		if (c[i].seq != i) {
			rc = rt__fail(err, errlen, GRAFT_EFORMAT, "%s", "the store's candidates of this "
			          "job are not numbered 0, 1, ...: the file was edited by hand?");
			goto out;
		}
		struct cand *k = rt__cand_add(jr);
		if (!k) {
			rc = GRAFT_ENOMEM;
			goto out;
		}
		k->id = c[i].id;
		k->warm = !strcmp(c[i].mutation, "warm");
		if ((rc = restore_climb(jr, k, i, &c[i], ev, &nev, d, &nd, err, errlen)))
			goto out;
	}
	if ((rc = restore_decisions(jr, d, nd)))
		goto out;
	qsort(ev, (size_t)nev, sizeof(*ev), cmp_event);
	for (int i = 0; i < nev; i++)
		if (ev[i].order != i) {
			rc = rt__fail(err, errlen, GRAFT_EFORMAT, "%s", "the store's results of this job "
			          "are not numbered 0, 1, ...: the file was edited by hand?");
			goto out;
		}
	for (int i = 0; i < n; i++) {
		nn_arch a;
		int parent;
		char sha[65];
		while (ti < nev && ti < c[i].told_before)
			if ((rc = apply_event(jr, &ev[ti++])))
				goto bad;
		int seq = search_ask(jr->strat, &a, &parent);
		if (seq < 0) {
			rc = seq;
			goto bad;
		}
		search_arch_hash(&a, sha);
		if (strcmp(sha, c[i].genome_sha256) || parent != c[i].parent_seq) {
			snprintf(err, errlen, "replaying candidate %d gave another genome than the "
			         "store holds: the job was recorded by a different graft build or "
			         "the store was changed", i);
			rc = GRAFT_EFORMAT;
			goto out;
		}
		struct cand *k = &jr->c[i];
		k->parent = parent;
		k->generation = c[i].generation;
		memcpy(k->genome_sha256, sha, sizeof(sha));
	}
	while (ti < nev)
		if ((rc = apply_event(jr, &ev[ti++])))
			goto bad;
	jr->events = nev;
	goto out;
bad:
	snprintf(err, errlen, "replaying the job's search: %s", graft_strerror(rc));
out:
	free(ev);
	free(d);
	store_candidates_free(c, n);
	return rc;
}

/* search.warm_start: the job's first candidates are the best of an earlier
 * job on the same data and graft (its leaderboard, as many as the
 * population, those inside this job's space), asked as they are, so the
 * cache answers them.  Once asked they are this job's own candidates
 * (mutation "warm"), and a reopened job takes them from there: the earlier
 * job may have moved on. */
int rt__warm_start(rt_jobrun *jr, char *err, size_t errlen)
{
	const proto_job *j = &jr->spec;
	store_candidate *own = NULL;
	store_rank *lb = NULL;
	store_job from;
	int nown = 0, nlb = 0, n = 0, rc;

	if (j->warm_start <= 0)
		return 0;
	nn_arch *a = calloc((size_t)j->population, sizeof(*a));
	if (!a)
		return rt__fail(err, errlen, GRAFT_ENOMEM, "%s", "out of memory");
	if ((rc = store_candidates(jr->st, jr->job_id, &own, &nown)))
		goto store_failed;
	for (int i = 0; i < nown && n < j->population && !strcmp(own[i].mutation, "warm"); i++)
		if ((rc = proto_arch_parse(own[i].genome, strlen(own[i].genome), &a[n++], err,
		                           errlen)))
			goto out;
	if (n == 0 && nown == 0) {
		rc = store_job_get(jr->st, j->warm_start, &from);
		if (rc == STORE_NOTFOUND) {
			snprintf(err, errlen, "search.warm_start: there is no job %d to start from",
			         j->warm_start);
			rc = GRAFT_EINVAL;
			goto out;
		}
		if (rc)
			goto store_failed;
		store_job_clear(&from);
		if (from.dataset_id != jr->dataset_id || strcmp(from.graft_sha256, jr->graft_sha)) {
			snprintf(err, errlen, "search.warm_start: job %d ran on other %s; a warm start "
			         "needs the same data and graft (its results would not apply)",
			         j->warm_start, from.dataset_id != jr->dataset_id ? "data" : "graft");
			rc = GRAFT_EINVAL;
			goto out;
		}
		if ((rc = store_leaderboard(jr->st, j->warm_start, STORE_SORT_ACCURACY, 0, &lb, &nlb)))
			goto store_failed;
		for (int i = 0; i < nlb && n < j->population; i++) {
			store_candidate c;
			if ((rc = store_candidate_get(jr->st, lb[i].candidate_id, &c)))
				goto store_failed;
			rc = proto_arch_parse(c.genome, strlen(c.genome), &a[n], err, errlen);
			free(c.genome);
			if (rc)
				goto out;
			/* Another space may leave some out; the rest still help. */
			if (search_arch_valid(&j->space, &a[n], NULL, 0) == 0)
				n++;
		}
	}
	rc = search_strategy_warm(jr->strat, a, n);
	if (rc)
		rt__fail(err, errlen, rc, "%s", "starting the search warm");
	goto out;
store_failed:
	rt__fail(err, errlen, rc < 0 ? rc : GRAFT_ESQL, "starting the search warm: %s",
	     store_errmsg(jr->st));
out:
	free(a);
	free(lb);
	store_candidates_free(own, nown);
	return rc;
}

