/*
 * cmd_client.c - the `graft` commands that drive graftd: submit, jobs,
 * status, watch, leaderboard, export, cancel, pause, resume, health.
 * Tables by default, --json for scripts (graftd's JSON as it sent it).
 * Exit codes: 0 done, 1 graftd refused (its message shown as written) or the
 * watched job failed, 2 bad arguments, 3 graftd is not running.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/cli/cli.h"
#include "proto/proto.h"

enum { O_JSON = 1, O_LIMIT = 2, O_SORT = 4, O_RANK = 8, O_OUT = 16, O_WEIGHTS = 32,
       O_INTERVAL = 64, O_ONNX = 128 };

struct copts {
	const char *cmd, *arg;
	char sock[4200];
	const char *socket_flag, *sort, *out, *weights, *onnx;
	long limit, rank;
	double interval;
	int json;
};

struct command {
	const char *name, *args, *help;
	int opts, nargs;
	int (*run)(struct copts *o);
};

static const struct command *find_command(const char *name);

static void print_help(const struct command *c)
{
	printf("usage: graft %s %s[options]\n\n%s\n\n", c->name, c->args, c->help);
	printf("  --socket PATH     graftd's socket (default $GRAFT_SOCKET, else\n"
	       "                    DATA_DIR/graftd.sock as graftd uses it)\n");
	if (c->opts & O_JSON)
		printf("  --json            print graftd's JSON instead of a table\n");
	if (c->opts & O_LIMIT)
		printf("  --limit N         rows (default 10)\n");
	if (c->opts & O_SORT)
		printf("  --sort KEY        accuracy (default), params or flops\n");
	if (c->opts & O_RANK)
		printf("  --rank N          which candidate of the search's leaderboard (default:\n"
		       "                    the final stage's winner, else rank 1)\n");
	if (c->opts & O_OUT)
		printf("  -o, --out FILE    write the architecture there (default stdout)\n");
	if (c->opts & O_WEIGHTS)
		printf("  --weights FILE    also write its trained weights (safetensors)\n");
	if (c->opts & O_ONNX)
		printf("  --onnx FILE       also write it as ONNX (opset 13; see graft onnx --help)\n");
	if (c->opts & O_INTERVAL)
		printf("  --interval S      seconds between polls (default 1)\n");
}

static int parse(int argc, char **argv, const struct command *c, struct copts *o)
{
	static const struct option opts[] = {
		{ "socket", required_argument, 0, 'S' }, { "json", no_argument, 0, 'j' },
		{ "limit", required_argument, 0, 'n' }, { "sort", required_argument, 0, 's' },
		{ "rank", required_argument, 0, 'r' }, { "out", required_argument, 0, 'o' },
		{ "weights", required_argument, 0, 'w' }, { "interval", required_argument, 0, 'i' },
		{ "onnx", required_argument, 0, 'x' },
		{ "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 }
	};
	static const struct { int ch, bit; } need[] = {
		{ 'j', O_JSON }, { 'n', O_LIMIT }, { 's', O_SORT }, { 'r', O_RANK }, { 'o', O_OUT },
		{ 'w', O_WEIGHTS }, { 'i', O_INTERVAL }, { 'x', O_ONNX },
	};
	char name[32];
	int ch;

	optind = 1;
	while ((ch = cli_next_opt(argc, argv, opts, c->name, name, sizeof(name))) != -1) {
		for (size_t k = 0; k < sizeof(need) / sizeof(*need); k++)
			if (need[k].ch == ch && !(c->opts & need[k].bit)) {
				fprintf(stderr, "graft %s: %s is not an option of this command\n", c->name,
				        name);
				return GRAFT_EINVAL;
			}
		int bad = 0;
		switch (ch) {
		case 'S': o->socket_flag = optarg; break;
		case 'j': o->json = 1; break;
		case 'n': bad = cli_int(name, optarg, 1, 10000, &o->limit); break;
		case 'r': bad = cli_int(name, optarg, 1, 100000, &o->rank); break;
		case 'o': o->out = optarg; break;
		case 'w': o->weights = optarg; break;
		case 'x': o->onnx = optarg; break;
		case 'i': bad = cli_double(name, optarg, 0, 3600, &o->interval); break;
		case 's':
			if (strcmp(optarg, "accuracy") && strcmp(optarg, "params") &&
			    strcmp(optarg, "flops")) {
				fprintf(stderr, "graft %s: --sort: expected accuracy, params or flops, got "
				        "'%s'\n", c->name, optarg);
				return GRAFT_EINVAL;
			}
			o->sort = optarg;
			break;
		case 'h': print_help(c); return 1;
		default: return GRAFT_EINVAL;
		}
		if (bad)
			return GRAFT_EINVAL;
	}
	if (argc - optind != c->nargs) {
		fprintf(stderr, "graft %s: expected %s\nusage: graft %s %s[options]\n", c->name,
		        c->nargs ? c->args : "no arguments", c->name, c->args);
		return GRAFT_EINVAL;
	}
	o->arg = c->nargs ? argv[optind] : NULL;
	if (c->nargs && strstr(c->args, "JOB")) {
		long id;
		if (cli_int("JOB", o->arg, 1, (1L << 62), &id))
			return GRAFT_EINVAL;
	}
	cli_socket_path(o->socket_flag, o->sock, sizeof(o->sock));
	return 0;
}

/* One call answered by JSON with status want: the JSON, or NULL after
 * saying why (*code set to the exit code). */
