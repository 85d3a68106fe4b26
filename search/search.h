/*
 * search.h - graft's architecture search, the one public header of search/.
 *
 * So far: the search space and random sampling from it (space.c), the cost of
 * an architecture in parameters and FLOPs, computed without building it, the
 * statistics an ablation needs to compare paired runs (stats.c), grafts on
 * demand with their cache (graft_source.c), genome validation, canonical hash
 * and mutations (genome.c), the ask/tell strategies (strategy.c), and the
 * evaluation of one candidate with weight inheritance (evaluate.c).
 *
 * Only the strategies allocate (search_strategy_new / _free); every other
 * pointer argument is borrowed for the call.
 */
#ifndef GRAFT_SEARCH_H
#define GRAFT_SEARCH_H

#include <stdint.h>

#include "nn/nn.h"

/* ---- the search space ------------------------------------------------------ */

#define SEARCH_MAX_WIDTHS 16
#define SEARCH_WIDTH_STEP 8 /* the step of the width and stem ranges */

/* What search_sample_arch may draw.  Ranges stepped by SEARCH_WIDTH_STEP start
 * at their minimum: widths 16..96 are 16, 24, ..., 96; a range whose bounds are
 * not a whole number of steps apart stops at the last step below its maximum. */
typedef struct search_space {
	int ops;                 /* bit set of 1 << NN_OP_* allowed */
	int min_blocks, max_blocks;         /* 1 <= min <= max <= NN_MAX_BLOCKS */
	int widths[SEARCH_MAX_WIDTHS];      /* allowed block channel counts; if */
	int nwidths;                        /* nwidths == 0, any in [min_width, */
	int min_width, max_width;           /* max_width] in steps of 8 */
	int stem_min, stem_max;             /* stem channels, in steps of 8 */
	int max_downsamples;     /* stride-2 blocks plus pools, at most */
	int64_t max_params, max_flops;      /* inclusive limits (FLOPs per image) */
} search_space;

/* Fills s with the default space: ops conv3|conv5|sep3|res3|pool, 2..10
 * blocks, widths 16, 24, 32, 48, 64, 96, 128, 192, 256, stem 8..64, at most 3
 * downsamplings, at most 3,000,000 parameters and 150,000,000 FLOPs. */
void search_space_defaults(search_space *s);

/* Draws a random architecture from s into out, deterministically for the state
 * of r (which advances).  out starts as a copy of base, which supplies the
 * input shape, normalization, classes, training recipe and graft section (the
 * graft's parameters and FLOPs count against the limits); base's blocks and
 * result are dropped.  The draw: stem channels (kernel 3); the number of
 * blocks; for each block its op (uniform over the allowed ops, pool only while
 * downsamplings remain), channels (uniform over the allowed widths), stride (2
 * with probability 1/3 while downsamplings remain and the feature map is at
 * least 2x2, else 1; always 1 for pool, which downsamples by itself), and with
 * probability 0.2 a skip_from chosen uniformly among the stem and the earlier
 * blocks whose output has the block's spatial size (none if there is no such
 * one).  Whole architectures are drawn until one is within max_params and
 * max_flops.  Returns 0, or GRAFT_EINVAL when s or base is malformed or no
 * architecture within the limits turned up in SEARCH_SAMPLE_TRIES draws; *out
 * is written only on success.  base and out may be the same struct. */
#define SEARCH_SAMPLE_TRIES 10000
int search_sample_arch(const search_space *s, const nn_arch *base, nn_rng *r,
                       nn_arch *out);

/* Parameters (trainable and frozen, as nn_net_params counts them: conv weights,
 * BN weight and bias, linear weight and bias) and FLOPs per image (2 x the
 * multiply-adds of the convolutions and the linear head, as nn_net_flops) of
 * the network nn_net_from_arch builds from a, graft included.  GRAFT_EINVAL
 * (negative) if a does not describe a network that builds (a bad shape, an
 * even kernel, a skip_from that is not an earlier block or the stem, or one
 * between different spatial sizes); GRAFT_ERANGE if the count overflows
 * int64_t (absurd widths). */
