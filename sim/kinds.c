/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kinds.c — the resource types meshroll-kubesim serves out of the box.
 *
 * One static SimKind per resource, with exactly the discovery data a real
 * 1.32 API server publishes for it (singular name, short names, categories,
 * verbs, subresources), because kubectl builds its RESTMapper and short-name
 * expander from that data (reference/kubernetes-api.md §2.4): "ds", "po",
 * "no" only work when advertised. The order of the table is the order of
 * discovery: the core group first, then the groups in the order a real
 * server lists them.
 *
 * Istio's networking kinds are CRDs on a real cluster; they are built in
 * here so a scenario need not carry the CRD manifests (a CRD that declares
 * them later is accepted and changes nothing).
 *
 * The field-selector getter lists the fields the real registry accepts per
 * resource (k/k:pkg/apis/core/v1/conversion.go AddFieldLabelConversionFunc).
 */
#include <stdio.h>

#include "meshroll/json-util.h"
#include "store.h"

#define VERBS_ALL "create delete deletecollection get list patch update watch"
#define VERBS_NS "create delete get list patch update watch"

const SimKind SIM_NAMESPACES = {
        .group = "", .version = "v1", .resource = "namespaces", .singular = "namespace", .kind = "Namespace",
        .short_names = {"ns"}, .namespaced = false, .has_status = true, .subresources = {"finalize"},
        .verbs = VERBS_NS,
};
const SimKind SIM_NODES = {
        .group = "", .version = "v1", .resource = "nodes", .singular = "node", .kind = "Node",
        .short_names = {"no"}, .namespaced = false, .has_status = true, .subresources = {"proxy"},
        .verbs = VERBS_ALL,
};
const SimKind SIM_PODS = {
        .group = "", .version = "v1", .resource = "pods", .singular = "pod", .kind = "Pod",
        .short_names = {"po"}, .categories = {"all"}, .namespaced = true, .has_status = true,
        .subresources = {"eviction"}, .verbs = VERBS_ALL,
};
const SimKind SIM_SERVICES = {
        .group = "", .version = "v1", .resource = "services", .singular = "service", .kind = "Service",
        .short_names = {"svc"}, .categories = {"all"}, .namespaced = true, .has_status = true,
        .verbs = "create delete deletecollection get list patch update watch",
};
const SimKind SIM_ENDPOINTS = {
        .group = "", .version = "v1", .resource = "endpoints", .singular = "endpoints", .kind = "Endpoints",
        .short_names = {"ep"}, .namespaced = true, .verbs = VERBS_ALL,
};
const SimKind SIM_EVENTS = {
        .group = "", .version = "v1", .resource = "events", .singular = "event", .kind = "Event",
        .short_names = {"ev"}, .namespaced = true, .verbs = VERBS_ALL,
};
const SimKind SIM_CONFIGMAPS = {
        .group = "", .version = "v1", .resource = "configmaps", .singular = "configmap", .kind = "ConfigMap",
        .short_names = {"cm"}, .namespaced = true, .verbs = VERBS_ALL,
};
static const SimKind SIM_SECRETS = {
        .group = "", .version = "v1", .resource = "secrets", .singular = "secret", .kind = "Secret",
        .namespaced = true, .verbs = VERBS_ALL,
};
static const SimKind SIM_SERVICEACCOUNTS = {
        .group = "", .version = "v1", .resource = "serviceaccounts", .singular = "serviceaccount",
        .kind = "ServiceAccount", .short_names = {"sa"}, .namespaced = true, .verbs = VERBS_ALL,
};
const SimKind SIM_CONTROLLERREVISIONS = {
        .group = "apps", .version = "v1", .resource = "controllerrevisions", .singular = "controllerrevision",
        .kind = "ControllerRevision", .namespaced = true, .verbs = VERBS_ALL,
};
const SimKind SIM_DAEMONSETS = {
        .group = "apps", .version = "v1", .resource = "daemonsets", .singular = "daemonset", .kind = "DaemonSet",
        .short_names = {"ds"}, .categories = {"all"}, .namespaced = true, .has_status = true,
        .verbs = VERBS_ALL, .generation = true,
};
const SimKind SIM_DEPLOYMENTS = {
        .group = "apps", .version = "v1", .resource = "deployments", .singular = "deployment",
        .kind = "Deployment", .short_names = {"deploy"}, .categories = {"all"}, .namespaced = true,
        .has_status = true, .verbs = VERBS_ALL, .generation = true,
};
const SimKind SIM_REPLICASETS = {
        .group = "apps", .version = "v1", .resource = "replicasets", .singular = "replicaset",
        .kind = "ReplicaSet", .short_names = {"rs"}, .categories = {"all"}, .namespaced = true,
        .has_status = true, .verbs = VERBS_ALL, .generation = true,
};
const SimKind SIM_EVENTS_V1 = {
        .group = "events.k8s.io", .version = "v1", .resource = "events", .singular = "event", .kind = "Event",
        .short_names = {"ev"}, .namespaced = true, .verbs = VERBS_ALL,
};
const SimKind SIM_PDBS = {
        .group = "policy", .version = "v1", .resource = "poddisruptionbudgets", .singular = "poddisruptionbudget",
        .kind = "PodDisruptionBudget", .short_names = {"pdb"}, .namespaced = true, .has_status = true,
        .verbs = VERBS_ALL, .generation = true,
};
const SimKind SIM_MUTATINGWEBHOOKS = {
        .group = "admissionregistration.k8s.io", .version = "v1", .resource = "mutatingwebhookconfigurations",
        .singular = "mutatingwebhookconfiguration", .kind = "MutatingWebhookConfiguration",
        .namespaced = false, .verbs = VERBS_ALL, .generation = true,
};
static const SimKind SIM_VALIDATINGWEBHOOKS = {
        .group = "admissionregistration.k8s.io", .version = "v1", .resource = "validatingwebhookconfigurations",
        .singular = "validatingwebhookconfiguration", .kind = "ValidatingWebhookConfiguration",
        .namespaced = false, .verbs = VERBS_ALL, .generation = true,
};
const SimKind SIM_CRDS = {
        .group = "apiextensions.k8s.io", .version = "v1", .resource = "customresourcedefinitions",
        .singular = "customresourcedefinition", .kind = "CustomResourceDefinition",
        .short_names = {"crd", "crds"}, .namespaced = false, .has_status = true, .verbs = VERBS_ALL,
        .generation = true,
};
const SimKind SIM_LEASES = {
        .group = "coordination.k8s.io", .version = "v1", .resource = "leases", .singular = "lease",
        .kind = "Lease", .namespaced = true, .verbs = VERBS_ALL, .require_rv = true,
};
const SimKind SIM_DESTINATIONRULES = {
        .group = "networking.istio.io", .version = "v1", .resource = "destinationrules",
        .singular = "destinationrule", .kind = "DestinationRule", .short_names = {"dr"},
        .categories = {"istio-io", "networking-istio-io"}, .namespaced = true, .has_status = true,
        .verbs = VERBS_ALL, .generation = true, .require_rv = true,
};
const SimKind SIM_VIRTUALSERVICES = {
        .group = "networking.istio.io", .version = "v1", .resource = "virtualservices",
        .singular = "virtualservice", .kind = "VirtualService", .short_names = {"vs"},
        .categories = {"istio-io", "networking-istio-io"}, .namespaced = true, .has_status = true,
        .verbs = VERBS_ALL, .generation = true, .require_rv = true,
};

