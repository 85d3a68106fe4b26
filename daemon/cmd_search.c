/*
 * cmd_search.c - `graft search SPEC.yaml --db FILE`: a whole search in one
 * process tree, without the daemon.  The job lives in the SQLite file, so
 * running the same command again resumes it where it stopped (after a
 * crash, a kill -9 or Ctrl-C) and a finished job just prints its results.
 */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/cli.h"
#include "daemon/jobrun.h"
#include "daemon/pool.h"
#include "proto/proto.h"
#include "store/store.h"

static const char usage[] =
	"usage: graft search SPEC.yaml --db FILE [options]\n"
	"\n"
	"Runs the search a job spec describes (DESIGN.md) with worker processes and\n"
	"records everything in the SQLite file FILE.  The same command resumes an\n"
	"interrupted search; on a finished one it prints the results.\n"
	"\n"
	"  --db FILE         the store (created if missing)\n"
	"  --workers N       worker processes (default: the spec's workers)\n"
	"  --threads T       threads per worker (default: the spec's threads)\n"
	"  --weights DIR     where trained weights go (default FILE-weights)\n"
	"  --top K           leaderboard rows printed at the end (default 5)\n";

struct search {
	store *st;
	jobrun *jr;
	pool *pool;
	uv_loop_t *loop;
	uv_signal_t sigint, sigterm;
	jobrun_task *tasks;       /* per worker */
	int stopping, failed, interrupted;
	char err[GRAFT_ERRLEN];
};

static void stop_all(struct search *s);

static void fatal(struct search *s, const char *msg)
{
	if (!s->failed)
		fprintf(stderr, "graft search: %s\n", msg);
	s->failed = 1;
	stop_all(s);
}

/* Hands tasks to idle workers while there are both. */
static void dispatch(struct search *s)
{
	int w;
	while (!s->stopping && (w = pool_idle_worker(s->pool)) >= 0) {
		int hits = 0;
		jobrun_task t;
		int rc = jobrun_next(s->jr, &t, &hits, s->err, sizeof(s->err));
		if (hits) {
			jobrun_stats st;
			jobrun_get_stats(s->jr, &st);
			printf("[%4d/%d] %d answered from the store (cache hits so far: %d)\n",
			       st.told, st.total, hits, st.cache_hits);
			fflush(stdout);
		}
		if (rc < 0) {
			fatal(s, s->err);
			return;
		}
		if (rc == 0)
			break;
		if (pool_send(s->pool, w, t.msg, jobrun_spec(s->jr)->time_limit)) {
			jobrun_abandon(s->jr, &t); /* runs again with the next worker */
			break;
		}
		s->tasks[w] = t;
	}
	if (jobrun_complete(s->jr))
		stop_all(s);
}

static void on_idle(pool *p, int w, void *ctx)
{
	(void)p;
	(void)w;
	dispatch(ctx);
}

static void print_result(struct search *s, const jobrun_task *t, json_t *m)
{
	jobrun_stats st;
	jobrun_get_stats(s->jr, &st);
	printf("[%4d/%d] candidate %d: val acc %.4f after %d steps, %.1f CPU-s%s; best %.4f\n",
	       st.told, st.total, t->seq, json_number_value(json_object_get(m, "val_accuracy")),
	       (int)json_integer_value(json_object_get(m, "steps")),
	       json_number_value(json_object_get(m, "cpu_s")),
	       json_integer_value(json_object_get(m, "inherited")) > 0 ? " (inherited)" : "",
	       st.best_accuracy);
	fflush(stdout);
}

static void on_line(pool *p, int w, json_t *m, void *ctx)
{
	struct search *s = ctx;
	const char *type = json_string_value(json_object_get(m, "type"));
	char worker[32];
	int rc;

	snprintf(worker, sizeof(worker), "local:%d", pool_pid(p, w));
	/* A line about another task than the one in hand is not believed. */
	if (json_integer_value(json_object_get(m, "id")) != s->tasks[w].eval_id || !s->tasks[w].msg)
		return;
	if (!strcmp(type, "result")) {
		jobrun_task t = s->tasks[w];
		rc = jobrun_result(s->jr, &s->tasks[w], m, worker, s->err, sizeof(s->err));
		if (rc) {
			fatal(s, s->err);
			return;
		}
		print_result(s, &t, m);
	} else if (!strcmp(type, "error")) {
		const char *msg = json_string_value(json_object_get(m, "message"));
		int seq = s->tasks[w].seq;
		rc = jobrun_failure(s->jr, &s->tasks[w], msg ? msg : "unknown error", worker,
		                    s->err, sizeof(s->err));
		if (rc < 0) {
			fatal(s, s->err);
			return;
		}
		printf("candidate %d failed: %s%s\n", seq, msg ? msg : "?",
		       rc ? " (will retry)" : "");
	} else {
		return; /* progress and loading lines are heartbeats */
	}
	pool_release(p, w);
}

