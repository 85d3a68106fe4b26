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
