/*
 * graftd.c - the daemon: takes search jobs over a Unix socket (HTTP/1.1 +
 * JSON, DESIGN.md's API), runs them on a pool of worker processes, and keeps
 * everything in DATA_DIR/graft.db.  `graftd worker` is the worker process.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/graftd/graftd.h"
#include "daemon/runtime/runtime.h"
#include "proto/proto.h"
#include "search/search.h"
#include "store/store.h"

#define GRAFT_VERSION "0.4.0"

static const char usage[] =
	"usage: graftd [options]       run the daemon\n"
	"       graftd worker          a worker process (graftd starts these itself)\n"
	"\n"
	"  --data-dir DIR     where the store, weights and grafts live (default\n"
	"                     $GRAFT_DATA_DIR, else $XDG_DATA_HOME/graft, else\n"
	"                     ~/.local/share/graft)\n"
	"  --socket PATH      the API socket (default DATA_DIR/graftd.sock, mode 0600)\n"
	"  --config FILE      a YAML config (see deploy/graftd.yaml); flags override it\n"
	"  --workers N        worker processes (default: one per online CPU)\n"
	"  --log-level L      debug, info, warn or error (default info)\n"
	"  --log-file FILE    log there instead of stderr (SIGHUP reopens it)\n"
	"  --http HOST:PORT   serve the API on TCP too (127.0.0.1:8080; port 0: any)\n"
	"  --http-token TOK   required on that port (else http_token in the config, or\n"
	"                     $GRAFT_HTTP_TOKEN); an address but loopback needs one\n"
	"\n"
	"SIGTERM or SIGINT drain: no new candidates start, running ones get the\n"
	"config's drain seconds to finish, everything is committed, exit 0.\n";

struct daemon {
	uv_loop_t *loop;
	store *st;
	gd_sched *sched;
	gd_server *server;
	gd_api api;
	uv_signal_t sigterm, sigint, sighup;
	proto_daemon_config cfg;
	int draining, pending;
};

static void stopped_part(void *ctx)
{
	struct daemon *d = ctx;
	if (--d->pending == 0) {
		uv_close((uv_handle_t *)&d->sigterm, NULL);
		uv_close((uv_handle_t *)&d->sigint, NULL);
		uv_close((uv_handle_t *)&d->sighup, NULL);
		gd_log_msg(GD_LOG_INFO, "drained; state committed; exiting");
		uv_stop(d->loop);
	}
}

static void on_signal(uv_signal_t *h, int sig)
{
	struct daemon *d = h->data;
	if (sig == SIGHUP) {
		if (gd_log_reopen())
			gd_log_msg(GD_LOG_ERROR, "cannot reopen the log file");
		else
			gd_log_msg(GD_LOG_INFO, "log reopened");
		return;
	}
	if (d->draining)
		return;
	d->draining = 1;
	gd_log_msg(GD_LOG_INFO, "%s: draining", strsignal(sig));
	d->pending = 2;
	gd_server_close(d->server, stopped_part, d);
	gd_sched_stop(d->sched, d->cfg.drain_s, stopped_part, d);
}

static int parse_args(int argc, char **argv, proto_daemon_config *c, const char **config)
{
	static const struct option opts[] = {
		{ "data-dir", required_argument, 0, 'd' }, { "socket", required_argument, 0, 's' },
		{ "config", required_argument, 0, 'c' }, { "workers", required_argument, 0, 'w' },
		{ "log-level", required_argument, 0, 'l' }, { "log-file", required_argument, 0, 'f' },
		{ "http", required_argument, 0, 't' }, { "http-token", required_argument, 0, 'k' },
		{ "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 }
	};
	/* Flags override the config file, which is read first. */
	int c_opt;
	opterr = 0;
	optind = 1;
	while ((c_opt = getopt_long(argc, argv, "", opts, NULL)) != -1)
		if (c_opt == 'c')
			*config = optarg;
	if (*config) {
		char *text, err[GRAFT_ERRLEN];
		size_t len;
		if (proto_read_file(*config, &text, &len, err, sizeof(err))) {
			fprintf(stderr, "graftd: %s\n", err);
			return GRAFT_EINVAL;
		}
		int rc = proto_daemon_config_parse(text, len, c, err, sizeof(err));
		free(text);
		if (rc) {
			fprintf(stderr, "graftd: %s: %s\n", *config, err);
			return GRAFT_EINVAL;
		}
	}
	opterr = 1;
	optind = 1;
	while ((c_opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end;
		switch (c_opt) {
		case 'd': snprintf(c->data_dir, sizeof(c->data_dir), "%s", optarg); break;
		case 's': snprintf(c->socket, sizeof(c->socket), "%s", optarg); break;
		case 'c': break;
		case 'f': snprintf(c->log_file, sizeof(c->log_file), "%s", optarg); break;
		case 't': snprintf(c->http, sizeof(c->http), "%s", optarg); break;
		case 'k': snprintf(c->http_token, sizeof(c->http_token), "%s", optarg); break;
		case 'l':
			if (gd_log_level_parse(optarg) < 0) {
				fprintf(stderr, "graftd: --log-level: expected debug, info, warn or "
				        "error, got '%s'\n", optarg);
				return GRAFT_EINVAL;
			}
			snprintf(c->log_level, sizeof(c->log_level), "%s", optarg);
			break;
		case 'w':
			c->workers = (int)strtol(optarg, &end, 10);
			if (*end || c->workers < 1 || c->workers > 256) {
				fprintf(stderr, "graftd: --workers: expected an integer 1..256, got "
				        "'%s'\n", optarg);
				return GRAFT_EINVAL;
			}
			break;
		case 'h': fputs(usage, stdout); return 1;
		default: fprintf(stderr, "%s", usage); return GRAFT_EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "graftd: unexpected argument '%s'\n%s", argv[optind], usage);
		return GRAFT_EINVAL;
	}
	return 0;
}

