/* SPDX-License-Identifier: Apache-2.0 */
/*
 * drain.c — the drain engine (contract: drain.h; algorithm: kubectl drain,
 * shared/reference/kubernetes-api.md §7.5), entirely on sd-event.
 *
 * Shape. One informer-style watch per node (fieldSelector spec.nodeName=N)
 * does two jobs: its first list (RESET, ADDED…, SYNCED) is the pod list
 * kubectl gets with GET /api/v1/pods?fieldSelector=…, and its events later
 * tell when an evicted pod is gone. Watching all pods of the node and
 * applying podSelector here (rather than sending it as labelSelector) keeps
 * a pod whose labels change in view: the server would report it DELETED.
 *
 *   LISTING ──every node synced──► CHECKING ──DaemonSets checked──► EVICTING ──all settled──► done
 *               classify pods       GET daemonsets/<owner>           queue → in flight →
 *                                   (one per distinct owner)         (429: backoff) → terminating → gone
 *
 * Classification is kubectl's filter chain in its order; the first filter
 * that says "not okay" decides, so a pod with an emptyDir and no controller
 * is reported once, for its local storage. Errors are collected for every
 * pod and reported together before anything is evicted.
 *
 * Pods. Each pod to evict or delete is a DrainPod with one state:
 *   QUEUED → EVICTING (request in flight, holds one of `concurrency` slots)
 *          → TERMINATING (201) → GONE (watch)            or GONE at once (404)
 *          → RETRY_WAIT (429 or a transient failure; a timer re-queues it)
 *          → FAILED (refused for good)
 * The watch may see a pod go in any state (someone else deleted it, or the
 * DELETED event beat the 201): a waiting pod is gone at once, one with its
 * request in flight is marked and settled as gone when the answer comes.
 * "Gone" is a DELETED event with the pod's UID, an ADDED/MODIFIED of the
 * same name with another UID (a StatefulSet replacement), or absence from
 * a relist (after 410 Gone the watch lists again).
 *
 * Evictions are sent with no_retry: the client would otherwise retry a PDB
 * 429 five times on its own short backoff and hide the block from the
 * progress. Here 429 is retried until the drain timeout on the drain's own
 * jittered backoff (1 s → 10 s by default, or the server's Retry-After),
 * and other failures the server may not have acted on (connection refused,
 * timeouts, 502–504, 409) a few times: an eviction is idempotent in effect
 * (a second one of a deleting pod succeeds, one of a gone pod is 404).
 * 403 "being terminated" (namespace terminating) is retried like 429, as
 * kubectl does. A 500 is that pod's failure: it is how the server says
 * "more than one PodDisruptionBudget".
 *
 * The PDB behind a 429 is not in the Status message ("Cannot evict pod as
 * it would violate the pod's disruption budget."): the real server puts it
 * in details.causes, which KubeStatus does not carry. So the message is
 * searched first (for servers that put a cause there) and otherwise the
 * namespace's PDBs are listed once per blocked pod and matched against its
 * labels as the server does (policy/v1: an empty selector matches every
 * pod, a null one none).
 *
 * A blocked pod is not left to its backoff alone: once its PDB is known,
 * the namespace's PDBs are watched (one watch per namespace, started on
 * the first block there), and when the PDB's status.disruptionsAllowed
 * rises above 0 the pods it blocks are sent again at once, the longest
 * blocked first, as many as it allows. kubectl retries every 5 s; here a
 * pod behind a maxUnavailable: 1 budget leaves as soon as the previous
 * one's replacement is Ready (the backoff stays as the fallback, for a
 * watch that lags or a PDB that could not be named).
 *
 * Finished pods (Succeeded/Failed) are deleted rather than evicted, with
 * their UID as precondition so a same-named replacement is never touched
 * (409 then means "replaced": gone).
 *
 * Callbacks. Progress goes through a defer source enabled ONESHOT on every
 * change, so a burst of changes in one iteration reaches the caller once.
 * The end goes through another defer source: where the end is decided only
 * the result is recorded (every callback after that sees PHASE_DONE and
 * returns); the done source tears down (cancels calls, stops watches,
 * disarms timers) and then calls on_done. Nothing is cancelled from inside
 * a watch handler, because handlers run inside libcurl's write callback
 * and libcurl forbids removing a transfer from the multi handle there (a
 * DELETED event that ended the drain used to free another transfer under
 * curl's feet). And no user code runs inside a libcurl or watch callback,
 * so on_done and on_progress may free the Drain.
 */
#include <stdarg.h>
#include <stdio.h>

#include "drain.h"
#include "meshroll/backoff.h"
#include "meshroll/selector.h"

#define DEFAULT_CONCURRENCY 10u
#define DEFAULT_RETRY_BASE (1 * USEC_PER_SEC)
#define DEFAULT_RETRY_CAP (10 * USEC_PER_SEC)
/* Transient failures (not 429) tolerated per pod before it fails. */
#define MAX_TRANSIENT_FAILURES 5u
/* Names listed in a message before "and N more". */
#define MESSAGE_MAX_NAMES 20u
#define MESSAGE_MAX (8u << 10)

typedef enum Phase {
        PHASE_LISTING,
        PHASE_CHECKING,
        PHASE_EVICTING,
        PHASE_DONE,
} Phase;

typedef enum PodAction {
        ACTION_EVICT,
        ACTION_DELETE,          /* finished: DELETE with the UID as precondition */
        ACTION_SKIP,            /* DaemonSet (its DaemonSet exists) or mirror pod */
        ACTION_CHECK_DAEMONSET, /* waiting for GET daemonsets/<owner> */
        ACTION_REFUSE,          /* cannot be drained with these options: problem says why */
} PodAction;

typedef enum PodProblem {
        PROBLEM_NONE,
        PROBLEM_DAEMONSET_MISSING,
        PROBLEM_LOCAL_STORAGE,
        PROBLEM_UNMANAGED,
        _PROBLEM_MAX,
} PodProblem;

