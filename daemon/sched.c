/*
 * sched.c - graftd's scheduler (see sched.h).
 *
 * Fairness: an idle worker goes to the next running job after the one that
 * got the last task (round robin), so jobs share the pool task by task
 * whatever their sizes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/data.h"
#include "daemon/fetch.h"
#include "daemon/jobrun.h"
#include "daemon/log.h"
#include "daemon/pool.h"
#include "daemon/sched.h"
#include "proto/proto.h"

struct job {
	int64_t id;
	int state;
	jobrun *jr;
	int opening;
	double wall_sum;        /* of the results this run, for the ETA */
	int wall_n;
	struct job *next;
};

/* What worker w is doing. */
struct owner {
	struct job *job;
	jobrun_task task;
	int has;
};

struct sched {
	uv_loop_t *loop;
	store *st;
	sched_opts o;
	pool *pool;
	struct job *jobs;        /* newest first */
	struct owner *owner;
	int64_t last_job;        /* round robin: the job that got the last task */
	sched_metrics m;
	int stopping;
	int works;               /* opens and submissions on the thread pool */
	void (*stop_done)(void *);
	void *stop_ctx;
	char weights_dir[4200], grafts_dir[4200], datasets_dir[4200];
};

static void dispatch(sched *s);

static struct job *find_job(sched *s, int64_t id)
{
	for (struct job *j = s->jobs; j; j = j->next)
		if (j->id == id)
			return j;
	return NULL;
}

static struct job *add_job(sched *s, int64_t id, int state)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->id = id;
	j->state = state;
	j->next = s->jobs;
	s->jobs = j;
	return j;
}

static int set_state(sched *s, struct job *j, int state, const char *error)
{
	int rc = store_job_set_state(s->st, j->id, state, error);
	if (rc) {
		log_msg(LOG_ERROR, "job %lld: cannot record state %s: %s", (long long)j->id,
		        store_job_state_name(state), store_errmsg(s->st));
		return rc;
	}
	log_msg(LOG_INFO, "job %lld: %s%s%s", (long long)j->id, store_job_state_name(state),
	        error ? ": " : "", error ? error : "");
	j->state = state;
	return 0;
}

/* Frees a job's jobrun once nothing of it is in flight and it will not run. */
static void maybe_close(struct job *j)
{
	jobrun_stats st;
	if (!j->jr || j->state == STORE_JOB_RUNNING || j->state == STORE_JOB_PAUSED)
		return;
	jobrun_get_stats(j->jr, &st);
	if (st.in_flight == 0) {
		jobrun_free(j->jr);
		j->jr = NULL;
	}
}

static void check_complete(sched *s, struct job *j)
{
	if (j->jr && j->state == STORE_JOB_RUNNING && jobrun_complete(j->jr)) {
		set_state(s, j, STORE_JOB_DONE, NULL);
		maybe_close(j);
	}
}

/* ---- opening jobs on the thread pool --------------------------------------- */

struct open_req {
	uv_work_t w;
	sched *s;
	struct job *job;
	store *st;
	jobrun *jr;
	int rc;
	char err[GRAFT_ERRLEN];
};

static void open_work(uv_work_t *w)
{
	struct open_req *r = w->data;
	jobrun_dirs dirs = { .weights = r->s->weights_dir, .grafts = r->s->grafts_dir,
	                     .datasets = r->s->datasets_dir,
	                     .fetch_max_bytes = r->s->o.fetch_max_bytes,
	                     .fetch_timeout_s = r->s->o.fetch_timeout_s };
	r->rc = store_open(r->s->o.db_path, &r->st, r->err, sizeof(r->err));
	if (!r->rc)
		r->rc = jobrun_open(r->st, r->job->id, &dirs, NULL, &r->jr, r->err, sizeof(r->err));
}

