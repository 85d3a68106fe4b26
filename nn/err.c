/*
 * err.c - the error codes every part of graft returns.
 */
#include <stdarg.h>
#include <stdio.h>

#include "nn/err.h"

const char *graft_strerror(int rc)
{
	switch (rc) {
	case GRAFT_OK: return "success";
	case GRAFT_EINVAL: return "invalid argument";
	case GRAFT_ENOMEM: return "out of memory";
	case GRAFT_EIO: return "input/output error";
	case GRAFT_EFORMAT: return "corrupt or malformed file";
	case GRAFT_ESQL: return "database error";
	case GRAFT_ERANGE: return "value out of range";
	}
	return "unknown error";
}

int graft_errf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}
