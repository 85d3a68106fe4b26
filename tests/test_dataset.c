/*
 * test_dataset.c - the IDX and CIFAR-10 loaders, split, stats and batches.
 *
 * Each test writes the files it needs into its own temporary directory, so a
 * failure mode is produced exactly rather than hoped for; the real
 * Fashion-MNIST is checked too when the machine has it.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "nn/nn.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

static char tmpdir[64];

static void make_tmpdir(void)
{
	strcpy(tmpdir, "/tmp/graft-test-dataset-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp failed");
}

/* Removes the files the test wrote (there are no subdirectories) and the dir. */
static void remove_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char p[512];

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(tmpdir);
}

TestSuite(dataset, .timeout = 60, .init = make_tmpdir, .fini = remove_tmpdir);

/* The path of name inside the test's directory.  The buffers rotate, so a
 * test can hold that many paths at once; none holds more than a handful. */
static const char *tpath(const char *name)
{
	static char buf[32][512];
	static int next;
	char *p = buf[next++ % 32];

	snprintf(p, 512, "%s/%s", tmpdir, name);
	return p;
}

static void write_file(const char *path, const void *data, size_t len, int gz)
{
	if (gz) {
		gzFile f = gzopen(path, "wb");

		cr_assert_not_null(f, "gzopen %s", path);
		cr_assert_eq(gzwrite(f, data, (unsigned)len), (int)len);
		cr_assert_eq(gzclose(f), Z_OK);
	} else {
		FILE *f = fopen(path, "wb");

		cr_assert_not_null(f, "fopen %s", path);
		cr_assert_eq(fwrite(data, 1, len, f), len);
		cr_assert_eq(fclose(f), 0);
	}
}

static uint8_t *read_whole(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	long n;

	cr_assert_not_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	b = malloc((size_t)n);
	cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return b;
}

static void put_be32(uint8_t *b, uint32_t v)
{
	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
}

/* Writes an IDX file: magic, ndim big-endian dims, then datalen bytes of data
 * (which need not agree with the dims: that is what the tests are about). */
static void write_idx(const char *path, uint32_t magic, int ndim, const uint32_t *dims,
                      const uint8_t *data, size_t datalen, int gz)
{
	size_t len = 4 + 4 * (size_t)ndim + datalen;
	uint8_t *b = malloc(len);

	put_be32(b, magic);
	for (int i = 0; i < ndim; i++)
		put_be32(b + 4 + 4 * i, dims[i]);
	if (datalen > 0)
		memcpy(b + 4 + 4 * ndim, data, datalen);
	write_file(path, b, len, gz);
	free(b);
}

/* The pixel and label patterns of the good files; pixels vary enough that a
 * swapped or shifted byte shows. */
static uint8_t pix_at(size_t i)
{
	return (uint8_t)((i * 7 + i / 13 + 3) % 256);
}

static uint8_t label_at(size_t i)
{
	return (uint8_t)(i * 3 % 10);
}

/* Writes a good pair of n images of rows x cols and their labels. */
static void write_pair(const char *img, const char *lab, uint32_t n, uint32_t rows,
                       uint32_t cols, int gz)
{
	size_t np = (size_t)n * rows * cols;
	uint8_t *p = malloc(np), *l = malloc(n);
	uint32_t dims[3] = { n, rows, cols };

	for (size_t i = 0; i < np; i++)
		p[i] = pix_at(i);
	for (size_t i = 0; i < n; i++)
		l[i] = label_at(i);
	write_idx(img, 0x803, 3, dims, p, np, gz);
	write_idx(lab, 0x801, 1, dims, l, n, gz);
	free(p);
	free(l);
}

static void assert_zeroed(const nn_dataset *ds)
{
	cr_assert(ds->n == 0 && ds->c == 0 && ds->h == 0 && ds->w == 0 &&
	          ds->classes == 0 && ds->pixels == NULL && ds->labels == NULL,
	          "the dataset is not zeroed after a failed load");
}

/* A failed load must give the code, a message that names the file and the
 * problem, and leave nothing behind. */
static void assert_fails(int rc, int want, const nn_dataset *ds, const char *err,
                         const char *path, const char *problem)
{
	cr_assert_eq(rc, want, "rc %d (%s), want %d; err: %s", rc, graft_strerror(rc),
	             want, err);
	cr_assert_not_null(strstr(err, problem), "err lacks \"%s\": %s", problem, err);
	cr_assert_not_null(strstr(err, path), "err lacks the path %s: %s", path, err);
	cr_assert_null(strchr(err, '\n'), "err is more than one line: %s", err);
	assert_zeroed(ds);
}

