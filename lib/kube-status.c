/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kube-status.c — what an API server's "no" means (see kube.h).
 *
 * The HTTP code decides the error; the Status body (metav1.Status,
 * apimachinery pkg/apis/meta/v1/types.go) only refines it. The one place the
 * body matters is 409: reason "AlreadyExists" (a create of an existing name)
 * is -EEXIST, anything else is a write conflict, -MR_ECONFLICT. When the body
 * is not a Status (a proxy's HTML page, an empty body) the reason is
 * synthesised from the code, as client-go's NewGenericServerResponse does, so
 * callers and messages look the same either way.
 *
 * Retry-After: the header wins when it is a valid number of seconds;
 * otherwise details.retryAfterSeconds. Both are capped at
 * KUBE_RETRY_AFTER_MAX. The HTTP-date form is not used by the API server and
 * is ignored.
 *
 * Everything here is pure and never fails: it runs on hostile input and is
 * fuzzed (tests/fuzz/fuzz-kube-status.c).
 */
#include <ctype.h>
#include <stdio.h>

#include "meshroll/kube.h"

/* A Status body larger than this is not a Status; do not spend time parsing it. */
#define STATUS_BODY_MAX (256u * 1024u)

static const char *reason_from_code(int code)
{
        switch (code) {
        case 400: return "BadRequest";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "NotFound";
        case 405: return "MethodNotAllowed";
        case 406: return "NotAcceptable";
        case 409: return "Conflict";
        case 410: return "Gone";
        case 415: return "UnsupportedMediaType";
        case 422: return "Invalid";
        case 429: return "TooManyRequests";
        case 500: return "InternalError";
        case 503: return "ServiceUnavailable";
        case 504: return "Timeout";
        default: return "";
        }
}

static int error_from_code(int code, const char *reason)
{
        if (code >= 200 && code < 300)
                return 0;
        if (code >= 500 && code < 600)
                return -EIO;
        switch (code) {
        case 0: return -MR_ETRANSPORT;
        case 400: return -MR_EBADREQUEST;
        case 401: return -MR_EUNAUTHORIZED;
        case 403: return -MR_EFORBIDDEN;
        case 404: return -ENOENT;
        case 406:
        case 415: return -MR_EMEDIATYPE;
        case 409: return streq(reason, "AlreadyExists") ? -EEXIST : -MR_ECONFLICT;
        case 410: return -MR_EGONE;
        case 422: return -MR_EINVALID;
        case 429: return -MR_ETOOMANY;
        default: return -MR_ESERVER;
        }
}

/* Copies s into a fixed buffer, replacing control characters so the text is safe to log. */
static void copy_printable(char *dst, size_t size, const char *s, size_t len)
{
        size_t n = MIN(len, size - 1);
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)s[i];
                dst[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
        }
        dst[n] = 0;
}

/* Seconds as a string ("10") → µs, capped. Anything else (dates, junk, negatives) → 0. */
static usec_t parse_retry_after(const char *s)
{
        uint64_t v = 0;
        size_t i = 0;

        if (!s)
                return 0;
        while (s[i] == ' ' || s[i] == '\t')
                i++;
        if (!isdigit((unsigned char)s[i]))
                return 0;
        for (; isdigit((unsigned char)s[i]); i++) {
                v = v * 10 + (uint64_t)(s[i] - '0');
                if (v > KUBE_RETRY_AFTER_MAX / USEC_PER_SEC)
                        return KUBE_RETRY_AFTER_MAX;
        }
        while (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')
                i++;
        if (s[i] != 0)
                return 0;
        return v * USEC_PER_SEC;
}

static void fill_from_object(json_object *o, KubeStatus *st)
{
        const char *reason = mr_json_get_str(o, "reason", NULL);
        const char *message = mr_json_get_str(o, "message", NULL);
        int64_t secs;

        if (reason)
                copy_printable(st->reason, sizeof(st->reason), reason, strlen(reason));
        if (message)
                copy_printable(st->message, sizeof(st->message), message, strlen(message));
        if (st->retry_after == 0 && mr_json_get_int(&secs, o, "details", "retryAfterSeconds", NULL) == 0 &&
            secs > 0)
                st->retry_after = (uint64_t)secs > KUBE_RETRY_AFTER_MAX / USEC_PER_SEC
                                          ? KUBE_RETRY_AFTER_MAX
                                          : (usec_t)secs * USEC_PER_SEC;
}

/* Completes st (reason and message from the code when the body gave none) and maps the error. */
static int finish(int http_code, KubeStatus *st)
{
        if (st->reason[0] == 0)
                snprintf(st->reason, sizeof(st->reason), "%s", reason_from_code(http_code));
        if (st->message[0] == 0 && (http_code < 200 || http_code >= 300))
                snprintf(st->message, sizeof(st->message), "the server responded with HTTP %d%s%s%s", http_code,
                         st->reason[0] ? " (" : "", st->reason, st->reason[0] ? ")" : "");
        return error_from_code(http_code, st->reason);
}

int kube_status_decode(int http_code, const char *body, size_t body_size, const char *retry_after_header,
                       KubeStatus *ret)
{
        KubeStatus st = { .http_code = http_code };

        if (http_code >= 200 && http_code < 300) {
                if (ret)
                        *ret = st;
                return 0;
        }

        st.retry_after = parse_retry_after(retry_after_header);

        if (body && body_size > 0 && body_size <= STATUS_BODY_MAX) {
                _cleanup_(json_object_putp) json_object *o = NULL;
                if (mr_json_parse(body, body_size, STATUS_BODY_MAX, &o) == 0 &&
                    json_object_is_type(o, json_type_object))
                        fill_from_object(o, &st);
        }

        int r = finish(http_code, &st);
        if (ret)
                *ret = st;
        return r;
}

int kube_status_decode_object(json_object *o, KubeStatus *ret)
{
        KubeStatus st = {};
        int64_t code;

        if (mr_json_get_int(&code, o, "code", NULL) < 0 || code < 100 || code > 599)
                code = 500;
        st.http_code = (int)code;
        if (code < 200 || code >= 300) {
                if (json_object_is_type(o, json_type_object))
                        fill_from_object(o, &st);
        }

        int r = code >= 200 && code < 300 ? 0 : finish(st.http_code, &st);
        if (ret)
                *ret = st;
        return r;
}

const char *kube_patch_content_type(KubePatchType t)
{
        switch (t) {
        case KUBE_PATCH_MERGE: return "application/merge-patch+json";
        case KUBE_PATCH_STRATEGIC: return "application/strategic-merge-patch+json";
        case KUBE_PATCH_JSON: return "application/json-patch+json";
        }
        return "application/merge-patch+json";
}

const char *kube_watch_event_type_to_string(KubeWatchEventType t)
{
        static const char *const names[_KUBE_WATCH_EVENT_TYPE_MAX] = {
                [KUBE_WATCH_ADDED] = "ADDED",     [KUBE_WATCH_MODIFIED] = "MODIFIED",
                [KUBE_WATCH_DELETED] = "DELETED", [KUBE_WATCH_BOOKMARK] = "BOOKMARK",
                [KUBE_WATCH_ERROR] = "ERROR",     [KUBE_WATCH_RESET] = "RESET",
                [KUBE_WATCH_SYNCED] = "SYNCED",
        };
        return (unsigned)t < ELEMENTSOF(names) ? names[t] : NULL;
}