typedef enum PodState {
        POD_QUEUED,
        POD_EVICTING,
        POD_RETRY_WAIT,
        POD_TERMINATING,
        POD_GONE,
        POD_FAILED,
} PodState;

typedef struct DrainNode DrainNode;
typedef struct DaemonSetCheck DaemonSetCheck;

/* The PDBs of one namespace, watched once a pod there was blocked by one of them. */
typedef struct PdbWatch {
        Drain *drain;
        char *ns;
        KubeWatch *watch;
} PdbWatch;

typedef struct DrainPod {
        Drain *drain;
        DrainNode *node;
        json_object *obj;            /* as first listed (owned reference) */
        const char *ns, *name, *uid; /* borrowed from obj */
        PodAction action;
        PodProblem problem;
        DaemonSetCheck *ds; /* ACTION_CHECK_DAEMONSET */
        PodState state;
        bool seen;            /* present in the relist under way */
        bool gone_seen;       /* the watch saw it go while its eviction was in flight */
        bool blocked;         /* last eviction answer was a PDB 429 */
        uint64_t blocked_seq; /* when it was blocked last (larger = more recent) */
        unsigned transient_failures;
        MrBackoff backoff;
        KubeCall *call;     /* eviction or deletion in flight */
        KubeCall *pdb_call; /* PDB list in flight */
        sd_event_source *retry;
        char pdb[256]; /* "ns/name" of the PDB that blocked it, or "" */
        int error;     /* POD_FAILED */
        char *error_message;
} DrainPod;

struct DrainNode {
        Drain *drain;
        char *name;
        KubeWatch *watch;
        bool synced;         /* the first list is in */
        bool relisting;      /* between a later RESET and its SYNCED */
        json_object *listed; /* first list, until classified (owned array) */
};

struct DaemonSetCheck {
        Drain *drain;
        char *ns, *name;
        KubeCall *call;
        bool pending;
        int result; /* 0 exists, -ENOENT missing, other: the API failed */
        char *message;
};

struct Drain {
        KubeClient *client;
        sd_event *event;
        DrainOptions opts;
        char *pod_selector;
        MrSelector *selector;

        DrainNode *nodes;
        size_t n_nodes;
        DrainPod **pods;
        size_t n_pods;
        DaemonSetCheck **checks;
        size_t n_checks;
        PdbWatch **pdb_watches;
        size_t n_pdb_watches;

        Phase phase;
        unsigned in_flight;
        uint64_t block_seq;

        sd_event_source *timeout_source, *progress_source, *done_source;
        drain_progress_t on_progress;
        drain_done_t on_done;
        void *userdata;

        int error;
        char *message;
        DrainProgress final;
};

/* ---- messages ---------------------------------------------------------------------------------- */

/* A capped sentence builder: appending never fails, overflow ends in "…". */
typedef struct Msg {
        char buf[MESSAGE_MAX];
        size_t len;
} Msg;

_printf_(2, 3) static void msg_append(Msg *m, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (m->len >= sizeof(m->buf) - 1)
                return;
        va_start(ap, fmt);
        n = vsnprintf(m->buf + m->len, sizeof(m->buf) - m->len, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t)n >= sizeof(m->buf) - m->len) {
                m->len = sizeof(m->buf) - 1;
                memcpy(m->buf + m->len - strlen("…"), "…", strlen("…"));
                return;
        }
        m->len += (size_t)n;
}

static const char *problem_text(PodProblem p)
{
        switch (p) {
        case PROBLEM_DAEMONSET_MISSING:
                return "cannot delete Pods whose DaemonSet is missing (set force to override)";
        case PROBLEM_LOCAL_STORAGE:
                return "cannot delete Pods with local storage (set deleteEmptyDirData to override)";
        case PROBLEM_UNMANAGED:
                return "cannot delete Pods that declare no controller (set force to override)";
        default:
                return "";
        }
}

static const char *state_text(const DrainPod *p)
{
        switch (p->state) {
        case POD_QUEUED:
                return "waiting to be evicted";
        case POD_EVICTING:
                return "being evicted";
        case POD_RETRY_WAIT:
                return p->blocked ? "blocked" : "waiting to retry";
        case POD_TERMINATING:
                return "terminating";
        case POD_GONE:
                return "gone";
        case POD_FAILED:
                return "failed";
        }
        return "";
}

/* ---- pod facts (kubectl's filters, pkg/drain/filters.go) ---------------------------------------- */

static bool pod_is_finished(json_object *pod)
{
        const char *phase = mr_json_get_str(pod, "status", "phase", NULL);
        return streq_ptr(phase, "Succeeded") || streq_ptr(phase, "Failed");
}

/* The ownerReference with controller: true (metav1.GetControllerOf), borrowed, or NULL. */
static json_object *pod_controller(json_object *pod)
{
        json_object *refs = mr_json_get(pod, "metadata", "ownerReferences", NULL);
        if (!refs || !json_object_is_type(refs, json_type_array))
                return NULL;
        for (size_t i = 0; i < json_object_array_length(refs); i++) {
                json_object *ref = json_object_array_get_idx(refs, i);
                if (mr_json_get_bool(false, ref, "controller", NULL))
                        return ref;
        }
        return NULL;
}

static bool pod_is_mirror(json_object *pod)
{
        return mr_json_get(pod, "metadata", "annotations", "kubernetes.io/config.mirror", NULL) != NULL;
}

static bool pod_has_emptydir(json_object *pod)
{
        json_object *vols = mr_json_get(pod, "spec", "volumes", NULL);
        if (!vols || !json_object_is_type(vols, json_type_array))
                return false;
        for (size_t i = 0; i < json_object_array_length(vols); i++)
                if (mr_json_get(json_object_array_get_idx(vols, i), "emptyDir", NULL))
                        return true;
        return false;
}

