/* SPDX-License-Identifier: Apache-2.0 */
/*
 * controllers-internal.h — what the simulated controllers share.
 *
 * Every controller is a set of sync functions keyed by (namespace, name):
 * sim_<controller>_sync(c, ns, name, now, &due). A sync reads the store,
 * writes what must change (never writing an unchanged object, so a
 * quiescent cluster makes no writes), and may ask to be called again at a
 * simulated time (*due, 0 for never). controllers.c owns the dirty queues
 * and the timers and calls the syncs with the store lock held.
 *
 * The pure parts (PDB arithmetic, int-or-percent scaling, hashes, pod
 * readiness) are exported here for the unit tests.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "controllers.h"
#include "meshroll/errors.h"
#include "store.h"

typedef enum SimCtrl {
        SIM_CTRL_NODE,        /* node-lifecycle.c: key = node name */
        SIM_CTRL_SCHEDULER,   /* scheduler.c: key = pod */
        SIM_CTRL_KUBELET,     /* kubelet.c: key = pod */
        SIM_CTRL_DAEMONSET,   /* daemonset.c: key = DaemonSet */
        SIM_CTRL_DEPLOYMENT,  /* deployment.c: key = Deployment */
        SIM_CTRL_REPLICASET,  /* deployment.c: key = ReplicaSet */
        SIM_CTRL_ENDPOINTS,   /* endpoints.c: key = Service */
        SIM_CTRL_DISRUPTION,  /* disruption.c: key = PodDisruptionBudget */
        SIM_CTRL_GC,          /* gc.c: key = any object's uid (ns = NULL) */
        _SIM_CTRL_MAX,
} SimCtrl;

/* A sync function: the store lock is held. *ret_due: 0 or the simulated time to run again. */
typedef int (*sim_sync_t)(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due);

/* --- controllers.c: queues, timers and shared helpers --------------------------------------- */

SimStore *sim_controllers_store(SimControllers *c);
/* Marks a key dirty for a controller (ns may be NULL for cluster-scoped objects). */
void sim_controllers_enqueue(SimControllers *c, SimCtrl id, const char *ns, const char *name);
/* Marks every object of the controller's primary kind dirty on the next pass. */
void sim_controllers_enqueue_all(SimControllers *c, SimCtrl id);
/* Runs the key's sync at simulated time due (earliest wins when one is already set). */
void sim_controllers_after(SimControllers *c, SimCtrl id, const char *ns, const char *name, usec_t due);
/* The node lifecycle controller's taint delay (options). */
usec_t sim_controllers_taint_delay(SimControllers *c);
/*
 * Debounce: true once `want` (a short state string) has been seen for key
 * for delay since it was first seen; otherwise false and *ret_due is when
 * to look again. A different want restarts the wait.
 */
bool sim_controllers_delay_elapsed(SimControllers *c, const char *key, const char *want, usec_t now, usec_t delay,
                                   usec_t *ret_due);
/* Next pseudo-random number from the seeded generator. */
uint64_t sim_controllers_random(SimControllers *c);

/*
 * Synchronous mode for tests: a controller set without a thread. settle runs
 * every dirty key and every timer due at the store's simulated now until
 * nothing is left (at most max_rounds passes; -ELOOP when work remains);
 * it takes the store lock itself. next_due is the earliest pending timer
 * (USEC_INFINITY when none).
 */
int sim_controllers_new_manual(SimStore *store, const SimControllersOptions *opts, SimControllers **ret);
int sim_controllers_settle(SimControllers *c, unsigned max_rounds);
usec_t sim_controllers_next_due(SimControllers *c);

/* --- shared object helpers (controllers.c) ------------------------------------------------- */

/* true when the pod's Ready condition is "True". */
bool sim_pod_is_ready(json_object *pod);
/*
 * true when the pod has been Ready for at least min_ready seconds at now.
 * When Ready but not yet for long enough, *ret_when (may be NULL) receives
 * the time it becomes available.
 */
bool sim_pod_is_available(json_object *pod, int64_t min_ready, usec_t now, usec_t *ret_when);
bool sim_obj_is_deleting(json_object *obj);
/* The ownerReference with controller: true, borrowed, or NULL. */
json_object *sim_controller_ref(json_object *obj);
/* true when obj's controller ownerRef has this kind and uid. */
bool sim_is_controlled_by(json_object *obj, const char *kind, const char *uid);
/* A controller ownerReference (owned) to owner. NULL on ENOMEM. */
json_object *sim_owner_ref_new(json_object *owner, const char *api_version, const char *kind);

/*
 * Go's intstr.GetScaledValueFromIntOrPercent: an integer is itself, "N%" is
 * N% of total rounded up (round_up) or down. NULL value → def. -EINVAL for
 * any other string ("5", "x%") or type.
 */
int sim_intstr_scaled(json_object *value, int64_t total, bool round_up, int64_t def, int64_t *ret);

/*
 * Sets conditions[type] (status is "True"/"False") on the status object,
 * creating the array; lastTransitionTime changes only when status changes.
 * with_heartbeat adds lastUpdateTime = now (Deployment style).
 */
int sim_set_condition(json_object *status, const char *type, const char *status_value, const char *reason,
                      const char *message, usec_t now, bool with_update_time);

