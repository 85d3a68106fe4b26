/*
 * graftd_run.c - starting, stopping and talking to graftd in tests (see
 * graftd_run.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/support/graftd_run.h"
#include "tests/support/scratch.h"

extern char **environ;

/* Every daemon a test started, so that a failing test leaves none behind. */
static pid_t daemons[8];
static int ndaemons;


void graftd_kill_all(void)
{
	for (int i = 0; i < ndaemons; i++) {
		pid_t w[8];
		int n = graftd_workers(daemons[i], w, 8);
		kill(daemons[i], SIGKILL);
		for (int k = 0; k < n; k++)
			kill(w[k], SIGKILL);
		waitpid(daemons[i], NULL, 0);
	}
}

double test_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void test_nap(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	nanosleep(&ts, NULL);
}

const char *graftd_socket(const char *dir)
{
	static char buf[700];
	snprintf(buf, sizeof(buf), "%.680s/graftd.sock", dir);
	return buf;
}

int graftd_connect(const char *dir)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	/* Not graftd_socket(): many client threads connect at once. */
	snprintf(a.sun_path, sizeof(a.sun_path), "%.90s/graftd.sock", dir);
	int fd = -1;
	/* A full listen queue (many clients at once on a slow, sanitized build)
	 * is EAGAIN: the client waits its turn, as a real one would. */
	for (int tries = 0; tries < 200; tries++) {
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0)
			return -1;
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			break;
		int e = errno;
		close(fd);
		fd = -1;
		if (e != EAGAIN)
			return -1;
		test_nap(0.01);
	}
	if (fd < 0)
		return -1;
	struct timeval tv = { 30, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

pid_t graftd_spawn(const char *dir, int workers, const char *config)
{
	char w[16], log[700], dirbuf[700], cfg[700], out[700];
	snprintf(w, sizeof(w), "%d", workers);
	snprintf(log, sizeof(log), "%.680s/graftd.log", dir);
	snprintf(dirbuf, sizeof(dirbuf), "%s", dir);
	snprintf(cfg, sizeof(cfg), "%.680s/graftd.yaml", dir);
	snprintf(out, sizeof(out), "%.680s/stderr.txt", dir);
	mkdir(dir, 0700);
	FILE *f = fopen(cfg, "w");
	cr_assert_not_null(f);
	fputs(config ? config : "log_level: debug\n", f);
	fclose(f);
	char *argv[] = { GRAFTD_BIN, "--config", cfg, "--data-dir", dirbuf, "--workers", w,
	                 "--log-file", log, NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	int rc = posix_spawn(&pid, GRAFTD_BIN, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert_eq(rc, 0, "cannot run %s (run from the repository root)", GRAFTD_BIN);
	if (ndaemons < 8)
		daemons[ndaemons++] = pid;
	return pid;
}

pid_t graftd_start_with(const char *dir, int workers, const char *config)
{
	pid_t pid = graftd_spawn(dir, workers, config);
	for (int i = 0; i < 200; i++) {
		int fd = graftd_connect(dir);
		if (fd >= 0) {
			close(fd);
			return pid;
		}
		test_nap(0.05);
	}
	cr_assert_fail("graftd did not start listening");
	return pid;
}

int graftd_http_port(const char *dir)
{
	char path[760], line[1024];
	int port = 0;
	snprintf(path, sizeof(path), "%s/graftd.log", dir);
	for (int i = 0; i < 200 && !port; i++) {
		FILE *f = fopen(path, "r");
		while (f && fgets(line, sizeof(line), f)) {
			char *p = strstr(line, ", port ");
			if (strstr(line, "HTTP on") && p)
				port = atoi(p + 7);
		}
		if (f)
			fclose(f);
		if (!port)
			test_nap(0.05);
	}
	cr_assert_gt(port, 0, "graftd logged no HTTP port");
	return port;
}

pid_t graftd_start(const char *dir, int workers)
{
	return graftd_start_with(dir, workers, NULL);
}

int graftd_stop(pid_t pid, int sig)
{
	int status;
	kill(pid, sig);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	for (int i = 0; i < ndaemons; i++)
		if (daemons[i] == pid)
			daemons[i] = daemons[--ndaemons];
	return status;
}

/* ---- HTTP as a client writes it ----------------------------------------------------- */


/* Sends raw bytes on a fresh connection, reads the answer until the server
 * closes, and parses its status line. */
resp graftd_raw(const char *dir, const char *req, size_t len)
{
	resp r = { 0 };
	int fd = graftd_connect(dir);
	if (fd < 0) {
		/* Say why: what graftd wrote before it went away, if it did. */
		char path[720], text[4096] = "", log[4096] = "";
		int e = errno;
		snprintf(path, sizeof(path), "%.680s/stderr.txt", dir);
		FILE *f = fopen(path, "r");
		if (f) {
			size_t n = fread(text, 1, sizeof(text) - 1, f);
			text[n] = '\0';
			fclose(f);
		}
		snprintf(path, sizeof(path), "%.680s/graftd.log", dir);
		f = fopen(path, "r");
		if (f) {
			fseek(f, -(long)(sizeof(log) - 1), SEEK_END);
			size_t n = fread(log, 1, sizeof(log) - 1, f);
			log[n] = '\0';
			fclose(f);
		}
		cr_assert_fail("cannot connect to graftd (%s); its stderr:\n%s\nits log:\n%s",
		               strerror(e), text, log);
	}
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, req + off, len - off);
		if (n <= 0)
			break; /* the server may refuse early and close */
		off += (size_t)n;
	}
	shutdown(fd, SHUT_WR);
	size_t cap = 1 << 16, got = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (got + 4096 > cap)
			buf = realloc(buf, cap *= 2);
		ssize_t n = read(fd, buf + got, cap - got - 1);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	sscanf(buf, "HTTP/1.1 %d", &r.status);
	char *b = strstr(buf, "\r\n\r\n");
	r.len = b ? got - (size_t)(b + 4 - buf) : 0;
	r.body = malloc(r.len + 1);
	memcpy(r.body, b ? b + 4 : "", r.len);
	r.body[r.len] = '\0';
	free(buf);
	return r;
}

resp graftd_http(const char *dir, const char *method, const char *path, const char *ctype,
                 const char *body)
{
	size_t blen = body ? strlen(body) : 0, cap = blen + 1024;
	char *req = malloc(cap);
	int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: graft\r\nConnection: close\r\n"
	                 "%s%s%sContent-Length: %zu\r\n\r\n", method, path,
	                 ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "",
	                 blen);
	memcpy(req + n, body ? body : "", blen);
	resp r = graftd_raw(dir, req, (size_t)n + blen);
	free(req);
	return r;
}

