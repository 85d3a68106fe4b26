/*
 * test_store.c - the SQLite store: a schema made from an empty file, files it
 * must refuse, round trips of every record, the cache, and the queries
 * (leaderboard, Pareto front, cost by quarter).
 */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "store/store.h"
#include "tests/support/scratch.h"

static void setup(void)
{
	scratch_make("store");
}

TestSuite(store, .init = setup, .fini = scratch_remove, .timeout = 60);

static store *open_new(const char *name)
{
	char err[GRAFT_ERRLEN];
	store *s;
	int rc = store_open(scratch_path(name), &s, err, sizeof(err));
	cr_assert_eq(rc, 0, "store_open: %s", err);
	return s;
}

static int64_t add_job(store *s, int total, int steps)
{
	store_job j = { .spec = "name: x\n", .total = total, .steps = steps,
	                .state = STORE_JOB_QUEUED };
	snprintf(j.name, sizeof(j.name), "x");
	nn_sha256_hex(j.spec, strlen(j.spec), j.spec_sha256);
	cr_assert_eq(store_job_add(s, &j), 0, "%s", store_errmsg(s));
	return j.id;
}

static int64_t add_cand_cost(store *s, int64_t job, int seq, const char *genome_tag,
                             int64_t params, int64_t flops)
{
	store_candidate c = { .job_id = job, .seq = seq, .told_before = seq,
	                      .genome = "format: graft-arch/1\n", .parent_seq = -1,
	                      .params = params, .flops = flops };
	nn_sha256_hex(genome_tag, strlen(genome_tag), c.genome_sha256);
	cr_assert_eq(store_candidate_add(s, &c), 0, "%s", store_errmsg(s));
	return c.id;
}

static int64_t add_cand(store *s, int64_t job, int seq, const char *genome_tag, int64_t params)
{
	return add_cand_cost(s, job, seq, genome_tag, params, params * 10);
}

/* A done evaluation of candidate cid with the given metrics. */
static int64_t add_done(store *s, int64_t cid, int64_t ds, const char *genome_tag, int steps,
                        double acc, double cpu, int inherited)
{
	store_eval e = { .candidate_id = cid, .dataset_id = ds, .steps = steps, .seed = 1 };
	nn_sha256_hex(genome_tag, strlen(genome_tag), e.genome_sha256);
	if (inherited)
		snprintf(e.init, sizeof(e.init), "parent");
	cr_assert_eq(store_eval_start(s, &e), 0, "%s", store_errmsg(s));
	e.status = STORE_EVAL_DONE;
	e.val_accuracy = acc;
	e.cpu_s = cpu;
	e.inherited = inherited;
	e.params = 100;
	cr_assert_eq(store_eval_finish(s, &e), 0, "%s", store_errmsg(s));
	return e.id;
}

Test(store, empty_file_gets_the_schema)
{
	store *s = open_new("a.db");
	cr_assert_eq(store_schema_version(s), STORE_SCHEMA_VERSION);
	store_close(s);
	/* Reopening an up-to-date file changes nothing. */
	s = open_new("a.db");
	cr_assert_eq(store_schema_version(s), STORE_SCHEMA_VERSION);
	store_close(s);

	sqlite3 *db;
	cr_assert_eq(sqlite3_open(scratch_path("a.db"), &db), SQLITE_OK);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	const char *tables[] = { "jobs", "candidates", "evaluations", "grafts", "datasets" };
	for (int i = 0; i < 5; i++) {
		char sql[128];
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", tables[i]);
		cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "no table %s",
		             tables[i]);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
}

