/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http-fixture.c — see http-fixture.h.
 *
 * libmicrohttpd in thread-per-connection mode: its access handler is called
 * several times per request (headers, then body pieces, then a final call
 * with no data); the body is gathered in per-request state (capped at
 * 16 MiB) and the test's handler runs on the final call. A streamed answer
 * is a content-reader callback that hands out the chunks one at a time and
 * sleeps between them in 10 ms steps, checking the fixture's stop flag so
 * that shutting down never waits for a long hold.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http-fixture.h"

#define BODY_MAX (16u << 20)

typedef struct Record {
        HttpRequest req;
        char *method, *path, *query, *authorization, *content_type, *accept, *user_agent, *body;
} Record;

struct HttpFixture {
        struct MHD_Daemon *daemon;
        char url[64];
        unsigned port;
        pthread_mutex_t lock;
        http_handler_t handler;
        void *userdata;
        Record **records;
        size_t n_records, alloc_records;
        atomic_bool stopping;
        char *cert, *key, *trust;
};

typedef struct Pending {
        char *body;
        size_t size;
        bool too_big;
} Pending;

typedef struct Stream {
        HttpFixture *f;
        HttpResponse resp;
        size_t chunk, offset;
        bool waited;
} Stream;

static char *xstrdup(const char *s)
{
        char *p = strdup(s ? s : "");
        if (!p)
                abort();
        return p;
}

/* ---- response helpers ------------------------------------------------------------------- */

void http_respond(HttpResponse *r, int status, const char *body)
{
        r->status = status;
        free(r->body);
        r->body = body ? xstrdup(body) : NULL;
        r->body_size = body ? strlen(body) : 0;
}

void http_respond_fmt(HttpResponse *r, int status, const char *fmt, ...)
{
        va_list ap;
        char *s = NULL;
        va_start(ap, fmt);
        int n = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (n < 0)
                abort();
        r->status = status;
        free(r->body);
        r->body = s;
        r->body_size = (size_t)n;
}

void http_respond_header(HttpResponse *r, const char *name, const char *value)
{
        if (r->n_headers >= 4)
                abort();
        snprintf(r->headers[r->n_headers][0], sizeof(r->headers[0][0]), "%s", name);
        snprintf(r->headers[r->n_headers][1], sizeof(r->headers[0][1]), "%s", value);
        r->n_headers++;
}

void http_respond_chunk(HttpResponse *r, unsigned delay_ms, const char *data)
{
        HttpChunk *l = realloc(r->chunks, (r->n_chunks + 1) * sizeof(HttpChunk));
        if (!l)
                abort();
        r->chunks = l;
        l[r->n_chunks++] = (HttpChunk){ .data = xstrdup(data), .size = strlen(data), .delay_ms = delay_ms };
}

static void response_clear(HttpResponse *r)
{
        free(r->body);
        for (size_t i = 0; i < r->n_chunks; i++)
                free(r->chunks[i].data);
        free(r->chunks);
        memset(r, 0, sizeof(*r));
}

/* ---- request plumbing ---------------------------------------------------------------------- */

static const char *header(struct MHD_Connection *conn, const char *name)
{
        const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
        return v ? v : "";
}

typedef struct QueryBuf {
        char *p;
        size_t len;
} QueryBuf;

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
        QueryBuf *q = cls;
        size_t need = strlen(key) + (value ? strlen(value) : 0) + 3;
        char *p = realloc(q->p, q->len + need);
        if (!p)
                abort();
        q->p = p;
        q->len += (size_t)snprintf(q->p + q->len, need, "%s%s=%s", q->len ? "&" : "", key, value ? value : "");
        return MHD_YES;
}

