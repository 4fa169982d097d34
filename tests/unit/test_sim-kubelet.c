/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The simulated kubelet: Pending → Running (IPs, container statuses) →
 * Ready after the start-up delay, crash-looping images, and graceful
 * termination ending in removal after min(shutdown, grace).
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

static void bound_pod(Env *e, const char *name, const char *annotations, const char *image, int grace)
{
        char buf[2048];
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\","
                 "\"annotations\":{%s}},\"spec\":{\"nodeName\":\"n1\",\"terminationGracePeriodSeconds\":%d,"
                 "\"containers\":[{\"name\":\"app\",\"image\":\"%s\"}]}}",
                 name, annotations, grace, image);
        sim_env_create(e, &SIM_PODS, buf);
}

static int64_t restarts(Env *e, const char *name)
{
        int64_t v = -1;
        sim_store_lock(e->store);
        json_object *cs = json_object_array_get_idx(
                mr_json_get(sim_store_get(e->store, &SIM_PODS, "default", name), "status", "containerStatuses", NULL), 0);
        (void)mr_json_get_int(&v, cs, "restartCount", NULL);
        sim_store_unlock(e->store);
        return v;
}

static bool ready(Env *e, const char *name)
{
        sim_store_lock(e->store);
        bool r = sim_pod_is_ready(sim_store_get(e->store, &SIM_PODS, "default", name));
        sim_store_unlock(e->store);
        return r;
}

static bool exists(Env *e, const char *name)
{
        sim_store_lock(e->store);
        bool r = sim_store_get(e->store, &SIM_PODS, "default", name) != NULL;
        sim_store_unlock(e->store);
        return r;
}

static void test_start_and_ready(void **state)
{
        Env *e = *state;
        sim_env_add_node(e, "n1", "\"podCIDR\":\"10.244.7.0/24\"", NULL);
        bound_pod(e, "a", "\"sim.meshroll.io/startup-seconds\":\"4\"", "img:1", 30);
        bound_pod(e, "b", "", "img:1", 30);
        sim_env_settle(e);
        assert_string_equal(sim_env_field(e, &SIM_PODS, "default", "a", "status", "phase", NULL), "Running");
        const char *ip = sim_env_field(e, &SIM_PODS, "default", "a", "status", "podIP", NULL);
        assert_true(startswith(ip, "10.244.7."));
        char ipa[64];
        snprintf(ipa, sizeof ipa, "%s", ip);
        assert_string_not_equal(ipa, sim_env_field(e, &SIM_PODS, "default", "b", "status", "podIP", NULL));
        assert_string_equal(sim_env_field(e, &SIM_PODS, "default", "a", "status", "hostIP", NULL), "10.1.0.2");
        assert_false(ready(e, "a"));
        sim_env_run_for(e, 2 * USEC_PER_SEC);
        assert_true(ready(e, "b")); /* default start-up: 2 s */
        assert_false(ready(e, "a"));
        sim_env_run_for(e, 2 * USEC_PER_SEC);
        assert_true(ready(e, "a"));
        sim_store_lock(e->store);
        json_object *pod = sim_store_get(e->store, &SIM_PODS, "default", "a");
        json_object *cs = json_object_array_get_idx(mr_json_get(pod, "status", "containerStatuses", NULL), 0);
        assert_true(mr_json_get_bool(false, cs, "ready", NULL));
        assert_non_null(mr_json_get_str(cs, "state", "running", "startedAt", NULL));
        json_object *conds = mr_json_get(pod, "status", "conditions", NULL);
        const char *want[] = { "PodScheduled", "Initialized", "ContainersReady", "Ready" };
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                bool found = false;
                for (size_t j = 0; j < json_object_array_length(conds); j++) {
                        json_object *c = json_object_array_get_idx(conds, j);
                        if (streq_ptr(mr_json_get_str(c, "type", NULL), want[i])) {
                                found = true;
                                assert_string_equal(mr_json_get_str(c, "status", NULL), "True");
                                assert_non_null(mr_json_get_str(c, "lastTransitionTime", NULL));
                        }
                }
                assert_true(found);
        }
        sim_store_unlock(e->store);
}

static void test_never_ready(void **state)
{
        Env *e = *state;
        sim_env_add_node(e, "n1", NULL, NULL);
        bound_pod(e, "crash", "\"sim.meshroll.io/never-ready\":\"true\"", "img:1", 30);
        sim_env_create(e, &SIM_NAMESPACES, "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"kube-system\"}}");
        sim_env_create(e, &SIM_CONFIGMAPS,
               "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"kubesim-faults\",\"namespace\":\"kube-system\"},"
               "\"data\":{\"neverReadyImages\":\"other, ztunnel:bad\"}}");
        bound_pod(e, "bad", "", "ztunnel:bad", 30);
        bound_pod(e, "good", "", "ztunnel:good", 30);
        sim_env_run_for(e, 5 * USEC_PER_SEC);
        assert_false(ready(e, "crash"));
        assert_false(ready(e, "bad"));
        assert_true(ready(e, "good"));
        assert_int_equal(restarts(e, "crash"), 0);
        sim_env_run_for(e, 6 * USEC_PER_SEC); /* first restart after 10 s */
        assert_int_equal(restarts(e, "crash"), 1);
        assert_int_equal(restarts(e, "bad"), 1);
        sim_env_run_for(e, 20 * USEC_PER_SEC); /* then 20 s */
        assert_int_equal(restarts(e, "crash"), 2);
        sim_env_run_for(e, 300 * USEC_PER_SEC);
        assert_true(restarts(e, "crash") >= 4);
        assert_string_equal(sim_env_field(e, &SIM_PODS, "default", "crash", "status", "phase", NULL), "Running");
        assert_false(ready(e, "crash"));
}

static void test_termination(void **state)
{
        Env *e = *state;
        sim_env_add_node(e, "n1", NULL, NULL);
        bound_pod(e, "slow", "\"sim.meshroll.io/shutdown-seconds\":\"5\"", "img:1", 30);
        bound_pod(e, "capped", "\"sim.meshroll.io/shutdown-seconds\":\"50\"", "img:1", 3);
        sim_env_run_for(e, 3 * USEC_PER_SEC);
        assert_true(ready(e, "slow"));
        sim_store_lock(e->store);
        assert_true(sim_store_delete(e->store, &SIM_PODS, "default", "slow", -1, NULL, NULL, "test", NULL, NULL) >= 0);
        assert_true(sim_store_delete(e->store, &SIM_PODS, "default", "capped", -1, NULL, NULL, "test", NULL, NULL) >= 0);
        sim_store_unlock(e->store);
        sim_env_settle(e);
        assert_true(exists(e, "slow"));
        assert_false(ready(e, "slow")); /* terminating pods stop being Ready */
        sim_env_run_for(e, 3 * USEC_PER_SEC);
        assert_false(exists(e, "capped")); /* grace 3 s caps the 50 s shutdown */
        assert_true(exists(e, "slow"));
        sim_env_run_for(e, 2 * USEC_PER_SEC);
        assert_false(exists(e, "slow"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_start_and_ready, sim_env_setup, sim_env_teardown),
                cmocka_unit_test_setup_teardown(test_never_ready, sim_env_setup, sim_env_teardown),
                cmocka_unit_test_setup_teardown(test_termination, sim_env_setup, sim_env_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