const SimKind *const sim_builtin_kinds[] = {
        /* core/v1 */
        &SIM_CONFIGMAPS, &SIM_ENDPOINTS, &SIM_EVENTS, &SIM_NAMESPACES, &SIM_NODES, &SIM_PODS, &SIM_SECRETS,
        &SIM_SERVICEACCOUNTS, &SIM_SERVICES,
        /* groups, in a real server's discovery order */
        &SIM_CONTROLLERREVISIONS, &SIM_DAEMONSETS, &SIM_DEPLOYMENTS, &SIM_REPLICASETS, &SIM_EVENTS_V1, &SIM_PDBS,
        &SIM_MUTATINGWEBHOOKS, &SIM_VALIDATINGWEBHOOKS, &SIM_CRDS, &SIM_LEASES, &SIM_DESTINATIONRULES,
        &SIM_VIRTUALSERVICES, NULL,
};

char *sim_kind_group_resource(const SimKind *k, char *buf, size_t size)
{
        if (isempty(k->group))
                snprintf(buf, size, "%s", k->resource);
        else
                snprintf(buf, size, "%s.%s", k->resource, k->group);
        return buf;
}

char *sim_kind_api_version(const SimKind *k, char *buf, size_t size)
{
        if (isempty(k->group))
                snprintf(buf, size, "%s", k->version);
        else
                snprintf(buf, size, "%s/%s", k->group, k->version);
        return buf;
}

