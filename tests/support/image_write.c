/*
 * image_write.c - PNG and JPEG files for the tests (see image_write.h).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include <jpeglib.h>
#include <spng.h>

#include "nn/nn.h"
#include "tests/support/image_write.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

const char *const image_fashion_classes[10] = {
	"0_tshirt", "1_trouser", "2_pullover", "3_dress", "4_coat",
	"5_sandal", "6_shirt", "7_sneaker", "8_bag", "9_ankle_boot",
};

void image_write_png(const char *path, const uint8_t *px, int w, int h, int c, int depth)
{
	static const uint8_t types[5] = { 0, SPNG_COLOR_TYPE_GRAYSCALE,
	                                  SPNG_COLOR_TYPE_GRAYSCALE_ALPHA,
	                                  SPNG_COLOR_TYPE_TRUECOLOR,
	                                  SPNG_COLOR_TYPE_TRUECOLOR_ALPHA };
	spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
	struct spng_ihdr ihdr = { .width = (uint32_t)w, .height = (uint32_t)h,
	                          .bit_depth = (uint8_t)depth, .color_type = types[c] };
	FILE *f = fopen(path, "wb");
	int rc;

	cr_assert(ctx && f, "cannot write %s", path);
	spng_set_png_file(ctx, f);
	spng_set_ihdr(ctx, &ihdr);
	size_t len = (size_t)w * h * c * (depth / 8);
	rc = spng_encode_image(ctx, px, len, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
	cr_assert_eq(rc, 0, "encoding %s: %s", path, spng_strerror(rc));
	spng_ctx_free(ctx);
	cr_assert_eq(fclose(f), 0);
}

void image_write_jpeg(const char *path, const uint8_t *px, int w, int h, int c, int quality)
{
	struct jpeg_compress_struct cinfo;
	struct jpeg_error_mgr jerr;
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f, "cannot write %s", path);
	cinfo.err = jpeg_std_error(&jerr);
	jpeg_create_compress(&cinfo);
	jpeg_stdio_dest(&cinfo, f);
	cinfo.image_width = (JDIMENSION)w;
	cinfo.image_height = (JDIMENSION)h;
	cinfo.input_components = c;
	cinfo.in_color_space = c == 1 ? JCS_GRAYSCALE : c == 3 ? JCS_RGB : JCS_CMYK;
	jpeg_set_defaults(&cinfo);
	jpeg_set_quality(&cinfo, quality, TRUE);
	jpeg_start_compress(&cinfo, TRUE);
	while (cinfo.next_scanline < cinfo.image_height) {
		JSAMPROW row = (JSAMPROW)(px + (size_t)cinfo.next_scanline * w * c);
		jpeg_write_scanlines(&cinfo, &row, 1);
	}
	jpeg_finish_compress(&cinfo);
	jpeg_destroy_compress(&cinfo);
	cr_assert_eq(fclose(f), 0);
}

int image_write_fashion(const char *dir, int test, int per_class, const char *ext)
{
	char err[GRAFT_ERRLEN], path[1024];
	int count[10] = { 0 }, written = 0;
	nn_dataset ds;

	cr_assert_eq(nn_dataset_load_dir(&ds, FASHION_DIR, test, err, sizeof err), 0, "%s", err);
	mkdir(dir, 0755);
	for (int k = 0; k < 10; k++) {
		snprintf(path, sizeof path, "%s/%s", dir, image_fashion_classes[k]);
		mkdir(path, 0755);
	}
	for (int i = 0; i < ds.n && written < 10 * per_class; i++) {
		int k = ds.labels[i];
		if (count[k] == per_class)
			continue;
		snprintf(path, sizeof path, "%s/%s/%05d.%s", dir, image_fashion_classes[k], i, ext);
		if (!strcmp(ext, "png"))
			image_write_png(path, ds.pixels + (size_t)i * 784, 28, 28, 1, 8);
		else
			image_write_jpeg(path, ds.pixels + (size_t)i * 784, 28, 28, 1, 95);
		count[k]++;
		written++;
	}
	nn_dataset_free(&ds);
	return written;
}

static int cmp_expect(const void *a, const void *b)
{
	const image_expect *x = a, *y = b;
	return x->order < y->order ? -1 : x->order > y->order ? 1 : strcmp(x->rel, y->rel);
}

int image_fashion_expected(const nn_dataset *idx, int per_class, const char *ext,
                           image_expect *e)
{
	int count[10] = { 0 }, n = 0;

	for (int i = 0; i < idx->n && n < 10 * per_class; i++) {
		int k = idx->labels[i];
		char hex[65];
		if (count[k] == per_class)
			continue;
		count[k]++;
		e[n].index = i;
		e[n].label = k;
		snprintf(e[n].rel, sizeof e[n].rel, "%s/%05d.%s", image_fashion_classes[k], i, ext);
		nn_sha256_hex(e[n].rel, strlen(e[n].rel), hex);
		e[n].order = 0;
		for (int d = 0; d < 16; d++)
			e[n].order = e[n].order << 4 |
			             (uint64_t)(hex[d] <= '9' ? hex[d] - '0' : hex[d] - 'a' + 10);
		n++;
	}
	qsort(e, (size_t)n, sizeof *e, cmp_expect);
	return n;
}

void image_write_bytes(const char *path, const void *b, size_t n)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(b, 1, n, f), n);
	fclose(f);
}

size_t image_read_bytes(const char *path, uint8_t *b, size_t cap)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f);
	size_t n = fread(b, 1, cap, f);
	fclose(f);
	return n;
}

const image_bad_case image_bad_cases[IMAGE_BAD_CASES] = {
	{ "empty", "e.png", "an empty file (0 bytes)" },
	{ "truncated-png", "t.png", "corrupt or truncated PNG" },
	{ "truncated-jpeg", "t.jpg", "corrupt or truncated JPEG" },
	{ "text", "x.jpeg", "neither a PNG nor a JPEG" },
	{ "jpeg-named-png", "j.png", "a JPEG file named as a PNG" },
	{ "16-bit", "deep.png", "a 16-bit PNG" },
	{ "cmyk", "print.jpg", "a CMYK JPEG" },
	{ "bomb", "bomb.png", "100000x100000 pixels" },
};

void image_write_bad(const char *kind, const char *path)
{
	static uint8_t buf[1 << 16];
	uint8_t px[64 * 64 * 4];
	size_t n;

	for (size_t i = 0; i < sizeof px; i++)
		px[i] = (uint8_t)(i * 31);
	if (!strcmp(kind, "empty")) {
		image_write_bytes(path, "", 0);
	} else if (!strcmp(kind, "truncated-png")) {
		image_write_png(path, px, 64, 64, 3, 8);
		n = image_read_bytes(path, buf, sizeof buf);
		image_write_bytes(path, buf, n / 2);
	} else if (!strcmp(kind, "truncated-jpeg")) {
		image_write_jpeg(path, px, 64, 64, 3, 90);
		n = image_read_bytes(path, buf, sizeof buf);
		image_write_bytes(path, buf, n / 2);
	} else if (!strcmp(kind, "text")) {
		image_write_bytes(path, "hello, I am not a picture\n", 26);
	} else if (!strcmp(kind, "jpeg-named-png")) {
		image_write_jpeg(path, px, 28, 28, 1, 90);
	} else if (!strcmp(kind, "16-bit")) {
		image_write_png(path, px, 28, 28, 1, 16);
	} else if (!strcmp(kind, "cmyk")) {
		image_write_jpeg(path, px, 28, 28, 4, 90);
	} else if (!strcmp(kind, "bomb")) {
		/* A 1 x 1 PNG whose header says 100,000 x 100,000, CRC fixed up. */
		image_write_png(path, px, 1, 1, 1, 8);
		n = image_read_bytes(path, buf, sizeof buf);
		const uint8_t side[4] = { 0x00, 0x01, 0x86, 0xA0 };
		memcpy(buf + 16, side, 4);
		memcpy(buf + 20, side, 4);
		uLong crc = crc32(0, buf + 12, 17);
		for (int i = 0; i < 4; i++)
			buf[29 + i] = (uint8_t)(crc >> (24 - 8 * i));
		image_write_bytes(path, buf, n);
	}
}

