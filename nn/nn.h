/*
 * nn.h - graft's training engine, the one public header of nn/.
 *
 * Tensors are float32 in NCHW order.  Layer functions are plain functions that
 * read and write caller-provided buffers; the shapes are in a comment above each
 * one.  Backward functions ACCUMULATE into their gradient outputs (dx, dw, ...),
 * so a tensor read by several layers gets the sum of their gradients; callers
 * zero gradient buffers before a backward pass.
 *
 * nn depends on OpenBLAS (cblas_sgemm), zlib (gzip'd IDX files), nettle
 * (SHA-256), OpenMP (threads) and jansson (the JSON header of safetensors
 * files; a hand-written JSON parser would be the one place a hostile file
 * could hurt us, so we use the well-kept library instead).
 */
#ifndef GRAFT_NN_H
#define GRAFT_NN_H

#include <stddef.h>
#include <stdint.h>

#include "nn/err.h"   /* the error codes, shared by every part of graft */

/* ---- random numbers (xoshiro256**, seeded by splitmix64) ---------------- */

typedef struct nn_rng {
	uint64_t s[4];
} nn_rng;

void nn_rng_seed(nn_rng *r, uint64_t seed);
uint64_t nn_rng_next(nn_rng *r);
double nn_rng_uniform(nn_rng *r);           /* [0, 1) */
double nn_rng_normal(nn_rng *r);            /* mean 0, std 1 */
uint32_t nn_rng_below(nn_rng *r, uint32_t n); /* [0, n), n > 0 */
/* One step of splitmix64 on a single word of state: a stream per image for
 * the generated datasets, seeded from (seed, index), neighbouring seeds
 * giving unrelated streams. */
uint64_t nn_splitmix64(uint64_t *state);

/* ---- threads ------------------------------------------------------------ */

/* Sets how many threads the layers use (>= 1).  graft runs its own threads and
 * keeps OpenBLAS single-threaded inside them: the two pools would fight. */
void nn_set_threads(int n);
int nn_threads(void);

/* ---- datasets ------------------------------------------------------------ */

#define NN_MAX_CHANNELS 4

typedef struct nn_dataset {
	int n, c, h, w;   /* n images of c x h x w pixels */
	int classes;      /* number of classes (max label + 1, at least 2) */
	uint8_t *pixels;  /* (n, c, h, w), 0..255 */
	uint8_t *labels;  /* (n) */
	char *names;      /* the classes' names, each NUL-terminated, one after
	                     another (an image folder's class folders); NULL when
	                     the files name none */
} nn_dataset;

/* The name of class k (0 <= k < classes), or NULL when ds has no names. */
const char *nn_dataset_class_name(const nn_dataset *ds, int k);

/* Loads an IDX image file (magic 0x803, u8, 3 dims) and its IDX label file
 * (magic 0x801, u8, 1 dim), each gzip'd or plain.  A corrupt, truncated or
 * mismatched pair is GRAFT_EFORMAT with a message naming the file and problem;
 * nothing is loaded partially. */
int nn_idx_load(nn_dataset *ds, const char *images_path, const char *labels_path,
                char *err, size_t errlen);

/* Writes a one-channel dataset as an IDX pair (plain, each file renamed into
 * place whole); GRAFT_EINVAL for more channels, GRAFT_EIO naming the file. */
int nn_idx_save(const nn_dataset *ds, const char *images_path, const char *labels_path,
                char *err, size_t errlen);

/* Loads CIFAR-10 binary batches (records of 1 label byte + 3072 pixel bytes). */
int nn_cifar10_load(nn_dataset *ds, const char *const *paths, int npaths,
                    char *err, size_t errlen);

/* Frees what a load or split allocated and zeroes *ds; NULL is a no-op. */
void nn_dataset_free(nn_dataset *ds);

/* Copies the first n - nval images of src into train and the last nval into val
 * (the datasets we read are already shuffled, so the split is deterministic and
 * needs no seed).  0 < nval < src->n. */
int nn_dataset_split(const nn_dataset *src, int nval, nn_dataset *train, nn_dataset *val);

/* Per-channel mean and standard deviation of the pixels scaled to [0, 1]. */
void nn_dataset_stats(const nn_dataset *ds, float *mean, float *std);

typedef struct nn_augment {
	int crop_pad; /* random crop after zero-padding by this many pixels; 0 = off */
	int flip;     /* random horizontal flip with probability 1/2 */
} nn_augment;

/* x: (n, c, h, w) normalized pixels ((p/255 - mean[c]) / std[c]); y: (n) labels.
 * Fills them with images idx[0..n); aug may be NULL (no augmentation). */
void nn_dataset_batch(const nn_dataset *ds, const int *idx, int n,
                      const float *mean, const float *std,
                      const nn_augment *aug, nn_rng *rng, float *x, int *y);

/* Loads the train or test part of a dataset directory: IDX files named as
 * MNIST's (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-..., each
 * optionally .gz) or CIFAR-10 binary batches (data_batch_1..5.bin and
 * test_batch.bin, directly in dir or in dir/cifar-10-batches-bin); or, when
 * dir is a file, the image folder it was prepared from (nn_folder_prepare). */
int nn_dataset_load_dir(nn_dataset *ds, const char *dir, int test, char *err,
                        size_t errlen);
