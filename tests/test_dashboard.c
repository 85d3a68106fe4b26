/*
 * test_dashboard.c - the dashboard in a real browser: graftd runs a small
 * job with its API on a loopback port, and tests/browser/check.js opens the
 * page in Debian's headless Chromium (puppeteer-core) and checks it against
 * the API: every candidate of the leaderboard is a point of the history,
 * the points marked on each Pareto chart are exactly the API's front, the
 * table's numbers are the API's, and no JavaScript error is thrown or
 * logged.  Screenshots at 1280x800 and 390x844 are kept in
 * build/test-artifacts/.  Skipped, saying so, without Chromium or Node.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/support/graftd_jobs.h"
#include "tests/support/graftd_run.h"
#include "tests/support/idx_write.h"
#include "tests/support/scratch.h"

#define PUPPETEER "tests/browser/node_modules/puppeteer-core/package.json"
#define CHROMIUM "/usr/bin/chromium"
#define ARTIFACTS "build/test-artifacts"

static void setup(void)
{
	scratch_make("dashboard");
	setenv("GRAFT_CACHE_DIR", scratch_path("grafts"), 1);
	signal(SIGPIPE, SIG_IGN);
}

static void teardown(void)
{
	graftd_kill_all();
	scratch_remove();
}

TestSuite(dashboard, .init = setup, .fini = teardown, .timeout = 300);

Test(dashboard, the_page_shows_what_the_api_says_in_a_real_browser)
{
	char dir[700], data[700], spec[1600], cmd[2000];

	if (access(CHROMIUM, X_OK) || access(PUPPETEER, R_OK) ||
	    system("node --version > /dev/null 2>&1")) {
		fprintf(stderr, "test_dashboard: SKIPPED: needs %s, node and %s (run "
		        "deploy/install-deps.sh); the dashboard was not checked in a browser\n",
		        CHROMIUM, PUPPETEER);
		cr_skip_test("no browser here");
	}
	snprintf(data, sizeof(data), "%s", scratch_path("data"));
	cr_assert_eq(mkdir(data, 0755), 0);
	idx_write_part(data, "train", 1500, 12, 3, 0, 5, 0, 3);
	snprintf(dir, sizeof(dir), "%s", scratch_path("d"));
	pid_t pid = graftd_start_with(dir, 2, "http: 127.0.0.1:0\n");
	int port = graftd_http_port(dir);
	snprintf(spec, sizeof(spec),
	         "name: dashboard\n"
	         "dataset: {dir: %s, validation: 300}\n"
	         "search: {strategy: evolution, population: 4, sample: 2, candidates: 16, seed: 3,\n"
	         "         fidelity: {rungs: [10, 30], eta: 3, slice: 100}}\n"
	         "space: {max_blocks: 3, widths: [8, 16], min_stem: 8, max_stem: 16, "
	         "max_flops: 2000000}\n"
	         "train: {batch: 32, lr: 0.05}\n"
	         "graft: {source: none}\n", data);
	int64_t id = graftd_submit(dir, spec);
	wait_state(dir, id, "done", 240);
	mkdir("build", 0755);
	mkdir(ARTIFACTS, 0755);
	snprintf(cmd, sizeof(cmd), "node tests/browser/check.js http://127.0.0.1:%d %lld %s 2>&1",
	         port, (long long)id, ARTIFACTS);
	FILE *p = popen(cmd, "r");
	char said[8192] = "";
	size_t n = fread(said, 1, sizeof(said) - 1, p);
	said[n] = '\0';
	int status = pclose(p);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the page disagrees with the API "
	          "or threw:\n%s", said);
	cr_assert(strstr(said, "\"points\":1"), "too few points: %s", said);
	struct stat st;
	cr_assert(stat(ARTIFACTS "/dashboard-1280.png", &st) == 0 && st.st_size > 10000);
	cr_assert(stat(ARTIFACTS "/dashboard-390.png", &st) == 0 && st.st_size > 10000);
	graftd_stop(pid, SIGTERM);
}

static json_int_t jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* The figures the dashboard draws besides the leaderboard, from the API:
 * what a busy worker is doing, every trained evaluation's loss curve (the
 * progress lines its worker sent), the cost per candidate and what saved
 * it, and the best candidate's lineage. */
