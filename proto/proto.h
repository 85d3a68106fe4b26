/*
 * proto.h - graft's file formats, the one public header of proto/.
 *
 * For now: the architecture config graft-arch/1 (see ARCH-FORMAT.md), read into
 * and written from an nn_arch.  Parsing is strict: unknown or repeated keys,
 * wrong types, out-of-range values and networks that cannot be built are all
 * errors, and every message locates its problem as
 *
 *     line L, column C: <path>: <what was wrong>; expected <what>
 *
 * e.g. "line 4, column 12: stem.kernel: expected an odd integer 1..7, got 'abc'".
 * Inputs over 1 MB, nesting deeper than 32 levels, and YAML anchors and aliases
 * are rejected, so a hostile file costs little.
 *
 * Two points the format leaves open, fixed here:
 *   - train.augment "crop" means a random crop after zero-padding by 2 pixels
 *     when the input is at most 28 pixels high and wide, and by 4 otherwise
 *     (the usual settings for MNIST-sized and CIFAR-sized images).  The file
 *     names no padding, so emit writes "crop" for any nonzero train.crop and
 *     parsing gives back that derived padding.
 *   - train.warmup (steps of linear learning-rate warm-up, default 0) is an
 *     optional extension; emit writes it only when it is nonzero.
 */
#ifndef GRAFT_PROTO_H
#define GRAFT_PROTO_H

#include <stddef.h>

#include "nn/nn.h"
#include "search/search.h"

/* The limits of graft-arch/1 that a dataset must fit: image height and
 * width, and the smallest normalization std (a constant channel has 0). */
#define PROTO_ARCH_MAX_SIDE 1024
#define PROTO_ARCH_MIN_STD 1e-6

/* Parses len bytes of graft-arch/1 YAML (text need not be NUL-terminated)
 * into *out, starting from nn_arch_defaults.  Returns 0, GRAFT_EINVAL for bad
 * content or GRAFT_ENOMEM, with a message in err (which may be NULL); *out is
 * written only on success. */
int proto_arch_parse(const char *text, size_t len, nn_arch *out, char *err,
                     size_t errlen);

/* The same, and *labels (when labels is not NULL) gets the optional
 * `labels:` list, the class names (as many as classes, each 1..255 bytes),
 * NUL-separated and malloc'd, or NULL when the config has none. */
int proto_arch_parse_labels(const char *text, size_t len, nn_arch *out, char **labels,
                            char *err, size_t errlen);

/* Reads the file at path and parses it; messages start with "<path>: ".
 * A file that cannot be opened or read is GRAFT_EIO. */
int proto_arch_load(const char *path, nn_arch *out, char *err, size_t errlen);

/* Returns a as graft-arch/1 YAML in the layout of ARCH-FORMAT.md, malloc'd and
 * NUL-terminated (the caller frees it), or NULL when out of memory.  Floats are
 * written with the fewest digits that read back to the same value, so
 * proto_arch_parse(proto_arch_emit(a)) gives a again for any valid a whose
 * train.crop is 0 or the derived padding above, whose flags are 0 or 1 and whose
 * unused mean/std entries (past in_c) hold the defaults. */
char *proto_arch_emit(const nn_arch *a);
/* The same with `labels:` after classes: a->classes names, NUL-separated (as
 * nn_dataset's); NULL writes none. */
char *proto_arch_emit_labels(const nn_arch *a, const char *labels);
/* n NUL-separated names as a compact JSON array (malloc'd), or NULL when out
 * of memory; the one form class names take in configs, metadata and the store. */
char *proto_labels_json(const char *names, int n);

/* Writes a trained network as ONNX (opset 13, IR version 7) to path (whole
 * or not at all): one input "pixels", float32 N x C x H x W scaled to
 * [0, 1] (a's normalization is inside the model), one output "logits",
 * N x classes; batch norms folded into their convolutions; the graft branch
 * as it is.  w holds the weights by graft-arch/1's names (an export's file);
 * labels (NUL-separated, or NULL) go into the metadata as "labels", a JSON
 * array, beside "graft-arch", the config.  A weight missing or of another
 * shape is GRAFT_EINVAL with its name. */
int proto_onnx_write(const char *path, const nn_arch *a, const nn_weights *w,
                     const char *labels, char *err, size_t errlen);

/* Reads a whole text file of at most PROTO_YAML_MAX_INPUT bytes into a
 * malloc'd, NUL-terminated buffer (the caller frees it); *len excludes the
 * NUL.  GRAFT_EIO when it cannot be read, GRAFT_EINVAL when too large. */
