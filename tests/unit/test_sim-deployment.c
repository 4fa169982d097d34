/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Deployments and ReplicaSets beyond the end-to-end tests: scaling (not
 * Ready pods deleted first), Recreate, the progress deadline with an image
 * that never gets Ready, and garbage collection of ReplicaSets and pods
 * when the Deployment is deleted.
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

static void deployment(Env *e, int replicas, const char *strategy, const char *extra_ann, int deadline)
{
        char buf[2048];
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\",\"namespace\":\"default\"},"
                 "\"spec\":{\"replicas\":%d,\"progressDeadlineSeconds\":%d,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"
                 "\"strategy\":%s,\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"},\"annotations\":{"
                 "\"sim.meshroll.io/startup-seconds\":\"2\"%s}},\"spec\":{\"containers\":[{\"name\":\"w\",\"image\":\"web:1\"}]}}}}",
                 replicas, deadline, strategy, extra_ann);
        sim_env_create(e, &SIM_DEPLOYMENTS, buf);
}

typedef struct Count {
        int total, ready, deleting;
} Count;

static int count_pod(json_object *pod, void *u)
{
        Count *c = u;
        if (sim_obj_is_deleting(pod)) {
                c->deleting++;
                return 0;
        }
        c->total++;
        c->ready += sim_pod_is_ready(pod);
        return 0;
}

static Count pods(Env *e)
{
        Count c = {};
        sim_store_lock(e->store);
        assert_int_equal(sim_store_foreach(e->store, &SIM_PODS, "default", count_pod, &c), 0);
        sim_store_unlock(e->store);
        return c;
}

static void patch_spec(Env *e, const char *key, json_object *v)
{
        sim_store_lock(e->store);
        json_object *d = mr_json_copy(sim_store_get(e->store, &SIM_DEPLOYMENTS, "default", "web"));
        json_object_object_add(mr_json_get(d, "spec", NULL), key, v);
        assert_int_equal(sim_store_update(e->store, &SIM_DEPLOYMENTS, d, 0, "test", NULL, NULL), 0);
        sim_store_unlock(e->store);
}

static void restart(Env *e, const char *image)
{
        sim_store_lock(e->store);
        json_object *d = mr_json_copy(sim_store_get(e->store, &SIM_DEPLOYMENTS, "default", "web"));
        json_object *c = json_object_array_get_idx(mr_json_get(d, "spec", "template", "spec", "containers", NULL), 0);
        mr_json_set_str(c, "image", image);
        assert_int_equal(sim_store_update(e->store, &SIM_DEPLOYMENTS, d, 0, "test", NULL, NULL), 0);
        sim_store_unlock(e->store);
}

static const char *condition(Env *e, const char *type, const char *what)
{
        static char buf[256];
        buf[0] = 0;
        sim_store_lock(e->store);
        json_object *conds = mr_json_get(sim_store_get(e->store, &SIM_DEPLOYMENTS, "default", "web"), "status", "conditions", NULL);
        for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
                json_object *c = json_object_array_get_idx(conds, i);
                if (streq_ptr(mr_json_get_str(c, "type", NULL), type))
                        snprintf(buf, sizeof buf, "%s", strempty(mr_json_get_str(c, what, NULL)));
        }
        sim_store_unlock(e->store);
        return buf;
}

static void test_scale(void **state)
{
        Env *e = *state;
        sim_env_add_node(e, "n1", NULL, NULL);
        deployment(e, 3, "{\"type\":\"RollingUpdate\"}", "", 600);
        sim_env_run_for(e, 5 * USEC_PER_SEC);
        assert_int_equal(pods(e).ready, 3);
        patch_spec(e, "replicas", json_object_new_int(5));
        sim_env_settle(e);
        assert_int_equal(pods(e).total, 5);
        assert_int_equal(pods(e).ready, 3);
        /* Scaling down before the new ones are Ready removes those first. */
        patch_spec(e, "replicas", json_object_new_int(3));
        sim_env_settle(e);
        Count c = pods(e);
        assert_int_equal(c.total, 3);
        assert_int_equal(c.ready, 3);
        assert_int_equal(c.deleting, 2);
        assert_string_equal(condition(e, "Available", "status"), "True");
}

static void test_recreate(void **state)
{
        Env *e = *state;
        sim_env_add_node(e, "n1", NULL, NULL);
        deployment(e, 2, "{\"type\":\"Recreate\"}", "", 600);
        sim_env_run_for(e, 5 * USEC_PER_SEC);
        restart(e, "web:2");
        sim_env_settle(e);
        Count c = pods(e);
        assert_int_equal(c.total, 0); /* everything old goes first */
        assert_int_equal(c.deleting, 2);
        sim_env_run_for(e, 10 * USEC_PER_SEC);
        c = pods(e);
        assert_int_equal(c.total, 2);
        assert_int_equal(c.ready, 2);
        assert_string_equal(condition(e, "Progressing", "reason"), "NewReplicaSetAvailable");
}

