/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loadgen.c — client workloads' traffic through the data plane (see
 * loadgen.h for what counts as what, docs/dataplane.md for the protocol).
 *
 * Design. The pool is a list of slots, each one long-lived connection of
 * the application: its home pod, its socket (a Conn, freed only after the
 * current batch of epoll events, see sim_dataplane_defer_free) and its one
 * current request. The pool grows to K × the client pods seen alive and
 * never shrinks: connections of an evicted pod move to the others, as an
 * application's connection pool would reconnect elsewhere. A periodic
 * timerfd drives request issue, timeouts and reconnects; socket events
 * drive the rest. After every data-plane reconciliation the hook refreshes
 * the list of client pods (with their own and their node's addresses),
 * which is all the load generator knows of the cluster.
 *
 * Requests are "GET <n>\n", answers "<code> <n>\n"; the first line of a
 * connection is "CONNECT <namespace>/<service>\n" for the node proxy.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include "loadgen.h"
#include "meshroll/selector.h"

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define LG_IN_MAX 256
#define LG_OUT_MAX 512
#define LG_ROUNDS 16

typedef enum SlotState {
        SLOT_IDLE, /* no connection; (re)connect at reconnect_at */
        SLOT_CONNECTING,
        SLOT_OPEN,
        SLOT_CLOSING, /* our FIN sent (home pod leaving), waiting for the peer's */
        SLOT_BROKEN,  /* reset while idle: the application's next request on it fails */
} SlotState;

typedef struct Slot Slot;

typedef struct Conn {
        SimDpDeferred deferred;
        SimDpHandler h;
        bool dead;
        Slot *slot;
        int fd;
        uint32_t events;
        char in[LG_IN_MAX];
        size_t in_len;
        char out[LG_OUT_MAX];
        size_t out_len;
} Conn;

struct Slot {
        SimLoadgen *lg;
        SlotState state;
        Conn *conn;
        char home[64]; /* uid of the client pod it belongs to, "" before the first connect */
        char home_node[256];
        usec_t next_request, reconnect_at, closing_since;
        bool pending,
            sent; /* the application's current request: issued; written on the current connection */
        uint64_t seq;
        usec_t pending_since;
        unsigned answered; /* on the current connection */
};

typedef struct Cand {
        char uid[64], node[256];
        bool running, ready, deleting, node_known, node_unschedulable;
        struct in_addr addr, node_addr;
} Cand;

struct SimLoadgen {
        SimDataplane *dp;
        SimDpHook hook;
        SimDpHandler timer_h;
        int tfd;
        bool attached;
        char *ns, *service;
        MrSelector *selector;
        unsigned per_pod, max_conns, per_conn;
        usec_t interval, timeout, reconnect_delay, tick;
        uint16_t port;

        Slot **slots;
        size_t n_slots;
        Cand *cands;
        size_t n_cands, cap_cands;
        uint64_t seq;
        SimLoadgenCounters c; /* thread-owned */

        pthread_mutex_t mu;
        SimLoadgenCounters published;
};

/* --- pods ---------------------------------------------------------------------------------- */

static Cand *find_cand(SimLoadgen *lg, const char *uid)
{
        for (size_t i = 0; i < lg->n_cands && uid[0]; i++)
                if (streq(lg->cands[i].uid, uid))
                        return &lg->cands[i];
        return NULL;
}

/* The home pod is still there for the connection (not deleted, not gone). */
static bool home_alive(SimLoadgen *lg, Slot *s)
{
        Cand *c = find_cand(lg, s->home);
        return c && c->running && !c->deleting && c->node_known;
}

static unsigned slots_of(SimLoadgen *lg, const char *uid)
{
        unsigned n = 0;
        for (size_t i = 0; i < lg->n_slots; i++)
                n += streq(lg->slots[i]->home, uid);
        return n;
}

/*
 * The pod a slot connects from: its home while Ready; else the Ready pod
 * with, in order, an uncordoned node, a node other than the old home's, the
 * fewest connections.
 */
static Cand *pick_home(SimLoadgen *lg, Slot *s)
{
        Cand *home = find_cand(lg, s->home), *best = NULL;
        if (home && home->ready && !home->deleting && home->node_known)
                return home;
        unsigned best_score = UINT32_MAX;
        for (size_t i = 0; i < lg->n_cands; i++) {
                Cand *c = &lg->cands[i];
                if (!c->ready || c->deleting || !c->node_known)
                        continue;
                unsigned n = MIN(slots_of(lg, c->uid), 0xffffu);
                unsigned score = (c->node_unschedulable ? 1u << 17 : 0) |
                                 (streq(c->node, s->home_node) ? 1u << 16 : 0) | n;
                if (score < best_score) {
                        best = c;
                        best_score = score;
                }
        }
        return best;
}

static int collect_cand(const SimDpPod *p, void *userdata)
{
        SimLoadgen *lg = userdata;
        if (!streq(p->ns, lg->ns) || !mr_selector_matches(lg->selector, p->labels) || strlen(p->uid) >= 64 ||
            strlen(p->node) >= 256)
                return 0;
        if (lg->n_cands >= lg->cap_cands) {
                size_t cap = lg->cap_cands ? lg->cap_cands * 2 : 16;
                Cand *a = reallocarray(lg->cands, cap, sizeof *a);
                if (!a)
                        return -ENOMEM;
                lg->cands = a;
                lg->cap_cands = cap;
        }
        Cand *c = &lg->cands[lg->n_cands++];
        *c = (Cand){.running = p->running,
                    .ready = p->ready,
                    .deleting = p->deleting,
                    .node_known = p->node_known,
                    .node_unschedulable = p->node_unschedulable,
                    .addr = p->address,
                    .node_addr = p->node_address};
        memcpy(c->uid, p->uid, strlen(p->uid) + 1);
        memcpy(c->node, p->node, strlen(p->node) + 1);
        return 0;
}

/* --- connections --------------------------------------------------------------------------- */

static void conn_close(SimLoadgen *lg, Slot *s)
{
        Conn *c = s->conn;
        if (!c)
                return;
        c->dead = true;
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -EBADF;
        s->conn = NULL;
        sim_dataplane_defer_free(lg->dp, &c->deferred, c);
}

static void slot_update_events(SimLoadgen *lg, Slot *s)
{
        Conn *c = s->conn;
        if (!c)
                return;
        uint32_t ev = s->state == SLOT_CONNECTING ? EPOLLOUT : EPOLLIN | (c->out_len ? EPOLLOUT : 0);
        if (ev != c->events && sim_dataplane_rewatch(lg->dp, c->fd, ev, &c->h) >= 0)
                c->events = ev;
}

static void slot_reset(SimLoadgen *lg, Slot *s, usec_t now);

/* Writes what is queued. false when the connection turned out reset. */
static bool slot_flush(SimLoadgen *lg, Slot *s, usec_t now)
{
        Conn *c = s->conn;
        if (!c || s->state == SLOT_CONNECTING)
                return true;
        while (c->out_len > 0) {
                ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        slot_reset(lg, s, now);
                        return false;
                }
                memmove(c->out, c->out + n, c->out_len - (size_t)n);
                c->out_len -= (size_t)n;
        }
        slot_update_events(lg, s);
        return true;
}

