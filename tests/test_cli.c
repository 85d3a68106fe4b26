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
#include <ctype.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
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
#include "search/search.h"
#include "tests/support/idx_write.h"
#include "tests/support/image_write.h"

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
	idx_write_part(tpath("data"), "train", NTRAIN, SIDE, CLASSES, 0, 11, NTRAIN - 100, 20);
	idx_write_part(tpath("data"), "t10k", NTEST, SIDE, CLASSES, 1, 22, 0, 10);
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

/* Writes an IDX pair (plain) of the images e picks out of src, in e's order. */
static void write_idx_in_order(const char *dir, const char *part, const nn_dataset *src,
                               const image_expect *e, int n)
{
	char path[600];
	uint8_t head[16] = { 0, 0, 8, 3 }, lhead[8] = { 0, 0, 8, 1 };

	for (int i = 0; i < 4; i++) {
		head[4 + i] = lhead[4 + i] = (uint8_t)((unsigned)n >> (24 - 8 * i));
		head[8 + i] = head[12 + i] = (uint8_t)(28u >> (24 - 8 * i));
	}
	snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, part);
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	fwrite(head, 1, 16, f);
	for (int i = 0; i < n; i++)
		fwrite(src->pixels + (size_t)e[i].index * 784, 1, 784, f);
	fclose(f);
	snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, part);
	f = fopen(path, "wb");
	cr_assert_not_null(f);
	fwrite(lhead, 1, 8, f);
	for (int i = 0; i < n; i++)
		fputc(e[i].label, f);
	fclose(f);
}

/* An image folder trains exactly as the IDX files of the same images in
 * the same order: same accuracies, same weights, bit for bit. */
