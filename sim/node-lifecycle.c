/* SPDX-License-Identifier: Apache-2.0 */
/*
 * node-lifecycle.c — the node lifecycle controller's NoSchedule tainting
 * pass, and the kubelet's node status.
 *
 * As in k/k pkg/controller/nodelifecycle (doNoScheduleTaintingPass), the
 * controller derives the NoSchedule taints a node should carry —
 * node.kubernetes.io/unschedulable while spec.unschedulable is true,
 * node.kubernetes.io/not-ready while its Ready condition is False — and
 * swaps them in with a node update, leaving every other taint alone. The
 * taint has no value and no timeAdded. kubectl cordon only sets
 * spec.unschedulable, so the taint appears a moment later (the
 * taint_delay option, default 0: the next controller pass), as on a real
 * cluster.
 *
 * A node created without a Ready condition (scenario nodes) gets the one
 * a kubelet posts: Ready=True, reason KubeletReady. A scenario marks a node
 * down with the annotation sim.meshroll.io/not-ready="true": Ready turns
 * False (reason KubeletNotReady) and the not-ready taint follows.
 */
#include <stdio.h>

#include "controllers-internal.h"
#include "meshroll/json-util.h"
#include "meshroll/time-util.h"

#define ACTOR "node-lifecycle-controller"
#define TAINT_UNSCHEDULABLE "node.kubernetes.io/unschedulable"
#define TAINT_NOT_READY "node.kubernetes.io/not-ready"

static bool has_taint(json_object *taints, const char *key)
{
        for (size_t i = 0; taints && json_object_is_type(taints, json_type_array) && i < json_object_array_length(taints); i++) {
                json_object *t = json_object_array_get_idx(taints, i);
                if (streq_ptr(mr_json_get_str(t, "key", NULL), key) &&
                    streq_ptr(mr_json_get_str(t, "effect", NULL), "NoSchedule"))
                        return true;
        }
        return false;
}

/* Adds or removes the NoSchedule taint key on spec.taints. Returns 1 when changed. */
static int set_taint(json_object *node, const char *key, bool want)
{
        json_object *spec = mr_json_ensure_object(node, "spec", NULL);
        if (!spec)
                return -ENOMEM;
        json_object *taints = mr_json_get(spec, "taints", NULL);
        if (has_taint(taints, key) == want)
                return 0;
        json_object *out = json_object_new_array();
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; taints && json_object_is_type(taints, json_type_array) && i < json_object_array_length(taints); i++) {
                json_object *t = json_object_array_get_idx(taints, i);
                if (streq_ptr(mr_json_get_str(t, "key", NULL), key) &&
                    streq_ptr(mr_json_get_str(t, "effect", NULL), "NoSchedule"))
                        continue;
                json_object_array_add(out, json_object_get(t));
        }
        if (want) {
                json_object *t = json_object_new_object();
                if (!t || json_object_array_add(out, t) < 0 || mr_json_set_str(t, "key", key) < 0 ||
                    mr_json_set_str(t, "effect", "NoSchedule") < 0) {
                        json_object_put(out);
                        return -ENOMEM;
                }
        }
        if (json_object_array_length(out) == 0) {
                json_object_put(out);
                json_object_object_del(spec, "taints");
        } else
                json_object_object_add(spec, "taints", out);
        return 1;
}

/* Posts the kubelet's Ready condition when missing or when the not-ready annotation flips it. */
static int sync_ready_condition(SimStore *s, json_object *cur, usec_t now)
{
        bool down = streq_ptr(mr_json_get_str(cur, "metadata", "annotations", "sim.meshroll.io/not-ready", NULL), "true");
        _cleanup_(json_object_putp) json_object *node = mr_json_copy(cur);
        json_object *status = node ? mr_json_ensure_object(node, "status", NULL) : NULL;
        char ts[KUBE_TIME_MAX];
        if (!status)
                return -ENOMEM;
        int r = sim_set_condition(status, "Ready", down ? "False" : "True", down ? "KubeletNotReady" : "KubeletReady",
                                  down ? "container runtime network not ready" : "kubelet is posting ready status",
                                  now, false);
        if (r < 0)
                return r;
        /* lastHeartbeatTime is only written with a transition: a heartbeat every few seconds would be noise. */
        json_object *conds = mr_json_get(status, "conditions", NULL);
        for (size_t i = 0; i < json_object_array_length(conds); i++) {
                json_object *c = json_object_array_get_idx(conds, i);
                if (streq_ptr(mr_json_get_str(c, "type", NULL), "Ready") && !mr_json_get(c, "lastHeartbeatTime", NULL) &&
                    mr_json_set_str(c, "lastHeartbeatTime", kube_time_format(now, ts)) < 0)
                        return -ENOMEM;
        }
        return sim_write_status(s, &SIM_NODES, TAKE_PTR(node), "kubelet");
}

int sim_node_lifecycle_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due)
{
        SimStore *s = sim_controllers_store(c);
        usec_t delay = 0;
        int r;

        *ret_due = 0;
        json_object *cur = sim_store_get(s, &SIM_NODES, NULL, name);
        if (!cur)
                return 0;
        r = sync_ready_condition(s, cur, now);
        if (r < 0)
                return r;
        cur = sim_store_get(s, &SIM_NODES, NULL, name);
        if (!cur)
                return 0;

        bool unschedulable = mr_json_get_bool(false, cur, "spec", "unschedulable", NULL);
        bool not_ready = streq_ptr(mr_json_get_str(cur, "metadata", "annotations", "sim.meshroll.io/not-ready", NULL),
                                   "true");
        json_object *taints = mr_json_get(cur, "spec", "taints", NULL);
        if (has_taint(taints, TAINT_UNSCHEDULABLE) == unschedulable && has_taint(taints, TAINT_NOT_READY) == not_ready)
                return 0;

        /* The delay counts from when this controller first saw the node wanting these taints. */
        delay = sim_controllers_taint_delay(c);
        if (delay > 0) {
                char want[32];
                snprintf(want, sizeof want, "%d%d", unschedulable, not_ready);
                if (!sim_controllers_delay_elapsed(c, name, want, now, delay, ret_due))
                        return 0;
        }

        _cleanup_(json_object_putp) json_object *node = mr_json_copy(cur);
        if (!node)
                return -ENOMEM;
        r = set_taint(node, TAINT_UNSCHEDULABLE, unschedulable);
        if (r >= 0)
                r = set_taint(node, TAINT_NOT_READY, not_ready);
        if (r < 0)
                return r;
        r = sim_write_object(s, &SIM_NODES, TAKE_PTR(node), ACTOR);
        return r < 0 ? r : 0;
}
