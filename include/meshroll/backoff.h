/* SPDX-License-Identifier: Apache-2.0 */
/*
 * backoff.h — jittered exponential backoff and a client-side rate limiter.
 *
 * Backoff: delay(n) = min(cap, base · factor^n), then "full jitter" within
 * [delay·(1−jitter), delay] so a fleet of agents that failed together does
 * not retry together. A Retry-After from the server overrides the computed
 * delay when larger. The random source is injectable for tests.
 *
 * Rate limiter: a token bucket like client-go's default flowcontrol
 * (QPS 5, burst 10): `burst` tokens, refilled at `qps` per second. Callers
 * ask how long to wait before a request may go; the limiter never sleeps
 * itself, so the blocking client sleeps and the event loop arms a timer.
 */
#pragma once

#include <stdint.h>

#include "meshroll/time-util.h"

typedef struct MrBackoff {
        usec_t base;        /* first delay, e.g. 200 ms */
        usec_t cap;         /* largest delay, e.g. 30 s */
        double factor;      /* growth per attempt, e.g. 2.0 */
        double jitter;      /* 0..1: share of the delay randomised away */
        unsigned attempt;   /* attempts made so far; reset to 0 on success */
        uint64_t (*random)(void *userdata); /* NULL: a process-wide PRNG */
        void *random_userdata;
} MrBackoff;

/* Sets sane defaults: 200 ms base, 30 s cap, factor 2, jitter 0.5. */
void mr_backoff_init(MrBackoff *b);
/* Returns the delay before the next attempt and counts the attempt. */
usec_t mr_backoff_next(MrBackoff *b);
/* Like mr_backoff_next but at least retry_after (the server's Retry-After, 0 if none). */
usec_t mr_backoff_next_at_least(MrBackoff *b, usec_t retry_after);
void mr_backoff_reset(MrBackoff *b);

typedef struct MrRateLimiter {
        double qps;      /* tokens per second; <= 0 disables limiting */
        unsigned burst;  /* bucket size, >= 1 */
        double tokens;   /* current level */
        usec_t last;     /* monotonic time of the last refill */
        const MrClock *clock;
} MrRateLimiter;

/* clock may be NULL. The bucket starts full. */
void mr_ratelimit_init(MrRateLimiter *r, double qps, unsigned burst, const MrClock *clock);
/*
 * Takes one token, possibly borrowing against the future, and returns how
 * long the caller must wait before sending (0 = now). Reservations are
 * first come, first served, so concurrent callers queue fairly.
 */
usec_t mr_ratelimit_reserve(MrRateLimiter *r);
