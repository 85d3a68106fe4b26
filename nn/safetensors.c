/*
 * safetensors.c - named float32 tensors in the safetensors format, the weight
 * file of graft-arch/1 (see ARCH-FORMAT.md).
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON header
 *   {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {string: string}}   (the metadata is optional)
 * and then the data buffer, which the offsets index from its first byte.
 *
 * Weight files come from other programs and from the network, so the reader
 * trusts nothing: every length, offset and shape is checked before it is used,
 * and a file that lies is GRAFT_EFORMAT with one line naming the problem.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "nn/nn.h"

/* The data section is copied verbatim into float arrays, which is only right
 * where floats are little-endian like the file; graft builds on x86_64 and
 * arm64, both little-endian. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors data is little-endian; this host is not");

/* The reference implementation refuses headers over 100 MB; a header that big
 * is an attack on the JSON parser, not a weight file. */
#define ST_MAX_HEADER 100000000ULL

/* Our networks are a few megabytes; a bigger file is a mistake we refuse
 * before reading it into memory. */
#define ST_MAX_FILE (4ULL << 30)

/* Where error messages go: every message starts with the file's path. */
struct st_ctx {
	const char *path;
	char *err;
	size_t errlen;
};

/* A tensor of the header with its place in the data section, kept while the
 * reader checks that the places tile the section exactly. */
struct st_entry {
	nn_tensor t;
	uint64_t begin, end;
	size_t order; /* position in the header, to keep sorting deterministic */
};

/* Writes "path: message" into the context's buffer and returns rc.  Control
 * characters become spaces: names and JSON errors come from the file, and the
 * message must stay one line whatever the file holds. */