/* The worker command: graftd's own `worker`, after the config's prefix, or
 * for the Slurm executor an srun of it, one job (or job step) per worker
 * named graft-<pid>-w<slot>.  The strings built live in buf.  0, or 1 with
 * a sentence in err. */
static int worker_argv(const proto_daemon_config *c, const char *exe, char **argv,
                       char buf[][300], char *err, size_t errlen)
{
	int k = 0, b = 0;
	if (c->executor.kind == PROTO_EXECUTOR_SLURM) {
		if (c->worker_command_len) {
			snprintf(err, errlen, "worker_command and executor (slurm) both say how to start "
			         "workers: keep one (executor builds the srun command itself)");
			return 1;
		}
		if (c->memory_mb) {
			snprintf(err, errlen, "memory_mb measures a worker on this machine; a Slurm "
			         "worker runs on its node: use executor.mem_per_worker, which Slurm "
			         "enforces");
			return 1;
		}
		argv[k++] = "srun";
		argv[k++] = "--quiet";
		argv[k++] = "--nodes=1";
		argv[k++] = "--ntasks=1";
		snprintf(buf[b], 300, "--cpus-per-task=%d", c->executor.cpus_per_worker);
		argv[k++] = buf[b++];
		snprintf(buf[b], 300, "--job-name=graft-%d-w{slot}", (int)getpid());
		argv[k++] = buf[b++];
		if (c->executor.partition[0]) {
			snprintf(buf[b], 300, "--partition=%s", c->executor.partition);
			argv[k++] = buf[b++];
		}
		if (c->executor.mem_per_worker[0]) {
			snprintf(buf[b], 300, "--mem=%s", c->executor.mem_per_worker);
			argv[k++] = buf[b++];
		}
		if (c->executor.time[0]) {
			snprintf(buf[b], 300, "--time=%s", c->executor.time);
			argv[k++] = buf[b++];
		}
		for (int i = 0; i < c->executor.extra_args_len; i++)
			argv[k++] = (char *)c->executor.extra_args[i];
	}
	for (int i = 0; i < c->worker_command_len; i++)
		argv[k++] = (char *)c->worker_command[i];
	argv[k++] = (char *)exe;
	argv[k++] = "worker";
	argv[k] = NULL;
	return 0;
}

