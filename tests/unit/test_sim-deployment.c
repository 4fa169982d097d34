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

static void deployment(Env *e, int replicas, const char *strategy, const char *extra_ann, int deadline)
{
        char buf[2048];
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\",\"namespace\":\"default\"},"
                 "\"spec\":{\"replicas\":%d,\"progressDeadlineSeconds\":%d,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"
                 "\"strategy\":%s,\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"},\"annotations\":{"
                 "\"sim.meshroll.io/startup-seconds\":\"2\"%s}},\"spec\":{\"containers\":[{\"name\":\"w\",\"image\":\"web:1\"}]}}}}",
                 replicas, deadline, strategy, extra_ann);
        create(e, &SIM_DEPLOYMENTS, buf);
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
        add_node(e, "n1", NULL, NULL);
        deployment(e, 3, "{\"type\":\"RollingUpdate\"}", "", 600);
        run_for(e, 5 * USEC_PER_SEC);
        assert_int_equal(pods(e).ready, 3);
        patch_spec(e, "replicas", json_object_new_int(5));
        settle(e);
        assert_int_equal(pods(e).total, 5);
        assert_int_equal(pods(e).ready, 3);
        /* Scaling down before the new ones are Ready removes those first. */
        patch_spec(e, "replicas", json_object_new_int(3));
        settle(e);
        Count c = pods(e);
        assert_int_equal(c.total, 3);
        assert_int_equal(c.ready, 3);
        assert_int_equal(c.deleting, 2);
        assert_string_equal(condition(e, "Available", "status"), "True");
}

static void test_recreate(void **state)
{
        Env *e = *state;
        add_node(e, "n1", NULL, NULL);
        deployment(e, 2, "{\"type\":\"Recreate\"}", "", 600);
        run_for(e, 5 * USEC_PER_SEC);
        restart(e, "web:2");
        settle(e);
        Count c = pods(e);
        assert_int_equal(c.total, 0); /* everything old goes first */
        assert_int_equal(c.deleting, 2);
        run_for(e, 10 * USEC_PER_SEC);
        c = pods(e);
        assert_int_equal(c.total, 2);
        assert_int_equal(c.ready, 2);
        assert_string_equal(condition(e, "Progressing", "reason"), "NewReplicaSetAvailable");
}

static void test_progress_deadline(void **state)
{
        Env *e = *state;
        add_node(e, "n1", NULL, NULL);
        deployment(e, 2, "{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"maxSurge\":1,\"maxUnavailable\":0}}", "", 30);
        run_for(e, 5 * USEC_PER_SEC);
        /* The new template never gets Ready: the rollout stalls at one surge pod and times out. */
        sim_store_lock(e->store);
        json_object *d = mr_json_copy(sim_store_get(e->store, &SIM_DEPLOYMENTS, "default", "web"));
        mr_json_set_str(mr_json_get(d, "spec", "template", "metadata", "annotations", NULL), "sim.meshroll.io/never-ready", "true");
        assert_int_equal(sim_store_update(e->store, &SIM_DEPLOYMENTS, d, 0, "test", NULL, NULL), 0);
        sim_store_unlock(e->store);
        run_for(e, 20 * USEC_PER_SEC);
        assert_string_equal(condition(e, "Progressing", "status"), "True");
        assert_int_equal(pods(e).ready, 2);
        run_for(e, 40 * USEC_PER_SEC);
        assert_string_equal(condition(e, "Progressing", "reason"), "ProgressDeadlineExceeded");
        assert_string_equal(condition(e, "Progressing", "status"), "False");
        assert_int_equal(pods(e).ready, 2); /* maxUnavailable 0: the old pods stay */
}

static void test_gc(void **state)
{
        Env *e = *state;
        add_node(e, "n1", NULL, NULL);
        deployment(e, 2, "{\"type\":\"RollingUpdate\"}", "", 600);
        run_for(e, 5 * USEC_PER_SEC);
        sim_store_lock(e->store);
        assert_true(sim_store_delete(e->store, &SIM_DEPLOYMENTS, "default", "web", 0, NULL, NULL, "test", NULL, NULL) >= 0);
        sim_store_unlock(e->store);
        run_for(e, 10 * USEC_PER_SEC);
        assert_int_equal(sim_store_count(e->store, &SIM_REPLICASETS, "default"), 0);
        assert_int_equal(sim_store_count(e->store, &SIM_PODS, "default"), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_scale, setup, teardown),
                cmocka_unit_test_setup_teardown(test_recreate, setup, teardown),
                cmocka_unit_test_setup_teardown(test_progress_deadline, setup, teardown),
                cmocka_unit_test_setup_teardown(test_gc, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
