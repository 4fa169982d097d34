/* SPDX-License-Identifier: Apache-2.0 */
/*
 * deployment.c — the Deployment and ReplicaSet controllers
 * (k/k pkg/controller/deployment, pkg/controller/replicaset).
 *
 * Deployment sync:
 *   - the new ReplicaSet is "<deploy>-<pod-template-hash>", the hash taken
 *     over the pod template (and collisionCount); its template carries the
 *     pod-template-hash label, which is also added to its selector. A
 *     template change (`kubectl rollout restart` sets the restartedAt
 *     annotation) thus creates a new ReplicaSet; returning to an old
 *     template renumbers that ReplicaSet's deployment.kubernetes.io/revision;
 *   - RollingUpdate as rolling.go: maxSurge (rounded up) and maxUnavailable
 *     (rounded down) of spec.replicas, 0/0 meaning maxUnavailable 1; the new
 *     RS grows while all RS replicas stay ≤ replicas + maxSurge; old RSes
 *     shrink — unhealthy replicas first — while available pods stay ≥
 *     replicas − maxUnavailable. Recreate scales old RSes to 0 first;
 *   - old RSes at 0 replicas beyond revisionHistoryLimit are deleted;
 *   - status sums the RS statuses (replicas, updatedReplicas,
 *     readyReplicas, availableReplicas, unavailableReplicas) with
 *     observedGeneration, and the conditions `kubectl rollout status`
 *     reads: Available (MinimumReplicasAvailable/…Unavailable) and
 *     Progressing (NewReplicaSetCreated, ReplicaSetUpdated with
 *     lastUpdateTime bumped on progress, NewReplicaSetAvailable when
 *     complete, ProgressDeadlineExceeded after progressDeadlineSeconds
 *     without progress).
 * ReplicaSet sync: creates missing pods, deletes surplus ones in
 * controller.ActivePods order (unscheduled, pending, not ready, ready for
 * the shortest time, most restarts, newest first), and writes replicas,
 * fullyLabeledReplicas, readyReplicas, availableReplicas (minReadySeconds)
 * and observedGeneration.
 */
#include <inttypes.h>
#include <stdio.h>

#include "controllers-internal.h"
#include "meshroll/json-util.h"
#include "meshroll/selector.h"
#include "meshroll/time-util.h"

#define DEPLOY_ACTOR "deployment-controller"
#define RS_ACTOR "replicaset-controller"
#define ANN_REVISION "deployment.kubernetes.io/revision"
#define MAX_BURST 500

static int64_t get_int(json_object *o, int64_t def, const char *a, const char *b, const char *c)
{
        int64_t v;
        return mr_json_get_int(&v, o, a, b, c, NULL) == 0 ? v : def;
}

/* ---- ReplicaSet controller ------------------------------------------------------------------- */

/*
 * A ReplicaSet's pods, found through the store's owner index (only its own
 * pods are parsed) and held by reference: a resync of every ReplicaSet used
 * to deep-copy every pod of the namespace once per ReplicaSet.
 */
typedef struct RsPods {
        const char *uid;
        json_object *list; /* references to the stored pods (read only) */
} RsPods;

static int collect_rs_pod(json_object *pod, void *userdata)
{
        RsPods *p = userdata;
        if (!sim_is_controlled_by(pod, "ReplicaSet", p->uid))
                return 0;
        if (json_object_array_add(p->list, json_object_get(pod)) < 0) {
                json_object_put(pod);
                return -ENOMEM;
        }
        return 0;
}

static bool pod_terminal(json_object *pod)
{
        const char *phase = mr_json_get_str(pod, "status", "phase", NULL);
        return streq_ptr(phase, "Succeeded") || streq_ptr(phase, "Failed");
}

static int phase_rank(json_object *pod)
{
        const char *phase = mr_json_get_str(pod, "status", "phase", NULL);
        if (streq_ptr(phase, "Pending") || !phase)
                return 0;
        if (streq_ptr(phase, "Unknown"))
                return 1;
        return 2;
}

