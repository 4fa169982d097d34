/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nodes.h — cordon, mark, uncordon: the coordinator's writes to Nodes.
 *
 * Two annotations carry the truth across coordinator restarts:
 *   meshroll.io/phase        "<rollout>/<group>": the agent on that node
 *                            reports every 2 s while it is present;
 *   meshroll.io/cordoned-by  "<rollout>": meshroll cordoned this node itself.
 * A node that is unschedulable *without* cordoned-by was cordoned by
 * someone else (an operator, an autoscaler): meshroll marks it but never
 * uncordons it. Cordon and both annotations are one merge patch, guarded by
 * the node's resourceVersion, so there is no moment where meshroll has
 * cordoned a node without saying so.
 *
 * Both calls are idempotent: calling them again after a crash at any point
 * converges on the same state.
 */
#pragma once

#include <stdbool.h>

#include "meshroll/kube.h"

#define NODE_ANNOTATION_PHASE "meshroll.io/phase"
#define NODE_ANNOTATION_CORDONED_BY "meshroll.io/cordoned-by"

/*
 * Marks node with phase and cordons it unless it already is. Sets
 * *ret_operator_cordoned when someone else had cordoned it. Errors: -ENOENT
 * (no such node), API errors; err says which node.
 */
int node_cordon_and_mark(KubeClient *c, const char *node, const char *rollout, const char *phase,
                         bool *ret_operator_cordoned, MrError *err);

/*
 * `kubectl cordon`: sets spec.unschedulable on node (one merge patch, no
 * annotations: the operator's own cordon, which no rollout undoes). Writes
 * nothing when the node is already unschedulable, and says so through
 * *ret_already (may be NULL). Errors: -ENOENT (no such node), API errors;
 * err names the node.
 */
int node_cordon(KubeClient *c, const char *node, bool *ret_already, MrError *err);

/*
 * Removes meshroll's annotations and, when rollout cordoned the node,
 * uncordons it. A node that no longer exists is not an error.
 */
int node_uncordon_and_unmark(KubeClient *c, const char *node, const char *rollout, MrError *err);