static void open_done(uv_work_t *w, int status)
{
	struct open_req *r = w->data;
	sched *s = r->s;
	struct job *j = r->job;

	s->works--;
	j->opening = 0;
	if (r->jr)
		jobrun_set_store(r->jr, s->st);
	store_close(r->st);
	if (status == UV_ECANCELED || s->stopping) {
		jobrun_free(r->jr);
	} else if (r->rc) {
		if (j->state == STORE_JOB_QUEUED || j->state == STORE_JOB_RUNNING ||
		    j->state == STORE_JOB_PAUSED)
			set_state(s, j, STORE_JOB_FAILED, r->err);
	} else {
		j->jr = r->jr;
		jobrun_stats st;
		jobrun_get_stats(j->jr, &st);
		log_msg(LOG_INFO, "job %lld: open, %d of %d candidates evaluated", (long long)j->id,
		        st.told, st.total);
	}
	free(r);
	if (!s->stopping && j->jr) {
		if (j->state == STORE_JOB_QUEUED)
			set_state(s, j, STORE_JOB_RUNNING, NULL);
		check_complete(s, j);
		maybe_close(j);
		dispatch(s);
	}
}

static void start_open(sched *s, struct job *j)
{
	if (j->jr || j->opening || s->stopping)
		return;
	struct open_req *r = calloc(1, sizeof(*r));
	if (!r) {
		set_state(s, j, STORE_JOB_FAILED, "out of memory");
		return;
	}
	r->s = s;
	r->job = j;
	r->w.data = r;
	j->opening = 1;
	s->works++;
	log_msg(LOG_INFO, "job %lld: opening (data, graft, replay)", (long long)j->id);
	uv_queue_work(s->loop, &r->w, open_work, open_done);
}

/* ---- the pool -------------------------------------------------------------------- */

/* The next running job after the last one served, wrapping around. */
static struct job *next_job(sched *s, struct job *after)
{
	struct job *j = after ? after->next : s->jobs;
	return j ? j : s->jobs;
}

static void dispatch(sched *s)
{
	char err[GRAFT_ERRLEN];

	while (!s->stopping && pool_idle_worker(s->pool) >= 0) {
		struct job *start = find_job(s, s->last_job), *j = start;
		int sent = 0, njobs = 0;
		for (struct job *k = s->jobs; k; k = k->next)
			njobs++;
		for (int tried = 0; tried < njobs && !sent; tried++) {
			j = next_job(s, j);
			if (!j || j->state != STORE_JOB_RUNNING || !j->jr)
				continue;
			int w = pool_idle_worker(s->pool), hits = 0;
			jobrun_task t;
			int rc = jobrun_next(j->jr, &t, &hits, err, sizeof(err));
			s->m.cache_hits += hits;
			s->m.evaluated += hits;
			if (rc < 0) {
				set_state(s, j, STORE_JOB_FAILED, err);
				maybe_close(j);
				continue;
			}
			if (rc == 0) {
				check_complete(s, j);
				continue;
			}
			if (pool_send(s->pool, w, t.msg, jobrun_spec(j->jr)->time_limit)) {
				jobrun_abandon(j->jr, &t);
				return;
			}
			s->owner[w] = (struct owner){ .job = j, .task = t, .has = 1 };
			s->last_job = j->id;
			sent = 1;
		}
		if (!sent)
			return;
	}
}

static void on_idle(pool *p, int w, void *ctx)
{
	(void)p;
	(void)w;
	dispatch(ctx);
}

