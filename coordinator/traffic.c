/* SPDX-License-Identifier: Apache-2.0 */
/*
 * traffic.c — the traffic phase (traffic.h has the spec, the stages and the
 * record; phase.h the contract).
 *
 * Design: a stage machine whose every state lives in PhaseStatus.detail.
 * Each call of traffic_step() reads what it needs (one or two GETs),
 * performs at most one write, records it and returns PHASE_ADVANCE, or
 * returns PHASE_STAY while it waits (for a Deployment, a step's pause, the
 * gates). Writes to the Istio objects go through update_object(): GET, a
 * pure mutation of the JSON (traffic_set_routes, traffic_ensure_subset,
 * traffic_remove_subset: tested alone), PUT with the resourceVersion just
 * read, and on 409 Conflict the same again from a fresh GET. A mutation that
 * finds the object already as wanted writes nothing, so repeating a step a
 * crashed coordinator had half done is harmless.
 *
 * Subsets are named by the version they select ({name: v2, labels: {version:
 * v2}}), as in Istio's own examples; a subset already present under that
 * name is used as it is.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "meshroll/json-util.h"
#include "meshroll/kube.h"
#include "meshroll/log.h"
#include "metric-gate.h"
#include "spec-read.h"
#include "spec.h"
#include "status.h"
#include "traffic.h"

#define UPDATE_ATTEMPTS 5
#define DEFAULT_STEP_PAUSE (30 * USEC_PER_SEC)
#define DEFAULT_TIMEOUT (10 * USEC_PER_MINUTE)
#define MAX_DURATION (24 * 3600 * USEC_PER_SEC)
/* A duration for a message; the buffer lives as long as the enclosing block. */
#define DURATION(d) mr_duration_format((d), (char[32]){0}, 32)

static const char *const old_action_names[] = {
    [TRAFFIC_OLD_KEEP] = "keep",
    [TRAFFIC_OLD_SCALE_DOWN] = "scaleDown",
    [TRAFFIC_OLD_DELETE] = "delete",
};

const char *traffic_old_action_to_string(TrafficOldAction a)
{
        return a < ELEMENTSOF(old_action_names) ? old_action_names[a] : "?";
}

/* ---- the spec -------------------------------------------------------------------------- */

TrafficSpec *traffic_spec_free(TrafficSpec *s)
{
        if (!s)
                return NULL;
        free(s->namespace);
        free(s->host);
        free(s->destination_rule);
        free(s->virtual_service);
        free(s->version_label);
        free(s->from);
        free(s->to);
        free(s->deployment);
        free(s->old_deployment);
        free(s);
        return NULL;
}

static int read_steps(json_object *section, const char *path, TrafficSpec *s, MrError *err)
{
        json_object *list;

        if (!json_object_object_get_ex(section, "steps", &list) ||
            json_object_is_type(list, json_type_null)) {
                s->steps[0] = 100;
                s->n_steps = 1;
                return 0;
        }
        if (!json_object_is_type(list, json_type_array))
                return spec_bad(err, path, "steps", "a list of percentages", list);
        size_t n = json_object_array_length(list);
        if (n == 0 || n > TRAFFIC_MAX_STEPS)
                return mr_error_set(err, MR_ECONFIG, "%s.steps: expected 1 to %d percentages, got %zu", path,
                                    TRAFFIC_MAX_STEPS, n);
        for (size_t i = 0; i < n; i++) {
                json_object *v = json_object_array_get_idx(list, i);
                int64_t w = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
                if (w < 1 || w > 100)
                        return mr_error_set(err, MR_ECONFIG,
                                            "%s.steps[%zu]: expected an integer from 1 to 100, got %s", path,
                                            i, json_object_to_json_string(v));
                if (i > 0 && (unsigned)w <= s->steps[i - 1])
                        return mr_error_set(err, MR_ECONFIG,
                                            "%s.steps[%zu]: expected more than %u (steps increase)", path, i,
                                            s->steps[i - 1]);
                s->steps[i] = (unsigned)w;
        }
        s->n_steps = n;
        if (s->steps[n - 1] != 100)
                return mr_error_set(err, MR_ECONFIG, "%s.steps: the last step must be 100, got %u", path,
                                    s->steps[n - 1]);
        return 0;
}

static int read_old(json_object *section, const char *path, TrafficSpec *s, MrError *err)
{
        static const char *const keys[] = {"action", "deployment", NULL};
        _cleanup_free_ char *action = NULL;
        json_object *old;
        char sub[96];
        int r;

        snprintf(sub, sizeof(sub), "%s.old", path);
        if ((r = spec_get_object(section, "old", path, &old, err)) < 0)
                return r;
        if (!old)
                return 0;
        if ((r = spec_check_keys(old, sub, keys, err)) < 0 ||
            (r = spec_get_string(old, "action", sub, &action, err)) < 0 ||
            (r = spec_get_string(old, "deployment", sub, &s->old_deployment, err)) < 0)
                return r;
        if (action) {
                size_t i;
                for (i = 0; i < ELEMENTSOF(old_action_names); i++)
                        if (streq(action, old_action_names[i]))
                                break;
                if (i == ELEMENTSOF(old_action_names))
                        return mr_error_set(err, MR_ECONFIG,
                                            "%s.action: expected one of keep, scaleDown, delete; got \"%s\"",
                                            sub, action);
                s->old_action = (TrafficOldAction)i;
        }
        if (s->old_action != TRAFFIC_OLD_KEEP && !s->old_deployment)
                return mr_error_set(err, MR_ECONFIG, "%s.deployment: required when action is %s", sub,
                                    old_action_names[s->old_action]);
        if (s->old_deployment && streq(s->old_deployment, s->deployment))
                return mr_error_set(err, MR_ECONFIG,
                                    "%s.deployment: \"%s\" is also the new version's deployment", sub,
                                    s->old_deployment);
        return 0;
}

