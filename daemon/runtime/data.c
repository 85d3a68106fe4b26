/*
 * data.c - loading and identifying the dataset a command or a job names.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/runtime/runtime.h"
#include "search/search.h"

int rt_data_load_split(const rt_data_src *src, nn_dataset *train, nn_dataset *val,
                       char *err, size_t errlen)
{
	nn_dataset all = { 0 };
	const char *name = src->dir ? src->dir : src->train_images;
	int rc = src->dir ? nn_dataset_load_dir(&all, src->dir, 0, err, errlen)
	         : nn_idx_load(&all, src->train_images, src->train_labels, err, errlen);

	memset(train, 0, sizeof(*train));
	memset(val, 0, sizeof(*val));
	if (rc)
		return rc;
	long nval = src->validation >= 0 ? src->validation : 10000;
	if (nval > all.n / 6)
		nval = all.n / 6;
	if (nval == 0) {
		*train = all;
		return 0;
	}
	rc = nn_dataset_split(&all, (int)nval, train, val);
	nn_dataset_free(&all);
	if (rc)
		snprintf(err, errlen, "cannot split %s: %s", name, graft_strerror(rc));
	return rc;
}

static void hash_part(nn_sha256 *h, const nn_dataset *d)
{
	char dims[96];
	int n = snprintf(dims, sizeof(dims), "%d %d %d %d %d;", d->n, d->c, d->h, d->w,
	                 d->classes);
	nn_sha256_update(h, dims, (size_t)n);
	/* Names only where the data has them, so an IDX set's identity stays
	 * what it always was. */
	for (int k = 0; d->names && k < d->classes; k++) {
		const char *name = nn_dataset_class_name(d, k);
		nn_sha256_update(h, name, strlen(name) + 1);
	}
	if (d->n > 0) {
		nn_sha256_update(h, d->pixels, (size_t)d->n * d->c * d->h * d->w);
		nn_sha256_update(h, d->labels, (size_t)d->n);
	}
}

void rt_data_sha256(const nn_dataset *train, const nn_dataset *val, char hex[65])
{
	nn_sha256 h;
	nn_sha256_init(&h);
	nn_sha256_update(&h, "graft-dataset/1;", 16);
	hash_part(&h, train);
	hash_part(&h, val);
	nn_sha256_final(&h, hex);
}

void rt_data_dir_default(char *out, size_t len)
{
	search_user_dir(out, len, "GRAFT_DATA_DIR", "XDG_DATA_HOME", ".local/share");
}
