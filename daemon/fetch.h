/*
 * fetch.h - dataset files named by http(s) URL in a job spec, fetched with
 * libcurl into a cache directory and replaced by their local paths.
 */
#ifndef GRAFT_FETCH_H
#define GRAFT_FETCH_H

#include <stddef.h>

#include "proto/proto.h"

typedef struct fetch_limits {
	long long max_bytes;   /* a bigger file is refused */
	long timeout_s;        /* for the whole transfer */
} fetch_limits;

#define FETCH_DEFAULT_MAX_BYTES (2LL * 1024 * 1024 * 1024)
#define FETCH_DEFAULT_TIMEOUT_S 900L

/* Fetches url into dir unless it is there already, and puts its local path
 * in out.  With a sha256 the file is kept as dir/<sha256> (content
 * addressed: any URL with those bytes is fetched once) and a download whose
 * hash differs is refused; without one it is kept under the URL's hash and
 * fetched once.  Only http and https, redirects included (another scheme
 * is GRAFT_EINVAL); HTTP errors, oversized files and timeouts are GRAFT_EIO,
 * each with a sentence in err. */
int fetch_url(const char *url, const char *sha256, const char *dir,
              const fetch_limits *lim, char *out, size_t outlen, char *err, size_t errlen);

/* Replaces every URL among j's dataset files by its fetched local path;
 * fetch_url's codes. */
int fetch_job_data(proto_job *j, const char *dir, const fetch_limits *lim, char *err,
                   size_t errlen);

#endif