/* Whether dir holds no IDX or CIFAR-10 files but subfolders: an image
 * folder (nn_folder_prepare). */
int nn_dataset_dir_is_folder(const char *dir);

/* ---- lists of files (paths.c) ------------------------------------------------ */

/* A growing list of paths, each malloc'd; zero-initialised to start. */
typedef struct nn_paths {
	char **p;
	int n, cap;
} nn_paths;

/* Appends a copy of path: 0 or GRAFT_ENOMEM. */
int nn_paths_add(nn_paths *ps, const char *path);
/* Appends every regular file under dir, recursively, whose name (and size)
 * keep accepts (NULL: every file), names starting with '.' left out; the
 * ones appended sorted.  0, GRAFT_EIO when dir (or a folder in it) cannot
 * be read, or GRAFT_ENOMEM. */
int nn_paths_add_tree(nn_paths *ps, const char *dir,
                      int (*keep)(const char *name, long long size, void *ctx), void *ctx);
/* Frees the paths and zeroes *ps. */
void nn_paths_clear(nn_paths *ps);

/* ---- images and image folders ---------------------------------------------- */

/* A decoded image: h x w pixels of c (1 or 3) interleaved 8-bit channels. */
typedef struct nn_image {
	int w, h, c;
	uint8_t *px;   /* h * w * c bytes, row by row */
} nn_image;

/* Larger images are refused before any pixel memory is taken (a small file
 * may claim an enormous size: a decompression bomb). */
#define NN_IMAGE_MAX_SIDE 16384
#define NN_IMAGE_MAX_PIXELS (64LL << 20)

/* Reads a PNG or JPEG file, recognised by its first bytes; a .png, .jpg or
 * .jpeg name must agree with them.  Grey stays 1 channel; palette and colour
 * images become 3 (RGB, alpha dropped).  want_w x want_h (0 x 0: none) is the
 * size the image will be shrunk to: a JPEG may then be decoded at 1/2, 1/4 or
 * 1/8 scale (in the DCT), never below that size.  An empty, truncated or
 * corrupt file, a 16-bit PNG, a CMYK JPEG or one too large is GRAFT_EFORMAT
 * (GRAFT_ERANGE for size) with a one-line message naming the file; *img is
 * then zeroed. */
int nn_image_read(const char *path, int want_w, int want_h, nn_image *img, char *err,
                  size_t errlen);
void nn_image_free(nn_image *img);
/* Whether name ends in .png, .jpg or .jpeg (any case). */
int nn_image_is_image_name(const char *name);
/* Converts img to c channels in place: RGB to grey by ITU-R 601 luma
 * (299 R + 587 G + 114 B) / 1000, rounded, as PIL's convert("L"); grey to RGB
 * by copying. */
int nn_image_to_channels(nn_image *img, int c);
/* Resizes channel ch of img into dst, dh x dw bytes: area averaging along an
 * axis that shrinks, bilinear (half-pixel centres, edges clamped) along one
 * that grows, a copy along one that keeps its length; exact integer weights,
 * rounded once, half up. */
int nn_image_resize_plane(const nn_image *img, int ch, uint8_t *dst, int dw, int dh);

/* An image folder: dir/<class>/<image> (the validation split is taken from
 * it), or dir/train/<class>/ and dir/test/<class>/ with the same classes.
 * Classes are the sorted names of the class folders; files that are not
 * .png, .jpg or .jpeg, and names starting with '.', are ignored. */
typedef struct nn_folder_opts {
	const char *dir;
	int c, h, w;            /* every image becomes c (1 or 3) x h x w */
	int skip_bad;           /* a bad image is skipped (and counted), not an error */
	const char *cache_dir;  /* the directory the decoded file goes in (it exists) */
	int threads;            /* decoding threads; 0: nn_threads() */
} nn_folder_opts;

typedef struct nn_folder_report {
	int train, test, classes; /* images decoded into each part */
	int skipped;              /* bad images skipped (skip_bad) */
	char first_skipped[512];  /* the first one's message */
	int ignored;              /* files that are not images by their names */
	int reused;               /* 1: the decoded file was there already */
	double decode_s;          /* wall seconds listing and decoding took */
} nn_folder_report;

#define NN_FOLDER_MAX_CLASSES 256   /* labels are bytes */
#define NN_FOLDER_MAX_IMAGES 10000000

/* Decodes every image of the folder once, in parallel, into a graft-images/1
 * file in cache_dir named by the folder's key (every file's path, size and
 * modification time, and the options), and writes that file's path into
 * path; a file already there for the same key is reused, so a changed folder
 * is decoded again and an unchanged one costs a directory listing.  The
 * training images are stored in the order of a hash of their paths, so the
 * validation split (the last images, nn_dataset_split) is a fixed,
 * name-determined sample of every class.  An empty class folder, fewer than
 * two classes, more than NN_FOLDER_MAX_CLASSES, test classes the training
 * part lacks, or (without skip_bad) a bad image is an error naming it;
 * nothing is written then.  rep may be NULL. */
int nn_folder_prepare(const nn_folder_opts *o, char *path, size_t pathlen,
                      nn_folder_report *rep, char *err, size_t errlen);

/* Loads the training (test 0) or test part of a graft-images/1 file; a file
 * that is truncated or whose header lies is GRAFT_EFORMAT, a part it does
 * not have GRAFT_EIO, each with a message. */
