/*
 * cli.h - what the subcommands of the `graft` program share.
 */
#ifndef GRAFT_CLI_H
#define GRAFT_CLI_H

/* Exit codes a script can rely on. */
enum {
	CLI_OK = 0,
	CLI_FAIL = 1,   /* the command ran and failed (bad file, training error) */
	CLI_USAGE = 2,  /* bad arguments */
};

int cli_train(int argc, char **argv);

/* Parses a non-negative integer option value or prints why not; returns 0/-1. */
int cli_int(const char *opt, const char *val, long min, long max, long *out);

#endif
