/*
 * cmd_train.c - `graft train ARCH.yaml`: train an architecture with its recipe
 * (flags override it), report validation and test accuracy, write the weights.
 */
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/cli/cli.h"
#include "daemon/runtime/runtime.h"
#include "nn/nn.h"
#include "proto/proto.h"
#include "search/search.h"

#define DEFAULT_DATA "/usr/share/datasets/fashion-mnist"

static const char usage[] =
	"usage: graft train ARCH.yaml [options]\n"
	"\n"
	"Trains the architecture described by ARCH.yaml (graft-arch/1) with the\n"
	"recipe in its train section, then prints its test accuracy and writes\n"
	"its weights as safetensors.\n"
	"\n"
	"  --data DIR         dataset directory: IDX (MNIST-style), CIFAR-10 binary, or\n"
	"                     an image folder with train/<class>/ and test/<class>/\n"
	"                     (decoded at the architecture's input size), or its\n"
	"                     .tar.gz/.zip by path or http(s) URL (default\n"
	"                     " DEFAULT_DATA ")\n"
	"  --steps N          training steps (default: the recipe's)\n"
	"  --batch B          batch size (default: the recipe's)\n"
	"  --lr LR            base learning rate (default: the recipe's)\n"
	"  --seed S           seed for initialization and batches (default: the recipe's)\n"
	"  --validation N     images held out of the training set (default 10000,\n"
	"                     at most a sixth of it; 0 trains on all of it)\n"
	"  --threads T        threads (default: every online CPU)\n"
	"  --out FILE         weights file (default: ARCH with .safetensors)\n"
	"  --graft MODE       for an architecture with a graft: finetune (trained\n"
	"                     with the rest; the default: best in our measurements),\n"
	"                     frozen (as in the search) or drop (trained without it)\n"
	"  --graft-file FILE  the graft's weights (from graft pretrain or an export);\n"
	"                     checked against the architecture's graft.sha256.\n"
	"                     Without it, the graft comes from the --init file when\n"
	"                     that holds it (an export's weights do), else from the\n"
	"                     graft cache (graft's and graftd's) by that sha256\n"
	"  --init FILE        start from these weights (e.g. graft export --weights):\n"
	"                     the file must hold every tensor of the network, with\n"
	"                     its shape, and no other (with --graft drop, the file's\n"
	"                     graft tensors are left out)\n";

struct train_args {
	const char *arch, *data, *out, *graft_mode, *graft_file, *init;
	long steps, batch, seed, validation, threads;
	double lr;
};

/* Overwrites the live progress line on a terminal; elsewhere prints one
 * plain line per report, which reads well in logs. */
static void show_progress(const nn_progress *p, void *ctx)
{
	int tty = *(int *)ctx;
	double eta = p->step ? p->elapsed_s * (p->steps - p->step) / p->step : 0;
	int width = 24, done = p->steps ? (int)((long long)width * p->step / p->steps) : width;

	if (tty) {
		char bar[32];
		for (int i = 0; i < width; i++)
			bar[i] = i < done ? '#' : '.';
		bar[width] = 0;
		fprintf(stderr, "\r[%s] %d/%d  loss %.4f  %.0f img/s  ETA %d:%02d ", bar,
		        p->step, p->steps, p->loss, p->images_per_s, (int)eta / 60,
		        (int)eta % 60);
		if (p->step == p->steps)
			fputc('\n', stderr);
	} else {
		fprintf(stderr, "step %d/%d loss %.4f %.0f img/s ETA %.0fs\n", p->step,
		        p->steps, p->loss, p->images_per_s, eta);
	}
}

/* Returns 0 when the arguments are good, 1 when --help was asked for, -1
 * (after saying why) when they are not. */
