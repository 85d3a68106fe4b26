/*
 * jobrun.c - one search job in motion (runtime.h): opening it, and its
 * search phase, rungs included; reopening from the store is replay.c's, the
 * final stage final.c's.
 *
 * Resuming.  The strategy is deterministic given its asks and tells in
 * order (search.h), and the store records, for every candidate, its ask
 * order (seq), how many tells and updates had happened before it was asked
 * (told_before) and the order of its own tell (tell_seq; a promotion's
 * result, an update, has its evaluation's).  Opening a job replays exactly
 * that sequence into a fresh strategy (replay.c); what was asked but never
 * finished runs again.  Each replayed ask is checked against the stored
 * genome, so a store that does not match the code (another build's sampler,
 * say) is an error, not a silently different search.
 *
 * Inheritance.  A child of a scored parent starts from the parent's trained
 * weights (search_inherit) and trains for train.inherit_steps instead of
 * train.steps: that is where inheritance saves.  Its evaluation's cache key
 * carries the parent evaluation's key as its "init", so a result is reused
 * only for the same genome started from the same weights.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "daemon/runtime/jobrun_internal.h"

int rt__nrungs(const rt_jobrun *jr)
{
	return jr->spec.fidelity.nrungs > 0 ? jr->spec.fidelity.nrungs : 1;
}

/* Whether results wait for their turn (search.lag > 0). */
int rt__lagged(const rt_jobrun *jr)
{
	return jr->spec.lag > 0;
}

/* Whether the search may use candidate seq's rung r yet: at once without
 * a lag, else once every decision up to it has been fed in order. */
static int visible(const rt_jobrun *jr, int seq, int r)
{
	const struct cand *k = &jr->c[seq];
	return k->ended[r] && (!rt__lagged(jr) || (k->item[r] >= 0 && k->item[r] < jr->fed));
}

int rt__add_item(rt_jobrun *jr, int seq, int rung)
{
	if (jr->nitems == jr->items_cap) {
		int cap = jr->items_cap ? 2 * jr->items_cap : 256;
		struct pending *v = realloc(jr->items, sizeof(*v) * (size_t)cap);
		if (!v)
			return GRAFT_ENOMEM;
		jr->items = v;
		jr->items_cap = cap;
	}
	jr->c[seq].item[rung] = jr->nitems;
	jr->items[jr->nitems++] = (struct pending){ seq, rung };
	return 0;
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail(char *err, size_t errlen, int rc, const char *fmt, const char *what)
{
	snprintf(err, errlen, fmt, what);
	return rc ? rc : GRAFT_EINVAL;
}

int rt__fail(char *err, size_t errlen, int rc, const char *fmt, const char *what)
{
	return fail(err, errlen, rc, fmt, what);
}

int rt__crop_padding(int h, int w)
{
	return h <= 28 && w <= 28 ? 2 : 4;
}

struct cand *rt__cand_add(rt_jobrun *jr)
{
	if (jr->ncand == jr->cap) {
		int cap = jr->cap ? 2 * jr->cap : 256;
		struct cand *c = realloc(jr->c, sizeof(*c) * (size_t)cap);
		struct pending *p = realloc(jr->pending, sizeof(*p) * (size_t)cap);
		if (c)
			jr->c = c;
		if (p)
			jr->pending = p;
		if (!c || !p)
			return NULL;
		jr->cap = cap;
	}
	struct cand *c = &jr->c[jr->ncand++];
	memset(c, 0, sizeof(*c));
	c->fitness = NAN;
	c->parent = -1;
	c->rung = -1;
	for (int r = 0; r < SEARCH_MAX_RUNGS; r++) {
		c->score[r] = NAN;
		c->item[r] = -1;
	}
	return c;
}

/* ---- opening: data, graft, base architecture ------------------------------ */

/* Where a job's fetched and prepared data goes. */
static void datasets_dir(const rt_jobrun_dirs *dirs, char *dir, size_t len)
{
	if (dirs->datasets) {
		snprintf(dir, len, "%s", dirs->datasets);
	} else {
		char cache[4096];
		search_graft_cache_dir(cache, sizeof(cache));
		snprintf(dir, len, "%s/datasets", cache);
	}
}

static rt_fetch_limits fetch_limits(const rt_jobrun_dirs *dirs)
{
	return (rt_fetch_limits){
		dirs->fetch_max_bytes ? dirs->fetch_max_bytes : RT_FETCH_DEFAULT_MAX_BYTES,
		dirs->fetch_timeout_s ? dirs->fetch_timeout_s : RT_FETCH_DEFAULT_TIMEOUT_S
	};
}

/* Dataset files given by URL become local paths (fetched once, cached). */
static int fetch_data(proto_job *j, const rt_jobrun_dirs *dirs, char *err, size_t errlen)
{
	char dir[4200];
	rt_fetch_limits lim = fetch_limits(dirs);

	if (j->dataset.folder) /* its URL is an archive's: prepare_folder's */
		return 0;
	datasets_dir(dirs, dir, sizeof(dir));
	return rt_fetch_job_data(j, dir, &lim, err, errlen);
}

/* An image folder (or its archive, by path or URL, unpacked once) becomes
 * its graft-images/1 file (decoded once, reused while the folder is
 * unchanged), which the workers then load. */
static int prepare_folder(rt_jobrun_input *in, const rt_jobrun_dirs *dirs, char *err,
                          size_t errlen)
{
	proto_job *j = &in->spec;
	char data[4200], dir[4300], folder[4400];
	rt_fetch_limits lim = fetch_limits(dirs);
	int rc;

	if (!j->dataset.folder)
		return 0;
	datasets_dir(dirs, data, sizeof(data));
	snprintf(dir, sizeof(dir), "%s/folders", data);
	if ((rc = search_make_dirs(dir, err, errlen)) ||
	    (rc = rt_folder_source(j->dataset.dir, data, &lim, folder, sizeof(folder), err, errlen)))
		return rc;
	nn_folder_opts o = { .dir = folder, .c = j->dataset.channels,
	                     .h = j->dataset.size_h, .w = j->dataset.size_w,
	                     .skip_bad = j->dataset.skip_bad, .cache_dir = dir };
	return nn_folder_prepare(&o, j->dataset.prepared, sizeof(j->dataset.prepared),
	                         &in->folder, err, errlen);
}

const char *rt__data_path(const proto_job *j)
{
	return j->dataset.prepared[0] ? j->dataset.prepared : j->dataset.dir;
}

static const char *data_name(const proto_job *j)
{
	return j->dataset.dir[0] ? j->dataset.dir : j->dataset.train_images;
}

/* Refuses a dataset that every candidate would fail on later: one class,
 * images graft-arch/1 cannot describe, a constant channel (std 0: nothing
 * to learn, and no normalization the format accepts). */
static int check_data(const rt_jobrun_input *in, char *err, size_t errlen)
{
	const nn_dataset *t = &in->train;
	float mean[NN_MAX_CHANNELS], std[NN_MAX_CHANNELS];

	if (in->val.n == 0)
		return fail(err, errlen, GRAFT_EINVAL, "%s: too few images to hold out a "
		            "validation split", data_name(&in->spec));
	if (t->h > PROTO_ARCH_MAX_SIDE || t->w > PROTO_ARCH_MAX_SIDE) {
		snprintf(err, errlen, "%s: the images are %dx%d pixels; graft works on images of at "
		         "most %dx%d (resize them first)", data_name(&in->spec), t->w, t->h,
		         PROTO_ARCH_MAX_SIDE, PROTO_ARCH_MAX_SIDE);
		return GRAFT_EINVAL;
	}
	int distinct = 0;
	for (int i = 1; i < t->n && !distinct; i++)
		distinct = t->labels[i] != t->labels[0];
	if (!distinct)
		return fail(err, errlen, GRAFT_EINVAL, "%s: every training image has the same label: "
		            "a classifier needs at least two classes", data_name(&in->spec));
	nn_dataset_stats(t, mean, std);
	for (int c = 0; c < t->c; c++)
		if (!(std[c] >= PROTO_ARCH_MIN_STD)) {
			snprintf(err, errlen, "%s: every training pixel%s%.0d has the same value (%.0f): "
			         "there is nothing to learn from, and such images cannot be normalized",
			         data_name(&in->spec), t->c > 1 ? " of channel " : "", t->c > 1 ? c : 0,
			         mean[c] * 255.0);
			return GRAFT_EINVAL;
		}
	return 0;
}

/* With workers on other machines (dirs->shared), every file a worker reads
 * of the job's data must be in the shared directory: a sentence naming the
 * first that is not. */
static int check_shared(const proto_job *j, const rt_jobrun_dirs *dirs, char *err,
                        size_t errlen)
{
	char root[PATH_MAX], real[PATH_MAX];
	const char *files[] = { j->dataset.dir[0] ? rt__data_path(j) : "", j->dataset.train_images,
	                        j->dataset.train_labels, j->dataset.test_images,
	                        j->dataset.test_labels };
	if (!dirs->shared)
		return 0;
	if (!realpath(dirs->shared, root)) {
		snprintf(err, errlen, "executor.shared_dir %s: %s", dirs->shared, strerror(errno));
		return GRAFT_EIO;
	}
	size_t n = strlen(root);
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		if (!files[i][0])
			continue;
		if (!realpath(files[i], real)) {
			snprintf(err, errlen, "%s: %s", files[i], strerror(errno));
			return GRAFT_EIO;
		}
		if (strncmp(real, root, n) || (n > 1 && real[n] != '/' && real[n] != '\0')) {
			snprintf(err, errlen, "%s is not in executor.shared_dir (%s): the workers, on "
			         "other nodes, could not read it; copy the data there, or give it by URL "
			         "(graftd fetches it into the shared directory)", files[i], root);
			return GRAFT_EINVAL;
		}
	}
	return 0;
}

