/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Preflight checks, table-driven. Each case runs one check (every other is
 * skipped) over a fixture in tests/data/preflight/ — a YAML mapping with
 * the lists preflight_run would have fetched (namespaces, deployments,
 * pdbs, webhooks, services, nodes, leases, ztunnel, ztunnel_pods) — under a
 * scope (phases, restarted namespaces, targets), and compares the findings
 * in report order, written "<severity> <Kind>/<namespace>/<name>[ transient]"
 * and joined with "; ". "" means the check must find nothing. The case
 * tables are kept out of clang-format: one case per entry reads better.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "meshroll/fileio.h"
#include "meshroll/json-util.h"
#include "meshroll/yaml-json.h"
#include "preflight.h"
#include "spec.h"

/* 2026-11-24T06:00:10Z, the "now" of the agents fixture. */
#define NOW ((usec_t)1795500010 * USEC_PER_SEC)

typedef struct Case {
        const char *check, *fixture;
        bool ztunnel_phase, optional, gate_blocks, restart_mesh;
        const char *restart;       /* comma-separated namespaces to be restarted, or NULL */
        const char *targets;       /* comma-separated target revisions, or NULL */
        const char *node_selector;
        const char *expect;
} Case;

static json_object *fixture(const char *name)
{
        char path[512];
        _cleanup_free_ char *data = NULL;
        json_object *o = NULL;
        MrError err = {};
        size_t size;

        snprintf(path, sizeof(path), "%s/preflight/%s", getenv("MESHROLL_TEST_DATA"), name);
        assert_int_equal(mr_read_file(path, 1 << 20, &data, &size), 0);
        if (mr_yaml_parse(data, size, &o, &err) < 0)
                fail_msg("%s: %s", path, err.message);
        return o ? o : json_object_new_object();
}

/* "a,b" → a NULL-terminated list (owned); NULL stays NULL. */
static char **split(const char *s)
{
        char **l = calloc(16, sizeof(char *));
        size_t n = 0;
        assert_non_null(l);
        if (!s)
                return strv_free(l);
        for (const char *p = s; *p && n < 15;) {
                size_t k = strcspn(p, ",");
                l[n++] = strndup(p, k);
                p += k + (p[k] == ',');
        }
        return l;
}

static char *render(const PreflightReport *r)
{
        char *s = strdup("");
        for (size_t i = 0; i < r->n_findings; i++) {
                const PreflightFinding *f = &r->findings[i];
                char *t = NULL;
                assert_true(asprintf(&t, "%s%s%s %s/%s%s%s%s", s, i ? "; " : "", preflight_severity_to_string(f->severity),
                                     f->kind, f->namespace ? f->namespace : "", f->namespace ? "/" : "", f->name,
                                     f->transient ? " transient" : "") > 0);
                free(s);
                s = t;
                /* Every finding says why and how to fix it, and names what is wrong. */
                assert_true(strlen(f->message) > 10);
                assert_true(strlen(f->why) > 20);
                assert_true(strlen(f->fix) > 10);
        }
        return s;
}

/* Runs c.check alone; returns the report (owned). */
static PreflightReport *evaluate(const Case *c, json_object *fx)
{
        _cleanup_strv_free_ char **restart = split(c->restart), **targets = split(c->targets);
        char *skip[32] = {};
        size_t n = 0;
        PreflightInput in = {
                .namespaces = mr_json_get(fx, "namespaces", NULL),
                .deployments = mr_json_get(fx, "deployments", NULL),
                .pdbs = mr_json_get(fx, "pdbs", NULL),
                .webhooks = mr_json_get(fx, "webhooks", NULL),
                .services = mr_json_get(fx, "services", NULL),
                .nodes = mr_json_get(fx, "nodes", NULL),
                .leases = mr_json_get(fx, "leases", NULL),
                .ztunnel = mr_json_get(fx, "ztunnel", NULL),
                .ztunnel_pods = mr_json_get(fx, "ztunnel_pods", NULL),
                .istio_namespace = "istio-system",
                .ztunnel_ref = "istio-system/ztunnel",
                .agent_namespace = "meshroll",
                .ztunnel_phase = c->ztunnel_phase,
                .ztunnel_optional = c->optional,
                .gate_blocks = c->gate_blocks,
                .node_selector = c->node_selector,
                .restart_namespaces = restart,
                .restart_mesh = c->restart_mesh,
                .target_revisions = targets,
                .now = NOW,
        };
        PreflightReport *r = NULL;
        MrError err = {};

        for (const char *const *name = preflight_check_names(); *name; name++)
                if (!streq(*name, c->check))
                        skip[n++] = (char *)*name;
        assert_int_equal(n, 12);
        assert_int_equal(preflight_evaluate(&in, skip, &r, &err), 0);
        assert_int_equal(r->n_checks, 1);
        return r;
}

