/*
 * cmd_ablation.c - `graft ablation`: what does a graft of each source do for
 * the short-budget accuracy of random candidates?  The same candidates, with
 * the same seeds, are trained under every source; the table gives the mean
 * validation accuracy, the gain over no graft with a paired 95% confidence
 * interval, how well short runs rank candidates as long runs do (Kendall's
 * tau), and what a candidate costs.
 */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/cli/cli.h"
#include "daemon/runtime/runtime.h"
#include "search/search.h"

#define DEFAULT_DATA "/usr/share/datasets/fashion-mnist"
#define MAX_SOURCES 10

static const char usage[] =
	"usage: graft ablation [options]\n"
	"\n"
	"Samples random candidates from the search space, trains each under every\n"
	"graft source with the same seeds, and prints what the graft did.\n"
	"\n"
	"  --data DIR          dataset (default " DEFAULT_DATA ")\n"
	"  --candidates N      random candidates (default 16)\n"
	"  --steps S           the short budget (default 150)\n"
	"  --long L            also train every candidate for L steps (default: no)\n"
	"  --sources LIST      of none, random, synthetic, textures, glyphs, rotations,\n"
	"                      exemplars, mixture, universal, target, dataset\n"
	"                      (default none,random,synthetic,target)\n"
	"  --graft-data DIR    the other dataset, for the source 'dataset'\n"
	"  --seed K            seed of the candidates and their training (default 1)\n"
	"  --batch B           batch (default 128)\n"
	"  --lr LR             learning rate, SGD with momentum 0.9, cosine (default 0.05)\n"
	"  --validation N      images held out to score candidates (default 10000)\n"
	"  --graft-steps N     graft pretraining steps (default 1500)\n"
	"  --graft-channels C  graft width (default 16)\n"
	"  --max-mflops M      candidates cost at most M MFLOP per image, forward\n"
	"                      (default 40: an ablation trains each one several times)\n"
	"  --no-feature-cache  compute the frozen graft in every step (to measure the cache)\n"
	"  --threads T         threads (default: every online CPU)\n"
	"  --out FILE          also write every row: CSV if FILE ends in .csv, else JSON lines\n";

struct ablation_args {
	const char *data, *graft_data, *out, *sources;
	long candidates, steps, long_steps, seed, batch, validation, graft_steps;
	long graft_channels, threads, max_mflops;
	int no_cache;
	double lr;
};

/* One candidate trained under one source for one budget. */
struct row {
	int candidate, steps;
	const char *source;
	double acc, loss, cpu_s, wall_s;
	int64_t params, flops;
};