static void on_line(pool *p, int w, json_t *m, void *ctx)
{
	sched *s = ctx;
	struct owner *o = &s->owner[w];
	const char *type = json_string_value(json_object_get(m, "type"));
	char err[GRAFT_ERRLEN], worker[32];

	if (!o->has || (strcmp(type, "result") && strcmp(type, "error")))
		return; /* progress and loading lines are heartbeats */
	/* A line about another task than the one in hand is not believed. */
	if (json_integer_value(json_object_get(m, "id")) != o->task.eval_id)
		return;
	snprintf(worker, sizeof(worker), "pid %d", pool_pid(p, w));
	struct job *j = o->job;
	if (!strcmp(type, "result")) {
		double wall = json_number_value(json_object_get(m, "wall_s"));
		if (jobrun_result(j->jr, &o->task, m, worker, err, sizeof(err))) {
			set_state(s, j, STORE_JOB_FAILED, err);
		} else {
			s->m.evaluated++;
			s->m.images_per_s = json_number_value(json_object_get(m, "images_per_s"));
			j->wall_sum += wall;
			j->wall_n++;
		}
	} else {
		const char *msg = json_string_value(json_object_get(m, "message"));
		s->m.failures++;
		log_msg(LOG_WARN, "job %lld: candidate %d failed: %s", (long long)j->id,
		        o->task.seq, msg ? msg : "?");
		if (jobrun_failure(j->jr, &o->task, msg ? msg : "unknown error", worker, err,
		                   sizeof(err)) < 0)
			set_state(s, j, STORE_JOB_FAILED, err);
	}
	o->has = 0;
	check_complete(s, j);
	maybe_close(j);
	pool_release(p, w);
}

static void on_lost(pool *p, int w, const char *reason, void *ctx)
{
	sched *s = ctx;
	struct owner *o = &s->owner[w];
	char err[GRAFT_ERRLEN];

	s->m.worker_restarts = pool_restarts(p) + 1;
	if (!o->has)
		return;
	struct job *j = o->job;
	o->has = 0;
	if (s->stopping) {
		jobrun_abandon(j->jr, &o->task);
		return;
	}
	s->m.failures++;
	log_msg(LOG_WARN, "job %lld: candidate %d lost: %s", (long long)j->id, o->task.seq,
	        reason);
	if (jobrun_failure(j->jr, &o->task, reason, "", err, sizeof(err)) < 0)
		set_state(s, j, STORE_JOB_FAILED, err);
	check_complete(s, j);
	maybe_close(j);
	dispatch(s);
}

sched *sched_new(uv_loop_t *loop, store *st, const sched_opts *o)
{
	sched *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->loop = loop;
	s->st = st;
	s->o = *o;
	snprintf(s->weights_dir, sizeof(s->weights_dir), "%s/weights", o->data_dir);
	snprintf(s->grafts_dir, sizeof(s->grafts_dir), "%s/grafts", o->data_dir);
	snprintf(s->datasets_dir, sizeof(s->datasets_dir), "%s/datasets", o->data_dir);
	s->owner = calloc((size_t)o->workers, sizeof(*s->owner));
	pool_opts po = { .workers = o->workers, .argv = o->worker_argv,
	                 .heartbeat_s = o->heartbeat_s, .memory_mb = o->memory_mb };
	pool_cb cb = { .idle = on_idle, .line = on_line, .lost = on_lost };
	if (s->owner)
		s->pool = pool_new(loop, &po, &cb, s);
	if (!s->pool) {
		free(s->owner);
		free(s);
		return NULL;
	}
	s->m.workers = o->workers;
	return s;
}

void sched_resume_all(sched *s)
{
	int64_t *ids;
	int n;
	if (store_job_ids(s->st, &ids, &n))
		return;
	for (int i = 0; i < n; i++) {
		store_job j;
		if (store_job_get(s->st, ids[i], &j))
			continue;
		store_job_clear(&j);
		if (j.state != STORE_JOB_QUEUED && j.state != STORE_JOB_RUNNING &&
		    j.state != STORE_JOB_PAUSED)
			continue;
		struct job *job = add_job(s, j.id, j.state);
		if (job && j.state != STORE_JOB_PAUSED) {
			log_msg(LOG_INFO, "job %lld: resuming (%s)", (long long)j.id,
			        store_job_state_name(j.state));
			start_open(s, job);
		}
	}
	free(ids);
}

/* ---- submitting ------------------------------------------------------------------ */

