/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http.c — the simulator's HTTP(S) front end on libmicrohttpd.
 *
 * Design: thread per connection. kubectl drain keeps one connection per
 * pod polling, and every watch is a long-lived chunked response whose
 * content reader blocks on the store's condition variable until an event,
 * a bookmark, its deadline or shutdown; with a thread per connection that
 * blocking is harmless and the code stays sequential. Keep-alive comes from
 * MHD. Each request is collected (body capped at SIM_API_BODY_MAX, past
 * which it is answered 413 without buffering more), turned into a
 * SimRequest and answered from sim_api_handle(); every body is JSON with
 * Content-Type application/json (T2), errors included.
 *
 * Shutdown: the stopping flag is set under the store lock and every waiter
 * is woken, so each watch ends its stream; then MHD_stop_daemon joins the
 * connection threads.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "api.h"
#include "meshroll/log.h"

#define QUERY_MAX 64
#define PEM_MAX (1u << 20)

struct SimHttp {
        struct MHD_Daemon *daemon;
        SimApi *api;
        bool stopping;
        char *token;
        char *cert, *key;
        unsigned port;
};

typedef struct Conn {
        char *body;
        size_t size, alloc;
        bool too_big;
        bool started;
        const char *query[2 * QUERY_MAX + 2];
        size_t n_query;
} Conn;

typedef struct Stream {
        SimHttp *http;
        SimWatch *watch;
        char *data;
        size_t size, off;
} Stream;

static int read_pem(const char *path, char **ret, MrError *err)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t off = 0;

        if (fd < 0)
                return mr_error_set(err, -errno, "%s: %m", path);
        if (fstat(fd, &st) < 0)
                return mr_error_set(err, -errno, "%s: %m", path);
        if (st.st_size <= 0 || (uint64_t)st.st_size > PEM_MAX)
                return mr_error_set(err, -MR_ETOOBIG, "%s: expected a PEM file of at most %u bytes", path, PEM_MAX);
        buf = malloc((size_t)st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (off < (size_t)st.st_size) {
                ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return mr_error_set(err, n < 0 ? -errno : -EIO, "%s: short read", path);
                off += (size_t)n;
        }
        buf[off] = 0;
        *ret = TAKE_PTR(buf);
        return 0;
}

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
        Conn *c = cls;
        if (c->n_query >= QUERY_MAX)
                return MHD_NO;
        c->query[2 * c->n_query] = key;
        c->query[2 * c->n_query + 1] = value ? value : "";
        c->n_query++;
        c->query[2 * c->n_query] = NULL;
        return MHD_YES;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
        Stream *s = cls;
        if (s->off >= s->size) {
                free(s->data);
                s->data = NULL;
                s->size = s->off = 0;
                int r = sim_watch_next(s->watch, &s->http->stopping, &s->data, &s->size);
                if (r < 0)
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                if (r == 0)
                        return MHD_CONTENT_READER_END_OF_STREAM;
        }
        size_t n = MIN(max, s->size - s->off);
        memcpy(buf, s->data + s->off, n);
        s->off += n;
        return (ssize_t)n;
}

static void stream_free(void *cls)
{
        Stream *s = cls;
        sim_watch_free(s->watch);
        free(s->data);
        free(s);
}

static enum MHD_Result queue(struct MHD_Connection *conn, SimHttp *h, SimResponse *r)
{
        struct MHD_Response *resp;
        enum MHD_Result ret;

        if (r->watch) {
                Stream *s = calloc(1, sizeof(*s));
                if (!s)
                        return MHD_NO;
                s->http = h;
                s->watch = TAKE_PTR(r->watch);
                resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_reader, s, stream_free);
                if (!resp) {
                        stream_free(s);
                        return MHD_NO;
                }
        } else {
                resp = MHD_create_response_from_buffer(r->body_size, r->body, MHD_RESPMEM_MUST_FREE);
                if (!resp)
                        return MHD_NO;
                r->body = NULL;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                r->content_type ? r->content_type : "application/json");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, private");
        if (r->retry_after > 0) {
                char buf[16];
                snprintf(buf, sizeof(buf), "%d", r->retry_after);
                MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, buf);
        }
        ret = MHD_queue_response(conn, (unsigned)r->status, resp);
        MHD_destroy_response(resp);
        return ret;
}

