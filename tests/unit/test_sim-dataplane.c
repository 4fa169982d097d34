/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The simulator's real data plane with the in-process simulator at high
 * speed: traffic flows from client pods through their node's proxy to the
 * backends' nodes and back; the kernel's socket table (/proc/self/net/tcp,
 * read with lib/procnet as the agent does) shows the proxies' accepted
 * sockets on <node address>:15001 and :15006; deleting a node's ztunnel pod
 * stops its listener and resets its connections when the pod is gone;
 * evicting a client pod and a backend pod moves connections gracefully with
 * no reset and no failed request; nothing is left open afterwards.
 *
 * Only loopback addresses are used: 127.<net>.0.0/16 with a net the data
 * plane reserves, so that concurrent test processes do not collide. Every
 * wait is bounded (WAIT_US real time).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

#include "controllers.h"
#include "dataplane.h"
#include "loadgen.h"
#include "meshroll/json-util.h"
#include "meshroll/procnet.h"
#include "sim.h"
#include "slowdown.h"

#define SPEED 20.0 /* simulated seconds per real second, natively (see slowdown.h) */
#define K 3
#define WAIT_US (60 * USEC_PER_SEC) /* generous: ASan on 2 shared cores is slow; a pass returns early */

/*
 * The workloads take 20 simulated seconds (a second of real time) to exit
 * once deleted: a backend whose process is gone before its peer's FIN comes
 * back resets the connection, as a real one would, and under ASan on two
 * busy cores that round trip has been seen to take longer than the
 * 50 ms a 1 s shutdown gives.
 */
static const char scenario[] =
    "name: dataplane\n"
    "nodes:\n"
    "  - {name: \"node-{i}\", count: 4}\n"
    "namespaces:\n"
    "  - {name: shop, labels: {istio.io/dataplane-mode: ambient}}\n"
    "istio:\n"
    "  revisions:\n"
    "    - {name: 1-24-0, version: 1.24.0, replicas: 1}\n"
    "    - {name: 1-25-0, version: 1.25.0, replicas: 1}\n"
    "  tags: {default: 1-24-0}\n"
    "  ztunnel: {revision: 1-24-0, pendingRevision: 1-25-0, updateStrategy: OnDelete,\n"
    "            startupSeconds: 1, shutdownSeconds: 6}\n"
    "workloads:\n"
    "  - {name: db, namespace: shop, replicas: 2, startupSeconds: 1, shutdownSeconds: 20,\n"
    "     service: {port: 5432, targetPort: 5432}, pdb: {minAvailable: 1}}\n"
    "  - {name: client, namespace: shop, replicas: 2, startupSeconds: 1, shutdownSeconds: 20,\n"
    "     pdb: {maxUnavailable: 1}}\n";

typedef struct Env {
        Sim *sim;
        SimDataplane *dp;
        SimLoadgen *lg;
        int fds_before;
        uint8_t net;
        bool through_sim_options;
} Env;

/*
 * The running environment, for the teardown: a failed assertion leaves the
 * test function with its simulator, data plane and load generator running,
 * and the next test would share their addresses. Each test's Env is
 * static so that it outlives that exit.
 */
static Env *running_env;

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        int n = 0;
        assert_non_null(d);
        for (struct dirent *e; (e = readdir(d));)
                n += e->d_name[0] != '.';
        closedir(d);
        return n - 1; /* the directory's own descriptor */
}