int rt_jobrun_input_load(const char *text, size_t len, const rt_jobrun_dirs *dirs,
                      rt_jobrun_input **out, enum rt_jobrun_refusal *why, char *err, size_t errlen)
{
	rt_jobrun_input *in = calloc(1, sizeof(*in));
	int rc;

	*out = NULL;
	*why = RT_JOBRUN_BAD_SPEC;
	if (!in || !(in->spec_text = malloc(len + 1))) {
		free(in);
		return fail(err, errlen, GRAFT_ENOMEM, "%s", "out of memory");
	}
	memcpy(in->spec_text, text, len);
	in->spec_text[len] = '\0';
	if (strlen(in->spec_text) != len) {
		rc = fail(err, errlen, GRAFT_EINVAL, "%s", "the job spec contains a NUL byte");
		goto fail;
	}
	if ((rc = proto_job_parse(text, len, &in->spec, err, errlen)))
		goto fail;
	*why = RT_JOBRUN_BAD_DATASET;
	if ((rc = fetch_data(&in->spec, dirs, err, errlen)) ||
	    (rc = prepare_folder(in, dirs, err, errlen)) ||
	    (rc = check_shared(&in->spec, dirs, err, errlen)))
		goto fail;
	rt_data_src src = { .dir = in->spec.dataset.dir[0] ? rt__data_path(&in->spec) : NULL,
	                 .train_images = in->spec.dataset.train_images,
	                 .train_labels = in->spec.dataset.train_labels,
	                 .validation = in->spec.dataset.validation };
	if ((rc = rt_data_load_split(&src, &in->train, &in->val, err, errlen)) ||
	    (rc = check_data(in, err, errlen)))
		goto fail;
	rt_data_sha256(&in->train, &in->val, in->data_sha);
	*why = RT_JOBRUN_BAD_SPACE;
	if ((rc = rt_jobrun_check_space(&in->spec, &in->train, err, errlen)))
		goto fail;
	*out = in;
	return 0;
fail:
	rt_jobrun_input_free(in);
	return rc;
}

const proto_job *rt_jobrun_input_spec(const rt_jobrun_input *in)
{
	return &in->spec;
}

void rt_jobrun_input_free(rt_jobrun_input *in)
{
	if (!in)
		return;
	free(in->spec_text);
	nn_dataset_free(&in->train);
	nn_dataset_free(&in->val);
	free(in);
}

/* The class names of ds as a JSON array (malloc'd), or NULL when it has none. */
static char *class_names_json(const nn_dataset *ds)
{
	return ds->names ? proto_labels_json(ds->names, ds->classes) : NULL;
}

/* Records the job's dataset (its identity) in the store. */
static int record_data(rt_jobrun *jr, char *err, size_t errlen)
{
	const proto_job *j = &jr->spec;
	store_dataset d = { .images = jr->train->n + jr->val->n,
	                    .classes = class_names_json(jr->train),
	                    .skipped = jr->in->folder.skipped };
	snprintf(d.location, sizeof(d.location), "%s", data_name(j));
	snprintf(d.sha256, sizeof(d.sha256), "%s", jr->in->data_sha);
	snprintf(d.format, sizeof(d.format), "%s",
	         j->dataset.folder ? "folder" : j->dataset.dir[0] ? "dir" : "idx");
	int rc = jr->train->names && !d.classes ? GRAFT_ENOMEM
	         : store_dataset_put(jr->st, &d, &jr->dataset_id);
	free(d.classes);
	if (rc)
		snprintf(err, errlen, "recording the dataset: %s", store_errmsg(jr->st));
	return rc;
}

/* The architecture every candidate of the job starts from: input, classes,
 * normalization and recipe (the graft section comes with the graft). */
