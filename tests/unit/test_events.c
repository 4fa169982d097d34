/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Events as a controller writes them: the object's fields (pure builder),
 * the POST the client sends and how failures come back (HTTP fixture), the
 * event-loop variant, and the round trip through the in-process simulator,
 * where the stored event is what `kubectl get events` lists.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "http-fixture.h"
#include "meshroll/events.h"
#include "meshroll/json-util.h"
#include "sim.h"

/* 2026-11-24T03:11:03Z and 250 µs */
#define NOW (UINT64_C(1795489863) * USEC_PER_SEC + 250)

static const KubeEventRef NODE = {.api_version = "v1", .kind = "Node", .name = "worker-1", .uid = "u-1"};
static const KubeEventRef ROLLOUT = {.api_version = "meshroll.io/v1alpha1",
                                     .kind = "Rollout",
                                     .name = "ztunnel-1-25",
                                     .uid = "u-2",
                                     .resource_version = "42"};
static const KubeEventRef POD = {
    .api_version = "v1", .kind = "Pod", .namespace = "shop", .name = "web-1", .uid = "u-3"};

static json_object *build_ok(const KubeEventRef *ref, const char *type, const char *message)
{
        json_object *ev = NULL;
        assert_int_equal(
            kube_event_build(ref, type, "GroupStarted", message, "meshroll", "coord-0", NOW, &ev), 0);
        assert_non_null(ev);
        return ev;
}

/* ---- the object ---------------------------------------------------------------------------- */

static void test_build_cluster_scoped(void **state)
{
        _cleanup_(json_object_putp) json_object *ev =
            build_ok(&NODE, KUBE_EVENT_NORMAL, "Cordoning worker-1");
        char name[64];
        json_object *v;

        snprintf(name, sizeof(name), "worker-1.%" PRIx64, (uint64_t)NOW * 1000);
        assert_string_equal(mr_json_get_str(ev, "apiVersion", NULL), "v1");
        assert_string_equal(mr_json_get_str(ev, "kind", NULL), "Event");
        assert_string_equal(mr_json_get_str(ev, "metadata", "name", NULL), name);
        /* a cluster-scoped object's events go to "default"; the reference carries no namespace */
        assert_string_equal(mr_json_get_str(ev, "metadata", "namespace", NULL), "default");
        assert_false(json_object_object_get_ex(mr_json_get(ev, "involvedObject", NULL), "namespace", NULL));
        assert_string_equal(mr_json_get_str(ev, "involvedObject", "apiVersion", NULL), "v1");
        assert_string_equal(mr_json_get_str(ev, "involvedObject", "kind", NULL), "Node");
        assert_string_equal(mr_json_get_str(ev, "involvedObject", "name", NULL), "worker-1");
        assert_string_equal(mr_json_get_str(ev, "involvedObject", "uid", NULL), "u-1");
        assert_false(
            json_object_object_get_ex(mr_json_get(ev, "involvedObject", NULL), "resourceVersion", NULL));
        assert_string_equal(mr_json_get_str(ev, "reason", NULL), "GroupStarted");
        assert_string_equal(mr_json_get_str(ev, "message", NULL), "Cordoning worker-1");
        assert_string_equal(mr_json_get_str(ev, "type", NULL), "Normal");
        assert_string_equal(mr_json_get_str(ev, "source", "component", NULL), "meshroll");
        assert_string_equal(mr_json_get_str(ev, "source", "host", NULL), "coord-0");
        assert_string_equal(mr_json_get_str(ev, "reportingComponent", NULL), "meshroll");
        assert_string_equal(mr_json_get_str(ev, "reportingInstance", NULL), "coord-0");
        assert_string_equal(mr_json_get_str(ev, "firstTimestamp", NULL), "2026-11-24T03:11:03Z");
        assert_string_equal(mr_json_get_str(ev, "lastTimestamp", NULL), "2026-11-24T03:11:03Z");
        int64_t count = 0;
        assert_int_equal(mr_json_get_int(&count, ev, "count", NULL), 0);
        assert_int_equal(count, 1);
        /* eventTime is present and null: the legacy validation rules apply */
        assert_true(json_object_object_get_ex(ev, "eventTime", &v));
        assert_null(v);
        assert_false(json_object_object_get_ex(ev, "action", NULL));
}

