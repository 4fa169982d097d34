/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>

#include "meshroll/json-util.h"
#include "store.h"

typedef struct Fixture {
        MrFakeClock fake;
        SimClock clock;
        SimStore *store;
} Fixture;

static int setup(void **state)
{
        Fixture *f = calloc(1, sizeof(*f));
        mr_fake_clock_init(&f->fake, 1000 * USEC_PER_SEC, 1767225600ULL * USEC_PER_SEC); /* 2026-01-01 */
        sim_clock_init(&f->clock, &f->fake.clock, 1.0);
        assert_int_equal(sim_store_new(&f->clock, -1, &f->store), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        Fixture *f = *state;
        sim_store_free(f->store);
        free(f);
        return 0;
}

static json_object *J(const char *s)
{
        json_object *o = NULL;
        assert_int_equal(mr_json_parse(s, strlen(s), 1 << 20, &o), 0);
        return o;
}

static json_object *create(SimStore *s, const SimKind *k, const char *json)
{
        json_object *ret = NULL;
        MrError err = {};
        int r = sim_store_create(s, k, J(json), "test", &ret, &err);
        if (r < 0)
                fail_msg("create failed: %s", err.message);
        return ret;
}

static void test_create_fills_metadata(void **state)
{
        Fixture *f = *state;
        json_object *o = create(f->store, &SIM_DAEMONSETS,
                                "{\"metadata\":{\"name\":\"ztunnel\",\"namespace\":\"istio-system\"},"
                                "\"spec\":{\"template\":{}},\"status\":{}}");
        assert_string_equal(mr_json_get_str(o, "kind", NULL), "DaemonSet");
        assert_string_equal(mr_json_get_str(o, "apiVersion", NULL), "apps/v1");
        assert_int_equal(strlen(mr_json_get_str(o, "metadata", "uid", NULL)), 36);
        assert_string_equal(mr_json_get_str(o, "metadata", "creationTimestamp", NULL), "2026-01-01T00:00:00Z");
        assert_string_equal(mr_json_get_str(o, "metadata", "resourceVersion", NULL), "2");
        int64_t g = 0;
        assert_int_equal(mr_json_get_int(&g, o, "metadata", "generation", NULL), 0);
        assert_int_equal(g, 1);
        assert_string_equal(mr_json_get_str(o, "metadata", "annotations", "deprecated.daemonset.template.generation",
                                            NULL),
                            "1");
        assert_string_equal(mr_json_get_str(o, "spec", "updateStrategy", "type", NULL), "RollingUpdate");
        assert_int_equal(sim_store_revision(f->store), 2);

        /* namespace defaulted; cluster-scoped namespace dropped; namespace label */
        o = create(f->store, &SIM_PODS, "{\"metadata\":{\"name\":\"p\"}}");
        assert_string_equal(mr_json_get_str(o, "metadata", "namespace", NULL), "default");
        assert_null(mr_json_get(o, "metadata", "generation", NULL));
        assert_string_equal(mr_json_get_str(o, "status", "phase", NULL), "Pending");
        o = create(f->store, &SIM_NAMESPACES, "{\"metadata\":{\"name\":\"shop\",\"namespace\":\"x\"}}");
        assert_null(mr_json_get(o, "metadata", "namespace", NULL));
        assert_string_equal(mr_json_get_str(o, "metadata", "labels", "kubernetes.io/metadata.name", NULL), "shop");
        assert_string_equal(mr_json_get_str(o, "status", "phase", NULL), "Active");
        assert_non_null(sim_store_get(f->store, &SIM_NAMESPACES, "ignored", "shop"));
}

static void test_create_errors_and_generate_name(void **state)
{
        Fixture *f = *state;
        MrError err = {};
        create(f->store, &SIM_NODES, "{\"metadata\":{\"name\":\"n1\"}}");
        assert_int_equal(sim_store_create(f->store, &SIM_NODES, J("{\"metadata\":{\"name\":\"n1\"}}"), NULL, NULL, &err),
                         -EEXIST);
        assert_string_equal(err.message, "nodes \"n1\" already exists");
        assert_int_equal(sim_store_create(f->store, &SIM_DEPLOYMENTS, J("{\"metadata\":{}}"), NULL, NULL, &err),
                         -MR_EINVALID);
        assert_non_null(strstr(err.message, "Deployment.apps \"\" is invalid: metadata.name: Required value"));

        json_object *o = create(f->store, &SIM_PODS, "{\"metadata\":{\"generateName\":\"web-\",\"namespace\":\"a\"}}");
        const char *name = mr_json_get_str(o, "metadata", "name", NULL);
        assert_int_equal(strlen(name), 9);
        assert_true(strneq(name, "web-", 4));
        assert_int_equal(strspn(name + 4, "bcdfghjklmnpqrstvwxz2456789"), 5);
        json_object *o2 = create(f->store, &SIM_PODS, "{\"metadata\":{\"generateName\":\"web-\",\"namespace\":\"a\"}}");
        assert_string_not_equal(mr_json_get_str(o2, "metadata", "uid", NULL), mr_json_get_str(o, "metadata", "uid", NULL));
}

static void test_update_conflict_generation_status(void **state)
{
        Fixture *f = *state;
        MrError err = {};
        json_object *ret = NULL;
        create(f->store, &SIM_DEPLOYMENTS,
               "{\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\"},\"spec\":{\"replicas\":2}}");

        /* stale RV → conflict */
        assert_int_equal(sim_store_update(f->store, &SIM_DEPLOYMENTS,
                                          J("{\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\",\"resourceVersion\":\"1\"},"
                                            "\"spec\":{\"replicas\":3}}"),
                                          SIM_UPDATE_CHECK_RV, "t", NULL, &err),
                         -MR_ECONFLICT);
        assert_string_equal(err.message, "Operation cannot be fulfilled on deployments.apps \"web\": the object has "
                                         "been modified; please apply your changes to the latest version and try again");
        /* spec change bumps generation; status is kept from the old object */
        assert_int_equal(sim_store_update(f->store, &SIM_DEPLOYMENTS,
                                          J("{\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\",\"resourceVersion\":\"2\","
                                            "\"uid\":\"forged\"},\"spec\":{\"replicas\":3},\"status\":{\"replicas\":9}}"),
                                          SIM_UPDATE_CHECK_RV, "t", &ret, &err),
                         0);
        int64_t v = 0;
        assert_int_equal(mr_json_get_int(&v, ret, "metadata", "generation", NULL), 0);
        assert_int_equal(v, 2);
        assert_null(mr_json_get(ret, "status", "replicas", NULL));
        assert_string_not_equal(mr_json_get_str(ret, "metadata", "uid", NULL), "forged");
        assert_string_equal(mr_json_get_str(ret, "metadata", "resourceVersion", NULL), "3");

        /* label change: no generation bump */
        assert_int_equal(sim_store_update(f->store, &SIM_DEPLOYMENTS,
                                          J("{\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\",\"labels\":{\"a\":\"b\"}},"
                                            "\"spec\":{\"replicas\":3}}"),
                                          0, "t", &ret, &err),
                         0);
        assert_int_equal(mr_json_get_int(&v, ret, "metadata", "generation", NULL), 0);
        assert_int_equal(v, 2);

        /* status update touches only status */
        assert_int_equal(sim_store_update(f->store, &SIM_DEPLOYMENTS,
                                          J("{\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\"},"
                                            "\"spec\":{\"replicas\":7},\"status\":{\"observedGeneration\":2}}"),
                                          SIM_UPDATE_STATUS, "t", &ret, &err),
                         0);
        assert_int_equal(mr_json_get_int(&v, ret, "spec", "replicas", NULL), 0);
        assert_int_equal(v, 3);
        assert_int_equal(mr_json_get_int(&v, ret, "status", "observedGeneration", NULL), 0);
        assert_int_equal(v, 2);
        uint64_t rev = sim_store_revision(f->store);

        /* a no-op write is no write */
        assert_int_equal(sim_store_update(f->store, &SIM_DEPLOYMENTS, mr_json_copy(ret), SIM_UPDATE_CHECK_RV, "t", NULL,
                                          &err),
                         0);
        assert_int_equal(sim_store_revision(f->store), rev);

        /* missing object, lease without RV */
        assert_int_equal(sim_store_update(f->store, &SIM_DEPLOYMENTS, J("{\"metadata\":{\"name\":\"x\",\"namespace\":\"shop\"}}"),
                                          0, "t", NULL, &err),
                         -ENOENT);
        assert_string_equal(err.message, "deployments.apps \"x\" not found");
        create(f->store, &SIM_LEASES, "{\"metadata\":{\"name\":\"l\",\"namespace\":\"shop\"}}");
        assert_int_equal(sim_store_update(f->store, &SIM_LEASES, J("{\"metadata\":{\"name\":\"l\",\"namespace\":\"shop\"}}"),
                                          SIM_UPDATE_CHECK_RV, "t", NULL, &err),
                         -MR_EINVALID);
        assert_non_null(strstr(err.message, "must be specified for an update"));
}

static void test_daemonset_template_generation(void **state)
{
        Fixture *f = *state;
        json_object *ret = NULL;
        create(f->store, &SIM_DAEMONSETS, "{\"metadata\":{\"name\":\"z\",\"namespace\":\"s\"},\"spec\":{\"template\":{\"a\":1}}}");
        json_object *n = mr_json_copy(sim_store_get(f->store, &SIM_DAEMONSETS, "s", "z"));
        json_object_object_add(mr_json_get(n, "spec", "template", NULL), "a", json_object_new_int(2));
        assert_int_equal(sim_store_update(f->store, &SIM_DAEMONSETS, n, SIM_UPDATE_CHECK_RV, "t", &ret, NULL), 0);
        assert_string_equal(mr_json_get_str(ret, "metadata", "annotations", "deprecated.daemonset.template.generation",
                                            NULL),
                            "2");
}

static int count_cb(json_object *obj, void *userdata)
{
        char *buf = userdata;
        size_t l = strlen(buf);
        snprintf(buf + l, 256 - l, "%s/%s ", strempty(mr_json_get_str(obj, "metadata", "namespace", NULL)),
                 mr_json_get_str(obj, "metadata", "name", NULL));
        return 0;
}

static void test_foreach_order_and_node_index(void **state)
{
        Fixture *f = *state;
        char buf[256] = "";
        create(f->store, &SIM_PODS, "{\"metadata\":{\"name\":\"b\",\"namespace\":\"y\"},\"spec\":{\"nodeName\":\"n1\"}}");
        create(f->store, &SIM_PODS, "{\"metadata\":{\"name\":\"a\",\"namespace\":\"y\"},\"spec\":{\"nodeName\":\"n2\"}}");
        create(f->store, &SIM_PODS, "{\"metadata\":{\"name\":\"c\",\"namespace\":\"x\"},\"spec\":{\"nodeName\":\"n1\"}}");
        create(f->store, &SIM_PODS, "{\"metadata\":{\"name\":\"d\",\"namespace\":\"x\"}}");
        assert_int_equal(sim_store_foreach(f->store, &SIM_PODS, NULL, count_cb, buf), 0);
        assert_string_equal(buf, "x/c x/d y/a y/b ");
        buf[0] = 0;
        assert_int_equal(sim_store_foreach(f->store, &SIM_PODS, "y", count_cb, buf), 0);
        assert_string_equal(buf, "y/a y/b ");
        buf[0] = 0;
        assert_int_equal(sim_store_foreach_pod_on_node(f->store, "n1", count_cb, buf), 0);
        assert_string_equal(buf, "x/c y/b ");
        assert_int_equal(sim_store_count(f->store, &SIM_PODS, "x"), 2);
        assert_int_equal(sim_store_count(f->store, &SIM_PODS, NULL), 4);

        /* binding d to n1 moves it into the index; removing b takes it out */
        json_object *d = mr_json_copy(sim_store_get(f->store, &SIM_PODS, "x", "d"));
        json_object_object_add(mr_json_get(d, "spec", NULL), "nodeName", json_object_new_string("n1"));
        assert_int_equal(sim_store_update(f->store, &SIM_PODS, d, 0, "sched", NULL, NULL), 0);
        assert_int_equal(sim_store_remove(f->store, &SIM_PODS, "y", "b", "kubelet"), 0);
        buf[0] = 0;
        assert_int_equal(sim_store_foreach_pod_on_node(f->store, "n1", count_cb, buf), 0);
        assert_string_equal(buf, "x/c x/d ");
        assert_int_equal(sim_store_remove(f->store, &SIM_PODS, "y", "b", "kubelet"), -ENOENT);
}

typedef struct Seen {
        char log[512];
} Seen;

static void observer(SimStore *s, const SimKind *k, SimEventType type, json_object *obj, json_object *old, void *u)
{
        Seen *seen = u;
        size_t l = strlen(seen->log);
        static const char *const names[] = {"ADDED", "MODIFIED", "DELETED"};
        snprintf(seen->log + l, sizeof(seen->log) - l, "%s %s %s %s;", names[type], k->resource,
                 mr_json_get_str(obj, "metadata", "name", NULL), old ? "old" : "-");
}

static void test_graceful_delete_and_finalizers(void **state)
{
        Fixture *f = *state;
        Seen seen = {};
        json_object *ret = NULL;
        MrError err = {};
        assert_int_equal(sim_store_observe(f->store, observer, &seen), 0);
        create(f->store, &SIM_PODS, "{\"metadata\":{\"name\":\"p\",\"namespace\":\"x\"},\"spec\":{\"nodeName\":\"n1\","
                                    "\"terminationGracePeriodSeconds\":20},\"status\":{\"phase\":\"Running\"}}");
        assert_int_equal(sim_store_delete(f->store, &SIM_PODS, "x", "p", -1, NULL, NULL, "kubectl", &ret, &err), 1);
        assert_string_equal(mr_json_get_str(ret, "metadata", "deletionTimestamp", NULL), "2026-01-01T00:00:20Z");
        int64_t g = 0;
        assert_int_equal(mr_json_get_int(&g, ret, "metadata", "deletionGracePeriodSeconds", NULL), 0);
        assert_int_equal(g, 20);
        /* same grace again: no write */
        uint64_t rev = sim_store_revision(f->store);
        assert_int_equal(sim_store_delete(f->store, &SIM_PODS, "x", "p", -1, NULL, NULL, "kubectl", &ret, &err), 1);
        assert_int_equal(sim_store_revision(f->store), rev);
        /* preconditions */
        assert_int_equal(sim_store_delete(f->store, &SIM_PODS, "x", "p", 0, "nope", NULL, "k", NULL, &err),
                         -MR_ECONFLICT);
        assert_non_null(strstr(err.message, "Precondition failed: UID in precondition: nope"));
        /* grace 0 removes it; the DELETED state carries the deletion revision */
        assert_int_equal(sim_store_delete(f->store, &SIM_PODS, "x", "p", 0, NULL, NULL, "kubelet", &ret, &err), 0);
        char want[32];
        snprintf(want, sizeof(want), "%llu", (unsigned long long)sim_store_revision(f->store));
        assert_string_equal(mr_json_get_str(ret, "metadata", "resourceVersion", NULL), want);
        assert_null(sim_store_get(f->store, &SIM_PODS, "x", "p"));
        assert_string_equal(seen.log, "ADDED pods p -;MODIFIED pods p old;DELETED pods p old;");

        /* unscheduled pod: immediate */
        create(f->store, &SIM_PODS, "{\"metadata\":{\"name\":\"q\",\"namespace\":\"x\"}}");
        assert_int_equal(sim_store_delete(f->store, &SIM_PODS, "x", "q", -1, NULL, NULL, "k", NULL, &err), 0);

        /* finalizers hold an object until the last one goes */
        create(f->store, &SIM_CONFIGMAPS, "{\"metadata\":{\"name\":\"c\",\"namespace\":\"x\",\"finalizers\":[\"a\"]}}");
        assert_int_equal(sim_store_delete(f->store, &SIM_CONFIGMAPS, "x", "c", -1, NULL, NULL, "k", &ret, &err), 1);
        assert_non_null(mr_json_get(ret, "metadata", "deletionTimestamp", NULL));
        json_object *c = mr_json_copy(ret);
        json_object_object_del(mr_json_get(c, "metadata", NULL), "finalizers");
        assert_int_equal(sim_store_update(f->store, &SIM_CONFIGMAPS, c, 0, "gc", NULL, &err), 0);
        assert_null(sim_store_get(f->store, &SIM_CONFIGMAPS, "x", "c"));
        assert_int_equal(sim_store_delete(f->store, &SIM_CONFIGMAPS, "x", "c", -1, NULL, NULL, "k", NULL, &err), -ENOENT);
        assert_string_equal(err.message, "configmaps \"c\" not found");
}

static void test_history_ring(void **state)
{
        Fixture *f = *state;
        uint64_t start = sim_store_revision(f->store);
        sim_store_set_history_limit(f->store, 3);
        assert_int_equal(sim_store_history_floor(f->store), start);
        for (int i = 0; i < 5; i++) {
                char js[128];
                snprintf(js, sizeof(js), "{\"metadata\":{\"name\":\"cm%d\",\"namespace\":\"x\"}}", i);
                create(f->store, &SIM_CONFIGMAPS, js);
        }
        /* revisions start+1..start+5; the last 3 are retained */
        assert_int_equal(sim_store_history_floor(f->store), start + 2);
        const SimEvent *ev = sim_store_history_after(f->store, start + 2);
        assert_non_null(ev);
        assert_int_equal(ev->revision, start + 3);
        assert_ptr_equal(ev->kind, &SIM_CONFIGMAPS);
        assert_int_equal(ev->type, SIM_EVENT_ADDED);
        assert_string_equal(mr_json_get_str(sim_event_object(f->store, ev), "metadata", "name", NULL), "cm2");
        assert_null(sim_store_history_after(f->store, start + 5));
        assert_non_null(strstr(sim_event_json(ev), "\"name\":\"cm2\""));
        /* waiting times out without writes */
        sim_store_lock(f->store);
        assert_int_equal(sim_store_wait(f->store, 1000), -ETIMEDOUT);
        sim_store_unlock(f->store);
}

static int count_owned(json_object *obj, void *userdata)
{
        (void)obj;
        (*(size_t *)userdata)++;
        return 0;
}

typedef struct RawSeen {
        char names[8][32];
        size_t n;
} RawSeen;

static int raw_cb(const SimRaw *raw, void *userdata)
{
        RawSeen *seen = userdata;
        assert_true(seen->n < 8);
        assert_int_equal(strlen(raw->json), raw->size);
        snprintf(seen->names[seen->n++], sizeof seen->names[0], "%s/%s", raw->ns, raw->name);
        return 0;
}

static void pod(SimStore *s, const char *name, const char *owner_uid, bool controller, const char *node)
{
        char buf[1024];
        snprintf(buf, sizeof buf,
                 "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"ns\",\"ownerReferences\":[{\"apiVersion\":\"apps/v1\","
                 "\"kind\":\"ReplicaSet\",\"name\":\"rs\",\"uid\":\"%s\",\"controller\":%s}]},"
                 "\"spec\":{\"nodeName\":\"%s\",\"containers\":[{\"name\":\"c\"}]},\"status\":{\"podIP\":\"10.0.0.%zu\"}}",
                 name, owner_uid, controller ? "true" : "false", node, strlen(name));
        create(s, &SIM_PODS, buf);
}

/* Objects are kept serialized: raw walks, the owner index, parsed trees dropped at a mark. */
static void test_compact_storage(void **state)
{
        Fixture *f = *state;
        RawSeen seen = {};
        size_t n = 0, size = 0;
        MrError err = {};

        pod(f->store, "a", "uid-1", true, "n1");
        pod(f->store, "bb", "uid-1", true, "n2");
        pod(f->store, "ccc", "uid-2", true, "n1");
        pod(f->store, "dddd", "uid-1", false, "n1"); /* not its controller */

        /* the stored JSON is what a parsed tree serializes to */
        const char *json = sim_store_get_json(f->store, &SIM_PODS, "ns", "bb", &size);
        assert_non_null(json);
        assert_int_equal(strlen(json), size);
        assert_string_equal(json, mr_json_compact(sim_store_get(f->store, &SIM_PODS, "ns", "bb")));
        assert_null(sim_store_get_json(f->store, &SIM_PODS, "ns", "zz", NULL));

        /* owner index: controller references only, per namespace */
        assert_int_equal(sim_store_foreach_owned(f->store, &SIM_PODS, "ns", "uid-1", count_owned, &n), 0);
        assert_int_equal(n, 2);
        n = 0;
        assert_int_equal(sim_store_foreach_owned(f->store, &SIM_PODS, "other", "uid-1", count_owned, &n), 0);
        assert_int_equal(n, 0);

        /* an update moves the object in the owner index */
        json_object *b = mr_json_copy(sim_store_get(f->store, &SIM_PODS, "ns", "bb"));
        assert_non_null(b);
        assert_int_equal(mr_json_set_str(json_object_array_get_idx(mr_json_get(b, "metadata", "ownerReferences", NULL), 0),
                                         "uid", "uid-2"),
                         0);
        assert_int_equal(sim_store_update(f->store, &SIM_PODS, b, 0, "test", NULL, &err), 0);
        n = 0;
        assert_int_equal(sim_store_foreach_owned(f->store, &SIM_PODS, "ns", "uid-2", count_owned, &n), 0);
        assert_int_equal(n, 2);
        const SimEvent *ev = sim_store_history_after(f->store, sim_store_revision(f->store) - 1);
        assert_non_null(ev);
        assert_int_equal(ev->type, SIM_EVENT_MODIFIED);
        assert_string_equal(sim_event_ns(ev), "ns");
        assert_string_equal(mr_json_get_str(json_object_array_get_idx(mr_json_get(sim_event_old(f->store, ev), "metadata",
                                                                                  "ownerReferences", NULL),
                                                                       0),
                                            "uid", NULL),
                            "uid-1");

        /* raw walks: key order, continue position, node index */
        assert_int_equal(sim_store_foreach_raw(f->store, &SIM_PODS, "ns", "ns", "a", raw_cb, &seen), 0);
        assert_int_equal(seen.n, 3);
        assert_string_equal(seen.names[0], "ns/bb");
        assert_string_equal(seen.names[2], "ns/dddd");
        seen = (RawSeen){};
        assert_int_equal(sim_store_foreach_raw_on_node(f->store, "n1", raw_cb, &seen), 0);
        assert_int_equal(seen.n, 3);
        assert_string_equal(seen.names[0], "ns/a");

        /* a mark drops what was parsed after it; the next read parses again */
        sim_store_release(f->store, 0); /* as at unlock: the writers' trees go too */
        size_t mark = sim_store_mark(f->store);
        assert_int_equal(mark, 0);
        json_object *a1 = sim_store_get(f->store, &SIM_PODS, "ns", "a");
        assert_non_null(a1);
        assert_ptr_equal(sim_store_get(f->store, &SIM_PODS, "ns", "a"), a1); /* cached while held */
        assert_true(sim_store_mark(f->store) > mark);
        sim_store_release(f->store, mark);
        assert_int_equal(sim_store_mark(f->store), mark);
        json_object *a2 = sim_store_get(f->store, &SIM_PODS, "ns", "a");
        assert_string_equal(mr_json_get_str(a2, "status", "podIP", NULL), "10.0.0.1");
        sim_store_release(f->store, 0);
        /* a delete keeps the last state readable until released */
        json_object *last = NULL;
        assert_int_equal(sim_store_delete(f->store, &SIM_PODS, "ns", "ccc", 0, NULL, NULL, "test", &last, &err), 0);
        assert_string_equal(mr_json_get_str(last, "metadata", "name", NULL), "ccc");
        n = 0;
        assert_int_equal(sim_store_foreach_owned(f->store, &SIM_PODS, NULL, "uid-2", count_owned, &n), 0);
        assert_int_equal(n, 1);

        /* counting what follows a list page, by index: within a namespace, across all */
        static const char *const keys[][2] = {{"a", "x"}, {"b", "m1"}, {"b", "m2"}, {"b", "m3"}, {"c", "y"}};
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                char buf[256];
                snprintf(buf, sizeof buf, "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\"}}", keys[i][1],
                         keys[i][0]);
                create(f->store, &SIM_CONFIGMAPS, buf);
        }
        assert_int_equal(sim_store_count_after(f->store, &SIM_CONFIGMAPS, "b", "b", "m1"), 2);
        assert_int_equal(sim_store_count_after(f->store, &SIM_CONFIGMAPS, "b", "b", "m3"), 0);
        assert_int_equal(sim_store_count_after(f->store, &SIM_CONFIGMAPS, NULL, "b", "m1"), 3);
        assert_int_equal(sim_store_count_after(f->store, &SIM_CONFIGMAPS, "b", NULL, NULL), 3);
        assert_int_equal(sim_store_count_after(f->store, &SIM_CONFIGMAPS, "zz", NULL, NULL), 0);
}

