/*
 * test_folder.c - images and image folders: decoding PNG and JPEG, resizing,
 * a folder decoded into its graft-images/1 file (the same pixels as the IDX
 * files it was written from, in the documented order), the cache noticing a
 * change, and every kind of bad image and bad folder refused in a sentence
 * that names it (or skipped and counted).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utime.h>
#include <zlib.h>

#include "nn/nn.h"
#include "tests/support/image_write.h"
#include "tests/support/scratch.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

static void setup(void)
{
	scratch_make("folder");
}

TestSuite(folder, .init = setup, .fini = scratch_remove);

static nn_image plane(int w, int h, const uint8_t *px)
{
	return (nn_image){ .w = w, .h = h, .c = 1, .px = (uint8_t *)px };
}

Test(folder, resize_is_exact)
{
	/* The same size: the image itself. */
	uint8_t src[16], dst[16];
	for (int i = 0; i < 16; i++)
		src[i] = (uint8_t)(i * 17);
	nn_image img = plane(4, 4, src);
	cr_assert_eq(nn_image_resize_plane(&img, 0, dst, 4, 4), 0);
	cr_assert_arr_eq(dst, src, 16);
	/* Halving: the mean of each 2 x 2 block, rounded half up. */
	const uint8_t blocks[16] = { 0, 1, 10, 20, 2, 3, 30, 41, 5, 5, 0, 0, 5, 6, 0, 255 };
	img = plane(4, 4, blocks);
	cr_assert_eq(nn_image_resize_plane(&img, 0, dst, 2, 2), 0);
	cr_assert_eq(dst[0], 2);   /* 6 / 4 = 1.5 -> 2 */
	cr_assert_eq(dst[1], 25);  /* 101 / 4 = 25.25 */
	cr_assert_eq(dst[2], 5);   /* 21 / 4 = 5.25 */
	cr_assert_eq(dst[3], 64);  /* 255 / 4 = 63.75 */
	/* A third: 3 -> 1 is the mean of three, exactly (85 + 86 + 86 = 257 / 3). */
	const uint8_t three[3] = { 85, 86, 86 };
	img = plane(3, 1, three);
	cr_assert_eq(nn_image_resize_plane(&img, 0, dst, 1, 1), 0);
	cr_assert_eq(dst[0], 86);
	/* Growing 2 -> 4: centres at -1/4, 1/4, 3/4, 5/4 of the source, clamped. */
	const uint8_t two[2] = { 0, 100 };
	img = plane(2, 1, two);
	cr_assert_eq(nn_image_resize_plane(&img, 0, dst, 4, 1), 0);
	cr_assert_eq(dst[0], 0);
	cr_assert_eq(dst[1], 25);
	cr_assert_eq(dst[2], 75);
	cr_assert_eq(dst[3], 100);
	/* A constant image stays constant whatever the sizes, both ways mixed. */
	uint8_t flat[7 * 5], out[3 * 11];
	memset(flat, 77, sizeof flat);
	img = plane(7, 5, flat);
	cr_assert_eq(nn_image_resize_plane(&img, 0, out, 3, 11), 0);
	for (size_t i = 0; i < sizeof out; i++)
		cr_assert_eq(out[i], 77);
	/* One channel of an interleaved image. */
	const uint8_t rgb[4 * 3] = { 1, 100, 7, 3, 100, 7, 5, 100, 7, 7, 100, 7 };
	img = (nn_image){ .w = 2, .h = 2, .c = 3, .px = (uint8_t *)rgb };
	cr_assert_eq(nn_image_resize_plane(&img, 0, dst, 1, 1), 0);
	cr_assert_eq(dst[0], 4);
	cr_assert_eq(nn_image_resize_plane(&img, 1, dst, 1, 1), 0);
	cr_assert_eq(dst[0], 100);
}

