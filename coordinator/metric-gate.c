/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metric-gate.c — see metric-gate.h for the document, phase.h for how the
 * phases call it.
 *
 * Queries go to Prometheus's HTTP API (GET /api/v1/query?query=Q) through
 * the project's HTTP client (kube.h) built for that URL, with one retry and
 * a short timeout: a gate check runs inside an engine tick, and a slow
 * Prometheus must delay the tick by seconds, not minutes.
 *
 * The record of a phase's gates is kept in PhaseStatus.detail:
 *
 *   gates:         {since: µs, <gate>: {passes: N, last: µs, value: X, error: "…"}}
 *   gateBaselines: {<gate>: X}
 *
 * `since` ties the count to one checkpoint: when a phase calls with a new
 * checkpoint start, the counts begin again. A gate's first check is due one
 * interval after `since`, each next one an interval after the last, so
 * `checks` passes cover checks × interval of the checkpoint. Every gate is
 * checked at its interval for as long as its phase keeps calling within the
 * checkpoint — also once it has its passes, while other gates, a step's
 * pause or a soak go on — so a breach at any time within the checkpoint
 * fails it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "meshroll/json-util.h"
#include "meshroll/kube.h"
#include "meshroll/kubeconfig.h"
#include "meshroll/log.h"
#include "metric-gate.h"
#include "phase.h"
#include "spec-read.h"
#include "status.h"

#define GATE_DEFAULT_INTERVAL (10 * USEC_PER_SEC)
#define GATE_DEFAULT_CHECKS 3
#define GATE_QUERY_TIMEOUT (5 * USEC_PER_SEC)

static const char *const comparison_names[] = {
        [GATE_CMP_LT] = "<", [GATE_CMP_LE] = "<=", [GATE_CMP_GT] = ">", [GATE_CMP_GE] = ">=",
};

const char *gate_comparison_to_string(GateComparison c)
{
        return c < ELEMENTSOF(comparison_names) ? comparison_names[c] : "?";
}

static void gate_clear(MetricGate *g)
{
        free(g->name);
        free(g->prometheus);
        free(g->query);
}

MetricGateSet *metric_gate_set_free(MetricGateSet *s)
{
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_gates; i++)
                gate_clear(&s->gates[i]);
        free(s->gates);
        free(s);
        return NULL;
}

