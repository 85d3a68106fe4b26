/*
 * config.c - graftd's configuration file.
 */
#include <stdio.h>
#include <string.h>

#include "proto/proto.h"
#include "proto/yaml_doc.h"

static const char *const keys[] = {
	"data_dir", "socket", "workers", "worker_command", "heartbeat", "memory_mb", "drain",
	"log_level", "log_file", "fetch_max_mb", "fetch_timeout", "http", "http_token",
	"executor", NULL,
};
static const char *const executor_keys[] = {
	"kind", "partition", "cpus_per_worker", "mem_per_worker", "time", "extra_args",
	"pending_timeout", "shared_dir", NULL,
};
static const char *const executor_kinds[] = { "local", "slurm", NULL };
static const char *const levels[] = { "debug", "info", "warn", "error", NULL };

void proto_daemon_config_defaults(proto_daemon_config *c)
{
	memset(c, 0, sizeof(*c));
	c->heartbeat_s = 120;
	c->drain_s = 60;
	c->fetch_max_mb = 2048;
	c->fetch_timeout_s = 900;
	snprintf(c->log_level, sizeof(c->log_level), "info");
	c->executor.cpus_per_worker = 1;
	c->executor.pending_timeout_s = 600;
}

/* A list of strings into out[0..max) (each at most 255 bytes), *n of them. */
static int parse_strings(const proto__ymap *m, const char *key, int max,
                         char out[][256], int *n)
{
	char path[PROTO_YAML_PATH_MAX + 64], at[PROTO_YAML_PATH_MAX + 80];
	yaml_node_t *v;
	int rc;

	if ((rc = proto__ymap_node(m, key, PROTO__OPTIONAL, &v)) || !v)
		return rc;
	proto__ymap_path(m, key, path, sizeof(path));
	if ((rc = proto__yseq(m->d, v, path, 0, max, n)))
		return rc;
	for (int i = 0; i < *n; i++) {
		snprintf(at, sizeof(at), "%s[%d]", path, i);
		if ((rc = proto__yread_str(m->d, proto__yseq_at(m->d, v, i), at, 255, out[i])))
			return rc;
	}
	return 0;
}

/* Whether every byte of s is in set (and s is not empty). */
static int all_of(const char *s, const char *set)
{
	return *s && strspn(s, set) == strlen(s);
}

static int parse_executor(const proto__ymap *top, proto_daemon_config *c)
{
	proto__ymap m;
	int kind = -1, rc;

	if ((rc = proto__ymap_map(top, "executor", PROTO__OPTIONAL, executor_keys, &m)) || !m.node)
		return rc;
	if ((rc = proto__ymap_enum(&m, "kind", PROTO__REQUIRED, executor_kinds, &kind)) ||
	    (rc = proto__ymap_str(&m, "partition", PROTO__OPTIONAL, 127, c->executor.partition)) ||
	    (rc = proto__ymap_int(&m, "cpus_per_worker", PROTO__OPTIONAL, 1, 1024, NULL,
	                          &c->executor.cpus_per_worker)) ||
	    (rc = proto__ymap_str(&m, "mem_per_worker", PROTO__OPTIONAL, 31,
	                          c->executor.mem_per_worker)) ||
	    (rc = proto__ymap_str(&m, "time", PROTO__OPTIONAL, 31, c->executor.time)) ||
	    (rc = parse_strings(&m, "extra_args", PROTO_MAX_ARGV - 16, c->executor.extra_args,
	                        &c->executor.extra_args_len)) ||
	    (rc = proto__ymap_double(&m, "pending_timeout", PROTO__OPTIONAL, 1, 30 * 86400.0,
	                             "seconds, 1..2592000", &c->executor.pending_timeout_s)) ||
	    (rc = proto__ymap_str(&m, "shared_dir", PROTO__OPTIONAL, PROTO_PATH_MAX - 1,
	                          c->executor.shared_dir)))
		return rc;
	c->executor.kind = (enum proto_executor_kind)kind;
	/* What srun is given is checked here, so that a typo is a sentence at
	 * start rather than a worker that never comes up. */
	const char *mem = c->executor.mem_per_worker;
	size_t ml = strlen(mem);
	if (ml && (!all_of(mem, "0123456789KMGTkmgt") || !strchr("0123456789", mem[0]) ||
	           strspn(mem, "0123456789") < ml - 1))
		return proto__ymap_expected(&m, "mem_per_worker", "a size such as 4096M or 4G");
	if (c->executor.time[0] && !all_of(c->executor.time, "0123456789:-"))
		return proto__ymap_expected(&m, "time", "a Slurm time limit such as 2:00:00 or "
		                            "1-00:00:00");
	if (c->executor.partition[0] && !all_of(c->executor.partition,
	                                        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                                        "0123456789_-.,"))
		return proto__ymap_expected(&m, "partition", "a partition name (letters, digits, "
		                            "'_', '-', '.'; a comma between several)");
	if (kind == PROTO_EXECUTOR_SLURM && !c->executor.shared_dir[0])
		return proto__ymap_expected(&m, "shared_dir", "a directory every node mounts at the "
		                            "same path (workers on other nodes read the datasets "
		                            "and grafts and write weights there)");
	if (c->executor.shared_dir[0] && c->executor.shared_dir[0] != '/')
		return proto__ymap_expected(&m, "shared_dir", "an absolute path");
	return 0;
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
	if (!rc)
		rc = parse_executor(&m, &t);
	proto__ydoc_free(&d);
	if (rc)
		return rc;
	if (level >= 0)
		snprintf(t.log_level, sizeof(t.log_level), "%s", levels[level]);
	*c = t;
	return 0;
}
