/*
 * bench_api.c - graftd's API latency while its workers train: the real
 * bin/graftd on a scratch directory, a Fashion-MNIST job keeping every
 * worker busy, and many clients polling a job's status, the job list and
 * the leaderboard on fresh connections, as `graft watch` and a dashboard
 * would.  Prints p50, p99 and max; asserts nothing (a measurement: run it
 * on an otherwise idle machine).
 *
 *   build/bench/bench_api [--clients 50] [--requests 40] [--workers 2]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FMNIST "/usr/share/datasets/fashion-mnist"

extern char **environ;

static char dir[64], sock[96];

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void nap(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	nanosleep(&ts, NULL);
}

/* One request on a fresh connection; the status, and the body in *body
 * (malloc'd) when asked.  0 when graftd could not be reached. */
static int http(const char *method, const char *path, const char *body, char **out)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	for (int tries = 0; connect(fd, (struct sockaddr *)&a, sizeof(a)); tries++) {
		if (errno != EAGAIN || tries > 1000) {
			close(fd);
			return 0;
		}
		nap(0.001);
	}
	char req[4096];
	int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: graft\r\nConnection: close\r\n"
	                 "Content-Type: application/yaml\r\nContent-Length: %zu\r\n\r\n%s", method,
	                 path, body ? strlen(body) : 0, body ? body : "");
	if (write(fd, req, (size_t)n) != n) {
		close(fd);
		return 0;
	}
	size_t cap = 65536, got = 0;
	char *buf = malloc(cap);
	ssize_t k;
	while (buf && (k = read(fd, buf + got, cap - got - 1)) > 0) {
		got += (size_t)k;
		if (got + 1 == cap)
			buf = realloc(buf, cap *= 2);
	}
	close(fd);
	if (!buf)
		return 0;
	buf[got] = '\0';
	int status = 0;
	sscanf(buf, "HTTP/1.1 %d", &status);
	if (out) {
		char *b = strstr(buf, "\r\n\r\n");
		*out = strdup(b ? b + 4 : "");
	}
	free(buf);
	return status;
}

static json_t *get_json(const char *path)
{
	char *body = NULL;
	int status = http("GET", path, NULL, &body);
	json_t *j = status == 200 ? json_loads(body, 0, NULL) : NULL;
	free(body);
	return j;
}

static int in_flight(void)
{
	json_t *j = get_json("/v1/jobs/1");
	int n = (int)json_integer_value(json_object_get(json_object_get(j, "progress"),
	                                                "in_flight"));
	json_decref(j);
	return n;
}

struct client {
	int requests, errors;
	double *lat;
};

