/*
 * test_slurm.c - graftd's workers on a real one-node Slurm cluster
 * (deploy/slurm/start.sh, stopped after every test, failed ones too): a job
 * under srun finds what the local executor finds; a cancelled worker step is
 * a lost worker whose candidate is retried; a worker Slurm cannot place is
 * reported pending with Slurm's reason and the job fails, saying so; data
 * outside the shared directory is refused at submission.  Skipped, saying
 * so, where the Slurm packages are missing.
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
#include "store/store.h"

/* One cluster at a time on a machine (its ports are fixed): a fixed place,
 * so that a test killed before its teardown is cleaned up by the next. */
#define CLUSTER "/tmp/graft-test-slurm-cluster"

static char shared[700], data[720];

static void setup(void)
{
	scratch_make("slurm");
	signal(SIGPIPE, SIG_IGN);
	snprintf(shared, sizeof(shared), "%s", scratch_path("shared"));
	snprintf(data, sizeof(data), "%.700s/data", shared);
	mkdir(shared, 0755);
	mkdir(data, 0755);
	idx_write_part(data, "train", 1200, 12, 3, 0, 5, 0, 3);
	setenv("SLURM_CONF", CLUSTER "/slurm.conf", 1);
}

static void teardown(void)
{
	graftd_kill_all();
	if (system("deploy/slurm/stop.sh " CLUSTER " > /dev/null 2>&1")) {
		/* Nothing more to do: the next start stops it again. */
	}
	scratch_remove();
}

TestSuite(slurm, .init = setup, .fini = teardown, .timeout = 400);

/* Starts the cluster, or skips the test where Slurm is not installed. */
static void cluster_up(void)
{
	if (access("/usr/sbin/slurmctld", X_OK) || access("/usr/sbin/slurmd", X_OK) ||
	    access("/usr/bin/srun", X_OK) || access("/usr/sbin/munged", X_OK)) {
		fprintf(stderr, "test_slurm: SKIPPED: needs slurmctld, slurmd, slurm-client and "
		        "munge (run deploy/install-deps.sh); the Slurm executor was not tested\n");
		cr_skip_test("no Slurm here");
	}
	if (geteuid() != 0) {
		fprintf(stderr, "test_slurm: SKIPPED: starting slurmd and munged needs root; the "
		        "Slurm executor was not tested\n");
		cr_skip_test("not root");
	}
	int rc = system("deploy/slurm/stop.sh " CLUSTER " > /dev/null 2>&1; "
	                "deploy/slurm/start.sh " CLUSTER);
	cr_assert_eq(rc, 0, "the one-node cluster did not start (see " CLUSTER "/log)");
}

static const char *executor(int cpus, int pending_timeout)
{
	static char buf[1200];
	snprintf(buf, sizeof(buf), "log_level: debug\nexecutor: {kind: slurm, cpus_per_worker: %d, "
	         "pending_timeout: %d, shared_dir: %s}\n", cpus, pending_timeout, shared);
	return buf;
}

static const char *spec(const char *name, int candidates, int steps0, int steps1)
{
	static char buf[1600];
	snprintf(buf, sizeof(buf),
	         "name: %s\n"
	         "dataset: {dir: %s, validation: 300}\n"
	         "search: {strategy: evolution, population: 3, sample: 2, candidates: %d, seed: 5,\n"
	         "         lag: 2, fidelity: {rungs: [%d, %d], eta: 3, slice: 100}}\n"
	         "space: {max_blocks: 3, widths: [8, 16], min_stem: 8, max_stem: 16, "
	         "max_flops: 2000000}\n"
	         "train: {batch: 32, lr: 0.05}\n"
	         "graft: {source: none}\n", name, data, candidates, steps0, steps1);
	return buf;
}

/* squeue's lines "NAME|STATE|REASON|JOBID" for graftd pid's workers. */
static int worker_jobs(pid_t pid, char lines[][200], int max)
{
	char cmd[200], line[200];
	int n = 0;
	snprintf(cmd, sizeof(cmd), "squeue -h -o '%%j|%%T|%%r|%%i' -n graft-%d-w0,graft-%d-w1",
	         (int)pid, (int)pid);
	FILE *p = popen(cmd, "r");
	while (p && n < max && fgets(line, sizeof(line), p)) {
		line[strcspn(line, "\n")] = '\0';
		snprintf(lines[n++], 200, "%s", line);
	}
	if (p)
		pclose(p);
	return n;
}