/* controller.ActivePods: the pods to delete first sort first. */
static int deletion_cmp(const void *a, const void *b)
{
        json_object *pa = *(json_object *const *)a, *pb = *(json_object *const *)b;
        bool sa = mr_json_get_str(pa, "spec", "nodeName", NULL), sb = mr_json_get_str(pb, "spec", "nodeName", NULL);
        if (sa != sb)
                return sa ? 1 : -1;
        int ra = phase_rank(pa), rb = phase_rank(pb);
        if (ra != rb)
                return ra < rb ? -1 : 1;
        bool ya = sim_pod_is_ready(pa), yb = sim_pod_is_ready(pb);
        if (ya != yb)
                return ya ? 1 : -1;
        int64_t ca = get_int(json_object_array_get_idx(mr_json_get(pa, "status", "containerStatuses", NULL), 0), 0,
                             "restartCount", NULL, NULL);
        int64_t cb = get_int(json_object_array_get_idx(mr_json_get(pb, "status", "containerStatuses", NULL), 0), 0,
                             "restartCount", NULL, NULL);
        if (ca != cb)
                return ca > cb ? -1 : 1;
        const char *ta = strempty(mr_json_get_str(pa, "metadata", "creationTimestamp", NULL));
        const char *tb = strempty(mr_json_get_str(pb, "metadata", "creationTimestamp", NULL));
        return -strcmp(ta, tb); /* newer first */
}

int sim_replicaset_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due)
{
        SimStore *s = sim_controllers_store(c);
        _cleanup_(json_object_putp) json_object *rs = NULL, *pods = NULL;
        _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
        usec_t due = 0;
        int r;

        *ret_due = 0;
        json_object *cur = sim_store_get(s, &SIM_REPLICASETS, ns, name);
        if (!cur || sim_obj_is_deleting(cur))
                return 0;
        rs = mr_json_copy(cur);
        pods = json_object_new_array();
        if (!rs || !pods)
                return -ENOMEM;
        json_object *selector = mr_json_get(rs, "spec", "selector", NULL);
        if (!selector || mr_selector_from_json(selector, &sel, NULL) < 0)
                return 0;
        RsPods rp = { .uid = mr_json_get_str(rs, "metadata", "uid", NULL), .list = pods };
        r = sim_store_foreach_owned(s, &SIM_PODS, ns, rp.uid, collect_rs_pod, &rp);
        if (r < 0)
                return r;

        int64_t want = get_int(rs, 1, "spec", "replicas", NULL);
        json_object *active[MAX_BURST * 4];
        size_t n_active = 0;
        for (size_t i = 0; i < json_object_array_length(pods); i++) {
                json_object *p = json_object_array_get_idx(pods, i);
                if (!sim_obj_is_deleting(p) && !pod_terminal(p) && n_active < ELEMENTSOF(active))
                        active[n_active++] = p;
        }
        bool wrote = false;
        if ((int64_t)n_active < want) {
                char prefix[300];
                _cleanup_(json_object_putp) json_object *ref = sim_owner_ref_new(rs, "apps/v1", "ReplicaSet");
                if (!ref)
                        return -ENOMEM;
                snprintf(prefix, sizeof prefix, "%s-", name);
                for (int64_t i = (int64_t)n_active; i < want && i - (int64_t)n_active < MAX_BURST; i++) {
                        r = sim_pod_create_from_template(c, ns, prefix, mr_json_get(rs, "spec", "template", NULL), NULL,
                                                         ref, NULL, RS_ACTOR, NULL);
                        if (r < 0)
                                return r;
                        wrote = true;
                }
        } else if ((int64_t)n_active > want) {
                qsort(active, n_active, sizeof active[0], deletion_cmp);
                for (size_t i = 0; i < n_active - (size_t)want; i++) {
                        r = sim_store_delete(s, &SIM_PODS, ns, mr_json_get_str(active[i], "metadata", "name", NULL), -1,
                                             NULL, NULL, RS_ACTOR, NULL, NULL);
                        if (r < 0 && r != -ENOENT)
                                return r;
                        wrote = true;
                }
        }

        /* Status from the pods as they are now (the same ones when nothing was written). */
        if (wrote) {
                json_object_put(pods);
                pods = json_object_new_array();
                if (!pods)
                        return -ENOMEM;
                rp.list = pods;
                r = sim_store_foreach_owned(s, &SIM_PODS, ns, rp.uid, collect_rs_pod, &rp);
                if (r < 0)
                        return r;
        }
        int64_t replicas = 0, labeled = 0, ready = 0, available = 0;
        int64_t min_ready = get_int(rs, 0, "spec", "minReadySeconds", NULL);
        json_object *tmpl_labels = mr_json_get(rs, "spec", "template", "metadata", "labels", NULL);
        for (size_t i = 0; i < json_object_array_length(pods); i++) {
                json_object *p = json_object_array_get_idx(pods, i);
                if (sim_obj_is_deleting(p) || pod_terminal(p))
                        continue;
                replicas++;
                bool full = true;
                if (tmpl_labels) {
                        json_object_object_foreach(tmpl_labels, k, v)
                        {
                                if (!streq_ptr(mr_json_get_str(p, "metadata", "labels", k, NULL), json_object_get_string(v)))
                                        full = false;
                        }
                }
                labeled += full;
                if (sim_pod_is_ready(p)) {
                        usec_t when = 0;
                        ready++;
                        if (sim_pod_is_available(p, min_ready, now, &when))
                                available++;
                        else if (when && (!due || when < due))
                                due = when;
                }
        }
        json_object *status = mr_json_ensure_object(rs, "status", NULL);
        if (!status || mr_json_set_int(status, "replicas", replicas) < 0 ||
            mr_json_set_int(status, "observedGeneration", get_int(rs, 0, "metadata", "generation", NULL)) < 0)
                return -ENOMEM;
        const struct {
                const char *key;
                int64_t v;
        } omitempty[] = { { "fullyLabeledReplicas", labeled }, { "readyReplicas", ready }, { "availableReplicas", available } };
        for (size_t i = 0; i < ELEMENTSOF(omitempty); i++) {
                if (omitempty[i].v == 0)
                        json_object_object_del(status, omitempty[i].key);
                else if (mr_json_set_int(status, omitempty[i].key, omitempty[i].v) < 0)
                        return -ENOMEM;
        }
        *ret_due = due;
        r = sim_write_status(s, &SIM_REPLICASETS, TAKE_PTR(rs), RS_ACTOR);
        return MIN(r, 0);
}

