/* SPDX-License-Identifier: Apache-2.0 */
/*
 * scenario.c — loads a scenario file (docs/scenario.md) into the store.
 *
 * The YAML is converted to json-c (yaml-json.h) and validated field by
 * field; every error names the field path and, found again in the YAML
 * with libyaml's event marks, its line: "demo.yaml: line 14:
 * nodes[1].count: expected a non-negative integer". Nothing is written to
 * the store until the whole document validated, except that objects are
 * built and created in one pass per section in this order: namespaces,
 * nodes, raw objects (CRDs first as written), Istio (istiod per revision
 * with its Service and injector webhook, revision tags, ztunnel,
 * gateways), workloads (Deployment or DaemonSet, PDB, Service), faults.
 *
 * Everything the scenario builds is an ordinary object: the controllers
 * then create pods exactly as for objects sent through the API. The one
 * exception is ztunnel's pending revision: to start "mid-upgrade" the
 * loader creates the DaemonSet at the current revision, the pods of that
 * revision on every node (as the DaemonSet controller would have, with the
 * same hash and ControllerRevision), then updates the template to the
 * pending revision — so an OnDelete DaemonSet starts with every pod old
 * and updatedNumberScheduled 0.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <yaml.h>

#include "controllers-internal.h"
#include "meshroll/json-util.h"
#include "meshroll/time-util.h"
#include "meshroll/yaml-json.h"
#include "scenario.h"

#define ACTOR "scenario"
#define MAX_NODES_PER_ENTRY 5000
#define MAX_SCENARIO_SIZE (4u << 20)

static const char *const verb_names[_SIM_VERB_MAX] = {
        [SIM_VERB_GET] = "get",       [SIM_VERB_LIST] = "list",   [SIM_VERB_WATCH] = "watch",
        [SIM_VERB_CREATE] = "create", [SIM_VERB_UPDATE] = "update", [SIM_VERB_PATCH] = "patch",
        [SIM_VERB_DELETE] = "delete",
};

int sim_verb_from_string(const char *s)
{
        for (int i = 0; s && i < _SIM_VERB_MAX; i++)
                if (streq(s, verb_names[i]))
                        return i;
        return -EINVAL;
}

/* ---- error locations ------------------------------------------------------------------------- */

typedef struct Ctx {
        const char *source;
        const char *data;
        size_t size;
        MrError *err;
        SimStore *store;
        SimFaults *faults;
        int node_count;
        json_object *node_names; /* array of every node name */
} Ctx;

typedef struct Frame {
        bool mapping;
        bool expect_key;
        long index;
        char key[128];
} Frame;

static void path_of(const Frame *st, int depth, char *buf, size_t size)
{
        size_t off = 0;
        buf[0] = 0;
        for (int i = 0; i < depth && off < size; i++) {
                if (st[i].mapping)
                        off += (size_t)snprintf(buf + off, size - off, "%s%s", off ? "." : "", st[i].key);
                else
                        off += (size_t)snprintf(buf + off, size - off, "[%ld]", st[i].index);
        }
}

/*
 * The 1-based line of the node at path ("nodes[1].count") in the YAML, or 0.
 * Walks libyaml's events keeping a path stack; the first document only.
 */
static int locate_line(const char *data, size_t size, const char *want)
{
        yaml_parser_t p;
        yaml_event_t ev;
        Frame st[64];
        int depth = 0, line = 0;
        char path[1024];

        if (!yaml_parser_initialize(&p))
                return 0;
        yaml_parser_set_input_string(&p, (const unsigned char *)data, size);
        for (;;) {
                if (!yaml_parser_parse(&p, &ev))
                        break;
                yaml_event_type_t t = ev.type;
                int evline = (int)ev.start_mark.line + 1;
                bool value_node = t == YAML_SCALAR_EVENT || t == YAML_MAPPING_START_EVENT ||
                                  t == YAML_SEQUENCE_START_EVENT || t == YAML_ALIAS_EVENT;
                if (value_node && depth > 0 && st[depth - 1].mapping && st[depth - 1].expect_key) {
                        /* A key. */
                        if (t == YAML_SCALAR_EVENT)
                                snprintf(st[depth - 1].key, sizeof st[depth - 1].key, "%.*s", (int)ev.data.scalar.length,
                                         (const char *)ev.data.scalar.value);
                        st[depth - 1].expect_key = false;
                        path_of(st, depth, path, sizeof path);
                        if (streq(path, want)) {
                                line = evline;
                                yaml_event_delete(&ev);
                                break;
                        }
                } else if (value_node) {
                        if (depth > 0 && !st[depth - 1].mapping)
                                st[depth - 1].index++;
                        path_of(st, depth, path, sizeof path);
                        if (streq(path, want) && depth > 0) {
                                line = evline;
                                yaml_event_delete(&ev);
                                break;
                        }
                        if (depth > 0 && st[depth - 1].mapping)
                                st[depth - 1].expect_key = true;
                        if ((t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT) &&
                            depth < (int)ELEMENTSOF(st)) {
                                st[depth] = (Frame){ .mapping = t == YAML_MAPPING_START_EVENT, .expect_key = true,
                                                     .index = -1 };
                                depth++;
                        }
                } else if (t == YAML_MAPPING_END_EVENT || t == YAML_SEQUENCE_END_EVENT) {
                        if (depth > 0)
                                depth--;
                } else if (t == YAML_DOCUMENT_END_EVENT || t == YAML_STREAM_END_EVENT) {
                        yaml_event_delete(&ev);
                        break;
                }
                yaml_event_delete(&ev);
        }
        yaml_parser_delete(&p);
        return line;
}

static int fail(Ctx *c, const char *path, const char *fmt, ...) _printf_(3, 4);
static int fail(Ctx *c, const char *path, const char *fmt, ...)
{
        char msg[700];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        int line = c->data ? locate_line(c->data, c->size, path) : 0;
        /* A required field that is missing has no line of its own: give its parent's. */
        char parent[512];
        snprintf(parent, sizeof parent, "%s", path);
        for (char *cut; line == 0 && c->data && (cut = strrchr(parent, '.')) && cut > parent;) {
                *cut = 0;
                line = locate_line(c->data, c->size, parent);
        }
        if (line > 0)
                return mr_error_set(c->err, -MR_ECONFIG, "%s: line %d: %s: %s", c->source, line, path, msg);
        return mr_error_set(c->err, -MR_ECONFIG, "%s: %s: %s", c->source, path, msg);
}

/* ---- typed field access --------------------------------------------------------------------- */

static int get_map(Ctx *c, json_object *o, const char *key, const char *path, json_object **ret)
{
        json_object *v = NULL;
        char p[512];
        *ret = NULL;
        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", key);
        if (!json_object_is_type(v, json_type_object))
                return fail(c, p, "expected a mapping");
        *ret = v;
        return 0;
}

static int get_list(Ctx *c, json_object *o, const char *key, const char *path, json_object **ret)
{
        json_object *v = NULL;
        char p[512];
        *ret = NULL;
        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", key);
        if (!json_object_is_type(v, json_type_array))
                return fail(c, p, "expected a list");
        *ret = v;
        return 0;
}

static int get_string(Ctx *c, json_object *o, const char *key, const char *path, const char *def, const char **ret)
{
        json_object *v = NULL;
        char p[512];
        *ret = def;
        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", key);
        if (!json_object_is_type(v, json_type_string))
                return fail(c, p, "expected a string");
        *ret = json_object_get_string(v);
        return 0;
}

static int get_int(Ctx *c, json_object *o, const char *key, const char *path, int64_t def, int64_t min, int64_t max,
                   int64_t *ret)
{
        json_object *v = NULL;
        char p[512];
        *ret = def;
        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", key);
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < min || json_object_get_int64(v) > max)
                return fail(c, p, "expected an integer from %lld to %lld", (long long)min, (long long)max);
        *ret = json_object_get_int64(v);
        return 0;
}

static int get_number(Ctx *c, json_object *o, const char *key, const char *path, double def, double min, double max,
                      double *ret)
{
        json_object *v = NULL;
        char p[512];
        *ret = def;
        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", key);
        if ((!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double)) ||
            json_object_get_double(v) < min || json_object_get_double(v) > max)
                return fail(c, p, "expected a number from %g to %g", min, max);
        *ret = json_object_get_double(v);
        return 0;
}

static int get_bool(Ctx *c, json_object *o, const char *key, const char *path, bool def, bool *ret)
{
        json_object *v = NULL;
        char p[512];
        *ret = def;
        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", key);
        if (!json_object_is_type(v, json_type_boolean))
                return fail(c, p, "expected true or false");
        *ret = json_object_get_boolean(v);
        return 0;
}

/* An int or "N%" value (maxSurge, minAvailable): borrowed, or NULL when absent. */
static int get_intstr(Ctx *c, json_object *o, const char *key, const char *path, json_object **ret)
{
        json_object *v = NULL;
        char p[512];
        int64_t dummy;
        *ret = NULL;
        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", key);
        if ((json_object_is_type(v, json_type_int) && json_object_get_int64(v) < 0) ||
            sim_intstr_scaled(v, 100, true, 0, &dummy) < 0)
                return fail(c, p, "expected a non-negative integer or a percentage (\"25%%\")");
        *ret = v;
        return 0;
}

/* Labels/annotations: a mapping of strings. */
static int get_string_map(Ctx *c, json_object *o, const char *key, const char *path, json_object **ret)
{
        char p[512];
        int r = get_map(c, o, key, path, ret);
        if (r < 0 || !*ret)
                return r;
        json_object_object_foreach(*ret, k, v)
        {
                if (!v || !json_object_is_type(v, json_type_string)) {
                        snprintf(p, sizeof p, "%s%s%s.%s", path, *path ? "." : "", key, k);
                        return fail(c, p, "expected a string (quote numbers and booleans)");
                }
        }
        return 0;
}

static int check_keys(Ctx *c, json_object *o, const char *path, const char *const *allowed)
{
        char p[512];
        json_object_object_foreach(o, k, v)
        {
                (void)v;
                bool ok = false;
                for (size_t i = 0; allowed[i] && !ok; i++)
                        ok = streq(k, allowed[i]);
                if (!ok) {
                        snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", k);
                        return fail(c, p, "unknown field");
                }
        }
        return 0;
}

