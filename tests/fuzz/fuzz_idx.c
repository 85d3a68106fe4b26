/*
 * fuzz_idx.c - MNIST-style IDX files (nn_idx_load), gzip'd or plain: the
 * image file and its label file come from downloads graft does not control.
 *
 * Input: two bytes (big-endian) giving the length of the image file, then
 * the image file, then the label file (the rest).  A loaded pair must agree
 * with itself: as many labels as images, every label below the class count.
 */
#include <stdint.h>
#include <stdlib.h>

#include "nn/nn.h"
#include "tests/fuzz/fuzz_file.h"

static volatile unsigned sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static fuzz_file images, labels;
	char err[GRAFT_ERRLEN];
	nn_dataset ds;
	size_t split;

	if (size < 2)
		return 0;
	split = (size_t)data[0] << 8 | data[1];
	data += 2, size -= 2;
	if (split > size)
		split = size;
	fuzz_file_set(&images, data, split);
	fuzz_file_set(&labels, data + split, size - split);
	if (nn_idx_load(&ds, images.path, labels.path, err, sizeof(err)) != 0) {
		if (err[0] == '\0' || ds.pixels != NULL || ds.labels != NULL)
			abort();
		return 0;
	}
	if (ds.n < 1 || ds.c != 1 || ds.h < 1 || ds.w < 1 || ds.classes < 2 ||
	    ds.pixels == NULL || ds.labels == NULL)
		abort();
	/* Reading every byte lets ASan see a buffer shorter than the dims say. */
	size_t npix = (size_t)ds.n * (size_t)ds.h * (size_t)ds.w;
	for (size_t i = 0; i < npix; i++)
		sink += ds.pixels[i];
	for (int i = 0; i < ds.n; i++)
		if (ds.labels[i] >= ds.classes)
			abort();
	nn_dataset_free(&ds);
	return 0;
}