static void make_base(const proto_job *j, const nn_dataset *train, nn_arch *a)
{
	nn_arch_defaults(a);
	a->in_c = train->c;
	a->in_h = train->h;
	a->in_w = train->w;
	a->classes = train->classes;
	nn_dataset_stats(train, a->mean, a->std);
	a->train = j->train;
	a->train.seed = j->seed;
	/* The spec's crop is a flag; the padding follows the image size as
	 * graft-arch/1 defines it (2 up to 28 pixels, else 4). */
	if (a->train.crop)
		a->train.crop = rt__crop_padding(a->in_h, a->in_w);
}

int rt_jobrun_check_space(const proto_job *j, const nn_dataset *train, char *err,
                          size_t errlen)
{
	const search_space *s = &j->space;
	nn_arch a;

	make_base(j, train, &a);
	a.stem_kernel = 3;
	a.stem_channels = s->stem_min;
	a.nblocks = 0;
	if (j->graft != PROTO_GRAFT_NONE && j->graft != PROTO_GRAFT_STORED) {
		a.graft_nlayers = j->graft_layers;
		for (int i = 0; i < j->graft_layers; i++) {
			a.graft_kernel[i] = j->graft_kernel;
			a.graft_channels[i] = j->graft_channels;
		}
	}
	int64_t flops = search_arch_flops(&a), params = search_arch_params(&a);
	if (flops < 0 || params < 0) {
		snprintf(err, errlen, "space: the smallest network of the space does not build "
		         "on %dx%dx%d images", train->c, train->h, train->w);
		return GRAFT_EINVAL;
	}
	if (flops > s->max_flops || params > s->max_params) {
		snprintf(err, errlen, "space.%s: %lld is too small: the stem, head%s alone take "
		         "%lld %s before any block", flops > s->max_flops ? "max_flops" : "max_params",
		         (long long)(flops > s->max_flops ? s->max_flops : s->max_params),
		         a.graft_nlayers ? " and graft" : "",
		         (long long)(flops > s->max_flops ? flops : params),
		         flops > s->max_flops ? "FLOPs per image" : "parameters");
		return GRAFT_EINVAL;
	}
	return 0;
}

static void log_pretrain(const nn_progress *p, void *ctx)
{
	FILE *log = ctx;
	if (p->step == p->steps || p->step % 250 == 0)
		fprintf(log, "graft: pretraining step %d/%d, loss %.3f\n", p->step, p->steps,
		        p->loss);
}

static int find_stored_graft(rt_jobrun *jr, char *err, size_t errlen)
{
	store_graft *g;
	int n, rc = store_graft_list(jr->st, &g, &n);
	if (rc)
		return fail(err, errlen, rc, "listing grafts: %s", store_errmsg(jr->st));
	for (int i = 0; i < n; i++)
		if (!strcmp(g[i].sha256, jr->spec.graft_sha256)) {
			snprintf(jr->graft_path, sizeof(jr->graft_path), "%s", g[i].path);
			snprintf(jr->graft_sha, sizeof(jr->graft_sha), "%s", g[i].sha256);
			jr->base.graft_nlayers = g[i].layers;
			for (int l = 0; l < g[i].layers && l < NN_MAX_GRAFT_LAYERS; l++) {
				jr->base.graft_kernel[l] = 3;
				jr->base.graft_channels[l] = g[i].channels;
			}
			snprintf(jr->base.graft_sha256, sizeof(jr->base.graft_sha256), "%s", g[i].sha256);
			snprintf(jr->base.graft_source, sizeof(jr->base.graft_source), "%s", g[i].source);
		}
	free(g);
	if (!jr->graft_sha[0])
		return fail(err, errlen, GRAFT_EINVAL, "graft.source: no stored graft has "
		            "sha256 %s", jr->spec.graft_sha256);
	return 0;
}

static int obtain_graft(rt_jobrun *jr, const char *dir, FILE *log, char *err, size_t errlen)
{
	static const char *const names[] = {
		[PROTO_GRAFT_TARGET] = "target", [PROTO_GRAFT_SYNTHETIC] = "synthetic",
		[PROTO_GRAFT_RANDOM] = "random", [PROTO_GRAFT_GLYPHS] = "glyphs",
		[PROTO_GRAFT_ROTATIONS] = "rotations", [PROTO_GRAFT_EXEMPLARS] = "exemplars",
		[PROTO_GRAFT_MIXTURE] = "mixture", [PROTO_GRAFT_UNIVERSAL] = "universal",
		[PROTO_GRAFT_TEXTURES] = "textures",
	};
	const proto_job *j = &jr->spec;
	int reused, rc;

	if (j->graft == PROTO_GRAFT_NONE)
		return 0;
	if (j->graft == PROTO_GRAFT_STORED)
		return find_stored_graft(jr, err, errlen);
	search_graft_req r = { .source = names[j->graft], .target = jr->train,
	                       .target_mean = jr->base.mean, .target_std = jr->base.std,
	                       .layers = j->graft_layers, .kernel = j->graft_kernel,
	                       .channels = j->graft_channels, .steps = j->graft_steps,
	                       .batch = jr->train->n < 128 ? jr->train->n : 128, .lr = 0.05f,
	                       .seed = j->seed, .cache_dir = dir,
	                       .progress = log ? log_pretrain : NULL, .ctx = log };
	double c0 = cpu_now();
	rc = search_graft_obtain(&r, jr->graft_path, sizeof(jr->graft_path), jr->graft_sha,
	                         &reused, err, errlen);
	if (rc)
		return rc;
	if (!reused)
		jr->overhead_cpu_s += cpu_now() - c0;
	if (log)
		fprintf(log, "graft: %s %s (sha256 %.16s...)\n", names[j->graft],
		        reused ? "reused from the cache" : "pretrained", jr->graft_sha);
	search_graft_section(&r, jr->graft_sha, &jr->base);
	store_graft g = { .layers = j->graft_layers, .channels = j->graft_channels,
	                  .steps = j->graft_steps };
	snprintf(g.sha256, sizeof(g.sha256), "%s", jr->graft_sha);
	snprintf(g.path, sizeof(g.path), "%s", jr->graft_path);
	snprintf(g.source, sizeof(g.source), "%s", names[j->graft]);
	rc = store_graft_put(jr->st, &g, NULL);
	if (rc)
		snprintf(err, errlen, "recording the graft: %s", store_errmsg(jr->st));
	return rc;
}

