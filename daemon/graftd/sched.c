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
#include <time.h>

#include "daemon/runtime/runtime.h"
#include "daemon/graftd/graftd.h"
#include "proto/proto.h"

/* A job graftd knows: every job of the store, finished ones too, so that
 * the API answers from memory.  figures is the job as the API shows it,
 * built from the store when something about the job changes (a result, a
 * failure, a state), never per request; the live parts (in flight,
 * opening, ETA) are added when asked. */
struct job {
	int64_t id;
	int state;
	rt_jobrun *jr;
	int opening;
	double wall_sum;        /* of the results this run, for the ETA */
	int wall_n;
	json_t *figures;
	int evaluated, total;   /* figures' */
	/* A store or disk fault paused the job: its jobrun no longer matches
	 * the store (a result it holds may not have been written), so it is
	 * dropped once nothing is in flight, and a resume reopens the job
	 * from the store, as a restart would.  error says what happened, for
	 * when the store could not even record the pause. */
	int stale;
	char error[GRAFT_ERRLEN];
	struct job *next;
};

struct gd_sched {
	uv_loop_t *loop;
	store *st;
	gd_sched_opts o;
	rt_driver *driver;
	struct job *jobs;        /* newest first */
	int64_t last_job;        /* round robin: the job that got the last task */
	gd_sched_metrics m;
	int stopping;
	int works;               /* opens and submissions on the thread rt_pool */
	void (*stop_done)(void *);
	void *stop_ctx;
	char weights_dir[4200], grafts_dir[4200], datasets_dir[4200];
	rt_slurm *slurm;         /* what squeue says of the workers (Slurm only) */
	uv_timer_t *watch;       /* each second: asks it, and fails the running
	                            jobs when no worker has come up in time */
	double none_ready_since; /* Unix time from which no worker was ready */
};


static struct job *find_job(gd_sched *s, int64_t id)
{
	for (struct job *j = s->jobs; j; j = j->next)
		if (j->id == id)
			return j;
	return NULL;
}

static struct job *add_job(gd_sched *s, int64_t id, int state)
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

/* The job's data as the store knows it: where from, what format, how many
 * images, the class names (null when the data names none) and the bad
 * images an image folder's skip_bad left out; null until the job opened. */
static json_t *dataset_json(store *st, int64_t id)
{
	store_dataset d;

	if (!id || store_dataset_get(st, id, &d))
		return json_null();
	json_t *classes = d.classes ? json_loads(d.classes, 0, NULL) : NULL;
	free(d.classes);
	return json_pack("{s:s, s:s, s:I, s:o, s:i}", "location", d.location, "format", d.format,
	                 "images", (json_int_t)d.images, "classes",
	                 classes ? classes : json_null(), "skipped", d.skipped);
}

/* Rebuilds j's figures from the store (on the loop, once per change).  On
 * a store error the old figures stay. */
static void refresh(gd_sched *s, struct job *j)
{
	store_job row;
	store_cost c;
	store_rank *best = NULL;
	int nbest = 0;

	if (store_job_get(s->st, j->id, &row) || store_cost_parts(s->st, j->id, 1, &c))
		return;
	json_t *o = json_pack("{s:I, s:s, s:s, s:f, s:f}", "id", (json_int_t)j->id, "name",
	                      row.name, "state", store_job_state_name(row.state), "created",
	                      row.created, "updated", row.updated);
	if (!o) {
		store_job_clear(&row);
		return;
	}
	json_object_set_new(o, "error", row.error[0] ? json_string(row.error) : json_null());
	json_object_set_new(o, "progress", json_pack("{s:i, s:i, s:i, s:i}", "evaluated",
	                    c.candidates, "total", row.total, "cache_hits", c.cache_hits,
	                                             "failed_attempts", c.failed));
	if (store_leaderboard(s->st, j->id, STORE_SORT_ACCURACY, 1, &best, &nbest) == 0 && nbest)
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
	json_object_set_new(o, "phase", json_string(row.final_phase ? "final" : "search"));
	json_object_set_new(o, "search_wall_s", json_real(row.search_wall_s));
	int at[SEARCH_MAX_RUNGS], nr = store_rung_counts(s->st, j->id, at, SEARCH_MAX_RUNGS);
	json_t *rungs = json_array();
	for (int r = 0; r < nr && rungs; r++)
		json_array_append_new(rungs, json_integer(at[r]));
	json_object_set_new(o, "stopped_at_rung", rungs ? rungs : json_null());
	json_object_set_new(o, "final", gd_finals_json(s->st, j->id));
	json_object_set_new(o, "dataset", dataset_json(s->st, row.dataset_id));
	j->evaluated = c.candidates;
	j->total = row.total;
	store_job_clear(&row);
	json_decref(j->figures);
	j->figures = o;
}

