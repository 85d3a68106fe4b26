/*
 * folder.c - an image folder (one subfolder per class) decoded once, in
 * parallel, into a graft-images/1 file that every worker then reads in
 * milliseconds (nn_folder_prepare in nn.h).
 *
 * The file is named by a key over what the folder holds (paths, sizes,
 * modification times) and how it is decoded, so an unchanged folder costs a
 * listing and a changed one is noticed.  Everything that can be wrong with a
 * folder is found before anything is written, and said in a sentence that
 * names the folder or file.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "nn/folder_internal.h"

/* One image file of the folder. */
typedef struct entry {
	char *path;       /* dir/[part/]class/name */
	const char *rel;  /* class/name, inside path */
	int label, part;  /* part 0: training, 1: test */
	long long size, mtime_ns;
	uint64_t order;   /* training images are stored sorted by this hash */
	char *err;        /* why it did not decode, or NULL */
} entry;

typedef struct listing {
	entry *e;
	int n, cap;
	char **classes;   /* sorted class folder names */
	int nclasses;
	int ignored;
} listing;

static void listing_free(listing *l)
{
	for (int i = 0; i < l->n; i++) {
		free(l->e[i].path);
		free(l->e[i].err);
	}
	for (int k = 0; k < l->nclasses; k++)
		free(l->classes[k]);
	free(l->e);
	free(l->classes);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names in dir of the subfolders (dirs 1) or regular files (0),
 * leaving out names that start with '.'. */
static int list_dir(const char *dir, int dirs, char ***out, int *n, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[4200];
	int cap = 0;

	*out = NULL;
	*n = 0;
	if (d == NULL)
		return graft_errf(err, errlen, GRAFT_EIO, "%s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (stat(path, &st) || (dirs ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)))
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			char **m = realloc(*out, sizeof(char *) * (size_t)cap);
			if (m == NULL)
				break;
			*out = m;
		}
		if (((*out)[*n] = strdup(de->d_name)) == NULL)
			break;
		(*n)++;
	}
	int failed = de != NULL;
	closedir(d);
	if (failed) {
		for (int i = 0; i < *n; i++)
			free((*out)[i]);
		free(*out);
		*out = NULL;
		return graft_errf(err, errlen, GRAFT_ENOMEM, "%s: out of memory", dir);
	}
	if (*n > 1)
		qsort(*out, (size_t)*n, sizeof(char *), cmp_str);
	return 0;
}

