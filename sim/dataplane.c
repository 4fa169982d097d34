/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dataplane.c — node proxies and workload backends on real loopback
 * sockets, driven by the simulated cluster (see dataplane.h and
 * docs/dataplane.md).
 *
 * Design.
 *
 * One thread, one epoll set, every socket. A store observer (called under
 * the store lock for every write) only sets a dirty flag and writes the
 * eventfd; it never touches a socket. The thread reconciles level-based, as
 * a controller would: it takes the store lock, copies the little it needs
 * (nodes, pods, Services) into a snapshot, gives new nodes their address
 * annotation, releases the lock, and then compares the snapshot with the
 * sockets it has. Coalesced wake-ups lose nothing because the snapshot is
 * the whole state: a ztunnel pod that was deleted and replaced between two
 * passes is simply absent, and its connections are reset.
 *
 * Node proxy. The node's serving ztunnel pod is one that is Running, Ready
 * and not terminating (the current one is kept while it qualifies, so a
 * surge pod does not take over early). Listeners on 15001 and 15006 exist
 * exactly while there is one: a terminating pod stops accepting (pending
 * connections in the backlog are refused by the kernel). Each accepted
 * connection records the uid of the pod that accepted it; once that uid is
 * no longer among the node's ztunnel pods, both legs are reset
 * (SO_LINGER {1, 0} then close). That is what a ztunnel restart does to the
 * connections it still holds when its drain window ends.
 *
 * Relay. Two legs, a buffer per direction, backpressure by dropping
 * EPOLLIN when a buffer is full. The first line of the downstream leg names
 * the destination: "CONNECT ns/service\n" on 15001 (the proxy picks a Ready
 * endpoint round-robin and connects to that pod's node on 15006 with
 * "CONNECT 127.x.y.z:port\n"), "CONNECT 127.x.y.z:port\n" on 15006 (a
 * backend on this node). A FIN is passed on as a FIN once the buffer behind
 * it is written (shutdown(SHUT_WR)); the relay closes when both directions
 * are done, so it never closes with unread data (which would send a RST).
 * An error on either leg (ECONNRESET, a refused upstream) resets the other:
 * resets travel end to end as they do through a real proxy.
 *
 * Backend. An echo server per served pod: each line "GET <id>\n" is
 * answered "200 <id>\n" at once. A deleted pod closes its listener, finishes
 * the answers it owes, sends FIN, and reads (discarding) until the peer's
 * FIN before closing — a graceful close even when a request crosses the FIN.
 *
 * Lifetime. Objects that epoll events point at (relays, backend
 * connections, pods) are freed only after the current batch of events
 * (sim_dataplane_defer_free), and handlers check a dead flag first.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <time.h>

#include "controllers-internal.h"
#include "dataplane-mesh.h"
#include "dataplane.h"
#include "meshroll/json-util.h"

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define DP_BUF 4096       /* per direction of a relay */
#define DP_HEADER_MAX 512 /* the CONNECT line */
#define DP_LINE_MAX 512   /* a backend request line */
#define DP_BACKLOG 1024
#define DP_MAX_EVENTS 64
#define DP_ACCEPT_BATCH 64   /* accepts per listener event */
#define DP_PUMP_ROUNDS 16    /* read/write rounds per relay event */
#define DP_IDLE_WAIT_MS 1000 /* epoll timeout: the loop re-checks its stop flag at least this often */
#define DP_ERROR_RATE_ANNOTATION "sim.meshroll.io/error-rate" /* a backend answers 503 to this share */
#define DP_SCAN_MAX 24    /* the start of a request or answer line kept for metrics */
#define DP_INFLIGHT_MAX 8 /* requests timed per relay (the protocol has one at a time) */

/* --- state --------------------------------------------------------------------------------- */

typedef struct DpNode {
        SimDataplane *dp;
        char name[256];
        uint32_t index;
        struct in_addr addr;
        char addr_str[INET_ADDRSTRLEN];
        bool present, unschedulable;
        char serving[64]; /* uid of the ztunnel pod that accepts, "" when none */
        char live[4][64]; /* uids of the node's ztunnel pods in the last snapshot */
        unsigned n_live;
        int lfd_out, lfd_in;
        SimDpHandler lh_out, lh_in;
        uint64_t accepted, reset;
        uint32_t active;
        DpMetrics metrics;               /* istio_requests_total, … (dataplane-mesh.h) */
        DpMetricsServer *metrics_server; /* /metrics on addr:metrics port */
} DpNode;

typedef struct BackendConn BackendConn;

typedef struct DpPod {
        SimDpDeferred deferred;
        SimDataplane *dp;
        bool dead;
        char ns[64], name[256], uid[64], node[256];
        json_object *labels;             /* owned copy */
        char workload[256], version[64]; /* Istio's destination_workload / destination_version */
        double error_rate, error_acc;    /* share of requests answered 503; its running remainder */
        bool running, ready, deleting, seen;
        uint32_t index;
        struct in_addr addr;
        uint16_t port; /* served port, 0: not a backend */
        int lfd;
        SimDpHandler lh;
        bool draining;
        BackendConn *conns;
} DpPod;

struct BackendConn {
        SimDpDeferred deferred;
        SimDpHandler h;
        bool dead;
        BackendConn *prev, *next;
        SimDataplane *dp;
        DpPod *pod;
        int fd;
        uint32_t events;
        bool eof, shut;
        char in[DP_LINE_MAX];
        size_t in_len;
        char out[DP_BUF];
        size_t out_len;
};

typedef struct DpService {
        char ns[64], name[256];
        json_object *selector; /* spec.selector (owned copy) */
        uint16_t port;         /* numeric targetPort, else port */
        bool served;
        uint64_t rr;
        DpRouting routing; /* its VirtualService's weighted subsets (dataplane-mesh.h) */
} DpService;

typedef enum RelayKind {
        RELAY_OUTBOUND,
        RELAY_INBOUND,
} RelayKind;

typedef struct Relay Relay;
typedef struct RelaySide {
        SimDpHandler h;
        Relay *relay;
        int fd;
        bool eof;  /* read EOF */
        bool shut; /* sent FIN */
        bool watched;
        uint32_t events;
        char buf[DP_BUF]; /* read from this side, to be written to the other */
        size_t len;
} RelaySide;

struct Relay {
        SimDpDeferred deferred;
        bool dead;
        Relay *prev, *next;
        SimDataplane *dp;
        DpNode *node;
        RelayKind kind;
        char ztunnel_uid[64];
        bool header_done, connecting;
        bool refused;          /* inbound to a terminating backend: FIN sent, reading until the peer's */
        char destination[320]; /* "ns/service" or the backend address, for diagnostics and metrics */
        RelaySide side[2];     /* 0: downstream (accepted), 1: upstream */

        /* Metrics: the labels, the lines being passed on, and when each request in flight was sent. */
        bool measured;
        char src_workload[256], src_ns[64], dst_service[384], dst_workload[256], dst_ns[64], dst_version[64];
        char scan[2][DP_SCAN_MAX]; /* per direction: the start of the current line */
        size_t scan_len[2];
        usec_t inflight[DP_INFLIGHT_MAX];
        unsigned inflight_head, inflight_n;
};

typedef struct DpCall {
        void (*fn)(SimDataplane *dp, void *userdata);
        void *userdata;
        bool done;
        struct DpCall *next;
} DpCall;

struct SimDataplane {
        SimStore *store;
        char *ztunnel_ns, *ztunnel_name;
        char **services; /* NULL: every Service with a selector */
        uint8_t net;
        int net_lock_fd; /* holds the reservation of 127.<net> (see net_reserve); -EBADF when none */
        uint16_t port_out, port_in, port_metrics;
        bool annotate, observing;

        /* Shared with other threads: mu guards these. Lock order: store lock, then mu. */
        pthread_mutex_t mu;
        pthread_cond_t cond;
        bool dirty, stopping, stopped;
        DpCall *calls;
        SimDataplaneStats stats; /* copy published after every pass */

        /* Thread-owned. */
        pthread_t thread;
        bool thread_started;
        int epfd, evfd;
        SimDpHandler ev_handler;
        DpNode **nodes;
        size_t n_nodes;
        DpPod **pods;
        size_t n_pods;
        uint32_t next_pod_index;
        DpService *svcs;
        size_t n_svcs;
        Relay *relays;
        SimDpHook *hooks;
        SimDpDeferred *zombies;
        SimDataplaneStats counters;
};

