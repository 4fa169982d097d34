/* SPDX-License-Identifier: Apache-2.0 */
/*
 * scenario.h — the YAML file that describes a simulated cluster.
 *
 * A scenario names nodes (with labels, pools, zones, capacity), workloads
 * (Deployments, DaemonSets with replicas, probes, start-up and shutdown
 * times), PDBs, Services, the Istio install (istiod per revision, revision
 * tags, a ztunnel DaemonSet, gateways, namespace labels), any raw
 * Kubernetes objects, and the faults to inject. Loading it creates those
 * objects in the store (the controllers then create pods as usual).
 * The format is documented in docs/scenario.md; errors name the field
 * path ("nodes[3].labels: expected a mapping").
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "meshroll/errors.h"
#include "store.h"

/* Faults the API layer injects, per verb (get list watch create update patch delete). */
enum {
        SIM_VERB_GET,
        SIM_VERB_LIST,
        SIM_VERB_WATCH,
        SIM_VERB_CREATE,
        SIM_VERB_UPDATE,
        SIM_VERB_PATCH,
        SIM_VERB_DELETE,
        _SIM_VERB_MAX,
};

typedef struct SimFaults {
        double error_rate[_SIM_VERB_MAX];   /* 0..1: share of requests answered 500 (or error_code) */
        int error_code[_SIM_VERB_MAX];      /* 0 → 500; 429 sends Retry-After: 1 */
        usec_t latency[_SIM_VERB_MAX];      /* added before answering (real time) */
        usec_t watch_drop_after;            /* 0: never; else close each watch after this (real) time */
        double conflict_rate;               /* 0..1: share of status writes answered 409 */
        double spike_rate;                  /* 0..1: share of requests (any verb) delayed by spike_delay more */
        usec_t spike_delay;
        double watch_gone_rate;             /* 0..1: share of watches from a resourceVersion answered 410 Expired */
        char exempt_user_agents[4][64];     /* User-Agent prefixes no fault applies to ("" ends the list) */
} SimFaults;

/* Parses a verb name ("get", "list", …) to SIM_VERB_*, or -EINVAL. */
int sim_verb_from_string(const char *s);

/* Loads a scenario document into store (lock NOT held by the caller) and fills *faults. */
int sim_scenario_load_data(SimStore *store, const char *data, size_t size, const char *source_name,
                           SimFaults *faults, MrError *err);
int sim_scenario_load_file(SimStore *store, const char *path, SimFaults *faults, MrError *err);
