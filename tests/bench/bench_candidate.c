/*
 * bench_candidate.c - a candidate's fixed cost, part by part, in `make bench`:
 * candidates of the default search space evaluated as a worker does
 * (search_evaluate: build, train, score on the 10,000 validation images,
 * write the weights) on Fashion-MNIST, and how much of each evaluation is
 * not training steps.
 *
 *   bench_candidate [--candidates K] [--steps 300] [--threads T] [--data DIR]
 *
 * Prints one `#` line per candidate and a summary line:
 *   graft-candidate steps=300 candidates=K fixed_fraction=... build_ms=... setup_ms=...
 *       score_ms=... save_ms=... step_ms=...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/nn.h"
#include "search/search.h"

int main(int argc, char **argv)
{
	int k = 4, steps = 300, threads = 2;
	const char *data = "/usr/share/datasets/fashion-mnist";
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--candidates"))
			k = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--steps"))
			steps = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--threads"))
			threads = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--data"))
			data = argv[i + 1];
	}
	char err[GRAFT_ERRLEN];
	nn_dataset all, train, val;
	if (nn_dataset_load_dir(&all, data, 0, err, sizeof err) ||
	    nn_dataset_split(&all, 10000, &train, &val)) {
		fprintf(stderr, "bench_candidate: %s: %s\n", data, err);
		return 1;
	}
	nn_dataset_free(&all);
	nn_set_threads(threads);

	search_space space;
	nn_arch base;
	nn_rng r;
	search_space_defaults(&space);
	nn_arch_defaults(&base);
	base.in_c = train.c;
	base.in_h = train.h;
	base.in_w = train.w;
	base.classes = train.classes;
	nn_dataset_stats(&train, base.mean, base.std);
	base.train.steps = steps;
	nn_rng_seed(&r, 1);

	char path[] = "/tmp/graft-bench-candidate-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0) {
		perror("bench_candidate: mkstemp");
		return 1;
	}
	close(fd);
	double sum[6] = { 0 };
	int done = 0;
	printf("# %d candidates of the default space, %d steps at batch %d, %d threads, "
	       "scored on %d validation images (engine %s)\n", k, steps, base.train.batch,
	       threads, val.n, nn_conv_engine() == NN_ENGINE_ONEDNN ? "onednn" : "reference");
	for (int i = 0; i < k; i++) {
		nn_arch a;
		search_eval_out out;
		if (search_sample_arch(&space, &base, &r, &a))
			break;
		search_eval_in in = { .arch = &a, .train = &train, .val = &val, .save_path = path };
		if (search_evaluate(&in, &out, err, sizeof err)) {
			fprintf(stderr, "bench_candidate: candidate %d: %s\n", i, err);
			continue;
		}
		double steps_s = out.train_s - out.setup_s;
		double fixed = out.wall_s - steps_s;
		printf("# candidate %d: %lld params, %.1f MFLOP/img: %.2f s = build %.0f ms + "
		       "setup %.0f ms + %d steps %.2f s + score %.0f ms + save %.0f ms; fixed "
		       "%.1f%%\n", i, (long long)out.params, out.flops / 1e6, out.wall_s,
		       out.build_s * 1e3, out.setup_s * 1e3, steps, steps_s, out.score_s * 1e3,
		       out.save_s * 1e3, 100 * fixed / out.wall_s);
		fflush(stdout);
		double v[6] = { out.build_s, out.setup_s, out.score_s, out.save_s, steps_s,
			        out.wall_s };
		for (int j = 0; j < 6; j++)
			sum[j] += v[j];
		done++;
	}
	unlink(path);
	if (!done)
		return 1;
	double fixed = sum[0] + sum[1] + sum[2] + sum[3];
	printf("graft-candidate steps=%d candidates=%d fixed_fraction=%.3f build_ms=%.1f "
	       "setup_ms=%.1f score_ms=%.1f save_ms=%.1f step_ms=%.2f\n", steps, done,
	       fixed / sum[5], sum[0] / done * 1e3, sum[1] / done * 1e3, sum[2] / done * 1e3,
	       sum[3] / done * 1e3, sum[4] / done / steps * 1e3);
	nn_dataset_free(&train);
	nn_dataset_free(&val);
	return 0;
}
