/* SPDX-License-Identifier: Apache-2.0 */
/*
 * controllers.c — the controller thread: dirty queues, simulated-time
 * timers, and the helpers every simulated controller shares.
 *
 * Design. A store observer (called under the store lock for every write)
 * maps each write to the controllers that care and marks their keys dirty:
 * a pod write dirties the kubelet and scheduler for that pod, its owning
 * ReplicaSet or DaemonSet, and the Services and PDBs of its namespace
 * (key "ns/" + "*", expanded when processed). Each controller has its own
 * dirty set (a json-c object used as a string set, so marking twice is
 * free). The thread swaps the sets out under its own small mutex, then runs
 * the syncs under the store lock. Syncs never write an unchanged object, so
 * a quiescent cluster makes no writes and the loop goes idle.
 *
 * Timed work (a pod turning Ready after its start-up delay, a terminating
 * pod's exit, minReadySeconds, PDB disruptedPods expiry) is a timer in
 * simulated time; the thread sleeps on a condition variable until the
 * earliest timer converted to real time through the SimClock, or until the
 * observer signals new work. Lock order: store lock, then c->mu (the
 * observer runs under the store lock); the thread never takes the store
 * lock while holding c->mu.
 *
 * Tests use the manual mode (no thread): sim_controllers_settle runs passes
 * until nothing is dirty and no timer is due at the store's simulated now.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "controllers-internal.h"
#include "meshroll/json-util.h"
#include "meshroll/time-util.h"

#define MAX_TIMERS_PER_PASS 100000

typedef struct SimTimer {
        usec_t due;
        SimCtrl id;
        char *key;
} SimTimer;

struct SimControllers {
        SimStore *store;
        SimControllersOptions opts;
        struct ObserverSlot *slot;

        pthread_mutex_t mu; /* protects everything below */
        pthread_cond_t cond;
        bool stop, threaded;
        pthread_t thread;
        json_object *dirty[_SIM_CTRL_MAX]; /* "ns/name" → null; name "*": all in ns; ns "" for cluster scope */
        bool dirty_all[_SIM_CTRL_MAX];
        SimTimer *timers;
        size_t n_timers, cap_timers;
        usec_t next_resync;
        uint64_t rng;
        json_object *pending; /* debounce: key → {"want","since"}; store lock held */
        SimSchedCache *sched; /* store lock held */
};

/*
 * The observer's userdata is a slot pointing at the controllers; stop
 * unregisters it under the store lock, so no write can reach a stopped
 * controller, and then frees it.
 */
typedef struct ObserverSlot {
        SimControllers *c;
} ObserverSlot;

static const sim_sync_t syncs[_SIM_CTRL_MAX] = {
        [SIM_CTRL_NODE] = sim_node_lifecycle_sync,   [SIM_CTRL_SCHEDULER] = sim_scheduler_sync,
        [SIM_CTRL_KUBELET] = sim_kubelet_sync,       [SIM_CTRL_DAEMONSET] = sim_daemonset_sync,
        [SIM_CTRL_DEPLOYMENT] = sim_deployment_sync, [SIM_CTRL_REPLICASET] = sim_replicaset_sync,
        [SIM_CTRL_ENDPOINTS] = sim_endpoints_sync,   [SIM_CTRL_DISRUPTION] = sim_disruption_sync,
        [SIM_CTRL_GC] = sim_gc_sync,
};

/*
 * Which controllers the periodic resync runs. The observer sees every write,
 * so a resync only catches what no write announces; the kubelet (timers, and
 * the fault ConfigMap's writes), the scheduler (pending pods, kept by its
 * cache), the ReplicaSet controller (its pods' writes, and timers for
 * minReadySeconds) and the collector (deletions and dangling owners) miss
 * nothing, and at 100,000 pods their resync, which parses every pod, was
 * most of an idle simulator's CPU.
 */
static const bool resync[_SIM_CTRL_MAX] = {
        [SIM_CTRL_NODE] = true,       [SIM_CTRL_SCHEDULER] = false,  [SIM_CTRL_KUBELET] = false,
        [SIM_CTRL_DAEMONSET] = true,  [SIM_CTRL_DEPLOYMENT] = true,  [SIM_CTRL_REPLICASET] = false,
        [SIM_CTRL_ENDPOINTS] = true,  [SIM_CTRL_DISRUPTION] = true,  [SIM_CTRL_GC] = false,
};

/* The kind whose objects a controller's keys name (GC keys are namespaces). */
static const SimKind *primary_kind(SimCtrl id)
{
        switch (id) {
        case SIM_CTRL_NODE:
                return &SIM_NODES;
        case SIM_CTRL_SCHEDULER:
        case SIM_CTRL_KUBELET:
                return &SIM_PODS;
        case SIM_CTRL_DAEMONSET:
                return &SIM_DAEMONSETS;
        case SIM_CTRL_DEPLOYMENT:
                return &SIM_DEPLOYMENTS;
        case SIM_CTRL_REPLICASET:
                return &SIM_REPLICASETS;
        case SIM_CTRL_ENDPOINTS:
                return &SIM_SERVICES;
        case SIM_CTRL_DISRUPTION:
                return &SIM_PDBS;
        default:
                return NULL;
        }
}

SimSchedCache *sim_controllers_sched_cache(SimControllers *c)
{
        return c->sched;
}

SimStore *sim_controllers_store(SimControllers *c)
{
        return c->store;
}

usec_t sim_controllers_taint_delay(SimControllers *c)
{
        return c->opts.taint_delay;
}

