/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent.c — see agent.h for the design (cadence, Lease state machine).
 *
 * Logging: this is the daemon layer, so failures are logged here, once,
 * where they are handled; a Lease write that keeps failing is logged when it
 * starts failing and when it recovers, not on every attempt.
 */
#include <math.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "meshroll/http-server.h"
#include "meshroll/json-util.h"
#include "meshroll/log.h"
#include "meshroll/metrics.h"
#include "agent.h"
#include "pods.h"
#include "report.h"
#include "track.h"

#define ANNOTATION_NODE_PHASE "meshroll.io/phase"
#define TRACKER_MAX_SOCKETS (4u << 20)

typedef enum LeaseStep {
        LEASE_IDLE,
        LEASE_GET,
        LEASE_WRITE,
} LeaseStep;

struct Agent {
        AgentOptions opts; /* its strings point at the copies below */
        char *node, *namespace, *proc_root;
        char *holder;
        char *lease_name;
        sd_event *event;
        KubeClient *client;

        KubeWatch *node_watch, *pod_watch;
        PodCache pods;
        char *phase; /* the Node's meshroll.io/phase, NULL when idle */

        SocketTracker *tracker;
        sd_event_source *scan_timer;
        usec_t last_scan;   /* monotonic, 0 before the first */
        usec_t first_scan;  /* monotonic time of the first scan: long-lived counts are known after that + threshold */
        bool ready_sent;

        json_object *lease;          /* the Lease as last read or written (resourceVersion), or NULL */
        json_object *pending;        /* report waiting to be published, or NULL */
        json_object *sending;        /* the report being written, or NULL */
        KubeCall *lease_call;
        LeaseStep step;
        unsigned conflicts;          /* conflicts in a row for the current report */
        usec_t last_report;          /* monotonic time of the last successful write */
        char *last_reported_phase;   /* the phase the last written report carried */
        bool report_failing;

        MrHttpServer *http;
        MrMetrics *metrics;
        MrMetric *m_conns, *m_long_lived, *m_oldest, *m_pod_conns, *m_scan_seconds, *m_scans, *m_scan_errors,
                *m_malformed, *m_namespaces, *m_fallbacks, *m_reports, *m_report_errors, *m_tracked, *m_active;
};

void agent_options_init(AgentOptions *o)
{
        *o = (AgentOptions){
                .namespace = "meshroll",
                .scan_interval = 10 * USEC_PER_SEC,
                .idle_interval = 5 * USEC_PER_MINUTE,
                .active_interval = 2 * USEC_PER_SEC,
        };
        scan_options_init(&o->scan);
}

static usec_t now_mono(Agent *a)
{
        uint64_t t;
        (void)sd_event_now(a->event, CLOCK_MONOTONIC, &t);
        return t;
}

/* ---- metrics -------------------------------------------------------------- */

static int metrics_setup(Agent *a)
{
        static const double scan_buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1 };
        const struct {
                MrMetric **m;
                MrMetricType type;
                const char *name, *help;
                const char *const *labels;
        } defs[] = {
                { &a->m_conns, MR_METRIC_GAUGE, "meshroll_agent_connections",
                  "Established TCP connections through ztunnel on this node, by kind.",
                  (const char *const[]){ "kind", NULL } },
                { &a->m_long_lived, MR_METRIC_GAUGE, "meshroll_agent_long_lived_connections",
                  "Application connections older than --long-lived-after.", NULL },
                { &a->m_oldest, MR_METRIC_GAUGE, "meshroll_agent_oldest_connection_seconds",
                  "Age of the oldest application connection.", NULL },
                { &a->m_pod_conns, MR_METRIC_GAUGE, "meshroll_agent_pod_connections",
                  "Established application connections through ztunnel, per pod.",
                  (const char *const[]){ "namespace", "pod", NULL } },
                { &a->m_scans, MR_METRIC_COUNTER, "meshroll_agent_scans_total", "Scans of /proc.", NULL },
                { &a->m_scan_errors, MR_METRIC_COUNTER, "meshroll_agent_scan_errors_total",
                  "Scans that failed, and files that could not be read.", NULL },
                { &a->m_malformed, MR_METRIC_COUNTER, "meshroll_agent_malformed_lines_total",
                  "Lines of /proc/<pid>/net/tcp{,6} that could not be parsed.", NULL },
                { &a->m_namespaces, MR_METRIC_COUNTER, "meshroll_agent_namespaces_scanned_total",
                  "Network namespaces read, by source: netlink (sock_diag) or proc (net/tcp{,6}).",
                  (const char *const[]){ "source", NULL } },
                { &a->m_fallbacks, MR_METRIC_COUNTER, "meshroll_agent_netlink_fallbacks_total",
                  "Namespaces --source=auto read from /proc because netlink could not be used there.", NULL },
                { &a->m_reports, MR_METRIC_COUNTER, "meshroll_agent_reports_total", "Lease writes that succeeded.",
                  NULL },
                { &a->m_report_errors, MR_METRIC_COUNTER, "meshroll_agent_report_errors_total",
                  "Lease writes that failed.", NULL },
                { &a->m_tracked, MR_METRIC_GAUGE, "meshroll_agent_tracked_sockets",
                  "Sockets whose first-seen time is being tracked.", NULL },
                { &a->m_active, MR_METRIC_GAUGE, "meshroll_agent_active",
                  "1 while the coordinator has marked this node (fast reporting).", NULL },
        };
        int r;

        r = mr_metrics_new(&a->metrics);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(defs); i++) {
                r = mr_metrics_register(a->metrics, defs[i].type, defs[i].name, defs[i].help, defs[i].labels, NULL, 0,
                                        defs[i].m);
                if (r < 0)
                        return r;
        }
        return mr_metrics_register(a->metrics, MR_METRIC_HISTOGRAM, "meshroll_agent_scan_duration_seconds",
                                   "Time one scan of /proc takes.", NULL, scan_buckets, ELEMENTSOF(scan_buckets),
                                   &a->m_scan_seconds);
}