Test(cli, an_image_folder_trains_as_its_idx_files)
{
	static image_expect e[2][400];
	char err[GRAFT_ERRLEN], sha[2][65];
	nn_dataset fm[2];

	cr_assert_eq(setenv("GRAFT_DATA_DIR", tpath("graftd-data"), 1), 0);
	cr_assert_eq(mkdir(tpath("folder"), 0700), 0);
	cr_assert_eq(mkdir(tpath("fidx"), 0700), 0);
	cr_assert_eq(image_write_fashion(tpath("folder/train"), 0, 30, "png"), 300);
	cr_assert_eq(image_write_fashion(tpath("folder/test"), 1, 10, "png"), 100);
	for (int part = 0; part < 2; part++) {
		cr_assert_eq(nn_dataset_load_dir(&fm[part], "/usr/share/datasets/fashion-mnist", part,
		                                 err, sizeof err), 0, "%s", err);
		int n = image_fashion_expected(&fm[part], part ? 10 : 30, "png", e[part]);
		write_idx_in_order(tpath("fidx"), part ? "t10k" : "train", &fm[part], e[part], n);
		nn_dataset_free(&fm[part]);
	}
	FILE *f = fopen(tpath("fm.yaml"), "w");
	fputs("format: graft-arch/1\n"
	      "input: {channels: 1, height: 28, width: 28, normalize: {mean: 0.29, std: 0.35}}\n"
	      "classes: 10\n"
	      "stem: {op: conv, kernel: 3, channels: 8}\n"
	      "blocks: [{op: conv3, channels: 16, stride: 2}, {op: conv3, channels: 16, stride: 2}]\n"
	      "head: {op: linear}\n"
	      "train: {steps: 40, batch: 32, lr: 0.1, momentum: 0.9, nesterov: false,\n"
	      "        weight_decay: 0.0005, schedule: cosine, seed: 3}\n", f);
	fclose(f);
	const char *data[2] = { tpath("folder"), tpath("fidx") };
	const char *out[2] = { tpath("folder.safetensors"), tpath("idx.safetensors") };
	double val[2], test[2];
	for (int i = 0; i < 2; i++) {
		run r = graft("train", tpath("fm.yaml"), "--data", data[i], "--validation", "50",
		              "--out", out[i], "--threads", "1", NULL);
		expect_code(&r, 0);
		if (i == 0)
			expect_in(r.out, "300 training and 100 test images of 10 classes, decoded", "stdout");
		val[i] = number_after(r.out, "validation accuracy ");
		test[i] = number_after(r.out, "test accuracy ");
		cr_assert_eq(nn_sha256_file(out[i], sha[i], err, sizeof err), 0, "%s", err);
		run_free(&r);
	}
	cr_assert_eq(val[0], val[1]);
	cr_assert_eq(test[0], test[1]);
	cr_assert_str_eq(sha[0], sha[1], "the folder's weights differ from the IDX files'");
	/* The second time, the decoded file is found again. */
	run r = graft("train", tpath("fm.yaml"), "--data", data[0], "--steps", "1", "--out",
	              out[0], "--threads", "1", NULL);
	expect_code(&r, 0);
	expect_in(r.out, "decoded before", "stdout");
	run_free(&r);
	/* A bad image stops it with the file named. */
	f = fopen(tpath("folder/train/3_dress/broken.png"), "w");
	fputs("not a png", f);
	fclose(f);
	r = graft("train", tpath("fm.yaml"), "--data", data[0], "--out", out[0], NULL);
	expect_code(&r, 1);
	expect_in(r.err, "folder/train/3_dress/broken.png: neither a PNG nor a JPEG", "stderr");
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

/* ---- graft pretrain ------------------------------------------------------- */

/* Graft files are kept in a cache: each test keeps its own, in its own
 * directory, so that no test reads what another made (and $HOME is left
 * alone).  Set in the test's process, it is in every child's environment. */
static void private_cache(void)
{
	cr_assert_eq(setenv("GRAFT_CACHE_DIR", tpath("cache"), 1), 0);
}

/* The identity on a run's "sha256 <64 lowercase hex>" line. */
static void printed_sha(const char *out, char sha[65])
{
	const char *p = out;

	for (;; p++) {
		p = strstr(p, "sha256 ");
		cr_assert_not_null(p, "no \"sha256 \" line in:\n%s", out);
		if (p == out || p[-1] == '\n')
			break;
	}
	p += 7;
	for (int i = 0; i < 64; i++)
		cr_assert(isxdigit((unsigned char)p[i]) && !isupper((unsigned char)p[i]),
		          "the sha256 line does not hold 64 lowercase hex digits:\n%s", out);
	cr_assert(p[64] == '\n', "the sha256 line goes on after 64 digits:\n%s", out);
	memcpy(sha, p, 64);
	sha[64] = 0;
}

/* graft pretrain --source target on the test's data, 20 steps, 4 channels. */
static run pretrain_target(const char *out, const char *seed)
{
	return graft("pretrain", "--source", "target", "--data", tpath("data"), "--steps",
	             "20", "--validation", "100", "--channels", "4", "--seed", seed,
	             "--threads", "1", "--out", out, NULL);
}

/* Pretrains a graft into out and returns its printed identity in sha. */
static void make_graft(const char *out, const char *seed, char sha[65])
{
	run r = pretrain_target(out, seed);

	expect_code(&r, 0);
	printed_sha(r.out, sha);
	run_free(&r);
}

/* The identity of a graft file's tensors, computed here. */
static void file_identity(const char *path, char sha[65])
{
	nn_weights w;
	char err[GRAFT_ERRLEN] = "";
	int rc = nn_safetensors_read(path, &w, err, sizeof err);

	cr_assert_eq(rc, 0, "reading %s: %s", path, err);
	cr_assert_eq(nn_tensors_sha256(w.t, w.n, sha), 0);
	nn_weights_free(&w);
}

Test(cli, pretrain_writes_a_graft_then_reuses_it)
{
	char g[512], g2[512], cache[512], sha[65], sha2[65], hex[65];

	private_cache();
	snprintf(g, sizeof g, "%s", tpath("G.safetensors"));
	snprintf(g2, sizeof g2, "%s", tpath("G2.safetensors"));
	snprintf(cache, sizeof cache, "%s/grafts/", tpath("cache"));
	run r = graft("pretrain", "--source", "target", "--data", tpath("data"), "--steps",
	              "20", "--validation", "100", "--channels", "4", "--threads", "1",
	              "--out", g, NULL);

	expect_code(&r, 0);
	printed_sha(r.out, sha);
	cr_assert(exists(g), "%s was not written:\n%s", g, r.out);
	expect_in(r.out, "pretrained", "stdout");
	cr_assert_null(strstr(r.out, "reused"), "an empty cache reused a graft:\n%s", r.out);
	expect_in(r.err, "pretrain step 20/20", "stderr");
	/* Made in the cache of GRAFT_CACHE_DIR, then copied out. */
	expect_in(r.out, cache, "stdout");
	expect_in(r.out, g, "stdout");
	file_identity(g, hex);
	cr_assert_str_eq(hex, sha, "the file's tensors hash to %s, the run printed %s", hex,
	                 sha);
	nn_weights w;
	char err[GRAFT_ERRLEN] = "";
	cr_assert_eq(nn_safetensors_read(g, &w, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(nn_weights_meta(&w, "format"), "graft-module/1");
	cr_assert_str_eq(nn_weights_meta(&w, "source"), "target");
	cr_assert_str_eq(nn_weights_meta(&w, "layers"), "3x4,3x4");
	cr_assert_str_eq(nn_weights_meta(&w, "steps"), "20");
	cr_assert_eq(w.n, 10, "%d tensors in the graft file, want 10", w.n);
	expect_tensor(&w, "graft.0.conv.weight", 4, 4, 1, 3, 3);
	expect_tensor(&w, "graft.1.conv.weight", 4, 4, 4, 3, 3);
	expect_tensor(&w, "graft.1.bn.running_var", 1, 4, 0, 0, 0);
	nn_weights_free(&w);
	run_free(&r);

	/* The same command again: from the cache, not pretrained. */
	r = graft("pretrain", "--source", "target", "--data", tpath("data"), "--steps", "20",
	          "--validation", "100", "--channels", "4", "--threads", "1", "--out", g2,
	          NULL);
	expect_code(&r, 0);
	expect_in(r.out, "reused from the cache", "stdout");
	cr_assert_null(strstr(r.err, "pretrain step"), "it pretrained again:\n%s", r.err);
	printed_sha(r.out, sha2);
	cr_assert_str_eq(sha2, sha, "the reused graft has another sha");
	size_t n1, n2;
	char *d1 = read_file(g, &n1), *d2 = read_file(g2, &n2);
	cr_assert(n1 == n2 && memcmp(d1, d2, n1) == 0, "the two copies differ");
	free(d1);
	free(d2);
	run_free(&r);
}

Test(cli, pretrain_bad_arguments)
{
	private_cache();
	run r = graft("pretrain", "--source", "imagenet", "--data", tpath("data"),
	              "--validation", "100", "--out", tpath("G.safetensors"), NULL);
	/* Parsed fine, refused by the source list: a failure with the choices. */
	cr_assert(r.code == 1 || r.code == 2, "exit code %d:\n%s", r.code, r.err);
	expect_in(r.err, "imagenet", "stderr");
	expect_in(r.err, "synthetic", "stderr");
	cr_assert(!exists(tpath("G.safetensors")), "a graft was written");
	run_free(&r);

	r = graft("pretrain", "--source", "target", "--data", tpath("data"), NULL);
	expect_code(&r, 2);
	expect_in(r.err, "--out", "stderr");
	run_free(&r);

	r = graft("pretrain", "--source", "target", "--kernel", "4", "--out",
	          tpath("G.safetensors"), NULL);
	expect_code(&r, 2);
	expect_in(r.err, "odd", "stderr");
	run_free(&r);
}

/* The universal graft ships with graft: pretrain hands out the grey one for
 * grey data without training anything, and --input (the images a
 * generated source is for, instead of --data) is checked. */
Test(cli, pretrain_universal_hands_out_the_shipped_graft)
{
	char g[512], sha[65], want[65];

	private_cache();
	snprintf(g, sizeof g, "%s", tpath("U.safetensors"));
	run r = graft("pretrain", "--source", "universal", "--data", tpath("data"),
	              "--validation", "100", "--threads", "1", "--out", g, NULL);
	expect_code(&r, 0);
	expect_in(r.out, "graft universal (shipped with graft, 2 layers of 3x3, 16 channels)",
	          "stdout");
	cr_assert_null(strstr(r.err, "pretrain step"), "it pretrained:\n%s", r.err);
	printed_sha(r.out, sha);
	file_identity(SEARCH_UNIVERSAL_GREY, want);
	cr_assert_str_eq(sha, want, "not the shipped grey graft");
	file_identity(g, want);
	cr_assert_str_eq(sha, want);
	run_free(&r);

	r = graft("pretrain", "--source", "universal", "--channels", "8", "--data",
	          tpath("data"), "--validation", "100", "--out", g, NULL);
	expect_code(&r, 1);
	expect_in(r.err, "the universal graft is 3x16,3x16", "stderr");
	run_free(&r);
	r = graft("pretrain", "--source", "synthetic", "--input", "2x28x28", "--out", g, NULL);
	expect_code(&r, 2);
	expect_in(r.err, "--input '2x28x28': expected CxHxW, C 1 or 3", "stderr");
	run_free(&r);
	r = graft("pretrain", "--source", "target", "--input", "3x28x28", "--out", g, NULL);
	expect_code(&r, 2);
	expect_in(r.err, "--input is for the sources that make their own images", "stderr");
	run_free(&r);
}

/* ---- graft ablation -------------------------------------------------------- */

static const char *const ab_sources[4] = { "none", "random", "synthetic", "target" };

/* The ablation of the brief: 2 candidates, 4 sources, 5 steps; extra (may be
 * NULL) is one more flag. */
static run ablation(const char *out, const char *extra)
{
	return graft("ablation", "--data", tpath("data"), "--candidates", "2", "--steps", "5",
	             "--graft-steps", "10", "--graft-channels", "4", "--validation", "100",
	             "--batch", "16", "--max-mflops", "5", "--sources",
	             "none,random,synthetic,target", "--threads", "1", "--out", out, extra,
	             NULL);
}

/* One row of the ablation's output file. */
typedef struct ab_row {
	int candidate, steps;
	char source[32];
	double acc, loss;
	long long params, flops;
} ab_row;

static int source_index(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, ab_sources[i]))
			return i;
	return -1;
}

/* Checks 8 rows (each candidate under each source once, 5 steps, accuracy in
 * [0, 1] on 100 images) and files them by [candidate][source]. */
static void check_rows(const ab_row *rows, int n, ab_row byc[2][4])
{
	int seen[2][4] = { { 0 } };

	cr_assert_eq(n, 8, "%d rows, want 2 candidates x 4 sources", n);
	for (int i = 0; i < n; i++) {
		const ab_row *r = &rows[i];
		int s = source_index(r->source);
		cr_assert(r->candidate == 0 || r->candidate == 1, "row %d: candidate %d", i,
		          r->candidate);
		cr_assert_geq(s, 0, "row %d: source '%s'", i, r->source);
		cr_assert_eq(seen[r->candidate][s]++, 0, "candidate %d under %s twice",
		             r->candidate, r->source);
		cr_assert_eq(r->steps, 5, "row %d: %d steps", i, r->steps);
		cr_assert(r->acc >= 0 && r->acc <= 1, "row %d: accuracy %g", i, r->acc);
		cr_assert(fabs(r->acc * 100 - round(r->acc * 100)) < 1e-6, "row %d: accuracy %g "
		          "is not a count of 100 validation images", i, r->acc);
		cr_assert(isfinite(r->loss) && r->loss > 0, "row %d: loss %g", i, r->loss);
		byc[r->candidate][s] = *r;
	}
	/* Every graft adds the same layers to a candidate; none adds nothing. */
	for (int c = 0; c < 2; c++)
		for (int s = 1; s < 4; s++) {
			cr_assert_eq(byc[c][s].params, byc[c][1].params, "candidate %d: %s and "
			             "random have different parameter counts", c, ab_sources[s]);
			cr_assert_gt(byc[c][s].params, byc[c][0].params, "candidate %d: the graft "
			             "added no parameters", c);
			cr_assert_gt(byc[c][s].flops, byc[c][0].flops);
			cr_assert_leq(byc[c][s].flops, 5000000, "candidate %d costs %lld FLOPs, over "
			              "--max-mflops 5", c, byc[c][s].flops);
		}
}

static int read_csv(const char *path, ab_row *rows, int max)
{
	char *text = read_file(path, NULL), *save = NULL;
	int n = 0;
	char *line = strtok_r(text, "\n", &save);

	cr_assert_not_null(line, "%s is empty", path);
	cr_assert_str_eq(line, "candidate,source,steps,val_accuracy,val_loss,params,flops,"
	                 "cpu_s,wall_s", "the CSV header");
	while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
		ab_row *r = &rows[n];
		double cpu, wall;
		cr_assert_lt(n, max, "too many rows in %s", path);
		cr_assert_eq(sscanf(line, "%d,%31[^,],%d,%lf,%lf,%lld,%lld,%lf,%lf", &r->candidate,
		                    r->source, &r->steps, &r->acc, &r->loss, &r->params,
		                    &r->flops, &cpu, &wall), 9, "bad CSV row: %s", line);
		cr_assert(cpu >= 0 && wall >= 0, "bad times: %s", line);
		n++;
	}
	free(text);
	return n;
}

