/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gc.c — the garbage collector, background propagation only.
 *
 * An object whose ownerReferences all name owners that no longer exist
 * (looked up by apiVersion/kind/name in the same namespace, or cluster
 * scope, and compared by uid) is deleted, as the real collector does with
 * propagationPolicy Background: deleting a Deployment removes its
 * ReplicaSets, whose removal removes their pods, one level per pass. An
 * owner that is itself being deleted still exists (foreground deletion is
 * not simulated). Pods are deleted with their own grace period, so the
 * kubelet terminates them as usual.
 *
 * The controller is keyed by namespace: any deletion queues its namespace
 * (or every namespace, for a cluster-scoped owner), and so does a write of
 * an object none of whose owners exists (sim_gc_has_dangling_owner, checked
 * by the controllers' observer on the stored JSON of the owners). Those are
 * the only ways an orphan appears, so the periodic resync leaves the
 * collector out: it used to parse every object of the cluster every 30 s.
 * An owner's existence is checked on its stored JSON (name lookup, then its
 * uid), without parsing it.
 */
#include <stdio.h>

#include "controllers-internal.h"
#include "meshroll/json-util.h"

#define ACTOR "garbage-collector"

/* Kinds whose objects commonly carry ownerReferences. */
static const SimKind *const dependent_kinds[] = {
        &SIM_PODS, &SIM_REPLICASETS, &SIM_CONTROLLERREVISIONS, &SIM_DEPLOYMENTS, &SIM_DAEMONSETS,
        &SIM_SERVICES, &SIM_ENDPOINTS, &SIM_CONFIGMAPS, &SIM_PDBS,
};

typedef struct GcScan {
        SimStore *s;
        json_object *orphans; /* array of [ns, name] for the current kind */
} GcScan;

static bool owner_exists(SimStore *s, json_object *ref, const char *ns)
{
        const char *api = mr_json_get_str(ref, "apiVersion", NULL), *kind = mr_json_get_str(ref, "kind", NULL);
        const char *name = mr_json_get_str(ref, "name", NULL), *uid = mr_json_get_str(ref, "uid", NULL);
        if (!api || !kind || !name)
                return true; /* malformed: never collect on a guess */
        const SimKind *k = sim_store_find_kind_by_kind(s, api, kind);
        if (!k)
                return true; /* unknown kind: the real collector leaves it too */
        /* The owner as stored, unparsed: its JSON holds "uid":"<uid>" as its own metadata.uid. */
        const char *owner = sim_store_get_json(s, k, k->namespaced ? ns : NULL, name, NULL);
        if (!owner || !uid)
                return owner != NULL;
        char needle[128];
        snprintf(needle, sizeof needle, "\"uid\":\"%s\"", uid);
        return strstr(owner, needle) != NULL;
}

bool sim_gc_has_dangling_owner(SimStore *s, json_object *obj)
{
        json_object *refs = mr_json_get(obj, "metadata", "ownerReferences", NULL);
        const char *ns = mr_json_get_str(obj, "metadata", "namespace", NULL);
        if (!refs || !json_object_is_type(refs, json_type_array) || json_object_array_length(refs) == 0)
                return false;
        for (size_t i = 0; i < json_object_array_length(refs); i++)
                if (owner_exists(s, json_object_array_get_idx(refs, i), ns))
                        return false;
        return true;
}

/* An object's check, on its parsed tree. */
static int scan_object(GcScan *g, json_object *obj)
{
        json_object *refs = mr_json_get(obj, "metadata", "ownerReferences", NULL);
        if (!refs || !json_object_is_type(refs, json_type_array) || json_object_array_length(refs) == 0 ||
            sim_obj_is_deleting(obj))
                return 0;
        const char *ns = mr_json_get_str(obj, "metadata", "namespace", NULL);
        for (size_t i = 0; i < json_object_array_length(refs); i++)
                if (owner_exists(g->s, json_object_array_get_idx(refs, i), ns))
                        return 0;
        json_object *e = json_object_new_array();
        if (!e || json_object_array_add(g->orphans, e) < 0) {
                json_object_put(e);
                return -ENOMEM;
        }
        json_object_array_add(e, ns ? json_object_new_string(ns) : NULL);
        json_object_array_add(e, json_object_new_string(strempty(mr_json_get_str(obj, "metadata", "name", NULL))));
        return 0;
}

/*
 * Objects are walked as stored: only those whose JSON names ownerReferences
 * are parsed, each under a store mark released at once, so a resync over
 * 100,000 pods never holds more than one tree.
 */
static int scan(const SimRaw *raw, void *userdata)
{
        GcScan *g = userdata;
        if (!strstr(raw->json, "\"ownerReferences\""))
                return 0;
        size_t mark = sim_store_mark(g->s);
        json_object *obj = sim_store_raw_object(g->s, raw);
        int r = obj ? scan_object(g, obj) : -ENOMEM;
        sim_store_release(g->s, mark);
        return r;
}

int sim_gc_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due)
{
        SimStore *s = sim_controllers_store(c);
        *ret_due = 0;
        for (size_t i = 0; i < ELEMENTSOF(dependent_kinds); i++) {
                const SimKind *k = dependent_kinds[i];
                _cleanup_(json_object_putp) json_object *orphans = json_object_new_array();
                GcScan g = { .s = s, .orphans = orphans };
                if (!orphans)
                        return -ENOMEM;
                int r = sim_store_foreach_raw(s, k, k->namespaced ? ns : NULL, NULL, NULL, scan, &g);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < json_object_array_length(orphans); j++) {
                        json_object *e = json_object_array_get_idx(orphans, j);
                        json_object *ons = json_object_array_get_idx(e, 0);
                        r = sim_store_delete(s, k, ons ? json_object_get_string(ons) : NULL,
                                             json_object_get_string(json_object_array_get_idx(e, 1)), -1, NULL, NULL,
                                             ACTOR, NULL, NULL);
                        if (r < 0 && r != -ENOENT)
                                return r;
                }
        }
        return 0;
}
