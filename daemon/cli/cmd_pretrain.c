/*
 * cmd_pretrain.c - `graft pretrain`: make (or find in the cache) a graft
 * module and write it to a file.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/cli/cli.h"
#include "daemon/runtime/runtime.h"
#include "search/search.h"

#define DEFAULT_DATA "/usr/share/datasets/fashion-mnist"

static const char usage[] =
	"usage: graft pretrain --source S --out FILE [options]\n"
	"\n"
	"Makes a graft: a small conv module (conv + BN + ReLU layers at full\n"
	"resolution) pretrained once and frozen, to be joined beside the stem of\n"
	"every candidate.  The same source, data, module, budget and seed give the\n"
	"same graft, which is then taken from the cache instead of pretrained again.\n"
	"\n"
	"  --source S         target: the training split of --data (never its\n"
	"                     validation or test images); synthetic: drawn primitives\n"
	"                     (lines, arcs, corners, circles, blobs, gratings);\n"
	"                     textures: stripes, checks, dots, cells, noise, rings,\n"
	"                     hatching and bricks at two scales;\n"
	"                     glyphs: 99 characters of five scripts rendered from\n"
	"                     half of the fonts under " SEARCH_FONTS_DIR "\n"
	"                     (the other half is kept for testing); rotations,\n"
	"                     exemplars: patches of the photos Debian ships, labelled\n"
	"                     by the quarter turn applied, or by their photo;\n"
	"                     mixture: a third each of glyphs, synthetic, rotations;\n"
	"                     universal: the graft shipped in nn/grafts/ for grey\n"
	"                     or RGB images (no pretraining);\n"
	"                     dataset: the training set of --graft-data; random:\n"
	"                     random weights, BN statistics calibrated on --data\n"
	"  --data DIR         the target dataset (default " DEFAULT_DATA ")\n"
	"  --graft-data DIR   the other dataset, for --source dataset\n"
	"  --input CxHxW      no --data: the images the graft is for (for example\n"
	"                     3x28x28), for the sources that make their own data\n"
	"  --validation N     images of --data held out (default 10000), as graft\n"
	"                     train and graft ablation hold them out\n"
	"  --steps N          pretraining steps (default 1500)\n"
	"  --batch B          pretraining batch (default 128)\n"
	"  --lr LR            pretraining learning rate (default 0.05)\n"
	"  --layers L         conv layers (default 2)\n"
	"  --channels C       channels per layer (default 16)\n"
	"  --kernel K         kernel size, odd (default 3)\n"
	"  --seed S           seed (default 1)\n"
	"  --threads T        threads (default: every online CPU)\n"
	"  --out FILE         where to write the graft file\n";

struct pretrain_args {
	const char *data, *graft_data, *out;
	int input[3];                    /* --input C, H, W; C 0: from --data */
	long validation, steps, batch, layers, channels, kernel, seed, threads;
	double lr;
	search_graft_req req;
};

static void show_progress(const nn_progress *p, void *ctx)
{
	(void)ctx;
	fprintf(stderr, "pretrain step %d/%d loss %.4f %.0f img/s\n", p->step, p->steps,
	        p->loss, p->images_per_s);
}

