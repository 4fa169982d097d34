/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cluster.c — one simulated cluster with real traffic (cluster.h).
 *
 * The simulator runs in this process (libkubesim, sim.h) with its data
 * plane: node proxies on 127.<net>.0.x, backends on 127.<net>.64.x, and the
 * load generator's client sockets, all on one data-plane thread
 * (docs/dataplane.md). Everything the demo does to the cluster — install
 * the CRD, change the ztunnel image, read rollout progress — goes through
 * the HTTP API with libmeshroll's client, exactly as kubectl or a CI job
 * would; only the traffic counters are read in-process.
 *
 * The connection pool is sized once the client Deployment is up: K =
 * ceil(connections / client pods) per pod, capped at `connections`, so the
 * connections are spread over every client pod (and so over every node
 * group) rather than piled on the first pod that became Ready.
 */
#include <stdio.h>

#include "cluster.h"
#include "loadgen.h"
#include "meshroll/fileio.h"
#include "meshroll/json-util.h"
#include "meshroll/log.h"
#include "meshroll/yaml-json.h"
#include "signals.h"
#include "sim.h"

#define ZTUNNEL_PATH "/apis/apps/v1/namespaces/istio-system/daemonsets/ztunnel"
#define POLL_INTERVAL (100 * USEC_PER_MSEC)

struct DemoCluster {
        Sim *sim;
        SimLoadgen *lg;
        KubeClient *client;
        unsigned connections;
};

const char *demo_cluster_url(DemoCluster *c)
{
        return sim_url(c->sim);
}

KubeClient *demo_cluster_client(DemoCluster *c)
{
        return c->client;
}

DemoCluster *demo_cluster_stop(DemoCluster *c)
{
        if (!c)
                return NULL;
        c->lg = sim_loadgen_stop(c->lg);
        kube_client_free(c->client);
        c->sim = sim_stop(c->sim);
        free(c);
        return NULL;
}

/* Waits for cond, polling; 0 once it holds, -ETIMEDOUT at the deadline, -ECANCELED on a signal, or cond's
 * error. */
static int wait_until(DemoCluster *c, int (*cond)(DemoCluster *c, void *arg), void *arg, usec_t deadline)
{
        for (;;) {
                int r = cond(c, arg);
                if (r != 0)
                        return r < 0 ? r : 0;
                if (mr_now_monotonic(NULL) >= deadline)
                        return -ETIMEDOUT;
                if (demo_wait(POLL_INTERVAL) < 0)
                        return -ECANCELED;
        }
}

static bool pod_ready(json_object *pod)
{
        json_object *conds = mr_json_get(pod, "status", "conditions", NULL);
        if (mr_json_get(pod, "metadata", "deletionTimestamp", NULL))
                return false;
        for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
                json_object *cond = json_object_array_get_idx(conds, i);
                if (streq_ptr(mr_json_get_str(cond, "type", NULL), "Ready"))
                        return streq_ptr(mr_json_get_str(cond, "status", NULL), "True");
        }
        return false;
}

static int64_t get_int(json_object *o, const char *a, const char *b, int64_t def)
{
        int64_t v;
        return mr_json_get_int(&v, o, a, b, NULL) == 0 ? v : def;
}

/* 1 when every Deployment and DaemonSet is fully available, 0 while not; API errors count as not yet. */
static int settled(DemoCluster *c, void *arg)
{
        _cleanup_(json_object_putp) json_object *deploys = NULL, *dss = NULL;
        if (kube_list(c->client, &KUBE_DEPLOYMENTS, NULL, NULL, &deploys, NULL, NULL) < 0 ||
            kube_list(c->client, &KUBE_DAEMONSETS, NULL, NULL, &dss, NULL, NULL) < 0)
                return 0;
        for (size_t i = 0; i < json_object_array_length(deploys); i++) {
                json_object *d = json_object_array_get_idx(deploys, i);
                int64_t want = get_int(d, "spec", "replicas", 1);
                if (get_int(d, "status", "availableReplicas", 0) < want ||
                    get_int(d, "status", "updatedReplicas", 0) < want ||
                    get_int(d, "status", "replicas", 0) != want)
                        return 0;
        }
        for (size_t i = 0; i < json_object_array_length(dss); i++) {
                json_object *d = json_object_array_get_idx(dss, i);
                int64_t want = get_int(d, "status", "desiredNumberScheduled", -1);
                if (want <= 0 || get_int(d, "status", "numberAvailable", 0) < want)
                        return 0;
        }
        return 1;
}