static int set_state(gd_sched *s, struct job *j, int state, const char *error)
{
	/* A failed job always says why: a failure path that forgot its message
	 * is a bug, but the user still gets a sentence, not an empty string. */
	if (state == STORE_JOB_FAILED && (!error || !error[0]))
		error = "internal error: the failure left no message (please report this)";
	int rc = store_job_set_state(s->st, j->id, state, error);
	if (rc) {
		gd_log_msg(GD_LOG_ERROR, "job %lld: cannot record state %s: %s", (long long)j->id,
		           store_job_state_name(state), store_errmsg(s->st));
		return rc;
	}
	gd_log_msg(GD_LOG_INFO, "job %lld: %s%s%s", (long long)j->id, store_job_state_name(state),
	           error ? ": " : "", error ? error : "");
	j->state = state;
	refresh(s, j);
	return 0;
}

/* Frees a job's jobrun once nothing of it is in flight and it will not run. */
static void maybe_close(struct job *j)
{
	rt_jobrun_stats st;
	if (!j->jr || (!j->stale && (j->state == STORE_JOB_RUNNING ||
	                             j->state == STORE_JOB_PAUSED)))
		return;
	rt_jobrun_get_stats(j->jr, &st);
	if (st.in_flight == 0) {
		rt_jobrun_free(j->jr);
		j->jr = NULL;
	}
}

static void check_complete(gd_sched *s, struct job *j)
{
	if (j->jr && j->state == STORE_JOB_RUNNING && rt_jobrun_complete(j->jr)) {
		set_state(s, j, STORE_JOB_DONE, NULL);
		maybe_close(j);
	}
}

/* The store or the disk failed under a running job (full, read-only, an
 * I/O error): nothing of the job is lost, since every result is either
 * committed or not, so it pauses, saying why and what to do, rather than
 * fail for good.  When even the pause cannot be written, it holds in
 * memory: the job runs no more, the API shows it paused, and after a
 * restart it simply resumes. */
static void pause_for_fault(gd_sched *s, struct job *j, const char *why)
{
	snprintf(j->error, sizeof(j->error), "paused: %.400s; fix the cause (disk space, "
	         "permissions), then resume the job", why);
	j->stale = 1;
	if (set_state(s, j, STORE_JOB_PAUSED, j->error)) {
		j->state = STORE_JOB_PAUSED;
		gd_log_msg(GD_LOG_WARN, "job %lld: %s", (long long)j->id, j->error);
	}
	maybe_close(j);
}

/* ---- opening jobs on the thread pool --------------------------------------- */

struct open_req {
	uv_work_t w;
	gd_sched *s;
	struct job *job;
	rt_jobrun_input *in;        /* the submission's, or NULL after a restart */
	store *st;
	rt_jobrun *jr;
	int rc;
	char err[GRAFT_ERRLEN];
};