/* ---- Deployment controller ------------------------------------------------------------------ */

typedef struct DeploySync {
        SimControllers *c;
        SimStore *s;
        const char *ns, *name, *uid;
        json_object *d;       /* owned copy */
        json_object *rses;    /* owned copies of owned ReplicaSets */
        json_object *new_rs;  /* borrowed from rses, or NULL */
        char hash[16];
        char new_name[300];
        int64_t replicas;
        usec_t now;
} DeploySync;

static int collect_rs(json_object *rs, void *userdata)
{
        DeploySync *d = userdata;
        if (!sim_is_controlled_by(rs, "Deployment", d->uid))
                return 0;
        json_object *copy = mr_json_copy(rs);
        return copy && json_object_array_add(d->rses, copy) == 0 ? 0 : -ENOMEM;
}

static int load_rses(DeploySync *d)
{
        json_object_put(d->rses);
        d->new_rs = NULL;
        d->rses = json_object_new_array();
        if (!d->rses)
                return -ENOMEM;
        int r = sim_store_foreach_owned(d->s, &SIM_REPLICASETS, d->ns, d->uid, collect_rs, d);
        if (r < 0)
                return r;
        for (size_t i = 0; i < json_object_array_length(d->rses); i++) {
                json_object *rs = json_object_array_get_idx(d->rses, i);
                if (streq_ptr(mr_json_get_str(rs, "metadata", "name", NULL), d->new_name))
                        d->new_rs = rs;
        }
        return 0;
}

static int64_t rs_revision(json_object *rs)
{
        const char *v = mr_json_get_str(rs, "metadata", "annotations", ANN_REVISION, NULL);
        return v ? strtoll(v, NULL, 10) : 0;
}

static int64_t max_revision(DeploySync *d, json_object *except)
{
        int64_t m = 0;
        for (size_t i = 0; i < json_object_array_length(d->rses); i++) {
                json_object *rs = json_object_array_get_idx(d->rses, i);
                if (rs != except)
                        m = MAX(m, rs_revision(rs));
        }
        return m;
}

