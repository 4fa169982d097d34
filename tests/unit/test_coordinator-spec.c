/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "meshroll/json-util.h"
#include "meshroll/yaml-json.h"
#include "spec.h"

static int parse_yaml(const char *yaml, RolloutSpec **ret, MrError *err)
{
        _cleanup_(json_object_putp) json_object *doc = NULL;
        int r = mr_yaml_parse(yaml, strlen(yaml), &doc, err);
        if (r < 0)
                return r;
        return rollout_spec_from_json(doc, ret, err);
}

#define HEAD "apiVersion: meshroll.io/v1alpha1\nkind: Rollout\nmetadata: {name: r1}\n"

static void test_full_file(void **state)
{
        _cleanup_(rollout_spec_freep) RolloutSpec *s = NULL;
        MrError err = {};
        char path[512];

        snprintf(path, sizeof(path), "%s/rollout/full.yaml", getenv("MESHROLL_TEST_DATA"));
        assert_int_equal(rollout_spec_load_file(path, &s, &err), 0);
        assert_string_equal(s->name, "ztunnel-1-25");
        assert_true(s->paused);
        assert_string_equal(s->target_namespace, "istio-system");
        assert_string_equal(s->node_selector, "pool=general");
        assert_int_equal(s->canary, 1);
        assert_int_equal(s->mode, GROUPING_LABEL);
        assert_string_equal(s->by_label, "topology.kubernetes.io/zone");
        assert_string_equal(s->order[0], "zone-b");
        assert_string_equal(s->order[1], "zone-a");
        assert_null(s->order[2]);
        assert_int_equal(s->drain_timeout, 15 * USEC_PER_MINUTE);
        assert_int_equal(s->drain_concurrency, 4);
        assert_int_equal(s->grace_period_seconds, 20);
        assert_string_equal(s->pod_selector, "app!=batch");
        assert_false(s->delete_emptydir_data);
        assert_true(s->force);
        assert_int_equal(s->gate_threshold, 2);
        assert_int_equal(s->gate_timeout, 90 * USEC_PER_SEC);
        assert_int_equal(s->gate_action, GATE_ROLLBACK);
        assert_string_equal(s->agent_namespace, "mesh-ops");
        assert_int_equal(s->readiness_timeout, 3 * USEC_PER_MINUTE);
        assert_int_equal(s->min_ready, 10 * USEC_PER_SEC);
        assert_int_equal(s->soak, 30 * USEC_PER_SEC);
        assert_string_equal(s->preflight_skip[0], "agents");
        assert_int_equal(s->preflight_wait_timeout, 90 * USEC_PER_SEC);
}

static void test_defaults(void **state)
{
        _cleanup_(rollout_spec_freep) RolloutSpec *s = NULL;
        MrError err = {};

        assert_int_equal(parse_yaml(HEAD "spec: {}\n", &s, &err), 0);
        assert_false(s->paused);
        assert_string_equal(s->target_namespace, "istio-system");
        assert_string_equal(s->target_daemonset, "ztunnel");
        assert_int_equal(s->mode, GROUPING_SIZE);
        assert_int_equal(s->size, 1);
        assert_int_equal(s->canary, 0);
        assert_int_equal(s->drain_timeout, 10 * USEC_PER_MINUTE);
        assert_int_equal(s->drain_concurrency, 10);
        assert_int_equal(s->grace_period_seconds, -1);
        assert_true(s->delete_emptydir_data);
        assert_false(s->force);
        assert_int_equal(s->gate_threshold, 0);
        assert_int_equal(s->gate_timeout, 5 * USEC_PER_MINUTE);
        assert_int_equal(s->gate_action, GATE_PAUSE);
        assert_string_equal(s->agent_namespace, "meshroll");
        assert_int_equal(s->readiness_timeout, 5 * USEC_PER_MINUTE);
        assert_int_equal(s->preflight_wait_timeout, 10 * USEC_PER_MINUTE);
        assert_int_equal(s->min_ready, 30 * USEC_PER_SEC);
        assert_int_equal(s->soak, USEC_PER_MINUTE);
        assert_string_equal(gate_action_to_string(s->gate_action), "pause");
}

static void test_grouping_modes(void **state)
{
        _cleanup_(rollout_spec_freep) RolloutSpec *a = NULL, *b = NULL;
        MrError err = {};

        assert_int_equal(parse_yaml(HEAD "spec:\n  groups: {percent: 25, canary: 2}\n", &a, &err), 0);
        assert_int_equal(a->mode, GROUPING_PERCENT);
        assert_int_equal(a->percent, 25);
        assert_int_equal(a->canary, 2);
        assert_int_equal(parse_yaml(HEAD "spec:\n  groups:\n    list:\n    - {name: canary, nodes: [n1]}\n"
                                         "    - {name: rest, nodes: [n2, n3]}\n",
                                    &b, &err),
                         0);
        assert_int_equal(b->mode, GROUPING_LIST);
        assert_int_equal(b->n_lists, 2);
        assert_string_equal(b->lists[1].name, "rest");
        assert_string_equal(b->lists[1].nodes[1], "n3");
}

