/*
 * test_textures.c - the textures source (nn/textures.c) makes what it
 * claims: balanced classes, the same images from the same seed, no flat
 * image; the coarse scale of every family has a lower spatial frequency
 * than its fine one; stripes have one orientation where noise has none;
 * the 16 classes are told apart by a nearest-centroid classifier on
 * features that ignore angle and phase; bad sizes are refused; and a graft
 * is pretrained from them once, then reused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "nn/nn.h"
#include "search/search.h"

#define SIDE 28
#define PIX (SIDE * SIDE)
#define RADII 14 /* radial frequency bins, one per cycle per image */
#define ANGLES 12 /* orientation bins of 15 degrees over a half turn */

TestSuite(textures, .timeout = 120);

static void make(nn_dataset *ds, int n, int c, uint64_t seed)
{
	char err[GRAFT_ERRLEN];
	cr_assert_eq(nn_texture_dataset(ds, n, c, SIDE, SIDE, seed, err, sizeof(err)), 0, "%s",
	             err);
}

/* The power spectrum of one grey image less its mean, summed into radial
 * bins (radius in cycles per image, 1..RADII) and orientation bins: what
 * a texture is, whatever its angle and phase. */
typedef struct spectrum {
	double radial[RADII], angular[ANGLES], total, mean_freq;
} spectrum;

static void spectrum_of(const uint8_t *p, spectrum *s)
{
	double x[PIX], mean = 0;
	static double cs[SIDE][SIDE], sn[SIDE][SIDE];
	static int ready;
	if (!ready) {
		for (int k = 0; k < SIDE; k++)
			for (int n = 0; n < SIDE; n++) {
				cs[k][n] = cos(2 * M_PI * k * n / SIDE);
				sn[k][n] = sin(2 * M_PI * k * n / SIDE);
			}
		ready = 1;
	}
	for (int i = 0; i < PIX; i++)
		mean += p[i] / (double)PIX;
	for (int i = 0; i < PIX; i++)
		x[i] = p[i] - mean;
	memset(s, 0, sizeof(*s));
	/* A DFT of rows, then of columns: 28^3 each, cheap enough. */
	double re[PIX], im[PIX];
	for (int y = 0; y < SIDE; y++)
		for (int kx = 0; kx < SIDE; kx++) {
			double a = 0, b = 0;
			for (int n = 0; n < SIDE; n++) {
				a += x[y * SIDE + n] * cs[kx][n];
				b -= x[y * SIDE + n] * sn[kx][n];
			}
			re[y * SIDE + kx] = a;
			im[y * SIDE + kx] = b;
		}
	double wsum = 0;
	for (int ky = 0; ky < SIDE; ky++)
		for (int kx = 0; kx < SIDE; kx++) {
			double a = 0, b = 0;
			for (int n = 0; n < SIDE; n++) {
				a += re[n * SIDE + kx] * cs[ky][n] + im[n * SIDE + kx] * sn[ky][n];
				b += im[n * SIDE + kx] * cs[ky][n] - re[n * SIDE + kx] * sn[ky][n];
			}
			int fx = kx <= SIDE / 2 ? kx : kx - SIDE, fy = ky <= SIDE / 2 ? ky : ky - SIDE;
			double r = sqrt(fx * fx + fy * fy), pw = a * a + b * b;
			if (r < 0.5 || r > RADII + 0.5)
				continue;
			int rb = (int)(r + 0.5) - 1;
			s->radial[rb < RADII ? rb : RADII - 1] += pw;
			double ang = atan2(fy, fx);
			if (ang < 0)
				ang += M_PI;
			int ab = (int)(ang / M_PI * ANGLES);
			s->angular[ab < ANGLES ? ab : ANGLES - 1] += pw;
			s->total += pw;
			wsum += pw * r;
		}
	s->mean_freq = s->total > 0 ? wsum / s->total : 0;
}

/* The largest share of the power in two neighbouring orientation bins
 * (30 degrees): near 1 for one orientation, 1/6 for none. */
static double orientedness(const spectrum *s)
{
	double best = 0;
	for (int a = 0; a < ANGLES; a++) {
		double v = s->angular[a] + s->angular[(a + 1) % ANGLES];
		best = v > best ? v : best;
	}
	return s->total > 0 ? best / s->total : 0;
}

