/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http-fixture.h — a small HTTP(S) server inside a test, on libmicrohttpd.
 *
 * It listens on 127.0.0.1 with a kernel-chosen port and calls the test's
 * handler once per request, with the whole request (body included). The
 * handler fills an HttpResponse: a status and body, extra headers, a body
 * streamed in chunks over time (a watch), or "drop the connection". Every
 * request is also recorded, so a test can assert what the client sent.
 *
 * Threads: libmicrohttpd runs a thread per connection. The fixture calls
 * handlers under one mutex, so handlers never run concurrently with each
 * other; a test that shares state between its handler and its own thread
 * takes http_fixture_lock() around reads. Streamed bodies sleep between
 * chunks on the connection's own thread; http_fixture_free() interrupts
 * every stream first, so it never hangs.
 *
 * TLS: http_fixture_start_tls() serves HTTPS with the certificates made at
 * build time by gen-certs.sh (CA, server cert for 127.0.0.1/localhost/
 * kube.test, a client cert, and an unrelated CA); http_fixture_cert_path()
 * names them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct HttpFixture HttpFixture;

/* A request as the server saw it. All strings are "" when absent, never NULL. Borrowed. */
typedef struct HttpRequest {
        const char *method;
        const char *path;            /* decoded, without the query */
        const char *query;           /* decoded "k=v&k2=v2" in the order sent, "" when none */
        const char *authorization;   /* the Authorization header */
        const char *content_type;
        const char *accept;
        const char *user_agent;
        const char *body;
        size_t body_size;
        unsigned index;              /* 0 for the first request the fixture served */
} HttpRequest;

/* The value of one query argument (decoded), or NULL. */
const char *http_request_arg(const HttpRequest *req, const char *key);

typedef struct HttpChunk {
        char *data;
        size_t size;
        unsigned delay_ms;           /* slept before sending this chunk */
} HttpChunk;

typedef struct HttpResponse {
        int status;                  /* 0 → 200 */
        char *body;                  /* malloc'd; use the helpers */
        size_t body_size;
        char headers[4][2][128];     /* extra headers: name, value */
        unsigned n_headers;
        bool drop;                   /* close the connection without any response */
        /* streaming: when chunks are added the body above is ignored */
        HttpChunk *chunks;
        size_t n_chunks;
        unsigned hold_ms;            /* after the last chunk, keep the stream open this long */
        bool end_with_error;         /* after the chunks, break the connection instead of ending cleanly */
} HttpResponse;

void http_respond(HttpResponse *r, int status, const char *body);
void http_respond_fmt(HttpResponse *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void http_respond_header(HttpResponse *r, const char *name, const char *value);
/* Adds a streamed chunk (copied). */
void http_respond_chunk(HttpResponse *r, unsigned delay_ms, const char *data);

typedef void (*http_handler_t)(HttpFixture *f, const HttpRequest *req, HttpResponse *resp, void *userdata);

/* Starts a plain HTTP server. Returns 0 or a negative errno. */
int http_fixture_start(http_handler_t handler, void *userdata, HttpFixture **ret);
/* Starts an HTTPS server with the fixture server certificate; require_client_cert asks for one signed by the CA. */
int http_fixture_start_tls(http_handler_t handler, void *userdata, bool require_client_cert, HttpFixture **ret);
void http_fixture_free(HttpFixture *f);

/* "http://127.0.0.1:PORT" or "https://127.0.0.1:PORT". Borrowed. */
const char *http_fixture_url(const HttpFixture *f);
unsigned http_fixture_port(const HttpFixture *f);

/* Number of requests handled so far (dropped ones included). */
unsigned http_fixture_count(HttpFixture *f);
/* A recorded request (valid until the fixture is freed), or NULL when i is out of range. */
const HttpRequest *http_fixture_request(HttpFixture *f, unsigned i);
/* Replaces the handler (e.g. between the phases of a test). */
void http_fixture_set_handler(HttpFixture *f, http_handler_t handler, void *userdata);

void http_fixture_lock(HttpFixture *f);
void http_fixture_unlock(HttpFixture *f);

/* Path of a generated fixture file: "ca.pem", "server.pem", "server-key.pem", "client.pem", "client-key.pem", "other-ca.pem". Static buffer. */
const char *http_fixture_cert_path(const char *name);
/* Reads a file whole into a malloc'd NUL-terminated buffer (for *-data fields). NULL on failure. */
char *http_fixture_read_file(const char *path, size_t *ret_size);