static int set_rs_annotations(DeploySync *d, json_object *rs, int64_t revision)
{
        char buf[32];
        json_object *ann = mr_json_ensure_object(rs, "metadata", "annotations", NULL);
        if (!ann)
                return -ENOMEM;
        snprintf(buf, sizeof buf, "%" PRId64, revision);
        if (mr_json_set_str(ann, ANN_REVISION, buf) < 0)
                return -ENOMEM;
        snprintf(buf, sizeof buf, "%" PRId64, d->replicas);
        if (mr_json_set_str(ann, "deployment.kubernetes.io/desired-replicas", buf) < 0)
                return -ENOMEM;
        return 0;
}

/* Creates the new ReplicaSet (0 replicas; scaling follows), or renumbers it when it was an old one. */
static int ensure_new_rs(DeploySync *d)
{
        int r;
        if (d->new_rs) {
                int64_t maxrev = max_revision(d, d->new_rs);
                if (rs_revision(d->new_rs) > maxrev)
                        return 0;
                json_object *copy = mr_json_copy(d->new_rs);
                if (!copy)
                        return -ENOMEM;
                r = set_rs_annotations(d, copy, maxrev + 1);
                if (r < 0) {
                        json_object_put(copy);
                        return r;
                }
                return sim_write_object(d->s, &SIM_REPLICASETS, copy, DEPLOY_ACTOR);
        }
        _cleanup_(json_object_putp) json_object *rs = json_object_new_object();
        json_object *tmpl = mr_json_copy(mr_json_get(d->d, "spec", "template", NULL));
        json_object *sel = mr_json_copy(mr_json_get(d->d, "spec", "selector", NULL));
        json_object *ref = sim_owner_ref_new(d->d, "apps/v1", "Deployment");
        json_object *refs = json_object_new_array();
        json_object *spec = rs ? mr_json_ensure_object(rs, "spec", NULL) : NULL;
        json_object *meta = rs ? mr_json_ensure_object(rs, "metadata", NULL) : NULL;
        if (!tmpl || !sel || !ref || !refs || !spec || !meta) {
                json_object_put(tmpl);
                json_object_put(sel);
                json_object_put(ref);
                json_object_put(refs);
                return -ENOMEM;
        }
        json_object_object_add(spec, "template", tmpl);
        json_object_object_add(spec, "selector", sel);
        json_object_array_add(refs, ref);
        json_object_object_add(meta, "ownerReferences", refs);
        json_object *tlabels = mr_json_ensure_object(tmpl, "metadata", "labels", NULL);
        json_object *slabels = mr_json_ensure_object(sel, "matchLabels", NULL);
        json_object *labels = tlabels ? mr_json_copy(tlabels) : NULL;
        if (!tlabels || !slabels || !labels) {
                json_object_put(labels);
                return -ENOMEM;
        }
        json_object_object_add(meta, "labels", labels);
        if (mr_json_set_str(tlabels, "pod-template-hash", d->hash) < 0 ||
            mr_json_set_str(slabels, "pod-template-hash", d->hash) < 0 ||
            mr_json_set_str(labels, "pod-template-hash", d->hash) < 0 || mr_json_set_str(rs, "apiVersion", "apps/v1") < 0 ||
            mr_json_set_str(rs, "kind", "ReplicaSet") < 0 || mr_json_set_str(meta, "name", d->new_name) < 0 ||
            mr_json_set_str(meta, "namespace", d->ns) < 0 || mr_json_set_int(spec, "replicas", 0) < 0 ||
            mr_json_set_int(spec, "minReadySeconds", get_int(d->d, 0, "spec", "minReadySeconds", NULL)) < 0)
                return -ENOMEM;
        r = set_rs_annotations(d, rs, max_revision(d, NULL) + 1);
        if (r < 0)
                return r;
        r = sim_store_create(d->s, &SIM_REPLICASETS, TAKE_PTR(rs), DEPLOY_ACTOR, NULL, NULL);
        if (r == -EEXIST)
                return 1; /* a foreign RS holds the name: collisionCount must grow */
        return r < 0 ? r : 2;
}

static int scale_rs(DeploySync *d, json_object *rs, int64_t replicas)
{
        if (get_int(rs, 1, "spec", "replicas", NULL) == replicas)
                return 0;
        json_object *copy = mr_json_copy(rs);
        json_object *spec = copy ? mr_json_ensure_object(copy, "spec", NULL) : NULL;
        char buf[32];
        json_object *ann = copy ? mr_json_ensure_object(copy, "metadata", "annotations", NULL) : NULL;
        snprintf(buf, sizeof buf, "%" PRId64, d->replicas);
        if (!spec || !ann || mr_json_set_int(spec, "replicas", replicas) < 0 ||
            mr_json_set_str(ann, "deployment.kubernetes.io/desired-replicas", buf) < 0) {
                json_object_put(copy);
                return -ENOMEM;
        }
        (void)mr_json_set_int(spec, "replicas", replicas);
        return sim_write_object(d->s, &SIM_REPLICASETS, copy, DEPLOY_ACTOR);
}

