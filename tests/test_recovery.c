/*
 * test_recovery.c - graftd killed, restarted and starved, end to end: the
 * real bin/graftd on a scratch directory, killed with SIGKILL at moments
 * chosen by the states it reports, and its store read back to check that
 * every job ends as an uninterrupted run would, with nothing lost or
 * evaluated twice.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/fs.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/support/graftd_jobs.h"
#include "tests/support/graftd_run.h"
#include "tests/support/idx_write.h"
#include "tests/support/scratch.h"

static char data[600];

/* What a fault test changed outside its files, undone before the scratch
 * directory is removed: mounts (in this test's own mount namespace) and
 * immutable files. */
static char mounted[4][700], immutable[4][700];
static int nmounted, nimmutable;

static void setup(void)
{
	scratch_make("recovery");
	snprintf(data, sizeof(data), "%s", scratch_path("data"));
	cr_assert_eq(mkdir(data, 0755), 0);
	idx_write_part(data, "train", 1500, 12, 3, 0, 5, 0, 3);
	setenv("GRAFT_CACHE_DIR", scratch_path("grafts"), 1);
	signal(SIGPIPE, SIG_IGN);
}

/* Sets or clears path's immutable attribute (chattr +i / -i): the one
 * way, as root, to make a file that is open for writing refuse writes
 * (on ext4).  0 or -errno. */
static int set_immutable(const char *path, int on)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), flags = 0, rc = 0;
	if (fd < 0)
		return -errno;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0) {
		rc = -errno;
	} else {
		flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
		if (ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0)
			rc = -errno;
	}
	close(fd);
	return rc;
}

static void teardown(void)
{
	graftd_kill_all();
	while (nimmutable > 0)
		set_immutable(immutable[--nimmutable], 0);
	while (nmounted > 0)
		umount2(mounted[--nmounted], MNT_DETACH);
	scratch_remove();
}

TestSuite(recovery, .init = setup, .fini = teardown, .timeout = 600);

/* A job spec on the scratch dataset; graft is a graft: section's value. */
static void job_spec(char *spec, size_t len, int candidates, int steps, const char *graft)
{
	snprintf(spec, len,
	         "name: recovery\n"
	         "dataset: {dir: %s, validation: 300}\n"
	         "search: {strategy: evolution, population: 3, sample: 2, candidates: %d, seed: 5}\n"
	         "space: {max_blocks: 3, widths: [8, 16], min_stem: 8, max_stem: 16, "
	         "max_flops: 2000000}\n"
	         "train: {steps: %d, batch: 32, lr: 0.05}\n"
	         "graft: %s\n",
	         data, candidates, steps, graft);
}

static int64_t submit_job(const char *dir, int candidates, int steps, const char *graft)
{
	char spec[1600];
	job_spec(spec, sizeof(spec), candidates, steps, graft);
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

/* ---- what graftd shows: its log, its files, its store ------------------------ */

static long file_size(const char *path)
{
	struct stat sb;
	return stat(path, &sb) ? 0 : (long)sb.st_size;
}

static int exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0;
}

static const char *log_path(const char *dir)
{
	static char buf[720];
	snprintf(buf, sizeof(buf), "%.680s/graftd.log", dir);
	return buf;
}

/* Whether dir's log holds needle after byte from. */
static int log_has(const char *dir, long from, const char *needle)
{
	FILE *f = fopen(log_path(dir), "r");
	if (!f)
		return 0;
	static char buf[1 << 18];
	fseek(f, from, SEEK_SET);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/* The graft cache of data dir dir: -1 not made yet, 0 made and holding no
 * finished graft (a pretraining writes its file only at the end, under a
 * temporary name), 1 holding a finished graft. */
static int graft_cache_state(const char *dir)
{
	char path[760];
	snprintf(path, sizeof(path), "%.680s/grafts/grafts", dir);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int done = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		done |= n > 12 && !strcmp(e->d_name + n - 12, ".safetensors");
	}
	closedir(d);
	return done;
}

static sqlite3 *db_open(const char *dir)
{
	char path[720];
	sqlite3 *h;
	snprintf(path, sizeof(path), "%.680s/graft.db", dir);
	cr_assert_eq(sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK,
	             "cannot open %s", path);
	sqlite3_busy_timeout(h, 5000);
	return h;
}