static int read_jsonl(const char *path, ab_row *rows, int max)
{
	char *text = read_file(path, NULL), *save = NULL;
	int n = 0;

	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_error_t e;
		json_t *j = json_loads(line, 0, &e);
		ab_row *r = &rows[n];

		cr_assert_lt(n, max, "too many rows in %s", path);
		cr_assert_not_null(j, "line %d of %s is not JSON (%s): %s", n + 1, path, e.text,
		                   line);
		cr_assert(json_is_object(j), "line %d is not an object: %s", n + 1, line);
		json_t *c = json_object_get(j, "candidate"), *s = json_object_get(j, "source");
		json_t *st = json_object_get(j, "steps"), *a = json_object_get(j, "val_accuracy");
		json_t *l = json_object_get(j, "val_loss"), *p = json_object_get(j, "params");
		json_t *f = json_object_get(j, "flops");
		cr_assert(json_is_integer(c), "candidate is missing or not an integer: %s", line);
		cr_assert(json_is_string(s), "source is missing or not a string: %s", line);
		cr_assert(json_is_integer(st), "steps is missing or not an integer: %s", line);
		cr_assert(json_is_number(a), "val_accuracy is missing or not a number: %s", line);
		cr_assert(json_is_number(l) && json_is_integer(p) && json_is_integer(f),
		          "val_loss, params or flops missing: %s", line);
		r->candidate = (int)json_integer_value(c);
		snprintf(r->source, sizeof r->source, "%s", json_string_value(s));
		r->steps = (int)json_integer_value(st);
		r->acc = json_number_value(a);
		r->loss = json_number_value(l);
		r->params = json_integer_value(p);
		r->flops = json_integer_value(f);
		json_decref(j);
		n++;
	}
	free(text);
	return n;
}

