/*
 * store.h - graft's memory, the one public header of store/: a SQLite file
 * holding the jobs, their candidates, every evaluation, the grafts and the
 * datasets, so that nothing is trained twice and a search resumes after a
 * crash from what was committed.
 *
 * The file runs in WAL mode with foreign keys on; its schema is versioned
 * (PRAGMA user_version) and brought up to date by store_open, one migration
 * per version, each in its own transaction.  Every function that writes
 * several rows does so in one transaction.  A store is used by one thread;
 * only one process (the daemon, or one `graft search`) writes a file.
 *
 * Functions return 0 or a negative GRAFT_E* code: GRAFT_ESQL for SQLite
 * failures (the message is in store_errmsg), GRAFT_EINVAL for bad arguments,
 * GRAFT_ENOMEM.  Look-ups that find nothing return STORE_NOTFOUND (> 0).
 */
#ifndef GRAFT_STORE_H
#define GRAFT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "nn/nn.h"

#define STORE_NOTFOUND 1
#define STORE_SCHEMA_VERSION 5

typedef struct store store;

/* Opens (creating if needed) the store at path and migrates it to
 * STORE_SCHEMA_VERSION.  A file of a newer schema, or one that is not a
 * SQLite database, is refused with a sentence in err. */
int store_open(const char *path, store **out, char *err, size_t errlen);
void store_close(store *s);

/* The last SQLite error, as a sentence. */
const char *store_errmsg(const store *s);

/* The schema version of the open file (for tests). */
int store_schema_version(store *s);

/* Explicit transactions, for callers that group several calls. */
int store_begin(store *s);
int store_commit(store *s);
void store_rollback(store *s);

/* ---- datasets and grafts ---------------------------------------------------- */

/* A dataset is its content: sha256 over its images, labels and class names;
 * location is where it was read from (a path or a URL). */
typedef struct store_dataset {
	int64_t id;
	char sha256[65];
	char location[4096];
	char format[16];      /* idx | dir | folder */
	int64_t images;
	char *classes;        /* the class names as a JSON array, or NULL when the
	                         data names none; owned by the caller */
	int skipped;          /* bad images an image folder's skip_bad left out */
} store_dataset;

/* Records d (its id is ignored) and sets *id; a known sha256 keeps its
 * existing row. */
int store_dataset_put(store *s, const store_dataset *d, int64_t *id);
/* Reads dataset id into *d; d->classes is malloc'd (or NULL). */
int store_dataset_get(store *s, int64_t id, store_dataset *d);

typedef struct store_graft {
	int64_t id;
	char sha256[65];      /* identity: nn_tensors_sha256 of its tensors */
	char path[4096];      /* the graft file */
	char source[32];      /* random | synthetic | target | dataset */
	int layers, channels, steps;
	double created;       /* unix time */
} store_graft;

/* Records a graft (once per sha256; a known one keeps its row). */
int store_graft_put(store *s, const store_graft *g, int64_t *id);
/* Every graft, oldest first, into a malloc'd array (free it). */
int store_graft_list(store *s, store_graft **out, int *n);

/* ---- jobs ------------------------------------------------------------------ */

enum store_job_state {
	STORE_JOB_QUEUED, STORE_JOB_RUNNING, STORE_JOB_PAUSED,
	STORE_JOB_DONE, STORE_JOB_CANCELLED, STORE_JOB_FAILED,
	STORE_JOB_NSTATES
};
/* "queued", "running", ...; "?" out of range. */
const char *store_job_state_name(int state);
/* The state named, or -1. */
int store_job_state_parse(const char *name);

typedef struct store_job {
	int64_t id;
	char name[128];
	char *spec;            /* the job spec as submitted (malloc'd by the store) */
	char spec_sha256[65];
	int state;
	char error[512];
	int total;             /* candidates the job asks for */
	int steps;             /* its full training budget per candidate */
	int64_t dataset_id;    /* 0 until known */
	char graft_sha256[65]; /* "" without a graft or until known */
	double overhead_cpu_s; /* one-time costs: graft pretraining, features */
	int final_phase;       /* running its final stage, the search over */
	double search_wall_s;  /* wall seconds the search phase has run, over
	                          every process that ran it */
	double created, updated;
} store_job;

