/* SPDX-License-Identifier: Apache-2.0 */
/*
 * slowdown.h — how much slower than a native build this test run executes.
 *
 * `meson test --setup=valgrind` sets MESHROLL_TEST_SLOWDOWN (root
 * meson.build): memcheck runs the test's own code many times slower,
 * while what it drives — the simulator's clock, the kernel's sockets, the
 * daemons spawned natively — keeps its pace. A test whose outcome depends
 * on the ratio between the two (a simulated shutdown grace period against
 * the time the code needs to act within it) divides its simulated speed
 * by this factor, so the ratio is the one a native run sees. It is never a
 * timeout multiplier for assertions: tests wait on conditions.
 */
#pragma once

#include <stdlib.h>

/* The factor from MESHROLL_TEST_SLOWDOWN: 1 when unset or not a number in [1, 100]. */
static inline double test_slowdown(void)
{
        const char *s = getenv("MESHROLL_TEST_SLOWDOWN");
        char *end = NULL;
        double f = s ? strtod(s, &end) : 1.0;

        if (!s || end == s || *end || !(f >= 1.0 && f <= 100.0))
                return 1.0;
        return f;
}
