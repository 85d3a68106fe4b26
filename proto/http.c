/*
 * http.c - HTTP/1.1 request parsing with limits (see http.h).
 */
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nn/err.h"
#include "proto/http.h"

enum header { H_NONE, H_CONTENT_TYPE, H_AUTHORIZATION, H_OTHER };

struct proto_http {
	http_parser p;
	http_parser_settings s;
	proto_http_req req;
	size_t body_cap, head_bytes;
	char url[PROTO_HTTP_MAX_URL];
	size_t url_len;
	char field[64];
	size_t field_len;
	enum header current;
	int content_types;        /* Content-Type headers seen in this request */
	int authorizations;       /* and Authorization headers */
	int in_request, complete;
	int status;               /* set by a callback that refuses */
	char why[200];
};

static int refuse(proto_http *h, int status, const char *why)
{
	h->status = status;
	snprintf(h->why, sizeof(h->why), "%s", why);
	return -1;
}

static int count_head(proto_http *h, size_t n)
{
	h->head_bytes += n;
	if (h->head_bytes > PROTO_HTTP_MAX_HEAD) {
		char why[120];
		snprintf(why, sizeof(why), "the request line and headers exceed %d bytes",
		         PROTO_HTTP_MAX_HEAD);
		return refuse(h, 431, why);
	}
	return 0;
}

static int on_begin(http_parser *p)
{
	proto_http *h = p->data;
	free(h->req.body);
	memset(&h->req, 0, sizeof(h->req));
	h->body_cap = h->head_bytes = h->url_len = h->field_len = 0;
	h->content_types = h->authorizations = 0;
	h->in_request = 1;
	h->complete = 0;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
	proto_http *h = p->data;
	if (count_head(h, n))
		return -1;
	if (h->url_len + n >= sizeof(h->url))
		return refuse(h, 414, "the URL is longer than 2048 bytes");
	memcpy(h->url + h->url_len, at, n);
	h->url_len += n;
	return 0;
}

static int on_field(http_parser *p, const char *at, size_t n)
{
	proto_http *h = p->data;
	if (count_head(h, n))
		return -1;
	if (h->current != H_NONE) /* a new field starts */
		h->field_len = 0, h->current = H_NONE;
	size_t room = sizeof(h->field) - 1 - h->field_len;
	size_t k = n < room ? n : room;
	memcpy(h->field + h->field_len, at, k);
	h->field_len += k;
	h->field[h->field_len] = '\0';
	return 0;
}

static int on_value(http_parser *p, const char *at, size_t n)
{
	proto_http *h = p->data;
	if (count_head(h, n))
		return -1;
	if (h->current == H_NONE) {
		h->current = !strcasecmp(h->field, "content-type") ? H_CONTENT_TYPE
		             : !strcasecmp(h->field, "authorization") ? H_AUTHORIZATION : H_OTHER;
		/* Two would be read as one value glued together (found by fuzzing). */
		if (h->current == H_CONTENT_TYPE && h->content_types++)
			return refuse(h, 400, "Content-Type is given more than once");
		if (h->current == H_AUTHORIZATION && h->authorizations++)
			return refuse(h, 400, "Authorization is given more than once");
	}
	char *dst = h->current == H_CONTENT_TYPE ? h->req.content_type
	            : h->current == H_AUTHORIZATION ? h->req.authorization : NULL;
	size_t cap = h->current == H_CONTENT_TYPE ? sizeof(h->req.content_type)
	             : sizeof(h->req.authorization);
	if (dst) {
		size_t have = strlen(dst), room = cap - 1 - have, k = n < room ? n : room;
		memcpy(dst + have, at, k);
		dst[have + k] = '\0';
	}
	return 0;
}

