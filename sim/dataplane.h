/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dataplane.h — the simulator's real data plane: node proxies ("ztunnel")
 * and workload backends on real loopback sockets (docs/dataplane.md).
 *
 * Each simulated node gets its own loopback address (127.<net>.0.1, …,
 * recorded on the Node as the annotation sim.meshroll.io/address). While
 * the node's ztunnel pod is Running, Ready and not terminating, a real TCP
 * proxy listens there on 15001 (outbound: from the node's client pods) and
 * 15006 (inbound: to the node's backend pods). A terminating ztunnel pod
 * stops accepting; once it is gone, every connection it accepted is reset
 * (SO_LINGER {1, 0}, then close: the peer reads ECONNRESET). Ready pods of
 * served Services get an echo server on an address of their own
 * (127.<net>.64.1, …); a deleted backend pod stops accepting and closes its
 * connections gracefully (FIN after its last answer).
 *
 * One thread owns every socket (epoll). It learns of cluster changes from a
 * store observer that only marks the data plane dirty and wakes the thread
 * through an eventfd; the thread then reads what it needs under the store
 * lock and does its I/O after releasing it. The load generator (loadgen.h)
 * runs on the same thread through the hooks at the end of this header.
 *
 * Nothing here may be called with the store lock held (the thread takes it).
 */
#pragma once

#include <json-c/json.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "meshroll/errors.h"
#include "store.h"

typedef struct SimDataplane SimDataplane;

#define SIM_DATAPLANE_ADDRESS_ANNOTATION "sim.meshroll.io/address"
#define SIM_DATAPLANE_MAX_NODES 16000 /* 127.<net>.0–63.x */
#define SIM_DATAPLANE_MAX_PODS 48000  /* 127.<net>.64–255.x */

#define SIM_DATAPLANE_LOCK_DIR "/tmp" /* not $TMPDIR: the reservation is machine-wide */

typedef struct SimDataplaneOptions {
        const char *ztunnel_namespace; /* NULL: "istio-system" */
        const char *ztunnel_name;      /* the ztunnel DaemonSet; NULL: "ztunnel" */
        /*
         * Services ("namespace/name") whose Ready pods get a backend server;
         * NULL: every Service with a selector. Borrowed for the call only.
         */
        const char *const *services;
        /*
         * The second octet of every address (127.<net>.x.y), reserved for as
         * long as the data plane runs through a lock on
         * SIM_DATAPLANE_LOCK_DIR/meshroll-dataplane-<net>.lock, so that
         * simulators in concurrent processes never share an address. 0: the
         * first free one of 1–254, from 1 for a process's first data plane
         * (127.1 when nothing else runs) and from above its previous net
         * after that. A given net another process holds fails with
         * -EADDRINUSE; sim_dataplane_get_net() tells the one taken.
         */
        uint8_t net;
        uint16_t outbound_port; /* 0 → 15001 */
        uint16_t inbound_port;  /* 0 → 15006 */
        uint16_t metrics_port;  /* each node's /metrics (Istio-style request metrics); 0 → 15020 */
        bool no_annotate;       /* do not write sim.meshroll.io/address on Nodes */
} SimDataplaneOptions;

/*
 * Starts the data-plane thread on store (borrowed; must outlive the data
 * plane) and returns once the first reconciliation is done: every node has
 * its address and every serving proxy listens. Errors: -EINVAL (bad
 * option), -EADDRINUSE (the net asked for, or all 254, held by other
 * processes), -ENOMEM, -errno from epoll/eventfd/pthread.
 */
int sim_dataplane_start(SimStore *store, const SimDataplaneOptions *opts, SimDataplane **ret);
/*
 * Unregisters from the store, stops the thread and closes every socket it
 * owns (connections still open are reset). Load generators must be stopped
 * before. Accepts NULL; returns NULL.
 */
SimDataplane *sim_dataplane_stop(SimDataplane *dp);

/* The second octet of the data plane's addresses (127.<net>.x.y): the one asked for, or the one reserved. */
uint8_t sim_dataplane_get_net(const SimDataplane *dp);

/* A node as the data plane sees it. */
typedef struct SimDataplaneNode {
        char address[INET_ADDRSTRLEN]; /* "127.1.0.3" */
        bool listening;                /* the proxy accepts (a ztunnel pod serves) */
        uint64_t accepted;             /* connections accepted on 15001 and 15006 */
        uint64_t reset;                /* connections reset because their ztunnel pod went away */
        uint32_t active;               /* proxied connections open now */
} SimDataplaneNode;

/* -ENOENT when the data plane has not seen the node; -ESHUTDOWN once stopped. */
int sim_dataplane_get_node(SimDataplane *dp, const char *node, SimDataplaneNode *ret);

/* Totals since start. */
typedef struct SimDataplaneStats {
        uint64_t accepted_outbound, accepted_inbound; /* proxied connections accepted */
        uint64_t proxy_reset;  /* reset because the ztunnel pod that accepted them went away */
        uint64_t proxy_failed; /* reset for another reason: no endpoint, upstream refused or reset */
        uint64_t proxy_closed; /* ended gracefully (FIN both ways) */
        uint64_t backend_accepted, backend_closed;
        uint32_t proxies_listening, backends_listening, relays_active;
} SimDataplaneStats;
int sim_dataplane_get_stats(SimDataplane *dp, SimDataplaneStats *ret);

/* The outbound proxy port (immutable; any thread). */
uint16_t sim_dataplane_outbound_port(const SimDataplane *dp);

/* --- for modules running on the data-plane thread (loadgen.c) ------------------------------ */

/* An epoll registration: fn is called on the data-plane thread with the epoll events. */
typedef struct SimDpHandler SimDpHandler;
struct SimDpHandler {
        void (*fn)(SimDpHandler *h, uint32_t events);
};

/* Thread only. EPOLL_CTL_ADD / MOD with h as the data; -errno. */
int sim_dataplane_watch(SimDataplane *dp, int fd, uint32_t events, SimDpHandler *h);
int sim_dataplane_rewatch(SimDataplane *dp, int fd, uint32_t events, SimDpHandler *h);

/*
 * Runs fn(dp, userdata) on the data-plane thread and waits for it: how other
 * threads attach, detach and read thread-owned state. Returns 0, or
 * -ESHUTDOWN when the thread has stopped (fn not called). Never from the
 * data-plane thread itself, never with the store lock held.
 */
int sim_dataplane_call(SimDataplane *dp, void (*fn)(SimDataplane *dp, void *userdata), void *userdata);

/* A pod as of the last reconciliation. Borrowed; valid during the callback. */
typedef struct SimDpPod {
        const char *ns, *name, *uid, *node;
        json_object *labels; /* metadata.labels (may be NULL) */
        bool running, ready, deleting;
        bool node_known;         /* node_address is valid */
        bool node_unschedulable; /* cordoned */
        struct in_addr address;  /* the pod's own loopback address */
        struct in_addr node_address;
} SimDpPod;
/* Thread only. Every pod bound to a node, except ztunnel pods. cb returns < 0 to stop. */
int sim_dataplane_foreach_pod(SimDataplane *dp, int (*cb)(const SimDpPod *p, void *userdata),
                              void *userdata);

/*
 * A module's hook: sync runs on the thread after every reconciliation;
 * detach when the data plane stops with the hook still added (close every
 * socket). Thread only.
 */
typedef struct SimDpHook SimDpHook;
struct SimDpHook {
        void (*sync)(SimDpHook *h);
        void (*detach)(SimDpHook *h);
        SimDpHook *next;
};
void sim_dataplane_add_hook(SimDataplane *dp, SimDpHook *h);
void sim_dataplane_remove_hook(SimDataplane *dp, SimDpHook *h);

/*
 * Frees ptr after the current batch of epoll events, so events already
 * fetched for it find its dead flag rather than freed memory. d is a link
 * inside the object. Thread only.
 */
typedef struct SimDpDeferred SimDpDeferred;
struct SimDpDeferred {
        SimDpDeferred *next;
        void *ptr;
};
void sim_dataplane_defer_free(SimDataplane *dp, SimDpDeferred *d, void *ptr);

/*
 * A non-blocking TCP connect (SOCK_CLOEXEC) from from:0 to to:port. Returns
 * the fd, *ret_pending telling whether the connect is still in progress
 * (wait for EPOLLOUT, then read SO_ERROR), or -errno (e.g. -ECONNREFUSED).
 */
int sim_dataplane_connect(struct in_addr from, struct in_addr to, uint16_t port, bool *ret_pending);

/* Closes fd so the peer reads ECONNRESET (SO_LINGER {1, 0}). Negative fd: no-op. */
void sim_dataplane_reset_fd(int fd);
/* Monotonic real time, µs. */
usec_t sim_dataplane_now(void);
