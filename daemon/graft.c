/*
 * graft.c - the `graft` command: one program, one subcommand per job.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cli.h"

static const char usage[] =
	"usage: graft <command> [options]\n"
	"\n"
	"commands:\n"
	"  train ARCH.yaml   train an architecture (graft-arch/1) and report its test accuracy\n"
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

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (!strcmp(argv[1], "train"))
		return cli_train(argc - 1, argv + 1);
	fprintf(stderr, "graft: unknown command '%s'\n\n%s", argv[1], usage);
	return CLI_USAGE;
}
