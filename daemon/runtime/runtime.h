/*
 * runtime.h - the job runtime both programs share, the one public header of
 * daemon/runtime/: datasets as jobs name them, files fetched by URL, one
 * job in motion (the jobrun), the one driver of a pool of worker processes,
 * and the worker process itself.  `graft search` and graftd run jobs only
 * through this.
 *
 * Names: rt_ for everything here; the pool of worker processes behind the
 * driver is internal (runtime/pool.h).
 */
#ifndef GRAFT_RUNTIME_H
#define GRAFT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "nn/nn.h"
#include "proto/proto.h"
#include "store/store.h"

/* ---- datasets -------------------------------------------------------------- */

/* The dataset a command or a job names: loaded, split into training
 * and validation images, and identified by its content; and where graftd
 * keeps its data by default.
 */

/* Either a dataset directory (IDX files named as MNIST's or CIFAR-10
 * batches) or a pair of IDX files; the last `validation` training images are
 * held out (negative: 10000; at most a sixth of them; 0: none). */
typedef struct rt_data_src {
	const char *dir;
	const char *train_images, *train_labels;
	long validation;
} rt_data_src;

int rt_data_load_split(const rt_data_src *src, nn_dataset *train, nn_dataset *val,
                       char *err, size_t errlen);

/* The identity of a split: SHA-256 over the shapes, pixels and labels of
 * train and val, so the same images split the same way hash the same
 * wherever they were read from. */
void rt_data_sha256(const nn_dataset *train, const nn_dataset *val, char hex[65]);

/* graftd's data directory when none is given: $GRAFT_DATA_DIR, else
 * $XDG_DATA_HOME/graft, else $HOME/.local/share/graft. */
void rt_data_dir_default(char *out, size_t len);

/* ---- the graft feature cache (features.c) ---------------------------------- */

/* The frozen graft's outputs for every training and validation image, in
 * half precision, in a file under dir that every worker of every job with
 * the same data and graft maps read-only: one copy in memory whatever the
 * number of workers.  The first worker to need it computes it (the others
 * wait on a lock), writes it beside its final name and renames it. */
typedef struct rt_features {
	const nn_half *train, *val;
	void *map;
	size_t map_len;
	char path[4300];
	int computed;              /* this open computed the file (else it mapped one) */
} rt_features;

/* Opens (computing if need be) the cache of graft_path's graft (identity
 * graft_sha) in a's network, for train and val as data_key names them.
 * GRAFT_EIO names the file when it cannot be read or written. */
int rt_features_open(rt_features *f, const char *dir, const char *data_key, const nn_arch *a,
                     const char *graft_path, const char *graft_sha, const nn_dataset *train,
                     const nn_dataset *val, char *err, size_t errlen);
void rt_features_close(rt_features *f);

/* ---- files by URL ---------------------------------------------------------- */

/* Dataset files named by http(s) URL in a job spec, fetched with
 * libcurl into a cache directory and replaced by their local paths.
 */

typedef struct rt_fetch_limits {
	long long max_bytes;   /* a bigger file is refused */
	long timeout_s;        /* for the whole transfer */
} rt_fetch_limits;

#define RT_FETCH_DEFAULT_MAX_BYTES (2LL * 1024 * 1024 * 1024)
#define RT_FETCH_DEFAULT_TIMEOUT_S 900L

/* Fetches url into dir unless it is there already, and puts its local path
 * in out.  With a sha256 the file is kept as dir/<sha256> (content
 * addressed: any URL with those bytes is fetched once) and a download whose
 * hash differs is refused; without one it is kept under the URL's hash and
 * fetched once.  Only http and https, redirects included (another scheme
 * is GRAFT_EINVAL); HTTP errors, oversized files and timeouts are GRAFT_EIO,
 * each with a sentence in err. */
int rt_fetch_url(const char *url, const char *sha256, const char *dir,
              const rt_fetch_limits *lim, char *out, size_t outlen, char *err, size_t errlen);

/* Whether name (a path or URL) ends as an archive graft unpacks: .tar.gz,
 * .tgz, .tar, .tar.xz, .tar.bz2 or .zip. */
int rt_is_archive_name(const char *name);

/* Unpacks an archive of an image folder (libarchive) into root/<its
 * sha256>/, once: a second call finds it there.  Only plain files and
 * folders are written, under names that stay inside (an entry like
 * "../x" or "/x" refuses the archive), up to max_bytes (0: 16 GB) and
 * 2,000,000 entries; the unpack is whole or absent.  out gets the folder:
 * the archive's only top-level folder when it has one, else the unpacked
 * directory. */
int rt_unpack(const char *archive, const char *root, long long max_bytes, char *out,
              size_t outlen, char *err, size_t errlen);

