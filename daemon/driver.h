/*
 * driver.h - jobs run on a pool of workers: the one driver that both
 * `graft search` (one job) and graftd (many, shared fairly) use.  It asks
 * jobs for tasks when a worker is idle, sends them, records what comes back
 * (a result, an error, a lost worker) through the jobrun, and on stopping
 * gives every unfinished task back so that it runs again after a restart.
 * What the program makes of it (printing, metrics, job states) it learns
 * from events.
 */
#ifndef GRAFT_DRIVER_H
#define GRAFT_DRIVER_H

#include <uv.h>

#include "daemon/jobrun.h"
#include "daemon/pool.h"

typedef struct rt_driver rt_driver;

enum rt_event_kind {
	RT_SENT,       /* candidate seq went to a worker */
	RT_CACHED,     /* hits candidates were answered from the store */
	RT_RESULT,     /* candidate seq's result is recorded and told */
	RT_RETRY,      /* candidate seq failed (message) and will run again */
	RT_FAILED,     /* candidate seq failed (message) for good and is told */
	RT_NOTHING,    /* the job has no task to give now (done, or all in flight) */
	RT_JOB_ERROR,  /* the job cannot go on: message says why (the store failed,
	                  the strategy cannot propose); the program fails it */
	RT_WORKER_PROBLEM, /* no job: a worker could not be started (message) */
};

typedef struct rt_event {
	enum rt_event_kind kind;
	int seq;                      /* -1 when not about one candidate */
	int hits;                     /* RT_CACHED */
	const proto_result *result;   /* RT_RESULT */
	const char *message;          /* RT_RETRY, RT_FAILED, RT_JOB_ERROR */
	int worker_pid;               /* 0 when no worker is involved */
} rt_event;

typedef struct rt_driver_cb {
	/* The jobs that may be given a worker now, in the order to try them
	 * (at most max).  Required. */
	int (*jobs)(void *ctx, jobrun **out, int max);
	/* Something happened to jr (may be NULL).  The callback may change the
	 * job's state; it must not free a jobrun with tasks in flight. */
	void (*event)(void *ctx, jobrun *jr, const rt_event *e);
} rt_driver_cb;

/* Starts po->workers workers on loop.  NULL when they cannot be started. */
rt_driver *rt_driver_new(uv_loop_t *loop, const pool_opts *po, const rt_driver_cb *cb,
                         void *ctx);

/* Gives idle workers tasks (call it when a job becomes runnable; the driver
 * calls it itself whenever a worker becomes idle). */
void rt_driver_dispatch(rt_driver *d);

/* Stops: no new tasks; running ones get grace_s to finish (their results
 * are recorded), then their workers are killed and the tasks given back
 * unrun.  done fires once every worker has exited; then rt_driver_free. */
void rt_driver_stop(rt_driver *d, double grace_s, void (*done)(void *ctx), void *ctx);
void rt_driver_free(rt_driver *d);

int rt_driver_busy(const rt_driver *d);       /* workers holding a task */
int rt_driver_workers(const rt_driver *d);
int rt_driver_restarts(const rt_driver *d);   /* workers started to replace lost ones */
int rt_driver_stopping(const rt_driver *d);

#endif
