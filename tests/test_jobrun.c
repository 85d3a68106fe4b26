/*
 * test_jobrun.c - a job in motion without workers: tasks taken from a
 * jobrun on a real store and ended by hand, to check the bookkeeping that
 * the driver relies on (each task ends once, whatever calls end it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include "daemon/runtime/runtime.h"
#include "store/store.h"
#include "tests/support/idx_write.h"
#include "tests/support/scratch.h"

static store *st;
static rt_jobrun *jr;

static void setup(void)
{
	char data[600], db[600], err[GRAFT_ERRLEN], spec[1200];
	scratch_make("jobrun");
	snprintf(data, sizeof(data), "%s", scratch_path("data"));
	cr_assert_eq(mkdir(data, 0755), 0);
	idx_write_part(data, "train", 600, 12, 3, 0, 5, 0, 3);
	snprintf(db, sizeof(db), "%s", scratch_path("graft.db"));
	cr_assert_eq(store_open(db, &st, err, sizeof(err)), 0, "%s", err);
	snprintf(spec, sizeof(spec),
	         "dataset: {dir: %s, validation: 100}\n"
	         "search: {population: 3, sample: 2, candidates: 4, seed: 5}\n"
	         "space: {max_blocks: 2, widths: [8], min_stem: 8, max_stem: 8}\n"
	         "train: {steps: 10, batch: 16}\n"
	         "graft: {source: none}\n", data);
	store_job j = { .spec = spec, .total = 4, .steps = 10, .state = STORE_JOB_RUNNING };
	snprintf(j.name, sizeof(j.name), "jobrun");
	cr_assert_eq(store_job_add(st, &j), 0, "%s", store_errmsg(st));
	rt_jobrun_dirs dirs = { .weights = scratch_path("weights") };
	cr_assert_eq(rt_jobrun_open(st, j.id, &dirs, NULL, NULL, &jr, err, sizeof(err)), 0, "%s", err);
}

static void teardown(void)
{
	rt_jobrun_free(jr);
	store_close(st);
	scratch_remove();
}

TestSuite(jobrun, .init = setup, .fini = teardown, .timeout = 60);

static int in_flight(void)
{
	rt_jobrun_stats s;
	rt_jobrun_get_stats(jr, &s);
	return s.in_flight;
}

/* Issue 10, bug 2: on Ctrl-C `graft search` abandoned every busy task, then
 * the killed worker's loss abandoned it again: in_flight went negative and
 * the candidate was queued twice. */
Test(jobrun, a_task_ended_twice_counts_once)
{
	char err[GRAFT_ERRLEN];
	rt_jobrun_task a, b;
	cr_assert_eq(rt_jobrun_next(jr, &a, NULL, err, sizeof(err)), 1, "%s", err);
	cr_assert(a.live);
	cr_assert_eq(in_flight(), 1);
	rt_jobrun_abandon(jr, &a);
	rt_jobrun_abandon(jr, &a);
	cr_assert_eq(in_flight(), 0, "abandoned twice, counted twice");
	cr_assert(!a.live);
	cr_assert_eq(rt_jobrun_failure(jr, &a, "lost", "", err, sizeof(err)), 0);
	cr_assert_eq(in_flight(), 0);

	/* The candidate comes back once, then the strategy asks new ones. */
	int seqs[4], n = 0;
	rt_jobrun_task t[4];
	while (n < 4 && rt_jobrun_next(jr, &t[n], NULL, err, sizeof(err)) == 1) {
		seqs[n] = t[n].seq;
		n++;
	}
	cr_assert_eq(n, 4, "%s", err);
	cr_assert_eq(seqs[0], a.seq, "the abandoned candidate runs first");
	for (int i = 0; i < n; i++)
		for (int k = i + 1; k < n; k++)
			cr_assert_neq(seqs[i], seqs[k], "candidate %d handed out twice", seqs[i]);
	cr_assert_eq(in_flight(), 4);
	b = t[0];
	proto_result r = { .val_accuracy = 0.5, .val_loss = 1, .train_loss = 1, .steps = 10 };
	cr_assert_eq(rt_jobrun_result(jr, &b, &r, "test", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rt_jobrun_result(jr, &b, &r, "test", err, sizeof(err)), 0);
	cr_assert_eq(in_flight(), 3);
	for (int i = 1; i < n; i++)
		rt_jobrun_abandon(jr, &t[i]);
	cr_assert_eq(in_flight(), 0);
}
