/* SPDX-License-Identifier: Apache-2.0 */
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "meshroll/backoff.h"

#define MS USEC_PER_MSEC
#define SEC USEC_PER_SEC

static uint64_t fixed_random(void *userdata)
{
        return *(uint64_t *)userdata;
}

static void test_defaults(void **state)
{
        MrBackoff b;
        mr_backoff_init(&b);
        assert_int_equal(b.base, 200 * MS);
        assert_int_equal(b.cap, 30 * SEC);
        assert_true(b.factor == 2.0);
        assert_true(b.jitter == 0.5);
        assert_int_equal(b.attempt, 0);
        assert_null(b.random);
}

/* With a source returning 0 the jitter subtracts nothing: the nominal sequence. */
static void test_exponential_and_cap(void **state)
{
        static const usec_t want[] = { 200 * MS, 400 * MS, 800 * MS, 1600 * MS, 3200 * MS, 6400 * MS,
                                       12800 * MS, 25600 * MS, 30 * SEC, 30 * SEC, 30 * SEC };
        uint64_t zero = 0;
        MrBackoff b;
        mr_backoff_init(&b);
        b.random = fixed_random;
        b.random_userdata = &zero;
        for (size_t i = 0; i < ELEMENTSOF(want); i++)
                assert_int_equal(mr_backoff_next(&b), want[i]);
        assert_int_equal(b.attempt, ELEMENTSOF(want));

        mr_backoff_reset(&b);
        assert_int_equal(b.attempt, 0);
        assert_int_equal(mr_backoff_next(&b), 200 * MS);
}

static void test_huge_attempt_saturates(void **state)
{
        uint64_t zero = 0;
        MrBackoff b;
        mr_backoff_init(&b);
        b.random = fixed_random;
        b.random_userdata = &zero;
        b.attempt = 5000; /* 2^5000 overflows a double */
        assert_int_equal(mr_backoff_next(&b), 30 * SEC);
        b.attempt = UINT_MAX;
        assert_int_equal(mr_backoff_next(&b), 30 * SEC);
        assert_int_equal(b.attempt, UINT_MAX);
        b.cap = USEC_INFINITY;
        assert_int_equal(mr_backoff_next(&b), USEC_INFINITY - 1);
}

/* Full jitter: the delay lies in [delay·(1−jitter), delay], across the random range. */
static void test_jitter_bounds(void **state)
{
        static const struct {
                double jitter;
                uint64_t r;
                usec_t lo, hi;
        } cases[] = {
                { 0.5, 0, 200 * MS, 200 * MS },
                { 0.5, UINT64_MAX, 100 * MS, 100 * MS + 1 },
                { 0.5, UINT64_MAX / 2, 150 * MS - 1, 150 * MS + 1 },
                { 1.0, UINT64_MAX, 0, 1 },
                { 0.0, UINT64_MAX, 200 * MS, 200 * MS },
                { 7.0, UINT64_MAX, 0, 1 },         /* clamped to 1 */
                { -1.0, UINT64_MAX, 200 * MS, 200 * MS }, /* clamped to 0 */
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint64_t r = cases[i].r;
                MrBackoff b;
                mr_backoff_init(&b);
                b.jitter = cases[i].jitter;
                b.random = fixed_random;
                b.random_userdata = &r;
                usec_t d = mr_backoff_next(&b);
                if (d < cases[i].lo || d > cases[i].hi)
                        fail_msg("case %zu: %llu not in [%llu, %llu]", i, (unsigned long long)d,
                                 (unsigned long long)cases[i].lo, (unsigned long long)cases[i].hi);
        }
}

/* The default source: within bounds, and not constant. */
static void test_default_random(void **state)
{
        MrBackoff b;
        usec_t first = 0;
        bool varied = false;
        for (int i = 0; i < 64; i++) {
                mr_backoff_init(&b);
                b.jitter = 1.0;
                b.base = 10 * SEC;
                usec_t d = mr_backoff_next(&b);
                assert_true(d <= 10 * SEC);
                if (i == 0)
                        first = d;
                else if (d != first)
                        varied = true;
        }
        assert_true(varied);
}

