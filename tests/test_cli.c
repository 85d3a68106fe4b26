/*
 * test_cli.c - the `graft` program run as a user runs it: the real bin/graft,
 * started with posix_spawn from the repository root (where `make test` runs),
 * its stdout and stderr captured to files and checked with its exit code.
 *
 * Each test writes a tiny dataset into its own temporary directory: 600
 * training and 200 test images of 1x12x12 in 3 classes, the class being which
 * horizontal third of the image is bright, with noise from a fixed-seed
 * generator.  A small net learns it in well under a second, so "test accuracy
 * above 0.8" is a real check of the whole pipeline (loading, normalization,
 * training, evaluation) and not a hope.  The training pair is plain IDX and
 * the test pair gzip'd, so both readers are in the path.
 *
 * A few labels are wrong on purpose: every 10th test image (20 of 200) and
 * every 20th of the last 100 training images, which are the validation split
 * (5 of 100).  A net that learned the task therefore scores at most 0.90 on
 * the test set and 0.95 on validation, and exactly 1 on the training images,
 * so a report that measured the wrong images shows.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "nn/nn.h"

#define GRAFT_BIN "bin/graft"
#define SIDE 12
#define CLASSES 3
#define NTRAIN 600
#define NTEST 200
#define MAX_ARGS 32

extern char **environ;

static char tmpdir[64];

/* The path of name inside the test's directory.  The buffers rotate, so a
 * test can hold that many paths at once; none holds more than a handful. */
static const char *tpath(const char *name)
{
	static char buf[32][512];
	static int next;
	char *p = buf[next++ % 32];

	snprintf(p, 512, "%s/%s", tmpdir, name);
	return p;
}

/* ---- the dataset and the architecture ------------------------------------ */

/* splitmix64: the test's own generator, so the data does not change when
 * nn's does. */
static uint64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static void put_be32(uint8_t *b, uint32_t v)
{
	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
}

static void write_bytes(const char *path, const void *data, size_t len, int gz)
{
	if (gz) {
		gzFile f = gzopen(path, "wb");

		cr_assert_not_null(f, "gzopen %s", path);
		cr_assert_eq(gzwrite(f, data, (unsigned)len), (int)len, "gzwrite %s", path);
		cr_assert_eq(gzclose(f), Z_OK, "gzclose %s", path);
	} else {
		FILE *f = fopen(path, "wb");

		cr_assert_not_null(f, "fopen %s", path);
		cr_assert_eq(fwrite(data, 1, len, f), len, "fwrite %s", path);
		cr_assert_eq(fclose(f), 0, "fclose %s", path);
	}
}

/* Writes dir/<part>-images-idx3-ubyte and dir/<part>-labels-idx1-ubyte (with
 * .gz when gz): n images whose label says which third of the rows is bright,
 * except images bad_from, bad_from + bad_every, ... whose label is wrong. */
static void write_part(const char *dir, const char *part, int n, int gz, uint64_t seed,
                       int bad_from, int bad_every)
{
	size_t img = (size_t)SIDE * SIDE, ilen = 16 + n * img, llen = 8 + (size_t)n;
	uint8_t *ib = malloc(ilen), *lb = malloc(llen);
	char path[600];

	cr_assert(ib && lb, "out of memory");
	put_be32(ib, 0x803);
	put_be32(ib + 4, (uint32_t)n);
	put_be32(ib + 8, SIDE);
	put_be32(ib + 12, SIDE);
	put_be32(lb, 0x801);
	put_be32(lb + 4, (uint32_t)n);
	for (int i = 0; i < n; i++) {
		int label = (int)(next_rand(&seed) % CLASSES);
		uint8_t *px = ib + 16 + i * img;

		if (i >= bad_from && (i - bad_from) % bad_every == 0)
			lb[8 + i] = (uint8_t)((label + 1) % CLASSES);
		else
			lb[8 + i] = (uint8_t)label;
		for (int r = 0; r < SIDE; r++)
			for (int c = 0; c < SIDE; c++) {
				int base = r / (SIDE / CLASSES) == label ? 180 : 40;
				int v = base + (int)(next_rand(&seed) % 81) - 40;

				px[r * SIDE + c] = (uint8_t)v;
			}
	}
	snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte%s", dir, part, gz ? ".gz" : "");
	write_bytes(path, ib, ilen, gz);
	snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte%s", dir, part, gz ? ".gz" : "");
	write_bytes(path, lb, llen, gz);
	free(ib);
	free(lb);
}

