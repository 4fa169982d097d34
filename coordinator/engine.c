/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine.c — see engine.h for the design, docs/rollout.md for the states.
 *
 * A tick is: GET the Rollout → parse spec and status → handle operator
 * requests (abort, rollback) → initialize on first sight → honour pause →
 * step the current group → PUT status when anything changed. A step returns
 * STAY (nothing to record; wait for the world), ADVANCE (status changed:
 * write it and tick again at once) or an error (logged once per distinct
 * message; the next tick retries). Blocking API calls inside a tick are
 * short; the client is built with few retries and a small backoff cap so a
 * sick API server delays a tick, not the leader election timer, by much.
 */
#include <stdio.h>

#include "meshroll/events.h"
#include "meshroll/json-util.h"
#include "meshroll/log.h"
#include "drain.h"
#include "engine.h"
#include "gate.h"
#include "groups.h"
#include "metric-gate.h"
#include "nodes.h"
#include "phase.h"
#include "podcache.h"
#include "preflight.h"
#include "spec.h"
#include "ztunnel.h"

#define ANNOTATION_ROLLBACK "meshroll.io/rollback"
#define ANNOTATION_ABORT "meshroll.io/abort"
#define ANNOTATION_ROLLBACK_PHASE "meshroll.io/rollback-phase"

enum { STAY = 0, ADVANCE = 1 };

typedef enum WakeKind {
        WAKE_ROLLOUT,
        WAKE_LEASES,
        _WAKE_MAX,
} WakeKind;

typedef struct WakeWatch {
        struct Engine *e;
        KubeWatch *watch;
        char *ns;             /* the namespace watched (leases) */
        const char *prefix;   /* only objects whose name starts so wake the engine, or NULL */
        bool synced;          /* past the initial list: events are changes */
        char *seen;           /* WAKE_ROLLOUT: generation and annotations last seen (its status writes are ours) */
} WakeWatch;

/* A burst of watch events (a group's pods changing together) makes one tick. */
#define WAKE_DEBOUNCE (20 * USEC_PER_MSEC)
/* With every waker synced, the ztunnel phase polls this many ticks apart (bounded). */
#define WAKE_POLL_FACTOR 5
#define WAKE_POLL_MAX (10 * USEC_PER_SEC)
#define PREFLIGHT_RECHECK (5 * USEC_PER_SEC) /* transient preflight errors: look again this often, */
#define PREFLIGHT_RECHECK_TICKS 5            /* or every this many ticks when that is sooner */

struct Engine {
        EngineOptions opts;
        char *rollout;
        sd_event *event;
        KubeClient *client;
        sd_event_source *timer;
        bool active;
        bool finished;
        bool fenced;      /* the last tick stopped at the fence (see on_timer) */
        usec_t adopted;   /* wall time this coordinator took the Rollout over (became active) */

        /* the drain of the current group, if one runs */
        Drain *drain;
        char *drain_group;
        bool drain_done;
        int drain_error;
        char *drain_message;

        char *last_error; /* to log a repeating failure once */

        /*
         * The wait for transient preflight errors before the first step. In
         * memory, as nothing in the Rollout records it before the start: a
         * coordinator taking over mid-wait waits afresh (at most one more
         * spec.preflight.waitTimeout). since 0: not waiting.
         */
        usec_t preflight_wait_since, preflight_next_check;

        /*
         * Wake-ups. Watches on what the ztunnel phase waits for — ztunnel's
         * pods (the pod cache below), the Rollout itself (an operator's
         * pause, resume, rollback), the agents' Leases (the gate) — tick
         * the engine soon after a change instead of at the next poll; a
         * step that waits for a time (a soak, minReadySeconds, a timeout)
         * sets `wake`. With both, the poll itself can be rare (poll_interval).
         */
        WakeWatch wakers[_WAKE_MAX];
        /*
         * ztunnel's pods, from a watch (podcache.h), started by the first
         * inspection with the DaemonSet's selector. pods_min_rv: the
         * resourceVersion of this engine's latest pod delete; the cache
         * answers only once it has caught up with it (see cached_pods).
         */
        PodCache *pods;
        char *pods_min_rv;
        char *ds_key, *ds_uid; /* "namespace/name" of the last DaemonSet inspected, and its uid */
        usec_t wake;          /* during a tick: look again within this long (USEC_INFINITY: no deadline) */
        bool ztunnel_current; /* the last tick stepped the ztunnel phase */
        bool wake_pods;       /* the current group waits for ztunnel pods (replacing, verifying, rolling back) */
        bool wake_leases;     /* the current group waits for its agents (gating) */
};

static usec_t now_wall(Engine *e)
{
        return mr_now_realtime(e->opts.clock);
}

static void schedule(Engine *e, usec_t delay)
{
        uint64_t now;
        if (!e->active || e->finished)
                return;
        (void)sd_event_now(e->event, CLOCK_MONOTONIC, &now);
        (void)sd_event_source_set_time(e->timer, now + delay);
        (void)sd_event_source_set_enabled(e->timer, SD_EVENT_ONESHOT);
}

/* ---- wake-ups ------------------------------------------------------------------------ */

/* Tick within WAKE_DEBOUNCE unless a tick is due sooner. */
static void wake_soon(Engine *e)
{
        uint64_t now, next;
        int enabled = SD_EVENT_OFF;

        if (!e->active || e->finished)
                return;
        (void)sd_event_now(e->event, CLOCK_MONOTONIC, &now);
        (void)sd_event_source_get_enabled(e->timer, &enabled);
        if (enabled != SD_EVENT_OFF && sd_event_source_get_time(e->timer, &next) >= 0 && next <= now + WAKE_DEBOUNCE)
                return;
        (void)sd_event_source_set_time(e->timer, now + WAKE_DEBOUNCE);
        (void)sd_event_source_set_enabled(e->timer, SD_EVENT_ONESHOT);
}

/* Whether a change of object is one the engine waits for now. */
static bool wanted(WakeWatch *ww, json_object *object)
{
        Engine *e = ww->e;

        if (ww == &e->wakers[WAKE_LEASES])
                return e->wake_leases &&
                       startswith(strempty(mr_json_get_str(object, "metadata", "name", NULL)), ww->prefix);
        /* The Rollout: an operator's change (spec → generation, or a request annotation), not our status writes. */
        int64_t generation = 0;
        _cleanup_free_ char *seen = NULL;
        (void)mr_json_get_int(&generation, object, "metadata", "generation", NULL);
        json_object *ann = mr_json_get(object, "metadata", "annotations", NULL);
        if (asprintf(&seen, "%lld %s", (long long)generation, ann ? json_object_to_json_string(ann) : "{}") < 0)
                return true;
        if (streq_ptr(seen, ww->seen))
                return false;
        free(ww->seen);
        ww->seen = TAKE_PTR(seen);
        return true;
}

static int on_wake_event(KubeWatch *w, KubeWatchEventType type, json_object *object, void *userdata)
{
        WakeWatch *ww = userdata;

        switch (type) {
        case KUBE_WATCH_RESET:
                ww->synced = false;
                break;
        case KUBE_WATCH_SYNCED:
                ww->synced = true;
                break;
        case KUBE_WATCH_ADDED:
        case KUBE_WATCH_MODIFIED:
        case KUBE_WATCH_DELETED:
                if (!ww->synced || !wanted(ww, object))
                        break;
                wake_soon(ww->e);
                break;
        default:
                break;
        }
        return 0;
}

/* A ztunnel pod changed (the cache is synced): tick soon if the step waits for ztunnel's pods. */
static void on_pods_changed(PodCache *pc, void *userdata)
{
        Engine *e = userdata;
        if (e->wake_pods)
                wake_soon(e);
}

static void wakers_stop(Engine *e)
{
        e->pods = pod_cache_free(e->pods);
        for (size_t i = 0; i < _WAKE_MAX; i++) {
                WakeWatch *ww = &e->wakers[i];
                ww->watch = kube_watch_stop(ww->watch);
                free(ww->ns);
                ww->ns = NULL;
                free(ww->seen);
                ww->seen = NULL;
                ww->synced = false;
        }
}

/* Starts (or, when its namespace changed, restarts) one waker. Best effort: polling covers a failure. */
static void waker_ensure(Engine *e, WakeKind k, const KubeResource *res, const char *ns, const char *name,
                         const char *prefix)
{
        WakeWatch *ww = &e->wakers[k];
        /* Lists are only counted, not read (on_wake_event): page by page, 5,000 agent Leases are never held. */
        KubeWatchOptions o = { .resource = res, .ns = ns, .name = name, .deliver_pages = true };

        if (ww->watch && streq_ptr(ww->ns, ns))
                return;
        ww->watch = kube_watch_stop(ww->watch);
        free(ww->ns);
        ww->ns = ns ? strdup(ns) : NULL;
        ww->e = e;
        ww->prefix = prefix;
        ww->synced = false;
        if ((ns && !ww->ns) || kube_watch_start(e->client, &o, on_wake_event, NULL, ww, &ww->watch) < 0)
                ww->watch = NULL;
}

static void wakers_ensure(Engine *e, const RolloutSpec *spec)
{
        if (!e->active || e->finished)
                return;
        waker_ensure(e, WAKE_ROLLOUT, &KUBE_ROLLOUTS, NULL, e->rollout, NULL);
        waker_ensure(e, WAKE_LEASES, &KUBE_LEASES, spec->agent_namespace, NULL, "meshroll-agent-");
}

