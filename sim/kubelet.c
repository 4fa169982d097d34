/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kubelet.c — simulated kubelets: pod phases, readiness and termination.
 *
 * A pod bound to a node goes through what kubectl and controllers watch:
 *   Pending → Running at once (podIP from the node's podCIDR, hostIP,
 *   startTime, containerStatuses running, Initialized True, Ready False)
 *   → Ready after sim.meshroll.io/startup-seconds (default 2) simulated
 *   seconds (Ready and ContainersReady True with lastTransitionTime).
 * A crash-looping image (pod annotation sim.meshroll.io/never-ready="true",
 * or an image listed in the fault ConfigMap kube-system/kubesim-faults
 * key neverReadyImages, comma separated) stays Running and not Ready, its
 * restartCount growing with CrashLoopBackOff's doubling delay (10 s … 5 min).
 * A deleted pod (deletionTimestamp set by the store) turns not Ready and is
 * removed with sim_store_remove after min(sim.meshroll.io/shutdown-seconds
 * (default 1), grace period) simulated seconds from the delete, so drains
 * never hang on the simulator.
 * Each step is a timer in simulated time; nothing polls.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "controllers-internal.h"
#include "meshroll/json-util.h"
#include "meshroll/time-util.h"

#define ACTOR "kubelet"
#define BACKOFF_START (10 * USEC_PER_SEC)
#define BACKOFF_MAX (300 * USEC_PER_SEC)

/* A seconds annotation ("2", "0.5") as µs, or def. */
static usec_t annotation_seconds(json_object *pod, const char *key, usec_t def)
{
        const char *v = mr_json_get_str(pod, "metadata", "annotations", key, NULL);
        char *end;
        if (!v)
                return def;
        double d = strtod(v, &end);
        if (end == v || *end || !isfinite(d) || d < 0 || d > 1e7)
                return def;
        return (usec_t)(d * (double)USEC_PER_SEC);
}

static bool image_never_ready(SimStore *s, json_object *pod)
{
        if (streq_ptr(mr_json_get_str(pod, "metadata", "annotations", "sim.meshroll.io/never-ready", NULL), "true"))
                return true;
        json_object *cm = sim_store_get(s, &SIM_CONFIGMAPS, "kube-system", "kubesim-faults");
        const char *list = mr_json_get_str(cm, "data", "neverReadyImages", NULL);
        json_object *containers = mr_json_get(pod, "spec", "containers", NULL);
        if (isempty(list) || !containers || !json_object_is_type(containers, json_type_array))
                return false;
        for (size_t i = 0; i < json_object_array_length(containers); i++) {
                const char *image = mr_json_get_str(json_object_array_get_idx(containers, i), "image", NULL);
                size_t l = image ? strlen(image) : 0;
                if (l == 0)
                        continue;
                for (const char *p = list; *p;) {
                        while (*p == ',' || *p == ' ')
                                p++;
                        size_t n = strcspn(p, ", ");
                        if (n == l && strneq(p, image, l))
                                return true;
                        p += n;
                }
        }
        return false;
}

typedef struct IpScan {
        bool used[256];
} IpScan;

/*
 * Reads status.podIP from the stored JSON (a node's pods are not parsed to
 * allocate one address): the last "podIP" key, as status is written after
 * metadata and spec.
 */
static int scan_ip(const SimRaw *raw, void *userdata)
{
        static const char key[] = "\"podIP\":\"";
        IpScan *scan = userdata;
        const char *ip = NULL;
        for (const char *p = raw->json; (p = strstr(p, key)); p += sizeof key - 1)
                ip = p + sizeof key - 1;
        if (!ip)
                return 0;
        size_t n = strcspn(ip, "\"");
        const char *last = memrchr(ip, '.', n);
        if (last) {
                unsigned long v = strtoul(last + 1, NULL, 10);
                if (v < 256)
                        scan->used[v] = true;
        }
        return 0;
}

/* Lowest free address of the node's /24 (spec.podCIDR "10.244.3.0/24", or one derived from the name). */
static int allocate_pod_ip(SimStore *s, json_object *node, const char *node_name, char *buf, size_t size)
{
        char prefix[64];
        const char *cidr = mr_json_get_str(node, "spec", "podCIDR", NULL);
        const char *dot = cidr ? strrchr(cidr, '.') : NULL;
        if (dot && (size_t)(dot - cidr) < sizeof prefix - 1) {
                memcpy(prefix, cidr, dot - cidr);
                prefix[dot - cidr] = 0;
        } else {
                uint32_t h = 2166136261U;
                for (const char *p = node_name; *p; p++)
                        h = (h ^ (unsigned char)*p) * 16777619U;
                snprintf(prefix, sizeof prefix, "10.%u.%u", 200 + (h >> 8) % 50, h % 256);
        }
        IpScan scan = {};
        int r = sim_store_foreach_raw_on_node(s, node_name, scan_ip, &scan);
        if (r < 0)
                return r;
        for (unsigned i = 2; i < 255; i++)
                if (!scan.used[i]) {
                        snprintf(buf, size, "%s.%u", prefix, i);
                        return 0;
                }
        return -ENOSPC;
}