/* --- small helpers ------------------------------------------------------------------------- */

usec_t sim_dataplane_now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / NSEC_PER_USEC;
}

void sim_dataplane_reset_fd(int fd)
{
        if (fd < 0)
                return;
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        close(fd);
}

void sim_dataplane_defer_free(SimDataplane *dp, SimDpDeferred *d, void *ptr)
{
        d->ptr = ptr;
        d->next = dp->zombies;
        dp->zombies = d;
}

static void free_zombies(SimDataplane *dp)
{
        for (unsigned i = 0; dp->zombies && i < UINT32_MAX; i++) {
                SimDpDeferred *d = dp->zombies;
                dp->zombies = d->next;
                free(d->ptr);
        }
}

int sim_dataplane_watch(SimDataplane *dp, int fd, uint32_t events, SimDpHandler *h)
{
        struct epoll_event ev = {.events = events, .data.ptr = h};
        return epoll_ctl(dp->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int sim_dataplane_rewatch(SimDataplane *dp, int fd, uint32_t events, SimDpHandler *h)
{
        struct epoll_event ev = {.events = events, .data.ptr = h};
        return epoll_ctl(dp->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

uint16_t sim_dataplane_outbound_port(const SimDataplane *dp)
{
        return dp->port_out;
}

static struct in_addr make_addr(uint8_t net, uint32_t third, uint32_t fourth)
{
        return (struct in_addr){.s_addr =
                                    htonl((127u << 24) | ((uint32_t)net << 16) | (third << 8) | fourth)};
}

/* Node i → 127.net.(i / 250).(i % 250 + 1); pod j → 127.net.(64 + j / 250).(j % 250 + 1). */
static struct in_addr node_addr(uint8_t net, uint32_t i)
{
        return make_addr(net, i / 250, i % 250 + 1);
}

static struct in_addr pod_addr(uint8_t net, uint32_t j)
{
        return make_addr(net, 64 + j / 250, j % 250 + 1);
}

/* A non-blocking TCP listener on addr:port. Returns the fd or -errno. */
static int listen_on(struct in_addr addr, uint16_t port)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = addr};
        int one = 1;
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
            bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, DP_BACKLOG) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/*
 * Starts a non-blocking connect from `from` (port 0) to to:port. Returns the
 * fd (*ret_pending: the connect is still in progress) or -errno.
 */
static int connect_from(struct in_addr from, struct in_addr to, uint16_t port, bool *ret_pending)
{
        struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr = from};
        struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = to};
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0) {
                if (errno != EINPROGRESS)
                        return -errno;
                *ret_pending = true;
        } else
                *ret_pending = false;
        return TAKE_FD(fd);
}

int sim_dataplane_connect(struct in_addr from, struct in_addr to, uint16_t port, bool *ret_pending)
{
        return connect_from(from, to, port, ret_pending);
}

static DpNode *find_node(SimDataplane *dp, const char *name)
{
        for (size_t i = 0; i < dp->n_nodes; i++)
                if (streq(dp->nodes[i]->name, name))
                        return dp->nodes[i];
        return NULL;
}

static DpPod *find_pod(SimDataplane *dp, const char *uid)
{
        for (size_t i = 0; i < dp->n_pods; i++)
                if (streq(dp->pods[i]->uid, uid))
                        return dp->pods[i];
        return NULL;
}

/* Every key of the selector map has the same value in labels; an empty selector matches nothing. */
static bool selector_matches(json_object *selector, json_object *labels)
{
        if (!selector || !json_object_is_type(selector, json_type_object) ||
            json_object_object_length(selector) == 0)
                return false;
        json_object_object_foreach (selector, key, val) {
                const char *want = json_object_get_string(val);
                if (!streq_ptr(mr_json_get_str(labels, key, NULL), want))
                        return false;
        }
        return true;
}

/* --- relays --------------------------------------------------------------------------------- */

static void relay_free_later(Relay *r, bool reset, bool by_restart)
{
        SimDataplane *dp = r->dp;
        if (r->dead)
                return;
        r->dead = true;
        for (int i = 0; i < 2; i++) {
                if (r->side[i].fd < 0)
                        continue;
                if (reset)
                        sim_dataplane_reset_fd(r->side[i].fd);
                else
                        close(r->side[i].fd);
                r->side[i].fd = -EBADF;
        }
        if (r->prev)
                r->prev->next = r->next;
        else
                dp->relays = r->next;
        if (r->next)
                r->next->prev = r->prev;
        if (r->node->active > 0)
                r->node->active--;
        if (dp->counters.relays_active > 0)
                dp->counters.relays_active--;
        if (by_restart) {
                r->node->reset++;
                dp->counters.proxy_reset++;
        } else if (reset)
                dp->counters.proxy_failed++;
        else
                dp->counters.proxy_closed++;
        sim_dataplane_defer_free(dp, &r->deferred, r);
}

/*
 * The endpoint of service ns/name to send the next connection to: the subset
 * its VirtualService's weights choose (if it has one), then round-robin over
 * that subset's Ready backends. NULL when there is none (a subset no
 * DestinationRule defines has none, as Istio answers 503 NR).
 */
static DpPod *pick_endpoint(SimDataplane *dp, const char *ns, const char *name, DpService **ret_svc)
{
        DpService *svc = NULL;
        json_object *subset = NULL;
        size_t count = 0;
        for (size_t i = 0; i < dp->n_svcs && !svc; i++)
                if (streq(dp->svcs[i].ns, ns) && streq(dp->svcs[i].name, name))
                        svc = &dp->svcs[i];
        if (!svc || !svc->served)
                return NULL;
        if (svc->routing.n > 0) {
                int k = dp_routing_pick(&svc->routing);
                if (k < 0 || svc->routing.subsets[k].undefined)
                        return NULL;
                subset = svc->routing.subsets[k].labels;
        }
        for (int pass = 0; pass < 2; pass++) {
                size_t k = 0, want = pass ? svc->rr++ % count : 0;
                for (size_t i = 0; i < dp->n_pods; i++) {
                        DpPod *p = dp->pods[i];
                        if (p->lfd < 0 || p->draining || !p->ready || p->deleting || p->port != svc->port ||
                            !streq(p->ns, ns) || !selector_matches(svc->selector, p->labels) ||
                            (subset && json_object_object_length(subset) > 0 &&
                             !selector_matches(subset, p->labels)))
                                continue;
                        if (pass && k == want) {
                                *ret_svc = svc;
                                return p;
                        }
                        k++;
                }
                count = k;
                if (count == 0)
                        return NULL;
        }
        return NULL;
}

static bool relay_pump(Relay *r);

static void relay_side_event(SimDpHandler *h, uint32_t events);

/* --- relay metrics ------------------------------------------------------------------------------ */

/* The client pod behind an outbound connection, by its source address. */
static void relay_label_source(Relay *r)
{
        struct sockaddr_in sa;
        socklen_t l = sizeof sa;
        snprintf(r->src_workload, sizeof r->src_workload, "unknown");
        snprintf(r->src_ns, sizeof r->src_ns, "unknown");
        if (getpeername(r->side[0].fd, (struct sockaddr *)&sa, &l) < 0 || sa.sin_family != AF_INET)
                return;
        for (size_t i = 0; i < r->dp->n_pods; i++) {
                DpPod *p = r->dp->pods[i];
                if (p->addr.s_addr != sa.sin_addr.s_addr)
                        continue;
                snprintf(r->src_workload, sizeof r->src_workload, "%s", p->workload);
                snprintf(r->src_ns, sizeof r->src_ns, "%s", p->ns);
                return;
        }
}

/* service NULL: the first served Service selecting the pod. */
static void relay_label_destination(Relay *r, DpPod *p, const char *ns, const char *service)
{
        SimDataplane *dp = r->dp;
        for (size_t k = 0; k < dp->n_svcs && !service; k++)
                if (dp->svcs[k].served && streq(dp->svcs[k].ns, p->ns) && dp->svcs[k].port == p->port &&
                    selector_matches(dp->svcs[k].selector, p->labels))
                        service = dp->svcs[k].name;
        snprintf(r->dst_service, sizeof r->dst_service, "%s.%s.svc.cluster.local",
                 service ? service : "unknown", ns);
        snprintf(r->dst_workload, sizeof r->dst_workload, "%s", p->workload);
        snprintf(r->dst_ns, sizeof r->dst_ns, "%s", p->ns);
        snprintf(r->dst_version, sizeof r->dst_version, "%s", p->version);
        r->measured = true;
}