/* How long to wait before the next tick when nothing woke the engine. */
static usec_t poll_interval(const Engine *e)
{
        bool synced = pod_cache_synced(e->pods);
        for (size_t i = 0; i < _WAKE_MAX; i++)
                synced = synced && e->wakers[i].watch && e->wakers[i].synced;
        usec_t poll = e->opts.tick;
        if (synced && e->ztunnel_current) {
                usec_t rare = MIN(poll * WAKE_POLL_FACTOR, WAKE_POLL_MAX);
                poll = MAX(poll, rare);
        }
        return e->wake < poll ? e->wake : poll;
}

/* 0 when this coordinator may write, -MR_ELOSTLEASE otherwise. */
static int fence(Engine *e)
{
        if (!e->active)
                return -MR_ELOSTLEASE;
        if (e->opts.elector && mr_leader_check(e->opts.elector) < 0)
                return -MR_ELOSTLEASE;
        return 0;
}

static void drain_stop(Engine *e)
{
        e->drain = drain_free(e->drain);
        free(e->drain_group);
        e->drain_group = NULL;
        free(e->drain_message);
        e->drain_message = NULL;
        e->drain_done = false;
        e->drain_error = 0;
}

/* Logs a failure once until a different one (or success) happens. */
static void report_error(Engine *e, int r, const char *message)
{
        if (streq_ptr(e->last_error, message))
                return;
        free(e->last_error);
        e->last_error = strdup(message);
        log_warning_errno(r, "Rollout %s: %s (retrying)", e->rollout, message);
}

/* ---- groups ---------------------------------------------------------------------- */

typedef struct Tick {
        Engine *e;
        RolloutSpec *spec;
        RolloutStatus *status;
        const char *uid;     /* the Rollout's metadata.uid */
        usec_t now;
        MrError err;
} Tick;

static int group_phase(const Tick *t, const GroupStatus *g, char *buf, size_t size)
{
        return snprintf(buf, size, "%s/%s", t->e->rollout, g->name);
}

/* The group's nodes that still exist (deleted ones are skipped from the moment they are seen gone). */
static void node_list(const GroupStatus *g, const char **buf, size_t cap)
{
        size_t n = 0;
        for (char **i = g->nodes; *i && n + 1 < cap; i++)
                if (!group_node_deleted(g, *i))
                        buf[n++] = *i;
        buf[n] = NULL;
}

static size_t live_nodes(const GroupStatus *g)
{
        size_t n = 0;
        for (char **i = g->nodes; *i; i++)
                n += !group_node_deleted(g, *i);
        return n;
}

/*
 * Time spent in a step that began at since. A coordinator measures only
 * from times it could have seen itself: since as recorded, but never
 * earlier than the moment this coordinator took the Rollout over, so a
 * successor whose clock runs ahead (or behind) of the one that wrote since
 * restarts the wait rather than judging it by another clock. Skew can only
 * lengthen a wait, never cut it short.
 */
static usec_t elapsed_since(const Tick *t, usec_t since)
{
        usec_t base = MAX(since, t->e->adopted);
        return t->now > base ? t->now - base : 0;
}

/* The step waits until `duration` after `since` (a soak, minReadySeconds, a timeout): look again then. */
static void wake_at_end(Tick *t, usec_t since, usec_t duration)
{
        usec_t el = elapsed_since(t, since);
        usec_t left = duration > el ? duration - el : 0;
        /* a little after the end, so the next tick is surely past it */
        if (left + USEC_PER_MSEC < t->e->wake)
                t->e->wake = left + USEC_PER_MSEC;
}

#define MAX_GROUP_NODES 4096

static bool strv_contains(char **l, const char *s)
{
        for (char **i = l; i && *i; i++)
                if (streq(*i, s))
                        return true;
        return false;
}

static int strv_add(char ***l, const char *s)
{
        size_t n = 0;
        while (*l && (*l)[n])
                n++;
        char **nl = reallocarray(*l, n + 2, sizeof(char *));
        if (!nl)
                return -ENOMEM;
        *l = nl;
        if (!(nl[n] = strdup(s)))
                return -ENOMEM;
        nl[n + 1] = NULL;
        return 0;
}

/* Records that node (of g) no longer exists: from now on the group goes on without it. */
static int mark_deleted(Tick *t, GroupStatus *g, const char *node)
{
        _cleanup_free_ char *name = strdup(node);
        if (!name || strv_add(&g->deleted_nodes, name) < 0)
                return -ENOMEM;
        log_warning_fields(LOG_FIELDS("rollout", t->e->rollout, "group", g->name, "node", name),
                           "Group %s: node %s was deleted; the group goes on without it", g->name, name);
        (void)group_set_message(g, "node %s was deleted during the rollout; the group goes on without it", name);
        return 0;
}

/*
 * A node that lags (no pod of the wanted revision) may simply be gone:
 * an autoscaler or an operator deleted it mid-group. 1 when it was and is
 * now recorded as deleted, 0 when it exists, negative on error.
 */
static int check_deleted(Tick *t, GroupStatus *g, const char *node)
{
        _cleanup_(json_object_putp) json_object *obj = NULL;
        _cleanup_free_ char *path = NULL;
        KubeStatus st;
        int r;

        if (!node || group_node_deleted(g, node))
                return 0;
        if ((r = kube_path(&KUBE_NODES, NULL, node, NULL, &path)) < 0)
                return r;
        r = kube_get(t->e->client, path, &obj, &st);
        if (r == -ENOENT)
                return mark_deleted(t, g, node) < 0 ? -ENOMEM : 1;
        if (r < 0)
                return mr_error_set(&t->err, r, "node %s: %s", node, st.message[0] ? st.message : mr_strerror(r));
        return 0;
}

static int step_cordon(Tick *t, GroupStatus *g)
{
        char phase[512];
        int r;

        group_phase(t, g, phase, sizeof(phase));
        for (char **n = g->nodes; *n; n++) {
                bool operator = false;
                if (group_node_deleted(g, *n))
                        continue;
                if ((r = fence(t->e)) < 0)
                        return r;
                r = node_cordon_and_mark(t->e->client, *n, t->e->rollout, phase, &operator, &t->err);
                if (r == -ENOENT) {
                        if ((r = mark_deleted(t, g, *n)) < 0)
                                return r;
                        continue;
                }
                if (r < 0)
                        return r;
                if (operator && !strv_contains(g->operator_cordoned, *n) && strv_add(&g->operator_cordoned, *n) < 0)
                        return -ENOMEM;
        }
        log_info_fields(LOG_FIELDS("rollout", t->e->rollout, "group", g->name), "Group %s: cordoned and marked",
                        g->name);
        group_set_state(g, GROUP_DRAINING, t->now);
        return ADVANCE;
}

static void on_drain_done(Drain *d, int error, const DrainProgress *p, const char *message, void *userdata)
{
        Engine *e = userdata;
        if (e->opts.metrics && p)
                (void)mr_metric_add(e->opts.metrics->evicted, (const char *const[]){ e->rollout }, p->gone);
        e->drain_done = true;
        e->drain_error = error;
        free(e->drain_message);
        e->drain_message = message ? strdup(message) : NULL;
        schedule(e, 0);
}

static int step_drain(Tick *t, GroupStatus *g)
{
        Engine *e = t->e;
        int r;

        if (e->drain && !streq_ptr(e->drain_group, g->name))
                drain_stop(e);
        if (!e->drain) {
                const char *nodes[MAX_GROUP_NODES];
                usec_t elapsed = elapsed_since(t, g->since);
                DrainOptions o = {
                        .timeout = t->spec->drain_timeout > elapsed ? t->spec->drain_timeout - elapsed : 1,
                        .concurrency = t->spec->drain_concurrency,
                        .grace_period_seconds = t->spec->grace_period_seconds,
                        .pod_selector = t->spec->pod_selector,
                        .delete_emptydir_data = t->spec->delete_emptydir_data,
                        .force = t->spec->force,
                };
                if ((r = fence(e)) < 0)
                        return r;
                node_list(g, nodes, ELEMENTSOF(nodes));
                r = drain_start(e->client, e->event, nodes, &o, NULL, on_drain_done, e, &e->drain);
                if (r < 0)
                        return mr_error_set(&t->err, r, "cannot start draining group %s: %s", g->name, mr_strerror(r));
                e->drain_group = strdup(g->name);
                if (!e->drain_group)
                        return -ENOMEM;
                log_info_fields(LOG_FIELDS("rollout", e->rollout, "group", g->name), "Group %s: draining %zu nodes",
                                g->name, live_nodes(g));
                return STAY;
        }
        if (!e->drain_done)
                return STAY;

        int error = e->drain_error;
        _cleanup_free_ char *message = TAKE_PTR(e->drain_message);
        drain_stop(e);
        if (error == 0) {
                log_info_fields(LOG_FIELDS("rollout", e->rollout, "group", g->name), "Group %s: drained", g->name);
                group_set_state(g, GROUP_GATING, t->now);
                return ADVANCE;
        }
        if (error == -ETIMEDOUT || error == -MR_ECONFIG) {
                /* The nodes stay cordoned; an operator decides (fix the PDB or the spec, then resume). */
                (void)group_set_message(g, "%s", strna(message));
                if (rollout_status_set_phase(t->status, ROLLOUT_PAUSED,
                                             error == -ETIMEDOUT ? "DrainTimeout" : "DrainRefused",
                                             "group %s: %s; paused", g->name, strna(message)) < 0)
                        return -ENOMEM;
                log_warning_fields(LOG_FIELDS("rollout", e->rollout, "group", g->name), "Group %s: %s; rollout paused",
                                   g->name, strna(message));
                return ADVANCE;
        }
        return mr_error_set(&t->err, error, "draining group %s failed: %s", g->name, strna(message));
}

