/*
 * cmd_model.c - what a user does with an exported model, without graftd:
 * `graft onnx` writes it as ONNX, `graft predict` runs it on images.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/cli/cli.h"
#include "proto/proto.h"

static const char onnx_usage[] =
	"usage: graft onnx ARCH.yaml WEIGHTS -o MODEL.onnx\n"
	"\n"
	"Writes a trained network (a graft-arch/1 config and its safetensors weights, as\n"
	"`graft export` writes them) as ONNX, opset 13: one input, float32 N x C x H x W\n"
	"pixels scaled to [0, 1] (the config's normalization is inside the model), one\n"
	"output, the N x classes logits; the class names in its metadata (\"labels\").\n";

static const char predict_usage[] =
	"usage: graft predict ARCH.yaml WEIGHTS IMAGE|DIR... [--json] [--threads N]\n"
	"\n"
	"The class (and its probability) a trained network gives each image: PNG or\n"
	"JPEG files, or every image under a folder, resized to the network's input as\n"
	"image folders are.  Ends with the throughput, decoding included.\n"
	"\n"
	"  --json        one JSON object per image instead of a table\n"
	"  --threads N   threads (default: all cores)\n";

/* The config, its class names (NULL when it has none) and its weights. */
static int load_model(const char *cmd, const char *arch_path, const char *weights_path,
                      nn_arch *a, char **labels, nn_weights *w)
{
	char err[GRAFT_ERRLEN], *text;
	size_t len;

	*labels = NULL;
	if (w)
		memset(w, 0, sizeof(*w));
	if (proto_read_file(arch_path, &text, &len, err, sizeof(err))) {
		fprintf(stderr, "graft %s: %s\n", cmd, err);
		return CLI_FAIL;
	}
	int rc = proto_arch_parse_labels(text, len, a, labels, err, sizeof(err));
	free(text);
	if (rc) {
		fprintf(stderr, "graft %s: %s: %s\n", cmd, arch_path, err);
		return CLI_FAIL;
	}
	if (w && nn_safetensors_read(weights_path, w, err, sizeof(err))) {
		fprintf(stderr, "graft %s: %s\n", cmd, err);
		free(*labels);
		*labels = NULL;
		return CLI_FAIL;
	}
	return 0;
}

int cli_onnx_write(const char *cmd, const char *arch_path, const char *weights_path,
                   const char *out)
{
	char err[GRAFT_ERRLEN], *labels;
	nn_arch a;
	nn_weights w;

	if (load_model(cmd, arch_path, weights_path, &a, &labels, &w))
		return CLI_FAIL;
	int rc = proto_onnx_write(out, &a, &w, labels, err, sizeof(err));
	free(labels);
	nn_weights_free(&w);
	if (rc) {
		fprintf(stderr, "graft %s: %s: %s\n", cmd, out, err);
		return CLI_FAIL;
	}
	return CLI_OK;
}

int cli_onnx(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, 0, 'o' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 }
	};
	const char *out = NULL;
	char name[32];
	int ch;

	optind = 1;
	while ((ch = cli_next_opt(argc, argv, opts, "onnx", name, sizeof(name))) != -1) {
		if (ch == 'h') {
			fputs(onnx_usage, stdout);
			return CLI_OK;
		}
		if (ch != 'o')
			return CLI_USAGE;
		out = optarg;
	}
	if (argc - optind != 2 || !out) {
		fprintf(stderr, "graft onnx: expected ARCH.yaml WEIGHTS -o MODEL.onnx\n\n%s",
		        onnx_usage);
		return CLI_USAGE;
	}
	int rc = cli_onnx_write("onnx", argv[optind], argv[optind + 1], out);
	if (rc == CLI_OK)
		printf("wrote %s\n", out);
	return rc;
}

/* ---- predict ---------------------------------------------------------------- */