bool sim_controllers_delay_elapsed(SimControllers *c, const char *key, const char *want, usec_t now, usec_t delay,
                                   usec_t *ret_due)
{
        int64_t since = (int64_t)now;
        if (!c->pending && !(c->pending = json_object_new_object()))
                return true;
        json_object *e = mr_json_get(c->pending, key, NULL);
        if (e && streq_ptr(mr_json_get_str(e, "want", NULL), want))
                (void)mr_json_get_int(&since, e, "since", NULL);
        else {
                e = json_object_new_object();
                if (!e || mr_json_set_str(e, "want", want) < 0 || mr_json_set_int(e, "since", since) < 0) {
                        json_object_put(e);
                        return true;
                }
                json_object_object_add(c->pending, key, e);
        }
        if (now >= (usec_t)since + delay) {
                json_object_object_del(c->pending, key);
                return true;
        }
        *ret_due = (usec_t)since + delay;
        return false;
}

uint64_t sim_controllers_random(SimControllers *c)
{
        /* splitmix64: the generator is only for name suffixes, under the store lock. */
        uint64_t z = (c->rng += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static void make_key(char *buf, size_t size, const char *ns, const char *name)
{
        snprintf(buf, size, "%s/%s", strempty(ns), strempty(name));
}

void sim_controllers_enqueue(SimControllers *c, SimCtrl id, const char *ns, const char *name)
{
        char key[512];
        make_key(key, sizeof key, ns, name);
        pthread_mutex_lock(&c->mu);
        if (!c->dirty[id])
                c->dirty[id] = json_object_new_object();
        if (c->dirty[id])
                json_object_object_add(c->dirty[id], key, NULL);
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->mu);
}

void sim_controllers_enqueue_all(SimControllers *c, SimCtrl id)
{
        pthread_mutex_lock(&c->mu);
        c->dirty_all[id] = true;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->mu);
}

void sim_controllers_after(SimControllers *c, SimCtrl id, const char *ns, const char *name, usec_t due)
{
        char key[512];
        make_key(key, sizeof key, ns, name);
        pthread_mutex_lock(&c->mu);
        for (size_t i = 0; i < c->n_timers; i++)
                if (c->timers[i].id == id && streq(c->timers[i].key, key)) {
                        if (due < c->timers[i].due)
                                c->timers[i].due = due;
                        goto done;
                }
        if (c->n_timers == c->cap_timers) {
                size_t cap = c->cap_timers ? c->cap_timers * 2 : 64;
                SimTimer *t = realloc(c->timers, cap * sizeof *t);
                if (!t)
                        goto done;
                c->timers = t;
                c->cap_timers = cap;
        }
        char *k = strdup(key);
        if (!k)
                goto done;
        c->timers[c->n_timers++] = (SimTimer){ .due = due, .id = id, .key = k };
done:
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->mu);
}

/* ---- observer -------------------------------------------------------------------------------- */

static void enqueue_owner(SimControllers *c, json_object *obj, const char *ns)
{
        json_object *ref = sim_controller_ref(obj);
        const char *kind = mr_json_get_str(ref, "kind", NULL), *name = mr_json_get_str(ref, "name", NULL);
        if (!kind || !name)
                return;
        if (streq(kind, "DaemonSet"))
                sim_controllers_enqueue(c, SIM_CTRL_DAEMONSET, ns, name);
        else if (streq(kind, "ReplicaSet")) {
                sim_controllers_enqueue(c, SIM_CTRL_REPLICASET, ns, name);
                /* The Deployment too: Recreate waits for old pods to be gone, which no RS status shows. */
                json_object *rs = sim_store_get(c->store, &SIM_REPLICASETS, ns, name);
                json_object *dref = sim_controller_ref(rs);
                if (dref && streq_ptr(mr_json_get_str(dref, "kind", NULL), "Deployment") && mr_json_get_str(dref, "name", NULL))
                        sim_controllers_enqueue(c, SIM_CTRL_DEPLOYMENT, ns, mr_json_get_str(dref, "name", NULL));
        }
        else if (streq(kind, "Deployment"))
                sim_controllers_enqueue(c, SIM_CTRL_DEPLOYMENT, ns, name);
}

static bool same_field(json_object *a, json_object *b, const char *k1, const char *k2)
{
        return mr_json_equal(mr_json_get(a, k1, k2, NULL), mr_json_get(b, k1, k2, NULL));
}

/*
 * Whether a pod write can change what its owner computes: labels, owners,
 * deletion, node and status. An annotation patch cannot, and a ReplicaSet
 * of 1,000 pods reads all of them on each sync, so such writes do not
 * queue the owner (the real controller's informer makes that re-read
 * cheap; here every pod read is a parse).
 */
static bool pod_change_matters_to_owner(json_object *obj, json_object *old)
{
        return !old || !same_field(obj, old, "metadata", "labels") ||
               !same_field(obj, old, "metadata", "ownerReferences") ||
               !same_field(obj, old, "metadata", "deletionTimestamp") || !same_field(obj, old, "spec", "nodeName") ||
               !mr_json_equal(mr_json_get(obj, "status", NULL), mr_json_get(old, "status", NULL));
}

/* The next taint at or after *i that not every DaemonSet pod tolerates, or NULL; *i moves past it. */
static json_object *next_daemon_taint(json_object *taints, json_object *daemon_tolerations, size_t *i)
{
        while (taints && json_object_is_type(taints, json_type_array) && *i < json_object_array_length(taints)) {
                json_object *t = json_object_array_get_idx(taints, (*i)++);
                if (!sim_taint_tolerated(t, daemon_tolerations))
                        return t;
        }
        return NULL;
}