static void pause_ms(unsigned ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

typedef struct SockQuery {
        struct in_addr addr;
        uint16_t port;
        unsigned n;
} SockQuery;

static int count_sock(const ProcNetSocket *s, void *userdata)
{
        SockQuery *q = userdata;
        if (s->family == AF_INET && s->state == TCP_STATE_ESTABLISHED && s->local_port == q->port &&
            memcmp(s->local, &q->addr.s_addr, 4) == 0)
                q->n++;
        return 0;
}

/* ESTABLISHED sockets with local address addr:port, as the agent counts them (--local-addr). */
static unsigned established(const char *addr, uint16_t port)
{
        SockQuery q = {.port = port};
        assert_int_equal(inet_pton(AF_INET, addr, &q.addr), 1);
        assert_int_equal(
            procnet_read_file(AT_FDCWD, "/proc/self/net/tcp", AF_INET, 64u << 20, count_sock, &q, NULL), 0);
        return q.n;
}

static SimLoadgenCounters counters(Env *e)
{
        SimLoadgenCounters c;
        sim_loadgen_get_counters(e->lg, &c);
        return c;
}

/* Waits until cond(e, arg) holds; fails the test after WAIT_US. */
static void wait_for(Env *e, bool (*cond)(Env *e, const void *arg), const void *arg, const char *what)
{
        usec_t deadline = sim_dataplane_now() + WAIT_US;
        while (!cond(e, arg)) {
                if (sim_dataplane_now() > deadline) {
                        SimLoadgenCounters c = counters(e);
                        fail_msg("timed out waiting for %s (active %u/%u, ok %llu, failed %llu, reset %llu)",
                                 what, c.connections_active, c.connections_wanted,
                                 (unsigned long long)c.requests_ok, (unsigned long long)c.requests_failed,
                                 (unsigned long long)c.connections_reset);
                }
                pause_ms(10);
        }
}

static bool pool_full(Env *e, const void *arg)
{
        SimLoadgenCounters c = counters(e);
        uint64_t min_ok = arg ? *(const uint64_t *)arg : 0;
        return c.connections_wanted >= 2 * K && c.connections_active == c.connections_wanted &&
               c.requests_ok >= min_ok;
}

static void env_start(Env *e, bool through_sim_options)
{
        MrError err = {};
        const char *services[] = {"shop/db", NULL};
        SimDataplaneOptions dpo = {.services = services}; /* net 0: a free one, reserved */

        *e = (Env){.fds_before = count_fds(), .through_sim_options = through_sim_options};
        running_env = e;
        SimOptions so = {
            .scenario_data = scenario, .scenario_size = strlen(scenario), .speed = SPEED / test_slowdown()};
        if (through_sim_options) {
                so.dataplane = true;
                so.dataplane_options = &dpo;
        }
        if (sim_start(&so, &e->sim, &err) < 0)
                fail_msg("sim_start: %s", err.message);
        if (through_sim_options)
                e->dp = sim_get_dataplane(e->sim);
        else
                assert_int_equal(sim_dataplane_start(sim_get_store(e->sim), &dpo, &e->dp), 0);
        assert_non_null(e->dp);
        e->net = sim_dataplane_get_net(e->dp);

        SimLoadgenOptions lo = {
            .client_namespace = "shop",
            .client_selector = "app=client",
            .service = "shop/db",
            .connections_per_pod = K,
            .rate = 100,
        };
        if (sim_loadgen_start(e->dp, &lo, &e->lg, &err) < 0)
                fail_msg("sim_loadgen_start: %s", err.message);
        uint64_t min_ok = 20;
        wait_for(e, pool_full, &min_ok, "the connection pool");
}

/* Stops what env_start started; both the end of a passing test and the teardown of a failed one. */
static void env_release(Env *e)
{
        e->lg = sim_loadgen_stop(e->lg);
        if (!e->through_sim_options)
                e->dp = sim_dataplane_stop(e->dp);
        e->sim = sim_stop(e->sim);
        running_env = NULL;
}

static int env_teardown(void **state)
{
        if (running_env)
                env_release(running_env);
        return 0;
}

static void env_stop(Env *e)
{
        SimLoadgenCounters c = counters(e);
        print_message("requests sent %llu ok %llu failed %llu retried %llu; connections opened %llu closed "
                      "%llu reset %llu "
                      "connect-failed %llu\n",
                      (unsigned long long)c.requests_sent, (unsigned long long)c.requests_ok,
                      (unsigned long long)c.requests_failed, (unsigned long long)c.requests_retried,
                      (unsigned long long)c.connections_opened, (unsigned long long)c.connections_closed,
                      (unsigned long long)c.connections_reset, (unsigned long long)c.connect_failed);
        env_release(e);
        assert_int_equal(count_fds(), e->fds_before);
}

/* The names of pods in ns matching label=value, with their nodes. */
typedef struct PodList {
        const char *key, *value;
        char name[8][128], node[8][128];
        bool ready[8], deleting[8];
        unsigned n;
} PodList;

static int collect_pod(json_object *pod, void *userdata)
{
        PodList *l = userdata;
        if (l->n >= ELEMENTSOF(l->name) ||
            !streq_ptr(mr_json_get_str(pod, "metadata", "labels", l->key, NULL), l->value))
                return 0;
        snprintf(l->name[l->n], sizeof l->name[0], "%s", mr_json_get_str(pod, "metadata", "name", NULL));
        snprintf(l->node[l->n], sizeof l->node[0], "%s",
                 strempty(mr_json_get_str(pod, "spec", "nodeName", NULL)));
        l->deleting[l->n] = mr_json_get(pod, "metadata", "deletionTimestamp", NULL) != NULL;
        json_object *conds = mr_json_get(pod, "status", "conditions", NULL);
        for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
                json_object *c = json_object_array_get_idx(conds, i);
                if (streq_ptr(mr_json_get_str(c, "type", NULL), "Ready"))
                        l->ready[l->n] = streq_ptr(mr_json_get_str(c, "status", NULL), "True");
        }
        l->n++;
        return 0;
}

