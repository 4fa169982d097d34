/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dataplane-mesh.h — the Istio half of the simulator's data plane
 * (docs/dataplane.md, "Routing by weight" and "Metrics"): which subset of a
 * Service a new connection goes to, by the weights of its VirtualService and
 * the subsets of its DestinationRule; and the Istio-style request metrics
 * each node proxy keeps and serves on /metrics.
 *
 * Internal to the data plane (dataplane.c); everything here runs on the
 * data-plane thread, except dp_routing_read, which runs under the store
 * lock while the data plane takes its snapshot.
 */
#pragma once

#include <json-c/json.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "dataplane.h"
#include "meshroll/metrics.h"
#include "store.h"

#define DP_MAX_SUBSETS 8

typedef struct DpSubset {
        char name[64];       /* "" for a destination without a subset (every endpoint) */
        json_object *labels; /* owned: the DestinationRule subset's labels; NULL: every endpoint */
        bool undefined;      /* named by the route but in no DestinationRule: no endpoint (Istio: 503 NR) */
        unsigned weight;
        int64_t current; /* smooth weighted round-robin state */
} DpSubset;

/* The route of one Service: empty (n == 0) when no VirtualService routes it: every endpoint. */
typedef struct DpRouting {
        DpSubset subsets[DP_MAX_SUBSETS];
        size_t n;
} DpRouting;

/*
 * Store lock held: the routing of Service ns/name, from the VirtualServices
 * of ns (the first http or tcp rule whose route names the Service's host,
 * preferring one without `match`) and the DestinationRules of ns for that
 * host. Returns 0 or -ENOMEM; *ret is cleared first.
 */
int dp_routing_read(SimStore *store, const char *ns, const char *name, DpRouting *ret);
/* Keeps the round-robin state of subsets that are in both (by name). */
void dp_routing_carry(DpRouting *to, const DpRouting *from);
void dp_routing_clear(DpRouting *r);
/*
 * The subset for the next connection (smooth weighted round-robin: over any
 * sum-of-weights picks, each subset gets exactly its weight). -1 when every
 * weight is 0.
 */
int dp_routing_pick(DpRouting *r);

/* Istio's canonical workload name and version of a pod (borrowed JSON), written into the buffers. */
void dp_pod_workload(json_object *pod, char *workload, size_t size);
void dp_pod_version(json_object *labels, char *version, size_t size);

/* --- metrics ---------------------------------------------------------------------------------- */

typedef struct DpMetrics {
        MrMetrics *registry;
        MrMetric *requests; /* istio_requests_total */
        MrMetric *duration; /* istio_request_duration_milliseconds */
} DpMetrics;

/* The labels of one request (strings borrowed). */
typedef struct DpRequestLabels {
        const char *reporter; /* "source" (outbound proxy) or "destination" (inbound) */
        const char *source_workload, *source_workload_namespace;
        const char *destination_service; /* "reviews.shop.svc.cluster.local" */
        const char *destination_workload, *destination_workload_namespace, *destination_version;
} DpRequestLabels;

int dp_metrics_init(DpMetrics *m);
void dp_metrics_done(DpMetrics *m);
/* Counts one answered request: its code ("200", "503") and duration. */
void dp_metrics_request(DpMetrics *m, const DpRequestLabels *l, const char *code, double ms);

/*
 * A node's /metrics endpoint: a minimal HTTP/1.1 server on addr:port (one
 * request per connection, "Connection: close"), rendering m when asked for
 * GET /metrics; 404 otherwise. Thread only.
 */
typedef struct DpMetricsServer DpMetricsServer;
int dp_metrics_server_start(SimDataplane *dp, struct in_addr addr, uint16_t port, DpMetrics *m,
                            DpMetricsServer **ret);
/* Closes the listener and every connection. Accepts NULL; returns NULL. */
DpMetricsServer *dp_metrics_server_stop(DpMetricsServer *s);