static void on_lost(pool *p, int w, const char *reason, void *ctx)
{
	struct search *s = ctx;
	int seq = s->tasks[w].seq;
	(void)p;
	if (s->stopping) {
		jobrun_abandon(s->jr, &s->tasks[w]);
		return;
	}
	int rc = jobrun_failure(s->jr, &s->tasks[w], reason, "", s->err, sizeof(s->err));
	if (rc < 0) {
		fatal(s, s->err);
		return;
	}
	printf("candidate %d lost: %s%s\n", seq, reason, rc ? " (will retry)" : "");
	dispatch(s);
}

static void pool_done(void *ctx)
{
	struct search *s = ctx;
	s->pool = NULL;
	uv_close((uv_handle_t *)&s->sigint, NULL);
	uv_close((uv_handle_t *)&s->sigterm, NULL);
}

static void stop_all(struct search *s)
{
	if (s->stopping)
		return;
	s->stopping = 1;
	/* Tasks still in flight are given back: they re-run on the next start. */
	for (int w = 0; s->pool && w < pool_size(s->pool); w++)
		if (pool_busy(s->pool, w) && s->tasks[w].msg)
			jobrun_abandon(s->jr, &s->tasks[w]);
	if (s->pool)
		pool_stop(s->pool, 0.5, pool_done);
}

static void on_signal(uv_signal_t *h, int sig)
{
	struct search *s = h->data;
	fprintf(stderr, "graft search: %s: stopping; run the same command to resume\n",
	        strsignal(sig));
	s->interrupted = 1;
	stop_all(s);
}

static void print_summary(store *st, int64_t job, int top)
{
	store_rank *r;
	store_cost q[4];
	store_job j;
	int n;

	if (store_leaderboard(st, job, STORE_SORT_ACCURACY, top, &r, &n) == 0) {
		printf("\nleaderboard (validation accuracy):\n%4s %6s %5s %9s %10s %12s\n", "rank",
		       "cand", "gen", "accuracy", "params", "MFLOPs");
		for (int i = 0; i < n; i++)
			printf("%4d %6d %5d %9.4f %10lld %12.2f\n", i + 1, r[i].seq, r[i].generation,
			       r[i].val_accuracy, (long long)r[i].params, r[i].flops / 1e6);
		free(r);
	}
	if (store_pareto(st, job, &r, &n) == 0) {
		printf("\naccuracy/params Pareto front: %d candidates\n", n);
		for (int i = 0; i < n; i++)
			printf("  candidate %4d: %.4f with %lld params\n", r[i].seq, r[i].val_accuracy,
			       (long long)r[i].params);
		free(r);
	}
	if (store_cost_parts(st, job, 4, q) == 0) {
		printf("\ncost per candidate by quarter of the job:\n%-10s %6s %9s %8s %6s %9s "
		       "%8s %10s %10s\n", "quarter", "cands", "CPU-s", "CPU/cand", "hits",
		       "inherited", "steps", "saved:hits", "saved:inh");
		for (int i = 0; i < 4; i++)
			printf("%4d-%-5d %6d %9.1f %8.2f %6d %9d %8.1f %10.1f %10.1f\n", q[i].first_seq,
			       q[i].last_seq, q[i].candidates, q[i].cpu_s, q[i].cpu_per_candidate,
			       q[i].cache_hits, q[i].inherited, q[i].mean_steps, q[i].saved_cache_s,
			       q[i].saved_inherit_s);
	}
	if (store_job_get(st, job, &j) == 0) {
		printf("one-time cost (graft pretraining, data, features): %.1f CPU-s\n",
		       j.overhead_cpu_s);
		store_job_clear(&j);
	}
}

struct search_args {
	const char *spec, *db, *weights;
	long workers, threads, top;
};

static int parse_args(int argc, char **argv, struct search_args *a)
{
	static const struct option opts[] = {
		{ "db", required_argument, 0, 'd' }, { "workers", required_argument, 0, 'w' },
		{ "threads", required_argument, 0, 't' }, { "weights", required_argument, 0, 'W' },
		{ "top", required_argument, 0, 'k' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 }
	};
	char o[32];
	int c;

	optind = 1;
	while ((c = cli_next_opt(argc, argv, opts, "search", o, sizeof(o))) != -1) {
		int bad = 0;
		switch (c) {
		case 'd': a->db = optarg; break;
		case 'W': a->weights = optarg; break;
		case 'w': bad = cli_int(o, optarg, 1, 256, &a->workers); break;
		case 't': bad = cli_int(o, optarg, 1, 256, &a->threads); break;
		case 'k': bad = cli_int(o, optarg, 0, 100000, &a->top); break;
		case 'h': fputs(usage, stdout); return 1;
		default: return -1;
		}
		if (bad)
			return -1;
	}
	if (optind != argc - 1 || !a->db) {
		fprintf(stderr, "graft search: %s\n\n%s", optind >= argc ? "a job spec is required"
		        : optind < argc - 1 ? "one job spec only" : "--db FILE is required", usage);
		return -1;
	}
	a->spec = argv[optind];
	return 0;
}

