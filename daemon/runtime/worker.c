/*
 * worker.c - the worker process: evaluates the tasks it is sent (the worker
 * protocol of proto.h) and answers on stdout.  It lives for many
 * candidates, keeping the last dataset, graft and graft features loaded, so
 * a job's workers load them once.  End of input ends it (exit 0); a line
 * that is not a valid task is answered with an error of id -1, and it goes
 * on.  Being plain stdio, the same worker runs under a cluster launcher
 * (srun ...) unchanged.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "daemon/runtime/runtime.h"
#include "proto/proto.h"
#include "search/search.h"

#define MAX_LINE (4 * 1024 * 1024)

/* What stays loaded between tasks: the split of the last data description,
 * and the graft features of the last (data, graft) pair. */
struct worker {
	char *data_key;            /* the task's data, as text */
	nn_dataset train, val;
	nn_dataset test;           /* loaded when a task asks for it (n 0: not) */
	char feats_graft[65];      /* sha of the graft the features are of */
	rt_features feats;         /* mapped from the file all workers share */
	int64_t task;              /* the task in hand, for progress lines */
};

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void emit(const proto_wmsg *m)
{
	char *s = proto_wmsg_encode(m);
	if (!s) { /* a string that is not UTF-8: say so rather than go silent */
		proto_wmsg e = { .type = PROTO_WMSG_ERROR, .id = m->id };
		snprintf(e.message, sizeof(e.message), "the worker could not encode its %s "
		         "message", proto_wmsg_type_name(m->type));
		s = proto_wmsg_encode(&e);
	}
	if (s) {
		fputs(s, stdout);
		fflush(stdout);
		free(s);
	}
}

/* io: the failure is a file's (GRAFT_EIO: the weights cannot be written,
 * the data cannot be read), not the candidate's. */
static void emit_error(int64_t id, const char *message, int io)
{
	proto_wmsg m = { .type = PROTO_WMSG_ERROR, .id = id, .io = io };
	snprintf(m.message, sizeof(m.message), "%s", message);
	emit(&m);
}

static void emit_loading(int64_t id, const char *what)
{
	proto_wmsg m = { .type = PROTO_WMSG_LOADING, .id = id };
	snprintf(m.what, sizeof(m.what), "%s", what);
	emit(&m);
}

static void drop_features(struct worker *w)
{
	rt_features_close(&w->feats);
	w->feats_graft[0] = '\0';
}

/* Loads the task's data unless it is what is loaded already. */
static int load_data(struct worker *w, const proto_task *t, char *err, size_t errlen)
{
	char *key = NULL;
	if (asprintf(&key, "%s\n%s\n%s\n%d", t->data_dir ? t->data_dir : "",
	             t->train_images ? t->train_images : "", t->train_labels ? t->train_labels : "",
	             t->validation) < 0)
		return GRAFT_ENOMEM;
	if (w->data_key && !strcmp(key, w->data_key)) {
		free(key);
		return 0;
	}
	rt_data_src src = { .dir = t->data_dir, .train_images = t->train_images,
	                 .train_labels = t->train_labels, .validation = t->validation };
	emit_loading(w->task, "dataset");
	free(w->data_key);
	w->data_key = NULL;
	nn_dataset_free(&w->train);
	nn_dataset_free(&w->val);
	nn_dataset_free(&w->test);
	drop_features(w);
	int rc = rt_data_load_split(&src, &w->train, &w->val, err, errlen);
	if (rc) {
		free(key);
		return rc;
	}
	w->data_key = key;
	return 0;
}

/* Loads the test split of the task's data (once per data). */
static int load_test(struct worker *w, const proto_task *t, char *err, size_t errlen)
{
	if (w->test.n > 0)
		return 0;
	emit_loading(w->task, "test split");
	if (t->data_dir)
		return nn_dataset_load_dir(&w->test, t->data_dir, 1, err, errlen);
	if (!t->test_images) {
		snprintf(err, errlen, "task: \"test\" needs the data's test_images and test_labels");
		return GRAFT_EINVAL;
	}
	return nn_idx_load(&w->test, t->test_images, t->test_labels, err, errlen);
}

/* Maps the graft's features of every image, computed once per (data,
 * graft) by whichever worker needs them first, into the directory
 * "features" beside the graft file. */
static int load_features(struct worker *w, const nn_arch *a, const char *path,
                         const char *sha, char *err, size_t errlen)
{
	if (!strcmp(w->feats_graft, sha) && w->feats.map)
		return 0;
	drop_features(w);
	emit_loading(w->task, "graft features");
	char dir[4200];
	const char *slash = strrchr(path, '/');
	snprintf(dir, sizeof(dir), "%.*s/features", slash ? (int)(slash - path) : 1,
	         slash ? path : ".");
	int rc = rt_features_open(&w->feats, dir, w->data_key, a, path, sha, &w->train, &w->val,
	                          err, errlen);
	if (rc)
		return rc;
	snprintf(w->feats_graft, sizeof(w->feats_graft), "%s", sha);
	return 0;
}

static void on_progress(const nn_progress *p, void *ctx)
{
	struct worker *w = ctx;
	proto_wmsg m = { .type = PROTO_WMSG_PROGRESS, .id = w->task, .step = p->step,
	                 .steps = p->steps, .loss = p->loss };
	emit(&m);
}