static void test_errors_name_the_field(void **state)
{
        static const struct {
                const char *yaml;
                const char *message;
        } cases[] = {
                { "kind: Rollout\n", "apiVersion: expected \"meshroll.io/v1alpha1\"" },
                { "apiVersion: meshroll.io/v1alpha1\nkind: Deployment\n", "kind: expected \"Rollout\", got \"Deployment\"" },
                { "apiVersion: meshroll.io/v1alpha1\nkind: Rollout\nspec: {}\n", "metadata.name: required" },
                { HEAD, "spec: required" },
                { HEAD "spec: []\n", "spec: expected a mapping, got a list" },
                { HEAD "spec: {pasued: true}\n", "spec.pasued: unknown field (known here: paused, target, groups" },
                { HEAD "spec: {paused: yes}\n", "spec.paused: expected true or false, got a string" },
                { HEAD "spec: {target: {daemonset: x}}\n", "spec.target.daemonset: unknown field" },
                { HEAD "spec: {target: {namespace: \"\"}}\n", "spec.target.namespace: expected a non-empty string" },
                { HEAD "spec: {groups: {size: 0}}\n", "spec.groups.size: expected an integer from 1 to 100000, got 0" },
                { HEAD "spec: {groups: {percent: 150}}\n", "spec.groups.percent: expected an integer from 1 to 100, got 150" },
                { HEAD "spec: {groups: {percent: \"25%\"}}\n", "spec.groups.percent: expected an integer from 1 to 100, got a string" },
                { HEAD "spec: {groups: {size: 2, percent: 10}}\n", "spec.groups: byLabel, size, percent and list are alternatives" },
                { HEAD "spec: {groups: {size: 2, order: [a]}}\n", "spec.groups.order: only applies with byLabel" },
                { HEAD "spec: {groups: {byLabel: zone, order: [a, a]}}\n", "spec.groups.order[1]: \"a\" is listed twice" },
                { HEAD "spec: {groups: {nodeSelector: \"a in (b\"}}\n", "spec.groups.nodeSelector: not a valid label selector" },
                { HEAD "spec: {groups: {list: []}}\n", "spec.groups.list: expected at least one group" },
                { HEAD "spec: {groups: {list: [{name: a}]}}\n", "spec.groups.list[0].nodes: expected at least one node" },
                { HEAD "spec: {groups: {list: [{nodes: [n1]}]}}\n", "spec.groups.list[0].name: required" },
                { HEAD "spec: {groups: {list: [{name: a, nodes: [n1]}, {name: b, nodes: [n2, n1]}]}}\n",
                  "spec.groups.list[1].nodes: node \"n1\" is already in group \"a\"" },
                { HEAD "spec: {groups: {list: [{name: a, nodes: [n1]}, {name: a, nodes: [n2]}]}}\n",
                  "spec.groups.list[1].name: group \"a\" is defined twice" },
                { HEAD "spec: {groups: {canary: 1, list: [{name: a, nodes: [n1]}]}}\n", "spec.groups.canary: with list" },
                { HEAD "spec: {drain: {timeout: 10}}\n", NULL }, /* integer seconds are fine */
                { HEAD "spec: {drain: {timeout: ten}}\n", "spec.drain.timeout: expected a duration such as \"90s\"" },
                { HEAD "spec: {drain: {timeout: -5}}\n", "spec.drain.timeout: expected a duration from 0 to 86400s, got -5" },
                { HEAD "spec: {drain: {concurrency: 0}}\n", "spec.drain.concurrency: expected an integer from 1 to 1000" },
                { HEAD "spec: {connectionGate: {onTimeout: retry}}\n",
                  "spec.connectionGate.onTimeout: expected one of proceed, pause, rollback; got \"retry\"" },
                { HEAD "spec: {readiness: {minReadySeconds: 1.5}}\n", "spec.readiness.minReadySeconds: expected an integer from 0 to 3600, got a number" },
                { HEAD "spec: {soak: true}\n", "spec.soak: expected a duration" },
                { HEAD "spec: {}\nextra: 1\n", "extra: unknown field (known here: apiVersion, kind, metadata, spec, status)" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                RolloutSpec *s = NULL;
                MrError err = {};
                int r = parse_yaml(cases[i].yaml, &s, &err);
                if (!cases[i].message) {
                        if (r < 0)
                                fail_msg("case %zu: unexpected error: %s", i, err.message);
                        rollout_spec_free(s);
                        continue;
                }
                if (r != -MR_ECONFIG)
                        fail_msg("case %zu: got %d, want -MR_ECONFIG", i, r);
                assert_null(s);
                if (strncmp(err.message, cases[i].message, strlen(cases[i].message)) != 0 &&
                    strstr(cases[i].message, "spec") == cases[i].message)
                        fail_msg("case %zu: message \"%s\" does not start with \"%s\"", i, err.message,
                                 cases[i].message);
                if (!strstr(err.message, cases[i].message))
                        fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.message, cases[i].message);
        }
}

static void test_file_errors_name_the_file(void **state)
{
        RolloutSpec *s = NULL;
        MrError err = {};
        char path[] = "/tmp/meshroll-spec-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_true(write(fd, "spec: [\n", 8) == 8);
        close(fd);
        assert_int_equal(rollout_spec_load_file(path, &s, &err), -MR_ECONFIG);
        assert_non_null(strstr(err.message, path));
        assert_non_null(strstr(err.message, "line "));
        unlink(path);
        assert_int_equal(rollout_spec_load_file(path, &s, &err), -ENOENT);
        assert_non_null(strstr(err.message, path));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full_file),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_grouping_modes),
                cmocka_unit_test(test_errors_name_the_field),
                cmocka_unit_test(test_file_errors_name_the_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
