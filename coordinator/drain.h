/* SPDX-License-Identifier: Apache-2.0 */
/*
 * drain.h — empty a group of (already cordoned) nodes through the Eviction
 * API, on the coordinator's event loop.
 *
 * The algorithm is kubectl drain's (shared/reference/kubernetes-api.md §7.5)
 * with the flags meshroll always uses (--ignore-daemonsets, and
 * --delete-emptydir-data / --force from the spec), made faster and
 * observable:
 *
 *   1. List the pods of every node (fieldSelector spec.nodeName=N; the
 *      spec's podSelector is applied to the list) and classify each, in
 *      kubectl's order: finished pods are deleted (DELETE with their UID as
 *      precondition); DaemonSet pods are skipped (their DaemonSet must
 *      exist, else they are an error unless force); mirror pods
 *      (kubernetes.io/config.mirror) are skipped; pods with emptyDir volumes
 *      are an error unless deleteEmptyDirData; pods with no controller are an
 *      error unless force. Any error stops the drain before a single eviction
 *      (like kubectl), naming every offending pod.
 *   2. Evict the rest (POST pods/P/eviction, policy/v1), at most
 *      `concurrency` in flight. 429 (a PodDisruptionBudget says no) is
 *      retried with jittered backoff until the drain timeout, and the
 *      blocking PDB is named in the progress; 404 means already gone; 500
 *      "more than one PodDisruptionBudget" is an error for that pod.
 *   3. Wait for each evicted pod to be gone — deleted, or replaced by a pod
 *      of the same name with another UID — by watching each node's pods
 *      rather than polling every second as kubectl does. The same watch
 *      gives step 1 its list (informer-style LIST then WATCH), and a relist
 *      after a 410 counts a tracked pod absent from it as gone.
 *
 * Cordoning, marking and uncordoning are the caller's steps, not this
 * module's. Nothing here logs: progress and results go to the callbacks.
 */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "meshroll/kube.h"

typedef struct DrainOptions {
        usec_t timeout;               /* whole drain, listing included; 0 = none */
        unsigned concurrency;         /* eviction/deletion requests in flight at once, 0 → 10 */
        int64_t grace_period_seconds; /* -1: each pod's own; else DeleteOptions' (0 = at once!) */
        const char *pod_selector;     /* label selector string, or NULL for all pods (copied) */
        bool delete_emptydir_data;
        bool force;                   /* also unmanaged pods, and those of a deleted DaemonSet */
        usec_t retry_base, retry_cap; /* 429 backoff, 0 → 1 s, 10 s */
} DrainOptions;

/*
 * A snapshot. Until the listing and the DaemonSet checks are done every count
 * is 0 except skipped and total. total = evicting + terminating + gone + failed
 * once eviction began.
 */
typedef struct DrainProgress {
        unsigned total;       /* pods to evict or delete */
        unsigned skipped;     /* DaemonSet and mirror pods left alone */
        unsigned evicting;    /* not evicted yet: queued, in flight, or waiting to retry */
        unsigned blocked;     /* of those, last answered 429 */
        unsigned terminating; /* evicted, not gone yet */
        unsigned gone;
        unsigned failed;        /* the API refused for good (e.g. 500 "more than one PodDisruptionBudget") */
        char blocking_pdb[256]; /* "ns/name" of a PDB blocking an eviction now, or "" (not known yet) */
        char blocked_pod[256];  /* "ns/name" of a pod blocked now (by blocking_pdb when set), or "" */
} DrainProgress;

typedef struct Drain Drain;

/*
 * Called whenever progress changed, at most once per event-loop iteration
 * (a defer source coalesces changes), never after on_done. p is borrowed
 * for the call. May be NULL. drain_free may be called from inside.
 */
typedef void (*drain_progress_t)(Drain *d, const DrainProgress *p, void *userdata);
/*
 * Called once when the drain ends, always from the event loop:
 *   0            every pod to evict or delete is gone;
 *   -ETIMEDOUT   the drain timeout passed (p says what was still blocked;
 *                message names the pods left and the blocking PDBs);
 *   -MR_ECONFIG  pods cannot be drained with these options (message names
 *                every one and why; nothing was evicted or deleted);
 *   other        the API failed beyond retries: a DaemonSet check, a watch,
 *                or an eviction refused for good (first such error; other
 *                pods were still evicted and waited for, as kubectl does).
 * message is a sentence for logs and Events. p and message are borrowed
 * for the call. After the callback the Drain is inert (nothing in flight);
 * free it with drain_free (may be done inside the callback).
 */
typedef void (*drain_done_t)(Drain *d, int error, const DrainProgress *p, const char *message,
                             void *userdata);

/*
 * Starts draining nodes (NULL-terminated, copied) on e with client (both
 * borrowed and must outlive the Drain; client attached to e). o is copied
 * (NULL: defaults). Nothing is sent before the loop runs. Returns 0 and the
 * handle, or -ENOMEM, -EINVAL (no nodes, an empty node name, or a
 * pod_selector that does not parse), or kube_watch_start's error (-ENXIO: the
 * client has no event loop). All results arrive through on_done (required).
 */
int drain_start(KubeClient *client, sd_event *e, const char *const *nodes, const DrainOptions *o,
                drain_progress_t on_progress, drain_done_t on_done, void *userdata, Drain **ret);
/* The current progress (the final one after on_done). */
void drain_get_progress(const Drain *d, DrainProgress *ret);
/*
 * Cancels whatever is in flight (no callback) and frees. Accepts NULL.
 * Returns NULL. Safe from inside on_progress and on_done; not from inside a
 * watch handler or request callback of the same client (it cancels
 * transfers, which libcurl forbids there).
 */
Drain *drain_free(Drain *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(Drain *, drain_free);