static int on_headers(http_parser *p)
{
	proto_http *h = p->data;
	struct http_parser_url u;

	if (p->http_major != 1)
		return refuse(h, 505, "only HTTP/1.x is spoken here");
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > PROTO_HTTP_MAX_BODY) {
		char why[120];
		snprintf(why, sizeof(why), "the body (%llu bytes) exceeds the limit of %d bytes",
		         (unsigned long long)p->content_length, PROTO_HTTP_MAX_BODY);
		return refuse(h, 413, why);
	}
	snprintf(h->req.method, sizeof(h->req.method), "%s",
	         http_method_str((enum http_method)p->method));
	http_parser_url_init(&u);
	if (http_parser_parse_url(h->url, h->url_len, 0, &u) || !(u.field_set & (1 << UF_PATH)))
		return refuse(h, 400, "the request target is not a valid path");
	snprintf(h->req.path, sizeof(h->req.path), "%.*s", (int)u.field_data[UF_PATH].len,
	         h->url + u.field_data[UF_PATH].off);
	if (u.field_set & (1 << UF_QUERY))
		snprintf(h->req.query, sizeof(h->req.query), "%.*s",
		         (int)u.field_data[UF_QUERY].len, h->url + u.field_data[UF_QUERY].off);
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
	proto_http *h = p->data;
	if (h->req.body_len + n > PROTO_HTTP_MAX_BODY) {
		char why[120];
		snprintf(why, sizeof(why), "the body exceeds the limit of %d bytes",
		         PROTO_HTTP_MAX_BODY);
		return refuse(h, 413, why);
	}
	if (h->req.body_len + n + 1 > h->body_cap) {
		size_t cap = h->body_cap ? h->body_cap : 4096;
		while (cap < h->req.body_len + n + 1)
			cap *= 2;
		char *b = realloc(h->req.body, cap);
		if (!b)
			return refuse(h, 413, "out of memory for the body");
		h->req.body = b;
		h->body_cap = cap;
	}
	memcpy(h->req.body + h->req.body_len, at, n);
	h->req.body_len += n;
	h->req.body[h->req.body_len] = '\0';
	return 0;
}

static int on_complete(http_parser *p)
{
	proto_http *h = p->data;
	h->req.keep_alive = http_should_keep_alive(p);
	if (!h->req.body) {
		h->req.body = calloc(1, 1);
		if (!h->req.body)
			return refuse(h, 413, "out of memory");
	}
	h->complete = 1;
	h->in_request = 0;
	http_parser_pause(p, 1); /* hand the request over before reading the next */
	return 0;
}

proto_http *proto_http_new(void)
{
	proto_http *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	http_parser_init(&h->p, HTTP_REQUEST);
	h->p.data = h;
	http_parser_settings_init(&h->s);
	h->s.on_message_begin = on_begin;
	h->s.on_url = on_url;
	h->s.on_header_field = on_field;
	h->s.on_header_value = on_value;
	h->s.on_headers_complete = on_headers;
	h->s.on_body = on_body;
	h->s.on_message_complete = on_complete;
	return h;
}

void proto_http_free(proto_http *h)
{
	if (!h)
		return;
	free(h->req.body);
	free(h);
}

int proto_http_in_request(const proto_http *h)
{
	return h->in_request;
}

long proto_http_feed(proto_http *h, const char *data, size_t len, proto_http_req **req,
                     int *status, char *err, size_t errlen)
{
	*req = NULL;
	if (h->complete) { /* the last request was handed over: read on */
		h->complete = 0;
		http_parser_pause(&h->p, 0);
	}
	h->status = 0;
	size_t used = http_parser_execute(&h->p, &h->s, data, len);
	enum http_errno e = HTTP_PARSER_ERRNO(&h->p);
	if (h->complete) {
		*req = &h->req;
		return (long)used;
	}
	if (e != HPE_OK) {
		*status = h->status ? h->status : 400;
		snprintf(err, errlen, "%s", h->status ? h->why : http_errno_description(e));
		return -1;
	}
	return (long)used;
}

const char *proto_http_query(const proto_http_req *r, const char *key, char *out,
                             size_t outlen)
{
	size_t klen = strlen(key);
	const char *q = r->query;
	while (*q) {
		const char *end = strchr(q, '&');
		size_t n = end ? (size_t)(end - q) : strlen(q);
		if (n > klen && !strncmp(q, key, klen) && q[klen] == '=') {
			snprintf(out, outlen, "%.*s", (int)(n - klen - 1), q + klen + 1);
			return out;
		}
		if (n == klen && !strncmp(q, key, klen)) {
			snprintf(out, outlen, "%s", "");
			return out;
		}
		q += n + (end != NULL);
	}
	return NULL;
}

const char *proto_http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

int proto_http_head(int status, const char *content_type, size_t body_len, int keep_alive,
                    char *out, size_t outlen)
{
	int n = snprintf(out, outlen,
	                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	                 "Connection: %s\r\n\r\n", status, proto_http_reason(status),
	                 content_type, body_len, keep_alive ? "keep-alive" : "close");
	return n > 0 && (size_t)n < outlen ? n : GRAFT_ERANGE;
}

char *proto_http_response(int status, const char *content_type, const char *body,
                          size_t body_len, int keep_alive, size_t *out_len)
{
	char head[PROTO_HTTP_HEAD_MAX];
	int n = proto_http_head(status, content_type, body_len, keep_alive, head, sizeof(head));
	if (n < 0)
		return NULL;
	char *r = malloc((size_t)n + body_len);
	if (!r)
		return NULL;
	memcpy(r, head, (size_t)n);
	if (body_len)
		memcpy(r + n, body, body_len);
	*out_len = (size_t)n + body_len;
	return r;
}