int traffic_spec_from_json(json_object *section, const char *path, TrafficSpec **ret, MrError *err)
{
        static const char *const keys[] = {
            "namespace",  "host",  "destinationRule", "virtualService", "versionLabel", "from", "to",
            "deployment", "steps", "stepPause",       "soak",           "timeout",      "old",  NULL};
        static const struct {
                const char *key;
                size_t offset;
        } required[] = {
            {"namespace", offsetof(TrafficSpec, namespace)},
            {"host", offsetof(TrafficSpec, host)},
            {"destinationRule", offsetof(TrafficSpec, destination_rule)},
            {"virtualService", offsetof(TrafficSpec, virtual_service)},
            {"from", offsetof(TrafficSpec, from)},
            {"to", offsetof(TrafficSpec, to)},
            {"deployment", offsetof(TrafficSpec, deployment)},
        };
        _cleanup_(traffic_spec_freep) TrafficSpec *s = calloc(1, sizeof(TrafficSpec));
        int r;

        if (!s)
                return mr_error_set(err, -ENOMEM, "out of memory");
        if (!json_object_is_type(section, json_type_object))
                return spec_bad(err, path, NULL, "a mapping", section);
        s->step_pause = DEFAULT_STEP_PAUSE;
        s->timeout = DEFAULT_TIMEOUT;
        if ((r = spec_check_keys(section, path, keys, err)) < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(required); i++) {
                char **field = (char **)((uint8_t *)s + required[i].offset);
                if ((r = spec_get_string(section, required[i].key, path, field, err)) < 0)
                        return r;
                if (!*field)
                        return mr_error_set(err, MR_ECONFIG, "%s.%s: required", path, required[i].key);
        }
        if ((r = spec_get_string(section, "versionLabel", path, &s->version_label, err)) < 0 ||
            (r = spec_get_duration(section, "stepPause", path, MAX_DURATION, &s->step_pause, err)) < 0 ||
            (r = spec_get_duration(section, "soak", path, MAX_DURATION, &s->soak, err)) < 0 ||
            (r = spec_get_duration(section, "timeout", path, MAX_DURATION, &s->timeout, err)) < 0 ||
            (r = read_steps(section, path, s, err)) < 0 || (r = read_old(section, path, s, err)) < 0)
                return r;
        if (!s->version_label && !(s->version_label = strdup("version")))
                return mr_error_set(err, -ENOMEM, "out of memory");
        if (streq(s->from, s->to))
                return mr_error_set(err, MR_ECONFIG, "%s.to: \"%s\" is also from: expected another version",
                                    path, s->to);
        if (s->timeout == 0)
                return mr_error_set(err, MR_ECONFIG, "%s.timeout: expected more than 0", path);
        *ret = TAKE_PTR(s);
        return 0;
}

/* ---- pure mutations ---------------------------------------------------------------------- */

/* "reviews" names the same service as "reviews.shop.svc.cluster.local". */
static bool host_matches(const char *a, const char *b)
{
        if (!a || !b)
                return false;
        size_t la = strlen(a), lb = strlen(b);
        if (la == lb)
                return streq(a, b);
        if (la > lb)
                return strneq(a, b, lb) && a[lb] == '.';
        return strneq(a, b, la) && b[la] == '.';
}

static const char *const route_kinds[] = {"http", "tcp", "tls"};

static json_object *destination_entry(json_object *first, const char *subset, unsigned weight)
{
        _cleanup_(json_object_putp) json_object *e = mr_json_copy(first);
        json_object *dest = e ? mr_json_get(e, "destination", NULL) : NULL;
        if (!dest || mr_json_set_str(dest, "subset", subset) < 0 || mr_json_set_int(e, "weight", weight) < 0)
                return NULL;
        return TAKE_PTR(e);
}

