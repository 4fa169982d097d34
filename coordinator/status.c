/* SPDX-License-Identifier: Apache-2.0 */
/*
 * status.c — see status.h. Timestamps are written as MicroTime (RFC 3339
 * with microseconds), so short soaks and readiness windows survive a
 * coordinator restart exactly.
 */
#include <stdarg.h>
#include <stdio.h>

#include "meshroll/json-util.h"
#include "status.h"

static const char *const phase_names[_ROLLOUT_PHASE_MAX] = {
        [ROLLOUT_PENDING] = "Pending",     [ROLLOUT_PROGRESSING] = "Progressing", [ROLLOUT_PAUSED] = "Paused",
        [ROLLOUT_COMPLETED] = "Completed", [ROLLOUT_FAILED] = "Failed",
};

static const char *const state_names[_GROUP_STATE_MAX] = {
        [GROUP_PENDING] = "Pending",         [GROUP_CORDONING] = "Cordoning",   [GROUP_DRAINING] = "Draining",
        [GROUP_GATING] = "Gating",           [GROUP_REPLACING] = "Replacing",   [GROUP_VERIFYING] = "Verifying",
        [GROUP_UNCORDONING] = "Uncordoning", [GROUP_SOAKING] = "Soaking",       [GROUP_DONE] = "Done",
        [GROUP_ROLLING_BACK] = "RollingBack", [GROUP_ROLLED_BACK] = "RolledBack",
};

const char *rollout_phase_to_string(RolloutPhase p)
{
        return p < _ROLLOUT_PHASE_MAX ? phase_names[p] : "Unknown";
}

int rollout_phase_from_string(const char *s)
{
        for (int i = 0; i < _ROLLOUT_PHASE_MAX; i++)
                if (streq_ptr(s, phase_names[i]))
                        return i;
        return -EINVAL;
}

const char *group_state_to_string(GroupState s)
{
        return s < _GROUP_STATE_MAX ? state_names[s] : "Unknown";
}

int group_state_from_string(const char *s)
{
        for (int i = 0; i < _GROUP_STATE_MAX; i++)
                if (streq_ptr(s, state_names[i]))
                        return i;
        return -EINVAL;
}

/* ---- reading ------------------------------------------------------------------ */

static int read_time(json_object *o, const char *key, const char *path, usec_t *ret, MrError *err)
{
        const char *v = mr_json_get_str(o, key, NULL);
        *ret = 0;
        if (!v)
                return 0;
        if (kube_time_parse(v, ret) < 0)
                return mr_error_set(err, MR_EPARSE, "%s.%s: not a timestamp: \"%s\"", path, key, v);
        return 0;
}

static int read_str(json_object *o, const char *key, char **ret)
{
        const char *v = mr_json_get_str(o, key, NULL);
        *ret = NULL;
        if (!v)
                return 0;
        *ret = strdup(v);
        return *ret ? 0 : -ENOMEM;
}

static int read_strv(json_object *o, const char *key, const char *path, char ***ret, size_t *ret_n, MrError *err)
{
        json_object *a = mr_json_get(o, key, NULL);
        size_t n;

        *ret = NULL;
        if (ret_n)
                *ret_n = 0;
        if (!a)
                return 0;
        if (!json_object_is_type(a, json_type_array))
                return mr_error_set(err, MR_EPARSE, "%s.%s: expected a list", path, key);
        n = json_object_array_length(a);
        char **l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(a, i);
                if (!json_object_is_type(e, json_type_string)) {
                        strv_free(l);
                        return mr_error_set(err, MR_EPARSE, "%s.%s[%zu]: expected a string", path, key, i);
                }
                if (!(l[i] = strdup(json_object_get_string(e)))) {
                        strv_free(l);
                        return -ENOMEM;
                }
        }
        *ret = l;
        if (ret_n)
                *ret_n = n;
        return 0;
}

