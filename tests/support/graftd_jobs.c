/*
 * graftd_jobs.c - submitting, waiting on and reading back jobs in tests
 * (see graftd_jobs.h).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "store/store.h"
#include "tests/support/graftd_jobs.h"
#include "tests/support/graftd_run.h"

int64_t graftd_submit(const char *dir, const char *spec)
{
	resp r = graftd_http(dir, "POST", "/v1/jobs", "application/yaml", spec);
	cr_assert_eq(r.status, 201, "submit: %d %s", r.status, r.body);
	json_t *j = json_loads(r.body, 0, NULL);
	int64_t id = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	free(r.body);
	cr_assert_gt(id, 0);
	return id;
}

const char *job_progress(const char *dir, int64_t id, int *evaluated, int *in_flight)
{
	static char state[32];
	char path[64];
	snprintf(path, sizeof(path), "/v1/jobs/%lld", (long long)id);
	json_t *j = graftd_get_json(dir, path, 200);
	json_t *p = json_object_get(j, "progress");
	snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(j, "state")));
	if (evaluated)
		*evaluated = (int)json_integer_value(json_object_get(p, "evaluated"));
	if (in_flight)
		*in_flight = (int)json_integer_value(json_object_get(p, "in_flight"));
	json_decref(j);
	return state;
}

const char *job_state(const char *dir, int64_t id, int *evaluated)
{
	return job_progress(dir, id, evaluated, NULL);
}

void wait_state(const char *dir, int64_t id, const char *want, double timeout)
{
	double t0 = test_now();
	const char *st = "";
	while (test_now() - t0 < timeout) {
		st = job_state(dir, id, NULL);
		if (!strcmp(st, want))
			return;
		if (!strcmp(st, "failed")) {
			char path[64];
			snprintf(path, sizeof(path), "/v1/jobs/%lld", (long long)id);
			json_t *j = graftd_get_json(dir, path, 200);
			cr_assert_fail("job %lld failed: %s", (long long)id,
			               json_string_value(json_object_get(j, "error")));
		}
		test_nap(0.1);
	}
	cr_assert_fail("job %lld is %s after %.0f s, not %s", (long long)id, st, timeout, want);
}

void wait_evaluated(const char *dir, int64_t id, int n)
{
	int ev = 0;
	for (int i = 0; i < 1200 && ev < n; i++) {
		job_state(dir, id, &ev);
		if (ev < n)
			test_nap(0.05);
	}
	cr_assert_geq(ev, n, "the job never got going");
}

void read_outcome(const char *dir, int64_t job, struct outcome *o)
{
	char db[700], err[GRAFT_ERRLEN];
	store *s;
	store_candidate *c;
	snprintf(db, sizeof(db), "%.680s/graft.db", dir);
	cr_assert_eq(store_open(db, &s, err, sizeof(err)), 0, "%s", err);
	memset(o, 0, sizeof(*o));
	cr_assert_eq(store_candidates(s, job, &c, &o->n), 0);
	for (int i = 0; i < o->n && i < OUTCOME_MAX; i++) {
		store_eval *e;
		int ne;
		memcpy(o->genome[i], c[i].genome_sha256, 65);
		o->fitness[i] = c[i].fitness;
		store_evals_of(s, c[i].id, &e, &ne);
		for (int k = 0; k < ne; k++) {
			if (e[k].status == STORE_EVAL_DONE && !o->done[i]++)
				o->first_done[i] = e[k].id;
			if (e[k].status == STORE_EVAL_FAILED) {
				o->failed[i]++;
				snprintf(o->error[i], sizeof(o->error[i]), "%.199s", e[k].error);
			}
		}
		free(e);
	}
	store_candidates_free(c, o->n);
	store_close(s);
}

void expect_each_once(const struct outcome *o, int n)
{
	cr_assert_eq(o->n, n);
	for (int i = 0; i < n; i++)
		cr_assert_eq(o->done[i], 1, "candidate %d has %d done evaluations", i, o->done[i]);
}

