/*
 * onnx.c - a trained graft-arch/1 network as an ONNX model (opset 13, IR
 * version 7), written with protobuf-c from the onnx.proto Debian's
 * libonnx-dev ships (generated at build time into build/gen/onnx/).
 *
 * The graph mirrors nn/arch_build.c op by op.  Every batch norm follows a
 * convolution directly, so it is folded into it for inference: the weights
 * scaled by gamma / sqrt(var + eps) and a bias beta - mean * that scale,
 * computed in double and rounded once — the same function up to float
 * rounding, one node fewer each.  The input is pixels scaled to [0, 1]; the
 * config's normalization is the graph's first two nodes, so a runtime needs
 * nothing but the file.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx.pb-c.h"
#include "proto/proto.h"

#define OPSET 13
#define IR_VERSION 7

/* The model under construction: its nodes and initializers, and every
 * allocation they point to (freed together at the end). */
typedef struct graph {
	Onnx__NodeProto **node;
	size_t n_node, cap_node;
	Onnx__TensorProto **init;
	size_t n_init, cap_init;
	void **mem;
	size_t n_mem, cap_mem;
	int next_value;
	const nn_weights *w;
	int rc;
	char *err;
	size_t errlen;
} graph;

/* ---- memory --------------------------------------------------------------- */

static void *keep(graph *g, void *p)
{
	if (p == NULL) {
		if (!g->rc)
			g->rc = graft_errf(g->err, g->errlen, GRAFT_ENOMEM, "out of memory");
		return NULL;
	}
	if (g->n_mem == g->cap_mem) {
		size_t cap = g->cap_mem ? 2 * g->cap_mem : 256;
		void **m = realloc(g->mem, sizeof(void *) * cap);
		if (m == NULL) {
			free(p);
			g->rc = graft_errf(g->err, g->errlen, GRAFT_ENOMEM, "out of memory");
			return NULL;
		}
		g->mem = m;
		g->cap_mem = cap;
	}
	return g->mem[g->n_mem++] = p;
}

static void *alloc(graph *g, size_t n)
{
	return g->rc ? NULL : keep(g, calloc(1, n ? n : 1));
}

static char *str(graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *str(graph *g, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	return g->rc ? NULL : keep(g, strdup(buf));
}

static int push(graph *g, void ***v, size_t *n, size_t *cap, void *item)
{
	if (g->rc || item == NULL)
		return -1;
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 64;
		void **m = realloc(*v, sizeof(void *) * c);
		if (m == NULL) {
			g->rc = graft_errf(g->err, g->errlen, GRAFT_ENOMEM, "out of memory");
			return -1;
		}
		*v = m;
		*cap = c;
	}
	(*v)[(*n)++] = item;
	return 0;
}

/* ---- initializers and nodes ----------------------------------------------- */

/* A float initializer of the given shape; data is copied. */
static const char *tensor(graph *g, const char *name, const float *data, int ndim,
                          const int64_t *dims)
{
	Onnx__TensorProto *t = alloc(g, sizeof *t);
	int64_t n = 1;

	if (t == NULL)
		return NULL;
	onnx__tensor_proto__init(t);
	t->name = str(g, "%s", name);
	t->n_dims = (size_t)ndim;
	t->dims = alloc(g, sizeof(int64_t) * (size_t)ndim);
	for (int i = 0; i < ndim && t->dims; i++)
		n *= t->dims[i] = dims[i];
	t->has_data_type = 1;
	t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	t->has_raw_data = 1;
	t->raw_data.len = sizeof(float) * (size_t)n;
	t->raw_data.data = alloc(g, t->raw_data.len);
	if (g->rc)
		return NULL;
	/* raw_data is little-endian, as this machine is. */
	memcpy(t->raw_data.data, data, t->raw_data.len);
	push(g, (void ***)&g->init, &g->n_init, &g->cap_init, t);
	return t->name;
}

static Onnx__AttributeProto *attr(graph *g, const char *name,
                                   Onnx__AttributeProto__AttributeType type)
{
	Onnx__AttributeProto *a = alloc(g, sizeof *a);
	if (a == NULL)
		return NULL;
	onnx__attribute_proto__init(a);
	a->name = str(g, "%s", name);
	a->has_type = 1;
	a->type = type;
	return a;
}