Test(folder, png_and_jpeg_decode)
{
	char err[GRAFT_ERRLEN];
	uint8_t px[6 * 5 * 4];
	nn_image img;

	for (size_t i = 0; i < sizeof px; i++)
		px[i] = (uint8_t)(i * 7 + 3);
	/* Grey, grey + alpha, RGB, RGBA: grey stays grey, alpha is dropped. */
	for (int c = 1; c <= 4; c++) {
		const char *p = scratch_path("a.png");
		image_write_png(p, px, 6, 5, c, 8);
		cr_assert_eq(nn_image_read(p, 0, 0, &img, err, sizeof err), 0, "c %d: %s", c, err);
		cr_assert_eq(img.w, 6);
		cr_assert_eq(img.h, 5);
		cr_assert_eq(img.c, c <= 2 ? 1 : 3);
		for (int i = 0; i < 30; i++)
			for (int k = 0; k < img.c; k++)
				cr_assert_eq(img.px[i * img.c + k], px[i * c + k], "c %d pixel %d", c, i);
		nn_image_free(&img);
	}
	/* RGB to grey by luma, grey to RGB by copying. */
	image_write_png(scratch_path("rgb.png"), px, 6, 5, 3, 8);
	cr_assert_eq(nn_image_read(scratch_path("rgb.png"), 0, 0, &img, err, sizeof err), 0);
	cr_assert_eq(nn_image_to_channels(&img, 1), 0);
	cr_assert_eq(img.px[0], (299 * px[0] + 587 * px[1] + 114 * px[2] + 500) / 1000);
	cr_assert_eq(nn_image_to_channels(&img, 3), 0);
	cr_assert(img.px[3] == img.px[4] && img.px[4] == img.px[5]);
	nn_image_free(&img);
	/* A JPEG of a smooth image comes back close. */
	uint8_t smooth[64 * 64];
	for (int y = 0; y < 64; y++)
		for (int x = 0; x < 64; x++)
			smooth[y * 64 + x] = (uint8_t)(2 * x + y);
	image_write_jpeg(scratch_path("s.jpg"), smooth, 64, 64, 1, 95);
	cr_assert_eq(nn_image_read(scratch_path("s.jpg"), 0, 0, &img, err, sizeof err), 0, "%s", err);
	cr_assert(img.w == 64 && img.h == 64 && img.c == 1);
	double diff = 0;
	for (int i = 0; i < 64 * 64; i++)
		diff += abs(img.px[i] - smooth[i]);
	cr_assert_lt(diff / (64 * 64), 2.0);
	nn_image_free(&img);
	/* Stray bytes before the end marker (cameras write such files): a
	 * warning, not an error; the pixels are the same. */
	static uint8_t buf[1 << 16];
	size_t n = image_read_bytes(scratch_path("s.jpg"), buf, sizeof buf - 3);
	cr_assert(buf[n - 2] == 0xFF && buf[n - 1] == 0xD9);
	memmove(buf + n + 1, buf + n - 2, 2);
	buf[n - 2] = 0x11, buf[n - 1] = 0x22, buf[n] = 0x33;
	image_write_bytes(scratch_path("stray.jpg"), buf, n + 3);
	nn_image stray;
	cr_assert_eq(nn_image_read(scratch_path("stray.jpg"), 0, 0, &stray, err, sizeof err), 0,
	             "%s", err);
	cr_assert_eq(nn_image_read(scratch_path("s.jpg"), 0, 0, &img, err, sizeof err), 0);
	cr_assert_arr_eq(stray.px, img.px, 64 * 64);
	nn_image_free(&stray);
	nn_image_free(&img);
	/* Shrinking to 16 x 16: decoded at 1/4 in the DCT, never below the size. */
	cr_assert_eq(nn_image_read(scratch_path("s.jpg"), 16, 16, &img, err, sizeof err), 0);
	cr_assert(img.w == 16 && img.h == 16, "%dx%d", img.w, img.h);
	nn_image_free(&img);
	cr_assert_eq(nn_image_read(scratch_path("s.jpg"), 20, 16, &img, err, sizeof err), 0);
	cr_assert(img.w == 32 && img.h == 32, "%dx%d", img.w, img.h);
	nn_image_free(&img);
}

static nn_folder_opts opts(const char *dir, int c, int side)
{
	mkdir(scratch_path("cache"), 0755);
	return (nn_folder_opts){ .dir = dir, .c = c, .h = side, .w = side,
	                         .cache_dir = scratch_path("cache"), .threads = 2 };
}

