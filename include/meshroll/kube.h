/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kube.h — the Kubernetes API client.
 *
 * One KubeClient per API server. It speaks JSON over libcurl and offers two
 * ways to use it, sharing every rule below:
 *
 *   blocking    kube_request() and the kube_get/create/... helpers: for the
 *               CLI and for tests. Each call returns when the answer is in,
 *               after retries.
 *   event loop  kube_client_attach_event() + kube_request_async() and
 *               kube_watch_start(): for the daemons. libcurl's multi
 *               interface is driven by sd-event through
 *               CURLMOPT_SOCKETFUNCTION/CURLMOPT_TIMERFUNCTION, so one thread
 *               carries many requests and watches at once.
 *
 * Making a request
 *
 *     _cleanup_(json_object_putp) json_object *node = NULL;
 *     KubeStatus st;
 *     r = kube_get(c, "/api/v1/nodes/n1", &node, &st);
 *     if (r == -ENOENT) …            // 404; st.message says what the server said
 *
 *   Paths are the API paths of kubectl -v=8 ("/apis/apps/v1/namespaces/x/
 *   daemonsets/ztunnel"); kube_path() builds them from a KubeResource.
 *
 * Errors (negative; see errors.h). The server's Status body is decoded into
 * a KubeStatus (code, reason, message, Retry-After) whenever one came back:
 *
 *   404 → -ENOENT            409 Conflict → -MR_ECONFLICT (stale resourceVersion)
 *   409 AlreadyExists → -EEXIST   410 → -MR_EGONE (relist)
 *   429 → -MR_ETOOMANY (st.retry_after set; also a PDB-blocked eviction)
 *   422 → -MR_EINVALID       400 → -MR_EBADREQUEST   401 → -MR_EUNAUTHORIZED
 *   403 → -MR_EFORBIDDEN     415/406 → -MR_EMEDIATYPE  5xx → -EIO
 *   other HTTP → -MR_ESERVER
 *   transport: -ECONNREFUSED, -ETIMEDOUT, -MR_ETLS, -MR_ETRANSPORT
 *   a body over the size cap → -MR_ETOOBIG; unparseable JSON → -EBADMSG
 *
 * Retries. A request is retried, with jittered exponential backoff, on 429,
 * on 5xx and on transport failures — but only when it is safe: GET, PUT
 * (guarded by resourceVersion), DELETE and PATCH always; POST only on 429
 * and on failures where the server cannot have acted (connection refused).
 * Retry-After is honoured. 4xx other than 429 are never retried. The last
 * error is returned when attempts run out (KubeClientOptions.max_retries).
 *
 * Rate limiting. Every request, retries included, takes a token from the
 * client's bucket first (client-go defaults: QPS 5, burst 10; configurable;
 * qps <= 0 disables it). Watches take one token per (re)connect.
 *
 * Credentials. Bearer tokens come from KubeCredentials (kubeconfig.h) on
 * every attempt, so a rotated token file is picked up; a 401 invalidates the
 * cached credential and, when it came from an exec plugin or a token file,
 * the request is tried once more at once (not counted as a retry). Tokens
 * are never logged, not even at debug level. Failing to get a credential
 * fails the request with the credentials' error (-ENOENT, -EACCES,
 * -MR_ECONFIG; status.message says why), without retries.
 *
 * TLS. Verification is on unless the config says insecure-skip-tls-verify.
 * The CA and client certificate files are read once, by kube_client_new;
 * tls-server-name is used for SNI and for checking the server's name.
 *
 * Threads. A client and everything made from it belong to one thread.
 *
 * Ownership. Objects handed back through ret_* are owned by the caller
 * (json_object_put them). Objects passed to callbacks are borrowed for the
 * duration of the call; json_object_get() them to keep them.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#include "meshroll/errors.h"
#include "meshroll/json-util.h"
#include "meshroll/kubeconfig.h"
#include "meshroll/time-util.h"

typedef struct KubeClient KubeClient;

