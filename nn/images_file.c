/*
 * images_file.c - graft-images/1, an image folder decoded once (the layout is
 * in folder_internal.h): written by nn_folder_prepare, read by every worker
 * in the time it takes to read the bytes.
 *
 * Like every file graft reads, its header is checked against the bytes that
 * follow: a truncated or doctored file is an error with a message, never a
 * crash or a partial dataset.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "nn/folder_internal.h"

#define FORMAT "graft-images/1"

/* ---- writing ------------------------------------------------------------- */

static json_t *header_json(const nn__images *f)
{
	json_t *names = json_array(), *h;
	const char *p = f->names;

	for (int k = 0; k < f->classes; k++, p += strlen(p) + 1)
		json_array_append_new(names, json_string(p));
	h = json_pack("{s:s, s:s, s:i, s:i, s:i, s:o, s:i, s:i, s:i}", "format", FORMAT,
	              "key", f->key, "channels", f->c, "height", f->h, "width", f->w,
	              "classes", names, "train", f->n[0], "test", f->n[1], "skipped",
	              f->skipped);
	return h;
}

int nn__images_write(const char *path, const nn__images *f, char *err, size_t errlen)
{
	char tmp[4200];
	json_t *h = header_json(f);
	char *text = h ? json_dumps(h, JSON_COMPACT) : NULL;
	size_t chw = (size_t)f->c * f->h * f->w;
	FILE *out = NULL;
	int ok;

	json_decref(h);
	if (text == NULL)
		return graft_errf(err, errlen, GRAFT_ENOMEM, "%s: out of memory", path);
	uint32_t len = (uint32_t)strlen(text);
	unsigned char le[4] = { len & 255, (len >> 8) & 255, (len >> 16) & 255, len >> 24 };
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	ok = (out = fopen(tmp, "wb")) != NULL &&
	     fwrite(NN__IMAGES_MAGIC, 1, 8, out) == 8 && fwrite(le, 1, 4, out) == 4 &&
	     fwrite(text, 1, len, out) == len;
	for (int part = 0; part < 2 && ok; part++)
		ok = fwrite(f->pixels[part], chw, (size_t)f->n[part], out) == (size_t)f->n[part] &&
		     fwrite(f->labels[part], 1, (size_t)f->n[part], out) == (size_t)f->n[part];
	free(text);
	if (out && fclose(out))
		ok = 0;
	if (!ok || rename(tmp, path)) {
		int e = errno;
		remove(tmp);
		return graft_errf(err, errlen, GRAFT_EIO, "writing %s: %s", path, strerror(e));
	}
	return 0;
}

int nn_images_save(const char *path, const nn_dataset *train, const nn_dataset *test,
                   char *err, size_t errlen)
{
	if (train->c != test->c || train->h != test->h || train->w != test->w ||
	    train->classes != test->classes || train->classes > NN_FOLDER_MAX_CLASSES)
		return graft_errf(err, errlen, GRAFT_EINVAL, "%s: the training and test images "
		                  "differ in shape or classes, or have over %d classes", path,
		                  NN_FOLDER_MAX_CLASSES);
	if (!train->names)
		return graft_errf(err, errlen, GRAFT_EINVAL, "%s: the classes have no names",
		                  path);
	nn__images f = { .c = train->c, .h = train->h, .w = train->w,
	                 .classes = train->classes, .names = train->names,
	                 .n = { train->n, test->n }, .pixels = { train->pixels, test->pixels },
	                 .labels = { train->labels, test->labels } };
	/* The key of a folder names its files; here the images themselves. */
	nn_sha256_hex(train->pixels, (size_t)train->n * train->c * train->h * train->w, f.key);
	return nn__images_write(path, &f, err, errlen);
}

/* ---- reading ------------------------------------------------------------- */

typedef struct header {
	char key[65];
	int c, h, w, classes, n[2], skipped;
	char *names;
	long data;      /* offset of the training pixels */
} header;

static int bad(const char *path, char *err, size_t errlen, const char *what)
{
	return graft_errf(err, errlen, GRAFT_EFORMAT, "%s: not a valid graft-images/1 file: %s",
	                  path, what);
}

/* Collects the class names of h's JSON into one buffer. */
static int read_names(json_t *arr, header *hd)
{
	size_t len = 0, i;
	json_t *v;

	if (!json_is_array(arr) || json_array_size(arr) < 2 ||
	    json_array_size(arr) > NN_FOLDER_MAX_CLASSES)
		return -1;
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 255 ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return -1;
		len += json_string_length(v) + 1;
	}
	if ((hd->names = malloc(len)) == NULL)
		return -1;
	len = 0;
	json_array_foreach(arr, i, v) {
		memcpy(hd->names + len, json_string_value(v), json_string_length(v) + 1);
		len += json_string_length(v) + 1;
	}
	hd->classes = (int)json_array_size(arr);
	return 0;
}