/* The table: after the "source" header, one line per source, in the order
 * given, each with its mean accuracy; then the footnote. */
static void check_table(const char *out)
{
	const char *p = strstr(out, "\nsource ");

	cr_assert_not_null(p, "no table header in:\n%s", out);
	p = strchr(p + 1, '\n');
	cr_assert_not_null(p);
	p++;
	for (int i = 0; i < 4; i++) {
		char name[32];
		double mean;
		cr_assert_eq(sscanf(p, "%31s %lf", name, &mean), 2, "bad table line %d in:\n%s",
		             i, out);
		cr_assert_str_eq(name, ab_sources[i], "table line %d is for %s:\n%s", i, name,
		                 out);
		cr_assert(mean >= 0 && mean <= 1, "%s: mean accuracy %g", name, mean);
		/* Gains are over none, so none has no interval and the others one. */
		const char *eol = strchr(p, '\n');
		cr_assert_not_null(eol);
		const char *br = memchr(p, '[', (size_t)(eol - p));
		cr_assert(i == 0 ? br == NULL : br != NULL, "table line %d: %.*s", i,
		          (int)(eol - p), p);
		p = eol + 1;
	}
	cr_assert(*p == '(', "a fifth table line: %s", p);
	for (int i = 0; i < 4; i++) {
		char key[64];
		int n = 0;
		snprintf(key, sizeof key, "\n%s ", ab_sources[i]);
		for (const char *q = out; (q = strstr(q, key)) != NULL; q++)
			n++;
		cr_assert_eq(n, 1, "%d table lines for %s:\n%s", n, ab_sources[i], out);
	}
}