static void run_task(struct worker *w, const proto_task *t)
{
	char err[GRAFT_ERRLEN] = "";
	nn_weights parent = { 0 };
	int have_parent = 0, rc;
	nn_arch a;

	double setup0 = cpu_now();
	if ((rc = proto_arch_parse(t->arch, strlen(t->arch), &a, err, sizeof(err))) ||
	    (rc = load_data(w, t, err, sizeof(err))))
		goto fail;
	nn_set_threads(t->threads);
	a.graft_trainable = t->graft_trainable;
	if (t->score_only)
		a.train.steps = 0;
	if (t->test && (rc = load_test(w, t, err, sizeof(err))))
		goto fail;
	if (a.graft_nlayers > 0 && !t->graft_path) {
		snprintf(err, sizeof(err), "task: the architecture has a graft; \"graft\" needs "
		         "path and sha256");
		goto fail;
	}
	/* The features of a frozen graft on images as they are: not of a graft
	 * being fine-tuned, nor of augmented images. */
	int cache = a.graft_nlayers > 0 && !a.graft_trainable && !a.train.crop && !a.train.flip;
	if (cache && (rc = load_features(w, &a, t->graft_path, t->graft_sha256, err, sizeof(err))))
		goto fail;
	double setup_cpu_s = cpu_now() - setup0;
	if (t->parent) {
		rc = nn_safetensors_read(t->parent, &parent, err, sizeof(err));
		if (rc)
			goto fail;
		have_parent = 1;
	}
	search_eval_in in = { .arch = &a, .train = &w->train, .val = &w->val,
	                      .graft_path = t->graft_path,
	                      .graft_sha = t->graft_path ? t->graft_sha256 : NULL,
	                      .train_feats = cache ? w->feats.train : NULL,
	                      .val_feats = cache ? w->feats.val : NULL,
	                      .parent = have_parent ? &parent : NULL, .save_path = t->save,
	                      .optim_in = t->optim, .optim_save = t->save_optim,
	                      .val_images = t->val_images, .weights_in = t->weights_in,
	                      .checkpoint = t->checkpoint, .checkpoint_every = t->checkpoint_every,
	                      .resume = t->resume, .test = t->test ? &w->test : NULL,
	                      .progress = on_progress, .ctx = w,
	                      .report_every = t->report_every };
	search_eval_out out;
	rc = search_evaluate(&in, &out, err, sizeof(err));
	if (have_parent)
		nn_weights_free(&parent);
	if (rc)
		goto fail;
	if (!isfinite(out.train_loss) || !isfinite(out.val_loss) || !isfinite(out.val_accuracy)) {
		snprintf(err, sizeof(err), "training diverged: the loss is not finite (try a "
		         "smaller learning rate)");
		goto fail;
	}
	proto_wmsg m = { .type = PROTO_WMSG_RESULT, .id = w->task };
	m.result = (proto_result){
		.val_accuracy = out.val_accuracy, .val_loss = out.val_loss,
		.train_loss = out.train_loss, .steps = out.steps, .wall_s = out.wall_s,
		.cpu_s = out.cpu_s, .params = out.params, .flops = out.flops,
		.inherited = out.inherited, .feature_cache = out.feature_cache,
		.images_per_s = out.wall_s > 0 ? (double)out.steps * a.train.batch / out.wall_s : 0,
		.setup_cpu_s = setup_cpu_s, .test_accuracy = out.test_accuracy,
		.start_step = out.start_step,
	};
	emit(&m);
	return;
fail:
	emit_error(w->task, *err ? err : graft_strerror(rc), rc == GRAFT_EIO);
}

/* A worker is a helper of the process that started it: it trains at a
 * lower CPU priority, so that graftd answers quickly while workers hold
 * every core, and it dies with its parent, so that a graftd killed with
 * SIGKILL leaves no orphan training for nobody. */
static void become_helper(void)
{
	pid_t parent = getppid();
	if (setpriority(PRIO_PROCESS, 0, 10) != 0)
		(void)0; /* a worker at normal priority still works */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent) /* the parent died before the prctl */
		_exit(0);
}

int rt_worker_main(int argc, char **argv)
{
	struct worker w = { 0 };
	char *line = NULL, err[GRAFT_ERRLEN];
	size_t cap = 0;
	ssize_t len;

	(void)argc;
	(void)argv;
	become_helper();
	emit(&(proto_wmsg){ .type = PROTO_WMSG_READY, .id = -1, .pid = (int)getpid() });
	while ((len = getline(&line, &cap, stdin)) > 0) {
		proto_task t;
		if (len > MAX_LINE) {
			emit_error(-1, "task line too long", 0);
			continue;
		}
		if (proto_task_decode(line, (size_t)len, &t, err, sizeof(err))) {
			emit_error(-1, err, 0);
			continue;
		}
		w.task = t.id;
		run_task(&w, &t);
		proto_task_clear(&t);
	}
	free(line);
	free(w.data_key);
	drop_features(&w);
	nn_dataset_free(&w.train);
	nn_dataset_free(&w.val);
	nn_dataset_free(&w.test);
	return 0;
}
