/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_reliability-skew.c — an LD_PRELOAD shim that skews a process's wall
 * clock, as on a node whose clock is off: CLOCK_REALTIME (and its coarse
 * variant), gettimeofday() and time() read MESHROLL_TEST_CLOCK_SKEW seconds
 * (signed, may be fractional) ahead of the real clock. Monotonic clocks are
 * untouched: a skewed node still measures intervals correctly. The real
 * clocks are read through the system call, so no symbol lookup is needed.
 */
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int clock_gettime(clockid_t id, struct timespec *ts);
int gettimeofday(struct timeval *restrict tv, void *restrict tz);
time_t time(time_t *t);

static long long skew_nsec(void)
{
        static long long skew;
        static int loaded;
        if (!loaded) {
                const char *s = getenv("MESHROLL_TEST_CLOCK_SKEW");
                skew = s ? (long long)(strtod(s, NULL) * 1e9) : 0;
                loaded = 1;
        }
        return skew;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
        long r = syscall(SYS_clock_gettime, id, ts);
        if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
                long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + skew_nsec();
                ts->tv_sec = (time_t)(ns / 1000000000LL);
                ts->tv_nsec = (long)(ns % 1000000000LL);
        }
        return (int)r;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
        struct timespec ts;
        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return -1;
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
        return 0;
}

time_t time(time_t *t)
{
        struct timespec ts;
        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return (time_t)-1;
        if (t)
                *t = ts.tv_sec;
        return ts.tv_sec;
}