static int read_header(FILE *f, const char *path, header *hd, char *err, size_t errlen)
{
	unsigned char head[12];
	json_t *j = NULL;
	json_error_t je;
	char *text = NULL;
	const char *fmt = NULL, *key = NULL;
	json_t *names = NULL;
	int rc = 0;

	memset(hd, 0, sizeof *hd);
	if (fread(head, 1, 12, f) != 12 || memcmp(head, NN__IMAGES_MAGIC, 8))
		return bad(path, err, errlen, "it does not start with " NN__IMAGES_MAGIC);
	uint32_t len = head[8] | head[9] << 8 | head[10] << 16 | (uint32_t)head[11] << 24;
	if (len == 0 || len > NN__IMAGES_HEADER_MAX)
		return bad(path, err, errlen, "a header length out of range");
	if ((text = malloc(len)) == NULL)
		return graft_errf(err, errlen, GRAFT_ENOMEM, "%s: out of memory", path);
	if (fread(text, 1, len, f) != len) {
		rc = bad(path, err, errlen, "truncated in its header");
		goto out;
	}
	j = json_loadb(text, len, 0, &je);
	if (j == NULL || json_unpack(j, "{s:s, s:s, s:i, s:i, s:i, s:o, s:i, s:i}", "format", &fmt,
	                             "key", &key, "channels", &hd->c, "height", &hd->h, "width",
	                             &hd->w, "classes", &names, "train", &hd->n[0], "test",
	                             &hd->n[1]) ||
	    strcmp(fmt, FORMAT) || strlen(key) != 64) {
		rc = bad(path, err, errlen, "a header without its fields");
		goto out;
	}
	if ((hd->c != 1 && hd->c != 3) || hd->h < 1 || hd->w < 1 || hd->h > NN_IMAGE_MAX_SIDE ||
	    hd->w > NN_IMAGE_MAX_SIDE || hd->n[0] < 0 || hd->n[1] < 0 ||
	    hd->n[0] > NN_FOLDER_MAX_IMAGES || hd->n[1] > NN_FOLDER_MAX_IMAGES) {
		rc = bad(path, err, errlen, "sizes out of range");
		goto out;
	}
	if (read_names(names, hd)) {
		rc = bad(path, err, errlen, "class names that are not 2 to 256 strings");
		goto out;
	}
	snprintf(hd->key, sizeof hd->key, "%s", key);
	json_t *sk = json_object_get(j, "skipped");
	hd->skipped = json_is_integer(sk) ? (int)json_integer_value(sk) : 0;
	hd->data = 12 + (long)len;
	/* The bytes that follow must be exactly what the header says. */
	struct stat st;
	long long chw = (long long)hd->c * hd->h * hd->w;
	long long want = hd->data + (chw + 1) * ((long long)hd->n[0] + hd->n[1]);
	if (fstat(fileno(f), &st) || st.st_size != want)
		rc = bad(path, err, errlen, "its size does not match its header (truncated?)");
out:
	if (rc) {
		free(hd->names);
		hd->names = NULL;
	}
	json_decref(j);
	free(text);
	return rc;
}

int nn__images_peek(const char *path, nn__images *out)
{
	FILE *f = fopen(path, "rb");
	header hd;
	char err[GRAFT_ERRLEN];
	int rc;

	memset(out, 0, sizeof *out);
	if (f == NULL)
		return GRAFT_EIO;
	rc = read_header(f, path, &hd, err, sizeof err);
	fclose(f);
	if (rc == 0) {
		memcpy(out->key, hd.key, 65);
		out->c = hd.c;
		out->h = hd.h;
		out->w = hd.w;
		out->classes = hd.classes;
		out->n[0] = hd.n[0];
		out->n[1] = hd.n[1];
		out->skipped = hd.skipped;
		free(hd.names);
	}
	return rc;
}

int nn_images_load(nn_dataset *ds, const char *path, int test, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	header hd;
	int rc;

	memset(ds, 0, sizeof *ds);
	if (f == NULL)
		return graft_errf(err, errlen, GRAFT_EIO, "%s: %s", path, strerror(errno));
	if ((rc = read_header(f, path, &hd, err, errlen)))
		goto out;
	size_t chw = (size_t)hd.c * hd.h * hd.w;
	int n = hd.n[test ? 1 : 0];
	if (n == 0) {
		rc = graft_errf(err, errlen, GRAFT_EIO, "%s: the image folder had no %s images",
		                path, test ? "test" : "training");
		goto out;
	}
	long off = hd.data + (test ? (long)((chw + 1) * (size_t)hd.n[0]) : 0);
	ds->pixels = malloc(chw * (size_t)n);
	ds->labels = malloc((size_t)n);
	if (!ds->pixels || !ds->labels) {
		rc = graft_errf(err, errlen, GRAFT_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	if (fseek(f, off, SEEK_SET) || fread(ds->pixels, chw, (size_t)n, f) != (size_t)n ||
	    fread(ds->labels, 1, (size_t)n, f) != (size_t)n) {
		rc = graft_errf(err, errlen, GRAFT_EIO, "%s: read failed", path);
		goto out;
	}
	for (int i = 0; i < n; i++)
		if (ds->labels[i] >= hd.classes) {
			rc = bad(path, err, errlen, "a label beyond its classes");
			goto out;
		}
	ds->n = n;
	ds->c = hd.c;
	ds->h = hd.h;
	ds->w = hd.w;
	ds->classes = hd.classes;
	ds->names = hd.names;
	hd.names = NULL;
out:
	free(hd.names);
	if (rc)
		nn_dataset_free(ds);
	fclose(f);
	return rc;
}
