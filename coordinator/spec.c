/* SPDX-License-Identifier: Apache-2.0 */
/*
 * spec.c — reading and validating a Rollout (see spec.h for the document).
 *
 * Each field is read by a small typed reader that knows the field's full
 * path, so an error always says where ("spec.drain.timeout") and what was
 * expected. Objects are checked against their list of known keys first:
 * an unknown key is an error, and its message lists the keys allowed there.
 */
#include <stdio.h>

#include "meshroll/fileio.h"
#include "meshroll/json-util.h"
#include "meshroll/selector.h"
#include "meshroll/yaml-json.h"
#include "spec-read.h"
#include "preflight.h"
#include "spec.h"

#define SPEC_FILE_MAX (1u << 20)
#define NAME_MAX_LEN 253

const char *gate_action_to_string(GateAction a)
{
        switch (a) {
        case GATE_PAUSE:
                return "pause";
        case GATE_PROCEED:
                return "proceed";
        case GATE_ROLLBACK:
                return "rollback";
        }
        return "unknown";
}

static int read_target(RolloutSpec *s, json_object *spec, MrError *err)
{
        static const char *const keys[] = { "namespace", "daemonSet", NULL };
        json_object *t;
        int r;

        if ((r = spec_get_object(spec, "target", "spec", &t, err)) < 0 || !t)
                return r;
        if ((r = spec_check_keys(t, "spec.target", keys, err)) < 0 ||
            (r = spec_get_string(t, "namespace", "spec.target", &s->target_namespace, err)) < 0 ||
            (r = spec_get_string(t, "daemonSet", "spec.target", &s->target_daemonset, err)) < 0)
                return r;
        return 0;
}

static int read_lists(RolloutSpec *s, json_object *list, MrError *err)
{
        static const char *const keys[] = { "name", "nodes", NULL };
        size_t n = json_object_array_length(list);
        char path[64];
        int r;

        if (n == 0)
                return mr_error_set(err, MR_ECONFIG, "spec.groups.list: expected at least one group");
        s->lists = calloc(n, sizeof(NodeList));
        if (!s->lists)
                return mr_error_set(err, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                json_object *g = json_object_array_get_idx(list, i);
                snprintf(path, sizeof(path), "spec.groups.list[%zu]", i);
                if (!json_object_is_type(g, json_type_object))
                        return spec_bad(err, path, NULL, "a mapping with name and nodes", g);
                s->n_lists++;
                if ((r = spec_check_keys(g, path, keys, err)) < 0 ||
                    (r = spec_get_string(g, "name", path, &s->lists[i].name, err)) < 0 ||
                    (r = spec_get_string_list(g, "nodes", path, &s->lists[i].nodes, err)) < 0)
                        return r;
                if (!s->lists[i].name)
                        return mr_error_set(err, MR_ECONFIG, "%s.name: required", path);
                if (!s->lists[i].nodes || !s->lists[i].nodes[0])
                        return mr_error_set(err, MR_ECONFIG, "%s.nodes: expected at least one node", path);
                for (size_t j = 0; j < i; j++) {
                        if (streq(s->lists[j].name, s->lists[i].name))
                                return mr_error_set(err, MR_ECONFIG, "%s.name: group \"%s\" is defined twice", path,
                                                    s->lists[i].name);
                        for (char **a = s->lists[i].nodes; *a; a++)
                                for (char **b = s->lists[j].nodes; *b; b++)
                                        if (streq(*a, *b))
                                                return mr_error_set(err, MR_ECONFIG,
                                                                    "%s.nodes: node \"%s\" is already in group \"%s\"",
                                                                    path, *a, s->lists[j].name);
                }
        }
        return 0;
}

