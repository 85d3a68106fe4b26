/*
 * test_final.c - a job's final stage driven by hand: after the search, its
 * best distinct architectures are trained to the end, the winner under
 * final.graft best is tried without the graft as well, and only the winner
 * is scored on the test split; a kill -9 during a training resumes it from
 * its checkpoint.  Tasks are ended with made-up results (and the files a
 * worker would write); real workers run the stage in test_cli.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include "daemon/runtime/runtime.h"
#include "proto/proto.h"
#include "store/store.h"
#include "tests/support/idx_write.h"
#include "tests/support/scratch.h"

static char data_dir[600], db[700], weights[700], graft_dir[700];
static store *st;
static rt_jobrun *jr;
static int64_t job_id;

static void open_job(void)
{
	char err[GRAFT_ERRLEN];
	cr_assert_eq(store_open(db, &st, err, sizeof(err)), 0, "%s", err);
	rt_jobrun_dirs dirs = { .weights = weights, .grafts = graft_dir };
	cr_assert_eq(rt_jobrun_open(st, job_id, &dirs, NULL, NULL, &jr, err, sizeof(err)), 0, "%s",
	             err);
}

/* What a kill -9 leaves: the store as committed, the files as written. */
static void kill_job(void)
{
	rt_jobrun_free(jr);
	store_close(st);
	jr = NULL;
	st = NULL;
}

static void setup(void)
{
	char spec[2000], err[GRAFT_ERRLEN];
	scratch_make("final");
	snprintf(data_dir, sizeof(data_dir), "%s", scratch_path("data"));
	snprintf(db, sizeof(db), "%s", scratch_path("graft.db"));
	snprintf(weights, sizeof(weights), "%s", scratch_path("weights"));
	snprintf(graft_dir, sizeof(graft_dir), "%s", scratch_path("grafts"));
	cr_assert_eq(mkdir(data_dir, 0755), 0);
	idx_write_part(data_dir, "train", 600, 12, 3, 0, 5, 0, 3);
	idx_write_part(data_dir, "t10k", 100, 12, 3, 0, 6, 0, 3);
	snprintf(spec, sizeof(spec),
	         "dataset: {dir: %s, validation: 100}\n"
	         "search: {population: 4, sample: 2, candidates: 6, seed: 5}\n"
	         "space: {max_blocks: 2, widths: [8, 16], min_stem: 8, max_stem: 8}\n"
	         "train: {steps: 10, batch: 16}\n"
	         "graft: {source: target, channels: 4, pretrain_steps: 10}\n"
	         "final: {top: 2, steps: 300, batch: 32, lr: 0.05, graft: best}\n", data_dir);
	cr_assert_eq(store_open(db, &st, err, sizeof(err)), 0, "%s", err);
	store_job j = { .spec = spec, .total = 6, .steps = 10, .state = STORE_JOB_RUNNING };
	snprintf(j.name, sizeof(j.name), "final");
	cr_assert_eq(store_job_add(st, &j), 0, "%s", store_errmsg(st));
	job_id = j.id;
	store_close(st);
	open_job();
}

static void teardown(void)
{
	if (jr)
		kill_job();
	scratch_remove();
}

TestSuite(final, .init = setup, .fini = teardown, .timeout = 120);

static void touch(const char *path)
{
	FILE *f = fopen(path, "w");
	cr_assert(f, "%s", path);
	fputs("x", f);
	fclose(f);
}

static void result(rt_jobrun_task *t, double val, double test)
{
	char err[GRAFT_ERRLEN];
	if (t->task.save)
		touch(t->task.save);
	proto_result r = { .val_accuracy = val, .val_loss = 1, .train_loss = 1, .steps = 10,
	                   .cpu_s = 2, .wall_s = 2, .params = 100, .flops = 1000,
	                   .test_accuracy = test };
	cr_assert_eq(rt_jobrun_result(jr, t, &r, "test", err, sizeof(err)), 0, "%s", err);
}

/* The search, made up: candidate seq scores 0.5 + seq / 100. */
static void run_search(void)
{
	char err[GRAFT_ERRLEN];
	rt_jobrun_task t;
	int rc;
	while ((rc = rt_jobrun_next(jr, &t, NULL, err, sizeof(err))) == 1 &&
	       t.kind == RT_TASK_EVAL)
		result(&t, 0.5 + t.seq / 100.0, NAN);
	cr_assert_eq(rc, 1, "%s", err);
	cr_assert_eq(t.kind, RT_TASK_FINAL, "the search over, the final stage starts");
	rt_jobrun_abandon(jr, &t);
}