/* The filters after the DaemonSet one: mirror, local storage, unreplicated. */
static void classify_rest(Drain *d, DrainPod *p)
{
        bool finished = pod_is_finished(p->obj);

        if (pod_is_mirror(p->obj))
                p->action = ACTION_SKIP;
        else if (!finished && pod_has_emptydir(p->obj) && !d->opts.delete_emptydir_data) {
                p->action = ACTION_REFUSE;
                p->problem = PROBLEM_LOCAL_STORAGE;
        } else if (!finished && !pod_controller(p->obj) && !d->opts.force) {
                p->action = ACTION_REFUSE;
                p->problem = PROBLEM_UNMANAGED;
        } else
                p->action = finished ? ACTION_DELETE : ACTION_EVICT;
}

/* A pod the drain watches for: it will be (or may be) evicted or deleted. */
static bool pod_is_tracked(const DrainPod *p)
{
        return p->action == ACTION_EVICT || p->action == ACTION_DELETE ||
               p->action == ACTION_CHECK_DAEMONSET;
}

/* ---- progress and the end ----------------------------------------------------------------------- */

static void compute_progress(const Drain *d, DrainProgress *ret)
{
        const DrainPod *shown = NULL;
        DrainProgress p = {};

        for (size_t i = 0; i < d->n_pods; i++) {
                const DrainPod *x = d->pods[i];
                if (x->action == ACTION_SKIP) {
                        p.skipped++;
                        continue;
                }
                if (x->action != ACTION_EVICT && x->action != ACTION_DELETE)
                        continue;
                p.total++;
                if (d->phase < PHASE_EVICTING)
                        continue;
                switch (x->state) {
                case POD_QUEUED:
                case POD_EVICTING:
                case POD_RETRY_WAIT:
                        p.evicting++;
                        if (x->blocked) {
                                p.blocked++;
                                /* the most recently blocked pod, preferring one whose PDB is known */
                                if (!shown || (!shown->pdb[0] && x->pdb[0]) ||
                                    (!shown->pdb[0] == !x->pdb[0] && x->blocked_seq > shown->blocked_seq))
                                        shown = x;
                        }
                        break;
                case POD_TERMINATING:
                        p.terminating++;
                        break;
                case POD_GONE:
                        p.gone++;
                        break;
                case POD_FAILED:
                        p.failed++;
                        break;
                }
        }
        if (shown) {
                snprintf(p.blocking_pdb, sizeof(p.blocking_pdb), "%s", shown->pdb);
                snprintf(p.blocked_pod, sizeof(p.blocked_pod), "%s/%s", shown->ns, shown->name);
        }
        *ret = p;
}

static void changed(Drain *d)
{
        if (d->phase == PHASE_DONE || !d->on_progress)
                return;
        (void)sd_event_source_set_enabled(d->progress_source, SD_EVENT_ONESHOT);
}

static int on_progress_source(sd_event_source *s, void *userdata)
{
        Drain *d = userdata;
        DrainProgress p;

        if (d->phase == PHASE_DONE || !d->on_progress)
                return 0;
        compute_progress(d, &p);
        d->on_progress(d, &p, d->userdata); /* may free d */
        return 0;
}

static void teardown(Drain *d);

static int on_done_source(sd_event_source *s, void *userdata)
{
        Drain *d = userdata;

        teardown(d);
        d->on_done(d, d->error, &d->final, strempty(d->message), d->userdata); /* may free d */
        return 0;
}

/*
 * Cancels every request, watch and timer; no callback of theirs runs
 * afterwards. Only ever called from the done source or drain_free, never
 * from inside a watch handler: those run inside libcurl's write callback,
 * where removing another transfer from the multi handle is not allowed.
 */
static void teardown(Drain *d)
{
        for (size_t i = 0; i < d->n_pods; i++) {
                DrainPod *p = d->pods[i];
                if (p->call) {
                        p->call = kube_call_cancel(p->call);
                        if (d->in_flight > 0)
                                d->in_flight--;
                }
                p->pdb_call = kube_call_cancel(p->pdb_call);
                p->retry = sd_event_source_disable_unref(p->retry);
        }
        for (size_t i = 0; i < d->n_checks; i++)
                d->checks[i]->call = kube_call_cancel(d->checks[i]->call);
        for (size_t i = 0; i < d->n_nodes; i++) {
                KubeWatch *w = TAKE_PTR(d->nodes[i].watch);
                kube_watch_stop(w);
        }
        for (size_t i = 0; i < d->n_pdb_watches; i++) {
                KubeWatch *w = TAKE_PTR(d->pdb_watches[i]->watch);
                kube_watch_stop(w);
        }
        d->timeout_source = sd_event_source_disable_unref(d->timeout_source);
        if (d->progress_source)
                (void)sd_event_source_set_enabled(d->progress_source, SD_EVENT_OFF);
}

/*
 * Ends the drain: records the result and the final progress, and lets the
 * done source stop everything and report. Until then every callback sees
 * PHASE_DONE and does nothing.
 */
_printf_(3, 4) static void finish(Drain *d, int error, const char *fmt, ...)
{
        va_list ap;
        char *m = NULL;

        if (d->phase == PHASE_DONE)
                return;
        compute_progress(d, &d->final);
        d->phase = PHASE_DONE;
        d->error = error;
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL; /* on_done then gets "" */
        va_end(ap);
        free(d->message);
        d->message = m;
        (void)sd_event_source_set_enabled(d->progress_source, SD_EVENT_OFF);
        (void)sd_event_source_set_enabled(d->done_source, SD_EVENT_ONESHOT);
}

/* Appends "ns/a (state), ns/b (state) and N more" for the pods want() picks. */
static void msg_append_pods(Msg *m, const Drain *d, bool (*want)(const DrainPod *p))
{
        unsigned shown = 0, more = 0;

        for (size_t i = 0; i < d->n_pods; i++) {
                const DrainPod *p = d->pods[i];
                if (!want(p))
                        continue;
                if (shown >= MESSAGE_MAX_NAMES) {
                        more++;
                        continue;
                }
                msg_append(m, "%s%s/%s (%s", shown ? ", " : "", p->ns, p->name, state_text(p));
                if (p->blocked && p->pdb[0])
                        msg_append(m, " by PodDisruptionBudget %s", p->pdb);
                msg_append(m, ")");
                shown++;
        }
        if (more)
                msg_append(m, " and %u more", more);
}