static rt_jobrun_dirs dirs_of(const gd_sched *s)
{
	return (rt_jobrun_dirs){ .weights = s->weights_dir, .grafts = s->grafts_dir,
	                      .datasets = s->datasets_dir,
	                      .fetch_max_bytes = s->o.fetch_max_bytes,
	                      .fetch_timeout_s = s->o.fetch_timeout_s,
	                      .shared = s->o.shared_dir };
}

static void open_work(uv_work_t *w)
{
	struct open_req *r = w->data;
	rt_jobrun_dirs dirs = dirs_of(r->s);
	rt_jobrun_input *in = r->in;
	r->in = NULL; /* rt_jobrun_open takes it */
	r->rc = store_open(r->s->o.db_path, &r->st, r->err, sizeof(r->err));
	if (r->rc)
		rt_jobrun_input_free(in);
	else
		r->rc = rt_jobrun_open(r->st, r->job->id, &dirs, in, NULL, &r->jr, r->err,
		                       sizeof(r->err));
}

static void open_done(uv_work_t *w, int status)
{
	struct open_req *r = w->data;
	gd_sched *s = r->s;
	struct job *j = r->job;

	s->works--;
	j->opening = 0;
	if (r->jr)
		rt_jobrun_set_store(r->jr, s->st);
	store_close(r->st);
	if (status == UV_ECANCELED || s->stopping) {
		rt_jobrun_input_free(r->in);
		rt_jobrun_free(r->jr);
	} else if (r->rc) {
		if (j->state == STORE_JOB_QUEUED || j->state == STORE_JOB_RUNNING ||
		    j->state == STORE_JOB_PAUSED)
			set_state(s, j, STORE_JOB_FAILED, r->err);
	} else {
		j->jr = r->jr;
		if (s->o.threads > 0)
			rt_jobrun_set_threads(j->jr, s->o.threads);
		refresh(s, j);
		rt_jobrun_stats st;
		rt_jobrun_get_stats(j->jr, &st);
		gd_log_msg(GD_LOG_INFO, "job %lld: open, %d of %d candidates evaluated", (long long)j->id,
		           st.evaluated, st.total);
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

/* Opens j on the thread pool, from in (taken; NULL: from its stored spec). */
static void start_open(gd_sched *s, struct job *j, rt_jobrun_input *in)
{
	if (j->jr || j->opening || s->stopping) {
		rt_jobrun_input_free(in);
		return;
	}
	struct open_req *r = calloc(1, sizeof(*r));
	if (!r) {
		rt_jobrun_input_free(in);
		set_state(s, j, STORE_JOB_FAILED, "out of memory");
		return;
	}
	r->s = s;
	r->job = j;
	r->in = in;
	r->w.data = r;
	j->opening = 1;
	s->works++;
	gd_log_msg(GD_LOG_INFO, "job %lld: opening (data, graft, replay)", (long long)j->id);
	uv_queue_work(s->loop, &r->w, open_work, open_done);
}

/* ---- the driver's callbacks ---------------------------------------------------- */

static struct job *job_of(gd_sched *s, const rt_jobrun *jr)
{
	for (struct job *j = s->jobs; j; j = j->next)
		if (j->jr == jr)
			return j;
	return NULL;
}

/* The running jobs, starting after the one that got the last task and
 * wrapping around (round robin). */
static int runnable_jobs(void *ctx, rt_jobrun **out, int max)
{
	gd_sched *s = ctx;
	struct job *last = find_job(s, s->last_job);
	int n = 0, njobs = 0;
	for (struct job *k = s->jobs; k; k = k->next)
		njobs++;
	struct job *j = last;
	for (int i = 0; i < njobs && n < max; i++) {
		j = j && j->next ? j->next : s->jobs;
		if (j->state == STORE_JOB_RUNNING && j->jr && !j->stale)
			out[n++] = j->jr;
	}
	return n;
}

static void on_event(void *ctx, rt_jobrun *jr, const rt_event *e)
{
	gd_sched *s = ctx;
	struct job *j = jr ? job_of(s, jr) : NULL;

	if (e->kind == RT_WORKER_PROBLEM)
		gd_log_msg(GD_LOG_ERROR, "%s", e->message);
	if (!j)
		return;
	switch (e->kind) {
	case RT_SENT:
		s->last_job = j->id;
		return;
	case RT_CACHED:
		s->m.cache_hits += e->hits;
		s->m.evaluated += e->hits;
		refresh(s, j);
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
		gd_log_msg(GD_LOG_WARN, "job %lld: candidate %d %s: %s", (long long)j->id, e->seq,
		           e->kind == RT_RETRY ? "failed, will retry" : "failed", e->message);
		break;
	case RT_JOB_ERROR:
		if (j->state == STORE_JOB_RUNNING && (e->code == GRAFT_ESQL || e->code == GRAFT_EIO))
			pause_for_fault(s, j, e->message);
		else if (j->state == STORE_JOB_RUNNING)
			set_state(s, j, STORE_JOB_FAILED, e->message);
		break;
	case RT_WORKER_PROBLEM:
		return;
	case RT_NOTHING:
		check_complete(s, j);
		maybe_close(j);
		return;
	}
	refresh(s, j);
	check_complete(s, j);
	maybe_close(j);
}

static double unix_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Slurm's word on a starting worker, "" when it has none: "pending
 * (Resources)". */
static void slurm_word(const gd_sched *s, int w, char *out, size_t n)
{
	char state[32], reason[160];
	out[0] = '\0';
	if (s->slurm && rt_slurm_state(s->slurm, w, state, sizeof(state), reason,
	                               sizeof(reason)) == 0)
		snprintf(out, n, "%s (%s)", state, reason);
}

/* Each second with workers on Slurm: squeue is asked while a worker is
 * starting, and when none has been ready for pending_timeout_s the running
 * jobs fail with what Slurm says, rather than wait for ever. */
static void on_watch(uv_timer_t *t)
{
	gd_sched *s = t->data;
	int ready = 0, starting = -1;
	for (int w = 0; w < rt_driver_workers(s->driver); w++) {
		rt_worker_info i;
		if (rt_driver_worker(s->driver, w, &i))
			continue;
		if (i.starting && starting < 0)
			starting = w;
		ready += i.pid && !i.starting;
	}
	if (starting >= 0)
		rt_slurm_poll(s->slurm);
	double now = unix_now();
	if (ready || s->stopping) {
		s->none_ready_since = 0;
		return;
	}
	if (!s->none_ready_since)
		s->none_ready_since = now;
	if (now - s->none_ready_since < s->o.pending_timeout_s)
		return;
	char word[200], msg[600];
	slurm_word(s, starting >= 0 ? starting : 0, word, sizeof(word));
	snprintf(msg, sizeof(msg), "no worker has started in %.0f s (executor.pending_timeout): "
	         "Slurm says %s; check executor.partition, cpus_per_worker and mem_per_worker "
	         "against the cluster (sinfo), and squeue", now - s->none_ready_since,
	         word[0] ? word : "nothing of them (their steps wait in the allocation)");
	for (struct job *j = s->jobs; j; j = j->next)
		if (j->state == STORE_JOB_RUNNING) {
			set_state(s, j, STORE_JOB_FAILED, msg);
			maybe_close(j);
		}
	s->none_ready_since = now;
}

gd_sched *gd_sched_new(uv_loop_t *loop, store *st, const gd_sched_opts *o)
{
	gd_sched *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->loop = loop;
	s->st = st;
	s->o = *o;
	/* With workers elsewhere, what they read and write lives in the shared
	 * directory; the store stays in the data directory, graftd's alone. */
	const char *files = o->shared_dir ? o->shared_dir : o->data_dir;
	snprintf(s->weights_dir, sizeof(s->weights_dir), "%s/weights", files);
	snprintf(s->grafts_dir, sizeof(s->grafts_dir), "%s/grafts", files);
	snprintf(s->datasets_dir, sizeof(s->datasets_dir), "%s/datasets", files);
	rt_pool_opts po = { .workers = o->workers, .argv = o->worker_argv,
	                 .heartbeat_s = o->heartbeat_s, .start_s = o->start_s,
	                 .memory_mb = o->memory_mb };
	rt_driver_cb cb = { .jobs = runnable_jobs, .event = on_event };
	s->driver = rt_driver_new(loop, &po, &cb, s);
	if (!s->driver) {
		free(s);
		return NULL;
	}
	s->m.workers = o->workers;
	if (o->slurm_prefix) {
		s->slurm = rt_slurm_new(loop, o->slurm_prefix, o->workers);
		s->watch = malloc(sizeof(*s->watch));
		if (!s->slurm || !s->watch) {
			rt_slurm_free(s->slurm);
			free(s->watch);
			rt_driver_free(s->driver);
			free(s);
			return NULL;
		}
		uv_timer_init(loop, s->watch);
		s->watch->data = s;
		uv_timer_start(s->watch, on_watch, 1000, 1000);
	}
	return s;
}

void gd_sched_resume_all(gd_sched *s)
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
		struct job *job = add_job(s, j.id, j.state);
		if (!job)
			continue;
		refresh(s, job);
		if (j.state == STORE_JOB_QUEUED || j.state == STORE_JOB_RUNNING) {
			gd_log_msg(GD_LOG_INFO, "job %lld: resuming (%s)", (long long)j.id,
			           store_job_state_name(j.state));
			start_open(s, job, NULL);
		}
	}
	free(ids);
}

