/*
 * test_safetensors.c - the safetensors reader and writer: a round trip, a file
 * written by PyTorch's side of the world, and one test per way a hostile file
 * can lie, each of which must be GRAFT_EFORMAT with a message saying why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "nn/nn.h"
#include "tests/support/scratch.h"

/* Every test writes its files into its own scratch directory, removed by
 * the fini hook even when an assertion ends the test early. */
static const char *dir;

static void setup(void)
{
	dir = scratch_make("st");
}

TestSuite(safetensors, .init = setup, .fini = scratch_remove, .timeout = 60);

static const char *fixture_dir(void)
{
	const char *d = getenv("GRAFT_TEST_DATA");
	return d && *d ? d : "tests/fixtures";
}

/* Writes raw bytes to a file in the test directory and returns its path. */
static const char *write_raw(const void *bytes, size_t len)
{
	const char *path = scratch_path("hostile.safetensors");
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f, "cannot create %s", path);
	cr_assert_eq(fwrite(bytes, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
	return path;
}

/* Writes a file whose length prefix says hlen, followed by header and ndata
 * data bytes (counting 0, 1, 2, ...), and returns its path. */
static const char *write_st_len(uint64_t hlen, const char *header, size_t ndata)
{
	size_t len = strlen(header);
	unsigned char *buf = malloc(8 + len + ndata);
	cr_assert_not_null(buf);
	for (int i = 0; i < 8; i++)
		buf[i] = (unsigned char)(hlen >> (8 * i));
	memcpy(buf + 8, header, len);
	for (size_t i = 0; i < ndata; i++)
		buf[8 + len + i] = (unsigned char)i;
	const char *path = write_raw(buf, 8 + len + ndata);
	free(buf);
	return path;
}

/* The same with an honest length prefix. */
static const char *write_st(const char *header, size_t ndata)
{
	return write_st_len(strlen(header), header, ndata);
}

/* Reads path and checks that it fails with rc, names the file, mentions
 * want, and leaves nothing loaded. */
static void expect_fail(const char *path, int rc_want, const char *want)
{
	nn_weights w;
	char err[GRAFT_ERRLEN];
	memset(&w, 0x55, sizeof w);
	int rc = nn_safetensors_read(path, &w, err, sizeof err);
	cr_assert_eq(rc, rc_want, "rc %d (%s), want %d; err: %s", rc,
	             graft_strerror(rc), rc_want, err);
	cr_assert_not_null(strstr(err, path), "err does not name the file: %s", err);
	cr_assert_not_null(strstr(err, want), "err lacks '%s': %s", want, err);
	cr_assert_null(strchr(err, '\n'), "err is more than one line: %s", err);
	cr_assert(w.n == 0 && w.t == NULL && w.blob == NULL && w.nmeta == 0 &&
	          w.meta == NULL, "a failed read left n=%d t=%p blob=%p nmeta=%d meta=%p",
	          w.n, (void *)w.t, w.blob, w.nmeta, (void *)w.meta);
}

static void expect_format(const char *path, const char *want)
{
	expect_fail(path, GRAFT_EFORMAT, want);
}

/* ---- round trip and the PyTorch fixture ----------------------------------- */

static float v1[5] = { 1.0f, -2.5f, 3.25f, 0.0f, -0.0f };
static float v2[2 * 3];
static float v4[2 * 1 * 2 * 3];

static void fill_tensors(nn_tensor t[3])
{
	for (int i = 0; i < 6; i++)
		v2[i] = (float)i / 7.0f - 0.3f;
	for (int i = 0; i < 12; i++)
		v4[i] = 1e-30f * (float)(i + 1) * (i % 2 ? -1.0f : 1.0f);
	v1[3] = 1.0f / 3.0f;
	memset(t, 0, 3 * sizeof *t);
	/* Deliberately not alphabetical, so order is checked for real. */
	strcpy(t[0].name, "stem.conv.weight");
	t[0].ndim = 4;
	t[0].shape[0] = 2, t[0].shape[1] = 1, t[0].shape[2] = 2, t[0].shape[3] = 3;
	t[0].data = v4;
	strcpy(t[1].name, "head.bias");
	t[1].ndim = 1;
	t[1].shape[0] = 5;
	t[1].data = v1;
	strcpy(t[2].name, "blocks.0.conv.weight");
	t[2].ndim = 2;
	t[2].shape[0] = 2, t[2].shape[1] = 3;
	t[2].data = v2;
}

static void assert_same_tensor(const nn_tensor *got, const nn_tensor *want)
{
	cr_assert_str_eq(got->name, want->name);
	cr_assert_eq(got->ndim, want->ndim, "'%s': ndim %d, want %d", want->name,
	             got->ndim, want->ndim);
	for (int d = 0; d < want->ndim; d++)
		cr_assert_eq(got->shape[d], want->shape[d], "'%s': shape[%d] %lld, want %lld",
		             want->name, d, (long long)got->shape[d], (long long)want->shape[d]);
	cr_assert_eq((uintptr_t)got->data % 4, 0, "'%s': data unaligned", want->name);
	int64_t n = nn_tensor_numel(want);
	for (int64_t i = 0; i < n; i++)
		cr_assert(memcmp(&got->data[i], &want->data[i], 4) == 0,
		          "'%s'[%lld]: %.9g, want %.9g", want->name, (long long)i,
		          got->data[i], want->data[i]);
}

Test(safetensors, round_trip)
{
	nn_tensor t[3];
	fill_tensors(t);
	char err[GRAFT_ERRLEN];
	const char *path = scratch_path("rt.safetensors");
	int rc = nn_safetensors_write(path, t, 3, err, sizeof err);
	cr_assert_eq(rc, 0, "write: %s", err);

	nn_weights w;
	rc = nn_safetensors_read(path, &w, err, sizeof err);
	cr_assert_eq(rc, 0, "read: %s", err);
	cr_assert_eq(w.n, 3);
	for (int i = 0; i < 3; i++)
		assert_same_tensor(&w.t[i], &t[i]);
	cr_assert_eq(nn_weights_find(&w, "head.bias"), &w.t[1]);
	cr_assert_null(nn_weights_find(&w, "head"));
	nn_weights_free(&w);
	cr_assert(w.n == 0 && w.t == NULL && w.blob == NULL);
	nn_weights_free(&w);
	nn_weights_free(NULL);

	struct stat st;
	cr_assert_neq(stat(scratch_path("rt.safetensors.tmp"), &st), 0, "the .tmp file is left");
}

/* A file of no tensors is valid, and reads back as none. */
Test(safetensors, no_tensors)
{
	char err[GRAFT_ERRLEN];
	const char *path = scratch_path("empty.safetensors");
	cr_assert_eq(nn_safetensors_write(path, NULL, 0, err, sizeof err), 0, "%s", err);
	nn_weights w;
	cr_assert_eq(nn_safetensors_read(path, &w, err, sizeof err), 0, "%s", err);
	cr_assert_eq(w.n, 0);
	cr_assert_null(nn_weights_find(&w, "x"));
	nn_weights_free(&w);
}

/* The header is padded to 8 bytes with spaces, the data follows at once, and
 * it holds the floats in the order given. */
Test(safetensors, write_layout)
{
	nn_tensor t[3];
	fill_tensors(t);
	char err[GRAFT_ERRLEN];
	const char *path = scratch_path("layout.safetensors");
	cr_assert_eq(nn_safetensors_write(path, t, 3, err, sizeof err), 0, "%s", err);
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f);
	static unsigned char buf[4096];
	size_t len = fread(buf, 1, sizeof buf, f);
	fclose(f);
	uint64_t hlen = 0;
	for (int i = 0; i < 8; i++)
		hlen |= (uint64_t)buf[i] << (8 * i);
	cr_assert_eq(hlen % 8, 0, "header length %llu", (unsigned long long)hlen);
	cr_assert_eq(len, 8 + hlen + 4 * (12 + 5 + 6), "file is %zu bytes", len);
	cr_assert_eq(buf[8], '{');
	cr_assert_eq(memcmp(buf + 8 + hlen, v4, sizeof v4), 0);
	cr_assert_eq(memcmp(buf + 8 + hlen + sizeof v4, v1, sizeof v1), 0);
	cr_assert_eq(memcmp(buf + 8 + hlen + sizeof v4 + sizeof v1, v2, sizeof v2), 0);
}

