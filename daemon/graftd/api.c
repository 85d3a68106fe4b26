/*
 * api.c - graftd's HTTP API (see api.h and DESIGN.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "daemon/graftd/graftd.h"
#include "proto/proto.h"


static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void reply_json(gd_conn *c, int status, json_t *o)
{
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!text) {
		gd_server_reply_error(c, 500, "no_memory", "out of memory", NULL, 0, 0);
		return;
	}
	gd_server_reply(c, status, "application/json", text, strlen(text));
	free(text);
}

static void not_found(gd_conn *c, const char *what)
{
	gd_server_reply_error(c, 404, "not_found", what, NULL, 0, 0);
}

/* A positive decimal id of at most 18 digits, the whole segment. */
static int parse_id(const char *s, size_t n, int64_t *id)
{
	if (n == 0 || n > 18)
		return GRAFT_EINVAL;
	int64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return GRAFT_EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*id = v;
	return v > 0 ? 0 : -1;
}

/* ---- jobs ----------------------------------------------------------------------- */

static void submitted(const gd_sched_answer *a, void *ctx)
{
	gd_conn *c = ctx;
	if (a->status == 201) {
		reply_json(c, 201, json_pack("{s:I}", "id", (json_int_t)a->id));
		return;
	}
	gd_server_reply_error(c, a->status, a->code, a->message, a->field, a->line, a->column);
}

static int spec_media_type(const char *ct)
{
	/* curl --data-binary sends form-urlencoded unless told otherwise; the body
	 * is parsed strictly as YAML/JSON either way. */
	static const char *const ok[] = { "application/yaml", "application/x-yaml", "text/yaml",
	                                  "text/x-yaml", "application/json", "text/plain",
	                                  "application/x-www-form-urlencoded", NULL };
	if (!*ct)
		return 1;
	for (int i = 0; ok[i]; i++) {
		size_t n = strlen(ok[i]);
		if (!strncasecmp(ct, ok[i], n) && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' '))
			return 1;
	}
	return 0;
}

static void post_job(gd_api *a, gd_conn *c, const proto_http_req *r)
{
	if (!spec_media_type(r->content_type)) {
		gd_server_reply_error(c, 415, "bad_media_type", "a job spec is application/yaml or "
		                      "application/json", NULL, 0, 0);
		return;
	}
	if (r->body_len == 0) {
		gd_server_reply_error(c, 400, "bad_spec", "the body is empty; send a job spec (YAML "
		                      "or JSON)", NULL, 0, 0);
		return;
	}
	gd_sched_submit(a->sched, r->body, r->body_len, submitted, c);
}

/* Query parameter key as an integer lo..hi into *out (left as it is when
 * absent); -1 after answering 400 when it is something else. */
static int query_int(gd_conn *c, const proto_http_req *r, const char *key, int lo, int hi,
                     int *out)
{
	char buf[32], *end, msg[96];
	if (!proto_http_query(r, key, buf, sizeof(buf)))
		return 0;
	long v = strtol(buf, &end, 10);
	if (!*buf || *end || v < lo || v > hi) {
		snprintf(msg, sizeof(msg), "%s must be an integer %d..%d", key, lo, hi);
		gd_server_reply_error(c, 400, "bad_parameter", msg, key, 0, 0);
		return GRAFT_EINVAL;
	}
	*out = (int)v;
	return 0;
}

/* The class names of job's dataset as a JSON array, or null when its data
 * names none (or on a store error: the names are informative). */
static json_t *job_classes(gd_api *a, int64_t job)
{
	store_job j;
	store_dataset d;

	if (store_job_get(a->st, job, &j))
		return json_null();
	store_job_clear(&j);
	if (!j.dataset_id || store_dataset_get(a->st, j.dataset_id, &d))
		return json_null();
	json_t *arr = d.classes ? json_loads(d.classes, 0, NULL) : NULL;
	free(d.classes);
	return arr ? arr : json_null();
}

/* The same NUL-separated (malloc'd), as nn_dataset holds them, or NULL. */
static char *job_labels(gd_api *a, int64_t job)
{
	json_t *arr = job_classes(a, job), *v;
	size_t len = 0, i;
	char *names = NULL;

	json_array_foreach(arr, i, v)
		len += strlen(json_string_value(v) ? json_string_value(v) : "") + 1;
	if (len && (names = malloc(len)) != NULL) {
		len = 0;
		json_array_foreach(arr, i, v) {
			const char *name = json_string_value(v) ? json_string_value(v) : "";
			memcpy(names + len, name, strlen(name) + 1);
			len += strlen(name) + 1;
		}
	}
	json_decref(arr);
	return names;
}

