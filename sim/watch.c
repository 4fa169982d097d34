/* SPDX-License-Identifier: Apache-2.0 */
/*
 * watch.c — filters and watch streams; see watch.h.
 *
 * Design: the store keeps one ring of events (the last 20k writes, each
 * holding the serialized new and previous object state). A watch is a
 * position in that ring plus a filter; reading is "everything after my
 * position", decided per event under the store lock and copied into
 * WatchEvent lines that are written to the socket after the lock is
 * dropped. A filter on kind and namespace alone is decided without parsing
 * anything (the event carries its namespace); label and field selectors
 * parse the event's states, under a store mark released after each event,
 * so a watcher that reads the whole history never holds its trees. The
 * initial state of a watch from resourceVersion ""/"0" is copied once at
 * start (the "Get State" of api-concepts.md).
 *
 * Transitions follow apiserver's etcd3 watcher (§4.4): with old and new
 * state both matching → MODIFIED; only new → ADDED; only old → DELETED
 * carrying the old state at the event's revision. A position that falls
 * below the history floor while the watcher was slow is answered like a
 * watch started too far back: one ERROR event with a 410 Expired Status.
 */
#include <inttypes.h>
#include <stdio.h>

#include "meshroll/json-util.h"
#include "meshroll/time-util.h"
#include "watch.h"

#define WATCH_BATCH_MAX (1u << 20)
#define BOOKMARK_DEFAULT (60 * USEC_PER_SEC)

static char *mfree_str(char *p)
{
        free(p);
        return NULL;
}

struct SimWatch {
        SimStore *store;
        SimFilter filter;
        uint64_t pos; /* every event with revision <= pos has been considered */
        char *initial; /* pending initial ADDED lines (or the ERROR event) */
        size_t initial_size;
        bool done_after_initial;
        bool finished;
        bool bookmarks;
        usec_t bookmark_interval, last_sent, deadline;
};

/* Turns a selector error (message already in err) into the 400 the server answers. */
static int bad_request(MrError *err)
{
        char msg[sizeof(err->message)];
        if (!err)
                return -MR_EBADREQUEST;
        snprintf(msg, sizeof(msg), "%s", err->message);
        return mr_error_set(err, -MR_EBADREQUEST, "%s", msg);
}

int sim_filter_init(SimFilter *f, const SimKind *k, const char *ns, const char *label_selector,
                    const char *field_selector, MrError *err)
{
        SimFilter n = {.kind = k};
        int r;

        if (ns && k->namespaced && !(n.ns = strdup(ns)))
                return -ENOMEM;
        if (!isempty(label_selector)) {
                r = mr_selector_parse(label_selector, &n.labels, err);
                if (r < 0) {
                        sim_filter_done(&n);
                        return r == -ENOMEM ? r : bad_request(err);
                }
                if (mr_selector_is_empty(n.labels))
                        n.labels = mr_selector_free(n.labels);
        }
        if (!isempty(field_selector)) {
                r = mr_field_selector_parse(field_selector, &n.fields, err);
                if (r >= 0)
                        r = mr_field_selector_validate(n.fields, sim_kind_field, (void *)k, err);
                if (r < 0) {
                        sim_filter_done(&n);
                        return r == -ENOMEM ? r : bad_request(err);
                }
        }
        *f = n;
        return 0;
}

bool sim_filter_matches(const SimFilter *f, json_object *obj)
{
        if (f->ns && !streq_ptr(mr_json_get_str(obj, "metadata", "namespace", NULL), f->ns))
                return false;
        if (f->labels && !mr_selector_matches(f->labels, mr_json_get(obj, "metadata", "labels", NULL)))
                return false;
        if (f->fields && mr_field_selector_matches(f->fields, obj, sim_kind_field, (void *)f->kind, NULL) != 1)
                return false;
        return true;
}

bool sim_filter_needs_object(const SimFilter *f)
{
        return f->labels || f->fields;
}

void sim_filter_done(SimFilter *f)
{
        free(f->ns);
        mr_selector_free(f->labels);
        mr_field_selector_free(f->fields);
        *f = (SimFilter){};
}

static void put_event(FILE *out, const char *type, const char *obj_json)
{
        fputs("{\"type\":\"", out);
        fputs(type, out);
        fputs("\",\"object\":", out);
        fputs(obj_json, out);
        fputs("}\n", out);
}

typedef struct InitialCtx {
        SimStore *store;
        SimFilter *filter;
        FILE *out;
} InitialCtx;