int traffic_set_routes(json_object *vs, const TrafficSpec *s, TrafficRoutes mode, unsigned weight,
                       MrError *err)
{
        bool changed = false, found = false;

        for (size_t k = 0; k < ELEMENTSOF(route_kinds); k++) {
                json_object *list = mr_json_get(vs, "spec", route_kinds[k], NULL);
                if (!json_object_is_type(list, json_type_array))
                        continue;
                for (size_t i = 0; i < json_object_array_length(list); i++) {
                        json_object *rule = json_object_array_get_idx(list, i);
                        json_object *route = mr_json_get(rule, "route", NULL), *first = NULL;
                        if (!json_object_is_type(route, json_type_array))
                                continue;
                        const char *other = NULL;
                        for (size_t j = 0; j < json_object_array_length(route); j++) {
                                json_object *d = json_object_array_get_idx(route, j);
                                const char *h = mr_json_get_str(d, "destination", "host", NULL);
                                if (host_matches(h, s->host)) {
                                        if (!first)
                                                first = d;
                                } else
                                        other = h ? h : "(none)";
                        }
                        if (!first)
                                continue;
                        if (other)
                                return mr_error_set(
                                    err, MR_ECONFIG,
                                    "VirtualService %s/%s: spec.%s[%zu].route sends to %s as well "
                                    "as %s; expected routes to %s alone",
                                    s->namespace, s->virtual_service, route_kinds[k], i, s->host, other,
                                    s->host);
                        found = true;
                        _cleanup_(json_object_putp) json_object *want = json_object_new_array();
                        json_object *a = NULL, *b = NULL;
                        if (!want)
                                return -ENOMEM;
                        if (mode == TRAFFIC_ROUTES_SPLIT) {
                                a = destination_entry(first, s->from, 100 - weight);
                                b = destination_entry(first, s->to, weight);
                        } else
                                a = destination_entry(
                                    first, mode == TRAFFIC_ROUTES_OLD_ONLY ? s->from : s->to, 100);
                        if (!a || (mode == TRAFFIC_ROUTES_SPLIT && !b) ||
                            json_object_array_add(want, a) < 0) {
                                json_object_put(a);
                                json_object_put(b);
                                return -ENOMEM;
                        }
                        if (b && json_object_array_add(want, b) < 0) {
                                json_object_put(b);
                                return -ENOMEM;
                        }
                        if (mr_json_equal(want, route))
                                continue;
                        if (json_object_object_add(rule, "route", TAKE_PTR(want)) < 0)
                                return -ENOMEM;
                        changed = true;
                }
        }
        if (!found)
                return mr_error_set(err, MR_ECONFIG,
                                    "VirtualService %s/%s: no http, tcp or tls route to host %s",
                                    s->namespace, s->virtual_service, s->host);
        return changed;
}

int traffic_routed_weight(json_object *vs, const TrafficSpec *s)
{
        for (size_t k = 0; k < ELEMENTSOF(route_kinds); k++) {
                json_object *list = mr_json_get(vs, "spec", route_kinds[k], NULL);
                for (size_t i = 0;
                     json_object_is_type(list, json_type_array) && i < json_object_array_length(list); i++) {
                        json_object *route = mr_json_get(json_object_array_get_idx(list, i), "route", NULL);
                        bool ours = false;
                        int64_t to = 0;
                        for (size_t j = 0; json_object_is_type(route, json_type_array) &&
                                           j < json_object_array_length(route);
                             j++) {
                                json_object *d = json_object_array_get_idx(route, j);
                                if (!host_matches(mr_json_get_str(d, "destination", "host", NULL), s->host))
                                        continue;
                                ours = true;
                                if (streq_ptr(mr_json_get_str(d, "destination", "subset", NULL), s->to)) {
                                        /* A single destination without a weight takes everything. */
                                        if (mr_json_get_int(&to, d, "weight", NULL) < 0)
                                                to = json_object_array_length(route) == 1 ? 100 : 0;
                                }
                        }
                        if (ours)
                                return (int)CLAMP(to, 0, 100);
                }
        }
        return -ENOENT;
}

static json_object *subsets_of(json_object *dr, bool create)
{
        json_object *spec = create ? mr_json_ensure_object(dr, "spec", NULL) : mr_json_get(dr, "spec", NULL);
        json_object *list = mr_json_get(spec, "subsets", NULL);
        if (list || !create || !spec)
                return json_object_is_type(list, json_type_array) ? list : NULL;
        list = json_object_new_array();
        if (!list || json_object_object_add(spec, "subsets", list) < 0) {
                json_object_put(list);
                return NULL;
        }
        return list;
}

int traffic_ensure_subset(json_object *dr, const char *name, const char *label, json_object *subset)
{
        json_object *list = subsets_of(dr, true);
        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < json_object_array_length(list); i++)
                if (streq_ptr(mr_json_get_str(json_object_array_get_idx(list, i), "name", NULL), name))
                        return 0;
        _cleanup_(json_object_putp) json_object *add =
            subset ? mr_json_copy(subset) : json_object_new_object();
        if (!add)
                return -ENOMEM;
        if (!subset) {
                json_object *labels;
                if (mr_json_set_str(add, "name", name) < 0 ||
                    !(labels = mr_json_ensure_object(add, "labels", NULL)) ||
                    mr_json_set_str(labels, label, name) < 0)
                        return -ENOMEM;
        }
        if (json_object_array_add(list, add) < 0)
                return -ENOMEM;
        TAKE_PTR(add);
        return 1;
}

int traffic_remove_subset(json_object *dr, const char *name, json_object **ret_removed)
{
        json_object *list = subsets_of(dr, false);

        if (ret_removed)
                *ret_removed = NULL;
        for (size_t i = 0; list && i < json_object_array_length(list); i++) {
                json_object *e = json_object_array_get_idx(list, i);
                if (!streq_ptr(mr_json_get_str(e, "name", NULL), name))
                        continue;
                if (ret_removed && !(*ret_removed = json_object_get(e)))
                        return -ENOMEM;
                if (json_object_array_del_idx(list, i, 1) < 0)
                        return -ENOMEM;
                return 1;
        }
        return 0;
}

