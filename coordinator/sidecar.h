/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sidecar.h — the sidecar phase: move namespaces' sidecars to a new
 * control-plane revision, namespace batch by namespace batch
 * (docs/rollout.md "Sidecar phase"; shared/reference/istio.md §4, §5, §8.2).
 *
 *   spec:
 *     sidecar:
 *       revision: 1-25-0          # target revision: Deployment istiod-<rev> and its canonical
 *                                 # injector webhook (istio.io/rev=<rev>, no istio.io/tag) must exist
 *       istioNamespace: istio-system   # where istiod and the tag Service live (default)
 *       tag: prod-stable          # optional: move this revision tag to the revision (below)
 *       namespaces:
 *         selector: "team=pay"    # label selector over namespaces
 *         list: [a, b]            # or explicit names, in this order
 *         canary: a               # first batch, alone (must be one of the namespaces)
 *         batchSize: 2            # namespaces per batch after the canary (default 1)
 *       restart:
 *         concurrency: 4          # Deployments restarting at once (default 4)
 *         timeout: 10m            # each Deployment's rollout deadline (default 10m)
 *       soak: 30s                 # after each batch, while the phase's gates are checked (default 30s)
 *       gates: […]                # metric gates (metric-gate.h), read by spec.c
 *
 * With a tag, the tag is moved once, before the first batch, as
 * `istioctl tag set <tag> --revision <rev> --overwrite` does with plain API
 * calls (istio.md §4.2): the MutatingWebhookConfiguration
 * istio-revision-tag-<tag> gets label istio.io/rev=<rev> and each webhook's
 * clientConfig (service name, path, caBundle) from the revision's canonical
 * webhook; the 1.28+ Service istiod-revision-tag-<tag> (when present) gets
 * the label and selector {app: istiod, istio.io/rev: <rev>}; for the tag
 * "default", the ValidatingWebhookConfiguration istiod-default-validator
 * (when present) gets the label and istiod-<rev> as its service. Namespaces
 * labelled istio.io/rev=<tag> then inject from the new revision; the
 * default namespace set is exactly those. Without a tag, each namespace of
 * a batch is relabelled istio.io/rev=<revision> (istio-injection removed,
 * since it takes precedence) when its batch starts.
 *
 * Either way, running pods keep the sidecar they were injected with until
 * recreated: each Deployment of the batch is restarted the way `kubectl
 * rollout restart` does (template annotation kubectl.kubernetes.io/restartedAt),
 * at most `concurrency` at once, and waited for the way `kubectl rollout
 * status` does; then its pods must carry the new revision (annotation
 * istio.io/rev, or sidecar.istio.io/status's "revision").
 *
 * A restart that misses its deadline, a pod on the wrong revision, or a
 * failed gate rolls the whole phase back: the tag (or each namespace's
 * labels) goes back to what was recorded, and every Deployment restarted
 * so far is restarted again. An operator can roll back one namespace
 * (`meshroll rollback --phase sidecar --namespace NS`): it is relabelled
 * back (with a tag: pinned to the old revision, istio.io/rev=<old>) and
 * restarted. Everything a successor needs lives in PhaseStatus.detail.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "meshroll/errors.h"
#include "meshroll/kube.h"
#include "meshroll/time-util.h"
#include "phase.h"

#define SIDECAR_RESTARTED_AT "kubectl.kubernetes.io/restartedAt"

typedef struct SidecarSpec {
        char *revision;            /* target revision */
        char *istio_namespace;     /* "istio-system" */
        char *tag;                 /* or NULL: relabel namespaces */
        char *selector;            /* namespaces.selector, or NULL */
        char **list;               /* namespaces.list (NULL-terminated), or NULL */
        char *canary;              /* or NULL */
        unsigned batch_size;       /* ≥ 1 */
        unsigned concurrency;      /* ≥ 1 */
        usec_t restart_timeout;
        usec_t soak;
} SidecarSpec;

extern const PhaseOps sidecar_phase_ops;

/*
 * Reads spec.sidecar (borrowed) into *ret (owned; sidecar_spec_free).
 * -MR_ECONFIG with err naming the field ("spec.sidecar.namespaces.batchSize:
 * …"), or -ENOMEM.
 */
int sidecar_spec_parse(json_object *section, const char *path, SidecarSpec **ret, MrError *err);
SidecarSpec *sidecar_spec_free(SidecarSpec *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(SidecarSpec *, sidecar_spec_free);

/*
 * The namespaces the phase will restart, in order: namespaces.list as
 * written; else the namespaces matching namespaces.selector; else (with a
 * tag) those labelled istio.io/rev=<tag> (for the tag "default", also those
 * labelled istio-injection=enabled); sorted by name except for the
 * canary, which comes first. *ret is a NULL-terminated list (owned,
 * strv_free). -MR_ECONFIG when the canary is not among them or the set is
 * empty, API errors with err set.
 */
int sidecar_spec_namespaces(KubeClient *c, const SidecarSpec *s, char ***ret, MrError *err);

/*
 * Pure helpers, exported for tests and other modules.
 */

/* The revision a pod's sidecar was injected by: NULL without the injector's
 * annotation sidecar.istio.io/status (not injected); else annotation
 * istio.io/rev, else the status's "revision". Borrowed from pod (or a
 * thread-local buffer valid until the next call). */
const char *sidecar_pod_revision(json_object *pod);

/*
 * Whether a Deployment's rollout is complete, as `kubectl rollout status`
 * decides it: observedGeneration ≥ generation, updatedReplicas =
 * replicas, no old replicas left (status.replicas = updatedReplicas) and
 * availableReplicas ≥ replicas (availability already includes
 * minReadySeconds). 1 complete, 0 not yet with *ret_why (static string)
 * saying what is missing.
 */
int sidecar_deployment_rolled_out(json_object *deployment, const char **ret_why);

/*
 * Splits n namespaces (already in order, canary first when canary is set)
 * into batches: the canary alone, then batch_size at a time. Writes each
 * batch's first index into starts (capacity n + 1) and returns the number
 * of batches.
 */
size_t sidecar_batches(size_t n, bool canary, unsigned batch_size, size_t *starts);