int rt_jobrun_open(store *st, int64_t job_id, const rt_jobrun_dirs *dirs, rt_jobrun_input *in,
                   FILE *log, rt_jobrun **out, char *err, size_t errlen)
{
	rt_jobrun *jr = calloc(1, sizeof(*jr));
	store_job job;
	int rc;

	*out = NULL;
	if (!jr) {
		rt_jobrun_input_free(in);
		return fail(err, errlen, GRAFT_ENOMEM, "%s", "out of memory");
	}
	jr->st = st;
	jr->job_id = job_id;
	jr->in = in;
	rc = store_job_get(st, job_id, &job);
	if (rc) {
		rc = rc == STORE_NOTFOUND ? GRAFT_EINVAL : rc;
		snprintf(err, errlen, rc == GRAFT_EINVAL ? "no job %lld" : "reading job %lld: %s",
		         (long long)job_id, store_errmsg(st));
		goto fail;
	}
	jr->overhead_cpu_s = job.overhead_cpu_s;
	jr->wall_before = job.search_wall_s;
	int final_phase = job.final_phase;
	if (!jr->in) {
		/* After a restart: the same checks as at submission, on the spec the
		 * job was submitted with. */
		enum rt_jobrun_refusal why;
		rc = rt_jobrun_input_load(job.spec, strlen(job.spec), dirs, &jr->in, &why, err, errlen);
	}
	store_job_clear(&job);
	if (rc)
		goto fail;
	jr->spec = jr->in->spec;
	jr->train = &jr->in->train;
	jr->val = &jr->in->val;
	snprintf(jr->weights_dir, sizeof(jr->weights_dir), "%s", dirs->weights);
	if (mkdir(jr->weights_dir, 0755) && errno != EEXIST) {
		rc = fail(err, errlen, GRAFT_EIO, "cannot create %s", jr->weights_dir);
		goto fail;
	}
	make_base(&jr->spec, jr->train, &jr->base);
	if ((rc = record_data(jr, err, errlen)) ||
	    (rc = obtain_graft(jr, dirs->grafts, log, err, errlen)))
		goto fail;
	jr->strat = search_strategy_new(jr->spec.strategy, &jr->spec.space, &jr->base,
	                                jr->spec.population, jr->spec.sample, jr->spec.seed);
	if (!jr->strat) {
		rc = fail(err, errlen, GRAFT_EINVAL, "%s", "cannot make the search strategy");
		goto fail;
	}
	if ((rc = rt__warm_start(jr, err, errlen)) || (rc = rt__replay(jr, err, errlen)) ||
	    (rc = rt__final_open(jr, final_phase, err, errlen)))
		goto fail;
	if ((rc = store_begin(st)) ||
	    (rc = store_eval_abandon(st, job_id, "interrupted: the process running it stopped")) < 0 ||
	    (rc = store_job_set_inputs(st, job_id, jr->dataset_id, jr->graft_sha,
	                               jr->overhead_cpu_s)) ||
	    (rc = store_commit(st))) {
		store_rollback(st);
		rc = fail(err, errlen, rc ? rc : GRAFT_ESQL, "opening the job: %s", store_errmsg(st));
		goto fail;
	}
	*out = jr;
	return 0;
fail:
	rt_jobrun_free(jr);
	return rc;
}

void rt_jobrun_free(rt_jobrun *jr)
{
	if (!jr)
		return;
	for (int i = 0; i < jr->ncand; i++)
		for (int r = 0; r < SEARCH_MAX_RUNGS; r++)
			free(jr->c[i].weights[r]);
	free(jr->c);
	free(jr->pending);
	free(jr->items);
	search_strategy_free(jr->strat);
	rt__final_free(jr);
	rt_jobrun_input_free(jr->in);
	free(jr);
}

void rt_jobrun_set_store(rt_jobrun *jr, store *st)
{
	jr->st = st;
}

const proto_job *rt_jobrun_spec(const rt_jobrun *jr)
{
	return &jr->spec;
}

void rt_jobrun_set_threads(rt_jobrun *jr, int threads)
{
	if (threads > 0)
		jr->spec.threads = threads;
}

/* ---- running --------------------------------------------------------------- */

int rt__file_exists(const char *path)
{
	struct stat sb;
	return path && stat(path, &sb) == 0;
}

int rt__seq_of(const rt_jobrun *jr, int64_t id)
{
	for (int i = 0; i < jr->ncand; i++)
		if (jr->c[i].id == id)
			return i;
	return -1;
}

/* The optimizer state saved beside a weights file. */
static void optim_path(const char *weights, char *out, size_t len)
{
	if (snprintf(out, len, "%s.optim", weights) >= (int)len)
		out[0] = '\0'; /* too long a path: the climb starts its momentum afresh */
}

/* The evaluation rung `rung` of candidate seq runs as: its cache key, the
 * recipe it trains with, the weights it starts from (NULL: a fresh start)
 * and, for a climb, the optimizer state that goes with them.
 *
 * Rung 0 is the candidate's first training: rungs[0] steps (without rungs,
 * train.steps), from its parent's rung-0 weights when it inherits (then,
 * without rungs, for train.inherit_steps).  Rung r > 0 goes on from its own
 * rung r-1: the weights and momentum it ended with, rungs[r] - rungs[r-1]
 * steps more on a cosine of their own (a warm restart), batches from a
 * stream of that rung's.  Rungs below the top score on the slice. */
static const char *plan_eval(rt_jobrun *jr, int seq, int rung, nn_arch *a, store_eval *e,
                             char *optim, size_t optimlen)
{
	const search_fidelity *f = &jr->spec.fidelity;
	const struct cand *k = &jr->c[seq];
	const struct cand *p = k->parent >= 0 ? &jr->c[k->parent] : NULL;
	const char *from = NULL, *init = "";
	int R = rt__nrungs(jr);

	optim[0] = '\0';
	if (f->nrungs)
		a->train.steps = f->rungs[rung];
	if (rung == 0 && jr->spec.inherit && p && p->key[0][0] && rt__file_exists(p->weights[0])) {
		from = p->weights[0];
		init = p->key[0];
		if (!f->nrungs)
			a->train.steps = jr->spec.inherit_steps;
	} else if (rung > 0 && rt__file_exists(k->weights[rung - 1])) {
		from = k->weights[rung - 1];
		init = k->key[rung - 1];
		a->train.steps = f->rungs[rung] - f->rungs[rung - 1];
		a->train.warmup = 0;
		a->train.seed += (uint64_t)rung;
		optim_path(from, optim, optimlen);
		if (!rt__file_exists(optim))
			optim[0] = '\0';
	}
	/* (A climb whose weights are gone trains its rung's whole budget from
	 * scratch: slower, but the same kind of result.) */
	if (a->train.warmup > a->train.steps)
		a->train.warmup = a->train.steps;
	memset(e, 0, sizeof(*e));
	e->candidate_id = k->id;
	memcpy(e->genome_sha256, k->genome_sha256, sizeof(e->genome_sha256));
	e->dataset_id = jr->dataset_id;
	snprintf(e->graft_sha256, sizeof(e->graft_sha256), "%s", jr->graft_sha);
	e->steps = a->train.steps;
	e->seed = a->train.seed;
	e->rung = rung;
	e->val_images = R > 1 && rung < R - 1 ? f->slice : 0;
	e->tell_seq = -1;
	snprintf(e->init, sizeof(e->init), "%s", init);
	return from;
}

