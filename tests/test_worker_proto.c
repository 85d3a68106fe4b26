/*
 * test_worker_proto.c - the worker protocol of proto.h: what one side
 * encodes the other decodes to the same struct, and a line that does not
 * validate (a missing or mistyped field, a value out of range, an unknown
 * key) is refused with a reason naming the field, never half read.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "proto/proto.h"

TestSuite(worker_proto, .timeout = 30);

static const char sha[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static const char result_ok[] =
	"{\"type\":\"result\",\"id\":7,\"val_accuracy\":0.8125,\"val_loss\":0.5,"
	"\"train_loss\":0.25,\"steps\":100,\"wall_s\":1.5,\"cpu_s\":2.5,\"params\":1234,"
	"\"flops\":99999,\"inherited\":3,\"feature_cache\":true,\"images_per_s\":640,"
	"\"setup_cpu_s\":0.125}\n";

static void expect_wmsg_refused(const char *line, const char *needle)
{
	char err[GRAFT_ERRLEN] = "";
	proto_wmsg m;
	cr_assert_eq(proto_wmsg_decode(line, strlen(line), &m, err, sizeof(err)), GRAFT_EINVAL,
	             "accepted: %s", line);
	cr_assert(strstr(err, needle), "'%s' lacks '%s' (line %s)", err, needle, line);
}

static void expect_task_refused(const char *line, const char *needle)
{
	char err[GRAFT_ERRLEN] = "";
	proto_task t;
	cr_assert_eq(proto_task_decode(line, strlen(line), &t, err, sizeof(err)), GRAFT_EINVAL,
	             "accepted: %s", line);
	cr_assert(strstr(err, needle), "'%s' lacks '%s' (line %s)", err, needle, line);
}

/* The line with key's value replaced by value ("" removes the key). */
static char *with(const char *line, const char *key, const char *value)
{
	static char out[2048];
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = strstr(line, pat);
	cr_assert_not_null(p, "%s not in %s", key, line);
	/* The value's end: past a string (with its escapes) or a bracketed
	 * object or list, else at the next comma or closing brace. */
	const char *end = p + strlen(pat);
	int depth = 0, in_str = 0;
	for (; *end; end++) {
		if (in_str) {
			if (*end == '\\')
				end++;
			else if (*end == '"')
				in_str = 0;
		} else if (*end == '"') {
			in_str = 1;
		} else if (*end == '{' || *end == '[') {
			depth++;
		} else if ((*end == '}' || *end == ']') && depth > 0) {
			depth--;
		} else if (depth == 0 && (*end == ',' || *end == '}')) {
			break;
		}
	}
	size_t keep = (size_t)(p - line);
	if (!*value && *end == ',')
		end++;
	else if (!*value && keep > 0 && line[keep - 1] == ',')
		keep--; /* the last key: its comma goes */
	snprintf(out, sizeof(out), "%.*s%s%s%s", (int)keep, line, *value ? pat : "", value, end);
	return out;
}

