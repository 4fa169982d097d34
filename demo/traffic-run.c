/* SPDX-License-Identifier: Apache-2.0 */
/*
 * traffic-run.c — `meshroll-demo --traffic` (traffic-run.h, docs/demo.md).
 *
 * The cluster: three nodes with ztunnel, reviews-v1 and reviews-v2 (three
 * replicas each, pods labelled version=v1/v2) behind the Service reviews, a
 * DestinationRule with the subset v1 and a VirtualService routing 100 % to
 * it, and a frontend whose connections the load generator drives. Weights
 * apply per connection in the simulator's data plane, so the load generator
 * recycles each connection every REQUESTS_PER_CONNECTION answers (an HTTP
 * client's cap) — that is what lets a weight change show within a second.
 * With --fail-share, v2's pods answer 503 to that share of requests
 * (the annotation sim.meshroll.io/error-rate).
 *
 * The Rollout is the traffic phase alone: steps 10, 50, 100 % with
 * --step-pause each and a soak as long, then v1 scaled down; with
 * --prometheus, one gate: v2's 5xx ratio seen by the client side ≤ 0.1 %,
 * checked every 2 s, 2 checks in a row, `onError: wait` (v2's series appear
 * only once its first requests are scraped: no data at a step's very start
 * is not a verdict; the phase's timeout bounds the wait). `meshroll run` is a child process;
 * the demo polls the Rollout and stops the coordinator once the Rollout
 * completes or pauses (a rollback), like the ztunnel runs.
 *
 * The failed-request budget: what a working gate lets through — v2's share
 * of failures at the first step over the time to detect it (the first check
 * comes one interval into the step, a failed check rolls back at once; allow
 * three intervals, Prometheus's scrape and rate window, and the rollback's
 * own writes): fail_share × 10 % × request rate × (3 × interval + 12 s).
 */
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "cluster.h"
#include "meshroll/json-util.h"
#include "meshroll/log.h"
#include "procs.h"
#include "signals.h"
#include "traffic-run.h"

#define TRAFFIC_ROLLOUT "reviews-v2"
#define REQUESTS_PER_CONNECTION 4
#define FIRST_STEP 10
#define GATE_INTERVAL_S 2
#define STATUS_INTERVAL (200 * USEC_PER_MSEC)

static int build_scenario(const DemoOptions *o, char **ret)
{
        char fail[96] = "";

        if (o->fail_share > 0)
                snprintf(fail, sizeof(fail), ", podAnnotations: {sim.meshroll.io/error-rate: \"%g\"}",
                         o->fail_share);
        if (asprintf(
                ret,
                "name: traffic-demo\n"
                "nodes: [{name: \"node-{i}\", count: 3}]\n"
                "namespaces: [{name: shop, labels: {istio.io/dataplane-mode: ambient}}]\n"
                "istio:\n"
                "  revisions: [{name: 1-24-0, version: " DEMO_OLD_VERSION ", replicas: 1}]\n"
                "  tags: {default: 1-24-0}\n"
                "  ztunnel: {revision: 1-24-0, startupSeconds: 1}\n"
                "workloads:\n"
                "  - {name: reviews-v1, namespace: shop, replicas: 3, labels: {app: reviews, version: v1},\n"
                "     startupSeconds: 2, service: {name: reviews, selector: {app: reviews}, port: 9080}}\n"
                "  - {name: reviews-v2, namespace: shop, replicas: 3, labels: {app: reviews, version: v2},\n"
                "     startupSeconds: 2%s}\n"
                "  - {name: frontend, namespace: shop, replicas: 2, startupSeconds: 1}\n"
                "objects:\n"
                "  - apiVersion: networking.istio.io/v1\n"
                "    kind: DestinationRule\n"
                "    metadata: {name: reviews, namespace: shop}\n"
                "    spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}]}\n"
                "  - apiVersion: networking.istio.io/v1\n"
                "    kind: VirtualService\n"
                "    metadata: {name: reviews, namespace: shop}\n"
                "    spec:\n"
                "      hosts: [reviews]\n"
                "      http: [{route: [{destination: {host: reviews, subset: v1}}]}]\n",
                fail) < 0)
                return -ENOMEM;
        return 0;
}

