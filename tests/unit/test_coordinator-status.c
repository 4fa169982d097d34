/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "meshroll/json-util.h"
#include "rollout-metrics.h"
#include "status.h"

#define T0 ((usec_t)1795489863 * USEC_PER_SEC)

static json_object *parse(const char *s)
{
        json_object *o = NULL;
        assert_int_equal(mr_json_parse(s, strlen(s), 1 << 20, &o), 0);
        return o;
}

static void test_names(void **state)
{
        for (int i = 0; i < _GROUP_STATE_MAX; i++)
                assert_int_equal(group_state_from_string(group_state_to_string(i)), i);
        for (int i = 0; i < _ROLLOUT_PHASE_MAX; i++)
                assert_int_equal(rollout_phase_from_string(rollout_phase_to_string(i)), i);
        assert_int_equal(group_state_from_string("Sleeping"), -EINVAL);
        assert_int_equal(group_state_from_string(NULL), -EINVAL);
}

static void test_empty_is_uninitialized(void **state)
{
        _cleanup_(rollout_status_freep) RolloutStatus *a = NULL, *b = NULL;
        _cleanup_(json_object_putp) json_object *empty = parse("{}");
        assert_int_equal(rollout_status_from_json(NULL, &a, NULL), 0);
        assert_false(a->initialized);
        assert_int_equal(a->phase, ROLLOUT_PENDING);
        assert_int_equal(rollout_status_from_json(empty, &b, NULL), 0);
        assert_false(b->initialized);
        assert_int_equal(rollout_status_current(b), -1);
}

static void test_round_trip(void **state)
{
        _cleanup_(json_object_putp) json_object *in = parse(
                "{\"phase\":\"Progressing\",\"observedGeneration\":3,\"startedAt\":\"2026-11-24T03:11:03.000000Z\","
                "\"targetRevision\":{\"name\":\"ztunnel-new\",\"hash\":\"new\"},"
                "\"previousRevision\":{\"name\":\"ztunnel-old\",\"hash\":\"old\"},"
                "\"groups\":[{\"name\":\"canary\",\"nodes\":[\"n1\"],\"state\":\"Done\",\"connections\":0},"
                "{\"name\":\"rest\",\"nodes\":[\"n2\",\"n3\"],\"state\":\"Gating\",\"operatorCordoned\":[\"n3\"],"
                "\"since\":\"2026-11-24T03:12:00.500000Z\",\"rollbackStep\":2}]}");
        _cleanup_(rollout_status_freep) RolloutStatus *s = NULL, *back = NULL;
        _cleanup_(json_object_putp) json_object *out = NULL;

        assert_int_equal(rollout_status_from_json(in, &s, NULL), 0);
        assert_true(s->initialized);
        assert_int_equal(s->phase, ROLLOUT_PROGRESSING);
        assert_int_equal(s->observed_generation, 3);
        assert_string_equal(s->previous.hash, "old");
        assert_int_equal(s->n_groups, 2);
        assert_int_equal(rollout_status_current(s), 1);
        GroupStatus *g = rollout_status_group(s, "rest");
        assert_non_null(g);
        assert_int_equal(g->state, GROUP_GATING);
        assert_int_equal(g->since, T0 + 57 * USEC_PER_SEC + 500000);
        assert_string_equal(g->operator_cordoned[0], "n3");
        assert_int_equal(g->connections, -1);
        assert_int_equal(g->rollback_step, 2);
        assert_null(rollout_status_group(s, "nope"));

        assert_int_equal(rollout_status_to_json(s, NULL, T0, &out), 0);
        assert_string_equal(mr_json_get_str(out, "currentGroup", NULL), "rest");
        int64_t v;
        assert_int_equal(mr_json_get_int(&v, out, "groupsDone", NULL), 0);
        assert_int_equal(v, 1);
        assert_int_equal(mr_json_get_int(&v, out, "groupsTotal", NULL), 0);
        assert_int_equal(v, 2);
        assert_null(mr_json_get(json_object_array_get_idx(mr_json_get(out, "groups", NULL), 1), "connections", NULL));

        assert_int_equal(rollout_status_from_json(out, &back, NULL), 0);
        assert_int_equal(back->n_groups, 2);
        assert_int_equal(back->groups[1].since, g->since);
        assert_string_equal(back->groups[1].nodes[1], "n3");
        assert_int_equal(back->groups[0].connections, 0);
        assert_string_equal(back->target.name, "ztunnel-new");
}

