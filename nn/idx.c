/*
 * idx.c - loads MNIST-style IDX files (an image file and its label file),
 * gzip'd or plain, and writes them (plain).
 *
 * These files come from downloads and disks we do not control, so every header
 * field is checked against the bytes that really follow it.  A pair that loads
 * at all loads whole, with as many labels as images: a silent partial or
 * mismatched load would train a net on garbage and nobody would know why.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "nn/nn.h"

#define IDX_TYPE_U8 0x08
#define IDX_MAX_DIMS 3
#define IDX_MAX_IMAGES 10000000u
#define IDX_MAX_SIDE 4096u
#define IDX_FIRST_CHUNK ((size_t)1 << 20)
#define IDX_READ_MAX ((size_t)1 << 30) /* gzread takes an unsigned, returns an int */
#define IDX_GZ_BUFFER (128u * 1024)

/* One IDX file being read: its path as given (for messages) and its stream. */
typedef struct idx_file {
	const char *path;
	gzFile gz;
	char *err;
	size_t errlen;
} idx_file;

/* What one file held: dims[0] items of dims[1] x dims[2] bytes (1 x 1 for
 * labels), data owning dims[0] * dims[1] * dims[2] bytes. */
typedef struct idx_part {
	uint32_t dims[IDX_MAX_DIMS];
	uint8_t *data;
} idx_part;

