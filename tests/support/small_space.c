/*
 * small_space.c - the tests' small search space (small_space.h).
 */
#include "tests/support/small_space.h"

void small_space(search_space *s)
{
	search_space_defaults(s);
	s->max_blocks = 5;
	s->nwidths = 0;
	s->min_width = 16;
	s->max_width = 96;
	s->stem_max = 32;
	s->max_downsamples = 2;
	s->max_params = 2000000;
	s->max_flops = 200000000;
}
