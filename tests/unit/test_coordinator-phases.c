/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The phase framework: which phases a spec runs and in which order, the
 * metric gates' document, and the phases' records in the status (round
 * trip, and a status written before phases existed).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "meshroll/json-util.h"
#include "meshroll/yaml-json.h"
#include "metric-gate.h"
#include "phase.h"
#include "spec.h"
#include "status.h"

#define HEAD "apiVersion: meshroll.io/v1alpha1\nkind: Rollout\nmetadata: {name: r1}\n"
#define T0 ((usec_t)1795489863 * USEC_PER_SEC)

static int parse_yaml(const char *yaml, RolloutSpec **ret, MrError *err)
{
        _cleanup_(json_object_putp) json_object *doc = NULL;
        int r = mr_yaml_parse(yaml, strlen(yaml), &doc, err);
        if (r < 0)
                return r;
        return rollout_spec_from_json(doc, ret, err);
}

static void test_names(void **state)
{
        for (int i = 0; i < _PHASE_KIND_MAX; i++)
                assert_int_equal(phase_kind_from_string(phase_kind_to_string(i)), i);
        for (int i = 0; i < _PHASE_STATE_MAX; i++)
                assert_int_equal(phase_state_from_string(phase_state_to_string(i)), i);
        assert_int_equal(phase_kind_from_string("istiod"), -EINVAL);
        assert_int_equal(phase_state_from_string(NULL), -EINVAL);
}

static void test_ztunnel_alone_by_default(void **state)
{
        _cleanup_(rollout_spec_freep) RolloutSpec *s = NULL;
        MrError err = {};

        assert_int_equal(parse_yaml(HEAD "spec: {}\n", &s, &err), 0);
        assert_int_equal(s->n_phases, 1);
        assert_int_equal(s->phases[0], PHASE_ZTUNNEL);
        assert_true(rollout_spec_has_phase(s, PHASE_ZTUNNEL));
        assert_false(rollout_spec_has_phase(s, PHASE_SIDECAR));
        assert_null(s->gates[PHASE_ZTUNNEL]);
}

static void test_phase_order_errors(void **state)
{
        static const struct {
                const char *yaml;
                const char *message;
        } cases[] = {
                { HEAD "spec: {phases: []}\n", "spec.phases: expected at least one phase" },
                { HEAD "spec: {phases: [ztunnel, istiod]}\n",
                  "spec.phases[1]: expected one of ztunnel, sidecar, gateway, traffic; got \"istiod\"" },
                { HEAD "spec: {phases: [ztunnel, ztunnel]}\n", "spec.phases[1]: \"ztunnel\" is listed twice" },
                { HEAD "spec: {phases: [ztunnel, gateway]}\n", "spec.phases[1]: phase gateway has no spec.gateway section" },
                { HEAD "spec: {phases: [ztunnel], gates: [], prometheus: 1}\n", "spec.prometheus: expected a non-empty string" },
                { HEAD "spec: {phases: ztunnel}\n", "spec.phases: expected a list of strings, got a string" },
                { HEAD "spec: {gates: {}}\n", "spec.gates: expected a list of gates, got a mapping" },
                { HEAD "spec: {gates: [{name: a, query: up}]}\n", "spec.gates[0]: expected exactly one of threshold and baseline" },
                { HEAD "spec: {gates: [{name: a, query: up, threshold: 1}]}\n",
                  "spec.gates[0].prometheus: required (or set spec.prometheus)" },
                { HEAD "spec: {prometheus: \"http://p:9090\", gates: [{query: up, threshold: 1}]}\n",
                  "spec.gates[0].name: required" },
                { HEAD "spec: {prometheus: \"http://p:9090\", gates: [{name: a, threshold: 1}]}\n",
                  "spec.gates[0].query: required" },
                { HEAD "spec: {prometheus: \"http://p:9090\", gates: [{name: a, query: up, threshold: 1, baseline: 2}]}\n",
                  "spec.gates[0]: expected exactly one of threshold and baseline" },
                { HEAD "spec: {prometheus: \"http://p:9090\", gates: [{name: a, query: up, threshold: x}]}\n",
                  "spec.gates[0].threshold: expected a number" },
                { HEAD "spec: {prometheus: \"http://p:9090\", gates: [{name: a, query: up, threshold: 1, comparison: \"==\"}]}\n",
                  "spec.gates[0].comparison: expected one of <, <=, >, >=; got \"==\"" },
                { HEAD "spec: {prometheus: \"http://p:9090\", gates: [{name: a, query: up, threshold: 1, onError: retry}]}\n",
                  "spec.gates[0].onError: expected one of fail, pass, wait; got \"retry\"" },
                { HEAD "spec: {prometheus: \"http://p:9090\", gates: [{name: a, query: up, threshold: 1, checks: 0}]}\n",
                  "spec.gates[0].checks: expected an integer from 1 to 1000, got 0" },
                { HEAD "spec: {prometheus: \"http://p:9090\", gates: [{name: a, query: up, threshold: 1, interval: 0}]}\n",
                  "spec.gates[0].interval: expected at least 1s" },
                { HEAD "spec: {prometheus: \"p:9090\", gates: [{name: a, query: up, threshold: 1}]}\n",
                  "spec.gates[0].prometheus: expected an http:// or https:// URL, got \"p:9090\"" },
                { HEAD "spec: {prometheus: \"http://p:9090\", gates: [{name: a, query: up, threshold: 1}, "
                       "{name: a, query: down, threshold: 1}]}\n",
                  "spec.gates[1].name: \"a\" is used twice" },
                { HEAD "spec: {prometheus: \"http://p:9090\", gates: [{name: a, query: up, threshold: 1, colour: red}]}\n",
                  "spec.gates[0].colour: unknown field" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                RolloutSpec *s = NULL;
                MrError err = {};
                int r = parse_yaml(cases[i].yaml, &s, &err);
                if (r != -MR_ECONFIG)
                        fail_msg("case %zu: got %d (%s), want -MR_ECONFIG", i, r, err.message);
                assert_null(s);
                if (!strstr(err.message, cases[i].message))
                        fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.message, cases[i].message);
        }
}