int main(int argc, char **argv)
{
	struct daemon d = { 0 };
	const char *config = NULL;
	char err[GRAFT_ERRLEN], db[PROTO_PATH_MAX + 16], exe[4096];
	char *wargv[PROTO_MAX_ARGV + 8], wbuf[8][300];

	if (argc > 1 && !strcmp(argv[1], "worker"))
		return rt_worker_main(argc - 1, argv + 1);
	umask(077); /* the store, weights and socket are the owner's alone */
	proto_daemon_config_defaults(&d.cfg);
	int a = parse_args(argc, argv, &d.cfg, &config);
	if (a)
		return a > 0 ? 0 : 2;
	if (!d.cfg.data_dir[0])
		rt_data_dir_default(d.cfg.data_dir, sizeof(d.cfg.data_dir));
	if (!d.cfg.socket[0])
		snprintf(d.cfg.socket, sizeof(d.cfg.socket), "%.1000s/graftd.sock", d.cfg.data_dir);
	if (!d.cfg.workers)
		d.cfg.workers = (int)sysconf(_SC_NPROCESSORS_ONLN);
	gd_log_set_level(gd_log_level_parse(d.cfg.log_level));
	if (d.cfg.log_file[0] && gd_log_open(d.cfg.log_file)) {
		fprintf(stderr, "graftd: cannot open the log file %s: %s\n", d.cfg.log_file,
		        strerror(errno));
		return 1;
	}
	if (search_make_dirs(d.cfg.data_dir, err, sizeof(err))) {
		gd_log_msg(GD_LOG_ERROR, "the data directory: %s", err);
		return 1;
	}
	snprintf(db, sizeof(db), "%s/graft.db", d.cfg.data_dir);
	if (store_open(db, &d.st, err, sizeof(err))) {
		gd_log_msg(GD_LOG_ERROR, "%s", err);
		return 1;
	}
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	if (worker_argv(&d.cfg, exe, wargv, wbuf, err, sizeof(err))) {
		gd_log_msg(GD_LOG_ERROR, "%s", err);
		return 1;
	}
	int slurm = d.cfg.executor.kind == PROTO_EXECUTOR_SLURM;
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "graft-%d-w", (int)getpid());
	if (slurm && search_make_dirs(d.cfg.executor.shared_dir, err, sizeof(err))) {
		gd_log_msg(GD_LOG_ERROR, "executor.shared_dir: %s", err);
		return 1;
	}

	signal(SIGPIPE, SIG_IGN);
	d.loop = uv_default_loop();
	char data_dir[PROTO_PATH_MAX];
	snprintf(data_dir, sizeof(data_dir), "%s", d.cfg.data_dir);
	gd_sched_opts so = { .db_path = db, .data_dir = data_dir, .workers = d.cfg.workers,
	                  .worker_argv = wargv, .heartbeat_s = d.cfg.heartbeat_s,
	                  .memory_mb = d.cfg.memory_mb,
	                  .fetch_max_bytes = (long long)d.cfg.fetch_max_mb * 1024 * 1024,
	                  .fetch_timeout_s = d.cfg.fetch_timeout_s,
	                  .slurm_prefix = slurm ? prefix : NULL,
	                  .shared_dir = slurm ? d.cfg.executor.shared_dir : NULL,
	                  .threads = slurm ? d.cfg.executor.cpus_per_worker : 0,
	                  /* A worker in Slurm's queue is not hung: it may wait
	                   * as long as the jobs would. */
	                  .start_s = slurm ? d.cfg.executor.pending_timeout_s + d.cfg.heartbeat_s
	                                   : 0,
	                  .pending_timeout_s = d.cfg.executor.pending_timeout_s };
	d.sched = gd_sched_new(d.loop, d.st, &so);
	if (!d.sched) {
		gd_log_msg(GD_LOG_ERROR, "cannot start the workers");
		return 1;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	d.api = (gd_api){ .sched = d.sched, .st = d.st, .started = (double)ts.tv_sec,
	               .version = GRAFT_VERSION };
	d.server = gd_server_new(d.loop, d.cfg.socket, 0600, gd_api_handle, &d.api, err, sizeof(err));
	if (!d.server) {
		gd_log_msg(GD_LOG_ERROR, "cannot listen: %s", err);
		return 1;
	}
	d.api.server = d.server;
	/* The token: the flag, the config, else the environment (which, unlike a
	 * flag, other users' ps does not show). */
	if (!d.cfg.http_token[0] && getenv("GRAFT_HTTP_TOKEN"))
		snprintf(d.cfg.http_token, sizeof(d.cfg.http_token), "%s", getenv("GRAFT_HTTP_TOKEN"));
	if (d.cfg.http[0]) {
		if (gd_server_listen_tcp(d.server, d.cfg.http, d.cfg.http_token, err, sizeof(err))) {
			gd_log_msg(GD_LOG_ERROR, "--http: %s", err);
			return 1;
		}
		gd_log_msg(GD_LOG_INFO, "HTTP on %s, port %d%s", d.cfg.http,
		           gd_server_tcp_port(d.server), d.cfg.http_token[0] ? ", token required" : "");
	}
	uv_signal_init(d.loop, &d.sigterm);
	uv_signal_init(d.loop, &d.sigint);
	uv_signal_init(d.loop, &d.sighup);
	d.sigterm.data = d.sigint.data = d.sighup.data = &d;
	uv_signal_start(&d.sigterm, on_signal, SIGTERM);
	uv_signal_start(&d.sigint, on_signal, SIGINT);
	uv_signal_start(&d.sighup, on_signal, SIGHUP);
	gd_log_msg(GD_LOG_INFO, "graftd %s: listening on %s, data in %s, %d workers", GRAFT_VERSION,
	           d.cfg.socket, d.cfg.data_dir, d.cfg.workers);
	gd_sched_resume_all(d.sched);
	uv_run(d.loop, UV_RUN_DEFAULT);
	unlink(d.cfg.socket);
	/* Jobs still opening on the thread pool are abandoned: they resume from
	 * the store on the next start. */
	gd_sched_free(d.sched);
	store_close(d.st);
	return 0;
}
