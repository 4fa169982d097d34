/* SPDX-License-Identifier: Apache-2.0 */
/*
 * disruption.c — the disruption controller (PodDisruptionBudget status) and
 * the eviction subresource's budget check.
 *
 * Status follows k/k pkg/controller/disruption/disruption.go:
 *   - pods: the PDB's namespace, matched by spec.selector (policy/v1: {}
 *     matches every pod, null matches none);
 *   - expectedPods / desiredHealthy (getExpectedPodCount): maxUnavailable
 *     (int or %) and percentage minAvailable use the summed scale of the
 *     pods' controllers (Deployment through its ReplicaSet, ReplicaSet,
 *     StatefulSet, ReplicationController; pods without a controller are
 *     ignored, any other controller — a DaemonSet has no scale — is a sync
 *     failure); integer minAvailable uses the pod count; percentages round up;
 *   - currentHealthy (countHealthyPods): Ready pods not being deleted and not
 *     listed in disruptedPods within the 2-minute DeletionTimeout;
 *   - disruptionsAllowed = max(0, currentHealthy - desiredHealthy), 0 when
 *     expectedPods <= 0; the DisruptionAllowed condition (SufficientPods /
 *     InsufficientPods / SyncFailed); observedGeneration = generation except
 *     on a failed sync (failSafe), so evictions then see a stale budget.
 *
 * Admission follows k/k pkg/registry/core/pod/storage/eviction.go: the
 * check-and-decrement runs under the store lock, which is what makes two
 * concurrent evictions against a budget of one impossible.
 */
#include <inttypes.h>
#include <stdio.h>

#include "controllers-internal.h"
#include "meshroll/json-util.h"
#include "meshroll/selector.h"
#include "meshroll/time-util.h"

#define MAX_DISRUPTED_PODS 2000
#define PDB_ACTOR "disruption-controller"

int sim_intstr_scaled(json_object *value, int64_t total, bool round_up, int64_t def, int64_t *ret)
{
        if (!value) {
                *ret = def;
                return 0;
        }
        if (json_object_is_type(value, json_type_int)) {
                *ret = json_object_get_int64(value);
                return 0;
        }
        if (!json_object_is_type(value, json_type_string))
                return -EINVAL;
        const char *s = json_object_get_string(value);
        size_t l = strlen(s);
        if (l < 2 || s[l - 1] != '%')
                return -EINVAL;
        int64_t pct = 0;
        for (size_t i = 0; i < l - 1; i++) {
                if (s[i] < '0' || s[i] > '9' || pct > 1000000)
                        return -EINVAL;
                pct = pct * 10 + (s[i] - '0');
        }
        if (total < 0)
                total = 0;
        *ret = round_up ? (pct * total + 99) / 100 : pct * total / 100;
        return 0;
}

int sim_pdb_compute(json_object *spec, int64_t pod_count, int64_t scale, int64_t healthy, SimPdbCounts *ret,
                    MrError *err)
{
        json_object *max_unavailable = mr_json_get(spec, "maxUnavailable", NULL);
        json_object *min_available = mr_json_get(spec, "minAvailable", NULL);
        SimPdbCounts out = { .current_healthy = healthy };
        int64_t v;

        if (max_unavailable && !json_object_is_type(max_unavailable, json_type_null)) {
                if (scale < 0)
                        return mr_error_set(err, -EINVAL, "found no controller with a scale for the selected pods");
                out.expected_pods = scale;
                if (sim_intstr_scaled(max_unavailable, scale, true, 0, &v) < 0)
                        return mr_error_set(err, -EINVAL, "invalid value for IntOrString: %s",
                                            mr_json_compact(max_unavailable));
                out.desired_healthy = MAX(scale - v, (int64_t)0);
        } else if (min_available && !json_object_is_type(min_available, json_type_null)) {
                if (json_object_is_type(min_available, json_type_int)) {
                        out.desired_healthy = json_object_get_int64(min_available);
                        out.expected_pods = pod_count;
                } else {
                        if (scale < 0)
                                return mr_error_set(err, -EINVAL,
                                                    "found no controller with a scale for the selected pods");
                        out.expected_pods = scale;
                        if (sim_intstr_scaled(min_available, scale, true, 0, &v) < 0)
                                return mr_error_set(err, -EINVAL, "invalid value for IntOrString: %s",
                                                    mr_json_compact(min_available));
                        out.desired_healthy = v;
                }
        }
        out.disruptions_allowed = healthy - out.desired_healthy;
        if (out.expected_pods <= 0 || out.disruptions_allowed <= 0)
                out.disruptions_allowed = 0;
        *ret = out;
        return 0;
}

