/* SPDX-License-Identifier: Apache-2.0 */
/*
 * report.h — what the agent tells the coordinator, and how.
 *
 * A scan becomes a versioned JSON document (schema in docs/agent.md):
 *
 *   {"version":1, "node":"n1", "observedAt":"2026-…Z", "phase":"…"|null,
 *    "longLivedAfterSeconds":60,
 *    "total":{"established":7,"outbound":5,"inbound":2,"longLived":3,
 *             "oldestSeconds":912,"hboneInbound":1,"hboneOutbound":1},
 *    "pods":[{"namespace":"shop","name":"db-0","uid":"…","established":3,
 *             "outbound":2,"inbound":1,"longLived":3,"oldestSeconds":912}, …],
 *    "podsOmitted":0,
 *    "scan":{"durationMs":1.8,"namespaces":12,"malformedLines":0,"readErrors":0}}
 *
 * "longLived" and "oldestSeconds" are null when the agent has not watched
 * long enough to know (meshroll-agent --once). Pods are listed with the most
 * long-lived connections first and capped, so the Lease stays small.
 *
 * The document is published on the Lease meshroll-agent-<node>: in the
 * annotation meshroll.io/connections, with the headline numbers also as
 * plain annotations (meshroll.io/long-lived, meshroll.io/established,
 * meshroll.io/observed-at, meshroll.io/phase) so `kubectl get lease -o yaml`
 * and the coordinator's gate read them without parsing.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>

#include "pods.h"
#include "scan.h"

#define REPORT_SCHEMA_VERSION 1
#define REPORT_MAX_PODS 100

#define ANNOTATION_CONNECTIONS "meshroll.io/connections"
#define ANNOTATION_LONG_LIVED "meshroll.io/long-lived"
#define ANNOTATION_ESTABLISHED "meshroll.io/established"
#define ANNOTATION_OBSERVED_AT "meshroll.io/observed-at"
#define ANNOTATION_PHASE "meshroll.io/phase"

typedef struct ReportContext {
        const char *node;          /* may be NULL (--once without --node) */
        usec_t observed_at;        /* wall time of the scan */
        const char *phase;         /* the Node's meshroll.io/phase, or NULL when idle */
        bool long_lived_known;     /* false for a single scan */
        usec_t long_lived_after;
} ReportContext;

/* Builds the report document. pods may be NULL (UIDs only). *ret owned. */
int report_build(const ScanResult *scan, const PodCache *pods, const ReportContext *ctx, json_object **ret);

/*
 * Builds the Lease to PUT (or POST when previous is NULL): previous
 * (borrowed) keeps its metadata (resourceVersion for optimistic concurrency,
 * other annotations) and acquireTime; spec.holderIdentity,
 * leaseDurationSeconds and renewTime are set, and the report annotations
 * replaced. *ret owned.
 */
int report_lease(json_object *previous, const char *ns, const char *name, const char *holder,
                 unsigned duration_seconds, usec_t now, json_object *report, json_object **ret);

/* Prints the report as a table, like a focused `ss`, for --once. */
void report_print_table(FILE *f, json_object *report);