typedef struct KubeClientOptions {
        double qps;                 /* 0 → 5; < 0 → unlimited */
        unsigned burst;             /* 0 → 10 */
        unsigned max_retries;       /* 0 → 5; retries after the first attempt */
        usec_t request_timeout;     /* whole request, 0 → 30 s (watches excluded) */
        usec_t connect_timeout;     /* 0 → 10 s */
        size_t max_response_size;   /* 0 → 64 MiB; larger bodies fail with -MR_ETOOBIG */
        const char *user_agent;     /* 0 → "meshroll/<version>" */
        const MrClock *clock;       /* NULL → system clock */
        usec_t backoff_base, backoff_cap; /* 0 → 200 ms, 30 s */
        /*
         * How the blocking calls wait (rate limit, backoff). NULL → nanosleep.
         * Tests pass a function that advances their fake clock and counts.
         * The event-loop calls never sleep; they arm sd-event timers.
         */
        void (*sleep)(usec_t duration, void *userdata);
        void *sleep_userdata;
} KubeClientOptions;

/*
 * Creates a client. config is copied (the caller may free it afterwards).
 * opts may be NULL for defaults. Errors: -ENOMEM, -MR_ECONFIG (unusable
 * server URL, unreadable CA or client certificate files; err says which).
 *
 * kube_client_free cancels pending async calls and frees live watches
 * without invoking their callbacks; never call it from inside one.
 */
int kube_client_new(const KubeConfig *config, const KubeClientOptions *opts, KubeClient **ret, MrError *err);
KubeClient *kube_client_free(KubeClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeClient *, kube_client_free);

/*
 * A second client for the same server and credentials as c (its config is
 * copied, so its CA and certificate files are read again), e.g. for another
 * thread. opts NULL: c's options; otherwise opts, with c's User-Agent and
 * clock where opts leaves them unset. Nothing else is shared: no write
 * guard, no event loop. Errors as kube_client_new.
 */
int kube_client_new_like(const KubeClient *c, const KubeClientOptions *opts, KubeClient **ret, MrError *err);

/* The namespace of the config's context (or "default"). Borrowed. */
const char *kube_client_namespace(const KubeClient *c);
/* The server URL. Borrowed. */
const char *kube_client_server(const KubeClient *c);

/* What the server said when it said no. */
typedef struct KubeStatus {
        int http_code;        /* 0 when no HTTP response arrived */
        char reason[64];      /* "NotFound", "Conflict", "TooManyRequests", … or "" */
        char message[512];    /* the server's message, or a transport description */
        usec_t retry_after;   /* from Retry-After or details.retryAfterSeconds; 0 if none */
} KubeStatus;

/*
 * Maps an HTTP code and an optional Status body to an error and fills *ret
 * (which may be NULL). Returns 0 for 2xx. Never fails otherwise: a body that
 * is not a Status still yields an error from the code alone. Pure; fuzzed.
 */
int kube_status_decode(int http_code, const char *body, size_t body_size, const char *retry_after_header,
                       KubeStatus *ret);

/*
 * The same for a Status object already parsed (a watch ERROR event): the
 * HTTP code is taken from the object's "code" (500 when missing). o is
 * borrowed and may be NULL. Returns the mapped (negative) error, or 0 when
 * code is 2xx.
 */
int kube_status_decode_object(json_object *o, KubeStatus *ret);

/* Retry-After values (header or details) are capped at this; a server cannot park us for a day. */
#define KUBE_RETRY_AFTER_MAX (10 * USEC_PER_MINUTE)

/* Patch flavours (Content-Type of the PATCH body). */
typedef enum KubePatchType {
        KUBE_PATCH_MERGE,           /* application/merge-patch+json */
        KUBE_PATCH_STRATEGIC,       /* application/strategic-merge-patch+json */
        KUBE_PATCH_JSON,            /* application/json-patch+json */
} KubePatchType;
const char *kube_patch_content_type(KubePatchType t);

typedef struct KubeRequest {
        const char *method;         /* "GET", "POST", "PUT", "PATCH", "DELETE" */
        const char *path;           /* "/api/v1/nodes/n1"; may carry "?query" */
        json_object *body;          /* borrowed; NULL for none */
        const char *content_type;   /* NULL → application/json (use kube_patch_content_type for PATCH) */
        bool no_retry;              /* the caller does its own retrying */
} KubeRequest;

