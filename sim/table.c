/* SPDX-License-Identifier: Apache-2.0 */
/*
 * table.c — server-side printing: the meta.k8s.io/v1 Table that
 * `kubectl get` asks for (reference §2.8).
 *
 * One printer per resource, with the column names, types, priorities and
 * cell rules of the real server's printers (k/k:pkg/printers/internalversion/
 * printers.go), so the simulator's `kubectl get` output reads like a real
 * cluster's: columns with priority 1 appear only with -o wide (kubectl
 * filters; the server always sends them). Kinds without a printer get
 * NAME and a CRD's additionalPrinterColumns (simple ".a.b.c" JSON paths),
 * or NAME and AGE when the CRD declares none.
 */
#include <inttypes.h>
#include <stdio.h>

#include "api.h"
#include "meshroll/json-util.h"
#include "meshroll/time-util.h"

typedef struct Column {
        const char *name, *type, *format;
        int priority;
        const char *description;
} Column;

typedef struct Printer {
        const SimKind *kind;
        const Column *columns;
        size_t n_columns;
        void (*row)(json_object *obj, json_object *cells, usec_t now);
} Printer;

char *sim_human_duration(usec_t d, char *buf, size_t size)
{
        uint64_t s = d / USEC_PER_SEC, m = s / 60, h = m / 60;

        if (s < 120)
                snprintf(buf, size, "%" PRIu64 "s", s);
        else if (m < 10)
                s % 60 ? snprintf(buf, size, "%" PRIu64 "m%" PRIu64 "s", m, s % 60) : snprintf(buf, size, "%" PRIu64 "m", m);
        else if (m < 180)
                snprintf(buf, size, "%" PRIu64 "m", m);
        else if (h < 8)
                m % 60 ? snprintf(buf, size, "%" PRIu64 "h%" PRIu64 "m", h, m % 60) : snprintf(buf, size, "%" PRIu64 "h", h);
        else if (h < 48)
                snprintf(buf, size, "%" PRIu64 "h", h);
        else if (h < 24 * 8)
                h % 24 ? snprintf(buf, size, "%" PRIu64 "d%" PRIu64 "h", h / 24, h % 24) : snprintf(buf, size, "%" PRIu64 "d", h / 24);
        else if (h < 24 * 365 * 2)
                snprintf(buf, size, "%" PRIu64 "d", h / 24);
        else if (h < 24 * 365 * 8)
                (h / 24) % 365 ? snprintf(buf, size, "%" PRIu64 "y%" PRIu64 "d", h / 24 / 365, (h / 24) % 365)
                               : snprintf(buf, size, "%" PRIu64 "y", h / 24 / 365);
        else
                snprintf(buf, size, "%" PRIu64 "y", h / 24 / 365);
        return buf;
}

/* ---- cells ---- */

static void add_str(json_object *cells, const char *s)
{
        json_object_array_add(cells, json_object_new_string(s ? s : ""));
}

static void add_int(json_object *cells, int64_t v)
{
        json_object_array_add(cells, json_object_new_int64(v));
}

static int64_t get_int(json_object *o, const char *a, const char *b)
{
        int64_t v = 0;
        (void)mr_json_get_int(&v, o, a, b, NULL);
        return v;
}

static const char *or_none(const char *s)
{
        return isempty(s) ? "<none>" : s;
}

static void add_age_of(json_object *cells, const char *timestamp, usec_t now)
{
        usec_t t;
        char buf[32];
        if (!timestamp || kube_time_parse(timestamp, &t) < 0) {
                add_str(cells, "<unknown>");
                return;
        }
        if (t > now + USEC_PER_SEC) {
                add_str(cells, "<invalid>");
                return;
        }
        add_str(cells, sim_human_duration(now > t ? now - t : 0, buf, sizeof(buf)));
}

static void add_age(json_object *cells, json_object *obj, usec_t now)
{
        add_age_of(cells, mr_json_get_str(obj, "metadata", "creationTimestamp", NULL), now);
}

static void add_name(json_object *cells, json_object *obj)
{
        add_str(cells, mr_json_get_str(obj, "metadata", "name", NULL));
}

/* "k1=v1,k2=v2" of a string map, or "<none>". */
static void add_map(json_object *cells, json_object *map)
{
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        bool first = true;
        if (!f)
                return add_str(cells, "");
        if (map && json_object_is_type(map, json_type_object)) {
                json_object_object_foreach(map, k, v) {
                        fprintf(f, "%s%s=%s", first ? "" : ",", k, json_object_get_string(v));
                        first = false;
                }
        }
        fclose(f);
        add_str(cells, first ? "<none>" : buf);
        free(buf);
}

