/*
 * graftd.h - graftd itself, the one public header of daemon/graftd/: its
 * HTTP server on a Unix socket, the API routed onto the scheduler, the
 * scheduler of jobs over one shared driver, and its log.
 *
 * Names: gd_ for everything here.
 */
#ifndef GRAFT_GRAFTD_H
#define GRAFT_GRAFTD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proto/http.h"
#include "store/store.h"

/* ---- the log --------------------------------------------------------------- */

/* Graftd's log: one line per event, with a timestamp and a level, to
 * stderr or to a file that SIGHUP reopens (for logrotate).
 */

enum gd_log_level { GD_LOG_DEBUG, GD_LOG_INFO, GD_LOG_WARN, GD_LOG_ERROR };

/* Parses "debug", "info", "warn", "error"; GRAFT_EINVAL otherwise. */
int gd_log_level_parse(const char *name);
void gd_log_set_level(int level);
/* Logs to path (appending) instead of stderr; NULL: stderr.  0 or GRAFT_EIO. */
int gd_log_open(const char *path);
/* Reopens the file given to gd_log_open (after a rotation). */
int gd_log_reopen(void);

void gd_log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- the HTTP server ------------------------------------------------------- */

/* Graftd's HTTP/1.1 server on a Unix socket (libuv).  Requests
 * are read with proto/http.h's limits; each connection handles one request
 * at a time (pipelined ones wait their turn), may keep alive for up to
 * GD_SERVER_MAX_REQUESTS requests, and is closed when idle or too slow.  A
 * handler may answer later (gd_server_reply from any loop callback); a client
 * that has gone by then is simply not written to.
 */

#define GD_SERVER_MAX_REQUESTS 1000     /* per connection */
#define GD_SERVER_IDLE_MS 30000         /* a connection silent this long is closed */
#define GD_SERVER_REQUEST_MS 10000      /* a request must arrive whole within this */
#define GD_SERVER_MAX_CONNS 512

typedef struct gd_server gd_server;
typedef struct gd_conn gd_conn;

typedef void (*gd_server_handler)(gd_conn *c, const proto_http_req *req, void *ctx);

/* Listens on path (an existing socket file is replaced), with the socket
 * file's mode set to mode (0600: only the owner may connect). */
gd_server *gd_server_new(uv_loop_t *loop, const char *path, int mode, gd_server_handler h,
                         void *ctx, char *err, size_t errlen);

/* Answers the request c is handling. */
void gd_server_reply(gd_conn *c, int status, const char *content_type, const char *body,
                     size_t len);
/* Answers with the contents of the file at path, streamed from the disk
 * off the loop, one chunk in memory at a time; a file that cannot be opened
 * is a 404 JSON error. */
void gd_server_reply_file(gd_conn *c, int status, const char *content_type, const char *path);
/* The same with a JSON error body {"error": {...}}; field may be NULL,
 * line/column 0 when not known. */
void gd_server_reply_error(gd_conn *c, int status, const char *code, const char *message,
                           const char *field, int line, int column);

/* Request latency, from a request's last byte to its answer. */
#define GD_SERVER_NBUCKETS 12
extern const double gd_server_buckets[GD_SERVER_NBUCKETS]; /* upper bounds, seconds */
typedef struct gd_server_stats {
	long requests, errors;                  /* errors: 4xx and 5xx answers */
	long bucket[GD_SERVER_NBUCKETS];           /* cumulative, as Prometheus wants */
	double latency_sum;
	int connections;
} gd_server_stats;
void gd_server_get_stats(const gd_server *s, gd_server_stats *out);

/* Also listens on TCP at where ("HOST:PORT", IPv4 or [IPv6]; port 0: any
 * free one).  With a token, every request on that port must carry it
 * (Authorization: Bearer TOKEN, or ?token=TOKEN) or gets 401 — but the
 * dashboard's own files (GET / and /dashboard/...), which hold no data and
 * which a browser fetches without it; an address
 * other than loopback without a token is refused (GRAFT_EINVAL with a
 * sentence): the API submits and cancels jobs.  The socket stays as it
 * was, token-free (its file mode guards it). */
#define GD_SERVER_TOKEN_MAX 128
int gd_server_listen_tcp(gd_server *s, const char *where, const char *token, char *err,
                         size_t errlen);
/* The TCP port listened on, or 0; its host as given (NULL without one);
 * whether it wants a token. */
int gd_server_tcp_port(const gd_server *s);
const char *gd_server_tcp_host(const gd_server *s);
int gd_server_tcp_token(const gd_server *s);

/* The dashboard's files (daemon/graftd/dashboard/, embedded at build time by
 * embed.sh), ended by a zeroed entry. */
typedef struct gd_asset {
	const char *name, *type;
	const unsigned char *data;
	size_t len;
} gd_asset;
extern const gd_asset gd_assets[];

/* Stops listening and closes every connection; done fires when all are closed. */
void gd_server_close(gd_server *s, void (*done)(void *ctx), void *ctx);

/* ---- the scheduler --------------------------------------------------------- */

