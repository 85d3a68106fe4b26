/*
 * test_rungs.c - multi-fidelity search driven by hand: a job with rungs on
 * a real store, its tasks taken from the jobrun and ended with made-up
 * results (and the files a worker would write), so that what is checked is
 * the climb's bookkeeping: who is promoted when, what a promotion starts
 * from, what a restart after kill -9 decides, and where a budget stops the
 * search.  Training itself is tested with real workers in test_cli.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "daemon/runtime/runtime.h"
#include "proto/proto.h"
#include "store/store.h"
#include "tests/support/idx_write.h"
#include "tests/support/scratch.h"

#define RUNGS_YAML "[10, 20, 40]"
static const int rungs[] = { 10, 20, 40 };
#define NRUNGS 3
#define ETA 3
#define SLICE 50
#define CANDIDATES 12

static char data_dir[600];

static void make_data(void)
{
	scratch_make("rungs");
	snprintf(data_dir, sizeof(data_dir), "%s", scratch_path("data"));
	cr_assert_eq(mkdir(data_dir, 0755), 0);
	idx_write_part(data_dir, "train", 600, 12, 3, 0, 5, 0, 3);
}

/* The job's spec; extra goes into its search section.  Without a lag
 * there, the tests check ASHA's rule on every result as it comes (lag 0);
 * the determinism test sets one. */
static void spec_text(char *buf, size_t len, const char *extra)
{
	snprintf(buf, len,
	         "dataset: {dir: %s, validation: 100}\n"
	         "search: {population: 4, sample: 2, candidates: %d, seed: 5,\n"
	         "         fidelity: {rungs: " RUNGS_YAML ", eta: %d, slice: %d}%s%s}\n"
	         "space: {max_blocks: 2, widths: [8, 16], min_stem: 8, max_stem: 8}\n"
	         "train: {batch: 16}\n"
	         "graft: {source: none}\n",
	         data_dir, CANDIDATES, ETA, SLICE, extra ? extra : "",
	         extra && strstr(extra, "lag") ? "" : ", lag: 0");
}

/* A job in its own store file under the scratch directory. */
struct job {
	char db[600], weights[700];
	store *st;
	rt_jobrun *jr;
	int64_t id;
};

static void job_open(struct job *j)
{
	char err[GRAFT_ERRLEN];
	cr_assert_eq(store_open(j->db, &j->st, err, sizeof(err)), 0, "%s", err);
	rt_jobrun_dirs dirs = { .weights = j->weights };
	cr_assert_eq(rt_jobrun_open(j->st, j->id, &dirs, NULL, NULL, &j->jr, err, sizeof(err)), 0,
	             "%s", err);
}

static void job_new(struct job *j, const char *name, const char *extra)
{
	char spec[2000];
	spec_text(spec, sizeof(spec), extra);
	snprintf(j->db, sizeof(j->db), "%s", scratch_path(name));
	snprintf(j->weights, sizeof(j->weights), "%s.weights", j->db);
	char err[GRAFT_ERRLEN];
	cr_assert_eq(store_open(j->db, &j->st, err, sizeof(err)), 0, "%s", err);
	store_job sj = { .spec = spec, .total = CANDIDATES, .steps = 40,
	                 .state = STORE_JOB_RUNNING };
	snprintf(sj.name, sizeof(sj.name), "%s", name);
	cr_assert_eq(store_job_add(j->st, &sj), 0, "%s", store_errmsg(j->st));
	j->id = sj.id;
	store_close(j->st);
	job_open(j);
}

/* What a kill -9 leaves: the process is gone, the store as committed. */
static void job_kill(struct job *j)
{
	rt_jobrun_free(j->jr);
	store_close(j->st);
	j->jr = NULL;
	j->st = NULL;
}

/* A made-up accuracy that ranks candidates in an order unrelated to their
 * seq and rises with the rung. */
static double made_up(int seq, int rung)
{
	return 0.30 + 0.04 * ((seq * 7) % 11) + 0.01 * rung;
}

static void touch(const char *path)
{
	FILE *f = fopen(path, "w");
	cr_assert(f, "%s", path);
	fputs("x", f);
	fclose(f);
}