__attribute__((format(printf, 3, 4)))
static int fail(const struct st_ctx *c, int rc, const char *fmt, ...)
{
	if (c->err == NULL || c->errlen == 0)
		return rc;
	int n = snprintf(c->err, c->errlen, "%s: ", c->path);
	if (n >= 0 && (size_t)n < c->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	for (char *p = c->err; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return rc;
}

int64_t nn_tensor_numel(const nn_tensor *t)
{
	if (t == NULL || t->ndim < 1 || t->ndim > 4)
		return -1;
	for (int i = 0; i < t->ndim; i++) {
		if (t->shape[i] < 0)
			return -1;
		if (t->shape[i] == 0)
			return 0;
	}
	/* Bounded so that numel * sizeof(float) still fits an int64_t, which lets
	 * every caller compute byte sizes without checking again. */
	int64_t n = 1;
	for (int i = 0; i < t->ndim; i++) {
		if (n > INT64_MAX / 4 / t->shape[i])
			return -1;
		n *= t->shape[i];
	}
	return n;
}

int nn_tensor_same_shape(const nn_tensor *a, const nn_tensor *b)
{
	if (a->ndim != b->ndim)
		return 0;
	for (int i = 0; i < a->ndim; i++)
		if (a->shape[i] != b->shape[i])
			return 0;
	return 1;
}

/* Formats a shape as "[2, 3]" for messages. */
static const char *shape_str(const nn_tensor *t, char *buf, size_t len)
{
	size_t at = (size_t)snprintf(buf, len, "[");
	for (int i = 0; i < t->ndim && at < len; i++)
		at += (size_t)snprintf(buf + at, len - at, "%s%lld", i ? ", " : "",
		                       (long long)t->shape[i]);
	if (at < len)
		snprintf(buf + at, len - at, "]");
	return buf;
}

/* Reads until len bytes or end of file, retrying interrupted and short reads.
 * Returns the number of bytes read, or -1 with errno set. */
static ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t r = read(fd, (char *)buf + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* Writes all len bytes, retrying interrupted and short writes. */
static int write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = write(fd, (const char *)buf + done, len - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = ENOSPC;
			return -1;
		}
		done += (size_t)r;
	}
	return 0;
}

/* ---- writer -------------------------------------------------------------- */

/* Checks one tensor the caller handed us; a file we could not read back
 * must not be written. */
static int check_tensor(const struct st_ctx *c, const nn_tensor *t, int i)
{
	if (memchr(t->name, '\0', NN_NAME_MAX) == NULL)
		return fail(c, GRAFT_EINVAL, "tensor %d: name is not terminated within "
		            "%d bytes", i, NN_NAME_MAX);
	if (t->name[0] == '\0' || strcmp(t->name, "__metadata__") == 0)
		return fail(c, GRAFT_EINVAL, "tensor %d: name '%s' is empty or reserved",
		            i, t->name);
	if (nn_tensor_numel(t) < 0)
		return fail(c, GRAFT_EINVAL, "tensor '%s': ndim %d or its shape is "
		            "invalid", t->name, t->ndim);
	if (t->data == NULL && nn_tensor_numel(t) > 0)
		return fail(c, GRAFT_EINVAL, "tensor '%s': data is NULL", t->name);
	return 0;
}

/* Whether the len bytes at s are UTF-8 as RFC 3629 defines it: no overlong
 * forms, no surrogates, nothing past U+10FFFF.  jansson would refuse such a
 * string too, but only with a NULL that also means out of memory. */
static int utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	while (p < end) {
		unsigned c = *p++;
		int more;
		uint32_t cp, min;
		if (c < 0x80)
			continue;
		if ((c & 0xe0) == 0xc0)
			more = 1, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			more = 2, cp = c & 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			more = 3, cp = c & 0x07, min = 0x10000;
		else
			return 0;
		if (end - p < more)
			return 0;
		for (; more > 0; more--, p++) {
			if ((*p & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (*p & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
	}
	return 1;
}

/* Checks one metadata key or value of pair i; what is "key" or "value". */
static int check_meta_string(const struct st_ctx *c, const char *s, int i,
                             const char *what)
{
	if (s == NULL)
		return fail(c, GRAFT_EINVAL, "metadata pair %d: %s is NULL", i, what);
	size_t len = strnlen(s, NN_META_LEN_MAX + 1);
	if (len > NN_META_LEN_MAX)
		return fail(c, GRAFT_EINVAL, "metadata pair %d: %s is longer than the %d "
		            "bytes allowed", i, what, NN_META_LEN_MAX);
	if (!utf8_valid(s, len))
		return fail(c, GRAFT_EINVAL, "metadata pair %d: %s is not valid UTF-8",
		            i, what);
	return 0;
}

/* Builds the "__metadata__" object from the caller's key/value pairs, in
 * order; *out stays NULL when there are none, so no empty object is written. */
static int build_metadata(const struct st_ctx *c, const char *const *meta,
                          int nmeta, json_t **out)
{
	*out = NULL;
	if (nmeta < 0 || nmeta > NN_META_MAX)
		return fail(c, GRAFT_EINVAL, "%d metadata pairs, want 0..%d", nmeta,
		            NN_META_MAX);
	if (nmeta == 0)
		return 0;
	if (meta == NULL)
		return fail(c, GRAFT_EINVAL, "%d metadata pairs but meta is NULL", nmeta);
	json_t *obj = json_object();
	int rc = obj ? 0 : fail(c, GRAFT_ENOMEM, "out of memory");
	for (int i = 0; rc == 0 && i < nmeta; i++) {
		const char *key = meta[2 * i], *val = meta[2 * i + 1];
		if ((rc = check_meta_string(c, key, i, "key")) != 0 ||
		    (rc = check_meta_string(c, val, i, "value")) != 0)
			break;
		if (key[0] == '\0')
			rc = fail(c, GRAFT_EINVAL, "metadata pair %d: key is empty", i);
		else if (json_object_get(obj, key) != NULL)
			rc = fail(c, GRAFT_EINVAL, "metadata key '%.64s' appears twice", key);
		/* Both strings are valid UTF-8 by now, so only memory can fail. */
		else if (json_object_set_new(obj, key, json_string(val)) != 0)
			rc = fail(c, GRAFT_ENOMEM, "out of memory");
	}
	if (rc != 0) {
		json_decref(obj);
		return rc;
	}
	*out = obj;
	return 0;
}

/* Builds the header entry of t, placed at data offset off. */
static json_t *header_entry(const nn_tensor *t, int64_t off, int64_t bytes)
{
	json_t *shape = json_array();
	for (int d = 0; shape != NULL && d < t->ndim; d++)
		if (json_array_append_new(shape, json_integer(t->shape[d])) != 0) {
			json_decref(shape);
			shape = NULL;
		}
	return json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape,
	                 "data_offsets", (json_int_t)off, (json_int_t)(off + bytes));
}

/* Builds the JSON header of the n tensors, laid out in order, after the
 * metadata (first, where the reference implementation puts it). */
static int build_header(const struct st_ctx *c, const nn_tensor *t, int n,
                        const char *const *meta, int nmeta,
                        json_t **out, int64_t *data_size)
{
	json_t *md = NULL;
	int rc = build_metadata(c, meta, nmeta, &md);
	if (rc != 0)
		return rc;
	json_t *root = json_object();
	if (root == NULL) {
		json_decref(md);
		return fail(c, GRAFT_ENOMEM, "out of memory");
	}
	/* json_object_set_new takes md even when it fails. */
	if (md != NULL && json_object_set_new(root, "__metadata__", md) != 0)
		rc = fail(c, GRAFT_ENOMEM, "out of memory");
	int64_t off = 0;
	for (int i = 0; rc == 0 && i < n; i++) {
		if ((rc = check_tensor(c, &t[i], i)) != 0)
			break;
		int64_t bytes = nn_tensor_numel(&t[i]) * 4;
		if (json_object_get(root, t[i].name) != NULL) {
			rc = fail(c, GRAFT_EINVAL, "tensor '%s' appears twice", t[i].name);
		} else if (bytes > INT64_MAX - off) {
			rc = fail(c, GRAFT_ERANGE, "tensors too large for one file");
		} else {
			json_t *e = header_entry(&t[i], off, bytes);
			if (e == NULL)
				rc = fail(c, GRAFT_ENOMEM, "out of memory");
			/* jansson refuses a key that is not UTF-8; it can also fail
			 * out of memory, which at these sizes we do not tell apart. */
			else if (json_object_set_new(root, t[i].name, e) != 0)
				rc = fail(c, GRAFT_EINVAL, "tensor name '%s' is not valid "
				          "UTF-8", t[i].name);
			off += bytes;
		}
	}
	if (rc != 0) {
		json_decref(root);
		return rc;
	}
	*out = root;
	*data_size = off;
	return 0;
}

/* Serializes the header with its 8-byte length in front, padded with spaces so
 * the data section starts 8-aligned, as the reference implementation does. */
static int dump_header(const struct st_ctx *c, json_t *root, char **out, size_t *len)
{
	char *json = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (json == NULL)
		return fail(c, GRAFT_ENOMEM, "out of memory");
	size_t jlen = strlen(json);
	size_t hlen = (jlen + 7) & ~(size_t)7;
	char *buf = malloc(8 + hlen);
	if (buf == NULL) {
		free(json);
		return fail(c, GRAFT_ENOMEM, "out of memory");
	}
	for (int i = 0; i < 8; i++)
		buf[i] = (char)(((uint64_t)hlen >> (8 * i)) & 0xff);
	memcpy(buf + 8, json, jlen);
	memset(buf + 8 + jlen, ' ', hlen - jlen);
	free(json);
	*out = buf;
	*len = 8 + hlen;
	return 0;
}

/* Makes the rename durable.  Best effort: the file is complete and in place by
 * now, and some file systems cannot fsync a directory at all. */
static void sync_parent_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path))
	                  : strdup(".");
	if (dir == NULL)
		return;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(dir);
}