static void test_retry_after_floor(void **state)
{
        uint64_t zero = 0;
        MrBackoff b;
        mr_backoff_init(&b);
        b.random = fixed_random;
        b.random_userdata = &zero;
        assert_int_equal(mr_backoff_next_at_least(&b, 0), 200 * MS);
        assert_int_equal(mr_backoff_next_at_least(&b, 5 * SEC), 5 * SEC);
        assert_int_equal(b.attempt, 2); /* the floor still counts the attempt */
        assert_int_equal(mr_backoff_next_at_least(&b, 1), 800 * MS);
        /* Retry-After beyond the cap is still honoured: the server asked for it. */
        b.attempt = 100;
        assert_int_equal(mr_backoff_next_at_least(&b, 60 * SEC), 60 * SEC);
}

static void test_ratelimit_burst_then_queue(void **state)
{
        MrFakeClock fc;
        MrRateLimiter r;
        mr_fake_clock_init(&fc, 1000 * SEC, 0);
        mr_ratelimit_init(&r, 5, 10, &fc.clock);

        for (int i = 0; i < 10; i++)
                assert_int_equal(mr_ratelimit_reserve(&r), 0);
        /* Borrowing against the future: callers queue 200 ms apart, first come first served. */
        assert_int_equal(mr_ratelimit_reserve(&r), 200 * MS);
        assert_int_equal(mr_ratelimit_reserve(&r), 400 * MS);
        assert_int_equal(mr_ratelimit_reserve(&r), 600 * MS);

        /* 600 ms later the debt is paid: the next one waits one interval. */
        fc.monotonic += 600 * MS;
        assert_int_equal(mr_ratelimit_reserve(&r), 200 * MS);
        fc.monotonic += 100 * MS;
        assert_int_equal(mr_ratelimit_reserve(&r), 300 * MS);
}

static void test_ratelimit_refill_caps_at_burst(void **state)
{
        MrFakeClock fc;
        MrRateLimiter r;
        mr_fake_clock_init(&fc, 0, 0);
        mr_ratelimit_init(&r, 2, 3, &fc.clock);
        for (int i = 0; i < 3; i++)
                assert_int_equal(mr_ratelimit_reserve(&r), 0);
        fc.monotonic += 3600 * SEC; /* an hour idle refills only to the burst */
        for (int i = 0; i < 3; i++)
                assert_int_equal(mr_ratelimit_reserve(&r), 0);
        assert_int_equal(mr_ratelimit_reserve(&r), 500 * MS);

        /* A partial refill: 250 ms at 2 qps is half a token. */
        mr_ratelimit_init(&r, 2, 1, &fc.clock);
        assert_int_equal(mr_ratelimit_reserve(&r), 0);
        fc.monotonic += 250 * MS;
        assert_int_equal(mr_ratelimit_reserve(&r), 250 * MS);
}

static void test_ratelimit_clock_backwards_and_disabled(void **state)
{
        MrFakeClock fc;
        MrRateLimiter r;
        mr_fake_clock_init(&fc, 10 * SEC, 0);
        mr_ratelimit_init(&r, 1, 1, &fc.clock);
        assert_int_equal(mr_ratelimit_reserve(&r), 0);
        fc.monotonic -= 5 * SEC; /* never refills from a clock going backwards */
        assert_int_equal(mr_ratelimit_reserve(&r), 1 * SEC);

        for (double qps = 0; qps >= -1; qps -= 1) {
                mr_ratelimit_init(&r, qps, 1, &fc.clock);
                for (int i = 0; i < 100; i++)
                        assert_int_equal(mr_ratelimit_reserve(&r), 0);
        }

        mr_ratelimit_init(&r, 1, 0, &fc.clock); /* burst 0 means 1 */
        assert_int_equal(r.burst, 1);
        assert_int_equal(mr_ratelimit_reserve(&r), 0);
        assert_int_equal(mr_ratelimit_reserve(&r), 1 * SEC);
}

static void test_ratelimit_system_clock(void **state)
{
        MrRateLimiter r;
        mr_ratelimit_init(&r, 1000, 2, NULL);
        assert_int_equal(mr_ratelimit_reserve(&r), 0);
        assert_int_equal(mr_ratelimit_reserve(&r), 0);
        assert_true(mr_ratelimit_reserve(&r) <= 1 * MS);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_exponential_and_cap),
                cmocka_unit_test(test_huge_attempt_saturates),
                cmocka_unit_test(test_jitter_bounds),
                cmocka_unit_test(test_default_random),
                cmocka_unit_test(test_retry_after_floor),
                cmocka_unit_test(test_ratelimit_burst_then_queue),
                cmocka_unit_test(test_ratelimit_refill_caps_at_burst),
                cmocka_unit_test(test_ratelimit_clock_backwards_and_disabled),
                cmocka_unit_test(test_ratelimit_system_clock),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
