/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <setjmp.h>
#include <cmocka.h>

#include "http-fixture.h"
#include "meshroll/errors.h"
#include "meshroll/json-util.h"
#include "meshroll/kubeconfig.h"
#include "meshroll/lease.h"

static json_object *parse_json(const char *s)
{
        json_object *o = NULL;
        assert_int_equal(mr_json_parse(s, strlen(s), 1 << 20, &o), 0);
        return o;
}

/* 2025-01-02T03:04:05.123456Z */
#define T_ACQUIRE ((usec_t)1735787045123456ULL)
/* 2025-01-02T03:04:35.654321Z */
#define T_RENEW ((usec_t)1735787075654321ULL)

static const char LEASE[] =
        "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
        "\"metadata\":{\"name\":\"meshroll\",\"namespace\":\"istio-system\",\"resourceVersion\":\"812\","
        "\"uid\":\"u-1\",\"labels\":{\"app\":\"meshroll\"},\"annotations\":{\"meshroll.io/conns\":\"12\"}},"
        "\"spec\":{\"holderIdentity\":\"pod-a_3f2c\",\"leaseDurationSeconds\":15,"
        "\"acquireTime\":\"2025-01-02T03:04:05.123456Z\",\"renewTime\":\"2025-01-02T03:04:35.654321Z\","
        "\"leaseTransitions\":3,\"preferredHolder\":\"pod-b\"}}";

static void test_from_json(void **state)
{
        _cleanup_(json_object_putp) json_object *o = parse_json(LEASE);
        _cleanup_(kube_lease_done) KubeLease l = {};

        assert_int_equal(kube_lease_from_json(o, &l, NULL), 0);
        assert_string_equal(l.name, "meshroll");
        assert_string_equal(l.namespace, "istio-system");
        assert_string_equal(l.resource_version, "812");
        assert_string_equal(l.holder_identity, "pod-a_3f2c");
        assert_int_equal(l.lease_duration_seconds, 15);
        assert_int_equal(l.acquire_time, T_ACQUIRE);
        assert_int_equal(l.renew_time, T_RENEW);
        assert_int_equal(l.lease_transitions, 3);
        assert_string_equal(mr_json_get_str(l.annotations, "meshroll.io/conns", NULL), "12");
        /* copies, not borrowed: the source may go */
        json_object_put(TAKE_PTR(o));
        assert_string_equal(mr_json_get_str(l.object, "spec", "preferredHolder", NULL), "pod-b");
}

static void test_from_json_minimal(void **state)
{
        static const char *const cases[] = {
                "{\"metadata\":{\"name\":\"n\"}}",
                "{\"metadata\":{\"name\":\"n\"},\"spec\":{}}",
                "{\"metadata\":{\"name\":\"n\",\"annotations\":null},\"spec\":{\"holderIdentity\":null,"
                "\"leaseDurationSeconds\":null,\"renewTime\":null,\"acquireTime\":null,\"leaseTransitions\":null}}",
                "{\"metadata\":{\"name\":\"n\"},\"spec\":null}",
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(json_object_putp) json_object *o = parse_json(cases[i]);
                _cleanup_(kube_lease_done) KubeLease l = {};
                MrError err = {};
                if (kube_lease_from_json(o, &l, &err) < 0)
                        fail_msg("case %zu: %s", i, err.message);
                assert_null(l.namespace);
                assert_null(l.resource_version);
                assert_null(l.holder_identity);
                assert_null(l.annotations);
                assert_int_equal(l.lease_duration_seconds, 0);
                assert_int_equal(l.acquire_time, 0);
                assert_int_equal(l.renew_time, 0);
                assert_int_equal(l.lease_transitions, 0);
        }
}