Test(cli, ablation_rows_csv_and_jsonl)
{
	char csv[512], jsonl[512], nocache[512];
	ab_row rows[16], crow[2][4], jrow[2][4], nrow[2][4];

	private_cache();
	snprintf(csv, sizeof csv, "%s", tpath("rows.csv"));
	snprintf(jsonl, sizeof jsonl, "%s", tpath("rows.jsonl"));
	snprintf(nocache, sizeof nocache, "%s", tpath("nocache.csv"));

	run r = ablation(csv, NULL);
	expect_code(&r, 0);
	check_table(r.out);
	expect_in(r.out, "rows written to", "stdout");
	for (int s = 1; s < 4; s++) {
		char made[64];
		snprintf(made, sizeof made, "graft %s: made", ab_sources[s]);
		expect_in(r.out, made, "stdout");
	}
	check_rows(rows, read_csv(csv, rows, 16), crow);
	run_free(&r);

	/* JSON lines; the grafts now come from the cache, and the same seeds give
	 * the same numbers. */
	r = ablation(jsonl, NULL);
	expect_code(&r, 0);
	check_table(r.out);
	for (int s = 1; s < 4; s++) {
		char reused[64];
		snprintf(reused, sizeof reused, "graft %s: reused from the cache", ab_sources[s]);
		expect_in(r.out, reused, "stdout");
	}
	check_rows(rows, read_jsonl(jsonl, rows, 16), jrow);
	for (int c = 0; c < 2; c++)
		for (int s = 0; s < 4; s++)
			cr_assert(fabs(crow[c][s].acc - jrow[c][s].acc) < 1e-6 &&
			          fabs(crow[c][s].loss - jrow[c][s].loss) < 1e-6 &&
			          crow[c][s].params == jrow[c][s].params, "candidate %d under %s: "
			          "accuracy %.6f / %.6f, loss %.6f / %.6f in two identical runs", c,
			          ab_sources[s], crow[c][s].acc, jrow[c][s].acc, crow[c][s].loss,
			          jrow[c][s].loss);
	run_free(&r);

	/* The feature cache is half precision: computing the graft every step
	 * changes the numbers by its rounding only. */
	r = ablation(nocache, "--no-feature-cache");
	expect_code(&r, 0);
	expect_in(r.out, "computed every step", "stdout");
	check_rows(rows, read_csv(nocache, rows, 16), nrow);
	for (int c = 0; c < 2; c++)
		for (int s = 0; s < 4; s++)
			cr_assert(fabs(crow[c][s].acc - nrow[c][s].acc) <= 0.02 &&
			          fabs(crow[c][s].loss - nrow[c][s].loss) <= 1e-2 * nrow[c][s].loss,
			          "candidate %d under %s: accuracy %.6f / %.6f, loss %.6f / %.6f with "
			          "and without the feature cache", c, ab_sources[s], crow[c][s].acc,
			          nrow[c][s].acc, crow[c][s].loss, nrow[c][s].loss);
	run_free(&r);
}

/* Without --long the footnote names the short budget alone. */
Test(cli, ablation_footnote_without_long_run)
{
	private_cache();
	run r = graft("ablation", "--data", tpath("data"), "--candidates", "2", "--steps", "5",
	              "--validation", "100", "--batch", "16", "--max-mflops", "5",
	              "--sources", "none", "--threads", "1", NULL);

	expect_code(&r, 0);
	expect_in(r.out, "(short = 5 steps;", "stdout");
	run_free(&r);
}

Test(cli, ablation_bad_arguments)
{
	private_cache();
	run r = graft("ablation", "--data", tpath("data"), "--sources", "none,imagenet",
	              "--out", tpath("rows.csv"), NULL);
	expect_code(&r, 2);
	expect_in(r.err, "unknown source", "stderr");
	expect_in(r.err, "imagenet", "stderr");
	cr_assert_eq(r.out[0], 0, "it started anyway:\n%s", r.out);
	run_free(&r);

	r = graft("ablation", "--data", tpath("data"), "--sources", "none,dataset", "--out",
	          tpath("rows.csv"), NULL);
	expect_code(&r, 2);
	expect_in(r.err, "--graft-data", "stderr");
	cr_assert_eq(r.out[0], 0, "it started anyway:\n%s", r.out);
	run_free(&r);

	r = graft("ablation", "--data", tpath("data"), "--candidates", "1", "--out",
	          tpath("rows.csv"), NULL);
	expect_code(&r, 2);
	expect_in(r.err, "--candidates", "stderr");
	expect_in(r.err, "'1'", "stderr");
	cr_assert_eq(r.out[0], 0, "it started anyway:\n%s", r.out);
	run_free(&r);

	r = graft("ablation", "--data", tpath("data"), "--sources", "", "--out",
	          tpath("rows.csv"), NULL);
	expect_code(&r, 2);
	expect_in(r.err, "--sources", "stderr");
	run_free(&r);
	cr_assert(!exists(tpath("rows.csv")), "rows were written");
}

/* ---- graft train with a graft ---------------------------------------------- */

/* arch.yaml's network with a graft of 2 layers of 3x3x4 (what graft pretrain
 * --channels 4 makes), naming sha when it is not NULL. */
