/*
 * fuzz_image.c - image files from other people's folders: PNG (libspng) and
 * JPEG (libjpeg-turbo) through nn_image_read, then converted and resized as
 * a folder's images are; and graft-images/1 files (nn_images_load), which
 * live on disk where anything may change them.
 *
 * Input: one byte (bit 0: read it as a graft-images/1 file, bit 1: its test
 * part; else an image, resized to 1 or 3 channels by bit 2), then the file.
 */
#include <stdint.h>
#include <stdlib.h>

#include "nn/nn.h"
#include "tests/fuzz/fuzz_file.h"

static volatile unsigned sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static fuzz_file f;
	char err[GRAFT_ERRLEN];

	if (size < 1)
		return 0;
	int mode = data[0];
	fuzz_file_set(&f, data + 1, size - 1);
	if (mode & 1) {
		nn_dataset ds;
		if (nn_images_load(&ds, f.path, (mode >> 1) & 1, err, sizeof(err)) != 0) {
			if (err[0] == '\0' || ds.pixels != NULL || ds.names != NULL)
				abort();
			return 0;
		}
		size_t n = (size_t)ds.n * ds.c * ds.h * ds.w;
		for (size_t i = 0; i < n; i++)
			sink += ds.pixels[i];
		for (int i = 0; i < ds.n; i++)
			if (ds.labels[i] >= ds.classes)
				abort();
		for (int k = 0; k < ds.classes; k++)
			if (nn_dataset_class_name(&ds, k) == NULL)
				abort();
		nn_dataset_free(&ds);
		return 0;
	}
	nn_image img;
	if (nn_image_read(f.path, 16, 16, &img, err, sizeof(err)) != 0) {
		if (err[0] == '\0' || img.px != NULL)
			abort();
		return 0;
	}
	if (img.w < 1 || img.h < 1 || (img.c != 1 && img.c != 3))
		abort();
	uint8_t out[3 * 16 * 16];
	int c = mode & 4 ? 3 : 1;
	if (nn_image_to_channels(&img, c) == 0)
		for (int ch = 0; ch < c; ch++)
			if (nn_image_resize_plane(&img, ch, out + ch * 256, 16, 16))
				abort();
	nn_image_free(&img);
	return 0;
}