/*
 * Bytes relayed in direction dir (0: requests, downstream → upstream; 1:
 * answers). A request line "GET <id>" starts a timer; an answer line
 * "<code> <id>" stops the oldest and is counted on the node's metrics.
 */
static void relay_scan(Relay *r, int dir, const char *data, size_t n)
{
        for (size_t i = 0; i < n && r->measured; i++) {
                if (data[i] != '\n') {
                        if (r->scan_len[dir] < DP_SCAN_MAX - 1)
                                r->scan[dir][r->scan_len[dir]++] = data[i];
                        continue;
                }
                char *line = r->scan[dir];
                line[r->scan_len[dir]] = 0;
                r->scan_len[dir] = 0;
                if (dir == 0) {
                        if (startswith(line, "GET ") && r->inflight_n < DP_INFLIGHT_MAX) {
                                r->inflight[(r->inflight_head + r->inflight_n) % DP_INFLIGHT_MAX] =
                                    sim_dataplane_now();
                                r->inflight_n++;
                        }
                        continue;
                }
                char code[8];
                size_t cl = strspn(line, "0123456789");
                if (cl == 0 || cl >= sizeof code || line[cl] != ' ')
                        continue;
                memcpy(code, line, cl);
                code[cl] = 0;
                double ms = 0;
                if (r->inflight_n > 0) {
                        ms = (double)(sim_dataplane_now() - r->inflight[r->inflight_head]) /
                             (double)USEC_PER_MSEC;
                        r->inflight_head = (r->inflight_head + 1) % DP_INFLIGHT_MAX;
                        r->inflight_n--;
                }
                DpRequestLabels l = {
                    .reporter = r->kind == RELAY_OUTBOUND ? "source" : "destination",
                    .source_workload = r->src_workload,
                    .source_workload_namespace = r->src_ns,
                    .destination_service = r->dst_service,
                    .destination_workload = r->dst_workload,
                    .destination_workload_namespace = r->dst_ns,
                    .destination_version = r->dst_version,
                };
                dp_metrics_request(&r->node->metrics, &l, code, ms);
        }
}

/* Parses the CONNECT line and starts the upstream connect. false when the relay was reset. */
static bool relay_route(Relay *r, const char *line)
{
        SimDataplane *dp = r->dp;
        const char *target = startswith(line, "CONNECT ");
        char header[64];
        struct in_addr to;
        uint16_t port;
        bool pending = false;

        if (!target || isempty(target))
                goto fail;
        snprintf(r->destination, sizeof r->destination, "%s", target);
        if (r->kind == RELAY_OUTBOUND) {
                char ns[64], name[256];
                const char *slash = strchr(target, '/');
                if (!slash || (size_t)(slash - target) >= sizeof ns || strlen(slash + 1) >= sizeof name)
                        goto fail;
                memcpy(ns, target, slash - target);
                ns[slash - target] = 0;
                snprintf(name, sizeof name, "%s", slash + 1);
                DpService *svc = NULL;
                DpPod *ep = pick_endpoint(dp, ns, name, &svc);
                DpNode *n = ep ? find_node(dp, ep->node) : NULL;
                if (!ep || !n)
                        goto fail;
                relay_label_source(r);
                relay_label_destination(r, ep, ns, name);
                char a[INET_ADDRSTRLEN];
                inet_ntop(AF_INET, &ep->addr, a, sizeof a);
                snprintf(header, sizeof header, "CONNECT %s:%u\n", a, ep->port);
                to = n->addr;
                port = dp->port_in;
        } else {
                char a[INET_ADDRSTRLEN + 8];
                const char *colon = strrchr(target, ':');
                char *end;
                if (!colon || (size_t)(colon - target) >= INET_ADDRSTRLEN)
                        goto fail;
                memcpy(a, target, colon - target);
                a[colon - target] = 0;
                unsigned long p = strtoul(colon + 1, &end, 10);
                if (*end || p == 0 || p > 65535 || inet_pton(AF_INET, a, &to) != 1)
                        goto fail;
                port = (uint16_t)p;
                DpPod *backend = NULL;
                for (size_t i = 0; i < dp->n_pods && !backend; i++)
                        if (dp->pods[i]->addr.s_addr == to.s_addr && streq(dp->pods[i]->node, r->node->name))
                                backend = dp->pods[i];
                if (!backend)
                        goto fail;
                snprintf(r->src_workload, sizeof r->src_workload, "unknown");
                snprintf(r->src_ns, sizeof r->src_ns, "unknown");
                relay_label_destination(r, backend, backend->ns, NULL);
                if (backend->lfd < 0) {
                        /*
                         * Terminating (or not yet serving): refuse gracefully, as the pod's own
                         * socket would have, so the client retries elsewhere instead of failing.
                         */
                        (void)shutdown(r->side[0].fd, SHUT_WR);
                        r->side[0].shut = true;
                        r->side[0].len = 0;
                        r->refused = r->header_done = true;
                        return true;
                }
                header[0] = 0;
        }

        int fd = connect_from(r->node->addr, to, port, &pending);
        if (fd < 0)
                goto fail;
        r->side[1].fd = fd;
        r->connecting = pending;
        if (sim_dataplane_watch(dp, fd, pending ? EPOLLOUT : EPOLLIN, &r->side[1].h) < 0)
                goto fail;
        r->side[1].watched = true;
        r->side[1].events = pending ? EPOLLOUT : EPOLLIN;

        /* Replace the consumed line by the upstream's header in front of whatever followed it. */
        size_t hl = strlen(header);
        RelaySide *s = &r->side[0];
        if (hl > 0) {
                if (s->len + hl > sizeof s->buf)
                        goto fail;
                memmove(s->buf + hl, s->buf, s->len);
                memcpy(s->buf, header, hl);
                s->len += hl;
        }
        r->header_done = true;
        return true;
fail:
        relay_free_later(r, true, false);
        return false;
}

/* Consumes the first line of side 0 once complete. false when the relay was reset. */
static bool relay_header(Relay *r)
{
        RelaySide *s = &r->side[0];
        char *nl = memchr(s->buf, '\n', s->len);
        if (!nl) {
                if (s->len >= DP_HEADER_MAX || s->eof) {
                        relay_free_later(r, true, false);
                        return false;
                }
                return true;
        }
        char line[DP_HEADER_MAX + 1];
        size_t l = (size_t)(nl - s->buf);
        if (l > DP_HEADER_MAX) {
                relay_free_later(r, true, false);
                return false;
        }
        memcpy(line, s->buf, l);
        line[l] = 0;
        if (l > 0 && line[l - 1] == '\r')
                line[l - 1] = 0;
        memmove(s->buf, nl + 1, s->len - l - 1);
        s->len -= l + 1;
        return relay_route(r, line);
}

static void relay_update_events(Relay *r)
{
        for (int i = 0; i < 2; i++) {
                RelaySide *s = &r->side[i], *o = &r->side[1 - i];
                if (s->fd < 0 || !s->watched)
                        continue;
                if (s->eof && s->shut) {
                        /* Both directions done on this leg: no more events worth waking for. */
                        (void)epoll_ctl(r->dp->epfd, EPOLL_CTL_DEL, s->fd, NULL);
                        s->watched = false;
                        continue;
                }
                uint32_t ev = 0;
                bool up_connecting = i == 1 && r->connecting;
                if (up_connecting)
                        ev = EPOLLOUT;
                else {
                        if (!s->eof && s->len < sizeof s->buf)
                                ev |= EPOLLIN;
                        if (o->len > 0 && r->header_done)
                                ev |= EPOLLOUT;
                }
                if (ev != s->events && sim_dataplane_rewatch(r->dp, s->fd, ev, &s->h) >= 0)
                        s->events = ev;
        }
}

/* A refused relay reads and drops until the peer's FIN, then closes without a RST. */
static bool relay_drain_refused(Relay *r)
{
        RelaySide *s = &r->side[0];
        for (int round = 0; round < DP_PUMP_ROUNDS; round++) {
                ssize_t n = recv(s->fd, s->buf, sizeof s->buf, 0);
                if (n == 0) {
                        relay_free_later(r, false, false);
                        return false;
                }
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        relay_free_later(r, true, false);
                        return false;
                }
        }
        return true;
}