static int parse_json(const char *s, json_object **ret)
{
        return mr_json_parse(s, strlen(s), 1 << 20, ret);
}

static int create_obj(Ctx *c, const SimKind *k, json_object *obj, const char *path)
{
        MrError e = {};
        int r = sim_store_create(c->store, k, obj, ACTOR, NULL, &e);
        if (r < 0)
                return fail(c, path, "%s", e.message[0] ? e.message : mr_strerror(r));
        return 0;
}

static int merge_into(json_object *dst, json_object *src)
{
        if (!src)
                return 0;
        json_object_object_foreach(src, k, v)
        {
                if (json_object_object_add(dst, k, json_object_get(v)) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* ---- namespaces and nodes ------------------------------------------------------------------- */

static int ensure_namespace(Ctx *c, const char *name, json_object *labels, const char *path)
{
        json_object *existing = sim_store_get(c->store, &SIM_NAMESPACES, NULL, name);
        if (existing) {
                if (!labels)
                        return 0;
                json_object *copy = mr_json_copy(existing);
                json_object *l = copy ? mr_json_ensure_object(copy, "metadata", "labels", NULL) : NULL;
                if (!l || merge_into(l, labels) < 0) {
                        json_object_put(copy);
                        return -ENOMEM;
                }
                return MIN(sim_store_update(c->store, &SIM_NAMESPACES, copy, 0, ACTOR, NULL, c->err), 0);
        }
        json_object *ns = NULL;
        if (parse_json("{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"labels\":{}},"
                       "\"spec\":{\"finalizers\":[\"kubernetes\"]},\"status\":{\"phase\":\"Active\"}}",
                       &ns) < 0)
                return -ENOMEM;
        json_object *l = mr_json_get(ns, "metadata", "labels", NULL);
        if (mr_json_set_str(mr_json_get(ns, "metadata", NULL), "name", name) < 0 ||
            mr_json_set_str(l, "kubernetes.io/metadata.name", name) < 0 || merge_into(l, labels) < 0) {
                json_object_put(ns);
                return -ENOMEM;
        }
        return create_obj(c, &SIM_NAMESPACES, ns, path);
}

static int load_namespaces(Ctx *c, json_object *root)
{
        static const char *const keys[] = { "name", "labels", "annotations", NULL };
        json_object *list;
        char path[256];
        int r = get_list(c, root, "namespaces", "", &list);
        for (size_t i = 0; r >= 0 && list && i < json_object_array_length(list); i++) {
                json_object *e = json_object_array_get_idx(list, i), *labels;
                const char *name;
                snprintf(path, sizeof path, "namespaces[%zu]", i);
                if (!e || !json_object_is_type(e, json_type_object))
                        return fail(c, path, "expected a mapping");
                if ((r = check_keys(c, e, path, keys)) < 0 || (r = get_string(c, e, "name", path, NULL, &name)) < 0 ||
                    (r = get_string_map(c, e, "labels", path, &labels)) < 0)
                        return r;
                if (!name) {
                        snprintf(path + strlen(path), sizeof path - strlen(path), ".name");
                        return fail(c, path, "required");
                }
                r = ensure_namespace(c, name, labels, path);
        }
        return r;
}

/* Expands {i} (index in this entry, from 1), {n} (index over all nodes), {pool}, {zone}. */
static void expand_name(const char *pattern, int i, int n, const char *pool, const char *zone, char *buf, size_t size)
{
        size_t off = 0;
        for (const char *p = pattern; *p && off + 1 < size;) {
                const char *sub = NULL;
                char num[16];
                size_t skip = 0;
                if (startswith(p, "{i}")) {
                        snprintf(num, sizeof num, "%d", i);
                        sub = num, skip = 3;
                } else if (startswith(p, "{n}")) {
                        snprintf(num, sizeof num, "%d", n);
                        sub = num, skip = 3;
                } else if (startswith(p, "{pool}")) {
                        sub = strempty(pool), skip = 6;
                } else if (startswith(p, "{zone}")) {
                        sub = strempty(zone), skip = 6;
                }
                if (sub) {
                        off += (size_t)snprintf(buf + off, size - off, "%s", sub);
                        p += skip;
                } else
                        buf[off++] = *p++;
        }
        buf[MIN(off, size - 1)] = 0;
}

static int make_node(Ctx *c, const char *name, json_object *labels, const char *pool, const char *zone,
                     json_object *capacity, json_object *taints, bool unschedulable, const char *path)
{
        char buf[2048], ts[KUBE_TIME_MAX];
        int n = ++c->node_count;
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"labels\":{"
                 "\"kubernetes.io/os\":\"linux\",\"kubernetes.io/arch\":\"amd64\",\"node-role.kubernetes.io/worker\":\"\","
                 "\"beta.kubernetes.io/os\":\"linux\",\"beta.kubernetes.io/arch\":\"amd64\"}},"
                 "\"spec\":{\"podCIDR\":\"10.%d.%d.0/24\",\"podCIDRs\":[\"10.%d.%d.0/24\"]},"
                 "\"status\":{\"capacity\":{\"cpu\":\"8\",\"memory\":\"32Gi\",\"pods\":\"110\",\"ephemeral-storage\":\"100Gi\"},"
                 "\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"10.0.%d.%d\"}],"
                 "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\","
                 "\"message\":\"kubelet is posting ready status\",\"lastHeartbeatTime\":\"%s\",\"lastTransitionTime\":\"%s\"}],"
                 "\"nodeInfo\":{\"kubeletVersion\":\"v1.32.0\",\"kubeProxyVersion\":\"\",\"osImage\":\"Debian GNU/Linux 12 "
                 "(bookworm)\",\"kernelVersion\":\"6.1.0-18-amd64\",\"containerRuntimeVersion\":\"containerd://1.7.13\","
                 "\"operatingSystem\":\"linux\",\"architecture\":\"amd64\",\"machineID\":\"%032x\",\"systemUUID\":\"%032x\","
                 "\"bootID\":\"%032x\"}}}",
                 244 + n / 256, n % 256, 244 + n / 256, n % 256, n / 250, n % 250 + 10, kube_time_format(sim_store_now(c->store), ts),
                 ts, n, n, n);
        json_object *node = NULL;
        if (parse_json(buf, &node) < 0)
                return -ENOMEM;
        json_object *meta = mr_json_get(node, "metadata", NULL), *l = mr_json_get(meta, "labels", NULL);
        json_object *status = mr_json_get(node, "status", NULL);
        json_object *addrs = mr_json_get(status, "addresses", NULL), *host = json_object_new_object();
        if (!host || json_object_array_add(addrs, host) < 0 || mr_json_set_str(host, "type", "Hostname") < 0 ||
            mr_json_set_str(host, "address", name) < 0 || mr_json_set_str(meta, "name", name) < 0 ||
            mr_json_set_str(l, "kubernetes.io/hostname", name) < 0 ||
            (pool && mr_json_set_str(l, "meshroll.io/pool", pool) < 0) ||
            (zone && (mr_json_set_str(l, "topology.kubernetes.io/zone", zone) < 0 ||
                      mr_json_set_str(l, "failure-domain.beta.kubernetes.io/zone", zone) < 0)) ||
            merge_into(l, labels) < 0 || merge_into(mr_json_get(status, "capacity", NULL), capacity) < 0)
                goto oom;
        json_object *alloc = mr_json_copy(mr_json_get(status, "capacity", NULL));
        if (!alloc)
                goto oom;
        json_object_object_add(status, "allocatable", alloc);
        if (taints)
                json_object_object_add(mr_json_get(node, "spec", NULL), "taints", json_object_get(taints));
        if (unschedulable) {
                mr_json_set_bool(mr_json_get(node, "spec", NULL), "unschedulable", true);
        }
        json_object_array_add(c->node_names, json_object_new_string(name));
        return create_obj(c, &SIM_NODES, node, path);
oom:
        json_object_put(node);
        return -ENOMEM;
}

/*
 * nodes[i].capacity: every value a quantity. Numbers become strings, as the
 * API serializes a Quantity ("cpu: 8" is stored as "8").
 */
static int check_capacity(Ctx *c, json_object *capacity, const char *path)
{
        char p[512];
        json_object_object_foreach(capacity, key, v)
        {
                int64_t milli;
                snprintf(p, sizeof p, "%s.capacity.%s", path, key);
                if (sim_quantity_milli(v, &milli) < 0)
                        return fail(c, p, "expected a quantity such as \"8\", \"500m\" or \"32Gi\"");
                if (!json_object_is_type(v, json_type_string)) {
                        char num[64];
                        snprintf(num, sizeof num, "%s", json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
                        if (mr_json_set_str(capacity, key, num) < 0)
                                return -ENOMEM;
                }
        }
        return 0;
}

/* nodes[i].taints: each {key, value?, effect} with one of the three effects Kubernetes knows. */
static int check_taints(Ctx *c, json_object *taints, const char *path)
{
        static const char *const keys[] = { "key", "value", "effect", NULL };
        char p[512];
        for (size_t j = 0; j < json_object_array_length(taints); j++) {
                json_object *t = json_object_array_get_idx(taints, j);
                const char *key, *value, *effect;
                int r;
                snprintf(p, sizeof p, "%s.taints[%zu]", path, j);
                if (!t || !json_object_is_type(t, json_type_object))
                        return fail(c, p, "expected a mapping with key, value and effect");
                if ((r = check_keys(c, t, p, keys)) < 0 || (r = get_string(c, t, "key", p, NULL, &key)) < 0 ||
                    (r = get_string(c, t, "value", p, NULL, &value)) < 0 ||
                    (r = get_string(c, t, "effect", p, NULL, &effect)) < 0)
                        return r;
                if (isempty(key)) {
                        snprintf(p + strlen(p), sizeof p - strlen(p), ".key");
                        return fail(c, p, "required");
                }
                if (!effect || (!streq(effect, "NoSchedule") && !streq(effect, "PreferNoSchedule") &&
                                !streq(effect, "NoExecute"))) {
                        snprintf(p + strlen(p), sizeof p - strlen(p), ".effect");
                        return fail(c, p, "expected NoSchedule, PreferNoSchedule or NoExecute");
                }
        }
        return 0;
}

static int load_nodes(Ctx *c, json_object *root)
{
        static const char *const keys[] = { "name", "count", "labels", "pool", "zone", "capacity",
                                            "taints", "unschedulable", NULL };
        json_object *list;
        char path[256], name[256];
        int r = get_list(c, root, "nodes", "", &list);
        for (size_t i = 0; r >= 0 && list && i < json_object_array_length(list); i++) {
                json_object *e = json_object_array_get_idx(list, i), *labels, *capacity, *taints;
                const char *pattern, *pool, *zone;
                int64_t count;
                bool unschedulable;
                snprintf(path, sizeof path, "nodes[%zu]", i);
                if (!e || !json_object_is_type(e, json_type_object))
                        return fail(c, path, "expected a mapping");
                if ((r = check_keys(c, e, path, keys)) < 0 || (r = get_string(c, e, "pool", path, NULL, &pool)) < 0 ||
                    (r = get_string(c, e, "zone", path, NULL, &zone)) < 0 ||
                    (r = get_int(c, e, "count", path, 1, 0, MAX_NODES_PER_ENTRY, &count)) < 0 ||
                    (r = get_string_map(c, e, "labels", path, &labels)) < 0 ||
                    (r = get_map(c, e, "capacity", path, &capacity)) < 0 || (r = get_list(c, e, "taints", path, &taints)) < 0 ||
                    (r = get_bool(c, e, "unschedulable", path, false, &unschedulable)) < 0 ||
                    (capacity && (r = check_capacity(c, capacity, path)) < 0) ||
                    (taints && (r = check_taints(c, taints, path)) < 0))
                        return r;
                r = get_string(c, e, "name", path, count == 1 && !json_object_object_get_ex(e, "count", NULL) ? NULL : "node-{n}",
                               &pattern);
                if (r < 0)
                        return r;
                if (!pattern)
                        pattern = "node-{n}";
                if (count > 1 && !strstr(pattern, "{i}") && !strstr(pattern, "{n}")) {
                        snprintf(path + strlen(path), sizeof path - strlen(path), ".name");
                        return fail(c, path, "a pattern for several nodes needs {i} or {n}");
                }
                for (int64_t k = 1; r >= 0 && k <= count; k++) {
                        expand_name(pattern, (int)k, c->node_count + 1, pool, zone, name, sizeof name);
                        r = make_node(c, name, labels, pool, zone, capacity, taints, unschedulable, path);
                }
        }
        return r;
}

/* ---- workloads -------------------------------------------------------------------------------- */

typedef struct Workload {
        const char *name, *ns, *kind, *image;
        int64_t replicas, grace, min_ready;
        double startup, shutdown;
        bool never_ready, probe, empty_dir, host_network;
        json_object *labels, *pod_labels, *pod_annotations, *resources, *node_selector, *tolerations;
        json_object *strategy; /* borrowed scenario mapping */
        json_object *pdb, *service;
        json_object *containers; /* borrowed: full containers list overrides image */
        json_object *env;
} Workload;

static int parse_workload(Ctx *c, json_object *e, const char *path, Workload *w)
{
        static const char *const keys[] = {
                "name", "namespace", "kind", "replicas", "image", "labels", "podLabels", "podAnnotations",
                "startupSeconds", "shutdownSeconds", "terminationGracePeriodSeconds", "neverReady", "readinessProbe",
                "resources", "minReadySeconds", "strategy", "nodeSelector", "tolerations", "emptyDir", "pdb", "service",
                "containers", "hostNetwork", "env", NULL,
        };
        json_object *probe = NULL;
        char p[512];
        int r;
        *w = (Workload){};
        if (!e || !json_object_is_type(e, json_type_object))
                return fail(c, path, "expected a mapping");
        if ((r = check_keys(c, e, path, keys)) < 0 || (r = get_string(c, e, "name", path, NULL, &w->name)) < 0 ||
            (r = get_string(c, e, "namespace", path, "default", &w->ns)) < 0 ||
            (r = get_string(c, e, "kind", path, "Deployment", &w->kind)) < 0 ||
            (r = get_string(c, e, "image", path, "registry.k8s.io/pause:3.9", &w->image)) < 0 ||
            (r = get_int(c, e, "replicas", path, 1, 0, 10000, &w->replicas)) < 0 ||
            (r = get_int(c, e, "terminationGracePeriodSeconds", path, 30, 0, 86400, &w->grace)) < 0 ||
            (r = get_int(c, e, "minReadySeconds", path, 0, 0, 86400, &w->min_ready)) < 0 ||
            (r = get_number(c, e, "startupSeconds", path, 2, 0, 86400, &w->startup)) < 0 ||
            (r = get_number(c, e, "shutdownSeconds", path, 1, 0, 86400, &w->shutdown)) < 0 ||
            (r = get_bool(c, e, "neverReady", path, false, &w->never_ready)) < 0 ||
            (r = get_bool(c, e, "emptyDir", path, false, &w->empty_dir)) < 0 ||
            (r = get_bool(c, e, "hostNetwork", path, false, &w->host_network)) < 0 ||
            (r = get_string_map(c, e, "labels", path, &w->labels)) < 0 ||
            (r = get_string_map(c, e, "podLabels", path, &w->pod_labels)) < 0 ||
            (r = get_string_map(c, e, "podAnnotations", path, &w->pod_annotations)) < 0 ||
            (r = get_string_map(c, e, "nodeSelector", path, &w->node_selector)) < 0 ||
            (r = get_map(c, e, "resources", path, &w->resources)) < 0 ||
            (r = get_map(c, e, "strategy", path, &w->strategy)) < 0 ||
            (r = get_list(c, e, "tolerations", path, &w->tolerations)) < 0 ||
            (r = get_list(c, e, "containers", path, &w->containers)) < 0 ||
            (r = get_list(c, e, "env", path, &w->env)) < 0)
                return r;
        if (!w->name) {
                snprintf(p, sizeof p, "%s.name", path);
                return fail(c, p, "required");
        }
        if (!streq(w->kind, "Deployment") && !streq(w->kind, "DaemonSet")) {
                snprintf(p, sizeof p, "%s.kind", path);
                return fail(c, p, "expected Deployment or DaemonSet");
        }
        w->probe = true;
        if (json_object_object_get_ex(e, "readinessProbe", &probe) && probe) {
                if (json_object_is_type(probe, json_type_boolean))
                        w->probe = json_object_get_boolean(probe);
                else if (!json_object_is_type(probe, json_type_object)) {
                        snprintf(p, sizeof p, "%s.readinessProbe", path);
                        return fail(c, p, "expected true, false or a probe mapping");
                }
        }
        if (w->strategy) {
                static const char *const skeys[] = { "type", "maxSurge", "maxUnavailable", NULL };
                const char *type;
                json_object *v;
                snprintf(p, sizeof p, "%s.strategy", path);
                if ((r = check_keys(c, w->strategy, p, skeys)) < 0 ||
                    (r = get_string(c, w->strategy, "type", p, NULL, &type)) < 0 ||
                    (r = get_intstr(c, w->strategy, "maxSurge", p, &v)) < 0 ||
                    (r = get_intstr(c, w->strategy, "maxUnavailable", p, &v)) < 0)
                        return r;
                if (type && !streq(type, "RollingUpdate") && !streq(type, streq(w->kind, "DaemonSet") ? "OnDelete" : "Recreate")) {
                        snprintf(p + strlen(p), sizeof p - strlen(p), ".type");
                        return fail(c, p, streq(w->kind, "DaemonSet") ? "expected RollingUpdate or OnDelete"
                                                                      : "expected RollingUpdate or Recreate");
                }
        }
        json_object *v = NULL;
        if (json_object_object_get_ex(e, "pdb", &v) && v) {
                static const char *const pkeys[] = { "name", "minAvailable", "maxUnavailable", "unhealthyPodEvictionPolicy", NULL };
                json_object *min, *max;
                snprintf(p, sizeof p, "%s.pdb", path);
                if (!json_object_is_type(v, json_type_object))
                        return fail(c, p, "expected a mapping");
                if ((r = check_keys(c, v, p, pkeys)) < 0 || (r = get_intstr(c, v, "minAvailable", p, &min)) < 0 ||
                    (r = get_intstr(c, v, "maxUnavailable", p, &max)) < 0)
                        return r;
                if (!!min == !!max)
                        return fail(c, p, "exactly one of minAvailable and maxUnavailable is required");
                w->pdb = v;
        }
        if (json_object_object_get_ex(e, "service", &v) && v) {
                snprintf(p, sizeof p, "%s.service", path);
                if (json_object_is_type(v, json_type_object)) {
                        static const char *const vkeys[] = { "name", "port", "targetPort", "selector", "type", NULL };
                        int64_t port;
                        json_object *sel;
                        if ((r = check_keys(c, v, p, vkeys)) < 0 || (r = get_int(c, v, "port", p, 80, 1, 65535, &port)) < 0 ||
                            (r = get_string_map(c, v, "selector", p, &sel)) < 0)
                                return r;
                        w->service = v;
                } else if (json_object_is_type(v, json_type_boolean)) {
                        w->service = json_object_get_boolean(v) ? v : NULL;
                } else
                        return fail(c, p, "expected true or a mapping");
        }
        return 0;
}

/* Builds the pod template of a workload. Owned. */
static json_object *workload_template(const Workload *w, json_object *selector_labels)
{
        char buf[64];
        _cleanup_(json_object_putp) json_object *t = NULL;
        if (parse_json("{\"metadata\":{\"labels\":{},\"annotations\":{}},\"spec\":{\"containers\":[]}}", &t) < 0)
                return NULL;
        json_object *labels = mr_json_get(t, "metadata", "labels", NULL);
        json_object *ann = mr_json_get(t, "metadata", "annotations", NULL);
        json_object *spec = mr_json_get(t, "spec", NULL);
        if (merge_into(labels, selector_labels) < 0 || merge_into(labels, w->pod_labels) < 0 ||
            merge_into(ann, w->pod_annotations) < 0)
                return NULL;
        snprintf(buf, sizeof buf, "%g", w->startup);
        if (mr_json_set_str(ann, "sim.meshroll.io/startup-seconds", buf) < 0)
                return NULL;
        snprintf(buf, sizeof buf, "%g", w->shutdown);
        if (mr_json_set_str(ann, "sim.meshroll.io/shutdown-seconds", buf) < 0)
                return NULL;
        if (w->never_ready && mr_json_set_str(ann, "sim.meshroll.io/never-ready", "true") < 0)
                return NULL;
        if (mr_json_set_int(spec, "terminationGracePeriodSeconds", w->grace) < 0)
                return NULL;
        if (w->host_network && mr_json_set_bool(spec, "hostNetwork", true) < 0)
                return NULL;
        if (w->node_selector)
                json_object_object_add(spec, "nodeSelector", json_object_get(w->node_selector));
        if (w->tolerations)
                json_object_object_add(spec, "tolerations", json_object_get(w->tolerations));
        if (w->containers) {
                json_object *copy = mr_json_copy(w->containers);
                if (!copy)
                        return NULL;
                json_object_object_add(spec, "containers", copy);
                return TAKE_PTR(t);
        }
        json_object *ctr = NULL;
        int64_t port = 8080;
        json_object *tp = mr_json_get(w->service, "targetPort", NULL);
        if (tp && json_object_is_type(tp, json_type_int))
                port = json_object_get_int64(tp);
        snprintf(buf, sizeof buf, "%lld", (long long)port);
        if (parse_json("{\"name\":\"app\",\"ports\":[{\"name\":\"http\",\"protocol\":\"TCP\"}]}", &ctr) < 0)
                return NULL;
        json_object_array_add(mr_json_get(spec, "containers", NULL), ctr);
        mr_json_set_int(json_object_array_get_idx(mr_json_get(ctr, "ports", NULL), 0), "containerPort", port);
        if (mr_json_set_str(ctr, "name", w->name) < 0 || mr_json_set_str(ctr, "image", w->image) < 0)
                return NULL;
        if (w->resources) {
                json_object *res = json_object_new_object();
                if (!res)
                        return NULL;
                json_object_object_add(res, "requests", json_object_get(w->resources));
                json_object_object_add(ctr, "resources", res);
        }
        if (w->env)
                json_object_object_add(ctr, "env", json_object_get(w->env));
        if (w->probe) {
                json_object *probe = NULL;
                if (parse_json("{\"httpGet\":{\"path\":\"/healthz\",\"port\":\"http\"},\"periodSeconds\":5,"
                               "\"failureThreshold\":3}",
                               &probe) < 0)
                        return NULL;
                json_object_object_add(ctr, "readinessProbe", probe);
        }
        if (w->empty_dir) {
                json_object *vol = NULL, *mount = NULL;
                if (parse_json("[{\"name\":\"scratch\",\"emptyDir\":{}}]", &vol) < 0)
                        return NULL;
                json_object_object_add(spec, "volumes", vol);
                if (parse_json("[{\"name\":\"scratch\",\"mountPath\":\"/scratch\"}]", &mount) < 0)
                        return NULL;
                json_object_object_add(ctr, "volumeMounts", mount);
        }
        return TAKE_PTR(t);
}

static int create_workload(Ctx *c, const Workload *w, const char *path)
{
        _cleanup_(json_object_putp) json_object *sel_labels = NULL;
        json_object *obj = NULL;
        int r;

        r = ensure_namespace(c, w->ns, NULL, path);
        if (r < 0)
                return r;
        sel_labels = w->labels ? mr_json_copy(w->labels) : json_object_new_object();
        if (!sel_labels || (!w->labels && mr_json_set_str(sel_labels, "app", w->name) < 0))
                return -ENOMEM;
        json_object *tmpl = workload_template(w, sel_labels);
        bool ds = streq(w->kind, "DaemonSet");
        if (!tmpl || parse_json(ds ? "{\"apiVersion\":\"apps/v1\",\"kind\":\"DaemonSet\",\"metadata\":{},\"spec\":{\"selector\":{}}}"
                                   : "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{},\"spec\":{\"selector\":{}}}",
                                &obj) < 0) {
                json_object_put(tmpl);
                return -ENOMEM;
        }
        json_object *meta = mr_json_get(obj, "metadata", NULL), *spec = mr_json_get(obj, "spec", NULL);
        json_object_object_add(spec, "template", tmpl);
        json_object_object_add(mr_json_get(spec, "selector", NULL), "matchLabels", mr_json_copy(sel_labels));
        json_object_object_add(meta, "labels", mr_json_copy(sel_labels));
        if (mr_json_set_str(meta, "name", w->name) < 0 || mr_json_set_str(meta, "namespace", w->ns) < 0 ||
            (w->min_ready && mr_json_set_int(spec, "minReadySeconds", w->min_ready) < 0) ||
            (!ds && mr_json_set_int(spec, "replicas", w->replicas) < 0)) {
                json_object_put(obj);
                return -ENOMEM;
        }
        if (w->strategy) {
                json_object *st = json_object_new_object(), *ru = json_object_new_object();
                const char *type = mr_json_get_str(w->strategy, "type", NULL);
                if (!st || !ru) {
                        json_object_put(st);
                        json_object_put(ru);
                        json_object_put(obj);
                        return -ENOMEM;
                }
                mr_json_set_str(st, "type", type ? type : "RollingUpdate");
                json_object *v;
                if ((v = mr_json_get(w->strategy, "maxSurge", NULL)))
                        json_object_object_add(ru, "maxSurge", json_object_get(v));
                if ((v = mr_json_get(w->strategy, "maxUnavailable", NULL)))
                        json_object_object_add(ru, "maxUnavailable", json_object_get(v));
                if (!type || streq(type, "RollingUpdate"))
                        json_object_object_add(st, "rollingUpdate", ru);
                else
                        json_object_put(ru);
                json_object_object_add(spec, ds ? "updateStrategy" : "strategy", st);
        }
        r = create_obj(c, ds ? &SIM_DAEMONSETS : &SIM_DEPLOYMENTS, obj, path);
        if (r < 0)
                return r;

        if (w->pdb) {
                json_object *pdb = NULL;
                const char *pname = mr_json_get_str(w->pdb, "name", NULL);
                if (parse_json("{\"apiVersion\":\"policy/v1\",\"kind\":\"PodDisruptionBudget\",\"metadata\":{},"
                               "\"spec\":{\"selector\":{}}}",
                               &pdb) < 0)
                        return -ENOMEM;
                json_object *pspec = mr_json_get(pdb, "spec", NULL);
                json_object_object_add(mr_json_get(pspec, "selector", NULL), "matchLabels", mr_json_copy(sel_labels));
                json_object *v;
                if ((v = mr_json_get(w->pdb, "minAvailable", NULL)))
                        json_object_object_add(pspec, "minAvailable", json_object_get(v));
                if ((v = mr_json_get(w->pdb, "maxUnavailable", NULL)))
                        json_object_object_add(pspec, "maxUnavailable", json_object_get(v));
                if ((v = mr_json_get(w->pdb, "unhealthyPodEvictionPolicy", NULL)))
                        json_object_object_add(pspec, "unhealthyPodEvictionPolicy", json_object_get(v));
                if (mr_json_set_str(mr_json_get(pdb, "metadata", NULL), "name", pname ? pname : w->name) < 0 ||
                    mr_json_set_str(mr_json_get(pdb, "metadata", NULL), "namespace", w->ns) < 0) {
                        json_object_put(pdb);
                        return -ENOMEM;
                }
                r = create_obj(c, &SIM_PDBS, pdb, path);
                if (r < 0)
                        return r;
        }
        if (w->service) {
                json_object *svc = NULL, *sel = mr_json_get(w->service, "selector", NULL);
                const char *sname = mr_json_get_str(w->service, "name", NULL);
                const char *type = mr_json_get_str(w->service, "type", NULL);
                int64_t port = 80;
                (void)mr_json_get_int(&port, w->service, "port", NULL);
                json_object *tp = mr_json_get(w->service, "targetPort", NULL);
                if (parse_json("{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{},\"spec\":{"
                               "\"ports\":[{\"name\":\"http\",\"protocol\":\"TCP\"}]}}",
                               &svc) < 0)
                        return -ENOMEM;
                json_object *sspec = mr_json_get(svc, "spec", NULL);
                json_object *p0 = json_object_array_get_idx(mr_json_get(sspec, "ports", NULL), 0);
                json_object_object_add(sspec, "selector", mr_json_copy(sel ? sel : sel_labels));
                json_object_object_add(p0, "targetPort", tp ? json_object_get(tp) : json_object_new_string("http"));
                if (mr_json_set_int(p0, "port", port) < 0 || mr_json_set_str(sspec, "type", type ? type : "ClusterIP") < 0 ||
                    mr_json_set_str(mr_json_get(svc, "metadata", NULL), "name", sname ? sname : w->name) < 0 ||
                    mr_json_set_str(mr_json_get(svc, "metadata", NULL), "namespace", w->ns) < 0) {
                        json_object_put(svc);
                        return -ENOMEM;
                }
                r = create_obj(c, &SIM_SERVICES, svc, path);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int load_workloads(Ctx *c, json_object *root)
{
        json_object *list;
        char path[256];
        int r = get_list(c, root, "workloads", "", &list);
        for (size_t i = 0; r >= 0 && list && i < json_object_array_length(list); i++) {
                Workload w;
                snprintf(path, sizeof path, "workloads[%zu]", i);
                r = parse_workload(c, json_object_array_get_idx(list, i), path, &w);
                if (r >= 0)
                        r = create_workload(c, &w, path);
        }
        return r;
}

/* ---- raw objects ------------------------------------------------------------------------------ */

static int load_objects(Ctx *c, json_object *root)
{
        json_object *list;
        char path[256];
        int r = get_list(c, root, "objects", "", &list);
        for (size_t i = 0; r >= 0 && list && i < json_object_array_length(list); i++) {
                json_object *o = json_object_array_get_idx(list, i);
                const char *api, *kind, *ns;
                snprintf(path, sizeof path, "objects[%zu]", i);
                if (!o || !json_object_is_type(o, json_type_object))
                        return fail(c, path, "expected a Kubernetes object");
                api = mr_json_get_str(o, "apiVersion", NULL);
                kind = mr_json_get_str(o, "kind", NULL);
                if (!api || !kind)
                        return fail(c, path, "apiVersion and kind are required");
                const SimKind *k = sim_store_find_kind_by_kind(c->store, api, kind);
                if (!k)
                        return fail(c, path, "no kind %s in %s (declare a CustomResourceDefinition first)", kind, api);
                ns = mr_json_get_str(o, "metadata", "namespace", NULL);
                if (k->namespaced) {
                        r = ensure_namespace(c, ns ? ns : "default", NULL, path);
                        if (r < 0)
                                return r;
                }
                json_object *copy = mr_json_copy(o);
                if (!copy)
                        return -ENOMEM;
                if (k->namespaced && !ns && mr_json_set_str(mr_json_ensure_object(copy, "metadata", NULL), "namespace", "default") < 0) {
                        json_object_put(copy);
                        return -ENOMEM;
                }
                r = create_obj(c, k, copy, path);
        }
        return r;
}

/* ---- Istio ------------------------------------------------------------------------------------- */

static int istiod(Ctx *c, const char *ns, const char *rev, const char *version, int64_t replicas, const char *path)
{
        char buf[4096];
        json_object *o = NULL;
        int r;

        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"istiod-%s\",\"namespace\":\"%s\","
                 "\"labels\":{\"app\":\"istiod\",\"istio.io/rev\":\"%s\",\"istio\":\"pilot\",\"app.kubernetes.io/version\":\"%s\"}},"
                 "\"spec\":{\"replicas\":%lld,\"selector\":{\"matchLabels\":{\"app\":\"istiod\",\"istio.io/rev\":\"%s\"}},"
                 "\"strategy\":{\"rollingUpdate\":{\"maxSurge\":\"100%%\",\"maxUnavailable\":\"25%%\"}},"
                 "\"template\":{\"metadata\":{\"labels\":{\"app\":\"istiod\",\"istio.io/rev\":\"%s\",\"istio\":\"pilot\","
                 "\"sidecar.istio.io/inject\":\"false\"},\"annotations\":{\"sim.meshroll.io/startup-seconds\":\"5\"}},"
                 "\"spec\":{\"terminationGracePeriodSeconds\":30,\"containers\":[{\"name\":\"discovery\","
                 "\"image\":\"docker.io/istio/pilot:%s\",\"ports\":[{\"containerPort\":8080,\"protocol\":\"TCP\"},"
                 "{\"containerPort\":15010,\"protocol\":\"TCP\"},{\"containerPort\":15017,\"protocol\":\"TCP\"}],"
                 "\"readinessProbe\":{\"httpGet\":{\"path\":\"/ready\",\"port\":8080}},"
                 "\"resources\":{\"requests\":{\"cpu\":\"500m\",\"memory\":\"2Gi\"}}}]}}}}",
                 rev, ns, rev, version, (long long)replicas, rev, rev, version);
        if (parse_json(buf, &o) < 0)
                return -ENOMEM;
        if ((r = create_obj(c, &SIM_DEPLOYMENTS, o, path)) < 0)
                return r;
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"istiod-%s\",\"namespace\":\"%s\","
                 "\"labels\":{\"app\":\"istiod\",\"istio.io/rev\":\"%s\",\"istio\":\"pilot\"}},\"spec\":{\"type\":\"ClusterIP\","
                 "\"selector\":{\"app\":\"istiod\",\"istio.io/rev\":\"%s\"},\"ports\":["
                 "{\"name\":\"grpc-xds\",\"port\":15010,\"protocol\":\"TCP\",\"targetPort\":15010},"
                 "{\"name\":\"https-dns\",\"port\":15012,\"protocol\":\"TCP\",\"targetPort\":15012},"
                 "{\"name\":\"https-webhook\",\"port\":443,\"protocol\":\"TCP\",\"targetPort\":15017},"
                 "{\"name\":\"http-monitoring\",\"port\":15014,\"protocol\":\"TCP\",\"targetPort\":15014}]}}",
                 rev, ns, rev, rev);
        if (parse_json(buf, &o) < 0)
                return -ENOMEM;
        if ((r = create_obj(c, &SIM_SERVICES, o, path)) < 0)
                return r;
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"admissionregistration.k8s.io/v1\",\"kind\":\"MutatingWebhookConfiguration\","
                 "\"metadata\":{\"name\":\"istio-sidecar-injector-%s\",\"labels\":{\"app\":\"sidecar-injector\","
                 "\"istio.io/rev\":\"%s\"}},\"webhooks\":[{\"name\":\"rev.namespace.sidecar-injector.istio.io\","
                 "\"clientConfig\":{\"service\":{\"name\":\"istiod-%s\",\"namespace\":\"%s\",\"path\":\"/inject\",\"port\":443}},"
                 "\"namespaceSelector\":{\"matchExpressions\":[{\"key\":\"istio.io/rev\",\"operator\":\"In\",\"values\":[\"%s\"]},"
                 "{\"key\":\"istio-injection\",\"operator\":\"DoesNotExist\"}]},"
                 "\"objectSelector\":{\"matchExpressions\":[{\"key\":\"sidecar.istio.io/inject\",\"operator\":\"NotIn\","
                 "\"values\":[\"false\"]}]},\"rules\":[{\"operations\":[\"CREATE\"],\"apiGroups\":[\"\"],\"apiVersions\":[\"v1\"],"
                 "\"resources\":[\"pods\"]}],\"failurePolicy\":\"Fail\",\"sideEffects\":\"None\","
                 "\"admissionReviewVersions\":[\"v1\"]}]}",
                 rev, rev, rev, ns, rev);
        if (parse_json(buf, &o) < 0)
                return -ENOMEM;
        if ((r = create_obj(c, &SIM_MUTATINGWEBHOOKS, o, path)) < 0)
                return r;
        if (replicas > 1) {
                snprintf(buf, sizeof buf,
                         "{\"apiVersion\":\"policy/v1\",\"kind\":\"PodDisruptionBudget\",\"metadata\":{\"name\":\"istiod-%s\","
                         "\"namespace\":\"%s\",\"labels\":{\"app\":\"istiod\",\"istio.io/rev\":\"%s\"}},\"spec\":{\"minAvailable\":1,"
                         "\"selector\":{\"matchLabels\":{\"app\":\"istiod\",\"istio.io/rev\":\"%s\"}}}}",
                         rev, ns, rev, rev);
                if (parse_json(buf, &o) < 0)
                        return -ENOMEM;
                if ((r = create_obj(c, &SIM_PDBS, o, path)) < 0)
                        return r;
        }
        return 0;
}

static int revision_tag(Ctx *c, const char *ns, const char *tag, const char *rev, const char *path)
{
        char buf[4096];
        json_object *o = NULL;
        int r;
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"admissionregistration.k8s.io/v1\",\"kind\":\"MutatingWebhookConfiguration\","
                 "\"metadata\":{\"name\":\"istio-revision-tag-%s\",\"labels\":{\"app\":\"sidecar-injector\","
                 "\"istio.io/rev\":\"%s\",\"istio.io/tag\":\"%s\",\"app.kubernetes.io/name\":\"istiod\"}},\"webhooks\":["
                 "{\"name\":\"rev.namespace.sidecar-injector.istio.io\","
                 "\"clientConfig\":{\"service\":{\"name\":\"istiod-%s\",\"namespace\":\"%s\",\"path\":\"/inject\",\"port\":443}},"
                 "\"namespaceSelector\":{\"matchExpressions\":[{\"key\":\"istio.io/rev\",\"operator\":\"In\",\"values\":[\"%s\"]},"
                 "{\"key\":\"istio-injection\",\"operator\":\"DoesNotExist\"}]},"
                 "\"objectSelector\":{\"matchExpressions\":[{\"key\":\"sidecar.istio.io/inject\",\"operator\":\"NotIn\","
                 "\"values\":[\"false\"]}]},\"rules\":[{\"operations\":[\"CREATE\"],\"apiGroups\":[\"\"],\"apiVersions\":[\"v1\"],"
                 "\"resources\":[\"pods\"]}],\"failurePolicy\":\"Fail\",\"sideEffects\":\"None\",\"admissionReviewVersions\":[\"v1\"]},"
                 "{\"name\":\"rev.object.sidecar-injector.istio.io\","
                 "\"clientConfig\":{\"service\":{\"name\":\"istiod-%s\",\"namespace\":\"%s\",\"path\":\"/inject\",\"port\":443}},"
                 "\"namespaceSelector\":{\"matchExpressions\":[{\"key\":\"istio.io/rev\",\"operator\":\"DoesNotExist\"},"
                 "{\"key\":\"istio-injection\",\"operator\":\"DoesNotExist\"}]},"
                 "\"objectSelector\":{\"matchExpressions\":[{\"key\":\"sidecar.istio.io/inject\",\"operator\":\"NotIn\","
                 "\"values\":[\"false\"]},{\"key\":\"istio.io/rev\",\"operator\":\"In\",\"values\":[\"%s\"]}]},"
                 "\"rules\":[{\"operations\":[\"CREATE\"],\"apiGroups\":[\"\"],\"apiVersions\":[\"v1\"],\"resources\":[\"pods\"]}],"
                 "\"failurePolicy\":\"Fail\",\"sideEffects\":\"None\",\"admissionReviewVersions\":[\"v1\"]}]}",
                 tag, rev, tag, rev, ns, tag, rev, ns, tag);
        if (parse_json(buf, &o) < 0)
                return -ENOMEM;
        if ((r = create_obj(c, &SIM_MUTATINGWEBHOOKS, o, path)) < 0)
                return r;
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"istiod-revision-tag-%s\",\"namespace\":\"%s\","
                 "\"labels\":{\"app\":\"istiod\",\"istio\":\"pilot\",\"istio.io/rev\":\"%s\",\"istio.io/tag\":\"%s\"}},"
                 "\"spec\":{\"selector\":{\"app\":\"istiod\",\"istio.io/rev\":\"%s\"},\"ports\":["
                 "{\"name\":\"grpc-xds\",\"port\":15010,\"protocol\":\"TCP\",\"targetPort\":15010},"
                 "{\"name\":\"https-dns\",\"port\":15012,\"protocol\":\"TCP\",\"targetPort\":15012},"
                 "{\"name\":\"https-webhook\",\"port\":443,\"protocol\":\"TCP\",\"targetPort\":15017},"
                 "{\"name\":\"http-monitoring\",\"port\":15014,\"protocol\":\"TCP\",\"targetPort\":15014}]}}",
                 tag, ns, rev, tag, rev);
        if (parse_json(buf, &o) < 0)
                return -ENOMEM;
        return create_obj(c, &SIM_SERVICES, o, path);
}