static int read_groups(RolloutSpec *s, json_object *spec, MrError *err)
{
        static const char *const keys[] = { "nodeSelector", "canary", "byLabel", "order", "size", "percent", "list",
                                             NULL };
        json_object *g, *list = NULL;
        unsigned modes = 0;
        int r;

        if ((r = spec_get_object(spec, "groups", "spec", &g, err)) < 0 || !g)
                return r;
        if ((r = spec_check_keys(g, "spec.groups", keys, err)) < 0 ||
            (r = spec_get_string(g, "nodeSelector", "spec.groups", &s->node_selector, err)) < 0 ||
            (r = spec_check_selector(s->node_selector, "spec.groups.nodeSelector", err)) < 0 ||
            (r = spec_get_uint(g, "canary", "spec.groups", 0, 10000, &s->canary, err)) < 0 ||
            (r = spec_get_string(g, "byLabel", "spec.groups", &s->by_label, err)) < 0 ||
            (r = spec_get_string_list(g, "order", "spec.groups", &s->order, err)) < 0)
                return r;

        /* A null value is absent, as for every other field (spec_get_* skip it). */
        if (mr_json_get(g, "size", NULL)) {
                modes++;
                s->mode = GROUPING_SIZE;
                if ((r = spec_get_uint(g, "size", "spec.groups", 1, 100000, &s->size, err)) < 0)
                        return r;
        }
        if (mr_json_get(g, "percent", NULL)) {
                modes++;
                s->mode = GROUPING_PERCENT;
                if ((r = spec_get_uint(g, "percent", "spec.groups", 1, 100, &s->percent, err)) < 0)
                        return r;
        }
        if (s->by_label) {
                modes++;
                s->mode = GROUPING_LABEL;
        }
        if (json_object_object_get_ex(g, "list", &list) && list) {
                modes++;
                s->mode = GROUPING_LIST;
                if (!json_object_is_type(list, json_type_array))
                        return spec_bad(err, "spec.groups", "list", "a list of {name, nodes}", list);
                if ((r = read_lists(s, list, err)) < 0)
                        return r;
        }
        if (modes > 1)
                return mr_error_set(err, MR_ECONFIG,
                                    "spec.groups: byLabel, size, percent and list are alternatives; give one");
        if (s->order && s->mode != GROUPING_LABEL)
                return mr_error_set(err, MR_ECONFIG, "spec.groups.order: only applies with byLabel");
        if (s->canary > 0 && s->mode == GROUPING_LIST)
                return mr_error_set(err, MR_ECONFIG,
                                    "spec.groups.canary: with list, make the first list entry the canary group");
        return 0;
}

static int read_drain(RolloutSpec *s, json_object *spec, MrError *err)
{
        static const char *const keys[] = { "timeout", "concurrency", "gracePeriodSeconds", "podSelector",
                                             "deleteEmptyDirData", "force", NULL };
        json_object *d;
        int r;

        if ((r = spec_get_object(spec, "drain", "spec", &d, err)) < 0 || !d)
                return r;
        if ((r = spec_check_keys(d, "spec.drain", keys, err)) < 0 ||
            (r = spec_get_duration(d, "timeout", "spec.drain", 24 * 3600 * USEC_PER_SEC, &s->drain_timeout, err)) < 0 ||
            (r = spec_get_uint(d, "concurrency", "spec.drain", 1, 1000, &s->drain_concurrency, err)) < 0 ||
            (r = spec_get_int(d, "gracePeriodSeconds", "spec.drain", 0, 86400, &s->grace_period_seconds, err)) < 0 ||
            (r = spec_get_string(d, "podSelector", "spec.drain", &s->pod_selector, err)) < 0 ||
            (r = spec_check_selector(s->pod_selector, "spec.drain.podSelector", err)) < 0 ||
            (r = spec_get_bool(d, "deleteEmptyDirData", "spec.drain", &s->delete_emptydir_data, err)) < 0 ||
            (r = spec_get_bool(d, "force", "spec.drain", &s->force, err)) < 0)
                return r;
        return 0;
}

static int read_gate(RolloutSpec *s, json_object *spec, MrError *err)
{
        static const char *const keys[] = { "threshold", "timeout", "onTimeout", "agentNamespace", NULL };
        _cleanup_free_ char *action = NULL;
        json_object *g;
        int r;

        if ((r = spec_get_object(spec, "connectionGate", "spec", &g, err)) < 0 || !g)
                return r;
        if ((r = spec_check_keys(g, "spec.connectionGate", keys, err)) < 0 ||
            (r = spec_get_uint(g, "threshold", "spec.connectionGate", 0, 1000000, &s->gate_threshold, err)) < 0 ||
            (r = spec_get_duration(g, "timeout", "spec.connectionGate", 24 * 3600 * USEC_PER_SEC, &s->gate_timeout, err)) <
                    0 ||
            (r = spec_get_string(g, "onTimeout", "spec.connectionGate", &action, err)) < 0 ||
            (r = spec_get_string(g, "agentNamespace", "spec.connectionGate", &s->agent_namespace, err)) < 0)
                return r;
        if (!action)
                return 0;
        if (streq(action, "pause"))
                s->gate_action = GATE_PAUSE;
        else if (streq(action, "proceed"))
                s->gate_action = GATE_PROCEED;
        else if (streq(action, "rollback"))
                s->gate_action = GATE_ROLLBACK;
        else
                return mr_error_set(err, MR_ECONFIG,
                                    "spec.connectionGate.onTimeout: expected one of proceed, pause, rollback; got \"%s\"",
                                    action);
        return 0;
}