int rt__task_base(rt_jobrun *jr, int64_t id, const nn_arch *a, const char *save,
                  proto_task *t)
{
	const proto_job *j = &jr->spec;

	memset(t, 0, sizeof(*t));
	t->id = id;
	t->validation = j->dataset.validation;
	t->threads = j->threads;
	t->report_every = a->train.steps >= 20 ? a->train.steps / 20 : 1;
	t->arch = proto_arch_emit(a);
	t->save = save ? strdup(save) : NULL;
	if (j->dataset.dir[0]) {
		t->data_dir = strdup(rt__data_path(j));
	} else {
		t->train_images = strdup(j->dataset.train_images);
		t->train_labels = strdup(j->dataset.train_labels);
		if (j->dataset.test_images[0]) {
			t->test_images = strdup(j->dataset.test_images);
			t->test_labels = strdup(j->dataset.test_labels);
		}
	}
	if (jr->graft_sha[0] && a->graft_nlayers > 0) {
		t->graft_path = strdup(jr->graft_path);
		memcpy(t->graft_sha256, jr->graft_sha, sizeof(t->graft_sha256));
	}
	if (!t->arch || (save && !t->save) || !(t->data_dir || (t->train_images && t->train_labels)) ||
	    (j->dataset.test_images[0] && !j->dataset.dir[0] && !(t->test_images && t->test_labels)) ||
	    (jr->graft_sha[0] && a->graft_nlayers > 0 && !t->graft_path)) {
		proto_task_clear(t);
		return GRAFT_ENOMEM;
	}
	return 0;
}

/* The worker's task for evaluation e of a, in t (its strings malloc'd). */
static int make_task(rt_jobrun *jr, const store_eval *e, const nn_arch *a, const char *parent,
                     const char *optim, const char *save, proto_task *t)
{
	char save_optim[4400];

	if (rt__task_base(jr, e->id, a, save, t))
		return GRAFT_ENOMEM;
	t->val_images = e->val_images;
	if (parent)
		t->parent = strdup(parent);
	if (optim && optim[0])
		t->optim = strdup(optim);
	/* A rung below the top keeps its optimizer state for the climb. */
	if (e->rung < rt__nrungs(jr) - 1) {
		optim_path(save, save_optim, sizeof(save_optim));
		t->save_optim = strdup(save_optim);
	}
	if ((parent && !t->parent) || (optim && optim[0] && !t->optim) ||
	    (e->rung < rt__nrungs(jr) - 1 && !t->save_optim)) {
		proto_task_clear(t);
		return GRAFT_ENOMEM;
	}
	return 0;
}

/* Reads candidate seq's genome back from the store. */
int rt__genome_of(rt_jobrun *jr, int seq, nn_arch *a, char *err, size_t errlen)
{
	store_candidate c;
	int rc = store_candidate_get(jr->st, jr->c[seq].id, &c);
	if (rc)
		return fail(err, errlen, rc < 0 ? rc : GRAFT_EINVAL, "reading a candidate: %s",
		            store_errmsg(jr->st));
	rc = proto_arch_parse(c.genome, strlen(c.genome), a, err, errlen);
	free(c.genome);
	return rc;
}

/* Records in the store, inside the caller's transaction, what the search
 * learns from a scored rung: rung 0 is the candidate's tell, a higher rung
 * an update of its fitness (whose evaluation gets the update's place). */
static int record_score(rt_jobrun *jr, int seq, int rung, double accuracy, int64_t eval_id)
{
	if (rung == 0)
		return store_candidate_tell(jr->st, jr->c[seq].id, jr->events, accuracy);
	int rc = eval_id > 0 ? store_eval_set_tell(jr->st, eval_id, jr->events) : 0;
	return rc ? rc : store_candidate_climb(jr->st, jr->c[seq].id, rung, accuracy);
}

/* The candidate's rung is over, with e's result (NULL: failed for good). */
static void arrive(rt_jobrun *jr, int seq, int rung, const store_eval *e)
{
	struct cand *k = &jr->c[seq];

	k->ended[rung] = 1;
	k->score[rung] = e ? e->val_accuracy : NAN;
	if (e) {
		memcpy(k->key[rung], e->key, sizeof(k->key[rung]));
		free(k->weights[rung]);
		k->weights[rung] = e->weights[0] ? strdup(e->weights) : NULL;
		k->done_eval[rung] = e->id;
		if (rung > k->rung)
			k->rung = rung;
	}
}

/* The strategy learns an ended rung (after its record is committed). */
static void learn(rt_jobrun *jr, int seq, int rung)
{
	struct cand *k = &jr->c[seq];
	double accuracy = k->score[rung];

	if (rung == 0) {
		k->told = 1;
		k->fitness = accuracy;
		search_tell(jr->strat, seq, accuracy);
		jr->events++;
		jr->failed += isnan(accuracy);
	} else if (!isnan(accuracy)) {
		k->fitness = accuracy;
		search_tell_update(jr->strat, seq, accuracy);
		jr->events++;
	}
}

/* Feeds the next decision's result to the search, in decision order. */
static int feed(rt_jobrun *jr, char *err, size_t errlen)
{
	struct pending it = jr->items[jr->fed];
	const struct cand *k = &jr->c[it.seq];
	int rc = 0;

	/* A climb that failed for good teaches the strategy nothing. */
	if ((it.rung == 0 || !isnan(k->score[it.rung])) &&
	    ((rc = store_begin(jr->st)) ||
	     (rc = record_score(jr, it.seq, it.rung, k->score[it.rung], k->done_eval[it.rung])) ||
	     (rc = store_commit(jr->st)))) {
		store_rollback(jr->st);
		return fail(err, errlen, rc, "recording a result: %s", store_errmsg(jr->st));
	}
	learn(jr, it.seq, it.rung);
	jr->fed++;
	return 0;
}

/* Answers rung `rung` of seq from the store if its key was evaluated
 * before: records a cached evaluation and the score in one transaction.
 * 1 if answered. */
