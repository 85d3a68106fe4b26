/*
 * test_arch.c - graft-arch/1: the example of ARCH-FORMAT.md and the files in
 * examples/ parse to the right structs, emit/parse round trips are exact, and
 * every kind of bad or hostile input fails with GRAFT_EINVAL and a message
 * that locates it.  Most error tests compare the whole message, so that a
 * wrong line, column, path or wording fails them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "nn/nn.h"
#include "proto/proto.h"

TestSuite(arch, .timeout = 60);

/* ARCH-FORMAT.md's example, with the elided sha256 written out in full. */
static const char format_example[] =
	"format: graft-arch/1\n"
	"input: {channels: 1, height: 28, width: 28, normalize: {mean: 0.2860, std: 0.3530}}\n"
	"classes: 10\n"
	"stem: {op: conv, kernel: 3, channels: 24}          # conv (stride 1, pad k/2) + BN + ReLU\n"
	"graft:                                             # absent or null: no graft\n"
	"  channels: 16\n"
	"  layers: [{kernel: 3, channels: 16}, {kernel: 3, channels: 16}]   # each conv + BN + ReLU\n"
	"  sha256: 9f2c00000000000000000000000000000000000000000000000000000000ABCD\n"
	"  source: target                                    # how it was pretrained (informative)\n"
	"blocks:\n"
	"  - {op: conv3, channels: 32, stride: 2}\n"
	"  - {op: res3,  channels: 32}\n"
	"  - {op: sep3,  channels: 48, skip_from: 0}         # add block 0's output (\xe2\x88\x92" "1 = the stem)\n"
	"  - {op: pool,  channels: 64}\n"
	"head: {op: linear}                                 # global average pool, then linear(classes)\n"
	"train: {steps: 3000, batch: 128, lr: 0.08, momentum: 0.9, nesterov: true,\n"
	"        weight_decay: 0.0005, schedule: cosine, augment: [crop, flip], seed: 1}\n"
	"result: {val_accuracy: 0.9123, params: 104522, flops: 12000000}   # informative, optional\n";

/* A small valid config the error tests below change one line of. */
#define L1 "format: graft-arch/1\n"
#define L2 "input: {channels: 1, height: 28, width: 28}\n"
#define L3 "classes: 10\n"
#define L4 "stem: {op: conv, kernel: 3, channels: 16}\n"
#define L5 "blocks:\n"
#define L6 "  - {op: conv3, channels: 32, stride: 2}\n"
#define L7 "  - {op: conv3, channels: 64, stride: 2}\n"
#define L8 "head: {op: linear}\n"

static int parse(const char *yaml, nn_arch *a, char *err)
{
	return proto_arch_parse(yaml, strlen(yaml), a, err, GRAFT_ERRLEN);
}

static void parse_ok(const char *yaml, nn_arch *a)
{
	char err[GRAFT_ERRLEN];
	int rc = parse(yaml, a, err);

	cr_assert_eq(rc, 0, "parse failed (%d): %s\n%s", rc, err, yaml);
}

/* Parses bad YAML and checks the code and the whole message. */
static void expect_msg(const char *yaml, size_t len, const char *want)
{
	char err[GRAFT_ERRLEN];
	nn_arch a;
	int rc;

	memset(&a, 0x5a, sizeof a);
	rc = proto_arch_parse(yaml, len, &a, err, sizeof err);
	cr_assert_eq(rc, GRAFT_EINVAL, "rc %d, want GRAFT_EINVAL; message: %s", rc, err);
	cr_assert_str_eq(err, want, "message\n  got:  %s\n  want: %s", err, want);
	cr_assert_eq(a.classes, 0x5a5a5a5a, "*out was written on failure");
}

static void expect_err(const char *yaml, const char *want)
{
	expect_msg(yaml, strlen(yaml), want);
}

/* Checks the code and that the message contains each of two fragments. */
static void expect_has(const char *yaml, size_t len, const char *part1,
                       const char *part2)
{
	char err[GRAFT_ERRLEN];
	nn_arch a;
	int rc = proto_arch_parse(yaml, len, &a, err, sizeof err);

	cr_assert_eq(rc, GRAFT_EINVAL, "rc %d, want GRAFT_EINVAL; message: %s", rc, err);
	cr_assert(strstr(err, part1) != NULL, "message '%s' lacks '%s'", err, part1);
	cr_assert(strstr(err, part2) != NULL, "message '%s' lacks '%s'", err, part2);
}

/* Compares every field of two archs, naming the first that differs. */
#define EQ(f) cr_assert_eq(x->f, y->f, "%s: %.17g != %.17g", #f, \
                           (double)x->f, (double)y->f)

static void assert_arch_eq(const nn_arch *x, const nn_arch *y)
{
	int i;

	EQ(in_c); EQ(in_h); EQ(in_w); EQ(classes);
	for (i = 0; i < NN_MAX_CHANNELS; i++) {
		EQ(mean[i]);
		EQ(std[i]);
	}
	EQ(stem_kernel); EQ(stem_channels); EQ(graft_nlayers);
	for (i = 0; i < NN_MAX_GRAFT_LAYERS; i++) {
		EQ(graft_kernel[i]);
		EQ(graft_channels[i]);
	}
	cr_assert_str_eq(x->graft_sha256, y->graft_sha256);
	cr_assert_str_eq(x->graft_source, y->graft_source);
	EQ(nblocks);
	for (i = 0; i < NN_MAX_BLOCKS; i++) {
		EQ(blocks[i].op);
		EQ(blocks[i].channels);
		EQ(blocks[i].stride);
		EQ(blocks[i].skip_from);
	}
	EQ(train.steps); EQ(train.batch); EQ(train.lr); EQ(train.momentum);
	EQ(train.weight_decay); EQ(train.nesterov); EQ(train.schedule);
	EQ(train.warmup); EQ(train.crop); EQ(train.flip);
	cr_assert_eq(x->train.seed, y->train.seed, "seed: %llu != %llu",
	             (unsigned long long)x->train.seed,
	             (unsigned long long)y->train.seed);
	EQ(has_result); EQ(result_val_accuracy);
	cr_assert_eq(x->result_params, y->result_params);
	cr_assert_eq(x->result_flops, y->result_flops);
}