static json_t *request(struct copts *o, const char *method, const char *path,
                       const char *ctype, const char *body, size_t len, long want, int *code)
{
	cli_resp r = cli_call(o->sock, method, path, ctype, body, len);
	json_t *j = NULL;
	if (r.status != want)
		*code = cli_fail(o->cmd, o->sock, &r);
	else if (!(j = cli_json(o->cmd, &r)))
		*code = 1;
	cli_resp_free(&r);
	return j;
}

static json_t *get(struct copts *o, const char *path, int *code)
{
	return request(o, "GET", path, NULL, NULL, 0, 200, code);
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (s)
		puts(s);
	free(s);
}

static const char *num(json_t *o, const char *key, const char *fmt, char *buf, size_t len)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_number(v))
		return "-";
	snprintf(buf, len, fmt, json_number_value(v));
	return buf;
}

static const char *duration(json_t *v, char *buf, size_t len)
{
	if (!json_is_number(v))
		return "-";
	long s = (long)json_number_value(v);
	if (s >= 3600)
		snprintf(buf, len, "%ldh%02ldm", s / 3600, s / 60 % 60);
	else if (s >= 60)
		snprintf(buf, len, "%ldm%02lds", s / 60, s % 60);
	else
		snprintf(buf, len, "%lds", s);
	return buf;
}

static void job_row(json_t *j)
{
	json_t *p = json_object_get(j, "progress"), *b = json_object_get(j, "best");
	json_t *c = json_object_get(j, "cost");
	char acc[16], cpu[16], eta[16], prog[32];
	snprintf(prog, sizeof(prog), "%lld/%lld",
	         (long long)json_integer_value(json_object_get(p, "evaluated")),
	         (long long)json_integer_value(json_object_get(p, "total")));
	printf("%4lld  %-20.20s %-10s %9s %9s %10s %8s\n",
	       (long long)json_integer_value(json_object_get(j, "id")),
	       json_string_value(json_object_get(j, "name")),
	       json_string_value(json_object_get(j, "state")), prog,
	       num(b, "val_accuracy", "%.4f", acc, sizeof(acc)),
	       num(c, "cpu_per_candidate", "%.2f", cpu, sizeof(cpu)),
	       duration(json_object_get(j, "eta_s"), eta, sizeof(eta)));
}

static const char job_head[] = "  ID  NAME                 STATE      EVALUATED      BEST "
                               "CPU-S/CAND      ETA\n";

/* ---- the commands ------------------------------------------------------------------ */

static int cmd_submit(struct copts *o)
{
	char *text, err[GRAFT_ERRLEN];
	size_t len;
	if (proto_read_file(o->arg, &text, &len, err, sizeof(err))) {
		fprintf(stderr, "graft submit: %s\n", err);
		return 1;
	}
	size_t n = strlen(o->arg);
	const char *ct = n > 5 && !strcmp(o->arg + n - 5, ".json") ? "application/json"
	                 : "application/yaml";
	int code = 0;
	json_t *j = request(o, "POST", "/v1/jobs", ct, text, len, 201, &code);
	free(text);
	if (!j)
		return code;
	if (o->json)
		print_json(j);
	else
		printf("job %lld submitted; follow it with: graft watch %lld\n",
		       (long long)json_integer_value(json_object_get(j, "id")),
		       (long long)json_integer_value(json_object_get(j, "id")));
	json_decref(j);
	return 0;
}