static int initial_cb(const SimRaw *raw, void *userdata)
{
        InitialCtx *c = userdata;
        if (sim_filter_needs_object(c->filter)) {
                size_t mark = sim_store_mark(c->store);
                json_object *obj = sim_store_raw_object(c->store, raw);
                bool match = obj && sim_filter_matches(c->filter, obj);
                sim_store_release(c->store, mark);
                if (!obj)
                        return -ENOMEM;
                if (!match)
                        return 0;
        }
        put_event(c->out, "ADDED", raw->json);
        return 0;
}

static int expired_event(SimWatch *w, const char *rv)
{
        _cleanup_(json_object_putp) json_object *st = json_object_new_object();
        char msg[256];
        FILE *out;

        snprintf(msg, sizeof(msg), "too old resource version: %s (%" PRIu64 ")", rv,
                 sim_store_history_floor(w->store) + 1);
        if (!st || mr_json_set_str(st, "kind", "Status") < 0 || mr_json_set_str(st, "apiVersion", "v1") < 0 ||
            json_object_object_add(st, "metadata", json_object_new_object()) < 0 ||
            mr_json_set_str(st, "status", "Failure") < 0 || mr_json_set_str(st, "message", msg) < 0 ||
            mr_json_set_str(st, "reason", "Expired") < 0 || mr_json_set_int(st, "code", 410) < 0)
                return -ENOMEM;
        free(w->initial);
        w->initial = NULL;
        out = open_memstream(&w->initial, &w->initial_size);
        if (!out)
                return -ENOMEM;
        put_event(out, "ERROR", mr_json_compact(st));
        if (fclose(out) != 0)
                return -ENOMEM;
        w->done_after_initial = true;
        return 0;
}

int sim_watch_new(SimStore *s, SimFilter *filter, const SimWatchOptions *o, SimWatch **ret, MrError *err)
{
        SimWatch *w;
        const char *rv = o->resource_version;
        uint64_t from = 0;
        int r;

        if (!isempty(rv) && !streq(rv, "0")) {
                char *end;
                errno = 0;
                unsigned long long v = strtoull(rv, &end, 10);
                if (errno || *end || rv[0] == '-' || rv[0] == '+') {
                        sim_filter_done(filter);
                        return mr_error_set(err, -MR_EBADREQUEST, "invalid resource version: %s", rv);
                }
                from = v;
        }
        w = calloc(1, sizeof(*w));
        if (!w) {
                sim_filter_done(filter);
                return -ENOMEM;
        }
        w->store = s;
        w->filter = *filter;
        *filter = (SimFilter){};
        w->bookmarks = o->bookmarks;
        w->bookmark_interval = o->bookmark_interval ? o->bookmark_interval : BOOKMARK_DEFAULT;
        w->deadline = o->deadline;
        w->last_sent = mr_now_monotonic(NULL);

        if (isempty(rv) || streq(rv, "0")) {
                InitialCtx c = {.store = s, .filter = &w->filter};
                c.out = open_memstream(&w->initial, &w->initial_size);
                if (!c.out) {
                        sim_watch_free(w);
                        return -ENOMEM;
                }
                r = sim_store_foreach_raw(s, w->filter.kind, w->filter.ns, NULL, NULL, initial_cb, &c);
                if (fclose(c.out) != 0 || r < 0) {
                        sim_watch_free(w);
                        return -ENOMEM;
                }
                w->pos = sim_store_revision(s);
        } else if (from < sim_store_history_floor(s)) {
                if ((r = expired_event(w, rv)) < 0) {
                        sim_watch_free(w);
                        return r;
                }
        } else
                w->pos = MIN(from, sim_store_revision(s));
        *ret = w;
        return 0;
}

