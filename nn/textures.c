/*
 * textures.c - procedural textures: eight families of pattern, each at a
 * fine and a coarse scale, turned and shifted at random, so that telling
 * them apart takes what a first layer of a classifier learns from real
 * images: orientation, spatial frequency, periodicity against randomness,
 * straight lines against curves, edges against smooth fields.
 *
 * Each texture is first an intensity field in [0, 1] sampled at pixel
 * centres (with one-pixel ramps at edges, so nothing aliases), then made
 * bytes with a background and a foreground level of either polarity (a
 * colour each when c > 1) and Gaussian noise.  Every image has its own
 * generator, seeded from (seed, index): the result depends on the seed
 * alone, never on the thread count or the order of drawing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

static const char *const families[NN_TEXTURE_FAMILIES] = {
	"stripes", "checks", "dots", "cells", "noise", "rings", "hatching", "bricks",
};

static double uniform(uint64_t *s, double lo, double hi)
{
	return lo + (hi - lo) * (double)(nn_splitmix64(s) >> 11) * 0x1p-53;
}

static double gauss(uint64_t *s)
{
	double u = uniform(s, 0x1p-53, 1.0), v = uniform(s, 0.0, 2.0 * M_PI);
	return sqrt(-2.0 * log(u)) * cos(v);
}

/* A value in [0, 1) fixed by a lattice point and the image's own key: the
 * random points and values of cells and noise, the same wherever they are
 * looked up from. */
static double lattice(uint64_t key, long i, long j, int k)
{
	uint64_t s = key ^ ((uint64_t)i * 0x9e3779b97f4a7c15u) ^
	             ((uint64_t)j * 0xc2b2ae3d27d4eb4fu) ^ ((uint64_t)k << 56);
	return (double)(nn_splitmix64(&s) >> 11) * 0x1p-53;
}

/* 1 inside a band half_width from its centre line, 0 beyond, a one-pixel
 * ramp between. */
static double band(double d, double half_width)
{
	double v = half_width + 0.5 - fabs(d);
	return v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
}

/* Distance from t to the nearest multiple of p. */
static double to_grid(double t, double p)
{
	return t - p * floor(t / p + 0.5);
}

static double smooth(double t)
{
	return t * t * (3.0 - 2.0 * t);
}

/* What one image of a family draws: its period p (pixels), its angle, and
 * the family's own parameters, all fixed before the first pixel. */
typedef struct texture {
	int family;
	double p, cosa, sina, du, dv, cx, cy;
	double width;        /* a line's or a dot's half width, in pixels */
	double cross;        /* hatching: the second set's angle from the first */
	uint64_t key;        /* cells and noise: their lattice */
} texture;

static double field(const texture *t, double x, double y)
{
	double u = t->cosa * x + t->sina * y + t->du, v = -t->sina * x + t->cosa * y + t->dv;
	double p = t->p;

	switch (t->family) {
	case 0: /* stripes: a sinusoidal grating */
		return 0.5 + 0.5 * sin(2.0 * M_PI * u / p);
	case 1: { /* checks: squares of side p/2, edges one pixel wide */
		double a = sin(2.0 * M_PI * u / p), b = sin(2.0 * M_PI * v / p);
		double s = a * b * p / (2.0 * M_PI);
		return s < -0.5 ? 0.0 : s > 0.5 ? 1.0 : s + 0.5;
	}
	case 2: /* dots on a square lattice */
		return band(sqrt(to_grid(u, p) * to_grid(u, p) + to_grid(v, p) * to_grid(v, p)),
		            t->width);
	case 3: { /* cells: the edges between points jittered about a lattice */
		long i0 = (long)floor(u / p), j0 = (long)floor(v / p);
		double d1 = INFINITY, d2 = INFINITY;
		for (long i = i0 - 1; i <= i0 + 1; i++)
			for (long j = j0 - 1; j <= j0 + 1; j++) {
				double px = (i + 0.1 + 0.8 * lattice(t->key, i, j, 0)) * p;
				double py = (j + 0.1 + 0.8 * lattice(t->key, i, j, 1)) * p;
				double d = sqrt((u - px) * (u - px) + (v - py) * (v - py));
				if (d < d1) {
					d2 = d1;
					d1 = d;
				} else if (d < d2) {
					d2 = d;
				}
			}
		/* Half the difference of the two nearest distances is about the
		 * distance to the edge between their cells. */
		return band(0.5 * (d2 - d1), t->width);
	}
	case 4: { /* noise: random values on a lattice of spacing p, smoothly
	           * interpolated (value noise) */
		long i = (long)floor(u / p), j = (long)floor(v / p);
		double fx = smooth(u / p - i), fy = smooth(v / p - j);
		double a = lattice(t->key, i, j, 2), b = lattice(t->key, i + 1, j, 2);
		double c = lattice(t->key, i, j + 1, 2), d = lattice(t->key, i + 1, j + 1, 2);
		return (a + (b - a) * fx) * (1.0 - fy) + (c + (d - c) * fx) * fy;
	}
	case 5: /* rings about a centre that may lie off the image */
		return 0.5 + 0.5 * sin(2.0 * M_PI * (t->du + sqrt((x - t->cx) * (x - t->cx) +
		                                                    (y - t->cy) * (y - t->cy))) / p);
	case 6: { /* hatching: two sets of thin parallel lines */
		double c2 = cos(t->cross), s2 = sin(t->cross);
		double a = band(to_grid(u, p), t->width);
		double b = band(to_grid(c2 * u + s2 * v + t->dv, p), t->width);
		return a > b ? a : b;
	}
	default: { /* bricks: courses p high, bricks 2p long, every other
	            * course shifted by half a brick; the mortar is drawn */
		double row = floor(v / p);
		double shift = fmod(row, 2.0) != 0.0 ? p : 0.0;
		double a = band(to_grid(v, p), t->width);
		double b = band(to_grid(u + shift, 2.0 * p), t->width);
		return a > b ? a : b;
	}
	}
}

