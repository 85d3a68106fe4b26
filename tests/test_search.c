/*
 * test_search.c - `graft search` as a user runs it: the real bin/graft with
 * its worker processes, a dataset the test writes, a real SQLite file.  A
 * search killed with SIGKILL and run again ends exactly where an
 * uninterrupted one does, losing and repeating nothing; a second job over
 * the same candidates is answered from the store.
 */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "store/store.h"
#include "tests/support/idx_write.h"
#include "tests/support/scratch.h"

#define GRAFT_BIN "bin/graft"
#define CANDIDATES 10

extern char **environ;

static const char spec_fmt[] =
	"name: %s\n"
	"dataset: {dir: %s, validation: 300}\n"
	"search: {strategy: evolution, population: 4, sample: 2, candidates: %d, seed: 3, lag: 2}\n"
	"space: {max_blocks: 3, widths: [8, 16], min_stem: 8, max_stem: 16,\n"
	"        max_flops: 2000000}\n"
	"train: {steps: 40, batch: 32, lr: 0.05}\n"
	"graft: {source: target, channels: 8, pretrain_steps: 40}\n"
	"workers: 1\n";

static void setup(void)
{
	scratch_make("search");
	char data[600];
	snprintf(data, sizeof(data), "%s", scratch_path("data"));
	cr_assert_eq(mkdir(data, 0755), 0);
	idx_write_part(data, "train", 1500, 12, 3, 0, 5, 0, 3);
	setenv("GRAFT_CACHE_DIR", scratch_path("grafts"), 1);
}

TestSuite(search, .init = setup, .fini = scratch_remove, .timeout = 300);

static const char *write_spec(const char *file, const char *name)
{
	char data[600];
	snprintf(data, sizeof(data), "%s", scratch_path("data"));
	const char *path = scratch_path(file);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, spec_fmt, name, data, CANDIDATES);
	fclose(f);
	return path;
}