/* "line L, column C: path: message" -> its parts. */
static void locate(const char *err, sched_answer *a)
{
	int line, col, n = 0;
	snprintf(a->message, sizeof(a->message), "%s", err);
	if (sscanf(err, "line %d, column %d: %n", &line, &col, &n) == 2 && n > 0) {
		a->line = line;
		a->column = col;
		const char *rest = err + n, *colon = strstr(rest, ": ");
		if (colon && (size_t)(colon - rest) < sizeof(a->field) && !memchr(rest, ' ', (size_t)(colon - rest)))
			snprintf(a->field, sizeof(a->field), "%.*s", (int)(colon - rest), rest);
	}
}

struct submit_req {
	uv_work_t w;
	sched *s;
	char *text;
	proto_job spec;
	int rc, space;        /* space: the dataset is fine, the space is not */
	char err[GRAFT_ERRLEN];
	void (*done)(const sched_answer *, void *);
	void *ctx;
};

/* On the thread pool: fetch what is given by URL; do the dataset's files
 * exist and parse? */
static void submit_work(uv_work_t *w)
{
	struct submit_req *r = w->data;
	proto_job *j = &r->spec;
	fetch_limits lim = { r->s->o.fetch_max_bytes ? r->s->o.fetch_max_bytes
	                                             : FETCH_DEFAULT_MAX_BYTES,
	                     r->s->o.fetch_timeout_s ? r->s->o.fetch_timeout_s
	                                             : FETCH_DEFAULT_TIMEOUT_S };
	if (fetch_job_data(j, r->s->datasets_dir, &lim, r->err, sizeof(r->err))) {
		r->rc = GRAFT_EIO;
		return;
	}
	data_src src = { .dir = j->dataset.dir[0] ? j->dataset.dir : NULL,
	                 .train_images = j->dataset.train_images,
	                 .train_labels = j->dataset.train_labels,
	                 .validation = j->dataset.validation };
	nn_dataset train, val;
	r->rc = data_load_split(&src, &train, &val, r->err, sizeof(r->err));
	if (!r->rc && val.n == 0) {
		snprintf(r->err, sizeof(r->err), "the dataset has too few images to hold out a "
		         "validation split");
		r->rc = GRAFT_EINVAL;
	}
	if (!r->rc && jobrun_check_space(j, &train, r->err, sizeof(r->err)))
		r->space = 1;
	nn_dataset_free(&train);
	nn_dataset_free(&val);
}

static void submit_done(uv_work_t *w, int status)
{
	struct submit_req *r = w->data;
	sched *s = r->s;
	sched_answer a = { .status = 201 };

	s->works--;
	if (status || s->stopping) {
		a.status = 503;
		snprintf(a.code, sizeof(a.code), "shutting_down");
		snprintf(a.message, sizeof(a.message), "graftd is stopping; submit again later");
	} else if (r->rc || r->space) {
		a.status = 422;
		snprintf(a.code, sizeof(a.code), r->space ? "bad_space" : "bad_dataset");
		snprintf(a.field, sizeof(a.field), r->space ? "space" : "dataset");
		snprintf(a.message, sizeof(a.message), "%s", r->err);
	} else {
		store_job j = { .spec = r->text, .total = r->spec.candidates,
		                .steps = r->spec.train.steps, .state = STORE_JOB_QUEUED };
		snprintf(j.name, sizeof(j.name), "%s", r->spec.name);
		nn_sha256_hex(r->text, strlen(r->text), j.spec_sha256);
		if (store_job_add(s->st, &j)) {
			a.status = 500;
			snprintf(a.code, sizeof(a.code), "store");
			snprintf(a.message, sizeof(a.message), "%s", store_errmsg(s->st));
		} else {
			a.id = j.id;
			log_msg(LOG_INFO, "job %lld: submitted ('%s', %d candidates)", (long long)j.id,
			        j.name, j.total);
			struct job *job = add_job(s, j.id, STORE_JOB_QUEUED);
			if (job)
				start_open(s, job);
		}
	}
	r->done(&a, r->ctx);
	free(r->text);
	free(r);
}

