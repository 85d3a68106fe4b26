/*
 * folder_internal.h - the graft-images/1 file between folder.c, which
 * decodes an image folder into one, and images_file.c, which reads it.
 *
 * The file: "GRAFTIMG", a 4-byte little-endian header length, a JSON header
 * {"format": "graft-images/1", "key", "channels", "height", "width",
 * "classes": [names], "train": n, "test": m, "skipped"}, then the training
 * pixels (n x c x h x w bytes), their labels (n bytes), the test pixels and
 * the test labels.
 */
#ifndef GRAFT_NN_FOLDER_INTERNAL_H
#define GRAFT_NN_FOLDER_INTERNAL_H

#include "nn/nn.h"

#define NN__IMAGES_MAGIC "GRAFTIMG"
#define NN__IMAGES_HEADER_MAX (1u << 20)

typedef struct nn__images {
	char key[65];            /* the folder's key (sha256 hex) */
	int c, h, w, classes;
	const char *names;       /* classes NUL-terminated names, one after another */
	int n[2];                /* images in the training [0] and test [1] part */
	const uint8_t *pixels[2], *labels[2];
	int skipped;
} nn__images;

/* Writes f to path (through path.tmp and a rename: whole or not at all). */
int nn__images_write(const char *path, const nn__images *f, char *err, size_t errlen);

/* Reads the header of the file at path into f's key, n and skipped (its
 * pointers stay NULL); 0 when it is a whole graft-images/1 file. */
int nn__images_peek(const char *path, nn__images *f);

#endif