/* Rows of the leaderboard (and of the Pareto front), rank = place in rk. */
static json_t *ranks_json(const store_rank *rk, int n)
{
	json_t *list = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(list, json_pack("{s:i, s:I, s:i, s:i, s:f, s:I, s:I, s:f, s:b, "
		                                      "s:s, s:i}", "rank", i + 1, "candidate",
		                                      (json_int_t)rk[i].candidate_id, "seq", rk[i].seq,
		                                      "generation", rk[i].generation, "val_accuracy",
		                                      rk[i].val_accuracy, "params",
		                                      (json_int_t)rk[i].params, "flops",
		                                      (json_int_t)rk[i].flops, "cpu_s", rk[i].cpu_s,
		                                      "cached", rk[i].cached, "genome_sha256",
		                                      rk[i].genome_sha256, "rung", rk[i].rung));
	return list;
}

/* GET /v1/jobs/{id}/pareto?by=params|flops: the accuracy/cost front. */
static void pareto(gd_api *a, gd_conn *c, const proto_http_req *r, int64_t job)
{
	char by_s[16] = "params";
	enum store_sort by = STORE_SORT_PARAMS;
	store_rank *rk;
	int n;

	if (proto_http_query(r, "by", by_s, sizeof(by_s)) && strcmp(by_s, "params")) {
		if (strcmp(by_s, "flops")) {
			gd_server_reply_error(c, 400, "bad_parameter", "by must be params or flops", "by",
			                      0, 0);
			return;
		}
		by = STORE_SORT_FLOPS;
	}
	if (store_pareto(a->st, job, by, &rk, &n)) {
		gd_server_reply_error(c, 500, "store", store_errmsg(a->st), NULL, 0, 0);
		return;
	}
	json_t *list = ranks_json(rk, n);
	free(rk);
	reply_json(c, 200, json_pack("{s:I, s:s, s:o}", "job", (json_int_t)job, "by", by_s,
	                             "front", list));
}

/* GET /v1/jobs/{id}/costs?parts=N: the job's candidates in N slices by seq
 * (default 10), what each cost per candidate and what saved it. */
static void costs(gd_api *a, gd_conn *c, const proto_http_req *r, int64_t job)
{
	int parts = 10;
	store_cost *v;

	if (query_int(c, r, "parts", 1, 100, &parts))
		return;
	if (!(v = calloc((size_t)parts, sizeof(*v))) || store_cost_parts(a->st, job, parts, v)) {
		free(v);
		gd_server_reply_error(c, 500, "store", v ? store_errmsg(a->st) : "out of memory", NULL,
		                      0, 0);
		return;
	}
	json_t *list = json_array();
	for (int i = 0; i < parts && list; i++) {
		if (!v[i].candidates)
			continue;
		json_array_append_new(list, json_pack(
			"{s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:i, s:i, s:i, s:i, s:i, s:{s:f, s:f, s:f}}",
			"first_seq", v[i].first_seq, "last_seq", v[i].last_seq, "candidates",
			v[i].candidates, "scored", v[i].scored, "cpu_s", v[i].cpu_s, "cpu_per_candidate",
			v[i].cpu_per_candidate, "mean_steps", v[i].mean_steps, "cache_hits",
			v[i].cache_hits, "inherited", v[i].inherited, "feature_cache", v[i].feature_cache,
			"stopped_early", v[i].stopped_early, "failed_attempts", v[i].failed, "saved_cpu_s",
			"cache", v[i].saved_cache_s, "inheritance", v[i].saved_inherit_s,
			"early_stopping", v[i].saved_early_s));
	}
	free(v);
	reply_json(c, 200, json_pack("{s:I, s:o}", "job", (json_int_t)job, "parts", list));
}

/* GET /v1/jobs/{id}/lineage?candidate=ID: the chain from a random sample to
 * the candidate (default: the job's best), each with the mutation that made
 * it and what it gained on its parent. */
