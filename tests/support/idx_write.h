/*
 * idx_write.h - writes a small labelled IDX dataset: n side x side images
 * whose label (0..classes-1) says which band of rows is bright, with noise.
 */
#ifndef GRAFT_TESTS_IDX_WRITE_H
#define GRAFT_TESTS_IDX_WRITE_H

#include <stdint.h>

/* Writes dir/<part>-images-idx3-ubyte and dir/<part>-labels-idx1-ubyte
 * (with .gz when gz); images bad_from, bad_from + bad_every, ... get a wrong
 * label (bad_every >= 1).  Asserts on failure. */
void idx_write_part(const char *dir, const char *part, int n, int side, int classes, int gz,
                    uint64_t seed, int bad_from, int bad_every);

/* Writes dir/train-images-idx3-ubyte and dir/train-labels-idx1-ubyte: n
 * images of h x w pixels all of value pixel (pixel < 0: noise), labels
 * alternating over classes.  For data the loaders accept but no network
 * can use. */
void idx_write_plain(const char *dir, int n, int h, int w, int pixel, int classes);

#endif
