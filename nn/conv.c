/*
 * conv.c - 2-D convolution, forward and backward.
 *
 * The fast path is im2col + cblas_sgemm per image, the batch split across our
 * threads, each with its own column buffer and its own weight-gradient
 * accumulator (summed in a fixed order at the end, so results do not depend on
 * timing).  Convolutions where each output channel reads a single input channel
 * (depthwise) would be matrix products with one row, the worst case for sgemm,
 * so they run as direct loops instead.  The naive twins at the bottom are the
 * reference the tests hold the fast path to.
 */
#include <assert.h>
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "nn/dnnl_internal.h"
#include "nn/nn.h"

int nn_conv_shape_init(nn_conv_shape *s)
{
	if (s->cin < 1 || s->h < 1 || s->w < 1 || s->cout < 1 || s->k < 1 ||
	    s->stride < 1 || s->pad < 0 || s->groups < 1 ||
	    s->cin % s->groups || s->cout % s->groups)
		return GRAFT_EINVAL;
	s->oh = (s->h + 2 * s->pad - s->k) / s->stride + 1;
	s->ow = (s->w + 2 * s->pad - s->k) / s->stride + 1;
	if (s->h + 2 * s->pad < s->k || s->w + 2 * s->pad < s->k)
		return GRAFT_EINVAL;
	return 0;
}

static int is_depthwise(const nn_conv_shape *s)
{
	return s->cin / s->groups == 1 && s->groups > 1;
}

/* A 1x1 stride-1 unpadded convolution reads its input as the column matrix. */
static int is_pointwise(const nn_conv_shape *s)
{
	return s->k == 1 && s->stride == 1 && s->pad == 0;
}

/* Images per sgemm: enough that the product has ~2k columns (a 7x7 output
 * alone gives sgemm 49 columns, far too few to run at speed), few enough
 * that the column buffer stays in cache. */
static int chunk_images(const nn_conv_shape *s)
{
	int c = 2048 / (s->oh * s->ow);
	return c < 1 ? 1 : c;
}

/* Per thread: a column buffer (K x chunk*oh*ow), an output staging buffer
 * (cout x chunk*oh*ow) and a private weight-gradient accumulator. */
static size_t col_size(const nn_conv_shape *s)
{
	return (size_t)s->cin * s->k * s->k * s->oh * s->ow * chunk_images(s);
}

static size_t stage_size(const nn_conv_shape *s)
{
	return (size_t)s->cout * s->oh * s->ow * chunk_images(s);
}

static size_t wgrad_size(const nn_conv_shape *s)
{
	return (size_t)s->cout * (s->cin / s->groups) * s->k * s->k;
}

static size_t per_thread(const nn_conv_shape *s)
{
	if (s->cin / s->groups == 1 && s->groups > 1)
		return wgrad_size(s); /* depthwise: direct loops, no buffers */
	return col_size(s) + stage_size(s) + wgrad_size(s);
}

size_t nn_conv_workspace(const nn_conv_shape *s)
{
	return (size_t)nn_threads() * per_thread(s);
}

/* The outputs j of a row whose tap j*stride - pad + kj falls inside the
 * image: [*lo, *hi).  Computed once per kernel column, it keeps the copy
 * loops free of per-element bounds checks. */
static inline void inside(const nn_conv_shape *s, int kj, int *lo, int *hi)
{
	int off = kj - s->pad, st = s->stride;

	*lo = off < 0 ? (-off + st - 1) / st : 0;
	*hi = s->w - 1 - off >= 0 ? (s->w - 1 - off) / st + 1 : 0;
	if (*hi > s->ow)
		*hi = s->ow;
	if (*lo > *hi)
		*lo = *hi;
}

/* One row of a column matrix: out[j] = x[y, j*stride - pad + kj] for j in
 * [lo, hi), zero elsewhere.  Rows are short (7-32 floats): plain loops beat
 * calls. */
