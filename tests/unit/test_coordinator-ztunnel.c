/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ztunnel DaemonSet steps.
 *
 * Pure rules first, on a hand-built ZtunnelInfo: node states from mixed
 * pods, ztunnel_pod_on's preference, the OnDelete refusal and its fix.
 *
 * Then against the in-process simulator (sim/sim.h), sped up 20×, with the
 * scenario's ztunnel block: an OnDelete DaemonSet whose pods all run
 * 1-24-0 while the template is already 1-25-0. The audit log proves what
 * was (not) sent; the store is read directly to check templates and
 * revisions against what inspect reported. Every wait is bounded (10 s).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "meshroll/kube.h"
#include "ztunnel.h"

/* The simulator, in-process (libkubesim). */
#include "sim.h"

#define FIX                                                                                                 \
        "kubectl patch daemonset ztunnel -n istio-system -p "                                               \
        "'{\"spec\":{\"updateStrategy\":{\"type\":\"OnDelete\"}}}'"

/* ---- pure rules --------------------------------------------------------------------------------- */

#define POD(node, name, hash, ready, terminating)                                                           \
        {                                                                                                   \
                (char *)(node), (char *)(name), (char *)("uid-" name), (char *)(hash), ready, terminating,  \
                    0                                                                                       \
        }

static void test_node_states(void **state)
{
        ZtunnelPod pods[] = {
            POD("n1", "p-a", "old", true, false),  POD("n2", "p-b", "old", true, true),
            POD("n2", "p-c", "new", false, false), POD("n3", "p-d", "new", true, false),
            POD("n4", "p-e", "old", false, true),  POD("n5", "p-f", "new", true, false),
            POD("n5", "p-g", "old", true, false),  POD("n7", "p-h", NULL, true, false),
            POD("n8", "p-i", "new", true, true),   POD("n8", "p-j", "new", false, true),
        };
        ZtunnelInfo z = {.namespace = (char *)"istio-system",
                         .name = (char *)"ztunnel",
                         .pods = pods,
                         .n_pods = ELEMENTSOF(pods)};

        assert_int_equal(ztunnel_node_state(&z, "n1", "new"), ZTUNNEL_NODE_OTHER);
        assert_int_equal(ztunnel_node_state(&z, "n1", "old"), ZTUNNEL_NODE_READY);
        /* the old pod is on its way out, the new one not Ready yet */
        assert_int_equal(ztunnel_node_state(&z, "n2", "new"), ZTUNNEL_NODE_STARTING);
        assert_int_equal(ztunnel_node_state(&z, "n3", "new"), ZTUNNEL_NODE_READY);
        assert_int_equal(ztunnel_node_state(&z, "n4", "new"), ZTUNNEL_NODE_TERMINATING);
        /* an old pod still serving beside a new one: the node is not done */
        assert_int_equal(ztunnel_node_state(&z, "n5", "new"), ZTUNNEL_NODE_OTHER);
        assert_int_equal(ztunnel_node_state(&z, "n6", "new"), ZTUNNEL_NODE_MISSING);
        /* a pod without the hash label is never the wanted revision */
        assert_int_equal(ztunnel_node_state(&z, "n7", "new"), ZTUNNEL_NODE_OTHER);
        /* even pods of the wanted revision count as terminating once deleted */
        assert_int_equal(ztunnel_node_state(&z, "n8", "new"), ZTUNNEL_NODE_TERMINATING);

        assert_string_equal(ztunnel_pod_on(&z, "n1")->name, "p-a");
        assert_string_equal(ztunnel_pod_on(&z, "n2")->name, "p-c");
        assert_string_equal(ztunnel_pod_on(&z, "n4")->name, "p-e");
        assert_string_equal(ztunnel_pod_on(&z, "n5")->name, "p-f");
        assert_string_equal(ztunnel_pod_on(&z, "n8")->name, "p-i");
        assert_null(ztunnel_pod_on(&z, "n6"));
        assert_null(ztunnel_pod_on(NULL, "n1"));

        assert_string_equal(ztunnel_node_state_to_string(ZTUNNEL_NODE_MISSING), "missing");
        assert_string_equal(ztunnel_node_state_to_string(ZTUNNEL_NODE_OTHER), "other");
        assert_string_equal(ztunnel_node_state_to_string(ZTUNNEL_NODE_TERMINATING), "terminating");
        assert_string_equal(ztunnel_node_state_to_string(ZTUNNEL_NODE_STARTING), "starting");
        assert_string_equal(ztunnel_node_state_to_string(ZTUNNEL_NODE_READY), "ready");
        assert_null(ztunnel_node_state_to_string((ZtunnelNodeState)42));
}

