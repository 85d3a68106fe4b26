/*
 * unpack.c - an image folder that comes as a .tar.gz, .tgz, .tar or .zip
 * (libarchive), unpacked once into the data directory (see runtime.h).
 *
 * An archive is someone else's file: an entry may try to climb out of the
 * directory ("../../etc/x", "/etc/x"), be a link pointing anywhere, or
 * inflate to far more than it weighs (a zip bomb).  Only plain files and
 * folders are written, under names that stay inside, up to a total size
 * and count; everything lands in a temporary directory renamed into place
 * when whole, so a failed or interrupted unpack leaves nothing behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "daemon/runtime/runtime.h"
#include "search/search.h"

#define MAX_ENTRIES 2000000
#define DEFAULT_MAX_BYTES ((long long)16 << 30)

int rt_is_archive_name(const char *name)
{
	static const char *const ext[] = { ".tar.gz", ".tgz", ".tar", ".zip", ".tar.xz",
	                                   ".tar.bz2" };
	size_t n = strlen(name);
	/* A URL's query or fragment is not part of the name. */
	const char *end = strpbrk(name, "?#");
	if (end)
		n = (size_t)(end - name);
	for (size_t i = 0; i < sizeof(ext) / sizeof(*ext); i++) {
		size_t e = strlen(ext[i]);
		if (n > e && !strncasecmp(name + n - e, ext[i], e))
			return 1;
	}
	return 0;
}

/* Whether an entry's name stays inside the directory it is unpacked in. */
static int safe_name(const char *p)
{
	if (!p || !*p || p[0] == '/')
		return 0;
	for (const char *s = p; *s;) {
		const char *slash = strchr(s, '/');
		size_t n = slash ? (size_t)(slash - s) : strlen(s);
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return 0;
		s += n + (slash ? 1 : 0);
	}
	return 1;
}

static int make_parents(const char *root, const char *rel)
{
	char path[8400];
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (char *p = path + strlen(root) + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			if (mkdir(path, 0755) && errno != EEXIST)
				return -1;
			*p = '/';
		}
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int extract(const char *archive_path, const char *into, long long max_bytes, char *err,
                   size_t errlen)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	long long total = 0;
	int entries = 0, rc = 0, r;

	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_zip(a);
	if (archive_read_open_filename(a, archive_path, 1 << 16) != ARCHIVE_OK) {
		rc = graft_errf(err, errlen, GRAFT_EFORMAT, "%s: not a readable archive: %s",
		                archive_path, archive_error_string(a));
		goto out;
	}
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e);
		mode_t type = archive_entry_filetype(e);
		char path[8400];
		if (++entries > MAX_ENTRIES) {
			rc = graft_errf(err, errlen, GRAFT_ERANGE, "%s: more than %d entries",
			                archive_path, MAX_ENTRIES);
			goto out;
		}
		if (type != AE_IFREG && type != AE_IFDIR)
			continue; /* links, devices: never images, and links lead out */
		if (!safe_name(name)) {
			rc = graft_errf(err, errlen, GRAFT_EFORMAT, "%s: the entry '%s' would be written "
			                "outside the folder; refused", archive_path, name ? name : "");
			goto out;
		}
		if (make_parents(into, name)) {
			rc = graft_errf(err, errlen, GRAFT_EIO, "unpacking %s: %s", name, strerror(errno));
			goto out;
		}
		snprintf(path, sizeof(path), "%s/%s", into, name);
		if (type == AE_IFDIR) {
			if (mkdir(path, 0755) && errno != EEXIST) {
				rc = graft_errf(err, errlen, GRAFT_EIO, "unpacking %s: %s", name,
				                strerror(errno));
				goto out;
			}
			continue;
		}
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644);
		if (fd < 0) {
			rc = graft_errf(err, errlen, GRAFT_EIO, "unpacking %s: %s", name, strerror(errno));
			goto out;
		}
		const void *buf;
		size_t size;
		la_int64_t offset;
		while ((r = archive_read_data_block(a, &buf, &size, &offset)) == ARCHIVE_OK) {
			total += (long long)size;
			if (total > max_bytes) {
				close(fd);
				rc = graft_errf(err, errlen, GRAFT_ERANGE, "%s: unpacks to more than %lld MB "
				                "(a zip bomb?); refused", archive_path, max_bytes >> 20);
				goto out;
			}
			if (pwrite(fd, buf, size, (off_t)offset) != (ssize_t)size) {
				close(fd);
				rc = graft_errf(err, errlen, GRAFT_EIO, "unpacking %s: %s", name,
				                strerror(errno));
				goto out;
			}
		}
		close(fd);
		if (r != ARCHIVE_EOF) {
			rc = graft_errf(err, errlen, GRAFT_EFORMAT, "%s: %s: %s", archive_path, name,
			                archive_error_string(a));
			goto out;
		}
	}
	if (r != ARCHIVE_EOF)
		rc = graft_errf(err, errlen, GRAFT_EFORMAT, "%s: corrupt or truncated archive: %s",
		                archive_path, archive_error_string(a));
