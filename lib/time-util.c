/* SPDX-License-Identifier: Apache-2.0 */
/*
 * time-util.c — see time-util.h.
 *
 * The RFC 3339 parser is hand-written and strict about layout (digits where
 * digits belong), so a malformed timestamp from a server is an error and
 * never a silently wrong time. timegm() turns the civil UTC time into
 * seconds; the fraction is kept to microseconds (longer fractions are
 * truncated, as Kubernetes' MicroTime keeps six digits).
 */
#include <stdio.h>
#include <time.h>

#include "meshroll/time-util.h"

static usec_t clock_usec(clockid_t id)
{
        struct timespec ts;
        (void)clock_gettime(id, &ts);
        return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / NSEC_PER_USEC;
}

usec_t mr_now_monotonic(const MrClock *clock)
{
        if (clock && clock->monotonic)
                return clock->monotonic(clock->userdata);
        return clock_usec(CLOCK_MONOTONIC);
}

usec_t mr_now_realtime(const MrClock *clock)
{
        if (clock && clock->realtime)
                return clock->realtime(clock->userdata);
        return clock_usec(CLOCK_REALTIME);
}

static usec_t fake_monotonic(void *userdata)
{
        return ((MrFakeClock *)userdata)->monotonic;
}

static usec_t fake_realtime(void *userdata)
{
        return ((MrFakeClock *)userdata)->realtime;
}

void mr_fake_clock_init(MrFakeClock *f, usec_t monotonic, usec_t realtime)
{
        *f = (MrFakeClock){
                .clock = { .monotonic = fake_monotonic, .realtime = fake_realtime, .userdata = f },
                .monotonic = monotonic,
                .realtime = realtime,
        };
}

