/*
 * pool.h - (internal to daemon/runtime/) a pool of worker processes on a libuv loop.  Each worker is a
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

#include "daemon/runtime/runtime.h"

typedef struct rt_pool rt_pool;

typedef struct rt_pool_cb {
	/* Worker w is ready for a task (after starting or finishing one). */
	void (*idle)(rt_pool *p, int w, void *ctx);
	/* A decoded line from busy worker w (progress, loading, result,
	 * error); the message is borrowed for the call.  After a result or
	 * error line the caller calls rt_pool_release.  A line that does not
	 * decode never gets here: the worker is killed and its task reported
	 * lost with the reason. */
	void (*line)(rt_pool *p, int w, const proto_wmsg *msg, void *ctx);
	/* Busy worker w was lost with its task; reason is a sentence. */
	void (*lost)(rt_pool *p, int w, const char *reason, void *ctx);
	/* A worker could not be started (it is tried again each second);
	 * message is a sentence for the log.  May be NULL. */
	void (*problem)(rt_pool *p, const char *message, void *ctx);
} rt_pool_cb;


rt_pool *rt_pool_new(uv_loop_t *loop, const rt_pool_opts *o, const rt_pool_cb *cb, void *ctx);

/* Sends a task line (proto_task_encode's, borrowed) to idle worker w, which
 * is busy until rt_pool_release; the task is killed after time_limit_s.
 * Returns 0, GRAFT_EINVAL (w not idle) or GRAFT_ENOMEM. */
int rt_pool_send(rt_pool *p, int w, const char *line, double time_limit_s);

/* Worker w finished its task and is idle again (idle fires from the loop). */
void rt_pool_release(rt_pool *p, int w);

/* Stops every worker (their stdin is closed; a worker still running after
 * grace_s is killed) and frees the pool once all have exited and every
 * handle is closed; done (may be NULL) is called then. */
void rt_pool_stop(rt_pool *p, double grace_s, void (*done)(void *ctx));

/* An idle worker ready for rt_pool_send, or -1.  The pool keeps track: callers
 * need no list of their own (a worker that died idle is simply not idle). */
int rt_pool_idle_worker(const rt_pool *p);

/* Workers started to replace lost ones, since the pool began. */
int rt_pool_restarts(const rt_pool *p);
/* Whether worker w holds a task; the pid of worker w (0 if none). */
int rt_pool_busy(const rt_pool *p, int w);
int rt_pool_pid(const rt_pool *p, int w);
int rt_pool_size(const rt_pool *p);
/* Whether worker w's command runs but has not said it is ready, and for
 * how many seconds. */
int rt_pool_starting(const rt_pool *p, int w, double *for_s);

#endif
