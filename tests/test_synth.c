/*
 * test_synth.c - the synthetic primitives dataset: determinism, class balance,
 * pixel statistics, bad arguments, and above all that each class's images
 * show the primitive and orientation the label claims.
 *
 * The shape checks measure the images only, the way a person looking at them
 * would: the background is the median pixel, a 3x3 box blur tames the noise,
 * and the "bright" pixels are those above half-way from the background to the
 * blurred peak, weighted by how far above.  Each check is one that a
 * generator drawing the wrong orientation or the wrong primitive fails: the
 * expected angle or quadrant comes from the class id and nothing else.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

TestSuite(synth, .timeout = 60);

#define MAX_HW (NN_SYNTH_MAX_SIDE * NN_SYNTH_MAX_SIDE)

/* One image reduced to what the checks read. */
typedef struct view {
	int h, w;
	float g[MAX_HW];   /* the channels' mean */
	float b[MAX_HW];   /* g blurred 3x3 */
	float wt[MAX_HW];  /* brightness above the threshold, else 0 */
	float bg, peak;    /* background (median of g), maximum of b */
} view;

static view *view_new(void)
{
	view *v = malloc(sizeof *v);

	cr_assert_not_null(v);
	return v;
}

static void make(nn_dataset *ds, int n, int c, int h, int w, uint64_t seed)
{
	char err[GRAFT_ERRLEN] = "";
	int rc = nn_synth_dataset(ds, n, c, h, w, seed, err, sizeof err);

	cr_assert_eq(rc, 0, "nn_synth_dataset(%d, %d, %d, %d) = %d: %s", n, c, h, w, rc, err);
	cr_assert_eq(ds->n, n);
	cr_assert_eq(ds->c, c);
	cr_assert_eq(ds->h, h);
	cr_assert_eq(ds->w, w);
	cr_assert_eq(ds->classes, NN_SYNTH_CLASSES);
}

/* The q-quantile of n values in 0..255, from a histogram of their rounded
 * values. */
static float quantile(const float *x, int n, double q)
{
	int hist[256] = { 0 }, seen = 0;

	for (int k = 0; k < n; k++)
		hist[(int)lrintf(fminf(255.0f, fmaxf(0.0f, x[k])))]++;
	for (int v = 0; v < 256; v++) {
		seen += hist[v];
		if (seen >= q * n)
			return (float)v;
	}
	return 255.0f;
}

/* Fills v from image i of ds. */
static void view_load(view *v, const nn_dataset *ds, int i)
{
	int h = ds->h, w = ds->w, hw = h * w;
	const uint8_t *p = ds->pixels + (size_t)i * ds->c * hw;
	float thr;

	v->h = h;
	v->w = w;
	for (int k = 0; k < hw; k++) {
		float s = 0.0f;

		for (int ch = 0; ch < ds->c; ch++)
			s += p[ch * hw + k];
		v->g[k] = s / ds->c;
	}
	v->bg = quantile(v->g, hw, 0.5);
	v->peak = 0.0f;
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			float s = 0.0f;
			int cnt = 0;

			for (int dy = -1; dy <= 1; dy++)
				for (int dx = -1; dx <= 1; dx++) {
					int yy = y + dy, xx = x + dx;

					if (yy >= 0 && yy < h && xx >= 0 && xx < w) {
						s += v->g[yy * w + xx];
						cnt++;
					}
				}
			v->b[y * w + x] = s / cnt;
			v->peak = fmaxf(v->peak, s / cnt);
		}
	thr = v->bg + 0.5f * (v->peak - v->bg);
	for (int k = 0; k < hw; k++)
		v->wt[k] = fmaxf(0.0f, v->b[k] - thr);
}

/* Weighted moments of the bright pixels, in a frame with y pointing up. */
typedef struct moments {
	double m, cx, cy, sxx, syy, sxy;
} moments;

