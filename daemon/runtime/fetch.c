/*
 * fetch.c - dataset files by URL (see fetch.h).
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/runtime/runtime.h"
#include "search/search.h"

struct sink {
	FILE *f;
	nn_sha256 h;
	long long bytes, max;
};

static size_t on_data(char *d, size_t size, size_t n, void *ctx)
{
	struct sink *s = ctx;
	size_t k = size * n;
	s->bytes += (long long)k;
	if (s->bytes > s->max)
		return 0; /* aborts the transfer */
	nn_sha256_update(&s->h, d, k);
	return fwrite(d, 1, k, s->f);
}

static int exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int rt_fetch_url(const char *url, const char *sha256, const char *dir,
                 const rt_fetch_limits *lim, char *out, size_t outlen, char *err, size_t errlen)
{
	char key[65], tmp[4200], got[65];
	struct sink s = { .max = lim->max_bytes };
	int rc = GRAFT_EIO;

	if (!proto_is_url(url))
		return graft_errf(err, errlen, GRAFT_EINVAL, "%s: only http:// and https:// URLs "
		                  "are fetched", url);
	if (search_make_dirs(dir, err, errlen))
		return GRAFT_EIO;
	if (sha256 && *sha256) {
		snprintf(out, outlen, "%s/%s", dir, sha256);
	} else {
		nn_sha256_hex(url, strlen(url), key);
		snprintf(out, outlen, "%s/url-%s", dir, key);
	}
	if (exists(out))
		return 0;
	static _Atomic int made;
	snprintf(tmp, sizeof(tmp), "%s.%d.%d.part", out, (int)getpid(), made++);
	s.f = fopen(tmp, "wb");
	if (!s.f)
		return graft_errf(err, errlen, GRAFT_EIO, "cannot write %s: %s", tmp, strerror(errno));
	nn_sha256_init(&s.h);
	CURL *c = curl_easy_init();
	char cerr[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, lim->timeout_s);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)lim->max_bytes);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "graftd");
	CURLcode cr = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	int wrote = fclose(s.f) == 0;
	if (cr == CURLE_FILESIZE_EXCEEDED || (cr == CURLE_WRITE_ERROR && s.bytes > s.max))
		snprintf(err, errlen, "%s: the file is larger than the limit of %lld bytes", url,
		         lim->max_bytes);
	else if (cr == CURLE_HTTP_RETURNED_ERROR)
		snprintf(err, errlen, "%s: the server answered HTTP %ld", url, status);
	else if (cr == CURLE_OPERATION_TIMEDOUT)
		snprintf(err, errlen, "%s: not fetched within %ld s", url, lim->timeout_s);
	else if (cr != CURLE_OK)
		snprintf(err, errlen, "%s: %s", url, *cerr ? cerr : curl_easy_strerror(cr));
	else if (!wrote)
		snprintf(err, errlen, "cannot write %s", tmp);
	else {
		nn_sha256_final(&s.h, got);
		if (sha256 && *sha256 && strcmp(got, sha256))
			snprintf(err, errlen, "%s: sha256 mismatch: expected %s, got %s", url, sha256,
			         got);
		else if (rename(tmp, out))
			snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
		else
			rc = 0;
	}
	if (rc)
		unlink(tmp);
	return rc;
}

int rt_fetch_job_data(proto_job *j, const char *dir, const rt_fetch_limits *lim, char *err,
                      size_t errlen)
{
	struct { char *path; const char *sha; } f[] = {
		{ j->dataset.train_images, j->dataset.train_images_sha256 },
		{ j->dataset.train_labels, j->dataset.train_labels_sha256 },
		{ j->dataset.test_images, j->dataset.test_images_sha256 },
		{ j->dataset.test_labels, j->dataset.test_labels_sha256 },
	};
	char local[PROTO_PATH_MAX];
	for (size_t i = 0; i < sizeof(f) / sizeof(*f); i++) {
		if (!proto_is_url(f[i].path))
			continue;
		int rc = rt_fetch_url(f[i].path, f[i].sha, dir, lim, local, sizeof(local), err, errlen);
		if (rc)
			return rc;
		snprintf(f[i].path, PROTO_PATH_MAX, "%s", local);
	}
	return 0;
}
