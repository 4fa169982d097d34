/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loadgen.h — client traffic through the simulator's data plane
 * (docs/dataplane.md, "Load generator").
 *
 * A load generator plays the application inside a client workload's pods:
 * it keeps K long-lived connections per client pod through the outbound
 * proxy of the node the pod runs on (source address: the pod's own), each
 * sending one small request at a time at a steady rate and waiting for the
 * answer. It runs on the data-plane thread.
 *
 * What happens to the traffic is what an upgrade is judged by:
 *   - a client pod being deleted (an eviction) finishes the request it has
 *     in flight, closes its connections with FIN and the connections are
 *     opened again from another Ready client pod (preferring uncordoned
 *     nodes other than the old one);
 *   - a FIN from the far side (a backend pod shutting down) closes the
 *     connection gracefully; a request in flight without any answer byte
 *     yet is retried on the new connection (as HTTP clients retry on a
 *     reused connection the server closed);
 *   - a reset (ECONNRESET, EPIPE, or EOF in the middle of an answer) counts
 *     the connection as reset and costs one request: the one in flight, or
 *     else the next one the application sends on the dead connection (a
 *     database or gRPC client learns of a reset only when it next uses the
 *     connection). Then it reconnects.
 *   - a request without an answer within request_timeout fails.
 * So requests_sent = requests_ok + requests_failed + requests_in_flight.
 */
#pragma once

#include <stdint.h>

#include "dataplane.h"
#include "meshroll/errors.h"

typedef struct SimLoadgen SimLoadgen;

typedef struct SimLoadgenOptions {
        const char *client_namespace; /* the client workload's namespace (required) */
        const char *client_selector;  /* its pods' label selector, "app=frontend" (required) */
        const char *service;          /* destination Service, "namespace/name" (required) */
        unsigned connections_per_pod; /* K; 0 → 4 */
        unsigned max_connections;     /* cap on the whole pool; 0 → 10000 */
        double rate;                  /* requests per second per connection (real time); 0 → 10 */
        usec_t request_timeout;       /* real µs; 0 → 2 s */
        usec_t reconnect_delay;       /* real µs after a refused connect; 0 → 50 ms */
        /*
         * Close a connection gracefully after this many answers and open a new
         * one (an HTTP client's cap on requests per connection); 0: never. The
         * data plane routes by weight per connection, so this is what moves
         * traffic when a VirtualService's weights change.
         */
        unsigned requests_per_connection;
} SimLoadgenOptions;

typedef struct SimLoadgenCounters {
        uint64_t requests_sent;      /* requests the application issued (a retry is not a new one) */
        uint64_t requests_ok;        /* answered 200 */
        uint64_t requests_failed;    /* reset, timed out or answered otherwise */
        uint64_t requests_error;     /* of requests_failed: answered with a code other than 200 (a 503) */
        uint64_t requests_retried;   /* re-sent after a graceful close (not failed) */
        uint64_t requests_timed_out; /* of requests_failed */
        uint64_t connections_opened;
        uint64_t connections_closed; /* ended gracefully (FIN), from either side */
        uint64_t connections_reset;
        uint64_t connect_failed;     /* connects refused or failed (no request counted) */
        uint32_t connections_active; /* open now */
        uint32_t connections_wanted; /* the pool: K × client pods seen alive, never shrinking */
        uint32_t requests_in_flight;
        uint32_t client_pods; /* Ready client pods now */
} SimLoadgenCounters;

/*
 * Starts generating on dp (borrowed; stop the load generator before the
 * data plane). Connections open as client pods become Ready. Errors:
 * -MR_ECONFIG with err naming the option, -ENOMEM, -ESHUTDOWN.
 */
int sim_loadgen_start(SimDataplane *dp, const SimLoadgenOptions *opts, SimLoadgen **ret, MrError *err);
/* A consistent copy of the counters (any thread). */
void sim_loadgen_get_counters(SimLoadgen *lg, SimLoadgenCounters *ret);
/*
 * Number of open connections whose client pod runs on node (any thread);
 * -ESHUTDOWN once the data plane stopped.
 */
int sim_loadgen_connections_on_node(SimLoadgen *lg, const char *node);
/* Closes every connection and frees. Accepts NULL; returns NULL. */
SimLoadgen *sim_loadgen_stop(SimLoadgen *lg);
