/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <setjmp.h>
#include <cmocka.h>

#include "meshroll/errors.h"
#include "meshroll/kube.h"

static const char *const type_names[] = { "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR" };

/* What the callback saw, one "TYPE {compact object}\n" per event. */
typedef struct Log {
        char text[8192];
        size_t len;
        unsigned events;
        int fail_at;     /* return -ECANCELED on this event (1-based), 0: never */
        int reset_at;    /* reset the parser from the callback on this event */
        KubeWatchParser *parser;
} Log;

static int record(KubeWatchEventType type, json_object *object, void *userdata)
{
        Log *l = userdata;
        l->events++;
        assert_true((unsigned)type < ELEMENTSOF(type_names));
        const char *js = json_object_to_json_string_ext(object, JSON_C_TO_STRING_PLAIN);
        int n = snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s %s\n", type_names[type],
                         strlen(js) > 1000 ? "<big>" : js);
        assert_true(n > 0 && (size_t)n < sizeof(l->text) - l->len);
        l->len += (size_t)n;
        if (l->reset_at > 0 && l->events == (unsigned)l->reset_at)
                kube_watch_parser_reset(l->parser);
        if (l->fail_at > 0 && l->events == (unsigned)l->fail_at)
                return -ECANCELED;
        return 0;
}

static const char STREAM[] =
        "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"1\"}}}\n"
        "\n"
        "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\",\"labels\":{\"x\":\"\\n\"}}}}\r\n"
        "   \r\n"
        "{\"object\":{\"metadata\":{\"name\":\"a\"}},\"type\":\"DELETED\",\"extra\":[1,2]}\n"
        "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"9\"}}}\n"
        "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\"}}\n";

static const char STREAM_EVENTS[] =
        "ADDED {\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"1\"}}\n"
        "MODIFIED {\"metadata\":{\"name\":\"a\",\"labels\":{\"x\":\"\\n\"}}}\n"
        "DELETED {\"metadata\":{\"name\":\"a\"}}\n"
        "BOOKMARK {\"metadata\":{\"resourceVersion\":\"9\"}}\n"
        "ERROR {\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\"}\n";

static void feed_split(const char *s, size_t n, size_t split1, size_t split2, size_t max_line, Log *l)
{
        _cleanup_(kube_watch_parser_freep) KubeWatchParser *p = NULL;
        assert_int_equal(kube_watch_parser_new(max_line, record, l, &p), 0);
        assert_int_equal(kube_watch_parser_feed(p, s, split1), 0);
        assert_int_equal(kube_watch_parser_feed(p, s + split1, split2 - split1), 0);
        assert_int_equal(kube_watch_parser_feed(p, s + split2, n - split2), 0);
}

static void test_every_split_point(void **state)
{
        size_t n = strlen(STREAM);
        for (size_t i = 0; i <= n; i++) {
                Log l = {};
                feed_split(STREAM, n, i, i, 1024, &l);
                if (!streq(l.text, STREAM_EVENTS))
                        fail_msg("split at %zu:\n%s", i, l.text);
                assert_int_equal(l.events, 5);
        }
}

static void test_every_pair_of_split_points(void **state)
{
        size_t n = strlen(STREAM);
        for (size_t i = 0; i <= n; i += 3)
                for (size_t j = i; j <= n; j += 7) {
                        Log l = {};
                        feed_split(STREAM, n, i, j, 1024, &l);
                        if (!streq(l.text, STREAM_EVENTS))
                                fail_msg("split at %zu,%zu:\n%s", i, j, l.text);
                }
}

static void test_byte_by_byte(void **state)
{
        _cleanup_(kube_watch_parser_freep) KubeWatchParser *p = NULL;
        Log l = {};
        assert_int_equal(kube_watch_parser_new(0, record, &l, &p), 0);
        for (size_t i = 0; STREAM[i]; i++)
                assert_int_equal(kube_watch_parser_feed(p, STREAM + i, 1), 0);
        assert_string_equal(l.text, STREAM_EVENTS);
        assert_int_equal(kube_watch_parser_feed(p, NULL, 0), 0);
        assert_int_equal(kube_watch_parser_feed(p, "", 0), 0);
}