static bool pod_is_unsettled(const DrainPod *p)
{
        return (p->action == ACTION_EVICT || p->action == ACTION_DELETE) && p->state != POD_GONE &&
               p->state != POD_FAILED;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
        Drain *d = userdata;
        char dur[32];
        Msg m = {};

        mr_duration_format(d->opts.timeout, dur, sizeof(dur));
        if (d->phase < PHASE_EVICTING)
                msg_append(&m,
                           "timed out after %s before eviction began (listing pods or checking DaemonSets)",
                           dur);
        else {
                msg_append(&m, "timed out after %s; pods left: ", dur);
                msg_append_pods(&m, d, pod_is_unsettled);
        }
        finish(d, -ETIMEDOUT, "%s", m.buf);
        return 0;
}

/* Ends the drain once every tracked pod is gone or failed. */
static void check_complete(Drain *d)
{
        const DrainPod *first_failed = NULL;
        unsigned gone = 0;

        if (d->phase != PHASE_EVICTING)
                return;
        for (size_t i = 0; i < d->n_pods; i++) {
                const DrainPod *p = d->pods[i];
                if (pod_is_unsettled(p))
                        return;
                if (p->state == POD_FAILED && !first_failed)
                        first_failed = p;
                if ((p->action == ACTION_EVICT || p->action == ACTION_DELETE) && p->state == POD_GONE)
                        gone++;
        }
        if (first_failed) {
                Msg m = {};
                msg_append(&m, "%s", strempty(first_failed->error_message));
                for (size_t i = 0; i < d->n_pods; i++)
                        if (d->pods[i] != first_failed && d->pods[i]->state == POD_FAILED)
                                msg_append(&m, "; %s", strempty(d->pods[i]->error_message));
                finish(d, first_failed->error, "%s", m.buf);
                return;
        }
        Msg m = {};
        for (size_t i = 0; i < d->n_nodes; i++)
                msg_append(&m, "%s%s", i ? ", " : "", d->nodes[i].name);
        DrainProgress p;
        compute_progress(d, &p);
        finish(d, 0, "drained %s: %u pods evicted or deleted, %u left alone", m.buf, gone, p.skipped);
}

/* ---- evicting ----------------------------------------------------------------------------------- */

static void pump(Drain *d);

/*
 * The pod is gone. With its eviction in flight the answer is awaited rather
 * than cancelled (this may run inside a watch handler, see teardown()); the
 * answer then settles it as gone whatever it says.
 */
static void pod_gone(DrainPod *p)
{
        if (p->state == POD_GONE || p->state == POD_FAILED)
                return;
        if (p->state == POD_EVICTING) {
                p->gone_seen = true;
                return;
        }
        p->retry = sd_event_source_disable_unref(p->retry);
        p->state = POD_GONE;
        p->blocked = false;
        changed(p->drain);
}

_printf_(3, 4) static void pod_fail(DrainPod *p, int error, const char *fmt, ...)
{
        va_list ap;

        p->retry = sd_event_source_disable_unref(p->retry);
        p->state = POD_FAILED;
        p->blocked = false;
        p->error = error;
        free(p->error_message);
        va_start(ap, fmt);
        if (vasprintf(&p->error_message, fmt, ap) < 0)
                p->error_message = NULL;
        va_end(ap);
        changed(p->drain);
}

/* After any pod's state changed: fill free slots, then see whether the drain is over. */
static void advance(Drain *d)
{
        pump(d);
        check_complete(d);
}

static int on_retry_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        DrainPod *p = userdata;

        p->retry = sd_event_source_disable_unref(p->retry);
        if (p->drain->phase == PHASE_DONE)
                return 0;
        p->state = POD_QUEUED;
        advance(p->drain);
        return 0;
}

static void pod_retry_later(DrainPod *p, usec_t retry_after)
{
        usec_t delay = mr_backoff_next_at_least(&p->backoff, retry_after);
        int r;

        p->state = POD_RETRY_WAIT;
        r = sd_event_add_time_relative(p->drain->event, &p->retry, CLOCK_MONOTONIC, delay, USEC_PER_MSEC,
                                       on_retry_timer, p);
        if (r < 0)
                pod_fail(p, r, "cannot arm the retry timer for %s/%s: %s", p->ns, p->name, mr_strerror(r));
        changed(p->drain);
}

/* "The disruption budget web-pdb needs 2 healthy pods…" (a DisruptionBudget cause) → "web-pdb". */
static bool pdb_from_message(const char *message, char *buf, size_t size)
{
        const char *s = message ? strstr(message, "The disruption budget ") : NULL;
        size_t n;

        if (!s)
                return false;
        s += strlen("The disruption budget ");
        n = strcspn(s, " ");
        if (n == 0 || n >= size)
                return false;
        memcpy(buf, s, n);
        buf[n] = 0;
        return true;
}

/*
 * A PDB allows `allowed` disruptions now: send that many of the pods it
 * blocks (waiting for their retry timer) at once, the longest blocked first.
 */
static void pdb_allows(Drain *d, const char *pdb, int64_t allowed)
{
        bool woke = false;

        while (allowed-- > 0) {
                DrainPod *first = NULL;
                for (size_t i = 0; i < d->n_pods; i++) {
                        DrainPod *p = d->pods[i];
                        if (p->state == POD_RETRY_WAIT && p->blocked && streq(p->pdb, pdb) &&
                            (!first || p->blocked_seq < first->blocked_seq))
                                first = p;
                }
                if (!first)
                        break;
                first->retry = sd_event_source_disable_unref(first->retry);
                first->state = POD_QUEUED;
                woke = true;
        }
        if (woke) {
                changed(d);
                advance(d);
        }
}