static int parse_args(int argc, char **argv, struct train_args *a)
{
	static const struct option opts[] = {
		{ "data", required_argument, 0, 'd' }, { "steps", required_argument, 0, 's' },
		{ "batch", required_argument, 0, 'b' }, { "lr", required_argument, 0, 'l' },
		{ "seed", required_argument, 0, 'S' },
		{ "validation", required_argument, 0, 'v' },
		{ "threads", required_argument, 0, 't' }, { "out", required_argument, 0, 'o' },
		{ "graft", required_argument, 0, 'g' }, { "graft-file", required_argument, 0, 'G' },
		{ "init", required_argument, 0, 'i' },
		{ "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 }
	};
	int c;
	char *end, o[32];

	optind = 1;
	while ((c = cli_next_opt(argc, argv, opts, "train", o, sizeof(o))) != -1) {
		int bad = 0;
		switch (c) {
		case 'd': a->data = optarg; break;
		case 'o': a->out = optarg; break;
		case 'G': a->graft_file = optarg; break;
		case 'i': a->init = optarg; break;
		case 'g':
			a->graft_mode = optarg;
			if (strcmp(optarg, "frozen") && strcmp(optarg, "finetune") &&
			    strcmp(optarg, "drop")) {
				fprintf(stderr, "graft train: --graft: expected frozen, finetune or "
				        "drop, got '%s'\n", optarg);
				bad = 1;
			}
			break;
		case 's': bad = cli_int(o, optarg, 1, 100000000, &a->steps); break;
		case 'b': bad = cli_int(o, optarg, 1, 4096, &a->batch); break;
		case 'S': bad = cli_int(o, optarg, 0, 1L << 62, &a->seed); break;
		case 'v': bad = cli_int(o, optarg, 0, 100000000, &a->validation); break;
		case 't': bad = cli_int(o, optarg, 1, 256, &a->threads); break;
		case 'l':
			a->lr = strtod(optarg, &end);
			if (*end || end == optarg || !(a->lr > 0 && a->lr < 100)) {
				fprintf(stderr, "graft train: --lr: expected a number in (0, 100), got '%s'\n",
				        optarg);
				bad = 1;
			}
			break;
		case 'h': fputs(usage, stdout); return 1;
		default: return GRAFT_EINVAL; /* cli_next_opt said why */
		}
		if (bad)
			return GRAFT_EINVAL;
	}
	if (optind != argc - 1) {
		fprintf(stderr, "graft train: expected one ARCH.yaml\n\n%s", usage);
		return GRAFT_EINVAL;
	}
	a->arch = argv[optind];
	return 0;
}

/* Applies the flags given over the file's recipe. */
static void override(nn_arch *arch, const struct train_args *a)
{
	if (a->steps >= 0)
		arch->train.steps = (int)a->steps;
	if (a->batch > 0)
		arch->train.batch = (int)a->batch;
	if (a->seed >= 0)
		arch->train.seed = (uint64_t)a->seed;
	if (a->lr > 0)
		arch->train.lr = (float)a->lr;
}

static int check_shape(const nn_arch *arch, const nn_dataset *ds, const char *data)
{
	if (arch->in_c == ds->c && arch->in_h == ds->h && arch->in_w == ds->w &&
	    arch->classes >= ds->classes)
		return 0;
	fprintf(stderr, "graft train: %s holds %dx%dx%d images of %d classes, but the "
	        "architecture expects %dx%dx%d and %d classes\n", data, ds->c, ds->h, ds->w,
	        ds->classes, arch->in_c, arch->in_h, arch->in_w, arch->classes);
	return GRAFT_EINVAL;
}

static char *default_out(const char *arch)
{
	size_t n = strlen(arch);
	char *out = malloc(n + 16);
	if (!out)
		return NULL;
	strcpy(out, arch);
	char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
	if (dot && (!slash || dot > slash))
		*dot = 0;
	strcat(out, ".safetensors");
	return out;
}

/* An image folder is decoded at the architecture's input size and channels
 * into graftd's data directory (datasets/folders), where a job on the same
 * folder finds it again. */
static int prepare_folder(const nn_arch *arch, const char *dir, char *path, size_t pathlen,
                          char *err, size_t errlen)
{
	char cache[4096], folders[4200];
	nn_folder_report rep;
	int rc;

	rt_data_dir_default(cache, sizeof(cache));
	snprintf(folders, sizeof(folders), "%s/datasets/folders", cache);
	if ((rc = search_make_dirs(folders, err, errlen)))
		return rc;
	nn_folder_opts o = { .dir = dir, .c = arch->in_c, .h = arch->in_h, .w = arch->in_w,
	                     .cache_dir = folders };
	if (arch->in_c != 1 && arch->in_c != 3)
		return graft_errf(err, errlen, GRAFT_EINVAL, "%s: an image folder gives 1 or 3 "
		                  "channels; the architecture takes %d", dir, arch->in_c);
	if ((rc = nn_folder_prepare(&o, path, pathlen, &rep, err, errlen)))
		return rc;
	printf("%s: %d training and %d test images of %d classes, %s in %.1f s\n", dir,
	       rep.train, rep.test, rep.classes, rep.reused ? "decoded before" : "decoded",
	       rep.decode_s);
	return 0;
}

static int load_data(const struct train_args *a, const nn_arch *arch, nn_dataset *train,
                     nn_dataset *val, nn_dataset *test)
{
	char err[GRAFT_ERRLEN] = "", folder[4400], unpacked[4400], datasets[4200], base[4096];
	const char *data = a->data;

	/* An archive of a folder (a path or a URL): unpacked once into graftd's
	 * data directory, as a job's would be. */
	if (proto_is_url(data) || rt_is_archive_name(data)) {
		rt_fetch_limits lim = { RT_FETCH_DEFAULT_MAX_BYTES, RT_FETCH_DEFAULT_TIMEOUT_S };
		rt_data_dir_default(base, sizeof(base));
		snprintf(datasets, sizeof(datasets), "%s/datasets", base);
		if (rt_folder_source(data, datasets, &lim, unpacked, sizeof(unpacked), err,
		                     sizeof(err))) {
			fprintf(stderr, "graft train: %s\n", err);
			return GRAFT_EINVAL;
		}
		data = unpacked;
	}
	if (nn_dataset_dir_is_folder(data)) {
		if (prepare_folder(arch, data, folder, sizeof(folder), err, sizeof(err))) {
			fprintf(stderr, "graft train: %s\n", err);
			return GRAFT_EINVAL;
		}
		data = folder;
	}
	if (rt_data_load_split(&(rt_data_src){ .dir = data, .validation = a->validation },
	                       train, val, err, sizeof(err)) ||
	    nn_dataset_load_dir(test, data, 1, err, sizeof(err))) {
		fprintf(stderr, "graft train: %s\n", err);
		return GRAFT_EINVAL;
	}
	return 0;
}

static int is_graft_tensor(const char *name)
{
	return !strncmp(name, "graft.", 6) || !strncmp(name, "graft_proj.", 11);
}

/* Starts net from the --init file, strictly: unlike the search's inheritance
 * from a parent, which takes what fits, the file must be this network's, so
 * a tensor of the net missing from it or of another shape, and a tensor of
 * it the net does not have, is an error naming the tensor (the first one,
 * and how many more).  The graft's own tensors (graft.*) may be missing,
 * since the graft is loaded from its own source afterwards; with the graft
 * dropped, the file's graft tensors are left out.  Copies only when all is
 * well; returns the number of tensors copied or a negative code. */
static int load_init(nn_net *net, const char *path, int graft_dropped, char *err,
                     size_t errlen)
{
	nn_weights w;
	nn_tensor *t = NULL;
	char want[64], got[64];
	int bad = 0, copied = 0, rc = nn_safetensors_read(path, &w, err, errlen);
	if (rc)
		return rc;
	int n = nn_net_tensors(net, &t);
	if (n < 0) {
		snprintf(err, errlen, "%s: out of memory", path);
		rc = n;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		const nn_tensor *f = nn_weights_find(&w, t[i].name);
		if (f && nn_tensor_same_shape(f, &t[i]))
			continue;
		if (!f && !strncmp(t[i].name, "graft.", 6))
			continue;
		nn_tensor_shape_str(&t[i], want, sizeof(want));
		if (f)
			nn_tensor_shape_str(f, got, sizeof(got));
		if (!bad++ && f)
			snprintf(err, errlen, "%s: tensor '%s' has shape %s there, the network "
			         "needs %s", path, t[i].name, got, want);
		else if (bad == 1)
			snprintf(err, errlen, "%s: has no tensor '%s' (the network needs %s)", path,
			         t[i].name, want);
	}
	for (int i = 0; i < w.n; i++) {
		int found = 0;
		for (int k = 0; k < n && !found; k++)
			found = !strcmp(w.t[i].name, t[k].name);
		if (found || (graft_dropped && is_graft_tensor(w.t[i].name)))
			continue;
		nn_tensor_shape_str(&w.t[i], got, sizeof(got));
		if (!bad++)
			snprintf(err, errlen, "%s: tensor '%s' %s is not in the network", path,
			         w.t[i].name, got);
	}
	if (bad) {
		size_t len = strlen(err);
		if (bad > 1 && len < errlen)
			snprintf(err + len, errlen - len, " (and %d more tensors do not match: is it "
			         "the weights of another architecture?)", bad - 1);
		rc = GRAFT_EFORMAT;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		const nn_tensor *f = nn_weights_find(&w, t[i].name);
		if (f) {
			memcpy(t[i].data, f->data, sizeof(float) * (size_t)nn_tensor_numel(f));
			copied++;
		}
	}
	rc = copied;
out:
	free(t);
	nn_weights_free(&w);
	return rc;
}

/* Looks for the graft named sha in the graft caches: graft pretrain's and
 * graft search's (search_graft_cache_dir) and graftd's (DATA_DIR/grafts),
 * both of which keep graft files under grafts/ by a key of how they were
 * made, not by their identity; so each file is loaded and checked, which is
 * cheap for files this small.  Fills path and returns 0 when one matches;
 * dirs gets the directories looked in. */
static int graft_from_cache(nn_net *net, const char *sha, char *path, size_t pathlen,
                            char *dirs, size_t dirslen)
{
	char dir[2][4200], base[4096], got[65], err[GRAFT_ERRLEN];

	search_graft_cache_dir(base, sizeof(base));
	snprintf(dir[0], sizeof(dir[0]), "%s/grafts", base);
	rt_data_dir_default(base, sizeof(base));
	snprintf(dir[1], sizeof(dir[1]), "%s/grafts/grafts", base);
	snprintf(dirs, dirslen, "%s and %s", dir[0], dir[1]);
	for (int d = 0; d < 2; d++) {
		DIR *dp = opendir(dir[d]);
		struct dirent *e;
		while (dp && (e = readdir(dp))) {
			size_t n = strlen(e->d_name);
			if (n <= 12 || strcmp(e->d_name + n - 12, ".safetensors"))
				continue;
			snprintf(path, pathlen, "%.4100s/%.255s", dir[d], e->d_name);
			if (nn_graft_load(net, path, sha, got, err, sizeof(err)) == 0) {
				closedir(dp);
				return 0;
			}
		}
		if (dp)
			closedir(dp);
	}
	return GRAFT_EINVAL;
}

/* Gives net the graft's weights: from --graft-file, else from the --init
 * file when it holds them (an export's weights do), else from the graft
 * cache by the architecture's sha256; each checked against that sha256, and
 * where they came from said on one line.  Returns 0, or the exit code after
 * saying why not. */
static int give_graft(nn_net *net, const nn_arch *arch, const struct train_args *a)
{
	char sha[65], err[GRAFT_ERRLEN] = "", why[GRAFT_ERRLEN] = "", path[4400], dirs[8500];
	const char *mode = arch->graft_trainable ? "fine-tuned" : "frozen";

	if (a->graft_file) {
		if (nn_graft_load(net, a->graft_file, arch->graft_sha256, sha, err, sizeof(err))) {
			fprintf(stderr, "graft train: %s\n", err);
			return CLI_FAIL;
		}
		printf("graft %s (sha256 %.16s...) %s\n", a->graft_file, sha, mode);
		return 0;
	}
	if (a->init && nn_graft_load(net, a->init, arch->graft_sha256, sha, why,
	                             sizeof(why)) == 0) {
		printf("graft: from %s (sha256 %.16s...) %s\n", a->init, sha, mode);
		return 0;
	}
	if (arch->graft_sha256[0] &&
	    graft_from_cache(net, arch->graft_sha256, path, sizeof(path), dirs,
	                     sizeof(dirs)) == 0) {
		printf("graft: from the cache, %s (sha256 %.16s...) %s\n", path,
		       arch->graft_sha256, mode);
		return 0;
	}
	fprintf(stderr, "graft train: %s has a graft: give its weights with --graft-file FILE "
	        "or --init FILE (graft export --weights writes them), or train without it "
	        "with --graft drop\n", a->arch);
	if (a->init)
		fprintf(stderr, "  not in --init: %s\n", why);
	if (arch->graft_sha256[0])
		fprintf(stderr, "  not in the graft cache: no graft of sha256 %s in %s\n",
		        arch->graft_sha256, dirs);
	else
		fprintf(stderr, "  not looked for in the graft cache: the architecture names no "
		        "graft sha256\n");
	return CLI_USAGE;
}

/* Builds the network and gives it its starting weights: --init's, then the
 * graft's (which win over --init's graft tensors).  NULL after saying why,
 * with *code the exit code. */
static nn_net *prepare_net(const nn_arch *arch, const struct train_args *a, int *code)
{
	char err[GRAFT_ERRLEN] = "";
	nn_net *net = NULL;

	*code = CLI_FAIL;
	if (nn_net_from_arch(&net, arch, arch->train.batch, arch->train.seed, err,
	                     sizeof(err))) {
		fprintf(stderr, "graft train: %s: %s\n", a->arch, err);
		return NULL;
	}
	if (a->init) {
		int n = load_init(net, a->init, a->graft_mode && !strcmp(a->graft_mode, "drop"),
		                  err, sizeof(err));
		if (n < 0) {
			fprintf(stderr, "graft train: --init: %s\n", *err ? err : graft_strerror(n));
			nn_net_free(net);
			return NULL;
		}
		printf("started from %d tensors of %s\n", n, a->init);
	}
	if (arch->graft_nlayers > 0 && (*code = give_graft(net, arch, a))) {
		nn_net_free(net);
		return NULL;
	}
	*code = CLI_OK;
	return net;
}

/* Trains net (borrowed), reports, writes the weights. */
static int train_and_report(nn_net *net, const nn_arch *arch, const struct train_args *a,
                            const char *out, nn_dataset *train, nn_dataset *val,
                            nn_dataset *test)
{
	char err[GRAFT_ERRLEN] = "";
	int tty = isatty(STDERR_FILENO);
	const nn_recipe *r = &arch->train;

	printf("training %s: %lld parameters, %.1f MFLOP per image; %d steps of %d, "
	       "lr %g %s, %d threads, %d training images\n", a->arch,
	       (long long)nn_net_params(net), nn_net_flops(net) / 1e6, r->steps, r->batch,
	       r->lr, r->schedule == NN_SCHEDULE_COSINE ? "cosine" : "constant",
	       nn_threads(), train->n);
	fflush(stdout);
	nn_train_opts o = { .recipe = *r, .mean = arch->mean, .std = arch->std,
	                    .progress = show_progress, .ctx = &tty,
	                    .report_every = tty ? 10 : 100 };
	nn_train_result res;
	int rc = nn_train(net, train, &o, &res);
	if (rc) {
		fprintf(stderr, "graft train: training failed: %s\n", graft_strerror(rc));
		goto out;
	}
	printf("trained in %.1f s (%.0f images/s, %.1f CPU-s), final loss %.4f\n",
	       res.wall_s, res.images_per_s, res.cpu_s, res.final_loss);
	if (val->n) {
		double loss, acc = nn_evaluate(net, val, arch->mean, arch->std, NULL, &loss);
		printf("validation accuracy %.4f (loss %.4f, %d images)\n", acc, loss, val->n);
	}
	double tloss, tacc = nn_evaluate(net, test, arch->mean, arch->std, NULL, &tloss);
	printf("test accuracy %.4f (loss %.4f, %d images)\n", tacc, tloss, test->n);
	rc = nn_net_save(net, out, err, sizeof(err));
	if (rc)
		fprintf(stderr, "graft train: %s\n", err);
	else
		printf("weights written to %s\n", out);
out:
	return rc ? -1 : 0;
}

int cli_train(int argc, char **argv)
{
	struct train_args a = { .data = DEFAULT_DATA, .steps = -1, .batch = -1, .seed = -1,
	                        .validation = -1, .threads = -1 };
	char err[GRAFT_ERRLEN] = "";
	nn_arch arch;
	nn_dataset train = { 0 }, val = { 0 }, test = { 0 };

	int args = parse_args(argc, argv, &a);
	if (args)
		return args > 0 ? CLI_OK : CLI_USAGE;
	if (proto_arch_load(a.arch, &arch, err, sizeof(err))) {
		fprintf(stderr, "graft train: %s\n", err);
		return CLI_FAIL;
	}
	override(&arch, &a);
	if (arch.graft_nlayers == 0 && (a.graft_file || a.graft_mode)) {
		fprintf(stderr, "graft train: %s has no graft section: --graft and --graft-file "
		        "do not apply\n", a.arch);
		return CLI_USAGE;
	}
	if (a.graft_mode && !strcmp(a.graft_mode, "drop"))
		arch.graft_nlayers = 0;
	/* Fine-tuning is the default: measured on two architectures (600 steps,
	 * crop + flip), it beat keeping the graft frozen (+0.1 and +0.4 points of
	 * test accuracy) and dropping it (+1.2 and +2.3). */
	arch.graft_trainable = !a.graft_mode || !strcmp(a.graft_mode, "finetune");
	nn_set_threads(a.threads > 0 ? (int)a.threads : (int)sysconf(_SC_NPROCESSORS_ONLN));
	/* The network and its starting weights first: a wrong file fails before
	 * the data is read. */
	int rc;
	nn_net *net = prepare_net(&arch, &a, &rc);
	if (!net)
		return rc;
	char *out = a.out ? strdup(a.out) : default_out(a.arch);
	rc = CLI_FAIL;
	if (!out || load_data(&a, &arch, &train, &val, &test))
		goto done;
	if (check_shape(&arch, &train, a.data) || check_shape(&arch, &test, a.data))
		goto done;
	if (arch.train.batch > train.n) {
		fprintf(stderr, "graft train: batch %d is larger than the %d training images\n",
		        arch.train.batch, train.n);
		goto done;
	}
	if (train_and_report(net, &arch, &a, out, &train, &val, &test) == 0)
		rc = CLI_OK;
done:
	nn_net_free(net);
	free(out);
	nn_dataset_free(&train);
	nn_dataset_free(&val);
	nn_dataset_free(&test);
	return rc;
}