static void test_require_on_delete(void **state)
{
        ZtunnelInfo z = {.namespace = (char *)"istio-system", .name = (char *)"ztunnel", .on_delete = true};
        MrError err = {};

        assert_int_equal(ztunnel_require_on_delete(&z, &err), 0);
        z.on_delete = false;
        assert_int_equal(ztunnel_require_on_delete(&z, &err), -MR_ECONFIG);
        assert_int_equal(err.error, -MR_ECONFIG);
        assert_non_null(strstr(err.message, "istio-system/ztunnel"));
        assert_non_null(strstr(err.message, FIX));
}

static void test_bad_arguments(void **state)
{
        ZtunnelInfo z = {.namespace = (char *)"istio-system", .name = (char *)"ztunnel"};
        const char *nodes[] = {"n1", NULL};
        ZtunnelInfo *ret = NULL;
        MrError err = {};

        assert_int_equal(ztunnel_inspect(NULL, "istio-system", "ztunnel", &ret, &err), -EINVAL);
        assert_null(ret);
        assert_int_equal(ztunnel_replace(NULL, &z, nodes, "h", &err), -EINVAL);
        assert_int_equal(ztunnel_set_template(NULL, &z, "ztunnel-h", &err), -EINVAL);
        assert_null(ztunnel_info_free(NULL));
}

/* ---- simulator tests ---------------------------------------------------------------------------- */


#define SIM_SPEED 20.0
#define WAIT_MAX (10 * USEC_PER_SEC)
#define POLL_USEC 50000

#define SCENARIO(ztunnel, faults)                                                                           \
        "name: ztunnel\n"                                                                                   \
        "nodes:\n"                                                                                          \
        "  - {name: \"{pool}-{i}\", count: 3, pool: a}\n"                                                   \
        "istio:\n"                                                                                          \
        "  revisions:\n"                                                                                    \
        "    - {name: 1-24-0, version: 1.24.0}\n"                                                           \
        "    - {name: 1-25-0, version: 1.25.0}\n"                                                           \
        "  ztunnel: {revision: 1-24-0, startupSeconds: 2, shutdownSeconds: 2" ztunnel "}\n" faults
#define MID_UPGRADE ", pendingRevision: 1-25-0, updateStrategy: OnDelete"

static const char *const NODES[] = {"a-1", "a-2", "a-3"};

typedef struct Env {
        Sim *sim;
        KubeClient *c;
        char audit[64];
} Env;

static void env_start(Env *env, const char *scenario)
{
        KubeClientOptions o = {
            .qps = -1, .backoff_base = 5 * USEC_PER_MSEC, .backoff_cap = 20 * USEC_PER_MSEC};
        MrError err = {};
        int fd;

        snprintf(env->audit, sizeof(env->audit), "/tmp/meshroll-ztunnel-audit-XXXXXX");
        fd = mkostemp(env->audit, O_CLOEXEC);
        assert_true(fd >= 0);
        close(fd);
        SimOptions so = {.scenario_data = scenario,
                         .scenario_size = strlen(scenario),
                         .speed = SIM_SPEED,
                         .audit_path = env->audit};
        if (sim_start(&so, &env->sim, &err) < 0)
                fail_msg("sim_start: %s", err.message);
        KubeConfig cfg = {.server = (char *)sim_url(env->sim)};
        assert_int_equal(kube_client_new(&cfg, &o, &env->c, NULL), 0);
}

