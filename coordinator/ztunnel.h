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
 * The update revision exists only once the DaemonSet controller has
 * snapshotted the current template; until then ztunnel_inspect answers
 * -EAGAIN (right after someone else changed the template; retry shortly).
 * ztunnel_set_template's own writes never hit that window: they point the
 * template at an existing revision.
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

/* "missing", "other", "terminating", "starting", "ready" (static); NULL for any other value. */
const char *ztunnel_node_state_to_string(ZtunnelNodeState s);

/* Strings are owned by the ZtunnelInfo the pod belongs to. */
typedef struct ZtunnelPod {
        char *node;               /* spec.nodeName, else the node of its matchFields affinity, else "" */
        char *name, *uid;
        char *hash;               /* controller-revision-hash, NULL when the pod has none */
        bool ready;               /* condition Ready is True */
        bool terminating;         /* metadata.deletionTimestamp is set */
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
        ZtunnelPod *pods;         /* every pod it controls (ownerReference uid), by node then name */
        size_t n_pods;
        char *selector;           /* spec.selector as a label-selector string (what the pods are listed with) */
        bool pods_cached;         /* the pods came from a pod source (a cache), not a list */
} ZtunnelInfo;

/*
 * Reads the DaemonSet, its ControllerRevisions and its pods (three
 * requests; revisions and pods are those whose controller ownerReference
 * carries the DaemonSet's uid, listed with its selector). *ret is owned
 * (ztunnel_info_free) and untouched on failure. Errors: -EINVAL (NULL
 * argument), -ENOENT (no such DaemonSet: err names it), -EAGAIN (no
 * ControllerRevision holds the current template yet), -EBADMSG (the
 * DaemonSet lacks uid, resourceVersion, template or a valid selector),
 * -ENOMEM, API errors (kube.h) with err naming the request.
 */
int ztunnel_inspect(KubeClient *c, const char *ns, const char *name, ZtunnelInfo **ret, MrError *err);

/*
 * Where ztunnel_inspect_full takes the pods from instead of listing them
 * (the engine's pod cache, podcache.h). Called once the DaemonSet and its
 * revisions are read, with z->namespace, z->uid and z->selector set and no
 * pods yet. Returns 1 when it filled z->pods with exactly the pods whose
 * controller is z->uid (sorted as ztunnel_info_sort_pods does), 0 when it
 * cannot answer now (the inspection lists instead), or a negative error
 * (err set), which fails the inspection.
 */
typedef int (*ztunnel_pod_source_t)(ZtunnelInfo *z, void *userdata, MrError *err);
/*
 * ztunnel_inspect, with the pods from source when it answers (then two
 * requests: the DaemonSet and its revisions; z->pods_cached is set). source
 * NULL: ztunnel_inspect. Same errors, and source's.
 */
int ztunnel_inspect_full(KubeClient *c, const char *ns, const char *name, ztunnel_pod_source_t source,
                         void *userdata, ZtunnelInfo **ret, MrError *err);

/*
 * Fills *ret from a pod object (borrowed): node, name, uid, hash, Ready,
 * terminating, restarts. -ENOMEM, with *ret holding what was copied
 * (ztunnel_pod_done frees it) either way.
 */
int ztunnel_pod_from_json(json_object *pod, ZtunnelPod *ret);
/* Frees p's strings (not p); accepts pods partly filled. */
void ztunnel_pod_done(ZtunnelPod *p);
/* The uid of obj's controller ownerReference (borrowed from obj), NULL when it has none. */
const char *ztunnel_controller_uid(json_object *obj);
/* Sorts z->pods by node, then name. */
void ztunnel_info_sort_pods(ZtunnelInfo *z);
/*
 * -MR_ECONFIG when the DaemonSet is not OnDelete, err carrying the fix
 * (kubectl patch daemonset NAME -n NS -p '{"spec":{"updateStrategy":{"type":"OnDelete"}}}');
 * 0 otherwise.
 */
int ztunnel_require_on_delete(const ZtunnelInfo *z, MrError *err);

/*
 * The first pod on node (name order) that is not terminating, else the first
 * terminating one, else NULL. Borrowed from z.
 */
const ZtunnelPod *ztunnel_pod_on(const ZtunnelInfo *z, const char *node);
/*
 * State of node against the wanted revision hash, judged from all its pods:
 * any non-terminating pod of another revision → OTHER (the node still needs
 * replacing, even beside a new pod); else a non-terminating pod of
 * want_hash → READY or STARTING; else a terminating pod → TERMINATING; else
 * MISSING.
 */
ZtunnelNodeState ztunnel_node_state(const ZtunnelInfo *z, const char *node, const char *want_hash);

/*
 * One idempotent pass of replacement on nodes (NULL-terminated): deletes
 * (with the pod's grace period, preconditioned on its UID) every
 * non-terminating pod whose hash is not want_hash. Returns how many deletes
 * were sent (0 when nothing was left to do). A pod already gone (404) or
 * replaced (UID precondition 409) counts as done, and is counted as sent.
 * A node named twice is handled once. The first other failure stops the
 * pass and is returned, err naming the pod and node (deletes already sent
 * stand; the next pass skips them as terminating). -EINVAL for NULL z,
 * nodes or want_hash.
 */
int ztunnel_replace(KubeClient *c, const ZtunnelInfo *z, const char *const *nodes, const char *want_hash,
                    MrError *err);
/*
 * ztunnel_replace that also reports, in *ret_rv (owned; left NULL when no
 * delete returned one), the highest resourceVersion the deletes returned:
 * the version a reader must have caught up with to see these writes
 * (podcache.h). On failure *ret_rv still holds the deletes sent before it.
 * ret_rv may be NULL.
 */
int ztunnel_replace_full(KubeClient *c, const ZtunnelInfo *z, const char *const *nodes, const char *want_hash,
                         char **ret_rv, MrError *err);

/*
 * Points the DaemonSet's template at a ControllerRevision's template (its
 * data.spec.template), with optimistic concurrency (-MR_ECONFLICT when the
 * DaemonSet changed since z was read). Used to roll a group back (template
 * → previous, replace, then template → update revision again); under
 * OnDelete the change alone touches no running pod. No-op when the template
 * is already that revision's.
 *
 * The DaemonSet is read afresh, its template replaced by the revision's
 * (without the "$patch" directive) and PUT with z's resourceVersion, so the
 * server refuses the write when anything changed since z was read. The
 * no-op check runs on the fresh copy, so repeating a step that already
 * took effect succeeds even with a stale z.
 *
 * Returns 1 when the template was written, 0 when it already was the
 * revision's. Errors: -EINVAL (NULL argument), -ENOENT (no such
 * ControllerRevision, or not one of this DaemonSet's; or the DaemonSet is
 * gone), -MR_ECONFLICT (stale z, or the DaemonSet was recreated), -EBADMSG
 * (the revision holds no template), -ENOMEM, API errors; err says which.
 */
int ztunnel_set_template(KubeClient *c, const ZtunnelInfo *z, const char *revision_name, MrError *err);

/* Frees z and its pods; accepts NULL; returns NULL. */
ZtunnelInfo *ztunnel_info_free(ZtunnelInfo *z);
DEFINE_TRIVIAL_CLEANUP_FUNC(ZtunnelInfo *, ztunnel_info_free);