static void test_build_namespaced(void **state)
{
        _cleanup_(json_object_putp) json_object *ev = build_ok(&POD, KUBE_EVENT_WARNING, NULL);
        _cleanup_(json_object_putp) json_object *ro = build_ok(&ROLLOUT, KUBE_EVENT_NORMAL, "x");

        assert_string_equal(mr_json_get_str(ev, "metadata", "namespace", NULL), "shop");
        assert_string_equal(mr_json_get_str(ev, "involvedObject", "namespace", NULL), "shop");
        assert_string_equal(mr_json_get_str(ev, "type", NULL), "Warning");
        assert_string_equal(mr_json_get_str(ev, "message", NULL), "");
        assert_string_equal(kube_event_namespace(&POD), "shop");
        assert_string_equal(kube_event_namespace(&NODE), "default");

        /* a Rollout is cluster-scoped too; "" counts as no namespace */
        KubeEventRef r = ROLLOUT;
        r.namespace = "";
        assert_string_equal(kube_event_namespace(&r), "default");
        assert_string_equal(mr_json_get_str(ro, "metadata", "namespace", NULL), "default");
        assert_string_equal(mr_json_get_str(ro, "involvedObject", "apiVersion", NULL),
                            "meshroll.io/v1alpha1");
        assert_string_equal(mr_json_get_str(ro, "involvedObject", "resourceVersion", NULL), "42");

        /* no instance: no source.host, an empty reportingInstance */
        _cleanup_(json_object_putp) json_object *bare = NULL;
        assert_int_equal(kube_event_build(&NODE, "Normal", "R", "m", "meshroll", NULL, NOW, &bare), 0);
        assert_false(json_object_object_get_ex(mr_json_get(bare, "source", NULL), "host", NULL));
        assert_string_equal(mr_json_get_str(bare, "reportingInstance", NULL), "");
}

static void test_build_invalid(void **state)
{
        json_object *ev = NULL;
        char reason[KUBE_EVENT_REASON_MAX + 2];
        KubeEventRef r;

        assert_int_equal(kube_event_build(NULL, "Normal", "R", "m", "c", NULL, NOW, &ev), -EINVAL);
        assert_int_equal(kube_event_build(&NODE, "Info", "R", "m", "c", NULL, NOW, &ev), -EINVAL);
        assert_int_equal(kube_event_build(&NODE, NULL, "R", "m", "c", NULL, NOW, &ev), -EINVAL);
        assert_int_equal(kube_event_build(&NODE, "Normal", "", "m", "c", NULL, NOW, &ev), -EINVAL);
        assert_int_equal(kube_event_build(&NODE, "Normal", NULL, "m", "c", NULL, NOW, &ev), -EINVAL);
        assert_int_equal(kube_event_build(&NODE, "Normal", "R", "m", "", NULL, NOW, &ev), -EINVAL);
        memset(reason, 'R', sizeof(reason) - 1);
        reason[sizeof(reason) - 1] = 0;
        assert_int_equal(kube_event_build(&NODE, "Normal", reason, "m", "c", NULL, NOW, &ev), -EINVAL);
        reason[KUBE_EVENT_REASON_MAX] = 0; /* exactly the limit */
        assert_int_equal(kube_event_build(&NODE, "Normal", reason, "m", "c", NULL, NOW, &ev), 0);
        json_object_put(ev);
        ev = NULL;
        r = NODE;
        r.kind = NULL;
        assert_int_equal(kube_event_build(&r, "Normal", "R", "m", "c", NULL, NOW, &ev), -EINVAL);
        r = NODE;
        r.name = "";
        assert_int_equal(kube_event_build(&r, "Normal", "R", "m", "c", NULL, NOW, &ev), -EINVAL);
        r = NODE;
        r.api_version = NULL;
        assert_int_equal(kube_event_build(&r, "Normal", "R", "m", "c", NULL, NOW, &ev), -EINVAL);
        assert_null(ev);
}

