/*
 * test_onnx.c - the ONNX export, checked outside graft: every op of
 * graft-arch/1 (conv3, conv5, sep3, res3 with and without a projection,
 * pool, skip_from identity and projected, the graft branch), grey and RGB,
 * written, validated by onnx.checker (python3-onnx, full check) and run in
 * ONNX Runtime (npm onnxruntime-node, tests/onnx/run.js): the same top-1
 * class as graft on every image, logits within 1e-4.
 *
 * Skipped, with a message saying so, where Node or the npm package is
 * missing (deploy/install-deps.sh installs both).
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nn/nn.h"
#include "proto/proto.h"
#include "tests/support/scratch.h"

#define RUNTIME "tests/onnx/node_modules/onnxruntime-node/package.json"
#define NIMG 24

static void setup(void)
{
	scratch_make("onnx");
}

TestSuite(onnx, .init = setup, .fini = scratch_remove, .timeout = 300);

static const char grey_arch[] =
	"format: graft-arch/1\n"
	"input: {channels: 1, height: 28, width: 28, normalize: {mean: 0.29, std: 0.35}}\n"
	"classes: 10\n"
	"stem: {op: conv, kernel: 3, channels: 8}\n"
	"graft: {channels: 8, layers: [{kernel: 3, channels: 8}, {kernel: 5, channels: 8}]}\n"
	"blocks:\n"
	"  - {op: conv3, channels: 8}\n"
	"  - {op: res3, channels: 8}\n"                        /* identity shortcut */
	"  - {op: conv5, channels: 16, stride: 2}\n"
	"  - {op: sep3, channels: 16, skip_from: 2}\n"         /* identity skip */
	"  - {op: res3, channels: 24, stride: 2}\n"            /* projected shortcut */
	"  - {op: pool, channels: 32}\n"
	"  - {op: sep3, channels: 48, skip_from: 5}\n"         /* projected skip */
	"head: {op: linear}\n";

static const char rgb_arch[] =
	"format: graft-arch/1\n"
	"input: {channels: 3, height: 32, width: 32,\n"
	"        normalize: {mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26]}}\n"
	"classes: 5\n"
	"stem: {op: conv, kernel: 5, channels: 12}\n"
	"blocks:\n"
	"  - {op: conv3, channels: 16, skip_from: -1}\n"       /* from the stem, projected */
	"  - {op: sep3, channels: 24, stride: 2}\n"
	"  - {op: res3, channels: 24}\n"
	"  - {op: pool, channels: 32}\n"
	"  - {op: conv5, channels: 40, skip_from: 3}\n"
	"head: {op: linear}\n";

static int have_runtime(void)
{
	return system("node --version > /dev/null 2>&1") == 0 && access(RUNTIME, R_OK) == 0;
}

/* A network of the config with random weights and batch statistics that
 * are not the identity (a few training-mode passes), saved to path. */
static nn_net *random_net(const nn_arch *a, const char *path)
{
	char err[GRAFT_ERRLEN];
	nn_net *net;
	nn_rng rng;
	size_t chw = (size_t)a->in_c * a->in_h * a->in_w;
	float *x = malloc(sizeof(float) * chw * NIMG);

	cr_assert_eq(nn_net_from_arch(&net, a, NIMG, 7, err, sizeof err), 0, "%s", err);
	nn_rng_seed(&rng, 11);
	for (int pass = 0; pass < 5; pass++) {
		for (size_t i = 0; i < chw * NIMG; i++)
			x[i] = (float)(nn_rng_normal(&rng) * 1.5 + 0.3);
		nn_net_forward(net, x, NIMG, 1);
	}
	free(x);
	cr_assert_eq(nn_net_save(net, path, err, sizeof err), 0, "%s", err);
	return net;
}

static void write_floats(const char *path, const float *v, size_t n)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(v, sizeof(float), n, f), n);
	fclose(f);
}

static char *run(const char *cmd)
{
	static char out[8192];
	FILE *p = popen(cmd, "r");
	size_t n;

	cr_assert_not_null(p);
	n = fread(out, 1, sizeof out - 1, p);
	out[n] = 0;
	int status = pclose(p);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s failed:\n%s", cmd, out);
	return out;
}

/* Exports the config's random network (by proto_onnx_write, or by `graft
 * onnx` when cli), then runs the model in ONNX Runtime and onnx.checker. */
