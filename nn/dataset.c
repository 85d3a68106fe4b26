/*
 * dataset.c - what happens to a loaded dataset: splitting off a validation
 * set, the normalization statistics, and building the batches training reads.
 *
 * nn_dataset_batch runs every training step, so it allocates nothing and maps
 * bytes to floats through a 256-entry table per channel instead of dividing
 * for every pixel.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

void nn_dataset_free(nn_dataset *ds)
{
	if (ds == NULL)
		return;
	free(ds->pixels);
	free(ds->labels);
	free(ds->names);
	memset(ds, 0, sizeof *ds);
}

/* Bytes of ds's names, their NULs included. */
static size_t names_len(const nn_dataset *ds)
{
	size_t len = 0;

	for (int k = 0; ds->names && k < ds->classes; k++)
		len += strlen(ds->names + len) + 1;
	return len;
}

const char *nn_dataset_class_name(const nn_dataset *ds, int k)
{
	const char *p = ds->names;

	if (p == NULL || k < 0 || k >= ds->classes)
		return NULL;
	while (k-- > 0)
		p += strlen(p) + 1;
	return p;
}

/* Copies images [first, first + n) of src into dst, which owns the copy. */
static int dataset_copy(const nn_dataset *src, int first, int n, nn_dataset *dst)
{
	size_t chw = (size_t)src->c * src->h * src->w;

	size_t nlen = names_len(src);

	*dst = *src;
	dst->n = n;
	dst->pixels = malloc((size_t)n * chw);
	dst->labels = malloc((size_t)n);
	dst->names = nlen ? malloc(nlen) : NULL;
	if (dst->pixels == NULL || dst->labels == NULL || (nlen && dst->names == NULL)) {
		nn_dataset_free(dst);
		return GRAFT_ENOMEM;
	}
	if (nlen)
		memcpy(dst->names, src->names, nlen);
	memcpy(dst->pixels, src->pixels + (size_t)first * chw, (size_t)n * chw);
	memcpy(dst->labels, src->labels + first, (size_t)n);
	return 0;
}

/* Both halves keep src's class count: the validation set may happen to lack
 * the largest label, and the net's output width must not depend on that. */
int nn_dataset_split(const nn_dataset *src, int nval, nn_dataset *train, nn_dataset *val)
{
	int rc;

	if (src == NULL || train == NULL || val == NULL || train == val ||
	    train == src || val == src)
		return GRAFT_EINVAL;
	memset(train, 0, sizeof *train);
	memset(val, 0, sizeof *val);
	if (src->pixels == NULL || src->labels == NULL || nval <= 0 || nval >= src->n)
		return GRAFT_EINVAL;
	rc = dataset_copy(src, 0, src->n - nval, train);
	if (rc == 0)
		rc = dataset_copy(src, src->n - nval, nval, val);
	if (rc != 0)
		nn_dataset_free(train);
	return rc;
}

/* Mean and (population) standard deviation of pixel values scaled to [0, 1],
 * from a histogram of the 256 byte values.  The counts are exact and the
 * second pass subtracts the mean first, so no precision is lost to
 * cancellation however many pixels there are. */
static void stats_from_hist(const uint64_t *hist, float *mean, float *std)
{
	double count = 0, sum = 0, var = 0, m;

	for (int v = 0; v < 256; v++) {
		count += (double)hist[v];
		sum += (double)hist[v] * (v / 255.0);
	}
	if (count == 0) {
		*mean = 0.0f;
		*std = 1.0f;
		return;
	}
	m = sum / count;
	for (int v = 0; v < 256; v++)
		var += (double)hist[v] * (v / 255.0 - m) * (v / 255.0 - m);
	*mean = (float)m;
	*std = (float)sqrt(var / count);
}

void nn_dataset_stats(const nn_dataset *ds, float *mean, float *std)
{
	size_t hw = (size_t)ds->h * ds->w;
	uint64_t hist[256];

	for (int ch = 0; ch < ds->c; ch++) {
		memset(hist, 0, sizeof hist);
		for (int i = 0; i < ds->n; i++) {
			const uint8_t *p = ds->pixels + ((size_t)i * ds->c + ch) * hw;

			for (size_t k = 0; k < hw; k++)
				hist[p[k]]++;
		}
		stats_from_hist(hist, &mean[ch], &std[ch]);
	}
}

