/*
 * client.h - the `graft` commands that talk to graftd: HTTP over its Unix
 * socket with libcurl.
 */
#ifndef GRAFT_CLIENT_H
#define GRAFT_CLIENT_H

#include <jansson.h>
#include <stddef.h>

/* Exit code when graftd is not there to answer. */
#define CLI_NO_DAEMON 3

typedef struct client_resp {
	long status;     /* HTTP status; 0 when the daemon could not be reached */
	char *body;      /* malloc'd, NUL-terminated */
	size_t len;
	char error[300]; /* why it could not be reached */
} client_resp;

/* The socket: --socket, else $GRAFT_SOCKET, else DATA_DIR/graftd.sock. */
void client_socket_path(const char *flag, char *out, size_t len);

/* One request; body may be NULL.  Frees nothing of the caller's. */
client_resp client_call(const char *sock, const char *method, const char *path,
                        const char *content_type, const char *body, size_t body_len);
void client_resp_free(client_resp *r);

/* Prints why a call failed as a person can act on it and returns the exit
 * code: CLI_NO_DAEMON when graftd is not running (with how to start it), 1
 * for an error graftd answered (its message as it wrote it). */
int client_fail(const char *cmd, const char *sock, const client_resp *r);

/* Parses r's body as JSON (NULL and a message when it is not). */
json_t *client_json(const char *cmd, const client_resp *r);

#endif
