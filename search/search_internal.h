/*
 * search_internal.h - helpers the files of search/ share.  Not part of the
 * public interface.
 */
#ifndef GRAFT_SEARCH_INTERNAL_H
#define GRAFT_SEARCH_INTERNAL_H

#include "nn/nn.h"

/* One of the ops in the bit set ops (not empty), uniformly (space.c). */
enum nn_block_op search__draw_op(nn_rng *r, int ops);

#endif
