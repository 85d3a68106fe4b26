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

#include "daemon/cli/cli.h"
#include "daemon/runtime/runtime.h"
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
	rt_jobrun *jr;
	rt_driver *driver;
	uv_loop_t *loop;
	uv_signal_t sigint, sigterm;
	int stopping, failed, interrupted;
};

static void stop_all(struct search *s);

static int the_job(void *ctx, rt_jobrun **out, int max)
{
	struct search *s = ctx;
	if (s->stopping || s->failed || max < 1)
		return 0;
	out[0] = s->jr;
	return 1;
}

static void on_event(void *ctx, rt_jobrun *jr, const rt_event *e)
{
	struct search *s = ctx;
	rt_jobrun_stats st;

	if (e->kind == RT_WORKER_PROBLEM) {
		fprintf(stderr, "graft search: %s\n", e->message);
		return;
	}
	rt_jobrun_get_stats(jr, &st);
	switch (e->kind) {
	case RT_CACHED:
		printf("[%4d/%d] %d answered from the store (cache hits so far: %d)\n", st.evaluated,
		       st.total, e->hits, st.cache_hits);
		break;
	case RT_RESULT:
		if (e->task == RT_TASK_FINAL)
			printf("[final %d/%d] candidate %d trained to the end: val acc %.4f, %.1f "
			       "CPU-s\n", st.final_done, st.final_total, e->seq, e->result->val_accuracy,
			       e->result->cpu_s);
		else if (e->task == RT_TASK_SCORE)
			printf("[final] the winner, candidate %d: val acc %.4f, test acc %.4f\n",
			       e->seq, e->result->val_accuracy, e->result->test_accuracy);
		else if (st.rungs > 1)
			printf("[%4d/%d] candidate %d, rung %d: val acc %.4f after %d steps, %.1f "
			       "CPU-s%s; best %.4f (rung %d)\n", st.evaluated, st.total, e->seq, e->rung,
			       e->result->val_accuracy, e->result->steps, e->result->cpu_s,
			       e->rung > 0 ? " (climbed)" : e->result->inherited > 0 ? " (inherited)" : "",
			       st.best_accuracy, st.best_rung);
		else
			printf("[%4d/%d] candidate %d: val acc %.4f after %d steps, %.1f CPU-s%s; best "
			       "%.4f\n", st.evaluated, st.total, e->seq, e->result->val_accuracy,
			       e->result->steps, e->result->cpu_s,
			       e->result->inherited > 0 ? " (inherited)" : "", st.best_accuracy);
		break;
	case RT_RETRY:
	case RT_FAILED:
		printf("candidate %d failed: %s%s\n", e->seq, e->message,
		       e->kind == RT_RETRY ? " (will retry)" : "");
		break;
	case RT_JOB_ERROR:
		if (!s->failed)
			fprintf(stderr, "graft search: %s\n", e->message);
		s->failed = 1;
		stop_all(s);
		return;
	case RT_SENT:
	case RT_NOTHING:
	case RT_WORKER_PROBLEM:
		break;
	}
	fflush(stdout);
	if (rt_jobrun_complete(jr))
		stop_all(s);
}

static void driver_stopped(void *ctx)
{
	struct search *s = ctx;
	uv_close((uv_handle_t *)&s->sigint, NULL);
	uv_close((uv_handle_t *)&s->sigterm, NULL);
}

/* Tasks still in flight get half a second; then they are given back and
 * re-run on the next start (the driver does that, once each). */
static void stop_all(struct search *s)
{
	if (s->stopping)
		return;
	s->stopping = 1;
	if (s->driver)
		rt_driver_stop(s->driver, 0.5, driver_stopped, s);
}

static void on_signal(uv_signal_t *h, int sig)
{
	struct search *s = h->data;
	fprintf(stderr, "graft search: %s: stopping; run the same command to resume\n",
	        strsignal(sig));
	s->interrupted = 1;
	stop_all(s);
}

/* The final stage's trainings and which won. */
static void print_finals(store *st, int64_t job)
{
	store_final *f;
	int n;

	if (store_finals(st, job, &f, &n) || n == 0) {
		if (n == 0)
			store_finals_free(f, n);
		return;
	}
	printf("\nfinal stage (trained to the end; test scored for the winner only):\n"
	       "%6s %9s %8s %9s %9s %10s %9s\n", "rank", "graft", "status", "val acc",
	       "test acc", "params", "CPU-s");
	for (int i = 0; i < n; i++) {
		char test[16] = "-";
		if (!isnan(f[i].test_accuracy))
			snprintf(test, sizeof(test), "%.4f", f[i].test_accuracy);
		printf("%6d %9s %8s %9.4f %9s %10lld %9.1f%s\n", f[i].rank, f[i].graft,
		       store_final_status_name(f[i].status), f[i].val_accuracy, test,
		       (long long)f[i].params, f[i].cpu_s, f[i].winner ? "  <- winner" : "");
	}
	store_finals_free(f, n);
}