/* Emits a, parses the text back, compares, and checks that emitting again
 * gives the same text. */
static void round_trip(const nn_arch *a)
{
	char err[GRAFT_ERRLEN], *text, *text2;
	nn_arch b;
	int rc;

	text = proto_arch_emit(a);
	cr_assert_not_null(text);
	rc = proto_arch_parse(text, strlen(text), &b, err, sizeof err);
	cr_assert_eq(rc, 0, "emitted text does not parse: %s\n%s", err, text);
	assert_arch_eq(a, &b);
	text2 = proto_arch_emit(&b);
	cr_assert_not_null(text2);
	cr_assert_str_eq(text, text2);
	free(text);
	free(text2);
}

/* ---- valid configs ---------------------------------------------------------- */

Test(arch, format_example_fields)
{
	nn_arch a;

	parse_ok(format_example, &a);
	cr_assert_eq(a.in_c, 1);
	cr_assert_eq(a.in_h, 28);
	cr_assert_eq(a.in_w, 28);
	cr_assert_eq(a.mean[0], 0.2860f);
	cr_assert_eq(a.std[0], 0.3530f);
	cr_assert_eq(a.mean[1], 0.0f, "unused channels keep the defaults");
	cr_assert_eq(a.std[1], 1.0f);
	cr_assert_eq(a.classes, 10);
	cr_assert_eq(a.stem_kernel, 3);
	cr_assert_eq(a.stem_channels, 24);
	cr_assert_eq(a.graft_nlayers, 2);
	cr_assert_eq(a.graft_kernel[1], 3);
	cr_assert_eq(a.graft_channels[1], 16);
	cr_assert_str_eq(a.graft_sha256,
	                 "9f2c00000000000000000000000000000000000000000000000000000000abcd");
	cr_assert_str_eq(a.graft_source, "target");
	cr_assert_eq(a.nblocks, 4);
	cr_assert_eq(a.blocks[0].op, NN_OP_CONV3);
	cr_assert_eq(a.blocks[0].stride, 2);
	cr_assert_eq(a.blocks[0].skip_from, NN_SKIP_NONE);
	cr_assert_eq(a.blocks[1].op, NN_OP_RES3);
	cr_assert_eq(a.blocks[1].stride, 1);
	cr_assert_eq(a.blocks[2].op, NN_OP_SEP3);
	cr_assert_eq(a.blocks[2].channels, 48);
	cr_assert_eq(a.blocks[2].skip_from, 0);
	cr_assert_eq(a.blocks[3].op, NN_OP_POOL);
	cr_assert_eq(a.blocks[3].channels, 64);
	cr_assert_eq(a.train.steps, 3000);
	cr_assert_eq(a.train.batch, 128);
	cr_assert_eq(a.train.lr, 0.08f);
	cr_assert_eq(a.train.momentum, 0.9f);
	cr_assert_eq(a.train.nesterov, 1);
	cr_assert_eq(a.train.weight_decay, 0.0005f);
	cr_assert_eq(a.train.schedule, NN_SCHEDULE_COSINE);
	cr_assert_eq(a.train.warmup, 0);
	cr_assert_eq(a.train.crop, 2, "crop pads 2 pixels at 28x28");
	cr_assert_eq(a.train.flip, 1);
	cr_assert_eq(a.train.seed, 1);
	cr_assert_eq(a.has_result, 1);
	cr_assert_eq(a.result_val_accuracy, 0.9123);
	cr_assert_eq(a.result_params, 104522);
	cr_assert_eq(a.result_flops, 12000000);
}

Test(arch, defaults_fill_what_is_left_out)
{
	nn_arch a, d;

	parse_ok(L1 L2 L3 L4 L5 L6 L7 L8, &a);
	nn_arch_defaults(&d);
	cr_assert_eq(a.graft_nlayers, 0);
	cr_assert_eq(a.has_result, 0);
	cr_assert_eq(a.mean[0], 0.0f);
	cr_assert_eq(a.std[0], 1.0f);
	cr_assert_eq(a.train.steps, 1000);
	cr_assert_eq(a.train.batch, 128);
	cr_assert_eq(a.train.lr, 0.05f);
	cr_assert_eq(a.train.momentum, 0.9f);
	cr_assert_eq(a.train.nesterov, 0);
	cr_assert_eq(a.train.weight_decay, 5e-4f);
	cr_assert_eq(a.train.schedule, NN_SCHEDULE_COSINE);
	cr_assert_eq(a.train.crop, 0);
	cr_assert_eq(a.train.flip, 0);
	cr_assert_eq(a.train.seed, 1);
	cr_assert_eq(a.blocks[5].skip_from, NN_SKIP_NONE);
	cr_assert_eq(a.blocks[5].stride, 1);
	cr_assert_eq(d.blocks[NN_MAX_BLOCKS - 1].skip_from, NN_SKIP_NONE);
	cr_assert_eq(d.train.warmup, 0);
}

Test(arch, graft_null_and_result_null_mean_absent)
{
	nn_arch a;

	parse_ok(L1 L2 L3 L4 L5 L6 L7 L8 "graft: null\nresult:\n", &a);
	cr_assert_eq(a.graft_nlayers, 0);
	cr_assert_eq(a.has_result, 0);
}