static int read_gate(json_object *o, const char *path, const char *default_url, MetricGate *g, MrError *err)
{
        static const char *const keys[] = { "name",     "query",    "comparison", "threshold", "baseline",
                                            "interval", "checks",   "onError",    "prometheus", NULL };
        _cleanup_free_ char *comparison = NULL, *on_error = NULL;
        int r;

        *g = (MetricGate){ .comparison = GATE_CMP_LE, .interval = GATE_DEFAULT_INTERVAL,
                           .checks = GATE_DEFAULT_CHECKS, .on_error = GATE_ON_ERROR_FAIL, .threshold = NAN,
                           .baseline = NAN };
        if (!json_object_is_type(o, json_type_object))
                return spec_bad(err, path, NULL, "a mapping", o);
        if ((r = spec_check_keys(o, path, keys, err)) < 0 || (r = spec_get_string(o, "name", path, &g->name, err)) < 0 ||
            (r = spec_get_string(o, "query", path, &g->query, err)) < 0 ||
            (r = spec_get_string(o, "comparison", path, &comparison, err)) < 0 ||
            (r = spec_get_number(o, "threshold", path, -1e300, 1e300, &g->threshold, err)) < 0 ||
            (r = spec_get_number(o, "baseline", path, 0, 1e6, &g->baseline, err)) < 0 ||
            (r = spec_get_duration(o, "interval", path, 3600 * USEC_PER_SEC, &g->interval, err)) < 0 ||
            (r = spec_get_uint(o, "checks", path, 1, 1000, &g->checks, err)) < 0 ||
            (r = spec_get_string(o, "onError", path, &on_error, err)) < 0 ||
            (r = spec_get_string(o, "prometheus", path, &g->prometheus, err)) < 0)
                return r;
        if (!g->name)
                return mr_error_set(err, MR_ECONFIG, "%s.name: required", path);
        if (!g->query)
                return mr_error_set(err, MR_ECONFIG, "%s.query: required", path);
        if (isnan(g->threshold) == isnan(g->baseline))
                return mr_error_set(err, MR_ECONFIG, "%s: expected exactly one of threshold and baseline", path);
        g->relative = !isnan(g->baseline);
        if (g->interval < USEC_PER_SEC)
                return mr_error_set(err, MR_ECONFIG, "%s.interval: expected at least 1s", path);
        if (comparison) {
                size_t i;
                for (i = 0; i < ELEMENTSOF(comparison_names); i++)
                        if (streq(comparison, comparison_names[i]))
                                break;
                if (i == ELEMENTSOF(comparison_names))
                        return mr_error_set(err, MR_ECONFIG, "%s.comparison: expected one of <, <=, >, >=; got \"%s\"",
                                            path, comparison);
                g->comparison = (GateComparison)i;
        }
        if (on_error) {
                if (streq(on_error, "fail"))
                        g->on_error = GATE_ON_ERROR_FAIL;
                else if (streq(on_error, "pass"))
                        g->on_error = GATE_ON_ERROR_PASS;
                else if (streq(on_error, "wait"))
                        g->on_error = GATE_ON_ERROR_WAIT;
                else
                        return mr_error_set(err, MR_ECONFIG, "%s.onError: expected one of fail, pass, wait; got \"%s\"",
                                            path, on_error);
        }
        if (!g->prometheus && default_url && !(g->prometheus = strdup(default_url)))
                return mr_error_set(err, -ENOMEM, "out of memory");
        if (!g->prometheus)
                return mr_error_set(err, MR_ECONFIG, "%s.prometheus: required (or set spec.prometheus)", path);
        if (!startswith(g->prometheus, "http://") && !startswith(g->prometheus, "https://"))
                return mr_error_set(err, MR_ECONFIG, "%s.prometheus: expected an http:// or https:// URL, got \"%s\"",
                                    path, g->prometheus);
        return 0;
}

int metric_gates_from_json(json_object *list, const char *path, const char *default_url, MetricGateSet **ret,
                           MrError *err)
{
        _cleanup_(metric_gate_set_freep) MetricGateSet *s = NULL;
        char item[128];
        int r;

        *ret = NULL;
        if (!list)
                return 0;
        if (!json_object_is_type(list, json_type_array))
                return mr_error_set(err, MR_ECONFIG, "%s: expected a list of gates, got %s", path, spec_type_name(list));
        size_t n = json_object_array_length(list);
        if (n == 0)
                return 0;
        s = calloc(1, sizeof(*s));
        if (!s || !(s->gates = calloc(n, sizeof(MetricGate))))
                return mr_error_set(err, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                snprintf(item, sizeof(item), "%s[%zu]", path, i);
                s->n_gates = i + 1;
                if ((r = read_gate(json_object_array_get_idx(list, i), item, default_url, &s->gates[i], err)) < 0)
                        return r;
                for (size_t j = 0; j < i; j++)
                        if (streq(s->gates[j].name, s->gates[i].name))
                                return mr_error_set(err, MR_ECONFIG, "%s.name: \"%s\" is used twice", item,
                                                    s->gates[i].name);
        }
        *ret = TAKE_PTR(s);
        return 0;
}

/* ---- querying ------------------------------------------------------------------------- */

/*
 * Runs an instant query; 0 with *ret the single sample, -ENODATA when the
 * answer holds no single finite sample, other negative errno on failure;
 * message says what happened, for the status.
 */
