/*
 * err.h - the error codes every part of graft returns, their names, and the
 * one helper that writes a message for a person beside a code.  Every
 * function that can fail returns 0 or one of these; where a person will
 * read why, it also takes a message buffer (err, errlen).
 */
#ifndef GRAFT_ERR_H
#define GRAFT_ERR_H

#include <stddef.h>

enum {
	GRAFT_OK = 0,
	GRAFT_EINVAL = -1,  /* a bad argument or a malformed value */
	GRAFT_ENOMEM = -2,  /* out of memory */
	GRAFT_EIO = -3,     /* a file could not be opened, read or written */
	GRAFT_EFORMAT = -4, /* a file's contents are corrupt, truncated or inconsistent */
	GRAFT_ESQL = -5,    /* the database failed */
	GRAFT_ERANGE = -6,  /* a value outside the allowed range */
};

/* Room for one message: a line naming the file or field and the problem. */
#define GRAFT_ERRLEN 512

/* A short English description of a GRAFT_E* code. */
const char *graft_strerror(int rc);

/* Writes one line into err (when err is not NULL and errlen > 0) and
 * returns rc, so that error paths read "return graft_errf(...)". */
int graft_errf(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