static void lineage(gd_api *a, gd_conn *c, const proto_http_req *r, int64_t job)
{
	char buf[32];
	int64_t id = 0;
	store_ancestor *v;
	int n;

	if (proto_http_query(r, "candidate", buf, sizeof(buf))) {
		if (parse_id(buf, strlen(buf), &id)) {
			gd_server_reply_error(c, 400, "bad_parameter", "candidate must be a candidate id "
			                      "(a positive integer)", "candidate", 0, 0);
			return;
		}
	} else {
		store_rank *best;
		int nb;
		if (store_leaderboard(a->st, job, STORE_SORT_ACCURACY, 1, &best, &nb)) {
			gd_server_reply_error(c, 500, "store", store_errmsg(a->st), NULL, 0, 0);
			return;
		}
		id = nb ? best[0].candidate_id : 0;
		free(best);
		if (!id) {
			reply_json(c, 200, json_pack("{s:I, s:n, s:[]}", "job", (json_int_t)job,
			                             "candidate", "lineage"));
			return;
		}
	}
	int rc = store_lineage(a->st, job, id, &v, &n);
	if (rc == STORE_NOTFOUND) {
		not_found(c, "the job has no such candidate");
		return;
	}
	if (rc) {
		gd_server_reply_error(c, 500, "store", store_errmsg(a->st), NULL, 0, 0);
		return;
	}
	json_t *list = json_array();
	for (int i = 0; i < n && list; i++) {
		json_t *o = json_pack("{s:I, s:i, s:i, s:s, s:i, s:I, s:I}", "candidate",
		                      (json_int_t)v[i].candidate_id, "seq", v[i].seq, "generation",
		                      v[i].generation, "mutation", v[i].mutation, "rung", v[i].rung,
		                      "params", (json_int_t)v[i].params, "flops",
		                      (json_int_t)v[i].flops);
		json_object_set_new(o, "parent_seq", v[i].parent_seq >= 0 ? json_integer(v[i].parent_seq)
		                                                          : json_null());
		json_object_set_new(o, "val_accuracy", v[i].scored ? json_real(v[i].val_accuracy)
		                                                   : json_null());
		json_object_set_new(o, "fitness", isnan(v[i].fitness) ? json_null()
		                                                      : json_real(v[i].fitness));
		/* The gain is measured where the search measured it: the score it
		 * was told, the parent's against the child's. */
		json_object_set_new(o, "gain", i > 0 && !isnan(v[i].fitness) && !isnan(v[i - 1].fitness)
		                               ? json_real(v[i].fitness - v[i - 1].fitness)
		                               : json_null());
		json_array_append_new(list, o);
	}
	free(v);
	reply_json(c, 200, json_pack("{s:I, s:I, s:o}", "job", (json_int_t)job, "candidate",
	                             (json_int_t)id, "lineage", list));
}

static void leaderboard(gd_api *a, gd_conn *c, const proto_http_req *r, int64_t job)
{
	char sort_s[32];
	int limit = 10;
	enum store_sort sort = STORE_SORT_ACCURACY;

	if (query_int(c, r, "limit", 1, 10000, &limit))
		return;
	if (proto_http_query(r, "sort", sort_s, sizeof(sort_s))) {
		if (!strcmp(sort_s, "params"))
			sort = STORE_SORT_PARAMS;
		else if (!strcmp(sort_s, "flops"))
			sort = STORE_SORT_FLOPS;
		else if (strcmp(sort_s, "accuracy")) {
			gd_server_reply_error(c, 400, "bad_parameter", "sort must be accuracy, params or "
			                      "flops", "sort", 0, 0);
			return;
		}
	}
	store_rank *rk;
	int n;
	if (store_leaderboard(a->st, job, sort, limit, &rk, &n)) {
		gd_server_reply_error(c, 500, "store", store_errmsg(a->st), NULL, 0, 0);
		return;
	}
	json_t *list = ranks_json(rk, n);
	free(rk);
	reply_json(c, 200, json_pack("{s:I, s:s, s:o, s:o}", "job", (json_int_t)job, "sort",
	                             sort == STORE_SORT_ACCURACY ? "accuracy"
	                             : sort == STORE_SORT_PARAMS ? "params" : "flops",
	                             "candidates", list, "classes", job_classes(a, job)));
}

/* Answers arch, of a model of job, as graft-arch/1 YAML with its class names. */
static void reply_arch(gd_api *a, gd_conn *c, const nn_arch *arch, int64_t job)
{
	char *labels = job_labels(a, job);
	char *yaml = proto_arch_emit_labels(arch, labels);

	free(labels);
	if (!yaml) {
		gd_server_reply_error(c, 500, "no_memory", "out of memory", NULL, 0, 0);
		return;
	}
	gd_server_reply(c, 200, "application/yaml", yaml, strlen(yaml));
	free(yaml);
}