static const char *write_graft_arch(const char *name, const char *sha)
{
	const char *path = tpath(name);
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "fopen %s", path);
	fprintf(f, "format: graft-arch/1\n"
	        "input: {channels: 1, height: %d, width: %d, normalize: {mean: 0.31, std: 0.3}}\n"
	        "classes: 3\n"
	        "stem: {op: conv, kernel: 3, channels: 8}\n"
	        "graft:\n"
	        "  channels: 4\n"
	        "  layers: [{kernel: 3, channels: 4}, {kernel: 3, channels: 4}]\n",
	        SIDE, SIDE);
	if (sha)
		fprintf(f, "  sha256: \"%s\"\n", sha);
	fprintf(f, "blocks:\n"
	        "  - {op: conv3, channels: 8, stride: 2}\n"
	        "  - {op: conv3, channels: 16, stride: 2}\n"
	        "head: {op: linear}\n"
	        "train: {steps: 60, batch: 32, lr: 0.1, momentum: 0.9, nesterov: false,\n"
	        "        weight_decay: 0.0005, schedule: cosine, seed: 1}\n");
	cr_assert_eq(fclose(f), 0);
	return path;
}

Test(cli, train_graft_needs_its_file)
{
	char arch[512];

	snprintf(arch, sizeof arch, "%s", write_graft_arch("garch.yaml", NULL));
	run r = graft("train", arch, "--data", tpath("data"), "--out", tpath("w.safetensors"),
	              "--threads", "1", NULL);
	expect_code(&r, 2);
	expect_in(r.err, "--graft-file", "stderr");
	expect_in(r.err, arch, "stderr");
	cr_assert_null(strstr(r.out, "training"), "it trained anyway:\n%s", r.out);
	cr_assert(!exists(tpath("w.safetensors")), "weights were written");
	run_free(&r);

	/* Frozen and finetune need the file as much. */
	r = graft("train", arch, "--data", tpath("data"), "--graft", "finetune", "--out",
	          tpath("w.safetensors"), NULL);
	expect_code(&r, 2);
	expect_in(r.err, "--graft-file", "stderr");
	run_free(&r);

	r = graft("train", arch, "--data", tpath("data"), "--graft", "sideways", "--out",
	          tpath("w.safetensors"), NULL);
	expect_code(&r, 2);
	expect_in(r.err, "sideways", "stderr");
	run_free(&r);

	/* Dropping the graft needs no file. */
	r = graft("train", arch, "--data", tpath("data"), "--graft", "drop", "--steps", "5",
	          "--out", tpath("w.safetensors"), "--threads", "1", NULL);
	expect_code(&r, 0);
	run_free(&r);
}

/* Whether a line of text starts with prefix. */
static int line_starts(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	for (const char *p = text; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, prefix, n))
			return 1;
	return 0;
}

Test(cli, train_graft_frozen_finetune_drop)
{
	static const char *const modes[3] = { "frozen", "finetune", "drop" };
	char g[512], arch[512], w[3][512], sha[65], line[700];
	double params[3];
	nn_weights gw, ww;
	char err[GRAFT_ERRLEN] = "";

	private_cache();
	snprintf(g, sizeof g, "%s", tpath("G.safetensors"));
	make_graft(g, "1", sha);
	snprintf(arch, sizeof arch, "%s", write_graft_arch("garch.yaml", sha));
	cr_assert_eq(nn_safetensors_read(g, &gw, err, sizeof err), 0, "%s", err);
	for (int m = 0; m < 3; m++) {
		snprintf(w[m], sizeof w[m], "%s/w-%s.safetensors", tmpdir, modes[m]);
		run r = graft("train", arch, "--data", tpath("data"), "--validation", "100",
		              "--graft", modes[m], "--graft-file", g, "--out", w[m], "--threads",
		              "1", NULL);
		expect_code(&r, 0);
		if (m < 2) {
			snprintf(line, sizeof line, "graft %s (sha256 %.16s...) %s\n", g, sha,
			         m == 0 ? "frozen" : "fine-tuned");
			expect_in(r.out, line, "stdout");
		} else {
			cr_assert(!line_starts(r.out, "graft "), "--graft drop printed a graft "
			          "line:\n%s", r.out);
		}
		params[m] = number_after(r.out, "garch.yaml: ");
		double test = number_after(r.out, "test accuracy ");
		cr_assert(test > 0.8 && test <= 0.90 + 1e-9, "--graft %s: test accuracy %g, want "
		          "> 0.8 and <= 0.90:\n%s", modes[m], test, r.out);
		run_free(&r);

		cr_assert_eq(nn_safetensors_read(w[m], &ww, err, sizeof err), 0, "%s", err);
		int ngraft = 0, changed = 0;
		for (int i = 0; i < ww.n; i++) {
			const nn_tensor *t = &ww.t[i];
			if (strncmp(t->name, "graft", 5))
				continue;
			ngraft++;
			if (strncmp(t->name, "graft.", 6))
				continue;
			const nn_tensor *f = nn_weights_find(&gw, t->name);
			cr_assert_not_null(f, "%s is not in the graft file", t->name);
			cr_assert_eq(nn_tensor_numel(f), nn_tensor_numel(t));
			int same = !memcmp(f->data, t->data, sizeof(float) * nn_tensor_numel(t));
			if (m == 0)
				cr_assert(same, "--graft frozen changed %s", t->name);
			changed += !same;
		}
		/* 10 graft tensors, and graft_proj's conv and 4 BN tensors. */
		cr_assert_eq(ngraft, m == 2 ? 0 : 15, "--graft %s: %d graft tensors in the "
		             "weights", modes[m], ngraft);
		if (m == 1)
			cr_assert_eq(changed, 10, "--graft finetune changed only %d of the 10 graft "
			             "tensors", changed);
		nn_weights_free(&ww);
	}
	/* Frozen or not, the graft's parameters count; dropped, neither it
	 * (36 + 8 + 144 + 8) nor its projection (32 + 16) is there. */
	cr_assert_eq(params[0], params[1], "frozen %g, fine-tuned %g parameters", params[0],
	             params[1]);
	cr_assert_eq(params[0] - params[2], 244, "the graft adds %g parameters, want 244",
	             params[0] - params[2]);
	nn_weights_free(&gw);
}