/* An image file by its name. */
static int image_name(const char *name, long long size, void *ctx)
{
	(void)size;
	(void)ctx;
	return nn_image_is_image_name(name);
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* Decodes path into x (c x h x w floats), normalized as training does. */
static int image_input(const nn_arch *a, const char *path, float *x, char *err, size_t errlen)
{
	size_t hw = (size_t)a->in_h * a->in_w;
	uint8_t *plane = malloc(hw);
	nn_image img = { 0 };
	int rc = plane ? nn_image_read(path, a->in_w, a->in_h, &img, err, errlen) : GRAFT_ENOMEM;

	if (rc == 0 && (rc = nn_image_to_channels(&img, a->in_c)))
		snprintf(err, errlen, "%s: out of memory", path);
	for (int c = 0; c < a->in_c && rc == 0; c++) {
		rc = nn_image_resize_plane(&img, c, plane, a->in_w, a->in_h);
		for (size_t i = 0; i < hw && rc == 0; i++)
			x[c * hw + i] = (float)((plane[i] / 255.0 - a->mean[c]) / a->std[c]);
	}
	nn_image_free(&img);
	free(plane);
	return rc;
}

#define PREDICT_BATCH 64

int cli_predict(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, 0, 'j' }, { "threads", required_argument, 0, 't' },
		{ "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 }
	};
	char name[32], err[GRAFT_ERRLEN], *labels = NULL;
	long threads = 0;
	int json = 0, ch, rc = CLI_FAIL;
	nn_paths ps = { 0 };
	nn_arch a;
	nn_net *net = NULL;
	float *x = NULL;

	optind = 1;
	while ((ch = cli_next_opt(argc, argv, opts, "predict", name, sizeof(name))) != -1) {
		if (ch == 'h') {
			fputs(predict_usage, stdout);
			return CLI_OK;
		}
		if (ch == 'j')
			json = 1;
		else if (ch != 't' || cli_int(name, optarg, 1, 256, &threads))
			return CLI_USAGE;
	}
	if (argc - optind < 3) {
		fprintf(stderr, "graft predict: expected ARCH.yaml WEIGHTS IMAGE...\n\n%s",
		        predict_usage);
		return CLI_USAGE;
	}
	const char *arch_path = argv[optind], *weights = argv[optind + 1];
	if (load_model("predict", arch_path, NULL, &a, &labels, NULL))
		return CLI_FAIL;
	nn_set_threads(threads > 0 ? (int)threads : (int)sysconf(_SC_NPROCESSORS_ONLN));
	for (int i = optind + 2; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st)) {
			fprintf(stderr, "graft predict: %s: no such file or folder\n", argv[i]);
			goto out;
		}
		if (S_ISDIR(st.st_mode) ? nn_paths_add_tree(&ps, argv[i], image_name, NULL)
		                        : nn_paths_add(&ps, argv[i])) {
			fprintf(stderr, "graft predict: %s: cannot list it\n", argv[i]);
			goto out;
		}
	}
	if (ps.n == 0) {
		fprintf(stderr, "graft predict: no images (.png, .jpg, .jpeg) to predict\n");
		goto out;
	}
	if (nn_net_from_arch(&net, &a, PREDICT_BATCH, 1, err, sizeof(err)) ||
	    nn_net_load(net, weights, "", err, sizeof(err))) {
		fprintf(stderr, "graft predict: %s\n", err);
		goto out;
	}
	size_t chw = (size_t)a.in_c * a.in_h * a.in_w;
	if (!(x = malloc(sizeof(float) * chw * PREDICT_BATCH))) {
		fprintf(stderr, "graft predict: out of memory\n");
		goto out;
	}
	if (!json)
		printf("%-48s %-20s %s\n", "IMAGE", "CLASS", "PROBABILITY");
	double t0 = now_s(), decode = 0;
	int bad = 0;
	for (int first = 0; first < ps.n; first += PREDICT_BATCH) {
		int n = ps.n - first < PREDICT_BATCH ? ps.n - first : PREDICT_BATCH, ok[PREDICT_BATCH];
		double td = now_s();
		for (int i = 0; i < n; i++) {
			ok[i] = image_input(&a, ps.p[first + i], x + chw * (size_t)i, err, sizeof(err)) == 0;
			if (!ok[i]) {
				fprintf(stderr, "graft predict: %s\n", err);
				memset(x + chw * (size_t)i, 0, sizeof(float) * chw);
				bad++;
			}
		}
		decode += now_s() - td;
		const float *logits = nn_net_forward(net, x, n, 0);
		for (int i = 0; i < n; i++) {
			if (!ok[i])
				continue;
			const float *l = logits + (size_t)i * a.classes;
			int best = 0;
			double sum = 0;
			for (int k = 1; k < a.classes; k++)
				best = l[k] > l[best] ? k : best;
			for (int k = 0; k < a.classes; k++)
				sum += exp((double)l[k] - l[best]);
			const char *cls = labels ? labels : NULL;
			for (int k = 0; cls && k < best; k++)
				cls += strlen(cls) + 1;
			char num[16];
			snprintf(num, sizeof(num), "%d", best);
			if (json) {
				json_t *o = json_pack("{s:s, s:i, s:s, s:f}", "image", ps.p[first + i],
				                      "label", best, "class", cls ? cls : num,
				                      "probability", 1.0 / sum);
				char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
				if (s)
					puts(s);
				free(s);
				json_decref(o);
			} else {
				printf("%-48s %-20s %.4f\n", ps.p[first + i], cls ? cls : num, 1.0 / sum);
			}
		}
	}
	double total = now_s() - t0;
	fprintf(stderr, "%d images in %.3f s: %.0f images/s (decoding %.3f s, the network "
	        "%.3f s)%s\n", ps.n, total, ps.n / (total > 0 ? total : 1e-9), decode,
	        total - decode, bad ? "; some could not be read (above)" : "");
	rc = bad ? CLI_FAIL : CLI_OK;
out:
	nn_paths_clear(&ps);
	free(x);
	free(labels);
	nn_net_free(net);
	return rc;
}
