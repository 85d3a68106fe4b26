/*
 * sched.h - graftd's scheduler: the jobs it knows, their states, and one
 * pool of workers shared fairly among the running ones.  Every state change
 * is committed to the store before the call that asked for it returns (or
 * its callback fires), so the API acknowledges only what is durable.
 *
 * Opening a job (loading its data, pretraining or finding its graft,
 * replaying its search) can take minutes; it runs on libuv's thread pool
 * with its own connection to the store, and the loop keeps serving.
 */
#ifndef GRAFT_SCHED_H
#define GRAFT_SCHED_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "store/store.h"

typedef struct sched sched;

typedef struct sched_opts {
	const char *db_path;       /* the store's file (threads open their own) */
	const char *data_dir;      /* weights/ and grafts/ live here */
	int workers;
	char **worker_argv;        /* the worker command, NULL-terminated */
	double heartbeat_s;
	long memory_mb;
	long long fetch_max_bytes;   /* datasets by URL: size and time limits */
	long fetch_timeout_s;
} sched_opts;

sched *sched_new(uv_loop_t *loop, store *st, const sched_opts *o);

/* Opens every queued or running job of the store (after a restart they go
 * on where they stopped).  Paused jobs stay paused. */
void sched_resume_all(sched *s);

/* An API-level outcome: HTTP status, and for errors a code, message and,
 * for spec errors, the field, line and column. */
typedef struct sched_answer {
	int status;
	int64_t id;
	char code[32], message[600], field[128];
	int line, column;
} sched_answer;

/* Validates a job spec (YAML or JSON) and its dataset (the files must exist
 * and parse, on the thread pool), then records the job as queued and starts
 * opening it.  done is called on the loop with the answer (201 and the id,
 * or 4xx). */
void sched_submit(sched *s, const char *text, size_t len,
                  void (*done)(const sched_answer *a, void *ctx), void *ctx);

/* "pause", "resume" or "cancel" job id: 200, 404 (no such job) or 409 (not
 * possible in its state). */
void sched_control(sched *s, int64_t id, const char *action, sched_answer *a);

/* The job as the API shows it (state, progress, best, cost, ETA), or NULL
 * when there is no such job.  Answered from memory: the figures are
 * rebuilt when the job changes, not per request. */
json_t *sched_job_json(sched *s, int64_t id);
/* Every job, oldest first. */
json_t *sched_jobs_json(sched *s);
/* How many jobs are in each state. */
void sched_job_counts(sched *s, int counts[STORE_JOB_NSTATES]);
/* Workers busy and idle, jobs queued. */
json_t *sched_health_json(sched *s);

typedef struct sched_metrics {
	long evaluated, cache_hits, failures, worker_restarts;
	double images_per_s;       /* of the last result */
	int workers_busy, workers;
} sched_metrics;
void sched_get_metrics(sched *s, sched_metrics *m);

/* Drains: no new tasks; running candidates get grace_s to finish, then are
 * killed and recorded as interrupted (they re-run after a restart).  Job
 * states stay as they are in the store.  done fires once every worker has
 * exited and nothing more will be written. */
void sched_stop(sched *s, double grace_s, void (*done)(void *ctx), void *ctx);
/* Frees s after sched_stop's done; a no-op while a job is still being
 * opened on the thread pool (the process is exiting then anyway). */
void sched_free(sched *s);

#endif
