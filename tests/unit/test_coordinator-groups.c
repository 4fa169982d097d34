/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Node grouping. Clusters are written in a small notation so each case of
 * the table reads as the cluster it describes:
 *
 *     "n1:zone=a n2:zone=a,pool=x !n3 ~n4"
 *
 * one token per Node: "!" = no ztunnel pod on it, "~" = being deleted,
 * labels after ":". Every node without "!" gets a pod of the DaemonSet
 * istio-system/ztunnel. Plans are compared in the form
 * "canary=n1|batch-1=n2,n3" and unplanned nodes as "n5,n6". The case tables
 * are kept out of clang-format: one case per entry reads better.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <unistd.h>

#include "groups.h"
#include "meshroll/json-util.h"
#include "meshroll/yaml-json.h"
#include "sim.h"

/* ---- helpers ---------------------------------------------------------------- */

static json_object *parse(const char *s)
{
        json_object *o = NULL;
        assert_int_equal(mr_json_parse(s, strlen(s), 1 << 20, &o), 0);
        return o;
}

/* A Rollout whose spec.groups is the YAML flow mapping `groups` (NULL: no groups key). */
static RolloutSpec *spec_new(const char *groups)
{
        char yaml[2048];
        _cleanup_(json_object_putp) json_object *doc = NULL;
        RolloutSpec *s = NULL;
        MrError err = {};

        snprintf(yaml, sizeof(yaml),
                 "apiVersion: meshroll.io/v1alpha1\nkind: Rollout\nmetadata: {name: r1}\nspec:\n  paused: "
                 "false\n%s%s\n",
                 groups ? "  groups: " : "", groups ? groups : "");
        assert_int_equal(mr_yaml_parse(yaml, strlen(yaml), &doc, &err), 0);
        if (rollout_spec_from_json(doc, &s, &err) < 0)
                fail_msg("spec %s: %s", groups, err.message);
        return s;
}

static json_object *node_new(const char *name, const char *labels, bool deleting)
{
        json_object *node = json_object_new_object();
        json_object *meta = mr_json_ensure_object(node, "metadata", NULL);
        json_object *l = mr_json_ensure_object(meta, "labels", NULL);

        assert_non_null(l);
        assert_int_equal(mr_json_set_str(meta, "name", name), 0);
        assert_int_equal(mr_json_set_str(l, "kubernetes.io/hostname", name), 0);
        if (deleting)
                assert_int_equal(mr_json_set_str(meta, "deletionTimestamp", "2026-11-24T03:11:03Z"), 0);
        /* "k=v,k=v" */
        for (const char *p = labels; p && *p;) {
                const char *comma = strchr(p, ','), *end = comma ? comma : p + strlen(p);
                const char *eq = memchr(p, '=', (size_t)(end - p));
                assert_non_null(eq);
                _cleanup_free_ char *k = strndup(p, (size_t)(eq - p));
                _cleanup_free_ char *v = strndup(eq + 1, (size_t)(end - eq - 1));
                assert_int_equal(mr_json_set_str(l, k, v), 0);
                p = comma ? comma + 1 : end;
        }
        return node;
}

/* A pod on node, owned by kind/name in namespace ns. */
static json_object *pod_new(const char *node, const char *ns, const char *kind, const char *owner)
{
        char json[1024];
        snprintf(
            json, sizeof(json),
            "{\"metadata\":{\"name\":\"%s-%s\",\"namespace\":\"%s\",\"ownerReferences\":[{\"apiVersion\":"
            "\"apps/"
            "v1\",\"kind\":\"%s\",\"name\":\"%s\",\"controller\":true}]},\"spec\":{\"nodeName\":\"%s\"},"
            "\"status\":{\"phase\":\"Running\"}}",
            owner, node, ns, kind, owner, node);
        return parse(json);
}

static void cluster_new(const char *desc, json_object **ret_nodes, json_object **ret_pods)
{
        json_object *nodes = json_object_new_array(), *pods = json_object_new_array();

        for (const char *p = desc; *p;) {
                size_t len = strcspn(p, " ");
                _cleanup_free_ char *tok = strndup(p, len);
                char *name = tok, *labels;
                bool ztunnel = true, deleting = false;

                for (;; name++)
                        if (*name == '!')
                                ztunnel = false;
                        else if (*name == '~')
                                deleting = true;
                        else
                                break;
                labels = strchr(name, ':');
                if (labels)
                        *labels++ = '\0';
                if (*name) {
                        json_object_array_add(nodes, node_new(name, labels, deleting));
                        if (ztunnel)
                                json_object_array_add(pods,
                                                      pod_new(name, "istio-system", "DaemonSet", "ztunnel"));
                }
                p += len;
                p += strspn(p, " ");
        }
        *ret_nodes = nodes;
        *ret_pods = pods;
}