static int rs_age_cmp(const void *a, const void *b)
{
        json_object *ra = *(json_object *const *)a, *rb = *(json_object *const *)b;
        return strcmp(strempty(mr_json_get_str(ra, "metadata", "creationTimestamp", NULL)),
                      strempty(mr_json_get_str(rb, "metadata", "creationTimestamp", NULL)));
}

static int rolling(DeploySync *d, int64_t max_surge, int64_t max_unavailable)
{
        int64_t all = 0, old_count = 0, available_all = 0;
        size_t n = json_object_array_length(d->rses);
        int r;
        for (size_t i = 0; i < n; i++) {
                json_object *rs = json_object_array_get_idx(d->rses, i);
                all += get_int(rs, 1, "spec", "replicas", NULL);
                available_all += get_int(rs, 0, "status", "availableReplicas", NULL);
                if (rs != d->new_rs)
                        old_count += get_int(rs, 1, "spec", "replicas", NULL);
        }
        /* reconcileNewReplicaSet */
        int64_t new_replicas = get_int(d->new_rs, 1, "spec", "replicas", NULL);
        if (new_replicas > d->replicas)
                return scale_rs(d, d->new_rs, d->replicas);
        if (new_replicas < d->replicas) {
                int64_t max_total = d->replicas + max_surge;
                if (all < max_total) {
                        int64_t up = MIN(max_total - all, d->replicas - new_replicas);
                        return scale_rs(d, d->new_rs, new_replicas + up);
                }
        }
        /* reconcileOldReplicaSets */
        if (old_count == 0)
                return 0;
        int64_t min_available = d->replicas - max_unavailable;
        int64_t new_unavailable = new_replicas - get_int(d->new_rs, 0, "status", "availableReplicas", NULL);
        int64_t max_down = all - min_available - new_unavailable;
        if (max_down <= 0)
                return 0;
        json_object *old[256];
        size_t n_old = 0;
        for (size_t i = 0; i < n && n_old < ELEMENTSOF(old); i++) {
                json_object *rs = json_object_array_get_idx(d->rses, i);
                if (rs != d->new_rs && get_int(rs, 1, "spec", "replicas", NULL) > 0)
                        old[n_old++] = rs;
        }
        qsort(old, n_old, sizeof old[0], rs_age_cmp);
        /* cleanupUnhealthyReplicas: replicas that are not available go first. */
        int64_t cleaned = 0;
        for (size_t i = 0; i < n_old && cleaned < max_down; i++) {
                int64_t spec = get_int(old[i], 1, "spec", "replicas", NULL);
                int64_t unhealthy = spec - get_int(old[i], 0, "status", "availableReplicas", NULL);
                if (unhealthy <= 0)
                        continue;
                int64_t down = MIN(unhealthy, max_down - cleaned);
                if ((r = scale_rs(d, old[i], spec - down)) < 0)
                        return r;
                json_object_object_add(mr_json_get(old[i], "spec", NULL), "replicas", json_object_new_int64(spec - down));
                cleaned += down;
                all -= down;
        }
        /* scaleDownOldReplicaSetsForRollingUpdate */
        if (available_all <= min_available)
                return 0;
        int64_t total_down = available_all - min_available;
        for (size_t i = 0; i < n_old && total_down > 0; i++) {
                int64_t spec = get_int(old[i], 1, "spec", "replicas", NULL);
                if (spec <= 0)
                        continue;
                int64_t down = MIN(spec, total_down);
                if ((r = scale_rs(d, old[i], spec - down)) < 0)
                        return r;
                total_down -= down;
        }
        return 0;
}

typedef struct OldPods {
        DeploySync *d;
        int64_t n;
} OldPods;