/* A model as ONNX: made from its architecture and weights the first time it
 * is asked for, kept beside the weights (WEIGHTS.onnx), sent from there.
 * Made on the loop: milliseconds for the networks of graft's spaces. */
static void reply_onnx(gd_api *a, gd_conn *c, const char *arch_text, const char *weights,
                       int64_t job)
{
	char path[4200], err[GRAFT_ERRLEN];
	struct stat st;

	snprintf(path, sizeof(path), "%s.onnx", weights);
	if (stat(path, &st) != 0) {
		nn_arch arch;
		nn_weights w;
		if (proto_arch_parse(arch_text, strlen(arch_text), &arch, err, sizeof(err))) {
			gd_server_reply_error(c, 500, "store", "the stored architecture does not parse",
			                      NULL, 0, 0);
			return;
		}
		if (nn_safetensors_read(weights, &w, err, sizeof(err))) {
			gd_server_reply_error(c, 500, "weights", err, NULL, 0, 0);
			return;
		}
		char *labels = job_labels(a, job);
		int rc = proto_onnx_write(path, &arch, &w, labels, err, sizeof(err));
		free(labels);
		nn_weights_free(&w);
		if (rc) {
			gd_server_reply_error(c, 500, "onnx", err, NULL, 0, 0);
			return;
		}
	}
	gd_server_reply_file(c, 200, "application/octet-stream", path);
}

/* Answers a candidate's architecture as graft-arch/1 YAML, with the result of
 * the evaluation that scored it (the one the leaderboard ranks it by) when it
 * has one.  Both exports, a job's by rank and a candidate's by id, answer
 * through here, so the same candidate is the same YAML. */
static void export_candidate(gd_api *a, gd_conn *c, const store_candidate *cand)
{
	nn_arch arch;
	store_eval e;
	char err[GRAFT_ERRLEN];
	if (proto_arch_parse(cand->genome, strlen(cand->genome), &arch, err, sizeof(err))) {
		gd_server_reply_error(c, 500, "store", "the stored genome does not parse", NULL, 0, 0);
		return;
	}
	if (store_eval_of(a->st, cand->id, &e) == 0) {
		arch.has_result = 1;
		arch.result_val_accuracy = e.val_accuracy;
		arch.result_params = cand->params;
		arch.result_flops = cand->flops;
	}
	reply_arch(a, c, &arch, cand->job_id);
}

static void export(gd_api *a, gd_conn *c, const proto_http_req *r, int64_t job)
{
	int rank = 1;
	if (query_int(c, r, "rank", 1, 100000, &rank))
		return;
	store_rank *rk;
	int n;
	if (store_leaderboard(a->st, job, STORE_SORT_ACCURACY, rank, &rk, &n)) {
		gd_server_reply_error(c, 500, "store", store_errmsg(a->st), NULL, 0, 0);
		return;
	}
	int64_t id = n < rank ? 0 : rk[rank - 1].candidate_id;
	free(rk);
	store_candidate cand;
	if (!id)
		not_found(c, "the job has no candidate of that rank (yet)");
	else if (store_candidate_get(a->st, id, &cand))
		gd_server_reply_error(c, 500, "store", store_errmsg(a->st), NULL, 0, 0);
	else {
		export_candidate(a, c, &cand);
		free(cand.genome);
	}
}

/* ---- the final stage --------------------------------------------------------------- */

static json_t *real_or_null(double v)
{
	return isnan(v) ? json_null() : json_real(v);
}