static void free_names(char **names, int n)
{
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Adds the images of dir/<class>/ for every class folder of dir to l, as part
 * `part`; the training part (0) fixes the classes. */
static int list_part(const char *dir, int part, listing *l, char *err, size_t errlen)
{
	char **classes, **files, cdir[4200];
	int nclasses, nfiles, rc;

	if ((rc = list_dir(dir, 1, &classes, &nclasses, err, errlen)))
		return rc;
	if (part == 0) {
		l->classes = classes;
		l->nclasses = nclasses;
		if (nclasses < 2) {
			return graft_errf(err, errlen, GRAFT_EINVAL, "%s: %s; a classifier needs at "
			                  "least two classes, one folder of images each", dir,
			                  nclasses ? "only one class folder" : "no class folders");
		}
		if (nclasses > NN_FOLDER_MAX_CLASSES)
			return graft_errf(err, errlen, GRAFT_EINVAL, "%s: %d class folders; graft "
			                  "classifies at most %d classes", dir, nclasses,
			                  NN_FOLDER_MAX_CLASSES);
		for (int k = 0; k < nclasses; k++) {
			json_t *s = json_string(classes[k]);
			json_decref(s);
			if (s == NULL || strlen(classes[k]) > 255)
				return graft_errf(err, errlen, GRAFT_EINVAL, "%s/%s: a class folder name "
				                  "must be UTF-8 of at most 255 bytes", dir, classes[k]);
		}
	}
	rc = 0;
	for (int k = 0; k < nclasses && !rc; k++) {
		char **found = bsearch(&classes[k], l->classes, (size_t)l->nclasses, sizeof(char *),
		                       cmp_str);
		snprintf(cdir, sizeof cdir, "%s/%s", dir, classes[k]);
		if (found == NULL) {
			rc = graft_errf(err, errlen, GRAFT_EINVAL, "%s: a test class that the training "
			                "part has no folder for", cdir);
			break;
		}
		if ((rc = list_dir(cdir, 0, &files, &nfiles, err, errlen)))
			break;
		int images = 0;
		for (int i = 0; i < nfiles && !rc; i++) {
			struct stat st;
			char path[4400];
			if (!nn_image_is_image_name(files[i])) {
				l->ignored++;
				continue;
			}
			if (l->n == NN_FOLDER_MAX_IMAGES) {
				rc = graft_errf(err, errlen, GRAFT_EINVAL, "%s: more than %d images", dir,
				                NN_FOLDER_MAX_IMAGES);
				break;
			}
			if (l->n == l->cap) {
				int cap = l->cap ? 2 * l->cap : 1024;
				entry *m = realloc(l->e, sizeof(entry) * (size_t)cap);
				if (m == NULL) {
					rc = graft_errf(err, errlen, GRAFT_ENOMEM, "%s: out of memory", dir);
					break;
				}
				l->e = m;
				l->cap = cap;
			}
			snprintf(path, sizeof path, "%s/%s", cdir, files[i]);
			entry *e = &l->e[l->n];
			memset(e, 0, sizeof *e);
			if ((e->path = strdup(path)) == NULL) {
				rc = graft_errf(err, errlen, GRAFT_ENOMEM, "%s: out of memory", dir);
				break;
			}
			l->n++;
			e->rel = e->path + strlen(dir) + 1;
			e->label = (int)(found - l->classes);
			e->part = part;
			if (stat(path, &st) == 0) {
				e->size = (long long)st.st_size;
				e->mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
			}
			images++;
		}
		free_names(files, nfiles);
		if (!rc && images == 0)
			rc = graft_errf(err, errlen, GRAFT_EINVAL, "%s: no images (.png, .jpg, .jpeg) in "
			                "this class folder", cdir);
	}
	if (part != 0)
		free_names(classes, nclasses);
	return rc;
}

/* Whether dir/name is a directory. */
static int is_dir(const char *dir, const char *name)
{
	char path[4200];
	struct stat st;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int list_folder(const char *dir, listing *l, char *err, size_t errlen)
{
	char sub[4200];
	int rc;

	memset(l, 0, sizeof *l);
	if (!is_dir(dir, "."))
		return graft_errf(err, errlen, GRAFT_EIO, "%s: not a directory", dir);
	if (!(is_dir(dir, "train") && is_dir(dir, "test")))
		return list_part(dir, 0, l, err, errlen);
	snprintf(sub, sizeof sub, "%s/train", dir);
	if ((rc = list_part(sub, 0, l, err, errlen)))
		return rc;
	snprintf(sub, sizeof sub, "%s/test", dir);
	return list_part(sub, 1, l, err, errlen);
}

/* The key: the format, the options and every file's place, size and time. */
static void folder_key(const nn_folder_opts *o, const listing *l, char key[65])
{
	nn_sha256 h;
	char buf[128];
	int n = snprintf(buf, sizeof buf, "graft-images/1;%d %d %d %d;", o->c, o->h, o->w,
	                 o->skip_bad ? 1 : 0);

	nn_sha256_init(&h);
	nn_sha256_update(&h, buf, (size_t)n);
	for (int k = 0; k < l->nclasses; k++)
		nn_sha256_update(&h, l->classes[k], strlen(l->classes[k]) + 1);
	for (int i = 0; i < l->n; i++) {
		const entry *e = &l->e[i];
		n = snprintf(buf, sizeof buf, ";%d %lld %lld ", e->part, e->size, e->mtime_ns);
		nn_sha256_update(&h, buf, (size_t)n);
		nn_sha256_update(&h, e->rel, strlen(e->rel) + 1);
	}
	nn_sha256_final(&h, key);
}

/* Decodes e into out (c x h x w bytes). */
static int decode(const nn_folder_opts *o, entry *e, uint8_t *out)
{
	char msg[GRAFT_ERRLEN];
	nn_image img;
	int rc = nn_image_read(e->path, o->w, o->h, &img, msg, sizeof msg);

	if (rc == 0 && (rc = nn_image_to_channels(&img, o->c)) != 0)
		snprintf(msg, sizeof msg, "%s: out of memory", e->path);
	for (int ch = 0; ch < o->c && rc == 0; ch++)
		if ((rc = nn_image_resize_plane(&img, ch, out + (size_t)ch * o->h * o->w, o->w, o->h)))
			snprintf(msg, sizeof msg, "%s: out of memory", e->path);
	nn_image_free(&img);
	if (rc)
		e->err = strdup(msg);
	return rc;
}

/* The first 64 bits of the SHA-256 of a path: where a training image goes. */
static uint64_t path_order(const char *rel)
{
	char hex[65];
	uint64_t v = 0;

	nn_sha256_hex(rel, strlen(rel), hex);
	for (int i = 0; i < 16; i++)
		v = v << 4 | (uint64_t)(hex[i] <= '9' ? hex[i] - '0' : hex[i] - 'a' + 10);
	return v;
}

static int cmp_order(const void *a, const void *b)
{
	const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
	if (x->part != y->part)
		return x->part - y->part;
	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return strcmp(x->rel, y->rel);
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* The class names of l, NUL-separated (malloc'd). */
static char *names_of(const listing *l)
{
	size_t len = 0;
	for (int k = 0; k < l->nclasses; k++)
		len += strlen(l->classes[k]) + 1;
	char *names = malloc(len);
	len = 0;
	for (int k = 0; names && k < l->nclasses; k++) {
		memcpy(names + len, l->classes[k], strlen(l->classes[k]) + 1);
		len += strlen(l->classes[k]) + 1;
	}
	return names;
}

/* Decodes l into a graft-images/1 file at path.  The order is known before
 * any pixel (it is the paths'), so every image is decoded straight into its
 * place, and the bad ones are squeezed out after. */
static int decode_all(const nn_folder_opts *o, listing *l, const char *key, const char *path,
                      nn_folder_report *rep, char *err, size_t errlen)
{
	size_t chw = (size_t)o->c * o->h * o->w;
	uint8_t *px = malloc(chw * (size_t)l->n), *labels = malloc((size_t)l->n);
	entry **sorted = malloc(sizeof(entry *) * (size_t)l->n);
	int *per_class = calloc((size_t)l->nclasses, sizeof(int));
	char *names = names_of(l);
	int threads = o->threads > 0 ? o->threads : nn_threads(), rc = 0;

	if (!px || !labels || !sorted || !per_class || !names) {
		rc = graft_errf(err, errlen, GRAFT_ENOMEM, "%s: out of memory for %d images", o->dir,
		                l->n);
		goto out;
	}
	for (int i = 0; i < l->n; i++) {
		l->e[i].order = path_order(l->e[i].rel);
		sorted[i] = &l->e[i];
	}
	qsort(sorted, (size_t)l->n, sizeof(entry *), cmp_order);
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
	for (int i = 0; i < l->n; i++)
		decode(o, sorted[i], px + chw * (size_t)i);
	nn__images f = { .c = o->c, .h = o->h, .w = o->w, .classes = l->nclasses, .names = names };
	const entry *first_bad = NULL; /* in listing order: the one reported */
	int kept = 0;
	for (int i = 0; i < l->n; i++) {
		const entry *e = sorted[i];
		if (e->err) {
			f.skipped++;
			if (!first_bad || e < first_bad)
				first_bad = e;
			continue;
		}
		if (kept < i)
			memcpy(px + chw * (size_t)kept, px + chw * (size_t)i, chw);
		labels[kept++] = (uint8_t)e->label;
		f.n[e->part]++;
		per_class[e->label] += e->part == 0;
	}
	if (first_bad && rep)
		snprintf(rep->first_skipped, sizeof rep->first_skipped, "%s", first_bad->err);
	if (first_bad && !o->skip_bad) {
		rc = graft_errf(err, errlen, GRAFT_EFORMAT, "%s%s", first_bad->err,
		                f.skipped > 1 ? " (and more bad images; dataset.skip_bad: true skips "
		                                "them)" : " (dataset.skip_bad: true skips bad images)");
		goto out;
	}
	for (int k = 0; k < l->nclasses; k++)
		if (per_class[k] == 0) {
			rc = graft_errf(err, errlen, GRAFT_EINVAL, "%s: every image of class %s is bad",
			                o->dir, l->classes[k]);
			goto out;
		}
	memcpy(f.key, key, 65);
	f.pixels[0] = px;
	f.labels[0] = labels;
	f.pixels[1] = px + chw * (size_t)f.n[0];
	f.labels[1] = labels + f.n[0];
	rc = nn__images_write(path, &f, err, errlen);
	if (rc == 0 && rep) {
		rep->train = f.n[0];
		rep->test = f.n[1];
		rep->skipped = f.skipped;
	}
out:
	free(px);
	free(labels);
	free(sorted);
	free(per_class);
	free(names);
	return rc;
}

int nn_folder_prepare(const nn_folder_opts *o, char *path, size_t pathlen,
                      nn_folder_report *rep, char *err, size_t errlen)
{
	nn_folder_report scratch;
	listing l;
	char key[65];
	nn__images have;
	double t0 = now_s();
	int rc;

	if (rep == NULL)
		rep = &scratch;
	memset(rep, 0, sizeof *rep);
	if ((o->c != 1 && o->c != 3) || o->h < 1 || o->w < 1 || o->h > NN_IMAGE_MAX_SIDE ||
	    o->w > NN_IMAGE_MAX_SIDE || !o->dir || !o->cache_dir)
		return graft_errf(err, errlen, GRAFT_EINVAL, "image folder: bad options");
	if ((rc = list_folder(o->dir, &l, err, errlen)))
		goto out;
	rep->classes = l.nclasses;
	rep->ignored = l.ignored;
	folder_key(o, &l, key);
	snprintf(path, pathlen, "%s/%s.gimg", o->cache_dir, key);
	if (nn__images_peek(path, &have) == 0 && !strcmp(have.key, key)) {
		rep->reused = 1;
		rep->train = have.n[0];
		rep->test = have.n[1];
		rep->skipped = have.skipped;
		goto out;
	}
	rc = decode_all(o, &l, key, path, rep, err, errlen);
out:
	rep->decode_s = now_s() - t0;
	listing_free(&l);
	return rc;
}