static void metrics_update(Agent *a, const ScanResult *s)
{
        static const char *const kinds[] = { "outbound", "inbound", "hbone_inbound", "hbone_outbound" };
        const uint32_t values[] = { s->total.outbound, s->total.inbound, s->total.hbone_inbound,
                                    s->total.hbone_outbound };

        for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
                (void)mr_metric_set(a->m_conns, (const char *const[]){ kinds[i] }, values[i]);
        (void)mr_metric_set(a->m_long_lived, NULL, s->total.long_lived);
        (void)mr_metric_set(a->m_oldest, NULL, (double)s->total.oldest / USEC_PER_SEC);
        mr_metric_reset(a->m_pod_conns);
        for (size_t i = 0; i < s->n_pods; i++) {
                const PodInfo *p = pod_cache_find(&a->pods, s->pods[i].uid);
                uint32_t n = s->pods[i].counts.outbound + s->pods[i].counts.inbound;
                if (n == 0)
                        continue;
                (void)mr_metric_set(a->m_pod_conns,
                                    (const char *const[]){ p ? p->namespace : "", p ? p->name : s->pods[i].uid }, n);
        }
        (void)mr_metric_add(a->m_scans, NULL, 1);
        (void)mr_metric_add(a->m_scan_errors, NULL, s->stats.read_errors);
        (void)mr_metric_add(a->m_malformed, NULL, (double)s->stats.lines.malformed);
        (void)mr_metric_add(a->m_namespaces, (const char *const[]){ "netlink" }, s->stats.netlink);
        (void)mr_metric_add(a->m_namespaces, (const char *const[]){ "proc" }, s->stats.proc);
        (void)mr_metric_add(a->m_fallbacks, NULL, s->stats.fallbacks);
        (void)mr_metric_observe(a->m_scan_seconds, NULL, (double)s->stats.duration / USEC_PER_SEC);
        (void)mr_metric_set(a->m_tracked, NULL, (double)track_size(a->tracker));
}

static int on_metrics(const char *path, MrHttpReply *reply, void *userdata)
{
        Agent *a = userdata;
        reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
        return mr_metrics_render(a->metrics, &reply->body, &reply->size);
}

/* Healthy once a scan has run recently; API trouble does not make the agent unhealthy. */
static int on_healthz(const char *path, MrHttpReply *reply, void *userdata)
{
        Agent *a = userdata;
        usec_t limit = 3 * MAX(a->opts.scan_interval, a->opts.active_interval);
        bool ok = a->last_scan > 0 && now_mono(a) - a->last_scan <= limit;

        reply->status = ok ? 200 : 503;
        reply->body = strdup(ok ? "ok\n" : "no recent scan\n");
        if (!reply->body)
                return -ENOMEM;
        reply->size = strlen(reply->body);
        return 0;
}

/* ---- Lease writes ---------------------------------------------------------- */

static void lease_next(Agent *a);

static unsigned lease_duration(const Agent *a)
{
        usec_t interval = a->phase ? a->opts.active_interval : a->opts.idle_interval;
        return (unsigned)MAX((usec_t)5, (3 * interval + USEC_PER_SEC - 1) / USEC_PER_SEC);
}

