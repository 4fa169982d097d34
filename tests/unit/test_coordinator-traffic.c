/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The traffic phase (coordinator/traffic.c).
 *
 * Pure rules first: the spec's errors name the field; the route and subset
 * rewrites keep every other field, are idempotent, and refuse routes that
 * mix hosts.
 *
 * Then the phase against the in-process simulator (20× speed), stepped by
 * hand with a wall clock the test advances: between two steps the whole
 * Rollout status goes through its JSON form and back, as if every step ran
 * in a new coordinator. Waits on the simulator (Deployments becoming
 * available) are bounded by a count of polls.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "meshroll/json-util.h"
#include "meshroll/kube.h"
#include "meshroll/yaml-json.h"
#include "phase.h"
#include "spec.h"
#include "status.h"
#include "traffic.h"

#include "sim.h"

#define HEAD "apiVersion: meshroll.io/v1alpha1\nkind: Rollout\nmetadata: {name: r1}\n"
#define T0 ((usec_t)1795489863 * USEC_PER_SEC)

static json_object *parse_json(const char *text)
{
        json_object *o = NULL;
        assert_int_equal(mr_json_parse(text, strlen(text), 1 << 20, &o), 0);
        return o;
}

static int parse_spec(const char *yaml, RolloutSpec **ret, MrError *err)
{
        _cleanup_(json_object_putp) json_object *doc = NULL;
        int r = mr_yaml_parse(yaml, strlen(yaml), &doc, err);
        if (r < 0)
                return r;
        return rollout_spec_from_json(doc, ret, err);
}

#define TRAFFIC_MIN                                                                                         \
        "{namespace: shop, host: reviews, destinationRule: reviews, virtualService: reviews, from: v1, "    \
        "to: v2, deployment: reviews-v2"

/* ---- the spec ------------------------------------------------------------------------------- */

static void test_spec_defaults(void **state)
{
        _cleanup_(rollout_spec_freep) RolloutSpec *s = NULL;
        MrError err = {};

        assert_int_equal(parse_spec(HEAD "spec: {traffic: " TRAFFIC_MIN "}}\n", &s, &err), 0);
        assert_int_equal(s->n_phases, 1);
        assert_int_equal(s->phases[0], PHASE_TRAFFIC);
        const TrafficSpec *t = s->phase_spec[PHASE_TRAFFIC];
        assert_non_null(t);
        assert_string_equal(t->version_label, "version");
        assert_int_equal(t->n_steps, 1);
        assert_int_equal(t->steps[0], 100);
        assert_int_equal(t->step_pause, 30 * USEC_PER_SEC);
        assert_int_equal(t->soak, 0);
        assert_int_equal(t->old_action, TRAFFIC_OLD_KEEP);

        _cleanup_free_ char *d = NULL;
        assert_int_equal(traffic_phase_ops.describe(t, &d), 0);
        assert_string_equal(
            d, "traffic: shop/reviews from v1 to v2 (reviews-v2), steps 100 %, old version: keep");
}

