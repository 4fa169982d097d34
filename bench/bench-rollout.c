/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-rollout — a whole ztunnel rollout (`meshroll run -f`) against the
 * simulator: its wall time against the delays the scenario makes
 * unavoidable, its API cost per node, the agents' idle writes, and, with
 * --nodes 5000 --groups 100, the coordinator's memory and CPU at scale
 * (issue 10: "Rollout overhead", "API cost", "Scale"; docs/benchmarks.md).
 *
 * The cluster: --nodes nodes, ztunnel on each (OnDelete, the target
 * revision already in the template), --pods-per-node pods of one
 * Deployment spread over them, the Rollout CRD. The Rollout: groups of
 * nodes/groups nodes, drain, connection gate (threshold 0), readiness with
 * minReadySeconds, soak. Every delay is a flag, so the unavoidable time of a
 * group is known exactly:
 *
 *   pod shutdown (--pod-shutdown; evictions run in parallel, so once per group)
 *   + old ztunnel's shutdown (--zt-shutdown; the new pod is created only once it is gone)
 *   + new ztunnel's start-up (--zt-startup, until Ready)
 *   + minReadySeconds (--min-ready) + soak (--soak)
 *
 * and the overhead ratio is the measured wall time of `meshroll run` (exec
 * to exit) over groups × that sum. The simulator runs at --speed 1 so its
 * seconds are the coordinator's.
 *
 * The agents. The gate needs each node's agent Lease, written while the
 * node carries the group's mark. A real agent per node would read /proc
 * 5,000 times over at scale, so the benchmark plays the agents: before the
 * rollout it creates every node's Lease (an idle report, as on a cluster
 * where the agents run: preflight checks them), then it watches the Nodes
 * and, when a node gets its meshroll.io/phase mark, patches that node's
 * Lease with the mark, 0 long-lived connections and a fresh renewTime, as
 * an agent does on its first active report. The agents' own cost is measured apart
 * (--idle-agents): real meshroll-agent processes, idle, against a
 * simulator, with every interval divided by --agent-speedup (5 min idle
 * renewals become 5 s at 60×), their Lease writes counted in the audit log
 * and scaled back to writes per node per hour.
 *
 * API cost: the coordinator talks to the simulator through a counting
 * relay (countproxy.h): GETs (reads and list pages), watches opened and
 * writes, divided by the nodes upgraded. The audit log gives the writes
 * once more, by kind, as the server saw them (actor meshroll/…).
 *
 * Scale (--max-groups K): the rollout is stopped (SIGTERM) once K groups
 * are done, and the report says so; the coordinator's peak RSS and CPU
 * time come from wait4(2), the simulator's RSS from /proc.
 *
 * Exit status: 0 measured (missed targets are reported, not errors), 1 a
 * measure could not be taken, 2 bad usage, 77 nothing to run.
 */
#include <getopt.h>
#include <signal.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "benchproc.h"
#include "countproxy.h"
#include "meshroll/fileio.h"
#include "meshroll/json-util.h"
#include "meshroll/macro.h"
#include "meshroll/time-util.h"
#include "meshroll/yaml-json.h"

#define TARGET_OVERHEAD 1.05
#define TARGET_REQUESTS 15.0
#define TARGET_IDLE_WRITES 12.0
#define TARGET_RSS_MIB 64.0

typedef struct Options {
        unsigned nodes, groups, pods_per_node, max_groups;
        unsigned pod_shutdown, zt_shutdown, zt_startup, min_ready, soak; /* seconds */
        unsigned idle_agents, idle_seconds, agent_speedup;
        const char *tick;
        const char *meshroll, *agent, *sim, *crd, *output, *title, *trace;
} Options;

typedef struct Result {
        double wall, unavoidable;
        unsigned groups_done;
        bool stopped_early;
        CountProxyStats req;
        unsigned audit_writes, audit_by_kind[8];
        double coord_cpu, coord_rss_mib, sim_rss_mib, sim_hwm_mib, sim_cpu;
        double idle_writes_per_hour;
        unsigned idle_writes, idle_agents;
        double idle_span_hours;
} Result;

static const char *const kind_names[] = {"nodes", "pods", "pods/eviction", "rollouts", "events", "leases",
                                         "daemonsets", "other"};

/* ---- the scenario ------------------------------------------------------------------------------ */

static char *scenario_yaml(const Options *o, bool with_rollout_delays)
{
        char *s = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&s, &size);

        if (!f)
                return NULL;
        fprintf(f, "name: bench-rollout\nnodes:\n  - {name: \"node-{n}\", count: %u, capacity: {pods: \"250\"}}\n",
                o->nodes);
        fprintf(f, "namespaces:\n  - {name: meshroll}\n  - {name: shop, labels: {istio.io/dataplane-mode: ambient}}\n");
        fprintf(f, "istio:\n  revisions:\n    - {name: 1-24-0, version: 1.24.0}\n    - {name: 1-25-0, version: 1.25.0}\n"
                   "  tags: {default: 1-24-0}\n"
                   "  ztunnel: {revision: 1-24-0, pendingRevision: 1-25-0, updateStrategy: OnDelete,\n"
                   "            startupSeconds: %u, shutdownSeconds: %u, terminationGracePeriodSeconds: 30}\n",
                with_rollout_delays ? o->zt_startup : 1, with_rollout_delays ? o->zt_shutdown : 1);
        if (o->pods_per_node > 0)
                fprintf(f, "workloads:\n  - {name: app, namespace: shop, replicas: %u, startupSeconds: 1, "
                           "shutdownSeconds: %u, terminationGracePeriodSeconds: 30}\n",
                        o->pods_per_node * o->nodes, o->pod_shutdown);
        fclose(f);
        return s;
}