static void env_stop(Env *env)
{
        kube_client_free(env->c);
        sim_stop(env->sim);
        unlink(env->audit);
}

/* Inspects, waiting out the controller's first snapshot (-EAGAIN). Owned. */
static ZtunnelInfo *inspect(Env *env)
{
        usec_t end = mr_now_monotonic(NULL) + WAIT_MAX;
        ZtunnelInfo *z = NULL;
        MrError err = {};
        int r;

        while ((r = ztunnel_inspect(env->c, "istio-system", "ztunnel", &z, &err)) == -EAGAIN &&
               mr_now_monotonic(NULL) < end) {
                assert_non_null(strstr(err.message, "istio-system/ztunnel"));
                usleep(POLL_USEC);
        }
        if (r < 0)
                fail_msg("ztunnel_inspect: %s", err.message);
        return z;
}

/* Waits until node is in state against hash; returns that inspection (owned). */
static ZtunnelInfo *wait_state(Env *env, const char *node, const char *hash, ZtunnelNodeState want)
{
        usec_t end = mr_now_monotonic(NULL) + WAIT_MAX;
        ZtunnelNodeState s = ZTUNNEL_NODE_MISSING;

        while (mr_now_monotonic(NULL) < end) {
                ZtunnelInfo *z = inspect(env);
                s = ztunnel_node_state(z, node, hash);
                if (s == want)
                        return z;
                ztunnel_info_free(z);
                usleep(POLL_USEC);
        }
        fail_msg("node %s is %s against %s, wanted %s", node, ztunnel_node_state_to_string(s), hash,
                 ztunnel_node_state_to_string(want));
        return NULL;
}

/* Every node READY on the previous revision: the scenario's starting point, once its pods are up. */
static ZtunnelInfo *wait_started(Env *env)
{
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = inspect(env);
        assert_non_null(z->previous_hash);
        for (size_t i = 0; i < ELEMENTSOF(NODES); i++)
                ztunnel_info_free(wait_state(env, NODES[i], z->previous_hash, ZTUNNEL_NODE_READY));
        return inspect(env);
}

/* How many pod deletes meshroll (not a controller) sent, from the audit log. */
static unsigned count_deletes(Env *env)
{
        FILE *f = fopen(env->audit, "re");
        char line[65536];
        unsigned n = 0;

        assert_non_null(f);
        while (fgets(line, sizeof(line), f)) {
                json_object *o = json_tokener_parse(line);
                const char *actor = mr_json_get_str(o, "actor", NULL);
                if (streq_ptr(mr_json_get_str(o, "verb", NULL), "delete") &&
                    streq_ptr(mr_json_get_str(o, "resource", NULL), "pods") && actor &&
                    startswith(actor, "meshroll"))
                        n++;
                json_object_put(o);
        }
        fclose(f);
        return n;
}

/* The stored DaemonSet's template (owned copy) and, when ret_rv, its resourceVersion. */
static json_object *stored_template(Env *env, char **ret_rv)
{
        SimStore *s = sim_get_store(env->sim);
        json_object *t;

        sim_store_lock(s);
        json_object *ds = sim_store_get(s, &SIM_DAEMONSETS, "istio-system", "ztunnel");
        assert_non_null(ds);
        t = mr_json_copy(mr_json_get(ds, "spec", "template", NULL));
        if (ret_rv)
                *ret_rv = strdup(mr_json_get_str(ds, "metadata", "resourceVersion", NULL));
        sim_store_unlock(s);
        assert_non_null(t);
        return t;
}

/* A stored ControllerRevision's template without "$patch" (owned copy), and its revision number. */
static json_object *stored_revision(Env *env, const char *name, int64_t *ret_number)
{
        SimStore *s = sim_get_store(env->sim);
        json_object *t;

        sim_store_lock(s);
        json_object *cr = sim_store_get(s, &SIM_CONTROLLERREVISIONS, "istio-system", name);
        assert_non_null(cr);
        t = mr_json_copy(mr_json_get(cr, "data", "spec", "template", NULL));
        if (ret_number)
                assert_int_equal(mr_json_get_int(ret_number, cr, "revision", NULL), 0);
        sim_store_unlock(s);
        assert_non_null(t);
        json_object_object_del(t, "$patch");
        return t;
}