json_t *gd_finals_json(store *st, int64_t job)
{
	store_final *f;
	int n;

	if (store_finals(st, job, &f, &n))
		return json_null();
	if (n == 0) {
		store_finals_free(f, n);
		return json_null();
	}
	json_t *list = json_array(), *winner = json_null();
	for (int i = 0; i < n && list; i++) {
		json_t *o = json_pack("{s:I, s:I, s:i, s:s, s:s, s:i, s:i, s:i, s:o, s:o, s:I, s:I, "
		                      "s:f, s:f, s:b, s:i}", "id", (json_int_t)f[i].id, "candidate",
		                      (json_int_t)f[i].candidate_id, "rank", f[i].rank, "graft",
		                      f[i].graft, "status", store_final_status_name(f[i].status),
		                      "attempts", f[i].attempts, "step", f[i].step, "steps",
		                      f[i].steps, "val_accuracy", real_or_null(f[i].val_accuracy),
		                      "test_accuracy", real_or_null(f[i].test_accuracy), "params",
		                      (json_int_t)f[i].params, "flops", (json_int_t)f[i].flops,
		                      "cpu_s", f[i].cpu_s, "wall_s", f[i].wall_s, "winner",
		                      f[i].winner, "resumed_from", f[i].resumed_from);
		if (o && f[i].error[0])
			json_object_set_new(o, "error", json_string(f[i].error));
		if (o && f[i].winner) {
			json_decref(winner);
			winner = json_incref(o);
		}
		json_array_append_new(list, o);
	}
	store_finals_free(f, n);
	return json_pack("{s:o, s:o}", "trainings", list ? list : json_array(), "winner", winner);
}

/* /v1/finals/{id}/export and /weights: a model of the final stage, its
 * architecture with the final recipe (YAML) and its trained weights. */
static void final_route(gd_api *a, gd_conn *c, const proto_http_req *r, const char *rest)
{
	const char *slash = strchr(rest, '/');
	store_final f;
	int64_t id;

	if (strcmp(r->method, "GET")) {
		gd_server_reply_error(c, 405, "bad_method", "use GET", NULL, 0, 0);
		return;
	}
	if (!slash || (strcmp(slash + 1, "export") && strcmp(slash + 1, "weights") &&
	               strcmp(slash + 1, "onnx"))) {
		not_found(c, "no such endpoint: /v1/finals/{id}/export, /weights or /onnx");
		return;
	}
	if (parse_id(rest, (size_t)(slash - rest), &id) || store_final_get(a->st, id, &f)) {
		not_found(c, "no such final training");
		return;
	}
	if (f.status != STORE_FINAL_DONE || !f.weights[0]) {
		not_found(c, "this final training has not finished");
	} else if (!strcmp(slash + 1, "weights")) {
		gd_server_reply_file(c, 200, "application/octet-stream", f.weights);
	} else if (!strcmp(slash + 1, "onnx")) {
		reply_onnx(a, c, f.arch, f.weights, f.job_id);
	} else {
		nn_arch arch;
		char err[GRAFT_ERRLEN];
		if (proto_arch_parse(f.arch, strlen(f.arch), &arch, err, sizeof(err))) {
			gd_server_reply_error(c, 500, "store", "the stored architecture does not parse",
			                      NULL, 0, 0);
		} else {
			arch.has_result = 1;
			arch.result_val_accuracy = f.val_accuracy;
			arch.result_params = f.params;
			arch.result_flops = f.flops;
			reply_arch(a, c, &arch, f.job_id);
		}
	}
	free(f.arch);
}

static void job_route(gd_api *a, gd_conn *c, const proto_http_req *r, const char *rest)
{
	const char *slash = strchr(rest, '/');
	size_t idlen = slash ? (size_t)(slash - rest) : strlen(rest);
	int64_t id;
	int get = !strcmp(r->method, "GET"), post = !strcmp(r->method, "POST");

	if (parse_id(rest, idlen, &id)) {
		not_found(c, "no such job (job ids are positive integers)");
		return;
	}
	const char *sub = slash ? slash + 1 : "";
	if (!*sub) {
		if (!get) {
			gd_server_reply_error(c, 405, "bad_method", "use GET on a job", NULL, 0, 0);
			return;
		}
		json_t *j = gd_sched_job_json(a->sched, id);
		if (!j)
			not_found(c, "no such job");
		else
			reply_json(c, 200, j);
		return;
	}
	if (!strcmp(sub, "cancel") || !strcmp(sub, "pause") || !strcmp(sub, "resume")) {
		if (!post) {
			gd_server_reply_error(c, 405, "bad_method", "use POST to cancel, pause or resume",
			                      NULL, 0, 0);
			return;
		}
		gd_sched_answer ans;
		gd_sched_control(a->sched, id, sub, &ans);
		if (ans.status != 200)
			gd_server_reply_error(c, ans.status, ans.code, ans.message, NULL, 0, 0);
		else
			reply_json(c, 200, gd_sched_job_json(a->sched, id));
		return;
	}
	if (strcmp(sub, "leaderboard") && strcmp(sub, "export") && strcmp(sub, "final") &&
	    strcmp(sub, "pareto") && strcmp(sub, "costs") && strcmp(sub, "lineage")) {
		not_found(c, "no such endpoint");
		return;
	}
	if (!get) {
		gd_server_reply_error(c, 405, "bad_method", "use GET", NULL, 0, 0);
		return;
	}
	store_job row;
	if (store_job_get(a->st, id, &row)) {
		not_found(c, "no such job");
		return;
	}
	store_job_clear(&row);
	if (!strcmp(sub, "leaderboard"))
		leaderboard(a, c, r, id);
	else if (!strcmp(sub, "pareto"))
		pareto(a, c, r, id);
	else if (!strcmp(sub, "costs"))
		costs(a, c, r, id);
	else if (!strcmp(sub, "lineage"))
		lineage(a, c, r, id);
	else if (!strcmp(sub, "final"))
		reply_json(c, 200, json_pack("{s:I, s:o}", "job", (json_int_t)id, "final",
		                             gd_finals_json(a->st, id)));
	else
		export(a, c, r, id);
}

