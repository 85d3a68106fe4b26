/*
 * test_daemon_folder.c - an image folder through graftd, end to end: a job
 * on a folder of PNGs runs, its final model is scored on the folder's test
 * part, the job says what its data is (classes, skipped images), the export
 * names the classes; every kind of bad image is refused at submission with
 * the file named (or skipped and counted with skip_bad), and the daemon keeps
 * serving.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include "proto/proto.h"
#include "tests/support/graftd_jobs.h"
#include "tests/support/graftd_run.h"
#include "tests/support/image_write.h"
#include "tests/support/scratch.h"

static void setup(void)
{
	scratch_make("dfolder");
	setenv("GRAFT_CACHE_DIR", scratch_path("grafts"), 1);
	signal(SIGPIPE, SIG_IGN);
}

static void teardown(void)
{
	graftd_kill_all();
	scratch_remove();
}

TestSuite(daemon_folder, .init = setup, .fini = teardown, .timeout = 400);

static const char spec_fmt[] =
	"name: photos\n"
	"dataset: {format: folder, dir: %s, size: 28, channels: 1, validation: 60%s}\n"
	"search: {strategy: evolution, population: 2, sample: 2, candidates: 3, seed: 2}\n"
	"space: {max_blocks: 2, widths: [8, 16], min_stem: 8, max_stem: 8, max_flops: 3000000}\n"
	"train: {steps: 30, batch: 32, lr: 0.05}\n"
	"graft: {source: none}\n"
	"%s";

Test(daemon_folder, a_folder_job_runs_names_its_classes_and_scores_the_test_part)
{
	char dir[700], root[700], spec[1600], path[128];

	snprintf(root, sizeof root, "%s", scratch_path("photos"));
	cr_assert_eq(mkdir(root, 0755), 0);
	image_write_fashion(scratch_path("photos/train"), 0, 30, "png");
	image_write_fashion(scratch_path("photos/test"), 1, 10, "png");
	/* One bad file, skipped and counted. */
	image_write_bad("truncated-png", scratch_path("photos/train/8_bag/cut.png"));
	snprintf(spec, sizeof spec, spec_fmt, root, ", skip_bad: true",
	         "final: {top: 1, steps: 40, batch: 32, lr: 0.05, augment: [], graft: frozen}\n");
	snprintf(dir, sizeof dir, "%s", scratch_path("d"));
	pid_t pid = graftd_start(dir, 1);
	int64_t id = graftd_submit(dir, spec);
	wait_state(dir, id, "done", 300);

	snprintf(path, sizeof path, "/v1/jobs/%lld", (long long)id);
	json_t *j = graftd_get_json(dir, path, 200), *d = json_object_get(j, "dataset");
	cr_assert_str_eq(json_string_value(json_object_get(d, "format")), "folder");
	cr_assert_str_eq(json_string_value(json_object_get(d, "location")), root);
	cr_assert_eq(json_integer_value(json_object_get(d, "images")), 300);
	cr_assert_eq(json_integer_value(json_object_get(d, "skipped")), 1);
	json_t *classes = json_object_get(d, "classes");
	cr_assert_eq(json_array_size(classes), 10);
	for (int k = 0; k < 10; k++)
		cr_assert_str_eq(json_string_value(json_array_get(classes, (size_t)k)),
		                 image_fashion_classes[k]);
	json_t *w = json_object_get(json_object_get(j, "final"), "winner");
	cr_assert(json_is_object(w), "no final winner");
	double test = json_number_value(json_object_get(w, "test_accuracy"));
	cr_assert(test > 0.2 && test <= 1, "test accuracy %g on the folder's test part", test);
	int64_t fid = json_integer_value(json_object_get(w, "id"));
	json_decref(j);

	/* Both exports name the classes, in label order. */
	char *labels;
	nn_arch a;
	char err[GRAFT_ERRLEN];
	const char *exports[2] = { "/v1/jobs/%lld/export", "/v1/finals/%lld/export" };
	for (int e = 0; e < 2; e++) {
		snprintf(path, sizeof path, exports[e], (long long)(e ? fid : id));
		resp ex = graftd_http(dir, "GET", path, NULL, NULL);
		cr_assert_eq(ex.status, 200, "%s", ex.body);
		cr_assert_eq(proto_arch_parse_labels(ex.body, ex.len, &a, &labels, err, sizeof err),
		             0, "%s", err);
		cr_assert_not_null(labels, "%s has no labels:\n%s", path, ex.body);
		const char *p = labels;
		for (int k = 0; k < 10; k++, p += strlen(p) + 1)
			cr_assert_str_eq(p, image_fashion_classes[k]);
		free(labels);
		free(ex.body);
	}

	/* As a user goes on: export with the ONNX model, then predict. */
	char arch[700], weights[700], onnx[700], images[700];
	snprintf(arch, sizeof arch, "%s", scratch_path("model.yaml"));
	snprintf(weights, sizeof weights, "%s", scratch_path("model.safetensors"));
	snprintf(onnx, sizeof onnx, "%s", scratch_path("model.onnx"));
	snprintf(images, sizeof images, "%s", scratch_path("photos/test/1_trouser"));
	setenv("GRAFT_SOCKET", graftd_socket(dir), 1);
	cmd_run *r = graft_cmd("export", "1", "-o", arch, "--weights", weights, "--onnx", onnx,
	                       NULL);
	cr_assert_eq(r->code, 0, "export: %s", r->err);
	cr_assert(strstr(r->err, "(ONNX)"), "%s", r->err);
	struct stat st;
	cr_assert(stat(onnx, &st) == 0 && st.st_size > 1000, "no ONNX model written");
	/* The API's ONNX of the final model: made once, kept, a valid model with
	 * the labels (what the dashboard links to). */
	snprintf(path, sizeof path, "/v1/finals/%lld/onnx", (long long)fid);
	resp ox = graftd_http(dir, "GET", path, NULL, NULL);
	cr_assert_eq(ox.status, 200, "%s", ox.body);
	char apionnx[700];
	snprintf(apionnx, sizeof apionnx, "%s", scratch_path("api.onnx"));
	FILE *of = fopen(apionnx, "wb");
	fwrite(ox.body, 1, ox.len, of);
	fclose(of);
	free(ox.body);
	char check[1600];
	snprintf(check, sizeof check, "/usr/bin/python3 -c 'import json, onnx, sys; "
	         "m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); "
	         "print(json.loads({p.key: p.value for p in m.metadata_props}[\"labels\"])[8])' "
	         "%s 2>&1", apionnx);
	FILE *py = popen(check, "r");
	char said[512] = "";
	size_t got = fread(said, 1, sizeof said - 1, py);
	said[got] = 0;
	cr_assert_eq(pclose(py), 0, "onnx.checker: %s", said);
	cr_assert(!strncmp(said, "8_bag", 5), "%s", said);
	resp again = graftd_http(dir, "GET", path, NULL, NULL);
	cr_assert_eq(again.status, 200);
	free(again.body);
	r = graft_cmd("predict", arch, weights, images, "--json", "--threads", "1", NULL);
	cr_assert_eq(r->code, 0, "predict: %s", r->err);
	cr_assert(strstr(r->err, "10 images in") && strstr(r->err, "images/s"), "%s", r->err);
	int lines = 0;
	for (char *line = strtok(r->out, "\n"); line; line = strtok(NULL, "\n"), lines++) {
		json_t *p = json_loads(line, 0, NULL);
		cr_assert_not_null(p, "not JSON: %s", line);
		int label = (int)json_integer_value(json_object_get(p, "label"));
		double prob = json_number_value(json_object_get(p, "probability"));
		cr_assert(label >= 0 && label < 10 && prob > 0.1 && prob <= 1, "%s", line);
		cr_assert_str_eq(json_string_value(json_object_get(p, "class")),
		                 image_fashion_classes[label]);
		cr_assert(strstr(json_string_value(json_object_get(p, "image")), "1_trouser/"));
		json_decref(p);
	}
	cr_assert_eq(lines, 10);
	r = graft_cmd("leaderboard", "1", NULL);
	cr_assert_eq(r->code, 0, "%s", r->err);
	cr_assert(strstr(r->out, "classes: 0_tshirt, 1_trouser, 2_pullover,"), "%s", r->out);
	graftd_stop(pid, SIGTERM);
}

