/* SPDX-License-Identifier: Apache-2.0 */
/*
 * groups.c — the ordered node groups of a rollout (rules in groups.h).
 *
 * Design: one pass turns the Node objects into a name-sorted table (names
 * and labels borrowed from the caller's JSON), the DaemonSet's pods mark the
 * nodes ztunnel runs on, and the selector marks the nodes taking part. Every
 * grouping rule except list then reduces to one thing: a *visit order* of
 * the nodes taking part plus a group key per position (the batch number, or
 * the rank of the node's label value). The canary group is the first N
 * positions of that order, and the remaining positions are cut wherever the
 * key changes. So "the canary comes from the zone that goes first" and "the
 * canary's nodes are not upgraded twice" hold for every rule by
 * construction, and no rule has canary code of its own.
 *
 * Choices the header leaves open, made here:
 *   - Percent batches are ceil(P% × all nodes taking part), canary included,
 *     so "25%" means a quarter of the fleet whatever the canary size; the
 *     batches then cut the nodes left after the canary.
 *   - A canary larger than the cluster takes every node (a one-node cluster
 *     with canary: 1 is normal, not an error).
 *   - byLabel: a node whose value is empty joins "unlabelled" (an empty
 *     value names nothing to group by). A label group emptied by the canary
 *     is dropped. A value that would name a group like the canary or the
 *     unlabelled group is an error rather than a silent rename, because
 *     group names are what `meshroll rollback --group` takes.
 *   - list: a listed node that is being deleted is left out like everywhere
 *     else (a group left empty is dropped); a listed node the nodeSelector
 *     excludes is an error (the spec contradicts itself); canary with list
 *     is an error, as in spec.c.
 *   - A ztunnel pod counts wherever spec.nodeName points, whatever its phase:
 *     a node whose ztunnel is Pending or crash-looping still has a ztunnel
 *     to replace.
 *   - Names compare with strcmp (byte order): reproducible on every host,
 *     at the price of "n10" sorting before "n2".
 *
 * Errors for the operator are -MR_ECONFIG and name the spec field; errors
 * reading a stored plan (groups_from_json) are -MR_EPARSE and name the
 * status index.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "groups.h"
#include "meshroll/json-util.h"
#include "meshroll/selector.h"

#define CANARY_GROUP "canary"
#define UNLABELLED_GROUP "unlabelled"
/* Names an error message lists before "and N more". */
#define MAX_LISTED 8

typedef struct Node {
        const char *name;    /* borrowed from the Node object */
        json_object *labels; /* borrowed, NULL when none */
        bool deleting;
        bool ztunnel;
        bool selected;     /* matches spec.groups.nodeSelector */
        const char *group; /* the group that holds it, NULL while unplanned; borrowed from the plan */
} Node;

/* One position of a visit order: the node and its group key. */
typedef struct Visit {
        Node *node;
        size_t key;
} Visit;

/* A message under construction: appends clamp at the end of buf. */
typedef struct Text {
        char buf[768];
        size_t len;
} Text;

_printf_(2, 3) static void text_add(Text *t, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (t->len >= sizeof(t->buf) - 1)
                return;
        va_start(ap, fmt);
        n = vsnprintf(t->buf + t->len, sizeof(t->buf) - t->len, fmt, ap);
        va_end(ap);
        if (n > 0)
                t->len = MIN(t->len + (size_t)n, sizeof(t->buf) - 1);
}

/* "a, b, c" for up to MAX_LISTED names, then "and N more"; "none" when n is 0. */
static void text_add_names(Text *t, const char *const *names, size_t n)
{
        if (n == 0) {
                text_add(t, "none");
                return;
        }
        for (size_t i = 0; i < n && i < MAX_LISTED; i++)
                text_add(t, "%s%s", i > 0 ? ", " : "", names[i]);
        if (n > MAX_LISTED)
                text_add(t, " and %zu more", n - MAX_LISTED);
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_node(const void *a, const void *b)
{
        return strcmp(((const Node *)a)->name, ((const Node *)b)->name);
}

static int cmp_visit(const void *a, const void *b)
{
        const Visit *x = a, *y = b;
        if (x->key != y->key)
                return x->key < y->key ? -1 : 1;
        return strcmp(x->node->name, y->node->name);
}

/* qsort that tolerates n == 0 with a NULL base (UBSan rejects qsort(NULL, 0, …)). */
static void sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
        if (n > 1)
                qsort(base, n, size, cmp);
}

