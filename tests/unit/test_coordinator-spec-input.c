/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_coordinator-spec-input.c — malformed Rollout specs, table-driven.
 *
 * Every case is a document an operator could write (a typo, a wrong type,
 * a value out of range, a custom resource in JSON) and the text its error
 * must contain: the field path first, then what was expected. The same
 * tables run through the file loader, whose message must also name the
 * file. test_coordinator-spec.c holds the parser's behaviour on good input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include "meshroll/json-util.h"
#include "meshroll/yaml-json.h"
#include "spec.h"

#define HEAD "apiVersion: meshroll.io/v1alpha1\nkind: Rollout\nmetadata: {name: r1}\n"

typedef struct Case {
        const char *doc;
        const char *message; /* starts the error (after any file name) */
} Case;

/* Wrong types and values, one field at a time, in YAML. */
static const Case yaml_cases[] = {
        { "apiVersion: meshroll.io/v1\nkind: Rollout\n", "apiVersion: expected \"meshroll.io/v1alpha1\"" },
        { "apiVersion: [meshroll.io/v1alpha1]\nkind: Rollout\n", "apiVersion: expected \"meshroll.io/v1alpha1\"" },
        { "apiVersion: meshroll.io/v1alpha1\n", "kind: expected \"Rollout\"" },
        { "apiVersion: meshroll.io/v1alpha1\nkind: Rollout\nmetadata: r1\nspec: {}\n", "metadata: expected a mapping, got a string" },
        { "apiVersion: meshroll.io/v1alpha1\nkind: Rollout\nmetadata: {name: 5}\nspec: {}\n", "metadata.name: expected a non-empty string, got an integer" },
        { "apiVersion: meshroll.io/v1alpha1\nkind: Rollout\nmetadata: {name: \"\"}\nspec: {}\n", "metadata.name: expected a non-empty string" },
        { HEAD "spec: 3\n", "spec: expected a mapping, got an integer" },
        { HEAD "spec: {paused: 1}\n", "spec.paused: expected true or false, got an integer" },
        { HEAD "spec: {target: ztunnel}\n", "spec.target: expected a mapping, got a string" },
        { HEAD "spec: {target: {daemonSet: [a]}}\n", "spec.target.daemonSet: expected a non-empty string, got a list" },
        { HEAD "spec: {target: {namespace: istio-system, extra: 1}}\n", "spec.target.extra: unknown field (known here: namespace, daemonSet)" },
        { HEAD "spec: {groups: [a]}\n", "spec.groups: expected a mapping, got a list" },
        { HEAD "spec: {groups: {sise: 3}}\n", "spec.groups.sise: unknown field" },
        { HEAD "spec: {groups: {size: \"3\"}}\n", "spec.groups.size: expected an integer from 1 to 100000, got a string" },
        { HEAD "spec: {groups: {size: -1}}\n", "spec.groups.size: expected an integer from 1 to 100000, got -1" },
        { HEAD "spec: {groups: {size: 99999999999999999999}}\n", "spec.groups.size: expected an integer from 1 to 100000" },
        { HEAD "spec: {groups: {percent: 0}}\n", "spec.groups.percent: expected an integer from 1 to 100, got 0" },
        { HEAD "spec: {groups: {canary: -2}}\n", "spec.groups.canary: expected an integer from 0" },
        { HEAD "spec: {groups: {byLabel: \"\"}}\n", "spec.groups.byLabel: expected a non-empty string" },
        { HEAD "spec: {groups: {byLabel: zone, order: zone-a}}\n", "spec.groups.order: expected a list of strings, got a string" },
        { HEAD "spec: {groups: {byLabel: zone, order: [a, 7]}}\n", "spec.groups.order[1]: expected a non-empty string, got an integer" },
        { HEAD "spec: {groups: {nodeSelector: [pool]}}\n", "spec.groups.nodeSelector: expected a non-empty string, got a list" },
        { HEAD "spec: {groups: {list: {a: [n1]}}}\n", "spec.groups.list: expected a list" },
        { HEAD "spec: {groups: {list: [n1]}}\n", "spec.groups.list[0]: expected a mapping" },
        { HEAD "spec: {groups: {list: [{name: a, nodes: n1}]}}\n", "spec.groups.list[0].nodes: expected a list of strings, got a string" },
        { HEAD "spec: {groups: {list: [{name: a, nodes: [n1, \"\"]}]}}\n", "spec.groups.list[0].nodes[1]: expected a non-empty string" },
        { HEAD "spec: {groups: {list: [{name: a, nodes: [n1], zone: b}]}}\n", "spec.groups.list[0].zone: unknown field" },
        { HEAD "spec: {drain: 5m}\n", "spec.drain: expected a mapping, got a string" },
        { HEAD "spec: {drain: {timeout: 5 minutes}}\n", "spec.drain.timeout: expected a duration such as \"90s\"" },
        { HEAD "spec: {drain: {timeout: \"\"}}\n", "spec.drain.timeout: expected a duration" },
        { HEAD "spec: {drain: {timeout: 25h}}\n", "spec.drain.timeout: expected a duration such as \"90s\" or \"5m\" up to 86400s, got \"25h\"" },
        { HEAD "spec: {drain: {timeout: 99999999999h}}\n", "spec.drain.timeout: expected a duration" },
        { HEAD "spec: {drain: {timeout: -1s}}\n", "spec.drain.timeout: expected a duration" },
        { HEAD "spec: {drain: {timeout: 1.5}}\n", "spec.drain.timeout: expected a duration such as \"90s\" or \"5m\" (or integer seconds), got a number" },
        { HEAD "spec: {drain: {concurrency: 1001}}\n", "spec.drain.concurrency: expected an integer from 1 to 1000, got 1001" },
        { HEAD "spec: {drain: {gracePeriodSeconds: -5}}\n", "spec.drain.gracePeriodSeconds: expected an integer from 0" },
        { HEAD "spec: {drain: {podSelector: \"app in (a\"}}\n", "spec.drain.podSelector: not a valid label selector" },
        { HEAD "spec: {drain: {force: \"true\"}}\n", "spec.drain.force: expected true or false, got a string" },
        { HEAD "spec: {drain: {deleteEmptyDirData: 0}}\n", "spec.drain.deleteEmptyDirData: expected true or false, got an integer" },
        { HEAD "spec: {drain: {grace: 5}}\n", "spec.drain.grace: unknown field" },
        { HEAD "spec: {connectionGate: []}\n", "spec.connectionGate: expected a mapping, got a list" },
        { HEAD "spec: {connectionGate: {threshold: -1}}\n", "spec.connectionGate.threshold: expected an integer from 0" },
        { HEAD "spec: {connectionGate: {threshold: 0.5}}\n", "spec.connectionGate.threshold: expected an integer from 0" },
        { HEAD "spec: {connectionGate: {onTimeout: 1}}\n", "spec.connectionGate.onTimeout: expected" },
        { HEAD "spec: {connectionGate: {onTimeout: Pause}}\n", "spec.connectionGate.onTimeout: expected one of proceed, pause, rollback; got \"Pause\"" },
        { HEAD "spec: {connectionGate: {agentNamespace: {}}}\n", "spec.connectionGate.agentNamespace: expected a non-empty string, got a mapping" },
        { HEAD "spec: {connectionGate: {timout: 5m}}\n", "spec.connectionGate.timout: unknown field" },
        { HEAD "spec: {readiness: {timeout: forever}}\n", "spec.readiness.timeout: expected a duration" },
        { HEAD "spec: {readiness: {minReadySeconds: 3601}}\n", "spec.readiness.minReadySeconds: expected an integer from 0 to 3600, got 3601" },
        { HEAD "spec: {readiness: {minReady: 3}}\n", "spec.readiness.minReady: unknown field" },
        { HEAD "spec: {preflight: {waitTimeout: forever}}\n", "spec.preflight.waitTimeout: expected a duration" },
        { HEAD "spec: {preflight: {waitTimeout: -5}}\n", "spec.preflight.waitTimeout: expected a duration from 0 to 86400s" },
        { HEAD "spec: {preflight: {wait: 5m}}\n", "spec.preflight.wait: unknown field" },
        { HEAD "spec: {preflight: {skip: [agnets]}}\n", "spec.preflight.skip: unknown check \"agnets\"" },
        { HEAD "spec: {soak: [1m]}\n", "spec.soak: expected a duration" },
};

