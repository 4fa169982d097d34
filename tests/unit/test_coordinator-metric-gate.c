/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metric gates (coordinator/metric-gate.c) against a small fake of
 * Prometheus's HTTP API on loopback.
 *
 * The fake is the project's own HTTP server (http-server.h) on its own
 * thread and sd-event loop. It cannot see query strings, so each gate
 * points at its own base URL (http://127.0.0.1:PORT/<gate>, as a Prometheus
 * behind --web.route-prefix would be) and the test sets, per gate, the body
 * and status the next /api/v1/query answers; the fake counts the queries.
 * The phase's clock is ctx.now, moved by the test: nothing here waits.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "meshroll/http-server.h"
#include "meshroll/json-util.h"
#include "meshroll/yaml-json.h"
#include "metric-gate.h"
#include "phase.h"
#include "status.h"

#define T0 ((usec_t)1795489863 * USEC_PER_SEC)
#define SEC USEC_PER_SEC
#define MAX_GATES 4

/* ---- the fake Prometheus -------------------------------------------------------------------- */

typedef struct Answer {
        char path[64]; /* "/<gate>/api/v1/query" */
        int status;
        char body[512];
        unsigned hits;
} Answer;

typedef struct Fake {
        pthread_t thread;
        pthread_mutex_t lock;
        sd_event *event;
        MrHttpServer *server;
        int stop_fd;
        uint16_t port;
        Answer answers[MAX_GATES];
        size_t n;
} Fake;

static Fake fake;

static int on_query(const char *path, MrHttpReply *reply, void *userdata)
{
        Answer *a = userdata;
        pthread_mutex_lock(&fake.lock);
        a->hits++;
        reply->status = a->status;
        reply->content_type = "application/json";
        reply->body = strdup(a->body);
        reply->size = reply->body ? strlen(reply->body) : 0;
        pthread_mutex_unlock(&fake.lock);
        return reply->body ? 0 : -ENOMEM;
}

static int on_stop(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static void *fake_thread(void *arg)
{
        (void)sd_event_loop(fake.event);
        return NULL;
}

static const char *const GATES[MAX_GATES] = {"error-rate", "latency", "other", "unused"};

static int fake_start(void **state)
{
        MrError err = {};

        memset(&fake, 0, sizeof(fake));
        pthread_mutex_init(&fake.lock, NULL);
        assert_int_equal(sd_event_new(&fake.event), 0);
        assert_int_equal(mr_http_server_new(fake.event, "127.0.0.1:0", &fake.server, &err), 0);
        fake.port = mr_http_server_port(fake.server);
        for (size_t i = 0; i < MAX_GATES; i++) {
                Answer *a = &fake.answers[i];
                snprintf(a->path, sizeof(a->path), "/%s/api/v1/query", GATES[i]);
                a->status = 200;
                assert_int_equal(mr_http_server_route(fake.server, a->path, on_query, a), 0);
        }
        fake.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(fake.stop_fd >= 0);
        assert_int_equal(sd_event_add_io(fake.event, NULL, fake.stop_fd, EPOLLIN, on_stop, NULL), 0);
        assert_int_equal(pthread_create(&fake.thread, NULL, fake_thread, NULL), 0);
        return 0;
}

static int fake_stop(void **state)
{
        uint64_t one = 1;
        assert_int_equal(write(fake.stop_fd, &one, sizeof(one)), sizeof(one));
        pthread_join(fake.thread, NULL);
        mr_http_server_free(fake.server);
        sd_event_unref(fake.event);
        close(fake.stop_fd);
        pthread_mutex_destroy(&fake.lock);
        return 0;
}

static Answer *answer(const char *gate)
{
        for (size_t i = 0; i < MAX_GATES; i++)
                if (streq(GATES[i], gate))
                        return &fake.answers[i];
        fail_msg("no gate %s", gate);
        return NULL;
}

/* The next answers for gate: an HTTP status and a body. */
static void set_answer(const char *gate, int status, const char *body)
{
        Answer *a = answer(gate);
        pthread_mutex_lock(&fake.lock);
        a->status = status;
        snprintf(a->body, sizeof(a->body), "%s", body);
        pthread_mutex_unlock(&fake.lock);
}

/* A one-sample vector answer. */
static void set_value(const char *gate, const char *value)
{
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"metric\":"
                 "{\"destination_workload\":\"reviews-v2\"},\"value\":[1795489863.5,\"%s\"]}]}}",
                 value);
        set_answer(gate, 200, body);
}

