/* SPDX-License-Identifier: Apache-2.0 */
/*
 * peer.h — the benchmark's peer: a trivial HTTP server on libmicrohttpd that
 * answers from a table of canned bodies in memory.
 *
 * It does no work a real API server does (no store, no lock, no selectors,
 * no serialization): each request is one table lookup and a copy to the
 * socket. The same KubeClient requests sent to it and to the simulator, with
 * the same bodies, give the ratio that says how much of a request's cost is
 * the simulator's own, and how much is loopback HTTP and the client's JSON
 * parsing, which no server can remove.
 *
 * Keys: "<path>" for a plain GET, "<path>|<continue>" for a list page (the
 * continue token from the query, "" for the first page). Any request with
 * watch=1 or watch=true gets the watch body (newline-delimited events),
 * then the stream ends. Unknown keys get a 404 Status.
 *
 * Threads: a thread per connection, like the simulator. The table must be
 * complete before peer_start(); it is read-only afterwards.
 */
#pragma once

#include <stddef.h>

typedef struct Peer Peer;

/* Creates an empty table. Errors: -ENOMEM. */
int peer_new(Peer **ret);
/* Adds a body (copied) under key (copied). Errors: -ENOMEM, -EBUSY after peer_start. */
int peer_add(Peer *p, const char *key, const char *body, size_t size);
/* Appends to the watch stream (copied). Errors: -ENOMEM, -EBUSY after peer_start. */
int peer_add_watch_event(Peer *p, const char *line, size_t size);
/* Serves on 127.0.0.1 with a kernel-chosen port. Errors: -EADDRNOTAVAIL (MHD failed), -EBUSY. */
int peer_start(Peer *p);
/* "http://127.0.0.1:PORT" (borrowed), or NULL before peer_start. */
const char *peer_url(const Peer *p);
/* Total bytes of the bodies whose key starts with prefix. */
size_t peer_bytes(const Peer *p, const char *prefix);
/* Stops the server (joins its threads) and frees everything. Accepts NULL; returns NULL. */
Peer *peer_free(Peer *p);