/*
 * Whether a Node change can change where a DaemonSet runs its pods: where
 * one should run depends on the node's name, labels (nodeSelector,
 * affinity) and the taints its pods do not tolerate, and every DaemonSet
 * pod tolerates the taints sim_daemon_tolerations() adds — a cordon's
 * unschedulable taint among them. The real controller's updateNode asks
 * each DaemonSet the same; asking it once for all of them (a DaemonSet's
 * own tolerations may cover more) errs towards a sync. Without this, a
 * cordon at 5,000 nodes meant two syncs of every DaemonSet over every node.
 */
static bool node_change_matters_to_daemonsets(json_object *obj, json_object *old)
{
        if (!old || !same_field(obj, old, "metadata", "labels"))
                return true;
        _cleanup_(json_object_putp) json_object *tols = sim_daemon_tolerations(NULL);
        if (!tols)
                return true;
        json_object *a = mr_json_get(obj, "spec", "taints", NULL), *b = mr_json_get(old, "spec", "taints", NULL);
        size_t i = 0, j = 0;
        for (;;) {
                json_object *ta = next_daemon_taint(a, tols, &i), *tb = next_daemon_taint(b, tols, &j);
                if (!ta || !tb)
                        return ta != tb;
                if (!mr_json_equal(ta, tb))
                        return true;
        }
}

static bool pod_is_terminal(json_object *pod)
{
        const char *phase = mr_json_get_str(pod, "status", "phase", NULL);
        return streq_ptr(phase, "Succeeded") || streq_ptr(phase, "Failed");
}

static void observer(SimStore *s, const SimKind *k, SimEventType type, json_object *obj, json_object *old,
                     void *userdata)
{
        ObserverSlot *slot = userdata;
        SimControllers *c = slot->c;
        if (!c)
                return;
        const char *ns = mr_json_get_str(obj, "metadata", "namespace", NULL);
        const char *name = mr_json_get_str(obj, "metadata", "name", NULL);
        if (!name)
                return;

        sim_sched_cache_observe(c->sched, k, type, obj, old);
        if (k == &SIM_PODS) {
                sim_controllers_enqueue(c, SIM_CTRL_KUBELET, ns, name);
                if (!mr_json_get_str(obj, "spec", "nodeName", NULL) && type != SIM_EVENT_DELETED)
                        sim_controllers_enqueue(c, SIM_CTRL_SCHEDULER, ns, name);
                if (type == SIM_EVENT_DELETED || (old && pod_is_terminal(obj) && !pod_is_terminal(old)))
                        sim_sched_cache_enqueue_pending(c, c->sched); /* capacity freed */
                if (type == SIM_EVENT_DELETED || pod_change_matters_to_owner(obj, old)) {
                        enqueue_owner(c, obj, ns);
                        if (old)
                                enqueue_owner(c, old, ns);
                }
                sim_controllers_enqueue(c, SIM_CTRL_ENDPOINTS, ns, "*");
                sim_controllers_enqueue(c, SIM_CTRL_DISRUPTION, ns, "*");
        } else if (k == &SIM_NODES) {
                sim_controllers_enqueue(c, SIM_CTRL_NODE, NULL, name);
                if (type != SIM_EVENT_MODIFIED || node_change_matters_to_daemonsets(obj, old))
                        sim_controllers_enqueue_all(c, SIM_CTRL_DAEMONSET);
                sim_sched_cache_enqueue_pending(c, c->sched);
        } else if (k == &SIM_DAEMONSETS) {
                sim_controllers_enqueue(c, SIM_CTRL_DAEMONSET, ns, name);
        } else if (k == &SIM_DEPLOYMENTS) {
                sim_controllers_enqueue(c, SIM_CTRL_DEPLOYMENT, ns, name);
        } else if (k == &SIM_REPLICASETS) {
                sim_controllers_enqueue(c, SIM_CTRL_REPLICASET, ns, name);
                enqueue_owner(c, obj, ns);
                sim_controllers_enqueue(c, SIM_CTRL_DISRUPTION, ns, "*");
        } else if (k == &SIM_SERVICES || k == &SIM_ENDPOINTS) {
                sim_controllers_enqueue(c, SIM_CTRL_ENDPOINTS, ns, name);
        } else if (k == &SIM_PDBS) {
                sim_controllers_enqueue(c, SIM_CTRL_DISRUPTION, ns, name);
        } else if (k == &SIM_CONFIGMAPS && streq_ptr(ns, "kube-system") && streq(name, "kubesim-faults")) {
                sim_controllers_enqueue_all(c, SIM_CTRL_KUBELET); /* never-ready images changed */
        }
        /* An object written with no existing owner is an orphan from the start. */
        if (type != SIM_EVENT_DELETED && sim_gc_has_dangling_owner(s, obj))
                sim_controllers_enqueue(c, SIM_CTRL_GC, k->namespaced ? ns : "", "*");
        /* Anything that disappears may have dependents: let the collector look at its namespace. */
        if (type == SIM_EVENT_DELETED && k != &SIM_EVENTS && k != &SIM_EVENTS_V1 && k != &SIM_LEASES) {
                if (k->namespaced)
                        sim_controllers_enqueue(c, SIM_CTRL_GC, ns, "*");
                else
                        sim_controllers_enqueue_all(c, SIM_CTRL_GC);
        }
}

/* ---- running the queues ---------------------------------------------------------------------- */

typedef struct Names {
        json_object *list; /* array of "ns/name" strings */
} Names;

static int collect_name(const SimRaw *raw, void *userdata)
{
        Names *n = userdata;
        char key[512];
        make_key(key, sizeof key, raw->ns, raw->name);
        return json_object_array_add(n->list, json_object_new_string(key)) < 0 ? -ENOMEM : 0;
}