static void check(const char *yaml, int cli)
{
	char err[GRAFT_ERRLEN], cmd[4096];
	const char *wpath = scratch_path("w.safetensors"), *model = scratch_path("m.onnx");
	const char *ypath = scratch_path("arch.yaml");
	char labels[512];
	size_t llen = 0;
	nn_arch a;
	nn_weights w;

	if (!have_runtime()) {
		/* Criterion shows a skip only when verbose: say it on stderr too. */
		fprintf(stderr, "test_onnx: SKIPPED: ONNX Runtime is not installed here (needs node "
		        "and %s: run deploy/install-deps.sh); the ONNX export was not checked in "
		        "a runtime\n", RUNTIME);
		cr_skip_test("ONNX Runtime is not installed here");
	}
	cr_assert_eq(proto_arch_parse(yaml, strlen(yaml), &a, err, sizeof err), 0, "%s", err);
	for (int k = 0; k < a.classes; k++)
		llen += (size_t)sprintf(labels + llen, "class \"%d\"", k) + 1;
	nn_net *net = random_net(&a, wpath);
	if (cli) {
		char *text = proto_arch_emit_labels(&a, labels);
		FILE *f = fopen(ypath, "w");
		fputs(text, f);
		fclose(f);
		free(text);
		snprintf(cmd, sizeof cmd, "bin/graft onnx %s %s -o %s 2>&1", ypath, wpath, model);
		run(cmd);
	} else {
		cr_assert_eq(nn_safetensors_read(wpath, &w, err, sizeof err), 0, "%s", err);
		cr_assert_eq(proto_onnx_write(model, &a, &w, labels, err, sizeof err), 0, "%s", err);
		nn_weights_free(&w);
	}

	/* The same images both ways: bytes, scaled for ONNX, normalized for graft. */
	size_t hw = (size_t)a.in_h * a.in_w, chw = hw * a.in_c;
	float *px = malloc(sizeof(float) * chw * NIMG), *xn = malloc(sizeof(float) * chw * NIMG);
	nn_rng rng;
	nn_rng_seed(&rng, 5);
	for (int i = 0; i < NIMG; i++)
		for (size_t j = 0; j < chw; j++) {
			int c = (int)(j / hw), byte = (int)nn_rng_below(&rng, 256);
			px[i * chw + j] = (float)(byte / 255.0);
			xn[i * chw + j] = (float)((byte / 255.0 - a.mean[c]) / a.std[c]);
		}
	const float *logits = nn_net_forward(net, xn, NIMG, 0);
	write_floats(scratch_path("in.f32"), px, chw * NIMG);
	snprintf(cmd, sizeof cmd, "node tests/onnx/run.js %s %s %d %d %d %d %s 2>&1", model,
	         scratch_path("in.f32"), NIMG, a.in_c, a.in_h, a.in_w, scratch_path("out.f32"));
	char *said = run(cmd);
	cr_assert(strstr(said, "\"inputs\":[\"pixels\"]") && strstr(said, "\"outputs\":[\"logits\"]"),
	          "%s", said);
	float *ort = malloc(sizeof(float) * (size_t)a.classes * NIMG);
	FILE *f = fopen(scratch_path("out.f32"), "rb");
	cr_assert_eq(fread(ort, sizeof(float), (size_t)a.classes * NIMG, f),
	             (size_t)a.classes * NIMG, "ONNX Runtime's logits are not N x classes");
	fclose(f);
	double worst = 0;
	for (int i = 0; i < NIMG; i++) {
		int bg = 0, bo = 0;
		for (int k = 0; k < a.classes; k++) {
			double d = fabs(ort[i * a.classes + k] - logits[i * a.classes + k]);
			worst = d > worst ? d : worst;
			bg = logits[i * a.classes + k] > logits[i * a.classes + bg] ? k : bg;
			bo = ort[i * a.classes + k] > ort[i * a.classes + bo] ? k : bo;
		}
		cr_assert_eq(bg, bo, "image %d: graft says class %d, ONNX Runtime %d", i, bg, bo);
	}
	cr_assert_leq(worst, 1e-4, "logits differ by up to %g", worst);

	/* onnx.checker with shape inference, and the metadata. */
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c 'import json, onnx, sys; "
	         "m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); "
	         "print(m.ir_version, m.opset_import[0].version); "
	         "print(json.loads({p.key: p.value for p in m.metadata_props}[\"labels\"])[1])' "
	         "%s 2>&1", model);
	said = run(cmd);
	cr_assert(!strncmp(said, "7 13\nclass \"1\"\n", 15), "onnx.checker: %s", said);
	free(px);
	free(xn);
	free(ort);
	nn_net_free(net);
}

Test(onnx, grey_with_a_graft_and_every_block_op)
{
	check(grey_arch, 0);
}

Test(onnx, rgb_through_graft_onnx)
{
	check(rgb_arch, 1);
}

Test(onnx, weights_of_another_network_are_refused_by_name)
{
	char err[GRAFT_ERRLEN];
	nn_arch a, b;
	nn_weights w;

	cr_assert_eq(proto_arch_parse(rgb_arch, strlen(rgb_arch), &a, err, sizeof err), 0);
	cr_assert_eq(proto_arch_parse(grey_arch, strlen(grey_arch), &b, err, sizeof err), 0);
	nn_net_free(random_net(&a, scratch_path("w.safetensors")));
	cr_assert_eq(nn_safetensors_read(scratch_path("w.safetensors"), &w, err, sizeof err), 0);
	int rc = proto_onnx_write(scratch_path("m.onnx"), &b, &w, NULL, err, sizeof err);
	cr_assert_eq(rc, GRAFT_EINVAL);
	cr_assert(strstr(err, "stem.conv.weight has shape (12,3,5,5)"), "%s", err);
	cr_assert_neq(access(scratch_path("m.onnx"), F_OK), 0, "a file was written");
	nn_weights_free(&w);
}
