/*
 * test_universal.c - the universal graft graft ships (nn/grafts/): the grey
 * and RGB files are the ones its README names and measured; source
 * "universal" puts the one for the target's channels in the cache without
 * pretraining; a module of another shape or images of other channels are
 * refused saying why; and on Fashion-MNIST, which it never saw, its channels
 * respond to the images (none dead, none constant).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "nn/nn.h"
#include "search/search.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"
#define README SEARCH_GRAFTS_DIR "/README.md"

static char cache[64];

static void setup(void)
{
	snprintf(cache, sizeof(cache), "/tmp/graft-universal-XXXXXX");
	cr_assert_not_null(mkdtemp(cache));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", cache);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(universal, .init = setup, .fini = teardown, .timeout = 120);

/* The value of README's line "    KEY  VALUE" into out. */
static void readme_value(const char *key, char *out, size_t len)
{
	FILE *f = fopen(README, "r");
	char line[512], want[64];
	int found = 0;

	cr_assert_not_null(f, "cannot open %s", README);
	snprintf(want, sizeof(want), "    %s ", key);
	while (!found && fgets(line, sizeof(line), f))
		if (!strncmp(line, want, strlen(want))) {
			const char *v = line + strlen(want);
			v += strspn(v, " ");
			snprintf(out, len, "%.*s", (int)strcspn(v, " \n"), v);
			found = 1;
		}
	fclose(f);
	cr_assert(found, "%s has no line '    %s ...'", README, key);
}

