/* SPDX-License-Identifier: Apache-2.0 */
/*
 * errors.h — meshroll's error space.
 *
 * Everything that can fail returns int: 0 (or a positive count) on success
 * and a negative error on failure (systemd's convention). System errors are
 * -errno; errors that no errno names get numbers from 1024 up, so they can
 * never collide with the kernel's (apk-tools does the same).
 *
 * Failures that a person must read (a bad kubeconfig, a malformed spec) also
 * carry a sentence. Library code does not log, so it fills an MrError that
 * the caller passes in (may be NULL when the caller does not want it).
 */
#pragma once

#include <stddef.h>

#include "meshroll/macro.h"

enum {
        MR_ERRNO_BASE = 1024,
        MR_ECONFLICT = MR_ERRNO_BASE, /* 409 Conflict: stale resourceVersion */
        MR_EGONE,                     /* 410 Gone: resourceVersion too old, relist */
        MR_ETOOMANY,                  /* 429 TooManyRequests (rate limit, or a PDB blocked an eviction) */
        MR_EINVALID,                  /* 422 Invalid: the server rejected the object */
        MR_EBADREQUEST,               /* 400 BadRequest */
        MR_EUNAUTHORIZED,             /* 401: credentials missing or rejected */
        MR_EFORBIDDEN,                /* 403: RBAC denied */
        MR_EMEDIATYPE,                /* 415 UnsupportedMediaType / 406 NotAcceptable */
        MR_ESERVER,                   /* any other unexpected HTTP status */
        MR_ECONFIG,                   /* configuration (flags, kubeconfig, spec file) is wrong */
        MR_EPARSE,                    /* input could not be parsed (YAML, JSON, /proc line) */
        MR_ETOOBIG,                   /* input exceeded its size cap */
        MR_ETLS,                      /* TLS handshake or certificate verification failed */
        MR_ETRANSPORT,                /* other transport failure (connection reset, DNS, protocol) */
        MR_ELOSTLEASE,                /* leadership was lost: stop mutating */
        MR_EGATE,                     /* a rollout gate failed */
        MR_ERRNO_MAX,
};

/* A human sentence to go with a failure. Fixed size: filling it never fails. */
typedef struct MrError {
        int error;          /* negative error, as returned */
        char message[1024]; /* "kubeconfig /x: users[0].user.token: expected a string" */
} MrError;

/*
 * Records err and a message in *e (when e is not NULL) and returns -abs(err),
 * so library code can write `return mr_error_set(e, -EINVAL, "…");`.
 * A message already present is replaced.
 */
int mr_error_set(MrError *e, int err, const char *fmt, ...) _printf_(3, 4);

/*
 * Prefixes an already-set message with "prefix: " (no-op for NULL e). It
 * returns nothing on purpose: with a NULL e there is no error to return, and
 * `return mr_error_prefix(…)` would turn a failure into success.
 */
void mr_error_prefix(MrError *e, const char *fmt, ...) _printf_(2, 3);

/*
 * Describes any meshroll error (negative or positive). Project codes get their
 * own text; anything else goes to strerror_r. The result is a static string or
 * lives in a thread-local buffer valid until the next call on this thread.
 */
const char *mr_strerror(int err);

/* Symbolic name such as "ECONFLICT" or "ENOENT", or NULL when unknown. Static. */
const char *mr_errno_name(int err);