int64_t search_arch_params(const nn_arch *a);
int64_t search_arch_flops(const nn_arch *a);

/* ---- statistics ------------------------------------------------------------ */

/* The difference of paired measurements a[i] - b[i]: its mean, sample standard
 * deviation (n - 1 in the denominator) and the 95% two-sided confidence
 * interval of the mean, mean_diff +- t(0.975, n-1) * sd_diff / sqrt(n). */
typedef struct search_paired {
	int n;
	double mean_diff, sd_diff, ci_lo, ci_hi;
} search_paired;

/* Fills out for the n pairs (a[i], b[i]).  With n == 1, mean_diff is the one
 * difference and sd_diff, ci_lo, ci_hi are NaN (no spread can be estimated);
 * with n <= 0 every field but n is NaN. */
void search_paired_ci(const double *a, const double *b, int n, search_paired *out);

/* The 0.975 quantile of Student's t with dof degrees of freedom: a table
 * (exact to 6 decimals) for dof 1..30 and, beyond, the Cornish-Fisher
 * expansion around the normal quantile 1.959964 (within 1e-7 of the exact
 * value there).  NaN for dof < 1. */
double search_t975(int dof);

/* Kendall's tau-b of x and y: (C - D) / sqrt((C + D + Tx) (C + D + Ty)) over
 * all pairs, C concordant, D discordant, Tx tied in x only, Ty tied in y only
 * (pairs tied in both count nowhere); the same as scipy.stats.kendalltau.
 * NaN when n < 2 or when every x or every y is the same (undefined). O(n^2). */
double search_kendall_tau(const double *x, const double *y, int n);

/* Arithmetic mean of x[0..n); NaN when n <= 0. */
double search_mean(const double *x, int n);

/* ---- where grafts come from ------------------------------------------------- */

/* Where source "glyphs" finds its fonts by default (Debian's), and sources
 * "rotations" and "exemplars" their photos (Debian's wallpapers and
 * scikit-image's sample images). */
#define SEARCH_FONTS_DIR "/usr/share/fonts/truetype"
#define SEARCH_PHOTO_DIRS { "/usr/share/backgrounds", \
                            "/usr/lib/python3/dist-packages/skimage/data" }

/* The universal graft graft ships, one for grey images and one for RGB:
 * pretrained once from the same source by nn/grafts/make-universal.sh (the
 * table in nn/grafts/README.md says why trained for both rather than the
 * grey one summed from the RGB one), and used by source "universal" with no
 * pretraining.  SEARCH_GRAFTS_DIR, where they are, comes from the Makefile:
 * nn/grafts of the sources graft was built from. */
#define SEARCH_UNIVERSAL_GREY SEARCH_GRAFTS_DIR "/universal-grey.safetensors"
#define SEARCH_UNIVERSAL_RGB SEARCH_GRAFTS_DIR "/universal-rgb.safetensors"

/* A request for a graft module, made from one of the sources of DESIGN.md. */
typedef struct search_graft_req {
	const char *source;          /* "random", "synthetic", "textures", "glyphs",
	                                "rotations", "exemplars", "mixture",
	                                "universal", "target" or "dataset" */
	const nn_dataset *target;    /* the job's training split (never its
	                                validation or test data) */
	const float *target_mean, *target_std; /* its normalization */
	const char *dataset_dir;     /* source "dataset": another labelled dataset
	                                (IDX or CIFAR-10) with as many channels */
	const char *fonts_dir;       /* source "glyphs": NULL: SEARCH_FONTS_DIR */
	int images;                  /* images a generated source makes (0: 50,000) */
	int layers, kernel, channels; /* the module: layers of kernel x kernel,
	                                 channels wide */
	int steps, batch;            /* pretraining budget */
	float lr;
	uint64_t seed;
	const char *cache_dir;       /* where graft files are kept; NULL: the
	                                default (see search_graft_cache_dir) */
	nn_progress_fn progress;     /* pretraining progress, may be NULL */
	void *ctx;
} search_graft_req;