bool traffic_deployment_available(json_object *d, int64_t *ret_available, int64_t *ret_wanted)
{
        int64_t wanted = 1, generation = 0, observed = -1, updated = 0, total = 0, available = 0;

        (void)mr_json_get_int(&wanted, d, "spec", "replicas", NULL);
        (void)mr_json_get_int(&generation, d, "metadata", "generation", NULL);
        (void)mr_json_get_int(&observed, d, "status", "observedGeneration", NULL);
        (void)mr_json_get_int(&updated, d, "status", "updatedReplicas", NULL);
        (void)mr_json_get_int(&total, d, "status", "replicas", NULL);
        (void)mr_json_get_int(&available, d, "status", "availableReplicas", NULL);
        if (ret_available)
                *ret_available = available;
        if (ret_wanted)
                *ret_wanted = wanted;
        return observed >= generation && updated == wanted && total == wanted && available >= wanted;
}

/* ---- API writes ---------------------------------------------------------------------------- */

typedef int (*MutateFn)(json_object *obj, void *userdata, MrError *err);

/*
 * GET, mutate, PUT with the resourceVersion read; 409 → again from a fresh
 * GET. 1 written, 0 nothing to write, negative errno with err set.
 */
static int update_object(PhaseCtx *ctx, const KubeResource *res, const char *ns, const char *name,
                         MutateFn fn, void *userdata)
{
        _cleanup_free_ char *path = NULL;
        int r;

        if ((r = kube_path(res, ns, name, NULL, &path)) < 0)
                return mr_error_set(ctx->err, r, "%s %s/%s: bad name", res->kind, ns, name);
        for (unsigned attempt = 0;; attempt++) {
                _cleanup_(json_object_putp) json_object *obj = NULL;
                KubeStatus st;
                r = kube_get(ctx->client, path, &obj, &st);
                if (r < 0)
                        return mr_error_set(ctx->err, r, "reading %s %s/%s: %s", res->kind, ns, name,
                                            st.message[0] ? st.message : mr_strerror(r));
                r = fn(obj, userdata, ctx->err);
                if (r <= 0)
                        return r;
                if ((r = phase_fence(ctx)) < 0)
                        return mr_error_set(ctx->err, r, "no longer the leader: %s %s/%s not written",
                                            res->kind, ns, name);
                /* obj still carries metadata.resourceVersion: the PUT fails with 409 if it moved on. */
                r = kube_replace(ctx->client, path, obj, NULL, &st);
                if (r == -MR_ECONFLICT && attempt + 1 < UPDATE_ATTEMPTS) {
                        log_debug("%s %s/%s changed under us; reading it again", res->kind, ns, name);
                        continue;
                }
                if (r < 0)
                        return mr_error_set(ctx->err, r, "writing %s %s/%s: %s", res->kind, ns, name,
                                            st.message[0] ? st.message : mr_strerror(r));
                return 1;
        }
}

typedef struct RoutesArg {
        const TrafficSpec *spec;
        TrafficRoutes mode;
        unsigned weight;
} RoutesArg;

static int mutate_routes(json_object *obj, void *userdata, MrError *err)
{
        RoutesArg *a = userdata;
        return traffic_set_routes(obj, a->spec, a->mode, a->weight, err);
}

static int set_routes(PhaseCtx *ctx, const TrafficSpec *s, TrafficRoutes mode, unsigned weight)
{
        RoutesArg a = {s, mode, weight};
        return update_object(ctx, &KUBE_VIRTUALSERVICES, s->namespace, s->virtual_service, mutate_routes,
                             &a);
}

typedef struct SubsetArg {
        const TrafficSpec *spec;
        bool add;
        const char *name;
        json_object *subset; /* add: the subset to put back, or NULL */
} SubsetArg;

static int mutate_subset(json_object *obj, void *userdata, MrError *err)
{
        SubsetArg *a = userdata;
        int r = a->add ? traffic_ensure_subset(obj, a->name, a->spec->version_label, a->subset)
                       : traffic_remove_subset(obj, a->name, NULL);
        return r == -ENOMEM ? mr_error_set(err, r, "out of memory") : r;
}

static int edit_subset(PhaseCtx *ctx, const TrafficSpec *s, bool add, const char *name, json_object *subset)
{
        SubsetArg a = {s, add, name, subset};
        return update_object(ctx, &KUBE_DESTINATIONRULES, s->namespace, s->destination_rule, mutate_subset,
                             &a);
}

static int get_object(PhaseCtx *ctx, const KubeResource *res, const char *ns, const char *name,
                      json_object **ret)
{
        _cleanup_free_ char *path = NULL;
        KubeStatus st;
        int r;

        if ((r = kube_path(res, ns, name, NULL, &path)) < 0)
                return mr_error_set(ctx->err, r, "%s %s/%s: bad name", res->kind, ns, name);
        r = kube_get(ctx->client, path, ret, &st);
        if (r < 0)
                return mr_error_set(ctx->err, r, "reading %s %s/%s: %s", res->kind, ns, name,
                                    st.message[0] ? st.message : mr_strerror(r));
        return 0;
}