/* Every line here is malformed; a good event before it is delivered, none after. */
static void test_rejects(void **state)
{
        static const struct {
                const char *line;
                int error;
        } cases[] = {
                { "not json", -EBADMSG },
                { "[1,2]", -EBADMSG },
                { "\"ADDED\"", -EBADMSG },
                { "null", -EBADMSG },
                { "{}", -EBADMSG },
                { "{\"object\":{}}", -EBADMSG },
                { "{\"type\":\"ADDED\"}", -EBADMSG },
                { "{\"type\":\"added\",\"object\":{}}", -EBADMSG },
                { "{\"type\":\"Added\",\"object\":{}}", -EBADMSG },
                { "{\"type\":\"SYNCED\",\"object\":{}}", -EBADMSG },
                { "{\"type\":\"RESET\",\"object\":{}}", -EBADMSG },
                { "{\"type\":\"\",\"object\":{}}", -EBADMSG },
                { "{\"type\":1,\"object\":{}}", -EBADMSG },
                { "{\"type\":null,\"object\":{}}", -EBADMSG },
                { "{\"type\":\"ADDED\",\"object\":null}", -EBADMSG },
                { "{\"type\":\"ADDED\",\"object\":[]}", -EBADMSG },
                { "{\"type\":\"ADDED\",\"object\":\"x\"}", -EBADMSG },
                { "{\"type\":\"ADDED\",\"object\":{}} {}", -EBADMSG },
                { "{\"type\":\"ADDED\",\"object\":{}", -EBADMSG },
                { "{\"type\":\"ADDED\",\"object\":{}}\0", -EBADMSG },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(kube_watch_parser_freep) KubeWatchParser *p = NULL;
                Log l = {};
                char buf[256];
                size_t n = strlen(cases[i].line) + (i == ELEMENTSOF(cases) - 1); /* the last one keeps its NUL */
                static const char good[] = "{\"type\":\"ADDED\",\"object\":{\"n\":1}}\n";

                memcpy(buf, good, strlen(good));
                memcpy(buf + strlen(good), cases[i].line, n);
                memcpy(buf + strlen(good) + n, "\n", 1);
                memcpy(buf + strlen(good) + n + 1, good, strlen(good));
                size_t total = 2 * strlen(good) + n + 1;

                assert_int_equal(kube_watch_parser_new(1024, record, &l, &p), 0);
                int r = kube_watch_parser_feed(p, buf, total);
                if (r != cases[i].error)
                        fail_msg("case %zu (%s): got %d, want %d", i, cases[i].line, r, cases[i].error);
                assert_int_equal(l.events, 1);
                /* sticky until reset */
                assert_int_equal(kube_watch_parser_feed(p, good, strlen(good)), cases[i].error);
                assert_int_equal(l.events, 1);
                kube_watch_parser_reset(p);
                assert_int_equal(kube_watch_parser_feed(p, good, strlen(good)), 0);
                assert_int_equal(l.events, 2);
        }
}

static void test_line_cap(void **state)
{
        static const char ev[] = "{\"type\":\"ADDED\",\"object\":{}}"; /* 29 bytes */
        size_t n = strlen(ev);

        for (size_t split = 0; split <= n; split++) {
                _cleanup_(kube_watch_parser_freep) KubeWatchParser *p = NULL;
                Log l = {};
                /* exactly at the cap: accepted */
                assert_int_equal(kube_watch_parser_new(n, record, &l, &p), 0);
                assert_int_equal(kube_watch_parser_feed(p, ev, split), 0);
                assert_int_equal(kube_watch_parser_feed(p, ev + split, n - split), 0);
                assert_int_equal(kube_watch_parser_feed(p, "\n", 1), 0);
                assert_int_equal(l.events, 1);
                /* one byte over (a trailing space): refused, however it arrives */
                assert_int_equal(kube_watch_parser_feed(p, ev, split), 0);
                int r = kube_watch_parser_feed(p, ev + split, n - split);
                assert_int_equal(r, 0);
                assert_int_equal(kube_watch_parser_feed(p, " \n", 2), -MR_ETOOBIG);
                assert_int_equal(l.events, 1);
        }
}

/* A partial line is counted as it grows: the error comes before any newline. */
static void test_endless_line(void **state)
{
        _cleanup_(kube_watch_parser_freep) KubeWatchParser *p = NULL;
        Log l = {};
        char chunk[1000];
        memset(chunk, 'x', sizeof(chunk));

        assert_int_equal(kube_watch_parser_new(10000, record, &l, &p), 0);
        for (int i = 0; i < 10; i++)
                assert_int_equal(kube_watch_parser_feed(p, chunk, sizeof(chunk)), 0);
        assert_int_equal(kube_watch_parser_feed(p, chunk, 1), -MR_ETOOBIG);
        assert_int_equal(kube_watch_parser_feed(p, "\n", 1), -MR_ETOOBIG);
        kube_watch_parser_reset(p);
        assert_int_equal(kube_watch_parser_feed(p, "{\"type\":\"BOOKMARK\",\"object\":{}}\n", 32), 0);
        assert_int_equal(l.events, 1);
}