static int write_rollout(const DemoOptions *o, const char *path)
{
        char pause[32];
        _cleanup_free_ char *gates = NULL;
        FILE *f;

        mr_duration_format(o->step_pause, pause, sizeof(pause));
        if (o->prometheus &&
            asprintf(
                &gates,
                "  prometheus: \"%s\"\n"
                "  traffic:\n"
                "    gates:\n"
                "      - name: v2-error-rate\n"
                "        query: >-\n"
                "          "
                "(sum(rate(istio_requests_total{reporter=\"source\",destination_workload=\"reviews-v2\","
                "response_code=~\"5..\"}[10s])) or vector(0))\n"
                "          / "
                "sum(rate(istio_requests_total{reporter=\"source\",destination_workload=\"reviews-v2\"}[10s]"
                "))\n"
                "        threshold: 0.001\n"
                "        interval: %ds\n"
                "        checks: 2\n"
                "        onError: wait\n",
                o->prometheus, GATE_INTERVAL_S) < 0)
                return -ENOMEM;
        if (!(f = fopen(path, "we")))
                return -errno;
        fprintf(f,
                "apiVersion: meshroll.io/v1alpha1\n"
                "kind: Rollout\n"
                "metadata: {name: " TRAFFIC_ROLLOUT "}\n"
                "spec:\n"
                "  phases: [traffic]\n"
                "%s"
                "%s"
                "    namespace: shop\n"
                "    host: reviews\n"
                "    destinationRule: reviews\n"
                "    virtualService: reviews\n"
                "    from: v1\n"
                "    to: v2\n"
                "    deployment: reviews-v2\n"
                "    steps: [%d, 50, 100]\n"
                "    stepPause: %s\n"
                "    soak: %s\n"
                "    timeout: 2m\n"
                "    old: {action: scaleDown, deployment: reviews-v1}\n",
                gates ? gates : "", gates ? "" : "  traffic:\n", FIRST_STEP, pause, pause);
        return fclose(f) == 0 ? 0 : -errno;
}

/* Prometheus file_sd: every node's /metrics, written whole then renamed. */
static int write_targets(DemoCluster *c, const char *path)
{
        _cleanup_strv_free_ char **names = NULL, **addrs = NULL;
        _cleanup_free_ char *tmp = NULL;
        int r;

        if ((r = demo_cluster_nodes(c, &names, &addrs)) < 0)
                return r;
        if (asprintf(&tmp, "%s.tmp", path) < 0)
                return -ENOMEM;
        FILE *f = fopen(tmp, "we");
        if (!f)
                return -errno;
        fprintf(f, "[{\"labels\": {\"job\": \"meshroll-demo\"}, \"targets\": [");
        for (size_t i = 0; addrs[i]; i++)
                fprintf(f, "%s\"%s:15020\"", i ? ", " : "", addrs[i]);
        fprintf(f, "]}]\n");
        if (fclose(f) != 0 || rename(tmp, path) < 0) {
                r = -errno;
                (void)unlink(tmp);
                return r;
        }
        return 0;
}

/* The Rollout's phase, reason and message; the VirtualService's weights. */
static void poll_state(DemoCluster *c, DemoTrafficRun *t)
{
        _cleanup_(json_object_putp) json_object *ro = NULL, *vs = NULL;
        KubeStatus st;

        if (kube_get(demo_cluster_client(c), "/apis/meshroll.io/v1alpha1/rollouts/" TRAFFIC_ROLLOUT, &ro,
                     &st) >= 0) {
                snprintf(t->phase, sizeof(t->phase), "%s",
                         strempty(mr_json_get_str(ro, "status", "phase", NULL)));
                snprintf(t->reason, sizeof(t->reason), "%s",
                         strempty(mr_json_get_str(ro, "status", "reason", NULL)));
                snprintf(t->message, sizeof(t->message), "%s",
                         strempty(mr_json_get_str(ro, "status", "message", NULL)));
        }
        if (kube_get(demo_cluster_client(c),
                     "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/reviews", &vs, &st) < 0)
                return;
        json_object *route =
            mr_json_get(json_object_array_get_idx(mr_json_get(vs, "spec", "http", NULL), 0), "route", NULL);
        size_t n = json_object_is_type(route, json_type_array) ? json_object_array_length(route) : 0;
        t->weight_v1 = t->weight_v2 = 0;
        for (size_t i = 0; i < n; i++) {
                json_object *d = json_object_array_get_idx(route, i);
                int64_t w = n == 1 ? 100 : 0;
                (void)mr_json_get_int(&w, d, "weight", NULL);
                const char *subset = mr_json_get_str(d, "destination", "subset", NULL);
                if (streq_ptr(subset, "v1"))
                        t->weight_v1 = (unsigned)w;
                else if (streq_ptr(subset, "v2"))
                        t->weight_v2 = (unsigned)w;
        }
}

static void traffic_delta(DemoCluster *c, const DemoTraffic *base, DemoTraffic *ret)
{
        demo_cluster_traffic(c, ret);
        ret->requests_sent -= base->requests_sent;
        ret->requests_ok -= base->requests_ok;
        ret->requests_failed -= base->requests_failed;
        ret->requests_error -= base->requests_error;
        ret->requests_retried -= base->requests_retried;
        ret->connections_opened -= base->connections_opened;
        ret->connections_closed -= base->connections_closed;
        ret->connections_reset -= base->connections_reset;
}

