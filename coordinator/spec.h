/* SPDX-License-Identifier: Apache-2.0 */
/*
 * spec.h — the Rollout: what an operator asks meshroll to do.
 *
 * One document, two homes: a `Rollout` custom resource
 * (meshroll.io/v1alpha1, cluster-scoped; CRD in manifests/) reconciled by
 * `meshroll controller`, or the same YAML in a file for `meshroll run -f`.
 *
 *   apiVersion: meshroll.io/v1alpha1
 *   kind: Rollout
 *   metadata: {name: ztunnel-1-25}
 *   spec:
 *     paused: false
 *     target: {namespace: istio-system, daemonSet: ztunnel}
 *     groups:                       # exactly one of byLabel, size, percent, list
 *       nodeSelector: "pool=general"  # nodes taking part (default: every node running ztunnel)
 *       canary: 1                   # first group: this many nodes (0: no canary group)
 *       byLabel: topology.kubernetes.io/zone
 *       order: [zone-a, zone-b]     # byLabel: these values first, the rest sorted
 *       size: 3                     # batches of N nodes
 *       percent: 25                 # batches of P % of the nodes (rounded up)
 *       list: [{name: a, nodes: [n1, n2]}, …]
 *     drain:
 *       timeout: 10m
 *       concurrency: 10             # evictions in flight per group
 *       gracePeriodSeconds: 30      # override the pods' own (default: theirs)
 *       podSelector: "app!=batch"   # only these pods are evicted
 *       deleteEmptyDirData: true
 *       force: false                # also delete pods no controller manages
 *     connectionGate:
 *       threshold: 0                # long-lived connections allowed per node
 *       timeout: 5m
 *       onTimeout: pause            # proceed | pause | rollback
 *       agentNamespace: meshroll
 *     readiness: {timeout: 5m, minReadySeconds: 30}
 *     soak: 1m
 *     gates: […]                    # metric gates checked while each group soaks (metric-gate.h)
 *     prometheus: http://…:9090     # the default Prometheus for every phase's gates
 *     phases: [ztunnel, sidecar]    # which phases, in which order (phase.h)
 *     sidecar: {…}                  # sidecar.h
 *     gateway: {…}                  # gateway.h
 *     traffic: {…}                  # traffic.h
 *     preflight: {skip: [agents], waitTimeout: 10m}   # checks not run; how long transient errors are awaited
 *
 * Phases: without spec.phases, the phases are the sections present, in the
 * order ztunnel, sidecar, gateway, traffic; the ztunnel phase is present
 * when spec.target or spec.groups is given, or when no other phase is (a
 * Rollout of ztunnel alone needs no phase fields). With spec.phases, the
 * list is the order, each listed phase other than ztunnel needs its
 * section, and a section not listed is an error (it would silently not
 * run). Each phase section is read by its module (PhaseOps.parse), except
 * its `gates` list, read here for every phase alike.
 *
 * Durations are Go-style strings ("90s", "5m") or integer seconds.
 * Unknown fields are errors (a typo must not silently become a default).
 * Every error names the field path and what was expected:
 *   "spec.connectionGate.onTimeout: expected one of proceed, pause, rollback; got \"retry\"".
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "meshroll/errors.h"
#include "meshroll/time-util.h"
#include "metric-gate.h"
#include "phase.h"

typedef enum GateAction {
        GATE_PAUSE,
        GATE_PROCEED,
        GATE_ROLLBACK,
} GateAction;

const char *gate_action_to_string(GateAction a);

typedef enum GroupingMode {
        GROUPING_SIZE,
        GROUPING_PERCENT,
        GROUPING_LABEL,
        GROUPING_LIST,
} GroupingMode;

typedef struct NodeList {
        char *name;     /* group name */
        char **nodes;   /* NULL-terminated */
} NodeList;

struct RolloutSpec {
        char *name;                  /* metadata.name */
        bool paused;

        PhaseKind phases[_PHASE_KIND_MAX]; /* the phases to run, in order */
        size_t n_phases;
        void *phase_spec[_PHASE_KIND_MAX];  /* the module's spec of each phase present; NULL for ztunnel */
        MetricGateSet *gates[_PHASE_KIND_MAX]; /* each phase's metric gates, or NULL */
        char *prometheus;            /* spec.prometheus, or NULL */

        char *target_namespace;      /* "istio-system" */
        char *target_daemonset;      /* "ztunnel" */

        char *node_selector;         /* label selector string, or NULL */
        unsigned canary;             /* nodes in the canary group, 0 = none */
        GroupingMode mode;
        unsigned size;               /* GROUPING_SIZE */
        unsigned percent;            /* GROUPING_PERCENT, 1..100 */
        char *by_label;              /* GROUPING_LABEL */
        char **order;                /* GROUPING_LABEL: NULL-terminated, may be NULL */
        NodeList *lists;             /* GROUPING_LIST */
        size_t n_lists;

        usec_t drain_timeout;
        unsigned drain_concurrency;
        int64_t grace_period_seconds; /* -1: the pods' own */
        char *pod_selector;          /* or NULL */
        bool delete_emptydir_data;
        bool force;

        unsigned gate_threshold;
        usec_t gate_timeout;
        GateAction gate_action;
        char *agent_namespace;

        usec_t readiness_timeout;
        usec_t min_ready;

        usec_t soak;

        char **preflight_skip;       /* spec.preflight.skip: checks not run before the rollout (preflight.h), or NULL */
        usec_t preflight_wait_timeout; /* spec.preflight.waitTimeout: transient errors awaited this long, then a pause */
};

/* Whether the spec runs phase k. */
bool rollout_spec_has_phase(const RolloutSpec *s, PhaseKind k);

/*
 * Reads a Rollout document (borrowed; the parsed YAML or the custom
 * resource) into a new spec, applying defaults. Errors: -MR_ECONFIG with err
 * naming the field path; -ENOMEM.
 */
int rollout_spec_from_json(json_object *doc, RolloutSpec **ret, MrError *err);

/* Loads a YAML file holding one Rollout; errors name the file too. */
int rollout_spec_load_file(const char *path, RolloutSpec **ret, MrError *err);

RolloutSpec *rollout_spec_free(RolloutSpec *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(RolloutSpec *, rollout_spec_free);