static void test_conditions_keep_transition_time(void **state)
{
        _cleanup_(rollout_status_freep) RolloutStatus *s = NULL;
        _cleanup_(json_object_putp) json_object *first = NULL, *second = NULL, *third = NULL;

        assert_int_equal(rollout_status_from_json(NULL, &s, NULL), 0);
        assert_int_equal(rollout_status_set_phase(s, ROLLOUT_PROGRESSING, "GroupStarted", "group %s", "a"), 0);
        assert_int_equal(rollout_status_to_json(s, NULL, T0, &first), 0);
        json_object *c0 = json_object_array_get_idx(mr_json_get(first, "conditions", NULL), 0);
        assert_string_equal(mr_json_get_str(c0, "type", NULL), "Progressing");
        assert_string_equal(mr_json_get_str(c0, "status", NULL), "True");
        assert_string_equal(mr_json_get_str(c0, "reason", NULL), "GroupStarted");
        assert_string_equal(mr_json_get_str(c0, "message", NULL), "group a");
        assert_string_equal(mr_json_get_str(c0, "lastTransitionTime", NULL), "2026-11-24T03:11:03Z");

        /* Still progressing later: the transition time stays. */
        assert_int_equal(rollout_status_to_json(s, mr_json_get(first, "conditions", NULL), T0 + 60 * USEC_PER_SEC,
                                                &second),
                         0);
        c0 = json_object_array_get_idx(mr_json_get(second, "conditions", NULL), 0);
        assert_string_equal(mr_json_get_str(c0, "lastTransitionTime", NULL), "2026-11-24T03:11:03Z");

        /* Paused: Progressing flips to False now, Paused to True now. */
        assert_int_equal(rollout_status_set_phase(s, ROLLOUT_PAUSED, "GateTimeout", "waited"), 0);
        assert_int_equal(rollout_status_to_json(s, mr_json_get(second, "conditions", NULL), T0 + 120 * USEC_PER_SEC,
                                                &third),
                         0);
        json_object *conds = mr_json_get(third, "conditions", NULL);
        c0 = json_object_array_get_idx(conds, 0);
        json_object *c1 = json_object_array_get_idx(conds, 1);
        assert_string_equal(mr_json_get_str(c0, "status", NULL), "False");
        assert_string_equal(mr_json_get_str(c0, "lastTransitionTime", NULL), "2026-11-24T03:13:03Z");
        assert_string_equal(mr_json_get_str(c1, "type", NULL), "Paused");
        assert_string_equal(mr_json_get_str(c1, "status", NULL), "True");
        assert_string_equal(mr_json_get_str(c1, "reason", NULL), "GateTimeout");
}

static void test_group_state_stamps(void **state)
{
        GroupStatus g = { .state = GROUP_PENDING };
        group_set_state(&g, GROUP_CORDONING, T0);
        assert_int_equal(g.started_at, T0);
        assert_int_equal(g.since, T0);
        g.ready_since = T0;
        group_set_state(&g, GROUP_VERIFYING, T0 + 5);
        assert_int_equal(g.ready_since, T0); /* kept while verifying */
        group_set_state(&g, GROUP_UNCORDONING, T0 + 6);
        assert_int_equal(g.ready_since, 0);
        group_set_state(&g, GROUP_DONE, T0 + 7);
        assert_int_equal(g.finished_at, T0 + 7);
        assert_int_equal(g.started_at, T0);
        assert_int_equal(group_set_message(&g, "%d left", 3), 0);
        assert_string_equal(g.message, "3 left");
        assert_int_equal(group_set_message(&g, NULL), 0);
        assert_null(g.message);
}

static void test_malformed(void **state)
{
        static const struct {
                const char *json;
                const char *message;
        } cases[] = {
                { "{\"groups\":{}}", "status.groups: expected a list" },
                { "{\"groups\":[1]}", "status.groups[0]: expected a mapping" },
                { "{\"groups\":[{\"name\":\"a\"}]}", "status.groups[0]: a group needs a name and nodes" },
                { "{\"groups\":[{\"name\":\"a\",\"nodes\":[\"n\"],\"state\":\"Nope\"}]}", "status.groups[0].state: unknown state" },
                { "{\"groups\":[{\"name\":\"a\",\"nodes\":[1],\"state\":\"Done\"}]}", "status.groups[0].nodes[0]: expected a string" },
                { "{\"startedAt\":\"yesterday\"}", "status.startedAt: not a timestamp" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(json_object_putp) json_object *o = parse(cases[i].json);
                RolloutStatus *s = NULL;
                MrError err = {};
                if (rollout_status_from_json(o, &s, &err) != -MR_EPARSE)
                        fail_msg("case %zu accepted", i);
                assert_null(s);
                if (!strstr(err.message, cases[i].message))
                        fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.message, cases[i].message);
        }
}

static void test_metrics_from_status(void **state)
{
        _cleanup_(json_object_putp) json_object *in = parse(
                "{\"phase\":\"Paused\",\"targetRevision\":{\"name\":\"n\",\"hash\":\"h\"},\"groups\":["
                "{\"name\":\"a\",\"nodes\":[\"n1\"],\"state\":\"Done\",\"connections\":0},"
                "{\"name\":\"b\",\"nodes\":[\"n2\"],\"state\":\"Gating\",\"connections\":4},"
                "{\"name\":\"c\",\"nodes\":[\"n3\"],\"state\":\"Pending\"}]}");
        _cleanup_(rollout_status_freep) RolloutStatus *s = NULL;
        RolloutMetrics m;
        double v;

        assert_int_equal(rollout_status_from_json(in, &s, NULL), 0);
        assert_int_equal(rollout_metrics_init(&m), 0);
        rollout_metrics_update(&m, "r1", s);
        assert_int_equal(mr_metric_get(m.phase, (const char *const[]){ "r1", "Paused" }, &v), 0);
        assert_true(v == 1);
        assert_int_equal(mr_metric_get(m.phase, (const char *const[]){ "r1", "Progressing" }, &v), 0);
        assert_true(v == 0);
        assert_int_equal(mr_metric_get(m.groups, (const char *const[]){ "r1", "Gating" }, &v), 0);
        assert_true(v == 1);
        assert_int_equal(mr_metric_get(m.groups, (const char *const[]){ "r1", "Draining" }, &v), 0);
        assert_true(v == 0);
        assert_int_equal(mr_metric_get(m.gate_connections, (const char *const[]){ "r1", "b" }, &v), 0);
        assert_true(v == 4);
        assert_int_equal(mr_metric_get(m.gate_connections, (const char *const[]){ "r1", "c" }, &v), -ENOENT);
        rollout_metrics_done(&m);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_empty_is_uninitialized),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_conditions_keep_transition_time),
                cmocka_unit_test(test_group_state_stamps),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_metrics_from_status),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
