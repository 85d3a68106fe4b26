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
#include "daemon/driver.h"
#include "daemon/fetch.h"
#include "daemon/jobrun.h"
#include "daemon/log.h"
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

struct sched {
	uv_loop_t *loop;
	store *st;
	sched_opts o;
	rt_driver *driver;
	struct job *jobs;        /* newest first */
	int64_t last_job;        /* round robin: the job that got the last task */
	sched_metrics m;
	int stopping;
	int works;               /* opens and submissions on the thread pool */
	void (*stop_done)(void *);
	void *stop_ctx;
	char weights_dir[4200], grafts_dir[4200], datasets_dir[4200];
};


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
	/* A failed job always says why: a failure path that forgot its message
	 * is a bug, but the user still gets a sentence, not an empty string. */
	if (state == STORE_JOB_FAILED && (!error || !error[0]))
		error = "internal error: the failure left no message (please report this)";
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
		rt_driver_dispatch(s->driver);
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

/* ---- the driver's callbacks ---------------------------------------------------- */

static struct job *job_of(sched *s, const jobrun *jr)
{
	for (struct job *j = s->jobs; j; j = j->next)
		if (j->jr == jr)
			return j;
	return NULL;
}

/* The running jobs, starting after the one that got the last task and
 * wrapping around (round robin). */
static int runnable_jobs(void *ctx, jobrun **out, int max)
{
	sched *s = ctx;
	struct job *last = find_job(s, s->last_job);
	int n = 0, njobs = 0;
	for (struct job *k = s->jobs; k; k = k->next)
		njobs++;
	struct job *j = last;
	for (int i = 0; i < njobs && n < max; i++) {
		j = j && j->next ? j->next : s->jobs;
		if (j->state == STORE_JOB_RUNNING && j->jr)
			out[n++] = j->jr;
	}
	return n;
}

static void on_event(void *ctx, jobrun *jr, const rt_event *e)
{
	sched *s = ctx;
	struct job *j = job_of(s, jr);

	if (!j)
		return;
	switch (e->kind) {
	case RT_SENT:
		s->last_job = j->id;
		return;
	case RT_CACHED:
		s->m.cache_hits += e->hits;
		s->m.evaluated += e->hits;
		return;
	case RT_RESULT:
		s->m.evaluated++;
		s->m.images_per_s = e->result->images_per_s;
		j->wall_sum += e->result->wall_s;
		j->wall_n++;
		break;
	case RT_RETRY:
	case RT_FAILED:
		s->m.failures++;
		log_msg(LOG_WARN, "job %lld: candidate %d %s: %s", (long long)j->id, e->seq,
		        e->kind == RT_RETRY ? "failed, will retry" : "failed", e->message);
		break;
	case RT_JOB_ERROR:
		if (j->state == STORE_JOB_RUNNING)
			set_state(s, j, STORE_JOB_FAILED, e->message);
		break;
	case RT_NOTHING:
		break;
	}
	check_complete(s, j);
	maybe_close(j);
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
	pool_opts po = { .workers = o->workers, .argv = o->worker_argv,
	                 .heartbeat_s = o->heartbeat_s, .memory_mb = o->memory_mb };
	rt_driver_cb cb = { .jobs = runnable_jobs, .event = on_event };
	s->driver = rt_driver_new(loop, &po, &cb, s);
	if (!s->driver) {
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
		rt_driver_dispatch(s->driver);
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
	int busy = rt_driver_busy(s->driver), queued = 0, running = 0;
	for (struct job *j = s->jobs; j; j = j->next) {
		queued += j->state == STORE_JOB_QUEUED;
		running += j->state == STORE_JOB_RUNNING;
	}
	return json_pack("{s:{s:i, s:i, s:i}, s:i, s:i}", "workers", "busy", busy, "idle",
	                 s->o.workers - busy, "restarts", rt_driver_restarts(s->driver), "jobs_queued",
	                 queued, "jobs_running", running);
}

void sched_get_metrics(sched *s, sched_metrics *m)
{
	*m = s->m;
	m->worker_restarts = rt_driver_restarts(s->driver);
	m->workers_busy = rt_driver_busy(s->driver);
}

/* ---- stopping ---------------------------------------------------------------------- */

static void driver_stopped(void *ctx)
{
	sched *s = ctx;
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
	rt_driver_stop(s->driver, grace_s, driver_stopped, s);
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
	rt_driver_free(s->driver);
	free(s);
}
