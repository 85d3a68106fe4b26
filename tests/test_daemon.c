/*
 * test_daemon.c - graftd end to end: the real bin/graftd on a socket in a
 * scratch directory, spoken to over raw HTTP as a client would, its workers
 * and itself killed and restarted, its store read back to check that no
 * evaluation is lost or repeated.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <sqlite3.h>

#include "nn/nn.h"
#include "proto/proto.h"
#include "search/search.h"
#include "store/store.h"
#include "tests/support/graftd_jobs.h"
#include "tests/support/graftd_run.h"
#include "tests/support/idx_write.h"
#include "tests/support/scratch.h"

extern char **environ;

static char data[600];

static void setup(void)
{
	scratch_make("daemon");
	snprintf(data, sizeof(data), "%s", scratch_path("data"));
	cr_assert_eq(mkdir(data, 0755), 0);
	idx_write_part(data, "train", 1500, 12, 3, 0, 5, 0, 3);
	setenv("GRAFT_CACHE_DIR", scratch_path("grafts"), 1);
	signal(SIGPIPE, SIG_IGN);
}

static void teardown(void)
{
	graftd_kill_all();
	scratch_remove();
}

TestSuite(daemon, .init = setup, .fini = teardown, .timeout = 400);

static const char spec_fmt[] =
	"name: %s\n"
	"dataset: {dir: %s, validation: 300}\n"
	"search: {strategy: evolution, population: 3, sample: 2, candidates: %d, seed: 5}\n"
	"space: {max_blocks: 3, widths: [8, 16], min_stem: 8, max_stem: 16, max_flops: 2000000}\n"
	"train: {steps: %d, batch: 32, lr: 0.05}\n"
	"graft: {source: target, channels: 8, pretrain_steps: 30}\n";

static int64_t submit_extra(const char *dir, const char *name, int candidates, int steps,
                            const char *extra)
{
	char spec[1600];
	int n = snprintf(spec, sizeof(spec), spec_fmt, name, data, candidates, steps);
	snprintf(spec + n, sizeof(spec) - (size_t)n, "%s", extra);
	return graftd_submit(dir, spec);
}

static int64_t submit(const char *dir, const char *name, int candidates, int steps)
{
	return submit_extra(dir, name, candidates, steps, "");
}

/* ---- tests ---------------------------------------------------------------------- */