Test(textures, balanced_classes_and_the_same_images_from_the_same_seed)
{
	nn_dataset a, b, c;
	make(&a, 1600, 1, 7);
	make(&b, 1600, 1, 7);
	make(&c, 1600, 1, 8);
	cr_assert_eq(a.classes, NN_TEXTURE_CLASSES);
	int count[NN_TEXTURE_CLASSES] = { 0 };
	for (int i = 0; i < a.n; i++)
		count[a.labels[i]]++;
	for (int k = 0; k < NN_TEXTURE_CLASSES; k++)
		cr_assert_eq(count[k], 100, "class %d has %d of 1,600 images", k, count[k]);
	cr_assert(memcmp(a.pixels, b.pixels, (size_t)a.n * PIX) == 0 &&
	          memcmp(a.labels, b.labels, (size_t)a.n) == 0, "the same seed, the same images");
	cr_assert(memcmp(a.pixels, c.pixels, (size_t)a.n * PIX) != 0, "another seed, others");
	cr_assert(memcmp(a.labels, c.labels, (size_t)a.n) != 0, "and another order");
	for (int i = 0; i < a.n; i++) {
		const uint8_t *p = a.pixels + (size_t)i * PIX;
		int lo = 255, hi = 0;
		for (int k = 0; k < PIX; k++) {
			lo = p[k] < lo ? p[k] : lo;
			hi = p[k] > hi ? p[k] : hi;
		}
		cr_assert_gt(hi - lo, 40, "image %d (class %d) is flat (%d..%d)", i, a.labels[i], lo,
		             hi);
	}
	nn_dataset_free(&a);
	nn_dataset_free(&b);
	nn_dataset_free(&c);
}

Test(textures, every_family_comes_in_a_fine_and_a_coarse_scale)
{
	nn_dataset ds;
	make(&ds, 3200, 1, 3);
	double freq[NN_TEXTURE_CLASSES] = { 0 }, orient[NN_TEXTURE_CLASSES] = { 0 };
	int count[NN_TEXTURE_CLASSES] = { 0 };
	for (int i = 0; i < ds.n; i++) {
		spectrum s;
		spectrum_of(ds.pixels + (size_t)i * PIX, &s);
		freq[ds.labels[i]] += s.mean_freq;
		orient[ds.labels[i]] += orientedness(&s);
		count[ds.labels[i]]++;
	}
	for (int k = 0; k < NN_TEXTURE_CLASSES; k++) {
		freq[k] /= count[k];
		orient[k] /= count[k];
		fprintf(stderr, "textures: %-8s %-6s mean frequency %5.2f cycles/image, "
		        "orientedness %.2f\n", nn_texture_family(k / 2), k % 2 ? "coarse" : "fine",
		        freq[k], orient[k]);
	}
	for (int f = 0; f < NN_TEXTURE_FAMILIES; f++)
		cr_assert_gt(freq[2 * f], 1.3 * freq[2 * f + 1],
		             "%s: fine %.2f cycles per image, coarse %.2f: not two scales",
		             nn_texture_family(f), freq[2 * f], freq[2 * f + 1]);
	/* A grating has one orientation; value noise none (though a coarse
	 * one, a few lattice cells across an image, has few frequencies to
	 * spread its power over, so some by chance). */
	for (int k = 0; k < 2; k++) {
		cr_assert_gt(orient[k], 0.75, "stripes: %.2f of the power in one orientation",
		             orient[k]);
		cr_assert_lt(orient[8 + k], orient[k] / 1.8, "noise: %.2f of the power in one "
		             "orientation, stripes %.2f", orient[8 + k], orient[k]);
	}
	nn_dataset_free(&ds);
}

/* Features that ignore angle and phase: the radial spectrum's shares, the
 * orientedness, and the spread of grey levels about the median (lines on
 * a background against half-and-half fields). */
static void features(const uint8_t *p, double *out)
{
	spectrum s;
	spectrum_of(p, &s);
	for (int r = 0; r < RADII; r++)
		out[r] = s.total > 0 ? s.radial[r] / s.total : 0;
	out[RADII] = orientedness(&s);
	int hist[256] = { 0 }, med = 0, lo = 255, hi = 0;
	for (int k = 0; k < PIX; k++) {
		hist[p[k]]++;
		lo = p[k] < lo ? p[k] : lo;
		hi = p[k] > hi ? p[k] : hi;
	}
	for (int acc = 0; acc < PIX / 2; med++)
		acc += hist[med];
	/* Where the median sits between the darkest and lightest: near an end
	 * for thin lines or dots, in the middle for stripes and checks. */
	double m = hi > lo ? (double)(med - 1 - lo) / (hi - lo) : 0.5;
	out[RADII + 1] = fabs(m - 0.5);
}

#define NF (RADII + 2)

