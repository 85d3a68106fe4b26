/*
 * synth.h - a procedurally drawn dataset of low-level primitives (lines, arcs,
 * corners, circles, blobs, gratings), so that graft's frozen low-level module
 * can be pretrained on edges and curves whatever the target domain is.
 *
 * (Internal for now: the lead moves these declarations into nn/nn.h.)
 *
 * Angles are in degrees, counter-clockwise from the rightward x axis as the
 * image is displayed (row 0 at the top), so 90 is "up".  The classes are:
 *
 *   id      primitive   orientation
 *   0..7    line        k * 22.5 (0, 22.5, ..., 157.5): the line's direction
 *   8..11   arc         opens toward 45 + k * 90 (8 up-right, 9 up-left,
 *                       10 down-left, 11 down-right): a quarter circle whose
 *                       centre lies that way from the arc's midpoint
 *   12..15  corner      opens toward 45 + k * 90 as for arcs: two arms at a
 *                       right angle, along 45 + k * 90 +- 45, from the vertex
 *   16      circle      (none) an outline of random radius
 *   17      blob        (none) a filled isotropic gaussian of random sigma
 *   18..21  grating     stripes running along k * 45 (18 horizontal, 19
 *                       rising 45, 20 vertical, 21 falling 135)
 *
 * Arcs and corners are turned by up to +-8 degrees at random about their class
 * orientation; lines and gratings are drawn at exactly theirs.
 */
#ifndef GRAFT_NN_SYNTH_H
#define GRAFT_NN_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "nn/nn.h"

enum {
	NN_SYNTH_LINE = 0,     /* 8 classes, orientation k * 22.5 */
	NN_SYNTH_ARC = 8,      /* 4 classes, opening toward 45 + k * 90 */
	NN_SYNTH_CORNER = 12,  /* 4 classes, opening toward 45 + k * 90 */
	NN_SYNTH_CIRCLE = 16,
	NN_SYNTH_BLOB = 17,
	NN_SYNTH_GRATING = 18, /* 4 classes, stripes along k * 45 */
	NN_SYNTH_CLASSES = 22,
};

#define NN_SYNTH_MIN_SIDE 8
#define NN_SYNTH_MAX_SIDE 256

/* Fills ds with n images of c x h x w bytes (c in 1..NN_MAX_CHANNELS, h and w
 * in NN_SYNTH_MIN_SIDE..NN_SYNTH_MAX_SIDE) and their labels, ds->classes =
 * NN_SYNTH_CLASSES.  The classes are balanced (each n / NN_SYNTH_CLASSES,
 * rounded) and shuffled.  Each image is a background of random brightness
 * (0..80) with gaussian noise (sigma 10..20), the labelled primitive drawn
 * anti-aliased, fully inside the canvas, in a foreground of 150..255 (in a
 * random colour when c > 1), and with probability 0.3 a smaller, faint
 * distractor primitive that does not change the label.
 *
 * The result depends on seed alone, not on the thread count.  ds is
 * overwritten (not freed first) and owns the arrays on success; free them with
 * nn_dataset_free.  On failure ds is zeroed and the return is GRAFT_EINVAL (a
 * bad size, with a message in err) or GRAFT_ENOMEM.  err may be NULL. */
int nn_synth_dataset(nn_dataset *ds, int n, int c, int h, int w, uint64_t seed,
                     char *err, size_t errlen);

#endif
