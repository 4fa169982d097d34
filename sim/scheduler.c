/* SPDX-License-Identifier: Apache-2.0 */
/*
 * scheduler.c — the simulated default-scheduler.
 *
 * Binds each pending pod (no spec.nodeName, schedulerName default) to a node
 * that passes the filters the real scheduler's default plugins apply and
 * that matter to rollouts:
 *   - NodeUnschedulable / TaintToleration: NoSchedule and NoExecute taints
 *     must be tolerated (the node lifecycle controller turns a cordon into
 *     the node.kubernetes.io/unschedulable taint; DaemonSet pods carry its
 *     toleration);
 *   - NodeName, NodeAffinity: spec.nodeName, spec.nodeSelector, required
 *     node affinity (matchExpressions on labels, matchFields on
 *     metadata.name);
 *   - NodeResourcesFit: the sum of requests (cpu, memory) and the pod count
 *     against status.allocatable (else capacity; pods default 110);
 *   - a node whose Ready condition is not True is skipped.
 * Scoring is least-allocated by pod count, ties broken by name, so
 * replicas spread and runs are reproducible.
 *
 * The scheduler's cache (SimSchedCache, fed by the controllers' store
 * observer) makes a placement cheap at any cluster size: per node, a
 * trimmed copy of what the filters read (name, labels, taints), Ready,
 * allocatable, and the requests of the pods bound there, kept
 * incrementally from every pod write (each write subtracts the previous
 * state's share and adds the new one's); nodes sit in buckets by pod
 * count, each sorted by name, so the first feasible node met walking the
 * buckets upward is the best one and a placement usually looks at one
 * node. The set of pending pods is kept too: a freed capacity or a node
 * change retries those, not every pod. (The scheduler used to sum the
 * requests of every pod of every node for every pod it placed: ~55 pods/s
 * at 5,000 nodes.) Binding writes spec.nodeName
 * and PodScheduled=True in one update (the real binding subresource does
 * both); an unschedulable pod gets PodScheduled=False/Unschedulable with a
 * message in the scheduler's "0/N nodes are available: …" form and is
 * retried whenever a node or pod changes.
 */
#include <inttypes.h>
#include <stdio.h>

#include "controllers-internal.h"
#include "meshroll/json-util.h"

#define ACTOR "default-scheduler"

/* Good enough for cpu and memory requests and node capacity (see controllers-internal.h). */
int sim_quantity_milli(json_object *v, int64_t *ret)
{
        static const struct {
                const char *suffix;
                double mult;
        } units[] = {
                { "Ki", 1024.0 }, { "Mi", 1048576.0 }, { "Gi", 1073741824.0 }, { "Ti", 1099511627776.0 },
                { "k", 1e3 },     { "M", 1e6 },        { "G", 1e9 },          { "T", 1e12 },
                { "m", 1e-3 },
        };
        if (!v)
                return -EINVAL;
        if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) {
                double d = json_object_get_double(v);
                if (!(d >= 0 && d <= 1e15))
                        return -EINVAL;
                *ret = (int64_t)(d * 1000.0);
                return 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return -EINVAL;
        const char *s = json_object_get_string(v);
        char *end;
        double d = strtod(s, &end);
        if (end == s || d < 0 || d > 1e15)
                return -EINVAL;
        double mult = 1.0;
        if (*end) {
                size_t i;
                for (i = 0; i < ELEMENTSOF(units); i++)
                        if (streq(end, units[i].suffix))
                                break;
                if (i == ELEMENTSOF(units))
                        return -EINVAL;
                mult = units[i].mult;
        }
        *ret = (int64_t)(d * mult * 1000.0);
        return 0;
}

typedef struct Requests {
        int64_t cpu, memory; /* milli-units */
} Requests;

static void pod_requests(json_object *pod, Requests *ret)
{
        *ret = (Requests){};
        json_object *containers = mr_json_get(pod, "spec", "containers", NULL);
        for (size_t i = 0; containers && json_object_is_type(containers, json_type_array) &&
                           i < json_object_array_length(containers);
             i++) {
                json_object *req = mr_json_get(json_object_array_get_idx(containers, i), "resources", "requests", NULL);
                int64_t v;
                if (sim_quantity_milli(mr_json_get(req, "cpu", NULL), &v) == 0)
                        ret->cpu += v;
                if (sim_quantity_milli(mr_json_get(req, "memory", NULL), &v) == 0)
                        ret->memory += v;
        }
}

