/* SPDX-License-Identifier: Apache-2.0 */
/*
 * peer.c — the benchmark's trivial server (see peer.h for the contract).
 *
 * The table is a json-c object used as a hash map from key to an index into
 * a plain array of bodies: lookups are one hash, and nothing is serialized
 * at request time (responses use MHD_RESPMEM_PERSISTENT: the bytes go from
 * the table to the socket). The watch body is streamed with a content
 * reader in 64 KiB blocks, as the simulator streams its watches.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>

#include "meshroll/json-util.h"
#include "meshroll/macro.h"
#include "peer.h"

#define NOT_FOUND                                                                                           \
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","                \
        "\"message\":\"not in the peer's table\",\"reason\":\"NotFound\",\"code\":404}"

typedef struct Body {
        char *key;
        char *data;
        size_t size;
} Body;

struct Peer {
        json_object *index; /* key → int index into bodies */
        Body *bodies;
        size_t n, cap;
        char *watch;
        size_t watch_size, watch_cap;
        struct MHD_Daemon *daemon;
        char url[64];
};

int peer_new(Peer **ret)
{
        Peer *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->index = json_object_new_object();
        if (!p->index) {
                free(p);
                return -ENOMEM;
        }
        *ret = p;
        return 0;
}

int peer_add(Peer *p, const char *key, const char *body, size_t size)
{
        if (p->daemon)
                return -EBUSY;
        if (p->n == p->cap) {
                size_t cap = p->cap ? p->cap * 2 : 64;
                Body *b = realloc(p->bodies, cap * sizeof *b);
                if (!b)
                        return -ENOMEM;
                p->bodies = b;
                p->cap = cap;
        }
        Body *b = &p->bodies[p->n];
        b->key = strdup(key);
        b->data = malloc(size ? size : 1);
        if (!b->key || !b->data) {
                free(b->key);
                free(b->data);
                return -ENOMEM;
        }
        memcpy(b->data, body, size);
        b->size = size;
        if (json_object_object_add(p->index, key, json_object_new_int64((int64_t)p->n)) < 0) {
                free(b->key);
                free(b->data);
                return -ENOMEM;
        }
        p->n++;
        return 0;
}

int peer_add_watch_event(Peer *p, const char *line, size_t size)
{
        if (p->daemon)
                return -EBUSY;
        if (p->watch_size + size > p->watch_cap) {
                size_t cap = MAX(p->watch_cap * 2, p->watch_size + size + 4096);
                char *w = realloc(p->watch, cap);
                if (!w)
                        return -ENOMEM;
                p->watch = w;
                p->watch_cap = cap;
        }
        memcpy(p->watch + p->watch_size, line, size);
        p->watch_size += size;
        return 0;
}

size_t peer_bytes(const Peer *p, const char *prefix)
{
        size_t total = 0, l = strlen(prefix);
        for (size_t i = 0; i < p->n; i++)
                if (strneq(p->bodies[i].key, prefix, l))
                        total += p->bodies[i].size;
        return total;
}

typedef struct Stream {
        const Peer *peer;
        size_t off;
} Stream;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        Stream *s = cls;
        (void)pos;
        if (s->off >= s->peer->watch_size)
                return MHD_CONTENT_READER_END_OF_STREAM;
        size_t n = MIN(max, s->peer->watch_size - s->off);
        memcpy(buf, s->peer->watch + s->off, n);
        s->off += n;
        return (ssize_t)n;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned code, struct MHD_Response *resp)
{
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        enum MHD_Result r = MHD_queue_response(conn, code, resp);
        MHD_destroy_response(resp);
        return r;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size,
                               void **con_cls)
{
        Peer *p = cls;
        static int marker;
        char key[2048];

        if (!*con_cls) {
                *con_cls = &marker; /* headers only so far */
                return MHD_YES;
        }
        if (*upload_data_size) {
                *upload_data_size = 0; /* the peer ignores request bodies */
                return MHD_YES;
        }
        const char *watch = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "watch");
        if (watch && (streq(watch, "1") || streq(watch, "true"))) {
                Stream *s = calloc(1, sizeof *s);
                if (!s)
                        return MHD_NO;
                s->peer = p;
                return respond(
                    conn, MHD_HTTP_OK,
                    MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, s, free));
        }
        const char *cont = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "continue");
        const char *limit = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
        if (limit)
                snprintf(key, sizeof key, "%s|%s", url, strempty(cont));
        else
                snprintf(key, sizeof key, "%s", url);
        json_object *i = NULL; /* borrowed */
        if (!json_object_object_get_ex(p->index, key, &i))
                return respond(conn, MHD_HTTP_NOT_FOUND,
                               MHD_create_response_from_buffer(strlen(NOT_FOUND), (void *)NOT_FOUND,
                                                               MHD_RESPMEM_PERSISTENT));
        const Body *b = &p->bodies[json_object_get_int64(i)];
        return respond(conn, MHD_HTTP_OK,
                       MHD_create_response_from_buffer(b->size, b->data, MHD_RESPMEM_PERSISTENT));
}

int peer_start(Peer *p)
{
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

        if (p->daemon)
                return -EBUSY;
        p->daemon = MHD_start_daemon(
            MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL,
            handler, p, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned)600, MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000, MHD_OPTION_END);
        if (!p->daemon)
                return -EADDRNOTAVAIL;
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(p->daemon, MHD_DAEMON_INFO_BIND_PORT);
        snprintf(p->url, sizeof p->url, "http://127.0.0.1:%u", info ? (unsigned)info->port : 0u);
        return 0;
}

const char *peer_url(const Peer *p)
{
        return p->daemon ? p->url : NULL;
}

Peer *peer_free(Peer *p)
{
        if (!p)
                return NULL;
        if (p->daemon)
                MHD_stop_daemon(p->daemon);
        for (size_t i = 0; i < p->n; i++) {
                free(p->bodies[i].key);
                free(p->bodies[i].data);
        }
        free(p->bodies);
        free(p->watch);
        json_object_put(p->index);
        free(p);
        return NULL;
}
