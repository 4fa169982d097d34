/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The simulated scheduler: least-loaded binding, taints and tolerations,
 * node selectors and affinity, cpu/pod capacity, the Unschedulable
 * condition, and retry when capacity frees up.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "controllers-internal.h"
#include "meshroll/json-util.h"
#include "meshroll/time-util.h"
#include "sim-env.h"
#include "store.h"

static void pod(Env *e, const char *name, const char *spec)
{
        char buf[2048];
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\"},"
                 "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]%s%s}}",
                 name, spec ? "," : "", spec ? spec : "");
        sim_env_create(e, &SIM_PODS, buf);
}

static void test_spread(void **state)
{
        Env *e = *state;
        sim_env_add_node(e, "n1", NULL, NULL);
        sim_env_add_node(e, "n2", NULL, NULL);
        pod(e, "a", NULL);
        pod(e, "b", NULL);
        pod(e, "c", NULL);
        sim_env_settle(e);
        int on1 = 0;
        for (const char *p = "abc"; *p; p++) {
                char name[2] = { *p, 0 };
                const char *node = sim_env_field(e, &SIM_PODS, "default", name, "spec", "nodeName", NULL);
                assert_true(streq(node, "n1") || streq(node, "n2"));
                on1 += streq(node, "n1");
        }
        assert_true(on1 == 1 || on1 == 2); /* spread, not stacked */
}

static void test_taints(void **state)
{
        Env *e = *state;
        sim_env_add_node(e, "n1", "\"taints\":[{\"key\":\"dedicated\",\"value\":\"db\",\"effect\":\"NoSchedule\"}]", NULL);
        pod(e, "plain", NULL);
        pod(e, "tolerant", "\"tolerations\":[{\"key\":\"dedicated\",\"operator\":\"Equal\",\"value\":\"db\",\"effect\":\"NoSchedule\"}]");
        sim_env_settle(e);
        assert_string_equal(sim_env_field(e, &SIM_PODS, "default", "plain", "spec", "nodeName", NULL), "");
        assert_string_equal(sim_env_field(e, &SIM_PODS, "default", "tolerant", "spec", "nodeName", NULL), "n1");
        sim_store_lock(e->store);
        json_object *cond = json_object_array_get_idx(
                mr_json_get(sim_store_get(e->store, &SIM_PODS, "default", "plain"), "status", "conditions", NULL), 0);
        assert_string_equal(mr_json_get_str(cond, "type", NULL), "PodScheduled");
        assert_string_equal(mr_json_get_str(cond, "status", NULL), "False");
        assert_string_equal(mr_json_get_str(cond, "reason", NULL), "Unschedulable");
        assert_string_equal(mr_json_get_str(cond, "message", NULL), "0/1 nodes are available: 1 node(s) had untolerated taint.");
        sim_store_unlock(e->store);
}

static void cordon(Env *e, const char *node)
{
        sim_store_lock(e->store);
        json_object *n = mr_json_copy(sim_store_get(e->store, &SIM_NODES, NULL, node));
        mr_json_set_bool(mr_json_get(n, "spec", NULL), "unschedulable", true);
        assert_int_equal(sim_store_update(e->store, &SIM_NODES, n, 0, "test", NULL, NULL), 0);
        sim_store_unlock(e->store);
}

static void test_cordoned_node_refused_but_daemon_tolerates(void **state)
{
        Env *e = *state;
        sim_env_add_node(e, "n1", NULL, NULL);
        cordon(e, "n1");
        sim_env_settle(e); /* the lifecycle controller taints it */
        pod(e, "web", NULL);
        pod(e, "agent", "\"tolerations\":[{\"key\":\"node.kubernetes.io/unschedulable\",\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}]");
        sim_env_settle(e);
        assert_string_equal(sim_env_field(e, &SIM_PODS, "default", "web", "spec", "nodeName", NULL), "");
        assert_string_equal(sim_env_field(e, &SIM_PODS, "default", "agent", "spec", "nodeName", NULL), "n1");
}