static int count_ready_pods(DemoCluster *c, const char *ns, const char *selector, unsigned *ret)
{
        _cleanup_(json_object_putp) json_object *pods = NULL;
        KubeListOptions lo = {.label_selector = selector};
        KubeStatus st;
        unsigned n = 0;
        int r = kube_list(c->client, &KUBE_PODS, ns, &lo, &pods, NULL, &st);
        if (r < 0)
                return log_error_errno(r, "Cannot list the client pods %s in %s: %s", selector, ns,
                                       st.message[0] ? st.message : "%m");
        for (size_t i = 0; i < json_object_array_length(pods); i++)
                n += pod_ready(json_object_array_get_idx(pods, i));
        *ret = n;
        return 0;
}

void demo_cluster_traffic(DemoCluster *c, DemoTraffic *ret)
{
        SimLoadgenCounters k;
        sim_loadgen_get_counters(c->lg, &k);
        *ret = (DemoTraffic){
            .requests_sent = k.requests_sent,
            .requests_ok = k.requests_ok,
            .requests_failed = k.requests_failed,
            .requests_retried = k.requests_retried,
            .requests_error = k.requests_error,
            .connections_opened = k.connections_opened,
            .connections_closed = k.connections_closed,
            .connections_reset = k.connections_reset,
            .connections_active = k.connections_active,
        };
}

/* 1 once the pool holds every connection, open, and each has been answered at least about once since arg. */
static int pool_full(DemoCluster *c, void *arg)
{
        const uint64_t *min_ok = arg;
        SimLoadgenCounters k;
        sim_loadgen_get_counters(c->lg, &k);
        return k.connections_wanted >= c->connections && k.connections_active == k.connections_wanted &&
               k.requests_in_flight <= k.connections_active && k.requests_ok >= *min_ok;
}

int demo_cluster_wait_traffic(DemoCluster *c, usec_t deadline)
{
        SimLoadgenCounters k;
        sim_loadgen_get_counters(c->lg, &k);
        uint64_t min_ok = k.requests_ok + c->connections;
        return wait_until(c, pool_full, &min_ok, deadline);
}

