/*
 * cli.h - the `graft` command line, the one public header of daemon/cli/:
 * what its subcommands share, and the client that talks to graftd (HTTP
 * over its Unix socket, with libcurl).
 *
 * Names: cli_ for everything here.
 */
#ifndef GRAFT_CLI_H
#define GRAFT_CLI_H

#include <jansson.h>
#include <stddef.h>

#include "nn/nn.h"

/* Exit codes a script can rely on. */
enum {
	CLI_OK = 0,
	CLI_FAIL = 1,   /* the command ran and failed (bad file, training error) */
	CLI_USAGE = 2,  /* bad arguments */
};



int cli_train(int argc, char **argv);
int cli_pretrain(int argc, char **argv);
int cli_glyphs(int argc, char **argv);
int cli_ablation(int argc, char **argv);
int cli_search(int argc, char **argv);
int cli_onnx(int argc, char **argv);
int cli_dashboard(int argc, char **argv);
int cli_predict(int argc, char **argv);
/* Writes the model of a config and its weights file as ONNX at out; CLI_OK or
 * CLI_FAIL after saying why (messages start "graft CMD: "). */
int cli_onnx_write(const char *cmd, const char *arch_path, const char *weights_path,
                   const char *out);

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

/* A number in the open interval (lo, hi), or a message and GRAFT_EINVAL. */
int cli_double(const char *opt, const char *val, double lo, double hi, double *out);

/* Parses an integer option value in [min, max] or prints why not; returns 0
 * or GRAFT_EINVAL. */
int cli_int(const char *opt, const char *val, long min, long max, long *out);

/* ---- the client of graftd --------------------------------------------------- */

/* Exit code when graftd is not there to answer. */
#define CLI_NO_DAEMON 3

typedef struct cli_resp {
	long status;     /* HTTP status; 0 when the daemon could not be reached */
	char *body;      /* malloc'd, NUL-terminated */
	size_t len;
	char error[300]; /* why it could not be reached */
} cli_resp;

/* The socket: --socket, else $GRAFT_SOCKET, else DATA_DIR/graftd.sock. */
void cli_socket_path(const char *flag, char *out, size_t len);

/* One request; body may be NULL.  Frees nothing of the caller's. */
cli_resp cli_call(const char *sock, const char *method, const char *path,
                  const char *content_type, const char *body, size_t body_len);
void cli_resp_free(cli_resp *r);

/* Prints why a call failed as a person can act on it and returns the exit
 * code: CLI_NO_DAEMON when graftd is not running (with how to start it), 1
 * for an error graftd answered (its message as it wrote it). */
int cli_fail(const char *cmd, const char *sock, const cli_resp *r);

/* Parses r's body as JSON (NULL and a message when it is not). */
json_t *cli_json(const char *cmd, const cli_resp *r);

#endif
