/*
 * http.h - HTTP/1.1 requests in, responses out, for graftd's API.  Parsing
 * is http-parser's (the parser libuv servers were built on), with graft's
 * limits on top: the request line and headers, the body, and the URL each
 * have a maximum, and every refusal carries the status to answer with and
 * a sentence saying why.  One proto_http reads one connection's byte stream,
 * request after request (keep-alive and pipelining).
 */
#ifndef GRAFT_PROTO_HTTP_H
#define GRAFT_PROTO_HTTP_H

#include <stddef.h>

#define PROTO_HTTP_MAX_HEAD 16384          /* request line + headers, bytes */
#define PROTO_HTTP_MAX_BODY (1024 * 1024)  /* a job spec is at most 1 MB */
#define PROTO_HTTP_MAX_URL 2048

typedef struct proto_http_req {
	char method[16];
	char path[PROTO_HTTP_MAX_URL];   /* decoded of nothing: as sent */
	char query[PROTO_HTTP_MAX_URL];  /* after '?', "" if none */
	char content_type[128];
	char authorization[256];         /* the Authorization header, "" if none */
	char *body;                      /* NUL-terminated, body_len bytes */
	size_t body_len;
	int keep_alive;
} proto_http_req;

typedef struct proto_http proto_http;

proto_http *proto_http_new(void);
void proto_http_free(proto_http *h);

/* Feeds len bytes of the stream.  Returns how many were consumed; when a
 * whole request has been read, *req points at it (valid until the next
 * feed) and the rest of data is left unconsumed until proto_http_feed is
 * called again.  On bad input returns -1 with *status (400, 413, 414, 431,
 * 505) and a sentence in err; the connection must then be closed after the
 * answer, since the stream cannot be resynchronised. */
long proto_http_feed(proto_http *h, const char *data, size_t len, proto_http_req **req,
                     int *status, char *err, size_t errlen);

/* Whether bytes of an unfinished request have been read. */
int proto_http_in_request(const proto_http *h);

/* The value of key in the query string (no %-decoding needed for graft's
 * parameters), or NULL; copies into out. */
const char *proto_http_query(const proto_http_req *r, const char *key, char *out,
                             size_t outlen);

/* A response's status line and headers for a body of body_len bytes, in
 * out (PROTO_HTTP_HEAD_MAX bytes are enough): its length, or GRAFT_ERANGE
 * when it does not fit. */
#define PROTO_HTTP_HEAD_MAX 512
int proto_http_head(int status, const char *content_type, size_t body_len, int keep_alive,
                    char *out, size_t outlen);
/* A whole response, malloc'd (*out_len bytes); NULL when out of memory. */
char *proto_http_response(int status, const char *content_type, const char *body,
                          size_t body_len, int keep_alive, size_t *out_len);
const char *proto_http_reason(int status);

#endif