/* mkdir -p: creates each missing component of path, owner-only (0700).
 * GRAFT_EIO with a sentence in err when one cannot be made. */
int search_make_dirs(const char *path, char *err, size_t errlen);

/* A per-user directory of graft's, XDG style: $env_var, else $xdg_var/graft,
 * else $HOME/home_default/graft (/tmp when there is no HOME). */
void search_user_dir(char *out, size_t len, const char *env_var, const char *xdg_var,
                     const char *home_default);

/* $GRAFT_CACHE_DIR, else $XDG_CACHE_HOME/graft, else $HOME/.cache/graft. */
void search_graft_cache_dir(char *out, size_t len);

/* Finds or makes the graft a request describes.  The same source, data,
 * module, budget and seed always give the same graft, so a file made once is
 * kept in the cache under a key of all of them and reused.  path gets the
 * file, sha its identity (the SHA-256 of its tensors), *reused whether it came
 * from the cache.  Source "universal" is never pretrained: the shipped file
 * for the target's channels is put in the cache, and a request of another
 * module shape than the shipped one's is GRAFT_EINVAL, saying so. */
int search_graft_obtain(const search_graft_req *r, char *path, size_t pathlen,
                        char sha[65], int *reused, char *err, size_t errlen);

/* Copies the file from to the file to: 0, or GRAFT_EIO with a sentence. */
int search_copy_file(const char *from, const char *to, char *err, size_t errlen);

/* Fills a's graft section for a module of the request's shape. */
void search_graft_section(const search_graft_req *r, const char *sha, nn_arch *a);

/* ---- genomes: validity, canonical form, hash, mutation (genome.c) ----------- */

/* A genome is an nn_arch: the search mutates architectures directly, and the
 * fields it may alter are the stem, the blocks and the recipe's lr. */

/* Whether a lies inside s: ops allowed, block count, block widths and stem
 * channels (on the SEARCH_WIDTH_STEP grids, or in s->widths), stride 1 or 2
 * (pool: ignored), at most max_downsamples stride-2 blocks plus pools, skips
 * only from the stem or earlier blocks of equal spatial size, and params and
 * FLOPs (search_arch_params/flops) within the limits.  Returns 0, or
 * GRAFT_EINVAL with a sentence in err (may be NULL when errlen is 0). */
int search_arch_valid(const search_space *s, const nn_arch *a, char *err,
                      size_t errlen);

/* Writes to out the canonical form of a: the same network and recipe with
 * every field that does not change them normalised: pool strides 1; unused
 * block slots zeroed with skip_from NN_SKIP_NONE; unused graft slots, unused
 * mean/std channels, and without a graft its sha and graft_trainable zeroed;
 * graft_source and the result section cleared; and floats of the recipe (lr, momentum,
 * weight_decay) and normalization rounded to 6 significant digits.
 * a and out may be the same struct. */
void search_arch_canonical(const nn_arch *a, nn_arch *out);

/* SHA-256, as lowercase hex, of a text serialisation ("graft-genome/1") of
 * the canonical form of a: input shape and normalization, classes, stem,
 * graft layers and sha256, blocks, graft_trainable and the whole training
 * recipe (seed included).  Equal for archs that build the same network with
 * the same recipe; different whenever either differs. */
void search_arch_hash(const nn_arch *a, char hex[65]);

enum search_mutation {
	SEARCH_MUT_INSERT,      /* a new block (random op and width, stride 1) */
	SEARCH_MUT_REMOVE,      /* one block */
	SEARCH_MUT_CHANNELS,    /* a block's width, to another allowed one */
	SEARCH_MUT_KERNEL,      /* conv3 <-> conv5 */
	SEARCH_MUT_STRIDE,      /* 1 <-> 2 on a non-pool block */
	SEARCH_MUT_OP,          /* a block's op, to another allowed one */
	SEARCH_MUT_ADD_SKIP,    /* a skip between outputs of equal spatial size */
	SEARCH_MUT_REMOVE_SKIP,
	SEARCH_MUT_LR,          /* lr x a log-uniform factor in [0.5, 2] */
	SEARCH_MUT_IDENTITY,
	SEARCH_MUT_COUNT
};

