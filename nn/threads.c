/*
 * threads.c - how many threads the layers use.
 *
 * The layers split their work with OpenMP (static schedules, so a run with the
 * same thread count gives the same numbers).  Inside those threads OpenBLAS must
 * stay single-threaded: its own pool busy-waits and fights ours, and on this
 * kind of machine two of our threads each running a 1-thread sgemm over half the
 * batch beat one 2-thread sgemm over all of it.
 */
#include <cblas.h>
#include <omp.h>

#include "nn/nn.h"

static int nthreads = 1;

void nn_set_threads(int n)
{
	if (n < 1)
		n = 1;
	nthreads = n;
	omp_set_num_threads(n);
	openblas_set_num_threads(1);
}

/* Until told otherwise, nn runs on one thread and keeps OpenBLAS on one too,
 * so a program that never calls nn_set_threads cannot end up with both pools
 * spinning against each other. */
__attribute__((constructor)) static void single_threaded_by_default(void)
{
	nn_set_threads(1);
}

int nn_threads(void)
{
	return nthreads;
}