/* Starts bin/graft search SPEC --db DB with output in scratch files. */
static pid_t start(const char *spec, const char *db, const char *out)
{
	char specbuf[600], dbbuf[600], outbuf[600];
	snprintf(specbuf, sizeof(specbuf), "%s", spec);
	snprintf(dbbuf, sizeof(dbbuf), "%s", db);
	snprintf(outbuf, sizeof(outbuf), "%s", scratch_path(out));
	char *argv[] = { GRAFT_BIN, "search", specbuf, "--db", dbbuf, NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, outbuf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	int rc = posix_spawn(&pid, GRAFT_BIN, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert_eq(rc, 0, "cannot run %s (run from the repository root)", GRAFT_BIN);
	return pid;
}

static char *slurp(const char *name)
{
	static char buf[1 << 16];
	FILE *f = fopen(scratch_path(name), "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	return buf;
}

static int finish(pid_t pid, const char *out)
{
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "graft search died; output:\n%s", slurp(out));
	return WEXITSTATUS(status);
}

static void run_ok(const char *spec, const char *db, const char *out)
{
	int code = finish(start(spec, db, out), out);
	cr_assert_eq(code, 0, "graft search exited %d; output:\n%s", code, slurp(out));
}

/* What a finished job recorded, by seq. */
struct outcome {
	char genome[CANDIDATES][65];
	double fitness[CANDIDATES];
	int done_evals[CANDIDATES], cached[CANDIDATES], inherited[CANDIDATES];
	int64_t first_done_eval[CANDIDATES];
	int n;
};

static store *open_db(const char *db)
{
	char err[GRAFT_ERRLEN];
	store *s;
	cr_assert_eq(store_open(db, &s, err, sizeof(err)), 0, "%s", err);
	return s;
}

static void read_outcome(const char *db, int64_t job, struct outcome *o)
{
	store *s = open_db(db);
	store_candidate *c;
	int n;
	memset(o, 0, sizeof(*o));
	cr_assert_eq(store_candidates(s, job, &c, &n), 0);
	cr_assert_leq(n, CANDIDATES);
	o->n = n;
	for (int i = 0; i < n; i++) {
		store_eval *e;
		int ne;
		memcpy(o->genome[i], c[i].genome_sha256, 65);
		o->fitness[i] = c[i].fitness;
		cr_assert_eq(store_evals_of(s, c[i].id, &e, &ne), 0);
		for (int k = 0; k < ne; k++)
			if (e[k].status == STORE_EVAL_DONE) {
				if (!o->done_evals[i])
					o->first_done_eval[i] = e[k].id;
				o->done_evals[i]++;
				o->cached[i] += e[k].cached;
				/* Started from the parent: tensors taken, and the parent's
				 * key in the cache key. */
				o->inherited[i] += e[k].inherited > 0 && e[k].init[0];
			}
		free(e);
	}
	store_candidates_free(c, n);
	store_close(s);
}

static int told(const char *db)
{
	char err[GRAFT_ERRLEN];
	store *s;
	store_candidate *c;
	int n, t = 0;
	if (access(db, F_OK) || store_open(db, &s, err, sizeof(err)))
		return 0;
	if (store_candidates(s, 1, &c, &n) == 0) {
		for (int i = 0; i < n; i++)
			t += c[i].tell_seq >= 0;
		store_candidates_free(c, n);
	}
	store_close(s);
	return t;
}

Test(search, kill9_then_resume_ends_where_an_uninterrupted_run_does)
{
	const char *spec = write_spec("spec.yaml", "kill-test");
	char a[600], b[600];
	snprintf(a, sizeof(a), "%s", scratch_path("a.db"));
	snprintf(b, sizeof(b), "%s", scratch_path("b.db"));

	run_ok(spec, a, "a.out");
	struct outcome ua, ub, before;
	read_outcome(a, 1, &ua);
	cr_assert_eq(ua.n, CANDIDATES);
	cr_assert(strstr(slurp("a.out"), "leaderboard"), "%s", slurp("a.out"));
	int inherited = 0;
	for (int i = 0; i < CANDIDATES; i++)
		inherited += ua.inherited[i];
	cr_assert_gt(inherited, 0, "no child started from its parent's weights");

	pid_t pid = start(spec, b, "b1.out");
	struct timespec nap = { 0, 50 * 1000 * 1000 };
	for (int i = 0; i < 2400 && told(b) < 4; i++)
		nanosleep(&nap, NULL);
	cr_assert_geq(told(b), 4, "the search never got going:\n%s", slurp("b1.out"));
	kill(pid, SIGKILL);
	int status;
	waitpid(pid, &status, 0);
	read_outcome(b, 1, &before);
	cr_assert_lt(before.n > 0 ? told(b) : 0, CANDIDATES, "killed too late to test anything");

	run_ok(spec, b, "b2.out");
	cr_assert(strstr(slurp("b2.out"), "resuming"), "%s", slurp("b2.out"));
	read_outcome(b, 1, &ub);
	cr_assert_eq(ub.n, CANDIDATES);
	for (int i = 0; i < CANDIDATES; i++) {
		cr_assert_str_eq(ub.genome[i], ua.genome[i], "candidate %d differs", i);
		cr_assert_eq(ub.fitness[i], ua.fitness[i], "candidate %d: %.6f vs %.6f", i,
		             ub.fitness[i], ua.fitness[i]);
		cr_assert_eq(ub.done_evals[i], 1, "candidate %d evaluated %d times", i,
		             ub.done_evals[i]);
		if (before.done_evals[i])
			cr_assert_eq(ub.first_done_eval[i], before.first_done_eval[i],
			             "candidate %d's result from before the kill was replaced", i);
	}
}

Test(search, a_second_job_is_answered_from_the_store)
{
	char db[600];
	snprintf(db, sizeof(db), "%s", scratch_path("c.db"));
	run_ok(write_spec("one.yaml", "first"), db, "one.out");
	/* Another name is another job over the same candidates. */
	run_ok(write_spec("two.yaml", "second"), db, "two.out");
	struct outcome first, second;
	read_outcome(db, 1, &first);
	read_outcome(db, 2, &second);
	cr_assert_eq(second.n, CANDIDATES);
	for (int i = 0; i < CANDIDATES; i++) {
		cr_assert_eq(second.cached[i], 1, "candidate %d was trained again", i);
		cr_assert_eq(second.fitness[i], first.fitness[i]);
	}
	store *s = open_db(db);
	store_cost q[1];
	cr_assert_eq(store_cost_parts(s, 2, 1, q), 0);
	cr_assert_eq(q[0].cache_hits, CANDIDATES);
	cr_assert_float_eq(q[0].cpu_s, 0.0, 1e-12);
	store_close(s);
	cr_assert(strstr(slurp("two.out"), "answered from the store"), "%s", slurp("two.out"));
}

Test(search, a_finished_job_just_reports)
{
	char db[600];
	snprintf(db, sizeof(db), "%s", scratch_path("d.db"));
	const char *spec = write_spec("s.yaml", "again");
	run_ok(spec, db, "d1.out");
	run_ok(spec, db, "d2.out");
	cr_assert(strstr(slurp("d2.out"), "10 of 10 candidates already evaluated"), "%s",
	          slurp("d2.out"));
	struct outcome o;
	read_outcome(db, 1, &o);
	for (int i = 0; i < CANDIDATES; i++)
		cr_assert_eq(o.done_evals[i], 1);
}

Test(search, bad_specs_and_data_fail_clearly)
{
	char db[600];
	snprintf(db, sizeof(db), "%s", scratch_path("e.db"));
	const char *bad = scratch_path("bad.yaml");
	FILE *f = fopen(bad, "w");
	fputs("dataset: {dir: /nowhere}\nsearch: {strategy: evolution, populaton: 4}\n", f);
	fclose(f);
	int code = finish(start(bad, db, "bad.out"), "bad.out");
	cr_assert_eq(code, 1);
	cr_assert(strstr(slurp("bad.out"), "line 2, column"), "%s", slurp("bad.out"));
	cr_assert(strstr(slurp("bad.out"), "populaton"), "%s", slurp("bad.out"));

	f = fopen(bad, "w");
	fputs("dataset: {dir: /nowhere/at/all}\n", f);
	fclose(f);
	code = finish(start(bad, db, "bad2.out"), "bad2.out");
	cr_assert_eq(code, 1);
	cr_assert(strstr(slurp("bad2.out"), "/nowhere/at/all"), "%s", slurp("bad2.out"));
}