/* Comma-joined field of each element of a list (container names, images). */
static void add_list_field(json_object *cells, json_object *list, const char *field)
{
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return add_str(cells, "");
        for (size_t i = 0; list && json_object_is_type(list, json_type_array) && i < json_object_array_length(list); i++)
                fprintf(f, "%s%s", i ? "," : "", strempty(mr_json_get_str(json_object_array_get_idx(list, i), field, NULL)));
        fclose(f);
        add_str(cells, buf);
        free(buf);
}

static void add_selector(json_object *cells, json_object *sel)
{
        _cleanup_(mr_selector_freep) MrSelector *s = NULL;
        _cleanup_free_ char *str = NULL;
        if (!sel || mr_selector_from_json(sel, &s, NULL) < 0 || !(str = mr_selector_to_string(s)))
                return add_str(cells, "<none>");
        add_str(cells, isempty(str) ? "<none>" : str);
}

static void add_workload_wide(json_object *cells, json_object *obj)
{
        json_object *containers = mr_json_get(obj, "spec", "template", "spec", "containers", NULL);
        add_list_field(cells, containers, "name");
        add_list_field(cells, containers, "image");
        add_selector(cells, mr_json_get(obj, "spec", "selector", NULL));
}

static json_object *condition(json_object *obj, const char *type)
{
        json_object *conds = mr_json_get(obj, "status", "conditions", NULL);
        for (size_t i = 0; conds && json_object_is_type(conds, json_type_array) && i < json_object_array_length(conds); i++) {
                json_object *c = json_object_array_get_idx(conds, i);
                if (streq_ptr(mr_json_get_str(c, "type", NULL), type))
                        return c;
        }
        return NULL;
}

/* ---- printers ---- */

#define NAME_COL {"Name", "string", "name", 0, "Name must be unique within a namespace."}
#define AGE_COL {"Age", "string", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."}

