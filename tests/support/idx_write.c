/*
 * idx_write.c - small labelled IDX datasets for tests that run the programs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include <criterion/criterion.h>

#include "tests/support/idx_write.h"

/* splitmix64: the test's own generator, so the data does not change when
 * nn's does. */
static uint64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static void put_be32(uint8_t *b, uint32_t v)
{
	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
}

static void write_bytes(const char *path, const void *data, size_t len, int gz)
{
	if (gz) {
		gzFile f = gzopen(path, "wb");

		cr_assert_not_null(f, "gzopen %s", path);
		cr_assert_eq(gzwrite(f, data, (unsigned)len), (int)len, "gzwrite %s", path);
		cr_assert_eq(gzclose(f), Z_OK, "gzclose %s", path);
	} else {
		FILE *f = fopen(path, "wb");

		cr_assert_not_null(f, "fopen %s", path);
		cr_assert_eq(fwrite(data, 1, len, f), len, "fwrite %s", path);
		cr_assert_eq(fclose(f), 0, "fclose %s", path);
	}
}

/* Writes dir/<part>-images-idx3-ubyte (see idx_write.h) and dir/<part>-labels-idx1-ubyte (with
 * .gz when gz): n images whose label says which third of the rows is bright,
 * except images bad_from, bad_from + bad_every, ... whose label is wrong. */
void idx_write_part(const char *dir, const char *part, int n, int side, int classes, int gz,
                    uint64_t seed, int bad_from, int bad_every)
{
	size_t img = (size_t)side * side, ilen = 16 + n * img, llen = 8 + (size_t)n;
	uint8_t *ib = malloc(ilen), *lb = malloc(llen);
	char path[600];

	cr_assert(ib && lb, "out of memory");
	put_be32(ib, 0x803);
	put_be32(ib + 4, (uint32_t)n);
	put_be32(ib + 8, side);
	put_be32(ib + 12, side);
	put_be32(lb, 0x801);
	put_be32(lb + 4, (uint32_t)n);
	for (int i = 0; i < n; i++) {
		int label = (int)(next_rand(&seed) % classes);
		uint8_t *px = ib + 16 + i * img;

		if (i >= bad_from && (i - bad_from) % bad_every == 0)
			lb[8 + i] = (uint8_t)((label + 1) % classes);
		else
			lb[8 + i] = (uint8_t)label;
		for (int r = 0; r < side; r++)
			for (int c = 0; c < side; c++) {
				int base = r / (side / classes) == label ? 180 : 40;
				int v = base + (int)(next_rand(&seed) % 81) - 40;

				px[r * side + c] = (uint8_t)v;
			}
	}
	snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte%s", dir, part, gz ? ".gz" : "");
	write_bytes(path, ib, ilen, gz);
	snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte%s", dir, part, gz ? ".gz" : "");
	write_bytes(path, lb, llen, gz);
	free(ib);
	free(lb);
}

void idx_write_plain(const char *dir, int n, int h, int w, int pixel, int classes)
{
	size_t img = (size_t)h * w, ilen = 16 + (size_t)n * img, llen = 8 + (size_t)n;
	uint8_t *ib = malloc(ilen), *lb = malloc(llen);
	uint64_t seed = 1;
	char path[600];

	cr_assert(ib && lb, "out of memory");
	put_be32(ib, 0x803);
	put_be32(ib + 4, (uint32_t)n);
	put_be32(ib + 8, (uint32_t)h);
	put_be32(ib + 12, (uint32_t)w);
	put_be32(lb, 0x801);
	put_be32(lb + 4, (uint32_t)n);
	for (size_t i = 0; i < (size_t)n * img; i++)
		ib[16 + i] = (uint8_t)(pixel >= 0 ? pixel : (int)(next_rand(&seed) % 256));
	for (int i = 0; i < n; i++)
		lb[8 + i] = (uint8_t)(i % classes);
	snprintf(path, sizeof(path), "%s/train-images-idx3-ubyte", dir);
	write_bytes(path, ib, ilen, 0);
	snprintf(path, sizeof(path), "%s/train-labels-idx1-ubyte", dir);
	write_bytes(path, lb, llen, 0);
	free(ib);
	free(lb);
}
