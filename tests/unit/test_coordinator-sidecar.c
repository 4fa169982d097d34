/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sidecar phase's pure parts: spec.sidecar (defaults, and every error
 * naming its field), batches, a pod's injected revision, and the `kubectl
 * rollout status` decision on a Deployment. The phase's steps against a
 * cluster are tested in tests/integration/test_phases-sim.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "meshroll/json-util.h"
#include "meshroll/yaml-json.h"
#include "sidecar.h"
#include "spec.h"

#define HEAD "apiVersion: meshroll.io/v1alpha1\nkind: Rollout\nmetadata: {name: r1}\nspec:\n"

static int parse_yaml(const char *yaml, RolloutSpec **ret, MrError *err)
{
        _cleanup_(json_object_putp) json_object *doc = NULL;
        int r = mr_yaml_parse(yaml, strlen(yaml), &doc, err);
        if (r < 0)
                return r;
        return rollout_spec_from_json(doc, ret, err);
}

static json_object *json(const char *text)
{
        json_object *o = NULL;
        assert_int_equal(mr_json_parse(text, strlen(text), 1 << 16, &o), 0);
        return o;
}

static void test_defaults(void **state)
{
        _cleanup_(rollout_spec_freep) RolloutSpec *s = NULL;
        MrError err = {};

        assert_int_equal(parse_yaml(HEAD "  sidecar: {revision: 1-25-0, tag: prod-stable}\n", &s, &err), 0);
        assert_int_equal(s->n_phases, 1);
        assert_int_equal(s->phases[0], PHASE_SIDECAR);
        const SidecarSpec *sc = s->phase_spec[PHASE_SIDECAR];
        assert_non_null(sc);
        assert_string_equal(sc->revision, "1-25-0");
        assert_string_equal(sc->tag, "prod-stable");
        assert_string_equal(sc->istio_namespace, "istio-system");
        assert_null(sc->selector);
        assert_null(sc->list);
        assert_null(sc->canary);
        assert_int_equal(sc->batch_size, 1);
        assert_int_equal(sc->concurrency, 4);
        assert_int_equal(sc->restart_timeout, 10 * USEC_PER_MINUTE);
        assert_int_equal(sc->soak, 30 * USEC_PER_SEC);
}

static void test_full(void **state)
{
        _cleanup_(rollout_spec_freep) RolloutSpec *s = NULL;
        MrError err = {};

        assert_int_equal(parse_yaml(HEAD "  sidecar:\n"
                                         "    revision: 1-25-0\n"
                                         "    istioNamespace: istio-cp\n"
                                         "    namespaces: {list: [a, b, c], canary: b, batchSize: 2}\n"
                                         "    restart: {concurrency: 8, timeout: 90s}\n"
                                         "    soak: 2m\n"
                                         "    gates: [{name: e, query: up, threshold: 1, prometheus: 'http://p:9090'}]\n",
                                    &s, &err),
                         0);
        const SidecarSpec *sc = s->phase_spec[PHASE_SIDECAR];
        assert_null(sc->tag);
        assert_string_equal(sc->istio_namespace, "istio-cp");
        assert_string_equal(sc->list[0], "a");
        assert_string_equal(sc->list[2], "c");
        assert_null(sc->list[3]);
        assert_string_equal(sc->canary, "b");
        assert_int_equal(sc->batch_size, 2);
        assert_int_equal(sc->concurrency, 8);
        assert_int_equal(sc->restart_timeout, 90 * USEC_PER_SEC);
        assert_int_equal(sc->soak, 2 * USEC_PER_MINUTE);
        assert_non_null(s->gates[PHASE_SIDECAR]); /* read by spec.c, not by the module */

        char *d = NULL;
        assert_int_equal(sidecar_phase_ops.describe(sc, &d), 0);
        assert_non_null(strstr(d, "istio.io/rev=1-25-0"));
        assert_non_null(strstr(d, "canary b first"));
        free(d);
}

static void test_errors_name_the_field(void **state)
{
        static const struct {
                const char *section;
                const char *message;
        } cases[] = {
                { "{tag: t}", "spec.sidecar.revision: required" },
                { "{revision: 1-25-0}", "spec.sidecar.namespaces: expected a selector or a list" },
                { "{revision: 1.25.0, tag: t}", "spec.sidecar.revision: expected a DNS label" },
                { "{revision: 1-25-0, tag: Prod}", "spec.sidecar.tag: expected a DNS label" },
                { "{revision: 1-25-0, tag: 1-25-0}", "spec.sidecar.tag: \"1-25-0\" is the revision's own name" },
                { "{revision: 1-25-0, tag: t, revison: x}", "spec.sidecar.revison: unknown field" },
                { "{revision: 1-25-0, tag: t, namespaces: [a]}", "spec.sidecar.namespaces: expected a mapping" },
                { "{revision: 1-25-0, namespaces: {list: [a], selector: 'x=y'}}",
                  "spec.sidecar.namespaces: give either selector or list, not both" },
                { "{revision: 1-25-0, namespaces: {selector: 'a in ('}}", "spec.sidecar.namespaces" },
                { "{revision: 1-25-0, namespaces: {list: [a, b], canary: c}}",
                  "spec.sidecar.namespaces.canary: \"c\" is not in spec.sidecar.namespaces.list" },
                { "{revision: 1-25-0, tag: t, namespaces: {batchSize: 0}}", "spec.sidecar.namespaces.batchSize" },
                { "{revision: 1-25-0, tag: t, namespaces: {size: 2}}", "spec.sidecar.namespaces.size: unknown field" },
                { "{revision: 1-25-0, tag: t, restart: {concurrency: 0}}", "spec.sidecar.restart.concurrency" },
                { "{revision: 1-25-0, tag: t, restart: {timeout: 0s}}", "spec.sidecar.restart.timeout" },
                { "{revision: 1-25-0, tag: t, restart: {timeout: soon}}", "spec.sidecar.restart.timeout" },
                { "{revision: 1-25-0, tag: t, soak: -1s}", "spec.sidecar.soak" },
                { "{revision: 1-25-0, tag: t, istioNamespace: ''}", "spec.sidecar.istioNamespace" },
                { "{revision: [1, 2], tag: t}", "spec.sidecar.revision" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(rollout_spec_freep) RolloutSpec *s = NULL;
                char yaml[512];
                MrError err = {};
                snprintf(yaml, sizeof(yaml), HEAD "  sidecar: %s\n", cases[i].section);
                int r = parse_yaml(yaml, &s, &err);
                if (r != -MR_ECONFIG || !strstr(err.message, cases[i].message))
                        fail_msg("case %zu (%s): r=%d, message \"%s\", expected \"%s\"", i, cases[i].section, r,
                                 err.message, cases[i].message);
        }
}

static void test_batches(void **state)
{
        size_t starts[16];

        /* canary alone, then pairs */
        assert_int_equal(sidecar_batches(5, true, 2, starts), 3);
        assert_int_equal(starts[0], 0);
        assert_int_equal(starts[1], 1);
        assert_int_equal(starts[2], 3);
        assert_int_equal(starts[3], 5);
        /* no canary, batch larger than the list */
        assert_int_equal(sidecar_batches(3, false, 10, starts), 1);
        assert_int_equal(starts[0], 0);
        assert_int_equal(starts[1], 3);
        /* canary only */
        assert_int_equal(sidecar_batches(1, true, 3, starts), 1);
        assert_int_equal(starts[1], 1);
        assert_int_equal(sidecar_batches(0, true, 3, starts), 0);
        assert_int_equal(starts[0], 0);
        /* one at a time */
        assert_int_equal(sidecar_batches(3, false, 1, starts), 3);
        assert_int_equal(starts[2], 2);
}

static void test_pod_revision(void **state)
{
        static const struct {
                const char *pod;
                const char *want;
        } cases[] = {
                { "{\"metadata\":{\"annotations\":{\"sidecar.istio.io/status\":\"{\\\"revision\\\":\\\"1-25-0\\\"}\","
                  "\"istio.io/rev\":\"1-25-0\"}}}",
                  "1-25-0" },
                /* the status alone */
                { "{\"metadata\":{\"annotations\":{\"sidecar.istio.io/status\":\"{\\\"containers\\\":[],"
                  "\\\"revision\\\":\\\"1-24-0\\\"}\"}}}",
                  "1-24-0" },
                /* the annotation is the actual revision, even when the status disagrees */
                { "{\"metadata\":{\"annotations\":{\"sidecar.istio.io/status\":\"{\\\"revision\\\":\\\"x\\\"}\","
                  "\"istio.io/rev\":\"1-25-0\"}}}",
                  "1-25-0" },
                /* not injected: ztunnel carries istio.io/rev too, but no injector status */
                { "{\"metadata\":{\"annotations\":{\"istio.io/rev\":\"1-25-0\"}}}", NULL },
                { "{\"metadata\":{\"labels\":{\"istio.io/rev\":\"prod\"}}}", NULL },
                { "{}", NULL },
                /* an unreadable status names no revision */
                { "{\"metadata\":{\"annotations\":{\"sidecar.istio.io/status\":\"{not json\"}}}", NULL },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(json_object_putp) json_object *p = json(cases[i].pod);
                const char *got = sidecar_pod_revision(p);
                if (!streq_ptr(got, cases[i].want))
                        fail_msg("case %zu: got %s, want %s", i, strna(got), strna(cases[i].want));
        }
}

static void test_rolled_out(void **state)
{
        static const struct {
                const char *d;
                int done;
                const char *why;
        } cases[] = {
                { "{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":2},\"status\":{\"observedGeneration\":3,"
                  "\"replicas\":2,\"updatedReplicas\":2,\"availableReplicas\":2}}",
                  1, NULL },
                { "{\"metadata\":{\"generation\":4},\"spec\":{\"replicas\":2},\"status\":{\"observedGeneration\":3,"
                  "\"replicas\":2,\"updatedReplicas\":2,\"availableReplicas\":2}}",
                  0, "observed" },
                { "{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":3},\"status\":{\"observedGeneration\":3,"
                  "\"replicas\":3,\"updatedReplicas\":1,\"availableReplicas\":3}}",
                  0, "new replicas" },
                { "{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":2},\"status\":{\"observedGeneration\":3,"
                  "\"replicas\":3,\"updatedReplicas\":2,\"availableReplicas\":2}}",
                  0, "old replicas" },
                { "{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":2},\"status\":{\"observedGeneration\":3,"
                  "\"replicas\":2,\"updatedReplicas\":2,\"availableReplicas\":1}}",
                  0, "available" },
                { "{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":2},\"status\":{\"observedGeneration\":3,"
                  "\"replicas\":2,\"updatedReplicas\":1,\"conditions\":[{\"type\":\"Progressing\",\"status\":"
                  "\"False\",\"reason\":\"ProgressDeadlineExceeded\"}]}}",
                  0, "deadline" },
                /* zero replicas: nothing to wait for */
                { "{\"metadata\":{\"generation\":2},\"spec\":{\"replicas\":0},\"status\":{\"observedGeneration\":2}}",
                  1, NULL },
                /* no status yet */
                { "{\"metadata\":{\"generation\":1},\"spec\":{\"replicas\":1}}", 0, "observed" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(json_object_putp) json_object *d = json(cases[i].d);
                const char *why = "unset";
                int r = sidecar_deployment_rolled_out(d, &why);
                assert_int_equal(r, cases[i].done);
                if (cases[i].why)
                        assert_non_null(strstr(why, cases[i].why));
                else
                        assert_null(why);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_full),
                cmocka_unit_test(test_errors_name_the_field),
                cmocka_unit_test(test_batches),
                cmocka_unit_test(test_pod_revision),
                cmocka_unit_test(test_rolled_out),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