Test(worker_proto, a_result_decodes_every_field)
{
	char err[GRAFT_ERRLEN];
	proto_wmsg m;
	cr_assert_eq(proto_wmsg_decode(result_ok, strlen(result_ok), &m, err, sizeof(err)), 0,
	             "%s", err);
	cr_assert_eq(m.type, PROTO_WMSG_RESULT);
	cr_assert_eq(m.id, 7);
	cr_assert_eq(m.result.val_accuracy, 0.8125);
	cr_assert_eq(m.result.steps, 100);
	cr_assert_eq(m.result.params, 1234);
	cr_assert_eq(m.result.flops, 99999);
	cr_assert_eq(m.result.inherited, 3);
	cr_assert_eq(m.result.feature_cache, 1);
	cr_assert_eq(m.result.setup_cpu_s, 0.125);
	/* Encoded again, it decodes to the same. */
	char *line = proto_wmsg_encode(&m);
	proto_wmsg again;
	cr_assert_eq(proto_wmsg_decode(line, strlen(line), &again, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(memcmp(&m.result, &again.result, sizeof(m.result)), 0, "%s", line);
	free(line);
}

/* Issue 10, bug 4: a result with a field missing or mistyped used to be
 * recorded as done with accuracy 0. */
Test(worker_proto, a_result_with_a_bad_field_is_refused_naming_it)
{
	static const char *const fields[] = { "val_accuracy", "val_loss", "train_loss", "steps",
	                                      "wall_s", "cpu_s", "params", "flops", "inherited",
	                                      "feature_cache", "images_per_s", "setup_cpu_s" };
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		char needle[64];
		snprintf(needle, sizeof(needle), "\"%s\" is missing", fields[i]);
		expect_wmsg_refused(with(result_ok, fields[i], ""), needle);
		snprintf(needle, sizeof(needle), "\"%s\" must be", fields[i]);
		expect_wmsg_refused(with(result_ok, fields[i], "\"0.9\""), needle);
	}
	expect_wmsg_refused(with(result_ok, "val_accuracy", "1.5"), "from 0 to 1");
	expect_wmsg_refused(with(result_ok, "val_accuracy", "-0.1"), "val_accuracy");
	expect_wmsg_refused(with(result_ok, "val_accuracy", "null"), "val_accuracy");
	expect_wmsg_refused(with(result_ok, "steps", "2.5"), "\"steps\" must be an integer");
	expect_wmsg_refused(with(result_ok, "params", "-1"), "params");
	expect_wmsg_refused(with(result_ok, "id", "\"7\""), "\"id\"");
	expect_wmsg_refused(with(result_ok, "id", ""), "\"id\" is missing");
	expect_wmsg_refused("{\"type\":\"result\",\"id\":7,\"colour\":1}", "unknown key");
}

Test(worker_proto, other_messages_and_garbage)
{
	char err[GRAFT_ERRLEN];
	proto_wmsg m;
	const char *p = "{\"type\":\"progress\",\"id\":3,\"step\":5,\"steps\":10,\"loss\":null}";
	cr_assert_eq(proto_wmsg_decode(p, strlen(p), &m, err, sizeof(err)), 0, "%s", err);
	cr_assert(isnan(m.loss), "a null loss is NAN");
	cr_assert_eq(m.step, 5);
	const char *r = "{\"type\":\"ready\"}";
	cr_assert_eq(proto_wmsg_decode(r, strlen(r), &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(m.type, PROTO_WMSG_READY);
	const char *e = "{\"type\":\"error\",\"id\":-1,\"message\":\"no such file\"}";
	cr_assert_eq(proto_wmsg_decode(e, strlen(e), &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(m.message, "no such file");
	cr_assert_eq(m.io, 0, "no io key: the candidate's own failure");
	const char *io = "{\"type\":\"error\",\"id\":4,\"message\":\"cannot write w\",\"io\":true}";
	cr_assert_eq(proto_wmsg_decode(io, strlen(io), &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(m.io, 1);
	char *again = proto_wmsg_encode(&m);
	cr_assert(strstr(again, "\"io\":true"), "%s", again);
	free(again);
	expect_wmsg_refused("{\"type\":\"error\",\"id\":4,\"message\":\"x\",\"io\":1}",
	                    "\"io\" must be true or false");
	expect_wmsg_refused("{\"type\":\"error\",\"id\":3,\"message\":\"\"}", "message");
	expect_wmsg_refused("{\"type\":\"progress\",\"id\":-1,\"step\":1,\"steps\":2,\"loss\":1}",
	                    "\"id\" must be");
	expect_wmsg_refused("{\"type\":\"shout\",\"id\":1}", "unknown message type");
	expect_wmsg_refused("[1, 2]", "\"type\"");
	expect_wmsg_refused("{\"type\":\"ready\",\"type\":\"ready\"}", "not JSON");
	expect_wmsg_refused("loss 0.5", "not JSON");
	expect_wmsg_refused("", "not JSON");
}

static void fill_task(proto_task *t)
{
	memset(t, 0, sizeof(*t));
	t->id = 42;
	t->train_images = strdup("/data/train-images");
	t->train_labels = strdup("/data/train-labels");
	t->validation = 300;
	t->graft_path = strdup("/grafts/g.safetensors");
	memcpy(t->graft_sha256, sha, sizeof(sha));
	t->threads = 2;
	t->arch = strdup("format: graft-arch/1\n\"quoted\" \\ and caf\xc3\xa9\n");
	t->save = strdup("/w/42.safetensors");
	t->report_every = 5;
}

Test(worker_proto, a_task_round_trips)
{
	char err[GRAFT_ERRLEN];
	proto_task t, u;
	fill_task(&t);
	char *line = proto_task_encode(&t);
	cr_assert_not_null(line);
	cr_assert_eq(line[strlen(line) - 1], '\n');
	cr_assert_eq(proto_task_decode(line, strlen(line), &u, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(u.id, 42);
	cr_assert_null(u.data_dir);
	cr_assert_str_eq(u.train_images, t.train_images);
	cr_assert_eq(u.validation, 300);
	cr_assert_str_eq(u.graft_path, t.graft_path);
	cr_assert_str_eq(u.graft_sha256, sha);
	cr_assert_eq(u.threads, 2);
	cr_assert_str_eq(u.arch, t.arch);
	cr_assert_null(u.parent);
	cr_assert_str_eq(u.save, t.save);
	cr_assert_eq(u.report_every, 5);
	char *again = proto_task_encode(&u);
	cr_assert_str_eq(line, again);
	free(line);
	free(again);
	proto_task_clear(&t);
	proto_task_clear(&u);
	proto_task_clear(&u); /* cleared twice: still fine */
}

Test(worker_proto, a_bad_task_is_refused_naming_the_field)
{
	proto_task t;
	fill_task(&t);
	char *line = proto_task_encode(&t);
	proto_task_clear(&t);
	expect_task_refused(with(line, "arch", ""), "\"arch\" is missing");
	expect_task_refused(with(line, "arch", "3"), "\"arch\" must be");
	expect_task_refused(with(line, "id", "-4"), "\"id\" must be");
	expect_task_refused(with(line, "threads", "0"), "\"threads\" must be");
	expect_task_refused(with(line, "sha256", "\"abc\""), "64 lowercase hex");
	expect_task_refused(with(line, "train_labels", ""), "needs either dir");
	expect_task_refused(with(line, "data", "{\"dir\":\"/d\",\"train_images\":\"/x\"}"),
	                    "needs either dir");
	expect_task_refused(with(line, "data", "[]"), "\"data\" must be an object");
	expect_task_refused(with(line, "save", "\"a\\u0000b\""), "not allowed");
	expect_task_refused("{\"type\":\"result\",\"id\":1}", "expected a task");
	expect_task_refused("{\"type\":\"task\",\"id\":1,\"extra\":true}", "unknown key");
	free(line);
}

/* Found by fuzzing: an error message longer than the struct holds was cut
 * inside a UTF-8 character, and the message no longer encoded. */
Test(worker_proto, a_long_message_is_cut_at_a_character)
{
	char line[3 * GRAFT_ERRLEN + 100], err[GRAFT_ERRLEN];
	int n = snprintf(line, sizeof(line), "{\"type\":\"error\",\"id\":1,\"message\":\"x");
	for (int i = 0; i < GRAFT_ERRLEN; i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "\xc3\xa9");
	snprintf(line + n, sizeof(line) - (size_t)n, "\"}");
	proto_wmsg m;
	cr_assert_eq(proto_wmsg_decode(line, strlen(line), &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_lt(strlen(m.message), sizeof(m.message));
	char *again = proto_wmsg_encode(&m);
	cr_assert_not_null(again, "the cut message does not encode");
	free(again);
}