/* A made-up accuracy of the network a task trains (not of its seq): what a
 * real, deterministic training gives, so that a candidate the cache
 * answers and one trained again because its twin was still in flight
 * score the same. */
static int by_network;

static double of_network(const rt_jobrun_task *t)
{
	nn_arch a;
	char err[GRAFT_ERRLEN], sha[65];
	cr_assert_eq(proto_arch_parse(t->task.arch, strlen(t->task.arch), &a, err, sizeof(err)), 0);
	a.train.steps = a.train.warmup = 0;
	a.train.seed = 0;
	search_arch_hash(&a, sha);
	return 0.30 + 0.4 * (double)strtoul(sha + 56, NULL, 16) / 4294967295.0 + 0.01 * t->rung;
}

/* Ends t as a worker would: its weights and optimizer state on disk, and
 * the made-up result with cpu_s seconds. */
static void finish(struct job *j, rt_jobrun_task *t, double cpu_s)
{
	char err[GRAFT_ERRLEN];
	touch(t->task.save);
	if (t->task.save_optim)
		touch(t->task.save_optim);
	proto_result r = { .val_accuracy = by_network ? of_network(t) : made_up(t->seq, t->rung),
	                   .val_loss = 1,
	                   .train_loss = 1, .steps = 10, .cpu_s = cpu_s, .wall_s = cpu_s };
	cr_assert_eq(rt_jobrun_result(j->jr, t, &r, "test", err, sizeof(err)), 0, "%s", err);
}

/* What the test saw of a run, task by task. */
struct seen {
	int n;
	int seq[200], rung[200];
	char save[CANDIDATES][NRUNGS][700];   /* each rung's weights file */
	int done[CANDIDATES][NRUNGS];
};

/* Whether seq is, among the candidates that finished rung r so far, in
 * the top floor(n / eta) (ties: the lower seq first). */
static int in_top(const struct seen *s, int seq, int r)
{
	int n = 0, better = 0;
	double mine = made_up(seq, r);
	for (int i = 0; i < CANDIDATES; i++) {
		if (!s->done[i][r])
			continue;
		n++;
		double f = made_up(i, r);
		better += f > mine || (f == mine && i < seq);
	}
	return better < n / ETA;
}

/* Takes and ends tasks one at a time (one worker) until the job has none,
 * or until stop_after tasks; returns the task left in flight when stopped. */
static int drive(struct job *j, struct seen *s, int stop_after, rt_jobrun_task *left)
{
	char err[GRAFT_ERRLEN];
	rt_jobrun_task t;
	int rc;

	while ((rc = rt_jobrun_next(j->jr, &t, NULL, err, sizeof(err))) == 1) {
		cr_assert_lt(s->n, 200);
		cr_assert(!s->done[t.seq][t.rung], "candidate %d trained twice at rung %d", t.seq,
		          t.rung);
		nn_arch a;
		cr_assert_eq(proto_arch_parse(t.task.arch, strlen(t.task.arch), &a, err,
		                              sizeof(err)), 0, "%s", err);
		if (t.rung == 0) {
			cr_assert_eq(a.train.steps, rungs[0]);
			cr_assert(!t.task.optim, "a first rung starts its momentum afresh");
		} else {
			cr_assert(s->done[t.seq][t.rung - 1], "promoted before its rung was scored");
			cr_assert(in_top(s, t.seq, t.rung - 1), "candidate %d promoted from rung %d "
			          "without being in its top 1/eta", t.seq, t.rung - 1);
			int scored = 0, sent = 0;
			for (int i = 0; i < CANDIDATES; i++) {
				scored += s->done[i][t.rung - 1];
				sent += s->done[i][t.rung];
			}
			cr_assert_lt(sent, scored / ETA, "rung %d sends up more than 1/eta of the %d "
			             "it scored", t.rung - 1, scored);
			cr_assert_str_eq(t.task.parent, s->save[t.seq][t.rung - 1],
			                 "a climb goes on from its own weights");
			char optim[800];
			snprintf(optim, sizeof(optim), "%s.optim", s->save[t.seq][t.rung - 1]);
			cr_assert(t.task.optim && !strcmp(t.task.optim, optim),
			          "and from its own optimizer state");
			cr_assert_eq(a.train.steps, rungs[t.rung] - rungs[t.rung - 1]);
			cr_assert_eq(a.train.warmup, 0);
		}
		cr_assert_eq(t.task.val_images, t.rung < NRUNGS - 1 ? SLICE : 0,
		             "rungs below the top score on the slice, the top on everything");
		cr_assert_eq(!!t.task.save_optim, t.rung < NRUNGS - 1);
		s->seq[s->n] = t.seq;
		s->rung[s->n] = t.rung;
		if (s->n++ == stop_after) {
			*left = t;
			return 1;
		}
		snprintf(s->save[t.seq][t.rung], sizeof(s->save[0][0]), "%s", t.task.save);
		finish(j, &t, 1.0);
		s->done[t.seq][t.rung] = 1;
	}
	cr_assert_eq(rc, 0, "%s", err);
	return 0;
}