static int scale(PhaseCtx *ctx, const char *ns, const char *name, int64_t replicas)
{
        _cleanup_(json_object_putp) json_object *patch = NULL;
        _cleanup_free_ char *path = NULL;
        char text[96];
        KubeStatus st;
        int r;

        snprintf(text, sizeof(text), "{\"spec\":{\"replicas\":%" PRId64 "}}", replicas);
        if (!(patch = json_tokener_parse(text)) || kube_path(&KUBE_DEPLOYMENTS, ns, name, NULL, &path) < 0)
                return mr_error_set(ctx->err, -ENOMEM, "out of memory");
        if ((r = phase_fence(ctx)) < 0)
                return mr_error_set(ctx->err, r, "no longer the leader: Deployment %s/%s not scaled", ns,
                                    name);
        r = kube_patch(ctx->client, path, KUBE_PATCH_MERGE, patch, NULL, &st);
        if (r < 0)
                return mr_error_set(ctx->err, r, "scaling Deployment %s/%s to %" PRId64 ": %s", ns, name,
                                    replicas, st.message[0] ? st.message : mr_strerror(r));
        return 0;
}

static int delete_deployment(PhaseCtx *ctx, const char *ns, const char *name)
{
        _cleanup_free_ char *path = NULL;
        KubeStatus st;
        int r;

        if (kube_path(&KUBE_DEPLOYMENTS, ns, name, NULL, &path) < 0)
                return mr_error_set(ctx->err, -ENOMEM, "out of memory");
        if ((r = phase_fence(ctx)) < 0)
                return mr_error_set(ctx->err, r, "no longer the leader: Deployment %s/%s not deleted", ns,
                                    name);
        r = kube_delete(ctx->client, path, NULL, NULL, &st);
        if (r < 0 && r != -ENOENT)
                return mr_error_set(ctx->err, r, "deleting Deployment %s/%s: %s", ns, name,
                                    st.message[0] ? st.message : mr_strerror(r));
        return 0;
}

/* ---- the record ------------------------------------------------------------------------------ */

static int64_t rec_int(PhaseStatus *ps, const char *key, int64_t def)
{
        int64_t v = def;
        (void)mr_json_get_int(&v, ps->detail, key, NULL);
        return v;
}

static int rec_set_int(PhaseStatus *ps, const char *key, int64_t v, MrError *err)
{
        return mr_json_set_int(ps->detail, key, v) < 0 ? mr_error_set(err, -ENOMEM, "out of memory") : 0;
}

static int set_stage(PhaseCtx *ctx, PhaseStatus *ps, const char *stage)
{
        if (mr_json_set_str(ps->detail, "stage", stage) < 0 ||
            mr_json_set_int(ps->detail, "stageStart", (int64_t)ctx->now) < 0)
                return mr_error_set(ctx->err, -ENOMEM, "out of memory");
        return 0;
}

/* When a wait that began at stageStart times out: an operator's resume (ps->since) restarts the clock. */
static bool timed_out(const PhaseCtx *ctx, PhaseStatus *ps, usec_t timeout)
{
        usec_t start = MAX((usec_t)rec_int(ps, "stageStart", 0), ps->since);
        return phase_elapsed(ctx, start) >= timeout;
}

static int begin_rollback(PhaseCtx *ctx, PhaseStatus *ps, const char *reason)
{
        if (mr_json_set_str(ps->detail, "reason", reason) < 0 ||
            rec_set_int(ps, "rollbackStep", 0, ctx->err) < 0 || set_stage(ctx, ps, "rollback") < 0)
                return mr_error_set(ctx->err, -ENOMEM, "out of memory");
        phase_set_state(ps, PHASE_ROLLING_BACK, ctx->now);
        if (phase_set_message(ps, "rolling back: %s", reason) < 0)
                return mr_error_set(ctx->err, -ENOMEM, "out of memory");
        phase_event(ctx, NULL, KUBE_EVENT_WARNING, "TrafficRollingBack", "traffic phase rolling back: %s",
                    reason);
        return PHASE_ADVANCE;
}

/* ---- stages ---------------------------------------------------------------------------------- */

static int stage_subset(PhaseCtx *ctx, const TrafficSpec *s, PhaseStatus *ps)
{
        int r;

        if (!json_object_object_get_ex(ps->detail, "addedSubset", NULL)) {
                /* Record whether the new subset is ours before adding it: a rollback removes only ours. */
                _cleanup_(json_object_putp) json_object *dr = NULL;
                if ((r = get_object(ctx, &KUBE_DESTINATIONRULES, s->namespace, s->destination_rule, &dr)) <
                    0)
                        return r;
                _cleanup_(json_object_putp) json_object *probe = mr_json_copy(dr);
                if (!probe)
                        return mr_error_set(ctx->err, -ENOMEM, "out of memory");
                r = traffic_ensure_subset(probe, s->to, s->version_label, NULL);
                if (r < 0 || mr_json_set_bool(ps->detail, "addedSubset", r > 0) < 0)
                        return mr_error_set(ctx->err, -ENOMEM, "out of memory");
                return PHASE_ADVANCE;
        }
        if ((r = edit_subset(ctx, s, true, s->from, NULL)) < 0 ||
            (r = edit_subset(ctx, s, true, s->to, NULL)) < 0)
                return r;
        if (r > 0)
                phase_event(ctx, NULL, KUBE_EVENT_NORMAL, "SubsetAdded",
                            "DestinationRule %s/%s: subset %s added", s->namespace, s->destination_rule,
                            s->to);
        if ((r = set_stage(ctx, ps, "available")) < 0)
                return r;
        if (phase_set_message(ps, "waiting for Deployment %s/%s to be available", s->namespace,
                              s->deployment) < 0)
                return mr_error_set(ctx->err, -ENOMEM, "out of memory");
        return PHASE_ADVANCE;
}