/* policy/v1: a null selector matches nothing, {} everything. */
static int pdb_selector(json_object *pdb, MrSelector **ret)
{
        json_object *sel = mr_json_get(pdb, "spec", "selector", NULL);
        if (!sel || json_object_is_type(sel, json_type_null)) {
                *ret = NULL;
                return 0;
        }
        return mr_selector_from_json(sel, ret, NULL);
}

typedef struct PdbScan {
        SimStore *store;
        const MrSelector *selector;
        json_object *pods;      /* owned array of borrowed-then-copied summaries */
        json_object *scales;    /* owned: controller uid → scale */
        bool scale_failed;
        char failed_pod[256];
} PdbScan;

static int64_t replicas_of(json_object *o)
{
        int64_t v;
        return mr_json_get_int(&v, o, "spec", "replicas", NULL) == 0 ? v : 1;
}

/* getExpectedScale for one pod: records its controller's scale keyed by uid. */
static void scan_scale(PdbScan *p, json_object *pod, const char *ns)
{
        json_object *ref = sim_controller_ref(pod);
        if (!ref)
                return; /* unmanaged pods are ignored */
        const char *kind = mr_json_get_str(ref, "kind", NULL), *name = mr_json_get_str(ref, "name", NULL);
        const char *uid = mr_json_get_str(ref, "uid", NULL);
        json_object *owner = NULL;
        if (!kind || !name)
                goto fail;
        if (streq(kind, "ReplicaSet")) {
                owner = sim_store_get(p->store, &SIM_REPLICASETS, ns, name);
                if (!owner || (uid && !streq_ptr(uid, mr_json_get_str(owner, "metadata", "uid", NULL))))
                        goto fail;
                json_object *dref = sim_controller_ref(owner);
                if (dref && streq_ptr(mr_json_get_str(dref, "kind", NULL), "Deployment")) {
                        json_object *d = sim_store_get(p->store, &SIM_DEPLOYMENTS, ns,
                                                       strempty(mr_json_get_str(dref, "name", NULL)));
                        if (d)
                                owner = d;
                }
        } else if (streq(kind, "Deployment")) {
                owner = sim_store_get(p->store, &SIM_DEPLOYMENTS, ns, name);
        } else if (streq(kind, "StatefulSet") || streq(kind, "ReplicationController")) {
                const SimKind *k = sim_store_find_kind_by_kind(p->store,
                                                               streq(kind, "StatefulSet") ? "apps/v1" : "v1", kind);
                owner = k ? sim_store_get(p->store, k, ns, name) : NULL;
        }
        if (!owner)
                goto fail;
        const char *ouid = mr_json_get_str(owner, "metadata", "uid", NULL);
        json_object_object_add(p->scales, strempty(ouid), json_object_new_int64(replicas_of(owner)));
        return;
fail:
        if (!p->scale_failed) {
                p->scale_failed = true;
                snprintf(p->failed_pod, sizeof p->failed_pod, "%s",
                         strempty(mr_json_get_str(pod, "metadata", "name", NULL)));
        }
}

