/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metric-gate.h — gates on Prometheus metrics, for any phase.
 *
 * A gate is a PromQL instant query against a Prometheus HTTP API, a
 * comparison and a threshold, checked every `interval` until it has passed
 * `checks` times in a row (a failed check fails the gate at once: the phase
 * rolls back). Written in a phase's section of the Rollout (for the ztunnel
 * phase at spec.gates):
 *
 *   spec:
 *     prometheus: http://prometheus.monitoring:9090   # default URL for every gate
 *     traffic:
 *       gates:
 *         - name: error-rate
 *           query: >-
 *             sum(rate(istio_requests_total{destination_workload="reviews-v2",response_code=~"5.."}[1m]))
 *             / sum(rate(istio_requests_total{destination_workload="reviews-v2"}[1m]))
 *           comparison: "<="          # <, <=, >, >= (default <=)
 *           threshold: 0.001          # an absolute value, or:
 *           baseline: 1.2             # relative: factor × the query's value measured before the phase
 *           interval: 10s             # default 10s
 *           checks: 3                 # consecutive passes needed (default 3)
 *           onError: fail             # the query failed or returned no sample: fail (default), pass, wait
 *           prometheus: http://…      # overrides spec.prometheus
 *
 * Exactly one of threshold and baseline. A query must return one sample
 * (a scalar, or a vector of exactly one element); anything else is "no
 * data" and handled by onError — fail closed by default, because a gate
 * that cannot see must not say yes.
 *
 * What a gate has seen lives in the phase's status (PhaseStatus.detail,
 * keys "gates" and "gateBaselines"), so a new coordinator continues the
 * count of consecutive passes rather than starting over, and the report
 * shows each gate's last value.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "meshroll/errors.h"
#include "meshroll/time-util.h"

typedef enum GateComparison {
        GATE_CMP_LT,
        GATE_CMP_LE,
        GATE_CMP_GT,
        GATE_CMP_GE,
} GateComparison;

typedef enum GateOnError {
        GATE_ON_ERROR_FAIL,
        GATE_ON_ERROR_PASS,
        GATE_ON_ERROR_WAIT,   /* neither: the check does not count; try again after interval */
} GateOnError;

typedef struct MetricGate {
        char *name;
        char *prometheus;     /* base URL, e.g. http://127.0.0.1:9090 */
        char *query;
        GateComparison comparison;
        double threshold;     /* when !relative */
        bool relative;
        double baseline;      /* when relative: the factor */
        usec_t interval;
        unsigned checks;
        GateOnError on_error;
} MetricGate;

struct MetricGateSet {
        MetricGate *gates;
        size_t n_gates;
};
typedef struct MetricGateSet MetricGateSet;

const char *gate_comparison_to_string(GateComparison c);

/*
 * Reads a `gates` list (borrowed; NULL → *ret NULL). path names the list
 * ("spec.traffic.gates") in errors; default_url is spec.prometheus or
 * NULL (then every gate must name its own). -MR_ECONFIG naming the field,
 * or -ENOMEM.
 */
int metric_gates_from_json(json_object *list, const char *path, const char *default_url, MetricGateSet **ret,
                           MrError *err);
MetricGateSet *metric_gate_set_free(MetricGateSet *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(MetricGateSet *, metric_gate_set_free);