/*
 * Sends a request and waits for its answer, retrying as described above
 * (sleeping through opts.sleep). On 2xx returns 0 and, when ret_body is not
 * NULL, the decoded body (owned; NULL for an empty body); *ret_status gets
 * the HTTP code. On failure returns the error (table above), leaves
 * *ret_body untouched and fills *ret_status (which may be NULL): the HTTP
 * code (0 when none arrived), the server's reason and message, or a
 * transport description. -EINVAL for a request without method or a path
 * not starting with "/".
 */
int kube_request(KubeClient *c, const KubeRequest *req, json_object **ret_body, KubeStatus *ret_status);

/* Shorthands for kube_request. body is borrowed. */
int kube_get(KubeClient *c, const char *path, json_object **ret, KubeStatus *ret_status);
int kube_create(KubeClient *c, const char *path, json_object *body, json_object **ret, KubeStatus *ret_status);
int kube_replace(KubeClient *c, const char *path, json_object *body, json_object **ret, KubeStatus *ret_status);
int kube_patch(KubeClient *c, const char *path, KubePatchType type, json_object *patch, json_object **ret,
               KubeStatus *ret_status);
/* body: NULL, or a DeleteOptions object (gracePeriodSeconds, preconditions, propagationPolicy). */
int kube_delete(KubeClient *c, const char *path, json_object *body, json_object **ret, KubeStatus *ret_status);

/* A resource type, as discovery names it. Static tables below; paths are built from these. */
typedef struct KubeResource {
        const char *group;          /* "" for core */
        const char *version;        /* "v1" */
        const char *plural;         /* "pods" */
        const char *kind;           /* "Pod" */
        bool namespaced;
} KubeResource;

extern const KubeResource KUBE_NODES, KUBE_PODS, KUBE_NAMESPACES, KUBE_SERVICES, KUBE_ENDPOINTS,
        KUBE_EVENTS, KUBE_CONFIGMAPS, KUBE_DAEMONSETS, KUBE_DEPLOYMENTS, KUBE_REPLICASETS,
        KUBE_CONTROLLERREVISIONS, KUBE_PDBS, KUBE_LEASES, KUBE_MUTATINGWEBHOOKS, KUBE_CRDS,
        KUBE_EVENTS_V1, KUBE_ROLLOUTS, KUBE_DESTINATIONRULES, KUBE_VIRTUALSERVICES;

/*
 * Builds "/api/v1/namespaces/NS/pods/NAME/eviction". ns is ignored for
 * cluster-scoped resources and NULL for "all namespaces"; name and
 * subresource may be NULL. Components are percent-escaped. Returns 0 or
 * -ENOMEM, -EINVAL (namespaced resource given a name but no namespace).
 */
int kube_path(const KubeResource *res, const char *ns, const char *name, const char *subresource, char **ret);

/*
 * Appends query parameters to *path (owned, reallocated): key/value pairs
 * end with a NULL key; a pair with a NULL value is skipped. Values are
 * percent-escaped; "?" or "&" is chosen by whether *path already has a
 * query. On failure (-ENOMEM) *path is unchanged.
 *
 *     kube_path_append_query(&p, "fieldManager", "meshroll", "dryRun", dry ? "All" : NULL, NULL);
 */
int kube_path_append_query(char **path, ...) __attribute__((sentinel));

typedef struct KubeListOptions {
        const char *label_selector;   /* "app=x,tier!=db" or NULL */
        const char *field_selector;   /* "spec.nodeName=n1" or NULL */
        const char *resource_version; /* NULL: most recent (quorum read) */
        unsigned limit;               /* page size; 0 → 500 (kubectl's) */
        /*
         * Applied to each item as its page arrives, before the next page is
         * asked for: returns what to keep (owned: a smaller object such as
         * mr_json_project's, or the item itself with json_object_get), or
         * NULL on ENOMEM. A list of thousands of objects then never holds
         * them whole. NULL: items are kept as they are.
         */
        json_object *(*project)(json_object *item);
} KubeListOptions;

/*
 * Lists every object of a collection, following limit/continue until the
 * end. Returns a json array (owned) of the items and, when ret_rv is not
 * NULL, the list's resourceVersion (owned string) to start a watch from.
 * A continue token that expired (410) restarts the list once from scratch.
 */