/* Like errf, with the file's path in front, as every message about a file has. */
static int idx_fail(idx_file *f, int rc, const char *fmt, ...)
{
	char msg[GRAFT_ERRLEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return graft_errf(f->err, f->errlen, rc, "%s: %s", f->path, msg);
}

/* zlib's own message starts with the path it was opened with; ours already
 * does, so the second copy is dropped. */
static const char *idx_zmsg(idx_file *f, int *errnum)
{
	const char *m = gzerror(f->gz, errnum);
	size_t plen = strlen(f->path);

	if (strncmp(m, f->path, plen) == 0 && strncmp(m + plen, ": ", 2) == 0)
		m += plen + 2;
	return m;
}

/* Turns the error zlib has recorded into our code and message: an OS read
 * error is EIO, anything else means the gzip stream itself is corrupt. */
static int idx_stream_error(idx_file *f)
{
	int errnum;
	const char *m = idx_zmsg(f, &errnum);

	if (errnum == Z_MEM_ERROR)
		return idx_fail(f, GRAFT_ENOMEM, "out of memory while decompressing");
	if (errnum == Z_ERRNO)
		return idx_fail(f, GRAFT_EIO, "read error: %s", m);
	return idx_fail(f, GRAFT_EFORMAT, "corrupt gzip stream: %s", m);
}

/* Reads up to len bytes into buf and sets *got; fewer than len only at the end
 * of the data.  A read error or a corrupt stream is an error, never a short read. */
static int idx_read(idx_file *f, void *buf, size_t len, size_t *got)
{
	*got = 0;
	while (*got < len) {
		size_t want = len - *got;
		int r;

		if (want > IDX_READ_MAX)
			want = IDX_READ_MAX;
		r = gzread(f->gz, (uint8_t *)buf + *got, (unsigned)want);
		if (r < 0)
			return idx_stream_error(f);
		if (r == 0)
			break;
		*got += (size_t)r;
	}
	return 0;
}

/* After a short read: a gzip stream that stopped before its end is worth
 * saying, since the file then is cut, not merely lying in its header. */
static const char *idx_short_why(idx_file *f)
{
	int errnum;

	idx_zmsg(f, &errnum);
	return errnum == Z_BUF_ERROR ? " (the gzip stream ends early)" : "";
}

/* Describes the items of a part for messages: "60000 images of 28x28" or
 * "60000 labels". */
static void idx_describe(const idx_part *p, int ndim, char *buf, size_t len)
{
	if (ndim == 3)
		snprintf(buf, len, "%u images of %ux%u", p->dims[0], p->dims[1], p->dims[2]);
	else
		snprintf(buf, len, "%u labels", p->dims[0]);
}

static uint32_t be32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Reads and checks the magic number (two zero bytes, the element type, the
 * number of dims) and the big-endian dims that follow it. */
static int idx_read_header(idx_file *f, int ndim, idx_part *p)
{
	uint8_t b[4 + 4 * IDX_MAX_DIMS];
	size_t want = 4 + 4 * (size_t)ndim, got;
	uint32_t magic, expect = 0x800u | (uint32_t)ndim;
	int rc = idx_read(f, b, want, &got);

	if (rc != 0)
		return rc;
	if (got < want)
		return idx_fail(f, GRAFT_EFORMAT, "truncated header: %zu of %zu bytes%s",
		                got, want, idx_short_why(f));
	magic = be32(b);
	if (b[0] != 0 || b[1] != 0)
		return idx_fail(f, GRAFT_EFORMAT, "bad magic 0x%08x: not an IDX file "
		                "(expected 0x%08x)", magic, expect);
	if (b[2] != IDX_TYPE_U8)
		return idx_fail(f, GRAFT_EFORMAT, "bad magic 0x%08x: element type 0x%02x, "
		                "expected 0x%02x (unsigned byte)", magic, b[2], IDX_TYPE_U8);
	if (b[3] != ndim)
		return idx_fail(f, GRAFT_EFORMAT, "bad magic 0x%08x: %u dims, expected %d "
		                "(%s)", magic, b[3], ndim,
		                ndim == 3 ? "images, rows, cols" : "labels");
	for (int i = 0; i < IDX_MAX_DIMS; i++)
		p->dims[i] = i < ndim ? be32(b + 4 + 4 * i) : 1;
	return 0;
}

/* Rejects dims no real dataset has before anything is allocated for them, and
 * returns the byte count of the data in *bytes. */
static int idx_check_dims(idx_file *f, int ndim, const idx_part *p, size_t *bytes)
{
	char what[96];
	uint64_t total;

	idx_describe(p, ndim, what, sizeof what);
	if (p->dims[0] == 0 || p->dims[1] == 0 || p->dims[2] == 0)
		return idx_fail(f, GRAFT_EFORMAT, "zero dimension: header says %s", what);
	if (p->dims[0] > IDX_MAX_IMAGES || p->dims[1] > IDX_MAX_SIDE ||
	    p->dims[2] > IDX_MAX_SIDE)
		return idx_fail(f, GRAFT_EFORMAT, "absurd dimensions: header says %s, the "
		                "limits are %u items of %ux%u", what, IDX_MAX_IMAGES,
		                IDX_MAX_SIDE, IDX_MAX_SIDE);
	/* Within those limits the product fits 64 bits; size_t may be narrower. */
	total = (uint64_t)p->dims[0] * p->dims[1] * p->dims[2];
	if (total > SIZE_MAX / 2)
		return idx_fail(f, GRAFT_EFORMAT, "absurd dimensions: header says %s "
		                "(%llu bytes), more than this machine can address", what,
		                (unsigned long long)total);
	*bytes = (size_t)total;
	return 0;
}

/* Reads up to len bytes of data.  The buffer grows as bytes arrive instead of
 * trusting the header's size up front, so a cut file whose header claims
 * gigabytes costs only what it really holds. */
static int idx_read_payload(idx_file *f, size_t len, uint8_t **out, size_t *got)
{
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0;

	while (n < len) {
		size_t r;
		int rc;

		if (n == cap) {
			size_t ncap = cap == 0 ? IDX_FIRST_CHUNK : cap * 2;
			uint8_t *nb;

			if (ncap > len || ncap < cap)
				ncap = len;
			nb = realloc(buf, ncap);
			if (nb == NULL) {
				free(buf);
				return idx_fail(f, GRAFT_ENOMEM, "out of memory for %zu bytes", ncap);
			}
			buf = nb;
			cap = ncap;
		}
		rc = idx_read(f, buf + n, cap - n, &r);
		if (rc != 0) {
			free(buf);
			return rc;
		}
		n += r;
		if (n < cap)
			break;
	}
	*out = buf;
	*got = n;
	return 0;
}

/* The data must end where the header says it does: bytes after it mean the
 * header and the file disagree, and we cannot tell which one is wrong. */
static int idx_expect_end(idx_file *f, const char *what)
{
	uint8_t tmp[4096];
	size_t extra = 0, r;
	int rc;

	do {
		rc = idx_read(f, tmp, sizeof tmp, &r);
		if (rc != 0)
			return rc;
		extra += r;
	} while (r == sizeof tmp);
	if (extra > 0)
		return idx_fail(f, GRAFT_EFORMAT, "trailing garbage: %zu bytes after the %s "
		                "the header declares", extra, what);
	/* A gzip stream cut right after the data still lacks its checksum. */
	if (*idx_short_why(f) != '\0')
		return idx_fail(f, GRAFT_EFORMAT, "truncated gzip stream: it ends "
		                "before its checksum");
	return 0;
}

/* Reads the header, the data and the (absent) tail of an open file into p. */
static int idx_read_part(idx_file *f, int ndim, idx_part *p)
{
	char what[96];
	size_t bytes = 0, got = 0;
	int rc;

	rc = idx_read_header(f, ndim, p);
	if (rc == 0)
		rc = idx_check_dims(f, ndim, p, &bytes);
	if (rc == 0)
		rc = idx_read_payload(f, bytes, &p->data, &got);
	if (rc != 0)
		return rc;
	idx_describe(p, ndim, what, sizeof what);
	if (got < bytes)
		rc = idx_fail(f, GRAFT_EFORMAT, "truncated: header says %s (%zu bytes) but "
		              "the file holds %zu%s", what, bytes, got, idx_short_why(f));
	if (rc == 0)
		rc = idx_expect_end(f, what);
	if (rc != 0) {
		free(p->data);
		p->data = NULL;
	}
	return rc;
}

/* Loads one IDX file of ndim dims (3: images, 1: labels) into p. */
static int idx_load_file(const char *path, int ndim, idx_part *p,
                         char *err, size_t errlen)
{
	idx_file f = { .path = path, .err = err, .errlen = errlen };
	int rc;

	errno = 0;
	f.gz = gzopen(path, "rb");
	if (f.gz == NULL) {
		/* gzopen leaves errno at 0 when it is zlib's own allocation that failed. */
		if (errno == 0)
			return idx_fail(&f, GRAFT_ENOMEM, "out of memory opening the file");
		return idx_fail(&f, GRAFT_EIO, "cannot open: %s", strerror(errno));
	}
	gzbuffer(f.gz, IDX_GZ_BUFFER);
	rc = idx_read_part(&f, ndim, p);
	gzclose_r(f.gz);
	return rc;
}

/* The number of classes is the largest label + 1, and at least 2: a labels
 * file that happens to hold one class still describes a classifier. */
static int idx_classes(const uint8_t *labels, size_t n)
{
	int max = 0;

	for (size_t i = 0; i < n; i++)
		if (labels[i] > max)
			max = labels[i];
	return max + 1 < 2 ? 2 : max + 1;
}

int nn_idx_load(nn_dataset *ds, const char *images_path, const char *labels_path,
                char *err, size_t errlen)
{
	idx_part img = { { 0 }, NULL }, lab = { { 0 }, NULL };
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (ds == NULL || images_path == NULL || labels_path == NULL)
		return graft_errf(err, errlen, GRAFT_EINVAL, "nn_idx_load: NULL argument");
	memset(ds, 0, sizeof *ds);
	rc = idx_load_file(images_path, 3, &img, err, errlen);
	if (rc == 0)
		rc = idx_load_file(labels_path, 1, &lab, err, errlen);
	if (rc == 0 && img.dims[0] != lab.dims[0])
		rc = graft_errf(err, errlen, GRAFT_EFORMAT, "count mismatch: %s holds %u images "
		          "but %s holds %u labels", images_path, img.dims[0], labels_path,
		          lab.dims[0]);
	if (rc != 0) {
		free(img.data);
		free(lab.data);
		return rc;
	}
	ds->n = (int)img.dims[0];
	ds->c = 1;
	ds->h = (int)img.dims[1];
	ds->w = (int)img.dims[2];
	ds->classes = idx_classes(lab.data, lab.dims[0]);
	ds->pixels = img.data;
	ds->labels = lab.data;
	return 0;
}

/* One IDX file written whole under a temporary name, then renamed: a
 * reader never sees half of it. */
static int write_idx(const char *path, const uint8_t *header, size_t hlen, const uint8_t *body,
                     size_t blen, char *err, size_t errlen)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return graft_errf(err, errlen, GRAFT_EIO, "cannot create %s: %s", tmp, strerror(errno));
	int bad = fwrite(header, 1, hlen, f) != hlen || fwrite(body, 1, blen, f) != blen;
	bad |= fclose(f) != 0;
	if (bad || rename(tmp, path)) {
		int e = errno;
		remove(tmp);
		return graft_errf(err, errlen, GRAFT_EIO, "cannot write %s: %s", path, strerror(e));
	}
	return 0;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int nn_idx_save(const nn_dataset *ds, const char *images_path, const char *labels_path,
                char *err, size_t errlen)
{
	uint8_t ih[16], lh[8];
	if (ds->c != 1)
		return graft_errf(err, errlen, GRAFT_EINVAL, "IDX holds one channel; the images have "
		                  "%d (write an image folder instead)", ds->c);
	put_be32(ih, 0x803);
	put_be32(ih + 4, (uint32_t)ds->n);
	put_be32(ih + 8, (uint32_t)ds->h);
	put_be32(ih + 12, (uint32_t)ds->w);
	put_be32(lh, 0x801);
	put_be32(lh + 4, (uint32_t)ds->n);
	int rc = write_idx(images_path, ih, sizeof(ih), ds->pixels, (size_t)ds->n * ds->h * ds->w,
	                   err, errlen);
	return rc ? rc : write_idx(labels_path, lh, sizeof(lh), ds->labels, (size_t)ds->n, err,
	                           errlen);
}