int proto_read_file(const char *path, char **text, size_t *len, char *err,
                    size_t errlen);

/* ---- the job spec ---------------------------------------------------------- */

/* A search job as DESIGN.md's spec describes it, in YAML or JSON (a JSON
 * document is YAML too, so one parser reads both, with the same line and
 * column messages).  Every key but dataset has a default. */
#define PROTO_PATH_MAX 1024

enum proto_graft_source {
	PROTO_GRAFT_NONE, PROTO_GRAFT_TARGET, PROTO_GRAFT_SYNTHETIC, PROTO_GRAFT_RANDOM,
	PROTO_GRAFT_GLYPHS,   /* characters of the fonts Debian ships (nn/glyphs.c) */
	PROTO_GRAFT_ROTATIONS, PROTO_GRAFT_EXEMPLARS, /* photo patches (nn/patches.c) */
	PROTO_GRAFT_MIXTURE,  /* glyphs, primitives and rotations together */
	PROTO_GRAFT_UNIVERSAL, /* the graft shipped in nn/grafts/: no pretraining */
	PROTO_GRAFT_TEXTURES, /* procedural textures (nn/textures.c) */
	PROTO_GRAFT_STORED    /* a graft already in the store, named by sha256 */
};

/* What the final stage does with the graft of the architectures it
 * trains to the end: keep it frozen, fine-tune it with the rest, drop it
 * (the network without the branch), or try fine-tune and drop on the
 * winner and keep the better on validation. */
enum proto_final_graft {
	PROTO_FINAL_FROZEN, PROTO_FINAL_FINETUNE, PROTO_FINAL_DROP, PROTO_FINAL_BEST
};

typedef struct proto_job {
	char name[128];                    /* default "search" */
	struct {
		/* Either dir (a dataset directory: IDX files named as MNIST's or
		 * CIFAR-10 batches) or the IDX files one by one; test files are
		 * optional (the search ranks on the validation split). */
		char dir[PROTO_PATH_MAX];
		char train_images[PROTO_PATH_MAX], train_labels[PROTO_PATH_MAX];
		char test_images[PROTO_PATH_MAX], test_labels[PROTO_PATH_MAX];
		/* Each file may be an http(s) URL, given as a string or as
		 * {url: ..., sha256: ...}; sha256 ("" when not given) is checked
		 * after the fetch.  Other URL schemes are refused. */
		char train_images_sha256[65], train_labels_sha256[65];
		char test_images_sha256[65], test_labels_sha256[65];
		int validation;                /* default 10000, at most a sixth */
		/* format: folder: dir is an image folder (nn_folder_opts), its
		 * images made size_h x size_w (default 32 x 32) with channels
		 * 1 or 3 (default 3); skip_bad skips undecodable files. */
		int folder;
		int size_h, size_w, channels, skip_bad;
		/* Not in the spec: the graft-images/1 file the runtime decoded
		 * the folder into, which workers load ("" until then). */
		char prepared[PROTO_PATH_MAX];
	} dataset;
	enum search_kind strategy;         /* default evolution */
	int population, sample, candidates; /* 16, 4, 200 */
	uint64_t seed;                     /* 1 */
	search_space space;                /* search_space_defaults */
	nn_recipe train;                   /* steps 300, batch 128, lr 0.08, momentum 0.9,
	                                      weight_decay 5e-4, cosine; seed = the job's */
	search_fidelity fidelity;          /* search.fidelity {rungs, eta, slice}: off
	                                      (nrungs 0) by default; with it,
	                                      train.steps is the top rung */
	int lag;                           /* search.lag L (default 8): candidate k
	                                      and each promotion are decided on the
	                                      results of the decisions up to L
	                                      before it, taken in order, so the
	                                      search does not depend on the number
	                                      of workers or their timing; 0: on
	                                      every result as it comes */
	int warm_start;                    /* search.warm_start: a job whose best seed
	                                      this one's population (0: none) */
	double max_time_s, max_cpu_s;      /* search.max_time, max_cpu: the search
	                                      phase's budget in wall and CPU seconds
	                                      (0: none) */
	struct {
		int top;                       /* architectures trained to the end; 0:
		                                  no final stage (the default) */
		nn_recipe train;               /* final.steps 8000, batch 128, lr 0.1,
		                                  momentum, weight_decay as train's,
		                                  augment [crop, flip], cosine, warmup */
		enum proto_final_graft graft;  /* default best */
	} final;
	int inherit;                       /* train.inherit: children start from their
	                                      parent's weights (default true) */
	int inherit_steps;                 /* train.inherit_steps: their budget
	                                      (default steps / 2) */
	enum proto_graft_source graft;     /* default target */
	char graft_sha256[65];             /* PROTO_GRAFT_STORED */
	int graft_layers, graft_channels, graft_kernel, graft_steps; /* 2, 16, 3, 1500 */
	int workers;                       /* default 1 */
	int threads;                       /* per worker, default 1 */
	int time_limit;                    /* seconds per candidate, default 3600 */
	int retries;                       /* attempts after the first, default 2 */
} proto_job;

