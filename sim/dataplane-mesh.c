/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dataplane-mesh.c — routing by VirtualService weights and Istio-style
 * request metrics for the simulator's data plane (dataplane-mesh.h,
 * docs/dataplane.md).
 *
 * Routing. When the data plane takes its snapshot it reads, per Service,
 * the route a VirtualService gives its host and the labels of the subsets
 * the route names. The outbound proxy then picks a subset for each new
 * connection by smooth weighted round-robin (nginx's algorithm: add each
 * weight to its subset's credit, take the largest, subtract the total from
 * it), so shares are exact over any window of 100 connections and tests
 * need no randomness; then an endpoint of that subset round-robin. Weights
 * apply per connection, as for an Istio TCP route; the load generator
 * recycles its connections every N requests (as an HTTP client with a cap
 * on requests per connection), which is what makes shifted weights show in
 * the traffic.
 *
 * Metrics. Each node proxy keeps an MrMetrics registry (lib/metrics.c) with
 * istio_requests_total and istio_request_duration_milliseconds, labelled as
 * Istio labels them (a subset of its labels: reporter, source and
 * destination workload and namespace, destination service and version,
 * response code), with Istio's default duration buckets. Its /metrics is a
 * one-request-per-connection HTTP responder on the node's address (15020,
 * ztunnel's and the sidecar's merged-metrics port), on the data-plane thread.
 * References: Istio's standard metrics
 * (https://istio.io/latest/docs/reference/config/metrics/).
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "controllers-internal.h"
#include "dataplane-mesh.h"
#include "meshroll/json-util.h"

#define METRICS_REQUEST_MAX 4096
#define METRICS_ACCEPT_BATCH 16
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* --- routing ---------------------------------------------------------------------------------- */

/* "reviews", "reviews.shop", "reviews.shop.svc", "reviews.shop.svc.cluster.local" name Service shop/reviews.
 */
static bool host_is_service(const char *host, const char *ns, const char *name)
{
        const char *rest = host ? startswith(host, name) : NULL;
        if (!rest)
                return false;
        if (!*rest)
                return true;
        if (*rest != '.' || !(rest = startswith(rest + 1, ns)))
                return false;
        return !*rest || streq(rest, ".svc") || streq(rest, ".svc.cluster.local");
}

void dp_routing_clear(DpRouting *r)
{
        for (size_t i = 0; i < r->n; i++)
                json_object_put(r->subsets[i].labels);
        *r = (DpRouting){};
}

typedef struct RouteRead {
        const char *ns, *name;
        json_object *route; /* owned copy of the chosen rule's route list */
        bool has_match;     /* the chosen rule has match conditions */
        DpRouting *out;
        int error;
} RouteRead;

static bool route_names(json_object *route, const char *ns, const char *name)
{
        for (size_t j = 0;
             json_object_is_type(route, json_type_array) && j < json_object_array_length(route); j++)
                if (host_is_service(
                        mr_json_get_str(json_object_array_get_idx(route, j), "destination", "host", NULL),
                        ns, name))
                        return true;
        return false;
}

static int read_vs(json_object *vs, void *userdata)
{
        static const char *const kinds[] = {"http", "tcp"};
        RouteRead *rr = userdata;
        for (size_t k = 0; k < ELEMENTSOF(kinds); k++) {
                json_object *rules = mr_json_get(vs, "spec", kinds[k], NULL);
                for (size_t i = 0;
                     json_object_is_type(rules, json_type_array) && i < json_object_array_length(rules);
                     i++) {
                        json_object *rule = json_object_array_get_idx(rules, i);
                        json_object *route = mr_json_get(rule, "route", NULL);
                        bool match = mr_json_get(rule, "match", NULL) != NULL;
                        if (!route_names(route, rr->ns, rr->name))
                                continue;
                        /* The first rule naming the host; a rule without match conditions wins over one
                         * with. */
                        if (rr->route && (match || !rr->has_match))
                                continue;
                        json_object_put(rr->route);
                        rr->route = mr_json_copy(route);
                        rr->has_match = match;
                        if (!rr->route)
                                return -ENOMEM;
                }
        }
        return 0;
}

static int read_dr(json_object *dr, void *userdata)
{
        RouteRead *rr = userdata;
        if (!host_is_service(mr_json_get_str(dr, "spec", "host", NULL), rr->ns, rr->name))
                return 0;
        json_object *subsets = mr_json_get(dr, "spec", "subsets", NULL);
        for (size_t i = 0; i < rr->out->n; i++) {
                DpSubset *s = &rr->out->subsets[i];
                if (!s->undefined)
                        continue;
                for (size_t j = 0;
                     json_object_is_type(subsets, json_type_array) && j < json_object_array_length(subsets);
                     j++) {
                        json_object *e = json_object_array_get_idx(subsets, j);
                        if (!streq_ptr(mr_json_get_str(e, "name", NULL), s->name))
                                continue;
                        json_object *labels = mr_json_get(e, "labels", NULL);
                        if (labels && !(s->labels = mr_json_copy(labels)))
                                return -ENOMEM;
                        s->undefined = false;
                        break;
                }
        }
        return 0;
}

int dp_routing_read(SimStore *store, const char *ns, const char *name, DpRouting *ret)
{
        RouteRead rr = {.ns = ns, .name = name, .out = ret};
        int r;

        *ret = (DpRouting){};
        if ((r = sim_store_foreach(store, &SIM_VIRTUALSERVICES, ns, read_vs, &rr)) < 0)
                goto out;
        for (size_t j = 0; rr.route && j < json_object_array_length(rr.route) && ret->n < DP_MAX_SUBSETS;
             j++) {
                json_object *d = json_object_array_get_idx(rr.route, j);
                if (!host_is_service(mr_json_get_str(d, "destination", "host", NULL), ns, name))
                        continue; /* another Service: not modelled, its share is simply not ours */
                DpSubset *s = &ret->subsets[ret->n++];
                const char *subset = mr_json_get_str(d, "destination", "subset", NULL);
                int64_t w;
                snprintf(s->name, sizeof(s->name), "%s", strempty(subset));
                s->undefined = subset != NULL;
                if (mr_json_get_int(&w, d, "weight", NULL) < 0)
                        w = json_object_array_length(rr.route) == 1 ? 100 : 0;
                s->weight = (unsigned)CLAMP(w, 0, 100);
        }
        if (ret->n > 0)
                r = sim_store_foreach(store, &SIM_DESTINATIONRULES, ns, read_dr, &rr);
out:
        json_object_put(rr.route);
        if (r < 0)
                dp_routing_clear(ret);
        return r < 0 ? r : 0;
}

void dp_routing_carry(DpRouting *to, const DpRouting *from)
{
        for (size_t i = 0; i < to->n; i++)
                for (size_t k = 0; k < from->n; k++)
                        if (streq(to->subsets[i].name, from->subsets[k].name))
                                to->subsets[i].current = from->subsets[k].current;
}

int dp_routing_pick(DpRouting *r)
{
        int64_t total = 0;
        int best = -1;

        for (size_t i = 0; i < r->n; i++) {
                DpSubset *s = &r->subsets[i];
                if (s->weight == 0)
                        continue;
                s->current += s->weight;
                total += s->weight;
                if (best < 0 || s->current > r->subsets[best].current)
                        best = (int)i;
        }
        if (best >= 0)
                r->subsets[best].current -= total;
        return best;
}

void dp_pod_workload(json_object *pod, char *workload, size_t size)
{
        json_object *ref = sim_controller_ref(pod);
        const char *kind = mr_json_get_str(ref, "kind", NULL), *owner = mr_json_get_str(ref, "name", NULL);
        const char *name = mr_json_get_str(pod, "metadata", "name", NULL);

        if (owner && streq_ptr(kind, "ReplicaSet")) {
                /* <deployment>-<pod-template-hash>: the Deployment is the workload */
                const char *dash = strrchr(owner, '-');
                size_t l = dash && dash != owner ? (size_t)(dash - owner) : strlen(owner);
                snprintf(workload, size, "%.*s", (int)MIN(l, size - 1), owner);
        } else
                snprintf(workload, size, "%s", owner ? owner : name ? name : "unknown");
}

void dp_pod_version(json_object *labels, char *version, size_t size)
{
        /* Istio's canonical revision: the first of these labels, else "latest". */
        static const char *const keys[] = {"service.istio.io/canonical-revision",
                                           "app.kubernetes.io/version", "version"};
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const char *v = mr_json_get_str(labels, keys[i], NULL);
                if (!isempty(v)) {
                        snprintf(version, size, "%s", v);
                        return;
                }
        }
        snprintf(version, size, "latest");
}

