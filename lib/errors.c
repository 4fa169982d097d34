/* SPDX-License-Identifier: Apache-2.0 */
/*
 * errors.c — texts for meshroll's own error numbers and the MrError helpers.
 * See errors.h for the convention.
 */
#include <stdarg.h>
#include <stdio.h>

#include "meshroll/errors.h"

static const struct {
        const char *name;
        const char *text;
} project_errors[] = {
        [MR_ECONFLICT - MR_ERRNO_BASE] = { "ECONFLICT", "Conflict: the object was modified concurrently" },
        [MR_EGONE - MR_ERRNO_BASE] = { "EGONE", "Resource version too old (410 Gone)" },
        [MR_ETOOMANY - MR_ERRNO_BASE] = { "ETOOMANY", "Too many requests" },
        [MR_EINVALID - MR_ERRNO_BASE] = { "EINVALID", "The server rejected the object as invalid" },
        [MR_EBADREQUEST - MR_ERRNO_BASE] = { "EBADREQUEST", "Bad request" },
        [MR_EUNAUTHORIZED - MR_ERRNO_BASE] = { "EUNAUTHORIZED", "Unauthorized: credentials missing or rejected" },
        [MR_EFORBIDDEN - MR_ERRNO_BASE] = { "EFORBIDDEN", "Forbidden by the API server" },
        [MR_EMEDIATYPE - MR_ERRNO_BASE] = { "EMEDIATYPE", "Unsupported media type" },
        [MR_ESERVER - MR_ERRNO_BASE] = { "ESERVER", "Unexpected answer from the server" },
        [MR_ECONFIG - MR_ERRNO_BASE] = { "ECONFIG", "Invalid configuration" },
        [MR_EPARSE - MR_ERRNO_BASE] = { "EPARSE", "Malformed input" },
        [MR_ETOOBIG - MR_ERRNO_BASE] = { "ETOOBIG", "Input exceeds its size limit" },
        [MR_ETLS - MR_ERRNO_BASE] = { "ETLS", "TLS handshake or certificate verification failed" },
        [MR_ETRANSPORT - MR_ERRNO_BASE] = { "ETRANSPORT", "Transport failure talking to the server" },
        [MR_ELOSTLEASE - MR_ERRNO_BASE] = { "ELOSTLEASE", "Leadership lost" },
        [MR_EGATE - MR_ERRNO_BASE] = { "EGATE", "Gate failed" },
};

static const struct {
        int e;
        const char *name;
} errno_names[] = {
        { EPERM, "EPERM" },         { ENOENT, "ENOENT" },       { EIO, "EIO" },
        { ENOMEM, "ENOMEM" },       { EACCES, "EACCES" },       { EEXIST, "EEXIST" },
        { EINVAL, "EINVAL" },       { EBADMSG, "EBADMSG" },     { ETIMEDOUT, "ETIMEDOUT" },
        { ECONNREFUSED, "ECONNREFUSED" }, { ECONNRESET, "ECONNRESET" }, { ECANCELED, "ECANCELED" },
        { EAGAIN, "EAGAIN" },       { ENOTSUP, "ENOTSUP" },     { ESTALE, "ESTALE" },
        { EBUSY, "EBUSY" },         { E2BIG, "E2BIG" },         { ERANGE, "ERANGE" },
        { EINTR, "EINTR" },         { ENODATA, "ENODATA" },     { EPROTO, "EPROTO" },
};

const char *mr_errno_name(int err)
{
        if (err < 0)
                err = -err;
        if (err >= MR_ERRNO_BASE && err < MR_ERRNO_MAX)
                return project_errors[err - MR_ERRNO_BASE].name;
        for (size_t i = 0; i < ELEMENTSOF(errno_names); i++)
                if (errno_names[i].e == err)
                        return errno_names[i].name;
        return NULL;
}

const char *mr_strerror(int err)
{
        static __thread char buf[128];

        if (err < 0)
                err = -err;
        if (err >= MR_ERRNO_BASE && err < MR_ERRNO_MAX)
                return project_errors[err - MR_ERRNO_BASE].text;
        if (err >= MR_ERRNO_BASE) {
                (void)snprintf(buf, sizeof(buf), "Unknown meshroll error %d", err);
                return buf;
        }
        /* GNU strerror_r returns a pointer that may or may not be buf. */
        return strerror_r(err, buf, sizeof(buf));
}

int mr_error_set(MrError *e, int err, const char *fmt, ...)
{
        int r = err < 0 ? err : -err;

        if (e) {
                va_list ap;
                va_start(ap, fmt);
                (void)vsnprintf(e->message, sizeof(e->message), fmt, ap);
                va_end(ap);
                e->error = r;
        }
        return r;
}

void mr_error_prefix(MrError *e, const char *fmt, ...)
{
        char prefix[512], old[sizeof(e->message)];
        va_list ap;

        if (!e)
                return;
        va_start(ap, fmt);
        (void)vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);
        memcpy(old, e->message, sizeof(old));
        (void)snprintf(e->message, sizeof(e->message), "%s: %s", prefix, old);
}