/* The ztunnel pod template for a revision (owned). */
static json_object *ztunnel_template(const char *ns, const char *rev, const char *image, double startup, double shutdown,
                                     int64_t grace)
{
        char buf[3072];
        json_object *t = NULL;
        snprintf(buf, sizeof buf,
                 "{\"metadata\":{\"labels\":{\"app\":\"ztunnel\",\"app.kubernetes.io/name\":\"ztunnel\","
                 "\"sidecar.istio.io/inject\":\"false\",\"istio.io/dataplane-mode\":\"none\"},"
                 "\"annotations\":{\"istio.io/rev\":\"%s\",\"sidecar.istio.io/inject\":\"false\",\"prometheus.io/port\":\"15020\","
                 "\"prometheus.io/scrape\":\"true\",\"sim.meshroll.io/startup-seconds\":\"%g\","
                 "\"sim.meshroll.io/shutdown-seconds\":\"%g\"}},"
                 "\"spec\":{\"serviceAccountName\":\"ztunnel\",\"priorityClassName\":\"system-node-critical\","
                 "\"terminationGracePeriodSeconds\":%lld,\"nodeSelector\":{\"kubernetes.io/os\":\"linux\"},"
                 "\"tolerations\":[{\"effect\":\"NoSchedule\",\"operator\":\"Exists\"},{\"key\":\"CriticalAddonsOnly\","
                 "\"operator\":\"Exists\"},{\"effect\":\"NoExecute\",\"operator\":\"Exists\"}],"
                 "\"containers\":[{\"name\":\"istio-proxy\",\"image\":\"%s\",\"ports\":[{\"containerPort\":15020,"
                 "\"name\":\"ztunnel-stats\",\"protocol\":\"TCP\"}],\"readinessProbe\":{\"httpGet\":{\"path\":\"/healthz/ready\","
                 "\"port\":15021}},\"env\":[{\"name\":\"CA_ADDRESS\",\"value\":\"istiod-%s.%s.svc:15012\"},"
                 "{\"name\":\"XDS_ADDRESS\",\"value\":\"istiod-%s.%s.svc:15012\"}]}]}}",
                 rev, startup, shutdown, (long long)grace, image, rev, ns, rev, ns);
        return parse_json(buf, &t) < 0 ? NULL : t;
}