/* Where an image folder named by where is on this machine: where itself, or
 * for an archive (a path, or an http(s) URL fetched into datasets/archives)
 * its unpacked folder under datasets/unpacked. */
int rt_folder_source(const char *where, const char *datasets, const rt_fetch_limits *lim,
                     char *out, size_t outlen, char *err, size_t errlen);

/* Replaces every URL among j's dataset files by its fetched local path;
 * rt_fetch_url's codes. */
int rt_fetch_job_data(proto_job *j, const char *dir, const rt_fetch_limits *lim, char *err,
                      size_t errlen);

/* ---- one job in motion ----------------------------------------------------- */

/* One search job in motion: its strategy, replayed from the store
 * on open, asks candidates, answers those the store already knows (the
 * cache), turns the rest into worker tasks, and commits every result and
 * failure before going on.  `graft search` and graftd both drive jobs
 * through this; neither touches the strategy or the store directly.
 */

typedef struct rt_jobrun rt_jobrun;

/* A task for a worker: the candidate and the evaluation it runs as.  live
 * from rt_jobrun_next until the one call that ends it (rt_jobrun_result,
 * rt_jobrun_failure or rt_jobrun_abandon); ending a task that is not live is a
 * no-op, so no path can count it twice. */
enum rt_task_kind {
	RT_TASK_EVAL,    /* a candidate's rung, in the search */
	RT_TASK_FINAL,   /* a final training (final_id) */
	RT_TASK_SCORE    /* the final winner's scoring on the test split */
};

typedef struct rt_jobrun_task {
	enum rt_task_kind kind;
	int64_t candidate_id, eval_id;   /* eval_id: the final training's id for
	                                    the final stage's kinds */
	int seq, rung, attempt;
	double time_limit;               /* seconds the worker may take */
	const char *curve;               /* the loss curve the driver saw, a JSON
	                                    array of [step, loss]; borrowed by
	                                    rt_jobrun_result, NULL: none */
	int live;
	proto_task task;   /* what the worker is sent; owned by the task */
} rt_jobrun_task;

/* Where a job keeps its files: weights of every evaluation, graft files. */
typedef struct rt_jobrun_dirs {
	const char *weights;   /* created if missing */
	const char *grafts;    /* NULL: search_graft_cache_dir */
	const char *datasets;  /* files fetched by URL; NULL: the graft cache
	                          directory's datasets/ */
	long long fetch_max_bytes; /* 0: RT_FETCH_DEFAULT_MAX_BYTES */
	long fetch_timeout_s;      /* 0: RT_FETCH_DEFAULT_TIMEOUT_S */
	const char *shared;        /* workers on other machines see only this
	                              directory: the data they read must be in
	                              it (NULL: workers run here, no check) */
} rt_jobrun_dirs;

/* Whether the job's space leaves room for any block: the stem, head and
 * graft of its smallest network must fit max_flops and max_params on the
 * job's images.  0, or GRAFT_EINVAL with a sentence naming the limit. */
int rt_jobrun_check_space(const proto_job *j, const nn_dataset *train, char *err,
                          size_t errlen);

/* What a job is before it runs: its spec parsed, the dataset files given by
 * URL fetched, the dataset loaded, split, identified and checked (a dataset
 * every candidate would fail on is refused here: one class, images over
 * graft-arch/1's size, a constant channel), and its space checked against
 * the images.  A submission and a restart both go through this, once. */
typedef struct rt_jobrun_input rt_jobrun_input;

/* Why an input was refused: which part of the spec is at fault. */
enum rt_jobrun_refusal { RT_JOBRUN_BAD_SPEC, RT_JOBRUN_BAD_DATASET, RT_JOBRUN_BAD_SPACE };

/* Loads len bytes of job spec (YAML or JSON).  0, or a negative code with
 * the part at fault in *why and a sentence in err (a spec error starts
 * "line L, column C: path: "). */
int rt_jobrun_input_load(const char *text, size_t len, const rt_jobrun_dirs *dirs,
                         rt_jobrun_input **out, enum rt_jobrun_refusal *why, char *err,
                         size_t errlen);
const proto_job *rt_jobrun_input_spec(const rt_jobrun_input *in);
void rt_jobrun_input_free(rt_jobrun_input *in);

/* Opens job_id of st from in (taken, freed on failure too), or, when in is
 * NULL, from the spec the job was submitted with (after a restart): finds
 * or pretrains its graft (progress lines go to log, may be NULL), and
 * replays its recorded asks and tells into a fresh strategy, checking that
 * each replayed ask gives the candidate the store holds.  Evaluations left
 * running by a process that died are marked interrupted and their
 * candidates come first in rt_jobrun_next.  st is borrowed for the jobrun's
 * life. */
int rt_jobrun_open(store *st, int64_t job_id, const rt_jobrun_dirs *dirs, rt_jobrun_input *in,
                   FILE *log, rt_jobrun **out, char *err, size_t errlen);
