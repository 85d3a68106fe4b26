/*
 * slurm.c - what Slurm says of graftd's worker jobs (see runtime.h): squeue,
 * run on the loop like any child, its lines kept per worker.
 *
 * A worker started with srun from outside an allocation is a job of its
 * own, named "<prefix><slot>"; while it waits in the queue squeue lists it
 * PENDING with the reason (Resources, PartitionConfig, ...), which is what a
 * person needs to see instead of a worker that is merely slow to start.
 * (Inside an allocation a worker is a job step, which squeue does not list
 * while it waits: its state stays unknown.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/runtime/runtime.h"

#define MAX_OUTPUT (1 << 20)

struct state {
	char state[32], reason[160];
	int known;
};

struct rt_slurm {
	uv_loop_t *loop;
	char prefix[128];
	int workers;
	struct state *of;
	uv_process_t proc;
	uv_pipe_t out;
	int running, open_handles, freeing, ok;
	char *buf;
	size_t len;
	uint64_t last_ms;
};

static void parse(rt_slurm *q);

/* The answer is read once squeue has exited and its output has ended
 * (libuv reports the two in either order). */
static void closed(uv_handle_t *h)
{
	rt_slurm *q = h->data;
	if (--q->open_handles > 0)
		return;
	q->running = 0;
	/* A failed squeue (slurmctld down) leaves what was known before; an
	 * empty answer is that none of ours is queued. */
	if (q->ok && !q->freeing && (q->buf || (q->buf = calloc(1, 1))))
		parse(q);
	if (q->freeing) {
		free(q->buf);
		free(q->of);
		free(q);
	}
}

/* Lines "NAME|STATE|REASON": the ones named prefix<slot> are ours. */
static void parse(rt_slurm *q)
{
	for (int w = 0; w < q->workers; w++)
		q->of[w].known = 0;
	char *save = NULL;
	q->buf[q->len] = '\0';
	for (char *line = strtok_r(q->buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t pl = strlen(q->prefix);
		char *bar = strchr(line, '|'), *bar2 = bar ? strchr(bar + 1, '|') : NULL, *end;
		if (!bar2 || strncmp(line, q->prefix, pl))
			continue;
		long w = strtol(line + pl, &end, 10);
		if (end != bar || w < 0 || w >= q->workers)
			continue;
		struct state *st = &q->of[w];
		snprintf(st->state, sizeof(st->state), "%.*s", (int)(bar2 - bar - 1), bar + 1);
		snprintf(st->reason, sizeof(st->reason), "%s", bar2 + 1);
		st->known = 1;
	}
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	(void)h;
	b->base = malloc(hint);
	b->len = b->base ? hint : 0;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	rt_slurm *q = st->data;
	if (n > 0 && q->len + (size_t)n < MAX_OUTPUT) {
		char *nb = realloc(q->buf, q->len + (size_t)n + 1);
		if (nb) {
			q->buf = nb;
			memcpy(q->buf + q->len, b->base, (size_t)n);
			q->len += (size_t)n;
		}
	}
	free(b->base);
	if (n < 0 && !uv_is_closing((uv_handle_t *)st))
		uv_close((uv_handle_t *)st, closed);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	rt_slurm *q = p->data;
	q->ok = status == 0 && sig == 0;
	uv_close((uv_handle_t *)p, closed);
}

rt_slurm *rt_slurm_new(uv_loop_t *loop, const char *prefix, int workers)
{
	rt_slurm *q = calloc(1, sizeof(*q));
	if (!q || !(q->of = calloc((size_t)(workers > 0 ? workers : 1), sizeof(*q->of)))) {
		free(q);
		return NULL;
	}
	q->loop = loop;
	q->workers = workers;
	snprintf(q->prefix, sizeof(q->prefix), "%s", prefix);
	return q;
}

void rt_slurm_poll(rt_slurm *q)
{
	uint64_t now = uv_now(q->loop);
	if (q->running || q->freeing || (q->last_ms && now - q->last_ms < 2000))
		return;
	q->last_ms = now;
	q->ok = 0;
	free(q->buf);
	q->buf = NULL;
	q->len = 0;
	char *argv[] = { "squeue", "-h", "-t", "PENDING,CONFIGURING,RUNNING", "-o", "%j|%T|%r",
	                 NULL };
	uv_stdio_container_t io[3] = {
		{ .flags = UV_IGNORE },
		{ .flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&q->out },
		{ .flags = UV_IGNORE },
	};
	uv_process_options_t o = { .file = argv[0], .args = argv, .stdio = io, .stdio_count = 3,
	                           .exit_cb = on_exit_cb };
	uv_pipe_init(q->loop, &q->out, 0);
	q->out.data = q->proc.data = q;
	if (uv_spawn(q->loop, &q->proc, &o)) {
		q->open_handles = 1;
		q->running = 1;
		uv_close((uv_handle_t *)&q->out, closed);
		return;
	}
	q->open_handles = 2;
	q->running = 1;
	uv_read_start((uv_stream_t *)&q->out, on_alloc, on_read);
}

int rt_slurm_state(const rt_slurm *q, int w, char *state, size_t n, char *reason, size_t rn)
{
	if (!q || w < 0 || w >= q->workers || !q->of[w].known)
		return 1;
	snprintf(state, n, "%s", q->of[w].state);
	snprintf(reason, rn, "%s", q->of[w].reason);
	return 0;
}

void rt_slurm_free(rt_slurm *q)
{
	if (!q)
		return;
	if (q->running) {
		q->freeing = 1;
		return;
	}
	free(q->buf);
	free(q->of);
	free(q);
}