static void test_spec_errors(void **state)
{
        static const struct {
                const char *section;
                const char *message;
        } cases[] = {
            {"{host: reviews}", "spec.traffic.namespace: required"},
            {TRAFFIC_MIN ", steps: [5, 25]}", "spec.traffic.steps: the last step must be 100, got 25"},
            {TRAFFIC_MIN ", steps: [50, 25, 100]}",
             "spec.traffic.steps[1]: expected more than 50 (steps increase)"},
            {TRAFFIC_MIN ", steps: [0, 100]}",
             "spec.traffic.steps[0]: expected an integer from 1 to 100, got 0"},
            {TRAFFIC_MIN ", steps: []}", "spec.traffic.steps: expected 1 to 20 percentages, got 0"},
            {TRAFFIC_MIN ", steps: 100}",
             "spec.traffic.steps: expected a list of percentages, got an integer"},
            {TRAFFIC_MIN ", old: {action: scaleDown}}",
             "spec.traffic.old.deployment: required when action is scaleDown"},
            {TRAFFIC_MIN ", old: {action: shrink, deployment: a}}",
             "spec.traffic.old.action: expected one of keep, scaleDown, delete; got \"shrink\""},
            {TRAFFIC_MIN ", old: {action: delete, deployment: reviews-v2}}",
             "spec.traffic.old.deployment: \"reviews-v2\" is also the new version's deployment"},
            {"{namespace: shop, host: reviews, destinationRule: reviews, virtualService: reviews, from: v1, "
             "to: v1, "
             "deployment: reviews-v2}",
             "spec.traffic.to: \"v1\" is also from: expected another version"},
            {TRAFFIC_MIN ", stepPause: soon}", "spec.traffic.stepPause"},
            {TRAFFIC_MIN ", weights: [1]}",
             "spec.traffic.weights: unknown field (known here: namespace, host"},
            {TRAFFIC_MIN ", timeout: 0}", "spec.traffic.timeout: expected more than 0"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(rollout_spec_freep) RolloutSpec *s = NULL;
                char yaml[1024];
                MrError err = {};
                snprintf(yaml, sizeof(yaml), HEAD "spec: {traffic: %s}\n", cases[i].section);
                if (parse_spec(yaml, &s, &err) != -MR_ECONFIG)
                        fail_msg("case %zu: %s", i, err.message);
                if (!strstr(err.message, cases[i].message))
                        fail_msg("case %zu: \"%s\" does not contain \"%s\"", i, err.message,
                                 cases[i].message);
        }
}

/* ---- pure rewrites -------------------------------------------------------------------------- */

static TrafficSpec SPEC = {
    .namespace = (char *)"shop",
    .host = (char *)"reviews",
    .destination_rule = (char *)"reviews",
    .virtual_service = (char *)"reviews",
    .version_label = (char *)"version",
    .from = (char *)"v1",
    .to = (char *)"v2",
    .deployment = (char *)"reviews-v2",
};

#define VS                                                                                                  \
        "{\"metadata\":{\"name\":\"reviews\",\"resourceVersion\":\"7\"},\"spec\":{\"hosts\":[\"reviews\"]," \
        "\"http\":[{\"match\":[{\"headers\":{\"end-user\":{\"exact\":\"jason\"}}}],\"route\":[{"            \
        "\"destination\":"                                                                                  \
        "{\"host\":\"ratings\"}}]},"                                                                        \
        "{\"timeout\":\"5s\",\"route\":[{\"destination\":{\"host\":\"reviews.shop.svc.cluster.local\","     \
        "\"subset\":\"v1\",\"port\":{\"number\":9080}},\"headers\":{\"request\":{\"set\":{\"x\":\"1\"}}}}]" \
        "}],"                                                                                               \
        "\"tcp\":[{\"route\":[{\"destination\":{\"host\":\"reviews\",\"subset\":\"v1\"}}]}]}}"

static void test_set_routes(void **state)
{
        _cleanup_(json_object_putp) json_object *vs = parse_json(VS);
        _cleanup_(json_object_putp) json_object *want = NULL;
        MrError err = {};

        assert_int_equal(traffic_routed_weight(vs, &SPEC), 0);
        assert_int_equal(traffic_set_routes(vs, &SPEC, TRAFFIC_ROUTES_SPLIT, 25, &err), 1);
        /* again: nothing to write */
        assert_int_equal(traffic_set_routes(vs, &SPEC, TRAFFIC_ROUTES_SPLIT, 25, &err), 0);
        assert_int_equal(traffic_routed_weight(vs, &SPEC), 25);
        want = parse_json(
            "{\"metadata\":{\"name\":\"reviews\",\"resourceVersion\":\"7\"},\"spec\":{\"hosts\":["
            "\"reviews\"],"
            "\"http\":[{\"match\":[{\"headers\":{\"end-user\":{\"exact\":\"jason\"}}}],\"route\":[{"
            "\"destination\":"
            "{\"host\":\"ratings\"}}]},"
            "{\"timeout\":\"5s\",\"route\":["
            "{\"destination\":{\"host\":\"reviews.shop.svc.cluster.local\",\"subset\":\"v1\",\"port\":{"
            "\"number\":9080}},"
            "\"headers\":{\"request\":{\"set\":{\"x\":\"1\"}}},\"weight\":75},"
            "{\"destination\":{\"host\":\"reviews.shop.svc.cluster.local\",\"subset\":\"v2\",\"port\":{"
            "\"number\":9080}},"
            "\"headers\":{\"request\":{\"set\":{\"x\":\"1\"}}},\"weight\":25}]}],"
            "\"tcp\":[{\"route\":[{\"destination\":{\"host\":\"reviews\",\"subset\":\"v1\"},\"weight\":75},"
            "{\"destination\":{\"host\":\"reviews\",\"subset\":\"v2\"},\"weight\":25}]}]}}");
        if (!mr_json_equal(vs, want))
                fail_msg("got %s", mr_json_compact(vs));

        assert_int_equal(traffic_set_routes(vs, &SPEC, TRAFFIC_ROUTES_NEW_ONLY, 100, &err), 1);
        assert_int_equal(traffic_routed_weight(vs, &SPEC), 100);
        json_object *tcp =
            mr_json_get(json_object_array_get_idx(mr_json_get(vs, "spec", "tcp", NULL), 0), "route", NULL);
        assert_int_equal(json_object_array_length(tcp), 1);
        assert_string_equal(
            mr_json_get_str(json_object_array_get_idx(tcp, 0), "destination", "subset", NULL), "v2");

        assert_int_equal(traffic_set_routes(vs, &SPEC, TRAFFIC_ROUTES_OLD_ONLY, 100, &err), 1);
        assert_int_equal(traffic_routed_weight(vs, &SPEC), 0);
        /* the other host's route was never touched */
        json_object *first = json_object_array_get_idx(mr_json_get(vs, "spec", "http", NULL), 0);
        assert_string_equal(
            mr_json_compact(first),
            "{\"match\":[{\"headers\":{\"end-user\":{\"exact\":\"jason\"}}}],\"route\":[{\"destination\":"
            "{\"host\":\"ratings\"}}]}");
}

static void test_set_routes_errors(void **state)
{
        _cleanup_(json_object_putp) json_object *mixed =
            parse_json("{\"spec\":{\"http\":[{\"route\":[{\"destination\":{\"host\":\"reviews\",\"subset\":"
                       "\"v1\"},\"weight\":90},"
                       "{\"destination\":{\"host\":\"reviews-legacy\"},\"weight\":10}]}]}}");
        _cleanup_(json_object_putp) json_object *none =
            parse_json("{\"spec\":{\"http\":[{\"route\":[{\"destination\":{\"host\":\"reviewsx\"}}]}]}}");
        MrError err = {};

        assert_int_equal(traffic_set_routes(mixed, &SPEC, TRAFFIC_ROUTES_SPLIT, 5, &err), -MR_ECONFIG);
        assert_string_equal(err.message,
                            "VirtualService shop/reviews: spec.http[0].route sends to reviews as well as "
                            "reviews-legacy; expected routes to reviews alone");
        assert_int_equal(traffic_set_routes(none, &SPEC, TRAFFIC_ROUTES_SPLIT, 5, &err), -MR_ECONFIG);
        assert_string_equal(err.message,
                            "VirtualService shop/reviews: no http, tcp or tls route to host reviews");
        assert_int_equal(traffic_routed_weight(none, &SPEC), -ENOENT);
}

static void test_subsets(void **state)
{
        _cleanup_(json_object_putp) json_object *dr = parse_json(
            "{\"spec\":{\"host\":\"reviews\",\"subsets\":[{\"name\":\"v1\",\"labels\":{\"version\":\"v1\"},"
            "\"trafficPolicy\":{\"loadBalancer\":{\"simple\":\"LEAST_REQUEST\"}}}]}}");
        _cleanup_(json_object_putp) json_object *removed = NULL, *empty = parse_json("{\"spec\":{}}");

        assert_int_equal(traffic_ensure_subset(dr, "v2", "version", NULL), 1);
        assert_int_equal(traffic_ensure_subset(dr, "v2", "version", NULL), 0);
        assert_int_equal(traffic_ensure_subset(dr, "v1", "version", NULL), 0);
        assert_int_equal(traffic_remove_subset(dr, "v1", &removed), 1);
        assert_string_equal(mr_json_compact(dr), "{\"spec\":{\"host\":\"reviews\",\"subsets\":[{\"name\":"
                                                 "\"v2\",\"labels\":{\"version\":\"v2\"}}]}}");
        assert_int_equal(traffic_remove_subset(dr, "v1", NULL), 0);
        /* put back as it was, policy and all */
        assert_int_equal(traffic_ensure_subset(dr, "v1", "version", removed), 1);
        assert_non_null(mr_json_get(json_object_array_get_idx(mr_json_get(dr, "spec", "subsets", NULL), 1),
                                    "trafficPolicy", "loadBalancer", NULL));
        assert_int_equal(traffic_ensure_subset(empty, "v2", "app.kubernetes.io/version", NULL), 1);
        assert_string_equal(mr_json_compact(empty), "{\"spec\":{\"subsets\":[{\"name\":\"v2\",\"labels\":{"
                                                    "\"app.kubernetes.io/version\":\"v2\"}}]}}");
}

static void test_deployment_available(void **state)
{
        static const struct {
                const char *json;
                bool available;
        } cases[] = {
            {"{\"metadata\":{\"generation\":2},\"spec\":{\"replicas\":3},\"status\":{\"observedGeneration\":"
             "2,"
             "\"replicas\":3,\"updatedReplicas\":3,\"availableReplicas\":3}}",
             true},
            /* the controller has not seen the last change yet */
            {"{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":3},\"status\":{\"observedGeneration\":"
             "2,"
             "\"replicas\":3,\"updatedReplicas\":3,\"availableReplicas\":3}}",
             false},
            /* an old pod still runs beside the new ones */
            {"{\"metadata\":{\"generation\":2},\"spec\":{\"replicas\":3},\"status\":{\"observedGeneration\":"
             "2,"
             "\"replicas\":4,\"updatedReplicas\":3,\"availableReplicas\":4}}",
             false},
            {"{\"metadata\":{\"generation\":1},\"spec\":{\"replicas\":3},\"status\":{\"observedGeneration\":"
             "1,"
             "\"replicas\":3,\"updatedReplicas\":3,\"availableReplicas\":2}}",
             false},
            /* replicas defaults to 1 */
            {"{\"metadata\":{\"generation\":1},\"spec\":{},\"status\":{\"observedGeneration\":1,"
             "\"replicas\":1,\"updatedReplicas\":1,\"availableReplicas\":1}}",
             true},
            {"{\"metadata\":{\"generation\":1},\"spec\":{}}", false},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(json_object_putp) json_object *d = parse_json(cases[i].json);
                if (traffic_deployment_available(d, NULL, NULL) != cases[i].available)
                        fail_msg("case %zu: expected %s", i,
                                 cases[i].available ? "available" : "not available");
        }
}