static inline void im2col_row(const nn_conv_shape *s, const float *xr, int kj, int lo,
                              int hi, float *out)
{
	int st = s->stride;
	const float *src = xr + kj - s->pad;

	for (int j = 0; j < lo; j++)
		out[j] = 0.0f;
	if (st == 1) {
#pragma omp simd
		for (int j = lo; j < hi; j++)
			out[j] = src[j];
	} else if (st == 2) {
		/* A constant stride lets the compiler vectorize with shuffles. */
#pragma omp simd
		for (int j = lo; j < hi; j++)
			out[j] = src[2 * j];
	} else {
		for (int j = lo; j < hi; j++)
			out[j] = src[j * st];
	}
	for (int j = hi; j < s->ow; j++)
		out[j] = 0.0f;
}

/* col: (cin*k*k rows of stride ld): the oh*ow patches of one image x: (cin,h,w). */
static void im2col(const nn_conv_shape *s, const float *x, float *col, size_t ld)
{
	int k = s->k, oh = s->oh, ow = s->ow;

	for (int kj = 0; kj < k; kj++) {
		int lo, hi;
		inside(s, kj, &lo, &hi);
		for (int c = 0; c < s->cin; c++)
			for (int ki = 0; ki < k; ki++) {
				float *row = col + ((size_t)(c * k + ki) * k + kj) * ld;
				const float *xc = x + (size_t)c * s->h * s->w;
				for (int i = 0; i < oh; i++) {
					int y = i * s->stride - s->pad + ki;
					float *out = row + (size_t)i * ow;
					if (y < 0 || y >= s->h)
						memset(out, 0, sizeof(float) * ow);
					else
						im2col_row(s, xc + (size_t)y * s->w, kj, lo, hi, out);
				}
			}
	}
}

/* The adjoint of im2col_row: dxr[j*stride - pad + kj] += in[j] for j in [lo, hi). */
static inline void col2im_row(const nn_conv_shape *s, const float *in, int kj, int lo,
                              int hi, float *dxr)
{
	int st = s->stride;
	float *d = dxr + kj - s->pad;

	if (st == 1) {
#pragma omp simd
		for (int j = lo; j < hi; j++)
			d[j] += in[j];
	} else {
		for (int j = lo; j < hi; j++)
			d[j * st] += in[j];
	}
}

/* dx: (cin,h,w) += the columns (rows of stride ld) folded back onto the image. */
static void col2im(const nn_conv_shape *s, const float *col, size_t ld, float *dx)
{
	int k = s->k, oh = s->oh, ow = s->ow;

	for (int kj = 0; kj < k; kj++) {
		int lo, hi;
		inside(s, kj, &lo, &hi);
		for (int c = 0; c < s->cin; c++)
			for (int ki = 0; ki < k; ki++) {
				const float *row = col + ((size_t)(c * k + ki) * k + kj) * ld;
				float *dxc = dx + (size_t)c * s->h * s->w;
				for (int i = 0; i < oh; i++) {
					int y = i * s->stride - s->pad + ki;
					if (y >= 0 && y < s->h)
						col2im_row(s, row + (size_t)i * ow, kj, lo, hi,
						           dxc + (size_t)y * s->w);
				}
			}
	}
}

/* Depthwise: output channel o reads input channel o / (cout/cin). */
static void dw_forward_image(const nn_conv_shape *s, const float *x, const float *w,
                             float *y)
{
	int mult = s->cout / s->cin, k = s->k;

	for (int o = 0; o < s->cout; o++) {
		const float *xc = x + (size_t)(o / mult) * s->h * s->w;
		const float *wo = w + (size_t)o * k * k;
		float *yo = y + (size_t)o * s->oh * s->ow;
		for (int i = 0; i < s->oh; i++)
			for (int j = 0; j < s->ow; j++) {
				float acc = 0.0f;
				for (int ki = 0; ki < k; ki++) {
					int yy = i * s->stride - s->pad + ki;
					if (yy < 0 || yy >= s->h)
						continue;
					for (int kj = 0; kj < k; kj++) {
						int xx = j * s->stride - s->pad + kj;
						if (xx >= 0 && xx < s->w)
							acc += xc[yy * s->w + xx] * wo[ki * k + kj];
					}
				}
				yo[i * s->ow + j] = acc;
			}
	}
}

