/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent.h — the meshroll-agent daemon: scan, report, serve metrics.
 *
 * One sd-event loop carries everything: a scan timer, a watch of the
 * agent's own Node (its meshroll.io/phase annotation switches the cadence),
 * a watch of the node's pods (names and hostNetwork for the scan), the
 * Lease writes, and the /metrics and /healthz server.
 *
 * Cadence. The agent scans every scan_interval while idle (so first-seen
 * times, and therefore long-lived counts, stay accurate) and renews its
 * Lease every idle_interval. While the Node carries meshroll.io/phase — the
 * coordinator marks the nodes of the group it is draining — it scans and
 * reports every active_interval, and immediately when the mark appears or
 * changes. API writes thus grow with the active group, not the cluster.
 *
 * Lease writes are one state machine: GET (first time, or after a
 * conflict) → POST when absent → PUT with the last resourceVersion. One
 * write is in flight at a time; a newer report waiting behind it replaces
 * any older one. Failures are counted and logged; the next report retries.
 */
#pragma once

#include <systemd/sd-event.h>

#include "meshroll/kube.h"
#include "scan.h"

typedef struct AgentOptions {
        const char *node;             /* required */
        const char *namespace;        /* Lease namespace, default "meshroll" */
        const char *holder;           /* Lease holderIdentity, default "meshroll-agent/<node>" */
        const char *listen;           /* metrics address; NULL or "" disables */
        ScanOptions scan;
        usec_t scan_interval;         /* idle scans, default 10 s */
        usec_t idle_interval;         /* idle Lease renewals, default 5 min */
        usec_t active_interval;       /* scans and reports while marked, default 2 s */
} AgentOptions;

typedef struct Agent Agent;

/* Defaults as documented above; scan options as scan_options_init(). */
void agent_options_init(AgentOptions *o);

/*
 * Builds the agent on e with an API client (both borrowed; they must outlive
 * the agent; the client must be attached to e). o is copied, strings
 * included. Starts the watches, the metrics server and the first scan. err
 * says what failed.
 */
int agent_new(sd_event *e, KubeClient *client, const AgentOptions *o, Agent **ret, MrError *err);
Agent *agent_free(Agent *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(Agent *, agent_free);

/* The bound metrics port (0 when disabled). */
uint16_t agent_metrics_port(const Agent *a);
