/*
 * image_write.h - writes PNG (libspng) and JPEG (libjpeg) files for the image
 * folder tests, and the folders of Fashion-MNIST images they read.
 */
#ifndef GRAFT_TESTS_IMAGE_WRITE_H
#define GRAFT_TESTS_IMAGE_WRITE_H

#include <stddef.h>
#include <stdint.h>

/* px: h x w pixels of c interleaved channels (1 grey, 2 grey+alpha, 3 RGB,
 * 4 RGBA), depth 8 or 16 (16: two bytes per channel, big-endian). */
void image_write_png(const char *path, const uint8_t *px, int w, int h, int c, int depth);
/* c: 1 grey, 3 RGB, 4 CMYK. */
void image_write_jpeg(const char *path, const uint8_t *px, int w, int h, int c, int quality);

/* Writes Fashion-MNIST images as dir/<class name>/<index>.png: per_class
 * images of each class, the first of the split (train 0, t10k 1) in order;
 * index is the image's place in its IDX file.  Returns the images written. */
int image_write_fashion(const char *dir, int test, int per_class, const char *ext);

/* An image image_write_fashion wrote: its place in the IDX file, its label,
 * its path in the folder. */
typedef struct image_expect {
	uint64_t order;
	int index, label;
	char rel[64];
} image_expect;

/* The images image_write_fashion(per_class, ext) wrote from idx, in the order
 * the folder stores them: by the first 64 bits of the SHA-256 of
 * "class/file", as nn.h documents.  Returns their number. */
int image_fashion_expected(const struct nn_dataset *idx, int per_class, const char *ext,
                           image_expect *e);

/* Whole files, for the bad ones. */
void image_write_bytes(const char *path, const void *b, size_t n);
size_t image_read_bytes(const char *path, uint8_t *b, size_t cap);

/* Writes a bad image of one kind at path: "empty" (0 bytes),
 * "truncated-png", "truncated-jpeg", "text" (not an image), "jpeg-named-png"
 * (a JPEG, whatever the name), "16-bit" (PNG), "cmyk" (JPEG), "bomb" (a PNG
 * whose header claims 100000 x 100000 pixels). */
void image_write_bad(const char *kind, const char *path);

/* Every kind image_write_bad makes, a file name for it, and what the
 * message refusing it says. */
typedef struct image_bad_case {
	const char *kind, *file, *says;
} image_bad_case;
#define IMAGE_BAD_CASES 8
extern const image_bad_case image_bad_cases[IMAGE_BAD_CASES];

/* The class names image_write_fashion uses (sorted as their folders sort). */
extern const char *const image_fashion_classes[10];

#endif