/*
 * The ztunnel DaemonSet at `rev`; with a pending revision, the pods of rev
 * on every node and then the template moved to `pending` (OnDelete keeps them).
 */
static int ztunnel(Ctx *c, const char *ns, json_object *z, const char *path, json_object *versions)
{
        const char *rev, *pending, *strategy, *name, *image, *pending_image;
        double startup, shutdown;
        int64_t grace;
        char p[512], buf[1024], hash[16];
        int r;
        static const char *const keys[] = { "name", "revision", "pendingRevision", "updateStrategy", "image", "pendingImage",
                                            "startupSeconds", "shutdownSeconds", "terminationGracePeriodSeconds", NULL };

        if ((r = check_keys(c, z, path, keys)) < 0 || (r = get_string(c, z, "revision", path, NULL, &rev)) < 0 ||
            (r = get_string(c, z, "name", path, "ztunnel", &name)) < 0 ||
            (r = get_string(c, z, "pendingRevision", path, NULL, &pending)) < 0 ||
            (r = get_string(c, z, "updateStrategy", path, "OnDelete", &strategy)) < 0 ||
            (r = get_string(c, z, "image", path, NULL, &image)) < 0 ||
            (r = get_string(c, z, "pendingImage", path, NULL, &pending_image)) < 0 ||
            (r = get_number(c, z, "startupSeconds", path, 3, 0, 86400, &startup)) < 0 ||
            (r = get_number(c, z, "shutdownSeconds", path, 5, 0, 86400, &shutdown)) < 0 ||
            (r = get_int(c, z, "terminationGracePeriodSeconds", path, 30, 0, 86400, &grace)) < 0)
                return r;
        if (!rev) {
                snprintf(p, sizeof p, "%s.revision", path);
                return fail(c, p, "required");
        }
        if (!streq(strategy, "OnDelete") && !streq(strategy, "RollingUpdate")) {
                snprintf(p, sizeof p, "%s.updateStrategy", path);
                return fail(c, p, "expected OnDelete or RollingUpdate");
        }
        char img[300], pimg[300];
        snprintf(img, sizeof img, "%s", image ? image : "");
        if (!image)
                snprintf(img, sizeof img, "docker.io/istio/ztunnel:%s", strempty(mr_json_get_str(versions, rev, NULL)));
        json_object *tmpl = ztunnel_template(ns, rev, img, startup, shutdown, grace);
        json_object *ds = NULL;
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"apps/v1\",\"kind\":\"DaemonSet\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\","
                 "\"labels\":{\"app.kubernetes.io/name\":\"ztunnel\",\"app.kubernetes.io/part-of\":\"istio\"},"
                 "\"annotations\":{\"istio.io/rev\":\"%s\"}},\"spec\":{\"selector\":{\"matchLabels\":{\"app\":\"ztunnel\"}},"
                 "\"updateStrategy\":{\"type\":\"%s\"}}}",
                 name, ns, rev, strategy);
        if (!tmpl || parse_json(buf, &ds) < 0) {
                json_object_put(tmpl);
                return -ENOMEM;
        }
        if (streq(strategy, "RollingUpdate")) {
                json_object *ru = NULL;
                if (parse_json("{\"maxSurge\":1,\"maxUnavailable\":0}", &ru) < 0) {
                        json_object_put(tmpl);
                        json_object_put(ds);
                        return -ENOMEM;
                }
                json_object_object_add(mr_json_get(ds, "spec", "updateStrategy", NULL), "rollingUpdate", ru);
        }
        json_object_object_add(mr_json_get(ds, "spec", NULL), "template", tmpl);
        json_object *created = NULL;
        MrError e = {};
        r = sim_store_create(c->store, &SIM_DAEMONSETS, ds, ACTOR, &created, &e);
        if (r < 0)
                return fail(c, path, "%s", e.message);
        if (!pending)
                return 0;

        /* Start mid-upgrade: the current revision's history and pods, then the new template. */
        _cleanup_(json_object_putp) json_object *dsc = mr_json_copy(created);
        if (!dsc)
                return -ENOMEM;
        tmpl = mr_json_get(dsc, "spec", "template", NULL);
        sim_hash_json(tmpl, 0, hash);
        _cleanup_(json_object_putp) json_object *ref = sim_owner_ref_new(dsc, "apps/v1", "DaemonSet");
        json_object *cr = NULL;
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"apps/v1\",\"kind\":\"ControllerRevision\",\"metadata\":{\"name\":\"%s-%s\",\"namespace\":\"%s\","
                 "\"labels\":{\"app\":\"ztunnel\",\"controller-revision-hash\":\"%s\"},\"ownerReferences\":[]},"
                 "\"data\":{\"spec\":{}},\"revision\":1}",
                 name, hash, ns, hash);
        if (!ref || parse_json(buf, &cr) < 0)
                return -ENOMEM;
        json_object *cr_tmpl = mr_json_copy(tmpl);
        if (!cr_tmpl) {
                json_object_put(cr);
                return -ENOMEM;
        }
        mr_json_set_str(cr_tmpl, "$patch", "replace");
        json_object_object_add(mr_json_get(cr, "data", "spec", NULL), "template", cr_tmpl);
        json_object_array_add(mr_json_get(cr, "metadata", "ownerReferences", NULL), json_object_get(ref));
        if ((r = create_obj(c, &SIM_CONTROLLERREVISIONS, cr, path)) < 0)
                return r;
        for (size_t i = 0; i < json_object_array_length(c->node_names); i++) {
                const char *node = json_object_get_string(json_object_array_get_idx(c->node_names, i));
                json_object *nobj = sim_store_get(c->store, &SIM_NODES, NULL, node);
                if (!sim_node_fits_placement(tmpl, nobj))
                        continue;
                json_object *pod = NULL;
                snprintf(buf, sizeof buf, "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"generateName\":\"%s-\","
                                          "\"namespace\":\"%s\",\"ownerReferences\":[]},\"status\":{\"phase\":\"Pending\"}}",
                         name, ns);
                if (parse_json(buf, &pod) < 0)
                        return -ENOMEM;
                json_object *meta = mr_json_get(pod, "metadata", NULL);
                json_object *labels = mr_json_copy(mr_json_get(tmpl, "metadata", "labels", NULL));
                json_object *ann = mr_json_copy(mr_json_get(tmpl, "metadata", "annotations", NULL));
                json_object *spec = mr_json_copy(mr_json_get(tmpl, "spec", NULL));
                if (!labels || !ann || !spec) {
                        json_object_put(labels);
                        json_object_put(ann);
                        json_object_put(spec);
                        json_object_put(pod);
                        return -ENOMEM;
                }
                json_object_object_add(meta, "labels", labels);
                json_object_object_add(meta, "annotations", ann);
                json_object_object_add(pod, "spec", spec);
                json_object_array_add(mr_json_get(meta, "ownerReferences", NULL), json_object_get(ref));
                json_object *tol = sim_daemon_tolerations(mr_json_get(spec, "tolerations", NULL));
                if (!tol) {
                        json_object_put(pod);
                        return -ENOMEM;
                }
                json_object_object_add(spec, "tolerations", tol);
                mr_json_set_str(labels, "controller-revision-hash", hash);
                mr_json_set_str(labels, "pod-template-generation", "1");
                mr_json_set_str(spec, "nodeName", node);
                mr_json_set_str(spec, "schedulerName", "default-scheduler");
                mr_json_set_str(spec, "restartPolicy", "Always");
                if ((r = create_obj(c, &SIM_PODS, pod, path)) < 0)
                        return r;
        }
        /* Move the template to the pending revision (generation 2). */
        if (!pending_image)
                snprintf(pimg, sizeof pimg, "docker.io/istio/ztunnel:%s", strempty(mr_json_get_str(versions, pending, NULL)));
        else
                snprintf(pimg, sizeof pimg, "%s", pending_image);
        json_object *new_tmpl = ztunnel_template(ns, pending, pimg, startup, shutdown, grace);
        if (!new_tmpl)
                return -ENOMEM;
        json_object *upd = mr_json_copy(created);
        if (!upd) {
                json_object_put(new_tmpl);
                return -ENOMEM;
        }
        json_object_object_add(mr_json_get(upd, "spec", NULL), "template", new_tmpl);
        mr_json_set_str(mr_json_ensure_object(upd, "metadata", "annotations", NULL), "istio.io/rev", pending);
        r = sim_store_update(c->store, &SIM_DAEMONSETS, upd, 0, ACTOR, NULL, &e);
        return r < 0 ? fail(c, path, "%s", e.message) : 0;
}