static PodList pods(Env *e, const char *ns, const char *key, const char *value)
{
        PodList l = {.key = key, .value = value};
        SimStore *s = sim_get_store(e->sim);
        sim_store_lock(s);
        assert_int_equal(sim_store_foreach(s, &SIM_PODS, ns, collect_pod, &l), 0);
        sim_store_unlock(s);
        return l;
}

static SimDataplaneNode node_info(Env *e, const char *node)
{
        SimDataplaneNode n;
        assert_int_equal(sim_dataplane_get_node(e->dp, node, &n), 0);
        return n;
}

static const char *const nodes[] = {"node-1", "node-2", "node-3", "node-4"};

/* /proc agrees with the load generator: each node's 15001 sockets are its client pods' connections. */
static bool proc_matches(Env *e, const void *arg)
{
        unsigned out = 0, in = 0;
        for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
                SimDataplaneNode n = node_info(e, nodes[i]);
                unsigned o = established(n.address, 15001);
                int want = sim_loadgen_connections_on_node(e->lg, nodes[i]);
                if (want < 0 || o != (unsigned)want)
                        return false;
                out += o;
                in += established(n.address, 15006);
        }
        SimLoadgenCounters c = counters(e);
        return out == c.connections_active && in == c.connections_active;
}

static void test_traffic_flows(void **state)
{
        static Env env;
        Env *e = &env;
        env_start(e, true);

        /* Every node has its address, on the Node too, and a listening proxy. */
        SimStore *s = sim_get_store(e->sim);
        for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
                SimDataplaneNode n = node_info(e, nodes[i]);
                char want[INET_ADDRSTRLEN];
                snprintf(want, sizeof want, "127.%u.0.%zu", e->net, i + 1);
                assert_string_equal(n.address, want);
                assert_true(n.listening);
                sim_store_lock(s);
                const char *a = mr_json_get_str(sim_store_get(s, &SIM_NODES, NULL, nodes[i]), "metadata",
                                                "annotations", SIM_DATAPLANE_ADDRESS_ANNOTATION, NULL);
                assert_string_equal(a, want);
                sim_store_unlock(s);
        }
        assert_int_equal(sim_dataplane_get_node(e->dp, "no-such-node", &(SimDataplaneNode){}), -ENOENT);

        wait_for(e, proc_matches, NULL, "/proc/self/net/tcp to show every proxied connection");

        SimDataplaneStats st;
        assert_int_equal(sim_dataplane_get_stats(e->dp, &st), 0);
        assert_int_equal(st.backends_listening, 2); /* db only: the served Services */
        assert_int_equal(st.proxies_listening, ELEMENTSOF(nodes));
        assert_true(st.accepted_outbound >= 2 * K);
        assert_true(st.accepted_inbound >= 2 * K);
        assert_int_equal(st.proxy_reset, 0);

        SimLoadgenCounters c = counters(e);
        assert_int_equal(c.connections_reset, 0);
        assert_int_equal(c.requests_failed, 0);
        assert_int_equal(c.client_pods, 2);
        assert_true(c.requests_sent >= c.requests_ok);
        env_stop(e);
}

