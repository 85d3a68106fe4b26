/*
 * jobrun_internal.h - what the two halves of a job in motion share: the
 * search (jobrun.c: candidates, rungs, replay) and the final stage
 * (final.c: the best architectures trained to the end, the test split
 * scored once).  Nothing outside daemon/runtime/ includes it.
 */
#ifndef GRAFT_JOBRUN_INTERNAL_H
#define GRAFT_JOBRUN_INTERNAL_H

#include "daemon/runtime/runtime.h"

/* What the job remembers of each candidate, by seq.  Without rungs a
 * candidate has one rung, 0. */
struct cand {
	int64_t id;
	int parent, generation, told;
	double fitness;                        /* what the strategy holds: the score
	                                          of its highest rung */
	int rung;                              /* the highest rung scored, -1: none */
	double score[SEARCH_MAX_RUNGS];        /* per rung, NAN until scored */
	unsigned char ended[SEARCH_MAX_RUNGS]; /* scored, or failed for good */
	unsigned char promoted[SEARCH_MAX_RUNGS]; /* sent on from this rung */
	char key[SEARCH_MAX_RUNGS][65];        /* the evaluation that scored a rung */
	char *weights[SEARCH_MAX_RUNGS];       /* its trained weights, NULL if none */
	char genome_sha256[65];
	int warm;                              /* an earlier job's, by warm start */
	int item[SEARCH_MAX_RUNGS];            /* each rung's place in the job's
	                                          decisions (-1: not decided) */
	int64_t done_eval[SEARCH_MAX_RUNGS];   /* the evaluation that scored it */
};

/* An evaluation to run before anything new: a rung of a candidate that
 * was interrupted, or failed with attempts left. */
struct pending {
	int seq, rung;
};

/* What a job is before it runs: its spec, and its dataset loaded, split,
 * identified and checked. */
struct rt_jobrun_input {
	char *spec_text;
	proto_job spec;
	nn_dataset train, val;
	char data_sha[65];
	nn_folder_report folder;   /* what decoding an image folder found */
};

struct rt_jobrun {
	store *st;
	int64_t job_id;
	rt_jobrun_input *in;
	proto_job spec;            /* in->spec, with the overrides of this run */
	search_strategy *strat;
	nn_dataset *train, *val;   /* in's */
	int64_t dataset_id;
	char graft_path[4096], graft_sha[65];
	nn_arch base;
	char weights_dir[4096];
	struct cand *c;
	int ncand, cap;
	struct pending *pending;  /* to run before asking new ones */
	int npending;
	/* Every decision of the search (a new candidate's first rung, or a
	 * promotion), in the order made; with search.lag L the strategy and
	 * the promotion rule see a decision's result only in this order, and
	 * decision j only once those of 0..j-L-1 are in (fed). */
	struct pending *items;
	int nitems, items_cap, fed;
	int in_flight, cache_hits, failed, promotions;
	int events;                /* tells and updates so far: the clock that
	                              told_before and tell_seq read */
	double overhead_cpu_s;
	double cpu_spent;          /* CPU seconds of the job's trained evaluations */
	double wall_before;        /* search seconds of the processes before this one */
	double busy_since;         /* since when (monotonic) this process has had
	                              search evaluations in flight; 0: none */
	/* The final stage (final.c): */
	int final_phase;           /* the search is over; the final stage runs */
	store_final *finals;       /* its trainings, as the store holds them */
	int nfinals;
	int scoring;               /* the winner's scoring is in flight */
};


/* In jobrun.c, for final.c and replay.c: */

/* Rungs of the job's search (1 without search.fidelity). */
int rt__nrungs(const rt_jobrun *jr);
/* Whether results wait for their turn (search.lag > 0). */
int rt__lagged(const rt_jobrun *jr);
/* Appends a candidate (zeroed, no rung scored) to the jobrun; NULL on ENOMEM. */
struct cand *rt__cand_add(rt_jobrun *jr);
/* Records a decision: candidate seq's rung, in the order made. */
int rt__add_item(rt_jobrun *jr, int seq, int rung);

/* snprintf(err, fmt, what) and rc (GRAFT_EINVAL when 0). */
int rt__fail(char *err, size_t errlen, int rc, const char *fmt, const char *what);
/* Candidate seq's genome, read back from the store. */
int rt__genome_of(rt_jobrun *jr, int seq, nn_arch *a, char *err, size_t errlen);
/* The candidate of store id id, by seq, or -1. */
int rt__seq_of(const rt_jobrun *jr, int64_t id);
/* Whether path names a file. */
int rt__file_exists(const char *path);
/* Where the job's data loads from: the decoded file of an image folder,
 * else dataset.dir. */
const char *rt__data_path(const proto_job *j);
/* The crop padding graft-arch/1 derives for an image size (the spec's
 * crop is a flag). */
int rt__crop_padding(int h, int w);
/* The worker's task for the job's data, threads and graft (when kept),
 * with arch and save; the caller adds the rest. */
int rt__task_base(rt_jobrun *jr, int64_t id, const nn_arch *a, const char *save,
                  proto_task *t);

/* In replay.c, for jobrun.c: */

/* search.warm_start: the first candidates the strategy is to ask. */
int rt__warm_start(rt_jobrun *jr, char *err, size_t errlen);
/* Replays the job's recorded search into the fresh strategy. */
int rt__replay(rt_jobrun *jr, char *err, size_t errlen);

/* In final.c, for jobrun.c: */

/* After open: reads the job's final trainings when it is in its final
 * phase; a training left running by a process that died runs again (from
 * its checkpoint). */
int rt__final_open(rt_jobrun *jr, int final_phase, char *err, size_t errlen);
/* Enters the final phase: picks the leaderboard's top distinct
 * architectures and records their trainings, and the phase, at once. */
int rt__final_begin(rt_jobrun *jr, char *err, size_t errlen);
/* rt_jobrun_next, _result, _failure and _abandon of the final phase. */
int rt__final_next(rt_jobrun *jr, rt_jobrun_task *t, char *err, size_t errlen);
int rt__final_result(rt_jobrun *jr, rt_jobrun_task *t, const proto_result *r, char *err,
                     size_t errlen);
int rt__final_failure(rt_jobrun *jr, rt_jobrun_task *t, const char *reason, char *err,
                      size_t errlen);
void rt__final_abandon(rt_jobrun *jr, rt_jobrun_task *t);
/* Whether the final stage is over (every training ended, the winner
 * scored). */
int rt__final_done(const rt_jobrun *jr);
void rt__final_free(rt_jobrun *jr);

#endif