static const Column pod_columns[] = {
        NAME_COL,
        {"Ready", "string", "", 0, "The aggregate readiness state of this pod for accepting traffic."},
        {"Status", "string", "", 0, "The aggregate status of the containers in this pod."},
        {"Restarts", "string", "", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."},
        AGE_COL,
        {"IP", "string", "", 1, "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."},
        {"Node", "string", "", 1, "NodeName is a request to schedule this pod onto a specific node."},
        {"Nominated Node", "string", "", 1, "nominatedNodeName is set only when this pod preempts other pods on the node."},
        {"Readiness Gates", "string", "", 1, "If specified, all readiness gates will be evaluated for pod readiness."},
};

static void pod_row(json_object *pod, json_object *cells, usec_t now)
{
        json_object *statuses = mr_json_get(pod, "status", "containerStatuses", NULL);
        json_object *containers = mr_json_get(pod, "spec", "containers", NULL);
        json_object *gates = mr_json_get(pod, "spec", "readinessGates", NULL);
        const char *reason = mr_json_get_str(pod, "status", "reason", NULL);
        const char *last_finished = NULL;
        size_t total = containers && json_object_is_type(containers, json_type_array) ? json_object_array_length(containers) : 0;
        int64_t ready = 0, restarts = 0;
        char buf[128], age[32];

        if (!reason)
                reason = mr_json_get_str(pod, "status", "phase", NULL);
        for (size_t i = 0; statuses && json_object_is_type(statuses, json_type_array) && i < json_object_array_length(statuses); i++) {
                json_object *cs = json_object_array_get_idx(statuses, i);
                const char *waiting = mr_json_get_str(cs, "state", "waiting", "reason", NULL);
                const char *terminated = mr_json_get_str(cs, "state", "terminated", "reason", NULL);
                const char *finished = mr_json_get_str(cs, "lastState", "terminated", "finishedAt", NULL);
                restarts += get_int(cs, "restartCount", NULL);
                if (finished && (!last_finished || strcmp(finished, last_finished) > 0))
                        last_finished = finished;
                if (!isempty(waiting))
                        reason = waiting;
                else if (!isempty(terminated))
                        reason = terminated;
                else if (mr_json_get_bool(false, cs, "ready", NULL) && mr_json_get(cs, "state", "running", NULL))
                        ready++;
        }
        if (mr_json_get(pod, "metadata", "deletionTimestamp", NULL))
                reason = streq_ptr(reason, "NodeLost") ? "Unknown" : "Terminating";

        add_name(cells, pod);
        snprintf(buf, sizeof(buf), "%" PRId64 "/%zu", ready, total);
        add_str(cells, buf);
        add_str(cells, reason ? reason : "Unknown");
        usec_t t;
        if (restarts > 0 && last_finished && kube_time_parse(last_finished, &t) == 0)
                snprintf(buf, sizeof(buf), "%" PRId64 " (%s ago)", restarts,
                         sim_human_duration(now > t ? now - t : 0, age, sizeof(age)));
        else
                snprintf(buf, sizeof(buf), "%" PRId64, restarts);
        add_str(cells, buf);
        add_age(cells, pod, now);
        add_str(cells, or_none(mr_json_get_str(pod, "status", "podIP", NULL)));
        add_str(cells, or_none(mr_json_get_str(pod, "spec", "nodeName", NULL)));
        add_str(cells, or_none(mr_json_get_str(pod, "status", "nominatedNodeName", NULL)));
        if (gates && json_object_is_type(gates, json_type_array) && json_object_array_length(gates) > 0) {
                size_t n = json_object_array_length(gates), ok = 0;
                for (size_t i = 0; i < n; i++) {
                        json_object *c = condition(pod, mr_json_get_str(json_object_array_get_idx(gates, i), "conditionType", NULL));
                        ok += c && streq_ptr(mr_json_get_str(c, "status", NULL), "True");
                }
                snprintf(buf, sizeof(buf), "%zu/%zu", ok, n);
                add_str(cells, buf);
        } else
                add_str(cells, "<none>");
}

static const Column node_columns[] = {
        NAME_COL,
        {"Status", "string", "", 0, "The status of the node"},
        {"Roles", "string", "", 0, "The roles of the node"},
        AGE_COL,
        {"Version", "string", "", 0, "Kubelet Version reported by the node."},
        {"Internal-IP", "string", "", 1, "List of addresses reachable to the node. Queried from cloud provider, if available."},
        {"External-IP", "string", "", 1, "List of addresses reachable to the node. Queried from cloud provider, if available."},
        {"OS-Image", "string", "", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."},
        {"Kernel-Version", "string", "", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."},
        {"Container-Runtime", "string", "", 1, "Container runtime version reported by the node through runtime remote API (e.g. containerd://1.4.2)."},
};

static const char *node_address(json_object *node, const char *type)
{
        json_object *a = mr_json_get(node, "status", "addresses", NULL);
        for (size_t i = 0; a && json_object_is_type(a, json_type_array) && i < json_object_array_length(a); i++)
                if (streq_ptr(mr_json_get_str(json_object_array_get_idx(a, i), "type", NULL), type))
                        return mr_json_get_str(json_object_array_get_idx(a, i), "address", NULL);
        return NULL;
}

static void node_row(json_object *node, json_object *cells, usec_t now)
{
        json_object *ready = condition(node, "Ready"), *labels = mr_json_get(node, "metadata", "labels", NULL);
        const char *st = ready ? mr_json_get_str(ready, "status", NULL) : NULL;
        char status[64], *roles = NULL;
        size_t size = 0;
        FILE *f;

        snprintf(status, sizeof(status), "%s%s",
                 streq_ptr(st, "True") ? "Ready" : streq_ptr(st, "False") ? "NotReady" : "Unknown",
                 mr_json_get_bool(false, node, "spec", "unschedulable", NULL) ? ",SchedulingDisabled" : "");
        f = open_memstream(&roles, &size);
        if (f) {
                bool first = true;
                if (labels && json_object_is_type(labels, json_type_object)) {
                        json_object_object_foreach(labels, k, v) {
                                const char *role = startswith(k, "node-role.kubernetes.io/");
                                if (!role && streq(k, "kubernetes.io/role"))
                                        role = json_object_get_string(v);
                                if (isempty(role))
                                        continue;
                                fprintf(f, "%s%s", first ? "" : ",", role);
                                first = false;
                        }
                }
                fclose(f);
        }
        add_name(cells, node);
        add_str(cells, status);
        add_str(cells, or_none(roles));
        free(roles);
        add_age(cells, node, now);
        add_str(cells, mr_json_get_str(node, "status", "nodeInfo", "kubeletVersion", NULL));
        add_str(cells, or_none(node_address(node, "InternalIP")));
        add_str(cells, or_none(node_address(node, "ExternalIP")));
        add_str(cells, or_none(mr_json_get_str(node, "status", "nodeInfo", "osImage", NULL)));
        add_str(cells, or_none(mr_json_get_str(node, "status", "nodeInfo", "kernelVersion", NULL)));
        add_str(cells, or_none(mr_json_get_str(node, "status", "nodeInfo", "containerRuntimeVersion", NULL)));
}

#define CONTAINERS_COLS                                                                                    \
        {"Containers", "string", "", 1, "Names of each container in the template."},                       \
        {"Images", "string", "", 1, "Images referenced by each container in the template."},              \
        {"Selector", "string", "", 1, "Label selector for pods."}

static const Column deployment_columns[] = {
        NAME_COL,
        {"Ready", "string", "", 0, "Number of the pod with ready state"},
        {"Up-to-date", "integer", "", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."},
        {"Available", "integer", "", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."},
        AGE_COL,
        CONTAINERS_COLS,
};

static void deployment_row(json_object *d, json_object *cells, usec_t now)
{
        char buf[64];
        snprintf(buf, sizeof(buf), "%" PRId64 "/%" PRId64, get_int(d, "status", "readyReplicas"), get_int(d, "spec", "replicas"));
        add_name(cells, d);
        add_str(cells, buf);
        add_int(cells, get_int(d, "status", "updatedReplicas"));
        add_int(cells, get_int(d, "status", "availableReplicas"));
        add_age(cells, d, now);
        add_workload_wide(cells, d);
}

static const Column daemonset_columns[] = {
        NAME_COL,
        {"Desired", "integer", "", 0, "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."},
        {"Current", "integer", "", 0, "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."},
        {"Ready", "integer", "", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."},
        {"Up-to-date", "integer", "", 0, "The total number of nodes that are running updated daemon pod"},
        {"Available", "integer", "", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"},
        {"Node Selector", "string", "", 0, "NodeSelector is a selector which must be true for the pod to fit on a node."},
        AGE_COL,
        CONTAINERS_COLS,
};

static void daemonset_row(json_object *d, json_object *cells, usec_t now)
{
        add_name(cells, d);
        add_int(cells, get_int(d, "status", "desiredNumberScheduled"));
        add_int(cells, get_int(d, "status", "currentNumberScheduled"));
        add_int(cells, get_int(d, "status", "numberReady"));
        add_int(cells, get_int(d, "status", "updatedNumberScheduled"));
        add_int(cells, get_int(d, "status", "numberAvailable"));
        add_map(cells, mr_json_get(d, "spec", "template", "spec", "nodeSelector", NULL));
        add_age(cells, d, now);
        add_workload_wide(cells, d);
}

static const Column replicaset_columns[] = {
        NAME_COL,
        {"Desired", "integer", "", 0, "Replicas is the number of desired replicas."},
        {"Current", "integer", "", 0, "Replicas is the most recently observed number of replicas."},
        {"Ready", "integer", "", 0, "The number of ready replicas for this replica set."},
        AGE_COL,
        CONTAINERS_COLS,
};

static void replicaset_row(json_object *d, json_object *cells, usec_t now)
{
        add_name(cells, d);
        add_int(cells, get_int(d, "spec", "replicas"));
        add_int(cells, get_int(d, "status", "replicas"));
        add_int(cells, get_int(d, "status", "readyReplicas"));
        add_age(cells, d, now);
        add_workload_wide(cells, d);
}

static const Column namespace_columns[] = {
        NAME_COL,
        {"Status", "string", "", 0, "The status of the namespace"},
        AGE_COL,
};

static void namespace_row(json_object *o, json_object *cells, usec_t now)
{
        add_name(cells, o);
        add_str(cells, mr_json_get_str(o, "status", "phase", NULL));
        add_age(cells, o, now);
}

static const Column lease_columns[] = {
        NAME_COL,
        {"Holder", "string", "", 0, "HolderIdentity contains the identity of the holder of a current lease."},
        AGE_COL,
};

static void lease_row(json_object *o, json_object *cells, usec_t now)
{
        add_name(cells, o);
        add_str(cells, mr_json_get_str(o, "spec", "holderIdentity", NULL));
        add_age(cells, o, now);
}

static const Column event_columns[] = {
        {"Last Seen", "string", "", 0, "Time when last this event occurred"},
        {"Type", "string", "", 0, "Type of this event (Normal, Warning), new types could be added in the future."},
        {"Reason", "string", "", 0, "This should be a short, machine understandable string that gives the reason for this event being generated."},
        {"Object", "string", "", 0, "The object this Event is about"},
        {"Subobject", "string", "", 1, "Subobject of the involved object"},
        {"Source", "string", "", 1, "Source of the event"},
        {"Message", "string", "", 0, "A human-readable description of the status of this operation."},
        {"First Seen", "string", "", 1, "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"},
        {"Count", "string", "", 1, "The number of times this event has occurred."},
        {"Name", "string", "name", 1, "Name must be unique within a namespace."},
};

static void event_row(json_object *e, json_object *cells, usec_t now)
{
        const char *last = mr_json_get_str(e, "series", "lastObservedTime", NULL);
        const char *first = mr_json_get_str(e, "firstTimestamp", NULL);
        const char *kind = mr_json_get_str(e, "involvedObject", "kind", NULL);
        const char *host = mr_json_get_str(e, "source", "host", NULL);
        char buf[512], lower[128];
        int64_t count = get_int(e, "count", NULL);
        size_t i;

        if (!last)
                last = mr_json_get_str(e, "lastTimestamp", NULL);
        if (!last)
                last = mr_json_get_str(e, "eventTime", NULL);
        if (!first)
                first = mr_json_get_str(e, "eventTime", NULL);
        for (i = 0; kind && kind[i] && i + 1 < sizeof(lower); i++)
                lower[i] = (char)(kind[i] >= 'A' && kind[i] <= 'Z' ? kind[i] - 'A' + 'a' : kind[i]);
        lower[i] = 0;
        add_age_of(cells, last, now);
        add_str(cells, mr_json_get_str(e, "type", NULL));
        add_str(cells, mr_json_get_str(e, "reason", NULL));
        snprintf(buf, sizeof(buf), "%s/%s", lower, strempty(mr_json_get_str(e, "involvedObject", "name", NULL)));
        add_str(cells, buf);
        add_str(cells, mr_json_get_str(e, "involvedObject", "fieldPath", NULL));
        if (!isempty(host))
                snprintf(buf, sizeof(buf), "%s, %s", strempty(mr_json_get_str(e, "source", "component", NULL)), host);
        else
                snprintf(buf, sizeof(buf), "%s", strempty(mr_json_get_str(e, "source", "component", NULL)));
        add_str(cells, buf);
        add_str(cells, mr_json_get_str(e, "message", NULL));
        add_age_of(cells, first, now);
        snprintf(buf, sizeof(buf), "%" PRId64, count > 0 ? count : 1);
        add_str(cells, buf);
        add_name(cells, e);
}

static const Column service_columns[] = {
        NAME_COL,
        {"Type", "string", "", 0, "The type of service."},
        {"Cluster-IP", "string", "", 0, "The cluster IP of the service."},
        {"External-IP", "string", "", 0, "The external IP of the service."},
        {"Port(s)", "string", "", 0, "The ports of the service."},
        AGE_COL,
        {"Selector", "string", "", 1, "The selector of the service."},
};

static void service_row(json_object *s, json_object *cells, usec_t now)
{
        json_object *ports = mr_json_get(s, "spec", "ports", NULL);
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        for (size_t i = 0; f && ports && json_object_is_type(ports, json_type_array) && i < json_object_array_length(ports); i++) {
                json_object *p = json_object_array_get_idx(ports, i);
                int64_t node_port = get_int(p, "nodePort", NULL);
                const char *proto = mr_json_get_str(p, "protocol", NULL);
                fprintf(f, "%s%" PRId64, i ? "," : "", get_int(p, "port", NULL));
                if (node_port > 0)
                        fprintf(f, ":%" PRId64, node_port);
                fprintf(f, "/%s", proto ? proto : "TCP");
        }
        if (f)
                fclose(f);
        add_name(cells, s);
        add_str(cells, mr_json_get_str(s, "spec", "type", NULL));
        add_str(cells, or_none(mr_json_get_str(s, "spec", "clusterIP", NULL)));
        add_str(cells, "<none>");
        add_str(cells, or_none(buf));
        free(buf);
        add_age(cells, s, now);
        add_map(cells, mr_json_get(s, "spec", "selector", NULL));
}

static const Column pdb_columns[] = {
        NAME_COL,
        {"Min Available", "string", "", 0, "The minimum number of pods that must be available simultaneously.  This can be either an integer or a string specifying a percentage, e.g. \"28%\"."},
        {"Max Unavailable", "string", "", 0, "The maximum number of pods that may be unavailable simultaneously.  This can be either an integer or a string specifying a percentage, e.g. \"33%\"."},
        {"Allowed Disruptions", "integer", "", 0, "Calculated number of pods that may be disrupted at this time."},
        AGE_COL,
};

static void pdb_row(json_object *p, json_object *cells, usec_t now)
{
        json_object *min = mr_json_get(p, "spec", "minAvailable", NULL), *max = mr_json_get(p, "spec", "maxUnavailable", NULL);
        add_name(cells, p);
        add_str(cells, min ? json_object_get_string(min) : "N/A");
        add_str(cells, max ? json_object_get_string(max) : "N/A");
        add_int(cells, get_int(p, "status", "disruptionsAllowed"));
        add_age(cells, p, now);
}

static const Column configmap_columns[] = {
        NAME_COL,
        {"Data", "integer", "", 0, "Data contains the configuration data."},
        AGE_COL,
};

static void configmap_row(json_object *c, json_object *cells, usec_t now)
{
        json_object *d = mr_json_get(c, "data", NULL), *b = mr_json_get(c, "binaryData", NULL);
        add_name(cells, c);
        add_int(cells, (d && json_object_is_type(d, json_type_object) ? json_object_object_length(d) : 0) +
                               (b && json_object_is_type(b, json_type_object) ? json_object_object_length(b) : 0));
        add_age(cells, c, now);
}

static const Column revision_columns[] = {
        NAME_COL,
        {"Controller", "string", "", 0, "Controller of the object"},
        {"Revision", "integer", "", 0, "Revision indicates the revision of the state represented by Data."},
        AGE_COL,
};

static void revision_row(json_object *r, json_object *cells, usec_t now)
{
        json_object *refs = mr_json_get(r, "metadata", "ownerReferences", NULL);
        char buf[512] = "<none>";
        for (size_t i = 0; refs && json_object_is_type(refs, json_type_array) && i < json_object_array_length(refs); i++) {
                json_object *ref = json_object_array_get_idx(refs, i);
                if (!mr_json_get_bool(false, ref, "controller", NULL))
                        continue;
                const char *av = strempty(mr_json_get_str(ref, "apiVersion", NULL)), *slash = strchr(av, '/');
                char kind[128];
                size_t j;
                const char *k = strempty(mr_json_get_str(ref, "kind", NULL));
                for (j = 0; k[j] && j + 1 < sizeof(kind); j++)
                        kind[j] = (char)(k[j] >= 'A' && k[j] <= 'Z' ? k[j] - 'A' + 'a' : k[j]);
                kind[j] = 0;
                if (slash)
                        snprintf(buf, sizeof(buf), "%s.%.*s/%s", kind, (int)(slash - av), av,
                                 strempty(mr_json_get_str(ref, "name", NULL)));
                else
                        snprintf(buf, sizeof(buf), "%s/%s", kind, strempty(mr_json_get_str(ref, "name", NULL)));
        }
        add_name(cells, r);
        add_str(cells, buf);
        add_int(cells, get_int(r, "revision", NULL));
        add_age(cells, r, now);
}

static const Column crd_columns[] = {
        NAME_COL,
        {"Created At", "date", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."},
};

static void crd_row(json_object *c, json_object *cells, usec_t now)
{
        add_name(cells, c);
        add_str(cells, mr_json_get_str(c, "metadata", "creationTimestamp", NULL));
}

static const Column endpoints_columns[] = {
        NAME_COL,
        {"Endpoints", "string", "", 0, "Endpoints is the list of endpoints in the service."},
        AGE_COL,
};

static void endpoints_row(json_object *e, json_object *cells, usec_t now)
{
        json_object *subsets = mr_json_get(e, "subsets", NULL);
        char *buf = NULL;
        size_t size = 0, count = 0;
        FILE *f = open_memstream(&buf, &size);
        for (size_t i = 0; f && subsets && json_object_is_type(subsets, json_type_array) && i < json_object_array_length(subsets); i++) {
                json_object *s = json_object_array_get_idx(subsets, i);
                json_object *addrs = mr_json_get(s, "addresses", NULL), *ports = mr_json_get(s, "ports", NULL);
                for (size_t a = 0; addrs && json_object_is_type(addrs, json_type_array) && a < json_object_array_length(addrs); a++) {
                        const char *ip = mr_json_get_str(json_object_array_get_idx(addrs, a), "ip", NULL);
                        size_t np = ports && json_object_is_type(ports, json_type_array) ? json_object_array_length(ports) : 0;
                        for (size_t p = 0; p < MAX(np, (size_t)1); p++) {
                                if (count++ < 3) {
                                        if (np)
                                                fprintf(f, "%s%s:%" PRId64, count > 1 ? "," : "", strempty(ip),
                                                        get_int(json_object_array_get_idx(ports, p), "port", NULL));
                                        else
                                                fprintf(f, "%s%s", count > 1 ? "," : "", strempty(ip));
                                }
                        }
                }
        }
        if (f) {
                if (count > 3)
                        fprintf(f, " + %zu more...", count - 3);
                fclose(f);
        }
        add_name(cells, e);
        add_str(cells, or_none(buf));
        free(buf);
        add_age(cells, e, now);
}

static const Column generic_columns[] = {NAME_COL, AGE_COL};

#define PRINTER(k, cols, fn) {&(k), cols, ELEMENTSOF(cols), fn}
static const Printer printers[] = {
        PRINTER(SIM_PODS, pod_columns, pod_row),
        PRINTER(SIM_NODES, node_columns, node_row),
        PRINTER(SIM_DEPLOYMENTS, deployment_columns, deployment_row),
        PRINTER(SIM_DAEMONSETS, daemonset_columns, daemonset_row),
        PRINTER(SIM_REPLICASETS, replicaset_columns, replicaset_row),
        PRINTER(SIM_NAMESPACES, namespace_columns, namespace_row),
        PRINTER(SIM_LEASES, lease_columns, lease_row),
        PRINTER(SIM_EVENTS, event_columns, event_row),
        PRINTER(SIM_SERVICES, service_columns, service_row),
        PRINTER(SIM_PDBS, pdb_columns, pdb_row),
        PRINTER(SIM_CONFIGMAPS, configmap_columns, configmap_row),
        PRINTER(SIM_CONTROLLERREVISIONS, revision_columns, revision_row),
        PRINTER(SIM_CRDS, crd_columns, crd_row),
        PRINTER(SIM_ENDPOINTS, endpoints_columns, endpoints_row),
};

bool sim_table_wanted(const char *accept)
{
        /* The first acceptable type wins; kubectl puts the Table types first. */
        if (!accept)
                return false;
        const char *p = strstr(accept, "as=Table");
        if (!p)
                return false;
        const char *json = strstr(accept, "application/json");
        return json && json < p;
}

/* The CRD's printer columns for k's version (borrowed array), or NULL. */
static json_object *crd_printer_columns(SimStore *s, const SimKind *k)
{
        char name[512];
        json_object *crd, *versions;
        snprintf(name, sizeof(name), "%s.%s", k->resource, k->group);
        crd = sim_store_get(s, &SIM_CRDS, NULL, name);
        versions = mr_json_get(crd, "spec", "versions", NULL);
        for (size_t i = 0; versions && json_object_is_type(versions, json_type_array) && i < json_object_array_length(versions); i++) {
                json_object *v = json_object_array_get_idx(versions, i);
                if (streq_ptr(mr_json_get_str(v, "name", NULL), k->version))
                        return mr_json_get(v, "additionalPrinterColumns", NULL);
        }
        return NULL;
}

/* Evaluates a simple JSONPath ".a.b.c" on obj; borrowed. */
static json_object *simple_path(json_object *obj, const char *path)
{
        char key[256];
        const char *p = path;
        json_object *cur = obj;
        while (cur && *p == '.') {
                size_t n = strcspn(p + 1, ".");
                if (n == 0 || n >= sizeof(key))
                        return NULL;
                memcpy(key, p + 1, n);
                key[n] = 0;
                if (!json_object_is_type(cur, json_type_object) || !json_object_object_get_ex(cur, key, &cur))
                        return NULL;
                p += n + 1;
        }
        return *p ? NULL : cur;
}

static json_object *column_json(const Column *c)
{
        json_object *o = json_object_new_object();
        mr_json_set_str(o, "name", c->name);
        mr_json_set_str(o, "type", c->type);
        mr_json_set_str(o, "format", c->format);
        mr_json_set_str(o, "description", c->description);
        mr_json_set_int(o, "priority", c->priority);
        return o;
}

static json_object *row_object(json_object *obj, const char *include_object)
{
        if (streq_ptr(include_object, "None"))
                return NULL;
        if (streq_ptr(include_object, "Object"))
                return json_object_get(obj);
        json_object *o = json_object_new_object();
        json_object *meta = mr_json_copy(mr_json_get(obj, "metadata", NULL));
        if (meta)
                json_object_object_del(meta, "managedFields");
        mr_json_set_str(o, "kind", "PartialObjectMetadata");
        mr_json_set_str(o, "apiVersion", "meta.k8s.io/v1");
        json_object_object_add(o, "metadata", meta ? meta : json_object_new_object());
        return o;
}

int sim_table_render(SimStore *s, const SimKind *k, json_object *const *objs, size_t n, const char *rv,
                     const char *cont, const char *include_object, usec_t now, char **ret)
{
        _cleanup_(json_object_putp) json_object *t = json_object_new_object();
        json_object *meta, *cols, *rows, *crd_cols = NULL;
        const Printer *p = NULL;

        if (!t)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(printers); i++)
                if (printers[i].kind == k)
                        p = &printers[i];
        if (!p) {
                /*
                 * As the real server (apiextensions-apiserver's serveDefaultColumnsIfEmpty):
                 * a CRD's printer columns replace the default Age column; only
                 * a kind without any gets NAME and AGE.
                 */
                crd_cols = crd_printer_columns(s, k);
                if (!json_object_is_type(crd_cols, json_type_array) || json_object_array_length(crd_cols) == 0)
                        crd_cols = NULL;
        }

        mr_json_set_str(t, "kind", "Table");
        mr_json_set_str(t, "apiVersion", "meta.k8s.io/v1");
        meta = json_object_new_object();
        json_object_object_add(t, "metadata", meta);
        if (rv)
                mr_json_set_str(meta, "resourceVersion", rv);
        if (!isempty(cont))
                mr_json_set_str(meta, "continue", cont);
        cols = json_object_new_array();
        json_object_object_add(t, "columnDefinitions", cols);
        if (p)
                for (size_t i = 0; i < p->n_columns; i++)
                        json_object_array_add(cols, column_json(&p->columns[i]));
        else {
                json_object_array_add(cols, column_json(&generic_columns[0]));
                for (size_t i = 0; crd_cols && i < json_object_array_length(crd_cols); i++) {
                        json_object *c = json_object_array_get_idx(crd_cols, i);
                        const char *type = mr_json_get_str(c, "type", NULL);
                        Column col = {.name = strempty(mr_json_get_str(c, "name", NULL)),
                                      .type = type ? type : "string",
                                      .format = strempty(mr_json_get_str(c, "format", NULL)),
                                      .description = strempty(mr_json_get_str(c, "description", NULL))};
                        int64_t prio = 0;
                        (void)mr_json_get_int(&prio, c, "priority", NULL);
                        col.priority = (int)prio;
                        json_object_array_add(cols, column_json(&col));
                }
                if (!crd_cols)
                        json_object_array_add(cols, column_json(&generic_columns[1]));
        }

        rows = json_object_new_array();
        json_object_object_add(t, "rows", rows);
        for (size_t i = 0; i < n; i++) {
                json_object *row = json_object_new_object(), *cells = json_object_new_array(), *o;
                if (!row || !cells) {
                        json_object_put(row);
                        json_object_put(cells);
                        return -ENOMEM;
                }
                if (p)
                        p->row(objs[i], cells, now);
                else {
                        add_name(cells, objs[i]);
                        for (size_t j = 0; crd_cols && j < json_object_array_length(crd_cols); j++) {
                                json_object *c = json_object_array_get_idx(crd_cols, j);
                                json_object *v = simple_path(objs[i], strempty(mr_json_get_str(c, "jsonPath", NULL)));
                                if (v && streq_ptr(mr_json_get_str(c, "type", NULL), "date"))
                                        add_age_of(cells, json_object_get_string(v), now);
                                else
                                        json_object_array_add(cells, v ? mr_json_copy(v) : NULL);
                        }
                        if (!crd_cols)
                                add_age(cells, objs[i], now);
                }
                json_object_object_add(row, "cells", cells);
                o = row_object(objs[i], include_object);
                if (o)
                        json_object_object_add(row, "object", o);
                json_object_array_add(rows, row);
        }
        *ret = strdup(mr_json_compact(t));
        return *ret ? 0 : -ENOMEM;
}
