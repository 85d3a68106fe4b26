/*
 * queries.c - what a job's results say: the leaderboard, the accuracy/params
 * Pareto front, a candidate's lineage, and the cost per candidate over the
 * job's life with where the saving came from.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

/* Each scored candidate with the evaluation that scored it (its last done
 * one), one row per genome: its best-scoring candidate (the first of equals),
 * so a genome answered again from the cache, or trained on from its own
 * weights, is one entry, not several. */
#define SCORED \
	"WITH scored AS (SELECT c.id, c.seq, c.generation, c.genome_sha256, e.val_accuracy, " \
	"  e.cpu_s, c.params, c.flops, e.cached, e.rung, row_number() OVER " \
	"  (PARTITION BY c.genome_sha256 ORDER BY e.rung DESC, e.val_accuracy DESC, c.seq) AS k " \
	"  FROM candidates c " \
	"  JOIN evaluations e ON e.id = (SELECT max(id) FROM evaluations " \
	"  WHERE candidate_id = c.id AND status = 'done') WHERE c.job_id = ?1) " \
	"SELECT id, seq, generation, genome_sha256, val_accuracy, cpu_s, params, flops, " \
	"cached, rung FROM scored WHERE k = 1 "

static int ranks(store *s, const char *sql, int64_t job_id, int limit, store_rank **out,
                 int *n)
{
	sqlite3_stmt *st = store__prepare(s, sql);
	store_rank *v = NULL;
	int count = 0, cap = 0, rc;

	*out = NULL;
	*n = 0;
	if (!st)
		return GRAFT_ESQL;
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_int(st, 2, limit > 0 ? limit : -1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		store_rank *r = store__append((void **)&v, &count, &cap, sizeof(*v));
		if (!r) {
			free(v);
			sqlite3_finalize(st);
			return GRAFT_ENOMEM;
		}
		r->candidate_id = sqlite3_column_int64(st, 0);
		r->seq = sqlite3_column_int(st, 1);
		r->generation = sqlite3_column_int(st, 2);
		store__col(st, 3, r->genome_sha256, sizeof(r->genome_sha256));
		r->val_accuracy = sqlite3_column_double(st, 4);
		r->cpu_s = sqlite3_column_double(st, 5);
		r->params = sqlite3_column_int64(st, 6);
		r->flops = sqlite3_column_int64(st, 7);
		r->cached = sqlite3_column_int(st, 8);
		r->rung = sqlite3_column_int(st, 9);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return store__fail(s, "ranking candidates");
	}
	*out = v;
	*n = count;
	return 0;
}

int store_leaderboard(store *s, int64_t job_id, enum store_sort sort, int limit,
                      store_rank **out, int *n)
{
	static const char *const sql[] = {
		[STORE_SORT_ACCURACY] = SCORED "ORDER BY rung DESC, val_accuracy DESC, params, seq "
		                        "LIMIT ?2",
		[STORE_SORT_PARAMS] = SCORED "ORDER BY params, rung DESC, val_accuracy DESC, seq "
		                      "LIMIT ?2",
		[STORE_SORT_FLOPS] = SCORED "ORDER BY flops, rung DESC, val_accuracy DESC, seq "
		                     "LIMIT ?2",
	};
	if ((int)sort < 0 || sort > STORE_SORT_FLOPS)
		return GRAFT_EINVAL;
	return ranks(s, sql[sort], job_id, limit, out, n);
}

int store_pareto(store *s, int64_t job_id, enum store_sort by, store_rank **out, int *n)
{
	if (by != STORE_SORT_PARAMS && by != STORE_SORT_FLOPS)
		return GRAFT_EINVAL;
	int rc = store_leaderboard(s, job_id, by, 0, out, n);
	if (rc)
		return rc;
	/* By cost (then accuracy, best first): a candidate is on the front when
	 * it is more accurate than every one that costs as much or less. */
	int k = 0;
	for (int i = 0; i < *n; i++)
		if (k == 0 || (*out)[i].val_accuracy > (*out)[k - 1].val_accuracy)
			(*out)[k++] = (*out)[i];
	*n = k;
	return 0;
}

