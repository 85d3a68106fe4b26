/*
 * test_patches.c - the photo-patch source (nn/patches.c) makes what it
 * claims: an exemplar patch comes from the photo its label names, a
 * rotation label is the turn applied, the same seed gives the same patches,
 * Debian's photos are found, and a photo too small or no photo at all is a
 * clear error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "nn/nn.h"
#include "search/search.h"
#include "tests/support/image_write.h"
#include "tests/support/scratch.h"

static void setup(void)
{
	scratch_make("patches");
}

TestSuite(patches, .init = setup, .fini = scratch_remove, .timeout = 120);

/* A 200 x 160 photo: RGB noise around (r, g, b), or for r < 0 a grey
 * vertical gradient, dark at the top. */
static const char *photo(const char *name, int r, int g, int b)
{
	static char path[700];
	uint8_t *px = malloc(200 * 160 * 3);
	uint64_t s = 1;
	for (int y = 0; y < 160; y++)
		for (int x = 0; x < 200; x++)
			for (int k = 0; k < 3; k++) {
				s = s * 6364136223846793005u + 1442695040888963407u;
				int noise = (int)(s >> 59) - 16, base = r < 0 ? y * 255 / 159 : (k ? k == 1 ? g : b : r);
				int v = base + (r < 0 ? 0 : noise);
				px[(y * 200 + x) * 3 + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
			}
	snprintf(path, sizeof(path), "%s", scratch_path(name));
	image_write_png(path, px, 200, 160, 3, 8);
	free(px);
	return path;
}

static double mean_of(const uint8_t *p, int x0, int y0, int x1, int y1, int w)
{
	double s = 0;
	for (int y = y0; y < y1; y++)
		for (int x = x0; x < x1; x++)
			s += p[y * w + x];
	return s / ((x1 - x0) * (y1 - y0));
}

Test(patches, an_exemplar_patch_comes_from_the_photo_its_label_names)
{
	char a[700], b[700], err[GRAFT_ERRLEN];
	snprintf(a, sizeof(a), "%s", photo("red.png", 200, 60, 40));
	snprintf(b, sizeof(b), "%s", photo("blue.png", 40, 60, 200));
	const char *files[] = { a, b };
	nn_dataset ds, again;
	nn_patch_opts o = { .images = files, .nimages = 2, .task = NN_PATCH_EXEMPLAR, .n = 400,
	                    .c = 3, .h = 16, .w = 16, .seed = 4 };
	cr_assert_eq(nn_patch_dataset(&ds, &o, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ds.classes, 2);
	int count[2] = { 0 };
	for (int i = 0; i < ds.n; i++) {
		const uint8_t *p = ds.pixels + (size_t)i * 3 * 256;
		double red = mean_of(p, 0, 0, 16, 16, 16), blue = mean_of(p + 512, 0, 0, 16, 16, 16);
		cr_assert(ds.labels[i] == 0 ? red > blue + 100 : blue > red + 100,
		          "patch %d labelled %d has red %.0f, blue %.0f", i, ds.labels[i], red, blue);
		count[ds.labels[i]]++;
	}
	cr_assert(count[0] > 100 && count[1] > 100, "%d and %d", count[0], count[1]);
	cr_assert_eq(nn_patch_dataset(&again, &o, err, sizeof(err)), 0, "%s", err);
	cr_assert(memcmp(ds.pixels, again.pixels, (size_t)ds.n * 768) == 0, "same seed, same patches");
	nn_dataset_free(&ds);
	nn_dataset_free(&again);
}

Test(patches, a_rotation_label_is_the_turn_applied)
{
	char err[GRAFT_ERRLEN];
	const char *files[] = { photo("gradient.png", -1, 0, 0) };
	nn_dataset ds;
	nn_patch_opts o = { .images = files, .nimages = 1, .task = NN_PATCH_ROTATION, .n = 400,
	                    .c = 1, .h = 16, .w = 16, .seed = 9 };
	cr_assert_eq(nn_patch_dataset(&ds, &o, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ds.classes, 4);
	/* Unturned, the gradient brightens downwards; a half turn upwards; a
	 * quarter turn one way or the other makes it run across. */
	int seen[4] = { 0 };
	double across[4] = { 0 };
	for (int i = 0; i < ds.n; i++) {
		const uint8_t *p = ds.pixels + (size_t)i * 256;
		double down = mean_of(p, 0, 12, 16, 16, 16) - mean_of(p, 0, 0, 16, 4, 16);
		double right = mean_of(p, 12, 0, 16, 16, 16) - mean_of(p, 0, 0, 4, 16, 16);
		int k = ds.labels[i];
		seen[k]++;
		if (k == 0)
			cr_assert(down > 3 && right < 1 && right > -1, "unturned: %.1f %.1f", down, right);
		if (k == 2)
			cr_assert(down < -3 && right < 1 && right > -1, "half: %.1f %.1f", down, right);
		if (k == 1 || k == 3) {
			cr_assert(down < 1 && down > -1 && (right > 3 || right < -3), "quarter: %.1f %.1f",
			          down, right);
			across[k] += right;
		}
	}
	for (int k = 0; k < 4; k++)
		cr_assert_gt(seen[k], 50, "rotation %d occurs %d times", k, seen[k]);
	cr_assert(across[1] * across[3] < 0, "the two quarter turns go opposite ways");
	nn_dataset_free(&ds);
}

Test(patches, debians_photos_are_found_and_make_patches)
{
	const char *dirs[] = { "/usr/share/backgrounds", "/usr/lib/python3/dist-packages/skimage/data",
	                       "/nonexistent" };
	char err[GRAFT_ERRLEN];
	nn_paths files = { 0 };
	cr_assert_eq(nn_patch_photos(dirs, 3, &files, err, sizeof(err)), 0,
	             "%s (deploy/install-deps.sh installs mate-backgrounds and python3-skimage)", err);
	cr_assert_geq(files.n, 20, "%d photos", files.n);
	for (int i = 0; i < files.n; i++)
		cr_assert(nn_image_is_image_name(files.p[i]), "%s", files.p[i]);
	nn_dataset ds;
	nn_patch_opts o = { .images = (const char *const *)files.p, .nimages = files.n,
	                    .task = NN_PATCH_EXEMPLAR, .n = 500, .c = 3, .h = 32, .w = 32, .seed = 1 };
	cr_assert_eq(nn_patch_dataset(&ds, &o, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ds.classes, files.n);
	nn_dataset_free(&ds);
	nn_paths_clear(&files);
}

Test(patches, a_photo_too_small_or_none_at_all_is_refused)
{
	char err[GRAFT_ERRLEN];
	nn_paths files = { 0 };
	const char *one[] = { photo("small.png", 100, 100, 100) };
	nn_dataset ds;
	nn_patch_opts o = { .images = one, .nimages = 1, .task = NN_PATCH_ROTATION, .n = 10,
	                    .c = 1, .h = 100, .w = 100 };
	cr_assert_eq(nn_patch_dataset(&ds, &o, err, sizeof(err)), GRAFT_EINVAL);
	cr_assert(strstr(err, "small.png is 200x160, too small for 100x100 patches"), "%s", err);
	o.nimages = 1;
	o.task = NN_PATCH_EXEMPLAR;
	o.h = o.w = 16;
	cr_assert_eq(nn_patch_dataset(&ds, &o, err, sizeof(err)), GRAFT_EINVAL);
	cr_assert(strstr(err, "need 2 or more"), "%s", err);
	const char *bad[] = { "/etc/hostname", one[0] };
	o.images = bad;
	o.nimages = 2;
	cr_assert_neq(nn_patch_dataset(&ds, &o, err, sizeof(err)), 0);
	cr_assert(strstr(err, "/etc/hostname"), "%s", err);
	const char *dirs[] = { "/etc/ssl" };
	cr_assert_eq(nn_patch_photos(dirs, 1, &files, err, sizeof(err)), GRAFT_EINVAL);
	cr_assert_eq(files.n, 0);
	cr_assert(strstr(err, "no PNG or JPEG photo under /etc/ssl"), "%s", err);
}

/* Each photo source, and the mixture, pretrains a graft of the target's
 * shape through the same cache as every source. */
Test(patches, the_photo_sources_and_the_mixture_pretrain_grafts)
{
	static const char *const sources[] = { "rotations", "exemplars", "mixture" };
	char err[GRAFT_ERRLEN], path[4096], sha[3][65];
	nn_dataset t;
	float mean[3] = { 0.4f, 0.4f, 0.4f }, std[3] = { 0.3f, 0.3f, 0.3f };
	int reused;
	nn_synth_dataset(&t, 64, 3, 16, 16, 1, NULL, 0);
	for (int i = 0; i < 3; i++) {
		search_graft_req r = { .source = sources[i], .target = &t, .target_mean = mean,
		                       .target_std = std, .layers = 1, .kernel = 3, .channels = 4,
		                       .steps = 5, .batch = 16, .lr = 0.05f, .seed = 1,
		                       .images = 3000, .cache_dir = scratch_path("cache") };
		cr_assert_eq(search_graft_obtain(&r, path, sizeof(path), sha[i], &reused, err,
		                                 sizeof(err)), 0, "%s: %s", sources[i], err);
		cr_assert_eq(reused, 0);
		for (int k = 0; k < i; k++)
			cr_assert_str_neq(sha[i], sha[k], "%s and %s made the same graft", sources[i],
			                  sources[k]);
	}
	nn_dataset_free(&t);
}
