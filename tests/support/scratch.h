/*
 * scratch.h - what several test files need around their data: a scratch
 * directory removed with everything in it, and a small synthetic dataset
 * split into training and validation images.
 */
#ifndef GRAFT_TESTS_SCRATCH_H
#define GRAFT_TESTS_SCRATCH_H

#include <stdint.h>

#include "nn/nn.h"

/* Makes /tmp/graft-test-TAG-XXXXXX for this test process (asserts on
 * failure) and returns its path. */
const char *scratch_make(const char *tag);

/* The path of name inside the scratch directory, in one of 16 rotating
 * buffers: a path kept longer than a few calls must be copied. */
const char *scratch_path(const char *name);

/* Removes the scratch directory and everything in it; no-op if none. */
void scratch_remove(void);

/* n synthetic 1 x side x side images (nn_synth_dataset, seed), the last nval
 * held out as val, and the per-channel statistics of train. */
void scratch_synth_split(int n, int nval, int side, uint64_t seed, nn_dataset *train,
                         nn_dataset *val, float *mean, float *std);

#endif
