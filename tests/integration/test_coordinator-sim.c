/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The coordinator's engine against the simulator, in one process: whole
 * rollouts, checked through the simulator's final state and its audit log.
 *
 *   - a rollout by zone with a canary completes: every ztunnel pod on the
 *     target revision, no node left cordoned or marked, and never two groups'
 *     nodes cordoned at the same moment;
 *   - a node an operator cordoned stays cordoned;
 *   - a ztunnel image that never becomes Ready rolls the canary group back,
 *     and only it, then pauses the rollout;
 *   - a coordinator killed in the middle of a drain is replaced by another
 *     that finishes the rollout, and no pod is evicted twice.
 *
 * No agents run here, so the connection gate is set to proceed after a
 * second; the gate itself is tested with agents in test_agent-sim and the demo.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "meshroll/fileio.h"
#include "meshroll/json-util.h"
#include "meshroll/kube.h"
#include "meshroll/leader.h"
#include "meshroll/time-util.h"
#include "meshroll/yaml-json.h"
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include "elector.h"
#include "engine.h"
#include "nodes.h"
#include "sim.h"
#include "ztunnel.h"

static const char scenario_base[] = "name: coordinator-test\n"
                                    "nodes:\n"
                                    "  - {name: \"{zone}-{i}\", count: 2, zone: za}\n"
                                    "  - {name: \"{zone}-{i}\", count: 2, zone: zb}\n"
                                    "  - {name: \"{zone}-{i}\", count: 2, zone: zc}\n"
                                    "namespaces:\n"
                                    "  - {name: meshroll}\n"
                                    "  - {name: shop, labels: {istio.io/dataplane-mode: ambient}}\n"
                                    "istio:\n"
                                    "  revisions:\n"
                                    "    - {name: 1-24-0, version: 1.24.0, replicas: 1}\n"
                                    "    - {name: 1-25-0, version: 1.25.0, replicas: 1}\n"
                                    "  ztunnel: {revision: 1-24-0, pendingRevision: 1-25-0, updateStrategy: OnDelete,"
                                    " startupSeconds: 1, shutdownSeconds: 1}\n"
                                    "workloads:\n"
                                    "  - {name: web, namespace: shop, replicas: 3, startupSeconds: 1, shutdownSeconds: 1,"
                                    " pdb: {maxUnavailable: 1}}\n";

static const char rollout_doc[] = "apiVersion: meshroll.io/v1alpha1\n"
                                  "kind: Rollout\n"
                                  "metadata: {name: r1}\n"
                                  "spec:\n"
                                  "  groups: {canary: 1, byLabel: topology.kubernetes.io/zone}\n"
                                  "  drain: {timeout: 60s}\n"
                                  "  connectionGate: {timeout: 1s, onTimeout: proceed}\n"
                                  "  readiness: {timeout: 20s, minReadySeconds: 1}\n"
                                  "  soak: 0s\n";

typedef struct Fixture {
        char dir[128], audit[192];
        Sim *sim;
        sd_event *event;
        KubeClient *client;
        Engine *engine;
        bool finished;
        RolloutPhase phase;
        int stop_at_draining_group; /* ≥ 0: stop the loop once this group index is Draining */
        bool stopped_in_drain;
} Fixture;

static json_object *yaml_file(const char *path)
{
        _cleanup_free_ char *data = NULL;
        json_object *o = NULL;
        size_t size;
        assert_int_equal(mr_read_file(path, 1 << 20, &data, &size), 0);
        assert_int_equal(mr_yaml_parse(data, size, &o, NULL), 0);
        return o;
}

static void create(Fixture *f, const KubeResource *res, json_object *obj)
{
        _cleanup_free_ char *path = NULL;
        KubeStatus st;
        assert_int_equal(kube_path(res, NULL, NULL, NULL, &path), 0);
        if (kube_create(f->client, path, obj, NULL, &st) < 0)
                fail_msg("create %s: %s", res->plural, st.message);
}