static Onnx__AttributeProto *attr_ints(graph *g, const char *name, int n, const int64_t *v)
{
	Onnx__AttributeProto *a = attr(g, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
	if (a == NULL)
		return NULL;
	a->n_ints = (size_t)n;
	a->ints = alloc(g, sizeof(int64_t) * (size_t)n);
	if (a->ints)
		memcpy(a->ints, v, sizeof(int64_t) * (size_t)n);
	return a;
}

static Onnx__AttributeProto *attr_int(graph *g, const char *name, int64_t v)
{
	Onnx__AttributeProto *a = attr(g, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
	if (a == NULL)
		return NULL;
	a->has_i = 1;
	a->i = v;
	return a;
}

/* Appends op(inputs) -> a new value (or out when given); returns its name. */
static const char *node(graph *g, const char *op, const char *out, int nin,
                        const char *const *in, int nattr, Onnx__AttributeProto **attrs)
{
	Onnx__NodeProto *n = alloc(g, sizeof *n);
	if (n == NULL)
		return NULL;
	onnx__node_proto__init(n);
	n->op_type = str(g, "%s", op);
	n->name = str(g, "%s_%d", op, g->next_value);
	n->n_input = (size_t)nin;
	n->input = alloc(g, sizeof(char *) * (size_t)nin);
	for (int i = 0; i < nin && n->input; i++)
		n->input[i] = (char *)in[i];
	n->n_output = 1;
	n->output = alloc(g, sizeof(char *));
	if (n->output)
		n->output[0] = out ? str(g, "%s", out) : str(g, "v%d", g->next_value++);
	n->n_attribute = (size_t)nattr;
	n->attribute = alloc(g, sizeof(void *) * (size_t)(nattr ? nattr : 1));
	for (int i = 0; i < nattr && n->attribute; i++)
		n->attribute[i] = attrs[i];
	if (g->rc || push(g, (void ***)&g->node, &g->n_node, &g->cap_node, n))
		return NULL;
	return n->output[0];
}

/* ---- layers ---------------------------------------------------------------- */

/* The weight called name, which must have ndim dims (dims[i] >= 0 checked). */
static const nn_tensor *weight(graph *g, const char *name, int ndim, const int64_t *want)
{
	const nn_tensor *t = nn_weights_find(g->w, name);
	if (g->rc)
		return NULL;
	if (t == NULL) {
		g->rc = graft_errf(g->err, g->errlen, GRAFT_EINVAL, "the weights have no %s "
		                   "(are they this architecture's?)", name);
		return NULL;
	}
	int ok = t->ndim == ndim;
	for (int i = 0; ok && i < ndim; i++)
		ok = want[i] < 0 || t->shape[i] == want[i];
	if (!ok) {
		char have[64];
		g->rc = graft_errf(g->err, g->errlen, GRAFT_EINVAL, "%s has shape %s, not the "
		                   "architecture's", name, nn_tensor_shape_str(t, have, sizeof have));
		return NULL;
	}
	return t;
}

static const char *relu(graph *g, const char *x)
{
	return node(g, "Relu", NULL, 1, &x, 0, NULL);
}

static const char *conv_node(graph *g, const char *x, const char *wname, const char *bname,
                             int k, int stride, int groups)
{
	int64_t ks[2] = { k, k }, st[2] = { stride, stride }, pad[4] = { k / 2, k / 2, k / 2, k / 2 };
	Onnx__AttributeProto *attrs[4] = { attr_ints(g, "kernel_shape", 2, ks),
	                                   attr_ints(g, "strides", 2, st),
	                                   attr_ints(g, "pads", 4, pad),
	                                   attr_int(g, "group", groups) };
	const char *in[3] = { x, wname, bname };
	return node(g, "Conv", NULL, bname ? 3 : 2, in, 4, attrs);
}

/* Conv(prefix.conv) -> BN(prefix.bn) folded into one Conv with a bias (->
 * ReLU).  cin, cout: channels in and out. */
static const char *conv_bn(graph *g, const char *x, const char *p, const char *conv,
                           const char *bn, int cin, int cout, int k, int stride, int do_relu)
{
	char name[NN_NAME_MAX + 32];
	int64_t wd[4] = { cout, cin, k, k }, vd[1] = { cout };
	const nn_tensor *w, *gm, *bt, *mu, *var;

	snprintf(name, sizeof name, "%s.%s.weight", p, conv);
	w = weight(g, name, 4, wd);
	const char *part[4] = { "weight", "bias", "running_mean", "running_var" };
	const nn_tensor **bnt[4] = { &gm, &bt, &mu, &var };
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof name, "%s.%s.%s", p, bn, part[i]);
		*bnt[i] = weight(g, name, 1, vd);
	}
	if (g->rc)
		return NULL;
	size_t per = (size_t)cin * k * k;
	float *fw = malloc(sizeof(float) * per * (size_t)cout), *fb = malloc(sizeof(float) * (size_t)cout);
	if (!keep(g, fw) || !keep(g, fb))
		return NULL;
	for (int o = 0; o < cout; o++) {
		double scale = (double)gm->data[o] / sqrt((double)var->data[o] + (double)NN_BN_EPS);
		for (size_t i = 0; i < per; i++)
			fw[o * per + i] = (float)(w->data[o * per + i] * scale);
		fb[o] = (float)(bt->data[o] - mu->data[o] * scale);
	}
	snprintf(name, sizeof name, "%s.%s.weight", p, conv);
	const char *wn = tensor(g, name, fw, 4, wd);
	snprintf(name, sizeof name, "%s.%s.bias", p, conv);
	const char *bn_ = tensor(g, name, fb, 1, vd);
	const char *y = conv_node(g, x, wn, bn_, k, stride, 1);
	return do_relu ? relu(g, y) : y;
}