/* Graftd's scheduler: the jobs it knows, their states, and one
 * pool of workers shared fairly among the running ones.  Every state change
 * is committed to the store before the call that asked for it returns (or
 * its callback fires), so the API acknowledges only what is durable.
 *
 * Opening a job (loading its data, pretraining or finding its graft,
 * replaying its search) can take minutes; it runs on libuv's thread rt_pool
 * with its own connection to the store, and the loop keeps serving.
 */

typedef struct gd_sched gd_sched;

typedef struct gd_sched_opts {
	const char *db_path;       /* the store's file (threads open their own) */
	const char *data_dir;      /* weights/ and grafts/ live here */
	int workers;
	char **worker_argv;        /* the worker command, NULL-terminated */
	double heartbeat_s;
	long memory_mb;
	long long fetch_max_bytes;   /* datasets by URL: size and time limits */
	long fetch_timeout_s;
	/* Workers on Slurm (slurm_prefix: their job names, prefix<slot>; NULL:
	 * local workers): */
	const char *slurm_prefix;
	const char *shared_dir;      /* weights, grafts and datasets live here, not
	                                in data_dir; jobs' data must be in it */
	int threads;                 /* per worker, over the specs' (0: theirs) */
	double start_s;              /* a worker may take this long to be ready */
	double pending_timeout_s;    /* no worker ready this long: running jobs fail */
} gd_sched_opts;

gd_sched *gd_sched_new(uv_loop_t *loop, store *st, const gd_sched_opts *o);

/* Opens every queued or running job of the store (after a restart they go
 * on where they stopped).  Paused jobs stay paused. */
void gd_sched_resume_all(gd_sched *s);

/* An API-level outcome: HTTP status, and for errors a code, message and,
 * for spec errors, the field, line and column. */
typedef struct gd_sched_answer {
	int status;
	int64_t id;
	char code[32], message[600], field[128];
	int line, column;
} gd_sched_answer;

/* Validates a job spec (YAML or JSON) and its dataset (the files must exist
 * and parse, on the thread pool), then records the job as queued and starts
 * opening it.  done is called on the loop with the answer (201 and the id,
 * or 4xx). */
void gd_sched_submit(gd_sched *s, const char *text, size_t len,
                     void (*done)(const gd_sched_answer *a, void *ctx), void *ctx);

/* "pause", "resume" or "cancel" job id: 200, 404 (no such job) or 409 (not
 * possible in its state). */
void gd_sched_control(gd_sched *s, int64_t id, const char *action, gd_sched_answer *a);

/* The job as the API shows it (state, progress, best, cost, ETA), or NULL
 * when there is no such job.  Answered from memory: the figures are
 * rebuilt when the job changes, not per request. */
json_t *gd_sched_job_json(gd_sched *s, int64_t id);
/* Every job, oldest first. */
json_t *gd_sched_jobs_json(gd_sched *s);
/* How many jobs are in each state. */
void gd_sched_job_counts(gd_sched *s, int counts[STORE_JOB_NSTATES]);
/* Workers busy and idle, jobs queued. */
json_t *gd_sched_health_json(gd_sched *s);
/* Every worker and what it does now: its pid, and for a busy one the job,
 * candidate, rung and kind of its task, its last progress (step, steps,
 * loss) and since when it has it.  From memory. */
json_t *gd_sched_workers_json(gd_sched *s);

typedef struct gd_sched_metrics {
	long evaluated, cache_hits, failures, worker_restarts;
	double images_per_s;       /* of the last result */
	int workers_busy, workers;
	int workers_starting, workers_pending; /* not ready yet; pending in Slurm's queue */
} gd_sched_metrics;
void gd_sched_get_metrics(gd_sched *s, gd_sched_metrics *m);

/* Drains: no new tasks; running candidates get grace_s to finish, then are
 * killed and recorded as interrupted (they re-run after a restart).  Job
 * states stay as they are in the store.  done fires once every worker has
 * exited and nothing more will be written. */
void gd_sched_stop(gd_sched *s, double grace_s, void (*done)(void *ctx), void *ctx);
/* Frees s after gd_sched_stop's done; a no-op while a job is still being
 * opened on the thread pool (the process is exiting then anyway). */
void gd_sched_free(gd_sched *s);

/* ---- the API --------------------------------------------------------------- */

/* Graftd's HTTP API (DESIGN.md): routes a request to the scheduler
 * or the store and answers it in JSON (YAML for an export, safetensors for
 * weights, Prometheus text for metrics).
 */

typedef struct gd_api {
	gd_sched *sched;
	store *st;
	gd_server *server;        /* for its statistics */
	double started;        /* unix time */
	const char *version;
} gd_api;

/* A job's final stage as the API shows it: {"trainings": [...], "winner":
 * the winning training or null}, or null when the job has none (yet). */
json_t *gd_finals_json(store *st, int64_t job);

/* The gd_server_handler: ctx is an api. */
void gd_api_handle(gd_conn *c, const proto_http_req *req, void *ctx);

#endif
