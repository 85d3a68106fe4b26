/*
 * scratch.c - scratch directories and synthetic data for the tests.
 */
#include <criterion/criterion.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/scratch.h"

static char dir[128];

const char *scratch_make(const char *tag)
{
	snprintf(dir, sizeof(dir), "/tmp/graft-test-%s-XXXXXX", tag);
	cr_assert_not_null(mkdtemp(dir), "mkdtemp(%s) failed", dir);
	return dir;
}

const char *scratch_path(const char *name)
{
	static char buf[16][512];
	static int next;
	char *p = buf[next++ % 16];

	snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
	return p;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void scratch_remove(void)
{
	if (dir[0])
		nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	dir[0] = 0;
}

void scratch_synth_split(int n, int nval, int side, uint64_t seed, nn_dataset *train,
                         nn_dataset *val, float *mean, float *std)
{
	char err[GRAFT_ERRLEN] = "";
	nn_dataset all;

	int rc = nn_synth_dataset(&all, n, 1, side, side, seed, err, sizeof(err));
	cr_assert_eq(rc, 0, "nn_synth_dataset: %s", err);
	cr_assert_eq(nn_dataset_split(&all, nval, train, val), 0);
	nn_dataset_free(&all);
	nn_dataset_stats(train, mean, std);
}
