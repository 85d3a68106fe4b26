/*
 * image.c - one PNG or JPEG file in, 8-bit pixels out (libspng, libjpeg-turbo).
 *
 * Image folders come from cameras, scrapers and other people's disks, so
 * every file is read whole, recognised by its first bytes (not its name),
 * checked against its header before any pixel memory is taken (a 100,000 x
 * 100,000 PNG of a few KB must not cost 10 GB), and decoded strictly: a
 * truncated JPEG, which libjpeg would pad with grey and merely warn about, is
 * an error here, because a quietly half-grey image would train the net on
 * garbage that nobody would ever find.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h>   /* after jpeglib.h: the warning codes */
#include <spng.h>

#include "nn/nn.h"

#define FILE_MAX_BYTES ((size_t)256 << 20) /* larger is refused before reading */

static const unsigned char png_magic[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

enum kind { KIND_OTHER, KIND_PNG, KIND_JPEG };

void nn_image_free(nn_image *img)
{
	if (img == NULL)
		return;
	free(img->px);
	memset(img, 0, sizeof *img);
}

/* What the name promises: .png, .jpg or .jpeg, in any case. */
static enum kind kind_of_name(const char *path)
{
	const char *dot = strrchr(path, '.');

	if (dot == NULL || strchr(dot, '/'))
		return KIND_OTHER;
	if (!strcasecmp(dot, ".png"))
		return KIND_PNG;
	if (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"))
		return KIND_JPEG;
	return KIND_OTHER;
}

int nn_image_is_image_name(const char *name)
{
	return kind_of_name(name) != KIND_OTHER;
}

static enum kind kind_of_bytes(const unsigned char *b, size_t n)
{
	if (n >= sizeof png_magic && !memcmp(b, png_magic, sizeof png_magic))
		return KIND_PNG;
	if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
		return KIND_JPEG;
	return KIND_OTHER;
}

static const char *kind_name(enum kind k)
{
	return k == KIND_PNG ? "PNG" : k == KIND_JPEG ? "JPEG" : "image";
}

static int too_big(const char *path, unsigned long w, unsigned long h, char *err, size_t errlen)
{
	if (w == 0 || h == 0)
		return graft_errf(err, errlen, GRAFT_EFORMAT, "%s: the image is %lux%lu pixels",
		                  path, w, h);
	if (w > NN_IMAGE_MAX_SIDE || h > NN_IMAGE_MAX_SIDE ||
	    (unsigned long long)w * h > NN_IMAGE_MAX_PIXELS)
		return graft_errf(err, errlen, GRAFT_ERANGE, "%s: the image is %lux%lu pixels; "
		                  "graft reads images of at most %d pixels a side and %lld "
		                  "megapixels (shrink it first)", path, w, h, NN_IMAGE_MAX_SIDE,
		                  (long long)NN_IMAGE_MAX_PIXELS >> 20);
	return 0;
}

/* ---- PNG ----------------------------------------------------------------- */

static int read_png(const char *path, const unsigned char *buf, size_t n, nn_image *img,
                    char *err, size_t errlen)
{
	spng_ctx *ctx = spng_ctx_new(0);
	struct spng_ihdr ihdr;
	size_t size;
	int fmt, rc;

	if (ctx == NULL)
		return graft_errf(err, errlen, GRAFT_ENOMEM, "%s: out of memory", path);
	/* Chunk limits keep a hostile file's text or ICC chunks from taking
	 * more memory than its pixels could; the size is checked below, with
	 * a message of ours. */
	spng_set_chunk_limits(ctx, (size_t)16 << 20, (size_t)64 << 20);
	if ((rc = spng_set_png_buffer(ctx, buf, n)) || (rc = spng_get_ihdr(ctx, &ihdr))) {
		rc = graft_errf(err, errlen, GRAFT_EFORMAT, "%s: not a readable PNG: %s", path,
		                spng_strerror(rc));
		goto out;
	}
	if ((rc = too_big(path, ihdr.width, ihdr.height, err, errlen)))
		goto out;
	if (ihdr.bit_depth == 16) {
		rc = graft_errf(err, errlen, GRAFT_EFORMAT, "%s: a 16-bit PNG; graft reads 8-bit "
		                "images (convert it to 8 bits per channel)", path);
		goto out;
	}
	/* Grey stays one channel; everything else (palette, colour, with or
	 * without alpha) becomes RGB, its alpha dropped as PIL's convert("RGB")
	 * does. */
	int grey = ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE ||
	           ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA;
	/* libspng 0.7 has no grey+alpha output format; such a file (always 8 or
	 * 16 bits) is taken as stored, in pairs. */
	fmt = grey ? (ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE ? SPNG_FMT_G8 : SPNG_FMT_PNG)
	           : SPNG_FMT_RGB8;
	if ((rc = spng_decoded_image_size(ctx, fmt, &size))) {
		rc = graft_errf(err, errlen, GRAFT_EFORMAT, "%s: not a readable PNG: %s", path,
		                spng_strerror(rc));
		goto out;
	}
	img->w = (int)ihdr.width;
	img->h = (int)ihdr.height;
	img->c = grey ? 1 : 3;
	if ((img->px = malloc(size)) == NULL) {
		rc = graft_errf(err, errlen, GRAFT_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	if ((rc = spng_decode_image(ctx, img->px, size, fmt, 0))) {
		rc = graft_errf(err, errlen, GRAFT_EFORMAT, "%s: corrupt or truncated PNG: %s",
		                path, spng_strerror(rc));
		goto out;
	}
	if (fmt == SPNG_FMT_PNG) /* keep the grey of each grey+alpha pair */
		for (size_t i = 0; i < (size_t)img->w * img->h; i++)
			img->px[i] = img->px[2 * i];
out:
	spng_ctx_free(ctx);
	if (rc)
		nn_image_free(img);
	return rc;
}

/* ---- JPEG ---------------------------------------------------------------- */

struct jpeg_fail {
	struct jpeg_error_mgr mgr;
	jmp_buf jump;
	char msg[JMSG_LENGTH_MAX];
};

static void jpeg_error(j_common_ptr c)
{
	struct jpeg_fail *f = (struct jpeg_fail *)c->err;
	(*c->err->format_message)(c, f->msg);
	longjmp(f->jump, 1);
}

/* libjpeg calls warnings level -1 and goes on.  Where data is missing (the
 * file or a segment ends early) it goes on with made-up pixels, so we stop
 * there; the other warnings (stray bytes between markers and the like, which
 * cameras and editors write and every viewer shows) leave the pixels intact
 * and pass, as PIL lets them. */
static void jpeg_message(j_common_ptr c, int level)
{
	if (level < 0 && (c->err->msg_code == JWRN_JPEG_EOF || c->err->msg_code == JWRN_HIT_MARKER))
		jpeg_error(c);
}

static int read_jpeg(const char *path, const unsigned char *buf, size_t n, int want_w,
                     int want_h, nn_image *img, char *err, size_t errlen)
{
	struct jpeg_decompress_struct cinfo;
	struct jpeg_fail fail;
	/* volatile: read after a longjmp */
	unsigned char *volatile px = NULL;
	volatile int rc = 0;

	cinfo.err = jpeg_std_error(&fail.mgr);
	fail.mgr.error_exit = jpeg_error;
	fail.mgr.emit_message = jpeg_message;
	if (setjmp(fail.jump)) {
		rc = graft_errf(err, errlen, GRAFT_EFORMAT, "%s: corrupt or truncated JPEG: %s",
		                path, fail.msg);
		goto out;
	}
	jpeg_create_decompress(&cinfo);
	jpeg_mem_src(&cinfo, buf, (unsigned long)n);
	jpeg_read_header(&cinfo, TRUE);
	if ((rc = too_big(path, cinfo.image_width, cinfo.image_height, err, errlen)))
		goto out;
	if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
		rc = graft_errf(err, errlen, GRAFT_EFORMAT, "%s: a CMYK JPEG; graft reads grey "
		                "and RGB images (convert it to RGB)", path);
		goto out;
	}
	cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
	/* A big photo shrunk to a thumbnail: let the DCT do the first halvings
	 * (1/2, 1/4, 1/8), as PIL's draft mode does, while the decoded image stays
	 * at least the size asked for; the area filter does the rest. */
	cinfo.scale_num = 1;
	cinfo.scale_denom = 1;
	for (unsigned d = 8; d > 1 && want_w > 0 && want_h > 0; d /= 2)
		if ((cinfo.image_width + d - 1) / d >= (unsigned)want_w &&
		    (cinfo.image_height + d - 1) / d >= (unsigned)want_h) {
			cinfo.scale_denom = d;
			break;
		}
	jpeg_start_decompress(&cinfo);
	size_t row = (size_t)cinfo.output_width * cinfo.output_components;
	if ((px = malloc(row * cinfo.output_height)) == NULL) {
		rc = graft_errf(err, errlen, GRAFT_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	while (cinfo.output_scanline < cinfo.output_height) {
		JSAMPROW r = px + row * cinfo.output_scanline;
		jpeg_read_scanlines(&cinfo, &r, 1);
	}
	jpeg_finish_decompress(&cinfo);
	img->w = (int)cinfo.output_width;
	img->h = (int)cinfo.output_height;
	img->c = cinfo.output_components;
	img->px = px;
	px = NULL;
out:
	jpeg_destroy_decompress(&cinfo);
	free(px);
	return rc;
}

/* ---- a file -------------------------------------------------------------- */

/* Reads the whole of path into *buf (at most FILE_MAX_BYTES). */
static int slurp(const char *path, unsigned char **buf, size_t *n, char *err, size_t errlen)
{
	struct stat st;
	FILE *f = fopen(path, "rb");

	*buf = NULL;
	if (f == NULL)
		return graft_errf(err, errlen, GRAFT_EIO, "%s: %s", path, strerror(errno));
	if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
		fclose(f);
		return graft_errf(err, errlen, GRAFT_EIO, "%s: not a regular file", path);
	}
	if (st.st_size == 0 || (unsigned long long)st.st_size > FILE_MAX_BYTES) {
		fclose(f);
		return st.st_size == 0
		       ? graft_errf(err, errlen, GRAFT_EFORMAT, "%s: an empty file (0 bytes)", path)
		       : graft_errf(err, errlen, GRAFT_ERANGE, "%s: %lld bytes; graft reads image "
		                    "files of at most %zu MB", path, (long long)st.st_size,
		                    FILE_MAX_BYTES >> 20);
	}
	*n = (size_t)st.st_size;
	if ((*buf = malloc(*n)) == NULL) {
		fclose(f);
		return graft_errf(err, errlen, GRAFT_ENOMEM, "%s: out of memory", path);
	}
	size_t got = fread(*buf, 1, *n, f);
	fclose(f);
	if (got != *n) {
		free(*buf);
		*buf = NULL;
		return graft_errf(err, errlen, GRAFT_EIO, "%s: read %zu of %zu bytes", path, got, *n);
	}
	return 0;
}

int nn_image_read(const char *path, int want_w, int want_h, nn_image *img, char *err,
                  size_t errlen)
{
	unsigned char *buf;
	size_t n = 0;
	int rc;

	memset(img, 0, sizeof *img);
	if ((rc = slurp(path, &buf, &n, err, errlen)))
		return rc;
	enum kind named = kind_of_name(path), is = kind_of_bytes(buf, n);
	if (is == KIND_OTHER)
		rc = graft_errf(err, errlen, GRAFT_EFORMAT, "%s: neither a PNG nor a JPEG file "
		                "(its first bytes are not either's signature)", path);
	else if (named != KIND_OTHER && named != is)
		rc = graft_errf(err, errlen, GRAFT_EFORMAT, "%s: a %s file named as a %s (rename "
		                "it to what it is)", path, kind_name(is), kind_name(named));
	else if (is == KIND_PNG)
		rc = read_png(path, buf, n, img, err, errlen);
	else
		rc = read_jpeg(path, buf, n, want_w, want_h, img, err, errlen);
	free(buf);
	return rc;
}

/* ITU-R 601 luma on the stored values, rounded: PIL's convert("L") and
 * libjpeg's own colour-to-grey. */
int nn_image_to_channels(nn_image *img, int c)
{
	size_t n = (size_t)img->w * img->h;

	if (img->c == c)
		return 0;
	if (c == 1) {
		for (size_t i = 0; i < n; i++) {
			const uint8_t *p = img->px + 3 * i;
			img->px[i] = (uint8_t)((299u * p[0] + 587u * p[1] + 114u * p[2] + 500u) / 1000u);
		}
		img->c = 1;
		return 0;
	}
	uint8_t *rgb = malloc(3 * n);
	if (rgb == NULL)
		return GRAFT_ENOMEM;
	for (size_t i = 0; i < n; i++)
		rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = img->px[i];
	free(img->px);
	img->px = rgb;
	img->c = 3;
	return 0;
}
