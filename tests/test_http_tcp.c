/*
 * test_http_tcp.c - graftd's API on a TCP port (--http / http:), beside its
 * socket: open on loopback, behind a token when one is set, refused on any
 * other address without one; the socket keeps working token-free, and
 * garbage on the port gets a 4xx while the daemon lives.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/support/graftd_run.h"
#include "tests/support/scratch.h"

static void setup(void)
{
	scratch_make("tcp");
	signal(SIGPIPE, SIG_IGN);
}

static pid_t forwarder; /* a graft dashboard to stop, whatever happens */

static void teardown(void)
{
	if (forwarder > 0)
		kill(forwarder, SIGKILL);
	graftd_kill_all();
	scratch_remove();
}

TestSuite(tcp, .init = setup, .fini = teardown, .timeout = 60);

/* One request over TCP to 127.0.0.1:port; the status, and the body in body. */
static int tcp_request(int port, const char *req, char *body, size_t bodylen)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), status = 0;
	char buf[16384];
	size_t got = 0;

	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect to port %d", port);
	cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	shutdown(fd, SHUT_WR);
	for (ssize_t n; got < sizeof(buf) - 1 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0;)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	sscanf(buf, "HTTP/1.1 %d", &status);
	char *b = strstr(buf, "\r\n\r\n");
	snprintf(body, bodylen, "%s", b ? b + 4 : "");
	return status;
}

static int get(int port, const char *path, const char *auth, char *body, size_t bodylen)
{
	char req[1024];
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n%s%s%sConnection: close\r\n\r\n",
	         path, auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
	return tcp_request(port, req, body, bodylen);
}

Test(tcp, loopback_serves_the_api_beside_the_socket)
{
	char dir[700], body[8192];
	snprintf(dir, sizeof(dir), "%s", scratch_path("open"));
	pid_t pid = graftd_start_with(dir, 1, "http: 127.0.0.1:0\n");
	int port = graftd_http_port(dir);
	cr_assert_eq(get(port, "/v1/health", NULL, body, sizeof(body)), 200, "%s", body);
	cr_assert(strstr(body, "\"status\""), "%s", body);
	cr_assert_eq(get(port, "/v1/jobs", NULL, body, sizeof(body)), 200, "%s", body);
	json_decref(graftd_get_json(dir, "/v1/health", 200));
	/* Garbage on the port: a 400, and the daemon answers on. */
	cr_assert_eq(tcp_request(port, "\x01\x02 nonsense\r\n\r\n", body, sizeof(body)), 400);
	cr_assert_eq(get(port, "/v1/health", NULL, body, sizeof(body)), 200);
	graftd_stop(pid, SIGTERM);
}

Test(tcp, a_token_is_required_on_the_port_and_not_on_the_socket)
{
	char dir[700], body[8192];
	snprintf(dir, sizeof(dir), "%s", scratch_path("token"));
	pid_t pid = graftd_start_with(dir, 1, "http: 127.0.0.1:0\nhttp_token: s3cret-t0ken\n");
	int port = graftd_http_port(dir);
	cr_assert_eq(get(port, "/v1/health", NULL, body, sizeof(body)), 401, "%s", body);
	cr_assert(strstr(body, "\"unauthorized\"") && strstr(body, "token"), "%s", body);
	cr_assert_eq(get(port, "/v1/jobs", "Bearer wrong", body, sizeof(body)), 401);
	cr_assert_eq(get(port, "/v1/jobs", "Bearer s3cret-t0ke", body, sizeof(body)), 401);
	cr_assert_eq(get(port, "/v1/jobs", "Bearer s3cret-t0ken", body, sizeof(body)), 200, "%s",
	             body);
	cr_assert_eq(get(port, "/v1/jobs?token=s3cret-t0ken", NULL, body, sizeof(body)), 200);
	cr_assert_eq(get(port, "/v1/jobs?token=nope", NULL, body, sizeof(body)), 401);
	/* Two Authorization headers are refused, not glued together. */
	cr_assert_eq(tcp_request(port, "GET /v1/jobs HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n"
	                         "Authorization: -t0ken\r\nConnection: close\r\n\r\n", body,
	                         sizeof(body)), 400);
	json_decref(graftd_get_json(dir, "/v1/jobs", 200)); /* the socket: no token */
	/* The dashboard's files hold no data and come without it (a browser
	 * fetches a page's script without ?token=); what they ask for does not. */
	cr_assert_eq(get(port, "/", NULL, body, sizeof(body)), 200);
	cr_assert_eq(get(port, "/dashboard/app.js", NULL, body, sizeof(body)), 200);
	cr_assert_eq(tcp_request(port, "POST / HTTP/1.1\r\nContent-Length: 0\r\nConnection: "
	                         "close\r\n\r\n", body, sizeof(body)), 401);
	cr_assert_eq(get(port, "/v1/health", NULL, body, sizeof(body)), 401);
	graftd_stop(pid, SIGTERM);
}