/* ---- candidates, grafts ------------------------------------------------------------ */

/* An evaluation as the API shows it, with the loss curve its worker
 * reported (null when none was recorded). */
static json_t *eval_json(gd_api *a, const store_eval *e)
{
	static const char *const status[] = { "running", "done", "failed" };
	json_t *o = json_pack("{s:I, s:s, s:i, s:i, s:f, s:f, s:b, s:i, s:b, s:s, s:f}", "id",
	                      (json_int_t)e->id, "status", status[e->status], "attempt", e->attempt,
	                      "steps", e->steps, "cpu_s", e->cpu_s, "wall_s", e->wall_s, "cached",
	                      e->cached, "inherited", e->inherited, "feature_cache",
	                      e->feature_cache, "worker", e->worker, "started", e->started);
	if (e->status == STORE_EVAL_DONE) {
		json_object_set_new(o, "val_accuracy", json_real(e->val_accuracy));
		json_object_set_new(o, "val_loss", json_real(e->val_loss));
	}
	json_object_set_new(o, "rung", json_integer(e->rung));
	if (e->error[0])
		json_object_set_new(o, "error", json_string(e->error));
	char *curve = NULL;
	json_t *points = store_eval_curve(a->st, e->id, &curve) == 0 && curve
	                 ? json_loads(curve, 0, NULL) : NULL;
	free(curve);
	json_object_set_new(o, "curve", points ? points : json_null());
	return o;
}

static void candidate(gd_api *a, gd_conn *c, const proto_http_req *r, const char *rest)
{
	const char *slash = strchr(rest, '/');
	size_t idlen = slash ? (size_t)(slash - rest) : strlen(rest);
	int64_t id;
	store_candidate cand;

	if (strcmp(r->method, "GET")) {
		gd_server_reply_error(c, 405, "bad_method", "use GET", NULL, 0, 0);
		return;
	}
	if (parse_id(rest, idlen, &id) || store_candidate_get(a->st, id, &cand)) {
		not_found(c, "no such candidate");
		return;
	}
	const char *sub = slash ? slash + 1 : "";
	if (!strcmp(sub, "export")) {
		export_candidate(a, c, &cand);
		free(cand.genome);
		return;
	}
	if (!strcmp(sub, "weights")) {
		store_eval e;
		free(cand.genome);
		if (store_eval_of(a->st, id, &e) || !e.weights[0]) {
			not_found(c, "no trained weights are kept for this candidate");
			return;
		}
		gd_server_reply_file(c, 200, "application/octet-stream", e.weights);
		return;
	}
	if (!strcmp(sub, "onnx")) {
		store_eval e;
		if (store_eval_of(a->st, id, &e) || !e.weights[0])
			not_found(c, "no trained weights are kept for this candidate");
		else
			reply_onnx(a, c, cand.genome, e.weights, cand.job_id);
		free(cand.genome);
		return;
	}
	if (*sub) {
		free(cand.genome);
		not_found(c, "no such endpoint");
		return;
	}
	/* Lineage: the candidate's ancestors, the nearest first. */
	store_ancestor *up;
	int n;
	json_t *lineage = json_array(), *evals = json_array();
	int64_t parent_id = 0;
	if (store_lineage(a->st, cand.job_id, id, &up, &n) == 0) {
		for (int i = n - 2; i >= 0; i--)
			json_array_append_new(lineage, json_integer(up[i].candidate_id));
		parent_id = n > 1 ? up[n - 2].candidate_id : 0;
		free(up);
	}
	store_eval *ev;
	int ne;
	if (store_evals_of(a->st, id, &ev, &ne) == 0) {
		for (int i = 0; i < ne; i++)
			json_array_append_new(evals, eval_json(a, &ev[i]));
		free(ev);
	}
	json_t *o = json_pack("{s:I, s:I, s:i, s:i, s:s, s:s, s:s, s:I, s:I, s:o, s:o}", "id",
	                      (json_int_t)id, "job", (json_int_t)cand.job_id, "seq", cand.seq,
	                      "generation", cand.generation, "mutation", cand.mutation,
	                      "genome", cand.genome, "genome_sha256", cand.genome_sha256,
	                      "params", (json_int_t)cand.params, "flops", (json_int_t)cand.flops,
	                      "lineage", lineage, "evaluations", evals);
	json_object_set_new(o, "parent", parent_id ? json_integer(parent_id) : json_null());
	json_object_set_new(o, "val_accuracy", isnan(cand.fitness) ? json_null()
	                                                           : json_real(cand.fitness));
	free(cand.genome);
	reply_json(c, 200, o);
}

