/*
 * err_internal.h - the error-message helper the loaders and generators of
 * nn/ share.  Not part of nn's public interface.
 */
#ifndef GRAFT_NN_ERR_INTERNAL_H
#define GRAFT_NN_ERR_INTERNAL_H

#include <stddef.h>

/* Writes one line into err (if there is room for one) and returns rc, so that
 * error paths read "return nn__errf(...)". */
int nn__errf(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
