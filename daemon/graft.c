/*
 * graft.c - the `graft` command: one program, one subcommand per job.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cli.h"
#include "daemon/worker.h"
#include "nn/nn.h"

static const char usage[] =
	"usage: graft <command> [options]\n"
	"\n"
	"with graftd (the daemon):\n"
	"  submit SPEC.yaml  submit a search job\n"
	"  jobs              list the jobs\n"
	"  status JOB        a job's state, progress, best so far, cost and ETA\n"
	"  watch JOB         follow a job with a progress bar until it ends\n"
	"  leaderboard JOB   a job's best candidates\n"
	"  export JOB        write a candidate's architecture (and --weights)\n"
	"  cancel|pause|resume JOB\n"
	"  health            is graftd up?\n"
	"\n"
	"on this machine, without the daemon:\n"
	"  search SPEC.yaml  run a whole search into a SQLite file (--db FILE)\n"
	"  train ARCH.yaml   train an architecture (graft-arch/1) and report its test accuracy\n"
	"  pretrain          make a graft module (or take it from the cache)\n"
	"  ablation          measure what grafts of each source do for random candidates\n"
	"\n"
	"Run 'graft <command> --help' for a command's options.\n";

int cli_int(const char *opt, const char *val, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = val ? strtol(val, &end, 10) : 0;
	if (!val || errno || *end || end == val || v < min || v > max) {
		fprintf(stderr, "graft: %s: expected an integer %ld..%ld, got '%s'\n", opt, min,
		        max, val ? val : "");
		return -1;
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
		return -1;
	}
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (!strcmp(argv[1], "train"))
		return cli_train(argc - 1, argv + 1);
	if (!strcmp(argv[1], "pretrain"))
		return cli_pretrain(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ablation"))
		return cli_ablation(argc - 1, argv + 1);
	if (!strcmp(argv[1], "search"))
		return cli_search(argc - 1, argv + 1);
	if (cli_client_command(argv[1]))
		return cli_client(argc - 1, argv + 1);
	if (!strcmp(argv[1], "worker")) /* started by `graft search`, not by people */
		return worker_main(argc - 1, argv + 1);
	fprintf(stderr, "graft: unknown command '%s'\n\n%s", argv[1], usage);
	return CLI_USAGE;
}