/* ---- against the simulator ------------------------------------------------------------------ */

#define SCENARIO                                                                                            \
        "name: traffic\n"                                                                                   \
        "nodes: [{name: \"n-{i}\", count: 2}]\n"                                                            \
        "namespaces: [{name: shop, labels: {istio.io/dataplane-mode: ambient}}]\n"                          \
        "workloads:\n"                                                                                      \
        "  - {name: reviews-v1, namespace: shop, replicas: 2, labels: {app: reviews, version: v1},\n"       \
        "     startupSeconds: 1, service: {name: reviews, selector: {app: reviews}, port: 9080}}\n"         \
        "  - {name: reviews-v2, namespace: shop, replicas: 2, labels: {app: reviews, version: v2},\n"       \
        "     startupSeconds: 1}\n"                                                                         \
        "objects:\n"                                                                                        \
        "  - apiVersion: networking.istio.io/v1\n"                                                          \
        "    kind: DestinationRule\n"                                                                       \
        "    metadata: {name: reviews, namespace: shop}\n"                                                  \
        "    spec:\n"                                                                                       \
        "      host: reviews\n"                                                                             \
        "      trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n"                                                \
        "      subsets: [{name: v1, labels: {version: v1}, trafficPolicy: {connectionPool: {tcp: "          \
        "{maxConnections: 7}}}}]\n"                                                                         \
        "  - apiVersion: networking.istio.io/v1\n"                                                          \
        "    kind: VirtualService\n"                                                                        \
        "    metadata: {name: reviews, namespace: shop}\n"                                                  \
        "    spec:\n"                                                                                       \
        "      hosts: [reviews]\n"                                                                          \
        "      http:\n"                                                                                     \
        "        - match: [{headers: {end-user: {exact: jason}}}]\n"                                        \
        "          route: [{destination: {host: ratings}}]\n"                                               \
        "        - retries: {attempts: 3}\n"                                                                \
        "          route: [{destination: {host: reviews, subset: v1}}]\n"