static void run_key(SimControllers *c, SimCtrl id, const char *key, usec_t now)
{
        char ns[256];
        const char *slash = strchr(key, '/');
        if (!slash || (size_t)(slash - key) >= sizeof ns)
                return;
        memcpy(ns, key, slash - key);
        ns[slash - key] = 0;
        const char *name = slash + 1;
        usec_t due = 0;

        if (!syncs[id])
                return;
        if (streq(name, "*") && id == SIM_CTRL_SCHEDULER) {
                /* Only pending pods have anything to schedule: the cache knows them. */
                sim_sched_cache_enqueue_pending(c, c->sched);
                return;
        }
        if (streq(name, "*") && id != SIM_CTRL_GC) {
                /* Every object of the primary kind in the namespace. */
                const SimKind *k = primary_kind(id);
                _cleanup_(json_object_putp) json_object *list = json_object_new_array();
                Names n = { .list = list };
                if (!k || !list || sim_store_foreach_raw(c->store, k, ns[0] ? ns : NULL, NULL, NULL, collect_name, &n) < 0)
                        return;
                for (size_t i = 0; i < json_object_array_length(list); i++) {
                        if (i > 0 && i % 64 == 0) {
                                /* Let API requests in: a resync of 100,000 pods is long. */
                                sim_store_unlock(c->store);
                                sim_store_lock(c->store);
                        }
                        run_key(c, id, json_object_get_string(json_object_array_get_idx(list, i)), now);
                }
                return;
        }
        /* A sync keeps nothing it borrowed: what it parsed goes when it returns. */
        size_t mark = sim_store_mark(c->store);
        int r = syncs[id](c, ns[0] ? ns : NULL, name, now, &due);
        sim_store_release(c->store, mark);
        if (r < 0 && r != -ENOENT)
                due = now + USEC_PER_SEC; /* retry a failed sync a simulated second later */
        if (due > 0)
                sim_controllers_after(c, id, ns[0] ? ns : NULL, name, due);
}

/* One pass: takes the dirty sets and due timers, runs them. Returns true when there was work. */
static bool run_pass(SimControllers *c)
{
        json_object *dirty[_SIM_CTRL_MAX] = {};
        bool all[_SIM_CTRL_MAX] = {};
        bool work = false;

        sim_store_lock(c->store);
        usec_t now = sim_store_now(c->store);
        sim_store_unlock(c->store);

        pthread_mutex_lock(&c->mu);
        if (now >= c->next_resync) {
                for (int id = 0; id < _SIM_CTRL_MAX; id++)
                        c->dirty_all[id] = c->dirty_all[id] || resync[id];
                c->next_resync = now + (c->opts.resync ? c->opts.resync : 30 * USEC_PER_SEC);
        }
        for (int id = 0; id < _SIM_CTRL_MAX; id++) {
                dirty[id] = TAKE_PTR(c->dirty[id]);
                all[id] = c->dirty_all[id];
                c->dirty_all[id] = false;
        }
        /* Due timers become dirty keys. */
        for (size_t i = 0; i < c->n_timers;) {
                if (c->timers[i].due > now) {
                        i++;
                        continue;
                }
                SimTimer t = c->timers[i];
                c->timers[i] = c->timers[--c->n_timers];
                if (!dirty[t.id])
                        dirty[t.id] = json_object_new_object();
                if (dirty[t.id])
                        json_object_object_add(dirty[t.id], t.key, NULL);
                free(t.key);
        }
        pthread_mutex_unlock(&c->mu);

        for (int id = 0; id < _SIM_CTRL_MAX; id++) {
                if (!all[id] && (!dirty[id] || json_object_object_length(dirty[id]) == 0)) {
                        json_object_put(dirty[id]);
                        continue;
                }
                work = true;
                sim_store_lock(c->store);
                if (all[id]) {
                        run_key(c, id, "/*", now);
                } else {
                        size_t n = 0;
                        json_object_object_foreach(dirty[id], key, v)
                        {
                                (void)v;
                                if (n++ % 64 == 63) { /* the lock is shared with every API request */
                                        sim_store_unlock(c->store);
                                        sim_store_lock(c->store);
                                }
                                run_key(c, id, key, now);
                        }
                }
                sim_store_unlock(c->store);
                json_object_put(dirty[id]);
        }
        return work;
}

static bool has_work_locked(SimControllers *c, usec_t now)
{
        for (int id = 0; id < _SIM_CTRL_MAX; id++)
                if (c->dirty_all[id] || (c->dirty[id] && json_object_object_length(c->dirty[id]) > 0))
                        return true;
        for (size_t i = 0; i < c->n_timers; i++)
                if (c->timers[i].due <= now)
                        return true;
        return false;
}

usec_t sim_controllers_next_due(SimControllers *c)
{
        usec_t next = USEC_INFINITY;
        pthread_mutex_lock(&c->mu);
        for (size_t i = 0; i < c->n_timers; i++)
                next = MIN(next, c->timers[i].due);
        pthread_mutex_unlock(&c->mu);
        return next;
}

int sim_controllers_settle(SimControllers *c, unsigned max_rounds)
{
        for (unsigned i = 0; i < max_rounds; i++) {
                usec_t now = sim_store_now(c->store);
                pthread_mutex_lock(&c->mu);
                bool work = has_work_locked(c, now);
                pthread_mutex_unlock(&c->mu);
                if (!work)
                        return 0;
                (void)run_pass(c);
        }
        return -ELOOP;
}

