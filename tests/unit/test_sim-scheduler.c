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
static const char *field(Env *e, const SimKind *k, const char *ns, const char *name, const char *a, const char *b, const char *c)
{
        static char buf[512];
        sim_store_lock(e->store);
        const char *v = mr_json_get_str(sim_store_get(e->store, k, ns, name), a, b, c, NULL);
        snprintf(buf, sizeof buf, "%s", strempty(v));
        sim_store_unlock(e->store);
        return buf;
}

static void pod(Env *e, const char *name, const char *spec)
{
        char buf[2048];
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\"},"
                 "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]%s%s}}",
                 name, spec ? "," : "", spec ? spec : "");
        create(e, &SIM_PODS, buf);
}

static void test_spread(void **state)
{
        Env *e = *state;
        add_node(e, "n1", NULL, NULL);
        add_node(e, "n2", NULL, NULL);
        pod(e, "a", NULL);
        pod(e, "b", NULL);
        pod(e, "c", NULL);
        settle(e);
        int on1 = 0;
        for (const char *p = "abc"; *p; p++) {
                char name[2] = { *p, 0 };
                const char *node = field(e, &SIM_PODS, "default", name, "spec", "nodeName", NULL);
                assert_true(streq(node, "n1") || streq(node, "n2"));
                on1 += streq(node, "n1");
        }
        assert_true(on1 == 1 || on1 == 2); /* spread, not stacked */
}

static void test_taints(void **state)
{
        Env *e = *state;
        add_node(e, "n1", "\"taints\":[{\"key\":\"dedicated\",\"value\":\"db\",\"effect\":\"NoSchedule\"}]", NULL);
        pod(e, "plain", NULL);
        pod(e, "tolerant", "\"tolerations\":[{\"key\":\"dedicated\",\"operator\":\"Equal\",\"value\":\"db\",\"effect\":\"NoSchedule\"}]");
        settle(e);
        assert_string_equal(field(e, &SIM_PODS, "default", "plain", "spec", "nodeName", NULL), "");
        assert_string_equal(field(e, &SIM_PODS, "default", "tolerant", "spec", "nodeName", NULL), "n1");
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
        add_node(e, "n1", NULL, NULL);
        cordon(e, "n1");
        settle(e); /* the lifecycle controller taints it */
        pod(e, "web", NULL);
        pod(e, "agent", "\"tolerations\":[{\"key\":\"node.kubernetes.io/unschedulable\",\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}]");
        settle(e);
        assert_string_equal(field(e, &SIM_PODS, "default", "web", "spec", "nodeName", NULL), "");
        assert_string_equal(field(e, &SIM_PODS, "default", "agent", "spec", "nodeName", NULL), "n1");
}

static void test_selector_and_affinity(void **state)
{
        Env *e = *state;
        add_node(e, "n1", NULL, NULL); /* label disk=hdd (see add_node) */
        add_node(e, "n22", NULL, NULL); /* disk=ssd */
        pod(e, "sel", "\"nodeSelector\":{\"disk\":\"ssd\"}");
        pod(e, "aff", "\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":{\"nodeSelectorTerms\":"
                      "[{\"matchExpressions\":[{\"key\":\"disk\",\"operator\":\"NotIn\",\"values\":[\"ssd\"]}]}]}}}");
        pod(e, "field", "\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":{\"nodeSelectorTerms\":"
                        "[{\"matchFields\":[{\"key\":\"metadata.name\",\"operator\":\"In\",\"values\":[\"n22\"]}]}]}}}");
        pod(e, "none", "\"nodeSelector\":{\"disk\":\"nvme\"}");
        settle(e);
        assert_string_equal(field(e, &SIM_PODS, "default", "sel", "spec", "nodeName", NULL), "n22");
        assert_string_equal(field(e, &SIM_PODS, "default", "aff", "spec", "nodeName", NULL), "n1");
        assert_string_equal(field(e, &SIM_PODS, "default", "field", "spec", "nodeName", NULL), "n22");
        assert_string_equal(field(e, &SIM_PODS, "default", "none", "spec", "nodeName", NULL), "");
}

#define REQ(cpu) "\"containers\":[{\"name\":\"c\",\"image\":\"i\",\"resources\":{\"requests\":{\"cpu\":\"" cpu "\",\"memory\":\"1Gi\"}}}]"

static void big_pod(Env *e, const char *name)
{
        char buf[1024];
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\"},\"spec\":{" REQ("600m") "}}",
                 name);
        create(e, &SIM_PODS, buf);
}

static void test_capacity(void **state)
{
        Env *e = *state;
        add_node(e, "n1", NULL, "{\"cpu\":\"1\",\"memory\":\"4Gi\",\"pods\":\"10\"}");
        big_pod(e, "a");
        settle(e);
        big_pod(e, "b");
        settle(e);
        assert_string_equal(field(e, &SIM_PODS, "default", "a", "spec", "nodeName", NULL), "n1");
        assert_string_equal(field(e, &SIM_PODS, "default", "b", "spec", "nodeName", NULL), "");
        sim_store_lock(e->store);
        json_object *cond = json_object_array_get_idx(
                mr_json_get(sim_store_get(e->store, &SIM_PODS, "default", "b"), "status", "conditions", NULL), 0);
        assert_string_equal(mr_json_get_str(cond, "message", NULL), "0/1 nodes are available: 1 Insufficient cpu.");
        /* a goes away: b fits now */
        assert_true(sim_store_delete(e->store, &SIM_PODS, "default", "a", 0, NULL, NULL, "test", NULL, NULL) >= 0);
        sim_store_unlock(e->store);
        run_for(e, 5 * USEC_PER_SEC);
        assert_string_equal(field(e, &SIM_PODS, "default", "b", "spec", "nodeName", NULL), "n1");
}

static void test_pod_count(void **state)
{
        Env *e = *state;
        add_node(e, "n1", NULL, "{\"pods\":\"2\"}");
        pod(e, "a", NULL);
        pod(e, "b", NULL);
        pod(e, "c", NULL);
        settle(e);
        int bound = 0;
        for (const char *p = "abc"; *p; p++) {
                char name[2] = { *p, 0 };
                bound += streq(field(e, &SIM_PODS, "default", name, "spec", "nodeName", NULL), "n1");
        }
        assert_int_equal(bound, 2);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_spread, setup, teardown),
                cmocka_unit_test_setup_teardown(test_taints, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cordoned_node_refused_but_daemon_tolerates, setup, teardown),
                cmocka_unit_test_setup_teardown(test_selector_and_affinity, setup, teardown),
                cmocka_unit_test_setup_teardown(test_capacity, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pod_count, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
