/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runs.c — the demo's two runs end to end (runs.h).
 *
 * Both runs start a fresh simulator from the same scenario and the same
 * load, then upgrade ztunnel the way a user does — a new image in the
 * DaemonSet's template — and measure the traffic from that moment until
 * the upgrade is over plus one request interval and a half (a reset costs
 * its request only when the application next uses the connection, so the
 * last resets need that long to show up as failed requests).
 *
 *   meshroll:  updateStrategy OnDelete, so nothing moves until meshroll
 *              replaces a node's pod; one meshroll-agent per node counts the
 *              node's real connections from /proc (--local-addr: the node's
 *              loopback address; --host-pid: this process, where the node
 *              proxies live); `meshroll run` drains, gates, replaces.
 *   in-place:  updateStrategy RollingUpdate (maxSurge 1, maxUnavailable 0,
 *              as Istio's chart): the DaemonSet controller replaces every
 *              node's ztunnel under live connections.
 *
 * The two runs use different 127.<net> networks so that sockets of the
 * first run lingering in TIME_WAIT never meet the second (the data plane
 * reserves a free net, searching from above the one this process took
 * last).
 */
#include <stdio.h>

#include "cluster.h"
#include "coordinate.h"
#include "meshroll/json-util.h"
#include "meshroll/log.h"
#include "procs.h"
#include "runs.h"
#include "signals.h"

#define SETTLE_EXTRA (500 * USEC_PER_MSEC)

static DemoClusterOptions cluster_options(const DemoOptions *o, const char *scenario_yaml, bool second,
                                          usec_t deadline)
{
        return (DemoClusterOptions){
            .scenario_path = o->scenario,
            .scenario_data = o->scenario ? NULL : scenario_yaml,
            .speed = o->speed,
            .client_namespace = o->client_namespace,
            .client_selector = o->client_selector,
            .service = o->service,
            .connections = o->connections,
            .rate = o->rate,
            .deadline = deadline,
        };
}

static void traffic_delta(const DemoTraffic *a, const DemoTraffic *b, DemoTraffic *ret)
{
        *ret = (DemoTraffic){
            .requests_sent = b->requests_sent - a->requests_sent,
            .requests_ok = b->requests_ok - a->requests_ok,
            .requests_failed = b->requests_failed - a->requests_failed,
            .requests_retried = b->requests_retried - a->requests_retried,
            .connections_opened = b->connections_opened - a->connections_opened,
            .connections_closed = b->connections_closed - a->connections_closed,
            .connections_reset = b->connections_reset - a->connections_reset,
            .connections_active = b->connections_active,
        };
}

/*
 * The image to upgrade to: --new-image, else (a user's scenario already
 * mid-upgrade) none: *ret NULL and the template stays. -MR_ECONFIG when a
 * user's scenario needs --new-image.
 */
static int target_image(const DemoOptions *o, DemoCluster *c, char **ret_current, bool *ret_pending)
{
        int r = demo_cluster_ztunnel(c, ret_current, ret_pending);
        if (r < 0)
                return r;
        if (!*ret_pending && !o->new_image)
                return log_error_errno(
                    -MR_ECONFIG,
                    "The scenario's ztunnel runs %s everywhere; say what to upgrade to with "
                    "--new-image IMAGE.",
                    *ret_current);
        return 0;
}

static void print_cluster(DemoCluster *c, char **nodes)
{
        size_t n = 0;
        while (nodes[n])
                n++;
        printf("Simulated cluster: %zu nodes at %s. Look for yourself while it runs:\n"
               "    kubectl --server %s --cache-dir \"$(mktemp -d)\" get pods -A -o wide\n"
               "    kubectl --server %s --cache-dir \"$(mktemp -d)\" get rollouts,nodes\n",
               n, demo_cluster_url(c), demo_cluster_url(c), demo_cluster_url(c));
        fflush(stdout);
}

static int spawn_agents(const DemoOptions *o, const DemoPaths *paths, DemoCluster *c, char **nodes,
                        char **addrs, DemoChildren *children)
{
        char host_pid[16];
        snprintf(host_pid, sizeof(host_pid), "%d", (int)getpid());
        for (size_t i = 0; nodes[i]; i++) {
                char *argv[] = {(char *)paths->agent,
                                "--server",
                                (char *)demo_cluster_url(c),
                                "--node",
                                nodes[i],
                                "--namespace",
                                DEMO_AGENT_NAMESPACE,
                                "--proc",
                                "/proc",
                                "--host-pid",
                                host_pid,
                                "--local-addr",
                                addrs[i],
                                "--listen",
                                "",
                                "--scan-interval",
                                "500ms",
                                "--active-interval",
                                "500ms",
                                "--idle-interval",
                                "30s",
                                "--long-lived-after",
                                "3s",
                                "--log-level",
                                o->verbose ? "info" : "warning",
                                NULL};
                int r = demo_spawn(children, nodes[i], argv, -1, 2, NULL);
                if (r < 0)
                        return log_error_errno(r, "Cannot start %s for node %s: %m", paths->agent, nodes[i]);
        }
        printf("Started %zu meshroll-agent processes, one per node (--local-addr: the node's address).\n",
               children->n);
        fflush(stdout);
        return 0;
}

/* Waits a request interval and a half so that resets show up as failed requests, then reads the counters. */
static int settle(const DemoOptions *o, DemoCluster *c, const DemoTraffic *base, DemoRun *run)
{
        DemoTraffic now;
        usec_t d = (usec_t)((double)USEC_PER_SEC / o->rate * 1.5) + SETTLE_EXTRA;
        if (demo_wait(d) < 0)
                return -ECANCELED;
        demo_cluster_traffic(c, &now);
        traffic_delta(base, &now, &run->traffic);
        return 0;
}

int demo_run_meshroll(const DemoOptions *o, const char *scenario_yaml, const DemoPaths *paths,
                      usec_t deadline, DemoRun *run)
{
        _cleanup_(demo_cluster_stopp) DemoCluster *c = NULL;
        _cleanup_strv_free_ char **nodes = NULL, **addrs = NULL;
        _cleanup_free_ char *current = NULL;
        DemoChildren children = {};
        DemoClusterOptions co = cluster_options(o, scenario_yaml, false, deadline);
        DemoTraffic base;
        bool pending;
        int r;

        printf("== 1/2  the upgrade with meshroll (ztunnel updateStrategy OnDelete)\n");
        fflush(stdout);
        *run = (DemoRun){.ran = true};
        if ((r = demo_cluster_start(&co, &c)) < 0)
                return r;
        if ((r = target_image(o, c, &current, &pending)) < 0 ||
            (r = demo_cluster_nodes(c, &nodes, &addrs)) < 0 ||
            (r = demo_cluster_ensure_namespace(c, DEMO_AGENT_NAMESPACE)) < 0 ||
            (r = demo_cluster_install_crd(c, paths->manifests)) < 0)
                return r;
        print_cluster(c, nodes);
        printf("Traffic: %u long-lived connections from %s/%s to %s, %g requests/s each.\n", o->connections,
               o->client_namespace, o->client_selector, o->service, o->rate);

        r = spawn_agents(o, paths, c, nodes, addrs, &children);
        if (r >= 0)
                r = demo_cluster_wait_agents(c, DEMO_AGENT_NAMESPACE, nodes,
                                             MIN(deadline, mr_now_monotonic(NULL) + 30 * USEC_PER_SEC));
        const char *image = pending ? current : o->new_image;
        if (r >= 0 && o->never_ready) {
                printf("Fault: image %s will never become Ready (kube-system/kubesim-faults).\n", image);
                r = demo_cluster_set_never_ready(c, image);
        }
        if (r >= 0) {
                demo_cluster_traffic(c, &base);
                usec_t t0 = mr_now_monotonic(NULL);
                if (!pending) {
                        printf("Upgrade: the ztunnel DaemonSet's image %s → %s (OnDelete: no pod changes "
                               "yet).\n",
                               current, image);
                        fflush(stdout);
                        r = demo_cluster_upgrade(c, image, false, deadline);
                }
                if (r >= 0) {
                        DemoCoordinateOptions ko = {.meshroll = paths->meshroll,
                                                    .dir = paths->dir,
                                                    .cluster = c,
                                                    .children = &children,
                                                    .readiness_timeout = o->speed >= 2 ? 10 * USEC_PER_SEC
                                                                                       : 30 * USEC_PER_SEC,
                                                    .verbose = o->verbose,
                                                    .deadline = deadline};
                        r = demo_coordinate(&ko, run);
                }
                /* Until the outcome showed in the Rollout, not until the coordinator exited. */
                run->wall = (run->ended ? run->ended : mr_now_monotonic(NULL)) - t0;
                if (r >= 0)
                        r = settle(o, c, &base, run);
        }
        demo_children_stop(&children, 3 * USEC_PER_SEC);
        return r;
}

static unsigned updated_nodes(DemoCluster *c)
{
        _cleanup_(json_object_putp) json_object *ds = NULL;
        int64_t v;
        if (kube_get(demo_cluster_client(c), "/apis/apps/v1/namespaces/istio-system/daemonsets/ztunnel", &ds,
                     NULL) < 0 ||
            mr_json_get_int(&v, ds, "status", "updatedNumberScheduled", NULL) < 0)
                return 0;
        return (unsigned)MAX(v, (int64_t)0);
}

int demo_run_inplace(const DemoOptions *o, const char *scenario_yaml, usec_t deadline, DemoRun *run)
{
        _cleanup_(demo_cluster_stopp) DemoCluster *c = NULL;
        _cleanup_free_ char *current = NULL;
        DemoClusterOptions co = cluster_options(o, scenario_yaml, true, deadline);
        DemoTraffic base, t;
        bool pending, done = false;
        unsigned last = UINT32_MAX;
        int r;

        printf("\n== 2/2  the same upgrade in place (ztunnel updateStrategy RollingUpdate, no drain)\n");
        fflush(stdout);
        *run = (DemoRun){.ran = true};
        if ((r = demo_cluster_start(&co, &c)) < 0 || (r = target_image(o, c, &current, &pending)) < 0)
                return r;
        const char *image = pending ? current : o->new_image;
        printf("Fresh cluster at %s, same traffic. Upgrade: image %s → %s.\n", demo_cluster_url(c), current,
               image);
        fflush(stdout);
        demo_cluster_traffic(c, &base);
        usec_t t0 = mr_now_monotonic(NULL);
        if ((r = demo_cluster_upgrade(c, image, true, deadline)) < 0)
                return r;
        while (!done) {
                if ((r = demo_cluster_rolled_out(c, &done)) < 0)
                        return r;
                unsigned n = updated_nodes(c);
                if (n != last) {
                        last = n;
                        demo_cluster_traffic(c, &t);
                        printf("  in-place │ %u nodes run the new ztunnel; %llu connections reset so far\n",
                               n, (unsigned long long)(t.connections_reset - base.connections_reset));
                        fflush(stdout);
                }
                if (done)
                        break;
                if (mr_now_monotonic(NULL) >= deadline) {
                        run->timed_out = true;
                        return log_error_errno(-ETIMEDOUT, "The in-place rollout did not finish in time.");
                }
                if (demo_wait(200 * USEC_PER_MSEC) < 0)
                        return -ECANCELED;
        }
        run->wall = mr_now_monotonic(NULL) - t0;
        run->completed = true;
        snprintf(run->phase, sizeof(run->phase), "Completed");
        return settle(o, c, &base, run);
}

void demo_run_done(DemoRun *r)
{
        for (size_t i = 0; i < r->n_groups; i++)
                strv_free(r->groups[i].nodes);
        free(r->groups);
        r->groups = NULL;
        r->n_groups = 0;
}
