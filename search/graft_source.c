/*
 * graft_source.c - grafts on demand: pretrained from the job's data, another
 * dataset or synthetic primitives, or random and calibrated, and kept in a
 * cache so that the same request is never pretrained twice.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/nn.h"
#include "search/search.h"

#define SYNTH_IMAGES 50000

void search_user_dir(char *out, size_t len, const char *env_var, const char *xdg_var,
                     const char *home_default)
{
	const char *env = getenv(env_var), *xdg = getenv(xdg_var), *home = getenv("HOME");

	if (env && *env)
		snprintf(out, len, "%s", env);
	else if (xdg && *xdg)
		snprintf(out, len, "%s/graft", xdg);
	else
		snprintf(out, len, "%s/%s/graft", home && *home ? home : "/tmp", home_default);
}

void search_graft_cache_dir(char *out, size_t len)
{
	search_user_dir(out, len, "GRAFT_CACHE_DIR", "XDG_CACHE_HOME", ".cache");
}

int search_make_dirs(const char *path, char *err, size_t errlen)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;
		*p = 0;
		if (mkdir(buf, 0700) && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", buf, strerror(errno));
			return GRAFT_EIO;
		}
		if (!c)
			return 0;
		*p = c;
	}
}

int search_copy_file(const char *from, const char *to, char *err, size_t errlen)
{
	FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
	char buf[65536];
	size_t n;
	int rc = in && out ? 0 : -1;

	while (!rc && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			rc = -1;
	if (in && ferror(in))
		rc = -1;
	if (in)
		fclose(in);
	if (out && fclose(out))
		rc = -1;
	if (rc)
		snprintf(err, errlen, "cannot copy %s to %s: %s", from, to, strerror(errno));
	return rc ? GRAFT_EIO : 0;
}

void search_graft_section(const search_graft_req *r, const char *sha, nn_arch *a)
{
	a->graft_nlayers = r->layers;
	for (int i = 0; i < r->layers; i++) {
		a->graft_kernel[i] = r->kernel;
		a->graft_channels[i] = r->channels;
	}
	snprintf(a->graft_sha256, sizeof(a->graft_sha256), "%s", sha ? sha : "");
	snprintf(a->graft_source, sizeof(a->graft_source), "%s", r->source);
}

static int images_of(const search_graft_req *r)
{
	return r->images > 0 ? r->images : SYNTH_IMAGES;
}

/* Source "glyphs": characters of the target's shape, from the
 * first half of the fonts (the second is kept for testing a graft on fonts
 * it never saw). */
static int glyphs(const search_graft_req *r, int n, nn_dataset *own, char *err, size_t errlen)
{
	const nn_dataset *t = r->target;
	nn_paths fonts = { 0 };
	int rc = nn_glyph_fonts(r->fonts_dir ? r->fonts_dir : SEARCH_FONTS_DIR, 1, &fonts, err,
	                        errlen);
	nn_glyph_opts o = { .fonts = (const char *const *)fonts.p, .nfonts = fonts.n,
	                    .n = n, .c = t->c, .h = t->h, .w = t->w, .seed = r->seed };
	if (!rc)
		rc = nn_glyph_dataset(own, &o, err, errlen);
	nn_paths_clear(&fonts);
	return rc;
}

/* Sources "rotations" and "exemplars": patches of Debian's
 * photos, labelled by the turn applied or by their photo. */
static int patches(const search_graft_req *r, enum nn_patch_task task, int count,
                   nn_dataset *own, char *err, size_t errlen)
{
	const nn_dataset *t = r->target;
	const char *dirs[] = SEARCH_PHOTO_DIRS;
	nn_paths photos = { 0 };
	int rc = nn_patch_photos(dirs, (int)(sizeof(dirs) / sizeof(*dirs)), &photos, err, errlen);
	nn_patch_opts o = { .images = (const char *const *)photos.p,
	                    .nimages = photos.n > 256 ? 256 : photos.n, .task = task, .n = count,
	                    .c = t->c, .h = t->h, .w = t->w, .seed = r->seed };
	if (!rc)
		rc = nn_patch_dataset(own, &o, err, errlen);
	nn_paths_clear(&photos);
	return rc;
}

/* Source "mixture": a third each of glyphs, synthetic primitives and photo
 * rotations, as one task (their classes side by side: 99 + 22 + 4). */
