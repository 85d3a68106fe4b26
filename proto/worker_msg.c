/*
 * worker_msg.c - the worker protocol: task lines in, message lines out (see
 * proto.h).  Both sides go through these functions, so a line one side
 * writes is a line the other accepts, and a line that does not validate is
 * refused here with the reason, before anything acts on it.  JSON stays in
 * this file: callers see only the structs.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

#define MAX_STRING (2 * 1024 * 1024)   /* an arch text is a few KB */

static const char *const type_names[] = {
	[PROTO_WMSG_READY] = "ready", [PROTO_WMSG_LOADING] = "loading",
	[PROTO_WMSG_PROGRESS] = "progress", [PROTO_WMSG_RESULT] = "result",
	[PROTO_WMSG_ERROR] = "error",
};

const char *proto_wmsg_type_name(enum proto_wmsg_type t)
{
	return t >= 0 && t <= PROTO_WMSG_ERROR ? type_names[t] : "?";
}

/* ---- decoding helpers: each fills err as "<what>: \"key\" ..." ------------- */

struct dec {
	json_t *o;
	const char *what;      /* "task", "result", ... */
	char *err;
	size_t errlen;
};

static int bad(struct dec *d, const char *key, const char *expected)
{
	json_t *v = json_object_get(d->o, key);
	if (!v)
		snprintf(d->err, d->errlen, "%s: \"%s\" is missing; expected %s", d->what, key,
		         expected);
	else
		snprintf(d->err, d->errlen, "%s: \"%s\" must be %s", d->what, key, expected);
	return GRAFT_EINVAL;
}

/* Refuses keys outside allowed (NULL-terminated): a line from another
 * version of the protocol is an error, not half understood. */
static int only_keys(struct dec *d, const char *const *allowed)
{
	const char *key;
	json_t *v;
	json_object_foreach(d->o, key, v) {
		int ok = 0;
		for (int i = 0; allowed[i] && !ok; i++)
			ok = !strcmp(key, allowed[i]);
		if (!ok) {
			snprintf(d->err, d->errlen, "%s: unknown key \"%.60s\"", d->what, key);
			return GRAFT_EINVAL;
		}
	}
	return 0;
}

static int get_int(struct dec *d, const char *key, int optional, long long lo, long long hi,
                   long long *out)
{
	json_t *v = json_object_get(d->o, key);
	char expected[96];
	snprintf(expected, sizeof(expected), "an integer from %lld to %lld", lo, hi);
	if (!v && optional)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return bad(d, key, expected);
	*out = json_integer_value(v);
	return 0;
}

static int get_num(struct dec *d, const char *key, double lo, double hi, double *out)
{
	json_t *v = json_object_get(d->o, key);
	char expected[96];
	snprintf(expected, sizeof(expected), "a finite number from %g to %g", lo, hi);
	if (!json_is_number(v))
		return bad(d, key, expected);
	double x = json_number_value(v);
	if (!isfinite(x) || x < lo || x > hi)
		return bad(d, key, expected);
	*out = x;
	return 0;
}

/* A string (NUL-free, at most MAX_STRING bytes) copied into *out; with
 * optional, a missing key or null leaves *out NULL. */
static int get_str(struct dec *d, const char *key, int optional, char **out)
{
	json_t *v = json_object_get(d->o, key);
	*out = NULL;
	if (optional && (!v || json_is_null(v)))
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > MAX_STRING ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return bad(d, key, optional ? "a non-empty string or null" : "a non-empty string");
	*out = strdup(json_string_value(v));
	if (!*out) {
		snprintf(d->err, d->errlen, "%s: out of memory", d->what);
		return GRAFT_ENOMEM;
	}
	return 0;
}

static int get_bool(struct dec *d, const char *key, int *out)
{
	json_t *v = json_object_get(d->o, key);
	if (!json_is_boolean(v))
		return bad(d, key, "true or false");
	*out = json_is_true(v);
	return 0;
}

/* An optional boolean: *out keeps its value when the key is absent. */
static int get_opt_bool(struct dec *d, const char *key, int *out)
{
	return json_object_get(d->o, key) ? get_bool(d, key, out) : 0;
}