/* Whether s is an http:// or https:// URL (the only kinds fetched). */
int proto_is_url(const char *s);

/* Parses a job spec (YAML or JSON) into *out.  Unknown keys, wrong types and
 * out-of-range values are errors "line L, column C: path: ...".  Checks
 * only the spec itself: whether the dataset files exist is the caller's
 * business (the daemon checks before it accepts a job). */
int proto_job_parse(const char *text, size_t len, proto_job *out, char *err,
                    size_t errlen);

/* ---- the daemon's configuration ---------------------------------------------- */

/* graftd's config file (YAML), every key optional; see deploy/graftd.yaml. */
#define PROTO_MAX_ARGV 32
typedef struct proto_daemon_config {
	char data_dir[PROTO_PATH_MAX];      /* "" : the command line's or the default */
	char socket[PROTO_PATH_MAX];        /* "" : DATA_DIR/graftd.sock */
	int workers;                        /* 0 : one per online CPU */
	char worker_command[PROTO_MAX_ARGV][256]; /* argv prefix, e.g. [srun, -n1] */
	int worker_command_len;             /* 0 : run graftd's own `worker` directly */
	double heartbeat_s;                 /* default 120 */
	long memory_mb;                     /* per worker, 0 = no limit (default) */
	double drain_s;                     /* SIGTERM grace for running candidates, 60 */
	long fetch_max_mb;                  /* datasets by URL: largest file, 2048 */
	long fetch_timeout_s;               /* and time per file, 900 */
	char log_level[16];                 /* debug|info|warn|error, default info */
	char log_file[PROTO_PATH_MAX];      /* "" : stderr */
	char http[128];                     /* "HOST:PORT" to serve the API on TCP too;
	                                       "" : the socket only */
	char http_token[129];               /* required on that port when set (and
	                                       for any address but loopback) */
	/* Where workers run: on this machine (the default), or as Slurm job
	 * steps started with srun (inside the allocation graftd runs in, or as
	 * jobs of their own from a login node: srun does whichever applies). */
	struct {
		enum proto_executor_kind { PROTO_EXECUTOR_LOCAL, PROTO_EXECUTOR_SLURM } kind;
		char partition[128];            /* "" : the cluster's default */
		int cpus_per_worker;            /* srun --cpus-per-task and the worker's
		                                   threads; default 1 */
		char mem_per_worker[32];        /* srun --mem (e.g. 4G); "" : Slurm's */
		char time[32];                  /* srun --time (e.g. 2:00:00); "" : Slurm's */
		char extra_args[PROTO_MAX_ARGV][256]; /* more srun options */
		int extra_args_len;
		double pending_timeout_s;       /* no worker up this long: running jobs
		                                   fail, saying why (default 600) */
		char shared_dir[PROTO_PATH_MAX];/* a directory every node mounts at the
		                                   same path: weights, grafts and datasets
		                                   live there (required for slurm) */
	} executor;
} proto_daemon_config;

void proto_daemon_config_defaults(proto_daemon_config *c);
/* Parses a config file's text over the values already in *c. */
int proto_daemon_config_parse(const char *text, size_t len, proto_daemon_config *c,
                              char *err, size_t errlen);

/* ---- the worker protocol ------------------------------------------------------ */

