/*
 * bench_train.c - graft's side of `make bench`: training throughput of the two
 * reference nets of issue 2, in the line format tests/bench/run.sh joins with
 * PyTorch's, plus the rate of cblas_sgemm itself and peak memory.
 *
 *   bench_train [--threads T] [--batch 64,128] [--seconds S]
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "nn/nn.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int conv_bn_relu(nn_net *net, int in, int cout, int stride)
{
	return nn_net_bn(net, nn_net_conv(net, in, cout, 3, stride, 1, NULL), 1, NULL);
}

/* conv3x3(1->16), conv3x3(16->32, s2), conv3x3(32->64, s2); GAP; linear. */
static nn_net *net_s(void)
{
	nn_net *net = nn_net_new(1, 28, 28);
	int x = conv_bn_relu(net, 0, 16, 1);
	x = conv_bn_relu(net, x, 32, 2);
	x = conv_bn_relu(net, x, 64, 2);
	nn_net_linear(net, nn_net_gap(net, x), 10, "head");
	return net;
}

/* conv(1->32), conv(32->32), pool, conv(32->64), conv(64->64), pool,
 * conv(64->128); GAP; linear. */
static nn_net *net_m(void)
{
	nn_net *net = nn_net_new(1, 28, 28);
	int x = conv_bn_relu(net, 0, 32, 1);
	x = conv_bn_relu(net, x, 32, 1);
	x = nn_net_maxpool(net, x);
	x = conv_bn_relu(net, x, 64, 1);
	x = conv_bn_relu(net, x, 64, 1);
	x = nn_net_maxpool(net, x);
	x = conv_bn_relu(net, x, 128, 1);
	nn_net_linear(net, nn_net_gap(net, x), 10, "head");
	return net;
}

static double bench_net(const char *name, nn_net *net, int batch, double seconds,
                        int threads)
{
	float *x = malloc(sizeof(float) * 28 * 28 * batch);
	int *y = malloc(sizeof(int) * batch);
	nn_sgd opt = { 0.9f, 5e-4f, 0 };
	nn_rng r;
	double best = 0.0;

	nn_rng_seed(&r, 1);
	for (int i = 0; i < 28 * 28 * batch; i++)
		x[i] = (float)nn_rng_normal(&r);
	for (int i = 0; i < batch; i++)
		y[i] = (int)nn_rng_below(&r, 10);
	nn_net_finalize(net, batch, 1);
	/* The first step pays for what is made once per shape (oneDNN's
	 * primitives, JIT-compiled); a new candidate pays it too. */
	double t_first = now();
	nn_net_train_step(net, x, y, batch, &opt, 0.05f);
	t_first = now() - t_first;
	double t_next = now();
	for (int i = 0; i < 4; i++)
		nn_net_train_step(net, x, y, batch, &opt, 0.05f);
	t_next = (now() - t_next) / 4;
	printf("# net=%s batch=%d: first step %.1f ms, later steps %.1f ms (setup %.1f ms)\n",
	       name, batch, t_first * 1e3, t_next * 1e3, (t_first - t_next) * 1e3);
	/* Median of three timed runs, as the PyTorch side does. */
	double runs[3];
	for (int rep = 0; rep < 3; rep++) {
		int steps = 0;
		double t0 = now(), el;
		do {
			nn_net_train_step(net, x, y, batch, &opt, 0.05f);
			steps++;
			el = now() - t0;
		} while (el < seconds / 3);
		runs[rep] = steps * batch / el;
	}
	for (int i = 0; i < 3; i++)
		for (int j = i + 1; j < 3; j++)
			if (runs[j] < runs[i]) {
				double t = runs[i];
				runs[i] = runs[j];
				runs[j] = t;
			}
	best = runs[1];
	printf("graft net=%s batch=%d threads=%d img_s=%.1f mflop_per_img=%.2f engine=%s "
	       "kernels=%s\n", name, batch, threads, best, 3.0 * nn_net_flops(net) / 1e6,
	       nn_conv_engine() == NN_ENGINE_ONEDNN ? "onednn" : "reference",
	       openblas_get_corename());
	fflush(stdout);
	free(x);
	free(y);
	nn_net_free(net);
	return best;
}

static void bench_sgemm(int threads)
{
	int n = 2048;
	float *a = calloc((size_t)n * n, sizeof(float)), *b = calloc((size_t)n * n, sizeof(float));
	float *c = calloc((size_t)n * n, sizeof(float));
	openblas_set_num_threads(threads);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
	double t0 = now();
	int reps = 5;
	for (int i = 0; i < reps; i++)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0,
		            c, n);
	double el = now() - t0;
	printf("# cblas_sgemm 2048^3, %d threads, OpenBLAS %s kernels: %.1f GFLOP/s\n", threads,
	       openblas_get_corename(), 2.0 * n * n * n * reps / el / 1e9);
	free(a);
	free(b);
	free(c);
}

int main(int argc, char **argv)
{
	int threads = 2;
	double seconds = 6.0;
	const char *batches = "64,128";

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--threads"))
			threads = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--batch"))
			batches = argv[i + 1];
		else if (!strcmp(argv[i], "--seconds"))
			seconds = atof(argv[i + 1]);
	}
	bench_sgemm(threads);
	nn_set_threads(threads);
	for (const char *p = batches; *p;) {
		int b = atoi(p);
		bench_net("S", net_s(), b, seconds, threads);
		if (!getenv("BENCH_ONLY_S"))
			bench_net("M", net_m(), b, seconds, threads);
		p = strchr(p, ',');
		if (!p)
			break;
		p++;
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("# peak RSS %.1f MB\n", ru.ru_maxrss / 1024.0);
	return 0;
}