Test(daemon_folder, bad_images_are_refused_with_the_file_named_and_the_daemon_keeps_serving)
{
	const image_bad_case *cases = image_bad_cases;
	char dir[700], root[700], bad[900], spec[1600];

	snprintf(dir, sizeof dir, "%s", scratch_path("d"));
	pid_t pid = graftd_start(dir, 1);
	for (size_t i = 0; i < IMAGE_BAD_CASES; i++) {
		char name[32];
		snprintf(name, sizeof name, "bad%zu", i);
		snprintf(root, sizeof root, "%s", scratch_path(name));
		image_write_fashion(root, 0, 3, "png");
		snprintf(bad, sizeof bad, "%s/5_sandal/%s", root, cases[i].file);
		image_write_bad(cases[i].kind, bad);
		snprintf(spec, sizeof spec, spec_fmt, root, "", "");
		resp r = graftd_http(dir, "POST", "/v1/jobs", "application/yaml", spec);
		cr_assert_eq(r.status, 422, "%s: got %d %s", cases[i].kind, r.status, r.body);
		cr_assert(strstr(r.body, bad) && strstr(r.body, cases[i].says),
		          "%s: '%s' lacks the file or '%s'", cases[i].kind, r.body, cases[i].says);
		cr_assert(strstr(r.body, "bad_dataset"), "%s: %s", cases[i].kind, r.body);
		free(r.body);
		json_decref(graftd_get_json(dir, "/v1/health", 200));
	}
	/* An empty class folder and a lone class: refused in a sentence too. */
	snprintf(root, sizeof root, "%s", scratch_path("bad0"));
	snprintf(bad, sizeof bad, "%s/nothing", root);
	cr_assert_eq(mkdir(bad, 0755), 0);
	snprintf(spec, sizeof spec, spec_fmt, root, "", "");
	resp r = graftd_http(dir, "POST", "/v1/jobs", "application/yaml", spec);
	cr_assert_eq(r.status, 422, "%s", r.body);
	cr_assert(strstr(r.body, "no images (.png, .jpg, .jpeg) in this class folder"), "%s",
	          r.body);
	free(r.body);
	/* A spec's folder keys outside a folder dataset: a 400 naming the key. */
	r = graftd_http(dir, "POST", "/v1/jobs", "application/yaml",
	                "dataset: {dir: /tmp, size: 28}\n");
	cr_assert_eq(r.status, 400, "%s", r.body);
	cr_assert(strstr(r.body, "dataset.size") && strstr(r.body, "format: folder"), "%s", r.body);
	free(r.body);
	json_t *jobs = graftd_get_json(dir, "/v1/jobs", 200);
	cr_assert_eq(json_array_size(json_object_get(jobs, "jobs")), 0, "nothing was accepted");
	json_decref(jobs);
	graftd_stop(pid, SIGTERM);
}