/* graftd refuses to start, saying why in its log. */
static void refuses(const char *name, const char *config, const char *says)
{
	char dir[700], path[800], log[8192] = "";
	int status;
	snprintf(dir, sizeof(dir), "%s", scratch_path(name));
	pid_t pid = graftd_spawn(dir, 1, config);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0, "%s: graftd started", name);
	snprintf(path, sizeof(path), "%s/graftd.log", dir);
	FILE *f = fopen(path, "r");
	if (f) {
		log[fread(log, 1, sizeof(log) - 1, f)] = '\0';
		fclose(f);
	}
	cr_assert(strstr(log, says), "%s: the log lacks '%s':\n%s", name, says, log);
}

Test(tcp, an_address_others_reach_needs_a_token)
{
	refuses("open", "http: 0.0.0.0:0\n", "needs a token");
	refuses("bad", "http: localhost\n", "expected HOST:PORT");
	refuses("name", "http: 'example.org:80'\n", "is not an IP address");
	/* With one, it serves, and asks for it even from this machine. */
	char dir[700], body[8192];
	snprintf(dir, sizeof(dir), "%s", scratch_path("all"));
	pid_t pid = graftd_start_with(dir, 1, "http: 0.0.0.0:0\nhttp_token: t\n");
	int port = graftd_http_port(dir);
	cr_assert_eq(get(port, "/v1/health", NULL, body, sizeof(body)), 401);
	cr_assert_eq(get(port, "/v1/health", "Bearer t", body, sizeof(body)), 200);
	graftd_stop(pid, SIGTERM);
}

/* The bytes of a file of the repository. */
static char *file_bytes(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	char *b = malloc(1 << 20);
	*len = fread(b, 1, (1 << 20) - 1, f);
	b[*len] = '\0';
	fclose(f);
	return b;
}

/* The dashboard at /: its files come from graftd's memory, byte for byte the
 * repository's; nothing else is reachable under it; the script parses. */
