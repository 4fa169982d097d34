/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gateway.c — the gateway phase (design in gateway.h; docs/rollout.md).
 *
 * State in PhaseStatus.detail, so any coordinator resumes it:
 *
 *   detail = {
 *     "deployment": "ingress-green",     # the new gateway (found once, at the start)
 *     "oldDeployment": "ingress-blue",   # the old one, or absent when none matched
 *     "stage": "check" | "switch" | "verify" | "soak" | "undo" | "undoVerify",
 *     "stageSince": µs,
 *     "endpoints": 2,                    # new (or, rolled back, old) ready endpoints last seen
 *     "reason": "…",                     # why it rolls back
 *     "gates": …, "gateBaselines": …
 *   }
 *
 * The switch is the only write: a GET of the Service and a PUT of the same
 * object with selector[key] changed, carrying its resourceVersion, so a
 * concurrent edit of the Service is never overwritten (409: read again
 * next tick). Setting a value is idempotent; a coordinator that dies
 * between the PUT and the status write switches again to the same value.
 *
 * Waits (new gateway Ready, endpoints) have `timeout` from the stage's
 * start or from the phase's `since` when later (the engine moves it on
 * resume). A new gateway that never gets Ready pauses the Rollout: nothing
 * was switched, nothing is undone. Endpoints that never hold only new pods
 * roll the phase back.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "meshroll/json-util.h"
#include "meshroll/log.h"
#include "gateway.h"
#include "sidecar.h"
#include "spec-read.h"
#include "spec.h"
#include "status.h"

GatewaySpec *gateway_spec_free(GatewaySpec *s)
{
        if (!s)
                return NULL;
        free(s->service_namespace);
        free(s->service_name);
        free(s->selector_key);
        free(s->from);
        free(s->to);
        free(s->deployment);
        free(s);
        return NULL;
}

int gateway_spec_parse(json_object *section, const char *path, GatewaySpec **ret, MrError *err)
{
        static const char *const keys[] = { "service", "selectorKey", "from", "to", "deployment", "timeout", "soak", NULL };
        static const char *const svc_keys[] = { "namespace", "name", NULL };
        _cleanup_(gateway_spec_freep) GatewaySpec *s = calloc(1, sizeof(GatewaySpec));
        char spath[256];
        json_object *svc = NULL;
        int r;

        if (!s || !(s->selector_key = strdup("istio.io/rev")))
                return -ENOMEM;
        s->timeout = 5 * USEC_PER_MINUTE;
        s->soak = USEC_PER_MINUTE;
        snprintf(spath, sizeof(spath), "%s.service", path);
        if ((r = spec_check_keys(section, path, keys, err)) < 0 ||
            (r = spec_get_object(section, "service", path, &svc, err)) < 0 ||
            (r = spec_get_string(section, "selectorKey", path, &s->selector_key, err)) < 0 ||
            (r = spec_get_string(section, "from", path, &s->from, err)) < 0 ||
            (r = spec_get_string(section, "to", path, &s->to, err)) < 0 ||
            (r = spec_get_string(section, "deployment", path, &s->deployment, err)) < 0 ||
            (r = spec_get_duration(section, "timeout", path, 24 * 3600 * USEC_PER_SEC, &s->timeout, err)) < 0 ||
            (r = spec_get_duration(section, "soak", path, 24 * 3600 * USEC_PER_SEC, &s->soak, err)) < 0)
                return r;
        if (!svc)
                return mr_error_set(err, MR_ECONFIG, "%s.service: required ({namespace, name} of the gateway's Service)",
                                    path);
        if ((r = spec_check_keys(svc, spath, svc_keys, err)) < 0 ||
            (r = spec_get_string(svc, "namespace", spath, &s->service_namespace, err)) < 0 ||
            (r = spec_get_string(svc, "name", spath, &s->service_name, err)) < 0)
                return r;
        if (!s->service_namespace || !s->service_name)
                return mr_error_set(err, MR_ECONFIG, "%s.%s: required", spath, s->service_name ? "namespace" : "name");
        if (!s->from || !s->to)
                return mr_error_set(err, MR_ECONFIG, "%s.%s: required (the selector value %s the switch)", path,
                                    s->from ? "to" : "from", s->from ? "after" : "before");
        if (streq(s->from, s->to))
                return mr_error_set(err, MR_ECONFIG, "%s.to: \"%s\" equals from; nothing would switch", path, s->to);
        if (s->timeout == 0)
                return mr_error_set(err, MR_ECONFIG, "%s.timeout: expected a duration above 0", path);
        *ret = TAKE_PTR(s);
        return 0;
}