int kube_list(KubeClient *c, const KubeResource *res, const char *ns, const KubeListOptions *opts,
              json_object **ret_items, char **ret_rv, KubeStatus *ret_status);

/*
 * Fencing for every write the client sends. guard is called immediately
 * before a request whose method is not GET goes on the wire (from curl's
 * pre-request hook, so also for async requests queued earlier and for
 * each retry), with the method and path; a negative return cancels that
 * request, which then fails with the guard's error (not retried). A
 * coordinator that lost its lease installs mr_leader_check here, so even a
 * request queued before it lost (an Event sent without waiting, say) never
 * reaches the server. guard NULL removes it. It must not call back into
 * the client.
 */
typedef int (*kube_write_guard_t)(const char *method, const char *path, void *userdata);
void kube_client_set_write_guard(KubeClient *c, kube_write_guard_t guard, void *userdata);

/* ---- Event-loop use --------------------------------------------------- */

/* Whether async calls (kube_request_async, Events sent without waiting) are still pending. */
bool kube_client_has_pending_calls(const KubeClient *c);

/*
 * Drives the client's transfers from e (a reference is taken and dropped by
 * kube_client_free). Required for kube_request_async and watches. May be
 * called once (-EBUSY after that).
 */
int kube_client_attach_event(KubeClient *c, sd_event *e);

typedef struct KubeCall KubeCall;

/*
 * Called exactly once per call unless the call is cancelled: error is 0 on
 * 2xx (body may be NULL for an empty body) or negative with status filled.
 * body and status are borrowed. The call is freed after the callback returns.
 */
typedef void (*kube_callback_t)(KubeClient *c, int error, json_object *body, const KubeStatus *status,
                                void *userdata);

/*
 * Starts req (copied, body serialized now) on the event loop with the same
 * retry and rate-limit rules; waits are sd-event timers, never sleeps. The
 * callback always runs from the loop, never from inside this function.
 * ret_call may be NULL; the handle is valid until the callback returns.
 * Errors: -ENXIO (no event loop attached), -EINVAL, -ENOMEM.
 */
int kube_request_async(KubeClient *c, const KubeRequest *req, kube_callback_t cb, void *userdata,
                       KubeCall **ret_call);
/* Cancels a pending call; its callback is not invoked. A no-op from inside its own callback. Returns NULL. */
KubeCall *kube_call_cancel(KubeCall *call);

/* ---- Watches ------------------------------------------------------------ */

typedef enum KubeWatchEventType {
        KUBE_WATCH_ADDED,
        KUBE_WATCH_MODIFIED,
        KUBE_WATCH_DELETED,
        KUBE_WATCH_BOOKMARK,  /* object carries only metadata.resourceVersion */
        KUBE_WATCH_ERROR,     /* object is a Status; the watch handles 410 itself */
        KUBE_WATCH_RESET,     /* a (re)list begins: forget every object; ADDED events follow */
        KUBE_WATCH_SYNCED,    /* the (re)list is complete; object is NULL */
        _KUBE_WATCH_EVENT_TYPE_MAX,
} KubeWatchEventType;

const char *kube_watch_event_type_to_string(KubeWatchEventType t);

typedef struct KubeWatch KubeWatch;

/*
 * A handler returns 0 to go on; a negative return stops the watch and is
 * reported through on_stop. object is borrowed.
 *
 * Handlers run inside libcurl's write callback. From there a handler may
 * stop its own watch, start new requests and arm timers, but must not
 * cancel another request (kube_call_cancel) or stop another watch of the
 * same client: libcurl forbids removing a transfer while it is delivering
 * data. Defer such teardown to an sd-event defer or time source.
 */
typedef int (*kube_watch_handler_t)(KubeWatch *w, KubeWatchEventType type, json_object *object, void *userdata);
/*
 * Called once when the watch stops for good: with the handler's error, or
 * with 0 from kube_watch_stop. After a handler error the watch is idle (no
 * more events, no connection) but still allocated: its owner frees it with
 * kube_watch_stop(), which then does not call on_stop again. on_stop may
 * itself call kube_watch_stop(w).
 */