Test(slurm, a_job_under_srun_finds_what_the_local_executor_finds)
{
	struct outcome o[2];
	cluster_up();
	for (int run = 0; run < 2; run++) {
		char dir[700];
		snprintf(dir, sizeof(dir), "%s", scratch_path(run ? "on-slurm" : "local"));
		pid_t pid = graftd_start_with(dir, 2, run ? executor(1, 120) : "log_level: debug\n");
		int64_t id = graftd_submit(dir, spec("same", 9, 10, 30));
		if (run) {
			/* squeue shows the two workers as jobs of their own while it runs. */
			char lines[4][200];
			int running = 0;
			for (double t0 = test_now(); running < 2 && test_now() - t0 < 60; test_nap(0.1)) {
				int n = worker_jobs(pid, lines, 4);
				running = 0;
				for (int i = 0; i < n; i++)
					running += strstr(lines[i], "|RUNNING|") != NULL;
			}
			cr_assert_eq(running, 2, "squeue lists %d running worker jobs", running);
			json_t *h = graftd_get_json(dir, "/v1/health", 200);
			cr_assert_str_eq(json_string_value(json_object_get(h, "executor")), "slurm");
			json_decref(h);
		}
		wait_state(dir, id, "done", 300);
		read_outcome(dir, id, &o[run]);
		graftd_stop(pid, SIGTERM);
		if (run) {
			/* The workers wrote their weights in the shared directory; the
			 * data directory holds graftd's store alone. */
			struct stat st;
			char path[800];
			snprintf(path, sizeof(path), "%s/weights", shared);
			cr_assert(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
			snprintf(path, sizeof(path), "%s/weights", dir);
			cr_assert(stat(path, &st) != 0, "weights in the data directory");
		}
	}
	cr_assert_eq(o[0].n, 9);
	cr_assert_eq(o[1].n, o[0].n);
	for (int i = 0; i < o[0].n; i++) {
		cr_assert_str_eq(o[1].genome[i], o[0].genome[i], "candidate %d", i);
		cr_assert_eq(o[1].fitness[i], o[0].fitness[i], "candidate %d: %.6f here, %.6f on "
		             "Slurm", i, o[0].fitness[i], o[1].fitness[i]);
	}
}

Test(slurm, a_cancelled_worker_step_is_lost_and_its_candidate_retried)
{
	char dir[700];
	cluster_up();
	snprintf(dir, sizeof(dir), "%s", scratch_path("cancel"));
	pid_t pid = graftd_start_with(dir, 2, executor(1, 120));
	int64_t id = graftd_submit(dir, spec("cancel", 6, 200, 600));

	/* A worker busy with progress: its Slurm job is cancelled mid-candidate. */
	int slot = -1;
	for (double t0 = test_now(); slot < 0 && test_now() - t0 < 120; test_nap(0.05)) {
		json_t *w = graftd_get_json(dir, "/v1/workers", 200), *x;
		size_t i;
		json_array_foreach(json_object_get(w, "workers"), i, x) {
			json_t *t = json_object_get(x, "task");
			if (t && json_integer_value(json_object_get(t, "step")) > 0 && slot < 0)
				slot = (int)json_integer_value(json_object_get(x, "slot"));
		}
		json_decref(w);
	}
	cr_assert_geq(slot, 0, "no worker was seen busy");
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "scancel -n graft-%d-w%d", (int)pid, slot);
	cr_assert_eq(system(cmd), 0);
	wait_state(dir, id, "done", 300);

	struct outcome o;
	read_outcome(dir, id, &o);
	int retried = 0;
	for (int i = 0; i < o.n; i++) {
		cr_assert_geq(o.done[i], 1, "candidate %d not done", i);
		retried += o.failed[i];
	}
	cr_assert_eq(retried, 1, "one attempt was lost with the cancelled step");
	json_t *h = graftd_get_json(dir, "/v1/health", 200);
	cr_assert_geq(json_integer_value(json_object_get(json_object_get(h, "workers"),
	                                                 "restarts")), 1);
	json_decref(h);
	graftd_stop(pid, SIGTERM);
}

