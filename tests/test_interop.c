/*
 * test_interop.c - an exported network means the same in PyTorch: a short
 * search on graftd, its best candidate exported (architecture + weights),
 * trained further with `graft train --init`, then rebuilt in PyTorch from
 * the YAML alone by tests/interop/check_export.py, which must reproduce
 * graft's test accuracy within 0.2 points.  Skipped, visibly, when Debian's
 * python3-torch is not installed.
 */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/support/graftd_run.h"
#include "tests/support/idx_write.h"
#include "tests/support/scratch.h"

#define PYTHON "/usr/bin/python3"
#define CHECK "tests/interop/check_export.py"

static void setup(void)
{
	scratch_make("interop");
}

static void teardown(void)
{
	graftd_kill_all();
	scratch_remove();
}

TestSuite(interop, .init = setup, .fini = teardown, .timeout = 300);

Test(interop, an_export_reproduces_its_accuracy_in_pytorch)
{
	char data[700], dir[700], spec[700], arch[700], w[700], trained[700];
	snprintf(data, sizeof(data), "%s", scratch_path("data"));
	snprintf(dir, sizeof(dir), "%s", scratch_path("d"));
	snprintf(spec, sizeof(spec), "%s", scratch_path("spec.yaml"));
	snprintf(arch, sizeof(arch), "%s", scratch_path("best.yaml"));
	snprintf(w, sizeof(w), "%s", scratch_path("best.safetensors"));
	snprintf(trained, sizeof(trained), "%s", scratch_path("trained.safetensors"));
	cr_assert_eq(mkdir(data, 0755), 0);
	idx_write_part(data, "train", 1500, 12, 3, 0, 5, 0, 3);
	idx_write_part(data, "t10k", 600, 12, 3, 1, 6, 0, 4);
	setenv("GRAFT_CACHE_DIR", scratch_path("cache"), 1);
	FILE *f = fopen(spec, "w");
	/* Every op and a graft, so the PyTorch side reads all of the format. */
	fprintf(f, "dataset: {dir: %s, validation: 300}\n"
	        "search: {population: 3, sample: 2, candidates: 6, seed: 4}\n"
	        "space: {min_blocks: 3, max_blocks: 4, widths: [8, 16], max_flops: 3000000}\n"
	        "train: {steps: 40, batch: 32}\n"
	        "graft: {source: target, channels: 6, pretrain_steps: 40}\n", data);
	fclose(f);
	graftd_start(dir, 1);
	setenv("GRAFT_SOCKET", graftd_socket(dir), 1);
	cmd_run *r = graft_cmd("submit", spec, NULL);
	cr_assert_eq(r->code, 0, "%s", r->err);
	r = graft_cmd("watch", "1", "--interval", "0.2", NULL);
	cr_assert_eq(r->code, 0, "%s%s", r->out, r->err);
	r = graft_cmd("export", "1", "-o", arch, "--weights", w, NULL);
	cr_assert_eq(r->code, 0, "%s", r->err);
	r = graft_cmd("train", arch, "--init", w, "--graft-file", w, "--graft", "frozen",
	              "--data", data, "--validation", "300", "--steps", "30", "--threads", "1",
	              "--out", trained, NULL);
	cr_assert_eq(r->code, 0, "%s%s", r->out, r->err);
	cr_assert(strstr(r->out, "started from"), "%s", r->out);
	const char *t = strstr(r->out, "test accuracy ");
	cr_assert_not_null(t, "%s", r->out);
	char expect[32];
	snprintf(expect, sizeof(expect), "%.6f", atof(t + strlen("test accuracy ")));

	if (access(PYTHON, X_OK))
		cr_skip_test("SKIPPED: no %s; the interoperability check needs python3-torch", PYTHON);
	char out[700];
	snprintf(out, sizeof(out), "%s", scratch_path("check.txt"));
	char *argv[] = { PYTHON, CHECK, arch, trained, "--data", data, "--expect", expect, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	pid_t pid;
	int status;
	cr_assert_eq(posix_spawn(&pid, PYTHON, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	waitpid(pid, &status, 0);
	char text[4096] = "";
	FILE *o = fopen(out, "r");
	size_t n = fread(text, 1, sizeof(text) - 1, o);
	text[n] = '\0';
	fclose(o);
	cr_assert(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		cr_skip_test("%s", text);
	cr_assert_eq(WEXITSTATUS(status), 0, "graft said %s; PyTorch:\n%s", expect, text);
	cr_log_info("%s", text);
}
