/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store.h — the simulator's object store: the "etcd + registry" of
 * meshroll-kubesim.
 *
 * One store holds every object of the simulated cluster, keyed by kind,
 * namespace and name, under one global resourceVersion counter (as etcd's
 * revision: every write gets the next number, and an object's
 * metadata.resourceVersion is the revision of its last write).
 *
 * Objects are kept serialized (their compact JSON, which is what GET, LIST
 * and watch send) and parsed into json-c trees on demand: a json-c tree
 * costs ~15 times its JSON, and a 100,000-pod cluster must fit in well under
 * 1 GiB (docs/simulator.md, "Memory").
 *
 * Concurrency: the HTTP threads and the controller thread share the store
 * under one mutex. Every function below requires the caller to hold it
 * (sim_store_lock/unlock) — except sim_store_new/free and the lock calls.
 * Objects returned are borrowed from the store: valid until the lock is
 * released (sim_store_unlock, or sim_store_wait while it waits) or until
 * sim_store_release() drops them; copy (mr_json_copy) or reference
 * (json_object_get) what must outlive that. A borrowed object must never be
 * modified: write a copy back instead.
 *
 * Writes (create, update, delete, remove) do what the real registry does:
 * create fills uid, creationTimestamp, resourceVersion, generation (1),
 * defaults namespace; update bumps generation when spec (anything but
 * metadata and status) changed, rejects a stale resourceVersion with
 * -MR_ECONFLICT; a status-only update touches only .status. Each write is
 * appended to the event history that watches replay, reported to every
 * observer (controllers), and written to the audit log with its actor.
 *
 * Errors: -ENOENT (no such object), -EEXIST (create of an existing name),
 * -MR_ECONFLICT (stale resourceVersion or precondition), -MR_EINVALID
 * (missing name, wrong namespace scope, immutable field), -ENOMEM. err (may
 * be NULL) receives the message the API server would put in the Status,
 * e.g. `pods "web-1" not found`.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "meshroll/errors.h"
#include "meshroll/time-util.h"

typedef struct SimStore SimStore;

/* A resource type the simulator serves (built in, or declared by a CRD). */
typedef struct SimKind {
        const char *group;        /* "" for core */
        const char *version;      /* "v1" */
        const char *resource;     /* plural: "pods" */
        const char *singular;     /* "pod" */
        const char *kind;         /* "Pod" */
        const char *short_names[4]; /* {"po", NULL} */
        const char *categories[2];  /* {"all", NULL} */
        bool namespaced;
        bool has_status;          /* serves the /status subresource */
        const char *subresources[4]; /* other subresources: {"eviction", NULL} for pods */
        const char *verbs;        /* space-separated discovery verbs */
        bool generation;          /* metadata.generation is maintained (spec-bearing types) */
        bool require_rv;          /* PUT without metadata.resourceVersion is 422 (Lease, custom resources) */
} SimKind;

/* "pods", or "deployments.apps": the <gr> of Status messages. Returns buf. */
char *sim_kind_group_resource(const SimKind *k, char *buf, size_t size);
/* "v1", or "apps/v1". Returns buf. */
char *sim_kind_api_version(const SimKind *k, char *buf, size_t size);

/*
 * Field-selector getter (mr_field_getter_t) for kind k passed as userdata:
 * metadata.name and metadata.namespace for every kind, plus the per-resource
 * fields of the real server (pods: spec.nodeName, status.phase, …; nodes:
 * spec.unschedulable; events: involvedObject.*, reason, type, …). NULL for
 * an unsupported field. The result is borrowed from obj or static.
 */
const char *sim_kind_field(json_object *obj, const char *field, void *userdata);

/* Every built-in kind; NULL-terminated. */
extern const SimKind *const sim_builtin_kinds[];

/* Well-known kinds for controllers (pointers into the built-in table). */
extern const SimKind SIM_NODES, SIM_PODS, SIM_NAMESPACES, SIM_SERVICES, SIM_ENDPOINTS, SIM_EVENTS,
        SIM_EVENTS_V1, SIM_CONFIGMAPS, SIM_DAEMONSETS, SIM_DEPLOYMENTS, SIM_REPLICASETS,
        SIM_CONTROLLERREVISIONS, SIM_PDBS, SIM_LEASES, SIM_MUTATINGWEBHOOKS, SIM_CRDS,
        SIM_DESTINATIONRULES, SIM_VIRTUALSERVICES;

