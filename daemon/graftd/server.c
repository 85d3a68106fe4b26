/*
 * server.c - graftd's HTTP server on a Unix socket, and on a TCP port when
 * asked (see graftd.h).
 *
 * A connection is freed only when its handle is closed and no handler still
 * owes it an answer, so a late reply never touches freed memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/graftd/graftd.h"

const double gd_server_buckets[GD_SERVER_NBUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
};

struct gd_conn {
	union {
		uv_stream_t stream;
		uv_pipe_t pipe;
		uv_tcp_t tcp;
	} h;
	int on_tcp;              /* came in on the TCP listener: the token applies */
	uv_timer_t timer;
	gd_server *s;
	proto_http *http;
	char *in;                /* bytes read, not yet parsed */
	size_t in_len;
	int handles;             /* open libuv handles: 2, then 0 when closed */
	int busy;                /* a handler owes an answer */
	int closing, keep_alive, requests;
	int eof;                 /* the client will send nothing more */
	int writing;             /* answers queued, not yet written */
	struct stream *stream;   /* a file being sent, or NULL */
	uint64_t request_done;   /* uv_now when the request was whole */
	struct gd_conn *prev, *next;
};

struct gd_server {
	uv_loop_t *loop;
	uv_pipe_t listener;
	uv_tcp_t tcp;            /* the optional TCP listener */
	int tcp_open;
	char tcp_host[128];      /* its address as given */
	char token[GD_SERVER_TOKEN_MAX + 1]; /* "" : none required */
	gd_server_handler handler;
	void *ctx;
	gd_conn *conns;
	gd_server_stats stats;
	int closing, listener_open;
	void (*done)(void *);
	void *done_ctx;
};

static void process(gd_conn *c);
static void on_timeout(uv_timer_t *t);

/* ---- closing ------------------------------------------------------------------ */

static void maybe_done(gd_server *s)
{
	if (s->closing && !s->conns && !s->listener_open && !s->tcp_open && s->done) {
		void (*done)(void *) = s->done;
		void *ctx = s->done_ctx;
		s->done = NULL;
		free(s);
		done(ctx);
	}
}

static void conn_free_if_idle(gd_conn *c)
{
	if (c->handles > 0 || c->busy || c->stream)
		return;
	gd_server *s = c->s;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->stats.connections--;
	proto_http_free(c->http);
	free(c->in);
	free(c);
	maybe_done(s);
}

static void conn_handle_closed(uv_handle_t *h)
{
	gd_conn *c = h->data;
	c->handles--;
	conn_free_if_idle(c);
}

static void conn_close(gd_conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	uv_close((uv_handle_t *)&c->h, conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

/* ---- writing -------------------------------------------------------------------- */

/* An answer is out: close, or go on to the next request.  Reading the next
 * request only now (not from gd_server_reply) keeps one answer in flight per
 * connection, so a client that pipelines without reading cannot pile up
 * answers, and a run of pipelined requests does not recurse. */
static void on_written(uv_write_t *w, int status)
{
	gd_conn *c = w->data;
	free(w);
	c->writing--;
	if (c->closing)
		return;
	if (status < 0 || !c->keep_alive || c->requests >= GD_SERVER_MAX_REQUESTS)
		conn_close(c);
	else
		process(c); /* closes when the client has said all it will */
}

static void observe(gd_server *s, double seconds, int status)
{
	s->stats.requests++;
	s->stats.errors += status >= 400;
	s->stats.latency_sum += seconds;
	for (int i = 0; i < GD_SERVER_NBUCKETS; i++)
		if (seconds <= gd_server_buckets[i])
			s->stats.bucket[i]++;
}

void gd_server_reply(gd_conn *c, int status, const char *content_type, const char *body,
                     size_t len)
{
	c->busy = 0;
	if (c->closing) {
		conn_free_if_idle(c);
		return;
	}
	observe(c->s, (double)(uv_now(c->s->loop) - c->request_done) / 1000.0, status);
	c->requests++;
	size_t n;
	int keep = c->keep_alive && c->requests < GD_SERVER_MAX_REQUESTS;
	char *r = proto_http_response(status, content_type, body, len, keep, &n);
	uv_write_t *w = malloc(sizeof(*w) + n);
	if (!r || !w) {
		free(r);
		free(w);
		conn_close(c);
		return;
	}
	/* The request and its buffer live in one allocation, freed when written. */
	memcpy(w + 1, r, n);
	free(r);
	w->data = c;
	uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned)n);
	if (uv_write(w, (uv_stream_t *)&c->h, &b, 1, on_written)) {
		free(w);
		conn_close(c);
		return;
	}
	c->writing++;
	uv_timer_start(&c->timer, on_timeout, GD_SERVER_IDLE_MS, 0);
}