Test(daemon, submit_poll_leaderboard_export)
{
	char dir[700];
	snprintf(dir, sizeof(dir), "%s", scratch_path("d1"));
	pid_t pid = graftd_start(dir, 2);
	struct stat sb;
	cr_assert_eq(stat(graftd_socket(dir), &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600, "the socket is not owner-only: %o", sb.st_mode & 0777);

	json_t *h = graftd_get_json(dir, "/v1/health", 200);
	cr_assert_str_eq(json_string_value(json_object_get(h, "status")), "ok");
	/* Every worker is in one state; just started, some may not be ready. */
	json_t *hw = json_object_get(h, "workers");
	cr_assert_eq(json_integer_value(json_object_get(hw, "idle")) +
	             json_integer_value(json_object_get(hw, "busy")) +
	             json_integer_value(json_object_get(hw, "starting")) +
	             json_integer_value(json_object_get(hw, "pending")), 2);
	cr_assert_str_eq(json_string_value(json_object_get(h, "executor")), "local");
	json_decref(h);

	int64_t id = submit(dir, "e2e", 6, 30);
	wait_state(dir, id, "done", 180);

	json_t *lb = graftd_get_json(dir, "/v1/jobs/1/leaderboard?limit=3&sort=accuracy", 200);
	json_t *cands = json_object_get(lb, "candidates");
	cr_assert_gt(json_array_size(cands), 0);
	cr_assert_leq(json_array_size(cands), 3);
	double prev = 2;
	for (size_t i = 0; i < json_array_size(cands); i++) {
		double acc = json_number_value(json_object_get(json_array_get(cands, i),
		                                               "val_accuracy"));
		cr_assert_leq(acc, prev, "not sorted by accuracy");
		prev = acc;
	}
	int64_t best = json_integer_value(json_object_get(json_array_get(cands, 0), "candidate"));
	json_decref(lb);
	json_t *lbp = graftd_get_json(dir, "/v1/jobs/1/leaderboard?sort=params", 200);
	json_decref(lbp);
	const char *bad[] = { "/v1/jobs/1/leaderboard?limit=abc", "/v1/jobs/1/leaderboard?limit=0",
	                      "/v1/jobs/1/leaderboard?sort=colour", "/v1/jobs/1/export?rank=0",
	                      "/v1/jobs/1/export?rank=" };
	for (int i = 0; i < 5; i++) {
		resp br = graftd_http(dir, "GET", bad[i], NULL, NULL);
		cr_assert_eq(br.status, 400, "%s: %d %s", bad[i], br.status, br.body);
		cr_assert(strstr(br.body, "bad_parameter"), "%s: %s", bad[i], br.body);
		free(br.body);
	}

	resp ex = graftd_http(dir, "GET", "/v1/jobs/1/export?rank=1", NULL, NULL);
	cr_assert_eq(ex.status, 200, "%s", ex.body);
	nn_arch a;
	char err[GRAFT_ERRLEN];
	cr_assert_eq(proto_arch_parse(ex.body, ex.len, &a, err, sizeof(err)), 0, "%s\n%s", err,
	             ex.body);
	cr_assert(a.has_result);
	cr_assert_gt(a.graft_nlayers, 0, "the export names its graft");
	free(ex.body);

	char path[64];
	snprintf(path, sizeof(path), "/v1/candidates/%lld", (long long)best);
	json_t *c = graftd_get_json(dir, path, 200);
	cr_assert_not_null(json_string_value(json_object_get(c, "genome")));
	cr_assert(json_is_array(json_object_get(c, "lineage")));
	cr_assert_gt(json_array_size(json_object_get(c, "evaluations")), 0);
	json_decref(c);
	snprintf(path, sizeof(path), "/v1/candidates/%lld/weights", (long long)best);
	resp w = graftd_http(dir, "GET", path, NULL, NULL);
	cr_assert_eq(w.status, 200);
	cr_assert_gt(w.len, 8);
	cr_assert(strstr(w.body + 8, "stem.conv.weight"), "not safetensors");
	free(w.body);

	/* Weights are streamed from their file, whatever its size (they were read
	 * whole on the loop, up to 256 MB, and refused beyond): a 300 MB file
	 * comes back byte for byte while the API keeps answering. */
	char db[720], wpath[4096] = "";
	snprintf(db, sizeof(db), "%s/graft.db", dir);
	sqlite3 *sh;
	sqlite3_stmt *q;
	cr_assert_eq(sqlite3_open(db, &sh), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(sh, "SELECT weights FROM evaluations WHERE candidate_id = ? "
	                                "AND status = 'done'", -1, &q, NULL), SQLITE_OK);
	sqlite3_bind_int64(q, 1, best);
	cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
	snprintf(wpath, sizeof(wpath), "%s", (const char *)sqlite3_column_text(q, 0));
	sqlite3_finalize(q);
	sqlite3_close(sh);
	FILE *big = fopen(wpath, "r+");
	cr_assert_not_null(big, "%s", wpath);
	fseek(big, 300L * 1024 * 1024 - 1, SEEK_SET);
	fputc('!', big);
	fclose(big);
	w = graftd_http(dir, "GET", path, NULL, NULL);
	cr_assert_eq(w.status, 200);
	cr_assert_eq(w.len, 300L * 1024 * 1024, "%zu bytes", w.len);
	cr_assert_eq(w.body[w.len - 1], '!');
	cr_assert(strstr(w.body + 8, "stem.conv.weight"), "not the file's bytes");
	free(w.body);
	json_decref(graftd_get_json(dir, "/v1/health", 200));

	json_t *g = graftd_get_json(dir, "/v1/grafts", 200);
	cr_assert_eq(json_array_size(json_object_get(g, "grafts")), 1);
	json_decref(g);
	resp m = graftd_http(dir, "GET", "/v1/metrics", NULL, NULL);
	cr_assert_eq(m.status, 200);
	cr_assert(strstr(m.body, "graft_candidates_evaluated_total 6"), "%s", m.body);
	cr_assert(strstr(m.body, "graft_jobs{state=\"done\"} 1"), "%s", m.body);
	cr_assert(strstr(m.body, "graft_request_duration_seconds_bucket{le=\"+Inf\"}"));
	free(m.body);
	json_t *jobs = graftd_get_json(dir, "/v1/jobs", 200);
	cr_assert_eq(json_array_size(json_object_get(jobs, "jobs")), 1);
	json_decref(jobs);

	/* The Pareto fronts are exactly the leaderboard's undominated rows. */
	json_t *all = graftd_get_json(dir, "/v1/jobs/1/leaderboard?limit=10000", 200);
	json_t *rows = json_object_get(all, "candidates");
	const char *costs[2] = { "params", "flops" };
	for (int k = 0; k < 2; k++) {
		char fp[96];
		snprintf(fp, sizeof(fp), "/v1/jobs/1/pareto?by=%s", costs[k]);
		json_t *pf = graftd_get_json(dir, fp, 200), *front = json_object_get(pf, "front");
		size_t on = 0;
		for (size_t i = 0; i < json_array_size(rows); i++) {
			json_t *x = json_array_get(rows, i);
			double ax = json_number_value(json_object_get(x, "val_accuracy"));
			json_int_t cx = json_integer_value(json_object_get(x, costs[k]));
			int dominated = 0, listed = 0, twin = 0;
			for (size_t j = 0; j < json_array_size(rows); j++) {
				json_t *y = json_array_get(rows, j);
				double ay = json_number_value(json_object_get(y, "val_accuracy"));
				json_int_t cy = json_integer_value(json_object_get(y, costs[k]));
				dominated |= (cy <= cx && ay > ax) || (cy < cx && ay >= ax);
			}
			for (size_t j = 0; j < json_array_size(front); j++) {
				json_t *y = json_array_get(front, j);
				listed |= json_integer_value(json_object_get(y, "candidate")) ==
				          json_integer_value(json_object_get(x, "candidate"));
				/* Of exact equals the front keeps one. */
				twin |= json_number_value(json_object_get(y, "val_accuracy")) == ax &&
				        json_integer_value(json_object_get(y, costs[k])) == cx;
			}
			cr_assert(listed ? !dominated : dominated || twin, "%s: candidate %lld is %s "
			          "but %s the front", costs[k],
			          (long long)json_integer_value(json_object_get(x, "candidate")),
			          dominated ? "dominated" : "not dominated", listed ? "on" : "off");
			on += listed;
		}
		cr_assert_eq(on, json_array_size(front));
		cr_assert_geq(on, 1);
		json_decref(pf);
	}
	json_decref(all);
	resp by = graftd_http(dir, "GET", "/v1/jobs/1/pareto?by=colour", NULL, NULL);
	cr_assert_eq(by.status, 400, "%s", by.body);
	free(by.body);

	struct outcome o;
	read_outcome(dir, id, &o);
	expect_each_once(&o, 6);
	int status = graftd_stop(pid, SIGTERM);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Expects a 4xx JSON error for raw bytes, then a healthy daemon. */
static void expect_refused(const char *dir, const char *what, const char *req, size_t len,
                           int status)
{
	resp r = graftd_raw(dir, req, len);
	cr_assert_eq(r.status, status, "%s: got %d %s", what, r.status, r.body);
	json_t *j = json_loads(r.body, 0, NULL);
	json_t *e = json_object_get(j, "error");
	cr_assert(json_is_string(json_object_get(e, "message")), "%s: no JSON error: %s", what,
	          r.body);
	json_decref(j);
	free(r.body);
	json_decref(graftd_get_json(dir, "/v1/health", 200));
}

static void expect_spec_refused(const char *dir, const char *what, const char *spec,
                                int status, const char *needle)
{
	resp r = graftd_http(dir, "POST", "/v1/jobs", "application/yaml", spec);
	cr_assert_eq(r.status, status, "%s: got %d %s", what, r.status, r.body);
	cr_assert(strstr(r.body, needle), "%s: '%s' lacks '%s'", what, r.body, needle);
	free(r.body);
	json_decref(graftd_get_json(dir, "/v1/health", 200));
}

Test(daemon, hostile_input_gets_a_4xx_and_the_daemon_keeps_serving)
{
	char dir[700], spec[2000];
	snprintf(dir, sizeof(dir), "%s", scratch_path("d2"));
	pid_t pid = graftd_start(dir, 1);
	const char *bad_line = "GARBAGE\r\n\r\n";
	expect_refused(dir, "request line", bad_line, strlen(bad_line), 400);
	const char *bad_header = "GET /v1/health HTTP/1.1\r\nNo colon here\r\n\r\n";
	expect_refused(dir, "header", bad_header, strlen(bad_header), 400);
	char big_head[40000];
	int n = snprintf(big_head, sizeof(big_head), "GET /v1/health HTTP/1.1\r\nX-Junk: ");
	memset(big_head + n, 'a', 30000);
	memcpy(big_head + n + 30000, "\r\n\r\n", 5);
	expect_refused(dir, "huge header", big_head, strlen(big_head), 431);
	const char *chunked = "POST /v1/jobs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	                      "zz\r\nnot hex\r\n0\r\n\r\n";
	expect_refused(dir, "chunked garbage", chunked, strlen(chunked), 400);
	/* Two Content-Types were read as one, glued together (found by fuzzing). */
	const char *two_types = "POST /v1/jobs HTTP/1.1\r\nContent-Type: application/yaml\r\n"
	                        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
	expect_refused(dir, "two Content-Types", two_types, strlen(two_types), 400);
	const char *v2 = "GET /v1/health HTTP/2.0\r\n\r\n";
	expect_refused(dir, "HTTP/2 request line", v2, strlen(v2), 505);

	/* 100 MB, really sent: refused after the headers, the rest not read. */
	size_t huge = 100u * 1024 * 1024;
	char *body = malloc(huge + 200);
	n = snprintf(body, 200, "POST /v1/jobs HTTP/1.1\r\nContent-Type: application/yaml\r\n"
	             "Content-Length: %zu\r\n\r\n", huge);
	memset(body + n, 'x', huge);
	expect_refused(dir, "100 MB body", body, (size_t)n + huge, 413);
	free(body);

	expect_spec_refused(dir, "broken YAML", "dataset: {dir: [\n", 400, "\"line\"");
	snprintf(spec, sizeof(spec), "dataset: {dir: %s}\ncolour: red\n", data);
	expect_spec_refused(dir, "unknown key", spec, 400, "\"line\":2");
	snprintf(spec, sizeof(spec), "dataset: {dir: %s}\nsearch: {candidates: many}\n", data);
	expect_spec_refused(dir, "wrong type", spec, 400, "search.candidates");
	snprintf(spec, sizeof(spec), "dataset: {dir: %s}\nspace: {widths: [1000000000]}\n", data);
	expect_spec_refused(dir, "a billion channels", spec, 400, "space.widths[0]");
	expect_spec_refused(dir, "missing dataset", "dataset: {dir: /no/such/dir}\n", 422,
	                    "bad_dataset");
	snprintf(spec, sizeof(spec), "dataset: {dir: %s}\nspace: {max_flops: 1000}\n", data);
	expect_spec_refused(dir, "a space with room for nothing", spec, 422, "space.max_flops");
	char corrupt[700];
	snprintf(corrupt, sizeof(corrupt), "%s", scratch_path("corrupt"));
	mkdir(corrupt, 0755);
	FILE *f = fopen(scratch_path("corrupt/train-images-idx3-ubyte"), "w");
	fputs("this is not an IDX file at all, but it is long enough", f);
	fclose(f);
	f = fopen(scratch_path("corrupt/train-labels-idx1-ubyte"), "w");
	fputs("nor is this", f);
	fclose(f);
	snprintf(spec, sizeof(spec), "dataset: {dir: %s}\n", corrupt);
	expect_spec_refused(dir, "corrupt dataset", spec, 422, "bad_dataset");
	expect_spec_refused(dir, "/etc/shadow", "dataset: {train_images: /etc/shadow, "
	                    "train_labels: /etc/shadow}\n", 422, "bad_dataset");
	resp r = graftd_http(dir, "POST", "/v1/jobs", "image/png", "dataset: {dir: /x}");
	cr_assert_eq(r.status, 415);
	free(r.body);
	r = graftd_http(dir, "GET", "/v1/jobs/abc", NULL, NULL);
	cr_assert_eq(r.status, 404);
	free(r.body);
	r = graftd_http(dir, "GET", "/v1/jobs/1/leaderboard?sort=colour", NULL, NULL);
	cr_assert_eq(r.status, 404, "job 1 does not exist: %s", r.body);
	free(r.body);
	r = graftd_http(dir, "DELETE", "/v1/jobs", NULL, NULL);
	cr_assert_eq(r.status, 405);
	free(r.body);
	r = graftd_http(dir, "POST", "/v1/jobs/7/cancel", NULL, NULL);
	cr_assert_eq(r.status, 404);
	free(r.body);
	/* Nothing was accepted. */
	json_t *jobs = graftd_get_json(dir, "/v1/jobs", 200);
	cr_assert_eq(json_array_size(json_object_get(jobs, "jobs")), 0);
	json_decref(jobs);
	int status = graftd_stop(pid, SIGTERM);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Issue 10, bug 9: data the loaders accept but that every candidate would
 * fail on later is refused at submission, with the reason. */
Test(daemon, data_no_network_can_use_is_refused_at_submission)
{
	static const struct {
		const char *name;
		int n, h, w, pixel, classes;
		const char *needle;
	} cases[] = {
		{ "constant", 60, 8, 8, 77, 3, "has the same value (77)" },
		{ "black", 60, 8, 8, 0, 3, "has the same value (0)" },
		{ "wide", 12, 2, 1100, -1, 3, "at most 1024x1024" },
		{ "one_class", 60, 8, 8, -1, 1, "at least two classes" },
	};
	char dir[700], spec[1200], sub[700];
	snprintf(dir, sizeof(dir), "%s", scratch_path("d15"));
	pid_t pid = graftd_start(dir, 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(sub, sizeof(sub), "%s", scratch_path(cases[i].name));
		cr_assert_eq(mkdir(sub, 0755), 0);
		idx_write_plain(sub, cases[i].n, cases[i].h, cases[i].w, cases[i].pixel,
		                cases[i].classes);
		snprintf(spec, sizeof(spec), "dataset: {dir: %s, validation: 10}\n", sub);
		expect_spec_refused(dir, cases[i].name, spec, 422, cases[i].needle);
	}
	json_t *jobs = graftd_get_json(dir, "/v1/jobs", 200);
	cr_assert_eq(json_array_size(json_object_get(jobs, "jobs")), 0, "nothing was accepted");
	json_decref(jobs);
	graftd_stop(pid, SIGTERM);
}

Test(daemon, sighup_reopens_the_log)
{
	char dir[700], log[720], moved[720];
	snprintf(dir, sizeof(dir), "%s", scratch_path("d13"));
	snprintf(log, sizeof(log), "%s/graftd.log", dir);
	snprintf(moved, sizeof(moved), "%s/graftd.log.1", dir);
	pid_t pid = graftd_start(dir, 1);
	cr_assert_eq(rename(log, moved), 0, "logrotate's move");
	kill(pid, SIGHUP);
	for (int i = 0; i < 100 && access(log, F_OK); i++)
		test_nap(0.05);
	cr_assert_eq(access(log, F_OK), 0, "no new log file after SIGHUP");
	json_decref(graftd_get_json(dir, "/v1/health", 200));
	int status = graftd_stop(pid, SIGTERM);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	FILE *f = fopen(log, "r");
	char text[4096] = "";
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	cr_assert(strstr(text, "log reopened") && strstr(text, "drained"), "%s", text);
}

Test(daemon, pipelined_requests_are_answered_in_order)
{
	char dir[700];
	snprintf(dir, sizeof(dir), "%s", scratch_path("d12"));
	graftd_start(dir, 1);
	/* 300 requests in one write, the last one closing: 300 answers, in order. */
	static char req[300 * 64];
	size_t n = 0;
	for (int i = 0; i < 300; i++)
		n += (size_t)snprintf(req + n, sizeof(req) - n, "GET /v1/%s HTTP/1.1\r\n%s\r\n",
		                      i % 2 ? "jobs" : "health",
		                      i == 299 ? "Connection: close\r\n" : "");
	resp r = graftd_raw(dir, req, n);
	int answers = 0;
	for (const char *p = r.body; (p = strstr(p, "HTTP/1.1 200 OK")); p++)
		answers++;
	/* graftd_raw's body starts after the first answer's head. */
	cr_assert_eq(r.status, 200);
	cr_assert_eq(answers + 1, 300, "%d answers", answers + 1);
	free(r.body);
}

Test(daemon, a_killed_worker_is_replaced_and_its_candidate_retried)
{
	char dir[700];
	snprintf(dir, sizeof(dir), "%s", scratch_path("d3"));
	pid_t pid = graftd_start(dir, 1);
	int64_t id = submit(dir, "killworker", 4, 400);
	/* Kill the worker while it trains (a candidate of 400 steps is running). */
	double t0 = test_now();
	int killed = 0;
	while (!killed && test_now() - t0 < 60) {
		json_t *j = graftd_get_json(dir, "/v1/jobs/1", 200);
		int in_flight = (int)json_integer_value(json_object_get(json_object_get(j, "progress"),
		                                                        "in_flight"));
		json_decref(j);
		pid_t w[4];
		if (in_flight > 0 && graftd_workers(pid, w, 4) == 1) {
			kill(w[0], SIGKILL);
			killed = 1;
		}
		test_nap(0.05);
	}
	cr_assert(killed, "no candidate ever ran");
	wait_state(dir, id, "done", 240);
	struct outcome o;
	read_outcome(dir, id, &o);
	expect_each_once(&o, 4);
	int retried = 0;
	for (int i = 0; i < o.n; i++)
		if (o.failed[i]) {
			retried++;
			cr_assert(strstr(o.error[i], "signal 9"), "reason: %s", o.error[i]);
		}
	cr_assert_eq(retried, 1, "exactly the killed candidate was retried");
	resp m = graftd_http(dir, "GET", "/v1/metrics", NULL, NULL);
	cr_assert(strstr(m.body, "graft_worker_restarts_total 1"), "%s", m.body);
	free(m.body);
	graftd_stop(pid, SIGTERM);
}

Test(daemon, kill9_of_the_daemon_loses_and_repeats_nothing)
{
	char ref[700], dir[700];
	snprintf(ref, sizeof(ref), "%s", scratch_path("ref"));
	snprintf(dir, sizeof(dir), "%s", scratch_path("d4"));
	/* The uninterrupted run, for comparison (one worker: deterministic). */
	pid_t pid = graftd_start(ref, 1);
	int64_t id = submit(ref, "k9", 8, 60);
	wait_state(ref, id, "done", 240);
	graftd_stop(pid, SIGTERM);
	struct outcome want, before, got;
	read_outcome(ref, id, &want);

	pid = graftd_start(dir, 1);
	id = submit(dir, "k9", 8, 60);
	wait_evaluated(dir, id, 3);
	int status = graftd_stop(pid, SIGKILL);
	cr_assert(WIFSIGNALED(status));
	read_outcome(dir, id, &before);
	pid = graftd_start(dir, 1);
	wait_state(dir, id, "done", 240);
	read_outcome(dir, id, &got);
	expect_each_once(&got, 8);
	for (int i = 0; i < 8; i++) {
		cr_assert_str_eq(got.genome[i], want.genome[i], "candidate %d", i);
		cr_assert_eq(got.fitness[i], want.fitness[i], "candidate %d", i);
		if (before.done[i])
			cr_assert_eq(got.first_done[i], before.first_done[i],
			             "candidate %d's result from before the kill was replaced", i);
	}
	graftd_stop(pid, SIGTERM);
}

Test(daemon, sigterm_drains_and_a_restart_continues)
{
	char dir[700], db[700], err[GRAFT_ERRLEN];
	snprintf(dir, sizeof(dir), "%s", scratch_path("d5"));
	pid_t pid = graftd_start(dir, 1);
	/* Long enough (a tiny network's 400 steps take a few tenths of a
	 * second) that the six left do not all finish before the SIGTERM. */
	int64_t id = submit_extra(dir, "term", 8, 400, "");
	wait_evaluated(dir, id, 2);
	int status = graftd_stop(pid, SIGTERM);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "graftd did not exit 0");
	snprintf(db, sizeof(db), "%.680s/graft.db", dir);
	store *s;
	store_job j;
	cr_assert_eq(store_open(db, &s, err, sizeof(err)), 0);
	cr_assert_eq(store_job_get(s, id, &j), 0);
	cr_assert_eq(j.state, STORE_JOB_RUNNING, "the job is %s", store_job_state_name(j.state));
	store_job_clear(&j);
	store_close(s);
	struct outcome o;
	read_outcome(dir, id, &o);
	for (int i = 0; i < o.n; i++)
		cr_assert_leq(o.done[i], 1);
	pid = graftd_start(dir, 1);
	wait_state(dir, id, "done", 240);
	read_outcome(dir, id, &o);
	expect_each_once(&o, 8);
	graftd_stop(pid, SIGTERM);
}

Test(daemon, pause_resume_cancel)
{
	char dir[700];
	snprintf(dir, sizeof(dir), "%s", scratch_path("d6"));
	pid_t pid = graftd_start(dir, 1);
	int64_t id = submit(dir, "ctl", 30, 60);
	wait_evaluated(dir, id, 1);
	resp r = graftd_http(dir, "POST", "/v1/jobs/1/pause", NULL, NULL);
	cr_assert_eq(r.status, 200, "%s", r.body);
	free(r.body);
	cr_assert_str_eq(job_state(dir, id, NULL), "paused");
	/* What was in flight finishes; then nothing new starts.  A running job
	 * is handed the worker the moment it is idle, so once in_flight is seen
	 * at 0 with candidates left, only the pause can be keeping it there. */
	int a, b, in_flight = 1;
	double t0 = test_now();
	while (in_flight > 0 && test_now() - t0 < 60)
		job_progress(dir, id, &a, &in_flight);
	cr_assert_eq(in_flight, 0, "the candidate in flight never finished");
	cr_assert_str_eq(job_progress(dir, id, &b, &in_flight), "paused");
	cr_assert_eq(in_flight, 0, "a paused job started a candidate");
	cr_assert_eq(a, b, "a paused job went on evaluating");
	r = graftd_http(dir, "POST", "/v1/jobs/1/pause", NULL, NULL);
	cr_assert_eq(r.status, 409);
	free(r.body);
	r = graftd_http(dir, "POST", "/v1/jobs/1/resume", NULL, NULL);
	cr_assert_eq(r.status, 200);
	free(r.body);
	wait_evaluated(dir, id, b + 1);
	r = graftd_http(dir, "POST", "/v1/jobs/1/cancel", NULL, NULL);
	cr_assert_eq(r.status, 200);
	free(r.body);
	cr_assert_str_eq(job_state(dir, id, NULL), "cancelled");
	r = graftd_http(dir, "POST", "/v1/jobs/1/resume", NULL, NULL);
	cr_assert_eq(r.status, 409);
	free(r.body);
	graftd_stop(pid, SIGTERM);
}

/* Every candidate of the job failed with a reason containing why. */
static void expect_all_failed(const char *dir, int64_t id, int n, const char *why)
{
	struct outcome o;
	wait_state(dir, id, "done", 120);
	read_outcome(dir, id, &o);
	cr_assert_eq(o.n, n);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(o.done[i], 0);
		cr_assert_eq(o.failed[i], 2, "one attempt and one retry, got %d", o.failed[i]);
		cr_assert(strstr(o.error[i], why), "candidate %d: '%s' lacks '%s'", i, o.error[i], why);
	}
	/* The API shows the reason too. */
	json_t *c = graftd_get_json(dir, "/v1/candidates/1", 200);
	json_t *ev = json_object_get(c, "evaluations");
	cr_assert_eq(json_array_size(ev), 2);
	cr_assert(strstr(json_string_value(json_object_get(json_array_get(ev, 1), "error")), why));
	json_decref(c);
}

Test(daemon, time_limit_kills_the_candidate_and_says_so)
{
	char dir[700];
	snprintf(dir, sizeof(dir), "%s", scratch_path("d8"));
	pid_t pid = graftd_start(dir, 1);
	int64_t id = submit_extra(dir, "slow", 2, 100000, "limits: {time: 1, retries: 1}\n");
	expect_all_failed(dir, id, 2, "time limit");
	graftd_stop(pid, SIGTERM);
}

Test(daemon, memory_limit_kills_the_worker_and_says_so)
{
	char dir[700];
	snprintf(dir, sizeof(dir), "%s", scratch_path("d9"));
	pid_t pid = graftd_start_with(dir, 1, "memory_mb: 1\n");
	int64_t id = submit_extra(dir, "fat", 2, 100000, "limits: {retries: 1}\n");
	expect_all_failed(dir, id, 2, "over its limit of 1 MB");
	graftd_stop(pid, SIGTERM);
}

/* A worker command that says it is ready, then hangs (in a child, so that
 * killing only the worker would leave it): the heartbeat kills the group. */
Test(daemon, a_silent_worker_is_killed_with_its_process_group)
{
	char dir[700], config[300], count[200];
	/* A sleep of a length no other process has: this test's own. */
	int mark = 100 + (int)(getpid() % 900);
	snprintf(dir, sizeof(dir), "%s", scratch_path("d10"));
	snprintf(config, sizeof(config), "heartbeat: 2\nworker_command: [sh, -c, "
	         "'echo \"{\\\"type\\\":\\\"ready\\\"}\"; sleep 1000.%d; :']\n", mark);
	snprintf(count, sizeof(count), "pgrep -f 'sleep 1000[.]%d' | wc -l", mark);
	pid_t pid = graftd_start_with(dir, 1, config);
	int64_t id = submit_extra(dir, "hang", 1, 10, "limits: {retries: 1}\n");
	expect_all_failed(dir, id, 1, "no heartbeat");
	graftd_stop(pid, SIGTERM);
	FILE *p = popen(count, "r");
	int left = -1;
	cr_assert_eq(fscanf(p, "%d", &left), 1);
	pclose(p);
	if (left) { /* leave nothing behind for the next test */
		char kill_cmd[220];
		snprintf(kill_cmd, sizeof(kill_cmd), "pkill -f 'sleep 1000[.]%d'", mark);
		(void)!system(kill_cmd);
	}
	cr_assert_eq(left, 0, "a hung worker's child survived");
}

/* Issue 10, bug 4: a worker whose result lacks val_accuracy used to have
 * its candidate recorded as done with accuracy 0 (and the strategy learnt
 * from it).  Now the line does not validate: the candidate fails, saying
 * which field was wrong. */
Test(daemon, a_result_missing_a_field_is_a_failure_not_accuracy_0)
{
	char dir[700], script[700], config[800];
	snprintf(dir, sizeof(dir), "%s", scratch_path("d14"));
	snprintf(script, sizeof(script), "%s", scratch_path("bad_worker.sh"));
	FILE *f = fopen(script, "w");
	cr_assert_not_null(f);
	fputs("echo '{\"type\":\"ready\"}'\n"
	      "while read -r line; do\n"
	      "  id=$(echo \"$line\" | sed -n 's/.*\"id\":\\([0-9]*\\).*/\\1/p')\n"
	      "  echo \"{\\\"type\\\":\\\"result\\\",\\\"id\\\":$id,\\\"val_loss\\\":0.5}\"\n"
	      "done\n", f);
	fclose(f);
	snprintf(config, sizeof(config), "worker_command: [sh, %s]\n", script);
	pid_t pid = graftd_start_with(dir, 1, config);
	int64_t id = submit_extra(dir, "badresult", 2, 10, "limits: {retries: 1}\n");
	expect_all_failed(dir, id, 2, "\"val_accuracy\" is missing");
	/* Nothing reached the leaderboard. */
	json_t *lb = graftd_get_json(dir, "/v1/jobs/1/leaderboard", 200);
	cr_assert_eq(json_array_size(json_object_get(lb, "candidates")), 0);
	json_decref(lb);
	graftd_stop(pid, SIGTERM);
}

/* Job ids of every trained evaluation, in the order they started. */
static int start_order(const char *dir, int64_t *jobs, int max)
{
	char db[700];
	sqlite3 *h;
	sqlite3_stmt *st;
	int n = 0;
	snprintf(db, sizeof(db), "%.680s/graft.db", dir);
	cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(h, "SELECT c.job_id FROM evaluations e JOIN candidates c "
	                                "ON c.id = e.candidate_id WHERE e.cached = 0 ORDER BY e.id",
	                                -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW && n < max)
		jobs[n++] = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return n;
}

Test(daemon, two_jobs_share_one_worker_in_turn)
{
	char dir[700];
	snprintf(dir, sizeof(dir), "%s", scratch_path("d11"));
	pid_t pid = graftd_start(dir, 1);
	/* Different budgets: no candidate of one is answered from the other's. */
	int64_t a = submit(dir, "fair-a", 6, 150);
	int64_t b = submit(dir, "fair-b", 6, 151);
	wait_state(dir, a, "done", 240);
	wait_state(dir, b, "done", 240);
	int64_t order[64];
	int n = start_order(dir, order, 64), first_b = -1, switches = 0;
	for (int i = 0; i < n && first_b < 0; i++)
		if (order[i] == b)
			first_b = i;
	cr_assert_geq(first_b, 0);
	/* Once b is open, the worker goes to a and b in turn (first come, first
	 * served would run all of a, then all of b: one switch). */
	for (int i = first_b + 1; i < n; i++)
		switches += order[i] != order[i - 1];
	cr_assert_geq(switches, 3, "the jobs did not take turns: %d switches", switches);
	graftd_stop(pid, SIGTERM);
}

/* ---- many clients while workers train (a measurement, not a timed assertion) --- */

struct client {
	const char *dir;
	int requests, errors;
	double lat[40];
};

static void *client_main(void *arg)
{
	struct client *c = arg;
	static const char *const paths[] = { "/v1/health", "/v1/jobs/1",
	                                     "/v1/jobs/1/leaderboard?limit=5" };
	for (int i = 0; i < 40; i++) {
		double t0 = test_now();
		resp r = graftd_http(c->dir, "GET", paths[i % 3], NULL, NULL);
		c->lat[c->requests++] = test_now() - t0;
		c->errors += r.status != 200;
		free(r.body);
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

Test(daemon, fifty_clients_while_two_workers_train)
{
	char dir[700];
	snprintf(dir, sizeof(dir), "%s", scratch_path("d7"));
	pid_t pid = graftd_start(dir, 2);
	int64_t id = submit(dir, "busy", 12, 200);
	wait_evaluated(dir, id, 1);
	struct client c[50];
	pthread_t t[50];
	for (int i = 0; i < 50; i++) {
		c[i] = (struct client){ .dir = dir };
		pthread_create(&t[i], NULL, client_main, &c[i]);
	}
	static double all[50 * 40];
	int n = 0, errors = 0;
	for (int i = 0; i < 50; i++) {
		pthread_join(t[i], NULL);
		errors += c[i].errors;
		for (int k = 0; k < c[i].requests; k++)
			all[n++] = c[i].lat[k];
	}
	cr_assert_eq(errors, 0, "%d of %d requests failed", errors, n);
	qsort(all, (size_t)n, sizeof(double), cmp_double);
	fprintf(stderr, "graftd latency, 50 clients x 40 requests while 2 workers train: "
	        "p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d requests)\n", all[n / 2] * 1e3,
	        all[n * 99 / 100] * 1e3, all[n - 1] * 1e3, n);
	graftd_stop(pid, SIGTERM);
}

/* The path of a final training's checkpoint in dir's weights, or "". */
static void find_checkpoint(const char *dir, char *out, size_t len)
{
	char wdir[800];
	snprintf(wdir, sizeof(wdir), "%s/weights", dir);
	out[0] = '\0';
	DIR *d = opendir(wdir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "final-", 6) && strstr(e->d_name, ".ckpt") &&
		    !strstr(e->d_name, ".tmp"))
			snprintf(out, len, "%s/%s", wdir, e->d_name);
	closedir(d);
}

Test(daemon, rungs_then_a_final_stage_that_survives_kill9_and_exports_a_tested_model)
{
	char dir[700], ckpt[1200] = "", spec[1600];
	idx_write_part(data, "t10k", 300, 12, 3, 0, 5, 0, 3); /* a test split, for the winner */
	snprintf(spec, sizeof(spec),
	         "name: climb\n"
	         "dataset: {dir: %s, validation: 300}\n"
	         "search: {strategy: evolution, population: 3, sample: 2, candidates: 9, seed: 5,\n"
	         "         fidelity: {rungs: [10, 30, 60], eta: 3, slice: 100}}\n"
	         "space: {max_blocks: 3, widths: [8, 16], min_stem: 8, max_stem: 16, "
	         "max_flops: 2000000}\n"
	         "train: {batch: 32, lr: 0.05}\n"
	         "graft: {source: target, channels: 8, pretrain_steps: 30}\n"
	         "final: {top: 2, steps: 1500, batch: 32, lr: 0.05, graft: best}\n", data);
	snprintf(dir, sizeof(dir), "%s", scratch_path("final"));
	pid_t pid = graftd_start(dir, 2);
	int64_t id = graftd_submit(dir, spec);
	wait_state(dir, id, "final", 240);

	/* Killed once a final training has checkpointed. */
	for (int i = 0; i < 6000 && !ckpt[0]; i++) {
		find_checkpoint(dir, ckpt, sizeof(ckpt));
		if (!ckpt[0])
			usleep(20000);
	}
	cr_assert(ckpt[0], "no final training checkpointed");
	int status = graftd_stop(pid, SIGKILL);
	cr_assert(WIFSIGNALED(status));
	pid = graftd_start(dir, 2);
	wait_state(dir, id, "done", 300);

	char path[96];
	snprintf(path, sizeof(path), "/v1/jobs/%lld", (long long)id);
	json_t *j = graftd_get_json(dir, path, 200);
	cr_assert_str_eq(json_string_value(json_object_get(j, "phase")), "final");
	json_t *at = json_object_get(j, "stopped_at_rung");
	cr_assert_eq(json_array_size(at), 3, "candidates climbed to the top rung");
	json_t *fin = json_object_get(j, "final"), *w = json_object_get(fin, "winner");
	cr_assert(json_is_object(w), "no winner");
	double test = json_number_value(json_object_get(w, "test_accuracy"));
	cr_assert(test > 0.34 && test <= 1, "test accuracy %g", test);
	json_t *list = json_object_get(fin, "trainings");
	int resumed = 0, tested = 0;
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *t = json_array_get(list, i);
		cr_assert_str_eq(json_string_value(json_object_get(t, "status")), "done");
		resumed += json_integer_value(json_object_get(t, "resumed_from")) > 0;
		tested += json_is_number(json_object_get(t, "test_accuracy"));
		cr_assert_eq(json_integer_value(json_object_get(t, "attempts")), 1,
		             "a kill spent an attempt");
	}
	cr_assert_eq(json_array_size(list), 3, "the top 2, and the winner without its graft");
	cr_assert_eq(tested, 1, "the test split is scored for the winner alone");
	cr_assert_geq(resumed, 1, "the killed training started again from step 0");
	int64_t fid = json_integer_value(json_object_get(w, "id"));
	json_decref(j);

	json_t *lb = graftd_get_json(dir, "/v1/jobs/1/leaderboard?limit=1", 200);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(
	             json_object_get(lb, "candidates"), 0), "rung")), 2, "the top rung ranks first");
	json_decref(lb);

	snprintf(path, sizeof(path), "/v1/finals/%lld/export", (long long)fid);
	resp ex = graftd_http(dir, "GET", path, NULL, NULL);
	cr_assert_eq(ex.status, 200, "%s", ex.body);
	nn_arch a;
	char err[GRAFT_ERRLEN];
	cr_assert_eq(proto_arch_parse(ex.body, ex.len, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(a.train.steps, 1500, "the export carries the final recipe");
	free(ex.body);
	snprintf(path, sizeof(path), "/v1/finals/%lld/weights", (long long)fid);
	resp wt = graftd_http(dir, "GET", path, NULL, NULL);
	cr_assert_eq(wt.status, 200);
	cr_assert(wt.len > 8 && strstr(wt.body + 8, "stem.conv.weight"), "not safetensors");
	free(wt.body);
	graftd_stop(pid, SIGTERM);
}

/* search.lag: the same spec and seed give the same search with one worker
 * and with three (real training, one thread per worker: bit for bit). */
Test(daemon, with_a_lag_one_worker_and_three_find_the_same)
{
	char spec[1600];
	struct outcome o[2];
	snprintf(spec, sizeof(spec),
	         "name: lag\n"
	         "dataset: {dir: %s, validation: 300}\n"
	         "search: {strategy: evolution, population: 3, sample: 2, candidates: 9, seed: 5,\n"
	         "         lag: 3, fidelity: {rungs: [10, 30, 60], eta: 3, slice: 100}}\n"
	         "space: {max_blocks: 3, widths: [8, 16], min_stem: 8, max_stem: 16, "
	         "max_flops: 2000000}\n"
	         "train: {batch: 32, lr: 0.05}\n"
	         "graft: {source: target, channels: 8, pretrain_steps: 30}\n", data);
	for (int run = 0; run < 2; run++) {
		char dir[700];
		snprintf(dir, sizeof(dir), "%s", scratch_path(run ? "lag3" : "lag1"));
		pid_t pid = graftd_start(dir, run ? 3 : 1);
		int64_t id = graftd_submit(dir, spec);
		wait_state(dir, id, "done", 300);
		read_outcome(dir, id, &o[run]);
		graftd_stop(pid, SIGTERM);
	}
	cr_assert_eq(o[0].n, 9);
	cr_assert_eq(o[1].n, o[0].n);
	for (int i = 0; i < o[0].n; i++) {
		cr_assert_str_eq(o[1].genome[i], o[0].genome[i], "candidate %d", i);
		cr_assert_eq(o[1].fitness[i], o[0].fitness[i], "candidate %d: %.6f with one worker, "
		             "%.6f with three", i, o[0].fitness[i], o[1].fitness[i]);
		cr_assert_eq(o[1].done[i], o[0].done[i], "candidate %d climbed differently", i);
	}
}

/* Issue 16: a job on the universal graft pretrains nothing: the graft it
 * records (and its candidates name) is the shipped grey file; a job
 * asking it for another shape fails saying what the shipped one is. */
Test(daemon, a_job_on_the_universal_graft_pretrains_nothing)
{
	char dir[700], spec[1200], want[65], err[GRAFT_ERRLEN];
	snprintf(dir, sizeof(dir), "%s", scratch_path("universal"));
	nn_weights w;
	cr_assert_eq(nn_safetensors_read(SEARCH_UNIVERSAL_GREY, &w, err, sizeof(err)), 0, "%s",
	             err);
	cr_assert_eq(nn_tensors_sha256(w.t, w.n, want), 0);
	nn_weights_free(&w);
	pid_t pid = graftd_start(dir, 1);
	const char *fmt =
		"name: %s\n"
		"dataset: {dir: %s, validation: 300}\n"
		"search: {strategy: random, candidates: 2, seed: 5}\n"
		"space: {max_blocks: 2, widths: [8], min_stem: 8, max_stem: 8, max_flops: 2000000}\n"
		"train: {steps: 10, batch: 32, lr: 0.05}\n"
		"graft: {source: universal%s}\n";
	snprintf(spec, sizeof(spec), fmt, "universal", data, "");
	int64_t id = graftd_submit(dir, spec);
	wait_state(dir, id, "done", 180);
	json_t *g = graftd_get_json(dir, "/v1/grafts", 200), *gs = json_object_get(g, "grafts");
	cr_assert_eq(json_array_size(gs), 1);
	json_t *g0 = json_array_get(gs, 0);
	cr_assert_str_eq(json_string_value(json_object_get(g0, "source")), "universal");
	cr_assert_str_eq(json_string_value(json_object_get(g0, "sha256")), want,
	                 "the job's graft is not the shipped grey one");
	json_decref(g);
	resp ex = graftd_http(dir, "GET", "/v1/jobs/1/export?rank=1", NULL, NULL);
	cr_assert_eq(ex.status, 200, "%s", ex.body);
	nn_arch a;
	cr_assert_eq(proto_arch_parse(ex.body, ex.len, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(a.graft_sha256, want);
	free(ex.body);

	snprintf(spec, sizeof(spec), fmt, "narrow", data, ", channels: 8");
	id = graftd_submit(dir, spec);
	wait_state(dir, id, "failed", 60);
	char path[64];
	snprintf(path, sizeof(path), "/v1/jobs/%lld", (long long)id);
	json_t *j = graftd_get_json(dir, path, 200);
	const char *why = json_string_value(json_object_get(j, "error"));
	cr_assert(why && strstr(why, "the universal graft is 3x16,3x16"), "%s", why ? why : "-");
	json_decref(j);
	json_decref(graftd_get_json(dir, "/v1/health", 200));
	cr_assert_eq(graftd_stop(pid, SIGTERM), 0);
}