Test(tcp, the_dashboard_is_served_from_memory)
{
	static const char *const files[] = { "index.html", "app.js", "style.css" };
	static const char *const types[] = { "text/html", "text/javascript", "text/css" };
	char dir[700], path[128], src[128];
	snprintf(dir, sizeof(dir), "%s", scratch_path("dash"));
	pid_t pid = graftd_start(dir, 1);
	resp r = graftd_http(dir, "GET", "/", NULL, NULL);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, "<script src=\"/dashboard/app.js\""), "%s", r.body);
	free(r.body);
	for (int i = 0; i < 3; i++) {
		size_t len;
		snprintf(path, sizeof(path), "/dashboard/%s", files[i]);
		snprintf(src, sizeof(src), "daemon/graftd/dashboard/%s", files[i]);
		char *want = file_bytes(src, &len);
		char req[300];
		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nConnection: close\r\n\r\n", path);
		resp raw = graftd_raw(dir, req, strlen(req));
		cr_assert_eq(raw.status, 200, "%s", path);
		cr_assert_eq(raw.len, len, "%s: %zu bytes served, %zu in the file", path, raw.len, len);
		cr_assert_eq(memcmp(raw.body, want, len), 0, "%s differs from %s", path, src);
		free(raw.body);
		free(want);
		/* The content type, from the head of a second request. */
		char head[4096];
		int fd = graftd_connect(dir);
		cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
		ssize_t n = read(fd, head, sizeof(head) - 1);
		close(fd);
		head[n > 0 ? n : 0] = '\0';
		cr_assert(strstr(head, types[i]), "%s: %s", path, head);
	}
	static const char *const missing[] = {
		"/dashboard/", "/dashboard/nothing.js", "/dashboard/../graft.db",
		"/dashboard/%2e%2e/graft.db", "/dashboard//etc/passwd", "/index.html",
	};
	for (size_t i = 0; i < sizeof(missing) / sizeof(*missing); i++) {
		r = graftd_http(dir, "GET", missing[i], NULL, NULL);
		cr_assert_eq(r.status, 404, "%s: %d %s", missing[i], r.status, r.body);
		free(r.body);
	}
	r = graftd_http(dir, "POST", "/", "text/plain", "x");
	cr_assert_eq(r.status, 405);
	free(r.body);
	json_decref(graftd_get_json(dir, "/v1/health", 200));
	cr_assert_eq(system("node --check daemon/graftd/dashboard/app.js"), 0,
	             "the dashboard's script does not parse");
	graftd_stop(pid, SIGTERM);
}

/* graft dashboard: graftd's own port when it has one; else a forwarder from
 * a loopback port to the socket, which serves the page and the API. */
Test(tcp, graft_dashboard_prints_the_url_or_forwards_a_port)
{
	char dir[700], out[760], line[512] = "", body[8192];
	snprintf(dir, sizeof(dir), "%s", scratch_path("fwd"));
	pid_t pid = graftd_start(dir, 1);
	snprintf(out, sizeof(out), "%s/dashboard.txt", dir);
	char *argv[] = { "bin/graft", "dashboard", "--socket", (char *)graftd_socket(dir), NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	pid_t fwd;
	cr_assert_eq(posix_spawn(&fwd, "bin/graft", &fa, NULL, argv, environ), 0);
	forwarder = fwd;
	posix_spawn_file_actions_destroy(&fa);
	int port = 0;
	for (int i = 0; i < 200 && !port; i++) {
		FILE *f = fopen(out, "r");
		if (f && fgets(line, sizeof(line), f))
			sscanf(line, "http://127.0.0.1:%d/", &port);
		if (f)
			fclose(f);
		if (!port)
			test_nap(0.05);
	}
	cr_assert_gt(port, 0, "graft dashboard printed no URL: '%s'", line);
	cr_assert(strstr(line, "forwarded to"), "%s", line);
	cr_assert_eq(get(port, "/", NULL, body, sizeof(body)), 200);
	cr_assert(strstr(body, "/dashboard/app.js"), "%s", body);
	cr_assert_eq(get(port, "/v1/health", NULL, body, sizeof(body)), 200);
	cr_assert(strstr(body, "\"http\":null") || strstr(body, "\"http\": null"), "%s", body);
	int status;
	kill(fwd, SIGTERM);
	cr_assert_eq(waitpid(fwd, &status, 0), fwd);
	forwarder = 0;
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the forwarder did not stop cleanly");
	graftd_stop(pid, SIGTERM);

	/* With a port of its own, graftd's URL, and nothing to forward. */
	snprintf(dir, sizeof(dir), "%s", scratch_path("own"));
	pid = graftd_start_with(dir, 1, "http: 127.0.0.1:0\n");
	port = graftd_http_port(dir);
	cmd_run *r = graft_cmd("dashboard", "--socket", graftd_socket(dir), NULL);
	cr_assert_eq(r->code, 0, "%s", r->err);
	snprintf(line, sizeof(line), "http://127.0.0.1:%d/", port);
	cr_assert(strstr(r->out, line), "'%s' lacks %s", r->out, line);
	graftd_stop(pid, SIGTERM);
}