static int read_group(json_object *o, size_t index, GroupStatus *g, MrError *err)
{
        char path[64];
        int64_t v;
        int r;

        snprintf(path, sizeof(path), "status.groups[%zu]", index);
        *g = (GroupStatus){ .connections = -1 };
        if (!json_object_is_type(o, json_type_object))
                return mr_error_set(err, MR_EPARSE, "%s: expected a mapping", path);
        if ((r = read_str(o, "name", &g->name)) < 0 || (r = read_str(o, "message", &g->message)) < 0 ||
            (r = read_strv(o, "nodes", path, &g->nodes, &g->n_nodes, err)) < 0 ||
            (r = read_strv(o, "operatorCordoned", path, &g->operator_cordoned, NULL, err)) < 0 ||
            (r = read_strv(o, "deletedNodes", path, &g->deleted_nodes, NULL, err)) < 0 ||
            (r = read_time(o, "since", path, &g->since, err)) < 0 ||
            (r = read_time(o, "startedAt", path, &g->started_at, err)) < 0 ||
            (r = read_time(o, "finishedAt", path, &g->finished_at, err)) < 0 ||
            (r = read_time(o, "readySince", path, &g->ready_since, err)) < 0)
                return r;
        if (!g->name || !g->nodes || g->n_nodes == 0)
                return mr_error_set(err, MR_EPARSE, "%s: a group needs a name and nodes", path);
        r = group_state_from_string(mr_json_get_str(o, "state", NULL));
        if (r < 0)
                return mr_error_set(err, MR_EPARSE, "%s.state: unknown state \"%s\"", path,
                                    strna(mr_json_get_str(o, "state", NULL)));
        g->state = (GroupState)r;
        if (mr_json_get_int(&v, o, "connections", NULL) == 0)
                g->connections = v;
        if (mr_json_get_int(&v, o, "rollbackStep", NULL) == 0 && v >= 0 && v <= 3)
                g->rollback_step = (unsigned)v;
        g->rollback_requested = mr_json_get_bool(false, o, "rollbackRequested", NULL);
        return 0;
}

static void group_clear(GroupStatus *g)
{
        free(g->name);
        strv_free(g->nodes);
        strv_free(g->operator_cordoned);
        strv_free(g->deleted_nodes);
        free(g->message);
}

static int read_phase(json_object *o, size_t index, PhaseStatus *p, MrError *err)
{
        char path[64];
        int r;

        snprintf(path, sizeof(path), "status.phases[%zu]", index);
        if (!json_object_is_type(o, json_type_object))
                return mr_error_set(err, MR_EPARSE, "%s: expected a mapping", path);
        r = phase_kind_from_string(mr_json_get_str(o, "name", NULL));
        if (r < 0)
                return mr_error_set(err, MR_EPARSE, "%s.name: unknown phase \"%s\"", path,
                                    strna(mr_json_get_str(o, "name", NULL)));
        p->kind = (PhaseKind)r;
        r = phase_state_from_string(mr_json_get_str(o, "state", NULL));
        if (r < 0)
                return mr_error_set(err, MR_EPARSE, "%s.state: unknown state \"%s\"", path,
                                    strna(mr_json_get_str(o, "state", NULL)));
        p->state = (PhaseState)r;
        if ((r = read_str(o, "message", &p->message)) < 0 || (r = read_time(o, "since", path, &p->since, err)) < 0 ||
            (r = read_time(o, "startedAt", path, &p->started_at, err)) < 0 ||
            (r = read_time(o, "finishedAt", path, &p->finished_at, err)) < 0)
                return r;
        json_object *detail = mr_json_get(o, "detail", NULL);
        if (detail && !json_object_is_type(detail, json_type_object))
                return mr_error_set(err, MR_EPARSE, "%s.detail: expected a mapping", path);
        p->detail = detail ? mr_json_copy(detail) : json_object_new_object();
        return p->detail ? 0 : -ENOMEM;
}

static void phase_clear(PhaseStatus *p)
{
        free(p->message);
        json_object_put(p->detail);
}

