/*
 * arch.c - reading and writing graft-arch/1, the architecture config.
 *
 * The parser reads the document into a fresh nn_arch in the order a network is
 * built (input, stem, graft, blocks, head), so that each block can be checked
 * against the spatial sizes of what comes before it; a config that parses is a
 * network nn can build.  The emitter writes the layout of ARCH-FORMAT.md with
 * the fewest digits that read back exactly, so configs survive a round trip.
 */
#include "proto/proto.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto/yaml_doc.h"

#define FORMAT_NAME "graft-arch/1"
#define MAX_WIDTH 4096    /* channels of any layer */
#define MAX_CLASSES 10000
#define CROP_SMALL_SIDE 28

static const char *const top_keys[] = {
	"format", "input", "classes", "labels", "stem", "graft", "blocks", "head", "train",
	"result", NULL,
};
static const char *const input_keys[] = {
	"channels", "height", "width", "normalize", NULL,
};
static const char *const normalize_keys[] = { "mean", "std", NULL };
static const char *const stem_keys[] = { "op", "kernel", "channels", NULL };
static const char *const graft_keys[] = {
	"channels", "layers", "sha256", "source", NULL,
};
static const char *const layer_keys[] = { "kernel", "channels", NULL };
static const char *const block_keys[] = {
	"op", "channels", "stride", "skip_from", NULL,
};
static const char *const head_keys[] = { "op", NULL };
static const char *const train_keys[] = {
	"steps", "batch", "lr", "momentum", "nesterov", "weight_decay", "schedule",
	"warmup", "augment", "seed", NULL,
};
static const char *const result_keys[] = {
	"val_accuracy", "params", "flops", NULL,
};
static const char *const stem_ops[] = { "conv", NULL };
static const char *const head_ops[] = { "linear", NULL };
static const char *const block_ops[] = {
	[NN_OP_CONV3] = "conv3", [NN_OP_CONV5] = "conv5", [NN_OP_SEP3] = "sep3",
	[NN_OP_RES3] = "res3", [NN_OP_POOL] = "pool", NULL,
};
static const char *const schedules[] = {
	[NN_SCHEDULE_CONSTANT] = "constant", [NN_SCHEDULE_COSINE] = "cosine", NULL,
};
enum { AUG_CROP, AUG_FLIP };
static const char *const augments[] = { [AUG_CROP] = "crop", [AUG_FLIP] = "flip", NULL };

/* The padding "crop" stands for: 2 pixels for MNIST-sized inputs, 4 above. */
static int crop_pad(int h, int w)
{
	return h <= CROP_SMALL_SIDE && w <= CROP_SMALL_SIDE ? 2 : 4;
}

/* ---- parsing: input and normalization ------------------------------------ */

/* Reads normalize.<key>: one number for every channel, or a list of exactly
 * nc numbers, each lo..hi. */
static int parse_per_channel(const proto__ymap *m, const char *key, int nc,
                             double lo, double hi, const char *what, float *out)
{
	char path[PROTO_YAML_PATH_MAX], ipath[PROTO_YAML_PATH_MAX + 16], lwhat[96];
	yaml_node_t *v;
	double x;
	int rc, i, n;

	if ((rc = proto__ymap_node(m, key, PROTO__REQUIRED, &v)) != 0)
		return rc;
	proto__ymap_path(m, key, path, sizeof path);
	if (v->type != YAML_SEQUENCE_NODE) {
		if ((rc = proto__yread_double(m->d, v, path, lo, hi, what, &x)) != 0)
			return rc;
		for (i = 0; i < nc; i++)
			out[i] = (float)x;
		return 0;
	}
	snprintf(lwhat, sizeof lwhat, "one number for all channels or a list of %d "
	         "(one per channel)", nc);
	if (proto__yseq(m->d, v, path, 0, INT_MAX, &n) != 0 || n != nc)
		return proto__ydoc_expected(m->d, v, path, lwhat);
	for (i = 0; i < nc; i++) {
		snprintf(ipath, sizeof ipath, "%s[%d]", path, i);
		rc = proto__yread_double(m->d, proto__yseq_at(m->d, v, i), ipath, lo, hi,
		                         what, &x);
		if (rc != 0)
			return rc;
		out[i] = (float)x;
	}
	return 0;
}