static void dw_backward_image(const nn_conv_shape *s, const float *x, const float *w,
                              const float *dy, float *dx, float *dw)
{
	int mult = s->cout / s->cin, k = s->k;

	for (int o = 0; o < s->cout; o++) {
		const float *xc = x + (size_t)(o / mult) * s->h * s->w;
		float *dxc = dx ? dx + (size_t)(o / mult) * s->h * s->w : NULL;
		const float *wo = w + (size_t)o * k * k;
		float *dwo = dw ? dw + (size_t)o * k * k : NULL;
		const float *dyo = dy + (size_t)o * s->oh * s->ow;
		for (int i = 0; i < s->oh; i++)
			for (int j = 0; j < s->ow; j++) {
				float g = dyo[i * s->ow + j];
				for (int ki = 0; ki < k; ki++) {
					int yy = i * s->stride - s->pad + ki;
					if (yy < 0 || yy >= s->h)
						continue;
					for (int kj = 0; kj < k; kj++) {
						int xx = j * s->stride - s->pad + kj;
						if (xx < 0 || xx >= s->w)
							continue;
						if (dwo)
							dwo[ki * k + kj] += g * xc[yy * s->w + xx];
						if (dxc)
							dxc[yy * s->w + xx] += g * wo[ki * k + kj];
					}
				}
			}
	}
}

/* Moves c images' (cout, p) planes between NCHW and the chunk layout
 * (cout, c*p) that one sgemm reads or writes. */
static void to_chunk(const float *nchw, int c, int cout, int p, float *chunk)
{
	for (int j = 0; j < c; j++)
		for (int o = 0; o < cout; o++)
			memcpy(chunk + ((size_t)o * c + j) * p, nchw + ((size_t)j * cout + o) * p,
			       sizeof(float) * p);
}

static void from_chunk(const float *chunk, int c, int cout, int p, float *nchw)
{
	for (int j = 0; j < c; j++)
		for (int o = 0; o < cout; o++)
			memcpy(nchw + ((size_t)j * cout + o) * p, chunk + ((size_t)o * c + j) * p,
			       sizeof(float) * p);
}

/* The column matrix of c images starting at x: (K, c*p).  A single image
 * under a 1x1 stride-1 conv is its own column matrix and needs no copy. */
static const float *columns(const nn_conv_shape *s, const float *x, int c, float *col)
{
	size_t p = (size_t)s->oh * s->ow, xs = (size_t)s->cin * s->h * s->w;

	if (is_pointwise(s)) {
		if (c == 1)
			return x;
		to_chunk(x, c, s->cin, (int)p, col);
		return col;
	}
	for (int j = 0; j < c; j++)
		im2col(s, x + j * xs, col + j * p, c * p);
	return col;
}

/* y for c images at x: per group, y_g (cout/g, c*p) = w_g (cout/g, K) * col_g. */
static void gemm_forward_chunk(const nn_conv_shape *s, const float *x, int c,
                               const float *w, float *y, float *buf)
{
	int g = s->groups, mg = s->cout / g, kg = (s->cin / g) * s->k * s->k;
	int n = c * s->oh * s->ow;
	float *col = buf, *stage = buf + col_size(s);
	const float *cols = columns(s, x, c, col);
	float *out = c == 1 ? y : stage;

	for (int i = 0; i < g; i++)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mg, n, kg, 1.0f,
		            w + (size_t)i * mg * kg, kg, cols + (size_t)i * kg * n, n,
		            0.0f, out + (size_t)i * mg * n, n);
	if (c > 1)
		from_chunk(stage, c, s->cout, s->oh * s->ow, y);
}
/* The images [*lo, *hi) of n that thread t of nt works on: contiguous runs,
 * so each thread can gather several into one sgemm. */
