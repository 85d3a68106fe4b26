/*
 * graftd_jobs.h - what end-to-end tests of jobs share: submitting a spec,
 * waiting on the states graftd reports, and reading a job's outcome back
 * from its store to compare runs.
 */
#ifndef GRAFT_TESTS_GRAFTD_JOBS_H
#define GRAFT_TESTS_GRAFTD_JOBS_H

#include <stdint.h>

/* POSTs spec (YAML) to graftd on dir, asserting 201; the job's id. */
int64_t graftd_submit(const char *dir, const char *spec);

/* The job's state as the API reports it (a static buffer); its evaluated
 * count in *evaluated and candidates in flight in *in_flight (may be NULL). */
const char *job_state(const char *dir, int64_t id, int *evaluated);
const char *job_progress(const char *dir, int64_t id, int *evaluated, int *in_flight);
/* Waits until the job is in state want; a failed job or the timeout fails
 * the test with the job's error. */
void wait_state(const char *dir, int64_t id, const char *want, double timeout);
/* Waits until at least n candidates are evaluated. */
void wait_evaluated(const char *dir, int64_t id, int n);

/* A job's candidates as the store (dir/graft.db) holds them. */
#define OUTCOME_MAX 64
struct outcome {
	int n;
	char genome[OUTCOME_MAX][65];
	double fitness[OUTCOME_MAX];
	int done[OUTCOME_MAX], failed[OUTCOME_MAX];
	int64_t first_done[OUTCOME_MAX];
	char error[OUTCOME_MAX][200];
};
void read_outcome(const char *dir, int64_t job, struct outcome *o);
/* n candidates, each with exactly one done evaluation. */
void expect_each_once(const struct outcome *o, int n);

#endif