static int parse_input(const proto__ymap *top, nn_arch *a)
{
	proto__ymap in, norm;
	int rc;

	if ((rc = proto__ymap_map(top, "input", PROTO__REQUIRED, input_keys, &in)) ||
	    (rc = proto__ymap_int(&in, "channels", PROTO__REQUIRED, 1, NN_MAX_CHANNELS,
	                          NULL, &a->in_c)) ||
	    (rc = proto__ymap_int(&in, "height", PROTO__REQUIRED, 1, PROTO_ARCH_MAX_SIDE, NULL,
	                          &a->in_h)) ||
	    (rc = proto__ymap_int(&in, "width", PROTO__REQUIRED, 1, PROTO_ARCH_MAX_SIDE, NULL,
	                          &a->in_w)) ||
	    (rc = proto__ymap_map(&in, "normalize", PROTO__OPTIONAL, normalize_keys,
	                          &norm)))
		return rc;
	if (norm.node == NULL)
		return 0;
	/* The bounds keep every value a normal float, so std is never 0 after
	 * the conversion from double. */
	if ((rc = parse_per_channel(&norm, "mean", a->in_c, -1e6, 1e6,
	                            "a number from -1e6 to 1e6", a->mean)) ||
	    (rc = parse_per_channel(&norm, "std", a->in_c, PROTO_ARCH_MIN_STD, 1e6,
	                            "a number from 1e-6 to 1e6", a->std)))
		return rc;
	return 0;
}

/* ---- parsing: stem, graft and head --------------------------------------- */

/* Reads an odd kernel size 1..7: convolutions pad by k/2 to keep the size. */
static int parse_kernel(const proto__ymap *m, int *k)
{
	static const char what[] = "an odd integer 1..7";
	int rc = proto__ymap_int(m, "kernel", PROTO__REQUIRED, 1, 7, what, k);

	if (rc == 0 && *k % 2 == 0)
		return proto__ymap_expected(m, "kernel", what);
	return rc;
}

static int parse_stem_head(const proto__ymap *top, nn_arch *a)
{
	proto__ymap stem, head;
	int op, rc;

	if ((rc = proto__ymap_map(top, "stem", PROTO__REQUIRED, stem_keys, &stem)) ||
	    (rc = proto__ymap_enum(&stem, "op", PROTO__REQUIRED, stem_ops, &op)) ||
	    (rc = parse_kernel(&stem, &a->stem_kernel)) ||
	    (rc = proto__ymap_int(&stem, "channels", PROTO__REQUIRED, 1, MAX_WIDTH,
	                          NULL, &a->stem_channels)) ||
	    (rc = proto__ymap_map(top, "head", PROTO__REQUIRED, head_keys, &head)) ||
	    (rc = proto__ymap_enum(&head, "op", PROTO__REQUIRED, head_ops, &op)))
		return rc;
	return 0;
}

/* Reads graft.sha256: exactly 64 hex digits, stored in lower case. */
static int parse_sha256(const proto__ymap *g, nn_arch *a)
{
	static const char what[] = "a sha256 of 64 hexadecimal digits";
	yaml_node_t *v;
	const char *s;
	int rc, i;

	if ((rc = proto__ymap_node(g, "sha256", PROTO__OPTIONAL, &v)) != 0 ||
	    v == NULL)
		return rc;
	if (v->type != YAML_SCALAR_NODE || v->data.scalar.length != 64)
		return proto__ymap_expected(g, "sha256", what);
	s = (const char *)v->data.scalar.value;
	for (i = 0; i < 64; i++) {
		if (strchr("0123456789abcdefABCDEF", s[i]) == NULL || s[i] == '\0')
			return proto__ymap_expected(g, "sha256", what);
		a->graft_sha256[i] = (char)(s[i] | 0x20);
	}
	a->graft_sha256[64] = '\0';
	return 0;
}

