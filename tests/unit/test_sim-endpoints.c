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
#include "store.h"

/* Shared-by-copy test harness: a store on a fake clock and manual controllers. */
typedef struct Env {
        MrFakeClock fake;
        SimClock clock;
        SimStore *store;
        SimControllers *ctl;
} Env;

static int setup(void **state)
{
        Env *e = calloc(1, sizeof *e);
        assert_non_null(e);
        mr_fake_clock_init(&e->fake, 1000 * USEC_PER_SEC, 1767225600 * USEC_PER_SEC);
        sim_clock_init(&e->clock, &e->fake.clock, 1.0);
        assert_int_equal(sim_store_new(&e->clock, -1, &e->store), 0);
        SimControllersOptions o = { .seed = 5 };
        assert_int_equal(sim_controllers_new_manual(e->store, &o, &e->ctl), 0);
        *state = e;
        return 0;
}

static int teardown(void **state)
{
        Env *e = *state;
        sim_controllers_stop(e->ctl);
        sim_store_free(e->store);
        free(e);
        return 0;
}

static void settle(Env *e)
{
        assert_int_equal(sim_controllers_settle(e->ctl, 300), 0);
}

static void run_for(Env *e, usec_t d)
{
        usec_t target = sim_store_now(e->store) + d;
        settle(e);
        for (int i = 0; i < 10000; i++) {
                usec_t next = sim_controllers_next_due(e->ctl), now = sim_store_now(e->store);
                if (next == USEC_INFINITY || next > target)
                        break;
                if (next > now)
                        e->fake.monotonic += next - now;
                settle(e);
        }
        usec_t now = sim_store_now(e->store);
        if (target > now)
                e->fake.monotonic += target - now;
        settle(e);
}

static void create(Env *e, const SimKind *k, const char *json)
{
        json_object *o = NULL;
        MrError err = {};
        assert_int_equal(mr_json_parse(json, strlen(json), 1 << 20, &o), 0);
        sim_store_lock(e->store);
        int r = sim_store_create(e->store, k, o, "test", NULL, &err);
        sim_store_unlock(e->store);
        if (r < 0)
                fail_msg("create: %s", err.message);
}

static void add_node(Env *e, const char *name, const char *extra_spec, const char *alloc)
{
        char buf[1024];
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"%s\",\"labels\":{\"kubernetes.io/hostname\":"
                 "\"%s\",\"disk\":\"%s\"}},\"spec\":{%s},\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"10.1.0.%zu\"}],"
                 "\"allocatable\":%s}}",
                 name, name, strlen(name) % 2 ? "ssd" : "hdd", extra_spec ? extra_spec : "", strlen(name), alloc ? alloc : "{\"pods\":\"110\"}");
        create(e, &SIM_NODES, buf);
}

/* A borrowed copy of a stored object's field, under the lock. */
_unused_ static const char *field(Env *e, const SimKind *k, const char *ns, const char *name, const char *a, const char *b, const char *c)
{
        static char buf[512];
        sim_store_lock(e->store);
        const char *v = mr_json_get_str(sim_store_get(e->store, k, ns, name), a, b, c, NULL);
        snprintf(buf, sizeof buf, "%s", strempty(v));
        sim_store_unlock(e->store);
        return buf;
}

static void pod(Env *e, const char *name, const char *color, int startup)
{
        char buf[2048];
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\","
                 "\"labels\":{\"app\":\"gw\",\"color\":\"%s\"},\"annotations\":{\"sim.meshroll.io/startup-seconds\":\"%d\"}},"
                 "\"spec\":{\"nodeName\":\"n1\",\"containers\":[{\"name\":\"c\",\"image\":\"i\",\"ports\":[{\"name\":\"http\","
                 "\"containerPort\":8080}]}]}}",
                 name, color, startup);
        create(e, &SIM_PODS, buf);
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
        add_node(e, "n1", "\"podCIDR\":\"10.244.1.0/24\"", NULL);
        pod(e, "blue-1", "blue", 1);
        pod(e, "blue-2", "blue", 100);
        pod(e, "green-1", "green", 1);
        create(e, &SIM_SERVICES,
               "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"gw\",\"namespace\":\"default\"},"
               "\"spec\":{\"selector\":{\"app\":\"gw\",\"color\":\"blue\"},\"ports\":[{\"name\":\"http\",\"port\":80,"
               "\"targetPort\":\"http\"}]}}");
        run_for(e, 2 * USEC_PER_SEC);
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
        settle(e);
        assert_int_equal(count(e, "addresses"), 1);
        assert_int_equal(count(e, "notReadyAddresses"), 0);

        /* A terminating pod leaves at once. */
        sim_store_lock(e->store);
        assert_true(sim_store_delete(e->store, &SIM_PODS, "default", "green-1", 30, NULL, NULL, "test", NULL, NULL) >= 0);
        sim_store_unlock(e->store);
        settle(e);
        assert_int_equal(count(e, "addresses"), 0);
        sim_store_lock(e->store);
        assert_int_equal(json_object_array_length(mr_json_get(sim_store_get(e->store, &SIM_ENDPOINTS, "default", "gw"),
                                                               "subsets", NULL)),
                         0);
        /* The Service goes, its Endpoints go. */
        assert_true(sim_store_delete(e->store, &SIM_SERVICES, "default", "gw", 0, NULL, NULL, "test", NULL, NULL) >= 0);
        sim_store_unlock(e->store);
        settle(e);
        sim_store_lock(e->store);
        assert_null(sim_store_get(e->store, &SIM_ENDPOINTS, "default", "gw"));
        sim_store_unlock(e->store);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_endpoints, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