static void report_failed(Agent *a, int error, const KubeStatus *st, const char *what)
{
        (void)mr_metric_add(a->m_report_errors, NULL, 1);
        if (!a->report_failing)
                log_warning_errno(error, "Failed to %s Lease %s/%s: %s (will retry with the next scan)", what,
                                  a->opts.namespace, a->lease_name, st && st->message[0] ? st->message : "%m");
        a->report_failing = true;
        a->step = LEASE_IDLE;
        /* The report is dropped: the next scan builds a fresher one. */
        json_object_put(a->pending);
        a->pending = NULL;
        json_object_put(a->sending);
        a->sending = NULL;
}

static void on_lease_written(KubeClient *c, int error, json_object *body, const KubeStatus *st, void *userdata)
{
        Agent *a = userdata;

        a->lease_call = NULL;
        if (error == -MR_ECONFLICT || error == -EEXIST) {
                /* Someone else wrote it (an operator, or our own earlier write we did not see): reread. */
                json_object_put(a->lease);
                a->lease = NULL;
                json_object_put(a->sending); /* dropped: the next scan builds a fresher one */
                a->sending = NULL;
                if (++a->conflicts <= 3) {
                        a->step = LEASE_IDLE;
                        lease_next(a);
                        return;
                }
        }
        if (error < 0 || !body) {
                report_failed(a, error < 0 ? error : -EBADMSG, st, "write");
                return;
        }
        json_object_put(a->lease);
        a->lease = json_object_get(body);
        a->conflicts = 0;
        a->last_report = now_mono(a);
        /* What the written report said, not the Node's mark now: it may have changed meanwhile. */
        const char *written = mr_json_get_str(a->sending, "phase", NULL);
        free(a->last_reported_phase);
        a->last_reported_phase = written ? strdup(written) : NULL;
        json_object_put(a->sending);
        a->sending = NULL;
        (void)mr_metric_add(a->m_reports, NULL, 1);
        if (a->report_failing)
                log_info("Lease %s/%s written again", a->opts.namespace, a->lease_name);
        a->report_failing = false;
        a->step = LEASE_IDLE;
        lease_next(a);
}

static void lease_write(Agent *a)
{
        _cleanup_(json_object_putp) json_object *report = TAKE_PTR(a->pending), *body = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = report_lease(a->lease, a->opts.namespace, a->lease_name, a->holder, lease_duration(a),
                         mr_now_realtime(NULL), report, &body);
        if (r >= 0)
                r = kube_path(&KUBE_LEASES, a->opts.namespace, a->lease ? a->lease_name : NULL, NULL, &path);
        if (r < 0) {
                report_failed(a, r, NULL, "build");
                return;
        }
        KubeRequest req = { .method = a->lease ? "PUT" : "POST", .path = path, .body = body };
        a->step = LEASE_WRITE;
        a->sending = TAKE_PTR(report);
        r = kube_request_async(a->client, &req, on_lease_written, a, &a->lease_call);
        if (r < 0)
                report_failed(a, r, NULL, "send");
}

static void on_lease_read(KubeClient *c, int error, json_object *body, const KubeStatus *st, void *userdata)
{
        Agent *a = userdata;

        a->lease_call = NULL;
        if (error < 0 && error != -ENOENT) {
                report_failed(a, error, st, "read");
                return;
        }
        json_object_put(a->lease);
        a->lease = error == -ENOENT ? NULL : json_object_get(body);
        lease_write(a);
}

/* Starts the next step if nothing is in flight and a report is waiting. */
static void lease_next(Agent *a)
{
        _cleanup_free_ char *path = NULL;
        int r;

        if (a->step != LEASE_IDLE || !a->pending)
                return;
        if (a->lease) {
                lease_write(a);
                return;
        }
        r = kube_path(&KUBE_LEASES, a->opts.namespace, a->lease_name, NULL, &path);
        if (r < 0) {
                report_failed(a, r, NULL, "read");
                return;
        }
        KubeRequest req = { .method = "GET", .path = path };
        a->step = LEASE_GET;
        r = kube_request_async(a->client, &req, on_lease_read, a, &a->lease_call);
        if (r < 0)
                report_failed(a, r, NULL, "read");
}

/* ---- scanning ---------------------------------------------------------------- */

static bool skip_host_network(const char *uid, void *userdata)
{
        const PodInfo *p = pod_cache_find(userdata, uid);
        return p && p->host_network;
}

static void schedule_scan(Agent *a, usec_t delay)
{
        (void)sd_event_source_set_time(a->scan_timer, now_mono(a) + delay);
        (void)sd_event_source_set_enabled(a->scan_timer, SD_EVENT_ONESHOT);
}

