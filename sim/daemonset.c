/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemonset.c — the DaemonSet controller (k/k pkg/controller/daemon).
 *
 * One sync per DaemonSet, in the real controller's order:
 *   1. history: the ControllerRevision "<ds>-<hash>" for the current
 *      template (hash: FNV-32a of canonical JSON plus collisionCount, in
 *      SafeEncodeString's alphabet), revision = max + 1, data
 *      {"spec":{"template":{…,"$patch":"replace"}}}; an older revision whose
 *      template comes back is renumbered; revisions beyond
 *      revisionHistoryLimit that no pod uses are deleted;
 *   2. manage: for every node, shouldRun = node affinity/selector fits and
 *      NoSchedule/NoExecute taints are tolerated with the DaemonSet's
 *      automatic tolerations (so cordoned nodes still run one). A node
 *      that should run a pod and has none — not even a terminating one —
 *      gets a pod from the current template: so under OnDelete the new
 *      revision arrives only once the old pod is gone. Extra pods (more
 *      than one without surge, nodes that should not run one, Failed pods)
 *      are deleted;
 *   3. update: OnDelete does nothing; RollingUpdate runs update.go's
 *      rollingUpdate: with maxSurge 0, unavailable old pods are always
 *      deleted and available ones only while fewer than maxUnavailable
 *      nodes lack an available pod; with maxSurge > 0, new pods are
 *      created beside old available ones on up to maxSurge nodes and the
 *      old pod goes once the new one is available. Percentages are of
 *      desiredNumberScheduled, rounded up; 0/0 means maxUnavailable 1;
 *   4. status, from the pods as they are after the writes above:
 *      desired/current/misscheduled/ready/available/updated counts over
 *      each node's oldest pod (§9.2) and observedGeneration. Because the
 *      writes of steps 1–3 are already in the store, observedGeneration
 *      never runs ahead of the counts, which `kubectl rollout status`
 *      relies on.
 * Pods carry controller-revision-hash and pod-template-generation labels,
 * a controller ownerReference, spec.nodeName and the matchFields node
 * affinity (§9.3).
 */
#include <inttypes.h>
#include <stdio.h>

#include "controllers-internal.h"
#include "meshroll/json-util.h"
#include "meshroll/selector.h"
#include "meshroll/time-util.h"

#define ACTOR "daemonset-controller"

typedef struct DsNode {
        json_object *node;  /* borrowed from the store (no node is written during a sync) */
        const char *name;
        bool should_run;
        json_object *pods;  /* owned array of references to the pods on this node, oldest first */
} DsNode;

typedef struct DsSync {
        SimControllers *c;
        SimStore *s;
        json_object *ds;    /* owned copy */
        const char *ns, *name, *uid;
        char hash[16];
        char generation[24];
        json_object *tolerations; /* owned: template tolerations + daemon ones */
        DsNode *nodes; /* in name order (the store walks Nodes so): find_node searches */
        size_t n_nodes, cap_nodes;
        json_object *orphans; /* owned array of references: pods on nodes that do not exist */
        int64_t min_ready;
        usec_t now, due;
} DsSync;

static void ds_sync_done(DsSync *d)
{
        for (size_t i = 0; i < d->n_nodes; i++)
                json_object_put(d->nodes[i].pods);
        free(d->nodes);
        d->nodes = NULL;
        d->n_nodes = d->cap_nodes = 0;
        json_object_put(d->orphans);
        d->orphans = NULL;
}

static int pod_age_cmp(const void *a, const void *b)
{
        json_object *pa = *(json_object *const *)a, *pb = *(json_object *const *)b;
        const char *ta = strempty(mr_json_get_str(pa, "metadata", "creationTimestamp", NULL));
        const char *tb = strempty(mr_json_get_str(pb, "metadata", "creationTimestamp", NULL));
        int r = strcmp(ta, tb);
        if (r != 0)
                return r;
        /* Same second: the lower resourceVersion was created first. */
        const char *ra = strempty(mr_json_get_str(pa, "metadata", "resourceVersion", NULL));
        const char *rb = strempty(mr_json_get_str(pb, "metadata", "resourceVersion", NULL));
        if (strlen(ra) != strlen(rb))
                return strlen(ra) < strlen(rb) ? -1 : 1;
        return strcmp(ra, rb);
}

static int collect_node(json_object *node, void *userdata)
{
        DsSync *d = userdata;
        if (d->n_nodes >= d->cap_nodes)
                return 1; /* cannot happen: the store lock is held since the count */
        DsNode *n = &d->nodes[d->n_nodes];
        *n = (DsNode){ .node = node, .name = mr_json_get_str(node, "metadata", "name", NULL) };
        if (!n->name)
                return 0;
        n->pods = json_object_new_array();
        if (!n->pods)
                return -ENOMEM;
        json_object *tmpl = mr_json_get(d->ds, "spec", "template", NULL);
        n->should_run = sim_node_fits_placement(tmpl, node) && !sim_node_untolerated_taint(node, d->tolerations);
        d->n_nodes++;
        return 0;
}

/* Binary search: a sync at 5,000 nodes would otherwise compare every pod's node with every node. */
static DsNode *find_node(DsSync *d, const char *name)
{
        size_t lo = 0, hi = d->n_nodes;
        if (!name)
                return NULL;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int r = strcmp(d->nodes[mid].name, name);
                if (r == 0)
                        return &d->nodes[mid];
                if (r < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

static int collect_pod(json_object *pod, void *userdata)
{
        DsSync *d = userdata;
        if (!sim_is_controlled_by(pod, "DaemonSet", d->uid))
                return 0;
        /* A reference, not a copy: stored trees are never modified (store.h). */
        DsNode *n = find_node(d, mr_json_get_str(pod, "spec", "nodeName", NULL));
        json_object_array_add(n ? n->pods : d->orphans, json_object_get(pod));
        return 0;
}

/* Reads nodes and this DaemonSet's pods into d (after a previous load is dropped). */
static int load(DsSync *d)
{
        ds_sync_done(d);
        d->cap_nodes = sim_store_count(d->s, &SIM_NODES, NULL);
        d->nodes = calloc(MAX(d->cap_nodes, (size_t)1), sizeof *d->nodes);
        d->orphans = json_object_new_array();
        if (!d->nodes || !d->orphans)
                return -ENOMEM;
        int r = sim_store_foreach(d->s, &SIM_NODES, NULL, collect_node, d);
        if (r < 0)
                return r;
        /* The store indexes pods by their controller's uid: the namespace's other pods stay unparsed. */
        r = sim_store_foreach_owned(d->s, &SIM_PODS, d->ns, d->uid, collect_pod, d);
        if (r < 0)
                return r;
        for (size_t i = 0; i < d->n_nodes; i++)
                json_object_array_sort(d->nodes[i].pods, pod_age_cmp);
        return 0;
}

static bool pod_updated(DsSync *d, json_object *pod)
{
        json_object *labels = mr_json_get(pod, "metadata", "labels", NULL);
        return streq_ptr(mr_json_get_str(labels, "controller-revision-hash", NULL), d->hash) ||
               streq_ptr(mr_json_get_str(labels, "pod-template-generation", NULL), d->generation);
}

static bool pod_available(DsSync *d, json_object *pod)
{
        usec_t when = 0;
        if (sim_pod_is_available(pod, d->min_ready, d->now, &when))
                return true;
        if (when > 0 && (d->due == 0 || when < d->due))
                d->due = when;
        return false;
}

static bool pod_active(json_object *pod)
{
        return !sim_obj_is_deleting(pod) && !streq_ptr(mr_json_get_str(pod, "status", "phase", NULL), "Failed");
}

static int delete_pod(DsSync *d, json_object *pod)
{
        if (sim_obj_is_deleting(pod))
                return 0;
        int r = sim_store_delete(d->s, &SIM_PODS, d->ns, mr_json_get_str(pod, "metadata", "name", NULL), -1,
                                 mr_json_get_str(pod, "metadata", "uid", NULL), NULL, ACTOR, NULL, NULL);
        return r == -ENOENT || r == -MR_ECONFLICT ? 0 : MIN(r, 0);
}

static int create_pod(DsSync *d, const char *node)
{
        char prefix[300];
        _cleanup_(json_object_putp) json_object *labels = json_object_new_object();
        _cleanup_(json_object_putp) json_object *ref = sim_owner_ref_new(d->ds, "apps/v1", "DaemonSet");
        if (!labels || !ref || mr_json_set_str(labels, "controller-revision-hash", d->hash) < 0 ||
            mr_json_set_str(labels, "pod-template-generation", d->generation) < 0)
                return -ENOMEM;
        snprintf(prefix, sizeof prefix, "%s-", d->name);
        return sim_pod_create_from_template(d->c, d->ns, prefix, mr_json_get(d->ds, "spec", "template", NULL), labels,
                                            ref, node, ACTOR, NULL);
}

/* ---- history ----------------------------------------------------------------------------------- */

typedef struct Revisions {
        const char *uid;
        json_object *list; /* owned copies */
} Revisions;

static int collect_revision(json_object *cr, void *userdata)
{
        Revisions *rv = userdata;
        if (!sim_is_controlled_by(cr, "DaemonSet", rv->uid))
                return 0;
        json_object *copy = mr_json_copy(cr);
        return copy && json_object_array_add(rv->list, copy) == 0 ? 0 : -ENOMEM;
}

static int64_t revision_of(json_object *cr)
{
        int64_t v = 0;
        (void)mr_json_get_int(&v, cr, "revision", NULL);
        return v;
}

static int revision_cmp(const void *a, const void *b)
{
        int64_t ra = revision_of(*(json_object *const *)a), rb = revision_of(*(json_object *const *)b);
        return ra < rb ? -1 : ra > rb;
}

static bool hash_in_use(DsSync *d, const char *hash)
{
        for (size_t i = 0; i < d->n_nodes; i++)
                for (size_t j = 0; j < json_object_array_length(d->nodes[i].pods); j++)
                        if (streq_ptr(mr_json_get_str(json_object_array_get_idx(d->nodes[i].pods, j), "metadata", "labels",
                                                      "controller-revision-hash", NULL),
                                      hash))
                                return true;
        return false;
}

static int new_revision(DsSync *d, const char *cr_name, int64_t revision)
{
        _cleanup_(json_object_putp) json_object *cr = json_object_new_object();
        json_object *tmpl = mr_json_copy(mr_json_get(d->ds, "spec", "template", NULL));
        if (!cr || !tmpl) {
                json_object_put(tmpl);
                return -ENOMEM;
        }
        json_object *data = mr_json_ensure_object(cr, "data", "spec", NULL);
        if (!data) {
                json_object_put(tmpl);
                return -ENOMEM;
        }
        json_object_object_add(data, "template", tmpl);
        json_object *meta = mr_json_ensure_object(cr, "metadata", NULL);
        json_object *labels = mr_json_copy(mr_json_get(tmpl, "metadata", "labels", NULL));
        if (!labels)
                labels = json_object_new_object();
        if (!meta || !labels) {
                json_object_put(labels);
                return -ENOMEM;
        }
        json_object_object_add(meta, "labels", labels);
        json_object *ann = mr_json_copy(mr_json_get(d->ds, "metadata", "annotations", NULL));
        if (ann)
                json_object_object_add(meta, "annotations", ann);
        json_object *refs = json_object_new_array();
        json_object *ref = sim_owner_ref_new(d->ds, "apps/v1", "DaemonSet");
        if (!refs || !ref) {
                json_object_put(refs);
                json_object_put(ref);
                return -ENOMEM;
        }
        json_object_array_add(refs, ref);
        json_object_object_add(meta, "ownerReferences", refs);
        if (mr_json_set_str(tmpl, "$patch", "replace") < 0 || mr_json_set_str(cr, "apiVersion", "apps/v1") < 0 ||
            mr_json_set_str(cr, "kind", "ControllerRevision") < 0 || mr_json_set_str(meta, "name", cr_name) < 0 ||
            mr_json_set_str(meta, "namespace", d->ns) < 0 || mr_json_set_str(labels, "controller-revision-hash", d->hash) < 0 ||
            mr_json_set_int(cr, "revision", revision) < 0)
                return -ENOMEM;
        return sim_store_create(d->s, &SIM_CONTROLLERREVISIONS, TAKE_PTR(cr), ACTOR, NULL, NULL);
}

/* Returns 1 when the hash collided with a foreign revision (collisionCount must grow). */
static int sync_history(DsSync *d)
{
        char cr_name[300];
        _cleanup_(json_object_putp) json_object *list = json_object_new_array();
        Revisions rv = { .uid = d->uid, .list = list };
        int64_t max_rev = 0, limit = 10;
        json_object *current = NULL;
        int r;

        if (!list)
                return -ENOMEM;
        r = sim_store_foreach(d->s, &SIM_CONTROLLERREVISIONS, d->ns, collect_revision, &rv);
        if (r < 0)
                return r;
        json_object_array_sort(list, revision_cmp);
        snprintf(cr_name, sizeof cr_name, "%s-%s", d->name, d->hash);
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                json_object *cr = json_object_array_get_idx(list, i);
                max_rev = MAX(max_rev, revision_of(cr));
                if (streq_ptr(mr_json_get_str(cr, "metadata", "name", NULL), cr_name))
                        current = cr;
        }
        if (!current) {
                r = new_revision(d, cr_name, max_rev + 1);
                if (r == -EEXIST)
                        return 1;
                if (r < 0)
                        return r;
        } else if (revision_of(current) < max_rev) {
                json_object *copy = mr_json_copy(current);
                if (!copy || mr_json_set_int(copy, "revision", max_rev + 1) < 0) {
                        json_object_put(copy);
                        return -ENOMEM;
                }
                r = sim_write_object(d->s, &SIM_CONTROLLERREVISIONS, copy, ACTOR);
                if (r < 0)
                        return r;
        }

        /* cleanupHistory: old revisions beyond the limit that no pod uses. */
        (void)mr_json_get_int(&limit, d->ds, "spec", "revisionHistoryLimit", NULL);
        size_t n = json_object_array_length(list);
        int64_t old = (int64_t)n - (current ? 1 : 0);
        for (size_t i = 0; i < n && old > limit; i++) {
                json_object *cr = json_object_array_get_idx(list, i);
                const char *crn = mr_json_get_str(cr, "metadata", "name", NULL);
                if (cr == current || hash_in_use(d, mr_json_get_str(cr, "metadata", "labels", "controller-revision-hash", NULL)))
                        continue;
                r = sim_store_delete(d->s, &SIM_CONTROLLERREVISIONS, d->ns, strempty(crn), 0, NULL, NULL, ACTOR, NULL, NULL);
                if (r < 0 && r != -ENOENT)
                        return r;
                old--;
        }
        return 0;
}

/* ---- manage and update ---------------------------------------------------------------------- */

static size_t desired_count(DsSync *d)
{
        size_t n = 0;
        for (size_t i = 0; i < d->n_nodes; i++)
                n += d->nodes[i].should_run;
        return n;
}

/* findUpdatedPodsOnNode: false when a node holds two old or two new active pods. */
static bool node_pods(DsSync *d, DsNode *n, json_object **ret_new, json_object **ret_old)
{
        *ret_new = *ret_old = NULL;
        for (size_t j = 0; j < json_object_array_length(n->pods); j++) {
                json_object *p = json_object_array_get_idx(n->pods, j);
                if (sim_obj_is_deleting(p))
                        continue;
                json_object **slot = pod_updated(d, p) ? ret_new : ret_old;
                if (*slot)
                        return false;
                *slot = p;
        }
        return true;
}

static int manage(DsSync *d, bool surge)
{
        int r;
        for (size_t i = 0; i < d->n_nodes; i++) {
                DsNode *n = &d->nodes[i];
                size_t total = json_object_array_length(n->pods);
                json_object *active[64];
                size_t n_active = 0;
                for (size_t j = 0; j < total; j++) {
                        json_object *p = json_object_array_get_idx(n->pods, j);
                        if (sim_obj_is_deleting(p))
                                continue;
                        if (!n->should_run || !pod_active(p)) {
                                r = delete_pod(d, p);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        if (n_active < ELEMENTSOF(active))
                                active[n_active++] = p;
                }
                if (!n->should_run)
                        continue;
                if (total == 0) {
                        r = create_pod(d, n->name);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (n_active <= 1)
                        continue;
                if (!surge) {
                        /* Keep the oldest. */
                        for (size_t j = 1; j < n_active; j++)
                                if ((r = delete_pod(d, active[j])) < 0)
                                        return r;
                        continue;
                }
                /* Surge: once an updated pod is available, every other one goes. */
                json_object *keep = NULL;
                for (size_t j = 0; j < n_active && !keep; j++)
                        if (pod_updated(d, active[j]) && pod_available(d, active[j]))
                                keep = active[j];
                for (size_t j = 0; keep && j < n_active; j++)
                        if (active[j] != keep && (r = delete_pod(d, active[j])) < 0)
                                return r;
        }
        return 0;
}

static int rolling_update(DsSync *d, int64_t max_surge, int64_t max_unavailable)
{
        json_object *new_pod, *old_pod;
        int r;

        if (max_surge == 0) {
                int64_t unavailable = 0;
                _cleanup_(json_object_putp) json_object *replace = json_object_new_array();
                _cleanup_(json_object_putp) json_object *candidates = json_object_new_array();
                if (!replace || !candidates)
                        return -ENOMEM;
                for (size_t i = 0; i < d->n_nodes; i++) {
                        DsNode *n = &d->nodes[i];
                        if (!n->should_run)
                                continue;
                        if (!node_pods(d, n, &new_pod, &old_pod) || (!new_pod && !old_pod) || (new_pod && old_pod)) {
                                unavailable++;
                        } else if (new_pod) {
                                if (!pod_available(d, new_pod))
                                        unavailable++;
                        } else if (!pod_available(d, old_pod)) {
                                json_object_array_add(replace, json_object_get(old_pod));
                        } else if (unavailable < max_unavailable) {
                                json_object_array_add(candidates, json_object_get(old_pod));
                        }
                }
                int64_t remaining = CLAMP(max_unavailable - unavailable, (int64_t)0,
                                          (int64_t)json_object_array_length(candidates));
                for (size_t i = 0; i < json_object_array_length(replace); i++)
                        if ((r = delete_pod(d, json_object_array_get_idx(replace, i))) < 0)
                                return r;
                for (int64_t i = 0; i < remaining; i++)
                        if ((r = delete_pod(d, json_object_array_get_idx(candidates, (size_t)i))) < 0)
                                return r;
                return 0;
        }

        int64_t surged = 0;
        _cleanup_free_ const char **allowed = calloc(MAX(d->n_nodes, (size_t)1), sizeof *allowed);
        _cleanup_free_ const char **candidates = calloc(MAX(d->n_nodes, (size_t)1), sizeof *candidates);
        size_t n_allowed = 0, n_candidates = 0;
        if (!allowed || !candidates)
                return -ENOMEM;
        for (size_t i = 0; i < d->n_nodes; i++) {
                DsNode *n = &d->nodes[i];
                if (!n->should_run)
                        continue;
                if (!node_pods(d, n, &new_pod, &old_pod)) {
                        surged++;
                        continue;
                }
                if (!old_pod)
                        continue;
                if (!new_pod) {
                        if (!pod_available(d, old_pod))
                                allowed[n_allowed++] = n->name;
                        else if (surged < max_surge)
                                candidates[n_candidates++] = n->name;
                        continue;
                }
                if (!pod_available(d, new_pod)) {
                        surged++;
                        continue;
                }
                if ((r = delete_pod(d, old_pod)) < 0)
                        return r;
        }
        int64_t remaining = CLAMP(max_surge - surged, (int64_t)0, (int64_t)n_candidates);
        for (size_t i = 0; i < n_allowed; i++)
                if ((r = create_pod(d, allowed[i])) < 0)
                        return r;
        for (int64_t i = 0; i < remaining; i++)
                if ((r = create_pod(d, candidates[i])) < 0)
                        return r;
        return 0;
}

static int set_count(json_object *status, const char *key, int64_t v, bool omitempty)
{
        if (omitempty && v == 0) {
                json_object_object_del(status, key);
                return 0;
        }
        return mr_json_set_int(status, key, v);
}

static int write_status(DsSync *d, int64_t collision_bump)
{
        int64_t desired = 0, current = 0, misscheduled = 0, ready = 0, available = 0, updated = 0, generation = 0;
        int r;

        for (size_t i = 0; i < d->n_nodes; i++) {
                DsNode *n = &d->nodes[i];
                size_t np = json_object_array_length(n->pods);
                if (!n->should_run) {
                        misscheduled += np > 0;
                        continue;
                }
                desired++;
                if (np == 0)
                        continue;
                current++;
                json_object *oldest = json_object_array_get_idx(n->pods, 0);
                if (sim_pod_is_ready(oldest)) {
                        ready++;
                        available += pod_available(d, oldest);
                }
                updated += pod_updated(d, oldest);
        }
        _cleanup_(json_object_putp) json_object *copy = mr_json_copy(sim_store_get(d->s, &SIM_DAEMONSETS, d->ns, d->name));
        if (!copy)
                return -ENOENT;
        json_object *status = mr_json_ensure_object(copy, "status", NULL);
        if (!status)
                return -ENOMEM;
        (void)mr_json_get_int(&generation, copy, "metadata", "generation", NULL);
        if (collision_bump > 0) {
                int64_t cc = 0;
                (void)mr_json_get_int(&cc, status, "collisionCount", NULL);
                if (mr_json_set_int(status, "collisionCount", cc + collision_bump) < 0)
                        return -ENOMEM;
        }
        if (set_count(status, "currentNumberScheduled", current, false) < 0 ||
            set_count(status, "numberMisscheduled", misscheduled, false) < 0 ||
            set_count(status, "desiredNumberScheduled", desired, false) < 0 ||
            set_count(status, "numberReady", ready, false) < 0 ||
            set_count(status, "observedGeneration", generation, true) < 0 ||
            set_count(status, "updatedNumberScheduled", updated, true) < 0 ||
            set_count(status, "numberAvailable", available, true) < 0 ||
            set_count(status, "numberUnavailable", desired - available, true) < 0)
                return -ENOMEM;
        r = sim_write_status(d->s, &SIM_DAEMONSETS, TAKE_PTR(copy), ACTOR);
        return MIN(r, 0);
}

int sim_daemonset_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due)
{
        _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
        _cleanup_(json_object_putp) json_object *ds = NULL, *tolerations = NULL;
        DsSync d = { .c = c, .s = sim_controllers_store(c), .ns = ns, .name = name, .now = now };
        int64_t generation = 0, collision = 0;
        int r;

        *ret_due = 0;
        json_object *cur = sim_store_get(d.s, &SIM_DAEMONSETS, ns, name);
        if (!cur || sim_obj_is_deleting(cur))
                return 0;
        ds = d.ds = mr_json_copy(cur);
        if (!ds)
                return -ENOMEM;
        d.uid = mr_json_get_str(ds, "metadata", "uid", NULL);
        json_object *selector = mr_json_get(ds, "spec", "selector", NULL);
        if (!selector || mr_selector_from_json(selector, &sel, NULL) < 0 || mr_selector_is_empty(sel))
                return 0; /* "This daemon set is selecting all pods. A non-empty selector is required." */
        json_object *tmpl = mr_json_get(ds, "spec", "template", NULL);

        (void)mr_json_get_int(&generation, ds, "metadata", "generation", NULL);
        const char *tgen = mr_json_get_str(ds, "metadata", "annotations", "deprecated.daemonset.template.generation", NULL);
        if (tgen)
                snprintf(d.generation, sizeof d.generation, "%s", tgen);
        else
                snprintf(d.generation, sizeof d.generation, "%" PRId64, generation);
        (void)mr_json_get_int(&collision, ds, "status", "collisionCount", NULL);
        sim_hash_json(tmpl, (uint32_t)collision, d.hash);
        (void)mr_json_get_int(&d.min_ready, ds, "spec", "minReadySeconds", NULL);
        tolerations = d.tolerations = sim_daemon_tolerations(mr_json_get(tmpl, "spec", "tolerations", NULL));
        if (!tolerations)
                return -ENOMEM;

        r = load(&d);
        if (r < 0)
                goto finish;
        r = sync_history(&d);
        if (r < 0)
                goto finish;
        if (r > 0) {
                /* Hash collision: bump collisionCount, the next sync hashes again. */
                r = write_status(&d, 1);
                goto finish;
        }

        const char *type = mr_json_get_str(ds, "spec", "updateStrategy", "type", NULL);
        bool rolling = !type || streq(type, "RollingUpdate");
        int64_t desired = (int64_t)desired_count(&d), max_surge = 0, max_unavailable = 1;
        if (rolling) {
                json_object *ru = mr_json_get(ds, "spec", "updateStrategy", "rollingUpdate", NULL);
                if (sim_intstr_scaled(mr_json_get(ru, "maxSurge", NULL), desired, true, 0, &max_surge) < 0)
                        max_surge = 0;
                if (sim_intstr_scaled(mr_json_get(ru, "maxUnavailable", NULL), desired, true, 1, &max_unavailable) < 0)
                        max_unavailable = 1;
                if (max_surge == 0 && max_unavailable == 0)
                        max_unavailable = 1;
        }
        r = manage(&d, rolling && max_surge > 0);
        if (r < 0)
                goto finish;
        if (rolling) {
                r = load(&d);
                if (r < 0)
                        goto finish;
                r = rolling_update(&d, max_surge, max_unavailable);
                if (r < 0)
                        goto finish;
        }
        r = load(&d);
        if (r < 0)
                goto finish;
        r = write_status(&d, 0);
finish:
        *ret_due = d.due;
        ds_sync_done(&d);
        return r;
}