static bool toleration_matches(json_object *tol, json_object *taint)
{
        const char *tkey = mr_json_get_str(tol, "key", NULL), *op = mr_json_get_str(tol, "operator", NULL);
        const char *teffect = mr_json_get_str(tol, "effect", NULL);
        const char *key = mr_json_get_str(taint, "key", NULL), *effect = mr_json_get_str(taint, "effect", NULL);
        if (!isempty(teffect) && !streq_ptr(teffect, effect))
                return false;
        if (isempty(tkey))
                return streq_ptr(op, "Exists");
        if (!streq_ptr(tkey, key))
                return false;
        if (streq_ptr(op, "Exists"))
                return true;
        return streq(strempty(mr_json_get_str(tol, "value", NULL)), strempty(mr_json_get_str(taint, "value", NULL)));
}

bool sim_taint_tolerated(json_object *taint, json_object *tolerations)
{
        const char *effect = mr_json_get_str(taint, "effect", NULL);
        if (!streq_ptr(effect, "NoSchedule") && !streq_ptr(effect, "NoExecute"))
                return true;
        for (size_t j = 0; tolerations && json_object_is_type(tolerations, json_type_array) &&
                           j < json_object_array_length(tolerations);
             j++)
                if (toleration_matches(json_object_array_get_idx(tolerations, j), taint))
                        return true;
        return false;
}

/* The first NoSchedule/NoExecute taint the tolerations do not cover, or NULL. Borrowed. */
json_object *sim_node_untolerated_taint(json_object *node, json_object *tolerations)
{
        json_object *taints = mr_json_get(node, "spec", "taints", NULL);
        for (size_t i = 0; taints && json_object_is_type(taints, json_type_array) && i < json_object_array_length(taints);
             i++) {
                json_object *t = json_object_array_get_idx(taints, i);
                if (!sim_taint_tolerated(t, tolerations))
                        return t;
        }
        return NULL;
}

static bool value_in(json_object *values, const char *v)
{
        for (size_t i = 0; v && values && json_object_is_type(values, json_type_array) && i < json_object_array_length(values);
             i++)
                if (streq_ptr(json_object_get_string(json_object_array_get_idx(values, i)), v))
                        return true;
        return false;
}

static bool requirement_matches(json_object *req, const char *value, bool present)
{
        const char *op = mr_json_get_str(req, "operator", NULL);
        json_object *values = mr_json_get(req, "values", NULL);
        if (streq_ptr(op, "In"))
                return present && value_in(values, value);
        if (streq_ptr(op, "NotIn"))
                return !present || !value_in(values, value);
        if (streq_ptr(op, "Exists"))
                return present;
        if (streq_ptr(op, "DoesNotExist"))
                return !present;
        if ((streq_ptr(op, "Gt") || streq_ptr(op, "Lt")) && present && json_object_array_length(values) == 1) {
                long long a = strtoll(value, NULL, 10);
                long long b = strtoll(json_object_get_string(json_object_array_get_idx(values, 0)), NULL, 10);
                return streq(op, "Gt") ? a > b : a < b;
        }
        return false;
}

static bool term_matches(json_object *term, json_object *node)
{
        json_object *labels = mr_json_get(node, "metadata", "labels", NULL);
        json_object *exprs = mr_json_get(term, "matchExpressions", NULL);
        json_object *fields = mr_json_get(term, "matchFields", NULL);
        size_t n = 0;
        for (size_t i = 0; exprs && json_object_is_type(exprs, json_type_array) && i < json_object_array_length(exprs); i++) {
                json_object *e = json_object_array_get_idx(exprs, i);
                const char *v = mr_json_get_str(labels, strempty(mr_json_get_str(e, "key", NULL)), NULL);
                if (!requirement_matches(e, v, v != NULL))
                        return false;
                n++;
        }
        for (size_t i = 0; fields && json_object_is_type(fields, json_type_array) && i < json_object_array_length(fields);
             i++) {
                json_object *e = json_object_array_get_idx(fields, i);
                if (!streq_ptr(mr_json_get_str(e, "key", NULL), "metadata.name"))
                        return false;
                if (!requirement_matches(e, mr_json_get_str(node, "metadata", "name", NULL), true))
                        return false;
                n++;
        }
        return n > 0; /* an empty term matches nothing */
}

