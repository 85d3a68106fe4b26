/*
 * patches.c - natural-image patches without labels, made into a
 * self-supervised classification task: random square crops of photographs
 * (the wallpapers and sample images Debian ships), resized to the target's
 * size, labelled either by the rotation applied to them (0, 90, 180 or 270
 * degrees: telling which way is up takes edges, horizons and textures) or
 * by the photo they came from (exemplar classes: each photo's colours,
 * textures and shapes).
 *
 * Photos are decoded once, shrunk so that the shorter side is at most
 * MAX_SIDE, and cropped at between an eighth and a half of that side.  Each
 * patch depends on the seed and its index alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nn/nn.h"

#define MAX_SIDE 512

/* Reads a photo as c channels, its shorter side shrunk to MAX_SIDE. */
static int load_photo(const char *path, int c, nn_image *out, char *err, size_t errlen)
{
	nn_image img;
	int rc = nn_image_read(path, MAX_SIDE, MAX_SIDE, &img, err, errlen);
	if (rc)
		return rc;
	if ((rc = nn_image_to_channels(&img, c))) {
		nn_image_free(&img);
		return graft_errf(err, errlen, rc, "%s: cannot convert to %d channels", path, c);
	}
	int side = img.w < img.h ? img.w : img.h;
	if (side <= MAX_SIDE) {
		*out = img;
		return 0;
	}
	nn_image small = { .w = (int)((long)img.w * MAX_SIDE / side),
	                   .h = (int)((long)img.h * MAX_SIDE / side), .c = c };
	uint8_t *plane = malloc((size_t)small.w * small.h);
	small.px = malloc((size_t)small.w * small.h * c);
	if (!plane || !small.px) {
		free(plane);
		free(small.px);
		nn_image_free(&img);
		return graft_errf(err, errlen, GRAFT_ENOMEM, "%s: out of memory", path);
	}
	for (int k = 0; k < c; k++) {
		nn_image_resize_plane(&img, k, plane, small.w, small.h);
		for (int i = 0; i < small.w * small.h; i++)
			small.px[(size_t)i * c + k] = plane[i];
	}
	free(plane);
	nn_image_free(&img);
	*out = small;
	return 0;
}

/* One patch: a crop of photo p at a random place and size, resized to
 * h x w, rotated by quarter turns, written as c planes into out. */
static int patch(const nn_image *p, int c, int h, int w, int quarter, uint64_t *rs,
                 uint8_t *out)
{
	int side = p->w < p->h ? p->w : p->h;
	int lo = side / 8 > h ? side / 8 : h, hi = side / 2 > lo ? side / 2 : lo;
	int s = lo + (int)(nn_splitmix64(rs) % (uint64_t)(hi - lo + 1));
	int x0 = (int)(nn_splitmix64(rs) % (uint64_t)(p->w - s + 1));
	int y0 = (int)(nn_splitmix64(rs) % (uint64_t)(p->h - s + 1));
	int flip = nn_splitmix64(rs) & 1;
	nn_image crop = { .w = s, .h = s, .c = c, .px = malloc((size_t)s * s * c) };
	uint8_t *plane = malloc((size_t)h * w);
	if (!crop.px || !plane) {
		free(crop.px);
		free(plane);
		return GRAFT_ENOMEM;
	}
	for (int y = 0; y < s; y++)
		memcpy(crop.px + (size_t)y * s * c, p->px + ((size_t)(y0 + y) * p->w + x0) * c,
		       (size_t)s * c);
	for (int k = 0; k < c; k++) {
		nn_image_resize_plane(&crop, k, plane, w, h);
		uint8_t *o = out + (size_t)k * h * w;
		for (int y = 0; y < h; y++)
			for (int x = 0; x < w; x++) {
				int sx = x, sy = y, t;
				/* The patch is the crop flipped, then turned by quarter
				 * turns (square patches when turning): undone in the
				 * other order, so that a flip never passes for a turn. */
				for (int q = 0; q < quarter; q++) {
					t = sx;
					sx = sy;
					sy = w - 1 - t;
				}
				if (flip)
					sx = w - 1 - sx;
				o[y * w + x] = plane[sy * w + sx];
			}
	}
	free(crop.px);
	free(plane);
	return 0;
}