/* "name=a,b|name=c" */
static char *plan_string(const GroupPlan *p)
{
        char buf[4096];
        size_t n = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < p->n_groups; i++) {
                n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s=", i ? "|" : "", p->groups[i].name);
                assert_non_null(p->groups[i].nodes);
                assert_null(p->groups[i].nodes[p->groups[i].n_nodes]);
                for (size_t j = 0; j < p->groups[i].n_nodes; j++)
                        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", j ? "," : "",
                                              p->groups[i].nodes[j]);
                assert_true(n < sizeof(buf));
        }
        return strdup(buf);
}

static char *unplanned_string(const GroupPlan *p)
{
        char buf[4096];
        size_t n = 0;
        buf[0] = '\0';
        assert_non_null(p->unplanned);
        assert_null(p->unplanned[p->n_unplanned]);
        for (size_t i = 0; i < p->n_unplanned; i++)
                n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "," : "", p->unplanned[i]);
        return strdup(buf);
}

/* Computes the plan of spec over the cluster desc; returns the error and fills err. */
static int compute(const RolloutSpec *spec, const char *desc, GroupPlan **ret, MrError *err)
{
        _cleanup_(json_object_putp) json_object *nodes = NULL, *pods = NULL;
        cluster_new(desc, &nodes, &pods);
        return groups_compute(spec, nodes, pods, ret, err);
}

#define TEN "n01 n02 n03 n04 n05 n06 n07 n08 n09 n10"
#define ZONES "a1:zone=a a2:zone=a b1:zone=b b2:zone=b b3:zone=b c1:zone=c u1 u2"

/* ---- the rules, as a table -------------------------------------------------- */

typedef struct PlanCase {
        const char *what;
        const char *groups; /* spec.groups, YAML flow */
        const char *cluster;
        const char *plan;      /* expected plan */
        const char *unplanned; /* expected unplanned nodes */
} PlanCase;