/* --- metrics ---------------------------------------------------------------------------------- */

/* Istio's default buckets for istio_request_duration_milliseconds. */
static const double duration_buckets[] = {0.5,   1,      5,      10,      25,     50,    100,
                                          250,   500,    1000,   2500,    5000,   10000, 30000,
                                          60000, 300000, 600000, 1800000, 3600000};

static const char *const request_labels[] = {
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "destination_service",
    "destination_workload",
    "destination_workload_namespace",
    "destination_version",
    "response_code",
    NULL,
};

int dp_metrics_init(DpMetrics *m)
{
        int r;

        *m = (DpMetrics){};
        if ((r = mr_metrics_new(&m->registry)) < 0)
                return r;
        if ((r = mr_metrics_register(m->registry, MR_METRIC_COUNTER, "istio_requests_total",
                                     "Requests through this node's proxy, by destination and response code.",
                                     request_labels, NULL, 0, &m->requests)) < 0 ||
            (r = mr_metrics_register(m->registry, MR_METRIC_HISTOGRAM, "istio_request_duration_milliseconds",
                                     "Request duration through this node's proxy.", request_labels,
                                     duration_buckets, ELEMENTSOF(duration_buckets), &m->duration)) < 0) {
                dp_metrics_done(m);
                return r;
        }
        return 0;
}