Test(store, refuses_a_newer_schema_and_other_files)
{
	char err[GRAFT_ERRLEN];
	store *s = open_new("new.db");
	store_close(s);
	sqlite3 *db;
	cr_assert_eq(sqlite3_open(scratch_path("new.db"), &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	cr_assert_eq(store_open(scratch_path("new.db"), &s, err, sizeof(err)), GRAFT_EFORMAT);
	cr_assert_null(s);
	cr_assert(strstr(err, "schema version 99"), "%s", err);

	FILE *f = fopen(scratch_path("junk.db"), "w");
	fputs("this is not a database, it is a text file that is long enough to matter\n", f);
	fclose(f);
	cr_assert_lt(store_open(scratch_path("junk.db"), &s, err, sizeof(err)), 0);
	cr_assert(strstr(err, "junk.db"), "%s", err);
}

Test(store, job_round_trip_and_states)
{
	store *s = open_new("j.db");
	int64_t id = add_job(s, 200, 300);
	store_job j;
	cr_assert_eq(store_job_get(s, id, &j), 0);
	cr_assert_str_eq(j.spec, "name: x\n");
	cr_assert_eq(j.total, 200);
	cr_assert_eq(j.steps, 300);
	cr_assert_eq(j.state, STORE_JOB_QUEUED);
	store_job_clear(&j);
	cr_assert_eq(store_job_set_state(s, id, STORE_JOB_FAILED, "the dataset vanished"), 0);
	cr_assert_eq(store_job_get(s, id, &j), 0);
	cr_assert_eq(j.state, STORE_JOB_FAILED);
	cr_assert_str_eq(j.error, "the dataset vanished");
	store_job_clear(&j);
	cr_assert_eq(store_job_set_state(s, id + 7, STORE_JOB_DONE, NULL), STORE_NOTFOUND);
	cr_assert_eq(store_job_get(s, id + 7, &j), STORE_NOTFOUND);
	int64_t found;
	char sha[65];
	nn_sha256_hex("name: x\n", 8, sha);
	cr_assert_eq(store_job_find_spec(s, sha, &found), 0);
	cr_assert_eq(found, id);
	cr_assert_eq(store_job_find_spec(s, "00", &found), STORE_NOTFOUND);
	cr_assert_str_eq(store_job_state_name(STORE_JOB_PAUSED), "paused");
	cr_assert_eq(store_job_state_parse("cancelled"), STORE_JOB_CANCELLED);
	cr_assert_eq(store_job_state_parse("bogus"), -1);
	store_close(s);
}

Test(store, candidates_and_tells_survive_reopening)
{
	store *s = open_new("c.db");
	int64_t job = add_job(s, 3, 100);
	int64_t c0 = add_cand(s, job, 0, "g0", 10);
	add_cand(s, job, 1, "g1", 20);
	cr_assert_eq(store_candidate_tell(s, c0, 0, 0.5), 0);
	cr_assert_eq(store_candidate_tell(s, c0, 1, 0.6), STORE_NOTFOUND, "told twice");
	/* (job, seq) is unique: a candidate cannot be recorded twice. */
	store_candidate dup = { .job_id = job, .seq = 1, .genome = "x", .parent_seq = -1 };
	cr_assert_eq(store_candidate_add(s, &dup), GRAFT_ESQL);
	store_close(s);

	s = open_new("c.db");
	store_candidate *c;
	int n;
	cr_assert_eq(store_candidates(s, job, &c, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(c[0].tell_seq, 0);
	cr_assert_float_eq(c[0].fitness, 0.5, 1e-12);
	cr_assert_eq(c[1].tell_seq, -1);
	cr_assert(isnan(c[1].fitness));
	cr_assert_eq(c[1].params, 20);
	store_candidates_free(c, n);
	store_close(s);
}

static const store_dataset *dset(const char *location, const char *sha, int64_t images)
{
	static store_dataset d;
	memset(&d, 0, sizeof(d));
	snprintf(d.location, sizeof(d.location), "%s", location);
	snprintf(d.sha256, sizeof(d.sha256), "%s", sha);
	snprintf(d.format, sizeof(d.format), "idx");
	d.images = images;
	return &d;
}

Test(store, a_dataset_keeps_its_class_names)
{
	store *s = open_new("d.db");
	store_dataset d = { .location = "/photos", .sha256 = "f0", .format = "folder",
	                    .images = 12, .classes = "[\"cat\",\"dog\"]", .skipped = 2 }, got;
	int64_t id, plain;
	cr_assert_eq(store_dataset_put(s, &d, &id), 0);
	cr_assert_eq(store_dataset_put(s, dset("/idx", "i0", 5), &plain), 0);
	cr_assert_eq(store_dataset_get(s, id, &got), 0);
	cr_assert_str_eq(got.classes, "[\"cat\",\"dog\"]");
	cr_assert_str_eq(got.format, "folder");
	cr_assert_eq(got.skipped, 2);
	cr_assert_eq(got.images, 12);
	free(got.classes);
	cr_assert_eq(store_dataset_get(s, plain, &got), 0);
	cr_assert_null(got.classes);
	cr_assert_eq(store_dataset_get(s, 999, &got), STORE_NOTFOUND);
	store_close(s);
}

Test(store, the_cache_answers_the_same_key_from_any_job)
{
	store *s = open_new("k.db");
	int64_t ds;
	cr_assert_eq(store_dataset_put(s, dset("/data", "abc", 100), &ds), 0);
	int64_t again;
	cr_assert_eq(store_dataset_put(s, dset("/elsewhere", "abc", 100), &again), 0);
	cr_assert_eq(again, ds, "a dataset is its content");
	int64_t job1 = add_job(s, 2, 100), job2 = add_job(s, 2, 100);
	int64_t c1 = add_cand(s, job1, 0, "g", 10);
	int64_t first = add_done(s, c1, ds, "g", 100, 0.7, 3.0, 0);

	store_eval q = { .dataset_id = ds, .steps = 100, .seed = 1 };
	nn_sha256_hex("g", 1, q.genome_sha256);
	cr_assert_eq(store_cache_find(s, &q), 0);
	cr_assert_eq(q.id, first);
	cr_assert_float_eq(q.val_accuracy, 0.7, 1e-12);

	/* Every part of the key matters. */
	store_eval miss = q;
	miss.steps = 50;
	cr_assert_eq(store_cache_find(s, &miss), STORE_NOTFOUND);
	miss = q;
	miss.seed = 2;
	cr_assert_eq(store_cache_find(s, &miss), STORE_NOTFOUND);
	miss = q;
	snprintf(miss.init, sizeof(miss.init), "another parent");
	cr_assert_eq(store_cache_find(s, &miss), STORE_NOTFOUND);
	miss = q;
	snprintf(miss.graft_sha256, sizeof(miss.graft_sha256), "ff");
	cr_assert_eq(store_cache_find(s, &miss), STORE_NOTFOUND);

	/* A running or failed evaluation answers nothing. */
	int64_t c2 = add_cand(s, job2, 0, "h", 10);
	store_eval r = { .candidate_id = c2, .dataset_id = ds, .steps = 100, .seed = 1 };
	nn_sha256_hex("h", 1, r.genome_sha256);
	cr_assert_eq(store_eval_start(s, &r), 0);
	store_eval probe = r;
	cr_assert_eq(store_cache_find(s, &probe), STORE_NOTFOUND);
	/* The reason's wording does not matter: the column says interrupted. */
	cr_assert_eq(store_eval_abandon(s, job2, "graftd stopped"), 1);
	cr_assert_eq(store_eval_failures(s, c2, 0), 0, "an interruption is not the candidate's fault");
	store_eval crash = r;
	cr_assert_eq(store_eval_start(s, &crash), 0);
	crash.status = STORE_EVAL_FAILED;
	snprintf(crash.error, sizeof(crash.error), "the worker died of signal 9");
	cr_assert_eq(store_eval_finish(s, &crash), 0);
	cr_assert_eq(store_eval_failures(s, c2, 0), 1);
	cr_assert_eq(store_cache_find(s, &probe), STORE_NOTFOUND);
	store_eval *ev;
	int n;
	cr_assert_eq(store_evals_of(s, c2, &ev, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(ev[0].status, STORE_EVAL_FAILED);
	cr_assert_str_eq(ev[0].error, "graftd stopped");
	cr_assert_eq(ev[0].interrupted, 1);
	cr_assert_eq(ev[1].interrupted, 0);
	free(ev);
	store_eval third = r;
	cr_assert_eq(store_eval_start(s, &third), 0);
	cr_assert_eq(store_eval_interrupt(s, third.id, "stopping"), 0);
	cr_assert_eq(store_eval_failures(s, c2, 0), 1, "one interruption more is no failure more");
	store_close(s);
}

Test(store, leaderboard_pareto_and_sorting)
{
	store *s = open_new("l.db");
	int64_t ds;
	store_dataset_put(s, dset("/d", "d", 1), &ds);
	int64_t job = add_job(s, 5, 100);
	/* seq: genome, params, accuracy.  Candidate 3 repeats genome a and
	 * scores better: one row for a, with the better score. */
	struct { const char *g; int64_t params, flops; double acc; } rows[] = {
		{ "a", 500, 2000, 0.80 }, { "b", 100, 9000, 0.70 }, { "c", 300, 1000, 0.60 },
		{ "a", 500, 2000, 0.85 }, { "d", 900, 500, 0.82 },
	};
	for (int i = 0; i < 5; i++) {
		int64_t c = add_cand_cost(s, job, i, rows[i].g, rows[i].params, rows[i].flops);
		add_done(s, c, ds, rows[i].g, 100, rows[i].acc, 1.0, 0);
		store_candidate_tell(s, c, i, rows[i].acc);
	}
	store_rank *r;
	int n;
	cr_assert_eq(store_leaderboard(s, job, STORE_SORT_ACCURACY, 0, &r, &n), 0);
	cr_assert_eq(n, 4);
	cr_assert_eq(r[0].seq, 3);
	cr_assert_eq(r[1].seq, 4);
	cr_assert_eq(r[2].seq, 1);
	cr_assert_eq(r[3].seq, 2);
	free(r);
	cr_assert_eq(store_leaderboard(s, job, STORE_SORT_ACCURACY, 2, &r, &n), 0);
	cr_assert_eq(n, 2);
	free(r);
	cr_assert_eq(store_leaderboard(s, job, STORE_SORT_PARAMS, 0, &r, &n), 0);
	cr_assert_eq(r[0].seq, 1);
	cr_assert_eq(r[1].seq, 2);
	free(r);
	/* The front: b (100, 0.70) and a (500, 0.85); c is dominated by b, d by a. */
	cr_assert_eq(store_pareto(s, job, STORE_SORT_PARAMS, &r, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(r[0].seq, 1);
	cr_assert_eq(r[1].seq, 3);
	free(r);
	/* By FLOPs: d (500, 0.82) and a (2000, 0.85); c is dominated by d, b by
	 * both. */
	cr_assert_eq(store_pareto(s, job, STORE_SORT_FLOPS, &r, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(r[0].seq, 4);
	cr_assert_eq(r[1].seq, 3);
	free(r);
	cr_assert_eq(store_pareto(s, job, STORE_SORT_ACCURACY, &r, &n), GRAFT_EINVAL);
	store_close(s);
}

Test(store, cost_by_quarter_splits_the_savings)
{
	store *s = open_new("q.db");
	int64_t ds;
	store_dataset_put(s, dset("/d", "d", 1), &ds);
	int64_t job = add_job(s, 8, 100);
	/* Quarter 1: two fresh trainings of 4 CPU-s.  Quarter 2: a failed
	 * attempt (1 CPU-s) then a fresh one.  Quarter 3: two inherited children
	 * at 50 steps, 2 CPU-s each.  Quarter 4: two cache hits of candidate 0. */
	int64_t c[8];
	for (int i = 0; i < 8; i++)
		c[i] = add_cand(s, job, i, i < 6 ? (char[]){ (char)('a' + i), 0 } : "a", 10);
	int64_t e0 = add_done(s, c[0], ds, "a", 100, 0.5, 4.0, 0);
	add_done(s, c[1], ds, "b", 100, 0.5, 4.0, 0);
	add_done(s, c[2], ds, "c", 100, 0.5, 4.0, 0);
	store_eval f = { .candidate_id = c[3], .dataset_id = ds, .steps = 100 };
	store_eval_start(s, &f);
	f.status = STORE_EVAL_FAILED;
	f.cpu_s = 1.0;
	snprintf(f.error, sizeof(f.error), "crashed");
	store_eval_finish(s, &f);
	add_done(s, c[3], ds, "d", 100, 0.5, 4.0, 0);
	add_done(s, c[4], ds, "e", 50, 0.5, 2.0, 1);
	add_done(s, c[5], ds, "f", 50, 0.5, 2.0, 1);
	for (int i = 6; i < 8; i++) {
		store_eval h = { .candidate_id = c[i], .dataset_id = ds, .steps = 100 };
		store_eval_start(s, &h);
		h.status = STORE_EVAL_DONE;
		h.cached = 1;
		h.cached_from = e0;
		store_eval_finish(s, &h);
	}
	for (int i = 0; i < 8; i++)
		store_candidate_tell(s, c[i], i, 0.5);

	store_cost q[4];
	cr_assert_eq(store_cost_parts(s, job, 4, q), 0);
	cr_assert_eq(q[0].candidates, 2);
	cr_assert_float_eq(q[0].cpu_per_candidate, 4.0, 1e-9);
	cr_assert_eq(q[1].failed, 1);
	cr_assert_float_eq(q[1].cpu_s, 9.0, 1e-9);
	cr_assert_eq(q[2].inherited, 2);
	cr_assert_float_eq(q[2].mean_steps, 50.0, 1e-9);
	cr_assert_float_eq(q[2].saved_inherit_s, 4.0, 1e-9, "2 x 2 CPU-s x (100-50)/50");
	cr_assert_eq(q[3].cache_hits, 2);
	cr_assert_float_eq(q[3].cpu_s, 0.0, 1e-12);
	cr_assert_float_eq(q[3].saved_cache_s, 8.0, 1e-9);
	cr_assert_eq(q[3].first_seq, 6);
	cr_assert_eq(q[3].last_seq, 7);
	store_close(s);
}

/* A rung above the first: a done evaluation of cid at rung, steps more. */
static void add_rung(store *s, int64_t cid, int64_t ds, const char *genome_tag, int rung,
                     int steps, double acc, double cpu)
{
	store_eval e = { .candidate_id = cid, .dataset_id = ds, .steps = steps, .seed = 1,
	                 .rung = rung };
	nn_sha256_hex(genome_tag, strlen(genome_tag), e.genome_sha256);
	cr_assert_eq(store_eval_start(s, &e), 0, "%s", store_errmsg(s));
	e.status = STORE_EVAL_DONE;
	e.val_accuracy = acc;
	e.cpu_s = cpu;
	cr_assert_eq(store_eval_finish(s, &e), 0, "%s", store_errmsg(s));
	cr_assert_eq(store_candidate_climb(s, cid, rung, acc), 0);
}

Test(store, early_stopping_savings_count_the_steps_never_trained)
{
	store *s = open_new("early.db");
	int64_t ds;
	store_dataset_put(s, dset("/d", "d", 1), &ds);
	int64_t job = add_job(s, 3, 300);
	/* Rungs 100 and 300 steps: a reaches the top (100 + 200 steps), b and c
	 * stop at the first rung after 100 steps of 2 CPU-s each. */
	int64_t a = add_cand(s, job, 0, "a", 10), b = add_cand(s, job, 1, "b", 10),
	        c = add_cand(s, job, 2, "c", 10);
	add_done(s, a, ds, "a", 100, 0.6, 2.0, 0);
	add_done(s, b, ds, "b", 100, 0.5, 2.0, 0);
	add_done(s, c, ds, "c", 100, 0.4, 2.0, 0);
	for (int i = 0; i < 3; i++)
		store_candidate_tell(s, (int64_t[]){ a, b, c }[i], i, 0.5);
	add_rung(s, a, ds, "a", 1, 200, 0.7, 4.0);
	store_cost q;
	cr_assert_eq(store_cost_parts(s, job, 1, &q), 0);
	cr_assert_eq(q.stopped_early, 2);
	cr_assert_float_eq(q.saved_early_s, 8.0, 1e-9, "2 x 2 CPU-s x (300-100)/100");

	/* A job without rungs stops nobody early. */
	int64_t flat = add_job(s, 1, 100);
	add_done(s, add_cand(s, flat, 0, "z", 10), ds, "z", 100, 0.5, 2.0, 0);
	cr_assert_eq(store_cost_parts(s, flat, 1, &q), 0);
	cr_assert_eq(q.stopped_early, 0);
	cr_assert_float_eq(q.saved_early_s, 0.0, 1e-12);
	store_close(s);
}

Test(store, a_loss_curve_is_kept_with_its_evaluation)
{
	store *s = open_new("curve.db");
	int64_t ds;
	store_dataset_put(s, dset("/d", "d", 1), &ds);
	int64_t job = add_job(s, 1, 100);
	int64_t e = add_done(s, add_cand(s, job, 0, "a", 10), ds, "a", 100, 0.5, 1.0, 0);
	char *json;
	cr_assert_eq(store_eval_curve(s, e, &json), 0);
	cr_assert_null(json, "no curve until one is recorded");
	cr_assert_eq(store_eval_set_curve(s, e, "[[50,1.25],[100,0.5]]"), 0);
	store_close(s);
	s = open_new("curve.db");
	cr_assert_eq(store_eval_curve(s, e, &json), 0);
	cr_assert_str_eq(json, "[[50,1.25],[100,0.5]]");
	free(json);
	cr_assert_eq(store_eval_set_curve(s, e + 99, "[]"), STORE_NOTFOUND);
	cr_assert_eq(store_eval_curve(s, e + 99, &json), STORE_NOTFOUND);
	store_close(s);
}

Test(store, a_lineage_runs_from_the_random_sample_to_the_candidate)
{
	store *s = open_new("lineage.db");
	int64_t job = add_job(s, 4, 100), other = add_job(s, 1, 100);
	/* seq 0 random; 1 random; 2 = mutate(0); 3 = mutate(2).  The other job's
	 * seq 0 must not be taken for a parent. */
	store_candidate c[4];
	const char *mut[] = { "", "", "widen", "deepen" };
	int parent[] = { -1, -1, 0, 2 };
	for (int i = 0; i < 4; i++) {
		c[i] = (store_candidate){ .job_id = job, .seq = i, .told_before = i,
		                          .genome = "format: graft-arch/1\n", .parent_seq = parent[i],
		                          .generation = i < 2 ? 0 : i - 1, .params = 10 + i };
		snprintf(c[i].mutation, sizeof(c[i].mutation), "%s", mut[i]);
		nn_sha256_hex(mut[i], strlen(mut[i]) + (size_t)i, c[i].genome_sha256);
		cr_assert_eq(store_candidate_add(s, &c[i]), 0, "%s", store_errmsg(s));
		store_candidate_tell(s, c[i].id, i, 0.5 + 0.1 * i);
	}
	add_cand(s, other, 0, "o", 1);
	store_ancestor *v;
	int n;
	cr_assert_eq(store_lineage(s, job, c[3].id, &v, &n), 0, "%s", store_errmsg(s));
	cr_assert_eq(n, 3);
	cr_assert_eq(v[0].seq, 0);
	cr_assert_eq(v[1].seq, 2);
	cr_assert_str_eq(v[1].mutation, "widen");
	cr_assert_eq(v[2].candidate_id, c[3].id);
	cr_assert_str_eq(v[2].mutation, "deepen");
	cr_assert_float_eq(v[2].fitness, 0.8, 1e-9);
	cr_assert_eq(v[2].scored, 0, "no evaluation: not scored");
	free(v);
	cr_assert_eq(store_lineage(s, job, c[1].id, &v, &n), 0);
	cr_assert_eq(n, 1, "a random sample is its own lineage");
	free(v);
	cr_assert_eq(store_lineage(s, other, c[3].id, &v, &n), STORE_NOTFOUND,
	             "a candidate of another job");
	store_close(s);
}

Test(store, grafts_are_recorded_once)
{
	store *s = open_new("g.db");
	store_graft g = { .layers = 2, .channels = 16, .steps = 1500 };
	snprintf(g.sha256, sizeof(g.sha256), "%064d", 7);
	snprintf(g.path, sizeof(g.path), "/cache/g.safetensors");
	snprintf(g.source, sizeof(g.source), "target");
	int64_t a, b;
	cr_assert_eq(store_graft_put(s, &g, &a), 0);
	cr_assert_eq(store_graft_put(s, &g, &b), 0);
	cr_assert_eq(a, b);
	store_graft *list;
	int n;
	cr_assert_eq(store_graft_list(s, &list, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(list[0].source, "target");
	cr_assert_eq(list[0].channels, 16);
	free(list);
	store_close(s);
}
