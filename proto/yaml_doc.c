/*
 * yaml_doc.c - strict reading of YAML configs over libyaml's document API.
 *
 * libyaml's loader is iterative and expands nothing, but it will happily build
 * a document in which one node is reachable along exponentially many paths
 * (the "billion laughs" alias bomb), and it has no notion of a depth or size
 * limit.  So before loading we run the same input through the event parser
 * once, rejecting anchors, aliases, deep nesting, too many nodes, long scalars
 * and extra documents at the exact event where they appear; the second pass
 * then builds a document that is known to be a small, shallow tree.  The first
 * pass keeps nothing, so it at most doubles the time of a load, which is what
 * exact locations and a loader never handed hostile structure are worth.
 */
#include "proto/yaml_doc.h"
#include "proto/proto.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest scalar, in bytes, quoted back in a message. */
#define QUOTE_MAX 40

/* Writes "line L, column C: " and the formatted text into d->err. */
static int vfail_at(proto__ydoc *d, size_t line, size_t col, const char *fmt,
                    va_list ap)
{
	int n;

	if (d->err == NULL || d->errlen == 0)
		return GRAFT_EINVAL;
	n = snprintf(d->err, d->errlen, "line %zu, column %zu: ", line, col);
	if (n >= 0 && (size_t)n < d->errlen)
		vsnprintf(d->err + n, d->errlen - (size_t)n, fmt, ap);
	return GRAFT_EINVAL;
}

static int fail_at(proto__ydoc *d, size_t line, size_t col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail_at(proto__ydoc *d, size_t line, size_t col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail_at(d, line, col, fmt, ap);
	va_end(ap);
	return GRAFT_EINVAL;
}

int proto__ydoc_fail(proto__ydoc *d, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail_at(d, n->start_mark.line + 1, n->start_mark.column + 1, fmt, ap);
	va_end(ap);
	return GRAFT_EINVAL;
}

/* Copies at most QUOTE_MAX bytes of s into buf (QUOTE_MAX + 4 bytes) for a
 * message, replacing control and non-ASCII bytes, so that a hostile scalar can
 * neither flood the message nor put a terminal escape into a log. */
static void quote(const unsigned char *s, size_t len, char *buf)
{
	size_t i, n = len < QUOTE_MAX ? len : QUOTE_MAX;

	for (i = 0; i < n; i++)
		buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
	strcpy(buf + n, len > n ? "..." : "");
}

/* Describes node n for "got ..." in a message. */
static void describe(const yaml_node_t *n, char *buf, size_t size)
{
	char q[QUOTE_MAX + 4];

	if (n->type == YAML_SEQUENCE_NODE) {
		ptrdiff_t k = n->data.sequence.items.top - n->data.sequence.items.start;
		snprintf(buf, size, "a list of %td item%s", k, k == 1 ? "" : "s");
	} else if (n->type == YAML_MAPPING_NODE) {
		snprintf(buf, size, "a mapping");
	} else if (n->data.scalar.length == 0 &&
	           n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		snprintf(buf, size, "nothing");
	} else {
		quote(n->data.scalar.value, n->data.scalar.length, q);
		snprintf(buf, size, "'%s'", q);
	}
}

int proto__ydoc_expected(proto__ydoc *d, const yaml_node_t *n, const char *path,
                         const char *what)
{
	char got[64];

	describe(n, got, sizeof got);
	if (path[0] == '\0')
		return proto__ydoc_fail(d, n, "expected %s, got %s", what, got);
	return proto__ydoc_fail(d, n, "%s: expected %s, got %s", path, what, got);
}

/* ---- loading ------------------------------------------------------------ */

static int out_of_memory(proto__ydoc *d)
{
	if (d->err && d->errlen)
		snprintf(d->err, d->errlen, "out of memory while parsing YAML");
	return GRAFT_ENOMEM;
}

/* Turns libyaml's error into a message.  Reader errors (bad UTF-8, control
 * characters) carry only a byte offset, which we convert to a line and column
 * so that every message locates its problem the same way. */
static int parser_error(proto__ydoc *d, const yaml_parser_t *p)
{
	size_t line = 1, col = 1, i;
	const char *problem = p->problem ? p->problem : "malformed YAML";

	if (p->error == YAML_MEMORY_ERROR)
		return out_of_memory(d);
	if (p->error == YAML_READER_ERROR) {
		for (i = 0; i < p->problem_offset && i < d->len; i++, col++) {
			if (d->text[i] == '\n') {
				line++;
				col = 0;
			}
		}
		return fail_at(d, line, col, "%s", problem);
	}
	line = p->problem_mark.line + 1;
	col = p->problem_mark.column + 1;
	if (p->context == NULL)
		return fail_at(d, line, col, "%s", problem);
	if (p->context_mark.line + 1 == line && p->context_mark.column + 1 == col)
		return fail_at(d, line, col, "%s (%s)", problem, p->context);
	return fail_at(d, line, col, "%s (%s started at line %zu, column %zu)",
	               problem, p->context, p->context_mark.line + 1,
	               p->context_mark.column + 1);
}

/* Rejects what a config never needs and a hostile input could abuse. */
static int check_event(proto__ydoc *d, const yaml_event_t *ev, int *depth,
                       int *ndocs, long *nnodes)
{
	size_t line = ev->start_mark.line + 1, col = ev->start_mark.column + 1;
	const yaml_char_t *anchor = NULL;

	if ((ev->type == YAML_SCALAR_EVENT || ev->type == YAML_SEQUENCE_START_EVENT ||
	     ev->type == YAML_MAPPING_START_EVENT) && ++*nnodes > PROTO_YAML_MAX_NODES)
		return fail_at(d, line, col, "more than %d YAML nodes; expected at most "
		               "%d", PROTO_YAML_MAX_NODES, PROTO_YAML_MAX_NODES);
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++*ndocs > 1)
			return fail_at(d, line, col, "a second YAML document; "
			               "expected exactly one");
		break;
	case YAML_ALIAS_EVENT:
		return fail_at(d, line, col, "YAML aliases (*name) are not supported; "
		               "expected plain values");
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		if (ev->data.scalar.length > PROTO_YAML_MAX_SCALAR)
			return fail_at(d, line, col, "a scalar of %zu bytes; expected at "
			               "most %d", ev->data.scalar.length,
			               PROTO_YAML_MAX_SCALAR);
		break;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		anchor = ev->type == YAML_SEQUENCE_START_EVENT ?
			ev->data.sequence_start.anchor : ev->data.mapping_start.anchor;
		if (++*depth > PROTO_YAML_MAX_DEPTH)
			return fail_at(d, line, col, "nesting deeper than %d levels; "
			               "expected at most %d", PROTO_YAML_MAX_DEPTH,
			               PROTO_YAML_MAX_DEPTH);
		break;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		--*depth;
		break;
	default:
		break;
	}
	if (anchor != NULL)
		return fail_at(d, line, col, "YAML anchors (&name) are not supported; "
		               "expected plain values");
	return 0;
}

