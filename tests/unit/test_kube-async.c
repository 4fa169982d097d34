/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client on an sd-event loop: requests in flight together, retries
 * through timers, cancellation. Real time, with millisecond backoffs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include "http-fixture.h"
#include "meshroll/kube.h"

typedef struct Result {
        unsigned calls;
        int error;
        int http_code;
        char name[64];
} Result;

static void on_result(KubeClient *c, int error, json_object *body, const KubeStatus *status, void *userdata)
{
        Result *r = userdata;
        r->calls++;
        r->error = error;
        r->http_code = status ? status->http_code : -1;
        const char *n = mr_json_get_str(body, "name", NULL);
        snprintf(r->name, sizeof(r->name), "%s", n ? n : "");
}

static KubeClient *client_for(const char *url, sd_event *e)
{
        KubeConfig cfg = { .server = (char *)url };
        KubeClient *c = NULL;
        KubeClientOptions o = { .qps = -1, .max_retries = 3, .backoff_base = USEC_PER_MSEC,
                                .backoff_cap = 5 * USEC_PER_MSEC };
        assert_int_equal(kube_client_new(&cfg, &o, &c, NULL), 0);
        assert_int_equal(kube_client_attach_event(c, e), 0);
        return c;
}

/* Runs the loop until *done reaches want or the deadline passes. */
static void run_until(sd_event *e, const unsigned *done, unsigned want, usec_t max)
{
        usec_t end = mr_now_monotonic(NULL) + max;
        while (*done < want && mr_now_monotonic(NULL) < end)
                assert_true(sd_event_run(e, 10 * USEC_PER_MSEC) >= 0);
}

static void slow_handler(HttpFixture *f, const HttpRequest *req, HttpResponse *resp, void *userdata)
{
        unsigned delay = userdata ? *(unsigned *)userdata : 150;
        char body[128];
        snprintf(body, sizeof(body), "{\"name\":\"%s\"}", req->path + 1);
        resp->status = 200;
        http_respond_chunk(resp, delay, body); /* sent after a pause, outside the fixture's lock */
}

static void test_in_flight_together(void **state)
{
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        HttpFixture *f;
        Result res[5] = {};
        unsigned done = 0;
        assert_int_equal(sd_event_new(&e), 0);
        unsigned delay = 1000; /* each answer waits a second: every request arrives long before */
        unsigned seen_at_first = 0;
        assert_int_equal(http_fixture_start(slow_handler, &delay, &f), 0);
        KubeClient *c = client_for(http_fixture_url(f), e);

        /* without an event loop there is no async */
        KubeConfig cfg = { .server = (char *)http_fixture_url(f) };
        _cleanup_(kube_client_freep) KubeClient *plain = NULL;
        assert_int_equal(kube_client_new(&cfg, NULL, &plain, NULL), 0);
        assert_int_equal(kube_request_async(plain, &(KubeRequest){ .method = "GET", .path = "/x" }, on_result, res, NULL),
                         -ENXIO);

        usec_t start = mr_now_monotonic(NULL);
        for (unsigned i = 0; i < ELEMENTSOF(res); i++) {
                char path[16];
                snprintf(path, sizeof(path), "/r%u", i);
                assert_int_equal(kube_request_async(c, &(KubeRequest){ .method = "GET", .path = path }, on_result,
                                                    &res[i], NULL),
                                 0);
        }
        /* the callback never runs inside kube_request_async */
        for (unsigned i = 0; i < ELEMENTSOF(res); i++)
                assert_int_equal(res[i].calls, 0);
        for (;;) {
                done = 0;
                for (unsigned i = 0; i < ELEMENTSOF(res); i++)
                        done += res[i].calls;
                if (done > 0 && seen_at_first == 0)
                        seen_at_first = http_fixture_count(f);
                if (done == ELEMENTSOF(res) || mr_now_monotonic(NULL) - start > 20 * USEC_PER_SEC)
                        break;
                assert_true(sd_event_run(e, 10 * USEC_PER_MSEC) >= 0);
        }
        for (unsigned i = 0; i < ELEMENTSOF(res); i++) {
                char name[16];
                snprintf(name, sizeof(name), "r%u", i);
                assert_int_equal(res[i].calls, 1);
                assert_int_equal(res[i].error, 0);
                assert_string_equal(res[i].name, name);
        }
        /* in flight together: the server had every request before it answered the first (one at a time: 1) */
        assert_int_equal(seen_at_first, ELEMENTSOF(res));
        kube_client_free(c);
        http_fixture_free(f);
}