/* Mutates parent into child after Real et al. 2017: picks a mutation
 * uniformly among those applicable to the parent, applies it to a random
 * site, and repeats (SEARCH_MUTATE_TRIES times at most, each a fresh pick)
 * until the child is valid in s; failing that, the child is the parent
 * (identity).  Deterministic for the state of r (which advances).
 * Skip indices follow inserted and removed blocks; a skip from a removed
 * block is dropped (set to NN_SKIP_NONE), not re-pointed.  The lr is clamped
 * to [1e-4, 1] and rounded to 6 significant digits.  The child's result
 * section is cleared and pool strides are 1; other fields are the parent's.
 * Returns 0 with *applied (may be NULL) set, or GRAFT_EINVAL when the parent
 * is not valid in s.  parent and child may be the same struct. */
#define SEARCH_MUTATE_TRIES 100
int search_mutate(const search_space *s, const nn_arch *parent, nn_rng *r,
                  nn_arch *child, enum search_mutation *applied);

/* "insert", "remove", "channels", "kernel", "stride", "op", "add_skip",
 * "remove_skip", "lr", "identity"; "?" for anything else. */
const char *search_mutation_name(enum search_mutation m);

/* ---- strategies: regularized evolution and random search (strategy.c) ------ */

/* A search strategy proposes candidates one at a time (search_ask) and learns
 * their results one at a time (search_tell), so that many evaluations can run
 * in parallel.  Unlike the rest of this header it allocates: a strategy is
 * made by search_strategy_new and released by search_strategy_free.
 *
 * Determinism and replay.  The strategy's rng (seeded once from seed) is
 * consumed only by search_ask; search_tell only records.  What an ask returns
 * therefore depends on the seed, the arguments of search_strategy_new and the
 * exact sequence of asks and tells before it (their interleaving and the order
 * of the tells, not the time they came).  Replaying the same sequence of asks
 * and tells, in the same order, on a fresh strategy made with the same
 * arguments reproduces every candidate and parent exactly and leaves the
 * strategy in the same state: this is how a search resumes from the store,
 * which must record the order of the tells, not only their values.  A tell
 * of a candidate that never finished is simply never replayed; the candidate
 * stays outstanding. */
typedef struct search_strategy search_strategy;

enum search_kind { SEARCH_EVOLUTION, SEARCH_RANDOM };

/* Makes a strategy of the given kind over space s (copied) from base (copied;
 * it supplies what search_sample_arch takes from it).  population P and
 * sample S: 1 <= S <= P; random search keeps the population too (see
 * search_strategy_population) but never draws from it.  Returns NULL on bad
 * arguments (a NULL pointer, P < 1, S < 1, S > P, a kind out of range) or out
 * of memory.  s and base are borrowed for the call. */
search_strategy *search_strategy_new(enum search_kind kind, const search_space *s,
                                     const nn_arch *base, int population,
                                     int sample, uint64_t seed);

/* Frees st; NULL is a no-op. */
void search_strategy_free(search_strategy *st);

/* A warm start: the next n asks (made before any other) return a[0..n)
 * as they are, parent -1, with no draw from the rng; the candidates of an
 * earlier search, say, whose results the cache already holds.  Copied.
 * Call before the first ask; GRAFT_EINVAL after it, GRAFT_ENOMEM. */
int search_strategy_warm(search_strategy *st, const nn_arch *a, int n);