/* Writes header and data to PATH.tmp, syncs it and renames it over path, so
 * that a crash leaves either the old file or the whole new one. */
static int write_atomic(const struct st_ctx *c, const char *hdr, size_t hlen,
                        const nn_tensor *t, int n)
{
	size_t plen = strlen(c->path);
	char *tmp = malloc(plen + 5);
	if (tmp == NULL)
		return fail(c, GRAFT_ENOMEM, "out of memory");
	memcpy(tmp, c->path, plen);
	memcpy(tmp + plen, ".tmp", 5);

	int rc = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = fail(c, GRAFT_EIO, "cannot create %s: %s", tmp, strerror(errno));
		free(tmp);
		return rc;
	}
	int ok = write_full(fd, hdr, hlen) == 0;
	for (int i = 0; ok && i < n; i++)
		ok = write_full(fd, t[i].data, (size_t)nn_tensor_numel(&t[i]) * 4) == 0;
	if (!ok)
		rc = fail(c, GRAFT_EIO, "cannot write %s: %s", tmp, strerror(errno));
	else if (fsync(fd) != 0)
		rc = fail(c, GRAFT_EIO, "cannot sync %s: %s", tmp, strerror(errno));
	if (close(fd) != 0 && rc == 0)
		rc = fail(c, GRAFT_EIO, "cannot close %s: %s", tmp, strerror(errno));
	if (rc == 0 && rename(tmp, c->path) != 0)
		rc = fail(c, GRAFT_EIO, "cannot rename %s: %s", tmp, strerror(errno));
	if (rc != 0)
		unlink(tmp);
	else
		sync_parent_dir(c->path);
	free(tmp);
	return rc;
}