/* The same mistakes in a custom resource as the API server returns it (JSON). */
static const Case json_cases[] = {
        { "{\"apiVersion\":\"meshroll.io/v1alpha1\",\"kind\":\"Rollout\",\"metadata\":{\"name\":\"r\"},"
          "\"spec\":{\"groups\":{\"percent\":101}}}",
          "spec.groups.percent: expected an integer from 1 to 100, got 101" },
        { "{\"apiVersion\":\"meshroll.io/v1alpha1\",\"kind\":\"Rollout\",\"metadata\":{\"name\":\"r\"},"
          "\"spec\":{\"drain\":{\"timeout\":\"10x\"}}}",
          "spec.drain.timeout: expected a duration" },
        { "{\"apiVersion\":\"meshroll.io/v1alpha1\",\"kind\":\"Rollout\",\"metadata\":{\"name\":\"r\"},"
          "\"spec\":{\"connectionGate\":{\"onTimeout\":\"abort\"}}}",
          "spec.connectionGate.onTimeout: expected one of proceed, pause, rollback; got \"abort\"" },
        { "{\"apiVersion\":\"meshroll.io/v1alpha1\",\"kind\":\"Rollout\",\"metadata\":{\"name\":\"r\"},\"spec\":null}",
          "spec: required" },
        { "{\"apiVersion\":\"meshroll.io/v1alpha1\",\"kind\":\"Rollout\",\"metadata\":{\"name\":\"r\"},"
          "\"spec\":{},\"specs\":{}}",
          "specs: unknown field" },
};

