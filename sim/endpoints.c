/* SPDX-License-Identifier: Apache-2.0 */
/*
 * endpoints.c — the Endpoints controller (k/k pkg/controller/endpoint).
 *
 * For every Service with a selector, the Endpoints object of the same name
 * lists the matching pods that have a podIP and are not being deleted:
 * Ready ones under subsets[0].addresses, the others under
 * notReadyAddresses (all under addresses with
 * spec.publishNotReadyAddresses). Each address carries ip, nodeName and a
 * targetRef to the pod; addresses are sorted by IP so the object only
 * changes when membership does. Ports come from the Service: a numeric
 * targetPort (or the port itself) is used as is, a named one is looked up
 * in the pods' container ports (first pod that has it). A Service without a
 * selector is left alone (its Endpoints are the user's); when a Service
 * goes, the Endpoints the controller made go with it. The blue/green
 * gateway switch in meshroll is exactly a selector change seen here.
 */
#include <stdio.h>

#include "controllers-internal.h"
#include "meshroll/json-util.h"
#include "meshroll/selector.h"

#define ACTOR "endpoint-controller"
#define MANAGED_LABEL "endpoints.kubernetes.io/managed-by"

typedef struct EpScan {
        const MrSelector *sel;
        bool publish_not_ready;
        json_object *ready, *not_ready; /* arrays of addresses */
        json_object *pods;              /* borrowed pods that matched (for named ports) */
} EpScan;

static json_object *address_for(json_object *pod)
{
        json_object *a = json_object_new_object();
        json_object *ref = json_object_new_object();
        if (!a || !ref)
                goto oom;
        json_object_object_add(a, "targetRef", ref);
        if (mr_json_set_str(a, "ip", mr_json_get_str(pod, "status", "podIP", NULL)) < 0 ||
            mr_json_set_str(ref, "kind", "Pod") < 0 ||
            mr_json_set_str(ref, "namespace", mr_json_get_str(pod, "metadata", "namespace", NULL)) < 0 ||
            mr_json_set_str(ref, "name", mr_json_get_str(pod, "metadata", "name", NULL)) < 0 ||
            mr_json_set_str(ref, "uid", mr_json_get_str(pod, "metadata", "uid", NULL)) < 0)
                goto oom2;
        const char *node = mr_json_get_str(pod, "spec", "nodeName", NULL);
        if (node && mr_json_set_str(a, "nodeName", node) < 0)
                goto oom2;
        return a;
oom:
        json_object_put(ref);
oom2:
        json_object_put(a);
        return NULL;
}

static int scan_pod(json_object *pod, void *userdata)
{
        EpScan *e = userdata;
        if (!mr_selector_matches(e->sel, mr_json_get(pod, "metadata", "labels", NULL)))
                return 0;
        if (sim_obj_is_deleting(pod) || isempty(mr_json_get_str(pod, "status", "podIP", NULL)))
                return 0;
        const char *phase = mr_json_get_str(pod, "status", "phase", NULL);
        if (streq_ptr(phase, "Succeeded") || streq_ptr(phase, "Failed"))
                return 0;
        json_object *a = address_for(pod);
        if (!a)
                return -ENOMEM;
        json_object_array_add(e->publish_not_ready || sim_pod_is_ready(pod) ? e->ready : e->not_ready, a);
        json_object_array_add(e->pods, json_object_get(pod));
        return 0;
}

static int ip_cmp(const void *a, const void *b)
{
        const char *x = strempty(mr_json_get_str(*(json_object *const *)a, "ip", NULL));
        const char *y = strempty(mr_json_get_str(*(json_object *const *)b, "ip", NULL));
        size_t lx = strlen(x), ly = strlen(y);
        return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
}

static int64_t named_port(json_object *pods, const char *port_name)
{
        for (size_t i = 0; i < json_object_array_length(pods); i++) {
                json_object *cs = mr_json_get(json_object_array_get_idx(pods, i), "spec", "containers", NULL);
                for (size_t j = 0; cs && json_object_is_type(cs, json_type_array) && j < json_object_array_length(cs); j++) {
                        json_object *ports = mr_json_get(json_object_array_get_idx(cs, j), "ports", NULL);
                        for (size_t k = 0; ports && json_object_is_type(ports, json_type_array) &&
                                           k < json_object_array_length(ports);
                             k++) {
                                json_object *p = json_object_array_get_idx(ports, k);
                                int64_t v;
                                if (streq_ptr(mr_json_get_str(p, "name", NULL), port_name) &&
                                    mr_json_get_int(&v, p, "containerPort", NULL) == 0)
                                        return v;
                        }
                }
        }
        return -1;
}