static int parse_args(int argc, char **argv, struct ablation_args *a)
{
	static const struct option opts[] = {
		{ "data", required_argument, 0, 'd' }, { "candidates", required_argument, 0, 'n' },
		{ "steps", required_argument, 0, 's' }, { "long", required_argument, 0, 'L' },
		{ "sources", required_argument, 0, 'S' },
		{ "graft-data", required_argument, 0, 'g' }, { "seed", required_argument, 0, 'k' },
		{ "batch", required_argument, 0, 'b' }, { "lr", required_argument, 0, 'l' },
		{ "validation", required_argument, 0, 'v' },
		{ "graft-steps", required_argument, 0, 'G' },
		{ "graft-channels", required_argument, 0, 'C' },
		{ "no-feature-cache", no_argument, 0, 'N' },
		{ "max-mflops", required_argument, 0, 'F' },
		{ "threads", required_argument, 0, 't' }, { "out", required_argument, 0, 'o' },
		{ "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 }
	};
	int c;
	char o[32];

	optind = 1;
	while ((c = cli_next_opt(argc, argv, opts, "ablation", o, sizeof(o))) != -1) {
		int bad = 0;
		switch (c) {
		case 'd': a->data = optarg; break;
		case 'g': a->graft_data = optarg; break;
		case 'o': a->out = optarg; break;
		case 'S': a->sources = optarg; break;
		case 'N': a->no_cache = 1; break;
		case 'n': bad = cli_int(o, optarg, 2, 10000, &a->candidates); break;
		case 's': bad = cli_int(o, optarg, 1, 10000000, &a->steps); break;
		case 'L': bad = cli_int(o, optarg, 1, 10000000, &a->long_steps); break;
		case 'k': bad = cli_int(o, optarg, 0, 1L << 40, &a->seed); break;
		case 'b': bad = cli_int(o, optarg, 1, 4096, &a->batch); break;
		case 'v': bad = cli_int(o, optarg, 1, 100000000, &a->validation); break;
		case 'G': bad = cli_int(o, optarg, 1, 10000000, &a->graft_steps); break;
		case 'C': bad = cli_int(o, optarg, 1, 1024, &a->graft_channels); break;
		case 'F': bad = cli_int(o, optarg, 1, 100000, &a->max_mflops); break;
		case 't': bad = cli_int(o, optarg, 1, 256, &a->threads); break;
		case 'l': bad = cli_double(o, optarg, 0, 100, &a->lr); break;
		case 'h': fputs(usage, stdout); return 1;
		default: return GRAFT_EINVAL; /* cli_next_opt said why */
		}
		if (bad)
			return GRAFT_EINVAL;
	}
	if (optind != argc) {
		fprintf(stderr, "graft ablation: unexpected argument '%s'\n\n%s", argv[optind], usage);
		return GRAFT_EINVAL;
	}
	return 0;
}

/* Splits the comma-separated sources, checking each. */
static int split_sources(char *list, const char **out, const struct ablation_args *a)
{
	static const char *known[] = { "none", "random", "synthetic", "textures", "glyphs",
	                               "rotations", "exemplars", "mixture", "universal",
	                               "target", "dataset" };
	int n = 0;

	for (char *s = strtok(list, ","); s; s = strtok(NULL, ",")) {
		int ok = 0;
		for (size_t i = 0; i < sizeof(known) / sizeof(*known); i++)
			ok |= !strcmp(s, known[i]);
		if (!ok || n == MAX_SOURCES) {
			fprintf(stderr, "graft ablation: --sources: %s '%s'; expected a list of "
			        "none, random, synthetic, textures, glyphs, rotations, exemplars, "
			        "mixture, universal, target, dataset\n",
			        ok ? "too many sources at" : "unknown source", s);
			return GRAFT_EINVAL;
		}
		if (!strcmp(s, "dataset") && !a->graft_data) {
			fprintf(stderr, "graft ablation: the source 'dataset' needs --graft-data DIR\n");
			return GRAFT_EINVAL;
		}
		out[n++] = s;
	}
	if (n == 0)
		fprintf(stderr, "graft ablation: --sources is empty\n");
	return n ? n : -1;
}

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct ablation {
	const struct ablation_args *a;
	nn_dataset train, val;
	float mean[NN_MAX_CHANNELS], std[NN_MAX_CHANNELS];
	nn_arch *cands;
	const char *sources[MAX_SOURCES];
	int nsrc;
	struct row *rows;
	int nrows;
};

/* A graft of the source, its identity and the features of the training and
 * validation images under it (NULL without the cache). */
struct graft_use {
	char path[4300], sha[65];
	nn_half *train_feats, *val_feats;
};

/* Trains candidate i for steps and scores it on the validation split. */
static int train_one(struct ablation *ab, int i, int steps, const char *source,
                     const struct graft_use *g)
{
	char err[GRAFT_ERRLEN] = "";
	nn_arch arch = ab->cands[i];
	search_eval_out out;

	if (!g)
		arch.graft_nlayers = 0;
	arch.train.steps = steps;
	arch.train.seed = (uint64_t)ab->a->seed * 1000003u + (uint64_t)i;
	search_eval_in in = { .arch = &arch, .train = &ab->train, .val = &ab->val,
	                      .mean = ab->mean, .std = ab->std,
	                      .graft_path = g ? g->path : NULL, .graft_sha = g ? g->sha : NULL,
	                      .train_feats = g ? g->train_feats : NULL,
	                      .val_feats = g ? g->val_feats : NULL };
	int rc = search_evaluate(&in, &out, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "graft ablation: candidate %d: %s\n", i, err);
		return rc;
	}
	ab->rows[ab->nrows++] = (struct row){ .candidate = i, .steps = steps, .source = source,
	                                      .acc = out.val_accuracy, .loss = out.val_loss,
	                                      .cpu_s = out.cpu_s, .wall_s = out.wall_s,
	                                      .params = out.params, .flops = out.flops };
	printf("  [%s] candidate %2d: %.4f after %d steps (%.1f CPU-s)\n", source, i,
	       out.val_accuracy, steps, out.cpu_s);
	fflush(stdout);
	return 0;
}