typedef struct Script {
        unsigned served;
        int codes[8];
} Script;

static void script_handler(HttpFixture *f, const HttpRequest *req, HttpResponse *resp, void *userdata)
{
        Script *sc = userdata;
        unsigned i = sc->served++;
        int code = i < ELEMENTSOF(sc->codes) && sc->codes[i] ? sc->codes[i] : 200;
        if (code == 200)
                http_respond(resp, 200, "{\"name\":\"ok\"}");
        else
                http_respond_fmt(resp, code, "{\"kind\":\"Status\",\"reason\":\"X\",\"code\":%d}", code);
}

static void test_retries(void **state)
{
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        HttpFixture *f;
        Script sc = { .codes = { 503, 429, 0 } };
        Result r = {};
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(http_fixture_start(script_handler, &sc, &f), 0);
        KubeClient *c = client_for(http_fixture_url(f), e);

        assert_int_equal(kube_request_async(c, &(KubeRequest){ .method = "GET", .path = "/x" }, on_result, &r, NULL), 0);
        run_until(e, &r.calls, 1, 5 * USEC_PER_SEC);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.error, 0);
        assert_string_equal(r.name, "ok");
        assert_int_equal(http_fixture_count(f), 3);

        /* 404: not retried, status handed over */
        sc = (Script){ .codes = { 404, 0 } };
        r = (Result){};
        assert_int_equal(kube_request_async(c, &(KubeRequest){ .method = "GET", .path = "/x" }, on_result, &r, NULL), 0);
        run_until(e, &r.calls, 1, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, -ENOENT);
        assert_int_equal(r.http_code, 404);
        assert_int_equal(http_fixture_count(f), 4);

        /* POST on 500: not retried */
        sc = (Script){ .codes = { 500, 0 } };
        r = (Result){};
        _cleanup_(json_object_putp) json_object *body = json_object_new_object();
        assert_int_equal(kube_request_async(c, &(KubeRequest){ .method = "POST", .path = "/x", .body = body },
                                            on_result, &r, NULL),
                         0);
        run_until(e, &r.calls, 1, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, -EIO);
        assert_int_equal(http_fixture_count(f), 5);
        assert_string_equal(http_fixture_request(f, 4)->body, "{}");

        /* attempts run out */
        sc = (Script){ .codes = { 503, 503, 503, 503, 503, 503 } };
        r = (Result){};
        assert_int_equal(kube_request_async(c, &(KubeRequest){ .method = "PUT", .path = "/x", .body = body }, on_result,
                                            &r, NULL),
                         0);
        run_until(e, &r.calls, 1, 5 * USEC_PER_SEC);
        assert_int_equal(r.error, -EIO);
        assert_int_equal(http_fixture_count(f), 5 + 4);

        kube_client_free(c);
        http_fixture_free(f);
}

typedef struct Guard {
        bool lost;
        unsigned calls;
        char last[64];
} Guard;

static int guard(const char *method, const char *path, void *userdata)
{
        Guard *g = userdata;
        g->calls++;
        snprintf(g->last, sizeof(g->last), "%s %s", method, path);
        return g->lost ? -MR_ELOSTLEASE : 0;
}

/*
 * Fencing in the client: writes pass the guard just before they are sent,
 * reads never ask it; a write queued while leading but sent after the
 * lease was lost never reaches the server.
 */