void gd_server_reply_error(gd_conn *c, int status, const char *code, const char *message,
                           const char *field, int line, int column)
{
	json_t *e = json_pack("{s:s, s:s}", "code", code, "message", message);
	if (field && *field)
		json_object_set_new(e, "field", json_string(field));
	if (line > 0) {
		json_object_set_new(e, "line", json_integer(line));
		json_object_set_new(e, "column", json_integer(column));
	}
	json_t *o = json_pack("{s:o}", "error", e);
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	gd_server_reply(c, status, "application/json", text ? text : "{}", text ? strlen(text) : 2);
	free(text);
}

/* ---- files, streamed ----------------------------------------------------------- */

/* A file answer: opened, measured and read in chunks on libuv's thread
 * pool, each chunk written before the next is read, so the loop never
 * waits on the disk and holds one chunk, whatever the file's size. */
#define STREAM_CHUNK (256 * 1024)

struct stream {
	gd_conn *c;
	uv_fs_t fs;
	uv_file fd;
	uint64_t size, sent;
	int status;
	char content_type[64];
	char head[PROTO_HTTP_HEAD_MAX];
	char buf[STREAM_CHUNK];
	uv_write_t w;
};

static void stream_read(struct stream *st);

static void stream_closed(uv_fs_t *req)
{
	struct stream *st = req->data;
	gd_conn *c = st->c;
	uv_fs_req_cleanup(req);
	c->stream = NULL;
	free(st);
	conn_free_if_idle(c);
}

/* Ends the stream; ok: the whole file went out (go on with the next
 * request, as after any answer); else the connection is closed, since a
 * part-sent answer cannot be taken back. */
static void stream_end(struct stream *st, int ok)
{
	gd_conn *c = st->c;
	if (!ok)
		conn_close(c);
	c->writing--;
	if (ok && !c->closing) {
		if (!c->keep_alive || c->requests >= GD_SERVER_MAX_REQUESTS)
			conn_close(c);
		else
			process(c);
	}
	if (st->fd >= 0)
		uv_fs_close(c->s->loop, &st->fs, st->fd, stream_closed);
	else
		stream_closed(&st->fs);
}

static void stream_written(uv_write_t *w, int status)
{
	struct stream *st = w->data;
	if (status < 0 || st->c->closing) {
		stream_end(st, 0);
		return;
	}
	uv_timer_start(&st->c->timer, on_timeout, GD_SERVER_IDLE_MS, 0);
	if (st->sent >= st->size)
		stream_end(st, 1);
	else
		stream_read(st);
}

static void stream_send(struct stream *st, char *data, size_t n)
{
	uv_buf_t b = uv_buf_init(data, (unsigned)n);
	st->w.data = st;
	if (uv_write(&st->w, (uv_stream_t *)&st->c->h, &b, 1, stream_written))
		stream_end(st, 0);
}

static void stream_got(uv_fs_t *req)
{
	struct stream *st = req->data;
	ssize_t n = req->result;
	uv_fs_req_cleanup(req);
	if (n <= 0 || st->c->closing) { /* the file shrank or failed under us */
		stream_end(st, 0);
		return;
	}
	st->sent += (uint64_t)n;
	stream_send(st, st->buf, (size_t)n);
}

static void stream_read(struct stream *st)
{
	uint64_t left = st->size - st->sent;
	uv_buf_t b = uv_buf_init(st->buf, left < STREAM_CHUNK ? (unsigned)left : STREAM_CHUNK);
	st->fs.data = st;
	if (uv_fs_read(st->c->s->loop, &st->fs, st->fd, &b, 1, (int64_t)st->sent, stream_got))
		stream_end(st, 0);
}

/* The file is open and measured: the answer begins. */
static void stream_start(struct stream *st)
{
	gd_conn *c = st->c;
	c->busy = 0;
	observe(c->s, (double)(uv_now(c->s->loop) - c->request_done) / 1000.0, st->status);
	c->requests++;
	int keep = c->keep_alive && c->requests < GD_SERVER_MAX_REQUESTS;
	c->keep_alive = keep;
	int n = proto_http_head(st->status, st->content_type, st->size, keep, st->head,
	                        sizeof(st->head));
	c->writing++;
	if (n < 0) {
		stream_end(st, 0);
		return;
	}
	stream_send(st, st->head, (size_t)n);
}

