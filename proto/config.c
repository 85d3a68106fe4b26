/*
 * config.c - graftd's configuration file.
 */
#include <stdio.h>
#include <string.h>

#include "proto/proto.h"
#include "proto/yaml_doc.h"

static const char *const keys[] = {
	"data_dir", "socket", "workers", "worker_command", "heartbeat", "memory_mb", "drain",
	"log_level", "log_file", "fetch_max_mb", "fetch_timeout", "http", "http_token", NULL,
};
static const char *const levels[] = { "debug", "info", "warn", "error", NULL };

void proto_daemon_config_defaults(proto_daemon_config *c)
{
	memset(c, 0, sizeof(*c));
	c->heartbeat_s = 120;
	c->drain_s = 60;
	c->fetch_max_mb = 2048;
	c->fetch_timeout_s = 900;
	snprintf(c->log_level, sizeof(c->log_level), "info");
}

static int parse_command(const proto__ymap *m, proto_daemon_config *c)
{
	char path[PROTO_YAML_PATH_MAX + 16];
	yaml_node_t *v;
	int n, rc;

	if ((rc = proto__ymap_node(m, "worker_command", PROTO__OPTIONAL, &v)) || !v)
		return rc;
	/* An empty list, as deploy/graftd.yaml shows it, means the default: graftd
	 * runs its own worker directly. */
	if ((rc = proto__yseq(m->d, v, "worker_command", 0, PROTO_MAX_ARGV - 3, &n)))
		return rc;
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "worker_command[%d]", i);
		if ((rc = proto__yread_str(m->d, proto__yseq_at(m->d, v, i), path,
		                           sizeof(c->worker_command[i]) - 1, c->worker_command[i])))
			return rc;
	}
	c->worker_command_len = n;
	return 0;
}

int proto_daemon_config_parse(const char *text, size_t len, proto_daemon_config *c,
                              char *err, size_t errlen)
{
	proto__ydoc d;
	proto__ymap m;
	proto_daemon_config t = *c;
	int level = -1, rc;

	if ((rc = proto__ydoc_load(&d, text, len, err, errlen)))
		return rc;
	rc = proto__ymap_open(&d, proto__ydoc_root(&d), "", keys, &m);
	if (!rc)
		rc = proto__ymap_str(&m, "data_dir", PROTO__OPTIONAL, PROTO_PATH_MAX - 1, t.data_dir);
	if (!rc)
		rc = proto__ymap_str(&m, "socket", PROTO__OPTIONAL, 107, t.socket);
	if (!rc)
		rc = proto__ymap_int(&m, "workers", PROTO__OPTIONAL, 1, 256, NULL, &t.workers);
	if (!rc)
		rc = parse_command(&m, &t);
	if (!rc)
		rc = proto__ymap_double(&m, "heartbeat", PROTO__OPTIONAL, 1, 86400,
		                        "seconds, 1..86400", &t.heartbeat_s);
	if (!rc) {
		int64_t mb = t.memory_mb;
		rc = proto__ymap_i64(&m, "memory_mb", PROTO__OPTIONAL, 0, 1 << 24, NULL, &mb);
		t.memory_mb = (long)mb;
	}
	if (!rc)
		rc = proto__ymap_double(&m, "drain", PROTO__OPTIONAL, 0, 86400, "seconds, 0..86400",
		                        &t.drain_s);
	if (!rc) {
		int64_t mb = t.fetch_max_mb, secs = t.fetch_timeout_s;
		rc = proto__ymap_i64(&m, "fetch_max_mb", PROTO__OPTIONAL, 1, 1 << 20, NULL, &mb);
		if (!rc)
			rc = proto__ymap_i64(&m, "fetch_timeout", PROTO__OPTIONAL, 1, 86400,
			                     "seconds, 1..86400", &secs);
		t.fetch_max_mb = (long)mb;
		t.fetch_timeout_s = (long)secs;
	}
	if (!rc)
		rc = proto__ymap_enum(&m, "log_level", PROTO__OPTIONAL, levels, &level);
	if (!rc)
		rc = proto__ymap_str(&m, "log_file", PROTO__OPTIONAL, PROTO_PATH_MAX - 1, t.log_file);
	if (!rc)
		rc = proto__ymap_str(&m, "http", PROTO__OPTIONAL, sizeof(t.http) - 1, t.http);
	if (!rc)
		rc = proto__ymap_str(&m, "http_token", PROTO__OPTIONAL, sizeof(t.http_token) - 1,
		                     t.http_token);
	proto__ydoc_free(&d);
	if (rc)
		return rc;
	if (level >= 0)
		snprintf(t.log_level, sizeof(t.log_level), "%s", levels[level]);
	*c = t;
	return 0;
}