static moments view_moments(const view *v)
{
	moments mo = { 0 };

	for (int y = 0; y < v->h; y++)
		for (int x = 0; x < v->w; x++) {
			double wt = v->wt[y * v->w + x];

			mo.m += wt;
			mo.cx += wt * x;
			mo.cy += wt * -y;
		}
	cr_assert_gt(mo.m, 0.0);
	mo.cx /= mo.m;
	mo.cy /= mo.m;
	for (int y = 0; y < v->h; y++)
		for (int x = 0; x < v->w; x++) {
			double wt = v->wt[y * v->w + x], dx = x - mo.cx, dy = -y - mo.cy;

			mo.sxx += wt * dx * dx;
			mo.syy += wt * dy * dy;
			mo.sxy += wt * dx * dy;
		}
	return mo;
}

/* The orientation in [0, 180) degrees of the major axis of a 2x2 symmetric
 * matrix [[sxx, sxy], [sxy, syy]]. */
static double axis_deg(double sxx, double syy, double sxy)
{
	double a = 0.5 * atan2(2.0 * sxy, sxx - syy) * 180.0 / M_PI;

	return a < 0.0 ? a + 180.0 : a;
}

/* The distance between two orientations, modulo 180 degrees. */
static double orient_diff(double a, double b)
{
	double d = fmod(fabs(a - b), 180.0);

	return d > 90.0 ? 180.0 - d : d;
}

/* The principal axis of the bright pixels: a line's direction. */
static double line_angle(const view *v)
{
	moments mo = view_moments(v);

	return axis_deg(mo.sxx, mo.syy, mo.sxy);
}

/* The stripes' direction from the structure tensor: the gradients point across
 * the stripes, so the stripes run 90 degrees from the gradients' major axis. */
static double grating_angle(const view *v)
{
	double jxx = 0, jyy = 0, jxy = 0;

	for (int y = 1; y < v->h - 1; y++)
		for (int x = 1; x < v->w - 1; x++) {
			const float *b = v->b + y * v->w + x;
			double gx = 0.5 * (b[1] - b[-1]);
			double gy = 0.5 * (b[-v->w] - b[v->w]); /* y points up */

			jxx += gx * gx;
			jyy += gy * gy;
			jxy += gx * gy;
		}
	return fmod(axis_deg(jxx, jyy, jxy) + 90.0, 180.0);
}

/* Which way a V or a bowl opens: for each candidate k (direction 45 + 90k),
 * in a frame with u along it and v across, a shape opening toward +u grows
 * wider (|v| larger) as u grows, so the covariance of u with |v - mean v| is
 * positive; opening the other way it is negative, and sideways it is about
 * zero.  Returns the k with the largest covariance. */
static int opening(const view *v)
{
	moments mo = view_moments(v);
	int best = -1;
	double best_cov = -INFINITY;

	for (int k = 0; k < 4; k++) {
		double a = (45.0 + 90.0 * k) * M_PI / 180.0, ux = cos(a), uy = sin(a);
		double su = 0, sv = 0, suav = 0, cov;

		for (int y = 0; y < v->h; y++)
			for (int x = 0; x < v->w; x++) {
				double wt = v->wt[y * v->w + x], dx = x - mo.cx, dy = -y - mo.cy;

				if (wt == 0.0)
					continue;
				su += wt * (dx * ux + dy * uy);
				sv += wt * (-dx * uy + dy * ux);
			}
		su /= mo.m;
		sv /= mo.m;
		for (int y = 0; y < v->h; y++)
			for (int x = 0; x < v->w; x++) {
				double wt = v->wt[y * v->w + x], dx = x - mo.cx, dy = -y - mo.cy;
				double pu = dx * ux + dy * uy, pv = fabs(-dx * uy + dy * ux - sv);

				if (wt == 0.0)
					continue;
				suav += wt * (pu - su) * pv;
			}
		cov = suav / mo.m;
		if (cov > best_cov) {
			best_cov = cov;
			best = k;
		}
	}
	return best;
}

/* The mean and standard deviation of the bright pixels' distance from their
 * centroid: a ring's distances are all about its radius. */
static void ring_stats(const view *v, double *mean, double *sd)
{
	moments mo = view_moments(v);
	double s = 0, s2 = 0;

	for (int y = 0; y < v->h; y++)
		for (int x = 0; x < v->w; x++) {
			double wt = v->wt[y * v->w + x], d = hypot(x - mo.cx, -y - mo.cy);

			s += wt * d;
			s2 += wt * d * d;
		}
	*mean = s / mo.m;
	*sd = sqrt(fmax(0.0, s2 / mo.m - *mean * *mean));
}