static uint32_t get_u32(const unsigned char **p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)(*p)[i] << (8 * i);
	*p += 4;
	return v;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s (run tests/fixtures/make_safetensors.py)",
	                   path);
	static unsigned char buf[1 << 16];
	*len = fread(buf, 1, sizeof buf, f);
	fclose(f);
	cr_assert_lt(*len, sizeof buf);
	return buf;
}

/* The file make_safetensors.py writes with torch has the values of the
 * .expected file, in data order (its header keys are sorted differently). */
Test(safetensors, pytorch_fixture)
{
	char path[512], err[GRAFT_ERRLEN];
	snprintf(path, sizeof path, "%s/torch_weights.safetensors", fixture_dir());
	nn_weights w;
	int rc = nn_safetensors_read(path, &w, err, sizeof err);
	cr_assert_eq(rc, 0, "%s", err);

	snprintf(path, sizeof path, "%s/torch_weights.expected", fixture_dir());
	size_t len;
	const unsigned char *p = slurp(path, &len), *end = p + len;
	cr_assert(len >= 12 && memcmp(p, "GRFXST01", 8) == 0, "bad magic in %s", path);
	p += 8;
	uint32_t count = get_u32(&p);
	cr_assert_eq(w.n, (int)count, "%d tensors, want %u", w.n, count);
	for (uint32_t i = 0; i < count; i++) {
		nn_tensor want = { .ndim = 0 };
		uint32_t nlen = get_u32(&p);
		cr_assert(nlen < NN_NAME_MAX && p + nlen + 4 <= end);
		memcpy(want.name, p, nlen);
		p += nlen;
		want.ndim = (int)get_u32(&p);
		cr_assert(want.ndim >= 1 && want.ndim <= 4 && p + 8 * want.ndim <= end);
		for (int d = 0; d < want.ndim; d++, p += 8)
			memcpy(&want.shape[d], p, 8);
		int64_t n = nn_tensor_numel(&want);
		cr_assert(n >= 0 && p + 4 * n <= end);
		want.data = malloc((size_t)n * 4 + 1);
		memcpy(want.data, p, (size_t)n * 4);
		p += 4 * n;
		assert_same_tensor(&w.t[i], &want);
		cr_assert_eq(nn_weights_find(&w, want.name), &w.t[i]);
		free(want.data);
	}
	cr_assert_eq(p, end, "trailing bytes in the .expected file");
	nn_weights_free(&w);
}