static bool queue(Conn *c, const char *fmt, ...) _printf_(2, 3);
static bool queue(Conn *c, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(c->out + c->out_len, sizeof c->out - c->out_len, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= sizeof c->out - c->out_len)
                return false;
        c->out_len += (size_t)n;
        return true;
}

/* Writes the current request on an open connection. */
static void slot_send_request(SimLoadgen *lg, Slot *s, usec_t now)
{
        if (s->state != SLOT_OPEN || !s->pending || s->sent || !home_alive(lg, s))
                return;
        if (!queue(s->conn, "GET %" PRIu64 "\n", s->seq))
                return;
        s->sent = true;
        (void)slot_flush(lg, s, now);
}

/* A reset: costs the request in flight, or else the next one. */
static void slot_reset(SimLoadgen *lg, Slot *s, usec_t now)
{
        bool was_closing = s->state == SLOT_CLOSING;
        conn_close(lg, s);
        lg->c.connections_reset++;
        if (lg->c.connections_active > 0)
                lg->c.connections_active--;
        if (s->pending && s->sent) {
                s->pending = s->sent = false;
                lg->c.requests_failed++;
                s->state = SLOT_IDLE;
                s->reconnect_at = now;
        } else if (was_closing || !home_alive(lg, s)) {
                s->state = SLOT_IDLE;
                s->reconnect_at = now;
        } else
                s->state = SLOT_BROKEN;
}

