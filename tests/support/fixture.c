/*
 * fixture.c - a strict reader for the GRFXLAY1 reference fixtures (the format
 * is described in fixture.h) and the tolerance comparison the tests share.
 *
 * The whole file is read into memory and parsed with a bounds-checked cursor,
 * so a truncated or lying file becomes an error message instead of a read past
 * the end.  Every count is checked against the bytes that remain before any
 * allocation is sized by it.
 */
#include "tests/support/fixture.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE_MAGIC "GRFXLAY1"
#define FIXTURE_VERSION 1u
#define FIXTURE_MAX_BYTES (64u << 20)

typedef struct cursor {
	const unsigned char *p;
	size_t left;
	const char *path;
	char *err;
	size_t errlen;
} cursor;

/* Writes a message into err (if there is room for one) and returns -1 so that
 * callers can `return fail(...)`. */
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int take(cursor *c, void *out, size_t len, const char *what)
{
	if (c->left < len)
		return fail(c->err, c->errlen, "%s: truncated reading %s (%zu bytes wanted, %zu left)",
		            c->path, what, len, c->left);
	memcpy(out, c->p, len);
	c->p += len;
	c->left -= len;
	return 0;
}

/* Reads a little-endian u32 byte by byte, so the reader does not depend on the
 * host's byte order. */
static int take_u32(cursor *c, uint32_t *v, const char *what)
{
	unsigned char b[4] = { 0 };
	if (take(c, b, 4, what) != 0)
		return -1;
	*v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
	return 0;
}

/* Reads a length-prefixed string into a fresh NUL-terminated buffer. */
static int take_str(cursor *c, char **out, const char *what)
{
	uint32_t len;
	if (take_u32(c, &len, what) != 0)
		return -1;
	if (len > c->left || len > 4096)
		return fail(c->err, c->errlen, "%s: %s length %u is impossible (%zu bytes left)",
		            c->path, what, len, c->left);
	char *s = malloc((size_t)len + 1);
	if (s == NULL)
		return fail(c->err, c->errlen, "%s: out of memory", c->path);
	memcpy(s, c->p, len);
	s[len] = '\0';
	c->p += len;
	c->left -= len;
	*out = s;
	return 0;
}

static int parse_tensor(cursor *c, fixture_tensor *t, const char *cname)
{
	uint32_t ndim;
	if (take_str(c, &t->name, "tensor name") != 0 || take_u32(c, &ndim, "ndim") != 0)
		return -1;
	if (ndim < 1 || ndim > FIXTURE_MAX_DIMS)
		return fail(c->err, c->errlen, "%s: case %s tensor %s has %u dims (1..%d allowed)",
		            c->path, cname, t->name, ndim, FIXTURE_MAX_DIMS);
	t->ndim = (int)ndim;
	size_t numel = 1;
	for (uint32_t i = 0; i < ndim; i++) {
		uint32_t d;
		if (take_u32(c, &d, "dim") != 0)
			return -1;
		t->dims[i] = d;
		/* The bytes left bound any honest numel, which also rules out overflow. */
		if (d != 0 && numel > c->left / d)
			return fail(c->err, c->errlen, "%s: case %s tensor %s is larger than the file",
			            c->path, cname, t->name);
		numel *= d;
	}
	t->numel = numel;
	if (numel > c->left / 4)
		return fail(c->err, c->errlen,
		            "%s: truncated in case %s tensor %s (%zu floats wanted, %zu bytes left)",
		            c->path, cname, t->name, numel, c->left);
	t->data = malloc(numel ? numel * sizeof(float) : 1);
	if (t->data == NULL)
		return fail(c->err, c->errlen, "%s: out of memory", c->path);
	for (size_t i = 0; i < numel; i++) {
		uint32_t bits = 0;
		if (take_u32(c, &bits, "data") != 0)
			return -1;
		memcpy(&t->data[i], &bits, sizeof bits);
	}
	return 0;
}