static void stream_stat(uv_fs_t *req)
{
	struct stream *st = req->data;
	gd_conn *c = st->c;
	int ok = req->result == 0 && S_ISREG(req->statbuf.st_mode);
	st->size = req->statbuf.st_size;
	uv_fs_req_cleanup(req);
	if (c->closing) {
		c->busy = 0;
		uv_fs_close(c->s->loop, &st->fs, st->fd, stream_closed);
		return;
	}
	if (!ok) {
		uv_fs_close(c->s->loop, &st->fs, st->fd, NULL);
		st->fd = -1;
		c->stream = NULL;
		gd_server_reply_error(c, 404, "not_found", "the file is not a regular file", NULL, 0, 0);
		free(st);
		return;
	}
	stream_start(st);
}

static void stream_opened(uv_fs_t *req)
{
	struct stream *st = req->data;
	gd_conn *c = st->c;
	st->fd = (uv_file)req->result;
	uv_fs_req_cleanup(req);
	if (st->fd < 0) {
		c->stream = NULL;
		free(st);
		if (c->closing) {
			c->busy = 0;
			conn_free_if_idle(c);
		} else {
			gd_server_reply_error(c, 404, "not_found", "the file is gone", NULL, 0, 0);
		}
		return;
	}
	st->fs.data = st;
	if (uv_fs_fstat(c->s->loop, &st->fs, st->fd, stream_stat)) {
		uv_fs_close(c->s->loop, &st->fs, st->fd, NULL);
		c->stream = NULL;
		free(st);
		gd_server_reply_error(c, 500, "io", "cannot read the file", NULL, 0, 0);
	}
}

void gd_server_reply_file(gd_conn *c, int status, const char *content_type, const char *path)
{
	struct stream *st = calloc(1, sizeof(*st));
	if (!st) {
		gd_server_reply_error(c, 500, "no_memory", "out of memory", NULL, 0, 0);
		return;
	}
	st->c = c;
	st->fd = -1;
	st->status = status;
	snprintf(st->content_type, sizeof(st->content_type), "%s", content_type);
	st->fs.data = st;
	c->stream = st;
	if (uv_fs_open(c->s->loop, &st->fs, path, O_RDONLY | O_CLOEXEC, 0, stream_opened)) {
		c->stream = NULL;
		free(st);
		gd_server_reply_error(c, 404, "not_found", "the file is gone", NULL, 0, 0);
	}
}

/* ---- reading ------------------------------------------------------------------- */

static void on_timeout(uv_timer_t *t)
{
	gd_conn *c = t->data;
	if (c->closing)
		return;
	if (c->writing) { /* a client that does not read its answer */
		conn_close(c);
		return;
	}
	if (c->busy)
		return;
	if (proto_http_in_request(c->http) || c->in_len) {
		uv_read_stop((uv_stream_t *)&c->h);
		c->eof = 1;
		c->keep_alive = 0;
		c->busy = 1;
		c->request_done = uv_now(c->s->loop);
		gd_server_reply_error(c, 408, "timeout", "the request did not arrive in time", NULL,
		                      0, 0);
	} else {
		conn_close(c);
	}
}

static void arm_timer(gd_conn *c)
{
	uv_timer_start(&c->timer, on_timeout,
	               proto_http_in_request(c->http) || c->in_len ? GD_SERVER_REQUEST_MS
	                                                           : GD_SERVER_IDLE_MS, 0);
}

