/*
 * pool.h - a pool of worker processes on a libuv loop.  Each worker is a
 * command (by default `graft worker`; any prefix such as `srun ...` works)
 * speaking the worker protocol of proto.h over its stdin and stdout, in its own
 * process group.  The pool starts them, hands out tasks, turns their lines
 * into callbacks, and kills (the whole group) and replaces a worker that
 * crashes, stops heart-beating, overruns its task's time limit or grows
 * past its memory limit; the task it held is reported lost with the reason.
 */
#ifndef GRAFT_POOL_H
#define GRAFT_POOL_H

#include <uv.h>

#include "proto/proto.h"

typedef struct pool pool;

typedef struct pool_cb {
	/* Worker w is ready for a task (after starting or finishing one). */
	void (*idle)(pool *p, int w, void *ctx);
	/* A decoded line from busy worker w (progress, loading, result,
	 * error); the message is borrowed for the call.  After a result or
	 * error line the caller calls pool_release.  A line that does not
	 * decode never gets here: the worker is killed and its task reported
	 * lost with the reason. */
	void (*line)(pool *p, int w, const proto_wmsg *msg, void *ctx);
	/* Busy worker w was lost with its task; reason is a sentence. */
	void (*lost)(pool *p, int w, const char *reason, void *ctx);
	/* A worker could not be started (it is tried again each second);
	 * message is a sentence for the log.  May be NULL. */
	void (*problem)(pool *p, const char *message, void *ctx);
} pool_cb;

typedef struct pool_opts {
	int workers;
	char **argv;            /* the worker command, NULL-terminated */
	double heartbeat_s;     /* a busy worker silent this long is killed */
	long memory_mb;         /* resident memory limit per worker (0: none) */
} pool_opts;

pool *pool_new(uv_loop_t *loop, const pool_opts *o, const pool_cb *cb, void *ctx);

/* Sends a task line (proto_task_encode's, borrowed) to idle worker w, which
 * is busy until pool_release; the task is killed after time_limit_s.
 * Returns 0, GRAFT_EINVAL (w not idle) or GRAFT_ENOMEM. */
int pool_send(pool *p, int w, const char *line, double time_limit_s);

/* Worker w finished its task and is idle again (idle fires from the loop). */
void pool_release(pool *p, int w);

/* Stops every worker (their stdin is closed; a worker still running after
 * grace_s is killed) and frees the pool once all have exited and every
 * handle is closed; done (may be NULL) is called then. */
void pool_stop(pool *p, double grace_s, void (*done)(void *ctx));

/* An idle worker ready for pool_send, or -1.  The pool keeps track: callers
 * need no list of their own (a worker that died idle is simply not idle). */
int pool_idle_worker(const pool *p);

/* Workers started to replace lost ones, since the pool began. */
int pool_restarts(const pool *p);
/* Whether worker w holds a task; the pid of worker w (0 if none). */
int pool_busy(const pool *p, int w);
int pool_pid(const pool *p, int w);
int pool_size(const pool *p);

#endif
