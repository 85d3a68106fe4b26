/*
 * proto.h - graft's file formats, the one public header of proto/.
 *
 * For now: the architecture config graft-arch/1 (see ARCH-FORMAT.md), read into
 * and written from an nn_arch.  Parsing is strict: unknown or repeated keys,
 * wrong types, out-of-range values and networks that cannot be built are all
 * errors, and every message locates its problem as
 *
 *     line L, column C: <path>: <what was wrong>; expected <what>
 *
 * e.g. "line 4, column 12: stem.kernel: expected an odd integer 1..7, got 'abc'".
 * Inputs over 1 MB, nesting deeper than 32 levels, and YAML anchors and aliases
 * are rejected, so a hostile file costs little.
 *
 * Two points the format leaves open, fixed here:
 *   - train.augment "crop" means a random crop after zero-padding by 2 pixels
 *     when the input is at most 28 pixels high and wide, and by 4 otherwise
 *     (the usual settings for MNIST-sized and CIFAR-sized images).  The file
 *     names no padding, so emit writes "crop" for any nonzero train.crop and
 *     parsing gives back that derived padding.
 *   - train.warmup (steps of linear learning-rate warm-up, default 0) is an
 *     optional extension; emit writes it only when it is nonzero.
 */
#ifndef GRAFT_PROTO_H
#define GRAFT_PROTO_H

#include <stddef.h>

#include "nn/nn.h"

/* Parses len bytes of graft-arch/1 YAML (text need not be NUL-terminated)
 * into *out, starting from nn_arch_defaults.  Returns 0, GRAFT_EINVAL for bad
 * content or GRAFT_ENOMEM, with a message in err (which may be NULL); *out is
 * written only on success. */
int proto_arch_parse(const char *text, size_t len, nn_arch *out, char *err,
                     size_t errlen);

/* Reads the file at path and parses it; messages start with "<path>: ".
 * A file that cannot be opened or read is GRAFT_EIO. */
int proto_arch_load(const char *path, nn_arch *out, char *err, size_t errlen);

/* Returns a as graft-arch/1 YAML in the layout of ARCH-FORMAT.md, malloc'd and
 * NUL-terminated (the caller frees it), or NULL when out of memory.  Floats are
 * written with the fewest digits that read back to the same value, so
 * proto_arch_parse(proto_arch_emit(a)) gives a again for any valid a whose
 * train.crop is 0 or the derived padding above, whose flags are 0 or 1 and whose
 * unused mean/std entries (past in_c) hold the defaults. */
char *proto_arch_emit(const nn_arch *a);

#endif