/* The highest revision number among the DaemonSet's ControllerRevisions in the store. */
static int collect_max_revision(json_object *cr, void *userdata)
{
        int64_t *max = userdata, v = 0;
        (void)mr_json_get_int(&v, cr, "revision", NULL);
        *max = MAX(*max, v);
        return 0;
}

static int64_t stored_max_revision(Env *env)
{
        SimStore *s = sim_get_store(env->sim);
        int64_t max = 0;

        sim_store_lock(s);
        assert_int_equal(
            sim_store_foreach(s, &SIM_CONTROLLERREVISIONS, "istio-system", collect_max_revision, &max), 0);
        sim_store_unlock(s);
        return max;
}

static const char *uid_on(const ZtunnelInfo *z, const char *node)
{
        const ZtunnelPod *p = ztunnel_pod_on(z, node);
        assert_non_null(p);
        return p->uid;
}

static void test_sim_inspect(void **state)
{
        Env env = {};
        char name[128];
        int64_t number = 0;

        env_start(&env, SCENARIO(MID_UPGRADE, ""));
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = wait_started(&env);

        assert_string_equal(z->namespace, "istio-system");
        assert_string_equal(z->name, "ztunnel");
        assert_true(z->on_delete);
        assert_int_equal(ztunnel_require_on_delete(z, NULL), 0);
        assert_non_null(z->uid);
        assert_non_null(z->resource_version);
        assert_non_null(z->update_hash);
        assert_non_null(z->previous_hash);
        assert_string_not_equal(z->update_hash, z->previous_hash);
        snprintf(name, sizeof(name), "ztunnel-%s", z->update_hash);
        assert_string_equal(z->update_revision, name);
        snprintf(name, sizeof(name), "ztunnel-%s", z->previous_hash);
        assert_string_equal(z->previous_revision, name);

        /* what inspect calls the update revision holds the stored template and is the newest */
        _cleanup_free_ char *rv = NULL;
        _cleanup_(json_object_putp) json_object *ds_tmpl = stored_template(&env, &rv);
        _cleanup_(json_object_putp) json_object *cr_tmpl =
            stored_revision(&env, z->update_revision, &number);
        assert_true(mr_json_equal(ds_tmpl, cr_tmpl));
        assert_int_equal(number, stored_max_revision(&env));
        assert_string_equal(z->resource_version, rv);

        /* one old, Ready pod per node, sorted by node */
        assert_int_equal(z->n_pods, ELEMENTSOF(NODES));
        for (size_t i = 0; i < z->n_pods; i++) {
                const ZtunnelPod *p = &z->pods[i];
                assert_string_equal(p->node, NODES[i]);
                assert_non_null(startswith(p->name, "ztunnel-"));
                assert_true(!isempty(p->uid));
                assert_string_equal(p->hash, z->previous_hash);
                assert_true(p->ready);
                assert_false(p->terminating);
                assert_int_equal(p->restarts, 0);
                assert_ptr_equal(ztunnel_pod_on(z, NODES[i]), p);
                assert_int_equal(ztunnel_node_state(z, NODES[i], z->update_hash), ZTUNNEL_NODE_OTHER);
                assert_int_equal(ztunnel_node_state(z, NODES[i], z->previous_hash), ZTUNNEL_NODE_READY);
        }
        assert_int_equal(ztunnel_node_state(z, "elsewhere", z->update_hash), ZTUNNEL_NODE_MISSING);
        env_stop(&env);
}