static void test_from_json_invalid(void **state)
{
        static const struct {
                const char *json, *message;
        } cases[] = {
                { "[]", "Lease: expected an object" },
                { "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"n\"}}", "kind: expected Lease, got Pod" },
                { "{\"metadata\":{}}", "metadata.name" },
                { "{\"metadata\":{\"name\":\"\"}}", "metadata.name" },
                { "{\"metadata\":{\"name\":\"n\"},\"spec\":[]}", "spec: expected an object" },
                { "{\"metadata\":{\"name\":\"n\"},\"spec\":{\"holderIdentity\":5}}", "spec.holderIdentity" },
                { "{\"metadata\":{\"name\":\"n\"},\"spec\":{\"leaseDurationSeconds\":\"15\"}}",
                  "spec.leaseDurationSeconds: expected a 32-bit integer" },
                { "{\"metadata\":{\"name\":\"n\"},\"spec\":{\"leaseDurationSeconds\":2147483648}}",
                  "spec.leaseDurationSeconds" },
                { "{\"metadata\":{\"name\":\"n\"},\"spec\":{\"leaseTransitions\":1.5}}", "spec.leaseTransitions" },
                { "{\"metadata\":{\"name\":\"n\"},\"spec\":{\"renewTime\":\"yesterday\"}}",
                  "spec.renewTime: expected an RFC 3339 time" },
                { "{\"metadata\":{\"name\":\"n\"},\"spec\":{\"acquireTime\":12}}", "spec.acquireTime" },
                { "{\"metadata\":{\"name\":\"n\",\"annotations\":[]}}", "metadata.annotations: expected an object" },
                { "{\"metadata\":{\"name\":\"n\",\"annotations\":{\"a\":1}}}", "metadata.annotations.a" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(json_object_putp) json_object *o = parse_json(cases[i].json);
                KubeLease l = { .lease_transitions = 77 };
                MrError err = {};
                int r = kube_lease_from_json(o, &l, &err);
                if (r != -EBADMSG || !strstr(err.message, cases[i].message))
                        fail_msg("case %zu: got %d \"%s\", want \"%s\"", i, r, err.message, cases[i].message);
                assert_int_equal(l.lease_transitions, 77); /* untouched */
                assert_null(l.name);
        }
}

static void test_to_json_new(void **state)
{
        _cleanup_(json_object_putp) json_object *o = NULL;
        KubeLease l = {
                .namespace = (char *)"ns",
                .name = (char *)"meshroll",
                .holder_identity = (char *)"me",
                .lease_duration_seconds = 15,
                .acquire_time = T_ACQUIRE,
                .renew_time = T_ACQUIRE + 1, /* µs precision survives */
        };
        assert_int_equal(kube_lease_to_json(&l, &o), 0);
        assert_string_equal(mr_json_compact(o),
                            "{\"metadata\":{\"name\":\"meshroll\",\"namespace\":\"ns\"},\"spec\":{\"holderIdentity\":"
                            "\"me\",\"leaseDurationSeconds\":15,\"acquireTime\":\"2025-01-02T03:04:05.123456Z\","
                            "\"renewTime\":\"2025-01-02T03:04:05.123457Z\",\"leaseTransitions\":0},"
                            "\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\"}");

        /* name and namespace are required */
        json_object *x = NULL;
        l.namespace = NULL;
        assert_int_equal(kube_lease_to_json(&l, &x), -EINVAL);
        l.namespace = (char *)"ns";
        l.name = (char *)"";
        assert_int_equal(kube_lease_to_json(&l, &x), -EINVAL);
        assert_null(x);
}

/* Read, change, write: unknown fields survive, modelled ones are overwritten. */
static void test_round_trip(void **state)
{
        _cleanup_(json_object_putp) json_object *o = parse_json(LEASE), *out = NULL, *want = NULL;
        _cleanup_(kube_lease_done) KubeLease l = {}, back = {};

        assert_int_equal(kube_lease_from_json(o, &l, NULL), 0);
        assert_int_equal(kube_lease_to_json(&l, &out), 0);
        assert_true(mr_json_equal(o, out)); /* nothing changed: the same object */
        json_object_put(TAKE_PTR(out));

        free(l.holder_identity);
        l.holder_identity = strdup("");
        l.lease_duration_seconds = 1;
        l.renew_time = T_RENEW + 5 * USEC_PER_SEC;
        l.acquire_time = 0; /* removes it */
        l.lease_transitions = 4;
        json_object_put(l.annotations);
        l.annotations = parse_json("{\"meshroll.io/conns\":\"0\"}");
        assert_int_equal(kube_lease_to_json(&l, &out), 0);
        want = parse_json("{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
                          "\"metadata\":{\"name\":\"meshroll\",\"namespace\":\"istio-system\",\"resourceVersion\":"
                          "\"812\",\"uid\":\"u-1\",\"labels\":{\"app\":\"meshroll\"},\"annotations\":{"
                          "\"meshroll.io/conns\":\"0\"}},"
                          "\"spec\":{\"holderIdentity\":\"\",\"leaseDurationSeconds\":1,"
                          "\"renewTime\":\"2025-01-02T03:04:40.654321Z\",\"leaseTransitions\":4,"
                          "\"preferredHolder\":\"pod-b\"}}");
        if (!mr_json_equal(out, want))
                fail_msg("got %s", mr_json_compact(out));

        assert_int_equal(kube_lease_from_json(out, &back, NULL), 0);
        assert_string_equal(back.holder_identity, "");
        assert_int_equal(back.renew_time, T_RENEW + 5 * USEC_PER_SEC);
        assert_int_equal(back.acquire_time, 0);

        /* no resourceVersion: removed; a hand-made object of the wrong shape is replaced */
        json_object_put(TAKE_PTR(out));
        free(l.resource_version);
        l.resource_version = NULL;
        json_object_put(l.object);
        l.object = parse_json("{\"metadata\":5,\"spec\":\"x\",\"keep\":true}");
        assert_int_equal(kube_lease_to_json(&l, &out), 0);
        assert_null(mr_json_get(out, "metadata", "resourceVersion", NULL));
        assert_string_equal(mr_json_get_str(out, "metadata", "name", NULL), "meshroll");
        assert_int_equal(mr_json_get_int(&(int64_t){ 0 }, out, "spec", "leaseTransitions", NULL), 0);
        assert_true(mr_json_get_bool(false, out, "keep", NULL));
}

/* ---- against an HTTP fixture -------------------------------------------- */

typedef struct Server {
        char stored[4096]; /* the lease as the server has it, "" for none */
        unsigned rv;
} Server;

/* A minimal lease endpoint: GET, POST (409 AlreadyExists), PUT with strict resourceVersion (409 Conflict). */
static void lease_handler(HttpFixture *f, const HttpRequest *req, HttpResponse *resp, void *userdata)
{
        Server *s = userdata;
        static const char base[] = "/apis/coordination.k8s.io/v1/namespaces/ns/leases";
        _cleanup_(json_object_putp) json_object *body = NULL;

        if (streq(req->method, "GET")) {
                if (!streq(req->path, "/apis/coordination.k8s.io/v1/namespaces/ns/leases/meshroll") || !s->stored[0])
                        http_respond(resp, 404,
                                     "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"reason\":"
                                     "\"NotFound\",\"code\":404}");
                else
                        http_respond(resp, 200, s->stored);
                return;
        }
        if (mr_json_parse(req->body, req->body_size, 1 << 20, &body) < 0) {
                http_respond(resp, 400, "{\"kind\":\"Status\",\"code\":400}");
                return;
        }
        if (streq(req->method, "POST") && streq(req->path, base)) {
                if (s->stored[0] || mr_json_get(body, "metadata", "resourceVersion", NULL)) {
                        http_respond(resp, 409,
                                     "{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":\"AlreadyExists\","
                                     "\"code\":409}");
                        return;
                }
        } else if (streq(req->method, "PUT") && streq(req->path, "/apis/coordination.k8s.io/v1/namespaces/ns/leases/meshroll")) {
                const char *rv = mr_json_get_str(body, "metadata", "resourceVersion", NULL);
                char want[32];
                snprintf(want, sizeof(want), "%u", s->rv);
                if (!rv) {
                        http_respond(resp, 422, "{\"kind\":\"Status\",\"reason\":\"Invalid\",\"code\":422}");
                        return;
                }
                if (!s->stored[0]) {
                        http_respond(resp, 404, "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"code\":404}");
                        return;
                }
                if (!streq(rv, want)) {
                        http_respond(resp, 409,
                                     "{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":\"Conflict\","
                                     "\"message\":\"the object has been modified\",\"code\":409}");
                        return;
                }
        } else {
                http_respond(resp, 405, "{\"kind\":\"Status\",\"code\":405}");
                return;
        }
        char rv[32];
        snprintf(rv, sizeof(rv), "%u", ++s->rv);
        if (mr_json_set_str(mr_json_ensure_object(body, "metadata", NULL), "resourceVersion", rv) < 0)
                abort(); /* not a cmocka assert: this runs on the fixture's thread */
        snprintf(s->stored, sizeof(s->stored), "%s", mr_json_compact(body));
        http_respond(resp, streq(req->method, "POST") ? 201 : 200, s->stored);
}

typedef struct Env {
        Server server;
        HttpFixture *fixture;
        KubeClient *client;
} Env;

static int env_setup(void **state)
{
        Env *e = calloc(1, sizeof(Env));
        KubeConfig config = {};
        KubeClientOptions opts = { .qps = -1, .max_retries = 1 };

        assert_non_null(e);
        assert_int_equal(http_fixture_start(lease_handler, &e->server, &e->fixture), 0);
        config.server = (char *)http_fixture_url(e->fixture);
        assert_int_equal(kube_client_new(&config, &opts, &e->client, NULL), 0);
        *state = e;
        return 0;
}

static int env_teardown(void **state)
{
        Env *e = *state;
        kube_client_free(e->client);
        http_fixture_free(e->fixture);
        free(e);
        return 0;
}

static void test_create_get_update_conflict(void **state)
{
        Env *e = *state;
        _cleanup_(kube_lease_done) KubeLease mine = {}, theirs = {}, got = {};
        KubeStatus st = {};

        assert_int_equal(kube_lease_get(e->client, "ns", "meshroll", &got, &st), -ENOENT);
        assert_int_equal(st.http_code, 404);

        mine = (KubeLease){
                .namespace = strdup("ns"),
                .name = strdup("meshroll"),
                .holder_identity = strdup("a"),
                .lease_duration_seconds = 15,
                .acquire_time = T_ACQUIRE,
                .renew_time = T_ACQUIRE,
        };
        assert_int_equal(kube_lease_update(e->client, &mine, &st), -EINVAL); /* no resourceVersion yet */
        assert_int_equal(kube_lease_create(e->client, &mine, &st), 0);
        assert_string_equal(mine.resource_version, "1");
        assert_int_equal(kube_lease_create(e->client, &mine, &st), -EEXIST); /* a create race lost */
        assert_string_equal(mine.resource_version, "1");                    /* untouched */

        assert_int_equal(kube_lease_get(e->client, "ns", "meshroll", &theirs, &st), 0);
        assert_string_equal(theirs.holder_identity, "a");
        assert_int_equal(theirs.renew_time, T_ACQUIRE);

        /* I renew; then the other copy, read before my renewal, is stale */
        mine.renew_time = T_RENEW;
        assert_int_equal(kube_lease_update(e->client, &mine, &st), 0);
        assert_string_equal(mine.resource_version, "2");
        assert_int_equal(mine.renew_time, T_RENEW);

        free(theirs.holder_identity);
        theirs.holder_identity = strdup("b");
        assert_int_equal(kube_lease_update(e->client, &theirs, &st), -MR_ECONFLICT);
        assert_int_equal(st.http_code, 409);
        assert_string_equal(theirs.resource_version, "1");
        assert_string_equal(theirs.holder_identity, "b");

        assert_int_equal(kube_lease_get(e->client, "ns", "meshroll", &got, &st), 0);
        assert_string_equal(got.holder_identity, "a");
        assert_int_equal(got.renew_time, T_RENEW);

        /* the wire: a PUT to the lease's path with its resourceVersion */
        const HttpRequest *req = http_fixture_request(e->fixture, 4);
        assert_non_null(req);
        assert_string_equal(req->method, "PUT");
        assert_string_equal(req->path, "/apis/coordination.k8s.io/v1/namespaces/ns/leases/meshroll");
        assert_non_null(strstr(req->body, "\"resourceVersion\":\"1\""));
        assert_non_null(strstr(req->body, "\"renewTime\":\"2025-01-02T03:04:35.654321Z\""));
}

static void test_bad_answer(void **state)
{
        Env *e = *state;
        _cleanup_(kube_lease_done) KubeLease got = {};
        http_fixture_lock(e->fixture);
        snprintf(e->server.stored, sizeof(e->server.stored), "{\"kind\":\"Lease\",\"metadata\":{\"name\":\"x\"},"
                                                             "\"spec\":{\"renewTime\":\"soon\"}}");
        http_fixture_unlock(e->fixture);
        assert_int_equal(kube_lease_get(e->client, "ns", "meshroll", &got, NULL), -EBADMSG);
        assert_null(got.name);
        assert_int_equal(kube_lease_get(e->client, "", "meshroll", &got, NULL), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_from_json),
                cmocka_unit_test(test_from_json_minimal),
                cmocka_unit_test(test_from_json_invalid),
                cmocka_unit_test(test_to_json_new),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test_setup_teardown(test_create_get_update_conflict, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_bad_answer, env_setup, env_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