/* The message a given input becomes. */
static size_t sent_length(const char *message)
{
        _cleanup_(json_object_putp) json_object *ev = build_ok(&NODE, KUBE_EVENT_NORMAL, message);
        json_object *m = mr_json_get(ev, "message", NULL);
        assert_memory_equal(json_object_get_string(m), message, (size_t)json_object_get_string_len(m));
        return (size_t)json_object_get_string_len(m);
}

static void test_message_truncation(void **state)
{
        char buf[2048];

        memset(buf, 'a', sizeof(buf) - 1);
        buf[sizeof(buf) - 1] = 0;
        assert_int_equal(sent_length(buf), KUBE_EVENT_MESSAGE_MAX);
        buf[KUBE_EVENT_MESSAGE_MAX] = 0;
        assert_int_equal(sent_length(buf), KUBE_EVENT_MESSAGE_MAX);

        /* "é" (2 bytes) ending exactly at the limit is kept; one byte later it is dropped whole */
        memset(buf, 'a', sizeof(buf));
        memcpy(buf + KUBE_EVENT_MESSAGE_MAX - 2, "\xc3\xa9", 2);
        buf[KUBE_EVENT_MESSAGE_MAX] = 0;
        assert_int_equal(sent_length(buf), KUBE_EVENT_MESSAGE_MAX);
        memset(buf, 'a', sizeof(buf));
        memcpy(buf + KUBE_EVENT_MESSAGE_MAX - 1, "\xc3\xa9zz", 4);
        buf[KUBE_EVENT_MESSAGE_MAX + 3] = 0;
        assert_int_equal(sent_length(buf), KUBE_EVENT_MESSAGE_MAX - 1);

        /* "€" (3 bytes) and U+1F680 (4 bytes) straddling the limit at every offset */
        static const char *const wide[] = {"\xe2\x82\xac", "\xf0\x9f\x9a\x80"};
        for (size_t w = 0; w < ELEMENTSOF(wide); w++) {
                size_t wl = strlen(wide[w]);
                for (size_t off = 1; off < wl; off++) {
                        memset(buf, 'a', sizeof(buf));
                        memcpy(buf + KUBE_EVENT_MESSAGE_MAX - off, wide[w], wl);
                        buf[KUBE_EVENT_MESSAGE_MAX - off + wl + 5] = 0;
                        assert_int_equal(sent_length(buf), KUBE_EVENT_MESSAGE_MAX - off);
                }
        }
}

static void test_long_names(void **state)
{
        char long_name[254];
        json_object *ev = NULL;

        /* 253 characters, with a '-' where the name gets cut */
        memset(long_name, 'n', sizeof(long_name) - 1);
        long_name[sizeof(long_name) - 1] = 0;
        long_name[235] = '-';
        KubeEventRef r = NODE;
        r.name = long_name;
        assert_int_equal(kube_event_build(&r, "Normal", "R", "m", "c", NULL, NOW, &ev), 0);
        const char *name = mr_json_get_str(ev, "metadata", "name", NULL);
        assert_true(strlen(name) <= 253);
        assert_memory_equal(name, long_name, 235);
        assert_int_equal(name[235], '.'); /* the '-' went: a label may not end with one */
        /* involvedObject keeps the whole name */
        assert_string_equal(mr_json_get_str(ev, "involvedObject", "name", NULL), long_name);
        json_object_put(ev);
}

/* ---- against the HTTP fixture ---------------------------------------------------------------- */

typedef struct Script {
        unsigned served;
        int codes[4];
        const char *reasons[4];
} Script;