Test(safetensors, scalar_and_metadata)
{
	const char *path = write_st("{\"__metadata__\":{\"format\":\"pt\"},"
	                            "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
	                            "\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]}}",
	                            4);
	nn_weights w;
	char err[GRAFT_ERRLEN];
	int rc = nn_safetensors_read(path, &w, err, sizeof err);
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(w.n, 2);
	cr_assert_str_eq(w.t[0].name, "s");
	cr_assert(w.t[0].ndim == 1 && w.t[0].shape[0] == 1);
	unsigned char want[4] = { 0, 1, 2, 3 };
	cr_assert_eq(memcmp(w.t[0].data, want, 4), 0);
	cr_assert_str_eq(w.t[1].name, "z");
	cr_assert_eq(nn_tensor_numel(&w.t[1]), 0);
	cr_assert_null(nn_weights_find(&w, "__metadata__"));
	cr_assert_eq(w.nmeta, 1);
	cr_assert_str_eq(nn_weights_meta(&w, "format"), "pt");
	nn_weights_free(&w);
}

Test(safetensors, numel)
{
	nn_tensor t = { .ndim = 3, .shape = { 2, 3, 4 } };
	cr_assert_eq(nn_tensor_numel(&t), 24);
	t.shape[1] = 0;
	cr_assert_eq(nn_tensor_numel(&t), 0);
	t.shape[1] = -1;
	cr_assert_eq(nn_tensor_numel(&t), -1);
	t.ndim = 5;
	cr_assert_eq(nn_tensor_numel(&t), -1);
	nn_tensor big = { .ndim = 2, .shape = { INT64_C(1) << 31, INT64_C(1) << 31 } };
	cr_assert_eq(nn_tensor_numel(&big), -1, "byte size 2^64 overflows");
}

