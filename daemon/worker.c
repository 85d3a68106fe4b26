/*
 * worker.c - the worker process (see worker.h for the protocol).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/data.h"
#include "daemon/worker.h"
#include "proto/proto.h"
#include "search/search.h"

#define MAX_LINE (4 * 1024 * 1024)

/* What stays loaded between tasks: the split of the last data description,
 * and the graft features of the last (data, graft) pair. */
struct worker {
	char *data_key;            /* compact JSON of the task's "data" */
	nn_dataset train, val;
	char feats_graft[65];      /* sha of the graft the features are of */
	float *train_feats, *val_feats;
	int64_t task;              /* the task in hand, for progress lines */
};

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void emit(json_t *msg)
{
	if (!msg) /* json_pack refused a value: say so rather than go silent */
		msg = json_pack("{s:s, s:I, s:s}", "type", "error", "id", (json_int_t)-1,
		                "message", "the worker could not encode its answer");
	char *s = json_dumps(msg, JSON_COMPACT);
	if (s) {
		fputs(s, stdout);
		fputc('\n', stdout);
		fflush(stdout);
		free(s);
	}
	json_decref(msg);
}

/* A number for JSON, which has no NaN or infinity: those become null. */
static json_t *number(double x)
{
	return isfinite(x) ? json_real(x) : json_null();
}

static void emit_error(int64_t id, const char *message)
{
	emit(json_pack("{s:s, s:I, s:s}", "type", "error", "id", (json_int_t)id,
	               "message", message));
}

static void drop_features(struct worker *w)
{
	free(w->train_feats);
	free(w->val_feats);
	w->train_feats = w->val_feats = NULL;
	w->feats_graft[0] = '\0';
}