static void sleep_ms(HttpFixture *f, unsigned ms)
{
        for (unsigned i = 0; i < ms && !atomic_load(&f->stopping); i += 10) {
                struct timespec ts = { 0, 10 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        Stream *s = cls;
        HttpResponse *r = &s->resp;

        if (atomic_load(&s->f->stopping))
                return MHD_CONTENT_READER_END_WITH_ERROR;
        while (s->chunk < r->n_chunks && s->offset == r->chunks[s->chunk].size) {
                s->chunk++;
                s->offset = 0;
                s->waited = false;
        }
        if (s->chunk >= r->n_chunks) {
                sleep_ms(s->f, r->hold_ms);
                r->hold_ms = 0;
                return r->end_with_error ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
        }
        HttpChunk *c = &r->chunks[s->chunk];
        if (!s->waited) {
                sleep_ms(s->f, c->delay_ms);
                s->waited = true;
                if (atomic_load(&s->f->stopping))
                        return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        size_t n = c->size - s->offset < max ? c->size - s->offset : max;
        memcpy(buf, c->data + s->offset, n);
        s->offset += n;
        return (ssize_t)n;
}

static void stream_free(void *cls)
{
        Stream *s = cls;
        response_clear(&s->resp);
        free(s);
}

static void record(HttpFixture *f, struct MHD_Connection *conn, const char *method, const char *url,
                   const char *query, Pending *p, HttpRequest *ret)
{
        Record *rec = calloc(1, sizeof(Record));
        if (!rec)
                abort();
        rec->method = xstrdup(method);
        rec->path = xstrdup(url);
        rec->query = xstrdup(query);
        rec->authorization = xstrdup(header(conn, "Authorization"));
        rec->content_type = xstrdup(header(conn, "Content-Type"));
        rec->accept = xstrdup(header(conn, "Accept"));
        rec->user_agent = xstrdup(header(conn, "User-Agent"));
        rec->body = malloc(p->size + 1);
        if (!rec->body)
                abort();
        if (p->size)
                memcpy(rec->body, p->body, p->size);
        rec->body[p->size] = 0;
        rec->req = (HttpRequest){
                .method = rec->method, .path = rec->path, .query = rec->query,
                .authorization = rec->authorization, .content_type = rec->content_type,
                .accept = rec->accept, .user_agent = rec->user_agent,
                .body = rec->body, .body_size = p->size, .index = (unsigned)f->n_records,
        };
        if (f->n_records == f->alloc_records) {
                size_t n = f->alloc_records ? f->alloc_records * 2 : 16;
                Record **l = realloc(f->records, n * sizeof(Record *));
                if (!l)
                        abort();
                f->records = l;
                f->alloc_records = n;
        }
        f->records[f->n_records++] = rec;
        *ret = rec->req;
}

const char *http_request_arg(const HttpRequest *req, const char *key)
{
        /* Look the key up in the recorded "k=v&…" string; values may contain '=' but not '&' here. */
        static __thread char value[2048];
        size_t kl = strlen(key);
        const char *q = req->query;
        while (q && *q) {
                const char *end = strchr(q, '&');
                size_t l = end ? (size_t)(end - q) : strlen(q);
                if (l > kl && strncmp(q, key, kl) == 0 && q[kl] == '=') {
                        size_t vl = l - kl - 1 < sizeof(value) - 1 ? l - kl - 1 : sizeof(value) - 1;
                        memcpy(value, q + kl + 1, vl);
                        value[vl] = 0;
                        return value;
                }
                q = end ? end + 1 : NULL;
        }
        return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
        HttpFixture *f = cls;
        Pending *p = *con_cls;
        enum MHD_Result ret;

        if (!p) {
                p = calloc(1, sizeof(Pending));
                if (!p)
                        return MHD_NO;
                *con_cls = p;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                if (p->size + *upload_data_size > BODY_MAX)
                        p->too_big = true;
                else {
                        char *b = realloc(p->body, p->size + *upload_data_size);
                        if (!b)
                                return MHD_NO;
                        p->body = b;
                        memcpy(p->body + p->size, upload_data, *upload_data_size);
                        p->size += *upload_data_size;
                }
                *upload_data_size = 0;
                return MHD_YES;
        }

        QueryBuf q = {};
        (void)MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, &q);

        HttpRequest req;
        HttpResponse resp = {};
        pthread_mutex_lock(&f->lock);
        record(f, conn, method, url, q.p ? q.p : "", p, &req);
        if (f->handler)
                f->handler(f, &req, &resp, f->userdata);
        else
                http_respond(&resp, 404, "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"code\":404}");
        pthread_mutex_unlock(&f->lock);
        free(q.p);

        if (resp.drop) {
                response_clear(&resp);
                return MHD_NO;
        }

        struct MHD_Response *r;
        int status = resp.status ? resp.status : 200;
        if (resp.n_chunks > 0 || resp.hold_ms > 0 || resp.end_with_error) {
                Stream *s = calloc(1, sizeof(Stream));
                if (!s)
                        return MHD_NO;
                s->f = f;
                s->resp = resp;
                memset(&resp, 0, sizeof(resp));
                r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
                if (!r) {
                        stream_free(s);
                        return MHD_NO;
                }
                for (unsigned i = 0; i < s->resp.n_headers; i++)
                        (void)MHD_add_response_header(r, s->resp.headers[i][0], s->resp.headers[i][1]);
        } else {
                r = MHD_create_response_from_buffer(resp.body_size, resp.body ? resp.body : (char *)"",
                                                    MHD_RESPMEM_MUST_COPY);
                for (unsigned i = 0; r && i < resp.n_headers; i++)
                        (void)MHD_add_response_header(r, resp.headers[i][0], resp.headers[i][1]);
                response_clear(&resp);
                if (!r)
                        return MHD_NO;
        }
        (void)MHD_add_response_header(r, "Content-Type", "application/json");
        ret = MHD_queue_response(conn, (unsigned)status, r);
        MHD_destroy_response(r);
        return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
        Pending *p = *con_cls;
        if (p) {
                free(p->body);
                free(p);
        }
        *con_cls = NULL;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

const char *http_fixture_cert_path(const char *name)
{
        static __thread char path[4096];
        snprintf(path, sizeof(path), "%s/%s", HTTP_FIXTURE_CERT_DIR, name);
        return path;
}

char *http_fixture_read_file(const char *path, size_t *ret_size)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        char *buf = malloc(1 << 20);
        size_t n = 0;
        ssize_t k;
        while (buf && n < (1 << 20) - 1 && (k = read(fd, buf + n, (1 << 20) - 1 - n)) > 0)
                n += (size_t)k;
        close(fd);
        if (!buf)
                return NULL;
        buf[n] = 0;
        if (ret_size)
                *ret_size = n;
        return buf;
}

static int start(http_handler_t handler, void *userdata, bool tls, bool client_cert, HttpFixture **ret)
{
        HttpFixture *f = calloc(1, sizeof(HttpFixture));
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;

        if (!f)
                return -ENOMEM;
        pthread_mutex_init(&f->lock, NULL);
        f->handler = handler;
        f->userdata = userdata;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

        if (tls) {
                f->cert = http_fixture_read_file(http_fixture_cert_path("server.pem"), NULL);
                f->key = http_fixture_read_file(http_fixture_cert_path("server-key.pem"), NULL);
                if (client_cert)
                        f->trust = http_fixture_read_file(http_fixture_cert_path("ca.pem"), NULL);
                if (!f->cert || !f->key || (client_cert && !f->trust)) {
                        http_fixture_free(f);
                        return -ENOENT;
                }
                flags |= MHD_USE_TLS;
        }

        if (tls && client_cert)
                f->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, f, MHD_OPTION_SOCK_ADDR, &sa,
                                             MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                                             MHD_OPTION_HTTPS_MEM_CERT, f->cert, MHD_OPTION_HTTPS_MEM_KEY, f->key,
                                             MHD_OPTION_HTTPS_MEM_TRUST, f->trust, MHD_OPTION_END);
        else if (tls)
                f->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, f, MHD_OPTION_SOCK_ADDR, &sa,
                                             MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                                             MHD_OPTION_HTTPS_MEM_CERT, f->cert, MHD_OPTION_HTTPS_MEM_KEY, f->key,
                                             MHD_OPTION_END);
        else
                f->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, f, MHD_OPTION_SOCK_ADDR, &sa,
                                             MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
        if (!f->daemon) {
                http_fixture_free(f);
                return -EADDRNOTAVAIL;
        }
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(f->daemon, MHD_DAEMON_INFO_BIND_PORT);
        f->port = info ? info->port : 0;
        snprintf(f->url, sizeof(f->url), "%s://127.0.0.1:%u", tls ? "https" : "http", f->port);
        *ret = f;
        return 0;
}