/*
 * Simulated time. Every timestamp the simulator writes, and every delay its
 * controllers wait, is in simulated time: real elapsed time × speed since
 * start, added to the start's wall time. speed 10 makes a 30 s pod
 * start-up take 3 real seconds and keeps every ordering.
 */
typedef struct SimClock {
        const MrClock *real;    /* NULL: system clock */
        double speed;           /* > 0 */
        usec_t start_mono;      /* real monotonic time at start */
        usec_t start_wall;      /* wall time the simulated cluster starts at */
} SimClock;
void sim_clock_init(SimClock *c, const MrClock *real, double speed);
usec_t sim_clock_now(const SimClock *c);               /* simulated wall time, µs since epoch */
usec_t sim_clock_real_delay(const SimClock *c, usec_t sim_delay); /* real µs for a simulated delay */

/* clock is borrowed and must outlive the store. audit_fd: -1 for none (not closed by the store). */
int sim_store_new(const SimClock *clock, int audit_fd, SimStore **ret);
SimStore *sim_store_free(SimStore *s);

void sim_store_lock(SimStore *s);
void sim_store_unlock(SimStore *s);
/* Simulated now (no lock needed). */
usec_t sim_store_now(const SimStore *s);

/* Finds a kind by group, version and plural (built-in or CRD-declared); NULL if none. */
const SimKind *sim_store_find_kind(SimStore *s, const char *group, const char *version, const char *resource);
/* Finds a kind by apiVersion ("apps/v1", "v1") and Kind ("DaemonSet"). */
const SimKind *sim_store_find_kind_by_kind(SimStore *s, const char *api_version, const char *kind);

/* The current global resourceVersion. */
uint64_t sim_store_revision(const SimStore *s);

/* obj is taken over (owned by the store on success and on failure). *ret borrowed, may be NULL. */
int sim_store_create(SimStore *s, const SimKind *k, json_object *obj, const char *actor, json_object **ret,
                     MrError *err);

/* Borrowed object, or NULL. ns is ignored for cluster-scoped kinds. */
json_object *sim_store_get(SimStore *s, const SimKind *k, const char *ns, const char *name);

enum {
        SIM_UPDATE_CHECK_RV = 1 << 0,  /* reject when obj's resourceVersion is set and stale (PUT) */
        SIM_UPDATE_STATUS = 1 << 1,    /* only .status changes (the /status subresource) */
};
/* Replaces the object named by obj's metadata. obj is taken over. *ret borrowed, may be NULL. */
int sim_store_update(SimStore *s, const SimKind *k, json_object *obj, unsigned flags, const char *actor,
                     json_object **ret, MrError *err);

/*
 * Deletes as the API would: an object with finalizers or, for pods bound to a
 * node, a non-zero grace period (grace_seconds, or the pod's own
 * terminationGracePeriodSeconds when grace_seconds < 0) only gets
 * metadata.deletionTimestamp and deletionGracePeriodSeconds (MODIFIED) — the
 * kubelet removes it later with sim_store_remove. Otherwise the object is
 * removed (DELETED). precondition_uid / precondition_rv may be NULL.
 * *ret receives the object as last stored (borrowed; valid until unlock).
 */
int sim_store_delete(SimStore *s, const SimKind *k, const char *ns, const char *name, int64_t grace_seconds,
                     const char *precondition_uid, const char *precondition_rv, const char *actor,
                     json_object **ret, MrError *err);

/* Removes an object now (DELETED), whatever its grace period: the kubelet's final step. */
int sim_store_remove(SimStore *s, const SimKind *k, const char *ns, const char *name, const char *actor);

/*
 * Calls cb for every object of kind k in namespace ns (NULL: all), in
 * (namespace, name) order. cb returns 0 to go on, > 0 to stop, < 0 to stop
 * with that error. Objects are borrowed; cb must not write to the store
 * (collect names and write afterwards).
 */