/* Counts pods of old ReplicaSets that have not finished, terminating ones included. */
static int count_old_pod(json_object *pod, void *userdata)
{
        OldPods *o = userdata;
        json_object *ref = sim_controller_ref(pod);
        if (!ref || !streq_ptr(mr_json_get_str(ref, "kind", NULL), "ReplicaSet") || pod_terminal(pod))
                return 0;
        const char *uid = mr_json_get_str(ref, "uid", NULL);
        for (size_t i = 0; i < json_object_array_length(o->d->rses); i++) {
                json_object *rs = json_object_array_get_idx(o->d->rses, i);
                if (rs != o->d->new_rs && streq_ptr(uid, mr_json_get_str(rs, "metadata", "uid", NULL))) {
                        o->n++;
                        break;
                }
        }
        return 0;
}

/* Recreate: every old pod is gone (not just terminating) before the new ReplicaSet scales up. */
static int recreate(DeploySync *d)
{
        OldPods old = { .d = d };
        int r;
        for (size_t i = 0; i < json_object_array_length(d->rses); i++) {
                json_object *rs = json_object_array_get_idx(d->rses, i);
                if (rs != d->new_rs && (r = scale_rs(d, rs, 0)) < 0)
                        return r;
        }
        r = sim_store_foreach(d->s, &SIM_PODS, d->ns, count_old_pod, &old);
        if (r < 0)
                return r;
        if (old.n > 0)
                return 0;
        return scale_rs(d, d->new_rs, d->replicas);
}

static int cleanup_history(DeploySync *d)
{
        int64_t limit = get_int(d->d, 10, "spec", "revisionHistoryLimit", NULL);
        json_object *old[256];
        size_t n_old = 0;
        for (size_t i = 0; i < json_object_array_length(d->rses) && n_old < ELEMENTSOF(old); i++) {
                json_object *rs = json_object_array_get_idx(d->rses, i);
                if (rs != d->new_rs && get_int(rs, 1, "spec", "replicas", NULL) == 0 &&
                    get_int(rs, 0, "status", "replicas", NULL) == 0)
                        old[n_old++] = rs;
        }
        if ((int64_t)n_old <= limit)
                return 0;
        qsort(old, n_old, sizeof old[0], rs_age_cmp);
        for (size_t i = 0; i < n_old - (size_t)limit; i++) {
                int r = sim_store_delete(d->s, &SIM_REPLICASETS, d->ns, mr_json_get_str(old[i], "metadata", "name", NULL),
                                         0, NULL, NULL, DEPLOY_ACTOR, NULL, NULL);
                if (r < 0 && r != -ENOENT)
                        return r;
        }
        return 0;
}

static json_object *find_cond(json_object *status, const char *type)
{
        json_object *conds = mr_json_get(status, "conditions", NULL);
        for (size_t i = 0; conds && json_object_is_type(conds, json_type_array) && i < json_object_array_length(conds); i++) {
                json_object *c = json_object_array_get_idx(conds, i);
                if (streq_ptr(mr_json_get_str(c, "type", NULL), type))
                        return c;
        }
        return NULL;
}

/* Sets Progressing; lastUpdateTime moves on every change or when force_update (progress was made). */
static int set_progressing(json_object *status, const char *value, const char *reason, const char *message,
                           bool force_update, usec_t now)
{
        char ts[KUBE_TIME_MAX];
        json_object *cond = find_cond(status, "Progressing");
        bool same = cond && streq_ptr(mr_json_get_str(cond, "status", NULL), value) &&
                    streq_ptr(mr_json_get_str(cond, "reason", NULL), reason) &&
                    streq_ptr(mr_json_get_str(cond, "message", NULL), message);
        if (same && !force_update)
                return 0;
        int r = sim_set_condition(status, "Progressing", value, reason, message, now, true);
        if (r < 0)
                return r;
        cond = find_cond(status, "Progressing");
        return cond && mr_json_set_str(cond, "lastUpdateTime", kube_time_format(now, ts)) < 0 ? -ENOMEM : 0;
}

