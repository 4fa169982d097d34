/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-watch-parser.c — the watch stream parser, fed in two ways.
 *
 * The first byte picks a split point; the rest is the stream. It is fed once
 * whole and once in three pieces (before the split, the split byte alone,
 * after it), and both runs must report the same error and the same events:
 * the parser's result may not depend on how the bytes arrive. A small line
 * cap keeps -MR_ETOOBIG reachable.
 */
#include <stdint.h>
#include <stdlib.h>

#include "meshroll/kube.h"

typedef struct Seen {
        unsigned events;
        uint64_t hash; /* FNV-1a over types and serialized objects, in order */
} Seen;

static int on_event(KubeWatchEventType type, json_object *object, void *userdata)
{
        Seen *s = userdata;
        const char *js = json_object_to_json_string_ext(object, JSON_C_TO_STRING_PLAIN);

        s->events++;
        s->hash = (s->hash ^ (uint64_t)type) * 0x100000001b3ULL;
        for (; js && *js; js++)
                s->hash = (s->hash ^ (uint8_t)*js) * 0x100000001b3ULL;
        return 0;
}

static int run(const char *data, size_t size, size_t split, Seen *seen)
{
        _cleanup_(kube_watch_parser_freep) KubeWatchParser *p = NULL;
        int r;

        if (kube_watch_parser_new(4096, on_event, seen, &p) < 0)
                abort();
        if (split >= size)
                return kube_watch_parser_feed(p, data, size);
        r = kube_watch_parser_feed(p, data, split);
        if (r < 0)
                return r;
        r = kube_watch_parser_feed(p, data + split, 1);
        if (r < 0)
                return r;
        return kube_watch_parser_feed(p, data + split + 1, size - split - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        Seen whole = { .hash = 0xcbf29ce484222325ULL }, pieces = whole;

        if (size < 1 || size > 65536)
                return 0;
        const char *stream = (const char *)data + 1;
        size_t n = size - 1;
        size_t split = n > 0 ? (size_t)data[0] * n / 256 : 0;

        int r1 = run(stream, n, n, &whole);
        int r2 = run(stream, n, split, &pieces);
        if (r1 != r2 || whole.events != pieces.events || whole.hash != pieces.hash)
                abort();
        return 0;
}