/* Parses what has been read; hands a whole request to the handler. */
/* Compares in time that does not depend on where the strings differ. */
static int same_secret(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = la != lb;
	for (size_t i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

/* The token in an Authorization: Bearer header, or in ?token= (a browser
 * opening the dashboard's URL has no other way to send it). */
static int authorized(const gd_server *s, const proto_http_req *req)
{
	char q[GD_SERVER_TOKEN_MAX + 2];
	const char *auth = req->authorization;
	if (!strncasecmp(auth, "Bearer ", 7) && same_secret(auth + 7, s->token))
		return 1;
	return proto_http_query(req, "token", q, sizeof(q)) && same_secret(q, s->token);
}

/* The dashboard's page and files hold no data (they ask the API for it, with
 * the token), and a browser fetches a page's script and style sheet without
 * it: they are served to anyone who reaches the port. */
static int public_file(const proto_http_req *req)
{
	return !strcmp(req->method, "GET") &&
	       (!strcmp(req->path, "/") || !strncmp(req->path, "/dashboard/", 11));
}

static void process(gd_conn *c)
{
	while (!c->busy && !c->writing && !c->closing && c->in_len > 0) {
		proto_http_req *req;
		int status;
		char err[300];
		long used = proto_http_feed(c->http, c->in, c->in_len, &req, &status, err,
		                            sizeof(err));
		if (used < 0) {
			/* The stream cannot be resynchronised: answer, read no more, close. */
			uv_read_stop((uv_stream_t *)&c->h);
			c->eof = 1;
			c->keep_alive = 0;
			c->busy = 1;
			c->request_done = uv_now(c->s->loop);
			c->in_len = 0;
			gd_server_reply_error(c, status, "bad_request", err, NULL, 0, 0);
			return;
		}
		memmove(c->in, c->in + used, c->in_len - (size_t)used);
		c->in_len -= (size_t)used;
		if (!req)
			break;
		c->busy = 1;
		c->keep_alive = req->keep_alive;
		c->request_done = uv_now(c->s->loop);
		uv_timer_stop(&c->timer);
		if (c->on_tcp && c->s->token[0] && !public_file(req) && !authorized(c->s, req))
			gd_server_reply_error(c, 401, "unauthorized", "this port needs graftd's token: "
			                      "an 'Authorization: Bearer TOKEN' header or ?token=TOKEN",
			                      NULL, 0, 0);
		else
			c->s->handler(c, req, c->s->ctx);
	}
	if (c->closing || c->busy || c->writing)
		return;
	if (c->eof) /* nothing more will come: what is left is no request */
		conn_close(c);
	else
		arm_timer(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	(void)h;
	b->base = malloc(hint);
	b->len = b->base ? hint : 0;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	gd_conn *c = st->data;
	if (n < 0) {
		free(b->base);
		/* A client that half-closes after its requests still gets every
		 * answer: the connection closes once the last is written. */
		uv_read_stop(st);
		c->eof = 1;
		if (!c->busy && !c->writing)
			process(c);
		return;
	}
	if (n > 0 && !c->closing) {
		/* While a request is being answered, what follows waits here; a client
		 * that floods meanwhile is cut off at the largest request we accept. */
		if (c->in_len + (size_t)n > PROTO_HTTP_MAX_HEAD + PROTO_HTTP_MAX_BODY + 65536) {
			free(b->base);
			conn_close(c);
			return;
		}
		char *in = realloc(c->in, c->in_len + (size_t)n);
		if (!in) {
			free(b->base);
			conn_close(c);
			return;
		}
		c->in = in;
		memcpy(c->in + c->in_len, b->base, (size_t)n);
		c->in_len += (size_t)n;
		process(c);
	}
	free(b->base);
}

static void free_handle(uv_handle_t *h)
{
	free(h);
}

/* A stream handle of the listener's kind, initialised. */
static void stream_init(gd_server *s, int tcp, void *h)
{
	if (tcp)
		uv_tcp_init(s->loop, h);
	else
		uv_pipe_init(s->loop, h, 0);
}

static void accept_on(uv_stream_t *l, int status, int tcp)
{
	gd_server *s = l->data;
	if (status < 0)
		return;
	gd_conn *c = calloc(1, sizeof(*c));
	if (!c || !(c->http = proto_http_new())) {
		/* Out of memory: accept and close at once (libuv stops listening
		 * until a pending connection is accepted). */
		free(c);
		void *tmp = malloc(tcp ? sizeof(uv_tcp_t) : sizeof(uv_pipe_t));
		if (tmp) {
			stream_init(s, tcp, tmp);
			uv_accept(l, tmp);
			uv_close(tmp, free_handle);
		}
		return;
	}
	c->s = s;
	c->on_tcp = tcp;
	stream_init(s, tcp, &c->h);
	uv_timer_init(s->loop, &c->timer);
	c->h.stream.data = c->timer.data = c;
	c->handles = 2;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->stats.connections++;
	if (uv_accept(l, (uv_stream_t *)&c->h) || s->stats.connections > GD_SERVER_MAX_CONNS) {
		conn_close(c);
		return;
	}
	uv_read_start((uv_stream_t *)&c->h, on_alloc, on_read);
	arm_timer(c);
}

static void on_connection(uv_stream_t *l, int status)
{
	accept_on(l, status, 0);
}

static void on_tcp_connection(uv_stream_t *l, int status)
{
	accept_on(l, status, 1);
}

/* Whether addr is a loopback address (127.0.0.0/8 or ::1). */
static int loopback(const struct sockaddr *a)
{
	if (a->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
	return a->sa_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
}

int gd_server_listen_tcp(gd_server *s, const char *where, const char *token, char *err,
                         size_t errlen)
{
	char host[128];
	struct sockaddr_storage a;
	const char *colon = strrchr(where, ':');
	char *end;
	long port = colon ? strtol(colon + 1, &end, 10) : -1;
	int rc;

	if (!colon || colon == where || !colon[1] || *end || port < 0 || port > 65535 ||
	    (size_t)(colon - where) >= sizeof(host)) {
		snprintf(err, errlen, "%s: expected HOST:PORT, such as 127.0.0.1:8080", where);
		return GRAFT_EINVAL;
	}
	/* [::1]:8080 holds an IPv6 address in brackets. */
	int v6 = where[0] == '[' && colon[-1] == ']';
	snprintf(host, sizeof(host), "%.*s", (int)(colon - where) - 2 * v6, where + v6);
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&a) &&
	    uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&a)) {
		snprintf(err, errlen, "%s: '%s' is not an IP address", where, host);
		return GRAFT_EINVAL;
	}
	if (token && strlen(token) > GD_SERVER_TOKEN_MAX) {
		snprintf(err, errlen, "the token is longer than %d characters", GD_SERVER_TOKEN_MAX);
		return GRAFT_EINVAL;
	}
	if (!loopback((struct sockaddr *)&a) && !(token && *token)) {
		snprintf(err, errlen, "%s: a port on an address other machines reach needs a "
		         "token (--http-token, or http_token in the config): the API can submit "
		         "and cancel jobs", where);
		return GRAFT_EINVAL;
	}
	snprintf(s->token, sizeof(s->token), "%s", token ? token : "");
	snprintf(s->tcp_host, sizeof(s->tcp_host), "%s", host);
	uv_tcp_init(s->loop, &s->tcp);
	s->tcp.data = s;
	s->tcp_open = 1;
	rc = uv_tcp_bind(&s->tcp, (struct sockaddr *)&a, 0);
	if (!rc)
		rc = uv_listen((uv_stream_t *)&s->tcp, 128, on_tcp_connection);
	if (rc) {
		snprintf(err, errlen, "%s: %s", where, uv_strerror(rc));
		uv_close((uv_handle_t *)&s->tcp, NULL);
		s->tcp_open = 0;
		return GRAFT_EIO;
	}
	return 0;
}

const char *gd_server_tcp_host(const gd_server *s)
{
	return s->tcp_open ? s->tcp_host : NULL;
}

int gd_server_tcp_token(const gd_server *s)
{
	return s->token[0] != '\0';
}

int gd_server_tcp_port(const gd_server *s)
{
	struct sockaddr_storage a;
	int len = sizeof(a);
	if (!s->tcp_open || uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&a, &len))
		return 0;
	return ntohs(a.ss_family == AF_INET ? ((struct sockaddr_in *)&a)->sin_port
	                                    : ((struct sockaddr_in6 *)&a)->sin6_port);
}