void sched_submit(sched *s, const char *text, size_t len,
                  void (*done)(const sched_answer *a, void *ctx), void *ctx)
{
	sched_answer a = { .status = 400 };
	char err[GRAFT_ERRLEN];
	struct submit_req *r = calloc(1, sizeof(*r));

	if (!r || !(r->text = malloc(len + 1))) {
		free(r);
		a.status = 500;
		snprintf(a.code, sizeof(a.code), "no_memory");
		snprintf(a.message, sizeof(a.message), "out of memory");
		done(&a, ctx);
		return;
	}
	memcpy(r->text, text, len);
	r->text[len] = '\0';
	if (strlen(r->text) != len || proto_job_parse(r->text, len, &r->spec, err, sizeof(err))) {
		snprintf(a.code, sizeof(a.code), "bad_spec");
		locate(strlen(r->text) != len ? "the job spec contains a NUL byte" : err, &a);
		free(r->text);
		free(r);
		done(&a, ctx);
		return;
	}
	r->s = s;
	r->done = done;
	r->ctx = ctx;
	r->w.data = r;
	s->works++;
	uv_queue_work(s->loop, &r->w, submit_work, submit_done);
}

/* ---- controlling ------------------------------------------------------------------ */

void sched_control(sched *s, int64_t id, const char *action, sched_answer *a)
{
	store_job row;
	memset(a, 0, sizeof(*a));
	a->id = id;
	if (store_job_get(s->st, id, &row)) {
		a->status = 404;
		snprintf(a->code, sizeof(a->code), "not_found");
		snprintf(a->message, sizeof(a->message), "no job %lld", (long long)id);
		return;
	}
	store_job_clear(&row);
	struct job *j = find_job(s, id);
	int from = row.state, to = -1;
	if (!strcmp(action, "pause") && (from == STORE_JOB_QUEUED || from == STORE_JOB_RUNNING))
		to = STORE_JOB_PAUSED;
	else if (!strcmp(action, "resume") && from == STORE_JOB_PAUSED)
		to = STORE_JOB_RUNNING;
	else if (!strcmp(action, "cancel") && (from == STORE_JOB_QUEUED ||
	                                       from == STORE_JOB_RUNNING || from == STORE_JOB_PAUSED))
		to = STORE_JOB_CANCELLED;
	if (to < 0) {
		a->status = 409;
		snprintf(a->code, sizeof(a->code), "bad_state");
		snprintf(a->message, sizeof(a->message), "cannot %s job %lld: it is %s", action,
		         (long long)id, store_job_state_name(from));
		return;
	}
	if (!j)
		j = add_job(s, id, from);
	if (!j || set_state(s, j, to, NULL)) {
		a->status = 500;
		snprintf(a->code, sizeof(a->code), "store");
		snprintf(a->message, sizeof(a->message), "%s", store_errmsg(s->st));
		return;
	}
	a->status = 200;
	if (to == STORE_JOB_RUNNING) {
		if (!j->jr)
			start_open(s, j);
		check_complete(s, j);
		dispatch(s);
	}
	maybe_close(j);
}

/* ---- reporting ------------------------------------------------------------------- */