/* Pretrains (or finds) the source's graft and, unless told not to, computes
 * its features once for every image: the candidates then skip the graft. */
static int prepare_graft(struct ablation *ab, const char *source, struct graft_use *g)
{
	const struct ablation_args *a = ab->a;
	char err[GRAFT_ERRLEN] = "";
	int reused;
	search_graft_req r = { .source = source, .target = &ab->train,
	                       .target_mean = ab->mean, .target_std = ab->std,
	                       .dataset_dir = a->graft_data, .layers = 2, .kernel = 3,
	                       .channels = (int)a->graft_channels, .steps = (int)a->graft_steps,
	                       .batch = ab->train.n < 128 ? ab->train.n : 128, .lr = 0.05f,
	                       .seed = (uint64_t)a->seed };
	double w0 = wall_now();

	memset(g, 0, sizeof(*g));
	int rc = search_graft_obtain(&r, g->path, sizeof(g->path), g->sha, &reused, err,
	                             sizeof(err));
	if (rc) {
		fprintf(stderr, "graft ablation: graft '%s': %s\n", source, err);
		return rc;
	}
	printf("graft %s: %s in %.1f s, sha256 %.16s...\n", source,
	       reused ? "reused from the cache" : "made", wall_now() - w0, g->sha);
	for (long i = 0; i < a->candidates; i++)
		search_graft_section(&r, g->sha, &ab->cands[i]);
	if (a->no_cache)
		return 0;

	nn_net *net = NULL;
	w0 = wall_now();
	rc = nn_net_from_arch(&net, &ab->cands[0], (int)a->batch, 0, err, sizeof(err));
	if (!rc)
		rc = nn_graft_load(net, g->path, g->sha, (char[65]){ 0 }, err, sizeof(err));
	size_t feat = rc ? 0 : nn_graft_feature_size(net);
	if (!rc) {
		g->train_feats = malloc(sizeof(nn_half) * feat * ab->train.n);
		g->val_feats = malloc(sizeof(nn_half) * feat * ab->val.n);
		rc = g->train_feats && g->val_feats ? 0 : GRAFT_ENOMEM;
	}
	if (!rc)
		rc = nn_graft_features(net, &ab->train, ab->mean, ab->std, g->train_feats);
	if (!rc)
		rc = nn_graft_features(net, &ab->val, ab->mean, ab->std, g->val_feats);
	nn_net_free(net);
	if (rc)
		fprintf(stderr, "graft ablation: graft features: %s\n",
		        *err ? err : graft_strerror(rc));
	else
		printf("graft %s: features of %d images cached in %.1f s\n", source,
		       ab->train.n + ab->val.n, wall_now() - w0);
	return rc;
}

static int run_source(struct ablation *ab, const char *source)
{
	struct graft_use g, *gp = NULL;
	int rc = 0;

	if (strcmp(source, "none")) {
		rc = prepare_graft(ab, source, &g);
		gp = &g;
	}
	for (long i = 0; !rc && i < ab->a->candidates; i++) {
		rc = train_one(ab, (int)i, (int)ab->a->steps, source, gp);
		if (!rc && ab->a->long_steps)
			rc = train_one(ab, (int)i, (int)ab->a->long_steps, source, gp);
	}
	if (gp) {
		free(g.train_feats);
		free(g.val_feats);
	}
	return rc;
}