static Node *find_node(Node *nodes, size_t n, const char *name)
{
        Node key = {.name = name};
        return n > 0 ? bsearch(&key, nodes, n, sizeof(Node), cmp_node) : NULL;
}

/* ---- the plan --------------------------------------------------------------- */

GroupPlan *group_plan_free(GroupPlan *p)
{
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_groups; i++) {
                free(p->groups[i].name);
                strv_free(p->groups[i].nodes);
        }
        free(p->groups);
        strv_free(p->unplanned);
        free(p);
        return NULL;
}

static GroupPlan *plan_new(void)
{
        GroupPlan *p = calloc(1, sizeof(GroupPlan));
        if (!p)
                return NULL;
        p->unplanned = calloc(1, sizeof(char *));
        if (!p->unplanned)
                return group_plan_free(p);
        return p;
}

static const NodeGroup *plan_find_group(const GroupPlan *p, const char *name)
{
        for (size_t i = 0; i < p->n_groups; i++)
                if (streq(p->groups[i].name, name))
                        return &p->groups[i];
        return NULL;
}

/*
 * Appends a group holding copies of names[0..n), sorted. Returns 0,
 * -EEXIST when a group of that name exists, -ENOMEM.
 */
static int plan_add(GroupPlan *p, const char *name, const char *const *names, size_t n)
{
        _cleanup_strv_free_ char **nodes = NULL;
        _cleanup_free_ char *copy = NULL;
        NodeGroup *g;

        if (plan_find_group(p, name))
                return -EEXIST;
        nodes = calloc(n + 1, sizeof(char *));
        copy = strdup(name);
        if (!nodes || !copy)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(nodes[i] = strdup(names[i])))
                        return -ENOMEM;
        sort(nodes, n, sizeof(char *), cmp_str);
        g = reallocarray(p->groups, p->n_groups + 1, sizeof(NodeGroup));
        if (!g)
                return -ENOMEM;
        p->groups = g;
        p->groups[p->n_groups++] =
            (NodeGroup){.name = TAKE_PTR(copy), .nodes = TAKE_PTR(nodes), .n_nodes = n};
        return 0;
}

