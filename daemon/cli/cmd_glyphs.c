/*
 * cmd_glyphs.c - `graft glyphs`: writes a dataset of rendered characters
 * (nn/glyphs.c) as IDX files (grey) or a graft-images/1 file (colour), by
 * default from the half of the fonts the glyphs graft source never
 * pretrains on: a second domain on which to test whether a graft helps on
 * data it has not seen (graft ablation --data DIR).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/cli/cli.h"
#include "search/search.h"

static const char usage[] =
	"usage: graft glyphs --out DIR [options]\n"
	"\n"
	"Renders characters (99 classes of Latin, digits, Greek, Cyrillic and Hebrew)\n"
	"from font files at random sizes, weights, angles, shears, positions and grey\n"
	"levels, and writes them to DIR as a dataset directory (train-images-idx3-ubyte,\n"
	"train-labels-idx1-ubyte, t10k-...), which graft train, search and ablation read;\n"
	"with --colour, to DIR/glyphs.images (give that file as --data).\n"
	"\n"
	"  --out DIR          where the dataset goes (created if missing)\n"
	"  --fonts DIR        the fonts (default " SEARCH_FONTS_DIR ")\n"
	"  --fonts-part P     0: every font; 1: the half `source: glyphs` pretrains on;\n"
	"                     2: the other half (default 2, fonts the graft never saw)\n"
	"  --train N          training images (default 20000)\n"
	"  --test N           test images (default 5000)\n"
	"  --size S           images S x S (default 28)\n"
	"  --seed S           seed (default 1; the test part uses another stream)\n"
	"  --colour           RGB images: background and ink levels drawn per channel\n";

/* nn's messages about glyphs start "glyphs: " already. */
static void say(const char *err)
{
	fprintf(stderr, "graft %s%s\n", strncmp(err, "glyphs: ", 8) ? "glyphs: " : "", err);
}

int cli_glyphs(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, 0, 'o' }, { "fonts", required_argument, 0, 'f' },
		{ "fonts-part", required_argument, 0, 'p' }, { "train", required_argument, 0, 'n' },
		{ "test", required_argument, 0, 't' }, { "size", required_argument, 0, 's' },
		{ "seed", required_argument, 0, 'e' }, { "colour", no_argument, 0, 'c' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 }
	};
	const char *out = NULL, *fonts_dir = SEARCH_FONTS_DIR;
	long part = 2, ntrain = 20000, ntest = 5000, size = 28, seed = 1;
	char o[32], err[GRAFT_ERRLEN + 4400];
	int c, colour = 0;

	optind = 1;
	while ((c = cli_next_opt(argc, argv, opts, "glyphs", o, sizeof(o))) != -1) {
		int bad = 0;
		switch (c) {
		case 'o': out = optarg; break;
		case 'f': fonts_dir = optarg; break;
		case 'p': bad = cli_int(o, optarg, 0, 2, &part); break;
		case 'n': bad = cli_int(o, optarg, 1, 10000000, &ntrain); break;
		case 't': bad = cli_int(o, optarg, 1, 10000000, &ntest); break;
		case 's': bad = cli_int(o, optarg, 8, 1024, &size); break;
		case 'e': bad = cli_int(o, optarg, 0, 1L << 62, &seed); break;
		case 'c': colour = 1; break;
		case 'h': fputs(usage, stdout); return CLI_OK;
		default: return CLI_USAGE;
		}
		if (bad)
			return CLI_USAGE;
	}
	if (optind != argc || !out) {
		fprintf(stderr, "graft glyphs: --out is required%s\n\n%s",
		        optind != argc ? ", and takes no other arguments" : "", usage);
		return CLI_USAGE;
	}
	nn_paths fonts = { 0 };
	if (nn_glyph_fonts(fonts_dir, (int)part, &fonts, err, sizeof(err)) ||
	    search_make_dirs(out, err, sizeof(err))) {
		say(err);
		nn_paths_clear(&fonts);
		return CLI_FAIL;
	}
	static const char *const files[2][2] = {
		{ "train-images-idx3-ubyte", "train-labels-idx1-ubyte" },
		{ "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte" },
	};
	nn_dataset ds[2] = { 0 };
	int rc = 0;
	for (int k = 0; k < 2 && !rc; k++) {
		nn_glyph_opts g = { .fonts = (const char *const *)fonts.p, .nfonts = fonts.n,
		                    .n = (int)(k ? ntest : ntrain), .c = colour ? 3 : 1,
		                    .h = (int)size, .w = (int)size,
		                    .seed = (uint64_t)seed + (uint64_t)k * 0x5eed };
		char ip[4200], lp[4200];
		snprintf(ip, sizeof(ip), "%s/%s", out, files[k][0]);
		snprintf(lp, sizeof(lp), "%s/%s", out, files[k][1]);
		rc = nn_glyph_dataset(&ds[k], &g, err, sizeof(err));
		if (!rc && !colour)
			rc = nn_idx_save(&ds[k], ip, lp, err, sizeof(err));
		if (!rc && !colour)
			printf("%s: %d images of %ldx%ld, %d classes, from %d fonts\n", ip, ds[k].n,
			       size, size, ds[k].classes, fonts.n);
	}
	if (!rc && colour) {
		/* IDX holds grey images only; the classes are named by code point. */
		int nchars;
		const uint32_t *chars = nn_glyph_default_chars(&nchars);
		char path[4200];
		if (!(ds[0].names = malloc((size_t)nchars * 8)))
			rc = GRAFT_ENOMEM;
		for (int k = 0, off = 0; !rc && k < nchars; k++)
			off += snprintf(ds[0].names + off, 8, "U+%04X", (unsigned)chars[k]) + 1;
		snprintf(path, sizeof(path), "%s/glyphs.images", out);
		if (!rc)
			rc = nn_images_save(path, &ds[0], &ds[1], err, sizeof(err));
		else
			snprintf(err, sizeof(err), "out of memory");
		if (!rc)
			printf("%s: %d + %d RGB images of %ldx%ld, %d classes, from %d fonts\n", path,
			       ds[0].n, ds[1].n, size, size, ds[0].classes, fonts.n);
	}
	nn_dataset_free(&ds[0]);
	nn_dataset_free(&ds[1]);
	nn_paths_clear(&fonts);
	if (rc) {
		say(err);
		return CLI_FAIL;
	}
	return CLI_OK;
}