#define TRAFFIC_SPEC(extra)                                                                                 \
        HEAD "spec:\n  traffic: {namespace: shop, host: reviews, destinationRule: reviews, "                \
             "virtualService: reviews,\n"                                                                   \
             "            from: v1, to: v2, deployment: reviews-v2, stepPause: 10s, timeout: 1m" extra      \
             "}\n"

typedef struct Env {
        Sim *sim;
        KubeClient *c;
        RolloutSpec *spec;
        RolloutStatus *status;
        MrError err;
        usec_t now;
} Env;

static void env_start(Env *env, const char *spec_yaml)
{
        KubeClientOptions o = {
            .qps = -1, .backoff_base = 5 * USEC_PER_MSEC, .backoff_cap = 20 * USEC_PER_MSEC};
        MrError err = {};

        *env = (Env){.now = T0};
        SimOptions so = {.scenario_data = SCENARIO, .scenario_size = strlen(SCENARIO), .speed = 20};
        if (sim_start(&so, &env->sim, &err) < 0)
                fail_msg("sim_start: %s", err.message);
        KubeConfig cfg = {.server = (char *)sim_url(env->sim)};
        assert_int_equal(kube_client_new(&cfg, &o, &env->c, NULL), 0);
        if (parse_spec(spec_yaml, &env->spec, &err) < 0)
                fail_msg("spec: %s", err.message);
        assert_int_equal(rollout_status_from_json(NULL, &env->status, &err), 0);
        assert_int_equal(rollout_status_add_phase(env->status, PHASE_TRAFFIC), 0);
}