/* After a drained group passes (or skips) the gate: replace ztunnel, or roll it back when that was asked. */
static void after_gate(Tick *t, GroupStatus *g)
{
        if (g->rollback_requested) {
                g->rollback_requested = false;
                group_set_state(g, GROUP_ROLLING_BACK, t->now);
                g->rollback_step = 0;
                return;
        }
        group_set_state(g, GROUP_REPLACING, t->now);
}

static int step_gate(Tick *t, GroupStatus *g)
{
        const char *nodes[MAX_GROUP_NODES];
        char phase[512];
        GateResult res;
        int r;

        group_phase(t, g, phase, sizeof(phase));
        node_list(g, nodes, ELEMENTSOF(nodes));
        r = gate_check(t->e->client, t->spec->agent_namespace, nodes, phase, t->spec->gate_threshold, t->now, &res,
                       &t->err);
        if (r < 0)
                return r;
        if (r > 0) {
                g->connections = res.long_lived;
                log_info_fields(LOG_FIELDS("rollout", t->e->rollout, "group", g->name),
                                "Group %s: connection gate passed (%lld long-lived)", g->name, (long long)res.long_lived);
                after_gate(t, g);
                return ADVANCE;
        }
        if (elapsed_since(t, g->since) < t->spec->gate_timeout) {
                wake_at_end(t, g->since, t->spec->gate_timeout);
                /* Record what blocks, once it changes, so `meshroll status` says why it waits. */
                _cleanup_free_ char *m = NULL;
                if (asprintf(&m, "waiting for connections to go: %s", res.first_blocker) < 0)
                        return -ENOMEM;
                if (streq_ptr(g->message, m))
                        return STAY;
                free(g->message);
                g->message = TAKE_PTR(m);
                return ADVANCE;
        }

        switch (t->spec->gate_action) {
        case GATE_PROCEED:
                g->connections = res.long_lived;
                after_gate(t, g);
                (void)group_set_message(g, "gate timed out (%s); proceeded", res.first_blocker);
                log_warning_fields(LOG_FIELDS("rollout", t->e->rollout, "group", g->name),
                                   "Group %s: connection gate timed out (%s); proceeding as configured", g->name,
                                   res.first_blocker);
                return ADVANCE;
        case GATE_ROLLBACK:
                /* Nothing was replaced yet: undoing the group is uncordoning it. */
                group_set_state(g, GROUP_ROLLING_BACK, t->now);
                g->rollback_step = 3;
                (void)group_set_message(g, "gate timed out (%s); rolling back", res.first_blocker);
                return ADVANCE;
        case GATE_PAUSE:
        default:
                (void)group_set_message(g, "gate timed out: %s", res.first_blocker);
                if (rollout_status_set_phase(t->status, ROLLOUT_PAUSED, "GateTimeout",
                                             "group %s: connection gate timed out (%s); paused", g->name,
                                             res.first_blocker) < 0)
                        return -ENOMEM;
                log_warning_fields(LOG_FIELDS("rollout", t->e->rollout, "group", g->name),
                                   "Group %s: connection gate timed out (%s); rollout paused", g->name,
                                   res.first_blocker);
                return ADVANCE;
        }
}

/* Counts nodes of g in state want against hash; 0 on success with *ret_all set when all match. */
static int nodes_in(const ZtunnelInfo *z, const GroupStatus *g, const char *hash, bool ready, const char **ret_lagging)
{
        int n = 0;
        *ret_lagging = NULL;
        for (char **node = g->nodes; *node; node++) {
                ZtunnelNodeState s = ztunnel_node_state(z, *node, hash);
                if (group_node_deleted(g, *node))
                        n++;
                else if (s == ZTUNNEL_NODE_READY || (!ready && s == ZTUNNEL_NODE_STARTING))
                        n++;
                else if (!*ret_lagging)
                        *ret_lagging = *node;
        }
        return n;
}

/*
 * The pod source of every inspection (ztunnel_inspect_full): the watch
 * cache when it may answer, else 0 and the inspection lists the pods.
 *
 * Why acting on the cache is safe. The cache lags the server by the time
 * an event takes to arrive; what must never happen is a step judging from
 * a view older than this engine's own writes — e.g. verifying a rollback
 * against the previous revision's pods that the forward replacement
 * already deleted, or replacing a node twice. So every pod delete records
 * the resourceVersion the server returned (pods_min_rv), and the cache
 * answers only once it has caught up with it (pod_cache_fill): a view at
 * or past that version shows each deleted pod terminating or gone, and any
 * pod of the wanted revision in it was created after. Otherwise a cache
 * view is a list taken a few milliseconds earlier; every step already
 * allows for a list being stale by the time it acts (deletes carry a UID
 * precondition, readiness must hold for minReadySeconds over several
 * ticks), so nothing is decided on the cache that a list could not have
 * shown. Until the cache is synced (starting, relisting after a dropped
 * watch or a 410) or when it failed, the inspection lists, as before.
 *
 * The cache is (re)made here when the DaemonSet's selector or namespace
 * changed, or it failed; never inside a watch callback, so stopping the
 * old watch is allowed.
 */
static int cached_pods(ZtunnelInfo *z, void *userdata, MrError *err)
{
        Engine *e = userdata;
        int r;

        if (e->pods && (pod_cache_failed(e->pods) || !pod_cache_is_for(e->pods, z->namespace, z->selector)))
                e->pods = pod_cache_free(e->pods);
        if (!e->pods) {
                if (!e->active || e->finished)
                        return 0;
                PodCacheOptions o = {
                        .namespace = z->namespace,
                        .label_selector = z->selector,
                        .on_change = on_pods_changed,
                        .userdata = e,
                };
                r = pod_cache_new(&o, &e->pods);
                if (r >= 0 && (r = pod_cache_start(e->pods, e->client)) < 0)
                        e->pods = pod_cache_free(e->pods);
                if (r == -ENOMEM)
                        return mr_error_set(err, r, "out of memory");
                return 0; /* best effort: listing covers a cache that could not start */
        }
        r = pod_cache_fill(e->pods, e->pods_min_rv, z);
        if (r < 0)
                return mr_error_set(err, r, "reading ztunnel's pods from the cache: %s", mr_strerror(r));
        return r;
}

static int inspect(Tick *t, ZtunnelInfo **ret)
{
        Engine *e = t->e;
        _cleanup_free_ char *key = NULL, *uid = NULL;
        int r = ztunnel_inspect_full(e->client, t->spec->target_namespace, t->spec->target_daemonset, cached_pods, e,
                                     ret, &t->err);
        if (r < 0)
                return r;
        if (asprintf(&key, "%s/%s", t->spec->target_namespace, t->spec->target_daemonset) < 0 ||
            !(uid = strdup((*ret)->uid)))
                return -ENOMEM;
        free(e->ds_key);
        e->ds_key = TAKE_PTR(key);
        free(e->ds_uid);
        e->ds_uid = TAKE_PTR(uid);
        return ztunnel_require_on_delete(*ret, &t->err);
}

/*
 * The pods alone, for the steps that judge only pods against a revision
 * the status already records (Pending, Verifying): from the cache, without
 * reading the DaemonSet and its revisions again, when an earlier inspection
 * in this engine named the DaemonSet's uid (the owner the cache filters
 * by) and the cache can answer (cached_pods' rules). z then holds the
 * namespace, name, uid and pods only. Otherwise a full inspection. A
 * DaemonSet deleted and created again meanwhile has another uid: its pods
 * are not counted, so the step waits, and Replacing's full inspection
 * (which pauses on a changed template) sees the new one.
 */
static int inspect_pods(Tick *t, ZtunnelInfo **ret)
{
        Engine *e = t->e;
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = NULL;
        _cleanup_free_ char *key = NULL;
        int r;

        if (asprintf(&key, "%s/%s", t->spec->target_namespace, t->spec->target_daemonset) < 0)
                return -ENOMEM;
        if (!e->ds_uid || !streq_ptr(e->ds_key, key) || !pod_cache_synced(e->pods))
                return inspect(t, ret);
        if (!(z = calloc(1, sizeof(ZtunnelInfo))) || !(z->namespace = strdup(t->spec->target_namespace)) ||
            !(z->name = strdup(t->spec->target_daemonset)) || !(z->uid = strdup(e->ds_uid)))
                return -ENOMEM;
        r = pod_cache_fill(e->pods, e->pods_min_rv, z);
        if (r < 0)
                return mr_error_set(&t->err, r, "reading ztunnel's pods from the cache: %s", mr_strerror(r));
        if (r == 0)
                return inspect(t, ret);
        z->pods_cached = true;
        *ret = TAKE_PTR(z);
        return 0;
}

/* ztunnel_replace, recording the resourceVersion of its deletes for cached_pods. */
static int replace(Tick *t, const ZtunnelInfo *z, const char *const *nodes, const char *hash)
{
        _cleanup_free_ char *rv = NULL;
        int r = ztunnel_replace_full(t->e->client, z, nodes, hash, &rv, &t->err);
        if (rv) {
                free(t->e->pods_min_rv);
                t->e->pods_min_rv = TAKE_PTR(rv);
        }
        return r;
}

