/*
 * fuzz_worker.c - the worker protocol (proto/worker_msg.c): task lines the
 * daemon writes to a worker, message lines a worker writes back.  Every
 * input is tried as both.  Whatever decodes must encode (both sides speak
 * through these functions, so a struct one side accepted must be sendable),
 * the encoded line must decode again, and encoding that must give the very
 * same line; a break in that chain aborts, as a finding.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

static void check_err(const char *err, size_t errlen)
{
	const char *end = memchr(err, '\0', errlen);

	if (end == NULL || end == err)
		abort();
}

/* Says what broke, with the lines involved, and aborts: the finding. */
static void fail(const char *what, const char *input, size_t size, const char *line,
                 const char *again, const char *err)
{
	fprintf(stderr, "%s\n--- input (%zu bytes):\n%.*s\n--- first encoding:\n%s"
	        "--- second encoding:\n%s--- error: %s\n", what, size,
	        size > 600 ? 600 : (int)size, input, line ? line : "(none)\n",
	        again ? again : "(none)\n", err ? err : "");
	abort();
}

static void task_round_trip(const char *data, size_t size)
{
	char err[GRAFT_ERRLEN];
	proto_task t, u;
	char *first, *second;

	memset(err, 'x', sizeof(err));
	if (proto_task_decode(data, size, &t, err, sizeof(err)) != 0) {
		check_err(err, sizeof(err));
		return;
	}
	first = proto_task_encode(&t);
	proto_task_clear(&t);
	if (first == NULL)
		fail("a decoded task does not encode", data, size, NULL, NULL, NULL);
	if (proto_task_decode(first, strlen(first), &u, err, sizeof(err)) != 0)
		fail("an encoded task does not decode", data, size, first, NULL, err);
	second = proto_task_encode(&u);
	proto_task_clear(&u);
	if (second == NULL || strcmp(first, second) != 0)
		fail("encode(decode(encode(t))) differs from encode(t)", data, size, first, second,
		     NULL);
	free(first);
	free(second);
}

static void wmsg_round_trip(const char *data, size_t size)
{
	static proto_wmsg m, n;
	char err[GRAFT_ERRLEN];
	char *first, *second;

	memset(err, 'x', sizeof(err));
	if (proto_wmsg_decode(data, size, &m, err, sizeof(err)) != 0) {
		check_err(err, sizeof(err));
		return;
	}
	first = proto_wmsg_encode(&m);
	if (first == NULL)
		fail("a decoded message does not encode", data, size, NULL, NULL, NULL);
	if (proto_wmsg_decode(first, strlen(first), &n, err, sizeof(err)) != 0)
		fail("an encoded message does not decode", data, size, first, NULL, err);
	second = proto_wmsg_encode(&n);
	if (second == NULL || strcmp(first, second) != 0)
		fail("encode(decode(encode(m))) differs from encode(m)", data, size, first, second,
		     NULL);
	free(first);
	free(second);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	task_round_trip((const char *)data, size);
	wmsg_round_trip((const char *)data, size);
	return 0;
}
