/*
 * glyphs.c - a labelled dataset of characters rendered with FreeType from
 * font files: the class is the character, every image drawn from a random
 * font that has it, at a random size, stroke weight, rotation, shear and
 * position, in random grey levels (either polarity) with noise.
 *
 * Why: every image classifier's first layers learn strokes, their ends,
 * junctions and curves at every angle and width, and writing is made of
 * nothing else, in hundreds of scripts (the Noto fonts cover them): a graft
 * pretrained to tell characters apart may know those features whatever
 * the images it is later grafted into.
 *
 * Each image depends on the seed and its index alone (its own random
 * stream), not on the order of rendering.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ft2build.h>
#include FT_FREETYPE_H
#include FT_OUTLINE_H

#include "nn/nn.h"

/* The default classes: 99 characters of five scripts, leaving out the
 * letters that look like another (Latin O and 0, I and 1; Greek and
 * Cyrillic letters drawn as Latin ones), so that no two classes share a
 * shape. */
static const uint32_t default_chars[] = {
	/* Latin A-Z */
	0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x4B, 0x4C, 0x4D,
	0x4E, 0x4F, 0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A,
	/* digits 2-9 */
	0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39,
	/* Greek small letters but omicron */
	0x3B1, 0x3B2, 0x3B3, 0x3B4, 0x3B5, 0x3B6, 0x3B7, 0x3B8, 0x3B9, 0x3BA, 0x3BB, 0x3BC,
	0x3BD, 0x3BE, 0x3C0, 0x3C1, 0x3C3, 0x3C4, 0x3C5, 0x3C6, 0x3C7, 0x3C8, 0x3C9,
	/* Cyrillic capitals unlike Latin ones */
	0x411, 0x413, 0x414, 0x416, 0x417, 0x418, 0x419, 0x41B, 0x41F, 0x424, 0x426, 0x427,
	0x428, 0x429, 0x42A, 0x42B, 0x42C, 0x42D, 0x42E, 0x42F,
	/* Hebrew letters */
	0x5D0, 0x5D1, 0x5D2, 0x5D3, 0x5D4, 0x5D5, 0x5D6, 0x5D7, 0x5D8, 0x5D9, 0x5DB, 0x5DC,
	0x5DE, 0x5E0, 0x5E1, 0x5E2, 0x5E4, 0x5E6, 0x5E7, 0x5E8, 0x5E9, 0x5EA,
};

const uint32_t *nn_glyph_default_chars(int *n)
{
	*n = (int)(sizeof(default_chars) / sizeof(*default_chars));
	return default_chars;
}

static double uniform(uint64_t *s, double lo, double hi)
{
	return lo + (hi - lo) * (double)(nn_splitmix64(s) >> 11) * (1.0 / 9007199254740992.0);
}