/* The store's view of a finished job: each candidate's highest rung and
 * fitness. */
static void outcome(struct job *j, int *rung, double *fitness)
{
	store_candidate *c;
	int n;
	cr_assert_eq(store_candidates(j->st, j->id, &c, &n), 0);
	cr_assert_eq(n, CANDIDATES);
	for (int i = 0; i < n; i++) {
		rung[i] = c[i].rung;
		fitness[i] = c[i].fitness;
	}
	store_candidates_free(c, n);
}

TestSuite(rungs, .init = make_data, .fini = scratch_remove, .timeout = 120);

Test(rungs, the_best_third_climbs_from_its_own_weights_until_none_qualifies)
{
	struct job j;
	static struct seen s;
	rt_jobrun_task left;

	job_new(&j, "climb.db", NULL);
	cr_assert_eq(drive(&j, &s, -1, &left), 0);
	cr_assert(rt_jobrun_complete(j.jr));

	/* The end: every rung below the top has sent up exactly 1/eta of what
	 * it scored, no more (the cap) and no fewer (while fewer have gone up,
	 * one of the rung's top 1/eta has not, and qualifies). */
	int at[NRUNGS] = { 0 };
	for (int i = 0; i < CANDIDATES; i++)
		for (int r = 0; r < NRUNGS; r++)
			at[r] += s.done[i][r];
	cr_assert_eq(at[0], CANDIDATES);
	for (int r = 0; r + 1 < NRUNGS; r++)
		cr_assert_eq(at[r + 1], at[r] / ETA, "rung %d scored %d and sent up %d", r, at[r],
		             at[r + 1]);
	cr_assert_geq(at[2], 1, "someone reaches the top rung");

	/* The store: each candidate's rung and the score there; the
	 * leaderboard ranks the top rung first; stats agree. */
	int rung[CANDIDATES];
	double fit[CANDIDATES];
	outcome(&j, rung, fit);
	for (int i = 0; i < CANDIDATES; i++) {
		int top = s.done[i][2] ? 2 : s.done[i][1] ? 1 : 0;
		cr_assert_eq(rung[i], top, "candidate %d", i);
		cr_assert_float_eq(fit[i], made_up(i, top), 1e-12);
	}
	store_rank *lb;
	int n;
	cr_assert_eq(store_leaderboard(j.st, j.id, STORE_SORT_ACCURACY, 0, &lb, &n), 0);
	cr_assert_eq(lb[0].rung, NRUNGS - 1);
	for (int i = 1; i < n; i++)
		cr_assert(lb[i].rung < lb[i - 1].rung ||
		          (lb[i].rung == lb[i - 1].rung && lb[i].val_accuracy <= lb[i - 1].val_accuracy));
	rt_jobrun_stats st;
	rt_jobrun_get_stats(j.jr, &st);
	cr_assert_eq(st.rungs, NRUNGS);
	cr_assert_eq(st.at_rung[0] + st.at_rung[1] + st.at_rung[2], CANDIDATES);
	cr_assert_eq(st.at_rung[2], at[2]);
	cr_assert_eq(st.best_rung, NRUNGS - 1);
	cr_assert_float_eq(st.best_accuracy, lb[0].val_accuracy, 1e-12);
	free(lb);
	job_kill(&j);
}