/* clang-format off */
static const PlanCase plan_cases[] = {
        { "default: one node at a time", NULL, "n1 n2 n3", "batch-1=n1|batch-2=n2|batch-3=n3", "" },
        { "size", "{size: 3}", "n1 n2 n3 n4 n5 n6 n7", "batch-1=n1,n2,n3|batch-2=n4,n5,n6|batch-3=n7", "" },
        { "size larger than the cluster", "{size: 50}", "n1 n2", "batch-1=n1,n2", "" },
        { "node name order, whatever the input order", "{size: 2}", "n3 n1 n4 n2", "batch-1=n1,n2|batch-2=n3,n4",
          "" },
        { "byte order: n10 before n2", "{size: 2}", "n2 n10 n1", "batch-1=n1,n10|batch-2=n2", "" },
        { "percent 25 of 10: ceil(2.5) = 3", "{percent: 25}", TEN,
          "batch-1=n01,n02,n03|batch-2=n04,n05,n06|batch-3=n07,n08,n09|batch-4=n10", "" },
        { "percent 50 of 3: ceil(1.5) = 2", "{percent: 50}", "n1 n2 n3", "batch-1=n1,n2|batch-2=n3", "" },
        { "percent 30 of 10: exactly 3", "{percent: 30}", TEN,
          "batch-1=n01,n02,n03|batch-2=n04,n05,n06|batch-3=n07,n08,n09|batch-4=n10", "" },
        { "percent 1 of 10: at least one node", "{percent: 1}", "n1 n2 n3", "batch-1=n1|batch-2=n2|batch-3=n3", "" },
        { "percent 100", "{percent: 100}", "n1 n2 n3", "batch-1=n1,n2,n3", "" },
        { "percent 34 of 3: ceil(1.02) = 2", "{percent: 34}", "n1 n2 n3", "batch-1=n1,n2|batch-2=n3", "" },
        { "canary with size", "{canary: 2, size: 2}", "n1 n2 n3 n4 n5", "canary=n1,n2|batch-1=n3,n4|batch-2=n5",
          "" },
        { "canary with percent: batches are P% of all nodes", "{canary: 1, percent: 25}", TEN,
          "canary=n01|batch-1=n02,n03,n04|batch-2=n05,n06,n07|batch-3=n08,n09,n10", "" },
        { "canary with the default size", "{canary: 1}", "n1 n2", "canary=n1|batch-1=n2", "" },
        { "canary larger than the cluster takes every node", "{canary: 5, size: 1}", "n1 n2 n3", "canary=n1,n2,n3",
          "" },
        { "canary equal to the cluster", "{canary: 2, percent: 50}", "n1 n2", "canary=n1,n2", "" },
        { "nodes without ztunnel do not take part and are not unplanned", "{size: 2}", "n1 !n2 n3 !n4 n5",
          "batch-1=n1,n3|batch-2=n5", "" },
        { "nodes being deleted are left out", "{size: 5}", "n1 ~n2 n3 ~!n4", "batch-1=n1,n3", "" },
        { "nodeSelector: the others running ztunnel are unplanned", "{nodeSelector: pool=general, size: 2}",
          "n1:pool=general n2:pool=gpu n3:pool=general !n4:pool=general n5 n6:pool=general",
          "batch-1=n1,n3|batch-2=n6", "n2,n5" },
        { "nodeSelector with set syntax", "{nodeSelector: 'pool in (a,b)', size: 5}", "n1:pool=a n2:pool=b n3:pool=c",
          "batch-1=n1,n2", "n3" },
        { "nodeSelector: percent counts only the nodes taking part", "{nodeSelector: pool=x, percent: 50}",
          "n1:pool=x n2:pool=x n3:pool=x n4:pool=x n5 n6 n7 n8", "batch-1=n1,n2|batch-2=n3,n4", "n5,n6,n7,n8" },
        { "byLabel: values sorted, unlabelled last", "{byLabel: zone}", ZONES,
          "a=a1,a2|b=b1,b2,b3|c=c1|unlabelled=u1,u2", "" },
        { "byLabel: order first, then the rest sorted", "{byLabel: zone, order: [c, b]}", ZONES,
          "c=c1|b=b1,b2,b3|a=a1,a2|unlabelled=u1,u2", "" },
        { "byLabel: a node with an empty value is unlabelled", "{byLabel: zone}", "a1:zone=a e1:zone= u1",
          "a=a1|unlabelled=e1,u1", "" },
        { "byLabel: no unlabelled group when every node has the label", "{byLabel: zone}", "a1:zone=a b1:zone=b",
          "a=a1|b=b1", "" },
        { "byLabel: only unlabelled nodes", "{byLabel: zone}", "n1 n2", "unlabelled=n1,n2", "" },
        { "byLabel: canary from the first group in order", "{canary: 1, byLabel: zone, order: [b]}", ZONES,
          "canary=b1|b=b2,b3|a=a1,a2|c=c1|unlabelled=u1,u2", "" },
        { "byLabel: canary empties the first group, which is dropped", "{canary: 1, byLabel: zone, order: [c]}", ZONES,
          "canary=c1|a=a1,a2|b=b1,b2,b3|unlabelled=u1,u2", "" },
        { "byLabel: canary spans groups", "{canary: 3, byLabel: zone}", ZONES,
          "canary=a1,a2,b1|b=b2,b3|c=c1|unlabelled=u1,u2", "" },
        { "byLabel: canary larger than the cluster", "{canary: 100, byLabel: zone}", ZONES,
          "canary=a1,a2,b1,b2,b3,c1,u1,u2", "" },
        { "byLabel: canary reaches the unlabelled", "{canary: 2, byLabel: zone}", "a1:zone=a u1 u2",
          "canary=a1,u1|unlabelled=u2", "" },
        { "byLabel: value canary is fine without a canary group", "{byLabel: pool, order: [canary]}",
          "n1:pool=canary n2:pool=main", "canary=n1|main=n2", "" },
        { "byLabel: label with a prefix, selector, deleting and ztunnel-less nodes",
          "{nodeSelector: '!spot', byLabel: topology.kubernetes.io/zone}",
          "x:topology.kubernetes.io/zone=z1 y:topology.kubernetes.io/zone=z1,spot=true ~z:topology.kubernetes.io/zone=z2 "
          "!w:topology.kubernetes.io/zone=z3 v:topology.kubernetes.io/zone=z4",
          "z1=x|z4=v", "y" },
        { "list: groups as given, nodes sorted, the others unplanned",
          "{list: [{name: first, nodes: [n3]}, {name: rest, nodes: [n4, n1]}]}", "n1 n2 n3 n4 n5 !n6",
          "first=n3|rest=n1,n4", "n2,n5" },
        { "list: a group may be called canary", "{list: [{name: canary, nodes: [n2]}, {name: b, nodes: [n1]}]}",
          "n1 n2", "canary=n2|b=n1", "" },
        { "list: a listed node being deleted is left out", "{list: [{name: a, nodes: [n1, n2]}, {name: b, nodes: [n3]}]}",
          "n1 ~n2 n3", "a=n1|b=n3", "" },
        { "list: a group of deleted nodes is dropped", "{list: [{name: a, nodes: [n1]}, {name: b, nodes: [n2]}]}",
          "~n1 n2", "b=n2", "" },
        { "list: the selector's misses are unplanned too",
          "{nodeSelector: pool=x, list: [{name: a, nodes: [n1]}]}", "n1:pool=x n2:pool=x n3", "a=n1", "n2,n3" },
};
/* clang-format on */

