/* SPDX-License-Identifier: Apache-2.0 */
/*
 * macro.h — the small vocabulary every meshroll file uses.
 *
 * Scope-bound cleanup (systemd's pattern): a variable declared
 * `_cleanup_free_ char *s = NULL;` is freed when it leaves scope, and
 * `return TAKE_PTR(s);` hands it to the caller instead. libsystemd exports
 * sd_event_unrefp() and friends but not these macros, so they live here.
 *
 * Rules: cleanup functions accept NULL (or a negative fd) and do nothing;
 * destructors named x_free() return NULL so `p = x_free(p);` reads well.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _pure_ __attribute__((pure))
#define _const_ __attribute__((const))
#define _warn_unused_result_ __attribute__((warn_unused_result))
#define _noreturn_ __attribute__((noreturn))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define MIN(a, b)                                                                                          \
        ({                                                                                                 \
                __typeof__(a) _a = (a);                                                                    \
                __typeof__(b) _b = (b);                                                                    \
                _a < _b ? _a : _b;                                                                         \
        })
#define MAX(a, b)                                                                                          \
        ({                                                                                                 \
                __typeof__(a) _a = (a);                                                                    \
                __typeof__(b) _b = (b);                                                                    \
                _a > _b ? _a : _b;                                                                         \
        })
#define CLAMP(x, lo, hi)                                                                                   \
        ({                                                                                                 \
                __typeof__(x) _x = (x), _lo = (lo), _hi = (hi);                                            \
                _x < _lo ? _lo : _x > _hi ? _hi : _x;                                                      \
        })

/* Take ownership out of a cleanup variable: returns the value, leaves NULL behind. */
#define TAKE_PTR(p)                                                                                        \
        ({                                                                                                 \
                __typeof__(p) _p = (p);                                                                    \
                (p) = NULL;                                                                                \
                _p;                                                                                        \
        })
#define TAKE_FD(fd)                                                                                        \
        ({                                                                                                 \
                int _fd = (fd);                                                                            \
                (fd) = -EBADF;                                                                             \
                _fd;                                                                                       \
        })

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                (void)close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

/* Frees a NULL-terminated array of strings and the array itself. */
static inline char **strv_free(char **l)
{
        if (l)
                for (char **i = l; *i; i++)
                        free(*i);
        free(l);
        return NULL;
}
static inline void strv_freep(char ***l)
{
        strv_free(*l);
}
#define _cleanup_strv_free_ _cleanup_(strv_freep)

/*
 * DEFINE_TRIVIAL_CLEANUP_FUNC(Foo *, foo_free) defines foo_freep(Foo **),
 * usable as _cleanup_(foo_freep).
 */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                            \
        static inline void func##p(type *p)                                                                \
        {                                                                                                  \
                if (*p)                                                                                    \
                        func(*p);                                                                          \
        }

static inline bool streq_ptr(const char *a, const char *b)
{
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
#define streq(a, b) (strcmp((a), (b)) == 0)
#define strneq(a, b, n) (strncmp((a), (b), (n)) == 0)
#define isempty(s) (!(s) || !(s)[0])
#define strna(s) ((s) ? (s) : "n/a")
#define strempty(s) ((s) ? (s) : "")

/* Returns the rest of s after prefix, or NULL when s does not start with it. */
static inline const char *startswith(const char *s, const char *prefix)
{
        size_t l = strlen(prefix);
        return strncmp(s, prefix, l) == 0 ? s + l : NULL;
}

static inline bool endswith(const char *s, const char *suffix)
{
        size_t ls = strlen(s), lx = strlen(suffix);
        return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

/* A copy of size bytes with a NUL after them (binary data usable as a C string); NULL on ENOMEM. */
static inline char *memdup_nul(const void *p, size_t size)
{
        char *d = malloc(size + 1);
        if (d) {
                memcpy(d, p, size);
                d[size] = 0;
        }
        return d;
}

/* Microseconds: the unit of every duration and timestamp in meshroll (as sd-event's uint64_t usec). */
typedef uint64_t usec_t;
#define USEC_INFINITY ((usec_t)UINT64_MAX)
#define USEC_PER_MSEC ((usec_t)1000ULL)
#define USEC_PER_SEC ((usec_t)1000000ULL)
#define USEC_PER_MINUTE (60ULL * USEC_PER_SEC)
#define NSEC_PER_USEC ((uint64_t)1000ULL)