Test(dashboard, workers_curves_costs_and_lineage_say_what_the_job_did)
{
	char dir[700], data[700], spec[1600];

	snprintf(data, sizeof(data), "%s", scratch_path("data"));
	cr_assert_eq(mkdir(data, 0755), 0);
	idx_write_part(data, "train", 1200, 12, 3, 0, 5, 0, 3);
	snprintf(dir, sizeof(dir), "%s", scratch_path("w"));
	pid_t pid = graftd_start(dir, 2);
	snprintf(spec, sizeof(spec),
	         "name: figures\n"
	         "dataset: {dir: %s, validation: 300}\n"
	         "search: {strategy: evolution, population: 4, sample: 2, candidates: 12, seed: 5,\n"
	         "         fidelity: {rungs: [40, 400], eta: 3, slice: 100}}\n"
	         "space: {max_blocks: 3, widths: [8, 16], min_stem: 8, max_stem: 16, "
	         "max_flops: 2000000}\n"
	         "train: {batch: 32, lr: 0.05}\n"
	         "graft: {source: none}\n", data);
	int64_t id = graftd_submit(dir, spec);

	/* A busy worker with progress: its pid is one of graftd's workers, its
	 * task names this job and its step is within its steps. */
	pid_t wpids[4];
	int nw = graftd_workers(pid, wpids, 4), seen = 0;
	for (double t0 = test_now(); !seen && test_now() - t0 < 120; test_nap(0.01)) {
		json_t *w = graftd_get_json(dir, "/v1/workers", 200), *x;
		size_t i;
		cr_assert_eq(json_array_size(json_object_get(w, "workers")), 2);
		json_array_foreach(json_object_get(w, "workers"), i, x) {
			json_t *t = json_object_get(x, "task");
			if (strcmp(json_string_value(json_object_get(x, "state")), "busy") || !t ||
			    jint(t, "step") < 1)
				continue;
			cr_assert_eq(jint(t, "job"), id);
			cr_assert_str_eq(json_string_value(json_object_get(t, "kind")), "search");
			cr_assert_leq(jint(t, "step"), jint(t, "steps"));
			cr_assert(json_is_number(json_object_get(t, "loss")));
			int mine = 0;
			for (int k = 0; k < nw; k++)
				mine |= wpids[k] == jint(x, "pid");
			cr_assert(mine, "worker pid %lld is not one of graftd's", (long long)jint(x, "pid"));
			seen = 1;
		}
		json_decref(w);
	}
	cr_assert(seen, "no worker was ever seen busy with progress");
	wait_state(dir, id, "done", 240);

	/* Each trained evaluation has its curve: steps rising to the steps it
	 * trained, finite losses. */
	char path[128];
	snprintf(path, sizeof(path), "/v1/jobs/%lld/leaderboard?limit=100", (long long)id);
	json_t *board = graftd_get_json(dir, path, 200), *row;
	size_t i, curves = 0;
	json_array_foreach(json_object_get(board, "candidates"), i, row) {
		snprintf(path, sizeof(path), "/v1/candidates/%lld", (long long)jint(row, "candidate"));
		json_t *c = graftd_get_json(dir, path, 200), *e;
		size_t k;
		json_array_foreach(json_object_get(c, "evaluations"), k, e) {
			json_t *curve = json_object_get(e, "curve");
			if (strcmp(json_string_value(json_object_get(e, "status")), "done") ||
			    json_is_true(json_object_get(e, "cached")))
				continue;
			cr_assert(json_array_size(curve) > 0, "candidate %lld: no curve",
			          (long long)jint(row, "candidate"));
			json_int_t last = 0;
			for (size_t p = 0; p < json_array_size(curve); p++) {
				json_t *pt = json_array_get(curve, p);
				json_int_t step = json_integer_value(json_array_get(pt, 0));
				cr_assert_gt(step, last, "steps rise");
				cr_assert(json_number_value(json_array_get(pt, 1)) > 0);
				last = step;
			}
			/* A climb trains the rest of its rung: 360 steps of its own. */
			cr_assert_eq(last, jint(e, "steps"), "the curve ends at %lld of %lld steps",
			             (long long)last, (long long)jint(e, "steps"));
			cr_assert_eq(jint(e, "steps"), jint(e, "rung") ? 360 : 40);
			curves++;
		}
		json_decref(c);
	}
	cr_assert_geq(curves, 2);

	/* Costs: the parts cover every candidate, and the candidates stopped at
	 * the first rung are early-stopping's saving. */
	snprintf(path, sizeof(path), "/v1/jobs/%lld", (long long)id);
	json_t *job = graftd_get_json(dir, path, 200);
	snprintf(path, sizeof(path), "/v1/jobs/%lld/costs?parts=3", (long long)id);
	json_t *costs = graftd_get_json(dir, path, 200), *part;
	json_int_t candidates = 0, stopped = 0;
	double cpu = 0, saved = 0;
	json_array_foreach(json_object_get(costs, "parts"), i, part) {
		candidates += jint(part, "candidates");
		stopped += jint(part, "stopped_early");
		cpu += json_number_value(json_object_get(part, "cpu_s"));
		saved += json_number_value(json_object_get(json_object_get(part, "saved_cpu_s"),
		                                           "early_stopping"));
	}
	json_t *progress = json_object_get(job, "progress");
	cr_assert_eq(candidates, jint(progress, "evaluated"));
	cr_assert_float_eq(cpu, json_number_value(json_object_get(json_object_get(job, "cost"),
	                                                          "cpu_s")), 1e-6);
	json_int_t at0 = json_integer_value(json_array_get(json_object_get(job, "stopped_at_rung"),
	                                                   0));
	cr_assert(stopped >= 1 && stopped <= at0, "%lld stopped early, %lld at rung 0",
	          (long long)stopped, (long long)at0);
	cr_assert_gt(saved, 0.0);

	/* The lineage of the best: from a random sample, each a child of the
	 * one before, the gain the difference of their scores. */
	snprintf(path, sizeof(path), "/v1/jobs/%lld/lineage", (long long)id);
	json_t *lin = graftd_get_json(dir, path, 200), *chain = json_object_get(lin, "lineage");
	size_t n = json_array_size(chain);
	cr_assert_geq(n, 1);
	cr_assert_eq(jint(lin, "candidate"), jint(json_object_get(job, "best"), "candidate"));
	cr_assert_eq(jint(json_array_get(chain, n - 1), "candidate"), jint(lin, "candidate"));
	cr_assert(json_is_null(json_object_get(json_array_get(chain, 0), "parent_seq")));
	for (i = 1; i < n; i++) {
		json_t *a = json_array_get(chain, i - 1), *b = json_array_get(chain, i);
		cr_assert_eq(jint(b, "parent_seq"), jint(a, "seq"));
		cr_assert_neq(strlen(json_string_value(json_object_get(b, "mutation"))), 0);
		cr_assert_float_eq(json_number_value(json_object_get(b, "gain")),
		                   json_number_value(json_object_get(b, "fitness")) -
		                   json_number_value(json_object_get(a, "fitness")), 1e-12);
	}
	snprintf(path, sizeof(path), "/v1/jobs/%lld/lineage?candidate=x", (long long)id);
	json_decref(graftd_get_json(dir, path, 400));
	snprintf(path, sizeof(path), "/v1/jobs/%lld/lineage?candidate=99999", (long long)id);
	json_decref(graftd_get_json(dir, path, 404));
	snprintf(path, sizeof(path), "/v1/jobs/%lld/costs?parts=0", (long long)id);
	json_decref(graftd_get_json(dir, path, 400));
	resp post = graftd_http(dir, "POST", "/v1/workers", "application/json", "{}");
	cr_assert_eq(post.status, 405);
	free(post.body);
	json_decref(lin);
	json_decref(costs);
	json_decref(job);
	json_decref(board);
	graftd_stop(pid, SIGTERM);
}