static const char *str_or_null(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Loads the task's data unless it is what is loaded already. */
static int load_data(struct worker *w, json_t *data, char *err, size_t errlen)
{
	char *key = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
	if (!key) {
		snprintf(err, errlen, "task: \"data\" must be an object");
		return GRAFT_EINVAL;
	}
	if (w->data_key && !strcmp(key, w->data_key)) {
		free(key);
		return 0;
	}
	json_t *v = json_object_get(data, "validation");
	data_src src = { .dir = str_or_null(data, "dir"),
	                 .train_images = str_or_null(data, "train_images"),
	                 .train_labels = str_or_null(data, "train_labels"),
	                 .validation = json_is_integer(v) ? (long)json_integer_value(v) : -1 };
	if (!src.dir && !(src.train_images && src.train_labels)) {
		free(key);
		snprintf(err, errlen, "task: \"data\" needs dir, or train_images and train_labels");
		return GRAFT_EINVAL;
	}
	emit(json_pack("{s:s, s:I, s:s}", "type", "loading", "id", (json_int_t)w->task,
	               "what", "dataset"));
	free(w->data_key);
	w->data_key = NULL;
	nn_dataset_free(&w->train);
	nn_dataset_free(&w->val);
	drop_features(w);
	int rc = data_load_split(&src, &w->train, &w->val, err, errlen);
	if (rc) {
		free(key);
		return rc;
	}
	w->data_key = key;
	return 0;
}

/* Computes the graft's features of every image once per (data, graft). */
static int load_features(struct worker *w, const nn_arch *a, const char *path,
                         const char *sha, char *err, size_t errlen)
{
	if (!strcmp(w->feats_graft, sha) && w->train_feats)
		return 0;
	drop_features(w);
	emit(json_pack("{s:s, s:I, s:s}", "type", "loading", "id", (json_int_t)w->task,
	               "what", "graft features"));
	nn_net *net = NULL;
	int rc = nn_net_from_arch(&net, a, a->train.batch, 0, err, errlen);
	if (!rc)
		rc = nn_graft_load(net, path, sha, (char[65]){ 0 }, err, errlen);
	if (!rc)
		rc = nn_graft_features(net, &w->train, a->mean, a->std, &w->train_feats);
	if (!rc)
		rc = nn_graft_features(net, &w->val, a->mean, a->std, &w->val_feats);
	nn_net_free(net);
	if (rc) {
		if (!*err)
			snprintf(err, errlen, "graft features: %s", graft_strerror(rc));
		drop_features(w);
		return rc;
	}
	snprintf(w->feats_graft, sizeof(w->feats_graft), "%s", sha);
	return 0;
}

static void on_progress(const nn_progress *p, void *ctx)
{
	struct worker *w = ctx;
	emit(json_pack("{s:s, s:I, s:i, s:i, s:o}", "type", "progress", "id",
	               (json_int_t)w->task, "step", p->step, "steps", p->steps, "loss",
	               number(p->loss)));
}

static void run_task(struct worker *w, json_t *t)
{
	char err[GRAFT_ERRLEN] = "";
	const char *yaml = str_or_null(t, "arch");
	json_t *graft = json_object_get(t, "graft"), *threads = json_object_get(t, "threads");
	json_t *every = json_object_get(t, "report_every");
	const char *parent_path = str_or_null(t, "parent"), *save = str_or_null(t, "save");
	const char *gpath = graft ? str_or_null(graft, "path") : NULL;
	const char *gsha = graft ? str_or_null(graft, "sha256") : NULL;
	nn_weights parent = { 0 };
	int have_parent = 0, rc;
	nn_arch a;

	if (!yaml) {
		emit_error(w->task, "task: \"arch\" (graft-arch/1 YAML text) is required");
		return;
	}
	double setup0 = cpu_now();
	if ((rc = proto_arch_parse(yaml, strlen(yaml), &a, err, sizeof(err))) ||
	    (rc = load_data(w, json_object_get(t, "data"), err, sizeof(err))))
		goto fail;
	nn_set_threads(json_is_integer(threads) ? (int)json_integer_value(threads) : 1);
	if (a.graft_nlayers > 0 && !(gpath && gsha)) {
		snprintf(err, sizeof(err), "task: the architecture has a graft; \"graft\" needs "
		         "path and sha256");
		goto fail;
	}
	int cache = a.graft_nlayers > 0 && !a.train.crop && !a.train.flip;
	if (cache && (rc = load_features(w, &a, gpath, gsha, err, sizeof(err))))
		goto fail;
	double setup_cpu_s = cpu_now() - setup0;
	if (parent_path) {
		rc = nn_safetensors_read(parent_path, &parent, err, sizeof(err));
		if (rc)
			goto fail;
		have_parent = 1;
	}
	search_eval_in in = { .arch = &a, .train = &w->train, .val = &w->val,
	                      .graft_path = gpath, .graft_sha = gsha,
	                      .train_feats = cache ? w->train_feats : NULL,
	                      .val_feats = cache ? w->val_feats : NULL,
	                      .parent = have_parent ? &parent : NULL, .save_path = save,
	                      .progress = on_progress, .ctx = w,
	                      .report_every = json_is_integer(every)
	                                      ? (int)json_integer_value(every) : 50 };
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
	emit(json_pack("{s:s, s:I, s:f, s:f, s:f, s:i, s:f, s:f, s:I, s:I, s:i, s:b, s:f, s:f}",
	               "type", "result", "id", (json_int_t)w->task, "val_accuracy",
	               out.val_accuracy, "val_loss", out.val_loss, "train_loss", out.train_loss,
	               "steps", out.steps, "wall_s", out.wall_s, "cpu_s", out.cpu_s,
	               "params", (json_int_t)out.params, "flops", (json_int_t)out.flops,
	               "inherited", out.inherited, "feature_cache", out.feature_cache,
	               "images_per_s", out.wall_s > 0
	                               ? (double)out.steps * a.train.batch / out.wall_s : 0.0,
	               "setup_cpu_s", setup_cpu_s));
	return;
fail:
	emit_error(w->task, *err ? err : graft_strerror(rc));
}

int worker_main(int argc, char **argv)
{
	struct worker w = { 0 };
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	(void)argc;
	(void)argv;
	emit(json_pack("{s:s, s:i}", "type", "ready", "pid", (int)getpid()));
	while ((len = getline(&line, &cap, stdin)) > 0) {
		json_error_t je;
		if (len > MAX_LINE) {
			emit_error(-1, "line too long");
			continue;
		}
		json_t *t = json_loadb(line, (size_t)len, 0, &je);
		json_t *id = t ? json_object_get(t, "id") : NULL;
		if (!t || !json_is_object(t) || !json_is_integer(id) ||
		    strcmp(json_string_value(json_object_get(t, "type")) ?: "", "task")) {
			char msg[300];
			snprintf(msg, sizeof(msg), "expected a task object with an integer id%s%s",
			         t ? "" : ": ", t ? "" : je.text);
			emit_error(-1, msg);
			json_decref(t);
			continue;
		}
		w.task = json_integer_value(id);
		run_task(&w, t);
		json_decref(t);
	}
	free(line);
	free(w.data_key);
	drop_features(&w);
	nn_dataset_free(&w.train);
	nn_dataset_free(&w.val);
	return 0;
}
