/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>

#include "meshroll/json-util.h"
#include "watch.h"

static SimStore *store;

static int setup(void **state)
{
        assert_int_equal(sim_store_new(NULL, -1, &store), 0);
        return 0;
}

static int teardown(void **state)
{
        store = sim_store_free(store);
        return 0;
}

static json_object *J(const char *s)
{
        json_object *o = NULL;
        assert_int_equal(mr_json_parse(s, strlen(s), 1 << 20, &o), 0);
        return o;
}

static void pod(const char *ns, const char *name, const char *labels_json)
{
        char buf[512];
        snprintf(buf, sizeof(buf), "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\",\"labels\":%s}}", name, ns,
                 labels_json);
        sim_store_lock(store);
        json_object *cur = sim_store_get(store, &SIM_PODS, ns, name);
        if (cur)
                assert_int_equal(sim_store_update(store, &SIM_PODS, J(buf), 0, "t", NULL, NULL), 0);
        else
                assert_int_equal(sim_store_create(store, &SIM_PODS, J(buf), "t", NULL, NULL), 0);
        sim_store_unlock(store);
}

static SimWatch *start(const char *ns, const char *labels, const char *fields, const char *rv, usec_t timeout)
{
        SimFilter f;
        SimWatch *w = NULL;
        MrError err = {};
        SimWatchOptions o = {.resource_version = rv,
                             .deadline = timeout ? mr_now_monotonic(NULL) + timeout : 0};
        assert_int_equal(sim_filter_init(&f, &SIM_PODS, ns, labels, fields, &err), 0);
        sim_store_lock(store);
        assert_int_equal(sim_watch_new(store, &f, &o, &w, &err), 0);
        sim_store_unlock(store);
        return w;
}

/* Reads events until the stream pauses at the deadline; returns "TYPE name@rv;" lines. */
static char *drain(SimWatch *w)
{
        static char log[4096];
        char *data;
        size_t size;
        log[0] = 0;
        while (sim_watch_next(w, NULL, &data, &size) == 1) {
                char *line = data, *nl;
                while ((nl = memchr(line, '\n', size - (size_t)(line - data)))) {
                        json_object *ev = NULL;
                        assert_int_equal(mr_json_parse(line, (size_t)(nl - line), 1 << 20, &ev), 0);
                        size_t l = strlen(log);
                        snprintf(log + l, sizeof(log) - l, "%s %s@%s;", mr_json_get_str(ev, "type", NULL),
                                 strempty(mr_json_get_str(ev, "object", "metadata", "name", NULL)),
                                 strempty(mr_json_get_str(ev, "object", "metadata", "resourceVersion", NULL)));
                        if (streq_ptr(mr_json_get_str(ev, "type", NULL), "ERROR")) {
                                l = strlen(log);
                                snprintf(log + l, sizeof(log) - l, "%s;", mr_json_get_str(ev, "object", "message", NULL));
                        }
                        json_object_put(ev);
                        line = nl + 1;
                }
                free(data);
        }
        return log;
}

static void test_initial_state_and_selectors(void **state)
{
        pod("a", "web-1", "{\"app\":\"web\"}");   /* rv 2 */
        pod("a", "db-1", "{\"app\":\"db\"}");     /* rv 3 */
        pod("b", "web-2", "{\"app\":\"web\"}");   /* rv 4 */
        SimWatch *w = start(NULL, "app=web", NULL, NULL, 50 * USEC_PER_MSEC);
        assert_string_equal(drain(w), "ADDED web-1@2;ADDED web-2@4;");
        sim_watch_free(w);
        w = start("a", NULL, "metadata.name=db-1", "0", 50 * USEC_PER_MSEC);
        assert_string_equal(drain(w), "ADDED db-1@3;");
        sim_watch_free(w);

        SimFilter f;
        MrError err = {};
        assert_int_equal(sim_filter_init(&f, &SIM_PODS, NULL, NULL, "spec.bogus=1", &err), -MR_EBADREQUEST);
        assert_string_equal(err.message, "field label not supported: spec.bogus");
        assert_int_equal(sim_filter_init(&f, &SIM_PODS, NULL, "a in (", NULL, &err), -MR_EBADREQUEST);
        assert_int_equal(sim_filter_init(&f, &SIM_NODES, NULL, NULL, "spec.unschedulable=true", &err), 0);
        sim_filter_done(&f);
}