int nn_images_load(nn_dataset *ds, const char *path, int test, char *err, size_t errlen);
/* Writes train and test (the same c x h x w and classes, train's names
 * given) to path as a graft-images/1 file, the way to keep a generated
 * dataset of colour images (IDX files hold grey ones only); --data and
 * dataset.dir take the file as they take a folder's. */
int nn_images_save(const char *path, const nn_dataset *train, const nn_dataset *test,
                   char *err, size_t errlen);

/* ---- synthetic primitives -------------------------------------------------- */

/* A procedurally drawn dataset of low-level primitives (lines, arcs,
 * corners, circles, blobs, gratings), so that graft's frozen low-level module
 * can be pretrained on edges and curves whatever the target domain is.
 *
 * Angles are in degrees, counter-clockwise from the rightward x axis as the
 * image is displayed (row 0 at the top), so 90 is "up".  The classes are:
 *
 *   id      primitive   orientation
 *   0..7    line        k * 22.5 (0, 22.5, ..., 157.5): the line's direction
 *   8..11   arc         opens toward 45 + k * 90 (8 up-right, 9 up-left,
 *                       10 down-left, 11 down-right): a quarter circle whose
 *                       centre lies that way from the arc's midpoint
 *   12..15  corner      opens toward 45 + k * 90 as for arcs: two arms at a
 *                       right angle, along 45 + k * 90 +- 45, from the vertex
 *   16      circle      (none) an outline of random radius
 *   17      blob        (none) a filled isotropic gaussian of random sigma
 *   18..21  grating     stripes running along k * 45 (18 horizontal, 19
 *                       rising 45, 20 vertical, 21 falling 135)
 *
 * Arcs and corners are turned by up to +-8 degrees at random about their class
 * orientation; lines and gratings are drawn at exactly theirs.
 */
enum {
	NN_SYNTH_LINE = 0,     /* 8 classes, orientation k * 22.5 */
	NN_SYNTH_ARC = 8,      /* 4 classes, opening toward 45 + k * 90 */
	NN_SYNTH_CORNER = 12,  /* 4 classes, opening toward 45 + k * 90 */
	NN_SYNTH_CIRCLE = 16,
	NN_SYNTH_BLOB = 17,
	NN_SYNTH_GRATING = 18, /* 4 classes, stripes along k * 45 */
	NN_SYNTH_CLASSES = 22,
};

#define NN_SYNTH_MIN_SIDE 8
#define NN_SYNTH_MAX_SIDE 256

/* Fills ds with n images of c x h x w bytes (c in 1..NN_MAX_CHANNELS, h and w
 * in NN_SYNTH_MIN_SIDE..NN_SYNTH_MAX_SIDE) and their labels, ds->classes =
 * NN_SYNTH_CLASSES.  The classes are balanced (each n / NN_SYNTH_CLASSES,
 * rounded) and shuffled.  Each image is a background of random brightness
 * (0..80) with gaussian noise (sigma 10..20), the labelled primitive drawn
 * anti-aliased, fully inside the canvas, in a foreground of 150..255 (in a
 * random colour when c > 1), and with probability 0.3 a smaller, faint
 * distractor primitive that does not change the label.
 *
 * The result depends on seed alone, not on the thread count.  ds is
 * overwritten (not freed first) and owns the arrays on success; free them with
 * nn_dataset_free.  On failure ds is zeroed and the return is GRAFT_EINVAL (a
 * bad size, with a message in err) or GRAFT_ENOMEM.  err may be NULL. */
int nn_synth_dataset(nn_dataset *ds, int n, int c, int h, int w, uint64_t seed,
                     char *err, size_t errlen);

/* Characters rendered with FreeType (glyphs.c): n images of c x h x w, the
 * label the character's index in chars, each from a random font of fonts
 * that has it, at a random size (55-95% of h), stroke weight, rotation
 * (+-15 degrees), shear, width and position, in random grey levels of
 * either polarity with Gaussian noise.  Depends on the seed alone.  chars
 * NULL: nn_glyph_default_chars.  GRAFT_EINVAL (a character no font has, a
 * bad size), GRAFT_EIO (a file FreeType cannot read) or GRAFT_ENOMEM, with
 * a sentence. */
typedef struct nn_glyph_opts {
	const char *const *fonts;
	int nfonts;
	const uint32_t *chars;   /* Unicode code points, 2..256 of them */
	int nchars;
	int n, c, h, w;
	uint64_t seed;
} nn_glyph_opts;
int nn_glyph_dataset(nn_dataset *ds, const nn_glyph_opts *o, char *err, size_t errlen);
/* The default classes: 99 characters of Latin, digits, Greek, Cyrillic and
 * Hebrew, no two of the same shape. */
const uint32_t *nn_glyph_default_chars(int *n);
/* Adds to *fonts the .ttf and .otf files under dir, sorted: part 0 all of
 * them, 1 or 2 one of two halves fixed by the SHA-256 of each file's name (a
 * graft pretrained on one half can be tested on the glyphs of fonts it
 * never saw).  GRAFT_EINVAL when there is none. */
int nn_glyph_fonts(const char *dir, int part, nn_paths *fonts, char *err, size_t errlen);