static int on_pdb_event(KubeWatch *w, KubeWatchEventType type, json_object *obj, void *userdata)
{
        PdbWatch *pw = userdata;
        Drain *d = pw->drain;
        char key[256];
        int64_t allowed = 0;

        if (d->phase != PHASE_EVICTING || (type != KUBE_WATCH_ADDED && type != KUBE_WATCH_MODIFIED))
                return 0;
        if (mr_json_get_int(&allowed, obj, "status", "disruptionsAllowed", NULL) < 0 || allowed <= 0)
                return 0;
        snprintf(key, sizeof(key), "%s/%s", pw->ns, strempty(mr_json_get_str(obj, "metadata", "name", NULL)));
        pdb_allows(d, key, allowed);
        return 0;
}

/* The handler never fails, so this runs only from teardown's kube_watch_stop. */
static void on_pdb_watch_stop(KubeWatch *w, int error, void *userdata)
{
}

/*
 * Watches the PDBs of p's namespace unless already done: from rv (the
 * resourceVersion of the PDB list just read) when known, so nothing is
 * listed twice, else informer-style. Failure only loses the early wake-up.
 */
static void pod_watch_pdbs(DrainPod *p, const char *rv)
{
        Drain *d = p->drain;
        PdbWatch *pw, **a;

        for (size_t i = 0; i < d->n_pdb_watches; i++)
                if (streq(d->pdb_watches[i]->ns, p->ns))
                        return;
        a = reallocarray(d->pdb_watches, d->n_pdb_watches + 1, sizeof(*a));
        if (!a)
                return;
        d->pdb_watches = a;
        pw = calloc(1, sizeof(*pw));
        if (!pw)
                return;
        *pw = (PdbWatch){.drain = d, .ns = strdup(p->ns)};
        d->pdb_watches[d->n_pdb_watches++] = pw;
        if (!pw->ns)
                return;
        KubeWatchOptions wo = {.resource = &KUBE_PDBS, .ns = pw->ns, .resource_version = isempty(rv) ? NULL : rv};
        (void)kube_watch_start(d->client, &wo, on_pdb_event, on_pdb_watch_stop, pw, &pw->watch);
}

static void on_pdb_list(KubeClient *c, int error, json_object *body, const KubeStatus *st, void *userdata)
{
        DrainPod *p = userdata;
        json_object *items = mr_json_get(body, "items", NULL);
        json_object *labels = mr_json_get(p->obj, "metadata", "labels", NULL);

        p->pdb_call = NULL;
        if (p->drain->phase == PHASE_DONE || error < 0 || !items ||
            !json_object_is_type(items, json_type_array))
                return; /* unnamed for now; the next 429 asks again */
        for (size_t i = 0; i < json_object_array_length(items); i++) {
                json_object *pdb = json_object_array_get_idx(items, i);
                json_object *sel = mr_json_get(pdb, "spec", "selector", NULL);
                const char *name = mr_json_get_str(pdb, "metadata", "name", NULL);
                _cleanup_(mr_selector_freep) MrSelector *s = NULL;

                /* a null or unparseable selector matches nothing, as on the server */
                if (!name || !sel || mr_selector_from_json(sel, &s, NULL) < 0)
                        continue;
                if (mr_selector_matches(s, labels)) {
                        snprintf(p->pdb, sizeof(p->pdb), "%s/%s", p->ns, name);
                        pod_watch_pdbs(p, mr_json_get_str(body, "metadata", "resourceVersion", NULL));
                        changed(p->drain);
                        return;
                }
        }
}

/* Names the PDB behind a 429: from the message when it says, else by listing the namespace's PDBs. */
static void pod_find_pdb(DrainPod *p, const KubeStatus *st)
{
        _cleanup_free_ char *path = NULL;
        char name[200];

        if (pdb_from_message(st->message, name, sizeof(name))) {
                snprintf(p->pdb, sizeof(p->pdb), "%s/%s", p->ns, name);
                pod_watch_pdbs(p, NULL);
                return;
        }
        if (p->pdb[0] || p->pdb_call)
                return;
        if (kube_path(&KUBE_PDBS, p->ns, NULL, NULL, &path) < 0)
                return;
        KubeRequest req = {.method = "GET", .path = path};
        (void)kube_request_async(p->drain->client, &req, on_pdb_list, p, &p->pdb_call);
}

static bool is_transient(int error, const KubeStatus *st)
{
        switch (error) {
        case -ECONNREFUSED:
        case -ETIMEDOUT:
        case -MR_ETRANSPORT:
        case -MR_ECONFLICT:
                return true;
        case -EIO:
                /* 500 is the server's answer (e.g. more than one PodDisruptionBudget); 502–504 are on the
                 * way */
                return st->http_code != 500;
        default:
                return false;
        }
}

static void on_evicted(KubeClient *c, int error, json_object *body, const KubeStatus *st, void *userdata)
{
        DrainPod *p = userdata;
        Drain *d = p->drain;
        const char *verb = p->action == ACTION_DELETE ? "deleting" : "evicting";

        p->call = NULL;
        if (d->in_flight > 0)
                d->in_flight--;
        if (d->phase == PHASE_DONE)
                return;

        p->state = POD_QUEUED; /* no longer in flight; every branch below settles it */
        if (p->gone_seen) {
                /* the watch saw it go while we waited for this answer */
                pod_gone(p);
        } else if (error >= 0) {
                p->state = POD_TERMINATING;
                p->blocked = false;
                mr_backoff_reset(&p->backoff);
                changed(d);
        } else if (error == -ENOENT || (error == -MR_ECONFLICT && p->action == ACTION_DELETE))
                /* 404: already gone; 409 on a UID precondition: replaced by a namesake */
                pod_gone(p);
        else if (error == -MR_ETOOMANY) {
                if (strstr(st->message, "disruption budget")) {
                        p->blocked = true;
                        p->blocked_seq = ++d->block_seq;
                        pod_find_pdb(p, st);
                }
                pod_retry_later(p, st->retry_after);
        } else if (error == -MR_EFORBIDDEN && strstr(st->message, "being terminated"))
                /* the namespace is terminating: kubectl waits too */
                pod_retry_later(p, st->retry_after);
        else if (is_transient(error, st) && ++p->transient_failures <= MAX_TRANSIENT_FAILURES)
                pod_retry_later(p, st->retry_after);
        else
                pod_fail(p, error, "error when %s pod %s/%s: %s", verb, p->ns, p->name,
                         st->message[0] ? st->message : mr_strerror(error));
        advance(d);
}