static const char *node_internal_ip(json_object *node)
{
        json_object *addrs = mr_json_get(node, "status", "addresses", NULL);
        for (size_t i = 0; addrs && json_object_is_type(addrs, json_type_array) && i < json_object_array_length(addrs);
             i++) {
                json_object *a = json_object_array_get_idx(addrs, i);
                if (streq_ptr(mr_json_get_str(a, "type", NULL), "InternalIP"))
                        return mr_json_get_str(a, "address", NULL);
        }
        return NULL;
}

static json_object *ip_list(const char *ip)
{
        json_object *a = json_object_new_array(), *e = json_object_new_object();
        if (!a || !e || mr_json_set_str(e, "ip", ip) < 0 || json_object_array_add(a, e) < 0) {
                json_object_put(a);
                json_object_put(e);
                return NULL;
        }
        return a;
}

/* Fills containerStatuses from spec.containers: running since `since`, ready or not, restarts. */
static int set_container_statuses(json_object *pod, bool ready, int64_t restarts, usec_t since)
{
        char ts[KUBE_TIME_MAX], id[96];
        json_object *status = mr_json_ensure_object(pod, "status", NULL);
        json_object *containers = mr_json_get(pod, "spec", "containers", NULL);
        json_object *out = json_object_new_array();
        if (!status || !out)
                goto oom;
        kube_time_format(since, ts);
        for (size_t i = 0; containers && json_object_is_type(containers, json_type_array) &&
                           i < json_object_array_length(containers);
             i++) {
                json_object *spec_c = json_object_array_get_idx(containers, i);
                const char *image = strempty(mr_json_get_str(spec_c, "image", NULL));
                json_object *cs = json_object_new_object();
                if (!cs || json_object_array_add(out, cs) < 0) {
                        json_object_put(cs);
                        goto oom;
                }
                snprintf(id, sizeof id, "containerd://%016" PRIx64 "%02zx%04" PRIx64,
                         (uint64_t)since, i, (uint64_t)restarts);
                json_object *state = mr_json_ensure_object(cs, "state", "running", NULL);
                if (!state || mr_json_set_str(cs, "name", mr_json_get_str(spec_c, "name", NULL)) < 0 ||
                    mr_json_set_str(cs, "image", image) < 0 || mr_json_set_str(cs, "imageID", image) < 0 ||
                    mr_json_set_str(cs, "containerID", id) < 0 || mr_json_set_bool(cs, "ready", ready) < 0 ||
                    mr_json_set_bool(cs, "started", true) < 0 || mr_json_set_int(cs, "restartCount", restarts) < 0 ||
                    mr_json_set_str(state, "startedAt", ts) < 0)
                        goto oom;
                if (restarts > 0) {
                        json_object *term = mr_json_ensure_object(cs, "lastState", "terminated", NULL);
                        if (!term || mr_json_set_int(term, "exitCode", 1) < 0 ||
                            mr_json_set_str(term, "reason", "Error") < 0 || mr_json_set_str(term, "finishedAt", ts) < 0)
                                goto oom;
                }
        }
        json_object_object_add(status, "containerStatuses", out);
        return 0;
oom:
        json_object_put(out);
        return -ENOMEM;
}

static int set_ready(json_object *status, bool ready, usec_t now)
{
        const char *v = ready ? "True" : "False";
        int r = sim_set_condition(status, "ContainersReady", v, ready ? "" : "ContainersNotReady",
                                  ready ? "" : "containers with unready status", now, false);
        if (r < 0)
                return r;
        return sim_set_condition(status, "Ready", v, ready ? "" : "ContainersNotReady",
                                 ready ? "" : "containers with unready status", now, false);
}

/* Starts a bound Pending pod: Running, IPs, containers started, not yet Ready. */
static int start_pod(SimStore *s, json_object *pod, const char *node_name, usec_t now)
{
        char ip[64], ts[KUBE_TIME_MAX];
        json_object *node = sim_store_get(s, &SIM_NODES, NULL, node_name);
        if (!node)
                return 0; /* no kubelet there: stays Pending */
        json_object *status = mr_json_ensure_object(pod, "status", NULL);
        if (!status)
                return -ENOMEM;
        bool host_network = mr_json_get_bool(false, pod, "spec", "hostNetwork", NULL);
        const char *host_ip = node_internal_ip(node);
        if (host_network && host_ip)
                snprintf(ip, sizeof ip, "%s", host_ip);
        else {
                int r = allocate_pod_ip(s, node, node_name, ip, sizeof ip);
                if (r < 0)
                        return r;
        }
        json_object *ips = ip_list(ip);
        if (!ips)
                return -ENOMEM;
        json_object_object_add(status, "podIPs", ips);
        if (mr_json_set_str(status, "phase", "Running") < 0 || mr_json_set_str(status, "podIP", ip) < 0 ||
            mr_json_set_str(status, "startTime", kube_time_format(now, ts)) < 0)
                return -ENOMEM;
        if (host_ip) {
                json_object *hips = ip_list(host_ip);
                if (!hips)
                        return -ENOMEM;
                json_object_object_add(status, "hostIPs", hips);
                if (mr_json_set_str(status, "hostIP", host_ip) < 0)
                        return -ENOMEM;
        }
        int r = sim_set_condition(status, "PodScheduled", "True", "", "", now, false);
        if (r >= 0)
                r = sim_set_condition(status, "Initialized", "True", "", "", now, false);
        if (r >= 0)
                r = set_ready(status, false, now);
        if (r >= 0)
                r = set_container_statuses(pod, false, 0, now);
        return r;
}

