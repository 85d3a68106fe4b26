/*
 * fuzz_cifar.c - CIFAR-10 binary batches (nn_cifar10_load), which have no
 * header: the size and the labels are all a loader can check.
 *
 * Input: one byte, then the batch data.  An even first byte makes one file
 * of the data; an odd one makes two, the first holding (byte >> 1) records
 * (or all there is), so the loader's growing across files is tried too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "tests/fuzz/fuzz_file.h"

#define RECORD 3073

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static fuzz_file files[2];
	const char *paths[2];
	char err[GRAFT_ERRLEN];
	nn_dataset ds;
	size_t split;
	int npaths;

	if (size < 1)
		return 0;
	npaths = data[0] & 1 ? 2 : 1;
	split = npaths == 2 ? (size_t)(data[0] >> 1) * RECORD : size - 1;
	data++, size--;
	if (split > size)
		split = size;
	fuzz_file_set(&files[0], data, split);
	fuzz_file_set(&files[1], data + split, size - split);
	paths[0] = files[0].path;
	paths[1] = files[1].path;
	if (nn_cifar10_load(&ds, paths, npaths, err, sizeof(err)) != 0) {
		if (err[0] == '\0' || ds.pixels != NULL || ds.labels != NULL || ds.n != 0)
			abort();
		return 0;
	}
	if ((size_t)ds.n * RECORD != size || ds.c != 3 || ds.h != 32 || ds.w != 32 ||
	    ds.classes != 10)
		abort();
	/* Each record is its label, then its pixels as they are. */
	for (int i = 0; i < ds.n; i++) {
		const uint8_t *rec = data + (size_t)i * RECORD;

		if (ds.labels[i] != rec[0] || memcmp(ds.pixels + (size_t)i * (RECORD - 1),
		                                     rec + 1, RECORD - 1) != 0)
			abort();
	}
	nn_dataset_free(&ds);
	return 0;
}