/* The label prefilter: only pods that may carry every pair reach the callback, in key order. */
static void test_foreach_labeled(void **state)
{
        Fixture *f = *state;
        char buf[256];

        create(f->store, &SIM_PODS, "{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\","
                                    "\"labels\":{\"app\":\"istiod\",\"app.kubernetes.io/part-of\":\"istio\"}}}");
        create(f->store, &SIM_PODS, "{\"metadata\":{\"name\":\"b\",\"namespace\":\"ns\","
                                    "\"labels\":{\"app\":\"ztunnel\"}},"
                                    "\"spec\":{\"containers\":[{\"name\":\"c\",\"env\":[{\"name\":\"X\",\"value\":\"istiod\"}]}]}}");
        /* the pair outside the labels: passes the filter (the caller's selector decides) */
        create(f->store, &SIM_PODS, "{\"metadata\":{\"name\":\"c\",\"namespace\":\"ns\","
                                    "\"annotations\":{\"app\":\"istiod\"}}}");
        create(f->store, &SIM_PODS, "{\"metadata\":{\"name\":\"d\",\"namespace\":\"other\","
                                    "\"labels\":{\"app\":\"istiod\"}}}");

        _cleanup_(json_object_putp) json_object *istiod = J("{\"app\":\"istiod\"}");
        buf[0] = 0;
        assert_int_equal(sim_store_foreach_labeled(f->store, &SIM_PODS, "ns", istiod, count_cb, buf), 0);
        assert_string_equal(buf, "ns/a ns/c "); /* b holds "istiod" only as another field's value */

        _cleanup_(json_object_putp) json_object *both = J("{\"app\":\"istiod\",\"app.kubernetes.io/part-of\":\"istio\"}");
        buf[0] = 0;
        assert_int_equal(sim_store_foreach_labeled(f->store, &SIM_PODS, NULL, both, count_cb, buf), 0);
        assert_string_equal(buf, "ns/a ");

        /* no selector, an empty one, or a value JSON would escape: no filtering */
        _cleanup_(json_object_putp) json_object *empty = J("{}"), *odd = J("{\"app\":\"a\\\"b\"}");
        buf[0] = 0;
        assert_int_equal(sim_store_foreach_labeled(f->store, &SIM_PODS, "ns", NULL, count_cb, buf), 0);
        assert_string_equal(buf, "ns/a ns/b ns/c ");
        buf[0] = 0;
        assert_int_equal(sim_store_foreach_labeled(f->store, &SIM_PODS, "ns", empty, count_cb, buf), 0);
        assert_string_equal(buf, "ns/a ns/b ns/c ");
        buf[0] = 0;
        assert_int_equal(sim_store_foreach_labeled(f->store, &SIM_PODS, "ns", odd, count_cb, buf), 0);
        assert_string_equal(buf, "ns/a ns/b ns/c ");
}

