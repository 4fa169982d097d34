/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_sim-scenario-input.c — malformed scenario files, table-driven.
 *
 * A scenario is written by hand for a test or a demo; a typo must stop the
 * simulator with "<file>: line N: <field path>: <what was expected>", not
 * start a cluster that silently differs from the file. Each case is one
 * mistake in one section and the start of the message it must produce.
 * test_sim-scenario.c holds the loader's behaviour on good input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "meshroll/time-util.h"
#include "scenario.h"
#include "store.h"

typedef struct Case {
        const char *yaml;
        const char *message; /* the start of the message */
} Case;

static const Case cases[] = {
        /* The document. */
        { "- nodes\n", "t.yaml: expected a mapping at the top level" },
        { "nodes: {a: 1}\n", "t.yaml: line 1: nodes: expected a list" },
        { "node:\n  - name: a\n", "t.yaml: line 1: node: unknown field" },
        /* nodes */
        { "nodes:\n  - nmae: a\n", "t.yaml: line 2: nodes[0].nmae: unknown field" },
        { "nodes:\n  - name: a\n    count: -1\n", "t.yaml: line 3: nodes[0].count: expected an integer from 0 to 5000" },
        { "nodes:\n  - name: 'n-{i}'\n    count: 5001\n", "t.yaml: line 3: nodes[0].count: expected an integer from 0 to 5000" },
        { "nodes:\n  - name: a\n    zone: [z]\n", "t.yaml: line 3: nodes[0].zone: expected a string" },
        { "nodes:\n  - name: a\n    labels: {a: [b]}\n", "t.yaml: line 3: nodes[0].labels" },
        { "nodes:\n  - name: a\n    unschedulable: 1\n", "t.yaml: line 3: nodes[0].unschedulable: expected true or false" },
        { "nodes:\n  - name: 5\n", "t.yaml: line 2: nodes[0].name: expected a string" },
        { "nodes:\n  - name: [a]\n", "t.yaml: line 2: nodes[0].name: expected a string" },
        { "nodes:\n  - name: a\n    capacity: {cpu: lots}\n", "t.yaml: line 3: nodes[0].capacity.cpu: expected a quantity" },
        { "nodes:\n  - name: a\n    capacity: {memory: 32GB}\n", "t.yaml: line 3: nodes[0].capacity.memory: expected a quantity" },
        { "nodes:\n  - name: a\n    capacity: {pods: -1}\n", "t.yaml: line 3: nodes[0].capacity.pods: expected a quantity" },
        { "nodes:\n  - name: a\n    capacity: {cpu: [8]}\n", "t.yaml: line 3: nodes[0].capacity.cpu: expected a quantity" },
        { "nodes:\n  - name: a\n    taints: [gpu]\n", "t.yaml: line 3: nodes[0].taints[0]: expected a mapping" },
        { "nodes:\n  - name: a\n    taints: [{key: gpu, effect: NoScedule}]\n",
          "t.yaml: line 3: nodes[0].taints[0].effect: expected NoSchedule, PreferNoSchedule or NoExecute" },
        { "nodes:\n  - name: a\n    taints: [{key: gpu}]\n", "t.yaml: line 3: nodes[0].taints[0].effect: expected" },
        { "nodes:\n  - name: a\n    taints: [{effect: NoSchedule}]\n", "t.yaml: line 3: nodes[0].taints[0].key: required" },
        { "nodes:\n  - name: a\n    taints: [{key: gpu, effect: NoSchedule, efect: x}]\n",
          "t.yaml: line 3: nodes[0].taints[0].efect: unknown field" },
        /* namespaces */
        { "namespaces:\n  - labels: {a: b}\n", "t.yaml: line 2: namespaces[0].name: required" },
        { "namespaces:\n  - name: shop\n    label: {a: b}\n", "t.yaml: line 3: namespaces[0].label: unknown field" },
        /* workloads */
        { "workloads:\n  - replicas: 2\n", "t.yaml: line 2: workloads[0].name: required" },
        { "workloads:\n  - name: w\n    replicas: many\n", "t.yaml: line 3: workloads[0].replicas: expected an integer" },
        { "workloads:\n  - name: w\n    replicas: -3\n", "t.yaml: line 3: workloads[0].replicas: expected an integer" },
        { "workloads:\n  - name: w\n    startupSeconds: 1h\n", "t.yaml: line 3: workloads[0].startupSeconds: expected" },
        { "workloads:\n  - name: w\n    neverReady: yes\n", "t.yaml: line 3: workloads[0].neverReady: expected true or false" },
        { "workloads:\n  - name: w\n    pdb: {minAvailable: many}\n", "t.yaml: line 3: workloads[0].pdb.minAvailable" },
        { "workloads:\n  - name: w\n    pdb: {}\n", "t.yaml: line 3: workloads[0].pdb: exactly one of minAvailable and maxUnavailable" },
        { "workloads:\n  - name: w\n    service: {port: 70000}\n", "t.yaml: line 3: workloads[0].service.port" },
        { "workloads:\n  - name: w\n    strategy: {type: Sideways}\n", "t.yaml: line 3: workloads[0].strategy.type" },
        { "workloads:\n  - name: w\n    containers: {a: b}\n", "t.yaml: line 3: workloads[0].containers: expected a list" },
        { "workloads:\n  - name: w\n    imgae: x\n", "t.yaml: line 3: workloads[0].imgae: unknown field" },
        /* istio */
        { "istio: 1.25\n", "t.yaml: line 1: istio: expected a mapping" },
        { "istio:\n  revisions: [{version: 1.25.0}]\n", "t.yaml: line 2: istio.revisions[0].name: required" },
        { "istio:\n  revisions: [{name: a}, {name: a}]\n", "t.yaml: line 2: istio.revisions[1].name: revision \"a\" is defined twice" },
        { "istio:\n  revisions: [{name: a}]\n  ztunnel: {revision: b}\n", "t.yaml: line 3: istio.ztunnel.revision" },
        { "istio:\n  revisions: [{name: a}]\n  ztunnel: {revision: a, updateStrategy: Never}\n",
          "t.yaml: line 3: istio.ztunnel.updateStrategy" },
        { "istio:\n  revisions: [{name: a}]\n  gateways: [{name: g, revision: z}]\n", "t.yaml: line 3: istio.gateways[0].revision: no revision \"z\" in istio.revisions" },
        /* objects */
        { "objects:\n  - 5\n", "t.yaml: line 2: objects[0]: expected a Kubernetes object" },
        { "objects:\n  - {kind: ConfigMap, metadata: {name: x}}\n", "t.yaml: line 2: objects[0]" },
        { "objects:\n  - {apiVersion: v1, kind: ConfigMap}\n", "t.yaml: line 2: objects[0]" },
        /* faults */
        { "faults: []\n", "t.yaml: line 1: faults: expected a mapping" },
        { "faults:\n  errorRate: {get: -0.1}\n", "t.yaml: line 2: faults.errorRate.get: expected a rate from 0 to 1" },
        { "faults:\n  errorRate: {get: high}\n", "t.yaml: line 2: faults.errorRate.get: expected a rate from 0 to 1" },
        { "faults:\n  errorCode: {get: 200}\n", "t.yaml: line 2: faults.errorCode.get" },
        { "faults:\n  latency: {list: soon}\n", "t.yaml: line 2: faults.latency.list" },
        { "faults:\n  dropWatchesAfter: never\n", "t.yaml: line 2: faults.dropWatchesAfter" },
        { "faults:\n  conflictRate: 1.5\n", "t.yaml: line 2: faults.conflictRate" },
        { "faults:\n  neverReadyImages: ztunnel:bad\n", "t.yaml: line 2: faults.neverReadyImages" },
        { "faults:\n  errorRates: {get: 0.1}\n", "t.yaml: line 2: faults.errorRates: unknown field" },
        /* YAML that does not parse */
        { "nodes:\n  - name: a\n   count: 2\n", "t.yaml: line 3" },
        { "nodes: [\n", "t.yaml: line " },
};

static void test_fields_named(void **state)
{
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                MrFakeClock fake;
                SimClock clock;
                SimStore *store = NULL;
                SimFaults faults;
                MrError err = {};

                mr_fake_clock_init(&fake, USEC_PER_SEC, 1767225600 * USEC_PER_SEC);
                sim_clock_init(&clock, &fake.clock, 1.0);
                assert_int_equal(sim_store_new(&clock, -1, &store), 0);
                int r = sim_scenario_load_data(store, cases[i].yaml, strlen(cases[i].yaml), "t.yaml", &faults, &err);
                sim_store_free(store);
                if (r >= 0)
                        fail_msg("case %zu accepted:\n%s", i, cases[i].yaml);
                if (strncmp(err.message, cases[i].message, strlen(cases[i].message)) != 0)
                        fail_msg("case %zu:\n%sgot  \"%s\"\nwant \"%s…\"", i, cases[i].yaml, err.message,
                                 cases[i].message);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fields_named),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