Test(slurm, a_worker_slurm_cannot_place_is_pending_and_the_job_fails_saying_why)
{
	char dir[700];
	cluster_up();
	snprintf(dir, sizeof(dir), "%s", scratch_path("pending"));
	/* More CPUs than the node has: Slurm keeps the job pending for ever. */
	int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN) + 1;
	pid_t pid = graftd_start_with(dir, 1, executor(cpus, 8));
	int pending = 0;
	for (double t0 = test_now(); !pending && test_now() - t0 < 60; test_nap(0.2)) {
		json_t *w = graftd_get_json(dir, "/v1/workers", 200);
		json_t *x = json_array_get(json_object_get(w, "workers"), 0);
		const char *st = json_string_value(json_object_get(x, "state"));
		const char *why = json_string_value(json_object_get(x, "slurm"));
		if (st && !strcmp(st, "pending")) {
			cr_assert(why && strstr(why, "PENDING (PartitionConfig)"), "%s", why);
			pending = 1;
		}
		json_decref(w);
	}
	cr_assert(pending, "the worker was never reported pending");
	resp m = graftd_http(dir, "GET", "/v1/metrics", NULL, NULL);
	cr_assert(strstr(m.body, "graft_workers{state=\"pending\"} 1"), "%s", m.body);
	free(m.body);
	cmd_run *h = graft_cmd("health", "--socket", graftd_socket(dir), NULL);
	cr_assert_eq(h->code, 0, "%s", h->err);
	cr_assert(strstr(h->out, "1 pending in Slurm's queue") &&
	          strstr(h->out, "worker 0: PENDING (PartitionConfig)"), "%s", h->out);
	int64_t id = graftd_submit(dir, spec("pending", 3, 10, 30));
	for (double t0 = test_now(); test_now() - t0 < 60; test_nap(0.2))
		if (!strcmp(job_state(dir, id, NULL), "failed"))
			break;
	char path[64];
	snprintf(path, sizeof(path), "/v1/jobs/%lld", (long long)id);
	json_t *j = graftd_get_json(dir, path, 200);
	const char *err = json_string_value(json_object_get(j, "error"));
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "failed");
	cr_assert(err && strstr(err, "no worker has started") && strstr(err, "PartitionConfig"),
	          "%s", err);
	json_decref(j);
	/* The daemon keeps serving, and says the same of its worker. */
	json_decref(graftd_get_json(dir, "/v1/health", 200));
	graftd_stop(pid, SIGTERM);
}

/* A config graftd cannot honour with Slurm is refused at start, in a
 * sentence, before any worker is asked for. */
Test(slurm, a_config_that_cannot_work_is_refused_at_start)
{
	static const struct { const char *config, *says; } bad[] = {
		{ "executor: {kind: slurm}\n", "executor.shared_dir" },
		{ "executor: {kind: slurm, shared_dir: /tmp}\nworker_command: [nice]\n",
		  "worker_command and executor (slurm) both" },
		{ "executor: {kind: slurm, shared_dir: /tmp}\nmemory_mb: 100\n",
		  "use executor.mem_per_worker" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char dir[700], name[16], text[8192] = "";
		snprintf(name, sizeof(name), "bad%zu", i);
		snprintf(dir, sizeof(dir), "%s", scratch_path(name));
		pid_t pid = graftd_spawn(dir, 1, bad[i].config);
		int status = graftd_stop(pid, 0);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0, "%s: graftd started",
		          bad[i].config);
		/* What it said: on stderr, or in its log once that is open. */
		const char *files[] = { "stderr.txt", "graftd.log" };
		for (int k = 0; k < 2; k++) {
			char path[760];
			snprintf(path, sizeof(path), "%s/%s", dir, files[k]);
			FILE *f = fopen(path, "r");
			size_t len = strlen(text);
			if (f) {
				text[len + fread(text + len, 1, sizeof(text) - len - 1, f)] = '\0';
				fclose(f);
			}
		}
		cr_assert(strstr(text, bad[i].says), "%s: '%s' lacks '%s'", bad[i].config, text,
		          bad[i].says);
	}
}

Test(slurm, data_outside_the_shared_directory_is_refused_at_submission)
{
	char dir[700], outside[700], text[1600];
	cluster_up();
	snprintf(dir, sizeof(dir), "%s", scratch_path("refuse"));
	snprintf(outside, sizeof(outside), "%s", scratch_path("elsewhere"));
	mkdir(outside, 0755);
	idx_write_part(outside, "train", 600, 12, 3, 0, 5, 0, 3);
	pid_t pid = graftd_start_with(dir, 1, executor(1, 120));
	snprintf(text, sizeof(text), "name: x\ndataset: {dir: %s, validation: 100}\n"
	         "graft: {source: none}\n", outside);
	resp r = graftd_http(dir, "POST", "/v1/jobs", "application/yaml", text);
	cr_assert_eq(r.status, 422, "%s", r.body);
	cr_assert(strstr(r.body, "is not in executor.shared_dir"), "%s", r.body);
	free(r.body);
	json_decref(graftd_get_json(dir, "/v1/health", 200));
	graftd_stop(pid, SIGTERM);
}

/* Each candidate's done evaluations: at most one per rung (nothing trained
 * twice), and every candidate scored. */
