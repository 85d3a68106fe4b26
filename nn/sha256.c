/*
 * sha256.c - SHA-256 of memory, of files and of sets of named tensors, the
 * last being the identity of a module's weights whatever file holds them.
 *
 * The hash itself is nettle's: a well-tested implementation is worth a
 * dependency, where a hand-written one would be a place for silent mistakes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nettle/sha2.h>
#include <nettle/version.h>

#include "nn/nn.h"

/* Tensor data is hashed as it lies in memory, which is the little-endian
 * encoding the identity is defined with only on a little-endian host. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "nn_tensors_sha256 hashes float bytes as stored; this host is "
               "not little-endian");

/* How much of a file is read at a time. */
#define SHA_CHUNK (64 * 1024)

/* Finishes the hash into hex.  Nettle 4 dropped the digest-size argument of
 * its *_digest functions. */
static void finish(struct sha256_ctx *ctx, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	uint8_t d[SHA256_DIGEST_SIZE];
#if NETTLE_VERSION_MAJOR >= 4
	sha256_digest(ctx, d);
#else
	sha256_digest(ctx, sizeof d, d);
#endif
	for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
		hex[2 * i] = digits[d[i] >> 4];
		hex[2 * i + 1] = digits[d[i] & 0xf];
	}
	hex[64] = '\0';
}

_Static_assert(sizeof(struct sha256_ctx) <= sizeof(((nn_sha256 *)0)->opaque),
               "nn_sha256 is too small for nettle's context");

void nn_sha256_init(nn_sha256 *h)
{
	sha256_init((struct sha256_ctx *)h->opaque);
}

void nn_sha256_update(nn_sha256 *h, const void *data, size_t len)
{
	if (len > 0)
		sha256_update((struct sha256_ctx *)h->opaque, len, data);
}

void nn_sha256_final(nn_sha256 *h, char hex[65])
{
	finish((struct sha256_ctx *)h->opaque, hex);
}

void nn_sha256_hex(const void *data, size_t len, char hex[65])
{
	struct sha256_ctx ctx;
	sha256_init(&ctx);
	if (len > 0)
		sha256_update(&ctx, len, data);
	finish(&ctx, hex);
}

/* Writes "path: message" into err, as the other file readers of nn do, and
 * returns rc.  Control characters become spaces so the message stays one line
 * whatever the path holds. */
__attribute__((format(printf, 5, 6)))
static int fail(const char *path, char *err, size_t errlen, int rc, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return rc;
	int n = snprintf(err, errlen, "%s: ", path);
	if (n >= 0 && (size_t)n < errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	for (char *p = err; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return rc;
}

int nn_sha256_file(const char *path, char hex[65], char *err, size_t errlen)
{
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (hex != NULL)
		hex[0] = '\0';
	if (path == NULL || hex == NULL)
		return fail(path ? path : "(null)", err, errlen, GRAFT_EINVAL,
		            "no path or no hex buffer");

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(path, err, errlen, GRAFT_EIO, "%s", strerror(errno));
	unsigned char *buf = malloc(SHA_CHUNK);
	if (buf == NULL) {
		close(fd);
		return fail(path, err, errlen, GRAFT_ENOMEM, "out of memory");
	}
	struct sha256_ctx ctx;
	sha256_init(&ctx);
	int rc = 0;
	for (;;) {
		ssize_t r = read(fd, buf, SHA_CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = fail(path, err, errlen, GRAFT_EIO, "%s", strerror(errno));
			break;
		}
		if (r == 0)
			break;
		sha256_update(&ctx, (size_t)r, buf);
	}
	free(buf);
	close(fd);
	if (rc == 0)
		finish(&ctx, hex);
	return rc;
}

/* Hashes v as 8 little-endian bytes. */
static void update_i64(struct sha256_ctx *ctx, int64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)((uint64_t)v >> (8 * i));
	sha256_update(ctx, sizeof b, b);
}

int nn_tensors_sha256(const nn_tensor *t, int n, char hex[65])
{
	if (hex == NULL)
		return GRAFT_EINVAL;
	hex[0] = '\0';
	if (n < 0 || (n > 0 && t == NULL))
		return GRAFT_EINVAL;
	/* Every tensor is checked before any is hashed, so a refusal is cheap
	 * and the encoding below can trust the shapes. */
	for (int i = 0; i < n; i++) {
		int64_t numel = nn_tensor_numel(&t[i]);
		if (memchr(t[i].name, '\0', NN_NAME_MAX) == NULL || numel < 0 ||
		    (numel > 0 && t[i].data == NULL))
			return GRAFT_EINVAL;
	}
	struct sha256_ctx ctx;
	sha256_init(&ctx);
	for (int i = 0; i < n; i++) {
		/* The NUL ends the name unambiguously: names cannot hold one. */
		sha256_update(&ctx, strlen(t[i].name) + 1, (const uint8_t *)t[i].name);
		update_i64(&ctx, t[i].ndim);
		for (int d = 0; d < t[i].ndim; d++)
			update_i64(&ctx, t[i].shape[d]);
		int64_t numel = nn_tensor_numel(&t[i]);
		if (numel > 0)
			sha256_update(&ctx, (size_t)numel * sizeof(float),
			              (const uint8_t *)t[i].data);
	}
	finish(&ctx, hex);
	return 0;
}
