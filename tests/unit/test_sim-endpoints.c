/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The endpoints controller: Ready pods under addresses, the others under
 * notReadyAddresses, terminating pods dropped, named target ports
 * resolved, selector switches (blue/green) followed, and the Endpoints
 * removed with their Service.
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

static void pod(Env *e, const char *name, const char *color, int startup)
{
        char buf[2048];
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\","
                 "\"labels\":{\"app\":\"gw\",\"color\":\"%s\"},\"annotations\":{\"sim.meshroll.io/startup-seconds\":\"%d\"}},"
                 "\"spec\":{\"nodeName\":\"n1\",\"containers\":[{\"name\":\"c\",\"image\":\"i\",\"ports\":[{\"name\":\"http\","
                 "\"containerPort\":8080}]}]}}",
                 name, color, startup);
        sim_env_create(e, &SIM_PODS, buf);
}

static size_t count(Env *e, const char *what)
{
        sim_store_lock(e->store);
        json_object *ep = sim_store_get(e->store, &SIM_ENDPOINTS, "default", "gw");
        json_object *subset = json_object_array_get_idx(mr_json_get(ep, "subsets", NULL), 0);
        json_object *a = mr_json_get(subset, what, NULL);
        size_t n = a ? json_object_array_length(a) : 0;
        sim_store_unlock(e->store);
        return n;
}

static void set_selector(Env *e, const char *color)
{
        sim_store_lock(e->store);
        json_object *s = mr_json_copy(sim_store_get(e->store, &SIM_SERVICES, "default", "gw"));
        mr_json_set_str(mr_json_get(s, "spec", "selector", NULL), "color", color);
        assert_int_equal(sim_store_update(e->store, &SIM_SERVICES, s, 0, "test", NULL, NULL), 0);
        sim_store_unlock(e->store);
}

static void test_endpoints(void **state)
{
        Env *e = *state;
        sim_env_add_node(e, "n1", "\"podCIDR\":\"10.244.1.0/24\"", NULL);
        pod(e, "blue-1", "blue", 1);
        pod(e, "blue-2", "blue", 100);
        pod(e, "green-1", "green", 1);
        sim_env_create(e, &SIM_SERVICES,
               "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"gw\",\"namespace\":\"default\"},"
               "\"spec\":{\"selector\":{\"app\":\"gw\",\"color\":\"blue\"},\"ports\":[{\"name\":\"http\",\"port\":80,"
               "\"targetPort\":\"http\"}]}}");
        sim_env_run_for(e, 2 * USEC_PER_SEC);
        assert_int_equal(count(e, "addresses"), 1);
        assert_int_equal(count(e, "notReadyAddresses"), 1);
        sim_store_lock(e->store);
        json_object *ep = sim_store_get(e->store, &SIM_ENDPOINTS, "default", "gw");
        json_object *subset = json_object_array_get_idx(mr_json_get(ep, "subsets", NULL), 0);
        json_object *addr = json_object_array_get_idx(mr_json_get(subset, "addresses", NULL), 0);
        json_object *port = json_object_array_get_idx(mr_json_get(subset, "ports", NULL), 0);
        int64_t p = 0;
        assert_int_equal(mr_json_get_int(&p, port, "port", NULL), 0);
        assert_int_equal(p, 8080); /* the named target port */
        assert_string_equal(mr_json_get_str(addr, "targetRef", "name", NULL), "blue-1");
        assert_string_equal(mr_json_get_str(addr, "nodeName", NULL), "n1");
        assert_true(startswith(mr_json_get_str(addr, "ip", NULL), "10.244.1."));
        sim_store_unlock(e->store);

        /* Blue/green: switching the selector moves the endpoints. */
        set_selector(e, "green");
        sim_env_settle(e);
        assert_int_equal(count(e, "addresses"), 1);
        assert_int_equal(count(e, "notReadyAddresses"), 0);

        /* A terminating pod leaves at once. */
        sim_store_lock(e->store);
        assert_true(sim_store_delete(e->store, &SIM_PODS, "default", "green-1", 30, NULL, NULL, "test", NULL, NULL) >= 0);
        sim_store_unlock(e->store);
        sim_env_settle(e);
        assert_int_equal(count(e, "addresses"), 0);
        sim_store_lock(e->store);
        assert_int_equal(json_object_array_length(mr_json_get(sim_store_get(e->store, &SIM_ENDPOINTS, "default", "gw"),
                                                               "subsets", NULL)),
                         0);
        /* The Service goes, its Endpoints go. */
        assert_true(sim_store_delete(e->store, &SIM_SERVICES, "default", "gw", 0, NULL, NULL, "test", NULL, NULL) >= 0);
        sim_store_unlock(e->store);
        sim_env_settle(e);
        sim_store_lock(e->store);
        assert_null(sim_store_get(e->store, &SIM_ENDPOINTS, "default", "gw"));
        sim_store_unlock(e->store);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_endpoints, sim_env_setup, sim_env_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
