/* SPDX-License-Identifier: Apache-2.0 */
/*
 * time-util.h — clocks that tests can drive, and Kubernetes time formats.
 *
 * Everything that waits, expires or rate-limits reads time through an
 * MrClock, so tests substitute a fake one and never sleep. The default
 * clock (NULL) reads CLOCK_MONOTONIC for durations and CLOCK_REALTIME for
 * wall time.
 *
 * Kubernetes writes two timestamp forms: metav1.Time, RFC 3339 in UTC with
 * seconds ("2026-11-24T03:11:03Z"), and metav1.MicroTime with six fractional
 * digits ("2026-11-24T03:11:03.123456Z", used by Lease renewTime and
 * events.k8s.io eventTime). The parser accepts both, any fraction length
 * and numeric offsets (+02:00), as Go's time.RFC3339Nano parser does.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "meshroll/macro.h"

typedef struct MrClock {
        usec_t (*monotonic)(void *userdata);
        usec_t (*realtime)(void *userdata);
        void *userdata;
} MrClock;

/* Current time on the clock; clock may be NULL for the system clock. */
usec_t mr_now_monotonic(const MrClock *clock);
usec_t mr_now_realtime(const MrClock *clock);

/* A clock tests advance by hand. Both readings start at the given values. */
typedef struct MrFakeClock {
        MrClock clock;
        usec_t monotonic;
        usec_t realtime;
} MrFakeClock;
void mr_fake_clock_init(MrFakeClock *f, usec_t monotonic, usec_t realtime);

#define KUBE_TIME_MAX 40

/* Formats wall time (µs since the epoch) as metav1.Time ("…T03:11:03Z"). Returns buf. */
char *kube_time_format(usec_t t, char buf[static KUBE_TIME_MAX]);
/* Formats as metav1.MicroTime ("…T03:11:03.123456Z"). Returns buf. */
char *kube_microtime_format(usec_t t, char buf[static KUBE_TIME_MAX]);
/* Parses either form. Returns 0, or -EINVAL naming nothing (callers name the field). */
int kube_time_parse(const char *s, usec_t *ret);

/* Parses a Go-style duration ("90s", "5m", "1h30m", "250ms", "0") → µs; -EINVAL otherwise. */
int mr_duration_parse(const char *s, usec_t *ret);
/* Formats µs as a short human duration ("2m30s", "450ms"). Returns buf. */
char *mr_duration_format(usec_t d, char *buf, size_t size);
