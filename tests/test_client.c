/*
 * test_client.c - the `graft` commands that drive graftd, run as a user runs
 * them against a real daemon: their output, the --json shapes, the exit
 * codes, graftd's errors shown as it wrote them, and what happens when
 * graftd is not running.
 */
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "nn/nn.h"
#include "proto/proto.h"
#include "tests/support/graftd_run.h"
#include "tests/support/idx_write.h"
#include "tests/support/scratch.h"

extern char **environ;

static char dir[700], spec[700];
static pid_t daemon_pid;

/* One graftd for the suite's tests, with one finished job (job 1). */
static void setup(void)
{
	char data[600];
	scratch_make("client");
	snprintf(data, sizeof(data), "%s", scratch_path("data"));
	cr_assert_eq(mkdir(data, 0755), 0);
	idx_write_part(data, "train", 1200, 12, 3, 0, 5, 0, 3);
	setenv("GRAFT_CACHE_DIR", scratch_path("grafts"), 1);
	snprintf(dir, sizeof(dir), "%s", scratch_path("d"));
	snprintf(spec, sizeof(spec), "%s", scratch_path("spec.yaml"));
	FILE *f = fopen(spec, "w");
	fprintf(f, "name: client-test\ndataset: {dir: %s, validation: 200}\n"
	        "search: {population: 3, sample: 2, candidates: 4, seed: 2}\n"
	        "space: {max_blocks: 2, widths: [8], min_stem: 8, max_stem: 8}\n"
	        "train: {steps: 20, batch: 32}\ngraft: {source: none}\n", data);
	fclose(f);
	daemon_pid = graftd_start(dir, 1);
	setenv("GRAFT_SOCKET", graftd_socket(dir), 1);
}

static void teardown(void)
{
	graftd_kill_all();
	scratch_remove();
}

TestSuite(client, .init = setup, .fini = teardown, .timeout = 200);

static void expect(const cmd_run *r, int code, const char *in_out, const char *in_err)
{
	cr_assert_eq(r->code, code, "exit %d, not %d\nstdout: %s\nstderr: %s", r->code, code,
	             r->out, r->err);
	if (in_out)
		cr_assert(strstr(r->out, in_out), "stdout lacks '%s':\n%s", in_out, r->out);
	if (in_err)
		cr_assert(strstr(r->err, in_err), "stderr lacks '%s':\n%s", in_err, r->err);
}

static json_t *json_out(const cmd_run *r)
{
	json_t *j = json_loads(r->out, 0, NULL);
	cr_assert_not_null(j, "--json printed something that is not JSON:\n%s", r->out);
	return j;
}

/* Submits the suite's spec and follows it to the end. */
static void finished_job(void)
{
	cmd_run *r = graft_cmd("submit", spec, NULL);
	expect(r, 0, "job 1 submitted", NULL);
	r = graft_cmd("watch", "1", "--interval", "0.2", NULL);
	expect(r, 0, "job 1: done, 4/4 evaluated", NULL);
}