int nn_patch_dataset(nn_dataset *ds, const nn_patch_opts *o, char *err, size_t errlen)
{
	nn_image *photos = NULL;
	int nphotos = 0, rc = 0;

	memset(ds, 0, sizeof(*ds));
	if (o->n < 1 || (o->c != 1 && o->c != 3) || o->h < 8 || o->w < 8 || o->h > 256 ||
	    o->w > 256)
		return graft_errf(err, errlen, GRAFT_EINVAL, "patches: %d patches of %dx%dx%d: need "
		                  "at least one, 1 or 3 channels, sides 8..256", o->n, o->c, o->h,
		                  o->w);
	if (o->task == NN_PATCH_ROTATION && o->h != o->w)
		return graft_errf(err, errlen, GRAFT_EINVAL, "patches: rotation needs square images, "
		                  "not %dx%d", o->h, o->w);
	if (o->nimages < 1 || (o->task == NN_PATCH_EXEMPLAR && o->nimages < 2))
		return graft_errf(err, errlen, GRAFT_EINVAL, "patches: %d photos; need %s", o->nimages,
		                  o->task == NN_PATCH_EXEMPLAR ? "2 or more" : "one or more");
	if (o->task == NN_PATCH_EXEMPLAR && o->nimages > 256)
		return graft_errf(err, errlen, GRAFT_EINVAL, "patches: %d photos, one class each: at "
		                  "most 256", o->nimages);
	if (!(photos = calloc((size_t)o->nimages, sizeof(*photos))))
		return graft_errf(err, errlen, GRAFT_ENOMEM, "patches: out of memory");
	for (; nphotos < o->nimages && !rc; nphotos++) {
		rc = load_photo(o->images[nphotos], o->c, &photos[nphotos], err, errlen);
		if (!rc && (photos[nphotos].w < 2 * o->w || photos[nphotos].h < 2 * o->h))
			rc = graft_errf(err, errlen, GRAFT_EINVAL, "patches: %s is %dx%d, too small for "
			                "%dx%d patches (at least twice their size)", o->images[nphotos],
			                photos[nphotos].w, photos[nphotos].h, o->w, o->h);
	}
	size_t chw = (size_t)o->c * o->h * o->w;
	if (!rc && (!(ds->pixels = malloc((size_t)o->n * chw)) || !(ds->labels = malloc(o->n))))
		rc = graft_errf(err, errlen, GRAFT_ENOMEM, "patches: out of memory for %d patches",
		                o->n);
	for (int i = 0; i < o->n && !rc; i++) {
		uint64_t rs = o->seed ^ ((uint64_t)i * 0xd1b54a32d192ed03u);
		int p = (int)(nn_splitmix64(&rs) % (uint64_t)o->nimages);
		int quarter = o->task == NN_PATCH_ROTATION ? (int)(nn_splitmix64(&rs) & 3) : 0;
		ds->labels[i] = (uint8_t)(o->task == NN_PATCH_ROTATION ? quarter : p);
		if (patch(&photos[p], o->c, o->h, o->w, quarter, &rs, ds->pixels + (size_t)i * chw))
			rc = graft_errf(err, errlen, GRAFT_ENOMEM, "patches: out of memory");
	}
	for (int i = 0; i < nphotos; i++)
		nn_image_free(&photos[i]);
	free(photos);
	if (rc) {
		nn_dataset_free(ds);
		return rc;
	}
	ds->n = o->n;
	ds->c = o->c;
	ds->h = o->h;
	ds->w = o->w;
	ds->classes = o->task == NN_PATCH_ROTATION ? 4 : o->nimages;
	return 0;
}

/* A photo: a PNG or JPEG of at least 20 KB (a smaller one is an icon or a
 * test pattern). */
static int is_photo(const char *name, long long size, void *ctx)
{
	(void)ctx;
	return size >= 20000 && nn_image_is_image_name(name);
}

int nn_patch_photos(const char *const *dirs, int ndirs, nn_paths *photos, char *err,
                    size_t errlen)
{
	int before = photos->n;
	for (int d = 0; d < ndirs; d++) {
		struct stat st;
		/* A directory that is not there (a package not installed) is
		 * passed over: the others may have photos. */
		if (stat(dirs[d], &st) || !S_ISDIR(st.st_mode))
			continue;
		int rc = nn_paths_add_tree(photos, dirs[d], is_photo, NULL);
		if (rc == GRAFT_EIO)
			return graft_errf(err, errlen, rc, "patches: cannot read %s", dirs[d]);
		if (rc)
			return graft_errf(err, errlen, rc, "patches: out of memory listing photos");
	}
	if (photos->n == before)
		return graft_errf(err, errlen, GRAFT_EINVAL, "patches: no PNG or JPEG photo under %s%s",
		                  ndirs ? dirs[0] : "(no directory)", ndirs > 1 ? " and the others" : "");
	return 0;
}