static int step_replace(Tick *t, GroupStatus *g)
{
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = NULL;
        const char *nodes[MAX_GROUP_NODES], *lagging;
        int r;

        if ((r = inspect(t, &z)) < 0)
                return r;
        if (!streq_ptr(z->update_hash, t->status->target.hash)) {
                if (rollout_status_set_phase(t->status, ROLLOUT_PAUSED, "TargetChanged",
                                             "the DaemonSet's template changed during the rollout (now revision %s, "
                                             "rolling out %s); paused",
                                             strna(z->update_hash), t->status->target.hash) < 0)
                        return -ENOMEM;
                return ADVANCE;
        }
        if ((r = fence(t->e)) < 0)
                return r;
        node_list(g, nodes, ELEMENTSOF(nodes));
        r = replace(t, z, nodes, t->status->target.hash);
        if (r < 0)
                return r;
        if (r > 0) {
                log_info_fields(LOG_FIELDS("rollout", t->e->rollout, "group", g->name),
                                "Group %s: replacing ztunnel on %d nodes", g->name, r);
                return STAY; /* next tick sees the replacements */
        }
        if (nodes_in(z, g, t->status->target.hash, false, &lagging) < (int)g->n_nodes) {
                r = check_deleted(t, g, lagging);
                return r < 0 ? r : r > 0 ? ADVANCE : STAY;
        }
        group_set_state(g, GROUP_VERIFYING, t->now);
        return ADVANCE;
}

/*
 * Shared by Verifying and the rollback's wait: 1 once every node runs hash
 * Ready for min_ready (tracking g->ready_since), 0 while waiting (ADVANCE
 * via *changed when ready_since moved), -ETIMEDOUT past timeout.
 */
static int wait_ready(Tick *t, GroupStatus *g, const ZtunnelInfo *z, const char *hash, usec_t min_ready,
                      usec_t timeout, bool *changed, const char **ret_lagging)
{
        int ready = nodes_in(z, g, hash, true, ret_lagging);
        if (ready < (int)g->n_nodes) {
                if (g->ready_since) {
                        g->ready_since = 0;
                        *changed = true;
                }
                wake_at_end(t, g->since, timeout + USEC_PER_MSEC);
                return elapsed_since(t, g->since) > timeout ? -ETIMEDOUT : 0;
        }
        if (!g->ready_since) {
                g->ready_since = t->now;
                *changed = true;
        }
        wake_at_end(t, g->ready_since, min_ready);
        return elapsed_since(t, g->ready_since) >= min_ready ? 1 : 0;
}

static int step_verify(Tick *t, GroupStatus *g)
{
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = NULL;
        const char *lagging = NULL;
        bool changed = false;
        int r;

        if ((r = inspect_pods(t, &z)) < 0)
                return r;
        r = wait_ready(t, g, z, t->status->target.hash, t->spec->min_ready, t->spec->readiness_timeout, &changed,
                       &lagging);
        if (r <= 0 && lagging) {
                int d = check_deleted(t, g, lagging);
                if (d != 0)
                        return d < 0 ? d : ADVANCE;
        }
        if (r == -ETIMEDOUT) {
                log_warning_fields(LOG_FIELDS("rollout", t->e->rollout, "group", g->name),
                                   "Group %s: ztunnel on %s not Ready in time; rolling the group back", g->name,
                                   strna(lagging));
                group_set_state(g, GROUP_ROLLING_BACK, t->now);
                g->rollback_step = 0;
                (void)group_set_message(g, "ztunnel on %s not Ready after %llus; rolling the group back",
                                        strna(lagging), (unsigned long long)(t->spec->readiness_timeout / USEC_PER_SEC));
                return ADVANCE;
        }
        if (r == 0)
                return changed ? ADVANCE : STAY;
        log_info_fields(LOG_FIELDS("rollout", t->e->rollout, "group", g->name),
                        "Group %s: new ztunnel Ready on every node", g->name);
        group_set_state(g, GROUP_UNCORDONING, t->now);
        return ADVANCE;
}

