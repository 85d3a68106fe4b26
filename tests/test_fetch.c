/*
 * test_fetch.c - datasets by URL: files served by a small HTTP server the
 * test runs, fetched with libcurl (directly, and by graftd for a job spec):
 * a good fetch, a wrong sha256, a 404, an oversized file, a slow server,
 * and file:// and ftp:// URLs refused.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "daemon/runtime/runtime.h"
#include "tests/support/graftd_run.h"
#include "tests/support/idx_write.h"
#include "tests/support/image_write.h"
#include "tests/support/scratch.h"

static int port, listener;
static char root[600];

/* Serves files of root: GET /name -> 200 and the bytes, or 404;
 * /slow answers after 3 s. */
static void *serve(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(listener, NULL, NULL);
		if (fd < 0)
			return NULL;
		char req[2048] = "", path[1200], name[512] = "";
		size_t n = 0;
		while (n < sizeof(req) - 1 && !strstr(req, "\r\n\r\n")) {
			ssize_t k = read(fd, req + n, sizeof(req) - 1 - n);
			if (k <= 0)
				break;
			n += (size_t)k;
			req[n] = '\0';
		}
		sscanf(req, "GET /%511s", name);
		if (!strcmp(name, "slow"))
			sleep(3);
		snprintf(path, sizeof(path), "%s/%s", root, name);
		FILE *f = strchr(name, '/') ? NULL : fopen(path, "rb");
		if (!f) {
			const char *nf = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
			                 "Connection: close\r\n\r\n";
			(void)!write(fd, nf, strlen(nf));
		} else {
			fseek(f, 0, SEEK_END);
			long len = ftell(f);
			fseek(f, 0, SEEK_SET);
			char head[200], buf[65536];
			int h = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %ld\r\n"
			                 "Connection: close\r\n\r\n", len);
			(void)!write(fd, head, (size_t)h);
			size_t k;
			while ((k = fread(buf, 1, sizeof(buf), f)) > 0)
				if (write(fd, buf, k) < 0)
					break;
			fclose(f);
		}
		close(fd);
	}
}

static void setup(void)
{
	scratch_make("fetch");
	snprintf(root, sizeof(root), "%s", scratch_path("www"));
	cr_assert_eq(mkdir(root, 0755), 0);
	idx_write_part(root, "train", 1200, 12, 3, 0, 5, 0, 3);
	FILE *f = fopen(scratch_path("www/big.bin"), "wb");
	for (int i = 0; i < 2 * 1024; i++)
		fwrite((char[1024]){ 0 }, 1, 1024, f);
	fclose(f);
	signal(SIGPIPE, SIG_IGN);
	listener = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	cr_assert_eq(bind(listener, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(listener, 16), 0);
	getsockname(listener, (struct sockaddr *)&a, &len);
	port = ntohs(a.sin_port);
	pthread_t t;
	pthread_create(&t, NULL, serve, NULL);
	pthread_detach(t);
	setenv("GRAFT_CACHE_DIR", scratch_path("cache"), 1);
}

static void teardown(void)
{
	graftd_kill_all();
	scratch_remove();
}

TestSuite(fetch, .init = setup, .fini = teardown, .timeout = 120);

static const char *url(const char *name)
{
	static char buf[4][256];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "http://127.0.0.1:%d/%s", port, name);
	return buf[k];
}

static void sha_of(const char *name, char hex[65])
{
	char path[700], err[GRAFT_ERRLEN];
	snprintf(path, sizeof(path), "%s/%s", root, name);
	cr_assert_eq(nn_sha256_file(path, hex, err, sizeof(err)), 0, "%s", err);
}

static const rt_fetch_limits lim = { 1024 * 1024, 2 };

