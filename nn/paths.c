/*
 * paths.c - a growing list of file paths, and the files of a directory tree
 * added to it: what `graft predict` (images), the glyphs source (fonts) and
 * the patches source (photos) each look for under a directory.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nn/nn.h"

int nn_paths_add(nn_paths *ps, const char *path)
{
	if (ps->n == ps->cap) {
		int cap = ps->cap ? 2 * ps->cap : 64;
		char **m = realloc(ps->p, sizeof(char *) * (size_t)cap);
		if (!m)
			return GRAFT_ENOMEM;
		ps->p = m;
		ps->cap = cap;
	}
	return (ps->p[ps->n] = strdup(path)) ? (ps->n++, 0) : GRAFT_ENOMEM;
}

static int add_tree(nn_paths *ps, const char *dir,
                    int (*keep)(const char *name, long long size, void *ctx), void *ctx)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[4200];
	int rc = 0;

	if (!d)
		return GRAFT_EIO;
	while (!rc && (e = readdir(d))) {
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (stat(p, &st))
			continue;
		if (S_ISDIR(st.st_mode))
			rc = add_tree(ps, p, keep, ctx);
		else if (S_ISREG(st.st_mode) && (!keep || keep(e->d_name, (long long)st.st_size, ctx)))
			rc = nn_paths_add(ps, p);
	}
	closedir(d);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int nn_paths_add_tree(nn_paths *ps, const char *dir,
                      int (*keep)(const char *name, long long size, void *ctx), void *ctx)
{
	int first = ps->n, rc = add_tree(ps, dir, keep, ctx);
	if (ps->n - first > 1)
		qsort(ps->p + first, (size_t)(ps->n - first), sizeof(char *), cmp_str);
	return rc;
}

void nn_paths_clear(nn_paths *ps)
{
	for (int i = 0; i < ps->n; i++)
		free(ps->p[i]);
	free(ps->p);
	*ps = (nn_paths){ 0 };
}