Test(folder, same_pixels_as_the_idx_files_in_the_documented_order)
{
	char err[GRAFT_ERRLEN], path[1024];
	nn_folder_report rep;
	nn_dataset idx[2], got[2];
	static image_expect e[2][600];

	char root[512];
	snprintf(root, sizeof root, "%s", scratch_path("fmnist"));
	mkdir(root, 0755);
	cr_assert_eq(image_write_fashion(scratch_path("fmnist/train"), 0, 40, "png"), 400);
	cr_assert_eq(image_write_fashion(scratch_path("fmnist/test"), 1, 15, "png"), 150);
	FILE *f = fopen(scratch_path("fmnist/train/0_tshirt/README.txt"), "w");
	fputs("not an image\n", f);
	fclose(f);

	nn_folder_opts o = opts(root, 1, 28);
	cr_assert_eq(nn_folder_prepare(&o, path, sizeof path, &rep, err, sizeof err), 0, "%s", err);
	cr_assert_eq(rep.train, 400);
	cr_assert_eq(rep.test, 150);
	cr_assert_eq(rep.classes, 10);
	cr_assert_eq(rep.ignored, 1);
	cr_assert_eq(rep.reused, 0);
	for (int part = 0; part < 2; part++) {
		cr_assert_eq(nn_dataset_load_dir(&idx[part], FASHION_DIR, part, err, sizeof err), 0);
		/* The prepared file loads as a dataset "directory" too. */
		cr_assert_eq(nn_dataset_load_dir(&got[part], path, part, err, sizeof err), 0, "%s",
		             err);
		int n = image_fashion_expected(&idx[part], part ? 15 : 40, "png", e[part]);
		cr_assert_eq(got[part].n, n);
		cr_assert(got[part].c == 1 && got[part].h == 28 && got[part].w == 28);
		cr_assert_eq(got[part].classes, 10);
		for (int k = 0; k < 10; k++)
			cr_assert_str_eq(nn_dataset_class_name(&got[part], k), image_fashion_classes[k]);
		for (int i = 0; i < n; i++) {
			cr_assert_eq(got[part].labels[i], e[part][i].label, "part %d image %d", part, i);
			cr_assert_arr_eq(got[part].pixels + (size_t)i * 784,
			                 idx[part].pixels + (size_t)e[part][i].index * 784, 784,
			                 "part %d image %d (%s)", part, i, e[part][i].rel);
		}
	}
	/* The names survive a split (the validation part is a copy). */
	nn_dataset tr, va;
	cr_assert_eq(nn_dataset_split(&got[0], 100, &tr, &va), 0);
	cr_assert_str_eq(nn_dataset_class_name(&va, 9), "9_ankle_boot");
	nn_dataset_free(&tr);
	nn_dataset_free(&va);
	for (int part = 0; part < 2; part++) {
		nn_dataset_free(&idx[part]);
		nn_dataset_free(&got[part]);
	}
	/* No test part: asked for, it is an error that says so. */
	cr_assert_eq(image_write_fashion(scratch_path("only"), 0, 3, "png"), 30);
	o = opts(scratch_path("only"), 1, 28);
	cr_assert_eq(nn_folder_prepare(&o, path, sizeof path, &rep, err, sizeof err), 0, "%s", err);
	cr_assert_eq(rep.test, 0);
	cr_assert_neq(nn_images_load(&got[1], path, 1, err, sizeof err), 0);
	cr_assert(strstr(err, "no test images"), "%s", err);
}

