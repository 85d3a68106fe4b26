/*
 * job.c - the job spec of DESIGN.md: what to search, on which data, how
 * candidates train, which graft they get, and how many workers run them.
 * YAML or JSON (JSON is YAML's flow style, so libyaml reads both and every
 * message carries the line and column of the offending value).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "proto/yaml_doc.h"

/* What a spec may ask for.  Generous for real use, small enough that an
 * absurd spec (a billion channels) is refused here rather than by an
 * allocation failure in a worker. */
#define MAX_WIDTH 1024
#define MAX_CANDIDATES 1000000
#define MAX_POPULATION 10000
#define MAX_WORKERS 256
#define MAX_PARAMS_LIMIT 1000000000LL
#define MAX_FLOPS_LIMIT 1000000000000LL

static const char *const top_keys[] = {
	"name", "dataset", "search", "space", "train", "graft", "workers", "threads",
	"limits", "final", NULL,
};
static const char *const dataset_keys[] = {
	"dir", "format", "train_images", "train_labels", "test_images", "test_labels",
	"validation", "size", "channels", "skip_bad", NULL,
};
static const char *const search_keys[] = {
	"strategy", "population", "sample", "candidates", "seed", "fidelity", "max_time",
	"max_cpu", "warm_start", "lag", NULL,
};
static const char *const fidelity_keys[] = { "rungs", "eta", "slice", NULL };
static const char *const final_keys[] = {
	"top", "steps", "batch", "lr", "momentum", "weight_decay", "warmup", "augment", "graft",
	NULL,
};
static const char *const final_grafts[] = {
	[PROTO_FINAL_FROZEN] = "frozen", [PROTO_FINAL_FINETUNE] = "finetune",
	[PROTO_FINAL_DROP] = "drop", [PROTO_FINAL_BEST] = "best", NULL,
};
static const char *const space_keys[] = {
	"ops", "min_blocks", "max_blocks", "widths", "min_width", "max_width", "min_stem",
	"max_stem", "max_downsamples", "max_params", "max_flops", NULL,
};
static const char *const train_keys[] = {
	"steps", "batch", "lr", "momentum", "nesterov", "weight_decay", "warmup", "augment",
	"inherit", "inherit_steps", NULL,
};
static const char *const graft_keys[] = {
	"source", "layers", "channels", "kernel", "pretrain_steps", NULL,
};
static const char *const limits_keys[] = { "time", "retries", NULL };
static const char *const formats[] = { "idx", "cifar10", "folder", NULL };
static const char *const strategies[] = {
	[SEARCH_EVOLUTION] = "evolution", [SEARCH_RANDOM] = "random", NULL,
};
static const char *const op_names[] = {
	[NN_OP_CONV3] = "conv3", [NN_OP_CONV5] = "conv5", [NN_OP_SEP3] = "sep3",
	[NN_OP_RES3] = "res3", [NN_OP_POOL] = "pool", NULL,
};
static const char *const augments[] = { "crop", "flip", NULL };

static void defaults(proto_job *j)
{
	nn_arch a;

	memset(j, 0, sizeof(*j));
	snprintf(j->name, sizeof(j->name), "search");
	j->dataset.validation = 10000;
	j->dataset.size_h = j->dataset.size_w = 32;
	j->dataset.channels = 3;
	j->strategy = SEARCH_EVOLUTION;
	j->population = 16;
	j->sample = 4;
	j->candidates = 200;
	j->seed = 1;
	search_space_defaults(&j->space);
	nn_arch_defaults(&a);
	j->train = a.train;
	j->train.steps = 300;
	j->train.lr = 0.08f;
	j->inherit = 1;
	j->inherit_steps = -1; /* steps / 2, once steps is known */
	j->graft = PROTO_GRAFT_TARGET;
	j->graft_layers = 2;
	j->graft_channels = 16;
	j->graft_kernel = 3;
	j->graft_steps = 1500;
	j->workers = 1;
	j->threads = 1;
	j->time_limit = 3600;
	j->retries = 2;
	j->lag = 8;
	j->fidelity.eta = 3;
	j->fidelity.slice = 2000;
	j->final.train = j->train;
	j->final.train.steps = 8000;
	j->final.train.lr = 0.1f;
	j->final.train.crop = 1;
	j->final.train.flip = 1;
	j->final.train.warmup = 200;
	j->final.graft = PROTO_FINAL_BEST;
}