static int parse_case(cursor *c, fixture_case *fc)
{
	uint32_t np, nt;
	if (take_str(c, &fc->name, "case name") != 0 || take_u32(c, &np, "nparams") != 0)
		return -1;
	if (np > c->left / 4 || np > 64)
		return fail(c->err, c->errlen, "%s: case %s has an impossible %u parameters",
		            c->path, fc->name, np);
	fc->params = calloc(np ? np : 1, sizeof *fc->params);
	if (fc->params == NULL)
		return fail(c->err, c->errlen, "%s: out of memory", c->path);
	fc->nparams = (int)np;
	for (uint32_t i = 0; i < np; i++) {
		uint32_t v;
		if (take_u32(c, &v, "parameter") != 0)
			return -1;
		fc->params[i] = (int32_t)v;
	}
	if (take_u32(c, &nt, "ntensors") != 0)
		return -1;
	/* A tensor takes at least 12 bytes (name length, ndim, one dim). */
	if (nt > c->left / 12 || nt > 256)
		return fail(c->err, c->errlen, "%s: case %s has an impossible %u tensors",
		            c->path, fc->name, nt);
	fc->tensors = calloc(nt ? nt : 1, sizeof *fc->tensors);
	if (fc->tensors == NULL)
		return fail(c->err, c->errlen, "%s: out of memory", c->path);
	fc->ntensors = (int)nt;
	for (uint32_t i = 0; i < nt; i++)
		if (parse_tensor(c, &fc->tensors[i], fc->name) != 0)
			return -1;
	return 0;
}

static int parse(cursor *c, fixture *f)
{
	char magic[8];
	uint32_t version, ncases;
	if (take(c, magic, 8, "magic") != 0)
		return -1;
	if (memcmp(magic, FIXTURE_MAGIC, 8) != 0)
		return fail(c->err, c->errlen, "%s: bad magic (not a GRFXLAY1 fixture)", c->path);
	if (take_u32(c, &version, "version") != 0)
		return -1;
	if (version != FIXTURE_VERSION)
		return fail(c->err, c->errlen, "%s: version %u, this reader knows %u",
		            c->path, version, FIXTURE_VERSION);
	if (take_u32(c, &ncases, "ncases") != 0)
		return -1;
	/* A case takes at least 12 bytes (name length, nparams, ntensors). */
	if (ncases > c->left / 12)
		return fail(c->err, c->errlen, "%s: %u cases cannot fit in %zu bytes",
		            c->path, ncases, c->left);
	f->cases = calloc(ncases ? ncases : 1, sizeof *f->cases);
	if (f->cases == NULL)
		return fail(c->err, c->errlen, "%s: out of memory", c->path);
	f->ncases = (int)ncases;
	for (uint32_t i = 0; i < ncases; i++)
		if (parse_case(c, &f->cases[i]) != 0)
			return -1;
	if (c->left != 0)
		return fail(c->err, c->errlen, "%s: %zu trailing bytes after the last case",
		            c->path, c->left);
	return 0;
}

