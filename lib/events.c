/* SPDX-License-Identifier: Apache-2.0 */
/*
 * events.c — core/v1 Events written like client-go's tools/record (see
 * events.h for the object and the rules it follows).
 *
 * The object is built by one pure function, so the unit tests check every
 * field without a server; the blocking and the event-loop variants only
 * differ in how they POST it.
 *
 * Names. client-go names an event "<object name>.<hex UnixNano>". Our clock
 * has µs resolution, so two events about one object within a microsecond
 * would clash (409 AlreadyExists). A process-wide atomic high-water mark
 * makes the nanosecond stamps strictly increasing instead; a clash with
 * another process is left to one generateName retry (blocking variant). The
 * object name is shortened when needed so the event name stays a valid
 * DNS subdomain of at most 253 characters.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "meshroll/events.h"
#include "meshroll/json-util.h"

#define EVENT_NAME_MAX 253
/* "." and up to 16 hex digits */
#define EVENT_SUFFIX_MAX 17
#define HOST_MAX 128

const char *kube_event_namespace(const KubeEventRef *ref)
{
        return ref && !isempty(ref->namespace) ? ref->namespace : "default";
}

/* The length of the longest prefix of s, at most max bytes, that does not split a UTF-8 sequence. */
static size_t utf8_prefix(const char *s, size_t len, size_t max)
{
        if (len <= max)
                return len;
        /* s[max] is the first byte left out: while it continues a sequence, the sequence started before. */
        size_t n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
                n--;
        return n;
}

/* "<name>." shortened so that a suffix still fits, without a trailing '.' or '-' (an invalid label end). */
static int name_prefix(const char *name, char **ret)
{
        size_t n = MIN(strlen(name), (size_t)(EVENT_NAME_MAX - EVENT_SUFFIX_MAX));
        while (n > 0 && (name[n - 1] == '.' || name[n - 1] == '-'))
                n--;
        if (n == 0)
                return -EINVAL;
        char *p = malloc(n + 2);
        if (!p)
                return -ENOMEM;
        memcpy(p, name, n);
        p[n] = '.';
        p[n + 1] = 0;
        *ret = p;
        return 0;
}

static bool valid_type(const char *type)
{
        return streq_ptr(type, KUBE_EVENT_NORMAL) || streq_ptr(type, KUBE_EVENT_WARNING);
}

static int set_opt(json_object *o, const char *key, const char *value)
{
        return isempty(value) ? 0 : mr_json_set_str(o, key, value);
}

static int build(const KubeEventRef *ref, const char *type, const char *reason, const char *message,
                 const char *component, const char *instance, usec_t now, uint64_t name_nsec,
                 json_object **ret)
{
        _cleanup_(json_object_putp) json_object *ev = NULL;
        _cleanup_free_ char *prefix = NULL, *name = NULL;
        json_object *meta, *obj, *src, *msg;
        char ts[KUBE_TIME_MAX];
        int r;

        if (!ref || isempty(ref->api_version) || isempty(ref->kind) || isempty(ref->name) ||
            !valid_type(type) || isempty(reason) || strlen(reason) > KUBE_EVENT_REASON_MAX ||
            isempty(component))
                return -EINVAL;
        if ((r = name_prefix(ref->name, &prefix)) < 0)
                return r;
        if (asprintf(&name, "%s%" PRIx64, prefix, name_nsec) < 0) {
                name = NULL;
                return -ENOMEM;
        }
        message = strempty(message);
        size_t mlen = utf8_prefix(message, strlen(message), KUBE_EVENT_MESSAGE_MAX);
        kube_time_format(now, ts);

        /* Keys in the order of the reference's example (json-c keeps insertion order). */
        if (!(ev = json_object_new_object()) || mr_json_set_str(ev, "apiVersion", "v1") < 0 ||
            mr_json_set_str(ev, "kind", "Event") < 0 ||
            !(meta = mr_json_ensure_object(ev, "metadata", NULL)) ||
            mr_json_set_str(meta, "name", name) < 0 ||
            mr_json_set_str(meta, "namespace", kube_event_namespace(ref)) < 0)
                return -ENOMEM;

        if (!(obj = mr_json_ensure_object(ev, "involvedObject", NULL)) ||
            mr_json_set_str(obj, "apiVersion", ref->api_version) < 0 ||
            mr_json_set_str(obj, "kind", ref->kind) < 0 || set_opt(obj, "namespace", ref->namespace) < 0 ||
            mr_json_set_str(obj, "name", ref->name) < 0 || set_opt(obj, "uid", ref->uid) < 0 ||
            set_opt(obj, "resourceVersion", ref->resource_version) < 0)
                return -ENOMEM;

        if (mr_json_set_str(ev, "reason", reason) < 0)
                return -ENOMEM;
        if (!(msg = json_object_new_string_len(message, (int)mlen)) ||
            json_object_object_add(ev, "message", msg) < 0) {
                json_object_put(msg);
                return -ENOMEM;
        }
        if (mr_json_set_str(ev, "type", type) < 0)
                return -ENOMEM;

        if (!(src = mr_json_ensure_object(ev, "source", NULL)) ||
            mr_json_set_str(src, "component", component) < 0 || set_opt(src, "host", instance) < 0)
                return -ENOMEM;
        if (mr_json_set_str(ev, "reportingComponent", component) < 0 ||
            mr_json_set_str(ev, "reportingInstance", strempty(instance)) < 0)
                return -ENOMEM;

        if (mr_json_set_str(ev, "firstTimestamp", ts) < 0 || mr_json_set_str(ev, "lastTimestamp", ts) < 0 ||
            mr_json_set_int(ev, "count", 1) < 0 || mr_json_set_str(ev, "eventTime", NULL) < 0)
                return -ENOMEM;

        *ret = TAKE_PTR(ev);
        return 0;
}

