/* SPDX-License-Identifier: Apache-2.0 */
/*
 * traffic.h — the traffic phase: an application moves from one version to
 * the next by Istio route weights, not by a rolling update (issue 8).
 *
 * A rolling update through the mesh loses the requests that reach a pod
 * while it stops; switching by routing does not: each version has its own
 * Deployment (pods labelled version=v1, version=v2), the DestinationRule
 * names one subset per version, and the VirtualService's route weights say
 * which share of requests goes to which subset. The phase automates that:
 *
 *   spec:
 *     traffic:
 *       namespace: shop
 *       host: reviews                 # the route destination's host
 *       destinationRule: reviews      # networking.istio.io/v1, in namespace
 *       virtualService: reviews
 *       versionLabel: version         # default "version"; subsets are named by the versions
 *       from: v1                      # the old subset (and its label value)
 *       to: v2                        # the new one
 *       deployment: reviews-v2        # the new version's Deployment
 *       steps: [5, 25, 50, 100]       # % on the new subset, increasing, ending at 100 (default [100])
 *       stepPause: 30s                # each step lasts at least this (default 30s)
 *       soak: 1m                      # after 100 %, before the old subset goes (default 0)
 *       timeout: 10m                  # for the Deployment to be available, and for
 *                                     # the gates' verdict after a step's pause (default 10m)
 *       old: {action: scaleDown, deployment: reviews-v1}   # keep (default) | scaleDown | delete
 *       gates: […]                    # metric-gate.h: checked at every step and through the soak
 *
 * What it does, one idempotent write at a time (the record in
 * PhaseStatus.detail, below, is written before the write it describes is
 * depended on):
 *   1. subset: add the subset `to` (labels {versionLabel: to}) to the
 *      DestinationRule, and `from` if missing;
 *   2. available: wait until the new Deployment is fully available (every
 *      replica updated and available for its current generation);
 *   3. shift: for each step, set the weights (100 − w on `from`, w on `to`)
 *      on every route to `host` in the VirtualService (http, tcp, tls), then
 *      wait stepPause while the phase's gates are checked (since: the step's
 *      start) — both must be done before the next step;
 *   4. soak at 100 %, gates checked again;
 *   5. cleanup: route only to `to`, remove the subset `from` (kept in the
 *      record for a later rollback), apply old.action.
 * Every write is a PUT carrying the resourceVersion the object was read
 * with; a 409 re-reads and re-applies the change (up to 5 times), so other
 * fields and concurrent edits of other fields are preserved.
 *
 * Rollback — a gate failed, a wait timed out, or `meshroll rollback
 * --phase traffic` — scales the old Deployment back up if the phase scaled
 * it down (and waits for it), puts the old subset back if it was removed,
 * routes 100 % to `from`, and removes the subset `to` if the phase added
 * it. A phase whose old Deployment was deleted cannot be rolled back
 * (-EINVAL naming it).
 *
 * The record (PhaseStatus.detail):
 *   stage: subset|available|shift|soak|cleanup|rollback
 *   stageStart: µs          when the stage (for shift: the current step) began
 *   step: i, weight: w      the step in progress and the weight written for it
 *   addedSubset: bool       the phase added the subset `to` (rollback removes it)
 *   cleanupStep, rollbackStep: n   progress inside those stages
 *   oldSubset: {…}          the subset `from` as it was when the phase removed it
 *   oldReplicas: n          the old Deployment's replicas before scaleDown
 *   oldScaledDown, oldDeleted: bool
 *   reason: "…"             why the phase is rolling back
 *   gates, gateBaselines    metric-gate.c's
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "meshroll/errors.h"
#include "meshroll/time-util.h"
#include "phase.h"

#define TRAFFIC_MAX_STEPS 20

typedef enum TrafficOldAction {
        TRAFFIC_OLD_KEEP,
        TRAFFIC_OLD_SCALE_DOWN,
        TRAFFIC_OLD_DELETE,
} TrafficOldAction;

typedef struct TrafficSpec {
        char *namespace;
        char *host;
        char *destination_rule;
        char *virtual_service;
        char *version_label; /* default "version" */
        char *from, *to;     /* subset names and label values */
        char *deployment;    /* the new version's Deployment */
        unsigned steps[TRAFFIC_MAX_STEPS];
        size_t n_steps; /* ≥ 1; steps[n_steps - 1] == 100 */
        usec_t step_pause, soak, timeout;
        TrafficOldAction old_action;
        char *old_deployment; /* required unless old_action is keep */
} TrafficSpec;

extern const PhaseOps traffic_phase_ops;

/* "keep", "scaleDown", "delete". */
const char *traffic_old_action_to_string(TrafficOldAction a);

/*
 * Reads spec.traffic (borrowed) into a new TrafficSpec; the PhaseOps.parse
 * contract (-MR_ECONFIG naming the field, -ENOMEM).
 */
int traffic_spec_from_json(json_object *section, const char *path, TrafficSpec **ret, MrError *err);
TrafficSpec *traffic_spec_free(TrafficSpec *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(TrafficSpec *, traffic_spec_free);

/* How traffic_set_routes distributes a route to the host. */
typedef enum TrafficRoutes {
        TRAFFIC_ROUTES_SPLIT,    /* 100 − weight on from, weight on to */
        TRAFFIC_ROUTES_OLD_ONLY, /* one destination: from, 100 */
        TRAFFIC_ROUTES_NEW_ONLY, /* one destination: to, 100 */
} TrafficRoutes;

/*
 * Rewrites, in vs (a VirtualService; borrowed, modified in place), every
 * http/tcp/tls route whose destinations name s->host: its destinations
 * become from/to as mode says, each a copy of the route's first destination
 * (so its port and headers stay) with the subset and weight set. Everything
 * else is left as it was. 1 when vs changed, 0 when it already was so;
 * -MR_ECONFIG when no route names the host or a route to the host also
 * names another host (err says which); -ENOMEM.
 */
int traffic_set_routes(json_object *vs, const TrafficSpec *s, TrafficRoutes mode, unsigned weight,
                       MrError *err);

/*
 * The weight on the subset `to` in the first route to s->host of vs
 * (borrowed), 0 when that route does not name it; -ENOENT when no route
 * names the host.
 */
int traffic_routed_weight(json_object *vs, const TrafficSpec *s);

/*
 * Makes dr (a DestinationRule; borrowed, modified) hold a subset named name.
 * subset (borrowed) is the whole subset to add, or NULL for {name, labels:
 * {label: name}}. An existing subset of that name is left alone. 1 changed,
 * 0 already there, -ENOMEM.
 */
int traffic_ensure_subset(json_object *dr, const char *name, const char *label, json_object *subset);

/*
 * Removes the subset name from dr (borrowed, modified); *ret_removed (when
 * not NULL) gets it (owned) or NULL. 1 changed, 0 absent, -ENOMEM.
 */
int traffic_remove_subset(json_object *dr, const char *name, json_object **ret_removed);

/*
 * Whether a Deployment (borrowed) is fully available: observedGeneration
 * has caught up, and updated, total and available replicas all equal
 * spec.replicas. *ret_available / *ret_wanted (may be NULL) for messages.
 */
bool traffic_deployment_available(json_object *deployment, int64_t *ret_available, int64_t *ret_wanted);