static int mixture(const search_graft_req *r, nn_dataset *own, char *err, size_t errlen)
{
	const nn_dataset *t = r->target;
	nn_dataset part[3] = { 0 };
	int third = images_of(r) / 3, rc;

	memset(own, 0, sizeof(*own));
	if ((rc = glyphs(r, third, &part[0], err, errlen)) ||
	    (rc = nn_synth_dataset(&part[1], third, t->c, t->h, t->w, r->seed, err, errlen)) ||
	    (rc = patches(r, NN_PATCH_ROTATION, third, &part[2], err, errlen)))
		goto done;
	size_t chw = (size_t)t->c * t->h * t->w;
	own->pixels = malloc(chw * 3 * third);
	own->labels = malloc((size_t)3 * third);
	if (!own->pixels || !own->labels) {
		rc = GRAFT_ENOMEM;
		snprintf(err, errlen, "mixture: out of memory");
		goto done;
	}
	int offset = 0;
	for (int k = 0; k < 3; k++) {
		memcpy(own->pixels + chw * k * third, part[k].pixels, chw * third);
		for (int i = 0; i < third; i++)
			own->labels[k * third + i] = (uint8_t)(offset + part[k].labels[i]);
		offset += part[k].classes;
	}
	own->n = 3 * third;
	own->c = t->c;
	own->h = t->h;
	own->w = t->w;
	own->classes = offset;
done:
	for (int k = 0; k < 3; k++)
		nn_dataset_free(&part[k]);
	if (rc)
		nn_dataset_free(own);
	return rc;
}

/* The data a source pretrains on, and the normalization it uses there. */
static int source_data(const search_graft_req *r, nn_dataset *own, const nn_dataset **ds,
                       float *mean, float *std, char *err, size_t errlen)
{
	const nn_dataset *t = r->target;
	int rc = 0;

	memset(own, 0, sizeof(*own));
	if (!strcmp(r->source, "target") || !strcmp(r->source, "random")) {
		/* random calibrates its BN statistics on the data it will see. */
		*ds = t;
		memcpy(mean, r->target_mean, sizeof(float) * t->c);
		memcpy(std, r->target_std, sizeof(float) * t->c);
		return 0;
	}
	if (!strcmp(r->source, "synthetic"))
		rc = nn_synth_dataset(own, images_of(r), t->c, t->h, t->w, r->seed, err, errlen);
	else if (!strcmp(r->source, "textures"))
		rc = nn_texture_dataset(own, images_of(r), t->c, t->h, t->w, r->seed, err, errlen);
	else if (!strcmp(r->source, "glyphs"))
		rc = glyphs(r, images_of(r), own, err, errlen);
	else if (!strcmp(r->source, "rotations"))
		rc = patches(r, NN_PATCH_ROTATION, images_of(r), own, err, errlen);
	else if (!strcmp(r->source, "exemplars"))
		rc = patches(r, NN_PATCH_EXEMPLAR, images_of(r), own, err, errlen);
	else if (!strcmp(r->source, "mixture"))
		rc = mixture(r, own, err, errlen);
	else if (!strcmp(r->source, "dataset") && r->dataset_dir)
		rc = nn_dataset_load_dir(own, r->dataset_dir, 0, err, errlen);
	else {
		snprintf(err, errlen, "unknown graft source '%s'; expected random, synthetic, "
		         "textures, glyphs, rotations, exemplars, mixture, universal, target or "
		         "dataset (the last with a dataset directory)", r->source);
		return GRAFT_EINVAL;
	}
	if (!rc && own->c != t->c) {
		snprintf(err, errlen, "%s has %d-channel images, the target %d: a graft must "
		         "read as many channels as the images it is grafted on",
		         r->dataset_dir, own->c, t->c);
		rc = GRAFT_EINVAL;
	}
	if (rc) {
		nn_dataset_free(own);
		return rc;
	}
	nn_dataset_stats(own, mean, std);
	*ds = own;
	return 0;
}

/* The identity of the graft file at path (the SHA-256 of its tensors), read
 * back by loading it into a net of the request's module for images of c
 * channels: a file of another shape is refused, saying why. */
static int file_identity(const search_graft_req *r, int c, const char *path, char sha[65],
                         char *err, size_t errlen)
{
	nn_net *net = NULL;
	nn_arch a;

	nn_arch_defaults(&a);
	a.in_c = c;
	a.in_h = r->target->h;
	a.in_w = r->target->w;
	search_graft_section(r, NULL, &a);
	a.classes = 2;
	a.stem_kernel = 1;
	a.stem_channels = 1;
	a.nblocks = 0;
	int rc = nn_net_from_arch(&net, &a, 1, 0, err, errlen);
	if (!rc)
		rc = nn_graft_load(net, path, NULL, sha, err, errlen);
	nn_net_free(net);
	return rc;
}

/* Source "universal": the graft graft ships for grey or RGB images
 * (nn/grafts/make-universal.sh), never pretrained here.  It is copied into
 * the cache, so that workers read it where they read every other graft. */