static int parse_graft_layers(const proto__ymap *g, nn_arch *a)
{
	char path[PROTO_YAML_PATH_MAX];
	proto__ymap lm;
	yaml_node_t *v;
	int rc, i;

	if ((rc = proto__ymap_node(g, "layers", PROTO__REQUIRED, &v)) ||
	    (rc = proto__yseq(g->d, v, "graft.layers", 1, NN_MAX_GRAFT_LAYERS,
	                      &a->graft_nlayers)))
		return rc;
	for (i = 0; i < a->graft_nlayers; i++) {
		snprintf(path, sizeof path, "graft.layers[%d]", i);
		if ((rc = proto__ymap_open(g->d, proto__yseq_at(g->d, v, i), path,
		                           layer_keys, &lm)) ||
		    (rc = parse_kernel(&lm, &a->graft_kernel[i])) ||
		    (rc = proto__ymap_int(&lm, "channels", PROTO__REQUIRED, 1, MAX_WIDTH,
		                          NULL, &a->graft_channels[i])))
			return rc;
	}
	return 0;
}

/* Reads the optional graft.  Its channels key repeats the last layer's width;
 * the file says it so a reader need not dig, and we insist the two agree. */
static int parse_graft(const proto__ymap *top, nn_arch *a)
{
	proto__ymap g;
	char what[64];
	int channels, last, rc;

	if ((rc = proto__ymap_map(top, "graft", PROTO__OPTIONAL, graft_keys, &g)) ||
	    g.node == NULL)
		return rc;
	if ((rc = parse_graft_layers(&g, a)) ||
	    (rc = proto__ymap_int(&g, "channels", PROTO__REQUIRED, 1, MAX_WIDTH, NULL,
	                          &channels)) ||
	    (rc = parse_sha256(&g, a)) ||
	    (rc = proto__ymap_str(&g, "source", PROTO__OPTIONAL,
	                          sizeof a->graft_source - 1, a->graft_source)))
		return rc;
	last = a->graft_channels[a->graft_nlayers - 1];
	if (channels != last) {
		snprintf(what, sizeof what, "%d, the last layer's channels", last);
		return proto__ymap_expected(&g, "channels", what);
	}
	return 0;
}

/* ---- parsing: blocks ------------------------------------------------------- */

/* Spatial sizes along the network: index 0 is the stem's output (the input
 * size), index i + 1 block i's output. */
typedef struct sizes {
	int h[NN_MAX_BLOCKS + 1], w[NN_MAX_BLOCKS + 1];
} sizes;

/* Computes block i's output size; a size of 0 means too many downsamplings. */
static int block_size(const proto__ymap *m, const nn_block_spec *b, int i, sizes *s)
{
	if (b->op == NN_OP_POOL) {
		s->h[i + 1] = s->h[i] / 2;
		s->w[i + 1] = s->w[i] / 2;
	} else {
		s->h[i + 1] = (s->h[i] - 1) / b->stride + 1;
		s->w[i + 1] = (s->w[i] - 1) / b->stride + 1;
	}
	if (s->h[i + 1] < 1 || s->w[i + 1] < 1)
		return proto__ydoc_fail(m->d, m->node, "%s: pool turns %dx%d into %dx%d; "
		                        "expected a spatial size of at least 1x1",
		                        m->path, s->h[i], s->w[i], s->h[i + 1],
		                        s->w[i + 1]);
	return 0;
}

/* Checks that skip_from names a tensor of block i's spatial size, since the
 * skip is added element by element (a 1x1 projection fixes channels only). */
static int check_skip(const proto__ymap *m, const nn_block_spec *b, int i,
                      const sizes *s)
{
	char what[128], src[32];
	int j = b->skip_from + 1;

	if (b->skip_from == NN_SKIP_NONE ||
	    (s->h[j] == s->h[i + 1] && s->w[j] == s->w[i + 1]))
		return 0;
	if (b->skip_from < 0)
		snprintf(src, sizeof src, "the stem");
	else
		snprintf(src, sizeof src, "block %d", b->skip_from);
	snprintf(what, sizeof what, "a source of this block's output size %dx%d "
	         "(%s gives %dx%d)", s->h[i + 1], s->w[i + 1], src, s->h[j], s->w[j]);
	return proto__ymap_expected(m, "skip_from", what);
}