static int try_cache(rt_jobrun *jr, int seq, int rung, store_eval *e, char *err,
                     size_t errlen)
{
	store_eval hit = *e;
	int rc = store_cache_find(jr->st, &hit);
	/* A warm start's candidate is the earlier job's, started as that job
	 * started it (from its parent's weights, maybe): its first rung is
	 * that evaluation, and the climb's keys follow from its. */
	if (rc == STORE_NOTFOUND && rung == 0 && jr->c[seq].warm) {
		hit = *e;
		rc = store_cache_find_any_init(jr->st, &hit);
		if (rc == 0)
			memcpy(e->init, hit.init, sizeof(e->init));
	}
	if (rc == STORE_NOTFOUND)
		return 0;
	if (rc)
		return fail(err, errlen, rc, "cache look-up: %s", store_errmsg(jr->st));
	store_eval mine = *e;
	mine.cached = 1;
	mine.cached_from = hit.id;
	mine.val_accuracy = hit.val_accuracy;
	mine.val_loss = hit.val_loss;
	mine.train_loss = hit.train_loss;
	mine.params = hit.params;
	mine.flops = hit.flops;
	mine.inherited = hit.inherited;
	mine.feature_cache = hit.feature_cache;
	mine.tell_seq = rung > 0 && !rt__lagged(jr) ? jr->events : -1;
	snprintf(mine.weights, sizeof(mine.weights), "%s", hit.weights);
	snprintf(mine.worker, sizeof(mine.worker), "cache");
	if ((rc = store_begin(jr->st)) || (rc = store_eval_start(jr->st, &mine)) ||
	    (mine.status = STORE_EVAL_DONE, rc = store_eval_finish(jr->st, &mine)) ||
	    (!rt__lagged(jr) && (rc = record_score(jr, seq, rung, hit.val_accuracy, 0))) ||
	    (rc = store_commit(jr->st))) {
		store_rollback(jr->st);
		return fail(err, errlen, rc, "recording a cache hit: %s", store_errmsg(jr->st));
	}
	arrive(jr, seq, rung, &mine);
	if (!rt__lagged(jr))
		learn(jr, seq, rung);
	jr->cache_hits++;
	return 1;
}

/* Makes the task of seq's rung, or answers it from the cache (returns 0
 * then).  The evaluation's row is written before the task exists: for a
 * promotion, that row is the record of the decision. */
static int prepare(rt_jobrun *jr, int seq, int rung, nn_arch *a, int new_candidate,
                   const store_candidate *rec, rt_jobrun_task *t, int *hits, char *err,
                   size_t errlen)
{
	char optim[4400];
	store_eval e;
	const char *parent = plan_eval(jr, seq, rung, a, &e, optim, sizeof(optim));
	int rc;

	/* A new candidate's row and its first evaluation (or cache hit) are one
	 * transaction, so a crash cannot leave a candidate without its record
	 * (try_cache's own transaction nests inside as a savepoint). */
	if ((rc = store_begin(jr->st)))
		return fail(err, errlen, rc, "starting a candidate: %s", store_errmsg(jr->st));
	if (new_candidate && (rc = store_candidate_add(jr->st, (store_candidate *)rec))) {
		store_rollback(jr->st);
		return fail(err, errlen, rc, "recording a candidate: %s", store_errmsg(jr->st));
	}
	if (new_candidate) {
		jr->c[seq].id = rec->id;
		e.candidate_id = rec->id;
	}
	if (jr->c[seq].item[rung] < 0 && (rc = rt__add_item(jr, seq, rung))) {
		store_rollback(jr->st);
		return fail(err, errlen, rc, "%s", "out of memory");
	}
	rc = try_cache(jr, seq, rung, &e, err, errlen);
	if (rc > 0) {
		if ((rc = store_commit(jr->st))) {
			store_rollback(jr->st);
			return fail(err, errlen, rc, "recording a cache hit: %s", store_errmsg(jr->st));
		}
		if (hits)
			(*hits)++;
		return 0;
	}
	int failures = rc < 0 ? rc : store_eval_failures(jr->st, e.candidate_id, rung);
	if (failures < 0) {
		store_rollback(jr->st);
		return rc < 0 ? rc : fail(err, errlen, failures, "counting failures: %s",
		                          store_errmsg(jr->st));
	}
	e.attempt = failures + 1;
	if ((rc = store_eval_start(jr->st, &e)) || (rc = store_commit(jr->st))) {
		store_rollback(jr->st);
		return fail(err, errlen, rc, "starting an evaluation: %s", store_errmsg(jr->st));
	}
	char save[4400];
	snprintf(save, sizeof(save), "%s/%lld.safetensors", jr->weights_dir, (long long)e.id);
	memset(t, 0, sizeof(*t));
	t->kind = RT_TASK_EVAL;
	t->candidate_id = e.candidate_id;
	t->eval_id = e.id;
	t->time_limit = jr->spec.time_limit;
	t->seq = seq;
	t->rung = rung;
	t->attempt = e.attempt;
	if (make_task(jr, &e, a, parent, optim, save, &t->task))
		return fail(err, errlen, GRAFT_ENOMEM, "%s", "out of memory");
	t->live = 1;
	if (jr->in_flight++ == 0)
		jr->busy_since = mono_now();
	return 1;
}

/* Seconds the search phase has run, this process and those before: the
 * time it had evaluations in flight, so that a paused job, or one waiting
 * for a worker another job holds, spends none of search.max_time. */
static double search_wall(const rt_jobrun *jr)
{
	return jr->wall_before + (jr->busy_since > 0 ? mono_now() - jr->busy_since : 0);
}

int rt_jobrun_budget_spent(const rt_jobrun *jr)
{
	const proto_job *j = &jr->spec;
	return (j->max_time_s > 0 && search_wall(jr) >= j->max_time_s) ||
	       (j->max_cpu_s > 0 && jr->cpu_spent + jr->overhead_cpu_s >= j->max_cpu_s);
}

/* The candidate ASHA sends up next, from the highest rung that has one:
 * its seq and the rung it goes from, or -1. */
static int promotable(const rt_jobrun *jr, int *from)
{
	int R = rt__nrungs(jr), pick = -1;
	if (R < 2 || jr->ncand == 0)
		return -1;
	double *score = malloc(sizeof(double) * (size_t)jr->ncand);
	unsigned char *promoted = malloc((size_t)jr->ncand);
	int *seqs = malloc(sizeof(int) * (size_t)jr->ncand);
	for (int r = R - 2; r >= 0 && pick < 0 && score && promoted && seqs; r--) {
		int n = 0;
		for (int i = 0; i < jr->ncand; i++)
			if (visible(jr, i, r)) {
				score[n] = jr->c[i].score[r];
				promoted[n] = jr->c[i].promoted[r];
				seqs[n++] = i;
			}
		int k = search_asha_pick(score, promoted, n, jr->spec.fidelity.eta);
		if (k >= 0) {
			pick = seqs[k];
			*from = r;
		}
	}
	free(score);
	free(promoted);
	free(seqs);
	return pick;
}

/* prepare's answer as a decision's: 1 a task, 2 answered by the cache,
 * or the error. */
static int decided(int rc)
{
	return rc < 0 ? rc : rc == 1 ? 1 : 2;
}

