/*
 * arch_defaults.c - the defaults of an architecture's optional fields.
 *
 * They live in nn/ rather than beside the parser in proto/ because nn must not
 * depend on proto: anything that builds an nn_arch by hand (the search, the
 * tests) starts from the same values a config file without those keys gets.
 */
#include <string.h>

#include "nn/nn.h"

/* Zeroes a (required fields included, so that no byte is left undefined), then
 * fills the optional ones: identity normalization, the default recipe, no
 * graft, no result, and blocks of stride 1 without a skip. */
void nn_arch_defaults(nn_arch *a)
{
	int i;

	memset(a, 0, sizeof *a);
	for (i = 0; i < NN_MAX_CHANNELS; i++) {
		a->mean[i] = 0.0f;
		a->std[i] = 1.0f;
	}
	for (i = 0; i < NN_MAX_BLOCKS; i++) {
		a->blocks[i].stride = 1;
		a->blocks[i].skip_from = NN_SKIP_NONE;
	}
	a->train.steps = 1000;
	a->train.batch = 128;
	a->train.lr = 0.05f;
	a->train.momentum = 0.9f;
	a->train.nesterov = 0;
	a->train.weight_decay = 5e-4f;
	a->train.schedule = NN_SCHEDULE_COSINE;
	a->train.warmup = 0;
	a->train.crop = 0;
	a->train.flip = 0;
	a->train.seed = 1;
}