static int parse_block(proto__ydoc *d, yaml_node_t *n, int i, nn_arch *a, sizes *s)
{
	nn_block_spec *b = &a->blocks[i];
	char path[32], skip_what[80];
	proto__ymap m;
	int op, rc;

	snprintf(path, sizeof path, "blocks[%d]", i);
	if (i == 0)
		snprintf(skip_what, sizeof skip_what, "-1 (the stem)");
	else
		snprintf(skip_what, sizeof skip_what, "-1 (the stem) or an earlier "
		         "block 0..%d", i - 1);
	if ((rc = proto__ymap_open(d, n, path, block_keys, &m)) ||
	    (rc = proto__ymap_enum(&m, "op", PROTO__REQUIRED, block_ops, &op)) ||
	    (rc = proto__ymap_int(&m, "channels", PROTO__REQUIRED, 1, MAX_WIDTH, NULL,
	                          &b->channels)) ||
	    (rc = proto__ymap_int(&m, "stride", PROTO__OPTIONAL, 1, 2, "1 or 2",
	                          &b->stride)) ||
	    (rc = proto__ymap_int(&m, "skip_from", PROTO__OPTIONAL, -1, i - 1,
	                          skip_what, &b->skip_from)))
		return rc;
	b->op = (enum nn_block_op)op;
	if ((rc = block_size(&m, b, i, s)) || (rc = check_skip(&m, b, i, s)))
		return rc;
	return 0;
}

static int parse_blocks(const proto__ymap *top, nn_arch *a)
{
	yaml_node_t *v;
	sizes s;
	int rc, i;

	if ((rc = proto__ymap_node(top, "blocks", PROTO__REQUIRED, &v)) ||
	    (rc = proto__yseq(top->d, v, "blocks", 1, NN_MAX_BLOCKS, &a->nblocks)))
		return rc;
	s.h[0] = a->in_h;
	s.w[0] = a->in_w;
	for (i = 0; i < a->nblocks; i++)
		if ((rc = parse_block(top->d, proto__yseq_at(top->d, v, i), i, a, &s)))
			return rc;
	return 0;
}

/* ---- parsing: train and result --------------------------------------------- */

/* Reads train.augment, a list of distinct names from augments. */
static int parse_augment(const proto__ymap *t, nn_arch *a)
{
	char path[PROTO_YAML_PATH_MAX];
	yaml_node_t *v, *item;
	int rc, i, n, which, seen = 0;

	if ((rc = proto__ymap_node(t, "augment", PROTO__OPTIONAL, &v)) || v == NULL)
		return rc;
	if ((rc = proto__yseq(t->d, v, "train.augment", 0, 2, &n)))
		return rc;
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof path, "train.augment[%d]", i);
		item = proto__yseq_at(t->d, v, i);
		if ((rc = proto__yread_enum(t->d, item, path, augments, &which)))
			return rc;
		if (seen & (1 << which))
			return proto__ydoc_expected(t->d, item, path,
			                            "crop and flip at most once each");
		seen |= 1 << which;
	}
	a->train.crop = seen & (1 << AUG_CROP) ? crop_pad(a->in_h, a->in_w) : 0;
	a->train.flip = (seen & (1 << AUG_FLIP)) != 0;
	return 0;
}

static int parse_train_numbers(const proto__ymap *t, nn_recipe *r)
{
	double lr = r->lr, mom = r->momentum, wd = r->weight_decay;
	int rc;

	if ((rc = proto__ymap_int(t, "steps", PROTO__OPTIONAL, 1, 100000000, NULL,
	                          &r->steps)) ||
	    (rc = proto__ymap_int(t, "batch", PROTO__OPTIONAL, 1, 65536, NULL,
	                          &r->batch)) ||
	    (rc = proto__ymap_double(t, "lr", PROTO__OPTIONAL, 0, 100, NULL, &lr)) ||
	    (rc = proto__ymap_double(t, "momentum", PROTO__OPTIONAL, 0, 1, NULL,
	                             &mom)) ||
	    (rc = proto__ymap_double(t, "weight_decay", PROTO__OPTIONAL, 0, 1, NULL,
	                             &wd)) ||
	    (rc = proto__ymap_int(t, "warmup", PROTO__OPTIONAL, 0, r->steps,
	                          "an integer from 0 to train.steps", &r->warmup)) ||
	    (rc = proto__ymap_u64(t, "seed", PROTO__OPTIONAL, UINT64_MAX, NULL,
	                          &r->seed)))
		return rc;
	r->lr = (float)lr;
	r->momentum = (float)mom;
	r->weight_decay = (float)wd;
	return 0;
}