int rollout_status_from_json(json_object *status, RolloutStatus **ret, MrError *err)
{
        _cleanup_(rollout_status_freep) RolloutStatus *s = calloc(1, sizeof(RolloutStatus));
        json_object *groups;
        int r;

        if (!s)
                return -ENOMEM;
        if (!status || !json_object_is_type(status, json_type_object)) {
                *ret = TAKE_PTR(s);
                return 0;
        }
        r = rollout_phase_from_string(mr_json_get_str(status, "phase", NULL));
        s->phase = r < 0 ? ROLLOUT_PENDING : (RolloutPhase)r;
        (void)mr_json_get_int(&s->observed_generation, status, "observedGeneration", NULL);
        if ((r = read_str(status, "reason", &s->reason)) < 0 || (r = read_str(status, "message", &s->message)) < 0 ||
            (r = read_time(status, "startedAt", "status", &s->started_at, err)) < 0 ||
            (r = read_time(status, "finishedAt", "status", &s->finished_at, err)) < 0)
                return r;
        const char *v;
        if ((v = mr_json_get_str(status, "targetRevision", "name", NULL)) && !(s->target.name = strdup(v)))
                return -ENOMEM;
        if ((v = mr_json_get_str(status, "targetRevision", "hash", NULL)) && !(s->target.hash = strdup(v)))
                return -ENOMEM;
        if ((v = mr_json_get_str(status, "previousRevision", "name", NULL)) && !(s->previous.name = strdup(v)))
                return -ENOMEM;
        if ((v = mr_json_get_str(status, "previousRevision", "hash", NULL)) && !(s->previous.hash = strdup(v)))
                return -ENOMEM;

        groups = mr_json_get(status, "groups", NULL);
        if (groups) {
                if (!json_object_is_type(groups, json_type_array))
                        return mr_error_set(err, MR_EPARSE, "status.groups: expected a list");
                size_t n = json_object_array_length(groups);
                s->groups = n ? calloc(n, sizeof(GroupStatus)) : NULL;
                if (n && !s->groups)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        r = read_group(json_object_array_get_idx(groups, i), i, &s->groups[i], err);
                        s->n_groups = i + 1;
                        if (r < 0)
                                return r;
                }
        }
        s->initialized = s->target.hash && s->n_groups > 0;

        json_object *phases = mr_json_get(status, "phases", NULL);
        if (phases) {
                if (!json_object_is_type(phases, json_type_array))
                        return mr_error_set(err, MR_EPARSE, "status.phases: expected a list");
                size_t n = json_object_array_length(phases);
                s->phases = calloc(n ? n : 1, sizeof(PhaseStatus));
                if (!s->phases)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        r = read_phase(json_object_array_get_idx(phases, i), i, &s->phases[i], err);
                        s->n_phases = i + 1;
                        if (r < 0)
                                return r;
                }
        } else if (s->initialized) {
                /* Written before phases existed: a ztunnel-only rollout, under way. */
                if (rollout_status_add_phase(s, PHASE_ZTUNNEL) < 0)
                        return -ENOMEM;
                s->phases[0].state = rollout_status_current(s) < 0 ? PHASE_COMPLETED : PHASE_PROGRESSING;
                s->phases[0].started_at = s->started_at;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

/* ---- writing ---------------------------------------------------------------- */

static int put(json_object *o, const char *key, json_object *v)
{
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int set_time(json_object *o, const char *key, usec_t t)
{
        char buf[KUBE_TIME_MAX];
        return mr_json_set_str(o, key, t ? kube_microtime_format(t, buf) : NULL);
}

static json_object *strv_json(char **l)
{
        json_object *a = json_object_new_array();
        for (char **i = l; a && i && *i; i++) {
                json_object *s = json_object_new_string(*i);
                if (!s || json_object_array_add(a, s) < 0) {
                        json_object_put(s);
                        json_object_put(a);
                        return NULL;
                }
        }
        return a;
}

static json_object *revision_json(const Revision *r)
{
        if (!r->hash)
                return NULL;
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        if (!o || mr_json_set_str(o, "name", r->name) < 0 || mr_json_set_str(o, "hash", r->hash) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static json_object *group_json(const GroupStatus *g)
{
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *nodes = strv_json(g->nodes), *cordoned = strv_json(g->operator_cordoned),
                    *deleted = strv_json(g->deleted_nodes);

        if (!o || !nodes || !cordoned || !deleted) {
                json_object_put(nodes);
                json_object_put(cordoned);
                json_object_put(deleted);
                return NULL;
        }
        if (put(o, "deletedNodes", deleted) < 0) {
                json_object_put(nodes);
                json_object_put(cordoned);
                return NULL;
        }
        if (mr_json_set_str(o, "name", g->name) < 0 || put(o, "nodes", nodes) < 0 ||
            mr_json_set_str(o, "state", group_state_to_string(g->state)) < 0 || set_time(o, "since", g->since) < 0 ||
            set_time(o, "startedAt", g->started_at) < 0 || set_time(o, "finishedAt", g->finished_at) < 0 ||
            put(o, "operatorCordoned", cordoned) < 0 ||
            put(o, "connections", g->connections >= 0 ? json_object_new_int64(g->connections) : NULL) < 0 ||
            set_time(o, "readySince", g->ready_since) < 0 || mr_json_set_int(o, "rollbackStep", g->rollback_step) < 0 ||
            mr_json_set_bool(o, "rollbackRequested", g->rollback_requested) < 0 ||
            mr_json_set_str(o, "message", strempty(g->message)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static json_object *phase_json(const PhaseStatus *p)
{
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *detail = p->detail ? mr_json_copy(p->detail) : json_object_new_object();

        if (!o || !detail) {
                json_object_put(detail);
                return NULL;
        }
        if (mr_json_set_str(o, "name", phase_kind_to_string(p->kind)) < 0 ||
            mr_json_set_str(o, "state", phase_state_to_string(p->state)) < 0 || set_time(o, "since", p->since) < 0 ||
            set_time(o, "startedAt", p->started_at) < 0 || set_time(o, "finishedAt", p->finished_at) < 0 ||
            mr_json_set_str(o, "message", strempty(p->message)) < 0 || put(o, "detail", detail) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* One condition per phase type; lastTransitionTime kept from old when the status is unchanged. */
static json_object *conditions_json(const RolloutStatus *s, json_object *old, usec_t now)
{
        static const struct {
                const char *type;
                RolloutPhase phase;
        } kinds[] = {
                { "Progressing", ROLLOUT_PROGRESSING },
                { "Paused", ROLLOUT_PAUSED },
                { "Completed", ROLLOUT_COMPLETED },
                { "Failed", ROLLOUT_FAILED },
        };
        _cleanup_(json_object_putp) json_object *a = json_object_new_array();
        char when[KUBE_TIME_MAX];

        if (!a)
                return NULL;
        kube_time_format(now, when);
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
                const char *status = s->phase == kinds[i].phase ? "True" : "False";
                const char *since = when;
                for (size_t j = 0; old && json_object_is_type(old, json_type_array) && j < json_object_array_length(old);
                     j++) {
                        json_object *c = json_object_array_get_idx(old, j);
                        if (streq_ptr(mr_json_get_str(c, "type", NULL), kinds[i].type) &&
                            streq_ptr(mr_json_get_str(c, "status", NULL), status) &&
                            mr_json_get_str(c, "lastTransitionTime", NULL))
                                since = mr_json_get_str(c, "lastTransitionTime", NULL);
                }
                json_object *c = json_object_new_object();
                if (!c || json_object_array_add(a, c) < 0) {
                        json_object_put(c);
                        return NULL;
                }
                bool mine = s->phase == kinds[i].phase;
                if (mr_json_set_str(c, "type", kinds[i].type) < 0 || mr_json_set_str(c, "status", status) < 0 ||
                    mr_json_set_str(c, "reason", mine && s->reason ? s->reason : kinds[i].type) < 0 ||
                    mr_json_set_str(c, "message", mine ? strempty(s->message) : "") < 0 ||
                    mr_json_set_str(c, "lastTransitionTime", since) < 0)
                        return NULL;
        }
        return TAKE_PTR(a);
}

int rollout_status_to_json(const RolloutStatus *s, json_object *old_conditions, usec_t now, json_object **ret)
{
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *groups = json_object_new_array(),
                                                *phases = json_object_new_array();
        int current = rollout_status_current(s), current_phase = rollout_status_current_phase(s);
        int64_t done = 0;

        if (!o || !groups || !phases)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_phases; i++) {
                json_object *p = phase_json(&s->phases[i]);
                if (!p || json_object_array_add(phases, p) < 0) {
                        json_object_put(p);
                        return -ENOMEM;
                }
        }
        for (size_t i = 0; i < s->n_groups; i++) {
                json_object *g = group_json(&s->groups[i]);
                if (!g || json_object_array_add(groups, g) < 0) {
                        json_object_put(g);
                        return -ENOMEM;
                }
                if (group_state_finished(s->groups[i].state))
                        done++;
        }
        if (mr_json_set_str(o, "phase", rollout_phase_to_string(s->phase)) < 0 ||
            mr_json_set_str(o, "reason", strempty(s->reason)) < 0 ||
            mr_json_set_str(o, "message", strempty(s->message)) < 0 ||
            mr_json_set_int(o, "observedGeneration", s->observed_generation) < 0 ||
            set_time(o, "startedAt", s->started_at) < 0 || set_time(o, "finishedAt", s->finished_at) < 0 ||
            mr_json_set_str(o, "currentGroup", current >= 0 ? s->groups[current].name : "") < 0 ||
            mr_json_set_int(o, "groupsDone", done) < 0 || mr_json_set_int(o, "groupsTotal", (int64_t)s->n_groups) < 0 ||
            put(o, "targetRevision", revision_json(&s->target)) < 0 ||
            put(o, "previousRevision", revision_json(&s->previous)) < 0 || put(o, "groups", TAKE_PTR(groups)) < 0 ||
            mr_json_set_str(o, "currentPhase",
                            current_phase >= 0 ? phase_kind_to_string(s->phases[current_phase].kind) : "") < 0 ||
            put(o, "phases", TAKE_PTR(phases)) < 0)
                return -ENOMEM;
        json_object *conditions = conditions_json(s, old_conditions, now);
        if (!conditions || put(o, "conditions", conditions) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

/* ---- helpers ---------------------------------------------------------------------- */

int rollout_status_current_phase(const RolloutStatus *s)
{
        for (size_t i = 0; i < s->n_phases; i++)
                if (!phase_state_finished(s->phases[i].state))
                        return (int)i;
        return -1;
}

PhaseStatus *rollout_status_phase(RolloutStatus *s, PhaseKind kind)
{
        for (size_t i = 0; i < s->n_phases; i++)
                if (s->phases[i].kind == kind)
                        return &s->phases[i];
        return NULL;
}

int rollout_status_add_phase(RolloutStatus *s, PhaseKind kind)
{
        PhaseStatus *l = reallocarray(s->phases, s->n_phases + 1, sizeof(PhaseStatus));
        if (!l)
                return -ENOMEM;
        s->phases = l;
        l[s->n_phases] = (PhaseStatus){ .kind = kind, .state = PHASE_PENDING, .detail = json_object_new_object() };
        if (!l[s->n_phases].detail)
                return -ENOMEM;
        s->n_phases++;
        return 0;
}

void phase_set_state(PhaseStatus *p, PhaseState state, usec_t now)
{
        if (p->state == PHASE_PENDING && state != PHASE_PENDING && !p->started_at)
                p->started_at = now;
        if (phase_state_finished(state))
                p->finished_at = now;
        p->state = state;
        p->since = now;
        free(p->message);
        p->message = NULL;
}

int rollout_status_current(const RolloutStatus *s)
{
        for (size_t i = 0; i < s->n_groups; i++)
                if (!group_state_finished(s->groups[i].state))
                        return (int)i;
        return -1;
}

bool group_node_deleted(const GroupStatus *g, const char *node)
{
        for (char **i = g->deleted_nodes; i && *i; i++)
                if (streq(*i, node))
                        return true;
        return false;
}

GroupStatus *rollout_status_group(RolloutStatus *s, const char *name)
{
        for (size_t i = 0; i < s->n_groups; i++)
                if (streq(s->groups[i].name, name))
                        return &s->groups[i];
        return NULL;
}

void group_set_state(GroupStatus *g, GroupState state, usec_t now)
{
        if (g->state == GROUP_PENDING && state != GROUP_PENDING && !g->started_at)
                g->started_at = now;
        if (group_state_finished(state))
                g->finished_at = now;
        if (state != GROUP_VERIFYING && state != GROUP_ROLLING_BACK)
                g->ready_since = 0;
        g->state = state;
        g->since = now;
        /* A message describes the state it was written in. */
        free(g->message);
        g->message = NULL;
}

_printf_(2, 0) static int set_message_v(char **dst, const char *fmt, va_list ap)
{
        char *m = NULL;
        if (fmt && vasprintf(&m, fmt, ap) < 0)
                return -ENOMEM;
        free(*dst);
        *dst = m;
        return 0;
}

int group_set_message(GroupStatus *g, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = set_message_v(&g->message, fmt, ap);
        va_end(ap);
        return r;
}

int phase_set_message(PhaseStatus *p, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = set_message_v(&p->message, fmt, ap);
        va_end(ap);
        return r;
}

int rollout_status_set_phase(RolloutStatus *s, RolloutPhase phase, const char *reason, const char *fmt, ...)
{
        va_list ap;
        char *rs = reason ? strdup(reason) : NULL;
        if (reason && !rs)
                return -ENOMEM;
        free(s->reason);
        s->reason = rs;
        s->phase = phase;
        va_start(ap, fmt);
        int r = set_message_v(&s->message, fmt, ap);
        va_end(ap);
        return r;
}

RolloutStatus *rollout_status_free(RolloutStatus *s)
{
        if (!s)
                return NULL;
        free(s->reason);
        free(s->message);
        free(s->target.name);
        free(s->target.hash);
        free(s->previous.name);
        free(s->previous.hash);
        for (size_t i = 0; i < s->n_groups; i++)
                group_clear(&s->groups[i]);
        free(s->groups);
        for (size_t i = 0; i < s->n_phases; i++)
                phase_clear(&s->phases[i]);
        free(s->phases);
        free(s);
        return NULL;
}
