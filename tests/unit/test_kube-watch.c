/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The informer-style watch against the HTTP fixture: the list, a stream
 * split at awkward points, bookmarks, reconnects from the last
 * resourceVersion, 410 in both shapes, a stream broken mid-way, and the
 * handler stopping the watch (by error and by kube_watch_stop from inside).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include "http-fixture.h"
#include "meshroll/kube.h"

#define MAX_CONN 8

/* One watch connection the server will serve: chunks, then how it ends. */
typedef struct Conn {
        const char *chunks[8];
        int http_status;        /* 0 → 200 stream */
        bool end_with_error;
        unsigned hold_ms;
} Conn;

typedef struct Server {
        unsigned lists, watches;
        const char *list_pages[3]; /* bodies by page: 1st without continue, then continue=p2, p3 */
        const char *list_after_410; /* the list body served after the first list */
        Conn conns[MAX_CONN];
        char watch_rv[MAX_CONN][32]; /* resourceVersion each watch asked for */
        char watch_query[MAX_CONN][256];
} Server;

static void handler(HttpFixture *f, const HttpRequest *req, HttpResponse *resp, void *userdata)
{
        Server *s = userdata;
        const char *watch = http_request_arg(req, "watch");

        if (!watch) {
                const char *cont = http_request_arg(req, "continue");
                unsigned page = cont ? (unsigned)(cont[1] - '1') : 0;
                s->lists++;
                if (!cont && s->lists > 1 && s->list_after_410)
                        http_respond(resp, 200, s->list_after_410);
                else
                        http_respond(resp, 200, s->list_pages[page < 3 ? page : 0]);
                return;
        }
        unsigned i = s->watches++;
        if (i >= MAX_CONN) {
                resp->status = 200;
                resp->hold_ms = 2000;
                return;
        }
        const char *rv = http_request_arg(req, "resourceVersion");
        snprintf(s->watch_rv[i], sizeof(s->watch_rv[i]), "%s", rv ? rv : "");
        snprintf(s->watch_query[i], sizeof(s->watch_query[i]), "%s", req->query);
        Conn *c = &s->conns[i];
        if (c->http_status) {
                http_respond_fmt(resp, c->http_status, "{\"kind\":\"Status\",\"reason\":\"Expired\",\"code\":%d}",
                                 c->http_status);
                return;
        }
        resp->status = 200;
        for (unsigned k = 0; k < ELEMENTSOF(c->chunks) && c->chunks[k]; k++)
                http_respond_chunk(resp, 15, c->chunks[k]);
        resp->end_with_error = c->end_with_error;
        resp->hold_ms = c->hold_ms ? c->hold_ms : 20;
}

typedef struct Seen {
        char log[2048];
        unsigned events, stops;
        int stop_error;
        int fail_on;           /* the handler returns -EIO on this event type (or -1) */
        bool stop_inside_on;   /* the handler calls kube_watch_stop on a MODIFIED */
        KubeWatch *w;
} Seen;

static int on_event(KubeWatch *w, KubeWatchEventType type, json_object *object, void *userdata)
{
        Seen *s = userdata;
        const char *name = mr_json_get_str(object, "metadata", "name", NULL);
        size_t l = strlen(s->log);
        snprintf(s->log + l, sizeof(s->log) - l, "%s%s%s%s", l ? " " : "", kube_watch_event_type_to_string(type),
                 name ? ":" : "", name ? name : "");
        s->events++;
        if ((int)type == s->fail_on)
                return -EIO;
        if (s->stop_inside_on && type == KUBE_WATCH_MODIFIED) {
                assert_null(kube_watch_stop(w));
                s->w = NULL;
        }
        return 0;
}

static void on_stop(KubeWatch *w, int error, void *userdata)
{
        Seen *s = userdata;
        s->stops++;
        s->stop_error = error;
}

typedef struct Env {
        sd_event *e;
        HttpFixture *f;
        KubeClient *c;
        Server srv;
        Seen seen;
} Env;

static void env_start(Env *env)
{
        env->seen.fail_on = -1;
        assert_int_equal(sd_event_new(&env->e), 0);
        assert_int_equal(http_fixture_start(handler, &env->srv, &env->f), 0);
        KubeConfig cfg = { .server = (char *)http_fixture_url(env->f) };
        KubeClientOptions o = { .qps = -1, .backoff_base = 5 * USEC_PER_MSEC, .backoff_cap = 20 * USEC_PER_MSEC };
        assert_int_equal(kube_client_new(&cfg, &o, &env->c, NULL), 0);
        assert_int_equal(kube_client_attach_event(env->c, env->e), 0);
}

static void env_stop(Env *env)
{
        kube_client_free(env->c);
        http_fixture_free(env->f);
        sd_event_unref(env->e);
}

static KubeWatch *watch(Env *env, const char *rv)
{
        KubeWatch *w = NULL;
        KubeWatchOptions o = { .resource = &KUBE_PODS, .ns = "shop", .label_selector = "app=web",
                               .resource_version = rv, .timeout_seconds = 60 };
        assert_int_equal(kube_watch_start(env->c, &o, on_event, on_stop, &env->seen, &w), 0);
        env->seen.w = w;
        return w;
}