static int parse_train(const proto__ymap *top, nn_arch *a)
{
	nn_recipe *r = &a->train;
	proto__ymap t;
	int sched = (int)r->schedule, rc;

	if ((rc = proto__ymap_map(top, "train", PROTO__OPTIONAL, train_keys, &t)) ||
	    t.node == NULL)
		return rc;
	if ((rc = parse_train_numbers(&t, r)) ||
	    (rc = proto__ymap_bool(&t, "nesterov", PROTO__OPTIONAL, &r->nesterov)) ||
	    (rc = proto__ymap_enum(&t, "schedule", PROTO__OPTIONAL, schedules,
	                           &sched)) ||
	    (rc = parse_augment(&t, a)))
		return rc;
	r->schedule = (enum nn_schedule)sched;
	/* PyTorch refuses Nesterov momentum without momentum; so do we, early. */
	if (r->nesterov && r->momentum == 0.0f)
		return proto__ymap_expected(&t, "nesterov", "false when momentum is 0");
	return 0;
}

static int parse_result(const proto__ymap *top, nn_arch *a)
{
	proto__ymap res;
	int rc;

	if ((rc = proto__ymap_map(top, "result", PROTO__OPTIONAL, result_keys, &res)) ||
	    res.node == NULL)
		return rc;
	a->has_result = 1;
	if ((rc = proto__ymap_double(&res, "val_accuracy", PROTO__OPTIONAL, 0, 1,
	                             NULL, &a->result_val_accuracy)) ||
	    (rc = proto__ymap_i64(&res, "params", PROTO__OPTIONAL, 0, INT64_MAX, NULL,
	                          &a->result_params)) ||
	    (rc = proto__ymap_i64(&res, "flops", PROTO__OPTIONAL, 0, INT64_MAX, NULL,
	                          &a->result_flops)))
		return rc;
	return 0;
}

/* ---- parsing: the document --------------------------------------------------- */

/* Checks format before anything else, so that another kind of file (a job
 * spec, say) is named as such rather than as a pile of unknown keys. */
static int parse_format(proto__ydoc *d, yaml_node_t *root)
{
	proto__ymap m = { .d = d, .node = root, .path = "" };
	yaml_node_t *v;
	int rc;

	if (root->type != YAML_MAPPING_NODE)
		return proto__ydoc_expected(d, root, "", "a " FORMAT_NAME " mapping");
	if ((rc = proto__ymap_node(&m, "format", PROTO__REQUIRED, &v)))
		return rc;
	if (!proto__ynode_is(v, FORMAT_NAME))
		return proto__ymap_expected(&m, "format", FORMAT_NAME);
	return 0;
}

/* labels: as many class names as classes, each 1..255 bytes; *names (when
 * not NULL) gets them NUL-separated, malloc'd, or NULL when absent. */
static int parse_labels(const proto__ymap *top, int classes, char **names)
{
	char path[PROTO_YAML_PATH_MAX], item[PROTO_YAML_PATH_MAX + 16], name[256];
	yaml_node_t *v;
	size_t len = 0;
	char *buf = NULL;
	int n, rc;

	if ((rc = proto__ymap_node(top, "labels", PROTO__OPTIONAL, &v)) || !v)
		return rc;
	proto__ymap_path(top, "labels", path, sizeof path);
	if ((rc = proto__yseq(top->d, v, path, classes, classes, &n)))
		return rc;
	if (names && (buf = malloc((size_t)classes * sizeof name)) == NULL)
		return GRAFT_ENOMEM;
	for (int i = 0; i < n; i++) {
		snprintf(item, sizeof item, "%s[%d]", path, i);
		if ((rc = proto__yread_str(top->d, proto__yseq_at(top->d, v, i), item, 255, name)))
			break;
		if (!name[0]) {
			rc = proto__ydoc_expected(top->d, proto__yseq_at(top->d, v, i), item,
			                          "a class name");
			break;
		}
		if (buf) {
			memcpy(buf + len, name, strlen(name) + 1);
			len += strlen(name) + 1;
		}
	}
	if (rc)
		free(buf);
	else if (names)
		*names = buf;
	return rc;
}

