/*
 * cmd_dashboard.c - `graft dashboard`: the URL of graftd's dashboard.  When
 * graftd serves a TCP port (--http), that; otherwise a forwarder, here, from
 * a loopback port to graftd's socket (a browser cannot open a Unix socket),
 * which runs until interrupted.  Bytes are copied as they come, both ways:
 * the forwarder knows nothing of HTTP, and the socket's access rule (its
 * file mode) is what it was, since only this user can run it against the
 * socket and the port is on loopback.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "daemon/cli/cli.h"

static const char usage[] =
	"usage: graft dashboard [--port N] [--socket PATH]\n"
	"\n"
	"Prints the URL of graftd's dashboard.  When graftd has no TCP port (graftd\n"
	"--http), forwards one on 127.0.0.1 to its socket until interrupted.\n"
	"\n"
	"  --port N       the forwarder's port (default: any free one)\n"
	"  --socket PATH  graftd's socket (default $GRAFT_SOCKET, else DATA_DIR/graftd.sock)\n";

/* One browser connection and its twin on graftd's socket. */
struct link {
	uv_tcp_t client;
	uv_pipe_t daemon;
	uv_connect_t connect;
	uv_shutdown_t shut[2];
	int open;          /* handles not yet closed */
	int closing;
	int ended;         /* directions whose end has been passed on (2: done) */
};

static const char *sock_path;

static void link_closed(uv_handle_t *h)
{
	struct link *l = h->data;
	if (--l->open == 0)
		free(l);
}