/* Moves bytes both ways until nothing moves. false when the relay is gone. */
static bool relay_pump(Relay *r)
{
        if (r->refused)
                return relay_drain_refused(r);
        for (int round = 0; round < DP_PUMP_ROUNDS; round++) {
                bool progress = false;
                for (int i = 0; i < 2; i++) {
                        RelaySide *s = &r->side[i], *o = &r->side[1 - i];
                        bool s_ready = s->fd >= 0 && !(i == 1 && r->connecting);
                        bool o_ready = o->fd >= 0 && !(i == 0 && r->connecting);
                        if (s_ready && !s->eof && s->len < sizeof s->buf) {
                                ssize_t n = recv(s->fd, s->buf + s->len, sizeof s->buf - s->len, 0);
                                if (n > 0) {
                                        s->len += (size_t)n;
                                        progress = true;
                                } else if (n == 0) {
                                        s->eof = true;
                                        progress = true;
                                } else if (errno != EAGAIN && errno != EINTR) {
                                        relay_free_later(r, true, false);
                                        return false;
                                }
                        }
                        if (i == 0 && !r->header_done) {
                                if (!relay_header(r))
                                        return false;
                                if (r->refused)
                                        return relay_drain_refused(r);
                                if (!r->header_done)
                                        continue;
                                progress = true;
                                o_ready = o->fd >= 0 && !r->connecting;
                        }
                        if (s->len > 0 && o_ready) {
                                ssize_t n = send(o->fd, s->buf, s->len, MSG_NOSIGNAL);
                                if (n > 0) {
                                        relay_scan(r, i, s->buf, (size_t)n);
                                        memmove(s->buf, s->buf + n, s->len - (size_t)n);
                                        s->len -= (size_t)n;
                                        progress = true;
                                } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                                        relay_free_later(r, true, false);
                                        return false;
                                }
                        }
                        if (s->eof && s->len == 0 && o_ready && !o->shut) {
                                (void)shutdown(o->fd, SHUT_WR);
                                o->shut = true;
                                progress = true;
                        }
                }
                if (r->side[0].eof && r->side[1].eof && r->side[0].shut && r->side[1].shut) {
                        relay_free_later(r, false, false);
                        return false;
                }
                if (!progress)
                        break;
        }
        relay_update_events(r);
        return true;
}

static void relay_side_event(SimDpHandler *h, uint32_t events)
{
        RelaySide *s = container_of(h, RelaySide, h);
        Relay *r = s->relay;
        if (r->dead)
                return;
        bool upstream = s == &r->side[1];
        if (events & EPOLLERR) {
                int err = 0;
                socklen_t l = sizeof err;
                (void)getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                if (err != 0) {
                        relay_free_later(r, true, false);
                        return;
                }
        }
        if (upstream && r->connecting) {
                if (!(events & (EPOLLOUT | EPOLLHUP)))
                        return;
                int err = 0;
                socklen_t l = sizeof err;
                if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0 || err != 0 ||
                    (events & EPOLLHUP)) {
                        relay_free_later(r, true, false);
                        return;
                }
                r->connecting = false;
        }
        (void)relay_pump(r);
}

static void relay_new(SimDataplane *dp, DpNode *node, RelayKind kind, int fd)
{
        Relay *r = calloc(1, sizeof *r);
        if (!r) {
                sim_dataplane_reset_fd(fd);
                return;
        }
        r->dp = dp;
        r->node = node;
        r->kind = kind;
        snprintf(r->ztunnel_uid, sizeof r->ztunnel_uid, "%s", node->serving);
        for (int i = 0; i < 2; i++) {
                r->side[i].h.fn = relay_side_event;
                r->side[i].relay = r;
                r->side[i].fd = -EBADF;
        }
        r->side[0].fd = fd;
        r->next = dp->relays;
        if (dp->relays)
                dp->relays->prev = r;
        dp->relays = r;
        node->accepted++;
        node->active++;
        dp->counters.relays_active++;
        if (kind == RELAY_OUTBOUND)
                dp->counters.accepted_outbound++;
        else
                dp->counters.accepted_inbound++;
        if (sim_dataplane_watch(dp, fd, EPOLLIN, &r->side[0].h) < 0) {
                relay_free_later(r, true, false);
                return;
        }
        r->side[0].watched = true;
        r->side[0].events = EPOLLIN;
}

static void proxy_accept(SimDataplane *dp, DpNode *node, int lfd, RelayKind kind)
{
        for (int i = 0; i < DP_ACCEPT_BATCH; i++) {
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0)
                        return;
                if (isempty(node->serving)) {
                        sim_dataplane_reset_fd(fd);
                        continue;
                }
                relay_new(dp, node, kind, fd);
        }
}

static void proxy_out_event(SimDpHandler *h, uint32_t events)
{
        DpNode *n = container_of(h, DpNode, lh_out);
        if (n->lfd_out >= 0)
                proxy_accept(n->dp, n, n->lfd_out, RELAY_OUTBOUND);
}

static void proxy_in_event(SimDpHandler *h, uint32_t events)
{
        DpNode *n = container_of(h, DpNode, lh_in);
        if (n->lfd_in >= 0)
                proxy_accept(n->dp, n, n->lfd_in, RELAY_INBOUND);
}

static void proxy_unlisten(DpNode *n)
{
        if (n->lfd_out >= 0)
                close(n->lfd_out);
        if (n->lfd_in >= 0)
                close(n->lfd_in);
        n->lfd_out = n->lfd_in = -EBADF;
}

static int proxy_listen(SimDataplane *dp, DpNode *n)
{
        int r;
        n->lfd_out = listen_on(n->addr, dp->port_out);
        n->lfd_in = n->lfd_out >= 0 ? listen_on(n->addr, dp->port_in) : -EBADF;
        if (n->lfd_out < 0 || n->lfd_in < 0) {
                r = n->lfd_out < 0 ? n->lfd_out : n->lfd_in;
                proxy_unlisten(n);
                return r;
        }
        if ((r = sim_dataplane_watch(dp, n->lfd_out, EPOLLIN, &n->lh_out)) < 0 ||
            (r = sim_dataplane_watch(dp, n->lfd_in, EPOLLIN, &n->lh_in)) < 0) {
                proxy_unlisten(n);
                return r;
        }
        return 0;
}

/* --- backends ------------------------------------------------------------------------------ */

static void backend_conn_close(BackendConn *c)
{
        if (c->dead)
                return;
        c->dead = true;
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -EBADF;
        if (c->prev)
                c->prev->next = c->next;
        else
                c->pod->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->dp->counters.backend_closed++;
        sim_dataplane_defer_free(c->dp, &c->deferred, c);
}

/* Answers every complete request line; after our FIN, requests are read and dropped. */
static bool backend_conn_answer(BackendConn *c)
{
        for (unsigned i = 0; i < DP_LINE_MAX; i++) {
                char *nl = memchr(c->in, '\n', c->in_len);
                if (!nl)
                        return c->in_len < sizeof c->in; /* an overlong line: not our protocol */
                size_t l = (size_t)(nl - c->in);
                if (!c->shut) {
                        char resp[DP_LINE_MAX + 16];
                        const char *id = l > 4 && strneq(c->in, "GET ", 4) ? c->in + 4 : NULL;
                        /* An exact share, spread evenly: every (1 / error_rate)-th request fails. */
                        double acc = c->pod->error_acc + (id ? c->pod->error_rate : 0);
                        int code = acc >= 1 ? 503 : 200;
                        int n = id ? snprintf(resp, sizeof resp, "%d %.*s\n", code, (int)(l - 4), id)
                                   : snprintf(resp, sizeof resp, "400 bad-request\n");
                        if (n < 0 || (size_t)n > sizeof c->out - c->out_len)
                                return true; /* no room: answer once the output drains */
                        c->pod->error_acc = code == 503 ? acc - 1 : acc;
                        memcpy(c->out + c->out_len, resp, (size_t)n);
                        c->out_len += (size_t)n;
                }
                memmove(c->in, nl + 1, c->in_len - l - 1);
                c->in_len -= l + 1;
        }
        return true;
}