/* ---- submitting ------------------------------------------------------------------ */

/* "line L, column C: path: message" -> its parts. */
static void locate(const char *err, gd_sched_answer *a)
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
	gd_sched *s;
	char *text;
	size_t len;
	rt_jobrun_input *in;
	enum rt_jobrun_refusal why;
	int rc;
	char err[GRAFT_ERRLEN];
	void (*done)(const gd_sched_answer *, void *);
	void *ctx;
};

/* On the thread pool: the spec parsed, its dataset fetched, loaded and
 * checked, its space checked, once; the job then opens from that. */
static void submit_work(uv_work_t *w)
{
	struct submit_req *r = w->data;
	rt_jobrun_dirs dirs = dirs_of(r->s);
	r->rc = rt_jobrun_input_load(r->text, r->len, &dirs, &r->in, &r->why, r->err, sizeof(r->err));
}

static void submit_done(uv_work_t *w, int status)
{
	static const char *const codes[] = { [RT_JOBRUN_BAD_SPEC] = "bad_spec",
	                                     [RT_JOBRUN_BAD_DATASET] = "bad_dataset",
	                                     [RT_JOBRUN_BAD_SPACE] = "bad_space" };
	struct submit_req *r = w->data;
	gd_sched *s = r->s;
	gd_sched_answer a = { .status = 201 };

	s->works--;
	if (status || s->stopping) {
		a.status = 503;
		snprintf(a.code, sizeof(a.code), "shutting_down");
		snprintf(a.message, sizeof(a.message), "graftd is stopping; submit again later");
	} else if (r->rc && r->why == RT_JOBRUN_BAD_SPEC) {
		a.status = r->rc == GRAFT_ENOMEM ? 500 : 400;
		snprintf(a.code, sizeof(a.code), "%s", codes[r->why]);
		locate(r->err, &a);
	} else if (r->rc) {
		a.status = 422;
		snprintf(a.code, sizeof(a.code), "%s", codes[r->why]);
		snprintf(a.field, sizeof(a.field), r->why == RT_JOBRUN_BAD_SPACE ? "space" : "dataset");
		snprintf(a.message, sizeof(a.message), "%s", r->err);
	} else {
		const proto_job *spec = rt_jobrun_input_spec(r->in);
		store_job j = { .spec = r->text, .total = spec->candidates,
		                .steps = spec->train.steps, .state = STORE_JOB_QUEUED };
		snprintf(j.name, sizeof(j.name), "%s", spec->name);
		nn_sha256_hex(r->text, r->len, j.spec_sha256);
		if (store_job_add(s->st, &j)) {
			a.status = 500;
			snprintf(a.code, sizeof(a.code), "store");
			snprintf(a.message, sizeof(a.message), "recording the job: %s",
			         store_errmsg(s->st));
		} else {
			a.id = j.id;
			gd_log_msg(GD_LOG_INFO, "job %lld: submitted ('%s', %d candidates)", (long long)j.id,
			           j.name, j.total);
			struct job *job = add_job(s, j.id, STORE_JOB_QUEUED);
			if (job)
				refresh(s, job);
			if (job) {
				start_open(s, job, r->in);
				r->in = NULL;
			}
		}
	}
	rt_jobrun_input_free(r->in);
	r->done(&a, r->ctx);
	free(r->text);
	free(r);
}