gd_server *gd_server_new(uv_loop_t *loop, const char *path, int mode, gd_server_handler h,
                         void *ctx, char *err, size_t errlen)
{
	gd_server *s = calloc(1, sizeof(*s));
	int rc;
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->loop = loop;
	s->handler = h;
	s->ctx = ctx;
	uv_pipe_init(loop, &s->listener, 0);
	s->listener.data = s;
	s->listener_open = 1;
	unlink(path); /* a socket left by a daemon that died */
	/* Created owner-only from the start: no window in which others connect. */
	mode_t old = umask(0777 & ~mode);
	rc = uv_pipe_bind(&s->listener, path);
	umask(old);
	if (!rc)
		rc = chmod(path, (mode_t)mode) ? uv_translate_sys_error(errno) : 0;
	if (!rc)
		rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
	if (rc) {
		snprintf(err, errlen, "%s: %s", path, uv_strerror(rc));
		uv_close((uv_handle_t *)&s->listener, NULL);
		uv_run(loop, UV_RUN_NOWAIT);
		free(s);
		return NULL;
	}
	return s;
}

void gd_server_get_stats(const gd_server *s, gd_server_stats *out)
{
	*out = s->stats;
}

static void listener_closed(uv_handle_t *h)
{
	gd_server *s = h->data;
	if (h == (uv_handle_t *)&s->tcp)
		s->tcp_open = 0;
	else
		s->listener_open = 0;
	maybe_done(s);
}

void gd_server_close(gd_server *s, void (*done)(void *ctx), void *ctx)
{
	s->closing = 1;
	s->done = done;
	s->done_ctx = ctx;
	uv_close((uv_handle_t *)&s->listener, listener_closed);
	if (s->tcp_open)
		uv_close((uv_handle_t *)&s->tcp, listener_closed);
	for (gd_conn *c = s->conns, *next; c; c = next) {
		next = c->next;
		conn_close(c); /* one still owed an answer is freed when it comes */
	}
}