static void backend_conn_pump(BackendConn *c)
{
        for (int round = 0; round < DP_PUMP_ROUNDS && !c->dead; round++) {
                bool progress = false;
                if (!c->eof && c->in_len < sizeof c->in) {
                        ssize_t n = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
                        if (n > 0) {
                                c->in_len += (size_t)n;
                                progress = true;
                        } else if (n == 0) {
                                c->eof = true;
                                progress = true;
                        } else if (errno != EAGAIN && errno != EINTR) {
                                backend_conn_close(c);
                                return;
                        }
                }
                if (!backend_conn_answer(c)) {
                        sim_dataplane_reset_fd(TAKE_FD(c->fd));
                        backend_conn_close(c);
                        return;
                }
                if (c->out_len > 0) {
                        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
                        if (n > 0) {
                                memmove(c->out, c->out + n, c->out_len - (size_t)n);
                                c->out_len -= (size_t)n;
                                progress = true;
                        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                                backend_conn_close(c);
                                return;
                        }
                }
                if (c->pod->draining && c->out_len == 0 && !c->shut) {
                        (void)shutdown(c->fd, SHUT_WR);
                        c->shut = true;
                        progress = true;
                }
                if (c->eof && c->out_len == 0) {
                        /* Everything read, everything answered: close() sends a FIN, not a RST. */
                        backend_conn_close(c);
                        return;
                }
                if (!progress)
                        break;
        }
        if (c->dead)
                return;
        uint32_t ev = (!c->eof && c->in_len < sizeof c->in ? EPOLLIN : 0) | (c->out_len ? EPOLLOUT : 0);
        if (ev != c->events && sim_dataplane_rewatch(c->dp, c->fd, ev, &c->h) >= 0)
                c->events = ev;
}

static void backend_conn_event(SimDpHandler *h, uint32_t events)
{
        BackendConn *c = container_of(h, BackendConn, h);
        if (c->dead)
                return;
        if (events & EPOLLERR) {
                backend_conn_close(c);
                return;
        }
        backend_conn_pump(c);
}

static void backend_accept_event(SimDpHandler *h, uint32_t events)
{
        DpPod *p = container_of(h, DpPod, lh);
        SimDataplane *dp = p->dp;
        for (int i = 0; i < DP_ACCEPT_BATCH && !p->dead && p->lfd >= 0; i++) {
                int fd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0)
                        return;
                BackendConn *c = calloc(1, sizeof *c);
                if (!c) {
                        close(fd);
                        continue;
                }
                *c = (BackendConn){
                    .h.fn = backend_conn_event, .dp = dp, .pod = p, .fd = fd, .events = EPOLLIN};
                if (sim_dataplane_watch(dp, fd, EPOLLIN, &c->h) < 0) {
                        close(fd);
                        free(c);
                        continue;
                }
                c->next = p->conns;
                if (p->conns)
                        p->conns->prev = c;
                p->conns = c;
                dp->counters.backend_accepted++;
        }
}

static int backend_listen(SimDataplane *dp, DpPod *p)
{
        int fd = listen_on(p->addr, p->port);
        if (fd < 0)
                return fd;
        int r = sim_dataplane_watch(dp, fd, EPOLLIN, &p->lh);
        if (r < 0) {
                close(fd);
                return r;
        }
        p->lfd = fd;
        return 0;
}

/* The pod is terminating: no new connections; the open ones end with a FIN after their answers. */
static void backend_drain(DpPod *p)
{
        /* Connections the kernel already completed are taken (and drained) rather than reset by the close.
         */
        if (p->lfd >= 0)
                backend_accept_event(&p->lh, EPOLLIN);
        if (p->lfd >= 0)
                close(p->lfd);
        p->lfd = -EBADF;
        p->draining = true;
        BackendConn *next;
        for (BackendConn *c = p->conns; c; c = next) {
                next = c->next;
                backend_conn_pump(c);
        }
}

static void backend_close_all(DpPod *p)
{
        if (p->lfd >= 0)
                close(p->lfd);
        p->lfd = -EBADF;
        for (unsigned i = 0; p->conns && i < UINT32_MAX; i++)
                backend_conn_close(p->conns);
}

/* --- reconciliation ------------------------------------------------------------------------ */

typedef struct SnapPod {
        char ns[64], name[256], uid[64], node[256];
        char workload[256], version[64];
        double error_rate;
        json_object *labels;
        bool running, ready, deleting, ztunnel;
} SnapPod;

typedef struct SnapNode {
        char name[256];
        bool unschedulable;
} SnapNode;

typedef struct Snapshot {
        SimDataplane *dp;
        SnapNode *nodes;
        size_t n_nodes, cap_nodes;
        SnapPod *pods;
        size_t n_pods, cap_pods;
        DpService *svcs;
        size_t n_svcs, cap_svcs;
        int error;
} Snapshot;

static bool copy_str(char *dst, size_t size, const char *src)
{
        if (!src || strlen(src) >= size)
                return false;
        memcpy(dst, src, strlen(src) + 1);
        return true;
}

static void *grow(void *array, size_t n, size_t *cap, size_t elem)
{
        if (n < *cap)
                return array;
        size_t c = *cap ? *cap * 2 : 32;
        void *a = reallocarray(array, c, elem);
        if (a)
                *cap = c;
        return a;
}

static int snap_node(json_object *obj, void *userdata)
{
        Snapshot *s = userdata;
        SnapNode *a = grow(s->nodes, s->n_nodes, &s->cap_nodes, sizeof *a);
        if (!a)
                return -ENOMEM;
        s->nodes = a;
        SnapNode *n = &a[s->n_nodes];
        if (!copy_str(n->name, sizeof n->name, mr_json_get_str(obj, "metadata", "name", NULL)))
                return 0;
        n->unschedulable = mr_json_get_bool(false, obj, "spec", "unschedulable", NULL);
        s->n_nodes++;
        return 0;
}

static int snap_pod(json_object *obj, void *userdata)
{
        Snapshot *s = userdata;
        SimDataplane *dp = s->dp;
        SnapPod *a = grow(s->pods, s->n_pods, &s->cap_pods, sizeof *a);
        if (!a)
                return -ENOMEM;
        s->pods = a;
        SnapPod *p = &a[s->n_pods];
        *p = (SnapPod){};
        const char *phase = mr_json_get_str(obj, "status", "phase", NULL);
        if (!copy_str(p->ns, sizeof p->ns, mr_json_get_str(obj, "metadata", "namespace", NULL)) ||
            !copy_str(p->name, sizeof p->name, mr_json_get_str(obj, "metadata", "name", NULL)) ||
            !copy_str(p->uid, sizeof p->uid, mr_json_get_str(obj, "metadata", "uid", NULL)) ||
            !copy_str(p->node, sizeof p->node, mr_json_get_str(obj, "spec", "nodeName", NULL)))
                return 0; /* unbound (or unrepresentable): no sockets for it */
        p->running = streq_ptr(phase, "Running");
        p->ready = p->running && sim_pod_is_ready(obj);
        p->deleting = sim_obj_is_deleting(obj);
        json_object *ref = sim_controller_ref(obj);
        p->ztunnel = streq(p->ns, dp->ztunnel_ns) &&
                     streq_ptr(mr_json_get_str(ref, "kind", NULL), "DaemonSet") &&
                     streq_ptr(mr_json_get_str(ref, "name", NULL), dp->ztunnel_name);
        json_object *labels = mr_json_get(obj, "metadata", "labels", NULL);
        dp_pod_workload(obj, p->workload, sizeof p->workload);
        dp_pod_version(labels, p->version, sizeof p->version);
        const char *rate = mr_json_get_str(obj, "metadata", "annotations", DP_ERROR_RATE_ANNOTATION, NULL);
        if (rate) {
                char *end;
                double v = strtod(rate, &end);
                p->error_rate =
                    end != rate && !*end && v > 0 && v <= 1 ? v : 0; /* anything else: no errors */
        }
        if (!p->ztunnel && labels) {
                p->labels = mr_json_copy(labels);
                if (!p->labels)
                        return -ENOMEM;
        }
        s->n_pods++;
        return 0;
}

static bool service_served(SimDataplane *dp, const char *ns, const char *name)
{
        if (!dp->services)
                return true;
        size_t nl = strlen(ns);
        for (char **i = dp->services; *i; i++)
                if (strneq(*i, ns, nl) && (*i)[nl] == '/' && streq(*i + nl + 1, name))
                        return true;
        return false;
}