static int parse_doc(proto__ydoc *d, nn_arch *a, char **names)
{
	yaml_node_t *root = proto__ydoc_root(d);
	proto__ymap top;
	int rc;

	if ((rc = parse_format(d, root)) ||
	    (rc = proto__ymap_open(d, root, "", top_keys, &top)) ||
	    (rc = parse_input(&top, a)) ||
	    (rc = proto__ymap_int(&top, "classes", PROTO__REQUIRED, 2, MAX_CLASSES,
	                          NULL, &a->classes)) ||
	    (rc = parse_stem_head(&top, a)) ||
	    (rc = parse_graft(&top, a)) ||
	    (rc = parse_blocks(&top, a)) ||
	    (rc = parse_train(&top, a)) ||
	    (rc = parse_result(&top, a)) ||
	    (rc = parse_labels(&top, a->classes, names)))
		return rc;
	return 0;
}

int proto_arch_parse(const char *text, size_t len, nn_arch *out, char *err,
                     size_t errlen)
{
	return proto_arch_parse_labels(text, len, out, NULL, err, errlen);
}

int proto_arch_parse_labels(const char *text, size_t len, nn_arch *out, char **labels,
                            char *err, size_t errlen)
{
	proto__ydoc d;
	nn_arch a;
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((text == NULL && len > 0) || out == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "proto_arch_parse: NULL argument");
		return GRAFT_EINVAL;
	}
	nn_arch_defaults(&a);
	if ((rc = proto__ydoc_load(&d, text ? text : "", len, err, errlen)) != 0)
		return rc;
	if (labels)
		*labels = NULL;
	rc = parse_doc(&d, &a, labels);
	proto__ydoc_free(&d);
	if (rc == 0)
		*out = a;
	return rc;
}

/* ---- loading from a file ---------------------------------------------------- */

int proto_arch_load(const char *path, nn_arch *out, char *err, size_t errlen)
{
	char msg[GRAFT_ERRLEN] = "", dummy[1];
	char *text;
	size_t len = 0;
	int rc;

	if (err == NULL || errlen == 0) {
		err = dummy;
		errlen = sizeof dummy;
	}
	err[0] = '\0';
	if (path == NULL || out == NULL) {
		snprintf(err, errlen, "proto_arch_load: NULL argument");
		return GRAFT_EINVAL;
	}
	if ((rc = proto_read_file(path, &text, &len, err, errlen)) != 0)
		return rc;
	rc = proto_arch_parse(text, len, out, msg, sizeof msg);
	free(text);
	if (rc != 0)
		snprintf(err, errlen, "%s: %s", path, msg);
	return rc;
}

/* ---- emitting ----------------------------------------------------------------- */

/* A growing string; after the first failed allocation every append is a no-op
 * and the caller sees oom once, at the end. */