static void *thread_main(void *userdata)
{
        SimControllers *c = userdata;
        pthread_mutex_lock(&c->mu);
        while (!c->stop) {
                usec_t now = sim_store_now(c->store);
                if (has_work_locked(c, now) || now >= c->next_resync) {
                        pthread_mutex_unlock(&c->mu);
                        (void)run_pass(c);
                        pthread_mutex_lock(&c->mu);
                        continue;
                }
                usec_t next = c->next_resync;
                for (size_t i = 0; i < c->n_timers; i++)
                        next = MIN(next, c->timers[i].due);
                usec_t wait = c->opts.clock ? sim_clock_real_delay(c->opts.clock, next - now) : 50 * USEC_PER_MSEC;
                wait = CLAMP(wait, (usec_t)USEC_PER_MSEC, (usec_t)(500 * USEC_PER_MSEC));
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                uint64_t ns = (uint64_t)ts.tv_nsec + wait * NSEC_PER_USEC;
                ts.tv_sec += (time_t)(ns / 1000000000ULL);
                ts.tv_nsec = (long)(ns % 1000000000ULL);
                (void)pthread_cond_timedwait(&c->cond, &c->mu, &ts);
        }
        pthread_mutex_unlock(&c->mu);
        return NULL;
}

typedef struct SeedCtx {
        SimStore *store;
        SimSchedCache *sched;
        const SimKind *kind;
} SeedCtx;

/* Feeds an object already stored to the scheduler's cache, one tree at a time. */
static int seed_one(const SimRaw *raw, void *userdata)
{
        SeedCtx *sd = userdata;
        size_t mark = sim_store_mark(sd->store);
        json_object *obj = sim_store_raw_object(sd->store, raw);
        if (obj)
                sim_sched_cache_observe(sd->sched, sd->kind, SIM_EVENT_ADDED, obj, NULL);
        sim_store_release(sd->store, mark);
        return obj ? 0 : -ENOMEM;
}

static int seed_sched_cache(SimStore *store, SimSchedCache *sched)
{
        SeedCtx sd = {.store = store, .sched = sched, .kind = &SIM_NODES};
        int r = sim_store_foreach_raw(store, &SIM_NODES, NULL, NULL, NULL, seed_one, &sd);
        if (r < 0)
                return r;
        sd.kind = &SIM_PODS;
        return sim_store_foreach_raw(store, &SIM_PODS, NULL, NULL, NULL, seed_one, &sd);
}

static int controllers_new(SimStore *store, const SimControllersOptions *opts, SimControllers **ret)
{
        SimControllers *c = calloc(1, sizeof *c);
        ObserverSlot *slot = calloc(1, sizeof *slot);
        pthread_condattr_t attr;
        if (!c || !slot || sim_sched_cache_new(&c->sched) < 0) {
                if (c)
                        sim_sched_cache_free(c->sched);
                free(c);
                free(slot);
                return -ENOMEM;
        }
        c->store = store;
        if (opts)
                c->opts = *opts;
        c->rng = c->opts.seed ? c->opts.seed : 0x6d657368726f6c6cULL;
        pthread_mutex_init(&c->mu, NULL);
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&c->cond, &attr);
        pthread_condattr_destroy(&attr);
        for (int id = 0; id < _SIM_CTRL_MAX; id++)
                c->dirty_all[id] = true; /* first pass: look at everything */
        slot->c = c;
        c->slot = slot;

        sim_store_lock(store);
        c->next_resync = sim_store_now(store) + (c->opts.resync ? c->opts.resync : 30 * USEC_PER_SEC);
        int r = seed_sched_cache(store, c->sched);
        if (r >= 0)
                r = sim_store_observe(store, observer, slot);
        sim_store_unlock(store);
        if (r < 0) {
                c->slot = NULL;
                free(slot);
                sim_sched_cache_free(c->sched);
                pthread_cond_destroy(&c->cond);
                pthread_mutex_destroy(&c->mu);
                free(c);
                return r;
        }
        *ret = c;
        return 0;
}

int sim_controllers_new_manual(SimStore *store, const SimControllersOptions *opts, SimControllers **ret)
{
        return controllers_new(store, opts, ret);
}

int sim_controllers_start(SimStore *store, const SimControllersOptions *opts, SimControllers **ret)
{
        SimControllers *c;
        int r = controllers_new(store, opts, &c);
        if (r < 0)
                return r;
        r = -pthread_create(&c->thread, NULL, thread_main, c);
        if (r < 0) {
                sim_controllers_stop(c);
                return r;
        }
        c->threaded = true;
        *ret = c;
        return 0;
}

SimControllers *sim_controllers_stop(SimControllers *c)
{
        if (!c)
                return NULL;
        if (c->threaded) {
                pthread_mutex_lock(&c->mu);
                c->stop = true;
                pthread_cond_signal(&c->cond);
                pthread_mutex_unlock(&c->mu);
                pthread_join(c->thread, NULL);
        }
        if (c->slot) {
                sim_store_lock(c->store);
                (void)sim_store_unobserve(c->store, observer, c->slot);
                sim_store_unlock(c->store);
                free(c->slot);
        }
        for (int id = 0; id < _SIM_CTRL_MAX; id++)
                json_object_put(c->dirty[id]);
        json_object_put(c->pending);
        sim_sched_cache_free(c->sched);
        for (size_t i = 0; i < c->n_timers; i++)
                free(c->timers[i].key);
        free(c->timers);
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->mu);
        free(c);
        return NULL;
}

/* ---- shared object helpers ------------------------------------------------------------------- */

static json_object *find_condition(json_object *obj_status, const char *type)
{
        json_object *conds = mr_json_get(obj_status, "conditions", NULL);
        if (!conds || !json_object_is_type(conds, json_type_array))
                return NULL;
        for (size_t i = 0; i < json_object_array_length(conds); i++) {
                json_object *e = json_object_array_get_idx(conds, i);
                if (streq_ptr(mr_json_get_str(e, "type", NULL), type))
                        return e;
        }
        return NULL;
}

bool sim_pod_is_ready(json_object *pod)
{
        json_object *cond = find_condition(mr_json_get(pod, "status", NULL), "Ready");
        return cond && streq_ptr(mr_json_get_str(cond, "status", NULL), "True");
}