int http_fixture_start(http_handler_t handler, void *userdata, HttpFixture **ret)
{
        return start(handler, userdata, false, false, ret);
}

int http_fixture_start_tls(http_handler_t handler, void *userdata, bool require_client_cert, HttpFixture **ret)
{
        return start(handler, userdata, true, require_client_cert, ret);
}

void http_fixture_free(HttpFixture *f)
{
        if (!f)
                return;
        atomic_store(&f->stopping, true);
        if (f->daemon)
                MHD_stop_daemon(f->daemon);
        for (size_t i = 0; i < f->n_records; i++) {
                Record *r = f->records[i];
                free(r->method);
                free(r->path);
                free(r->query);
                free(r->authorization);
                free(r->content_type);
                free(r->accept);
                free(r->user_agent);
                free(r->body);
                free(r);
        }
        free(f->records);
        free(f->cert);
        free(f->key);
        free(f->trust);
        pthread_mutex_destroy(&f->lock);
        free(f);
}

const char *http_fixture_url(const HttpFixture *f)
{
        return f->url;
}

unsigned http_fixture_port(const HttpFixture *f)
{
        return f->port;
}

unsigned http_fixture_count(HttpFixture *f)
{
        pthread_mutex_lock(&f->lock);
        unsigned n = (unsigned)f->n_records;
        pthread_mutex_unlock(&f->lock);
        return n;
}

const HttpRequest *http_fixture_request(HttpFixture *f, unsigned i)
{
        pthread_mutex_lock(&f->lock);
        const HttpRequest *r = i < f->n_records ? &f->records[i]->req : NULL;
        pthread_mutex_unlock(&f->lock);
        return r;
}

void http_fixture_set_handler(HttpFixture *f, http_handler_t handler, void *userdata)
{
        pthread_mutex_lock(&f->lock);
        f->handler = handler;
        f->userdata = userdata;
        pthread_mutex_unlock(&f->lock);
}

void http_fixture_lock(HttpFixture *f)
{
        pthread_mutex_lock(&f->lock);
}

void http_fixture_unlock(HttpFixture *f)
{
        pthread_mutex_unlock(&f->lock);
}