/* A graceful end (FIN both ways). A request without an answer goes out again on the next connection. */
static void slot_closed(SimLoadgen *lg, Slot *s, usec_t now)
{
        conn_close(lg, s);
        lg->c.connections_closed++;
        if (lg->c.connections_active > 0)
                lg->c.connections_active--;
        if (s->pending && s->sent) {
                s->sent = false;
                lg->c.requests_retried++;
        }
        s->state = SLOT_IDLE;
        s->reconnect_at = now;
}

/*
 * Home pod leaving, or the connection has carried requests_per_connection
 * answers: once no request is in flight, FIN and wait for the peer's.
 */
static void slot_maybe_leave(SimLoadgen *lg, Slot *s, usec_t now)
{
        bool recycle = lg->per_conn > 0 && s->answered >= lg->per_conn;
        if (s->state != SLOT_OPEN || (home_alive(lg, s) && !recycle) || (s->pending && s->sent) ||
            s->conn->out_len > 0)
                return;
        (void)shutdown(s->conn->fd, SHUT_WR);
        s->state = SLOT_CLOSING;
        s->closing_since = now;
}

static void slot_opened(SimLoadgen *lg, Slot *s, usec_t now)
{
        s->state = SLOT_OPEN;
        s->answered = 0;
        lg->c.connections_opened++;
        lg->c.connections_active++;
        if (!queue(s->conn, "CONNECT %s\n", lg->service)) {
                slot_reset(lg, s, now);
                return;
        }
        if (!slot_flush(lg, s, now))
                return;
        slot_send_request(lg, s, now);
}

/* Parses answers. false when the connection was reset. */
static bool slot_read_answers(SimLoadgen *lg, Slot *s, usec_t now)
{
        Conn *c = s->conn;
        for (unsigned i = 0; i < LG_IN_MAX; i++) {
                char *nl = memchr(c->in, '\n', c->in_len);
                if (!nl) {
                        if (c->in_len >= sizeof c->in) {
                                slot_reset(lg, s, now); /* not our protocol */
                                return false;
                        }
                        return true;
                }
                *nl = 0;
                char *end;
                unsigned long code = strtoul(c->in, &end, 10);
                uint64_t seq = *end == ' ' ? strtoull(end + 1, NULL, 10) : 0;
                if (s->pending && s->sent && seq == s->seq) {
                        s->pending = s->sent = false;
                        s->answered++;
                        if (code == 200)
                                lg->c.requests_ok++;
                        else {
                                lg->c.requests_failed++;
                                lg->c.requests_error++;
                        }
                }
                size_t l = (size_t)(nl - c->in) + 1;
                memmove(c->in, c->in + l, c->in_len - l);
                c->in_len -= l;
        }
        return true;
}

static void conn_event(SimDpHandler *h, uint32_t events)
{
        Conn *c = container_of(h, Conn, h);
        if (c->dead)
                return;
        Slot *s = c->slot;
        SimLoadgen *lg = s->lg;
        usec_t now = sim_dataplane_now();

        if (s->state == SLOT_CONNECTING) {
                int err = 0;
                socklen_t l = sizeof err;
                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
                        err = errno;
                if (err == 0 && !(events & (EPOLLERR | EPOLLHUP))) {
                        slot_opened(lg, s, now);
                        return;
                }
                if (err == 0 && !(events & EPOLLOUT))
                        return;
                conn_close(lg, s);
                lg->c.connect_failed++;
                s->state = SLOT_IDLE;
                s->reconnect_at = now + lg->reconnect_delay;
                return;
        }
        for (int round = 0; round < LG_ROUNDS && s->conn == c; round++) {
                if (c->in_len >= sizeof c->in)
                        break;
                ssize_t n = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
                if (n > 0) {
                        c->in_len += (size_t)n;
                        if (!slot_read_answers(lg, s, now))
                                return;
                        continue;
                }
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        break;
                if (n < 0 || c->in_len > 0) {
                        /* ECONNRESET, or EOF in the middle of an answer. */
                        slot_reset(lg, s, now);
                        return;
                }
                slot_closed(lg, s, now);
                return;
        }
        if (s->conn != c)
                return;
        if (!slot_flush(lg, s, now))
                return;
        slot_maybe_leave(lg, s, now);
        slot_send_request(lg, s, now);
}

