/*
 * client.c - HTTP to graftd over its Unix socket (see client.h).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/cli/cli.h"
#include "daemon/runtime/runtime.h"

void cli_socket_path(const char *flag, char *out, size_t len)
{
	const char *env = getenv("GRAFT_SOCKET");
	char dir[4096];
	if (flag && *flag) {
		snprintf(out, len, "%s", flag);
	} else if (env && *env) {
		snprintf(out, len, "%s", env);
	} else {
		rt_data_dir_default(dir, sizeof(dir));
		snprintf(out, len, "%.4000s/graftd.sock", dir);
	}
}

struct sink {
	char *p;
	size_t len;
};

static size_t on_data(char *d, size_t size, size_t n, void *ctx)
{
	struct sink *s = ctx;
	size_t k = size * n;
	char *p = realloc(s->p, s->len + k + 1);
	if (!p)
		return 0;
	memcpy(p + s->len, d, k);
	s->p = p;
	s->len += k;
	p[s->len] = '\0';
	return k;
}

cli_resp cli_call(const char *sock, const char *method, const char *path,
                  const char *content_type, const char *body, size_t body_len)
{
	cli_resp r = { 0 };
	struct sink s = { 0 };
	char url[1200], ct[160];
	struct curl_slist *h = NULL;
	CURL *c = curl_easy_init();

	if (!c) {
		snprintf(r.error, sizeof(r.error), "cannot initialise libcurl");
		return r;
	}
	snprintf(url, sizeof(url), "http://graft%s", path);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (body || !strcmp(method, "POST")) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
	}
	if (content_type) {
		snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
		h = curl_slist_append(h, ct);
	}
	h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	CURLcode rc = curl_easy_perform(c);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	} else {
		snprintf(r.error, sizeof(r.error), "%s", curl_easy_strerror(rc));
		free(s.p);
		s.p = NULL;
		s.len = 0;
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	r.body = s.p ? s.p : calloc(1, 1);
	r.len = s.len;
	return r;
}

void cli_resp_free(cli_resp *r)
{
	free(r->body);
	r->body = NULL;
}

int cli_fail(const char *cmd, const char *sock, const cli_resp *r)
{
	if (r->status == 0) {
		struct stat sb;
		if (stat(sock, &sb))
			fprintf(stderr, "graft %s: graftd is not running (no socket at %s).\n"
			        "Start it with:  graftd &   (or graftd --data-dir DIR &, then "
			        "--socket DIR/graftd.sock or GRAFT_SOCKET)\n", cmd, sock);
		else
			fprintf(stderr, "graft %s: cannot reach graftd at %s: %s.\nIs it running? "
			        "Start it with:  graftd &\n", cmd, sock, r->error);
		return CLI_NO_DAEMON;
	}
	json_t *j = json_loads(r->body, 0, NULL);
	json_t *e = json_object_get(j, "error");
	const char *msg = json_string_value(json_object_get(e, "message"));
	if (msg) {
		fprintf(stderr, "graft %s: %s", cmd, msg);
		const char *field = json_string_value(json_object_get(e, "field"));
		json_t *line = json_object_get(e, "line");
		if (field && !strstr(msg, field))
			fprintf(stderr, " (%s)", field);
		if (json_is_integer(line) && !strstr(msg, "line "))
			fprintf(stderr, " (line %lld, column %lld)", (long long)json_integer_value(line),
			        (long long)json_integer_value(json_object_get(e, "column")));
		fputc('\n', stderr);
	} else {
		fprintf(stderr, "graft %s: graftd answered %ld: %.300s\n", cmd, r->status, r->body);
	}
	json_decref(j);
	return 1;
}

json_t *cli_json(const char *cmd, const cli_resp *r)
{
	json_error_t e;
	json_t *j = json_loads(r->body, 0, &e);
	if (!j)
		fprintf(stderr, "graft %s: graftd answered something that is not JSON: %s\n", cmd,
		        e.text);
	return j;
}
