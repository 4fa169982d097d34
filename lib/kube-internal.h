/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kube-internal.h — what the client's own files share (kube-client.c,
 * kube-async.c, kube-watch.c). Not installed; nothing outside lib/kube-*.c
 * includes it except the client's unit tests.
 *
 * One HTTP attempt is a KubeTransfer: an easy handle dressed with the URL,
 * headers, credentials and TLS settings, plus the response buffer. The
 * blocking path runs it with curl_easy_perform on the client's one reused
 * handle; the event-loop path adds it to the client's multi handle and gets
 * on_done from kube-async.c. Whether and when to try again is decided by
 * kube_retry_next() for both, so the two paths cannot drift apart.
 */
#pragma once

#include <curl/curl.h>

#include "meshroll/backoff.h"
#include "meshroll/kube.h"

/* Bodies of non-2xx answers on a watch are capped here (they are Status objects). */
#define KUBE_ERROR_BODY_MAX (1u << 20)
/* kube_list gives up after this many pages (a server handing out continue tokens forever). */
#define KUBE_LIST_MAX_PAGES 10000u

struct KubeCall;
struct KubeWatch;

struct KubeClient {
        KubeConfig *config;          /* our deep copy */
        KubeCredentials *creds;
        KubeClientOptions opts;      /* defaults resolved; strings below are ours */
        char *user_agent;
        char *base_url;              /* server URL, host replaced by tls_server_name when set */
        char *connect_to;            /* CURLOPT_CONNECT_TO entry for tls_server_name, or NULL */
        char *ca, *cert, *key;       /* PEM bytes (files read at creation), or NULL */
        size_t ca_size, cert_size, key_size;
        MrRateLimiter limiter;
        kube_write_guard_t write_guard; /* or NULL */
        void *write_guard_userdata;
        CURL *easy;                  /* the blocking calls' handle: one connection cache */

        /* event loop (kube-async.c) */
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
        sd_event_source **ios;       /* curl's sockets' io sources, freed at the end even if curl forgets */
        size_t n_ios, alloc_ios;
        struct KubeCall *calls;      /* pending async calls, for kube_client_free */
        struct KubeWatch *watches;   /* live watches, for kube_client_free */
};

typedef struct KubeTransfer KubeTransfer;

struct KubeTransfer {
        KubeClient *client;
        CURL *easy;
        bool owns_easy;
        struct curl_slist *headers;  /* holds the Authorization header: freed, never logged */
        struct curl_slist *connect_to;
        char *url;

        /* response */
        char *body;
        size_t size, alloc, cap;
        bool too_big;
        char retry_after[32];
        char errbuf[CURL_ERROR_SIZE];
        MrError cred_error;          /* why credentials could not be had */

        /*
         * Streaming (watches): 2xx body bytes go here instead of the buffer.
         * A negative return aborts the transfer (curl reports a write error)
         * and is kept in stream_error.
         */
        int (*on_data)(KubeTransfer *t, const char *data, size_t size);
        int stream_error;

        /* fencing: a write refused by the client's write guard just before it was sent */
        const char *method, *path;   /* borrowed from the request for the guard */
        int guard_error;

        /* event loop: called once the transfer left the multi handle */
        void (*on_done)(KubeTransfer *t, CURLcode result);
        void *userdata;
        bool in_multi;
};

/*
 * Prepares t for one attempt: credentials are read now (so a rotated token
 * is used), the method, URL, body (borrowed: must outlive the transfer),
 * headers and TLS options are set on easy (NULL: a new handle owned by t).
 * watch_timeout > 0 marks a watch: no whole-request timeout but that many
 * seconds plus slack. Returns 0, -ENOMEM, -EINVAL, or the credentials' error
 * (t->cred_error says why). On failure t is still safe to kube_transfer_done.
 */
int kube_transfer_setup(KubeTransfer *t, KubeClient *c, CURL *easy, const char *method, const char *path,
                        const char *body, size_t body_size, const char *content_type, unsigned watch_timeout);

/* Frees what setup allocated (and the easy handle when owned). t itself is the caller's. */
void kube_transfer_done(KubeTransfer *t);

/*
 * Maps a finished attempt to the client's errors (kube.h table) and fills
 * *st. On 2xx, when ret_body is not NULL, parses the buffered body into it
 * (NULL for an empty body). Never called for streamed 2xx bodies.
 */
int kube_transfer_result(KubeTransfer *t, CURLcode cc, json_object **ret_body, KubeStatus *st);

/* Whether error r may be retried for this method (kube.h "Retries"). */
bool kube_retry_allowed(const char *method, int r);

/* Per-request retry state shared by the blocking and event-loop paths. */
typedef struct KubeRetry {
        MrBackoff backoff;
        unsigned attempts;           /* retries made so far */
        bool auth_retried;           /* the one 401 retry is spent */
} KubeRetry;

void kube_retry_init(KubeClient *c, KubeRetry *rs);

/*
 * After an attempt failed with r (< 0) and status st: returns true and the
 * delay before the next attempt, or false when r is final. A 401 with an
 * exec plugin or token file invalidates the credential and retries once at
 * once.
 */
bool kube_retry_next(KubeClient *c, KubeRetry *rs, const char *method, bool no_retry, int r,
                     const KubeStatus *st, usec_t *ret_delay);

/* Serializes a request body; borrowed from body. NULL body → NULL, size 0. */
const char *kube_body_string(json_object *body, size_t *ret_size);

/* kube-async.c: adds t to the multi handle / removes it (no on_done). */
int kube_async_add(KubeClient *c, KubeTransfer *t);
void kube_async_remove(KubeClient *c, KubeTransfer *t);
/* kube-async.c / kube-watch.c: frees what is left at kube_client_free, without callbacks. */
void kube_async_free_all(KubeClient *c);
void kube_watch_free_all(KubeClient *c);

/* Builds a list/watch path with the selectors of opts-like arguments (kube-watch.c, kube_list). */
int kube_list_path(const KubeResource *res, const char *ns, const char *label_selector, const char *field_selector,
                   char **ret);