/*
 * Whether this scan should publish. Marked, every scan does (a fresher
 * report replaces a queued one). Unmarked, the newest report — queued,
 * else being written, else the last written — decides: one still on its
 * way that says "unmarked" is enough (however slow the write, scans made
 * meanwhile queue nothing more); one that still carries a mark must be
 * followed at once by one that clears it; otherwise once per idle interval.
 */
static bool report_due(Agent *a, usec_t now)
{
        if (a->phase)
                return true;
        json_object *underway = a->pending ?: a->sending;
        if (underway)
                return mr_json_get_str(underway, "phase", NULL) != NULL;
        if (a->last_report == 0 || a->last_reported_phase)
                return true;
        return now - a->last_report >= a->opts.idle_interval;
}

static int on_scan_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        Agent *a = userdata;
        _cleanup_(scan_result_freep) ScanResult *res = NULL;
        usec_t now = now_mono(a);
        ScanOptions so = a->opts.scan;
        int r;

        so.skip_pod = skip_host_network;
        so.skip_userdata = &a->pods;
        r = scan_run(&so, a->tracker, now, &res);
        schedule_scan(a, a->phase ? a->opts.active_interval : a->opts.scan_interval);
        if (r < 0) {
                (void)mr_metric_add(a->m_scan_errors, NULL, 1);
                log_error_errno(r, "Scan of %s failed: %m", so.proc_root);
                return 0;
        }
        if (a->first_scan == 0)
                a->first_scan = now;
        a->last_scan = now;
        metrics_update(a, res);

        (void)sd_notifyf(false, "STATUS=%u established, %u long-lived, %s", res->total.outbound + res->total.inbound,
                         res->total.long_lived, a->phase ? "active" : "idle");
        if (!a->ready_sent) {
                (void)sd_notify(false, "READY=1");
                a->ready_sent = true;
        }
        if (!report_due(a, now))
                return 0;

        ReportContext ctx = {
                .node = a->opts.node,
                .observed_at = mr_now_realtime(NULL),
                .phase = a->phase,
                /* Until the agent has watched for the threshold, "not long-lived" cannot be claimed. */
                .long_lived_known = now - a->first_scan >= a->opts.scan.long_lived_after,
                .long_lived_after = a->opts.scan.long_lived_after,
        };
        json_object *report = NULL;
        r = report_build(res, &a->pods, &ctx, &report);
        if (r < 0) {
                log_error_errno(r, "Failed to build the report: %m");
                return 0;
        }
        json_object_put(a->pending);
        a->pending = report;
        lease_next(a);
        return 0;
}

/* ---- watches ------------------------------------------------------------------- */

static int on_node_event(KubeWatch *w, KubeWatchEventType type, json_object *node, void *userdata)
{
        Agent *a = userdata;
        const char *phase = NULL;

        switch (type) {
        case KUBE_WATCH_ADDED:
        case KUBE_WATCH_MODIFIED:
                phase = mr_json_get_str(node, "metadata", "annotations", ANNOTATION_NODE_PHASE, NULL);
                break;
        case KUBE_WATCH_DELETED:
        case KUBE_WATCH_RESET:
                break;
        default:
                return 0;
        }
        if (type == KUBE_WATCH_RESET || streq_ptr(phase, a->phase))
                return 0;

        if (phase)
                log_info_fields(LOG_FIELDS("node", a->opts.node, "phase", phase),
                                "Node %s marked \"%s\": reporting every %llums", a->opts.node, phase,
                                (unsigned long long)(a->opts.active_interval / USEC_PER_MSEC));
        else
                log_info_fields(LOG_FIELDS("node", a->opts.node), "Node %s unmarked: back to idle reporting",
                                a->opts.node);
        free(a->phase);
        a->phase = phase ? strdup(phase) : NULL;
        if (phase && !a->phase)
                return log_oom();
        (void)mr_metric_set(a->m_active, NULL, a->phase ? 1 : 0);
        schedule_scan(a, 0);
        return 0;
}

static int on_pod_event(KubeWatch *w, KubeWatchEventType type, json_object *pod, void *userdata)
{
        Agent *a = userdata;

        switch (type) {
        case KUBE_WATCH_RESET:
                pod_cache_clear(&a->pods);
                break;
        case KUBE_WATCH_ADDED:
        case KUBE_WATCH_MODIFIED:
                if (pod_cache_upsert(&a->pods, pod) == -ENOMEM)
                        return log_oom();
                break;
        case KUBE_WATCH_DELETED:
                pod_cache_remove(&a->pods, pod);
                break;
        case KUBE_WATCH_SYNCED:
                a->pods.synced = true;
                break;
        default:
                break;
        }
        return 0;
}