static void slot_connect(SimLoadgen *lg, Slot *s, usec_t now)
{
        Cand *home = pick_home(lg, s);
        bool pending = false;
        if (!home) {
                s->reconnect_at = now + lg->reconnect_delay;
                return;
        }
        memcpy(s->home, home->uid, sizeof s->home);
        memcpy(s->home_node, home->node, sizeof s->home_node);
        int fd = sim_dataplane_connect(home->addr, home->node_addr, lg->port, &pending);
        if (fd < 0) {
                lg->c.connect_failed++;
                s->reconnect_at = now + lg->reconnect_delay;
                return;
        }
        Conn *c = calloc(1, sizeof *c);
        if (!c || sim_dataplane_watch(lg->dp, fd, pending ? EPOLLOUT : EPOLLIN, &c->h) < 0) {
                free(c);
                close(fd);
                s->reconnect_at = now + lg->reconnect_delay;
                return;
        }
        c->h.fn = conn_event;
        c->slot = s;
        c->fd = fd;
        c->events = pending ? EPOLLOUT : EPOLLIN;
        s->conn = c;
        s->state = SLOT_CONNECTING;
        if (!pending)
                slot_opened(lg, s, now);
}

/* --- the clock ----------------------------------------------------------------------------- */

static void slot_tick(SimLoadgen *lg, Slot *s, usec_t now)
{
        if (s->pending && now - s->pending_since > lg->timeout) {
                s->pending = s->sent = false;
                lg->c.requests_failed++;
                lg->c.requests_timed_out++;
        }
        if (s->state == SLOT_CLOSING && now - s->closing_since > lg->timeout) {
                slot_closed(lg, s, now); /* the peer never answered our FIN */
                s->reconnect_at = now;
        }
        if (s->state == SLOT_BROKEN && !home_alive(lg, s))
                s->state = SLOT_IDLE; /* the application is leaving: nobody uses the dead connection */
        if (s->state == SLOT_OPEN)
                slot_maybe_leave(lg, s, now);

        if (!s->pending && now >= s->next_request) {
                s->pending = true;
                s->sent = false;
                s->seq = ++lg->seq;
                s->pending_since = now;
                lg->c.requests_sent++;
                s->next_request += lg->interval;
                if (s->next_request <= now)
                        s->next_request = now + lg->interval;
        }
        if (s->pending && !s->sent && s->state == SLOT_BROKEN) {
                /* The application writes to the dead connection: this request fails, then it reconnects. */
                s->pending = false;
                lg->c.requests_failed++;
                s->state = SLOT_IDLE;
                s->reconnect_at = now;
        }
        if (s->state == SLOT_IDLE && now >= s->reconnect_at)
                slot_connect(lg, s, now);
        slot_send_request(lg, s, now);
}

static void publish(SimLoadgen *lg)
{
        lg->c.requests_in_flight = 0;
        for (size_t i = 0; i < lg->n_slots; i++)
                lg->c.requests_in_flight += lg->slots[i]->pending;
        lg->c.connections_wanted = (uint32_t)lg->n_slots;
        lg->c.client_pods = 0;
        for (size_t i = 0; i < lg->n_cands; i++)
                lg->c.client_pods += lg->cands[i].ready && !lg->cands[i].deleting;
        pthread_mutex_lock(&lg->mu);
        lg->published = lg->c;
        pthread_mutex_unlock(&lg->mu);
}