int demo_cluster_start(const DemoClusterOptions *o, DemoCluster **ret)
{
        _cleanup_(demo_cluster_stopp) DemoCluster *c = NULL;
        _cleanup_(kube_config_freep) KubeConfig *config = NULL;
        const char *services[] = {o->service, NULL};
        SimDataplaneOptions dpo = {.services = services}; /* net 0: a free 127.<net>, reserved */
        SimOptions so = {.scenario_path = o->scenario_path,
                         .scenario_data = o->scenario_data,
                         .scenario_size = o->scenario_data ? strlen(o->scenario_data) : 0,
                         .speed = o->speed,
                         .dataplane = true,
                         .dataplane_options = &dpo};
        MrError err = {};
        unsigned clients = 0;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return log_oom();
        r = sim_start(&so, &c->sim, &err);
        if (r < 0)
                return log_error_errno(r == -MR_EPARSE ? -MR_ECONFIG : r,
                                       "Cannot start the simulated cluster: %s",
                                       err.message[0] ? err.message : "%m");
        KubeConfigOptions ko = {.server = sim_url(c->sim)};
        KubeClientOptions co = {.qps = -1, .max_retries = 3, .request_timeout = 10 * USEC_PER_SEC};
        if ((r = kube_config_load(&ko, &config, &err)) < 0 ||
            (r = kube_client_new(config, &co, &c->client, &err)) < 0)
                return log_error_errno(r, "Cannot talk to the simulator: %s", err.message);

        r = wait_until(c, settled, NULL, o->deadline);
        if (r == -ETIMEDOUT)
                return log_error_errno(r, "The simulated cluster did not become ready in time.");
        if (r < 0)
                return r;
        if ((r = count_ready_pods(c, o->client_namespace, o->client_selector, &clients)) < 0)
                return r;
        if (clients == 0)
                return log_error_errno(-MR_ECONFIG, "No Ready client pod in %s matches %s (see --client).",
                                       o->client_namespace, o->client_selector);

        c->connections = o->connections;
        SimLoadgenOptions lo = {
            .client_namespace = o->client_namespace,
            .client_selector = o->client_selector,
            .service = o->service,
            .connections_per_pod = (o->connections + clients - 1) / clients,
            .max_connections = o->connections,
            .rate = o->rate,
            .requests_per_connection = o->requests_per_connection,
        };
        r = sim_loadgen_start(sim_get_dataplane(c->sim), &lo, &c->lg, &err);
        if (r < 0)
                return log_error_errno(r, "Cannot start the load generator: %s", err.message);
        uint64_t min_ok = o->connections;
        r = wait_until(c, pool_full, &min_ok, o->deadline);
        if (r == -ETIMEDOUT) {
                DemoTraffic t;
                demo_cluster_traffic(c, &t);
                return log_error_errno(
                    r, "Traffic did not start in time: %u of %u connections open, %llu answers.",
                    t.connections_active, o->connections, (unsigned long long)t.requests_ok);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

static int strcmp_ptr(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int demo_cluster_nodes(DemoCluster *c, char ***ret_names, char ***ret_addresses)
{
        _cleanup_(json_object_putp) json_object *nodes = NULL;
        _cleanup_strv_free_ char **names = NULL, **addrs = NULL;
        KubeStatus st;
        int r = kube_list(c->client, &KUBE_NODES, NULL, NULL, &nodes, NULL, &st);
        if (r < 0)
                return log_error_errno(r, "Cannot list nodes: %s", st.message[0] ? st.message : "%m");
        size_t n = json_object_array_length(nodes);
        names = calloc(n + 1, sizeof(char *));
        addrs = calloc(n + 1, sizeof(char *));
        if (!names || !addrs)
                return log_oom();
        for (size_t i = 0; i < n; i++) {
                const char *name =
                    mr_json_get_str(json_object_array_get_idx(nodes, i), "metadata", "name", NULL);
                if (!name || !(names[i] = strdup(name)))
                        return log_oom();
        }
        qsort(names, n, sizeof(char *), strcmp_ptr);
        for (size_t i = 0; i < n; i++) {
                SimDataplaneNode dn;
                r = sim_dataplane_get_node(sim_get_dataplane(c->sim), names[i], &dn);
                if (r < 0)
                        return log_error_errno(r, "The data plane has no address for node %s: %m", names[i]);
                if (!(addrs[i] = strdup(dn.address)))
                        return log_oom();
        }
        *ret_names = TAKE_PTR(names);
        *ret_addresses = TAKE_PTR(addrs);
        return 0;
}

int demo_cluster_node_connections(DemoCluster *c, const char *node)
{
        SimDataplaneNode dn;
        int r = sim_dataplane_get_node(sim_get_dataplane(c->sim), node, &dn);
        return r < 0 ? r : (int)MIN(dn.active, (uint32_t)INT32_MAX);
}

/* POSTs obj to collection; an object that already exists is fine. */
static int create_once(DemoCluster *c, const char *collection, json_object *obj, const char *what)
{
        KubeStatus st;
        int r = kube_create(c->client, collection, obj, NULL, &st);
        if (r == -EEXIST)
                return 0;
        if (r < 0)
                return log_error_errno(r, "Cannot create %s: %s", what, st.message[0] ? st.message : "%m");
        return 0;
}

int demo_cluster_ensure_namespace(DemoCluster *c, const char *name)
{
        _cleanup_(json_object_putp) json_object *ns = json_object_new_object();
        if (!ns || mr_json_set_str(mr_json_ensure_object(ns, "metadata", NULL), "name", name) < 0)
                return log_oom();
        return create_once(c, "/api/v1/namespaces", ns, name);
}

int demo_cluster_install_crd(DemoCluster *c, const char *manifests_dir)
{
        _cleanup_(json_object_putp) json_object *crd = NULL;
        _cleanup_free_ char *path = NULL, *data = NULL;
        MrError err = {};
        size_t size;
        int r;

        if (asprintf(&path, "%s/crd-rollout.yaml", manifests_dir) < 0)
                return log_oom();
        if ((r = mr_read_file(path, 1u << 20, &data, &size)) < 0)
                return log_error_errno(r, "Cannot read the Rollout CRD %s: %m (see --manifests)", path);
        if ((r = mr_yaml_parse(data, size, &crd, &err)) < 0)
                return log_error_errno(r, "%s: %s", path, err.message);
        return create_once(c, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd, path);
}

int demo_cluster_set_never_ready(DemoCluster *c, const char *image)
{
        _cleanup_(json_object_putp) json_object *cm = NULL, *patch = NULL;
        static const char path[] = "/api/v1/namespaces/kube-system/configmaps/kubesim-faults";
        KubeStatus st;
        char body[1024];
        int r;

        snprintf(body, sizeof(body),
                 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"kubesim-faults\","
                 "\"namespace\":\"kube-system\"},\"data\":{\"neverReadyImages\":\"%s\"}}",
                 image);
        if (mr_json_parse(body, strlen(body), sizeof(body), &cm) < 0)
                return log_error_errno(-EINVAL, "Image \"%s\" cannot be written in a ConfigMap.", image);
        r = kube_create(c->client, "/api/v1/namespaces/kube-system/configmaps", cm, NULL, &st);
        if (r == -EEXIST) {
                json_object_object_del(cm, "apiVersion");
                json_object_object_del(cm, "kind");
                json_object_object_del(cm, "metadata");
                r = kube_patch(c->client, path, KUBE_PATCH_MERGE, cm, NULL, &st);
        }
        if (r < 0)
                return log_error_errno(r, "Cannot write the fault ConfigMap: %s",
                                       st.message[0] ? st.message : "%m");
        return 0;
}

int demo_cluster_ztunnel(DemoCluster *c, char **ret_image, bool *ret_pending)
{
        _cleanup_(json_object_putp) json_object *ds = NULL;
        KubeStatus st;
        int r = kube_get(c->client, ZTUNNEL_PATH, &ds, &st);
        if (r < 0)
                return log_error_errno(r, "Cannot read the ztunnel DaemonSet istio-system/ztunnel: %s",
                                       st.message[0] ? st.message : "%m");
        json_object *containers = mr_json_get(ds, "spec", "template", "spec", "containers", NULL);
        const char *image = mr_json_get_str(json_object_array_get_idx(containers, 0), "image", NULL);
        if (!image)
                return log_error_errno(-EBADMSG, "The ztunnel DaemonSet has no container image.");
        char *copy = strdup(image);
        if (!copy)
                return log_oom();
        *ret_image = copy;
        *ret_pending = get_int(ds, "status", "updatedNumberScheduled", 0) <
                       get_int(ds, "status", "desiredNumberScheduled", 0);
        return 0;
}

typedef struct Generation {
        int64_t generation;
} Generation;

static int observed(DemoCluster *c, void *arg)
{
        _cleanup_(json_object_putp) json_object *ds = NULL;
        Generation *g = arg;
        if (kube_get(c->client, ZTUNNEL_PATH, &ds, NULL) < 0)
                return 0;
        return get_int(ds, "status", "observedGeneration", 0) >= g->generation;
}

int demo_cluster_upgrade(DemoCluster *c, const char *image, bool rolling, usec_t deadline)
{
        Generation g = {};
        KubeStatus st;
        int r = -MR_ECONFLICT;

        for (unsigned attempt = 0; attempt < 5 && r == -MR_ECONFLICT; attempt++) {
                _cleanup_(json_object_putp) json_object *ds = NULL, *updated = NULL, *strategy = NULL;
                if ((r = kube_get(c->client, ZTUNNEL_PATH, &ds, &st)) < 0)
                        break;
                json_object *containers = mr_json_get(ds, "spec", "template", "spec", "containers", NULL);
                json_object *first = json_object_array_get_idx(containers, 0);
                if (!first)
                        return log_error_errno(-EBADMSG, "The ztunnel DaemonSet has no container.");
                if (mr_json_set_str(first, "image", image) < 0)
                        return log_oom();
                if (rolling) {
                        static const char s[] = "{\"type\":\"RollingUpdate\",\"rollingUpdate\":{"
                                                "\"maxSurge\":1,\"maxUnavailable\":0}}";
                        if (mr_json_parse(s, strlen(s), sizeof(s), &strategy) < 0 ||
                            json_object_object_add(mr_json_get(ds, "spec", NULL), "updateStrategy",
                                                   TAKE_PTR(strategy)) < 0)
                                return log_oom();
                }
                r = kube_replace(c->client, ZTUNNEL_PATH, ds, &updated, &st);
                if (r >= 0)
                        g.generation = get_int(updated, "metadata", "generation", 0);
        }
        if (r < 0)
                return log_error_errno(r, "Cannot change the ztunnel image: %s",
                                       st.message[0] ? st.message : "%m");
        r = wait_until(c, observed, &g, deadline);
        if (r == -ETIMEDOUT)
                return log_error_errno(r,
                                       "The DaemonSet controller did not observe the new template in time.");
        return r;
}

int demo_cluster_rolled_out(DemoCluster *c, bool *ret)
{
        _cleanup_(json_object_putp) json_object *ds = NULL, *pods = NULL;
        KubeListOptions lo = {.label_selector = "app=ztunnel"};
        KubeStatus st;
        int r;

        *ret = false;
        if ((r = kube_get(c->client, ZTUNNEL_PATH, &ds, &st)) < 0)
                return log_error_errno(r, "Cannot read the ztunnel DaemonSet: %s",
                                       st.message[0] ? st.message : "%m");
        int64_t desired = get_int(ds, "status", "desiredNumberScheduled", -1);
        if (get_int(ds, "status", "observedGeneration", 0) < get_int(ds, "metadata", "generation", 1) ||
            get_int(ds, "status", "updatedNumberScheduled", 0) != desired ||
            get_int(ds, "status", "numberAvailable", 0) != desired)
                return 0;
        if ((r = kube_list(c->client, &KUBE_PODS, "istio-system", &lo, &pods, NULL, &st)) < 0)
                return log_error_errno(r, "Cannot list the ztunnel pods: %s",
                                       st.message[0] ? st.message : "%m");
        if ((int64_t)json_object_array_length(pods) != desired)
                return 0;
        for (size_t i = 0; i < json_object_array_length(pods); i++)
                if (!pod_ready(json_object_array_get_idx(pods, i)))
                        return 0;
        *ret = true;
        return 0;
}

typedef struct AgentWait {
        const char *ns;
        char **nodes;
} AgentWait;

static int leases_present(DemoCluster *c, void *arg)
{
        _cleanup_(json_object_putp) json_object *leases = NULL;
        AgentWait *w = arg;
        if (kube_list(c->client, &KUBE_LEASES, w->ns, NULL, &leases, NULL, NULL) < 0)
                return 0;
        for (char **n = w->nodes; *n; n++) {
                bool found = false;
                for (size_t i = 0; !found && i < json_object_array_length(leases); i++) {
                        const char *name =
                            mr_json_get_str(json_object_array_get_idx(leases, i), "metadata", "name", NULL);
                        const char *node = name ? startswith(name, "meshroll-agent-") : NULL;
                        found = node && streq(node, *n);
                }
                if (!found)
                        return 0;
        }
        return 1;
}

int demo_cluster_wait_agents(DemoCluster *c, const char *ns, char **nodes, usec_t deadline)
{
        AgentWait w = {.ns = ns, .nodes = nodes};
        int r = wait_until(c, leases_present, &w, deadline);
        if (r == -ETIMEDOUT)
                return log_error_errno(r, "The agents did not publish their Leases in %s in time.", ns);
        return r;
}