static int query(const PhaseCtx *ctx, const MetricGate *g, double *ret, char *message, size_t size)
{
        _cleanup_(kube_client_freep) KubeClient *c = NULL;
        _cleanup_(json_object_putp) json_object *answer = NULL;
        _cleanup_free_ char *path = strdup("/api/v1/query");
        KubeConfig cfg = { .server = g->prometheus, .context_name = (char *)"prometheus" };
        KubeClientOptions o = { .qps = -1, .max_retries = 1, .request_timeout = GATE_QUERY_TIMEOUT,
                                .connect_timeout = 2 * USEC_PER_SEC, .max_response_size = 4u << 20,
                                .clock = ctx->clock, .backoff_cap = USEC_PER_SEC };
        KubeStatus st;
        MrError e = {};
        int r;

        /* The client wants a server without a trailing slash. */
        _cleanup_free_ char *server = strdup(g->prometheus);
        if (!path || !server)
                return -ENOMEM;
        for (size_t l = strlen(server); l > 0 && server[l - 1] == '/'; l--)
                server[l - 1] = 0;
        cfg.server = server;
        if ((r = kube_client_new(&cfg, &o, &c, &e)) < 0) {
                snprintf(message, size, "%s", e.message);
                return r;
        }
        if ((r = kube_path_append_query(&path, "query", g->query, NULL)) < 0)
                return r;
        r = kube_get(c, path, &answer, &st);
        if (r < 0) {
                snprintf(message, size, "query failed: %s", st.message[0] ? st.message : mr_strerror(r));
                return r;
        }
        if (!streq_ptr(mr_json_get_str(answer, "status", NULL), "success")) {
                snprintf(message, size, "query failed: %s", strna(mr_json_get_str(answer, "error", NULL)));
                return -MR_ESERVER;
        }
        const char *type = mr_json_get_str(answer, "data", "resultType", NULL);
        json_object *result = mr_json_get(answer, "data", "result", NULL), *sample = NULL;
        if (streq_ptr(type, "scalar"))
                sample = result;
        else if (streq_ptr(type, "vector") && json_object_is_type(result, json_type_array)) {
                size_t n = json_object_array_length(result);
                if (n != 1) {
                        snprintf(message, size, "no data: the query returned %zu series, expected one", n);
                        return -ENODATA;
                }
                sample = mr_json_get(json_object_array_get_idx(result, 0), "value", NULL);
        } else {
                snprintf(message, size, "no data: result type \"%s\", expected vector or scalar", strna(type));
                return -ENODATA;
        }
        json_object *v = json_object_is_type(sample, json_type_array) && json_object_array_length(sample) == 2
                                 ? json_object_array_get_idx(sample, 1)
                                 : NULL;
        char *end = NULL;
        const char *text = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
        double d = text ? strtod(text, &end) : NAN;
        if (!text || end == text || *end || !isfinite(d)) {
                snprintf(message, size, "no data: the sample is %s", text ? text : "missing");
                return -ENODATA;
        }
        *ret = d;
        return 0;
}

static bool compare(GateComparison c, double value, double threshold)
{
        switch (c) {
        case GATE_CMP_LT:
                return value < threshold;
        case GATE_CMP_LE:
                return value <= threshold;
        case GATE_CMP_GT:
                return value > threshold;
        case GATE_CMP_GE:
        default:
                return value >= threshold;
        }
}

/* detail[key] as an object, created when missing; NULL on -ENOMEM. */
static json_object *detail_object(PhaseStatus *ps, const char *key)
{
        if (!ps->detail && !(ps->detail = json_object_new_object()))
                return NULL;
        return mr_json_ensure_object(ps->detail, key, NULL);
}

int phase_gates_baseline(const PhaseCtx *ctx, const MetricGateSet *gates, PhaseStatus *ps, bool *changed)
{
        char message[512];
        int result = 1;

        for (size_t i = 0; gates && i < gates->n_gates; i++) {
                const MetricGate *g = &gates->gates[i];
                double v;
                if (!g->relative)
                        continue;
                json_object *baselines = detail_object(ps, "gateBaselines");
                if (!baselines)
                        return -ENOMEM;
                if (mr_json_get(baselines, g->name, NULL))
                        continue;
                int r = query(ctx, g, &v, message, sizeof(message));
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        if (g->on_error == GATE_ON_ERROR_WAIT) {
                                result = 0;
                                continue;
                        }
                        if (g->on_error == GATE_ON_ERROR_FAIL)
                                return mr_error_set(ctx->err, MR_EGATE, "gate %s: cannot measure its baseline: %s",
                                                    g->name, message);
                        continue; /* pass: no baseline; its checks will pass on error too */
                }
                json_object *d = json_object_new_double(v);
                if (!d || json_object_object_add(baselines, g->name, d) < 0) {
                        json_object_put(d);
                        return -ENOMEM;
                }
                *changed = true;
        }
        return result;
}

