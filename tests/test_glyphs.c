/*
 * test_glyphs.c - the glyph source (nn/glyphs.c) makes what it claims: one
 * class per character, the classes told apart by a nearest-centroid
 * classifier far above chance, the same images from the same seed, fonts
 * split into two fixed halves, and clear errors for a character no font
 * has or a file that is no font.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "nn/nn.h"
#include "search/search.h"

#define FONTS "/usr/share/fonts/truetype"

static nn_paths fonts;

static void setup(void)
{
	char err[GRAFT_ERRLEN];
	cr_assert_eq(nn_glyph_fonts(FONTS, 0, &fonts, err, sizeof(err)), 0,
	             "%s (deploy/install-deps.sh installs fonts-noto-core)", err);
}

static void teardown(void)
{
	nn_paths_clear(&fonts);
}

TestSuite(glyphs, .init = setup, .fini = teardown, .timeout = 120);

static void make(nn_dataset *ds, int n, uint64_t seed)
{
	char err[GRAFT_ERRLEN];
	nn_glyph_opts o = { .fonts = (const char *const *)fonts.p, .nfonts = fonts.n, .n = n, .c = 1,
	                    .h = 28, .w = 28, .seed = seed };
	cr_assert_eq(nn_glyph_dataset(ds, &o, err, sizeof(err)), 0, "%s", err);
}

Test(glyphs, one_class_per_character_and_the_same_images_from_the_same_seed)
{
	nn_dataset a, b, c;
	int nchars;
	nn_glyph_default_chars(&nchars);
	cr_assert_eq(nchars, 99);
	make(&a, 3000, 7);
	make(&b, 3000, 7);
	make(&c, 3000, 8);
	cr_assert_eq(a.classes, nchars);
	int seen[256] = { 0 }, distinct = 0;
	for (int i = 0; i < a.n; i++) {
		cr_assert_lt(a.labels[i], nchars);
		distinct += !seen[a.labels[i]]++;
	}
	cr_assert_eq(distinct, nchars, "every character occurs in 3,000 images");
	size_t bytes = (size_t)a.n * 28 * 28;
	cr_assert(memcmp(a.pixels, b.pixels, bytes) == 0 && memcmp(a.labels, b.labels, 3000) == 0,
	          "the same seed gives the same images");
	cr_assert(memcmp(a.pixels, c.pixels, bytes) != 0, "another seed, other images");
	/* Not blank: every image has ink, of either polarity. */
	for (int i = 0; i < a.n; i++) {
		const uint8_t *p = a.pixels + (size_t)i * 784;
		int lo = 255, hi = 0;
		for (int k = 0; k < 784; k++) {
			lo = p[k] < lo ? p[k] : lo;
			hi = p[k] > hi ? p[k] : hi;
		}
		cr_assert_gt(hi - lo, 40, "image %d is flat (%d..%d)", i, lo, hi);
	}
	nn_dataset_free(&a);
	nn_dataset_free(&b);
	nn_dataset_free(&c);
}

/* Each image as its distance from its own background (the median pixel):
 * the shape of the ink, whatever its polarity and grey levels. */
static void ink(const uint8_t *p, float *out)
{
	int hist[256] = { 0 }, med = 0;
	for (int k = 0; k < 784; k++)
		hist[p[k]]++;
	for (int acc = 0; acc < 392; med++)
		acc += hist[med];
	for (int k = 0; k < 784; k++)
		out[k] = fabsf((float)p[k] - (float)(med - 1));
}