static unsigned hits(const char *gate)
{
        pthread_mutex_lock(&fake.lock);
        unsigned n = answer(gate)->hits;
        answer(gate)->hits = 0;
        pthread_mutex_unlock(&fake.lock);
        return n;
}

/* ---- helpers -------------------------------------------------------------------------------- */

/* Gates from YAML, every "PROM" replaced by the fake's base URL. */
static MetricGateSet *gates(const char *text)
{
        _cleanup_(json_object_putp) json_object *doc = NULL;
        char yaml[2048], url[64];
        MetricGateSet *s = NULL;
        MrError err = {};
        size_t n = 0;

        snprintf(url, sizeof(url), "http://127.0.0.1:%u", fake.port);
        for (const char *p = text; *p && n + strlen(url) + 1 < sizeof(yaml);) {
                if (startswith(p, "PROM")) {
                        memcpy(yaml + n, url, strlen(url));
                        n += strlen(url);
                        p += 4;
                } else
                        yaml[n++] = *p++;
        }
        yaml[n] = 0;
        if (mr_yaml_parse(yaml, strlen(yaml), &doc, &err) < 0 ||
            metric_gates_from_json(doc, "spec.traffic.gates", NULL, &s, &err) < 0)
                fail_msg("gates: %s", err.message);
        return s;
}

typedef struct Run {
        PhaseStatus ps;
        PhaseCtx ctx;
        MrError err;
} Run;

static void run_init(Run *run)
{
        *run = (Run){.ps = {.kind = PHASE_TRAFFIC, .state = PHASE_PROGRESSING}};
        run->ps.detail = json_object_new_object();
        run->ctx = (PhaseCtx){.rollout = "r1", .now = T0, .err = &run->err};
}

static void run_done(Run *run)
{
        json_object_put(run->ps.detail);
}

static int check(Run *run, const MetricGateSet *s, usec_t now, usec_t since)
{
        bool changed = false;
        run->ctx.now = now;
        run->err = (MrError){};
        return phase_gates_check(&run->ctx, s, &run->ps, since, &changed);
}

#define ONE_GATE(extra)                                                                                     \
        "- {name: error-rate, prometheus: \"PROM/error-rate\", query: "                                     \
        "'sum(rate(istio_requests_total[1m]))', "                                                           \
        "threshold: 0.001, interval: 10s, checks: 3" extra "}\n"

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_no_gates(void **state)
{
        MetricGateSet empty = {0};
        bool changed = false;
        Run run;

        run_init(&run);
        assert_int_equal(phase_gates_check(&run.ctx, NULL, &run.ps, T0, &changed), 1);
        assert_int_equal(phase_gates_check(&run.ctx, &empty, &run.ps, T0, &changed), 1);
        assert_int_equal(phase_gates_baseline(&run.ctx, NULL, &run.ps, &changed), 1);
        assert_false(changed);
        run_done(&run);
}

static void test_consecutive_passes(void **state)
{
        _cleanup_(metric_gate_set_freep) MetricGateSet *s = gates(ONE_GATE(""));
        Run run;

        run_init(&run);
        set_value("error-rate", "0.0005");
        hits("error-rate");
        /* The first check is one interval after the checkpoint began: it must see the new world. */
        assert_int_equal(check(&run, s, T0, T0), 0);
        assert_int_equal(hits("error-rate"), 0);
        assert_int_equal(check(&run, s, T0 + 9 * SEC, T0), 0);
        assert_int_equal(hits("error-rate"), 0);
        assert_int_equal(check(&run, s, T0 + 10 * SEC, T0), 0);
        assert_int_equal(check(&run, s, T0 + 15 * SEC, T0), 0); /* not due yet */
        assert_int_equal(check(&run, s, T0 + 20 * SEC, T0), 0);
        assert_int_equal(hits("error-rate"), 2);
        assert_int_equal(check(&run, s, T0 + 30 * SEC, T0), 1);
        assert_int_equal(check(&run, s, T0 + 35 * SEC, T0), 1); /* done; the next check not due */
        assert_int_equal(hits("error-rate"), 1);
        int64_t passes = 0;
        assert_int_equal(mr_json_get_int(&passes, run.ps.detail, "gates", "error-rate", "passes", NULL), 0);
        assert_int_equal(passes, 3);
        /* still checked while the checkpoint lasts (a step's pause, a soak): test_breach_after_passing */
        assert_int_equal(check(&run, s, T0 + 40 * SEC, T0), 1);
        assert_int_equal(hits("error-rate"), 1);
        json_object *v = mr_json_get(run.ps.detail, "gates", "error-rate", "value", NULL);
        assert_non_null(v);
        assert_true(json_object_get_double(v) == 0.0005);

        /* a new checkpoint starts the count again */
        assert_int_equal(check(&run, s, T0 + 50 * SEC, T0 + 50 * SEC), 0);
        assert_int_equal(mr_json_get_int(&passes, run.ps.detail, "gates", "error-rate", "passes", NULL),
                         -ENOENT);
        run_done(&run);
}

