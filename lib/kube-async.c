/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kube-async.c — the client on an sd-event loop (see kube.h "Event-loop use").
 *
 * libcurl's multi interface is driven by sd-event exactly as systemd-importd's
 * curl-util.c does it:
 *
 *   CURLMOPT_SOCKETFUNCTION  curl says which fd it wants watched for what; we
 *                            keep one sd-event io source per fd, stored with
 *                            curl_multi_assign() so the next call finds it,
 *                            and drop it on CURL_POLL_REMOVE.
 *   CURLMOPT_TIMERFUNCTION   curl says when it next needs a kick; one
 *                            CLOCK_MONOTONIC time source is (re)armed or
 *                            disabled. Accuracy is 1 µs, not sd-event's
 *                            250 ms default: timeouts are curl's business.
 *   either source firing     curl_multi_socket_action(), then the finished
 *                            transfers are collected with
 *                            curl_multi_info_read(); each is removed from
 *                            the multi handle before its on_done runs, so
 *                            on_done may free it or start new transfers.
 *
 * A KubeCall is one kube_request_async: a copy of the request and its retry
 * state. Each attempt (and each wait: rate limit or backoff) is armed on a
 * per-call time source — nothing here ever sleeps. The retry rules are
 * kube_retry_next()'s, shared with the blocking path. The callback is always
 * invoked from the event loop, never from inside kube_request_async.
 */
#include <stdio.h>
#include <sys/epoll.h>

#include "kube-internal.h"

struct KubeCall {
        KubeClient *client;
        struct KubeCall *prev, *next;

        char *method, *path, *content_type, *body;
        size_t body_size;
        bool no_retry;
        kube_callback_t cb;
        void *userdata;

        KubeRetry retry;
        KubeTransfer transfer;
        bool have_token;            /* the rate-limit token for the next attempt is taken */
        bool in_callback;
        sd_event_source *timer;
};

/* ---- the multi handle on sd-event -------------------------------------------------------- */

static void check_done(KubeClient *c)
{
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(c->multi, &left))) {
                if (msg->msg != CURLMSG_DONE)
                        continue;
                CURL *easy = msg->easy_handle;
                CURLcode cc = msg->data.result; /* msg dies with remove_handle: copy first */
                KubeTransfer *t = NULL;
                (void)curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
                (void)curl_multi_remove_handle(c->multi, easy);
                if (!t)
                        continue;
                t->in_multi = false;
                if (t->on_done)
                        t->on_done(t, cc);
        }
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        KubeClient *c = userdata;
        int action = 0, running;

        if (revents & EPOLLIN)
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                action |= CURL_CSELECT_ERR;
        (void)curl_multi_socket_action(c->multi, fd, action, &running);
        check_done(c);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        KubeClient *c = userdata;
        int running;

        (void)curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        check_done(c);
        return 0;
}

static int ios_add(KubeClient *c, sd_event_source *io)
{
        if (c->n_ios == c->alloc_ios) {
                size_t n = MAX(c->alloc_ios * 2, (size_t)8);
                sd_event_source **l = realloc(c->ios, n * sizeof(*l));
                if (!l)
                        return -ENOMEM;
                c->ios = l;
                c->alloc_ios = n;
        }
        c->ios[c->n_ios++] = io;
        return 0;
}

