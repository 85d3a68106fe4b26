/*
 * resize.c - resizing one channel of an image, separably, in exact integers.
 *
 * Along an axis that shrinks, each output pixel is the area average of the
 * source pixels it covers (a box filter: the antialiased shrink, OpenCV's
 * INTER_AREA, PIL's BOX); along one that grows, bilinear interpolation with
 * pixel centres at half-integers and the edges clamped; along one that keeps
 * its size, a copy.  Every weight is a whole number over a per-axis
 * denominator (the source length for area, twice the output length for
 * bilinear), so the result is the exact weighted mean rounded half up: the
 * same bytes on every machine, and an unchanged size gives the image back
 * unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

/* The source pixels (and weights) that make each output pixel of one axis. */
typedef struct axis_taps {
	int *first;     /* first[o] .. first[o + 1] index src and weight */
	int *src;
	uint32_t *weight;
	uint64_t den;   /* the weights of an output pixel sum to den */
} axis_taps;

static void taps_free(axis_taps *t)
{
	free(t->first);
	free(t->src);
	free(t->weight);
}

static int taps_make(int from, int to, axis_taps *t)
{
	/* Area needs at most from/to + 2 taps per output pixel, bilinear 2. */
	size_t per = to < from ? (size_t)(from / to) + 2 : 2;
	int n = 0;

	t->first = malloc(sizeof(int) * ((size_t)to + 1));
	t->src = malloc(sizeof(int) * per * (size_t)to);
	t->weight = malloc(sizeof(uint32_t) * per * (size_t)to);
	if (!t->first || !t->src || !t->weight) {
		taps_free(t);
		return GRAFT_ENOMEM;
	}
	/* In units where a source pixel is `to` long and an output pixel `from`
	 * long, every boundary is a whole number. */
	uint64_t S = (uint64_t)from, D = (uint64_t)to;
	t->den = from == to ? 1 : to < from ? S : 2 * D;
	for (int o = 0; o < to; o++) {
		t->first[o] = n;
		if (from == to) {
			t->src[n] = o;
			t->weight[n++] = 1;
		} else if (to < from) {
			uint64_t lo = (uint64_t)o * S, hi = lo + S;
			for (uint64_t i = lo / D; i * D < hi; i++) {
				uint64_t a = i * D > lo ? i * D : lo, b = (i + 1) * D < hi ? (i + 1) * D : hi;
				t->src[n] = (int)i;
				t->weight[n++] = (uint32_t)(b - a);
			}
		} else {
			/* centre (o + 1/2) * S / D - 1/2 = num / 2D */
			int64_t num = (int64_t)((2 * (uint64_t)o + 1) * S) - (int64_t)D;
			int64_t i0 = num <= 0 ? 0 : num / (int64_t)(2 * D);
			uint64_t f = num <= 0 ? 0 : (uint64_t)num % (2 * D);
			if (i0 >= from - 1) {
				i0 = from - 1;
				f = 0;
			}
			t->src[n] = (int)i0;
			t->weight[n++] = (uint32_t)(2 * D - f);
			if (f) {
				t->src[n] = (int)i0 + 1;
				t->weight[n++] = (uint32_t)f;
			}
		}
	}
	t->first[to] = n;
	return 0;
}

int nn_image_resize_plane(const nn_image *img, int ch, uint8_t *dst, int dw, int dh)
{
	axis_taps x = { 0 }, y = { 0 };
	uint64_t *rows = NULL;
	int rc;

	if (img->w <= 0 || img->h <= 0 || dw <= 0 || dh <= 0 || ch < 0 || ch >= img->c)
		return GRAFT_EINVAL;
	if ((rc = taps_make(img->w, dw, &x)) || (rc = taps_make(img->h, dh, &y)))
		goto out;
	/* Horizontal pass: every source row to dw sums over x.den. */
	rows = malloc(sizeof(uint64_t) * (size_t)img->h * (size_t)dw);
	if (rows == NULL) {
		rc = GRAFT_ENOMEM;
		goto out;
	}
	for (int r = 0; r < img->h; r++) {
		const uint8_t *s = img->px + (size_t)r * img->w * img->c + ch;
		uint64_t *d = rows + (size_t)r * dw;
		for (int o = 0; o < dw; o++) {
			uint64_t sum = 0;
			for (int k = x.first[o]; k < x.first[o + 1]; k++)
				sum += (uint64_t)x.weight[k] * s[(size_t)x.src[k] * img->c];
			d[o] = sum;
		}
	}
	/* Vertical pass, then the one rounding. */
	uint64_t den = x.den * y.den;
	for (int o = 0; o < dh; o++)
		for (int c = 0; c < dw; c++) {
			uint64_t sum = 0;
			for (int k = y.first[o]; k < y.first[o + 1]; k++)
				sum += y.weight[k] * rows[(size_t)y.src[k] * dw + c];
			dst[(size_t)o * dw + c] = (uint8_t)((sum + den / 2) / den);
		}
out:
	free(rows);
	taps_free(&x);
	taps_free(&y);
	return rc;
}
