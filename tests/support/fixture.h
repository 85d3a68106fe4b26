/*
 * fixture.h - reads the PyTorch reference fixtures that
 * tests/fixtures/make_fixtures.py writes, and compares float arrays against
 * them with a stated tolerance.
 *
 * File format (one file per layer kind, e.g. conv.bin; all little-endian):
 *
 *     magic    8 bytes  "GRFXLAY1"
 *     version  u32      1
 *     ncases   u32
 *     ncases times:
 *         name      u32 len, then len bytes (not NUL-terminated)
 *         nparams   u32, then nparams i32   (the case's integer parameters)
 *         ntensors  u32
 *         ntensors times:
 *             name  u32 len, then len bytes
 *             ndim  u32, then ndim u32 dims
 *             data  prod(dims) float32, row-major
 *
 * The script's docstring lists the parameters and tensors of each kind.  The
 * reader is strict: a wrong magic or version, a truncated file, trailing bytes
 * or an absurd count make fixture_open fail with a message, never crash.
 */
#ifndef GRAFT_TEST_FIXTURE_H
#define GRAFT_TEST_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#define FIXTURE_MAX_DIMS 8

typedef struct fixture_tensor {
	char *name;
	int ndim;
	size_t dims[FIXTURE_MAX_DIMS];
	size_t numel;
	float *data;  /* numel floats, row-major */
} fixture_tensor;

typedef struct fixture_case {
	char *name;
	int nparams;
	int32_t *params;
	int ntensors;
	fixture_tensor *tensors;
} fixture_case;

typedef struct fixture {
	char path[512];
	int ncases;
	fixture_case *cases;
} fixture;

/* Reads and validates a whole fixture file.  Returns NULL on any error with a
 * one-line message in err (naming the file and what is wrong). */
fixture *fixture_open(const char *path, char *err, size_t errlen);

/* Opens <dir>/<file>, dir being $GRAFT_TEST_DATA or else "tests/fixtures". */
fixture *fixture_load(const char *file, char *err, size_t errlen);

/* Frees a fixture; NULL is a no-op. */
void fixture_free(fixture *f);

/* The directory fixture_load reads from. */
const char *fixture_dir(void);

/* The i-th integer parameter of c, or INT32_MIN (with a message on stderr) when
 * the case has fewer parameters; tests check nparams first. */
int32_t fixture_case_param(const fixture_case *c, int i);

/* The tensor called name, or NULL. */
const fixture_tensor *fixture_find(const fixture_case *c, const char *name);

/* The data of the tensor called name if it exists and holds exactly numel
 * floats; else NULL with a message on stderr naming the case and tensor. */
const float *fixture_data(const fixture_case *c, const char *name, size_t numel);

/* Compares got with want element-wise: element i passes when
 * |got - want| <= atol + rtol * |want| (NaN never passes).  On a mismatch
 * prints what, the number of bad elements and the worst one (index, got, want)
 * to stderr and returns nonzero; returns 0 when all pass. */
int fixture_compare(const char *what, const float *got, const float *want, size_t n,
                    double atol, double rtol);

/* The same check, writing the mismatch line into msg instead of stderr (msg
 * is set to "" when everything passes), for tests that put it into their
 * assertion message. */
int fixture_compare_msg(const char *what, const float *got, const float *want, size_t n,
                        double atol, double rtol, char *msg, size_t msglen);

#endif
