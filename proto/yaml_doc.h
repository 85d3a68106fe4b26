/*
 * yaml_doc.h - a strict, hostile-input-safe layer over libyaml's document API,
 * internal to proto/.  The config parsers (graft-arch/1, the job spec) walk a
 * loaded document with these helpers; every error they write starts with
 * "line L, column C: " (1-based) and names the path of the offending node, e.g.
 * "line 4, column 12: stem.kernel: expected an odd integer 1..7, got 'abc'".
 *
 * Loading enforces the limits that keep a hostile file cheap: the input size,
 * the nesting depth, the number of nodes and the scalar length are capped
 * (libyaml's document takes some 170 bytes a node, so 1 MB of "[1,1,1,..."
 * would otherwise cost 85 MB), and anchors and aliases
 * are rejected outright, so a loaded document is a tree whose walk is linear in
 * the input size (an alias "bomb" never gets that far).
 *
 * Every function that fails returns a negative GRAFT_E* code and writes one
 * line into the buffer given to proto__ydoc_load (which may be NULL).
 */
#ifndef GRAFT_PROTO_YAML_DOC_H
#define GRAFT_PROTO_YAML_DOC_H

#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "nn/nn.h"

#define PROTO_YAML_MAX_INPUT (1024 * 1024) /* bytes */
#define PROTO_YAML_MAX_DEPTH 32            /* nested mappings and sequences */
#define PROTO_YAML_MAX_SCALAR 4096         /* bytes in one scalar */
#define PROTO_YAML_MAX_NODES 65536         /* scalars, sequences and mappings */
#define PROTO_YAML_PATH_MAX 128            /* "blocks[3].skip_from" and the like */

typedef struct proto__ydoc {
	yaml_document_t doc;
	int loaded;          /* doc must be deleted */
	const char *text;    /* borrowed, for locating reader errors */
	size_t len;
	char *err;           /* borrowed, may be NULL */
	size_t errlen;
} proto__ydoc;

/* A mapping being read: the node, and its path for messages ("" at the top). */
typedef struct proto__ymap {
	proto__ydoc *d;
	yaml_node_t *node;
	char path[PROTO_YAML_PATH_MAX];
} proto__ymap;

enum proto__yneed { PROTO__OPTIONAL, PROTO__REQUIRED };

/* ---- loading ------------------------------------------------------------ */

/* Parses exactly one YAML document from text (borrowed for the duration of the
 * call only).  On failure d needs no free; on success free it with
 * proto__ydoc_free.  An empty stream is an error. */
int proto__ydoc_load(proto__ydoc *d, const char *text, size_t len,
                     char *err, size_t errlen);
void proto__ydoc_free(proto__ydoc *d);
yaml_node_t *proto__ydoc_root(proto__ydoc *d);

/* ---- errors ------------------------------------------------------------- */