/* One image of class cls: c planes of h x w into out. */
static void draw(int cls, int c, int h, int w, uint64_t *s, uint8_t *out)
{
	int side = h < w ? h : w;
	int coarse = cls % 2;
	double angle = uniform(s, 0.0, 2.0 * M_PI);
	texture t = {
		.family = cls / 2,
		/* fine: 2.5-4.5 px at 28 px, coarse: 6-10 px (the two never meet) */
		.p = side * (coarse ? uniform(s, 0.21, 0.36) : uniform(s, 0.09, 0.16)),
		.cosa = cos(angle), .sina = sin(angle),
		.cx = uniform(s, -0.5, 1.5) * w, .cy = uniform(s, -0.5, 1.5) * h,
		.cross = uniform(s, M_PI / 3.0, 2.0 * M_PI / 3.0),
		.key = nn_splitmix64(s),
	};
	t.du = uniform(s, 0.0, t.p);
	t.dv = uniform(s, 0.0, t.p);
	/* Lines a sixth to a quarter of the period wide (thick enough to see,
	 * thin enough to leave the pattern periodic), dots a third to 0.6. */
	t.width = t.p * uniform(s, 0.08, 0.125);
	if (t.family == 2)
		t.width = t.p * uniform(s, 0.15, 0.3);
	double bg[NN_MAX_CHANNELS], fg[NN_MAX_CHANNELS];
	double grey_bg = uniform(s, 0.0, 110.0), grey_fg = uniform(s, 150.0, 255.0);
	if (nn_splitmix64(s) & 1) { /* either polarity */
		double tmp = grey_bg;
		grey_bg = grey_fg;
		grey_fg = tmp;
	}
	for (int k = 0; k < c; k++) {
		/* In colour, each channel's background moves about the grey one
		 * and its contrast is half to all of the grey contrast, so every
		 * channel draws the texture with the same polarity. */
		bg[k] = c > 1 ? grey_bg + uniform(s, -40.0, 40.0) : grey_bg;
		fg[k] = c > 1 ? bg[k] + (grey_fg - grey_bg) * uniform(s, 0.5, 1.0) : grey_fg;
	}
	double sigma = uniform(s, 0.0, 12.0);
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			double f = field(&t, x + 0.5, y + 0.5);
			for (int k = 0; k < c; k++) {
				double v = bg[k] + (fg[k] - bg[k]) * f + sigma * gauss(s);
				out[((size_t)k * h + y) * w + x] =
					(uint8_t)(v < 0.0 ? 0.0 : v > 255.0 ? 255.0 : v + 0.5);
			}
		}
}

const char *nn_texture_family(int family)
{
	return family >= 0 && family < NN_TEXTURE_FAMILIES ? families[family] : NULL;
}

int nn_texture_dataset(nn_dataset *ds, int n, int c, int h, int w, uint64_t seed, char *err,
                       size_t errlen)
{
	memset(ds, 0, sizeof(*ds));
	if (n < 1 || c < 1 || c > NN_MAX_CHANNELS || h < 8 || w < 8 || h > 1024 || w > 1024)
		return graft_errf(err, errlen, GRAFT_EINVAL, "textures: %d images of %dx%dx%d: need "
		                  "at least one, 1..%d channels, sides 8..1024", n, c, h, w,
		                  NN_MAX_CHANNELS);
	size_t chw = (size_t)c * h * w;
	if (!(ds->pixels = malloc((size_t)n * chw)) || !(ds->labels = malloc((size_t)n))) {
		nn_dataset_free(ds);
		return graft_errf(err, errlen, GRAFT_ENOMEM, "textures: out of memory for %d images",
		                  n);
	}
	/* Balanced classes in a shuffled order. */
	uint64_t order = seed ^ 0x5bd1e995u;
	for (int i = 0; i < n; i++)
		ds->labels[i] = (uint8_t)(i % NN_TEXTURE_CLASSES);
	for (int i = n - 1; i > 0; i--) {
		int k = (int)(nn_splitmix64(&order) % (uint64_t)(i + 1));
		uint8_t tmp = ds->labels[i];
		ds->labels[i] = ds->labels[k];
		ds->labels[k] = tmp;
	}
#pragma omp parallel for schedule(dynamic, 64)
	for (int i = 0; i < n; i++) {
		uint64_t s = seed ^ ((uint64_t)i * 0xd1b54a32d192ed03u);
		draw(ds->labels[i], c, h, w, &s, ds->pixels + (size_t)i * chw);
	}
	ds->n = n;
	ds->c = c;
	ds->h = h;
	ds->w = w;
	ds->classes = NN_TEXTURE_CLASSES;
	return 0;
}