int demo_traffic_run(const DemoOptions *o, const DemoPaths *paths, usec_t deadline, DemoTrafficRun *t)
{
        _cleanup_(demo_cluster_stopp) DemoCluster *c = NULL;
        _cleanup_free_ char *scenario = NULL, *file = NULL;
        DemoChildren children = {};
        char shown[64] = "";
        DemoTraffic base;
        pid_t pid;
        int r;

        *t = (DemoTrafficRun){};
        if ((r = build_scenario(o, &scenario)) < 0 ||
            asprintf(&file, "%s/traffic-rollout.yaml", paths->dir) < 0)
                return log_oom();
        DemoClusterOptions co = {
            .scenario_data = scenario,
            .speed = o->speed,
            .client_namespace = "shop",
            .client_selector = "app=frontend",
            .service = "shop/reviews",
            .connections = o->connections,
            .rate = o->rate,
            .requests_per_connection = REQUESTS_PER_CONNECTION,
            .deadline = deadline,
        };
        printf("== the traffic phase: shop/reviews from v1 to v2, steps %d, 50, 100 %%%s\n", FIRST_STEP,
               o->prometheus ? ", gated on Prometheus" : "");
        fflush(stdout);
        if ((r = demo_cluster_start(&co, &c)) < 0 || (r = demo_cluster_install_crd(c, paths->manifests)) < 0)
                return r;
        if (o->targets_file && (r = write_targets(c, o->targets_file)) < 0)
                return log_error_errno(r, "Cannot write %s: %m", o->targets_file);
        if ((r = write_rollout(o, file)) < 0)
                return log_error_errno(r, "Cannot write %s: %m", file);
        printf("Traffic: %u connections from shop/app=frontend to shop/reviews, %g requests/s each, a new "
               "connection every %d requests%s.\n",
               o->connections, o->rate, REQUESTS_PER_CONNECTION,
               o->fail_share > 0 ? "; v2 answers 503 to a share of its requests" : "");

        char *argv[] = {(char *)paths->meshroll,
                        "run",
                        "-f",
                        file,
                        "--server",
                        (char *)demo_cluster_url(c),
                        "--tick",
                        "200ms",
                        "--lease-namespace",
                        "default",
                        "--log-level",
                        o->verbose ? "info" : "warning",
                        NULL};
        demo_cluster_traffic(c, &base);
        usec_t start = mr_now_monotonic(NULL);
        if ((r = demo_spawn(&children, "meshroll run", argv, 1, 2, &pid)) < 0)
                return log_error_errno(r, "Cannot start %s: %m", paths->meshroll);
        printf("%s run -f %s --server %s --tick 200ms\n", paths->meshroll, file, demo_cluster_url(c));
        fflush(stdout);
        r = 0;
        for (;;) {
                struct pollfd p = {.fd = demo_signals_fd(), .events = POLLIN};
                (void)poll(&p, 1, (int)(STATUS_INTERVAL / USEC_PER_MSEC));
                if (demo_interrupted()) {
                        r = -ECANCELED;
                        break;
                }
                poll_state(c, t);
                char now_shown[64];
                snprintf(now_shown, sizeof(now_shown), "%u/%u", t->weight_v1, t->weight_v2);
                if (!streq(now_shown, shown)) {
                        DemoTraffic d;
                        traffic_delta(c, &base, &d);
                        printf("  %6.1fs  weights v1 %3u %% / v2 %3u %%   requests ok %" PRIu64
                               ", failed %" PRIu64 "\n",
                               (double)(mr_now_monotonic(NULL) - start) / USEC_PER_SEC, t->weight_v1,
                               t->weight_v2, d.requests_ok, d.requests_failed);
                        fflush(stdout);
                        snprintf(shown, sizeof(shown), "%s", now_shown);
                }
                if (streq(t->phase, "Completed") || streq(t->phase, "Paused") || streq(t->phase, "Failed"))
                        break;
                int status;
                if (demo_child_exited(&children, pid, &status) > 0) {
                        char why[64];
                        log_error("meshroll run %s before the rollout ended (phase %s).",
                                  demo_status_string(status, why, sizeof(why)),
                                  t->phase[0] ? t->phase : "unknown");
                        break;
                }
                if (mr_now_monotonic(NULL) >= deadline) {
                        t->timed_out = true;
                        log_error("The traffic phase did not finish in time (phase %s).",
                                  t->phase[0] ? t->phase : "unknown");
                        break;
                }
        }
        t->wall = mr_now_monotonic(NULL) - start;
        /* Let the connections still open on the old routing finish their requests before counting. */
        usleep(300 * 1000);
        traffic_delta(c, &base, &t->traffic);
        poll_state(c, t);
        demo_children_stop(&children, 5 * USEC_PER_SEC);
        t->completed = streq(t->phase, "Completed");
        t->rolled_back = streq(t->phase, "Paused") && streq(t->reason, "RolledBack");
        double total_rate = o->rate * o->connections;
        t->failed_budget =
            (uint64_t)ceil(o->fail_share * FIRST_STEP / 100.0 * total_rate * (3 * GATE_INTERVAL_S + 12));
        return r;
}