static void expect_nothing_twice(const char *dir, int64_t job, int n)
{
	char db[760], err[GRAFT_ERRLEN];
	store *s;
	store_candidate *c;
	int nc;
	snprintf(db, sizeof(db), "%s/graft.db", dir);
	cr_assert_eq(store_open(db, &s, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(store_candidates(s, job, &c, &nc), 0);
	cr_assert_eq(nc, n);
	for (int i = 0; i < nc; i++) {
		store_eval *e;
		int ne, done[8] = { 0 };
		cr_assert_eq(store_evals_of(s, c[i].id, &e, &ne), 0);
		for (int k = 0; k < ne; k++)
			if (e[k].status == STORE_EVAL_DONE && e[k].rung >= 0 && e[k].rung < 8)
				cr_assert_eq(++done[e[k].rung], 1, "candidate %d trained twice at rung %d", i,
				             e[k].rung);
		cr_assert_eq(done[0], 1, "candidate %d was never scored", i);
		free(e);
	}
	store_candidates_free(c, nc);
	store_close(s);
}

/* graftd under sbatch (deploy/graftd.sbatch): Slurm id of the allocation. */
static long sbatch_graftd(const char *dir)
{
	char cmd[2400], exe[700], line[64] = "";
	cr_assert_not_null(realpath(GRAFTD_BIN, exe));
	snprintf(cmd, sizeof(cmd), "GRAFT_SHARED_DIR=%s GRAFT_DATA_DIR=%s GRAFT_BIN=%s GRAFT_DRAIN=3 "
	         "sbatch --parsable --output=%s/sbatch-%%j.out deploy/graftd.sbatch", shared, dir,
	         exe, shared);
	FILE *p = popen(cmd, "r");
	cr_assert(p && fgets(line, sizeof(line), p), "sbatch said nothing");
	pclose(p);
	long id = atol(line);
	cr_assert_gt(id, 0, "sbatch: '%s'", line);
	/* Up when its socket answers (graftd_connect retries a busy queue only). */
	for (double t0 = test_now(); test_now() - t0 < 60; test_nap(0.1)) {
		int fd = graftd_connect(dir);
		if (fd >= 0) {
			close(fd);
			return id;
		}
	}
	cr_assert_fail("graftd under sbatch did not start (see %s/sbatch-%ld.out)", shared, id);
	return id;
}

static int slurm_job_alive(long id)
{
	char cmd[128], line[64] = "";
	snprintf(cmd, sizeof(cmd), "squeue -h -j %ld -o %%T 2>/dev/null", id);
	FILE *p = popen(cmd, "r");
	int alive = p && fgets(line, sizeof(line), p) && line[0];
	if (p)
		pclose(p);
	return alive;
}

Test(slurm, graftd_under_sbatch_cancelled_then_resubmitted_finishes_the_job)
{
	char dir[700], cmd[128];
	cluster_up();
	snprintf(dir, sizeof(dir), "%s", scratch_path("sb"));
	long first = sbatch_graftd(dir);
	int64_t id = graftd_submit(dir, spec("sbatch", 9, 100, 300));
	int evaluated = 0;
	for (double t0 = test_now(); evaluated < 2 && test_now() - t0 < 120; test_nap(0.1))
		job_state(dir, id, &evaluated);
	cr_assert_geq(evaluated, 2);
	/* The workers are steps of graftd's allocation. */
	char steps[2048] = "", line[200];
	snprintf(cmd, sizeof(cmd), "squeue -h -s -j %ld -o %%j", first);
	FILE *p = popen(cmd, "r");
	while (p && fgets(line, sizeof(line), p))
		strncat(steps, line, sizeof(steps) - strlen(steps) - 1);
	if (p)
		pclose(p);
	cr_assert(strstr(steps, "-w0\n") && strstr(steps, "-w1\n"), "the allocation's steps: %s",
	          steps);
	snprintf(cmd, sizeof(cmd), "scancel %ld", first);
	cr_assert_eq(system(cmd), 0);
	for (double t0 = test_now(); slurm_job_alive(first) && test_now() - t0 < 60; test_nap(0.2))
		;
	cr_assert(!slurm_job_alive(first), "the cancelled allocation is still there");
	cr_assert_lt(graftd_connect(dir), 0, "graftd outlived its allocation");

	long second = sbatch_graftd(dir);
	cr_assert_neq(second, first);
	wait_state(dir, id, "done", 300);
	expect_nothing_twice(dir, id, 9);
	snprintf(cmd, sizeof(cmd), "scancel %ld", second);
	cr_assert_eq(system(cmd), 0);
}