int store_lineage(store *s, int64_t job_id, int64_t candidate_id, store_ancestor **out,
                  int *n)
{
	/* Up the parents from the candidate (each parent is an earlier seq of
	 * the same job, so the walk ends), then oldest first. */
	sqlite3_stmt *st = store__prepare(s,
		"WITH RECURSIVE up(id, depth) AS (SELECT id, 0 FROM candidates WHERE id = ?2 AND "
		"  job_id = ?1 UNION ALL SELECT p.id, up.depth + 1 FROM up JOIN candidates c ON "
		"  c.id = up.id JOIN candidates p ON p.job_id = ?1 AND p.seq = c.parent_seq AND "
		"  p.seq < c.seq) "
		"SELECT c.id, c.seq, c.parent_seq, c.generation, c.mutation, e.id IS NOT NULL, "
		"  e.val_accuracy, e.rung, c.fitness, c.params, c.flops FROM up "
		"JOIN candidates c ON c.id = up.id LEFT JOIN evaluations e ON e.id = (SELECT max(id) "
		"  FROM evaluations WHERE candidate_id = c.id AND status = 'done') "
		"ORDER BY up.depth DESC");
	store_ancestor *v = NULL;
	int count = 0, cap = 0, rc;

	*out = NULL;
	*n = 0;
	if (!st)
		return GRAFT_ESQL;
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_int64(st, 2, candidate_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		store_ancestor *a = store__append((void **)&v, &count, &cap, sizeof(*v));
		if (!a) {
			free(v);
			sqlite3_finalize(st);
			return GRAFT_ENOMEM;
		}
		a->candidate_id = sqlite3_column_int64(st, 0);
		a->seq = sqlite3_column_int(st, 1);
		a->parent_seq = sqlite3_column_int(st, 2);
		a->generation = sqlite3_column_int(st, 3);
		store__col(st, 4, a->mutation, sizeof(a->mutation));
		a->scored = sqlite3_column_int(st, 5);
		a->val_accuracy = a->scored ? sqlite3_column_double(st, 6) : NAN;
		a->rung = sqlite3_column_int(st, 7);
		a->fitness = sqlite3_column_type(st, 8) == SQLITE_NULL ? NAN
		             : sqlite3_column_double(st, 8);
		a->params = sqlite3_column_int64(st, 9);
		a->flops = sqlite3_column_int64(st, 10);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return store__fail(s, "tracing a lineage");
	}
	if (!count)
		return STORE_NOTFOUND;
	*out = v;
	*n = count;
	return 0;
}