/* Runs the loop until the server has seen n watch connections (or max), then 150 ms more. */
static void run_until_watches_max(Env *env, unsigned n, usec_t max)
{
        usec_t end = mr_now_monotonic(NULL) + max;
        while (mr_now_monotonic(NULL) < end) {
                http_fixture_lock(env->f);
                unsigned w = env->srv.watches;
                http_fixture_unlock(env->f);
                if (w >= n)
                        break;
                assert_true(sd_event_run(env->e, 10 * USEC_PER_MSEC) >= 0);
        }
        /* let what that connection carries arrive */
        usec_t settle = mr_now_monotonic(NULL) + 150 * USEC_PER_MSEC;
        while (mr_now_monotonic(NULL) < settle)
                assert_true(sd_event_run(env->e, 10 * USEC_PER_MSEC) >= 0);
}

static void run_until_watches(Env *env, unsigned n)
{
        run_until_watches_max(env, n, 5 * USEC_PER_SEC);
}

#define POD(type, name, rv)                                                                                       \
        "{\"type\":\"" type "\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"" name                     \
        "\",\"resourceVersion\":\"" rv "\"}}}\n"

static const char *PAGE1 = "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"10\",\"continue\":\"p2\"},"
                           "\"items\":[{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"3\"}},"
                           "{\"metadata\":{\"name\":\"b\",\"resourceVersion\":\"5\"}}]}";
static const char *PAGE2 = "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"10\"},"
                           "\"items\":[{\"metadata\":{\"name\":\"c\",\"resourceVersion\":\"9\"}}]}";

static void test_list_stream_bookmark_reconnect(void **state)
{
        Env env = {};
        env.srv.list_pages[0] = PAGE1;
        env.srv.list_pages[1] = PAGE2;
        /* connection 1: events split mid-token and mid-line, a bookmark, then a clean end */
        env.srv.conns[0] = (Conn){ .chunks = {
                "{\"type\":\"ADDED\",\"obj",
                "ect\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"d\",\"resourceVersion\":\"11\"}}}\n{\"type\":\"MODI",
                "FIED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"12\"}}}\n"
                POD("DELETED", "b", "13"),
                "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"resourceVersion\":\"20\"}}}\n",
        } };
        env.srv.conns[1] = (Conn){ .hold_ms = 3000 };
        env_start(&env);
        KubeWatch *w = watch(&env, NULL);

        run_until_watches(&env, 2);
        assert_string_equal(env.seen.log, "RESET ADDED:a ADDED:b ADDED:c SYNCED ADDED:d MODIFIED:a DELETED:b BOOKMARK");
        assert_int_equal(env.srv.lists, 2);
        assert_string_equal(env.srv.watch_rv[0], "10"); /* from the list */
        assert_string_equal(env.srv.watch_rv[1], "20"); /* the bookmark advanced it */
        assert_non_null(strstr(env.srv.watch_query[0], "watch=true"));
        assert_non_null(strstr(env.srv.watch_query[0], "allowWatchBookmarks=true"));
        assert_non_null(strstr(env.srv.watch_query[0], "timeoutSeconds=60"));
        assert_non_null(strstr(env.srv.watch_query[0], "labelSelector=app=web"));
        assert_string_equal(kube_watch_resource_version(w), "20");
        assert_string_equal(http_fixture_request(env.f, 0)->path, "/api/v1/namespaces/shop/pods");

        assert_null(kube_watch_stop(w));
        assert_int_equal(env.seen.stops, 1);
        assert_int_equal(env.seen.stop_error, 0);
        env_stop(&env);
}

/* deliver_pages: the list reaches the handler page by page — the first page before the second is asked for. */
static Env *paged_env;
static unsigned lists_at_first_item;

static int on_paged_event(KubeWatch *w, KubeWatchEventType type, json_object *object, void *userdata)
{
        if (type == KUBE_WATCH_ADDED && streq_ptr(mr_json_get_str(object, "metadata", "name", NULL), "a")) {
                http_fixture_lock(paged_env->f);
                lists_at_first_item = paged_env->srv.lists;
                http_fixture_unlock(paged_env->f);
                assert_string_equal(kube_watch_resource_version(w), "10"); /* the list's, from its first page */
        }
        return on_event(w, type, object, userdata);
}

static void test_deliver_pages(void **state)
{
        Env env = {};
        env.srv.list_pages[0] = PAGE1;
        env.srv.list_pages[1] = PAGE2;
        env.srv.conns[0] = (Conn){ .chunks = { POD("ADDED", "d", "11") }, .hold_ms = 3000 };
        env_start(&env);
        paged_env = &env;
        KubeWatch *w = NULL;
        KubeWatchOptions o = { .resource = &KUBE_PODS, .ns = "shop", .timeout_seconds = 60, .deliver_pages = true };
        assert_int_equal(kube_watch_start(env.c, &o, on_paged_event, on_stop, &env.seen, &w), 0);

        run_until_watches(&env, 1);
        assert_string_equal(env.seen.log, "RESET ADDED:a ADDED:b ADDED:c SYNCED ADDED:d");
        assert_int_equal(lists_at_first_item, 1); /* page 2 not asked for yet */
        assert_int_equal(env.srv.lists, 2);
        assert_string_equal(env.srv.watch_rv[0], "10");
        assert_null(kube_watch_stop(w));
        env_stop(&env);
}