/* Fills *out with the next candidate and returns its id (0, 1, 2, ... in ask
 * order), with *parent (may be NULL) the parent's id or -1 when it was sampled
 * at random (search_sample_arch).
 *
 * SEARCH_RANDOM: every candidate is a random sample.
 * SEARCH_EVOLUTION (Real et al. 2019): while fewer than P results have been
 * told (admitted), the candidate is a random sample; this covers the first P
 * asks and, when asks are outstanding, every later ask until the P-th result
 * is in.  After that, S members of the current population are drawn
 * uniformly with replacement, the one with the highest fitness is the parent
 * (ties: the first drawn; NAN members are never chosen), and the candidate is
 * search_mutate of the parent.  If all S draws are NAN, the candidate is a
 * random sample (parent -1).
 *
 * Returns the id (>= 0), or GRAFT_EINVAL (the space or base is unusable: no
 * sample within the limits) or GRAFT_ENOMEM; on failure *out is unchanged,
 * no id is used, but the rng may have advanced (replay stays exact as long as
 * the failure is replayed too). */
int search_ask(search_strategy *st, nn_arch *out, int *parent);

/* Records the fitness of candidate id (higher is better, e.g. validation
 * accuracy; NAN = failed: never a parent, but a member that ages like any
 * other).  Tells may come in any order; the result is admitted to the
 * population at once, and admitting a member beyond P retires the oldest by
 * admission order (aging), whatever its fitness.  Returns 0, or GRAFT_EINVAL
 * for an id never asked or already told. */
int search_tell(search_strategy *st, int id, double fitness);

/* Replaces the fitness of candidate id, told before, with a better-founded
 * one: its score at a higher fidelity rung (fidelity.c).  The member keeps
 * its place and age in the population; only what a tournament sees of it
 * changes.  An update is part of the sequence a replay must repeat in
 * order, like a tell.  GRAFT_EINVAL for an id not told yet. */
int search_tell_update(search_strategy *st, int id, double fitness);

/* The number of candidates asked so far (the next id). */
int search_strategy_asked(const search_strategy *st);

/* The search_mutation the last ask applied, or -1 when it sampled at random
 * (or nothing was asked yet), or SEARCH_WARM for a warm start's. */
#define SEARCH_WARM (-2)
int search_strategy_last_mutation(const search_strategy *st);

/* The number of results told so far. */
int search_strategy_told(const search_strategy *st);

/* Copies the ids of the current population, oldest admitted first, into
 * ids[0..max) and returns how many members there are (which may exceed max;
 * ids may be NULL when max is 0).  For tests and progress reports. */
int search_strategy_population(const search_strategy *st, int *ids, int max);

/* ---- multi-fidelity: asynchronous successive halving (fidelity.c) ----------- */

/* A job's rungs: every candidate trains rungs[0] steps; the best 1/eta of a
 * rung go on to the next, continuing from their own weights and optimizer
 * state, until rungs[nrungs - 1] steps in all.  Rungs below the top are
 * scored on the first `slice` validation images, the top on all of them. */
#define SEARCH_MAX_RUNGS 8
typedef struct search_fidelity {
	int nrungs;                    /* 0: off, every candidate trains train.steps */
	int rungs[SEARCH_MAX_RUNGS];   /* cumulative steps, strictly increasing */
	int eta;                       /* >= 2 */
	int slice;                     /* validation images below the top rung;
	                                  0: all */
} search_fidelity;

/* ASHA's rule for one rung (Li et al. 2020), capped: of the n candidates
 * that finished the rung, with score[i] (NAN: failed) and promoted[i]
 * (already sent up), the best one not promoted yet among the top
 * floor(n / eta), ranked by score, equal scores by index — unless floor(n /
 * eta) have been promoted already (fidelity.c says why).  Returns its index,
 * -1 when no candidate qualifies, GRAFT_EINVAL (eta < 2, NULL arrays) or
 * GRAFT_ENOMEM.  Depends only on the arrays, not on the order results came
 * in. */
int search_asha_pick(const double *score, const unsigned char *promoted, int n, int eta);

/* ---- evaluating one candidate (evaluate.c) --------------------------------- */