static void link_close(struct link *l)
{
	if (l->closing)
		return;
	l->closing = 1;
	uv_close((uv_handle_t *)&l->client, link_closed);
	uv_close((uv_handle_t *)&l->daemon, link_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	b->base = malloc(65536);
	b->len = b->base ? 65536 : 0;
}

struct write_req {
	uv_write_t w;
	char *data;
};

static void on_written(uv_write_t *w, int status)
{
	struct write_req *r = (struct write_req *)w;
	struct link *l = w->handle->data;
	free(r->data);
	free(r);
	if (status < 0)
		link_close(l);
}

/* One side's end has reached the other (after what was queued before it);
 * when both have, the link is done. */
static void on_shutdown(uv_shutdown_t *r, int status)
{
	struct link *l = r->handle->data;
	if (status < 0 || ++l->ended == 2)
		link_close(l);
}

/* Bytes from one side go to the other; an end (a client that has sent its
 * request and half-closed) is passed on as a shutdown, so the answer can
 * still come back. */
static void on_read(uv_stream_t *from, ssize_t n, const uv_buf_t *b)
{
	struct link *l = from->data;
	int from_client = from == (uv_stream_t *)&l->client;
	uv_stream_t *to = from_client ? (uv_stream_t *)&l->daemon : (uv_stream_t *)&l->client;
	if (n <= 0) {
		free(b->base);
		if (n == UV_EOF && !l->closing) {
			uv_read_stop(from);
			if (uv_shutdown(&l->shut[from_client], to, on_shutdown))
				link_close(l);
		} else if (n < 0) {
			link_close(l);
		}
		return;
	}
	struct write_req *r = malloc(sizeof(*r));
	if (!r) {
		free(b->base);
		link_close(l);
		return;
	}
	r->data = b->base;
	uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
	if (uv_write(&r->w, to, &out, 1, on_written)) {
		free(r->data);
		free(r);
		link_close(l);
	}
}

static void on_daemon(uv_connect_t *c, int status)
{
	struct link *l = c->data;
	if (status < 0 || l->closing) {
		link_close(l);
		return;
	}
	uv_read_start((uv_stream_t *)&l->client, on_alloc, on_read);
	uv_read_start((uv_stream_t *)&l->daemon, on_alloc, on_read);
}

static void on_client(uv_stream_t *server, int status)
{
	if (status < 0)
		return;
	struct link *l = calloc(1, sizeof(*l));
	if (!l)
		return;
	uv_tcp_init(server->loop, &l->client);
	uv_pipe_init(server->loop, &l->daemon, 0);
	l->client.data = l->daemon.data = l->connect.data = l;
	l->open = 2;
	if (uv_accept(server, (uv_stream_t *)&l->client)) {
		link_close(l);
		return;
	}
	uv_pipe_connect(&l->connect, &l->daemon, sock_path, on_daemon);
}

static void on_signal(uv_signal_t *s, int sig)
{
	uv_stop(s->loop);
}

/* Forwards 127.0.0.1:port to the socket until SIGINT or SIGTERM. */
static int forward(const char *sock, long port)
{
	uv_loop_t *loop = uv_default_loop();
	uv_tcp_t server;
	uv_signal_t sigint, sigterm;
	struct sockaddr_in a;
	struct sockaddr_storage got;
	int len = sizeof(got);

	sock_path = sock;
	uv_ip4_addr("127.0.0.1", (int)port, &a);
	uv_tcp_init(loop, &server);
	int rc = uv_tcp_bind(&server, (struct sockaddr *)&a, 0);
	if (!rc)
		rc = uv_listen((uv_stream_t *)&server, 64, on_client);
	if (rc) {
		fprintf(stderr, "graft dashboard: 127.0.0.1:%ld: %s\n", port, uv_strerror(rc));
		return CLI_FAIL;
	}
	uv_tcp_getsockname(&server, (struct sockaddr *)&got, &len);
	printf("http://127.0.0.1:%d/  (forwarded to %s; Ctrl-C stops)\n",
	       ntohs(((struct sockaddr_in *)&got)->sin_port), sock);
	fflush(stdout);
	uv_signal_init(loop, &sigint);
	uv_signal_init(loop, &sigterm);
	uv_signal_start(&sigint, on_signal, SIGINT);
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	uv_run(loop, UV_RUN_DEFAULT);
	return CLI_OK;
}

int cli_dashboard(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, 0, 'p' }, { "socket", required_argument, 0, 'S' },
		{ "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 }
	};
	const char *socket_flag = NULL;
	char name[32], sock[4200];
	long port = 0;
	int ch;

	optind = 1;
	while ((ch = cli_next_opt(argc, argv, opts, "dashboard", name, sizeof(name))) != -1) {
		if (ch == 'h') {
			fputs(usage, stdout);
			return CLI_OK;
		}
		if (ch == 'S')
			socket_flag = optarg;
		else if (ch != 'p' || cli_int(name, optarg, 0, 65535, &port))
			return CLI_USAGE;
	}
	if (optind != argc) {
		fprintf(stderr, "graft dashboard: takes no arguments\n\n%s", usage);
		return CLI_USAGE;
	}
	cli_socket_path(socket_flag, sock, sizeof(sock));
	cli_resp r = cli_call(sock, "GET", "/v1/health", NULL, NULL, 0);
	if (r.status != 200) {
		int code = cli_fail("dashboard", sock, &r);
		cli_resp_free(&r);
		return code;
	}
	json_t *h = json_loads(r.body, 0, NULL), *http = json_object_get(h, "http");
	cli_resp_free(&r);
	if (json_is_object(http)) {
		const char *host = json_string_value(json_object_get(http, "host"));
		/* An address that means "every interface" is reached on loopback. */
		if (!host || !strcmp(host, "0.0.0.0"))
			host = "127.0.0.1";
		else if (!strcmp(host, "::"))
			host = "::1";
		int v6 = strchr(host, ':') != NULL;
		printf("http://%s%s%s:%lld/%s\n", v6 ? "[" : "", host, v6 ? "]" : "",
		       (long long)json_integer_value(json_object_get(http, "port")),
		       json_is_true(json_object_get(http, "token")) ? "?token=TOKEN  (graftd's "
		       "http_token)" : "");
		json_decref(h);
		return CLI_OK;
	}
	json_decref(h);
	return forward(sock, port);
}