Test(glyphs, the_classes_are_told_apart_far_above_chance)
{
	nn_dataset ds;
	make(&ds, 12000, 3);
	int nc = ds.classes, ntrain = 10000, right = 0;
	float *cent = calloc((size_t)nc * 784, sizeof(float)), x[784];
	int *count = calloc((size_t)nc, sizeof(int));
	for (int i = 0; i < ntrain; i++) {
		ink(ds.pixels + (size_t)i * 784, x);
		for (int k = 0; k < 784; k++)
			cent[ds.labels[i] * 784 + k] += x[k];
		count[ds.labels[i]]++;
	}
	for (int c = 0; c < nc; c++)
		for (int k = 0; k < 784; k++)
			cent[c * 784 + k] /= count[c] ? (float)count[c] : 1.0f;
	for (int i = ntrain; i < ds.n; i++) {
		ink(ds.pixels + (size_t)i * 784, x);
		int best = 0;
		double bd = INFINITY;
		for (int c = 0; c < nc; c++) {
			double d = 0;
			for (int k = 0; k < 784; k++)
				d += (x[k] - cent[c * 784 + k]) * (x[k] - cent[c * 784 + k]);
			if (d < bd) {
				bd = d;
				best = c;
			}
		}
		right += best == ds.labels[i];
	}
	double acc = (double)right / (ds.n - ntrain), chance = 1.0 / nc;
	fprintf(stderr, "glyphs: nearest centroid %.3f on %d classes (chance %.3f)\n", acc, nc,
	        chance);
	cr_assert_gt(acc, 8 * chance, "%.3f is not far above chance (%.3f)", acc, chance);
	free(cent);
	free(count);
	nn_dataset_free(&ds);
}

Test(glyphs, the_fonts_split_into_two_fixed_halves)
{
	char err[GRAFT_ERRLEN];
	nn_paths h1 = { 0 }, h2 = { 0 };
	cr_assert_eq(nn_glyph_fonts(FONTS, 1, &h1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(nn_glyph_fonts(FONTS, 2, &h2, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(h1.n + h2.n, fonts.n);
	cr_assert(h1.n > fonts.n / 4 && h2.n > fonts.n / 4, "%d and %d of %d", h1.n, h2.n, fonts.n);
	for (int i = 0; i < h1.n; i++)
		for (int k = 0; k < h2.n; k++)
			cr_assert_str_neq(h1.p[i], h2.p[k]);
	nn_paths_clear(&h1);
	nn_paths_clear(&h2);
}

Test(glyphs, a_character_no_font_has_or_a_file_that_is_no_font_is_refused)
{
	char err[GRAFT_ERRLEN];
	nn_paths none = { 0 };
	nn_dataset ds;
	const uint32_t odd[] = { 0x41, 0x10FFFD };
	nn_glyph_opts o = { .fonts = (const char *const *)fonts.p, .nfonts = fonts.n, .chars = odd,
	                    .nchars = 2, .n = 10, .c = 1, .h = 28, .w = 28 };
	cr_assert_eq(nn_glyph_dataset(&ds, &o, err, sizeof(err)), GRAFT_EINVAL);
	cr_assert(strstr(err, "no font given has U+10FFFD"), "%s", err);
	const char *not_font[] = { "/etc/hostname" };
	o = (nn_glyph_opts){ .fonts = not_font, .nfonts = 1, .n = 10, .c = 1, .h = 28, .w = 28 };
	cr_assert_eq(nn_glyph_dataset(&ds, &o, err, sizeof(err)), GRAFT_EIO);
	cr_assert(strstr(err, "/etc/hostname is not a font"), "%s", err);
	cr_assert_eq(nn_glyph_fonts("/etc/ssl", 0, &none, err, sizeof(err)), GRAFT_EINVAL);
	cr_assert_eq(none.n, 0);
	cr_assert(strstr(err, "no .ttf or .otf font under /etc/ssl"), "%s", err);
}

/* Source "glyphs" pretrains a graft of the target's shape from half the
 * fonts, kept in the cache like every source. */
Test(glyphs, a_graft_pretrained_on_glyphs_is_made_once_then_reused)
{
	char err[GRAFT_ERRLEN], path[4096], sha[65], again[65], cache[] = "/tmp/graft-glyphs-XXXXXX";
	nn_dataset t;
	float mean = 0.3f, std = 0.3f;
	int reused;
	cr_assert_not_null(mkdtemp(cache));
	nn_synth_dataset(&t, 64, 1, 16, 16, 1, NULL, 0);
	search_graft_req r = { .source = "glyphs", .target = &t, .target_mean = &mean,
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
	r.fonts_dir = "/etc/ssl";
	cr_assert_eq(search_graft_obtain(&r, path, sizeof(path), sha, &reused, err, sizeof(err)),
	             GRAFT_EINVAL);
	cr_assert(strstr(err, "no .ttf or .otf font"), "%s", err);
	nn_dataset_free(&t);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", cache);
	cr_assert_eq(system(cmd), 0);
}