static int write_rollout(const Options *o, const char *path)
{
        _cleanup_free_ char *s = NULL;
        unsigned size = (o->nodes + o->groups - 1) / o->groups;

        if (asprintf(&s,
                     "apiVersion: meshroll.io/v1alpha1\nkind: Rollout\nmetadata: {name: bench}\nspec:\n"
                     "  target: {namespace: istio-system, daemonSet: ztunnel}\n"
                     "  groups: {size: %u}\n"
                     "  drain: {timeout: 10m, concurrency: 50, deleteEmptyDirData: true}\n"
                     "  connectionGate: {threshold: 0, timeout: 5m, onTimeout: pause, agentNamespace: meshroll}\n"
                     "  readiness: {timeout: 5m, minReadySeconds: %u}\n"
                     "  soak: %us\n",
                     size, o->min_ready, o->soak) < 0)
                return -ENOMEM;
        return bp_write_file(path, s);
}

static int install_crd(KubeClient *c, const char *crd_path)
{
        _cleanup_(json_object_putp) json_object *crd = NULL;
        _cleanup_free_ char *data = NULL;
        size_t size;
        MrError err = {};
        KubeStatus st;
        int r;

        if ((r = mr_read_file(crd_path, 1 << 20, &data, &size)) < 0)
                return r;
        if ((r = mr_yaml_parse(data, size, &crd, &err)) < 0)
                return r;
        r = kube_create(c, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd, NULL, &st);
        return r == -EEXIST ? 0 : r;
}

/* Whether every PodDisruptionBudget allows a disruption: the disruption controller has caught up. */
static int pdbs_settled(KubeClient *c, bool *ret)
{
        _cleanup_(json_object_putp) json_object *items = NULL;
        KubeStatus st;
        int r = kube_list(c, &KUBE_PDBS, NULL, NULL, &items, NULL, &st);
        if (r < 0)
                return r;
        *ret = true;
        for (size_t i = 0; i < json_object_array_length(items); i++) {
                int64_t allowed = 0;
                (void)mr_json_get_int(&allowed, json_object_array_get_idx(items, i), "status", "disruptionsAllowed",
                                      NULL);
                *ret = *ret && allowed > 0;
        }
        return 0;
}

/*
 * Waits until every pod (ztunnel, istiod, the apps) is Ready and every PDB
 * allows a disruption (bounded): a settled cluster, as an operator starts
 * an upgrade on — else the coordinator's preflight waits for it, and that
 * wait is the cluster's, not the rollout's.
 */
static int wait_cluster_ready(KubeClient *c, const Options *o, usec_t timeout)
{
        usec_t end = bp_now() + timeout;
        size_t want = o->nodes + (size_t)o->nodes * o->pods_per_node;

        while (bp_now() < end) {
                _cleanup_(json_object_putp) json_object *items = NULL;
                KubeStatus st;
                size_t ready = 0;
                int r = kube_list(c, &KUBE_PODS, NULL, NULL, &items, NULL, &st);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < json_object_array_length(items); i++) {
                        json_object *conds = mr_json_get(json_object_array_get_idx(items, i), "status", "conditions",
                                                         NULL);
                        for (size_t k = 0; conds && k < json_object_array_length(conds); k++) {
                                json_object *cd = json_object_array_get_idx(conds, k);
                                if (streq_ptr(mr_json_get_str(cd, "type", NULL), "Ready") &&
                                    streq_ptr(mr_json_get_str(cd, "status", NULL), "True"))
                                        ready++;
                        }
                }
                bool settled = false;
                /* every pod, the control plane's (istiod) too: preflight waits for the target istiod */
                if (ready >= want && ready >= json_object_array_length(items) && (r = pdbs_settled(c, &settled)) < 0)
                        return r;
                if (settled)
                        return 0;
                (void)usleep(200 * 1000);
        }
        return -ETIMEDOUT;
}

/* ---- the agents the benchmark plays, and the coordinator child -------------------------------- */

typedef struct Run {
        const Options *o;
        sd_event *event;
        KubeClient *client;
        KubeWatch *nodes_watch, *rollout_watch;
        json_object *reported; /* node → the mark its Lease was written for */
        BpChild coordinator;
        /*
         * The coordinator's peak RSS: its VmHWM, sampled (it only grows)
         * every SAMPLE_EVERY and before each SIGTERM. Not wait4's ru_maxrss:
         * exec records the forked image's high-water mark there, and that
         * image was this process, with its own hundreds of MiB at 5,000
         * nodes.
         */
        uint64_t coord_hwm_kb;
        unsigned groups_done;
        bool stopping;
        int error;
} Run;

#define SAMPLE_EVERY (250 * USEC_PER_MSEC)