/* nodeName, nodeSelector and required node affinity. */
bool sim_node_fits_placement(json_object *pod, json_object *node)
{
        const char *want = mr_json_get_str(pod, "spec", "nodeName", NULL);
        if (want && !streq_ptr(want, mr_json_get_str(node, "metadata", "name", NULL)))
                return false;
        json_object *sel = mr_json_get(pod, "spec", "nodeSelector", NULL);
        json_object *labels = mr_json_get(node, "metadata", "labels", NULL);
        if (sel && json_object_is_type(sel, json_type_object)) {
                json_object_object_foreach(sel, k, v)
                {
                        if (!streq_ptr(mr_json_get_str(labels, k, NULL), json_object_get_string(v)))
                                return false;
                }
        }
        json_object *terms = mr_json_get(pod, "spec", "affinity", "nodeAffinity",
                                         "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms", NULL);
        if (terms && json_object_is_type(terms, json_type_array)) {
                for (size_t i = 0; i < json_object_array_length(terms); i++)
                        if (term_matches(json_object_array_get_idx(terms, i), node))
                                return true;
                return false;
        }
        return true;
}

bool sim_node_is_ready(json_object *node)
{
        json_object *conds = mr_json_get(node, "status", "conditions", NULL);
        for (size_t i = 0; conds && json_object_is_type(conds, json_type_array) && i < json_object_array_length(conds); i++) {
                json_object *c = json_object_array_get_idx(conds, i);
                if (streq_ptr(mr_json_get_str(c, "type", NULL), "Ready"))
                        return streq_ptr(mr_json_get_str(c, "status", NULL), "True");
        }
        return true; /* a node without conditions yet is taken as Ready */
}

static int64_t allocatable(json_object *node, const char *resource, int64_t def)
{
        int64_t v;
        json_object *q = mr_json_get(node, "status", "allocatable", resource, NULL);
        if (!q)
                q = mr_json_get(node, "status", "capacity", resource, NULL);
        return sim_quantity_milli(q, &v) == 0 ? v : def;
}

/* ---- the cache ---------------------------------------------------------------------------- */

typedef struct SchedNode {
        char *name;
        json_object *node; /* owned trim: metadata.name, metadata.labels, spec.taints; NULL: no such node */
        bool ready;
        int64_t cap_pods, cap_cpu, cap_memory;
        int64_t pods, cpu, memory; /* requested by the bound pods that are not terminal */
} SchedNode;

typedef struct NodeArray {
        SchedNode **v;
        size_t n, cap;
} NodeArray;

struct SimSchedCache {
        NodeArray by_name; /* every node known, existing or only named by pods */
        NodeArray *buckets; /* buckets[p]: existing nodes with p pods, by name */
        size_t n_buckets;
        size_t n_existing;
        json_object *pending; /* "ns/name" → null: pods waiting for a node */
};