typedef struct NodeWait {
        const char *node;
        bool listening;
        uint64_t min_reset;
} NodeWait;

static bool node_state(Env *e, const void *arg)
{
        const NodeWait *w = arg;
        SimDataplaneNode n = node_info(e, w->node);
        return n.listening == w->listening && n.reset >= w->min_reset;
}

static bool resets_at_least(Env *e, const void *arg)
{
        return counters(e).connections_reset >= *(const uint64_t *)arg;
}

static void test_ztunnel_restart_resets(void **state)
{
        static Env env;
        Env *e = &env;
        env_start(e, false);
        wait_for(e, proc_matches, NULL, "a settled pool");

        /* The node of a client pod, the connections through it, and its ztunnel pod. */
        PodList clients = pods(e, "shop", "app", "client");
        assert_true(clients.n >= 1);
        const char *node = clients.node[0];
        int through = sim_loadgen_connections_on_node(e->lg, node);
        assert_true(through >= K);
        PodList zt = pods(e, "istio-system", "app", "ztunnel");
        const char *victim = NULL;
        for (unsigned i = 0; i < zt.n; i++)
                if (streq(zt.node[i], node))
                        victim = zt.name[i];
        assert_non_null(victim);
        SimDataplaneNode before = node_info(e, node);

        /* Deleted: the proxy stops accepting at once, while the pod drains for its shutdown time. */
        SimStore *s = sim_get_store(e->sim);
        sim_store_lock(s);
        assert_true(
            sim_store_delete(s, &SIM_PODS, "istio-system", victim, -1, NULL, NULL, "test", NULL, NULL) >= 0);
        sim_store_unlock(s);
        wait_for(e, node_state, &(NodeWait){.node = node, .listening = false},
                 "the proxy to stop accepting");
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(15001)};
        assert_int_equal(inet_pton(AF_INET, before.address, &sa.sin_addr), 1);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), -1);
        assert_int_equal(errno, ECONNREFUSED);
        close(fd);

        /* Gone: every connection it still held is reset, for real. */
        uint64_t want = (uint64_t)through;
        wait_for(e, node_state, &(NodeWait){.node = node, .listening = true, .min_reset = want},
                 "the resets and the replacement ztunnel");
        wait_for(e, resets_at_least, &want, "the clients to see the resets");
        wait_for(e, pool_full, NULL, "the clients to reconnect");

        SimLoadgenCounters c = counters(e);
        assert_true(c.connections_reset >= want);
        /* Each reset costs the application one request (in flight, or the next on the dead connection). */
        assert_true(c.requests_failed >= want);
        SimDataplaneStats st;
        assert_int_equal(sim_dataplane_get_stats(e->dp, &st), 0);
        assert_true(st.proxy_reset >= want);
        env_stop(e);
}

typedef struct Moved {
        const char *node;
} Moved;

static bool moved_off(Env *e, const void *arg)
{
        const Moved *m = arg;
        return sim_loadgen_connections_on_node(e->lg, m->node) == 0 && pool_full(e, NULL);
}

static void set_unschedulable(Env *e, const char *node, bool on)
{
        SimStore *s = sim_get_store(e->sim);
        sim_store_lock(s);
        json_object *n = mr_json_copy(sim_store_get(s, &SIM_NODES, NULL, node));
        assert_non_null(n);
        assert_int_equal(mr_json_set_bool(mr_json_ensure_object(n, "spec", NULL), "unschedulable", on), 0);
        assert_int_equal(sim_store_update(s, &SIM_NODES, n, 0, "test", NULL, NULL), 0);
        sim_store_unlock(s);
}

typedef struct Evict {
        const char *ns, *name;
} Evict;

