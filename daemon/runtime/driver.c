/*
 * driver.c - jobs run on a pool of workers (see driver.h): the one place
 * that hands tasks to workers, turns their answers into results and
 * failures, and gives back the tasks of lost workers.
 *
 * Every task a worker holds is in exactly one owner slot, and leaves it
 * exactly once: by a result, a failure (an error line or a lost worker) or,
 * while stopping, an abandon.  rt_jobrun_task.live guards the jobrun's side of
 * that, so no path can give a task back twice.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/runtime/pool.h"
#include "daemon/runtime/runtime.h"

#define MAX_JOBS 256    /* tried per idle worker */
#define MAX_CURVE 512   /* points of a loss curve kept (then every other one) */

struct point {
	int step;
	double loss;
};

struct owner {
	rt_jobrun *jr;
	rt_jobrun_task task;   /* task.live while a worker holds it */
	double since;          /* when it was sent */
	int step, steps;       /* its last progress line */
	double loss;
	struct point *curve;   /* the task's progress lines so far */
	int ncurve, every;     /* points kept; one of every `every` lines */
	int seen;              /* progress lines seen */
};

struct rt_driver {
	rt_pool *pool;
	rt_driver_cb cb;
	void *ctx;
	struct owner *owner;
	int workers, stopping;
	void (*stop_done)(void *ctx);
	void *stop_ctx;
};

/* t: the task the event is about (its fields, not its liveness), or NULL. */
static void event(rt_driver *d, rt_jobrun *jr, enum rt_event_kind kind, const rt_jobrun_task *t,
                  const char *message, int hits, const proto_result *r, int pid)
{
	rt_event e = { .kind = kind, .seq = t ? t->seq : -1, .rung = t ? t->rung : 0,
	               .task = t ? t->kind : RT_TASK_EVAL, .message = message, .hits = hits,
	               .result = r, .worker_pid = pid };
	if (d->cb.event)
		d->cb.event(d->ctx, jr, &e);
}

/* jr cannot go on: rc and err say why. */
static void job_error(rt_driver *d, rt_jobrun *jr, int seq, int rc, const char *err, int pid)
{
	rt_event e = { .kind = RT_JOB_ERROR, .seq = seq, .code = rc,
	               .message = err && err[0] ? err : graft_strerror(rc), .worker_pid = pid };
	if (d->cb.event)
		d->cb.event(d->ctx, jr, &e);
}

static double unix_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Keeps a progress line's point; a long training keeps every other one
 * of its points each time the curve is full, so it stays MAX_CURVE long
 * and still spans the whole run. */
static void add_point(struct owner *o, int step, double loss)
{
	if (o->seen++ % o->every)
		return;
	if (o->ncurve == MAX_CURVE) {
		for (int i = 0; i < MAX_CURVE / 2; i++)
			o->curve[i] = o->curve[2 * i + 1];
		o->ncurve = MAX_CURVE / 2;
		o->every *= 2;
	}
	o->curve[o->ncurve++] = (struct point){ step, loss };
}

/* The curve as JSON, [[step, loss], ...] (a loss that is not finite is
 * null); NULL when it has no point or memory is short. */
static char *curve_json(const struct owner *o)
{
	if (!o->ncurve)
		return NULL;
	size_t cap = (size_t)o->ncurve * 40 + 3, len = 0;
	char *s = malloc(cap);
	if (!s)
		return NULL;
	s[len++] = '[';
	for (int i = 0; i < o->ncurve; i++) {
		double l = o->curve[i].loss;
		len += (size_t)(isfinite(l) ? snprintf(s + len, cap - len, "%s[%d,%.6g]", i ? "," : "",
		                                        o->curve[i].step, l)
		                            : snprintf(s + len, cap - len, "%s[%d,null]", i ? "," : "",
		                                       o->curve[i].step));
	}
	snprintf(s + len, cap - len, "]");
	return s;
}

/* Hands tasks to idle workers while both exist: each idle worker goes to
 * the first job, in the order the callback gives, that has a task now. */