static void env_stop(Env *env)
{
        rollout_status_free(env->status);
        rollout_spec_free(env->spec);
        kube_client_free(env->c);
        sim_stop(env->sim);
}

/* The status through its JSON form and back: the next step runs as in a new coordinator. */
static PhaseStatus *restart(Env *env)
{
        _cleanup_(json_object_putp) json_object *o = NULL;
        RolloutStatus *back = NULL;
        MrError err = {};

        assert_int_equal(rollout_status_to_json(env->status, NULL, env->now, &o), 0);
        assert_int_equal(rollout_status_from_json(o, &back, &err), 0);
        rollout_status_free(env->status);
        env->status = back;
        return rollout_status_phase(env->status, PHASE_TRAFFIC);
}

/* One step as the engine makes it; the wall clock moves by 1 s after each PHASE_STAY. */
static int step(Env *env)
{
        PhaseStatus *ps = restart(env);
        PhaseCtx ctx = {.client = env->c,
                        .rollout = "r1",
                        .spec = env->spec,
                        .status = env->status,
                        .now = env->now,
                        .err = &env->err};
        int r = traffic_phase_ops.step(&ctx, env->spec->phase_spec[PHASE_TRAFFIC], ps);
        if (r < 0)
                fail_msg("step: %s", env->err.message);
        if (r == PHASE_STAY) {
                env->now += USEC_PER_SEC;
                usleep(5000); /* the simulator's own time moves on too */
        }
        return r;
}

static json_object *get(Env *env, const KubeResource *res, const char *name)
{
        _cleanup_free_ char *path = NULL;
        json_object *o = NULL;
        KubeStatus st;

        assert_int_equal(kube_path(res, "shop", name, NULL, &path), 0);
        if (kube_get(env->c, path, &o, &st) < 0)
                fail_msg("GET %s: %s", path, st.message);
        return o;
}

static int routed(Env *env)
{
        _cleanup_(json_object_putp) json_object *vs = get(env, &KUBE_VIRTUALSERVICES, "reviews");
        return traffic_routed_weight(vs, env->spec->phase_spec[PHASE_TRAFFIC]);
}

static bool has_subset(Env *env, const char *name)
{
        _cleanup_(json_object_putp) json_object *dr = get(env, &KUBE_DESTINATIONRULES, "reviews");
        json_object *l = mr_json_get(dr, "spec", "subsets", NULL);
        for (size_t i = 0; l && i < json_object_array_length(l); i++)
                if (streq_ptr(mr_json_get_str(json_object_array_get_idx(l, i), "name", NULL), name))
                        return true;
        return false;
}

/* Steps until the phase reaches state (at most max steps); records each distinct weight seen. */
static void run_until(Env *env, PhaseState state, unsigned max, int *weights, size_t *n_weights)
{
        for (unsigned i = 0; i < max; i++) {
                PhaseStatus *ps = rollout_status_phase(env->status, PHASE_TRAFFIC);
                if (ps->state == state)
                        return;
                step(env);
                if (weights) {
                        int w = routed(env);
                        if (*n_weights == 0 || weights[*n_weights - 1] != w)
                                weights[(*n_weights)++] = w;
                }
        }
        PhaseStatus *ps = rollout_status_phase(env->status, PHASE_TRAFFIC);
        fail_msg("the phase is %s (%s) after %u steps, expected %s", phase_state_to_string(ps->state),
                 strna(ps->message), max, phase_state_to_string(state));
}

