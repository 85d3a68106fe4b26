/*
 * small_space.h - the search space the space and genome tests were written
 * for (graft's defaults before issue 12 widened them): 2..5 blocks, widths
 * 16..96 by 8, stem 8..32, two downsamplings, 2M parameters, 200M FLOPs.
 * The sampling and mutation rules they check are the same for any space.
 */
#ifndef GRAFT_TESTS_SMALL_SPACE_H
#define GRAFT_TESTS_SMALL_SPACE_H

#include "search/search.h"

void small_space(search_space *s);

#endif