/* Writes obj's status when it differs from the stored one. obj is taken over. 1 when written, 0 when equal. */
int sim_write_status(SimStore *s, const SimKind *k, json_object *obj, const char *actor);
/* Writes obj (spec/metadata) when it differs from the stored one. obj is taken over. */
int sim_write_object(SimStore *s, const SimKind *k, json_object *obj, const char *actor);

/* Stable hash of canonical JSON, encoded like k8s rand.SafeEncodeString (≤ 10 chars). buf ≥ 16. */
char *sim_hash_json(json_object *o, uint32_t collision, char buf[static 16]);

/*
 * Creates a pod from a template (borrowed) for a controller: name
 * "<prefix><5 random chars>" (generateName), labels/annotations from the
 * template plus extra_labels (borrowed, may be NULL), the owner reference,
 * and sidecar injection as Istio's webhook would do it at creation time
 * (istio.io/rev annotation and sidecar.istio.io/status for the revision
 * the namespace label or revision tag points at). node: spec.nodeName and
 * the DaemonSet node affinity when not NULL. *ret_name (may be NULL) gets
 * the name (owned).
 */
int sim_pod_create_from_template(SimControllers *c, const char *ns, const char *prefix, json_object *tmpl,
                                 json_object *extra_labels, json_object *owner_ref, const char *node,
                                 const char *actor, char **ret_name);

/* Resolves the revision a new pod in ns with these template labels gets injected with; NULL: none. */
const char *sim_injection_revision(SimStore *s, const char *ns, json_object *pod_labels);

/* --- scheduler.c: placement predicates the DaemonSet controller shares --------------------- */

/* true unless the node's Ready condition says otherwise (no conditions yet: Ready). */
bool sim_node_is_ready(json_object *node);

/*
 * The scheduler's cache (scheduler.c): per-node trimmed state and the
 * requests of the pods bound there, kept from every pod and node write,
 * and the set of pods waiting for a node. Store lock held for all.
 */
typedef struct SimSchedCache SimSchedCache;
int sim_sched_cache_new(SimSchedCache **ret);
SimSchedCache *sim_sched_cache_free(SimSchedCache *sc);
/* Feeds one write (the store observer's arguments; obj and old borrowed). */
void sim_sched_cache_observe(SimSchedCache *sc, const SimKind *k, SimEventType type, json_object *obj,
                             json_object *old);
/* Enqueues every pending pod for the scheduler. */
void sim_sched_cache_enqueue_pending(SimControllers *c, SimSchedCache *sc);
/* Number of pods waiting for a node. */
size_t sim_sched_cache_pending(const SimSchedCache *sc);
/* The controllers' cache (borrowed). */
SimSchedCache *sim_controllers_sched_cache(SimControllers *c);

/*
 * Parses a Kubernetes quantity into milli-units ("100m" → 100, "2" → 2000,
 * "128Mi" → 128·2^20·1000); a JSON number counts as its value. -EINVAL for
 * anything else (a negative value, an unknown suffix, another type).
 */
int sim_quantity_milli(json_object *v, int64_t *ret);

/* nodeName, nodeSelector and required node affinity of pod (or pod template: reads .spec) against node. */
bool sim_node_fits_placement(json_object *pod, json_object *node);
/* Whether taint keeps no pod with tolerations (may be NULL) away: not NoSchedule/NoExecute, or covered. */
bool sim_taint_tolerated(json_object *taint, json_object *tolerations);
/* The first NoSchedule/NoExecute taint of node that tolerations (may be NULL) leave uncovered, or NULL. */
json_object *sim_node_untolerated_taint(json_object *node, json_object *tolerations);
/* tolerations plus the ones the DaemonSet controller adds to its pods (§8). Owned; NULL on ENOMEM. */
json_object *sim_daemon_tolerations(json_object *tolerations);

/* --- per-controller syncs ------------------------------------------------------------------- */

int sim_node_lifecycle_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due);
int sim_scheduler_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due);
int sim_kubelet_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due);
int sim_daemonset_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due);
int sim_deployment_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due);
int sim_replicaset_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due);
int sim_endpoints_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due);
int sim_disruption_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due);
int sim_gc_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due);

/* --- gc.c ---------------------------------------------------------------------------------- */

/* true when obj has ownerReferences and none of the owners exists (with that uid). */
bool sim_gc_has_dangling_owner(SimStore *s, json_object *obj);

/* --- disruption.c ----------------------------------------------------------------------------- */

/* PDB status arithmetic (the disruption controller's getExpectedPodCount + updatePdbStatus). */
typedef struct SimPdbCounts {
        int64_t expected_pods;
        int64_t desired_healthy;
        int64_t current_healthy;
        int64_t disruptions_allowed;
} SimPdbCounts;

/*
 * spec: the PDB's spec (borrowed). pod_count: matching pods; scale: the sum
 * of the matching pods' controllers' scale, or < 0 when it could not be
 * found (an error only when the spec needs it: maxUnavailable or a
 * percentage minAvailable). healthy: currentHealthy. -EINVAL (with err)
 * for a bad int-or-percent or an unknown scale.
 */
int sim_pdb_compute(json_object *spec, int64_t pod_count, int64_t scale, int64_t healthy, SimPdbCounts *ret,
                    MrError *err);
/* Recomputes and writes one PDB's status at now; *ret_due: when a disruptedPods entry expires. */
int sim_pdb_sync(SimStore *s, const char *ns, const char *name, usec_t now, usec_t *ret_due);

#define SIM_PDB_DELETION_TIMEOUT (2 * USEC_PER_MINUTE)