static void test_breach_fails(void **state)
{
        _cleanup_(metric_gate_set_freep) MetricGateSet *s = gates(ONE_GATE(""));
        Run run;

        run_init(&run);
        set_value("error-rate", "0.0005");
        assert_int_equal(check(&run, s, T0 + 10 * SEC, T0), 0);
        set_value("error-rate", "0.02");
        assert_int_equal(check(&run, s, T0 + 20 * SEC, T0), -MR_EGATE);
        assert_string_equal(
            run.err.message,
            "gate error-rate failed: 0.02 is not <= 0.001 (sum(rate(istio_requests_total[1m])))");
        run_done(&run);
}

/* A gate that has its passes keeps being checked while the checkpoint lasts. */
static void test_breach_after_passing(void **state)
{
        _cleanup_(metric_gate_set_freep) MetricGateSet *s =
            gates("- {name: error-rate, prometheus: \"PROM/error-rate\", query: e, threshold: 0.001, "
                  "interval: 5s, checks: 1}\n"
                  "- {name: latency, prometheus: \"PROM/latency\", query: l, threshold: 100, interval: 20s, "
                  "checks: 1}\n");
        Run run;

        run_init(&run);
        set_value("error-rate", "0");
        set_value("latency", "50");
        assert_int_equal(check(&run, s, T0 + 5 * SEC, T0),
                         0); /* error-rate passed; latency not yet checked */
        set_value("error-rate", "0.5");
        assert_int_equal(check(&run, s, T0 + 10 * SEC, T0), -MR_EGATE);
        assert_string_equal(run.err.message, "gate error-rate failed: 0.5 is not <= 0.001 (e)");
        run_done(&run);
}

static void test_comparisons(void **state)
{
        static const struct {
                const char *cmp, *value;
                int result;
        } cases[] = {
            {"<", "0.001", -MR_EGATE}, {"<", "0.0009", 1}, {"<=", "0.001", 1},
            {">", "0.001", -MR_EGATE}, {">", "0.5", 1},    {">=", "0.001", 1},
            {">=", "-1", -MR_EGATE},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char yaml[512];
                Run run;
                snprintf(yaml, sizeof(yaml),
                         "- {name: error-rate, prometheus: \"PROM/error-rate\", query: q, threshold: 0.001, "
                         "checks: 1, "
                         "comparison: \"%s\"}\n",
                         cases[i].cmp);
                _cleanup_(metric_gate_set_freep) MetricGateSet *s = gates(yaml);
                run_init(&run);
                set_value("error-rate", cases[i].value);
                if (check(&run, s, T0 + 10 * SEC, T0) != cases[i].result)
                        fail_msg("case %zu: %s %s 0.001: expected %d (%s)", i, cases[i].value, cases[i].cmp,
                                 cases[i].result, run.err.message);
                run_done(&run);
        }
}

