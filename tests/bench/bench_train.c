/*
 * bench_train.c - graft's side of `make bench`: training and inference
 * throughput of the reference nets of issue 2 (S and M) and of a net with
 * every op of the search space (A, examples/full.yaml), in the line format
 * tests/bench/run.sh joins with PyTorch's; where each step's time goes, op
 * by op, on the oneDNN plan and on the reference path; the conv-only
 * ceiling; the machine's FMA peak and cblas_sgemm rate; peak memory.
 *
 *   bench_train [--threads T] [--batch 64,128] [--seconds S] [--nets S,M,A]
 *               [--arch-a examples/full.yaml]
 *
 * Lines for run.sh:
 *   graft net=M batch=64 threads=2 img_s=... mflop_per_img=... engine=... kernels=...
 *   graft-infer net=M batch=64 threads=2 img_s=...
 *   graft-ceiling net=M batch=64 conv_only_img_s=... step_fraction=...
 * and `#` comments, passed through.
 */
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "nn/nn.h"
#include "proto/proto.h"

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

/* Every op of the search space (conv3, conv5, sep3, res3, pool, skip_from,
 * a frozen graft), from a graft-arch/1 file; torch_bench.py builds the
 * same file with the fixtures' independent reader. */
static const char *arch_a = "examples/full.yaml";

static nn_net *net_a(int batch)
{
	nn_arch a;
	char err[GRAFT_ERRLEN];
	nn_net *net = NULL;
	if (proto_arch_load(arch_a, &a, err, sizeof err) ||
	    nn_net_from_arch(&net, &a, batch, 1, err, sizeof err)) {
		fprintf(stderr, "bench_train: net A (%s): %s\n", arch_a, err);
		return NULL;
	}
	return net;
}

static double median3(double *v)
{
	for (int i = 0; i < 3; i++)
		for (int j = i + 1; j < 3; j++)
			if (v[j] < v[i]) {
				double t = v[i];
				v[i] = v[j];
				v[j] = t;
			}
	return v[1];
}

struct batch_data {
	float *x;
	int *y;
	int n;
};

/* Median of three timed runs (as the PyTorch side does) of images per
 * second: training steps, or forward passes in evaluation mode. */
static double rate(nn_net *net, const struct batch_data *b, double seconds, int train)
{
	nn_sgd opt = { 0.9f, 5e-4f, 0 };
	double runs[3];
	for (int rep = 0; rep < 3; rep++) {
		int steps = 0;
		double t0 = now(), el;
		do {
			if (train)
				nn_net_train_step(net, b->x, b->y, b->n, &opt, 0.05f);
			else
				nn_net_forward(net, b->x, b->n, 0);
			steps++;
			el = now() - t0;
		} while (el < seconds / 3);
		runs[rep] = steps * b->n / el;
	}
	return median3(runs);
}

/* Where a step's time goes: mean ms per part over some steps, on the
 * current engine; with conv (not NULL), each step is followed by one of
 * the convolutions alone, whose parts go there: the ceiling, measured
 * interleaved with the steps so that both see the same machine. */
static double profile(nn_net *net, const struct batch_data *b, double *ms, double *conv)
{
	nn_sgd opt = { 0.9f, 5e-4f, 0 };
	double sec[NN_PROF_PARTS] = { 0 }, csec[NN_PROF_PARTS] = { 0 }, total = 0;
	int steps = 0;
	double t0 = now();
	do {
		double t1 = now();
		if (nn_net_profile_step(net, b->x, b->y, b->n, &opt, 0.05f, 0, sec))
			return -1;
		total += now() - t1;
		if (conv && nn_net_profile_step(net, b->x, b->y, b->n, &opt, 0.05f, 1, csec))
			return -1;
		steps++;
	} while (now() - t0 < 2.0 || steps < 5);
	for (int i = 0; i < NN_PROF_PARTS; i++) {
		ms[i] = sec[i] / steps * 1e3;
		if (conv)
			conv[i] = csec[i] / steps * 1e3;
	}
	return total / steps * 1e3;
}