static bool authorized(SimHttp *h, struct MHD_Connection *conn)
{
        const char *auth;
        if (!h->token)
                return true;
        auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        const char *t = auth ? startswith(auth, "Bearer ") : NULL;
        return t && streq(t, h->token);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
        SimHttp *h = cls;
        Conn *c = *con_cls;
        SimResponse resp;

        if (!c) {
                c = calloc(1, sizeof(*c));
                if (!c)
                        return MHD_NO;
                *con_cls = c;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;
                *upload_data_size = 0;
                if (c->too_big || c->size + n > SIM_API_BODY_MAX) {
                        c->too_big = true;
                        return MHD_YES;
                }
                if (c->size + n + 1 > c->alloc) {
                        size_t a = MAX(c->alloc * 2, c->size + n + 1);
                        char *b = realloc(c->body, a);
                        if (!b)
                                return MHD_NO;
                        c->body = b;
                        c->alloc = a;
                }
                memcpy(c->body + c->size, upload_data, n);
                c->size += n;
                c->body[c->size] = 0;
                return MHD_YES;
        }
        if (c->started)
                return MHD_YES;
        c->started = true;

        if (!authorized(h, conn)) {
                resp = (SimResponse){.status = 401};
                resp.body = sim_status_json(401, "Unauthorized", "Unauthorized", NULL, NULL, NULL, 0);
                resp.body_size = resp.body ? strlen(resp.body) : 0;
        } else if (c->too_big) {
                resp = (SimResponse){.status = 413};
                resp.body = sim_status_json(413, "RequestEntityTooLarge", "the request body is too large", NULL, NULL, NULL, 0);
                resp.body_size = resp.body ? strlen(resp.body) : 0;
        } else {
                c->query[0] = NULL;
                MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_query, c);
                SimRequest req = {
                        .method = method,
                        .path = url,
                        .query = c->query,
                        .accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT),
                        .content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
                        .user_agent = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT),
                        .body = c->body,
                        .body_size = c->size,
                };
                sim_api_handle(h->api, &req, &resp);
        }
        log_debug("%s %s → %d%s", method, url, resp.status, resp.watch ? " (watch)" : "");
        if (resp.delay > 0)
                usleep((useconds_t)MIN(resp.delay, (usec_t)60 * USEC_PER_SEC));
        if (!resp.body && !resp.watch)
                return MHD_NO;
        enum MHD_Result ret = queue(conn, h, &resp);
        sim_response_done(&resp);
        return ret;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
        Conn *c = *con_cls;
        if (c) {
                free(c->body);
                free(c);
                *con_cls = NULL;
        }
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len, MrError *err)
{
        char host[256];
        const char *colon, *port;
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;

        if (isempty(listen))
                listen = "127.0.0.1:0";
        if (listen[0] == '[') {
                const char *close = strchr(listen, ']');
                if (!close || close[1] != ':' || (size_t)(close - listen - 1) >= sizeof(host))
                        return mr_error_set(err, -MR_ECONFIG, "--listen %s: expected HOST:PORT", listen);
                memcpy(host, listen + 1, (size_t)(close - listen - 1));
                host[close - listen - 1] = 0;
                port = close + 2;
        } else {
                colon = strrchr(listen, ':');
                if (!colon || (size_t)(colon - listen) >= sizeof(host))
                        return mr_error_set(err, -MR_ECONFIG, "--listen %s: expected HOST:PORT", listen);
                memcpy(host, listen, (size_t)(colon - listen));
                host[colon - listen] = 0;
                port = colon + 1;
        }
        if (isempty(port) || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 || strtol(port, NULL, 10) > 65535)
                return mr_error_set(err, -MR_ECONFIG, "--listen %s: expected a port number 0-65535", listen);
        int r = getaddrinfo(host, port, &hints, &ai);
        if (r != 0 || !ai)
                return mr_error_set(err, -MR_ECONFIG, "--listen %s: %s", listen, gai_strerror(r));
        memcpy(ss, ai->ai_addr, ai->ai_addrlen);
        *len = ai->ai_addrlen;
        freeaddrinfo(ai);
        return 0;
}

int sim_http_start(SimApi *api, const SimHttpOptions *o, SimHttp **ret, MrError *err)
{
        struct sockaddr_storage ss = {};
        socklen_t sslen = 0;
        /* poll(), not select(): the demo's data plane holds over a thousand descriptors, and select()
         * cannot watch one numbered 1024 or above. */
        unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
        SimHttp *h;
        int r;

        r = parse_listen(o->listen, &ss, &sslen, err);
        if (r < 0)
                return r;
        if (!!o->tls_cert != !!o->tls_key)
                return mr_error_set(err, -MR_ECONFIG, "TLS needs both a certificate and a key");
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->api = api;
        api->stopping = &h->stopping;
        if (o->token && !(h->token = strdup(o->token))) {
                sim_http_stop(h);
                return -ENOMEM;
        }
        if (o->tls_cert) {
                if ((r = read_pem(o->tls_cert, &h->cert, err)) < 0 || (r = read_pem(o->tls_key, &h->key, err)) < 0) {
                        sim_http_stop(h);
                        return r;
                }
                flags |= MHD_USE_TLS;
        }
        if (ss.ss_family == AF_INET6)
                flags |= MHD_USE_IPv6;

        if (h->cert)
                h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, handler, h,
                                             MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                             MHD_OPTION_NOTIFY_COMPLETED, completed, h,
                                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
                                             MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
                                             MHD_OPTION_HTTPS_MEM_CERT, h->cert,
                                             MHD_OPTION_HTTPS_MEM_KEY, h->key,
                                             MHD_OPTION_END);
        else
                h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, handler, h,
                                             MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                             MHD_OPTION_NOTIFY_COMPLETED, completed, h,
                                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
                                             MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
                                             MHD_OPTION_END);
        if (!h->daemon) {
                sim_http_stop(h);
                return mr_error_set(err, -EADDRNOTAVAIL, "cannot listen on %s%s", o->listen ? o->listen : "127.0.0.1:0",
                                    o->tls_cert ? " (or the TLS certificate/key was rejected)" : "");
        }
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
        h->port = info ? info->port : 0;
        *ret = h;
        return 0;
}

unsigned sim_http_port(const SimHttp *h)
{
        return h->port;
}

SimHttp *sim_http_stop(SimHttp *h)
{
        if (!h)
                return NULL;
        if (h->daemon) {
                sim_store_lock(h->api->store);
                h->stopping = true;
                sim_store_wake(h->api->store);
                sim_store_unlock(h->api->store);
                MHD_stop_daemon(h->daemon);
        }
        if (h->api->stopping == &h->stopping)
                h->api->stopping = NULL;
        free(h->token);
        free(h->cert);
        free(h->key);
        free(h);
        return NULL;
}