/* Procedural textures (textures.c): n images of c x h x w, balanced and
 * shuffled over NN_TEXTURE_CLASSES classes, class = family * 2 + coarse:
 * the families of nn_texture_family (stripes, checks, dots, cells, noise,
 * rings, hatching, bricks), each at a fine period (9-16% of the shorter
 * side) and a coarse one (21-36%), at a random angle and phase, in two grey
 * levels of either polarity (colours about them when c > 1) with Gaussian
 * noise.  Depends on the seed alone.  GRAFT_EINVAL (a bad size) or
 * GRAFT_ENOMEM, with a sentence. */
#define NN_TEXTURE_FAMILIES 8
#define NN_TEXTURE_CLASSES (2 * NN_TEXTURE_FAMILIES)
int nn_texture_dataset(nn_dataset *ds, int n, int c, int h, int w, uint64_t seed, char *err,
                       size_t errlen);
/* A family's name, NULL beyond them. */
const char *nn_texture_family(int family);

/* Photo patches for self-supervised pretraining (patches.c): n random square
 * crops (an eighth to a half of each photo's shorter side, itself shrunk to
 * at most 512), flipped at random, resized to c x h x w, labelled by
 * NN_PATCH_ROTATION: the quarter turns applied (4 classes; h == w), or
 * NN_PATCH_EXEMPLAR: the photo they came from (one class each, 2..256).
 * Depends on the seed alone.  A photo that cannot be read, or smaller than
 * twice the patch, is an error naming it. */
enum nn_patch_task { NN_PATCH_ROTATION, NN_PATCH_EXEMPLAR };
typedef struct nn_patch_opts {
	const char *const *images;
	int nimages;
	enum nn_patch_task task;
	int n, c, h, w;
	uint64_t seed;
} nn_patch_opts;
int nn_patch_dataset(nn_dataset *ds, const nn_patch_opts *o, char *err, size_t errlen);
/* Adds to *photos the PNG and JPEG files of at least 20 KB under dirs,
 * sorted per directory; a missing directory is passed over.  GRAFT_EINVAL
 * when none is found. */
int nn_patch_photos(const char *const *dirs, int ndirs, nn_paths *photos, char *err,
                    size_t errlen);


/* ---- named tensors and safetensors files ------------------------------- */

#define NN_NAME_MAX 96

typedef struct nn_tensor {
	char name[NN_NAME_MAX];
	int ndim;          /* 1..4 */
	int64_t shape[4];
	float *data;       /* float32, row-major */
} nn_tensor;

/* Number of elements of t, or -1 when ndim is not 1..4, a dimension is
 * negative, or numel * sizeof(float) would overflow an int64_t (so callers may
 * compute byte sizes from a non-negative result without checking again). */
int64_t nn_tensor_numel(const nn_tensor *t);

/* Whether a and b have the same ndim and dimensions. */
int nn_tensor_same_shape(const nn_tensor *a, const nn_tensor *b);
/* Writes t's shape as "(2,3,3,3)" into buf (len bytes) for messages; buf. */
const char *nn_tensor_shape_str(const nn_tensor *t, char *buf, size_t len);

/* Limits on the metadata the writer accepts: pairs, and bytes of each key or
 * value (without its terminating NUL). */
#define NN_META_MAX 64
#define NN_META_LEN_MAX 4096

/* Writes the tensors as a safetensors file (F32, PyTorch layouts), in the order
 * given; the data is borrowed.  The file is written to PATH.tmp and renamed over
 * path, so a crash leaves the old file or the whole new one. */
int nn_safetensors_write(const char *path, const nn_tensor *t, int n,
                         char *err, size_t errlen);

/* The same with a "__metadata__" object: meta holds 2*nmeta borrowed strings,
 * key0, value0, key1, value1, ..., written in that order.  Keys must be
 * non-empty and distinct, keys and values valid UTF-8 of at most
 * NN_META_LEN_MAX bytes, and nmeta 0..NN_META_MAX; anything else is
 * GRAFT_EINVAL with a message and no file.  nmeta 0 writes no metadata. */
int nn_safetensors_write_meta(const char *path, const nn_tensor *t, int n,
                              const char *const *meta, int nmeta,
                              char *err, size_t errlen);

typedef struct nn_weights {
	int n;
	nn_tensor *t;  /* t[i].data points into blob */
	void *blob;
	int nmeta;     /* metadata pairs; 0 (and meta NULL) when the file has none */
	char **meta;   /* 2*nmeta strings: key0, value0, key1, value1, ..., in file order */
} nn_weights;

/* Reads a safetensors file into *w, which the caller frees with
 * nn_weights_free; everything *w points to is owned by it.  Only F32 tensors of
 * 0-4 dims are accepted, a 0-dim scalar reading as shape [1]; the tensors come
 * in the order of their data, which for a file nn_safetensors_write wrote is the
 * order written.  "__metadata__", if present, must map strings to strings and
 * fills nmeta/meta.  A file that cannot be opened or read is GRAFT_EIO, one over
 * 4 GiB GRAFT_ERANGE; a truncated file or a header that lies (offsets out of
 * range, overlapping or wrong-sized, bad JSON) is GRAFT_EFORMAT with a message,
 * never a crash.  On failure *w is left zeroed. */
int nn_safetensors_read(const char *path, nn_weights *w, char *err, size_t errlen);
const nn_tensor *nn_weights_find(const nn_weights *w, const char *name);

/* Returns the metadata value of key, or NULL when w has no such key; the string
 * belongs to w. */