bool gateway_selector_matches(json_object *sel, const char *key, const char *value, json_object *labels)
{
        if (!sel || !json_object_is_type(sel, json_type_object) || json_object_object_length(sel) == 0)
                return false;
        json_object_object_foreach(sel, k, v) {
                const char *want = streq(k, key) ? value : json_object_get_string(v);
                if (!streq_ptr(mr_json_get_str(labels, k, NULL), want))
                        return false;
        }
        return streq_ptr(mr_json_get_str(labels, key, NULL), value);
}

/* "k=v,…" of the Service's selector with key=value. Owned. */
static char *selector_string(json_object *sel, const char *key, const char *value)
{
        char *out = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&out, &size);
        bool first = true;

        if (!f)
                return NULL;
        json_object_object_foreach(sel, k, v) {
                if (streq(k, key))
                        continue;
                fprintf(f, "%s%s=%s", first ? "" : ",", k, json_object_get_string(v));
                first = false;
        }
        fprintf(f, "%s%s=%s", first ? "" : ",", key, value);
        if (fclose(f) != 0) {
                free(out);
                return NULL;
        }
        return out;
}

int gateway_find_deployment(KubeClient *c, const GatewaySpec *s, json_object *service, const char *value, bool named,
                            json_object **ret, MrError *err)
{
        _cleanup_(json_object_putp) json_object *items = NULL;
        json_object *sel = mr_json_get(service, "spec", "selector", NULL);
        json_object *found = NULL;
        KubeStatus st;
        int r;

        if ((r = kube_list(c, &KUBE_DEPLOYMENTS, s->service_namespace, NULL, &items, NULL, &st)) < 0)
                return mr_error_set(err, r, "listing Deployments in %s: %s", s->service_namespace,
                                    st.message[0] ? st.message : mr_strerror(r));
        for (size_t i = 0; i < json_object_array_length(items); i++) {
                json_object *d = json_object_array_get_idx(items, i);
                const char *name = mr_json_get_str(d, "metadata", "name", NULL);
                if (named) {
                        if (streq_ptr(name, s->deployment)) {
                                found = d;
                                break;
                        }
                        continue;
                }
                if (!gateway_selector_matches(sel, s->selector_key, value,
                                              mr_json_get(d, "spec", "template", "metadata", "labels", NULL)))
                        continue;
                if (found)
                        return mr_error_set(err, MR_ECONFIG,
                                            "spec.gateway: both Deployments %s and %s in %s have pods the Service would "
                                            "select with %s=%s; name the one with spec.gateway.deployment",
                                            mr_json_get_str(found, "metadata", "name", NULL), name,
                                            s->service_namespace, s->selector_key, value);
                found = d;
        }
        if (!found && named)
                return mr_error_set(err, MR_ECONFIG, "spec.gateway.deployment: no Deployment %s/%s",
                                    s->service_namespace, s->deployment);
        if (!found)
                return mr_error_set(err, -ENOENT,
                                    "spec.gateway: no Deployment in %s has pods the Service %s would select with %s=%s",
                                    s->service_namespace, s->service_name, s->selector_key, value);
        *ret = json_object_get(found);
        return 0;
}

/* ---- steps ---------------------------------------------------------------------------- */

static int get_obj(PhaseCtx *ctx, const KubeResource *res, const char *ns, const char *name, json_object **ret)
{
        _cleanup_free_ char *path = NULL;
        KubeStatus st;
        int r;

        if (kube_path(res, ns, name, NULL, &path) < 0)
                return -ENOMEM;
        r = kube_get(ctx->client, path, ret, &st);
        if (r < 0)
                return mr_error_set(ctx->err, r, "reading %s %s/%s: %s", res->kind, ns, name,
                                    st.message[0] ? st.message : mr_strerror(r));
        return 0;
}

static const char *stage(PhaseStatus *ps)
{
        return mr_json_get_str(ps->detail, "stage", NULL);
}