Test(folder, reused_until_the_folder_changes)
{
	char err[GRAFT_ERRLEN], first[1024], again[1024], changed[1024];
	nn_folder_report rep;

	image_write_fashion(scratch_path("f"), 0, 5, "png");
	nn_folder_opts o = opts(scratch_path("f"), 1, 28);
	cr_assert_eq(nn_folder_prepare(&o, first, sizeof first, &rep, err, sizeof err), 0, "%s", err);
	cr_assert_eq(rep.reused, 0);
	cr_assert_eq(nn_folder_prepare(&o, again, sizeof again, &rep, err, sizeof err), 0);
	cr_assert_eq(rep.reused, 1);
	cr_assert_eq(rep.train, 50);
	cr_assert_str_eq(first, again);
	/* Another size is another file. */
	o.h = o.w = 14;
	cr_assert_eq(nn_folder_prepare(&o, changed, sizeof changed, &rep, err, sizeof err), 0);
	cr_assert_eq(rep.reused, 0);
	cr_assert_str_neq(changed, first);
	/* A file touched is a changed folder. */
	o.h = o.w = 28;
	char extra[1024];
	uint8_t px[784] = { 0 };
	snprintf(extra, sizeof extra, "%s/3_dress/extra.png", scratch_path("f"));
	image_write_png(extra, px, 28, 28, 1, 8);
	cr_assert_eq(nn_folder_prepare(&o, first, sizeof first, &rep, err, sizeof err), 0);
	cr_assert_eq(rep.reused, 0);
	cr_assert_eq(rep.train, 51);
	struct utimbuf t = { 1000000000, 1000000000 };
	cr_assert_eq(utime(extra, &t), 0);
	cr_assert_eq(nn_folder_prepare(&o, changed, sizeof changed, &rep, err, sizeof err), 0);
	cr_assert_eq(rep.reused, 0);
	cr_assert_str_neq(changed, first);
}

Test(folder, rgb_resized_and_grey)
{
	char err[GRAFT_ERRLEN], path[1024], p[1024];
	uint8_t px[40 * 40 * 3];
	nn_dataset d;

	for (int k = 0; k < 2; k++) {
		snprintf(p, sizeof p, "%s/%c", scratch_path("rgb"), 'a' + k);
		mkdir(scratch_path("rgb"), 0755);
		mkdir(p, 0755);
		for (int i = 0; i < 4; i++) {
			for (int j = 0; j < 40 * 40; j++) {
				px[3 * j] = (uint8_t)(j * (k + 1) + i);
				px[3 * j + 1] = (uint8_t)(j / 40 * 6);
				px[3 * j + 2] = (uint8_t)(255 - j % 40 * 5 * (k + 1));
			}
			snprintf(p, sizeof p, "%s/%c/%d.png", scratch_path("rgb"), 'a' + k, i);
			image_write_png(p, px, 40, 40, 3, 8);
		}
	}
	for (int c = 1; c <= 3; c += 2) {
		nn_folder_opts o = opts(scratch_path("rgb"), c, 32);
		cr_assert_eq(nn_folder_prepare(&o, path, sizeof path, NULL, err, sizeof err), 0, "%s",
		             err);
		cr_assert_eq(nn_images_load(&d, path, 0, err, sizeof err), 0, "%s", err);
		cr_assert(d.n == 8 && d.c == c && d.h == 32 && d.w == 32);
		/* Every stored image is some file decoded, converted and resized. */
		for (int i = 0; i < d.n; i++) {
			int found = 0;
			for (int f = 0; f < 4 && !found; f++) {
				nn_image img;
				uint8_t want[3 * 32 * 32];
				snprintf(p, sizeof p, "%s/%c/%d.png", scratch_path("rgb"), 'a' + d.labels[i], f);
				cr_assert_eq(nn_image_read(p, 0, 0, &img, err, sizeof err), 0);
				cr_assert_eq(nn_image_to_channels(&img, c), 0);
				for (int ch = 0; ch < c; ch++)
					nn_image_resize_plane(&img, ch, want + ch * 1024, 32, 32);
				found = !memcmp(want, d.pixels + (size_t)i * c * 1024, (size_t)c * 1024);
				nn_image_free(&img);
			}
			cr_assert(found, "image %d (c %d) is none of its class's files resized", i, c);
		}
		nn_dataset_free(&d);
	}
}

