/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PDB arithmetic (the disruption controller's getExpectedPodCount and
 * updatePdbStatus), table-driven, and the status the controller writes for
 * pods that are unhealthy, deleting or already disrupted.
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

static json_object *parse(const char *s)
{
        json_object *o = NULL;
        assert_int_equal(mr_json_parse(s, strlen(s), 1 << 16, &o), 0);
        return o;
}

static void test_compute_table(void **state)
{
        static const struct {
                const char *spec;
                int64_t pods, scale, healthy;
                int64_t expected, desired, allowed;
        } cases[] = {
                /* integer minAvailable: expected = matching pods */
                { "{\"minAvailable\":2}", 3, 3, 3, 3, 2, 1 },
                { "{\"minAvailable\":2}", 3, 3, 2, 3, 2, 0 },
                { "{\"minAvailable\":2}", 3, -1, 3, 3, 2, 1 }, /* no scale needed */
                { "{\"minAvailable\":0}", 2, 2, 2, 2, 0, 2 },
                { "{\"minAvailable\":5}", 3, 3, 3, 3, 5, 0 },
                /* percentage minAvailable: expected = scale, rounded up */
                { "{\"minAvailable\":\"50%\"}", 3, 3, 3, 3, 2, 1 },
                { "{\"minAvailable\":\"50%\"}", 4, 5, 4, 5, 3, 1 },
                { "{\"minAvailable\":\"100%\"}", 3, 3, 3, 3, 3, 0 },
                { "{\"minAvailable\":\"1%\"}", 10, 10, 10, 10, 1, 9 },
                /* maxUnavailable (int or %): desired = scale - ceil(max) */
                { "{\"maxUnavailable\":1}", 3, 3, 3, 3, 2, 1 },
                { "{\"maxUnavailable\":1}", 3, 3, 2, 3, 2, 0 },
                { "{\"maxUnavailable\":\"25%\"}", 4, 4, 4, 4, 3, 1 },
                { "{\"maxUnavailable\":\"25%\"}", 5, 5, 5, 5, 3, 2 }, /* ceil(1.25) = 2 */
                { "{\"maxUnavailable\":\"30%\"}", 1, 1, 1, 1, 0, 1 },
                { "{\"maxUnavailable\":5}", 3, 3, 3, 3, 0, 3 },       /* desired never below 0 */
                { "{\"maxUnavailable\":0}", 3, 3, 3, 3, 3, 0 },
                /* no pods: nothing allowed */
                { "{\"maxUnavailable\":1}", 0, 0, 0, 0, 0, 0 },
                { "{\"minAvailable\":0}", 0, 0, 0, 0, 0, 0 },
                /* neither: expected 0 */
                { "{}", 3, 3, 3, 0, 0, 0 },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(json_object_putp) json_object *spec = parse(cases[i].spec);
                SimPdbCounts c;
                MrError err = {};
                int r = sim_pdb_compute(spec, cases[i].pods, cases[i].scale, cases[i].healthy, &c, &err);
                if (r < 0)
                        fail_msg("case %zu: %s", i, err.message);
                if (c.expected_pods != cases[i].expected || c.desired_healthy != cases[i].desired ||
                    c.disruptions_allowed != cases[i].allowed || c.current_healthy != cases[i].healthy)
                        fail_msg("case %zu (%s): expected=%lld desired=%lld allowed=%lld", i, cases[i].spec,
                                 (long long)c.expected_pods, (long long)c.desired_healthy, (long long)c.disruptions_allowed);
        }
}

static void test_compute_errors(void **state)
{
        static const char *const bad[] = {
                "{\"maxUnavailable\":\"x\"}", "{\"maxUnavailable\":\"5\"}", "{\"minAvailable\":\"a%\"}",
                "{\"minAvailable\":\"%\"}", "{\"maxUnavailable\":true}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(json_object_putp) json_object *spec = parse(bad[i]);
                SimPdbCounts c;
                assert_int_equal(sim_pdb_compute(spec, 3, 3, 3, &c, NULL), -EINVAL);
        }
        /* A percentage or maxUnavailable needs the controllers' scale. */
        _cleanup_(json_object_putp) json_object *spec = parse("{\"maxUnavailable\":1}");
        SimPdbCounts c;
        MrError err = {};
        assert_int_equal(sim_pdb_compute(spec, 3, -1, 3, &c, &err), -EINVAL);
}