static void check_pair_loaded(int gz)
{
	const char *img = tpath(gz ? "img.gz" : "img"), *lab = tpath(gz ? "lab.gz" : "lab");
	nn_dataset ds;
	char err[GRAFT_ERRLEN];
	int rc;

	write_pair(img, lab, 37, 5, 4, gz);
	rc = nn_idx_load(&ds, img, lab, err, sizeof err);
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	cr_assert(ds.n == 37 && ds.c == 1 && ds.h == 5 && ds.w == 4,
	          "shape %d %d %d %d", ds.n, ds.c, ds.h, ds.w);
	cr_assert_eq(ds.classes, 10);
	for (size_t i = 0; i < 37 * 5 * 4; i++)
		cr_assert_eq(ds.pixels[i], pix_at(i), "pixel %zu: %u != %u", i,
		             ds.pixels[i], pix_at(i));
	for (size_t i = 0; i < 37; i++)
		cr_assert_eq(ds.labels[i], label_at(i), "label %zu", i);
	nn_dataset_free(&ds);
	assert_zeroed(&ds);
	nn_dataset_free(&ds);
	nn_dataset_free(NULL);
}

Test(dataset, idx_plain_round_trip)
{
	check_pair_loaded(0);
}

Test(dataset, idx_gzip_round_trip)
{
	check_pair_loaded(1);
}

Test(dataset, idx_classes_is_max_label_plus_one_at_least_two)
{
	uint8_t px[3 * 4] = { 0 }, lab0[3] = { 0, 0, 0 }, lab4[3] = { 1, 4, 2 };
	uint32_t dims[3] = { 3, 2, 2 };
	nn_dataset ds;
	char err[GRAFT_ERRLEN];

	write_idx(tpath("img"), 0x803, 3, dims, px, sizeof px, 0);
	write_idx(tpath("lab0"), 0x801, 1, dims, lab0, 3, 0);
	write_idx(tpath("lab4"), 0x801, 1, dims, lab4, 3, 0);
	cr_assert_eq(nn_idx_load(&ds, tpath("img"), tpath("lab0"), err, sizeof err), 0, "%s", err);
	cr_assert_eq(ds.classes, 2);
	nn_dataset_free(&ds);
	cr_assert_eq(nn_idx_load(&ds, tpath("img"), tpath("lab4"), err, sizeof err), 0, "%s", err);
	cr_assert_eq(ds.classes, 5);
	nn_dataset_free(&ds);
}

/* Loads images from img (written by the test) with a good labels file of n
 * labels; ds is filled with garbage first to show that a failure zeroes it. */
static int load_images(const char *img, uint32_t n, nn_dataset *ds, char *err)
{
	uint8_t *l = calloc(n, 1);
	uint32_t dims[1] = { n };

	write_idx(tpath("good-labels"), 0x801, 1, dims, l, n, 0);
	free(l);
	memset(ds, 0xab, sizeof *ds);
	return nn_idx_load(ds, img, tpath("good-labels"), err, GRAFT_ERRLEN);
}

Test(dataset, idx_bad_magic)
{
	const char *img = tpath("bad-magic");
	uint32_t dims[3] = { 2, 2, 2 };
	uint8_t px[8] = { 0 };
	nn_dataset ds;
	char err[GRAFT_ERRLEN];

	write_idx(img, 0x12340803, 3, dims, px, sizeof px, 0);
	assert_fails(load_images(img, 2, &ds, err), GRAFT_EFORMAT, &ds, err, img, "bad magic");
	write_idx(img, 0x00000d03, 3, dims, px, sizeof px, 0); /* float elements */
	assert_fails(load_images(img, 2, &ds, err), GRAFT_EFORMAT, &ds, err, img,
	             "element type 0x0d");
}

Test(dataset, idx_wrong_ndim)
{
	const char *img = tpath("wrong-ndim"), *lab = tpath("wrong-ndim-labels");
	uint32_t dims[3] = { 2, 4, 1 };
	uint8_t px[8] = { 0 };
	nn_dataset ds;
	char err[GRAFT_ERRLEN];

	write_idx(img, 0x802, 2, dims, px, sizeof px, 0);
	assert_fails(load_images(img, 2, &ds, err), GRAFT_EFORMAT, &ds, err, img,
	             "2 dims, expected 3");
	/* An image file given as the labels is caught the same way. */
	write_pair(img, lab, 2, 2, 2, 0);
	assert_fails(nn_idx_load(&ds, img, img, err, sizeof err), GRAFT_EFORMAT, &ds,
	             err, img, "3 dims, expected 1");
}

Test(dataset, idx_truncated_header)
{
	const char *img = tpath("short-header");
	uint8_t b[10] = { 0, 0, 8, 3, 0, 0, 0, 2, 0, 0 };
	nn_dataset ds;
	char err[GRAFT_ERRLEN];

	write_file(img, b, sizeof b, 0);
	assert_fails(load_images(img, 2, &ds, err), GRAFT_EFORMAT, &ds, err, img,
	             "truncated header: 10 of 16 bytes");
	write_file(img, b, 0, 0);
	assert_fails(load_images(img, 2, &ds, err), GRAFT_EFORMAT, &ds, err, img,
	             "truncated header: 0 of 16 bytes");
}