int nn_safetensors_write(const char *path, const nn_tensor *t, int n,
                         char *err, size_t errlen)
{
	return nn_safetensors_write_meta(path, t, n, NULL, 0, err, errlen);
}

int nn_safetensors_write_meta(const char *path, const nn_tensor *t, int n,
                              const char *const *meta, int nmeta,
                              char *err, size_t errlen)
{
	struct st_ctx c = { path ? path : "(null)", err, errlen };
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (path == NULL || n < 0 || (n > 0 && t == NULL))
		return fail(&c, GRAFT_EINVAL, "no path or no tensors");

	json_t *root = NULL;
	int64_t data_size = 0;
	int rc = build_header(&c, t, n, meta, nmeta, &root, &data_size);
	if (rc != 0)
		return rc;
	char *hdr = NULL;
	size_t hlen = 0;
	rc = dump_header(&c, root, &hdr, &hlen);
	json_decref(root);
	if (rc != 0)
		return rc;
	if ((uint64_t)data_size > ST_MAX_FILE - hlen)
		rc = fail(&c, GRAFT_ERANGE, "%llu bytes of tensors exceed the 4 GiB "
		          "that nn_safetensors_read accepts", (unsigned long long)data_size);
	else
		rc = write_atomic(&c, hdr, hlen, t, n);
	free(hdr);
	return rc;
}

/* ---- reader -------------------------------------------------------------- */

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "real";
	case JSON_TRUE: return "true";
	case JSON_FALSE: return "false";
	case JSON_NULL: return "null";
	}
	return "value";
}

/* Checks the file's size and reads its 8-byte header length, leaving fd just
 * after it. */
static int read_prefix(const struct st_ctx *c, int fd, uint64_t *size, uint64_t *hlen)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return fail(c, GRAFT_EIO, "%s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(c, GRAFT_EIO, "not a regular file");
	*size = (uint64_t)st.st_size;
	if (*size > ST_MAX_FILE)
		return fail(c, GRAFT_ERANGE, "file is %llu bytes, over the 4 GiB limit",
		            (unsigned long long)*size);
	unsigned char len8[8];
	ssize_t got = *size < 8 ? 0 : read_full(fd, len8, 8);
	if (got < 0)
		return fail(c, GRAFT_EIO, "%s", strerror(errno));
	if (*size < 8 || got < 8)
		return fail(c, GRAFT_EFORMAT, "file is %llu bytes, shorter than the "
		            "8-byte header length", (unsigned long long)*size);
	*hlen = 0;
	for (int i = 0; i < 8; i++)
		*hlen |= (uint64_t)len8[i] << (8 * i);
	if (*hlen > ST_MAX_HEADER)
		return fail(c, GRAFT_EFORMAT, "header length %llu exceeds the limit of "
		            "%llu bytes", (unsigned long long)*hlen, ST_MAX_HEADER);
	if (*hlen > *size - 8)
		return fail(c, GRAFT_EFORMAT, "header length %llu runs past the end of "
		            "the file (%llu bytes)", (unsigned long long)*hlen,
		            (unsigned long long)*size);
	return 0;
}

/* Reads and parses the JSON header; leaves fd at the data section and sets
 * *data_size to its length. */
static int read_header(const struct st_ctx *c, int fd, json_t **out, uint64_t *data_size)
{
	uint64_t size = 0, hlen = 0;
	int rc = read_prefix(c, fd, &size, &hlen);
	if (rc != 0)
		return rc;
	char *buf = malloc(hlen ? hlen : 1);
	if (buf == NULL)
		return fail(c, GRAFT_ENOMEM, "out of memory for a %llu-byte header",
		            (unsigned long long)hlen);
	ssize_t got = read_full(fd, buf, hlen);
	if (got < 0)
		rc = fail(c, GRAFT_EIO, "%s", strerror(errno));
	else if ((uint64_t)got < hlen)
		rc = fail(c, GRAFT_EFORMAT, "file was truncated while being read");
	json_error_t jerr;
	json_t *root = rc ? NULL : json_loadb(buf, hlen, JSON_REJECT_DUPLICATES, &jerr);
	free(buf);
	if (rc != 0)
		return rc;
	if (root == NULL)
		return fail(c, GRAFT_EFORMAT, "header %s: line %d column %d: %s",
		            json_error_code(&jerr) == json_error_duplicate_key ?
		            "names a tensor twice" : "is not valid JSON",
		            jerr.line, jerr.column, jerr.text);
	if (!json_is_object(root)) {
		rc = fail(c, GRAFT_EFORMAT, "header is a JSON %s, not an object",
		          json_kind(root));
		json_decref(root);
		return rc;
	}
	*out = root;
	*data_size = size - 8 - hlen;
	return 0;
}

