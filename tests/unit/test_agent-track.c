/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The socket tracker against a plain model: random churn over many
 * generations (sockets appear, stay, vanish, come back as new), checked
 * after every scan for first-seen times, size and lookups that still find
 * every member after deletions shifted probe runs — including runs that
 * wrap around the end of the table. Also the cap, shrinking, the epoch
 * moving forward and clocks that go back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>

#include "meshroll/errors.h"
#include "track.h"

#define UNIVERSE 4096

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t next(void)
{
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (uint32_t)rng;
}

static void test_model(void **state)
{
        _cleanup_(track_freep) SocketTracker *t = NULL;
        static usec_t first[UNIVERSE + 1]; /* 0 = absent */
        static bool present[UNIVERSE + 1];

        assert_int_equal(track_new(0, &t), 0);
        for (int gen = 1; gen <= 300; gen++) {
                usec_t now = (usec_t)gen * 2 * USEC_PER_SEC;
                /* Phases: grow to most of the universe, churn, shrink to few. */
                unsigned keep = gen < 100 ? 95 : gen < 200 ? 70 : 20;
                for (unsigned i = 1; i <= UNIVERSE; i++) {
                        bool was = present[i];
                        present[i] = was ? next() % 100 < keep : next() % 100 < (gen < 200 ? 30 : 2);
                }
                assert_int_equal(track_begin(t, now), 0);
                size_t n = 0;
                for (unsigned i = 1; i <= UNIVERSE; i++) {
                        if (!present[i]) {
                                first[i] = 0;
                                continue;
                        }
                        usec_t f;
                        assert_int_equal(track_see(t, i, &f), 0);
                        if (first[i] == 0)
                                first[i] = now;
                        assert_int_equal(f, first[i]);
                        /* A second sighting in the same scan changes nothing. */
                        assert_int_equal(track_see(t, i, &f), 0);
                        assert_int_equal(f, first[i]);
                        n++;
                }
                track_end(t);
                assert_int_equal(track_size(t), n);
                assert_true(track_memory(t) <= (n + 64) * 8 * 8);
        }
}

static void test_cap(void **state)
{
        _cleanup_(track_freep) SocketTracker *t = NULL;
        usec_t f;

        assert_int_equal(track_new(3, &t), 0);
        assert_int_equal(track_begin(t, 0), 0);
        for (uint64_t i = 1; i <= 3; i++)
                assert_int_equal(track_see(t, i, &f), 0);
        assert_int_equal(track_see(t, 4, &f), -MR_ETOOBIG);
        assert_int_equal(track_see(t, 2, &f), 0); /* already seen: no new room needed */
        track_end(t);
        /* The cap is per scan: three different sockets next time are fine. */
        assert_int_equal(track_begin(t, USEC_PER_SEC), 0);
        for (uint64_t i = 11; i <= 13; i++)
                assert_int_equal(track_see(t, i, &f), 0);
        track_end(t);
        assert_int_equal(track_size(t), 3);
        assert_int_equal(track_see(t, 11, &f), -EINVAL); /* no generation open */
}

static void test_epoch_and_clock(void **state)
{
        _cleanup_(track_freep) SocketTracker *t = NULL;
        usec_t f, start = 5 * USEC_PER_SEC, day = 24 * 3600 * USEC_PER_SEC;

        assert_int_equal(track_new(0, &t), 0);
        assert_int_equal(track_begin(t, start), 0);
        assert_int_equal(track_see(t, 1, &f), 0);
        assert_int_equal(f, start);
        track_end(t);
        /* Every 2 days for 30 days: socket 1 keeps its first sighting while it is younger than 6 days… */
        for (usec_t now = start + 2 * day; now <= start + 30 * day; now += 2 * day) {
                assert_int_equal(track_begin(t, now), 0);
                assert_int_equal(track_see(t, 1, &f), 0);
                if (now - start <= 6 * day)
                        assert_int_equal(f, start);
                /* …and is never made younger than 6 days by the epoch moving. */
                assert_true(now - f >= MIN(now - start, 6 * day));
                assert_int_equal(track_see(t, 100 + now / day, &f), 0);
                assert_int_equal(f, now);
                track_end(t);
        }
        /* A clock that goes back ages nothing and breaks nothing. */
        assert_int_equal(track_begin(t, 0), 0);
        assert_int_equal(track_see(t, 1, &f), 0);
        track_end(t);
        assert_int_equal(track_size(t), 1);
}

static void test_wide_inodes(void **state)
{
        _cleanup_(track_freep) SocketTracker *t = NULL;
        usec_t f;

        assert_int_equal(track_new(0, &t), 0);
        assert_int_equal(track_begin(t, 0), 0);
        assert_int_equal(track_see(t, UINT64_C(0x100000000), &f), 0); /* folds to a non-zero key */
        assert_int_equal(track_see(t, UINT32_MAX, &f), 0);
        track_end(t);
        assert_int_equal(track_size(t), 2);
        assert_int_equal(track_begin(t, USEC_PER_SEC), 0);
        assert_int_equal(track_see(t, UINT64_C(0x100000000), &f), 0);
        assert_int_equal(f, 0);
        track_end(t);
        assert_int_equal(track_size(t), 1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_model),
                cmocka_unit_test(test_cap),
                cmocka_unit_test(test_epoch_and_clock),
                cmocka_unit_test(test_wide_inodes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