/* The blurred brightness at the bright pixels' centroid, as a fraction of the
 * way from the background to the peak: high for a blob, low inside a ring. */
static double centre_level(const view *v)
{
	moments mo = view_moments(v);
	int x = (int)lrint(mo.cx), y = (int)lrint(-mo.cy);

	return (v->b[y * v->w + x] - v->bg) / (v->peak - v->bg);
}

/* The distance from the blurred peak to the bright pixels' centroid. */
static double peak_offset(const view *v)
{
	moments mo = view_moments(v);
	int best = 0;

	for (int k = 1; k < v->h * v->w; k++)
		if (v->b[k] > v->b[best])
			best = k;
	return hypot(best % v->w - mo.cx, -(best / v->w) - mo.cy);
}

/* ---- the dataset as a whole --------------------------------------------- */

Test(synth, same_seed_same_bytes_other_seed_other_bytes)
{
	nn_dataset a, b, c;
	size_t bytes = (size_t)300 * 28 * 28;

	make(&a, 300, 1, 28, 28, 42);
	make(&b, 300, 1, 28, 28, 42);
	make(&c, 300, 1, 28, 28, 43);
	cr_assert(memcmp(a.pixels, b.pixels, bytes) == 0, "same seed, different pixels");
	cr_assert(memcmp(a.labels, b.labels, 300) == 0, "same seed, different labels");
	cr_assert(memcmp(a.pixels, c.pixels, bytes) != 0, "seeds 42 and 43 gave the same pixels");
	cr_assert(memcmp(a.labels, c.labels, 300) != 0, "seeds 42 and 43 gave the same labels");
	/* Not only the labels: an image keeps no pixels from another seed's. */
	for (int i = 0; i < 300; i++)
		if (a.labels[i] == c.labels[i])
			cr_assert(memcmp(a.pixels + (size_t)i * 784, c.pixels + (size_t)i * 784, 784),
			          "image %d (class %d) is the same under seeds 42 and 43", i,
			          a.labels[i]);
	nn_dataset_free(&a);
	nn_dataset_free(&b);
	nn_dataset_free(&c);
}

/* Each image has its own generator, so the thread count cannot change them. */
Test(synth, same_bytes_on_one_thread_and_several)
{
	nn_dataset a, b;
	int saved = omp_get_max_threads();

	omp_set_num_threads(1);
	make(&a, 500, 3, 32, 32, 9);
	omp_set_num_threads(3);
	make(&b, 500, 3, 32, 32, 9);
	omp_set_num_threads(saved);
	cr_assert(memcmp(a.pixels, b.pixels, (size_t)500 * 3 * 32 * 32) == 0);
	cr_assert(memcmp(a.labels, b.labels, 500) == 0);
	nn_dataset_free(&a);
	nn_dataset_free(&b);
}

Test(synth, classes_are_balanced_and_shuffled)
{
	nn_dataset ds;
	int count[256] = { 0 }, expect = 22000 / NN_SYNTH_CLASSES, runs = 0;

	make(&ds, 22000, 1, 8, 8, 5);
	for (int i = 0; i < ds.n; i++) {
		cr_assert_lt(ds.labels[i], NN_SYNTH_CLASSES, "image %d has label %d", i,
		             ds.labels[i]);
		count[ds.labels[i]]++;
		runs += i > 0 && ds.labels[i] == ds.labels[i - 1];
	}
	for (int k = 0; k < NN_SYNTH_CLASSES; k++)
		cr_expect(count[k] >= expect * 0.8 && count[k] <= expect * 1.2,
		          "class %d: %d images, expected %d +- 20%%", k, count[k], expect);
	/* Shuffled, neighbours share a label about 1 time in 22, not 0 (cyclic)
	 * nor nearly always (sorted). */
	cr_expect(runs > 22000 / 44 && runs < 22000 / 11, "%d neighbours share a label", runs);
	nn_dataset_free(&ds);
}

/* The background is dark and noisy, the primitive bright; a grating spans the
 * range across the whole image. */