static void test_write_guard(void **state)
{
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(json_object_putp) json_object *body = json_object_new_object();
        HttpFixture *f;
        Script sc = { .codes = { 0 } };
        Guard g = {};
        Result r = {};
        KubeStatus st;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(http_fixture_start(script_handler, &sc, &f), 0);
        KubeClient *c = client_for(http_fixture_url(f), e);
        kube_client_set_write_guard(c, guard, &g);

        /* blocking: GET unguarded, POST asked and allowed, then refused once lost (and not retried) */
        assert_int_equal(kube_get(c, "/r", NULL, &st), 0);
        assert_int_equal(g.calls, 0);
        assert_int_equal(kube_create(c, "/w", body, NULL, &st), 0);
        assert_int_equal(g.calls, 1);
        assert_string_equal(g.last, "POST /w");
        assert_int_equal(http_fixture_count(f), 2);
        g.lost = true;
        assert_int_equal(kube_patch(c, "/w", KUBE_PATCH_MERGE, body, NULL, &st), -MR_ELOSTLEASE);
        assert_non_null(strstr(st.message, "not sent"));
        assert_int_equal(http_fixture_count(f), 2);

        /* async: queued while leading, the lease lost before the loop sends it */
        g.lost = false;
        assert_int_equal(kube_request_async(c, &(KubeRequest){ .method = "POST", .path = "/events", .body = body },
                                            on_result, &r, NULL),
                         0);
        g.lost = true;
        run_until(e, &r.calls, 1, 5 * USEC_PER_SEC);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.error, -MR_ELOSTLEASE);
        assert_int_equal(http_fixture_count(f), 2);

        /* guard removed: writes flow again */
        kube_client_set_write_guard(c, NULL, NULL);
        assert_int_equal(kube_replace(c, "/w", body, NULL, &st), 0);
        assert_int_equal(http_fixture_count(f), 3);

        kube_client_free(c);
        http_fixture_free(f);
}

static void test_cancel(void **state)
{
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        HttpFixture *f;
        Result r1 = {}, r2 = {}, r3 = {};
        unsigned delay = 300;
        KubeCall *call1, *call2;
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(http_fixture_start(slow_handler, &delay, &f), 0);
        KubeClient *c = client_for(http_fixture_url(f), e);

        /* cancelled before it even started */
        assert_int_equal(kube_request_async(c, &(KubeRequest){ .method = "GET", .path = "/a" }, on_result, &r1, &call1), 0);
        assert_null(kube_call_cancel(call1));
        /* cancelled while the answer is on its way */
        assert_int_equal(kube_request_async(c, &(KubeRequest){ .method = "GET", .path = "/b" }, on_result, &r2, &call2), 0);
        assert_int_equal(kube_request_async(c, &(KubeRequest){ .method = "GET", .path = "/c" }, on_result, &r3, NULL), 0);
        unsigned never = 0;
        run_until(e, &never, 1, 100 * USEC_PER_MSEC);
        assert_int_equal(http_fixture_count(f), 2);
        assert_null(kube_call_cancel(call2));

        run_until(e, &r3.calls, 1, 5 * USEC_PER_SEC);
        run_until(e, &never, 1, 100 * USEC_PER_MSEC);
        assert_int_equal(r1.calls, 0);
        assert_int_equal(r2.calls, 0);
        assert_int_equal(r3.calls, 1);
        assert_string_equal(r3.name, "c");

        /* freeing the client with a call pending cancels it silently */
        assert_int_equal(kube_request_async(c, &(KubeRequest){ .method = "GET", .path = "/d" }, on_result, &r1, NULL), 0);
        run_until(e, &never, 1, 50 * USEC_PER_MSEC);
        kube_client_free(c);
        assert_int_equal(r1.calls, 0);
        http_fixture_free(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_in_flight_together),
                cmocka_unit_test(test_retries),
                cmocka_unit_test(test_cancel),
                cmocka_unit_test(test_write_guard),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