/* What search_evaluate needs; every pointer is borrowed for the call. */
typedef struct search_eval_in {
	const nn_arch *arch;                 /* the candidate, recipe included (steps,
	                                        batch, lr, seed) */
	const nn_dataset *train, *val;
	const float *mean, *std;             /* normalization; NULL: the arch's */
	const char *graft_path, *graft_sha;  /* NULL when arch has no graft; a NULL
	                                        or empty sha is not checked */
	const nn_half *train_feats, *val_feats; /* graft feature caches
	                                        (nn_graft_features) or NULL */
	const nn_weights *parent;            /* the parent's trained weights for
	                                        inheritance, or NULL */
	const char *save_path;               /* write the trained weights here
	                                        (safetensors), or NULL */
	const char *optim_in;                /* the optimizer state to go on from
	                                        (nn_net_save_optim of the run
	                                        whose weights parent holds), or NULL */
	const char *optim_save;              /* write the optimizer state here, or NULL */
	int val_images;                      /* score on the first val_images of
	                                        val only (a rung's slice); 0: all */
	const char *weights_in;              /* every tensor of the net, the graft's
	                                        too, from this file (a trained model
	                                        to score), or NULL */
	const char *checkpoint;              /* write a checkpoint here (nn_net_save_
	                                        checkpoint) every checkpoint_every */
	int checkpoint_every;                /* steps; or NULL / 0 */
	const char *resume;                  /* a checkpoint to go on from: its
	                                        tensors, optimizer state and step */
	const nn_dataset *test;              /* also score this split, or NULL */
	nn_progress_fn progress;             /* training progress, may be NULL */
	void *ctx;
	int report_every;                    /* steps between calls; <= 0: at the end */
} search_eval_in;

typedef struct search_eval_out {
	double val_accuracy, val_loss, train_loss; /* train_loss: nn_train's final */
	double wall_s, cpu_s;                /* of the whole call; cpu_s is process
	                                        CPU time (all threads) */
	int steps;
	int64_t params, flops;               /* as nn_net_params / nn_net_flops */
	int inherited;                       /* tensors taken from the parent */
	int val_images;                      /* images scored */
	int start_step;                      /* where a resumed training began */
	double test_accuracy;                /* NAN without in->test */
	int feature_cache;                   /* the graft's features came from the
	                                        cache (no augmentation to defeat it) */
	/* Where wall_s went: building the net (inheritance and the graft's
	 * weights included), training (of which setup_s making oneDNN's
	 * plans, JIT compilation included), scoring the validation split,
	 * writing the weights.  All but the training steps is the
	 * candidate's fixed cost. */
	double build_s, train_s, setup_s, score_s, save_s;
} search_eval_out;

/* Copies into child every tensor (nn_net_tensors: weights and BN running
 * statistics) whose name and shape match a tensor of parent, except the
 * graft's ("graft.*"), which always come from the graft file.  Other tensors
 * keep what they hold.  Returns how many were copied (0 when parent is NULL),
 * or GRAFT_EINVAL (child NULL) or GRAFT_ENOMEM. */
int search_inherit(nn_net *child, const nn_weights *parent);

/* Evaluates one candidate: builds in->arch (nn_net_from_arch, seeded by the
 * recipe's seed, finalized for its batch), inherits from in->parent
 * (search_inherit), loads the graft file (checked against graft_sha), trains
 * for the recipe (with the training feature cache when given), scores on
 * in->val (or its first val_images), and saves the trained weights to
 * save_path and the optimizer state to optim_save when given.  The same
 * input gives the same metrics (on one thread, bit for bit).  Returns 0, or
 * a GRAFT_E* code with a sentence in err (may be NULL when errlen is 0):
 * GRAFT_EINVAL for an architecture that does not build, a graft without a
 * file, or data of the wrong shape; nn_graft_load's codes (GRAFT_EIO for a
 * missing file, GRAFT_EFORMAT for a wrong one); nn_net_save's.  *out is
 * zeroed first, and wall_s and cpu_s are set even on failure. */
int search_evaluate(const search_eval_in *in, search_eval_out *out, char *err,
                    size_t errlen);

#endif