/* acc[i] of candidate i under source at steps; returns how many were found. */
static int accuracies(const struct ablation *ab, const char *source, int steps,
                      double *acc, double *cpu)
{
	int n = 0;
	for (int k = 0; k < ab->nrows; k++) {
		const struct row *r = &ab->rows[k];
		if (!strcmp(r->source, source) && r->steps == steps) {
			acc[r->candidate] = r->acc;
			cpu[r->candidate] = r->cpu_s;
			n++;
		}
	}
	return n;
}

static void print_gain(const double *acc, const double *base, int n, int have_base)
{
	search_paired p;
	if (!have_base) {
		printf("  %-27s", "");
		return;
	}
	search_paired_ci(acc, base, n, &p);
	printf("  %+.4f [%+.4f, %+.4f]", p.mean_diff, p.ci_lo, p.ci_hi);
}

static void print_table(const struct ablation *ab)
{
	const struct ablation_args *a = ab->a;
	int n = (int)a->candidates;
	double *acc = calloc(n, sizeof(double)), *lacc = calloc(n, sizeof(double));
	double *base = calloc(n, sizeof(double)), *lbase = calloc(n, sizeof(double));
	double *cpu = calloc(n, sizeof(double)), *lcpu = calloc(n, sizeof(double));
	int have_base = accuracies(ab, "none", (int)a->steps, base, cpu) == n;

	if (a->long_steps)
		accuracies(ab, "none", (int)a->long_steps, lbase, lcpu);
	printf("\n%d candidates, validation accuracy (mean), gain over none with a "
	       "paired 95%% CI\n", n);
	printf("%-10s %8s  %-27s", "source", "@short", "gain @short");
	if (a->long_steps)
		printf(" %8s  %-27s %6s", "@long", "gain @long", "tau");
	printf(" %10s\n", "CPU-s/cand");
	for (int s = 0; s < ab->nsrc; s++) {
		const char *src = ab->sources[s];
		int is_base = !strcmp(src, "none");
		accuracies(ab, src, (int)a->steps, acc, cpu);
		printf("%-10s %8.4f", src, search_mean(acc, n));
		print_gain(acc, base, n, have_base && !is_base);
		if (a->long_steps) {
			accuracies(ab, src, (int)a->long_steps, lacc, lcpu);
			printf(" %8.4f", search_mean(lacc, n));
			print_gain(lacc, lbase, n, have_base && !is_base);
			printf(" %6.3f", search_kendall_tau(acc, lacc, n));
		}
		printf(" %10.2f\n", search_mean(cpu, n));
	}
	printf("(short = %ld steps", a->steps);
	if (a->long_steps)
		printf(", long = %ld; tau: Kendall's tau between the short and long rankings",
		       a->long_steps);
	printf("; CPU-s: the short run, graft features %s)\n",
	       a->no_cache ? "computed every step" : "taken from the cache");
	free(acc);
	free(lacc);
	free(base);
	free(lbase);
	free(cpu);
	free(lcpu);
}

/* Every row, as CSV or as JSON lines (the latter written by jansson, so the
 * strings are escaped properly whatever they hold). */
static int write_rows(const struct ablation *ab, const char *path)
{
	FILE *f = fopen(path, "w");
	size_t len = strlen(path);
	int csv = len > 4 && !strcmp(path + len - 4, ".csv");

	if (!f) {
		perror(path);
		return GRAFT_EINVAL;
	}
	if (csv)
		fprintf(f, "candidate,source,steps,val_accuracy,val_loss,params,flops,cpu_s,wall_s\n");
	for (int k = 0; k < ab->nrows; k++) {
		const struct row *r = &ab->rows[k];
		if (csv) {
			fprintf(f, "%d,%s,%d,%.6f,%.6f,%lld,%lld,%.3f,%.3f\n", r->candidate, r->source,
			        r->steps, r->acc, r->loss, (long long)r->params, (long long)r->flops,
			        r->cpu_s, r->wall_s);
			continue;
		}
		json_t *j = json_pack("{s:i, s:s, s:i, s:f, s:f, s:I, s:I, s:f, s:f}", "candidate",
		                      r->candidate, "source", r->source, "steps", r->steps,
		                      "val_accuracy", r->acc, "val_loss", r->loss, "params",
		                      (json_int_t)r->params, "flops", (json_int_t)r->flops,
		                      "cpu_s", r->cpu_s, "wall_s", r->wall_s);
		json_dumpf(j, f, JSON_COMPACT);
		fputc('\n', f);
		json_decref(j);
	}
	return fclose(f) ? -1 : 0;
}