void gd_sched_submit(gd_sched *s, const char *text, size_t len,
                     void (*done)(const gd_sched_answer *a, void *ctx), void *ctx)
{
	struct submit_req *r = calloc(1, sizeof(*r));

	if (!r || !(r->text = malloc(len + 1))) {
		gd_sched_answer a = { .status = 500 };
		free(r);
		snprintf(a.code, sizeof(a.code), "no_memory");
		snprintf(a.message, sizeof(a.message), "out of memory");
		done(&a, ctx);
		return;
	}
	memcpy(r->text, text, len);
	r->text[len] = '\0';
	r->len = len;
	r->s = s;
	r->done = done;
	r->ctx = ctx;
	r->w.data = r;
	s->works++;
	uv_queue_work(s->loop, &r->w, submit_work, submit_done);
}

/* ---- controlling ------------------------------------------------------------------ */

void gd_sched_control(gd_sched *s, int64_t id, const char *action, gd_sched_answer *a)
{
	memset(a, 0, sizeof(*a));
	a->id = id;
	struct job *j = find_job(s, id);
	if (!j) {
		a->status = 404;
		snprintf(a->code, sizeof(a->code), "not_found");
		snprintf(a->message, sizeof(a->message), "no job %lld", (long long)id);
		return;
	}
	int from = j->state, to = -1;
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
	if (to == STORE_JOB_RUNNING && j->stale && j->jr) {
		a->status = 409;
		snprintf(a->code, sizeof(a->code), "busy");
		snprintf(a->message, sizeof(a->message), "job %lld still has candidates in flight "
		         "from before its pause; resume it again when they are done", (long long)id);
		return;
	}
	if (set_state(s, j, to, NULL)) {
		a->status = 500;
		snprintf(a->code, sizeof(a->code), "store");
		snprintf(a->message, sizeof(a->message), "cannot record that job %lld is %s: %s",
		         (long long)id, store_job_state_name(to), store_errmsg(s->st));
		return;
	}
	j->error[0] = '\0';
	if (to == STORE_JOB_RUNNING)
		j->stale = 0; /* its jobrun is gone: it reopens from the store */
	a->status = 200;
	if (to == STORE_JOB_RUNNING) {
		if (!j->jr)
			start_open(s, j, NULL);
		check_complete(s, j);
		rt_driver_dispatch(s->driver);
	}
	maybe_close(j);
}