typedef int (*sim_foreach_t)(json_object *obj, void *userdata);
int sim_store_foreach(SimStore *s, const SimKind *k, const char *ns, sim_foreach_t cb, void *userdata);
/*
 * The same, starting after the key (after_ns, after_name) — a list's continue
 * position — found by binary search instead of a walk from the first object.
 * after_name NULL: from the start. after_ns is "" for cluster-scoped kinds.
 */
int sim_store_foreach_after(SimStore *s, const SimKind *k, const char *ns, const char *after_ns,
                            const char *after_name, sim_foreach_t cb, void *userdata);

/*
 * foreach over the objects of k in ns that may carry every label of
 * match_labels (borrowed: a JSON object of key → string value, as a
 * Service's selector or a LabelSelector's matchLabels; NULL or {}: every
 * object). An object whose stored JSON does not hold one of the pairs as
 * "key":"value" cannot carry it and is skipped unparsed — a Service or PDB
 * in a namespace of 5,000 ztunnel pods no longer parses them all on every
 * pod change. A filter, not a match: cb still tests the selector (the
 * pair may sit elsewhere than in metadata.labels). Only pairs JSON writes
 * unescaped (what Kubernetes allows in label keys and values) filter; any
 * other pair filters nothing.
 */
int sim_store_foreach_labeled(SimStore *s, const SimKind *k, const char *ns, json_object *match_labels,
                              sim_foreach_t cb, void *userdata);

/* Pods bound to node (spec.nodeName index), same contract as foreach. */
int sim_store_foreach_pod_on_node(SimStore *s, const char *node, sim_foreach_t cb, void *userdata);

/*
 * Objects of kind k in ns (NULL: all) whose controller ownerReference
 * (controller: true) has this uid — an index kept at write, so a
 * ReplicaSet finds its pods without parsing its namespace's. Same contract
 * as foreach.
 */
int sim_store_foreach_owned(SimStore *s, const SimKind *k, const char *ns, const char *owner_uid, sim_foreach_t cb,
                            void *userdata);

/*
 * A stored object as it is kept: its key and its compact JSON, exactly the
 * bytes GET, LIST and watch send. Every pointer is borrowed (valid until
 * unlock or the next write to that object). sim_store_raw_object() parses
 * it into a borrowed tree when the fields are needed.
 */
typedef struct SimRaw {
        const char *ns;   /* "" for cluster-scoped kinds */
        const char *name;
        const char *json; /* NUL-terminated */
        size_t size;      /* strlen(json) */
        void *entry;      /* private */
} SimRaw;
typedef int (*sim_raw_foreach_t)(const SimRaw *raw, void *userdata);
/* foreach_after without parsing: cb sees every object as SimRaw. Same order and return rules. */
int sim_store_foreach_raw(SimStore *s, const SimKind *k, const char *ns, const char *after_ns,
                          const char *after_name, sim_raw_foreach_t cb, void *userdata);
/* Pods bound to node, as stored (foreach_pod_on_node without parsing). */
int sim_store_foreach_raw_on_node(SimStore *s, const char *node, sim_raw_foreach_t cb, void *userdata);
/* The object behind raw, parsed (borrowed, as sim_store_get). NULL on ENOMEM. */
json_object *sim_store_raw_object(SimStore *s, const SimRaw *raw);
/* The stored JSON of one object (borrowed), or NULL when there is none. *ret_size may be NULL. */
const char *sim_store_get_json(SimStore *s, const SimKind *k, const char *ns, const char *name, size_t *ret_size);

/*
 * Parsed objects are kept while the lock is held and dropped at unlock. A
 * caller that walks many objects under one lock (a controller pass, a
 * watch batch, a filtered list) bounds that with a mark: every object
 * parsed after sim_store_mark() is freed by sim_store_release(mark) — the
 * caller promises it holds none of them any more (nor references it did
 * not take with json_object_get). Marks nest.
 */
size_t sim_store_mark(SimStore *s);
void sim_store_release(SimStore *s, size_t mark);