void rt_jobrun_free(rt_jobrun *jr);

/* Moves the jobrun to another connection to the same store file (graftd
 * opens jobs on a thread with a connection of its own, then runs them on
 * the loop's). */
void rt_jobrun_set_store(rt_jobrun *jr, store *st);

const proto_job *rt_jobrun_spec(const rt_jobrun *jr);
/* Overrides the spec's threads per worker for the tasks made from now on. */
void rt_jobrun_set_threads(rt_jobrun *jr, int threads);

/* The next task: 1 with *t filled, 0 when nothing is to be run now (every
 * candidate is asked and the rest are in flight, or the job is complete), or
 * a negative code with err.  Candidates the cache answers are recorded and
 * told here, without a task; *hits (may be NULL) counts them. */
int rt_jobrun_next(rt_jobrun *jr, rt_jobrun_task *t, int *hits, char *err, size_t errlen);

/* Records a worker's result for t and tells the strategy; ends t. */
int rt_jobrun_result(rt_jobrun *jr, rt_jobrun_task *t, const proto_result *r, const char *worker,
                     char *err, size_t errlen);

/* Records that t failed (reason: a sentence).  The candidate is run again
 * later if it has attempts left (returns 1), else it is told as failed
 * (returns 0).  Ends t. */
int rt_jobrun_failure(rt_jobrun *jr, rt_jobrun_task *t, const char *reason, const char *worker,
                      char *err, size_t errlen);

/* Puts t back, unrun and uncounted (the process is stopping): its evaluation
 * is marked interrupted and the candidate re-runs on the next open.  Ends t. */
void rt_jobrun_abandon(rt_jobrun *jr, rt_jobrun_task *t);

/* Progress: candidates told, asked and wanted; the best accuracy so far;
 * the climb (with search.fidelity) and the budget. */
typedef struct rt_jobrun_stats {
	int told, asked, total, in_flight, cache_hits, failed;
	int evaluated;            /* candidates whose first rung is over (with a
	                             lag, some not yet told) */
	double best_accuracy;     /* NAN before the first result; the best of the
	                             highest rung reached, as the leaderboard ranks */
	int best_seq, best_rung;
	int rungs;                /* 1 without search.fidelity */
	int promotions;           /* made by this process */
	int at_rung[SEARCH_MAX_RUNGS]; /* candidates whose highest rung is r */
	double search_wall_s, cpu_s;   /* spent by the search so far (cpu_s: trained
	                                  evaluations and one-time costs) */
	double time_left_s, cpu_left_s; /* of search.max_time / max_cpu; NAN: none */
	int budget_spent;
	int final_phase;          /* the search is over, the final stage runs */
	int final_total, final_done; /* its trainings, and those ended */
	int final_winner;         /* seq of the winning architecture, -1: none yet */
	double final_val_accuracy, final_test_accuracy; /* the winner's */
} rt_jobrun_stats;
void rt_jobrun_get_stats(const rt_jobrun *jr, rt_jobrun_stats *s);

/* Whether the job is over: its search (nothing in flight, and either its
 * budget (search.max_time, max_cpu) spent or every candidate asked and
 * told and no rung with a candidate left to promote) and, with a final
 * stage, its final trainings and the winner's test score. */
int rt_jobrun_complete(const rt_jobrun *jr);

/* Whether search.max_time or max_cpu is spent: no new evaluation starts. */
int rt_jobrun_budget_spent(const rt_jobrun *jr);

/* ---- the worker process ---------------------------------------------------- */

/* The worker process (`graft worker`, `graftd worker`): reads
 * tasks of the worker protocol (proto.h) on stdin, evaluates them, and
 * answers on stdout.
 */

/* The worker's main loop; returns the process exit code. */
int rt_worker_main(int argc, char **argv);

/* ---- Slurm -------------------------------------------------------------------- */

/* What Slurm says of the workers' jobs, each named prefix<slot> (srun
 * --job-name): rt_slurm_poll runs squeue (at most every 2 s, on the loop);
 * rt_slurm_state gives the last answer for worker w, its state (PENDING,
 * RUNNING, ...) and reason (Resources, PartitionConfig, ...): 0, or 1 when
 * squeue did not list it (a job step inside an allocation, or not asked
 * yet). */
typedef struct rt_slurm rt_slurm;
rt_slurm *rt_slurm_new(uv_loop_t *loop, const char *prefix, int workers);
void rt_slurm_poll(rt_slurm *q);
int rt_slurm_state(const rt_slurm *q, int w, char *state, size_t n, char *reason, size_t rn);
void rt_slurm_free(rt_slurm *q);

/* ---- the driver ------------------------------------------------------------ */