/* Fills lut[ch][p] with the normalized value of byte p in channel ch, computed
 * in double so that it is the correctly rounded float of the formula. */
static void batch_lut(int c, const float *mean, const float *std,
                      float lut[][256])
{
	for (int ch = 0; ch < c; ch++)
		for (int p = 0; p < 256; p++)
			lut[ch][p] = (float)((p / 255.0 - mean[ch]) / std[ch]);
}

/* Where an image's window sits: rows [oy - pad, oy - pad + h) and likewise
 * columns of the raw image, mirrored when flip is set. */
typedef struct batch_window {
	int oy, ox, pad, flip;
} batch_window;

/* Writes one image's window.  Pixels outside the raw image are the zero padding,
 * a raw 0 normalized like any other (lut[ch][0]), as torchvision's
 * RandomCrop(padding=) pads before ToTensor/Normalize.
 * src: (c, h, w) bytes  dst: (c, h, w) floats */
static void batch_window_copy(const nn_dataset *ds, const uint8_t *src,
                              const batch_window *win, float lut[][256], float *dst)
{
	int h = ds->h, w = ds->w;
	size_t hw = (size_t)h * w;

	/* The window on the image itself, unmirrored, is every image when there is
	 * no augmentation: a straight table lookup, with no bounds to test. */
	if (win->oy == win->pad && win->ox == win->pad && !win->flip) {
		for (int ch = 0; ch < ds->c; ch++, src += hw, dst += hw)
			for (size_t k = 0; k < hw; k++)
				dst[k] = lut[ch][src[k]];
		return;
	}
	for (int ch = 0; ch < ds->c; ch++) {
		const float *t = lut[ch];

		for (int r = 0; r < h; r++, dst += w) {
			int sy = r + win->oy - win->pad;
			const uint8_t *row;

			if (sy < 0 || sy >= h) {
				for (int j = 0; j < w; j++)
					dst[j] = t[0];
				continue;
			}
			row = src + ((size_t)ch * h + (size_t)sy) * w;
			for (int j = 0; j < w; j++) {
				int sx = (win->flip ? w - 1 - j : j) + win->ox - win->pad;

				dst[j] = sx >= 0 && sx < w ? t[row[sx]] : t[0];
			}
		}
	}
}

/* For each image in order the random draws are: the crop's row offset, then its
 * column offset (each uniform in [0, 2 * pad], only when crop_pad > 0), then
 * the flip (only when flip is on).  Fixing that order is what makes a batch a
 * pure function of the rng's state. */
void nn_dataset_batch(const nn_dataset *ds, const int *idx, int n,
                      const float *mean, const float *std,
                      const nn_augment *aug, nn_rng *rng, float *x, int *y)
{
	float lut[NN_MAX_CHANNELS][256];
	size_t chw = (size_t)ds->c * ds->h * ds->w;
	int pad = aug != NULL ? aug->crop_pad : 0;
	int flip = aug != NULL && aug->flip;

	assert(ds->c >= 1 && ds->c <= NN_MAX_CHANNELS);
	assert(pad >= 0 && (rng != NULL || (pad == 0 && !flip)));
	batch_lut(ds->c, mean, std, lut);
	for (int i = 0; i < n; i++) {
		const uint8_t *src = ds->pixels + (size_t)idx[i] * chw;
		batch_window win = { 0, 0, pad, 0 };

		assert(idx[i] >= 0 && idx[i] < ds->n);
		y[i] = ds->labels[idx[i]];
		if (pad > 0) {
			win.oy = (int)nn_rng_below(rng, 2 * (uint32_t)pad + 1);
			win.ox = (int)nn_rng_below(rng, 2 * (uint32_t)pad + 1);
		}
		if (flip)
			win.flip = (int)nn_rng_below(rng, 2);
		batch_window_copy(ds, src, &win, lut, x + (size_t)i * chw);
	}
}
