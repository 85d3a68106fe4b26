/*
 * graftd_run.h - what end-to-end tests of graftd share: starting the real
 * bin/graftd on a data directory, stopping it, killing every daemon a test
 * started (so a failing test leaves none behind), and raw HTTP over its
 * socket as a client writes it.
 */
#ifndef GRAFT_TESTS_GRAFTD_RUN_H
#define GRAFT_TESTS_GRAFTD_RUN_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

#define GRAFTD_BIN "bin/graftd"

double test_now(void);
void test_nap(double seconds);

/* DIR/graftd.sock, in a static buffer (one thread at a time). */
const char *graftd_socket(const char *dir);
/* A connected socket to graftd on dir, or -1; safe from many threads. */
int graftd_connect(const char *dir);

/* Starts graftd on dir (created) with workers, logging to dir/graftd.log;
 * config (may be NULL) is the text of its config file.  Returns once it
 * listens; asserts otherwise. */
pid_t graftd_start_with(const char *dir, int workers, const char *config);
/* The same without waiting for it to listen, for a test that must watch
 * graftd from its first instant; graftd_stop and graftd_kill_all know it. */
pid_t graftd_spawn(const char *dir, int workers, const char *config);
pid_t graftd_start(const char *dir, int workers);
/* The TCP port graftd on dir logged it serves ("HTTP on ..., port N"),
 * waiting for the line; fails the test without one. */
int graftd_http_port(const char *dir);
/* Sends sig and waits; returns the wait status. */
int graftd_stop(pid_t pid, int sig);
/* SIGKILLs every daemon started and not stopped, and their workers. */
void graftd_kill_all(void);
/* The pids of graftd pid's children (its workers), at most max. */
int graftd_workers(pid_t daemon, pid_t *out, int max);

typedef struct resp {
	int status;
	char *body;     /* malloc'd, NUL-terminated */
	size_t len;
} resp;

/* Raw bytes on a fresh connection; the answer read until the server closes. */
resp graftd_raw(const char *dir, const char *req, size_t len);
/* One request with Connection: close. */
resp graftd_http(const char *dir, const char *method, const char *path, const char *ctype,
                 const char *body);
/* GET path, asserting the status, parsed as JSON. */
json_t *graftd_get_json(const char *dir, const char *path, int expect);

/* ---- bin/graft, run as a user runs it ------------------------------------------ */

extern char **environ;

#define GRAFT_BIN "bin/graft"

typedef struct cmd_run {
	int code;                /* exit status */
	char out[16384], err[4096];
} cmd_run;

/* Runs bin/graft with the NULL-terminated arguments (stdin /dev/null,
 * output in the scratch directory) and waits; a crash fails the test.  The
 * result lives until the next call. */
cmd_run *graft_cmd(const char *arg, ...);

#endif