/* Writes "line L, column C: " and the formatted text; returns GRAFT_EINVAL. */
int proto__ydoc_fail(proto__ydoc *d, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Writes "line L, column C: <path>: expected <what>, got <n>"; GRAFT_EINVAL. */
int proto__ydoc_expected(proto__ydoc *d, const yaml_node_t *n, const char *path,
                         const char *what);

/* ---- nodes -------------------------------------------------------------- */

/* A plain scalar null, ~ or nothing at all ("key:" with no value). */
int proto__ynode_is_null(const yaml_node_t *n);
/* Whether scalar n is exactly s (n may be any node). */
int proto__ynode_is(const yaml_node_t *n, const char *s);

/* Checks that n is a sequence of min..max items and stores the count in *len. */
int proto__yseq(proto__ydoc *d, yaml_node_t *n, const char *path, int min, int max,
                int *len);
yaml_node_t *proto__yseq_at(proto__ydoc *d, yaml_node_t *seq, int i);

/* Typed scalars.  what describes the accepted values for the message ("an odd
 * integer 1..7"); NULL means one is made from the range. */
int proto__yread_i64(proto__ydoc *d, yaml_node_t *n, const char *path,
                     int64_t lo, int64_t hi, const char *what, int64_t *out);
int proto__yread_int(proto__ydoc *d, yaml_node_t *n, const char *path,
                     int lo, int hi, const char *what, int *out);
int proto__yread_u64(proto__ydoc *d, yaml_node_t *n, const char *path,
                     uint64_t hi, const char *what, uint64_t *out);
/* A finite decimal number lo <= x <= hi; integers are accepted too. */
int proto__yread_double(proto__ydoc *d, yaml_node_t *n, const char *path,
                        double lo, double hi, const char *what, double *out);
/* true/false (also True, TRUE, False, FALSE); stores 1 or 0. */
int proto__yread_bool(proto__ydoc *d, yaml_node_t *n, const char *path, int *out);
/* Any scalar of at most maxlen bytes without NUL bytes; buf holds maxlen + 1. */
int proto__yread_str(proto__ydoc *d, yaml_node_t *n, const char *path,
                     size_t maxlen, char *buf);
/* One of the NULL-terminated names; stores its index. */
int proto__yread_enum(proto__ydoc *d, yaml_node_t *n, const char *path,
                      const char *const *names, int *out);

/* ---- mappings ----------------------------------------------------------- */

/* Checks that n is a mapping whose keys are scalars from the NULL-terminated
 * list keys, each at most once, and fills m.  path is the mapping's own path. */
int proto__ymap_open(proto__ydoc *d, yaml_node_t *n, const char *path,
                     const char *const *keys, proto__ymap *m);
/* The value of key, or NULL when absent. */
yaml_node_t *proto__ymap_get(const proto__ymap *m, const char *key);
/* Writes "<path>.<key>" (or "<key>" at the top) into buf. */
const char *proto__ymap_path(const proto__ymap *m, const char *key, char *buf,
                             size_t size);
/* Stores the value of key in *out: NULL when it is absent and optional, an
 * error when it is absent and required. */
int proto__ymap_node(const proto__ymap *m, const char *key, enum proto__yneed need,
                     yaml_node_t **out);
/* proto__ydoc_expected on the value of key; an absent key is reported at
 * the mapping, as a default that does not fit. */
int proto__ymap_expected(const proto__ymap *m, const char *key, const char *what);
/* Two keys whose values conflict (sample above population): the error goes
 * to key with key_what when key was written, else to other with
 * other_what, so it always names a key the user wrote when there is one. */
int proto__ymap_conflict(const proto__ymap *m, const char *key, const char *key_what,
                         const char *other, const char *other_what);

/* Typed fields: an absent optional key leaves *out untouched and returns 0. */
int proto__ymap_int(const proto__ymap *m, const char *key, enum proto__yneed need,
                    int lo, int hi, const char *what, int *out);
int proto__ymap_i64(const proto__ymap *m, const char *key, enum proto__yneed need,
                    int64_t lo, int64_t hi, const char *what, int64_t *out);
int proto__ymap_u64(const proto__ymap *m, const char *key, enum proto__yneed need,
                    uint64_t hi, const char *what, uint64_t *out);
int proto__ymap_double(const proto__ymap *m, const char *key, enum proto__yneed need,
                       double lo, double hi, const char *what, double *out);
int proto__ymap_bool(const proto__ymap *m, const char *key, enum proto__yneed need,
                     int *out);
int proto__ymap_str(const proto__ymap *m, const char *key, enum proto__yneed need,
                    size_t maxlen, char *buf);
int proto__ymap_enum(const proto__ymap *m, const char *key, enum proto__yneed need,
                     const char *const *names, int *out);
/* A mapping-valued field, opened with its own key list; m_out->node is NULL
 * when the key is absent or null and optional. */
int proto__ymap_map(const proto__ymap *m, const char *key, enum proto__yneed need,
                    const char *const *keys, proto__ymap *m_out);

#endif