Test(arch, examples_parse)
{
	char err[GRAFT_ERRLEN];
	nn_arch s, m, f;

	cr_assert_eq(proto_arch_load("examples/nets.yaml", &s, err, sizeof err), 0,
	             "%s", err);
	cr_assert_eq(proto_arch_load("examples/netm.yaml", &m, err, sizeof err), 0,
	             "%s", err);
	cr_assert_eq(proto_arch_load("examples/full.yaml", &f, err, sizeof err), 0,
	             "%s", err);

	cr_assert_eq(s.stem_channels, 16);
	cr_assert_eq(s.nblocks, 2);
	cr_assert_eq(s.blocks[1].channels, 64);
	cr_assert_eq(s.blocks[1].stride, 2);
	cr_assert_eq(s.mean[0], 0.2860f);
	cr_assert_eq(s.train.batch, 64);

	cr_assert_eq(m.stem_channels, 32);
	cr_assert_eq(m.nblocks, 6);
	cr_assert_eq(m.blocks[1].op, NN_OP_POOL);
	cr_assert_eq(m.blocks[5].op, NN_OP_CONV3);
	cr_assert_eq(m.blocks[5].channels, 128);
	cr_assert_eq(m.train.lr, 0.05f);
	cr_assert_eq(m.train.weight_decay, 0.0005f);
	cr_assert_eq(m.train.nesterov, 0);

	cr_assert_eq(f.in_c, 3);
	cr_assert_eq(f.std[2], 0.2616f);
	cr_assert_eq(f.graft_nlayers, 2);
	cr_assert_eq(f.graft_kernel[0], 5);
	cr_assert_str_eq(f.graft_sha256, "");
	cr_assert_str_eq(f.graft_source, "synthetic");
	cr_assert_eq(f.blocks[0].skip_from, -1);
	cr_assert_eq(f.blocks[5].skip_from, 4);
	cr_assert_eq(f.train.crop, 4, "crop pads 4 pixels at 32x32");
	cr_assert_eq(f.train.warmup, 100);
	cr_assert_eq(f.train.seed, 7);
	{
		int ops = 0, i;
		for (i = 0; i < f.nblocks; i++)
			ops |= 1 << f.blocks[i].op;
		cr_assert_eq(ops, 0x1f, "full.yaml uses every op");
	}
}

Test(arch, round_trip_of_parsed_configs)
{
	static const char *const paths[] = {
		"examples/nets.yaml", "examples/netm.yaml", "examples/full.yaml",
	};
	char err[GRAFT_ERRLEN];
	nn_arch a;
	size_t i;

	parse_ok(format_example, &a);
	round_trip(&a);
	for (i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		cr_assert_eq(proto_arch_load(paths[i], &a, err, sizeof err), 0, "%s", err);
		round_trip(&a);
	}
}

/* An arch built by hand with awkward values: floats that need nine digits,
 * per-channel normalization, every block field, a source that needs quoting,
 * the largest seed and a result. */
Test(arch, round_trip_of_built_arch)
{
	nn_arch a;
	int i;

	nn_arch_defaults(&a);
	a.in_c = 3;
	a.in_h = 32;
	a.in_w = 30;
	a.mean[0] = 0.1f;
	a.mean[1] = 1.0f / 3.0f;
	a.mean[2] = -2.5e-7f;
	a.std[0] = a.std[1] = a.std[2] = 0.123456789f;
	a.classes = 100;
	a.stem_kernel = 5;
	a.stem_channels = 7;
	a.graft_nlayers = NN_MAX_GRAFT_LAYERS;
	for (i = 0; i < NN_MAX_GRAFT_LAYERS; i++) {
		a.graft_kernel[i] = 1 + 2 * (i % 4);
		a.graft_channels[i] = 1 + i;
	}
	strcpy(a.graft_sha256,
	       "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	strcpy(a.graft_source, "a \"q\" \\ #: x");
	a.nblocks = 5;
	for (i = 0; i < a.nblocks; i++) {
		a.blocks[i].op = (enum nn_block_op)i;
		a.blocks[i].channels = 4096 - i;
		a.blocks[i].stride = i == 1 ? 2 : 1;
		a.blocks[i].skip_from = i == 3 ? 1 : i == 0 ? -1 : NN_SKIP_NONE;
	}
	a.train.steps = 17;
	a.train.batch = 3;
	a.train.lr = 1e-5f;
	a.train.momentum = 0.0f;
	a.train.weight_decay = 1.0f;
	a.train.schedule = NN_SCHEDULE_CONSTANT;
	a.train.warmup = 17;
	a.train.crop = 4;
	a.train.seed = UINT64_MAX;
	a.has_result = 1;
	a.result_val_accuracy = 0.1 + 0.2;
	a.result_params = INT64_MAX;
	a.result_flops = 0;
	round_trip(&a);

	/* The variations: flip alone, no result, no graft, one channel. */
	a.train.crop = 0;
	a.train.flip = 1;
	a.has_result = 0;
	a.result_val_accuracy = 0;
	a.result_params = 0;
	a.graft_nlayers = 0;
	memset(a.graft_kernel, 0, sizeof a.graft_kernel);
	memset(a.graft_channels, 0, sizeof a.graft_channels);
	a.graft_sha256[0] = a.graft_source[0] = '\0';
	memset(a.graft_sha256, 0, sizeof a.graft_sha256);
	memset(a.graft_source, 0, sizeof a.graft_source);
	round_trip(&a);
	a.in_c = 1;
	a.mean[1] = a.mean[2] = 0.0f;
	a.std[1] = a.std[2] = 1.0f;
	round_trip(&a);
}