/* deploy/grafana-dashboard.json asks only for metrics graftd exports. */
Test(dashboard, the_grafana_example_reads_real_metrics)
{
	char dir[700];
	json_error_t je;
	json_t *d = json_load_file("deploy/grafana-dashboard.json", 0, &je);
	cr_assert_not_null(d, "deploy/grafana-dashboard.json: line %d: %s", je.line, je.text);
	snprintf(dir, sizeof(dir), "%s", scratch_path("m"));
	pid_t pid = graftd_start(dir, 1);
	resp m = graftd_http(dir, "GET", "/v1/metrics", NULL, NULL);
	cr_assert_eq(m.status, 200);
	size_t i, k, names = 0;
	json_t *panel, *target;
	json_array_foreach(json_object_get(d, "panels"), i, panel)
		json_array_foreach(json_object_get(panel, "targets"), k, target) {
			const char *e = json_string_value(json_object_get(target, "expr"));
			cr_assert_not_null(e, "panel %zu has a target without expr", i);
			for (const char *p = strstr(e, "graft_"); p; p = strstr(p + 1, "graft_")) {
				char name[96], line[120];
				size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
				snprintf(name, sizeof(name), "%.*s", (int)n, p);
				/* A sample line starts with the name, then a label set or a space. */
				snprintf(line, sizeof(line), "\n%s{", name);
				int found = strstr(m.body, line) != NULL;
				snprintf(line, sizeof(line), "\n%s ", name);
				found |= strstr(m.body, line) != NULL;
				cr_assert(found, "panel '%s' asks for %s, which /v1/metrics lacks",
				          json_string_value(json_object_get(panel, "title")), name);
				names++;
			}
		}
	cr_assert_geq(names, 6);
	free(m.body);
	json_decref(d);
	graftd_stop(pid, SIGTERM);
}
