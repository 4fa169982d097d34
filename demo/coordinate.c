/* SPDX-License-Identifier: Apache-2.0 */
/*
 * coordinate.c — `meshroll run` as a child, watched from outside
 * (coordinate.h).
 *
 * The demo runs the real coordinator binary, not the engine in-process, so
 * what it shows is what an operator runs. It learns what happens the way
 * an operator would: from the coordinator's own progress lines (relayed
 * through a pipe, stdout and stderr together) and from the Rollout's
 * status, read through the API every 200 ms. Each group's step times are
 * when the demo first saw each state; a state shorter than a poll is
 * credited to the next one, so the times are accurate to about 200 ms.
 *
 * The loop is one poll() over the signalfd and the pipe with a 200 ms
 * timeout: no threads, and Ctrl-C is seen at once.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/wait.h>

#include "coordinate.h"
#include "meshroll/json-util.h"
#include "meshroll/log.h"
#include "signals.h"

#define STATUS_INTERVAL (200 * USEC_PER_MSEC)
#define TRAFFIC_INTERVAL (5 * USEC_PER_SEC)
#define PREFIX "  meshroll │ "

/* Connections through each node's ztunnel when the coordinator started: for groups first seen past Pending.
 */
typedef struct Snapshot {
        char **nodes;
        int *connections;
} Snapshot;

typedef struct Relay {
        int fd;
        char buf[4096];
        size_t used;
} Relay;

static int write_rollout(const DemoCoordinateOptions *o, char **ret_path)
{
        _cleanup_free_ char *path = NULL;
        char readiness[32];
        if (asprintf(&path, "%s/rollout.yaml", o->dir) < 0)
                return log_oom();
        FILE *f = fopen(path, "wxe");
        if (!f)
                return log_error_errno(-errno, "Cannot write %s: %m", path);
        snprintf(readiness, sizeof(readiness), "%llus",
                 (unsigned long long)((o->readiness_timeout + USEC_PER_SEC - 1) / USEC_PER_SEC));
        fprintf(f,
                "apiVersion: meshroll.io/v1alpha1\n"
                "kind: Rollout\n"
                "metadata: {name: %s}\n"
                "spec:\n"
                "  target: {namespace: istio-system, daemonSet: ztunnel}\n"
                "  groups: {canary: 1, byLabel: topology.kubernetes.io/zone}\n"
                "  drain: {timeout: 5m, concurrency: 10}\n"
                "  connectionGate: {threshold: 0, timeout: 60s, onTimeout: pause, agentNamespace: %s}\n"
                "  readiness: {timeout: %s, minReadySeconds: 1}\n"
                "  soak: 1s\n",
                DEMO_ROLLOUT_NAME, DEMO_AGENT_NAMESPACE, readiness);
        if (fclose(f) != 0)
                return log_error_errno(-EIO, "Cannot write %s.", path);
        *ret_path = TAKE_PTR(path);
        return 0;
}

/* Prints every complete line read so far; at EOF (flush) the rest too. */
static void relay_lines(Relay *r, bool flush)
{
        char *start = r->buf, *nl;
        while ((nl = memchr(start, '\n', r->used - (size_t)(start - r->buf)))) {
                printf(PREFIX "%.*s\n", (int)(nl - start), start);
                start = nl + 1;
        }
        r->used -= (size_t)(start - r->buf);
        memmove(r->buf, start, r->used);
        if (r->used > 0 && (flush || r->used == sizeof(r->buf))) {
                printf(PREFIX "%.*s\n", (int)r->used, r->buf);
                r->used = 0;
        }
        fflush(stdout);
}

