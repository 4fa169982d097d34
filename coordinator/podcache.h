/* SPDX-License-Identifier: Apache-2.0 */
/*
 * podcache.h — an informer-style cache of the ztunnel DaemonSet's pods, so
 * the engine's per-tick inspection need not list them (at 5,000 nodes that
 * list is ten 500-pod pages per tick).
 *
 * One watch (kube_watch_start: list, then watch from the list's
 * resourceVersion; a 410 or a broken stream relists) on the DaemonSet's
 * namespace with its label selector. Each pod is kept as the few fields a
 * ZtunnelPod holds plus its controller's uid — a few hundred bytes, not
 * the pod's JSON — in a hash table keyed by pod uid.
 *
 * Freshness is the caller's to demand. The cache knows the resourceVersion
 * it reflects: the list's, then each event's (bookmarks included). A
 * caller that wrote pods (a delete) passes the highest resourceVersion its
 * writes returned as min_rv to pod_cache_fill, which refuses to answer
 * until the cache has caught up with it. Watch events arrive in
 * resourceVersion order, so a cache at or past min_rv has seen every one
 * of those writes: the caller reads its own writes. ResourceVersions are
 * compared as the decimal integers Kubernetes' etcd revisions are (KEP-5504
 * made them comparable for objects of one resource, Kubernetes 1.35;
 * apimachinery's util/resourceversion.CompareResourceVersion); one that is
 * not such an integer is never taken as caught up, so the caller falls back
 * to a list — slower, never wrong.
 */
#pragma once

#include "meshroll/kube.h"
#include "ztunnel.h"

typedef struct PodCache PodCache;

/* Called after every change once the cache is synced (not for the objects of a (re)list). */
typedef void (*pod_cache_changed_t)(PodCache *pc, void *userdata);

typedef struct PodCacheOptions {
        const char *namespace;         /* required */
        const char *label_selector;    /* required: the DaemonSet's selector, as a query string */
        pod_cache_changed_t on_change; /* may be NULL */
        void *userdata;
} PodCacheOptions;

/*
 * A cache with no watch yet (pod_cache_start adds it; tests feed it with
 * pod_cache_apply). Strings of o are copied. Errors: -EINVAL (no namespace
 * or selector, or NULL), -ENOMEM.
 */
int pod_cache_new(const PodCacheOptions *o, PodCache **ret);
/*
 * Starts the watch on c's event loop (c must be attached to one; borrowed,
 * must outlive the cache). Errors: -EBUSY (already started), kube_watch_start's.
 */
int pod_cache_start(PodCache *pc, KubeClient *c);
/* Stops the watch and frees everything; accepts NULL; returns NULL. */
PodCache *pod_cache_free(PodCache *pc);
DEFINE_TRIVIAL_CLEANUP_FUNC(PodCache *, pod_cache_free);

/* Whether the cache was made for this namespace and selector. */
bool pod_cache_is_for(const PodCache *pc, const char *ns, const char *label_selector);
/* Past a complete (re)list, not relisting now, not failed. */
bool pod_cache_synced(const PodCache *pc);
/* The watch stopped (an event could not be applied, or the handler's error): replace the cache. */
bool pod_cache_failed(const PodCache *pc);
/* The resourceVersion the cache reflects (borrowed), NULL before the first list completed. */
const char *pod_cache_resource_version(const PodCache *pc);
/* How many pods the cache holds (every owner). */
size_t pod_cache_size(const PodCache *pc);
/* How many (re)lists completed: 1 after the first, one more after each relist (a 410, a failed watch). */
unsigned pod_cache_syncs(const PodCache *pc);

/*
 * Applies one watch event, as the watch handler does: RESET forgets every
 * pod and unsyncs, ADDED/MODIFIED store the pod's fields, DELETED drops it,
 * SYNCED marks the cache synced, BOOKMARK and every event move the cache's
 * resourceVersion to rv (when not NULL; else the object's own). object is
 * borrowed. After SYNCED, and for changes once synced, on_change is called.
 * Errors: -ENOMEM, -EBADMSG (a pod without metadata.uid), -E2BIG (more
 * than POD_CACHE_MAX pods). After any error the cache no longer mirrors
 * the server: it is failed for good (the watch handler's error stops the
 * watch), answers nothing, and its owner replaces it.
 */
int pod_cache_apply(PodCache *pc, KubeWatchEventType type, json_object *object, const char *rv);

/*
 * Copies into z the pods whose controller ownerReference carries z->uid,
 * sorted by node then name, as ztunnel_inspect would list them (z->pods and
 * z->n_pods must be empty; z->namespace, z->uid set). min_rv: the highest
 * resourceVersion the caller's own writes returned, or NULL.
 *
 * Returns 1 when z was filled, 0 when the cache cannot answer for that
 * (not synced, or behind min_rv, or either resourceVersion not comparable):
 * the caller lists instead. -ENOMEM (z keeps what was copied; free it with
 * ztunnel_info_free), -EINVAL (NULL argument).
 */
int pod_cache_fill(const PodCache *pc, const char *min_rv, ZtunnelInfo *z);

/*
 * Compares two resourceVersions as KEP-5504 does: positive decimal integers
 * without leading zeros, of any length. Sets *ret to -1, 0 or 1 and returns
 * 0; -EINVAL when either is not such an integer (or NULL).
 */
int pod_cache_rv_compare(const char *a, const char *b, int *ret);