/* One net at one batch size: training and inference rates, then the
 * per-op profile on both paths and the conv-only ceiling. */
static void bench_net(const char *name, nn_net *net, int batch, double seconds, int threads)
{
	int c, h, w;
	nn_net_shape(net, 0, &c, &h, &w);
	size_t img = (size_t)c * h * w;
	struct batch_data b = { malloc(sizeof(float) * img * batch), malloc(sizeof(int) * batch),
		                batch };
	nn_sgd opt = { 0.9f, 5e-4f, 0 };
	nn_rng r;
	nn_rng_seed(&r, 1);
	for (size_t i = 0; i < img * batch; i++)
		b.x[i] = (float)nn_rng_normal(&r);
	for (int i = 0; i < batch; i++)
		b.y[i] = (int)nn_rng_below(&r, 10);

	/* The first step pays for what is made once per shape (oneDNN's
	 * primitives, JIT-compiled); a new candidate pays it too. */
	double t_first = now();
	nn_net_train_step(net, b.x, b.y, batch, &opt, 0.05f);
	t_first = now() - t_first;
	double t_next = now();
	for (int i = 0; i < 4; i++)
		nn_net_train_step(net, b.x, b.y, batch, &opt, 0.05f);
	t_next = (now() - t_next) / 4;
	printf("# net=%s batch=%d: first step %.1f ms, later steps %.1f ms (setup %.1f ms)%s\n",
	       name, batch, t_first * 1e3, t_next * 1e3, (t_first - t_next) * 1e3,
	       nn_net_planned(net) ? ", on a oneDNN plan" : ", node by node");
	double mflop = 3.0 * nn_net_flops(net) / 1e6;
	const char *engine = nn_conv_engine() == NN_ENGINE_ONEDNN ? "onednn" : "reference";
	printf("graft net=%s batch=%d threads=%d img_s=%.1f mflop_per_img=%.2f engine=%s "
	       "kernels=%s\n", name, batch, threads, rate(net, &b, seconds, 1), mflop, engine,
	       openblas_get_corename());
	nn_net_forward(net, b.x, batch, 0); /* the evaluation plan's setup, untimed */
	printf("graft-infer net=%s batch=%d threads=%d img_s=%.1f engine=%s\n", name, batch,
	       threads, rate(net, &b, seconds / 2, 0), engine);
	fflush(stdout);

	/* Per op, both ways, and the ceiling (oneDNN runs only). */
	if (nn_conv_engine() == NN_ENGINE_ONEDNN) {
		double plan[NN_PROF_PARTS], ref[NN_PROF_PARTS], conv[NN_PROF_PARTS];
		double t_plan = profile(net, &b, plan, conv);
		nn_conv_set_engine(NN_ENGINE_REFERENCE);
		double t_ref = profile(net, &b, ref, NULL);
		nn_conv_set_engine(NN_ENGINE_ONEDNN);
		printf("# net=%s batch=%d ms per training step, by part: oneDNN plan (blocked) | "
		       "reference path (plain NCHW, im2col + sgemm, graft's loops)\n", name, batch);
		for (int i = 0; i < NN_PROF_PARTS; i++)
			if (plan[i] > 0.0005 || ref[i] > 0.0005)
				printf("#   %-28s %8.2f | %8.2f\n", nn_prof_part_name(i), plan[i], ref[i]);
		printf("#   %-28s %8.2f | %8.2f\n", "whole step (timed)", t_plan, t_ref);
		double cf = conv[NN_PROF_CONV_FWD] + conv[NN_PROF_CONV_BWD_DATA] +
		            conv[NN_PROF_CONV_BWD_WEIGHTS];
		printf("# net=%s batch=%d conv-only ceiling: forward %.2f + backward data %.2f + "
		       "backward weights %.2f = %.2f ms a step, %.0f GFLOP/s\n", name, batch,
		       conv[NN_PROF_CONV_FWD], conv[NN_PROF_CONV_BWD_DATA],
		       conv[NN_PROF_CONV_BWD_WEIGHTS], cf, mflop * batch / cf);
		printf("graft-ceiling net=%s batch=%d conv_only_img_s=%.1f step_fraction=%.3f\n",
		       name, batch, batch / (cf / 1e3), cf / t_plan);
	}
	fflush(stdout);
	free(b.x);
	free(b.y);
	nn_net_free(net);
}