static int read_readiness(RolloutSpec *s, json_object *spec, MrError *err)
{
        static const char *const keys[] = { "timeout", "minReadySeconds", NULL };
        json_object *o;
        int64_t min_ready = -1;
        int r;

        if ((r = spec_get_object(spec, "readiness", "spec", &o, err)) < 0 || !o)
                return r;
        if ((r = spec_check_keys(o, "spec.readiness", keys, err)) < 0 ||
            (r = spec_get_duration(o, "timeout", "spec.readiness", 24 * 3600 * USEC_PER_SEC, &s->readiness_timeout, err)) <
                    0 ||
            (r = spec_get_int(o, "minReadySeconds", "spec.readiness", 0, 3600, &min_ready, err)) < 0)
                return r;
        if (min_ready >= 0)
                s->min_ready = (usec_t)min_ready * USEC_PER_SEC;
        return 0;
}

bool rollout_spec_has_phase(const RolloutSpec *s, PhaseKind k)
{
        for (size_t i = 0; i < s->n_phases; i++)
                if (s->phases[i] == k)
                        return true;
        return false;
}

/* spec.phases, or the default order of the sections present (spec.h). */
static int read_phase_order(RolloutSpec *s, json_object *spec, MrError *err)
{
        _cleanup_strv_free_ char **names = NULL;
        bool present[_PHASE_KIND_MAX] = {};
        int r;

        for (PhaseKind k = PHASE_SIDECAR; k < _PHASE_KIND_MAX; k++)
                present[k] = mr_json_get(spec, phase_kind_to_string(k), NULL) != NULL;
        present[PHASE_ZTUNNEL] = mr_json_get(spec, "target", NULL) || mr_json_get(spec, "groups", NULL) ||
                                 (!present[PHASE_SIDECAR] && !present[PHASE_GATEWAY] && !present[PHASE_TRAFFIC]);

        if ((r = spec_get_string_list(spec, "phases", "spec", &names, err)) < 0)
                return r;
        if (!names) {
                for (PhaseKind k = 0; k < _PHASE_KIND_MAX; k++)
                        if (present[k])
                                s->phases[s->n_phases++] = k;
                return 0;
        }
        if (!names[0])
                return mr_error_set(err, MR_ECONFIG, "spec.phases: expected at least one phase");
        for (size_t i = 0; names[i]; i++) {
                int k = phase_kind_from_string(names[i]);
                if (k < 0)
                        return mr_error_set(err, MR_ECONFIG,
                                            "spec.phases[%zu]: expected one of ztunnel, sidecar, gateway, traffic; "
                                            "got \"%s\"",
                                            i, names[i]);
                if (k != PHASE_ZTUNNEL && !present[k])
                        return mr_error_set(err, MR_ECONFIG, "spec.phases[%zu]: phase %s has no spec.%s section", i,
                                            names[i], names[i]);
                s->phases[s->n_phases++] = (PhaseKind)k;
        }
        for (PhaseKind k = PHASE_SIDECAR; k < _PHASE_KIND_MAX; k++)
                if (present[k] && !rollout_spec_has_phase(s, k))
                        return mr_error_set(err, MR_ECONFIG,
                                            "spec.%s: the section is given but spec.phases does not list it",
                                            phase_kind_to_string(k));
        return 0;
}