int store_cost_parts(store *s, int64_t job_id, int nparts, store_cost *out)
{
	store_job job;
	int rc, total = 0;

	if (nparts < 1)
		return GRAFT_EINVAL;
	memset(out, 0, sizeof(*out) * (size_t)nparts);
	rc = store_job_get(s, job_id, &job);
	if (rc)
		return rc;
	store_job_clear(&job);

	sqlite3_stmt *st = store__prepare(s,
		"SELECT c.seq, (SELECT coalesce(sum(cpu_s), 0) FROM evaluations "
		"  WHERE candidate_id = c.id AND cached = 0), "
		"(SELECT count(*) FROM evaluations WHERE candidate_id = c.id AND status = 'failed'), "
		"e.id IS NOT NULL, e.cached, e.inherited, e.feature_cache, e.steps, e.cpu_s, "
		"(SELECT cpu_s FROM evaluations WHERE id = e.cached_from), e.rung, "
		"(SELECT coalesce(sum(steps), 0) FROM evaluations WHERE candidate_id = c.id AND "
		"  status = 'done' AND cached = 0), "
		"(SELECT val_images FROM evaluations WHERE candidate_id = c.id AND rung = 0 AND "
		"  status = 'done' ORDER BY id LIMIT 1) "
		"FROM candidates c LEFT JOIN evaluations e ON e.id = (SELECT max(id) FROM "
		"  evaluations WHERE candidate_id = c.id AND status = 'done') "
		"WHERE c.job_id = ? AND (c.tell_seq IS NOT NULL OR EXISTS (SELECT 1 FROM evaluations "
		"  WHERE candidate_id = c.id AND rung = 0 AND status = 'done')) ORDER BY c.seq");
	if (!st)
		return GRAFT_ESQL;
	sqlite3_bind_int64(st, 1, job_id);
	/* Two passes over the rows: count them (and find the most steps any
	 * candidate trained, and its rung: a job's full budget), then fill the
	 * parts. */
	int top_steps = 0, top_rung = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		total++;
		if (sqlite3_column_int(st, 3) && !sqlite3_column_int(st, 4)) {
			int r = sqlite3_column_int(st, 10), cum = sqlite3_column_int(st, 11);
			top_rung = r > top_rung ? r : top_rung;
			top_steps = cum > top_steps ? cum : top_steps;
		}
	}
	if (rc != SQLITE_DONE) {
		sqlite3_finalize(st);
		return store__fail(s, "costing a job");
	}
	sqlite3_reset(st);
	int per = total / nparts > 0 ? total / nparts : 1;
	for (int i = 0; (rc = sqlite3_step(st)) == SQLITE_ROW; i++) {
		int p = i / per < nparts ? i / per : nparts - 1;
		store_cost *c = &out[p];
		int seq = sqlite3_column_int(st, 0), scored = sqlite3_column_int(st, 3);
		int cached = sqlite3_column_int(st, 4), steps = sqlite3_column_int(st, 7);
		double cpu = sqlite3_column_double(st, 8);

		if (c->candidates == 0)
			c->first_seq = seq;
		c->last_seq = seq;
		c->candidates++;
		c->cpu_s += sqlite3_column_double(st, 1);
		c->failed += sqlite3_column_int(st, 2);
		if (!scored)
			continue;
		c->scored++;
		if (cached) {
			c->cache_hits++;
			c->saved_cache_s += sqlite3_column_double(st, 9);
			continue;
		}
		int trained = sqlite3_column_int(st, 11);
		c->mean_steps += trained;
		/* Stopped below the top rung: the steps up to the full budget it
		 * never trained, at the CPU per step it cost. */
		if (top_rung > 0 && sqlite3_column_int(st, 10) < top_rung && trained > 0 &&
		    trained < top_steps) {
			c->stopped_early++;
			c->saved_early_s += sqlite3_column_double(st, 1) * (top_steps - trained) / trained;
		}
		c->feature_cache += sqlite3_column_int(st, 6);
		/* A promotion's evaluation takes its own weights from the rung
		 * below: that is the climb, not inheritance from a parent; and in
		 * a job with rungs (whose first rung scores on a slice) a child
		 * trains the first rung like anyone: inheritance saves no steps. */
		if (sqlite3_column_int(st, 5) > 0 && sqlite3_column_int(st, 10) == 0 &&
		    sqlite3_column_int(st, 12) == 0) {
			c->inherited++;
			if (steps > 0 && steps < job.steps)
				c->saved_inherit_s += cpu * (job.steps - steps) / steps;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return store__fail(s, "costing a job");
	for (int p = 0; p < nparts; p++) {
		store_cost *c = &out[p];
		if (c->candidates)
			c->cpu_per_candidate = c->cpu_s / c->candidates;
		if (c->scored > c->cache_hits)
			c->mean_steps /= c->scored - c->cache_hits;
	}
	return 0;
}

int store_rung_counts(store *s, int64_t job_id, int *counts, int max)
{
	sqlite3_stmt *st = store__prepare(s, "SELECT rung, count(*) FROM candidates WHERE "
	                                  "job_id = ? AND tell_seq IS NOT NULL GROUP BY rung");
	int rc, top = 0;

	if (!st)
		return GRAFT_ESQL;
	memset(counts, 0, sizeof(*counts) * (size_t)max);
	sqlite3_bind_int64(st, 1, job_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int r = sqlite3_column_int(st, 0);
		if (r >= 0 && r < max) {
			counts[r] = sqlite3_column_int(st, 1);
			top = r + 1 > top ? r + 1 : top;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? top : store__fail(s, "counting rungs");
}