static void test_plans(void **state)
{
        for (size_t i = 0; i < ELEMENTSOF(plan_cases); i++) {
                const PlanCase *c = &plan_cases[i];
                _cleanup_(rollout_spec_freep) RolloutSpec *spec = spec_new(c->groups);
                _cleanup_(group_plan_freep) GroupPlan *p = NULL;
                _cleanup_free_ char *plan = NULL, *unplanned = NULL;
                MrError err = {};
                int r;

                r = compute(spec, c->cluster, &p, &err);
                if (r < 0)
                        fail_msg("%s: %s (%s)", c->what, err.message, mr_strerror(r));
                plan = plan_string(p);
                unplanned = unplanned_string(p);
                if (!streq(plan, c->plan) || !streq(unplanned, c->unplanned))
                        fail_msg("%s:\n  plan      %s\n  expected  %s\n  unplanned \"%s\", expected \"%s\"",
                                 c->what, plan, c->plan, unplanned, c->unplanned);
        }
}

typedef struct ErrorCase {
        const char *what;
        const char *groups;
        const char *cluster;
        const char *message; /* expected exactly */
} ErrorCase;

/* clang-format off */
static const ErrorCase error_cases[] = {
        { "empty cluster", "{size: 1}", "", "spec.groups: no node takes part in the rollout: the cluster has no nodes" },
        { "every node being deleted", "{size: 1}", "~n1 ~n2",
          "spec.groups: no node takes part in the rollout: the cluster has no nodes that are not being deleted" },
        { "no node runs ztunnel", "{size: 1}", "!n1 !n2",
          "spec.groups: no node takes part in the rollout: none of the 2 nodes runs a pod of DaemonSet "
          "istio-system/ztunnel" },
        { "selector matches nothing", "{nodeSelector: pool=gpu, size: 1}", "n1:pool=a n2 !n3:pool=gpu",
          "spec.groups: no node takes part in the rollout: 2 of 3 nodes run istio-system/ztunnel but none matches "
          "spec.groups.nodeSelector \"pool=gpu\"" },
        { "order value no node has", "{byLabel: zone, order: [b, zone-x]}", ZONES,
          "spec.groups.order: no node has zone=zone-x (values: a, b, c)" },
        { "order value only a node outside the selector has", "{nodeSelector: pool=x, byLabel: zone, order: [b]}",
          "a1:zone=a,pool=x b1:zone=b", "spec.groups.order: no node has zone=b (values: a)" },
        { "order value when no node has the label", "{byLabel: zone, order: [a]}", "n1 n2",
          "spec.groups.order: no node has zone=a (values: none)" },
        { "order value error lists at most 8 values", "{byLabel: z, order: [q]}",
          "n1:z=a n2:z=b n3:z=c n4:z=d n5:z=e n6:z=f n7:z=g n8:z=h n9:z=i n10:z=j",
          "spec.groups.order: no node has z=q (values: a, b, c, d, e, f, g, h and 2 more)" },
        { "label value canary clashes with the canary group", "{canary: 1, byLabel: pool}",
          "n1:pool=main n2:pool=canary n3:pool=canary",
          "spec.groups.byLabel: nodes with pool=canary would form a second group named \"canary\"; set "
          "spec.groups.canary to 0 and put canary first in spec.groups.order instead" },
        { "label value unlabelled clashes with the unlabelled nodes", "{byLabel: pool}", "n1:pool=unlabelled n2",
          "spec.groups.byLabel: nodes with pool=unlabelled would share the group name \"unlabelled\" with the nodes "
          "that lack the label" },
        { "list: node does not exist", "{list: [{name: a, nodes: [n1]}, {name: b, nodes: [n2, n9]}]}", "n1 n2",
          "spec.groups.list[1].nodes: node \"n9\" does not exist" },
        { "list: node does not run ztunnel", "{list: [{name: a, nodes: [n1, n2]}]}", "n1 !n2",
          "spec.groups.list[0].nodes: node \"n2\" does not run ztunnel (no pod of DaemonSet istio-system/ztunnel on "
          "it)" },
        { "list: node outside the selector", "{nodeSelector: pool=x, list: [{name: a, nodes: [n1, n2]}]}",
          "n1:pool=x n2:pool=y", "spec.groups.list[0].nodes: node \"n2\" does not match spec.groups.nodeSelector "
                                 "\"pool=x\"" },
        { "list: every listed node being deleted", "{list: [{name: a, nodes: [n1]}]}", "~n1 n2",
          "spec.groups.list: every listed node is being deleted" },
};
/* clang-format on */

static void test_errors(void **state)
{
        for (size_t i = 0; i < ELEMENTSOF(error_cases); i++) {
                const ErrorCase *c = &error_cases[i];
                _cleanup_(rollout_spec_freep) RolloutSpec *spec = spec_new(c->groups);
                _cleanup_(group_plan_freep) GroupPlan *p = NULL;
                MrError err = {};
                int r;

                r = compute(spec, c->cluster, &p, &err);
                if (r != -MR_ECONFIG)
                        fail_msg("%s: expected ECONFIG, got %d (%s)", c->what, r, err.message);
                assert_null(p);
                if (!streq(err.message, c->message))
                        fail_msg("%s:\n  message  %s\n  expected %s", c->what, err.message, c->message);
        }
}