/* ---- metadata ----------------------------------------------------------------- */

/* Metadata comes back as written, in order, beside unchanged tensors; values
 * may be empty or hold any UTF-8, including what JSON must escape. */
Test(safetensors, metadata_round_trip)
{
	nn_tensor t[3];
	fill_tensors(t);
	const char *meta[] = {
		"format", "pt",
		"graft.arch", "graft-arch/1\nblocks: [conv3x3]\t\"quoted\"",
		"empty", "",
		"unicode \xc3\xa9", "\xe2\x82\xac \xf0\x9f\x98\x80",
	};
	char err[GRAFT_ERRLEN];
	const char *path = scratch_path("meta.safetensors");
	int rc = nn_safetensors_write_meta(path, t, 3, meta, 4, err, sizeof err);
	cr_assert_eq(rc, 0, "write: %s", err);

	nn_weights w;
	rc = nn_safetensors_read(path, &w, err, sizeof err);
	cr_assert_eq(rc, 0, "read: %s", err);
	cr_assert_eq(w.n, 3);
	for (int i = 0; i < 3; i++)
		assert_same_tensor(&w.t[i], &t[i]);
	cr_assert_eq(w.nmeta, 4);
	for (int i = 0; i < 8; i++)
		cr_assert_str_eq(w.meta[i], meta[i], "meta[%d]", i);
	for (int i = 0; i < 4; i++)
		cr_assert_str_eq(nn_weights_meta(&w, meta[2 * i]), meta[2 * i + 1]);
	cr_assert_null(nn_weights_meta(&w, "absent"));
	cr_assert_null(nn_weights_meta(&w, "pt"), "a value is not a key");
	cr_assert_null(nn_weights_meta(&w, NULL));
	cr_assert_null(nn_weights_meta(NULL, "format"));
	nn_weights_free(&w);
	cr_assert(w.nmeta == 0 && w.meta == NULL);
}

/* The limits are inclusive: 64 pairs of 4096-byte keys and values are fine. */
Test(safetensors, metadata_at_the_limits)
{
	static char keys[NN_META_MAX][NN_META_LEN_MAX + 1];
	static char value[NN_META_LEN_MAX + 1];
	const char *meta[2 * NN_META_MAX];
	memset(value, 'v', NN_META_LEN_MAX);
	for (int i = 0; i < NN_META_MAX; i++) {
		char num[16];
		snprintf(num, sizeof num, "%07d", i);
		memset(keys[i], 'k', NN_META_LEN_MAX);
		memcpy(keys[i], num, 7); /* distinct keys of the full length */
		meta[2 * i] = keys[i];
		meta[2 * i + 1] = value;
	}
	char err[GRAFT_ERRLEN];
	const char *path = scratch_path("big-meta.safetensors");
	int rc = nn_safetensors_write_meta(path, NULL, 0, meta, NN_META_MAX, err,
	                                   sizeof err);
	cr_assert_eq(rc, 0, "write: %s", err);
	nn_weights w;
	cr_assert_eq(nn_safetensors_read(path, &w, err, sizeof err), 0, "read: %s", err);
	cr_assert_eq(w.n, 0);
	cr_assert_eq(w.nmeta, NN_META_MAX);
	for (int i = 0; i < NN_META_MAX; i++) {
		cr_assert_str_eq(w.meta[2 * i], keys[i]);
		cr_assert_str_eq(nn_weights_meta(&w, keys[i]), value);
	}
	nn_weights_free(&w);
}

/* A file written without metadata, or whose metadata object is empty, has
 * none: nmeta 0, meta NULL, and every lookup NULL. */