static int cmd_jobs(struct copts *o)
{
	int code = 0;
	json_t *j = get(o, "/v1/jobs", &code);
	if (!j)
		return code;
	if (o->json) {
		print_json(j);
	} else {
		json_t *list = json_object_get(j, "jobs");
		if (!json_array_size(list))
			printf("no jobs yet; submit one with: graft submit SPEC.yaml\n");
		else
			fputs(job_head, stdout);
		for (size_t i = 0; i < json_array_size(list); i++)
			job_row(json_array_get(list, i));
	}
	json_decref(j);
	return 0;
}

/* How many candidates stopped at each rung (a multi-fidelity search). */
static void print_climb(json_t *j)
{
	json_t *at = json_object_get(j, "stopped_at_rung");
	if (json_array_size(at) < 2)
		return;
	printf("rungs       stopped at each:");
	for (size_t r = 0; r < json_array_size(at); r++)
		printf(" %lld", (long long)json_integer_value(json_array_get(at, r)));
	putchar('\n');
}

/* "1h 20m of 2h left" for the job's search budget, or "" without one. */
static const char *budget_left(json_t *j, char *buf, size_t len)
{
	json_t *b = json_object_get(j, "budget");
	char a[32], c[32];
	buf[0] = '\0';
	if (json_is_number(json_object_get(b, "max_time_s")))
		snprintf(buf, len, "%s of %s left", duration(json_object_get(b, "time_left_s"), a,
		         sizeof(a)), duration(json_object_get(b, "max_time_s"), c, sizeof(c)));
	else if (json_is_number(json_object_get(b, "max_cpu_s")))
		snprintf(buf, len, "%.0f of %.0f CPU-s left",
		         json_number_value(json_object_get(b, "cpu_left_s")),
		         json_number_value(json_object_get(b, "max_cpu_s")));
	return buf;
}

static void print_budget(json_t *j)
{
	char buf[96];
	if (*budget_left(j, buf, sizeof(buf)))
		printf("budget      %s%s\n", buf,
		       json_is_true(json_object_get(json_object_get(j, "budget"), "spent"))
		       ? " (spent: nothing new starts)" : "");
}

/* The final stage's trainings, the winner marked. */
static void print_finals(json_t *f)
{
	json_t *list = json_object_get(f, "trainings");
	if (!json_array_size(list))
		return;
	printf("final       trained to the end (the test split is scored for the winner only):\n");
	printf("  %4s %9s %9s %8s %9s %9s %9s\n", "RANK", "CANDIDATE", "GRAFT", "STATUS",
	       "VAL", "TEST", "PARAMS");
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *t = json_array_get(list, i);
		char val[16], test[16];
		printf("  %4lld %9lld %9s %8s %9s %9s %9lld%s\n",
		       (long long)json_integer_value(json_object_get(t, "rank")),
		       (long long)json_integer_value(json_object_get(t, "candidate")),
		       json_string_value(json_object_get(t, "graft")),
		       json_string_value(json_object_get(t, "status")),
		       num(t, "val_accuracy", "%.4f", val, sizeof(val)),
		       num(t, "test_accuracy", "%.4f", test, sizeof(test)),
		       (long long)json_integer_value(json_object_get(t, "params")),
		       json_is_true(json_object_get(t, "winner")) ? "  <- winner" : "");
	}
}