bool sim_pod_is_available(json_object *pod, int64_t min_ready, usec_t now, usec_t *ret_when)
{
        if (!sim_pod_is_ready(pod))
                return false;
        if (min_ready <= 0)
                return true;
        json_object *cond = find_condition(mr_json_get(pod, "status", NULL), "Ready");
        usec_t since;
        if (kube_time_parse(mr_json_get_str(cond, "lastTransitionTime", NULL), &since) < 0)
                return true;
        usec_t when = since + (usec_t)min_ready * USEC_PER_SEC;
        if (when <= now)
                return true;
        if (ret_when)
                *ret_when = when;
        return false;
}

bool sim_obj_is_deleting(json_object *obj)
{
        json_object *ts = mr_json_get(obj, "metadata", "deletionTimestamp", NULL);
        return ts && !json_object_is_type(ts, json_type_null);
}

json_object *sim_controller_ref(json_object *obj)
{
        json_object *refs = mr_json_get(obj, "metadata", "ownerReferences", NULL);
        if (!refs || !json_object_is_type(refs, json_type_array))
                return NULL;
        for (size_t i = 0; i < json_object_array_length(refs); i++) {
                json_object *r = json_object_array_get_idx(refs, i);
                if (mr_json_get_bool(false, r, "controller", NULL))
                        return r;
        }
        return NULL;
}

bool sim_is_controlled_by(json_object *obj, const char *kind, const char *uid)
{
        json_object *ref = sim_controller_ref(obj);
        return ref && streq_ptr(mr_json_get_str(ref, "kind", NULL), kind) &&
               streq_ptr(mr_json_get_str(ref, "uid", NULL), uid);
}

json_object *sim_owner_ref_new(json_object *owner, const char *api_version, const char *kind)
{
        _cleanup_(json_object_putp) json_object *r = json_object_new_object();
        if (!r || mr_json_set_str(r, "apiVersion", api_version) < 0 || mr_json_set_str(r, "kind", kind) < 0 ||
            mr_json_set_str(r, "name", mr_json_get_str(owner, "metadata", "name", NULL)) < 0 ||
            mr_json_set_str(r, "uid", mr_json_get_str(owner, "metadata", "uid", NULL)) < 0 ||
            mr_json_set_bool(r, "controller", true) < 0 || mr_json_set_bool(r, "blockOwnerDeletion", true) < 0)
                return NULL;
        return TAKE_PTR(r);
}

int sim_set_condition(json_object *status, const char *type, const char *status_value, const char *reason,
                      const char *message, usec_t now, bool with_update_time)
{
        char ts[KUBE_TIME_MAX];
        json_object *conds = mr_json_get(status, "conditions", NULL);
        if (!conds || !json_object_is_type(conds, json_type_array)) {
                conds = json_object_new_array();
                if (!conds)
                        return -ENOMEM;
                json_object_object_add(status, "conditions", conds);
        }
        json_object *cond = find_condition(status, type);
        if (!cond) {
                cond = json_object_new_object();
                if (!cond || json_object_array_add(conds, cond) < 0) {
                        json_object_put(cond);
                        return -ENOMEM;
                }
                if (mr_json_set_str(cond, "type", type) < 0)
                        return -ENOMEM;
        }
        bool changed = !streq_ptr(mr_json_get_str(cond, "status", NULL), status_value);
        bool same = !changed && streq_ptr(mr_json_get_str(cond, "reason", NULL), reason) &&
                    streq_ptr(mr_json_get_str(cond, "message", NULL), message);
        if (same)
                return 0;
        kube_time_format(now, ts);
        if (mr_json_set_str(cond, "status", status_value) < 0 || mr_json_set_str(cond, "reason", reason) < 0 ||
            mr_json_set_str(cond, "message", message) < 0)
                return -ENOMEM;
        if ((changed || !mr_json_get(cond, "lastTransitionTime", NULL)) &&
            mr_json_set_str(cond, "lastTransitionTime", ts) < 0)
                return -ENOMEM;
        if (with_update_time && mr_json_set_str(cond, "lastUpdateTime", ts) < 0)
                return -ENOMEM;
        return 0;
}

int sim_write_status(SimStore *s, const SimKind *k, json_object *obj, const char *actor)
{
        _cleanup_(json_object_putp) json_object *o = obj;
        json_object *cur = sim_store_get(s, k, mr_json_get_str(o, "metadata", "namespace", NULL),
                                         mr_json_get_str(o, "metadata", "name", NULL));
        if (!cur)
                return -ENOENT;
        if (mr_json_equal(mr_json_get(cur, "status", NULL), mr_json_get(o, "status", NULL)))
                return 0;
        int r = sim_store_update(s, k, TAKE_PTR(o), SIM_UPDATE_STATUS, actor, NULL, NULL);
        return r < 0 ? r : 1;
}

int sim_write_object(SimStore *s, const SimKind *k, json_object *obj, const char *actor)
{
        _cleanup_(json_object_putp) json_object *o = obj;
        json_object *cur = sim_store_get(s, k, mr_json_get_str(o, "metadata", "namespace", NULL),
                                         mr_json_get_str(o, "metadata", "name", NULL));
        if (!cur)
                return -ENOENT;
        if (mr_json_equal(cur, o))
                return 0;
        int r = sim_store_update(s, k, TAKE_PTR(o), 0, actor, NULL, NULL);
        return r < 0 ? r : 1;
}

/* ---- hashes ------------------------------------------------------------------------------------- */