static void start_with(Fixture *f, const char *extra_scenario, const char *rollout);

static void start(Fixture *f, const char *extra_scenario)
{
        start_with(f, extra_scenario, rollout_doc);
}

static void start_with(Fixture *f, const char *extra_scenario, const char *rollout)
{
        char scenario[4096], crd_path[512];
        MrError err = {};

        snprintf(f->dir, sizeof(f->dir), "/tmp/meshroll-coord-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->audit, sizeof(f->audit), "%s/audit.jsonl", f->dir);
        snprintf(scenario, sizeof(scenario), "%s%s", scenario_base, strempty(extra_scenario));
        SimOptions so = { .scenario_data = scenario, .scenario_size = strlen(scenario), .audit_path = f->audit,
                          .speed = 10 };
        if (sim_start(&so, &f->sim, &err) < 0)
                fail_msg("sim_start: %s", err.message);

        KubeConfigOptions ko = { .server = sim_url(f->sim) };
        _cleanup_(kube_config_freep) KubeConfig *config = NULL;
        assert_int_equal(kube_config_load(&ko, &config, &err), 0);
        KubeClientOptions co = { .qps = -1, .max_retries = 2 };
        assert_int_equal(kube_client_new(config, &co, &f->client, &err), 0);
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(kube_client_attach_event(f->client, f->event), 0);

        snprintf(crd_path, sizeof(crd_path), "%s/manifests/crd-rollout.yaml", getenv("MESHROLL_SOURCE_ROOT"));
        _cleanup_(json_object_putp) json_object *crd = yaml_file(crd_path);
        create(f, &KUBE_CRDS, crd);
        _cleanup_(json_object_putp) json_object *doc = NULL;
        assert_int_equal(mr_yaml_parse(rollout, strlen(rollout), &doc, NULL), 0);
        create(f, &KUBE_ROLLOUTS, doc);
}

static void on_change(Engine *e, const RolloutStatus *s, void *userdata)
{
        Fixture *f = userdata;
        int cur = rollout_status_current(s);
        if (f->stop_at_draining_group >= 0 && cur == f->stop_at_draining_group &&
            s->groups[cur].state == GROUP_DRAINING) {
                f->stopped_in_drain = true;
        }
}

static void on_finished(Engine *e, RolloutPhase phase, void *userdata)
{
        Fixture *f = userdata;
        f->finished = true;
        f->phase = phase;
}

static void start_engine(Fixture *f)
{
        EngineOptions o = { .rollout = "r1", .tick = 100 * USEC_PER_MSEC, .on_change = on_change,
                            .on_finished = on_finished, .userdata = f };
        assert_int_equal(engine_new(f->event, f->client, &o, &f->engine), 0);
}

/* Runs the loop until the engine finishes, the fixture stops it, or d passes. */
static void run_until(Fixture *f, usec_t d)
{
        usec_t end = mr_now_monotonic(NULL) + d;
        while (!f->finished && !f->stopped_in_drain) {
                usec_t now = mr_now_monotonic(NULL);
                if (now >= end)
                        fail_msg("the rollout did not finish in time");
                assert_true(sd_event_run(f->event, MIN(end - now, 200 * USEC_PER_MSEC)) >= 0);
        }
}

static json_object *get(Fixture *f, const KubeResource *res, const char *ns, const char *name)
{
        _cleanup_free_ char *path = NULL;
        json_object *o = NULL;
        KubeStatus st;
        assert_int_equal(kube_path(res, ns, name, NULL, &path), 0);
        assert_int_equal(kube_get(f->client, path, &o, &st), 0);
        return o;
}

static const char *phase_of(json_object *rollout)
{
        return mr_json_get_str(rollout, "status", "phase", NULL);
}

static void stop(Fixture *f)
{
        f->engine = engine_free(f->engine);
        kube_client_free(f->client);
        sd_event_unref(f->event);
        sim_stop(f->sim);
        unlink(f->audit);
        rmdir(f->dir);
}

/* Audit records of a resource, in order (owned array). */
static json_object *audit(Fixture *f, const char *resource)
{
        _cleanup_free_ char *data = NULL;
        json_object *out = json_object_new_array();
        assert_int_equal(mr_read_file(f->audit, 256u << 20, &data, NULL), 0);
        for (char *line = data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
                nl = strchr(line, '\n');
                if (nl)
                        *nl = 0;
                json_object *o = NULL;
                if (mr_json_parse(line, strlen(line), 1 << 24, &o) < 0)
                        continue;
                if (streq_ptr(mr_json_get_str(o, "resource", NULL), resource))
                        json_object_array_add(out, o);
                else
                        json_object_put(o);
        }
        return out;
}

static const char *zone_of(const char *node)
{
        return node[1] == 'a' ? "za" : node[1] == 'b' ? "zb" : "zc";
}

/* Replays node writes: at no moment may nodes of two zones be cordoned by meshroll. */
static void assert_one_group_at_a_time(Fixture *f, const char *operator_node)
{
        _cleanup_(json_object_putp) json_object *writes = audit(f, "nodes");
        char cordoned[6][16] = {};
        for (size_t i = 0; i < json_object_array_length(writes); i++) {
                json_object *w = json_object_array_get_idx(writes, i);
                const char *name = mr_json_get_str(w, "name", NULL);
                bool unschedulable = mr_json_get_bool(false, w, "object", "spec", "unschedulable", NULL);
                int idx = (name[1] - 'a') * 2 + (name[strlen(name) - 1] - '1');
                assert_true(idx >= 0 && idx < 6);
                snprintf(cordoned[idx], sizeof(cordoned[idx]), "%s",
                         unschedulable && !streq_ptr(name, operator_node) ? zone_of(name) : "");
                const char *zone = NULL;
                for (int n = 0; n < 6; n++) {
                        if (!cordoned[n][0])
                                continue;
                        if (zone && !streq(zone, cordoned[n]))
                                fail_msg("audit record %zu: nodes of zones %s and %s cordoned at once", i, zone,
                                         cordoned[n]);
                        zone = cordoned[n];
                }
        }
}

/* ztunnel_inspect, retried while the DaemonSet controller has not written the template's revision (-EAGAIN). */
static void inspect(Fixture *f, ZtunnelInfo **ret)
{
        usec_t end = mr_now_monotonic(NULL) + 10 * USEC_PER_SEC;
        int r;
        while ((r = ztunnel_inspect(f->client, "istio-system", "ztunnel", ret, NULL)) == -EAGAIN &&
               mr_now_monotonic(NULL) < end)
                (void)usleep(50 * 1000);
        assert_int_equal(r, 0);
}

static void assert_all_on(Fixture *f, const char *hash)
{
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = NULL;
        inspect(f, &z);
        assert_int_equal(z->n_pods, 6);
        for (size_t i = 0; i < z->n_pods; i++)
                if (ztunnel_node_state(z, z->pods[i].node, hash) != ZTUNNEL_NODE_READY)
                        fail_msg("node %s: ztunnel %s, want Ready on %s", z->pods[i].node, strna(z->pods[i].hash), hash);
}

static void assert_node(Fixture *f, const char *name, bool cordoned)
{
        _cleanup_(json_object_putp) json_object *n = get(f, &KUBE_NODES, NULL, name);
        if (mr_json_get_bool(false, n, "spec", "unschedulable", NULL) != cordoned)
                fail_msg("node %s: unschedulable should be %s", name, cordoned ? "true" : "false");
        assert_null(mr_json_get(n, "metadata", "annotations", NODE_ANNOTATION_PHASE, NULL));
        assert_null(mr_json_get(n, "metadata", "annotations", NODE_ANNOTATION_CORDONED_BY, NULL));
}

static void test_rollout_completes(void **state)
{
        Fixture f = { .stop_at_draining_group = -1 };
        start(&f, NULL);

        /* An operator cordoned zb-2 before the rollout: it must stay cordoned. */
        _cleanup_(json_object_putp) json_object *patch = NULL;
        KubeStatus st;
        assert_int_equal(mr_json_parse("{\"spec\":{\"unschedulable\":true}}", 31, 1 << 10, &patch), 0);
        assert_int_equal(kube_patch(f.client, "/api/v1/nodes/zb-2", KUBE_PATCH_MERGE, patch, NULL, &st), 0);

        _cleanup_(ztunnel_info_freep) ZtunnelInfo *before = NULL;
        inspect(&f, &before);
        start_engine(&f);
        run_until(&f, 90 * USEC_PER_SEC);
        assert_true(f.finished);
        assert_int_equal(f.phase, ROLLOUT_COMPLETED);

        _cleanup_(json_object_putp) json_object *r = get(&f, &KUBE_ROLLOUTS, NULL, "r1");
        assert_string_equal(phase_of(r), "Completed");
        int64_t v;
        assert_int_equal(mr_json_get_int(&v, r, "status", "groupsTotal", NULL), 0);
        assert_int_equal(v, 4); /* canary, za (rest), zb, zc */
        assert_all_on(&f, before->update_hash);
        const char *nodes[] = { "za-1", "za-2", "zb-1", "zc-1", "zc-2" };
        for (size_t i = 0; i < ELEMENTSOF(nodes); i++)
                assert_node(&f, nodes[i], false);
        assert_node(&f, "zb-2", true);
        assert_one_group_at_a_time(&f, "zb-2");

        /* The story is told in Events (sent without waiting: let the last ones go out). */
        usec_t flush = mr_now_monotonic(NULL) + 500 * USEC_PER_MSEC;
        while (mr_now_monotonic(NULL) < flush)
                assert_true(sd_event_run(f.event, 100 * USEC_PER_MSEC) >= 0);
        _cleanup_(json_object_putp) json_object *events = NULL;
        assert_int_equal(kube_list(f.client, &KUBE_EVENTS, "default", NULL, &events, NULL, &st), 0);
        unsigned rollout_done = 0, node_cordoned = 0, completed = 0;
        for (size_t i = 0; i < json_object_array_length(events); i++) {
                json_object *ev = json_object_array_get_idx(events, i);
                const char *kind = mr_json_get_str(ev, "involvedObject", "kind", NULL);
                const char *reason = mr_json_get_str(ev, "reason", NULL);
                if (streq_ptr(kind, "Rollout") && streq_ptr(reason, "GroupDone"))
                        rollout_done++;
                if (streq_ptr(kind, "Rollout") && streq_ptr(reason, "Completed"))
                        completed++;
                if (streq_ptr(kind, "Node") && streq_ptr(reason, "MeshrollCordoned"))
                        node_cordoned++;
        }
        assert_int_equal(rollout_done, 4);
        assert_int_equal(completed, 1);
        assert_int_equal(node_cordoned, 6); /* every node, the operator-cordoned one included (it is drained) */
        stop(&f);
}

static void test_never_ready_rolls_back_the_canary(void **state)
{
        Fixture f = { .stop_at_draining_group = -1 };
        start(&f, "faults: {neverReadyImages: [docker.io/istio/ztunnel:1.25.0]}\n");

        _cleanup_(ztunnel_info_freep) ZtunnelInfo *before = NULL;
        inspect(&f, &before);
        start_engine(&f);
        /* The rollout pauses (not finishes): run until the rollout says so. */
        usec_t end = mr_now_monotonic(NULL) + 90 * USEC_PER_SEC;
        for (;;) {
                assert_true(mr_now_monotonic(NULL) < end);
                assert_true(sd_event_run(f.event, 200 * USEC_PER_MSEC) >= 0);
                _cleanup_(json_object_putp) json_object *r = get(&f, &KUBE_ROLLOUTS, NULL, "r1");
                if (streq_ptr(phase_of(r), "Paused")) {
                        assert_string_equal(mr_json_get_str(r, "status", "reason", NULL), "RolledBack");
                        json_object *g0 = json_object_array_get_idx(mr_json_get(r, "status", "groups", NULL), 0);
                        assert_string_equal(mr_json_get_str(g0, "state", NULL), "RolledBack");
                        json_object *g1 = json_object_array_get_idx(mr_json_get(r, "status", "groups", NULL), 1);
                        assert_string_equal(mr_json_get_str(g1, "state", NULL), "Pending");
                        break;
                }
        }
        /* The pause holds until an operator resumes: spec.paused is set, and ticking on starts nothing. */
        usec_t hold = mr_now_monotonic(NULL) + 2 * USEC_PER_SEC;
        while (mr_now_monotonic(NULL) < hold)
                assert_true(sd_event_run(f.event, 200 * USEC_PER_MSEC) >= 0);
        _cleanup_(json_object_putp) json_object *held = get(&f, &KUBE_ROLLOUTS, NULL, "r1");
        assert_true(mr_json_get_bool(false, held, "spec", "paused", NULL));
        assert_string_equal(phase_of(held), "Paused");
        json_object *g1 = json_object_array_get_idx(mr_json_get(held, "status", "groups", NULL), 1);
        assert_string_equal(mr_json_get_str(g1, "state", NULL), "Pending");

        /* Every node runs the previous revision again (the canary was replaced back), and the
         * DaemonSet's template is the target again for the groups to come. */
        assert_all_on(&f, before->previous_hash);
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *after = NULL;
        inspect(&f, &after);
        assert_string_equal(after->update_hash, before->update_hash);
        const char *nodes[] = { "za-1", "za-2", "zb-1", "zb-2", "zc-1", "zc-2" };
        for (size_t i = 0; i < ELEMENTSOF(nodes); i++)
                assert_node(&f, nodes[i], false);
        stop(&f);
}

static void test_crash_in_drain_resumes(void **state)
{
        Fixture f = { .stop_at_draining_group = 2 };
        start(&f, NULL);
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *before = NULL;
        inspect(&f, &before);

        /* First coordinator: dies (freed without cleanup) as group 3 starts draining. */
        start_engine(&f);
        run_until(&f, 90 * USEC_PER_SEC);
        assert_true(f.stopped_in_drain);
        f.engine = engine_free(f.engine);

        /* Second coordinator: picks the rollout up from its status. */
        f.stop_at_draining_group = -1;
        f.stopped_in_drain = false;
        start_engine(&f);
        run_until(&f, 90 * USEC_PER_SEC);
        assert_int_equal(f.phase, ROLLOUT_COMPLETED);
        assert_all_on(&f, before->update_hash);

        /* No pod was evicted twice. */
        _cleanup_(json_object_putp) json_object *evictions = audit(&f, "pods");
        for (size_t i = 0; i < json_object_array_length(evictions); i++) {
                json_object *a = json_object_array_get_idx(evictions, i);
                if (!streq_ptr(mr_json_get_str(a, "verb", NULL), "evict"))
                        continue;
                for (size_t j = i + 1; j < json_object_array_length(evictions); j++) {
                        json_object *b = json_object_array_get_idx(evictions, j);
                        if (streq_ptr(mr_json_get_str(b, "verb", NULL), "evict") &&
                            streq_ptr(mr_json_get_str(a, "name", NULL), mr_json_get_str(b, "name", NULL)))
                                fail_msg("pod %s evicted twice", mr_json_get_str(a, "name", NULL));
                }
        }
        stop(&f);
}

/*
 * A drain a PodDisruptionBudget never allows: the workload is pinned to zone
 * b and its PDB allows no disruption. The drain waits, then at its timeout
 * the rollout pauses with the PDB named, and zone b stays cordoned (nothing
 * was evicted, so nothing is replaced) while zone c is never touched.
 */
static void test_pdb_blocked_drain_pauses(void **state)
{
        static const char pinned[] =
                "  - {name: ledger, namespace: shop, replicas: 2, startupSeconds: 1, shutdownSeconds: 1,"
                " nodeSelector: {topology.kubernetes.io/zone: zb}, pdb: {minAvailable: 2}}\n";
        static const char rollout[] = "apiVersion: meshroll.io/v1alpha1\n"
                                      "kind: Rollout\n"
                                      "metadata: {name: r1}\n"
                                      "spec:\n"
                                      "  groups: {byLabel: topology.kubernetes.io/zone}\n"
                                      "  drain: {timeout: 3s}\n"
                                      "  preflight: {skip: [pdb-impossible]}\n"
                                      "  connectionGate: {timeout: 1s, onTimeout: proceed}\n"
                                      "  readiness: {timeout: 20s, minReadySeconds: 1}\n"
                                      "  soak: 0s\n";
        Fixture f = { .stop_at_draining_group = -1 };
        start_with(&f, pinned, rollout);
        start_engine(&f);

        usec_t end = mr_now_monotonic(NULL) + 60 * USEC_PER_SEC;
        json_object *r = NULL;
        for (;;) {
                assert_true(mr_now_monotonic(NULL) < end);
                assert_true(sd_event_run(f.event, 200 * USEC_PER_MSEC) >= 0);
                json_object_put(r);
                r = get(&f, &KUBE_ROLLOUTS, NULL, "r1");
                if (streq_ptr(phase_of(r), "Paused"))
                        break;
        }
        _cleanup_(json_object_putp) json_object *paused = r;
        assert_string_equal(mr_json_get_str(paused, "status", "reason", NULL), "DrainTimeout");
        const char *message = mr_json_get_str(paused, "status", "message", NULL);
        if (!strstr(strempty(message), "PodDisruptionBudget shop/ledger"))
                fail_msg("the pause does not name the PDB: %s", strna(message));
        assert_string_equal(mr_json_get_str(paused, "status", "currentGroup", NULL), "zb");
        assert_true(mr_json_get_bool(false, paused, "spec", "paused", NULL));

        _cleanup_(json_object_putp) json_object *zb1 = get(&f, &KUBE_NODES, NULL, "zb-1");
        assert_true(mr_json_get_bool(false, zb1, "spec", "unschedulable", NULL));
        _cleanup_(json_object_putp) json_object *zc1 = get(&f, &KUBE_NODES, NULL, "zc-1");
        assert_false(mr_json_get_bool(false, zc1, "spec", "unschedulable", NULL));
        assert_null(mr_json_get(zc1, "metadata", "annotations", NODE_ANNOTATION_PHASE, NULL));
        stop(&f);
}

/* Audit records whose actor (User-Agent) starts with prefix. */
static unsigned writes_by(Fixture *f, const char *resource, const char *prefix)
{
        _cleanup_(json_object_putp) json_object *w = audit(f, resource);
        unsigned n = 0;
        for (size_t i = 0; i < json_object_array_length(w); i++)
                if (startswith(strempty(mr_json_get_str(json_object_array_get_idx(w, i), "actor", NULL)), prefix))
                        n++;
        return n;
}

/*
 * A renewal that lands late: the fence sees the lease lapse while the
 * renewing write is in flight, then the write's answer restores it — the
 * same holder throughout, so the elector reports no change of leadership.
 * The engine writes nothing while the lease cannot be proven, and then
 * goes on by itself: it used to stop for good, waiting for a "leading"
 * call that never came (the 5,000-node benchmark's coordinator sat idle).
 */
static void test_late_renewal_resumes(void **state)
{
        static const char *const resources[] = { "nodes", "pods", "daemonsets", "rollouts" };
        Fixture f = { .stop_at_draining_group = 1 };
        MrFakeClock fake;
        MrError err = {};
        MrLeaderRecord rec;

        mr_fake_clock_init(&fake, 1000 * USEC_PER_SEC, 1767225600ULL * USEC_PER_SEC);
        MrLeaderConfig lc = { .identity = "solo", .clock = &fake.clock }; /* renew deadline 10 s */
        _cleanup_(mr_leader_freep) MrLeaderElector *le = NULL;
        assert_int_equal(mr_leader_new(&lc, &le, &err), 0);
        assert_int_equal(mr_leader_observe(le, NULL, NULL, &rec), MR_LEADER_CREATE);
        mr_leader_write_done(le, 0, NULL, "1");
        assert_int_equal(mr_leader_check(le), 0);

        start(&f, NULL);
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *before = NULL;
        inspect(&f, &before);
        EngineOptions o = { .rollout = "r1", .tick = 100 * USEC_PER_MSEC, .elector = le, .on_change = on_change,
                            .on_finished = on_finished, .userdata = &f };
        assert_int_equal(engine_new(f.event, f.client, &o, &f.engine), 0);
        engine_set_active(f.engine, true); /* what the elector reports once, on acquiring */
        run_until(&f, 90 * USEC_PER_SEC);
        assert_true(f.stopped_in_drain);

        /* A renewal starts 2 s after the last one, and is still unanswered 8.5 s later. */
        fake.monotonic += 2 * USEC_PER_SEC;
        fake.realtime += 2 * USEC_PER_SEC;
        assert_int_equal(mr_leader_renew(le, &rec), 1);
        fake.monotonic += 8500 * USEC_PER_MSEC;
        fake.realtime += 8500 * USEC_PER_MSEC;

        unsigned before_writes[ELEMENTSOF(resources)];
        for (size_t i = 0; i < ELEMENTSOF(resources); i++)
                before_writes[i] = writes_by(&f, resources[i], "meshroll");
        usec_t end = mr_now_monotonic(NULL) + 1500 * USEC_PER_MSEC;
        while (mr_now_monotonic(NULL) < end)
                assert_true(sd_event_run(f.event, 100 * USEC_PER_MSEC) >= 0);
        assert_int_equal(mr_leader_check(le), -MR_ELOSTLEASE);
        for (size_t i = 0; i < ELEMENTSOF(resources); i++)
                if (writes_by(&f, resources[i], "meshroll") != before_writes[i])
                        fail_msg("%s written while the lease could not be proven", resources[i]);

        /* The answer arrives: renewed by the same holder, no change of leadership to report. */
        mr_leader_write_done(le, 0, NULL, "2");
        assert_int_equal(mr_leader_check(le), 0);
        f.stop_at_draining_group = -1;
        f.stopped_in_drain = false;
        run_until(&f, 90 * USEC_PER_SEC);
        assert_int_equal(f.phase, ROLLOUT_COMPLETED);
        assert_all_on(&f, before->update_hash);
        stop(&f);
}

/* `meshroll plan` reads everything and writes nothing. */
static void test_plan_changes_nothing(void **state)
{
        Fixture f = { .stop_at_draining_group = -1 };
        char exe[512], spec[256];
        start(&f, NULL);

        snprintf(exe, sizeof(exe), "%s/coordinator/meshroll", getenv("MESHROLL_BUILD_ROOT"));
        snprintf(spec, sizeof(spec), "%s/r1.yaml", f.dir);
        FILE *out = fopen(spec, "we");
        assert_non_null(out);
        fputs(rollout_doc, out);
        fclose(out);

        static const char *const resources[] = { "nodes", "pods", "daemonsets", "rollouts", "leases", "events" };
        unsigned before[ELEMENTSOF(resources)];
        for (size_t i = 0; i < ELEMENTSOF(resources); i++)
                before[i] = writes_by(&f, resources[i], "meshroll");

        char *argv[] = { exe, "plan", "-f", spec, "--server", (char *)sim_url(f.sim), NULL };
        pid_t pid;
        int status;
        assert_int_equal(posix_spawn(&pid, exe, NULL, NULL, argv, environ), 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status)); /* 0 or 1 (something would block): both fine here */

        for (size_t i = 0; i < ELEMENTSOF(resources); i++)
                if (writes_by(&f, resources[i], "meshroll") != before[i])
                        fail_msg("plan wrote to %s", resources[i]);
        _cleanup_(json_object_putp) json_object *r = get(&f, &KUBE_ROLLOUTS, NULL, "r1");
        assert_null(mr_json_get(r, "status", "phase", NULL));
        stop(&f);
}