void rt_driver_dispatch(rt_driver *d)
{
	char err[GRAFT_ERRLEN];
	rt_jobrun *jobs[MAX_JOBS];
	int w;

	while (!d->stopping && (w = rt_pool_idle_worker(d->pool)) >= 0) {
		int n = d->cb.jobs(d->ctx, jobs, MAX_JOBS), sent = 0;
		for (int i = 0; i < n && !sent; i++) {
			rt_jobrun_task t;
			int hits = 0;
			err[0] = '\0';
			int rc = rt_jobrun_next(jobs[i], &t, &hits, err, sizeof(err));
			if (hits)
				event(d, jobs[i], RT_CACHED, NULL, NULL, hits, NULL, 0);
			if (rc < 0) {
				job_error(d, jobs[i], -1, rc, err, 0);
				continue;
			}
			if (rc == 0) {
				event(d, jobs[i], RT_NOTHING, NULL, NULL, 0, NULL, 0);
				continue;
			}
			char *line = proto_task_encode(&t.task);
			if (!line || rt_pool_send(d->pool, w, line, t.time_limit)) {
				/* Not sent: it runs again with the next worker or start. */
				free(line);
				rt_jobrun_abandon(jobs[i], &t);
				return;
			}
			free(line);
			struct point *curve = d->owner[w].curve;
			d->owner[w] = (struct owner){ .jr = jobs[i], .task = t, .since = unix_now(),
			                              .loss = NAN, .curve = curve, .every = 1 };
			event(d, jobs[i], RT_SENT, &t, NULL, 0, NULL, rt_pool_pid(d->pool, w));
			sent = 1;
		}
		if (!sent)
			return;
	}
}

static void on_idle(rt_pool *p, int w, void *ctx)
{
	(void)p;
	(void)w;
	rt_driver_dispatch(ctx);
}

/* A worker's error or a lost worker: the candidate is retried or told as
 * failed; a store that cannot record it fails the job. */
static void fail_task(rt_driver *d, struct owner *o, const char *reason, int pid)
{
	char err[GRAFT_ERRLEN] = "", worker[32] = "";
	rt_jobrun *jr = o->jr;
	int seq = o->task.seq;

	if (pid)
		snprintf(worker, sizeof(worker), "pid %d", pid);
	int rc = rt_jobrun_failure(jr, &o->task, reason, worker, err, sizeof(err));
	if (rc < 0)
		job_error(d, jr, seq, rc, err, pid);
	else
		event(d, jr, rc ? RT_RETRY : RT_FAILED, &o->task, reason, 0, NULL, pid);
}

static void on_line(rt_pool *p, int w, const proto_wmsg *m, void *ctx)
{
	rt_driver *d = ctx;
	struct owner *o = &d->owner[w];
	char err[GRAFT_ERRLEN] = "";
	int pid = rt_pool_pid(p, w);

	/* Loading lines are heartbeats (the pool saw them); progress lines are
	 * kept as the task's loss curve; a line about another task than the one
	 * in hand is not believed. */
	if (!o->task.live || m->id != o->task.eval_id)
		return;
	if (m->type == PROTO_WMSG_PROGRESS) {
		o->step = m->step;
		o->steps = m->steps;
		o->loss = m->loss;
		if (!o->curve)
			o->curve = malloc(sizeof(*o->curve) * MAX_CURVE);
		if (o->curve)
			add_point(o, m->step, m->loss);
		return;
	}
	if (m->type != PROTO_WMSG_RESULT && m->type != PROTO_WMSG_ERROR)
		return;
	rt_jobrun *jr = o->jr;
	int seq = o->task.seq;
	if (m->type == PROTO_WMSG_RESULT) {
		char worker[32];
		snprintf(worker, sizeof(worker), "pid %d", pid);
		char *curve = curve_json(o);
		o->task.curve = curve;
		int rc = rt_jobrun_result(jr, &o->task, &m->result, worker, err, sizeof(err));
		o->task.curve = NULL;
		free(curve);
		if (rc)
			job_error(d, jr, seq, rc, err, pid);
		else
			event(d, jr, RT_RESULT, &o->task, NULL, 0, &m->result, pid);
	} else if (m->io) {
		/* The worker's files failed (the disk is full, the weights directory
		 * is read-only): not the candidate's fault, and every candidate
		 * after it would fail the same way.  The task is given back, to
		 * run again once the job resumes, and the job is stopped. */
		rt_jobrun_abandon(jr, &o->task);
		job_error(d, jr, seq, GRAFT_EIO, m->message, pid);
	} else {
		fail_task(d, o, m->message, pid);
	}
	rt_pool_release(p, w);
}

