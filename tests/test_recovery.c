/*
 * test_recovery.c - graftd killed, restarted and starved, end to end: the
 * real bin/graftd on a scratch directory, killed with SIGKILL at moments
 * chosen by the states it reports, and its store read back to check that
 * every job ends as an uninterrupted run would, with nothing lost or
 * evaluated twice.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <criterion/criterion.h>

#include "tests/support/graftd_jobs.h"
#include "tests/support/graftd_run.h"
#include "tests/support/idx_write.h"
#include "tests/support/scratch.h"

static char data[600];

static void setup(void)
{
	scratch_make("recovery");
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

TestSuite(recovery, .init = setup, .fini = teardown, .timeout = 600);

/* A job spec on the scratch dataset; graft is a graft: section's value. */
static int64_t submit_job(const char *dir, int candidates, int steps, const char *graft)
{
	char spec[1600];
	snprintf(spec, sizeof(spec),
	         "name: recovery\n"
	         "dataset: {dir: %s, validation: 300}\n"
	         "search: {strategy: evolution, population: 3, sample: 2, candidates: %d, seed: 5}\n"
	         "space: {max_blocks: 3, widths: [8, 16], min_stem: 8, max_stem: 16, "
	         "max_flops: 2000000}\n"
	         "train: {steps: %d, batch: 32, lr: 0.05}\n"
	         "graft: %s\n",
	         data, candidates, steps, graft);
	return graftd_submit(dir, spec);
}

/* Issue 10, bug 1: killed before any result, while both workers train the
 * first two candidates, graftd used to fail the job on restart with an
 * empty error, for good. */
Test(recovery, kill9_before_the_first_result_resumes_the_job)
{
	char dir[700];
	snprintf(dir, sizeof(dir), "%s", scratch_path("first"));
	pid_t pid = graftd_start(dir, 2);
	int64_t id = submit_job(dir, 5, 400, "{source: none}");
	int evaluated = 0, in_flight = 0;
	double t0 = test_now();
	while (test_now() - t0 < 60) {
		job_progress(dir, id, &evaluated, &in_flight);
		if (in_flight == 2 || evaluated > 0)
			break;
		test_nap(0.02);
	}
	cr_assert_eq(evaluated, 0, "a result came before both workers were busy");
	cr_assert_eq(in_flight, 2, "the two workers never both trained");
	int status = graftd_stop(pid, SIGKILL);
	cr_assert(WIFSIGNALED(status));

	pid = graftd_start(dir, 2);
	wait_state(dir, id, "done", 300);
	struct outcome o;
	read_outcome(dir, id, &o);
	expect_each_once(&o, 5);
	/* The two candidates in flight at the kill were interrupted, not failed. */
	for (int i = 0; i < 2; i++)
		cr_assert_eq(o.failed[i], 1, "candidate %d: %d failed attempts", i, o.failed[i]);
	graftd_stop(pid, SIGTERM);
}
