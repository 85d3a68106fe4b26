/*
 * fuzz_http.c - HTTP requests (proto/http.h), read as graftd's server reads
 * them: bytes arrive in pieces, each piece is appended to what is left over,
 * and the parser is fed until it wants more, hands over a request or refuses.
 *
 * The first input byte is the piece size (0: the whole stream at once), so
 * the fuzzer also explores requests cut at every place a socket may cut them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http.h"

/* A request handed over must be what http.h promises: terminated strings and
 * a NUL right after the body. */
static void check_request(const proto_http_req *r)
{
	char v[64];

	if (!memchr(r->method, '\0', sizeof(r->method)) ||
	    !memchr(r->path, '\0', sizeof(r->path)) ||
	    !memchr(r->query, '\0', sizeof(r->query)) ||
	    !memchr(r->content_type, '\0', sizeof(r->content_type)))
		abort();
	if (r->body == NULL || r->body[r->body_len] != '\0' ||
	    r->body_len > PROTO_HTTP_MAX_BODY)
		abort();
	proto_http_query(r, "rank", v, sizeof(v));
	proto_http_query(r, "limit", v, sizeof(v));
	proto_http_query(r, "", v, sizeof(v));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char in[1 << 16];
	size_t in_len = 0, piece;
	proto_http *h;

	if (size < 1)
		return 0;
	piece = data[0] ? data[0] : size;
	data++, size--;
	if (size > sizeof(in))
		return 0;
	h = proto_http_new();
	if (h == NULL)
		return 0;
	for (size_t at = 0; at < size; at += piece) {
		size_t n = size - at < piece ? size - at : piece;

		memcpy(in + in_len, data + at, n);
		in_len += n;
		for (;;) {
			proto_http_req *req;
			int status = 0;
			char err[300];
			long used = proto_http_feed(h, in, in_len, &req, &status, err, sizeof(err));

			if (used < 0) {
				if (status < 400 || status > 599 || !memchr(err, '\0', sizeof(err)))
					abort();
				goto done;
			}
			if ((size_t)used > in_len)
				abort();
			memmove(in, in + used, in_len - (size_t)used);
			in_len -= (size_t)used;
			if (req == NULL)
				break;
			/* A request that consumed nothing would spin the server forever. */
			if (used == 0)
				abort();
			check_request(req);
			if (in_len == 0)
				break;
		}
	}
	proto_http_in_request(h);
done:
	proto_http_free(h);
	return 0;
}