/* ---- reporting ------------------------------------------------------------------- */

/* A number, or null for NAN (none). */
static json_t *maybe_real(double v)
{
	return isnan(v) ? json_null() : json_real(v);
}

/* A limit, or null when there is none (0). */
static json_t *limit_json(double v)
{
	return v > 0 ? json_real(v) : json_null();
}

/* j's figures with the live parts added. */
static json_t *job_json(gd_sched *s, struct job *j)
{
	if (!j->figures)
		refresh(s, j);
	json_t *o = j->figures ? json_deep_copy(j->figures) : NULL;
	if (!o)
		return NULL;
	rt_jobrun_stats st = { 0 };
	if (j->jr)
		rt_jobrun_get_stats(j->jr, &st);
	/* Memory is ahead of the store when the store could not record a pause.
	 * A running job in its final phase is "final" to its users. */
	json_object_set_new(o, "state", json_string(j->state == STORE_JOB_RUNNING && j->jr &&
	                                            st.final_phase ? "final"
	                                            : store_job_state_name(j->state)));
	if (j->jr)
		json_object_set_new(o, "budget", json_pack("{s:o, s:o, s:f, s:f, s:o, s:o, s:b}",
		                    "max_time_s", limit_json(rt_jobrun_spec(j->jr)->max_time_s),
		                    "max_cpu_s", limit_json(rt_jobrun_spec(j->jr)->max_cpu_s),
		                    "search_wall_s", st.search_wall_s, "cpu_s", st.cpu_s,
		                    "time_left_s", maybe_real(st.time_left_s),
		                    "cpu_left_s", maybe_real(st.cpu_left_s),
		                    "spent", st.budget_spent));
	if (j->error[0])
		json_object_set_new(o, "error", json_string(j->error));
	json_t *p = json_object_get(o, "progress");
	json_object_set_new(p, "in_flight", json_integer(st.in_flight));
	json_object_set_new(p, "opening", json_boolean(j->opening));
	/* The search's ETA: its remaining candidates at the mean time each, or
	 * its time budget if that ends it first; none in the final stage,
	 * whose trainings are not like candidates. */
	double eta = -1;
	if (j->state == STORE_JOB_RUNNING && j->wall_n > 0 && !st.final_phase) {
		eta = (j->total - j->evaluated) * (j->wall_sum / j->wall_n) / s->o.workers;
		if (!isnan(st.time_left_s) && st.time_left_s < eta)
			eta = st.time_left_s;
	}
	json_object_set_new(o, "eta_s", eta >= 0 ? json_real(eta) : json_null());
	return o;
}