/* Reads what the pipe holds; false at EOF or error (the fd is then closed). */
static bool relay_read(Relay *r)
{
        for (;;) {
                ssize_t n = read(r->fd, r->buf + r->used, sizeof(r->buf) - r->used);
                if (n > 0) {
                        r->used += (size_t)n;
                        relay_lines(r, false);
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return true;
                relay_lines(r, true);
                (void)close(r->fd);
                r->fd = -1;
                return false;
        }
}

static int state_index(const char *s)
{
        static const char *const names[_DEMO_STATE_MAX] = {
            [DEMO_CORDONING] = "Cordoning", [DEMO_DRAINING] = "Draining",
            [DEMO_GATING] = "Gating",       [DEMO_REPLACING] = "Replacing",
            [DEMO_VERIFYING] = "Verifying", [DEMO_UNCORDONING] = "Uncordoning",
            [DEMO_SOAKING] = "Soaking",     [DEMO_DONE] = "Done",
        };
        for (int i = 0; i < _DEMO_STATE_MAX; i++)
                if (streq_ptr(s, names[i]))
                        return i;
        return -1;
}

/* Connections proxied by the group's nodes: now, or as of the snapshot. */
static int group_connections(DemoCluster *c, const Snapshot *snap, const DemoGroup *g)
{
        int sum = 0;
        for (char **n = g->nodes; n && *n; n++) {
                int k = -1;
                if (snap) {
                        for (size_t i = 0; snap->nodes && snap->nodes[i]; i++)
                                if (streq(snap->nodes[i], *n))
                                        k = snap->connections[i];
                } else
                        k = demo_cluster_node_connections(c, *n);
                if (k > 0)
                        sum += k;
        }
        return sum;
}

/* Sizes run->groups to the status's groups (they are fixed once planned) and copies names and nodes. */
static int adopt_groups(DemoRun *run, json_object *groups)
{
        size_t n = json_object_array_length(groups);
        if (n == 0 || run->n_groups == n)
                return 0;
        demo_run_done(&(DemoRun){.groups = run->groups, .n_groups = run->n_groups});
        run->groups = calloc(n, sizeof(DemoGroup));
        run->n_groups = 0;
        if (!run->groups)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *g = json_object_array_get_idx(groups, i);
                json_object *nodes = mr_json_get(g, "nodes", NULL);
                DemoGroup *d = &run->groups[i];
                size_t k = nodes ? json_object_array_length(nodes) : 0;
                *d = (DemoGroup){.connections_at_gate = -1, .connections_moved = -1, .n_nodes = (unsigned)k};
                snprintf(d->name, sizeof(d->name), "%s", strna(mr_json_get_str(g, "name", NULL)));
                d->nodes = calloc(k + 1, sizeof(char *));
                if (!d->nodes)
                        return -ENOMEM;
                run->n_groups = i + 1;
                for (size_t j = 0; j < k; j++)
                        if (!(d->nodes[j] = strdup(
                                  strempty(json_object_get_string(json_object_array_get_idx(nodes, j))))))
                                return -ENOMEM;
        }
        return 0;
}

/* One look at the Rollout: phase and reason, and each group's state. A missing Rollout is not an error. */
static int poll_status(const DemoCoordinateOptions *o, const Snapshot *snap, DemoRun *run)
{
        _cleanup_(json_object_putp) json_object *rollout = NULL;
        usec_t now = mr_now_monotonic(NULL);
        int r = kube_get(demo_cluster_client(o->cluster),
                         "/apis/meshroll.io/v1alpha1/rollouts/" DEMO_ROLLOUT_NAME, &rollout, NULL);
        if (r < 0)
                return r == -ENOENT ? 0 : r;
        json_object *status = mr_json_get(rollout, "status", NULL);
        snprintf(run->phase, sizeof(run->phase), "%s", strempty(mr_json_get_str(status, "phase", NULL)));
        snprintf(run->reason, sizeof(run->reason), "%s", strempty(mr_json_get_str(status, "reason", NULL)));
        snprintf(run->message, sizeof(run->message), "%s",
                 strempty(mr_json_get_str(status, "message", NULL)));
        json_object *groups = mr_json_get(status, "groups", NULL);
        if (!groups)
                return 0;
        if ((r = adopt_groups(run, groups)) < 0)
                return log_oom();
        for (size_t i = 0; i < run->n_groups && i < json_object_array_length(groups); i++) {
                json_object *g = json_object_array_get_idx(groups, i);
                DemoGroup *d = &run->groups[i];
                const char *state = strempty(mr_json_get_str(g, "state", NULL));
                int64_t conns;
                snprintf(d->state, sizeof(d->state), "%s", state);
                snprintf(d->message, sizeof(d->message), "%s",
                         strempty(mr_json_get_str(g, "message", NULL)));
                if (streq(state, "Pending"))
                        d->connections_moved = group_connections(o->cluster, NULL, d);
                else if (d->connections_moved < 0)
                        d->connections_moved = group_connections(o->cluster, snap, d);
                for (int s = 0; s <= state_index(state); s++)
                        if (d->at[s] == 0)
                                d->at[s] = now;
                if (mr_json_get_int(&conns, g, "connections", NULL) == 0)
                        d->connections_at_gate = conns;
        }
        return 0;
}

static void print_traffic(DemoCluster *c, const DemoTraffic *base)
{
        DemoTraffic t;
        demo_cluster_traffic(c, &t);
        printf("  traffic  │ %u connections open, %llu requests answered, %llu failed, %llu connections "
               "reset\n",
               t.connections_active, (unsigned long long)(t.requests_ok - base->requests_ok),
               (unsigned long long)(t.requests_failed - base->requests_failed),
               (unsigned long long)(t.connections_reset - base->connections_reset));
        fflush(stdout);
}

