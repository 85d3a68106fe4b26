/*
 * synth.c - draws the synthetic primitives dataset (see synth.h for the
 * classes and their orientations).
 *
 * Every primitive is first drawn as a coverage plane of floats in [0, 1]
 * (anti-aliased from each pixel centre's exact distance to the ideal shape),
 * and only then turned into bytes with the image's background, colour and
 * noise.  Keeping the geometry apart from the photometry is what lets the
 * tests measure what was drawn, and lets a distractor sit under the main
 * primitive with a plain max().
 *
 * Each image has its own generator, seeded from (seed, index), so images can
 * be drawn in any order on any number of threads and still come out the same.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

#define SYNTH_DEG (M_PI / 180.0)
#define SYNTH_JITTER_DEG 8.0     /* arcs and corners turn this far either way */
#define SYNTH_DISTRACT_P 0.3
#define SYNTH_DISTRACT_SCALE 0.5 /* a distractor's size relative to a main one */

/* The coverage plane one primitive is drawn into (h, w). */
typedef struct synth_canvas {
	float *m;
	int h, w;
} synth_canvas;

/* The integer pixel box [x0, x1] x [y0, y1] a shape can touch, clipped to the
 * canvas. */
typedef struct synth_box {
	int x0, y0, x1, y1;
} synth_box;

/* splitmix64's output for z: neighbouring inputs give unrelated outputs. */
static uint64_t synth_mix(uint64_t z)
{
	return nn_splitmix64(&z);
}

static double uniform(nn_rng *r, double lo, double hi)
{
	return lo + (hi - lo) * nn_rng_uniform(r);
}