static void script_handler(HttpFixture *f, const HttpRequest *req, HttpResponse *resp, void *userdata)
{
        Script *sc = userdata;
        unsigned i = sc->served++;
        int code = i < ELEMENTSOF(sc->codes) && sc->codes[i] ? sc->codes[i] : 201;

        if (code == 201) {
                /* echo the body, as the server returns the created object */
                http_respond(resp, 201, req->body);
                return;
        }
        http_respond_fmt(
            resp, code,
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":\"no\","
            "\"reason\":\"%s\",\"code\":%d}",
            sc->reasons[i] ? sc->reasons[i] : "", code);
}

static void no_sleep(usec_t d, void *userdata)
{
}

static KubeClient *client_for(const char *url)
{
        KubeConfig cfg = {.server = (char *)url};
        KubeClient *c = NULL;
        KubeClientOptions o = {.qps = -1, .max_retries = 2, .sleep = no_sleep};
        assert_int_equal(kube_client_new(&cfg, &o, &c, NULL), 0);
        return c;
}

static json_object *request_body(HttpFixture *f, unsigned i)
{
        const HttpRequest *req = http_fixture_request(f, i);
        assert_non_null(req);
        json_object *o = json_tokener_parse(req->body);
        assert_non_null(o);
        return o;
}

static void test_emit_posts(void **state)
{
        Script sc = {};
        HttpFixture *f;
        MrFakeClock clk;
        char host[256] = "", name[64];

        assert_int_equal(http_fixture_start(script_handler, &sc, &f), 0);
        _cleanup_(kube_client_freep) KubeClient *c = client_for(http_fixture_url(f));
        /* later than any other test's clock: names here are not bumped by earlier stamps */
        mr_fake_clock_init(&clk, 0, NOW + 3600 * USEC_PER_SEC);
        assert_int_equal(gethostname(host, sizeof(host) - 1), 0);

        assert_int_equal(
            kube_event_emit(c, &NODE, KUBE_EVENT_NORMAL, "Cordoned", "cordoned", "meshroll", &clk.clock), 0);
        assert_int_equal(
            kube_event_emit(c, &POD, KUBE_EVENT_WARNING, "Evicting", "evicting", "meshroll", &clk.clock), 0);
        assert_int_equal(
            kube_event_emit(c, &NODE, KUBE_EVENT_NORMAL, "Cordoned", "again", "meshroll", &clk.clock), 0);
        assert_int_equal(http_fixture_count(f), 3);

        const HttpRequest *req = http_fixture_request(f, 0);
        assert_string_equal(req->method, "POST");
        assert_string_equal(req->path, "/api/v1/namespaces/default/events");
        assert_string_equal(req->content_type, "application/json");
        assert_string_equal(http_fixture_request(f, 1)->path, "/api/v1/namespaces/shop/events");

        _cleanup_(json_object_putp) json_object *b0 = request_body(f, 0);
        _cleanup_(json_object_putp) json_object *b2 = request_body(f, 2);
        snprintf(name, sizeof(name), "worker-1.%" PRIx64, (uint64_t)clk.realtime * 1000);
        assert_string_equal(mr_json_get_str(b0, "metadata", "name", NULL), name);
        assert_string_equal(mr_json_get_str(b0, "reportingInstance", NULL), host);
        assert_string_equal(mr_json_get_str(b0, "source", "host", NULL), host);
        assert_string_equal(mr_json_get_str(b0, "firstTimestamp", NULL), "2026-11-24T04:11:03Z");
        /* the same object at the same instant still gets a name of its own */
        snprintf(name, sizeof(name), "worker-1.%" PRIx64, (uint64_t)clk.realtime * 1000 + 2);
        assert_string_equal(mr_json_get_str(b2, "metadata", "name", NULL), name);
        assert_string_equal(mr_json_get_str(b2, "message", NULL), "again");

        /* bad arguments never reach the server */
        assert_int_equal(kube_event_emit(c, &NODE, "Loud", "R", "m", "meshroll", NULL), -EINVAL);
        assert_int_equal(kube_event_emit(NULL, &NODE, "Normal", "R", "m", "meshroll", NULL), -EINVAL);
        assert_int_equal(http_fixture_count(f), 3);
        http_fixture_free(f);
}

