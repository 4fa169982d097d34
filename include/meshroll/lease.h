/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lease.h — coordination.k8s.io/v1 Leases.
 *
 * Leases carry leader election (leader.h) and the agents' per-node
 * reports. A KubeLease is the Lease's spec plus the metadata meshroll
 * needs, decoded into C types; the pure conversions (kube_lease_from_json,
 * kube_lease_to_json) are unit-testable without a server, and three calls
 * do the I/O over kube.h's blocking client:
 *
 *     KubeLease l = {};
 *     r = kube_lease_get(c, "istio-system", "meshroll", &l, &st);   // -ENOENT: none yet
 *     l.renew_time = mr_now_realtime(clock);
 *     r = kube_lease_update(c, &l, &st);      // -MR_ECONFLICT: someone wrote in between
 *     kube_lease_done(&l);
 *
 * Writes are full-object PUTs carrying the resourceVersion of the last read
 * (reference §10.1-10.2: Leases refuse unconditional updates, and a 409 is
 * how a lost race shows up). The object as read is kept, so fields meshroll
 * does not model (labels, ownerReferences, spec.strategy, preferredHolder)
 * survive a read-modify-write.
 *
 * Times are wall-clock µs since the epoch, written as metav1.MicroTime
 * ("…T03:04:05.123456Z") and read in either RFC 3339 form.
 *
 * Ownership: every pointer in a KubeLease is owned by it and freed by
 * kube_lease_done(). Strings are malloc'd (replace them with free() +
 * strdup()); annotations and object are json-c roots the lease holds one
 * reference to (json_object_put() the old one when replacing it).
 */
#pragma once

#include <json-c/json.h>
#include <stdint.h>

#include "meshroll/errors.h"
#include "meshroll/kube.h"
#include "meshroll/time-util.h"

typedef struct KubeLease {
        char *namespace;               /* metadata.namespace; required for the calls below */
        char *name;                    /* metadata.name; required */
        char *resource_version;        /* metadata.resourceVersion; NULL for a lease not yet created */
        json_object *annotations;      /* metadata.annotations (an owned copy), or NULL: left as read */

        char *holder_identity;         /* spec.holderIdentity; NULL when absent ("" is written as "") */
        int32_t lease_duration_seconds; /* spec.leaseDurationSeconds; 0 when absent (then not written) */
        usec_t acquire_time;           /* spec.acquireTime, wall µs; 0 when absent (then not written) */
        usec_t renew_time;             /* spec.renewTime, wall µs; 0 when absent (then not written) */
        int32_t lease_transitions;     /* spec.leaseTransitions; 0 when absent (always written) */

        json_object *object;           /* the whole Lease as last read (owned copy), or NULL */
} KubeLease;

/*
 * Frees every member and zeroes *l. Accepts NULL and a zeroed lease. Usable
 * as a cleanup: `_cleanup_(kube_lease_done) KubeLease l = {};`.
 */
void kube_lease_done(KubeLease *l);

/*
 * Decodes a Lease object (borrowed; nothing of it is kept, copies are made).
 * On success fills *ret, which must be zeroed or done (its old members are
 * not freed). Errors: -EBADMSG with err naming the field (not a Lease,
 * missing name, a time that is not RFC 3339, an integer out of int32 range,
 * annotations that are not an object of strings), -ENOMEM. *ret is untouched
 * on failure.
 */
int kube_lease_from_json(json_object *o, KubeLease *ret, MrError *err);

/*
 * Encodes l as a full coordination.k8s.io/v1 Lease, on top of l->object
 * when set (unknown fields kept, the modelled ones overwritten; a NULL
 * resource_version removes metadata.resourceVersion, a NULL annotations
 * keeps what was read). Returns 0 and an owned *ret, -EINVAL when name or
 * namespace is missing, -ENOMEM.
 */
int kube_lease_to_json(const KubeLease *l, json_object **ret);

/*
 * GETs namespace/name into *ret (zeroed or done; filled only on success).
 * Errors: kube.h's (-ENOENT for 404), -EBADMSG when the answer is not a
 * Lease, -EINVAL for a missing name. st may be NULL.
 */
int kube_lease_get(KubeClient *c, const char *ns, const char *name, KubeLease *ret, KubeStatus *st);

/*
 * POSTs l as a new Lease (any resource_version is dropped). On success *l
 * is replaced by the server's answer (resourceVersion set). -EEXIST when it
 * already exists (lost a create race), kube.h's other errors; *l untouched
 * on failure.
 */
int kube_lease_create(KubeClient *c, KubeLease *l, KubeStatus *st);

/*
 * PUTs l, guarded by l->resource_version (required: -EINVAL without one,
 * rather than the server's 422). On success *l is replaced by the server's
 * answer. -MR_ECONFLICT when the lease changed since it was read (re-read
 * it), -ENOENT when it was deleted, kube.h's other errors; *l untouched on
 * failure.
 */
int kube_lease_update(KubeClient *c, KubeLease *l, KubeStatus *st);