static int scan_pod(json_object *pod, void *userdata)
{
        PdbScan *p = userdata;
        if (!p->selector || !mr_selector_matches(p->selector, mr_json_get(pod, "metadata", "labels", NULL)))
                return 0;
        json_object *summary = json_object_new_object();
        if (!summary)
                return -ENOMEM;
        json_object_array_add(p->pods, summary);
        if (mr_json_set_str(summary, "name", mr_json_get_str(pod, "metadata", "name", NULL)) < 0 ||
            mr_json_set_bool(summary, "ready", sim_pod_is_ready(pod)) < 0 ||
            mr_json_set_bool(summary, "deleting", sim_obj_is_deleting(pod)) < 0)
                return -ENOMEM;
        scan_scale(p, pod, mr_json_get_str(pod, "metadata", "namespace", NULL));
        return 0;
}

static json_object *find_summary(json_object *pods, const char *name)
{
        size_t n = json_object_array_length(pods);
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(pods, i);
                if (streq_ptr(mr_json_get_str(e, "name", NULL), name))
                        return e;
        }
        return NULL;
}

int sim_pdb_sync(SimStore *s, const char *ns, const char *name, usec_t now, usec_t *ret_due)
{
        _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
        _cleanup_(json_object_putp) json_object *pods = NULL, *scales = NULL, *copy = NULL, *disrupted = NULL;
        usec_t due = 0;
        MrError err = {};
        int r;

        *ret_due = 0;
        json_object *pdb = sim_store_get(s, &SIM_PDBS, ns, name);
        if (!pdb || sim_obj_is_deleting(pdb))
                return 0;
        copy = mr_json_copy(pdb);
        pods = json_object_new_array();
        scales = json_object_new_object();
        disrupted = json_object_new_object();
        if (!copy || !pods || !scales || !disrupted)
                return -ENOMEM;
        json_object *status = mr_json_ensure_object(copy, "status", NULL);
        if (!status)
                return -ENOMEM;
        int64_t generation = 0;
        (void)mr_json_get_int(&generation, copy, "metadata", "generation", NULL);

        r = pdb_selector(copy, &sel);
        if (r < 0) {
                mr_error_set(&err, r, "invalid selector");
                goto fail_safe;
        }
        PdbScan scan = { .store = s, .selector = sel, .pods = pods, .scales = scales };
        r = sim_store_foreach_labeled(s, &SIM_PODS, ns, mr_json_get(copy, "spec", "selector", "matchLabels", NULL),
                                      scan_pod, &scan);
        if (r < 0)
                return r;

        /* buildDisruptedPodMap: drop entries for pods gone or deleting, and expired ones. */
        json_object *old = mr_json_get(status, "disruptedPods", NULL);
        if (old && json_object_is_type(old, json_type_object)) {
                json_object_object_foreach(old, pod_name, when) {
                        json_object *sum = find_summary(pods, pod_name);
                        usec_t t;
                        if (!sum || mr_json_get_bool(false, sum, "deleting", NULL))
                                continue;
                        if (!json_object_is_type(when, json_type_string) ||
                            kube_time_parse(json_object_get_string(when), &t) < 0)
                                continue;
                        if (t + SIM_PDB_DELETION_TIMEOUT <= now)
                                continue; /* the real controller emits a NotDeleted event here */
                        json_object_object_add(disrupted, pod_name, json_object_get(when));
                        if (due == 0 || t + SIM_PDB_DELETION_TIMEOUT < due)
                                due = t + SIM_PDB_DELETION_TIMEOUT;
                }
        }

        int64_t healthy = 0;
        size_t n = json_object_array_length(pods);
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(pods, i);
                if (mr_json_get_bool(false, e, "deleting", NULL))
                        continue;
                if (json_object_object_get_ex(disrupted, mr_json_get_str(e, "name", NULL), NULL))
                        continue;
                if (mr_json_get_bool(false, e, "ready", NULL))
                        healthy++;
        }
        int64_t scale = -1;
        if (!scan.scale_failed) {
                scale = 0;
                json_object_object_foreach(scales, uid, v) {
                        (void)uid;
                        scale += json_object_get_int64(v);
                }
        }
        SimPdbCounts counts;
        r = sim_pdb_compute(mr_json_get(copy, "spec", NULL), (int64_t)n, scale, healthy, &counts, &err);
        if (r < 0) {
                if (scan.scale_failed)
                        mr_error_set(&err, r, "found no controllers for pod \"%s\"", scan.failed_pod);
                goto fail_safe;
        }

        if (mr_json_set_int(status, "observedGeneration", generation) < 0 ||
            mr_json_set_int(status, "disruptionsAllowed", counts.disruptions_allowed) < 0 ||
            mr_json_set_int(status, "currentHealthy", counts.current_healthy) < 0 ||
            mr_json_set_int(status, "desiredHealthy", counts.desired_healthy) < 0 ||
            mr_json_set_int(status, "expectedPods", counts.expected_pods) < 0)
                return -ENOMEM;
        if (json_object_object_length(disrupted) > 0)
                json_object_object_add(status, "disruptedPods", TAKE_PTR(disrupted));
        else
                json_object_object_del(status, "disruptedPods");
        r = sim_set_condition(status, "DisruptionAllowed", counts.disruptions_allowed > 0 ? "True" : "False",
                              counts.disruptions_allowed > 0 ? "SufficientPods" : "InsufficientPods", "", now,
                              false);
        if (r < 0)
                return r;
        goto write;