static json_object *endpoint_ports(json_object *svc, json_object *pods)
{
        json_object *out = json_object_new_array();
        json_object *ports = mr_json_get(svc, "spec", "ports", NULL);
        if (!out)
                return NULL;
        for (size_t i = 0; ports && json_object_is_type(ports, json_type_array) && i < json_object_array_length(ports); i++) {
                json_object *sp = json_object_array_get_idx(ports, i);
                json_object *target = mr_json_get(sp, "targetPort", NULL);
                int64_t port = -1;
                if (target && json_object_is_type(target, json_type_string))
                        port = named_port(pods, json_object_get_string(target));
                else if (target && json_object_is_type(target, json_type_int))
                        port = json_object_get_int64(target);
                else
                        (void)mr_json_get_int(&port, sp, "port", NULL);
                if (port < 0)
                        continue;
                json_object *p = json_object_new_object();
                if (!p || json_object_array_add(out, p) < 0) {
                        json_object_put(p);
                        json_object_put(out);
                        return NULL;
                }
                const char *name = mr_json_get_str(sp, "name", NULL);
                const char *proto = mr_json_get_str(sp, "protocol", NULL);
                if ((name && mr_json_set_str(p, "name", name) < 0) || mr_json_set_int(p, "port", port) < 0 ||
                    mr_json_set_str(p, "protocol", proto ? proto : "TCP") < 0) {
                        json_object_put(out);
                        return NULL;
                }
        }
        return out;
}

int sim_endpoints_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due)
{
        SimStore *s = sim_controllers_store(c);
        _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
        _cleanup_(json_object_putp) json_object *ready = NULL, *not_ready = NULL, *pods = NULL, *ep = NULL;
        int r;

        *ret_due = 0;
        json_object *svc = sim_store_get(s, &SIM_SERVICES, ns, name);
        json_object *existing = sim_store_get(s, &SIM_ENDPOINTS, ns, name);
        if (!svc || sim_obj_is_deleting(svc)) {
                if (existing && streq_ptr(mr_json_get_str(existing, "metadata", "labels", MANAGED_LABEL, NULL), ACTOR))
                        return MIN(sim_store_delete(s, &SIM_ENDPOINTS, ns, name, 0, NULL, NULL, ACTOR, NULL, NULL), 0);
                return 0;
        }
        json_object *selector = mr_json_get(svc, "spec", "selector", NULL);
        if (!selector || !json_object_is_type(selector, json_type_object) || json_object_object_length(selector) == 0)
                return 0;
        _cleanup_(json_object_putp) json_object *ls = json_object_new_object();
        if (!ls)
                return -ENOMEM;
        json_object_object_add(ls, "matchLabels", json_object_get(selector));
        r = mr_selector_from_json(ls, &sel, NULL);
        if (r < 0)
                return 0;

        ready = json_object_new_array();
        not_ready = json_object_new_array();
        pods = json_object_new_array();
        if (!ready || !not_ready || !pods)
                return -ENOMEM;
        EpScan scan = { .sel = sel, .ready = ready, .not_ready = not_ready, .pods = pods,
                        .publish_not_ready = mr_json_get_bool(false, svc, "spec", "publishNotReadyAddresses", NULL) };
        r = sim_store_foreach_labeled(s, &SIM_PODS, ns, selector, scan_pod, &scan);
        if (r < 0)
                return r;
        json_object_array_sort(ready, ip_cmp);
        json_object_array_sort(not_ready, ip_cmp);

        ep = existing ? mr_json_copy(existing) : json_object_new_object();
        if (!ep)
                return -ENOMEM;
        json_object *meta = mr_json_ensure_object(ep, "metadata", NULL);
        json_object *labels = mr_json_ensure_object(ep, "metadata", "labels", NULL);
        json_object *subsets = json_object_new_array();
        if (!meta || !labels || !subsets)
                return -ENOMEM;
        if (mr_json_set_str(ep, "apiVersion", "v1") < 0 || mr_json_set_str(ep, "kind", "Endpoints") < 0 ||
            mr_json_set_str(meta, "name", name) < 0 || mr_json_set_str(meta, "namespace", ns) < 0 ||
            mr_json_set_str(labels, MANAGED_LABEL, ACTOR) < 0) {
                json_object_put(subsets);
                return -ENOMEM;
        }
        if (json_object_array_length(ready) + json_object_array_length(not_ready) > 0) {
                json_object *subset = json_object_new_object();
                json_object *ports = endpoint_ports(svc, pods);
                if (!subset || !ports || json_object_array_add(subsets, subset) < 0) {
                        json_object_put(subset);
                        json_object_put(ports);
                        json_object_put(subsets);
                        return -ENOMEM;
                }
                if (json_object_array_length(ready) > 0)
                        json_object_object_add(subset, "addresses", TAKE_PTR(ready));
                if (json_object_array_length(not_ready) > 0)
                        json_object_object_add(subset, "notReadyAddresses", TAKE_PTR(not_ready));
                json_object_object_add(subset, "ports", ports);
        }
        json_object_object_add(ep, "subsets", subsets);

        if (!existing)
                return MIN(sim_store_create(s, &SIM_ENDPOINTS, TAKE_PTR(ep), ACTOR, NULL, NULL), 0);
        return MIN(sim_write_object(s, &SIM_ENDPOINTS, TAKE_PTR(ep), ACTOR), 0);
}
