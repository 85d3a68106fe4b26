/*
 * jobrun.h - one search job in motion: its strategy, replayed from the store
 * on open, asks candidates, answers those the store already knows (the
 * cache), turns the rest into worker tasks, and commits every result and
 * failure before going on.  `graft search` and graftd both drive jobs
 * through this; neither touches the strategy or the store directly.
 */
#ifndef GRAFT_JOBRUN_H
#define GRAFT_JOBRUN_H

#include <stdint.h>
#include <stdio.h>

#include "proto/proto.h"
#include "store/store.h"

typedef struct jobrun jobrun;

/* A task for a worker: the candidate and the evaluation it runs as.  live
 * from jobrun_next until the one call that ends it (jobrun_result,
 * jobrun_failure or jobrun_abandon); ending a task that is not live is a
 * no-op, so no path can count it twice. */
typedef struct jobrun_task {
	int64_t candidate_id, eval_id;
	int seq, attempt;
	int live;
	proto_task task;   /* what the worker is sent; owned by the task */
} jobrun_task;

/* Where a job keeps its files: weights of every evaluation, graft files. */
typedef struct jobrun_dirs {
	const char *weights;   /* created if missing */
	const char *grafts;    /* NULL: search_graft_cache_dir */
	const char *datasets;  /* files fetched by URL; NULL: the graft cache
	                          directory's datasets/ */
	long long fetch_max_bytes; /* 0: FETCH_DEFAULT_MAX_BYTES */
	long fetch_timeout_s;      /* 0: FETCH_DEFAULT_TIMEOUT_S */
} jobrun_dirs;

/* Whether the job's space leaves room for any block: the stem, head and
 * graft of its smallest network must fit max_flops and max_params on the
 * job's images.  0, or GRAFT_EINVAL with a sentence naming the limit. */
int jobrun_check_space(const proto_job *j, const nn_dataset *train, char *err,
                       size_t errlen);

/* What a job is before it runs: its spec parsed, the dataset files given by
 * URL fetched, the dataset loaded, split, identified and checked (a dataset
 * every candidate would fail on is refused here: one class, images over
 * graft-arch/1's size, a constant channel), and its space checked against
 * the images.  A submission and a restart both go through this, once. */
typedef struct jobrun_input jobrun_input;

/* Why an input was refused: which part of the spec is at fault. */
enum jobrun_refusal { JOBRUN_BAD_SPEC, JOBRUN_BAD_DATASET, JOBRUN_BAD_SPACE };

/* Loads len bytes of job spec (YAML or JSON).  0, or a negative code with
 * the part at fault in *why and a sentence in err (a spec error starts
 * "line L, column C: path: "). */
int jobrun_input_load(const char *text, size_t len, const jobrun_dirs *dirs,
                      jobrun_input **out, enum jobrun_refusal *why, char *err,
                      size_t errlen);
const proto_job *jobrun_input_spec(const jobrun_input *in);
const char *jobrun_input_text(const jobrun_input *in);   /* the spec as given */
void jobrun_input_free(jobrun_input *in);

/* Opens job_id of st from in (taken, freed on failure too), or, when in is
 * NULL, from the spec the job was submitted with (after a restart): finds
 * or pretrains its graft (progress lines go to log, may be NULL), and
 * replays its recorded asks and tells into a fresh strategy, checking that
 * each replayed ask gives the candidate the store holds.  Evaluations left
 * running by a process that died are marked interrupted and their
 * candidates come first in jobrun_next.  st is borrowed for the jobrun's
 * life. */
int jobrun_open(store *st, int64_t job_id, const jobrun_dirs *dirs, jobrun_input *in,
                FILE *log, jobrun **out, char *err, size_t errlen);
void jobrun_free(jobrun *jr);

/* Moves the jobrun to another connection to the same store file (graftd
 * opens jobs on a thread with a connection of its own, then runs them on
 * the loop's). */
void jobrun_set_store(jobrun *jr, store *st);

const proto_job *jobrun_spec(const jobrun *jr);
/* Overrides the spec's threads per worker for the tasks made from now on. */
void jobrun_set_threads(jobrun *jr, int threads);

/* The next task: 1 with *t filled, 0 when nothing is to be run now (every
 * candidate is asked and the rest are in flight, or the job is complete), or
 * a negative code with err.  Candidates the cache answers are recorded and
 * told here, without a task; *hits (may be NULL) counts them. */
int jobrun_next(jobrun *jr, jobrun_task *t, int *hits, char *err, size_t errlen);

/* Records a worker's result for t and tells the strategy; ends t. */
int jobrun_result(jobrun *jr, jobrun_task *t, const proto_result *r, const char *worker,
                  char *err, size_t errlen);

/* Records that t failed (reason: a sentence).  The candidate is run again
 * later if it has attempts left (returns 1), else it is told as failed
 * (returns 0).  Ends t. */
int jobrun_failure(jobrun *jr, jobrun_task *t, const char *reason, const char *worker,
                   char *err, size_t errlen);

/* Puts t back, unrun and uncounted (the process is stopping): its evaluation
 * is marked interrupted and the candidate re-runs on the next open.  Ends t. */
void jobrun_abandon(jobrun *jr, jobrun_task *t);

/* Progress: candidates told, asked and wanted; the best accuracy so far. */
typedef struct jobrun_stats {
	int told, asked, total, in_flight, cache_hits, failed;
	double best_accuracy;     /* NAN before the first result */
	int best_seq;
} jobrun_stats;
void jobrun_get_stats(const jobrun *jr, jobrun_stats *s);

/* Whether every candidate has been told. */
int jobrun_complete(const jobrun *jr);

#endif
