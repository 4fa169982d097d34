/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http-server.h — a small HTTP server for a daemon's own endpoints
 * (/metrics, /healthz), driven by the daemon's sd-event loop.
 *
 * libmicrohttpd runs in external-epoll mode: its epoll fd is one sd-event
 * io source and its timeout one time source, so the daemon keeps a single
 * thread and handlers may read daemon state without locks. Only GET and
 * HEAD are served (405 otherwise); unknown paths get 404; request bodies
 * are refused. The listening socket is made here (CLOEXEC, SO_REUSEADDR),
 * so port 0 works and the chosen port can be asked for.
 */
#pragma once

#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "meshroll/errors.h"

typedef struct MrHttpServer MrHttpServer;

typedef struct MrHttpReply {
        int status;                /* default 200 */
        const char *content_type;  /* default "text/plain; charset=utf-8" (static string) */
        char *body;                /* owned by the reply; freed by the server */
        size_t size;
} MrHttpReply;

/* Fills reply; returns 0, or a negative error for a 500. Runs on the event loop. */
typedef int (*mr_http_handler_t)(const char *path, MrHttpReply *reply, void *userdata);

/*
 * Parses "HOST:PORT" — "127.0.0.1:9090", "[::1]:9090", "0.0.0.0:0", or
 * ":9090" for every address (IPv6 dual-stack). -EINVAL naming nothing
 * (callers name the flag).
 */
int mr_parse_listen_address(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len);

/* Binds and starts serving on e (borrowed; must outlive the server). err says what failed. */
int mr_http_server_new(sd_event *e, const char *address, MrHttpServer **ret, MrError *err);
/* Serves path (exact match) with handler. -ENOMEM; -EEXIST when the path is taken. */
int mr_http_server_route(MrHttpServer *s, const char *path, mr_http_handler_t handler, void *userdata);
/* The port actually bound. */
uint16_t mr_http_server_port(const MrHttpServer *s);
MrHttpServer *mr_http_server_free(MrHttpServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(MrHttpServer *, mr_http_server_free);