/* Sends up the candidate ASHA picks, if any (0 when none). */
static int promote_one(rt_jobrun *jr, rt_jobrun_task *t, int *hits, char *err, size_t errlen)
{
	int from, seq = promotable(jr, &from), rc;
	nn_arch a;

	if (seq < 0)
		return 0;
	jr->c[seq].promoted[from] = 1;
	jr->promotions++;
	if ((rc = rt__genome_of(jr, seq, &a, err, errlen)))
		return rc;
	return decided(prepare(jr, seq, from + 1, &a, 0, NULL, t, hits, err, errlen));
}

/* Asks the strategy for a new candidate (0 when every one is asked). */
static int ask_new(rt_jobrun *jr, rt_jobrun_task *t, int *hits, char *err, size_t errlen)
{
	nn_arch a;
	int parent, rc;

	if (search_strategy_asked(jr->strat) >= jr->spec.candidates)
		return 0;
	int seq = search_ask(jr->strat, &a, &parent);
	if (seq < 0)
		return fail(err, errlen, seq, "%s", "the strategy cannot propose a candidate "
		            "(no architecture of the space fits its limits)");
	struct cand *k = rt__cand_add(jr);
	if (!k)
		return fail(err, errlen, GRAFT_ENOMEM, "%s", "out of memory");
	int m = search_strategy_last_mutation(jr->strat);
	k->parent = parent;
	k->generation = parent >= 0 ? jr->c[parent].generation + 1 : 0;
	k->warm = m == SEARCH_WARM;
	search_arch_hash(&a, k->genome_sha256);
	store_candidate rec = { .job_id = jr->job_id, .seq = seq, .told_before = jr->events,
	                        .genome = proto_arch_emit(&a), .parent_seq = parent,
	                        .generation = k->generation,
	                        .params = search_arch_params(&a),
	                        .flops = search_arch_flops(&a) };
	memcpy(rec.genome_sha256, k->genome_sha256, sizeof(rec.genome_sha256));
	snprintf(rec.mutation, sizeof(rec.mutation), "%s",
	         m >= 0 ? search_mutation_name((enum search_mutation)m)
	         : m == SEARCH_WARM ? "warm" : "");
	if (!rec.genome)
		return fail(err, errlen, GRAFT_ENOMEM, "%s", "out of memory");
	rc = prepare(jr, seq, 0, &a, 1, &rec, t, hits, err, errlen);
	free(rec.genome);
	return decided(rc);
}

/* The next decision: a promotion before a new candidate, since the climb
 * of the best is what the job's answer rests on. */
static int decide(rt_jobrun *jr, rt_jobrun_task *t, int *hits, char *err, size_t errlen)
{
	int rc = promote_one(jr, t, hits, err, errlen);
	return rc ? rc : ask_new(jr, t, hits, err, errlen);
}

/* Whether the next result to feed is in. */
static int next_fed_is_in(const rt_jobrun *jr)
{
	if (jr->fed >= jr->nitems)
		return 0;
	struct pending it = jr->items[jr->fed];
	return jr->c[it.seq].ended[it.rung];
}

/* Whether the search phase is over: nothing of it in flight, and either
 * its budget spent or every candidate asked and told, every result fed,
 * and no rung with a candidate left to promote. */
static int search_done(const rt_jobrun *jr)
{
	int from;

	if (jr->in_flight)
		return 0;
	if (rt_jobrun_budget_spent(jr))
		return 1;
	return jr->npending == 0 && search_strategy_asked(jr->strat) >= jr->spec.candidates &&
	       (!rt__lagged(jr) || jr->fed == jr->nitems) && promotable(jr, &from) < 0;
}

static int search_next(rt_jobrun *jr, rt_jobrun_task *t, int *hits, char *err, size_t errlen);

int rt_jobrun_next(rt_jobrun *jr, rt_jobrun_task *t, int *hits, char *err, size_t errlen)
{
	if (!jr->final_phase) {
		int rc = search_next(jr, t, hits, err, errlen);
		if (rc || !search_done(jr) || jr->spec.final.top == 0)
			return rc;
		if ((rc = rt__final_begin(jr, err, errlen)))
			return rc;
	}
	return rt__final_next(jr, t, err, errlen);
}

static int search_next(rt_jobrun *jr, rt_jobrun_task *t, int *hits, char *err, size_t errlen)
{
	int rc;

	/* When the budget is spent nothing new starts, reruns included: what
	 * is in flight finishes and the job moves on. */
	if (rt_jobrun_budget_spent(jr))
		return 0;
	while (jr->npending > 0) {
		struct pending p = jr->pending[0];
		nn_arch a;
		memmove(jr->pending, jr->pending + 1, sizeof(*jr->pending) * (size_t)--jr->npending);
		if ((rc = rt__genome_of(jr, p.seq, &a, err, errlen)) ||
		    (rc = prepare(jr, p.seq, p.rung, &a, 0, NULL, t, hits, err, errlen)))
			return rc;
	}
	for (;;) {
		/* With a lag L, decision j waits for the results of 0..j-L-1 and
		 * sees them in decision order, whenever they came in: the search
		 * is then the same however many workers run it. */
		while (rt__lagged(jr) && jr->fed < jr->nitems - jr->spec.lag) {
			if (!next_fed_is_in(jr))
				return 0;
			if ((rc = feed(jr, err, errlen)))
				return rc;
		}
		rc = decide(jr, t, hits, err, errlen);
		if (rc == 1 || rc < 0)
			return rc;
		if (rc == 2)
			continue;
		/* Nothing to decide on what the search has seen: the next result
		 * in order may make a promotion. */
		if (!rt__lagged(jr) || !next_fed_is_in(jr))
			return 0;
		if ((rc = feed(jr, err, errlen)))
			return rc;
	}
}

/* The task is over for this process, whatever the store said: nothing of
 * it is in flight any more (the store keeps it as running or failed, and a
 * restart runs it again). */
static void end_task(rt_jobrun *jr, rt_jobrun_task *t)
{
	if (--jr->in_flight == 0 && jr->busy_since > 0) {
		jr->wall_before += mono_now() - jr->busy_since;
		jr->busy_since = 0;
	}
	proto_task_clear(&t->task);
	t->live = 0;
}

