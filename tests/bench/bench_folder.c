/*
 * bench_folder.c - how fast an image folder becomes a dataset (issue 13's
 * figures): Fashion-MNIST's 70,000 images written as 28x28 PNGs in class
 * folders, decoded on 1 and 2 threads; the same folder found again (a
 * listing); the decoded file loaded; and larger JPEGs (640x480 RGB) shrunk
 * to 64x64.  Writing the files is not timed.
 *
 *   build/bench/bench_folder [DIR]     (default: a directory under /tmp, removed)
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jpeglib.h>
#include <spng.h>

#include "nn/nn.h"

#define FASHION "/usr/share/datasets/fashion-mnist"
#define NJPEG 2000

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void die(const char *what, const char *err)
{
	fprintf(stderr, "bench_folder: %s: %s\n", what, err);
	exit(1);
}

static void write_png(const char *path, const uint8_t *px, int w, int h)
{
	spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
	struct spng_ihdr ihdr = { .width = (uint32_t)w, .height = (uint32_t)h, .bit_depth = 8,
	                          .color_type = SPNG_COLOR_TYPE_GRAYSCALE };
	FILE *f = fopen(path, "wb");
	if (!ctx || !f)
		die(path, "cannot write");
	spng_set_png_file(ctx, f);
	spng_set_ihdr(ctx, &ihdr);
	if (spng_encode_image(ctx, px, (size_t)w * h, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE))
		die(path, "encoding failed");
	spng_ctx_free(ctx);
	fclose(f);
}

static void write_jpeg(const char *path, const uint8_t *px, int w, int h)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr e;
	FILE *f = fopen(path, "wb");
	if (!f)
		die(path, "cannot write");
	c.err = jpeg_std_error(&e);
	jpeg_create_compress(&c);
	jpeg_stdio_dest(&c, f);
	c.image_width = (JDIMENSION)w;
	c.image_height = (JDIMENSION)h;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, 90, TRUE);
	jpeg_start_compress(&c, TRUE);
	while (c.next_scanline < c.image_height) {
		JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * w * 3);
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	fclose(f);
}

static void make_dirs(const char *root, const char *part)
{
	char p[1400];
	snprintf(p, sizeof p, "%s/%s", root, part);
	mkdir(p, 0755);
	for (int k = 0; k < 10; k++) {
		snprintf(p, sizeof p, "%s/%s/class%d", root, part, k);
		mkdir(p, 0755);
	}
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* Decodes the folder with threads threads, into a fresh cache each time. */
static void decode(const char *what, const char *dir, const char *cache, int c, int side,
                   int threads)
{
	char err[GRAFT_ERRLEN], path[4400];
	nn_folder_report rep;

	nftw(cache, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	mkdir(cache, 0755);
	nn_folder_opts o = { .dir = dir, .c = c, .h = side, .w = side, .cache_dir = cache,
	                     .threads = threads };
	if (nn_folder_prepare(&o, path, sizeof path, &rep, err, sizeof err))
		die(dir, err);
	int n = rep.train + rep.test;
	printf("%-34s %d thread%s: %6d images in %6.2f s = %7.0f images/s\n", what, threads,
	       threads > 1 ? "s" : " ", n, rep.decode_s, n / rep.decode_s);
}

int main(int argc, char **argv)
{
	char root[1024], p[1400], err[GRAFT_ERRLEN];
	nn_dataset ds;
	int keep = argc > 1;

	snprintf(root, sizeof root, "%s", keep ? argv[1] : "/tmp/graft-bench-folder-XXXXXX");
	if (keep ? (mkdir(root, 0755), 0) : mkdtemp(root) == NULL)
		die(root, "cannot create");
	char png[1200], jpg[1200], cache[1200];
	snprintf(png, sizeof png, "%s/fashion", root);
	snprintf(jpg, sizeof jpg, "%s/photos", root);
	snprintf(cache, sizeof cache, "%s/cache", root);
	mkdir(png, 0755);
	mkdir(jpg, 0755);
	printf("writing 70,000 PNGs and %d JPEGs under %s (not timed)...\n", NJPEG, root);
	for (int part = 0; part < 2; part++) {
		if (nn_dataset_load_dir(&ds, FASHION, part, err, sizeof err))
			die(FASHION, err);
		make_dirs(png, part ? "test" : "train");
		for (int i = 0; i < ds.n; i++) {
			snprintf(p, sizeof p, "%s/%s/class%d/%05d.png", png, part ? "test" : "train",
			         ds.labels[i], i);
			write_png(p, ds.pixels + (size_t)i * 784, 28, 28);
		}
		if (part == 0) {
			/* Photos: Fashion-MNIST images blown up to 640x480, tinted. */
			uint8_t *big = malloc(640 * 480 * 3), *plane = malloc(640 * 480);
			for (int k = 0; k < 10; k++) {
				snprintf(p, sizeof p, "%s/class%d", jpg, k);
				mkdir(p, 0755);
			}
			for (int i = 0; i < NJPEG; i++) {
				nn_image img = { .w = 28, .h = 28, .c = 1, .px = ds.pixels + (size_t)i * 784 };
				nn_image_resize_plane(&img, 0, plane, 640, 480);
				for (int j = 0; j < 640 * 480; j++) {
					big[3 * j] = plane[j];
					big[3 * j + 1] = (uint8_t)(plane[j] * (i % 7 + 1) / 8);
					big[3 * j + 2] = (uint8_t)(255 - plane[j] / 2 - j % 640 / 8);
				}
				snprintf(p, sizeof p, "%s/class%d/%05d.jpg", jpg, ds.labels[i], i);
				write_jpeg(p, big, 640, 480);
			}
			free(big);
			free(plane);
		}
		nn_dataset_free(&ds);
	}
	decode("70,000 PNGs, 28x28 grey", png, cache, 1, 28, 1);
	decode("70,000 PNGs, 28x28 grey", png, cache, 1, 28, 2);
	decode("2,000 JPEGs, 640x480 RGB -> 64x64", jpg, cache, 3, 64, 1);
	decode("2,000 JPEGs, 640x480 RGB -> 64x64", jpg, cache, 3, 64, 2);

	/* Found again: a listing and the key. */
	char path[4400];
	nn_folder_report rep;
	nftw(cache, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	mkdir(cache, 0755);
	nn_folder_opts o = { .dir = png, .c = 1, .h = 28, .w = 28, .cache_dir = cache, .threads = 2 };
	if (nn_folder_prepare(&o, path, sizeof path, &rep, err, sizeof err) ||
	    nn_folder_prepare(&o, path, sizeof path, &rep, err, sizeof err))
		die(png, err);
	printf("%-34s the same folder found again (listing + key): %.3f s\n", "70,000 PNGs",
	       rep.decode_s);
	double t = now_s();
	if (nn_images_load(&ds, path, 0, err, sizeof err))
		die(path, err);
	printf("%-34s the decoded file's 60,000 training images loaded: %.3f s\n", "70,000 PNGs",
	       now_s() - t);
	nn_dataset_free(&ds);
	if (!keep)
		nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