static int phase_in_store(void)
{
	store_job j;
	cr_assert_eq(store_job_get(st, job_id, &j), 0);
	store_job_clear(&j);
	return j.final_phase;
}

Test(final, the_top_train_to_the_end_the_winner_tries_without_graft_and_alone_sees_test)
{
	char err[GRAFT_ERRLEN];
	rt_jobrun_task t[2], drop, score, none;
	nn_arch a;

	cr_assert_eq(phase_in_store(), 0);
	run_search();
	cr_assert_eq(phase_in_store(), 1, "the final phase is recorded before it runs");
	cr_assert(!rt_jobrun_complete(jr));

	/* The two best of the search, with the final recipe and the graft
	 * fine-tuned; they run side by side. */
	store_rank *lb;
	int n;
	cr_assert_eq(store_leaderboard(st, job_id, STORE_SORT_ACCURACY, 0, &lb, &n), 0);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(rt_jobrun_next(jr, &t[i], NULL, err, sizeof(err)), 1, "%s", err);
		cr_assert_eq(t[i].kind, RT_TASK_FINAL);
		cr_assert_eq(t[i].candidate_id, lb[i].candidate_id, "final training %d is not of "
		             "leaderboard rank %d", i, i + 1);
		cr_assert_eq(proto_arch_parse(t[i].task.arch, strlen(t[i].task.arch), &a, err,
		                              sizeof(err)), 0, "%s", err);
		cr_assert_eq(a.train.steps, 300);
		cr_assert_eq(a.train.batch, 32);
		cr_assert_float_eq(a.train.lr, 0.05f, 1e-7);
		cr_assert(a.train.crop && a.train.flip, "the final recipe augments by default");
		cr_assert_gt(a.graft_nlayers, 0);
		cr_assert(t[i].task.graft_trainable, "best fine-tunes the graft first");
		cr_assert(t[i].task.checkpoint && t[i].task.checkpoint_every >= 50);
		cr_assert_null(t[i].task.resume);
		cr_assert(!t[i].task.test, "no test split before a winner is chosen");
	}
	free(lb);
	cr_assert_eq(rt_jobrun_next(jr, &none, NULL, err, sizeof(err)), 0,
	             "nothing more until both are done");
	result(&t[0], 0.80, NAN);
	result(&t[1], 0.85, NAN);

	/* The winner, once more without the graft. */
	cr_assert_eq(rt_jobrun_next(jr, &drop, NULL, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(drop.kind, RT_TASK_FINAL);
	cr_assert_eq(drop.candidate_id, t[1].candidate_id);
	cr_assert_eq(proto_arch_parse(drop.task.arch, strlen(drop.task.arch), &a, err,
	                              sizeof(err)), 0, "%s", err);
	cr_assert_eq(a.graft_nlayers, 0);
	cr_assert_null(drop.task.graft_path);
	char drop_weights[4400];
	snprintf(drop_weights, sizeof(drop_weights), "%s", drop.task.save);
	result(&drop, 0.86, NAN);

	/* Dropping the graft was better: that model alone is scored on test. */
	cr_assert_eq(rt_jobrun_next(jr, &score, NULL, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(score.kind, RT_TASK_SCORE);
	cr_assert(score.task.test && score.task.score_only);
	cr_assert_str_eq(score.task.weights_in, drop_weights);
	cr_assert(!rt_jobrun_complete(jr));
	result(&score, 0.86, 0.84);
	cr_assert(rt_jobrun_complete(jr));
	cr_assert_eq(rt_jobrun_next(jr, &none, NULL, err, sizeof(err)), 0);

	rt_jobrun_stats s;
	rt_jobrun_get_stats(jr, &s);
	cr_assert(s.final_phase);
	cr_assert_eq(s.final_total, 3);
	cr_assert_eq(s.final_done, 3);
	cr_assert_float_eq(s.final_val_accuracy, 0.86, 1e-12);
	cr_assert_float_eq(s.final_test_accuracy, 0.84, 1e-12);

	store_final *f;
	cr_assert_eq(store_finals(st, job_id, &f, &n), 0);
	cr_assert_eq(n, 3);
	int winners = 0;
	for (int i = 0; i < n; i++) {
		winners += f[i].winner;
		cr_assert_eq(!isnan(f[i].test_accuracy), f[i].winner,
		             "a test accuracy for a model that did not win");
	}
	cr_assert_eq(winners, 1);
	cr_assert_str_eq(f[2].graft, "drop");
	cr_assert(f[2].winner);
	store_finals_free(f, n);

	/* Reopened, the job is still complete and asks for nothing. */
	kill_job();
	open_job();
	cr_assert(rt_jobrun_complete(jr));
	cr_assert_eq(rt_jobrun_next(jr, &none, NULL, err, sizeof(err)), 0);
}

Test(final, a_kill_during_a_training_resumes_it_from_its_checkpoint)
{
	char err[GRAFT_ERRLEN];
	rt_jobrun_task t, again;

	run_search();
	cr_assert_eq(rt_jobrun_next(jr, &t, NULL, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(t.kind, RT_TASK_FINAL);
	cr_assert_null(t.task.resume);
	touch(t.task.checkpoint); /* the worker got some way */
	int64_t id = t.eval_id;
	char ckpt[4400];
	snprintf(ckpt, sizeof(ckpt), "%s", t.task.checkpoint);
	proto_task_clear(&t.task);
	kill_job();

	open_job();
	cr_assert_eq(rt_jobrun_next(jr, &again, NULL, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(again.kind, RT_TASK_FINAL, "the search is not run again");
	cr_assert_eq(again.eval_id, id, "the interrupted training comes first");
	cr_assert(again.task.resume && !strcmp(again.task.resume, ckpt),
	          "it goes on from its checkpoint, not from step 0");
	cr_assert_eq(again.attempt, 1, "an interruption spends no attempt");
	rt_jobrun_abandon(jr, &again);
}

Test(final, without_a_test_split_the_winner_is_chosen_and_nothing_is_scored)
{
	char err[GRAFT_ERRLEN], path[800];
	rt_jobrun_task t, u;

	snprintf(path, sizeof(path), "%s/t10k-images-idx3-ubyte", data_dir);
	cr_assert_eq(unlink(path), 0);
	run_search();
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(rt_jobrun_next(jr, &t, NULL, err, sizeof(err)), 1, "%s", err);
		cr_assert_eq(t.kind, RT_TASK_FINAL);
		result(&t, 0.6 + i / 100.0, NAN);
	}
	cr_assert_eq(rt_jobrun_next(jr, &u, NULL, err, sizeof(err)), 0, "no scoring task");
	cr_assert(rt_jobrun_complete(jr));
	rt_jobrun_stats s;
	rt_jobrun_get_stats(jr, &s);
	cr_assert_geq(s.final_winner, 0);
	cr_assert(isnan(s.final_test_accuracy));
}

Test(final, a_training_that_fails_for_good_leaves_the_others_to_win)
{
	char err[GRAFT_ERRLEN];
	rt_jobrun_task t, u;

	run_search();
	cr_assert_eq(rt_jobrun_next(jr, &t, NULL, err, sizeof(err)), 1);
	int64_t doomed = t.eval_id;
	/* limits.retries is 2: three attempts, then it is failed. */
	for (int attempt = 1; attempt <= 3; attempt++) {
		cr_assert_eq(t.eval_id, doomed);
		cr_assert_eq(rt_jobrun_failure(jr, &t, "diverged", "test", err, sizeof(err)),
		             attempt < 3);
		cr_assert_eq(rt_jobrun_next(jr, &t, NULL, err, sizeof(err)), 1, "%s", err);
	}
	cr_assert_neq(t.eval_id, doomed);
	result(&t, 0.7, NAN);
	cr_assert_eq(rt_jobrun_next(jr, &u, NULL, err, sizeof(err)), 1);
	cr_assert_eq(u.kind, RT_TASK_FINAL, "the survivor without its graft");
	result(&u, 0.6, NAN);
	cr_assert_eq(rt_jobrun_next(jr, &u, NULL, err, sizeof(err)), 1);
	cr_assert_eq(u.kind, RT_TASK_SCORE);
	cr_assert_eq(u.eval_id, t.eval_id, "the fine-tuned one was better: it is scored");
	result(&u, 0.7, 0.69);
	cr_assert(rt_jobrun_complete(jr));
}