static void timer_event(SimDpHandler *h, uint32_t events)
{
        SimLoadgen *lg = container_of(h, SimLoadgen, timer_h);
        uint64_t expirations;
        (void)!read(lg->tfd, &expirations, sizeof expirations);
        usec_t now = sim_dataplane_now();
        for (size_t i = 0; i < lg->n_slots; i++)
                slot_tick(lg, lg->slots[i], now);
        publish(lg);
}

/* After each reconciliation: the client pods, and the pool grown to K per live pod. */
static void hook_sync(SimDpHook *h)
{
        SimLoadgen *lg = container_of(h, SimLoadgen, hook);
        usec_t now = sim_dataplane_now();
        lg->n_cands = 0;
        (void)sim_dataplane_foreach_pod(lg->dp, collect_cand, lg);
        size_t live = 0;
        for (size_t i = 0; i < lg->n_cands; i++)
                live += lg->cands[i].running && !lg->cands[i].deleting;
        size_t want = MIN(live * lg->per_pod, (size_t)lg->max_conns);
        for (size_t i = lg->n_slots; i < want; i++) {
                Slot **a = reallocarray(lg->slots, lg->n_slots + 1, sizeof *a);
                if (!a)
                        break;
                lg->slots = a;
                Slot *s = calloc(1, sizeof *s);
                if (!s)
                        break;
                s->lg = lg;
                s->state = SLOT_IDLE;
                s->reconnect_at = now;
                /* Spread the first requests over one interval. */
                s->next_request = now + lg->interval * ((i * 7919) % 1000) / 1000;
                lg->slots[lg->n_slots++] = s;
        }
        for (size_t i = 0; i < lg->n_slots; i++) {
                Slot *s = lg->slots[i];
                if (s->state == SLOT_CONNECTING && !home_alive(lg, s)) {
                        conn_close(lg, s);
                        s->state = SLOT_IDLE;
                        s->reconnect_at = now;
                } else if (s->state == SLOT_OPEN)
                        slot_maybe_leave(lg, s, now);
                if (s->state == SLOT_IDLE && now >= s->reconnect_at)
                        slot_connect(lg, s, now);
        }
        publish(lg);
}

static void close_all(SimLoadgen *lg)
{
        for (size_t i = 0; i < lg->n_slots; i++) {
                Slot *s = lg->slots[i];
                if (s->conn && s->state != SLOT_CONNECTING && lg->c.connections_active > 0)
                        lg->c.connections_active--;
                conn_close(lg, s);
                s->state = SLOT_IDLE;
        }
        if (lg->tfd >= 0)
                close(lg->tfd);
        lg->tfd = -EBADF;
        lg->attached = false;
        publish(lg);
}

static void hook_detach(SimDpHook *h)
{
        close_all(container_of(h, SimLoadgen, hook));
}

static void attach(SimDataplane *dp, void *userdata)
{
        SimLoadgen *lg = userdata;
        struct itimerspec its = {
            .it_interval = {.tv_sec = lg->tick / USEC_PER_SEC, .tv_nsec = (lg->tick % USEC_PER_SEC) * 1000},
        };
        its.it_value = its.it_interval;
        if (timerfd_settime(lg->tfd, 0, &its, NULL) < 0 ||
            sim_dataplane_watch(dp, lg->tfd, EPOLLIN, &lg->timer_h) < 0)
                return;
        sim_dataplane_add_hook(dp, &lg->hook);
        lg->attached = true;
        hook_sync(&lg->hook);
}

static void detach(SimDataplane *dp, void *userdata)
{
        SimLoadgen *lg = userdata;
        if (!lg->attached)
                return;
        sim_dataplane_remove_hook(dp, &lg->hook);
        close_all(lg);
}

/* --- API ----------------------------------------------------------------------------------- */