static void test_intstr(void **state)
{
        int64_t v;
        _cleanup_(json_object_putp) json_object *p = json_object_new_string("25%"), *i = json_object_new_int(3);
        assert_int_equal(sim_intstr_scaled(p, 10, true, 0, &v), 0);
        assert_int_equal(v, 3);
        assert_int_equal(sim_intstr_scaled(p, 10, false, 0, &v), 0);
        assert_int_equal(v, 2);
        assert_int_equal(sim_intstr_scaled(i, 10, true, 0, &v), 0);
        assert_int_equal(v, 3);
        assert_int_equal(sim_intstr_scaled(NULL, 10, true, 7, &v), 0);
        assert_int_equal(v, 7);
}

/* The controller on a store: unhealthy, deleting and disrupted pods do not count as healthy. */
typedef struct Env {
        MrFakeClock fake;
        SimClock clock;
        SimStore *store;
} Env;

static void add(Env *e, const SimKind *k, const char *json)
{
        MrError err = {};
        if (sim_store_create(e->store, k, parse(json), "test", NULL, &err) < 0)
                fail_msg("%s", err.message);
}

static void add_pod(Env *e, const char *name, bool ready)
{
        char buf[1024];
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"shop\","
                 "\"labels\":{\"app\":\"web\"},\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\","
                 "\"name\":\"web-1\",\"uid\":\"%s\",\"controller\":true}]},\"spec\":{\"nodeName\":\"n1\",\"containers\":[]},"
                 "\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"%s\"}]}}",
                 name, mr_json_get_str(sim_store_get(e->store, &SIM_REPLICASETS, "shop", "web-1"), "metadata", "uid", NULL),
                 ready ? "True" : "False");
        add(e, &SIM_PODS, buf);
}

static int64_t st(Env *e, const char *field)
{
        int64_t v = -1;
        (void)mr_json_get_int(&v, sim_store_get(e->store, &SIM_PDBS, "shop", "web"), "status", field, NULL);
        return v;
}

