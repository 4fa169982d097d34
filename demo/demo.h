/* SPDX-License-Identifier: Apache-2.0 */
/*
 * demo.h — what the demo's modules share: the options a user gives and
 * the numbers one run produces. Each module has its own header for its
 * functions; this one holds only data.
 *
 *   options.c   flags → DemoOptions
 *   signals.c   SIGINT/SIGTERM as a file descriptor; every wait is interruptible
 *   procs.c     child processes: find, spawn in their own process group, stop
 *   scenario.c  the generated cluster (YAML for the simulator)
 *   cluster.c   one simulated cluster with its data plane and load generator
 *   coordinate.c  one `meshroll run`, relayed and timed group by group
 *   runs.c      the meshroll run and the in-place run, end to end
 *   report.c    the tables and the JSON report
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "meshroll/macro.h"

#define DEMO_OLD_VERSION "1.24.0"
#define DEMO_NEW_VERSION "1.25.0"
#define DEMO_OLD_IMAGE "docker.io/istio/ztunnel:" DEMO_OLD_VERSION
#define DEMO_NEW_IMAGE "docker.io/istio/ztunnel:" DEMO_NEW_VERSION
#define DEMO_ROLLOUT_NAME "ztunnel-upgrade"
#define DEMO_AGENT_NAMESPACE "meshroll"

typedef struct DemoOptions {
        unsigned nodes;          /* generated scenario: nodes (default 12) */
        unsigned groups;         /* generated scenario: zones, one node group each (default 4) */
        unsigned connections;    /* long-lived client connections (default 200) */
        double speed;            /* simulated time runs this much faster (default 5) */
        double rate;             /* requests per second per connection (default 2) */
        const char *scenario;    /* a user's scenario file, or NULL: generate one */
        bool never_ready;        /* --fault never-ready */
        const char *report_json; /* write the numbers here, or NULL */
        bool skip_inplace;
        usec_t timeout;         /* the whole demo (default 600 s) */
        const char *manifests;  /* the directory holding crd-rollout.yaml */
        const char *new_image;  /* the ztunnel image to upgrade to */
        char *client_namespace; /* from --client NS/SELECTOR (default shop/app=frontend) */
        char *client_selector;
        char *service; /* --service NS/NAME (default shop/orders) */
        bool verbose;  /* agents and coordinator log at info level */

        /* --traffic: an application's version switch by route weights (traffic.c) instead */
        bool traffic;
        double fail_share;        /* the new version answers 503 to this share of requests */
        const char *prometheus;   /* gate the steps on this Prometheus (its error-rate gate), or NULL */
        const char *targets_file; /* write the nodes' /metrics addresses here (Prometheus file_sd) */
        usec_t step_pause;        /* each weight step (default 5 s) */
} DemoOptions;

/* The traffic counters over one upgrade: from the moment it was triggered to its end. */
typedef struct DemoTraffic {
        uint64_t requests_sent, requests_ok, requests_failed, requests_retried;
        uint64_t requests_error; /* of requests_failed: answered 503 */
        uint64_t connections_opened, connections_closed, connections_reset;
        uint32_t connections_active; /* at the end */
} DemoTraffic;

/* The states a group goes through, in order; times are recorded when first seen. */
typedef enum DemoState {
        DEMO_CORDONING,
        DEMO_DRAINING,
        DEMO_GATING,
        DEMO_REPLACING,
        DEMO_VERIFYING,
        DEMO_UNCORDONING,
        DEMO_SOAKING,
        DEMO_DONE,
        _DEMO_STATE_MAX,
} DemoState;

typedef struct DemoGroup {
        char name[64];
        char state[32];    /* the last state seen */
        char message[256]; /* the group's status message, last seen */
        char **nodes;      /* NULL-terminated, owned */
        unsigned n_nodes;
        usec_t at[_DEMO_STATE_MAX];  /* monotonic µs when first seen (0: not seen) */
        int64_t connections_at_gate; /* long-lived connections the gate measured; -1: not measured */
        int64_t connections_moved;   /* connections through the group's nodes when its drain began; -1 */
} DemoGroup;

typedef struct DemoRun {
        bool ran;
        bool completed;   /* the upgrade finished everywhere */
        bool rolled_back; /* meshroll rolled a group back and paused */
        bool timed_out;
        char phase[32], reason[64], message[512];
        usec_t wall;  /* trigger → end, real µs */
        usec_t ended; /* monotonic µs when the outcome was first seen, or 0 */
        DemoTraffic traffic;
        DemoGroup *groups; /* meshroll run only; owned */
        size_t n_groups;
} DemoRun;

void demo_run_done(DemoRun *r);