static void check_case(const Case *c, size_t i, int r, RolloutSpec *s, const MrError *err, const char *prefix)
{
        if (r != -MR_ECONFIG)
                fail_msg("case %zu (%s): got %d, want -MR_ECONFIG; message: %s", i, c->doc, r, err->message);
        if (s)
                fail_msg("case %zu: a spec was returned with an error", i);
        if (strncmp(err->message, prefix, strlen(prefix)) != 0)
                fail_msg("case %zu: message \"%s\" does not start with \"%s\"", i, err->message, prefix);
        if (strncmp(err->message + strlen(prefix), c->message, strlen(c->message)) != 0)
                fail_msg("case %zu (%s): message \"%s\" does not start with \"%s%s\"", i, c->doc, err->message,
                         prefix, c->message);
}

static void run_parsed(const Case *cases, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                _cleanup_(json_object_putp) json_object *doc = NULL;
                RolloutSpec *s = NULL;
                MrError err = {};
                if (mr_yaml_parse(cases[i].doc, strlen(cases[i].doc), &doc, &err) < 0)
                        fail_msg("case %zu: not YAML: %s", i, err.message);
                int r = rollout_spec_from_json(doc, &s, &err);
                check_case(&cases[i], i, r, s, &err, "");
                rollout_spec_free(s);
        }
}

static void test_yaml_fields(void **state)
{
        run_parsed(yaml_cases, ELEMENTSOF(yaml_cases));
}

static void test_custom_resource_fields(void **state)
{
        run_parsed(json_cases, ELEMENTSOF(json_cases));
}

/* Writes data to a new temporary file; returns its path in path (a mkstemp template). */
static void write_temp(char *path, const char *data, size_t size)
{
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_true(write(fd, data, size) == (ssize_t)size);
        close(fd);
}

static void test_file_names_file_and_field(void **state)
{
        for (size_t i = 0; i < ELEMENTSOF(yaml_cases); i++) {
                char path[] = "/tmp/meshroll-spec-input-XXXXXX", prefix[64];
                RolloutSpec *s = NULL;
                MrError err = {};
                write_temp(path, yaml_cases[i].doc, strlen(yaml_cases[i].doc));
                int r = rollout_spec_load_file(path, &s, &err);
                snprintf(prefix, sizeof(prefix), "%s: ", path);
                check_case(&yaml_cases[i], i, r, s, &err, prefix);
                unlink(path);
        }
}

/* Whole files that are not a Rollout at all. */
static void test_file_level_errors(void **state)
{
        static const struct {
                const char *data;
                size_t size;
                const char *message; /* after "<path>: " */
        } cases[] = {
#define LIT(s) s, sizeof(s) - 1
                { LIT(""), NULL }, /* empty: an error, whatever its words */
                { LIT("# only a comment\n"), NULL },
                { LIT("- a\n- b\n"), NULL },
                { LIT("spec: [\n"), "line " },
                { LIT("\x00\x01\x02\xff"), NULL },
                { LIT("key: \"unterminated\n"), "line " },
                { LIT(HEAD "spec: {}\n---\n" HEAD "spec: {}\n"), NULL },
#undef LIT
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char path[] = "/tmp/meshroll-spec-input-XXXXXX";
                RolloutSpec *s = NULL;
                MrError err = {};
                write_temp(path, cases[i].data, cases[i].size);
                int r = rollout_spec_load_file(path, &s, &err);
                if (r >= 0)
                        fail_msg("case %zu: accepted", i);
                assert_null(s);
                if (!strstr(err.message, path))
                        fail_msg("case %zu: message \"%s\" does not name the file", i, err.message);
                if (cases[i].message && !strstr(err.message, cases[i].message))
                        fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.message, cases[i].message);
                unlink(path);
        }
}

static void test_unreadable_paths(void **state)
{
        RolloutSpec *s = NULL;
        MrError err = {};

        assert_true(rollout_spec_load_file("/nonexistent/rollout.yaml", &s, &err) < 0);
        assert_null(s);
        assert_non_null(strstr(err.message, "/nonexistent/rollout.yaml"));
        err = (MrError){};
        assert_true(rollout_spec_load_file("/tmp", &s, &err) < 0);
        assert_null(s);
        assert_non_null(strstr(err.message, "/tmp"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_yaml_fields),
                cmocka_unit_test(test_custom_resource_fields),
                cmocka_unit_test(test_file_names_file_and_field),
                cmocka_unit_test(test_file_level_errors),
                cmocka_unit_test(test_unreadable_paths),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