static float clampf(float v, float lo, float hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Coverage of a pixel whose centre is d from the ideal centre line of a stroke
 * thick pixels wide: 1 well inside, 0 well outside, a one-pixel ramp between,
 * so the area under a cross-section is the thickness. */
static float stroke_cover(double d, double thick)
{
	return clampf((float)(0.5 * thick + 0.5 - d), 0.0f, 1.0f);
}

/* The pixel box of [x0, x1] x [y0, y1] grown by pad, clipped; 0 if empty. */
static int canvas_box(const synth_canvas *cv, double x0, double y0, double x1,
                      double y1, double pad, synth_box *b)
{
	b->x0 = (int)fmax(0.0, floor(x0 - pad));
	b->y0 = (int)fmax(0.0, floor(y0 - pad));
	b->x1 = (int)fmin(cv->w - 1.0, ceil(x1 + pad));
	b->y1 = (int)fmin(cv->h - 1.0, ceil(y1 + pad));
	return b->x0 <= b->x1 && b->y0 <= b->y1;
}

static void canvas_put(synth_canvas *cv, int y, int x, float v)
{
	float *p = &cv->m[(size_t)y * cv->w + x];

	if (v > *p)
		*p = v;
}

/* The length of (x, y).  libm's hypot guards against overflow we cannot
 * have here and costs several times as much. */
static double dist(double x, double y)
{
	return sqrt(x * x + y * y);
}

/* Distance from (px, py) to the segment (x0, y0)-(x1, y1). */
static double segment_dist(double px, double py, double x0, double y0, double x1,
                           double y1)
{
	double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy, t = 0.0;

	if (len2 > 0.0)
		t = fmin(1.0, fmax(0.0, ((px - x0) * dx + (py - y0) * dy) / len2));
	return dist(px - x0 - t * dx, py - y0 - t * dy);
}

/* A straight stroke with round ends, at amplitude amp. */
static void draw_segment(synth_canvas *cv, double x0, double y0, double x1,
                         double y1, double thick, float amp)
{
	synth_box b;

	if (!canvas_box(cv, fmin(x0, x1), fmin(y0, y1), fmax(x0, x1), fmax(y0, y1),
	                0.5 * thick + 1.0, &b))
		return;
	for (int y = b.y0; y <= b.y1; y++)
		for (int x = b.x0; x <= b.x1; x++) {
			float v = stroke_cover(segment_dist(x, y, x0, y0, x1, y1), thick);

			if (v > 0.0f)
				canvas_put(cv, y, x, amp * v);
		}
}

/* A quarter of the circle (ox, oy, r): the points within 45 degrees of the
 * unit direction (ux, uy) from the centre, in image coordinates. */
static void draw_arc(synth_canvas *cv, double ox, double oy, double r, double ux,
                     double uy, double thick, float amp)
{
	double c45 = cos(M_PI / 4);
	/* The ends: u turned 45 degrees either way. */
	double ax = c45 * (ux - uy), ay = c45 * (uy + ux);
	double bx = c45 * (ux + uy), by = c45 * (uy - ux);
	synth_box b;

	if (!canvas_box(cv, ox - r, oy - r, ox + r, oy + r, 0.5 * thick + 1.0, &b))
		return;
	for (int y = b.y0; y <= b.y1; y++)
		for (int x = b.x0; x <= b.x1; x++) {
			double qx = x - ox, qy = y - oy, rho = dist(qx, qy);
			double dot = qx * ux + qy * uy, d;
			float v;

			if (dot > 0.0 && dot >= c45 * rho)
				d = fabs(rho - r);
			else
				d = fmin(dist(qx - r * ax, qy - r * ay),
				         dist(qx - r * bx, qy - r * by));
			v = stroke_cover(d, thick);
			if (v > 0.0f)
				canvas_put(cv, y, x, amp * v);
		}
}

/* A circle's outline. */
static void draw_ring(synth_canvas *cv, double ox, double oy, double r,
                      double thick, float amp)
{
	synth_box b;

	if (!canvas_box(cv, ox - r, oy - r, ox + r, oy + r, 0.5 * thick + 1.0, &b))
		return;
	for (int y = b.y0; y <= b.y1; y++)
		for (int x = b.x0; x <= b.x1; x++) {
			float v = stroke_cover(fabs(dist(x - ox, y - oy) - r), thick);

			if (v > 0.0f)
				canvas_put(cv, y, x, amp * v);
		}
}

/* A filled isotropic gaussian, peak amp at (ox, oy). */
static void draw_blob(synth_canvas *cv, double ox, double oy, double sigma, float amp)
{
	double k = -0.5 / (sigma * sigma), reach = 3.5 * sigma;
	synth_box b;

	if (!canvas_box(cv, ox - reach, oy - reach, ox + reach, oy + reach, 0.0, &b))
		return;
	for (int y = b.y0; y <= b.y1; y++)
		for (int x = b.x0; x <= b.x1; x++) {
			double d2 = (x - ox) * (x - ox) + (y - oy) * (y - oy);

			canvas_put(cv, y, x, amp * (float)exp(k * d2));
		}
}

/* Sinusoidal stripes over the whole canvas, running along theta (radians):
 * the intensity changes along the normal (nx, ny), once per period pixels.
 * sin(a + b) is split into a column part and a row part, so the loop has no
 * transcendental call per pixel. */
static void draw_grating(synth_canvas *cv, double theta, double period, double phase)
{
	double nx = cos(theta + M_PI / 2), ny = -sin(theta + M_PI / 2);
	double k = 2.0 * M_PI / period;
	double cx[NN_SYNTH_MAX_SIDE], sx[NN_SYNTH_MAX_SIDE];

	for (int x = 0; x < cv->w; x++) {
		cx[x] = cos(k * nx * x + phase);
		sx[x] = sin(k * nx * x + phase);
	}
	for (int y = 0; y < cv->h; y++) {
		double cy = cos(k * ny * y), sy = sin(k * ny * y);
		float *row = cv->m + (size_t)y * cv->w;

		for (int x = 0; x < cv->w; x++)
			row[x] = (float)(0.5 + 0.5 * (sx[x] * cy + cx[x] * sy));
	}
}

/* A translation t for a shape spanning [lo, hi] relative to its anchor, so
 * that [lo + t, hi + t] lies in [min, max]: uniform over the room there is, or
 * centred when the shape is wider than the room (the drawing clips). */
static double place(nn_rng *r, double lo, double hi, double min, double max)
{
	double tlo = min - lo, thi = max - hi;

	if (thi < tlo)
		return 0.5 * (tlo + thi);
	return uniform(r, tlo, thi);
}

/* Unit direction of angle a (radians, counter-clockwise, y down). */
static void dir(double a, double *x, double *y)
{
	*x = cos(a);
	*y = -sin(a);
}

/* How one primitive is drawn: its size relative to a main primitive (1 for
 * one, SYNTH_DISTRACT_SCALE for a distractor) and amplitude. */
typedef struct synth_draw {
	double scale;
	float amp;
} synth_draw;

/* The side a shape of the canvas must fit in, after a margin for its stroke. */
static double room(const synth_canvas *cv, double margin)
{
	return fmax(1.0, fmin(cv->h, cv->w) - 1.0 - 2.0 * margin);
}

static void prim_line(synth_canvas *cv, nn_rng *r, const synth_draw *d, double theta)
{
	double thick = uniform(r, 1.0, 3.0), m = 0.5 * thick + 0.5;
	double len = room(cv, m) * uniform(r, 0.4, 1.0) * d->scale;
	double ux, uy, hx, hy, cx, cy;

	dir(theta, &ux, &uy);
	hx = 0.5 * len * ux;
	hy = 0.5 * len * uy;
	cx = place(r, -fabs(hx), fabs(hx), m, cv->w - 1 - m);
	cy = place(r, -fabs(hy), fabs(hy), m, cv->h - 1 - m);
	draw_segment(cv, cx - hx, cy - hy, cx + hx, cy + hy, thick, d->amp);
}

/* open: the direction (radians) the concave side faces. */
static void prim_arc(synth_canvas *cv, nn_rng *r, const synth_draw *d, double open)
{
	double thick = uniform(r, 1.0, 3.0), m = 0.5 * thick + 0.5;
	double rad = room(cv, m) * uniform(r, 0.45, 0.95) * d->scale;
	double ux, uy, x0 = 1e9, x1 = -1e9, y0 = 1e9, y1 = -1e9, ox, oy;

	/* The arc's points lie away from the side it opens to. */
	dir(open + M_PI, &ux, &uy);
	for (int i = 0; i <= 8; i++) {
		double px, py;

		dir(open + M_PI + (i - 4) * (M_PI / 16), &px, &py);
		x0 = fmin(x0, rad * px);
		x1 = fmax(x1, rad * px);
		y0 = fmin(y0, rad * py);
		y1 = fmax(y1, rad * py);
	}
	ox = place(r, x0, x1, m, cv->w - 1 - m);
	oy = place(r, y0, y1, m, cv->h - 1 - m);
	draw_arc(cv, ox, oy, rad, ux, uy, thick, d->amp);
}

/* open: the direction (radians) between the two arms. */
static void prim_corner(synth_canvas *cv, nn_rng *r, const synth_draw *d, double open)
{
	double thick = uniform(r, 1.0, 3.0), m = 0.5 * thick + 0.5;
	double a = room(cv, m) * uniform(r, 0.4, 0.85) * d->scale;
	double b = room(cv, m) * uniform(r, 0.4, 0.85) * d->scale;
	double ax, ay, bx, by, vx, vy;

	dir(open - M_PI / 4, &ax, &ay);
	dir(open + M_PI / 4, &bx, &by);
	ax *= a, ay *= a, bx *= b, by *= b;
	vx = place(r, fmin(0.0, fmin(ax, bx)), fmax(0.0, fmax(ax, bx)), m, cv->w - 1 - m);
	vy = place(r, fmin(0.0, fmin(ay, by)), fmax(0.0, fmax(ay, by)), m, cv->h - 1 - m);
	draw_segment(cv, vx, vy, vx + ax, vy + ay, thick, d->amp);
	draw_segment(cv, vx, vy, vx + bx, vy + by, thick, d->amp);
}

static void prim_circle(synth_canvas *cv, nn_rng *r, const synth_draw *d)
{
	double thick = uniform(r, 1.0, 3.0), m = 0.5 * thick + 0.5;
	double rad = 0.5 * room(cv, m) * uniform(r, 0.4, 0.95) * d->scale;
	double ox = place(r, -rad, rad, m, cv->w - 1 - m);
	double oy = place(r, -rad, rad, m, cv->h - 1 - m);

	draw_ring(cv, ox, oy, rad, thick, d->amp);
}

/* The blob's centre stays 2 sigma inside the edges, so most of it is seen. */
static void prim_blob(synth_canvas *cv, nn_rng *r, const synth_draw *d)
{
	double sigma = fmin(cv->h, cv->w) * uniform(r, 0.05, 0.15) * d->scale;
	double ox = place(r, -2 * sigma, 2 * sigma, 0, cv->w - 1);
	double oy = place(r, -2 * sigma, 2 * sigma, 0, cv->h - 1);

	draw_blob(cv, ox, oy, fmax(sigma, 0.7), d->amp);
}

/* Stripes no finer than 4 pixels a period, so none alias at 45 degrees. */
static void prim_grating(synth_canvas *cv, nn_rng *r, double theta)
{
	double period = 4.0 + uniform(r, 0.0, 0.25) * fmin(cv->h, cv->w);

	draw_grating(cv, theta, period, uniform(r, 0.0, 2.0 * M_PI));
}

/* Draws the primitive of class label (with its random turn, for the kinds
 * that have one). */
static void draw_class(synth_canvas *cv, nn_rng *r, const synth_draw *d, int label)
{
	double jitter;

	if (label < NN_SYNTH_ARC) {
		prim_line(cv, r, d, (label - NN_SYNTH_LINE) * 22.5 * SYNTH_DEG);
	} else if (label < NN_SYNTH_CORNER) {
		jitter = uniform(r, -SYNTH_JITTER_DEG, SYNTH_JITTER_DEG);
		prim_arc(cv, r, d, (45.0 + (label - NN_SYNTH_ARC) * 90.0 + jitter) * SYNTH_DEG);
	} else if (label < NN_SYNTH_CIRCLE) {
		jitter = uniform(r, -SYNTH_JITTER_DEG, SYNTH_JITTER_DEG);
		prim_corner(cv, r, d,
		            (45.0 + (label - NN_SYNTH_CORNER) * 90.0 + jitter) * SYNTH_DEG);
	} else if (label == NN_SYNTH_CIRCLE) {
		prim_circle(cv, r, d);
	} else if (label == NN_SYNTH_BLOB) {
		prim_blob(cv, r, d);
	} else {
		prim_grating(cv, r, (label - NN_SYNTH_GRATING) * 45.0 * SYNTH_DEG);
	}
}

/* A faint, smaller line, arc, corner, circle or blob at any orientation,
 * drawn before the main primitive so that the main one wins where they meet. */
static void draw_distractor(synth_canvas *cv, nn_rng *r)
{
	synth_draw d = { SYNTH_DISTRACT_SCALE, (float)uniform(r, 0.2, 0.35) };
	double a = uniform(r, 0.0, 2.0 * M_PI);

	switch (nn_rng_below(r, 5)) {
	case 0: prim_line(cv, r, &d, a); break;
	case 1: prim_arc(cv, r, &d, a); break;
	case 2: prim_corner(cv, r, &d, a); break;
	case 3: prim_circle(cv, r, &d); break;
	default: prim_blob(cv, r, &d); break;
	}
}

/* Two approximately standard normal values from one 64-bit draw: each the
 * sum of four byte-sized uniforms (Irwin-Hall), within a few percent of a
 * gaussian for pixel noise and many times cheaper than Box-Muller.  The sum
 * takes 1021 values, far finer than a byte of noise can show. */
static void fast_normal2(nn_rng *r, float *a, float *b)
{
	uint64_t v = nn_rng_next(r);
	const float scale = 1.7320508f / 256.0f; /* sqrt(12 / 4) per unit uniform */
	uint32_t s0 = (uint32_t)(v & 0xff) + (uint32_t)((v >> 8) & 0xff) +
	              (uint32_t)((v >> 16) & 0xff) + (uint32_t)((v >> 24) & 0xff);
	uint32_t s1 = (uint32_t)((v >> 32) & 0xff) + (uint32_t)((v >> 40) & 0xff) +
	              (uint32_t)((v >> 48) & 0xff) + (uint32_t)(v >> 56);

	/* Each byte is uniform on {0, ..., 255}, mean 127.5. */
	*a = ((float)s0 - 510.0f) * scale;
	*b = ((float)s1 - 510.0f) * scale;
}

/* Rounds an intensity to the nearest byte, saturating. */
static uint8_t quantize(float v)
{
	return (uint8_t)clampf(v + 0.5f, 0.0f, 255.0f);
}

/* Draws image number index of class label into dst, using plane (h * w
 * floats) as scratch.
 * dst: (c, h, w) bytes */
static void synth_image(uint8_t *dst, int label, int c, int h, int w,
                        uint64_t seed, uint64_t index, float *plane)
{
	synth_canvas cv = { plane, h, w };
	synth_draw main_draw = { 1.0, 1.0f };
	float fg[NN_MAX_CHANNELS], bg, sigma;
	size_t hw = (size_t)h * w;
	nn_rng r;

	nn_rng_seed(&r, synth_mix(seed ^ synth_mix(index)));
	bg = (float)uniform(&r, 0.0, 80.0);
	sigma = (float)uniform(&r, 10.0, 20.0);
	fg[0] = (float)uniform(&r, 150.0, 255.0);
	/* A colour: every channel brighter than the background, one at full. */
	if (c > 1) {
		int full = (int)nn_rng_below(&r, (uint32_t)c);
		float top = fg[0];

		for (int ch = 0; ch < c; ch++)
			fg[ch] = ch == full ? top
			                    : bg + (top - bg) * (float)uniform(&r, 0.3, 1.0);
	}
	memset(plane, 0, hw * sizeof *plane);
	if (label < NN_SYNTH_GRATING && nn_rng_uniform(&r) < SYNTH_DISTRACT_P)
		draw_distractor(&cv, &r);
	draw_class(&cv, &r, &main_draw, label);
	for (int ch = 0; ch < c; ch++) {
		float span = fg[ch] - bg;
		uint8_t *out = dst + (size_t)ch * hw;

		for (size_t k = 0; k < hw; k += 2) {
			float e0, e1;

			fast_normal2(&r, &e0, &e1);
			out[k] = quantize(bg + plane[k] * span + sigma * e0);
			if (k + 1 < hw)
				out[k + 1] = quantize(bg + plane[k + 1] * span + sigma * e1);
		}
	}
}

/* Labels 0, 1, ..., classes - 1, 0, 1, ... in a seeded shuffle, so every
 * class gets its share exactly and the order says nothing. */
static void synth_labels(uint8_t *labels, int n, uint64_t seed)
{
	nn_rng r;

	for (int i = 0; i < n; i++)
		labels[i] = (uint8_t)(i % NN_SYNTH_CLASSES);
	nn_rng_seed(&r, synth_mix(seed));
	for (int i = n - 1; i > 0; i--) {
		int j = (int)nn_rng_below(&r, (uint32_t)i + 1);
		uint8_t t = labels[i];

		labels[i] = labels[j];
		labels[j] = t;
	}
}

int nn_synth_dataset(nn_dataset *ds, int n, int c, int h, int w, uint64_t seed,
                     char *err, size_t errlen)
{
	size_t chw = (size_t)c * h * w;
	int failed = 0;

	if (ds == NULL)
		return graft_errf(err, errlen, GRAFT_EINVAL, "synth: no dataset to fill");
	memset(ds, 0, sizeof *ds);
	if (n < 1)
		return graft_errf(err, errlen, GRAFT_EINVAL, "synth: %d images asked for, need >= 1", n);
	if (c < 1 || c > NN_MAX_CHANNELS)
		return graft_errf(err, errlen, GRAFT_EINVAL, "synth: %d channels, need 1..%d", c,
		            NN_MAX_CHANNELS);
	if (h < NN_SYNTH_MIN_SIDE || h > NN_SYNTH_MAX_SIDE || w < NN_SYNTH_MIN_SIDE ||
	    w > NN_SYNTH_MAX_SIDE)
		return graft_errf(err, errlen, GRAFT_EINVAL, "synth: size %dx%d, need sides in %d..%d",
		            h, w, NN_SYNTH_MIN_SIDE, NN_SYNTH_MAX_SIDE);
	ds->pixels = malloc((size_t)n * chw);
	ds->labels = malloc((size_t)n);
	if (ds->pixels == NULL || ds->labels == NULL) {
		nn_dataset_free(ds);
		return graft_errf(err, errlen, GRAFT_ENOMEM, "synth: out of memory for %d images", n);
	}
	ds->n = n;
	ds->c = c;
	ds->h = h;
	ds->w = w;
	ds->classes = NN_SYNTH_CLASSES;
	synth_labels(ds->labels, n, seed);

#pragma omp parallel reduction(| : failed)
	{
		float *plane = malloc((size_t)h * w * sizeof *plane);

		if (plane == NULL)
			failed = 1;
#pragma omp for schedule(static)
		for (int i = 0; i < n; i++)
			if (plane != NULL)
				synth_image(ds->pixels + (size_t)i * chw, ds->labels[i], c, h, w,
				            seed, (uint64_t)i, plane);
		free(plane);
	}
	if (failed) {
		nn_dataset_free(ds);
		return graft_errf(err, errlen, GRAFT_ENOMEM, "synth: out of memory for a %dx%d canvas",
		            h, w);
	}
	return 0;
}