int rt_jobrun_result(rt_jobrun *jr, rt_jobrun_task *t, const proto_result *r, const char *worker,
                     char *err, size_t errlen)
{
	store_eval e = { .id = t->eval_id, .status = STORE_EVAL_DONE };
	int rc;

	if (!t->live)
		return 0;
	if (t->kind != RT_TASK_EVAL)
		return rt__final_result(jr, t, r, err, errlen);
	e.val_accuracy = r->val_accuracy;
	e.val_loss = r->val_loss;
	e.train_loss = r->train_loss;
	e.wall_s = r->wall_s;
	e.cpu_s = r->cpu_s;
	e.params = r->params;
	e.flops = r->flops;
	e.inherited = r->inherited;
	e.feature_cache = r->feature_cache;
	e.tell_seq = t->rung > 0 && !rt__lagged(jr) ? jr->events : -1;
	snprintf(e.worker, sizeof(e.worker), "%s", worker ? worker : "");
	snprintf(e.weights, sizeof(e.weights), "%s", t->task.save ? t->task.save : "");
	double overhead = jr->overhead_cpu_s + r->setup_cpu_s;
	double wall = search_wall(jr);
	if ((rc = store_begin(jr->st)) || (rc = store_eval_finish(jr->st, &e)) ||
	    (t->curve && (rc = store_eval_set_curve(jr->st, e.id, t->curve))) ||
	    (!rt__lagged(jr) && (rc = record_score(jr, t->seq, t->rung, e.val_accuracy, 0))) ||
	    (rc = store_job_set_inputs(jr->st, jr->job_id, jr->dataset_id, jr->graft_sha,
	                               overhead)) ||
	    (rc = store_job_set_search_wall(jr->st, jr->job_id, wall)) ||
	    (rc = store_commit(jr->st))) {
		store_rollback(jr->st);
		fail(err, errlen, rc, "recording a result: %s", store_errmsg(jr->st));
		end_task(jr, t);
		return rc < 0 ? rc : GRAFT_ESQL;
	}
	jr->overhead_cpu_s = overhead;
	jr->cpu_spent += r->cpu_s;
	/* The key as the store computed it at the start. */
	store_eval full;
	if (store_eval_of(jr->st, t->candidate_id, &full) == 0)
		e = full;
	arrive(jr, t->seq, t->rung, &e);
	if (!rt__lagged(jr))
		learn(jr, t->seq, t->rung);
	end_task(jr, t);
	return 0;
}

int rt_jobrun_failure(rt_jobrun *jr, rt_jobrun_task *t, const char *reason, const char *worker,
                      char *err, size_t errlen)
{
	store_eval e = { .id = t->eval_id, .status = STORE_EVAL_FAILED, .tell_seq = -1 };
	int rc, retry;

	if (!t->live)
		return 0;
	if (t->kind != RT_TASK_EVAL)
		return rt__final_failure(jr, t, reason, err, errlen);
	snprintf(e.error, sizeof(e.error), "%s", reason && reason[0] ? reason : "unknown error");
	snprintf(e.worker, sizeof(e.worker), "%s", worker ? worker : "");
	retry = t->attempt <= jr->spec.retries;
	/* A rung above the first that fails for good leaves the candidate
	 * where it was: its tell stands. */
	if ((rc = store_begin(jr->st)) || (rc = store_eval_finish(jr->st, &e)) ||
	    (!retry && t->rung == 0 && !rt__lagged(jr) &&
	     (rc = store_candidate_tell(jr->st, t->candidate_id, jr->events, NAN))) ||
	    (rc = store_commit(jr->st))) {
		store_rollback(jr->st);
		fail(err, errlen, rc, "recording a failure: %s", store_errmsg(jr->st));
		end_task(jr, t);
		return rc < 0 ? rc : GRAFT_ESQL;
	}
	if (retry) {
		memmove(jr->pending + 1, jr->pending, sizeof(*jr->pending) * (size_t)jr->npending++);
		jr->pending[0] = (struct pending){ t->seq, t->rung };
	} else {
		arrive(jr, t->seq, t->rung, NULL);
		if (!rt__lagged(jr))
			learn(jr, t->seq, t->rung);
	}
	end_task(jr, t);
	return retry;
}

void rt_jobrun_abandon(rt_jobrun *jr, rt_jobrun_task *t)
{
	if (!t->live)
		return;
	if (t->kind != RT_TASK_EVAL) {
		rt__final_abandon(jr, t);
		return;
	}
	/* If this cannot be written, the evaluation stays running in the
	 * store, and the next open marks it interrupted all the same. */
	store_eval_interrupt(jr->st, t->eval_id, "interrupted: the job was stopped");
	memmove(jr->pending + 1, jr->pending, sizeof(*jr->pending) * (size_t)jr->npending++);
	jr->pending[0] = (struct pending){ t->seq, t->rung };
	end_task(jr, t);
}

void rt_jobrun_get_stats(const rt_jobrun *jr, rt_jobrun_stats *s)
{
	const proto_job *j = &jr->spec;

	memset(s, 0, sizeof(*s));
	s->told = search_strategy_told(jr->strat);
	s->asked = search_strategy_asked(jr->strat);
	s->total = j->candidates;
	s->in_flight = jr->in_flight;
	s->cache_hits = jr->cache_hits;
	s->failed = jr->failed;
	s->promotions = jr->promotions;
	s->rungs = rt__nrungs(jr);
	s->best_accuracy = NAN;
	s->best_seq = -1;
	s->best_rung = -1;
	for (int i = 0; i < jr->ncand; i++) {
		const struct cand *k = &jr->c[i];
		s->evaluated += k->ended[0];
		if (k->rung >= 0)
			s->at_rung[k->rung]++;
		/* The best as the leaderboard ranks: the highest rung, then the
		 * highest score there. */
		if (k->rung < 0 || isnan(k->score[k->rung]))
			continue;
		double f = k->score[k->rung];
		if (s->best_seq < 0 || k->rung > s->best_rung ||
		    (k->rung == s->best_rung && f > s->best_accuracy)) {
			s->best_accuracy = f;
			s->best_seq = i;
			s->best_rung = k->rung;
		}
	}
	s->search_wall_s = search_wall(jr);
	s->cpu_s = jr->cpu_spent + jr->overhead_cpu_s;
	s->time_left_s = j->max_time_s > 0 ? fmax(0, j->max_time_s - s->search_wall_s) : NAN;
	s->cpu_left_s = j->max_cpu_s > 0 ? fmax(0, j->max_cpu_s - s->cpu_s) : NAN;
	s->budget_spent = rt_jobrun_budget_spent(jr);
	s->final_phase = jr->final_phase;
	s->final_total = jr->nfinals;
	s->final_winner = -1;
	s->final_val_accuracy = s->final_test_accuracy = NAN;
	for (int i = 0; i < jr->nfinals; i++) {
		const store_final *f = &jr->finals[i];
		s->final_done += f->status == STORE_FINAL_DONE || f->status == STORE_FINAL_FAILED;
		if (f->winner) {
			s->final_winner = rt__seq_of(jr, f->candidate_id);
			s->final_val_accuracy = f->val_accuracy;
			s->final_test_accuracy = f->test_accuracy;
		}
	}
}

int rt_jobrun_complete(const rt_jobrun *jr)
{
	if (!jr->final_phase)
		return jr->spec.final.top == 0 && search_done(jr);
	return rt__final_done(jr);
}