bool demo_traffic_ok(const DemoOptions *o, const DemoTrafficRun *t)
{
        if (o->fail_share > 0 && o->prometheus)
                return t->rolled_back && t->weight_v1 == 100 && t->weight_v2 == 0 &&
                       t->traffic.requests_failed <= t->failed_budget;
        return t->completed && t->weight_v2 == 100 && t->weight_v1 == 0 &&
               (o->fail_share > 0 || t->traffic.requests_failed == 0);
}

void demo_traffic_report(FILE *f, const DemoOptions *o, const DemoTrafficRun *t)
{
        const DemoTraffic *d = &t->traffic;
        fprintf(f, "\nOutcome: %s%s%s (%s)\n", t->phase[0] ? t->phase : "unknown", t->reason[0] ? ", " : "",
                t->reason, t->message);
        fprintf(f, "Weights at the end: v1 %u %%, v2 %u %%; %.1f s\n", t->weight_v1, t->weight_v2,
                (double)t->wall / USEC_PER_SEC);
        fprintf(f,
                "Requests: %" PRIu64 " sent, %" PRIu64 " ok, %" PRIu64 " failed (%" PRIu64
                " answered 503), %" PRIu64 " retried; connections: %" PRIu64 " opened, %" PRIu64
                " closed, %" PRIu64 " reset\n",
                d->requests_sent, d->requests_ok, d->requests_failed, d->requests_error, d->requests_retried,
                d->connections_opened, d->connections_closed, d->connections_reset);
        if (o->fail_share > 0 && o->prometheus)
                fprintf(f, "Failed-request budget of the gate: %" PRIu64 " (%s)\n", t->failed_budget,
                        d->requests_failed <= t->failed_budget ? "within" : "EXCEEDED");
        fprintf(f, "%s\n", demo_traffic_ok(o, t) ? "OK" : "NOT OK");
}

int demo_traffic_report_json(const char *path, const DemoOptions *o, const DemoTrafficRun *t)
{
        _cleanup_(json_object_putp) json_object *root = json_object_new_object();
        _cleanup_free_ char *tmp = NULL;
        const DemoTraffic *d = &t->traffic;

        if (!root)
                return -ENOMEM;
        json_object_object_add(root, "version", json_object_new_int(1));
        json_object_object_add(root, "mode", json_object_new_string("traffic"));
        json_object_object_add(root, "failShare", json_object_new_double(o->fail_share));
        json_object_object_add(root, "gated", json_object_new_boolean(o->prometheus != NULL));
        json_object_object_add(root, "phase", json_object_new_string(t->phase));
        json_object_object_add(root, "reason", json_object_new_string(t->reason));
        json_object_object_add(root, "message", json_object_new_string(t->message));
        json_object_object_add(root, "completed", json_object_new_boolean(t->completed));
        json_object_object_add(root, "rolledBack", json_object_new_boolean(t->rolled_back));
        json_object_object_add(root, "timedOut", json_object_new_boolean(t->timed_out));
        json_object_object_add(root, "weightV1", json_object_new_int64(t->weight_v1));
        json_object_object_add(root, "weightV2", json_object_new_int64(t->weight_v2));
        json_object_object_add(root, "seconds", json_object_new_double((double)t->wall / USEC_PER_SEC));
        json_object_object_add(root, "requestsSent", json_object_new_int64((int64_t)d->requests_sent));
        json_object_object_add(root, "requestsOk", json_object_new_int64((int64_t)d->requests_ok));
        json_object_object_add(root, "requestsFailed", json_object_new_int64((int64_t)d->requests_failed));
        json_object_object_add(root, "requests503", json_object_new_int64((int64_t)d->requests_error));
        json_object_object_add(root, "connectionsReset",
                               json_object_new_int64((int64_t)d->connections_reset));
        json_object_object_add(root, "failedBudget", json_object_new_int64((int64_t)t->failed_budget));
        json_object_object_add(root, "ok", json_object_new_boolean(demo_traffic_ok(o, t)));
        if (asprintf(&tmp, "%s.tmp", path) < 0)
                return -ENOMEM;
        FILE *f = fopen(tmp, "we");
        if (!f)
                return -errno;
        fprintf(
            f, "%s\n",
            json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        if (fclose(f) != 0 || rename(tmp, path) < 0) {
                int r = -errno;
                (void)unlink(tmp);
                return r;
        }
        return 0;
}
