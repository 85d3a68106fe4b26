/*
 * conv_internal.h - what conv.c needs of the oneDNN path (conv_dnnl.c).
 * Not part of nn's public interface.
 */
#ifndef GRAFT_NN_CONV_INTERNAL_H
#define GRAFT_NN_CONV_INTERNAL_H

#include "nn/nn.h"

/* Whether oneDNN has a CPU engine here. */
int nn__dnnl_available(void);

/* The oneDNN convolutions, with nn_conv_forward's and nn_conv_backward's
 * meaning (dx and dw accumulate); 0, or -1 when oneDNN cannot run this
 * shape (the caller then runs the reference path). */
int nn__dnnl_conv_forward(const nn_conv_shape *s, int n, const float *x, const float *w,
                          float *y);
int nn__dnnl_conv_backward(const nn_conv_shape *s, int n, const float *x, const float *w,
                           const float *dy, float *dx, float *dw);

#endif