/* plan_add for visit[0..n), recording each node's group. */
static int plan_add_visits(GroupPlan *p, const char *name, const Visit *visit, size_t n)
{
        _cleanup_free_ const char **names = calloc(n ? n : 1, sizeof(char *));
        int r;

        if (!names)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                names[i] = visit[i].node->name;
        r = plan_add(p, name, names, n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                visit[i].node->group = p->groups[p->n_groups - 1].name;
        return 0;
}

/* ---- reading the cluster ---------------------------------------------------- */

static bool is_target_pod(const RolloutSpec *spec, json_object *pod)
{
        json_object *refs = mr_json_get(pod, "metadata", "ownerReferences", NULL);

        if (!streq_ptr(mr_json_get_str(pod, "metadata", "namespace", NULL), spec->target_namespace))
                return false;
        if (!refs || !json_object_is_type(refs, json_type_array))
                return false;
        for (size_t i = 0; i < json_object_array_length(refs); i++) {
                json_object *ref = json_object_array_get_idx(refs, i);
                if (streq_ptr(mr_json_get_str(ref, "kind", NULL), "DaemonSet") &&
                    streq_ptr(mr_json_get_str(ref, "name", NULL), spec->target_daemonset))
                        return true;
        }
        return false;
}

/*
 * The nodes (borrowed) sorted by name, duplicates and nameless objects
 * dropped, each marked with whether it is being deleted, runs the target
 * DaemonSet and matches the selector.
 */
static int read_cluster(const RolloutSpec *spec, json_object *nodes, json_object *pods, Node **ret,
                        size_t *ret_n, MrError *err)
{
        _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
        _cleanup_free_ Node *l = NULL;
        size_t n_in, n = 0;
        MrError e = {};

        if (nodes && !json_object_is_type(nodes, json_type_array))
                return mr_error_set(err, -EINVAL, "nodes: expected a list of Node objects");
        if (pods && !json_object_is_type(pods, json_type_array))
                return mr_error_set(err, -EINVAL, "ztunnel pods: expected a list of Pod objects");
        if (mr_selector_parse(spec->node_selector, &sel, &e) < 0) {
                if (e.error == -ENOMEM)
                        return -ENOMEM;
                return mr_error_set(err, MR_ECONFIG,
                                    "spec.groups.nodeSelector: not a valid label selector: %s", e.message);
        }

        n_in = nodes ? json_object_array_length(nodes) : 0;
        l = calloc(n_in ? n_in : 1, sizeof(Node));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n_in; i++) {
                json_object *o = json_object_array_get_idx(nodes, i);
                const char *name = mr_json_get_str(o, "metadata", "name", NULL);
                if (isempty(name))
                        continue;
                json_object *labels = mr_json_get(o, "metadata", "labels", NULL);
                l[n++] = (Node){
                    .name = name,
                    .labels = labels,
                    .deleting = mr_json_get(o, "metadata", "deletionTimestamp", NULL) != NULL,
                    .selected = mr_selector_matches(sel, labels),
                };
        }
        sort(l, n, sizeof(Node), cmp_node);
        size_t kept = 0;
        for (size_t i = 0; i < n; i++)
                if (kept == 0 || !streq(l[kept - 1].name, l[i].name))
                        l[kept++] = l[i];
        n = kept;

        size_t n_pods = pods ? json_object_array_length(pods) : 0;
        for (size_t i = 0; i < n_pods; i++) {
                json_object *pod = json_object_array_get_idx(pods, i);
                const char *on = mr_json_get_str(pod, "spec", "nodeName", NULL);
                Node *node;
                if (!isempty(on) && is_target_pod(spec, pod) && (node = find_node(l, n, on)))
                        node->ztunnel = true;
        }

        *ret = TAKE_PTR(l);
        *ret_n = n;
        return 0;
}

static bool takes_part(const Node *n)
{
        return !n->deleting && n->ztunnel && n->selected;
}

static int no_node_takes_part(const RolloutSpec *spec, const Node *nodes, size_t n, MrError *err)
{
        size_t present = 0, ztunnel = 0;
        Text t = {};

        for (size_t i = 0; i < n; i++)
                if (!nodes[i].deleting) {
                        present++;
                        ztunnel += nodes[i].ztunnel;
                }
        text_add(&t, "spec.groups: no node takes part in the rollout: ");
        if (present == 0)
                text_add(&t, "the cluster has no nodes%s", n > 0 ? " that are not being deleted" : "");
        else if (ztunnel == 0)
                text_add(&t, "none of the %zu nodes runs a pod of DaemonSet %s/%s", present,
                         spec->target_namespace, spec->target_daemonset);
        else
                text_add(&t, "%zu of %zu nodes run %s/%s but none matches spec.groups.nodeSelector \"%s\"",
                         ztunnel, present, spec->target_namespace, spec->target_daemonset,
                         strempty(spec->node_selector));
        return mr_error_set(err, MR_ECONFIG, "%s", t.buf);
}

/* ---- the rules -------------------------------------------------------------- */

/*
 * Cuts visit[0..n) into groups: the canary first (when asked), then a group
 * wherever the key changes, named names[key] (byLabel) or batch-<key+1>.
 * Only byLabel names can collide (with "canary" or "unlabelled"); that is
 * a configuration error naming the label.
 */