const char *nn_weights_meta(const nn_weights *w, const char *key);

/* Frees what nn_safetensors_read allocated and zeroes *w; NULL is a no-op. */
void nn_weights_free(nn_weights *w);

/* ---- hashing (SHA-256, from nettle) ------------------------------------- */

/* Writes the SHA-256 of len bytes at data into hex as 64 lowercase hex digits
 * and a NUL.  data may be NULL when len is 0. */
void nn_sha256_hex(const void *data, size_t len, char hex[65]);

/* The same, fed in pieces: init, update as often as needed, final.  The
 * context is nettle's, kept opaque so that nettle stays inside nn. */
typedef struct nn_sha256 {
	_Alignas(8) unsigned char opaque[128];
} nn_sha256;
void nn_sha256_init(nn_sha256 *h);
void nn_sha256_update(nn_sha256 *h, const void *data, size_t len);
void nn_sha256_final(nn_sha256 *h, char hex[65]);

/* Hashes a file's bytes, streaming it.  A file that cannot be opened or read is
 * GRAFT_EIO with a message naming it; hex is then "". */
int nn_sha256_file(const char *path, char hex[65], char *err, size_t errlen);

/* The identity of a set of tensors: the SHA-256 of, for each tensor in order,
 * its name and a NUL, ndim and then each of the ndim dimensions as little-endian
 * int64, and its numel float32 values, little-endian, bit for bit.  It does not
 * see file layout or metadata, so two graft modules with equal weights hash
 * equal however they were stored; the order of the tensors does count.
 * GRAFT_EINVAL (hex "") for a bad argument or a tensor whose name is not
 * terminated, whose shape nn_tensor_numel refuses, or whose data is NULL. */
int nn_tensors_sha256(const nn_tensor *t, int n, char hex[65]);

/* ---- layers --------------------------------------------------------------- */

/* A 2-D convolution without bias.  pad is symmetric; groups divides cin and cout. */
typedef struct nn_conv_shape {
	int cin, h, w;     /* input */
	int cout, k, stride, pad, groups;
	int oh, ow;        /* output, set by nn_conv_shape_init */
} nn_conv_shape;

/* Fills oh, ow; returns GRAFT_EINVAL on an impossible shape. */
int nn_conv_shape_init(nn_conv_shape *s);
/* Floats of workspace the conv functions need for a batch (all threads). */
size_t nn_conv_workspace(const nn_conv_shape *s);

/* x: (n,cin,h,w)  w: (cout,cin/groups,k,k)  y: (n,cout,oh,ow), overwritten */
void nn_conv_forward(const nn_conv_shape *s, int n, const float *x, const float *w,
                     float *y, float *ws);
/* dy: (n,cout,oh,ow); dx (may be NULL) and dw (may be NULL) accumulate. */
void nn_conv_backward(const nn_conv_shape *s, int n, const float *x, const float *w,
                      const float *dy, float *dx, float *dw, float *ws);
/* Which path nn_conv_forward and nn_conv_backward take: oneDNN's JIT
 * convolutions (the default where oneDNN runs), or the reference im2col +
 * cblas_sgemm path of conv.c (the environment variable
 * GRAFT_ENGINE=reference, or nn_conv_set_engine).  Both compute the same
 * convolution; tests run each. */
enum nn_engine { NN_ENGINE_REFERENCE, NN_ENGINE_ONEDNN };
enum nn_engine nn_conv_engine(void);
void nn_conv_set_engine(enum nn_engine e);

/* Direct loops, the reference the fast path is tested against. */
void nn_conv_forward_naive(const nn_conv_shape *s, int n, const float *x,
                           const float *w, float *y);
void nn_conv_backward_naive(const nn_conv_shape *s, int n, const float *x,
                            const float *w, const float *dy, float *dx, float *dw);

#define NN_BN_EPS 1e-5f
#define NN_BN_MOMENTUM 0.1f

/* Batch norm over (n, hw) per channel, optionally followed by ReLU.
 * x, y: (n,c,hw).  Train mode uses the batch statistics, saves the mean and
 * 1/sqrt(var+eps) for backward, and updates the running statistics as PyTorch
 * does (running_var gets the unbiased variance). */
void nn_bn_forward_train(int n, int c, int hw, const float *x, const float *gamma,
                         const float *beta, float *running_mean, float *running_var,
                         float *save_mean, float *save_invstd, int relu, float *y);
void nn_bn_forward_eval(int n, int c, int hw, const float *x, const float *gamma,
                        const float *beta, const float *running_mean,
                        const float *running_var, int relu, float *y);
/* y is the forward output (for the ReLU mask when relu is set); dx, dgamma,
 * dbeta accumulate; dx may be NULL. */
void nn_bn_backward(int n, int c, int hw, const float *x, const float *y,
                    const float *dy, const float *gamma, const float *save_mean,
                    const float *save_invstd, int relu, float *dx, float *dgamma,
                    float *dbeta);

/* y = max(x, 0) over len floats; dx += dy where y > 0. */
void nn_relu_forward(size_t len, const float *x, float *y);
void nn_relu_backward(size_t len, const float *y, const float *dy, float *dx);

/* y = a + b, optionally followed by ReLU.  da, db (either may be NULL) += dy
 * (masked by y > 0 when relu). */