static void test_controller_status(void **state)
{
        Env e = {};
        usec_t due;
        char ts[KUBE_TIME_MAX];
        mr_fake_clock_init(&e.fake, 1000 * USEC_PER_SEC, 1767225600 * USEC_PER_SEC);
        sim_clock_init(&e.clock, &e.fake.clock, 1.0);
        assert_int_equal(sim_store_new(&e.clock, -1, &e.store), 0);
        sim_store_lock(e.store);
        add(&e, &SIM_NAMESPACES, "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"shop\"}}");
        add(&e, &SIM_DEPLOYMENTS,
            "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\"},"
            "\"spec\":{\"replicas\":4,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},\"template\":{}}}");
        const char *duid = mr_json_get_str(sim_store_get(e.store, &SIM_DEPLOYMENTS, "shop", "web"), "metadata", "uid", NULL);
        char buf[1024];
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\",\"metadata\":{\"name\":\"web-1\",\"namespace\":\"shop\","
                 "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"name\":\"web\",\"uid\":\"%s\","
                 "\"controller\":true}]},\"spec\":{\"replicas\":4,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},\"template\":{}}}",
                 duid);
        add(&e, &SIM_REPLICASETS, buf);
        add_pod(&e, "a", true);
        add_pod(&e, "b", true);
        add_pod(&e, "c", true);
        add_pod(&e, "d", false);
        add(&e, &SIM_PDBS,
            "{\"apiVersion\":\"policy/v1\",\"kind\":\"PodDisruptionBudget\",\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\"},"
            "\"spec\":{\"maxUnavailable\":\"25%\",\"selector\":{\"matchLabels\":{\"app\":\"web\"}}}}");

        assert_int_equal(sim_pdb_sync(e.store, "shop", "web", sim_store_now(e.store), &due), 0);
        assert_int_equal(st(&e, "expectedPods"), 4); /* the Deployment's scale */
        assert_int_equal(st(&e, "desiredHealthy"), 3);
        assert_int_equal(st(&e, "currentHealthy"), 3); /* d is not Ready */
        assert_int_equal(st(&e, "disruptionsAllowed"), 0);
        assert_int_equal(st(&e, "observedGeneration"), 1);
        assert_int_equal(due, 0);

        /* A disrupted pod (recorded by an eviction) is not healthy for two minutes. */
        json_object *pdb = mr_json_copy(sim_store_get(e.store, &SIM_PDBS, "shop", "web"));
        json_object *dp = mr_json_ensure_object(pdb, "status", "disruptedPods", NULL);
        mr_json_set_str(dp, "a", kube_time_format(sim_store_now(e.store), ts));
        mr_json_set_str(dp, "gone", kube_time_format(sim_store_now(e.store), ts));
        assert_int_equal(sim_store_update(e.store, &SIM_PDBS, pdb, SIM_UPDATE_STATUS, "test", NULL, NULL), 0);
        assert_int_equal(sim_pdb_sync(e.store, "shop", "web", sim_store_now(e.store), &due), 0);
        assert_int_equal(st(&e, "currentHealthy"), 2);
        assert_int_equal(due, sim_store_now(e.store) / USEC_PER_SEC * USEC_PER_SEC + SIM_PDB_DELETION_TIMEOUT);
        json_object *kept = mr_json_get(sim_store_get(e.store, &SIM_PDBS, "shop", "web"), "status", "disruptedPods", NULL);
        assert_non_null(mr_json_get(kept, "a", NULL));
        assert_null(mr_json_get(kept, "gone", NULL)); /* no such pod: dropped */
        e.fake.monotonic += SIM_PDB_DELETION_TIMEOUT + USEC_PER_SEC;
        assert_int_equal(sim_pdb_sync(e.store, "shop", "web", sim_store_now(e.store), &due), 0);
        assert_int_equal(st(&e, "currentHealthy"), 3);
        assert_null(mr_json_get(sim_store_get(e.store, &SIM_PDBS, "shop", "web"), "status", "disruptedPods", NULL));

        /* A deleting pod is not healthy either. */
        assert_true(sim_store_delete(e.store, &SIM_PODS, "shop", "b", 30, NULL, NULL, "test", NULL, NULL) >= 0);
        assert_int_equal(sim_pdb_sync(e.store, "shop", "web", sim_store_now(e.store), &due), 0);
        assert_int_equal(st(&e, "currentHealthy"), 2);

        /* DaemonSet pods have no scale: the sync fails safe (0 allowed, SyncFailed). */
        add(&e, &SIM_PDBS,
            "{\"apiVersion\":\"policy/v1\",\"kind\":\"PodDisruptionBudget\",\"metadata\":{\"name\":\"ds\",\"namespace\":\"shop\"},"
            "\"spec\":{\"maxUnavailable\":1,\"selector\":{\"matchLabels\":{\"app\":\"ds\"}}}}");
        add(&e, &SIM_PODS,
            "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"ds-x\",\"namespace\":\"shop\",\"labels\":{\"app\":\"ds\"},"
            "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"DaemonSet\",\"name\":\"zt\",\"uid\":\"u\",\"controller\":true}]},"
            "\"spec\":{\"containers\":[]},\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}");
        assert_int_equal(sim_pdb_sync(e.store, "shop", "ds", sim_store_now(e.store), &due), 0);
        json_object *ds = sim_store_get(e.store, &SIM_PDBS, "shop", "ds");
        int64_t v = -1;
        assert_int_equal(mr_json_get_int(&v, ds, "status", "disruptionsAllowed", NULL), 0);
        assert_int_equal(v, 0);
        assert_int_equal(mr_json_get_int(&v, ds, "status", "observedGeneration", NULL), -ENOENT);
        json_object *cond = json_object_array_get_idx(mr_json_get(ds, "status", "conditions", NULL), 0);
        assert_string_equal(mr_json_get_str(cond, "reason", NULL), "SyncFailed");
        assert_string_equal(mr_json_get_str(cond, "message", NULL), "found no controllers for pod \"ds-x\"");
        sim_store_unlock(e.store);
        sim_store_free(e.store);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_compute_table),
                cmocka_unit_test(test_compute_errors),
                cmocka_unit_test(test_intstr),
                cmocka_unit_test(test_controller_status),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