static uint32_t fnv(uint32_t h, const void *data, size_t n)
{
        const unsigned char *p = data;
        for (size_t i = 0; i < n; i++) {
                h ^= p[i];
                h *= 16777619U;
        }
        return h;
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* FNV-32a over a canonical form: object keys sorted, so key order never changes the hash. */
static uint32_t hash_value(uint32_t h, json_object *o, unsigned depth)
{
        if (depth > MR_JSON_MAX_DEPTH)
                return h;
        switch (json_object_get_type(o)) {
        case json_type_object: {
                size_t n = (size_t)json_object_object_length(o), i = 0;
                const char **keys = calloc(n ? n : 1, sizeof *keys);
                if (!keys)
                        return h;
                json_object_object_foreach(o, key, v)
                {
                        (void)v;
                        keys[i++] = key;
                }
                qsort(keys, n, sizeof *keys, cmp_str);
                h = fnv(h, "{", 1);
                for (i = 0; i < n; i++) {
                        h = fnv(h, keys[i], strlen(keys[i]) + 1);
                        h = hash_value(h, json_object_object_get(o, keys[i]), depth + 1);
                }
                free(keys);
                return fnv(h, "}", 1);
        }
        case json_type_array:
                h = fnv(h, "[", 1);
                for (size_t i = 0; i < json_object_array_length(o); i++)
                        h = hash_value(h, json_object_array_get_idx(o, i), depth + 1);
                return fnv(h, "]", 1);
        default: {
                const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
                return fnv(h, s, strlen(s) + 1);
        }
        }
}

char *sim_hash_json(json_object *o, uint32_t collision, char buf[static 16])
{
        static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
        char digits[16];
        uint32_t h = hash_value(2166136261U, o, 0);
        if (collision)
                h = fnv(h, &collision, sizeof collision);
        snprintf(digits, sizeof digits, "%" PRIu32, h);
        size_t i;
        for (i = 0; digits[i] && i < 15; i++)
                buf[i] = alphabet[(unsigned char)digits[i] % (sizeof alphabet - 1)];
        buf[i] = 0;
        return buf;
}

/* ---- pod creation and sidecar injection --------------------------------------------------------- */

/* The revision a tag (or revision name) points at: the tag webhook's istio.io/rev, else itself. */
static const char *resolve_tag(SimStore *s, const char *tag)
{
        char name[300];
        snprintf(name, sizeof name, "istio-revision-tag-%s", tag);
        json_object *mwc = sim_store_get(s, &SIM_MUTATINGWEBHOOKS, NULL, name);
        const char *rev = mr_json_get_str(mwc, "metadata", "labels", "istio.io/rev", NULL);
        if (rev && streq_ptr(mr_json_get_str(mwc, "metadata", "labels", "istio.io/tag", NULL), tag))
                return rev;
        if (streq(tag, "default"))
                return "default";
        return tag;
}

const char *sim_injection_revision(SimStore *s, const char *ns, json_object *pod_labels)
{
        const char *inject = mr_json_get_str(pod_labels, "sidecar.istio.io/inject", NULL);
        if (streq_ptr(inject, "false"))
                return NULL;
        json_object *nso = sim_store_get(s, &SIM_NAMESPACES, NULL, strempty(ns));
        json_object *ns_labels = mr_json_get(nso, "metadata", "labels", NULL);
        const char *ns_injection = mr_json_get_str(ns_labels, "istio-injection", NULL);
        const char *ns_rev = mr_json_get_str(ns_labels, "istio.io/rev", NULL);
        const char *pod_rev = mr_json_get_str(pod_labels, "istio.io/rev", NULL);

        /* istio-injection takes precedence over istio.io/rev (the rev.* webhooks require it absent). */
        if (ns_injection)
                return streq(ns_injection, "enabled") ? resolve_tag(s, "default") : NULL;
        if (ns_rev)
                return resolve_tag(s, ns_rev);
        if (pod_rev)
                return resolve_tag(s, pod_rev);
        if (streq_ptr(inject, "true"))
                return resolve_tag(s, "default");
        return NULL;
}

/* What the injector adds: annotations naming the revision, and the proxy containers. */
static int inject_sidecar(json_object *pod, const char *rev)
{
        char status[512], image[300];
        json_object *ann = mr_json_ensure_object(pod, "metadata", "annotations", NULL);
        json_object *spec = mr_json_ensure_object(pod, "spec", NULL);
        if (!ann || !spec)
                return -ENOMEM;
        snprintf(status, sizeof status,
                 "{\"initContainers\":[\"istio-init\"],\"containers\":[\"istio-proxy\"],"
                 "\"volumes\":[\"workload-socket\",\"credential-socket\",\"workload-certs\",\"istio-envoy\","
                 "\"istio-data\",\"istio-podinfo\",\"istio-token\",\"istiod-ca-cert\"],"
                 "\"imagePullSecrets\":null,\"revision\":\"%s\"}",
                 rev);
        if (mr_json_set_str(ann, "sidecar.istio.io/status", status) < 0 ||
            mr_json_set_str(ann, "istio.io/rev", rev) < 0)
                return -ENOMEM;
        json_object *containers = mr_json_get(spec, "containers", NULL);
        if (!containers || !json_object_is_type(containers, json_type_array)) {
                containers = json_object_new_array();
                if (!containers)
                        return -ENOMEM;
                json_object_object_add(spec, "containers", containers);
        }
        json_object *proxy = json_object_new_object();
        snprintf(image, sizeof image, "docker.io/istio/proxyv2:%s", rev);
        if (!proxy || json_object_array_add(containers, proxy) < 0) {
                json_object_put(proxy);
                return -ENOMEM;
        }
        if (mr_json_set_str(proxy, "name", "istio-proxy") < 0 || mr_json_set_str(proxy, "image", image) < 0)
                return -ENOMEM;
        return 0;
}

json_object *sim_daemon_tolerations(json_object *existing)
{
        static const struct {
                const char *key, *effect;
        } tol[] = {
                { "node.kubernetes.io/not-ready", "NoExecute" },
                { "node.kubernetes.io/unreachable", "NoExecute" },
                { "node.kubernetes.io/disk-pressure", "NoSchedule" },
                { "node.kubernetes.io/memory-pressure", "NoSchedule" },
                { "node.kubernetes.io/pid-pressure", "NoSchedule" },
                { "node.kubernetes.io/unschedulable", "NoSchedule" },
        };
        json_object *out = existing && json_object_is_type(existing, json_type_array) ? mr_json_copy(existing)
                                                                                      : json_object_new_array();
        if (!out)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(tol); i++) {
                bool have = false;
                for (size_t j = 0; j < json_object_array_length(out); j++) {
                        json_object *t = json_object_array_get_idx(out, j);
                        if (streq_ptr(mr_json_get_str(t, "key", NULL), tol[i].key) &&
                            streq_ptr(mr_json_get_str(t, "effect", NULL), tol[i].effect))
                                have = true;
                }
                if (have)
                        continue;
                json_object *t = json_object_new_object();
                if (!t || json_object_array_add(out, t) < 0 || mr_json_set_str(t, "key", tol[i].key) < 0 ||
                    mr_json_set_str(t, "operator", "Exists") < 0 || mr_json_set_str(t, "effect", tol[i].effect) < 0) {
                        json_object_put(out);
                        return NULL;
                }
        }
        return out;
}