static const char *add(graph *g, const char *a, const char *b, int do_relu)
{
	const char *in[2] = { a, b };
	const char *y = node(g, "Add", NULL, 2, in, 0, NULL);
	return do_relu ? relu(g, y) : y;
}

/* Identity when the channels agree and the stride is 1, else Conv1x1 -> BN. */
static const char *project(graph *g, const char *x, int cin, int cout, int stride,
                           const char *p)
{
	if (cin == cout && stride == 1)
		return x;
	return conv_bn(g, x, p, "conv", "bn", cin, cout, 1, stride, 0);
}

static const char *block(graph *g, const char *x, int cin, const nn_block_spec *b,
                         const char *p)
{
	char name[NN_NAME_MAX];
	int64_t dd[4] = { cin, 1, 3, 3 };

	switch (b->op) {
	case NN_OP_CONV3:
	case NN_OP_CONV5: {
		int k = b->op == NN_OP_CONV3 ? 3 : 5;
		return conv_bn(g, x, p, "conv", "bn", cin, b->channels, k, b->stride, 1);
	}
	case NN_OP_SEP3: {
		snprintf(name, sizeof name, "%s.dw.weight", p);
		const nn_tensor *dw = weight(g, name, 4, dd);
		if (dw == NULL)
			return NULL;
		const char *wn = tensor(g, name, dw->data, 4, dd);
		const char *y = conv_node(g, x, wn, NULL, 3, b->stride, cin);
		return conv_bn(g, y, p, "pw", "bn", cin, b->channels, 1, 1, 1);
	}
	case NN_OP_RES3: {
		const char *a = conv_bn(g, x, p, "conv1", "bn1", cin, b->channels, 3, b->stride, 1);
		const char *r = conv_bn(g, a, p, "conv2", "bn2", b->channels, b->channels, 3, 1, 0);
		snprintf(name, sizeof name, "%s.shortcut", p);
		const char *s = project(g, x, cin, b->channels, b->stride, name);
		return add(g, r, s, 1);
	}
	case NN_OP_POOL: {
		int64_t two[2] = { 2, 2 };
		Onnx__AttributeProto *attrs[2] = { attr_ints(g, "kernel_shape", 2, two),
		                                   attr_ints(g, "strides", 2, two) };
		const char *y = node(g, "MaxPool", NULL, 1, &x, 2, attrs);
		return conv_bn(g, y, p, "conv", "bn", cin, b->channels, 1, 1, 1);
	}
	}
	g->rc = graft_errf(g->err, g->errlen, GRAFT_EINVAL, "%s: an op ONNX export does not know",
	                   p);
	return NULL;
}