Test(rungs, a_kill_at_any_moment_replays_to_the_same_decisions)
{
	struct job a, b;
	static struct seen sa, sb;
	rt_jobrun_task left;

	job_new(&a, "straight.db", NULL);
	cr_assert_eq(drive(&a, &sa, -1, &left), 0);
	int ra[CANDIDATES], rb[CANDIDATES];
	double fa[CANDIDATES], fb[CANDIDATES];
	outcome(&a, ra, fa);
	job_kill(&a);

	/* The same job killed with a task in flight, again and again, at
	 * first rungs and at promotions alike. */
	job_new(&b, "killed.db", NULL);
	int kills = 0, promotions_killed = 0;
	for (int at = 2; drive(&b, &sb, at, &left); at = sb.n + 3) {
		promotions_killed += left.rung > 0;
		kills++;
		sb.n--; /* the killed task runs again */
		job_kill(&b);
		job_open(&b);
	}
	cr_assert_geq(kills, 5);
	cr_assert_geq(promotions_killed, 1, "no kill hit a promotion in flight");
	outcome(&b, rb, fb);
	cr_assert_eq(sa.n, sb.n, "%d tasks straight, %d killed", sa.n, sb.n);
	for (int i = 0; i < sa.n; i++)
		cr_assert(sa.seq[i] == sb.seq[i] && sa.rung[i] == sb.rung[i],
		          "task %d: candidate %d rung %d straight, %d rung %d after the kills", i,
		          sa.seq[i], sa.rung[i], sb.seq[i], sb.rung[i]);
	for (int i = 0; i < CANDIDATES; i++) {
		cr_assert_eq(ra[i], rb[i]);
		cr_assert_float_eq(fa[i], fb[i], 1e-12);
	}
	/* Nothing trained twice: one done evaluation per candidate and rung. */
	store_candidate *c;
	int n;
	cr_assert_eq(store_candidates(b.st, b.id, &c, &n), 0);
	for (int i = 0; i < n; i++) {
		store_eval *e;
		int ne, done[NRUNGS] = { 0 };
		cr_assert_eq(store_evals_of(b.st, c[i].id, &e, &ne), 0);
		for (int k = 0; k < ne; k++)
			done[e[k].rung] += e[k].status == STORE_EVAL_DONE;
		for (int r = 0; r < NRUNGS; r++)
			cr_assert_leq(done[r], 1, "candidate %d rung %d done %d times", i, r, done[r]);
		free(e);
	}
	store_candidates_free(c, n);
	job_kill(&b);
}