typedef enum SimEventType {
        SIM_EVENT_ADDED,
        SIM_EVENT_MODIFIED,
        SIM_EVENT_DELETED,
} SimEventType;

/*
 * Observers see every write synchronously, under the lock, after it is
 * stored: obj is the new state (for DELETED, the last state), old the
 * previous state or NULL; both borrowed for the call only. Observers must
 * not write to the store: they queue work (controllers mark keys dirty).
 */
typedef void (*sim_observer_t)(SimStore *s, const SimKind *k, SimEventType type, json_object *obj,
                               json_object *old, void *userdata);
int sim_store_observe(SimStore *s, sim_observer_t cb, void *userdata);
/* Removes the observer registered with exactly cb and userdata (lock held). -ENOENT if none. */
int sim_store_unobserve(SimStore *s, sim_observer_t cb, void *userdata);

/* Registers the kind a CRD declares (called by the store itself when a CRD is created). */
int sim_store_register_crd(SimStore *s, json_object *crd, MrError *err);

/* Calls cb for every kind served (built-in first, then CRD-declared, in registration order). */
typedef int (*sim_kind_foreach_t)(const SimKind *k, void *userdata);
int sim_store_foreach_kind(SimStore *s, sim_kind_foreach_t cb, void *userdata);

/* Seeds the generator of uids and generateName suffixes (default 1: runs are reproducible). */
void sim_store_set_seed(SimStore *s, uint64_t seed);
/* Random number from the store's generator (lock held). */
uint64_t sim_store_random(SimStore *s);

/* Number of objects of kind k (in ns, or all when NULL). */
size_t sim_store_count(SimStore *s, const SimKind *k, const char *ns);
/* Number of objects of kind k in ns (NULL: all) after the key (after_ns, after_name), by index arithmetic. */
size_t sim_store_count_after(SimStore *s, const SimKind *k, const char *ns, const char *after_ns,
                             const char *after_name);

/*
 * The event history watches replay: one SimEvent per write, revisions
 * consecutive, the last `limit` retained (default 20000). Lock held for all.
 * An event holds the serialized new and previous states (shared with the
 * store while they are current, so the history costs only the versions no
 * longer stored); the accessors below read them.
 */
struct SimBlob;
typedef struct SimEvent {
        uint64_t revision;
        const SimKind *kind;
        SimEventType type;
        struct SimBlob *obj_; /* private: new state; for DELETED the last state, resourceVersion = revision */
        struct SimBlob *old_; /* private: previous state, or NULL for ADDED */
} SimEvent;
void sim_store_set_history_limit(SimStore *s, size_t limit);
/* Every event with revision > rev is retained when rev >= this value; older watches get 410. */
uint64_t sim_store_history_floor(const SimStore *s);
/* The first retained event with revision > rev, or NULL when there is none (yet). */
const SimEvent *sim_store_history_after(SimStore *s, uint64_t rev);
/* Compact JSON of the event's object (borrowed). */
const char *sim_event_json(const SimEvent *ev);
/* The event object's namespace ("" for cluster-scoped kinds; borrowed). */
const char *sim_event_ns(const SimEvent *ev);
/* The event's object, and its previous state (NULL for ADDED), parsed: borrowed as sim_store_get. */
json_object *sim_event_object(SimStore *s, const SimEvent *ev);
json_object *sim_event_old(SimStore *s, const SimEvent *ev);
/*
 * Waits (lock held, released while waiting) until a write happens, sim_store_wake
 * is called or real_timeout µs pass. Returns 0, or -ETIMEDOUT.
 */
int sim_store_wait(SimStore *s, usec_t real_timeout);
/* Wakes every waiter (lock held), e.g. when the server stops. */
void sim_store_wake(SimStore *s);

/* Write flag for sim_store_update: the write came from a PATCH (audit says "patch"). */
enum {
        SIM_UPDATE_PATCH = 1 << 2,
};

/*
 * Appends an audit record for something that is not a store write (e.g. an
 * eviction). obj borrowed, may be NULL. No-op without an audit fd.
 */
void sim_store_audit(SimStore *s, const char *verb, const char *actor, const SimKind *k, const char *ns,
                     const char *name, json_object *obj);