/* x (pixels in [0, 1]) -> (x - mean) / std, per channel. */
static const char *normalize(graph *g, const char *x, const nn_arch *a)
{
	int64_t dims[4] = { 1, a->in_c, 1, 1 };
	float mean[NN_MAX_CHANNELS], std[NN_MAX_CHANNELS];

	for (int c = 0; c < a->in_c; c++) {
		mean[c] = a->mean[c];
		std[c] = a->std[c];
	}
	const char *in[2] = { x, tensor(g, "input.mean", mean, 4, dims) };
	in[0] = node(g, "Sub", NULL, 2, in, 0, NULL);
	in[1] = tensor(g, "input.std", std, 4, dims);
	return node(g, "Div", NULL, 2, in, 0, NULL);
}

static const char *network(graph *g, const nn_arch *a)
{
	const char *out_of[NN_MAX_BLOCKS + 1];
	int ch_of[NN_MAX_BLOCKS + 1];
	char p[32];

	const char *x = normalize(g, "pixels", a);
	const char *h = conv_bn(g, x, "stem", "conv", "bn", a->in_c, a->stem_channels,
	                        a->stem_kernel, 1, 1);
	if (a->graft_nlayers > 0) {
		const char *gx = x;
		int gc = a->in_c;
		for (int i = 0; i < a->graft_nlayers; i++) {
			snprintf(p, sizeof p, "graft.%d", i);
			gx = conv_bn(g, gx, p, "conv", "bn", gc, a->graft_channels[i], a->graft_kernel[i],
			             1, 1);
			gc = a->graft_channels[i];
		}
		h = add(g, h, conv_bn(g, gx, "graft_proj", "conv", "bn", gc, a->stem_channels, 1, 1, 0),
		        0);
	}
	int c = a->stem_channels;
	out_of[0] = h;
	ch_of[0] = c;
	for (int i = 0; i < a->nblocks && !g->rc; i++) {
		const nn_block_spec *b = &a->blocks[i];
		snprintf(p, sizeof p, "blocks.%d", i);
		h = block(g, h, c, b, p);
		c = b->channels;
		if (b->skip_from != NN_SKIP_NONE) {
			char sp[48];
			snprintf(sp, sizeof sp, "%s.skip", p);
			h = add(g, h, project(g, out_of[b->skip_from + 1], ch_of[b->skip_from + 1], c, 1,
			                      sp), 0);
		}
		out_of[i + 1] = h;
		ch_of[i + 1] = c;
	}
	/* head: global average pool, flatten, linear with bias. */
	h = node(g, "GlobalAveragePool", NULL, 1, &h, 0, NULL);
	Onnx__AttributeProto *axis = attr_int(g, "axis", 1);
	h = node(g, "Flatten", NULL, 1, &h, 1, &axis);
	int64_t wd[2] = { a->classes, c }, bd[1] = { a->classes };
	const nn_tensor *hw = weight(g, "head.weight", 2, wd), *hb = weight(g, "head.bias", 1, bd);
	if (g->rc)
		return NULL;
	const char *in[3] = { h, tensor(g, "head.weight", hw->data, 2, wd),
	                      tensor(g, "head.bias", hb->data, 1, bd) };
	Onnx__AttributeProto *tb = attr_int(g, "transB", 1);
	return node(g, "Gemm", "logits", 3, in, 1, &tb);
}

/* ---- the model ------------------------------------------------------------- */