fail_safe:
        if (mr_json_set_int(status, "disruptionsAllowed", 0) < 0)
                return -ENOMEM;
        r = sim_set_condition(status, "DisruptionAllowed", "False", "SyncFailed", err.message, now, false);
        if (r < 0)
                return r;
write:
        /* metav1.Condition carries the observedGeneration the status was computed for. */
        {
                int64_t og = 0;
                (void)mr_json_get_int(&og, status, "observedGeneration", NULL);
                json_object *conds = mr_json_get(status, "conditions", NULL);
                for (size_t i = 0; conds && i < json_object_array_length(conds); i++)
                        (void)mr_json_set_int(json_object_array_get_idx(conds, i), "observedGeneration", og);
        }
        *ret_due = due;
        r = sim_write_status(s, &SIM_PDBS, TAKE_PTR(copy), PDB_ACTOR);
        return r < 0 ? r : 0;
}

int sim_disruption_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due)
{
        return sim_pdb_sync(sim_controllers_store(c), ns, name, now, ret_due);
}

typedef struct PdbMatch {
        json_object *pod_labels;
        json_object *found;     /* borrowed: the first matching PDB */
        unsigned count;
} PdbMatch;

static int match_pdb(json_object *pdb, void *userdata)
{
        PdbMatch *m = userdata;
        _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
        if (pdb_selector(pdb, &sel) < 0 || !sel)
                return 0;
        if (!mr_selector_matches(sel, m->pod_labels))
                return 0;
        if (m->count++ == 0)
                m->found = pdb;
        return 0;
}

static bool pod_can_ignore_pdb(json_object *pod)
{
        const char *phase = mr_json_get_str(pod, "status", "phase", NULL);
        if (sim_obj_is_deleting(pod))
                return true;
        return streq_ptr(phase, "Succeeded") || streq_ptr(phase, "Failed") || streq_ptr(phase, "Pending");
}