/* The eviction subresource's steps: PDB admission, then a graceful delete. */
static bool evicted(Env *e, const void *arg)
{
        const Evict *ev = arg;
        SimStore *s = sim_get_store(e->sim);
        sim_store_lock(s);
        json_object *pod = sim_store_get(s, &SIM_PODS, ev->ns, ev->name);
        assert_non_null(pod);
        int r = sim_eviction_admit(s, pod, NULL);
        if (r >= 0)
                assert_true(sim_store_delete(s, &SIM_PODS, ev->ns, ev->name, -1, NULL, NULL, "test", NULL,
                                             NULL) >= 0);
        sim_store_unlock(s);
        assert_true(r >= 0 || r == -MR_ETOOMANY);
        return r >= 0;
}

static bool pods_settled(Env *e, const void *arg)
{
        const char *app = arg;
        PodList l = pods(e, "shop", "app", app);
        unsigned ready = 0;
        for (unsigned i = 0; i < l.n; i++)
                ready += l.ready[i] && !l.deleting[i];
        return l.n == 2 && ready == 2;
}

static void test_eviction_is_graceful(void **state)
{
        static Env env;
        Env *e = &env;
        env_start(e, false);
        wait_for(e, proc_matches, NULL, "a settled pool");

        /* Cordon the node of a client pod and evict the pod: its connections move, with FIN. */
        PodList clients = pods(e, "shop", "app", "client");
        assert_int_equal(clients.n, 2);
        const char *node = clients.node[0];
        bool shared = streq(clients.node[1], node);
        set_unschedulable(e, node, true);
        wait_for(e, evicted, &(Evict){"shop", clients.name[0]}, "the client eviction to be admitted");
        if (!shared)
                wait_for(e, moved_off, &(Moved){node}, "the connections to leave the drained node");
        wait_for(e, pods_settled, "client", "the client replacement");
        wait_for(e, pool_full, NULL, "the pool after the client eviction");
        SimLoadgenCounters c = counters(e);
        assert_true(c.connections_closed >= K);
        if (!shared) {
                SimDataplaneNode n = node_info(e, node);
                assert_int_equal(established(n.address, 15001), 0);
        }

        /* Evict a backend: its connections end with FIN, clients reconnect to the other one. */
        PodList dbs = pods(e, "shop", "app", "db");
        assert_int_equal(dbs.n, 2);
        uint64_t closed_before = c.connections_closed;
        wait_for(e, evicted, &(Evict){"shop", dbs.name[0]}, "the backend eviction to be admitted");
        wait_for(e, pods_settled, "db", "the backend replacement");
        uint64_t min_ok = c.requests_ok + 50;
        wait_for(e, pool_full, &min_ok, "traffic after the backend eviction");

        c = counters(e);
        assert_true(c.connections_closed > closed_before);
        assert_int_equal(c.connections_reset, 0);
        assert_int_equal(c.requests_failed, 0);
        SimDataplaneStats st;
        assert_int_equal(sim_dataplane_get_stats(e->dp, &st), 0);
        assert_int_equal(st.proxy_reset, 0);
        assert_int_equal(st.proxy_failed, 0);
        env_stop(e);
}

typedef struct NodePods {
        char name[16][128];
        bool daemon[16];
        unsigned n;
} NodePods;

static int collect_on_node(json_object *pod, void *userdata)
{
        NodePods *l = userdata;
        json_object *refs = mr_json_get(pod, "metadata", "ownerReferences", NULL);
        if (l->n >= ELEMENTSOF(l->name) || mr_json_get(pod, "metadata", "deletionTimestamp", NULL))
                return 0;
        snprintf(l->name[l->n], sizeof l->name[0], "%s/%s",
                 mr_json_get_str(pod, "metadata", "namespace", NULL),
                 mr_json_get_str(pod, "metadata", "name", NULL));
        l->daemon[l->n] =
            refs &&
            streq_ptr(mr_json_get_str(json_object_array_get_idx(refs, 0), "kind", NULL), "DaemonSet");
        l->n++;
        return 0;
}