/* One check of one gate; 1 passed, 0 no verdict (wait), -MR_EGATE failed (ctx->err set). */
static int check_one(const PhaseCtx *ctx, const MetricGate *g, PhaseStatus *ps, json_object *rec)
{
        char message[512] = "";
        double v = NAN, threshold = g->threshold;
        int r;

        if (g->relative) {
                double base;
                json_object *b = mr_json_get(ps->detail, "gateBaselines", g->name, NULL);
                if (!b) {
                        snprintf(message, sizeof(message), "no baseline was measured before the phase");
                        r = -ENODATA;
                        goto error;
                }
                base = json_object_get_double(b);
                threshold = base * g->baseline;
        }
        r = query(ctx, g, &v, message, sizeof(message));
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                goto error;
        (void)json_object_object_add(rec, "value", json_object_new_double(v));
        (void)json_object_object_add(rec, "threshold", json_object_new_double(threshold));
        (void)json_object_object_del(rec, "error");
        if (compare(g->comparison, v, threshold))
                return 1;
        return mr_error_set(ctx->err, MR_EGATE, "gate %s failed: %g is not %s %g (%s)", g->name, v,
                            gate_comparison_to_string(g->comparison), threshold, g->query);
error:
        (void)mr_json_set_str(rec, "error", message);
        switch (g->on_error) {
        case GATE_ON_ERROR_PASS:
                return 1;
        case GATE_ON_ERROR_WAIT:
                return 0;
        case GATE_ON_ERROR_FAIL:
        default:
                return mr_error_set(ctx->err, MR_EGATE, "gate %s failed closed: %s", g->name, message);
        }
}

int phase_gates_check(const PhaseCtx *ctx, const MetricGateSet *gates, PhaseStatus *ps, usec_t since, bool *changed)
{
        int64_t recorded = 0;

        if (!gates || gates->n_gates == 0)
                return 1;
        json_object *record = detail_object(ps, "gates");
        if (!record)
                return -ENOMEM;
        if (mr_json_get_int(&recorded, record, "since", NULL) < 0 || (usec_t)recorded != since) {
                /* A new checkpoint: the counts start again. */
                json_object *fresh = json_object_new_object();
                if (!fresh || json_object_object_add(ps->detail, "gates", fresh) < 0) {
                        json_object_put(fresh);
                        return -ENOMEM;
                }
                record = fresh;
                if (mr_json_set_int(record, "since", (int64_t)since) < 0)
                        return -ENOMEM;
                *changed = true;
        }
        for (size_t i = 0; i < gates->n_gates; i++) {
                const MetricGate *g = &gates->gates[i];
                int64_t passes = 0, last = 0;
                json_object *rec = mr_json_ensure_object(record, g->name, NULL);
                if (!rec)
                        return -ENOMEM;
                (void)mr_json_get_int(&passes, rec, "passes", NULL);
                (void)mr_json_get_int(&last, rec, "last", NULL);
                /*
                 * The first check is one interval into the checkpoint: a check at its very start would
                 * judge the world before the change (a rate over [1m] still all old traffic). A gate that
                 * has its passes is still checked at its interval for as long as the checkpoint lasts
                 * (the other gates, a step's pause, a soak): a breach then fails it all the same.
                 */
                if (ctx->now < (last ? (usec_t)last : since) + g->interval)
                        continue;
                int r = check_one(ctx, g, ps, rec);
                *changed = true;
                if (mr_json_set_int(rec, "last", (int64_t)ctx->now) < 0)
                        return -ENOMEM;
                if (r < 0)
                        return r;
                if (r > 0 && mr_json_set_int(rec, "passes", passes + 1) < 0)
                        return -ENOMEM;
                if (r > 0 && passes + 1 == g->checks)
                        log_info("Rollout %s: gate %s passed %u consecutive checks", ctx->rollout, g->name, g->checks);
        }
        for (size_t i = 0; i < gates->n_gates; i++) {
                int64_t passes = 0;
                (void)mr_json_get_int(&passes, record, gates->gates[i].name, "passes", NULL);
                if (passes < gates->gates[i].checks)
                        return 0;
        }
        return 1;
}