static void test_410_event_relists(void **state)
{
        Env env = {};
        env.srv.list_pages[0] = PAGE2;
        env.srv.list_after_410 = "{\"metadata\":{\"resourceVersion\":\"50\"},\"items\":[{\"metadata\":{\"name\":\"z\"}}]}";
        env.srv.conns[0] = (Conn){ .chunks = {
                POD("ADDED", "d", "11"),
                "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"too old "
                "resource version: 11 (40)\",\"reason\":\"Expired\",\"code\":410}}\n",
        }, .hold_ms = 2000 };
        env.srv.conns[1] = (Conn){ .http_status = 410 };
        env.srv.conns[2] = (Conn){ .hold_ms = 3000 };
        env_start(&env);
        watch(&env, NULL);

        run_until_watches(&env, 3);
        /* ERROR 410 in the stream → relist; HTTP 410 on the watch → relist again */
        assert_string_equal(env.seen.log, "RESET ADDED:c SYNCED ADDED:d RESET ADDED:z SYNCED RESET ADDED:z SYNCED");
        assert_int_equal(env.srv.lists, 3);
        assert_string_equal(env.srv.watch_rv[0], "10");
        assert_string_equal(env.srv.watch_rv[1], "50");
        assert_string_equal(env.srv.watch_rv[2], "50");
        assert_int_equal(env.seen.stops, 0);
        env_stop(&env); /* frees the live watch without callbacks */
        assert_int_equal(env.seen.stops, 0);
}

static void test_dropped_mid_stream(void **state)
{
        Env env = {};
        env.srv.conns[0] = (Conn){ .chunks = { POD("ADDED", "d", "31"), "{\"type\":\"MODIFIED\",\"object\":{\"kin" },
                                   .end_with_error = true };
        env.srv.conns[1] = (Conn){ .chunks = { "this is not json\n" } };
        env.srv.conns[2] = (Conn){ .chunks = { POD("MODIFIED", "d", "32") }, .hold_ms = 3000 };
        env_start(&env);
        KubeWatch *w = watch(&env, "30"); /* start from a known RV: no list */

        run_until_watches(&env, 3);
        assert_int_equal(env.srv.lists, 0);
        assert_string_equal(env.seen.log, "ADDED:d MODIFIED:d");
        assert_string_equal(env.srv.watch_rv[0], "30");
        assert_string_equal(env.srv.watch_rv[1], "31"); /* the half event was dropped */
        assert_string_equal(env.srv.watch_rv[2], "31"); /* the garbage line delivered nothing */
        assert_string_equal(kube_watch_resource_version(w), "32");
        kube_watch_stop(w);
        env_stop(&env);
}

static void test_handler_error_stops(void **state)
{
        Env env = {};
        env.srv.conns[0] = (Conn){ .chunks = { POD("ADDED", "d", "31") POD("MODIFIED", "d", "32") POD("MODIFIED", "d", "33") },
                                   .hold_ms = 500 };
        env_start(&env);
        env.seen.fail_on = KUBE_WATCH_MODIFIED;
        KubeWatch *w = watch(&env, "30");

        run_until_watches(&env, 1);
        run_until_watches_max(&env, 2, 400 * USEC_PER_MSEC); /* a chance to (wrongly) reconnect */
        assert_string_equal(env.seen.log, "ADDED:d MODIFIED:d");
        assert_int_equal(env.seen.stops, 1);
        assert_int_equal(env.seen.stop_error, -EIO);
        assert_int_equal(env.srv.watches, 1);
        /* idle but allocated; stopping it frees it without a second on_stop */
        kube_watch_stop(w);
        assert_int_equal(env.seen.stops, 1);
        env_stop(&env);
}

static void test_stop_from_inside(void **state)
{
        Env env = {};
        env.srv.conns[0] = (Conn){ .chunks = { POD("ADDED", "d", "31") POD("MODIFIED", "d", "32") POD("DELETED", "d", "33") },
                                   .hold_ms = 500 };
        env_start(&env);
        env.seen.stop_inside_on = true;
        watch(&env, "30");

        run_until_watches(&env, 1);
        run_until_watches_max(&env, 2, 400 * USEC_PER_MSEC);
        assert_string_equal(env.seen.log, "ADDED:d MODIFIED:d");
        assert_int_equal(env.seen.stops, 1);
        assert_int_equal(env.seen.stop_error, 0);
        assert_int_equal(env.srv.watches, 1);
        assert_null(env.seen.w);
        env_stop(&env);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_list_stream_bookmark_reconnect),
                cmocka_unit_test(test_deliver_pages),
                cmocka_unit_test(test_410_event_relists),
                cmocka_unit_test(test_dropped_mid_stream),
                cmocka_unit_test(test_handler_error_stops),
                cmocka_unit_test(test_stop_from_inside),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