static json_object *node_affinity(const char *node)
{
        char buf[512];
        _cleanup_(json_object_putp) json_object *a = NULL;
        snprintf(buf, sizeof buf,
                 "{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":{\"nodeSelectorTerms\":"
                 "[{\"matchFields\":[{\"key\":\"metadata.name\",\"operator\":\"In\",\"values\":[\"%s\"]}]}]}}}",
                 node);
        if (mr_json_parse(buf, strlen(buf), sizeof buf, &a) < 0)
                return NULL;
        return TAKE_PTR(a);
}

int sim_pod_create_from_template(SimControllers *c, const char *ns, const char *prefix, json_object *tmpl,
                                 json_object *extra_labels, json_object *owner_ref, const char *node,
                                 const char *actor, char **ret_name)
{
        SimStore *s = c->store;
        json_object *created = NULL;
        int r;

        _cleanup_(json_object_putp) json_object *pod = json_object_new_object();
        if (!pod || mr_json_set_str(pod, "apiVersion", "v1") < 0 || mr_json_set_str(pod, "kind", "Pod") < 0)
                return -ENOMEM;
        json_object *meta = mr_json_copy(mr_json_get(tmpl, "metadata", NULL));
        if (!meta)
                meta = json_object_new_object();
        if (!meta)
                return -ENOMEM;
        json_object_object_add(pod, "metadata", meta);
        json_object *spec = mr_json_copy(mr_json_get(tmpl, "spec", NULL));
        if (!spec)
                spec = json_object_new_object();
        if (!spec)
                return -ENOMEM;
        json_object_object_add(pod, "spec", spec);
        json_object *labels = mr_json_ensure_object(meta, "labels", NULL);
        json_object_object_del(meta, "name");
        if (!labels || mr_json_set_str(meta, "generateName", prefix) < 0 || mr_json_set_str(meta, "namespace", ns) < 0)
                return -ENOMEM;
        if (extra_labels) {
                json_object_object_foreach(extra_labels, lk, lv)
                        json_object_object_add(labels, lk, json_object_get(lv));
        }
        if (owner_ref) {
                json_object *refs = json_object_new_array();
                if (!refs)
                        return -ENOMEM;
                json_object_object_add(meta, "ownerReferences", refs);
                json_object_array_add(refs, json_object_get(owner_ref));
        }
        if (!mr_json_get(spec, "terminationGracePeriodSeconds", NULL) &&
            mr_json_set_int(spec, "terminationGracePeriodSeconds", 30) < 0)
                return -ENOMEM;
        if (!mr_json_get(spec, "restartPolicy", NULL) && mr_json_set_str(spec, "restartPolicy", "Always") < 0)
                return -ENOMEM;
        if (!mr_json_get(spec, "schedulerName", NULL) && mr_json_set_str(spec, "schedulerName", "default-scheduler") < 0)
                return -ENOMEM;
        if (node) {
                json_object *tol = sim_daemon_tolerations(mr_json_get(spec, "tolerations", NULL));
                json_object *aff = node_affinity(node);
                if (!tol || !aff) {
                        json_object_put(tol);
                        json_object_put(aff);
                        return -ENOMEM;
                }
                json_object_object_add(spec, "tolerations", tol);
                json_object_object_add(spec, "affinity", aff);
                if (mr_json_set_str(spec, "nodeName", node) < 0)
                        return -ENOMEM;
        }
        const char *rev = sim_injection_revision(s, ns, labels);
        if (rev) {
                r = inject_sidecar(pod, rev);
                if (r < 0)
                        return r;
        }
        json_object *status = mr_json_ensure_object(pod, "status", NULL);
        if (!status || mr_json_set_str(status, "phase", "Pending") < 0 ||
            mr_json_set_str(status, "qosClass", "BestEffort") < 0)
                return -ENOMEM;
        r = sim_store_create(s, &SIM_PODS, TAKE_PTR(pod), actor, &created, NULL);
        if (r < 0)
                return r;
        if (ret_name) {
                *ret_name = strdup(strempty(mr_json_get_str(created, "metadata", "name", NULL)));
                if (!*ret_name)
                        return -ENOMEM;
        }
        return 0;
}