json_t *graftd_get_json(const char *dir, const char *path, int expect)
{
	resp r = graftd_http(dir, "GET", path, NULL, NULL);
	cr_assert_eq(r.status, expect, "GET %s: %d %s", path, r.status, r.body);
	json_error_t e;
	json_t *j = json_loads(r.body, 0, &e);
	cr_assert_not_null(j, "GET %s: not JSON: %s", path, r.body);
	free(r.body);
	return j;
}

/* The worker processes of graftd pid: its children running "worker". */
int graftd_workers(pid_t daemon, pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;
	while (d && (e = readdir(d)) && n < max) {
		char path[300], buf[512];
		int pid = atoi(e->d_name), ppid = 0;
		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f)) {
			char *p = strrchr(buf, ')');
			if (p)
				sscanf(p + 2, "%*c %d", &ppid);
		}
		fclose(f);
		if (ppid == daemon)
			out[n++] = pid;
	}
	if (d)
		closedir(d);
	return n;
}

static void slurp(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, len - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
}

cmd_run *graft_cmd(const char *arg, ...)
{
	static cmd_run r;
	const char *argv[32] = { GRAFT_BIN };
	char out[700], err[700];
	int n = 1, status;
	va_list ap;
	va_start(ap, arg);
	for (const char *a = arg; a && n < 31; a = va_arg(ap, const char *))
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	snprintf(out, sizeof(out), "%s", scratch_path("cmd-out.txt"));
	snprintf(err, sizeof(err), "%s", scratch_path("cmd-err.txt"));
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	pid_t pid;
	int rc = posix_spawn(&pid, GRAFT_BIN, &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert_eq(rc, 0, "cannot run %s (run from the repository root)", GRAFT_BIN);
	waitpid(pid, &status, 0);
	cr_assert(WIFEXITED(status), "graft %s crashed", arg);
	r.code = WEXITSTATUS(status);
	slurp(out, r.out, sizeof(r.out));
	slurp(err, r.err, sizeof(r.err));
	return &r;
}