/* --input CxHxW: 1 or 3 channels, sides 8..1024. */
static int parse_input(const char *s, int input[3])
{
	char tail;
	if (sscanf(s, "%dx%dx%d%c", &input[0], &input[1], &input[2], &tail) != 3 ||
	    (input[0] != 1 && input[0] != 3) || input[1] < 8 || input[1] > 1024 ||
	    input[2] < 8 || input[2] > 1024) {
		fprintf(stderr, "graft pretrain: --input '%s': expected CxHxW, C 1 or 3 and sides "
		        "8..1024, for example 3x28x28\n", s);
		input[0] = 0;
		return 1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct pretrain_args *a)
{
	static const struct option opts[] = {
		{ "source", required_argument, 0, 'S' }, { "data", required_argument, 0, 'd' },
		{ "graft-data", required_argument, 0, 'g' },
		{ "input", required_argument, 0, 'i' },
		{ "validation", required_argument, 0, 'v' },
		{ "steps", required_argument, 0, 's' }, { "batch", required_argument, 0, 'b' },
		{ "lr", required_argument, 0, 'l' }, { "layers", required_argument, 0, 'L' },
		{ "channels", required_argument, 0, 'c' }, { "kernel", required_argument, 0, 'k' },
		{ "seed", required_argument, 0, 'e' }, { "threads", required_argument, 0, 't' },
		{ "out", required_argument, 0, 'o' }, { "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 }
	};
	int c;
	char o[32];

	optind = 1;
	while ((c = cli_next_opt(argc, argv, opts, "pretrain", o, sizeof(o))) != -1) {
		int bad = 0;
		switch (c) {
		case 'S': a->req.source = optarg; break;
		case 'd': a->data = optarg; break;
		case 'g': a->graft_data = optarg; break;
		case 'o': a->out = optarg; break;
		case 'i': bad = parse_input(optarg, a->input); break;
		case 'v': bad = cli_int(o, optarg, 0, 100000000, &a->validation); break;
		case 's': bad = cli_int(o, optarg, 1, 10000000, &a->steps); break;
		case 'b': bad = cli_int(o, optarg, 1, 4096, &a->batch); break;
		case 'L': bad = cli_int(o, optarg, 1, NN_MAX_GRAFT_LAYERS, &a->layers); break;
		case 'c': bad = cli_int(o, optarg, 1, 1024, &a->channels); break;
		case 'k': bad = cli_int(o, optarg, 1, 7, &a->kernel) || !(a->kernel & 1); break;
		case 'e': bad = cli_int(o, optarg, 0, 1L << 62, &a->seed); break;
		case 't': bad = cli_int(o, optarg, 1, 256, &a->threads); break;
		case 'l': bad = cli_double(o, optarg, 0, 100, &a->lr); break;
		case 'h': fputs(usage, stdout); return 1;
		default: return GRAFT_EINVAL; /* cli_next_opt said why */
		}
		if (bad) {
			if (c == 'k')
				fprintf(stderr, "graft pretrain: --kernel must be odd\n");
			return GRAFT_EINVAL;
		}
	}
	if (optind != argc || !a->req.source || !a->out) {
		fprintf(stderr, "graft pretrain: --source and --out are required%s\n\n%s",
		        optind != argc ? ", and nothing else" : "", usage);
		return GRAFT_EINVAL;
	}
	static const char *const needs_data[] = { "target", "random", "dataset" };
	for (size_t i = 0; a->input[0] && i < sizeof(needs_data) / sizeof(*needs_data); i++)
		if (!strcmp(a->req.source, needs_data[i])) {
			fprintf(stderr, "graft pretrain: --input is for the sources that make their "
			        "own images; '%s' reads --data\n", a->req.source);
			return GRAFT_EINVAL;
		}
	return 0;
}

int cli_pretrain(int argc, char **argv)
{
	struct pretrain_args a = { .data = DEFAULT_DATA, .validation = -1, .steps = 1500,
	                           .batch = 128, .layers = 2, .channels = 16, .kernel = 3,
	                           .seed = 1, .threads = -1, .lr = 0.05 };
	char err[GRAFT_ERRLEN + 4400] = "", path[4300], sha[65];
	nn_dataset train = { 0 }, val = { 0 };
	float mean[NN_MAX_CHANNELS], std[NN_MAX_CHANNELS];
	int args = parse_args(argc, argv, &a), reused;

	if (args)
		return args > 0 ? CLI_OK : CLI_USAGE;
	nn_set_threads(a.threads > 0 ? (int)a.threads : (int)sysconf(_SC_NPROCESSORS_ONLN));
	if (a.input[0]) {
		/* Only the shape: these sources draw their own images. */
		train.c = a.input[0];
		train.h = a.input[1];
		train.w = a.input[2];
		for (int k = 0; k < train.c; k++)
			mean[k] = 0.0f, std[k] = 1.0f;
	} else if (rt_data_load_split(&(rt_data_src){ .dir = a.data, .validation = a.validation },
	                              &train, &val, err, sizeof(err))) {
		fprintf(stderr, "graft pretrain: %s\n", err);
		return CLI_FAIL;
	} else {
		nn_dataset_stats(&train, mean, std);
	}
	search_graft_req *r = &a.req;
	r->target = &train;
	r->target_mean = mean;
	r->target_std = std;
	r->dataset_dir = a.graft_data;
	r->layers = (int)a.layers;
	r->kernel = (int)a.kernel;
	r->channels = (int)a.channels;
	r->steps = (int)a.steps;
	r->batch = (int)a.batch;
	r->lr = (float)a.lr;
	r->seed = (uint64_t)a.seed;
	r->progress = show_progress;
	int rc = search_graft_obtain(r, path, sizeof(path), sha, &reused, err, sizeof(err));
	/* The graft stays in the cache and the user gets their own copy. */
	if (!rc)
		rc = search_copy_file(path, a.out, err, sizeof(err));
	if (rc)
		fprintf(stderr, "graft pretrain: %s\n", err);
	else
		printf("graft %s (%s, %ld layers of %ldx%ld, %ld channels) %s\nwritten to %s\n"
		       "sha256 %s\n", r->source,
		       !strcmp(r->source, "universal") ? "shipped with graft"
		       : reused                        ? "reused from the cache"
		                                       : "pretrained",
		       a.layers, a.kernel, a.kernel, a.channels, path, a.out, sha);
	nn_dataset_free(&train);
	nn_dataset_free(&val);
	return rc ? CLI_FAIL : CLI_OK;
}