void nn_add_forward(size_t len, const float *a, const float *b, int relu, float *y);
void nn_add_backward(size_t len, const float *y, const float *dy, int relu,
                     float *da, float *db);

/* 2x2 max pool, stride 2, floor.  x: (n,c,h,w)  y: (n,c,h/2,w/2) */
void nn_maxpool_forward(int n, int c, int h, int w, const float *x, float *y);
void nn_maxpool_backward(int n, int c, int h, int w, const float *x, const float *y,
                         const float *dy, float *dx);

/* Global average pool.  x: (n,c,hw)  y: (n,c) */
void nn_gap_forward(int n, int c, int hw, const float *x, float *y);
void nn_gap_backward(int n, int c, int hw, const float *dy, float *dx);

/* y = x w^T + b.  x: (n,in)  w: (out,in)  b: (out)  y: (n,out) */
void nn_linear_forward(int n, int in, int out, const float *x, const float *w,
                       const float *b, float *y);
void nn_linear_backward(int n, int in, int out, const float *x, const float *w,
                        const float *dy, float *dx, float *dw, float *db);

/* Mean softmax cross-entropy of logits (n,k) against labels y (n); writes
 * dlogits (n,k) = d(mean loss)/d(logits), overwritten.  dlogits may be NULL. */
double nn_softmax_xent(int n, int k, const float *logits, const int *y, float *dlogits);

/* ---- optimizer and schedule ---------------------------------------------- */

/* The optimizer's fixed settings; the learning rate, which the schedule
 * changes every step, is an argument of each step instead. */
typedef struct nn_sgd {
	float momentum, weight_decay;
	int nesterov;
} nn_sgd;

/* One step of PyTorch's SGD over len parameters: g += wd*p; v = mu*v + g;
 * p -= lr * (nesterov ? g + mu*v : v). */
void nn_sgd_step(const nn_sgd *o, float lr, size_t len, float *p, const float *g, float *v);

enum nn_schedule { NN_SCHEDULE_CONSTANT, NN_SCHEDULE_COSINE };

/* Learning rate at step t of total: linear warm-up over warmup steps, then
 * constant or cosine decay to 0 at total. */
float nn_lr_at(enum nn_schedule s, float base, int t, int total, int warmup);

/* ---- architecture (graft-arch/1) ----------------------------------------- */

enum nn_block_op { NN_OP_CONV3, NN_OP_CONV5, NN_OP_SEP3, NN_OP_RES3, NN_OP_POOL };

#define NN_MAX_BLOCKS 32
#define NN_MAX_GRAFT_LAYERS 8
#define NN_SKIP_NONE (-2) /* skip_from: -1 is the stem, j >= 0 a block */

typedef struct nn_block_spec {
	enum nn_block_op op;
	int channels;
	int stride;     /* 1 or 2; ignored by pool */
	int skip_from;  /* NN_SKIP_NONE, -1 (stem) or an earlier block */
} nn_block_spec;

typedef struct nn_recipe {
	int steps, batch;
	float lr, momentum, weight_decay;
	int nesterov;
	enum nn_schedule schedule;
	int warmup;      /* warm-up steps */
	int crop, flip;  /* augmentation: crop padding (0 = off), flip on/off */
	uint64_t seed;
} nn_recipe;

typedef struct nn_arch {
	int in_c, in_h, in_w;
	float mean[NN_MAX_CHANNELS], std[NN_MAX_CHANNELS];
	int classes;
	int stem_kernel, stem_channels;
	int graft_nlayers;                       /* 0: no graft */
	int graft_kernel[NN_MAX_GRAFT_LAYERS];
	int graft_channels[NN_MAX_GRAFT_LAYERS];
	char graft_sha256[65];                   /* hex, may be empty */
	char graft_source[32];                   /* informative */
	int nblocks;
	nn_block_spec blocks[NN_MAX_BLOCKS];
	nn_recipe train;
	int graft_trainable;                     /* not in the file: fine-tune the graft
	                                            instead of freezing it */
	int has_result;                          /* informative result section */
	double result_val_accuracy;
	int64_t result_params, result_flops;
} nn_arch;

/* Fills a with the defaults of every optional field (recipe, normalize). */
void nn_arch_defaults(nn_arch *a);

/* ---- networks -------------------------------------------------------------- */

/* A network is a list of nodes, each reading earlier ones.  All parameters
 * that train live in one contiguous block (so an SGD step is one loop), and
 * every activation buffer is allocated once, by nn_net_finalize. */
typedef struct nn_net nn_net;

/* Starts a network whose input, node 0, holds (c,h,w) images.  NULL on ENOMEM. */
nn_net *nn_net_new(int c, int h, int w);
void nn_net_free(nn_net *net);

/* Each adder appends a node reading earlier nodes and returns its id (> 0), or
 * GRAFT_EINVAL on an impossible shape.  name prefixes the node's tensor names:
 * "stem.conv" gives "stem.conv.weight"; "stem.bn" gives "stem.bn.weight",
 * ".bias", ".running_mean", ".running_var"; "head" gives "head.weight", ".bias".
 * Convolutions pad by k/2 and have no bias. */
int nn_net_conv(nn_net *net, int in, int cout, int k, int stride, int groups,
                const char *name);
int nn_net_bn(nn_net *net, int in, int relu, const char *name);
int nn_net_relu(nn_net *net, int in);
int nn_net_add(nn_net *net, int a, int b, int relu);
int nn_net_maxpool(nn_net *net, int in);
int nn_net_gap(nn_net *net, int in);
int nn_net_linear(nn_net *net, int in, int out, const char *name);

