/* SPDX-License-Identifier: Apache-2.0 */
/*
 * scenario.h — the cluster the demo generates for the simulator.
 */
#pragma once

#include "demo.h"

/*
 * The scenario YAML (owned, *ret) for o's nodes and groups: N nodes in G
 * zones (label topology.kubernetes.io/zone), the namespaces meshroll and
 * shop (ambient), istiod 1.24 and 1.25, the ztunnel DaemonSet running 1.24
 * everywhere (no pending revision: the demo changes the image itself) with
 * the given update strategy ("OnDelete" or "RollingUpdate"), a client
 * Deployment "frontend" (one replica per node, PDB maxUnavailable 1) and a
 * backend Deployment and Service "orders" (at least 3 replicas, PDB
 * maxUnavailable 1, no node pinning so every drain can make progress).
 * Errors: -ENOMEM, -EINVAL (0 nodes, or more groups than nodes or 26).
 */
int demo_scenario_build(const DemoOptions *o, const char *strategy, char **ret);

/* The zone of group i: "zone-a", "zone-b", … (static for i < 26). */
const char *demo_zone_name(unsigned i);
