/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ztunnel.c — the ztunnel DaemonSet as the coordinator sees it (contract:
 * ztunnel.h; API: shared/reference/kubernetes-api.md §9.3, §9.4, §6.1).
 *
 * Reading. ztunnel_inspect makes three requests: GET the DaemonSet, then
 * LIST its namespace's ControllerRevisions and pods with the DaemonSet's own
 * selector (the controller's constructHistory and getDaemonPods do the
 * same), keeping only objects whose *controller* ownerReference carries the
 * DaemonSet's uid — a selector can match a namesake's leftovers, an owner
 * uid cannot. Nothing is cached here between calls: the engine re-inspects
 * on every step, so a new leader sees exactly what the old one left. The
 * pods alone may come from a source the caller keeps up to date instead of
 * the list (ztunnel_inspect_full; the engine's watch cache, podcache.h);
 * the DaemonSet and its revisions are always read, they are two small
 * objects' worth of requests, and the template must be judged fresh.
 *
 * Which revision is which. Hashes cannot be computed here (the real
 * controller hashes Go's dump of the template; the simulator its canonical
 * JSON), so they are only ever read from labels and compared for equality.
 * The update revision is found the way the controller finds it: the
 * revision whose data.spec.template, minus the "$patch":"replace" directive
 * the controller adds, equals the DaemonSet's template; the highest
 * `revision` wins when a collision left two equal ones. A revision's hash
 * is its controller-revision-hash label, else the suffix of "<ds>-<hash>".
 * The previous revision prefers one that pods still run (rolled-back or
 * not yet replaced nodes), so a rollback targets what the cluster really
 * ran, not an older history entry.
 *
 * Writing. Replacement deletes pods with a UID precondition and the pod's
 * own grace period: a pod the controller already replaced under the same
 * name (impossible for DaemonSets' generated names, but cheap to rule out)
 * is never touched, and 404/409 mean "already done". Template changes are
 * a PUT of the freshly read DaemonSet carrying the resourceVersion of the
 * inspection the caller decided on, so the server itself refuses a
 * decision made on stale data (§6.1). A PATCH could not express that
 * precondition on the whole template without also sending the old one.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "meshroll/selector.h"
#include "ztunnel.h"

#define REVISION_HASH_LABEL "controller-revision-hash"
#define ON_DELETE_FIX "'{\"spec\":{\"updateStrategy\":{\"type\":\"OnDelete\"}}}'"

static const char *const node_state_table[] = {
    [ZTUNNEL_NODE_MISSING] = "missing",
    [ZTUNNEL_NODE_OTHER] = "other",
    [ZTUNNEL_NODE_TERMINATING] = "terminating",
    [ZTUNNEL_NODE_STARTING] = "starting",
    [ZTUNNEL_NODE_READY] = "ready",
};

const char *ztunnel_node_state_to_string(ZtunnelNodeState s)
{
        if ((size_t)s >= ELEMENTSOF(node_state_table))
                return NULL;
        return node_state_table[s];
}

/* Sets err to "<what>: <the server's message>" and returns r (negative). */
_printf_(4, 5) static int api_error(MrError *err, int r, const KubeStatus *st, const char *fmt, ...)
{
        char what[512];
        va_list ap;

        va_start(ap, fmt);
        (void)vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        return mr_error_set(err, r, "%s: %s", what, !isempty(st->message) ? st->message : mr_strerror(r));
}

static int oom(MrError *err)
{
        return mr_error_set(err, -ENOMEM, "out of memory");
}

const char *ztunnel_controller_uid(json_object *obj)
{
        json_object *refs = mr_json_get(obj, "metadata", "ownerReferences", NULL);

        if (!refs || !json_object_is_type(refs, json_type_array))
                return NULL;
        /* At most one reference may be the controller (the API server validates it). */
        for (size_t i = 0; i < json_object_array_length(refs); i++) {
                json_object *ref = json_object_array_get_idx(refs, i);
                if (mr_json_get_bool(false, ref, "controller", NULL))
                        return mr_json_get_str(ref, "uid", NULL);
        }
        return NULL;
}

/* true when obj's controller ownerReference names uid. obj is borrowed. */
static bool controlled_by(json_object *obj, const char *uid)
{
        return streq_ptr(ztunnel_controller_uid(obj), uid);
}

/*
 * The pod template a ControllerRevision holds, without the "$patch"
 * directive: 0 and an owned copy, -EBADMSG when it holds none, -ENOMEM.
 */
static int revision_template(json_object *cr, json_object **ret)
{
        json_object *t = mr_json_get(cr, "data", "spec", "template", NULL);
        json_object *copy;

        if (!t || !json_object_is_type(t, json_type_object))
                return -EBADMSG;
        copy = mr_json_copy(t);
        if (!copy)
                return -ENOMEM;
        json_object_object_del(copy, "$patch");
        *ret = copy;
        return 0;
}

/* The revision's hash (borrowed from cr): its label, else the "<ds>-" suffix of its name; NULL if neither.
 */
static const char *revision_hash(json_object *cr, const char *ds_name)
{
        const char *hash = mr_json_get_str(cr, "metadata", "labels", REVISION_HASH_LABEL, NULL);
        const char *name = mr_json_get_str(cr, "metadata", "name", NULL), *p;

        if (!isempty(hash))
                return hash;
        if (!name || !(p = startswith(name, ds_name)) || *p != '-' || isempty(p + 1))
                return NULL;
        return p + 1;
}

static int64_t revision_number(json_object *cr)
{
        int64_t v = 0;
        (void)mr_json_get_int(&v, cr, "revision", NULL);
        return v;
}

/* Status "True" of the pod's Ready condition. */
static bool pod_ready(json_object *pod)
{
        json_object *conds = mr_json_get(pod, "status", "conditions", NULL);

        if (!conds || !json_object_is_type(conds, json_type_array))
                return false;
        for (size_t i = 0; i < json_object_array_length(conds); i++) {
                json_object *c = json_object_array_get_idx(conds, i);
                if (streq_ptr(mr_json_get_str(c, "type", NULL), "Ready"))
                        return streq_ptr(mr_json_get_str(c, "status", NULL), "True");
        }
        return false;
}

/*
 * The node a DaemonSet pod is meant for before the scheduler binds it: the
 * single value of its required matchFields metadata.name term (§9.3). Borrowed.
 */
static const char *affinity_node(json_object *pod)
{
        json_object *terms =
            mr_json_get(pod, "spec", "affinity", "nodeAffinity",
                        "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms", NULL);

        if (!terms || !json_object_is_type(terms, json_type_array))
                return NULL;
        for (size_t i = 0; i < json_object_array_length(terms); i++) {
                json_object *fields = mr_json_get(json_object_array_get_idx(terms, i), "matchFields", NULL);
                if (!fields || !json_object_is_type(fields, json_type_array))
                        continue;
                for (size_t j = 0; j < json_object_array_length(fields); j++) {
                        json_object *f = json_object_array_get_idx(fields, j);
                        json_object *values = mr_json_get(f, "values", NULL);
                        if (!streq_ptr(mr_json_get_str(f, "key", NULL), "metadata.name") ||
                            !streq_ptr(mr_json_get_str(f, "operator", NULL), "In") || !values ||
                            !json_object_is_type(values, json_type_array) ||
                            json_object_array_length(values) != 1)
                                continue;
                        json_object *v = json_object_array_get_idx(values, 0);
                        if (json_object_is_type(v, json_type_string))
                                return json_object_get_string(v);
                }
        }
        return NULL;
}

static unsigned pod_restarts(json_object *pod)
{
        json_object *statuses = mr_json_get(pod, "status", "containerStatuses", NULL);
        uint64_t sum = 0;

        if (!statuses || !json_object_is_type(statuses, json_type_array))
                return 0;
        for (size_t i = 0; i < json_object_array_length(statuses); i++) {
                int64_t n = 0;
                if (mr_json_get_int(&n, json_object_array_get_idx(statuses, i), "restartCount", NULL) == 0 &&
                    n > 0)
                        sum += (uint64_t)n;
        }
        return (unsigned)MIN(sum, (uint64_t)UINT32_MAX);
}

void ztunnel_pod_done(ZtunnelPod *p)
{
        free(p->node);
        free(p->name);
        free(p->uid);
        free(p->hash);
}

int ztunnel_pod_from_json(json_object *o, ZtunnelPod *ret)
{
        const char *node = mr_json_get_str(o, "spec", "nodeName", NULL);
        const char *hash = mr_json_get_str(o, "metadata", "labels", REVISION_HASH_LABEL, NULL);

        if (isempty(node))
                node = affinity_node(o);
        *ret = (ZtunnelPod){
            .node = strdup(strempty(node)),
            .name = strdup(strempty(mr_json_get_str(o, "metadata", "name", NULL))),
            .uid = strdup(strempty(mr_json_get_str(o, "metadata", "uid", NULL))),
            .hash = hash ? strdup(hash) : NULL,
            .ready = pod_ready(o),
            .terminating = mr_json_get(o, "metadata", "deletionTimestamp", NULL) != NULL,
            .restarts = pod_restarts(o),
        };
        if (!ret->node || !ret->name || !ret->uid || (hash && !ret->hash))
                return -ENOMEM;
        return 0;
}

static int pod_cmp(const void *a, const void *b)
{
        const ZtunnelPod *x = a, *y = b;
        int r = strcmp(x->node, y->node);
        return r != 0 ? r : strcmp(x->name, y->name);
}

ZtunnelInfo *ztunnel_info_free(ZtunnelInfo *z)
{
        if (!z)
                return NULL;
        for (size_t i = 0; i < z->n_pods; i++)
                ztunnel_pod_done(&z->pods[i]);
        free(z->pods);
        free(z->namespace);
        free(z->name);
        free(z->uid);
        free(z->resource_version);
        free(z->update_hash);
        free(z->update_revision);
        free(z->previous_hash);
        free(z->previous_revision);
        free(z->selector);
        free(z);
        return NULL;
}

void ztunnel_info_sort_pods(ZtunnelInfo *z)
{
        if (z && z->n_pods > 1)
                qsort(z->pods, z->n_pods, sizeof(ZtunnelPod), pod_cmp);
}

static void clear_pods(ZtunnelInfo *z)
{
        for (size_t i = 0; i < z->n_pods; i++)
                ztunnel_pod_done(&z->pods[i]);
        free(z->pods);
        z->pods = NULL;
        z->n_pods = 0;
}

/* Copies the DaemonSet's pods out of one page of items (borrowed) into z, growing z->pods. */
static int collect_page(ZtunnelInfo *z, json_object *items, size_t *allocated)
{
        size_t n = json_object_array_length(items);

        if (z->n_pods + n > *allocated) {
                size_t a = MAX(*allocated * 2, z->n_pods + n);
                ZtunnelPod *p = reallocarray(z->pods, a, sizeof(ZtunnelPod));
                if (!p)
                        return -ENOMEM;
                z->pods = p;
                *allocated = a;
        }
        for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_array_get_idx(items, i);
                if (!controlled_by(o, z->uid))
                        continue;
                /* Counted before checking, so ztunnel_info_free frees a partial copy. */
                if (ztunnel_pod_from_json(o, &z->pods[z->n_pods++]) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/*
 * Lists the DaemonSet's pods page by page (500 a page, kubectl's size), keeping
 * only what ZtunnelPod holds of each: one page of JSON at a time is in memory,
 * not the whole list — at 5,000 nodes the list is tens of MB of JSON and json-c
 * multiplies that. An expired continue token (410) restarts the list once.
 */
static int collect_pods(KubeClient *c, ZtunnelInfo *z, const char *selector, MrError *err)
{
        _cleanup_free_ char *base = NULL, *cont = NULL;
        size_t allocated = 0;
        bool restarted = false;
        KubeStatus st = {};
        int r;

        if (kube_path(&KUBE_PODS, z->namespace, NULL, NULL, &base) < 0 ||
            kube_path_append_query(&base, "labelSelector", selector, NULL) < 0)
                return oom(err);
        for (;;) {
                _cleanup_(json_object_putp) json_object *page = NULL;
                _cleanup_free_ char *path = strdup(base);
                const char *next;

                if (!path || kube_path_append_query(&path, "limit", "500", "continue", cont, NULL) < 0)
                        return oom(err);
                r = kube_get(c, path, &page, &st);
                if (r == -MR_EGONE && cont && !restarted) {
                        restarted = true;
                        free(cont);
                        cont = NULL;
                        clear_pods(z);
                        allocated = 0;
                        continue;
                }
                if (r < 0)
                        return api_error(err, r, &st, "Failed to list the pods of DaemonSet %s/%s", z->namespace,
                                         z->name);
                json_object *items = mr_json_get(page, "items", NULL);
                if (items && !json_object_is_type(items, json_type_array))
                        return mr_error_set(err, -EBADMSG, "DaemonSet %s/%s: a pod list's items is not an array",
                                            z->namespace, z->name);
                if (items && collect_page(z, items, &allocated) < 0)
                        return oom(err);
                next = mr_json_get_str(page, "metadata", "continue", NULL);
                free(cont);
                cont = NULL;
                if (isempty(next))
                        break;
                if (!(cont = strdup(next)))
                        return oom(err);
        }
        ztunnel_info_sort_pods(z);
        return 0;
}

static bool hash_in_use(const ZtunnelInfo *z, const char *hash)
{
        for (size_t i = 0; i < z->n_pods; i++)
                if (streq_ptr(z->pods[i].hash, hash))
                        return true;
        return false;
}

/*
 * Picks the update revision among the owned revisions in items (borrowed):
 * the highest-numbered one whose template equals the DaemonSet's.
 */
static int find_update_revision(ZtunnelInfo *z, json_object *ds_template, json_object *items, MrError *err)
{
        json_object *best = NULL;

        for (size_t i = 0; i < json_object_array_length(items); i++) {
                json_object *cr = json_object_array_get_idx(items, i);
                _cleanup_(json_object_putp) json_object *t = NULL;
                int r;

                if (!controlled_by(cr, z->uid) || !revision_hash(cr, z->name))
                        continue;
                r = revision_template(cr, &t);
                if (r == -ENOMEM)
                        return oom(err);
                if (r < 0 || !mr_json_equal(t, ds_template))
                        continue;
                if (!best || revision_number(cr) > revision_number(best))
                        best = cr;
        }
        if (!best)
                return mr_error_set(err, -EAGAIN,
                                    "DaemonSet %s/%s: no ControllerRevision holds its current template yet "
                                    "(the DaemonSet controller has not caught up); try again",
                                    z->namespace, z->name);
        z->update_hash = strdup(revision_hash(best, z->name));
        z->update_revision = strdup(strempty(mr_json_get_str(best, "metadata", "name", NULL)));
        if (!z->update_hash || !z->update_revision)
                return oom(err);
        return 0;
}

/*
 * Picks the previous revision (the pods must be known): the highest-numbered
 * other revision that a pod runs, else the highest-numbered other one.
 */
static int find_previous_revision(ZtunnelInfo *z, json_object *items, MrError *err)
{
        json_object *in_use = NULL, *any = NULL, *pick;

        for (size_t i = 0; i < json_object_array_length(items); i++) {
                json_object *cr = json_object_array_get_idx(items, i);
                const char *hash = revision_hash(cr, z->name);

                if (!controlled_by(cr, z->uid) || !hash || streq(hash, z->update_hash))
                        continue;
                if (!any || revision_number(cr) > revision_number(any))
                        any = cr;
                if (hash_in_use(z, hash) && (!in_use || revision_number(cr) > revision_number(in_use)))
                        in_use = cr;
        }
        pick = in_use ? in_use : any;
        if (!pick)
                return 0;
        z->previous_hash = strdup(revision_hash(pick, z->name));
        z->previous_revision = strdup(strempty(mr_json_get_str(pick, "metadata", "name", NULL)));
        if (!z->previous_hash || !z->previous_revision)
                return oom(err);
        return 0;
}

int ztunnel_inspect_full(KubeClient *c, const char *ns, const char *name, ztunnel_pod_source_t source,
                         void *userdata, ZtunnelInfo **ret, MrError *err)
{
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = NULL;
        _cleanup_(json_object_putp) json_object *ds = NULL, *revisions = NULL;
        _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
        _cleanup_free_ char *path = NULL;
        json_object *tmpl;
        const char *uid, *rv, *strategy;
        KubeStatus st = {};
        MrError serr = {};
        int r;

        if (!c || !ns || !name || !ret)
                return mr_error_set(err, -EINVAL, "ztunnel_inspect: missing argument");

        if (kube_path(&KUBE_DAEMONSETS, ns, name, NULL, &path) < 0)
                return oom(err);
        r = kube_get(c, path, &ds, &st);
        if (r == -ENOENT)
                return mr_error_set(err, -ENOENT, "DaemonSet %s/%s not found", ns, name);
        if (r < 0)
                return api_error(err, r, &st, "Failed to read DaemonSet %s/%s", ns, name);

        uid = mr_json_get_str(ds, "metadata", "uid", NULL);
        rv = mr_json_get_str(ds, "metadata", "resourceVersion", NULL);
        tmpl = mr_json_get(ds, "spec", "template", NULL);
        if (isempty(uid) || isempty(rv) || !tmpl || !json_object_is_type(tmpl, json_type_object))
                return mr_error_set(err, -EBADMSG,
                                    "DaemonSet %s/%s: the server's answer lacks metadata.uid, "
                                    "metadata.resourceVersion or spec.template",
                                    ns, name);
        r = mr_selector_from_json(mr_json_get(ds, "spec", "selector", NULL), &sel, &serr);
        if (r == -ENOMEM)
                return oom(err);
        if (r < 0 || mr_selector_is_empty(sel))
                return mr_error_set(err, -EBADMSG, "DaemonSet %s/%s: spec.selector: %s", ns, name,
                                    r < 0 ? serr.message : "empty (a DaemonSet must select its own pods)");
        /* The API defaults a missing strategy to RollingUpdate (§9.1). */
        strategy = mr_json_get_str(ds, "spec", "updateStrategy", "type", NULL);

        z = calloc(1, sizeof(ZtunnelInfo));
        if (!z || !(z->selector = mr_selector_to_string(sel)))
                return oom(err);
        z->namespace = strdup(ns);
        z->name = strdup(name);
        z->uid = strdup(uid);
        z->resource_version = strdup(rv);
        z->on_delete = streq_ptr(strategy, "OnDelete");
        if (!z->namespace || !z->name || !z->uid || !z->resource_version)
                return oom(err);

        KubeListOptions lo = {.label_selector = z->selector};
        r = kube_list(c, &KUBE_CONTROLLERREVISIONS, ns, &lo, &revisions, NULL, &st);
        if (r < 0)
                return api_error(err, r, &st, "Failed to list the ControllerRevisions of DaemonSet %s/%s",
                                 ns, name);
        r = find_update_revision(z, tmpl, revisions, err);
        if (r < 0)
                return r;

        r = source ? source(z, userdata, err) : 0;
        if (r < 0)
                return r;
        if (r > 0)
                z->pods_cached = true;
        else {
                clear_pods(z); /* whatever a source that declined left */
                r = collect_pods(c, z, z->selector, err);
                if (r < 0)
                        return r;
        }
        r = find_previous_revision(z, revisions, err);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(z);
        return 0;
}

int ztunnel_inspect(KubeClient *c, const char *ns, const char *name, ZtunnelInfo **ret, MrError *err)
{
        return ztunnel_inspect_full(c, ns, name, NULL, NULL, ret, err);
}

int ztunnel_require_on_delete(const ZtunnelInfo *z, MrError *err)
{
        if (!z)
                return mr_error_set(err, -EINVAL, "ztunnel_require_on_delete: missing argument");
        if (z->on_delete)
                return 0;
        return mr_error_set(
            err, -MR_ECONFIG,
            "DaemonSet %s/%s does not use updateStrategy OnDelete, so the DaemonSet controller "
            "would replace ztunnel on every node by itself, bypassing the drain; switch it with: "
            "kubectl patch daemonset %s -n %s -p " ON_DELETE_FIX,
            z->namespace, z->name, z->name, z->namespace);
}

const ZtunnelPod *ztunnel_pod_on(const ZtunnelInfo *z, const char *node)
{
        const ZtunnelPod *terminating = NULL;

        if (!z || !node)
                return NULL;
        for (size_t i = 0; i < z->n_pods; i++) {
                const ZtunnelPod *p = &z->pods[i];
                if (!streq(p->node, node))
                        continue;
                if (!p->terminating)
                        return p;
                if (!terminating)
                        terminating = p;
        }
        return terminating;
}

ZtunnelNodeState ztunnel_node_state(const ZtunnelInfo *z, const char *node, const char *want_hash)
{
        bool other = false, wanted = false, ready = false, terminating = false;

        if (!z || !node)
                return ZTUNNEL_NODE_MISSING;
        for (size_t i = 0; i < z->n_pods; i++) {
                const ZtunnelPod *p = &z->pods[i];
                if (!streq(p->node, node))
                        continue;
                if (p->terminating)
                        terminating = true;
                else if (!streq_ptr(p->hash, want_hash))
                        other = true;
                else {
                        wanted = true;
                        ready = ready || p->ready;
                }
        }
        if (other)
                return ZTUNNEL_NODE_OTHER;
        if (wanted)
                return ready ? ZTUNNEL_NODE_READY : ZTUNNEL_NODE_STARTING;
        return terminating ? ZTUNNEL_NODE_TERMINATING : ZTUNNEL_NODE_MISSING;
}

static bool strv_contains(const char *const *l, const char *s)
{
        for (; *l; l++)
                if (streq(*l, s))
                        return true;
        return false;
}

/*
 * DELETE one pod, preconditioned on its UID, with its own grace period. 404
 * and 409 are success. When the server answers with the pod (a graceful
 * delete answers with the pod now terminating, an immediate one with its
 * last state at the deletion's revision), its resourceVersion replaces
 * *rv (when rv is not NULL).
 */
static int delete_pod(KubeClient *c, const ZtunnelInfo *z, const ZtunnelPod *p, char **rv, MrError *err)
{
        _cleanup_(json_object_putp) json_object *body = json_object_new_object(), *answer = NULL;
        _cleanup_free_ char *path = NULL;
        json_object *pre;
        KubeStatus st = {};
        int r;

        pre = body ? mr_json_ensure_object(body, "preconditions", NULL) : NULL;
        if (!pre || mr_json_set_str(pre, "uid", p->uid) < 0 ||
            kube_path(&KUBE_PODS, z->namespace, p->name, NULL, &path) < 0)
                return oom(err);
        r = kube_delete(c, path, body, rv ? &answer : NULL, &st);
        if (r == -ENOENT || r == -MR_ECONFLICT)
                return 0;
        if (r < 0)
                return api_error(err, r, &st, "Failed to delete ztunnel pod %s/%s on node %s", z->namespace,
                                 p->name, p->node);
        const char *answer_rv = mr_json_get_str(answer, "metadata", "resourceVersion", NULL);
        if (rv && !isempty(answer_rv)) {
                char *copy = strdup(answer_rv);
                if (!copy)
                        return oom(err);
                free(*rv);
                *rv = copy;
        }
        return 0;
}

int ztunnel_replace_full(KubeClient *c, const ZtunnelInfo *z, const char *const *nodes, const char *want_hash,
                         char **ret_rv, MrError *err)
{
        int sent = 0, r;

        if (!c || !z || !nodes || !want_hash)
                return mr_error_set(err, -EINVAL, "ztunnel_replace: missing argument");
        /*
         * The deletes go one after the other, each once the previous one was
         * answered, so the last resourceVersion returned is the highest.
         */
        /* Walking the pods (not the nodes) handles a node named twice once. */
        for (size_t i = 0; i < z->n_pods; i++) {
                const ZtunnelPod *p = &z->pods[i];
                if (p->terminating || streq_ptr(p->hash, want_hash) || !strv_contains(nodes, p->node))
                        continue;
                r = delete_pod(c, z, p, ret_rv, err);
                if (r < 0)
                        return r;
                sent++;
        }
        return sent;
}

int ztunnel_replace(KubeClient *c, const ZtunnelInfo *z, const char *const *nodes, const char *want_hash,
                    MrError *err)
{
        return ztunnel_replace_full(c, z, nodes, want_hash, NULL, err);
}

int ztunnel_set_template(KubeClient *c, const ZtunnelInfo *z, const char *revision_name, MrError *err)
{
        _cleanup_(json_object_putp) json_object *cr = NULL, *ds = NULL, *tmpl = NULL;
        _cleanup_free_ char *cr_path = NULL, *ds_path = NULL;
        json_object *spec, *meta;
        KubeStatus st = {};
        int r;

        if (!c || !z || !revision_name)
                return mr_error_set(err, -EINVAL, "ztunnel_set_template: missing argument");
        if (kube_path(&KUBE_CONTROLLERREVISIONS, z->namespace, revision_name, NULL, &cr_path) < 0 ||
            kube_path(&KUBE_DAEMONSETS, z->namespace, z->name, NULL, &ds_path) < 0)
                return oom(err);

        r = kube_get(c, cr_path, &cr, &st);
        if (r == -ENOENT)
                return mr_error_set(err, -ENOENT, "ControllerRevision %s/%s not found", z->namespace,
                                    revision_name);
        if (r < 0)
                return api_error(err, r, &st, "Failed to read ControllerRevision %s/%s", z->namespace,
                                 revision_name);
        if (!controlled_by(cr, z->uid))
                return mr_error_set(err, -ENOENT,
                                    "ControllerRevision %s/%s is not a revision of DaemonSet %s/%s",
                                    z->namespace, revision_name, z->namespace, z->name);
        r = revision_template(cr, &tmpl);
        if (r == -ENOMEM)
                return oom(err);
        if (r < 0)
                return mr_error_set(err, r, "ControllerRevision %s/%s holds no data.spec.template",
                                    z->namespace, revision_name);

        r = kube_get(c, ds_path, &ds, &st);
        if (r == -ENOENT)
                return mr_error_set(err, -ENOENT, "DaemonSet %s/%s not found", z->namespace, z->name);
        if (r < 0)
                return api_error(err, r, &st, "Failed to read DaemonSet %s/%s", z->namespace, z->name);
        if (!streq_ptr(mr_json_get_str(ds, "metadata", "uid", NULL), z->uid))
                return mr_error_set(err, -MR_ECONFLICT,
                                    "DaemonSet %s/%s was deleted and created again since it was read",
                                    z->namespace, z->name);
        spec = mr_json_get(ds, "spec", NULL);
        if (!spec)
                return mr_error_set(err, -EBADMSG, "DaemonSet %s/%s: the server's answer lacks spec",
                                    z->namespace, z->name);
        if (mr_json_equal(mr_json_get(spec, "template", NULL), tmpl))
                return 0;

        /* The inspection's resourceVersion, not the fresh one: the server refuses if anything changed since.
         */
        meta = mr_json_ensure_object(ds, "metadata", NULL);
        if (!meta || mr_json_set_str(meta, "resourceVersion", z->resource_version) < 0 ||
            json_object_object_add(spec, "template", tmpl) < 0)
                return oom(err);
        tmpl = NULL; /* owned by ds now */
        r = kube_replace(c, ds_path, ds, NULL, &st);
        if (r == -MR_ECONFLICT)
                return mr_error_set(
                    err, r,
                    "DaemonSet %s/%s changed since it was read (resourceVersion %s); read it again "
                    "before pointing its template at %s: %s",
                    z->namespace, z->name, z->resource_version, revision_name, st.message);
        if (r < 0)
                return api_error(err, r, &st, "Failed to point DaemonSet %s/%s at ControllerRevision %s",
                                 z->namespace, z->name, revision_name);
        return 1;
}