/* ---- cases the table cannot express ----------------------------------------- */

/* Only pods of the target DaemonSet, in its namespace, with a node, count. */
static void test_which_pods_count(void **state)
{
        _cleanup_(rollout_spec_freep) RolloutSpec *spec = spec_new("{size: 10}");
        _cleanup_(json_object_putp) json_object *nodes = NULL, *pods = NULL;
        _cleanup_(group_plan_freep) GroupPlan *p = NULL;
        _cleanup_free_ char *plan = NULL;
        MrError err = {};

        cluster_new("ok !other-ns !other-ds !replicaset !unscheduled !no-owner !second-ref", &nodes, &pods);
        json_object_array_add(pods, pod_new("other-ns", "kube-system", "DaemonSet", "ztunnel"));
        json_object_array_add(pods, pod_new("other-ds", "istio-system", "DaemonSet", "istio-cni-node"));
        json_object_array_add(pods, pod_new("replicaset", "istio-system", "ReplicaSet", "ztunnel"));
        json_object_array_add(pods,
                              parse("{\"metadata\":{\"namespace\":\"istio-system\",\"ownerReferences\":"
                                    "[{\"kind\":\"DaemonSet\",\"name\":\"ztunnel\"}]},\"spec\":{}}"));
        json_object_array_add(pods, parse("{\"metadata\":{\"namespace\":\"istio-system\"},"
                                          "\"spec\":{\"nodeName\":\"no-owner\"}}"));
        /* A pod on a node that has no Node object: ignored, not an error. */
        json_object_array_add(pods, pod_new("vanished", "istio-system", "DaemonSet", "ztunnel"));
        /* The owner need not be the first reference. */
        json_object_array_add(pods,
                              parse("{\"metadata\":{\"namespace\":\"istio-system\",\"ownerReferences\":"
                                    "[{\"kind\":\"Node\",\"name\":\"x\"},{\"kind\":\"DaemonSet\",\"name\":"
                                    "\"ztunnel\"}]},\"spec\":{\"nodeName\":\"second-ref\"}}"));
        assert_int_equal(groups_compute(spec, nodes, pods, &p, &err), 0);
        plan = plan_string(p);
        assert_string_equal(plan, "batch-1=ok,second-ref");
        assert_int_equal(p->n_unplanned, 0);
}

/* spec.target picks the DaemonSet. */
static void test_custom_target(void **state)
{
        _cleanup_(rollout_spec_freep) RolloutSpec *spec = spec_new("{size: 10}");
        _cleanup_(json_object_putp) json_object *nodes = NULL, *pods = NULL;
        _cleanup_(group_plan_freep) GroupPlan *p = NULL;
        _cleanup_free_ char *plan = NULL;
        MrError err = {};

        free(spec->target_namespace);
        free(spec->target_daemonset);
        spec->target_namespace = strdup("mesh");
        spec->target_daemonset = strdup("zt");
        cluster_new("!n1 !n2 !n3", &nodes, &pods);
        json_object_array_add(pods, pod_new("n3", "mesh", "DaemonSet", "zt"));
        json_object_array_add(pods, pod_new("n1", "mesh", "DaemonSet", "zt"));
        json_object_array_add(pods, pod_new("n2", "istio-system", "DaemonSet", "ztunnel"));
        assert_int_equal(groups_compute(spec, nodes, pods, &p, &err), 0);
        plan = plan_string(p);
        assert_string_equal(plan, "batch-1=n1,n3");
}

/* A node listed twice in the input (a merged list) is one node; a nameless object is skipped. */
static void test_duplicate_and_nameless_nodes(void **state)
{
        _cleanup_(rollout_spec_freep) RolloutSpec *spec = spec_new("{size: 10}");
        _cleanup_(json_object_putp) json_object *nodes = NULL, *pods = NULL;
        _cleanup_(group_plan_freep) GroupPlan *p = NULL;
        _cleanup_free_ char *plan = NULL;

        cluster_new("n1 n2", &nodes, &pods);
        json_object_array_add(nodes, node_new("n1", NULL, false));
        json_object_array_add(nodes, parse("{\"metadata\":{}}"));
        json_object_array_add(nodes, parse("42"));
        assert_int_equal(groups_compute(spec, nodes, pods, &p, NULL), 0);
        plan = plan_string(p);
        assert_string_equal(plan, "batch-1=n1,n2");
}