static void test_sim_replace_one_node(void **state)
{
        Env env = {};
        const char *a1[] = {"a-1", "a-1", NULL};
        MrError err = {};

        env_start(&env, SCENARIO(MID_UPGRADE, ""));
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z0 = wait_started(&env);
        _cleanup_free_ char *uid1 = strdup(uid_on(z0, "a-1"));
        _cleanup_free_ char *uid2 = strdup(uid_on(z0, "a-2"));
        _cleanup_free_ char *uid3 = strdup(uid_on(z0, "a-3"));
        unsigned deletes = count_deletes(&env);

        /* a node named twice is handled once */
        assert_int_equal(ztunnel_replace(env.c, z0, a1, z0->update_hash, &err), 1);
        assert_int_equal(count_deletes(&env), deletes + 1);

        /* idempotent: a fresh look finds nothing left to delete, and nothing is sent */
        {
                _cleanup_(ztunnel_info_freep) ZtunnelInfo *z1 = inspect(&env);
                assert_int_not_equal(ztunnel_node_state(z1, "a-1", z1->update_hash), ZTUNNEL_NODE_OTHER);
                assert_int_equal(ztunnel_replace(env.c, z1, a1, z1->update_hash, &err), 0);
                assert_int_equal(count_deletes(&env), deletes + 1);
        }

        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z2 =
            wait_state(&env, "a-1", z0->update_hash, ZTUNNEL_NODE_READY);
        const ZtunnelPod *p = ztunnel_pod_on(z2, "a-1");
        assert_string_not_equal(p->uid, uid1);
        assert_string_equal(p->hash, z0->update_hash);
        assert_string_equal(z2->update_hash, z0->update_hash);
        assert_string_equal(z2->previous_hash, z0->previous_hash);
        /* the other nodes keep their old pods */
        assert_string_equal(uid_on(z2, "a-2"), uid2);
        assert_string_equal(uid_on(z2, "a-3"), uid3);
        assert_int_equal(ztunnel_node_state(z2, "a-2", z2->update_hash), ZTUNNEL_NODE_OTHER);
        assert_int_equal(ztunnel_node_state(z2, "a-3", z2->update_hash), ZTUNNEL_NODE_OTHER);
        assert_int_equal(z2->n_pods, 3);

        /* a stale view: the old pod is gone (404), which counts as done */
        assert_int_equal(ztunnel_replace(env.c, z0, a1, z0->update_hash, &err), 1);
        /* a UID that no longer matches (409) counts as done too, and the pod is untouched */
        for (size_t i = 0; i < z2->n_pods; i++)
                if (streq(z2->pods[i].node, "a-2")) {
                        free(z2->pods[i].uid);
                        z2->pods[i].uid = strdup("not-this-pod");
                }
        const char *a2[] = {"a-2", NULL};
        assert_int_equal(ztunnel_replace(env.c, z2, a2, z2->update_hash, &err), 1);
        usleep(10 * POLL_USEC);
        {
                _cleanup_(ztunnel_info_freep) ZtunnelInfo *z3 = inspect(&env);
                assert_string_equal(uid_on(z3, "a-2"), uid2);
                assert_int_equal(ztunnel_node_state(z3, "a-2", z3->previous_hash), ZTUNNEL_NODE_READY);
        }
        env_stop(&env);
}

