/* SPDX-License-Identifier: Apache-2.0 */
/*
 * countproxy.h — a loopback TCP relay that counts the HTTP requests going
 * through it, for the API-cost benchmark: the simulator's audit log records
 * writes only, so reads (GET, LIST, WATCH) are counted here, on the wire,
 * for exactly one client (the coordinator is pointed at the relay; the
 * agents and the benchmark talk to the simulator directly).
 *
 * Each accepted connection gets a thread that relays both directions with
 * poll(2). The client-to-server stream is parsed just enough to find each
 * request: the request line, the headers up to the blank line, then
 * Content-Length bytes of body (a chunked request body is counted and the
 * connection then relayed without further counting; `unparsed` says so).
 * The server-to-client stream is relayed untouched (watch streams too).
 */
#pragma once

#include <stdint.h>
#include <stdio.h>

typedef struct CountProxy CountProxy;

typedef struct CountProxyStats {
        uint64_t get;      /* GET without watch: reads and lists (a list page is one request) */
        uint64_t watch;    /* GET with watch=1/true: watch connections opened */
        uint64_t write;    /* POST, PUT, PATCH, DELETE */
        uint64_t other;    /* HEAD, OPTIONS … */
        uint64_t unparsed; /* connections whose request stream could not be followed to the end */
} CountProxyStats;

/*
 * Relays 127.0.0.1:<chosen port> to upstream_port on 127.0.0.1; with trace
 * (may be NULL; borrowed, must outlive the proxy) each request line is also
 * written there with its time. Errors: -errno.
 */
int count_proxy_start(uint16_t upstream_port, FILE *trace, CountProxy **ret);
/* "http://127.0.0.1:PORT" (borrowed). */
const char *count_proxy_url(const CountProxy *p);
void count_proxy_stats(CountProxy *p, CountProxyStats *ret);
/* Stops accepting, closes every relayed connection, joins the threads, frees. Accepts NULL. */
void count_proxy_free(CountProxy *p);