static int cmd_status(struct copts *o)
{
	char path[64], buf[32];
	int code = 0;
	snprintf(path, sizeof(path), "/v1/jobs/%s", o->arg);
	json_t *j = get(o, path, &code);
	if (!j)
		return code;
	if (o->json) {
		print_json(j);
		json_decref(j);
		return 0;
	}
	json_t *p = json_object_get(j, "progress"), *b = json_object_get(j, "best");
	json_t *c = json_object_get(j, "cost");
	printf("job         %lld  %s\n", (long long)json_integer_value(json_object_get(j, "id")),
	       json_string_value(json_object_get(j, "name")));
	printf("state       %s", json_string_value(json_object_get(j, "state")));
	if (json_is_string(json_object_get(j, "error")))
		printf(": %s", json_string_value(json_object_get(j, "error")));
	printf("\nprogress    %lld of %lld evaluated, %lld running, %lld from the store, "
	       "%lld failed attempts\n",
	       (long long)json_integer_value(json_object_get(p, "evaluated")),
	       (long long)json_integer_value(json_object_get(p, "total")),
	       (long long)json_integer_value(json_object_get(p, "in_flight")),
	       (long long)json_integer_value(json_object_get(p, "cache_hits")),
	       (long long)json_integer_value(json_object_get(p, "failed_attempts")));
	if (json_is_object(b))
		printf("best        %.4f (candidate %lld, %lld params)\n",
		       json_number_value(json_object_get(b, "val_accuracy")),
		       (long long)json_integer_value(json_object_get(b, "candidate")),
		       (long long)json_integer_value(json_object_get(b, "params")));
	printf("cost        %.1f CPU-s in candidates (%.2f per candidate), %.1f CPU-s one-time\n",
	       json_number_value(json_object_get(c, "cpu_s")),
	       json_number_value(json_object_get(c, "cpu_per_candidate")),
	       json_number_value(json_object_get(c, "overhead_cpu_s")));
	printf("eta         %s\n", duration(json_object_get(j, "eta_s"), buf, sizeof(buf)));
	print_climb(j);
	print_budget(j);
	print_finals(json_object_get(j, "final"));
	json_decref(j);
	return 0;
}

static int terminal_state(const char *s)
{
	return !strcmp(s, "done") || !strcmp(s, "failed") || !strcmp(s, "cancelled");
}

static int cmd_watch(struct copts *o)
{
	char path[64], eta[32], acc[16], cpu[16];
	int tty = isatty(STDOUT_FILENO), last = -1, code = 0;
	char last_state[32] = "";
	double interval = o->interval > 0 ? o->interval : 1.0;
	snprintf(path, sizeof(path), "/v1/jobs/%s", o->arg);
	for (;;) {
		json_t *j = get(o, path, &code);
		if (!j) {
			if (tty)
				putchar('\n');
			return code;
		}
		json_t *p = json_object_get(j, "progress"), *b = json_object_get(j, "best");
		json_t *c = json_object_get(j, "cost");
		const char *state = json_string_value(json_object_get(j, "state"));
		int done = (int)json_integer_value(json_object_get(p, "evaluated"));
		int total = (int)json_integer_value(json_object_get(p, "total"));
		const char *best = num(b, "val_accuracy", "%.4f", acc, sizeof(acc));
		const char *per = num(c, "cpu_per_candidate", "%.2f", cpu, sizeof(cpu));
		const char *left = duration(json_object_get(j, "eta_s"), eta, sizeof(eta));
		char budget[96];
		budget_left(j, budget, sizeof(budget));
		if (tty) {
			char bar[31];
			int fill = total > 0 ? 30 * done / total : 0;
			for (int i = 0; i < 30; i++)
				bar[i] = i < fill ? '#' : '.';
			bar[30] = '\0';
			printf("\r[%s] %d/%d  best %s  %s CPU-s/cand  ETA %s%s%s  %-9s", bar, done,
			       total, best, per, left, *budget ? "  budget " : "", budget, state);
			fflush(stdout);
		} else if (done != last || strcmp(state, last_state)) {
			printf("job %s: %s, %d/%d evaluated, best %s, %s CPU-s/cand, ETA %s%s%s\n",
			       o->arg, state, done, total, best, per, left, *budget ? ", budget " : "",
			       budget);
			fflush(stdout);
		}
		last = done;
		snprintf(last_state, sizeof(last_state), "%s", state);
		if (terminal_state(state)) {
			if (tty)
				putchar('\n');
			if (strcmp(state, "done")) {
				const char *err = json_string_value(json_object_get(j, "error"));
				fprintf(stderr, "graft watch: job %s %s%s%s\n", o->arg, state,
				        err ? ": " : "", err ? err : "");
			}
			int rc = strcmp(state, "done") ? 1 : 0;
			json_decref(j);
			return rc;
		}
		json_decref(j);
		struct timespec ts = { (time_t)interval,
		                       (long)((interval - (double)(time_t)interval) * 1e9) };
		nanosleep(&ts, NULL);
	}
}

