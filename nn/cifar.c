/*
 * cifar.c - loads CIFAR-10 binary batches (data_batch_*.bin, test_batch.bin).
 *
 * A batch file is nothing but records of 1 label byte and 3072 pixel bytes
 * (3 x 32 x 32, channel-major), with no header to check, so the file size and
 * the labels are all there is to catch a wrong or damaged file with.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nn/nn.h"

#define CIFAR_SIDE 32
#define CIFAR_CHANNELS 3
#define CIFAR_PIXELS (CIFAR_CHANNELS * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_RECORD (1 + CIFAR_PIXELS)
#define CIFAR_CLASSES 10
#define CIFAR_MAX_IMAGES 10000000L

/* Grows ds's arrays to hold more images.  ds->n is not changed: the caller
 * counts the images as they are read, so a failure leaves n exact. */
static int cifar_grow(nn_dataset *ds, long more, const char *path, char *err,
                      size_t errlen)
{
	size_t total = (size_t)ds->n + (size_t)more;
	uint8_t *p, *l;

	p = realloc(ds->pixels, total * CIFAR_PIXELS);
	if (p == NULL)
		return graft_errf(err, errlen, GRAFT_ENOMEM, "%s: out of memory for %zu images",
		            path, total);
	ds->pixels = p;
	l = realloc(ds->labels, total);
	if (l == NULL)
		return graft_errf(err, errlen, GRAFT_ENOMEM, "%s: out of memory for %zu labels",
		            path, total);
	ds->labels = l;
	return 0;
}

/* Reads nrec records from f, appending them to ds. */
static int cifar_read_records(FILE *f, long nrec, nn_dataset *ds, const char *path,
                              char *err, size_t errlen)
{
	uint8_t rec[CIFAR_RECORD];

	for (long i = 0; i < nrec; i++) {
		if (fread(rec, 1, sizeof rec, f) != sizeof rec)
			return graft_errf(err, errlen, ferror(f) ? GRAFT_EIO : GRAFT_EFORMAT,
			            "%s: %s at record %ld of %ld", path,
			            ferror(f) ? "read error" : "truncated while reading",
			            i, nrec);
		if (rec[0] >= CIFAR_CLASSES)
			return graft_errf(err, errlen, GRAFT_EFORMAT, "%s: record %ld has label %u, "
			            "expected 0..%d", path, i, rec[0], CIFAR_CLASSES - 1);
		ds->labels[ds->n] = rec[0];
		memcpy(ds->pixels + (size_t)ds->n * CIFAR_PIXELS, rec + 1, CIFAR_PIXELS);
		ds->n++;
	}
	/* The size was checked on open; more bytes now means the file changed. */
	if (fgetc(f) != EOF)
		return graft_errf(err, errlen, GRAFT_EFORMAT, "%s: the file grew while it was "
		            "read (expected %ld records)", path, nrec);
	return 0;
}

/* Checks one batch file's size and appends its records to ds. */
static int cifar_append(nn_dataset *ds, const char *path, char *err, size_t errlen)
{
	struct stat st;
	long nrec;
	FILE *f;
	int rc;

	f = fopen(path, "rb");
	if (f == NULL)
		return graft_errf(err, errlen, GRAFT_EIO, "%s: cannot open: %s", path,
		            strerror(errno));
	if (fstat(fileno(f), &st) != 0) {
		rc = graft_errf(err, errlen, GRAFT_EIO, "%s: cannot stat: %s", path,
		          strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		rc = graft_errf(err, errlen, GRAFT_EIO, "%s: not a regular file", path);
	} else if (st.st_size <= 0 || st.st_size % CIFAR_RECORD != 0) {
		rc = graft_errf(err, errlen, GRAFT_EFORMAT, "%s: size %lld bytes is not a positive "
		          "multiple of the %d-byte record (1 label + %d pixels)", path,
		          (long long)st.st_size, CIFAR_RECORD, CIFAR_PIXELS);
	} else if (st.st_size / CIFAR_RECORD > CIFAR_MAX_IMAGES - ds->n) {
		rc = graft_errf(err, errlen, GRAFT_EFORMAT, "%s: %lld more records would pass the "
		          "limit of %ld images", path,
		          (long long)(st.st_size / CIFAR_RECORD), CIFAR_MAX_IMAGES);
	} else {
		nrec = (long)(st.st_size / CIFAR_RECORD);
		rc = cifar_grow(ds, nrec, path, err, errlen);
		if (rc == 0)
			rc = cifar_read_records(f, nrec, ds, path, err, errlen);
	}
	fclose(f);
	return rc;
}

int nn_cifar10_load(nn_dataset *ds, const char *const *paths, int npaths,
                    char *err, size_t errlen)
{
	int rc = 0;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (ds == NULL || paths == NULL || npaths < 1)
		return graft_errf(err, errlen, GRAFT_EINVAL, "nn_cifar10_load: no files given");
	memset(ds, 0, sizeof *ds);
	for (int i = 0; i < npaths && rc == 0; i++) {
		if (paths[i] == NULL)
			rc = graft_errf(err, errlen, GRAFT_EINVAL, "nn_cifar10_load: path %d is NULL", i);
		else
			rc = cifar_append(ds, paths[i], err, errlen);
	}
	if (rc != 0) {
		nn_dataset_free(ds);
		return rc;
	}
	ds->c = CIFAR_CHANNELS;
	ds->h = CIFAR_SIDE;
	ds->w = CIFAR_SIDE;
	ds->classes = CIFAR_CLASSES;
	return 0;
}