/* The job of this spec in the store: the unfinished one to resume, or a new one. */
static int find_or_add_job(store *st, const char *text, const proto_job *spec, int64_t *id,
                           int *resumed)
{
	store_job j = { .spec = (char *)text, .total = spec->candidates,
	                .steps = spec->train.steps, .state = STORE_JOB_QUEUED };
	nn_sha256_hex(text, strlen(text), j.spec_sha256);
	snprintf(j.name, sizeof(j.name), "%s", spec->name);
	*resumed = store_job_find_spec(st, j.spec_sha256, id) == 0;
	if (*resumed)
		return 0;
	return store_job_add(st, &j) ? -1 : (*id = j.id, 0);
}

int cli_search(int argc, char **argv)
{
	struct search_args a = { .top = 5 };
	struct search s = { 0 };
	char err[GRAFT_ERRLEN] = "", weights[4200], exe[4096];
	char *text = NULL;
	size_t len;
	proto_job spec;
	int64_t job = 0;
	int resumed, rc = CLI_FAIL, args = parse_args(argc, argv, &a);

	if (args)
		return args > 0 ? CLI_OK : CLI_USAGE;
	setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines reach a log as they happen */
	if (proto_read_file(a.spec, &text, &len, err, sizeof(err)) ||
	    proto_job_parse(text, len, &spec, err, sizeof(err))) {
		fprintf(stderr, "graft search: %s%s%s\n", text ? a.spec : "", text ? ": " : "", err);
		free(text);
		return CLI_FAIL;
	}
	if (store_open(a.db, &s.st, err, sizeof(err))) {
		fprintf(stderr, "graft search: %s\n", err);
		free(text);
		return CLI_FAIL;
	}
	if (find_or_add_job(s.st, text, &spec, &job, &resumed)) {
		fprintf(stderr, "graft search: %s\n", store_errmsg(s.st));
		goto out;
	}
	snprintf(weights, sizeof(weights), "%s-weights", a.db);
	jobrun_dirs dirs = { .weights = a.weights ? a.weights : weights };
	printf("graft search: job %lld '%s' in %s (%s)\n", (long long)job, spec.name, a.db,
	       resumed ? "resuming" : "new");
	if (jobrun_open(s.st, job, &dirs, stdout, &s.jr, err, sizeof(err))) {
		fprintf(stderr, "graft search: %s\n", err);
		store_job_set_state(s.st, job, STORE_JOB_FAILED, err);
		goto out;
	}
	jobrun_stats js;
	jobrun_get_stats(s.jr, &js);
	if (resumed)
		printf("graft search: %d of %d candidates already evaluated\n", js.told, js.total);
	if (!jobrun_complete(s.jr)) {
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		char threads[16];
		exe[n > 0 ? n : 0] = '\0';
		snprintf(threads, sizeof(threads), "%ld", a.threads ? a.threads : spec.threads);
		char *wargv[] = { exe, "worker", NULL };
		int nworkers = a.workers ? (int)a.workers : spec.workers;
		if (a.threads)
			jobrun_set_threads(s.jr, (int)a.threads);
		s.loop = uv_default_loop();
		s.tasks = calloc((size_t)nworkers, sizeof(*s.tasks));
		pool_opts po = { .workers = nworkers, .argv = wargv, .heartbeat_s = 300 };
		pool_cb cb = { .idle = on_idle, .line = on_line, .lost = on_lost };
		store_job_set_state(s.st, job, STORE_JOB_RUNNING, NULL);
		s.pool = pool_new(s.loop, &po, &cb, &s);
		if (!s.tasks || !s.pool) {
			fprintf(stderr, "graft search: cannot start the workers\n");
			goto out;
		}
		printf("graft search: %d worker%s, %s threads each\n", nworkers,
		       nworkers == 1 ? "" : "s", threads);
		uv_signal_init(s.loop, &s.sigint);
		uv_signal_init(s.loop, &s.sigterm);
		s.sigint.data = s.sigterm.data = &s;
		uv_signal_start(&s.sigint, on_signal, SIGINT);
		uv_signal_start(&s.sigterm, on_signal, SIGTERM);
		uv_run(s.loop, UV_RUN_DEFAULT);
		uv_loop_close(s.loop);
	}
	if (s.failed || s.interrupted) {
		store_job_set_state(s.st, job, s.failed ? STORE_JOB_FAILED : STORE_JOB_PAUSED,
		                    s.failed ? "the search failed; see the log" : NULL);
		rc = s.interrupted ? 130 : CLI_FAIL;
		goto out;
	}
	store_job_set_state(s.st, job, STORE_JOB_DONE, NULL);
	jobrun_get_stats(s.jr, &js);
	printf("\ngraft search: done: %d candidates, %d answered from the store, %d failed\n",
	       js.told, js.cache_hits, js.failed);
	print_summary(s.st, job, (int)a.top);
	rc = CLI_OK;
out:
	free(s.tasks);
	jobrun_free(s.jr);
	store_close(s.st);
	free(text);
	return rc;
}
