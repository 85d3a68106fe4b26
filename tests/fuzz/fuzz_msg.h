/*
 * fuzz_msg.h - what every refusal of the YAML parsers promises: a message
 * that ends within its buffer and is one line of printable text, since a
 * hostile input must not be able to put a newline or a terminal escape into
 * graftd's log or a client's terminal.
 */
#ifndef GRAFT_FUZZ_MSG_H
#define GRAFT_FUZZ_MSG_H

#include <stdlib.h>
#include <string.h>

/* Fills err with a byte that is no terminator, so an unterminated message shows. */
static void fuzz_msg_poison(char *err, size_t errlen)
{
	memset(err, 'x', errlen);
}

static void fuzz_msg_check(const char *err, size_t errlen)
{
	const char *end = memchr(err, '\0', errlen);

	if (end == NULL || end == err)
		abort();
	for (const char *p = err; p < end; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			abort();
}

#endif