Test(safetensors, no_metadata)
{
	nn_tensor t[3];
	fill_tensors(t);
	char err[GRAFT_ERRLEN];
	const char *path = scratch_path("plain.safetensors");
	cr_assert_eq(nn_safetensors_write(path, t, 3, err, sizeof err), 0, "%s", err);
	nn_weights w;
	cr_assert_eq(nn_safetensors_read(path, &w, err, sizeof err), 0, "%s", err);
	cr_assert(w.nmeta == 0 && w.meta == NULL, "nmeta %d", w.nmeta);
	cr_assert_null(nn_weights_meta(&w, "format"));
	nn_weights_free(&w);

	/* nmeta 0 with a NULL meta is the same as no metadata at all. */
	cr_assert_eq(nn_safetensors_write_meta(path, t, 3, NULL, 0, err, sizeof err), 0,
	             "%s", err);
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f);
	char buf[512];
	size_t len = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[len] = '\0';
	cr_assert_null(memmem(buf, len, "__metadata__", 12), "an empty __metadata__ "
	               "was written");

	path = write_st("{\"__metadata__\":{},"
	                "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
	cr_assert_eq(nn_safetensors_read(path, &w, err, sizeof err), 0, "%s", err);
	cr_assert(w.n == 1 && w.nmeta == 0 && w.meta == NULL, "n %d nmeta %d",
	          w.n, w.nmeta);
	nn_weights_free(&w);
}

/* Writes with metadata that must be refused and checks the refusal: EINVAL,
 * a message that names the file and says why, and no file left behind. */
static void expect_meta_refused(const char *const *meta, int nmeta, const char *want)
{
	nn_tensor t[3];
	fill_tensors(t);
	char err[GRAFT_ERRLEN];
	const char *path = scratch_path("bad-meta.safetensors");
	int rc = nn_safetensors_write_meta(path, t, 3, meta, nmeta, err, sizeof err);
	cr_assert_eq(rc, GRAFT_EINVAL, "rc %d (%s), want GRAFT_EINVAL for '%s'; err: %s",
	             rc, graft_strerror(rc), want, err);
	cr_assert_not_null(strstr(err, path), "err does not name the file: %s", err);
	cr_assert_not_null(strstr(err, want), "err lacks '%s': %s", want, err);
	struct stat st;
	cr_assert_neq(stat(path, &st), 0, "a refused write created the file");
	cr_assert_neq(stat(scratch_path("bad-meta.safetensors.tmp"), &st), 0);
}

Test(safetensors, write_rejects_bad_metadata)
{
	const char *empty_key[] = { "", "v" };
	expect_meta_refused(empty_key, 1, "metadata pair 0: key is empty");
	const char *bad_key[] = { "ok", "v", "caf\xe9", "v" };
	expect_meta_refused(bad_key, 2, "metadata pair 1: key is not valid UTF-8");
	const char *bad_value[] = { "k", "\xc0\xaf" }; /* overlong '/' */
	expect_meta_refused(bad_value, 1, "metadata pair 0: value is not valid UTF-8");
	const char *surrogate[] = { "k", "\xed\xa0\x80" };
	expect_meta_refused(surrogate, 1, "metadata pair 0: value is not valid UTF-8");
	const char *cut[] = { "k", "\xe2\x82" };
	expect_meta_refused(cut, 1, "metadata pair 0: value is not valid UTF-8");
	const char *null_value[] = { "k", NULL };
	expect_meta_refused(null_value, 1, "metadata pair 0: value is NULL");
	const char *twice[] = { "k", "1", "j", "2", "k", "3" };
	expect_meta_refused(twice, 3, "metadata key 'k' appears twice");
	expect_meta_refused(NULL, 2, "2 metadata pairs but meta is NULL");
	expect_meta_refused(twice, -1, "-1 metadata pairs, want 0..64");

	static char long_str[NN_META_LEN_MAX + 2];
	memset(long_str, 'x', NN_META_LEN_MAX + 1);
	const char *long_value[] = { "k", long_str };
	expect_meta_refused(long_value, 1, "metadata pair 0: value is longer than the "
	                    "4096 bytes allowed");
	const char *long_key[] = { long_str, "v" };
	expect_meta_refused(long_key, 1, "metadata pair 0: key is longer than the 4096");

	static char keys[NN_META_MAX + 1][16];
	const char *many[2 * (NN_META_MAX + 1)];
	for (int i = 0; i <= NN_META_MAX; i++) {
		snprintf(keys[i], sizeof keys[i], "k%d", i);
		many[2 * i] = keys[i];
		many[2 * i + 1] = "v";
	}
	expect_meta_refused(many, NN_META_MAX + 1, "65 metadata pairs, want 0..64");
}