static void share(int n, int t, int nt, int *lo, int *hi)
{
	*lo = (int)((long)n * t / nt);
	*hi = (int)((long)n * (t + 1) / nt);
}

void nn_conv_forward(const nn_conv_shape *s, int n, const float *x, const float *w,
                     float *y, float *ws)
{
	if (nn_conv_engine() == NN_ENGINE_ONEDNN && nn__dnnl_conv_forward(s, n, x, w, y) == 0)
		return;
	size_t xs = (size_t)s->cin * s->h * s->w, ys = (size_t)s->cout * s->oh * s->ow;
	int nt = nn_threads(), chunk = chunk_images(s);

#pragma omp parallel num_threads(nt)
	{
		int t = omp_get_thread_num(), lo, hi;
		float *buf = ws + t * per_thread(s);
		share(n, t, nt, &lo, &hi);
		for (int i = lo; i < hi; i += chunk) {
			int c = hi - i < chunk ? hi - i : chunk;
			if (is_depthwise(s))
				for (int j = i; j < i + c; j++)
					dw_forward_image(s, x + j * xs, w, y + j * ys);
			else
				gemm_forward_chunk(s, x + i * xs, c, w, y + i * ys, buf);
		}
	}
}

/* Adds the chunk-layout gradient of c images' columns back onto the images:
 * col2im for a real conv, a plain add for a pointwise one. */
static void fold_back(const nn_conv_shape *s, const float *col, int c, float *dx)
{
	size_t p = (size_t)s->oh * s->ow, xs = (size_t)s->cin * s->h * s->w;

	for (int j = 0; j < c; j++) {
		if (!is_pointwise(s)) {
			col2im(s, col + j * p, c * p, dx + j * xs);
			continue;
		}
		for (int ci = 0; ci < s->cin; ci++) {
			const float *src = col + ((size_t)ci * c + j) * p;
			float *dst = dx + j * xs + (size_t)ci * p;
			for (size_t q = 0; q < p; q++)
				dst[q] += src[q];
		}
	}
}

/* For c images: dw_g += dy_g * col_g^T, then dcol_g = w_g^T * dy_g folded
 * back into dx. */
static void gemm_backward_chunk(const nn_conv_shape *s, const float *x, int c,
                                const float *w, const float *dy, float *dx, float *dw,
                                float *buf)
{
	int g = s->groups, mg = s->cout / g, kg = (s->cin / g) * s->k * s->k;
	int p = s->oh * s->ow, n = c * p;
	float *col = buf, *stage = buf + col_size(s);
	const float *dys = dy;

	if (c > 1) {
		to_chunk(dy, c, s->cout, p, stage);
		dys = stage;
	}
	if (dw) {
		const float *cols = columns(s, x, c, col);
		for (int i = 0; i < g; i++)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mg, kg, n, 1.0f,
			            dys + (size_t)i * mg * n, n, cols + (size_t)i * kg * n, n,
			            1.0f, dw + (size_t)i * mg * kg, kg);
	}
	if (!dx)
		return;
	/* A single image under a pointwise conv accumulates straight into dx. */
	int direct = is_pointwise(s) && c == 1;
	float *dcol = direct ? dx : col;
	for (int i = 0; i < g; i++)
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kg, n, mg, 1.0f,
		            w + (size_t)i * mg * kg, kg, dys + (size_t)i * mg * n, n,
		            direct ? 1.0f : 0.0f, dcol + (size_t)i * kg * n, n);
	if (!direct)
		fold_back(s, col, c, dx);
}