/* The order, then each phase's section (by its module) and its gates. */
static int read_phases(RolloutSpec *s, json_object *spec, MrError *err)
{
        int r;

        if ((r = spec_get_string(spec, "prometheus", "spec", &s->prometheus, err)) < 0 ||
            (r = read_phase_order(s, spec, err)) < 0)
                return r;
        if ((r = metric_gates_from_json(mr_json_get(spec, "gates", NULL), "spec.gates", s->prometheus,
                                        &s->gates[PHASE_ZTUNNEL], err)) < 0)
                return r;
        if (s->gates[PHASE_ZTUNNEL] && !rollout_spec_has_phase(s, PHASE_ZTUNNEL))
                return mr_error_set(err, MR_ECONFIG, "spec.gates: the ztunnel phase does not run (gates of other "
                                                     "phases go in their own section)");
        for (size_t i = 0; i < s->n_phases; i++) {
                PhaseKind k = s->phases[i];
                const char *name = phase_kind_to_string(k);
                char path[32], gates_path[48];
                json_object *section;

                if (k == PHASE_ZTUNNEL)
                        continue;
                snprintf(path, sizeof(path), "spec.%s", name);
                snprintf(gates_path, sizeof(gates_path), "spec.%s.gates", name);
                if ((r = spec_get_object(spec, name, "spec", &section, err)) < 0)
                        return r;
                const PhaseOps *ops = phase_ops(k);
                if (!ops)
                        return mr_error_set(err, MR_ECONFIG, "%s: this build of meshroll has no %s phase", path, name);
                /* The module sees its section without the gates, which are read here for every phase. */
                _cleanup_(json_object_putp) json_object *copy = mr_json_copy(section);
                if (!copy)
                        return mr_error_set(err, -ENOMEM, "out of memory");
                json_object_object_del(copy, "gates");
                if ((r = ops->parse(copy, path, &s->phase_spec[k], err)) < 0)
                        return r;
                if ((r = metric_gates_from_json(mr_json_get(section, "gates", NULL), gates_path, s->prometheus,
                                                &s->gates[k], err)) < 0)
                        return r;
        }
        return 0;
}

static int spec_defaults(RolloutSpec *s)
{
        s->target_namespace = strdup("istio-system");
        s->target_daemonset = strdup("ztunnel");
        s->agent_namespace = strdup("meshroll");
        if (!s->target_namespace || !s->target_daemonset || !s->agent_namespace)
                return -ENOMEM;
        s->mode = GROUPING_SIZE;
        s->size = 1;
        s->drain_timeout = 10 * USEC_PER_MINUTE;
        s->drain_concurrency = 10;
        s->grace_period_seconds = -1;
        s->delete_emptydir_data = true;
        s->gate_timeout = 5 * USEC_PER_MINUTE;
        s->gate_action = GATE_PAUSE;
        s->readiness_timeout = 5 * USEC_PER_MINUTE;
        s->preflight_wait_timeout = 10 * USEC_PER_MINUTE;
        s->min_ready = 30 * USEC_PER_SEC;
        s->soak = USEC_PER_MINUTE;
        return 0;
}

/* spec.preflight: {skip: [check, …], waitTimeout}, each a check preflight.c knows. */
static int read_preflight(RolloutSpec *s, json_object *spec, MrError *err)
{
        static const char *const keys[] = { "skip", "waitTimeout", NULL };
        json_object *p;
        int r;

        if ((r = spec_get_object(spec, "preflight", "spec", &p, err)) < 0 || !p ||
            (r = spec_check_keys(p, "spec.preflight", keys, err)) < 0 ||
            (r = spec_get_string_list(p, "skip", "spec.preflight", &s->preflight_skip, err)) < 0 ||
            (r = spec_get_duration(p, "waitTimeout", "spec.preflight", 24 * 3600 * USEC_PER_SEC,
                                   &s->preflight_wait_timeout, err)) < 0)
                return r;
        for (char **i = s->preflight_skip; i && *i; i++) {
                bool known = false;
                for (const char *const *c = preflight_check_names(); *c; c++)
                        known = known || streq(*c, *i);
                if (!known)
                        return mr_error_set(err, MR_ECONFIG,
                                            "spec.preflight.skip: unknown check \"%s\" (docs/preflight.md lists them)", *i);
        }
        return 0;
}