static void test_crd_and_kinds(void **state)
{
        Fixture *f = *state;
        MrError err = {};
        assert_ptr_equal(sim_store_find_kind(f->store, "apps", "v1", "daemonsets"), &SIM_DAEMONSETS);
        assert_ptr_equal(sim_store_find_kind(f->store, "", "v1", "pods"), &SIM_PODS);
        assert_ptr_equal(sim_store_find_kind_by_kind(f->store, "policy/v1", "PodDisruptionBudget"), &SIM_PDBS);
        assert_ptr_equal(sim_store_find_kind_by_kind(f->store, "v1", "Event"), &SIM_EVENTS);
        assert_null(sim_store_find_kind(f->store, "example.com", "v1", "widgets"));

        create(f->store, &SIM_CRDS,
               "{\"metadata\":{\"name\":\"widgets.example.com\"},\"spec\":{\"group\":\"example.com\",\"scope\":\"Cluster\","
               "\"names\":{\"plural\":\"widgets\",\"kind\":\"Widget\",\"shortNames\":[\"wd\"]},"
               "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,\"subresources\":{\"status\":{}}},"
               "{\"name\":\"v0\",\"served\":false}]}}");
        const SimKind *k = sim_store_find_kind(f->store, "example.com", "v1", "widgets");
        assert_non_null(k);
        assert_false(k->namespaced);
        assert_true(k->has_status);
        assert_string_equal(k->singular, "widget");
        assert_string_equal(k->short_names[0], "wd");
        assert_null(sim_store_find_kind(f->store, "example.com", "v0", "widgets"));
        json_object *w = create(f->store, k, "{\"metadata\":{\"name\":\"w1\"},\"spec\":{}}");
        assert_string_equal(mr_json_get_str(w, "apiVersion", NULL), "example.com/v1");

        assert_int_equal(sim_store_create(f->store, &SIM_CRDS,
                                          J("{\"metadata\":{\"name\":\"bad\"},\"spec\":{\"group\":\"g\",\"names\":{\"plural\":\"x\","
                                            "\"kind\":\"X\"},\"versions\":[{\"name\":\"v1\"}]}}"),
                                          NULL, NULL, &err),
                         -MR_EINVALID);

        char buf[64];
        assert_string_equal(sim_kind_group_resource(&SIM_DEPLOYMENTS, buf, sizeof(buf)), "deployments.apps");
        assert_string_equal(sim_kind_api_version(&SIM_PODS, buf, sizeof(buf)), "v1");
}