static void run_cases(const Case *cases, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                _cleanup_(json_object_putp) json_object *fx = fixture(cases[i].fixture);
                _cleanup_(preflight_report_freep) PreflightReport *r = evaluate(&cases[i], fx);
                _cleanup_free_ char *got = render(r);
                if (!streq(got, cases[i].expect))
                        fail_msg("case %zu (%s on %s):\n  expected \"%s\"\n  got      \"%s\"", i, cases[i].check,
                                 cases[i].fixture, cases[i].expect, got);
        }
}

/* clang-format off */

static void test_namespaces(void **state)
{
        static const Case cases[] = {
                { "injection-labels", "injection-labels.yaml", .expect =
                  "error Namespace/both; error Namespace/ambient-rev; error Namespace/ambient-injection" },
                { "namespace-revision", "namespace-revision.yaml", .expect =
                  "error Namespace/on-nothing; error Namespace/needs-default" },
                { "namespace-revision", "namespace-revision-default.yaml", .expect = "" },
                { "namespace-revision", "injection-labels.yaml", .expect =  /* no Istio at all */
                  "error Namespace/good-rev; error Namespace/good-injection; error Namespace/both; "
                  "error Namespace/ambient-rev; error Namespace/ambient-injection; error Namespace/ambient-none-rev" },
                { "tag-revision", "tag-revision.yaml", .expect =
                  "error MutatingWebhookConfiguration/istio-revision-tag-canary; "
                  "error MutatingWebhookConfiguration/istio-revision-tag-norev; "
                  "error Service/istio-system/istiod-revision-tag-old" },
                { "tag-revision", "namespace-revision.yaml", .expect = "" },
        };
        run_cases(cases, ELEMENTSOF(cases));
}

static void test_webhooks(void **state)
{
        static const Case cases[] = {
                { "webhook-overlap", "webhook-overlap.yaml", .expect =
                  "error MutatingWebhookConfiguration/istio-sidecar-injector; "
                  "error MutatingWebhookConfiguration/istio-sidecar-injector" },
                { "webhook-overlap", "webhook-healthy.yaml", .expect = "" },
                { "webhook-overlap", "empty.yaml", .expect = "" },
        };
        run_cases(cases, ELEMENTSOF(cases));
}

static void test_control_plane(void **state)
{
        static const Case cases[] = {
                { "target-revision", "target-revision.yaml", .ztunnel_phase = true, .targets = "1-25-0,1-26-0", .expect =
                  "error Deployment/istio-system/istiod-1-25-0 transient; error Namespace/istio-system" },
                { "target-revision", "target-revision.yaml", .targets = "next", .expect =  /* a tag, resolved */
                  "error Deployment/istio-system/istiod-1-25-0 transient" },
                { "target-revision", "target-revision.yaml", .ztunnel_phase = true, .expect = "" },
                { "target-revision", "target-revision.yaml", .expect = "" },
                { "target-revision", "target-revision-xds.yaml", .ztunnel_phase = true, .expect =
                  "error Deployment/istio-system/istiod-1-25-0 transient" },
                { "target-revision", "target-revision-none.yaml", .ztunnel_phase = true, .expect =
                  "info DaemonSet/istio-system/ztunnel" },
                { "version-skew", "version-skew.yaml", .ztunnel_phase = true, .targets = "1-25-0", .expect =
                  "error DaemonSet/istio-system/ztunnel; error DaemonSet/istio-system/ztunnel; "
                  "warning Deployment/istio-system/istiod-1-22-0" },
                { "version-skew", "version-skew.yaml", .targets = "1-24-0", .expect =
                  "warning Deployment/istio-system/istiod-1-22-0" },
                { "version-skew", "version-order.yaml", .ztunnel_phase = true, .expect =
                  "warning DaemonSet/istio-system/ztunnel" },
                { "version-skew", "version-behind.yaml", .ztunnel_phase = true, .expect =
                  "error DaemonSet/istio-system/ztunnel" },
                { "version-skew", "version-behind.yaml", .expect = "" },
        };
        run_cases(cases, ELEMENTSOF(cases));
}