Test(rungs, a_climb_whose_weights_are_gone_trains_its_rung_from_scratch)
{
	struct job j;
	char err[GRAFT_ERRLEN];
	rt_jobrun_task t;
	static struct seen s;

	job_new(&j, "gone.db", NULL);
	/* Three first rungs: the best of them qualifies. */
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(rt_jobrun_next(j.jr, &t, NULL, err, sizeof(err)), 1, "%s", err);
		cr_assert_eq(t.rung, 0);
		snprintf(s.save[t.seq][0], sizeof(s.save[0][0]), "%s", t.task.save);
		finish(&j, &t, 1.0);
		cr_assert_eq(unlink(s.save[t.seq][0]), 0);
	}
	cr_assert_eq(rt_jobrun_next(j.jr, &t, NULL, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(t.rung, 1);
	cr_assert_null(t.task.parent);
	cr_assert_null(t.task.optim);
	nn_arch a;
	cr_assert_eq(proto_arch_parse(t.task.arch, strlen(t.task.arch), &a, err, sizeof(err)), 0);
	cr_assert_eq(a.train.steps, rungs[1], "the whole budget of the rung");
	rt_jobrun_abandon(j.jr, &t);
	job_kill(&j);
}

Test(rungs, a_cpu_budget_stops_new_work_and_survives_a_restart)
{
	struct job j;
	char err[GRAFT_ERRLEN];
	rt_jobrun_task t[3];
	rt_jobrun_stats st;

	job_new(&j, "cpu.db", ", max_cpu: 35");
	rt_jobrun_get_stats(j.jr, &st);
	cr_assert_float_eq(st.cpu_left_s, 35, 1e-9);
	cr_assert(isnan(st.time_left_s));
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(rt_jobrun_next(j.jr, &t[i], NULL, err, sizeof(err)), 1, "%s", err);
		finish(&j, &t[i], 10.0);
	}
	/* 30 s spent: one more may start; two run at once. */
	cr_assert_eq(rt_jobrun_next(j.jr, &t[0], NULL, err, sizeof(err)), 1);
	cr_assert_eq(rt_jobrun_next(j.jr, &t[1], NULL, err, sizeof(err)), 1);
	finish(&j, &t[0], 10.0);
	rt_jobrun_get_stats(j.jr, &st);
	cr_assert(st.budget_spent);
	cr_assert_float_eq(st.cpu_left_s, 0, 1e-9);
	cr_assert_eq(rt_jobrun_next(j.jr, &t[2], NULL, err, sizeof(err)), 0,
	             "nothing new starts once the budget is spent");
	cr_assert(!rt_jobrun_complete(j.jr), "the one in flight finishes first");
	finish(&j, &t[1], 10.0);
	cr_assert(rt_jobrun_complete(j.jr));
	job_kill(&j);
	job_open(&j);
	rt_jobrun_get_stats(j.jr, &st);
	cr_assert_float_eq(st.cpu_s, 50, 1e-9, "what was spent is read back from the store");
	cr_assert(rt_jobrun_complete(j.jr));
	cr_assert_eq(rt_jobrun_next(j.jr, &t[0], NULL, err, sizeof(err)), 0);
	job_kill(&j);
}

Test(rungs, the_search_time_adds_up_over_processes)
{
	struct job j;
	char err[GRAFT_ERRLEN];
	rt_jobrun_task t;
	rt_jobrun_stats st;

	job_new(&j, "time.db", ", max_time: 2m");
	cr_assert_eq(rt_jobrun_next(j.jr, &t, NULL, err, sizeof(err)), 1, "%s", err);
	finish(&j, &t, 1.0);
	rt_jobrun_get_stats(j.jr, &st);
	cr_assert(st.time_left_s > 100 && st.time_left_s <= 120, "%g", st.time_left_s);
	/* Idle (paused, or waiting for a worker), the search spends none. */
	struct timespec nap = { 0, 60 * 1000 * 1000 };
	nanosleep(&nap, NULL);
	rt_jobrun_stats later;
	rt_jobrun_get_stats(j.jr, &later);
	cr_assert_eq(later.time_left_s, st.time_left_s, "an idle job's clock ran: %g then %g",
	             st.time_left_s, later.time_left_s);
	job_kill(&j);
	/* Processes before ran the search for 125 s in all: more than its 2 minutes. */
	store *s;
	cr_assert_eq(store_open(j.db, &s, err, sizeof(err)), 0);
	cr_assert_eq(store_job_set_search_wall(s, j.id, 125), 0);
	store_close(s);
	job_open(&j);
	rt_jobrun_get_stats(j.jr, &st);
	cr_assert_float_eq(st.time_left_s, 0, 1e-9);
	cr_assert(st.budget_spent);
	cr_assert(rt_jobrun_complete(j.jr));
	cr_assert_eq(rt_jobrun_next(j.jr, &t, NULL, err, sizeof(err)), 0);
	job_kill(&j);
}

/* search.warm_start: a second job on the same data starts from the first
 * one's best, which the cache answers without a worker. */