static json_object *eviction_body(const Drain *d, const DrainPod *p)
{
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *meta, *del;

        if (!o || mr_json_set_str(o, "apiVersion", "policy/v1") < 0 ||
            mr_json_set_str(o, "kind", "Eviction") < 0)
                return NULL;
        meta = mr_json_ensure_object(o, "metadata", NULL);
        del = mr_json_ensure_object(o, "deleteOptions", NULL);
        if (!meta || !del || mr_json_set_str(meta, "name", p->name) < 0 ||
            mr_json_set_str(meta, "namespace", p->ns) < 0)
                return NULL;
        if (d->opts.grace_period_seconds >= 0 &&
            mr_json_set_int(del, "gracePeriodSeconds", d->opts.grace_period_seconds) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static json_object *delete_options(const Drain *d, const DrainPod *p)
{
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *pre;

        if (!o || mr_json_set_str(o, "apiVersion", "v1") < 0 ||
            mr_json_set_str(o, "kind", "DeleteOptions") < 0)
                return NULL;
        pre = mr_json_ensure_object(o, "preconditions", NULL);
        if (!pre || (p->uid && mr_json_set_str(pre, "uid", p->uid) < 0))
                return NULL;
        if (d->opts.grace_period_seconds >= 0 &&
            mr_json_set_int(o, "gracePeriodSeconds", d->opts.grace_period_seconds) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* POSTs the eviction (or DELETEs a finished pod). Failure to even start it fails the pod. */
static void pod_send(DrainPod *p)
{
        Drain *d = p->drain;
        _cleanup_(json_object_putp) json_object *body = NULL;
        _cleanup_free_ char *path = NULL;
        bool evict = p->action == ACTION_EVICT;
        int r;

        body = evict ? eviction_body(d, p) : delete_options(d, p);
        if (!body) {
                pod_fail(p, -ENOMEM, "cannot build the request for %s/%s", p->ns, p->name);
                return;
        }
        r = kube_path(&KUBE_PODS, p->ns, p->name, evict ? "eviction" : NULL, &path);
        if (r < 0) {
                pod_fail(p, r, "cannot build the path for %s/%s: %s", p->ns, p->name, mr_strerror(r));
                return;
        }
        KubeRequest req = {
            .method = evict ? "POST" : "DELETE", .path = path, .body = body, .no_retry = evict};
        r = kube_request_async(d->client, &req, on_evicted, p, &p->call);
        if (r < 0) {
                pod_fail(p, r, "cannot send the request for %s/%s: %s", p->ns, p->name, mr_strerror(r));
                return;
        }
        p->state = POD_EVICTING;
        d->in_flight++;
        changed(d);
}

static void pump(Drain *d)
{
        if (d->phase != PHASE_EVICTING)
                return;
        for (size_t i = 0; i < d->n_pods && d->in_flight < d->opts.concurrency; i++) {
                DrainPod *p = d->pods[i];
                if ((p->action == ACTION_EVICT || p->action == ACTION_DELETE) && p->state == POD_QUEUED)
                        pod_send(p);
        }
}

/* ---- classifying -------------------------------------------------------------------------------- */

static void decide(Drain *d)
{
        unsigned count[_PROBLEM_MAX] = {};
        Msg m = {};

        if (d->phase != PHASE_CHECKING)
                return;
        for (size_t i = 0; i < d->n_checks; i++)
                if (d->checks[i]->pending)
                        return;
        for (size_t i = 0; i < d->n_checks; i++) {
                const DaemonSetCheck *c = d->checks[i];
                if (c->result < 0 && c->result != -ENOENT) {
                        finish(d, c->result, "cannot check DaemonSet %s/%s: %s", c->ns, c->name,
                               strempty(c->message));
                        return;
                }
        }
        for (size_t i = 0; i < d->n_pods; i++)
                if (d->pods[i]->action == ACTION_REFUSE)
                        count[d->pods[i]->problem]++;
        for (PodProblem pr = PROBLEM_NONE + 1; pr < _PROBLEM_MAX; pr++) {
                unsigned shown = 0;
                if (!count[pr])
                        continue;
                msg_append(&m, "%s%s: ", m.len ? "; " : "", problem_text(pr));
                for (size_t i = 0; i < d->n_pods; i++) {
                        const DrainPod *p = d->pods[i];
                        if (p->action != ACTION_REFUSE || p->problem != pr)
                                continue;
                        if (shown < MESSAGE_MAX_NAMES)
                                msg_append(&m, "%s%s/%s", shown ? ", " : "", p->ns, p->name);
                        shown++;
                }
                if (shown > MESSAGE_MAX_NAMES)
                        msg_append(&m, " and %u more", shown - MESSAGE_MAX_NAMES);
        }
        if (m.len > 0) {
                finish(d, -MR_ECONFIG, "%s", m.buf);
                return;
        }
        d->phase = PHASE_EVICTING;
        changed(d);
        advance(d);
}

static void on_daemonset(KubeClient *c, int error, json_object *body, const KubeStatus *st, void *userdata)
{
        DaemonSetCheck *check = userdata;
        Drain *d = check->drain;

        check->call = NULL;
        if (d->phase == PHASE_DONE)
                return;
        check->pending = false;
        check->result = error < 0 ? error : 0;
        if (error < 0)
                check->message = strdup(st->message[0] ? st->message : mr_strerror(error));
        /* kubectl: the DaemonSet exists → skip; 404 → delete when forced, else an error */
        for (size_t i = 0; i < d->n_pods; i++) {
                DrainPod *p = d->pods[i];
                if (p->action != ACTION_CHECK_DAEMONSET || p->ds != check)
                        continue;
                if (error >= 0)
                        p->action = ACTION_SKIP;
                else if (error == -ENOENT && d->opts.force)
                        classify_rest(d, p);
                else if (error == -ENOENT) {
                        p->action = ACTION_REFUSE;
                        p->problem = PROBLEM_DAEMONSET_MISSING;
                }
                /* other errors end the drain in decide() */
        }
        changed(d);
        decide(d);
}

static int check_daemonset(Drain *d, DrainPod *p, const char *name)
{
        _cleanup_free_ char *path = NULL;
        DaemonSetCheck *c, **a;
        int r;

        for (size_t i = 0; i < d->n_checks; i++)
                if (streq(d->checks[i]->ns, p->ns) && streq(d->checks[i]->name, name)) {
                        p->ds = d->checks[i];
                        return 0;
                }
        r = kube_path(&KUBE_DAEMONSETS, p->ns, name, NULL, &path);
        if (r < 0)
                return r;
        a = reallocarray(d->checks, d->n_checks + 1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        d->checks = a;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (DaemonSetCheck){.drain = d, .ns = strdup(p->ns), .name = strdup(name), .pending = true};
        d->checks[d->n_checks++] = c;
        if (!c->ns || !c->name)
                return -ENOMEM;
        KubeRequest req = {.method = "GET", .path = path};
        r = kube_request_async(d->client, &req, on_daemonset, c, &c->call);
        if (r < 0)
                return r;
        p->ds = c;
        return 0;
}

/* Adds one listed pod (borrowed obj) of node n, classified by kubectl's filters. */
static int add_pod(Drain *d, DrainNode *n, json_object *obj)
{
        json_object *ctl;
        DrainPod *p, **a;
        int r;

        if (!mr_selector_matches(d->selector, mr_json_get(obj, "metadata", "labels", NULL)))
                return 0;
        a = reallocarray(d->pods, d->n_pods + 1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        d->pods = a;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        *p = (DrainPod){
            .drain = d,
            .node = n,
            .obj = json_object_get(obj),
            .ns = strempty(mr_json_get_str(obj, "metadata", "namespace", NULL)),
            .name = strempty(mr_json_get_str(obj, "metadata", "name", NULL)),
            .uid = mr_json_get_str(obj, "metadata", "uid", NULL),
            .state = POD_QUEUED,
        };
        mr_backoff_init(&p->backoff);
        p->backoff.base = d->opts.retry_base;
        p->backoff.cap = d->opts.retry_cap;
        d->pods[d->n_pods++] = p;

        ctl = pod_controller(obj);
        if (ctl && streq_ptr(mr_json_get_str(ctl, "kind", NULL), "DaemonSet")) {
                const char *owner = mr_json_get_str(ctl, "name", NULL);
                if (pod_is_finished(obj))
                        p->action = ACTION_DELETE;
                else if (!isempty(owner)) {
                        p->action = ACTION_CHECK_DAEMONSET;
                        r = check_daemonset(d, p, owner);
                        if (r < 0)
                                return r;
                } else if (d->opts.force)
                        classify_rest(d, p); /* an owner without a name cannot exist: as if it were gone */
                else {
                        p->action = ACTION_REFUSE;
                        p->problem = PROBLEM_DAEMONSET_MISSING;
                }
                return 0;
        }
        classify_rest(d, p);
        return 0;
}

/* Every node's first list is in: classify, start the DaemonSet checks, and decide when they are done. */
static void classify_all(Drain *d)
{
        int r;

        for (size_t i = 0; i < d->n_nodes; i++)
                if (!d->nodes[i].synced)
                        return;
        d->phase = PHASE_CHECKING;
        for (size_t i = 0; i < d->n_nodes; i++) {
                DrainNode *n = &d->nodes[i];
                _cleanup_(json_object_putp) json_object *listed = TAKE_PTR(n->listed);
                for (size_t k = 0; listed && k < json_object_array_length(listed); k++) {
                        r = add_pod(d, n, json_object_array_get_idx(listed, k));
                        if (r < 0) {
                                finish(d, r, "cannot classify the pods of node %s: %s", n->name,
                                       mr_strerror(r));
                                return;
                        }
                }
        }
        changed(d);
        decide(d);
}

/* ---- watching ----------------------------------------------------------------------------------- */

static DrainPod *find_pod(Drain *d, DrainNode *n, json_object *obj)
{
        const char *ns = strempty(mr_json_get_str(obj, "metadata", "namespace", NULL));
        const char *name = strempty(mr_json_get_str(obj, "metadata", "name", NULL));

        for (size_t i = 0; i < d->n_pods; i++) {
                DrainPod *p = d->pods[i];
                if (p->node == n && pod_is_tracked(p) && streq(p->name, name) && streq(p->ns, ns))
                        return p;
        }
        return NULL;
}

static int on_pod_event(KubeWatch *w, KubeWatchEventType type, json_object *obj, void *userdata)
{
        DrainNode *n = userdata;
        Drain *d = n->drain;
        DrainPod *p;

        if (d->phase == PHASE_DONE)
                return 0;
        switch (type) {
        case KUBE_WATCH_RESET:
                if (!n->synced) {
                        json_object_put(n->listed);
                        n->listed = json_object_new_array();
                        if (!n->listed)
                                return -ENOMEM;
                        break;
                }
                n->relisting = true;
                for (size_t i = 0; i < d->n_pods; i++)
                        if (d->pods[i]->node == n)
                                d->pods[i]->seen = false;
                break;
        case KUBE_WATCH_ADDED:
        case KUBE_WATCH_MODIFIED:
                if (!n->synced) {
                        if (n->listed && json_object_array_add(n->listed, json_object_get(obj)) < 0)
                                return -ENOMEM;
                        break;
                }
                p = find_pod(d, n, obj);
                if (!p)
                        break;
                if (!streq_ptr(p->uid, mr_json_get_str(obj, "metadata", "uid", NULL)))
                        pod_gone(p); /* a namesake replaced it */
                else
                        p->seen = true;
                break;
        case KUBE_WATCH_DELETED:
                p = find_pod(d, n, obj);
                if (p && streq_ptr(p->uid, mr_json_get_str(obj, "metadata", "uid", NULL)))
                        pod_gone(p);
                break;
        case KUBE_WATCH_SYNCED:
                if (!n->synced) {
                        n->synced = true;
                        classify_all(d);
                        return 0;
                }
                if (n->relisting) {
                        n->relisting = false;
                        for (size_t i = 0; i < d->n_pods; i++)
                                if (d->pods[i]->node == n && pod_is_tracked(d->pods[i]) && !d->pods[i]->seen)
                                        pod_gone(d->pods[i]);
                }
                break;
        default:
                return 0; /* bookmarks; ERROR events (the watch reconnects by itself) */
        }
        advance(d);
        return 0;
}

static void on_watch_stop(KubeWatch *w, int error, void *userdata)
{
        DrainNode *n = userdata;

        if (error < 0)
                finish(n->drain, error, "watching the pods of node %s failed: %s", n->name,
                       mr_strerror(error));
}

/* ---- the handle --------------------------------------------------------------------------------- */

int drain_start(KubeClient *client, sd_event *e, const char *const *nodes, const DrainOptions *o,
                drain_progress_t on_progress, drain_done_t on_done, void *userdata, Drain **ret)
{
        _cleanup_(drain_freep) Drain *d = NULL;
        size_t n = 0;
        int r;

        if (!client || !e || !nodes || !nodes[0] || !on_done || !ret)
                return -EINVAL;
        for (; nodes[n]; n++)
                if (isempty(nodes[n]))
                        return -EINVAL;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->client = client;
        d->event = sd_event_ref(e);
        d->on_progress = on_progress;
        d->on_done = on_done;
        d->userdata = userdata;
        d->opts = o ? *o : (DrainOptions){.grace_period_seconds = -1};
        if (d->opts.concurrency == 0)
                d->opts.concurrency = DEFAULT_CONCURRENCY;
        if (d->opts.retry_base == 0)
                d->opts.retry_base = DEFAULT_RETRY_BASE;
        if (d->opts.retry_cap == 0)
                d->opts.retry_cap = MAX(DEFAULT_RETRY_CAP, d->opts.retry_base);
        if (d->opts.pod_selector && !(d->pod_selector = strdup(d->opts.pod_selector)))
                return -ENOMEM;
        d->opts.pod_selector = d->pod_selector;
        r = mr_selector_parse(d->pod_selector, &d->selector, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return -EINVAL;

        r = sd_event_add_defer(e, &d->progress_source, on_progress_source, d);
        if (r < 0)
                return r;
        (void)sd_event_source_set_enabled(d->progress_source, SD_EVENT_OFF);
        r = sd_event_add_defer(e, &d->done_source, on_done_source, d);
        if (r < 0)
                return r;
        (void)sd_event_source_set_enabled(d->done_source, SD_EVENT_OFF);
        /* the end is reported after any progress of the same iteration */
        (void)sd_event_source_set_priority(d->done_source, SD_EVENT_PRIORITY_NORMAL + 1);
        if (d->opts.timeout > 0) {
                r = sd_event_add_time_relative(e, &d->timeout_source, CLOCK_MONOTONIC, d->opts.timeout,
                                               USEC_PER_MSEC, on_timeout, d);
                if (r < 0)
                        return r;
        }

        d->nodes = calloc(n, sizeof(*d->nodes));
        if (!d->nodes)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *field = NULL;
                DrainNode *node = &d->nodes[i];

                node->drain = d;
                node->name = strdup(nodes[i]);
                d->n_nodes++;
                if (!node->name || asprintf(&field, "spec.nodeName=%s", nodes[i]) < 0)
                        return -ENOMEM;
                KubeWatchOptions wo = {.resource = &KUBE_PODS, .field_selector = field};
                r = kube_watch_start(client, &wo, on_pod_event, on_watch_stop, node, &node->watch);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(d);
        return 0;
}

void drain_get_progress(const Drain *d, DrainProgress *ret)
{
        if (d->phase == PHASE_DONE)
                *ret = d->final;
        else
                compute_progress(d, ret);
}

Drain *drain_free(Drain *d)
{
        if (!d)
                return NULL;
        teardown(d);
        for (size_t i = 0; i < d->n_pods; i++) {
                DrainPod *p = d->pods[i];
                json_object_put(p->obj);
                free(p->error_message);
                free(p);
        }
        free(d->pods);
        for (size_t i = 0; i < d->n_checks; i++) {
                free(d->checks[i]->ns);
                free(d->checks[i]->name);
                free(d->checks[i]->message);
                free(d->checks[i]);
        }
        free(d->checks);
        for (size_t i = 0; i < d->n_pdb_watches; i++) {
                free(d->pdb_watches[i]->ns);
                free(d->pdb_watches[i]);
        }
        free(d->pdb_watches);
        for (size_t i = 0; i < d->n_nodes; i++) {
                free(d->nodes[i].name);
                json_object_put(d->nodes[i].listed);
        }
        free(d->nodes);
        sd_event_source_disable_unref(d->progress_source);
        sd_event_source_disable_unref(d->done_source);
        mr_selector_free(d->selector);
        free(d->pod_selector);
        free(d->message);
        sd_event_unref(d->event);
        free(d);
        return NULL;
}