/* A float tensor value of shape (N, d1, ...): N is symbolic, the batch. */
static Onnx__ValueInfoProto *value_info(graph *g, const char *name, int ndim,
                                        const int64_t *dims)
{
	Onnx__ValueInfoProto *v = alloc(g, sizeof *v);
	Onnx__TypeProto *t = alloc(g, sizeof *t);
	Onnx__TypeProto__Tensor *tt = alloc(g, sizeof *tt);
	Onnx__TensorShapeProto *sh = alloc(g, sizeof *sh);
	if (g->rc)
		return NULL;
	onnx__value_info_proto__init(v);
	onnx__type_proto__init(t);
	onnx__type_proto__tensor__init(tt);
	onnx__tensor_shape_proto__init(sh);
	v->name = str(g, "%s", name);
	v->type = t;
	t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	t->tensor_type = tt;
	tt->has_elem_type = 1;
	tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	tt->shape = sh;
	sh->n_dim = (size_t)ndim;
	sh->dim = alloc(g, sizeof(void *) * (size_t)ndim);
	for (int i = 0; i < ndim && sh->dim; i++) {
		Onnx__TensorShapeProto__Dimension *d = alloc(g, sizeof *d);
		if (d == NULL)
			return NULL;
		onnx__tensor_shape_proto__dimension__init(d);
		if (i == 0) {
			d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
			d->dim_param = str(g, "N");
		} else {
			d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
			d->dim_value = dims[i];
		}
		sh->dim[i] = d;
	}
	return g->rc ? NULL : v;
}

static Onnx__StringStringEntryProto *meta(graph *g, const char *key, const char *value)
{
	Onnx__StringStringEntryProto *e = alloc(g, sizeof *e);
	if (e == NULL)
		return NULL;
	onnx__string_string_entry_proto__init(e);
	e->key = str(g, "%s", key);
	e->value = value ? keep(g, strdup(value)) : NULL;
	return e;
}

static void graph_free(graph *g)
{
	for (size_t i = 0; i < g->n_mem; i++)
		free(g->mem[i]);
	free(g->mem);
	free(g->node);
	free(g->init);
}

int proto_onnx_write(const char *path, const nn_arch *a, const nn_weights *w,
                     const char *labels, char *err, size_t errlen)
{
	graph g = { .w = w, .err = err, .errlen = errlen };
	Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
	Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
	Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT, *opsets = &opset;
	Onnx__StringStringEntryProto *props[2];
	int64_t in_dims[4] = { 0, a->in_c, a->in_h, a->in_w }, out_dims[2] = { 0, a->classes };
	char tmp[4200];
	int rc;

	network(&g, a);
	Onnx__ValueInfoProto *in = value_info(&g, "pixels", 4, in_dims);
	Onnx__ValueInfoProto *out = value_info(&g, "logits", 2, out_dims);
	/* Metadata: the class names (a JSON array) and the architecture. */
	char *arch = proto_arch_emit_labels(a, labels), *names = NULL;
	if (labels)
		names = proto_labels_json(labels, a->classes);
	keep(&g, arch);
	if (labels)
		keep(&g, names);
	int nprops = 0;
	if (names)
		props[nprops++] = meta(&g, "labels", names);
	props[nprops++] = meta(&g, "graft-arch", arch);
	if ((rc = g.rc))
		goto out;
	opset.domain = "";
	opset.has_version = 1;
	opset.version = OPSET;
	gp.name = "graft";
	gp.n_node = g.n_node;
	gp.node = g.node;
	gp.n_initializer = g.n_init;
	gp.initializer = g.init;
	gp.n_input = 1;
	gp.input = &in;
	gp.n_output = 1;
	gp.output = &out;
	m.has_ir_version = 1;
	m.ir_version = IR_VERSION;
	m.n_opset_import = 1;
	m.opset_import = &opsets;
	m.producer_name = "graft";
	m.producer_version = "1";
	m.graph = &gp;
	m.n_metadata_props = (size_t)nprops;
	m.metadata_props = props;
	size_t len = onnx__model_proto__get_packed_size(&m);
	uint8_t *buf = malloc(len);
	if (buf == NULL) {
		rc = graft_errf(err, errlen, GRAFT_ENOMEM, "out of memory");
		goto out;
	}
	onnx__model_proto__pack(&m, buf);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "wb");
	int ok = f && fwrite(buf, 1, len, f) == len;
	if (f && fclose(f))
		ok = 0;
	free(buf);
	if (!ok || rename(tmp, path)) {
		remove(tmp);
		rc = graft_errf(err, errlen, GRAFT_EIO, "cannot write %s", path);
	}
out:
	graph_free(&g);
	return rc;
}