Test(synth, background_foreground_and_noise)
{
	nn_dataset ds;
	view *v = view_new();
	int dark_bg = 0, contrast = 0, noisy = 0, lit = 0, shapes = 0, lo = 0, hi = 0;

	make(&ds, 2200, 1, 28, 28, 11);
	for (int i = 0; i < ds.n; i++) {
		const uint8_t *p = ds.pixels + (size_t)i * 28 * 28;
		float sigma;

		for (int k = 0; k < 28 * 28; k++) {
			lo += p[k] < 40;
			hi += p[k] > 200;
		}
		if (ds.labels[i] >= NN_SYNTH_GRATING)
			continue;
		view_load(v, &ds, i);
		shapes++;
		dark_bg += v->bg <= 85.0f;
		/* A 1-pixel line blurred 3x3 keeps a third of its contrast of >= 70. */
		contrast += v->peak - v->bg >= 35.0f;
		/* The primitive only ever brightens, so the darker pixels are
		 * background noise alone: for a gaussian the 10th and 30th
		 * percentiles lie 0.757 sigma apart (a little more when the
		 * primitive covers part of the image).  A background near 0 clips
		 * the noise, so those are left out. */
		if (v->bg < 30.0f)
			continue;
		lit++;
		sigma = (quantile(v->g, 28 * 28, 0.3) - quantile(v->g, 28 * 28, 0.1)) / 0.757f;
		noisy += sigma >= 8.0f && sigma <= 24.0f;
	}
	cr_expect_geq(dark_bg, shapes * 99 / 100, "%d of %d backgrounds <= 85", dark_bg, shapes);
	cr_expect_geq(contrast, shapes * 99 / 100, "%d of %d have contrast", contrast, shapes);
	cr_expect_geq(noisy, lit * 95 / 100, "%d of %d have noise sigma 8..24", noisy, lit);
	cr_expect_gt(lo, 0);
	cr_expect_gt(hi, 0);
	free(v);
	nn_dataset_free(&ds);
}

Test(synth, bad_arguments_are_einval_with_a_message)
{
	static const int bad[][4] = {
		{ 0, 1, 28, 28 }, { -5, 1, 28, 28 }, { 10, 0, 28, 28 },
		{ 10, NN_MAX_CHANNELS + 1, 28, 28 }, { 10, 1, 7, 28 }, { 10, 1, 28, 7 },
		{ 10, 1, 257, 28 }, { 10, 1, 28, 257 }, { 10, 3, 0, 0 },
	};
	char err[GRAFT_ERRLEN];
	nn_dataset ds;

	for (size_t t = 0; t < sizeof bad / sizeof bad[0]; t++) {
		int rc;

		memset(&ds, 0x5a, sizeof ds);
		err[0] = '\0';
		rc = nn_synth_dataset(&ds, bad[t][0], bad[t][1], bad[t][2], bad[t][3], 1,
		                      err, sizeof err);
		cr_expect_eq(rc, GRAFT_EINVAL, "n=%d c=%d %dx%d gave %d", bad[t][0], bad[t][1],
		             bad[t][2], bad[t][3], rc);
		cr_expect(strncmp(err, "synth: ", 7) == 0 && strlen(err) > 10,
		          "n=%d c=%d %dx%d: message \"%s\"", bad[t][0], bad[t][1], bad[t][2],
		          bad[t][3], err);
		cr_expect_null(ds.pixels);
		cr_expect_null(ds.labels);
		nn_dataset_free(&ds);
	}
	cr_expect_eq(nn_synth_dataset(NULL, 10, 1, 28, 28, 1, NULL, 0), GRAFT_EINVAL);
	cr_expect_eq(nn_synth_dataset(&ds, 10, 1, 300, 28, 1, NULL, 0), GRAFT_EINVAL);
}

/* The extreme and odd sizes draw without touching memory outside the canvas
 * (run under make SAN=address to see it) and still draw something. */