static void tensors_sha(const char *path, char sha[65])
{
	char err[GRAFT_ERRLEN];
	nn_weights w;
	cr_assert_eq(nn_safetensors_read(path, &w, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(nn_tensors_sha256(w.t, w.n, sha), 0);
	nn_weights_free(&w);
}

static void count_progress(const nn_progress *p, void *ctx)
{
	(void)p;
	++*(int *)ctx;
}

static search_graft_req request(const nn_dataset *t, const float *mean, const float *std,
                                int *progress)
{
	return (search_graft_req){ .source = "universal", .target = t, .target_mean = mean,
	                           .target_std = std, .layers = 2, .kernel = 3, .channels = 16,
	                           .steps = 1500, .batch = 128, .lr = 0.05f, .seed = 1,
	                           .cache_dir = cache, .progress = count_progress,
	                           .ctx = progress };
}

/* One shipped file: the sha256 README gives under key, from README's source,
 * for images of c channels, of the shape source "universal" asks for. */
static void expect_shipped(const char *path, const char *key, int c, char steps[32])
{
	char err[GRAFT_ERRLEN], sha[65], want_sha[80], want_source[64], input[8];
	nn_weights w;

	cr_assert_eq(nn_safetensors_read(path, &w, err, sizeof(err)), 0, "%s", err);
	readme_value(key, want_sha, sizeof(want_sha));
	readme_value("source", want_source, sizeof(want_source));
	cr_assert_eq(nn_tensors_sha256(w.t, w.n, sha), 0);
	cr_assert_str_eq(sha, want_sha, "%s is not the one README measured", path);
	cr_assert_str_eq(nn_weights_meta(&w, "format"), "graft-module/1");
	cr_assert_str_eq(nn_weights_meta(&w, "source"), want_source);
	cr_assert_str_eq(nn_weights_meta(&w, "layers"), "3x16,3x16");
	snprintf(input, sizeof(input), "%dx", c);
	cr_assert_eq(strncmp(nn_weights_meta(&w, "input"), input, 2), 0, "%s is for %s", path,
	             nn_weights_meta(&w, "input"));
	const nn_tensor *first = nn_weights_find(&w, "graft.0.conv.weight");
	cr_assert_not_null(first);
	cr_assert(first->ndim == 4 && first->shape[0] == 16 && first->shape[1] == c);
	snprintf(steps, 32, "%s", nn_weights_meta(&w, "steps"));
	nn_weights_free(&w);
}

Test(universal, the_shipped_files_are_the_ones_its_readme_names)
{
	char grey_steps[32], rgb_steps[32];
	expect_shipped(SEARCH_UNIVERSAL_GREY, "grey", 1, grey_steps);
	expect_shipped(SEARCH_UNIVERSAL_RGB, "rgb", 3, rgb_steps);
	cr_assert_str_eq(grey_steps, rgb_steps, "made with different budgets");
}

Test(universal, grey_images_get_the_grey_one_and_nothing_is_pretrained)
{
	char err[GRAFT_ERRLEN], path[4200], again[4200], sha[65], sha2[65], want[65];
	float mean = 0.3f, std = 0.3f;
	int progress = 0, reused = -1;
	nn_dataset t;

	nn_synth_dataset(&t, 64, 1, 28, 28, 1, NULL, 0);
	search_graft_req r = request(&t, &mean, &std, &progress);
	cr_assert_eq(search_graft_obtain(&r, path, sizeof(path), sha, &reused, err, sizeof(err)), 0,
	             "%s", err);
	cr_assert_eq(progress, 0, "the universal graft was pretrained (%d progress calls)",
	             progress);
	cr_assert_eq(reused, 0);
	tensors_sha(SEARCH_UNIVERSAL_GREY, want);
	cr_assert_str_eq(sha, want, "not the shipped grey graft");
	tensors_sha(path, want);
	cr_assert_str_eq(sha, want, "the file in the cache is not what was reported");
	char prefix[128];
	snprintf(prefix, sizeof(prefix), "%s/grafts/", cache);
	cr_assert_eq(strncmp(path, prefix, strlen(prefix)), 0, "%s is not in the cache", path);

	cr_assert_eq(search_graft_obtain(&r, again, sizeof(again), sha2, &reused, err, sizeof(err)),
	             0, "%s", err);
	cr_assert_eq(reused, 1);
	cr_assert_str_eq(sha2, sha);
	cr_assert_str_eq(again, path);
	nn_dataset_free(&t);
}

Test(universal, rgb_images_get_the_rgb_one)
{
	char err[GRAFT_ERRLEN], path[4200], sha[65], want[65];
	float mean[3] = { 0.3f, 0.3f, 0.3f }, std[3] = { 0.3f, 0.3f, 0.3f };
	int progress = 0, reused;
	nn_dataset t;

	nn_synth_dataset(&t, 64, 3, 32, 32, 1, NULL, 0);
	search_graft_req r = request(&t, mean, std, &progress);
	cr_assert_eq(search_graft_obtain(&r, path, sizeof(path), sha, &reused, err, sizeof(err)), 0,
	             "%s", err);
	cr_assert_eq(progress, 0);
	tensors_sha(SEARCH_UNIVERSAL_RGB, want);
	cr_assert_str_eq(sha, want, "not the shipped RGB graft");
	nn_dataset_free(&t);
}

Test(universal, another_shape_or_other_channels_are_refused_saying_why)
{
	char err[GRAFT_ERRLEN], path[4200], sha[65], cmd[256];
	float mean[2] = { 0.3f, 0.3f }, std[2] = { 0.3f, 0.3f };
	int progress = 0, reused;
	nn_dataset t;

	nn_synth_dataset(&t, 64, 1, 28, 28, 1, NULL, 0);
	search_graft_req r = request(&t, mean, std, &progress);
	r.channels = 8;
	cr_assert_eq(search_graft_obtain(&r, path, sizeof(path), sha, &reused, err, sizeof(err)),
	             GRAFT_EINVAL);
	cr_assert(strstr(err, "the universal graft is 3x16,3x16") && strstr(err, "not 3x8,3x8"),
	          "%s", err);
	r.channels = 16;
	r.layers = 3;
	cr_assert_eq(search_graft_obtain(&r, path, sizeof(path), sha, &reused, err, sizeof(err)),
	             GRAFT_EINVAL);
	cr_assert(strstr(err, "graft.layers"), "%s", err);
	nn_dataset_free(&t);

	nn_synth_dataset(&t, 64, 2, 28, 28, 1, NULL, 0);
	r = request(&t, mean, std, &progress);
	cr_assert_eq(search_graft_obtain(&r, path, sizeof(path), sha, &reused, err, sizeof(err)),
	             GRAFT_EINVAL);
	cr_assert(strstr(err, "grey or RGB images; these have 2 channels"), "%s", err);
	nn_dataset_free(&t);
	/* Nothing half-made is left where the cache would look. */
	snprintf(cmd, sizeof(cmd), "test -z \"$(find %s -name '*.part')\"", cache);
	cr_assert_eq(system(cmd), 0, "a .part file was left in %s", cache);
}

/* The universal graft never saw Fashion-MNIST: grafted onto a network for
 * its images, each of its 16 output channels must respond to them (not dead
 * behind its ReLU, not the same value everywhere). */
Test(universal, its_channels_respond_to_fashion_mnist)
{
	char err[GRAFT_ERRLEN], path[4200], sha[65];
	float mean, std;
	int progress = 0, reused, c, h, w;
	nn_dataset t;
	nn_net *net = NULL;
	nn_arch a;

	cr_assert_eq(nn_dataset_load_dir(&t, FMNIST, 1, err, sizeof(err)), 0,
	             "%s (deploy/install-deps.sh installs dataset-fashion-mnist)", err);
	t.n = 512;
	nn_dataset_stats(&t, &mean, &std);
	search_graft_req r = request(&t, &mean, &std, &progress);
	cr_assert_eq(search_graft_obtain(&r, path, sizeof(path), sha, &reused, err, sizeof(err)), 0,
	             "%s", err);
	nn_arch_defaults(&a);
	a.in_c = 1;
	a.in_h = a.in_w = 28;
	a.classes = 10;
	a.stem_kernel = 3;
	a.stem_channels = 8;
	a.nblocks = 0;
	search_graft_section(&r, sha, &a);
	cr_assert_eq(nn_net_from_arch(&net, &a, 64, 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(nn_graft_load(net, path, sha, sha, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(nn_net_graft_shape(net, &c, &h, &w), 1);
	cr_assert_eq(c, 16);
	size_t per = nn_graft_feature_size(net), hw = (size_t)h * w;
	nn_half *half = malloc(sizeof(nn_half) * per * t.n);
	float *f = malloc(sizeof(float) * per * t.n);
	cr_assert(half && f);
	cr_assert_eq(nn_graft_features(net, &t, &mean, &std, half), 0);
	nn_half_to_floats(half, f, per * t.n);
	int alive = 0;
	for (int k = 0; k < c; k++) {
		double s = 0, s2 = 0;
		size_t n = 0, active = 0;
		for (int i = 0; i < t.n; i++)
			for (size_t p = 0; p < hw; p++, n++) {
				double v = f[(size_t)i * per + (size_t)k * hw + p];
				s += v;
				s2 += v * v;
				active += v > 0;
			}
		double var = s2 / n - (s / n) * (s / n);
		alive += var > 1e-4 && active > n / 100;
	}
	cr_assert_eq(alive, c, "%d of %d channels respond to Fashion-MNIST", alive, c);
	free(half);
	free(f);
	nn_net_free(net);
	nn_dataset_free(&t);
}