static int is_hex64(const char *s)
{
	if (!s || strlen(s) != 64)
		return 0;
	for (int i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* Parses one line into a JSON object with a string "type". */
static json_t *load_line(const char *line, size_t len, const char **type, char *err,
                         size_t errlen)
{
	json_error_t je;
	json_t *o;

	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (!o) {
		snprintf(err, errlen, "not JSON: %s (column %d)", je.text, je.column);
		return NULL;
	}
	*type = json_string_value(json_object_get(o, "type"));
	if (!json_is_object(o) || !*type) {
		snprintf(err, errlen, "expected a JSON object with a string \"type\"");
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---- tasks ------------------------------------------------------------------ */

void proto_task_clear(proto_task *t)
{
	if (!t)
		return;
	free(t->data_dir);
	free(t->train_images);
	free(t->train_labels);
	free(t->graft_path);
	free(t->arch);
	free(t->parent);
	free(t->save);
	free(t->optim);
	free(t->save_optim);
	free(t->test_images);
	free(t->test_labels);
	free(t->weights_in);
	free(t->checkpoint);
	free(t->resume);
	memset(t, 0, sizeof(*t));
}

static int decode_data(json_t *data, proto_task *t, char *err, size_t errlen)
{
	static const char *const keys[] = { "dir", "train_images", "train_labels", "validation",
	                                    "test_images", "test_labels", NULL };
	struct dec d = { data, "task.data", err, errlen };
	long long v = -1;
	int rc;

	if (!json_is_object(data)) {
		snprintf(err, errlen, "task: \"data\" must be an object");
		return GRAFT_EINVAL;
	}
	if ((rc = only_keys(&d, keys)) || (rc = get_str(&d, "dir", 1, &t->data_dir)) ||
	    (rc = get_str(&d, "train_images", 1, &t->train_images)) ||
	    (rc = get_str(&d, "train_labels", 1, &t->train_labels)) ||
	    (rc = get_int(&d, "validation", 1, -1, INT32_MAX, &v)) ||
	    (rc = get_str(&d, "test_images", 1, &t->test_images)) ||
	    (rc = get_str(&d, "test_labels", 1, &t->test_labels)))
		return rc;
	if (!t->test_images != !t->test_labels) {
		snprintf(err, errlen, "task: \"data\" needs test_images and test_labels together");
		return GRAFT_EINVAL;
	}
	t->validation = (long)v;
	if (!t->data_dir == !(t->train_images && t->train_labels) ||
	    (t->data_dir && (t->train_images || t->train_labels))) {
		snprintf(err, errlen, "task: \"data\" needs either dir, or train_images and "
		         "train_labels");
		return GRAFT_EINVAL;
	}
	return 0;
}

static int decode_graft(json_t *g, proto_task *t, char *err, size_t errlen)
{
	static const char *const keys[] = { "path", "sha256", NULL };
	struct dec d = { g, "task.graft", err, errlen };
	char *sha = NULL;
	int rc;

	if (!g || json_is_null(g))
		return 0;
	if (!json_is_object(g)) {
		snprintf(err, errlen, "task: \"graft\" must be an object or null");
		return GRAFT_EINVAL;
	}
	if ((rc = only_keys(&d, keys)) || (rc = get_str(&d, "path", 0, &t->graft_path)) ||
	    (rc = get_str(&d, "sha256", 0, &sha)))
		return rc;
	if (!is_hex64(sha)) {
		free(sha);
		return bad(&d, "sha256", "64 lowercase hex digits");
	}
	memcpy(t->graft_sha256, sha, 65);
	free(sha);
	return 0;
}

int proto_task_decode(const char *line, size_t len, proto_task *out, char *err,
                      size_t errlen)
{
	static const char *const keys[] = { "type", "id", "data", "graft", "threads", "arch",
	                                    "parent", "save", "report_every", "optim",
	                                    "save_optim", "val_images", "test", "graft_trainable",
	                                    "weights_in", "checkpoint", "checkpoint_every",
	                                    "resume", "score_only", NULL };
	const char *type = NULL;
	proto_task t = { 0 };
	long long id = 0, threads = 1, every = 50, val_images = 0, ckpt_every = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	json_t *o = load_line(line, len, &type, err, errlen);
	if (!o)
		return GRAFT_EINVAL;
	struct dec d = { o, "task", err, errlen };
	if (strcmp(type, "task")) {
		snprintf(err, errlen, "expected a task, got a line of type \"%.40s\"", type);
		rc = GRAFT_EINVAL;
	} else if (!(rc = only_keys(&d, keys)) &&
	           !(rc = get_int(&d, "id", 0, 0, INT64_MAX, &id)) &&
	           !(rc = decode_data(json_object_get(o, "data"), &t, err, errlen)) &&
	           !(rc = decode_graft(json_object_get(o, "graft"), &t, err, errlen)) &&
	           !(rc = get_int(&d, "threads", 1, 1, 1024, &threads)) &&
	           !(rc = get_str(&d, "arch", 0, &t.arch)) &&
	           !(rc = get_str(&d, "parent", 1, &t.parent)) &&
	           !(rc = get_str(&d, "save", 1, &t.save)) &&
	           !(rc = get_int(&d, "report_every", 1, 1, 1 << 30, &every)) &&
	           !(rc = get_str(&d, "optim", 1, &t.optim)) &&
	           !(rc = get_str(&d, "save_optim", 1, &t.save_optim)) &&
	           !(rc = get_int(&d, "val_images", 1, 0, INT32_MAX, &val_images)) &&
	           !(rc = get_opt_bool(&d, "test", &t.test)) &&
	           !(rc = get_opt_bool(&d, "graft_trainable", &t.graft_trainable)) &&
	           !(rc = get_str(&d, "weights_in", 1, &t.weights_in)) &&
	           !(rc = get_str(&d, "checkpoint", 1, &t.checkpoint)) &&
	           !(rc = get_int(&d, "checkpoint_every", 1, 0, 1 << 30, &ckpt_every)) &&
	           !(rc = get_str(&d, "resume", 1, &t.resume)) &&
	           !(rc = get_opt_bool(&d, "score_only", &t.score_only))) {
		t.id = id;
		t.val_images = (int)val_images;
		t.checkpoint_every = (int)ckpt_every;
		t.threads = (int)threads;
		t.report_every = (int)every;
	}
	json_decref(o);
	if (rc) {
		proto_task_clear(&t);
		return rc;
	}
	*out = t;
	return 0;
}

/* json_string of s, or null. */
static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* Dumps o as one line (its NUL turned into the newline's place is the
 * caller's business: the text ends with "\n" and a NUL). */
static char *dump_line(json_t *o)
{
	if (!o)
		return NULL;
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		return NULL;
	size_t n = strlen(s);
	char *line = realloc(s, n + 2);
	if (!line) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	return line;
}

char *proto_task_encode(const proto_task *t)
{
	json_t *data = t->data_dir
	               ? json_pack("{s:s}", "dir", t->data_dir)
	               : json_pack("{s:s?, s:s?}", "train_images", t->train_images,
	                           "train_labels", t->train_labels);
	if (data && t->validation >= 0)
		json_object_set_new(data, "validation", json_integer(t->validation));
	if (data && t->test_images && t->test_labels) {
		json_object_set_new(data, "test_images", json_string(t->test_images));
		json_object_set_new(data, "test_labels", json_string(t->test_labels));
	}
	json_t *graft = t->graft_path ? json_pack("{s:s, s:s}", "path", t->graft_path, "sha256",
	                                          t->graft_sha256)
	                              : json_null();
	if (!data || !graft || !t->arch) {
		json_decref(data);
		json_decref(graft);
		return NULL;
	}
	json_t *o = json_pack("{s:s, s:I, s:o, s:o, s:i, s:s, s:o, s:o, s:i}", "type", "task",
	                      "id", (json_int_t)t->id, "data", data, "graft", graft,
	                      "threads", t->threads > 0 ? t->threads : 1, "arch", t->arch,
	                      "parent", str_or_null(t->parent), "save", str_or_null(t->save),
	                      "report_every", t->report_every > 0 ? t->report_every : 50);
	/* The keys of multi-fidelity and final training only when used, so a
	 * plain task reads as before. */
	if (o && t->optim)
		json_object_set_new(o, "optim", json_string(t->optim));
	if (o && t->save_optim)
		json_object_set_new(o, "save_optim", json_string(t->save_optim));
	if (o && t->val_images > 0)
		json_object_set_new(o, "val_images", json_integer(t->val_images));
	if (o && t->test)
		json_object_set_new(o, "test", json_true());
	if (o && t->graft_trainable)
		json_object_set_new(o, "graft_trainable", json_true());
	if (o && t->weights_in)
		json_object_set_new(o, "weights_in", json_string(t->weights_in));
	if (o && t->checkpoint) {
		json_object_set_new(o, "checkpoint", json_string(t->checkpoint));
		json_object_set_new(o, "checkpoint_every", json_integer(t->checkpoint_every));
	}
	if (o && t->resume)
		json_object_set_new(o, "resume", json_string(t->resume));
	if (o && t->score_only)
		json_object_set_new(o, "score_only", json_true());
	/* A string that is not UTF-8 makes json_string fail: no key then. */
	if (o && ((t->optim && !json_object_get(o, "optim")) ||
	          (t->save_optim && !json_object_get(o, "save_optim")) ||
	          (t->weights_in && !json_object_get(o, "weights_in")) ||
	          (t->checkpoint && !json_object_get(o, "checkpoint")) ||
	          (t->resume && !json_object_get(o, "resume")))) {
		json_decref(o);
		return NULL;
	}
	return dump_line(o);
}

/* ---- worker messages ------------------------------------------------------------ */

static int decode_result(struct dec *d, proto_result *r)
{
	static const char *const keys[] = {
		"type", "id", "val_accuracy", "val_loss", "train_loss", "steps", "wall_s", "cpu_s",
		"params", "flops", "inherited", "feature_cache", "images_per_s", "setup_cpu_s",
		"test_accuracy", "start_step", NULL
	};
	long long steps, params, flops, inherited;
	int rc;

	if ((rc = only_keys(d, keys)) ||
	    (rc = get_num(d, "val_accuracy", 0, 1, &r->val_accuracy)) ||
	    (rc = get_num(d, "val_loss", 0, 1e30, &r->val_loss)) ||
	    (rc = get_num(d, "train_loss", 0, 1e30, &r->train_loss)) ||
	    (rc = get_int(d, "steps", 0, 0, 1 << 30, &steps)) ||
	    (rc = get_num(d, "wall_s", 0, 1e12, &r->wall_s)) ||
	    (rc = get_num(d, "cpu_s", 0, 1e12, &r->cpu_s)) ||
	    (rc = get_int(d, "params", 0, 0, INT64_MAX, &params)) ||
	    (rc = get_int(d, "flops", 0, 0, INT64_MAX, &flops)) ||
	    (rc = get_int(d, "inherited", 0, 0, INT32_MAX, &inherited)) ||
	    (rc = get_bool(d, "feature_cache", &r->feature_cache)) ||
	    (rc = get_num(d, "images_per_s", 0, 1e15, &r->images_per_s)) ||
	    (rc = get_num(d, "setup_cpu_s", 0, 1e12, &r->setup_cpu_s)))
		return rc;
	long long start = 0;
	r->test_accuracy = NAN;
	if ((json_object_get(d->o, "test_accuracy") &&
	     (rc = get_num(d, "test_accuracy", 0, 1, &r->test_accuracy))) ||
	    (rc = get_int(d, "start_step", 1, 0, 1 << 30, &start)))
		return rc;
	r->start_step = (int)start;
	r->steps = (int)steps;
	r->params = params;
	r->flops = flops;
	r->inherited = (int)inherited;
	return 0;
}

static int decode_fixed(struct dec *d, const char *key, char *out, size_t size)
{
	char *s;
	int rc = get_str(d, key, 0, &s);
	if (rc)
		return rc;
	/* A longer string is cut, at a character's start: cut inside a UTF-8
	 * sequence it would no longer be text, and encoding it again would fail
	 * (found by fuzzing). */
	size_t n = strlen(s);
	if (n >= size) {
		n = size - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(out, s, n);
	out[n] = '\0';
	free(s);
	return 0;
}

int proto_wmsg_decode(const char *line, size_t len, proto_wmsg *out, char *err,
                      size_t errlen)
{
	static const char *const ready_keys[] = { "type", "pid", NULL };
	static const char *const loading_keys[] = { "type", "id", "what", NULL };
	static const char *const progress_keys[] = { "type", "id", "step", "steps", "loss", NULL };
	static const char *const error_keys[] = { "type", "id", "message", "io", NULL };
	const char *type = NULL;
	proto_wmsg m = { .id = -1 };
	long long id = -1, pid = 0, step = 0, steps = 0;
	int rc = GRAFT_EINVAL;

	memset(out, 0, sizeof(*out));
	json_t *o = load_line(line, len, &type, err, errlen);
	if (!o)
		return GRAFT_EINVAL;
	struct dec d = { o, type, err, errlen };
	int t = -1;
	for (int i = 0; i <= PROTO_WMSG_ERROR; i++)
		if (!strcmp(type, type_names[i]))
			t = i;
	if (t < 0) {
		snprintf(err, errlen, "unknown message type \"%.40s\"", type);
		goto out;
	}
	m.type = (enum proto_wmsg_type)t;
	if (m.type == PROTO_WMSG_READY) {
		if ((rc = only_keys(&d, ready_keys)) ||
		    (rc = get_int(&d, "pid", 1, 0, INT32_MAX, &pid)))
			goto out;
		m.pid = (int)pid;
		goto out;
	}
	/* Every other message is about a task: -1 only for an error about a
	 * line that named none. */
	if ((rc = get_int(&d, "id", 0, m.type == PROTO_WMSG_ERROR ? -1 : 0, INT64_MAX, &id)))
		goto out;
	m.id = id;
	switch (m.type) {
	case PROTO_WMSG_LOADING:
		if (!(rc = only_keys(&d, loading_keys)))
			rc = decode_fixed(&d, "what", m.what, sizeof(m.what));
		break;
	case PROTO_WMSG_PROGRESS: {
		json_t *loss = json_object_get(o, "loss");
		if ((rc = only_keys(&d, progress_keys)) ||
		    (rc = get_int(&d, "step", 0, 0, 1 << 30, &step)) ||
		    (rc = get_int(&d, "steps", 0, 1, 1 << 30, &steps)))
			break;
		if (json_is_null(loss)) {
			m.loss = NAN;  /* the worker writes a non-finite loss as null */
		} else if ((rc = get_num(&d, "loss", -1e30, 1e30, &m.loss))) {
			break;
		}
		m.step = (int)step;
		m.steps = (int)steps;
		break;
	}
	case PROTO_WMSG_RESULT:
		rc = decode_result(&d, &m.result);
		break;
	case PROTO_WMSG_ERROR:
		if (!(rc = only_keys(&d, error_keys)) &&
		    !(rc = decode_fixed(&d, "message", m.message, sizeof(m.message))) &&
		    json_object_get(o, "io"))
			rc = get_bool(&d, "io", &m.io);
		break;
	default:
		break;
	}
out:
	json_decref(o);
	if (!rc)
		*out = m;
	return rc;
}

/* A JSON number for a double, null when it is not finite. */
static json_t *number(double x)
{
	return isfinite(x) ? json_real(x) : json_null();
}

char *proto_wmsg_encode(const proto_wmsg *m)
{
	const proto_result *r = &m->result;
	json_t *o = NULL;

	switch (m->type) {
	case PROTO_WMSG_READY:
		o = json_pack("{s:s, s:i}", "type", "ready", "pid", m->pid);
		break;
	case PROTO_WMSG_LOADING:
		o = json_pack("{s:s, s:I, s:s}", "type", "loading", "id", (json_int_t)m->id, "what",
		              m->what);
		break;
	case PROTO_WMSG_PROGRESS:
		o = json_pack("{s:s, s:I, s:i, s:i, s:o}", "type", "progress", "id",
		              (json_int_t)m->id, "step", m->step, "steps", m->steps, "loss",
		              number(m->loss));
		break;
	case PROTO_WMSG_RESULT:
		o = json_pack("{s:s, s:I, s:o, s:o, s:o, s:i, s:o, s:o, s:I, s:I, s:i, s:b, s:o, s:o}",
		              "type", "result", "id", (json_int_t)m->id, "val_accuracy",
		              number(r->val_accuracy), "val_loss", number(r->val_loss), "train_loss",
		              number(r->train_loss), "steps", r->steps, "wall_s", number(r->wall_s),
		              "cpu_s", number(r->cpu_s), "params", (json_int_t)r->params, "flops",
		              (json_int_t)r->flops, "inherited", r->inherited, "feature_cache",
		              r->feature_cache, "images_per_s", number(r->images_per_s),
		              "setup_cpu_s", number(r->setup_cpu_s));
		if (o && !isnan(r->test_accuracy))
			json_object_set_new(o, "test_accuracy", number(r->test_accuracy));
		if (o && r->start_step > 0)
			json_object_set_new(o, "start_step", json_integer(r->start_step));
		break;
	case PROTO_WMSG_ERROR:
		o = json_pack("{s:s, s:I, s:s}", "type", "error", "id", (json_int_t)m->id, "message",
		              m->message[0] ? m->message : "unknown error");
		if (o && m->io)
			json_object_set_new(o, "io", json_true());
		break;
	}
	return dump_line(o);
}