/* Reads "shape" into t: 0 to 4 non-negative integers.  A 0-dim scalar becomes
 * shape [1], since nn_tensor has at least one dimension. */
static int parse_shape(const struct st_ctx *c, const char *name, json_t *v, nn_tensor *t)
{
	json_t *s = json_object_get(v, "shape");
	if (!json_is_array(s))
		return fail(c, GRAFT_EFORMAT, "tensor '%s': shape missing or not an array",
		            name);
	size_t nd = json_array_size(s);
	if (nd > 4)
		return fail(c, GRAFT_EFORMAT, "tensor '%s': shape has %zu dims, at most 4 "
		            "are supported", name, nd);
	for (size_t i = 0; i < nd; i++) {
		json_t *d = json_array_get(s, i);
		if (!json_is_integer(d))
			return fail(c, GRAFT_EFORMAT, "tensor '%s': shape[%zu] is a JSON "
			            "%s, not an integer", name, i, json_kind(d));
		if (json_integer_value(d) < 0)
			return fail(c, GRAFT_EFORMAT, "tensor '%s': shape[%zu] is %lld, "
			            "negative", name, i, (long long)json_integer_value(d));
		t->shape[i] = json_integer_value(d);
	}
	t->ndim = nd > 0 ? (int)nd : 1;
	if (nd == 0)
		t->shape[0] = 1;
	return 0;
}

/* Reads "data_offsets" into e and checks them against the data section and
 * against the size the shape needs. */
static int parse_offsets(const struct st_ctx *c, json_t *v, uint64_t data_size,
                         struct st_entry *e)
{
	const char *name = e->t.name;
	json_t *o = json_object_get(v, "data_offsets");
	if (!json_is_array(o) || json_array_size(o) != 2 ||
	    !json_is_integer(json_array_get(o, 0)) || !json_is_integer(json_array_get(o, 1)))
		return fail(c, GRAFT_EFORMAT, "tensor '%s': data_offsets is not a pair of "
		            "integers", name);
	long long b = json_integer_value(json_array_get(o, 0));
	long long end = json_integer_value(json_array_get(o, 1));
	if (b < 0 || end < 0)
		return fail(c, GRAFT_EFORMAT, "tensor '%s': data_offsets [%lld, %lld] are "
		            "negative", name, b, end);
	if (end < b)
		return fail(c, GRAFT_EFORMAT, "tensor '%s': data_offsets [%lld, %lld] end "
		            "before they begin", name, b, end);
	if ((uint64_t)end > data_size)
		return fail(c, GRAFT_EFORMAT, "tensor '%s': data_offsets [%lld, %lld] reach "
		            "past the end of the %llu-byte data section", name, b, end,
		            (unsigned long long)data_size);
	char sh[80];
	int64_t numel = nn_tensor_numel(&e->t);
	if (numel < 0)
		return fail(c, GRAFT_EFORMAT, "tensor '%s': shape %s has too many elements",
		            name, shape_str(&e->t, sh, sizeof sh));
	if (end - b != numel * 4)
		return fail(c, GRAFT_EFORMAT, "tensor '%s': shape %s needs %lld bytes but "
		            "data_offsets span %lld", name, shape_str(&e->t, sh, sizeof sh),
		            (long long)numel * 4, end - b);
	e->begin = (uint64_t)b;
	e->end = (uint64_t)end;
	return 0;
}