static void on_lost(rt_pool *p, int w, const char *reason, void *ctx)
{
	rt_driver *d = ctx;
	struct owner *o = &d->owner[w];

	if (!o->task.live)
		return;
	if (d->stopping) {
		/* Stopping: the task is given back unrun; it runs after a restart. */
		rt_jobrun_abandon(o->jr, &o->task);
		return;
	}
	fail_task(d, o, reason, rt_pool_pid(p, w));
	rt_driver_dispatch(d);
}

static void on_problem(rt_pool *p, const char *message, void *ctx)
{
	(void)p;
	event(ctx, NULL, RT_WORKER_PROBLEM, NULL, message, 0, NULL, 0);
}

rt_driver *rt_driver_new(uv_loop_t *loop, const rt_pool_opts *po, const rt_driver_cb *cb,
                         void *ctx)
{
	rt_driver *d = calloc(1, sizeof(*d));
	if (!d || !cb->jobs)
		goto fail;
	d->cb = *cb;
	d->ctx = ctx;
	d->workers = po->workers;
	d->owner = calloc((size_t)(po->workers > 0 ? po->workers : 1), sizeof(*d->owner));
	if (!d->owner)
		goto fail;
	rt_pool_cb pc = { .idle = on_idle, .line = on_line, .lost = on_lost, .problem = on_problem };
	d->pool = rt_pool_new(loop, po, &pc, d);
	if (!d->pool)
		goto fail;
	return d;
fail:
	if (d)
		free(d->owner);
	free(d);
	return NULL;
}

static void pool_gone(void *ctx)
{
	rt_driver *d = ctx;
	/* Every worker has exited: a task still held (its worker's exit came
	 * after the pool stopped listening) is given back now. */
	for (int w = 0; w < d->workers; w++)
		if (d->owner[w].task.live)
			rt_jobrun_abandon(d->owner[w].jr, &d->owner[w].task);
	d->pool = NULL;
	if (d->stop_done)
		d->stop_done(d->stop_ctx);
}

void rt_driver_stop(rt_driver *d, double grace_s, void (*done)(void *ctx), void *ctx)
{
	if (d->stopping)
		return;
	d->stopping = 1;
	d->stop_done = done;
	d->stop_ctx = ctx;
	rt_pool_stop(d->pool, grace_s, pool_gone);
}

void rt_driver_free(rt_driver *d)
{
	if (!d)
		return;
	for (int w = 0; d->owner && w < d->workers; w++)
		free(d->owner[w].curve);
	free(d->owner);
	free(d);
}

int rt_driver_workers(const rt_driver *d)
{
	return d->workers;
}

int rt_driver_worker(const rt_driver *d, int w, rt_worker_info *out)
{
	if (w < 0 || w >= d->workers || !d->pool)
		return GRAFT_EINVAL;
	const struct owner *o = &d->owner[w];
	double for_s = 0;
	*out = (rt_worker_info){ .pid = rt_pool_pid(d->pool, w), .loss = NAN };
	if (rt_pool_starting(d->pool, w, &for_s)) {
		out->starting = 1;
		out->started_at = unix_now() - for_s;
	}
	if (!rt_pool_busy(d->pool, w) || !o->task.live)
		return 0;
	*out = (rt_worker_info){ .pid = out->pid, .busy = 1, .jr = o->jr, .task = o->task.kind,
	                         .seq = o->task.seq, .rung = o->task.rung, .step = o->step,
	                         .steps = o->steps, .loss = o->loss, .since = o->since };
	return 0;
}

int rt_driver_busy(const rt_driver *d)
{
	int busy = 0;
	for (int w = 0; d->pool && w < d->workers; w++)
		busy += rt_pool_busy(d->pool, w);
	return busy;
}

int rt_driver_restarts(const rt_driver *d)
{
	return d->pool ? rt_pool_restarts(d->pool) : 0;
}