Test(dataset, idx_truncated_data)
{
	const char *img = tpath("short-data.gz"), *lab = tpath("short-labels");
	uint32_t dims[3] = { 5, 28, 28 };
	uint8_t px[1234] = { 0 };
	nn_dataset ds;
	char err[GRAFT_ERRLEN];

	write_idx(img, 0x803, 3, dims, px, sizeof px, 1);
	assert_fails(load_images(img, 5, &ds, err), GRAFT_EFORMAT, &ds, err, img,
	             "truncated: header says 5 images of 28x28 (3920 bytes) but the "
	             "file holds 1234");
	write_pair(tpath("img"), lab, 5, 2, 2, 0);
	write_idx(lab, 0x801, 1, dims, px, 4, 0);
	assert_fails(nn_idx_load(&ds, tpath("img"), lab, err, sizeof err), GRAFT_EFORMAT,
	             &ds, err, lab, "truncated: header says 5 labels (5 bytes) but the "
	             "file holds 4");
}

Test(dataset, idx_trailing_bytes)
{
	const char *img = tpath("trailing"), *lab = tpath("trailing-labels.gz");
	uint32_t dims[3] = { 2, 2, 2 };
	static uint8_t px[5002];
	nn_dataset ds;
	char err[GRAFT_ERRLEN];

	write_idx(img, 0x803, 3, dims, px, 11, 0);
	assert_fails(load_images(img, 2, &ds, err), GRAFT_EFORMAT, &ds, err, img,
	             "trailing garbage: 3 bytes after the 2 images of 2x2");
	write_idx(img, 0x803, 3, dims, px, 8, 0);
	write_idx(lab, 0x801, 1, dims, px, 2 + 5000, 1);
	assert_fails(nn_idx_load(&ds, img, lab, err, sizeof err), GRAFT_EFORMAT, &ds,
	             err, lab, "trailing garbage: 5000 bytes after the 2 labels");
}

Test(dataset, idx_count_mismatch)
{
	const char *img = tpath("img-7"), *lab = tpath("lab-6");
	nn_dataset ds;
	char err[GRAFT_ERRLEN];

	write_pair(img, tpath("lab-7"), 7, 3, 3, 0);
	write_pair(tpath("img-6"), lab, 6, 3, 3, 1);
	memset(&ds, 0xab, sizeof ds);
	assert_fails(nn_idx_load(&ds, img, lab, err, sizeof err), GRAFT_EFORMAT, &ds, err,
	             img, "holds 7 images");
	cr_assert_not_null(strstr(err, lab), "err lacks %s: %s", lab, err);
	cr_assert_not_null(strstr(err, "holds 6 labels"), "%s", err);
}

Test(dataset, idx_missing_file)
{
	const char *img = tpath("no-such-file.gz"), *lab = tpath("no-such-labels");
	nn_dataset ds;
	char err[GRAFT_ERRLEN];

	assert_fails(load_images(img, 2, &ds, err), GRAFT_EIO, &ds, err, img,
	             "cannot open: No such file or directory");
	write_pair(tpath("img"), tpath("lab"), 2, 2, 2, 0);
	assert_fails(nn_idx_load(&ds, tpath("img"), lab, err, sizeof err), GRAFT_EIO, &ds,
	             err, lab, "cannot open");
	/* A directory opens but cannot be read. */
	assert_fails(load_images(tmpdir, 2, &ds, err), GRAFT_EIO, &ds, err, tmpdir,
	             "read error");
}

/* Writes n images of 28x28 gzip'd, then inverts 16 bytes in the middle of the
 * compressed file.  Random pixels make deflate store them, so only the CRC
 * can catch the damage; patterned pixels make it damage the Huffman codes. */
static void write_corrupt_gz(const char *path, int random_pixels)
{
	uint32_t dims[3] = { 40, 28, 28 };
	size_t np = 40 * 28 * 28, len;
	uint8_t *p = malloc(np), *b;
	nn_rng r;

	nn_rng_seed(&r, 7);
	for (size_t i = 0; i < np; i++)
		p[i] = random_pixels ? (uint8_t)nn_rng_next(&r) : (uint8_t)(i % 28 * (i / 784));
	write_idx(path, 0x803, 3, dims, p, np, 1);
	free(p);
	b = read_whole(path, &len);
	cr_assert_gt(len, 200);
	for (size_t i = len / 2; i < len / 2 + 16; i++)
		b[i] ^= 0xff;
	write_file(path, b, len, 0);
	free(b);
}

Test(dataset, idx_corrupt_gzip)
{
	const char *img = tpath("corrupt.gz");
	nn_dataset ds;
	char err[GRAFT_ERRLEN];

	write_corrupt_gz(img, 0);
	assert_fails(load_images(img, 40, &ds, err), GRAFT_EFORMAT, &ds, err, img,
	             "corrupt gzip stream: ");
	write_corrupt_gz(img, 1);
	assert_fails(load_images(img, 40, &ds, err), GRAFT_EFORMAT, &ds, err, img,
	             "corrupt gzip stream: incorrect data check");
}

