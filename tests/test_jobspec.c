/*
 * test_jobspec.c - the job spec of DESIGN.md: its example parses, defaults
 * fill the rest, JSON works as well as YAML, and every kind of bad input is
 * refused with the line, column and path of the culprit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "proto/proto.h"

TestSuite(jobspec, .timeout = 30);

static int parse(const char *text, proto_job *j, char *err, size_t errlen)
{
	return proto_job_parse(text, strlen(text), j, err, errlen);
}

static void expect_error(const char *text, const char *what)
{
	char err[GRAFT_ERRLEN];
	proto_job j;
	cr_assert_eq(parse(text, &j, err, sizeof(err)), GRAFT_EINVAL, "accepted:\n%s", text);
	cr_assert(strstr(err, what), "error '%s' lacks '%s'", err, what);
}

Test(jobspec, design_example)
{
	static const char spec[] =
		"name: fmnist-evolution\n"
		"dataset:\n"
		"  format: idx\n"
		"  train_images: /d/train-images-idx3-ubyte.gz\n"
		"  train_labels: /d/train-labels-idx1-ubyte.gz\n"
		"  test_images:  /d/t10k-images-idx3-ubyte.gz\n"
		"  test_labels:  /d/t10k-labels-idx1-ubyte.gz\n"
		"  validation: 10000\n"
		"search:\n"
		"  strategy: evolution\n"
		"  population: 16\n"
		"  sample: 4\n"
		"  candidates: 200\n"
		"  seed: 1\n"
		"space: {max_blocks: 8, ops: [conv3, conv5, sep3, res3, pool], widths: [16, 32, 64, 96],\n"
		"        max_params: 1000000}\n"
		"train: {steps: 300, batch: 128, lr: 0.08, momentum: 0.9, weight_decay: 0.0005,\n"
		"        augment: [crop, flip]}\n"
		"graft: {source: target, channels: 16, pretrain_steps: 1500}\n"
		"workers: 2\n";
	char err[GRAFT_ERRLEN];
	proto_job j;
	cr_assert_eq(parse(spec, &j, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(j.name, "fmnist-evolution");
	cr_assert_str_eq(j.dataset.train_labels, "/d/train-labels-idx1-ubyte.gz");
	cr_assert_eq(j.strategy, SEARCH_EVOLUTION);
	cr_assert_eq(j.population, 16);
	cr_assert_eq(j.space.max_blocks, 8);
	cr_assert_eq(j.space.nwidths, 4);
	cr_assert_eq(j.space.widths[3], 96);
	cr_assert_eq(j.space.max_params, 1000000);
	cr_assert_eq(j.train.steps, 300);
	cr_assert_float_eq(j.train.lr, 0.08f, 1e-7);
	cr_assert_eq(j.train.crop, 1);
	cr_assert_eq(j.train.flip, 1);
	cr_assert_eq(j.inherit_steps, 150, "default: half the steps");
	cr_assert_eq(j.graft, PROTO_GRAFT_TARGET);
	cr_assert_eq(j.workers, 2);
}

Test(jobspec, defaults_for_all_but_the_dataset)
{
	char err[GRAFT_ERRLEN];
	proto_job j;
	cr_assert_eq(parse("dataset: {dir: /data}\n", &j, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(j.dataset.dir, "/data");
	cr_assert_eq(j.dataset.validation, 10000);
	cr_assert_eq(j.candidates, 200);
	cr_assert_eq(j.train.steps, 300);
	cr_assert_eq(j.inherit, 1);
	cr_assert_eq(j.graft, PROTO_GRAFT_TARGET);
	cr_assert_eq(j.graft_steps, 1500);
	cr_assert_eq(j.workers, 1);
	cr_assert_eq(j.retries, 2);
	expect_error("name: x\n", "dataset");
}

Test(jobspec, json_too)
{
	char err[GRAFT_ERRLEN];
	proto_job j;
	const char *spec = "{\"dataset\": {\"dir\": \"/data\", \"validation\": 500},\n"
	                   " \"search\": {\"strategy\": \"random\", \"candidates\": 7},\n"
	                   " \"graft\": {\"source\": \"none\"}, \"train\": {\"inherit\": false}}";
	cr_assert_eq(parse(spec, &j, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(j.strategy, SEARCH_RANDOM);
	cr_assert_eq(j.candidates, 7);
	cr_assert_eq(j.dataset.validation, 500);
	cr_assert_eq(j.graft, PROTO_GRAFT_NONE);
	cr_assert_eq(j.inherit, 0);
	expect_error("{\"dataset\": {\"dir\": \"/data\"}, \"workers\": \"two\"}", "line 1, column 42: workers");
}

Test(jobspec, unknown_keys_and_bad_values_name_their_place)
{
	expect_error("dataset: {dir: /d}\nspace:\n  max_blocks: 4\n  colour: red\n",
	             "line 4, column 3");
	expect_error("dataset: {dir: /d}\nsearch: {strategy: genetic}\n",
	             "line 2, column 20: search.strategy");
	expect_error("dataset: {dir: /d}\ntrain: {steps: -5}\n", "train.steps");
	expect_error("dataset: {dir: /d}\ntrain: {lr: abc}\n", "train.lr");
	expect_error("dataset: {dir: /d}\nsearch: {population: 4, sample: 9}\n", "search.sample");
	expect_error("dataset: {dir: /d}\nspace: {ops: [conv3, conv7]}\n", "space.ops[1]");
	expect_error("dataset: {dir: /d}\nspace: {ops: [pool]}\n", "besides pool");
	expect_error("dataset: {train_images: {url: 'ftp://h/x'}, train_labels: /l}\n",
	             "dataset.train_images.url");
	expect_error("dataset: {train_images: 'file:///etc/passwd', train_labels: /l}\n",
	             "dataset.train_images");
	expect_error("dataset: {train_images: {url: 'https://h/x', sha256: zz}, "
	             "train_labels: /l}\n", "dataset.train_images.sha256");
	expect_error("dataset: {dir: /d}\ngraft: {source: pretrained}\n", "graft.source");
	expect_error("dataset: {dir: /d}\ngraft: {kernel: 4}\n", "graft.kernel");
	expect_error("dataset: {dir: /d}\nlimits: {time: 0}\n", "limits.time");
	expect_error("dataset: {dir: /d}\nworkers: 100000\n", "workers");
	expect_error("dataset: {dir: /d}\ntrain: {steps: 10, inherit_steps: 20}\n",
	             "train.inherit_steps");
}

Test(jobspec, absurd_spaces_are_refused)
{
	expect_error("dataset: {dir: /d}\nspace: {widths: [16, 1000000000]}\n",
	             "space.widths[1]");
	expect_error("dataset: {dir: /d}\nspace: {max_width: 1000000000}\n", "space.max_width");
	expect_error("dataset: {dir: /d}\nspace: {max_blocks: 100000}\n", "space.max_blocks");
	expect_error("dataset: {dir: /d}\nsearch: {candidates: 99999999999}\n",
	             "search.candidates");
	expect_error("dataset: {dir: /d}\nspace: {min_blocks: 5, max_blocks: 3}\n",
	             "space.min_blocks");
}

Test(jobspec, datasets_are_a_dir_or_files)
{
	expect_error("dataset: {dir: /d, train_images: /a}\n", "not both");
	expect_error("dataset: {train_images: /a}\n", "train_labels");
	expect_error("dataset: {dir: /d, validation: 0}\n", "dataset.validation");
	expect_error("dataset: {train_images: /a, train_labels: /b, test_images: /c}\n",
	             "together");
	expect_error("dataset: {format: cifar10, train_images: /a, train_labels: /b}\n",
	             "dataset.format");
	expect_error("dataset: /d\n", "dataset");
}

Test(jobspec, stored_graft_by_sha256)
{
	char err[GRAFT_ERRLEN], spec[256];
	proto_job j;
	const char *sha = "9680454fccd931a3000000000000000000000000000000000000000000000000";
	snprintf(spec, sizeof(spec), "dataset: {dir: /d}\ngraft: {source: %s}\n", sha);
	cr_assert_eq(parse(spec, &j, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(j.graft, PROTO_GRAFT_STORED);
	cr_assert_str_eq(j.graft_sha256, sha);
	cr_assert_eq(parse("dataset: {dir: /d}\ngraft: {source: glyphs}\n", &j, err, sizeof(err)), 0,
	             "%s", err);
	cr_assert_eq(j.graft, PROTO_GRAFT_GLYPHS);
	cr_assert_eq(parse("dataset: {dir: /d}\ngraft: {source: universal}\n", &j, err,
	                   sizeof(err)), 0, "%s", err);
	cr_assert_eq(j.graft, PROTO_GRAFT_UNIVERSAL);
	cr_assert_eq(parse("dataset: {dir: /d}\ngraft: {source: textures}\n", &j, err,
	                   sizeof(err)), 0, "%s", err);
	cr_assert_eq(j.graft, PROTO_GRAFT_TEXTURES);
	expect_error("dataset: {dir: /d}\ngraft: {source: fonts}\n",
	             "graft.source: expected none, target, synthetic, random, glyphs, rotations, "
	             "exemplars, mixture, universal, textures or the sha256");
}

Test(jobspec, broken_yaml_and_non_mappings)
{
	expect_error("dataset: {dir: /d\n", "line");
	expect_error("- a\n- b\n", "a job spec mapping");
	expect_error("dataset: &a {dir: /d}\nx: *a\n", "line");
	char err[GRAFT_ERRLEN];
	proto_job j;
	cr_assert_neq(proto_job_parse("", 0, &j, err, sizeof(err)), 0);
}

/* ---- graftd's configuration file ------------------------------------------------ */