static int gateway(Ctx *c, json_object *g, const char *path, const char *istio_ns)
{
        static const char *const keys[] = { "name", "namespace", "revision", "replicas", "labels", "service",
                                            "startupSeconds", NULL };
        const char *name, *ns, *rev;
        int64_t replicas;
        double startup;
        json_object *labels, *svc = NULL;
        char p[512], buf[3072];
        int r;
        if (!g || !json_object_is_type(g, json_type_object))
                return fail(c, path, "expected a mapping");
        if ((r = check_keys(c, g, path, keys)) < 0 || (r = get_string(c, g, "name", path, NULL, &name)) < 0 ||
            (r = get_string(c, g, "namespace", path, "istio-ingress", &ns)) < 0 ||
            (r = get_string(c, g, "revision", path, NULL, &rev)) < 0 ||
            (r = get_int(c, g, "replicas", path, 2, 0, 1000, &replicas)) < 0 ||
            (r = get_number(c, g, "startupSeconds", path, 3, 0, 86400, &startup)) < 0 ||
            (r = get_string_map(c, g, "labels", path, &labels)) < 0)
                return r;
        if (!name || !rev) {
                snprintf(p, sizeof p, "%s.%s", path, name ? "revision" : "name");
                return fail(c, p, "required");
        }
        (void)istio_ns;
        if ((r = ensure_namespace(c, ns, NULL, path)) < 0)
                return r;
        json_object *d = NULL;
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\","
                 "\"labels\":{\"app\":\"%s\",\"istio\":\"ingressgateway\",\"istio.io/rev\":\"%s\"}},"
                 "\"spec\":{\"replicas\":%lld,\"selector\":{\"matchLabels\":{\"app\":\"%s\",\"istio\":\"ingressgateway\"}},"
                 "\"strategy\":{\"rollingUpdate\":{\"maxSurge\":1,\"maxUnavailable\":0}},"
                 "\"template\":{\"metadata\":{\"labels\":{\"app\":\"%s\",\"istio\":\"ingressgateway\",\"istio.io/rev\":\"%s\","
                 "\"sidecar.istio.io/inject\":\"true\"},\"annotations\":{\"inject.istio.io/templates\":\"gateway\","
                 "\"sidecar.istio.io/inject\":\"true\",\"sim.meshroll.io/startup-seconds\":\"%g\"}},"
                 "\"spec\":{\"terminationGracePeriodSeconds\":30,\"containers\":[{\"name\":\"istio-proxy\",\"image\":\"auto\","
                 "\"ports\":[{\"containerPort\":8080,\"name\":\"http\",\"protocol\":\"TCP\"},"
                 "{\"containerPort\":15021,\"name\":\"status-port\",\"protocol\":\"TCP\"}]}]}}}}",
                 name, ns, name, rev, (long long)replicas, name, name, rev, startup);
        if (parse_json(buf, &d) < 0)
                return -ENOMEM;
        if (labels) {
                merge_into(mr_json_get(d, "spec", "template", "metadata", "labels", NULL), labels);
                merge_into(mr_json_get(d, "metadata", "labels", NULL), labels);
        }
        if ((r = create_obj(c, &SIM_DEPLOYMENTS, d, path)) < 0)
                return r;
        if (json_object_object_get_ex(g, "service", &svc) && svc) {
                const char *sname;
                json_object *sel;
                snprintf(p, sizeof p, "%s.service", path);
                if (!json_object_is_type(svc, json_type_object))
                        return fail(c, p, "expected a mapping");
                if ((r = get_string(c, svc, "name", p, name, &sname)) < 0 || (r = get_string_map(c, svc, "selector", p, &sel)) < 0)
                        return r;
                json_object *s = NULL;
                snprintf(buf, sizeof buf,
                         "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\"},"
                         "\"spec\":{\"type\":\"LoadBalancer\",\"ports\":[{\"name\":\"http2\",\"port\":80,\"protocol\":\"TCP\","
                         "\"targetPort\":8080},{\"name\":\"status-port\",\"port\":15021,\"protocol\":\"TCP\",\"targetPort\":15021}],"
                         "\"selector\":{\"app\":\"%s\",\"istio\":\"ingressgateway\"}}}",
                         sname, ns, name);
                if (parse_json(buf, &s) < 0)
                        return -ENOMEM;
                if (sel)
                        json_object_object_add(mr_json_get(s, "spec", NULL), "selector", json_object_get(sel));
                if ((r = create_obj(c, &SIM_SERVICES, s, p)) < 0)
                        return r;
        }
        return 0;
}