static int write_status(DeploySync *d, int64_t max_unavailable, bool created, usec_t *ret_due)
{
        int64_t replicas = 0, updated = 0, ready = 0, available = 0;
        char msg[512];
        int r;

        for (size_t i = 0; i < json_object_array_length(d->rses); i++) {
                json_object *rs = json_object_array_get_idx(d->rses, i);
                replicas += get_int(rs, 0, "status", "replicas", NULL);
                ready += get_int(rs, 0, "status", "readyReplicas", NULL);
                available += get_int(rs, 0, "status", "availableReplicas", NULL);
        }
        updated = get_int(d->new_rs, 0, "status", "replicas", NULL);
        _cleanup_(json_object_putp) json_object *copy = mr_json_copy(sim_store_get(d->s, &SIM_DEPLOYMENTS, d->ns, d->name));
        json_object *status = copy ? mr_json_ensure_object(copy, "status", NULL) : NULL;
        if (!status)
                return -ENOMEM;
        int64_t prev_updated = get_int(status, 0, "updatedReplicas", NULL, NULL);
        int64_t prev_ready = get_int(status, 0, "readyReplicas", NULL, NULL);
        int64_t prev_available = get_int(status, 0, "availableReplicas", NULL, NULL);
        int64_t prev_replicas = get_int(status, 0, "replicas", NULL, NULL);
        bool progress = updated > prev_updated || ready > prev_ready || available > prev_available ||
                        (replicas - updated) < (prev_replicas - prev_updated);

        const struct {
                const char *key;
                int64_t v;
        } counts[] = { { "replicas", replicas },
                       { "updatedReplicas", updated },
                       { "readyReplicas", ready },
                       { "availableReplicas", available },
                       { "unavailableReplicas", MAX(d->replicas - available, (int64_t)0) } };
        for (size_t i = 0; i < ELEMENTSOF(counts); i++) {
                if (counts[i].v == 0)
                        json_object_object_del(status, counts[i].key);
                else if (mr_json_set_int(status, counts[i].key, counts[i].v) < 0)
                        return -ENOMEM;
        }
        if (mr_json_set_int(status, "observedGeneration", get_int(copy, 0, "metadata", "generation", NULL)) < 0)
                return -ENOMEM;

        bool min_ok = available >= d->replicas - max_unavailable;
        r = sim_set_condition(status, "Available", min_ok ? "True" : "False",
                              min_ok ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable",
                              min_ok ? "Deployment has minimum availability." : "Deployment does not have minimum availability.",
                              d->now, true);
        if (r < 0)
                return r;

        bool complete = updated == d->replicas && replicas == d->replicas && available == d->replicas;
        int64_t deadline = get_int(d->d, 600, "spec", "progressDeadlineSeconds", NULL);
        if (complete) {
                snprintf(msg, sizeof msg, "ReplicaSet \"%s\" has successfully progressed.", d->new_name);
                r = set_progressing(status, "True", "NewReplicaSetAvailable", msg, false, d->now);
        } else if (created) {
                snprintf(msg, sizeof msg, "Created new replica set \"%s\"", d->new_name);
                r = set_progressing(status, "True", "NewReplicaSetCreated", msg, true, d->now);
        } else if (progress || !find_cond(status, "Progressing")) {
                snprintf(msg, sizeof msg, "ReplicaSet \"%s\" is progressing.", d->new_name);
                r = set_progressing(status, "True", "ReplicaSetUpdated", msg, true, d->now);
        } else {
                json_object *cond = find_cond(status, "Progressing");
                usec_t last = d->now;
                (void)kube_time_parse(mr_json_get_str(cond, "lastUpdateTime", NULL), &last);
                usec_t at = last + (usec_t)MAX(deadline, (int64_t)0) * USEC_PER_SEC;
                if (d->now >= at) {
                        snprintf(msg, sizeof msg, "ReplicaSet \"%s\" has timed out progressing.", d->new_name);
                        r = sim_set_condition(status, "Progressing", "False", "ProgressDeadlineExceeded", msg, d->now, true);
                } else
                        *ret_due = at;
        }
        if (r < 0)
                return r;
        if (!complete && !*ret_due && !streq_ptr(mr_json_get_str(find_cond(status, "Progressing"), "reason", NULL),
                                                 "ProgressDeadlineExceeded"))
                *ret_due = d->now + (usec_t)MAX(deadline, (int64_t)1) * USEC_PER_SEC;
        r = sim_write_status(d->s, &SIM_DEPLOYMENTS, TAKE_PTR(copy), DEPLOY_ACTOR);
        return MIN(r, 0);
}