Test(dataset, idx_cut_gzip)
{
	const char *img = tpath("cut.gz");
	size_t len;
	uint8_t *b;
	nn_dataset ds;
	char err[GRAFT_ERRLEN];

	write_pair(img, tpath("lab"), 40, 28, 28, 1);
	b = read_whole(img, &len);
	write_file(img, b, len / 2, 0);
	assert_fails(load_images(img, 40, &ds, err), GRAFT_EFORMAT, &ds, err, img,
	             "truncated: header says 40 images of 28x28");
	cr_assert_not_null(strstr(err, "gzip stream ends early"), "%s", err);
	/* Without its 8-byte trailer every data byte is there, but not the CRC. */
	write_file(img, b, len - 8, 0);
	assert_fails(load_images(img, 40, &ds, err), GRAFT_EFORMAT, &ds, err, img,
	             "truncated gzip stream");
	free(b);
}

Test(dataset, idx_zero_dims)
{
	const char *img = tpath("zero"), *lab = tpath("zero-labels");
	uint32_t dims[3][3] = { { 0, 28, 28 }, { 2, 0, 28 }, { 2, 28, 0 } };
	nn_dataset ds;
	char err[GRAFT_ERRLEN];

	for (int i = 0; i < 3; i++) {
		write_idx(img, 0x803, 3, dims[i], NULL, 0, 0);
		assert_fails(load_images(img, 2, &ds, err), GRAFT_EFORMAT, &ds, err, img,
		             "zero dimension");
	}
	write_pair(tpath("img"), tpath("lab"), 2, 2, 2, 0);
	write_idx(lab, 0x801, 1, dims[0], NULL, 0, 0);
	assert_fails(nn_idx_load(&ds, tpath("img"), lab, err, sizeof err), GRAFT_EFORMAT,
	             &ds, err, lab, "zero dimension: header says 0 labels");
}

Test(dataset, idx_absurd_dims)
{
	const char *img = tpath("absurd"), *lab = tpath("absurd-labels");
	uint32_t dims[3][3] = { { 2, 4097, 28 }, { 2, 28, 0xffffffffu },
	                        { 10000001, 28, 28 } };
	uint8_t px[64] = { 0 };
	nn_dataset ds;
	char err[GRAFT_ERRLEN];

	for (int i = 0; i < 3; i++) {
		write_idx(img, 0x803, 3, dims[i], px, sizeof px, 0);
		assert_fails(load_images(img, 2, &ds, err), GRAFT_EFORMAT, &ds, err, img,
		             "absurd dimensions");
	}
	write_pair(tpath("img"), tpath("lab"), 2, 2, 2, 0);
	write_idx(lab, 0x801, 1, dims[2], px, sizeof px, 0);
	assert_fails(nn_idx_load(&ds, tpath("img"), lab, err, sizeof err), GRAFT_EFORMAT,
	             &ds, err, lab, "absurd dimensions: header says 10000001 labels");
}

/* A header within the limits that claims 167 TB over 64 bytes of data is cut,
 * not a reason to ask for 167 TB: that would fail (ENOMEM) or, under
 * AddressSanitizer, abort the test. */
Test(dataset, idx_huge_claim_allocates_only_what_is_there)
{
	const char *img = tpath("huge.gz");
	uint32_t dims[3] = { 10000000, 4096, 4096 };
	uint8_t px[64] = { 0 };
	nn_dataset ds;
	char err[GRAFT_ERRLEN];

	write_idx(img, 0x803, 3, dims, px, sizeof px, 1);
	assert_fails(load_images(img, 2, &ds, err), GRAFT_EFORMAT, &ds, err, img,
	             "truncated: header says 10000000 images of 4096x4096 "
	             "(167772160000000 bytes) but the file holds 64");
}

Test(dataset, idx_null_arguments)
{
	nn_dataset ds;
	char err[GRAFT_ERRLEN];

	cr_assert_eq(nn_idx_load(NULL, "a", "b", err, sizeof err), GRAFT_EINVAL);
	cr_assert_eq(nn_idx_load(&ds, NULL, "b", err, sizeof err), GRAFT_EINVAL);
	cr_assert_eq(nn_idx_load(&ds, "a", NULL, NULL, 0), GRAFT_EINVAL);
}

/* ---- CIFAR-10 ------------------------------------------------------------ */

#define REC 3073

