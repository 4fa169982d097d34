/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cluster.h — one simulated cluster for the demo: meshroll-kubesim
 * in-process with its real data plane, a load generator playing the client
 * application, and an API client to act on the cluster as a user would.
 *
 * Every wait here is bounded by the caller's deadline and ends early on
 * SIGINT/SIGTERM (-ECANCELED). Errors are logged here, once.
 */
#pragma once

#include <stdbool.h>

#include "demo.h"
#include "meshroll/kube.h"

typedef struct DemoCluster DemoCluster;

typedef struct DemoClusterOptions {
        const char *scenario_path; /* or scenario_data */
        const char *scenario_data;
        double speed;
        const char *client_namespace, *client_selector;
        const char *service;              /* "ns/name" */
        unsigned connections;             /* the pool, spread over the client pods */
        double rate;                      /* per connection */
        unsigned requests_per_connection; /* recycle connections (weights apply per connection); 0: never */
        usec_t deadline;                  /* monotonic µs */
} DemoClusterOptions;

/*
 * Starts the simulator, waits until every Deployment and DaemonSet is
 * available, then starts the load generator and waits until every
 * connection is open and answers. Errors: -MR_ECONFIG (bad scenario or
 * options; logged), -ETIMEDOUT, -ECANCELED, -errno.
 */
int demo_cluster_start(const DemoClusterOptions *o, DemoCluster **ret);
/* Stops the load generator and the simulator (every socket closes). Accepts NULL; returns NULL. */
DemoCluster *demo_cluster_stop(DemoCluster *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(DemoCluster *, demo_cluster_stop);

/* "http://127.0.0.1:PORT" (borrowed). */
const char *demo_cluster_url(DemoCluster *c);
/* The blocking API client (borrowed). */
KubeClient *demo_cluster_client(DemoCluster *c);

/* The cluster's nodes, sorted by name, with their data-plane addresses; owned NULL-terminated lists. */
int demo_cluster_nodes(DemoCluster *c, char ***ret_names, char ***ret_addresses);
/* Connections proxied through node now (its ztunnel's 15001 and 15006), or -errno. */
int demo_cluster_node_connections(DemoCluster *c, const char *node);

/* Creates the namespace unless it exists. */
int demo_cluster_ensure_namespace(DemoCluster *c, const char *name);
/* Creates the CRD from DIR/crd-rollout.yaml unless it exists. */
int demo_cluster_install_crd(DemoCluster *c, const char *manifests_dir);
/* Makes image never Ready (the kubesim-faults ConfigMap, docs/scenario.md). */
int demo_cluster_set_never_ready(DemoCluster *c, const char *image);

/* The ztunnel DaemonSet's first container image (owned) and whether pods still run another template. */
int demo_cluster_ztunnel(DemoCluster *c, char **ret_image, bool *ret_pending);
/*
 * What a user does to upgrade: change the ztunnel DaemonSet's container
 * image (and, when rolling, its strategy to RollingUpdate) with a PUT, then
 * wait until the DaemonSet controller observed it (new ControllerRevision).
 */
int demo_cluster_upgrade(DemoCluster *c, const char *image, bool rolling, usec_t deadline);
/* True when every node runs an available pod of the current template and no old pod is left. */
int demo_cluster_rolled_out(DemoCluster *c, bool *ret);

/* The load generator's counters now. */
void demo_cluster_traffic(DemoCluster *c, DemoTraffic *ret);
/* Waits until the pool is full again and answers (after an upgrade), or the deadline. 0, -ETIMEDOUT,
 * -ECANCELED. */
int demo_cluster_wait_traffic(DemoCluster *c, usec_t deadline);

/* Waits until every node has its agent's Lease (meshroll-agent-<node> in ns): the agents are up. */
int demo_cluster_wait_agents(DemoCluster *c, const char *ns, char **nodes, usec_t deadline);