static void test_sim_rollback_one_node(void **state)
{
        Env env = {};
        const char *a1[] = {"a-1", NULL};
        MrError err = {};

        env_start(&env, SCENARIO(MID_UPGRADE, ""));
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z0 = wait_started(&env);
        const char *update = z0->update_hash, *previous = z0->previous_hash;
        _cleanup_free_ char *uid2 = strdup(uid_on(z0, "a-2"));
        _cleanup_free_ char *uid3 = strdup(uid_on(z0, "a-3"));

        assert_int_equal(ztunnel_replace(env.c, z0, a1, update, &err), 1);
        ztunnel_info_free(wait_state(&env, "a-1", update, ZTUNNEL_NODE_READY));

        /* template → previous revision: no running pod is touched (OnDelete) */
        {
                _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = inspect(&env);
                if (ztunnel_set_template(env.c, z, z0->previous_revision, &err) != 1)
                        fail_msg("ztunnel_set_template: %s", err.message);
        }
        {
                _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = inspect(&env);
                assert_string_equal(z->update_hash, previous);
                assert_string_equal(z->update_revision, z0->previous_revision);
                assert_string_equal(z->previous_hash, update); /* a-1 still runs it */
                assert_int_equal(ztunnel_node_state(z, "a-1", previous), ZTUNNEL_NODE_OTHER);
                assert_int_equal(ztunnel_replace(env.c, z, a1, previous, &err), 1);
        }
        ztunnel_info_free(wait_state(&env, "a-1", previous, ZTUNNEL_NODE_READY));

        /* template → update revision again */
        {
                _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = inspect(&env);
                if (ztunnel_set_template(env.c, z, z0->update_revision, &err) != 1)
                        fail_msg("ztunnel_set_template: %s", err.message);
        }
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = inspect(&env);
        assert_string_equal(z->update_hash, update);
        assert_string_equal(z->update_revision, z0->update_revision);
        assert_string_equal(z->previous_hash, previous);
        _cleanup_free_ char *rv = NULL;
        _cleanup_(json_object_putp) json_object *ds_tmpl = stored_template(&env, &rv);
        _cleanup_(json_object_putp) json_object *cr_tmpl = stored_revision(&env, z0->update_revision, NULL);
        assert_true(mr_json_equal(ds_tmpl, cr_tmpl));
        for (size_t i = 0; i < ELEMENTSOF(NODES); i++) {
                assert_int_equal(ztunnel_node_state(z, NODES[i], update), ZTUNNEL_NODE_OTHER);
                assert_int_equal(ztunnel_node_state(z, NODES[i], previous), ZTUNNEL_NODE_READY);
        }
        assert_string_equal(uid_on(z, "a-2"), uid2);
        assert_string_equal(uid_on(z, "a-3"), uid3);

        /* already there: nothing is written */
        assert_int_equal(ztunnel_set_template(env.c, z, z0->update_revision, &err), 0);
        _cleanup_free_ char *rv2 = NULL;
        json_object_put(stored_template(&env, &rv2));
        assert_string_equal(rv, rv2);
        env_stop(&env);
}

static void test_sim_stale_resource_version(void **state)
{
        Env env = {};
        MrError err = {};
        _cleanup_free_ char *path = NULL;
        _cleanup_(json_object_putp) json_object *patch =
            json_tokener_parse("{\"metadata\":{\"annotations\":{\"example.com/touched\":\"yes\"}}}");

        env_start(&env, SCENARIO(MID_UPGRADE, ""));
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = inspect(&env);
        assert_int_equal(kube_path(&KUBE_DAEMONSETS, "istio-system", "ztunnel", NULL, &path), 0);
        assert_int_equal(kube_patch(env.c, path, KUBE_PATCH_MERGE, patch, NULL, NULL), 0);

        assert_int_equal(ztunnel_set_template(env.c, z, z->previous_revision, &err), -MR_ECONFLICT);
        assert_int_equal(err.error, -MR_ECONFLICT);
        assert_non_null(strstr(err.message, "istio-system/ztunnel"));
        assert_non_null(strstr(err.message, z->resource_version));
        _cleanup_(json_object_putp) json_object *ds_tmpl = stored_template(&env, NULL);
        _cleanup_(json_object_putp) json_object *cr_tmpl = stored_revision(&env, z->update_revision, NULL);
        assert_true(mr_json_equal(ds_tmpl, cr_tmpl));

        /* a step that already took effect succeeds even on a stale view */
        assert_int_equal(ztunnel_set_template(env.c, z, z->update_revision, &err), 0);
        /*
         * A fresh view writes — unless the DaemonSet controller's status write lands in between
         * (as on a real cluster; slow runs such as valgrind's see it): a conflict means look again.
         */
        int r = -MR_ECONFLICT;
        for (unsigned i = 0; i < 20 && r == -MR_ECONFLICT; i++) {
                _cleanup_(ztunnel_info_freep) ZtunnelInfo *fresh = inspect(&env);
                r = ztunnel_set_template(env.c, fresh, fresh->previous_revision, &err);
        }
        assert_int_equal(r, 1);
        env_stop(&env);
}