typedef void (*kube_watch_stop_t)(KubeWatch *w, int error, void *userdata);

typedef struct KubeWatchOptions {
        const KubeResource *resource;
        const char *ns;               /* NULL: all namespaces / cluster-scoped */
        const char *name;             /* watch one object (fieldSelector=metadata.name=…) or NULL */
        const char *label_selector, *field_selector;
        const char *resource_version; /* start here without listing; NULL: list first (informer-style) */
        unsigned timeout_seconds;     /* server-side timeoutSeconds per connection, 0 → 300..600 random */
        usec_t backoff_base, backoff_cap; /* reconnect backoff, 0 → 200 ms, 30 s */
        /*
         * Deliver a (re)list page by page as it arrives — RESET before the
         * first page's ADDED, SYNCED after the last — instead of gathering it
         * whole first, so a list of thousands of objects is never held at
         * once. The handler may then see a list that fails midway (RESET,
         * some ADDED, then the next attempt's RESET): it must treat
         * everything before SYNCED as provisional, as a cache does.
         */
        bool deliver_pages;
} KubeWatchOptions;

/*
 * Starts an informer-style watch on the client's event loop (nothing is sent
 * before the loop runs): LIST in pages of 500, delivered only once complete
 * (RESET, ADDED…, SYNCED), then WATCH from the list's resourceVersion with
 * allowWatchBookmarks. When the stream ends or breaks it reconnects with
 * backoff from the last resourceVersion seen (bookmarks advance it). A 410
 * Gone — as an HTTP status or an ERROR event in the stream — relists
 * (RESET, ADDED…, SYNCED). Lines are capped at 16 MiB; a longer line or
 * invalid JSON drops the connection and reconnects. An ERROR event other
 * than 410 is delivered to the handler, then the watch reconnects. The watch
 * keeps going across any number of failures (list errors included, with
 * backoff) until kube_watch_stop or a handler error. Errors: -ENXIO (no
 * event loop), -EINVAL, -ENOMEM. opts is copied; opts->resource only while
 * starting.
 */
int kube_watch_start(KubeClient *c, const KubeWatchOptions *opts, kube_watch_handler_t handler,
                     kube_watch_stop_t on_stop, void *userdata, KubeWatch **ret);
/*
 * Stops the watch (on_stop is called with 0 unless it already ran) and frees
 * it. Safe from inside the watch's own handler and on_stop: the memory is
 * released once the callback returns. Accepts NULL. Returns NULL.
 */
KubeWatch *kube_watch_stop(KubeWatch *w);
/* The last resourceVersion the watch saw (borrowed), or NULL. */
const char *kube_watch_resource_version(const KubeWatch *w);

/* ---- The watch stream parser (exported for tests and the fuzzer) ------- */

/*
 * An incremental parser for newline-delimited watch events ({"type":…,
 * "object":…}\n). Feed it bytes in any split; it calls back once per
 * complete line. Blank lines are skipped. A line longer than max_line (0 →
 * 16 MiB; a partial line counts as it grows), one that is not a watch event,
 * or one holding a NUL byte makes feed return -MR_ETOOBIG / -EBADMSG.
 * Errors are sticky: after a parse error, or after the callback returned a
 * negative value, every feed returns that error until reset. Calling reset
 * from inside the callback drops the rest of the chunk being fed. A last
 * line without "\n" is never delivered (a watch stream ends every event
 * with one; a cut-off line is a broken stream).
 */
typedef struct KubeWatchParser KubeWatchParser;
typedef int (*kube_watch_event_t)(KubeWatchEventType type, json_object *object, void *userdata);

int kube_watch_parser_new(size_t max_line, kube_watch_event_t cb, void *userdata, KubeWatchParser **ret);
KubeWatchParser *kube_watch_parser_free(KubeWatchParser *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeWatchParser *, kube_watch_parser_free);
/* Returns 0, a parse error, or the callback's negative return (which stops feeding). */
int kube_watch_parser_feed(KubeWatchParser *p, const char *data, size_t size);
/* Drops any partial line (after a reconnect). */
void kube_watch_parser_reset(KubeWatchParser *p);
