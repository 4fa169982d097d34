/* SPDX-License-Identifier: Apache-2.0 */
/*
 * curl-lazy.c — libcurl for meshroll-agent, loaded on first use.
 *
 * Why: Debian's libcurl pulls in some twenty libraries (OpenSSL, Kerberos,
 * LDAP, SASL, libssh2, librtmp, nghttp2, brotli …). Mapping and relocating
 * them costs about 3.5 MiB of RSS and a few milliseconds in every process,
 * whether or not it ever talks HTTP. `meshroll-agent --once` without
 * --node never does, and it is what an operator runs on a busy node. So
 * the agent binary is linked without -lcurl (agent/meson.build) and this
 * file defines the libcurl functions libmeshroll calls: the first call
 * dlopen()s libcurl.so.4 (the soname libcurl has kept since 7.16) and each
 * function is looked up once. systemd does the same for its optional
 * libraries (src/shared/dlfcn-util.c).
 *
 * If libcurl cannot be loaded, every call fails the way libcurl itself
 * fails to initialise (NULL handles, CURLE_FAILED_INIT), and
 * curl_easy_strerror() says what dlopen() reported, so the API client's
 * error names the missing library.
 *
 * The file does not include <curl/curl.h>: its prototypes change in small
 * ways between releases (curl_url_get() gained a const handle in 8.x) and
 * a definition must match the installed header exactly. At the ABI level
 * every handle is a pointer and every code or enum an int, so the
 * functions are declared here with those types; the error codes used are
 * the ones libcurl-errors(3) documents as stable (CURLE_FAILED_INIT 2,
 * CURLM_BAD_HANDLE 1, CURLUE_OUT_OF_MEMORY 7).
 *
 * Variadic setters (curl_easy_setopt, curl_multi_setopt,
 * curl_easy_getinfo) take exactly one argument after the option, always a
 * long, a curl_off_t, a data pointer or a function pointer — all one
 * 64-bit general-purpose register on the ABIs the agent is built for
 * (x86-64 and aarch64 Linux, LP64) — so it is read as a pointer-sized
 * integer and passed on unchanged.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "meshroll/macro.h"

_Static_assert(sizeof(void *) == 8 && sizeof(long) == 8,
               "curl-lazy.c forwards variadic arguments as one 64-bit word (LP64 only)");

#define LIBCURL_SONAME "libcurl.so.4"

#define CURLE_FAILED_INIT 2
#define CURLM_BAD_HANDLE 1
#define CURLUE_OUT_OF_MEMORY 7

/* The libcurl API libmeshroll uses, as the ABI sees it (see above). */
int curl_global_init(long flags);
void *curl_easy_init(void);
int curl_easy_perform(void *curl);
void curl_easy_cleanup(void *curl);
void curl_easy_reset(void *curl);
void curl_free(void *p);
void *curl_slist_append(void *list, const char *s);
void curl_slist_free_all(void *list);
void *curl_multi_init(void);
int curl_multi_cleanup(void *m);
int curl_multi_add_handle(void *m, void *e);
int curl_multi_remove_handle(void *m, void *e);
int curl_multi_assign(void *m, int s, void *p);
void *curl_multi_info_read(void *m, int *left);
int curl_multi_socket_action(void *m, int s, int mask, int *running);
void *curl_url(void);
void curl_url_cleanup(void *u);
int curl_url_get(void *u, int what, char **part, unsigned int flags);
int curl_url_set(void *u, int what, const char *part, unsigned int flags);
const char *curl_easy_strerror(int code);
int curl_easy_setopt(void *h, int option, ...);
int curl_easy_getinfo(void *h, int option, ...);
int curl_multi_setopt(void *h, int option, ...);

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static void *libcurl;
static char load_error[256];

static void load(void)
{
        libcurl = dlopen(LIBCURL_SONAME, RTLD_NOW | RTLD_LOCAL);
        if (!libcurl) {
                const char *e = dlerror();
                (void)snprintf(load_error, sizeof(load_error), "%s could not be loaded: %s", LIBCURL_SONAME,
                               e ? e : "unknown error");
        }
}

/* The address of name in libcurl, or NULL when libcurl or the symbol is missing. */
static void *lookup(const char *name)
{
        (void)pthread_once(&load_once, load);
        return libcurl ? dlsym(libcurl, name) : NULL;
}