/* Issue 10, bug 8: strings holding characters YAML does not keep as they
 * are (C0 and C1 controls, U+0085, U+2028, U+2029, U+FEFF) are escaped on
 * emit, so that they read back unchanged (graft.source holds 31 bytes). */
Test(arch, emit_escapes_what_yaml_would_not_keep)
{
	static const char *const sources[] = {
		"tab\t bell\a esc\x1b del\x7f",
		"C1: \xc2\x80 \xc2\x85 \xc2\x9f",
		"LS \xe2\x80\xa8 PS \xe2\x80\xa9",
		"BOM \xef\xbb\xbf U+FFFE \xef\xbf\xbe",
		"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8c\xb1",
	};
	nn_arch a;
	nn_arch_defaults(&a);
	a.in_c = 1;
	a.in_h = a.in_w = 28;
	a.classes = 10;
	a.stem_kernel = 3;
	a.stem_channels = 8;
	a.nblocks = 1;
	a.blocks[0].op = NN_OP_CONV3;
	a.blocks[0].channels = 16;
	a.blocks[0].stride = 1;
	a.blocks[0].skip_from = NN_SKIP_NONE;
	a.graft_nlayers = 1;
	a.graft_kernel[0] = 3;
	a.graft_channels[0] = 4;
	strcpy(a.graft_sha256,
	       "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
		snprintf(a.graft_source, sizeof a.graft_source, "%s", sources[i]);
		round_trip(&a);
	}
	/* Plain UTF-8 is written as it is, not escaped. */
	char *text = proto_arch_emit(&a);
	cr_assert(strstr(text, sources[4]), "%s", text);
	free(text);
	/* A byte that is not UTF-8 cannot read back; the file still parses. */
	strcpy(a.graft_source, "bad \xff byte");
	text = proto_arch_emit(&a);
	nn_arch b;
	char err[GRAFT_ERRLEN];
	cr_assert_eq(proto_arch_parse(text, strlen(text), &b, err, sizeof err), 0, "%s\n%s", err,
	             text);
	cr_assert_str_eq(b.graft_source, "bad \xef\xbf\xbd byte");
	free(text);
}

Test(arch, emit_layout)
{
	nn_arch a;
	char *text;

	parse_ok(format_example, &a);
	text = proto_arch_emit(&a);
	cr_assert_not_null(text);
	cr_assert_str_eq(text,
		"format: graft-arch/1\n"
		"input: {channels: 1, height: 28, width: 28, normalize: {mean: 0.286, std: 0.353}}\n"
		"classes: 10\n"
		"stem: {op: conv, kernel: 3, channels: 24}\n"
		"graft:\n"
		"  channels: 16\n"
		"  layers: [{kernel: 3, channels: 16}, {kernel: 3, channels: 16}]\n"
		"  sha256: \"9f2c00000000000000000000000000000000000000000000000000000000abcd\"\n"
		"  source: \"target\"\n"
		"blocks:\n"
		"  - {op: conv3, channels: 32, stride: 2}\n"
		"  - {op: res3, channels: 32}\n"
		"  - {op: sep3, channels: 48, skip_from: 0}\n"
		"  - {op: pool, channels: 64}\n"
		"head: {op: linear}\n"
		"train: {steps: 3000, batch: 128, lr: 0.08, momentum: 0.9, nesterov: true,\n"
		"        weight_decay: 0.0005, schedule: cosine, augment: [crop, flip], seed: 1}\n"
		"result: {val_accuracy: 0.9123, params: 104522, flops: 12000000}\n");
	free(text);
}

/* YAML 1.1 readers (PyYAML) need a dot to see a float. */
Test(arch, emit_floats_have_a_dot)
{
	nn_arch a;
	char *text;

	parse_ok(L1 L2 L3 L4 L5 L6 L7 L8 "train: {lr: 1e-5, momentum: 1, weight_decay: 0}\n",
	         &a);
	text = proto_arch_emit(&a);
	cr_assert_not_null(text);
	cr_assert(strstr(text, "lr: 1.0e-05, momentum: 1.0,") != NULL, "%s", text);
	cr_assert(strstr(text, "weight_decay: 0.0,") != NULL, "%s", text);
	cr_assert(strstr(text, "mean: 0.0, std: 1.0}") != NULL, "%s", text);
	free(text);
}

Test(arch, one_megabyte_is_accepted)
{
	size_t base = strlen(L1 L2 L3 L4 L5 L6 L7 L8), len = 1024 * 1024, i;
	char *text = malloc(len);
	nn_arch a;
	char err[GRAFT_ERRLEN];
	int rc;

	cr_assert_not_null(text);
	memcpy(text, L1 L2 L3 L4 L5 L6 L7 L8, base);
	/* Lines of 63 bytes of comment fill the rest. */
	memset(text + base, ' ', len - base);
	for (i = base; i < len; i += 64) {
		text[i] = '#';
		if (i + 63 < len)
			text[i + 63] = '\n';
	}
	rc = proto_arch_parse(text, len, &a, err, sizeof err);
	free(text);
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(a.nblocks, 2);
}

Test(arch, null_err_buffer_and_null_args)
{
	nn_arch a;
	char err[GRAFT_ERRLEN];

	cr_assert_eq(proto_arch_parse("x", 1, &a, NULL, 0), GRAFT_EINVAL);
	cr_assert_eq(proto_arch_parse(NULL, 3, &a, err, sizeof err), GRAFT_EINVAL);
	cr_assert_eq(proto_arch_parse("x", 1, NULL, err, sizeof err), GRAFT_EINVAL);
	cr_assert_eq(proto_arch_load(NULL, &a, err, sizeof err), GRAFT_EINVAL);
	cr_assert_eq(proto_arch_load("examples/nets.yaml", &a, NULL, 0), 0);
	cr_assert_null(proto_arch_emit(NULL));
}