static NodePods pods_on_node(Env *e, const char *node)
{
        NodePods l = {};
        SimStore *s = sim_get_store(e->sim);
        sim_store_lock(s);
        assert_int_equal(sim_store_foreach_pod_on_node(s, node, collect_on_node, &l), 0);
        sim_store_unlock(s);
        return l;
}

static bool node_quiet(Env *e, const void *arg)
{
        SimDataplaneNode n = node_info(e, arg);
        return established(n.address, 15001) == 0 && established(n.address, 15006) == 0 && n.active == 0 &&
               pool_full(e, NULL);
}

/*
 * meshroll's order on every node: cordon, evict, wait until the node's
 * proxies hold no connection, replace ztunnel, uncordon. Nothing is reset,
 * no request fails.
 */
static void test_drain_then_replace(void **state)
{
        static Env env;
        Env *e = &env;
        env_start(e, false);
        wait_for(e, proc_matches, NULL, "a settled pool");

        for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
                const char *node = nodes[i];
                set_unschedulable(e, node, true);
                NodePods on = pods_on_node(e, node);
                const char *ztunnel = NULL;
                for (unsigned k = 0; k < on.n; k++) {
                        char *slash = strchr(on.name[k], '/');
                        *slash = 0;
                        if (on.daemon[k])
                                ztunnel = slash + 1;
                        else
                                wait_for(e, evicted, &(Evict){on.name[k], slash + 1},
                                         "an eviction to be admitted");
                }
                assert_non_null(ztunnel);
                wait_for(e, node_quiet, node, "the node's connections to drain");

                SimStore *s = sim_get_store(e->sim);
                sim_store_lock(s);
                assert_true(sim_store_delete(s, &SIM_PODS, "istio-system", ztunnel, -1, NULL, NULL, "test",
                                             NULL, NULL) >= 0);
                sim_store_unlock(s);
                wait_for(e, node_state, &(NodeWait){.node = node, .listening = false},
                         "the old ztunnel to stop");
                wait_for(e, node_state, &(NodeWait){.node = node, .listening = true}, "the new ztunnel");
                set_unschedulable(e, node, false);
                wait_for(e, pods_settled, "db", "the backends");
                wait_for(e, pods_settled, "client", "the clients");
                assert_int_equal(node_info(e, node).reset, 0);
        }
        uint64_t min_ok = counters(e).requests_ok + 50;
        wait_for(e, pool_full, &min_ok, "traffic after the upgrade");

        SimLoadgenCounters c = counters(e);
        assert_int_equal(c.connections_reset, 0);
        assert_int_equal(c.requests_failed, 0);
        assert_true(c.connections_closed > 0);
        SimDataplaneStats st;
        assert_int_equal(sim_dataplane_get_stats(e->dp, &st), 0);
        assert_int_equal(st.proxy_reset, 0);
        assert_int_equal(st.proxy_failed, 0);
        env_stop(e);
}

static bool all_replaced(Env *e, const void *arg)
{
        const uint64_t *min_reset = arg;
        PodList zt = pods(e, "istio-system", "app", "ztunnel");
        SimStore *s = sim_get_store(e->sim);
        unsigned ok = 0;
        sim_store_lock(s);
        for (unsigned i = 0; i < zt.n; i++) {
                json_object *pod = sim_store_get(s, &SIM_PODS, "istio-system", zt.name[i]);
                ok += zt.ready[i] && !zt.deleting[i] &&
                      streq_ptr(mr_json_get_str(pod, "metadata", "annotations", "istio.io/rev", NULL),
                                "1-25-0");
        }
        sim_store_unlock(s);
        return zt.n == ELEMENTSOF(nodes) && ok == zt.n && counters(e).connections_reset >= *min_reset &&
               pool_full(e, NULL);
}