int sim_deployment_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due)
{
        _cleanup_(json_object_putp) json_object *dcopy = NULL;
        DeploySync d = { .c = c, .s = sim_controllers_store(c), .ns = ns, .name = name, .now = now };
        bool created = false;
        int r;

        *ret_due = 0;
        json_object *cur = sim_store_get(d.s, &SIM_DEPLOYMENTS, ns, name);
        if (!cur || sim_obj_is_deleting(cur))
                return 0;
        dcopy = d.d = mr_json_copy(cur);
        if (!dcopy)
                return -ENOMEM;
        d.uid = mr_json_get_str(dcopy, "metadata", "uid", NULL);
        d.replicas = get_int(dcopy, 1, "spec", "replicas", NULL);
        int64_t collision = get_int(dcopy, 0, "status", "collisionCount", NULL);
        sim_hash_json(mr_json_get(dcopy, "spec", "template", NULL), (uint32_t)collision, d.hash);
        snprintf(d.new_name, sizeof d.new_name, "%s-%s", name, d.hash);

        int64_t max_surge = 0, max_unavailable = 0;
        const char *type = mr_json_get_str(dcopy, "spec", "strategy", "type", NULL);
        bool is_recreate = streq_ptr(type, "Recreate");
        if (!is_recreate) {
                json_object *ru = mr_json_get(dcopy, "spec", "strategy", "rollingUpdate", NULL);
                json_object *def = json_object_new_string("25%");
                json_object *ms = mr_json_get(ru, "maxSurge", NULL), *mu = mr_json_get(ru, "maxUnavailable", NULL);
                if (sim_intstr_scaled(ms ? ms : def, d.replicas, true, 0, &max_surge) < 0)
                        max_surge = 0;
                if (sim_intstr_scaled(mu ? mu : def, d.replicas, false, 0, &max_unavailable) < 0)
                        max_unavailable = 0;
                json_object_put(def);
                if (max_surge == 0 && max_unavailable == 0)
                        max_unavailable = 1;
        }

        r = load_rses(&d);
        if (r < 0)
                goto finish;
        if (mr_json_get_bool(false, dcopy, "spec", "paused", NULL)) {
                r = write_status(&d, max_unavailable, false, ret_due);
                goto finish;
        }
        r = ensure_new_rs(&d);
        if (r == 1) {
                /* Name collision with a foreign ReplicaSet: next sync hashes with a new collisionCount. */
                json_object *copy = mr_json_copy(cur);
                json_object *st = copy ? mr_json_ensure_object(copy, "status", NULL) : NULL;
                if (!st || mr_json_set_int(st, "collisionCount", collision + 1) < 0) {
                        json_object_put(copy);
                        r = -ENOMEM;
                        goto finish;
                }
                r = sim_write_status(d.s, &SIM_DEPLOYMENTS, copy, DEPLOY_ACTOR);
                goto finish;
        }
        if (r < 0)
                goto finish;
        created = r == 2;
        r = load_rses(&d);
        if (r < 0)
                goto finish;
        if (!d.new_rs) {
                r = -ENOENT;
                goto finish;
        }
        /* Keep the Deployment's revision annotation in step with its new ReplicaSet. */
        const char *rev = mr_json_get_str(d.new_rs, "metadata", "annotations", ANN_REVISION, NULL);
        if (rev && !streq_ptr(mr_json_get_str(dcopy, "metadata", "annotations", ANN_REVISION, NULL), rev)) {
                json_object *copy = mr_json_copy(cur);
                json_object *ann = copy ? mr_json_ensure_object(copy, "metadata", "annotations", NULL) : NULL;
                if (!ann || mr_json_set_str(ann, ANN_REVISION, rev) < 0) {
                        json_object_put(copy);
                        r = -ENOMEM;
                        goto finish;
                }
                r = sim_write_object(d.s, &SIM_DEPLOYMENTS, copy, DEPLOY_ACTOR);
                if (r < 0)
                        goto finish;
        }

        r = is_recreate ? recreate(&d) : rolling(&d, max_surge, max_unavailable);
        if (r < 0)
                goto finish;
        r = load_rses(&d);
        if (r < 0)
                goto finish;
        r = cleanup_history(&d);
        if (r < 0)
                goto finish;
        r = load_rses(&d);
        if (r < 0)
                goto finish;
        r = write_status(&d, max_unavailable, created, ret_due);
finish:
        json_object_put(d.rses);
        return MIN(r, 0);
}