/* A frozen node's parameters never change and its batch norm always runs in
 * eval mode; no gradient is computed into or through a frozen part of the
 * network that nothing trainable feeds.  Call before nn_net_finalize. */
void nn_net_freeze(nn_net *net, int node);

/* Output shape of a node (per image). */
void nn_net_shape(const nn_net *net, int node, int *c, int *h, int *w);
int nn_net_nodes(const nn_net *net);

/* Allocates parameters, gradients and activations for batches of up to
 * max_batch images, and initializes the parameters as PyTorch does by default
 * (Kaiming-uniform with a = sqrt(5), BN weight 1, bias 0) from seed. */
int nn_net_finalize(nn_net *net, int max_batch, uint64_t seed);

/* x: (n,c,h,w), n <= max_batch.  Returns the last node's output (n, ...),
 * owned by the net.  train selects batch statistics for unfrozen batch norms. */
const float *nn_net_forward(nn_net *net, const float *x, int n, int train);

/* Gradients of the last forward pass, which must have been a training one
 * (train = 1), given dout = dL/d(last node's output); parameter gradients
 * are overwritten, not accumulated across calls. */
void nn_net_backward(nn_net *net, const float *dout);

/* One SGD step on a batch: forward (train mode), softmax cross-entropy,
 * backward, update.  Returns the batch's mean loss. */
double nn_net_train_step(nn_net *net, const float *x, const int *y, int n,
                         const nn_sgd *opt, float lr);

/* ---- where a training step's time goes (make bench) ----------------------- */

enum nn_prof_part {
	NN_PROF_CONV_FWD, NN_PROF_CONV_BWD_DATA, NN_PROF_CONV_BWD_WEIGHTS,
	NN_PROF_BN_FWD, NN_PROF_BN_BWD, NN_PROF_RELU, NN_PROF_POOL, NN_PROF_ADD,
	NN_PROF_REORDER, NN_PROF_GRAD_SUM, NN_PROF_HEAD, NN_PROF_SGD, NN_PROF_PARTS
};

/* A part's name ("conv forward", ...). */
const char *nn_prof_part_name(enum nn_prof_part part);

/* One nn_net_train_step, adding the seconds each part takes to
 * seconds[NN_PROF_PARTS].  Node by node (the reference engine), a
 * convolution's whole backward counts as NN_PROF_CONV_BWD_DATA, and BN's as
 * NN_PROF_BN_BWD whatever its ReLU.  convs_only: only the convolutions of
 * the oneDNN plan run, forward and both backwards (the numbers left in the
 * net are then meaningless): the step's conv-only ceiling.  Returns 0, or
 * GRAFT_EINVAL (convs_only on a net without a plan). */
int nn_net_profile_step(nn_net *net, const float *x, const int *y, int n,
                        const nn_sgd *opt, float lr, int convs_only, double *seconds);

/* Seconds spent making the net's oneDNN plans so far (primitive creation
 * and JIT compilation; the first step of each batch size and mode pays it). */
double nn_net_setup_seconds(const nn_net *net);

/* Whether the net's last forward pass ran on a oneDNN plan (activations
 * blocked from layer to layer) rather than node by node. */
int nn_net_planned(const nn_net *net);
/* How many primitives of that plan run oneDNN's reference loops, 10-100x
 * slower than its JIT kernels (layouts this machine's kernels do not take):
 * 0 on every plan graft makes, on AVX2 and AVX-512 machines alike. */
int nn_net_reference_kernels(const nn_net *net);

/* Whether the net has a frozen graft, and the shape (per image) of its
 * output G(x).  G is frozen, so G(x) of an un-augmented image never changes:
 * it can be computed once and fed to every step that sees the image. */
int nn_net_graft_shape(const nn_net *net, int *c, int *h, int *w);
/* Feeds the next forward passes the graft output for their batch (borrowed,
 * (n, c, h, w) in batch order) instead of computing it; NULL computes it. */
void nn_net_set_graft_features(nn_net *net, const float *feats);

/* Trainable and frozen parameters (not running statistics). */
int64_t nn_net_params(const nn_net *net);
/* Forward multiply-adds x 2 per image, convolutions and linear layers. */
int64_t nn_net_flops(const nn_net *net);

/* The flat blocks behind the trainable parameters: what a gradient check or
 * an optimizer walks.  Any pointer may be NULL. */
void nn_net_param_block(nn_net *net, float **params, float **grads, size_t *len);

/* Every named tensor of the net (weights and BN running statistics), pointing
 * into the net's memory, in node order.  Returns the count; *out is malloc'd. */
int nn_net_tensors(const nn_net *net, nn_tensor **out);

/* Writes / reads the net's tensors as safetensors.  Loading requires every
 * tensor of the net whose name starts with prefix ("" = all) to be in the file
 * with the same shape; other tensors in the file are ignored. */
int nn_net_save(const nn_net *net, const char *path, char *err, size_t errlen);
int nn_net_load(nn_net *net, const char *path, const char *prefix, char *err,
                size_t errlen);