Test(jobspec, daemon_config_example_parses)
{
	char *text, err[GRAFT_ERRLEN];
	size_t len;
	proto_daemon_config c;
	proto_daemon_config_defaults(&c);
	cr_assert_eq(proto_read_file("deploy/graftd.yaml", &text, &len, err, sizeof(err)), 0,
	             "%s (run from the repository root)", err);
	cr_assert_eq(proto_daemon_config_parse(text, len, &c, err, sizeof(err)), 0, "%s", err);
	free(text);
	cr_assert_str_eq(c.data_dir, "/var/lib/graft");
	cr_assert_str_eq(c.socket, "/run/graft/graftd.sock");
	cr_assert_eq(c.workers, 2);
	cr_assert_float_eq(c.heartbeat_s, 120, 1e-9);
	cr_assert_str_eq(c.log_level, "info");
}

Test(jobspec, daemon_config_errors)
{
	char err[GRAFT_ERRLEN];
	proto_daemon_config c;
	const char *t = "workers: 2\nworker_command: [srun, -n1]\nheartbeat: 5\n";
	proto_daemon_config_defaults(&c);
	cr_assert_eq(proto_daemon_config_parse(t, strlen(t), &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.worker_command_len, 2);
	cr_assert_str_eq(c.worker_command[0], "srun");
	t = "wokers: 2\n";
	cr_assert_eq(proto_daemon_config_parse(t, strlen(t), &c, err, sizeof(err)), GRAFT_EINVAL);
	cr_assert(strstr(err, "line 1, column 1"), "%s", err);
	t = "log_level: loud\n";
	cr_assert_eq(proto_daemon_config_parse(t, strlen(t), &c, err, sizeof(err)), GRAFT_EINVAL);
	cr_assert(strstr(err, "log_level"), "%s", err);
	t = "workers: 0\n";
	cr_assert_eq(proto_daemon_config_parse(t, strlen(t), &c, err, sizeof(err)), GRAFT_EINVAL);
	cr_assert_eq(c.workers, 2, "a refused file changes nothing");
}

/* Issue 10, bug 7: a bound checked against the other key's default used to
 * reach an assertion (and abort graftd) because the key it blamed was never
 * written.  The error must name the key the user wrote, and say the other
 * side is a default. */
Test(jobspec, a_bound_against_a_default_names_the_key_written)
{
	expect_error("{dataset: {dir: D}, search: {population: 3}}",
	             "line 1, column 42: search.population: expected at least search.sample "
	             "(4, its default), got '3'");
	expect_error("{dataset: {dir: D}, search: {sample: 30}}",
	             "search.sample: expected at most search.population (16, its default)");
	expect_error("{dataset: {dir: D}, search: {population: 5, sample: 6}}",
	             "search.sample: expected at most search.population (5)");
	expect_error("{dataset: {dir: D}, space: {min_width: 300}}",
	             "space.min_width: expected at most space.max_width (256, its default)");
	expect_error("{dataset: {dir: D}, space: {max_width: 4}}",
	             "space.max_width: expected at least space.min_width");
	expect_error("{dataset: {dir: D}, space: {max_stem: 2}}",
	             "space.max_stem: expected at least space.min_stem (8, its default)");
	expect_error("{dataset: {dir: D}, space: {max_blocks: 1, min_blocks: 3}}",
	             "space.min_blocks: expected at most space.max_blocks (1)");
	expect_error("{dataset: {dir: D}, space: {min_blocks: 30}}",
	             "space.min_blocks: expected at most space.max_blocks");
}

/* deploy/graftd.yaml shows "worker_command: []"; uncommenting it must work. */
Test(jobspec, daemon_config_empty_worker_command)
{
	char err[GRAFT_ERRLEN];
	proto_daemon_config c;
	const char *t = "worker_command: []\n";
	proto_daemon_config_defaults(&c);
	c.worker_command_len = 2;
	cr_assert_eq(proto_daemon_config_parse(t, strlen(t), &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.worker_command_len, 0, "an empty list: graftd's own worker, directly");
}

/* Issue 12's keys: rungs, budgets, lag, warm start and the final stage read
 * as written, with their defaults, and every bad value is refused naming
 * its key. */
Test(jobspec, rungs_budgets_lag_warm_start_and_final)
{
	static const char spec[] =
		"dataset: {dir: D}\n"
		"search: {fidelity: {rungs: [100, 300, 1000], eta: 4, slice: 500}, max_time: 1.5h,\n"
		"         max_cpu: 90m, lag: 3, warm_start: 7}\n"
		"final: {top: 2, steps: 4000, batch: 64, lr: 0.05, augment: [flip], graft: drop}\n";
	char err[GRAFT_ERRLEN];
	proto_job j;
	cr_assert_eq(parse(spec, &j, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(j.fidelity.nrungs, 3);
	cr_assert_eq(j.fidelity.rungs[2], 1000);
	cr_assert_eq(j.fidelity.eta, 4);
	cr_assert_eq(j.fidelity.slice, 500);
	cr_assert_eq(j.train.steps, 1000, "with rungs a candidate's budget is the top rung");
	cr_assert_float_eq(j.max_time_s, 5400, 1e-9);
	cr_assert_float_eq(j.max_cpu_s, 5400, 1e-9);
	cr_assert_eq(j.lag, 3);
	cr_assert_eq(j.warm_start, 7);
	cr_assert_eq(j.final.top, 2);
	cr_assert_eq(j.final.train.steps, 4000);
	cr_assert_eq(j.final.train.batch, 64);
	cr_assert(!j.final.train.crop && j.final.train.flip);
	cr_assert_eq(j.final.graft, PROTO_FINAL_DROP);

	cr_assert_eq(parse("{dataset: {dir: D}}", &j, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(j.fidelity.nrungs, 0);
	cr_assert_eq(j.lag, 8);
	cr_assert_eq(j.final.top, 0, "no final stage without the section");
	cr_assert(j.max_time_s == 0 && j.max_cpu_s == 0);
	cr_assert_eq(parse("{dataset: {dir: D}, final: {}}", &j, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(j.final.top, 3);
	cr_assert_eq(j.final.graft, PROTO_FINAL_BEST);
	cr_assert(j.final.train.crop && j.final.train.flip);

	expect_error("{dataset: {dir: D}, search: {fidelity: {rungs: [300, 100]}}}",
	             "search.fidelity.rungs[1]");
	expect_error("{dataset: {dir: D}, search: {fidelity: {rungs: [300]}}}",
	             "search.fidelity.rungs");
	expect_error("{dataset: {dir: D}, search: {fidelity: {eta: 3}}}", "rungs");
	expect_error("{dataset: {dir: D}, search: {fidelity: {rungs: [1, 2], eta: 1}}}",
	             "search.fidelity.eta");
	expect_error("{dataset: {dir: D}, search: {fidelity: {rungs: [10, 20]}},"
	             " train: {steps: 30}}", "train.steps: 30 differs from the top rung");
	expect_error("{dataset: {dir: D}, search: {max_time: 2x}}", "search.max_time");
	expect_error("{dataset: {dir: D}, search: {max_time: 0}}", "search.max_time");
	expect_error("{dataset: {dir: D}, search: {max_cpu: -3h}}", "search.max_cpu");
	expect_error("{dataset: {dir: D}, search: {lag: -1}}", "search.lag");
	expect_error("{dataset: {dir: D}, search: {warm_start: 0}}", "search.warm_start");
	expect_error("{dataset: {dir: D}, final: {graft: maybe}}", "final.graft");
	expect_error("{dataset: {dir: D}, final: {steps: 100, warmup: 200}}", "final.warmup");
	expect_error("{dataset: {dir: D}, final: {colour: red}}", "final: unknown key 'colour'");
}

/* The Slurm executor's section: what srun will be given is checked when the
 * file is read, each mistake a sentence naming the key. */
Test(jobspec, daemon_config_executor)
{
	char err[GRAFT_ERRLEN];
	proto_daemon_config c;
	const char *t = "executor: {kind: slurm, partition: debug, cpus_per_worker: 2,\n"
	                "  mem_per_worker: 4G, time: '1-02:00:00', extra_args: [--qos=low],\n"
	                "  pending_timeout: 30, shared_dir: /shared/graft}\n";
	proto_daemon_config_defaults(&c);
	cr_assert_eq(c.executor.kind, PROTO_EXECUTOR_LOCAL);
	cr_assert_eq(c.executor.cpus_per_worker, 1);
	cr_assert_eq(proto_daemon_config_parse(t, strlen(t), &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.executor.kind, PROTO_EXECUTOR_SLURM);
	cr_assert_str_eq(c.executor.partition, "debug");
	cr_assert_eq(c.executor.cpus_per_worker, 2);
	cr_assert_str_eq(c.executor.mem_per_worker, "4G");
	cr_assert_str_eq(c.executor.time, "1-02:00:00");
	cr_assert_eq(c.executor.extra_args_len, 1);
	cr_assert_str_eq(c.executor.extra_args[0], "--qos=low");
	cr_assert_float_eq(c.executor.pending_timeout_s, 30, 1e-9);
	cr_assert_str_eq(c.executor.shared_dir, "/shared/graft");

	static const struct { const char *text, *says; } bad[] = {
		{ "executor: {kind: pbs, shared_dir: /s}\n", "executor.kind" },
		{ "executor: {partition: debug}\n", "executor: missing required key 'kind'" },
		{ "executor: {kind: slurm}\n", "executor.shared_dir: expected a directory every node" },
		{ "executor: {kind: slurm, shared_dir: rel/dir}\n", "an absolute path" },
		{ "executor: {kind: slurm, shared_dir: /s, mem_per_worker: lots}\n",
		  "executor.mem_per_worker: expected a size such as 4096M or 4G" },
		{ "executor: {kind: slurm, shared_dir: /s, mem_per_worker: 4GB}\n", "mem_per_worker" },
		{ "executor: {kind: slurm, shared_dir: /s, time: 2h}\n", "executor.time" },
		{ "executor: {kind: slurm, shared_dir: /s, partition: 'a b'}\n", "executor.partition" },
		{ "executor: {kind: slurm, shared_dir: /s, cpus_per_worker: 0}\n", "cpus_per_worker" },
		{ "executor: {kind: slurm, shared_dir: /s, extra_args: --qos}\n", "extra_args" },
		{ "executor: {kind: slurm, shared_dir: /s, nodes: 3}\n", "nodes" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		proto_daemon_config_defaults(&c);
		cr_assert_eq(proto_daemon_config_parse(bad[i].text, strlen(bad[i].text), &c, err,
		                                       sizeof(err)), GRAFT_EINVAL, "%s", bad[i].text);
		cr_assert(strstr(err, bad[i].says), "%s: '%s' lacks '%s'", bad[i].text, err,
		          bad[i].says);
		cr_assert_eq(c.executor.kind, PROTO_EXECUTOR_LOCAL, "a refused file changes nothing");
	}
}
