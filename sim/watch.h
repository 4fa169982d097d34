/* SPDX-License-Identifier: Apache-2.0 */
/*
 * watch.h — list filters and watch streams over the store's event history
 * (reference/kubernetes-api.md §4).
 *
 * A SimFilter is what a list or a watch selects: kind, namespace, label and
 * field selector. A SimWatch reads the store's shared history (store.h:
 * sim_store_history_after) from its own position, so any number of watchers
 * cost no copies of the events; each applies its filter per event with the
 * server's selector-transition rules (an object that starts matching is
 * ADDED, one that stops matching is DELETED).
 */
#pragma once

#include <stdbool.h>

#include "meshroll/selector.h"
#include "store.h"

typedef struct SimFilter {
        const SimKind *kind;
        char *ns;                /* NULL: all namespaces */
        MrSelector *labels;      /* NULL: everything */
        MrFieldSelector *fields; /* NULL: everything */
} SimFilter;

/*
 * Parses the selectors (either may be NULL or "") for kind k. Errors:
 * -MR_EBADREQUEST with err holding the server's message (a syntax error, or
 * "field label not supported: x"), -ENOMEM. On failure f needs no cleanup.
 */
int sim_filter_init(SimFilter *f, const SimKind *k, const char *ns, const char *label_selector,
                    const char *field_selector, MrError *err);
bool sim_filter_matches(const SimFilter *f, json_object *obj);
/* true when matching needs the object's fields (label or field selector), not just its kind and namespace. */
bool sim_filter_needs_object(const SimFilter *f);
void sim_filter_done(SimFilter *f);

typedef struct SimWatch SimWatch;

typedef struct SimWatchOptions {
        const char *resource_version; /* NULL, "" or "0": initial ADDED for the current state */
        bool bookmarks;               /* allowWatchBookmarks */
        usec_t bookmark_interval;     /* real µs between BOOKMARKs; 0 → 60 s */
        usec_t deadline;              /* real monotonic µs when the watch ends (timeoutSeconds); 0: never */
} SimWatchOptions;

/*
 * Starts a watch (store lock held). filter is taken over (also on failure).
 * A resourceVersion older than the retained history does not fail here: the
 * stream's first and only event is then the 410 Expired ERROR, as the real
 * server does (HTTP 200, one ERROR event, end). A resourceVersion newer than
 * the store's revision starts at the current revision. Errors:
 * -MR_EBADREQUEST for a resourceVersion that is not a number, -ENOMEM.
 */
int sim_watch_new(SimStore *s, SimFilter *filter, const SimWatchOptions *o, SimWatch **ret, MrError *err);

/*
 * Waits (store lock NOT held; taken inside) for the next events and returns
 * them as newline-terminated WatchEvent JSON lines in *ret (owned, *ret_size
 * bytes). Returns 1 with data; 0 with *ret NULL when the stream is over
 * (deadline reached, *stopping set, or after the ERROR event); -ENOMEM.
 * stopping (may be NULL) is read with the lock held: set it and call
 * sim_store_wake() under the lock to end every watch promptly.
 */
int sim_watch_next(SimWatch *w, const bool *stopping, char **ret, size_t *ret_size);

/* Frees the watch (lock not required). Returns NULL. */
SimWatch *sim_watch_free(SimWatch *w);