/* A refused write leaves an existing file as it was. */
Test(safetensors, bad_metadata_keeps_old_file)
{
	nn_tensor t[3];
	fill_tensors(t);
	char err[GRAFT_ERRLEN];
	const char *path = scratch_path("keep.safetensors");
	const char *good[] = { "version", "1" };
	cr_assert_eq(nn_safetensors_write_meta(path, t, 3, good, 1, err, sizeof err), 0,
	             "%s", err);
	const char *bad[] = { "version", "2", "", "x" };
	cr_assert_eq(nn_safetensors_write_meta(path, t, 3, bad, 2, err, sizeof err),
	             GRAFT_EINVAL);
	nn_weights w;
	cr_assert_eq(nn_safetensors_read(path, &w, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(nn_weights_meta(&w, "version"), "1");
	nn_weights_free(&w);
}

/* ---- the writer refuses what it could not read back ------------------------ */

Test(safetensors, write_rejects_bad_tensors)
{
	nn_tensor t[3];
	fill_tensors(t);
	char err[GRAFT_ERRLEN];
	const char *path = scratch_path("bad.safetensors");
	strcpy(t[2].name, t[0].name);
	cr_assert_eq(nn_safetensors_write(path, t, 3, err, sizeof err), GRAFT_EINVAL);
	cr_assert_not_null(strstr(err, "appears twice"), "%s", err);
	fill_tensors(t);
	t[1].ndim = 5;
	cr_assert_eq(nn_safetensors_write(path, t, 3, err, sizeof err), GRAFT_EINVAL);
	cr_assert_not_null(strstr(err, "head.bias"), "%s", err);
	struct stat st;
	cr_assert_neq(stat(path, &st), 0, "a refused write created the file");
}

Test(safetensors, write_to_missing_dir)
{
	nn_tensor t[3];
	fill_tensors(t);
	char err[GRAFT_ERRLEN];
	const char *path = "/nonexistent-graft-dir/w.safetensors";
	cr_assert_eq(nn_safetensors_write(path, t, 3, err, sizeof err), GRAFT_EIO);
	cr_assert_not_null(strstr(err, path), "%s", err);
	cr_assert_not_null(strstr(err, "No such file or directory"), "%s", err);
}

/* ---- hostile files ------------------------------------------------------------ */

Test(safetensors, missing_file)
{
	expect_fail(scratch_path("absent.safetensors"), GRAFT_EIO, "No such file or directory");
}

Test(safetensors, empty_file)
{
	expect_format(write_raw("", 0), "0 bytes, shorter than the 8-byte header length");
}

Test(safetensors, five_byte_file)
{
	expect_format(write_raw("\x10\0\0\0\0", 5), "5 bytes, shorter than the 8-byte");
}

Test(safetensors, header_length_2_63)
{
	expect_format(write_st_len(UINT64_C(1) << 63, "{}      ", 0),
	              "header length 9223372036854775808 exceeds the limit");
}

Test(safetensors, header_length_all_ones)
{
	expect_format(write_st_len(UINT64_MAX, "{}      ", 0), "exceeds the limit");
}

Test(safetensors, header_beyond_file)
{
	expect_format(write_st_len(100, "{}      ", 4), "header length 100 runs past the end");
}

Test(safetensors, invalid_json)
{
	expect_format(write_st("{\"x\": {\"dtype\": ", 0),
	              "header is not valid JSON: line 1 column");
}

Test(safetensors, top_level_not_object)
{
	expect_format(write_st("[1, 2]  ", 0), "header is a JSON array, not an object");
}

Test(safetensors, entry_not_object)
{
	expect_format(write_st("{\"x\": 3}", 0), "tensor 'x': entry is a JSON integer");
}

Test(safetensors, missing_dtype)
{
	expect_format(write_st("{\"x\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
	              "tensor 'x': dtype missing");
}

Test(safetensors, dtype_f16)
{
	expect_format(write_st("{\"x\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4),
	              "tensor 'x': dtype F16 is not supported, only F32");
}

Test(safetensors, negative_shape)
{
	expect_format(write_st("{\"x\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", 4),
	              "tensor 'x': shape[1] is -1, negative");
}

Test(safetensors, shape_not_integers)
{
	expect_format(write_st("{\"x\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4),
	              "tensor 'x': shape[0] is a JSON real, not an integer");
}

Test(safetensors, five_dim_shape)
{
	expect_format(write_st("{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],"
	                       "\"data_offsets\":[0,4]}}", 4),
	              "tensor 'x': shape has 5 dims, at most 4");
}

Test(safetensors, huge_shape)
{
	expect_format(write_st("{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
	                       "\"data_offsets\":[0,4]}}", 4),
	              "has too many elements");
}

Test(safetensors, offsets_not_pair)
{
	expect_format(write_st("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4),
	              "tensor 'x': data_offsets is not a pair of integers");
}

Test(safetensors, offsets_beyond_data)
{
	expect_format(write_st("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4),
	              "reach past the end of the 4-byte data section");
}

Test(safetensors, offsets_end_before_begin)
{
	expect_format(write_st("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8),
	              "data_offsets [8, 4] end before they begin");
}

Test(safetensors, size_mismatch)
{
	expect_format(write_st("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4),
	              "tensor 'x': shape [2] needs 8 bytes but data_offsets span 4");
}

Test(safetensors, overlapping_tensors)
{
	expect_format(write_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	                       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12),
	              "tensors 'a' and 'b' overlap");
}

Test(safetensors, gap_between_tensors)
{
	expect_format(write_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	                       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12),
	              "bytes 4..8 of the data section belong to no tensor");
}

Test(safetensors, trailing_data)
{
	expect_format(write_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 7),
	              "bytes 4..7 of the data section belong to no tensor");
}

Test(safetensors, duplicate_names)
{
	expect_format(write_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	                       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
	              "header names a tensor twice: line 1 column");
}

Test(safetensors, long_name)
{
	char header[512];
	char name[201];
	memset(name, 'n', 200);
	name[200] = '\0';
	snprintf(header, sizeof header,
	         "{\"%s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", name);
	expect_format(write_st(header, 4), "of 200 bytes is longer than the 95 allowed");
}

Test(safetensors, bad_metadata)
{
	expect_format(write_st("{\"__metadata__\":{\"n\":1}}", 0),
	              "__metadata__ 'n' is a JSON integer, not a string");
}

/* A bad value after good ones, beside a valid tensor, still fails the whole
 * read and leaves no metadata behind. */
Test(safetensors, bad_metadata_after_good)
{
	expect_format(write_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	                       "\"__metadata__\":{\"format\":\"pt\",\"x\":[\"1\"]}}", 4),
	              "__metadata__ 'x' is a JSON array, not a string");
	expect_format(write_st("{\"__metadata__\":{\"format\":\"pt\",\"o\":{\"k\":\"v\"}}}", 0),
	              "__metadata__ 'o' is a JSON object, not a string");
	expect_format(write_st("{\"__metadata__\":{\"z\":null}}", 0),
	              "__metadata__ 'z' is a JSON null, not a string");
}

Test(safetensors, metadata_not_object)
{
	expect_format(write_st("{\"__metadata__\":[\"format\",\"pt\"]}", 0),
	              "__metadata__ is a JSON array, not an object");
}

/* A name with a newline must not break the one-line message. */
Test(safetensors, control_chars_in_name)
{
	expect_format(write_st("{\"a\\nb\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2),
	              "tensor 'a b': dtype F16");
}