/* The event of ev as this watcher sees it: type and object JSON, or false to skip. */
static bool transform(SimWatch *w, const SimEvent *ev, FILE *out)
{
        static const char *const names[] = {
                [SIM_EVENT_ADDED] = "ADDED", [SIM_EVENT_MODIFIED] = "MODIFIED", [SIM_EVENT_DELETED] = "DELETED"};
        json_object *obj, *old;
        bool now, before;

        if (ev->kind != w->filter.kind)
                return false;
        /* An object's namespace never changes: the new state's decides for both. */
        if (w->filter.ns && !streq(sim_event_ns(ev), w->filter.ns))
                return false;
        if (!sim_filter_needs_object(&w->filter)) {
                put_event(out, names[ev->type], sim_event_json(ev));
                return true;
        }
        obj = sim_event_object(w->store, ev);
        if (!obj)
                return false;
        switch (ev->type) {
        case SIM_EVENT_ADDED:
        case SIM_EVENT_DELETED:
                if (!sim_filter_matches(&w->filter, obj))
                        return false;
                put_event(out, names[ev->type], sim_event_json(ev));
                return true;
        case SIM_EVENT_MODIFIED:
                old = sim_event_old(w->store, ev);
                now = sim_filter_matches(&w->filter, obj);
                before = old && sim_filter_matches(&w->filter, old);
                if (now) {
                        put_event(out, before ? "MODIFIED" : "ADDED", sim_event_json(ev));
                        return true;
                }
                if (before) {
                        /* Stopped matching: DELETED with the old state at this revision. */
                        _cleanup_(json_object_putp) json_object *last = mr_json_copy(old);
                        json_object *meta = mr_json_get(last, "metadata", NULL);
                        char buf[32];
                        snprintf(buf, sizeof(buf), "%" PRIu64, ev->revision);
                        if (meta)
                                (void)mr_json_set_str(meta, "resourceVersion", buf);
                        put_event(out, "DELETED", mr_json_compact(last));
                        return true;
                }
                return false;
        }
        return false;
}

static void bookmark(SimWatch *w, FILE *out)
{
        char av[128], line[512];
        snprintf(line, sizeof(line),
                 "{\"kind\":\"%s\",\"apiVersion\":\"%s\",\"metadata\":{\"resourceVersion\":\"%" PRIu64
                 "\",\"creationTimestamp\":null}}",
                 w->filter.kind->kind, sim_kind_api_version(w->filter.kind, av, sizeof(av)), w->pos);
        put_event(out, "BOOKMARK", line);
}

int sim_watch_next(SimWatch *w, const bool *stopping, char **ret, size_t *ret_size)
{
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *out;
        bool any = false;
        int r = 0;

        *ret = NULL;
        *ret_size = 0;
        if (w->finished)
                return 0;
        if (w->initial) {
                *ret = TAKE_PTR(w->initial);
                *ret_size = w->initial_size;
                w->finished = w->done_after_initial;
                if (*ret_size > 0) {
                        w->last_sent = mr_now_monotonic(NULL);
                        return 1;
                }
                *ret = mfree_str(*ret);
                if (w->finished)
                        return 0;
        }

        out = open_memstream(&buf, &size);
        if (!out)
                return -ENOMEM;
        sim_store_lock(w->store);
        for (;;) {
                usec_t now = mr_now_monotonic(NULL);
                if ((stopping && *stopping) || (w->deadline && now >= w->deadline))
                        break;
                if (w->pos < sim_store_history_floor(w->store)) {
                        char rv[32];
                        snprintf(rv, sizeof(rv), "%" PRIu64, w->pos);
                        if ((r = expired_event(w, rv)) >= 0) {
                                fputs(w->initial, out);
                                w->initial = mfree_str(w->initial);
                                any = true;
                        }
                        w->finished = true;
                        break;
                }
                const SimEvent *ev;
                while ((ev = sim_store_history_after(w->store, w->pos)) && ftell(out) < WATCH_BATCH_MAX) {
                        size_t mark = sim_store_mark(w->store);
                        any = transform(w, ev, out) || any;
                        sim_store_release(w->store, mark);
                        w->pos = ev->revision;
                }
                if (!ev)
                        w->pos = MAX(w->pos, sim_store_revision(w->store));
                if (any)
                        break;
                if (w->bookmarks && now >= w->last_sent + w->bookmark_interval) {
                        bookmark(w, out);
                        any = true;
                        break;
                }
                usec_t until = w->bookmarks ? w->last_sent + w->bookmark_interval : now + 3600 * USEC_PER_SEC;
                if (w->deadline)
                        until = MIN(until, w->deadline);
                (void)sim_store_wait(w->store, until > now ? until - now : 0);
        }
        sim_store_unlock(w->store);
        if (fclose(out) != 0)
                return -ENOMEM;
        if (r < 0)
                return r;
        if (!any) {
                w->finished = true;
                return 0;
        }
        w->last_sent = mr_now_monotonic(NULL);
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 1;
}

SimWatch *sim_watch_free(SimWatch *w)
{
        if (!w)
                return NULL;
        sim_filter_done(&w->filter);
        free(w->initial);
        free(w);
        return NULL;
}