Test(cli, train_graft_of_another_sha_fails)
{
	char g1[512], g2[512], arch[512], sha1[65], sha2[65];

	private_cache();
	snprintf(g1, sizeof g1, "%s", tpath("G1.safetensors"));
	snprintf(g2, sizeof g2, "%s", tpath("G2.safetensors"));
	make_graft(g1, "1", sha1);
	make_graft(g2, "2", sha2);
	cr_assert_str_neq(sha1, sha2, "seeds 1 and 2 made the same graft");
	snprintf(arch, sizeof arch, "%s", write_graft_arch("garch.yaml", sha1));
	for (int m = 0; m < 2; m++) {
		run r = graft("train", arch, "--data", tpath("data"), "--graft",
		              m ? "finetune" : "frozen", "--graft-file", g2, "--out",
		              tpath("w.safetensors"), "--threads", "1", NULL);
		expect_code(&r, 1);
		expect_in(r.err, sha1, "stderr");
		expect_in(r.err, sha2, "stderr");
		expect_in(r.err, g2, "stderr");
		cr_assert_null(strstr(r.out, "training"), "it trained anyway:\n%s", r.out);
		cr_assert(!exists(tpath("w.safetensors")), "weights were written");
		run_free(&r);
	}
	/* The right file passes the same check. */
	run r = graft("train", arch, "--data", tpath("data"), "--graft-file", g1, "--steps",
	              "5", "--out", tpath("w.safetensors"), "--threads", "1", NULL);
	expect_code(&r, 0);
	run_free(&r);
}

/* Without --graft, a graft is fine-tuned: the mode that measured best. */
Test(cli, train_graft_default_is_finetune)
{
	char g[512], arch[512], sha[65], line[700];

	private_cache();
	snprintf(g, sizeof g, "%s", tpath("G.safetensors"));
	make_graft(g, "1", sha);
	snprintf(arch, sizeof arch, "%s", write_graft_arch("garch.yaml", sha));
	run r = graft("train", arch, "--data", tpath("data"), "--validation", "100",
	              "--graft-file", g, "--out", tpath("w.safetensors"), "--threads", "1",
	              NULL);
	expect_code(&r, 0);
	snprintf(line, sizeof line, "graft %s (sha256 %.16s...) fine-tuned\n", g, sha);
	expect_in(r.out, line, "stdout");
	run_free(&r);
}

/* ---- graft train --init ------------------------------------------------------ */

/* arch.yaml's network with other blocks (a block map per line). */
static const char *write_blocks_arch(const char *name, const char *blocks)
{
	const char *path = tpath(name);
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "fopen %s", path);
	fprintf(f, "format: graft-arch/1\n"
	        "input: {channels: 1, height: %d, width: %d, normalize: {mean: 0.31, std: 0.3}}\n"
	        "classes: 3\nstem: {op: conv, kernel: 3, channels: 8}\nblocks:\n%s"
	        "head: {op: linear}\n"
	        "train: {steps: 5, batch: 32, lr: 0.1, seed: 1}\n", SIDE, SIDE, blocks);
	cr_assert_eq(fclose(f), 0);
	return path;
}

/* --init takes the weights of the same architecture, every tensor: one of
 * another shape, one missing, or one the network does not have is an error
 * that names the tensor, not a silent fresh start for it. */
