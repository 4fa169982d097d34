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
 * replicas spread and runs are reproducible. Binding writes spec.nodeName
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

/*
 * Parses a Kubernetes quantity into milli-units ("100m" → 100, "2" → 2000,
 * "128Mi" → 128·2^20·1000). Good enough for cpu and memory requests.
 * Returns -EINVAL for anything else.
 */
static int quantity_milli(json_object *v, int64_t *ret)
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
                *ret = (int64_t)(json_object_get_double(v) * 1000.0);
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
                if (quantity_milli(mr_json_get(req, "cpu", NULL), &v) == 0)
                        ret->cpu += v;
                if (quantity_milli(mr_json_get(req, "memory", NULL), &v) == 0)
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

/* The first NoSchedule/NoExecute taint the tolerations do not cover, or NULL. Borrowed. */
json_object *sim_node_untolerated_taint(json_object *node, json_object *tolerations)
{
        json_object *taints = mr_json_get(node, "spec", "taints", NULL);
        for (size_t i = 0; taints && json_object_is_type(taints, json_type_array) && i < json_object_array_length(taints);
             i++) {
                json_object *t = json_object_array_get_idx(taints, i);
                const char *effect = mr_json_get_str(t, "effect", NULL);
                if (!streq_ptr(effect, "NoSchedule") && !streq_ptr(effect, "NoExecute"))
                        continue;
                bool ok = false;
                for (size_t j = 0; tolerations && json_object_is_type(tolerations, json_type_array) &&
                                   j < json_object_array_length(tolerations) && !ok;
                     j++)
                        ok = toleration_matches(json_object_array_get_idx(tolerations, j), t);
                if (!ok)
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

static bool node_is_ready(json_object *node)
{
        json_object *conds = mr_json_get(node, "status", "conditions", NULL);
        for (size_t i = 0; conds && json_object_is_type(conds, json_type_array) && i < json_object_array_length(conds); i++) {
                json_object *c = json_object_array_get_idx(conds, i);
                if (streq_ptr(mr_json_get_str(c, "type", NULL), "Ready"))
                        return streq_ptr(mr_json_get_str(c, "status", NULL), "True");
        }
        return true; /* a node without conditions yet is taken as Ready */
}

typedef struct NodeUse {
        int64_t pods;
        Requests req;
} NodeUse;

static int add_use(json_object *pod, void *userdata)
{
        NodeUse *u = userdata;
        const char *phase = mr_json_get_str(pod, "status", "phase", NULL);
        if (streq_ptr(phase, "Succeeded") || streq_ptr(phase, "Failed"))
                return 0;
        Requests r;
        pod_requests(pod, &r);
        u->pods++;
        u->req.cpu += r.cpu;
        u->req.memory += r.memory;
        return 0;
}

static int64_t allocatable(json_object *node, const char *resource, int64_t def)
{
        int64_t v;
        json_object *q = mr_json_get(node, "status", "allocatable", resource, NULL);
        if (!q)
                q = mr_json_get(node, "status", "capacity", resource, NULL);
        return quantity_milli(q, &v) == 0 ? v : def;
}

/* Every node (borrowed), in a growable array: clusters have thousands. */
typedef struct NodeList {
        json_object **nodes;
        size_t n, cap;
} NodeList;

static int collect_node(json_object *node, void *userdata)
{
        NodeList *l = userdata;
        if (l->n == l->cap) {
                size_t ncap = l->cap ? l->cap * 2 : 64;
                json_object **nn = reallocarray(l->nodes, ncap, sizeof(json_object *));
                if (!nn)
                        return -ENOMEM;
                l->nodes = nn;
                l->cap = ncap;
        }
        l->nodes[l->n++] = node;
        return 0;
}

static void node_list_freep(NodeList **l)
{
        if (*l)
                free((*l)->nodes);
        free(*l);
}

typedef enum Reason {
        R_TAINT,
        R_SELECTOR,
        R_NOT_READY,
        R_PODS,
        R_CPU,
        R_MEMORY,
        _R_MAX,
} Reason;

int sim_scheduler_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due)
{
        SimStore *s = sim_controllers_store(c);
        _cleanup_(node_list_freep) NodeList *nodes = NULL;
        unsigned reasons[_R_MAX] = {};
        json_object *best = NULL;
        int64_t best_pods = INT64_MAX;
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

        nodes = calloc(1, sizeof *nodes);
        if (!nodes)
                return -ENOMEM;
        r = sim_store_foreach(s, &SIM_NODES, NULL, collect_node, nodes);
        if (r < 0)
                return r;
        Requests want;
        pod_requests(pod, &want);
        json_object *tolerations = mr_json_get(pod, "spec", "tolerations", NULL);
        for (size_t i = 0; i < nodes->n; i++) {
                json_object *node = nodes->nodes[i];
                const char *node_name = mr_json_get_str(node, "metadata", "name", NULL);
                if (!node_is_ready(node)) {
                        reasons[R_NOT_READY]++;
                        continue;
                }
                if (sim_node_untolerated_taint(node, tolerations)) {
                        reasons[R_TAINT]++;
                        continue;
                }
                if (!sim_node_fits_placement(pod, node)) {
                        reasons[R_SELECTOR]++;
                        continue;
                }
                NodeUse use = {};
                r = sim_store_foreach_pod_on_node(s, strempty(node_name), add_use, &use);
                if (r < 0)
                        return r;
                if ((use.pods + 1) * 1000 > allocatable(node, "pods", 110 * 1000)) {
                        reasons[R_PODS]++;
                        continue;
                }
                if (want.cpu > 0 && use.req.cpu + want.cpu > allocatable(node, "cpu", INT64_MAX / 4)) {
                        reasons[R_CPU]++;
                        continue;
                }
                if (want.memory > 0 && use.req.memory + want.memory > allocatable(node, "memory", INT64_MAX / 4)) {
                        reasons[R_MEMORY]++;
                        continue;
                }
                if (use.pods < best_pods) {
                        best_pods = use.pods;
                        best = node;
                }
        }

        _cleanup_(json_object_putp) json_object *copy = mr_json_copy(pod);
        json_object *status = copy ? mr_json_ensure_object(copy, "status", NULL) : NULL;
        if (!status)
                return -ENOMEM;
        if (best) {
                json_object *spec = mr_json_ensure_object(copy, "spec", NULL);
                if (!spec || mr_json_set_str(spec, "nodeName", mr_json_get_str(best, "metadata", "name", NULL)) < 0)
                        return -ENOMEM;
                r = sim_set_condition(status, "PodScheduled", "True", "", "", now, false);
                if (r < 0)
                        return r;
                r = sim_write_object(s, &SIM_PODS, TAKE_PTR(copy), ACTOR);
                return r < 0 ? r : 0;
        }

        static const char *const texts[_R_MAX] = {
                [R_TAINT] = "node(s) had untolerated taint",
                [R_SELECTOR] = "node(s) didn't match Pod's node affinity/selector",
                [R_NOT_READY] = "node(s) were not ready",
                [R_PODS] = "Too many pods",
                [R_CPU] = "Insufficient cpu",
                [R_MEMORY] = "Insufficient memory",
        };
        size_t off = (size_t)snprintf(msg, sizeof msg, "0/%zu nodes are available", nodes->n);
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