/* Specs spec.c would reject still get a clear answer (the struct can be built in code). */
static void test_spec_checks_repeated(void **state)
{
        MrError err = {};
        GroupPlan *p = NULL;

        _cleanup_(rollout_spec_freep) RolloutSpec *list = spec_new("{list: [{name: a, nodes: [n1]}]}");
        list->canary = 1;
        assert_int_equal(compute(list, "n1", &p, &err), -MR_ECONFIG);
        assert_string_equal(err.message,
                            "spec.groups.canary: with list, make the first list entry the canary group");

        _cleanup_(rollout_spec_freep) RolloutSpec *twice =
            spec_new("{list: [{name: a, nodes: [n1]}, {name: b, nodes: [n2]}]}");
        free(twice->lists[1].nodes[0]);
        twice->lists[1].nodes[0] = strdup("n1");
        assert_int_equal(compute(twice, "n1 n2", &p, &err), -MR_ECONFIG);
        assert_string_equal(err.message, "spec.groups.list[1].nodes: node \"n1\" is already in group \"a\"");
        free(twice->lists[1].name);
        twice->lists[1].name = strdup("a");
        assert_int_equal(compute(twice, "n1 n2", &p, &err), -MR_ECONFIG);
        assert_string_equal(err.message, "spec.groups.list[1].name: group \"a\" is defined twice");

        _cleanup_(rollout_spec_freep) RolloutSpec *size = spec_new("{size: 2}");
        size->size = 0;
        assert_int_equal(compute(size, "n1", &p, &err), -MR_ECONFIG);
        assert_string_equal(err.message, "spec.groups.size: expected at least 1, got 0");

        _cleanup_(rollout_spec_freep) RolloutSpec *percent = spec_new("{percent: 2}");
        percent->percent = 101;
        assert_int_equal(compute(percent, "n1", &p, &err), -MR_ECONFIG);
        assert_string_equal(err.message, "spec.groups.percent: expected 1 to 100, got 101");

        _cleanup_(rollout_spec_freep) RolloutSpec *sel = spec_new("{size: 2}");
        sel->node_selector = strdup("a=(");
        assert_int_equal(compute(sel, "n1", &p, &err), -MR_ECONFIG);
        assert_non_null(startswith(err.message, "spec.groups.nodeSelector: not a valid label selector: "));

        assert_null(p);
}

static void test_bad_inputs(void **state)
{
        _cleanup_(rollout_spec_freep) RolloutSpec *spec = spec_new(NULL);
        _cleanup_(json_object_putp) json_object *obj = parse("{}");
        _cleanup_(json_object_putp) json_object *empty = parse("[]");
        GroupPlan *p = NULL;
        MrError err = {};

        assert_int_equal(groups_compute(spec, obj, empty, &p, &err), -EINVAL);
        assert_int_equal(groups_compute(spec, empty, obj, &p, &err), -EINVAL);
        /* NULL lists are empty ones. */
        assert_int_equal(groups_compute(spec, NULL, NULL, &p, &err), -MR_ECONFIG);
        assert_int_equal(groups_compute(spec, empty, empty, &p, NULL), -MR_ECONFIG);
        assert_null(p);
}

static void test_find_node(void **state)
{
        _cleanup_(rollout_spec_freep) RolloutSpec *spec = spec_new("{canary: 1, byLabel: zone}");
        _cleanup_(group_plan_freep) GroupPlan *p = NULL;
        const NodeGroup *g;

        assert_int_equal(compute(spec, ZONES " !z1:zone=a", &p, NULL), 0);
        g = groups_find_node(p, "a1");
        assert_non_null(g);
        assert_string_equal(g->name, "canary");
        g = groups_find_node(p, "b3");
        assert_non_null(g);
        assert_string_equal(g->name, "b");
        assert_ptr_equal(groups_find_node(p, "u2"), &p->groups[4]);
        assert_null(groups_find_node(p, "z1"));
        assert_null(groups_find_node(p, "nope"));
        assert_null(groups_find_node(p, NULL));
        assert_null(groups_find_node(NULL, "a1"));
}

/* ---- status form ------------------------------------------------------------ */

static void test_json_round_trip(void **state)
{
        _cleanup_(rollout_spec_freep) RolloutSpec *spec = spec_new("{canary: 1, byLabel: zone, order: [c]}");
        _cleanup_(group_plan_freep) GroupPlan *p = NULL, *back = NULL;
        _cleanup_(json_object_putp) json_object *j = NULL, *again = NULL;
        _cleanup_(json_object_putp) json_object *expected = parse(
            "[{\"name\":\"canary\",\"nodes\":[\"c1\"]},{\"name\":\"a\",\"nodes\":[\"a1\",\"a2\"]},"
            "{\"name\":\"b\",\"nodes\":[\"b1\",\"b2\",\"b3\"]},{\"name\":\"unlabelled\",\"nodes\":[\"u1\","
            "\"u2\"]}]");
        _cleanup_free_ char *s1 = NULL, *s2 = NULL;
        MrError err = {};

        assert_int_equal(compute(spec, ZONES, &p, &err), 0);
        assert_int_equal(groups_to_json(p, &j), 0);
        if (!mr_json_equal(j, expected))
                fail_msg("got %s", mr_json_compact(j));
        assert_int_equal(groups_from_json(j, &back, &err), 0);
        s1 = plan_string(p);
        s2 = plan_string(back);
        assert_string_equal(s1, s2);
        assert_int_equal(back->n_unplanned, 0);
        assert_non_null(back->unplanned);
        assert_null(back->unplanned[0]);
        assert_int_equal(groups_to_json(back, &again), 0);
        assert_true(mr_json_equal(j, again));
        assert_string_equal(groups_find_node(back, "b2")->name, "b");
}