/* Checks and reads one header entry into e. */
static int parse_entry(const struct st_ctx *c, const char *name, json_t *v,
                       uint64_t data_size, struct st_entry *e)
{
	size_t len = strlen(name);
	if (len >= NN_NAME_MAX)
		return fail(c, GRAFT_EFORMAT, "tensor name '%.32s...' of %zu bytes is "
		            "longer than the %d allowed", name, len, NN_NAME_MAX - 1);
	memcpy(e->t.name, name, len + 1);
	if (!json_is_object(v))
		return fail(c, GRAFT_EFORMAT, "tensor '%s': entry is a JSON %s, not an "
		            "object", name, json_kind(v));
	json_t *dtype = json_object_get(v, "dtype");
	if (dtype == NULL)
		return fail(c, GRAFT_EFORMAT, "tensor '%s': dtype missing", name);
	if (!json_is_string(dtype))
		return fail(c, GRAFT_EFORMAT, "tensor '%s': dtype is a JSON %s, not a "
		            "string", name, json_kind(dtype));
	if (strcmp(json_string_value(dtype), "F32") != 0)
		return fail(c, GRAFT_EFORMAT, "tensor '%s': dtype %.16s is not supported, "
		            "only F32", name, json_string_value(dtype));
	int rc = parse_shape(c, name, v, &e->t);
	return rc ? rc : parse_offsets(c, v, data_size, e);
}

/* The optional "__metadata__" is a flat map of strings; like the reference
 * implementation, we refuse any other shape. */
static int check_metadata(const struct st_ctx *c, json_t *v)
{
	const char *key;
	json_t *val;
	if (!json_is_object(v))
		return fail(c, GRAFT_EFORMAT, "__metadata__ is a JSON %s, not an object",
		            json_kind(v));
	json_object_foreach(v, key, val)
		if (!json_is_string(val))
			return fail(c, GRAFT_EFORMAT, "__metadata__ '%.64s' is a JSON %s, "
			            "not a string", key, json_kind(val));
	return 0;
}

static int entry_cmp(const void *pa, const void *pb)
{
	const struct st_entry *a = pa, *b = pb;
	if (a->begin != b->begin)
		return a->begin < b->begin ? -1 : 1;
	if (a->end != b->end)
		return a->end < b->end ? -1 : 1;
	return a->order < b->order ? -1 : a->order > b->order;
}

/* Sorts the entries by offset and checks that they tile the data section:
 * each tensor starts where the one before it ends, and the last one ends at
 * the end of the section, as the format requires. */
static int check_layout(const struct st_ctx *c, struct st_entry *e, size_t n,
                        uint64_t data_size)
{
	qsort(e, n, sizeof *e, entry_cmp);
	uint64_t at = 0;
	for (size_t i = 0; i < n; i++) {
		if (e[i].begin < at)
			return fail(c, GRAFT_EFORMAT, "tensors '%s' and '%s' overlap in the "
			            "data section", e[i - 1].t.name, e[i].t.name);
		if (e[i].begin > at)
			return fail(c, GRAFT_EFORMAT, "bytes %llu..%llu of the data section "
			            "belong to no tensor", (unsigned long long)at,
			            (unsigned long long)e[i].begin);
		at = e[i].end;
	}
	if (at != data_size)
		return fail(c, GRAFT_EFORMAT, "bytes %llu..%llu of the data section belong "
		            "to no tensor", (unsigned long long)at,
		            (unsigned long long)data_size);
	return 0;
}

/* Turns the header into checked entries, sorted by their place in the data. */
static int parse_header(const struct st_ctx *c, json_t *root, uint64_t data_size,
                        struct st_entry **out, size_t *count)
{
	size_t n = json_object_size(root);
	struct st_entry *e = calloc(n ? n : 1, sizeof *e);
	if (e == NULL)
		return fail(c, GRAFT_ENOMEM, "out of memory for %zu tensors", n);
	const char *key;
	json_t *v;
	size_t k = 0;
	int rc = 0;
	json_object_foreach(root, key, v) {
		if (strcmp(key, "__metadata__") == 0)
			rc = check_metadata(c, v);
		else if ((rc = parse_entry(c, key, v, data_size, &e[k])) == 0)
			e[k].order = k, k++;
		if (rc != 0)
			break;
	}
	if (rc == 0)
		rc = check_layout(c, e, k, data_size);
	if (rc != 0) {
		free(e);
		return rc;
	}
	*out = e;
	*count = k;
	return 0;
}

/* Copies the checked "__metadata__" object (NULL when absent) into w as one
 * allocation: the 2*n pointers, then the strings they point to.  jansson
 * keeps an object's keys in the order it read them, and so do we. */