Test(rungs, a_warm_start_seeds_the_population_with_the_best_and_costs_nothing)
{
	struct job a;
	static struct seen s;
	rt_jobrun_task t;
	char err[GRAFT_ERRLEN], spec[2000];

	job_new(&a, "warm.db", NULL);
	cr_assert_eq(drive(&a, &s, -1, &t), 0);
	store_rank *lb;
	int n;
	cr_assert_eq(store_leaderboard(a.st, a.id, STORE_SORT_ACCURACY, 4, &lb, &n), 0);
	cr_assert_eq(n, 4);

	/* The same spec with a warm start, in the same store. */
	spec_text(spec, sizeof(spec), ", warm_start: 1");
	store_job sj = { .spec = spec, .total = CANDIDATES, .steps = 40,
	                 .state = STORE_JOB_RUNNING };
	snprintf(sj.name, sizeof(sj.name), "warm");
	cr_assert_eq(store_job_add(a.st, &sj), 0);
	rt_jobrun *jr;
	rt_jobrun_dirs dirs = { .weights = a.weights };
	cr_assert_eq(rt_jobrun_open(a.st, sj.id, &dirs, NULL, NULL, &jr, err, sizeof(err)), 0,
	             "%s", err);
	int hits = 0;
	cr_assert_eq(rt_jobrun_next(jr, &t, &hits, err, sizeof(err)), 1, "%s", err);
	cr_assert_geq(hits, 4, "the first job's best were not answered from the cache");
	store_candidate *c;
	int nc;
	cr_assert_eq(store_candidates(a.st, sj.id, &c, &nc), 0);
	for (int i = 0; i < 4; i++) {
		store_candidate best;
		cr_assert_eq(store_candidate_get(a.st, lb[i].candidate_id, &best), 0);
		cr_assert_str_eq(c[i].genome_sha256, best.genome_sha256, "warm candidate %d", i);
		cr_assert_str_eq(c[i].mutation, "warm");
		free(best.genome);
	}
	store_candidates_free(c, nc);
	rt_jobrun_abandon(jr, &t);
	rt_jobrun_free(jr);

	/* Reopened, it replays its own warm candidates whatever the first job
	 * does next; a job that does not exist is refused with a sentence. */
	cr_assert_eq(rt_jobrun_open(a.st, sj.id, &dirs, NULL, NULL, &jr, err, sizeof(err)), 0,
	             "%s", err);
	rt_jobrun_free(jr);
	spec_text(spec, sizeof(spec), ", warm_start: 99");
	store_job bad = { .spec = spec, .total = CANDIDATES, .steps = 40,
	                  .state = STORE_JOB_RUNNING };
	snprintf(bad.name, sizeof(bad.name), "bad");
	cr_assert_eq(store_job_add(a.st, &bad), 0);
	cr_assert_eq(rt_jobrun_open(a.st, bad.id, &dirs, NULL, NULL, &jr, err, sizeof(err)),
	             GRAFT_EINVAL);
	cr_assert(strstr(err, "no job 99"), "%s", err);
	free(lb);
	job_kill(&a);
}

/* Ends tasks as up to `workers` workers would, in an order drawn from
 * order_seed: each round fills the idle workers, then one busy worker,
 * chosen at random, finishes.  The decisions in the order made, and the
 * outcome. */
static int drive_parallel(struct job *j, int workers, uint64_t order_seed, int *seqs,
                          int *rungs_out, int max)
{
	char err[GRAFT_ERRLEN];
	rt_jobrun_task busy[8];
	int nbusy = 0, n = 0, rc;
	nn_rng r;

	nn_rng_seed(&r, order_seed);
	for (;;) {
		while (nbusy < workers &&
		       (rc = rt_jobrun_next(j->jr, &busy[nbusy], NULL, err, sizeof(err))) == 1) {
			cr_assert_lt(n, max);
			seqs[n] = busy[nbusy].seq;
			rungs_out[n++] = busy[nbusy].rung;
			nbusy++;
		}
		cr_assert_geq(rc, 0, "%s", err);
		if (nbusy == 0)
			break;
		int k = (int)nn_rng_below(&r, (uint32_t)nbusy);
		finish(j, &busy[k], 1.0);
		busy[k] = busy[--nbusy];
	}
	cr_assert(rt_jobrun_complete(j->jr));
	return n;
}