static void test_sim_missing(void **state)
{
        Env env = {};
        ZtunnelInfo *none = NULL;
        MrError err = {};

        env_start(&env, SCENARIO(MID_UPGRADE, ""));
        assert_int_equal(ztunnel_inspect(env.c, "istio-system", "nope", &none, &err), -ENOENT);
        assert_null(none);
        assert_non_null(strstr(err.message, "DaemonSet istio-system/nope"));
        assert_int_equal(ztunnel_inspect(env.c, "elsewhere", "ztunnel", &none, &err), -ENOENT);
        assert_non_null(strstr(err.message, "elsewhere/ztunnel"));

        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = inspect(&env);
        assert_int_equal(ztunnel_set_template(env.c, z, "ztunnel-nope", &err), -ENOENT);
        assert_non_null(strstr(err.message, "ControllerRevision istio-system/ztunnel-nope"));
        env_stop(&env);
}

static void test_sim_rolling_update_refused(void **state)
{
        Env env = {};
        MrError err = {};
        _cleanup_free_ char *path = NULL;
        _cleanup_(json_object_putp) json_object *patch =
            json_tokener_parse("{\"spec\":{\"updateStrategy\":{\"type\":\"OnDelete\"}}}");

        env_start(&env, SCENARIO(", updateStrategy: RollingUpdate", ""));
        {
                _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = inspect(&env);
                assert_false(z->on_delete);
                assert_non_null(z->update_hash);
                assert_null(z->previous_hash); /* one revision only */
                assert_null(z->previous_revision);
                assert_int_equal(ztunnel_require_on_delete(z, &err), -MR_ECONFIG);
                assert_non_null(strstr(err.message, FIX));
        }
        /* the fix, as the message gives it (kubectl sends a strategic merge patch), works */
        assert_int_equal(kube_path(&KUBE_DAEMONSETS, "istio-system", "ztunnel", NULL, &path), 0);
        assert_int_equal(kube_patch(env.c, path, KUBE_PATCH_STRATEGIC, patch, NULL, NULL), 0);
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = inspect(&env);
        assert_true(z->on_delete);
        assert_int_equal(ztunnel_require_on_delete(z, &err), 0);
        env_stop(&env);
}

static void test_sim_never_ready(void **state)
{
        Env env = {};
        const char *a1[] = {"a-1", NULL};
        MrError err = {};
        unsigned restarts = 0;

        env_start(&env,
                  SCENARIO(MID_UPGRADE, "faults:\n  neverReadyImages: [docker.io/istio/ztunnel:1.25.0]\n"));
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z0 = wait_started(&env);
        assert_int_equal(ztunnel_replace(env.c, z0, a1, z0->update_hash, &err), 1);
        ztunnel_info_free(wait_state(&env, "a-1", z0->update_hash, ZTUNNEL_NODE_STARTING));

        /* it crash-loops (CrashLoopBackOff: 10 s, 20 s … simulated) and never becomes Ready */
        usec_t end = mr_now_monotonic(NULL) + WAIT_MAX;
        while (restarts < 2 && mr_now_monotonic(NULL) < end) {
                _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = inspect(&env);
                assert_int_equal(ztunnel_node_state(z, "a-1", z0->update_hash), ZTUNNEL_NODE_STARTING);
                restarts = ztunnel_pod_on(z, "a-1")->restarts;
                usleep(POLL_USEC);
        }
        assert_true(restarts >= 2);
        env_stop(&env);
}


int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_node_states),
                cmocka_unit_test(test_require_on_delete),
                cmocka_unit_test(test_bad_arguments),
                cmocka_unit_test(test_sim_inspect),
                cmocka_unit_test(test_sim_replace_one_node),
                cmocka_unit_test(test_sim_rollback_one_node),
                cmocka_unit_test(test_sim_stale_resource_version),
                cmocka_unit_test(test_sim_missing),
                cmocka_unit_test(test_sim_rolling_update_refused),
                cmocka_unit_test(test_sim_never_ready),
        };
        return cmocka_run_group_tests_name(TEST_NAME, tests, NULL, NULL);
}