static void test_ztunnel_and_agents(void **state)
{
        static const Case cases[] = {
                { "ztunnel-strategy", "ztunnel-rolling.yaml", .ztunnel_phase = true, .expect =
                  "error DaemonSet/istio-system/ztunnel" },
                { "ztunnel-strategy", "ztunnel-default.yaml", .ztunnel_phase = true, .expect =
                  "error DaemonSet/istio-system/ztunnel" },
                { "ztunnel-strategy", "ztunnel-ondelete.yaml", .ztunnel_phase = true, .expect = "" },
                { "ztunnel-strategy", "ztunnel-rolling.yaml", .expect = "" },
                { "ztunnel-strategy", "empty.yaml", .ztunnel_phase = true, .expect =
                  "error DaemonSet/istio-system/ztunnel" },
                { "ztunnel-strategy", "empty.yaml", .ztunnel_phase = true, .optional = true, .expect =
                  "info DaemonSet/istio-system/ztunnel" },
                { "agents", "agents.yaml", .ztunnel_phase = true, .gate_blocks = true, .node_selector = "pool=a", .expect =
                  "error Node/n3 transient; error Node/n2 transient" },
                { "agents", "agents.yaml", .ztunnel_phase = true, .node_selector = "pool=a", .expect =
                  "warning Node/n3 transient; warning Node/n2 transient" },
                { "agents", "agents.yaml", .ztunnel_phase = true, .gate_blocks = true, .expect =
                  "error Node/n3 transient; error Node/n2 transient" },
                { "agents", "agents.yaml", .gate_blocks = true, .expect = "" },
                { "agents", "empty.yaml", .ztunnel_phase = true, .gate_blocks = true, .expect = "" },
        };
        run_cases(cases, ELEMENTSOF(cases));
}

static void test_pdbs(void **state)
{
        static const Case cases[] = {
                { "pdb-impossible", "pdbs.yaml", .ztunnel_phase = true, .expect =
                  "error PodDisruptionBudget/shop/a-all; error PodDisruptionBudget/shop/b-none; "
                  "error PodDisruptionBudget/shop/c-90; error PodDisruptionBudget/other/g-pct; error Deployment/shop/d" },
                { "pdb-impossible", "pdbs.yaml", .expect = "" },
                { "pdb-blocking", "pdbs.yaml", .ztunnel_phase = true, .expect =
                  "error PodDisruptionBudget/shop/f-busy transient" },
                { "pdb-blocking", "pdbs.yaml", .expect = "" },
        };
        run_cases(cases, ELEMENTSOF(cases));
}

