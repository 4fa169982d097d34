/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "meshroll/kube.h"

static void check_path(const KubeResource *res, const char *ns, const char *name, const char *sub,
                       const char *expected)
{
        _cleanup_free_ char *p = NULL;
        assert_int_equal(kube_path(res, ns, name, sub, &p), 0);
        assert_string_equal(p, expected);
}

static void test_paths(void **state)
{
        check_path(&KUBE_NODES, NULL, "n1", NULL, "/api/v1/nodes/n1");
        check_path(&KUBE_NODES, "ignored", NULL, NULL, "/api/v1/nodes");
        check_path(&KUBE_PODS, NULL, NULL, NULL, "/api/v1/pods");
        check_path(&KUBE_PODS, "", NULL, NULL, "/api/v1/pods");
        check_path(&KUBE_PODS, "shop", "web-0", "eviction", "/api/v1/namespaces/shop/pods/web-0/eviction");
        check_path(&KUBE_DAEMONSETS, "istio-system", "ztunnel", NULL,
                   "/apis/apps/v1/namespaces/istio-system/daemonsets/ztunnel");
        check_path(&KUBE_LEASES, "meshroll", NULL, NULL, "/apis/coordination.k8s.io/v1/namespaces/meshroll/leases");
        check_path(&KUBE_ROLLOUTS, "x", "r1", "status", "/apis/meshroll.io/v1alpha1/rollouts/r1/status"); /* cluster-scoped */
        check_path(&KUBE_EVENTS_V1, "default", NULL, NULL, "/apis/events.k8s.io/v1/namespaces/default/events");
        check_path(&KUBE_CRDS, NULL, "rollouts.meshroll.io", NULL,
                   "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/rollouts.meshroll.io");
        check_path(&KUBE_PDBS, "a", NULL, NULL, "/apis/policy/v1/namespaces/a/poddisruptionbudgets");
        check_path(&KUBE_NAMESPACES, NULL, "x", "status", "/api/v1/namespaces/x/status");
}

static void test_escaping(void **state)
{
        check_path(&KUBE_CONFIGMAPS, "a b", "x/y?z#%", NULL, "/api/v1/namespaces/a%20b/configmaps/x%2Fy%3Fz%23%25");
        check_path(&KUBE_NODES, NULL, "n\xc3\xa9", NULL, "/api/v1/nodes/n%C3%A9");
}

static void test_invalid(void **state)
{
        char *p = (char *)0x1;
        assert_int_equal(kube_path(&KUBE_PODS, NULL, "web-0", NULL, &p), -EINVAL);
        assert_int_equal(kube_path(&KUBE_PODS, "x", "", NULL, &p), -EINVAL);
        assert_int_equal(kube_path(&KUBE_PODS, "x", "..", NULL, &p), -EINVAL);
        assert_int_equal(kube_path(&KUBE_PODS, "..", "a", NULL, &p), -EINVAL);
        assert_int_equal(kube_path(&KUBE_PODS, "x", NULL, "status", &p), -EINVAL);
        assert_int_equal(kube_path(&KUBE_PODS, "x", "a", ".", &p), -EINVAL);
        assert_int_equal(kube_path(NULL, "x", "a", NULL, &p), -EINVAL);
        assert_ptr_equal(p, (char *)0x1);
        /* an absurdly long name is refused, not built */
        _cleanup_free_ char *huge = malloc(100000);
        assert_non_null(huge);
        memset(huge, 'a', 99999);
        huge[99999] = 0;
        assert_int_equal(kube_path(&KUBE_NODES, NULL, huge, NULL, &p), -EINVAL);
}

static void test_query(void **state)
{
        _cleanup_free_ char *p = strdup("/api/v1/pods");
        assert_non_null(p);
        assert_int_equal(kube_path_append_query(&p, "labelSelector", "app=x,tier!=db", "fieldSelector", NULL,
                                                "limit", "500", NULL),
                         0);
        assert_string_equal(p, "/api/v1/pods?labelSelector=app%3Dx%2Ctier%21%3Ddb&limit=500");
        assert_int_equal(kube_path_append_query(&p, "continue", "eyJ2Ijo+/=", NULL), 0);
        assert_string_equal(p, "/api/v1/pods?labelSelector=app%3Dx%2Ctier%21%3Ddb&limit=500&continue=eyJ2Ijo%2B%2F%3D");
        assert_int_equal(kube_path_append_query(&p, "a", NULL, NULL), 0);
        assert_string_equal(p, "/api/v1/pods?labelSelector=app%3Dx%2Ctier%21%3Ddb&limit=500&continue=eyJ2Ijo%2B%2F%3D");
        char *null = NULL;
        assert_int_equal(kube_path_append_query(&null, "a", "b", NULL), -EINVAL);
}

static void test_table(void **state)
{
        const KubeResource *all[] = { &KUBE_NODES, &KUBE_PODS, &KUBE_NAMESPACES, &KUBE_SERVICES, &KUBE_ENDPOINTS,
                                      &KUBE_EVENTS, &KUBE_CONFIGMAPS, &KUBE_DAEMONSETS, &KUBE_DEPLOYMENTS,
                                      &KUBE_REPLICASETS, &KUBE_CONTROLLERREVISIONS, &KUBE_PDBS, &KUBE_LEASES,
                                      &KUBE_MUTATINGWEBHOOKS, &KUBE_CRDS, &KUBE_EVENTS_V1, &KUBE_ROLLOUTS };
        for (size_t i = 0; i < ELEMENTSOF(all); i++) {
                assert_non_null(all[i]->group);
                assert_non_null(all[i]->kind);
                assert_true(strlen(all[i]->plural) > 0);
        }
        assert_false(KUBE_NODES.namespaced);
        assert_false(KUBE_MUTATINGWEBHOOKS.namespaced);
        assert_false(KUBE_ROLLOUTS.namespaced);
        assert_string_equal(KUBE_ROLLOUTS.version, "v1alpha1");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_paths),
                cmocka_unit_test(test_escaping),
                cmocka_unit_test(test_invalid),
                cmocka_unit_test(test_query),
                cmocka_unit_test(test_table),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