Test(synth, every_size_from_8_to_256)
{
	static const int sizes[][2] = { { 8, 8 }, { 8, 256 }, { 256, 8 }, { 13, 200 },
	                                { 256, 256 }, { 31, 17 } };

	for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
		nn_dataset ds;
		int h = sizes[t][0], w = sizes[t][1];
		size_t hw = (size_t)h * w;

		make(&ds, 44, 2, h, w, 3);
		for (int i = 0; i < ds.n; i++) {
			int top = 0;

			for (size_t k = 0; k < 2 * hw; k++)
				top = ds.pixels[(size_t)i * 2 * hw + k] > top
				              ? ds.pixels[(size_t)i * 2 * hw + k] : top;
			cr_expect_geq(top, 130, "%dx%d image %d (class %d) peaks at %d", h, w, i,
			              ds.labels[i], top);
		}
		nn_dataset_free(&ds);
	}
}

/* The brightest run of 3 pixels along the canvas's edge, above the
 * background, as a fraction of the image's contrast. */
static double edge_level(const view *v)
{
	int h = v->h, w = v->w;
	float best = -INFINITY;

	for (int x = 1; x < w - 1; x++) {
		const float *top = v->g + x, *bottom = v->g + (h - 1) * w + x;

		best = fmaxf(best, top[-1] + top[0] + top[1]);
		best = fmaxf(best, bottom[-1] + bottom[0] + bottom[1]);
	}
	for (int y = 1; y < h - 1; y++) {
		const float *left = v->g + y * w, *right = left + w - 1;

		best = fmaxf(best, left[-w] + left[0] + left[w]);
		best = fmaxf(best, right[-w] + right[0] + right[w]);
	}
	return (best / 3.0f - v->bg) / (v->peak - v->bg);
}

/* Strokes are placed with a margin for their thickness, so none is cut off
 * by the edge: the edge pixels are background.  On a faint image a noise spike
 * can pass for a stroke (about 1 image in 250 here); without the margin more
 * than a third of the strokes touch the edge. */
Test(synth, strokes_stay_inside_the_canvas)
{
	nn_dataset ds;
	view *v = view_new();
	int strokes = 0, touching = 0;

	make(&ds, 3000, 1, 28, 28, 12);
	for (int i = 0; i < ds.n; i++) {
		if (ds.labels[i] > NN_SYNTH_CIRCLE)
			continue;
		view_load(v, &ds, i);
		strokes++;
		touching += edge_level(v) > 0.5;
	}
	cr_expect_leq(touching, strokes / 50, "%d of %d strokes reach the edge", touching,
	              strokes);
	free(v);
	nn_dataset_free(&ds);
}

/* ---- each class draws what its label says ------------------------------- */

/* The fraction of the first `want` images of classes [first, first + count)
 * for which ok() holds; fails if there are fewer such images. */
static double fraction_ok(const nn_dataset *ds, int first, int count, int want,
                          int (*ok)(const view *v, int k))
{
	view *v = view_new();
	int seen = 0, good = 0;

	for (int i = 0; i < ds->n && seen < want; i++) {
		int k = ds->labels[i] - first;

		if (k < 0 || k >= count)
			continue;
		view_load(v, ds, i);
		good += ok(v, k);
		seen++;
	}
	free(v);
	cr_assert_eq(seen, want, "only %d images of classes %d..%d", seen, first,
	             first + count - 1);
	return (double)good / want;
}

static int line_ok(const view *v, int k)
{
	return orient_diff(line_angle(v), k * 22.5) <= 12.0;
}

static int grating_ok(const view *v, int k)
{
	return orient_diff(grating_angle(v), k * 45.0) <= 12.0;
}

static int opening_ok(const view *v, int k)
{
	return opening(v) == k;
}

static int ring_ok(const view *v, int k)
{
	double mean, sd;

	(void)k;
	ring_stats(v, &mean, &sd);
	return sd < 0.25 * mean && centre_level(v) < 0.45;
}

static int blob_ok(const view *v, int k)
{
	(void)k;
	return peak_offset(v) <= 2.0 && centre_level(v) > 0.6;
}