static int uncordon_all(Tick *t, GroupStatus *g)
{
        int r;
        for (char **n = g->nodes; *n; n++) {
                if (group_node_deleted(g, *n))
                        continue;
                if ((r = fence(t->e)) < 0)
                        return r;
                r = node_uncordon_and_unmark(t->e->client, *n, t->e->rollout, &t->err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int step_uncordon(Tick *t, GroupStatus *g)
{
        int r = uncordon_all(t, g);
        if (r < 0)
                return r;
        group_set_state(g, GROUP_SOAKING, t->now);
        return ADVANCE;
}

static void phase_ctx(Tick *t, PhaseCtx *ctx);

/* The soak: the group carries traffic on the new ztunnel for spec.soak while spec.gates are checked. */
static int step_soak(Tick *t, GroupStatus *g)
{
        PhaseStatus *ps = rollout_status_phase(t->status, PHASE_ZTUNNEL);
        bool changed = false;
        PhaseCtx ctx;
        int r = 1;

        phase_ctx(t, &ctx);
        if (ps)
                r = phase_gates_check(&ctx, t->spec->gates[PHASE_ZTUNNEL], ps, g->since, &changed);
        if (r == -MR_EGATE) {
                /* Its nodes carry traffic again: drain them before touching ztunnel. */
                log_warning_fields(LOG_FIELDS("rollout", t->e->rollout, "group", g->name),
                                   "Group %s: %s; rolling the group back", g->name, t->err.message);
                _cleanup_free_ char *why = strdup(t->err.message);
                g->rollback_requested = true;
                group_set_state(g, GROUP_CORDONING, t->now);
                (void)group_set_message(g, "%s; rolling the group back (draining first)", strna(why));
                t->err = (MrError){};
                return ADVANCE;
        }
        if (r < 0)
                return r;
        if (r == 0 || elapsed_since(t, g->since) < t->spec->soak) {
                wake_at_end(t, g->since, t->spec->soak);
                for (size_t i = 0; t->spec->gates[PHASE_ZTUNNEL] && i < t->spec->gates[PHASE_ZTUNNEL]->n_gates; i++)
                        t->e->wake = MIN(t->e->wake, t->spec->gates[PHASE_ZTUNNEL]->gates[i].interval);
                return changed ? ADVANCE : STAY;
        }
        log_info_fields(LOG_FIELDS("rollout", t->e->rollout, "group", g->name), "Group %s: done", g->name);
        group_set_state(g, GROUP_DONE, t->now);
        return ADVANCE;
}

/*
 * Rollback (docs/rollout.md): 0 template → previous revision; 1 replace the
 * group's pods and wait for them Ready; 2 template → target again (other
 * nodes are untouched under OnDelete); 3 uncordon, then RolledBack and pause.
 */
static int step_rollback(Tick *t, GroupStatus *g)
{
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = NULL;
        const char *nodes[MAX_GROUP_NODES], *lagging = NULL;
        bool changed = false;
        int r;

        if (g->rollback_step < 3) {
                if (!t->status->previous.hash) {
                        if (rollout_status_set_phase(t->status, ROLLOUT_FAILED, "NoPreviousRevision",
                                                     "group %s: cannot roll back: the DaemonSet has no previous "
                                                     "revision",
                                                     g->name) < 0)
                                return -ENOMEM;
                        return ADVANCE;
                }
                if ((r = inspect(t, &z)) < 0)
                        return r;
        }
        switch (g->rollback_step) {
        case 0:
                if ((r = fence(t->e)) < 0)
                        return r;
                r = ztunnel_set_template(t->e->client, z, t->status->previous.name, &t->err);
                if (r < 0)
                        return r;
                g->rollback_step = 1;
                g->ready_since = 0;
                return ADVANCE;
        case 1:
                if ((r = fence(t->e)) < 0)
                        return r;
                node_list(g, nodes, ELEMENTSOF(nodes));
                r = replace(t, z, nodes, t->status->previous.hash);
                if (r != 0)
                        return r < 0 ? r : STAY;
                r = wait_ready(t, g, z, t->status->previous.hash, 0, t->spec->readiness_timeout * 2, &changed,
                               &lagging);
                if (r <= 0 && lagging) {
                        int d = check_deleted(t, g, lagging);
                        if (d != 0)
                                return d < 0 ? d : ADVANCE;
                }
                if (r == -ETIMEDOUT) {
                        if (rollout_status_set_phase(t->status, ROLLOUT_FAILED, "RollbackFailed",
                                                     "group %s: the previous ztunnel did not become Ready on %s",
                                                     g->name, strna(lagging)) < 0)
                                return -ENOMEM;
                        return ADVANCE;
                }
                if (r == 0)
                        return changed ? ADVANCE : STAY;
                g->rollback_step = 2;
                return ADVANCE;
        case 2:
                if ((r = fence(t->e)) < 0)
                        return r;
                r = ztunnel_set_template(t->e->client, z, t->status->target.name, &t->err);
                if (r < 0)
                        return r;
                g->rollback_step = 3;
                return ADVANCE;
        default:
                r = uncordon_all(t, g);
                if (r < 0)
                        return r;
                _cleanup_free_ char *why = TAKE_PTR(g->message); /* the reason the rollback started */
                group_set_state(g, GROUP_ROLLED_BACK, t->now);
                g->rollback_step = 0;
                (void)group_set_message(g, "%s", strempty(why));
                log_warning_fields(LOG_FIELDS("rollout", t->e->rollout, "group", g->name),
                                   "Group %s: rolled back; rollout paused", g->name);
                if (rollout_status_set_phase(t->status, ROLLOUT_PAUSED, "RolledBack", "group %s rolled back: %s",
                                             g->name, strempty(why)) < 0)
                        return -ENOMEM;
                return ADVANCE;
        }
}

static int step_pending(Tick *t, GroupStatus *g)
{
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = NULL;
        const char *lagging;
        int r;

        /* A group already running the target everywhere has nothing to drain. */
        if ((r = inspect_pods(t, &z)) < 0)
                return r;
        if (nodes_in(z, g, t->status->target.hash, true, &lagging) == (int)g->n_nodes) {
                group_set_state(g, GROUP_DONE, t->now);
                (void)group_set_message(g, "already on revision %s", t->status->target.hash);
                return ADVANCE;
        }
        log_info_fields(LOG_FIELDS("rollout", t->e->rollout, "group", g->name), "Group %s: starting (%zu nodes)",
                        g->name, g->n_nodes);
        group_set_state(g, GROUP_CORDONING, t->now);
        return ADVANCE;
}

static int step_group(Tick *t, GroupStatus *g)
{
        switch (g->state) {
        case GROUP_PENDING:
                return step_pending(t, g);
        case GROUP_CORDONING:
                return step_cordon(t, g);
        case GROUP_DRAINING:
                return step_drain(t, g);
        case GROUP_GATING:
                return step_gate(t, g);
        case GROUP_REPLACING:
                return step_replace(t, g);
        case GROUP_VERIFYING:
                return step_verify(t, g);
        case GROUP_UNCORDONING:
                return step_uncordon(t, g);
        case GROUP_SOAKING:
                return step_soak(t, g);
        case GROUP_ROLLING_BACK:
                return step_rollback(t, g);
        default:
                return STAY;
        }
}

/* ---- the rollout ------------------------------------------------------------------ */

static int initialize(Tick *t)
{
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = NULL;
        _cleanup_(group_plan_freep) GroupPlan *plan = NULL;
        _cleanup_(json_object_putp) json_object *nodes = NULL, *pods = NULL;
        int r;

        if ((r = inspect(t, &z)) < 0)
                return r;
        /* Only the fields the plan reads, page by page: at 5,000 nodes whole objects cost hundreds of MiB. */
        r = groups_list_inputs(t->e->client, t->spec, &nodes, &pods, &t->err);
        if (r < 0)
                return r;
        r = groups_compute(t->spec, nodes, pods, &plan, &t->err);
        if (r < 0)
                return r;

        RolloutStatus *s = t->status;
        if (s->n_groups == 0)
                free(s->groups); /* an empty list read from a status written before this (e.g. "groups": []) */
        s->groups = calloc(plan->n_groups, sizeof(GroupStatus));
        if (!s->groups)
                return -ENOMEM;
        for (size_t i = 0; i < plan->n_groups; i++) {
                GroupStatus *g = &s->groups[i];
                *g = (GroupStatus){ .state = GROUP_PENDING, .connections = -1 };
                s->n_groups = i + 1;
                g->name = strdup(plan->groups[i].name);
                g->nodes = calloc(plan->groups[i].n_nodes + 1, sizeof(char *));
                if (!g->name || !g->nodes)
                        return -ENOMEM;
                for (size_t j = 0; j < plan->groups[i].n_nodes; j++)
                        if (!(g->nodes[j] = strdup(plan->groups[i].nodes[j])))
                                return -ENOMEM;
                g->n_nodes = plan->groups[i].n_nodes;
        }
        if (!(s->target.hash = strdup(z->update_hash)) || !(s->target.name = strdup(strempty(z->update_revision))))
                return -ENOMEM;
        if (z->previous_hash && (!(s->previous.hash = strdup(z->previous_hash)) ||
                                 !(s->previous.name = strdup(strempty(z->previous_revision)))))
                return -ENOMEM;
        s->started_at = t->now;
        s->initialized = true;
        if (rollout_status_set_phase(s, ROLLOUT_PROGRESSING, "ZtunnelStarted",
                                     "rolling %s/%s to revision %s in %zu groups", t->spec->target_namespace,
                                     t->spec->target_daemonset, s->target.hash, s->n_groups) < 0)
                return -ENOMEM;
        log_info_fields(LOG_FIELDS("rollout", t->e->rollout), "Rollout %s: %s", t->e->rollout, s->message);
        return ADVANCE;
}

/* ---- phases -------------------------------------------------------------------------- */

static int fence_cb(void *userdata)
{
        return fence(userdata);
}

static void phase_ctx(Tick *t, PhaseCtx *ctx)
{
        *ctx = (PhaseCtx){
                .client = t->e->client,
                .event = t->e->event,
                .rollout = t->e->rollout,
                .rollout_uid = t->uid,
                .spec = t->spec,
                .status = t->status,
                .now = t->now,
                .err = &t->err,
                .clock = t->e->opts.clock,
                .component = t->e->opts.component,
                .adopted = t->e->adopted,
                .fence_cb = fence_cb,
                .userdata = t->e,
        };
}

/*
 * Preflight errors that may clear by themselves: the Rollout stays Pending,
 * its reason PreflightWaiting and its message what is awaited (written only
 * when that changes); preflight runs again every PREFLIGHT_RECHECK (5
 * ticks when shorter), not every tick: it lists the cluster.
 */
static int preflight_wait(Tick *t)
{
        Engine *e = t->e;
        RolloutStatus *s = t->status;
        char timeout[32];

        if (e->preflight_wait_since == 0)
                e->preflight_wait_since = t->now;
        usec_t recheck = MIN(PREFLIGHT_RECHECK, PREFLIGHT_RECHECK_TICKS * e->opts.tick);
        e->preflight_next_check = MIN(t->now + recheck, e->preflight_wait_since + t->spec->preflight_wait_timeout);
        _cleanup_free_ char *what = strdup(t->err.message);
        if (!what)
                return -ENOMEM;
        t->err.message[0] = 0;
        mr_duration_format(t->spec->preflight_wait_timeout, timeout, sizeof timeout);
        _cleanup_free_ char *message = NULL;
        if (asprintf(&message, "%s (awaited up to spec.preflight.waitTimeout, %s)", what, timeout) < 0)
                return -ENOMEM;
        if (s->phase == ROLLOUT_PENDING && streq_ptr(s->reason, "PreflightWaiting") && streq_ptr(s->message, message))
                return STAY;
        log_info_fields(LOG_FIELDS("rollout", e->rollout), "Rollout %s: %s", e->rollout, message);
        return rollout_status_set_phase(s, ROLLOUT_PENDING, "PreflightWaiting", "%s", message) < 0 ? -ENOMEM : ADVANCE;
}

/* First sight of the Rollout: preflight, then a Pending record for each phase of the spec, in its order. */
static int start_rollout(Tick *t)
{
        Engine *e = t->e;
        RolloutStatus *s = t->status;
        char list[128] = "";
        size_t n = 0;

        if (e->preflight_wait_since != 0 && t->now < e->preflight_next_check)
                return STAY;
        PhaseCtx ctx;
        phase_ctx(t, &ctx);
        /* Errors pause (PreflightFailed); transient ones are awaited up to spec.preflight.waitTimeout. */
        int r = preflight_before_rollout(&ctx, e->preflight_wait_since ? t->now - e->preflight_wait_since : 0);
        if (r == -EAGAIN)
                return preflight_wait(t);
        e->preflight_wait_since = e->preflight_next_check = 0;
        if (r < 0)
                return r;
        for (size_t i = 0; i < t->spec->n_phases; i++) {
                if (rollout_status_add_phase(s, t->spec->phases[i]) < 0)
                        return -ENOMEM;
                n += (size_t)snprintf(list + MIN(n, sizeof(list) - 1), sizeof(list) - MIN(n, sizeof(list) - 1),
                                      "%s%s", i ? ", " : "", phase_kind_to_string(t->spec->phases[i]));
        }
        s->started_at = t->now;
        if (r > 0)
                return ADVANCE; /* paused, the phases recorded: resuming goes on anyway */
        if (rollout_status_set_phase(s, ROLLOUT_PROGRESSING, "Started", "phases: %s", list) < 0)
                return -ENOMEM;
        log_info_fields(LOG_FIELDS("rollout", t->e->rollout), "Rollout %s: started (phases: %s)", t->e->rollout,
                        list);
        return ADVANCE;
}

static int step_ztunnel(Tick *t, PhaseStatus *ps)
{
        if (!t->status->initialized)
                return initialize(t);
        int cur = rollout_status_current(t->status);
        if (cur >= 0)
                return step_group(t, &t->status->groups[cur]);
        phase_set_state(ps, PHASE_COMPLETED, t->now);
        if (phase_set_message(ps, "every group is on revision %s", strna(t->status->target.hash)) < 0)
                return -ENOMEM;
        return ADVANCE;
}

static int step_phase(Tick *t, PhaseStatus *ps)
{
        const char *name = phase_kind_to_string(ps->kind);
        PhaseState before = ps->state;
        PhaseCtx ctx;
        int r;

        phase_ctx(t, &ctx);
        if (ps->state == PHASE_PENDING) {
                bool changed = false;
                r = phase_gates_baseline(&ctx, t->spec->gates[ps->kind], ps, &changed);
                if (r == -MR_EGATE) {
                        (void)phase_set_message(ps, "%s", t->err.message);
                        if (rollout_status_set_phase(t->status, ROLLOUT_PAUSED, "GateBaseline",
                                                     "phase %s cannot start: %s; paused", name, t->err.message) < 0)
                                return -ENOMEM;
                        return ADVANCE;
                }
                if (r <= 0)
                        return r < 0 ? r : changed ? ADVANCE : STAY;
                if (ps->kind == PHASE_ZTUNNEL) {
                        phase_set_state(ps, PHASE_PROGRESSING, t->now);
                        log_info_fields(LOG_FIELDS("rollout", t->e->rollout, "phase", name),
                                        "Rollout %s: phase %s started", t->e->rollout, name);
                        return ADVANCE;
                }
        }
        t->e->ztunnel_current = ps->kind == PHASE_ZTUNNEL;
        if (ps->kind == PHASE_ZTUNNEL) {
                r = step_ztunnel(t, ps);
                int cur = rollout_status_current(t->status);
                GroupState gs = cur >= 0 ? t->status->groups[cur].state : GROUP_PENDING;
                t->e->wake_pods = gs == GROUP_REPLACING || gs == GROUP_VERIFYING || gs == GROUP_ROLLING_BACK;
                t->e->wake_leases = gs == GROUP_GATING;
        }
        else {
                const PhaseOps *ops = phase_ops(ps->kind);
                if (!ops)
                        return mr_error_set(&t->err, -EOPNOTSUPP, "phase %s: not in this build of meshroll", name);
                r = ops->step(&ctx, t->spec->phase_spec[ps->kind], ps);
        }
        if (r < 0 || ps->state == before)
                return r;
        log_info_fields(LOG_FIELDS("rollout", t->e->rollout, "phase", name), "Rollout %s: phase %s %s%s%s",
                        t->e->rollout, name, phase_state_to_string(ps->state), ps->message ? ": " : "",
                        strempty(ps->message));
        if (ps->state == PHASE_ROLLED_BACK) {
                if (rollout_status_set_phase(t->status, ROLLOUT_PAUSED, "RolledBack", "phase %s rolled back: %s",
                                             name, strna(ps->message)) < 0)
                        return -ENOMEM;
                return ADVANCE;
        }
        return r;
}

/* `meshroll rollback --phase NAME[/SCOPE]`: hands the request to the phase's module. */
static void request_phase_rollback(Tick *t, const char *request)
{
        _cleanup_free_ char *name = strdup(request);
        char *scope = name ? strchr(name, '/') : NULL;
        PhaseCtx ctx;

        if (!name)
                return;
        if (scope)
                *scope++ = 0;
        int k = phase_kind_from_string(name);
        PhaseStatus *ps = k >= 0 ? rollout_status_phase(t->status, (PhaseKind)k) : NULL;
        const PhaseOps *ops = k >= 0 ? phase_ops((PhaseKind)k) : NULL;
        if (!ps) {
                log_warning("Rollout %s: rollback of phase \"%s\" ignored: the Rollout has no such phase",
                            t->e->rollout, name);
                return;
        }
        if (k == PHASE_ZTUNNEL || !ops) {
                log_warning("Rollout %s: the ztunnel phase is rolled back group by group (meshroll rollback --group)",
                            t->e->rollout);
                return;
        }
        if (ps->state == PHASE_PENDING || ps->state == PHASE_ROLLED_BACK) {
                log_warning("Rollout %s: phase %s is %s; nothing to roll back", t->e->rollout, name,
                            phase_state_to_string(ps->state));
                return;
        }
        phase_ctx(t, &ctx);
        MrError saved = t->err;
        if (ops->rollback(&ctx, t->spec->phase_spec[k], ps, scope) < 0) {
                log_warning("Rollout %s: rollback of phase %s refused: %s", t->e->rollout, name, t->err.message);
                t->err = saved;
                return;
        }
        log_warning_fields(LOG_FIELDS("rollout", t->e->rollout, "phase", name), "Rollout %s: phase %s%s%s: rollback "
                           "requested", t->e->rollout, name, scope ? "/" : "", strempty(scope));
        if (t->status->phase == ROLLOUT_COMPLETED)
                (void)rollout_status_set_phase(t->status, ROLLOUT_PROGRESSING, "RollbackRequested",
                                               "phase %s: rollback requested by an operator", name);
}

/* meshroll abort / meshroll rollback --group: annotations on the Rollout, consumed here. */
static int handle_requests(Tick *t, json_object *obj, bool *ret_clear_abort, const char **ret_clear_rollback,
                           const char **ret_clear_rollback_phase)
{
        const char *abort_req = mr_json_get_str(obj, "metadata", "annotations", ANNOTATION_ABORT, NULL);
        const char *rollback = mr_json_get_str(obj, "metadata", "annotations", ANNOTATION_ROLLBACK, NULL);
        const char *rollback_phase = mr_json_get_str(obj, "metadata", "annotations", ANNOTATION_ROLLBACK_PHASE, NULL);
        RolloutStatus *s = t->status;
        int r = STAY;

        *ret_clear_abort = false;
        *ret_clear_rollback = NULL;
        *ret_clear_rollback_phase = NULL;
        if (rollback_phase) {
                *ret_clear_rollback_phase = rollback_phase;
                request_phase_rollback(t, rollback_phase);
                return ADVANCE;
        }
        if (streq_ptr(abort_req, "true")) {
                int cur = rollout_status_current(s);
                int cp = rollout_status_current_phase(s);
                if (cp >= 0 && s->phases[cp].kind == PHASE_ZTUNNEL && cur >= 0 &&
                    s->groups[cur].state != GROUP_PENDING) {
                        drain_stop(t->e);
                        if ((r = uncordon_all(t, &s->groups[cur])) < 0)
                                return r;
                        (void)group_set_message(&s->groups[cur], "aborted by an operator");
                }
                if (rollout_status_set_phase(s, ROLLOUT_FAILED, "Aborted", "aborted by an operator") < 0)
                        return -ENOMEM;
                *ret_clear_abort = true;
                return ADVANCE;
        }
        if (rollback) {
                GroupStatus *g = rollout_status_group(s, rollback);
                *ret_clear_rollback = rollback;
                if (!g) {
                        log_warning("Rollout %s: rollback of unknown group \"%s\" ignored", t->e->rollout, rollback);
                        return ADVANCE;
                }
                if (g->state == GROUP_PENDING || g->state == GROUP_ROLLED_BACK || g->state == GROUP_ROLLING_BACK) {
                        log_warning("Rollout %s: group %s is %s; nothing to roll back", t->e->rollout, g->name,
                                    group_state_to_string(g->state));
                        return ADVANCE;
                }
                switch (g->state) {
                case GROUP_UNCORDONING:
                case GROUP_SOAKING:
                case GROUP_DONE:
                        /* Its nodes carry traffic again: drain them before touching ztunnel. */
                        g->rollback_requested = true;
                        group_set_state(g, GROUP_CORDONING, t->now);
                        (void)group_set_message(g, "rollback requested by an operator: draining first");
                        break;
                case GROUP_REPLACING:
                case GROUP_VERIFYING:
                        /* Drained already: roll back at once. */
                        group_set_state(g, GROUP_ROLLING_BACK, t->now);
                        g->rollback_step = 0;
                        (void)group_set_message(g, "rollback requested by an operator");
                        break;
                default:
                        /* Cordoning, Draining, Gating: nothing replaced yet; undoing is uncordoning. */
                        drain_stop(t->e);
                        group_set_state(g, GROUP_ROLLING_BACK, t->now);
                        g->rollback_step = 3;
                        (void)group_set_message(g, "rollback requested by an operator before ztunnel was replaced");
                        break;
                }
                log_warning_fields(LOG_FIELDS("rollout", t->e->rollout, "group", g->name),
                                   "Group %s: rollback requested", g->name);
                /* A finished ztunnel phase (or Rollout) opens again for the group's rollback. */
                PhaseStatus *zp = rollout_status_phase(s, PHASE_ZTUNNEL);
                if (zp && phase_state_finished(zp->state))
                        phase_set_state(zp, PHASE_PROGRESSING, t->now);
                if (s->phase == ROLLOUT_COMPLETED &&
                    rollout_status_set_phase(s, ROLLOUT_PROGRESSING, "RollbackRequested",
                                             "group %s: rollback requested by an operator", g->name) < 0)
                        return -ENOMEM;
                return ADVANCE;
        }
        return r;
}

static int write_status(Engine *e, json_object *obj, const RolloutStatus *s, usec_t now)
{
        _cleanup_(json_object_putp) json_object *body = mr_json_copy(obj), *status = NULL;
        _cleanup_free_ char *path = NULL;
        int64_t generation = 0;
        KubeStatus st;
        int r;

        if (!body)
                return -ENOMEM;
        r = rollout_status_to_json(s, mr_json_get(obj, "status", "conditions", NULL), now, &status);
        if (r < 0)
                return r;
        if (mr_json_get_int(&generation, obj, "metadata", "generation", NULL) == 0)
                (void)mr_json_set_int(status, "observedGeneration", generation);
        if (json_object_object_add(body, "status", TAKE_PTR(status)) < 0)
                return -ENOMEM;
        if ((r = fence(e)) < 0)
                return r;
        if ((r = kube_path(&KUBE_ROLLOUTS, NULL, e->rollout, "status", &path)) < 0)
                return r;
        r = kube_replace(e->client, path, body, NULL, &st);
        if (r < 0 && r != -MR_ECONFLICT)
                return log_warning_errno(r, "Rollout %s: cannot write status: %s", e->rollout,
                                         st.message[0] ? st.message : "%m");
        return r;
}

static int clear_annotation(Engine *e, const char *key)
{
        _cleanup_(json_object_putp) json_object *patch = json_object_new_object();
        _cleanup_free_ char *path = NULL;
        json_object *ann;
        KubeStatus st;
        int r;

        if (!patch || !(ann = mr_json_ensure_object(patch, "metadata", "annotations", NULL)) ||
            mr_json_set_str(ann, key, NULL) < 0)
                return -ENOMEM;
        if ((r = fence(e)) < 0 || (r = kube_path(&KUBE_ROLLOUTS, NULL, e->rollout, NULL, &path)) < 0)
                return r;
        return kube_patch(e->client, path, KUBE_PATCH_MERGE, patch, NULL, &st);
}

/*
 * The engine paused the rollout itself (a timeout, a rollback): record it in
 * spec.paused too, so that resuming is always the operator's `meshroll
 * resume` (spec.paused → false). Written after the status, which carries the
 * reason; a successor finding the status written and this not (a crash in
 * between) writes it then (pause_unfinished), rather than resuming.
 */
static int pause_spec(Engine *e)
{
        _cleanup_(json_object_putp) json_object *patch = NULL;
        _cleanup_free_ char *path = NULL;
        KubeStatus st;
        int r;

        static const char body[] = "{\"spec\":{\"paused\":true}}";

        if (mr_json_parse(body, strlen(body), sizeof(body), &patch) < 0)
                return -ENOMEM;
        if ((r = fence(e)) < 0 || (r = kube_path(&KUBE_ROLLOUTS, NULL, e->rollout, NULL, &path)) < 0)
                return r;
        r = kube_patch(e->client, path, KUBE_PATCH_MERGE, patch, NULL, &st);
        if (r < 0)
                log_warning_errno(r, "Rollout %s: cannot set spec.paused: %s", e->rollout, st.message[0] ? st.message : "%m");
        return r;
}

/*
 * A Paused status with spec.paused false means an operator resumed — unless
 * the engine paused itself (any reason but "Paused", which is spec.paused's
 * own) and stopped before its second write, spec.paused=true. The
 * difference is the generation: setting or clearing spec.paused bumps it,
 * so a spec still at the generation the Paused status was written for
 * never saw either write.
 */
static bool pause_unfinished(json_object *obj, const RolloutStatus *s)
{
        int64_t generation = 0;
        if (streq_ptr(s->reason, "Paused") || mr_json_get_int(&generation, obj, "metadata", "generation", NULL) < 0)
                return false;
        return generation > 0 && generation == s->observed_generation;
}

/* ---- events ------------------------------------------------------------------------- */

static void emit(Engine *e, const KubeEventRef *ref, const char *type, const char *reason, const char *message)
{
        /* Fire and forget: an Event is a report, not state; a lost one is not worth a tick's delay.
         * Still a write: a coordinator that lost its lease stays silent (fencing). */
        if (fence(e) < 0)
                return;
        (void)kube_event_emit_async(e->client, ref, type, reason, message, e->opts.component, e->opts.clock, NULL, NULL);
}

/* What a node's own event says when its group enters state; NULL: nothing node-level to report. */
static const char *node_reason(GroupState s)
{
        switch (s) {
        case GROUP_DRAINING:
                return "MeshrollCordoned";
        case GROUP_REPLACING:
                return "MeshrollReplacingZtunnel";
        case GROUP_SOAKING:
                return "MeshrollUncordoned";
        case GROUP_ROLLING_BACK:
                return "MeshrollRollingBack";
        case GROUP_ROLLED_BACK:
                return "MeshrollRolledBack";
        default:
                return NULL;
        }
}

/* Events for every change between the tick's start and the status just written. */
static void emit_changes(Engine *e, json_object *obj, RolloutPhase old_phase, const GroupState *old_states,
                         const usec_t *old_since, size_t n_old, const RolloutStatus *s)
{
        if (e->opts.metrics) {
                rollout_metrics_update(e->opts.metrics, e->rollout, s);
                for (size_t i = 0; i < s->n_groups && i < n_old; i++)
                        if (old_states[i] != s->groups[i].state && old_since[i] && s->groups[i].since > old_since[i])
                                (void)mr_metric_observe(e->opts.metrics->step_seconds,
                                                        (const char *const[]){ group_state_to_string(old_states[i]) },
                                                        (double)(s->groups[i].since - old_since[i]) / USEC_PER_SEC);
        }

        KubeEventRef rollout = { .api_version = "meshroll.io/v1alpha1", .kind = "Rollout", .name = e->rollout,
                                 .uid = mr_json_get_str(obj, "metadata", "uid", NULL) };
        char msg[KUBE_EVENT_MESSAGE_MAX], reason[KUBE_EVENT_REASON_MAX];

        for (size_t i = 0; i < s->n_groups; i++) {
                const GroupStatus *g = &s->groups[i];
                if (i < n_old && old_states[i] == g->state)
                        continue;
                bool bad = g->state == GROUP_ROLLING_BACK || g->state == GROUP_ROLLED_BACK;
                snprintf(reason, sizeof(reason), "Group%s", group_state_to_string(g->state));
                snprintf(msg, sizeof(msg), "group %s (%zu nodes): %s%s%s", g->name, g->n_nodes,
                         group_state_to_string(g->state), isempty(g->message) ? "" : ": ", strempty(g->message));
                emit(e, &rollout, bad ? KUBE_EVENT_WARNING : KUBE_EVENT_NORMAL, reason, msg);

                const char *nr = node_reason(g->state);
                if (!nr)
                        continue;
                snprintf(msg, sizeof(msg), "Rollout %s, group %s: %s", e->rollout, g->name,
                         group_state_to_string(g->state));
                for (char **n = g->nodes; *n; n++) {
                        KubeEventRef node = { .api_version = "v1", .kind = "Node", .name = *n };
                        if (group_node_deleted(g, *n))
                                continue;
                        emit(e, &node, bad ? KUBE_EVENT_WARNING : KUBE_EVENT_NORMAL, nr, msg);
                }
        }
        if (s->phase != old_phase) {
                bool bad = s->phase == ROLLOUT_PAUSED || s->phase == ROLLOUT_FAILED;
                emit(e, &rollout, bad ? KUBE_EVENT_WARNING : KUBE_EVENT_NORMAL,
                     isempty(s->reason) ? rollout_phase_to_string(s->phase) : s->reason,
                     isempty(s->message) ? rollout_phase_to_string(s->phase) : s->message);
        }
}

/* An Event on the Rollout for each phase whose state changed in this tick. */
static void emit_phase_changes(Engine *e, json_object *obj, const PhaseState *old, size_t n_old,
                               const RolloutStatus *s)
{
        KubeEventRef rollout = { .api_version = "meshroll.io/v1alpha1", .kind = "Rollout", .name = e->rollout,
                                 .uid = mr_json_get_str(obj, "metadata", "uid", NULL) };
        char msg[KUBE_EVENT_MESSAGE_MAX], reason[KUBE_EVENT_REASON_MAX];

        for (size_t i = 0; i < s->n_phases; i++) {
                const PhaseStatus *p = &s->phases[i];
                if (i < n_old && old[i] == p->state)
                        continue;
                if (i >= n_old && p->state == PHASE_PENDING)
                        continue;
                bool bad = p->state == PHASE_ROLLING_BACK || p->state == PHASE_ROLLED_BACK;
                snprintf(reason, sizeof(reason), "Phase%s", phase_state_to_string(p->state));
                snprintf(msg, sizeof(msg), "phase %s: %s%s%s", phase_kind_to_string(p->kind),
                         phase_state_to_string(p->state), isempty(p->message) ? "" : ": ", strempty(p->message));
                emit(e, &rollout, bad ? KUBE_EVENT_WARNING : KUBE_EVENT_NORMAL, reason, msg);
        }
}

static void finish(Engine *e, RolloutPhase phase)
{
        if (e->finished)
                return;
        e->finished = true;
        drain_stop(e);
        wakers_stop(e);
        if (e->opts.on_finished)
                e->opts.on_finished(e, phase, e->opts.userdata);
}

/* The Completed message: each phase's own summary. Returns buf. */
static const char *completed_message(const RolloutStatus *s, char *buf, size_t size)
{
        size_t n = 0;

        buf[0] = 0;
        for (size_t i = 0; i < s->n_phases; i++) {
                const PhaseStatus *p = &s->phases[i];
                n += (size_t)snprintf(buf + MIN(n, size - 1), size - MIN(n, size - 1), "%s%s: %s", i ? "; " : "", phase_kind_to_string(p->kind),
                    isempty(p->message) ? phase_state_to_string(p->state) : p->message);
        }
        return buf;
}

/* One reconcile pass. Returns ADVANCE when another pass should follow at once. */
static int tick(Engine *e)
{
        _cleanup_(json_object_putp) json_object *obj = NULL;
        _cleanup_(rollout_spec_freep) RolloutSpec *spec = NULL;
        _cleanup_(rollout_status_freep) RolloutStatus *status = NULL;
        _cleanup_free_ char *path = NULL, *clear_rollback = NULL, *clear_rollback_phase = NULL;
        Tick t = { .e = e, .now = now_wall(e) };
        e->wake = USEC_INFINITY;
        e->ztunnel_current = e->wake_pods = e->wake_leases = false;
        bool clear_abort = false;
        const char *rb = NULL, *rbp = NULL;
        KubeStatus st;
        int r;

        if ((r = kube_path(&KUBE_ROLLOUTS, NULL, e->rollout, NULL, &path)) < 0)
                return r;
        r = kube_get(e->client, path, &obj, &st);
        if (r < 0)
                return mr_error_set(&t.err, r, "reading Rollout %s: %s", e->rollout,
                                    st.message[0] ? st.message : mr_strerror(r));
        r = rollout_status_from_json(mr_json_get(obj, "status", NULL), &status, &t.err);
        if (r < 0)
                return r;
        t.status = status;
        t.uid = mr_json_get_str(obj, "metadata", "uid", NULL);
        /* What the tick starts from, to report what it changed. */
        RolloutPhase old_phase = status->phase;
        _cleanup_free_ GroupState *old_states = calloc(status->n_groups ? status->n_groups : 1, sizeof(GroupState));
        _cleanup_free_ usec_t *old_since = calloc(status->n_groups ? status->n_groups : 1, sizeof(usec_t));
        size_t n_old = status->n_groups;
        PhaseState old_phase_states[_PHASE_KIND_MAX];
        size_t n_old_phases = MIN(status->n_phases, (size_t)_PHASE_KIND_MAX);
        if (!old_states || !old_since)
                return -ENOMEM;
        for (size_t i = 0; i < n_old_phases; i++)
                old_phase_states[i] = status->phases[i].state;
        for (size_t i = 0; i < n_old; i++) {
                old_states[i] = status->groups[i].state;
                old_since[i] = status->groups[i].since;
        }
        /* A finished Rollout is done, unless an operator asks to roll part of a Completed one back. */
        bool requested = mr_json_get(obj, "metadata", "annotations", ANNOTATION_ROLLBACK, NULL) ||
                         mr_json_get(obj, "metadata", "annotations", ANNOTATION_ROLLBACK_PHASE, NULL);
        if (status->phase == ROLLOUT_FAILED || (status->phase == ROLLOUT_COMPLETED && !requested)) {
                finish(e, status->phase);
                return STAY;
        }
        r = rollout_spec_from_json(obj, &spec, &t.err);
        if (r < 0) {
                if (rollout_status_set_phase(status, ROLLOUT_FAILED, "InvalidSpec", "%s", t.err.message) < 0)
                        return -ENOMEM;
                r = write_status(e, obj, status, t.now);
                return r < 0 ? r : ADVANCE;
        }
        t.spec = spec;
        wakers_ensure(e, spec);

        if (status->n_phases == 0)
                r = start_rollout(&t);
        else if ((r = handle_requests(&t, obj, &clear_abort, &rb, &rbp)) == STAY) {
                if (spec->paused) {
                        if (status->phase != ROLLOUT_PAUSED) {
                                drain_stop(e);
                                r = rollout_status_set_phase(status, ROLLOUT_PAUSED, "Paused", "paused by spec.paused") <
                                                    0
                                            ? -ENOMEM
                                            : ADVANCE;
                        }
                } else if (status->phase == ROLLOUT_PAUSED && pause_unfinished(obj, status)) {
                        /* The engine paused itself and was stopped before spec.paused was set: set it now. */
                        log_info_fields(LOG_FIELDS("rollout", e->rollout), "Rollout %s: paused (%s); setting "
                                        "spec.paused, which the previous coordinator did not", e->rollout,
                                        strna(status->reason));
                        (void)pause_spec(e);
                        r = STAY;
                } else if (status->phase == ROLLOUT_PAUSED) {
                        /* Resumed: restart the clocks of waits that timed out, then carry on. */
                        int cur = rollout_status_current(status), cp = rollout_status_current_phase(status);
                        if (cp >= 0 && status->phases[cp].kind == PHASE_ZTUNNEL && cur >= 0 &&
                            status->groups[cur].state != GROUP_PENDING)
                                status->groups[cur].since = t.now;
                        else if (cp >= 0 && status->phases[cp].state != PHASE_PENDING)
                                status->phases[cp].since = t.now;
                        r = rollout_status_set_phase(status, ROLLOUT_PROGRESSING, "Resumed", "resumed") < 0 ? -ENOMEM
                                                                                                              : ADVANCE;
                } else {
                        int cp = rollout_status_current_phase(status);
                        if (cp < 0) {
                                char summary[512];
                                status->finished_at = t.now;
                                r = rollout_status_set_phase(status, ROLLOUT_COMPLETED, "Completed", "%s",
                                                             completed_message(status, summary, sizeof(summary))) < 0
                                            ? -ENOMEM
                                            : ADVANCE;
                                log_info_fields(LOG_FIELDS("rollout", e->rollout), "Rollout %s: completed", e->rollout);
                        } else
                                r = step_phase(&t, &status->phases[cp]);
                }
        }
        if ((rb && !(clear_rollback = strdup(rb))) || (rbp && !(clear_rollback_phase = strdup(rbp))))
                return -ENOMEM;
        if (r == -MR_ELOSTLEASE)
                return r;
        if (r < 0) {
                report_error(e, r, t.err.message[0] ? t.err.message : mr_strerror(r));
                return r;
        }
        free(e->last_error);
        e->last_error = NULL;
        if (r == STAY)
                return STAY;

        r = write_status(e, obj, status, t.now);
        if (r < 0)
                return r;
        emit_changes(e, obj, old_phase, old_states, old_since, n_old, status);
        emit_phase_changes(e, obj, old_phase_states, n_old_phases, status);
        if (status->phase == ROLLOUT_PAUSED && !spec->paused)
                (void)pause_spec(e);
        if (clear_abort)
                (void)clear_annotation(e, ANNOTATION_ABORT);
        if (clear_rollback)
                (void)clear_annotation(e, ANNOTATION_ROLLBACK);
        if (clear_rollback_phase)
                (void)clear_annotation(e, ANNOTATION_ROLLBACK_PHASE);
        if (e->opts.on_change)
                e->opts.on_change(e, status, e->opts.userdata);
        if (status->phase == ROLLOUT_COMPLETED || status->phase == ROLLOUT_FAILED)
                finish(e, status->phase);
        return ADVANCE;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        Engine *e = userdata;
        int r;

        if (!e->active || e->finished)
                return 0;
        r = tick(e);
        if (r == -MR_ELOSTLEASE) {
                /*
                 * The lease cannot be proven now (a renewal is late, or it is
                 * lost): every write is refused below us, and the drain stops.
                 * A loss the elector sees reaches engine_set_active(false); a
                 * renewal that was only late never does — nothing changed
                 * hands — so look again rather than wait for a call that may
                 * never come, and go on once the lease is proven again.
                 */
                if (!e->fenced)
                        log_warning("Rollout %s: the lease cannot be proven; no mutation until it is", e->rollout);
                e->fenced = true;
                drain_stop(e);
                schedule(e, e->opts.tick);
                return 0;
        }
        if (e->fenced)
                log_notice("Rollout %s: the lease is proven again; going on", e->rollout);
        e->fenced = false;
        schedule(e, r == ADVANCE ? 0 : poll_interval(e));
        return 0;
}

int engine_new(sd_event *ev, KubeClient *client, const EngineOptions *o, Engine **ret)
{
        _cleanup_(engine_freep) Engine *e = calloc(1, sizeof(Engine));
        int r;

        if (!e)
                return -ENOMEM;
        e->opts = *o;
        if (!e->opts.tick)
                e->opts.tick = USEC_PER_SEC;
        if (!e->opts.component)
                e->opts.component = "meshroll";
        e->rollout = strdup(o->rollout);
        if (!e->rollout)
                return -ENOMEM;
        e->opts.rollout = e->rollout;
        e->event = sd_event_ref(ev);
        e->client = client;
        r = sd_event_add_time(ev, &e->timer, CLOCK_MONOTONIC, 0, 0, on_timer, e);
        if (r < 0)
                return r;
        (void)sd_event_source_set_enabled(e->timer, SD_EVENT_OFF);
        e->active = o->elector == NULL;
        e->adopted = now_wall(e);
        schedule(e, 0);
        *ret = TAKE_PTR(e);
        return 0;
}

void engine_kick(Engine *e)
{
        e->finished = false; /* the next tick starts the wakers again */
        schedule(e, 0);
}

void engine_set_active(Engine *e, bool active)
{
        if (e->active == active)
                return;
        e->active = active;
        e->fenced = false;
        if (active)
                e->adopted = now_wall(e);
        if (!active) {
                drain_stop(e);
                wakers_stop(e);
                (void)sd_event_source_set_enabled(e->timer, SD_EVENT_OFF);
        } else
                schedule(e, 0);
}

Engine *engine_free(Engine *e)
{
        if (!e)
                return NULL;
        drain_stop(e);
        wakers_stop(e);
        free(e->pods_min_rv);
        free(e->ds_key);
        free(e->ds_uid);
        sd_event_source_disable_unref(e->timer);
        sd_event_unref(e->event);
        free(e->last_error);
        free(e->rollout);
        free(e);
        return NULL;
}