/* A string field, "" when absent (a supported field that is unset matches ""). */
static const char *str_or_empty(json_object *obj, const char *a, const char *b)
{
        const char *v = obj ? mr_json_get_str(obj, a, b, NULL) : NULL;
        return v ? v : "";
}

static const char *pod_field(json_object *obj, const char *field)
{
        static const char *const spec_fields[] = {"nodeName", "restartPolicy", "schedulerName",
                                                  "serviceAccountName"};
        static const char *const status_fields[] = {"phase", "podIP", "nominatedNodeName"};
        const char *rest;

        if ((rest = startswith(field, "spec."))) {
                for (size_t i = 0; i < ELEMENTSOF(spec_fields); i++)
                        if (streq(rest, spec_fields[i]))
                                return str_or_empty(obj, "spec", rest);
                if (streq(rest, "hostNetwork"))
                        return mr_json_get_bool(false, obj, "spec", "hostNetwork", NULL) ? "true" : "false";
        } else if ((rest = startswith(field, "status."))) {
                for (size_t i = 0; i < ELEMENTSOF(status_fields); i++)
                        if (streq(rest, status_fields[i]))
                                return str_or_empty(obj, "status", rest);
        }
        return NULL;
}

static const char *event_field(json_object *obj, const char *field)
{
        static const char *const involved[] = {"kind", "namespace", "name", "uid",
                                               "apiVersion", "resourceVersion", "fieldPath"};
        static const char *const top[] = {"reason", "reportingComponent", "type"};
        const char *rest;

        if ((rest = startswith(field, "involvedObject."))) {
                for (size_t i = 0; i < ELEMENTSOF(involved); i++)
                        if (streq(rest, involved[i]))
                                return str_or_empty(obj, "involvedObject", rest);
                return NULL;
        }
        for (size_t i = 0; i < ELEMENTSOF(top); i++)
                if (streq(field, top[i]))
                        return obj ? strempty(mr_json_get_str(obj, field, NULL)) : "";
        if (streq(field, "source"))
                return str_or_empty(obj, "source", "component");
        return NULL;
}

const char *sim_kind_field(json_object *obj, const char *field, void *userdata)
{
        const SimKind *k = userdata;

        if (streq(field, "metadata.name"))
                return str_or_empty(obj, "metadata", "name");
        if (streq(field, "metadata.namespace"))
                return k && !k->namespaced ? "" : str_or_empty(obj, "metadata", "namespace");
        if (!k)
                return NULL;
        if (k == &SIM_PODS)
                return pod_field(obj, field);
        if (k == &SIM_NODES && streq(field, "spec.unschedulable"))
                return mr_json_get_bool(false, obj, "spec", "unschedulable", NULL) ? "true" : "false";
        if (k == &SIM_EVENTS)
                return event_field(obj, field);
        if (k == &SIM_NAMESPACES && streq(field, "status.phase"))
                return str_or_empty(obj, "status", "phase");
        if (k == &SIM_SECRETS && streq(field, "type"))
                return obj ? strempty(mr_json_get_str(obj, "type", NULL)) : "";
        return NULL;
}