int kube_event_build(const KubeEventRef *involved, const char *type, const char *reason, const char *message,
                     const char *component, const char *instance, usec_t now, json_object **ret)
{
        return build(involved, type, reason, message, component, instance, now,
                     (uint64_t)now * NSEC_PER_USEC, ret);
}

/* now in ns, raised above every stamp this process has handed out. */
static uint64_t unique_nsec(usec_t now)
{
        static _Atomic uint64_t last;
        uint64_t want = (uint64_t)now * NSEC_PER_USEC, prev = atomic_load(&last), v;

        do
                v = want > prev ? want : prev + 1;
        while (!atomic_compare_exchange_weak(&last, &prev, v));
        return v;
}

/* This host's name (a pod's name in a pod), or "" when it cannot be read. */
static void host_name(char buf[static HOST_MAX + 1])
{
        if (gethostname(buf, HOST_MAX) < 0)
                buf[0] = 0;
        buf[HOST_MAX] = 0;
}

/* The event and the path to POST it to. */
static int prepare(const KubeEventRef *involved, const char *type, const char *reason, const char *message,
                   const char *component, const MrClock *clock, json_object **ret_event, char **ret_path)
{
        _cleanup_(json_object_putp) json_object *ev = NULL;
        char host[HOST_MAX + 1];
        usec_t now = mr_now_realtime(clock);
        int r;

        host_name(host);
        if ((r = build(involved, type, reason, message, component, host, now, unique_nsec(now), &ev)) < 0)
                return r;
        if ((r = kube_path(&KUBE_EVENTS, kube_event_namespace(involved), NULL, NULL, ret_path)) < 0)
                return r;
        *ret_event = TAKE_PTR(ev);
        return 0;
}

int kube_event_emit(KubeClient *c, const KubeEventRef *involved, const char *type, const char *reason,
                    const char *message, const char *component, const MrClock *clock)
{
        _cleanup_(json_object_putp) json_object *ev = NULL;
        _cleanup_free_ char *path = NULL, *prefix = NULL;
        json_object *meta;
        int r;

        if (!c)
                return -EINVAL;
        if ((r = prepare(involved, type, reason, message, component, clock, &ev, &path)) < 0)
                return r;
        r = kube_create(c, path, ev, NULL, NULL);
        if (r != -EEXIST)
                return r;

        /* Another process took this name: let the server pick one. */
        meta = mr_json_get(ev, "metadata", NULL);
        if ((r = name_prefix(involved->name, &prefix)) < 0)
                return r;
        json_object_object_del(meta, "name");
        if (mr_json_set_str(meta, "generateName", prefix) < 0)
                return -ENOMEM;
        return kube_create(c, path, ev, NULL, NULL);
}

static void ignore_result(KubeClient *c, int error, json_object *body, const KubeStatus *status,
                          void *userdata)
{
}

int kube_event_emit_async(KubeClient *c, const KubeEventRef *involved, const char *type, const char *reason,
                          const char *message, const char *component, const MrClock *clock,
                          kube_callback_t cb, void *userdata)
{
        _cleanup_(json_object_putp) json_object *ev = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        if (!c)
                return -EINVAL;
        if ((r = prepare(involved, type, reason, message, component, clock, &ev, &path)) < 0)
                return r;
        /* The request is copied and the body serialized now: ev and path may go when we return. */
        return kube_request_async(c, &(KubeRequest){.method = "POST", .path = path, .body = ev},
                                  cb ? cb : ignore_result, userdata, NULL);
}
