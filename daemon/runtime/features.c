/*
 * features.c - the graft feature cache as a file every worker maps.
 *
 * A frozen graft's outputs never change for an un-augmented image, so they
 * are computed once per (data, graft) and read by every candidate.  Kept in
 * each worker's memory as float32 they cost 2.9 GB per worker for
 * Fashion-MNIST at 16 channels; here they are 1.5 GB of half precision in
 * one file, in the page cache once however many workers map it.
 *
 * File: a 128-byte header (magic, counts, the key it was made for), then the
 * training images' features, then the validation images'.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/runtime/runtime.h"
#include "search/search.h"

#define MAGIC "graft-features/1"
#define HEADER 128

struct header {
	char magic[16];
	uint64_t ntrain, nval, feat;
	char key[65];
};

/* What the features depend on: the data, the graft, the normalization, and
 * the net's input and graft shapes. */
static void cache_key(const char *data_key, const nn_arch *a, const char *graft_sha,
                      size_t feat, const nn_dataset *train, const nn_dataset *val,
                      char hex[65])
{
	nn_sha256 h;
	nn_sha256_init(&h);
	nn_sha256_update(&h, MAGIC, sizeof(MAGIC));
	nn_sha256_update(&h, data_key, strlen(data_key) + 1);
	nn_sha256_update(&h, graft_sha, strlen(graft_sha) + 1);
	nn_sha256_update(&h, a->mean, sizeof(a->mean));
	nn_sha256_update(&h, a->std, sizeof(a->std));
	int64_t v[6] = { a->in_c, a->in_h, a->in_w, (int64_t)feat, train->n, val->n };
	nn_sha256_update(&h, v, sizeof(v));
	nn_sha256_final(&h, hex);
}

static size_t file_size(const struct header *hd)
{
	return HEADER + (hd->ntrain + hd->nval) * hd->feat * sizeof(nn_half);
}

/* Maps an existing cache read-only; 1 if there is none (or a stale one). */
static int map_existing(rt_features *f, const struct header *want)
{
	int fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	struct header hd;
	struct stat st;
	if (pread(fd, &hd, sizeof(hd), 0) != (ssize_t)sizeof(hd) || fstat(fd, &st) ||
	    memcmp(&hd, want, sizeof(hd)) || (size_t)st.st_size != file_size(want)) {
		close(fd);
		return 1;
	}
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return 1;
	f->map = m;
	f->map_len = (size_t)st.st_size;
	f->train = (const nn_half *)((char *)m + HEADER);
	f->val = f->train + hd.ntrain * hd.feat;
	return 0;
}

/* Computes the features into a new file beside path and renames it there. */
static int compute(rt_features *f, const struct header *hd, const nn_arch *a,
                   const char *graft_path, const char *graft_sha, const nn_dataset *train,
                   const nn_dataset *val, char *err, size_t errlen)
{
	char tmp[sizeof(f->path) + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
	size_t len = file_size(hd);
	int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)len)) {
		snprintf(err, errlen, "graft features: cannot write %s: %s", tmp, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		return GRAFT_EIO;
	}
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		snprintf(err, errlen, "graft features: cannot map %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return GRAFT_EIO;
	}
	nn_net *net = NULL;
	int rc = nn_net_from_arch(&net, a, a->train.batch, 0, err, errlen);
	if (!rc)
		rc = nn_graft_load(net, graft_path, graft_sha, (char[65]){ 0 }, err, errlen);
	nn_half *out = (nn_half *)(m + HEADER);
	if (!rc)
		rc = nn_graft_features(net, train, a->mean, a->std, out);
	if (!rc)
		rc = nn_graft_features(net, val, a->mean, a->std, out + hd->ntrain * hd->feat);
	nn_net_free(net);
	if (!rc) {
		memcpy(m, hd, sizeof(*hd));
		/* The data first, then the name: a reader never sees a part. */
		if (msync(m, len, MS_SYNC) || rename(tmp, f->path)) {
			snprintf(err, errlen, "graft features: cannot write %s: %s", f->path,
			         strerror(errno));
			rc = GRAFT_EIO;
		}
	} else if (!*err) {
		snprintf(err, errlen, "graft features: %s", graft_strerror(rc));
	}
	munmap(m, len);
	if (rc)
		unlink(tmp);
	return rc;
}

int rt_features_open(rt_features *f, const char *dir, const char *data_key, const nn_arch *a,
                     const char *graft_path, const char *graft_sha, const nn_dataset *train,
                     const nn_dataset *val, char *err, size_t errlen)
{
	memset(f, 0, sizeof(*f));
	nn_net *probe = NULL;
	int rc = nn_net_from_arch(&probe, a, 1, 0, err, errlen);
	if (rc)
		return rc;
	size_t feat = nn_graft_feature_size(probe);
	nn_net_free(probe);
	if (!feat) {
		snprintf(err, errlen, "graft features: the architecture has no frozen graft");
		return GRAFT_EINVAL;
	}
	struct header hd;
	memset(&hd, 0, sizeof(hd));
	memcpy(hd.magic, MAGIC, sizeof(hd.magic));
	hd.ntrain = (uint64_t)train->n;
	hd.nval = (uint64_t)val->n;
	hd.feat = feat;
	cache_key(data_key, a, graft_sha, feat, train, val, hd.key);

	rc = search_make_dirs(dir, err, errlen);
	if (rc)
		return rc;
	snprintf(f->path, sizeof(f->path), "%s/%.32s.f16", dir, hd.key);
	if (!map_existing(f, &hd))
		return 0;
	/* One worker computes; the others wait here, then map its file. */
	char lock[sizeof(f->path) + 8];
	snprintf(lock, sizeof(lock), "%s.lock", f->path);
	int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lfd < 0 || flock(lfd, LOCK_EX)) {
		snprintf(err, errlen, "graft features: cannot lock %s: %s", lock, strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return GRAFT_EIO;
	}
	if (map_existing(f, &hd)) {
		rc = compute(f, &hd, a, graft_path, graft_sha, train, val, err, errlen);
		if (!rc && map_existing(f, &hd)) {
			snprintf(err, errlen, "graft features: %s vanished or changed after it was "
			         "written", f->path);
			rc = GRAFT_EIO;
		}
		f->computed = !rc;
	}
	close(lfd); /* releases the lock */
	return rc;
}

void rt_features_close(rt_features *f)
{
	if (f->map)
		munmap(f->map, f->map_len);
	memset(f, 0, sizeof(*f));
}