static void print_summary(store *st, int64_t job, int top)
{
	store_rank *r;
	store_cost q[4];
	store_job j;
	int n;

	if (store_leaderboard(st, job, STORE_SORT_ACCURACY, top, &r, &n) == 0) {
		printf("\nleaderboard (validation accuracy):\n%4s %6s %5s %4s %9s %10s %12s\n",
		       "rank", "cand", "gen", "rung", "accuracy", "params", "MFLOPs");
		for (int i = 0; i < n; i++)
			printf("%4d %6d %5d %4d %9.4f %10lld %12.2f\n", i + 1, r[i].seq,
			       r[i].generation, r[i].rung, r[i].val_accuracy, (long long)r[i].params,
			       r[i].flops / 1e6);
		free(r);
	}
	if (store_pareto(st, job, STORE_SORT_PARAMS, &r, &n) == 0) {
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
		default: return GRAFT_EINVAL;
		}
		if (bad)
			return GRAFT_EINVAL;
	}
	if (optind != argc - 1 || !a->db) {
		fprintf(stderr, "graft search: %s\n\n%s", optind >= argc ? "a job spec is required"
		        : optind < argc - 1 ? "one job spec only" : "--db FILE is required", usage);
		return GRAFT_EINVAL;
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
	snprintf(weights, sizeof(weights), "%s-weights", a.db);
	rt_jobrun_dirs dirs = { .weights = a.weights ? a.weights : weights };
	rt_jobrun_input *in = NULL;
	enum rt_jobrun_refusal why;
	if (proto_read_file(a.spec, &text, &len, err, sizeof(err)) ||
	    rt_jobrun_input_load(text, len, &dirs, &in, &why, err, sizeof(err))) {
		fprintf(stderr, "graft search: %s%s%s\n", text ? a.spec : "", text ? ": " : "", err);
		free(text);
		return CLI_FAIL;
	}
	spec = *rt_jobrun_input_spec(in);
	if (store_open(a.db, &s.st, err, sizeof(err))) {
		fprintf(stderr, "graft search: %s\n", err);
		rt_jobrun_input_free(in);
		free(text);
		return CLI_FAIL;
	}
	if (find_or_add_job(s.st, text, &spec, &job, &resumed)) {
		fprintf(stderr, "graft search: %s\n", store_errmsg(s.st));
		rt_jobrun_input_free(in);
		goto out;
	}
	printf("graft search: job %lld '%s' in %s (%s)\n", (long long)job, spec.name, a.db,
	       resumed ? "resuming" : "new");
	if (rt_jobrun_open(s.st, job, &dirs, in, stdout, &s.jr, err, sizeof(err))) {
		fprintf(stderr, "graft search: %s\n", err);
		store_job_set_state(s.st, job, STORE_JOB_FAILED, err);
		goto out;
	}
	rt_jobrun_stats js;
	rt_jobrun_get_stats(s.jr, &js);
	if (resumed)
		printf("graft search: %d of %d candidates already evaluated\n", js.evaluated, js.total);
	if (!rt_jobrun_complete(s.jr)) {
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		char threads[16];
		exe[n > 0 ? n : 0] = '\0';
		snprintf(threads, sizeof(threads), "%ld", a.threads ? a.threads : spec.threads);
		char *wargv[] = { exe, "worker", NULL };
		int nworkers = a.workers ? (int)a.workers : spec.workers;
		if (a.threads)
			rt_jobrun_set_threads(s.jr, (int)a.threads);
		s.loop = uv_default_loop();
		rt_pool_opts po = { .workers = nworkers, .argv = wargv, .heartbeat_s = 300 };
		rt_driver_cb cb = { .jobs = the_job, .event = on_event };
		store_job_set_state(s.st, job, STORE_JOB_RUNNING, NULL);
		s.driver = rt_driver_new(s.loop, &po, &cb, &s);
		if (!s.driver) {
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
	rt_jobrun_get_stats(s.jr, &js);
	printf("\ngraft search: done: %d candidates, %d answered from the store, %d failed\n",
	       js.evaluated, js.cache_hits, js.failed);
	print_summary(s.st, job, (int)a.top);
	print_finals(s.st, job);
	rc = CLI_OK;
out:
	rt_driver_free(s.driver);
	rt_jobrun_free(s.jr);
	store_close(s.st);
	free(text);
	return rc;
}