json_t *sched_job_json(sched *s, int64_t id)
{
	store_job row;
	store_cost c;
	store_rank *best;
	int nbest = 0;

	if (store_job_get(s->st, id, &row))
		return NULL;
	store_cost_parts(s->st, id, 1, &c);
	json_t *o = json_pack("{s:I, s:s, s:s, s:f, s:f}", "id", (json_int_t)id, "name", row.name,
	                      "state", store_job_state_name(row.state), "created", row.created,
	                      "updated", row.updated);
	json_object_set_new(o, "error", row.error[0] ? json_string(row.error) : json_null());
	struct job *j = find_job(s, id);
	jobrun_stats st = { 0 };
	if (j && j->jr)
		jobrun_get_stats(j->jr, &st);
	json_object_set_new(o, "progress", json_pack("{s:i, s:i, s:i, s:i, s:i, s:b}",
	                    "evaluated", c.candidates, "total", row.total, "in_flight", st.in_flight,
	                    "cache_hits", c.cache_hits, "failed_attempts", c.failed,
	                    "opening", j && j->opening));
	if (store_leaderboard(s->st, id, STORE_SORT_ACCURACY, 1, &best, &nbest) == 0 && nbest)
		json_object_set_new(o, "best", json_pack("{s:I, s:i, s:f, s:I, s:I}", "candidate",
		                    (json_int_t)best[0].candidate_id, "seq", best[0].seq,
		                    "val_accuracy", best[0].val_accuracy, "params",
		                    (json_int_t)best[0].params, "flops", (json_int_t)best[0].flops));
	else
		json_object_set_new(o, "best", json_null());
	free(best);
	json_object_set_new(o, "cost", json_pack("{s:f, s:f, s:f}", "cpu_s", c.cpu_s,
	                    "overhead_cpu_s", row.overhead_cpu_s, "cpu_per_candidate",
	                    c.cpu_per_candidate));
	double eta = -1;
	if (row.state == STORE_JOB_RUNNING && j && j->wall_n > 0)
		eta = (row.total - c.candidates) * (j->wall_sum / j->wall_n) / s->o.workers;
	json_object_set_new(o, "eta_s", eta >= 0 ? json_real(eta) : json_null());
	store_job_clear(&row);
	return o;
}

json_t *sched_jobs_json(sched *s)
{
	int64_t *ids;
	int n;
	json_t *a = json_array();
	if (store_job_ids(s->st, &ids, &n))
		return a;
	for (int i = 0; i < n; i++) {
		json_t *j = sched_job_json(s, ids[i]);
		if (j)
			json_array_append_new(a, j);
	}
	free(ids);
	return a;
}

json_t *sched_health_json(sched *s)
{
	int busy = 0, queued = 0, running = 0;
	for (int w = 0; w < s->o.workers; w++)
		busy += pool_busy(s->pool, w);
	for (struct job *j = s->jobs; j; j = j->next) {
		queued += j->state == STORE_JOB_QUEUED;
		running += j->state == STORE_JOB_RUNNING;
	}
	return json_pack("{s:{s:i, s:i, s:i}, s:i, s:i}", "workers", "busy", busy, "idle",
	                 s->o.workers - busy, "restarts", pool_restarts(s->pool), "jobs_queued",
	                 queued, "jobs_running", running);
}

void sched_get_metrics(sched *s, sched_metrics *m)
{
	*m = s->m;
	m->worker_restarts = pool_restarts(s->pool);
	m->workers_busy = 0;
	for (int w = 0; w < s->o.workers; w++)
		m->workers_busy += pool_busy(s->pool, w);
}

/* ---- stopping ---------------------------------------------------------------------- */

static void pool_gone(void *ctx)
{
	sched *s = ctx;
	s->pool = NULL;
	if (s->stop_done)
		s->stop_done(s->stop_ctx);
}

void sched_stop(sched *s, double grace_s, void (*done)(void *ctx), void *ctx)
{
	if (s->stopping)
		return;
	s->stopping = 1;
	s->stop_done = done;
	s->stop_ctx = ctx;
	log_msg(LOG_INFO, "draining: running candidates have %.0f s to finish", grace_s);
	pool_stop(s->pool, grace_s, pool_gone);
}

void sched_free(sched *s)
{
	/* Work still running on the thread pool points into s: leave it to the
	 * process's exit. */
	if (!s || s->works > 0)
		return;
	while (s->jobs) {
		struct job *j = s->jobs;
		s->jobs = j->next;
		jobrun_free(j->jr);
		free(j);
	}
	free(s->owner);
	free(s);
}