static int cmd_leaderboard(struct copts *o)
{
	char path[128];
	int code = 0;
	snprintf(path, sizeof(path), "/v1/jobs/%s/leaderboard?limit=%ld&sort=%s", o->arg,
	         o->limit ? o->limit : 10, o->sort ? o->sort : "accuracy");
	json_t *j = get(o, path, &code);
	if (!j)
		return code;
	if (o->json) {
		print_json(j);
	} else {
		json_t *list = json_object_get(j, "candidates"), *classes = json_object_get(j, "classes");
		if (json_array_size(classes)) {
			printf("classes:");
			for (size_t k = 0; k < json_array_size(classes); k++)
				printf("%s %s", k ? "," : "", json_string_value(json_array_get(classes, k)));
			printf("\n");
		}
		if (!json_array_size(list))
			printf("no candidate of job %s is scored yet\n", o->arg);
		else
			printf("%4s %9s %5s %4s %9s %9s %8s %7s\n", "RANK", "CANDIDATE", "GEN", "RUNG",
			       "ACCURACY", "PARAMS", "MFLOPS", "CPU-S");
		for (size_t i = 0; i < json_array_size(list); i++) {
			json_t *r = json_array_get(list, i);
			printf("%4lld %9lld %5lld %4lld %9.4f %9lld %8.2f %7.1f%s\n",
			       (long long)json_integer_value(json_object_get(r, "rank")),
			       (long long)json_integer_value(json_object_get(r, "candidate")),
			       (long long)json_integer_value(json_object_get(r, "generation")),
			       (long long)json_integer_value(json_object_get(r, "rung")),
			       json_number_value(json_object_get(r, "val_accuracy")),
			       (long long)json_integer_value(json_object_get(r, "params")),
			       json_number_value(json_object_get(r, "flops")) / 1e6,
			       json_number_value(json_object_get(r, "cpu_s")),
			       json_is_true(json_object_get(r, "cached")) ? "  (from the store)" : "");
		}
		json_decref(j);
		snprintf(path, sizeof(path), "/v1/jobs/%s/final", o->arg);
		j = get(o, path, &code);
		if (j) {
			putchar('\n');
			print_finals(json_object_get(j, "final"));
		}
	}
	json_decref(j);
	return 0;
}

static int write_file(const char *cmd, const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f)) {
		fprintf(stderr, "graft %s: cannot write %s\n", cmd, path);
		return 1;
	}
	return 0;
}

/* GET path into *r, answered 200; else the exit code after saying why. */
static int fetch(struct copts *o, const char *path, cli_resp *r)
{
	*r = cli_call(o->sock, "GET", path, NULL, NULL, 0);
	if (r->status == 200)
		return 0;
	int code = cli_fail(o->cmd, o->sock, r);
	cli_resp_free(r);
	return code;
}

/* The rank is resolved to a candidate once, and its architecture and weights
 * are then fetched by that id: ranks move while a job runs, and two lookups
 * of "rank N" could pair one candidate's architecture with another's
 * weights.  Nothing is written unless everything was fetched. */
/* Writes arch (and w) where o says; what names what was written. */
/* The ONNX file of an exported architecture and weights (both in memory),
 * through temporary files, which are removed. */
static int write_onnx(struct copts *o, const cli_resp *arch, const cli_resp *w)
{
	char ta[64] = "/tmp/graft-export-XXXXXX", tw[64] = "/tmp/graft-export-XXXXXX";
	int fa = mkstemp(ta), fw = fa >= 0 ? mkstemp(tw) : -1, rc = 1;

	if (fa >= 0 && fw >= 0 && write(fa, arch->body, arch->len) == (ssize_t)arch->len &&
	    write(fw, w->body, w->len) == (ssize_t)w->len)
		rc = cli_onnx_write(o->cmd, ta, tw, o->onnx);
	else
		fprintf(stderr, "graft %s: cannot write temporary files in /tmp\n", o->cmd);
	if (fa >= 0) {
		close(fa);
		unlink(ta);
	}
	if (fw >= 0) {
		close(fw);
		unlink(tw);
	}
	return rc;
}

static int write_export(struct copts *o, cli_resp *arch, cli_resp *w, const char *what)
{
	int rc = o->out ? write_file(o->cmd, o->out, arch->body, arch->len)
	                : (fwrite(arch->body, 1, arch->len, stdout) == arch->len ? 0 : 1);
	if (!rc && o->weights)
		rc = write_file(o->cmd, o->weights, w->body, w->len);
	if (!rc && o->onnx && (rc = write_onnx(o, arch, w)) == 0)
		fprintf(stderr, "wrote %s (ONNX)\n", o->onnx);
	cli_resp_free(arch);
	cli_resp_free(w);
	if (!rc && o->out)
		fprintf(stderr, "wrote %s%s%s (%s)\n", o->out, o->weights ? " and " : "",
		        o->weights ? o->weights : "", what);
	return rc;
}