static int snap_service(json_object *obj, void *userdata)
{
        Snapshot *s = userdata;
        DpService *a = grow(s->svcs, s->n_svcs, &s->cap_svcs, sizeof *a);
        if (!a)
                return -ENOMEM;
        s->svcs = a;
        DpService *svc = &a[s->n_svcs];
        *svc = (DpService){};
        json_object *sel = mr_json_get(obj, "spec", "selector", NULL);
        json_object *port0 = json_object_array_get_idx(mr_json_get(obj, "spec", "ports", NULL), 0);
        int64_t port = 0, target = 0;
        if (!copy_str(svc->ns, sizeof svc->ns, mr_json_get_str(obj, "metadata", "namespace", NULL)) ||
            !copy_str(svc->name, sizeof svc->name, mr_json_get_str(obj, "metadata", "name", NULL)) || !sel ||
            !json_object_is_type(sel, json_type_object) || json_object_object_length(sel) == 0)
                return 0;
        (void)mr_json_get_int(&port, port0, "port", NULL);
        json_object *t = mr_json_get(port0, "targetPort", NULL);
        if (t && json_object_is_type(t, json_type_int))
                target = json_object_get_int64(t);
        svc->port = (uint16_t)(target > 0 && target < 65536 ? target : port > 0 && port < 65536 ? port : 0);
        svc->served = svc->port != 0 && service_served(s->dp, svc->ns, svc->name);
        svc->selector = mr_json_copy(sel);
        if (!svc->selector)
                return -ENOMEM;
        s->n_svcs++;
        return 0;
}

static void snapshot_done(Snapshot *s)
{
        for (size_t i = 0; i < s->n_pods; i++)
                json_object_put(s->pods[i].labels);
        for (size_t i = 0; i < s->n_svcs; i++) {
                json_object_put(s->svcs[i].selector);
                dp_routing_clear(&s->svcs[i].routing);
        }
        free(s->nodes);
        free(s->pods);
        free(s->svcs);
}

/* Thread, store lock held: a DpNode (and its address) for every node; the annotation where missing. */
static int ensure_nodes(SimDataplane *dp, Snapshot *s)
{
        for (size_t i = 0; i < s->n_nodes; i++) {
                DpNode *n = find_node(dp, s->nodes[i].name);
                if (!n) {
                        if (dp->n_nodes >= SIM_DATAPLANE_MAX_NODES)
                                continue;
                        DpNode **a = reallocarray(dp->nodes, dp->n_nodes + 1, sizeof *a);
                        if (!a)
                                return -ENOMEM;
                        dp->nodes = a;
                        n = calloc(1, sizeof *n);
                        if (!n)
                                return -ENOMEM;
                        n->dp = dp;
                        memcpy(n->name, s->nodes[i].name, sizeof n->name);
                        n->index = (uint32_t)dp->n_nodes;
                        n->addr = node_addr(dp->net, n->index);
                        inet_ntop(AF_INET, &n->addr, n->addr_str, sizeof n->addr_str);
                        n->lfd_out = n->lfd_in = -EBADF;
                        n->lh_out.fn = proxy_out_event;
                        n->lh_in.fn = proxy_in_event;
                        if (dp_metrics_init(&n->metrics) < 0) {
                                free(n);
                                return -ENOMEM;
                        }
                        dp->nodes[dp->n_nodes++] = n;
                }
                if (!dp->annotate)
                        continue;
                json_object *cur = sim_store_get(dp->store, &SIM_NODES, NULL, n->name);
                if (!cur || streq_ptr(mr_json_get_str(cur, "metadata", "annotations",
                                                      SIM_DATAPLANE_ADDRESS_ANNOTATION, NULL),
                                      n->addr_str))
                        continue;
                json_object *o = mr_json_copy(cur);
                json_object *ann = o ? mr_json_ensure_object(o, "metadata", "annotations", NULL) : NULL;
                if (!ann || mr_json_set_str(ann, SIM_DATAPLANE_ADDRESS_ANNOTATION, n->addr_str) < 0) {
                        json_object_put(o);
                        return -ENOMEM;
                }
                (void)sim_store_update(dp->store, &SIM_NODES, o, 0, "kubesim-dataplane", NULL, NULL);
        }
        return 0;
}

static int take_snapshot(SimDataplane *dp, Snapshot *s)
{
        int r;
        sim_store_lock(dp->store);
        if ((r = sim_store_foreach(dp->store, &SIM_NODES, NULL, snap_node, s)) >= 0 &&
            (r = sim_store_foreach(dp->store, &SIM_PODS, NULL, snap_pod, s)) >= 0 &&
            (r = sim_store_foreach(dp->store, &SIM_SERVICES, NULL, snap_service, s)) >= 0)
                r = ensure_nodes(dp, s);
        for (size_t i = 0; r >= 0 && i < s->n_svcs; i++)
                if (s->svcs[i].served)
                        r = dp_routing_read(dp->store, s->svcs[i].ns, s->svcs[i].name, &s->svcs[i].routing);
        sim_store_unlock(dp->store);
        return r;
}

static void reconcile_nodes(SimDataplane *dp, Snapshot *s)
{
        bool *keep = calloc(dp->n_nodes ? dp->n_nodes : 1, sizeof *keep);
        char(*cand)[64] = calloc(dp->n_nodes ? dp->n_nodes : 1, sizeof *cand);
        if (!keep || !cand) {
                free(keep);
                free(cand);
                return; /* try again on the next pass */
        }
        for (size_t i = 0; i < dp->n_nodes; i++) {
                dp->nodes[i]->present = false;
                dp->nodes[i]->n_live = 0;
        }
        for (size_t i = 0; i < s->n_nodes; i++) {
                DpNode *n = find_node(dp, s->nodes[i].name);
                if (n) {
                        n->present = true;
                        n->unschedulable = s->nodes[i].unschedulable;
                }
        }
        for (size_t i = 0; i < s->n_pods; i++) {
                SnapPod *p = &s->pods[i];
                DpNode *n = p->ztunnel ? find_node(dp, p->node) : NULL;
                if (!n)
                        continue;
                if (n->n_live < ELEMENTSOF(n->live))
                        memcpy(n->live[n->n_live++], p->uid, sizeof p->uid);
                if (!p->ready || p->deleting)
                        continue;
                if (streq(p->uid, n->serving))
                        keep[n->index] = true;
                else if (!cand[n->index][0])
                        memcpy(cand[n->index], p->uid, sizeof p->uid);
        }
        for (size_t i = 0; i < dp->n_nodes; i++) {
                DpNode *n = dp->nodes[i];
                if (!n->present)
                        n->serving[0] = 0;
                else if (!keep[n->index])
                        memcpy(n->serving, cand[n->index], sizeof n->serving);
                if (n->present && !n->metrics_server)
                        (void)dp_metrics_server_start(dp, n->addr, dp->port_metrics, &n->metrics,
                                                      &n->metrics_server); /* retried on the next pass */
                if (n->serving[0] && n->lfd_out < 0)
                        (void)proxy_listen(dp, n); /* on failure (address taken), the next pass retries */
                else if (!n->serving[0] && n->lfd_out >= 0)
                        proxy_unlisten(n);
        }
        free(keep);
        free(cand);

        /* Connections whose ztunnel pod is gone are reset, as the pod's exit would. */
        Relay *next;
        for (Relay *r = dp->relays; r; r = next) {
                next = r->next;
                bool alive = false;
                for (unsigned k = 0; r->node->present && k < r->node->n_live && !alive; k++)
                        alive = streq(r->node->live[k], r->ztunnel_uid);
                if (!alive)
                        relay_free_later(r, true, true);
        }
}

static int alloc_pod_index(SimDataplane *dp, uint32_t *ret)
{
        for (uint32_t tries = 0; tries < SIM_DATAPLANE_MAX_PODS; tries++) {
                uint32_t j = dp->next_pod_index++ % SIM_DATAPLANE_MAX_PODS;
                bool used = false;
                for (size_t i = 0; i < dp->n_pods && !used; i++)
                        used = dp->pods[i]->index == j;
                if (!used) {
                        *ret = j;
                        return 0;
                }
        }
        return -ENOSPC;
}

static void pod_free_later(SimDataplane *dp, size_t i)
{
        DpPod *p = dp->pods[i];
        backend_close_all(p);
        p->dead = true;
        json_object_put(p->labels);
        p->labels = NULL;
        dp->pods[i] = dp->pods[--dp->n_pods];
        sim_dataplane_defer_free(dp, &p->deferred, p);
}