/* The architecture every training test uses: stem conv 8, two stride-2 conv3
 * blocks (12 -> 6 -> 3), linear head.  extra, if not NULL, is appended to the
 * stem's map on line 4 (to break the file on a known line). */
static const char arch_fmt[] =
	"format: graft-arch/1\n"
	"input: {channels: 1, height: %d, width: %d, normalize: {mean: 0.31, std: 0.3}}\n"
	"classes: 3\n"
	"stem: {op: conv, kernel: 3, channels: 8%s}\n"
	"blocks:\n"
	"  - {op: conv3, channels: 8, stride: 2}\n"
	"  - {op: conv3, channels: 16, stride: 2}\n"
	"head: {op: linear}\n"
	"train: {steps: 60, batch: 32, lr: 0.1, momentum: 0.9, nesterov: false,\n"
	"        weight_decay: 0.0005, schedule: cosine, seed: 1}\n";

static const char *write_arch(const char *name, int side, const char *extra)
{
	const char *path = tpath(name);
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "fopen %s", path);
	fprintf(f, arch_fmt, side, side, extra ? extra : "");
	cr_assert_eq(fclose(f), 0);
	return path;
}

static void setup(void)
{
	strcpy(tmpdir, "/tmp/graft-test-cli-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp failed");
	cr_assert_eq(access(GRAFT_BIN, X_OK), 0, "%s is missing: run the tests from the "
	             "repository root after `make bin/graft`", GRAFT_BIN);
	cr_assert_eq(mkdir(tpath("data"), 0700), 0);
	write_part(tpath("data"), "train", NTRAIN, 0, 11, NTRAIN - 100, 20);
	write_part(tpath("data"), "t10k", NTEST, 1, 22, 0, 10);
	write_arch("arch.yaml", SIDE, NULL);
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
	return remove(path);
}