static void test_resume_and_transitions(void **state)
{
        pod("a", "web-1", "{\"app\":\"web\"}"); /* 2 */
        SimWatch *w = start(NULL, "app=web", NULL, "2", 50 * USEC_PER_MSEC);
        pod("a", "web-1", "{\"app\":\"web\",\"v\":\"2\"}"); /* 3 MODIFIED */
        pod("a", "web-1", "{\"app\":\"other\"}");           /* 4 stops matching → DELETED */
        pod("a", "web-1", "{\"app\":\"web\"}");             /* 5 matches again → ADDED */
        pod("a", "db", "{\"app\":\"db\"}");                 /* 6 not matching */
        sim_store_lock(store);
        assert_int_equal(sim_store_delete(store, &SIM_PODS, "a", "web-1", 0, NULL, NULL, "t", NULL, NULL), 0); /* 7 */
        sim_store_unlock(store);
        assert_string_equal(drain(w), "MODIFIED web-1@3;DELETED web-1@4;ADDED web-1@5;DELETED web-1@7;");
        sim_watch_free(w);

        /* a watch from the newest revision sees nothing old */
        w = start(NULL, NULL, NULL, "7", 30 * USEC_PER_MSEC);
        assert_string_equal(drain(w), "");
        sim_watch_free(w);
        /* a future revision starts at the current one */
        w = start(NULL, NULL, NULL, "999", 30 * USEC_PER_MSEC);
        pod("a", "x", "{}");
        assert_string_equal(drain(w), "ADDED x@8;");
        sim_watch_free(w);
}

static void test_expired(void **state)
{
        sim_store_lock(store);
        sim_store_set_history_limit(store, 2);
        sim_store_unlock(store);
        pod("a", "p1", "{}"); /* 2 */
        pod("a", "p2", "{}"); /* 3 */
        pod("a", "p3", "{}"); /* 4: floor becomes 2 */
        SimWatch *w = start(NULL, NULL, NULL, "1", 0);
        assert_string_equal(drain(w), "ERROR @;too old resource version: 1 (3);");
        sim_watch_free(w);
        w = start(NULL, NULL, NULL, "2", 30 * USEC_PER_MSEC);
        assert_string_equal(drain(w), "ADDED p2@3;ADDED p3@4;");
        sim_watch_free(w);

        /* a slow watcher overtaken by the ring gets the same 410 */
        w = start(NULL, NULL, NULL, "4", 0);
        pod("a", "p4", "{}");
        pod("a", "p5", "{}");
        pod("a", "p6", "{}");
        assert_string_equal(drain(w), "ERROR @;too old resource version: 4 (6);");
        sim_watch_free(w);

        SimFilter f;
        SimWatch *bad = NULL;
        MrError err = {};
        assert_int_equal(sim_filter_init(&f, &SIM_PODS, NULL, NULL, NULL, &err), 0);
        sim_store_lock(store);
        assert_int_equal(sim_watch_new(store, &f, &(SimWatchOptions){.resource_version = "x1"}, &bad, &err),
                         -MR_EBADREQUEST);
        sim_store_unlock(store);
}

static void test_bookmarks(void **state)
{
        SimFilter f;
        SimWatch *w = NULL;
        char *data;
        size_t size;
        assert_int_equal(sim_filter_init(&f, &SIM_PODS, "a", NULL, NULL, NULL), 0);
        sim_store_lock(store);
        assert_int_equal(sim_watch_new(store, &f,
                                       &(SimWatchOptions){.resource_version = "1", .bookmarks = true,
                                                          .bookmark_interval = 10 * USEC_PER_MSEC,
                                                          .deadline = mr_now_monotonic(NULL) + 5 * USEC_PER_SEC},
                                       &w, NULL),
                         0);
        sim_store_unlock(store);
        assert_int_equal(sim_watch_next(w, NULL, &data, &size), 1);
        assert_string_equal(data, "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":"
                                  "{\"resourceVersion\":\"1\",\"creationTimestamp\":null}}}\n");
        free(data);
        sim_watch_free(w);
}

static bool stop_flag;
static void *stopper(void *arg)
{
        usleep(20000);
        sim_store_lock(store);
        stop_flag = true;
        sim_store_wake(store);
        sim_store_unlock(store);
        return NULL;
}

static void test_stop_wakes_watchers(void **state)
{
        SimWatch *w = start(NULL, NULL, NULL, "1", 0);
        pthread_t t;
        char *data;
        size_t size;
        usec_t t0 = mr_now_monotonic(NULL);
        stop_flag = false;
        pthread_create(&t, NULL, stopper, NULL);
        assert_int_equal(sim_watch_next(w, &stop_flag, &data, &size), 0);
        assert_null(data);
        assert_true(mr_now_monotonic(NULL) - t0 < 2 * USEC_PER_SEC);
        pthread_join(t, NULL);
        sim_watch_free(w);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_initial_state_and_selectors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_resume_and_transitions, setup, teardown),
                cmocka_unit_test_setup_teardown(test_expired, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bookmarks, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stop_wakes_watchers, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
