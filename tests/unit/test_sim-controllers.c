/* SPDX-License-Identifier: Apache-2.0 */
/*
 * End-to-end tests of the simulated controllers on a real store, driven in
 * simulated time by a fake clock (no sleeping): pods become Ready, cordon
 * brings the taint, OnDelete and RollingUpdate DaemonSets, rollout restart,
 * and eviction admission against PDB status the disruption controller wrote.
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
        SimControllersOptions o = { .seed = 7 };
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
        assert_int_equal(sim_controllers_settle(e->ctl, 200), 0);
}

/* Runs the cluster for d simulated µs, firing every timer on the way. */
static void run_for(Env *e, usec_t d)
{
        usec_t target = sim_store_now(e->store) + d;
        settle(e);
        for (int i = 0; i < 10000; i++) {
                usec_t next = sim_controllers_next_due(e->ctl);
                usec_t now = sim_store_now(e->store);
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

/* Applies a change to a stored object through fn, as an update. */
static void modify(Env *e, const SimKind *k, const char *ns, const char *name, void (*fn)(json_object *o, void *u), void *u)
{
        sim_store_lock(e->store);
        json_object *o = mr_json_copy(sim_store_get(e->store, k, ns, name));
        assert_non_null(o);
        fn(o, u);
        assert_int_equal(sim_store_update(e->store, k, o, 0, "test", NULL, NULL), 0);
        sim_store_unlock(e->store);
}

static void add_nodes(Env *e, int n)
{
        for (int i = 1; i <= n; i++) {
                char buf[512];
                snprintf(buf, sizeof buf,
                         "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"node-%d\",\"labels\":"
                         "{\"kubernetes.io/hostname\":\"node-%d\",\"kubernetes.io/os\":\"linux\"}},"
                         "\"spec\":{\"podCIDR\":\"10.244.%d.0/24\"},\"status\":{\"addresses\":[{\"type\":\"InternalIP\","
                         "\"address\":\"10.0.0.%d\"}],\"allocatable\":{\"cpu\":\"4\",\"memory\":\"8Gi\",\"pods\":\"110\"}}}",
                         i, i, i, i + 10);
                create(e, &SIM_NODES, buf);
        }
        create(e, &SIM_NAMESPACES, "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"shop\"}}");
        create(e, &SIM_NAMESPACES, "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"istio-system\"}}");
}

typedef struct Count {
        const char *owner_kind;
        int total, ready, deleting, bound;
} Count;

static int count_pod(json_object *pod, void *u)
{
        Count *c = u;
        json_object *ref = sim_controller_ref(pod);
        if (c->owner_kind && !streq_ptr(mr_json_get_str(ref, "kind", NULL), c->owner_kind))
                return 0;
        c->total++;
        c->ready += sim_pod_is_ready(pod);
        c->deleting += sim_obj_is_deleting(pod);
        c->bound += mr_json_get_str(pod, "spec", "nodeName", NULL) != NULL;
        return 0;
}

static Count count_pods(Env *e, const char *ns, const char *owner_kind)
{
        Count c = { .owner_kind = owner_kind };
        sim_store_lock(e->store);
        assert_int_equal(sim_store_foreach(e->store, &SIM_PODS, ns, count_pod, &c), 0);
        sim_store_unlock(e->store);
        return c;
}

static int64_t status_int(Env *e, const SimKind *k, const char *ns, const char *name, const char *field)
{
        int64_t v = 0;
        sim_store_lock(e->store);
        (void)mr_json_get_int(&v, sim_store_get(e->store, k, ns, name), "status", field, NULL);
        sim_store_unlock(e->store);
        return v;
}

#define WEB_DEPLOYMENT                                                                                             \
        "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\"}," \
        "\"spec\":{\"replicas\":3,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"                                \
        "\"strategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"maxSurge\":1,\"maxUnavailable\":0}},"        \
        "\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"},\"annotations\":"                                 \
        "{\"sim.meshroll.io/startup-seconds\":\"5\"}},\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"web:1\"}]}}}}"

static void test_deployment_becomes_ready(void **state)
{
        Env *e = *state;
        add_nodes(e, 3);
        create(e, &SIM_DEPLOYMENTS, WEB_DEPLOYMENT);
        settle(e);
        Count c = count_pods(e, "shop", "ReplicaSet");
        assert_int_equal(c.total, 3);
        assert_int_equal(c.bound, 3);
        assert_int_equal(c.ready, 0);
        run_for(e, 4 * USEC_PER_SEC);
        assert_int_equal(count_pods(e, "shop", NULL).ready, 0);
        run_for(e, 2 * USEC_PER_SEC);
        assert_int_equal(count_pods(e, "shop", NULL).ready, 3);
        assert_int_equal(status_int(e, &SIM_DEPLOYMENTS, "shop", "web", "availableReplicas"), 3);
        assert_int_equal(status_int(e, &SIM_DEPLOYMENTS, "shop", "web", "updatedReplicas"), 3);
        assert_int_equal(status_int(e, &SIM_DEPLOYMENTS, "shop", "web", "observedGeneration"), 1);
        sim_store_lock(e->store);
        json_object *d = sim_store_get(e->store, &SIM_DEPLOYMENTS, "shop", "web");
        json_object *conds = mr_json_get(d, "status", "conditions", NULL);
        bool found = false;
        for (size_t i = 0; i < json_object_array_length(conds); i++) {
                json_object *cond = json_object_array_get_idx(conds, i);
                if (streq_ptr(mr_json_get_str(cond, "type", NULL), "Progressing")) {
                        assert_string_equal(mr_json_get_str(cond, "reason", NULL), "NewReplicaSetAvailable");
                        found = true;
                }
        }
        assert_true(found);
        /* Pods got distinct IPs from their nodes' ranges and a hostIP. */
        sim_store_unlock(e->store);
}

static void cordon(json_object *node, void *u)
{
        json_object *spec = mr_json_ensure_object(node, "spec", NULL);
        if (u)
                mr_json_set_bool(spec, "unschedulable", true);
        else
                json_object_object_del(spec, "unschedulable");
}

static bool has_unschedulable_taint(Env *e, const char *node)
{
        bool found = false;
        sim_store_lock(e->store);
        json_object *taints = mr_json_get(sim_store_get(e->store, &SIM_NODES, NULL, node), "spec", "taints", NULL);
        for (size_t i = 0; taints && i < json_object_array_length(taints); i++)
                found |= streq_ptr(mr_json_get_str(json_object_array_get_idx(taints, i), "key", NULL),
                                   "node.kubernetes.io/unschedulable");
        sim_store_unlock(e->store);
        return found;
}

static void test_cordon_taint(void **state)
{
        Env *e = *state;
        add_nodes(e, 2);
        settle(e);
        assert_false(has_unschedulable_taint(e, "node-1"));
        modify(e, &SIM_NODES, NULL, "node-1", cordon, (void *)1);
        assert_false(has_unschedulable_taint(e, "node-1")); /* asynchronous, as on a real cluster */
        settle(e);
        assert_true(has_unschedulable_taint(e, "node-1"));
        assert_false(has_unschedulable_taint(e, "node-2"));
        /* New pods avoid the cordoned node. */
        create(e, &SIM_DEPLOYMENTS, WEB_DEPLOYMENT);
        settle(e);
        sim_store_lock(e->store);
        Count c = {};
        assert_int_equal(sim_store_foreach_pod_on_node(e->store, "node-1", count_pod, &c), 0);
        sim_store_unlock(e->store);
        assert_int_equal(c.total, 0);
        modify(e, &SIM_NODES, NULL, "node-1", cordon, NULL);
        settle(e);
        assert_false(has_unschedulable_taint(e, "node-1"));
}

#define ZTUNNEL(strategy)                                                                                          \
        "{\"apiVersion\":\"apps/v1\",\"kind\":\"DaemonSet\",\"metadata\":{\"name\":\"ztunnel\",\"namespace\":"       \
        "\"istio-system\"},\"spec\":{\"selector\":{\"matchLabels\":{\"app\":\"ztunnel\"}},\"updateStrategy\":"        \
        strategy ",\"template\":{\"metadata\":{\"labels\":{\"app\":\"ztunnel\",\"sidecar.istio.io/inject\":\"false\"}," \
        "\"annotations\":{\"sim.meshroll.io/startup-seconds\":\"3\",\"sim.meshroll.io/shutdown-seconds\":\"5\"}},"    \
        "\"spec\":{\"terminationGracePeriodSeconds\":30,\"containers\":[{\"name\":\"istio-proxy\",\"image\":\"ztunnel:1.24\"}]}}}}"

static void set_image(json_object *o, void *u)
{
        json_object *c = json_object_array_get_idx(mr_json_get(o, "spec", "template", "spec", "containers", NULL), 0);
        mr_json_set_str(c, "image", u);
}

typedef struct NodePod {
        const char *node;
        char name[256];
        char hash[32];
        bool deleting;
        int n;
} NodePod;

static int find_node_pod(json_object *pod, void *u)
{
        NodePod *np = u;
        np->n++;
        snprintf(np->name, sizeof np->name, "%s", mr_json_get_str(pod, "metadata", "name", NULL));
        snprintf(np->hash, sizeof np->hash, "%s",
                 strempty(mr_json_get_str(pod, "metadata", "labels", "controller-revision-hash", NULL)));
        np->deleting = sim_obj_is_deleting(pod);
        return 0;
}

static NodePod pod_on(Env *e, const char *node)
{
        NodePod np = { .node = node };
        sim_store_lock(e->store);
        assert_int_equal(sim_store_foreach_pod_on_node(e->store, node, find_node_pod, &np), 0);
        sim_store_unlock(e->store);
        return np;
}

static void test_daemonset_ondelete(void **state)
{
        Env *e = *state;
        add_nodes(e, 3);
        modify(e, &SIM_NODES, NULL, "node-2", cordon, (void *)1);
        create(e, &SIM_DAEMONSETS, ZTUNNEL("{\"type\":\"OnDelete\"}"));
        run_for(e, 5 * USEC_PER_SEC);
        assert_int_equal(count_pods(e, "istio-system", "DaemonSet").ready, 3); /* the cordoned node too */
        assert_int_equal(status_int(e, &SIM_DAEMONSETS, "istio-system", "ztunnel", "desiredNumberScheduled"), 3);
        assert_int_equal(status_int(e, &SIM_DAEMONSETS, "istio-system", "ztunnel", "numberAvailable"), 3);
        assert_int_equal(status_int(e, &SIM_DAEMONSETS, "istio-system", "ztunnel", "updatedNumberScheduled"), 3);
        NodePod before = pod_on(e, "node-1");
        assert_int_equal(before.n, 1);

        modify(e, &SIM_DAEMONSETS, "istio-system", "ztunnel", set_image, "ztunnel:1.25");
        run_for(e, 60 * USEC_PER_SEC);
        NodePod same = pod_on(e, "node-1");
        assert_string_equal(same.name, before.name); /* OnDelete: nothing replaced */
        assert_int_equal(status_int(e, &SIM_DAEMONSETS, "istio-system", "ztunnel", "updatedNumberScheduled"), 0);
        assert_int_equal(status_int(e, &SIM_DAEMONSETS, "istio-system", "ztunnel", "observedGeneration"), 2);

        /* Delete the old pod: no replacement while it terminates, a new-revision pod once it is gone. */
        sim_store_lock(e->store);
        assert_true(sim_store_delete(e->store, &SIM_PODS, "istio-system", before.name, -1, NULL, NULL, "test", NULL,
                                     NULL) >= 0);
        sim_store_unlock(e->store);
        run_for(e, 4 * USEC_PER_SEC);
        NodePod term = pod_on(e, "node-1");
        assert_int_equal(term.n, 1);
        assert_true(term.deleting);
        run_for(e, 2 * USEC_PER_SEC);
        NodePod fresh = pod_on(e, "node-1");
        assert_int_equal(fresh.n, 1);
        assert_false(fresh.deleting);
        assert_string_not_equal(fresh.hash, before.hash);
        run_for(e, 4 * USEC_PER_SEC);
        assert_int_equal(status_int(e, &SIM_DAEMONSETS, "istio-system", "ztunnel", "updatedNumberScheduled"), 1);
        assert_int_equal(status_int(e, &SIM_DAEMONSETS, "istio-system", "ztunnel", "numberAvailable"), 3);
        /* Two ControllerRevisions, numbered 1 and 2. */
        assert_int_equal(sim_store_count(e->store, &SIM_CONTROLLERREVISIONS, "istio-system"), 2);
}

static void test_daemonset_rolling(void **state)
{
        Env *e = *state;
        add_nodes(e, 4);
        create(e, &SIM_DAEMONSETS, ZTUNNEL("{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"maxUnavailable\":1}}"));
        run_for(e, 5 * USEC_PER_SEC);
        assert_int_equal(count_pods(e, "istio-system", NULL).ready, 4);
        modify(e, &SIM_DAEMONSETS, "istio-system", "ztunnel", set_image, "ztunnel:1.25");
        settle(e);
        /* Exactly one node is being replaced at a time. */
        assert_int_equal(count_pods(e, "istio-system", NULL).deleting, 1);
        assert_int_equal(status_int(e, &SIM_DAEMONSETS, "istio-system", "ztunnel", "observedGeneration"), 2);
        assert_true(status_int(e, &SIM_DAEMONSETS, "istio-system", "ztunnel", "updatedNumberScheduled") < 4);
        for (int i = 0; i < 40; i++) {
                run_for(e, USEC_PER_SEC);
                Count c = count_pods(e, "istio-system", NULL);
                assert_true(c.ready >= 3); /* maxUnavailable 1 */
        }
        assert_int_equal(status_int(e, &SIM_DAEMONSETS, "istio-system", "ztunnel", "updatedNumberScheduled"), 4);
        assert_int_equal(status_int(e, &SIM_DAEMONSETS, "istio-system", "ztunnel", "numberAvailable"), 4);
}

static void set_label(json_object *node, void *u)
{
        mr_json_set_str(mr_json_ensure_object(node, "metadata", "labels", NULL), "role", u);
}

static void add_taint(json_object *node, void *u)
{
        json_object *taints = mr_json_get(node, "spec", "taints", NULL);
        if (!taints) {
                taints = json_object_new_array();
                json_object_object_add(mr_json_ensure_object(node, "spec", NULL), "taints", taints);
        }
        json_object *t = NULL;
        assert_int_equal(mr_json_parse(u, strlen(u), 1 << 10, &t), 0);
        json_object_array_add(taints, t);
}

/*
 * The controller hears of the Node changes that move its pods — a label
 * its nodeSelector reads, a taint its pods do not tolerate — and of none
 * that cannot (a cordon, a tolerated taint), without a resync between.
 */
static void test_daemonset_follows_node_changes(void **state)
{
        Env *e = *state;
        add_nodes(e, 2);
        create(e, &SIM_DAEMONSETS,
               "{\"apiVersion\":\"apps/v1\",\"kind\":\"DaemonSet\",\"metadata\":{\"name\":\"agent\",\"namespace\":"
               "\"istio-system\"},\"spec\":{\"selector\":{\"matchLabels\":{\"app\":\"agent\"}},\"template\":{"
               "\"metadata\":{\"labels\":{\"app\":\"agent\"}},\"spec\":{\"nodeSelector\":{\"role\":\"mesh\"},"
               "\"containers\":[{\"name\":\"a\",\"image\":\"agent:1\"}]}}}}");
        run_for(e, 5 * USEC_PER_SEC);
        assert_int_equal(count_pods(e, "istio-system", "DaemonSet").total, 0);

        modify(e, &SIM_NODES, NULL, "node-1", set_label, "mesh");
        run_for(e, 5 * USEC_PER_SEC);
        assert_int_equal(pod_on(e, "node-1").n, 1);
        assert_int_equal(pod_on(e, "node-2").n, 0);

        modify(e, &SIM_NODES, NULL, "node-1", cordon, (void *)1); /* tolerated: the pod stays */
        modify(e, &SIM_NODES, NULL, "node-1", add_taint,
               "{\"key\":\"node.kubernetes.io/memory-pressure\",\"effect\":\"NoSchedule\"}");
        modify(e, &SIM_NODES, NULL, "node-2", set_label, "mesh");
        run_for(e, 5 * USEC_PER_SEC);
        assert_true(has_unschedulable_taint(e, "node-1"));
        assert_int_equal(pod_on(e, "node-1").n, 1);
        assert_int_equal(pod_on(e, "node-2").n, 1);

        modify(e, &SIM_NODES, NULL, "node-2", add_taint, "{\"key\":\"dedicated\",\"effect\":\"NoExecute\"}");
        run_for(e, 5 * USEC_PER_SEC);
        NodePod gone = pod_on(e, "node-2");
        assert_true(gone.n == 0 || gone.deleting);
        modify(e, &SIM_NODES, NULL, "node-1", set_label, "other");
        run_for(e, 5 * USEC_PER_SEC);
        NodePod left = pod_on(e, "node-1");
        assert_true(left.n == 0 || left.deleting);
        assert_int_equal(status_int(e, &SIM_DAEMONSETS, "istio-system", "agent", "desiredNumberScheduled"), 0);
}

/*
 * More nodes than the controller once had room for (4,096): every node
 * runs a pod, and a surge update over all of them (maxSurge 100 %) lists
 * every node at once.
 */
static void test_daemonset_many_nodes(void **state)
{
        Env *e = *state;
        enum { N = 4100 };
        for (int i = 0; i < N; i++) {
                char buf[384];
                snprintf(buf, sizeof buf,
                         "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"n-%05d\",\"labels\":"
                         "{\"kubernetes.io/hostname\":\"n-%05d\",\"kubernetes.io/os\":\"linux\"}},"
                         "\"status\":{\"allocatable\":{\"cpu\":\"4\",\"memory\":\"8Gi\",\"pods\":\"110\"}}}",
                         i, i);
                create(e, &SIM_NODES, buf);
        }
        create(e, &SIM_NAMESPACES, "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"istio-system\"}}");
        create(e, &SIM_DAEMONSETS,
               ZTUNNEL("{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"maxSurge\":\"100%\",\"maxUnavailable\":0}}"));
        run_for(e, 5 * USEC_PER_SEC);
        assert_int_equal(count_pods(e, "istio-system", NULL).ready, N);
        assert_int_equal(status_int(e, &SIM_DAEMONSETS, "istio-system", "ztunnel", "desiredNumberScheduled"), N);
        NodePod last = pod_on(e, "n-04099");
        assert_int_equal(last.n, 1);

        modify(e, &SIM_DAEMONSETS, "istio-system", "ztunnel", set_image, "ztunnel:1.25");
        settle(e);
        assert_int_equal(count_pods(e, "istio-system", NULL).total, 2 * N); /* a new pod beside every old one */
        run_for(e, 20 * USEC_PER_SEC);
        assert_int_equal(status_int(e, &SIM_DAEMONSETS, "istio-system", "ztunnel", "updatedNumberScheduled"), N);
        assert_int_equal(status_int(e, &SIM_DAEMONSETS, "istio-system", "ztunnel", "numberAvailable"), N);
        assert_int_equal(count_pods(e, "istio-system", NULL).total, N);
}

static void restart(json_object *o, void *u)
{
        json_object *ann = mr_json_ensure_object(o, "spec", "template", "metadata", "annotations", NULL);
        mr_json_set_str(ann, "kubectl.kubernetes.io/restartedAt", "2026-01-01T00:10:00Z");
}

static void test_rollout_restart(void **state)
{
        Env *e = *state;
        add_nodes(e, 3);
        create(e, &SIM_DEPLOYMENTS, WEB_DEPLOYMENT);
        run_for(e, 10 * USEC_PER_SEC);
        assert_int_equal(sim_store_count(e->store, &SIM_REPLICASETS, "shop"), 1);
        modify(e, &SIM_DEPLOYMENTS, "shop", "web", restart, NULL);
        settle(e);
        assert_int_equal(sim_store_count(e->store, &SIM_REPLICASETS, "shop"), 2);
        /* maxUnavailable 0: never fewer than 3 ready pods. */
        for (int i = 0; i < 40; i++) {
                assert_true(count_pods(e, "shop", NULL).ready >= 3);
                run_for(e, USEC_PER_SEC);
        }
        Count c = count_pods(e, "shop", NULL);
        assert_int_equal(c.total, 3);
        assert_int_equal(c.ready, 3);
        assert_int_equal(status_int(e, &SIM_DEPLOYMENTS, "shop", "web", "updatedReplicas"), 3);
        assert_int_equal(status_int(e, &SIM_DEPLOYMENTS, "shop", "web", "replicas"), 3);
        assert_int_equal(status_int(e, &SIM_DEPLOYMENTS, "shop", "web", "observedGeneration"), 2);
        sim_store_lock(e->store);
        assert_string_equal(mr_json_get_str(sim_store_get(e->store, &SIM_DEPLOYMENTS, "shop", "web"), "metadata",
                                            "annotations", "deployment.kubernetes.io/revision", NULL),
                            "2");
        sim_store_unlock(e->store);
}

typedef struct FirstPod {
        char name[256];
} FirstPod;

static int first_pod(json_object *pod, void *u)
{
        FirstPod *f = u;
        if (sim_obj_is_deleting(pod) || !sim_pod_is_ready(pod))
                return 0;
        snprintf(f->name, sizeof f->name, "%s", mr_json_get_str(pod, "metadata", "name", NULL));
        return 1;
}

static int evict_one(Env *e, MrError *err, SimEvictionDenial *denial)
{
        FirstPod f = {};
        sim_store_lock(e->store);
        assert_true(sim_store_foreach(e->store, &SIM_PODS, "shop", first_pod, &f) >= 0);
        json_object *pod = sim_store_get(e->store, &SIM_PODS, "shop", f.name);
        int r = sim_eviction_admit_ex(e->store, pod, denial, err);
        if (r == 0)
                assert_true(sim_store_delete(e->store, &SIM_PODS, "shop", f.name, -1, NULL, NULL, "test", NULL, NULL) >= 0);
        sim_store_unlock(e->store);
        return r;
}

static void test_eviction(void **state)
{
        Env *e = *state;
        MrError err = {};
        SimEvictionDenial denial;
        add_nodes(e, 3);
        create(e, &SIM_DEPLOYMENTS, WEB_DEPLOYMENT);
        create(e, &SIM_PDBS,
               "{\"apiVersion\":\"policy/v1\",\"kind\":\"PodDisruptionBudget\",\"metadata\":{\"name\":\"web\","
               "\"namespace\":\"shop\"},\"spec\":{\"minAvailable\":2,\"selector\":{\"matchLabels\":{\"app\":\"web\"}}}}");
        run_for(e, 10 * USEC_PER_SEC);
        assert_int_equal(status_int(e, &SIM_PDBS, "shop", "web", "currentHealthy"), 3);
        assert_int_equal(status_int(e, &SIM_PDBS, "shop", "web", "desiredHealthy"), 2);
        assert_int_equal(status_int(e, &SIM_PDBS, "shop", "web", "expectedPods"), 3);
        assert_int_equal(status_int(e, &SIM_PDBS, "shop", "web", "disruptionsAllowed"), 1);

        assert_int_equal(evict_one(e, &err, &denial), 0);
        /* The budget is spent at once, before any controller runs. */
        assert_int_equal(status_int(e, &SIM_PDBS, "shop", "web", "disruptionsAllowed"), 0);
        assert_int_equal(status_int(e, &SIM_PDBS, "shop", "web", "currentHealthy"), 3);
        settle(e); /* the disruption controller sees the evicted pod terminating */
        assert_int_equal(status_int(e, &SIM_PDBS, "shop", "web", "currentHealthy"), 2);
        assert_int_equal(evict_one(e, &err, &denial), -MR_ETOOMANY);
        assert_string_equal(err.message, "Cannot evict pod as it would violate the pod's disruption budget.");
        assert_string_equal(denial.cause, "The disruption budget web needs 2 healthy pods and has 2 currently");
        assert_int_equal(denial.retry_after, 0);
        /* Once the replacement is Ready, the budget allows one more. */
        run_for(e, 10 * USEC_PER_SEC);
        assert_int_equal(status_int(e, &SIM_PDBS, "shop", "web", "disruptionsAllowed"), 1);
        assert_int_equal(evict_one(e, &err, &denial), 0);

        /* A second PDB over the same pods: 500-style refusal. */
        create(e, &SIM_PDBS,
               "{\"apiVersion\":\"policy/v1\",\"kind\":\"PodDisruptionBudget\",\"metadata\":{\"name\":\"web2\","
               "\"namespace\":\"shop\"},\"spec\":{\"maxUnavailable\":1,\"selector\":{\"matchLabels\":{\"app\":\"web\"}}}}");
        run_for(e, 10 * USEC_PER_SEC);
        assert_int_equal(evict_one(e, &err, &denial), -EIO);
}

static int first_unready(json_object *pod, void *u)
{
        FirstPod *f = u;
        if (sim_obj_is_deleting(pod) || sim_pod_is_ready(pod))
                return 0;
        snprintf(f->name, sizeof f->name, "%s", mr_json_get_str(pod, "metadata", "name", NULL));
        return 1;
}

/* An unready pod is evictable without spending the budget while the budget is met. */
static void test_eviction_unready(void **state)
{
        Env *e = *state;
        MrError err = {};
        add_nodes(e, 3);
        create(e, &SIM_DEPLOYMENTS, WEB_DEPLOYMENT);
        create(e, &SIM_PDBS,
               "{\"apiVersion\":\"policy/v1\",\"kind\":\"PodDisruptionBudget\",\"metadata\":{\"name\":\"web\","
               "\"namespace\":\"shop\"},\"spec\":{\"minAvailable\":2,\"selector\":{\"matchLabels\":{\"app\":\"web\"}}}}");
        run_for(e, 10 * USEC_PER_SEC);
        assert_int_equal(evict_one(e, &err, NULL), 0);
        settle(e); /* replacement is Running, not Ready; 2 healthy of 2 desired */
        FirstPod f = {};
        sim_store_lock(e->store);
        assert_int_equal(sim_store_foreach(e->store, &SIM_PODS, "shop", first_unready, &f), 1);
        assert_int_equal(sim_eviction_admit(e->store, sim_store_get(e->store, &SIM_PODS, "shop", f.name), &err), 0);
        sim_store_unlock(e->store);
        assert_int_equal(status_int(e, &SIM_PDBS, "shop", "web", "disruptionsAllowed"), 0);
        /* A stale budget (spec changed, not yet observed) asks the client to come back in 10 s. */
        sim_store_lock(e->store);
        json_object *pdb = mr_json_copy(sim_store_get(e->store, &SIM_PDBS, "shop", "web"));
        json_object_object_add(mr_json_get(pdb, "spec", NULL), "minAvailable", json_object_new_int(1));
        assert_int_equal(sim_store_update(e->store, &SIM_PDBS, pdb, 0, "test", NULL, NULL), 0);
        sim_store_unlock(e->store);
        SimEvictionDenial denial;
        assert_int_equal(evict_one(e, &err, &denial), -MR_ETOOMANY);
        assert_int_equal(denial.retry_after, 10);
        assert_string_equal(denial.cause, "The disruption budget web is still being processed by the server.");
}

/* The real thread, on the real clock sped up 200×: pods turn Ready without anyone calling settle. */
static void test_thread(void **state)
{
        SimClock clock;
        SimStore *store;
        SimControllers *ctl;
        Env e = {};
        sim_clock_init(&clock, NULL, 200.0);
        assert_int_equal(sim_store_new(&clock, -1, &store), 0);
        SimControllersOptions o = { .seed = 3, .clock = &clock };
        assert_int_equal(sim_controllers_start(store, &o, &ctl), 0);
        e.store = store;
        add_nodes(&e, 2);
        create(&e, &SIM_DEPLOYMENTS, WEB_DEPLOYMENT);
        int ready = 0;
        for (int i = 0; i < 500 && ready < 3; i++) {
                usleep(10000);
                ready = count_pods(&e, "shop", NULL).ready;
        }
        assert_int_equal(ready, 3);
        assert_null(sim_controllers_stop(ctl));
        sim_store_free(store);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_deployment_becomes_ready, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cordon_taint, setup, teardown),
                cmocka_unit_test_setup_teardown(test_daemonset_ondelete, setup, teardown),
                cmocka_unit_test_setup_teardown(test_daemonset_rolling, setup, teardown),
                cmocka_unit_test_setup_teardown(test_daemonset_many_nodes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_daemonset_follows_node_changes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rollout_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_eviction, setup, teardown),
                cmocka_unit_test_setup_teardown(test_eviction_unready, setup, teardown),
                cmocka_unit_test(test_thread),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
