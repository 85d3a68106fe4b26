/*
 * blocked.c - graft's own loops on oneDNN's layouts, for the plans of
 * net_dnnl.c: the residual add and its gradient, and gradient sums.  They
 * need no layout at all: every tensor an op reads has its output's layout.
 * (A 2x2 max-pool on the blocked layout was measured too, vectorized and
 * without a stored argmax: 4.7-5.0 ms a step of net M at batch 64 against
 * oneDNN's 4.4-4.7 in the same sitting, so oneDNN's stays.)
 */
#include <string.h>

#include "nn/dnnl_internal.h"

void nn__add_forward(const float *restrict a, const float *restrict b, float *restrict y,
                     size_t len, int relu)
{
	if (relu) {
#pragma omp parallel for simd schedule(static) if (len > 32768)
		for (size_t i = 0; i < len; i++) {
			float v = a[i] + b[i];
			y[i] = v > 0.0f ? v : 0.0f;
		}
	} else {
#pragma omp parallel for simd schedule(static) if (len > 32768)
		for (size_t i = 0; i < len; i++)
			y[i] = a[i] + b[i];
	}
}

void nn__grad_into(float *restrict to, const float *restrict g, const float *restrict y,
                   size_t len, int first)
{
	if (y && first) {
#pragma omp parallel for simd schedule(static) if (len > 32768)
		for (size_t i = 0; i < len; i++)
			to[i] = y[i] > 0.0f ? g[i] : 0.0f;
	} else if (y) {
#pragma omp parallel for simd schedule(static) if (len > 32768)
		for (size_t i = 0; i < len; i++)
			to[i] += y[i] > 0.0f ? g[i] : 0.0f;
	} else if (first) {
		memcpy(to, g, len * sizeof(float));
	} else {
#pragma omp parallel for simd schedule(static) if (len > 32768)
		for (size_t i = 0; i < len; i++)
			to[i] += g[i];
	}
}
