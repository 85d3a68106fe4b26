/*
 * pool.c - worker processes on a libuv loop (see pool.h).
 *
 * A slot holds one worker at a time.  Its three handles (process, stdin
 * pipe, stdout pipe) are closed together when the worker dies, and the slot
 * is refilled only after all three are closed, so a slot never mixes the
 * handles of two workers.  A one-second tick enforces the heartbeat, time
 * and memory limits and restarts empty slots.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/runtime/pool.h"

#define MAX_LINE (1024 * 1024)

enum slot_state { SLOT_EMPTY, SLOT_STARTING, SLOT_IDLE, SLOT_BUSY, SLOT_CLOSING };

struct slot {
	rt_pool *p;
	int index;
	enum slot_state state;
	uv_process_t proc;
	uv_pipe_t in, out;
	int open_handles;
	int pid;
	char *buf;
	size_t len;
	double last_seen, deadline;
	char kill_reason[GRAFT_ERRLEN + 100];
};

struct rt_pool {
	uv_loop_t *loop;
	rt_pool_opts o;
	rt_pool_cb cb;
	void *ctx;
	struct slot *slots;
	uv_timer_t tick, grace;
	int stopping, restarts, started, open_timers;
	void (*done)(void *ctx);
};

static double now_s(rt_pool *p)
{
	return (double)uv_now(p->loop) / 1000.0;
}

static void spawn(struct slot *s);

/* ---- ending a worker -------------------------------------------------------- */

static void maybe_finished(rt_pool *p);

static void handle_closed(uv_handle_t *h)
{
	struct slot *s = h->data;
	if (--s->open_handles > 0)
		return;
	s->state = SLOT_EMPTY;
	s->pid = 0;
	free(s->buf);
	s->buf = NULL;
	s->len = 0;
	maybe_finished(s->p);
}

static void close_slot(struct slot *s)
{
	if (s->state == SLOT_CLOSING || s->state == SLOT_EMPTY)
		return;
	s->state = SLOT_CLOSING;
	if (!uv_is_closing((uv_handle_t *)&s->in))
		uv_close((uv_handle_t *)&s->in, handle_closed);
	if (!uv_is_closing((uv_handle_t *)&s->out))
		uv_close((uv_handle_t *)&s->out, handle_closed);
}

/* Kills the worker's whole process group (it is a session leader). */
static void kill_slot(struct slot *s, const char *reason)
{
	if (!s->pid)
		return;
	if (!s->kill_reason[0])
		snprintf(s->kill_reason, sizeof(s->kill_reason), "%s", reason);
	kill(-s->pid, SIGKILL);
	kill(s->pid, SIGKILL);
}

static void on_exit_cb(uv_process_t *proc, int64_t status, int sig)
{
	struct slot *s = proc->data;
	rt_pool *p = s->p;
	char reason[sizeof(((struct slot *)0)->kill_reason)];
	int busy = s->state == SLOT_BUSY;

	/* Whatever else the worker started dies with it. */
	kill(-s->pid, SIGKILL);
	if (s->kill_reason[0])
		snprintf(reason, sizeof(reason), "%s", s->kill_reason);
	else if (sig)
		snprintf(reason, sizeof(reason), "the worker (pid %d) died of signal %d (%s)",
		         s->pid, sig, strsignal(sig));
	else
		snprintf(reason, sizeof(reason), "the worker (pid %d) exited with status %lld",
		         s->pid, (long long)status);
	close_slot(s);
	uv_close((uv_handle_t *)proc, handle_closed);
	if (!p->stopping)
		p->restarts++;
	if (busy && p->cb.lost)
		p->cb.lost(p, s->index, reason, p->ctx);
}

