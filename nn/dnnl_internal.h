/*
 * dnnl_internal.h - the oneDNN pieces shared inside nn/: the engine and a
 * thread's stream (conv_dnnl.c), the per-layer convolutions conv.c calls,
 * and the whole-network plans pass.c runs (net_dnnl.c).  Not part of nn's
 * public interface.
 */
#ifndef GRAFT_NN_DNNL_INTERNAL_H
#define GRAFT_NN_DNNL_INTERNAL_H

#include <dnnl.h>

#include "nn/nn.h"

/* Whether oneDNN has a CPU engine here. */
int nn__dnnl_available(void);

/* The CPU engine, and this thread's stream (made on first use; NULL if
 * it cannot be).  Call nn__dnnl_available first. */
dnnl_engine_t nn__dnnl_engine(void);
dnnl_stream_t nn__dnnl_stream(void);

/* A convolution's geometry in oneDNN's terms: weights dims (OIHW, or GOIHW
 * with groups: wnd of them, plain tag wtag), strides, and the paddings that
 * give s's output size exactly. */
typedef struct nn__dnnl_conv_geom {
	dnnl_dims_t wei, strides, pad, pad_r;
	int wnd;
	dnnl_format_tag_t wtag;
} nn__dnnl_conv_geom;
void nn__dnnl_conv_geometry(const nn_conv_shape *s, nn__dnnl_conv_geom *g);

/* The oneDNN convolutions, with nn_conv_forward's and nn_conv_backward's
 * meaning (dx and dw accumulate); 0, or -1 when oneDNN cannot run this
 * shape (the caller then runs the reference path). */
int nn__dnnl_conv_forward(const nn_conv_shape *s, int n, const float *x, const float *w,
                          float *y);
int nn__dnnl_conv_backward(const nn_conv_shape *s, int n, const float *x, const float *w,
                           const float *dy, float *dx, float *dw);

/* A whole network's layers from the first convolution to the global
 * average pool, with every activation in oneDNN's blocked layout, for one
 * batch size and mode (net_dnnl.c). */
struct nn__plan;
struct nn_net;

/* The plan for (n, train), made on first use and kept with the net; NULL
 * when the net cannot run this way (the caller runs node by node). */
struct nn__plan *nn__plan_get(struct nn_net *net, int n, int train);

/* The forward pass of the plan's nodes; the nodes after them (the pool,
 * the linear head) then run on their plain buffers as before. */
int nn__plan_forward(struct nn__plan *p, struct nn_net *net);

/* Only the frozen graft's layers, in evaluation mode, their output into
 * the plain buffer of the graft's last node (nn_graft_features: the
 * same numbers the whole forward pass computes). */
int nn__plan_graft_forward(struct nn__plan *p, struct nn_net *net);

/* The backward pass of the plan's nodes, after the nodes after them have
 * put their gradients into the plain buffers of the nodes they read. */
int nn__plan_backward(struct nn__plan *p, struct nn_net *net);

/* Whether the plan is a training one (it has a backward pass). */
int nn__plan_training(const struct nn__plan *p);

/* The last node the plan runs (the one before the first plain node). */
int nn__plan_last(const struct nn__plan *p);

/* How many of the plan's primitives run oneDNN's reference loops. */
int nn__plan_refs(const struct nn__plan *p);

void nn__plans_free(struct nn_net *net);

/* graft's own loops on the plans' layouts (blocked.c): y = a + b (ReLU'd
 * if relu); to = (first ? 0 : to) + g where y > 0 (everywhere if y is
 * NULL). */
void nn__add_forward(const float *a, const float *b, float *y, size_t len, int relu);
void nn__grad_into(float *to, const float *g, const float *y, size_t len, int first);

#endif