/* A stored plan keeps its group order; nodes come back sorted. */
static void test_from_json_keeps_group_order(void **state)
{
        _cleanup_(json_object_putp) json_object *a =
            parse("[{\"name\":\"z\",\"nodes\":[\"n3\",\"n1\"]},{\"name\":\"a\",\"nodes\":[\"n2\"]}]");
        _cleanup_(group_plan_freep) GroupPlan *p = NULL;
        _cleanup_free_ char *s = NULL;

        assert_int_equal(groups_from_json(a, &p, NULL), 0);
        s = plan_string(p);
        assert_string_equal(s, "z=n1,n3|a=n2");
}

typedef struct MalformedCase {
        const char *json;
        const char *message;
} MalformedCase;

/* clang-format off */
static const MalformedCase malformed_cases[] = {
        { "{}", "status.groups: expected a list of {name, nodes}" },
        { "\"canary\"", "status.groups: expected a list of {name, nodes}" },
        { "[]", "status.groups: expected at least one group" },
        { "[{\"name\":\"a\",\"nodes\":[\"n1\"]},[]]", "status.groups[1]: expected a mapping" },
        { "[{\"nodes\":[\"n1\"]}]", "status.groups[0].name: expected a non-empty string" },
        { "[{\"name\":\"\",\"nodes\":[\"n1\"]}]", "status.groups[0].name: expected a non-empty string" },
        { "[{\"name\":7,\"nodes\":[\"n1\"]}]", "status.groups[0].name: expected a non-empty string" },
        { "[{\"name\":\"a\"}]", "status.groups[0].nodes: expected a non-empty list of node names" },
        { "[{\"name\":\"a\",\"nodes\":[]}]", "status.groups[0].nodes: expected a non-empty list of node names" },
        { "[{\"name\":\"a\",\"nodes\":\"n1\"}]", "status.groups[0].nodes: expected a non-empty list of node names" },
        { "[{\"name\":\"a\",\"nodes\":[\"n1\"]},{\"name\":\"b\",\"nodes\":[\"n2\",3]}]",
          "status.groups[1].nodes[1]: expected a node name" },
        { "[{\"name\":\"a\",\"nodes\":[\"n1\",\"\"]}]", "status.groups[0].nodes[1]: expected a node name" },
        { "[{\"name\":\"a\",\"nodes\":[null]}]", "status.groups[0].nodes[0]: expected a node name" },
        { "[{\"name\":\"a\",\"nodes\":[\"n1\"]},{\"name\":\"a\",\"nodes\":[\"n2\"]}]",
          "status.groups[1].name: group \"a\" is defined twice" },
        { "[{\"name\":\"a\",\"nodes\":[\"n1\",\"n2\"]},{\"name\":\"b\",\"nodes\":[\"n3\",\"n2\"]}]",
          "status.groups[1].nodes[1]: node \"n2\" is already in group \"a\"" },
        { "[{\"name\":\"a\",\"nodes\":[\"n1\",\"n1\"]}]", "status.groups[0].nodes[1]: node \"n1\" is already in group \"a\"" },
};
/* clang-format on */

static void test_from_json_malformed(void **state)
{
        GroupPlan *p = NULL;

        for (size_t i = 0; i < ELEMENTSOF(malformed_cases); i++) {
                _cleanup_(json_object_putp) json_object *a = parse(malformed_cases[i].json);
                MrError err = {};
                assert_int_equal(groups_from_json(a, &p, &err), -MR_EPARSE);
                if (!streq(err.message, malformed_cases[i].message))
                        fail_msg("%s:\n  message  %s\n  expected %s", malformed_cases[i].json, err.message,
                                 malformed_cases[i].message);
        }
        assert_int_equal(groups_from_json(NULL, &p, NULL), -MR_EPARSE);
        assert_null(p);
}

static void test_free_null(void **state)
{
        assert_null(group_plan_free(NULL));
}

/*
 * groups_list_inputs against the in-process simulator, over more than one
 * 500-object page: the projected lists give the same plan as whole objects,
 * and keep nothing else of them.
 */