int demo_coordinate(const DemoCoordinateOptions *o, DemoRun *run)
{
        _cleanup_free_ char *file = NULL;
        _cleanup_close_ int wfd = -EBADF;
        _cleanup_strv_free_ char **nodes = NULL, **addresses = NULL;
        _cleanup_free_ int *counts = NULL;
        Snapshot snap = {};
        Relay relay = {.fd = -1};
        int fds[2], r;
        pid_t pid;
        bool stopping = false;
        DemoTraffic base;

        if ((r = write_rollout(o, &file)) < 0 ||
            (r = demo_cluster_nodes(o->cluster, &nodes, &addresses)) < 0)
                return r;
        size_t n_nodes = 0;
        while (nodes[n_nodes])
                n_nodes++;
        if (!(counts = calloc(n_nodes + 1, sizeof(int))))
                return log_oom();
        for (size_t i = 0; i < n_nodes; i++)
                counts[i] = demo_cluster_node_connections(o->cluster, nodes[i]);
        snap = (Snapshot){.nodes = nodes, .connections = counts};
        if (pipe2(fds, O_CLOEXEC) < 0)
                return log_error_errno(-errno, "Cannot create a pipe: %m");
        relay.fd = fds[0];
        wfd = fds[1];
        (void)fcntl(relay.fd, F_SETFL, O_NONBLOCK);

        char *argv[] = {(char *)o->meshroll,
                        "run",
                        "-f",
                        file,
                        "--server",
                        (char *)demo_cluster_url(o->cluster),
                        "--tick",
                        "200ms",
                        "--lease-namespace",
                        DEMO_AGENT_NAMESPACE,
                        "--log-level",
                        o->verbose ? "info" : "warning",
                        NULL};
        r = demo_spawn(o->children, "meshroll run", argv, wfd, wfd, &pid);
        (void)close(TAKE_FD(wfd));
        if (r < 0) {
                (void)close(relay.fd);
                return log_error_errno(r, "Cannot start %s: %m", o->meshroll);
        }
        printf("%s run -f %s --server %s --tick 200ms\n", o->meshroll, file, demo_cluster_url(o->cluster));
        fflush(stdout);

        demo_cluster_traffic(o->cluster, &base);
        usec_t next_status = 0, next_traffic = mr_now_monotonic(NULL) + TRAFFIC_INTERVAL;
        r = 0;
        for (;;) {
                struct pollfd p[2] = {{.fd = demo_signals_fd(), .events = POLLIN},
                                      {.fd = relay.fd, .events = POLLIN}};
                usec_t now = mr_now_monotonic(NULL);
                usec_t wake = MIN(next_status, next_traffic);
                int timeout = wake > now ? (int)((wake - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC) : 0;
                (void)poll(p, relay.fd >= 0 ? 2 : 1, relay.fd >= 0 ? timeout : MIN(timeout, 50));
                if (demo_interrupted()) {
                        r = -ECANCELED;
                        break;
                }
                if (relay.fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
                        (void)relay_read(&relay);
                now = mr_now_monotonic(NULL);
                if (now >= next_status) {
                        next_status = now + STATUS_INTERVAL;
                        if (poll_status(o, &snap, run) == -ENOMEM) {
                                r = -ENOMEM;
                                break;
                        }
                        bool over = streq(run->phase, "Completed") || streq(run->phase, "Paused") ||
                                    streq(run->phase, "Failed");
                        if (over && run->ended == 0)
                                run->ended = now;
                        if (!stopping && (streq(run->phase, "Paused") || streq(run->phase, "Failed"))) {
                                /* meshroll run keeps waiting for an operator to resume: the demo is that
                                 * operator, and stops. */
                                stopping = true;
                                (void)kill(-pid, SIGTERM);
                        }
                }
                if (now >= next_traffic) {
                        next_traffic = now + TRAFFIC_INTERVAL;
                        print_traffic(o->cluster, &base);
                }
                int status;
                if (demo_child_exited(o->children, pid, &status) > 0 && relay.fd < 0) {
                        char why[64];
                        (void)poll_status(o, &snap, run);
                        if (!streq(run->phase, "Completed") && !stopping)
                                log_warning("meshroll run %s (rollout phase %s).",
                                            demo_status_string(status, why, sizeof(why)), strna(run->phase));
                        break;
                }
                if (now >= o->deadline) {
                        run->timed_out = true;
                        log_error("The rollout did not finish in time (phase %s).",
                                  run->phase[0] ? run->phase : "unknown");
                        break;
                }
        }
        if (relay.fd >= 0) {
                (void)relay_read(&relay);
                if (relay.fd >= 0)
                        (void)close(relay.fd);
        }
        demo_child_stop(o->children, pid, 5 * USEC_PER_SEC);
        run->completed = streq(run->phase, "Completed");
        run->rolled_back = streq(run->phase, "Paused") && streq(run->reason, "RolledBack");
        return r;
}
