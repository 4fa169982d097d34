/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rollout-metrics.h — the coordinator's Prometheus metrics, shared by every
 * engine of a process and served on /metrics by `meshroll controller`.
 *
 *   meshroll_rollout_phase{rollout,phase}            1 for the rollout's current phase
 *   meshroll_rollout_groups{rollout,state}           groups in each state
 *   meshroll_group_step_seconds{step}                how long groups spent in each state (histogram)
 *   meshroll_gate_connections{rollout,group}         long-lived connections seen at the gate
 *   meshroll_drain_evicted_pods_total{rollout}       pods a drain saw go
 *   meshroll_leader                                  1 while this coordinator leads
 */
#pragma once

#include "meshroll/metrics.h"
#include "status.h"

typedef struct RolloutMetrics {
        MrMetrics *registry;
        MrMetric *phase, *groups, *step_seconds, *gate_connections, *evicted, *leader;
} RolloutMetrics;

/* Registers the families in a new registry. 0 or -ENOMEM. */
int rollout_metrics_init(RolloutMetrics *m);
void rollout_metrics_done(RolloutMetrics *m);

/* Sets the phase and per-state group gauges of one rollout from its status. */
void rollout_metrics_update(RolloutMetrics *m, const char *rollout, const RolloutStatus *s);