static int copy_metadata(const struct st_ctx *c, json_t *md, nn_weights *w)
{
	size_t n = json_object_size(md);
	if (n == 0)
		return 0;
	if (n > INT_MAX / 2)
		return fail(c, GRAFT_EFORMAT, "%zu metadata pairs are too many", n);
	/* The header is at most ST_MAX_HEADER bytes, so this sum cannot wrap. */
	size_t bytes = 2 * n * sizeof(char *);
	const char *key;
	json_t *v;
	json_object_foreach(md, key, v)
		bytes += strlen(key) + 1 + strlen(json_string_value(v)) + 1;
	char **m = malloc(bytes);
	if (m == NULL)
		return fail(c, GRAFT_ENOMEM, "out of memory for %zu metadata pairs", n);
	char *at = (char *)(m + 2 * n);
	size_t i = 0;
	json_object_foreach(md, key, v) {
		const char *s[2] = { key, json_string_value(v) };
		for (int k = 0; k < 2; k++) {
			size_t len = strlen(s[k]) + 1;
			m[i++] = memcpy(at, s[k], len);
			at += len;
		}
	}
	assert(i == 2 * n && at == (char *)m + bytes);
	w->meta = m;
	w->nmeta = (int)n;
	return 0;
}

/* Reads the data section into a fresh malloc'd blob, which is aligned for
 * floats whatever the header length, and points the tensors into it. */
static int read_data(const struct st_ctx *c, int fd, const struct st_entry *e,
                     size_t n, uint64_t data_size, nn_weights *w)
{
	w->t = calloc(n ? n : 1, sizeof *w->t);
	w->blob = malloc(data_size ? data_size : 1);
	if (w->t == NULL || w->blob == NULL)
		return fail(c, GRAFT_ENOMEM, "out of memory for %llu bytes of tensors",
		            (unsigned long long)data_size);
	ssize_t got = read_full(fd, w->blob, data_size);
	if (got < 0)
		return fail(c, GRAFT_EIO, "%s", strerror(errno));
	if ((uint64_t)got < data_size)
		return fail(c, GRAFT_EFORMAT, "file was truncated while being read");
	for (size_t i = 0; i < n; i++) {
		/* Offsets start at 0 and each size is a multiple of 4, so the
		 * layout check leaves every tensor 4-aligned. */
		assert(e[i].begin % 4 == 0);
		w->t[i] = e[i].t;
		w->t[i].data = (float *)((char *)w->blob + e[i].begin);
	}
	w->n = (int)n;
	return 0;
}

int nn_safetensors_read(const char *path, nn_weights *w, char *err, size_t errlen)
{
	struct st_ctx c = { path ? path : "(null)", err, errlen };
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (w == NULL)
		return fail(&c, GRAFT_EINVAL, "no nn_weights to read into");
	memset(w, 0, sizeof *w);
	if (path == NULL)
		return fail(&c, GRAFT_EINVAL, "no path");

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(&c, GRAFT_EIO, "%s", strerror(errno));
	json_t *root = NULL;
	struct st_entry *e = NULL;
	size_t n = 0;
	uint64_t data_size = 0;
	int rc = read_header(&c, fd, &root, &data_size);
	if (rc == 0)
		rc = parse_header(&c, root, data_size, &e, &n);
	if (rc == 0 && n > INT_MAX)
		rc = fail(&c, GRAFT_EFORMAT, "%zu tensors are too many", n);
	if (rc == 0)
		rc = read_data(&c, fd, e, n, data_size, w);
	if (rc == 0)
		rc = copy_metadata(&c, json_object_get(root, "__metadata__"), w);
	if (rc != 0)
		nn_weights_free(w);
	free(e);
	json_decref(root);
	close(fd);
	return rc;
}

const nn_tensor *nn_weights_find(const nn_weights *w, const char *name)
{
	if (w == NULL || name == NULL)
		return NULL;
	for (int i = 0; i < w->n; i++)
		if (strcmp(w->t[i].name, name) == 0)
			return &w->t[i];
	return NULL;
}

const char *nn_weights_meta(const nn_weights *w, const char *key)
{
	if (w == NULL || key == NULL)
		return NULL;
	for (int i = 0; i < w->nmeta; i++)
		if (strcmp(w->meta[2 * i], key) == 0)
			return w->meta[2 * i + 1];
	return NULL;
}

void nn_weights_free(nn_weights *w)
{
	if (w == NULL)
		return;
	free(w->t);
	free(w->blob);
	free(w->meta);
	memset(w, 0, sizeof *w);
}