/* ---- reading lines ------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	(void)h;
	b->base = malloc(hint);
	b->len = b->base ? hint : 0;
}

static void on_line(struct slot *s, char *line, size_t len)
{
	rt_pool *p = s->p;
	char err[GRAFT_ERRLEN];
	proto_wmsg m;
	int rc = proto_wmsg_decode(line, len, &m, err, sizeof(err));

	s->last_seen = now_s(p);
	if (s->kill_reason[0]) {
		/* Being killed: what it still says is not believed (its task is
		 * reported lost when it exits). */
	} else if (rc) {
		char why[GRAFT_ERRLEN + 100];
		snprintf(why, sizeof(why), "the worker (pid %d) wrote a line that is not a valid "
		         "protocol message: %s", s->pid, err);
		kill_slot(s, why);
	} else if (m.type == PROTO_WMSG_READY) {
		if (s->state == SLOT_STARTING) {
			s->state = SLOT_IDLE;
			if (p->cb.idle && !p->stopping)
				p->cb.idle(p, s->index, p->ctx);
		}
	} else if (s->state == SLOT_BUSY && p->cb.line) {
		p->cb.line(p, s->index, &m, p->ctx);
	}
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct slot *s = st->data;

	if (n < 0) {
		free(b->base);
		/* EOF or an error: the exit callback reports the worker's end. */
		uv_read_stop(st);
		return;
	}
	char *nb = realloc(s->buf, s->len + (size_t)n + 1);
	if (!nb) {
		free(b->base);
		kill_slot(s, "out of memory reading the worker's output");
		return;
	}
	s->buf = nb;
	memcpy(s->buf + s->len, b->base, (size_t)n);
	s->len += (size_t)n;
	free(b->base);
	size_t start = 0;
	for (size_t i = 0; i < s->len; i++)
		if (s->buf[i] == '\n') {
			on_line(s, s->buf + start, i - start);
			start = i + 1;
			if (s->state == SLOT_CLOSING || !s->buf)
				return;
		}
	memmove(s->buf, s->buf + start, s->len - start);
	s->len -= start;
	if (s->len > MAX_LINE)
		kill_slot(s, "the worker wrote a line longer than 1 MB");
}

/* ---- starting a worker -------------------------------------------------------- */