/* Reads a whole file into a malloc'd buffer. */
static unsigned char *slurp(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "rb");
	if (fp == NULL) {
		fail(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	size_t cap = 1 << 16, n = 0;
	unsigned char *buf = malloc(cap);
	while (buf != NULL) {
		n += fread(buf + n, 1, cap - n, fp);
		if (n < cap)
			break;
		if (cap >= FIXTURE_MAX_BYTES) {
			fail(err, errlen, "%s: larger than %u bytes", path, FIXTURE_MAX_BYTES);
			free(buf);
			buf = NULL;
			break;
		}
		unsigned char *nb = realloc(buf, cap * 2);
		if (nb == NULL) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = nb;
		cap *= 2;
	}
	if (buf != NULL && ferror(fp)) {
		fail(err, errlen, "%s: read error", path);
		free(buf);
		buf = NULL;
	} else if (buf == NULL && err != NULL && err[0] == '\0') {
		fail(err, errlen, "%s: out of memory", path);
	}
	fclose(fp);
	*len = n;
	return buf;
}

fixture *fixture_open(const char *path, char *err, size_t errlen)
{
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	size_t len = 0;
	unsigned char *buf = slurp(path, &len, err, errlen);
	if (buf == NULL)
		return NULL;
	fixture *f = calloc(1, sizeof *f);
	if (f == NULL) {
		free(buf);
		fail(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	snprintf(f->path, sizeof f->path, "%s", path);
	cursor c = { buf, len, path, err, errlen };
	int rc = parse(&c, f);
	free(buf);
	if (rc != 0) {
		fixture_free(f);
		return NULL;
	}
	return f;
}

const char *fixture_dir(void)
{
	const char *d = getenv("GRAFT_TEST_DATA");
	return d != NULL && d[0] != '\0' ? d : "tests/fixtures";
}

fixture *fixture_load(const char *file, char *err, size_t errlen)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", fixture_dir(), file);
	return fixture_open(path, err, errlen);
}

void fixture_free(fixture *f)
{
	if (f == NULL)
		return;
	for (int i = 0; i < f->ncases && f->cases != NULL; i++) {
		fixture_case *c = &f->cases[i];
		for (int j = 0; j < c->ntensors && c->tensors != NULL; j++) {
			free(c->tensors[j].name);
			free(c->tensors[j].data);
		}
		free(c->tensors);
		free(c->params);
		free(c->name);
	}
	free(f->cases);
	free(f);
}

int32_t fixture_case_param(const fixture_case *c, int i)
{
	if (i < 0 || i >= c->nparams) {
		fprintf(stderr, "fixture: case %s has no parameter %d (it has %d)\n",
		        c->name, i, c->nparams);
		return INT32_MIN;
	}
	return c->params[i];
}

const fixture_tensor *fixture_find(const fixture_case *c, const char *name)
{
	for (int i = 0; i < c->ntensors; i++)
		if (strcmp(c->tensors[i].name, name) == 0)
			return &c->tensors[i];
	return NULL;
}

const float *fixture_data(const fixture_case *c, const char *name, size_t numel)
{
	const fixture_tensor *t = fixture_find(c, name);
	if (t == NULL) {
		fprintf(stderr, "fixture: case %s has no tensor %s\n", c->name, name);
		return NULL;
	}
	if (t->numel != numel) {
		fprintf(stderr, "fixture: case %s tensor %s has %zu elements, the test expects %zu\n",
		        c->name, name, t->numel, numel);
		return NULL;
	}
	return t->data;
}

int fixture_compare_msg(const char *what, const float *got, const float *want, size_t n,
                        double atol, double rtol, char *msg, size_t msglen)
{
	size_t bad = 0, worst = 0;
	double worst_excess = -1.0;
	if (msg != NULL && msglen > 0)
		msg[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		double g = got[i], w = want[i];
		double diff = fabs(g - w), allowed = atol + rtol * fabs(w);
		/* Written so that a NaN in either makes the element fail. */
		if (!(diff <= allowed)) {
			double excess = isnan(diff) ? INFINITY : diff - allowed;
			if (bad == 0 || excess > worst_excess) {
				worst = i;
				worst_excess = excess;
			}
			bad++;
		}
	}
	if (bad == 0)
		return 0;
	if (msg != NULL && msglen > 0)
		snprintf(msg, msglen, "%s: %zu of %zu elements differ (atol %g, rtol %g); "
		         "worst at [%zu]: got %.9g, want %.9g (diff %.3g)", what, bad, n, atol,
		         rtol, worst, (double)got[worst], (double)want[worst],
		         fabs((double)got[worst] - (double)want[worst]));
	return 1;
}

int fixture_compare(const char *what, const float *got, const float *want, size_t n,
                    double atol, double rtol)
{
	char msg[768];
	int rc = fixture_compare_msg(what, got, want, n, atol, rtol, msg, sizeof msg);
	if (rc != 0)
		fprintf(stderr, "%s\n", msg);
	return rc;
}