static void test_sim_steps_and_cleanup(void **state)
{
        Env env;
        int weights[16];
        size_t n = 0;

        env_start(
            &env,
            TRAFFIC_SPEC(", steps: [25, 100], soak: 5s, old: {action: scaleDown, deployment: reviews-v1}"));
        assert_int_equal(routed(&env), 0);
        run_until(&env, PHASE_COMPLETED, 3000, weights, &n);

        /* 0 → 25 → 100, never back */
        assert_int_equal(n, 3);
        assert_int_equal(weights[0], 0);
        assert_int_equal(weights[1], 25);
        assert_int_equal(weights[2], 100);
        PhaseStatus *ps = rollout_status_phase(env.status, PHASE_TRAFFIC);
        assert_string_equal(ps->message,
                            "100 % on v2 (reviews-v2); subset v1 removed; reviews-v1 scaled down");
        assert_int_equal(mr_json_get_bool(false, ps->detail, "addedSubset", NULL), true);

        /* every other field kept */
        _cleanup_(json_object_putp) json_object *vs = get(&env, &KUBE_VIRTUALSERVICES, "reviews");
        json_object *http = mr_json_get(vs, "spec", "http", NULL);
        assert_string_equal(mr_json_compact(mr_json_get(json_object_array_get_idx(http, 0), "route", NULL)),
                            "[{\"destination\":{\"host\":\"ratings\"}}]");
        assert_non_null(mr_json_get(json_object_array_get_idx(http, 1), "retries", NULL));
        assert_string_equal(mr_json_compact(mr_json_get(json_object_array_get_idx(http, 1), "route", NULL)),
                            "[{\"destination\":{\"host\":\"reviews\",\"subset\":\"v2\"},\"weight\":100}]");
        _cleanup_(json_object_putp) json_object *dr = get(&env, &KUBE_DESTINATIONRULES, "reviews");
        assert_string_equal(mr_json_compact(mr_json_get(dr, "spec", "subsets", NULL)),
                            "[{\"name\":\"v2\",\"labels\":{\"version\":\"v2\"}}]");
        assert_non_null(mr_json_get(dr, "spec", "trafficPolicy", "tls", NULL));
        _cleanup_(json_object_putp) json_object *old = get(&env, &KUBE_DEPLOYMENTS, "reviews-v1");
        int64_t replicas = -1;
        assert_int_equal(mr_json_get_int(&replicas, old, "spec", "replicas", NULL), 0);
        assert_int_equal(replicas, 0);

        /* An operator rolls the finished phase back: v1 scaled up again, its subset restored as it was. */
        PhaseCtx ctx = {.client = env.c,
                        .rollout = "r1",
                        .spec = env.spec,
                        .status = env.status,
                        .now = env.now,
                        .err = &env.err};
        assert_int_equal(traffic_phase_ops.rollback(&ctx, env.spec->phase_spec[PHASE_TRAFFIC], ps, "shop"),
                         -EINVAL);
        assert_int_equal(traffic_phase_ops.rollback(&ctx, env.spec->phase_spec[PHASE_TRAFFIC], ps, NULL), 0);
        assert_int_equal(ps->state, PHASE_ROLLING_BACK);
        run_until(&env, PHASE_ROLLED_BACK, 3000, NULL, NULL);
        ps = rollout_status_phase(env.status, PHASE_TRAFFIC);
        assert_string_equal(ps->message, "100 % back on v1: requested by an operator");
        assert_int_equal(routed(&env), 0);
        assert_true(has_subset(&env, "v1"));
        assert_false(has_subset(&env, "v2"));
        _cleanup_(json_object_putp) json_object *dr2 = get(&env, &KUBE_DESTINATIONRULES, "reviews");
        assert_non_null(mr_json_get(json_object_array_get_idx(mr_json_get(dr2, "spec", "subsets", NULL), 0),
                                    "trafficPolicy", "connectionPool", NULL));
        _cleanup_(json_object_putp) json_object *old2 = get(&env, &KUBE_DEPLOYMENTS, "reviews-v1");
        assert_true(traffic_deployment_available(old2, NULL, NULL));
        assert_int_equal(mr_json_get_int(&replicas, old2, "spec", "replicas", NULL), 0);
        assert_int_equal(replicas, 2);
        env_stop(&env);
}