static void spawn(struct slot *s)
{
	rt_pool *p = s->p;
	uv_stdio_container_t io[3];
	uv_process_options_t o;
	int rc;

	memset(&o, 0, sizeof(o));
	uv_pipe_init(p->loop, &s->in, 0);
	uv_pipe_init(p->loop, &s->out, 0);
	s->in.data = s->out.data = s->proc.data = s;
	s->open_handles = 2;
	io[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
	io[0].data.stream = (uv_stream_t *)&s->in;
	io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	io[1].data.stream = (uv_stream_t *)&s->out;
	io[2].flags = UV_INHERIT_FD;
	io[2].data.fd = 2;
	/* "{slot}" in an argument is this worker's index. */
	char *args[PROTO_MAX_ARGV + 8] = { 0 }, *own[PROTO_MAX_ARGV + 8] = { 0 };
	for (int i = 0; i < PROTO_MAX_ARGV + 7 && p->o.argv[i]; i++) {
		const char *a = p->o.argv[i], *at = strstr(a, "{slot}");
		args[i] = (char *)a;
		if (at && (own[i] = malloc(strlen(a) + 16)))
			sprintf(own[i], "%.*s%d%s", (int)(at - a), a, s->index, at + 6);
		if (own[i])
			args[i] = own[i];
	}
	o.file = args[0];
	o.args = args;
	o.stdio = io;
	o.stdio_count = 3;
	o.exit_cb = on_exit_cb;
	o.flags = UV_PROCESS_DETACHED; /* its own session: one kill reaches its group */
	s->kill_reason[0] = '\0';
	s->state = SLOT_STARTING;
	s->last_seen = now_s(p);
	rc = uv_spawn(p->loop, &s->proc, &o);
	for (int i = 0; i < PROTO_MAX_ARGV + 8; i++)
		free(own[i]);
	if (rc) {
		char why[600];
		snprintf(why, sizeof(why), "cannot start the worker '%.400s': %s", p->o.argv[0],
		         uv_strerror(rc));
		if (p->cb.problem)
			p->cb.problem(p, why, p->ctx);
		s->state = SLOT_CLOSING;
		uv_close((uv_handle_t *)&s->in, handle_closed);
		uv_close((uv_handle_t *)&s->out, handle_closed);
		return;
	}
	s->open_handles = 3;
	s->pid = s->proc.pid;
	uv_read_start((uv_stream_t *)&s->out, on_alloc, on_read);
}

/* ---- limits and restarts ------------------------------------------------------ */

static long rss_mb(int pid)
{
	char path[64];
	long pages = 0, resident = 0;
	snprintf(path, sizeof(path), "/proc/%d/statm", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
		resident = 0;
	fclose(f);
	return resident * (sysconf(_SC_PAGESIZE) / 1024) / 1024;
}

static void on_tick(uv_timer_t *t)
{
	rt_pool *p = t->data;
	double now = now_s(p);
	char why[200];

	for (int i = 0; i < p->o.workers; i++) {
		struct slot *s = &p->slots[i];
		if (s->state == SLOT_EMPTY && !p->stopping) {
			spawn(s);
			continue;
		}
		if (s->state != SLOT_BUSY && s->state != SLOT_STARTING)
			continue;
		if (s->state == SLOT_STARTING) {
			if (now - s->last_seen > p->o.start_s) {
				snprintf(why, sizeof(why), "the worker (pid %d) was not ready %.0f s after "
				         "its start", s->pid, now - s->last_seen);
				kill_slot(s, why);
			}
		} else if (now - s->last_seen > p->o.heartbeat_s) {
			snprintf(why, sizeof(why), "the worker (pid %d) sent no heartbeat for %.0f s",
			         s->pid, now - s->last_seen);
			kill_slot(s, why);
		} else if (s->state == SLOT_BUSY && now > s->deadline) {
			snprintf(why, sizeof(why), "the candidate exceeded its time limit; worker "
			         "(pid %d) killed", s->pid);
			kill_slot(s, why);
		} else if (s->state == SLOT_BUSY && p->o.memory_mb > 0) {
			long mb = rss_mb(s->pid);
			if (mb > p->o.memory_mb) {
				snprintf(why, sizeof(why), "the worker (pid %d) used %ld MB, over its "
				         "limit of %ld MB", s->pid, mb, p->o.memory_mb);
				kill_slot(s, why);
			}
		}
	}
}

rt_pool *rt_pool_new(uv_loop_t *loop, const rt_pool_opts *o, const rt_pool_cb *cb, void *ctx)
{
	rt_pool *p = calloc(1, sizeof(*p));
	if (!p || o->workers < 1 || !o->argv || !o->argv[0]) {
		free(p);
		return NULL;
	}
	p->slots = calloc((size_t)o->workers, sizeof(*p->slots));
	if (!p->slots) {
		free(p);
		return NULL;
	}
	p->loop = loop;
	p->o = *o;
	if (p->o.heartbeat_s <= 0)
		p->o.heartbeat_s = 120;
	if (p->o.start_s <= 0)
		p->o.start_s = p->o.heartbeat_s;
	p->cb = *cb;
	p->ctx = ctx;
	uv_timer_init(loop, &p->tick);
	uv_timer_init(loop, &p->grace);
	p->tick.data = p->grace.data = p;
	p->open_timers = 2;
	for (int i = 0; i < o->workers; i++) {
		p->slots[i].p = p;
		p->slots[i].index = i;
		spawn(&p->slots[i]);
	}
	uv_timer_start(&p->tick, on_tick, 1000, 1000);
	return p;
}

/* ---- tasks ------------------------------------------------------------------- */

static void on_written(uv_write_t *w, int status)
{
	(void)status; /* a dead worker is reported by its exit */
	free(w->data);
	free(w);
}

int rt_pool_send(rt_pool *p, int w, const char *line, double time_limit_s)
{
	if (w < 0 || w >= p->o.workers || p->slots[w].state != SLOT_IDLE ||
	    p->slots[w].kill_reason[0])
		return GRAFT_EINVAL;
	struct slot *s = &p->slots[w];
	size_t n = strlen(line);
	char *text = malloc(n);
	uv_write_t *req = malloc(sizeof(*req));
	if (!text || !req) {
		free(text);
		free(req);
		return GRAFT_ENOMEM;
	}
	memcpy(text, line, n);
	req->data = text;
	uv_buf_t b = uv_buf_init(text, (unsigned)n);
	if (uv_write(req, (uv_stream_t *)&s->in, &b, 1, on_written)) {
		free(text);
		free(req);
		return GRAFT_EINVAL;
	}
	s->state = SLOT_BUSY;
	s->last_seen = now_s(p);
	s->deadline = s->last_seen + time_limit_s;
	return 0;
}

void rt_pool_release(rt_pool *p, int w)
{
	struct slot *s = &p->slots[w];
	if (s->state != SLOT_BUSY || s->kill_reason[0])
		return;
	s->state = SLOT_IDLE;
	if (p->cb.idle && !p->stopping)
		p->cb.idle(p, w, p->ctx);
}

/* ---- stopping ------------------------------------------------------------------ */

static void timer_closed(uv_handle_t *h)
{
	rt_pool *p = h->data;
	p->open_timers--;
	maybe_finished(p);
}

static void maybe_finished(rt_pool *p)
{
	if (!p->stopping)
		return;
	for (int i = 0; i < p->o.workers; i++)
		if (p->slots[i].state != SLOT_EMPTY)
			return;
	if (p->open_timers == 2) {
		uv_close((uv_handle_t *)&p->tick, timer_closed);
		uv_close((uv_handle_t *)&p->grace, timer_closed);
		return;
	}
	if (p->open_timers > 0)
		return;
	void (*done)(void *) = p->done;
	void *ctx = p->ctx;
	free(p->slots);
	free(p);
	if (done)
		done(ctx);
}

static void on_grace(uv_timer_t *t)
{
	rt_pool *p = t->data;
	for (int i = 0; i < p->o.workers; i++)
		kill_slot(&p->slots[i], "stopped: the pool is shutting down");
}

void rt_pool_stop(rt_pool *p, double grace_s, void (*done)(void *ctx))
{
	p->stopping = 1;
	p->done = done;
	uv_timer_stop(&p->tick);
	for (int i = 0; i < p->o.workers; i++) {
		struct slot *s = &p->slots[i];
		/* End of input asks the worker to exit after its task. */
		if (s->state != SLOT_EMPTY && s->state != SLOT_CLOSING &&
		    !uv_is_closing((uv_handle_t *)&s->in))
			uv_close((uv_handle_t *)&s->in, handle_closed);
	}
	uv_timer_start(&p->grace, on_grace, (uint64_t)(grace_s * 1000), 0);
	maybe_finished(p);
}

int rt_pool_idle_worker(const rt_pool *p)
{
	for (int w = 0; !p->stopping && w < p->o.workers; w++)
		if (p->slots[w].state == SLOT_IDLE && !p->slots[w].kill_reason[0])
			return w;
	return -1;
}

int rt_pool_restarts(const rt_pool *p)
{
	return p->restarts;
}

int rt_pool_busy(const rt_pool *p, int w)
{
	return w >= 0 && w < p->o.workers && p->slots[w].state == SLOT_BUSY;
}

int rt_pool_pid(const rt_pool *p, int w)
{
	return w >= 0 && w < p->o.workers ? p->slots[w].pid : 0;
}

int rt_pool_size(const rt_pool *p)
{
	return p->o.workers;
}

int rt_pool_starting(const rt_pool *p, int w, double *for_s)
{
	if (w < 0 || w >= p->o.workers || p->slots[w].state != SLOT_STARTING)
		return 0;
	if (for_s)
		*for_s = now_s((rt_pool *)p) - p->slots[w].last_seen;
	return 1;
}