static void reconcile_pods(SimDataplane *dp, Snapshot *s)
{
        for (size_t i = 0; i < dp->n_pods; i++)
                dp->pods[i]->seen = false;
        for (size_t i = 0; i < s->n_pods; i++) {
                SnapPod *sp = &s->pods[i];
                if (sp->ztunnel)
                        continue;
                DpPod *p = find_pod(dp, sp->uid);
                if (!p) {
                        uint32_t index;
                        DpPod **a = reallocarray(dp->pods, dp->n_pods + 1, sizeof *a);
                        if (!a)
                                continue;
                        dp->pods = a;
                        if (alloc_pod_index(dp, &index) < 0 || !(p = calloc(1, sizeof *p)))
                                continue;
                        p->dp = dp;
                        memcpy(p->uid, sp->uid, sizeof p->uid);
                        p->index = index;
                        p->addr = pod_addr(dp->net, index);
                        p->lfd = -EBADF;
                        p->lh.fn = backend_accept_event;
                        dp->pods[dp->n_pods++] = p;
                }
                memcpy(p->ns, sp->ns, sizeof p->ns);
                memcpy(p->name, sp->name, sizeof p->name);
                memcpy(p->node, sp->node, sizeof p->node);
                p->running = sp->running;
                p->ready = sp->ready;
                p->deleting = sp->deleting;
                memcpy(p->workload, sp->workload, sizeof p->workload);
                memcpy(p->version, sp->version, sizeof p->version);
                p->error_rate = sp->error_rate;
                json_object_put(p->labels);
                p->labels = TAKE_PTR(sp->labels);
                p->seen = true;
        }

        /* Services: the new list, keeping each one's round-robin position. */
        for (size_t i = 0; i < s->n_svcs; i++)
                for (size_t k = 0; k < dp->n_svcs; k++)
                        if (streq(s->svcs[i].ns, dp->svcs[k].ns) &&
                            streq(s->svcs[i].name, dp->svcs[k].name)) {
                                s->svcs[i].rr = dp->svcs[k].rr;
                                dp_routing_carry(&s->svcs[i].routing, &dp->svcs[k].routing);
                        }
        for (size_t k = 0; k < dp->n_svcs; k++) {
                json_object_put(dp->svcs[k].selector);
                dp_routing_clear(&dp->svcs[k].routing);
        }
        free(dp->svcs);
        dp->svcs = TAKE_PTR(s->svcs);
        dp->n_svcs = s->n_svcs;
        s->n_svcs = s->cap_svcs = 0;

        for (size_t i = dp->n_pods; i > 0; i--) {
                DpPod *p = dp->pods[i - 1];
                if (!p->seen) {
                        pod_free_later(dp, i - 1);
                        continue;
                }
                uint16_t port = 0;
                for (size_t k = 0; k < dp->n_svcs && !port; k++)
                        if (dp->svcs[k].served && streq(dp->svcs[k].ns, p->ns) &&
                            selector_matches(dp->svcs[k].selector, p->labels))
                                port = dp->svcs[k].port;
                if (p->lfd < 0 && !p->draining)
                        p->port = port;
                if (p->deleting) {
                        if (!p->draining)
                                backend_drain(p);
                } else if (p->running && p->ready && p->port && p->lfd < 0 && !p->draining)
                        (void)backend_listen(dp, p); /* retried on the next pass */
        }
}

static void publish_stats(SimDataplane *dp)
{
        dp->counters.proxies_listening = dp->counters.backends_listening = 0;
        for (size_t i = 0; i < dp->n_nodes; i++)
                dp->counters.proxies_listening += dp->nodes[i]->lfd_out >= 0;
        for (size_t i = 0; i < dp->n_pods; i++)
                dp->counters.backends_listening += dp->pods[i]->lfd >= 0;
        pthread_mutex_lock(&dp->mu);
        dp->stats = dp->counters;
        pthread_mutex_unlock(&dp->mu);
}

static void resync(SimDataplane *dp)
{
        Snapshot s = {.dp = dp};
        if (take_snapshot(dp, &s) >= 0) {
                reconcile_nodes(dp, &s);
                reconcile_pods(dp, &s);
                for (SimDpHook *h = dp->hooks; h; h = h->next)
                        h->sync(h);
        } else {
                /* Out of memory mid-copy: look again on the next wake-up. */
                pthread_mutex_lock(&dp->mu);
                dp->dirty = true;
                pthread_mutex_unlock(&dp->mu);
        }
        snapshot_done(&s);
}

/* --- thread -------------------------------------------------------------------------------- */

static void observer(SimStore *s, const SimKind *k, SimEventType type, json_object *obj, json_object *old,
                     void *userdata)
{
        SimDataplane *dp = userdata;
        if (k != &SIM_PODS && k != &SIM_NODES && k != &SIM_SERVICES && k != &SIM_VIRTUALSERVICES &&
            k != &SIM_DESTINATIONRULES)
                return;
        pthread_mutex_lock(&dp->mu);
        bool was = dp->dirty;
        dp->dirty = true;
        pthread_mutex_unlock(&dp->mu);
        if (!was) {
                uint64_t one = 1;
                (void)!write(dp->evfd, &one, sizeof one);
        }
}

static void eventfd_event(SimDpHandler *h, uint32_t events)
{
        SimDataplane *dp = container_of(h, SimDataplane, ev_handler);
        uint64_t v;
        (void)!read(dp->evfd, &v, sizeof v);
}

static void teardown(SimDataplane *dp)
{
        for (unsigned i = 0; dp->hooks && i < UINT32_MAX; i++) {
                SimDpHook *h = dp->hooks;
                dp->hooks = h->next;
                h->next = NULL;
                h->detach(h);
        }
        for (unsigned i = 0; dp->relays && i < UINT32_MAX; i++)
                relay_free_later(dp->relays, true, false);
        for (size_t i = dp->n_pods; i > 0; i--)
                pod_free_later(dp, i - 1);
        for (size_t i = 0; i < dp->n_nodes; i++) {
                proxy_unlisten(dp->nodes[i]);
                dp_metrics_server_stop(dp->nodes[i]->metrics_server);
                dp_metrics_done(&dp->nodes[i]->metrics);
                free(dp->nodes[i]);
        }
        free(dp->nodes);
        dp->nodes = NULL;
        dp->n_nodes = 0;
        free_zombies(dp);
        publish_stats(dp);
}

static void *thread_main(void *userdata)
{
        SimDataplane *dp = userdata;
        struct epoll_event evs[DP_MAX_EVENTS];

        resync(dp);
        publish_stats(dp);
        for (;;) {
                pthread_mutex_lock(&dp->mu);
                bool dirty = dp->dirty, stop = dp->stopping;
                dp->dirty = false;
                DpCall *calls = TAKE_PTR(dp->calls);
                pthread_mutex_unlock(&dp->mu);

                if (dirty)
                        resync(dp);
                if (calls) {
                        for (DpCall *c = calls; c; c = c->next)
                                c->fn(dp, c->userdata);
                        pthread_mutex_lock(&dp->mu);
                        for (DpCall *c = calls, *next; c; c = next) {
                                next = c->next; /* c lives on its caller's stack until done is seen */
                                c->done = true;
                        }
                        pthread_cond_broadcast(&dp->cond);
                        pthread_mutex_unlock(&dp->mu);
                }
                free_zombies(dp);
                publish_stats(dp);
                if (stop)
                        break;

                int n = epoll_wait(dp->epfd, evs, DP_MAX_EVENTS, DP_IDLE_WAIT_MS);
                for (int i = 0; i < n; i++) {
                        SimDpHandler *h = evs[i].data.ptr;
                        h->fn(h, evs[i].events);
                }
                free_zombies(dp);
        }
        teardown(dp);
        return NULL;
}

int sim_dataplane_call(SimDataplane *dp, void (*fn)(SimDataplane *dp, void *userdata), void *userdata)
{
        DpCall call = {.fn = fn, .userdata = userdata};
        pthread_mutex_lock(&dp->mu);
        if (dp->stopping) {
                pthread_mutex_unlock(&dp->mu);
                return -ESHUTDOWN;
        }
        DpCall **tail = &dp->calls;
        for (unsigned i = 0; *tail && i < UINT32_MAX; i++)
                tail = &(*tail)->next;
        *tail = &call;
        pthread_mutex_unlock(&dp->mu);
        uint64_t one = 1;
        (void)!write(dp->evfd, &one, sizeof one);
        pthread_mutex_lock(&dp->mu);
        while (!call.done)
                pthread_cond_wait(&dp->cond, &dp->mu);
        pthread_mutex_unlock(&dp->mu);
        return 0;
}