static void test_audit(void **state)
{
        MrFakeClock fake;
        SimClock clock;
        SimStore *s = NULL;
        mr_fake_clock_init(&fake, 0, 1767225600ULL * USEC_PER_SEC);
        sim_clock_init(&clock, &fake.clock, 1.0);
        int fd = memfd_create("audit", MFD_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(sim_store_new(&clock, fd, &s), 0);
        create(s, &SIM_NODES, "{\"metadata\":{\"name\":\"n1\"}}");
        json_object *n = mr_json_copy(sim_store_get(s, &SIM_NODES, NULL, "n1"));
        json_object_object_add(n, "spec", json_object_new_object());
        json_object_object_add(mr_json_get(n, "spec", NULL), "unschedulable", json_object_new_boolean(true));
        assert_int_equal(sim_store_update(s, &SIM_NODES, n, SIM_UPDATE_PATCH, "kubectl/v1.32.0", NULL, NULL), 0);
        sim_store_audit(s, "evict", "kubectl", &SIM_PODS, "x", "p", NULL);
        sim_store_free(s);

        char buf[4096] = "";
        assert_true(pread(fd, buf, sizeof(buf) - 1, 0) > 0);
        close(fd);
        char *l1 = buf, *l2 = strchr(l1, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
        assert_true(strneq(l1, "{\"time\":\"2026-01-01T00:00:00.000000Z\",\"verb\":\"create\",\"actor\":\"test\"", 68));
        assert_non_null(strstr(l2, "\"verb\":\"patch\",\"actor\":\"kubectl/v1.32.0\",\"apiVersion\":\"v1\","
                                   "\"resource\":\"nodes\",\"namespace\":\"\",\"name\":\"n1\",\"resourceVersion\":\"3\""));
        assert_non_null(strstr(l2, "\"unschedulable\":true"));
        assert_non_null(strstr(l3, "\"verb\":\"evict\""));
}

static void test_clock(void **state)
{
        MrFakeClock fake;
        SimClock c;
        mr_fake_clock_init(&fake, 5 * USEC_PER_SEC, 100 * USEC_PER_SEC);
        sim_clock_init(&c, &fake.clock, 10.0);
        fake.monotonic += 2 * USEC_PER_SEC;
        assert_int_equal(sim_clock_now(&c), 120 * USEC_PER_SEC);
        assert_int_equal(sim_clock_real_delay(&c, 30 * USEC_PER_SEC), 3 * USEC_PER_SEC);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_create_fills_metadata, setup, teardown),
                cmocka_unit_test_setup_teardown(test_create_errors_and_generate_name, setup, teardown),
                cmocka_unit_test_setup_teardown(test_update_conflict_generation_status, setup, teardown),
                cmocka_unit_test_setup_teardown(test_daemonset_template_generation, setup, teardown),
                cmocka_unit_test_setup_teardown(test_foreach_order_and_node_index, setup, teardown),
                cmocka_unit_test_setup_teardown(test_graceful_delete_and_finalizers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_history_ring, setup, teardown),
                cmocka_unit_test_setup_teardown(test_compact_storage, setup, teardown),
                cmocka_unit_test_setup_teardown(test_foreach_labeled, setup, teardown),
                cmocka_unit_test_setup_teardown(test_crd_and_kinds, setup, teardown),
                cmocka_unit_test(test_audit),
                cmocka_unit_test(test_clock),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
