/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gateway.h — the gateway phase: a blue/green switch of the Service in
 * front of a gateway (docs/rollout.md "Gateway phase"; istio.md §7.2, §7.3).
 *
 *   spec:
 *     gateway:
 *       service: {namespace: istio-ingress, name: istio-ingressgateway}
 *       selectorKey: istio.io/rev  # the Service selector key switched (default istio.io/rev)
 *       from: 1-24-0               # its value now (the old gateway)
 *       to: 1-25-0                 # its value after the switch (the new gateway)
 *       deployment: ingress-green  # optional: the new gateway Deployment, in the Service's namespace
 *       timeout: 5m                # for the new gateway to be Ready, the endpoints to hold new pods only
 *       soak: 1m                   # after the switch, while the gates are checked
 *       gates: […]
 *
 * Two gateway Deployments (one per revision, each installed by the
 * operator, e.g. the gateway chart with service.type=None) sit behind one
 * user-facing Service whose selector has selectorKey=from. The phase checks
 * the new Deployment (by default: the one in the Service's namespace whose
 * pod template labels carry selectorKey=to and the rest of the Service's
 * selector) is rolled out, Ready with its expected replicas, and that its
 * pods would match the switched selector; then it switches the selector
 * (a read-modify-replace with the Service's resourceVersion, preserving
 * every other field), waits until the Service's Endpoints hold only new
 * pods, and soaks with the gates. The old gateway keeps running (`meshroll
 * cleanup` scales it down later). Rollback switches the selector back to
 * `from` and waits for the endpoints to hold old pods only.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "meshroll/errors.h"
#include "meshroll/kube.h"
#include "meshroll/time-util.h"
#include "phase.h"

typedef struct GatewaySpec {
        char *service_namespace;
        char *service_name;
        char *selector_key;   /* "istio.io/rev" */
        char *from, *to;
        char *deployment;     /* or NULL: found by its template labels */
        usec_t timeout;
        usec_t soak;
} GatewaySpec;

extern const PhaseOps gateway_phase_ops;

/* Reads spec.gateway (borrowed). -MR_ECONFIG naming the field, or -ENOMEM. */
int gateway_spec_parse(json_object *section, const char *path, GatewaySpec **ret, MrError *err);
GatewaySpec *gateway_spec_free(GatewaySpec *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(GatewaySpec *, gateway_spec_free);

/*
 * Whether labels (borrowed; a pod's or a pod template's labels) match the
 * Service selector sel (borrowed) with sel[key] replaced by value. A NULL
 * or empty selector matches nothing (a Service without a selector has
 * hand-made endpoints).
 */
bool gateway_selector_matches(json_object *sel, const char *key, const char *value, json_object *labels);

/*
 * Finds the gateway Deployment serving value: spec.deployment when named,
 * else the one Deployment in the Service's namespace whose template labels
 * match the Service's selector with selectorKey=value. *ret owned.
 * -ENOENT / -MR_ECONFIG (none, or several) with err naming what was wrong.
 */
int gateway_find_deployment(KubeClient *c, const GatewaySpec *s, json_object *service, const char *value,
                            bool named, json_object **ret, MrError *err);