void dp_metrics_done(DpMetrics *m)
{
        mr_metrics_free(m->registry);
        *m = (DpMetrics){};
}

void dp_metrics_request(DpMetrics *m, const DpRequestLabels *l, const char *code, double ms)
{
        const char *values[] = {
            l->reporter,
            strempty(l->source_workload),
            strempty(l->source_workload_namespace),
            strempty(l->destination_service),
            strempty(l->destination_workload),
            strempty(l->destination_workload_namespace),
            strempty(l->destination_version),
            code,
        };
        if (!m->registry)
                return;
        /* Past the series cap an update fails; a metric is a report, so the request goes on. */
        (void)mr_metric_add(m->requests, values, 1);
        (void)mr_metric_observe(m->duration, values, ms);
}

/* --- the /metrics endpoint -------------------------------------------------------------------- */

typedef struct MetricsConn MetricsConn;

struct DpMetricsServer {
        SimDataplane *dp;
        DpMetrics *metrics;
        int lfd;
        SimDpHandler lh;
        MetricsConn *conns;
};

struct MetricsConn {
        SimDpDeferred deferred;
        SimDpHandler h;
        bool dead;
        DpMetricsServer *server;
        MetricsConn *prev, *next;
        int fd;
        char in[METRICS_REQUEST_MAX];
        size_t in_len;
        char *out; /* the whole answer once the request is read */
        size_t out_len, out_sent;
};

static void conn_close(MetricsConn *c)
{
        if (c->dead)
                return;
        c->dead = true;
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -EBADF;
        free(c->out);
        c->out = NULL;
        if (c->prev)
                c->prev->next = c->next;
        else
                c->server->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        sim_dataplane_defer_free(c->server->dp, &c->deferred, c);
}

