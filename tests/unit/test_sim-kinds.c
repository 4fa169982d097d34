/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "api.h"
#include "meshroll/json-util.h"

static json_object *J(const char *s)
{
        json_object *o = NULL;
        assert_int_equal(mr_json_parse(s, strlen(s), 1 << 20, &o), 0);
        return o;
}

static void test_table_is_consistent(void **state)
{
        size_t n = 0;
        for (size_t i = 0; sim_builtin_kinds[i]; i++, n++) {
                const SimKind *k = sim_builtin_kinds[i];
                assert_non_null(k->group);
                assert_non_null(k->version);
                assert_non_null(k->resource);
                assert_non_null(k->singular);
                assert_non_null(k->kind);
                assert_non_null(k->verbs);
                assert_non_null(strstr(k->verbs, "get"));
                assert_non_null(strstr(k->verbs, "watch"));
                /* no two kinds share group/version/resource */
                for (size_t j = 0; j < i; j++) {
                        const SimKind *o = sim_builtin_kinds[j];
                        assert_false(streq(k->group, o->group) && streq(k->version, o->version) &&
                                     streq(k->resource, o->resource));
                }
        }
        assert_true(n >= 18);
        assert_true(SIM_PODS.namespaced && SIM_PODS.has_status);
        assert_false(SIM_NODES.namespaced);
        assert_string_equal(SIM_DAEMONSETS.short_names[0], "ds");
        assert_string_equal(SIM_DEPLOYMENTS.short_names[0], "deploy");
        assert_null(SIM_LEASES.short_names[0]); /* leases have no short name */
        assert_string_equal(SIM_PDBS.group, "policy");
        assert_true(SIM_LEASES.require_rv);
        assert_false(SIM_PODS.require_rv);
}

static void test_field_getter(void **state)
{
        json_object *pod = J("{\"metadata\":{\"name\":\"p\",\"namespace\":\"x\"},\"spec\":{\"nodeName\":\"n1\"},"
                             "\"status\":{\"phase\":\"Running\"}}");
        assert_string_equal(sim_kind_field(pod, "metadata.name", (void *)&SIM_PODS), "p");
        assert_string_equal(sim_kind_field(pod, "metadata.namespace", (void *)&SIM_PODS), "x");
        assert_string_equal(sim_kind_field(pod, "spec.nodeName", (void *)&SIM_PODS), "n1");
        assert_string_equal(sim_kind_field(pod, "status.phase", (void *)&SIM_PODS), "Running");
        assert_string_equal(sim_kind_field(pod, "status.podIP", (void *)&SIM_PODS), "");
        assert_string_equal(sim_kind_field(pod, "spec.hostNetwork", (void *)&SIM_PODS), "false");
        assert_null(sim_kind_field(pod, "spec.bogus", (void *)&SIM_PODS));
        assert_null(sim_kind_field(pod, "spec.nodeName", (void *)&SIM_DEPLOYMENTS));
        /* validation calls with obj NULL */
        assert_string_equal(sim_kind_field(NULL, "spec.nodeName", (void *)&SIM_PODS), "");
        assert_string_equal(sim_kind_field(NULL, "spec.unschedulable", (void *)&SIM_NODES), "false");
        assert_string_equal(sim_kind_field(NULL, "involvedObject.name", (void *)&SIM_EVENTS), "");
        assert_null(sim_kind_field(NULL, "involvedObject.bogus", (void *)&SIM_EVENTS));
        json_object_put(pod);
}

static void test_discovery_documents(void **state)
{
        SimStore *s = NULL;
        char *body = NULL;
        int status = 0;
        assert_int_equal(sim_store_new(NULL, -1, &s), 0);

        assert_int_equal(sim_discovery_handle(s, "/api", "127.0.0.1:1", &body, &status), 1);
        assert_string_equal(body, "{\"kind\":\"APIVersions\",\"versions\":[\"v1\"],\"serverAddressByClientCIDRs\":"
                                  "[{\"clientCIDR\":\"0.0.0.0/0\",\"serverAddress\":\"127.0.0.1:1\"}]}");
        free(body);
        assert_int_equal(sim_discovery_handle(s, "/apis/coordination.k8s.io/v1", NULL, &body, &status), 1);
        assert_non_null(strstr(body, "\"groupVersion\":\"coordination.k8s.io/v1\""));
        assert_non_null(strstr(body, "{\"name\":\"leases\",\"singularName\":\"lease\",\"namespaced\":true,\"kind\":\"Lease\","
                                     "\"verbs\":[\"create\",\"delete\",\"deletecollection\",\"get\",\"list\",\"patch\",\"update\",\"watch\"]}"));
        free(body);
        assert_int_equal(sim_discovery_handle(s, "/apis/policy/v1", NULL, &body, &status), 1);
        assert_non_null(strstr(body, "\"name\":\"poddisruptionbudgets/status\""));
        assert_non_null(strstr(body, "\"shortNames\":[\"pdb\"]"));
        free(body);
        assert_int_equal(sim_discovery_handle(s, "/apis/apps/v1/daemonsets", NULL, &body, &status), 0);
        assert_int_equal(sim_discovery_handle(s, "/apis/example.com", NULL, &body, &status), 0);

        /* a CRD shows up in discovery */
        sim_store_lock(s);
        assert_int_equal(sim_store_create(s, &SIM_CRDS,
                                          J("{\"metadata\":{\"name\":\"widgets.example.com\"},\"spec\":{\"group\":\"example.com\","
                                            "\"names\":{\"plural\":\"widgets\",\"kind\":\"Widget\"},\"scope\":\"Namespaced\","
                                            "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true}]}}"),
                                          "t", NULL, NULL),
                         0);
        sim_store_unlock(s);
        assert_int_equal(sim_discovery_handle(s, "/apis", NULL, &body, &status), 1);
        assert_non_null(strstr(body, "{\"name\":\"example.com\",\"preferredVersion\":{\"groupVersion\":\"example.com/v1\","
                                     "\"version\":\"v1\"}"));
        free(body);
        assert_int_equal(sim_discovery_handle(s, "/apis/example.com/v1", NULL, &body, &status), 1);
        assert_non_null(strstr(body, "\"name\":\"widgets\",\"singularName\":\"widget\""));
        free(body);
        sim_store_free(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_table_is_consistent),
                cmocka_unit_test(test_field_getter),
                cmocka_unit_test(test_discovery_documents),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