Test(rungs, with_a_lag_the_search_is_the_same_for_one_and_three_workers_in_any_order)
{
	static int seqs[3][200], rs[3][200];
	int n[3], rung[3][CANDIDATES];
	double fit[3][CANDIDATES];
	const int workers[3] = { 1, 3, 3 };

	by_network = 1;
	for (int run = 0; run < 3; run++) {
		struct job j;
		char name[32];
		snprintf(name, sizeof(name), "lag%d.db", run);
		job_new(&j, name, ", lag: 3");
		n[run] = drive_parallel(&j, workers[run], 100 + (uint64_t)run, seqs[run], rs[run], 200);
		outcome(&j, rung[run], fit[run]);
		job_kill(&j);
	}
	for (int run = 1; run < 3; run++) {
		cr_assert_eq(n[run], n[0], "run %d made %d decisions, one worker %d", run, n[run], n[0]);
		for (int i = 0; i < n[0]; i++)
			cr_assert(seqs[run][i] == seqs[0][i] && rs[run][i] == rs[0][i],
			          "decision %d: candidate %d rung %d with one worker, %d rung %d in run "
			          "%d", i, seqs[0][i], rs[0][i], seqs[run][i], rs[run][i], run);
		for (int i = 0; i < CANDIDATES; i++) {
			cr_assert_eq(rung[run][i], rung[0][i]);
			cr_assert_float_eq(fit[run][i], fit[0][i], 1e-12);
		}
	}
	/* Without a lag the same two orders disagree: the lag is what makes
	 * them agree (else this test could pass by luck). */
	int differ = 0;
	for (int run = 0; run < 2; run++) {
		struct job j;
		char name[32];
		static int s2[2][200], r2[2][200];
		snprintf(name, sizeof(name), "nolag%d.db", run);
		job_new(&j, name, ", lag: 0");
		int m = drive_parallel(&j, workers[run], 100 + (uint64_t)run, s2[run], r2[run], 200);
		if (run == 1)
			for (int i = 0; i < m && !differ; i++)
				differ = s2[0][i] != s2[1][i] || r2[0][i] != r2[1][i];
		job_kill(&j);
	}
	cr_assert(differ, "one and three workers agree even without a lag");
}

Test(rungs, with_a_lag_a_kill_replays_to_the_same_decisions)
{
	static int want_s[200], want_r[200];
	struct job a, b;
	char err[GRAFT_ERRLEN];
	rt_jobrun_task busy[3];

	by_network = 1;
	job_new(&a, "lagstraight.db", ", lag: 3");
	int n = drive_parallel(&a, 3, 7, want_s, want_r, 200);
	job_kill(&a);

	/* Three in flight, finished in another order, killed every few results. */
	job_new(&b, "lagkilled.db", ", lag: 3");
	nn_rng r;
	nn_rng_seed(&r, 8);
	int nbusy = 0, done = 0, rc;
	for (;;) {
		while (nbusy < 3 && (rc = rt_jobrun_next(b.jr, &busy[nbusy], NULL, err,
		                                         sizeof(err))) == 1)
			nbusy++;
		cr_assert_geq(rc, 0, "%s", err);
		if (nbusy == 0)
			break;
		int k = (int)nn_rng_below(&r, (uint32_t)nbusy);
		finish(&b, &busy[k], 1.0);
		busy[k] = busy[--nbusy];
		if (++done % 4 == 0) {
			for (int i = 0; i < nbusy; i++)
				proto_task_clear(&busy[i].task);
			nbusy = 0; /* killed in flight: they run again, first */
			job_kill(&b);
			job_open(&b);
		}
	}
	int rb[CANDIDATES], ra[CANDIDATES];
	double fb[CANDIDATES], fa[CANDIDATES];
	outcome(&b, rb, fb);
	job_kill(&b);
	job_open(&a);
	outcome(&a, ra, fa);
	job_kill(&a);
	for (int i = 0; i < CANDIDATES; i++) {
		cr_assert_eq(rb[i], ra[i], "candidate %d", i);
		cr_assert_float_eq(fb[i], fa[i], 1e-12);
	}
	(void)n;
}