/* A worker process reads task lines on stdin and writes message lines on
 * stdout, one JSON object per line (DESIGN.md, "Workers"):
 *
 *   in:  {"type":"task", "id", "data":{"dir"|"train_images","train_labels",
 *         "validation"}, "graft":{"path","sha256"}|null, "threads", "arch",
 *         "parent", "save", "report_every", "optim", "save_optim",
 *         "val_images", "test", "graft_trainable", "weights_in", "checkpoint",
 *         "checkpoint_every", "resume", "score_only"}   (data may name "test_images",
 *         "test_labels")
 *   out: {"type":"ready", "pid"}                  once, at the start
 *        {"type":"loading", "id", "what"}         heartbeats while loading
 *        {"type":"progress", "id", "step", "steps", "loss"}
 *        {"type":"result", "id", "val_accuracy", "val_loss", "train_loss",
 *         "steps", "wall_s", "cpu_s", "params", "flops", "inherited",
 *         "feature_cache", "images_per_s", "setup_cpu_s", "test_accuracy",
 *         "start_step"}   (the last two optional)
 *        {"type":"error", "id", "message", "io"}  the candidate failed; "io"
 *                                                 (optional, true) when the
 *                                                 cause is the worker's files
 *                                                 (a weights file it cannot
 *                                                 write), not the candidate
 *
 * Decoding validates everything: every key of a type is required but the
 * optional ones (a task's "validation", "threads", "report_every",
 * "parent", "save" and every key after them, which multi-fidelity and the
 * final stage use; ready's "pid"; error's "io"; result's "test_accuracy"
 * and "start_step"), types and ranges are checked (an accuracy is a
 * finite number in [0, 1]), and unknown keys are errors.  A line that does
 * not decode is GRAFT_EINVAL with the reason in err; nothing is filled. */
typedef struct proto_task {
	int64_t id;                  /* the evaluation's id */
	char *data_dir;              /* the dataset directory, or NULL and: */
	char *train_images, *train_labels;
	int validation;              /* images held out; -1: the default */
	char *graft_path;            /* NULL: no graft */
	char graft_sha256[65];
	int threads;                 /* >= 1 */
	char *arch;                  /* graft-arch/1 YAML */
	char *parent;                /* weights to start from, or NULL */
	char *save;                  /* where the trained weights go, or NULL */
	int report_every;            /* steps between progress lines, >= 1 */
	char *optim;                 /* optimizer state to go on from (with parent,
	                                the weights of the same run), or NULL */
	char *save_optim;            /* where the optimizer state goes, or NULL */
	int val_images;              /* score on the first val_images only; 0: all */
	/* The final stage's trainings and scoring: */
	char *test_images, *test_labels; /* data: the test split's IDX files (a data
	                                dir holds its own), or NULL */
	int test;                    /* also score the test split */
	int graft_trainable;         /* fine-tune the graft instead of freezing it */
	char *weights_in;            /* every tensor, the graft's too, from here */
	char *checkpoint;            /* write a checkpoint here every */
	int checkpoint_every;        /*   this many steps */
	char *resume;                /* go on from this checkpoint */
	int score_only;              /* no training: score weights_in */
} proto_task;

/* The strings of a task are malloc'd and owned by it. */
void proto_task_clear(proto_task *t);
int proto_task_decode(const char *line, size_t len, proto_task *out, char *err,
                      size_t errlen);
/* The task as one line ending in "\n", malloc'd; NULL when out of memory or
 * when a string is not UTF-8. */
char *proto_task_encode(const proto_task *t);

enum proto_wmsg_type {
	PROTO_WMSG_READY, PROTO_WMSG_LOADING, PROTO_WMSG_PROGRESS, PROTO_WMSG_RESULT,
	PROTO_WMSG_ERROR
};

typedef struct proto_result {
	double val_accuracy, val_loss, train_loss;
	int steps;
	double wall_s, cpu_s;
	int64_t params, flops;
	int inherited;               /* tensors taken from the parent's weights */
	int feature_cache;           /* the graft's features were precomputed */
	double images_per_s, setup_cpu_s;
	double test_accuracy;        /* NAN when the test split was not scored */
	int start_step;              /* a resumed training began here */
} proto_result;

typedef struct proto_wmsg {
	enum proto_wmsg_type type;
	int64_t id;                  /* the task's id; -1 for ready, or an error about
	                                a line that named no task */
	int pid;                     /* ready (0 when not given) */
	char what[64];               /* loading */
	int step, steps;             /* progress */
	double loss;                 /* progress: NAN when the worker wrote null */
	proto_result result;         /* result */
	char message[GRAFT_ERRLEN];  /* error */
	int io;                      /* error: caused by a file, not the candidate */
} proto_wmsg;

const char *proto_wmsg_type_name(enum proto_wmsg_type t);
int proto_wmsg_decode(const char *line, size_t len, proto_wmsg *out, char *err,
                      size_t errlen);
/* The message as one line ending in "\n", malloc'd; NULL when out of memory
 * or when a string is not UTF-8. */
char *proto_wmsg_encode(const proto_wmsg *m);

#endif