static void ios_remove(KubeClient *c, sd_event_source *io)
{
        for (size_t i = 0; i < c->n_ios; i++)
                if (c->ios[i] == io) {
                        c->ios[i] = c->ios[--c->n_ios];
                        break;
                }
        (void)sd_event_source_disable_unref(io);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
        KubeClient *c = userp;
        sd_event_source *io = socketp;
        uint32_t events = 0;

        if (what == CURL_POLL_REMOVE) {
                /* curl drops its own record of fd after this call */
                if (io)
                        ios_remove(c, io);
                return 0;
        }
        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
                events |= EPOLLIN;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
                events |= EPOLLOUT;

        if (io) {
                if (sd_event_source_set_io_events(io, events) < 0 ||
                    sd_event_source_set_enabled(io, SD_EVENT_ON) < 0)
                        return -1;
                return 0;
        }
        if (sd_event_add_io(c->event, &io, fd, events, on_io, c) < 0)
                return -1;
        (void)sd_event_source_set_description(io, "kube-curl-io");
        if (ios_add(c, io) < 0) {
                (void)sd_event_source_disable_unref(io);
                return -1;
        }
        if (curl_multi_assign(c->multi, fd, io) != CURLM_OK) {
                ios_remove(c, io);
                return -1;
        }
        return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
        KubeClient *c = userp;
        uint64_t now;

        if (timeout_ms < 0) {
                if (c->timer)
                        (void)sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
                return 0;
        }
        if (sd_event_now(c->event, CLOCK_MONOTONIC, &now) < 0)
                return -1;
        uint64_t when = now + (uint64_t)timeout_ms * USEC_PER_MSEC;
        if (c->timer) {
                if (sd_event_source_set_time(c->timer, when) < 0 ||
                    sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT) < 0)
                        return -1;
                return 0;
        }
        if (sd_event_add_time(c->event, &c->timer, CLOCK_MONOTONIC, when, 1, on_timer, c) < 0)
                return -1;
        (void)sd_event_source_set_description(c->timer, "kube-curl-timer");
        return 0;
}

int kube_client_attach_event(KubeClient *c, sd_event *e)
{
        if (!c || !e)
                return -EINVAL;
        if (c->event)
                return -EBUSY;
        c->multi = curl_multi_init();
        if (!c->multi)
                return -ENOMEM;
        if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK) {
                curl_multi_cleanup(c->multi);
                c->multi = NULL;
                return -EINVAL;
        }
        c->event = sd_event_ref(e);
        return 0;
}

int kube_async_add(KubeClient *c, KubeTransfer *t)
{
        if (!c->multi)
                return -ENXIO;
        if (curl_multi_add_handle(c->multi, t->easy) != CURLM_OK)
                return -ENOMEM;
        t->in_multi = true;
        return 0;
}

void kube_async_remove(KubeClient *c, KubeTransfer *t)
{
        if (t->in_multi && c->multi)
                (void)curl_multi_remove_handle(c->multi, t->easy);
        t->in_multi = false;
}

/* ---- calls -------------------------------------------------------------------------------- */

static KubeCall *call_free(KubeCall *call)
{
        KubeClient *c = call->client;

        kube_async_remove(c, &call->transfer);
        kube_transfer_done(&call->transfer);
        call->timer = sd_event_source_disable_unref(call->timer);
        if (call->prev)
                call->prev->next = call->next;
        else if (c->calls == call)
                c->calls = call->next;
        if (call->next)
                call->next->prev = call->prev;
        free(call->method);
        free(call->path);
        free(call->content_type);
        free(call->body);
        free(call);
        return NULL;
}

static void call_finish(KubeCall *call, int r, json_object *body, const KubeStatus *st)
{
        call->in_callback = true;
        call->cb(call->client, r, body, st, call->userdata);
        call_free(call);
}

static int call_arm(KubeCall *call, usec_t delay);

static void attempt_done(KubeTransfer *t, CURLcode cc)
{
        KubeCall *call = t->userdata;
        _cleanup_(json_object_putp) json_object *body = NULL;
        KubeStatus st;
        usec_t delay;

        int r = kube_transfer_result(t, cc, &body, &st);
        kube_transfer_done(t);
        *t = (KubeTransfer){};

        if (r < 0 && kube_retry_next(call->client, &call->retry, call->method, call->no_retry, r, &st, &delay)) {
                int k = call_arm(call, delay);
                if (k >= 0)
                        return;
                r = k;
        }
        call_finish(call, r, body, &st);
}

