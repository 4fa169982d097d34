/* SPDX-License-Identifier: Apache-2.0 */
/*
 * watch-parser.c — the newline-delimited watch event parser of kube.h.
 *
 * The API server writes one WatchEvent per line ({"type":…,"object":…}\n,
 * apimachinery's JSON framer), but libcurl hands bytes over in arbitrary
 * chunks. Design:
 *
 *   - Only the new chunk is searched for newlines (memchr), never bytes
 *     already buffered, so feeding n bytes costs O(n) whatever the split.
 *   - A line that lies entirely inside one chunk is parsed in place,
 *     without copying; only a line split across chunks is buffered.
 *   - The cap is checked before bytes are appended, so a partial line can
 *     never make the buffer exceed max_line: a server that streams an
 *     endless line costs at most max_line bytes, then -MR_ETOOBIG.
 *     The buffer grows by doubling and is released after a large line, so
 *     one 16 MiB object does not pin 16 MiB for the life of the watch.
 *   - A line is a watch event only if it is a JSON object whose "type" is
 *     exactly one of ADDED, MODIFIED, DELETED, BOOKMARK, ERROR (client-go
 *     rejects anything else: "got invalid watch event type") and whose
 *     "object" is a JSON object. Other keys are ignored, as Go's decoder
 *     does. Lines of only whitespace are skipped; a trailing '\r' is
 *     whitespace to the JSON parser.
 *   - Errors are sticky: after a parse error, a cap overrun or a negative
 *     callback return, the rest of the chunk is dropped and every later
 *     feed returns the same error until kube_watch_parser_reset().
 *   - The callback may call kube_watch_parser_reset() (say on an ERROR
 *     event, before reconnecting): the rest of the chunk is then dropped.
 *     It must not free the parser.
 *
 * Reference: /work/shared/reference/kubernetes-api.md §4.4.
 */
#include "meshroll/errors.h"
#include "meshroll/json-util.h"
#include "meshroll/kube.h"

#define WATCH_LINE_DEFAULT_MAX (16u << 20)
#define WATCH_BUF_INITIAL 4096u
#define WATCH_BUF_KEEP (64u << 10) /* buffers above this are freed once their line is done */

struct KubeWatchParser {
        char *buf;          /* the partial line carried over from earlier chunks */
        size_t len, alloc;
        size_t max_line;
        int error;          /* sticky failure, 0 while usable */
        unsigned generation; /* bumped by reset, so feed notices a reset from the callback */
        kube_watch_event_t cb;
        void *userdata;
};

static const char *const event_type_names[] = {
        [KUBE_WATCH_ADDED] = "ADDED",
        [KUBE_WATCH_MODIFIED] = "MODIFIED",
        [KUBE_WATCH_DELETED] = "DELETED",
        [KUBE_WATCH_BOOKMARK] = "BOOKMARK",
        [KUBE_WATCH_ERROR] = "ERROR",
};

static void release_buffer(KubeWatchParser *p)
{
        free(p->buf);
        p->buf = NULL;
        p->alloc = 0;
}

int kube_watch_parser_new(size_t max_line, kube_watch_event_t cb, void *userdata, KubeWatchParser **ret)
{
        if (!cb || !ret)
                return -EINVAL;

        KubeWatchParser *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->max_line = max_line > 0 ? max_line : WATCH_LINE_DEFAULT_MAX;
        p->cb = cb;
        p->userdata = userdata;
        *ret = p;
        return 0;
}

KubeWatchParser *kube_watch_parser_free(KubeWatchParser *p)
{
        if (!p)
                return NULL;
        free(p->buf);
        free(p);
        return NULL;
}

void kube_watch_parser_reset(KubeWatchParser *p)
{
        if (!p)
                return;
        p->len = 0;
        p->error = 0;
        p->generation++;
        if (p->alloc > WATCH_BUF_KEEP)
                release_buffer(p);
}

static bool is_blank(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
                        return false;
        return true;
}

static int event_type_from_string(const char *s)
{
        for (size_t i = 0; i < ELEMENTSOF(event_type_names); i++)
                if (event_type_names[i] && streq(s, event_type_names[i]))
                        return (int)i;
        return -EBADMSG;
}

/* Parses one complete line (without its '\n') and hands the event to the callback. */
static int dispatch_line(KubeWatchParser *p, const char *line, size_t n)
{
        _cleanup_(json_object_putp) json_object *event = NULL;
        json_object *object; /* borrowed from event */
        int r, type;

        if (is_blank(line, n))
                return 0;
        /* JSON never contains a raw NUL; mr_json_parse would take trailing NULs for whitespace. */
        if (memchr(line, '\0', n))
                return -EBADMSG;

        r = mr_json_parse(line, n, p->max_line, &event);
        if (r < 0)
                return r;
        if (!json_object_is_type(event, json_type_object))
                return -EBADMSG;

        const char *t = mr_json_get_str(event, "type", NULL);
        if (!t)
                return -EBADMSG;
        type = event_type_from_string(t);
        if (type < 0)
                return type;

        if (!json_object_object_get_ex(event, "object", &object) || !json_object_is_type(object, json_type_object))
                return -EBADMSG;

        r = p->cb((KubeWatchEventType)type, object, p->userdata);
        return r < 0 ? r : 0;
}

/* Appends to the partial line; the caller has checked the cap. */
static int buffer_append(KubeWatchParser *p, const char *data, size_t n)
{
        if (n == 0)
                return 0;
        if (p->len + n > p->alloc) {
                size_t a = MAX(p->alloc, (size_t)WATCH_BUF_INITIAL);
                while (a < p->len + n)
                        a = a > SIZE_MAX / 2 ? SIZE_MAX : a * 2;
                a = MIN(a, p->max_line); /* never allocate past the cap */
                char *b = realloc(p->buf, a);
                if (!b)
                        return -ENOMEM;
                p->buf = b;
                p->alloc = a;
        }
        memcpy(p->buf + p->len, data, n);
        p->len += n;
        return 0;
}

static int feed(KubeWatchParser *p, const char *data, size_t size)
{
        unsigned generation = p->generation;
        int r;

        while (size > 0) {
                const char *nl = memchr(data, '\n', size);
                size_t n = nl ? (size_t)(nl - data) : size;

                if (p->len + n > p->max_line || p->len + n < p->len)
                        return -MR_ETOOBIG;

                if (!nl)
                        return buffer_append(p, data, n);

                if (p->len == 0)
                        r = dispatch_line(p, data, n); /* the whole line is in this chunk */
                else {
                        r = buffer_append(p, data, n);
                        if (r < 0)
                                return r;
                        r = dispatch_line(p, p->buf, p->len);
                }
                if (r < 0)
                        return r;
                if (p->generation != generation)
                        return 0; /* the callback reset us: the rest of this chunk is stale */

                p->len = 0;
                if (p->alloc > WATCH_BUF_KEEP)
                        release_buffer(p);
                data = nl + 1;
                size -= n + 1;
        }
        return 0;
}

int kube_watch_parser_feed(KubeWatchParser *p, const char *data, size_t size)
{
        if (!p || (!data && size > 0))
                return -EINVAL;
        if (p->error < 0)
                return p->error;

        int r = feed(p, data, size);
        if (r < 0) {
                p->error = r;
                p->len = 0;
        }
        return r;
}