static int set_stage(PhaseCtx *ctx, PhaseStatus *ps, const char *st)
{
        if (mr_json_set_str(ps->detail, "stage", st) < 0 || mr_json_set_int(ps->detail, "stageSince", (int64_t)ctx->now) < 0)
                return -ENOMEM;
        return 0;
}

static usec_t stage_elapsed(PhaseCtx *ctx, PhaseStatus *ps)
{
        int64_t since = 0;
        (void)mr_json_get_int(&since, ps->detail, "stageSince", NULL);
        usec_t start = MAX((usec_t)since, ps->since);
        return phase_elapsed(ctx, start);
}

static int set_msg(PhaseStatus *ps, bool *changed, const char *fmt, ...) _printf_(3, 4);
static int set_msg(PhaseStatus *ps, bool *changed, const char *fmt, ...)
{
        _cleanup_free_ char *m = NULL;
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(&m, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        if (!streq_ptr(ps->message, m)) {
                free(ps->message);
                ps->message = TAKE_PTR(m);
                *changed = true;
        }
        return 0;
}

static int start(PhaseCtx *ctx, const GatewaySpec *s, PhaseStatus *ps)
{
        _cleanup_(json_object_putp) json_object *svc = NULL, *dnew = NULL, *dold = NULL;
        MrError ignored = {};
        int r;

        r = get_obj(ctx, &KUBE_SERVICES, s->service_namespace, s->service_name, &svc);
        if (r == -ENOENT)
                return mr_error_set(ctx->err, MR_ECONFIG, "spec.gateway.service: no Service %s/%s",
                                    s->service_namespace, s->service_name);
        if (r < 0)
                return r;
        const char *cur = mr_json_get_str(svc, "spec", "selector", s->selector_key, NULL);
        if (!streq_ptr(cur, s->from) && !streq_ptr(cur, s->to))
                return mr_error_set(ctx->err, MR_ECONFIG,
                                    "spec.gateway.from: Service %s/%s selects %s=%s, not %s", s->service_namespace,
                                    s->service_name, s->selector_key, strna(cur), s->from);
        r = gateway_find_deployment(ctx->client, s, svc, s->to, s->deployment != NULL, &dnew, ctx->err);
        if (r < 0)
                return r == -ENOENT ? -MR_ECONFIG : r;
        if (!gateway_selector_matches(mr_json_get(svc, "spec", "selector", NULL), s->selector_key, s->to,
                                      mr_json_get(dnew, "spec", "template", "metadata", "labels", NULL)))
                return mr_error_set(ctx->err, MR_ECONFIG,
                                    "spec.gateway.deployment: the pods of %s/%s would not match the Service's selector "
                                    "with %s=%s",
                                    s->service_namespace, mr_json_get_str(dnew, "metadata", "name", NULL),
                                    s->selector_key, s->to);
        (void)gateway_find_deployment(ctx->client, s, svc, s->from, false, &dold, &ignored);
        if (mr_json_set_str(ps->detail, "deployment", mr_json_get_str(dnew, "metadata", "name", NULL)) < 0 ||
            (dold && mr_json_set_str(ps->detail, "oldDeployment", mr_json_get_str(dold, "metadata", "name", NULL)) < 0) ||
            set_stage(ctx, ps, "check") < 0)
                return -ENOMEM;
        phase_set_state(ps, PHASE_PROGRESSING, ctx->now);
        if (phase_set_message(ps, "checking gateway %s/%s before switching %s/%s to %s=%s", s->service_namespace,
                              mr_json_get_str(dnew, "metadata", "name", NULL), s->service_namespace, s->service_name,
                              s->selector_key, s->to) < 0)
                return -ENOMEM;
        return PHASE_ADVANCE;
}

static bool pod_ready(json_object *p)
{
        json_object *conds = mr_json_get(p, "status", "conditions", NULL);
        if (mr_json_get(p, "metadata", "deletionTimestamp", NULL))
                return false;
        for (size_t i = 0; conds && json_object_is_type(conds, json_type_array) && i < json_object_array_length(conds); i++) {
                json_object *c = json_object_array_get_idx(conds, i);
                if (streq_ptr(mr_json_get_str(c, "type", NULL), "Ready"))
                        return streq_ptr(mr_json_get_str(c, "status", NULL), "True");
        }
        return false;
}

/* The new gateway is rolled out with every replica Ready, and Ready pods match the switched selector. */
static int check_new(PhaseCtx *ctx, const GatewaySpec *s, PhaseStatus *ps, bool *ret_ok, char **ret_why)
{
        _cleanup_(json_object_putp) json_object *d = NULL, *svc = NULL, *pods = NULL;
        _cleanup_free_ char *sel = NULL;
        const char *why = NULL;
        int64_t replicas = 1, ready = 0;
        KubeStatus st;
        int r;

        *ret_ok = false;
        *ret_why = NULL;
        if ((r = get_obj(ctx, &KUBE_DEPLOYMENTS, s->service_namespace,
                         mr_json_get_str(ps->detail, "deployment", NULL), &d)) < 0 ||
            (r = get_obj(ctx, &KUBE_SERVICES, s->service_namespace, s->service_name, &svc)) < 0)
                return r;
        (void)mr_json_get_int(&replicas, d, "spec", "replicas", NULL);
        (void)mr_json_get_int(&ready, d, "status", "readyReplicas", NULL);
        if (replicas < 1)
                return asprintf(ret_why, "Deployment %s has 0 replicas", mr_json_get_str(d, "metadata", "name", NULL)) < 0
                               ? -ENOMEM
                               : 0;
        if (sidecar_deployment_rolled_out(d, &why) == 0)
                return asprintf(ret_why, "Deployment %s: %s", mr_json_get_str(d, "metadata", "name", NULL), why) < 0
                               ? -ENOMEM
                               : 0;
        if (ready < replicas)
                return asprintf(ret_why, "Deployment %s: %lld of %lld replicas Ready",
                                mr_json_get_str(d, "metadata", "name", NULL), (long long)ready, (long long)replicas) < 0
                               ? -ENOMEM
                               : 0;
        if (!(sel = selector_string(mr_json_get(svc, "spec", "selector", NULL), s->selector_key, s->to)))
                return -ENOMEM;
        KubeListOptions lo = { .label_selector = sel };
        if ((r = kube_list(ctx->client, &KUBE_PODS, s->service_namespace, &lo, &pods, NULL, &st)) < 0)
                return mr_error_set(ctx->err, r, "listing pods %s: %s", sel, st.message[0] ? st.message : mr_strerror(r));
        int64_t n = 0;
        for (size_t i = 0; i < json_object_array_length(pods); i++)
                n += pod_ready(json_object_array_get_idx(pods, i));
        if (n < replicas)
                return asprintf(ret_why, "%lld Ready pods match %s, expected %lld", (long long)n, sel, (long long)replicas) <
                                       0
                               ? -ENOMEM
                               : 0;
        *ret_ok = true;
        return 0;
}

/* Sets the Service's selector[key] = value (read-modify-replace). 1 written, 0 already so, -MR_ECONFLICT raced. */
static int switch_selector(PhaseCtx *ctx, const GatewaySpec *s, const char *value)
{
        _cleanup_(json_object_putp) json_object *svc = NULL;
        _cleanup_free_ char *path = NULL;
        KubeStatus st;
        int r;

        if ((r = get_obj(ctx, &KUBE_SERVICES, s->service_namespace, s->service_name, &svc)) < 0)
                return r;
        json_object *sel = mr_json_get(svc, "spec", "selector", NULL);
        if (!sel)
                return mr_error_set(ctx->err, MR_ECONFIG, "Service %s/%s has no selector", s->service_namespace,
                                    s->service_name);
        if (streq_ptr(mr_json_get_str(sel, s->selector_key, NULL), value))
                return 0;
        if (mr_json_set_str(sel, s->selector_key, value) < 0 ||
            kube_path(&KUBE_SERVICES, s->service_namespace, s->service_name, NULL, &path) < 0)
                return -ENOMEM;
        if ((r = phase_fence(ctx)) < 0)
                return r;
        r = kube_replace(ctx->client, path, svc, NULL, &st);
        if (r == -MR_ECONFLICT)
                return r;
        if (r < 0)
                return mr_error_set(ctx->err, r, "switching Service %s/%s: %s", s->service_namespace, s->service_name,
                                    st.message[0] ? st.message : mr_strerror(r));
        return 1;
}

/*
 * Counts the Service's endpoints: those that are pods matching selector
 * key=want (*ret_good, ready ones), and any other (*ret_other, with the
 * first one's name in other_name).
 */
static int count_endpoints(PhaseCtx *ctx, const GatewaySpec *s, const char *want, int64_t *ret_good,
                           int64_t *ret_other, char *other_name, size_t size)
{
        _cleanup_(json_object_putp) json_object *ep = NULL, *svc = NULL, *pods = NULL;
        _cleanup_free_ char *sel = NULL;
        KubeStatus st;
        int r;

        *ret_good = *ret_other = 0;
        if ((r = get_obj(ctx, &KUBE_SERVICES, s->service_namespace, s->service_name, &svc)) < 0)
                return r;
        r = get_obj(ctx, &KUBE_ENDPOINTS, s->service_namespace, s->service_name, &ep);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        if (!(sel = selector_string(mr_json_get(svc, "spec", "selector", NULL), s->selector_key, want)))
                return -ENOMEM;
        KubeListOptions lo = { .label_selector = sel };
        if ((r = kube_list(ctx->client, &KUBE_PODS, s->service_namespace, &lo, &pods, NULL, &st)) < 0)
                return mr_error_set(ctx->err, r, "listing pods %s: %s", sel, st.message[0] ? st.message : mr_strerror(r));
        json_object *subsets = mr_json_get(ep, "subsets", NULL);
        for (size_t i = 0; subsets && json_object_is_type(subsets, json_type_array) && i < json_object_array_length(subsets);
             i++) {
                static const char *const kinds[] = { "addresses", "notReadyAddresses" };
                for (size_t k = 0; k < ELEMENTSOF(kinds); k++) {
                        json_object *addrs = mr_json_get(json_object_array_get_idx(subsets, i), kinds[k], NULL);
                        for (size_t j = 0; addrs && json_object_is_type(addrs, json_type_array) &&
                                           j < json_object_array_length(addrs);
                             j++) {
                                json_object *a = json_object_array_get_idx(addrs, j);
                                const char *pod = mr_json_get_str(a, "targetRef", "name", NULL);
                                bool good = false;
                                for (size_t p = 0; pod && p < json_object_array_length(pods) && !good; p++)
                                        good = streq_ptr(mr_json_get_str(json_object_array_get_idx(pods, p), "metadata",
                                                                         "name", NULL),
                                                         pod);
                                if (good && k == 0)
                                        (*ret_good)++;
                                else if (!good) {
                                        if (!*ret_other)
                                                snprintf(other_name, size, "%s",
                                                         pod ? pod : strna(mr_json_get_str(a, "ip", NULL)));
                                        (*ret_other)++;
                                }
                        }
                }
        }
        return 0;
}

static int begin_undo(PhaseCtx *ctx, PhaseStatus *ps, const char *reason)
{
        if (set_stage(ctx, ps, "undo") < 0 || mr_json_set_str(ps->detail, "reason", reason) < 0)
                return -ENOMEM;
        phase_set_state(ps, PHASE_ROLLING_BACK, ctx->now);
        if (phase_set_message(ps, "rolling back: %s", reason) < 0)
                return -ENOMEM;
        return 0;
}

static int gateway_step(PhaseCtx *ctx, const void *spec, PhaseStatus *ps)
{
        const GatewaySpec *s = spec;
        const char *st = stage(ps);
        bool changed = false;
        char other[256] = "", buf[32];
        int64_t good, bad;
        int r;

        if (ps->state == PHASE_PENDING) {
                r = start(ctx, s, ps);
                if (r == -MR_ECONFIG) {
                        if (phase_set_message(ps, "%s", ctx->err->message) < 0 ||
                            rollout_status_set_phase(ctx->status, ROLLOUT_PAUSED, "GatewayPreflight",
                                                     "phase gateway cannot start: %s; paused", ctx->err->message) < 0)
                                return -ENOMEM;
                        return PHASE_ADVANCE;
                }
                return r;
        }
        if (ps->state == PHASE_PROGRESSING && streq_ptr(st, "check")) {
                _cleanup_free_ char *why = NULL;
                bool ok;
                if ((r = check_new(ctx, s, ps, &ok, &why)) < 0)
                        return r;
                if (ok) {
                        if (set_stage(ctx, ps, "switch") < 0)
                                return -ENOMEM;
                        return PHASE_ADVANCE;
                }
                if (stage_elapsed(ctx, ps) > s->timeout) {
                        /* Nothing switched yet: nothing to undo. The operator fixes the new gateway and resumes. */
                        if (phase_set_message(ps, "new gateway not ready: %s", why) < 0 ||
                            rollout_status_set_phase(ctx->status, ROLLOUT_PAUSED, "GatewayNotReady",
                                                     "phase gateway: the new gateway is not ready after %s: %s; paused",
                                                     mr_duration_format(s->timeout, buf, sizeof(buf)), why) < 0)
                                return -ENOMEM;
                        return PHASE_ADVANCE;
                }
                if ((r = set_msg(ps, &changed, "waiting for the new gateway: %s", why)) < 0)
                        return r;
                return changed ? PHASE_ADVANCE : PHASE_STAY;
        }
        if (ps->state == PHASE_PROGRESSING && streq_ptr(st, "switch")) {
                r = switch_selector(ctx, s, s->to);
                if (r == -MR_ECONFLICT)
                        return PHASE_STAY; /* someone else wrote the Service: read it again next tick */
                if (r < 0)
                        return r;
                phase_event(ctx, NULL, KUBE_EVENT_NORMAL, "GatewaySwitched", "Service %s/%s now selects %s=%s",
                            s->service_namespace, s->service_name, s->selector_key, s->to);
                if (set_stage(ctx, ps, "verify") < 0 ||
                    phase_set_message(ps, "Service %s/%s switched to %s=%s; waiting for its endpoints",
                                      s->service_namespace, s->service_name, s->selector_key, s->to) < 0)
                        return -ENOMEM;
                return PHASE_ADVANCE;
        }
        if (ps->state == PHASE_PROGRESSING && streq_ptr(st, "verify")) {
                if ((r = count_endpoints(ctx, s, s->to, &good, &bad, other, sizeof(other))) < 0)
                        return r;
                if (good > 0 && bad == 0) {
                        if (set_stage(ctx, ps, "soak") < 0 || mr_json_set_int(ps->detail, "endpoints", good) < 0)
                                return -ENOMEM;
                        return PHASE_ADVANCE;
                }
                if (stage_elapsed(ctx, ps) > s->timeout) {
                        _cleanup_free_ char *why = NULL;
                        if (asprintf(&why, "the Service's endpoints did not hold only new pods within %s (%lld new, "
                                           "%lld other such as %s)",
                                     mr_duration_format(s->timeout, buf, sizeof(buf)), (long long)good, (long long)bad,
                                     other[0] ? other : "-") < 0 ||
                            begin_undo(ctx, ps, why) < 0)
                                return -ENOMEM;
                        return PHASE_ADVANCE;
                }
                if ((r = set_msg(ps, &changed, "waiting for endpoints: %lld new ready, %lld other%s%s", (long long)good,
                                 (long long)bad, other[0] ? " such as " : "", other)) < 0)
                        return r;
                return changed ? PHASE_ADVANCE : PHASE_STAY;
        }
        if (ps->state == PHASE_PROGRESSING && streq_ptr(st, "soak")) {
                int64_t since = 0;
                (void)mr_json_get_int(&since, ps->detail, "stageSince", NULL);
                r = phase_gates_check(ctx, ctx->spec->gates[PHASE_GATEWAY], ps, (usec_t)since, &changed);
                if (r == -MR_EGATE) {
                        if (begin_undo(ctx, ps, ctx->err->message) < 0)
                                return -ENOMEM;
                        return PHASE_ADVANCE;
                }
                if (r < 0)
                        return r;
                if (r == 0 || phase_elapsed(ctx, (usec_t)since) < s->soak) {
                        if ((r = set_msg(ps, &changed, "soaking (%s) with Service %s/%s on %s=%s",
                                         mr_duration_format(s->soak, buf, sizeof(buf)), s->service_namespace,
                                         s->service_name, s->selector_key, s->to)) < 0)
                                return r;
                        return changed ? PHASE_ADVANCE : PHASE_STAY;
                }
                const char *old = mr_json_get_str(ps->detail, "oldDeployment", NULL);
                int64_t n = 0;
                (void)mr_json_get_int(&n, ps->detail, "endpoints", NULL);
                phase_set_state(ps, PHASE_COMPLETED, ctx->now);
                if (phase_set_message(ps, "Service %s/%s selects %s=%s (%lld endpoints, Deployment %s)%s%s%s",
                                      s->service_namespace, s->service_name, s->selector_key, s->to, (long long)n,
                                      mr_json_get_str(ps->detail, "deployment", NULL), old ? "; old gateway " : "",
                                      strempty(old), old ? " kept running (meshroll cleanup)" : "") < 0)
                        return -ENOMEM;
                return PHASE_ADVANCE;
        }
        if (ps->state == PHASE_ROLLING_BACK && streq_ptr(st, "undo")) {
                r = switch_selector(ctx, s, s->from);
                if (r == -MR_ECONFLICT)
                        return PHASE_STAY;
                if (r < 0)
                        return r;
                phase_event(ctx, NULL, KUBE_EVENT_WARNING, "GatewaySwitchedBack", "Service %s/%s selects %s=%s again",
                            s->service_namespace, s->service_name, s->selector_key, s->from);
                if (set_stage(ctx, ps, "undoVerify") < 0)
                        return -ENOMEM;
                return PHASE_ADVANCE;
        }
        if (ps->state == PHASE_ROLLING_BACK) {
                const char *reason = mr_json_get_str(ps->detail, "reason", NULL);
                if ((r = count_endpoints(ctx, s, s->from, &good, &bad, other, sizeof(other))) < 0)
                        return r;
                if (good > 0 && bad == 0) {
                        phase_set_state(ps, PHASE_ROLLED_BACK, ctx->now);
                        if (phase_set_message(ps, "%s; Service %s/%s selects %s=%s again (%lld endpoints)", strna(reason),
                                              s->service_namespace, s->service_name, s->selector_key, s->from,
                                              (long long)good) < 0)
                                return -ENOMEM;
                        return PHASE_ADVANCE;
                }
                if (stage_elapsed(ctx, ps) > s->timeout) {
                        if (phase_set_message(ps, "rollback stuck: %lld old endpoints ready, %lld other (%s)",
                                              (long long)good, (long long)bad, other[0] ? other : "-") < 0 ||
                            rollout_status_set_phase(ctx->status, ROLLOUT_PAUSED, "GatewayRollbackStuck",
                                                     "phase gateway: %s; is the old gateway running? paused",
                                                     ps->message) < 0)
                                return -ENOMEM;
                        return PHASE_ADVANCE;
                }
                if ((r = set_msg(ps, &changed, "rolling back (%s): %lld old endpoints ready, %lld other", strna(reason),
                                 (long long)good, (long long)bad)) < 0)
                        return r;
                return changed ? PHASE_ADVANCE : PHASE_STAY;
        }
        return mr_error_set(ctx->err, -EINVAL, "phase gateway: unknown stage \"%s\" in its status", strna(st));
}

static int gateway_rollback(PhaseCtx *ctx, const void *spec, PhaseStatus *ps, const char *scope)
{
        (void)spec;
        if (scope)
                return mr_error_set(ctx->err, -EINVAL, "the gateway phase rolls back as a whole (no --namespace)");
        if (ps->state == PHASE_ROLLING_BACK)
                return 0;
        return begin_undo(ctx, ps, "rollback requested by an operator");
}

static void gateway_free_spec(void *p)
{
        (void)gateway_spec_free(p);
}

static int gateway_parse(json_object *section, const char *path, void **ret, MrError *err)
{
        GatewaySpec *s = NULL;
        int r = gateway_spec_parse(section, path, &s, err);
        if (r < 0)
                return r;
        *ret = s;
        return 0;
}

static int gateway_describe(const void *spec, char **ret)
{
        const GatewaySpec *s = spec;
        char t[32], soak[32];
        return asprintf(ret, "switch Service %s/%s from %s=%s to %s=%s (%s%s%s), endpoints within %s, soak %s",
                        s->service_namespace, s->service_name, s->selector_key, s->from, s->selector_key, s->to,
                        s->deployment ? "Deployment " : "the Deployment whose pods match", s->deployment ? s->deployment : "",
                        "", mr_duration_format(s->timeout, t, sizeof(t)), mr_duration_format(s->soak, soak, sizeof(soak))) <
                               0
                       ? -ENOMEM
                       : 0;
}

const PhaseOps gateway_phase_ops = {
        .kind = PHASE_GATEWAY,
        .parse = gateway_parse,
        .free_spec = gateway_free_spec,
        .step = gateway_step,
        .rollback = gateway_rollback,
        .describe = gateway_describe,
};