static int sample_candidates(struct ablation *ab)
{
	const struct ablation_args *a = ab->a;
	search_space space;
	nn_arch base;
	nn_rng r;

	search_space_defaults(&space);
	space.max_flops = (int64_t)a->max_mflops * 1000000;
	nn_arch_defaults(&base);
	base.in_c = ab->train.c;
	base.in_h = ab->train.h;
	base.in_w = ab->train.w;
	base.classes = ab->train.classes;
	memcpy(base.mean, ab->mean, sizeof(ab->mean));
	memcpy(base.std, ab->std, sizeof(ab->std));
	base.train.batch = (int)a->batch;
	base.train.lr = (float)a->lr;
	nn_rng_seed(&r, (uint64_t)a->seed);
	for (long i = 0; i < a->candidates; i++)
		if (search_sample_arch(&space, &base, &r, &ab->cands[i])) {
			fprintf(stderr, "graft ablation: cannot sample from the search space\n");
			return GRAFT_EINVAL;
		}
	return 0;
}

int cli_ablation(int argc, char **argv)
{
	struct ablation_args a = { .data = DEFAULT_DATA, .candidates = 16, .steps = 150,
	                           .seed = 1, .batch = 128, .validation = 10000,
	                           .graft_steps = 1500, .graft_channels = 16, .threads = -1,
	                           .max_mflops = 40,
	                           .lr = 0.05, .sources = "none,random,synthetic,target" };
	char err[GRAFT_ERRLEN] = "", list[256];
	struct ablation ab = { .a = &a };
	int args = parse_args(argc, argv, &a), rc = CLI_FAIL;

	if (args)
		return args > 0 ? CLI_OK : CLI_USAGE;
	snprintf(list, sizeof(list), "%s", a.sources);
	ab.nsrc = split_sources(list, ab.sources, &a);
	if (ab.nsrc < 0)
		return CLI_USAGE;
	nn_set_threads(a.threads > 0 ? (int)a.threads : (int)sysconf(_SC_NPROCESSORS_ONLN));
	if (rt_data_load_split(&(rt_data_src){ .dir = a.data, .validation = a.validation },
	                       &ab.train, &ab.val, err, sizeof(err))) {
		fprintf(stderr, "graft ablation: %s\n", err);
		return CLI_FAIL;
	}
	if (a.batch > ab.train.n) {
		fprintf(stderr, "graft ablation: batch %ld is larger than the %d training images\n",
		        a.batch, ab.train.n);
		goto out;
	}
	nn_dataset_stats(&ab.train, ab.mean, ab.std);
	ab.cands = calloc(a.candidates, sizeof(nn_arch));
	ab.rows = calloc((size_t)a.candidates * ab.nsrc * 2, sizeof(struct row));
	if (!ab.cands || !ab.rows || sample_candidates(&ab))
		goto out;
	printf("graft ablation: %ld candidates x %d sources, %ld steps of %ld%s on %s "
	       "(%d training, %d validation images), %d threads\n", a.candidates, ab.nsrc,
	       a.steps, a.batch, a.long_steps ? " (and a long run)" : "", a.data, ab.train.n,
	       ab.val.n, nn_threads());
	for (int s = 0; s < ab.nsrc; s++)
		if (run_source(&ab, ab.sources[s]))
			goto out;
	print_table(&ab);
	if (a.out && write_rows(&ab, a.out))
		goto out;
	if (a.out)
		printf("rows written to %s\n", a.out);
	rc = CLI_OK;
out:
	free(ab.cands);
	free(ab.rows);
	nn_dataset_free(&ab.train);
	nn_dataset_free(&ab.val);
	return rc;
}