typedef struct sbuf {
	char *p;
	size_t len, cap;
	int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf *b, const char *fmt, ...)
{
	va_list ap;
	char *np;
	size_t cap;
	int n;

	if (b->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = 1;
		return;
	}
	if (b->p == NULL || b->len + (size_t)n >= b->cap) {
		cap = b->cap ? b->cap : 1024;
		while (cap <= b->len + (size_t)n)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* Gives a number without a dot one, so that YAML 1.1 readers such as PyYAML,
 * which take "1e-05" for a string and "1" for an integer, read a float. */
static void add_point(char *buf, size_t size)
{
	char *e = strchr(buf, 'e');
	size_t len = strlen(buf);

	if (strchr(buf, '.') != NULL || strpbrk(buf, "0123456789") == NULL ||
	    len + 3 > size)
		return;
	if (e == NULL) {
		strcat(buf, ".0");
		return;
	}
	memmove(e + 2, e, strlen(e) + 1);
	e[0] = '.';
	e[1] = '0';
}

/* The shortest %g form of x that strtof reads back as x (at most 9 digits). */
static const char *fmt_float(char *buf, size_t size, float x)
{
	int prec;

	for (prec = 1; prec < 9; prec++) {
		snprintf(buf, size, "%.*g", prec, (double)x);
		if (strtof(buf, NULL) == x)
			break;
	}
	if (prec == 9)
		snprintf(buf, size, "%.9g", (double)x);
	add_point(buf, size);
	return buf;
}

/* The shortest %g form of x that strtod reads back as x (at most 17 digits). */
static const char *fmt_double(char *buf, size_t size, double x)
{
	int prec;

	for (prec = 1; prec < 17; prec++) {
		snprintf(buf, size, "%.*g", prec, x);
		if (strtod(buf, NULL) == x)
			break;
	}
	if (prec == 17)
		snprintf(buf, size, "%.17g", x);
	add_point(buf, size);
	return buf;
}

/* The code point of the UTF-8 sequence at p (n bytes long, in *len), or -1
 * when it is not valid UTF-8 (overlong forms and surrogates included). */
static long utf8_next(const unsigned char *p, int *len)
{
	static const long min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	int n = p[0] >= 0xf0 && p[0] < 0xf5 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
	long c;

	*len = 1;
	if (p[0] >= 0xf8 || n == 0)
		return -1;
	c = p[0] & (0x7f >> n);
	for (int i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return -1;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return -1;
	*len = n;
	return c;
}

/* Writes s as a double-quoted YAML string that reads back as s.  Printable
 * UTF-8 passes through; what YAML would not keep as it is gets an escape:
 * C0 and C1 control characters, DEL, U+0085, U+2028 and U+2029 (YAML line
 * breaks, which a double-quoted scalar folds) and U+FEFF, U+FFFE, U+FFFF.
 * A byte that is not valid UTF-8 cannot be written so that it reads back
 * (YAML is text); it becomes U+FFFD, so the file stays readable. */
static void emit_quoted(sbuf *b, const char *s)
{
	const unsigned char *p;
	int len;

	sb_printf(b, "\"");
	for (p = (const unsigned char *)s; *p; p += len) {
		long c = *p < 0x80 ? (len = 1, *p) : utf8_next(p, &len);
		if (c == '"' || c == '\\')
			sb_printf(b, "\\%c", (int)c);
		else if (c < 0)
			sb_printf(b, "\\uFFFD");
		else if (c < 0x20 || (c >= 0x7f && c <= 0x9f))
			sb_printf(b, "\\x%02lx", c);
		else if (c == 0x2028 || c == 0x2029 || c == 0xfeff || c == 0xfffe || c == 0xffff)
			sb_printf(b, "\\u%04lX", c);
		else
			sb_printf(b, "%.*s", len, (const char *)p);
	}
	sb_printf(b, "\"");
}

/* One number when every channel has the same value, else a list. */
static void emit_per_channel(sbuf *b, const float *v, int n)
{
	char num[40];
	int i, same = 1;

	for (i = 1; i < n; i++)
		same = same && memcmp(&v[i], &v[0], sizeof v[0]) == 0;
	if (same) {
		sb_printf(b, "%s", fmt_float(num, sizeof num, v[0]));
		return;
	}
	sb_printf(b, "[");
	for (i = 0; i < n; i++)
		sb_printf(b, "%s%s", i ? ", " : "", fmt_float(num, sizeof num, v[i]));
	sb_printf(b, "]");
}

static void emit_head(sbuf *b, const nn_arch *a)
{
	int nc = a->in_c < 1 ? 1 : a->in_c > NN_MAX_CHANNELS ? NN_MAX_CHANNELS : a->in_c;

	sb_printf(b, "format: %s\n", FORMAT_NAME);
	sb_printf(b, "input: {channels: %d, height: %d, width: %d, normalize: {mean: ",
	          a->in_c, a->in_h, a->in_w);
	emit_per_channel(b, a->mean, nc);
	sb_printf(b, ", std: ");
	emit_per_channel(b, a->std, nc);
	sb_printf(b, "}}\n");
	sb_printf(b, "classes: %d\n", a->classes);
	sb_printf(b, "stem: {op: conv, kernel: %d, channels: %d}\n", a->stem_kernel,
	          a->stem_channels);
}

static void emit_graft(sbuf *b, const nn_arch *a)
{
	int i, n = a->graft_nlayers > NN_MAX_GRAFT_LAYERS ? NN_MAX_GRAFT_LAYERS :
	           a->graft_nlayers;

	if (n <= 0)
		return;
	sb_printf(b, "graft:\n  channels: %d\n  layers: [", a->graft_channels[n - 1]);
	for (i = 0; i < n; i++)
		sb_printf(b, "%s{kernel: %d, channels: %d}", i ? ", " : "",
		          a->graft_kernel[i], a->graft_channels[i]);
	sb_printf(b, "]\n");
	if (a->graft_sha256[0] != '\0')
		sb_printf(b, "  sha256: \"%.64s\"\n", a->graft_sha256);
	if (a->graft_source[0] != '\0') {
		sb_printf(b, "  source: ");
		emit_quoted(b, a->graft_source);
		sb_printf(b, "\n");
	}
}

static void emit_blocks(sbuf *b, const nn_arch *a)
{
	const nn_block_spec *bl;
	int i, n = a->nblocks > NN_MAX_BLOCKS ? NN_MAX_BLOCKS : a->nblocks;

	sb_printf(b, "blocks:\n");
	for (i = 0; i < n; i++) {
		bl = &a->blocks[i];
		sb_printf(b, "  - {op: %s, channels: %d",
		          bl->op <= NN_OP_POOL ? block_ops[bl->op] : "?", bl->channels);
		if (bl->stride != 1)
			sb_printf(b, ", stride: %d", bl->stride);
		if (bl->skip_from != NN_SKIP_NONE)
			sb_printf(b, ", skip_from: %d", bl->skip_from);
		sb_printf(b, "}\n");
	}
	sb_printf(b, "head: {op: linear}\n");
}

/* The recipe as one flow mapping over two lines, as in ARCH-FORMAT.md. */
static void emit_train(sbuf *b, const nn_arch *a)
{
	const nn_recipe *r = &a->train;
	char lr[40], mom[40], wd[40];
	const char *aug = r->crop && r->flip ? "crop, flip" : r->crop ? "crop" :
	                  r->flip ? "flip" : "";

	sb_printf(b, "train: {steps: %d, batch: %d, lr: %s, momentum: %s, "
	          "nesterov: %s,\n", r->steps, r->batch,
	          fmt_float(lr, sizeof lr, r->lr),
	          fmt_float(mom, sizeof mom, r->momentum),
	          r->nesterov ? "true" : "false");
	sb_printf(b, "        weight_decay: %s, schedule: %s, ",
	          fmt_float(wd, sizeof wd, r->weight_decay),
	          r->schedule == NN_SCHEDULE_CONSTANT ? "constant" : "cosine");
	if (r->warmup != 0)
		sb_printf(b, "warmup: %d, ", r->warmup);
	sb_printf(b, "augment: [%s], seed: %llu}\n", aug, (unsigned long long)r->seed);
}

static void emit_result(sbuf *b, const nn_arch *a)
{
	char acc[40];

	if (!a->has_result)
		return;
	sb_printf(b, "result: {val_accuracy: %s, params: %lld, flops: %lld}\n",
	          fmt_double(acc, sizeof acc, a->result_val_accuracy),
	          (long long)a->result_params, (long long)a->result_flops);
}

char *proto_labels_json(const char *names, int n)
{
	json_t *arr = json_array();
	const char *p = names;

	for (int k = 0; arr && names && k < n; k++, p += strlen(p) + 1)
		json_array_append_new(arr, json_string(p));
	char *text = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
	json_decref(arr);
	return text;
}

/* labels: a JSON array of double-quoted strings, which YAML reads as a
 * flow sequence whatever the names hold. */
static void emit_labels(sbuf *b, const nn_arch *a, const char *names)
{
	char *text = proto_labels_json(names, a->classes);
	if (text)
		sb_printf(b, "labels: %s\n", text);
	else
		b->oom = 1;
	free(text);
}

char *proto_arch_emit(const nn_arch *a)
{
	return proto_arch_emit_labels(a, NULL);
}

char *proto_arch_emit_labels(const nn_arch *a, const char *labels)
{
	sbuf b = { 0 };

	if (a == NULL)
		return NULL;
	emit_head(&b, a);
	if (labels)
		emit_labels(&b, a, labels);
	emit_graft(&b, a);
	emit_blocks(&b, a);
	emit_train(&b, a);
	emit_result(&b, a);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