static void grafts(gd_api *a, gd_conn *c)
{
	store_graft *g;
	int n;
	if (store_graft_list(a->st, &g, &n)) {
		gd_server_reply_error(c, 500, "store", store_errmsg(a->st), NULL, 0, 0);
		return;
	}
	json_t *list = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(list, json_pack("{s:I, s:s, s:s, s:i, s:i, s:i, s:f}", "id",
		                                      (json_int_t)g[i].id, "sha256", g[i].sha256,
		                                      "source", g[i].source, "layers", g[i].layers,
		                                      "channels", g[i].channels, "pretrain_steps",
		                                      g[i].steps, "created", g[i].created));
	free(g);
	reply_json(c, 200, json_pack("{s:o}", "grafts", list));
}

/* ---- health and metrics --------------------------------------------------------------- */

static void health(gd_api *a, gd_conn *c)
{
	json_t *o = gd_sched_health_json(a->sched);
	json_object_set_new(o, "status", json_string("ok"));
	json_object_set_new(o, "version", json_string(a->version));
	json_object_set_new(o, "uptime_s", json_real(now_s() - a->started));
	const char *host = a->server ? gd_server_tcp_host(a->server) : NULL;
	json_object_set_new(o, "http", host ? json_pack("{s:s, s:i, s:b}", "host", host, "port",
	                                                gd_server_tcp_port(a->server), "token",
	                                                gd_server_tcp_token(a->server))
	                                    : json_null());
	reply_json(c, 200, o);
}