static void test_gates_read(void **state)
{
        _cleanup_(rollout_spec_freep) RolloutSpec *s = NULL;
        MrError err = {};

        assert_int_equal(parse_yaml(HEAD "spec:\n"
                                         "  prometheus: http://127.0.0.1:9090/\n"
                                         "  gates:\n"
                                         "    - {name: errors, query: 'sum(x)', threshold: 0.001}\n"
                                         "    - {name: p99, query: 'histogram_quantile(0.99, y)', baseline: 1.2,\n"
                                         "       comparison: '<', interval: 30s, checks: 5, onError: wait,\n"
                                         "       prometheus: 'http://other:9090'}\n",
                                    &s, &err),
                         0);
        const MetricGateSet *g = s->gates[PHASE_ZTUNNEL];
        assert_non_null(g);
        assert_int_equal(g->n_gates, 2);
        assert_string_equal(g->gates[0].name, "errors");
        assert_string_equal(g->gates[0].prometheus, "http://127.0.0.1:9090/");
        assert_false(g->gates[0].relative);
        assert_true(g->gates[0].threshold == 0.001);
        assert_int_equal(g->gates[0].comparison, GATE_CMP_LE);
        assert_int_equal(g->gates[0].checks, 3);
        assert_int_equal(g->gates[0].interval, 10 * USEC_PER_SEC);
        assert_int_equal(g->gates[0].on_error, GATE_ON_ERROR_FAIL);
        assert_true(g->gates[1].relative);
        assert_true(g->gates[1].baseline == 1.2);
        assert_int_equal(g->gates[1].comparison, GATE_CMP_LT);
        assert_int_equal(g->gates[1].interval, 30 * USEC_PER_SEC);
        assert_int_equal(g->gates[1].checks, 5);
        assert_int_equal(g->gates[1].on_error, GATE_ON_ERROR_WAIT);
        assert_string_equal(g->gates[1].prometheus, "http://other:9090");
}

