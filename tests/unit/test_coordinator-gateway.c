/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gateway phase's pure parts: spec.gateway (defaults, every error
 * naming its field) and the switched selector's matching. The switch
 * itself is tested against the simulator in test_phases-sim.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "meshroll/json-util.h"
#include "meshroll/yaml-json.h"
#include "gateway.h"
#include "spec.h"

#define HEAD "apiVersion: meshroll.io/v1alpha1\nkind: Rollout\nmetadata: {name: r1}\nspec:\n"

static int parse_yaml(const char *yaml, RolloutSpec **ret, MrError *err)
{
        _cleanup_(json_object_putp) json_object *doc = NULL;
        int r = mr_yaml_parse(yaml, strlen(yaml), &doc, err);
        if (r < 0)
                return r;
        return rollout_spec_from_json(doc, ret, err);
}

static json_object *json(const char *text)
{
        json_object *o = NULL;
        if (!text)
                return NULL;
        assert_int_equal(mr_json_parse(text, strlen(text), 1 << 16, &o), 0);
        return o;
}

static void test_defaults(void **state)
{
        _cleanup_(rollout_spec_freep) RolloutSpec *s = NULL;
        MrError err = {};

        assert_int_equal(parse_yaml(HEAD "  gateway: {service: {namespace: gw, name: ingress}, from: blue, to: green}\n",
                                    &s, &err),
                         0);
        assert_int_equal(s->n_phases, 1);
        assert_int_equal(s->phases[0], PHASE_GATEWAY);
        const GatewaySpec *g = s->phase_spec[PHASE_GATEWAY];
        assert_string_equal(g->service_namespace, "gw");
        assert_string_equal(g->service_name, "ingress");
        assert_string_equal(g->selector_key, "istio.io/rev");
        assert_string_equal(g->from, "blue");
        assert_string_equal(g->to, "green");
        assert_null(g->deployment);
        assert_int_equal(g->timeout, 5 * USEC_PER_MINUTE);
        assert_int_equal(g->soak, USEC_PER_MINUTE);

        char *d = NULL;
        assert_int_equal(gateway_phase_ops.describe(g, &d), 0);
        assert_non_null(strstr(d, "gw/ingress from istio.io/rev=blue to istio.io/rev=green"));
        free(d);
}

static void test_errors_name_the_field(void **state)
{
        static const struct {
                const char *section;
                const char *message;
        } cases[] = {
                { "{from: a, to: b}", "spec.gateway.service: required" },
                { "{service: {name: s}, from: a, to: b}", "spec.gateway.service.namespace: required" },
                { "{service: {namespace: n}, from: a, to: b}", "spec.gateway.service.name: required" },
                { "{service: {namespace: n, name: s, port: 1}, from: a, to: b}",
                  "spec.gateway.service.port: unknown field" },
                { "{service: {namespace: n, name: s}, to: b}", "spec.gateway.from: required" },
                { "{service: {namespace: n, name: s}, from: a}", "spec.gateway.to: required" },
                { "{service: {namespace: n, name: s}, from: a, to: a}", "spec.gateway.to: \"a\" equals from" },
                { "{service: {namespace: n, name: s}, from: a, to: b, timeout: 0}", "spec.gateway.timeout" },
                { "{service: {namespace: n, name: s}, from: a, to: b, soak: later}", "spec.gateway.soak" },
                { "{service: {namespace: n, name: s}, from: a, to: b, selectorKey: ''}", "spec.gateway.selectorKey" },
                { "{service: {namespace: n, name: s}, from: a, to: b, deployment: [x]}", "spec.gateway.deployment" },
                { "{service: {namespace: n, name: s}, from: a, to: b, colour: x}",
                  "spec.gateway.colour: unknown field" },
                { "{service: n/s, from: a, to: b}", "spec.gateway.service: expected a mapping" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(rollout_spec_freep) RolloutSpec *s = NULL;
                char yaml[512];
                MrError err = {};
                snprintf(yaml, sizeof(yaml), HEAD "  gateway: %s\n", cases[i].section);
                int r = parse_yaml(yaml, &s, &err);
                if (r != -MR_ECONFIG || !strstr(err.message, cases[i].message))
                        fail_msg("case %zu (%s): r=%d, message \"%s\", expected \"%s\"", i, cases[i].section, r,
                                 err.message, cases[i].message);
        }
}

static void test_selector_matches(void **state)
{
        static const struct {
                const char *sel, *labels;
                bool match;
        } cases[] = {
                /* the switched key takes the new value; the rest of the selector still applies */
                { "{\"istio\":\"ingressgateway\",\"istio.io/rev\":\"1-24-0\"}",
                  "{\"istio\":\"ingressgateway\",\"istio.io/rev\":\"1-25-0\",\"app\":\"green\"}", true },
                { "{\"istio\":\"ingressgateway\",\"istio.io/rev\":\"1-24-0\"}",
                  "{\"istio\":\"ingressgateway\",\"istio.io/rev\":\"1-24-0\"}", false },
                { "{\"istio\":\"ingressgateway\",\"istio.io/rev\":\"1-24-0\"}",
                  "{\"istio\":\"eastwest\",\"istio.io/rev\":\"1-25-0\"}", false },
                /* a selector without the key gains it */
                { "{\"istio\":\"ingressgateway\"}", "{\"istio\":\"ingressgateway\"}", false },
                { "{\"istio\":\"ingressgateway\"}", "{\"istio\":\"ingressgateway\",\"istio.io/rev\":\"1-25-0\"}", true },
                /* no selector, or an empty one: hand-made endpoints; nothing matches */
                { NULL, "{\"istio.io/rev\":\"1-25-0\"}", false },
                { "{}", "{\"istio.io/rev\":\"1-25-0\"}", false },
                { "{\"istio.io/rev\":\"1-24-0\"}", NULL, false },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(json_object_putp) json_object *sel = json(cases[i].sel), *labels = json(cases[i].labels);
                if (gateway_selector_matches(sel, "istio.io/rev", "1-25-0", labels) != cases[i].match)
                        fail_msg("case %zu: expected %s", i, cases[i].match ? "a match" : "no match");
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_errors_name_the_field),
                cmocka_unit_test(test_selector_matches),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