static void bench_sgemm(int threads)
{
	int n = 2048;
	float *a = calloc((size_t)n * n, sizeof(float)), *b = calloc((size_t)n * n, sizeof(float));
	float *c = calloc((size_t)n * n, sizeof(float));
	openblas_set_num_threads(threads);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
	double t0 = now();
	int reps = 3;
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

/* The FMA peak: independent chains of fused multiply-adds on every
 * thread, 512-bit where the CPU has AVX-512, else 256-bit. */
#define CHAINS 12
__attribute__((target("avx512f"))) static float fma_avx512(long iters)
{
	__m512 acc[CHAINS], m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
	for (int i = 0; i < CHAINS; i++)
		acc[i] = _mm512_set1_ps((float)i);
	for (long k = 0; k < iters; k++) {
#pragma GCC unroll 12
		for (int i = 0; i < CHAINS; i++)
			acc[i] = _mm512_fmadd_ps(acc[i], m, a);
	}
	float s = 0;
	for (int i = 0; i < CHAINS; i++)
		s += _mm512_reduce_add_ps(acc[i]);
	return s;
}

__attribute__((target("avx2,fma"))) static float fma_avx2(long iters)
{
	__m256 acc[CHAINS], m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
	for (int i = 0; i < CHAINS; i++)
		acc[i] = _mm256_set1_ps((float)i);
	for (long k = 0; k < iters; k++) {
#pragma GCC unroll 12
		for (int i = 0; i < CHAINS; i++)
			acc[i] = _mm256_fmadd_ps(acc[i], m, a);
	}
	float v[8], s = 0;
	for (int i = 0; i < CHAINS; i++) {
		_mm256_storeu_ps(v, acc[i]);
		for (int j = 0; j < 8; j++)
			s += v[j];
	}
	return s;
}

static void bench_fma(int threads)
{
	int wide = __builtin_cpu_supports("avx512f");
	int lanes = wide ? 16 : 8;
	long iters = 100000000; /* about a quarter of a second a run */
	volatile float sink = 0;
	double best = 0;
	/* The best of several: the first runs also wake the cores up. */
	for (int rep = 0; rep < 6; rep++) {
		double t0 = now();
#pragma omp parallel num_threads(threads)
		{
			float s = wide ? fma_avx512(iters) : fma_avx2(iters);
#pragma omp atomic
			sink += s;
		}
		double gflops = 2.0 * lanes * CHAINS * iters * threads / (now() - t0) / 1e9;
		best = gflops > best ? gflops : best;
	}
	printf("# FMA peak (%s, %d threads): %.0f GFLOP/s\n", wide ? "AVX-512" : "AVX2", threads,
	       best);
}

int main(int argc, char **argv)
{
	int threads = 2;
	double seconds = 6.0;
	const char *batches = "64,128", *nets = "S,M,A";

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--threads"))
			threads = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--batch"))
			batches = argv[i + 1];
		else if (!strcmp(argv[i], "--seconds"))
			seconds = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--nets"))
			nets = argv[i + 1];
		else if (!strcmp(argv[i], "--arch-a"))
			arch_a = argv[i + 1];
	}
	bench_fma(threads);
	bench_sgemm(threads);
	nn_set_threads(threads);
	for (const char *p = batches; *p;) {
		int b = atoi(p);
		for (const char *q = nets; *q; q++) {
			nn_net *net = *q == 'S' ? net_s() : *q == 'M' ? net_m() : *q == 'A' ? net_a(b)
			                                                                     : NULL;
			if (!net)
				continue;
			if (*q != 'A')
				nn_net_finalize(net, b, 1);
			bench_net((char[2]){ *q, 0 }, net, b, seconds, threads);
		}
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