static void test_emit_errors(void **state)
{
        static const struct {
                int code;
                const char *reason;
                int want;
        } cases[] = {
            {403, "Forbidden", -MR_EFORBIDDEN},
            {404, "NotFound", -ENOENT},
            {422, "Invalid", -MR_EINVALID},
            {401, "Unauthorized", -MR_EUNAUTHORIZED},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Script sc = {.codes = {cases[i].code}, .reasons = {cases[i].reason}};
                HttpFixture *f;
                assert_int_equal(http_fixture_start(script_handler, &sc, &f), 0);
                KubeClient *c = client_for(http_fixture_url(f));
                assert_int_equal(kube_event_emit(c, &NODE, "Normal", "R", "m", "meshroll", NULL),
                                 cases[i].want);
                assert_int_equal(http_fixture_count(f), 1); /* a 4xx is final */
                kube_client_free(c);
                http_fixture_free(f);
        }
}

static void test_emit_name_taken(void **state)
{
        HttpFixture *f;

        /* 409 AlreadyExists: retried once with generateName, which succeeds */
        Script sc = {.codes = {409}, .reasons = {"AlreadyExists"}};
        assert_int_equal(http_fixture_start(script_handler, &sc, &f), 0);
        KubeClient *c = client_for(http_fixture_url(f));
        assert_int_equal(kube_event_emit(c, &ROLLOUT, "Normal", "R", "m", "meshroll", NULL), 0);
        assert_int_equal(http_fixture_count(f), 2);
        _cleanup_(json_object_putp) json_object *first = request_body(f, 0);
        _cleanup_(json_object_putp) json_object *second = request_body(f, 1);
        assert_non_null(startswith(mr_json_get_str(first, "metadata", "name", NULL), "ztunnel-1-25."));
        assert_null(mr_json_get(second, "metadata", "name", NULL));
        assert_string_equal(mr_json_get_str(second, "metadata", "generateName", NULL), "ztunnel-1-25.");
        assert_string_equal(mr_json_get_str(second, "reason", NULL), "R");
        kube_client_free(c);
        http_fixture_free(f);

        /* taken twice: the error comes back */
        Script sc2 = {.codes = {409, 409}, .reasons = {"AlreadyExists", "AlreadyExists"}};
        assert_int_equal(http_fixture_start(script_handler, &sc2, &f), 0);
        c = client_for(http_fixture_url(f));
        assert_int_equal(kube_event_emit(c, &ROLLOUT, "Normal", "R", "m", "meshroll", NULL), -EEXIST);
        assert_int_equal(http_fixture_count(f), 2);
        kube_client_free(c);
        http_fixture_free(f);

        /* a 409 Conflict is not a name clash: no second attempt */
        Script sc3 = {.codes = {409}, .reasons = {"Conflict"}};
        assert_int_equal(http_fixture_start(script_handler, &sc3, &f), 0);
        c = client_for(http_fixture_url(f));
        assert_int_equal(kube_event_emit(c, &ROLLOUT, "Normal", "R", "m", "meshroll", NULL), -MR_ECONFLICT);
        assert_int_equal(http_fixture_count(f), 1);
        kube_client_free(c);
        http_fixture_free(f);
}

typedef struct Result {
        unsigned calls;
        int error;
        char name[300];
} Result;

static void on_result(KubeClient *c, int error, json_object *body, const KubeStatus *status, void *userdata)
{
        Result *r = userdata;
        r->calls++;
        r->error = error;
        snprintf(r->name, sizeof(r->name), "%s", strempty(mr_json_get_str(body, "metadata", "name", NULL)));
}

static void run_until(sd_event *e, bool (*done)(void *), void *userdata)
{
        usec_t end = mr_now_monotonic(NULL) + 5 * USEC_PER_SEC;
        while (!done(userdata) && mr_now_monotonic(NULL) < end)
                assert_true(sd_event_run(e, 10 * USEC_PER_MSEC) >= 0);
        assert_true(done(userdata));
}

static bool result_done(void *userdata)
{
        return ((Result *)userdata)->calls > 0;
}

