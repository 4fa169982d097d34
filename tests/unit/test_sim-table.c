/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "api.h"
#include "meshroll/json-util.h"

#define NOW (1767225600ULL * USEC_PER_SEC) /* 2026-01-01T00:00:00Z */

static json_object *J(const char *s)
{
        json_object *o = NULL;
        assert_int_equal(mr_json_parse(s, strlen(s), 1 << 20, &o), 0);
        return o;
}

/* Renders one object and returns its cells as compact JSON (static buffer). */
static const char *cells(SimStore *s, const SimKind *k, const char *obj_json, const char *include, json_object **ret_table)
{
        static char buf[4096];
        json_object *obj = J(obj_json), *t = NULL;
        char *out = NULL;
        assert_int_equal(sim_table_render(s, k, &obj, 1, "7", NULL, include, NOW, &out), 0);
        t = J(out);
        free(out);
        json_object_put(obj);
        snprintf(buf, sizeof(buf), "%s",
                 mr_json_compact(mr_json_get(json_object_array_get_idx(mr_json_get(t, "rows", NULL), 0), "cells", NULL)));
        if (ret_table)
                *ret_table = t;
        else
                json_object_put(t);
        return buf;
}

static void test_human_duration(void **state)
{
        char b[32];
        assert_string_equal(sim_human_duration(5 * USEC_PER_SEC, b, sizeof(b)), "5s");
        assert_string_equal(sim_human_duration(119 * USEC_PER_SEC, b, sizeof(b)), "119s");
        assert_string_equal(sim_human_duration(200 * USEC_PER_SEC, b, sizeof(b)), "3m20s");
        assert_string_equal(sim_human_duration(240 * USEC_PER_SEC, b, sizeof(b)), "4m");
        assert_string_equal(sim_human_duration(65 * USEC_PER_MINUTE, b, sizeof(b)), "65m");
        assert_string_equal(sim_human_duration(190 * USEC_PER_MINUTE, b, sizeof(b)), "3h10m");
        assert_string_equal(sim_human_duration(10 * 60 * USEC_PER_MINUTE, b, sizeof(b)), "10h");
        assert_string_equal(sim_human_duration(5 * 24 * 60 * USEC_PER_MINUTE, b, sizeof(b)), "5d");
        assert_string_equal(sim_human_duration((5 * 24 + 3) * 60 * USEC_PER_MINUTE, b, sizeof(b)), "5d3h");
        assert_string_equal(sim_human_duration(400ULL * 24 * 60 * USEC_PER_MINUTE, b, sizeof(b)), "400d");
        assert_string_equal(sim_human_duration(800ULL * 24 * 60 * USEC_PER_MINUTE, b, sizeof(b)), "2y70d");
}

static void test_accept(void **state)
{
        assert_true(sim_table_wanted("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
                                     "g=meta.k8s.io,application/json"));
        assert_false(sim_table_wanted("application/json"));
        assert_false(sim_table_wanted("application/vnd.kubernetes.protobuf,application/json"));
        assert_false(sim_table_wanted(NULL));
}