typedef struct Cutter {
        const RolloutSpec *spec;
        const char *const *names; /* label mode: group name per key; NULL: batch-<key+1> */
} Cutter;

static int cut(const Cutter *c, GroupPlan *p, const Visit *visit, size_t n, MrError *err)
{
        size_t canary = MIN((size_t)c->spec->canary, n);
        int r;

        if (canary > 0 && (r = plan_add_visits(p, CANARY_GROUP, visit, canary)) < 0)
                return r;
        for (size_t start = canary, end; start < n; start = end) {
                char batch[32];
                const char *name;

                for (end = start + 1; end < n && visit[end].key == visit[start].key; end++)
                        ;
                if (c->names)
                        name = c->names[visit[start].key];
                else {
                        snprintf(batch, sizeof(batch), "batch-%zu", visit[start].key + 1);
                        name = batch;
                }
                r = plan_add_visits(p, name, visit + start, end - start);
                if (r == -EEXIST && streq(name, CANARY_GROUP))
                        return mr_error_set(
                            err, MR_ECONFIG,
                            "spec.groups.byLabel: nodes with %s=%s would form a second group named "
                            "\"%s\"; set spec.groups.canary to 0 and put %s first in "
                            "spec.groups.order instead",
                            c->spec->by_label, name, name, name);
                if (r == -EEXIST)
                        return mr_error_set(
                            err, MR_ECONFIG,
                            "spec.groups.byLabel: nodes with %s=%s would share the group name "
                            "\"%s\" with the nodes that lack the label",
                            c->spec->by_label, name, name);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* size and percent: name order, key = batch number after the canary. */
static int group_batches(const RolloutSpec *spec, Visit *visit, size_t n, GroupPlan *p, MrError *err)
{
        size_t batch, canary = MIN((size_t)spec->canary, n);

        if (spec->mode == GROUPING_SIZE) {
                if (spec->size < 1)
                        return mr_error_set(err, MR_ECONFIG, "spec.groups.size: expected at least 1, got 0");
                batch = spec->size;
        } else {
                if (spec->percent < 1 || spec->percent > 100)
                        return mr_error_set(err, MR_ECONFIG,
                                            "spec.groups.percent: expected 1 to 100, got %u", spec->percent);
                batch = (size_t)(((uint64_t)n * spec->percent + 99) / 100);
                batch = MAX(batch, (size_t)1);
        }
        for (size_t i = canary; i < n; i++)
                visit[i].key = (i - canary) / batch;
        return cut(&(Cutter){.spec = spec}, p, visit, n, err);
}

/* The node's value of the grouping label; NULL when missing, not a string or empty. */
static const char *label_value(const Node *node, const char *key)
{
        const char *v = node->labels ? mr_json_get_str(node->labels, key, NULL) : NULL;
        return isempty(v) ? NULL : v;
}

/* Index of v in the sorted values[0..n), or SIZE_MAX. */
static size_t value_index(const char *const *values, size_t n, const char *v)
{
        const char *const *hit = n > 0 ? bsearch(&v, values, n, sizeof(char *), cmp_str) : NULL;
        return hit ? (size_t)(hit - values) : SIZE_MAX;
}

/*
 * byLabel: group names are the order values, then the other values sorted,
 * then "unlabelled"; key = the rank of the node's group; visit order = by
 * rank, then by name.
 */
static int group_by_label(const RolloutSpec *spec, Visit *visit, size_t n, GroupPlan *p, MrError *err)
{
        _cleanup_free_ const char **values = calloc(n ? n : 1, sizeof(char *));
        _cleanup_free_ const char **names = calloc(n + 1, sizeof(char *));
        _cleanup_free_ size_t *rank = calloc(n ? n : 1, sizeof(size_t));
        size_t n_values = 0, n_names = 0, distinct = 0;
        bool unlabelled = false;

        if (!values || !names || !rank)
                return -ENOMEM;
        if (isempty(spec->by_label))
                return mr_error_set(err, MR_ECONFIG, "spec.groups.byLabel: expected a label key");

        /* The distinct values, sorted. */
        for (size_t i = 0; i < n; i++) {
                const char *v = label_value(visit[i].node, spec->by_label);
                if (v)
                        values[n_values++] = v;
                else
                        unlabelled = true;
        }
        sort(values, n_values, sizeof(char *), cmp_str);
        for (size_t i = 0; i < n_values; i++)
                if (distinct == 0 || !streq(values[distinct - 1], values[i]))
                        values[distinct++] = values[i];
        n_values = distinct;

        /* Ranks: the order values first (each must exist), then the rest in sorted order. */
        for (size_t i = 0; i < n_values; i++)
                rank[i] = SIZE_MAX;
        for (char **o = spec->order; o && *o; o++) {
                size_t vi = value_index(values, n_values, *o);
                if (vi == SIZE_MAX) {
                        Text t = {};
                        text_add(&t, "spec.groups.order: no node has %s=%s (values: ", spec->by_label, *o);
                        text_add_names(&t, values, n_values);
                        text_add(&t, ")");
                        return mr_error_set(err, MR_ECONFIG, "%s", t.buf);
                }
                if (rank[vi] == SIZE_MAX) { /* a value ordered twice keeps its first place */
                        rank[vi] = n_names;
                        names[n_names++] = *o;
                }
        }
        for (size_t i = 0; i < n_values; i++)
                if (rank[i] == SIZE_MAX) {
                        rank[i] = n_names;
                        names[n_names++] = values[i];
                }
        if (unlabelled)
                names[n_names++] = UNLABELLED_GROUP;

        for (size_t i = 0; i < n; i++) {
                const char *v = label_value(visit[i].node, spec->by_label);
                visit[i].key = v ? rank[value_index(values, n_values, v)] : n_names - 1;
        }
        sort(visit, n, sizeof(Visit), cmp_visit);
        return cut(&(Cutter){.spec = spec, .names = names}, p, visit, n, err);
}

/* list: the groups as given; every listed node must exist, run ztunnel and match the selector. */
static int group_list(const RolloutSpec *spec, Node *nodes, size_t n, GroupPlan *p, MrError *err)
{
        if (spec->canary > 0)
                return mr_error_set(
                    err, MR_ECONFIG,
                    "spec.groups.canary: with list, make the first list entry the canary group");
        if (spec->n_lists == 0)
                return mr_error_set(err, MR_ECONFIG, "spec.groups.list: expected at least one group");

        for (size_t i = 0; i < spec->n_lists; i++) {
                const NodeList *l = &spec->lists[i];
                size_t n_listed = 0, n_kept = 0;
                int r;

                if (isempty(l->name))
                        return mr_error_set(err, MR_ECONFIG,
                                            "spec.groups.list[%zu].name: expected a group name", i);
                if (plan_find_group(p, l->name))
                        return mr_error_set(err, MR_ECONFIG,
                                            "spec.groups.list[%zu].name: group \"%s\" is defined twice", i,
                                            l->name);
                if (l->nodes)
                        while (l->nodes[n_listed])
                                n_listed++;
                _cleanup_free_ Visit *keep = calloc(n_listed ? n_listed : 1, sizeof(Visit));
                if (!keep)
                        return -ENOMEM;

                for (size_t j = 0; j < n_listed; j++) {
                        const char *name = l->nodes[j];
                        Node *node = find_node(nodes, n, name);

                        if (!node)
                                return mr_error_set(
                                    err, MR_ECONFIG,
                                    "spec.groups.list[%zu].nodes: node \"%s\" does not exist", i, name);
                        if (node->deleting)
                                continue;
                        if (!node->ztunnel)
                                return mr_error_set(
                                    err, MR_ECONFIG,
                                    "spec.groups.list[%zu].nodes: node \"%s\" does not run ztunnel "
                                    "(no pod of DaemonSet %s/%s on it)",
                                    i, name, spec->target_namespace, spec->target_daemonset);
                        if (!node->selected)
                                return mr_error_set(
                                    err, MR_ECONFIG,
                                    "spec.groups.list[%zu].nodes: node \"%s\" does not match "
                                    "spec.groups.nodeSelector \"%s\"",
                                    i, name, strempty(spec->node_selector));
                        bool twice = node->group != NULL;
                        for (size_t k = 0; k < n_kept && !twice; k++)
                                twice = keep[k].node == node;
                        if (twice)
                                return mr_error_set(
                                    err, MR_ECONFIG,
                                    "spec.groups.list[%zu].nodes: node \"%s\" is already in group \"%s\"", i,
                                    name, node->group ? node->group : l->name);
                        keep[n_kept++] = (Visit){.node = node};
                }
                /* Every listed node is being deleted: nothing to upgrade in this group. */
                if (n_kept == 0)
                        continue;
                if ((r = plan_add_visits(p, l->name, keep, n_kept)) < 0)
                        return r;
        }
        if (p->n_groups == 0)
                return mr_error_set(err, MR_ECONFIG, "spec.groups.list: every listed node is being deleted");
        return 0;
}

/* Nodes running ztunnel that no group holds, sorted (the table already is). */
static int plan_unplanned(GroupPlan *p, const Node *nodes, size_t n)
{
        size_t k = 0;
        char **l;

        for (size_t i = 0; i < n; i++)
                k += !nodes[i].deleting && nodes[i].ztunnel && !nodes[i].group;
        l = calloc(k + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        k = 0;
        for (size_t i = 0; i < n; i++)
                if (!nodes[i].deleting && nodes[i].ztunnel && !nodes[i].group &&
                    !(l[k++] = strdup(nodes[i].name))) {
                        strv_free(l);
                        return -ENOMEM;
                }
        strv_free(p->unplanned);
        p->unplanned = l;
        p->n_unplanned = k;
        return 0;
}

int groups_compute(const RolloutSpec *spec, json_object *nodes, json_object *ztunnel_pods, GroupPlan **ret,
                   MrError *err)
{
        _cleanup_(group_plan_freep) GroupPlan *p = NULL;
        _cleanup_free_ Node *table = NULL;
        _cleanup_free_ Visit *visit = NULL;
        size_t n = 0, n_part = 0;
        int r;

        if (!spec || !ret)
                return -EINVAL;
        if ((r = read_cluster(spec, nodes, ztunnel_pods, &table, &n, err)) < 0)
                return r;
        visit = calloc(n ? n : 1, sizeof(Visit));
        if (!visit)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (takes_part(&table[i]))
                        visit[n_part++] = (Visit){.node = &table[i]};
        if (n_part == 0)
                return no_node_takes_part(spec, table, n, err);

        if (!(p = plan_new()))
                return -ENOMEM;
        switch (spec->mode) {
        case GROUPING_SIZE:
        case GROUPING_PERCENT:
                r = group_batches(spec, visit, n_part, p, err);
                break;
        case GROUPING_LABEL:
                r = group_by_label(spec, visit, n_part, p, err);
                break;
        case GROUPING_LIST:
                r = group_list(spec, table, n, p, err);
                break;
        default:
                r = mr_error_set(err, -EINVAL, "spec.groups: unknown grouping mode %d", (int)spec->mode);
        }
        if (r < 0)
                return r;
        if ((r = plan_unplanned(p, table, n)) < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

const NodeGroup *groups_find_node(const GroupPlan *p, const char *node)
{
        if (!p || !node)
                return NULL;
        for (size_t i = 0; i < p->n_groups; i++)
                for (size_t j = 0; j < p->groups[i].n_nodes; j++)
                        if (streq(p->groups[i].nodes[j], node))
                                return &p->groups[i];
        return NULL;
}

/* ---- status form ------------------------------------------------------------ */

static int add_string(json_object *array, const char *s)
{
        json_object *v = json_object_new_string(s);
        if (!v)
                return -ENOMEM;
        if (json_object_array_add(array, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

int groups_to_json(const GroupPlan *p, json_object **ret)
{
        _cleanup_(json_object_putp) json_object *a = NULL;
        int r;

        if (!p || !ret)
                return -EINVAL;
        if (!(a = json_object_new_array()))
                return -ENOMEM;
        for (size_t i = 0; i < p->n_groups; i++) {
                _cleanup_(json_object_putp) json_object *g = json_object_new_object();
                json_object *nodes = json_object_new_array();
                if (!g || !nodes || json_object_object_add(g, "nodes", nodes) < 0) {
                        json_object_put(nodes);
                        return -ENOMEM;
                }
                if ((r = mr_json_set_str(g, "name", p->groups[i].name)) < 0)
                        return r;
                for (size_t j = 0; j < p->groups[i].n_nodes; j++)
                        if ((r = add_string(nodes, p->groups[i].nodes[j])) < 0)
                                return r;
                if (json_object_array_add(a, g) < 0)
                        return -ENOMEM;
                g = NULL; /* the array owns it now */
        }
        *ret = TAKE_PTR(a);
        return 0;
}

/* A node of the stored plan, for finding one listed twice. */
typedef struct Placed {
        const char *node;
        size_t group, index;
} Placed;

static int cmp_placed(const void *a, const void *b)
{
        const Placed *x = a, *y = b;
        int c = strcmp(x->node, y->node);
        if (c != 0)
                return c;
        if (x->group != y->group)
                return x->group < y->group ? -1 : 1;
        return x->index < y->index ? -1 : x->index > y->index;
}

static int read_stored_group(json_object *o, size_t i, GroupPlan *p, MrError *err)
{
        _cleanup_free_ const char **names = NULL;
        const char *name;
        json_object *nodes;
        size_t n;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return mr_error_set(err, MR_EPARSE, "status.groups[%zu]: expected a mapping", i);
        name = mr_json_get_str(o, "name", NULL);
        if (isempty(name))
                return mr_error_set(err, MR_EPARSE, "status.groups[%zu].name: expected a non-empty string",
                                    i);
        nodes = mr_json_get(o, "nodes", NULL);
        if (!nodes || !json_object_is_type(nodes, json_type_array) || json_object_array_length(nodes) == 0)
                return mr_error_set(err, MR_EPARSE,
                                    "status.groups[%zu].nodes: expected a non-empty list of node names", i);
        n = json_object_array_length(nodes);
        names = calloc(n, sizeof(char *));
        if (!names)
                return -ENOMEM;
        for (size_t j = 0; j < n; j++) {
                json_object *e = json_object_array_get_idx(nodes, j);
                if (!json_object_is_type(e, json_type_string) || isempty(json_object_get_string(e)))
                        return mr_error_set(err, MR_EPARSE,
                                            "status.groups[%zu].nodes[%zu]: expected a node name", i, j);
                names[j] = json_object_get_string(e);
        }
        r = plan_add(p, name, names, n);
        if (r == -EEXIST)
                return mr_error_set(err, MR_EPARSE, "status.groups[%zu].name: group \"%s\" is defined twice",
                                    i, name);
        return r;
}

int groups_from_json(json_object *array, GroupPlan **ret, MrError *err)
{
        _cleanup_(group_plan_freep) GroupPlan *p = NULL;
        _cleanup_free_ Placed *placed = NULL;
        size_t n, total = 0;
        int r;

        if (!ret)
                return -EINVAL;
        if (!array || !json_object_is_type(array, json_type_array))
                return mr_error_set(err, MR_EPARSE, "status.groups: expected a list of {name, nodes}");
        n = json_object_array_length(array);
        if (n == 0)
                return mr_error_set(err, MR_EPARSE, "status.groups: expected at least one group");
        if (!(p = plan_new()))
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if ((r = read_stored_group(json_object_array_get_idx(array, i), i, p, err)) < 0)
                        return r;

        /* A node in two groups would be upgraded twice, or rolled back with the wrong group. */
        for (size_t i = 0; i < p->n_groups; i++)
                total += p->groups[i].n_nodes;
        if (!(placed = calloc(total, sizeof(Placed))))
                return -ENOMEM;
        total = 0;
        for (size_t i = 0; i < p->n_groups; i++) {
                json_object *nodes = mr_json_get(json_object_array_get_idx(array, i), "nodes", NULL);
                for (size_t j = 0; j < p->groups[i].n_nodes; j++)
                        placed[total++] =
                            (Placed){json_object_get_string(json_object_array_get_idx(nodes, j)), i, j};
        }
        sort(placed, total, sizeof(Placed), cmp_placed);
        for (size_t k = 1; k < total; k++)
                if (streq(placed[k].node, placed[k - 1].node))
                        return mr_error_set(
                            err, MR_EPARSE,
                            "status.groups[%zu].nodes[%zu]: node \"%s\" is already in group \"%s\"",
                            placed[k].group, placed[k].index, placed[k].node,
                            p->groups[placed[k - 1].group].name);
        *ret = TAKE_PTR(p);
        return 0;
}

/* ---- listing the inputs, projected ------------------------------------------------------------- */

/* Adds o[key] (borrowed) to to under key, by reference, when present. */
static int keep(json_object *to, json_object *o, const char *key)
{
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        return json_object_object_add(to, key, json_object_get(v)) < 0 ? -ENOMEM : 0;
}

/* {"metadata":{name, labels, deletionTimestamp}} of a Node (borrowed). */
static json_object *project_node(json_object *node)
{
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *meta = mr_json_get(node, "metadata", NULL), *m;

        if (!o || !(m = mr_json_ensure_object(o, "metadata", NULL)))
                return NULL;
        if (meta && (keep(m, meta, "name") < 0 || keep(m, meta, "labels") < 0 ||
                     keep(m, meta, "deletionTimestamp") < 0))
                return NULL;
        return TAKE_PTR(o);
}

/* {"metadata":{namespace, ownerReferences}, "spec":{nodeName}} of a pod (borrowed). */
static json_object *project_pod(json_object *pod)
{
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *meta = mr_json_get(pod, "metadata", NULL), *spec = mr_json_get(pod, "spec", NULL), *m, *sp;

        if (!o || !(m = mr_json_ensure_object(o, "metadata", NULL)) || !(sp = mr_json_ensure_object(o, "spec", NULL)))
                return NULL;
        if ((meta && (keep(m, meta, "namespace") < 0 || keep(m, meta, "ownerReferences") < 0)) ||
            (spec && keep(sp, spec, "nodeName") < 0))
                return NULL;
        return TAKE_PTR(o);
}

/* Lists res in ns into *ret, each item through project as its page arrives. */
static int list_projected(KubeClient *c, const KubeResource *res, const char *ns,
                          json_object *(*project)(json_object *item), json_object **ret, MrError *err)
{
        KubeListOptions lo = { .project = project };
        KubeStatus st = {};
        int r = kube_list(c, res, ns, &lo, ret, NULL, &st);
        if (r < 0)
                return mr_error_set(err, r, "listing %s%s%s: %s", res->plural, ns ? " in " : "", strempty(ns),
                                    st.message[0] ? st.message : mr_strerror(r));
        return 0;
}

int groups_list_inputs(KubeClient *c, const RolloutSpec *spec, json_object **ret_nodes, json_object **ret_pods,
                       MrError *err)
{
        _cleanup_(json_object_putp) json_object *nodes = NULL, *pods = NULL;
        int r;

        if (!c || !spec || !ret_nodes || !ret_pods)
                return mr_error_set(err, -EINVAL, "groups_list_inputs: missing argument");
        r = list_projected(c, &KUBE_NODES, NULL, project_node, &nodes, err);
        if (r < 0)
                return r;
        r = list_projected(c, &KUBE_PODS, spec->target_namespace, project_pod, &pods, err);
        if (r < 0)
                return r;
        *ret_nodes = TAKE_PTR(nodes);
        *ret_pods = TAKE_PTR(pods);
        return 0;
}
