/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The DaemonSet controller beyond the end-to-end tests: RollingUpdate with
 * maxSurge (new pod beside the old one, old one deleted once the new is
 * available, never fewer Ready pods than nodes), ControllerRevision
 * numbering and renumbering on roll-back, nodes joining, and status
 * fields on a node that stops matching.
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

#define DS "{\"apiVersion\":\"apps/v1\",\"kind\":\"DaemonSet\",\"metadata\":{\"name\":\"agent\",\"namespace\":\"default\"}," \
           "\"spec\":{\"selector\":{\"matchLabels\":{\"app\":\"agent\"}},\"updateStrategy\":{\"type\":\"RollingUpdate\","   \
           "\"rollingUpdate\":{\"maxSurge\":1,\"maxUnavailable\":0}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"agent\"}," \
           "\"annotations\":{\"sim.meshroll.io/startup-seconds\":\"3\"}},\"spec\":{\"nodeSelector\":{\"disk\":\"hdd\"},"       \
           "\"containers\":[{\"name\":\"a\",\"image\":\"agent:1\"}]}}}}"

typedef struct Stats {
        int total, ready, max_per_node;
        char nodes[8][16];
        int per_node[8];
        int n_nodes;
} Stats;

static int stat_pod(json_object *pod, void *u)
{
        Stats *s = u;
        const char *node = mr_json_get_str(pod, "spec", "nodeName", NULL);
        if (sim_obj_is_deleting(pod))
                return 0; /* terminating pods are on their way out */
        s->total++;
        s->ready += sim_pod_is_ready(pod);
        int i;
        for (i = 0; i < s->n_nodes; i++)
                if (streq(s->nodes[i], strempty(node)))
                        break;
        if (i == s->n_nodes && i < 8)
                snprintf(s->nodes[s->n_nodes++], 16, "%s", strempty(node));
        if (i < 8)
                s->max_per_node = MAX(s->max_per_node, ++s->per_node[i]);
        return 0;
}

static Stats stats(Env *e)
{
        Stats s = {};
        sim_store_lock(e->store);
        assert_int_equal(sim_store_foreach(e->store, &SIM_PODS, "default", stat_pod, &s), 0);
        sim_store_unlock(e->store);
        return s;
}

static void set_image(Env *e, const char *image)
{
        sim_store_lock(e->store);
        json_object *ds = mr_json_copy(sim_store_get(e->store, &SIM_DAEMONSETS, "default", "agent"));
        json_object *c = json_object_array_get_idx(mr_json_get(ds, "spec", "template", "spec", "containers", NULL), 0);
        mr_json_set_str(c, "image", image);
        assert_int_equal(sim_store_update(e->store, &SIM_DAEMONSETS, ds, 0, "test", NULL, NULL), 0);
        sim_store_unlock(e->store);
}

static int64_t st(Env *e, const char *f)
{
        int64_t v = 0;
        sim_store_lock(e->store);
        (void)mr_json_get_int(&v, sim_store_get(e->store, &SIM_DAEMONSETS, "default", "agent"), "status", f, NULL);
        sim_store_unlock(e->store);
        return v;
}

typedef struct Revs {
        int64_t rev_of_hash[4];
        char hashes[4][16];
        int n;
} Revs;

static int rev(json_object *cr, void *u)
{
        Revs *r = u;
        if (r->n >= 4)
                return 0;
        snprintf(r->hashes[r->n], 16, "%s", strempty(mr_json_get_str(cr, "metadata", "labels", "controller-revision-hash", NULL)));
        (void)mr_json_get_int(&r->rev_of_hash[r->n], cr, "revision", NULL);
        r->n++;
        return 0;
}

static int64_t revision_for_current(Env *e)
{
        Revs r = {};
        char hash[16];
        sim_store_lock(e->store);
        json_object *ds = sim_store_get(e->store, &SIM_DAEMONSETS, "default", "agent");
        sim_hash_json(mr_json_get(ds, "spec", "template", NULL), 0, hash);
        assert_int_equal(sim_store_foreach(e->store, &SIM_CONTROLLERREVISIONS, "default", rev, &r), 0);
        sim_store_unlock(e->store);
        for (int i = 0; i < r.n; i++)
                if (streq(r.hashes[i], hash))
                        return r.rev_of_hash[i];
        return -1;
}

static void test_surge(void **state)
{
        Env *e = *state;
        /* add_node labels names of even length disk=hdd: n1 n2 n3 run it, n22 (ssd) does not. */
        sim_env_add_node(e, "n1", NULL, NULL);
        sim_env_add_node(e, "n2", NULL, NULL);
        sim_env_add_node(e, "n3", NULL, NULL);
        sim_env_add_node(e, "n22", NULL, NULL);
        sim_env_create(e, &SIM_DAEMONSETS, DS);
        sim_env_run_for(e, 5 * USEC_PER_SEC);
        assert_int_equal(stats(e).ready, 3);
        assert_int_equal(st(e, "desiredNumberScheduled"), 3);
        assert_int_equal(revision_for_current(e), 1);

        set_image(e, "agent:2");
        sim_env_settle(e);
        Stats s = stats(e);
        assert_int_equal(s.total, 4); /* one surge pod beside its old one */
        assert_int_equal(s.max_per_node, 2);
        for (int i = 0; i < 30; i++) {
                sim_env_run_for(e, USEC_PER_SEC);
                s = stats(e);
                assert_true(s.ready >= 3); /* maxUnavailable 0 */
                assert_true(s.total <= 4);
        }
        assert_int_equal(st(e, "updatedNumberScheduled"), 3);
        assert_int_equal(st(e, "numberAvailable"), 3);
        assert_int_equal(stats(e).total, 3);
        assert_int_equal(revision_for_current(e), 2);

        /* Roll back to agent:1: its old revision is renumbered 3, no new revision object. */
        set_image(e, "agent:1");
        sim_env_run_for(e, 30 * USEC_PER_SEC);
        assert_int_equal(revision_for_current(e), 3);
        assert_int_equal(sim_store_count(e->store, &SIM_CONTROLLERREVISIONS, "default"), 2);
        assert_int_equal(st(e, "updatedNumberScheduled"), 3);

        /* A node joins: it gets a pod. */
        sim_env_add_node(e, "n4", NULL, NULL);
        sim_env_run_for(e, 5 * USEC_PER_SEC);
        assert_int_equal(st(e, "desiredNumberScheduled"), 4);
        assert_int_equal(st(e, "numberReady"), 4);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_surge, sim_env_setup, sim_env_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