/* The final stage's winner, when the job has one: 1 when there is none
 * (the search's best is exported instead), else the exit code. */
static int export_final(struct copts *o)
{
	char path[128], what[160];
	int code = 0;
	snprintf(path, sizeof(path), "/v1/jobs/%s/final", o->arg);
	/* A graftd from before the final stage has no such endpoint: 404 then
	 * means "no final model", and the search's best is exported. */
	cli_resp fr = cli_call(o->sock, "GET", path, NULL, NULL, 0);
	if (fr.status == 404 && !strstr(fr.body ? fr.body : "", "no such job")) {
		cli_resp_free(&fr);
		return -1;
	}
	if (fr.status != 200) {
		code = cli_fail(o->cmd, o->sock, &fr);
		cli_resp_free(&fr);
		return code;
	}
	json_t *j = json_loads(fr.body, 0, NULL);
	cli_resp_free(&fr);
	if (!j) {
		fprintf(stderr, "graft %s: graftd's answer is not JSON\n", o->cmd);
		return 1;
	}
	json_t *w = json_object_get(json_object_get(j, "final"), "winner");
	long long id = json_is_object(w) ? (long long)json_integer_value(json_object_get(w, "id")) : 0;
	char test[16];
	snprintf(what, sizeof(what), "the final model: candidate %lld, %s graft, test accuracy %s",
	         (long long)json_integer_value(json_object_get(w, "candidate")),
	         json_string_value(json_object_get(w, "graft")),
	         num(w, "test_accuracy", "%.4f", test, sizeof(test)));
	json_decref(j);
	if (id <= 0)
		return -1;
	cli_resp arch, wt = { 0 };
	snprintf(path, sizeof(path), "/v1/finals/%lld/export", id);
	if ((code = fetch(o, path, &arch)))
		return code;
	snprintf(path, sizeof(path), "/v1/finals/%lld/weights", id);
	if ((o->weights || o->onnx) && (code = fetch(o, path, &wt))) {
		cli_resp_free(&arch);
		return code;
	}
	return write_export(o, &arch, &wt, what);
}

static int cmd_export(struct copts *o)
{
	char path[128], what[64];
	long rank = o->rank ? o->rank : 1;
	int code = 0;

	/* Without --rank, the model the job was for: its final stage's winner. */
	if (!o->rank && (code = export_final(o)) >= 0)
		return code;
	snprintf(path, sizeof(path), "/v1/jobs/%s/leaderboard?limit=%ld&sort=accuracy", o->arg,
	         rank);
	json_t *lb = get(o, path, &code);
	if (!lb)
		return code;
	json_t *row = json_array_get(json_object_get(lb, "candidates"), (size_t)rank - 1);
	json_t *id = json_object_get(row, "candidate");
	long long cand = json_is_integer(id) ? (long long)json_integer_value(id) : 0;
	json_decref(lb);
	if (cand <= 0) {
		fprintf(stderr, "graft %s: the job has no candidate of that rank (yet)\n", o->cmd);
		return 1;
	}
	cli_resp arch, w = { 0 };
	snprintf(path, sizeof(path), "/v1/candidates/%lld/export", cand);
	if ((code = fetch(o, path, &arch)))
		return code;
	snprintf(path, sizeof(path), "/v1/candidates/%lld/weights", cand);
	if ((o->weights || o->onnx) && (code = fetch(o, path, &w))) {
		cli_resp_free(&arch);
		return code;
	}
	snprintf(what, sizeof(what), "candidate %lld", cand);
	return write_export(o, &arch, &w, what);
}

static int control(struct copts *o, const char *action)
{
	char path[96];
	int code = 0;
	snprintf(path, sizeof(path), "/v1/jobs/%s/%s", o->arg, action);
	json_t *j = request(o, "POST", path, NULL, NULL, 0, 200, &code);
	if (!j)
		return code;
	if (o->json)
		print_json(j);
	else
		printf("job %s: %s\n", o->arg, json_string_value(json_object_get(j, "state")));
	json_decref(j);
	return 0;
}