int sim_eviction_admit_ex(SimStore *store, json_object *pod, SimEvictionDenial *ret_denial, MrError *err)
{
        const char *ns = mr_json_get_str(pod, "metadata", "namespace", NULL);
        const char *pod_name = mr_json_get_str(pod, "metadata", "name", NULL);
        char when[KUBE_TIME_MAX];
        int64_t generation = 0, observed = 0, allowed = 0, healthy = 0, desired = 0;
        int r;

        if (ret_denial)
                *ret_denial = (SimEvictionDenial){};
        if (!pod_name)
                return mr_error_set(err, -MR_EINVALID, "pod has no name");
        if (pod_can_ignore_pdb(pod))
                return 0;

        PdbMatch m = { .pod_labels = mr_json_get(pod, "metadata", "labels", NULL) };
        r = sim_store_foreach(store, &SIM_PDBS, ns, match_pdb, &m);
        if (r < 0)
                return r;
        if (m.count == 0)
                return 0;
        if (m.count > 1)
                return mr_error_set(err, -EIO,
                                    "This pod has more than one PodDisruptionBudget, which the eviction "
                                    "subresource does not support.");
        json_object *pdb = m.found;
        const char *pdb_name = strempty(mr_json_get_str(pdb, "metadata", "name", NULL));
        if (ret_denial)
                snprintf(ret_denial->pdb_name, sizeof ret_denial->pdb_name, "%s", pdb_name);

        (void)mr_json_get_int(&generation, pdb, "metadata", "generation", NULL);
        (void)mr_json_get_int(&observed, pdb, "status", "observedGeneration", NULL);
        (void)mr_json_get_int(&allowed, pdb, "status", "disruptionsAllowed", NULL);
        (void)mr_json_get_int(&healthy, pdb, "status", "currentHealthy", NULL);
        (void)mr_json_get_int(&desired, pdb, "status", "desiredHealthy", NULL);

        if (!sim_pod_is_ready(pod)) {
                if (streq_ptr(mr_json_get_str(pdb, "spec", "unhealthyPodEvictionPolicy", NULL), "AlwaysAllow"))
                        return 0;
                if (healthy >= desired && desired > 0)
                        return 0;
        }

        if (observed < generation) {
                if (ret_denial) {
                        snprintf(ret_denial->cause, sizeof ret_denial->cause,
                                 "The disruption budget %s is still being processed by the server.", pdb_name);
                        ret_denial->retry_after = 10;
                }
                return mr_error_set(err, -MR_ETOOMANY,
                                    "Cannot evict pod as it would violate the pod's disruption budget.");
        }
        if (allowed < 0)
                return mr_error_set(err, -MR_EFORBIDDEN, "pdb disruptions allowed is negative");
        json_object *dp = mr_json_get(pdb, "status", "disruptedPods", NULL);
        if (dp && json_object_is_type(dp, json_type_object) && json_object_object_length(dp) > MAX_DISRUPTED_PODS)
                return mr_error_set(err, -MR_EFORBIDDEN,
                                    "DisruptedPods map too big - too many evictions not confirmed by PDB controller");
        if (allowed == 0) {
                if (ret_denial)
                        snprintf(ret_denial->cause, sizeof ret_denial->cause,
                                 "The disruption budget %s needs %" PRId64 " healthy pods and has %" PRId64
                                 " currently",
                                 pdb_name, desired, healthy);
                return mr_error_set(err, -MR_ETOOMANY,
                                    "Cannot evict pod as it would violate the pod's disruption budget.");
        }

        _cleanup_(json_object_putp) json_object *copy = mr_json_copy(pdb);
        if (!copy)
                return -ENOMEM;
        json_object *status = mr_json_ensure_object(copy, "status", NULL);
        json_object *disrupted = mr_json_ensure_object(copy, "status", "disruptedPods", NULL);
        if (!status || !disrupted)
                return -ENOMEM;
        allowed--;
        if (mr_json_set_int(status, "disruptionsAllowed", allowed) < 0 ||
            mr_json_set_str(disrupted, pod_name, kube_time_format(sim_store_now(store), when)) < 0)
                return -ENOMEM;
        if (allowed == 0) {
                r = sim_set_condition(status, "DisruptionAllowed", "False", "InsufficientPods", "",
                                      sim_store_now(store), false);
                if (r < 0)
                        return r;
        }
        return sim_store_update(store, &SIM_PDBS, TAKE_PTR(copy), SIM_UPDATE_STATUS, "kube-apiserver", NULL, err);
}

int sim_eviction_admit(SimStore *store, json_object *pod, MrError *err)
{
        return sim_eviction_admit_ex(store, pod, NULL, err);
}
