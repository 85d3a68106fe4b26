/*
 * fuzz_config.c - graftd's config file (proto_daemon_config_parse), read
 * over the defaults as graftd reads it.  A refused file must leave the
 * values it was read over untouched, and say why in one line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz_msg.h"

#define TERMINATED(s) (memchr((s), '\0', sizeof(s)) != NULL)

static void check_config(const proto_daemon_config *c)
{
	if (!TERMINATED(c->data_dir) || !TERMINATED(c->socket) ||
	    !TERMINATED(c->log_level) || !TERMINATED(c->log_file))
		abort();
	if (c->worker_command_len < 0 || c->worker_command_len > PROTO_MAX_ARGV)
		abort();
	for (int i = 0; i < c->worker_command_len; i++)
		if (!TERMINATED(c->worker_command[i]))
			abort();
	if (!(c->heartbeat_s >= 1) || !(c->drain_s >= 0) || c->fetch_max_mb < 1 ||
	    c->fetch_timeout_s < 1 || c->memory_mb < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static proto_daemon_config defaults, c;
	char err[GRAFT_ERRLEN];

	proto_daemon_config_defaults(&defaults);
	memcpy(&c, &defaults, sizeof(c));
	fuzz_msg_poison(err, sizeof(err));
	if (proto_daemon_config_parse((const char *)data, size, &c, err, sizeof(err)) == 0) {
		check_config(&c);
	} else {
		fuzz_msg_check(err, sizeof(err));
		if (memcmp(&c, &defaults, sizeof(c)) != 0)
			abort();
	}
	return 0;
}