typedef struct Served {
        HttpFixture *fixture;
        unsigned want;
} Served;

static bool fixture_served(void *userdata)
{
        Served *sv = userdata;
        return http_fixture_count(sv->fixture) >= sv->want;
}

static void test_emit_async(void **state)
{
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        Script sc = {.codes = {201, 403}, .reasons = {NULL, "Forbidden"}};
        Result ok = {}, denied = {};
        HttpFixture *f;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(http_fixture_start(script_handler, &sc, &f), 0);
        KubeClient *c = client_for(http_fixture_url(f));

        /* no loop attached yet */
        assert_int_equal(
            kube_event_emit_async(c, &NODE, "Normal", "R", "m", "meshroll", NULL, on_result, &ok), -ENXIO);
        assert_int_equal(kube_client_attach_event(c, e), 0);
        assert_int_equal(kube_event_emit_async(c, &NODE, "Info", "R", "m", "meshroll", NULL, on_result, &ok),
                         -EINVAL);

        assert_int_equal(
            kube_event_emit_async(c, &NODE, "Normal", "Cordoned", "m", "meshroll", NULL, on_result, &ok), 0);
        assert_int_equal(ok.calls, 0); /* never called from inside */
        run_until(e, result_done, &ok);
        assert_int_equal(ok.error, 0);
        assert_non_null(startswith(ok.name, "worker-1."));

        assert_int_equal(
            kube_event_emit_async(c, &POD, "Warning", "R", "m", "meshroll", NULL, on_result, &denied), 0);
        run_until(e, result_done, &denied);
        assert_int_equal(denied.error, -MR_EFORBIDDEN);

        /* fire and forget */
        assert_int_equal(http_fixture_count(f), 2);
        assert_int_equal(
            kube_event_emit_async(c, &ROLLOUT, "Normal", "R", "m", "meshroll", NULL, NULL, NULL), 0);
        run_until(e, fixture_served, &(Served){.fixture = f, .want = 3});
        _cleanup_(json_object_putp) json_object *b = request_body(f, 2);
        assert_string_equal(mr_json_get_str(b, "involvedObject", "kind", NULL), "Rollout");
        /* let the answer arrive and be dropped */
        for (unsigned i = 0; i < 20; i++)
                assert_true(sd_event_run(e, 10 * USEC_PER_MSEC) >= 0);

        /* a call still in flight when the client goes is cancelled without a callback (and without a leak)
         */
        Result late = {};
        assert_int_equal(
            kube_event_emit_async(c, &NODE, "Normal", "R", "m", "meshroll", NULL, on_result, &late), 0);
        kube_client_free(c);
        assert_int_equal(late.calls, 0);
        http_fixture_free(f);
}

/* ---- against the simulator ------------------------------------------------------------------- */

static const char scenario[] = "name: events-test\n"
                               "nodes:\n"
                               "  - {name: \"worker-{i}\", count: 1, pool: a, zone: zone-a}\n"
                               "namespaces:\n"
                               "  - {name: shop}\n";

typedef struct Found {
        const char *reason;
        json_object *event; /* owned copy */
        unsigned n;
} Found;

static int find_reason(json_object *obj, void *userdata)
{
        Found *f = userdata;
        if (!streq_ptr(mr_json_get_str(obj, "reason", NULL), f->reason))
                return 0;
        f->n++;
        json_object_put(f->event);
        f->event = mr_json_copy(obj);
        return 0;
}

/* The events with this reason in ns, as the store holds them (a copy of the last). */
static Found stored(Sim *sim, const char *ns, const char *reason)
{
        Found f = {.reason = reason};
        SimStore *s = sim_get_store(sim);
        sim_store_lock(s);
        assert_true(sim_store_foreach(s, &SIM_EVENTS, ns, find_reason, &f) >= 0);
        sim_store_unlock(s);
        return f;
}