/* The optimizer's state (SGD momentum of every trainable parameter) and
 * the step training stopped at, as a safetensors file of format
 * graft-optim/1: with the weights, what a stopped run needs to go on.
 * Loading checks that the file is the state of a net of this layout
 * (GRAFT_EFORMAT otherwise) and sets *step (may be NULL). */
int nn_net_save_optim(const nn_net *net, const char *path, int step, char *err, size_t errlen);
int nn_net_load_optim(nn_net *net, const char *path, int *step, char *err, size_t errlen);

/* A checkpoint: the net's tensors and its optimizer state in one file
 * (written whole or not at all, as every safetensors file), so that a
 * training killed at any moment resumes from its last checkpoint.  Read it
 * back with nn_net_load (prefix "") and nn_net_load_optim. */
int nn_net_save_checkpoint(const nn_net *net, const char *path, int step, char *err,
                           size_t errlen);

/* Builds the network an architecture describes (ARCH-FORMAT.md), graft
 * layers frozen, finalized for max_batch. */
int nn_net_from_arch(nn_net **out, const nn_arch *a, int max_batch, uint64_t seed,
                     char *err, size_t errlen);

/* ---- training ------------------------------------------------------------ */

typedef struct nn_progress {
	int step, steps;     /* steps done, of steps */
	double loss;         /* mean training loss since the last report */
	double images_per_s; /* since the start */
	double elapsed_s;    /* wall seconds since the start */
} nn_progress;

typedef void (*nn_progress_fn)(const nn_progress *p, void *ctx);

/* IEEE half precision (binary16), as stored in the graft feature cache. */
typedef uint16_t nn_half;

/* Conversions, rounding to nearest (ties to even). */
void nn_half_from_floats(const float *in, nn_half *out, size_t n);
void nn_half_to_floats(const nn_half *in, float *out, size_t n);

typedef struct nn_train_opts {
	nn_recipe recipe;
	const float *mean, *std;   /* per-channel normalization */
	nn_progress_fn progress;   /* may be NULL */
	void *ctx;
	int report_every;          /* steps between progress calls (>= 1) */
	const nn_half *graft_cache; /* G(x) of every image of ds (see
	                              nn_graft_features), or NULL; used only
	                              without augmentation, since G of an
	                              augmented image is not G of the image */
	int start_step;            /* a resumed run: steps [0, start_step) are done;
	                              the schedule and progress go on from it, and
	                              its batches come from a stream seeded by the
	                              recipe's seed and start_step */
	int checkpoint_every;      /* steps between checkpoint calls (0: none) */
	int (*checkpoint)(nn_net *net, int step, void *ctx); /* steps done; a
	                              nonzero return stops training with it */
} nn_train_opts;

typedef struct nn_train_result {
	double final_loss;         /* mean loss over the last report window */
	double wall_s, cpu_s;      /* wall and process CPU seconds of training */
	double images_per_s;
} nn_train_result;

/* Trains net on ds with the recipe: batches drawn without replacement from a
 * permutation reshuffled every epoch (seeded by recipe.seed), augmentation as
 * the recipe says, SGD with the recipe's schedule.  net must have been
 * finalized for at least recipe.batch images. */
int nn_train(nn_net *net, const nn_dataset *ds, const nn_train_opts *o,
             nn_train_result *res);

/* Accuracy of net (eval mode) on every image of ds; *loss (may be NULL) gets
 * the mean cross-entropy.  graft_cache as in nn_train_opts, or NULL. */
double nn_evaluate(nn_net *net, const nn_dataset *ds, const float *mean,
                   const float *std, const nn_half *graft_cache, double *loss);

/* ---- the graft ------------------------------------------------------------ */

typedef struct nn_graft_opts {
	const char *source;   /* how it is made: "target", "synthetic", "dataset" (all
	                         pretrained on the given data) or "random" (random
	                         weights, BN statistics calibrated on the data) */
	int steps, batch;     /* pretraining budget */
	float lr;
	uint64_t seed;
	nn_progress_fn progress; /* may be NULL */
	void *ctx;
} nn_graft_opts;

/* Makes the graft a's graft section describes (layers, channels; a's input
 * channels) from ds, and writes it to path as a graft file: its graft.{i}.*
 * tensors and metadata (format graft-module/1, source, layers, input, steps,
 * batch, lr, seed).  sha gets its identity, the SHA-256 of its tensors.  ds
 * may have any image size. */
int nn_graft_pretrain(const nn_arch *a, const nn_dataset *ds, const float *mean,
                      const float *std, const nn_graft_opts *o, const char *path,
                      char sha[65], char *err, size_t errlen);

/* Loads a graft file's tensors into net's graft; sha gets their identity,
 * which must equal expect_sha unless that is NULL or empty. */
int nn_graft_load(nn_net *net, const char *path, const char *expect_sha, char sha[65],
                  char *err, size_t errlen);

/* G(x) for every image of ds, in order: (ds->n, c, h, w) as nn_net_graft_shape
 * gives, in half precision (half float32's bytes; the accuracy it costs is
 * within run-to-run noise, issue 11's note), into out (ds->n x that many
 * values).  Feeding it to nn_train and nn_evaluate spares every candidate
 * the graft's forward pass. */
int nn_graft_features(nn_net *net, const nn_dataset *ds, const float *mean,
                      const float *std, nn_half *out);

/* The number of values nn_graft_features writes per image (0: no frozen
 * graft). */
size_t nn_graft_feature_size(const nn_net *net);

#endif