/* ---- files ------------------------------------------------------------------ */

Test(arch, load_missing_file_is_eio)
{
	char err[GRAFT_ERRLEN];
	nn_arch a;

	cr_assert_eq(proto_arch_load("/nonexistent/x.yaml", &a, err, sizeof err),
	             GRAFT_EIO);
	cr_assert_str_eq(err, "/nonexistent/x.yaml: cannot open: No such file or directory");
	cr_assert_eq(proto_arch_load("/", &a, err, sizeof err), GRAFT_EIO, "%s", err);
	cr_assert(strncmp(err, "/: cannot read", 14) == 0, "%s", err);
}

/* Writes len bytes into a fresh temporary file; the name is static. */
static const char *write_tmp(const char *text, size_t len)
{
	static char path[64];
	int fd;

	strcpy(path, "/tmp/graft-arch-XXXXXX");
	fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

Test(arch, load_errors_name_the_file)
{
	static const char bad[] = L1 L2 "classes: 1\n" L4 L5 L6 L7 L8;
	char err[GRAFT_ERRLEN], want[GRAFT_ERRLEN];
	const char *path = write_tmp(bad, strlen(bad));
	nn_arch a;
	int rc = proto_arch_load(path, &a, err, sizeof err);

	unlink(path);
	snprintf(want, sizeof want, "%s: line 3, column 10: classes: expected an "
	         "integer 2..10000, got '1'", path);
	cr_assert_eq(rc, GRAFT_EINVAL);
	cr_assert_str_eq(err, want);
}

Test(arch, load_of_two_megabytes_is_refused)
{
	size_t len = 2 * 1024 * 1024;
	char *text = malloc(len), err[GRAFT_ERRLEN], want[GRAFT_ERRLEN];
	const char *path;
	nn_arch a;
	int rc;

	cr_assert_not_null(text);
	memset(text, '\n', len);
	path = write_tmp(text, len);
	free(text);
	rc = proto_arch_load(path, &a, err, sizeof err);
	unlink(path);
	snprintf(want, sizeof want, "%s: the file is larger than 1048576 bytes; "
	         "expected at most 1048576", path);
	cr_assert_eq(rc, GRAFT_EINVAL);
	cr_assert_str_eq(err, want);
}

/* ---- the document ----------------------------------------------------------- */

Test(arch, empty_document)
{
	expect_err("", "line 1, column 1: the document is empty; expected a mapping");
	expect_err("# only a comment\n\n",
	           "line 1, column 1: the document is empty; expected a mapping");
	expect_err("---\n", "line 2, column 1: expected a graft-arch/1 mapping, "
	           "got nothing");
}

Test(arch, not_a_mapping)
{
	expect_err("- a\n- b\n", "line 1, column 1: expected a graft-arch/1 mapping, "
	           "got a list of 2 items");
	expect_err("hello", "line 1, column 1: expected a graft-arch/1 mapping, "
	           "got 'hello'");
}

Test(arch, wrong_format)
{
	expect_err("format: graft-arch/2\n" L2 L3 L4 L5 L6 L7 L8,
	           "line 1, column 9: format: expected graft-arch/1, got 'graft-arch/2'");
	expect_err(L2 L3 L4 L5 L6 L7 L8,
	           "line 1, column 1: missing required key 'format'");
}

Test(arch, two_documents)
{
	expect_err(L1 "---\n" L1, "line 2, column 1: a second YAML document; "
	           "expected exactly one");
}

Test(arch, unknown_top_level_key)
{
	expect_err(L1 L2 L3 L4 L5 L6 L7 L8 "epochs: 3\n",
	           "line 9, column 1: unknown key 'epochs'; expected one of format, "
	           "input, classes, labels, stem, graft, blocks, head, train, result");
}

/* labels: the class names, as many as classes, read back as written (any
 * characters: the emitter quotes them). */
Test(arch, labels_round_trip_and_are_checked)
{
	char err[GRAFT_ERRLEN], *labels;
	nn_arch a;
	static const char names[] = "t-shirt\0trouser: long\0# hash\0\"quoted\"\0caf\xc3\xa9\0"
	                            "6\0seven\0 eight \0nine\0[ten]";

	parse_ok(L1 L2 L3 L4 L5 L6 L7 L8, &a);
	char *yaml = proto_arch_emit_labels(&a, names);
	cr_assert_not_null(yaml);
	cr_assert_eq(proto_arch_parse_labels(yaml, strlen(yaml), &a, &labels, err, sizeof err), 0,
	             "%s\n%s", err, yaml);
	cr_assert_not_null(labels);
	cr_assert_arr_eq(labels, names, sizeof names, "%s", yaml);
	free(labels);
	free(yaml);
	/* None: NULL. */
	cr_assert_eq(proto_arch_parse_labels(L1 L2 L3 L4 L5 L6 L7 L8, strlen(L1 L2 L3 L4 L5 L6 L7 L8),
	                                     &a, &labels, err, sizeof err), 0);
	cr_assert_null(labels);
	expect_err(L1 L2 L3 "labels: [a, b]\n" L4 L5 L6 L7 L8,
	           "line 4, column 9: labels: expected a list of 10 items, got a list of 2 items");
	expect_err(L1 L2 L3 "labels: [a, '', c, d, e, f, g, h, i, j]\n" L4 L5 L6 L7 L8,
	           "line 4, column 13: labels[1]: expected a class name, got ''");
}

Test(arch, unknown_block_key)
{
	expect_err(L1 L2 L3 L4 L5 "  - {op: conv3, chanels: 32}\n" L7 L8,
	           "line 6, column 17: blocks[0]: unknown key 'chanels'; expected one "
	           "of op, channels, stride, skip_from");
}

Test(arch, unknown_nested_keys)
{
	expect_err(L1 "input: {channels: 1, height: 28, width: 28, "
	           "normalize: {mean: 0, sd: 1}}\n" L3 L4 L5 L6 L7 L8,
	           "line 2, column 66: input.normalize: unknown key 'sd'; expected one "
	           "of mean, std");
	expect_err(L1 L2 L3 L4 L5 L6 L7 L8 "train: {stesp: 3}\n",
	           "line 9, column 9: train: unknown key 'stesp'; expected one of "
	           "steps, batch, lr, momentum, nesterov, weight_decay, schedule, "
	           "warmup, augment, seed");
}

Test(arch, duplicate_keys)
{
	expect_err(L1 L2 L3 "classes: 12\n" L4 L5 L6 L7 L8,
	           "line 4, column 1: duplicate key 'classes'; expected each key at "
	           "most once");
	expect_err(L1 L2 L3 L4 L5 "  - {op: conv3, channels: 32, channels: 8}\n" L7 L8,
	           "line 6, column 31: blocks[0]: duplicate key 'channels'; expected "
	           "each key at most once");
}

Test(arch, missing_required_keys)
{
	expect_err(L1 L2 L4 L5 L6 L7 L8,
	           "line 1, column 1: missing required key 'classes'");
	expect_err(L1 L2 L3 "stem: {op: conv, channels: 16}\n" L5 L6 L7 L8,
	           "line 4, column 7: stem: missing required key 'kernel'");
	expect_err(L1 L2 L3 L4 L5 "  - {channels: 32}\n" L7 L8,
	           "line 6, column 5: blocks[0]: missing required key 'op'");
	expect_err(L1 L2 L3 L4 L5 L6 L7,
	           "line 1, column 1: missing required key 'head'");
}

/* ---- values ----------------------------------------------------------------- */

Test(arch, string_where_int_expected)
{
	expect_err(L1 L2 L3 "stem: {op: conv, kernel: abc, channels: 16}\n" L5 L6 L7 L8,
	           "line 4, column 26: stem.kernel: expected an odd integer 1..7, "
	           "got 'abc'");
	/* A quoted number is a string in YAML. */
	expect_err(L1 L2 "classes: \"10\"\n" L4 L5 L6 L7 L8,
	           "line 3, column 10: classes: expected an integer 2..10000, "
	           "got '10'");
	expect_err(L1 L2 "classes: 10.0\n" L4 L5 L6 L7 L8,
	           "line 3, column 10: classes: expected an integer 2..10000, "
	           "got '10.0'");
	expect_err(L1 L2 "classes: [10]\n" L4 L5 L6 L7 L8,
	           "line 3, column 10: classes: expected an integer 2..10000, "
	           "got a list of 1 item");
	expect_err(L1 L2 "classes:\n" L4 L5 L6 L7 L8,
	           "line 3, column 9: classes: expected an integer 2..10000, "
	           "got nothing");
}

Test(arch, even_kernel)
{
	expect_err(L1 L2 L3 "stem: {op: conv, kernel: 4, channels: 16}\n" L5 L6 L7 L8,
	           "line 4, column 26: stem.kernel: expected an odd integer 1..7, "
	           "got '4'");
	expect_err(L1 L2 L3 "stem: {op: conv, kernel: 9, channels: 16}\n" L5 L6 L7 L8,
	           "line 4, column 26: stem.kernel: expected an odd integer 1..7, "
	           "got '9'");
}

Test(arch, channels_out_of_range)
{
	expect_err(L1 L2 L3 L4 L5 "  - {op: conv3, channels: 0}\n" L7 L8,
	           "line 6, column 27: blocks[0].channels: expected an integer "
	           "1..4096, got '0'");
	expect_err(L1 L2 L3 L4 L5 L6 "  - {op: conv3, channels: 1000000000}\n" L8,
	           "line 7, column 27: blocks[1].channels: expected an integer "
	           "1..4096, got '1000000000'");
	expect_err(L1 L2 L3 L4 L5 "  - {op: conv3, channels: 99999999999999999999999}\n"
	           L7 L8,
	           "line 6, column 27: blocks[0].channels: expected an integer "
	           "1..4096, got '99999999999999999999999'");
	expect_err(L1 L2 L3 "stem: {op: conv, kernel: 3, channels: -16}\n" L5 L6 L7 L8,
	           "line 4, column 39: stem.channels: expected an integer 1..4096, "
	           "got '-16'");
}

Test(arch, stride_3)
{
	expect_err(L1 L2 L3 L4 L5 "  - {op: conv3, channels: 32, stride: 3}\n" L7 L8,
	           "line 6, column 39: blocks[0].stride: expected 1 or 2, got '3'");
}

Test(arch, bad_op_names)
{
	expect_err(L1 L2 L3 L4 L5 "  - {op: conv7, channels: 32}\n" L7 L8,
	           "line 6, column 10: blocks[0].op: expected one of conv3, conv5, "
	           "sep3, res3, pool, got 'conv7'");
	expect_err(L1 L2 L3 "stem: {op: conv3, kernel: 3, channels: 16}\n" L5 L6 L7 L8,
	           "line 4, column 12: stem.op: expected one of conv, got 'conv3'");
	expect_err(L1 L2 L3 L4 L5 L6 L7 "head: {op: mlp}\n",
	           "line 8, column 12: head.op: expected one of linear, got 'mlp'");
}

Test(arch, skip_from_forward_reference)
{
	expect_err(L1 L2 L3 L4 L5 "  - {op: conv3, channels: 32, skip_from: 0}\n" L7 L8,
	           "line 6, column 42: blocks[0].skip_from: expected -1 (the stem), "
	           "got '0'");
	expect_err(L1 L2 L3 L4 L5 L6 "  - {op: conv3, channels: 64, skip_from: 1}\n" L8,
	           "line 7, column 42: blocks[1].skip_from: expected -1 (the stem) or "
	           "an earlier block 0..0, got '1'");
}

Test(arch, skip_from_across_a_size_change)
{
	/* Block 1 halves 14x14 to 7x7, so neither the stem nor block 0 fits. */
	expect_err(L1 L2 L3 L4 L5 L6
	           "  - {op: conv3, channels: 64, stride: 2, skip_from: 0}\n" L8,
	           "line 7, column 53: blocks[1].skip_from: expected a source of this "
	           "block's output size 7x7 (block 0 gives 14x14), got '0'");
	expect_err(L1 L2 L3 L4 L5
	           "  - {op: pool, channels: 32, skip_from: -1}\n" L7 L8,
	           "line 6, column 41: blocks[0].skip_from: expected a source of this "
	           "block's output size 14x14 (the stem gives 28x28), got '-1'");
}

Test(arch, spatial_size_collapsing_to_zero)
{
	expect_err(L1 "input: {channels: 1, height: 3, width: 8}\n" L3 L4 L5
	           "  - {op: pool, channels: 8}\n"
	           "  - {op: conv3, channels: 8, stride: 2}\n"
	           "  - {op: pool, channels: 8}\n" L8,
	           "line 8, column 5: blocks[2]: pool turns 1x2 into 0x1; expected a "
	           "spatial size of at least 1x1");
}

Test(arch, normalize_list_of_wrong_length)
{
	expect_err(L1 "input: {channels: 3, height: 28, width: 28, "
	           "normalize: {mean: [0.5, 0.5], std: 0.25}}\n" L3 L4 L5 L6 L7 L8,
	           "line 2, column 63: input.normalize.mean: expected one number for "
	           "all channels or a list of 3 (one per channel), got a list of 2 items");
}

Test(arch, normalize_std_zero)
{
	expect_err(L1 "input: {channels: 1, height: 28, width: 28, "
	           "normalize: {mean: 0.5, std: 0}}\n" L3 L4 L5 L6 L7 L8,
	           "line 2, column 73: input.normalize.std: expected a number from "
	           "1e-6 to 1e6, got '0'");
	expect_err(L1 "input: {channels: 2, height: 28, width: 28, "
	           "normalize: {mean: 0.5, std: [1, -1]}}\n" L3 L4 L5 L6 L7 L8,
	           "line 2, column 77: input.normalize.std[1]: expected a number from "
	           "1e-6 to 1e6, got '-1'");
}

Test(arch, non_numbers_for_floats)
{
	static const char *const bad[] = { "0x10", "inf", ".nan", "1e", "--1", "1.5.2", "1_000" };
	char yaml[512], want[512];
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(yaml, sizeof yaml, L1 L2 L3 L4 L5 L6 L7 L8 "train: {lr: %s}\n",
		         bad[i]);
		snprintf(want, sizeof want, "line 9, column 13: train.lr: expected a "
		         "number 0..100, got '%s'", bad[i]);
		expect_err(yaml, want);
	}
}

