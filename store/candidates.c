/*
 * candidates.c - candidates (the asks of a job's strategy, with what a
 * replay needs) and their evaluations, and the cache: a done evaluation of
 * the same key, from any job, answers a candidate without training it.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

static const char *const status_names[] = { "running", "done", "failed" };

int store_candidate_add(store *s, store_candidate *c)
{
	if (!c->genome)
		return GRAFT_EINVAL;
	sqlite3_stmt *st = store__prepare(s, "INSERT INTO candidates (job_id, seq, told_before, "
	                                  "genome, genome_sha256, parent_seq, generation, mutation, "
	                                  "params, flops) VALUES (?,?,?,?,?,?,?,?,?,?)");
	if (!st)
		return GRAFT_ESQL;
	sqlite3_bind_int64(st, 1, c->job_id);
	sqlite3_bind_int(st, 2, c->seq);
	sqlite3_bind_int(st, 3, c->told_before);
	store__text(st, 4, c->genome);
	store__text(st, 5, c->genome_sha256);
	sqlite3_bind_int(st, 6, c->parent_seq);
	sqlite3_bind_int(st, 7, c->generation);
	store__text(st, 8, c->mutation);
	sqlite3_bind_int64(st, 9, c->params);
	sqlite3_bind_int64(st, 10, c->flops);
	int rc = store__done(s, st, "adding a candidate");
	if (!rc) {
		c->id = sqlite3_last_insert_rowid(s->db);
		c->tell_seq = -1;
		c->fitness = NAN;
	}
	return rc;
}

int store_candidate_tell(store *s, int64_t id, int tell_seq, double fitness)
{
	sqlite3_stmt *st = store__prepare(s, "UPDATE candidates SET tell_seq = ?, fitness = ? "
	                                  "WHERE id = ? AND tell_seq IS NULL");
	if (!st)
		return GRAFT_ESQL;
	sqlite3_bind_int(st, 1, tell_seq);
	if (isnan(fitness))
		sqlite3_bind_null(st, 2);
	else
		sqlite3_bind_double(st, 2, fitness);
	sqlite3_bind_int64(st, 3, id);
	int rc = store__done(s, st, "recording a result");
	return rc ? rc : sqlite3_changes(s->db) ? 0 : STORE_NOTFOUND;
}

int store_candidate_climb(store *s, int64_t id, int rung, double fitness)
{
	sqlite3_stmt *st = store__prepare(s, "UPDATE candidates SET rung = ?, fitness = ? "
	                                  "WHERE id = ? AND tell_seq IS NOT NULL");
	if (!st)
		return GRAFT_ESQL;
	sqlite3_bind_int(st, 1, rung);
	if (isnan(fitness))
		sqlite3_bind_null(st, 2);
	else
		sqlite3_bind_double(st, 2, fitness);
	sqlite3_bind_int64(st, 3, id);
	int rc = store__done(s, st, "recording a promotion's result");
	return rc ? rc : sqlite3_changes(s->db) ? 0 : STORE_NOTFOUND;
}

#define CANDIDATE_COLS "id, job_id, seq, told_before, genome, genome_sha256, parent_seq, " \
	"generation, mutation, params, flops, tell_seq, fitness, rung"

static int read_candidate(sqlite3_stmt *st, store_candidate *c)
{
	memset(c, 0, sizeof(*c));
	c->id = sqlite3_column_int64(st, 0);
	c->job_id = sqlite3_column_int64(st, 1);
	c->seq = sqlite3_column_int(st, 2);
	c->told_before = sqlite3_column_int(st, 3);
	c->genome = strdup((const char *)sqlite3_column_text(st, 4));
	store__col(st, 5, c->genome_sha256, sizeof(c->genome_sha256));
	c->parent_seq = sqlite3_column_int(st, 6);
	c->generation = sqlite3_column_int(st, 7);
	store__col(st, 8, c->mutation, sizeof(c->mutation));
	c->params = sqlite3_column_int64(st, 9);
	c->flops = sqlite3_column_int64(st, 10);
	c->tell_seq = sqlite3_column_type(st, 11) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 11);
	c->fitness = sqlite3_column_type(st, 12) == SQLITE_NULL ? NAN
	             : sqlite3_column_double(st, 12);
	c->rung = sqlite3_column_int(st, 13);
	return c->genome ? 0 : GRAFT_ENOMEM;
}

int store_candidates(store *s, int64_t job_id, store_candidate **out, int *n)
{
	sqlite3_stmt *st = store__prepare(s, "SELECT " CANDIDATE_COLS " FROM candidates "
	                                  "WHERE job_id = ? ORDER BY seq");
	store_candidate *v = NULL;
	int count = 0, cap = 0, rc, bad = 0;

	*out = NULL;
	*n = 0;
	if (!st)
		return GRAFT_ESQL;
	sqlite3_bind_int64(st, 1, job_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		store_candidate *c = store__append((void **)&v, &count, &cap, sizeof(*v));
		if (!c) {
			bad = GRAFT_ENOMEM;
			break;
		}
		bad = read_candidate(st, c);
		if (bad)
			break;
	}
	sqlite3_finalize(st);
	if (!bad && rc != SQLITE_DONE && rc != SQLITE_ROW)
		bad = store__fail(s, "listing candidates");
	if (bad) {
		store_candidates_free(v, count);
		return bad;
	}
	*out = v;
	*n = count;
	return 0;
}

void store_candidates_free(store_candidate *c, int n)
{
	for (int i = 0; c && i < n; i++)
		free(c[i].genome);
	free(c);
}

int store_candidate_get(store *s, int64_t id, store_candidate *c)
{
	sqlite3_stmt *st = store__prepare(s, "SELECT " CANDIDATE_COLS " FROM candidates "
	                                  "WHERE id = ?");
	if (!st)
		return GRAFT_ESQL;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st), ret;
	if (rc == SQLITE_ROW)
		ret = read_candidate(st, c);
	else
		ret = rc == SQLITE_DONE ? STORE_NOTFOUND : store__fail(s, "reading a candidate");
	sqlite3_finalize(st);
	return ret;
}

/* ---- evaluations ------------------------------------------------------------ */