Test(cli, train_init_needs_the_same_architecture)
{
	char w[512];
	snprintf(w, sizeof w, "%s", tpath("w.safetensors"));
	run r = graft("train", tpath("arch.yaml"), "--data", tpath("data"), "--steps", "5",
	              "--validation", "100", "--threads", "1", "--out", w, NULL);
	expect_code(&r, 0);
	run_free(&r);

	/* The same architecture: every tensor. */
	r = graft("train", tpath("arch.yaml"), "--data", tpath("data"), "--steps", "1",
	          "--validation", "100", "--init", w, "--threads", "1", "--out",
	          tpath("w2.safetensors"), NULL);
	expect_code(&r, 0);
	expect_in(r.out, "started from 17 tensors of", "stdout");
	run_free(&r);

	/* A wider first block: its conv and BN, and the second block's conv. */
	const char *wide = write_blocks_arch("wide.yaml", "  - {op: conv3, channels: 12, stride: 2}\n"
	                                     "  - {op: conv3, channels: 16, stride: 2}\n");
	r = graft("train", wide, "--data", tpath("data"), "--validation", "100", "--init", w,
	          "--threads", "1", "--out", tpath("w3.safetensors"), NULL);
	expect_code(&r, 1);
	expect_in(r.err, "blocks.0.conv.weight", "stderr");
	expect_in(r.err, "(8,8,3,3)", "stderr");
	expect_in(r.err, "(12,8,3,3)", "stderr");
	cr_assert_null(strstr(r.out, "training"), "it trained anyway:\n%s", r.out);
	cr_assert(!exists(tpath("w3.safetensors")), "weights were written");
	run_free(&r);

	/* A third block the file does not have. */
	const char *deep = write_blocks_arch("deep.yaml", "  - {op: conv3, channels: 8, stride: 2}\n"
	                                     "  - {op: conv3, channels: 16, stride: 2}\n"
	                                     "  - {op: conv3, channels: 16}\n");
	r = graft("train", deep, "--data", tpath("data"), "--validation", "100", "--init", w,
	          "--threads", "1", "--out", tpath("w3.safetensors"), NULL);
	expect_code(&r, 1);
	expect_in(r.err, "blocks.2.conv.weight", "stderr");
	expect_in(r.err, "(16,16,3,3)", "stderr");
	run_free(&r);

	/* The other way round: the deep net's weights hold a block arch.yaml's
	 * network does not have (and every tensor it does have). */
	r = graft("train", deep, "--data", tpath("data"), "--steps", "1", "--validation", "100",
	          "--threads", "1", "--out", tpath("deep.safetensors"), NULL);
	expect_code(&r, 0);
	run_free(&r);
	r = graft("train", tpath("arch.yaml"), "--data", tpath("data"), "--validation", "100",
	          "--init", tpath("deep.safetensors"), "--threads", "1", "--out",
	          tpath("w3.safetensors"), NULL);
	expect_code(&r, 1);
	expect_in(r.err, "blocks.2.conv.weight", "stderr");
	expect_in(r.err, "not in the network", "stderr");
	cr_assert(!exists(tpath("w3.safetensors")), "weights were written");
	run_free(&r);
}

/* graft glyphs writes a dataset directory graft reads: 99 classes, the
 * sizes asked for, from the held-out half of the fonts by default. */
Test(cli, glyphs_writes_a_dataset_of_characters)
{
	char err[GRAFT_ERRLEN];
	const char *dir = tpath("glyphs");
	run r = graft("glyphs", "--out", dir, "--train", "600", "--test", "200", "--size", "16",
	              NULL);
	expect_code(&r, 0);
	expect_in(r.out, "600 images of 16x16, 99 classes", "stdout");
	nn_dataset tr, te;
	cr_assert_eq(nn_dataset_load_dir(&tr, dir, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(nn_dataset_load_dir(&te, dir, 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(tr.n, 600);
	cr_assert_eq(te.n, 200);
	cr_assert_eq(tr.h, 16);
	cr_assert_eq(tr.classes, 99);
	nn_dataset_free(&tr);
	nn_dataset_free(&te);
	r = graft("glyphs", "--out", dir, "--fonts-part", "3", NULL);
	expect_code(&r, 2);
	r = graft("glyphs", "--out", dir, "--fonts", "/etc/ssl", NULL);
	expect_code(&r, 1);
	expect_in(r.err, "graft glyphs: no .ttf or .otf font under /etc/ssl", "stderr");
}

/* With --colour, graft glyphs writes RGB images (each channel its own
 * background and ink) as a graft-images/1 file graft reads as --data, its
 * classes named by code point. */
Test(cli, glyphs_in_colour_are_an_rgb_dataset_file)
{
	char err[GRAFT_ERRLEN], file[600];
	const char *dir = tpath("colour");
	run r = graft("glyphs", "--out", dir, "--colour", "--train", "300", "--test", "100",
	              "--size", "16", NULL);
	expect_code(&r, 0);
	expect_in(r.out, "300 + 100 RGB images of 16x16, 99 classes", "stdout");
	run_free(&r);
	snprintf(file, sizeof(file), "%s/glyphs.images", dir);
	nn_dataset tr, te;
	cr_assert_eq(nn_dataset_load_dir(&tr, file, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(nn_dataset_load_dir(&te, file, 1, err, sizeof(err)), 0, "%s", err);
	cr_assert(tr.n == 300 && te.n == 100 && tr.c == 3 && tr.h == 16 && tr.classes == 99);
	cr_assert_str_eq(nn_dataset_class_name(&tr, 0), "U+0041");
	/* Colour: the channels of most images differ. */
	int coloured = 0;
	for (int i = 0; i < tr.n; i++) {
		const uint8_t *p = tr.pixels + (size_t)i * 3 * 256;
		long d = 0;
		for (int k = 0; k < 256; k++)
			d += labs((long)p[k] - p[256 + k]) + labs((long)p[k] - p[512 + k]);
		coloured += d > 256 * 10;
	}
	cr_assert_gt(coloured, tr.n * 3 / 4, "%d of %d images are coloured", coloured, tr.n);
	int seen[99] = { 0 };
	for (int i = 0; i < te.n; i++)
		seen[te.labels[i]] = 1;
	int classes = 0;
	for (int k = 0; k < 99; k++)
		classes += seen[k];
	cr_assert_gt(classes, 50, "the test part has %d classes", classes);
	nn_dataset_free(&tr);
	nn_dataset_free(&te);
	/* And the ablation trains on it. */
	r = graft("ablation", "--data", file, "--candidates", "2", "--steps", "3", "--validation",
	          "50", "--batch", "16", "--max-mflops", "5", "--sources", "none,universal",
	          "--threads", "1", NULL);
	expect_code(&r, 0);
	expect_in(r.out, "universal ", "stdout");
	run_free(&r);
}