static void noop(SimDataplane *dp, void *userdata)
{
}

/*
 * Reserves 127.<net>: an exclusive flock on a lock file per net, held by
 * the descriptor until it is closed (the process's exit included, so a
 * killed simulator frees its net). want 0 takes the first free one of
 * 1–254, searching from just above the net this process took last (from 1
 * the first time), so that a process's next data plane does not meet the
 * previous one's sockets lingering in TIME_WAIT. Lock files this user
 * cannot open (another user's) are skipped; when none can be opened at all
 * (a read-only /tmp), nothing is reserved and the net is used as asked (or
 * 1). Returns the descriptor (or -EBADF) and sets *ret_net; -EADDRINUSE
 * when the net asked for, or every one, is held.
 */
static int net_reserve(uint8_t want, uint8_t *ret_net)
{
        static _Atomic unsigned last_net; /* 0: none yet */
        unsigned first = want ? want : last_net % 254 + 1;
        unsigned tries = want ? 1 : 254;
        bool opened_any = false;

        *ret_net = want ? want : 1;
        for (unsigned i = 0; i < tries; i++) {
                unsigned net = (first - 1 + i) % 254 + 1;
                char path[sizeof SIM_DATAPLANE_LOCK_DIR + 64];
                snprintf(path, sizeof path, "%s/meshroll-dataplane-%u.lock", SIM_DATAPLANE_LOCK_DIR, net);
                int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
                if (fd < 0)
                        continue;
                opened_any = true;
                if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
                        *ret_net = (uint8_t)net;
                        last_net = net;
                        return fd;
                }
                close(fd);
        }
        return opened_any ? -EADDRINUSE : -EBADF;
}

int sim_dataplane_start(SimStore *store, const SimDataplaneOptions *opts, SimDataplane **ret)
{
        static const SimDataplaneOptions defaults = {};
        int r;

        if (!opts)
                opts = &defaults;
        if (opts->net == 255)
                return -EINVAL;
        SimDataplane *dp = calloc(1, sizeof *dp);
        if (!dp)
                return -ENOMEM;
        dp->store = store;
        dp->epfd = dp->evfd = -EBADF;
        dp->net_lock_fd = net_reserve(opts->net, &dp->net);
        if (dp->net_lock_fd == -EADDRINUSE) {
                free(dp);
                return -EADDRINUSE;
        }
        dp->port_out = opts->outbound_port ? opts->outbound_port : 15001;
        dp->port_in = opts->inbound_port ? opts->inbound_port : 15006;
        dp->port_metrics = opts->metrics_port ? opts->metrics_port : 15020;
        dp->annotate = !opts->no_annotate;
        dp->ev_handler.fn = eventfd_event;
        pthread_mutex_init(&dp->mu, NULL);
        pthread_cond_init(&dp->cond, NULL);
        dp->ztunnel_ns = strdup(opts->ztunnel_namespace ? opts->ztunnel_namespace : "istio-system");
        dp->ztunnel_name = strdup(opts->ztunnel_name ? opts->ztunnel_name : "ztunnel");
        if (!dp->ztunnel_ns || !dp->ztunnel_name) {
                r = -ENOMEM;
                goto fail;
        }
        if (opts->services) {
                size_t n = 0;
                while (opts->services[n])
                        n++;
                dp->services = calloc(n + 1, sizeof *dp->services);
                if (!dp->services) {
                        r = -ENOMEM;
                        goto fail;
                }
                for (size_t i = 0; i < n; i++)
                        if (!(dp->services[i] = strdup(opts->services[i]))) {
                                r = -ENOMEM;
                                goto fail;
                        }
        }
        dp->epfd = epoll_create1(EPOLL_CLOEXEC);
        dp->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (dp->epfd < 0 || dp->evfd < 0) {
                r = -errno;
                goto fail;
        }
        if ((r = sim_dataplane_watch(dp, dp->evfd, EPOLLIN, &dp->ev_handler)) < 0)
                goto fail;

        sim_store_lock(store);
        r = sim_store_observe(store, observer, dp);
        sim_store_unlock(store);
        if (r < 0)
                goto fail;
        dp->observing = true;
        r = -pthread_create(&dp->thread, NULL, thread_main, dp);
        if (r < 0)
                goto fail;
        dp->thread_started = true;
        (void)sim_dataplane_call(dp, noop, NULL); /* returns after the first pass */
        *ret = dp;
        return 0;
fail:
        sim_dataplane_stop(dp);
        return r;
}

SimDataplane *sim_dataplane_stop(SimDataplane *dp)
{
        if (!dp)
                return NULL;
        if (dp->observing) {
                sim_store_lock(dp->store);
                (void)sim_store_unobserve(dp->store, observer, dp);
                sim_store_unlock(dp->store);
        }
        pthread_mutex_lock(&dp->mu);
        dp->stopping = true;
        pthread_mutex_unlock(&dp->mu);
        if (dp->thread_started) {
                uint64_t one = 1;
                (void)!write(dp->evfd, &one, sizeof one);
                pthread_join(dp->thread, NULL);
        }
        for (size_t k = 0; k < dp->n_svcs; k++) {
                json_object_put(dp->svcs[k].selector);
                dp_routing_clear(&dp->svcs[k].routing);
        }
        free(dp->svcs);
        free(dp->pods);
        if (dp->epfd >= 0)
                close(dp->epfd);
        if (dp->evfd >= 0)
                close(dp->evfd);
        if (dp->net_lock_fd >= 0)
                close(dp->net_lock_fd); /* after every socket on the net is closed */
        strv_free(dp->services);
        free(dp->ztunnel_ns);
        free(dp->ztunnel_name);
        pthread_cond_destroy(&dp->cond);
        pthread_mutex_destroy(&dp->mu);
        free(dp);
        return NULL;
}

/* --- queries ------------------------------------------------------------------------------- */

uint8_t sim_dataplane_get_net(const SimDataplane *dp)
{
        return dp->net; /* set before the thread starts, never changed */
}

typedef struct NodeQuery {
        const char *name;
        SimDataplaneNode *ret;
        int r;
} NodeQuery;

static void node_query(SimDataplane *dp, void *userdata)
{
        NodeQuery *q = userdata;
        DpNode *n = find_node(dp, q->name);
        if (!n) {
                q->r = -ENOENT;
                return;
        }
        *q->ret = (SimDataplaneNode){
            .listening = n->lfd_out >= 0, .accepted = n->accepted, .reset = n->reset, .active = n->active};
        memcpy(q->ret->address, n->addr_str, sizeof n->addr_str);
        q->r = 0;
}

int sim_dataplane_get_node(SimDataplane *dp, const char *node, SimDataplaneNode *ret)
{
        SimDataplaneNode out;
        NodeQuery q = {.name = node, .ret = &out, .r = -ENOENT};
        int r = sim_dataplane_call(dp, node_query, &q);
        if (r < 0)
                return r;
        if (q.r >= 0)
                *ret = out;
        return q.r;
}

int sim_dataplane_get_stats(SimDataplane *dp, SimDataplaneStats *ret)
{
        pthread_mutex_lock(&dp->mu);
        *ret = dp->stats;
        pthread_mutex_unlock(&dp->mu);
        return 0;
}

int sim_dataplane_foreach_pod(SimDataplane *dp, int (*cb)(const SimDpPod *p, void *userdata), void *userdata)
{
        for (size_t i = 0; i < dp->n_pods; i++) {
                DpPod *p = dp->pods[i];
                DpNode *n = find_node(dp, p->node);
                SimDpPod v = {
                    .ns = p->ns,
                    .name = p->name,
                    .uid = p->uid,
                    .node = p->node,
                    .labels = p->labels,
                    .running = p->running,
                    .ready = p->ready,
                    .deleting = p->deleting,
                    .node_known = n && n->present,
                    .node_unschedulable = n && n->unschedulable,
                    .address = p->addr,
                    .node_address = n ? n->addr : (struct in_addr){},
                };
                int r = cb(&v, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

void sim_dataplane_add_hook(SimDataplane *dp, SimDpHook *h)
{
        h->next = dp->hooks;
        dp->hooks = h;
}

void sim_dataplane_remove_hook(SimDataplane *dp, SimDpHook *h)
{
        for (SimDpHook **i = &dp->hooks; *i; i = &(*i)->next)
                if (*i == h) {
                        *i = h->next;
                        h->next = NULL;
                        return;
                }
}
