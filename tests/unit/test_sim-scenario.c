/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Scenario loading: the example files load and converge (pods Ready,
 * ztunnel mid-upgrade, sidecar injection by namespace/tag revision), and
 * bad input is refused with the field path and its line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "controllers-internal.h"
#include "meshroll/json-util.h"
#include "meshroll/time-util.h"
#include "scenario.h"
#include "store.h"

typedef struct Env {
        MrFakeClock fake;
        SimClock clock;
        SimStore *store;
        SimControllers *ctl;
        SimFaults faults;
} Env;

static int setup(void **state)
{
        Env *e = calloc(1, sizeof *e);
        assert_non_null(e);
        mr_fake_clock_init(&e->fake, 1000 * USEC_PER_SEC, 1767225600 * USEC_PER_SEC);
        sim_clock_init(&e->clock, &e->fake.clock, 1.0);
        assert_int_equal(sim_store_new(&e->clock, -1, &e->store), 0);
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

static void run_for(Env *e, usec_t d)
{
        usec_t target = sim_store_now(e->store) + d;
        assert_int_equal(sim_controllers_settle(e->ctl, 500), 0);
        for (int i = 0; i < 10000; i++) {
                usec_t next = sim_controllers_next_due(e->ctl), now = sim_store_now(e->store);
                if (next == USEC_INFINITY || next > target)
                        break;
                if (next > now)
                        e->fake.monotonic += next - now;
                assert_int_equal(sim_controllers_settle(e->ctl, 500), 0);
        }
        usec_t now = sim_store_now(e->store);
        if (target > now)
                e->fake.monotonic += target - now;
        assert_int_equal(sim_controllers_settle(e->ctl, 500), 0);
}

static void load_example(Env *e, const char *file)
{
        char path[1024];
        const char *data = getenv("MESHROLL_TEST_DATA");
        MrError err = {};
        assert_non_null(data);
        snprintf(path, sizeof path, "%s/../../../sim/scenarios/%s", data, file);
        int r = sim_scenario_load_file(e->store, path, &e->faults, &err);
        if (r < 0)
                fail_msg("%s", err.message);
        SimControllersOptions o = { .seed = 1 };
        assert_int_equal(sim_controllers_new_manual(e->store, &o, &e->ctl), 0);
}

typedef struct Pods {
        int total, ready;
        char rev[64];
        bool any_sidecar;
} Pods;

static int count(json_object *pod, void *u)
{
        Pods *p = u;
        p->total++;
        p->ready += sim_pod_is_ready(pod);
        const char *rev = mr_json_get_str(pod, "metadata", "annotations", "istio.io/rev", NULL);
        if (rev)
                snprintf(p->rev, sizeof p->rev, "%s", rev);
        p->any_sidecar |= mr_json_get_str(pod, "metadata", "annotations", "sidecar.istio.io/status", NULL) != NULL;
        return 0;
}

static Pods pods_in(Env *e, const char *ns)
{
        Pods p = {};
        sim_store_lock(e->store);
        assert_int_equal(sim_store_foreach(e->store, &SIM_PODS, ns, count, &p), 0);
        sim_store_unlock(e->store);
        return p;
}

static int64_t ds_status(Env *e, const char *field)
{
        int64_t v = -1;
        sim_store_lock(e->store);
        (void)mr_json_get_int(&v, sim_store_get(e->store, &SIM_DAEMONSETS, "istio-system", "ztunnel"), "status", field, NULL);
        sim_store_unlock(e->store);
        return v;
}

static void test_small(void **state)
{
        Env *e = *state;
        load_example(e, "small.yaml");
        assert_int_equal(sim_store_count(e->store, &SIM_NODES, NULL), 3);
        sim_store_lock(e->store);
        json_object *n = sim_store_get(e->store, &SIM_NODES, NULL, "b-1");
        assert_non_null(n);
        assert_string_equal(mr_json_get_str(n, "metadata", "labels", "meshroll.io/pool", NULL), "b");
        assert_string_equal(mr_json_get_str(n, "metadata", "labels", "topology.kubernetes.io/zone", NULL), "zone-b");
        assert_string_equal(mr_json_get_str(n, "status", "allocatable", "cpu", NULL), "16");
        json_object *tag = sim_store_get(e->store, &SIM_MUTATINGWEBHOOKS, NULL, "istio-revision-tag-prod-stable");
        assert_string_equal(mr_json_get_str(tag, "metadata", "labels", "istio.io/rev", NULL), "1-24-0");
        sim_store_unlock(e->store);

        run_for(e, 30 * USEC_PER_SEC);
        Pods shop = pods_in(e, "shop");
        assert_int_equal(shop.total, 3);
        assert_int_equal(shop.ready, 3);
        assert_false(shop.any_sidecar); /* ambient: no injection */
        Pods legacy = pods_in(e, "legacy");
        assert_int_equal(legacy.ready, 2);
        assert_string_equal(legacy.rev, "1-24-0"); /* via the prod-stable tag */
        Pods sys = pods_in(e, "istio-system");
        assert_int_equal(sys.total, 5); /* two istiod, three ztunnel */
        assert_int_equal(sys.ready, 5);

        /* ztunnel is mid-upgrade: every pod old, template at the pending revision. */
        assert_int_equal(ds_status(e, "desiredNumberScheduled"), 3);
        assert_int_equal(ds_status(e, "numberAvailable"), 3);
        assert_int_equal(ds_status(e, "updatedNumberScheduled"), -1); /* omitted when 0 */
        assert_int_equal(ds_status(e, "observedGeneration"), 2);
        assert_int_equal(sim_store_count(e->store, &SIM_CONTROLLERREVISIONS, "istio-system"), 2);

        /* Move the tag to 1-25-0 and restart: new pods are injected by the new revision. */
        sim_store_lock(e->store);
        json_object *t = mr_json_copy(sim_store_get(e->store, &SIM_MUTATINGWEBHOOKS, NULL, "istio-revision-tag-prod-stable"));
        mr_json_set_str(mr_json_get(t, "metadata", "labels", NULL), "istio.io/rev", "1-25-0");
        assert_int_equal(sim_store_update(e->store, &SIM_MUTATINGWEBHOOKS, t, 0, "test", NULL, NULL), 0);
        json_object *d = mr_json_copy(sim_store_get(e->store, &SIM_DEPLOYMENTS, "legacy", "api"));
        mr_json_set_str(mr_json_ensure_object(d, "spec", "template", "metadata", "annotations", NULL),
                        "kubectl.kubernetes.io/restartedAt", "2026-01-01T01:00:00Z");
        assert_int_equal(sim_store_update(e->store, &SIM_DEPLOYMENTS, d, 0, "test", NULL, NULL), 0);
        sim_store_unlock(e->store);
        run_for(e, 60 * USEC_PER_SEC);
        legacy = pods_in(e, "legacy");
        assert_int_equal(legacy.total, 2);
        assert_string_equal(legacy.rev, "1-25-0");

        /* The Service has endpoints for the ready pods. */
        sim_store_lock(e->store);
        json_object *ep = sim_store_get(e->store, &SIM_ENDPOINTS, "shop", "web");
        json_object *addrs = mr_json_get(json_object_array_get_idx(mr_json_get(ep, "subsets", NULL), 0), "addresses", NULL);
        assert_int_equal(json_object_array_length(addrs), 3);
        sim_store_unlock(e->store);
}

static void test_demo(void **state)
{
        Env *e = *state;
        load_example(e, "demo.yaml");
        assert_int_equal(sim_store_count(e->store, &SIM_NODES, NULL), 12);
        assert_int_equal(e->faults.latency[SIM_VERB_LIST], 20 * USEC_PER_MSEC);
        run_for(e, 60 * USEC_PER_SEC);
        assert_int_equal(pods_in(e, "shop").ready, 10);
        assert_int_equal(ds_status(e, "desiredNumberScheduled"), 12);
        assert_int_equal(ds_status(e, "numberAvailable"), 12);
        Pods gw = pods_in(e, "istio-ingress");
        assert_int_equal(gw.ready, 4);
        assert_true(gw.any_sidecar);
}

static void expect_error(Env *e, const char *yaml, const char *message)
{
        MrError err = {};
        int r = sim_scenario_load_data(e->store, yaml, strlen(yaml), "t.yaml", NULL, &err);
        assert_true(r < 0);
        if (!strstr(err.message, message))
                fail_msg("got \"%s\", want \"%s\"", err.message, message);
}

static void test_errors(void **state)
{
        Env *e = *state;
        expect_error(e, "nodes:\n  - name: a\n    count: x\n", "t.yaml: line 3: nodes[0].count: expected an integer");
        expect_error(e, "nodes:\n  - name: a\n  - labels: [1]\n", "t.yaml: line 3: nodes[1].labels: expected a mapping");
        expect_error(e, "nodes:\n  - count: 3\n    name: fixed\n", "nodes[0].name: a pattern for several nodes needs {i} or {n}");
        expect_error(e, "workloads:\n  - name: w\n    pdb: {minAvailable: 1, maxUnavailable: 1}\n",
                     "line 3: workloads[0].pdb: exactly one of minAvailable and maxUnavailable");
        expect_error(e, "workloads:\n  - name: w\n    strategy: {maxSurge: \"x%\"}\n",
                     "workloads[0].strategy.maxSurge: expected a non-negative integer or a percentage");
        expect_error(e, "workloads:\n  - name: w\n    kind: StatefulSet\n", "line 3: workloads[0].kind: expected Deployment or DaemonSet");
        expect_error(e, "istio:\n  revisions: [{name: a}]\n  tags: {default: b}\n",
                     "istio.tags.default: no revision \"b\" in istio.revisions");
        expect_error(e, "faults:\n  errorRate: {fetch: 0.1}\n", "line 2: faults.errorRate.fetch: unknown verb");
        expect_error(e, "faults:\n  errorRate: {get: 2}\n", "faults.errorRate.get: expected a rate from 0 to 1");
        expect_error(e, "nodez: []\n", "t.yaml: line 1: nodez: unknown field");
        expect_error(e, "objects:\n  - {apiVersion: v9, kind: Nope, metadata: {name: x}}\n", "objects[0]: no kind Nope in v9");
        expect_error(e, "a: [\n", "t.yaml: ");
        expect_error(e, "- 1\n", "expected a mapping at the top level");
}

/* Capacity numbers are stored as quantity strings; taints are kept as written. */
static void test_node_capacity_taints(void **state)
{
        Env *e = *state;
        static const char yaml[] = "nodes:\n  - name: a\n    capacity: {cpu: 4, memory: 16Gi, pods: 20}\n"
                                   "    taints: [{key: dedicated, value: db, effect: NoSchedule}]\n";
        MrError err = {};
        if (sim_scenario_load_data(e->store, yaml, strlen(yaml), "t.yaml", NULL, &err) < 0)
                fail_msg("%s", err.message);
        sim_store_lock(e->store);
        json_object *n = sim_store_get(e->store, &SIM_NODES, NULL, "a");
        assert_string_equal(mr_json_get_str(n, "status", "capacity", "cpu", NULL), "4");
        assert_string_equal(mr_json_get_str(n, "status", "allocatable", "pods", NULL), "20");
        assert_string_equal(mr_json_get_str(n, "status", "capacity", "memory", NULL), "16Gi");
        json_object *t = json_object_array_get_idx(mr_json_get(n, "spec", "taints", NULL), 0);
        assert_string_equal(mr_json_get_str(t, "effect", NULL), "NoSchedule");
        assert_string_equal(mr_json_get_str(t, "value", NULL), "db");
        sim_store_unlock(e->store);
}

static void test_objects_and_faults(void **state)
{
        Env *e = *state;
        const char *yaml = "objects:\n"
                           "  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: cfg, namespace: apps}\n    data: {a: b}\n"
                           "faults:\n"
                           "  errorRate: {patch: 0.25}\n  errorCode: {patch: 429}\n  latency: {get: 50ms}\n"
                           "  dropWatchesAfter: 30s\n  conflictRate: 0.1\n  neverReadyImages: [ztunnel:bad]\n";
        MrError err = {};
        SimFaults f;
        assert_int_equal(sim_scenario_load_data(e->store, yaml, strlen(yaml), "t.yaml", &f, &err), 0);
        assert_true(f.error_rate[SIM_VERB_PATCH] == 0.25);
        assert_int_equal(f.error_code[SIM_VERB_PATCH], 429);
        assert_int_equal(f.latency[SIM_VERB_GET], 50 * USEC_PER_MSEC);
        assert_int_equal(f.watch_drop_after, 30 * USEC_PER_SEC);
        assert_true(f.conflict_rate == 0.1);
        sim_store_lock(e->store);
        assert_non_null(sim_store_get(e->store, &SIM_CONFIGMAPS, "apps", "cfg"));
        assert_non_null(sim_store_get(e->store, &SIM_NAMESPACES, NULL, "apps"));
        assert_string_equal(mr_json_get_str(sim_store_get(e->store, &SIM_CONFIGMAPS, "kube-system", "kubesim-faults"), "data",
                                            "neverReadyImages", NULL),
                            "ztunnel:bad");
        sim_store_unlock(e->store);
        assert_int_equal(sim_verb_from_string("watch"), SIM_VERB_WATCH);
        assert_int_equal(sim_verb_from_string("x"), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_small, setup, teardown),
                cmocka_unit_test_setup_teardown(test_demo, setup, teardown),
                cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_node_capacity_taints, setup, teardown),
                cmocka_unit_test_setup_teardown(test_objects_and_faults, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