Test(arch, train_values)
{
	expect_err(L1 L2 L3 L4 L5 L6 L7 L8 "train: {nesterov: yes}\n",
	           "line 9, column 19: train.nesterov: expected true or false, got 'yes'");
	expect_err(L1 L2 L3 L4 L5 L6 L7 L8 "train: {momentum: 0, nesterov: true}\n",
	           "line 9, column 32: train.nesterov: expected false when momentum "
	           "is 0, got 'true'");
	expect_err(L1 L2 L3 L4 L5 L6 L7 L8 "train: {steps: 10, warmup: 11}\n",
	           "line 9, column 28: train.warmup: expected an integer from 0 to "
	           "train.steps, got '11'");
	expect_err(L1 L2 L3 L4 L5 L6 L7 L8 "train: {augment: [flip, crop, flip]}\n",
	           "line 9, column 18: train.augment: expected a list of 0..2 items, "
	           "got a list of 3 items");
	expect_err(L1 L2 L3 L4 L5 L6 L7 L8 "train: {augment: [flip, flip]}\n",
	           "line 9, column 25: train.augment[1]: expected crop and flip at "
	           "most once each, got 'flip'");
	expect_err(L1 L2 L3 L4 L5 L6 L7 L8 "train: {augment: [cutout]}\n",
	           "line 9, column 19: train.augment[0]: expected one of crop, flip, "
	           "got 'cutout'");
	expect_err(L1 L2 L3 L4 L5 L6 L7 L8 "train: {seed: -1}\n",
	           "line 9, column 15: train.seed: expected an integer "
	           "0..18446744073709551615, got '-1'");
	expect_err(L1 L2 L3 L4 L5 L6 L7 L8 "train: {schedule: step}\n",
	           "line 9, column 19: train.schedule: expected one of constant, "
	           "cosine, got 'step'");
}