void store_eval_key(store_eval *e)
{
	char text[512];
	int n = snprintf(text, sizeof(text), "graft-eval-key/1 %s %" PRId64 " %s %d %" PRIu64 " %s",
	                 e->genome_sha256, e->dataset_id, e->graft_sha256, e->steps, e->seed,
	                 e->init);
	/* A rung and a slice only when used, so the keys of single-budget
	 * evaluations stay what they were and old results keep answering. */
	if (e->rung || e->val_images)
		n += snprintf(text + n, sizeof(text) - (size_t)n, " rung %d val %d", e->rung,
		              e->val_images);
	nn_sha256_hex(text, (size_t)n, e->key);
}

int store_eval_start(store *s, store_eval *e)
{
	sqlite3_stmt *st = store__prepare(s, "INSERT INTO evaluations (candidate_id, status, "
	                                  "genome_sha256, dataset_id, graft_sha256, steps, seed, "
	                                  "init, key, worker, attempt, started, rung, val_images) "
	                                  "VALUES (?, 'running', ?,?,?,?,?,?,?,?,?,?,?,?)");
	if (!st)
		return GRAFT_ESQL;
	store_eval_key(e);
	e->status = STORE_EVAL_RUNNING;
	e->started = store__now();
	sqlite3_bind_int64(st, 1, e->candidate_id);
	store__text(st, 2, e->genome_sha256);
	sqlite3_bind_int64(st, 3, e->dataset_id);
	store__text(st, 4, e->graft_sha256);
	sqlite3_bind_int(st, 5, e->steps);
	sqlite3_bind_int64(st, 6, (int64_t)e->seed);
	store__text(st, 7, e->init);
	store__text(st, 8, e->key);
	store__text(st, 9, e->worker);
	sqlite3_bind_int(st, 10, e->attempt > 0 ? e->attempt : 1);
	sqlite3_bind_double(st, 11, e->started);
	sqlite3_bind_int(st, 12, e->rung);
	sqlite3_bind_int(st, 13, e->val_images);
	int rc = store__done(s, st, "starting an evaluation");
	if (!rc)
		e->id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

int store_eval_finish(store *s, store_eval *e)
{
	if (e->status != STORE_EVAL_DONE && e->status != STORE_EVAL_FAILED)
		return GRAFT_EINVAL;
	sqlite3_stmt *st = store__prepare(s, "UPDATE evaluations SET status = ?, val_accuracy = ?, "
	                                  "val_loss = ?, train_loss = ?, wall_s = ?, cpu_s = ?, "
	                                  "params = ?, flops = ?, cached = ?, cached_from = ?, "
	                                  "inherited = ?, feature_cache = ?, error = ?, "
	                                  "weights = ?, worker = ?, finished = ?, tell_seq = ? "
	                                  "WHERE id = ? AND status = 'running'");
	if (!st)
		return GRAFT_ESQL;
	int done = e->status == STORE_EVAL_DONE;
	e->finished = store__now();
	store__text(st, 1, status_names[e->status]);
	if (done) {
		sqlite3_bind_double(st, 2, e->val_accuracy);
		sqlite3_bind_double(st, 3, e->val_loss);
		sqlite3_bind_double(st, 4, e->train_loss);
	}
	sqlite3_bind_double(st, 5, e->wall_s);
	sqlite3_bind_double(st, 6, e->cpu_s);
	sqlite3_bind_int64(st, 7, e->params);
	sqlite3_bind_int64(st, 8, e->flops);
	sqlite3_bind_int(st, 9, e->cached);
	if (e->cached_from > 0)
		sqlite3_bind_int64(st, 10, e->cached_from);
	sqlite3_bind_int(st, 11, e->inherited);
	sqlite3_bind_int(st, 12, e->feature_cache);
	store__text(st, 13, e->error[0] ? e->error : NULL);
	store__text(st, 14, e->weights);
	store__text(st, 15, e->worker);
	sqlite3_bind_double(st, 16, e->finished);
	sqlite3_bind_int(st, 17, done && e->tell_seq >= 0 ? e->tell_seq : -1);
	sqlite3_bind_int64(st, 18, e->id);
	int rc = store__done(s, st, "finishing an evaluation");
	return rc ? rc : sqlite3_changes(s->db) ? 0 : STORE_NOTFOUND;
}

int store_eval_set_tell(store *s, int64_t eval_id, int tell_seq)
{
	sqlite3_stmt *st = store__prepare(s, "UPDATE evaluations SET tell_seq = ? WHERE id = ? "
	                                  "AND status = 'done'");
	if (!st)
		return GRAFT_ESQL;
	sqlite3_bind_int(st, 1, tell_seq);
	sqlite3_bind_int64(st, 2, eval_id);
	int rc = store__done(s, st, "recording a result's place");
	return rc ? rc : sqlite3_changes(s->db) ? 0 : STORE_NOTFOUND;
}

int store_eval_set_curve(store *s, int64_t eval_id, const char *json)
{
	sqlite3_stmt *st = store__prepare(s, "UPDATE evaluations SET curve = ? WHERE id = ?");
	if (!st)
		return GRAFT_ESQL;
	store__text(st, 1, json);
	sqlite3_bind_int64(st, 2, eval_id);
	int rc = store__done(s, st, "recording a loss curve");
	return rc ? rc : sqlite3_changes(s->db) ? 0 : STORE_NOTFOUND;
}

int store_eval_curve(store *s, int64_t eval_id, char **json)
{
	sqlite3_stmt *st = store__prepare(s, "SELECT curve FROM evaluations WHERE id = ?");
	*json = NULL;
	if (!st)
		return GRAFT_ESQL;
	sqlite3_bind_int64(st, 1, eval_id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT) {
		*json = strdup((const char *)sqlite3_column_text(st, 0));
		if (!*json) {
			sqlite3_finalize(st);
			return GRAFT_ENOMEM;
		}
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return STORE_NOTFOUND;
	return rc == SQLITE_ROW ? 0 : store__fail(s, "reading a loss curve");
}

/* Marks the running evaluations that cond (binding ?3 to id) selects
 * interrupted with the reason; returns how many. */
static int interrupt(store *s, const char *cond, int64_t id, const char *reason)
{
	char sql[300];
	snprintf(sql, sizeof(sql), "UPDATE evaluations SET status = 'failed', interrupted = 1, "
	         "error = ?1, finished = ?2 WHERE status = 'running' AND %s", cond);
	sqlite3_stmt *st = store__prepare(s, sql);
	if (!st)
		return GRAFT_ESQL;
	store__text(st, 1, reason);
	sqlite3_bind_double(st, 2, store__now());
	sqlite3_bind_int64(st, 3, id);
	int rc = store__done(s, st, "interrupting evaluations");
	return rc ? rc : sqlite3_changes(s->db);
}

int store_eval_abandon(store *s, int64_t job_id, const char *reason)
{
	return interrupt(s, "candidate_id IN (SELECT id FROM candidates WHERE job_id = ?3)", job_id,
	                 reason);
}

int store_eval_interrupt(store *s, int64_t eval_id, const char *reason)
{
	int n = interrupt(s, "id = ?3", eval_id, reason);
	return n < 0 ? n : 0;
}

#define EVAL_COLS "id, candidate_id, status, genome_sha256, dataset_id, graft_sha256, " \
	"steps, seed, init, key, val_accuracy, val_loss, train_loss, wall_s, cpu_s, params, " \
	"flops, cached, cached_from, inherited, feature_cache, worker, attempt, error, " \
	"weights, started, finished, interrupted, rung, val_images, tell_seq"

static void read_eval(sqlite3_stmt *st, store_eval *e)
{
	char status[16];

	memset(e, 0, sizeof(*e));
	e->id = sqlite3_column_int64(st, 0);
	e->candidate_id = sqlite3_column_int64(st, 1);
	store__col(st, 2, status, sizeof(status));
	e->status = !strcmp(status, "done") ? STORE_EVAL_DONE
	            : !strcmp(status, "failed") ? STORE_EVAL_FAILED : STORE_EVAL_RUNNING;
	store__col(st, 3, e->genome_sha256, sizeof(e->genome_sha256));
	e->dataset_id = sqlite3_column_int64(st, 4);
	store__col(st, 5, e->graft_sha256, sizeof(e->graft_sha256));
	e->steps = sqlite3_column_int(st, 6);
	e->seed = (uint64_t)sqlite3_column_int64(st, 7);
	store__col(st, 8, e->init, sizeof(e->init));
	store__col(st, 9, e->key, sizeof(e->key));
	e->val_accuracy = sqlite3_column_double(st, 10);
	e->val_loss = sqlite3_column_double(st, 11);
	e->train_loss = sqlite3_column_double(st, 12);
	e->wall_s = sqlite3_column_double(st, 13);
	e->cpu_s = sqlite3_column_double(st, 14);
	e->params = sqlite3_column_int64(st, 15);
	e->flops = sqlite3_column_int64(st, 16);
	e->cached = sqlite3_column_int(st, 17);
	e->cached_from = sqlite3_column_int64(st, 18);
	e->inherited = sqlite3_column_int(st, 19);
	e->feature_cache = sqlite3_column_int(st, 20);
	store__col(st, 21, e->worker, sizeof(e->worker));
	e->attempt = sqlite3_column_int(st, 22);
	store__col(st, 23, e->error, sizeof(e->error));
	store__col(st, 24, e->weights, sizeof(e->weights));
	e->started = sqlite3_column_double(st, 25);
	e->finished = sqlite3_column_double(st, 26);
	e->interrupted = sqlite3_column_int(st, 27);
	e->rung = sqlite3_column_int(st, 28);
	e->val_images = sqlite3_column_int(st, 29);
	e->tell_seq = sqlite3_column_int(st, 30);
}

/* The first row of a query with one int64 or text parameter, into *out. */
static int one_eval(store *s, const char *sql, int64_t id, const char *text, store_eval *out)
{
	sqlite3_stmt *st = store__prepare(s, sql);
	if (!st)
		return GRAFT_ESQL;
	if (text)
		store__text(st, 1, text);
	else
		sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		read_eval(st, out);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? STORE_NOTFOUND
	       : store__fail(s, "reading an evaluation");
}

int store_cache_find(store *s, store_eval *e)
{
	store_eval_key(e);
	/* The first trained evaluation of the key: the one every hit points at. */
	return one_eval(s, "SELECT " EVAL_COLS " FROM evaluations WHERE key = ? AND "
	                "status = 'done' AND cached = 0 ORDER BY id LIMIT 1", 0, e->key, e);
}

int store_cache_find_any_init(store *s, store_eval *e)
{
	sqlite3_stmt *st = store__prepare(s, "SELECT " EVAL_COLS " FROM evaluations WHERE "
	                                  "genome_sha256 = ? AND dataset_id = ? AND graft_sha256 = ? "
	                                  "AND steps = ? AND seed = ? AND rung = ? AND "
	                                  "val_images = ? AND status = 'done' AND cached = 0 "
	                                  "ORDER BY id LIMIT 1");
	if (!st)
		return GRAFT_ESQL;
	store__text(st, 1, e->genome_sha256);
	sqlite3_bind_int64(st, 2, e->dataset_id);
	store__text(st, 3, e->graft_sha256);
	sqlite3_bind_int(st, 4, e->steps);
	sqlite3_bind_int64(st, 5, (int64_t)e->seed);
	sqlite3_bind_int(st, 6, e->rung);
	sqlite3_bind_int(st, 7, e->val_images);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		read_eval(st, e);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? STORE_NOTFOUND
	       : store__fail(s, "reading an evaluation");
}

int store_eval_of(store *s, int64_t candidate_id, store_eval *out)
{
	return one_eval(s, "SELECT " EVAL_COLS " FROM evaluations WHERE candidate_id = ? AND "
	                "status = 'done' ORDER BY id DESC LIMIT 1", candidate_id, NULL, out);
}

int store_evals_of(store *s, int64_t candidate_id, store_eval **out, int *n)
{
	sqlite3_stmt *st = store__prepare(s, "SELECT " EVAL_COLS " FROM evaluations "
	                                  "WHERE candidate_id = ? ORDER BY id");
	store_eval *v = NULL;
	int count = 0, cap = 0, rc;

	*out = NULL;
	*n = 0;
	if (!st)
		return GRAFT_ESQL;
	sqlite3_bind_int64(st, 1, candidate_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		store_eval *e = store__append((void **)&v, &count, &cap, sizeof(*v));
		if (!e) {
			free(v);
			sqlite3_finalize(st);
			return GRAFT_ENOMEM;
		}
		read_eval(st, e);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return store__fail(s, "listing evaluations");
	}
	*out = v;
	*n = count;
	return 0;
}

int store_eval_failures(store *s, int64_t candidate_id, int rung)
{
	sqlite3_stmt *st = store__prepare(s, "SELECT count(*) FROM evaluations WHERE "
	                                  "candidate_id = ? AND rung = ? AND status = 'failed' "
	                                  "AND interrupted = 0");
	if (!st)
		return GRAFT_ESQL;
	sqlite3_bind_int64(st, 1, candidate_id);
	sqlite3_bind_int(st, 2, rung);
	int rc = sqlite3_step(st);
	int n = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : store__fail(s, "counting failures");
	sqlite3_finalize(st);
	return n;
}
