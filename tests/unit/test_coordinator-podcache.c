/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ztunnel pod cache (coordinator/podcache.h).
 *
 * Pure rules first, fed by hand through pod_cache_apply: resourceVersion
 * comparison (KEP-5504's form), what a (re)list and each event do, owner
 * filtering and order of pod_cache_fill, the min_rv barrier, a failed
 * cache, and the hash table against a reference under a thousand pods
 * added, changed and deleted in a scrambled order.
 *
 * Then against the in-process simulator (sped up 20×) with a real watch:
 * the cache agrees with ztunnel_inspect's list; after ztunnel_replace_full
 * deletes a pod, a fill at the delete's resourceVersion never shows that
 * pod alive; and with every watch dropped after a second and every resume
 * answered 410, the cache relists and still ends where the list does.
 * Every wait is bounded in time and rounds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include "meshroll/json-util.h"
#include "meshroll/kube.h"
#include "podcache.h"
#include "ztunnel.h"

/* The simulator, in-process (libkubesim). */
#include "sim.h"

#define OWNER "ds-uid-1"

/* A ztunnel pod as a server sends it; node "" puts the node in the affinity term instead. */
static json_object *pod(const char *uid, const char *name, const char *node, const char *owner, const char *rv,
                        const char *hash, bool ready, bool terminating, int restarts)
{
        char buf[2048];
        snprintf(buf, sizeof(buf),
                 "{\"metadata\":{\"uid\":\"%s\",\"name\":\"%s\",\"resourceVersion\":\"%s\","
                 "\"labels\":{\"app\":\"ztunnel\",\"controller-revision-hash\":\"%s\"},%s"
                 "\"ownerReferences\":[{\"uid\":\"other\",\"controller\":false},"
                 "{\"uid\":\"%s\",\"controller\":true}]},"
                 "\"spec\":{%s%s%s\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":"
                 "{\"nodeSelectorTerms\":[{\"matchFields\":[{\"key\":\"metadata.name\",\"operator\":\"In\","
                 "\"values\":[\"aff-%s\"]}]}]}}}},"
                 "\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"%s\"}],"
                 "\"containerStatuses\":[{\"restartCount\":%d}]}}",
                 uid, name, rv, hash, terminating ? "\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"," : "", owner,
                 *node ? "\"nodeName\":\"" : "", node, *node ? "\"," : "", name, ready ? "True" : "False",
                 restarts);
        json_object *o = json_tokener_parse(buf);
        assert_non_null(o);
        return o;
}

static void apply(PodCache *pc, KubeWatchEventType type, json_object *o, const char *rv)
{
        assert_int_equal(pod_cache_apply(pc, type, o, rv), 0);
        json_object_put(o);
}

static void on_change(PodCache *pc, void *userdata)
{
        (*(unsigned *)userdata)++;
}

static ZtunnelInfo *info(const char *uid)
{
        ZtunnelInfo *z = calloc(1, sizeof(ZtunnelInfo));
        assert_non_null(z);
        z->namespace = strdup("istio-system");
        z->name = strdup("ztunnel");
        z->uid = strdup(uid);
        assert_true(z->namespace && z->name && z->uid);
        return z;
}

/* pod_cache_fill into a fresh ZtunnelInfo for OWNER: the result, *ret owned (NULL unless 1). */
static int fill(PodCache *pc, const char *min_rv, ZtunnelInfo **ret)
{
        ZtunnelInfo *z = info(OWNER);
        int r = pod_cache_fill(pc, min_rv, z);
        *ret = r == 1 ? z : ztunnel_info_free(z);
        return r;
}

static void test_rv_compare(void **state)
{
        int c = 7;

        assert_int_equal(pod_cache_rv_compare("10", "9", &c), 0);
        assert_int_equal(c, 1);
        assert_int_equal(pod_cache_rv_compare("9", "10", &c), 0);
        assert_int_equal(c, -1);
        assert_int_equal(pod_cache_rv_compare("123", "123", &c), 0);
        assert_int_equal(c, 0);
        assert_int_equal(pod_cache_rv_compare("124", "123", &c), 0);
        assert_int_equal(c, 1);
        /* longer than any 64-bit number: still ordered */
        assert_int_equal(pod_cache_rv_compare("100000000000000000000000", "99999999999999999999999", &c), 0);
        assert_int_equal(c, 1);
        c = 7;
        assert_int_equal(pod_cache_rv_compare("0", "1", &c), -EINVAL);
        assert_int_equal(pod_cache_rv_compare("01", "1", &c), -EINVAL);
        assert_int_equal(pod_cache_rv_compare("1", "", &c), -EINVAL);
        assert_int_equal(pod_cache_rv_compare("1a", "1", &c), -EINVAL);
        assert_int_equal(pod_cache_rv_compare("-1", "1", &c), -EINVAL);
        assert_int_equal(pod_cache_rv_compare(NULL, "1", &c), -EINVAL);
        assert_int_equal(pod_cache_rv_compare("1", "2", NULL), -EINVAL);
        assert_int_equal(c, 7);
}

static void test_bad_arguments(void **state)
{
        PodCache *pc = NULL;
        ZtunnelInfo *z = info(OWNER);

        assert_int_equal(pod_cache_new(NULL, &pc), -EINVAL);
        assert_int_equal(pod_cache_new(&(PodCacheOptions){.namespace = "istio-system"}, &pc), -EINVAL);
        assert_int_equal(pod_cache_new(&(PodCacheOptions){.label_selector = "app=ztunnel"}, &pc), -EINVAL);
        assert_null(pc);
        assert_int_equal(pod_cache_fill(NULL, NULL, z), -EINVAL);
        assert_int_equal(pod_cache_apply(NULL, KUBE_WATCH_RESET, NULL, NULL), -EINVAL);
        assert_int_equal(pod_cache_start(NULL, NULL), -EINVAL);
        assert_false(pod_cache_synced(NULL));
        assert_null(pod_cache_resource_version(NULL));
        assert_null(pod_cache_free(NULL));
        ztunnel_info_free(z);
}

static void test_list_and_events(void **state)
{
        unsigned changes = 0;
        _cleanup_(pod_cache_freep) PodCache *pc = NULL;
        ZtunnelInfo *z = NULL;

        assert_int_equal(pod_cache_new(&(PodCacheOptions){.namespace = "istio-system",
                                                          .label_selector = "app=ztunnel",
                                                          .on_change = on_change,
                                                          .userdata = &changes},
                                       &pc),
                         0);
        assert_true(pod_cache_is_for(pc, "istio-system", "app=ztunnel"));
        assert_false(pod_cache_is_for(pc, "istio-system", "app=other"));
        assert_false(pod_cache_is_for(pc, "kube-system", "app=ztunnel"));
        /* nothing listed yet: no answer */
        assert_int_equal(fill(pc, NULL, &z), 0);

        /* a list: RESET, ADDED…, SYNCED; changes are reported only once it is whole */
        apply(pc, KUBE_WATCH_RESET, NULL, "100");
        apply(pc, KUBE_WATCH_ADDED, pod("u3", "zt-c", "n2", OWNER, "90", "old", true, false, 0), "100");
        apply(pc, KUBE_WATCH_ADDED, pod("u1", "zt-b", "n1", OWNER, "91", "old", true, false, 2), "100");
        apply(pc, KUBE_WATCH_ADDED, pod("u2", "zt-a", "n1", OWNER, "92", "new", false, true, 0), "100");
        apply(pc, KUBE_WATCH_ADDED, pod("u4", "zt-d", "n0", "someone-else", "93", "old", true, false, 0), "100");
        apply(pc, KUBE_WATCH_ADDED, pod("u5", "zt-e", "", OWNER, "94", "new", false, false, 0), "100");
        assert_false(pod_cache_synced(pc));
        assert_int_equal(changes, 0);
        assert_int_equal(fill(pc, NULL, &z), 0);
        apply(pc, KUBE_WATCH_SYNCED, NULL, "100");
        assert_true(pod_cache_synced(pc));
        assert_int_equal(pod_cache_syncs(pc), 1);
        assert_int_equal(changes, 1);
        assert_string_equal(pod_cache_resource_version(pc), "100");
        assert_int_equal(pod_cache_size(pc), 5);

        /* only OWNER's pods, by node then name; each field as ztunnel_inspect reads it */
        assert_int_equal(fill(pc, NULL, &z), 1);
        assert_int_equal(z->n_pods, 4);
        assert_string_equal(z->pods[0].node, "aff-zt-e"); /* not bound yet: the affinity's node */
        assert_string_equal(z->pods[1].name, "zt-a");
        assert_string_equal(z->pods[1].node, "n1");
        assert_true(z->pods[1].terminating);
        assert_false(z->pods[1].ready);
        assert_string_equal(z->pods[1].hash, "new");
        assert_string_equal(z->pods[2].name, "zt-b");
        assert_string_equal(z->pods[2].uid, "u1");
        assert_true(z->pods[2].ready);
        assert_int_equal(z->pods[2].restarts, 2);
        assert_string_equal(z->pods[3].name, "zt-c");
        assert_int_equal(ztunnel_node_state(z, "n1", "old"), ZTUNNEL_NODE_READY);
        assert_int_equal(ztunnel_node_state(z, "n0", "old"), ZTUNNEL_NODE_MISSING); /* another owner's pod */
        z = ztunnel_info_free(z);

        /* a pod of no one's */
        ZtunnelInfo *nobody = info("nobody");
        assert_int_equal(pod_cache_fill(pc, NULL, nobody), 1);
        assert_int_equal(nobody->n_pods, 0);
        ztunnel_info_free(nobody);

        /* the barrier: a write at 105 is not visible in a cache at 100 */
        assert_int_equal(fill(pc, "105", &z), 0);
        assert_int_equal(fill(pc, "100", &z), 1);
        z = ztunnel_info_free(z);
        assert_int_equal(fill(pc, "99", &z), 1);
        z = ztunnel_info_free(z);
        /* not comparable: never taken as caught up */
        assert_int_equal(fill(pc, "abc", &z), 0);

        /* the delete at 105 arrives as a change of the pod (terminating) */
        apply(pc, KUBE_WATCH_MODIFIED, pod("u1", "zt-b", "n1", OWNER, "105", "old", true, true, 2), NULL);
        assert_int_equal(changes, 2);
        assert_string_equal(pod_cache_resource_version(pc), "105");
        assert_int_equal(fill(pc, "105", &z), 1);
        assert_int_equal(ztunnel_node_state(z, "n1", "old"), ZTUNNEL_NODE_TERMINATING);
        z = ztunnel_info_free(z);

        /* gone, then a bookmark moves the version without a change */
        apply(pc, KUBE_WATCH_DELETED, pod("u1", "zt-b", "n1", OWNER, "110", "old", true, true, 2), NULL);
        apply(pc, KUBE_WATCH_DELETED, pod("u2", "zt-a", "n1", OWNER, "111", "new", false, true, 0), NULL);
        /* deleting what is not there changes nothing */
        apply(pc, KUBE_WATCH_DELETED, pod("u9", "zt-z", "n9", OWNER, "112", "new", false, true, 0), NULL);
        assert_int_equal(pod_cache_size(pc), 3);
        json_object *bm = json_tokener_parse("{\"kind\":\"Pod\",\"metadata\":{\"resourceVersion\":\"150\"}}");
        apply(pc, KUBE_WATCH_BOOKMARK, bm, NULL);
        assert_int_equal(changes, 5);
        assert_string_equal(pod_cache_resource_version(pc), "150");
        assert_int_equal(fill(pc, "150", &z), 1);
        assert_int_equal(z->n_pods, 2);
        assert_int_equal(ztunnel_node_state(z, "n1", "new"), ZTUNNEL_NODE_MISSING);
        z = ztunnel_info_free(z);

        /* a relist forgets everything first and answers nothing until it is whole */
        apply(pc, KUBE_WATCH_RESET, NULL, "200");
        assert_false(pod_cache_synced(pc));
        assert_int_equal(pod_cache_size(pc), 0);
        assert_int_equal(fill(pc, NULL, &z), 0);
        apply(pc, KUBE_WATCH_ADDED, pod("u7", "zt-g", "n1", OWNER, "190", "new", true, false, 0), "200");
        apply(pc, KUBE_WATCH_SYNCED, NULL, "200");
        assert_int_equal(pod_cache_syncs(pc), 2);
        assert_int_equal(fill(pc, "150", &z), 1);
        assert_int_equal(z->n_pods, 1);
        assert_int_equal(ztunnel_node_state(z, "n1", "new"), ZTUNNEL_NODE_READY);
        z = ztunnel_info_free(z);

        /* an event it cannot apply fails the cache for good */
        json_object *bad = json_tokener_parse("{\"metadata\":{\"name\":\"no-uid\",\"resourceVersion\":\"201\"}}");
        assert_int_equal(pod_cache_apply(pc, KUBE_WATCH_MODIFIED, bad, NULL), -EBADMSG);
        json_object_put(bad);
        assert_true(pod_cache_failed(pc));
        assert_false(pod_cache_synced(pc));
        assert_int_equal(fill(pc, NULL, &z), 0);
}

/* ---- the hash table against a reference --------------------------------------------------------- */

#define STRESS_PODS 1000

static size_t count_true(const bool *v, size_t n)
{
        size_t c = 0;
        for (size_t i = 0; i < n; i++)
                c += v[i];
        return c;
}

static void test_many_pods(void **state)
{
        _cleanup_(pod_cache_freep) PodCache *pc = NULL;
        bool present[STRESS_PODS] = {};
        bool ready[STRESS_PODS] = {};
        unsigned rv = 1000, order[STRESS_PODS];
        char uid[32], name[32], node[32], rvs[32];

        assert_int_equal(pod_cache_new(&(PodCacheOptions){.namespace = "ns", .label_selector = "a=b"}, &pc), 0);
        apply(pc, KUBE_WATCH_RESET, NULL, "1000");
        apply(pc, KUBE_WATCH_SYNCED, NULL, "1000");

        /* a scrambled order (7919 is prime, so i → i·7919 mod N is a permutation) */
        for (unsigned i = 0; i < STRESS_PODS; i++)
                order[i] = (i * 7919u) % STRESS_PODS;
        for (unsigned round = 0; round < 3; round++)
                for (unsigned k = 0; k < STRESS_PODS; k++) {
                        unsigned i = order[(k + round * 337u) % STRESS_PODS];
                        snprintf(uid, sizeof(uid), "uid-%u", i);
                        snprintf(name, sizeof(name), "zt-%04u", i);
                        snprintf(node, sizeof(node), "node-%04u", i);
                        snprintf(rvs, sizeof(rvs), "%u", ++rv);
                        /* round 0 adds all; round 1 deletes two thirds; round 2 re-adds and flips readiness */
                        bool del = round == 1 && i % 3 != 0;
                        if (del) {
                                apply(pc, KUBE_WATCH_DELETED, pod(uid, name, node, OWNER, rvs, "h", false, true, 0),
                                      NULL);
                                present[i] = false;
                        } else {
                                ready[i] = round == 2 ? (i % 2 == 0) : true;
                                apply(pc, present[i] ? KUBE_WATCH_MODIFIED : KUBE_WATCH_ADDED,
                                      pod(uid, name, node, OWNER, rvs, "h", ready[i], false, 0), NULL);
                                present[i] = true;
                        }
                        if (k % 100 == 0) /* no pod lost or duplicated by a move in the table */
                                assert_int_equal(pod_cache_size(pc), count_true(present, STRESS_PODS));
                }

        ZtunnelInfo *z = NULL;
        snprintf(rvs, sizeof(rvs), "%u", rv);
        assert_int_equal(fill(pc, rvs, &z), 1);
        assert_int_equal(z->n_pods, STRESS_PODS);
        for (unsigned i = 0; i < STRESS_PODS; i++) {
                snprintf(node, sizeof(node), "node-%04u", i);
                assert_string_equal(z->pods[i].node, node); /* sorted */
                assert_int_equal(z->pods[i].ready, ready[i]);
        }
        ztunnel_info_free(z);
}

/* ---- against the simulator ---------------------------------------------------------------------- */

#define SIM_SPEED 20.0
#define WAIT_MAX (20 * USEC_PER_SEC)

#define SCENARIO(faults)                                                                                    \
        "name: podcache\n"                                                                                  \
        "nodes:\n"                                                                                          \
        "  - {name: \"{pool}-{i}\", count: 3, pool: a}\n"                                                   \
        "istio:\n"                                                                                          \
        "  revisions:\n"                                                                                    \
        "    - {name: 1-24-0, version: 1.24.0}\n"                                                           \
        "    - {name: 1-25-0, version: 1.25.0}\n"                                                           \
        "  ztunnel: {revision: 1-24-0, startupSeconds: 2, shutdownSeconds: 2, pendingRevision: 1-25-0, "     \
        "updateStrategy: OnDelete}\n" faults

typedef struct Env {
        Sim *sim;
        KubeClient *c;
        sd_event *e;
        PodCache *pc;
        unsigned changes;
} Env;

static void env_start(Env *env, const char *scenario)
{
        KubeClientOptions o = {
            .qps = -1, .backoff_base = 5 * USEC_PER_MSEC, .backoff_cap = 20 * USEC_PER_MSEC};
        MrError err = {};

        SimOptions so = {.scenario_data = scenario, .scenario_size = strlen(scenario), .speed = SIM_SPEED};
        if (sim_start(&so, &env->sim, &err) < 0)
                fail_msg("sim_start: %s", err.message);
        KubeConfig cfg = {.server = (char *)sim_url(env->sim)};
        assert_int_equal(kube_client_new(&cfg, &o, &env->c, NULL), 0);
        assert_int_equal(sd_event_new(&env->e), 0);
        assert_int_equal(kube_client_attach_event(env->c, env->e), 0);
}

static void env_stop(Env *env)
{
        pod_cache_free(env->pc);
        kube_client_free(env->c);
        sd_event_unref(env->e);
        sim_stop(env->sim);
}

/* Inspects by listing, waiting out the controller's first snapshot (-EAGAIN). Owned. */
static ZtunnelInfo *list_inspect(Env *env)
{
        usec_t end = mr_now_monotonic(NULL) + WAIT_MAX;
        ZtunnelInfo *z = NULL;
        MrError err = {};
        int r;

        while ((r = ztunnel_inspect(env->c, "istio-system", "ztunnel", &z, &err)) == -EAGAIN &&
               mr_now_monotonic(NULL) < end)
                assert_true(sd_event_run(env->e, 50 * USEC_PER_MSEC) >= 0);
        if (r < 0)
                fail_msg("ztunnel_inspect: %s", err.message);
        assert_false(z->pods_cached);
        return z;
}

typedef struct Source {
        PodCache *pc;
        const char *min_rv;
} Source;

/* The pod source the engine uses, reduced to the cache: 1 or 0 as pod_cache_fill. */
static int source(ZtunnelInfo *z, void *userdata, MrError *err)
{
        Source *src = userdata;
        return pod_cache_fill(src->pc, src->min_rv, z);
}

/* Inspects with the pods from the cache, once it can answer at min_rv (bounded). Owned. */
static ZtunnelInfo *cache_inspect(Env *env, const char *min_rv)
{
        usec_t end = mr_now_monotonic(NULL) + WAIT_MAX;
        MrError err = {};

        Source src = {.pc = env->pc, .min_rv = min_rv};
        for (unsigned round = 0; mr_now_monotonic(NULL) < end && round < 2000; round++) {
                ZtunnelInfo *z = NULL;
                int r = ztunnel_inspect_full(env->c, "istio-system", "ztunnel", source, &src, &z, &err);
                if (r < 0 && r != -EAGAIN)
                        fail_msg("ztunnel_inspect_full: %s", err.message);
                if (r >= 0 && z->pods_cached)
                        return z;
                ztunnel_info_free(z);
                assert_true(sd_event_run(env->e, 20 * USEC_PER_MSEC) >= 0);
        }
        fail_msg("the cache did not answer at resourceVersion %s (synced: %d, at %s)", strna(min_rv),
                 pod_cache_synced(env->pc), strna(pod_cache_resource_version(env->pc)));
        return NULL;
}

static void start_cache(Env *env, const ZtunnelInfo *z)
{
        PodCacheOptions o = {
            .namespace = "istio-system", .label_selector = z->selector, .on_change = on_change, .userdata = &env->changes};
        assert_non_null(z->selector);
        assert_int_equal(pod_cache_new(&o, &env->pc), 0);
        assert_int_equal(pod_cache_start(env->pc, env->c), 0);
        assert_int_equal(pod_cache_start(env->pc, env->c), -EBUSY);
}

/* The two views hold the same pods with the same fields. */
static void assert_same_pods(const ZtunnelInfo *a, const ZtunnelInfo *b)
{
        assert_int_equal(a->n_pods, b->n_pods);
        for (size_t i = 0; i < a->n_pods; i++) {
                assert_string_equal(a->pods[i].uid, b->pods[i].uid);
                assert_string_equal(a->pods[i].node, b->pods[i].node);
                assert_string_equal(a->pods[i].name, b->pods[i].name);
                assert_string_equal(strempty(a->pods[i].hash), strempty(b->pods[i].hash));
                assert_int_equal(a->pods[i].ready, b->pods[i].ready);
                assert_int_equal(a->pods[i].terminating, b->pods[i].terminating);
        }
}

/* Waits until every node runs want Ready in the list's view, then returns that view (owned). */
static ZtunnelInfo *wait_all_ready(Env *env, const char *want)
{
        usec_t end = mr_now_monotonic(NULL) + WAIT_MAX;
        static const char *const nodes[] = {"a-1", "a-2", "a-3"};

        while (mr_now_monotonic(NULL) < end) {
                ZtunnelInfo *z = list_inspect(env);
                bool all = true;
                for (size_t i = 0; i < ELEMENTSOF(nodes); i++)
                        all = all && ztunnel_node_state(z, nodes[i], want) == ZTUNNEL_NODE_READY;
                if (all)
                        return z;
                ztunnel_info_free(z);
                assert_true(sd_event_run(env->e, 50 * USEC_PER_MSEC) >= 0);
        }
        fail_msg("not every node runs %s Ready", want);
        return NULL;
}

/*
 * Replaces ztunnel on a-1 and checks that the cache reads that write at
 * once and follows the new pod to Ready, ending where the list does.
 */
static void run_replacement(Env *env, bool expect_relists)
{
        const char *a1[] = {"a-1", NULL};
        _cleanup_free_ char *rv = NULL;
        MrError err = {};

        /* the starting point: every node on the previous revision, Ready */
        ZtunnelInfo *probe = list_inspect(env);
        assert_non_null(probe->previous_hash);
        _cleanup_free_ char *prev = strdup(probe->previous_hash);
        ztunnel_info_free(probe);
        ZtunnelInfo *start = wait_all_ready(env, prev);
        start_cache(env, start);

        /* synced: the cache's view is the list's */
        ZtunnelInfo *cached = cache_inspect(env, NULL);
        assert_true(cached->pods_cached);
        assert_same_pods(cached, start);
        assert_string_equal(cached->update_hash, start->update_hash);
        assert_string_equal(cached->previous_hash, start->previous_hash);
        _cleanup_free_ char *old_uid = strdup(ztunnel_pod_on(cached, "a-1")->uid);
        ztunnel_info_free(cached);

        /* replace a-1: the delete's resourceVersion is the barrier */
        assert_int_equal(ztunnel_replace_full(env->c, start, a1, start->update_hash, &rv, &err), 1);
        assert_non_null(rv);
        cached = cache_inspect(env, rv);
        /* read-your-writes: the deleted pod is terminating or gone, never serving */
        for (size_t i = 0; i < cached->n_pods; i++)
                if (streq(cached->pods[i].uid, old_uid))
                        assert_true(cached->pods[i].terminating);
        assert_int_not_equal(ztunnel_node_state(cached, "a-1", start->previous_hash), ZTUNNEL_NODE_READY);
        ztunnel_info_free(cached);

        /* the new pod comes up; the cache ends where the list does */
        ZtunnelInfo *done = NULL;
        {
                usec_t end = mr_now_monotonic(NULL) + WAIT_MAX;
                while (mr_now_monotonic(NULL) < end) {
                        done = list_inspect(env);
                        if (ztunnel_node_state(done, "a-1", start->update_hash) == ZTUNNEL_NODE_READY)
                                break;
                        done = ztunnel_info_free(done);
                        assert_true(sd_event_run(env->e, 50 * USEC_PER_MSEC) >= 0);
                }
                assert_non_null(done);
        }
        cached = cache_inspect(env, NULL);
        for (unsigned round = 0; round < 400; round++) {
                /* the cache may lag the list by an event still in flight: look again (bounded) */
                bool same = cached->n_pods == done->n_pods;
                for (size_t i = 0; same && i < cached->n_pods; i++)
                        same = streq(cached->pods[i].uid, done->pods[i].uid) &&
                               cached->pods[i].ready == done->pods[i].ready &&
                               cached->pods[i].terminating == done->pods[i].terminating;
                if (same)
                        break;
                ztunnel_info_free(cached);
                assert_true(sd_event_run(env->e, 50 * USEC_PER_MSEC) >= 0);
                cached = cache_inspect(env, NULL);
        }
        assert_same_pods(cached, done);
        assert_int_equal(ztunnel_node_state(cached, "a-1", start->update_hash), ZTUNNEL_NODE_READY);
        assert_true(env->changes > 1);
        if (expect_relists)
                assert_true(pod_cache_syncs(env->pc) > 1);
        else
                assert_int_equal(pod_cache_syncs(env->pc), 1);
        ztunnel_info_free(cached);
        ztunnel_info_free(done);
        ztunnel_info_free(start);
}

static void test_sim_follows_replacement(void **state)
{
        Env env = {};
        env_start(&env, SCENARIO(""));
        run_replacement(&env, false);
        env_stop(&env);
}

static void test_sim_dropped_watches_and_410(void **state)
{
        Env env = {};
        env_start(&env, SCENARIO("faults:\n  dropWatchesAfter: 1s\n  watchGoneRate: 1.0\n"));
        run_replacement(&env, true);
        env_stop(&env);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rv_compare),
                cmocka_unit_test(test_bad_arguments),
                cmocka_unit_test(test_list_and_events),
                cmocka_unit_test(test_many_pods),
                cmocka_unit_test(test_sim_follows_replacement),
                cmocka_unit_test(test_sim_dropped_watches_and_410),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