Test(folder, jpeg_folder_close_to_the_originals)
{
	char err[GRAFT_ERRLEN], path[1024];
	nn_dataset idx, got;
	static image_expect e[200];

	cr_assert_eq(image_write_fashion(scratch_path("jpg"), 0, 20, "jpg"), 200);
	nn_folder_opts o = opts(scratch_path("jpg"), 1, 28);
	cr_assert_eq(nn_folder_prepare(&o, path, sizeof path, NULL, err, sizeof err), 0, "%s", err);
	cr_assert_eq(nn_images_load(&got, path, 0, err, sizeof err), 0);
	cr_assert_eq(nn_dataset_load_dir(&idx, FASHION_DIR, 0, err, sizeof err), 0);
	int n = image_fashion_expected(&idx, 20, "jpg", e);
	cr_assert_eq(got.n, n);
	double diff = 0;
	for (int i = 0; i < n; i++) {
		cr_assert_eq(got.labels[i], e[i].label);
		for (int j = 0; j < 784; j++)
			diff += abs(got.pixels[i * 784 + j] - idx.pixels[(size_t)e[i].index * 784 + j]);
	}
	cr_assert_lt(diff / (n * 784.0), 3.0, "mean absolute error %.2f", diff / (n * 784.0));
	nn_dataset_free(&idx);
	nn_dataset_free(&got);
}

/* ---- bad images and bad folders ---------------------------------------- */

/* A two-class folder of good PNGs, the name of a file in class a to spoil. */
static const char *good_folder(const char *name, const char *bad_name, char *bad_path)
{
	static char root[1024];
	char p[1200];
	uint8_t px[28 * 28];

	snprintf(root, sizeof root, "%s", scratch_path(name));
	mkdir(root, 0755);
	for (int k = 0; k < 2; k++) {
		snprintf(p, sizeof p, "%s/%c", root, 'a' + k);
		mkdir(p, 0755);
		for (int i = 0; i < 3; i++) {
			for (int j = 0; j < 784; j++)
				px[j] = (uint8_t)(j * (k + 2) + i);
			snprintf(p, sizeof p, "%s/%c/%d.png", root, 'a' + k, i);
			image_write_png(p, px, 28, 28, 1, 8);
		}
	}
	snprintf(bad_path, 1200, "%s/a/%s", root, bad_name);
	return root;
}

Test(folder, every_bad_image_is_named_or_skipped)
{
	const image_bad_case *cases = image_bad_cases;
	char err[GRAFT_ERRLEN], path[1024], bad[1200], name[64];
	nn_folder_report rep;

	for (size_t i = 0; i < IMAGE_BAD_CASES; i++) {
		snprintf(name, sizeof name, "bad%zu", i);
		const char *root = good_folder(name, cases[i].file, bad);
		image_write_bad(cases[i].kind, bad);
		nn_folder_opts o = opts(root, 1, 28);
		err[0] = 0;
		int rc = nn_folder_prepare(&o, path, sizeof path, &rep, err, sizeof err);
		cr_assert_neq(rc, 0, "%s: accepted", cases[i].kind);
		cr_assert(strstr(err, bad) && strstr(err, cases[i].says) && !strchr(err, '\n'),
		          "%s: the message is \"%s\"", cases[i].kind, err);
		cr_assert(strstr(err, "skip_bad"), "%s: \"%s\" does not say how to skip", cases[i].kind,
		          err);
		/* Nothing was written. */
		struct stat st;
		cr_assert_neq(stat(path, &st), 0, "%s: a file was written", cases[i].kind);
		o.skip_bad = 1;
		rc = nn_folder_prepare(&o, path, sizeof path, &rep, err, sizeof err);
		cr_assert_eq(rc, 0, "%s with skip_bad: %s", cases[i].kind, err);
		cr_assert_eq(rep.skipped, 1, "%s", cases[i].kind);
		cr_assert_eq(rep.train, 6);
		cr_assert(strstr(rep.first_skipped, bad), "%s", rep.first_skipped);
	}
}

