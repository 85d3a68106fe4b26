/*
 * graft.c - the `graft` command: one program, one subcommand per job.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cli/cli.h"
#include "daemon/runtime/runtime.h"
#include "nn/nn.h"

static const char usage[] =
	"usage: graft [--socket PATH] [--json] <command> [options]\n"
	"\n"
	"with graftd (the daemon):\n"
	"  submit SPEC.yaml  submit a search job\n"
	"  jobs              list the jobs\n"
	"  status JOB        a job's state, progress, best so far, cost and ETA\n"
	"  watch JOB         follow a job with a progress bar until it ends\n"
	"  leaderboard JOB   a job's best candidates\n"
	"  export JOB        write the job's model: architecture (and --weights, --onnx)\n"
	"  cancel|pause|resume JOB\n"
	"  health            is graftd up?\n"
	"  dashboard         the dashboard's URL (forwarding a port to the socket if need be)\n"
	"\n"
	"on this machine, without the daemon:\n"
	"  search SPEC.yaml  run a whole search into a SQLite file (--db FILE)\n"
	"  train ARCH.yaml   train an architecture (graft-arch/1) and report its test accuracy\n"
	"  pretrain          make a graft module (or take it from the cache)\n"
	"  glyphs            write a dataset of characters rendered from fonts\n"
	"  ablation          measure what grafts of each source do for random candidates\n"
	"  onnx ARCH WEIGHTS write a trained network as ONNX (-o MODEL.onnx)\n"
	"  predict ARCH WEIGHTS IMAGE...  classify images with a trained network\n"
	"\n"
	"--socket PATH and --json, options of the commands that talk to graftd, may\n"
	"come before the command as well as after it.\n"
	"Run 'graft <command> --help' for a command's options.\n";

int cli_int(const char *opt, const char *val, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = val ? strtol(val, &end, 10) : 0;
	if (!val || errno || *end || end == val || v < min || v > max) {
		fprintf(stderr, "graft: %s: expected an integer %ld..%ld, got '%s'\n", opt, min,
		        max, val ? val : "");
		return GRAFT_EINVAL;
	}
	*out = v;
	return 0;
}

int cli_next_opt(int argc, char **argv, const struct option *opts, const char *cmd,
                 char *name, size_t namelen)
{
	opterr = 0; /* getopt would name the command "train:"; we say it ourselves */
	/* -o is short for --out wherever a command has one. */
	int c = getopt_long(argc, argv, ":ho:", opts, NULL), known = c == 'h';

	for (int i = 0; c > 0 && opts[i].name; i++)
		if (opts[i].val == c) {
			snprintf(name, namelen, "--%s", opts[i].name);
			known = 1;
		}
	if (c > 0 && c != ':' && c != '?' && !known)
		c = '?';
	if (c == ':')
		fprintf(stderr, "graft %s: %s needs a value (see graft %s --help)\n", cmd,
		        argv[optind - 1], cmd);
	else if (c == '?')
		fprintf(stderr, "graft %s: unknown option '%s' (see graft %s --help)\n", cmd,
		        argv[optind - 1], cmd);
	return c == ':' ? '?' : c;
}

int cli_double(const char *opt, const char *val, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = val ? strtod(val, &end) : 0;
	if (!val || errno || *end || end == val || !(v > lo && v < hi)) {
		fprintf(stderr, "graft: %s: expected a number in (%g, %g), got '%s'\n", opt, lo, hi,
		        val ? val : "");
		return GRAFT_EINVAL;
	}
	*out = v;
	return 0;
}

/* Options before the command, as git and kubectl take them: --help, and the
 * options every command that talks to graftd has (--socket, --json), which
 * are handed to the command after its name, where its own parser checks them
 * (a command's own --socket, given later, wins).  Returns the index of the
 * command in argv and fills *nglobal with the argv entries to pass on, or -1
 * after saying what was wrong, or 0 for --help. */
static int global_options(int argc, char **argv, char **global, int *nglobal)
{
	int i = 1;
	*nglobal = 0;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *o = argv[i];
		if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
			fputs(usage, stdout);
			return 0;
		}
		if (!strcmp(o, "--json") || !strncmp(o, "--socket=", 9)) {
			global[(*nglobal)++] = argv[i];
		} else if (!strcmp(o, "--socket")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "graft: --socket needs a value (see graft --help)\n");
				return GRAFT_EINVAL;
			}
			global[(*nglobal)++] = argv[i];
			global[(*nglobal)++] = argv[++i];
		} else {
			fprintf(stderr, "graft: unknown option '%s' before the command (see graft "
			        "--help)\n", o);
			return GRAFT_EINVAL;
		}
	}
	if (i == argc) {
		fprintf(stderr, "graft: no command after the options\n\n%s", usage);
		return GRAFT_EINVAL;
	}
	if (!cli_client_command(argv[i])) {
		static const char *const local[] = { "train", "pretrain", "glyphs", "ablation", "search",
		                                     "onnx",
		                                     "predict", "dashboard" };
		for (size_t k = 0; k < sizeof(local) / sizeof(*local); k++)
			if (!strcmp(argv[i], local[k])) {
				fprintf(stderr, "graft: %s applies to the commands that talk to graftd, "
				        "not to '%s'\n", global[0], argv[i]);
				return GRAFT_EINVAL;
			}
		fprintf(stderr, "graft: unknown command '%s'\n\n%s", argv[i], usage);
		return GRAFT_EINVAL;
	}
	return i;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return CLI_USAGE;
	}
	if (argv[1][0] == '-') {
		/* args: the command, the global options, then the command's own. */
		char **args = malloc(sizeof(*args) * (size_t)(argc + 1));
		if (!args) {
			fprintf(stderr, "graft: out of memory\n");
			return CLI_FAIL;
		}
		int n, cmd = global_options(argc, argv, args + 1, &n);
		if (cmd <= 0) {
			free(args);
			return cmd == 0 ? CLI_OK : CLI_USAGE;
		}
		args[0] = argv[cmd];
		n++;
		for (int k = cmd + 1; k < argc; k++)
			args[n++] = argv[k];
		args[n] = NULL;
		int rc = cli_client(n, args);
		free(args);
		return rc;
	}
	if (!strcmp(argv[1], "train"))
		return cli_train(argc - 1, argv + 1);
	if (!strcmp(argv[1], "pretrain"))
		return cli_pretrain(argc - 1, argv + 1);
	if (!strcmp(argv[1], "glyphs"))
		return cli_glyphs(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ablation"))
		return cli_ablation(argc - 1, argv + 1);
	if (!strcmp(argv[1], "search"))
		return cli_search(argc - 1, argv + 1);
	if (!strcmp(argv[1], "onnx"))
		return cli_onnx(argc - 1, argv + 1);
	if (!strcmp(argv[1], "dashboard"))
		return cli_dashboard(argc - 1, argv + 1);
	if (!strcmp(argv[1], "predict"))
		return cli_predict(argc - 1, argv + 1);
	if (cli_client_command(argv[1]))
		return cli_client(argc - 1, argv + 1);
	if (!strcmp(argv[1], "worker")) /* started by `graft search`, not by people */
		return rt_worker_main(argc - 1, argv + 1);
	fprintf(stderr, "graft: unknown command '%s'\n\n%s", argv[1], usage);
	return CLI_USAGE;
}