/*
 * Resolves fn (a function pointer variable) once. The store goes through a
 * void * lvalue, as POSIX's dlsym() page recommends, since ISO C has no
 * conversion from object to function pointers.
 */
#define RESOLVE(fn, name)                                                          \
        do {                                                                       \
                if (!__atomic_load_n(&(fn), __ATOMIC_ACQUIRE)) {                   \
                        void *_p = lookup(name);                                   \
                        __atomic_store((void **)&(fn), &_p, __ATOMIC_RELEASE);     \
                }                                                                  \
        } while (0)

/* A function returning a value (fail when libcurl is missing). */
#define LAZY(ret, name, params, args, fail)         \
        ret name params                             \
        {                                           \
                static ret(*fn) params;             \
                RESOLVE(fn, #name);                 \
                return fn ? fn args : (fail);       \
        }

/* A function returning nothing (a no-op when libcurl is missing: there is nothing to free). */
#define LAZY_VOID(name, params, args)               \
        void name params                            \
        {                                           \
                static void(*fn) params;            \
                RESOLVE(fn, #name);                 \
                if (fn)                             \
                        fn args;                    \
        }

LAZY(int, curl_global_init, (long flags), (flags), CURLE_FAILED_INIT)
LAZY(void *, curl_easy_init, (void), (), NULL)
LAZY(int, curl_easy_perform, (void *curl), (curl), CURLE_FAILED_INIT)
LAZY_VOID(curl_easy_cleanup, (void *curl), (curl))
LAZY_VOID(curl_easy_reset, (void *curl), (curl))
LAZY_VOID(curl_free, (void *p), (p))
LAZY(void *, curl_slist_append, (void *list, const char *s), (list, s), NULL)
LAZY_VOID(curl_slist_free_all, (void *list), (list))
LAZY(void *, curl_multi_init, (void), (), NULL)
LAZY(int, curl_multi_cleanup, (void *m), (m), CURLM_BAD_HANDLE)
LAZY(int, curl_multi_add_handle, (void *m, void *e), (m, e), CURLM_BAD_HANDLE)
LAZY(int, curl_multi_remove_handle, (void *m, void *e), (m, e), CURLM_BAD_HANDLE)
LAZY(int, curl_multi_assign, (void *m, int s, void *p), (m, s, p), CURLM_BAD_HANDLE)
LAZY(void *, curl_multi_info_read, (void *m, int *left), (m, left), NULL)
LAZY(int, curl_multi_socket_action, (void *m, int s, int mask, int *running), (m, s, mask, running),
     CURLM_BAD_HANDLE)
LAZY(void *, curl_url, (void), (), NULL)
LAZY_VOID(curl_url_cleanup, (void *u), (u))
LAZY(int, curl_url_get, (void *u, int what, char **part, unsigned int flags), (u, what, part, flags),
     CURLUE_OUT_OF_MEMORY)
LAZY(int, curl_url_set, (void *u, int what, const char *part, unsigned int flags), (u, what, part, flags),
     CURLUE_OUT_OF_MEMORY)

const char *curl_easy_strerror(int code)
{
        static const char *(*fn)(int);
        RESOLVE(fn, "curl_easy_strerror");
        if (fn)
                return fn(code);
        (void)pthread_once(&load_once, load);
        return load_error[0] ? load_error : "libcurl is missing curl_easy_strerror";
}

/* The variadic three: one word after the option, passed on as it came. */
#define LAZY_VARIADIC(name, fail)                                     \
        int name(void *h, int option, ...)                            \
        {                                                             \
                static int (*fn)(void *, int, ...);                   \
                va_list ap;                                           \
                va_start(ap, option);                                 \
                void *arg = va_arg(ap, void *);                       \
                va_end(ap);                                           \
                RESOLVE(fn, #name);                                   \
                return fn ? fn(h, option, arg) : (fail);              \
        }

LAZY_VARIADIC(curl_easy_setopt, CURLE_FAILED_INIT)
LAZY_VARIADIC(curl_easy_getinfo, CURLE_FAILED_INIT)
LAZY_VARIADIC(curl_multi_setopt, CURLM_BAD_HANDLE)