/* What a query that cannot be answered does, by onError. */
static void test_on_error(void **state)
{
        static const struct {
                int status;
                const char *body;
                const char *message; /* of the failure, with onError: fail */
        } answers[] = {
            {200, "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}",
             "gate error-rate failed closed: no data: the query returned 0 series, expected one"},
            {200,
             "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"value\":[1,\"1\"]},"
             "{\"value\":[1,\"2\"]}]}}",
             "gate error-rate failed closed: no data: the query returned 2 series, expected one"},
            {200,
             "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"value\":[1,\"NaN\"]"
             "}]}}",
             "gate error-rate failed closed: no data: the sample is NaN"},
            {200, "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[]}}",
             "gate error-rate failed closed: no data: result type \"matrix\", expected vector or scalar"},
            {400, "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"parse error at char 5\"}",
             "gate error-rate failed closed: query failed: the server responded with HTTP 400"},
            {503, "Service Unavailable", "gate error-rate failed closed: query failed"},
        };
        for (size_t i = 0; i < ELEMENTSOF(answers); i++) {
                _cleanup_(metric_gate_set_freep) MetricGateSet *fail = gates(ONE_GATE(""));
                _cleanup_(metric_gate_set_freep) MetricGateSet *pass = gates(ONE_GATE(", onError: pass"));
                _cleanup_(metric_gate_set_freep) MetricGateSet *wait = gates(ONE_GATE(", onError: wait"));
                Run run;

                set_answer("error-rate", answers[i].status, answers[i].body);
                run_init(&run);
                assert_int_equal(check(&run, fail, T0 + 10 * SEC, T0), -MR_EGATE);
                if (!strstr(run.err.message, answers[i].message))
                        fail_msg("case %zu: \"%s\" does not contain \"%s\"", i, run.err.message,
                                 answers[i].message);
                /* the record says why */
                assert_non_null(mr_json_get_str(run.ps.detail, "gates", "error-rate", "error", NULL));
                run_done(&run);

                run_init(&run);
                assert_int_equal(check(&run, pass, T0 + 10 * SEC, T0), 0);
                assert_int_equal(check(&run, pass, T0 + 20 * SEC, T0), 0);
                assert_int_equal(check(&run, pass, T0 + 30 * SEC, T0), 1);
                run_done(&run);

                run_init(&run);
                for (unsigned k = 1; k <= 5; k++)
                        assert_int_equal(check(&run, wait, T0 + k * 10 * SEC, T0), 0);
                int64_t passes = 0;
                (void)mr_json_get_int(&passes, run.ps.detail, "gates", "error-rate", "passes", NULL);
                assert_int_equal(passes, 0);
                /* the data comes: three passes from here */
                set_value("error-rate", "0");
                assert_int_equal(check(&run, wait, T0 + 60 * SEC, T0), 0);
                assert_int_equal(check(&run, wait, T0 + 70 * SEC, T0), 0);
                assert_int_equal(check(&run, wait, T0 + 80 * SEC, T0), 1);
                run_done(&run);
        }
}

