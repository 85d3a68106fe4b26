/*
 * test_unpack.c - image folders in archives (libarchive): a .tar.gz and a
 * .zip unpack once into the data directory and decode as the folder would;
 * entries that climb out, links and bombs are refused or left out.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/runtime/runtime.h"
#include "tests/support/image_write.h"
#include "tests/support/scratch.h"

static void setup(void)
{
	scratch_make("unpack");
	cr_assert_eq(mkdir(scratch_path("src"), 0755), 0);
	image_write_fashion(scratch_path("src/photos"), 0, 3, "png");
}

TestSuite(unpack, .init = setup, .fini = scratch_remove, .timeout = 60);

static void sh(const char *fmt, const char *arg)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd, fmt, arg, arg, arg);
	cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

static int prepared_images(const char *folder)
{
	char err[GRAFT_ERRLEN], path[1024];
	nn_folder_report rep;
	mkdir(scratch_path("cache"), 0755);
	nn_folder_opts o = { .dir = folder, .c = 1, .h = 28, .w = 28,
	                     .cache_dir = scratch_path("cache") };
	cr_assert_eq(nn_folder_prepare(&o, path, sizeof path, &rep, err, sizeof err), 0, "%s", err);
	return rep.train;
}

Test(unpack, a_tar_gz_and_a_zip_unpack_once_into_the_folder)
{
	char err[GRAFT_ERRLEN], out[4400], again[4400];
	const char *root = scratch_path("unpacked");

	sh("cd %s/.. && tar czf photos.tar.gz -C src photos", scratch_path("src"));
	cr_assert_eq(rt_unpack(scratch_path("photos.tar.gz"), root, 0, out, sizeof out, err,
	                       sizeof err), 0, "%s", err);
	cr_assert(strstr(out, "/photos") && !strcmp(strrchr(out, '/'), "/photos"), "%s", out);
	cr_assert_eq(prepared_images(out), 30);
	/* Once: the second call finds it (even with the archive gone). */
	rename(scratch_path("photos.tar.gz"), scratch_path("moved.tar.gz"));
	cr_assert_eq(rt_unpack(scratch_path("moved.tar.gz"), root, 0, again, sizeof again, err,
	                       sizeof err), 0, "%s", err);
	cr_assert_str_eq(again, out);

	sh("cd %s && /usr/bin/python3 -c 'import shutil; shutil.make_archive(\"../photos\", \"zip\", "
	   "\".\", \"photos\")'", scratch_path("src"));
	cr_assert_eq(rt_unpack(scratch_path("photos.zip"), scratch_path("z"), 0, out, sizeof out,
	                       err, sizeof err), 0, "%s", err);
	cr_assert_eq(prepared_images(out), 30);
	/* rt_folder_source: a plain folder is itself; an archive, its folder. */
	rt_fetch_limits lim = { 1 << 20, 5 };
	cr_assert_eq(rt_folder_source(scratch_path("src/photos"), scratch_path("ds"), &lim, out,
	                              sizeof out, err, sizeof err), 0);
	cr_assert_str_eq(out, scratch_path("src/photos"));
	cr_assert_eq(rt_folder_source(scratch_path("photos.zip"), scratch_path("ds"), &lim, out,
	                              sizeof out, err, sizeof err), 0, "%s", err);
	cr_assert(strstr(out, "/ds/unpacked/"), "%s", out);
}

/* A tar written by Python with one hostile member (kind: ../, /, link). */
static void hostile_tar(const char *name, const char *member, int link)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
	         "cd %s && /usr/bin/python3 -c 'import tarfile, io\n"
	         "t = tarfile.open(\"%s\", \"w:gz\")\n"
	         "t.add(\"src/photos\", arcname=\"photos\")\n"
	         "i = tarfile.TarInfo(\"%s\")\n"
	         "if %d:\n"
	         "    i.type = tarfile.SYMTYPE; i.linkname = \"/etc/passwd\"; t.addfile(i)\n"
	         "else:\n"
	         "    i.size = 4; t.addfile(i, io.BytesIO(b\"evil\"))\n"
	         "t.close()'", scratch_path("."), name, member, link);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

Test(unpack, hostile_archives_are_refused_or_cut_down)
{
	char err[GRAFT_ERRLEN], out[4400];
	struct stat st;

	hostile_tar("up.tar.gz", "../evil.png", 0);
	cr_assert_eq(rt_unpack(scratch_path("up.tar.gz"), scratch_path("u1"), 0, out, sizeof out,
	                       err, sizeof err), GRAFT_EFORMAT);
	cr_assert(strstr(err, "'../evil.png' would be written outside the folder"), "%s", err);
	cr_assert_neq(stat(scratch_path("evil.png"), &st), 0, "it was written");
	hostile_tar("abs.tar.gz", "/tmp/graft-evil.png", 0);
	cr_assert_eq(rt_unpack(scratch_path("abs.tar.gz"), scratch_path("u2"), 0, out, sizeof out,
	                       err, sizeof err), GRAFT_EFORMAT);
	/* Nothing of a refused archive stays. */
	DIR *d = opendir(scratch_path("u2"));
	int entries = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		entries += e->d_name[0] != '.';
	closedir(d);
	cr_assert_eq(entries, 0);
	/* A link is left out; the rest unpacks. */
	hostile_tar("link.tar.gz", "photos/0_tshirt/link.png", 1);
	cr_assert_eq(rt_unpack(scratch_path("link.tar.gz"), scratch_path("u3"), 0, out, sizeof out,
	                       err, sizeof err), 0, "%s", err);
	char link[4500];
	snprintf(link, sizeof link, "%s/0_tshirt/link.png", out);
	cr_assert_neq(lstat(link, &st), 0, "the link was written");
	cr_assert_eq(prepared_images(out), 30);
	/* A bomb: 4 MB of zeros in a few KB, against a 1 MB limit. */
	sh("cd %s && head -c 4194304 /dev/zero > zeros.png && tar czf bomb.tar.gz zeros.png",
	   scratch_path("."));
	cr_assert_eq(rt_unpack(scratch_path("bomb.tar.gz"), scratch_path("u4"), 1 << 20, out,
	                       sizeof out, err, sizeof err), GRAFT_ERANGE);
	cr_assert(strstr(err, "unpacks to more than 1 MB"), "%s", err);
	/* Not an archive at all. */
	FILE *f = fopen(scratch_path("fake.tar.gz"), "w");
	fputs("hello", f);
	fclose(f);
	cr_assert_neq(rt_unpack(scratch_path("fake.tar.gz"), scratch_path("u5"), 0, out, sizeof out,
	                        err, sizeof err), 0);
	cr_assert(strstr(err, "fake.tar.gz"), "%s", err);
}
