/*
 * err.c - the error codes every part of graft returns.
 */
#include "nn/nn.h"

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
