/*
 * server.h - graftd's HTTP/1.1 server on a Unix socket (libuv).  Requests
 * are read with proto/http.h's limits; each connection handles one request
 * at a time (pipelined ones wait their turn), may keep alive for up to
 * SERVER_MAX_REQUESTS requests, and is closed when idle or too slow.  A
 * handler may answer later (server_reply from any loop callback); a client
 * that has gone by then is simply not written to.
 */
#ifndef GRAFT_SERVER_H
#define GRAFT_SERVER_H

#include <stddef.h>
#include <uv.h>

#include "proto/http.h"

#define SERVER_MAX_REQUESTS 1000     /* per connection */
#define SERVER_IDLE_MS 30000         /* a connection silent this long is closed */
#define SERVER_REQUEST_MS 10000      /* a request must arrive whole within this */
#define SERVER_MAX_CONNS 512

typedef struct server server;
typedef struct conn conn;

typedef void (*server_handler)(conn *c, const proto_http_req *req, void *ctx);

/* Listens on path (an existing socket file is replaced), with the socket
 * file's mode set to mode (0600: only the owner may connect). */
server *server_new(uv_loop_t *loop, const char *path, int mode, server_handler h,
                   void *ctx, char *err, size_t errlen);

/* Answers the request c is handling. */
void server_reply(conn *c, int status, const char *content_type, const char *body,
                  size_t len);
/* Answers with the contents of the file at path, streamed from the disk
 * off the loop, one chunk in memory at a time; a file that cannot be opened
 * is a 404 JSON error. */
void server_reply_file(conn *c, int status, const char *content_type, const char *path);
/* The same with a JSON error body {"error": {...}}; field may be NULL,
 * line/column 0 when not known. */
void server_reply_error(conn *c, int status, const char *code, const char *message,
                        const char *field, int line, int column);

/* Request latency, from a request's last byte to its answer. */
#define SERVER_NBUCKETS 12
extern const double server_buckets[SERVER_NBUCKETS]; /* upper bounds, seconds */
typedef struct server_stats {
	long requests, errors;                  /* errors: 4xx and 5xx answers */
	long bucket[SERVER_NBUCKETS];           /* cumulative, as Prometheus wants */
	double latency_sum;
	int connections;
} server_stats;
void server_get_stats(const server *s, server_stats *out);

/* Stops listening and closes every connection; done fires when all are closed. */
void server_close(server *s, void (*done)(void *ctx), void *ctx);

#endif
