/*
 * test_sha256.c - SHA-256 of memory and files against the FIPS 180-2 vectors,
 * and the identity of a set of tensors: it must see every float, name and
 * shape, and nothing of the file the tensors came from.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "nn/nn.h"
#include "tests/support/scratch.h"

/* Every test writes its files into its own scratch directory, removed by
 * the fini hook even when an assertion ends the test early. */
static const char *dir;

static void setup(void)
{
	dir = scratch_make("sha");
}

TestSuite(sha256, .init = setup, .fini = scratch_remove, .timeout = 30);

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f, "cannot create %s", path);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

/* ---- known vectors ------------------------------------------------------------ */

static const struct {
	const char *msg, *hex;
} vectors[] = {
	{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
	{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
	/* The 448-bit message, which needs a second block for the padding. */
	{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
};

/* A million 'a's: bigger than the chunk nn_sha256_file reads at a time. */
static const char *million_a_hex =
	"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

Test(sha256, known_vectors)
{
	char hex[65];
	for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
		memset(hex, 'X', sizeof hex);
		nn_sha256_hex(vectors[i].msg, strlen(vectors[i].msg), hex);
		cr_assert_str_eq(hex, vectors[i].hex, "sha256(\"%s\")", vectors[i].msg);
	}
	nn_sha256_hex(NULL, 0, hex);
	cr_assert_str_eq(hex, vectors[0].hex, "NULL data of length 0");
}

Test(sha256, million_a)
{
	size_t len = 1000000;
	char *a = malloc(len);
	cr_assert_not_null(a);
	memset(a, 'a', len);
	char hex[65];
	nn_sha256_hex(a, len, hex);
	cr_assert_str_eq(hex, million_a_hex);
	free(a);
}

/* ---- files -------------------------------------------------------------------- */

/* A file hashes as its bytes do, whatever its size against the read chunk. */
Test(sha256, file_equals_data)
{
	char err[GRAFT_ERRLEN], got[65], want[65];
	for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
		const char *path = scratch_path("v.bin");
		write_file(path, vectors[i].msg, strlen(vectors[i].msg));
		int rc = nn_sha256_file(path, got, err, sizeof err);
		cr_assert_eq(rc, 0, "%s", err);
		cr_assert_str_eq(got, vectors[i].hex, "file of \"%s\"", vectors[i].msg);
	}

	size_t len = 1000000;
	char *a = malloc(len);
	cr_assert_not_null(a);
	memset(a, 'a', len);
	write_file(scratch_path("a.bin"), a, len);
	cr_assert_eq(nn_sha256_file(scratch_path("a.bin"), got, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(got, million_a_hex);

	/* Bytes that are not text, in a length that is not a multiple of 64. */
	for (size_t i = 0; i < len; i++)
		a[i] = (char)(i * 2654435761u >> 13);
	len = 3 * 65536 + 17;
	write_file(scratch_path("b.bin"), a, len);
	nn_sha256_hex(a, len, want);
	cr_assert_eq(nn_sha256_file(scratch_path("b.bin"), got, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(got, want);
	free(a);
}

Test(sha256, missing_file)
{
	char err[GRAFT_ERRLEN], hex[65];
	const char *path = scratch_path("absent.bin");
	memset(hex, 'X', sizeof hex);
	int rc = nn_sha256_file(path, hex, err, sizeof err);
	cr_assert_eq(rc, GRAFT_EIO, "rc %d (%s), want GRAFT_EIO", rc, graft_strerror(rc));
	cr_assert_not_null(strstr(err, path), "err does not name the file: %s", err);
	cr_assert_not_null(strstr(err, "No such file or directory"), "%s", err);
	cr_assert_str_eq(hex, "", "a failed hash left '%.64s'", hex);
}

/* A directory opens but cannot be read. */
Test(sha256, directory)
{
	char err[GRAFT_ERRLEN], hex[65];
	int rc = nn_sha256_file(dir, hex, err, sizeof err);
	cr_assert_eq(rc, GRAFT_EIO, "rc %d (%s), want GRAFT_EIO", rc, graft_strerror(rc));
	cr_assert_not_null(strstr(err, dir), "err does not name the file: %s", err);
	cr_assert_str_eq(hex, "");
}

/* ---- tensor identity ------------------------------------------------------------- */

static float wdata[2 * 3];
static float bdata[3];

static void fill(nn_tensor t[2])
{
	for (int i = 0; i < 6; i++)
		wdata[i] = (float)i * 0.25f - 0.5f;
	for (int i = 0; i < 3; i++)
		bdata[i] = 1.0f / (float)(i + 3);
	memset(t, 0, 2 * sizeof *t);
	strcpy(t[0].name, "conv.weight");
	t[0].ndim = 2;
	t[0].shape[0] = 2, t[0].shape[1] = 3;
	t[0].data = wdata;
	strcpy(t[1].name, "conv.bias");
	t[1].ndim = 1;
	t[1].shape[0] = 3;
	t[1].data = bdata;
}

static void tensors_hex(const nn_tensor *t, int n, char hex[65])
{
	int rc = nn_tensors_sha256(t, n, hex);
	cr_assert_eq(rc, 0, "nn_tensors_sha256: rc %d (%s)", rc, graft_strerror(rc));
	cr_assert_eq(strlen(hex), 64);
}

/* The encoding is the one nn.h documents, so the identity can be recomputed
 * anywhere: name, NUL, ndim and shape as int64 LE, then the floats. */
Test(sha256, tensors_encoding)
{
	float v[2] = { 1.5f, -2.0f };
	nn_tensor t = { .name = "x", .ndim = 1, .shape = { 2 }, .data = v };
	unsigned char buf[2 + 8 + 8 + 8];
	memcpy(buf, "x", 2);
	memset(buf + 2, 0, 16);
	buf[2] = 1;   /* ndim */
	buf[10] = 2;  /* shape[0] */
	memcpy(buf + 18, v, 8);
	char want[65], got[65];
	nn_sha256_hex(buf, sizeof buf, want);
	tensors_hex(&t, 1, got);
	cr_assert_str_eq(got, want);

	tensors_hex(NULL, 0, got);
	cr_assert_str_eq(got, vectors[0].hex, "no tensors hash as no bytes");
}

Test(sha256, tensors_see_every_change)
{
	nn_tensor t[2];
	char base[65], again[65], h[65];
	fill(t);
	tensors_hex(t, 2, base);
	tensors_hex(t, 2, again);
	cr_assert_str_eq(base, again, "the same tensors hash differently");

	/* Equal values in other buffers are the same identity. */
	float w2[6], b2[3];
	memcpy(w2, wdata, sizeof w2);
	memcpy(b2, bdata, sizeof b2);
	nn_tensor copy[2];
	memcpy(copy, t, sizeof copy);
	copy[0].data = w2, copy[1].data = b2;
	tensors_hex(copy, 2, h);
	cr_assert_str_eq(h, base, "equal tensors in other buffers");

	/* One float, by the smallest step. */
	b2[2] = nextafterf(b2[2], 1.0f);
	tensors_hex(copy, 2, h);
	cr_assert_str_neq(h, base, "one float changed by one ulp");
	b2[2] = bdata[2];

	/* 0.0 and -0.0 compare equal but are different weights bit for bit. */
	wdata[2] = 0.0f;
	tensors_hex(t, 2, base);
	w2[2] = -0.0f;
	tensors_hex(copy, 2, h);
	cr_assert_str_neq(h, base, "0.0 became -0.0");
	w2[2] = 0.0f;
	tensors_hex(copy, 2, h);
	cr_assert_str_eq(h, base);

	/* A name. */
	strcpy(copy[1].name, "conv.biaz");
	tensors_hex(copy, 2, h);
	cr_assert_str_neq(h, base, "a name changed");
	strcpy(copy[1].name, "conv.bias");

	/* A shape with the same data: (2,3) as (3,2), and as (1,2,3). */
	copy[0].shape[0] = 3, copy[0].shape[1] = 2;
	tensors_hex(copy, 2, h);
	cr_assert_str_neq(h, base, "shape (2,3) became (3,2)");
	copy[0].ndim = 3;
	copy[0].shape[0] = 1, copy[0].shape[1] = 2, copy[0].shape[2] = 3;
	tensors_hex(copy, 2, h);
	cr_assert_str_neq(h, base, "shape (2,3) became (1,2,3)");
	copy[0].ndim = 2;
	copy[0].shape[0] = 2, copy[0].shape[1] = 3, copy[0].shape[2] = 0;
	tensors_hex(copy, 2, h);
	cr_assert_str_eq(h, base);

	/* Bytes moving between the name and the next field: "ab" + "c..." must
	 * not collide with "a" + "bc...". */
	nn_tensor p[2], q[2];
	memcpy(p, t, sizeof p);
	memcpy(q, t, sizeof q);
	strcpy(p[0].name, "ab"), strcpy(p[1].name, "c");
	strcpy(q[0].name, "a"), strcpy(q[1].name, "bc");
	tensors_hex(p, 2, h);
	tensors_hex(q, 2, again);
	cr_assert_str_neq(h, again, "names split differently");

	/* The order of the tensors. */
	nn_tensor swapped[2] = { t[1], t[0] };
	tensors_hex(swapped, 2, h);
	cr_assert_str_neq(h, base, "tensors swapped");
	tensors_hex(t, 1, h);
	cr_assert_str_neq(h, base, "a tensor dropped");
}

/* The identity of weights does not depend on the file: the same tensors
 * written with different metadata make different files of equal identity. */
Test(sha256, tensors_ignore_metadata)
{
	nn_tensor t[2];
	char err[GRAFT_ERRLEN], want[65], ha[65], hb[65], fa[65], fb[65];
	fill(t);
	tensors_hex(t, 2, want);

	const char *path_a = strdup(scratch_path("a.safetensors"));
	const char *path_b = strdup(scratch_path("b.safetensors"));
	const char *meta_a[] = { "format", "pt" };
	const char *meta_b[] = { "graft.arch", "blocks: [conv3x3, conv3x3, pool]",
	                         "trained", "2024-01-01T00:00:00Z" };
	cr_assert_eq(nn_safetensors_write_meta(path_a, t, 2, meta_a, 1, err, sizeof err),
	             0, "%s", err);
	cr_assert_eq(nn_safetensors_write_meta(path_b, t, 2, meta_b, 2, err, sizeof err),
	             0, "%s", err);
	cr_assert_eq(nn_sha256_file(path_a, fa, err, sizeof err), 0, "%s", err);
	cr_assert_eq(nn_sha256_file(path_b, fb, err, sizeof err), 0, "%s", err);
	cr_assert_str_neq(fa, fb, "the two files should differ in their bytes");

	nn_weights a, b;
	cr_assert_eq(nn_safetensors_read(path_a, &a, err, sizeof err), 0, "%s", err);
	cr_assert_eq(nn_safetensors_read(path_b, &b, err, sizeof err), 0, "%s", err);
	tensors_hex(a.t, a.n, ha);
	tensors_hex(b.t, b.n, hb);
	cr_assert_str_eq(ha, want, "file a read back");
	cr_assert_str_eq(hb, want, "file b read back");
	nn_weights_free(&a);
	nn_weights_free(&b);
	free((void *)path_a);
	free((void *)path_b);
}

Test(sha256, tensors_reject_bad_arguments)
{
	nn_tensor t[2];
	char hex[65];
	fill(t);
	cr_assert_eq(nn_tensors_sha256(t, 2, NULL), GRAFT_EINVAL);
	memset(hex, 'X', sizeof hex);
	cr_assert_eq(nn_tensors_sha256(NULL, 1, hex), GRAFT_EINVAL);
	cr_assert_str_eq(hex, "");
	cr_assert_eq(nn_tensors_sha256(t, -1, hex), GRAFT_EINVAL);
	t[1].ndim = 5;
	cr_assert_eq(nn_tensors_sha256(t, 2, hex), GRAFT_EINVAL, "ndim 5");
	fill(t);
	t[0].data = NULL;
	cr_assert_eq(nn_tensors_sha256(t, 2, hex), GRAFT_EINVAL, "NULL data");
	fill(t);
	memset(t[1].name, 'n', NN_NAME_MAX);
	cr_assert_eq(nn_tensors_sha256(t, 2, hex), GRAFT_EINVAL, "unterminated name");

	/* An empty tensor needs no data. */
	fill(t);
	t[1].shape[0] = 0;
	t[1].data = NULL;
	cr_assert_eq(nn_tensors_sha256(t, 2, hex), 0);
}