/* The first pass: runs the event parser over the whole input. */
static int prescan(proto__ydoc *d)
{
	yaml_parser_t p;
	yaml_event_t ev;
	int rc = 0, depth = 0, ndocs = 0, done = 0;
	long nnodes = 0;

	/* A failed initialize leaves no error code behind: it only allocates. */
	if (!yaml_parser_initialize(&p))
		return out_of_memory(d);
	yaml_parser_set_input_string(&p, (const unsigned char *)d->text, d->len);
	while (rc == 0 && !done) {
		if (!yaml_parser_parse(&p, &ev)) {
			rc = parser_error(d, &p);
			break;
		}
		rc = check_event(d, &ev, &depth, &ndocs, &nnodes);
		done = ev.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	if (rc == 0 && ndocs == 0)
		rc = fail_at(d, 1, 1, "the document is empty; expected a mapping");
	return rc;
}

/* The second pass: builds the document. */
static int load(proto__ydoc *d)
{
	yaml_parser_t p;
	int rc = 0;

	if (!yaml_parser_initialize(&p))
		return out_of_memory(d);
	yaml_parser_set_input_string(&p, (const unsigned char *)d->text, d->len);
	if (yaml_parser_load(&p, &d->doc))
		d->loaded = 1;
	else
		rc = parser_error(d, &p);
	yaml_parser_delete(&p);
	return rc;
}

int proto__ydoc_load(proto__ydoc *d, const char *text, size_t len,
                     char *err, size_t errlen)
{
	int rc;

	memset(d, 0, sizeof *d);
	d->err = err;
	d->errlen = errlen;
	d->text = text;
	d->len = len;
	if (err && errlen)
		err[0] = '\0';
	if (len > PROTO_YAML_MAX_INPUT) {
		if (err && errlen)
			snprintf(err, errlen, "the input is %zu bytes; expected at most "
			         "%d", len, PROTO_YAML_MAX_INPUT);
		return GRAFT_EINVAL;
	}
	if ((rc = prescan(d)) == 0)
		rc = load(d);
	d->text = NULL;
	d->len = 0;
	if (rc == 0 && proto__ydoc_root(d) == NULL) {
		proto__ydoc_free(d);
		rc = fail_at(d, 1, 1, "the document is empty; expected a mapping");
	}
	return rc;
}

void proto__ydoc_free(proto__ydoc *d)
{
	if (d == NULL || !d->loaded)
		return;
	yaml_document_delete(&d->doc);
	d->loaded = 0;
}

yaml_node_t *proto__ydoc_root(proto__ydoc *d)
{
	return d->loaded ? yaml_document_get_root_node(&d->doc) : NULL;
}

/* ---- scalars -------------------------------------------------------------- */

int proto__ynode_is_null(const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	return n->data.scalar.length == 0 || proto__ynode_is(n, "null") ||
	       proto__ynode_is(n, "Null") || proto__ynode_is(n, "NULL") ||
	       proto__ynode_is(n, "~");
}

int proto__ynode_is(const yaml_node_t *n, const char *s)
{
	size_t len = strlen(s);

	return n->type == YAML_SCALAR_NODE && n->data.scalar.length == len &&
	       memcmp(n->data.scalar.value, s, len) == 0;
}

/* Copies plain scalar n into buf when it is short and made only of the bytes
 * in allowed; numbers and booleans are never quoted, so "5" stays a string. */
static int plain_token(const yaml_node_t *n, const char *allowed, char *buf,
                       size_t size)
{
	size_t len, i;

	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	len = n->data.scalar.length;
	if (len == 0 || len >= size)
		return 0;
	for (i = 0; i < len; i++) {
		if (strchr(allowed, n->data.scalar.value[i]) == NULL ||
		    n->data.scalar.value[i] == '\0')
			return 0;
		buf[i] = (char)n->data.scalar.value[i];
	}
	buf[len] = '\0';
	return 1;
}

/* Writes the default description of an integer range into buf. */
static const char *int_what(char *buf, size_t size, long long lo, long long hi)
{
	snprintf(buf, size, "an integer %lld..%lld", lo, hi);
	return buf;
}

int proto__yread_i64(proto__ydoc *d, yaml_node_t *n, const char *path,
                     int64_t lo, int64_t hi, const char *what, int64_t *out)
{
	char tok[32], whatbuf[64], *end;
	long long v;

	if (what == NULL)
		what = int_what(whatbuf, sizeof whatbuf, lo, hi);
	if (!plain_token(n, "+-0123456789", tok, sizeof tok) ||
	    strchr(tok + 1, '+') || strchr(tok + 1, '-'))
		return proto__ydoc_expected(d, n, path, what);
	errno = 0;
	v = strtoll(tok, &end, 10);
	if (errno != 0 || *end != '\0' || end == tok || v < lo || v > hi)
		return proto__ydoc_expected(d, n, path, what);
	*out = v;
	return 0;
}

int proto__yread_int(proto__ydoc *d, yaml_node_t *n, const char *path,
                     int lo, int hi, const char *what, int *out)
{
	int64_t v = 0;
	int rc = proto__yread_i64(d, n, path, lo, hi, what, &v);

	if (rc == 0)
		*out = (int)v;
	return rc;
}

int proto__yread_u64(proto__ydoc *d, yaml_node_t *n, const char *path,
                     uint64_t hi, const char *what, uint64_t *out)
{
	char tok[32], whatbuf[64], *end;
	unsigned long long v;

	if (what == NULL) {
		snprintf(whatbuf, sizeof whatbuf, "an integer 0..%llu",
		         (unsigned long long)hi);
		what = whatbuf;
	}
	/* strtoull would quietly wrap "-1" around, so no sign is allowed. */
	if (!plain_token(n, "0123456789", tok, sizeof tok))
		return proto__ydoc_expected(d, n, path, what);
	errno = 0;
	v = strtoull(tok, &end, 10);
	if (errno != 0 || *end != '\0' || v > hi)
		return proto__ydoc_expected(d, n, path, what);
	*out = v;
	return 0;
}

int proto__yread_double(proto__ydoc *d, yaml_node_t *n, const char *path,
                        double lo, double hi, const char *what, double *out)
{
	char tok[64], whatbuf[64], *end;
	double v;

	if (what == NULL) {
		snprintf(whatbuf, sizeof whatbuf, "a number %g..%g", lo, hi);
		what = whatbuf;
	}
	/* Limiting the characters keeps strtod's hex floats, "inf" and "nan"
	 * out: they are not YAML numbers. */
	if (!plain_token(n, "+-.0123456789eE", tok, sizeof tok) ||
	    strpbrk(tok, "0123456789") == NULL)
		return proto__ydoc_expected(d, n, path, what);
	v = strtod(tok, &end);
	if (*end != '\0' || !isfinite(v) || v < lo || v > hi)
		return proto__ydoc_expected(d, n, path, what);
	*out = v;
	return 0;
}

int proto__yread_bool(proto__ydoc *d, yaml_node_t *n, const char *path, int *out)
{
	static const char *const names[] = {
		"false", "False", "FALSE", "true", "True", "TRUE",
	};
	size_t i;

	if (n->type == YAML_SCALAR_NODE &&
	    n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		for (i = 0; i < sizeof names / sizeof names[0]; i++) {
			if (proto__ynode_is(n, names[i])) {
				*out = i >= 3;
				return 0;
			}
		}
	}
	return proto__ydoc_expected(d, n, path, "true or false");
}

int proto__yread_str(proto__ydoc *d, yaml_node_t *n, const char *path,
                     size_t maxlen, char *buf)
{
	char what[64];
	size_t len;

	snprintf(what, sizeof what, "a string of at most %zu bytes", maxlen);
	if (n->type != YAML_SCALAR_NODE)
		return proto__ydoc_expected(d, n, path, what);
	len = n->data.scalar.length;
	if (len > maxlen || memchr(n->data.scalar.value, '\0', len) != NULL)
		return proto__ydoc_expected(d, n, path, what);
	memcpy(buf, n->data.scalar.value, len);
	buf[len] = '\0';
	return 0;
}

/* Joins names with ", " into buf, truncating if it must. */
static const char *join_names(const char *const *names, char *buf, size_t size)
{
	size_t used = 0;
	int i, k;

	buf[0] = '\0';
	for (i = 0; names[i] != NULL && used < size; i++) {
		k = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", names[i]);
		if (k < 0)
			break;
		used += (size_t)k;
	}
	return buf;
}

int proto__yread_enum(proto__ydoc *d, yaml_node_t *n, const char *path,
                      const char *const *names, int *out)
{
	char list[256], what[280];
	int i;

	for (i = 0; names[i] != NULL; i++) {
		if (proto__ynode_is(n, names[i])) {
			*out = i;
			return 0;
		}
	}
	snprintf(what, sizeof what, "one of %s",
	         join_names(names, list, sizeof list));
	return proto__ydoc_expected(d, n, path, what);
}

/* ---- sequences ------------------------------------------------------------ */

int proto__yseq(proto__ydoc *d, yaml_node_t *n, const char *path, int min, int max,
                int *len)
{
	char what[64];
	ptrdiff_t k;

	if (min == max)
		snprintf(what, sizeof what, "a list of %d item%s", min,
		         min == 1 ? "" : "s");
	else
		snprintf(what, sizeof what, "a list of %d..%d items", min, max);
	if (n->type != YAML_SEQUENCE_NODE)
		return proto__ydoc_expected(d, n, path, what);
	k = n->data.sequence.items.top - n->data.sequence.items.start;
	if (k < min || k > max)
		return proto__ydoc_expected(d, n, path, what);
	*len = (int)k;
	return 0;
}

yaml_node_t *proto__yseq_at(proto__ydoc *d, yaml_node_t *seq, int i)
{
	return yaml_document_get_node(&d->doc, seq->data.sequence.items.start[i]);
}

/* ---- mappings ------------------------------------------------------------- */

/* Index of scalar k in the NULL-terminated keys, or -1. */
static int key_index(const yaml_node_t *k, const char *const *keys)
{
	int i;

	for (i = 0; keys[i] != NULL; i++)
		if (proto__ynode_is(k, keys[i]))
			return i;
	return -1;
}

/* "path: " before a message, or nothing at the top level. */
static const char *sep(const char *path)
{
	return path[0] ? ": " : "";
}

static int unknown_key(const proto__ymap *m, const yaml_node_t *k,
                       const char *const *keys)
{
	char got[64], list[256];

	describe(k, got, sizeof got);
	return proto__ydoc_fail(m->d, k, "%s%sunknown key %s; expected one of %s",
	                        m->path, sep(m->path), got,
	                        join_names(keys, list, sizeof list));
}

int proto__ymap_open(proto__ydoc *d, yaml_node_t *n, const char *path,
                     const char *const *keys, proto__ymap *m)
{
	yaml_node_pair_t *pair;
	yaml_node_t *k;
	uint64_t seen = 0;
	int i;

	m->d = d;
	m->node = n;
	snprintf(m->path, sizeof m->path, "%s", path);
	if (n->type != YAML_MAPPING_NODE)
		return proto__ydoc_expected(d, n, path, "a mapping");
	/* Every key is checked against the short list before any other, so a
	 * mapping of many keys fails at its first unknown or repeated one and
	 * the work stays linear. */
	for (pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
	     pair++) {
		k = yaml_document_get_node(&d->doc, pair->key);
		i = key_index(k, keys);
		if (i < 0)
			return unknown_key(m, k, keys);
		assert(i < 64);
		if (seen & (UINT64_C(1) << i))
			return proto__ydoc_fail(d, k, "%s%sduplicate key '%s'; expected "
			                        "each key at most once", path, sep(path),
			                        keys[i]);
		seen |= UINT64_C(1) << i;
	}
	return 0;
}

yaml_node_t *proto__ymap_get(const proto__ymap *m, const char *key)
{
	yaml_node_pair_t *pair;
	yaml_document_t *doc = &m->d->doc;

	if (m->node == NULL || m->node->type != YAML_MAPPING_NODE)
		return NULL;
	for (pair = m->node->data.mapping.pairs.start;
	     pair < m->node->data.mapping.pairs.top; pair++)
		if (proto__ynode_is(yaml_document_get_node(doc, pair->key), key))
			return yaml_document_get_node(doc, pair->value);
	return NULL;
}

/* Appends s to the string of used bytes in buf, cutting it short if it must:
 * paths are only ever read by a person. */
static size_t append(char *buf, size_t size, size_t used, const char *s)
{
	size_t n = strlen(s);

	if (used + n >= size)
		n = size - 1 - used;
	memcpy(buf + used, s, n);
	buf[used + n] = '\0';
	return used + n;
}

const char *proto__ymap_path(const proto__ymap *m, const char *key, char *buf,
                             size_t size)
{
	size_t used = append(buf, size, 0, m->path);

	if (m->path[0] != '\0')
		used = append(buf, size, used, ".");
	append(buf, size, used, key);
	return buf;
}

int proto__ymap_node(const proto__ymap *m, const char *key, enum proto__yneed need,
                     yaml_node_t **out)
{
	*out = proto__ymap_get(m, key);
	if (*out == NULL && need == PROTO__REQUIRED)
		return proto__ydoc_fail(m->d, m->node, "%s%smissing required key '%s'",
		                        m->path, sep(m->path), key);
	return 0;
}

int proto__ymap_expected(const proto__ymap *m, const char *key, const char *what)
{
	char path[PROTO_YAML_PATH_MAX];
	yaml_node_t *v = proto__ymap_get(m, key);

	proto__ymap_path(m, key, path, sizeof path);
	/* An absent key has no value to point at: the mapping it belongs in is
	 * the place (no input may reach an assert). */
	if (v == NULL)
		return proto__ydoc_fail(m->d, m->node, "%s: expected %s (not given: its default "
		                        "does not fit)", path, what);
	return proto__ydoc_expected(m->d, v, path, what);
}

int proto__ymap_conflict(const proto__ymap *m, const char *key, const char *key_what,
                         const char *other, const char *other_what)
{
	if (proto__ymap_get(m, key) == NULL && proto__ymap_get(m, other) != NULL)
		return proto__ymap_expected(m, other, other_what);
	return proto__ymap_expected(m, key, key_what);
}

/* The value of key with its full path in path (PROTO_YAML_PATH_MAX bytes);
 * NULL with *rc = 0 when the key is absent and optional. */
static yaml_node_t *field(const proto__ymap *m, const char *key,
                         enum proto__yneed need, char *path, int *rc)
{
	yaml_node_t *v;

	*rc = proto__ymap_node(m, key, need, &v);
	proto__ymap_path(m, key, path, PROTO_YAML_PATH_MAX);
	return v;
}

int proto__ymap_int(const proto__ymap *m, const char *key, enum proto__yneed need,
                    int lo, int hi, const char *what, int *out)
{
	char path[PROTO_YAML_PATH_MAX];
	int rc;
	yaml_node_t *v = field(m, key, need, path, &rc);

	return v ? proto__yread_int(m->d, v, path, lo, hi, what, out) : rc;
}

int proto__ymap_i64(const proto__ymap *m, const char *key, enum proto__yneed need,
                    int64_t lo, int64_t hi, const char *what, int64_t *out)
{
	char path[PROTO_YAML_PATH_MAX];
	int rc;
	yaml_node_t *v = field(m, key, need, path, &rc);

	return v ? proto__yread_i64(m->d, v, path, lo, hi, what, out) : rc;
}

int proto__ymap_u64(const proto__ymap *m, const char *key, enum proto__yneed need,
                    uint64_t hi, const char *what, uint64_t *out)
{
	char path[PROTO_YAML_PATH_MAX];
	int rc;
	yaml_node_t *v = field(m, key, need, path, &rc);

	return v ? proto__yread_u64(m->d, v, path, hi, what, out) : rc;
}

int proto__ymap_double(const proto__ymap *m, const char *key, enum proto__yneed need,
                       double lo, double hi, const char *what, double *out)
{
	char path[PROTO_YAML_PATH_MAX];
	int rc;
	yaml_node_t *v = field(m, key, need, path, &rc);

	return v ? proto__yread_double(m->d, v, path, lo, hi, what, out) : rc;
}

int proto__ymap_bool(const proto__ymap *m, const char *key, enum proto__yneed need,
                     int *out)
{
	char path[PROTO_YAML_PATH_MAX];
	int rc;
	yaml_node_t *v = field(m, key, need, path, &rc);

	return v ? proto__yread_bool(m->d, v, path, out) : rc;
}

int proto__ymap_str(const proto__ymap *m, const char *key, enum proto__yneed need,
                    size_t maxlen, char *buf)
{
	char path[PROTO_YAML_PATH_MAX];
	int rc;
	yaml_node_t *v = field(m, key, need, path, &rc);

	return v ? proto__yread_str(m->d, v, path, maxlen, buf) : rc;
}

int proto__ymap_enum(const proto__ymap *m, const char *key, enum proto__yneed need,
                     const char *const *names, int *out)
{
	char path[PROTO_YAML_PATH_MAX];
	int rc;
	yaml_node_t *v = field(m, key, need, path, &rc);

	return v ? proto__yread_enum(m->d, v, path, names, out) : rc;
}

int proto__ymap_map(const proto__ymap *m, const char *key, enum proto__yneed need,
                    const char *const *keys, proto__ymap *m_out)
{
	char path[PROTO_YAML_PATH_MAX];
	int rc;
	yaml_node_t *v = field(m, key, need, path, &rc);

	m_out->d = m->d;
	m_out->node = NULL;
	snprintf(m_out->path, sizeof m_out->path, "%s", path);
	if (v == NULL || (need == PROTO__OPTIONAL && proto__ynode_is_null(v)))
		return rc;
	return proto__ymap_open(m->d, v, path, keys, m_out);
}

/* ---- files ---------------------------------------------------------------- */

/* Reads at most PROTO_YAML_MAX_INPUT + 1 bytes of path into a malloc'd buffer;
 * the extra byte tells a file that is too large from one that just fits.
 * The text is NUL-terminated (one byte more is allocated). */
int proto_read_file(const char *path, char **text, size_t *len, char *err,
                     size_t errlen)
{
	FILE *f = fopen(path, "rb");
	int rc = 0;

	*text = NULL;
	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return GRAFT_EIO;
	}
	*text = malloc(PROTO_YAML_MAX_INPUT + 2);
	if (*text == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		rc = GRAFT_ENOMEM;
	} else {
		*len = fread(*text, 1, PROTO_YAML_MAX_INPUT + 1, f);
		if (ferror(f)) {
			snprintf(err, errlen, "%s: cannot read: %s", path,
			         strerror(errno));
			rc = GRAFT_EIO;
		} else if (*len > PROTO_YAML_MAX_INPUT) {
			snprintf(err, errlen, "%s: the file is larger than %d bytes; "
			         "expected at most %d", path, PROTO_YAML_MAX_INPUT,
			         PROTO_YAML_MAX_INPUT);
			rc = GRAFT_EINVAL;
		}
	}
	fclose(f);
	if (rc == 0)
		(*text)[*len] = '\0';
	if (rc != 0) {
		free(*text);
		*text = NULL;
	}
	return rc;
}
