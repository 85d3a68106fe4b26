/*
 * fuzz_safetensors.c - safetensors weight files (nn_safetensors_read), which
 * come from other programs and from the network.  A file that loads must be
 * what nn.h says: tensors inside the blob, 4-aligned, with terminated names
 * (an empty one included: the format allows it, and nothing looks it up) and
 * valid shapes, and metadata of terminated strings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "tests/fuzz/fuzz_file.h"

static volatile float sink;

static void check_weights(const nn_weights *w, size_t size)
{
	for (int i = 0; i < w->n; i++) {
		const nn_tensor *t = &w->t[i];
		int64_t numel = nn_tensor_numel(t);

		if (!memchr(t->name, '\0', NN_NAME_MAX) || numel < 0 ||
		    (uint64_t)numel * 4 > size || ((uintptr_t)t->data & 3) != 0)
			abort();
		/* Reading every element lets ASan see a tensor that runs past the blob. */
		for (int64_t k = 0; k < numel; k++)
			sink += t->data[k];
		if (nn_weights_find(w, t->name) == NULL)
			abort();
	}
	for (int i = 0; i < w->nmeta; i++)
		if (nn_weights_meta(w, w->meta[2 * i]) == NULL || w->meta[2 * i + 1] == NULL)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static fuzz_file f;
	char err[GRAFT_ERRLEN];
	nn_weights w;

	fuzz_file_set(&f, data, size);
	if (nn_safetensors_read(f.path, &w, err, sizeof(err)) != 0) {
		if (err[0] == '\0' || w.n != 0 || w.t != NULL || w.blob != NULL)
			abort();
		return 0;
	}
	check_weights(&w, size);
	nn_weights_free(&w);
	return 0;
}