Test(arch, block_list_length)
{
	char yaml[4096];
	int i, n;

	expect_err(L1 L2 L3 L4 "blocks: []\n" L8,
	           "line 5, column 9: blocks: expected a list of 1..32 items, "
	           "got a list of 0 items");
	n = snprintf(yaml, sizeof yaml, L1 L2 L3 L4 L5);
	for (i = 0; i < NN_MAX_BLOCKS + 1; i++)
		n += snprintf(yaml + n, sizeof yaml - (size_t)n,
		              "  - {op: conv3, channels: 8}\n");
	snprintf(yaml + n, sizeof yaml - (size_t)n, L8);
	expect_err(yaml, "line 6, column 3: blocks: expected a list of 1..32 items, "
	           "got a list of 33 items");
}

Test(arch, graft_channels_mismatch)
{
	expect_err(L1 L2 L3 L4
	           "graft:\n"
	           "  channels: 16\n"
	           "  layers: [{kernel: 3, channels: 16}, {kernel: 3, channels: 32}]\n"
	           L5 L6 L7 L8,
	           "line 6, column 13: graft.channels: expected 32, the last layer's "
	           "channels, got '16'");
}

Test(arch, graft_layers)
{
	expect_err(L1 L2 L3 L4 "graft: {channels: 8, layers: []}\n" L5 L6 L7 L8,
	           "line 5, column 30: graft.layers: expected a list of 1..8 items, "
	           "got a list of 0 items");
	expect_err(L1 L2 L3 L4 "graft: {channels: 8, layers: [{kernel: 2, channels: 8}]}\n"
	           L5 L6 L7 L8,
	           "line 5, column 40: graft.layers[0].kernel: expected an odd integer "
	           "1..7, got '2'");
	expect_err(L1 L2 L3 L4 "graft: {layers: [{kernel: 3, channels: 8}]}\n" L5 L6 L7 L8,
	           "line 5, column 8: graft: missing required key 'channels'");
}

