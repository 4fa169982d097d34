/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kube-watch.c — informer-style list+watch on the event loop (see kube.h).
 *
 * The sequence is client-go's reflector (reference §4.4–4.7):
 *
 *   LIST   pages of limit=500 following continue, gathered in full before
 *          anything is delivered, so the handler sees RESET, ADDED… and
 *          SYNCED back to back and never a half list. A continue token that
 *          expired (410) restarts the list; any other failure backs off and
 *          relists.
 *   WATCH  ?watch=true&allowWatchBookmarks=true&resourceVersion=RV&
 *          timeoutSeconds=N, one libcurl transfer whose body is fed from the
 *          write callback straight into the watch parser. Each event's
 *          metadata.resourceVersion (bookmarks included) becomes RV.
 *   END    A clean end of a stream that delivered events or lasted ≥ 1 s
 *          (the server's timeoutSeconds) reconnects at once from RV; a
 *          transport error, bad JSON, an over-long line, a non-410 HTTP
 *          error or a very short empty stream reconnects after a jittered
 *          backoff. A 410 — as the HTTP status or as an ERROR event with
 *          code 410 / reason Expired|Gone — relists at once.
 *
 *   Every (re)connect takes one rate-limiter token; list pages go through
 *   kube_request_async and take theirs there.
 *
 * Re-entrancy: the handler and on_stop may call kube_watch_stop() on their
 * own watch. The watch counts how deep in callbacks it is ("busy"); a stop
 * from inside only marks it, and whoever unwinds to busy == 0 outside of
 * libcurl's callbacks frees it. Inside libcurl's write callback nothing is
 * torn down: the transfer is aborted and its on_done (which runs after the
 * handle left the multi) finishes the job.
 */
#include <stdio.h>

#include "kube-internal.h"

#define WATCH_LINE_MAX (16u << 20)
#define SHORT_WATCH USEC_PER_SEC

typedef enum WatchNext {
        NEXT_LIST,
        NEXT_WATCH,
} WatchNext;

struct KubeWatch {
        KubeClient *client;
        struct KubeWatch *prev, *next;

        char *base_path;             /* collection path with the selectors */
        char *rv;                    /* last resourceVersion seen */
        unsigned timeout_seconds;    /* 0: pick per connection */
        kube_watch_handler_t handler;
        kube_watch_stop_t on_stop;
        void *userdata;

        MrBackoff backoff;
        sd_event_source *timer;
        WatchNext next_action;
        bool have_token;

        /* listing */
        KubeCall *list_call;
        json_object *list_items;
        char *list_rv, *list_continue;
        bool list_restarted;
        bool deliver_pages;          /* KubeWatchOptions.deliver_pages */
        bool list_delivering;        /* deliver_pages: RESET of the current list delivered */
        unsigned list_pages;

        /* watching */
        KubeTransfer transfer;
        bool transfer_active;
        KubeWatchParser *parser;
        bool relist_needed;
        unsigned events;
        usec_t connected_at;

        /* lifetime */
        int stop_error;
        bool finished, free_pending;
        unsigned busy;
};

static void watch_free(KubeWatch *w);
static int watch_schedule(KubeWatch *w, WatchNext next, usec_t delay);

static void list_reset(KubeWatch *w)
{
        json_object_put(w->list_items);
        w->list_items = NULL;
        free(w->list_rv);
        w->list_rv = NULL;
        free(w->list_continue);
        w->list_continue = NULL;
        w->list_pages = 0;
        w->list_delivering = false;
}

static void transfer_stop(KubeWatch *w)
{
        if (!w->transfer_active)
                return;
        kube_async_remove(w->client, &w->transfer);
        kube_transfer_done(&w->transfer);
        w->transfer = (KubeTransfer){};
        w->transfer_active = false;
}

static void watch_teardown(KubeWatch *w)
{
        w->list_call = kube_call_cancel(w->list_call);
        transfer_stop(w);
        if (w->timer)
                (void)sd_event_source_set_enabled(w->timer, SD_EVENT_OFF);
        list_reset(w);
}

/* Ends the watch for good and reports it. Only from outside libcurl's callbacks; w may be gone after. */
static void watch_finish(KubeWatch *w, int error)
{
        if (w->finished)
                return;
        w->finished = true;
        watch_teardown(w);
        if (w->on_stop) {
                w->busy++;
                w->on_stop(w, error, w->userdata);
                w->busy--;
        }
        if (w->free_pending && w->busy == 0)
                watch_free(w);
}

/* Calls the handler. Returns 0 to go on, or negative: the handler failed (stop_error set) or stopped us. */
static int deliver(KubeWatch *w, KubeWatchEventType type, json_object *object)
{
        w->busy++;
        int r = w->handler(w, type, object, w->userdata);
        w->busy--;
        if (w->finished)
                return -ECANCELED;
        if (r < 0) {
                w->stop_error = r;
                return r;
        }
        return 0;
}

/* Backoff for the next attempt after a failure (at least the server's Retry-After). */
static void watch_retry_later(KubeWatch *w, WatchNext next, usec_t retry_after)
{
        usec_t d = mr_backoff_next_at_least(&w->backoff, retry_after);
        if (watch_schedule(w, next, d) < 0)
                watch_finish(w, -ENOMEM);
}

/* ---- LIST ---------------------------------------------------------------------------------- */

static void list_page_done(KubeClient *c, int error, json_object *body, const KubeStatus *st, void *userdata);

static int list_request(KubeWatch *w)
{
        _cleanup_free_ char *path = strdup(w->base_path);
        int r;

        if (!path)
                return -ENOMEM;
        r = kube_path_append_query(&path, "limit", "500", "continue", w->list_continue, NULL);
        if (r < 0)
                return r;
        if (!w->list_items && !(w->list_items = json_object_new_array()))
                return -ENOMEM;
        return kube_request_async(w->client, &(KubeRequest){ .method = "GET", .path = path, .no_retry = true },
                                  list_page_done, w, &w->list_call);
}

/* After the last delivery of a list: a handler that stopped us, failed, or the watch goes on. */
static void list_delivered(KubeWatch *w, int r)
{
        if (r == -ECANCELED) {
                if (w->free_pending && w->busy == 0)
                        watch_free(w);
                return;
        }
        if (r < 0) {
                watch_finish(w, r);
                return;
        }
        mr_backoff_reset(&w->backoff);
        if (watch_schedule(w, NEXT_WATCH, 0) < 0)
                watch_finish(w, -ENOMEM);
}

/*
 * deliver_pages: one page's items as they are (RESET first on the list's
 * first page, SYNCED after its last). Returns what deliver() does; 1 when
 * the list is complete.
 */
static int list_deliver_page(KubeWatch *w, json_object *items, bool last)
{
        int r = 0;
        if (!w->list_delivering) {
                /* Handlers read kube_watch_resource_version(): the list's, from its first page on. */
                if (w->list_rv) {
                        char *rv = strdup(w->list_rv);
                        if (!rv)
                                return -ENOMEM;
                        free(w->rv);
                        w->rv = rv;
                }
                w->list_delivering = true;
                r = deliver(w, KUBE_WATCH_RESET, NULL);
        }
        for (size_t i = 0; r >= 0 && items && i < json_object_array_length(items); i++)
                r = deliver(w, KUBE_WATCH_ADDED, json_object_array_get_idx(items, i));
        if (r < 0 || !last)
                return r;
        free(w->rv);
        w->rv = TAKE_PTR(w->list_rv);
        list_reset(w);
        r = deliver(w, KUBE_WATCH_SYNCED, NULL);
        return r < 0 ? r : 1;
}

static void list_emit(KubeWatch *w)
{
        _cleanup_(json_object_putp) json_object *items = TAKE_PTR(w->list_items);
        size_t n = json_object_array_length(items);
        int r;

        free(w->rv);
        w->rv = TAKE_PTR(w->list_rv);
        list_reset(w);

        r = deliver(w, KUBE_WATCH_RESET, NULL);
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = deliver(w, KUBE_WATCH_ADDED, json_object_array_get_idx(items, i));
        if (r >= 0)
                r = deliver(w, KUBE_WATCH_SYNCED, NULL);
        list_delivered(w, r);
}

static void list_page_done(KubeClient *c, int error, json_object *body, const KubeStatus *st, void *userdata)
{
        KubeWatch *w = userdata;
        int r;

        w->list_call = NULL;
        if (error == -MR_EGONE && w->list_continue && !w->list_restarted) {
                /* the continue token expired: start the list over once, at once */
                w->list_restarted = true;
                list_reset(w);
                r = list_request(w);
                if (r < 0)
                        watch_retry_later(w, NEXT_LIST, 0);
                return;
        }
        if (error < 0) {
                list_reset(w);
                watch_retry_later(w, NEXT_LIST, st ? st->retry_after : 0);
                return;
        }

        json_object *items = mr_json_get(body, "items", NULL); /* borrowed */
        if (items && !json_object_is_type(items, json_type_array)) {
                list_reset(w);
                watch_retry_later(w, NEXT_LIST, 0);
                return;
        }
        size_t n = items ? json_object_array_length(items) : 0;
        for (size_t i = 0; !w->deliver_pages && i < n; i++) {
                json_object *it = json_object_array_get_idx(items, i);
                if (json_object_array_add(w->list_items, json_object_get(it)) < 0) {
                        json_object_put(it);
                        watch_finish(w, -ENOMEM);
                        return;
                }
        }
        const char *rv = mr_json_get_str(body, "metadata", "resourceVersion", NULL);
        const char *cont = mr_json_get_str(body, "metadata", "continue", NULL);
        /* A consistent list has one resourceVersion: the first page's (later pages repeat it). */
        if (!w->list_delivering || !w->list_rv) {
                free(w->list_rv);
                w->list_rv = rv ? strdup(rv) : NULL;
        }
        free(w->list_continue);
        w->list_continue = isempty(cont) ? NULL : strdup(cont);

        if (w->deliver_pages) {
                r = list_deliver_page(w, items, !w->list_continue);
                if (r < 0 || r == 1) {
                        list_delivered(w, r < 0 ? r : 0);
                        return;
                }
        } else if (!w->list_continue) {
                list_emit(w);
                return;
        }
        if (++w->list_pages >= KUBE_LIST_MAX_PAGES || list_request(w) < 0) {
                list_reset(w);
                watch_retry_later(w, NEXT_LIST, 0);
        }
}

static void list_start(KubeWatch *w)
{
        list_reset(w);
        w->list_restarted = false;
        if (list_request(w) < 0)
                watch_retry_later(w, NEXT_LIST, 0);
}

/* ---- WATCH --------------------------------------------------------------------------------- */

static int on_event(KubeWatchEventType type, json_object *object, void *userdata)
{
        KubeWatch *w = userdata;

        if (w->finished)
                return -ECANCELED;
        if (type == KUBE_WATCH_ERROR) {
                KubeStatus st;
                int e = kube_status_decode_object(object, &st);
                if (e == -MR_EGONE || streq(st.reason, "Expired") || streq(st.reason, "Gone")) {
                        w->relist_needed = true;
                        return -MR_EGONE;
                }
                int r = deliver(w, type, object);
                /* the server closes the stream after an ERROR; do not wait for it */
                return r < 0 ? r : -ECONNABORTED;
        }

        const char *rv = mr_json_get_str(object, "metadata", "resourceVersion", NULL);
        if (!isempty(rv)) {
                char *s = strdup(rv);
                if (!s)
                        return -ENOMEM;
                free(w->rv);
                w->rv = s;
        }
        w->events++;
        return deliver(w, type, object);
}

static int on_data(KubeTransfer *t, const char *data, size_t size)
{
        KubeWatch *w = t->userdata;

        w->busy++;
        int r = kube_watch_parser_feed(w->parser, data, size);
        w->busy--;
        if (w->finished)
                return -ECANCELED;
        return r;
}

static void watch_done(KubeTransfer *t, CURLcode cc)
{
        KubeWatch *w = t->userdata;
        KubeStatus st;

        int r = kube_transfer_result(t, cc, NULL, &st);
        kube_transfer_done(t);
        w->transfer = (KubeTransfer){};
        w->transfer_active = false;

        if (w->finished) {
                if (w->free_pending && w->busy == 0)
                        watch_free(w);
                return;
        }
        if (w->stop_error < 0) {
                watch_finish(w, w->stop_error);
                return;
        }
        if (w->relist_needed || r == -MR_EGONE) {
                w->relist_needed = false;
                if (watch_schedule(w, NEXT_LIST, 0) < 0)
                        watch_finish(w, -ENOMEM);
                return;
        }
        usec_t lasted = mr_now_monotonic(w->client->opts.clock) - w->connected_at;
        if (r == 0 && (w->events > 0 || lasted >= SHORT_WATCH)) {
                mr_backoff_reset(&w->backoff);
                if (watch_schedule(w, NEXT_WATCH, 0) < 0)
                        watch_finish(w, -ENOMEM);
                return;
        }
        watch_retry_later(w, NEXT_WATCH, r < 0 ? st.retry_after : 0);
}

static unsigned pick_timeout(KubeWatch *w)
{
        if (w->timeout_seconds > 0)
                return w->timeout_seconds;
        /* client-go: minWatchTimeout × (1 + rand), i.e. [300, 600) */
        return 300u + (unsigned)((mr_now_monotonic(NULL) / 7u) % 300u);
}

static int watch_connect(KubeWatch *w)
{
        _cleanup_free_ char *path = strdup(w->base_path);
        char timeout[16];
        unsigned secs = pick_timeout(w);
        int r;

        if (!path)
                return -ENOMEM;
        snprintf(timeout, sizeof(timeout), "%u", secs);
        r = kube_path_append_query(&path, "watch", "true", "allowWatchBookmarks", "true", "resourceVersion",
                                   isempty(w->rv) ? NULL : w->rv, "timeoutSeconds", timeout, NULL);
        if (r < 0)
                return r;

        kube_watch_parser_reset(w->parser);
        w->events = 0;
        w->relist_needed = false;
        w->connected_at = mr_now_monotonic(w->client->opts.clock);
        w->transfer = (KubeTransfer){};
        r = kube_transfer_setup(&w->transfer, w->client, NULL, "GET", path, NULL, 0, NULL, secs);
        if (r >= 0) {
                w->transfer.on_data = on_data;
                w->transfer.on_done = watch_done;
                w->transfer.userdata = w;
                r = kube_async_add(w->client, &w->transfer);
        }
        if (r < 0) {
                kube_transfer_done(&w->transfer);
                w->transfer = (KubeTransfer){};
                return r;
        }
        w->transfer_active = true;
        return 0;
}

/* ---- scheduling ------------------------------------------------------------------------------ */

static int on_watch_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        KubeWatch *w = userdata;

        if (w->finished)
                return 0;
        if (w->next_action == NEXT_LIST) {
                list_start(w);
                return 0;
        }
        if (!w->have_token) {
                usec_t wait = mr_ratelimit_reserve(&w->client->limiter);
                w->have_token = true;
                if (wait > 0) {
                        if (watch_schedule(w, NEXT_WATCH, wait) < 0)
                                watch_finish(w, -ENOMEM);
                        return 0;
                }
        }
        w->have_token = false;
        if (watch_connect(w) < 0)
                watch_retry_later(w, NEXT_WATCH, 0);
        return 0;
}