static int load_istio(Ctx *c, json_object *root)
{
        static const char *const keys[] = { "namespace", "revisions", "tags", "ztunnel", "gateways", NULL };
        static const char *const rkeys[] = { "name", "version", "replicas", NULL };
        json_object *istio, *revs, *tags, *z, *gws;
        const char *ns;
        char path[256];
        int r;

        if ((r = get_map(c, root, "istio", "", &istio)) < 0 || !istio)
                return r;
        if ((r = check_keys(c, istio, "istio", keys)) < 0 ||
            (r = get_string(c, istio, "namespace", "istio", "istio-system", &ns)) < 0 ||
            (r = get_list(c, istio, "revisions", "istio", &revs)) < 0 || (r = get_map(c, istio, "tags", "istio", &tags)) < 0 ||
            (r = get_map(c, istio, "ztunnel", "istio", &z)) < 0 || (r = get_list(c, istio, "gateways", "istio", &gws)) < 0)
                return r;
        if ((r = ensure_namespace(c, ns, NULL, "istio.namespace")) < 0)
                return r;
        _cleanup_(json_object_putp) json_object *versions = json_object_new_object();
        if (!versions)
                return -ENOMEM;
        for (size_t i = 0; revs && i < json_object_array_length(revs); i++) {
                json_object *e = json_object_array_get_idx(revs, i);
                const char *name, *version;
                int64_t replicas;
                snprintf(path, sizeof path, "istio.revisions[%zu]", i);
                if (!e || !json_object_is_type(e, json_type_object))
                        return fail(c, path, "expected a mapping");
                if ((r = check_keys(c, e, path, rkeys)) < 0 || (r = get_string(c, e, "name", path, NULL, &name)) < 0 ||
                    (r = get_string(c, e, "version", path, NULL, &version)) < 0 ||
                    (r = get_int(c, e, "replicas", path, 1, 0, 100, &replicas)) < 0)
                        return r;
                if (!name) {
                        snprintf(path + strlen(path), sizeof path - strlen(path), ".name");
                        return fail(c, path, "required");
                }
                if (json_object_object_get_ex(versions, name, NULL)) {
                        snprintf(path + strlen(path), sizeof path - strlen(path), ".name");
                        return fail(c, path, "revision \"%s\" is defined twice", name);
                }
                if (!version)
                        version = name;
                mr_json_set_str(versions, name, version);
                if ((r = istiod(c, ns, name, version, replicas, path)) < 0)
                        return r;
        }
        if (tags) {
                json_object_object_foreach(tags, tag, rv)
                {
                        snprintf(path, sizeof path, "istio.tags.%s", tag);
                        if (!rv || !json_object_is_type(rv, json_type_string))
                                return fail(c, path, "expected a revision name");
                        if (!json_object_object_get_ex(versions, json_object_get_string(rv), NULL))
                                return fail(c, path, "no revision \"%s\" in istio.revisions", json_object_get_string(rv));
                        if ((r = revision_tag(c, ns, tag, json_object_get_string(rv), path)) < 0)
                                return r;
                }
        }
        if (z) {
                const char *zr = mr_json_get_str(z, "revision", NULL), *zp = mr_json_get_str(z, "pendingRevision", NULL);
                if (zr && !json_object_object_get_ex(versions, zr, NULL) && !mr_json_get(z, "image", NULL))
                        return fail(c, "istio.ztunnel.revision", "no revision \"%s\" in istio.revisions", zr);
                if (zp && !json_object_object_get_ex(versions, zp, NULL) && !mr_json_get(z, "pendingImage", NULL))
                        return fail(c, "istio.ztunnel.pendingRevision", "no revision \"%s\" in istio.revisions", zp);
                if ((r = ztunnel(c, ns, z, "istio.ztunnel", versions)) < 0)
                        return r;
        }
        for (size_t i = 0; gws && i < json_object_array_length(gws); i++) {
                const char *gr = mr_json_get_str(json_object_array_get_idx(gws, i), "revision", NULL);
                snprintf(path, sizeof path, "istio.gateways[%zu]", i);
                if (gr && !json_object_object_get_ex(versions, gr, NULL)) {
                        snprintf(path + strlen(path), sizeof path - strlen(path), ".revision");
                        return fail(c, path, "no revision \"%s\" in istio.revisions", gr);
                }
                if ((r = gateway(c, json_object_array_get_idx(gws, i), path, ns)) < 0)
                        return r;
        }
        return 0;
}