static int universal(const search_graft_req *r, const char *dir, char *path, size_t pathlen,
                     char sha[65], int *reused, char *err, size_t errlen)
{
	int c = r->target->c, rc;
	const char *shipped = c == 1 ? SEARCH_UNIVERSAL_GREY : SEARCH_UNIVERSAL_RGB;
	char tmp[4200], layers[128] = "", msg[GRAFT_ERRLEN];
	nn_weights w;

	if (c != 1 && c != 3) {
		snprintf(err, errlen, "the universal graft reads grey or RGB images; these have %d "
		         "channels: pretrain one on them instead (graft.source: target)", c);
		return GRAFT_EINVAL;
	}
	if ((rc = nn_safetensors_read(shipped, &w, msg, sizeof(msg)))) {
		snprintf(err, errlen, "the universal graft: %s (it is part of graft's sources: "
		         "nn/grafts/make-universal.sh makes it again)", msg);
		return rc;
	}
	const char *shape = nn_weights_meta(&w, "layers");
	for (int i = 0, off = 0; i < r->layers && off < (int)sizeof(layers); i++)
		off += snprintf(layers + off, sizeof(layers) - (size_t)off, "%s%dx%d", i ? "," : "",
		                r->kernel, r->channels);
	if (!shape || strcmp(shape, layers)) {
		snprintf(err, errlen, "the universal graft is %s (kernel x channels per layer), "
		         "not %s: leave graft.layers, channels and kernel at its shape, or choose "
		         "another source", shape ? shape : "of no known shape", layers);
		nn_weights_free(&w);
		return GRAFT_EINVAL;
	}
	nn_weights_free(&w);
	if ((rc = search_make_dirs(dir, err, errlen)))
		return rc;
	static _Atomic int made;
	snprintf(tmp, sizeof(tmp), "%s/universal.%d.%d.part", dir, (int)getpid(), made++);
	rc = search_copy_file(shipped, tmp, err, errlen);
	if (!rc)
		rc = file_identity(r, c, tmp, sha, err, errlen);
	if (!rc) {
		snprintf(path, pathlen, "%s/%s.safetensors", dir, sha);
		*reused = access(path, R_OK) == 0;
		if (rename(tmp, path)) {
			snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
			rc = GRAFT_EIO;
		}
	}
	if (rc)
		unlink(tmp);
	return rc;
}

/* The cache key: every input that shapes the graft, the data by content. */
static void cache_key(const search_graft_req *r, const nn_dataset *ds, char key[65])
{
	char pixels[65], labels[65], text[512];

	nn_sha256_hex(ds->pixels, (size_t)ds->n * ds->c * ds->h * ds->w, pixels);
	nn_sha256_hex(ds->labels, (size_t)ds->n, labels);
	snprintf(text, sizeof(text), "graft-module/1 source=%s pixels=%s labels=%s "
	         "shape=%dx%dx%dx%d layers=%dx%dx%d steps=%d batch=%d lr=%.9g seed=%llu",
	         r->source, pixels, labels, ds->n, ds->c, ds->h, ds->w, r->layers, r->kernel,
	         r->channels, r->steps, r->batch, r->lr, (unsigned long long)r->seed);
	nn_sha256_hex(text, strlen(text), key);
}

int search_graft_obtain(const search_graft_req *r, char *path, size_t pathlen,
                        char sha[65], int *reused, char *err, size_t errlen)
{
	char dir[4096], key[65], tmp[4200];
	float mean[NN_MAX_CHANNELS], std[NN_MAX_CHANNELS];
	nn_dataset own;
	const nn_dataset *ds;
	nn_arch a;

	*reused = 0;
	if (r->layers < 1 || r->layers > NN_MAX_GRAFT_LAYERS || r->kernel < 1 ||
	    r->kernel % 2 == 0 || r->channels < 1 || r->channels > 1024) {
		snprintf(err, errlen, "a graft needs 1..%d layers of an odd kernel and 1..1024 "
		         "channels", NN_MAX_GRAFT_LAYERS);
		return GRAFT_EINVAL;
	}
	if (r->cache_dir)
		snprintf(dir, sizeof(dir), "%s", r->cache_dir);
	else
		search_graft_cache_dir(dir, sizeof(dir));
	strncat(dir, "/grafts", sizeof(dir) - strlen(dir) - 1);
	if (!strcmp(r->source, "universal"))
		return universal(r, dir, path, pathlen, sha, reused, err, errlen);
	int rc = source_data(r, &own, &ds, mean, std, err, errlen);
	if (rc)
		return rc;
	cache_key(r, ds, key);
	snprintf(path, pathlen, "%s/%s.safetensors", dir, key);

	nn_arch_defaults(&a);
	a.in_c = r->target->c;
	a.in_h = r->target->h;
	a.in_w = r->target->w;
	search_graft_section(r, NULL, &a);
	if (access(path, R_OK) == 0) {
		/* Reused: its identity is read back from the tensors themselves. */
		rc = file_identity(r, r->target->c, path, sha, err, errlen);
		*reused = rc == 0;
		if (!rc)
			goto out;
	}
	rc = search_make_dirs(dir, err, errlen);
	if (rc)
		goto out;
	/* Made under a temporary name and renamed, so a crash never leaves a
	 * half-made graft where the cache would find it. */
	static _Atomic int made; /* graftd opens jobs on several threads */
	snprintf(tmp, sizeof(tmp), "%s.%d.%d.part", path, (int)getpid(), made++);
	nn_graft_opts o = { r->source, r->steps, r->batch, r->lr, r->seed, r->progress,
	                    r->ctx };
	rc = nn_graft_pretrain(&a, ds, mean, std, &o, tmp, sha, err, errlen);
	if (!rc && rename(tmp, path)) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		rc = GRAFT_EIO;
	}
	if (rc)
		unlink(tmp);
out:
	nn_dataset_free(&own);
	return rc;
}
