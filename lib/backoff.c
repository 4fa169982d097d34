/* SPDX-License-Identifier: Apache-2.0 */
/*
 * backoff.c — see backoff.h.
 *
 * Backoff. The nominal delay is computed in floating point and clamped to
 * the cap before it becomes an integer, so a large attempt count saturates
 * at the cap instead of overflowing. Jitter subtracts span·u from the
 * nominal delay, u uniform in [0,1) taken from the top 53 bits of the
 * random source: a source returning 0 yields the nominal delay, which makes
 * tests exact. The default source is a per-thread splitmix64 seeded from
 * getrandom(): no locking, and no two processes of a fleet start in step.
 *
 * Rate limiter. A token bucket whose level may go negative: each
 * reservation takes a token now and, if the bucket was empty, returns the
 * time until that token will have been refilled (golang.org/x/time/rate's
 * Reserve). Later callers therefore queue behind earlier ones. The level is
 * refilled lazily at each reservation from the injected monotonic clock and
 * never above the burst.
 */
#include <limits.h>
#include <math.h>
#include <sys/random.h>
#include <time.h>

#include "meshroll/backoff.h"

static usec_t clamp_to_usec(double d)
{
        if (!(d > 0)) /* also NaN */
                return 0;
        if (d >= (double)(USEC_INFINITY - 1))
                return USEC_INFINITY - 1;
        return (usec_t)d;
}

static uint64_t splitmix64(uint64_t *state)
{
        uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static uint64_t default_random(void)
{
        static __thread uint64_t state;
        static __thread bool seeded;

        if (!seeded) {
                if (getrandom(&state, sizeof(state), GRND_NONBLOCK) != (ssize_t)sizeof(state)) {
                        struct timespec ts;
                        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
                        state = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)getpid();
                }
                seeded = true;
        }
        return splitmix64(&state);
}

void mr_backoff_init(MrBackoff *b)
{
        *b = (MrBackoff){
                .base = 200 * USEC_PER_MSEC,
                .cap = 30 * USEC_PER_SEC,
                .factor = 2.0,
                .jitter = 0.5,
        };
}

usec_t mr_backoff_next(MrBackoff *b)
{
        double factor = b->factor >= 1.0 ? b->factor : 1.0; /* also NaN → 1 */
        double nominal = (double)b->base * pow(factor, (double)b->attempt);
        usec_t delay = MIN(clamp_to_usec(nominal), b->cap);

        if (b->attempt < UINT_MAX)
                b->attempt++;

        double jitter = b->jitter > 0 ? MIN(b->jitter, 1.0) : 0.0; /* NaN → 0 */
        if (jitter == 0 || delay == 0)
                return delay;

        uint64_t r = b->random ? b->random(b->random_userdata) : default_random();
        double u = (double)(r >> 11) * 0x1.0p-53; /* [0, 1) */
        usec_t off = clamp_to_usec((double)delay * jitter * u);
        return delay - MIN(off, delay);
}

usec_t mr_backoff_next_at_least(MrBackoff *b, usec_t retry_after)
{
        return MAX(mr_backoff_next(b), retry_after);
}

void mr_backoff_reset(MrBackoff *b)
{
        b->attempt = 0;
}

void mr_ratelimit_init(MrRateLimiter *r, double qps, unsigned burst, const MrClock *clock)
{
        *r = (MrRateLimiter){
                .qps = qps,
                .burst = MAX(burst, 1u),
                .clock = clock,
        };
        r->tokens = r->burst;
        r->last = mr_now_monotonic(clock);
}

usec_t mr_ratelimit_reserve(MrRateLimiter *r)
{
        if (!(r->qps > 0)) /* also NaN */
                return 0;

        double burst = MAX(r->burst, 1u);
        usec_t now = mr_now_monotonic(r->clock);
        if (now > r->last) {
                r->tokens = MIN(burst, r->tokens + (double)(now - r->last) * r->qps / (double)USEC_PER_SEC);
                r->last = now;
        }

        r->tokens -= 1.0;
        if (r->tokens >= 0)
                return 0;
        /* The small epsilon keeps 1 token at 5 qps at 200000 µs, not 200001. */
        return clamp_to_usec(ceil(-r->tokens * (double)USEC_PER_SEC / r->qps - 1e-6));
}