static int stage_available(PhaseCtx *ctx, const TrafficSpec *s, PhaseStatus *ps)
{
        _cleanup_(json_object_putp) json_object *d = NULL;
        int64_t available, wanted;
        char reason[256];
        int r;

        r = get_object(ctx, &KUBE_DEPLOYMENTS, s->namespace, s->deployment, &d);
        if (r < 0 && r != -ENOENT)
                return r;
        if (r == 0 && traffic_deployment_available(d, &available, &wanted)) {
                if ((r = set_stage(ctx, ps, "shift")) < 0 ||
                    (r = rec_set_int(ps, "step", 0, ctx->err)) < 0 ||
                    (r = rec_set_int(ps, "weight", 0, ctx->err)) < 0)
                        return r;
                return PHASE_ADVANCE;
        }
        if (!timed_out(ctx, ps, s->timeout))
                return PHASE_STAY;
        if (r == -ENOENT)
                snprintf(reason, sizeof(reason), "Deployment %s/%s does not exist after %s", s->namespace,
                         s->deployment, DURATION(s->timeout));
        else
                snprintf(reason, sizeof(reason),
                         "Deployment %s/%s: %" PRId64 "/%" PRId64 " replicas available after %s",
                         s->namespace, s->deployment, available, wanted, DURATION(s->timeout));
        return begin_rollback(ctx, ps, reason);
}

/*
 * A checkpoint: the gates since `start`, and at least `pause`. *ret_done
 * when both are through; otherwise PHASE_STAY / PHASE_ADVANCE while waiting
 * (or after starting a rollback: a gate failed, or gave no verdict within
 * the timeout), or negative errno.
 */
static int checkpoint(PhaseCtx *ctx, const TrafficSpec *s, PhaseStatus *ps, usec_t start, usec_t pause,
                      bool *ret_done)
{
        bool changed = false;
        int r;

        *ret_done = false;
        r = phase_gates_check(ctx, ctx->spec->gates[PHASE_TRAFFIC], ps, start, &changed);
        if (r == -MR_EGATE) {
                char reason[sizeof(ctx->err->message)];
                snprintf(reason, sizeof(reason), "%s", ctx->err->message);
                return begin_rollback(ctx, ps, reason);
        }
        if (r < 0)
                return r;
        if (r > 0 && phase_elapsed(ctx, start) >= pause) {
                *ret_done = true;
                return PHASE_ADVANCE;
        }
        if (phase_elapsed(ctx, start) >= pause + s->timeout)
                return begin_rollback(ctx, ps, "the metric gates gave no verdict within the timeout");
        return changed ? PHASE_ADVANCE : PHASE_STAY;
}

static int stage_shift(PhaseCtx *ctx, const TrafficSpec *s, PhaseStatus *ps)
{
        size_t step = (size_t)rec_int(ps, "step", 0);
        bool done;
        int r;

        if (step >= s->n_steps)
                return set_stage(ctx, ps, "soak") < 0 ? -ENOMEM : PHASE_ADVANCE;
        unsigned w = s->steps[step];
        if (rec_int(ps, "weight", 0) != (int64_t)w) {
                if ((r = set_routes(ctx, s, TRAFFIC_ROUTES_SPLIT, w)) < 0)
                        return r;
                if ((r = rec_set_int(ps, "weight", w, ctx->err)) < 0 ||
                    (r = set_stage(ctx, ps, "shift")) < 0)
                        return r;
                if (phase_set_message(ps, "step %zu/%zu: %u %% on %s", step + 1, s->n_steps, w, s->to) < 0)
                        return mr_error_set(ctx->err, -ENOMEM, "out of memory");
                phase_event(ctx, NULL, KUBE_EVENT_NORMAL, "TrafficShifted",
                            "%s/%s: %u %% to %s, %u %% to %s", s->namespace, s->virtual_service, 100 - w,
                            s->from, w, s->to);
                return PHASE_ADVANCE;
        }
        r = checkpoint(ctx, s, ps, (usec_t)rec_int(ps, "stageStart", 0), s->step_pause, &done);
        if (!done)
                return r;
        if ((r = rec_set_int(ps, "step", (int64_t)step + 1, ctx->err)) < 0)
                return r;
        if (step + 1 >= s->n_steps && (r = set_stage(ctx, ps, "soak")) < 0)
                return r;
        return PHASE_ADVANCE;
}

static int stage_soak(PhaseCtx *ctx, const TrafficSpec *s, PhaseStatus *ps)
{
        bool done;
        int r;

        if (s->soak > 0) {
                if (phase_set_message(ps, "100 %% on %s: soaking", s->to) < 0)
                        return mr_error_set(ctx->err, -ENOMEM, "out of memory");
                r = checkpoint(ctx, s, ps, (usec_t)rec_int(ps, "stageStart", 0), s->soak, &done);
                if (!done)
                        return r;
        }
        if ((r = set_stage(ctx, ps, "cleanup")) < 0 || (r = rec_set_int(ps, "cleanupStep", 0, ctx->err)) < 0)
                return r;
        return PHASE_ADVANCE;
}