static void test_sim_round_trip(void **state)
{
        SimOptions so = {.scenario_data = scenario, .scenario_size = strlen(scenario)};
        MrError err = {};
        Sim *sim = NULL;

        if (sim_start(&so, &sim, &err) < 0)
                fail_msg("sim_start: %s", err.message);
        _cleanup_(kube_client_freep) KubeClient *c = client_for(sim_url(sim));

        KubeEventRef node = {.api_version = "v1", .kind = "Node", .name = "worker-1"};
        KubeEventRef pod = {.api_version = "v1", .kind = "Pod", .namespace = "shop", .name = "web-1"};
        assert_int_equal(kube_event_emit(c, &node, KUBE_EVENT_NORMAL, "GroupCordoned",
                                         "worker-1 cordoned for ztunnel-1-25/canary", "meshroll", NULL),
                         0);
        assert_int_equal(
            kube_event_emit(c, &pod, KUBE_EVENT_WARNING, "EvictionBlocked", "PDB web", "meshroll", NULL), 0);
        /* a namespace that does not exist: the server's 404 */
        KubeEventRef ghost = {.api_version = "v1", .kind = "Pod", .namespace = "nowhere", .name = "p"};
        int r = kube_event_emit(c, &ghost, KUBE_EVENT_NORMAL, "R", "m", "meshroll", NULL);
        assert_int_equal(r, -ENOENT);

        Found n = stored(sim, "default", "GroupCordoned");
        assert_int_equal(n.n, 1);
        assert_string_equal(mr_json_get_str(n.event, "involvedObject", "name", NULL), "worker-1");
        assert_string_equal(mr_json_get_str(n.event, "message", NULL),
                            "worker-1 cordoned for ztunnel-1-25/canary");
        assert_non_null(mr_json_get_str(n.event, "metadata", "uid", NULL));
        assert_non_null(mr_json_get_str(n.event, "metadata", "resourceVersion", NULL));
        Found p = stored(sim, "shop", "EvictionBlocked");
        assert_int_equal(p.n, 1);
        assert_string_equal(mr_json_get_str(p.event, "type", NULL), "Warning");

        /* what `kubectl get events` prints: the server-side table row */
        _cleanup_free_ char *table = NULL;
        SimStore *s = sim_get_store(sim);
        assert_int_equal(
            sim_table_render(s, &SIM_EVENTS, &n.event, 1, "1", NULL, "None", sim_store_now(s), &table), 0);
        _cleanup_(json_object_putp) json_object *t = json_tokener_parse(table);
        json_object *cells =
            mr_json_get(json_object_array_get_idx(mr_json_get(t, "rows", NULL), 0), "cells", NULL);
        assert_string_equal(json_object_get_string(json_object_array_get_idx(cells, 1)), "Normal");
        assert_string_equal(json_object_get_string(json_object_array_get_idx(cells, 2)), "GroupCordoned");
        assert_string_equal(json_object_get_string(json_object_array_get_idx(cells, 3)), "node/worker-1");

        /* and through the API, with the field selector `kubectl describe node` uses */
        _cleanup_(json_object_putp) json_object *items = NULL;
        KubeListOptions lo = {.field_selector = "involvedObject.kind=Node,involvedObject.name=worker-1"};
        assert_int_equal(kube_list(c, &KUBE_EVENTS, "default", &lo, &items, NULL, NULL), 0);
        assert_int_equal(json_object_array_length(items), 1);
        assert_string_equal(mr_json_get_str(json_object_array_get_idx(items, 0), "reason", NULL),
                            "GroupCordoned");

        json_object_put(n.event);
        json_object_put(p.event);
        sim_stop(sim);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_build_cluster_scoped), cmocka_unit_test(test_build_namespaced),
            cmocka_unit_test(test_build_invalid),        cmocka_unit_test(test_message_truncation),
            cmocka_unit_test(test_long_names),           cmocka_unit_test(test_emit_posts),
            cmocka_unit_test(test_emit_errors),          cmocka_unit_test(test_emit_name_taken),
            cmocka_unit_test(test_emit_async),           cmocka_unit_test(test_sim_round_trip),
        };
        return cmocka_run_group_tests_name(TEST_NAME, tests, NULL, NULL);
}