static int watch_schedule(KubeWatch *w, WatchNext next, usec_t delay)
{
        sd_event *e = w->client->event;
        uint64_t now;
        int r;

        w->next_action = next;
        r = sd_event_now(e, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return r;
        if (w->timer) {
                r = sd_event_source_set_time(w->timer, now + delay);
                if (r >= 0)
                        r = sd_event_source_set_enabled(w->timer, SD_EVENT_ONESHOT);
                return r;
        }
        r = sd_event_add_time(e, &w->timer, CLOCK_MONOTONIC, now + delay, 1, on_watch_timer, w);
        if (r >= 0)
                (void)sd_event_source_set_description(w->timer, "kube-watch");
        return r;
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

static void watch_free(KubeWatch *w)
{
        KubeClient *c = w->client;

        watch_teardown(w);
        w->timer = sd_event_source_disable_unref(w->timer);
        kube_watch_parser_free(w->parser);
        if (w->prev)
                w->prev->next = w->next;
        else if (c->watches == w)
                c->watches = w->next;
        if (w->next)
                w->next->prev = w->prev;
        free(w->base_path);
        free(w->rv);
        free(w);
}

int kube_watch_start(KubeClient *c, const KubeWatchOptions *opts, kube_watch_handler_t handler,
                     kube_watch_stop_t on_stop, void *userdata, KubeWatch **ret)
{
        _cleanup_free_ char *fields = NULL;
        int r;

        if (!c || !opts || !opts->resource || !handler)
                return -EINVAL;
        if (!c->event)
                return -ENXIO;

        if (opts->name) {
                size_t l = strlen("metadata.name=") + strlen(opts->name) + 1 +
                           (opts->field_selector ? strlen(opts->field_selector) + 1 : 0);
                fields = malloc(l);
                if (!fields)
                        return -ENOMEM;
                snprintf(fields, l, "metadata.name=%s%s%s", opts->name, isempty(opts->field_selector) ? "" : ",",
                         strempty(opts->field_selector));
        }

        KubeWatch *w = calloc(1, sizeof(KubeWatch));
        if (!w)
                return -ENOMEM;
        w->client = c;
        w->handler = handler;
        w->on_stop = on_stop;
        w->userdata = userdata;
        w->timeout_seconds = opts->timeout_seconds;
        w->deliver_pages = opts->deliver_pages;
        mr_backoff_init(&w->backoff);
        w->backoff.base = opts->backoff_base ? opts->backoff_base : c->opts.backoff_base;
        w->backoff.cap = MAX(opts->backoff_cap ? opts->backoff_cap : c->opts.backoff_cap, w->backoff.base);
        w->next = c->watches;
        if (c->watches)
                c->watches->prev = w;
        c->watches = w;

        r = kube_list_path(opts->resource, opts->ns, opts->label_selector, fields ? fields : opts->field_selector,
                           &w->base_path);
        if (r >= 0)
                r = kube_watch_parser_new(WATCH_LINE_MAX, on_event, w, &w->parser);
        if (r >= 0 && opts->resource_version && !(w->rv = strdup(opts->resource_version)))
                r = -ENOMEM;
        if (r >= 0)
                r = watch_schedule(w, opts->resource_version ? NEXT_WATCH : NEXT_LIST, 0);
        if (r < 0) {
                watch_free(w);
                return r;
        }
        if (ret)
                *ret = w;
        return 0;
}

KubeWatch *kube_watch_stop(KubeWatch *w)
{
        if (!w)
                return NULL;
        if (!w->finished) {
                /* tear down what can be torn down now; inside the write callback only mark it */
                w->finished = true;
                if (w->busy == 0)
                        watch_teardown(w);
                if (w->on_stop) {
                        w->busy++;
                        w->on_stop(w, 0, w->userdata);
                        w->busy--;
                }
        }
        if (w->busy > 0)
                w->free_pending = true;
        else
                watch_free(w);
        return NULL;
}

const char *kube_watch_resource_version(const KubeWatch *w)
{
        return w ? w->rv : NULL;
}

void kube_watch_free_all(KubeClient *c)
{
        while (c->watches)
                watch_free(c->watches);
}
