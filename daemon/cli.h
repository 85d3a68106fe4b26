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

#include <stddef.h>

#include "nn/nn.h"

int cli_train(int argc, char **argv);
int cli_pretrain(int argc, char **argv);
int cli_ablation(int argc, char **argv);
int cli_search(int argc, char **argv);

/* The commands that talk to graftd (cmd_client.c). */
int cli_client_command(const char *name);
int cli_client(int argc, char **argv);

/* getopt_long for a subcommand: messages name the command, name gets the
 * matched option as typed ("--steps") for the value checks that follow.
 * Returns the option's val, -1 at the end, or '?' after saying what was
 * wrong.  Set optind = 1 before the first call. */
struct option;
int cli_next_opt(int argc, char **argv, const struct option *opts, const char *cmd,
                 char *name, size_t namelen);

/* The same for a number in the open interval (lo, hi). */
int cli_double(const char *opt, const char *val, double lo, double hi, double *out);

/* Parses a non-negative integer option value or prints why not; returns 0/-1. */
int cli_int(const char *opt, const char *val, long min, long max, long *out);

#endif