static void sample_hwm(Run *r)
{
        if (r->coordinator.pid > 0 && !r->coordinator.reaped)
                r->coord_hwm_kb = MAX(r->coord_hwm_kb, bp_proc_kb(r->coordinator.pid, "VmHWM"));
}

static void stop_coordinator(Run *r)
{
        sample_hwm(r);
        (void)kill(r->coordinator.pid, SIGTERM);
}

static int on_sample(sd_event_source *s, uint64_t usec, void *userdata)
{
        sample_hwm(userdata);
        if (sd_event_source_set_time_relative(s, SAMPLE_EVERY) < 0 ||
            sd_event_source_set_enabled(s, SD_EVENT_ONESHOT) < 0)
                return 0; /* the samples so far, and the one before SIGTERM, stand */
        return 0;
}

static void on_lease_written(KubeClient *c, int error, json_object *body, const KubeStatus *st, void *userdata)
{
        Run *r = userdata;
        if (error < 0 && r->error == 0) {
                fprintf(stderr, "bench-rollout: writing an agent Lease failed: %s\n",
                        st->message[0] ? st->message : mr_strerror(error));
                r->error = error;
                stop_coordinator(r);
        }
}

/*
 * The Lease of node's agent: the mark it reports under (none when idle) and 0 long-lived connections,
 * renewed now, valid 10 min (an idle agent renews every 5 min).
 */
static json_object *lease_json(const char *node, const char *phase)
{
        _cleanup_free_ char *json = NULL;
        char now[KUBE_TIME_MAX];

        kube_microtime_format(mr_now_realtime(NULL), now);
        if (asprintf(&json,
                     "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":"
                     "\"meshroll-agent-%s\",\"namespace\":\"meshroll\",\"annotations\":{%s%s%s"
                     "\"meshroll.io/long-lived\":\"0\"}},\"spec\":{\"holderIdentity\":\"meshroll-agent/%s\","
                     "\"leaseDurationSeconds\":600,\"renewTime\":\"%s\"}}",
                     node, phase ? "\"meshroll.io/phase\":\"" : "", phase ? phase : "", phase ? "\"," : "", node,
                     now) < 0)
                return NULL;
        return json_tokener_parse(json);
}