/* ---- faults ------------------------------------------------------------------------------------ */

static int per_verb(Ctx *c, json_object *faults, const char *key, int kind)
{
        json_object *m;
        char path[256];
        int r = get_map(c, faults, key, "faults", &m);
        if (r < 0 || !m)
                return r;
        json_object_object_foreach(m, verb, v)
        {
                int id = sim_verb_from_string(verb);
                snprintf(path, sizeof path, "faults.%s.%s", key, verb);
                if (id < 0)
                        return fail(c, path, "unknown verb (get, list, watch, create, update, patch, delete)");
                if (kind == 0) {
                        if (!v || (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int)) ||
                            json_object_get_double(v) < 0 || json_object_get_double(v) > 1)
                                return fail(c, path, "expected a rate from 0 to 1");
                        c->faults->error_rate[id] = json_object_get_double(v);
                } else if (kind == 1) {
                        if (!v || !json_object_is_type(v, json_type_int) ||
                            (json_object_get_int(v) != 0 && (json_object_get_int(v) < 400 || json_object_get_int(v) > 599)))
                                return fail(c, path, "expected an HTTP status from 400 to 599");
                        c->faults->error_code[id] = json_object_get_int(v);
                } else {
                        usec_t d;
                        if (!v || !json_object_is_type(v, json_type_string) || mr_duration_parse(json_object_get_string(v), &d) < 0)
                                return fail(c, path, "expected a duration (\"50ms\", \"1s\")");
                        c->faults->latency[id] = d;
                }
        }
        return 0;
}