/* Jobs run on a pool of workers: the one driver that both
 * `graft search` (one job) and graftd (many, shared fairly) use.  It asks
 * jobs for tasks when a worker is idle, sends them, records what comes back
 * (a result, an error, a lost worker) through the jobrun, and on stopping
 * gives every unfinished task back so that it runs again after a restart.
 * What the program makes of it (printing, metrics, job states) it learns
 * from events.
 */

/* How the workers run: what the driver passes to its pool. */
typedef struct rt_pool_opts {
	int workers;
	char **argv;            /* the worker command, NULL-terminated; "{slot}" in
	                           an argument becomes the worker's index (a Slurm
	                           job name per worker) */
	double heartbeat_s;     /* a busy worker silent this long is killed */
	double start_s;         /* a worker not ready this long after its start is
	                           killed and started again (0: heartbeat_s; a
	                           Slurm worker may wait in the queue) */
	long memory_mb;         /* resident memory limit per worker (0: none) */
} rt_pool_opts;

typedef struct rt_driver rt_driver;

enum rt_event_kind {
	RT_SENT,       /* candidate seq went to a worker */
	RT_CACHED,     /* hits candidates were answered from the store */
	RT_RESULT,     /* candidate seq's result is recorded and told */
	RT_RETRY,      /* candidate seq failed (message) and will run again */
	RT_FAILED,     /* candidate seq failed (message) for good and is told */
	RT_NOTHING,    /* the job has no task to give now (done, or all in flight) */
	RT_JOB_ERROR,  /* the job cannot go on: message and code say why (the store
	                  failed: GRAFT_ESQL or GRAFT_EIO, which clearing the fault
	                  cures; the strategy cannot propose: GRAFT_EINVAL) */
	RT_WORKER_PROBLEM, /* no job: a worker could not be started (message) */
};

typedef struct rt_event {
	enum rt_event_kind kind;
	int seq;                      /* -1 when not about one candidate */
	int rung;                     /* the rung of seq's evaluation */
	enum rt_task_kind task;       /* what the task was: a search evaluation, a
	                                 final training, the winner's scoring */
	int hits;                     /* RT_CACHED */
	const proto_result *result;   /* RT_RESULT */
	const char *message;          /* RT_RETRY, RT_FAILED, RT_JOB_ERROR */
	int code;                     /* RT_JOB_ERROR: a GRAFT_E* code */
	int worker_pid;               /* 0 when no worker is involved */
} rt_event;

typedef struct rt_driver_cb {
	/* The jobs that may be given a worker now, in the order to try them
	 * (at most max).  Required. */
	int (*jobs)(void *ctx, rt_jobrun **out, int max);
	/* Something happened to jr (may be NULL).  The callback may change the
	 * job's state; it must not free a jobrun with tasks in flight. */
	void (*event)(void *ctx, rt_jobrun *jr, const rt_event *e);
} rt_driver_cb;

/* Starts po->workers workers on loop.  NULL when they cannot be started. */
rt_driver *rt_driver_new(uv_loop_t *loop, const rt_pool_opts *po, const rt_driver_cb *cb,
                         void *ctx);

/* Gives idle workers tasks (call it when a job becomes runnable; the driver
 * calls it itself whenever a worker becomes idle). */
void rt_driver_dispatch(rt_driver *d);

/* Stops: no new tasks; running ones get grace_s to finish (their results
 * are recorded), then their workers are killed and the tasks given back
 * unrun.  done fires once every worker has exited; then rt_driver_free. */
void rt_driver_stop(rt_driver *d, double grace_s, void (*done)(void *ctx), void *ctx);
void rt_driver_free(rt_driver *d);

/* What worker w is doing: starting (its command runs, it has not said it
 * is ready: a Slurm worker may be pending in the queue), idle, or the task
 * in hand and how far it got. */
typedef struct rt_worker_info {
	int pid;                 /* 0 while it is being started again */
	int starting;            /* not ready yet, since started_at (Unix time) */
	double started_at;
	int busy;                /* holds a task; then: */
	const rt_jobrun *jr;     /*   the task's job, */
	enum rt_task_kind task;  /*   what it is, */
	int seq, rung;           /*   its candidate and rung, */
	int step, steps;         /*   its last progress line (0, 0 before one), */
	double loss;             /*   the loss it gave (NAN before one), */
	double since;            /*   the Unix time it was sent */
} rt_worker_info;

/* 0 with *out filled, or GRAFT_EINVAL when w is not a worker. */
int rt_driver_worker(const rt_driver *d, int w, rt_worker_info *out);
int rt_driver_workers(const rt_driver *d);    /* worker slots */
int rt_driver_busy(const rt_driver *d);       /* workers holding a task */
int rt_driver_restarts(const rt_driver *d);   /* workers started to replace lost ones */

#endif