int sim_loadgen_start(SimDataplane *dp, const SimLoadgenOptions *opts, SimLoadgen **ret, MrError *err)
{
        int r;
        if (isempty(opts->client_namespace) || isempty(opts->client_selector))
                return mr_error_set(err, -MR_ECONFIG,
                                    "load generator: the client namespace and selector are required");
        if (isempty(opts->service) || !strchr(opts->service, '/'))
                return mr_error_set(err, -MR_ECONFIG,
                                    "load generator: service \"%s\": expected namespace/name",
                                    strempty(opts->service));
        if (opts->rate < 0 || !isfinite(opts->rate) || opts->rate > 100000)
                return mr_error_set(err, -MR_ECONFIG,
                                    "load generator: rate %g: expected 0 to 100000 per second", opts->rate);
        SimLoadgen *lg = calloc(1, sizeof *lg);
        if (!lg)
                return -ENOMEM;
        pthread_mutex_init(&lg->mu, NULL);
        lg->dp = dp;
        lg->tfd = -EBADF;
        lg->hook = (SimDpHook){.sync = hook_sync, .detach = hook_detach};
        lg->timer_h.fn = timer_event;
        lg->per_pod = opts->connections_per_pod ? opts->connections_per_pod : 4;
        lg->max_conns = opts->max_connections ? opts->max_connections : 10000;
        lg->per_conn = opts->requests_per_connection;
        double rate = opts->rate > 0 ? opts->rate : 10;
        lg->interval = MAX((usec_t)((double)USEC_PER_SEC / rate), (usec_t)1);
        lg->timeout = opts->request_timeout ? opts->request_timeout : 2 * USEC_PER_SEC;
        lg->reconnect_delay = opts->reconnect_delay ? opts->reconnect_delay : 50 * USEC_PER_MSEC;
        lg->tick = CLAMP(lg->interval / 4, USEC_PER_MSEC, 20 * USEC_PER_MSEC);
        lg->port = sim_dataplane_outbound_port(dp);
        lg->ns = strdup(opts->client_namespace);
        lg->service = strdup(opts->service);
        if (!lg->ns || !lg->service) {
                sim_loadgen_stop(lg);
                return -ENOMEM;
        }
        if ((r = mr_selector_parse(opts->client_selector, &lg->selector, err)) < 0) {
                sim_loadgen_stop(lg);
                mr_error_prefix(err, "load generator: client selector");
                return r == -ENOMEM ? r : -MR_ECONFIG;
        }
        lg->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (lg->tfd < 0) {
                r = -errno;
                sim_loadgen_stop(lg);
                return r;
        }
        r = sim_dataplane_call(dp, attach, lg);
        if (r >= 0 && !lg->attached)
                r = -ENOMEM;
        if (r < 0) {
                sim_loadgen_stop(lg);
                return mr_error_set(err, r, "load generator: cannot attach to the data plane: %s",
                                    mr_strerror(r));
        }
        *ret = lg;
        return 0;
}

void sim_loadgen_get_counters(SimLoadgen *lg, SimLoadgenCounters *ret)
{
        pthread_mutex_lock(&lg->mu);
        *ret = lg->published;
        pthread_mutex_unlock(&lg->mu);
}

typedef struct NodeCount {
        SimLoadgen *lg;
        const char *node;
        int n;
} NodeCount;

static void count_on_node(SimDataplane *dp, void *userdata)
{
        NodeCount *q = userdata;
        for (size_t i = 0; i < q->lg->n_slots; i++) {
                Slot *s = q->lg->slots[i];
                q->n += (s->state == SLOT_OPEN || s->state == SLOT_CLOSING) && streq(s->home_node, q->node);
        }
}

int sim_loadgen_connections_on_node(SimLoadgen *lg, const char *node)
{
        NodeCount q = {.lg = lg, .node = node};
        int r = sim_dataplane_call(lg->dp, count_on_node, &q);
        return r < 0 ? r : q.n;
}

SimLoadgen *sim_loadgen_stop(SimLoadgen *lg)
{
        if (!lg)
                return NULL;
        if (lg->attached)
                (void)sim_dataplane_call(lg->dp, detach, lg);
        if (lg->tfd >= 0)
                close(lg->tfd);
        for (size_t i = 0; i < lg->n_slots; i++)
                free(lg->slots[i]);
        free(lg->slots);
        free(lg->cands);
        mr_selector_free(lg->selector);
        free(lg->ns);
        free(lg->service);
        pthread_mutex_destroy(&lg->mu);
        free(lg);
        return NULL;
}