/* Adds a queued job; sets j->id, created and updated. */
int store_job_add(store *s, store_job *j);
/* Fills *j (j->spec malloc'd: store_job_clear frees it). */
int store_job_get(store *s, int64_t id, store_job *j);
void store_job_clear(store_job *j);
/* The newest job with this spec hash, or STORE_NOTFOUND. */
int store_job_find_spec(store *s, const char *spec_sha256, int64_t *id);
/* Every job id, oldest first (malloc'd). */
int store_job_ids(store *s, int64_t **ids, int *n);
/* Sets the state (and the error, may be NULL). */
int store_job_set_state(store *s, int64_t id, int state, const char *error);
/* Moves a job into its final phase (final 1) or back to its search. */
int store_job_set_phase(store *s, int64_t id, int final);
/* Records how long the search phase has run (for search.max_time). */
int store_job_set_search_wall(store *s, int64_t id, double seconds);
/* Records what the job runs on and its one-time cost so far. */
int store_job_set_inputs(store *s, int64_t id, int64_t dataset_id,
                         const char *graft_sha256, double overhead_cpu_s);

/* ---- candidates -------------------------------------------------------------- */

/* A candidate is one ask of the job's strategy.  seq is the ask's id;
 * told_before the number of results told before it was asked and tell_seq
 * the order of its own tell (-1: not told yet): with them, replaying the
 * asks and tells reproduces the strategy exactly (search.h). */
typedef struct store_candidate {
	int64_t id, job_id;
	int seq, told_before;
	char *genome;          /* graft-arch/1 YAML (malloc'd by the store on reads) */
	char genome_sha256[65];
	int parent_seq;        /* -1: sampled at random */
	int generation;        /* 0 for random samples, parent's + 1 */
	char mutation[16];     /* search_mutation_name, "" for random samples */
	int64_t params, flops;
	int tell_seq;          /* -1 until told */
	double fitness;        /* NAN until told, or for a failed candidate; with
	                          rungs, the score of its highest rung */
	int rung;              /* the highest rung it has been scored at */
} store_candidate;

/* Adds c (sets c->id).  (job_id, seq) is unique. */
int store_candidate_add(store *s, store_candidate *c);
/* Records the tell of candidate id. */
int store_candidate_tell(store *s, int64_t id, int tell_seq, double fitness);
/* Records candidate id's score at a higher rung (a promotion's result). */
int store_candidate_climb(store *s, int64_t id, int rung, double fitness);
/* The job's candidates by seq (malloc'd; store_candidates_free). */
int store_candidates(store *s, int64_t job_id, store_candidate **out, int *n);
void store_candidates_free(store_candidate *c, int n);
/* One candidate by id (c->genome malloc'd). */
int store_candidate_get(store *s, int64_t id, store_candidate *c);

/* ---- evaluations and the cache ---------------------------------------------- */

enum store_eval_status { STORE_EVAL_RUNNING, STORE_EVAL_DONE, STORE_EVAL_FAILED };

/* One attempt at scoring a candidate at one rung.  The cache key is
 * (genome_sha256, dataset_id, graft_sha256, steps, seed, init, rung,
 * val_images): the genome's hash covers the network and its whole recipe;
 * init is "" for a fresh start or the key hash of the evaluation whose
 * weights it started from (its parent's, or its own rung below); steps are
 * the steps it trains itself. */
