/*
 * api.h - graftd's HTTP API (DESIGN.md): routes a request to the scheduler
 * or the store and answers it in JSON (YAML for an export, safetensors for
 * weights, Prometheus text for metrics).
 */
#ifndef GRAFT_API_H
#define GRAFT_API_H

#include "daemon/sched.h"
#include "daemon/server.h"
#include "store/store.h"

typedef struct api {
	sched *sched;
	store *st;
	server *server;        /* for its statistics */
	double started;        /* unix time */
	const char *version;
} api;

/* The server_handler: ctx is an api. */
void api_handle(conn *c, const proto_http_req *req, void *ctx);

#endif
