/* SPDX-License-Identifier: Apache-2.0 */
/*
 * preflight.h — `meshroll preflight`: what would make an upgrade fail or
 * drop traffic, found from the Kubernetes API alone, before anything moves.
 *
 * Design: list once, check many. preflight_run() lists what the checks
 * read (namespaces, Deployments, PDBs, MutatingWebhookConfigurations, the
 * istiod Services and Deployments, the ztunnel DaemonSet and its pods, the
 * nodes and the agents' Leases) into a PreflightInput, derives the scope
 * from the Rollout (which namespaces will be restarted, which nodes
 * drained, which revision is the target), then hands the input to
 * preflight_evaluate(). Every check is a pure function of that input, so
 * the unit tests feed JSON fixtures to each one, table-driven, without a
 * cluster. Istio's own analysers (istioctl analyze IST0123, IST0139;
 * shared/reference/istio.md §4–§6) are re-implemented where one applies.
 *
 * A finding has a severity, the check that made it, the object, what is
 * wrong (message), why it matters and the fix. Severities:
 *   error    the rollout would fail, block or drop traffic: `meshroll
 *            preflight` exits 1, and a Rollout pauses before its first
 *            step (reason PreflightFailed);
 *   warning  risky but the rollout can go on: an Event on the Rollout;
 *   info     context (a check that could not apply, what was skipped).
 * docs/preflight.md lists every check with its severity rules.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "meshroll/errors.h"
#include "meshroll/kube.h"
#include "meshroll/time-util.h"
#include "phase.h"

typedef struct RolloutSpec RolloutSpec; /* spec.h */

typedef enum PreflightSeverity {
        PREFLIGHT_INFO,
        PREFLIGHT_WARNING,
        PREFLIGHT_ERROR,
        _PREFLIGHT_SEVERITY_MAX,
} PreflightSeverity;

/* "info", "warning", "error" (static). */
const char *preflight_severity_to_string(PreflightSeverity s);

/* Strings are owned by the report. */
typedef struct PreflightFinding {
        PreflightSeverity severity;
        const char *check;  /* static: the check's name ("injection-labels") */
        char *kind;         /* the object: "Namespace", "Deployment", … */
        char *namespace;    /* NULL for cluster-scoped objects */
        char *name;
        char *message;      /* what is wrong, naming the object's values */
        char *why;          /* why it matters to the upgrade */
        char *fix;          /* what to do (a command where one exists) */
        bool transient;     /* may clear by itself (pods still starting): a Rollout waits, not pauses */
} PreflightFinding;

typedef struct PreflightReport {
        PreflightFinding *findings; /* errors first, then warnings, then info; by check, object within */
        size_t n_findings;
        unsigned count[_PREFLIGHT_SEVERITY_MAX];
        unsigned n_checks;          /* checks that ran */
} PreflightReport;

PreflightReport *preflight_report_free(PreflightReport *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(PreflightReport *, preflight_report_free);

/* Every check's name, NULL-terminated (static), in the order they run. */
const char *const *preflight_check_names(void);

/*
 * What the checks read. Lists are JSON arrays of objects as the API returns
 * them (borrowed; NULL is an empty list). Strings are borrowed.
 */
typedef struct PreflightInput {
        json_object *namespaces, *deployments, *pdbs, *webhooks, *services, *nodes, *leases;
        json_object *ztunnel;      /* the target DaemonSet, or NULL when it does not exist */
        json_object *ztunnel_pods; /* the pods it controls */

        const char *istio_namespace;  /* "istio-system" */
        const char *ztunnel_ref;      /* "istio-system/ztunnel", for messages */
        const char *agent_namespace;  /* where meshroll-agent-<node> Leases live */

        /* Scope, from the Rollout (or the defaults of a cluster-wide run). */
        bool ztunnel_phase;           /* nodes will be drained and ztunnel replaced */
        bool ztunnel_optional;        /* no DaemonSet is worth an info, not an error (a run without a Rollout) */
        bool gate_blocks;             /* the connection gate pauses or rolls back on timeout (not proceed) */
        const char *node_selector;    /* nodes taking part, or NULL for every node running ztunnel */
        char **restart_namespaces;    /* NULL-terminated: namespaces whose workloads will be restarted */
        bool restart_mesh;            /* no list: every namespace with sidecar injection may be restarted */
        char **target_revisions;      /* NULL-terminated: control-plane revisions the rollout moves to (more
                                       * are derived from the ztunnel template) */
        usec_t now;                   /* wall clock, for Lease staleness */
} PreflightInput;

/*
 * Runs every check not named in skip (NULL-terminated, may be NULL) over in.
 * *ret is owned and untouched on failure. Errors: -EINVAL with err naming
 * an unknown check in skip, -ENOMEM.
 */
int preflight_evaluate(const PreflightInput *in, char *const *skip, PreflightReport **ret, MrError *err);

typedef struct PreflightOptions {
        char *const *skip;            /* checks not to run, NULL-terminated, may be NULL */
        const char *istio_namespace;  /* NULL → the ztunnel target's namespace, else istio-system */
        const char *agent_namespace;  /* NULL → the spec's, else meshroll */
        const MrClock *clock;         /* NULL → system clock */
} PreflightOptions;

/*
 * Lists the cluster (about ten LIST requests, one of them per namespace
 * webhooks point at) and runs preflight_evaluate(). spec NULL: cluster-wide
 * checks with defaults (the ztunnel DaemonSet istio-system/ztunnel, every
 * sidecar namespace as one that may be restarted, agents in meshroll, the
 * gate pausing on timeout). o may be NULL. *ret is owned and untouched on
 * failure. Errors: API errors with err naming the request, -EINVAL (unknown
 * check in skip), -ENOMEM.
 */
int preflight_run(KubeClient *c, const RolloutSpec *spec, const PreflightOptions *o, PreflightReport **ret,
                  MrError *err);

/*
 * The report as JSON (owned): {"apiVersion":"meshroll.io/v1alpha1",
 * "kind":"PreflightReport","summary":{"errors","warnings","info","checks"},
 * "findings":[{"severity","check","object":{"kind","namespace","name"},
 * "message","why","fix"}]}. NULL on ENOMEM.
 */
json_object *preflight_report_to_json(const PreflightReport *r);

/*
 * One line naming the first n errors ("Namespace/shop: …; DaemonSet/…"),
 * for a Rollout's status message. Owned; NULL on ENOMEM.
 */
char *preflight_report_summary(const PreflightReport *r, unsigned n);

/*
 * The engine's hook, called when a Rollout starts (before its first phase):
 * runs preflight_run() for ctx->spec.
 *   - When every error is transient and waited (how long they have been
 *     awaited already) is below spec.preflight.waitTimeout: -EAGAIN, with
 *     ctx->err saying what is awaited; nothing is written (the engine shows
 *     the wait in the Rollout's status and calls again later, so the
 *     Rollout starts once, say, the new istiod is Ready).
 *   - Otherwise warnings become Warning Events on the Rollout
 *     (PreflightWarning; at most 20, then one counting the rest) and errors
 *     PreflightFailed Events; with errors the Rollout is paused:
 *     ROLLOUT_PAUSED, reason PreflightFailed, the message naming the first
 *     errors (and the wait, when transient ones outlasted it); returns 1.
 * Returns 0 when nothing stands in the way. API errors as preflight_run.
 */
int preflight_before_rollout(PhaseCtx *ctx, usec_t waited);
