/*
 * data_dir.c - finding a dataset's files in a directory, so users can point
 * graft at the directory a dataset unpacks to (or Debian installs it in).
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/nn.h"

/* Writes dir/name or dir/name.gz, whichever exists, into out. */
static int find(const char *dir, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", dir, name);
	if (access(out, R_OK) == 0)
		return 1;
	snprintf(out, len, "%s/%s.gz", dir, name);
	return access(out, R_OK) == 0;
}

static int load_cifar(nn_dataset *ds, const char *dir, int test, char *err,
                      size_t errlen)
{
	char paths[5][4096];
	const char *p[5];
	int n = test ? 1 : 5;

	for (int i = 0; i < n; i++) {
		if (test)
			snprintf(paths[i], sizeof(paths[i]), "%s/test_batch.bin", dir);
		else
			snprintf(paths[i], sizeof(paths[i]), "%s/data_batch_%d.bin", dir, i + 1);
		p[i] = paths[i];
	}
	return nn_cifar10_load(ds, p, n, err, errlen);
}

int nn_dataset_load_dir(nn_dataset *ds, const char *dir, int test, char *err,
                        size_t errlen)
{
	char images[4200], labels[4200], sub[4096];
	const char *part = test ? "t10k" : "train";
	char in[64], ln[64];
	struct stat st;

	if (stat(dir, &st) == 0 && S_ISREG(st.st_mode))
		return nn_images_load(ds, dir, test, err, errlen);
	snprintf(in, sizeof(in), "%s-images-idx3-ubyte", part);
	snprintf(ln, sizeof(ln), "%s-labels-idx1-ubyte", part);
	if (find(dir, in, images, sizeof(images)) && find(dir, ln, labels, sizeof(labels)))
		return nn_idx_load(ds, images, labels, err, errlen);
	snprintf(sub, sizeof(sub), "%s/cifar-10-batches-bin", dir);
	snprintf(images, sizeof(images), "%s/test_batch.bin", dir);
	if (access(images, R_OK) == 0)
		return load_cifar(ds, dir, test, err, errlen);
	snprintf(images, sizeof(images), "%s/test_batch.bin", sub);
	if (access(images, R_OK) == 0)
		return load_cifar(ds, sub, test, err, errlen);
	snprintf(err, errlen, "%s: no dataset found: expected %s and %s (IDX, "
	         "optionally .gz) or CIFAR-10 binary batches (data_batch_1..5.bin, "
	         "test_batch.bin)", dir, in, ln);
	return GRAFT_EIO;
}

int nn_dataset_dir_is_folder(const char *dir)
{
	char path[4200], sub[4200];
	struct stat st;
	DIR *d;
	struct dirent *e;
	int subdirs = 0;

	if (find(dir, "train-images-idx3-ubyte", path, sizeof(path)) ||
	    find(dir, "test_batch.bin", path, sizeof(path)) ||
	    find(dir, "cifar-10-batches-bin/test_batch.bin", path, sizeof(path)) ||
	    (d = opendir(dir)) == NULL)
		return 0;
	while (!subdirs && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
		subdirs = stat(sub, &st) == 0 && S_ISDIR(st.st_mode);
	}
	closedir(d);
	return subdirs;
}