static void attempt_start(KubeCall *call)
{
        KubeClient *c = call->client;
        KubeTransfer *t = &call->transfer;
        KubeStatus st = {};
        int r;

        r = kube_transfer_setup(t, c, NULL, call->method, call->path, call->body, call->body_size,
                                call->content_type, 0);
        if (r >= 0) {
                t->on_done = attempt_done;
                t->userdata = call;
                r = kube_async_add(c, t);
        }
        if (r < 0) {
                snprintf(st.message, sizeof(st.message), "%s",
                         t->cred_error.message[0] ? t->cred_error.message : mr_strerror(r));
                kube_transfer_done(t);
                *t = (KubeTransfer){};
                call_finish(call, r, NULL, &st);
        }
}

static int on_call_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        KubeCall *call = userdata;

        if (!call->have_token) {
                usec_t wait = mr_ratelimit_reserve(&call->client->limiter);
                call->have_token = true;
                if (wait > 0) {
                        int r = call_arm(call, wait);
                        if (r >= 0)
                                return 0;
                        call_finish(call, r, NULL, &(KubeStatus){});
                        return 0;
                }
        }
        call->have_token = false;
        attempt_start(call);
        return 0;
}

/* Arms the call's timer delay from now; the attempt (after its rate-limit token) follows. */
static int call_arm(KubeCall *call, usec_t delay)
{
        KubeClient *c = call->client;
        uint64_t now;
        int r;

        r = sd_event_now(c->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return r;
        if (call->timer) {
                r = sd_event_source_set_time(call->timer, now + delay);
                if (r >= 0)
                        r = sd_event_source_set_enabled(call->timer, SD_EVENT_ONESHOT);
                return r;
        }
        r = sd_event_add_time(c->event, &call->timer, CLOCK_MONOTONIC, now + delay, 1, on_call_timer, call);
        if (r >= 0)
                (void)sd_event_source_set_description(call->timer, "kube-call");
        return r;
}

static int dup_or_null(char **dst, const char *src)
{
        if (!src)
                return 0;
        return (*dst = strdup(src)) ? 0 : -ENOMEM;
}

int kube_request_async(KubeClient *c, const KubeRequest *req, kube_callback_t cb, void *userdata,
                       KubeCall **ret_call)
{
        size_t body_size;
        int r;

        if (!c || !req || !req->method || !req->path || !cb)
                return -EINVAL;
        if (!c->event)
                return -ENXIO;

        KubeCall *call = calloc(1, sizeof(KubeCall));
        if (!call)
                return -ENOMEM;
        call->client = c;
        call->cb = cb;
        call->userdata = userdata;
        call->no_retry = req->no_retry;
        kube_retry_init(c, &call->retry);

        const char *body = kube_body_string(req->body, &body_size);
        r = dup_or_null(&call->method, req->method);
        if (r >= 0)
                r = dup_or_null(&call->path, req->path);
        if (r >= 0)
                r = dup_or_null(&call->content_type, req->content_type);
        if (r >= 0 && req->body) {
                call->body = malloc(body_size + 1);
                if (!body || !call->body)
                        r = -ENOMEM;
                else {
                        memcpy(call->body, body, body_size);
                        call->body[body_size] = 0;
                        call->body_size = body_size;
                }
        }
        call->next = c->calls;
        if (c->calls)
                c->calls->prev = call;
        c->calls = call;
        if (r >= 0)
                r = call_arm(call, 0);
        if (r < 0) {
                call_free(call);
                return r;
        }
        if (ret_call)
                *ret_call = call;
        return 0;
}

KubeCall *kube_call_cancel(KubeCall *call)
{
        if (!call || call->in_callback)
                return NULL;
        return call_free(call);
}

void kube_async_free_all(KubeClient *c)
{
        while (c->calls)
                call_free(c->calls);
        if (c->multi)
                curl_multi_cleanup(c->multi);
        c->multi = NULL;
        while (c->n_ios > 0)
                ios_remove(c, c->ios[c->n_ios - 1]);
        free(c->ios);
        c->ios = NULL;
        c->alloc_ios = 0;
        c->timer = sd_event_source_disable_unref(c->timer);
        c->event = sd_event_unref(c->event);
}

bool kube_client_has_pending_calls(const KubeClient *c)
{
        return c->calls != NULL;
}