/* Every node's agent has reported once, idle, before the rollout: as on a cluster where they run. */
static int create_idle_leases(Run *r)
{
        _cleanup_free_ char *path = NULL;
        KubeStatus st;
        int k;

        if (kube_path(&KUBE_LEASES, "meshroll", NULL, NULL, &path) < 0)
                return -ENOMEM;
        for (unsigned i = 1; i <= r->o->nodes; i++) {
                _cleanup_(json_object_putp) json_object *lease = NULL;
                char node[32];
                snprintf(node, sizeof(node), "node-%u", i);
                if (!(lease = lease_json(node, NULL)))
                        return -ENOMEM;
                if ((k = kube_create(r->client, path, lease, NULL, &st)) < 0 && k != -EEXIST)
                        return k;
                if (json_object_object_add(r->reported, node, json_object_new_string("")) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/*
 * Updates meshroll-agent-<node> as its agent's first active report would: the mark, 0 long-lived
 * connections, renewed now (a merge patch: the agent owns its Lease alone).
 */
static int write_lease(Run *r, const char *node, const char *phase)
{
        _cleanup_(json_object_putp) json_object *lease = lease_json(node, phase), *patch = json_object_new_object();
        _cleanup_free_ char *name = NULL, *path = NULL;

        if (!lease || !patch || asprintf(&name, "meshroll-agent-%s", node) < 0 ||
            kube_path(&KUBE_LEASES, "meshroll", name, NULL, &path) < 0)
                return -ENOMEM;
        json_object_object_add(patch, "metadata", json_object_get(mr_json_get(lease, "metadata", NULL)));
        json_object_object_add(patch, "spec", json_object_get(mr_json_get(lease, "spec", NULL)));
        KubeRequest req = {.method = "PATCH", .path = path, .body = patch,
                           .content_type = kube_patch_content_type(KUBE_PATCH_MERGE)};
        return kube_request_async(r->client, &req, on_lease_written, r, NULL);
}

static int on_node(KubeWatch *w, KubeWatchEventType type, json_object *obj, void *userdata)
{
        Run *r = userdata;
        const char *node, *phase, *seen;

        if (type != KUBE_WATCH_ADDED && type != KUBE_WATCH_MODIFIED)
                return 0;
        node = mr_json_get_str(obj, "metadata", "name", NULL);
        phase = mr_json_get_str(obj, "metadata", "annotations", "meshroll.io/phase", NULL);
        if (!node || !phase)
                return 0;
        seen = mr_json_get_str(r->reported, node, NULL);
        if (streq_ptr(seen, phase))
                return 0;
        int k = write_lease(r, node, phase);
        if (k < 0)
                return k;
        return json_object_object_add(r->reported, node, json_object_new_string(phase));
}

static int on_rollout(KubeWatch *w, KubeWatchEventType type, json_object *obj, void *userdata)
{
        Run *r = userdata;
        int64_t done = 0;

        if (type != KUBE_WATCH_ADDED && type != KUBE_WATCH_MODIFIED)
                return 0;
        (void)mr_json_get_int(&done, obj, "status", "groupsDone", NULL);
        if (done > r->groups_done)
                r->groups_done = (unsigned)done;
        if (r->o->max_groups > 0 && r->groups_done >= r->o->max_groups && !r->stopping) {
                r->stopping = true;
                stop_coordinator(r);
        }
        return 0;
}

static void on_watch_stop(KubeWatch *w, int error, void *userdata)
{
        Run *r = userdata;
        if (error < 0 && r->error == 0)
                r->error = error;
}

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata)
{
        Run *r = userdata;

        /* reap it here, for its rusage (sd-event would reap it after this callback) */
        (void)bp_wait(&r->coordinator, 5 * USEC_PER_SEC);
        return sd_event_exit(r->event, 0);
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata)
{
        Run *r = userdata;
        fprintf(stderr, "bench-rollout: the rollout did not finish in time; stopping it\n");
        r->error = -ETIMEDOUT;
        stop_coordinator(r);
        return 0;
}

/* Counts the audit log's writes by meshroll (the coordinator: actor meshroll/…), by kind. */
static int count_audit(const char *path, Result *res)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char *line = NULL;
        size_t cap = 0;

        if (!f)
                return -errno;
        while (getline(&line, &cap, f) > 0) {
                _cleanup_(json_object_putp) json_object *rec = json_tokener_parse(line);
                const char *actor = mr_json_get_str(rec, "actor", NULL);
                const char *res_name = mr_json_get_str(rec, "resource", NULL);
                const char *verb = mr_json_get_str(rec, "verb", NULL);
                size_t k;

                if (!actor || !startswith(actor, "meshroll/") || !verb)
                        continue;
                /* an accepted eviction is also recorded as the deletion and status update it makes */
                if (streq(res_name, "pods") && (streq(verb, "delete") || streq(verb, "update-status")))
                        continue;
                if (streq(verb, "evict"))
                        k = 2;
                else {
                        for (k = 0; k < ELEMENTSOF(kind_names) - 1; k++)
                                if (streq_ptr(res_name, kind_names[k]))
                                        break;
                }
                res->audit_by_kind[k]++;
                res->audit_writes++;
        }
        free(line);
        return 0;
}

static int run_rollout(const Options *o, const char *dir, Result *res)
{
        _cleanup_free_ char *audit = NULL, *rollout = NULL, *log = NULL, *scenario = NULL, *simlog = NULL;
        _cleanup_(json_object_putp) json_object *reported = json_object_new_object();
        _cleanup_fclose_ FILE *trace = NULL;
        CountProxy *proxy = NULL;
        BpChild sim = {};
        Run r = {.o = o, .reported = reported};
        char url[256];
        unsigned port;
        usec_t start;
        sigset_t mask;
        int k;

        if (!reported || asprintf(&audit, "%s/audit.jsonl", dir) < 0 ||
            asprintf(&rollout, "%s/rollout.yaml", dir) < 0 || asprintf(&log, "%s/meshroll.log", dir) < 0 ||
            asprintf(&simlog, "%s/sim.log", dir) < 0 || !(scenario = scenario_yaml(o, true)))
                return -ENOMEM;
        k = bp_sim_start(o->sim, dir, "sim", scenario, 1.0, audit, NULL, 300 * USEC_PER_SEC, &sim, url, sizeof(url));
        if (k < 0) {
                fprintf(stderr, "bench-rollout: cannot start %s: %s\n", o->sim, mr_strerror(k));
                bp_print_tail(stderr, simlog, 10);
                return k;
        }
        if ((k = bp_client(url, &r.client)) < 0 || (k = install_crd(r.client, o->crd)) < 0 ||
            (k = write_rollout(o, rollout)) < 0) {
                fprintf(stderr, "bench-rollout: setting up the cluster failed: %s\n", mr_strerror(k));
                goto out;
        }
        if ((k = wait_cluster_ready(r.client, o, 600 * USEC_PER_SEC)) < 0) {
                fprintf(stderr, "bench-rollout: the simulated pods did not all become Ready: %s\n", mr_strerror(k));
                goto out;
        }
        if ((k = create_idle_leases(&r)) < 0) {
                fprintf(stderr, "bench-rollout: creating the agents' Leases failed: %s\n", mr_strerror(k));
                goto out;
        }
        if (o->trace && !(trace = fopen(o->trace, "we"))) {
                k = -errno;
                fprintf(stderr, "bench-rollout: cannot write %s: %s\n", o->trace, mr_strerror(k));
                goto out;
        }
        if (sscanf(url, "http://127.0.0.1:%u", &port) != 1 ||
            (k = count_proxy_start((uint16_t)port, trace, &proxy)) < 0) {
                fprintf(stderr, "bench-rollout: cannot start the counting relay for %s\n", url);
                k = k < 0 ? k : -EINVAL;
                goto out;
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        if ((k = sd_event_new(&r.event)) < 0 || (k = kube_client_attach_event(r.client, r.event)) < 0)
                goto out;
        KubeWatchOptions nw = {.resource = &KUBE_NODES};
        KubeWatchOptions rw = {.resource = &KUBE_ROLLOUTS, .name = "bench"};
        if ((k = kube_watch_start(r.client, &nw, on_node, on_watch_stop, &r, &r.nodes_watch)) < 0 ||
            (k = kube_watch_start(r.client, &rw, on_rollout, on_watch_stop, &r, &r.rollout_watch)) < 0)
                goto out;

        char *argv[] = {(char *)o->meshroll, "run", "-f", rollout, "--server", (char *)count_proxy_url(proxy),
                        "--tick", (char *)o->tick, "--identity", "bench", NULL};
        start = bp_now();
        if ((k = bp_spawn(argv, log, &r.coordinator)) < 0)
                goto out;
        if ((k = sd_event_add_child(r.event, NULL, r.coordinator.pid, WEXITED, on_child, &r)) < 0 ||
            (k = sd_event_add_time_relative(r.event, NULL, CLOCK_MONOTONIC, 3600 * USEC_PER_SEC, 0, on_deadline,
                                            &r)) < 0 ||
            (k = sd_event_add_time_relative(r.event, NULL, CLOCK_MONOTONIC, SAMPLE_EVERY, 0, on_sample, &r)) < 0)
                goto out;
        k = sd_event_loop(r.event);
        res->wall = (double)(bp_now() - start) / USEC_PER_SEC;
        if (k < 0 || r.error < 0) {
                k = k < 0 ? k : r.error;
                goto out;
        }
        if (!r.coordinator.reaped || !WIFEXITED(r.coordinator.status) ||
            (WEXITSTATUS(r.coordinator.status) != 0 && !r.stopping)) {
                fprintf(stderr, "bench-rollout: meshroll run failed; its last lines:\n");
                bp_print_tail(stderr, log, 20);
                k = -EPROTO;
                goto out;
        }
        res->groups_done = r.groups_done;
        res->stopped_early = r.stopping;
        res->coord_cpu = bp_cpu_seconds(&r.coordinator);
        res->coord_rss_mib = (double)(r.coord_hwm_kb ? r.coord_hwm_kb : (uint64_t)r.coordinator.usage.ru_maxrss) / 1024.0;
        res->sim_rss_mib = (double)bp_proc_kb(sim.pid, "VmRSS") / 1024.0;
        res->sim_hwm_mib = (double)bp_proc_kb(sim.pid, "VmHWM") / 1024.0;
        count_proxy_stats(proxy, &res->req);
        k = 0;
out:
        r.nodes_watch = kube_watch_stop(r.nodes_watch);
        r.rollout_watch = kube_watch_stop(r.rollout_watch);
        if (r.coordinator.pid > 0)
                bp_stop(&r.coordinator);
        count_proxy_free(proxy);
        kube_client_free(r.client);
        sd_event_unref(r.event);
        bp_stop(&sim);
        res->sim_cpu = bp_cpu_seconds(&sim);
        if (k >= 0)
                k = count_audit(audit, res);
        return k;
}

/* ---- idle agents ------------------------------------------------------------------------------- */

static int run_idle_agents(const Options *o, const char *dir, Result *res)
{
        _cleanup_free_ char *audit = NULL, *scenario = NULL, *procdir = NULL;
        BpChild sim = {}, agents[256] = {};
        char url[256], idle[32], scan[32], active[32], ll[32];
        unsigned n = MIN(o->idle_agents, (unsigned)ELEMENTSOF(agents)), s = o->agent_speedup;
        Options so = *o;
        int k;

        so.nodes = n;
        so.pods_per_node = 0;
        if (asprintf(&audit, "%s/idle-audit.jsonl", dir) < 0 || asprintf(&procdir, "%s/proc", dir) < 0 ||
            !(scenario = scenario_yaml(&so, false)))
                return -ENOMEM;
        if (mkdir(procdir, 0700) < 0)
                return -errno;
        k = bp_sim_start(o->sim, dir, "idle-sim", scenario, 1.0, audit, NULL, 60 * USEC_PER_SEC, &sim, url,
                         sizeof(url));
        if (k < 0)
                return k;
        /* every interval divided by the speed-up (the agent's defaults: 5m idle, 10s scans, 2s active, 60s
         * long-lived), none under the 100 ms the agent accepts */
        snprintf(idle, sizeof(idle), "%ums", 300000 / s);
        snprintf(scan, sizeof(scan), "%ums", MAX(10000 / s, 100u));
        snprintf(active, sizeof(active), "%ums", MAX(2000 / s, 100u));
        snprintf(ll, sizeof(ll), "%ums", MAX(60000 / s, 100u));
        for (unsigned i = 0; i < n && k >= 0; i++) {
                char node[32];
                snprintf(node, sizeof(node), "node-%u", i + 1);
                char *argv[] = {(char *)o->agent, "--server", url, "--node", node, "--proc", procdir, "--no-host",
                                "--listen", "", "--idle-interval", idle, "--scan-interval", scan,
                                "--active-interval", active, "--long-lived-after", ll, "--log-level", "warning",
                                NULL};
                k = bp_spawn(argv, NULL, &agents[i]);
        }
        if (k >= 0)
                (void)usleep((useconds_t)o->idle_seconds * 1000000u);
        for (unsigned i = 0; i < n; i++)
                bp_stop(&agents[i]);
        bp_stop(&sim);
        if (k < 0)
                return k;

        /*
         * Lease writes per agent after its first (the creation), over the span from that first write to
         * the agent's last: an agent renewing every I seconds gives exactly 1/I, whatever the run's edges.
         */
        _cleanup_fclose_ FILE *f = fopen(audit, "re");
        _cleanup_(json_object_putp) json_object *seen = json_object_new_object();
        char *line = NULL;
        size_t cap = 0;
        unsigned writes = 0, firsts = 0;
        double span = 0;
        while (f && seen && getline(&line, &cap, f) > 0) {
                _cleanup_(json_object_putp) json_object *rec = json_tokener_parse(line);
                const char *name = mr_json_get_str(rec, "name", NULL), *t = mr_json_get_str(rec, "time", NULL);
                json_object *a;
                usec_t when;
                if (!streq_ptr(mr_json_get_str(rec, "resource", NULL), "leases") || !name ||
                    !startswith(name, "meshroll-agent-") || !t || kube_time_parse(t, &when) < 0)
                        continue;
                if (!mr_json_get(seen, name, NULL)) {
                        a = json_object_new_array();
                        json_object_array_add(a, json_object_new_int64((int64_t)when)); /* first */
                        json_object_array_add(a, json_object_new_int64((int64_t)when)); /* last */
                        json_object_object_add(seen, name, a);
                        firsts++;
                        continue;
                }
                a = mr_json_get(seen, name, NULL);
                json_object_array_put_idx(a, 1, json_object_new_int64((int64_t)when));
                writes++;
        }
        free(line);
        json_object_object_foreach(seen, key, val) {
                (void)key;
                span += (double)(json_object_get_int64(json_object_array_get_idx(val, 1)) -
                                 json_object_get_int64(json_object_array_get_idx(val, 0))) / USEC_PER_SEC;
        }
        if (firsts < n)
                fprintf(stderr, "bench-rollout: only %u of %u idle agents wrote their Lease\n", firsts, n);
        res->idle_agents = n;
        res->idle_writes = writes;
        /* the simulator runs at speed 1 (audit times are real seconds); the agents at speed-up s */
        res->idle_span_hours = span * s / 3600.0;
        res->idle_writes_per_hour = res->idle_span_hours > 0 ? (double)writes / res->idle_span_hours : 0;
        return firsts == n ? 0 : -EPROTO;
}

/* ---- the report -------------------------------------------------------------------------------- */

static void report(const Options *o, const Result *res, FILE *f)
{
        char machine[512];
        unsigned per_group = o->pod_shutdown * (o->pods_per_node > 0) + o->zt_shutdown + o->zt_startup +
                             o->min_ready + o->soak;
        unsigned size = (o->nodes + o->groups - 1) / o->groups;
        unsigned nodes_done = res->stopped_early ? MIN(res->groups_done * size, o->nodes) : o->nodes;
        double per_node = nodes_done ? 1.0 / nodes_done : 0;
        double requests = (double)(res->req.get + res->req.watch + res->req.write + res->req.other);

        bp_machine(machine, sizeof(machine));
        fprintf(f, "## %s\n\n", o->title);
        fprintf(f, "%u nodes in %u groups of %u, %u app pods per node, `meshroll run --tick %s`%s. Machine: %s.\n\n",
                o->nodes, o->groups, size, o->pods_per_node, o->tick,
                res->stopped_early ? " stopped after the first groups (see below)" : "", machine);
        if (!res->stopped_early) {
                fprintf(f, "Per group the scenario imposes: pod shutdown %u s + old ztunnel shutdown %u s + new "
                           "ztunnel start-up %u s + minReadySeconds %u s + soak %u s = %u s.\n\n",
                        o->pods_per_node ? o->pod_shutdown : 0, o->zt_shutdown, o->zt_startup, o->min_ready, o->soak,
                        per_group);
                double unavoidable = (double)per_group * o->groups;
                double ratio = res->wall / unavoidable;
                fprintf(f, "| Measure | Value |\n|---|---:|\n");
                fprintf(f, "| unavoidable (groups × per group) | %.1f s |\n", unavoidable);
                fprintf(f, "| `meshroll run` wall time (exec to exit) | %.1f s |\n", res->wall);
                fprintf(f, "| overhead per group | %.2f s |\n\n", (res->wall - unavoidable) / o->groups);
                fprintf(f, "| Measure | Measured | Target | Met |\n|---|---:|---|---|\n");
                fprintf(f, "| rollout wall time / unavoidable delays | %.2f× | ≤ %.2f× | %s |\n", ratio,
                        TARGET_OVERHEAD,
                        ratio <= TARGET_OVERHEAD ? "yes"
                                                 : "**no**: process start, exit and the writes between steps "
                                                   "(docs/benchmarks.md)");
        } else {
                fprintf(f, "The rollout was stopped (SIGTERM) after %u of %u groups (%u nodes): a whole rollout at "
                           "this size takes too long for a benchmark run; the figures cover planning, the "
                           "initial lists and watches, and those groups.\n\n",
                        res->groups_done, o->groups, nodes_done);
                fprintf(f, "| Measure | Value |\n|---|---:|\n");
                fprintf(f, "| wall time | %.1f s |\n", res->wall);
                fprintf(f, "| groups done | %u |\n\n", res->groups_done);
                fprintf(f, "| Measure | Measured | Target | Met |\n|---|---:|---|---|\n");
        }
        fprintf(f, "| coordinator requests per node upgraded | %.1f | ≤ %.0f | %s |\n", requests * per_node,
                TARGET_REQUESTS,
                requests * per_node <= TARGET_REQUESTS ? "yes"
                                                       : "**no**: evictions, Events per node and reads per tick "
                                                         "(docs/benchmarks.md)");
        if (res->idle_agents)
                fprintf(f, "| idle agent writes per node per hour | %.1f | ≤ %.0f | %s |\n",
                        res->idle_writes_per_hour, TARGET_IDLE_WRITES,
                        res->idle_writes_per_hour <= TARGET_IDLE_WRITES ? "yes" : "**no**");
        if (res->stopped_early || o->nodes >= 1000)
                fprintf(f, "| coordinator peak RSS | %.1f MiB | ≤ %.0f MiB | %s |\n", res->coord_rss_mib,
                        TARGET_RSS_MIB, res->coord_rss_mib <= TARGET_RSS_MIB ? "yes" : "**no**");
        fprintf(f, "\nAPI cost of the coordinator (counted on the wire by a relay in front of the simulator; "
                   "writes also from the audit log):\n\n");
        fprintf(f, "| Requests | total | per node upgraded |\n|---|---:|---:|\n");
        fprintf(f, "| GET (reads, list pages) | %" PRIu64 " | %.2f |\n", res->req.get, res->req.get * per_node);
        fprintf(f, "| watches opened | %" PRIu64 " | %.2f |\n", res->req.watch, res->req.watch * per_node);
        fprintf(f, "| writes | %" PRIu64 " | %.2f |\n", res->req.write, res->req.write * per_node);
        fprintf(f, "| all | %.0f | %.2f |\n\n", requests, requests * per_node);
        fprintf(f, "| Writes in the audit log, by kind | total | per node |\n|---|---:|---:|\n");
        for (size_t k = 0; k < ELEMENTSOF(kind_names); k++)
                if (res->audit_by_kind[k])
                        fprintf(f, "| %s | %u | %.2f |\n", kind_names[k], res->audit_by_kind[k],
                                res->audit_by_kind[k] * per_node);
        fprintf(f, "| all | %u | %.2f |\n\n", res->audit_writes, res->audit_writes * per_node);
        if (res->req.unparsed)
                fprintf(f, "(%" PRIu64 " connections could not be followed to the end by the relay: the counts are "
                           "a lower bound.)\n\n", res->req.unparsed);
        fprintf(f, "| Resources | Value |\n|---|---:|\n");
        fprintf(f, "| coordinator CPU time (user + system) | %.2f s |\n", res->coord_cpu);
        fprintf(f, "| coordinator peak RSS | %.1f MiB |\n", res->coord_rss_mib);
        fprintf(f, "| simulator RSS at the end / peak | %.1f / %.1f MiB |\n", res->sim_rss_mib, res->sim_hwm_mib);
        fprintf(f, "| simulator CPU time (whole run, set-up included) | %.1f s |\n\n", res->sim_cpu);
        if (res->idle_agents)
                fprintf(f, "Idle agents: %u real meshroll-agent processes, every interval divided by %u "
                           "(5 min idle renewals every %.1f s), for %u s of real time; %u Lease writes after each "
                           "agent's first, over %.2f agent-hours between each agent's first and last write → "
                           "%.1f writes per node per hour.\n\n",
                        res->idle_agents, o->agent_speedup, 300.0 / o->agent_speedup, o->idle_seconds,
                        res->idle_writes, res->idle_span_hours, res->idle_writes_per_hour);
        fprintf(f, "Reproduce: `build/bench/bench-rollout --nodes %u --groups %u --pods-per-node %u --max-groups %u "
                   "--idle-agents %u`\n", o->nodes, o->groups, o->pods_per_node, o->max_groups, o->idle_agents);
}

static _noreturn_ _printf_(1, 2) void usage_error(const char *fmt, ...)
{
        va_list ap;
        fprintf(stderr, "bench-rollout: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'bench-rollout --help'.\n");
        exit(2);
}

static unsigned parse_uint(const char *opt, const char *v, unsigned lo, unsigned hi)
{
        char *end;
        errno = 0;
        unsigned long n = strtoul(v, &end, 10);
        if (errno || *end || end == v || v[0] == '-' || n < lo || n > hi)
                usage_error("--%s %s: expected an integer from %u to %u", opt, v, lo, hi);
        return (unsigned)n;
}

static void help(void)
{
        printf("Usage: bench-rollout [OPTIONS]\n\n"
               "Runs a ztunnel rollout with meshroll run against the simulator and reports its wall time\n"
               "against the unavoidable delays, its API cost per node, idle agent writes, RSS and CPU.\n\n"
               "  --nodes N            nodes (default 6)\n"
               "  --groups G           node groups (default 3)\n"
               "  --pods-per-node P    app pods per node (default 4)\n"
               "  --max-groups K       stop the rollout after K groups (0: run it all; default 0)\n"
               "  --pod-shutdown S     app pods' shutdown seconds (default 3)\n"
               "  --zt-shutdown S      old ztunnel's shutdown seconds (default 2)\n"
               "  --zt-startup S       new ztunnel's start-up seconds (default 2)\n"
               "  --min-ready S        readiness.minReadySeconds (default 3)\n"
               "  --soak S             soak seconds (default 3)\n"
               "  --tick DUR           meshroll's --tick (default 1s, its default)\n"
               "  --idle-agents N      real agents for the idle-writes measure (default 10; 0: skip)\n"
               "  --idle-seconds S     how long they run (default 60)\n"
               "  --agent-speedup X    divide the agents' intervals by X (default 60)\n"
               "  --title TEXT         the report's heading\n"
               "  --meshroll, --agent, --sim, --crd PATH   the programs and the CRD manifest\n"
               "  --trace FILE         every request of the coordinator, with its time, to FILE\n"
               "  --output FILE        write the Markdown report there too\n");
}

int main(int argc, char *argv[])
{
        static const struct option options[] = {
                {"nodes", required_argument, NULL, 'n'},        {"groups", required_argument, NULL, 'g'},
                {"pods-per-node", required_argument, NULL, 'p'}, {"max-groups", required_argument, NULL, 'K'},
                {"pod-shutdown", required_argument, NULL, 1},   {"zt-shutdown", required_argument, NULL, 2},
                {"zt-startup", required_argument, NULL, 3},     {"min-ready", required_argument, NULL, 4},
                {"soak", required_argument, NULL, 5},           {"tick", required_argument, NULL, 6},
                {"idle-agents", required_argument, NULL, 7},    {"idle-seconds", required_argument, NULL, 8},
                {"agent-speedup", required_argument, NULL, 9},  {"meshroll", required_argument, NULL, 10},
                {"agent", required_argument, NULL, 11},         {"sim", required_argument, NULL, 12},
                {"crd", required_argument, NULL, 13},           {"output", required_argument, NULL, 'o'},
                {"title", required_argument, NULL, 14},         {"trace", required_argument, NULL, 15},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        Options o = {.nodes = 6, .groups = 3, .pods_per_node = 4, .pod_shutdown = 3, .zt_shutdown = 2,
                     .zt_startup = 2, .min_ready = 3, .soak = 3, .tick = "1s", .idle_agents = 10,
                     .idle_seconds = 60, .agent_speedup = 60, .meshroll = MESHROLL_PATH, .agent = AGENT_PATH,
                     .sim = KUBESIM_PATH, .crd = CRD_PATH, .title = "Rollout: overhead and API cost"};
        _cleanup_free_ char *dir = NULL;
        Result res = {};
        usec_t tick;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'n': o.nodes = parse_uint("nodes", optarg, 1, 5000); break;
                case 'g': o.groups = parse_uint("groups", optarg, 1, 5000); break;
                case 'p': o.pods_per_node = parse_uint("pods-per-node", optarg, 0, 100); break;
                case 'K': o.max_groups = parse_uint("max-groups", optarg, 0, 5000); break;
                case 1: o.pod_shutdown = parse_uint("pod-shutdown", optarg, 0, 600); break;
                case 2: o.zt_shutdown = parse_uint("zt-shutdown", optarg, 0, 600); break;
                case 3: o.zt_startup = parse_uint("zt-startup", optarg, 0, 600); break;
                case 4: o.min_ready = parse_uint("min-ready", optarg, 0, 600); break;
                case 5: o.soak = parse_uint("soak", optarg, 0, 600); break;
                case 6:
                        if (mr_duration_parse(optarg, &tick) < 0)
                                usage_error("--tick %s: expected a duration such as 1s or 200ms", optarg);
                        o.tick = optarg;
                        break;
                case 7: o.idle_agents = parse_uint("idle-agents", optarg, 0, 256); break;
                case 8: o.idle_seconds = parse_uint("idle-seconds", optarg, 1, 3600); break;
                case 9: o.agent_speedup = parse_uint("agent-speedup", optarg, 1, 300); break;
                case 10: o.meshroll = optarg; break;
                case 11: o.agent = optarg; break;
                case 12: o.sim = optarg; break;
                case 13: o.crd = optarg; break;
                case 14: o.title = optarg; break;
                case 15: o.trace = optarg; break;
                case 'o': o.output = optarg; break;
                case 'h': help(); return 0;
                default: usage_error("unknown or incomplete option %s", argv[optind - 1]);
                }
        }
        if (optind < argc)
                usage_error("unexpected argument %s", argv[optind]);
        if (o.groups > o.nodes)
                usage_error("--groups %u: more groups than the %u nodes", o.groups, o.nodes);
        if (o.max_groups > o.groups)
                usage_error("--max-groups %u: more than the %u groups", o.max_groups, o.groups);
        if ((r = bp_tmpdir("bench-rollout", &dir)) < 0) {
                fprintf(stderr, "bench-rollout: cannot create a temporary directory: %s\n", mr_strerror(r));
                return 1;
        }
        r = run_rollout(&o, dir, &res);
        if (r >= 0 && o.idle_agents > 0) {
                r = run_idle_agents(&o, dir, &res);
                if (r < 0)
                        fprintf(stderr, "bench-rollout: the idle agents could not be measured: %s\n", mr_strerror(r));
        }
        bp_rmdir(dir);
        if (r < 0)
                return 1;
        report(&o, &res, stdout);
        if (o.output) {
                _cleanup_fclose_ FILE *f = fopen(o.output, "we");
                if (!f) {
                        fprintf(stderr, "bench-rollout: cannot write %s: %m\n", o.output);
                        return 1;
                }
                report(&o, &res, f);
        }
        return 0;
}