static void test_progress_deadline(void **state)
{
        Env *e = *state;
        sim_env_add_node(e, "n1", NULL, NULL);
        deployment(e, 2, "{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"maxSurge\":1,\"maxUnavailable\":0}}", "", 30);
        sim_env_run_for(e, 5 * USEC_PER_SEC);
        /* The new template never gets Ready: the rollout stalls at one surge pod and times out. */
        sim_store_lock(e->store);
        json_object *d = mr_json_copy(sim_store_get(e->store, &SIM_DEPLOYMENTS, "default", "web"));
        mr_json_set_str(mr_json_get(d, "spec", "template", "metadata", "annotations", NULL), "sim.meshroll.io/never-ready", "true");
        assert_int_equal(sim_store_update(e->store, &SIM_DEPLOYMENTS, d, 0, "test", NULL, NULL), 0);
        sim_store_unlock(e->store);
        sim_env_run_for(e, 20 * USEC_PER_SEC);
        assert_string_equal(condition(e, "Progressing", "status"), "True");
        assert_int_equal(pods(e).ready, 2);
        sim_env_run_for(e, 40 * USEC_PER_SEC);
        assert_string_equal(condition(e, "Progressing", "reason"), "ProgressDeadlineExceeded");
        assert_string_equal(condition(e, "Progressing", "status"), "False");
        assert_int_equal(pods(e).ready, 2); /* maxUnavailable 0: the old pods stay */
}

static void test_gc(void **state)
{
        Env *e = *state;
        sim_env_add_node(e, "n1", NULL, NULL);
        deployment(e, 2, "{\"type\":\"RollingUpdate\"}", "", 600);
        sim_env_run_for(e, 5 * USEC_PER_SEC);
        sim_store_lock(e->store);
        assert_true(sim_store_delete(e->store, &SIM_DEPLOYMENTS, "default", "web", 0, NULL, NULL, "test", NULL, NULL) >= 0);
        sim_store_unlock(e->store);
        sim_env_run_for(e, 10 * USEC_PER_SEC);
        assert_int_equal(sim_store_count(e->store, &SIM_REPLICASETS, "default"), 0);
        assert_int_equal(sim_store_count(e->store, &SIM_PODS, "default"), 0);
}

/*
 * An object created with owners none of which exists is collected without
 * waiting for a resync (the collector is not resynced); one whose owner
 * exists but under another uid too; one with a live owner stays.
 */
static void test_gc_dangling_owner_at_create(void **state)
{
        Env *e = *state;
        char buf[1024];
        sim_env_create(e, &SIM_CONFIGMAPS, "{\"metadata\":{\"name\":\"owner\",\"namespace\":\"default\"}}");
        sim_env_settle(e); /* the first pass, which looks at everything, is over */
        sim_store_lock(e->store);
        const char *uid = mr_json_get_str(sim_store_get(e->store, &SIM_CONFIGMAPS, "default", "owner"), "metadata", "uid", NULL);
        char live_uid[64];
        snprintf(live_uid, sizeof live_uid, "%s", uid);
        sim_store_unlock(e->store);
        static const char *const cases[][3] = {
                {"orphan", "missing", "0000"},
                {"stale-uid", "owner", "0000"},
                {"kept", "owner", NULL},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                snprintf(buf, sizeof buf,
                         "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\",\"ownerReferences\":[{\"apiVersion\":\"v1\","
                         "\"kind\":\"ConfigMap\",\"name\":\"%s\",\"uid\":\"%s\"}]}}",
                         cases[i][0], cases[i][1], cases[i][2] ? cases[i][2] : live_uid);
                sim_env_create(e, &SIM_CONFIGMAPS, buf);
        }
        sim_env_settle(e);
        sim_store_lock(e->store);
        assert_null(sim_store_get_json(e->store, &SIM_CONFIGMAPS, "default", "orphan", NULL));
        assert_null(sim_store_get_json(e->store, &SIM_CONFIGMAPS, "default", "stale-uid", NULL));
        assert_non_null(sim_store_get_json(e->store, &SIM_CONFIGMAPS, "default", "kept", NULL));
        sim_store_unlock(e->store);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_scale, sim_env_setup, sim_env_teardown),
                cmocka_unit_test_setup_teardown(test_recreate, sim_env_setup, sim_env_teardown),
                cmocka_unit_test_setup_teardown(test_progress_deadline, sim_env_setup, sim_env_teardown),
                cmocka_unit_test_setup_teardown(test_gc, sim_env_setup, sim_env_teardown),
                cmocka_unit_test_setup_teardown(test_gc_dangling_owner_at_create, sim_env_setup, sim_env_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