Test(client, the_whole_round_trip)
{
	finished_job();
	cmd_run *r = graft_cmd("jobs", NULL);
	expect(r, 0, "client-test", NULL);
	cr_assert(strstr(r->out, "done"));
	r = graft_cmd("jobs", "--json", NULL);
	expect(r, 0, NULL, NULL);
	json_t *j = json_out(r);
	cr_assert_eq(json_array_size(json_object_get(j, "jobs")), 1);
	json_decref(j);

	r = graft_cmd("status", "1", NULL);
	expect(r, 0, "4 of 4 evaluated", NULL);
	r = graft_cmd("status", "1", "--json", NULL);
	j = json_out(r);
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
	cr_assert(json_is_object(json_object_get(j, "best")));
	json_decref(j);

	r = graft_cmd("leaderboard", "1", "--limit", "2", NULL);
	expect(r, 0, "RANK", NULL);
	r = graft_cmd("leaderboard", "1", "--sort", "params", "--json", NULL);
	j = json_out(r);
	cr_assert_str_eq(json_string_value(json_object_get(j, "sort")), "params");
	cr_assert_gt(json_array_size(json_object_get(j, "candidates")), 0);
	json_decref(j);

	char arch[700], w[700], err[GRAFT_ERRLEN];
	snprintf(arch, sizeof(arch), "%s", scratch_path("best.yaml"));
	snprintf(w, sizeof(w), "%s", scratch_path("best.safetensors"));
	r = graft_cmd("export", "1", "-o", arch, "--weights", w, NULL);
	expect(r, 0, NULL, NULL);
	nn_arch a;
	cr_assert_eq(proto_arch_load(arch, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert(a.has_result);
	nn_weights wt;
	cr_assert_eq(nn_safetensors_read(w, &wt, err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(nn_weights_find(&wt, "head.weight"));
	nn_weights_free(&wt);
	r = graft_cmd("export", "1", NULL);
	expect(r, 0, "format: graft-arch/1", NULL);

	r = graft_cmd("health", NULL);
	expect(r, 0, "ok", NULL);
	r = graft_cmd("health", "--json", NULL);
	j = json_out(r);
	cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
	json_decref(j);
}

Test(client, graftd_errors_are_shown_as_written)
{
	finished_job();
	cmd_run *r = graft_cmd("pause", "1", NULL);
	expect(r, 1, NULL, "cannot pause job 1: it is done");
	r = graft_cmd("status", "99", NULL);
	expect(r, 1, NULL, "no such job");
	r = graft_cmd("export", "1", "--rank", "50", NULL);
	expect(r, 1, NULL, "no candidate of that rank");
	char bad[700];
	snprintf(bad, sizeof(bad), "%s", scratch_path("bad.yaml"));
	FILE *f = fopen(bad, "w");
	fputs("dataset: {dir: /nowhere}\nsearch: {populaton: 3}\n", f);
	fclose(f);
	r = graft_cmd("submit", bad, NULL);
	expect(r, 1, NULL, "line 2, column 10: search: unknown key 'populaton'");
	r = graft_cmd("cancel", "1", "--json", NULL);
	expect(r, 1, NULL, "it is done");
}

Test(client, pause_resume_cancel)
{
	char slow[700], data[600];
	snprintf(slow, sizeof(slow), "%s", scratch_path("slow.yaml"));
	snprintf(data, sizeof(data), "%s", scratch_path("data"));
	FILE *f = fopen(slow, "w");
	fprintf(f, "dataset: {dir: %s, validation: 200}\nsearch: {candidates: 50}\n"
	        "train: {steps: 100, batch: 32}\ngraft: {source: none}\n", data);
	fclose(f);
	expect(graft_cmd("submit", slow, "--json", NULL), 0, "\"id\": 1", NULL);
	expect(graft_cmd("pause", "1", NULL), 0, "job 1: paused", NULL);
	expect(graft_cmd("resume", "1", NULL), 0, "job 1: running", NULL);
	expect(graft_cmd("cancel", "1", NULL), 0, "job 1: cancelled", NULL);
	expect(graft_cmd("watch", "1", NULL), 1, "cancelled", "job 1 cancelled");
}

Test(client, when_graftd_is_not_running)
{
	setenv("GRAFT_SOCKET", scratch_path("nothing-here.sock"), 1);
	cmd_run *r = graft_cmd("jobs", NULL);
	expect(r, 3, NULL, "graftd is not running");
	cr_assert(strstr(r->err, "graftd &"), "no hint how to start it: %s", r->err);
	r = graft_cmd("health", "--socket", graftd_socket(dir), NULL);
	expect(r, 0, "ok", NULL);
	/* A socket file with nobody behind it. */
	graftd_stop(daemon_pid, SIGKILL);
	r = graft_cmd("health", "--socket", graftd_socket(dir), NULL);
	expect(r, 3, NULL, "Start it with");
}

Test(client, bad_arguments)
{
	expect(graft_cmd("leaderboard", NULL), 2, NULL, "expected JOB");
	expect(graft_cmd("leaderboard", "1", "--sort", "colour", NULL), 2, NULL, "--sort");
	expect(graft_cmd("status", "abc", NULL), 2, NULL, "JOB");
	expect(graft_cmd("status", "1", "--limit", "3", NULL), 2, NULL, "not an option");
	expect(graft_cmd("jobs", "extra", NULL), 2, NULL, "no arguments");
	expect(graft_cmd("submit", scratch_path("missing.yaml"), NULL), 1, NULL, "cannot open");
	expect(graft_cmd("watch", "--help", NULL), 0, "usage: graft watch JOB", NULL);
	expect(graft_cmd("--help", NULL), 0, "submit SPEC.yaml", NULL);
}

/* Options that apply to every client command go before the command too, as
 * with git or kubectl; an unknown one is a usage error naming it. */
Test(client, global_options_before_the_command)
{
	char sock[700];
	snprintf(sock, sizeof(sock), "%s", graftd_socket(dir));
	setenv("GRAFT_SOCKET", scratch_path("nothing-here.sock"), 1);
	expect(graft_cmd("--socket", sock, "health", NULL), 0, "ok", NULL);
	expect(graft_cmd("--socket", sock, "submit", spec, NULL), 0, "job 1 submitted", NULL);
	cmd_run *r = graft_cmd("--socket", sock, "--json", "jobs", NULL);
	expect(r, 0, NULL, NULL);
	json_decref(json_out(r));
	/* The command's own options still apply, and its own --socket wins. */
	expect(graft_cmd("--socket", scratch_path("elsewhere.sock"), "status", "1", "--socket",
	                 sock, NULL), 0, "client-test", NULL);
	expect(graft_cmd("--json", "watch", "1", NULL), 2, NULL, "--json");

	expect(graft_cmd("--bogus", "health", NULL), 2, NULL, "--bogus");
	expect(graft_cmd("--socket", NULL), 2, NULL, "--socket");
	expect(graft_cmd("--socket", sock, NULL), 2, NULL, "command");
	expect(graft_cmd("--socket", sock, "train", "arch.yaml", NULL), 2, NULL, "--socket");
	expect(graft_cmd("--socket", sock, "--help", NULL), 0, "usage: graft", NULL);
}

/* The whole of a small file, NUL-terminated, in a static buffer. */
static const char *file_text(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s", path);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* The route graft export uses: a candidate's architecture by id, the very
 * YAML the job's export by rank gives for it. */
Test(client, a_candidate_exports_by_id)
{
	finished_job();
	json_t *lb = graftd_get_json(dir, "/v1/jobs/1/leaderboard?limit=2", 200);
	json_t *rows = json_object_get(lb, "candidates");
	cr_assert_geq(json_array_size(rows), 2, "fewer than 2 ranked candidates");
	for (int rank = 1; rank <= 2; rank++) {
		char path[96];
		long long id = (long long)json_integer_value(
			json_object_get(json_array_get(rows, (size_t)rank - 1), "candidate"));
		snprintf(path, sizeof(path), "/v1/jobs/1/export?rank=%d", rank);
		resp by_rank = graftd_http(dir, "GET", path, NULL, NULL);
		snprintf(path, sizeof(path), "/v1/candidates/%lld/export", id);
		resp by_id = graftd_http(dir, "GET", path, NULL, NULL);
		cr_assert_eq(by_rank.status, 200, "%s", by_rank.body);
		cr_assert_eq(by_id.status, 200, "GET %s: %d %s", path, by_id.status, by_id.body);
		cr_assert(strstr(by_id.body, "format: graft-arch/1"), "%s", by_id.body);
		cr_assert(strstr(by_id.body, "result: {val_accuracy"), "%s", by_id.body);
		cr_assert_str_eq(by_id.body, by_rank.body, "rank %d, candidate %lld", rank, id);
		free(by_rank.body);
		free(by_id.body);
	}
	json_decref(lb);
	resp none = graftd_http(dir, "GET", "/v1/candidates/999/export", NULL, NULL);
	cr_assert_eq(none.status, 404, "%d %s", none.status, none.body);
	free(none.body);
}

/* The user's sequence: an export with its weights is what graft train
 * --init takes, every tensor by name and shape. */
Test(client, an_export_trains_from_its_weights)
{
	char data[700], arch[700], w[700], out[700];
	snprintf(data, sizeof(data), "%s", scratch_path("data"));
	snprintf(arch, sizeof(arch), "%s", scratch_path("best.yaml"));
	snprintf(w, sizeof(w), "%s", scratch_path("best.safetensors"));
	snprintf(out, sizeof(out), "%s", scratch_path("trained.safetensors"));
	idx_write_part(data, "t10k", 200, 12, 3, 0, 6, 0, 4);
	finished_job();
	expect(graft_cmd("export", "1", "-o", arch, "--weights", w, NULL), 0, NULL, "wrote");
	cmd_run *r = graft_cmd("train", arch, "--init", w, "--steps", "1", "--data", data,
	                       "--validation", "200", "--threads", "1", "--out", out, NULL);
	expect(r, 0, "started from", NULL);
	expect(r, 0, "test accuracy", NULL);
}

/* A stand-in for graftd whose ranking changes between any two requests about
 * the job, as a running job's does: rank 1 is candidate 7, then 8, then 9...
 * Each candidate's architecture and weights say whose they are. */
struct moving {
	int fd, job_requests, leaderboard_requests;
	char paths[16][128];
	int npaths;
};

static void *moving_graftd(void *ctx)
{
	struct moving *m = ctx;
	for (;;) {
		int c = accept(m->fd, NULL, NULL);
		if (c < 0)
			return NULL;
		char req[4096], path[128] = "", body[256];
		size_t got = 0;
		ssize_t n;
		while (got < sizeof(req) - 1 && (n = read(c, req + got, sizeof(req) - 1 - got)) > 0) {
			got += (size_t)n;
			req[got] = '\0';
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		req[got] = '\0';
		sscanf(req, "GET %127s", path);
		if (m->npaths < 16)
			snprintf(m->paths[m->npaths++], sizeof(m->paths[0]), "%s", path);
		int first = 7 + m->job_requests, cand, status = 200;
		long long id;
		if (!strncmp(path, "/v1/jobs/1/leaderboard", 22)) {
			m->job_requests++;
			m->leaderboard_requests++;
			snprintf(body, sizeof(body), "{\"job\":1,\"sort\":\"accuracy\",\"candidates\":"
			         "[{\"rank\":1,\"candidate\":%d,\"val_accuracy\":0.9}]}", first);
		} else if (!strncmp(path, "/v1/jobs/1/export", 17)) {
			m->job_requests++;
			snprintf(body, sizeof(body), "architecture of candidate %d\n", first);
		} else if (sscanf(path, "/v1/candidates/%lld/%n", &id, &cand) == 1 &&
		           (!strcmp(path + cand, "export") || !strcmp(path + cand, "weights"))) {
			snprintf(body, sizeof(body), "%s of candidate %lld\n",
			         path[cand] == 'e' ? "architecture" : "weights", id);
		} else {
			status = 404;
			snprintf(body, sizeof(body), "{\"error\":{\"code\":\"not_found\","
			         "\"message\":\"no such endpoint\"}}");
		}
		char head[256];
		int hl = snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n"
		                  "Connection: close\r\n\r\n", status, strlen(body));
		if (write(c, head, (size_t)hl) < 0 || write(c, body, strlen(body)) < 0)
			m->npaths = 99;
		close(c);
	}
}

/* graft export --weights resolves the rank once and takes the architecture
 * and the weights of that one candidate, however the ranking moves. */
Test(client, export_pairs_one_candidates_architecture_and_weights)
{
	struct moving m = { 0 };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char arch[700], w[700], sock[700];
	snprintf(sock, sizeof(sock), "%s", scratch_path("moving.sock"));
	snprintf(arch, sizeof(arch), "%s", scratch_path("best.yaml"));
	snprintf(w, sizeof(w), "%s", scratch_path("best.safetensors"));
	cr_assert_lt(strlen(sock), sizeof(sa.sun_path), "%s is too long for a socket", sock);
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	m.fd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(bind(m.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(m.fd, 8), 0);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, moving_graftd, &m), 0);

	cmd_run *r = graft_cmd("export", "1", "--socket", sock, "-o", arch, "--weights", w, NULL);
	expect(r, 0, NULL, "candidate 7");
	shutdown(m.fd, SHUT_RDWR);
	pthread_join(t, NULL);
	close(m.fd);
	char paths[2048] = "";
	for (int i = 0; i < m.npaths && i < 16; i++)
		snprintf(paths + strlen(paths), sizeof(paths) - strlen(paths), "  %s\n", m.paths[i]);
	cr_assert_eq(m.leaderboard_requests, 1, "requests:\n%s", paths);
	cr_assert_str_eq(file_text(arch), "architecture of candidate 7\n", "requests:\n%s", paths);
	cr_assert_str_eq(file_text(w), "weights of candidate 7\n", "requests:\n%s", paths);
}

/* After `graft export 1 -o best.yaml --weights best.safetensors`, the next
 * command a user types is `graft train best.yaml --init best.safetensors`:
 * the graft's weights are in the export, and it says where it took them.
 * Without them there, the graft cache (graftd's grafts too) has them by the
 * YAML's sha256; only when neither has them is it the usage error. */
Test(client, an_export_with_a_graft_trains_from_init_alone)
{
	char data[700], gspec[700], arch[700], w[700], bare[700], out[700], empty[700];
	snprintf(data, sizeof(data), "%s", scratch_path("data"));
	snprintf(gspec, sizeof(gspec), "%s", scratch_path("graft-spec.yaml"));
	snprintf(arch, sizeof(arch), "%s", scratch_path("best.yaml"));
	snprintf(w, sizeof(w), "%s", scratch_path("best.safetensors"));
	snprintf(bare, sizeof(bare), "%s", scratch_path("bare.safetensors"));
	snprintf(out, sizeof(out), "%s", scratch_path("trained.safetensors"));
	snprintf(empty, sizeof(empty), "%s", scratch_path("empty"));
	cr_assert_eq(mkdir(empty, 0700), 0);
	idx_write_part(data, "t10k", 200, 12, 3, 0, 6, 0, 4);
	FILE *f = fopen(gspec, "w");
	fprintf(f, "dataset: {dir: %s, validation: 200}\n"
	        "search: {population: 2, sample: 2, candidates: 2, seed: 3}\n"
	        "space: {max_blocks: 2, widths: [8], min_stem: 8, max_stem: 8}\n"
	        "train: {steps: 10, batch: 32}\n"
	        "graft: {source: target, channels: 4, pretrain_steps: 10}\n", data);
	fclose(f);
	expect(graft_cmd("submit", gspec, NULL), 0, "job 1 submitted", NULL);
	expect(graft_cmd("watch", "1", "--interval", "0.2", NULL), 0, "done", NULL);
	expect(graft_cmd("export", "1", "-o", arch, "--weights", w, NULL), 0, NULL, "wrote");
	char err[GRAFT_ERRLEN], line[900];
	nn_arch a;
	cr_assert_eq(proto_arch_load(arch, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert_gt(a.graft_nlayers, 0, "the export has no graft");

	cmd_run *r = graft_cmd("train", arch, "--init", w, "--steps", "1", "--data", data,
	                       "--validation", "200", "--threads", "1", "--out", out, NULL);
	snprintf(line, sizeof(line), "graft: from %s (sha256 %.16s...)", w, a.graft_sha256);
	expect(r, 0, line, NULL);
	expect(r, 0, "test accuracy", NULL);

	/* The same weights without the graft's tensors: from the cache. */
	nn_weights wt;
	cr_assert_eq(nn_safetensors_read(w, &wt, err, sizeof(err)), 0, "%s", err);
	int k = 0;
	for (int i = 0; i < wt.n; i++)
		if (strncmp(wt.t[i].name, "graft.", 6))
			wt.t[k++] = wt.t[i];
	cr_assert_lt(k, wt.n, "the export holds no graft.* tensor");
	cr_assert_eq(nn_safetensors_write(bare, wt.t, k, err, sizeof(err)), 0, "%s", err);
	nn_weights_free(&wt);
	char cache[760], grafts[800];
	snprintf(cache, sizeof(cache), "%s/grafts", dir); /* graftd's: DATA_DIR/grafts */
	snprintf(grafts, sizeof(grafts), "%s/grafts/", cache);
	setenv("GRAFT_DATA_DIR", empty, 1);
	setenv("GRAFT_CACHE_DIR", cache, 1);
	r = graft_cmd("train", arch, "--init", bare, "--steps", "1", "--data", data,
	              "--validation", "200", "--threads", "1", "--out", out, NULL);
	snprintf(line, sizeof(line), "graft: from the cache, %s", grafts);
	expect(r, 0, line, NULL);
	/* graftd's own grafts, found by its default data directory. */
	setenv("GRAFT_DATA_DIR", dir, 1);
	setenv("GRAFT_CACHE_DIR", empty, 1);
	r = graft_cmd("train", arch, "--init", bare, "--steps", "1", "--data", data,
	              "--validation", "200", "--threads", "1", "--out", out, NULL);
	expect(r, 0, line, NULL);

	/* Neither: the usage error, which now names --init too. */
	setenv("GRAFT_DATA_DIR", empty, 1);
	r = graft_cmd("train", arch, "--init", bare, "--steps", "1", "--data", data, "--out",
	              out, NULL);
	expect(r, 2, NULL, "--graft-file");
	expect(r, 2, NULL, "--init");
	expect(r, 2, NULL, a.graft_sha256);
	cr_assert_null(strstr(r->out, "training"), "it trained anyway:\n%s", r->out);
}