/* The first column of the first row of sql as an integer (0 if no row). */
static int64_t db_int(const char *dir, const char *sql)
{
	sqlite3 *h = db_open(dir);
	sqlite3_stmt *st;
	int64_t v = 0;
	cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
	             sqlite3_errmsg(h));
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return v;
}

/* PRAGMA integrity_check on dir/graft.db, asserting it answers "ok". */
static void expect_store_intact(const char *dir)
{
	sqlite3 *h = db_open(dir);
	sqlite3_stmt *st;
	char answer[300] = "";
	cr_assert_eq(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(answer, sizeof(answer), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(h);
	cr_assert_str_eq(answer, "ok", "integrity_check of %s/graft.db: %s", dir, answer);
}

/* The jobs graftd lists: their number, and the id of the last in *id. */
static int jobs_listed(const char *dir, int64_t *id)
{
	json_t *o = graftd_get_json(dir, "/v1/jobs", 200), *a = json_object_get(o, "jobs");
	cr_assert(json_is_array(a), "GET /v1/jobs: no jobs array");
	int n = (int)json_array_size(a);
	if (n > 0)
		*id = json_integer_value(json_object_get(json_array_get(a, (size_t)n - 1), "id"));
	json_decref(o);
	return n;
}

/* ---- the kill loop --------------------------------------------------------------- */

/* A job with a graft pretraining phase and a handful of small candidates. */
#define LOOP_CANDIDATES 8
#define LOOP_STEPS 120
#define LOOP_GRAFT "{source: target, channels: 8, pretrain_steps: 150}"

/* The moments of the job's life the loop kills graftd at, in order. */
enum moment {
	AT_SUBMISSION,   /* the POST sent, its answer not read */
	AT_PRETRAINING,  /* the job opening, its graft cache made, no graft finished */
	AT_OPENING,      /* "opening" logged, "open," not yet */
	AT_FIRST,        /* a candidate training, no result yet */
	AT_HELD_RESULT,  /* a result written by the worker, held before graftd read it */
	AT_WEIGHTS,      /* the running evaluation's weights file written, not recorded */
	AT_AFTER,        /* k results recorded, the next candidate training */
};

static const char *const moment_names[] = {
	"submission", "pretraining", "opening", "before-first-result", "result-before-commit",
	"weights-written", "after",
};

static const struct kill_plan {
	enum moment m;
	int k;
} plan[] = {
	{ AT_SUBMISSION, 0 }, { AT_PRETRAINING, 0 }, { AT_OPENING, 0 }, { AT_FIRST, 0 },
	{ AT_HELD_RESULT, 0 }, { AT_WEIGHTS, 0 }, { AT_AFTER, 1 }, { AT_AFTER, 2 },
	{ AT_HELD_RESULT, 0 }, { AT_AFTER, 3 }, { AT_OPENING, 0 }, { AT_WEIGHTS, 0 },
	{ AT_AFTER, 5 }, { AT_AFTER, 6 }, { AT_AFTER, 7 },
};
#define NKILLS ((int)(sizeof(plan) / sizeof(*plan)))

/* The worker command of the killed run: the real worker, made the direct
 * child of graftd by exec (so it dies with graftd), writing into a filter
 * that passes its lines on and, while the file "arm" exists, holds the
 * next result line for 3 s after creating the file "held": a result
 * produced and not yet recorded. */
static void write_wrapper(const char *script)
{
	FILE *f = fopen(script, "w");
	cr_assert_not_null(f);
	fprintf(f,
	        "fifo='%s.'$$\n"
	        "mkfifo \"$fifo\" || exit 1\n"
	        "while IFS= read -r line; do\n"
	        "  case $line in\n"
	        "  *'\"type\":\"result\"'*)\n"
	        "    if rm '%s' 2>/dev/null; then : > '%s'; sleep 3; fi;;\n"
	        "  esac\n"
	        "  printf '%%s\\n' \"$line\" || exit 0\n"
	        "done < \"$fifo\" &\n"
	        "exec \"$@\" > \"$fifo\"\n",
	        scratch_path("fifo"), scratch_path("arm"), scratch_path("held"));
	fclose(f);
}

/* Waits, polling graftd's API, until the job has k results and a
 * candidate in flight; returns 0 if it got there. */
static int wait_training(const char *dir, int64_t id, int k, double timeout)
{
	double t0 = test_now();
	while (test_now() - t0 < timeout) {
		int ev = 0, fl = 0;
		const char *st = job_progress(dir, id, &ev, &fl);
		cr_assert(strcmp(st, "failed") && strcmp(st, "done"), "the job is %s", st);
		if (ev >= k && fl >= 1)
			return 0;
		test_nap(0.01);
	}
	return -1;
}

/* The evaluation running now (0 if none). */
static int64_t running_eval(const char *dir)
{
	return db_int(dir, "SELECT id FROM evaluations WHERE status = 'running' "
	                   "ORDER BY id DESC LIMIT 1");
}

static int eval_done(const char *dir, int64_t eval)
{
	char sql[120];
	snprintf(sql, sizeof(sql), "SELECT status = 'done' FROM evaluations WHERE id = %lld",
	         (long long)eval);
	return (int)db_int(dir, sql);
}

struct loop {
	char dir[700], config[1200];
	pid_t pid;
	int64_t id;          /* 0 while no job is known */
	long log_mark;       /* the log's size when this graftd started */
	char done_at[NKILLS][48];
	int kills;
};

static void loop_start(struct loop *L)
{
	L->log_mark = file_size(log_path(L->dir));
	L->pid = graftd_start_with(L->dir, 1, L->config);
}

static void loop_kill(struct loop *L)
{
	int status = graftd_stop(L->pid, SIGKILL);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	          "graftd ended by itself (status %d) before kill %d", status, L->kills + 1);
	L->pid = 0;
}

/* Kills graftd at moment p; returns a label of the moment reached, checked
 * after the kill where the moment is a race. */
static const char *kill_at(struct loop *L, const struct kill_plan *p)
{
	static char label[48];
	snprintf(label, sizeof(label), "%s", moment_names[p->m]);
	switch (p->m) {
	case AT_SUBMISSION: {
		char spec[1600], req[2400];
		job_spec(spec, sizeof(spec), LOOP_CANDIDATES, LOOP_STEPS, LOOP_GRAFT);
		int n = snprintf(req, sizeof(req), "POST /v1/jobs HTTP/1.1\r\nHost: graft\r\n"
		                 "Content-Type: application/yaml\r\nContent-Length: %zu\r\n\r\n%s",
		                 strlen(spec), spec);
		int fd = graftd_connect(L->dir);
		cr_assert_geq(fd, 0);
		cr_assert_eq(write(fd, req, (size_t)n), n);
		loop_kill(L);
		close(fd);
		return label;
	}
	case AT_PRETRAINING: {
		double t0 = test_now();
		while (graft_cache_state(L->dir) != 0 && test_now() - t0 < 60)
			test_nap(0.005);
		cr_assert_eq(graft_cache_state(L->dir), 0, "the graft's pretraining never showed");
		loop_kill(L);
		cr_assert(!log_has(L->dir, L->log_mark, "open,"), "the job opened before the kill");
		cr_assert_eq(graft_cache_state(L->dir), 0, "the graft was finished at the kill");
		return label;
	}
	case AT_OPENING: {
		/* graftd_start returns up to 50 ms after graftd listens, and an
		 * open with a finished graft takes less: the restart before this
		 * moment is made here, and watched from its first instant. */
		cr_assert_eq(L->pid, 0);
		L->log_mark = file_size(log_path(L->dir));
		L->pid = graftd_spawn(L->dir, 1, L->config);
		double t0 = test_now();
		while (!log_has(L->dir, L->log_mark, ": opening") && test_now() - t0 < 60)
			;
		cr_assert(WIFSIGNALED(graftd_stop(L->pid, SIGKILL)));
		L->pid = 0;
		if (log_has(L->dir, L->log_mark, "open,"))
			snprintf(label, sizeof(label), "opening(missed:open)");
		else if (graft_cache_state(L->dir) != 1)
			snprintf(label, sizeof(label), "opening(before-graft)");
		return label;
	}
	case AT_FIRST:
	case AT_AFTER: {
		cr_assert_eq(wait_training(L->dir, L->id, p->k, 120), 0,
		             "the job never had %d results and a candidate in flight", p->k);
		loop_kill(L);
		int64_t n = db_int(L->dir, "SELECT count(*) FROM evaluations WHERE status = 'done'");
		if (p->m == AT_FIRST)
			cr_assert_eq(n, 0, "a result was recorded before the kill");
		else
			snprintf(label, sizeof(label), "after-%lld", (long long)n);
		return label;
	}
	case AT_HELD_RESULT: {
		cr_assert_eq(wait_training(L->dir, L->id, 0, 120), 0);
		int64_t e = running_eval(L->dir);
		FILE *f = fopen(scratch_path("arm"), "w");
		cr_assert_not_null(f);
		fclose(f);
		double t0 = test_now();
		while (!exists(scratch_path("held")) && test_now() - t0 < 120)
			test_nap(0.005);
		cr_assert(exists(scratch_path("held")), "no result was held");
		loop_kill(L);
		unlink(scratch_path("held"));
		cr_assert(!eval_done(L->dir, e), "the held result of evaluation %lld was recorded",
		          (long long)e);
		return label;
	}
	case AT_WEIGHTS: {
		char tmp[800], final[760];
		cr_assert_eq(wait_training(L->dir, L->id, 0, 120), 0);
		int64_t e = running_eval(L->dir);
		cr_assert_gt(e, 0, "no evaluation running");
		snprintf(final, sizeof(final), "%.680s/weights/%lld.safetensors", L->dir, (long long)e);
		snprintf(tmp, sizeof(tmp), "%s.tmp", final);
		double t0 = test_now();
		/* No nap: the window is the file's write and sync, and the commit. */
		while (!exists(tmp) && !exists(final) && test_now() - t0 < 120)
			;
		loop_kill(L);
		if (eval_done(L->dir, e))
			snprintf(label, sizeof(label), "weights(missed:recorded)");
		else if (!exists(final))
			snprintf(label, sizeof(label), "weights-being-written");
		return label;
	}
	}
	return label;
}

/* Processes of this test's wrapper still running (their command line
 * names the scratch directory). */
static int wrappers_left(void)
{
	char cmd[800];
	/* "worker[.]sh": the pattern does not match the shell running pgrep. */
	snprintf(cmd, sizeof(cmd), "pgrep -f '%s/worker[.]sh' | wc -l", scratch_path(""));
	FILE *p = popen(cmd, "r");
	int n = -1;
	cr_assert_eq(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

/* The reliability bar of DESIGN.md, held at 15 moments of one job's life:
 * killed with SIGKILL at each and restarted, the job ends exactly as an
 * uninterrupted run does, every candidate evaluated once, the store
 * intact. */
Test(recovery, kill9_at_fifteen_moments_ends_as_an_uninterrupted_run)
{
	char ref[700];
	double t0 = test_now();

	/* The reference: one worker, so the search is deterministic. */
	snprintf(ref, sizeof(ref), "%s", scratch_path("ref"));
	pid_t pid = graftd_start_with(ref, 1, "log_level: info\n");
	int64_t rid = submit_job(ref, LOOP_CANDIDATES, LOOP_STEPS, LOOP_GRAFT);
	wait_state(ref, rid, "done", 300);
	graftd_stop(pid, SIGTERM);
	struct outcome want;
	read_outcome(ref, rid, &want);
	expect_each_once(&want, LOOP_CANDIDATES);
	double t_ref = test_now() - t0;

	struct loop L = { 0 };
	snprintf(L.dir, sizeof(L.dir), "%s", scratch_path("killed"));
	write_wrapper(scratch_path("worker.sh"));
	snprintf(L.config, sizeof(L.config), "log_level: info\nworker_command: [sh, '%s']\n",
	         scratch_path("worker.sh"));
	loop_start(&L);
	for (int i = 0; i < NKILLS; i++) {
		snprintf(L.done_at[i], sizeof(L.done_at[i]), "%s", kill_at(&L, &plan[i]));
		L.kills++;
		if (i + 1 < NKILLS && plan[i + 1].m == AT_OPENING && L.id)
			continue; /* the next moment is the restart itself */
		loop_start(&L);
		if (!L.id) {
			/* Killed during the submission: the job exists or not; if not,
			 * it is submitted again.  Either way there is one. */
			if (jobs_listed(L.dir, &L.id) == 0) {
				L.id = submit_job(L.dir, LOOP_CANDIDATES, LOOP_STEPS, LOOP_GRAFT);
				strncat(L.done_at[i], "(no job)", sizeof(L.done_at[i]) - strlen(L.done_at[i]) - 1);
			} else {
				strncat(L.done_at[i], "(job kept)", sizeof(L.done_at[i]) - strlen(L.done_at[i]) - 1);
			}
		}
	}
	wait_state(L.dir, L.id, "done", 300);
	int64_t other;
	cr_assert_eq(jobs_listed(L.dir, &other), 1, "more than one job after the submission kill");
	graftd_stop(L.pid, SIGTERM);

	struct outcome got;
	read_outcome(L.dir, L.id, &got);
	expect_each_once(&got, want.n);
	for (int i = 0; i < want.n; i++) {
		cr_assert_str_eq(got.genome[i], want.genome[i], "candidate %d: another genome", i);
		cr_assert(got.fitness[i] == want.fitness[i], "candidate %d: fitness %.17g, "
		          "uninterrupted %.17g", i, got.fitness[i], want.fitness[i]);
	}
	expect_store_intact(L.dir);
	char sql[300];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM evaluations e JOIN candidates c ON "
	         "c.id = e.candidate_id WHERE c.job_id = %lld AND e.status = 'failed'",
	         (long long)L.id);
	int64_t interrupted = db_int(L.dir, sql);
	snprintf(sql, sizeof(sql), "SELECT count(DISTINCT e.candidate_id) FROM evaluations e "
	         "JOIN candidates c ON c.id = e.candidate_id WHERE c.job_id = %lld AND "
	         "e.status = 'failed'", (long long)L.id);
	int64_t rerun = db_int(L.dir, sql);
	char summary[1200] = "";
	for (int i = 0; i < NKILLS; i++) {
		strncat(summary, i ? " " : "", sizeof(summary) - strlen(summary) - 1);
		strncat(summary, L.done_at[i], sizeof(summary) - strlen(summary) - 1);
	}
	fprintf(stderr, "recovery: %d kills at: %s; %lld evaluations interrupted, %lld of %d "
	        "candidates re-run; reference %.1f s, killed run %.1f s\n", L.kills, summary,
	        (long long)interrupted, (long long)rerun, want.n, t_ref, test_now() - t0 - t_ref);
	/* Nothing of the wrapper outlives the killed daemons. */
	double w0 = test_now();
	while (wrappers_left() > 0 && test_now() - w0 < 10)
		test_nap(0.1);
	cr_assert_eq(wrappers_left(), 0, "a wrapper worker or its filter survived graftd");
}

/* ---- faults: the disk full, the weights unwritable, the store read-only ---------- */

#define FAULT_CANDIDATES 6
#define FAULT_STEPS 60

/* DISK_FULL: nothing more can be written, the store included (the WAL of
 * a young store grows at every commit); DISK_FULL_WAL_ROOM: the WAL was
 * just checkpointed, so the store can still commit into blocks it has, as
 * in a daemon that has run a while: only the weights find the disk full. */
enum fault { DISK_FULL, DISK_FULL_WAL_ROOM, WEIGHTS_UNWRITABLE, STORE_READ_ONLY };

static const char *const fault_names[] = { "disk full", "disk full (room in the WAL)",
                                           "weights unwritable", "store read-only" };

/* What an error must mention for a person to know what to fix (words a
 * generic hint such as "check disk space and permissions" does not hold). */
static const char *const fault_words[][4] = {
	{ "full", "no space", NULL },
	{ "full", "no space", NULL },
	{ "weights", NULL },
	{ "graft.db", "read-only", "readonly", "not permitted" },
};

/* Mounts made by this test stay in its own mount namespace (graftd and
 * its workers, started later, share it), so none outlives the test or
 * shows to others.  0, or skips the test where that is not allowed. */
static void private_mounts(void)
{
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		cr_skip_test("needs root (a mount namespace of its own): %s", strerror(errno));
}

static void mount_at(const char *src, const char *target, const char *type,
                     unsigned long flags, const char *opts)
{
	cr_assert_eq(mount(src, target, type, flags, opts), 0, "mount %s: %s", target,
	             strerror(errno));
	if (!(flags & MS_REMOUNT))
		snprintf(mounted[nmounted++], sizeof(mounted[0]), "%s", target);
}

static void unmount_last(void)
{
	cr_assert_gt(nmounted, 0);
	cr_assert_eq(umount2(mounted[--nmounted], 0), 0, "umount %s: %s", mounted[nmounted],
	             strerror(errno));
}

/* Fills the file system of dir with dir/filler until it has no byte left. */
static void fill_disk(const char *dir)
{
	char path[720];
	static char block[65536];
	snprintf(path, sizeof(path), "%.680s/filler", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	memset(block, 0x5a, sizeof(block));
	for (size_t len = sizeof(block); len > 0;) {
		ssize_t n = write(fd, block, len);
		if (n < 0 && errno == ENOSPC)
			len /= 2;
		else
			cr_assert_gt(n, 0, "filling %s: %s", path, strerror(errno));
	}
	fsync(fd);
	close(fd);
}

/* Makes graft.db and its WAL refuse writes, even through graftd's open
 * descriptors: immutable (root ignores permissions; a read-only mount is
 * refused while a file is open for writing).  Skips where the file
 * system has no immutable attribute that stops writes (tmpfs). */
static void store_read_only(const char *dir)
{
	static const char *const files[] = { "graft.db", "graft.db-wal" };
	char probe[720];
	snprintf(probe, sizeof(probe), "%.680s/probe", dir);
	int fd = open(probe, O_RDWR | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	int rc = set_immutable(probe, 1);
	ssize_t n = rc ? 0 : write(fd, "x", 1);
	close(fd);
	set_immutable(probe, 0);
	unlink(probe);
	if (rc || n >= 0)
		cr_skip_test("%s: no immutable attribute that stops writes here", dir);
	for (int i = 0; i < 2; i++) {
		snprintf(immutable[nimmutable], sizeof(immutable[0]), "%.680s/%s", dir, files[i]);
		cr_assert_eq(set_immutable(immutable[nimmutable], 1), 0, "chattr +i %s",
		             immutable[nimmutable]);
		nimmutable++;
	}
}

/* Checkpoints dir/graft.db's WAL back to its start (the file keeps its
 * size, so the next commits write where blocks are already allocated). */
static void checkpoint(const char *dir)
{
	sqlite3 *h = db_open(dir);
	int frames = -1, done = -1;
	/* A connection knows the file is in WAL mode once it has read it. */
	cr_assert_eq(sqlite3_exec(h, "SELECT count(*) FROM jobs", NULL, NULL, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_wal_checkpoint_v2(h, "main", SQLITE_CHECKPOINT_RESTART, &frames,
	                                       &done), SQLITE_OK, "%s", sqlite3_errmsg(h));
	cr_assert(frames > 0 && done == frames, "checkpoint: %d of %d frames", done, frames);
	sqlite3_close(h);
}

static void inflict(enum fault f, const char *dir)
{
	char weights[720];
	switch (f) {
	case DISK_FULL_WAL_ROOM:
		checkpoint(dir);
		/* fall through */
	case DISK_FULL:
		fill_disk(dir);
		break;
	case WEIGHTS_UNWRITABLE:
		/* Read-only where it is, the weights already written still read. */
		snprintf(weights, sizeof(weights), "%.680s/weights", dir);
		mount_at(weights, weights, NULL, MS_BIND, NULL);
		mount_at(NULL, weights, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL);
		break;
	case STORE_READ_ONLY:
		store_read_only(dir);
		break;
	}
}

static void clear(enum fault f, const char *dir)
{
	char path[720];
	switch (f) {
	case DISK_FULL:
	case DISK_FULL_WAL_ROOM:
		snprintf(path, sizeof(path), "%.680s/filler", dir);
		cr_assert_eq(unlink(path), 0);
		break;
	case WEIGHTS_UNWRITABLE:
		unmount_last();
		break;
	case STORE_READ_ONLY:
		while (nimmutable > 0)
			cr_assert_eq(set_immutable(immutable[--nimmutable], 0), 0);
		break;
	}
}

static json_t *job_get(const char *dir, int64_t id)
{
	char path[64];
	snprintf(path, sizeof(path), "/v1/jobs/%lld", (long long)id);
	return graftd_get_json(dir, path, 200);
}

/* The failed evaluations' errors of job id, distinct, joined by " | ". */
static void eval_errors(const char *dir, int64_t id, char *out, size_t len)
{
	sqlite3 *h = db_open(dir);
	sqlite3_stmt *st;
	char sql[300];
	snprintf(sql, sizeof(sql), "SELECT DISTINCT e.error FROM evaluations e JOIN candidates c "
	         "ON c.id = e.candidate_id WHERE c.job_id = %lld AND e.status = 'failed'",
	         (long long)id);
	out[0] = '\0';
	cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *e = (const char *)sqlite3_column_text(st, 0);
		strncat(out, out[0] ? " | " : "", len - strlen(out) - 1);
		strncat(out, e ? e : "(null)", len - strlen(out) - 1);
	}
	sqlite3_finalize(st);
	sqlite3_close(h);
}

/* The requirement for a fault while a job runs: graftd serves on; the job
 * pauses (or fails) with a sentence naming the problem; the store stays
 * intact; once the fault is cleared, a resume finishes the job with every
 * candidate evaluated once. */
static void fault_while_running(enum fault f)
{
	char dir[700];
	private_mounts();
	snprintf(dir, sizeof(dir), "%s", scratch_path("fault"));
	cr_assert_eq(mkdir(dir, 0700), 0);
	if (f == DISK_FULL || f == DISK_FULL_WAL_ROOM)
		mount_at("tmpfs", dir, "tmpfs", 0, "size=12m,mode=0700");
	pid_t pid = graftd_start(dir, 1);
	int64_t id = submit_job(dir, FAULT_CANDIDATES, FAULT_STEPS, "{source: none}");
	cr_assert_eq(wait_training(dir, id, 2, 120), 0, "the job never had 2 results");
	inflict(f, dir);

	/* Until the job stops running, graftd answers every poll. */
	char state[32] = "";
	double t0 = test_now();
	while (test_now() - t0 < 60) {
		json_t *h = graftd_get_json(dir, "/v1/health", 200);
		json_decref(h);
		snprintf(state, sizeof(state), "%s", job_state(dir, id, NULL));
		if (strcmp(state, "running"))
			break;
		test_nap(0.1);
	}
	json_t *j = job_get(dir, id);
	const char *e = json_string_value(json_object_get(j, "error"));
	char error[600], evals[1200];
	snprintf(error, sizeof(error), "%s", e ? e : "");
	int evaluated = (int)json_integer_value(json_object_get(json_object_get(j, "progress"),
	                                                        "evaluated"));
	int failed = (int)json_integer_value(json_object_get(json_object_get(j, "progress"),
	                                                     "failed_attempts"));
	json_decref(j);
	clear(f, dir);
	eval_errors(dir, id, evals, sizeof(evals));
	fprintf(stderr, "recovery: %s: the job is %s after %.1f s, error \"%s\"; %d evaluated, "
	        "%d failed attempts: %s\n", fault_names[f], state, test_now() - t0, error,
	        evaluated, failed, evals[0] ? evals : "none");
	expect_store_intact(dir);

	cr_assert(!strcmp(state, "paused") || !strcmp(state, "failed"), "%s: the job did not "
	          "pause or fail but is %s, %d failed attempts (%s)", fault_names[f], state, failed,
	          evals);
	int named = 0;
	for (int i = 0; i < 4 && fault_words[f][i]; i++)
		named |= strcasestr(error, fault_words[f][i]) != NULL;
	/* Not fatal: what a resume does next is worth knowing either way. */
	cr_expect(named, "%s: the job's error does not name the problem: \"%s\"", fault_names[f],
	          error);
	char path[64];
	snprintf(path, sizeof(path), "/v1/jobs/%lld/resume", (long long)id);
	resp r = graftd_http(dir, "POST", path, NULL, NULL);
	cr_assert_eq(r.status, 200, "%s: the job %s (\"%s\") and cannot be resumed: %d %s",
	             fault_names[f], state, error, r.status, r.body);
	free(r.body);
	wait_state(dir, id, "done", 300);
	graftd_stop(pid, SIGTERM);
	struct outcome o;
	read_outcome(dir, id, &o);
	expect_each_once(&o, FAULT_CANDIDATES);
	expect_store_intact(dir);
}

Test(recovery, a_full_disk_pauses_the_job_until_resumed)
{
	fault_while_running(DISK_FULL);
}

Test(recovery, a_full_disk_under_the_weights_pauses_the_job_until_resumed)
{
	fault_while_running(DISK_FULL_WAL_ROOM);
}

Test(recovery, unwritable_weights_pause_the_job_until_resumed)
{
	fault_while_running(WEIGHTS_UNWRITABLE);
}

/* The store's errors name the file and the system's reason (they said
 * only "disk I/O error" before). */
Test(recovery, a_read_only_store_pauses_the_job_until_resumed)
{
	fault_while_running(STORE_READ_ONLY);
}