static int parse_path(const proto__ymap *m, const char *key, char *buf)
{
	return proto__ymap_str(m, key, PROTO__OPTIONAL, PROTO_PATH_MAX - 1, buf);
}

int proto_is_url(const char *s)
{
	return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

static int is_sha256(const char *s);

/* A dataset file: a path, an http(s) URL, or {url: URL, sha256: HEX}. */
static int parse_file(const proto__ymap *m, const char *key, char *buf, char *sha)
{
	static const char *const keys[] = { "url", "sha256", NULL };
	yaml_node_t *v;
	proto__ymap f;
	int rc;

	if ((rc = proto__ymap_node(m, key, PROTO__OPTIONAL, &v)) || !v)
		return rc;
	if (v->type == YAML_MAPPING_NODE) {
		if ((rc = proto__ymap_map(m, key, PROTO__REQUIRED, keys, &f)) ||
		    (rc = proto__ymap_str(&f, "url", PROTO__REQUIRED, PROTO_PATH_MAX - 1, buf)) ||
		    (rc = proto__ymap_str(&f, "sha256", PROTO__OPTIONAL, 64, sha)))
			return rc;
		if (!proto_is_url(buf))
			return proto__ymap_expected(&f, "url", "an http:// or https:// URL");
		if (sha[0] && !is_sha256(sha))
			return proto__ymap_expected(&f, "sha256", "64 lowercase hex digits");
		return 0;
	}
	if ((rc = parse_path(m, key, buf)))
		return rc;
	if (strstr(buf, "://") && !proto_is_url(buf))
		return proto__ymap_expected(m, key, "a path or an http:// or https:// URL (no "
		                            "other kind is fetched)");
	return 0;
}

/* dataset.size (N or [H, W]), channels and skip_bad: for format: folder only. */
static int parse_folder(const proto__ymap *m, int folder, proto_job *j)
{
	static const char *const only[] = { "size", "channels", "skip_bad" };
	char path[PROTO_YAML_PATH_MAX], item[PROTO_YAML_PATH_MAX + 8];
	yaml_node_t *v;
	int n, rc;

	j->dataset.folder = folder;
	for (size_t i = 0; i < sizeof(only) / sizeof(*only) && !folder; i++)
		if (proto__ymap_get(m, only[i]))
			return proto__ymap_expected(m, only[i], "nothing here: it is for image folders "
			                            "(dataset.format: folder)");
	if (!folder)
		return 0;
	if (!j->dataset.dir[0])
		return proto__ymap_expected(m, "format", "folder with dir: the image folder");
	if ((rc = proto__ymap_int(m, "channels", PROTO__OPTIONAL, 1, 3, NULL,
	                          &j->dataset.channels)))
		return rc;
	if (j->dataset.channels == 2)
		return proto__ymap_expected(m, "channels", "1 (grey) or 3 (RGB)");
	if ((rc = proto__ymap_bool(m, "skip_bad", PROTO__OPTIONAL, &j->dataset.skip_bad)) ||
	    (rc = proto__ymap_node(m, "size", PROTO__OPTIONAL, &v)) || !v)
		return rc;
	proto__ymap_path(m, "size", path, sizeof(path));
	if (v->type == YAML_SCALAR_NODE) {
		if ((rc = proto__ymap_int(m, "size", PROTO__REQUIRED, 4, PROTO_ARCH_MAX_SIDE, NULL,
		                          &j->dataset.size_h)))
			return rc;
		j->dataset.size_w = j->dataset.size_h;
		return 0;
	}
	if ((rc = proto__yseq(m->d, v, path, 2, 2, &n)))
		return rc;
	int *hw[2] = { &j->dataset.size_h, &j->dataset.size_w };
	for (int i = 0; i < 2; i++) {
		snprintf(item, sizeof(item), "%s[%d]", path, i);
		if ((rc = proto__yread_int(m->d, proto__yseq_at(m->d, v, i), item, 4,
		                           PROTO_ARCH_MAX_SIDE, NULL, hw[i])))
			return rc;
	}
	return 0;
}

static int parse_dataset(const proto__ymap *top, proto_job *j)
{
	proto__ymap m;
	int fmt = 0, rc;

	if ((rc = proto__ymap_map(top, "dataset", PROTO__REQUIRED, dataset_keys, &m)))
		return rc;
	if ((rc = proto__ymap_enum(&m, "format", PROTO__OPTIONAL, formats, &fmt)) ||
	    (rc = parse_path(&m, "dir", j->dataset.dir)) ||
	    (rc = parse_file(&m, "train_images", j->dataset.train_images,
	                     j->dataset.train_images_sha256)) ||
	    (rc = parse_file(&m, "train_labels", j->dataset.train_labels,
	                     j->dataset.train_labels_sha256)) ||
	    (rc = parse_file(&m, "test_images", j->dataset.test_images,
	                     j->dataset.test_images_sha256)) ||
	    (rc = parse_file(&m, "test_labels", j->dataset.test_labels,
	                     j->dataset.test_labels_sha256)) ||
	    (rc = proto__ymap_int(&m, "validation", PROTO__OPTIONAL, 1, 10000000, NULL,
	                          &j->dataset.validation)))
		return rc;
	if ((rc = parse_folder(&m, fmt == 2, j)))
		return rc;
	if (j->dataset.folder && strstr(j->dataset.dir, "://") && !proto_is_url(j->dataset.dir))
		return proto__ymap_expected(&m, "dir", "a folder, an archive of one, or an http:// "
		                            "or https:// URL of an archive");
	if (!j->dataset.folder && strstr(j->dataset.dir, "://"))
		return proto__ymap_expected(&m, "dir", "a local directory (give URLs file by file: "
		                            "train_images, train_labels, ...; or an image folder's "
		                            "archive with format: folder)");
	int files = j->dataset.train_images[0] || j->dataset.train_labels[0];
	if (j->dataset.dir[0] && (files || j->dataset.test_images[0] || j->dataset.test_labels[0]))
		return proto__ydoc_fail(m.d, m.node, "dataset: expected either dir or the "
		                        "IDX files (train_images, ...), not both");
	if (!j->dataset.dir[0] && !(j->dataset.train_images[0] && j->dataset.train_labels[0]))
		return proto__ydoc_fail(m.d, m.node, "dataset: expected dir, or train_images "
		                        "and train_labels");
	if (!j->dataset.test_images[0] != !j->dataset.test_labels[0])
		return proto__ydoc_fail(m.d, m.node, "dataset: expected test_images and "
		                        "test_labels together, or neither");
	if (fmt == 1 && !j->dataset.dir[0])
		return proto__ymap_expected(&m, "format", "idx with separate files (cifar10 "
		                            "batches are read from dir)");
	return 0;
}

/* lo_key's value lo is above hi_key's hi (both in m): the error names
 * whichever of the two the user wrote, and says when the other is a default. */
static int bounds(const proto__ymap *m, const char *lo_key, int lo, const char *hi_key, int hi)
{
	char a[160], b[160], pa[PROTO_YAML_PATH_MAX], pb[PROTO_YAML_PATH_MAX];
	snprintf(a, sizeof(a), "at most %s (%d%s)", proto__ymap_path(m, hi_key, pa, sizeof(pa)),
	         hi, proto__ymap_get(m, hi_key) ? "" : ", its default");
	snprintf(b, sizeof(b), "at least %s (%d%s)", proto__ymap_path(m, lo_key, pb, sizeof(pb)),
	         lo, proto__ymap_get(m, lo_key) ? "" : ", its default");
	return proto__ymap_conflict(m, lo_key, a, hi_key, b);
}

/* A duration: seconds as a number, or a string of a number and a unit,
 * "90s", "30m", "2h", "1.5h", "1d". */
static int parse_duration(const proto__ymap *m, const char *key, double *out)
{
	static const char what[] = "a duration: seconds, or a number with s, m, h or d "
	                           "(\"90m\", \"2h\"), more than 0 and at most 365 days";
	char text[64];
	yaml_node_t *v;
	int rc;

	if ((rc = proto__ymap_node(m, key, PROTO__OPTIONAL, &v)) || !v)
		return rc;
	if (v->type != YAML_SCALAR_NODE || v->data.scalar.length >= sizeof(text))
		return proto__ymap_expected(m, key, what);
	memcpy(text, v->data.scalar.value, v->data.scalar.length);
	text[v->data.scalar.length] = '\0';
	char *end;
	double x = strtod(text, &end), unit = 1;
	if (end == text)
		return proto__ymap_expected(m, key, what);
	if (*end && !end[1]) {
		switch (*end++) {
		case 's': unit = 1; break;
		case 'm': unit = 60; break;
		case 'h': unit = 3600; break;
		case 'd': unit = 86400; break;
		default: end--; break;
		}
	}
	x *= unit;
	if (*end || !(x > 0 && x <= 365 * 86400.0))
		return proto__ymap_expected(m, key, what);
	*out = x;
	return 0;
}

/* search.fidelity: rungs of cumulative steps, strictly increasing. */
static int parse_fidelity(const proto__ymap *search, proto_job *j)
{
	char path[PROTO_YAML_PATH_MAX], item_path[PROTO_YAML_PATH_MAX + 16];
	search_fidelity *f = &j->fidelity;
	yaml_node_t *v;
	proto__ymap m;
	int n, rc;

	if ((rc = proto__ymap_map(search, "fidelity", PROTO__OPTIONAL, fidelity_keys, &m)) ||
	    m.node == NULL)
		return rc;
	if ((rc = proto__ymap_node(&m, "rungs", PROTO__REQUIRED, &v)))
		return rc;
	proto__ymap_path(&m, "rungs", path, sizeof(path));
	if ((rc = proto__yseq(m.d, v, path, 2, SEARCH_MAX_RUNGS, &n)))
		return rc;
	for (int i = 0; i < n; i++) {
		snprintf(item_path, sizeof(item_path), "%s[%d]", path, i);
		if ((rc = proto__yread_int(m.d, proto__yseq_at(m.d, v, i), item_path,
		                           i ? f->rungs[i - 1] + 1 : 1, 10000000,
		                           i ? "more steps than the rung before (rungs count the "
		                               "steps from the start)" : NULL, &f->rungs[i])))
			return rc;
	}
	f->nrungs = n;
	if ((rc = proto__ymap_int(&m, "eta", PROTO__OPTIONAL, 2, 100, NULL, &f->eta)) ||
	    (rc = proto__ymap_int(&m, "slice", PROTO__OPTIONAL, 0, 10000000, NULL, &f->slice)))
		return rc;
	return 0;
}

static int parse_search(const proto__ymap *top, proto_job *j)
{
	proto__ymap m;
	int kind = (int)j->strategy, rc;

	if ((rc = proto__ymap_map(top, "search", PROTO__OPTIONAL, search_keys, &m)) ||
	    m.node == NULL)
		return rc;
	if ((rc = proto__ymap_enum(&m, "strategy", PROTO__OPTIONAL, strategies, &kind)) ||
	    (rc = proto__ymap_int(&m, "population", PROTO__OPTIONAL, 1, MAX_POPULATION, NULL,
	                          &j->population)) ||
	    (rc = proto__ymap_int(&m, "sample", PROTO__OPTIONAL, 1, MAX_POPULATION, NULL,
	                          &j->sample)) ||
	    (rc = proto__ymap_int(&m, "candidates", PROTO__OPTIONAL, 1, MAX_CANDIDATES, NULL,
	                          &j->candidates)) ||
	    (rc = proto__ymap_u64(&m, "seed", PROTO__OPTIONAL, (1ULL << 53), NULL, &j->seed)))
		return rc;
	j->strategy = (enum search_kind)kind;
	if (j->sample > j->population)
		return bounds(&m, "sample", j->sample, "population", j->population);
	if ((rc = parse_duration(&m, "max_time", &j->max_time_s)) ||
	    (rc = parse_duration(&m, "max_cpu", &j->max_cpu_s)) ||
	    (rc = proto__ymap_int(&m, "lag", PROTO__OPTIONAL, 0, 1000, NULL, &j->lag)) ||
	    (rc = proto__ymap_int(&m, "warm_start", PROTO__OPTIONAL, 1, 2000000000,
	                          "the id of an earlier job (a positive integer)",
	                          &j->warm_start)))
		return rc;
	return parse_fidelity(&m, j);
}

/* A list of distinct names from names, as a bit set. */
static int parse_name_set(const proto__ymap *m, const char *key, const char *const *names,
                          int *bits)
{
	char path[PROTO_YAML_PATH_MAX], item_path[PROTO_YAML_PATH_MAX + 16];
	yaml_node_t *v;
	int n, rc, which, set = 0;

	if ((rc = proto__ymap_node(m, key, PROTO__OPTIONAL, &v)) || v == NULL)
		return rc;
	proto__ymap_path(m, key, path, sizeof(path));
	if ((rc = proto__yseq(m->d, v, path, 0, 16, &n)))
		return rc;
	for (int i = 0; i < n; i++) {
		yaml_node_t *item = proto__yseq_at(m->d, v, i);
		snprintf(item_path, sizeof(item_path), "%s[%d]", path, i);
		if ((rc = proto__yread_enum(m->d, item, item_path, names, &which)))
			return rc;
		if (set & (1 << which))
			return proto__ydoc_expected(m->d, item, item_path, "each name at most once");
		set |= 1 << which;
	}
	*bits = set;
	return 0;
}

static int parse_widths(const proto__ymap *m, search_space *s)
{
	char path[PROTO_YAML_PATH_MAX], item_path[PROTO_YAML_PATH_MAX + 16];
	yaml_node_t *v;
	int n, rc;

	if ((rc = proto__ymap_node(m, "widths", PROTO__OPTIONAL, &v)) || v == NULL)
		return rc;
	proto__ymap_path(m, "widths", path, sizeof(path));
	if ((rc = proto__yseq(m->d, v, path, 1, SEARCH_MAX_WIDTHS, &n)))
		return rc;
	for (int i = 0; i < n; i++) {
		snprintf(item_path, sizeof(item_path), "%s[%d]", path, i);
		if ((rc = proto__yread_int(m->d, proto__yseq_at(m->d, v, i), item_path, 1,
		                           MAX_WIDTH, NULL, &s->widths[i])))
			return rc;
	}
	s->nwidths = n;
	return 0;
}

static int parse_space(const proto__ymap *top, proto_job *j)
{
	search_space *s = &j->space;
	proto__ymap m;
	int rc;

	if ((rc = proto__ymap_map(top, "space", PROTO__OPTIONAL, space_keys, &m)) ||
	    m.node == NULL)
		return rc;
	if ((rc = parse_name_set(&m, "ops", op_names, &s->ops)) ||
	    (rc = parse_widths(&m, s)) ||
	    (rc = proto__ymap_int(&m, "min_blocks", PROTO__OPTIONAL, 1, NN_MAX_BLOCKS, NULL,
	                          &s->min_blocks)) ||
	    (rc = proto__ymap_int(&m, "max_blocks", PROTO__OPTIONAL, 1, NN_MAX_BLOCKS, NULL,
	                          &s->max_blocks)) ||
	    (rc = proto__ymap_int(&m, "min_width", PROTO__OPTIONAL, 1, MAX_WIDTH, NULL,
	                          &s->min_width)) ||
	    (rc = proto__ymap_int(&m, "max_width", PROTO__OPTIONAL, 1, MAX_WIDTH, NULL,
	                          &s->max_width)) ||
	    (rc = proto__ymap_int(&m, "min_stem", PROTO__OPTIONAL, 1, MAX_WIDTH, NULL,
	                          &s->stem_min)) ||
	    (rc = proto__ymap_int(&m, "max_stem", PROTO__OPTIONAL, 1, MAX_WIDTH, NULL,
	                          &s->stem_max)) ||
	    (rc = proto__ymap_int(&m, "max_downsamples", PROTO__OPTIONAL, 0, 16, NULL,
	                          &s->max_downsamples)) ||
	    (rc = proto__ymap_i64(&m, "max_params", PROTO__OPTIONAL, 1, MAX_PARAMS_LIMIT, NULL,
	                          &s->max_params)) ||
	    (rc = proto__ymap_i64(&m, "max_flops", PROTO__OPTIONAL, 1, MAX_FLOPS_LIMIT, NULL,
	                          &s->max_flops)))
		return rc;
	/* A range written without a list replaces the default list. */
	if (!proto__ymap_get(&m, "widths") &&
	    (proto__ymap_get(&m, "min_width") || proto__ymap_get(&m, "max_width")))
		s->nwidths = 0;
	if (s->ops == 0)
		return proto__ymap_expected(&m, "ops", "at least one of conv3, conv5, sep3, res3, pool");
	if (s->ops == (1 << NN_OP_POOL))
		return proto__ymap_expected(&m, "ops", "an op besides pool");
	if (s->min_blocks > s->max_blocks)
		return bounds(&m, "min_blocks", s->min_blocks, "max_blocks", s->max_blocks);
	if (s->min_width > s->max_width)
		return bounds(&m, "min_width", s->min_width, "max_width", s->max_width);
	if (s->stem_min > s->stem_max)
		return bounds(&m, "min_stem", s->stem_min, "max_stem", s->stem_max);
	return 0;
}

static int parse_train(const proto__ymap *top, proto_job *j)
{
	nn_recipe *r = &j->train;
	double lr = r->lr, mom = r->momentum, wd = r->weight_decay;
	proto__ymap m;
	int aug = 0, rc;

	if ((rc = proto__ymap_map(top, "train", PROTO__OPTIONAL, train_keys, &m)) ||
	    m.node == NULL)
		return rc;
	if ((rc = proto__ymap_int(&m, "steps", PROTO__OPTIONAL, 1, 10000000, NULL, &r->steps)) ||
	    (rc = proto__ymap_int(&m, "batch", PROTO__OPTIONAL, 1, 4096, NULL, &r->batch)) ||
	    (rc = proto__ymap_double(&m, "lr", PROTO__OPTIONAL, 1e-6, 10, NULL, &lr)) ||
	    (rc = proto__ymap_double(&m, "momentum", PROTO__OPTIONAL, 0, 1, NULL, &mom)) ||
	    (rc = proto__ymap_double(&m, "weight_decay", PROTO__OPTIONAL, 0, 1, NULL, &wd)) ||
	    (rc = proto__ymap_bool(&m, "nesterov", PROTO__OPTIONAL, &r->nesterov)) ||
	    (rc = proto__ymap_int(&m, "warmup", PROTO__OPTIONAL, 0, r->steps,
	                          "an integer from 0 to train.steps", &r->warmup)) ||
	    (rc = parse_name_set(&m, "augment", augments, &aug)) ||
	    (rc = proto__ymap_bool(&m, "inherit", PROTO__OPTIONAL, &j->inherit)) ||
	    (rc = proto__ymap_int(&m, "inherit_steps", PROTO__OPTIONAL, 1, r->steps,
	                          "an integer from 1 to train.steps", &j->inherit_steps)))
		return rc;
	r->lr = (float)lr;
	r->momentum = (float)mom;
	r->weight_decay = (float)wd;
	r->crop = (aug & 1) != 0; /* a flag here; the padding follows the images */
	r->flip = (aug & 2) != 0;
	if (r->nesterov && r->momentum == 0.0f)
		return proto__ymap_expected(&m, "nesterov", "false when momentum is 0");
	return 0;
}

static int is_sha256(const char *s)
{
	if (strlen(s) != 64)
		return 0;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return 0;
	return 1;
}

static int parse_graft(const proto__ymap *top, proto_job *j)
{
	static const char *const sources[] = { "none", "target", "synthetic", "random", "glyphs",
	                                       "rotations", "exemplars", "mixture", "universal",
	                                       "textures", NULL };
	char source[80] = "";
	proto__ymap m;
	int rc;

	if ((rc = proto__ymap_map(top, "graft", PROTO__OPTIONAL, graft_keys, &m)) ||
	    m.node == NULL)
		return rc;
	if ((rc = proto__ymap_str(&m, "source", PROTO__OPTIONAL, sizeof(source) - 1, source)) ||
	    (rc = proto__ymap_int(&m, "layers", PROTO__OPTIONAL, 1, NN_MAX_GRAFT_LAYERS, NULL,
	                          &j->graft_layers)) ||
	    (rc = proto__ymap_int(&m, "channels", PROTO__OPTIONAL, 1, 256, NULL,
	                          &j->graft_channels)) ||
	    (rc = proto__ymap_int(&m, "kernel", PROTO__OPTIONAL, 1, 7, "an odd integer 1..7",
	                          &j->graft_kernel)) ||
	    (rc = proto__ymap_int(&m, "pretrain_steps", PROTO__OPTIONAL, 1, 10000000, NULL,
	                          &j->graft_steps)))
		return rc;
	if (j->graft_kernel % 2 == 0)
		return proto__ymap_expected(&m, "kernel", "an odd integer 1..7");
	if (!source[0])
		return 0;
	for (int i = 0; sources[i]; i++)
		if (!strcmp(source, sources[i])) {
			j->graft = (enum proto_graft_source)i;
			return 0;
		}
	if (!is_sha256(source))
		return proto__ymap_expected(&m, "source", "none, target, synthetic, random, glyphs, "
		                            "rotations, exemplars, mixture, universal, textures or the "
		                            "sha256 of a stored graft (64 hex digits)");
	j->graft = PROTO_GRAFT_STORED;
	snprintf(j->graft_sha256, sizeof(j->graft_sha256), "%s", source);
	return 0;
}

/* final: the recipe the best architectures are trained to the end with. */
static int parse_final(const proto__ymap *top, proto_job *j)
{
	nn_recipe *r = &j->final.train;
	double lr = r->lr, mom = r->momentum, wd = r->weight_decay;
	int aug = (r->crop ? 1 : 0) | (r->flip ? 2 : 0), graft = (int)j->final.graft, rc;
	proto__ymap m;

	if ((rc = proto__ymap_map(top, "final", PROTO__OPTIONAL, final_keys, &m)) ||
	    m.node == NULL)
		return rc;
	j->final.top = 3;
	if ((rc = proto__ymap_int(&m, "top", PROTO__OPTIONAL, 0, 100, NULL, &j->final.top)) ||
	    (rc = proto__ymap_int(&m, "steps", PROTO__OPTIONAL, 1, 10000000, NULL, &r->steps)) ||
	    (rc = proto__ymap_int(&m, "batch", PROTO__OPTIONAL, 1, 4096, NULL, &r->batch)) ||
	    (rc = proto__ymap_double(&m, "lr", PROTO__OPTIONAL, 1e-6, 10, NULL, &lr)) ||
	    (rc = proto__ymap_double(&m, "momentum", PROTO__OPTIONAL, 0, 1, NULL, &mom)) ||
	    (rc = proto__ymap_double(&m, "weight_decay", PROTO__OPTIONAL, 0, 1, NULL, &wd)) ||
	    (rc = parse_name_set(&m, "augment", augments, &aug)) ||
	    (rc = proto__ymap_enum(&m, "graft", PROTO__OPTIONAL, final_grafts, &graft)))
		return rc;
	if (r->warmup > r->steps / 4)
		r->warmup = r->steps / 4;
	if ((rc = proto__ymap_int(&m, "warmup", PROTO__OPTIONAL, 0, r->steps,
	                          "an integer from 0 to final.steps", &r->warmup)))
		return rc;
	r->lr = (float)lr;
	r->momentum = (float)mom;
	r->weight_decay = (float)wd;
	r->crop = (aug & 1) != 0;
	r->flip = (aug & 2) != 0;
	j->final.graft = (enum proto_final_graft)graft;
	return 0;
}

static int parse_doc(proto__ydoc *d, proto_job *j)
{
	proto__ymap top, lim;
	int rc;

	if ((rc = proto__ymap_open(d, proto__ydoc_root(d), "", top_keys, &top)) ||
	    (rc = proto__ymap_str(&top, "name", PROTO__OPTIONAL, sizeof(j->name) - 1, j->name)) ||
	    (rc = parse_dataset(&top, j)) ||
	    (rc = parse_search(&top, j)) ||
	    (rc = parse_space(&top, j)) ||
	    (rc = parse_train(&top, j)) ||
	    (rc = parse_graft(&top, j)) ||
	    (rc = parse_final(&top, j)) ||
	    (rc = proto__ymap_int(&top, "workers", PROTO__OPTIONAL, 1, MAX_WORKERS, NULL,
	                          &j->workers)) ||
	    (rc = proto__ymap_int(&top, "threads", PROTO__OPTIONAL, 1, 256, NULL, &j->threads)) ||
	    (rc = proto__ymap_map(&top, "limits", PROTO__OPTIONAL, limits_keys, &lim)))
		return rc;
	if (lim.node &&
	    ((rc = proto__ymap_int(&lim, "time", PROTO__OPTIONAL, 1, 7 * 86400,
	                           "seconds per candidate, 1..604800", &j->time_limit)) ||
	     (rc = proto__ymap_int(&lim, "retries", PROTO__OPTIONAL, 0, 100, NULL,
	                           &j->retries))))
		return rc;
	if (j->fidelity.nrungs) {
		/* With rungs, a candidate's whole budget is the top rung. */
		int topr = j->fidelity.rungs[j->fidelity.nrungs - 1];
		yaml_node_t *steps = NULL;
		proto__ymap tr;
		if (proto__ymap_get(&top, "train") &&
		    !proto__ymap_map(&top, "train", PROTO__OPTIONAL, train_keys, &tr))
			steps = proto__ymap_get(&tr, "steps");
		if (steps && j->train.steps != topr)
			return proto__ydoc_fail(d, steps, "train.steps: %d differs from the top rung of "
			                        "search.fidelity.rungs (%d), which is a candidate's whole "
			                        "budget; leave train.steps out", j->train.steps, topr);
		j->train.steps = topr;
		if (j->train.warmup > j->fidelity.rungs[0])
			j->train.warmup = j->fidelity.rungs[0];
	}
	if (j->inherit_steps < 0)
		j->inherit_steps = j->train.steps > 1 ? j->train.steps / 2 : 1;
	return 0;
}

int proto_job_parse(const char *text, size_t len, proto_job *out, char *err, size_t errlen)
{
	proto__ydoc d;
	proto_job j;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if ((!text && len) || !out)
		return GRAFT_EINVAL;
	defaults(&j);
	if ((rc = proto__ydoc_load(&d, text ? text : "", len, err, errlen)))
		return rc;
	if (proto__ydoc_root(&d)->type != YAML_MAPPING_NODE)
		rc = proto__ydoc_expected(&d, proto__ydoc_root(&d), "", "a job spec mapping");
	else
		rc = parse_doc(&d, &j);
	proto__ydoc_free(&d);
	if (rc == 0)
		*out = j;
	return rc;
}