static void teardown(void)
{
	if (tmpdir[0])
		nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(cli, .timeout = 300, .init = setup, .fini = teardown);

/* ---- running the program ------------------------------------------------ */

typedef struct run {
	int code;        /* the exit code */
	char *out, *err; /* everything written to stdout and stderr */
} run;

/* The whole file, NUL-terminated (so text can be searched); *len (if not
 * NULL) gets its size. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *b;
	long n;

	cr_assert_not_null(f, "fopen %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	cr_assert_geq(n, 0, "ftell %s", path);
	b = malloc((size_t)n + 1);
	cr_assert_not_null(b);
	cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n, "fread %s", path);
	b[n] = 0;
	fclose(f);
	if (len)
		*len = (size_t)n;
	return b;
}

/* Runs bin/graft with the NULL-terminated arguments, stdin from /dev/null,
 * and waits for it.  A crash fails the test: only an exit code is an answer. */
static run graft(const char *arg, ...)
{
	const char *argv[MAX_ARGS] = { GRAFT_BIN };
	static char out[512], err[512];
	posix_spawn_file_actions_t fa;
	va_list ap;
	int n = 1, status;
	pid_t pid;
	run r;

	snprintf(out, sizeof out, "%s/stdout.txt", tmpdir);
	snprintf(err, sizeof err, "%s/stderr.txt", tmpdir);
	va_start(ap, arg);
	for (const char *a = arg; a; a = va_arg(ap, const char *)) {
		cr_assert_lt(n, MAX_ARGS - 1, "too many arguments");
		argv[n++] = a;
	}
	va_end(ap);
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int rc = posix_spawn(&pid, GRAFT_BIN, &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert_eq(rc, 0, "posix_spawn %s: %s", GRAFT_BIN, strerror(rc));
	cr_assert_eq(waitpid(pid, &status, 0), pid, "waitpid");
	r.out = read_file(out, NULL);
	r.err = read_file(err, NULL);
	cr_assert(WIFEXITED(status), "graft died of signal %d; stderr:\n%s",
	          WIFSIGNALED(status) ? WTERMSIG(status) : 0, r.err);
	r.code = WEXITSTATUS(status);
	return r;
}

static void run_free(run *r)
{
	free(r->out);
	free(r->err);
}

static void expect_code(const run *r, int code)
{
	cr_assert_eq(r->code, code, "exit code %d, want %d\nstdout:\n%s\nstderr:\n%s",
	             r->code, code, r->out, r->err);
}

static void expect_in(const char *text, const char *what, const char *where)
{
	cr_assert_not_null(strstr(text, what), "%s lacks \"%s\":\n%s", where, what, text);
}

/* The number after key in text (e.g. "test accuracy "), which must be there. */
static double number_after(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	double v;

	cr_assert_not_null(p, "no \"%s\" in:\n%s", key, text);
	cr_assert_eq(sscanf(p + strlen(key), "%lf", &v), 1, "no number after \"%s\" in:\n%s",
	             key, text);
	return v;
}

static int exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* ---- training ------------------------------------------------------------ */

static void expect_tensor(const nn_weights *w, const char *name, int ndim,
                          int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
	const nn_tensor *t = nn_weights_find(w, name);
	int64_t want[4] = { d0, d1, d2, d3 };

	cr_assert_not_null(t, "the weights lack %s", name);
	cr_assert_eq(t->ndim, ndim, "%s has %d dims, want %d", name, t->ndim, ndim);
	for (int i = 0; i < ndim; i++)
		cr_assert_eq(t->shape[i], want[i], "%s: dim %d is %lld, want %lld", name, i,
		             (long long)t->shape[i], (long long)want[i]);
	for (int64_t i = 0; i < nn_tensor_numel(t); i++)
		cr_assert(isfinite(t->data[i]), "%s[%lld] = %g", name, (long long)i,
		          t->data[i]);
}

Test(cli, train_learns_and_writes_weights)
{
	const char *w = tpath("w.safetensors");
	run r = graft("train", tpath("arch.yaml"), "--data", tpath("data"), "--validation",
	              "100", "--out", w, "--threads", "1", NULL);

	expect_code(&r, 0);
	/* The recipe of the file, and the split: 600 = 500 train + 100 validation. */
	expect_in(r.out, "60 steps of 32", "stdout");
	expect_in(r.out, "500 training images", "stdout");
	double val = number_after(r.out, "validation accuracy ");
	double test = number_after(r.out, "test accuracy ");
	/* At most 0.95 and 0.90: see the wrong labels at the top. */
	cr_assert(val > 0.8 && val <= 0.95 + 1e-9, "validation accuracy %g, want > 0.8 and "
	          "<= 0.95:\n%s", val, r.out);
	cr_assert(test > 0.8 && test <= 0.90 + 1e-9, "test accuracy %g, want > 0.8 and "
	          "<= 0.90:\n%s", test, r.out);
	expect_in(strstr(r.out, "validation accuracy"), "100 images", "the validation line");
	expect_in(strstr(r.out, "test accuracy"), "200 images", "the test line");
	expect_in(r.out, "weights written to", "stdout");
	expect_in(strstr(r.out, "weights written to"), w, "the weights line");

	nn_weights wt;
	char err[GRAFT_ERRLEN] = "";
	int rc = nn_safetensors_read(w, &wt, err, sizeof err);
	cr_assert_eq(rc, 0, "reading %s: %s", w, err);
	expect_tensor(&wt, "stem.conv.weight", 4, 8, 1, 3, 3);
	expect_tensor(&wt, "stem.bn.weight", 1, 8, 0, 0, 0);
	expect_tensor(&wt, "stem.bn.running_var", 1, 8, 0, 0, 0);
	expect_tensor(&wt, "blocks.0.conv.weight", 4, 8, 8, 3, 3);
	expect_tensor(&wt, "blocks.1.conv.weight", 4, 16, 8, 3, 3);
	expect_tensor(&wt, "blocks.1.bn.running_mean", 1, 16, 0, 0, 0);
	expect_tensor(&wt, "head.weight", 2, 3, 16, 0, 0);
	expect_tensor(&wt, "head.bias", 1, 3, 0, 0, 0);
	/* stem, two blocks: a conv and 4 BN tensors each; head: weight and bias. */
	cr_assert_eq(wt.n, 17, "%d tensors in the weights, want 17", wt.n);
	nn_weights_free(&wt);
	run_free(&r);
}

/* Off a terminal, progress is one plain line per report, the last at M/M. */
Test(cli, progress_lines_off_a_terminal)
{
	run r = graft("train", tpath("arch.yaml"), "--data", tpath("data"), "--steps", "250",
	              "--out", tpath("w.safetensors"), "--threads", "1", NULL);
	int lines = 0, last = 0, n, m;
	double loss;

	expect_code(&r, 0);
	cr_assert_null(strchr(r.err, '\r'), "carriage return in stderr:\n%s", r.err);
	for (const char *p = r.err; (p = strstr(p, "step ")) != NULL; p++) {
		cr_assert(p == r.err || p[-1] == '\n', "\"step\" not at a line start:\n%s",
		          r.err);
		cr_assert_eq(sscanf(p, "step %d/%d loss %lf", &n, &m, &loss), 3,
		             "bad progress line in:\n%s", r.err);
		cr_assert_eq(m, 250, "progress of %d steps, want 250:\n%s", m, r.err);
		cr_assert(n > last && n <= m, "step %d after %d:\n%s", n, last, r.err);
		cr_assert(isfinite(loss) && loss >= 0, "loss %g:\n%s", loss, r.err);
		last = n;
		lines++;
	}
	cr_assert_geq(lines, 2, "%d progress lines for 250 steps:\n%s", lines, r.err);
	cr_assert_eq(last, 250, "the last progress line is step %d, want 250:\n%s", last,
	             r.err);
	run_free(&r);
}

Test(cli, steps_flag_overrides_recipe)
{
	run r = graft("train", tpath("arch.yaml"), "--data", tpath("data"), "--steps", "7",
	              "--out", tpath("w.safetensors"), "--threads", "1", NULL);

	expect_code(&r, 0);
	expect_in(r.out, "7 steps of 32", "stdout");
	expect_in(r.err, "step 7/7 ", "stderr");
	cr_assert_null(strstr(r.err, "/60"), "the recipe's 60 steps ran:\n%s", r.err);
	run_free(&r);
}

Test(cli, batch_flag_overrides_recipe)
{
	run r = graft("train", tpath("arch.yaml"), "--data", tpath("data"), "--batch", "16",
	              "--steps", "5", "--out", tpath("w.safetensors"), "--threads", "1",
	              NULL);

	expect_code(&r, 0);
	expect_in(r.out, "5 steps of 16,", "stdout");
	expect_in(r.err, "step 5/5 ", "stderr");
	run_free(&r);
}

static void train_seeded(const char *seed, const char *out)
{
	run r = graft("train", tpath("arch.yaml"), "--data", tpath("data"), "--seed", seed,
	              "--steps", "20", "--threads", "2", "--out", out, NULL);

	expect_code(&r, 0);
	expect_in(r.out, "2 threads", "stdout");
	run_free(&r);
}

Test(cli, same_seed_same_weights)
{
	const char *a = tpath("a.safetensors"), *b = tpath("b.safetensors");
	const char *c = tpath("c.safetensors");
	size_t na, nb, nc;

	train_seeded("5", a);
	train_seeded("5", b);
	train_seeded("6", c);
	char *da = read_file(a, &na), *db = read_file(b, &nb), *dc = read_file(c, &nc);
	cr_assert_gt(na, 0, "%s is empty", a);
	cr_assert_eq(na, nb, "same seed: %zu and %zu bytes", na, nb);
	cr_assert(memcmp(da, db, na) == 0, "same seed and threads: the files differ");
	cr_assert_eq(na, nc, "another seed changed the file size: %zu and %zu", na, nc);
	cr_assert(memcmp(da, dc, na) != 0, "--seed 6 gave the same weights as --seed 5");
	free(da);
	free(db);
	free(dc);
}

/* ---- usage errors (exit 2) ---------------------------------------------- */

Test(cli, no_arguments_is_usage_error)
{
	run r = graft(NULL);

	expect_code(&r, 2);
	expect_in(r.err, "usage: graft", "stderr");
	expect_in(r.err, "train", "stderr");
	cr_assert_eq(r.out[0], 0, "stdout is not empty:\n%s", r.out);
	run_free(&r);
}

Test(cli, unknown_command_is_usage_error)
{
	run r = graft("frobnicate", NULL);

	expect_code(&r, 2);
	expect_in(r.err, "frobnicate", "stderr");
	expect_in(r.err, "usage: graft", "stderr");
	run_free(&r);
}

Test(cli, train_without_file_is_usage_error)
{
	run r = graft("train", NULL);

	expect_code(&r, 2);
	expect_in(r.err, "ARCH.yaml", "stderr");
	expect_in(r.err, "usage: graft train", "stderr");
	run_free(&r);
}

Test(cli, bad_steps_value_is_usage_error)
{
	run r = graft("train", tpath("arch.yaml"), "--data", tpath("data"), "--steps", "abc",
	              "--out", tpath("w.safetensors"), NULL);

	expect_code(&r, 2);
	expect_in(r.err, "--steps", "stderr");
	expect_in(r.err, "abc", "stderr");
	cr_assert_null(strstr(r.out, "training"), "it trained anyway:\n%s", r.out);
	cr_assert(!exists(tpath("w.safetensors")), "weights were written");
	run_free(&r);
}

/* ---- failures (exit 1) --------------------------------------------------- */

Test(cli, missing_arch_file)
{
	const char *arch = tpath("no-such-arch.yaml");
	run r = graft("train", arch, "--data", tpath("data"), NULL);

	expect_code(&r, 1);
	expect_in(r.err, arch, "stderr");
	run_free(&r);
}

Test(cli, broken_arch_names_the_line)
{
	/* The unknown key is on line 4, the stem's. */
	const char *arch = write_arch("broken.yaml", SIDE, ", dilation: 2");
	run r = graft("train", arch, "--data", tpath("data"), "--out",
	              tpath("w.safetensors"), NULL);

	expect_code(&r, 1);
	expect_in(r.err, "line 4", "stderr");
	expect_in(r.err, "dilation", "stderr");
	expect_in(r.err, arch, "stderr");
	cr_assert(!exists(tpath("w.safetensors")), "weights were written");
	run_free(&r);
}

Test(cli, empty_data_dir)
{
	cr_assert_eq(mkdir(tpath("empty"), 0700), 0);
	run r = graft("train", tpath("arch.yaml"), "--data", tpath("empty"), "--out",
	              tpath("w.safetensors"), NULL);

	expect_code(&r, 1);
	expect_in(r.err, "no dataset found", "stderr");
	expect_in(r.err, tpath("empty"), "stderr");
	cr_assert(!exists(tpath("w.safetensors")), "weights were written");
	run_free(&r);
}

Test(cli, truncated_images_file)
{
	const char *img = tpath("data/train-images-idx3-ubyte");

	cr_assert_eq(truncate(img, 16 + 100 * SIDE * SIDE + 7), 0, "truncate %s", img);
	run r = graft("train", tpath("arch.yaml"), "--data", tpath("data"), "--out",
	              tpath("w.safetensors"), NULL);

	expect_code(&r, 1);
	expect_in(r.err, "truncated", "stderr");
	expect_in(r.err, "train-images-idx3-ubyte", "stderr");
	cr_assert(!exists(tpath("w.safetensors")), "weights were written");
	run_free(&r);
}

Test(cli, input_shape_mismatch)
{
	const char *arch = write_arch("arch28.yaml", 28, NULL);
	run r = graft("train", arch, "--data", tpath("data"), "--out", tpath("w.safetensors"),
	              NULL);

	expect_code(&r, 1);
	expect_in(r.err, "1x12x12", "stderr");
	expect_in(r.err, "1x28x28", "stderr");
	cr_assert(!exists(tpath("w.safetensors")), "weights were written");
	run_free(&r);
}

/* ---- help (exit 0, on stdout) -------------------------------------------- */

Test(cli, help)
{
	run r = graft("--help", NULL);

	expect_code(&r, 0);
	expect_in(r.out, "usage: graft", "stdout");
	expect_in(r.out, "train", "stdout");
	cr_assert_eq(r.err[0], 0, "stderr is not empty:\n%s", r.err);
	run_free(&r);
}

Test(cli, train_help)
{
	run r = graft("train", "--help", NULL);

	expect_code(&r, 0);
	expect_in(r.out, "usage: graft train", "stdout");
	expect_in(r.out, "--steps", "stdout");
	expect_in(r.out, "--data", "stdout");
	cr_assert_eq(r.err[0], 0, "stderr is not empty:\n%s", r.err);
	run_free(&r);
}