/* Writes n CIFAR records whose label and pixels derive from first + i. */
static void write_cifar(const char *path, int first, int n)
{
	uint8_t *b = malloc((size_t)n * REC);

	for (int i = 0; i < n; i++) {
		b[(size_t)i * REC] = label_at((size_t)(first + i));
		for (int k = 0; k < 3072; k++)
			b[(size_t)i * REC + 1 + k] = pix_at((size_t)(first + i) * 3072 + k);
	}
	write_file(path, b, (size_t)n * REC, 0);
	free(b);
}

Test(dataset, cifar_concatenates_files)
{
	const char *paths[2] = { tpath("data_batch_1.bin"), tpath("data_batch_2.bin") };
	nn_dataset ds;
	char err[GRAFT_ERRLEN];
	int rc;

	write_cifar(paths[0], 0, 3);
	write_cifar(paths[1], 3, 2);
	rc = nn_cifar10_load(&ds, paths, 2, err, sizeof err);
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	cr_assert(ds.n == 5 && ds.c == 3 && ds.h == 32 && ds.w == 32 && ds.classes == 10,
	          "shape %d %d %d %d classes %d", ds.n, ds.c, ds.h, ds.w, ds.classes);
	for (size_t i = 0; i < 5; i++)
		cr_assert_eq(ds.labels[i], label_at(i), "label %zu", i);
	for (size_t k = 0; k < 5 * 3072; k++)
		cr_assert_eq(ds.pixels[k], pix_at(k), "pixel %zu", k);
	nn_dataset_free(&ds);
}

Test(dataset, cifar_size_not_a_multiple)
{
	const char *paths[2] = { tpath("good.bin"), tpath("bad-size.bin") };
	uint8_t b[REC * 2 + 5] = { 0 };
	nn_dataset ds;
	char err[GRAFT_ERRLEN];

	write_cifar(paths[0], 0, 2);
	write_file(paths[1], b, sizeof b, 0);
	assert_fails(nn_cifar10_load(&ds, paths, 2, err, sizeof err), GRAFT_EFORMAT, &ds,
	             err, paths[1], "size 6151 bytes is not a positive multiple of the "
	             "3073-byte record");
	write_file(paths[1], b, 0, 0);
	assert_fails(nn_cifar10_load(&ds, paths, 2, err, sizeof err), GRAFT_EFORMAT, &ds,
	             err, paths[1], "size 0 bytes");
}

Test(dataset, cifar_bad_label)
{
	const char *paths[1] = { tpath("bad-label.bin") };
	size_t len;
	uint8_t *b;
	nn_dataset ds;
	char err[GRAFT_ERRLEN];

	write_cifar(paths[0], 0, 4);
	b = read_whole(paths[0], &len);
	b[2 * REC] = 10;
	write_file(paths[0], b, len, 0);
	free(b);
	assert_fails(nn_cifar10_load(&ds, paths, 1, err, sizeof err), GRAFT_EFORMAT, &ds,
	             err, paths[0], "record 2 has label 10, expected 0..9");
}

Test(dataset, cifar_missing_file_and_bad_arguments)
{
	const char *paths[2] = { tpath("good.bin"), tpath("missing.bin") };
	nn_dataset ds;
	char err[GRAFT_ERRLEN];

	write_cifar(paths[0], 0, 1);
	assert_fails(nn_cifar10_load(&ds, paths, 2, err, sizeof err), GRAFT_EIO, &ds, err,
	             paths[1], "cannot open");
	cr_assert_eq(nn_cifar10_load(&ds, paths, 0, err, sizeof err), GRAFT_EINVAL);
	cr_assert_eq(nn_cifar10_load(&ds, NULL, 1, err, sizeof err), GRAFT_EINVAL);
}

/* ---- split and stats -------------------------------------------------------- */

/* A dataset of n images of c x h x w with the test patterns, owned by the caller. */
static nn_dataset make_ds(int n, int c, int h, int w)
{
	size_t np = (size_t)n * c * h * w;
	nn_dataset ds = { .n = n, .c = c, .h = h, .w = w, .classes = 10, .pixels = malloc(np),
	                  .labels = malloc((size_t)n) };

	for (size_t i = 0; i < np; i++)
		ds.pixels[i] = pix_at(i);
	for (int i = 0; i < n; i++)
		ds.labels[i] = label_at((size_t)i);
	return ds;
}

Test(dataset, split_copies_first_and_last)
{
	nn_dataset src = make_ds(10, 2, 3, 2), tr, va;
	size_t chw = 12;

	src.labels[9] = 3; /* the largest label (9) is then only in train */
	cr_assert_eq(nn_dataset_split(&src, 3, &tr, &va), 0);
	cr_assert(tr.n == 7 && va.n == 3, "n %d %d", tr.n, va.n);
	cr_assert(tr.c == 2 && tr.h == 3 && tr.w == 2 && va.c == 2 && va.h == 3 && va.w == 2);
	cr_assert(tr.classes == 10 && va.classes == 10);
	cr_assert(memcmp(tr.pixels, src.pixels, 7 * chw) == 0);
	cr_assert(memcmp(va.pixels, src.pixels + 7 * chw, 3 * chw) == 0);
	cr_assert(memcmp(tr.labels, src.labels, 7) == 0);
	cr_assert(memcmp(va.labels, src.labels + 7, 3) == 0);
	cr_assert(tr.pixels != src.pixels && va.labels != src.labels + 7, "not copies");
	nn_dataset_free(&src);
	nn_dataset_free(&tr);
	nn_dataset_free(&va);
}