static double gauss(uint64_t *s)
{
	double u = uniform(s, 1e-12, 1.0), v = uniform(s, 0.0, 1.0);
	return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* Draws char ch of face into cov (h x w coverage, 0..255), transformed as
 * the stream says.  0, or nonzero when FreeType cannot draw it. */
static int draw(FT_Face face, uint32_t ch, int h, int w, uint64_t *rs, uint8_t *cov)
{
	double size = h * uniform(rs, 0.55, 0.95);
	double angle = uniform(rs, -0.26, 0.26), shear = uniform(rs, -0.25, 0.25);
	double sx = uniform(rs, 0.8, 1.2), weight = uniform(rs, -0.03, 0.08);
	double c = cos(angle), s = sin(angle);
	FT_Matrix m = { (FT_Fixed)(65536.0 * c * sx), (FT_Fixed)(65536.0 * (c * shear - s)),
	                (FT_Fixed)(65536.0 * s * sx), (FT_Fixed)(65536.0 * (s * shear + c)) };

	memset(cov, 0, (size_t)h * w);
	if (FT_Set_Pixel_Sizes(face, 0, (FT_UInt)(size + 0.5)))
		return 1;
	FT_Set_Transform(face, &m, NULL);
	FT_UInt gi = FT_Get_Char_Index(face, ch);
	if (!gi || FT_Load_Glyph(face, gi, FT_LOAD_NO_BITMAP | FT_LOAD_NO_HINTING) ||
	    face->glyph->format != FT_GLYPH_FORMAT_OUTLINE)
		return 1;
	/* Stroke weight: a thinner or bolder outline (26.6 pixels). */
	FT_Outline_Embolden(&face->glyph->outline, (FT_Pos)(weight * size * 64.0));
	if (FT_Render_Glyph(face->glyph, FT_RENDER_MODE_NORMAL))
		return 1;
	const FT_Bitmap *b = &face->glyph->bitmap;
	/* Centred, then moved by up to a tenth of the side each way. */
	int x0 = (w - (int)b->width) / 2 + (int)lround(uniform(rs, -0.1, 0.1) * w);
	int y0 = (h - (int)b->rows) / 2 + (int)lround(uniform(rs, -0.1, 0.1) * h);
	int ink = 0;
	for (int y = 0; y < (int)b->rows; y++)
		for (int x = 0; x < (int)b->width; x++) {
			int yy = y0 + y, xx = x0 + x;
			uint8_t v = b->buffer[y * b->pitch + x];
			if (yy >= 0 && yy < h && xx >= 0 && xx < w && v) {
				cov[yy * w + xx] = v;
				ink++;
			}
		}
	return ink == 0;
}

/* Coverage into pixels: background and ink levels per channel (either
 * polarity), then Gaussian noise. */
static void paint(const uint8_t *cov, int c, int h, int w, uint64_t *rs, uint8_t *out)
{
	int dark_ink = nn_splitmix64(rs) & 1;
	double sigma = uniform(rs, 0.0, 12.0);
	for (int k = 0; k < c; k++) {
		double bg = uniform(rs, 0, 90), fg = uniform(rs, 150, 255);
		if (dark_ink) {
			double t = bg;
			bg = 255 - t;
			fg = 255 - fg;
		}
		for (int i = 0; i < h * w; i++) {
			double v = bg + (fg - bg) * cov[i] / 255.0 + sigma * gauss(rs);
			out[(size_t)k * h * w + i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lround(v));
		}
	}
}

int nn_glyph_dataset(nn_dataset *ds, const nn_glyph_opts *o, char *err, size_t errlen)
{
	FT_Library lib = NULL;
	FT_Face *faces = NULL;
	uint8_t *has = NULL, *cov = NULL;
	int rc = GRAFT_EINVAL, nchars = o->nchars;
	const uint32_t *chars = o->chars;

	memset(ds, 0, sizeof(*ds));
	if (!chars)
		chars = nn_glyph_default_chars(&nchars);
	if (nchars < 2 || nchars > 256)
		return graft_errf(err, errlen, GRAFT_EINVAL, "glyphs: %d characters, need 2..256",
		                  nchars);
	if (o->nfonts < 1)
		return graft_errf(err, errlen, GRAFT_EINVAL, "glyphs: no font files");
	if (o->n < 1 || o->c < 1 || o->c > NN_MAX_CHANNELS || o->h < 8 || o->w < 8 ||
	    o->h > 1024 || o->w > 1024)
		return graft_errf(err, errlen, GRAFT_EINVAL, "glyphs: %d images of %dx%dx%d: need "
		                  "at least one, 1..%d channels, sides 8..1024", o->n, o->c, o->h,
		                  o->w, NN_MAX_CHANNELS);
	if (FT_Init_FreeType(&lib))
		return graft_errf(err, errlen, GRAFT_ENOMEM, "glyphs: FreeType would not start");
	faces = calloc((size_t)o->nfonts, sizeof(*faces));
	has = calloc((size_t)o->nfonts * nchars, 1);
	cov = malloc((size_t)o->h * o->w);
	ds->pixels = malloc((size_t)o->n * o->c * o->h * o->w);
	ds->labels = malloc((size_t)o->n);
	if (!faces || !has || !cov || !ds->pixels || !ds->labels) {
		rc = graft_errf(err, errlen, GRAFT_ENOMEM, "glyphs: out of memory for %d images",
		                o->n);
		goto done;
	}
	for (int f = 0; f < o->nfonts; f++) {
		if (FT_New_Face(lib, o->fonts[f], 0, &faces[f])) {
			rc = graft_errf(err, errlen, GRAFT_EIO, "glyphs: %s is not a font FreeType reads",
			                o->fonts[f]);
			goto done;
		}
		for (int k = 0; k < nchars; k++)
			has[f * nchars + k] = FT_Get_Char_Index(faces[f], chars[k]) != 0;
	}
	for (int k = 0; k < nchars; k++) {
		int any = 0;
		for (int f = 0; f < o->nfonts && !any; f++)
			any = has[f * nchars + k];
		if (!any) {
			rc = graft_errf(err, errlen, GRAFT_EINVAL, "glyphs: no font given has U+%04X",
			                (unsigned)chars[k]);
			goto done;
		}
	}
	ds->n = o->n;
	ds->c = o->c;
	ds->h = o->h;
	ds->w = o->w;
	ds->classes = nchars;
	size_t chw = (size_t)o->c * o->h * o->w;
	for (int i = 0; i < o->n; i++) {
		uint64_t rs = o->seed ^ ((uint64_t)i * 0xd1b54a32d192ed03u);
		int label = (int)(nn_splitmix64(&rs) % (uint64_t)nchars), f;
		/* A random font among those that have the character; one that
		 * draws nothing at this size is passed over for another. */
		for (int tries = 0;; tries++) {
			do
				f = (int)(nn_splitmix64(&rs) % (uint64_t)o->nfonts);
			while (!has[f * nchars + label]);
			if (!draw(faces[f], chars[label], o->h, o->w, &rs, cov))
				break;
			if (tries == 100) {
				rc = graft_errf(err, errlen, GRAFT_EINVAL, "glyphs: no font draws U+%04X",
				                (unsigned)chars[label]);
				goto done;
			}
		}
		ds->labels[i] = (uint8_t)label;
		paint(cov, o->c, o->h, o->w, &rs, ds->pixels + (size_t)i * chw);
	}
	rc = 0;
done:
	for (int f = 0; faces && f < o->nfonts; f++)
		if (faces[f])
			FT_Done_Face(faces[f]);
	FT_Done_FreeType(lib);
	free(faces);
	free(has);
	free(cov);
	if (rc)
		nn_dataset_free(ds);
	return rc;
}

/* A font file of the half asked for (0: either). */
static int font_of_part(const char *name, long long size, void *ctx)
{
	int part = *(const int *)ctx;
	size_t len = strlen(name);
	char hex[65];
	(void)size;
	if (len <= 4 || (strcasecmp(name + len - 4, ".ttf") && strcasecmp(name + len - 4, ".otf")))
		return 0;
	nn_sha256_hex(name, len, hex);
	return part == 0 || part == (strchr("02468ace", hex[0]) ? 1 : 2);
}

int nn_glyph_fonts(const char *dir, int part, nn_paths *fonts, char *err, size_t errlen)
{
	if (part < 0 || part > 2)
		return graft_errf(err, errlen, GRAFT_EINVAL, "glyphs: font part %d, need 0..2", part);
	int before = fonts->n, rc = nn_paths_add_tree(fonts, dir, font_of_part, &part);
	if (rc == GRAFT_EIO)
		return graft_errf(err, errlen, rc, "glyphs: cannot read the font directory %s", dir);
	if (rc)
		return graft_errf(err, errlen, rc, "glyphs: out of memory listing fonts");
	if (fonts->n == before)
		return graft_errf(err, errlen, GRAFT_EINVAL, "glyphs: no .ttf or .otf font under %s",
		                  dir);
	return 0;
}