/* A large event split across chunks (more than the kept buffer), then small ones. */
static void test_large_event(void **state)
{
        _cleanup_(kube_watch_parser_freep) KubeWatchParser *p = NULL;
        _cleanup_free_ char *big = NULL;
        size_t pad = 200000, n = 0;
        Log l = {};

        big = malloc(pad + 64);
        assert_non_null(big);
        n += (size_t)snprintf(big, 64, "{\"type\":\"ADDED\",\"object\":{\"s\":\"");
        memset(big + n, 'y', pad);
        n += pad;
        memcpy(big + n, "\"}}\n", 4);
        n += 4;

        assert_int_equal(kube_watch_parser_new(0, record, &l, &p), 0);
        for (size_t off = 0; off < n; off += 4093)
                assert_int_equal(kube_watch_parser_feed(p, big + off, MIN((size_t)4093, n - off)), 0);
        assert_string_equal(l.text, "ADDED <big>\n");
        l.len = 0;
        assert_int_equal(kube_watch_parser_feed(p, STREAM, strlen(STREAM)), 0);
        assert_string_equal(l.text, STREAM_EVENTS);
}

static void test_callback_error_stops(void **state)
{
        _cleanup_(kube_watch_parser_freep) KubeWatchParser *p = NULL;
        Log l = { .fail_at = 2 };
        assert_int_equal(kube_watch_parser_new(0, record, &l, &p), 0);
        assert_int_equal(kube_watch_parser_feed(p, STREAM, strlen(STREAM)), -ECANCELED);
        assert_int_equal(l.events, 2);
        assert_int_equal(kube_watch_parser_feed(p, STREAM, strlen(STREAM)), -ECANCELED);
        assert_int_equal(l.events, 2);
        kube_watch_parser_reset(p);
        assert_int_equal(kube_watch_parser_feed(p, STREAM, strlen(STREAM)), 0);
        assert_int_equal(l.events, 7);
}

static void test_reset_drops_partial_line(void **state)
{
        _cleanup_(kube_watch_parser_freep) KubeWatchParser *p = NULL;
        Log l = {};
        assert_int_equal(kube_watch_parser_new(0, record, &l, &p), 0);
        assert_int_equal(kube_watch_parser_feed(p, "{\"type\":\"ADDED\",\"obj", 20), 0);
        kube_watch_parser_reset(p);
        assert_int_equal(kube_watch_parser_feed(p, STREAM, strlen(STREAM)), 0);
        assert_string_equal(l.text, STREAM_EVENTS);
}

/* The callback resets (as on an ERROR before reconnecting): the rest of the chunk is dropped. */
static void test_reset_from_callback(void **state)
{
        _cleanup_(kube_watch_parser_freep) KubeWatchParser *p = NULL;
        Log l = {};
        assert_int_equal(kube_watch_parser_new(0, record, &l, &p), 0);
        l.parser = p;
        l.reset_at = 1;
        assert_int_equal(kube_watch_parser_feed(p, STREAM, strlen(STREAM)), 0);
        assert_int_equal(l.events, 1);
        l.reset_at = 0;
        assert_int_equal(kube_watch_parser_feed(p, STREAM, strlen(STREAM)), 0);
        assert_int_equal(l.events, 6);
}

static void test_new_arguments(void **state)
{
        KubeWatchParser *p = NULL;
        assert_int_equal(kube_watch_parser_new(10, NULL, NULL, &p), -EINVAL);
        assert_null(p);
        assert_null(kube_watch_parser_free(NULL));
        kube_watch_parser_reset(NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_split_point),
                cmocka_unit_test(test_every_pair_of_split_points),
                cmocka_unit_test(test_byte_by_byte),
                cmocka_unit_test(test_rejects),
                cmocka_unit_test(test_line_cap),
                cmocka_unit_test(test_endless_line),
                cmocka_unit_test(test_large_event),
                cmocka_unit_test(test_callback_error_stops),
                cmocka_unit_test(test_reset_drops_partial_line),
                cmocka_unit_test(test_reset_from_callback),
                cmocka_unit_test(test_new_arguments),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