static int conn_answer(MetricsConn *c)
{
        _cleanup_free_ char *body = NULL;
        size_t size = 0;
        int status = 404;
        const char *reason = "Not Found", *type = "text/plain; charset=utf-8";

        if (startswith(c->in, "GET /metrics ") || startswith(c->in, "GET /metrics?") ||
            startswith(c->in, "GET /stats/prometheus ")) {
                if (mr_metrics_render(c->server->metrics->registry, &body, &size) < 0)
                        return -ENOMEM;
                status = 200;
                reason = "OK";
                type = "text/plain; version=0.0.4; charset=utf-8";
        } else if (!(body = strdup("not found\n")))
                return -ENOMEM;
        else
                size = strlen(body);
        char head[256];
        int hl = snprintf(
            head, sizeof(head),
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
            reason, type, size);
        if (hl < 0 || !(c->out = malloc((size_t)hl + size)))
                return -ENOMEM;
        memcpy(c->out, head, (size_t)hl);
        memcpy(c->out + hl, body, size);
        c->out_len = (size_t)hl + size;
        return 0;
}

static void conn_event(SimDpHandler *h, uint32_t events)
{
        MetricsConn *c = container_of(h, MetricsConn, h);
        if (c->dead)
                return;
        if (events & EPOLLERR) {
                conn_close(c);
                return;
        }
        if (!c->out) {
                ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, 0);
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                        conn_close(c);
                        return;
                }
                if (n > 0)
                        c->in_len += (size_t)n;
                c->in[c->in_len] = 0;
                if (!strstr(c->in, "\r\n\r\n") && !strstr(c->in, "\n\n")) {
                        if (c->in_len >= sizeof(c->in) - 1)
                                conn_close(c); /* headers too large: not a scrape */
                        return;
                }
                if (conn_answer(c) < 0 || sim_dataplane_rewatch(c->server->dp, c->fd, EPOLLOUT, &c->h) < 0) {
                        conn_close(c);
                        return;
                }
        }
        while (c->out_sent < c->out_len) {
                ssize_t n = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                conn_close(c);
                        return;
                }
                c->out_sent += (size_t)n;
        }
        /* Everything sent; the request was read whole, so close() ends with a FIN. */
        conn_close(c);
}

static void accept_event(SimDpHandler *h, uint32_t events)
{
        DpMetricsServer *s = container_of(h, DpMetricsServer, lh);
        for (int i = 0; i < METRICS_ACCEPT_BATCH && s->lfd >= 0; i++) {
                int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0)
                        return;
                MetricsConn *c = calloc(1, sizeof(*c));
                if (!c) {
                        close(fd);
                        continue;
                }
                *c = (MetricsConn){.h.fn = conn_event, .server = s, .fd = fd};
                if (sim_dataplane_watch(s->dp, fd, EPOLLIN, &c->h) < 0) {
                        close(fd);
                        free(c);
                        continue;
                }
                c->next = s->conns;
                if (s->conns)
                        s->conns->prev = c;
                s->conns = c;
        }
}

int dp_metrics_server_start(SimDataplane *dp, struct in_addr addr, uint16_t port, DpMetrics *m,
                            DpMetricsServer **ret)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = addr, .sin_port = htons(port)};
        int one = 1, r;

        DpMetricsServer *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        *s = (DpMetricsServer){.dp = dp, .metrics = m, .lh.fn = accept_event};
        s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->lfd < 0 || setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s->lfd, 64) < 0) {
                r = -errno;
                goto fail;
        }
        if ((r = sim_dataplane_watch(dp, s->lfd, EPOLLIN, &s->lh)) < 0)
                goto fail;
        *ret = s;
        return 0;
fail:
        if (s->lfd >= 0)
                close(s->lfd);
        free(s);
        return r;
}

DpMetricsServer *dp_metrics_server_stop(DpMetricsServer *s)
{
        if (!s)
                return NULL;
        if (s->lfd >= 0)
                close(s->lfd);
        while (s->conns)
                conn_close(s->conns);
        free(s);
        return NULL;
}
