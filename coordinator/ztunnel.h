/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ztunnel.h — the ztunnel DaemonSet as the coordinator sees it: which
 * revision is the target, which the previous, which pod runs on each node;
 * and the two writes that replace and roll back ztunnel on a group.
 *
 * Revisions are ControllerRevisions owned by the DaemonSet
 * (shared/reference/kubernetes-api.md §9.3): pods carry the label
 * controller-revision-hash; the *update* revision is the one whose template
 * equals the DaemonSet's current template (the highest `revision` among
 * those, i.e. the revision whose hash the controller stamps on new pods);
 * the *previous* revision is the highest-numbered other revision that pods
 * still run, or else the highest-numbered other revision.
 *
 * Replacement needs updateStrategy OnDelete: Kubernetes then creates a
 * node's new pod only when its old pod is gone (§9.4), so meshroll decides
 * where and when. Under RollingUpdate the DaemonSet controller would replace
 * pods on every node by itself, bypassing the drain — an error with the fix
 * ("kubectl patch ds … -p '{"spec":{"updateStrategy":{"type":"OnDelete"}}}'").
 *
 * Timing is not this module's job: it reports whether each node's pod is
 * Ready now; the engine measures how long with its own clock (objects'
 * timestamps come from other clocks).
 *
 * All calls are blocking and short (a few requests); errors carry a sentence.
 */
#pragma once

#include <stdbool.h>

#include "meshroll/kube.h"

typedef enum ZtunnelNodeState {
        ZTUNNEL_NODE_MISSING,     /* no pod on the node */
        ZTUNNEL_NODE_OTHER,       /* a pod of another revision, not terminating */
        ZTUNNEL_NODE_TERMINATING, /* the pod is being deleted */
        ZTUNNEL_NODE_STARTING,    /* a pod of the wanted revision, not Ready */
        ZTUNNEL_NODE_READY,       /* a pod of the wanted revision, Ready */
} ZtunnelNodeState;

const char *ztunnel_node_state_to_string(ZtunnelNodeState s);

typedef struct ZtunnelPod {
        char *node;
        char *name, *uid;
        char *hash;               /* controller-revision-hash */
        bool ready, terminating;
        unsigned restarts;        /* sum of containers' restartCount */
} ZtunnelPod;

typedef struct ZtunnelInfo {
        char *namespace, *name;
        char *uid;
        char *resource_version;
        bool on_delete;           /* updateStrategy.type == OnDelete */
        char *update_hash;        /* revision of the current template */
        char *update_revision;    /* its ControllerRevision name */
        char *previous_hash;      /* NULL when the DaemonSet has one revision */
        char *previous_revision;  /* its ControllerRevision name */
        ZtunnelPod *pods;         /* every pod of the DaemonSet, sorted by node */
        size_t n_pods;
} ZtunnelInfo;

/*
 * Reads the DaemonSet, its ControllerRevisions and its pods. Errors:
 * -ENOENT (no such DaemonSet: err names it), API errors.
 */
int ztunnel_inspect(KubeClient *c, const char *ns, const char *name, ZtunnelInfo **ret, MrError *err);
/* -MR_ECONFIG with the fix when the DaemonSet is not OnDelete; 0 otherwise. */
int ztunnel_require_on_delete(const ZtunnelInfo *z, MrError *err);

/* The pod on node that is not terminating (else any), or NULL. Borrowed. */
const ZtunnelPod *ztunnel_pod_on(const ZtunnelInfo *z, const char *node);
/* State of node against the wanted revision hash. */
ZtunnelNodeState ztunnel_node_state(const ZtunnelInfo *z, const char *node, const char *want_hash);

/*
 * One idempotent pass of replacement on nodes (NULL-terminated): deletes
 * (with the pod's grace period, preconditioned on its UID) every
 * non-terminating pod whose hash is not want_hash. Returns how many deletes
 * were sent (0 when nothing was left to do). A pod already gone (404) or
 * replaced (UID precondition 409) counts as done.
 */
int ztunnel_replace(KubeClient *c, const ZtunnelInfo *z, const char *const *nodes, const char *want_hash,
                    MrError *err);

/*
 * Points the DaemonSet's template at a ControllerRevision's template (its
 * data.spec.template), with optimistic concurrency (-MR_ECONFLICT when the
 * DaemonSet changed since z was read). Used to roll a group back (template
 * → previous, replace, then template → update revision again); under
 * OnDelete the change alone touches no running pod. No-op when the template
 * is already that revision's.
 */
int ztunnel_set_template(KubeClient *c, const ZtunnelInfo *z, const char *revision_name, MrError *err);

ZtunnelInfo *ztunnel_info_free(ZtunnelInfo *z);
DEFINE_TRIVIAL_CLEANUP_FUNC(ZtunnelInfo *, ztunnel_info_free);