int rollout_spec_from_json(json_object *doc, RolloutSpec **ret, MrError *err)
{
        static const char *const top_keys[] = { "apiVersion", "kind", "metadata", "spec", "status", NULL };
        static const char *const spec_keys[] = { "paused",   "target",     "groups",  "drain",   "connectionGate",
                                                 "readiness", "soak",      "gates",   "phases",  "prometheus",
                                                 "sidecar",  "gateway",    "traffic", "preflight", NULL };
        _cleanup_(rollout_spec_freep) RolloutSpec *s = NULL;
        json_object *spec = NULL, *meta = NULL;
        const char *v;
        int r;

        if (!json_object_is_type(doc, json_type_object))
                return mr_error_set(err, MR_ECONFIG, "expected a Rollout document (a mapping), got %s", spec_type_name(doc));
        if ((r = spec_check_keys(doc, "", top_keys, err)) < 0)
                return r;
        v = mr_json_get_str(doc, "apiVersion", NULL);
        if (!streq_ptr(v, "meshroll.io/v1alpha1"))
                return mr_error_set(err, MR_ECONFIG, "apiVersion: expected \"meshroll.io/v1alpha1\", got \"%s\"",
                                    strna(v));
        v = mr_json_get_str(doc, "kind", NULL);
        if (!streq_ptr(v, "Rollout"))
                return mr_error_set(err, MR_ECONFIG, "kind: expected \"Rollout\", got \"%s\"", strna(v));

        s = calloc(1, sizeof(*s));
        if (!s || spec_defaults(s) < 0)
                return mr_error_set(err, -ENOMEM, "out of memory");

        if ((r = spec_get_object(doc, "metadata", "", &meta, err)) < 0)
                return r;
        if (!meta || (r = spec_get_string(meta, "name", "metadata", &s->name, err)) < 0 || !s->name)
                return r < 0 ? r : mr_error_set(err, MR_ECONFIG, "metadata.name: required");
        if (strlen(s->name) > NAME_MAX_LEN)
                return mr_error_set(err, MR_ECONFIG, "metadata.name: longer than %d characters", NAME_MAX_LEN);

        if ((r = spec_get_object(doc, "spec", "", &spec, err)) < 0)
                return r;
        if (!spec)
                return mr_error_set(err, MR_ECONFIG, "spec: required");
        if ((r = spec_check_keys(spec, "spec", spec_keys, err)) < 0 ||
            (r = spec_get_bool(spec, "paused", "spec", &s->paused, err)) < 0 || (r = read_target(s, spec, err)) < 0 ||
            (r = read_groups(s, spec, err)) < 0 || (r = read_drain(s, spec, err)) < 0 ||
            (r = read_gate(s, spec, err)) < 0 || (r = read_readiness(s, spec, err)) < 0 ||
            (r = spec_get_duration(spec, "soak", "spec", 24 * 3600 * USEC_PER_SEC, &s->soak, err)) < 0 ||
            (r = read_phases(s, spec, err)) < 0 || (r = read_preflight(s, spec, err)) < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

int rollout_spec_load_file(const char *path, RolloutSpec **ret, MrError *err)
{
        _cleanup_free_ char *data = NULL;
        _cleanup_(json_object_putp) json_object *doc = NULL;
        size_t size;
        int r;

        r = mr_read_file(path, SPEC_FILE_MAX, &data, &size);
        if (r == -MR_ETOOBIG)
                return mr_error_set(err, MR_ECONFIG, "%s: larger than %u bytes", path, SPEC_FILE_MAX);
        if (r < 0)
                return mr_error_set(err, r, "%s: %s", path, mr_strerror(r));
        r = mr_yaml_parse(data, size, &doc, err);
        if (r < 0) {
                mr_error_prefix(err, "%s", path);
                return r == -MR_EPARSE ? -MR_ECONFIG : r;
        }
        r = rollout_spec_from_json(doc, ret, err);
        if (r < 0)
                mr_error_prefix(err, "%s", path);
        return r;
}

RolloutSpec *rollout_spec_free(RolloutSpec *s)
{
        if (!s)
                return NULL;
        free(s->name);
        free(s->target_namespace);
        free(s->target_daemonset);
        free(s->node_selector);
        free(s->by_label);
        strv_free(s->order);
        strv_free(s->preflight_skip);
        for (size_t i = 0; i < s->n_lists; i++) {
                free(s->lists[i].name);
                strv_free(s->lists[i].nodes);
        }
        free(s->lists);
        free(s->pod_selector);
        free(s->agent_namespace);
        free(s->prometheus);
        for (PhaseKind k = 0; k < _PHASE_KIND_MAX; k++) {
                const PhaseOps *ops = phase_ops(k);
                if (s->phase_spec[k] && ops)
                        ops->free_spec(s->phase_spec[k]);
                metric_gate_set_free(s->gates[k]);
        }
        free(s);
        return NULL;
}