static int cmd_cancel(struct copts *o) { return control(o, "cancel"); }
static int cmd_pause(struct copts *o) { return control(o, "pause"); }
static int cmd_resume(struct copts *o) { return control(o, "resume"); }

static int cmd_health(struct copts *o)
{
	int code = 0;
	json_t *j = get(o, "/v1/health", &code);
	if (!j)
		return code;
	if (o->json) {
		print_json(j);
	} else {
		json_t *w = json_object_get(j, "workers");
		json_int_t starting = json_integer_value(json_object_get(w, "starting")),
		           pending = json_integer_value(json_object_get(w, "pending"));
		printf("graftd %s at %s: %s, up %.0f s; workers %lld busy, %lld idle",
		       json_string_value(json_object_get(j, "version")), o->sock,
		       json_string_value(json_object_get(j, "status")),
		       json_number_value(json_object_get(j, "uptime_s")),
		       (long long)json_integer_value(json_object_get(w, "busy")),
		       (long long)json_integer_value(json_object_get(w, "idle")));
		if (starting)
			printf(", %lld starting", (long long)starting);
		if (pending)
			printf(", %lld pending in Slurm's queue", (long long)pending);
		printf(" (%lld restarted); jobs %lld running, %lld queued\n",
		       (long long)json_integer_value(json_object_get(w, "restarts")),
		       (long long)json_integer_value(json_object_get(j, "jobs_running")),
		       (long long)json_integer_value(json_object_get(j, "jobs_queued")));
		/* Why each waiting worker waits, as Slurm says it. */
		json_t *list = pending ? get(o, "/v1/workers", &code) : NULL, *x;
		size_t i;
		json_array_foreach(json_object_get(list, "workers"), i, x)
			if (json_is_string(json_object_get(x, "slurm")))
				printf("  worker %lld: %s\n",
				       (long long)json_integer_value(json_object_get(x, "slot")),
				       json_string_value(json_object_get(x, "slurm")));
		json_decref(list);
	}
	json_decref(j);
	return 0;
}

static const struct command commands[] = {
	{ "submit", "SPEC.yaml ", "Submits a search job (a job spec, YAML or JSON) to graftd.",
	  O_JSON, 1, cmd_submit },
	{ "jobs", "", "Lists graftd's jobs with their state and progress.", O_JSON, 0, cmd_jobs },
	{ "status", "JOB ", "Shows a job: state, progress, best so far, cost, ETA.", O_JSON, 1,
	  cmd_status },
	{ "watch", "JOB ", "Follows a job until it ends: a live bar on a terminal, a line per\n"
	  "change otherwise.  Exit 0 when it is done, 1 when it failed or was cancelled.",
	  O_INTERVAL, 1, cmd_watch },
	{ "leaderboard", "JOB ", "A job's best candidates.", O_JSON | O_LIMIT | O_SORT, 1,
	  cmd_leaderboard },
	{ "export", "JOB ", "Writes the job's final model (its final stage's winner) or, with --rank,\n"
	  "a candidate of the search's leaderboard: its architecture (graft-arch/1 YAML), and\n"
	  "with --weights its trained weights (safetensors), for `graft train` or PyTorch;\n"
	  "with --onnx the model as ONNX, for inference runtimes.",
	  O_RANK | O_OUT | O_WEIGHTS | O_ONNX, 1, cmd_export },
	{ "cancel", "JOB ", "Cancels a job (what is running finishes and is kept).", O_JSON, 1,
	  cmd_cancel },
	{ "pause", "JOB ", "Pauses a job: no new candidates start until it is resumed.", O_JSON, 1,
	  cmd_pause },
	{ "resume", "JOB ", "Resumes a paused job.", O_JSON, 1, cmd_resume },
	{ "health", "", "Is graftd up?  Its version, uptime, workers and jobs.", O_JSON, 0,
	  cmd_health },
};

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

int cli_client_command(const char *name)
{
	return find_command(name) != NULL;
}

int cli_client(int argc, char **argv)
{
	const struct command *c = find_command(argv[0]);
	struct copts o = { .cmd = argv[0] };
	int a = parse(argc, argv, c, &o);
	if (a)
		return a > 0 ? CLI_OK : CLI_USAGE;
	return c->run(&o);
}
