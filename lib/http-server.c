/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http-server.c — see http-server.h.
 *
 * Event flow: sd-event wakes on MHD's epoll fd (edge cases are MHD's, it
 * re-arms its own epoll set) or on the timer; both call MHD_run() and then
 * re-arm the timer from MHD_get_timeout(), which is how MHD asks to be woken
 * for connection timeouts. Handlers run inside MHD_run(), on the loop.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>

#include "meshroll/http-server.h"
#include "meshroll/macro.h"

typedef struct Route {
        char *path;
        mr_http_handler_t handler;
        void *userdata;
} Route;

struct MrHttpServer {
        sd_event *event;
        struct MHD_Daemon *daemon;
        sd_event_source *io, *timer;
        Route *routes;
        size_t n_routes;
        uint16_t port;
};

int mr_parse_listen_address(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len)
{
        char host[INET6_ADDRSTRLEN + 2];
        const char *colon, *port_s;
        char *end;

        if (isempty(s))
                return -EINVAL;
        if (s[0] == '[') {
                const char *close_b = strchr(s, ']');
                if (!close_b || close_b[1] != ':' || (size_t)(close_b - s - 1) >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s + 1, (size_t)(close_b - s - 1));
                host[close_b - s - 1] = 0;
                port_s = close_b + 2;
        } else {
                colon = strrchr(s, ':');
                if (!colon || (size_t)(colon - s) >= sizeof(host) || memchr(s, ':', (size_t)(colon - s)))
                        return -EINVAL;
                memcpy(host, s, (size_t)(colon - s));
                host[colon - s] = 0;
                port_s = colon + 1;
        }
        errno = 0;
        unsigned long port = strtoul(port_s, &end, 10);
        if (!*port_s || *end || errno || port > 65535)
                return -EINVAL;

        memset(ret, 0, sizeof(*ret));
        struct sockaddr_in *a4 = (struct sockaddr_in *)ret;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ret;
        if (!host[0]) {
                a6->sin6_family = AF_INET6;
                a6->sin6_addr = in6addr_any;
                a6->sin6_port = htons((uint16_t)port);
                *ret_len = sizeof(*a6);
        } else if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
                a4->sin_family = AF_INET;
                a4->sin_port = htons((uint16_t)port);
                *ret_len = sizeof(*a4);
        } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
                a6->sin6_family = AF_INET6;
                a6->sin6_port = htons((uint16_t)port);
                *ret_len = sizeof(*a6);
        } else
                return -EINVAL;
        return 0;
}

static enum MHD_Result queue_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
        struct MHD_Response *resp =
                MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
        if (!resp)
                return MHD_NO;
        (void)MHD_add_response_header(resp, "Content-Type", "text/plain; charset=utf-8");
        enum MHD_Result r = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
        MrHttpServer *s = cls;

        if (!streq(method, "GET") && !streq(method, "HEAD"))
                return queue_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
        if (*upload_data_size > 0)
                return queue_text(conn, MHD_HTTP_BAD_REQUEST, "no request body expected\n");

        for (size_t i = 0; i < s->n_routes; i++) {
                if (!streq(s->routes[i].path, url))
                        continue;
                MrHttpReply reply = { .status = MHD_HTTP_OK };
                int r = s->routes[i].handler(url, &reply, s->routes[i].userdata);
                if (r < 0) {
                        free(reply.body);
                        return queue_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error\n");
                }
                struct MHD_Response *resp = MHD_create_response_from_buffer(
                        reply.size, reply.body ? reply.body : (void *)"", reply.body ? MHD_RESPMEM_MUST_FREE
                                                                                     : MHD_RESPMEM_PERSISTENT);
                if (!resp) {
                        free(reply.body);
                        return MHD_NO;
                }
                (void)MHD_add_response_header(resp, "Content-Type",
                                              reply.content_type ? reply.content_type
                                                                 : "text/plain; charset=utf-8");
                enum MHD_Result ret = MHD_queue_response(conn, (unsigned)reply.status, resp);
                MHD_destroy_response(resp);
                return ret;
        }
        return queue_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

static int arm_timer(MrHttpServer *s);

static int on_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        MrHttpServer *s = userdata;
        (void)MHD_run(s->daemon);
        return arm_timer(s);
}

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
        MrHttpServer *s = userdata;
        (void)MHD_run(s->daemon);
        return arm_timer(s);
}

static int arm_timer(MrHttpServer *s)
{
        MHD_UNSIGNED_LONG_LONG ms;
        uint64_t now;

        if (MHD_get_timeout(s->daemon, &ms) != MHD_YES)
                return sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
        (void)sd_event_now(s->event, CLOCK_MONOTONIC, &now);
        int r = sd_event_source_set_time(s->timer, now + (uint64_t)ms * USEC_PER_MSEC);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
}

int mr_http_server_new(sd_event *e, const char *address, MrHttpServer **ret, MrError *err)
{
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_storage ss;
        socklen_t len;
        const union MHD_DaemonInfo *info;
        int r, one = 1;

        r = mr_parse_listen_address(address, &ss, &len);
        if (r < 0)
                return mr_error_set(err, MR_ECONFIG, "listen address \"%s\": expected HOST:PORT", address);
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return mr_error_set(err, -errno, "socket: %s", strerror(errno));
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0)
                return mr_error_set(err, -errno, "cannot listen on %s: %s", address, strerror(errno));
        if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
                return mr_error_set(err, -errno, "getsockname: %s", strerror(errno));

        MrHttpServer *s = calloc(1, sizeof(*s));
        if (!s)
                return mr_error_set(err, -ENOMEM, "out of memory");
        s->event = sd_event_ref(e);
        s->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                : ((struct sockaddr_in6 *)&ss)->sin6_port);
        s->daemon = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_TURBO, 0, NULL, NULL, on_request, s,
                                     MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
                                     MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_END);
        if (!s->daemon) {
                mr_http_server_free(s);
                return mr_error_set(err, -EIO, "cannot start the HTTP server on %s", address);
        }
        fd = -EBADF; /* MHD owns it now */
        info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info) {
                mr_http_server_free(s);
                return mr_error_set(err, -EIO, "HTTP server has no epoll fd");
        }
        r = sd_event_add_io(e, &s->io, info->epoll_fd, EPOLLIN, on_io, s);
        if (r >= 0)
                r = sd_event_add_time(e, &s->timer, CLOCK_MONOTONIC, 0, 0, on_timer, s);
        if (r >= 0)
                r = arm_timer(s);
        if (r < 0) {
                mr_http_server_free(s);
                return mr_error_set(err, r, "cannot attach the HTTP server to the event loop");
        }
        *ret = s;
        return 0;
}

int mr_http_server_route(MrHttpServer *s, const char *path, mr_http_handler_t handler, void *userdata)
{
        for (size_t i = 0; i < s->n_routes; i++)
                if (streq(s->routes[i].path, path))
                        return -EEXIST;
        Route *n = reallocarray(s->routes, s->n_routes + 1, sizeof(Route));
        if (!n)
                return -ENOMEM;
        s->routes = n;
        char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        s->routes[s->n_routes++] = (Route){ p, handler, userdata };
        return 0;
}

uint16_t mr_http_server_port(const MrHttpServer *s)
{
        return s->port;
}

MrHttpServer *mr_http_server_free(MrHttpServer *s)
{
        if (!s)
                return NULL;
        sd_event_source_disable_unref(s->io);
        sd_event_source_disable_unref(s->timer);
        if (s->daemon)
                MHD_stop_daemon(s->daemon);
        for (size_t i = 0; i < s->n_routes; i++)
                free(s->routes[i].path);
        free(s->routes);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}
