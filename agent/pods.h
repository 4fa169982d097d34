/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pods.h — what the agent knows of the pods on its node, by UID.
 *
 * The scan finds pods by the UID in their cgroup path; people know them by
 * namespace and name. The cache is fed by a watch of the node's pods
 * (fieldSelector spec.nodeName=<node>) and also says which pods use the
 * host network, whose sockets are the host's and must not be counted twice.
 * The map is small (a node runs at most a few hundred pods): an array kept
 * sorted by UID, searched by bisection.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "meshroll/procnet.h"

typedef struct PodInfo {
        char uid[POD_UID_MAX];
        char *namespace;
        char *name;
        bool host_network;
} PodInfo;

typedef struct PodCache {
        PodInfo *pods;
        size_t n, cap;
        bool synced; /* a full list has been seen */
} PodCache;

void pod_cache_init(PodCache *c);
void pod_cache_clear(PodCache *c);
/* Inserts or replaces from a Pod object (borrowed). -EINVAL when it has no usable UID. */
int pod_cache_upsert(PodCache *c, json_object *pod);
void pod_cache_remove(PodCache *c, json_object *pod);
/* Borrowed entry, or NULL. */
const PodInfo *pod_cache_find(const PodCache *c, const char *uid);