static void test_status_round_trip(void **state)
{
        _cleanup_(rollout_status_freep) RolloutStatus *s = calloc(1, sizeof(RolloutStatus)), *back = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        MrError err = {};

        assert_non_null(s);
        assert_int_equal(rollout_status_current_phase(s), -1);
        assert_int_equal(rollout_status_add_phase(s, PHASE_SIDECAR), 0);
        assert_int_equal(rollout_status_add_phase(s, PHASE_GATEWAY), 0);
        assert_int_equal(rollout_status_current_phase(s), 0);
        PhaseStatus *p = rollout_status_phase(s, PHASE_SIDECAR);
        assert_ptr_equal(p, &s->phases[0]);
        assert_null(rollout_status_phase(s, PHASE_TRAFFIC));

        phase_set_state(p, PHASE_PROGRESSING, T0);
        assert_int_equal(p->started_at, T0);
        assert_int_equal(phase_set_message(p, "batch %d of %d", 1, 3), 0);
        assert_int_equal(mr_json_set_str(p->detail, "tag", "prod-stable"), 0);
        phase_set_state(p, PHASE_COMPLETED, T0 + 5 * USEC_PER_SEC);
        assert_null(p->message); /* a message describes the state it was written in */
        assert_int_equal(p->finished_at, T0 + 5 * USEC_PER_SEC);
        assert_int_equal(rollout_status_current_phase(s), 1);

        assert_int_equal(rollout_status_to_json(s, NULL, T0, &o), 0);
        assert_string_equal(mr_json_get_str(o, "currentPhase", NULL), "gateway");
        assert_true(json_object_is_type(mr_json_get(o, "phases", NULL), json_type_array));
        assert_int_equal(rollout_status_from_json(o, &back, &err), 0);
        assert_int_equal(back->n_phases, 2);
        assert_int_equal(back->phases[0].kind, PHASE_SIDECAR);
        assert_int_equal(back->phases[0].state, PHASE_COMPLETED);
        assert_int_equal(back->phases[0].started_at, T0);
        assert_int_equal(back->phases[0].finished_at, T0 + 5 * USEC_PER_SEC);
        assert_string_equal(mr_json_get_str(back->phases[0].detail, "tag", NULL), "prod-stable");
        assert_int_equal(back->phases[1].kind, PHASE_GATEWAY);
        assert_int_equal(back->phases[1].state, PHASE_PENDING);
        assert_non_null(back->phases[1].detail);
}

static void test_status_errors(void **state)
{
        static const struct {
                const char *json;
                const char *message;
        } cases[] = {
                { "{\"phases\":{}}", "status.phases: expected a list" },
                { "{\"phases\":[1]}", "status.phases[0]: expected a mapping" },
                { "{\"phases\":[{\"name\":\"istiod\",\"state\":\"Pending\"}]}", "status.phases[0].name: unknown phase \"istiod\"" },
                { "{\"phases\":[{\"name\":\"sidecar\",\"state\":\"Sleeping\"}]}", "status.phases[0].state: unknown state \"Sleeping\"" },
                { "{\"phases\":[{\"name\":\"sidecar\",\"state\":\"Pending\",\"detail\":[]}]}",
                  "status.phases[0].detail: expected a mapping" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(json_object_putp) json_object *o = NULL;
                RolloutStatus *s = NULL;
                MrError err = {};
                assert_int_equal(mr_json_parse(cases[i].json, strlen(cases[i].json), 1 << 20, &o), 0);
                assert_int_equal(rollout_status_from_json(o, &s, &err), -MR_EPARSE);
                assert_null(s);
                if (!strstr(err.message, cases[i].message))
                        fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.message, cases[i].message);
        }
}

/* A status written before phases existed is a ztunnel-only rollout: resuming it must not start over. */
static void test_status_without_phases(void **state)
{
        static const char json[] = "{\"phase\":\"Progressing\",\"targetRevision\":{\"name\":\"z-2\",\"hash\":\"h2\"},"
                                   "\"groups\":[{\"name\":\"a\",\"nodes\":[\"n1\"],\"state\":\"Done\"},"
                                   "{\"name\":\"b\",\"nodes\":[\"n2\"],\"state\":\"Draining\"}]}";
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_(rollout_status_freep) RolloutStatus *s = NULL;
        MrError err = {};

        assert_int_equal(mr_json_parse(json, strlen(json), 1 << 20, &o), 0);
        assert_int_equal(rollout_status_from_json(o, &s, &err), 0);
        assert_true(s->initialized);
        assert_int_equal(s->n_phases, 1);
        assert_int_equal(s->phases[0].kind, PHASE_ZTUNNEL);
        assert_int_equal(s->phases[0].state, PHASE_PROGRESSING);
        assert_int_equal(rollout_status_current_phase(s), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_ztunnel_alone_by_default),
                cmocka_unit_test(test_phase_order_errors),
                cmocka_unit_test(test_gates_read),
                cmocka_unit_test(test_status_round_trip),
                cmocka_unit_test(test_status_errors),
                cmocka_unit_test(test_status_without_phases),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