static void test_deployments(void **state)
{
        static const Case cases[] = {
                { "single-replica", "deployments.yaml", .ztunnel_phase = true, .restart = "shop", .expect =
                  "error Deployment/shop/one-nosurge; error Deployment/shop/one-noprobe; warning Deployment/shop/one; "
                  "warning Deployment/legacy/api; warning Deployment/web/single" },
                { "single-replica", "deployments.yaml", .restart_mesh = true, .expect =
                  "error Deployment/legacy/api" },
                { "single-replica", "deployments.yaml", .expect = "" },
                { "rolling-update", "deployments.yaml", .ztunnel_phase = true, .restart = "shop", .expect =
                  "error Deployment/shop/three-recreate; error Deployment/shop/three-zero; error Deployment/shop/three-pct" },
                { "rolling-update", "deployments.yaml", .ztunnel_phase = true, .restart_mesh = true, .expect =
                  "error Deployment/legacy/api" },
                { "readiness-probe", "deployments.yaml", .ztunnel_phase = true, .restart = "shop", .expect =
                  "error Deployment/shop/one-noprobe; error Deployment/shop/three-proxy-probe; "
                  "warning Deployment/legacy/api; warning Deployment/web/single" },
                { "readiness-probe", "deployments.yaml", .restart = "web", .expect =
                  "error Deployment/web/single" },
                { "readiness-probe", "deployments.yaml", .expect = "" },
        };
        run_cases(cases, ELEMENTSOF(cases));
}

/* clang-format on */