Test(synth, lines_lie_along_their_class_angle)
{
	nn_dataset ds;
	double f;

	make(&ds, 2000, 1, 28, 28, 21);
	f = fraction_ok(&ds, NN_SYNTH_LINE, 8, 500, line_ok);
	cr_expect_geq(f, 0.95, "28x28: %.3f of lines within 12 degrees", f);
	nn_dataset_free(&ds);
	make(&ds, 2000, 3, 64, 48, 22);
	f = fraction_ok(&ds, NN_SYNTH_LINE, 8, 500, line_ok);
	cr_expect_geq(f, 0.95, "3x64x48: %.3f of lines within 12 degrees", f);
	nn_dataset_free(&ds);
}

Test(synth, gratings_run_along_their_class_angle)
{
	nn_dataset ds;
	double f;

	make(&ds, 3000, 1, 28, 28, 23);
	f = fraction_ok(&ds, NN_SYNTH_GRATING, 4, 500, grating_ok);
	cr_expect_geq(f, 0.95, "28x28: %.3f of gratings within 12 degrees", f);
	nn_dataset_free(&ds);
	make(&ds, 3000, 3, 32, 32, 24);
	f = fraction_ok(&ds, NN_SYNTH_GRATING, 4, 500, grating_ok);
	cr_expect_geq(f, 0.95, "3x32x32: %.3f of gratings within 12 degrees", f);
	nn_dataset_free(&ds);
}

Test(synth, arcs_and_corners_open_toward_their_class_quadrant)
{
	nn_dataset ds;
	double arcs, corners;

	make(&ds, 3000, 1, 28, 28, 25);
	arcs = fraction_ok(&ds, NN_SYNTH_ARC, 4, 500, opening_ok);
	corners = fraction_ok(&ds, NN_SYNTH_CORNER, 4, 500, opening_ok);
	cr_expect_geq(arcs, 0.95, "%.3f of arcs open toward their quadrant", arcs);
	cr_expect_geq(corners, 0.95, "%.3f of corners open toward their quadrant", corners);
	nn_dataset_free(&ds);
}

Test(synth, circles_are_rings_and_blobs_are_filled)
{
	nn_dataset ds;
	double rings, blobs, blob_as_ring, ring_as_blob;

	make(&ds, 11000, 1, 28, 28, 26);
	rings = fraction_ok(&ds, NN_SYNTH_CIRCLE, 1, 400, ring_ok);
	blobs = fraction_ok(&ds, NN_SYNTH_BLOB, 1, 400, blob_ok);
	/* And the checks tell the two apart, so neither passes by being lax. */
	blob_as_ring = fraction_ok(&ds, NN_SYNTH_BLOB, 1, 400, ring_ok);
	ring_as_blob = fraction_ok(&ds, NN_SYNTH_CIRCLE, 1, 400, blob_ok);
	cr_expect_geq(rings, 0.95, "%.3f of circles are rings", rings);
	cr_expect_geq(blobs, 0.95, "%.3f of blobs peak at their centre", blobs);
	cr_expect_leq(blob_as_ring, 0.05, "%.3f of blobs pass as rings", blob_as_ring);
	cr_expect_leq(ring_as_blob, 0.05, "%.3f of circles pass as blobs", ring_as_blob);
	nn_dataset_free(&ds);
}

/* In colour the primitive is one colour over a grey background: the channels
 * differ on it, and the shapes still measure right in the channels' mean. */
Test(synth, rgb_draws_in_colour)
{
	nn_dataset ds;
	int coloured = 0;
	size_t hw = 32 * 32;
	double f;

	make(&ds, 2000, 3, 32, 32, 27);
	for (int i = 0; i < 200; i++) {
		const uint8_t *p = ds.pixels + (size_t)i * 3 * hw;
		double s[3] = { 0, 0, 0 };

		for (int ch = 0; ch < 3; ch++)
			for (size_t k = 0; k < hw; k++)
				s[ch] += p[ch * hw + k];
		coloured += fmax(fabs(s[0] - s[1]), fmax(fabs(s[1] - s[2]), fabs(s[0] - s[2]))) >
		            hw * 3.0;
	}
	cr_expect_geq(coloured, 100, "%d of 200 images have channels differing", coloured);
	f = fraction_ok(&ds, NN_SYNTH_ARC, 4, 200, opening_ok);
	cr_expect_geq(f, 0.95, "%.3f of colour arcs open toward their quadrant", f);
	nn_dataset_free(&ds);
}