int sim_kubelet_sync(SimControllers *c, const char *ns, const char *name, usec_t now, usec_t *ret_due)
{
        SimStore *s = sim_controllers_store(c);
        usec_t start = 0, due = 0;
        int r;

        *ret_due = 0;
        json_object *cur = sim_store_get(s, &SIM_PODS, ns, name);
        const char *node = mr_json_get_str(cur, "spec", "nodeName", NULL);
        if (!cur || !node)
                return 0;
        const char *phase = mr_json_get_str(cur, "status", "phase", NULL);
        if (streq_ptr(phase, "Succeeded") || streq_ptr(phase, "Failed"))
                return 0;

        _cleanup_(json_object_putp) json_object *pod = mr_json_copy(cur);
        if (!pod)
                return -ENOMEM;
        json_object *status = mr_json_ensure_object(pod, "status", NULL);
        if (!status)
                return -ENOMEM;

        if (sim_obj_is_deleting(pod)) {
                usec_t deadline;
                int64_t grace = 0;
                if (kube_time_parse(mr_json_get_str(pod, "metadata", "deletionTimestamp", NULL), &deadline) < 0)
                        deadline = now;
                (void)mr_json_get_int(&grace, pod, "metadata", "deletionGracePeriodSeconds", NULL);
                usec_t grace_us = (usec_t)MAX(grace, (int64_t)0) * USEC_PER_SEC;
                usec_t deleted_at = deadline > grace_us ? deadline - grace_us : 0;
                usec_t exit_at = deleted_at + MIN(annotation_seconds(pod, "sim.meshroll.io/shutdown-seconds",
                                                                     USEC_PER_SEC),
                                                  grace_us);
                if (now >= exit_at)
                        return sim_store_remove(s, &SIM_PODS, ns, name, ACTOR);
                *ret_due = exit_at;
                if (!streq_ptr(phase, "Running"))
                        return 0;
                r = set_ready(status, false, now);
                if (r < 0)
                        return r;
                r = sim_write_status(s, &SIM_PODS, TAKE_PTR(pod), ACTOR);
                return r < 0 ? r : 0;
        }

        if (!streq_ptr(phase, "Running")) {
                r = start_pod(s, pod, node, now);
                if (r < 0)
                        return r;
                if (!streq_ptr(mr_json_get_str(pod, "status", "phase", NULL), "Running"))
                        return 0;
        }
        if (kube_time_parse(mr_json_get_str(status, "startTime", NULL), &start) < 0)
                start = now;

        if (image_never_ready(s, pod)) {
                /* CrashLoopBackOff: each restart doubles the wait, capped at five minutes. */
                int64_t restarts = 0;
                json_object *cs0 = json_object_array_get_idx(mr_json_get(status, "containerStatuses", NULL), 0);
                (void)mr_json_get_int(&restarts, cs0, "restartCount", NULL);
                usec_t last = start;
                (void)kube_time_parse(mr_json_get_str(cs0, "state", "running", "startedAt", NULL), &last);
                usec_t backoff = BACKOFF_START;
                for (int64_t i = 0; i < restarts && backoff < BACKOFF_MAX; i++)
                        backoff *= 2;
                backoff = MIN(backoff, BACKOFF_MAX);
                if (now >= last + backoff) {
                        restarts++;
                        last = now;
                        r = set_container_statuses(pod, false, restarts, now);
                        if (r < 0)
                                return r;
                        backoff = MIN(backoff * 2, BACKOFF_MAX);
                }
                r = set_ready(status, false, now);
                if (r < 0)
                        return r;
                due = last + backoff;
        } else {
                usec_t ready_at = start + annotation_seconds(pod, "sim.meshroll.io/startup-seconds", 2 * USEC_PER_SEC);
                if (now >= ready_at) {
                        if (!sim_pod_is_ready(pod)) {
                                json_object *cs = mr_json_get(status, "containerStatuses", NULL);
                                for (size_t i = 0; cs && json_object_is_type(cs, json_type_array) &&
                                                   i < json_object_array_length(cs);
                                     i++)
                                        (void)mr_json_set_bool(json_object_array_get_idx(cs, i), "ready", true);
                                r = set_ready(status, true, now);
                                if (r < 0)
                                        return r;
                        }
                } else
                        due = ready_at;
        }
        *ret_due = due;
        r = sim_write_status(s, &SIM_PODS, TAKE_PTR(pod), ACTOR);
        return r < 0 ? r : 0;
}
