/*
 * layers.c - the cheap layers: ReLU, residual add, 2x2 max pool, global
 * average pool, linear, and the softmax cross-entropy loss.  Each keeps its
 * forward and backward side by side.
 */
#include <cblas.h>
#include <float.h>
#include <math.h>

#include "nn/nn.h"

void nn_relu_forward(size_t len, const float *x, float *y)
{
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < len; i++)
		y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void nn_relu_backward(size_t len, const float *y, const float *dy, float *dx)
{
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < len; i++)
		if (y[i] > 0.0f)
			dx[i] += dy[i];
}

void nn_add_forward(size_t len, const float *a, const float *b, int relu, float *y)
{
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < len; i++) {
		float v = a[i] + b[i];
		y[i] = (relu && v < 0.0f) ? 0.0f : v;
	}
}

void nn_add_backward(size_t len, const float *y, const float *dy, int relu,
                     float *da, float *db)
{
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < len; i++) {
		float g = (relu && y[i] <= 0.0f) ? 0.0f : dy[i];
		if (da)
			da[i] += g;
		if (db)
			db[i] += g;
	}
}

/* x: (n,c,h,w)  y: (n,c,h/2,w/2) */
void nn_maxpool_forward(int n, int c, int h, int w, const float *x, float *y)
{
	int oh = h / 2, ow = w / 2;

#pragma omp parallel for schedule(static)
	for (int p = 0; p < n * c; p++) {
		const float *xp = x + (size_t)p * h * w;
		float *yp = y + (size_t)p * oh * ow;
		for (int i = 0; i < oh; i++)
			for (int j = 0; j < ow; j++) {
				const float *r0 = xp + (2 * i) * w + 2 * j, *r1 = r0 + w;
				float m = r0[0];
				m = r0[1] > m ? r0[1] : m;
				m = r1[0] > m ? r1[0] : m;
				m = r1[1] > m ? r1[1] : m;
				yp[i * ow + j] = m;
			}
	}
}

/* The gradient goes to the first element of each window that equals the max,
 * which is the element PyTorch picks. */
void nn_maxpool_backward(int n, int c, int h, int w, const float *x, const float *y,
                         const float *dy, float *dx)
{
	int oh = h / 2, ow = w / 2;

#pragma omp parallel for schedule(static)
	for (int p = 0; p < n * c; p++) {
		const float *xp = x + (size_t)p * h * w;
		float *dxp = dx + (size_t)p * h * w;
		const float *yp = y + (size_t)p * oh * ow, *gp = dy + (size_t)p * oh * ow;
		for (int i = 0; i < oh; i++)
			for (int j = 0; j < ow; j++) {
				int base = (2 * i) * w + 2 * j;
				int off[4] = { base, base + 1, base + w, base + w + 1 };
				for (int q = 0; q < 4; q++)
					if (xp[off[q]] == yp[i * ow + j]) {
						dxp[off[q]] += gp[i * ow + j];
						break;
					}
			}
	}
}

/* x: (n,c,hw)  y: (n,c) */
void nn_gap_forward(int n, int c, int hw, const float *x, float *y)
{
	for (int p = 0; p < n * c; p++) {
		const float *xp = x + (size_t)p * hw;
		float s = 0.0f;
#pragma omp simd reduction(+ : s)
		for (int i = 0; i < hw; i++)
			s += xp[i];
		y[p] = s / hw;
	}
}

void nn_gap_backward(int n, int c, int hw, const float *dy, float *dx)
{
	for (int p = 0; p < n * c; p++) {
		float g = dy[p] / hw;
		float *dxp = dx + (size_t)p * hw;
		for (int i = 0; i < hw; i++)
			dxp[i] += g;
	}
}

/* x: (n,in)  w: (out,in)  b: (out)  y: (n,out) */
void nn_linear_forward(int n, int in, int out, const float *x, const float *w,
                       const float *b, float *y)
{
	for (int i = 0; i < n; i++)
		for (int o = 0; o < out; o++)
			y[(size_t)i * out + o] = b ? b[o] : 0.0f;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in,
	            w, in, 1.0f, y, out);
}

void nn_linear_backward(int n, int in, int out, const float *x, const float *w,
                        const float *dy, float *dx, float *dw, float *db)
{
	if (dx)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f,
		            dy, out, w, in, 1.0f, dx, in);
	if (dw)
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f,
		            dy, out, x, in, 1.0f, dw, in);
	if (db)
		for (int i = 0; i < n; i++)
			for (int o = 0; o < out; o++)
				db[o] += dy[(size_t)i * out + o];
}

/* logits: (n,k)  y: (n)  dlogits: (n,k) = (softmax - onehot) / n */
double nn_softmax_xent(int n, int k, const float *logits, const int *y, float *dlogits)
{
	double total = 0.0;

	for (int i = 0; i < n; i++) {
		const float *z = logits + (size_t)i * k;
		double mx = -DBL_MAX, sum = 0.0;
		for (int j = 0; j < k; j++)
			mx = z[j] > mx ? z[j] : mx;
		for (int j = 0; j < k; j++)
			sum += exp(z[j] - mx);
		total += log(sum) + mx - z[y[i]];
		if (!dlogits)
			continue;
		for (int j = 0; j < k; j++) {
			double p = exp(z[j] - mx) / sum;
			dlogits[(size_t)i * k + j] = (float)((p - (j == y[i])) / n);
		}
	}
	return total / n;
}