static void on_watch_stop(KubeWatch *w, int error, void *userdata)
{
        if (error < 0)
                log_error_errno(error, "A watch stopped: %m");
}

/* ---- lifecycle ------------------------------------------------------------------ */

int agent_new(sd_event *e, KubeClient *client, const AgentOptions *o, Agent **ret, MrError *err)
{
        _cleanup_(agent_freep) Agent *a = NULL;
        _cleanup_free_ char *node_selector = NULL;
        int r;

        if (isempty(o->node))
                return mr_error_set(err, MR_ECONFIG, "--node is required (or set $NODE_NAME)");
        a = calloc(1, sizeof(*a));
        if (!a)
                return mr_error_set(err, -ENOMEM, "out of memory");
        a->opts = *o;
        /* The caller's strings may not outlive this call: keep copies. */
        a->node = strdup(o->node);
        a->namespace = strdup(o->namespace ? o->namespace : "meshroll");
        a->proc_root = strdup(o->scan.proc_root ? o->scan.proc_root : "/proc");
        if (!a->node || !a->namespace || !a->proc_root)
                return mr_error_set(err, -ENOMEM, "out of memory");
        a->opts.node = a->node;
        a->opts.namespace = a->namespace;
        a->opts.scan.proc_root = a->proc_root;
        a->opts.holder = NULL; /* a->holder below */
        a->opts.listen = NULL; /* used only here */
        a->event = sd_event_ref(e);
        a->client = client;
        pod_cache_init(&a->pods);
        if (asprintf(&a->lease_name, "meshroll-agent-%s", o->node) < 0 ||
            (o->holder ? !(a->holder = strdup(o->holder)) : asprintf(&a->holder, "meshroll-agent/%s", o->node) < 0) ||
            asprintf(&node_selector, "spec.nodeName=%s", o->node) < 0)
                return mr_error_set(err, -ENOMEM, "out of memory");

        r = track_new(TRACKER_MAX_SOCKETS, &a->tracker);
        if (r >= 0)
                r = metrics_setup(a);
        if (r < 0)
                return mr_error_set(err, r, "cannot set up metrics: %s", mr_strerror(r));

        if (!isempty(o->listen)) {
                r = mr_http_server_new(e, o->listen, &a->http, err);
                if (r < 0)
                        return r;
                if (mr_http_server_route(a->http, "/metrics", on_metrics, a) < 0 ||
                    mr_http_server_route(a->http, "/healthz", on_healthz, a) < 0)
                        return mr_error_set(err, -ENOMEM, "out of memory");
        }

        KubeWatchOptions nw = { .resource = &KUBE_NODES, .name = o->node };
        r = kube_watch_start(client, &nw, on_node_event, on_watch_stop, a, &a->node_watch);
        if (r < 0)
                return mr_error_set(err, r, "cannot watch node %s: %s", o->node, mr_strerror(r));
        KubeWatchOptions pw = { .resource = &KUBE_PODS, .field_selector = node_selector };
        r = kube_watch_start(client, &pw, on_pod_event, on_watch_stop, a, &a->pod_watch);
        if (r < 0)
                return mr_error_set(err, r, "cannot watch pods on %s: %s", o->node, mr_strerror(r));

        r = sd_event_add_time(e, &a->scan_timer, CLOCK_MONOTONIC, 0, 0, on_scan_timer, a);
        if (r < 0)
                return mr_error_set(err, r, "cannot add the scan timer: %s", mr_strerror(r));
        schedule_scan(a, 0);
        *ret = TAKE_PTR(a);
        return 0;
}

uint16_t agent_metrics_port(const Agent *a)
{
        return a->http ? mr_http_server_port(a->http) : 0;
}

Agent *agent_free(Agent *a)
{
        if (!a)
                return NULL;
        kube_call_cancel(a->lease_call);
        kube_watch_stop(a->node_watch);
        kube_watch_stop(a->pod_watch);
        sd_event_source_disable_unref(a->scan_timer);
        mr_http_server_free(a->http);
        mr_metrics_free(a->metrics);
        track_free(a->tracker);
        pod_cache_clear(&a->pods);
        json_object_put(a->lease);
        json_object_put(a->pending);
        json_object_put(a->sending);
        free(a->phase);
        free(a->last_reported_phase);
        free(a->holder);
        free(a->lease_name);
        free(a->node);
        free(a->namespace);
        free(a->proc_root);
        sd_event_unref(a->event);
        free(a);
        return NULL;
}