static void test_sim_rollback_mid_step(void **state)
{
        Env env;

        env_start(&env, TRAFFIC_SPEC(", steps: [5, 50, 100]"));
        /* until the first step's weight is written */
        for (unsigned i = 0; i < 3000 && routed(&env) != 5; i++)
                step(&env);
        assert_int_equal(routed(&env), 5);
        assert_true(has_subset(&env, "v2"));

        /* someone else edits the VirtualService meanwhile: kept */
        _cleanup_(json_object_putp) json_object *vs = get(&env, &KUBE_VIRTUALSERVICES, "reviews");
        _cleanup_free_ char *path = NULL;
        KubeStatus st;
        assert_int_equal(
            mr_json_set_str(mr_json_ensure_object(vs, "metadata", "labels", NULL), "team", "books"), 0);
        assert_int_equal(kube_path(&KUBE_VIRTUALSERVICES, "shop", "reviews", NULL, &path), 0);
        assert_int_equal(kube_replace(env.c, path, vs, NULL, &st), 0);

        PhaseStatus *ps = rollout_status_phase(env.status, PHASE_TRAFFIC);
        PhaseCtx ctx = {.client = env.c,
                        .rollout = "r1",
                        .spec = env.spec,
                        .status = env.status,
                        .now = env.now,
                        .err = &env.err};
        assert_int_equal(traffic_phase_ops.rollback(&ctx, env.spec->phase_spec[PHASE_TRAFFIC], ps, NULL), 0);
        run_until(&env, PHASE_ROLLED_BACK, 100, NULL, NULL);
        assert_int_equal(routed(&env), 0);
        assert_false(has_subset(&env, "v2"));
        _cleanup_(json_object_putp) json_object *after = get(&env, &KUBE_VIRTUALSERVICES, "reviews");
        assert_string_equal(mr_json_get_str(after, "metadata", "labels", "team", NULL), "books");
        env_stop(&env);
}

static void test_sim_deployment_timeout(void **state)
{
        Env env;

        env_start(&env,
                  HEAD "spec:\n  traffic: {namespace: shop, host: reviews, destinationRule: reviews, "
                       "virtualService: reviews, from: v1, to: v3, deployment: reviews-v3, timeout: 30s}\n");
        run_until(&env, PHASE_ROLLED_BACK, 200, NULL, NULL);
        PhaseStatus *ps = rollout_status_phase(env.status, PHASE_TRAFFIC);
        assert_string_equal(ps->message,
                            "100 % back on v1: Deployment shop/reviews-v3 does not exist after 30.0s");
        /* never routed to v3, and its subset is gone again */
        assert_int_equal(routed(&env), 0);
        assert_false(has_subset(&env, "v3"));
        assert_true(has_subset(&env, "v1"));
        env_stop(&env);
}

/* Gates that never give a verdict hold the step (its pause alone does not end it), then roll it back. */
static void test_sim_gates_hold_the_step(void **state)
{
        Env env;
        int weights[16];
        size_t n = 0;

        env_start(&env, TRAFFIC_SPEC(
                            ", steps: [50, 100],\n"
                            "            gates: [{name: e, prometheus: \"http://127.0.0.1:1\", query: up, "
                            "threshold: 1, interval: 30s, checks: 1, onError: wait}]"));
        run_until(&env, PHASE_ROLLED_BACK, 3000, weights, &n);
        assert_int_equal(n, 3);
        assert_int_equal(weights[0], 0);
        assert_int_equal(weights[1], 50);
        assert_int_equal(weights[2], 0);
        PhaseStatus *ps = rollout_status_phase(env.status, PHASE_TRAFFIC);
        assert_string_equal(ps->message,
                            "100 % back on v1: the metric gates gave no verdict within the timeout");
        assert_non_null(strstr(mr_json_get_str(ps->detail, "gates", "e", "error", NULL), "query failed"));
        env_stop(&env);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_spec_defaults),
            cmocka_unit_test(test_spec_errors),
            cmocka_unit_test(test_set_routes),
            cmocka_unit_test(test_set_routes_errors),
            cmocka_unit_test(test_subsets),
            cmocka_unit_test(test_deployment_available),
            cmocka_unit_test(test_sim_steps_and_cleanup),
            cmocka_unit_test(test_sim_rollback_mid_step),
            cmocka_unit_test(test_sim_deployment_timeout),
            cmocka_unit_test(test_sim_gates_hold_the_step),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