static void test_scalar_and_unreachable(void **state)
{
        _cleanup_(metric_gate_set_freep) MetricGateSet *s = gates(ONE_GATE(""));
        Run run;

        run_init(&run);
        set_answer("error-rate", 200,
                   "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":[1,\"0\"]}}");
        for (unsigned k = 1; k < 3; k++)
                assert_int_equal(check(&run, s, T0 + k * 10 * SEC, T0), 0);
        assert_int_equal(check(&run, s, T0 + 30 * SEC, T0), 1);
        run_done(&run);

        /* a port nobody listens on (the fake's, once closed, is not reliably free: use port 1) */
        _cleanup_(json_object_putp) json_object *doc = NULL;
        MetricGateSet *down = NULL;
        MrError err = {};
        const char *yaml =
            "- {name: down, prometheus: \"http://127.0.0.1:1/\", query: up, threshold: 1, checks: 1}\n";
        assert_int_equal(mr_yaml_parse(yaml, strlen(yaml), &doc, &err), 0);
        assert_int_equal(metric_gates_from_json(doc, "g", NULL, &down, &err), 0);
        run_init(&run);
        assert_int_equal(check(&run, down, T0 + 10 * SEC, T0), -MR_EGATE);
        assert_non_null(strstr(run.err.message, "gate down failed closed: query failed"));
        run_done(&run);
        metric_gate_set_free(down);
}

static void test_relative_baseline(void **state)
{
        _cleanup_(metric_gate_set_freep) MetricGateSet *s = gates(
            "- {name: latency, prometheus: \"PROM/latency\", query: p99, baseline: 1.2, comparison: \"<=\", "
            "interval: 5s, checks: 2}\n"
            "- {name: error-rate, prometheus: \"PROM/error-rate\", query: e, threshold: 0.001, interval: "
            "5s, checks: 2}\n");
        bool changed = false;
        Run run;

        run_init(&run);
        set_value("latency", "100");
        set_value("error-rate", "0");
        run.ctx.now = T0;
        assert_int_equal(phase_gates_baseline(&run.ctx, s, &run.ps, &changed), 1);
        assert_true(changed);
        json_object *b = mr_json_get(run.ps.detail, "gateBaselines", "latency", NULL);
        assert_non_null(b);
        assert_true(json_object_get_double(b) == 100);
        assert_null(mr_json_get(run.ps.detail, "gateBaselines", "error-rate", NULL));
        /* measured once: a second call does not query again */
        hits("latency");
        changed = false;
        assert_int_equal(phase_gates_baseline(&run.ctx, s, &run.ps, &changed), 1);
        assert_false(changed);
        assert_int_equal(hits("latency"), 0);

        set_value("latency", "115");
        assert_int_equal(check(&run, s, T0 + 5 * SEC, T0), 0);
        assert_true(json_object_get_double(
                        mr_json_get(run.ps.detail, "gates", "latency", "threshold", NULL)) == 120);
        set_value("latency", "130");
        assert_int_equal(check(&run, s, T0 + 10 * SEC, T0), -MR_EGATE);
        assert_string_equal(run.err.message, "gate latency failed: 130 is not <= 120 (p99)");
        run_done(&run);

        /* no baseline can be measured: fail closed, or wait */
        run_init(&run);
        set_answer("latency", 200,
                   "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}");
        changed = false;
        assert_int_equal(phase_gates_baseline(&run.ctx, s, &run.ps, &changed), -MR_EGATE);
        assert_string_equal(
            run.err.message,
            "gate latency: cannot measure its baseline: no data: the query returned 0 series, expected one");
        /* a check without a baseline fails closed too */
        assert_int_equal(check(&run, s, T0 + 5 * SEC, T0), -MR_EGATE);
        assert_non_null(strstr(run.err.message, "no baseline was measured before the phase"));
        run_done(&run);

        _cleanup_(metric_gate_set_freep) MetricGateSet *w = gates(
            "- {name: latency, prometheus: \"PROM/latency\", query: p99, baseline: 1.5, onError: wait}\n");
        run_init(&run);
        changed = false;
        assert_int_equal(phase_gates_baseline(&run.ctx, w, &run.ps, &changed), 0);
        set_value("latency", "40");
        assert_int_equal(phase_gates_baseline(&run.ctx, w, &run.ps, &changed), 1);
        assert_true(json_object_get_double(mr_json_get(run.ps.detail, "gateBaselines", "latency", NULL)) ==
                    40);
        run_done(&run);
}

/* The record is the status: a new coordinator reading it goes on counting. */
static void test_record_survives_restart(void **state)
{
        _cleanup_(metric_gate_set_freep) MetricGateSet *s = gates(ONE_GATE(""));
        Run run, next;

        run_init(&run);
        set_value("error-rate", "0");
        hits("error-rate");
        assert_int_equal(check(&run, s, T0 + 10 * SEC, T0), 0);
        assert_int_equal(check(&run, s, T0 + 20 * SEC, T0), 0);

        /* through the Rollout's status JSON, as the engine writes and reads it */
        RolloutStatus st = {.phases = &run.ps, .n_phases = 1};
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_(rollout_status_freep) RolloutStatus *back = NULL;
        MrError err = {};
        assert_int_equal(rollout_status_to_json(&st, NULL, T0, &o), 0);
        _cleanup_free_ char *text = strdup(json_object_to_json_string(o));
        _cleanup_(json_object_putp) json_object *reread = NULL;
        assert_int_equal(mr_json_parse(text, strlen(text), 1 << 20, &reread), 0);
        assert_int_equal(rollout_status_from_json(reread, &back, &err), 0);
        run_init(&next);
        json_object_put(next.ps.detail);
        next.ps.detail = json_object_get(rollout_status_phase(back, PHASE_TRAFFIC)->detail);

        /* not due again before 30 s, even for the new coordinator */
        assert_int_equal(check(&next, s, T0 + 25 * SEC, T0), 0);
        assert_int_equal(check(&next, s, T0 + 30 * SEC, T0), 1);
        assert_int_equal(hits("error-rate"), 3);
        run_done(&run);
        run_done(&next);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_no_gates),
            cmocka_unit_test(test_consecutive_passes),
            cmocka_unit_test(test_breach_fails),
            cmocka_unit_test(test_breach_after_passing),
            cmocka_unit_test(test_comparisons),
            cmocka_unit_test(test_on_error),
            cmocka_unit_test(test_scalar_and_unreachable),
            cmocka_unit_test(test_relative_baseline),
            cmocka_unit_test(test_record_survives_restart),
        };
        return cmocka_run_group_tests(tests, fake_start, fake_stop);
}