typedef struct store_eval {
	int64_t id, candidate_id;
	int status;
	char genome_sha256[65];
	int64_t dataset_id;
	char graft_sha256[65];
	int steps;
	uint64_t seed;
	char init[65];
	int rung;               /* 0, or the rung a promotion took it to */
	int val_images;         /* validation images it is scored on; 0: all */
	char key[65];           /* sha256 of the whole key, set by the store */
	double val_accuracy, val_loss, train_loss, wall_s, cpu_s;
	int64_t params, flops;
	int cached;             /* answered from the store: cpu_s is 0 */
	int64_t cached_from;    /* the evaluation that answered it */
	int inherited;          /* tensors taken from the parent */
	int feature_cache;      /* the graft's features came from the cache */
	char worker[64];
	int attempt;
	int interrupted;        /* failed because its process stopped, not by itself */
	char error[512];
	char weights[4096];     /* the trained weights file, "" if none */
	int tell_seq;           /* a promotion's result: its place in the
	                           sequence of tells and updates (-1: none) */
	double started, finished;
} store_eval;

/* Writes e->key from the key fields. */
void store_eval_key(store_eval *e);
/* Starts a running evaluation (sets key, id, started). */
int store_eval_start(store *s, store_eval *e);
/* Ends it: status, metrics, error, weights, tell_seq (sets finished). */
int store_eval_finish(store *s, store_eval *e);
/* Gives a done evaluation (a promotion's) its place among the job's tells
 * and updates. */
int store_eval_set_tell(store *s, int64_t eval_id, int tell_seq);
/* Marks every running evaluation of the job interrupted with the reason
 * (they were in flight when the process that ran them died); returns how
 * many. */
int store_eval_abandon(store *s, int64_t job_id, const char *reason);
/* Marks one running evaluation interrupted (its process is stopping). */
int store_eval_interrupt(store *s, int64_t eval_id, const char *reason);
/* The done evaluation with e->key's fields, from any job: STORE_NOTFOUND or
 * 0 with *out filled. */
int store_cache_find(store *s, store_eval *key_and_out);
/* The same look-up whatever the evaluation started from (its init): how a
 * warm start finds an earlier job's candidate as that job evaluated it. */
int store_cache_find_any_init(store *s, store_eval *key_and_out);
/* The candidate's evaluations, oldest first (malloc'd). */
int store_evals_of(store *s, int64_t candidate_id, store_eval **out, int *n);
/* The evaluation that scored a candidate (its last done one: its highest
 * rung). */
int store_eval_of(store *s, int64_t candidate_id, store_eval *out);
/* The loss curve seen while evaluation id trained: a JSON array of [step,
 * loss], steps counted from the evaluation's own start (a climb's from the
 * rung below), loss null when not finite; or NULL to leave none.  *json is
 * malloc'd, NULL when none was recorded. */
int store_eval_set_curve(store *s, int64_t eval_id, const char *json);
int store_eval_curve(store *s, int64_t eval_id, char **json);
/* Number of failed attempts at candidate id's rung that count against its
 * retries: an attempt "interrupted" (its error starts so) because the
 * process running it stopped is not the candidate's fault and does not
 * count. */
int store_eval_failures(store *s, int64_t candidate_id, int rung);

/* ---- the final stage ---------------------------------------------------------- */

/* One training of the final stage: an architecture of the search's
 * leaderboard trained to the end with the job's final recipe, the graft
 * frozen, fine-tuned or dropped.  The winner (on validation) is the only
 * model whose test accuracy is ever measured. */
enum store_final_status {
	STORE_FINAL_PENDING, STORE_FINAL_RUNNING, STORE_FINAL_DONE, STORE_FINAL_FAILED
};

typedef struct store_final {
	int64_t id, job_id, candidate_id;
	int rank;              /* its candidate's place on the search's leaderboard */
	char graft[16];        /* frozen | finetune | drop */
	char *arch;            /* graft-arch/1 of what is trained, final recipe
	                          included (malloc'd by the store on reads) */
	int status, attempts;
	int step, steps;       /* steps done (at the last checkpoint or the end) */
	int resumed_from;      /* the step its last run went on from (its
	                          checkpoint's), 0 for a run from the start */
	char weights[4096];    /* the trained weights, "" until done */
	double val_accuracy;   /* NAN until done */
	double test_accuracy;  /* NAN unless it won and a test split exists */
	int64_t params, flops;
	double cpu_s, wall_s;
	int winner;
	char error[512];
} store_final;

