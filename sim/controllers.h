/* SPDX-License-Identifier: Apache-2.0 */
/*
 * controllers.h — the simulated kube-controller-manager, scheduler and
 * kubelets.
 *
 * One controller thread runs every simulated controller: node lifecycle
 * (unschedulable taint), scheduler, kubelet (pod phases, readiness, graceful
 * termination and final removal), DaemonSet (OnDelete and RollingUpdate,
 * ControllerRevisions), Deployment and ReplicaSet (rolling updates,
 * restartedAt), Service endpoints, PodDisruptionBudget status (disruption
 * controller) and garbage collection by ownerReferences. Controllers learn
 * of writes through a store observer and reconcile what changed; timed work
 * (a pod becoming Ready after its start-up delay) waits on simulated time.
 *
 * Workload behaviour that a real kubelet would get from the container image
 * comes from annotations the scenario puts on pod templates:
 *   sim.meshroll.io/startup-seconds    time from scheduled to Ready (default 2)
 *   sim.meshroll.io/shutdown-seconds   time from deletion to exit, capped by the
 *                                      grace period (default 1)
 *   sim.meshroll.io/never-ready        "true": Running but never Ready (crash-looping
 *                                      image: restartCount grows)
 */
#pragma once

#include "meshroll/errors.h"
#include "store.h"

typedef struct SimControllers SimControllers;

typedef struct SimControllersOptions {
        uint64_t seed;              /* for any randomness (name suffixes, jitter) */
        usec_t resync;              /* simulated full-resync period; 0 → 30 s */
        const SimClock *clock;      /* the store's clock, to turn simulated delays into real waits;
                                     * NULL: poll every 50 ms real time */
        usec_t taint_delay;         /* simulated delay before the node lifecycle controller
                                     * applies the unschedulable taint (default 0) */
} SimControllersOptions;

/* Starts the controller thread on store (borrowed; must outlive the controllers). */
int sim_controllers_start(SimStore *store, const SimControllersOptions *opts, SimControllers **ret);
/* Stops the thread and frees. Returns NULL. */
SimControllers *sim_controllers_stop(SimControllers *c);

/*
 * Eviction admission, as the API server's eviction REST handler: called by
 * the API layer with the lock held, for a pod being evicted. Finds the PDBs
 * whose selector matches the pod in its namespace; none → 0; more than one
 * → -EIO ("This pod has more than one PodDisruptionBudget, which the
 * eviction subresource does not support."); one whose
 * status.disruptionsAllowed is 0 (or whose status is stale:
 * observedGeneration < generation) → -MR_ETOOMANY with "Cannot evict pod as
 * it would violate the pod's disruption budget." and the PDB's name; else
 * decrements disruptionsAllowed, records the pod in status.disruptedPods and
 * returns 0. Pods not Running-and-Ready do not count against the budget
 * (they are evictable when the PDB's currentHealthy >= desiredHealthy
 * already), as in the real handler.
 */
int sim_eviction_admit(SimStore *store, json_object *pod, MrError *err);

/*
 * The details an API layer needs for the Status of a refused eviction
 * (§7.2): the DisruptionBudget cause message and the Retry-After seconds
 * (10 while the budget is still being processed, else 0).
 */
typedef struct SimEvictionDenial {
        char pdb_name[256];       /* "" when no budget was involved */
        char cause[512];          /* details.causes[0].message (reason "DisruptionBudget"), "" if none */
        int retry_after;          /* seconds; 0: no Retry-After header */
} SimEvictionDenial;

/*
 * As sim_eviction_admit, filling *ret_denial (may be NULL) on -MR_ETOOMANY.
 * Also -MR_EFORBIDDEN when disruptionsAllowed is negative or disruptedPods
 * holds more than 2000 entries (403 in the real handler).
 */
int sim_eviction_admit_ex(SimStore *store, json_object *pod, SimEvictionDenial *ret_denial, MrError *err);