/* Two coordinators with leader election: only the one holding the lease ever writes. */
typedef struct Candidate {
        KubeClient *client;
        Elector *elector;
        Engine *engine;
} Candidate;

static void on_leading(Elector *el, bool leading, void *userdata)
{
        Candidate *c = userdata;
        if (c->engine)
                engine_set_active(c->engine, leading);
}

static void test_two_coordinators_one_writer(void **state)
{
        Fixture f = { .stop_at_draining_group = -1 };
        Candidate cand[2] = {};
        MrError err = {};
        start(&f, NULL);

        for (int i = 0; i < 2; i++) {
                char ua[32], id[32];
                snprintf(ua, sizeof(ua), "meshroll-candidate-%d", i);
                snprintf(id, sizeof(id), "candidate-%d", i);
                KubeConfigOptions ko = { .server = sim_url(f.sim) };
                _cleanup_(kube_config_freep) KubeConfig *config = NULL;
                assert_int_equal(kube_config_load(&ko, &config, &err), 0);
                KubeClientOptions co = { .qps = -1, .max_retries = 2, .user_agent = ua };
                assert_int_equal(kube_client_new(config, &co, &cand[i].client, &err), 0);
                assert_int_equal(kube_client_attach_event(cand[i].client, f.event), 0);
                MrLeaderConfig lc = { .identity = id, .lease_duration = 3 * USEC_PER_SEC,
                                      .renew_deadline = 2 * USEC_PER_SEC, .retry_period = 500 * USEC_PER_MSEC };
                if (elector_new(f.event, cand[i].client, "meshroll", "meshroll-coordinator", &lc, on_leading, &cand[i],
                                &cand[i].elector, &err) < 0)
                        fail_msg("elector: %s", err.message);
                EngineOptions o = { .rollout = "r1", .tick = 100 * USEC_PER_MSEC, .elector = elector_state(cand[i].elector),
                                    .on_finished = on_finished, .userdata = &f };
                assert_int_equal(engine_new(f.event, cand[i].client, &o, &cand[i].engine), 0);
        }
        run_until(&f, 90 * USEC_PER_SEC);
        assert_int_equal(f.phase, ROLLOUT_COMPLETED);

        /* Every write to the cluster (but the election Lease) came from one of them. */
        static const char *const resources[] = { "nodes", "pods", "daemonsets", "rollouts" };
        unsigned by[2] = {};
        for (size_t r = 0; r < ELEMENTSOF(resources); r++)
                for (int i = 0; i < 2; i++) {
                        char prefix[32];
                        snprintf(prefix, sizeof(prefix), "meshroll-candidate-%d", i);
                        by[i] += writes_by(&f, resources[r], prefix);
                }
        if (!((by[0] > 0) ^ (by[1] > 0)))
                fail_msg("writes by candidate 0: %u, by candidate 1: %u (exactly one may write)", by[0], by[1]);

        for (int i = 0; i < 2; i++) {
                /* leadership first: its callback still reaches the engine */
                elector_release(cand[i].elector);
                elector_free(cand[i].elector);
                engine_free(cand[i].engine);
                kube_client_free(cand[i].client);
        }
        stop(&f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rollout_completes),
                cmocka_unit_test(test_never_ready_rolls_back_the_canary),
                cmocka_unit_test(test_crash_in_drain_resumes),
                cmocka_unit_test(test_plan_changes_nothing),
                cmocka_unit_test(test_pdb_blocked_drain_pauses),
                cmocka_unit_test(test_two_coordinators_one_writer),
                cmocka_unit_test(test_late_renewal_resumes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