Test(dataset, split_rejects_bad_nval)
{
	nn_dataset src = make_ds(4, 1, 2, 2), tr, va;
	int bad[] = { 0, -1, 4, 5 };

	for (int i = 0; i < 4; i++) {
		memset(&tr, 0xab, sizeof tr);
		memset(&va, 0xab, sizeof va);
		cr_assert_eq(nn_dataset_split(&src, bad[i], &tr, &va), GRAFT_EINVAL,
		             "nval %d", bad[i]);
		assert_zeroed(&tr);
		assert_zeroed(&va);
	}
	cr_assert_eq(nn_dataset_split(&src, 1, &tr, &tr), GRAFT_EINVAL);
	cr_assert_eq(nn_dataset_split(&src, 1, &src, &va), GRAFT_EINVAL);
	cr_assert_eq(src.n, 4);
	nn_dataset_free(&src);
}

Test(dataset, stats_by_hand)
{
	/* Two images of 2 channels of 1x2: channel 0 is 0,255 | 255,255 and
	 * channel 1 is 10,20 | 30,40. */
	uint8_t px[8] = { 0, 255, 10, 20, 255, 255, 30, 40 }, lab[2] = { 0, 1 };
	nn_dataset ds = { .n = 2, .c = 2, .h = 1, .w = 2, .classes = 2, .pixels = px, .labels = lab };
	float mean[2], std[2];

	nn_dataset_stats(&ds, mean, std);
	/* Channel 0: values 0,1,1,1, mean 3/4, variance (9/16 + 3/16) / 4 = 3/16. */
	cr_assert_float_eq(mean[0], 0.75f, 1e-7);
	cr_assert_float_eq(std[0], (float)sqrt(3.0 / 16), 1e-7);
	/* Channel 1: 10..40 step 10, mean 25/255, variance (225+25+25+225)/4/255^2. */
	cr_assert_float_eq(mean[1], (float)(25.0 / 255), 1e-7);
	cr_assert_float_eq(std[1], (float)(sqrt(125.0) / 255), 1e-7);
}

/* Against a direct double loop over a dataset big enough to have every value. */
Test(dataset, stats_match_direct_sums)
{
	nn_dataset ds = make_ds(50, 3, 7, 5);
	float mean[3], std[3];

	nn_dataset_stats(&ds, mean, std);
	for (int ch = 0; ch < 3; ch++) {
		double s = 0, s2 = 0, cnt = 50 * 35, m;

		for (int i = 0; i < 50; i++)
			for (int k = 0; k < 35; k++) {
				double v = ds.pixels[(i * 3 + ch) * 35 + k] / 255.0;

				s += v;
				s2 += v * v;
			}
		m = s / cnt;
		cr_assert_float_eq(mean[ch], m, 1e-6, "mean[%d] %g != %g", ch, mean[ch], m);
		cr_assert_float_eq(std[ch], sqrt(s2 / cnt - m * m), 1e-6, "std[%d]", ch);
	}
	nn_dataset_free(&ds);
}

/* ---- batches ---------------------------------------------------------------- */

static float norm(uint8_t p, float mean, float std)
{
	return (float)((p / 255.0 - mean) / std);
}

/* The augmented image the slow, obvious way: zero-pad the raw image by pad,
 * cut the h x w window at (oy, ox), mirror it if flip, then normalize.
 * out: (c, h, w) */
static void ref_image(const nn_dataset *ds, int img, const float *mean, const float *std,
                      int pad, int oy, int ox, int flip, float *out)
{
	int h = ds->h, w = ds->w, ph = h + 2 * pad, pw = w + 2 * pad;
	uint8_t *padded = calloc((size_t)ph * pw, 1), *win = malloc((size_t)h * w);

	for (int ch = 0; ch < ds->c; ch++) {
		const uint8_t *src = ds->pixels + ((size_t)img * ds->c + ch) * h * w;

		memset(padded, 0, (size_t)ph * pw);
		for (int r = 0; r < h; r++)
			memcpy(padded + (r + pad) * pw + pad, src + r * w, (size_t)w);
		for (int r = 0; r < h; r++)
			for (int j = 0; j < w; j++)
				win[r * w + j] = padded[(oy + r) * pw + ox + j];
		for (int r = 0; r < h; r++)
			for (int j = 0; j < w; j++)
				out[(ch * h + r) * w + j] =
					norm(win[r * w + (flip ? w - 1 - j : j)], mean[ch], std[ch]);
	}
	free(padded);
	free(win);
}

