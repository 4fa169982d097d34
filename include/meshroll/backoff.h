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

/*
 * Sets sane defaults: 200 ms base, 30 s cap, factor 2, jitter 0.5, attempt
 * 0, the process-wide PRNG. Overwrites every field (set random after).
 */
void mr_backoff_init(MrBackoff *b);
/*
 * Returns the delay before the next attempt and counts the attempt. Never
 * fails: factor < 1 counts as 1, jitter is clamped to 0..1, a huge attempt
 * count saturates at cap. The random source is called once per jittered
 * delay; a source returning 0 gives the un-jittered delay (handy in tests).
 * The default source is per-thread, so a MrBackoff needs no lock of its own
 * beyond the caller's.
 */
usec_t mr_backoff_next(MrBackoff *b);
/*
 * Like mr_backoff_next (counts the attempt) but at least retry_after (the
 * server's Retry-After, 0 if none), even beyond cap: the server asked for it.
 * The header parser caps what it accepts.
 */
usec_t mr_backoff_next_at_least(MrBackoff *b, usec_t retry_after);
/* Back to the first delay, after a success. */
void mr_backoff_reset(MrBackoff *b);

typedef struct MrRateLimiter {
        double qps;      /* tokens per second; <= 0 disables limiting */
        unsigned burst;  /* bucket size, >= 1 */
        double tokens;   /* current level */
        usec_t last;     /* monotonic time of the last refill */
        const MrClock *clock;
} MrRateLimiter;

/* clock may be NULL (system monotonic clock). The bucket starts full. burst 0 counts as 1. */
void mr_ratelimit_init(MrRateLimiter *r, double qps, unsigned burst, const MrClock *clock);
/*
 * Takes one token, possibly borrowing against the future, and returns how
 * long the caller must wait before sending (0 = now). Reservations are
 * first come, first served, so concurrent callers queue fairly: with the
 * bucket empty at 5 qps, three callers get 200, 400 and 600 ms. A caller
 * that then does not send still consumed its token (no cancellation).
 * Refills never exceed burst; a clock going backwards refills nothing.
 * qps <= 0 returns 0 always. Not thread-safe: one limiter per loop/thread
 * or the caller's lock.
 */
usec_t mr_ratelimit_reserve(MrRateLimiter *r);