static char *format_time(usec_t t, char buf[static KUBE_TIME_MAX], bool micro)
{
        time_t sec = (time_t)(t / USEC_PER_SEC);
        struct tm tm;

        if (!gmtime_r(&sec, &tm)) {
                buf[0] = 0;
                return buf;
        }
        if (micro)
                (void)snprintf(buf, KUBE_TIME_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900,
                               tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                               (unsigned)(t % USEC_PER_SEC));
        else
                (void)snprintf(buf, KUBE_TIME_MAX, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                               tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        return buf;
}

char *kube_time_format(usec_t t, char buf[static KUBE_TIME_MAX])
{
        return format_time(t, buf, false);
}

char *kube_microtime_format(usec_t t, char buf[static KUBE_TIME_MAX])
{
        return format_time(t, buf, true);
}

/* Reads exactly n digits at *p into *ret and advances. */
static bool digits(const char **p, int n, int *ret)
{
        int v = 0;
        for (int i = 0; i < n; i++) {
                char c = (*p)[i];
                if (c < '0' || c > '9')
                        return false;
                v = v * 10 + (c - '0');
        }
        *p += n;
        *ret = v;
        return true;
}

int kube_time_parse(const char *s, usec_t *ret)
{
        const char *p = s;
        int year, mon, day, hour, min, sec;
        usec_t frac = 0;
        long offset = 0;
        struct tm tm = {};

        if (!s)
                return -EINVAL;
        if (!digits(&p, 4, &year) || *p++ != '-' || !digits(&p, 2, &mon) || *p++ != '-' ||
            !digits(&p, 2, &day) || (*p != 'T' && *p != 't'))
                return -EINVAL;
        p++;
        if (!digits(&p, 2, &hour) || *p++ != ':' || !digits(&p, 2, &min) || *p++ != ':' ||
            !digits(&p, 2, &sec))
                return -EINVAL;
        if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
                return -EINVAL;
        if (*p == '.') {
                int n = 0;
                usec_t scale = USEC_PER_SEC / 10;
                p++;
                while (*p >= '0' && *p <= '9') {
                        frac += (usec_t)(*p - '0') * scale;
                        scale /= 10;
                        p++;
                        n++;
                }
                if (n == 0)
                        return -EINVAL;
        }
        if (*p == 'Z' || *p == 'z')
                p++;
        else if (*p == '+' || *p == '-') {
                int sign = *p == '-' ? -1 : 1, oh, om;
                p++;
                if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
                        return -EINVAL;
                offset = sign * (oh * 3600L + om * 60L);
        } else
                return -EINVAL;
        if (*p)
                return -EINVAL;

        tm.tm_year = year - 1900;
        tm.tm_mon = mon - 1;
        tm.tm_mday = day;
        tm.tm_hour = hour;
        tm.tm_min = min;
        tm.tm_sec = sec;
        time_t t = timegm(&tm);
        if (t == (time_t)-1 || t - offset < 0)
                return -EINVAL;
        *ret = (usec_t)(t - offset) * USEC_PER_SEC + frac;
        return 0;
}

int mr_duration_parse(const char *s, usec_t *ret)
{
        static const struct {
                const char *unit;
                usec_t mult;
        } units[] = {
                /* longest first so "ms" is not read as "m" */
                { "ms", USEC_PER_MSEC }, { "us", 1 }, { "µs", 1 }, { "ns", 0 },
                { "h", 3600 * USEC_PER_SEC }, { "m", USEC_PER_MINUTE }, { "s", USEC_PER_SEC },
        };
        usec_t total = 0;
        const char *p = s;

        if (isempty(s))
                return -EINVAL;
        if (streq(s, "0")) {
                *ret = 0;
                return 0;
        }
        while (*p) {
                uint64_t whole = 0;
                double frac = 0, scale = 0.1;
                bool any = false;
                size_t i;

                while (*p >= '0' && *p <= '9') {
                        if (whole > UINT64_MAX / 10 / 3600 / USEC_PER_SEC)
                                return -ERANGE;
                        whole = whole * 10 + (uint64_t)(*p++ - '0');
                        any = true;
                }
                if (*p == '.') {
                        p++;
                        while (*p >= '0' && *p <= '9') {
                                frac += (*p++ - '0') * scale;
                                scale /= 10;
                                any = true;
                        }
                }
                if (!any)
                        return -EINVAL;
                for (i = 0; i < ELEMENTSOF(units); i++)
                        if (startswith(p, units[i].unit))
                                break;
                if (i == ELEMENTSOF(units))
                        return -EINVAL;
                p += strlen(units[i].unit);
                if (units[i].mult == 0) /* nanoseconds: below our resolution */
                        total += whole / 1000;
                else
                        total += whole * units[i].mult + (usec_t)(frac * (double)units[i].mult);
        }
        *ret = total;
        return 0;
}

char *mr_duration_format(usec_t d, char *buf, size_t size)
{
        if (d == USEC_INFINITY)
                (void)snprintf(buf, size, "infinity");
        else if (d < USEC_PER_MSEC)
                (void)snprintf(buf, size, "%lluus", (unsigned long long)d);
        else if (d < USEC_PER_SEC)
                (void)snprintf(buf, size, "%llums", (unsigned long long)(d / USEC_PER_MSEC));
        else if (d < USEC_PER_MINUTE)
                (void)snprintf(buf, size, "%llu.%llus", (unsigned long long)(d / USEC_PER_SEC),
                               (unsigned long long)(d % USEC_PER_SEC / (USEC_PER_SEC / 10)));
        else if (d < 3600 * USEC_PER_SEC)
                (void)snprintf(buf, size, "%llum%llus", (unsigned long long)(d / USEC_PER_MINUTE),
                               (unsigned long long)(d % USEC_PER_MINUTE / USEC_PER_SEC));
        else
                (void)snprintf(buf, size, "%lluh%llum", (unsigned long long)(d / (3600 * USEC_PER_SEC)),
                               (unsigned long long)(d % (3600 * USEC_PER_SEC) / USEC_PER_MINUTE));
        return buf;
}
