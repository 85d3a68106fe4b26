/*
 * norm.c - batch normalization (PyTorch semantics: eps 1e-5, momentum 0.1,
 * biased variance to normalize, unbiased variance into the running estimate),
 * with an optional ReLU fused in so the common conv -> BN -> ReLU costs one pass
 * over memory instead of two.
 */
#include <math.h>

#include "nn/nn.h"

/* x, y: (n,c,hw); gamma, beta, running_*, save_*: (c) */
void nn_bn_forward_train(int n, int c, int hw, const float *x, const float *gamma,
                         const float *beta, float *running_mean, float *running_var,
                         float *save_mean, float *save_invstd, int relu, float *y)
{
	size_t m = (size_t)n * hw;

#pragma omp parallel for schedule(static)
	for (int ch = 0; ch < c; ch++) {
		/* Sums are taken per image in float (short, vectorizable) and
		 * combined in double, so large batches lose no precision. */
		double sum = 0.0, sq = 0.0;
		for (int b = 0; b < n; b++) {
			const float *xp = x + ((size_t)b * c + ch) * hw;
			float s = 0.0f;
#pragma omp simd reduction(+ : s)
			for (int i = 0; i < hw; i++)
				s += xp[i];
			sum += s;
		}
		double mean = sum / m;
		for (int b = 0; b < n; b++) {
			const float *xp = x + ((size_t)b * c + ch) * hw;
			float s = 0.0f, mf = (float)mean;
#pragma omp simd reduction(+ : s)
			for (int i = 0; i < hw; i++)
				s += (xp[i] - mf) * (xp[i] - mf);
			sq += s;
		}
		double var = sq / m;
		float invstd = (float)(1.0 / sqrt(var + NN_BN_EPS));
		save_mean[ch] = (float)mean;
		save_invstd[ch] = invstd;
		running_mean[ch] = (1 - NN_BN_MOMENTUM) * running_mean[ch] +
		                   NN_BN_MOMENTUM * (float)mean;
		double unbiased = m > 1 ? sq / (m - 1) : var;
		running_var[ch] = (1 - NN_BN_MOMENTUM) * running_var[ch] +
		                  NN_BN_MOMENTUM * (float)unbiased;

		float scale = gamma[ch] * invstd, shift = beta[ch] - (float)mean * scale;
		for (int b = 0; b < n; b++) {
			const float *xp = x + ((size_t)b * c + ch) * hw;
			float *yp = y + ((size_t)b * c + ch) * hw;
			if (relu)
#pragma omp simd
				for (int i = 0; i < hw; i++) {
					float v = xp[i] * scale + shift;
					yp[i] = v > 0.0f ? v : 0.0f;
				}
			else
				for (int i = 0; i < hw; i++)
					yp[i] = xp[i] * scale + shift;
		}
	}
}

void nn_bn_forward_eval(int n, int c, int hw, const float *x, const float *gamma,
                        const float *beta, const float *running_mean,
                        const float *running_var, int relu, float *y)
{
#pragma omp parallel for collapse(2) schedule(static)
	for (int b = 0; b < n; b++)
		for (int ch = 0; ch < c; ch++) {
			float invstd = 1.0f / sqrtf(running_var[ch] + NN_BN_EPS);
			float scale = gamma[ch] * invstd;
			float shift = beta[ch] - running_mean[ch] * scale;
			const float *xp = x + ((size_t)b * c + ch) * hw;
			float *yp = y + ((size_t)b * c + ch) * hw;
			for (int i = 0; i < hw; i++) {
				float v = xp[i] * scale + shift;
				yp[i] = (relu && v < 0.0f) ? 0.0f : v;
			}
		}
}

/* With xhat = (x - mean) * invstd and g = dy masked by the ReLU:
 * dgamma = sum(g * xhat), dbeta = sum(g),
 * dx = gamma * invstd * (g - dbeta/m - xhat * dgamma/m). */
void nn_bn_backward(int n, int c, int hw, const float *x, const float *y,
                    const float *dy, const float *gamma, const float *save_mean,
                    const float *save_invstd, int relu, float *dx, float *dgamma,
                    float *dbeta)
{
	size_t m = (size_t)n * hw;

#pragma omp parallel for schedule(static)
	for (int ch = 0; ch < c; ch++) {
		float mean = save_mean[ch], invstd = save_invstd[ch];
		double sg = 0.0, sgx = 0.0;
		for (int b = 0; b < n; b++) {
			size_t off = ((size_t)b * c + ch) * hw;
			const float *xp = x + off, *yp = y + off, *gp = dy + off;
			float s = 0.0f, sx = 0.0f;
#pragma omp simd reduction(+ : s, sx)
			for (int i = 0; i < hw; i++) {
				float g = (relu && yp[i] <= 0.0f) ? 0.0f : gp[i];
				s += g;
				sx += g * (xp[i] - mean);
			}
			sg += s;
			sgx += sx;
		}
		float dg = (float)(sgx * invstd), db = (float)sg;
		dgamma[ch] += dg;
		dbeta[ch] += db;
		if (!dx)
			continue;
		float k = gamma[ch] * invstd;
		float mdb = db / m, mdg = dg / m;
		for (int b = 0; b < n; b++) {
			size_t off = ((size_t)b * c + ch) * hw;
			const float *xp = x + off, *yp = y + off, *gp = dy + off;
			float *dxp = dx + off;
#pragma omp simd
			for (int i = 0; i < hw; i++) {
				float g = (relu && yp[i] <= 0.0f) ? 0.0f : gp[i];
				float xhat = (xp[i] - mean) * invstd;
				dxp[i] += k * (g - mdb - xhat * mdg);
			}
		}
	}
}