Test(textures, the_classes_are_told_apart_far_above_chance)
{
	nn_dataset ds;
	make(&ds, 4000, 1, 5);
	int nc = ds.classes, ntrain = 3200, right = 0, count[NN_TEXTURE_CLASSES] = { 0 };
	double cent[NN_TEXTURE_CLASSES][NF] = { { 0 } }, x[NF];
	for (int i = 0; i < ntrain; i++) {
		features(ds.pixels + (size_t)i * PIX, x);
		for (int k = 0; k < NF; k++)
			cent[ds.labels[i]][k] += x[k];
		count[ds.labels[i]]++;
	}
	for (int c = 0; c < nc; c++)
		for (int k = 0; k < NF; k++)
			cent[c][k] /= count[c];
	for (int i = ntrain; i < ds.n; i++) {
		features(ds.pixels + (size_t)i * PIX, x);
		int best = 0;
		double bd = INFINITY;
		for (int c = 0; c < nc; c++) {
			double d = 0;
			for (int k = 0; k < NF; k++)
				d += (x[k] - cent[c][k]) * (x[k] - cent[c][k]);
			if (d < bd) {
				bd = d;
				best = c;
			}
		}
		right += best == ds.labels[i];
	}
	double acc = (double)right / (ds.n - ntrain), chance = 1.0 / nc;
	fprintf(stderr, "textures: nearest centroid %.3f on %d classes (chance %.3f)\n", acc, nc,
	        chance);
	cr_assert_gt(acc, 8 * chance, "%.3f is not far above chance (%.3f)", acc, chance);
	nn_dataset_free(&ds);
}

/* Pearson's correlation of two planes. */
static double correlation(const uint8_t *a, const uint8_t *b)
{
	double ma = 0, mb = 0, ab = 0, aa = 0, bb = 0;
	for (int k = 0; k < PIX; k++) {
		ma += a[k] / (double)PIX;
		mb += b[k] / (double)PIX;
	}
	for (int k = 0; k < PIX; k++) {
		ab += (a[k] - ma) * (b[k] - mb);
		aa += (a[k] - ma) * (a[k] - ma);
		bb += (b[k] - mb) * (b[k] - mb);
	}
	return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

/* In colour every channel draws the same texture, with the same polarity:
 * its pixels go with the first channel's. */
Test(textures, in_colour_every_channel_keeps_the_texture)
{
	nn_dataset ds;
	make(&ds, 320, 3, 9);
	cr_assert_eq(ds.c, 3);
	double sum = 0, least = 1;
	for (int i = 0; i < ds.n; i++)
		for (int k = 1; k < 3; k++) {
			const uint8_t *img = ds.pixels + (size_t)i * 3 * PIX;
			double r = correlation(img, img + (size_t)k * PIX);
			sum += r / (2.0 * ds.n);
			least = r < least ? r : least;
		}
	fprintf(stderr, "textures: channels' correlation with the first: mean %.2f, least %.2f\n",
	        sum, least);
	cr_assert_gt(least, 0.0, "a channel's texture is inverted or missing (r = %.2f)", least);
	cr_assert_gt(sum, 0.7, "the channels' textures differ (mean r = %.2f)", sum);
	nn_dataset_free(&ds);
}

Test(textures, a_bad_size_is_refused_saying_why)
{
	char err[GRAFT_ERRLEN];
	nn_dataset ds;
	cr_assert_eq(nn_texture_dataset(&ds, 10, 1, 4, 28, 1, err, sizeof(err)), GRAFT_EINVAL);
	cr_assert(strstr(err, "sides 8..1024"), "%s", err);
	cr_assert_null(ds.pixels);
	cr_assert_eq(nn_texture_dataset(&ds, 0, 1, 28, 28, 1, err, sizeof(err)), GRAFT_EINVAL);
	cr_assert(strstr(err, "at least one"), "%s", err);
	cr_assert_null(nn_texture_family(NN_TEXTURE_FAMILIES));
}

/* Source "textures" pretrains a graft of the target's shape, kept in the
 * cache like every source. */
Test(textures, a_graft_pretrained_on_textures_is_made_once_then_reused)
{
	char err[GRAFT_ERRLEN], path[4096], sha[65], again[65], other[65];
	char cache[] = "/tmp/graft-textures-XXXXXX";
	nn_dataset t;
	float mean = 0.3f, std = 0.3f;
	int reused;
	cr_assert_not_null(mkdtemp(cache));
	nn_synth_dataset(&t, 64, 1, 16, 16, 1, NULL, 0);
	search_graft_req r = { .source = "textures", .target = &t, .target_mean = &mean,
	                       .target_std = &std, .layers = 2, .kernel = 3, .channels = 4,
	                       .steps = 20, .batch = 16, .lr = 0.05f, .seed = 1,
	                       .images = 3000, .cache_dir = cache };
	cr_assert_eq(search_graft_obtain(&r, path, sizeof(path), sha, &reused, err, sizeof(err)), 0,
	             "%s", err);
	cr_assert_eq(reused, 0);
	cr_assert_eq(search_graft_obtain(&r, path, sizeof(path), again, &reused, err, sizeof(err)),
	             0, "%s", err);
	cr_assert_eq(reused, 1);
	cr_assert_str_eq(sha, again);
	r.source = "synthetic";
	cr_assert_eq(search_graft_obtain(&r, path, sizeof(path), other, &reused, err, sizeof(err)),
	             0, "%s", err);
	cr_assert_str_neq(sha, other, "textures and primitives make different grafts");
	nn_dataset_free(&t);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", cache);
	cr_assert_eq(system(cmd), 0);
}