Test(dataset, batch_normalizes_and_labels)
{
	nn_dataset ds = make_ds(5, 2, 3, 4);
	float mean[2] = { 0.3f, 0.6f }, std[2] = { 0.2f, 0.5f }, x[4 * 24];
	int idx[4] = { 4, 0, 2, 2 }, y[4];

	nn_dataset_batch(&ds, idx, 4, mean, std, NULL, NULL, x, y);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(y[i], label_at((size_t)idx[i]), "y[%d]", i);
		for (int k = 0; k < 24; k++) {
			uint8_t p = ds.pixels[idx[i] * 24 + k];
			float want = (p / 255.0f - mean[k / 12]) / std[k / 12];

			cr_assert_float_eq(x[i * 24 + k], want, 1e-5, "image %d pixel %d: %g != %g",
			                   i, k, x[i * 24 + k], want);
		}
	}
	nn_dataset_free(&ds);
}

Test(dataset, batch_without_augmentation_ignores_the_rng)
{
	nn_dataset ds = make_ds(3, 1, 28, 28);
	float mean[1] = { 0.28f }, std[1] = { 0.35f }, a[3 * 784], b[3 * 784];
	nn_augment off = { 0, 0 };
	int idx[3] = { 2, 1, 0 }, ya[3], yb[3];
	nn_rng r, r0;

	nn_rng_seed(&r, 5);
	r0 = r;
	nn_dataset_batch(&ds, idx, 3, mean, std, NULL, NULL, a, ya);
	nn_dataset_batch(&ds, idx, 3, mean, std, &off, &r, b, yb);
	cr_assert(memcmp(a, b, sizeof a) == 0, "pad 0 differs from the plain image");
	cr_assert(memcmp(ya, yb, sizeof ya) == 0);
	cr_assert(memcmp(&r, &r0, sizeof r) == 0, "the rng was drawn from");
	nn_dataset_free(&ds);
}

/* An all-white image shows the zero padding as (0 - mean) / std = -2. */
Test(dataset, batch_crop_shows_the_zero_padding)
{
	nn_dataset ds = make_ds(1, 1, 6, 6);
	float mean[1] = { 0.5f }, std[1] = { 0.25f }, x[8 * 36];
	nn_augment aug = { 2, 0 };
	int idx[8] = { 0 }, y[8], padded = 0;
	nn_rng r;

	memset(ds.pixels, 255, 36);
	for (uint64_t seed = 1; seed <= 10; seed++) {
		nn_rng_seed(&r, seed);
		nn_dataset_batch(&ds, idx, 8, mean, std, &aug, &r, x, y);
		for (int k = 0; k < 8 * 36; k++) {
			cr_assert(x[k] == -2.0f || x[k] == 2.0f, "x[%d] = %g", k, x[k]);
			padded += x[k] == -2.0f;
		}
	}
	cr_assert_gt(padded, 0, "no padding in 80 crops with pad 2");
	nn_dataset_free(&ds);
}

/* Replays the documented draws (row offset, column offset, flip) and compares
 * every image with the reference; h != w catches a swapped axis. */
Test(dataset, batch_crop_and_flip_match_the_reference)
{
	nn_dataset ds = make_ds(6, 2, 6, 5);
	float mean[2] = { 0.4f, 0.5f }, std[2] = { 0.3f, 0.2f }, x[24 * 60], want[60];
	nn_augment aug = { 2, 1 };
	int idx[24], y[24], moved = 0, flipped = 0;
	nn_rng r, replay;

	for (int i = 0; i < 24; i++)
		idx[i] = (i * 5) % 6;
	nn_rng_seed(&r, 42);
	replay = r;
	nn_dataset_batch(&ds, idx, 24, mean, std, &aug, &r, x, y);
	for (int i = 0; i < 24; i++) {
		int oy = (int)nn_rng_below(&replay, 5), ox = (int)nn_rng_below(&replay, 5);
		int f = (int)nn_rng_below(&replay, 2);

		moved += oy != 2 || ox != 2;
		flipped += f;
		ref_image(&ds, idx[i], mean, std, 2, oy, ox, f, want);
		for (int k = 0; k < 60; k++)
			cr_assert_float_eq(x[i * 60 + k], want[k], 1e-6, "image %d (oy %d ox %d "
			                   "flip %d) x[%d] = %g, want %g", i, oy, ox, f, k,
			                   x[i * 60 + k], want[k]);
		cr_assert_eq(y[i], ds.labels[idx[i]]);
	}
	cr_assert(memcmp(&r, &replay, sizeof r) == 0, "the draws differ from the replay");
	cr_assert(moved > 0 && flipped > 0 && flipped < 24, "moved %d flipped %d",
	          moved, flipped);
	nn_dataset_free(&ds);
}