static size_t array_search(const NodeArray *a, const char *name, bool *found)
{
        size_t lo = 0, hi = a->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (strcmp(a->v[mid]->name, name) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *found = lo < a->n && streq(a->v[lo]->name, name);
        return lo;
}

static int array_insert(NodeArray *a, SchedNode *n)
{
        bool found;
        size_t i = array_search(a, n->name, &found);
        if (found)
                return 0;
        if (a->n == a->cap) {
                size_t cap = a->cap ? a->cap * 2 : 16;
                SchedNode **v = reallocarray(a->v, cap, sizeof(SchedNode *));
                if (!v)
                        return -ENOMEM;
                a->v = v;
                a->cap = cap;
        }
        memmove(a->v + i + 1, a->v + i, (a->n - i) * sizeof(SchedNode *));
        a->v[i] = n;
        a->n++;
        return 0;
}

static void array_remove(NodeArray *a, SchedNode *n)
{
        bool found;
        size_t i = array_search(a, n->name, &found);
        if (found && a->v[i] == n) {
                memmove(a->v + i, a->v + i + 1, (a->n - i - 1) * sizeof(SchedNode *));
                a->n--;
        }
}

static int bucket_insert(SimSchedCache *sc, SchedNode *n)
{
        size_t b = (size_t)MAX(n->pods, (int64_t)0);
        if (b >= sc->n_buckets) {
                size_t nb = MAX(b + 1, sc->n_buckets * 2);
                NodeArray *v = reallocarray(sc->buckets, nb, sizeof(NodeArray));
                if (!v)
                        return -ENOMEM;
                memset(v + sc->n_buckets, 0, (nb - sc->n_buckets) * sizeof(NodeArray));
                sc->buckets = v;
                sc->n_buckets = nb;
        }
        return array_insert(&sc->buckets[b], n);
}

static void bucket_remove(SimSchedCache *sc, SchedNode *n)
{
        size_t b = (size_t)MAX(n->pods, (int64_t)0);
        if (b < sc->n_buckets)
                array_remove(&sc->buckets[b], n);
}

int sim_sched_cache_new(SimSchedCache **ret)
{
        SimSchedCache *sc = calloc(1, sizeof(*sc));
        if (!sc || !(sc->pending = json_object_new_object())) {
                free(sc);
                return -ENOMEM;
        }
        *ret = sc;
        return 0;
}

SimSchedCache *sim_sched_cache_free(SimSchedCache *sc)
{
        if (!sc)
                return NULL;
        for (size_t i = 0; i < sc->by_name.n; i++) {
                json_object_put(sc->by_name.v[i]->node);
                free(sc->by_name.v[i]->name);
                free(sc->by_name.v[i]);
        }
        free(sc->by_name.v);
        for (size_t i = 0; i < sc->n_buckets; i++)
                free(sc->buckets[i].v);
        free(sc->buckets);
        json_object_put(sc->pending);
        free(sc);
        return NULL;
}

static SchedNode *cache_node(SimSchedCache *sc, const char *name)
{
        bool found;
        size_t i = array_search(&sc->by_name, name, &found);
        if (found)
                return sc->by_name.v[i];
        SchedNode *n = calloc(1, sizeof(*n));
        if (!n || !(n->name = strdup(name)) || array_insert(&sc->by_name, n) < 0) {
                if (n)
                        free(n->name);
                free(n);
                return NULL;
        }
        return n;
}

/* What the filters read of a node, copied (a node's whole tree is ~10 KiB). NULL on ENOMEM. */
static json_object *node_trim(json_object *node)
{
        json_object *t = json_object_new_object(), *meta = json_object_new_object(), *v;
        if (!t || !meta || json_object_object_add(t, "metadata", meta) < 0) {
                json_object_put(meta);
                json_object_put(t);
                return NULL;
        }
        if (mr_json_set_str(meta, "name", strempty(mr_json_get_str(node, "metadata", "name", NULL))) < 0)
                return json_object_put(t), NULL;
        if ((v = mr_json_get(node, "metadata", "labels", NULL)) && json_object_object_add(meta, "labels", mr_json_copy(v)) < 0)
                return json_object_put(t), NULL;
        if ((v = mr_json_get(node, "spec", "taints", NULL))) {
                json_object *spec = mr_json_ensure_object(t, "spec", NULL);
                if (!spec || json_object_object_add(spec, "taints", mr_json_copy(v)) < 0)
                        return json_object_put(t), NULL;
        }
        return t;
}

/* The node is gone (or could not be kept): out of the buckets, known only by name. */
static void forget_node(SimSchedCache *sc, SchedNode *n)
{
        if (!n->node)
                return;
        bucket_remove(sc, n);
        json_object_put(n->node);
        n->node = NULL;
        sc->n_existing--;
}

static void observe_node(SimSchedCache *sc, SimEventType type, json_object *obj)
{
        const char *name = mr_json_get_str(obj, "metadata", "name", NULL);
        SchedNode *n = name ? cache_node(sc, name) : NULL;
        if (!n)
                return;
        forget_node(sc, n);
        if (type == SIM_EVENT_DELETED)
                return;
        n->node = node_trim(obj);
        if (!n->node)
                return;
        n->ready = sim_node_is_ready(obj);
        n->cap_pods = allocatable(obj, "pods", 110 * 1000);
        n->cap_cpu = allocatable(obj, "cpu", INT64_MAX / 4);
        n->cap_memory = allocatable(obj, "memory", INT64_MAX / 4);
        sc->n_existing++;
        if (bucket_insert(sc, n) < 0)
                forget_node(sc, n);
}

/* A pod's share of its node: bound and not terminal. */
static const char *pod_share(json_object *pod, Requests *ret)
{
        const char *node = mr_json_get_str(pod, "spec", "nodeName", NULL);
        const char *phase = mr_json_get_str(pod, "status", "phase", NULL);
        if (isempty(node) || streq_ptr(phase, "Succeeded") || streq_ptr(phase, "Failed"))
                return NULL;
        pod_requests(pod, ret);
        return node;
}

static void account(SimSchedCache *sc, json_object *pod, int sign)
{
        Requests r;
        const char *name = pod_share(pod, &r);
        SchedNode *n = name ? cache_node(sc, name) : NULL;
        if (!n)
                return;
        if (n->node)
                bucket_remove(sc, n);
        n->pods += sign;
        n->cpu += sign * r.cpu;
        n->memory += sign * r.memory;
        if (n->node && bucket_insert(sc, n) < 0)
                forget_node(sc, n);
}

static bool pod_is_pending(json_object *pod)
{
        const char *phase = mr_json_get_str(pod, "status", "phase", NULL);
        const char *sched = mr_json_get_str(pod, "spec", "schedulerName", NULL);
        return !mr_json_get_str(pod, "spec", "nodeName", NULL) && !sim_obj_is_deleting(pod) &&
               (!sched || streq(sched, "default-scheduler")) && !streq_ptr(phase, "Succeeded") &&
               !streq_ptr(phase, "Failed");
}

void sim_sched_cache_observe(SimSchedCache *sc, const SimKind *k, SimEventType type, json_object *obj,
                             json_object *old)
{
        if (k == &SIM_NODES) {
                observe_node(sc, type, obj);
                return;
        }
        if (k != &SIM_PODS)
                return;
        if (old)
                account(sc, old, -1);
        else if (type == SIM_EVENT_DELETED)
                account(sc, obj, -1);
        if (type != SIM_EVENT_DELETED)
                account(sc, obj, +1);

        char key[512];
        snprintf(key, sizeof key, "%s/%s", strempty(mr_json_get_str(obj, "metadata", "namespace", NULL)),
                 strempty(mr_json_get_str(obj, "metadata", "name", NULL)));
        if (type != SIM_EVENT_DELETED && pod_is_pending(obj))
                json_object_object_add(sc->pending, key, NULL);
        else
                json_object_object_del(sc->pending, key);
}

void sim_sched_cache_enqueue_pending(SimControllers *c, SimSchedCache *sc)
{
        json_object_object_foreach(sc->pending, key, v)
        {
                (void)v;
                const char *slash = strchr(key, '/');
                char ns[256];
                if (!slash || (size_t)(slash - key) >= sizeof ns)
                        continue;
                memcpy(ns, key, (size_t)(slash - key));
                ns[slash - key] = 0;
                sim_controllers_enqueue(c, SIM_CTRL_SCHEDULER, ns[0] ? ns : NULL, slash + 1);
        }
}

size_t sim_sched_cache_pending(const SimSchedCache *sc)
{
        return (size_t)json_object_object_length(sc->pending);
}

/* ---- placement ------------------------------------------------------------------------------ */

typedef enum Reason {
        R_NONE = -1,
        R_TAINT,
        R_SELECTOR,
        R_NOT_READY,
        R_PODS,
        R_CPU,
        R_MEMORY,
        _R_MAX,
} Reason;

/* Why pod cannot go to n, in the filters' order, or R_NONE when it fits. */
static Reason node_rejects(const SchedNode *n, json_object *pod, json_object *tolerations, const Requests *want)
{
        if (!n->ready)
                return R_NOT_READY;
        if (sim_node_untolerated_taint(n->node, tolerations))
                return R_TAINT;
        if (!sim_node_fits_placement(pod, n->node))
                return R_SELECTOR;
        if ((n->pods + 1) * 1000 > n->cap_pods)
                return R_PODS;
        if (want->cpu > 0 && n->cpu + want->cpu > n->cap_cpu)
                return R_CPU;
        if (want->memory > 0 && n->memory + want->memory > n->cap_memory)
                return R_MEMORY;
        return R_NONE;
}

int sim_scheduler_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due)
{
        SimStore *s = sim_controllers_store(c);
        SimSchedCache *sc = sim_controllers_sched_cache(c);
        unsigned reasons[_R_MAX] = {};
        const SchedNode *best = NULL;
        char msg[512];
        int r;

        *ret_due = 0;
        json_object *pod = sim_store_get(s, &SIM_PODS, ns, name);
        if (!pod || mr_json_get_str(pod, "spec", "nodeName", NULL) || sim_obj_is_deleting(pod))
                return 0;
        const char *sched = mr_json_get_str(pod, "spec", "schedulerName", NULL);
        if (sched && !streq(sched, "default-scheduler"))
                return 0;
        const char *phase = mr_json_get_str(pod, "status", "phase", NULL);
        if (streq_ptr(phase, "Succeeded") || streq_ptr(phase, "Failed"))
                return 0;

        Requests want;
        pod_requests(pod, &want);
        json_object *tolerations = mr_json_get(pod, "spec", "tolerations", NULL);
        /* Least pods first, then by name: the first node that fits is the one to take. */
        for (size_t b = 0; b < sc->n_buckets && !best; b++)
                for (size_t i = 0; i < sc->buckets[b].n && !best; i++)
                        if (node_rejects(sc->buckets[b].v[i], pod, tolerations, &want) == R_NONE)
                                best = sc->buckets[b].v[i];

        _cleanup_(json_object_putp) json_object *copy = mr_json_copy(pod);
        json_object *status = copy ? mr_json_ensure_object(copy, "status", NULL) : NULL;
        if (!status)
                return -ENOMEM;
        if (best) {
                json_object *spec = mr_json_ensure_object(copy, "spec", NULL);
                if (!spec || mr_json_set_str(spec, "nodeName", best->name) < 0)
                        return -ENOMEM;
                r = sim_set_condition(status, "PodScheduled", "True", "", "", now, false);
                if (r < 0)
                        return r;
                r = sim_write_object(s, &SIM_PODS, TAKE_PTR(copy), ACTOR);
                return r < 0 ? r : 0;
        }

        /* Nowhere: count each node's first failing filter for the message. */
        for (size_t i = 0; i < sc->by_name.n; i++) {
                const SchedNode *n = sc->by_name.v[i];
                if (n->node) {
                        Reason why = node_rejects(n, pod, tolerations, &want);
                        if (why != R_NONE)
                                reasons[why]++;
                }
        }
        static const char *const texts[_R_MAX] = {
                [R_TAINT] = "node(s) had untolerated taint",
                [R_SELECTOR] = "node(s) didn't match Pod's node affinity/selector",
                [R_NOT_READY] = "node(s) were not ready",
                [R_PODS] = "Too many pods",
                [R_CPU] = "Insufficient cpu",
                [R_MEMORY] = "Insufficient memory",
        };
        size_t off = (size_t)snprintf(msg, sizeof msg, "0/%zu nodes are available", sc->n_existing);
        const char *sep = ": ";
        for (int i = 0; i < _R_MAX && off < sizeof msg; i++) {
                if (!reasons[i])
                        continue;
                off += (size_t)snprintf(msg + off, sizeof msg - off, "%s%u %s", sep, reasons[i], texts[i]);
                sep = ", ";
        }
        if (off < sizeof msg)
                snprintf(msg + off, sizeof msg - off, ".");
        r = sim_set_condition(status, "PodScheduled", "False", "Unschedulable", msg, now, false);
        if (r < 0)
                return r;
        r = sim_write_status(s, &SIM_PODS, TAKE_PTR(copy), ACTOR);
        return r < 0 ? r : 0;
}