static void test_pods_and_nodes(void **state)
{
        SimStore *s = NULL;
        json_object *t = NULL;
        assert_int_equal(sim_store_new(NULL, -1, &s), 0);
        const char *c = cells(s, &SIM_PODS,
                              "{\"metadata\":{\"name\":\"web-1\",\"namespace\":\"shop\",\"creationTimestamp\":\"2025-12-31T23:56:40Z\"},"
                              "\"spec\":{\"nodeName\":\"n1\",\"containers\":[{\"name\":\"a\"},{\"name\":\"b\"}]},"
                              "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.5\",\"containerStatuses\":["
                              "{\"name\":\"a\",\"ready\":true,\"restartCount\":2,\"state\":{\"running\":{}},"
                              "\"lastState\":{\"terminated\":{\"finishedAt\":\"2025-12-31T23:59:00Z\"}}},"
                              "{\"name\":\"b\",\"ready\":false,\"restartCount\":1,\"state\":{\"waiting\":{\"reason\":\"CrashLoopBackOff\"}}}]}}",
                              NULL, &t);
        assert_string_equal(c, "[\"web-1\",\"1/2\",\"CrashLoopBackOff\",\"3 (60s ago)\",\"3m20s\",\"10.0.0.5\",\"n1\",\"<none>\",\"<none>\"]");
        json_object *cols = mr_json_get(t, "columnDefinitions", NULL);
        assert_int_equal(json_object_array_length(cols), 9);
        int64_t prio = -1;
        assert_int_equal(mr_json_get_int(&prio, json_object_array_get_idx(cols, 5), "priority", NULL), 0);
        assert_int_equal(prio, 1);
        assert_string_equal(mr_json_get_str(t, "metadata", "resourceVersion", NULL), "7");
        assert_string_equal(mr_json_get_str(json_object_array_get_idx(mr_json_get(t, "rows", NULL), 0), "object", "kind", NULL),
                            "PartialObjectMetadata");
        json_object_put(t);

        c = cells(s, &SIM_PODS, "{\"metadata\":{\"name\":\"p\",\"deletionTimestamp\":\"2026-01-01T00:00:30Z\"},"
                                "\"status\":{\"phase\":\"Running\"}}",
                  "None", &t);
        assert_string_equal(c, "[\"p\",\"0/0\",\"Terminating\",\"0\",\"<unknown>\",\"<none>\",\"<none>\",\"<none>\",\"<none>\"]");
        assert_null(mr_json_get(json_object_array_get_idx(mr_json_get(t, "rows", NULL), 0), "object", NULL));
        json_object_put(t);

        c = cells(s, &SIM_NODES,
                  "{\"metadata\":{\"name\":\"n1\",\"creationTimestamp\":\"2025-12-27T00:00:00Z\",\"labels\":"
                  "{\"node-role.kubernetes.io/control-plane\":\"\",\"node-role.kubernetes.io/worker\":\"\"}},"
                  "\"spec\":{\"unschedulable\":true},\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"}],"
                  "\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"10.0.0.1\"}],"
                  "\"nodeInfo\":{\"kubeletVersion\":\"v1.32.0\",\"osImage\":\"Debian\",\"kernelVersion\":\"6.1\","
                  "\"containerRuntimeVersion\":\"containerd://1.7\"}}}",
                  NULL, NULL);
        assert_string_equal(c, "[\"n1\",\"NotReady,SchedulingDisabled\",\"control-plane,worker\",\"5d\",\"v1.32.0\","
                               "\"10.0.0.1\",\"<none>\",\"Debian\",\"6.1\",\"containerd://1.7\"]");
        sim_store_free(s);
}

static void test_workloads_and_others(void **state)
{
        SimStore *s = NULL;
        assert_int_equal(sim_store_new(NULL, -1, &s), 0);
        const char *tmpl = "\"template\":{\"spec\":{\"nodeSelector\":{\"kubernetes.io/os\":\"linux\"},"
                           "\"containers\":[{\"name\":\"istio-proxy\",\"image\":\"proxy:1\"}]}},"
                           "\"selector\":{\"matchLabels\":{\"app\":\"z\"}}";
        char buf[1024];
        snprintf(buf, sizeof(buf), "{\"metadata\":{\"name\":\"z\",\"creationTimestamp\":\"2026-01-01T00:00:00Z\"},\"spec\":{%s},"
                                   "\"status\":{\"desiredNumberScheduled\":3,\"currentNumberScheduled\":3,\"numberReady\":2,"
                                   "\"updatedNumberScheduled\":1,\"numberAvailable\":2}}",
                 tmpl);
        assert_string_equal(cells(s, &SIM_DAEMONSETS, buf, NULL, NULL),
                            "[\"z\",3,3,2,1,2,\"kubernetes.io/os=linux\",\"0s\",\"istio-proxy\",\"proxy:1\",\"app=z\"]");
        snprintf(buf, sizeof(buf), "{\"metadata\":{\"name\":\"web\",\"creationTimestamp\":\"2026-01-01T00:00:00Z\"},"
                                   "\"spec\":{\"replicas\":3,%s},\"status\":{\"readyReplicas\":2,\"updatedReplicas\":3}}",
                 tmpl);
        assert_string_equal(cells(s, &SIM_DEPLOYMENTS, buf, NULL, NULL),
                            "[\"web\",\"2/3\",3,0,\"0s\",\"istio-proxy\",\"proxy:1\",\"app=z\"]");
        assert_string_equal(cells(s, &SIM_NAMESPACES, "{\"metadata\":{\"name\":\"shop\"},\"status\":{\"phase\":\"Active\"}}", NULL, NULL),
                            "[\"shop\",\"Active\",\"<unknown>\"]");
        assert_string_equal(cells(s, &SIM_LEASES, "{\"metadata\":{\"name\":\"l\"},\"spec\":{\"holderIdentity\":\"me\"}}", NULL, NULL),
                            "[\"l\",\"me\",\"<unknown>\"]");
        assert_string_equal(cells(s, &SIM_EVENTS,
                                  "{\"metadata\":{\"name\":\"e1\"},\"involvedObject\":{\"kind\":\"Node\",\"name\":\"n1\"},"
                                  "\"reason\":\"Drain\",\"message\":\"draining\",\"type\":\"Normal\",\"count\":2,"
                                  "\"source\":{\"component\":\"meshroll\",\"host\":\"n1\"},"
                                  "\"firstTimestamp\":\"2025-12-31T23:00:00Z\",\"lastTimestamp\":\"2025-12-31T23:59:00Z\"}",
                                  NULL, NULL),
                            "[\"60s\",\"Normal\",\"Drain\",\"node/n1\",\"\",\"meshroll, n1\",\"draining\",\"60m\",\"2\",\"e1\"]");
        assert_string_equal(cells(s, &SIM_PDBS, "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"minAvailable\":2},"
                                                "\"status\":{\"disruptionsAllowed\":1}}",
                                  NULL, NULL),
                            "[\"p\",\"2\",\"N/A\",1,\"<unknown>\"]");
        assert_string_equal(cells(s, &SIM_SERVICES, "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"type\":\"ClusterIP\","
                                                    "\"clusterIP\":\"10.96.0.10\",\"ports\":[{\"port\":80},{\"port\":443,"
                                                    "\"nodePort\":30443,\"protocol\":\"TCP\"}],\"selector\":{\"app\":\"web\"}}}",
                                  NULL, NULL),
                            "[\"web\",\"ClusterIP\",\"10.96.0.10\",\"<none>\",\"80/TCP,443:30443/TCP\",\"<unknown>\",\"app=web\"]");
        /* generic fallback */
        assert_string_equal(cells(s, &SIM_MUTATINGWEBHOOKS, "{\"metadata\":{\"name\":\"x\"}}", NULL, NULL), "[\"x\",\"<unknown>\"]");
        sim_store_free(s);
}

