/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "meshroll/time-util.h"

/* 2026-11-24T03:11:03Z */
#define T0 ((usec_t)1795489863 * USEC_PER_SEC)

static void test_format(void **state)
{
        char buf[KUBE_TIME_MAX];
        assert_string_equal(kube_time_format(T0 + 123456, buf), "2026-11-24T03:11:03Z");
        assert_string_equal(kube_microtime_format(T0 + 123456, buf), "2026-11-24T03:11:03.123456Z");
        assert_string_equal(kube_microtime_format(T0, buf), "2026-11-24T03:11:03.000000Z");
}

static void test_parse_forms(void **state)
{
        usec_t t;
        assert_int_equal(kube_time_parse("2026-11-24T03:11:03Z", &t), 0);
        assert_int_equal(t, T0);
        assert_int_equal(kube_time_parse("2026-11-24T03:11:03.123456Z", &t), 0);
        assert_int_equal(t, T0 + 123456);
        assert_int_equal(kube_time_parse("2026-11-24T03:11:03.1234567891Z", &t), 0);
        assert_int_equal(t, T0 + 123456);
        assert_int_equal(kube_time_parse("2026-11-24T05:11:03.5+02:00", &t), 0);
        assert_int_equal(t, T0 + 500000);
        assert_int_equal(kube_time_parse("2026-11-24T01:11:03-02:00", &t), 0);
        assert_int_equal(t, T0);
}

static void test_parse_rejects(void **state)
{
        const char *bad[] = { "", "2026-11-24", "2026-11-24T03:11:03", "2026-13-24T03:11:03Z",
                              "2026-11-24T03:11:03.Z", "2026-11-24T03:11:03Zjunk", "2026-11-24 03:11:03Z",
                              "20a6-11-24T03:11:03Z", "2026-11-24T03:11:03+0200", "1960-01-01T00:00:00Z" };
        usec_t t = 7;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(kube_time_parse(bad[i], &t), -EINVAL);
        assert_int_equal(kube_time_parse(NULL, &t), -EINVAL);
        assert_int_equal(t, 7);
}

static void test_roundtrip(void **state)
{
        char buf[KUBE_TIME_MAX];
        for (usec_t t = T0; t < T0 + 10 * USEC_PER_SEC; t += 777777) {
                usec_t back;
                assert_int_equal(kube_time_parse(kube_microtime_format(t, buf), &back), 0);
                assert_int_equal(back, t);
        }
}

static void test_fake_clock(void **state)
{
        MrFakeClock f;
        mr_fake_clock_init(&f, 5, T0);
        assert_int_equal(mr_now_monotonic(&f.clock), 5);
        f.monotonic += USEC_PER_SEC;
        assert_int_equal(mr_now_monotonic(&f.clock), 5 + USEC_PER_SEC);
        assert_int_equal(mr_now_realtime(&f.clock), T0);
        assert_true(mr_now_monotonic(NULL) > 0);
}

static void test_duration(void **state)
{
        usec_t d;
        assert_int_equal(mr_duration_parse("90s", &d), 0);
        assert_int_equal(d, 90 * USEC_PER_SEC);
        assert_int_equal(mr_duration_parse("1h30m", &d), 0);
        assert_int_equal(d, 90 * USEC_PER_MINUTE);
        assert_int_equal(mr_duration_parse("250ms", &d), 0);
        assert_int_equal(d, 250 * USEC_PER_MSEC);
        assert_int_equal(mr_duration_parse("1.5s", &d), 0);
        assert_int_equal(d, 1500 * USEC_PER_MSEC);
        assert_int_equal(mr_duration_parse("0", &d), 0);
        assert_int_equal(d, 0);
        assert_int_equal(mr_duration_parse("5", &d), -EINVAL);
        assert_int_equal(mr_duration_parse("5x", &d), -EINVAL);
        assert_int_equal(mr_duration_parse("m", &d), -EINVAL);
        assert_int_equal(mr_duration_parse("", &d), -EINVAL);
        assert_int_equal(mr_duration_parse("99999999999999999999h", &d), -ERANGE);

        char buf[32];
        assert_string_equal(mr_duration_format(150 * USEC_PER_SEC, buf, sizeof(buf)), "2m30s");
        assert_string_equal(mr_duration_format(450 * USEC_PER_MSEC, buf, sizeof(buf)), "450ms");
        assert_string_equal(mr_duration_format(2500 * USEC_PER_MSEC, buf, sizeof(buf)), "2.5s");
        assert_string_equal(mr_duration_format(USEC_INFINITY, buf, sizeof(buf)), "infinity");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_format),       cmocka_unit_test(test_parse_forms),
                cmocka_unit_test(test_parse_rejects), cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_fake_clock),   cmocka_unit_test(test_duration),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