Test(folder, bad_folders_are_refused_in_a_sentence)
{
	char err[GRAFT_ERRLEN], path[1024], p[1200], bad[1200];
	nn_folder_opts o;

	/* An empty class folder. */
	const char *root = good_folder("emptyclass", "x.png", bad);
	snprintf(p, sizeof p, "%s/c", root);
	mkdir(p, 0755);
	o = opts(root, 1, 28);
	cr_assert_neq(nn_folder_prepare(&o, path, sizeof path, NULL, err, sizeof err), 0);
	cr_assert(strstr(err, p) && strstr(err, "no images"), "%s", err);
	/* A class whose only files are bad, even with skip_bad. */
	snprintf(p, sizeof p, "%s/c/zero.png", root);
	image_write_bytes(p, "", 0);
	o.skip_bad = 1;
	cr_assert_neq(nn_folder_prepare(&o, path, sizeof path, NULL, err, sizeof err), 0);
	cr_assert(strstr(err, "every image of class c is bad"), "%s", err);
	/* One class. */
	snprintf(p, sizeof p, "%s", scratch_path("one"));
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/only", scratch_path("one"));
	mkdir(p, 0755);
	o = opts(scratch_path("one"), 1, 28);
	cr_assert_neq(nn_folder_prepare(&o, path, sizeof path, NULL, err, sizeof err), 0);
	cr_assert(strstr(err, "only one class folder"), "%s", err);
	/* 100,000 classes: refused on the count, before any file is read. */
	mkdir(scratch_path("many"), 0755);
	for (int k = 0; k < 100000; k++) {
		snprintf(p, sizeof p, "%s/c%06d", scratch_path("many"), k);
		cr_assert_eq(mkdir(p, 0755), 0);
	}
	o = opts(scratch_path("many"), 1, 28);
	cr_assert_neq(nn_folder_prepare(&o, path, sizeof path, NULL, err, sizeof err), 0);
	cr_assert(strstr(err, "100000 class folders") && strstr(err, "at most 256"), "%s", err);
	/* A test class the training part lacks. */
	mkdir(scratch_path("split"), 0755);
	image_write_fashion(scratch_path("split/train"), 0, 2, "png");
	image_write_fashion(scratch_path("split/test"), 1, 2, "png");
	snprintf(p, sizeof p, "%s/extra", scratch_path("split/test"));
	mkdir(p, 0755);
	o = opts(scratch_path("split"), 1, 28);
	cr_assert_neq(nn_folder_prepare(&o, path, sizeof path, NULL, err, sizeof err), 0);
	cr_assert(strstr(err, p) && strstr(err, "training part has no folder"), "%s", err);
	/* Not a directory at all. */
	o = opts(scratch_path("nothing-here"), 1, 28);
	cr_assert_neq(nn_folder_prepare(&o, path, sizeof path, NULL, err, sizeof err), 0);
	cr_assert(strstr(err, "not a directory"), "%s", err);
}

Test(folder, a_doctored_file_is_refused)
{
	char err[GRAFT_ERRLEN], path[1024];
	static uint8_t buf[1 << 20];
	nn_dataset d;

	image_write_fashion(scratch_path("doc"), 0, 3, "png");
	nn_folder_opts o = opts(scratch_path("doc"), 1, 28);
	cr_assert_eq(nn_folder_prepare(&o, path, sizeof path, NULL, err, sizeof err), 0, "%s", err);
	size_t n = image_read_bytes(path, buf, sizeof buf);
	/* Truncated by one byte. */
	image_write_bytes(scratch_path("t.gimg"), buf, n - 1);
	cr_assert_eq(nn_images_load(&d, scratch_path("t.gimg"), 0, err, sizeof err), GRAFT_EFORMAT);
	cr_assert(strstr(err, "does not match its header"), "%s", err);
	/* A label beyond the classes. */
	buf[n - 1] = 200;
	image_write_bytes(scratch_path("l.gimg"), buf, n);
	cr_assert_eq(nn_images_load(&d, scratch_path("l.gimg"), 0, err, sizeof err), GRAFT_EFORMAT);
	/* Garbage. */
	image_write_bytes(scratch_path("g.gimg"), "GRAFTIMG\xff\xff\xff\xff", 12);
	cr_assert_eq(nn_images_load(&d, scratch_path("g.gimg"), 0, err, sizeof err), GRAFT_EFORMAT);
	cr_assert_eq(d.pixels, NULL);
}