static int stage_cleanup(PhaseCtx *ctx, const TrafficSpec *s, PhaseStatus *ps)
{
        int64_t step = rec_int(ps, "cleanupStep", 0);
        int r;

        switch (step) {
        case 0: /* route to the new subset alone, so the old subset is no longer referenced */
                if ((r = set_routes(ctx, s, TRAFFIC_ROUTES_NEW_ONLY, 100)) < 0)
                        return r;
                break;
        case 1: { /* keep the old subset in the record, then remove it */
                _cleanup_(json_object_putp) json_object *dr = NULL, *old = NULL;
                if (!json_object_object_get_ex(ps->detail, "oldSubset", NULL)) {
                        if ((r = get_object(ctx, &KUBE_DESTINATIONRULES, s->namespace, s->destination_rule,
                                            &dr)) < 0)
                                return r;
                        if (traffic_remove_subset(dr, s->from, &old) < 0)
                                return mr_error_set(ctx->err, -ENOMEM, "out of memory");
                        /* null when there was none: rollback then adds the plain subset */
                        if (json_object_object_add(ps->detail, "oldSubset", TAKE_PTR(old)) < 0)
                                return mr_error_set(ctx->err, -ENOMEM, "out of memory");
                        return PHASE_ADVANCE;
                }
                if ((r = edit_subset(ctx, s, false, s->from, NULL)) < 0)
                        return r;
                break;
        }
        case 2: /* the old Deployment */
                if (s->old_action == TRAFFIC_OLD_SCALE_DOWN) {
                        if (!json_object_object_get_ex(ps->detail, "oldReplicas", NULL)) {
                                _cleanup_(json_object_putp) json_object *d = NULL;
                                int64_t replicas = 1;
                                if ((r = get_object(ctx, &KUBE_DEPLOYMENTS, s->namespace, s->old_deployment,
                                                    &d)) < 0)
                                        return r;
                                (void)mr_json_get_int(&replicas, d, "spec", "replicas", NULL);
                                if ((r = rec_set_int(ps, "oldReplicas", replicas, ctx->err)) < 0 ||
                                    mr_json_set_bool(ps->detail, "oldScaledDown", true) < 0)
                                        return r < 0 ? r : mr_error_set(ctx->err, -ENOMEM, "out of memory");
                                return PHASE_ADVANCE;
                        }
                        if ((r = scale(ctx, s->namespace, s->old_deployment, 0)) < 0)
                                return r;
                } else if (s->old_action == TRAFFIC_OLD_DELETE) {
                        if (!mr_json_get_bool(false, ps->detail, "oldDeleted", NULL)) {
                                if (mr_json_set_bool(ps->detail, "oldDeleted", true) < 0)
                                        return mr_error_set(ctx->err, -ENOMEM, "out of memory");
                                return PHASE_ADVANCE;
                        }
                        if ((r = delete_deployment(ctx, s->namespace, s->old_deployment)) < 0)
                                return r;
                }
                break;
        default:
                phase_set_state(ps, PHASE_COMPLETED, ctx->now);
                if (phase_set_message(ps, "100 %% on %s (%s); subset %s removed%s%s%s", s->to, s->deployment,
                                      s->from, s->old_action == TRAFFIC_OLD_KEEP ? "" : "; ",
                                      s->old_action == TRAFFIC_OLD_KEEP ? "" : s->old_deployment,
                                      s->old_action == TRAFFIC_OLD_SCALE_DOWN ? " scaled down"
                                      : s->old_action == TRAFFIC_OLD_DELETE   ? " deleted"
                                                                              : "") < 0)
                        return mr_error_set(ctx->err, -ENOMEM, "out of memory");
                return PHASE_ADVANCE;
        }
        return rec_set_int(ps, "cleanupStep", step + 1, ctx->err) < 0 ? -ENOMEM : PHASE_ADVANCE;
}

static int stage_rollback(PhaseCtx *ctx, const TrafficSpec *s, PhaseStatus *ps)
{
        int64_t step = rec_int(ps, "rollbackStep", 0);
        bool scaled = mr_json_get_bool(false, ps->detail, "oldScaledDown", NULL);
        int r;

        switch (step) {
        case 0: /* the old Deployment back to its size */
                if (scaled &&
                    (r = scale(ctx, s->namespace, s->old_deployment, rec_int(ps, "oldReplicas", 1))) < 0)
                        return r;
                break;
        case 1: /* …and available before it gets traffic again */
                if (scaled) {
                        _cleanup_(json_object_putp) json_object *d = NULL;
                        if ((r = get_object(ctx, &KUBE_DEPLOYMENTS, s->namespace, s->old_deployment, &d)) <
                            0)
                                return r;
                        if (!traffic_deployment_available(d, NULL, NULL)) {
                                if (!timed_out(ctx, ps, s->timeout))
                                        return PHASE_STAY;
                                return mr_error_set(
                                    ctx->err, -ETIMEDOUT,
                                    "rollback: Deployment %s/%s not available after %s; traffic "
                                    "stays on %s",
                                    s->namespace, s->old_deployment, DURATION(s->timeout), s->to);
                        }
                }
                break;
        case 2: { /* the old subset, as it was */
                json_object *old = mr_json_get(ps->detail, "oldSubset", NULL);
                if ((r = edit_subset(ctx, s, true, s->from, old)) < 0)
                        return r;
                break;
        }
        case 3:
                if ((r = set_routes(ctx, s, TRAFFIC_ROUTES_OLD_ONLY, 100)) < 0)
                        return r;
                phase_event(ctx, NULL, KUBE_EVENT_WARNING, "TrafficRolledBack", "%s/%s: 100 %% back on %s",
                            s->namespace, s->virtual_service, s->from);
                break;
        case 4:
                if (mr_json_get_bool(false, ps->detail, "addedSubset", NULL) &&
                    (r = edit_subset(ctx, s, false, s->to, NULL)) < 0)
                        return r;
                break;
        default:
                phase_set_state(ps, PHASE_ROLLED_BACK, ctx->now);
                if (phase_set_message(ps, "100 %% back on %s: %s", s->from,
                                      strna(mr_json_get_str(ps->detail, "reason", NULL))) < 0)
                        return mr_error_set(ctx->err, -ENOMEM, "out of memory");
                return PHASE_ADVANCE;
        }
        if ((r = rec_set_int(ps, "rollbackStep", step + 1, ctx->err)) < 0)
                return r;
        /* The wait for availability is timed from here. */
        if (step == 0 && mr_json_set_int(ps->detail, "stageStart", (int64_t)ctx->now) < 0)
                return mr_error_set(ctx->err, -ENOMEM, "out of memory");
        return PHASE_ADVANCE;
}