void nn_conv_backward(const nn_conv_shape *s, int n, const float *x, const float *w,
                      const float *dy, float *dx, float *dw, float *ws)
{
	if (nn_conv_engine() == NN_ENGINE_ONEDNN &&
	    nn__dnnl_conv_backward(s, n, x, w, dy, dx, dw) == 0)
		return;
	size_t xs = (size_t)s->cin * s->h * s->w, ys = (size_t)s->cout * s->oh * s->ow;
	size_t pt = per_thread(s), wgs = wgrad_size(s);
	int nt = nn_threads(), chunk = chunk_images(s);

	/* Each thread accumulates its share of dw privately; the shares are then
	 * added in thread order, which keeps the sum independent of timing. */
#pragma omp parallel num_threads(nt)
	{
		int t = omp_get_thread_num(), lo, hi;
		float *buf = ws + t * pt, *tdw = dw ? buf + pt - wgs : NULL;
		if (tdw)
			memset(tdw, 0, sizeof(float) * wgs);
		share(n, t, nt, &lo, &hi);
		for (int i = lo; i < hi; i += chunk) {
			int c = hi - i < chunk ? hi - i : chunk;
			if (is_depthwise(s))
				for (int j = i; j < i + c; j++)
					dw_backward_image(s, x + j * xs, w, dy + j * ys,
					                  dx ? dx + j * xs : NULL, tdw);
			else
				gemm_backward_chunk(s, x + i * xs, c, w, dy + i * ys,
				                    dx ? dx + i * xs : NULL, tdw, buf);
		}
	}
	if (!dw)
		return;
	for (int t = 0; t < nt; t++) {
		const float *tdw = ws + t * pt + pt - wgs;
		for (size_t j = 0; j < wgs; j++)
			dw[j] += tdw[j];
	}
}

/* ---- the reference: direct loops over every output and every tap --------- */

void nn_conv_forward_naive(const nn_conv_shape *s, int n, const float *x,
                           const float *w, float *y)
{
	int cg = s->cin / s->groups, og = s->cout / s->groups, k = s->k;

	for (int b = 0; b < n; b++)
		for (int o = 0; o < s->cout; o++)
			for (int i = 0; i < s->oh; i++)
				for (int j = 0; j < s->ow; j++) {
					double acc = 0.0;
					for (int c = 0; c < cg; c++) {
						int ci = (o / og) * cg + c;
						for (int ki = 0; ki < k; ki++)
							for (int kj = 0; kj < k; kj++) {
								int yy = i * s->stride - s->pad + ki;
								int xx = j * s->stride - s->pad + kj;
								if (yy < 0 || yy >= s->h || xx < 0 || xx >= s->w)
									continue;
								acc += (double)x[((size_t)(b * s->cin + ci) * s->h + yy) * s->w + xx] *
								       w[((size_t)(o * cg + c) * k + ki) * k + kj];
							}
					}
					y[((size_t)(b * s->cout + o) * s->oh + i) * s->ow + j] = (float)acc;
				}
}

void nn_conv_backward_naive(const nn_conv_shape *s, int n, const float *x,
                            const float *w, const float *dy, float *dx, float *dw)
{
	int cg = s->cin / s->groups, og = s->cout / s->groups, k = s->k;

	for (int b = 0; b < n; b++)
		for (int o = 0; o < s->cout; o++)
			for (int i = 0; i < s->oh; i++)
				for (int j = 0; j < s->ow; j++) {
					float g = dy[((size_t)(b * s->cout + o) * s->oh + i) * s->ow + j];
					for (int c = 0; c < cg; c++) {
						int ci = (o / og) * cg + c;
						for (int ki = 0; ki < k; ki++)
							for (int kj = 0; kj < k; kj++) {
								int yy = i * s->stride - s->pad + ki;
								int xx = j * s->stride - s->pad + kj;
								if (yy < 0 || yy >= s->h || xx < 0 || xx >= s->w)
									continue;
								size_t xi = ((size_t)(b * s->cin + ci) * s->h + yy) * s->w + xx;
								size_t wi = ((size_t)(o * cg + c) * k + ki) * k + kj;
								if (dw)
									dw[wi] += g * x[xi];
								if (dx)
									dx[xi] += g * w[wi];
							}
					}
				}
}