static void *client_main(void *arg)
{
	static const char *const paths[] = { "/v1/jobs/1", "/v1/jobs",
	                                     "/v1/jobs/1/leaderboard?limit=5" };
	struct client *c = arg;
	for (int i = 0; i < c->requests; i++) {
		double t0 = now();
		c->errors += http("GET", paths[i % 3], NULL, NULL) != 200;
		c->lat[i] = now() - t0;
	}
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "clients", required_argument, 0, 'c' },
	                                      { "requests", required_argument, 0, 'r' },
	                                      { "workers", required_argument, 0, 'w' },
	                                      { 0, 0, 0, 0 } };
	int clients = 50, requests = 40, workers = 2, o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		long v = optarg ? strtol(optarg, NULL, 10) : 0;
		if (o == '?' || v < 1 || v > 1000) {
			fprintf(stderr, "usage: bench_api [--clients N] [--requests N] [--workers N]\n");
			return 2;
		}
		*(o == 'c' ? &clients : o == 'r' ? &requests : &workers) = (int)v;
	}
	if (access(FMNIST "/train-images-idx3-ubyte.gz", R_OK)) {
		fprintf(stderr, "bench_api: %s is missing (Debian package dataset-fashion-mnist)\n",
		        FMNIST);
		return 1;
	}
	snprintf(dir, sizeof(dir), "%s/graft-bench-api.XXXXXX", getenv("TMPDIR") ?: "/tmp");
	if (!mkdtemp(dir)) {
		perror("bench_api: mkdtemp");
		return 1;
	}
	snprintf(sock, sizeof(sock), "%s/graftd.sock", dir);
	char w[16], log[128];
	snprintf(w, sizeof(w), "%d", workers);
	snprintf(log, sizeof(log), "%s/graftd.log", dir);
	char *gargv[] = { "bin/graftd", "--data-dir", dir, "--workers", w, "--log-file", log, NULL };
	pid_t pid;
	if (posix_spawn(&pid, "bin/graftd", NULL, NULL, gargv, environ)) {
		fprintf(stderr, "bench_api: cannot run bin/graftd (run from the repository root)\n");
		return 1;
	}
	int rc = 1;
	double t0 = now();
	while (http("GET", "/v1/health", NULL, NULL) != 200 && now() - t0 < 30)
		nap(0.05);
	char spec[1024];
	snprintf(spec, sizeof(spec),
	         "name: bench-api\n"
	         "dataset: {train_images: %s/train-images-idx3-ubyte.gz,\n"
	         "          train_labels: %s/train-labels-idx1-ubyte.gz}\n"
	         "search: {candidates: 40, seed: 1}\n"
	         "train: {steps: 3000}\n"
	         "graft: {source: none}\n", FMNIST, FMNIST);
	if (http("POST", "/v1/jobs", spec, NULL) != 201) {
		fprintf(stderr, "bench_api: the job was refused; see %s\n", log);
		goto out;
	}
	t0 = now();
	while (in_flight() < workers && now() - t0 < 120)
		nap(0.1);
	if (in_flight() < workers) {
		fprintf(stderr, "bench_api: the workers never all trained; see %s\n", log);
		goto out;
	}
	struct client *c = calloc((size_t)clients, sizeof(*c));
	pthread_t *t = calloc((size_t)clients, sizeof(*t));
	double *all = calloc((size_t)clients * requests, sizeof(*all));
	for (int i = 0; i < clients; i++) {
		c[i] = (struct client){ .requests = requests, .lat = all + (size_t)i * requests };
		pthread_create(&t[i], NULL, client_main, &c[i]);
	}
	int errors = 0;
	for (int i = 0; i < clients; i++) {
		pthread_join(t[i], NULL);
		errors += c[i].errors;
	}
	int busy_after = in_flight();
	/* graftd's own view (request whole to answer queued), from its metrics:
	 * what the loop spent, without the clients' scheduling and connects. */
	char *metrics = NULL;
	http("GET", "/v1/metrics", NULL, &metrics);
	long under[3] = { 0 }, total = 0;
	static const char *const les[] = { "0.0025", "0.005", "0.01" };
	for (int i = 0; metrics && i < 3; i++) {
		char key[80];
		snprintf(key, sizeof(key), "graft_request_duration_seconds_bucket{le=\"%s\"} ", les[i]);
		const char *at = strstr(metrics, key);
		if (at)
			under[i] = strtol(at + strlen(key), NULL, 10);
	}
	const char *cnt = metrics ? strstr(metrics, "graft_request_duration_seconds_count ") : NULL;
	if (cnt)
		total = strtol(cnt + strlen("graft_request_duration_seconds_count "), NULL, 10);
	free(metrics);
	int n = clients * requests;
	qsort(all, (size_t)n, sizeof(*all), cmp);
	printf("graftd API latency, %d clients x %d requests (status, job list, leaderboard) "
	       "while %d workers train:\n  p50 %.2f ms, p99 %.2f ms, max %.2f ms; %d errors; "
	       "%d workers still training at the end\n", clients, requests, workers,
	       all[n / 2] * 1e3, all[n * 99 / 100] * 1e3, all[n - 1] * 1e3, errors, busy_after);
	if (total > 0)
		printf("  inside graftd (all %ld requests of its life): %.1f%% answered within 2.5 ms, "
		       "%.1f%% within 5 ms, %.1f%% within 10 ms\n", total, 100.0 * under[0] / total,
		       100.0 * under[1] / total, 100.0 * under[2] / total);
	free(c);
	free(t);
	free(all);
	rc = errors ? 1 : 0;
out:
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	char rm[400];
	snprintf(rm, sizeof(rm), "rm -rf '%s'", dir);
	if (system(rm))
		fprintf(stderr, "bench_api: could not remove %s\n", dir);
	return rc;
}