Test(dataset, batch_flip_mirrors)
{
	nn_dataset ds = make_ds(1, 1, 4, 5);
	float mean[1] = { 0.5f }, std[1] = { 0.3f }, x[32 * 20];
	nn_augment aug = { 0, 1 };
	int idx[32] = { 0 }, y[32], flips = 0;
	nn_rng r, replay;

	nn_rng_seed(&r, 3);
	replay = r;
	nn_dataset_batch(&ds, idx, 32, mean, std, &aug, &r, x, y);
	for (int i = 0; i < 32; i++) {
		int f = (int)nn_rng_below(&replay, 2);

		flips += f;
		for (int row = 0; row < 4; row++)
			for (int j = 0; j < 5; j++) {
				uint8_t p = ds.pixels[row * 5 + (f ? 4 - j : j)];

				cr_assert_float_eq(x[i * 20 + row * 5 + j], norm(p, 0.5f, 0.3f), 1e-6,
				                   "image %d flip %d row %d col %d", i, f, row, j);
			}
	}
	cr_assert(flips > 0 && flips < 32, "%d flips of 32", flips);
	nn_dataset_free(&ds);
}

Test(dataset, batch_is_deterministic_for_a_seed)
{
	nn_dataset ds = make_ds(10, 3, 8, 8);
	float mean[3] = { 0.5f, 0.4f, 0.3f }, std[3] = { 0.2f, 0.25f, 0.3f };
	float a[16 * 192], b[16 * 192], c[16 * 192];
	nn_augment aug = { 3, 1 };
	int idx[16], ya[16], yb[16], yc[16];
	nn_rng ra, rb, rc;

	for (int i = 0; i < 16; i++)
		idx[i] = i * 7 % 10;
	nn_rng_seed(&ra, 99);
	nn_rng_seed(&rb, 99);
	nn_rng_seed(&rc, 100);
	nn_dataset_batch(&ds, idx, 16, mean, std, &aug, &ra, a, ya);
	nn_dataset_batch(&ds, idx, 16, mean, std, &aug, &rb, b, yb);
	nn_dataset_batch(&ds, idx, 16, mean, std, &aug, &rc, c, yc);
	cr_assert(memcmp(a, b, sizeof a) == 0, "same seed, different batch");
	cr_assert(memcmp(ya, yb, sizeof ya) == 0);
	cr_assert(memcmp(&ra, &rb, sizeof ra) == 0);
	cr_assert(memcmp(a, c, sizeof a) != 0, "seeds 99 and 100 gave the same batch");
	nn_dataset_free(&ds);
}

/* ---- the real Fashion-MNIST --------------------------------------------------- */

Test(dataset, fashion_mnist_loads)
{
	nn_dataset tr, te;
	char err[GRAFT_ERRLEN];
	int per_class[10] = { 0 }, rc;
	float mean, std;

	if (access(FASHION_DIR, R_OK) != 0)
		cr_skip_test(FASHION_DIR " is absent");
	rc = nn_idx_load(&tr, FASHION_DIR "/train-images-idx3-ubyte.gz",
	                 FASHION_DIR "/train-labels-idx1-ubyte.gz", err, sizeof err);
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	rc = nn_idx_load(&te, FASHION_DIR "/t10k-images-idx3-ubyte.gz",
	                 FASHION_DIR "/t10k-labels-idx1-ubyte.gz", err, sizeof err);
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	cr_assert(tr.n == 60000 && tr.c == 1 && tr.h == 28 && tr.w == 28 && tr.classes == 10,
	          "train %d %d %d %d classes %d", tr.n, tr.c, tr.h, tr.w, tr.classes);
	cr_assert(te.n == 10000 && te.c == 1 && te.h == 28 && te.w == 28 && te.classes == 10,
	          "t10k %d %d %d %d classes %d", te.n, te.c, te.h, te.w, te.classes);
	cr_assert_eq(tr.labels[0], 9, "the first train image is an ankle boot (9)");
	for (int i = 0; i < tr.n; i++)
		per_class[tr.labels[i]]++;
	for (int k = 0; k < 10; k++)
		cr_assert_eq(per_class[k], 6000, "class %d has %d images", k, per_class[k]);
	/* The figures everyone normalizes Fashion-MNIST with. */
	nn_dataset_stats(&tr, &mean, &std);
	cr_assert_float_eq(mean, 0.2860f, 1e-4, "mean %g", mean);
	cr_assert_float_eq(std, 0.3530f, 1e-4, "std %g", std);
	nn_dataset_free(&tr);
	nn_dataset_free(&te);
	/* Images of one split with the labels of the other must not load. */
	memset(&tr, 0xab, sizeof tr);
	assert_fails(nn_idx_load(&tr, FASHION_DIR "/t10k-images-idx3-ubyte.gz",
	                         FASHION_DIR "/train-labels-idx1-ubyte.gz", err, sizeof err),
	             GRAFT_EFORMAT, &tr, err, "t10k-images", "holds 10000 images");
}