/* The in-place upgrade: the DaemonSet rolls (surge, no drain) and every connection is reset on the way. */
static void test_in_place_upgrade_resets(void **state)
{
        static Env env;
        Env *e = &env;
        env_start(e, false);
        wait_for(e, proc_matches, NULL, "a settled pool");
        uint64_t conns = counters(e).connections_active;

        SimStore *s = sim_get_store(e->sim);
        sim_store_lock(s);
        json_object *ds = mr_json_copy(sim_store_get(s, &SIM_DAEMONSETS, "istio-system", "ztunnel"));
        assert_non_null(ds);
        json_object *strategy = NULL;
        const char *rolling =
            "{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"maxSurge\":1,\"maxUnavailable\":0}}";
        assert_int_equal(mr_json_parse(rolling, strlen(rolling), 4096, &strategy), 0);
        json_object_object_add(mr_json_get(ds, "spec", NULL), "updateStrategy", strategy);
        assert_int_equal(sim_store_update(s, &SIM_DAEMONSETS, ds, 0, "test", NULL, NULL), 0);
        sim_store_unlock(s);

        wait_for(e, all_replaced, &conns, "the in-place rollout");
        SimLoadgenCounters c = counters(e);
        assert_true(c.connections_reset >= conns);
        assert_true(c.requests_failed >= conns);
        SimDataplaneStats st;
        assert_int_equal(sim_dataplane_get_stats(e->dp, &st), 0);
        assert_true(st.proxy_reset >= conns);
        env_stop(e);
}

/* 127.<net> is reserved while a data plane runs: a net taken is refused, the next free one is used. */
static void test_net_reserved(void **state)
{
        MrError err = {};
        Sim *sim = NULL;
        SimOptions so = {.scenario_data = scenario, .scenario_size = strlen(scenario), .speed = SPEED};
        if (sim_start(&so, &sim, &err) < 0)
                fail_msg("sim_start: %s", err.message);
        SimStore *store = sim_get_store(sim);
        SimDataplane *a = NULL, *b = NULL, *c = NULL;

        assert_int_equal(sim_dataplane_start(store, &(SimDataplaneOptions){.no_annotate = true}, &a), 0);
        uint8_t taken = sim_dataplane_get_net(a);
        assert_true(taken >= 1 && taken <= 254);
        assert_int_equal(
            sim_dataplane_start(store, &(SimDataplaneOptions){.net = taken, .no_annotate = true}, &b),
            -EADDRINUSE);
        assert_null(b);
        assert_int_equal(sim_dataplane_start(store, &(SimDataplaneOptions){.no_annotate = true}, &c), 0);
        assert_int_not_equal(sim_dataplane_get_net(c), taken);
        c = sim_dataplane_stop(c);
        a = sim_dataplane_stop(a);

        /* Stopping gives the net back. */
        assert_int_equal(
            sim_dataplane_start(store, &(SimDataplaneOptions){.net = taken, .no_annotate = true}, &b), 0);
        assert_int_equal(sim_dataplane_get_net(b), taken);
        b = sim_dataplane_stop(b);
        sim = sim_stop(sim);
}

static void test_bad_options(void **state)
{
        static Env env;
        Env *e = &env;
        env_start(e, true);
        MrError err = {};
        SimLoadgen *lg = NULL;
        SimLoadgenOptions lo = {
            .client_namespace = "shop", .client_selector = "app=client", .service = "db"};
        assert_int_equal(sim_loadgen_start(e->dp, &lo, &lg, &err), -MR_ECONFIG);
        assert_non_null(strstr(err.message, "namespace/name"));
        lo.service = "shop/db";
        lo.client_selector = "app in (";
        assert_int_equal(sim_loadgen_start(e->dp, &lo, &lg, &err), -MR_ECONFIG);
        assert_null(lg);
        env_stop(e);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_teardown(test_traffic_flows, env_teardown),
            cmocka_unit_test_teardown(test_ztunnel_restart_resets, env_teardown),
            cmocka_unit_test_teardown(test_eviction_is_graceful, env_teardown),
            cmocka_unit_test_teardown(test_drain_then_replace, env_teardown),
            cmocka_unit_test_teardown(test_in_place_upgrade_resets, env_teardown),
            cmocka_unit_test_teardown(test_bad_options, env_teardown),
            cmocka_unit_test(test_net_reserved),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