Test(arch, bad_sha256)
{
	expect_err(L1 L2 L3 L4 "graft: {channels: 8, layers: [{kernel: 3, channels: 8}], "
	           "sha256: 9f2c}\n" L5 L6 L7 L8,
	           "line 5, column 66: graft.sha256: expected a sha256 of 64 "
	           "hexadecimal digits, got '9f2c'");
	expect_err(L1 L2 L3 L4 "graft: {channels: 8, layers: [{kernel: 3, channels: 8}], "
	           "sha256: 9f2c00000000000000000000000000000000000000000000000000000000abcg}\n"
	           L5 L6 L7 L8,
	           "line 5, column 66: graft.sha256: expected a sha256 of 64 "
	           "hexadecimal digits, got '9f2c000000000000000000000000000000000000...'");
}

Test(arch, graft_source_too_long)
{
	expect_err(L1 L2 L3 L4 "graft: {channels: 8, layers: [{kernel: 3, channels: 8}], "
	           "source: abcdefghijklmnopqrstuvwxyz0123456}\n" L5 L6 L7 L8,
	           "line 5, column 66: graft.source: expected a string of at most 31 "
	           "bytes, got 'abcdefghijklmnopqrstuvwxyz0123456'");
}

/* ---- YAML syntax and hostile input ------------------------------------------ */

Test(arch, tab_indented_yaml)
{
	expect_has(L1 "input:\n\tchannels: 1\n", strlen(L1 "input:\n\tchannels: 1\n"),
	           "line 3, column 1: found character that cannot start any token",
	           "(while scanning for the next token)");
}

Test(arch, broken_yaml)
{
	static const char yaml[] = L1 L2 L3 "stem: {op: conv, kernel: 3\n" L5 L6 L7 L8;

	expect_has(yaml, strlen(yaml), "line 5, column 7: did not find expected ',' or '}'",
	           "(while parsing a flow mapping started at line 4, column 7)");
}

Test(arch, invalid_utf8)
{
	static const char yaml[] = L1 L2 "classes: 1\xff\n";

	expect_has(yaml, strlen(yaml), "line 3, column 11: ", "invalid");
}

Test(arch, alias_bomb)
{
	static const char yaml[] =
		"a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
		"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
		"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
		"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
		"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
		"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
		"g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
		"h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
		"i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";

	expect_err(yaml, "line 1, column 4: YAML anchors (&name) are not supported; "
	           "expected plain values");
	/* An alias is refused where it stands, even one libyaml cannot resolve. */
	expect_err(L1 L2 "classes: *n\n", "line 3, column 10: YAML aliases (*name) "
	           "are not supported; expected plain values");
}

Test(arch, nesting_depth_1000)
{
	char yaml[2001];

	memset(yaml, '[', 1000);
	memset(yaml + 1000, ']', 1000);
	yaml[2000] = '\0';
	expect_err(yaml, "line 1, column 33: nesting deeper than 32 levels; "
	           "expected at most 32");
	/* 32 levels are fine as far as YAML goes. */
	memset(yaml, '[', 32);
	memset(yaml + 32, ']', 32);
	yaml[64] = '\0';
	expect_err(yaml, "line 1, column 1: expected a graft-arch/1 mapping, "
	           "got a list of 1 item");
}

Test(arch, two_megabytes)
{
	size_t len = 2 * 1024 * 1024;
	char *text = malloc(len);

	cr_assert_not_null(text);
	memset(text, ' ', len);
	expect_msg(text, len, "the input is 2097152 bytes; expected at most 1048576");
	free(text);
}

Test(arch, long_scalar)
{
	size_t n = 5000;
	char *text = malloc(n + 16);

	cr_assert_not_null(text);
	strcpy(text, "classes: ");
	memset(text + 9, '7', n);
	text[9 + n] = '\0';
	expect_err(text, "line 1, column 10: a scalar of 5000 bytes; expected at most 4096");
	free(text);
}

Test(arch, too_many_nodes)
{
	size_t n = 70000, i;
	char *text = malloc(2 * n + 32);

	cr_assert_not_null(text);
	strcpy(text, "x: [");
	for (i = 0; i < n; i++)
		memcpy(text + 4 + 2 * i, "1,", 2);
	strcpy(text + 4 + 2 * n - 1, "]\n");
	/* Node 65537 is item 65534 (after the mapping, the key and the list), at
	 * column 5 + 2 * 65533. */
	expect_err(text, "line 1, column 131071: more than 65536 YAML nodes; "
	           "expected at most 65536");
	free(text);
}