static void metrics(gd_api *a, gd_conn *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	gd_sched_metrics m;
	gd_server_stats ss;
	int by_state[STORE_JOB_NSTATES];

	if (!f) {
		gd_server_reply_error(c, 500, "no_memory", "out of memory", NULL, 0, 0);
		return;
	}
	gd_sched_get_metrics(a->sched, &m);
	gd_server_get_stats(a->server, &ss);
	gd_sched_job_counts(a->sched, by_state);
	fprintf(f, "# HELP graft_jobs Jobs in the store by state.\n# TYPE graft_jobs gauge\n");
	for (int s = 0; s < STORE_JOB_NSTATES; s++)
		fprintf(f, "graft_jobs{state=\"%s\"} %d\n", store_job_state_name(s), by_state[s]);
	fprintf(f, "# HELP graft_candidates_evaluated_total Candidates scored since start "
	        "(cache hits included).\n# TYPE graft_candidates_evaluated_total counter\n"
	        "graft_candidates_evaluated_total %ld\n", m.evaluated);
	fprintf(f, "# HELP graft_cache_hits_total Candidates answered from the store.\n"
	        "# TYPE graft_cache_hits_total counter\ngraft_cache_hits_total %ld\n",
	        m.cache_hits);
	fprintf(f, "# HELP graft_candidate_failures_total Failed attempts (errors, crashes, "
	        "timeouts).\n# TYPE graft_candidate_failures_total counter\n"
	        "graft_candidate_failures_total %ld\n", m.failures);
	fprintf(f, "# HELP graft_worker_restarts_total Workers started to replace lost ones.\n"
	        "# TYPE graft_worker_restarts_total counter\ngraft_worker_restarts_total %ld\n",
	        m.worker_restarts);
	fprintf(f, "# HELP graft_workers Worker processes by activity.\n# TYPE graft_workers "
	        "gauge\ngraft_workers{state=\"busy\"} %d\ngraft_workers{state=\"idle\"} %d\n"
	        "graft_workers{state=\"starting\"} %d\ngraft_workers{state=\"pending\"} %d\n",
	        m.workers_busy, m.workers - m.workers_busy - m.workers_starting - m.workers_pending,
	        m.workers_starting, m.workers_pending);
	fprintf(f, "# HELP graft_training_images_per_second Training throughput of the last "
	        "candidate.\n# TYPE graft_training_images_per_second gauge\n"
	        "graft_training_images_per_second %.1f\n", m.images_per_s);
	fprintf(f, "# HELP graft_request_duration_seconds API request latency.\n"
	        "# TYPE graft_request_duration_seconds histogram\n");
	for (int i = 0; i < GD_SERVER_NBUCKETS; i++)
		fprintf(f, "graft_request_duration_seconds_bucket{le=\"%g\"} %ld\n",
		        gd_server_buckets[i], ss.bucket[i]);
	fprintf(f, "graft_request_duration_seconds_bucket{le=\"+Inf\"} %ld\n"
	        "graft_request_duration_seconds_sum %.6f\n"
	        "graft_request_duration_seconds_count %ld\n", ss.requests, ss.latency_sum,
	        ss.requests);
	fclose(f);
	gd_server_reply(c, 200, "text/plain; version=0.0.4", buf, len);
	free(buf);
}

/* ---- the dashboard ---------------------------------------------------------------- */

/* The page and its files, from memory: a name is looked up, never opened. */
static void dashboard(gd_conn *c, const proto_http_req *r, const char *name)
{
	if (strcmp(r->method, "GET")) {
		gd_server_reply_error(c, 405, "bad_method", "use GET", NULL, 0, 0);
		return;
	}
	for (const gd_asset *a = gd_assets; a->name; a++)
		if (!strcmp(a->name, name)) {
			gd_server_reply(c, 200, a->type, (const char *)a->data, a->len);
			return;
		}
	not_found(c, "no such file of the dashboard");
}

/* ---- routing ----------------------------------------------------------------------- */

void gd_api_handle(gd_conn *c, const proto_http_req *r, void *ctx)
{
	gd_api *a = ctx;
	const char *p = r->path;
	int get = !strcmp(r->method, "GET");

	if (!strcmp(p, "/") || !strncmp(p, "/dashboard/", 11)) {
		dashboard(c, r, !strcmp(p, "/") ? "index.html" : p + 11);
		return;
	}
	if (strncmp(p, "/v1/", 4)) {
		not_found(c, "no such endpoint; the API lives under /v1/ (and the dashboard at /)");
		return;
	}
	p += 4;
	if (!strcmp(p, "health") || !strcmp(p, "metrics") || !strcmp(p, "grafts")) {
		if (!get)
			gd_server_reply_error(c, 405, "bad_method", "use GET", NULL, 0, 0);
		else if (p[0] == 'h')
			health(a, c);
		else if (p[0] == 'm')
			metrics(a, c);
		else
			grafts(a, c);
	} else if (!strcmp(p, "workers")) {
		if (!get)
			gd_server_reply_error(c, 405, "bad_method", "use GET", NULL, 0, 0);
		else
			reply_json(c, 200, json_pack("{s:o}", "workers", gd_sched_workers_json(a->sched)));
	} else if (!strcmp(p, "jobs")) {
		if (get)
			reply_json(c, 200, json_pack("{s:o}", "jobs", gd_sched_jobs_json(a->sched)));
		else if (!strcmp(r->method, "POST"))
			post_job(a, c, r);
		else
			gd_server_reply_error(c, 405, "bad_method", "use GET or POST on /v1/jobs", NULL,
			                      0, 0);
	} else if (!strncmp(p, "jobs/", 5)) {
		job_route(a, c, r, p + 5);
	} else if (!strncmp(p, "candidates/", 11)) {
		candidate(a, c, r, p + 11);
	} else if (!strncmp(p, "finals/", 7)) {
		final_route(a, c, r, p + 7);
	} else {
		not_found(c, "no such endpoint");
	}
}