json_t *gd_sched_job_json(gd_sched *s, int64_t id)
{
	struct job *j = find_job(s, id);
	return j ? job_json(s, j) : NULL;
}

json_t *gd_sched_jobs_json(gd_sched *s)
{
	json_t *a = json_array();
	/* The list is newest first; the API lists oldest first. */
	for (struct job *j = s->jobs; a && j; j = j->next) {
		json_t *o = job_json(s, j);
		if (o)
			json_array_insert_new(a, 0, o);
	}
	return a;
}

void gd_sched_job_counts(gd_sched *s, int counts[STORE_JOB_NSTATES])
{
	memset(counts, 0, sizeof(int) * STORE_JOB_NSTATES);
	for (struct job *j = s->jobs; j; j = j->next)
		if (j->state >= 0 && j->state < STORE_JOB_NSTATES)
			counts[j->state]++;
}

/* Workers starting (not ready yet), and of them those Slurm keeps pending. */
static void count_starting(const gd_sched *s, int *starting, int *pending)
{
	*starting = *pending = 0;
	for (int w = 0; w < rt_driver_workers(s->driver); w++) {
		rt_worker_info i;
		char word[200];
		if (rt_driver_worker(s->driver, w, &i) || !i.starting)
			continue;
		slurm_word(s, w, word, sizeof(word));
		++*starting;
		*pending += !strncmp(word, "PENDING", 7);
	}
}