Test(fetch, a_good_fetch_is_kept_and_reused)
{
	char sha[65], out[1200], err[GRAFT_ERRLEN], again[1200];
	sha_of("train-labels-idx1-ubyte", sha);
	cr_assert_eq(rt_fetch_url(url("train-labels-idx1-ubyte"), sha, scratch_path("dl"), &lim, out,
	                          sizeof(out), err, sizeof(err)), 0, "%s", err);
	cr_assert(strstr(out, sha), "not kept by its sha256: %s", out);
	char got[65];
	cr_assert_eq(nn_sha256_file(out, got, err, sizeof(err)), 0);
	cr_assert_str_eq(got, sha);
	/* Known by its hash: no second download (the server is not asked). */
	cr_assert_eq(rt_fetch_url(url("moved-away"), sha, scratch_path("dl"), &lim, again,
	                          sizeof(again), err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(again, out);
	/* Without a hash: kept under the URL's. */
	cr_assert_eq(rt_fetch_url(url("train-labels-idx1-ubyte"), "", scratch_path("dl"), &lim, out,
	                          sizeof(out), err, sizeof(err)), 0, "%s", err);
	cr_assert(strstr(out, "url-"), "%s", out);
}

Test(fetch, failures_say_why)
{
	char out[1200], err[GRAFT_ERRLEN], bad[65];
	memset(bad, 'a', 64);
	bad[64] = '\0';
	cr_assert_neq(rt_fetch_url(url("train-labels-idx1-ubyte"), bad, scratch_path("dl"), &lim, out,
	                           sizeof(out), err, sizeof(err)), 0);
	cr_assert(strstr(err, "sha256 mismatch"), "%s", err);
	cr_assert_neq(rt_fetch_url(url("missing"), "", scratch_path("dl"), &lim, out, sizeof(out), err,
	                           sizeof(err)), 0);
	cr_assert(strstr(err, "HTTP 404"), "%s", err);
	cr_assert_neq(rt_fetch_url(url("big.bin"), "", scratch_path("dl"), &lim, out, sizeof(out), err,
	                           sizeof(err)), 0);
	cr_assert(strstr(err, "larger than the limit"), "%s", err);
	cr_assert_neq(rt_fetch_url(url("slow"), "", scratch_path("dl"), &lim, out, sizeof(out), err,
	                           sizeof(err)), 0);
	cr_assert(strstr(err, "not fetched within 2 s"), "%s", err);
	cr_assert_neq(rt_fetch_url("file:///etc/passwd", "", scratch_path("dl"), &lim, out,
	                           sizeof(out), err, sizeof(err)), 0);
	cr_assert(strstr(err, "only http"), "%s", err);
	/* Nothing half-fetched is left where the cache would find it. */
	char path[1200];
	snprintf(path, sizeof(path), "%s/%s", scratch_path("dl"), bad);
	cr_assert_neq(access(path, F_OK), 0);
}

static resp submit(const char *dir, const char *images, const char *labels_sha)
{
	char spec[2000], sha[65];
	sha_of("train-labels-idx1-ubyte", sha);
	snprintf(spec, sizeof(spec),
	         "name: by-url\n"
	         "dataset:\n"
	         "  train_images: %s\n"
	         "  train_labels: {url: '%s', sha256: %s}\n"
	         "  validation: 200\n"
	         "search: {candidates: 2, population: 2, sample: 1}\n"
	         "space: {max_blocks: 2, widths: [8], min_stem: 8, max_stem: 8}\n"
	         "train: {steps: 10, batch: 32}\ngraft: {source: none}\n",
	         images, url("train-labels-idx1-ubyte"), labels_sha ? labels_sha : sha);
	return graftd_http(dir, "POST", "/v1/jobs", "application/yaml", spec);
}

Test(fetch, graftd_fetches_a_job_s_dataset)
{
	char dir[700], bad[65];
	snprintf(dir, sizeof(dir), "%s", scratch_path("d"));
	graftd_start_with(dir, 1, "fetch_max_mb: 1\n");
	resp r = submit(dir, url("train-images-idx3-ubyte"), NULL);
	cr_assert_eq(r.status, 201, "%s", r.body);
	free(r.body);
	for (int i = 0; i < 600; i++) {
		json_t *j = graftd_get_json(dir, "/v1/jobs/1", 200);
		int done = !strcmp(json_string_value(json_object_get(j, "state")), "done");
		json_decref(j);
		if (done)
			break;
		test_nap(0.1);
	}
	json_t *j = graftd_get_json(dir, "/v1/jobs/1", 200);
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
	json_decref(j);

	memset(bad, 'b', 64);
	bad[64] = '\0';
	r = submit(dir, url("train-images-idx3-ubyte"), bad);
	cr_assert_eq(r.status, 422, "%s", r.body);
	cr_assert(strstr(r.body, "sha256 mismatch"), "%s", r.body);
	free(r.body);
	r = submit(dir, url("nothing-there"), NULL);
	cr_assert_eq(r.status, 422, "%s", r.body);
	cr_assert(strstr(r.body, "HTTP 404"), "%s", r.body);
	free(r.body);
	r = submit(dir, url("big.bin"), NULL);
	cr_assert_eq(r.status, 422, "%s", r.body);
	cr_assert(strstr(r.body, "larger than the limit"), "%s", r.body);
	free(r.body);
	r = submit(dir, "file:///etc/passwd", NULL);
	cr_assert_eq(r.status, 400, "%s", r.body);
	cr_assert(strstr(r.body, "dataset.train_images"), "%s", r.body);
	free(r.body);
	r = submit(dir, "ftp://127.0.0.1/train-images-idx3-ubyte", NULL);
	cr_assert_eq(r.status, 400, "%s", r.body);
	free(r.body);
	j = graftd_get_json(dir, "/v1/jobs", 200);
	cr_assert_eq(json_array_size(json_object_get(j, "jobs")), 1, "a refused job was stored");
	json_decref(j);
}

/* An image folder by the URL of its .tar.gz: fetched, unpacked and decoded
 * once; the job names the URL as its data. */
Test(fetch, graftd_takes_an_image_folder_by_the_url_of_its_archive)
{
	char dir[700], spec[2000], cmd[1500];
	snprintf(dir, sizeof(dir), "%s", scratch_path("d"));
	image_write_fashion(scratch_path("photos"), 0, 3, "png");
	snprintf(cmd, sizeof(cmd), "tar czf %s/photos.tar.gz -C %s photos", root, scratch_path("."));
	cr_assert_eq(system(cmd), 0);
	graftd_start_with(dir, 1, "fetch_max_mb: 1\n");
	snprintf(spec, sizeof(spec),
	         "name: photos-by-url\n"
	         "dataset: {format: folder, dir: '%s', size: 14, channels: 1, validation: 5}\n"
	         "search: {candidates: 2, population: 2, sample: 1}\n"
	         "space: {max_blocks: 2, widths: [8], min_stem: 8, max_stem: 8}\n"
	         "train: {steps: 10, batch: 8}\ngraft: {source: none}\n", url("photos.tar.gz"));
	resp r = graftd_http(dir, "POST", "/v1/jobs", "application/yaml", spec);
	cr_assert_eq(r.status, 201, "%s", r.body);
	free(r.body);
	json_t *j = NULL;
	for (int i = 0; i < 600; i++) {
		json_decref(j);
		j = graftd_get_json(dir, "/v1/jobs/1", 200);
		if (!strcmp(json_string_value(json_object_get(j, "state")), "done"))
			break;
		test_nap(0.1);
	}
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
	json_t *d = json_object_get(j, "dataset");
	cr_assert_str_eq(json_string_value(json_object_get(d, "location")), url("photos.tar.gz"));
	cr_assert_eq(json_integer_value(json_object_get(d, "images")), 30);
	json_decref(j);
	/* A URL that is not an archive's is refused in a sentence. */
	snprintf(spec, sizeof(spec), "dataset: {format: folder, dir: '%s'}\n", url("big.bin"));
	r = graftd_http(dir, "POST", "/v1/jobs", "application/yaml", spec);
	cr_assert_eq(r.status, 422, "%s", r.body);
	cr_assert(strstr(r.body, "must be a .tar.gz"), "%s", r.body);
	free(r.body);
}