static int traffic_step(PhaseCtx *ctx, const void *spec, PhaseStatus *ps)
{
        const TrafficSpec *s = spec;
        int r;

        if (!ps->detail && !(ps->detail = json_object_new_object()))
                return mr_error_set(ctx->err, -ENOMEM, "out of memory");
        if (ps->state == PHASE_PENDING) {
                phase_set_state(ps, PHASE_PROGRESSING, ctx->now);
                if ((r = set_stage(ctx, ps, "subset")) < 0)
                        return r;
                if (phase_set_message(ps, "adding subset %s to DestinationRule %s/%s", s->to, s->namespace,
                                      s->destination_rule) < 0)
                        return mr_error_set(ctx->err, -ENOMEM, "out of memory");
                return PHASE_ADVANCE;
        }
        const char *stage = mr_json_get_str(ps->detail, "stage", NULL);
        if (ps->state == PHASE_ROLLING_BACK || streq_ptr(stage, "rollback"))
                return stage_rollback(ctx, s, ps);
        if (streq_ptr(stage, "subset"))
                return stage_subset(ctx, s, ps);
        if (streq_ptr(stage, "available"))
                return stage_available(ctx, s, ps);
        if (streq_ptr(stage, "shift"))
                return stage_shift(ctx, s, ps);
        if (streq_ptr(stage, "soak"))
                return stage_soak(ctx, s, ps);
        if (streq_ptr(stage, "cleanup"))
                return stage_cleanup(ctx, s, ps);
        return mr_error_set(ctx->err, -EBADMSG,
                            "traffic phase: status.phases[].detail.stage is \"%s\", expected one "
                            "of subset, available, shift, soak, cleanup, rollback",
                            strna(stage));
}

static int traffic_rollback(PhaseCtx *ctx, const void *spec, PhaseStatus *ps, const char *scope)
{
        const TrafficSpec *s = spec;

        if (scope)
                return mr_error_set(ctx->err, -EINVAL,
                                    "the traffic phase is rolled back as a whole, not \"%s\"", scope);
        if (!ps->detail && !(ps->detail = json_object_new_object()))
                return mr_error_set(ctx->err, -ENOMEM, "out of memory");
        if (mr_json_get_bool(false, ps->detail, "oldDeleted", NULL))
                return mr_error_set(ctx->err, -EINVAL,
                                    "Deployment %s/%s was deleted: no old version to go back to",
                                    s->namespace, strna(s->old_deployment));
        if (streq_ptr(mr_json_get_str(ps->detail, "stage", NULL), "rollback"))
                return 0;
        return begin_rollback(ctx, ps, "requested by an operator") < 0 ? -ENOMEM : 0;
}

static int traffic_parse(json_object *section, const char *path, void **ret, MrError *err)
{
        return traffic_spec_from_json(section, path, (TrafficSpec **)ret, err);
}

static void traffic_free_spec(void *spec)
{
        traffic_spec_free(spec);
}

static int traffic_describe(const void *spec, char **ret)
{
        const TrafficSpec *s = spec;
        char steps[TRAFFIC_MAX_STEPS * 5] = "";
        size_t n = 0;

        for (size_t i = 0; i < s->n_steps; i++)
                n += (size_t)snprintf(steps + MIN(n, sizeof(steps) - 1),
                                      sizeof(steps) - MIN(n, sizeof(steps) - 1), "%s%u", i ? "→" : "",
                                      s->steps[i]);
        if (asprintf(ret, "traffic: %s/%s from %s to %s (%s), steps %s %%, old version: %s", s->namespace,
                     s->host, s->from, s->to, s->deployment, steps,
                     traffic_old_action_to_string(s->old_action)) < 0)
                return -ENOMEM;
        return 0;
}

const PhaseOps traffic_phase_ops = {
    .kind = PHASE_TRAFFIC,
    .parse = traffic_parse,
    .free_spec = traffic_free_spec,
    .step = traffic_step,
    .rollback = traffic_rollback,
    .describe = traffic_describe,
};