/* latencySpikes: {rate: 0.05, delay: 2s}: a share of all requests waits delay more. */
static int load_spikes(Ctx *c, json_object *faults)
{
        static const char *const keys[] = { "rate", "delay", NULL };
        json_object *m;
        const char *delay = NULL;
        int r;
        if ((r = get_map(c, faults, "latencySpikes", "faults", &m)) < 0 || !m)
                return r;
        if ((r = check_keys(c, m, "faults.latencySpikes", keys)) < 0 ||
            (r = get_number(c, m, "rate", "faults.latencySpikes", 0, 0, 1, &c->faults->spike_rate)) < 0 ||
            (r = get_string(c, m, "delay", "faults.latencySpikes", NULL, &delay)) < 0)
                return r;
        if (!delay || mr_duration_parse(delay, &c->faults->spike_delay) < 0 || c->faults->spike_delay > 60 * USEC_PER_SEC)
                return fail(c, "faults.latencySpikes.delay", "expected a duration of at most 60s (\"2s\")");
        return 0;
}

/* exemptUserAgents: [prefix, …]: clients no fault applies to (a test's own checks). */
static int load_exempt(Ctx *c, json_object *faults)
{
        json_object *l;
        char path[128];
        int r;
        if ((r = get_list(c, faults, "exemptUserAgents", "faults", &l)) < 0 || !l)
                return r;
        if (json_object_array_length(l) > ELEMENTSOF(c->faults->exempt_user_agents))
                return fail(c, "faults.exemptUserAgents", "expected at most 4 prefixes");
        for (size_t i = 0; i < json_object_array_length(l); i++) {
                json_object *v = json_object_array_get_idx(l, i);
                snprintf(path, sizeof path, "faults.exemptUserAgents[%zu]", i);
                if (!v || !json_object_is_type(v, json_type_string) || isempty(json_object_get_string(v)) ||
                    strlen(json_object_get_string(v)) >= sizeof(c->faults->exempt_user_agents[i]))
                        return fail(c, path, "expected a User-Agent prefix of 1 to 63 characters");
                snprintf(c->faults->exempt_user_agents[i], sizeof(c->faults->exempt_user_agents[i]), "%s",
                         json_object_get_string(v));
        }
        return 0;
}

static int load_faults(Ctx *c, json_object *root)
{
        static const char *const keys[] = { "errorRate", "errorCode", "latency", "dropWatchesAfter", "conflictRate",
                                            "neverReadyImages", "latencySpikes", "watchGoneRate", "exemptUserAgents",
                                            NULL };
        json_object *f, *images;
        const char *drop;
        int r;
        if ((r = get_map(c, root, "faults", "", &f)) < 0 || !f)
                return r;
        if ((r = check_keys(c, f, "faults", keys)) < 0 || (r = per_verb(c, f, "errorRate", 0)) < 0 ||
            (r = per_verb(c, f, "errorCode", 1)) < 0 || (r = per_verb(c, f, "latency", 2)) < 0 ||
            (r = get_number(c, f, "conflictRate", "faults", 0, 0, 1, &c->faults->conflict_rate)) < 0 ||
            (r = get_string(c, f, "dropWatchesAfter", "faults", NULL, &drop)) < 0 ||
            (r = get_list(c, f, "neverReadyImages", "faults", &images)) < 0)
                return r;
        if (drop && mr_duration_parse(drop, &c->faults->watch_drop_after) < 0)
                return fail(c, "faults.dropWatchesAfter", "expected a duration (\"30s\")");
        if ((r = load_spikes(c, f)) < 0 ||
            (r = get_number(c, f, "watchGoneRate", "faults", 0, 0, 1, &c->faults->watch_gone_rate)) < 0 ||
            (r = load_exempt(c, f)) < 0)
                return r;
        if (images && json_object_array_length(images) > 0) {
                char list[4096];
                size_t off = 0;
                for (size_t i = 0; i < json_object_array_length(images); i++) {
                        json_object *v = json_object_array_get_idx(images, i);
                        char path[128];
                        snprintf(path, sizeof path, "faults.neverReadyImages[%zu]", i);
                        if (!v || !json_object_is_type(v, json_type_string) || strpbrk(json_object_get_string(v), ", "))
                                return fail(c, path, "expected an image name");
                        off += (size_t)snprintf(list + off, sizeof list - MIN(off, sizeof list), "%s%s", off ? "," : "",
                                                json_object_get_string(v));
                        if (off >= sizeof list)
                                return fail(c, path, "too many images");
                }
                if ((r = ensure_namespace(c, "kube-system", NULL, "faults")) < 0)
                        return r;
                json_object *cm = NULL;
                if (parse_json("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"kubesim-faults\","
                               "\"namespace\":\"kube-system\"},\"data\":{}}",
                               &cm) < 0 ||
                    mr_json_set_str(mr_json_get(cm, "data", NULL), "neverReadyImages", list) < 0) {
                        json_object_put(cm);
                        return -ENOMEM;
                }
                return create_obj(c, &SIM_CONFIGMAPS, cm, "faults.neverReadyImages");
        }
        return 0;
}

/* ---- entry points ------------------------------------------------------------------------------ */

int sim_scenario_load_data(SimStore *store, const char *data, size_t size, const char *source_name, SimFaults *faults,
                           MrError *err)
{
        static const char *const keys[] = { "name", "description", "nodes", "namespaces", "workloads", "istio",
                                            "objects", "faults", NULL };
        _cleanup_(json_object_putp) json_object *root = NULL, *names = NULL;
        SimFaults scratch = {};
        Ctx c = { .source = source_name ? source_name : "scenario", .data = data, .size = size, .err = err,
                  .store = store, .faults = faults ? faults : &scratch };
        MrError yerr = {};
        int r;

        *c.faults = (SimFaults){};
        r = mr_yaml_parse(data, size, &root, &yerr);
        if (r < 0)
                return mr_error_set(err, r == -ENOMEM ? -ENOMEM : -MR_ECONFIG, "%s: %s", c.source, yerr.message);
        if (!root)
                return 0; /* an empty scenario: an empty cluster */
        if (!json_object_is_type(root, json_type_object))
                return mr_error_set(err, -MR_ECONFIG, "%s: expected a mapping at the top level", c.source);
        names = c.node_names = json_object_new_array();
        if (!names)
                return -ENOMEM;

        sim_store_lock(store);
        if ((r = check_keys(&c, root, "", keys)) >= 0 && (r = ensure_namespace(&c, "default", NULL, "")) >= 0 &&
            (r = ensure_namespace(&c, "kube-system", NULL, "")) >= 0 && (r = load_namespaces(&c, root)) >= 0 &&
            (r = load_nodes(&c, root)) >= 0 && (r = load_objects(&c, root)) >= 0 && (r = load_istio(&c, root)) >= 0 &&
            (r = load_workloads(&c, root)) >= 0)
                r = load_faults(&c, root);
        sim_store_unlock(store);
        if (r == -ENOMEM)
                return mr_error_set(err, -ENOMEM, "%s: out of memory", c.source);
        return MIN(r, 0);
}

int sim_scenario_load_file(SimStore *store, const char *path, SimFaults *faults, MrError *err)
{
        _cleanup_free_ char *data = NULL;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        size_t size = 0, cap = 0;
        if (fd < 0)
                return mr_error_set(err, -errno, "%s: %m", path);
        for (;;) {
                if (size == cap) {
                        if (cap >= MAX_SCENARIO_SIZE)
                                return mr_error_set(err, -MR_ETOOBIG, "%s: larger than %u bytes", path, MAX_SCENARIO_SIZE);
                        cap = cap ? cap * 2 : 16384;
                        char *n = realloc(data, cap + 1);
                        if (!n)
                                return -ENOMEM;
                        data = n;
                }
                ssize_t k = read(fd, data + size, cap - size);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return mr_error_set(err, -errno, "%s: %m", path);
                }
                if (k == 0)
                        break;
                size += (size_t)k;
        }
        return sim_scenario_load_data(store, data ? data : "", size, path, faults, err);
}