out:
	archive_read_free(a);
	return rc;
}

/* The folder an unpacked archive stands for: its only top-level folder when
 * it has just one (photos.tar.gz holding photos/), else itself. */
static void top_folder(const char *dir, char *out, size_t outlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char only[512] = "";
	int n = 0;

	snprintf(out, outlen, "%s", dir);
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		n++;
		snprintf(only, sizeof(only), "%s", e->d_name);
	}
	if (d)
		closedir(d);
	char sub[8400];
	struct stat st;
	snprintf(sub, sizeof(sub), "%s/%s", dir, only);
	if (n == 1 && stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
		snprintf(out, outlen, "%s", sub);
}

int rt_unpack(const char *archive_path, const char *root, long long max_bytes, char *out,
              size_t outlen, char *err, size_t errlen)
{
	char sha[65], dest[4400], tmp[4500];
	struct stat st;
	int rc;

	if ((rc = nn_sha256_file(archive_path, sha, err, errlen)) ||
	    (rc = search_make_dirs(root, err, errlen)))
		return rc;
	snprintf(dest, sizeof(dest), "%s/%s", root, sha);
	if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
		top_folder(dest, out, outlen);
		return 0;
	}
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", dest, (int)getpid());
	nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (mkdir(tmp, 0755))
		return graft_errf(err, errlen, GRAFT_EIO, "cannot create %s: %s", tmp, strerror(errno));
	rc = extract(archive_path, tmp, max_bytes > 0 ? max_bytes : DEFAULT_MAX_BYTES, err, errlen);
	if (rc == 0 && rename(tmp, dest) && !(errno == EEXIST || errno == ENOTEMPTY))
		rc = graft_errf(err, errlen, GRAFT_EIO, "cannot rename %s: %s", tmp, strerror(errno));
	nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS); /* failed, or another won the race */
	if (rc == 0)
		top_folder(dest, out, outlen);
	return rc;
}

int rt_folder_source(const char *where, const char *datasets, const rt_fetch_limits *lim,
                     char *out, size_t outlen, char *err, size_t errlen)
{
	char local[4400], dir[4400];
	int rc;

	if (!proto_is_url(where) && !rt_is_archive_name(where)) {
		snprintf(out, outlen, "%s", where);
		return 0;
	}
	if (proto_is_url(where)) {
		if (!rt_is_archive_name(where))
			return graft_errf(err, errlen, GRAFT_EINVAL, "%s: an image folder by URL must be "
			                  "a .tar.gz, .tgz, .tar or .zip", where);
		snprintf(dir, sizeof(dir), "%s/archives", datasets);
		if ((rc = rt_fetch_url(where, NULL, dir, lim, local, sizeof(local), err, errlen)))
			return rc;
	} else {
		snprintf(local, sizeof(local), "%s", where);
	}
	snprintf(dir, sizeof(dir), "%s/unpacked", datasets);
	return rt_unpack(local, dir, 0, out, outlen, err, errlen);
}