static void test_list_inputs_paged(void **state)
{
        static const char scenario[] =
            "name: many\n"
            "nodes:\n"
            "  - {name: \"a-{i}\", count: 600, pool: a}\n"
            "  - {name: \"b-{i}\", count: 150, pool: b}\n"
            "istio:\n"
            "  revisions: [{name: 1-24-0, version: 1.24.0}]\n"
            "  ztunnel: {revision: 1-24-0, updateStrategy: OnDelete}\n";
        _cleanup_(rollout_spec_freep) RolloutSpec *spec = spec_new("{byLabel: meshroll.io/pool}");
        _cleanup_(json_object_putp) json_object *nodes = NULL, *pods = NULL, *all_nodes = NULL, *all_pods = NULL;
        _cleanup_(group_plan_freep) GroupPlan *got = NULL, *want = NULL;
        KubeClientOptions o = {.qps = -1};
        SimOptions so = {.scenario_data = scenario, .scenario_size = strlen(scenario), .speed = 20};
        KubeClient *c = NULL;
        Sim *sim = NULL;
        MrError err = {};
        KubeStatus st;

        if (sim_start(&so, &sim, &err) < 0)
                fail_msg("sim_start: %s", err.message);
        KubeConfig cfg = {.server = (char *)sim_url(sim)};
        assert_int_equal(kube_client_new(&cfg, &o, &c, NULL), 0);

        /* the DaemonSet controller places a ztunnel pod on every node: wait for all of them (bounded) */
        for (int i = 0; i < 200; i++) {
                json_object_put(all_pods);
                all_pods = NULL;
                assert_int_equal(kube_list(c, &KUBE_PODS, "istio-system", NULL, &all_pods, NULL, &st), 0);
                size_t n = 0;
                for (size_t k = 0; k < json_object_array_length(all_pods); k++) {
                        json_object *pod = json_object_array_get_idx(all_pods, k);
                        if (mr_json_get_str(pod, "spec", "nodeName", NULL) &&
                            streq_ptr(mr_json_get_str(pod, "metadata", "labels", "app", NULL), "ztunnel"))
                                n++;
                }
                if (n >= 750)
                        break;
                usleep(50 * 1000);
        }
        assert_int_equal(kube_list(c, &KUBE_NODES, NULL, NULL, &all_nodes, NULL, &st), 0);
        assert_int_equal(json_object_array_length(all_nodes), 750);

        if (groups_list_inputs(c, spec, &nodes, &pods, &err) < 0)
                fail_msg("groups_list_inputs: %s", err.message);
        assert_int_equal(json_object_array_length(nodes), 750);
        /* every ztunnel pod is there (istiod's may come and go: it is not counted) */
        size_t ds_pods = 0;
        for (size_t k = 0; k < json_object_array_length(pods); k++) {
                json_object *refs = mr_json_get(json_object_array_get_idx(pods, k), "metadata", "ownerReferences", NULL);
                json_object *ref = refs ? json_object_array_get_idx(refs, 0) : NULL;
                if (streq_ptr(mr_json_get_str(ref, "kind", NULL), "DaemonSet"))
                        ds_pods++;
        }
        assert_int_equal(ds_pods, 750);

        /* only what groups_compute reads */
        json_object *n0 = json_object_array_get_idx(nodes, 0), *p0 = json_object_array_get_idx(pods, 0);
        assert_null(mr_json_get(n0, "status", NULL));
        assert_null(mr_json_get(n0, "spec", NULL));
        assert_non_null(mr_json_get(n0, "metadata", "labels", NULL));
        assert_null(mr_json_get(n0, "metadata", "uid", NULL));
        assert_null(mr_json_get(p0, "status", NULL));
        assert_null(mr_json_get(p0, "spec", "containers", NULL));
        assert_non_null(mr_json_get(p0, "metadata", "ownerReferences", NULL));

        assert_int_equal(groups_compute(spec, nodes, pods, &got, &err), 0);
        assert_int_equal(groups_compute(spec, all_nodes, all_pods, &want, &err), 0);
        assert_int_equal(got->n_groups, 2);
        assert_int_equal(got->n_groups, want->n_groups);
        for (size_t g = 0; g < got->n_groups; g++) {
                assert_string_equal(got->groups[g].name, want->groups[g].name);
                assert_int_equal(got->groups[g].n_nodes, want->groups[g].n_nodes);
                for (size_t k = 0; k < got->groups[g].n_nodes; k++)
                        assert_string_equal(got->groups[g].nodes[k], want->groups[g].nodes[k]);
        }
        assert_int_equal(got->groups[0].n_nodes, 600);

        kube_client_free(c);
        sim_stop(sim);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_plans),
            cmocka_unit_test(test_errors),
            cmocka_unit_test(test_which_pods_count),
            cmocka_unit_test(test_custom_target),
            cmocka_unit_test(test_duplicate_and_nameless_nodes),
            cmocka_unit_test(test_spec_checks_repeated),
            cmocka_unit_test(test_bad_inputs),
            cmocka_unit_test(test_find_node),
            cmocka_unit_test(test_json_round_trip),
            cmocka_unit_test(test_from_json_keeps_group_order),
            cmocka_unit_test(test_from_json_malformed),
            cmocka_unit_test(test_free_null),
            cmocka_unit_test(test_list_inputs_paged),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