static void test_crd_columns(void **state)
{
        SimStore *s = NULL;
        assert_int_equal(sim_store_new(NULL, -1, &s), 0);
        sim_store_lock(s);
        assert_int_equal(sim_store_create(s, &SIM_CRDS,
                                          J("{\"metadata\":{\"name\":\"widgets.example.com\"},\"spec\":{\"group\":\"example.com\","
                                            "\"names\":{\"plural\":\"widgets\",\"kind\":\"Widget\"},\"scope\":\"Namespaced\","
                                            "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,"
                                            "\"additionalPrinterColumns\":[{\"name\":\"Phase\",\"type\":\"string\",\"jsonPath\":\".status.phase\"},"
                                            "{\"name\":\"Size\",\"type\":\"integer\",\"jsonPath\":\".spec.size\",\"priority\":1}]}]}}"),
                                          "t", NULL, NULL),
                         0);
        const SimKind *k = sim_store_find_kind(s, "example.com", "v1", "widgets");
        assert_string_equal(cells(s, k, "{\"metadata\":{\"name\":\"w\"},\"spec\":{\"size\":3},\"status\":{\"phase\":\"Up\"}}", NULL, NULL),
                            "[\"w\",\"Up\",3]");
        /* declared columns replace the default AGE; a date column is printed as an age */
        assert_int_equal(sim_store_create(s, &SIM_CRDS,
                                          J("{\"metadata\":{\"name\":\"gadgets.example.com\"},\"spec\":{\"group\":\"example.com\","
                                            "\"names\":{\"plural\":\"gadgets\",\"kind\":\"Gadget\"},\"scope\":\"Cluster\","
                                            "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,"
                                            "\"additionalPrinterColumns\":[{\"name\":\"Age\",\"type\":\"date\",\"jsonPath\":\".metadata.creationTimestamp\"}]}]}}"),
                                          "t", NULL, NULL),
                         0);
        k = sim_store_find_kind(s, "example.com", "v1", "gadgets");
        assert_string_equal(cells(s, k, "{\"metadata\":{\"name\":\"g\",\"creationTimestamp\":\"2025-12-31T23:56:40Z\"}}",
                                  NULL, NULL),
                            "[\"g\",\"3m20s\"]");
        /* no columns declared: NAME and AGE */
        assert_int_equal(sim_store_create(s, &SIM_CRDS,
                                          J("{\"metadata\":{\"name\":\"things.example.com\"},\"spec\":{\"group\":\"example.com\","
                                            "\"names\":{\"plural\":\"things\",\"kind\":\"Thing\"},\"scope\":\"Cluster\","
                                            "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true}]}}"),
                                          "t", NULL, NULL),
                         0);
        k = sim_store_find_kind(s, "example.com", "v1", "things");
        assert_string_equal(cells(s, k, "{\"metadata\":{\"name\":\"t\"}}", NULL, NULL), "[\"t\",\"<unknown>\"]");
        sim_store_unlock(s);
        sim_store_free(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_human_duration), cmocka_unit_test(test_accept),
                cmocka_unit_test(test_pods_and_nodes), cmocka_unit_test(test_workloads_and_others),
                cmocka_unit_test(test_crd_columns),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