/* "pending", "running", "done", "failed"; "?" out of range. */
const char *store_final_status_name(int status);
/* Adds f (sets f->id); (job, candidate, graft) is unique. */
int store_final_add(store *s, store_final *f);
/* Writes every mutable field of f (status through error) to its row. */
int store_final_update(store *s, const store_final *f);
/* One final training by id (f->arch malloc'd), or STORE_NOTFOUND. */
int store_final_get(store *s, int64_t id, store_final *f);
/* The job's final trainings, oldest first (malloc'd; store_finals_free). */
int store_finals(store *s, int64_t job_id, store_final **out, int *n);
void store_finals_free(store_final *f, int n);

/* ---- queries ------------------------------------------------------------------ */

enum store_sort { STORE_SORT_ACCURACY, STORE_SORT_PARAMS, STORE_SORT_FLOPS };

typedef struct store_rank {
	int64_t candidate_id;
	int seq, generation;
	char genome_sha256[65];
	double val_accuracy, cpu_s;
	int64_t params, flops;
	int cached;
	int rung;              /* the rung val_accuracy is of */
} store_rank;

/* The job's scored candidates, one per distinct genome (its best-scoring
 * candidate, the first of equals), by accuracy (the highest rung first,
 * then the highest accuracy), params or FLOPs (fewest first; ties by rung
 * and accuracy).
 * At most limit rows (limit <= 0: all).  malloc'd. */
int store_leaderboard(store *s, int64_t job_id, enum store_sort sort, int limit,
                      store_rank **out, int *n);
/* The Pareto front of accuracy against cost (by STORE_SORT_PARAMS or
 * STORE_SORT_FLOPS): no other scored candidate has at least the accuracy at
 * a lower cost or more accuracy at as much; cheapest first. */
int store_pareto(store *s, int64_t job_id, enum store_sort by, store_rank **out, int *n);

/* One candidate of a lineage: what its mutation made of its parent. */
typedef struct store_ancestor {
	int64_t candidate_id;
	int seq, parent_seq, generation;
	char mutation[16];     /* "" for a random sample */
	int scored;            /* has a done evaluation; then: */
	double val_accuracy;   /* its last done evaluation's score, */
	int rung;              /* at this rung */
	double fitness;        /* what the search was told (NAN: not told) */
	int64_t params, flops;
} store_ancestor;

/* The chain from the random sample that started it to candidate id of job:
 * oldest first, the candidate last (malloc'd).  STORE_NOTFOUND when the
 * job has no such candidate. */
int store_lineage(store *s, int64_t job_id, int64_t candidate_id, store_ancestor **out,
                  int *n);

/* How many of the job's told candidates stopped at each rung (their
 * highest), into counts[0..max); returns the number of rungs reached. */
int store_rung_counts(store *s, int64_t job_id, int *counts, int max);

/* What candidates cost over a slice of the job (by seq), and where the
 * saving came from.  cpu_s sums the trained evaluations' CPU time (all
 * attempts, failed ones too); saved_cache_s is what the cache hits would have
 * cost (the CPU time of the evaluations that answered them); saved_inherit_s
 * estimates what inheritance saved: each inheriting evaluation's cpu_s x
 * (job steps - its steps) / its steps; saved_early_s what multi-fidelity's
 * early stopping saved: each candidate stopped below the top rung reached so
 * far, its CPU time x (the most steps any candidate trained - its steps) /
 * its steps.  mean_steps is over the trained (not cached) scored candidates. */
typedef struct store_cost {
	int first_seq, last_seq;
	int candidates, scored, cache_hits, inherited, feature_cache, failed;
	int stopped_early;
	double cpu_s, cpu_per_candidate, mean_steps;
	double saved_cache_s, saved_inherit_s, saved_early_s;
} store_cost;

/* The job's candidates evaluated so far (told, or with a done first rung
 * the search has not taken in yet), split in nparts slices of equal size by
 * seq (the last takes the remainder), into out[0..nparts). */
int store_cost_parts(store *s, int64_t job_id, int nparts, store_cost *out);

#endif
