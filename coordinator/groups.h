/* SPDX-License-Identifier: Apache-2.0 */
/*
 * groups.h — which nodes move together, in which order.
 *
 * Pure: from the spec, the cluster's Nodes and the ztunnel pods, compute the
 * ordered node groups of a rollout. The result is frozen into the Rollout's
 * status when the rollout starts, so nodes that appear or change labels
 * later do not reshuffle groups mid-rollout (a node added later is not
 * part of this rollout; `meshroll plan` shows it).
 *
 * Rules:
 *   - Taking part: nodes matching spec.groups.nodeSelector (all when unset)
 *     that run a pod of the target DaemonSet (a node ztunnel does not run on
 *     has nothing to upgrade). Nodes being deleted are left out.
 *   - Order inside every rule: node name order, so plans are reproducible.
 *   - canary N > 0: the first group is the first N nodes (in the order the
 *     rule below would visit them), named "canary"; the rule then groups
 *     the rest.
 *   - size N: batches of N nodes, named "batch-1", "batch-2", …
 *   - percent P: batches of ceil(P% × nodes taking part) nodes (at least 1),
 *     named like size batches.
 *   - byLabel K: one group per value of label K, named after the value;
 *     values listed in spec.groups.order first, in that order, then the
 *     others sorted; nodes without the label form a last group "unlabelled".
 *     A value in order that no node has is an error (a typo would silently
 *     skip a zone otherwise).
 *   - list: the groups as given; a listed node that does not exist or does
 *     not run ztunnel is an error naming it; nodes taking part but not
 *     listed are reported as unplanned (not an error: the operator chose).
 *
 * Details (groups.c's file comment gives the reasons): a canary larger than
 * the cluster takes every node; percent batches are computed over all nodes
 * taking part, canary included, and cut what the canary leaves; byLabel
 * treats an empty value as unlabelled, drops a group the canary emptied, and
 * rejects a value named like the "canary" or "unlabelled" group; a listed
 * node being deleted is left out (a group left empty is dropped), a listed
 * node outside nodeSelector is an error. Names compare bytewise (strcmp).
 */
#pragma once

#include <json-c/json.h>

#include "meshroll/errors.h"
#include "meshroll/kube.h"
#include "spec.h"

typedef struct NodeGroup {
        char *name;
        char **nodes;    /* NULL-terminated, sorted */
        size_t n_nodes;
} NodeGroup;

typedef struct GroupPlan {
        NodeGroup *groups;
        size_t n_groups;
        char **unplanned; /* nodes running ztunnel that no group includes (list mode, selector misses); NULL-terminated */
        size_t n_unplanned;
} GroupPlan;

/*
 * nodes: array of Node objects; ztunnel_pods: array of the target
 * DaemonSet's pods (both borrowed; NULL is an empty list; pods of other
 * owners or namespaces are ignored, so a broader pod list is fine).
 * Errors: -MR_ECONFIG with err naming the problem (no node takes part, an
 * unknown node in a list, an order value no node has), -EINVAL when nodes
 * or ztunnel_pods is not an array, -ENOMEM. *ret is owned
 * (group_plan_free), untouched on failure; its unplanned is never NULL.
 */
int groups_compute(const RolloutSpec *spec, json_object *nodes, json_object *ztunnel_pods, GroupPlan **ret,
                   MrError *err);

/*
 * Lists what groups_compute reads, for a cluster of any size: every Node and
 * the pods of spec's target namespace, in pages of 500, keeping of each
 * object only the fields groups_compute uses (a Node's name, labels and
 * deletionTimestamp; a pod's namespace, ownerReferences and nodeName).
 * Listing whole objects holds them all at once in json-c, several times
 * their JSON size: at 5,000 nodes that alone is well over 100 MiB, while the
 * projection is a few MiB. *ret_nodes and *ret_pods are owned arrays for
 * groups_compute; untouched on failure. Errors: -ENOMEM, API errors (kube.h)
 * with err naming the list that failed; an expired continue token (410)
 * restarts that list once.
 */
int groups_list_inputs(KubeClient *c, const RolloutSpec *spec, json_object **ret_nodes, json_object **ret_pods,
                       MrError *err);

/* Finds the group a node belongs to (borrowed from p), or NULL (also for NULL p or node). */
const NodeGroup *groups_find_node(const GroupPlan *p, const char *node);

/*
 * Status form: [{"name": …, "nodes": [...]}, …]; and back (for a resumed
 * rollout). groups_to_json: *ret owned; -EINVAL, -ENOMEM. groups_from_json:
 * array borrowed; keeps the group order, sorts each group's nodes, leaves
 * unplanned empty; -MR_EPARSE with err naming the index
 * ("status.groups[1].nodes[0]: …") for anything but a non-empty list of
 * uniquely named groups of distinct, non-empty node names; -ENOMEM.
 */
int groups_to_json(const GroupPlan *p, json_object **ret);
int groups_from_json(json_object *array, GroupPlan **ret, MrError *err);

GroupPlan *group_plan_free(GroupPlan *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(GroupPlan *, group_plan_free);