json_t *gd_sched_health_json(gd_sched *s)
{
	int busy = rt_driver_busy(s->driver), queued = 0, running = 0, starting, pending;
	for (struct job *j = s->jobs; j; j = j->next) {
		queued += j->state == STORE_JOB_QUEUED;
		running += j->state == STORE_JOB_RUNNING;
	}
	count_starting(s, &starting, &pending);
	return json_pack("{s:{s:i, s:i, s:i, s:i, s:i}, s:i, s:i, s:s}", "workers", "busy", busy,
	                 "idle", s->o.workers - busy - starting, "starting", starting - pending,
	                 "pending", pending, "restarts", rt_driver_restarts(s->driver),
	                 "jobs_queued", queued, "jobs_running", running, "executor",
	                 s->slurm ? "slurm" : "local");
}

json_t *gd_sched_workers_json(gd_sched *s)
{
	static const char *const kinds[] = { [RT_TASK_EVAL] = "search", [RT_TASK_FINAL] = "final",
	                                     [RT_TASK_SCORE] = "test" };
	json_t *list = json_array();
	for (int w = 0; list && w < rt_driver_workers(s->driver); w++) {
		rt_worker_info i;
		if (rt_driver_worker(s->driver, w, &i))
			continue;
		char word[200] = "";
		if (i.starting)
			slurm_word(s, w, word, sizeof(word));
		const char *state = i.busy ? "busy" : !i.starting ? "idle"
		                    : !strncmp(word, "PENDING", 7) ? "pending" : "starting";
		json_t *o = json_pack("{s:i, s:o, s:s}", "slot", w, "pid",
		                      i.pid ? json_integer(i.pid) : json_null(), "state", state);
		if (o && i.starting) {
			json_object_set_new(o, "since", json_real(i.started_at));
			json_object_set_new(o, "slurm", word[0] ? json_string(word) : json_null());
		}
		if (o && i.busy) {
			struct job *j = s->jobs;
			while (j && j->jr != i.jr)
				j = j->next;
			json_object_set_new(o, "task", json_pack("{s:o, s:s, s:i, s:i, s:i, s:i, s:o, s:f}",
			                    "job", j ? json_integer(j->id) : json_null(), "kind",
			                    kinds[i.task], "seq", i.seq, "rung", i.rung, "step", i.step,
			                    "steps", i.steps, "loss",
			                    isfinite(i.loss) ? json_real(i.loss) : json_null(),
			                    "since", i.since));
		}
		json_array_append_new(list, o);
	}
	return list;
}

void gd_sched_get_metrics(gd_sched *s, gd_sched_metrics *m)
{
	*m = s->m;
	m->worker_restarts = rt_driver_restarts(s->driver);
	m->workers_busy = rt_driver_busy(s->driver);
	count_starting(s, &m->workers_starting, &m->workers_pending);
	m->workers_starting -= m->workers_pending;
}

/* ---- stopping ---------------------------------------------------------------------- */

static void driver_stopped(void *ctx)
{
	gd_sched *s = ctx;
	if (s->stop_done)
		s->stop_done(s->stop_ctx);
}

void gd_sched_stop(gd_sched *s, double grace_s, void (*done)(void *ctx), void *ctx)
{
	if (s->stopping)
		return;
	s->stopping = 1;
	s->stop_done = done;
	s->stop_ctx = ctx;
	if (s->watch) {
		uv_close((uv_handle_t *)s->watch, (uv_close_cb)free);
		s->watch = NULL;
	}
	gd_log_msg(GD_LOG_INFO, "draining: running candidates have %.0f s to finish", grace_s);
	rt_driver_stop(s->driver, grace_s, driver_stopped, s);
}

void gd_sched_free(gd_sched *s)
{
	/* Work still running on the thread pool points into s: leave it to the
	 * process's exit. */
	if (!s || s->works > 0)
		return;
	while (s->jobs) {
		struct job *j = s->jobs;
		s->jobs = j->next;
		rt_jobrun_free(j->jr);
		json_decref(j->figures);
		free(j);
	}
	rt_driver_free(s->driver);
	rt_slurm_free(s->slurm);
	free(s);
}