/* The messages carry the values that are wrong. */
static void test_messages(void **state)
{
        static const struct {
                Case c;
                const char *needle;
        } cases[] = {
                { { "injection-labels", "injection-labels.yaml" }, "istio-injection=enabled and istio.io/rev=1-24-0" },
                { { "namespace-revision", "namespace-revision.yaml" }, "istio.io/rev=1-99-0 names no revision" },
                { { "tag-revision", "tag-revision.yaml" }, "points at revision \"1-26-0\"" },
                { { "webhook-overlap", "webhook-overlap.yaml" }, "calls Service istio-system/istiod, which does not exist" },
                { { "target-revision", "target-revision.yaml", .targets = "1-25-0" }, "1 of 2 replicas ready" },
                { { "version-skew", "version-skew.yaml", .ztunnel_phase = true }, "ztunnel pods run 1.23.0" },
                { { "ztunnel-strategy", "ztunnel-default.yaml", .ztunnel_phase = true }, "RollingUpdate (the default)" },
                { { "agents", "agents.yaml", .ztunnel_phase = true, .node_selector = "pool=a" }, "1 of 4 ztunnel nodes" },
                { { "pdb-impossible", "pdbs.yaml", .ztunnel_phase = true }, "minAvailable 90% needs 3 of its 3 pods" },
                { { "pdb-blocking", "pdbs.yaml", .ztunnel_phase = true }, "2 healthy, 3 required" },
                { { "rolling-update", "deployments.yaml", .restart = "shop" }, "both resolve to 0 for 3 replicas" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(json_object_putp) json_object *fx = fixture(cases[i].c.fixture);
                _cleanup_(preflight_report_freep) PreflightReport *r = evaluate(&cases[i].c, fx);
                bool found = false;
                for (size_t k = 0; k < r->n_findings; k++)
                        found = found || strstr(r->findings[k].message, cases[i].needle);
                if (!found)
                        fail_msg("case %zu (%s): no finding says \"%s\"; first: %s", i, cases[i].c.check,
                                 cases[i].needle, r->n_findings ? r->findings[0].message : "(none)");
        }
}

/* All checks at once: errors first, counted; JSON and the status summary. */
static void test_report(void **state)
{
        _cleanup_(json_object_putp) json_object *fx = fixture("deployments.yaml");
        _cleanup_strv_free_ char **restart = split("shop");
        PreflightInput in = { .namespaces = mr_json_get(fx, "namespaces", NULL),
                              .deployments = mr_json_get(fx, "deployments", NULL),
                              .istio_namespace = "istio-system",
                              .ztunnel_ref = "istio-system/ztunnel",
                              .agent_namespace = "meshroll",
                              .restart_namespaces = restart,
                              .now = NOW };
        _cleanup_(preflight_report_freep) PreflightReport *r = NULL;
        MrError err = {};

        assert_int_equal(preflight_evaluate(&in, NULL, &r, &err), 0);
        assert_int_equal(r->n_checks, 13);
        /* namespace-revision (legacy → prod-stable, no Istio here) and the Deployment checks. */
        assert_true(r->count[PREFLIGHT_ERROR] >= 5);
        for (size_t i = 1; i < r->n_findings; i++)
                assert_true(r->findings[i - 1].severity >= r->findings[i].severity);

        _cleanup_(json_object_putp) json_object *j = preflight_report_to_json(r);
        assert_non_null(j);
        assert_string_equal(mr_json_get_str(j, "kind", NULL), "PreflightReport");
        int64_t errors = 0;
        assert_int_equal(mr_json_get_int(&errors, j, "summary", "errors", NULL), 0);
        assert_int_equal(errors, r->count[PREFLIGHT_ERROR]);
        json_object *first = json_object_array_get_idx(mr_json_get(j, "findings", NULL), 0);
        assert_string_equal(mr_json_get_str(first, "severity", NULL), "error");
        assert_string_equal(mr_json_get_str(first, "object", "kind", NULL), r->findings[0].kind);
        assert_non_null(mr_json_get_str(first, "fix", NULL));

        _cleanup_free_ char *summary = preflight_report_summary(r, 2);
        assert_non_null(summary);
        assert_non_null(strstr(summary, "and "));
        assert_non_null(strstr(summary, r->findings[0].message));
}

static void test_bad_skip(void **state)
{
        char *skip[] = { (char *)"agents", (char *)"agnets", NULL };
        PreflightInput in = { .istio_namespace = "istio-system", .ztunnel_ref = "istio-system/ztunnel" };
        PreflightReport *r = NULL;
        MrError err = {};

        assert_int_equal(preflight_evaluate(&in, skip, &r, &err), -EINVAL);
        assert_null(r);
        assert_non_null(strstr(err.message, "\"agnets\""));
        skip[1] = NULL;
        assert_int_equal(preflight_evaluate(&in, skip, &r, &err), 0);
        assert_int_equal(r->n_checks, 12);
        assert_int_equal(r->n_findings, 0);
        preflight_report_free(r);
}

/* spec.preflight.skip: known checks only, a list of strings, nothing else in spec.preflight. */
static void test_spec_skip(void **state)
{
        static const struct {
                const char *preflight, *error;
        } cases[] = {
                { "{skip: [agents, pdb-blocking]}", NULL },
                { "{skip: [agents, nope]}", "spec.preflight.skip: unknown check \"nope\"" },
                { "{skip: agents}", "spec.preflight.skip" },
                { "{only: [agents]}", "spec.preflight" },
                { "[agents]", "spec.preflight" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char yaml[512];
                _cleanup_(json_object_putp) json_object *doc = NULL;
                _cleanup_(rollout_spec_freep) RolloutSpec *s = NULL;
                MrError err = {};
                snprintf(yaml, sizeof(yaml),
                         "apiVersion: meshroll.io/v1alpha1\nkind: Rollout\nmetadata: {name: r}\n"
                         "spec:\n  groups: {size: 1}\n  preflight: %s\n",
                         cases[i].preflight);
                assert_int_equal(mr_yaml_parse(yaml, strlen(yaml), &doc, NULL), 0);
                int r = rollout_spec_from_json(doc, &s, &err);
                if (!cases[i].error) {
                        assert_int_equal(r, 0);
                        assert_string_equal(s->preflight_skip[0], "agents");
                        assert_string_equal(s->preflight_skip[1], "pdb-blocking");
                        assert_null(s->preflight_skip[2]);
                } else {
                        assert_int_equal(r, -MR_ECONFIG);
                        if (!strstr(err.message, cases[i].error))
                                fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err.message, cases[i].error);
                }
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_namespaces),   cmocka_unit_test(test_webhooks),
                cmocka_unit_test(test_control_plane), cmocka_unit_test(test_ztunnel_and_agents),
                cmocka_unit_test(test_pdbs),          cmocka_unit_test(test_deployments),
                cmocka_unit_test(test_messages),      cmocka_unit_test(test_report),
                cmocka_unit_test(test_bad_skip),      cmocka_unit_test(test_spec_skip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