static void test_selector_and_affinity(void **state)
{
        Env *e = *state;
        sim_env_add_node(e, "n1", NULL, NULL); /* label disk=hdd (see add_node) */
        sim_env_add_node(e, "n22", NULL, NULL); /* disk=ssd */
        pod(e, "sel", "\"nodeSelector\":{\"disk\":\"ssd\"}");
        pod(e, "aff", "\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":{\"nodeSelectorTerms\":"
                      "[{\"matchExpressions\":[{\"key\":\"disk\",\"operator\":\"NotIn\",\"values\":[\"ssd\"]}]}]}}}");
        pod(e, "field", "\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":{\"nodeSelectorTerms\":"
                        "[{\"matchFields\":[{\"key\":\"metadata.name\",\"operator\":\"In\",\"values\":[\"n22\"]}]}]}}}");
        pod(e, "none", "\"nodeSelector\":{\"disk\":\"nvme\"}");
        sim_env_settle(e);
        assert_string_equal(sim_env_field(e, &SIM_PODS, "default", "sel", "spec", "nodeName", NULL), "n22");
        assert_string_equal(sim_env_field(e, &SIM_PODS, "default", "aff", "spec", "nodeName", NULL), "n1");
        assert_string_equal(sim_env_field(e, &SIM_PODS, "default", "field", "spec", "nodeName", NULL), "n22");
        assert_string_equal(sim_env_field(e, &SIM_PODS, "default", "none", "spec", "nodeName", NULL), "");
}

#define REQ(cpu) "\"containers\":[{\"name\":\"c\",\"image\":\"i\",\"resources\":{\"requests\":{\"cpu\":\"" cpu "\",\"memory\":\"1Gi\"}}}]"

static void big_pod(Env *e, const char *name)
{
        char buf[1024];
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\"},\"spec\":{" REQ("600m") "}}",
                 name);
        sim_env_create(e, &SIM_PODS, buf);
}

static void test_capacity(void **state)
{
        Env *e = *state;
        sim_env_add_node(e, "n1", NULL, "{\"cpu\":\"1\",\"memory\":\"4Gi\",\"pods\":\"10\"}");
        big_pod(e, "a");
        sim_env_settle(e);
        big_pod(e, "b");
        sim_env_settle(e);
        assert_string_equal(sim_env_field(e, &SIM_PODS, "default", "a", "spec", "nodeName", NULL), "n1");
        assert_string_equal(sim_env_field(e, &SIM_PODS, "default", "b", "spec", "nodeName", NULL), "");
        sim_store_lock(e->store);
        json_object *cond = json_object_array_get_idx(
                mr_json_get(sim_store_get(e->store, &SIM_PODS, "default", "b"), "status", "conditions", NULL), 0);
        assert_string_equal(mr_json_get_str(cond, "message", NULL), "0/1 nodes are available: 1 Insufficient cpu.");
        /* a goes away: b fits now */
        assert_true(sim_store_delete(e->store, &SIM_PODS, "default", "a", 0, NULL, NULL, "test", NULL, NULL) >= 0);
        sim_store_unlock(e->store);
        sim_env_run_for(e, 5 * USEC_PER_SEC);
        assert_string_equal(sim_env_field(e, &SIM_PODS, "default", "b", "spec", "nodeName", NULL), "n1");
}

static void test_pod_count(void **state)
{
        Env *e = *state;
        sim_env_add_node(e, "n1", NULL, "{\"pods\":\"2\"}");
        pod(e, "a", NULL);
        pod(e, "b", NULL);
        pod(e, "c", NULL);
        sim_env_settle(e);
        int bound = 0;
        for (const char *p = "abc"; *p; p++) {
                char name[2] = { *p, 0 };
                bound += streq(sim_env_field(e, &SIM_PODS, "default", name, "spec", "nodeName", NULL), "n1");
        }
        assert_int_equal(bound, 2);
}

/* Least pods first, ties by name: one pod at a time goes round the nodes in name order. */
static void test_least_allocated_order(void **state)
{
        Env *e = *state;
        static const char *const want[] = {"n1", "n2", "n3", "n1", "n2"};
        sim_env_add_node(e, "n2", NULL, NULL);
        sim_env_add_node(e, "n1", NULL, NULL);
        sim_env_add_node(e, "n3", NULL, NULL);
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                char name[8];
                snprintf(name, sizeof name, "p%zu", i);
                pod(e, name, NULL);
                sim_env_settle(e);
                assert_string_equal(sim_env_field(e, &SIM_PODS, "default", name, "spec", "nodeName", NULL), want[i]);
        }
}

/*
 * The per-node accounting follows the pods, not the node object: a node
 * deleted and created again still counts the pods bound to it, and a pod
 * created already bound (as a pinned one) counts too.
 */
static void test_accounting_survives_node_recreate(void **state)
{
        Env *e = *state;
        sim_env_add_node(e, "n1", NULL, "{\"pods\":\"2\"}");
        pod(e, "a", "\"nodeName\":\"n1\"");
        pod(e, "b", NULL);
        sim_env_settle(e);
        assert_string_equal(sim_env_field(e, &SIM_PODS, "default", "b", "spec", "nodeName", NULL), "n1");

        sim_store_lock(e->store);
        assert_int_equal(sim_store_delete(e->store, &SIM_NODES, NULL, "n1", 0, NULL, NULL, "test", NULL, NULL), 0);
        sim_store_unlock(e->store);
        sim_env_add_node(e, "n1", NULL, "{\"pods\":\"2\"}");
        pod(e, "c", NULL);
        sim_env_settle(e);
        assert_string_equal(sim_env_field(e, &SIM_PODS, "default", "c", "spec", "nodeName", NULL), "");
        sim_store_lock(e->store);
        json_object *cond = json_object_array_get_idx(
                mr_json_get(sim_store_get(e->store, &SIM_PODS, "default", "c"), "status", "conditions", NULL), 0);
        assert_string_equal(mr_json_get_str(cond, "message", NULL), "0/1 nodes are available: 1 Too many pods.");
        /* b goes: c takes its place */
        assert_true(sim_store_delete(e->store, &SIM_PODS, "default", "b", 0, NULL, NULL, "test", NULL, NULL) >= 0);
        sim_store_unlock(e->store);
        sim_env_run_for(e, 5 * USEC_PER_SEC);
        assert_string_equal(sim_env_field(e, &SIM_PODS, "default", "c", "spec", "nodeName", NULL), "n1");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_spread, sim_env_setup, sim_env_teardown),
                cmocka_unit_test_setup_teardown(test_taints, sim_env_setup, sim_env_teardown),
                cmocka_unit_test_setup_teardown(test_cordoned_node_refused_but_daemon_tolerates, sim_env_setup, sim_env_teardown),
                cmocka_unit_test_setup_teardown(test_selector_and_affinity, sim_env_setup, sim_env_teardown),
                cmocka_unit_test_setup_teardown(test_capacity, sim_env_setup, sim_env_teardown),
                cmocka_unit_test_setup_teardown(test_pod_count, sim_env_setup, sim_env_teardown),
                cmocka_unit_test_setup_teardown(test_least_allocated_order, sim_env_setup, sim_env_teardown),
                cmocka_unit_test_setup_teardown(test_accounting_survives_node_recreate, sim_env_setup, sim_env_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
