/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store.c — the simulator's object store (see store.h for the contract).
 *
 * Design:
 *  - One table per kind: a sorted array of entries keyed by (namespace,
 *    name), i.e. etcd's key order /registry/<resource>/<ns>/<name>, so a
 *    list is a walk and a lookup a binary search. Pods have a second sorted
 *    array keyed by (spec.nodeName, namespace, name) for the kubelets and for
 *    drain's fieldSelector=spec.nodeName.
 *  - Objects are kept serialized: an entry holds a blob (refcounted,
 *    immutable: the compact JSON followed by the namespace and name), which
 *    GET, LIST and watch send as it is. A json-c tree costs ~15 times its
 *    JSON (every object node allocates a 16-slot hash table), so trees are
 *    made on demand: parsed when a reader asks, kept in a scratch list
 *    (and cached on the entry) until the lock is released or a mark is
 *    released, then freed. The writer's own tree becomes the entry's cached
 *    tree, so a write followed by reads under the same lock parses nothing.
 *  - Every write stores a new blob and the old one lives on only through
 *    the event history's references, which is what lets a watcher read an
 *    event's object (and its previous state for selector transitions) long
 *    after the write.
 *  - Pods also index their node (spec.nodeName) and every object its
 *    controller owner's uid, taken from the tree at write, so the kubelets
 *    and the ReplicaSet controller find their pods without parsing others.
 *  - One global revision (etcd's): each write takes the next number, so the
 *    history is a ring of consecutive revisions and "the first event after
 *    RV" is an index computation. Events that fall off the ring raise the
 *    floor below which a watch must be answered 410 Expired.
 *  - What the registry does on write lives here too (uid, timestamps,
 *    generation, defaults, graceful deletion, finalizers), so objects the
 *    controllers and the scenario loader create look like the API's.
 */
#include <ctype.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "audit.h"
#include "meshroll/json-util.h"
#include "store.h"

#define HISTORY_DEFAULT 20000
#define SCRATCH_TRIM 1024 /* trees freed at once that make a release return memory to the system */
#define NAME_MAX_LEN 253
#define VERBS_CR "delete deletecollection get list patch create update watch"

/* An object's serialized state: JSON, then its namespace and name, NUL-separated. */
typedef struct SimBlob {
        uint32_t refs;
        uint32_t ns_off, name_off;
        size_t size; /* of the JSON */
        char data[];
} Blob;

typedef struct Entry {
        Blob *blob;
        char *node;       /* pods: spec.nodeName, or NULL */
        char *owner;      /* uid of the controller ownerReference, or NULL */
        json_object *obj; /* parsed tree, while in the scratch list at slot */
        size_t slot;
} Entry;

/* A tree handed out under the lock; e is the entry it is the cached tree of, or NULL. */
typedef struct Parsed {
        json_object *obj;
        Entry *e;
} Parsed;

#define E_NS(e) ((e)->blob->data + (e)->blob->ns_off)
#define E_NAME(e) ((e)->blob->data + (e)->blob->name_off)

typedef struct Table {
        const SimKind *kind;
        Entry **v;
        size_t n, cap;
        Entry **by_node; /* pods only */
        size_t n_node, cap_node;
} Table;

/* A kind declared by a CRD: the SimKind and the strings it points to. */
typedef struct CrdKind {
        SimKind k;
        char *strings[16];
        size_t n_strings;
} CrdKind;

typedef struct Observer {
        sim_observer_t cb;
        void *userdata;
} Observer;

struct SimStore {
        pthread_mutex_t mutex;
        pthread_cond_t cond;
        const SimClock *clock;
        int audit_fd;
        uint64_t revision;
        uint64_t rng;

        Table *tables;
        size_t n_tables;
        CrdKind **crds;
        size_t n_crds;
        Observer *observers;
        size_t n_observers;

        SimEvent *ring;
        size_t ring_cap, ring_start, ring_n;
        uint64_t floor;

        Parsed *scratch;
        size_t n_scratch, cap_scratch;
        json_tokener *tok;
};

/* ---- clock ---- */

void sim_clock_init(SimClock *c, const MrClock *real, double speed)
{
        c->real = real;
        c->speed = speed > 0 ? speed : 1.0;
        c->start_mono = mr_now_monotonic(real);
        c->start_wall = mr_now_realtime(real);
}

usec_t sim_clock_now(const SimClock *c)
{
        usec_t mono = mr_now_monotonic(c->real);
        usec_t elapsed = mono > c->start_mono ? mono - c->start_mono : 0;
        return c->start_wall + (usec_t)((double)elapsed * c->speed);
}

usec_t sim_clock_real_delay(const SimClock *c, usec_t sim_delay)
{
        if (sim_delay == USEC_INFINITY)
                return USEC_INFINITY;
        return (usec_t)((double)sim_delay / c->speed);
}

/* ---- small helpers ---- */

static int table_cmp(const char *ns1, const char *n1, const char *ns2, const char *n2)
{
        int r = strcmp(ns1, ns2);
        return r != 0 ? r : strcmp(n1, n2);
}

/* Index of the first entry >= (ns, name); *found when equal. */
static size_t table_search(const Table *t, const char *ns, const char *name, bool *found)
{
        size_t lo = 0, hi = t->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (table_cmp(E_NS(t->v[mid]), E_NAME(t->v[mid]), ns, name) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (found)
                *found = lo < t->n && table_cmp(E_NS(t->v[lo]), E_NAME(t->v[lo]), ns, name) == 0;
        return lo;
}

static int node_cmp(const Entry *a, const char *node, const char *ns, const char *name)
{
        int r = strcmp(a->node, node);
        return r != 0 ? r : table_cmp(E_NS(a), E_NAME(a), ns, name);
}

static size_t node_search(const Table *t, const char *node, const char *ns, const char *name)
{
        size_t lo = 0, hi = t->n_node;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (node_cmp(t->by_node[mid], node, ns, name) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static int grow(void **v, size_t *cap, size_t need, size_t size)
{
        if (need <= *cap)
                return 0;
        size_t c = MAX(*cap * 2, (size_t)16);
        while (c < need)
                c *= 2;
        void *p = realloc(*v, c * size);
        if (!p)
                return -ENOMEM;
        *v = p;
        *cap = c;
        return 0;
}

static int node_index_add(Table *t, Entry *e)
{
        if (!e->node)
                return 0;
        if (grow((void **)&t->by_node, &t->cap_node, t->n_node + 1, sizeof(Entry *)) < 0)
                return -ENOMEM;
        size_t i = node_search(t, e->node, E_NS(e), E_NAME(e));
        memmove(t->by_node + i + 1, t->by_node + i, (t->n_node - i) * sizeof(Entry *));
        t->by_node[i] = e;
        t->n_node++;
        return 0;
}

static void node_index_del(Table *t, Entry *e)
{
        if (!e->node)
                return;
        size_t i = node_search(t, e->node, E_NS(e), E_NAME(e));
        if (i < t->n_node && t->by_node[i] == e) {
                memmove(t->by_node + i, t->by_node + i + 1, (t->n_node - i - 1) * sizeof(Entry *));
                t->n_node--;
        }
}

static Blob *blob_ref(Blob *b)
{
        if (b)
                b->refs++;
        return b;
}

static Blob *blob_unref(Blob *b)
{
        if (b && --b->refs == 0)
                free(b);
        return NULL;
}

/* A blob of obj's compact JSON with its key (ns "" for cluster scope). refs = 1. */
static Blob *blob_new(json_object *obj, const char *ns, const char *name)
{
        size_t len = 0;
        const char *json = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                                             &len);
        size_t nsl = strlen(strempty(ns)), nl = strlen(strempty(name));
        if (!json)
                return NULL;
        Blob *b = malloc(sizeof(Blob) + len + nsl + nl + 3);
        if (!b)
                return NULL;
        b->refs = 1;
        b->size = len;
        b->ns_off = (uint32_t)(len + 1);
        b->name_off = (uint32_t)(len + nsl + 2);
        memcpy(b->data, json, len + 1);
        memcpy(b->data + b->ns_off, strempty(ns), nsl + 1);
        memcpy(b->data + b->name_off, strempty(name), nl + 1);
        return b;
}

/* Hands obj (a reference is taken over) out under the lock; as e's cached tree when e is set. */
static int scratch_push(SimStore *s, json_object *obj, Entry *e)
{
        if (grow((void **)&s->scratch, &s->cap_scratch, s->n_scratch + 1, sizeof(Parsed)) < 0) {
                json_object_put(obj);
                return -ENOMEM;
        }
        if (e) {
                if (e->obj)
                        s->scratch[e->slot].e = NULL; /* the previous tree stays valid until released */
                e->obj = obj;
                e->slot = s->n_scratch;
        }
        s->scratch[s->n_scratch++] = (Parsed){obj, e};
        return 0;
}

size_t sim_store_mark(SimStore *s)
{
        return s->n_scratch;
}

void sim_store_release(SimStore *s, size_t mark)
{
        size_t freed = s->n_scratch > mark ? s->n_scratch - mark : 0;
        while (s->n_scratch > mark) {
                Parsed *p = &s->scratch[--s->n_scratch];
                if (p->e)
                        p->e->obj = NULL;
                json_object_put(p->obj);
        }
        /*
         * Thousands of trees at once (a scenario's objects, a long walk) are
         * tens of MiB glibc would keep: give them back, or the peak stays
         * the RSS. Rare, so the trim's walk of the heap costs nothing.
         */
        if (freed >= SCRATCH_TRIM)
                malloc_trim(0);
}

/* Parses a blob (our own output) into a tree handed out under the lock. NULL on ENOMEM. */
static json_object *blob_parse(SimStore *s, const Blob *b, Entry *e)
{
        if (!s->tok && !(s->tok = json_tokener_new()))
                return NULL;
        json_tokener_reset(s->tok);
        json_object *o = json_tokener_parse_ex(s->tok, b->data, (int)b->size);
        if (!o || scratch_push(s, o, e) < 0)
                return NULL;
        return o;
}

static json_object *entry_object(SimStore *s, Entry *e)
{
        return e->obj ? e->obj : blob_parse(s, e->blob, e);
}

static Entry *entry_free(SimStore *s, Entry *e)
{
        if (!e)
                return NULL;
        if (e->obj)
                s->scratch[e->slot].e = NULL;
        blob_unref(e->blob);
        free(e->node);
        free(e->owner);
        free(e);
        return NULL;
}

static Table *table_for(SimStore *s, const SimKind *k)
{
        for (size_t i = 0; i < s->n_tables; i++)
                if (s->tables[i].kind == k)
                        return &s->tables[i];
        return NULL;
}

static const char *obj_name(json_object *o)
{
        return mr_json_get_str(o, "metadata", "name", NULL);
}

static const char *obj_ns(const SimKind *k, json_object *o)
{
        const char *ns = k->namespaced ? mr_json_get_str(o, "metadata", "namespace", NULL) : NULL;
        return ns ? ns : "";
}

static const char *pod_node(const SimKind *k, json_object *o)
{
        const char *n = k == &SIM_PODS ? mr_json_get_str(o, "spec", "nodeName", NULL) : NULL;
        return isempty(n) ? NULL : n;
}

static int set_rv(json_object *o, uint64_t rev)
{
        char buf[32];
        json_object *meta = mr_json_ensure_object(o, "metadata", NULL);
        if (!meta)
                return -ENOMEM;
        snprintf(buf, sizeof(buf), "%" PRIu64, rev);
        return mr_json_set_str(meta, "resourceVersion", buf);
}

static void format_time(SimStore *s, usec_t delta, char buf[static KUBE_TIME_MAX])
{
        kube_time_format(sim_store_now(s) + delta, buf);
}

static int not_found(MrError *err, const SimKind *k, const char *name)
{
        char gr[256];
        return mr_error_set(err, -ENOENT, "%s \"%s\" not found", sim_kind_group_resource(k, gr, sizeof(gr)),
                            strempty(name));
}

static int invalid(MrError *err, const SimKind *k, const char *name, const char *what)
{
        if (isempty(k->group))
                return mr_error_set(err, -MR_EINVALID, "%s \"%s\" is invalid: %s", k->kind, strempty(name), what);
        return mr_error_set(err, -MR_EINVALID, "%s.%s \"%s\" is invalid: %s", k->kind, k->group, strempty(name),
                            what);
}

/* ---- lifecycle ---- */

static void event_clear(SimEvent *ev)
{
        blob_unref(ev->obj_);
        blob_unref(ev->old_);
        *ev = (SimEvent){};
}

static int add_table(SimStore *s, const SimKind *k)
{
        Table *t = realloc(s->tables, (s->n_tables + 1) * sizeof(Table));
        if (!t)
                return -ENOMEM;
        s->tables = t;
        s->tables[s->n_tables++] = (Table){.kind = k};
        return 0;
}

int sim_store_new(const SimClock *clock, int audit_fd, SimStore **ret)
{
        SimStore *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        pthread_mutex_init(&s->mutex, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->cond, &ca);
        pthread_condattr_destroy(&ca);
        s->clock = clock;
        s->audit_fd = audit_fd;
        s->revision = 1;
        s->floor = 1;
        s->rng = 1;
        s->ring_cap = HISTORY_DEFAULT;
        s->ring = calloc(s->ring_cap, sizeof(SimEvent));
        if (!s->ring)
                return sim_store_free(s), -ENOMEM;
        for (size_t i = 0; sim_builtin_kinds[i]; i++)
                if (add_table(s, sim_builtin_kinds[i]) < 0)
                        return sim_store_free(s), -ENOMEM;
        *ret = s;
        return 0;
}

SimStore *sim_store_free(SimStore *s)
{
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_tables; i++) {
                Table *t = &s->tables[i];
                for (size_t j = 0; j < t->n; j++)
                        entry_free(s, t->v[j]);
                free(t->v);
                free(t->by_node);
        }
        free(s->tables);
        for (size_t i = 0; i < s->n_crds; i++) {
                for (size_t j = 0; j < s->crds[i]->n_strings; j++)
                        free(s->crds[i]->strings[j]);
                free(s->crds[i]);
        }
        free(s->crds);
        if (s->ring)
                for (size_t i = 0; i < s->ring_n; i++)
                        event_clear(&s->ring[(s->ring_start + i) % s->ring_cap]);
        free(s->ring);
        free(s->observers);
        sim_store_release(s, 0);
        free(s->scratch);
        if (s->tok)
                json_tokener_free(s->tok);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->mutex);
        free(s);
        return NULL;
}

void sim_store_lock(SimStore *s)
{
        pthread_mutex_lock(&s->mutex);
}

void sim_store_unlock(SimStore *s)
{
        sim_store_release(s, 0);
        pthread_mutex_unlock(&s->mutex);
}

usec_t sim_store_now(const SimStore *s)
{
        return s->clock ? sim_clock_now(s->clock) : mr_now_realtime(NULL);
}

uint64_t sim_store_revision(const SimStore *s)
{
        return s->revision;
}

void sim_store_set_seed(SimStore *s, uint64_t seed)
{
        s->rng = seed;
}

uint64_t sim_store_random(SimStore *s)
{
        /* splitmix64: tiny, good enough for names and uids, reproducible per seed. */
        uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

int sim_store_observe(SimStore *s, sim_observer_t cb, void *userdata)
{
        Observer *o = realloc(s->observers, (s->n_observers + 1) * sizeof(Observer));
        if (!o)
                return -ENOMEM;
        s->observers = o;
        s->observers[s->n_observers++] = (Observer){cb, userdata};
        return 0;
}

int sim_store_unobserve(SimStore *s, sim_observer_t cb, void *userdata)
{
        for (size_t i = 0; i < s->n_observers; i++)
                if (s->observers[i].cb == cb && s->observers[i].userdata == userdata) {
                        memmove(s->observers + i, s->observers + i + 1, (s->n_observers - i - 1) * sizeof(Observer));
                        s->n_observers--;
                        return 0;
                }
        return -ENOENT;
}

/* ---- kinds ---- */

int sim_store_foreach_kind(SimStore *s, sim_kind_foreach_t cb, void *userdata)
{
        for (size_t i = 0; i < s->n_tables; i++) {
                int r = cb(s->tables[i].kind, userdata);
                if (r != 0)
                        return r;
        }
        return 0;
}

const SimKind *sim_store_find_kind(SimStore *s, const char *group, const char *version, const char *resource)
{
        for (size_t i = 0; i < s->n_tables; i++) {
                const SimKind *k = s->tables[i].kind;
                if (streq(k->group, strempty(group)) && streq(k->version, version) && streq(k->resource, resource))
                        return k;
        }
        return NULL;
}

const SimKind *sim_store_find_kind_by_kind(SimStore *s, const char *api_version, const char *kind)
{
        const char *slash = api_version ? strchr(api_version, '/') : NULL;
        size_t glen = slash ? (size_t)(slash - api_version) : 0;
        const char *version = slash ? slash + 1 : api_version;

        if (!api_version || !kind)
                return NULL;
        for (size_t i = 0; i < s->n_tables; i++) {
                const SimKind *k = s->tables[i].kind;
                if (streq(k->kind, kind) && streq(k->version, version) && strlen(k->group) == glen &&
                    strneq(k->group, api_version, glen))
                        return k;
        }
        return NULL;
}

static char *crd_str(CrdKind *c, const char *v)
{
        if (!v || c->n_strings >= ELEMENTSOF(c->strings))
                return NULL;
        char *d = strdup(v);
        if (d)
                c->strings[c->n_strings++] = d;
        return d;
}

static char *lowercase(const char *s)
{
        char *d = strdup(s);
        if (d)
                for (char *p = d; *p; p++)
                        if (*p >= 'A' && *p <= 'Z')
                                *p = (char)(*p - 'A' + 'a');
        return d;
}

static int register_version(SimStore *s, json_object *crd, json_object *version, MrError *err)
{
        const char *group = mr_json_get_str(crd, "spec", "group", NULL);
        const char *plural = mr_json_get_str(crd, "spec", "names", "plural", NULL);
        const char *kind = mr_json_get_str(crd, "spec", "names", "kind", NULL);
        const char *singular = mr_json_get_str(crd, "spec", "names", "singular", NULL);
        const char *scope = mr_json_get_str(crd, "spec", "scope", NULL);
        const char *vname = mr_json_get_str(version, "name", NULL);
        json_object *a;

        if (!vname || !mr_json_get_bool(true, version, "served", NULL))
                return 0;
        if (sim_store_find_kind(s, group, vname, plural))
                return 0; /* built in, or declared already */

        CrdKind *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        _cleanup_free_ char *lower = singular ? NULL : lowercase(kind);
        c->k.group = crd_str(c, group);
        c->k.version = crd_str(c, vname);
        c->k.resource = crd_str(c, plural);
        c->k.singular = crd_str(c, singular ? singular : lower);
        c->k.kind = crd_str(c, kind);
        a = mr_json_get(crd, "spec", "names", "shortNames", NULL);
        for (size_t i = 0; a && json_object_is_type(a, json_type_array) && i < json_object_array_length(a) &&
                           i + 1 < ELEMENTSOF(c->k.short_names);
             i++)
                c->k.short_names[i] = crd_str(c, json_object_get_string(json_object_array_get_idx(a, i)));
        a = mr_json_get(crd, "spec", "names", "categories", NULL);
        for (size_t i = 0; a && json_object_is_type(a, json_type_array) && i < json_object_array_length(a) &&
                           i + 1 < ELEMENTSOF(c->k.categories);
             i++)
                c->k.categories[i] = crd_str(c, json_object_get_string(json_object_array_get_idx(a, i)));
        c->k.namespaced = !streq_ptr(scope, "Cluster");
        c->k.has_status = mr_json_get(version, "subresources", "status", NULL) != NULL;
        c->k.verbs = VERBS_CR;
        c->k.generation = true;
        c->k.require_rv = true;
        if (!c->k.group || !c->k.version || !c->k.resource || !c->k.singular || !c->k.kind) {
                for (size_t j = 0; j < c->n_strings; j++)
                        free(c->strings[j]);
                free(c);
                return -ENOMEM;
        }
        CrdKind **v = realloc(s->crds, (s->n_crds + 1) * sizeof(CrdKind *));
        if (!v || add_table(s, &c->k) < 0) {
                if (v)
                        s->crds = v;
                for (size_t j = 0; j < c->n_strings; j++)
                        free(c->strings[j]);
                free(c);
                return mr_error_set(err, -ENOMEM, "out of memory");
        }
        s->crds = v;
        s->crds[s->n_crds++] = c;
        return 0;
}

int sim_store_register_crd(SimStore *s, json_object *crd, MrError *err)
{
        const char *name = obj_name(crd);
        json_object *versions = mr_json_get(crd, "spec", "versions", NULL);
        const char *group = mr_json_get_str(crd, "spec", "group", NULL);
        const char *plural = mr_json_get_str(crd, "spec", "names", "plural", NULL);
        const char *kind = mr_json_get_str(crd, "spec", "names", "kind", NULL);
        char want[512];

        if (isempty(group))
                return invalid(err, &SIM_CRDS, name, "spec.group: Required value");
        if (isempty(plural))
                return invalid(err, &SIM_CRDS, name, "spec.names.plural: Required value");
        if (isempty(kind))
                return invalid(err, &SIM_CRDS, name, "spec.names.kind: Required value");
        snprintf(want, sizeof(want), "%s.%s", plural, group);
        if (!streq_ptr(name, want))
                return invalid(err, &SIM_CRDS, name, "metadata.name: Invalid value: must be spec.names.plural+\".\"+spec.group");
        if (!versions || !json_object_is_type(versions, json_type_array) || json_object_array_length(versions) == 0)
                return invalid(err, &SIM_CRDS, name, "spec.versions: Invalid value: must have exactly one version marked as storage version");
        for (size_t i = 0; i < json_object_array_length(versions); i++) {
                int r = register_version(s, crd, json_object_array_get_idx(versions, i), err);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- history, observers, audit ---- */

void sim_store_set_history_limit(SimStore *s, size_t limit)
{
        limit = MAX(limit, (size_t)1);
        SimEvent *ring = calloc(limit, sizeof(SimEvent));
        if (!ring)
                return;
        size_t keep = MIN(s->ring_n, limit), drop = s->ring_n - keep;
        for (size_t i = 0; i < s->ring_n; i++) {
                SimEvent *ev = &s->ring[(s->ring_start + i) % s->ring_cap];
                if (i < drop) {
                        s->floor = ev->revision;
                        event_clear(ev);
                } else
                        ring[i - drop] = *ev;
        }
        free(s->ring);
        s->ring = ring;
        s->ring_cap = limit;
        s->ring_start = 0;
        s->ring_n = keep;
}

uint64_t sim_store_history_floor(const SimStore *s)
{
        return s->floor;
}

const SimEvent *sim_store_history_after(SimStore *s, uint64_t rev)
{
        if (s->ring_n == 0)
                return NULL;
        uint64_t first = s->ring[s->ring_start].revision;
        uint64_t idx = rev + 1 <= first ? 0 : rev + 1 - first;
        if (idx >= s->ring_n)
                return NULL;
        return &s->ring[(s->ring_start + idx) % s->ring_cap];
}

const char *sim_event_json(const SimEvent *ev)
{
        return ev->obj_->data;
}

const char *sim_event_ns(const SimEvent *ev)
{
        return ev->obj_->data + ev->obj_->ns_off;
}

json_object *sim_event_object(SimStore *s, const SimEvent *ev)
{
        return blob_parse(s, ev->obj_, NULL);
}

json_object *sim_event_old(SimStore *s, const SimEvent *ev)
{
        return ev->old_ ? blob_parse(s, ev->old_, NULL) : NULL;
}

int sim_store_wait(SimStore *s, usec_t real_timeout)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if (real_timeout > 3600 * USEC_PER_SEC)
                real_timeout = 3600 * USEC_PER_SEC;
        uint64_t ns = (uint64_t)ts.tv_nsec + (real_timeout % USEC_PER_SEC) * NSEC_PER_USEC;
        ts.tv_sec += (time_t)(real_timeout / USEC_PER_SEC + ns / 1000000000ULL);
        ts.tv_nsec = (long)(ns % 1000000000ULL);
        sim_store_release(s, 0); /* the lock is released while waiting: so is everything borrowed */
        int r = pthread_cond_timedwait(&s->cond, &s->mutex, &ts);
        return r == ETIMEDOUT ? -ETIMEDOUT : 0;
}

void sim_store_wake(SimStore *s)
{
        pthread_cond_broadcast(&s->cond);
}

void sim_store_audit(SimStore *s, const char *verb, const char *actor, const SimKind *k, const char *ns,
                     const char *name, json_object *obj)
{
        if (s->audit_fd < 0)
                return;
        (void)sim_audit_write(s->audit_fd, sim_store_now(s), verb, actor, k, ns, name,
                              obj ? mr_json_get_str(obj, "metadata", "resourceVersion", NULL) : NULL, obj);
}

/*
 * Records a write that already got revision s->revision: history, observers,
 * audit, waiters. obj is the stored state and blob its serialization, old and
 * old_blob the previous ones or NULL (the history takes blob references).
 */
static void commit(SimStore *s, const SimKind *k, SimEventType type, json_object *obj, Blob *blob,
                   json_object *old, Blob *old_blob, const char *verb, const char *actor)
{
        SimEvent *ev;

        if (s->ring_n == s->ring_cap) {
                ev = &s->ring[s->ring_start];
                s->floor = ev->revision;
                event_clear(ev);
                s->ring_start = (s->ring_start + 1) % s->ring_cap;
                s->ring_n--;
        }
        ev = &s->ring[(s->ring_start + s->ring_n) % s->ring_cap];
        *ev = (SimEvent){
                .revision = s->revision,
                .kind = k,
                .type = type,
                .obj_ = blob_ref(blob),
                .old_ = blob_ref(old_blob),
        };
        s->ring_n++;

        for (size_t i = 0; i < s->n_observers; i++)
                s->observers[i].cb(s, k, type, obj, old, s->observers[i].userdata);
        sim_store_audit(s, verb, actor, k, obj_ns(k, obj), obj_name(obj), obj);
        pthread_cond_broadcast(&s->cond);
}

/* ---- defaults (the API's defaulting, applied to every stored object) ---- */

static int default_int(json_object *o, const char *key, int64_t v)
{
        return o && !json_object_object_get_ex(o, key, NULL) ? mr_json_set_int(o, key, v) : 0;
}

static int default_str(json_object *o, const char *key, const char *v)
{
        return o && !json_object_object_get_ex(o, key, NULL) ? mr_json_set_str(o, key, v) : 0;
}

static int apply_defaults(const SimKind *k, json_object *o)
{
        json_object *spec, *x;

        if (k == &SIM_NAMESPACES) {
                json_object *labels = mr_json_ensure_object(o, "metadata", "labels", NULL);
                if (!labels || mr_json_set_str(labels, "kubernetes.io/metadata.name", obj_name(o)) < 0)
                        return -ENOMEM;
                spec = mr_json_ensure_object(o, "spec", NULL);
                if (spec && !json_object_object_get_ex(spec, "finalizers", NULL)) {
                        json_object *f = json_object_new_array();
                        if (!f || json_object_array_add(f, json_object_new_string("kubernetes")) < 0 ||
                            json_object_object_add(spec, "finalizers", f) < 0)
                                return -ENOMEM;
                }
                return default_str(mr_json_ensure_object(o, "status", NULL), "phase", "Active");
        }
        if (k == &SIM_PODS) {
                spec = mr_json_ensure_object(o, "spec", NULL);
                if (default_int(spec, "terminationGracePeriodSeconds", 30) < 0 ||
                    default_str(spec, "restartPolicy", "Always") < 0 ||
                    default_str(spec, "schedulerName", "default-scheduler") < 0 ||
                    default_str(spec, "dnsPolicy", "ClusterFirst") < 0)
                        return -ENOMEM;
                return default_str(mr_json_ensure_object(o, "status", NULL), "phase", "Pending");
        }
        if (k == &SIM_DAEMONSETS) {
                spec = mr_json_ensure_object(o, "spec", NULL);
                x = mr_json_ensure_object(o, "spec", "updateStrategy", NULL);
                if (default_str(x, "type", "RollingUpdate") < 0 || default_int(spec, "revisionHistoryLimit", 10) < 0)
                        return -ENOMEM;
                if (streq_ptr(mr_json_get_str(x, "type", NULL), "RollingUpdate")) {
                        x = mr_json_ensure_object(x, "rollingUpdate", NULL);
                        if (default_int(x, "maxUnavailable", 1) < 0 || default_int(x, "maxSurge", 0) < 0)
                                return -ENOMEM;
                }
                return 0;
        }
        if (k == &SIM_DEPLOYMENTS) {
                spec = mr_json_ensure_object(o, "spec", NULL);
                x = mr_json_ensure_object(o, "spec", "strategy", NULL);
                if (default_int(spec, "replicas", 1) < 0 || default_int(spec, "revisionHistoryLimit", 10) < 0 ||
                    default_int(spec, "progressDeadlineSeconds", 600) < 0 || default_str(x, "type", "RollingUpdate") < 0)
                        return -ENOMEM;
                if (streq_ptr(mr_json_get_str(x, "type", NULL), "RollingUpdate")) {
                        x = mr_json_ensure_object(x, "rollingUpdate", NULL);
                        if (default_str(x, "maxUnavailable", "25%") < 0 || default_str(x, "maxSurge", "25%") < 0)
                                return -ENOMEM;
                }
                return 0;
        }
        if (k == &SIM_REPLICASETS)
                return default_int(mr_json_ensure_object(o, "spec", NULL), "replicas", 1);
        if (k == &SIM_SERVICES)
                return default_str(mr_json_ensure_object(o, "spec", NULL), "type", "ClusterIP");
        return 0;
}

/* true when anything but metadata, status, kind and apiVersion differs. */
static bool spec_changed(json_object *a, json_object *b)
{
        static const char *const skip[] = {"metadata", "status", "kind", "apiVersion"};
        json_object *va, *vb;

        json_object_object_foreach(a, key, val) {
                bool skipped = false;
                for (size_t i = 0; i < ELEMENTSOF(skip); i++)
                        skipped = skipped || streq(key, skip[i]);
                if (skipped)
                        continue;
                if (!json_object_object_get_ex(b, key, &vb) || !mr_json_equal(val, vb))
                        return true;
        }
        json_object_object_foreach(b, key2, val2) {
                (void)val2;
                bool skipped = false;
                for (size_t i = 0; i < ELEMENTSOF(skip); i++)
                        skipped = skipped || streq(key2, skip[i]);
                if (!skipped && !json_object_object_get_ex(a, key2, &va))
                        return true;
        }
        return false;
}

static int copy_key(json_object *dst, json_object *src, const char *key)
{
        json_object *v;
        if (!json_object_object_get_ex(src, key, &v)) {
                json_object_object_del(dst, key);
                return 0;
        }
        json_object *c = mr_json_copy(v);
        if (!c && v)
                return -ENOMEM;
        return json_object_object_add(dst, key, c) < 0 ? -ENOMEM : 0;
}

static int set_type_meta(const SimKind *k, json_object *o)
{
        char av[128];
        if (mr_json_set_str(o, "apiVersion", sim_kind_api_version(k, av, sizeof(av))) < 0 ||
            mr_json_set_str(o, "kind", k->kind) < 0)
                return -ENOMEM;
        return 0;
}

/* ---- writes ---- */

/* The uid of obj's controller ownerReference, or NULL. */
static const char *owner_uid(json_object *obj)
{
        json_object *refs = mr_json_get(obj, "metadata", "ownerReferences", NULL);
        if (!refs || !json_object_is_type(refs, json_type_array))
                return NULL;
        for (size_t i = 0; i < json_object_array_length(refs); i++) {
                json_object *ref = json_object_array_get_idx(refs, i);
                if (mr_json_get_bool(false, ref, "controller", NULL))
                        return mr_json_get_str(ref, "uid", NULL);
        }
        return NULL;
}

static int set_str(char **p, const char *v)
{
        if (streq_ptr(*p, v))
                return 0;
        char *n = v ? strdup(v) : NULL;
        if (v && !n)
                return -ENOMEM;
        free(*p);
        *p = n;
        return 0;
}

/*
 * Stores obj (its reference is taken over, also on failure) as a new entry:
 * serialized into a blob, and kept as the entry's cached tree.
 */
static int table_insert(SimStore *s, Table *t, json_object *obj, Entry **ret)
{
        const SimKind *k = t->kind;
        const char *node = pod_node(k, obj);
        Entry *e = calloc(1, sizeof(*e));
        bool found;

        if (!e) {
                json_object_put(obj);
                return -ENOMEM;
        }
        e->blob = blob_new(obj, obj_ns(k, obj), obj_name(obj));
        if (!e->blob || set_str(&e->node, node) < 0 || set_str(&e->owner, owner_uid(obj)) < 0 ||
            grow((void **)&t->v, &t->cap, t->n + 1, sizeof(Entry *)) < 0) {
                json_object_put(obj);
                entry_free(s, e);
                return -ENOMEM;
        }
        if (scratch_push(s, obj, e) < 0 || node_index_add(t, e) < 0) {
                entry_free(s, e);
                return -ENOMEM;
        }
        size_t i = table_search(t, E_NS(e), E_NAME(e), &found);
        memmove(t->v + i + 1, t->v + i, (t->n - i) * sizeof(Entry *));
        t->v[i] = e;
        t->n++;
        *ret = e;
        return 0;
}

static void table_delete(SimStore *s, Table *t, Entry *e)
{
        bool found;
        size_t i = table_search(t, E_NS(e), E_NAME(e), &found);
        if (found && t->v[i] == e) {
                memmove(t->v + i, t->v + i + 1, (t->n - i - 1) * sizeof(Entry *));
                t->n--;
        }
        node_index_del(t, e);
        entry_free(s, e);
}

static Entry *table_find(Table *t, const char *ns, const char *name)
{
        bool found;
        if (!name)
                return NULL;
        size_t i = table_search(t, t->kind->namespaced ? strempty(ns) : "", name, &found);
        return found ? t->v[i] : NULL;
}

/*
 * Replaces e's state with obj (its reference is taken over, also on
 * failure), keeping the indexes right. *ret_old receives the previous blob
 * (owned by the caller), for the history.
 */
static int entry_replace(SimStore *s, Table *t, Entry *e, json_object *obj, Blob **ret_old)
{
        const char *node = pod_node(t->kind, obj);
        Blob *b = blob_new(obj, E_NS(e), E_NAME(e));
        if (!b || set_str(&e->owner, owner_uid(obj)) < 0) {
                free(b);
                json_object_put(obj);
                return -ENOMEM;
        }
        if (!streq_ptr(node, e->node)) {
                char *n = node ? strdup(node) : NULL;
                if (node && !n) {
                        free(b);
                        json_object_put(obj);
                        return -ENOMEM;
                }
                node_index_del(t, e);
                free(e->node);
                e->node = n;
                if (node_index_add(t, e) < 0) {
                        free(e->node);
                        e->node = NULL;
                }
        }
        if (scratch_push(s, obj, e) < 0) {
                free(b);
                return -ENOMEM;
        }
        *ret_old = e->blob;
        e->blob = b;
        return 0;
}

static void random_suffix(SimStore *s, char out[6])
{
        static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
        for (size_t i = 0; i < 5; i++)
                out[i] = alphabet[sim_store_random(s) % (sizeof(alphabet) - 1)];
        out[5] = 0;
}

static void random_uid(SimStore *s, char out[37])
{
        uint64_t a = sim_store_random(s), b = sim_store_random(s);
        snprintf(out, 37, "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-%04" PRIx64 "-%012" PRIx64, a >> 32,
                 (a >> 16) & 0xffff, a & 0xfff, (uint64_t)(0x8000 | ((b >> 48) & 0x3fff)), (uint64_t)(b & 0xffffffffffffULL));
}

int sim_store_create(SimStore *s, const SimKind *k, json_object *obj, const char *actor, json_object **ret,
                     MrError *err)
{
        _cleanup_(json_object_putp) json_object *o = obj;
        char buf[KUBE_TIME_MAX], uid[37], gr[256];
        json_object *meta;
        Table *t = table_for(s, k);
        Entry *e;
        int r;

        if (!t)
                return mr_error_set(err, -ENOENT, "the server could not find the requested resource");
        if (!o || !json_object_is_type(o, json_type_object))
                return mr_error_set(err, -MR_EBADREQUEST, "the body of the request was not a JSON object");
        meta = mr_json_ensure_object(o, "metadata", NULL);
        if (!meta)
                return invalid(err, k, "", "metadata: Invalid value: must be an object");

        if (isempty(mr_json_get_str(meta, "name", NULL))) {
                const char *gen = mr_json_get_str(meta, "generateName", NULL);
                if (isempty(gen))
                        return invalid(err, k, "",
                                       "metadata.name: Required value: name or generateName is required");
                _cleanup_free_ char *name = NULL;
                for (int attempt = 0; attempt < 8 && !name; attempt++) {
                        char sfx[6];
                        random_suffix(s, sfx);
                        if (asprintf(&name, "%.*s%s", 58, gen, sfx) < 0)
                                return -ENOMEM;
                        if (table_find(t, mr_json_get_str(meta, "namespace", NULL), name))
                                {
                                free(name);
                                name = NULL;
                        }
                }
                if (!name)
                        return mr_error_set(err, -EEXIST, "%s \"%s\" already exists",
                                            sim_kind_group_resource(k, gr, sizeof(gr)), gen);
                if (mr_json_set_str(meta, "name", name) < 0)
                        return -ENOMEM;
        }
        const char *name = obj_name(o);
        if (strlen(name) > NAME_MAX_LEN || strchr(name, '/') || streq(name, ".") || streq(name, ".."))
                return invalid(err, k, name, "metadata.name: Invalid value: a lowercase RFC 1123 subdomain must "
                                             "consist of lower case alphanumeric characters, '-' or '.'");
        if (k->namespaced) {
                if (isempty(mr_json_get_str(meta, "namespace", NULL)) && mr_json_set_str(meta, "namespace", "default") < 0)
                        return -ENOMEM;
        } else
                json_object_object_del(meta, "namespace");

        if (table_find(t, obj_ns(k, o), name))
                return mr_error_set(err, -EEXIST, "%s \"%s\" already exists",
                                    sim_kind_group_resource(k, gr, sizeof(gr)), name);
        if (k == &SIM_CRDS) {
                if ((r = sim_store_register_crd(s, o, err)) < 0)
                        return r;
                t = table_for(s, k); /* registration may have moved the tables */
        }

        random_uid(s, uid);
        format_time(s, 0, buf);
        if (set_type_meta(k, o) < 0 || mr_json_set_str(meta, "uid", uid) < 0 ||
            mr_json_set_str(meta, "creationTimestamp", buf) < 0 || apply_defaults(k, o) < 0)
                return -ENOMEM;
        json_object_object_del(meta, "deletionTimestamp");
        json_object_object_del(meta, "deletionGracePeriodSeconds");
        if (k->generation && mr_json_set_int(meta, "generation", 1) < 0)
                return -ENOMEM;
        else if (!k->generation)
                json_object_object_del(meta, "generation");
        if (k == &SIM_DAEMONSETS) {
                json_object *ann = mr_json_ensure_object(meta, "annotations", NULL);
                if (!ann || mr_json_set_str(ann, "deprecated.daemonset.template.generation", "1") < 0)
                        return -ENOMEM;
        }
        if (set_rv(o, s->revision + 1) < 0)
                return -ENOMEM;
        if ((r = table_insert(s, t, TAKE_PTR(o), &e)) < 0)
                return mr_error_set(err, r, "out of memory");
        s->revision++;
        commit(s, k, SIM_EVENT_ADDED, e->obj, e->blob, NULL, NULL, "create", actor);
        if (ret)
                *ret = e->obj;
        return 0;
}

json_object *sim_store_get(SimStore *s, const SimKind *k, const char *ns, const char *name)
{
        Table *t = table_for(s, k);
        Entry *e = t ? table_find(t, ns, name) : NULL;
        return e ? entry_object(s, e) : NULL;
}

const char *sim_store_get_json(SimStore *s, const SimKind *k, const char *ns, const char *name, size_t *ret_size)
{
        Table *t = table_for(s, k);
        Entry *e = t ? table_find(t, ns, name) : NULL;
        if (!e)
                return NULL;
        if (ret_size)
                *ret_size = e->blob->size;
        return e->blob->data;
}

static bool has_finalizers(json_object *o)
{
        json_object *f = mr_json_get(o, "metadata", "finalizers", NULL);
        return f && json_object_is_type(f, json_type_array) && json_object_array_length(f) > 0;
}

/* Removes e from t as a write: DELETED event with the deletion revision. */
static int remove_entry(SimStore *s, Table *t, Entry *e, const char *verb, const char *actor, json_object **ret)
{
        json_object *old = entry_object(s, e);
        json_object *last = old ? mr_json_copy(old) : NULL;
        if (!last || set_rv(last, s->revision + 1) < 0) {
                json_object_put(last);
                return -ENOMEM;
        }
        if (scratch_push(s, last, NULL) < 0)
                return -ENOMEM;
        Blob *b = blob_new(last, E_NS(e), E_NAME(e));
        if (!b)
                return -ENOMEM;
        Blob *old_blob = blob_ref(e->blob);
        s->revision++;
        table_delete(s, t, e);
        commit(s, t->kind, SIM_EVENT_DELETED, last, b, old, old_blob, verb, actor);
        blob_unref(b);
        blob_unref(old_blob);
        if (ret)
                *ret = last; /* borrowed from the scratch list: until unlock */
        return 0;
}

int sim_store_update(SimStore *s, const SimKind *k, json_object *obj, unsigned flags, const char *actor,
                     json_object **ret, MrError *err)
{
        _cleanup_(json_object_putp) json_object *o = obj;
        _cleanup_(json_object_putp) json_object *n = NULL;
        char gr[256], buf[32];
        Table *t = table_for(s, k);
        Entry *e;
        json_object *old, *meta, *old_meta;
        const char *name, *rv;
        int r;

        if (!t)
                return mr_error_set(err, -ENOENT, "the server could not find the requested resource");
        if (!o || !json_object_is_type(o, json_type_object))
                return mr_error_set(err, -MR_EBADREQUEST, "the body of the request was not a JSON object");
        name = obj_name(o);
        if (isempty(name))
                return invalid(err, k, "", "metadata.name: Required value: name is required");
        e = table_find(t, mr_json_get_str(o, "metadata", "namespace", NULL), name);
        if (!e)
                return not_found(err, k, name);
        old = entry_object(s, e);
        if (!old)
                return -ENOMEM;
        old_meta = mr_json_get(old, "metadata", NULL);

        rv = mr_json_get_str(o, "metadata", "resourceVersion", NULL);
        if (flags & SIM_UPDATE_CHECK_RV) {
                if (isempty(rv) && k->require_rv && !(flags & SIM_UPDATE_STATUS))
                        return invalid(err, k, name,
                                       "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update");
                if (!isempty(rv) && !streq_ptr(rv, mr_json_get_str(old_meta, "resourceVersion", NULL)))
                        return mr_error_set(err, -MR_ECONFLICT,
                                            "Operation cannot be fulfilled on %s \"%s\": the object has been "
                                            "modified; please apply your changes to the latest version and try again",
                                            sim_kind_group_resource(k, gr, sizeof(gr)), name);
        }

        if (flags & SIM_UPDATE_STATUS) {
                n = mr_json_copy(old);
                if (!n || copy_key(n, o, "status") < 0)
                        return -ENOMEM;
        } else {
                n = TAKE_PTR(o);
                meta = mr_json_ensure_object(n, "metadata", NULL);
                if (!meta)
                        return invalid(err, k, name, "metadata: Invalid value: must be an object");
                /* The registry keeps what a client may not change. */
                static const char *const keep[] = {"uid", "creationTimestamp", "deletionTimestamp",
                                                   "deletionGracePeriodSeconds", "generation", "namespace"};
                for (size_t i = 0; i < ELEMENTSOF(keep); i++)
                        if (copy_key(meta, old_meta, keep[i]) < 0)
                                return -ENOMEM;
                if (set_type_meta(k, n) < 0 || (k->has_status && copy_key(n, old, "status") < 0) ||
                    apply_defaults(k, n) < 0)
                        return -ENOMEM;
                if (k == &SIM_PODS) {
                        const char *was = pod_node(k, old), *now = pod_node(k, n);
                        if (was && !streq_ptr(was, now))
                                return invalid(err, k, name, "spec.nodeName: Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations) or `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)");
                }
                if (k->generation && spec_changed(old, n)) {
                        int64_t g = 0;
                        (void)mr_json_get_int(&g, old_meta, "generation", NULL);
                        if (mr_json_set_int(meta, "generation", g + 1) < 0)
                                return -ENOMEM;
                        if (k == &SIM_DAEMONSETS &&
                            !mr_json_equal(mr_json_get(old, "spec", "template", NULL), mr_json_get(n, "spec", "template", NULL))) {
                                int64_t tg = 0;
                                const char *v = mr_json_get_str(old_meta, "annotations",
                                                                "deprecated.daemonset.template.generation", NULL);
                                json_object *ann = mr_json_ensure_object(meta, "annotations", NULL);
                                if (v)
                                        tg = strtoll(v, NULL, 10);
                                snprintf(buf, sizeof(buf), "%" PRId64, tg + 1);
                                if (!ann || mr_json_set_str(ann, "deprecated.daemonset.template.generation", buf) < 0)
                                        return -ENOMEM;
                        }
                }
        }

        /* A write that changes nothing is no write: same revision, no event (as the real registry). */
        if (mr_json_set_str(mr_json_ensure_object(n, "metadata", NULL), "resourceVersion",
                            mr_json_get_str(old_meta, "resourceVersion", NULL)) < 0)
                return -ENOMEM;
        if (mr_json_equal(n, old)) {
                if (ret)
                        *ret = old;
                return 0;
        }

        /* The last finalizer of an object being deleted went away: the object goes. */
        if (mr_json_get(n, "metadata", "deletionTimestamp", NULL) && !has_finalizers(n)) {
                int64_t g = 0;
                (void)mr_json_get_int(&g, n, "metadata", "deletionGracePeriodSeconds", NULL);
                if (g == 0) {
                        Blob *was = NULL;
                        if ((r = entry_replace(s, t, e, TAKE_PTR(n), &was)) < 0)
                                return r;
                        blob_unref(was);
                        return remove_entry(s, t, e, "update", actor, ret);
                }
        }

        if (set_rv(n, s->revision + 1) < 0)
                return -ENOMEM;
        Blob *prev = NULL;
        if ((r = entry_replace(s, t, e, TAKE_PTR(n), &prev)) < 0)
                return mr_error_set(err, r, "out of memory");
        s->revision++;
        commit(s, k, SIM_EVENT_MODIFIED, e->obj, e->blob, old, prev,
               flags & SIM_UPDATE_STATUS ? "update-status" : flags & SIM_UPDATE_PATCH ? "patch" : "update", actor);
        blob_unref(prev);
        if (ret)
                *ret = e->obj;
        return 0;
}

int sim_store_delete(SimStore *s, const SimKind *k, const char *ns, const char *name, int64_t grace_seconds,
                     const char *precondition_uid, const char *precondition_rv, const char *actor,
                     json_object **ret, MrError *err)
{
        Table *t = table_for(s, k);
        Entry *e = t ? table_find(t, ns, name) : NULL;
        json_object *old;
        const char *uid, *rv, *phase;
        int64_t grace = 0, current = -1;
        char buf[KUBE_TIME_MAX];
        int r;

        if (!e)
                return not_found(err, k, name);
        old = entry_object(s, e);
        if (!old)
                return -ENOMEM;
        uid = mr_json_get_str(old, "metadata", "uid", NULL);
        rv = mr_json_get_str(old, "metadata", "resourceVersion", NULL);
        if (precondition_uid && !streq_ptr(precondition_uid, uid))
                return mr_error_set(err, -MR_ECONFLICT,
                                    "Precondition failed: UID in precondition: %s, UID in object meta: %s",
                                    precondition_uid, strempty(uid));
        if (precondition_rv && !streq_ptr(precondition_rv, rv))
                return mr_error_set(err, -MR_ECONFLICT,
                                    "Precondition failed: ResourceVersion in precondition: %s, ResourceVersion in "
                                    "object meta: %s",
                                    precondition_rv, strempty(rv));

        if (k == &SIM_PODS) {
                grace = 30;
                if (grace_seconds >= 0)
                        grace = grace_seconds;
                else
                        (void)mr_json_get_int(&grace, old, "spec", "terminationGracePeriodSeconds", NULL);
                phase = mr_json_get_str(old, "status", "phase", NULL);
                if (!pod_node(k, old) || streq_ptr(phase, "Succeeded") || streq_ptr(phase, "Failed"))
                        grace = 0;
                grace = MAX(grace, (int64_t)0);
        }

        if (mr_json_get(old, "metadata", "deletionTimestamp", NULL)) {
                (void)mr_json_get_int(&current, old, "metadata", "deletionGracePeriodSeconds", NULL);
                /* Already deleting: only a shorter grace period changes anything. */
                if (k != &SIM_PODS || grace >= current) {
                        if (ret)
                                *ret = old;
                        return 1;
                }
        }

        if (grace > 0 || has_finalizers(old)) {
                _cleanup_(json_object_putp) json_object *n = mr_json_copy(old);
                json_object *meta = n ? mr_json_get(n, "metadata", NULL) : NULL;
                if (!meta || mr_json_set_str(meta, "deletionTimestamp", (format_time(s, (usec_t)grace * USEC_PER_SEC, buf), buf)) < 0 ||
                    mr_json_set_int(meta, "deletionGracePeriodSeconds", grace) < 0 || set_rv(n, s->revision + 1) < 0)
                        return -ENOMEM;
                Blob *prev = NULL;
                if ((r = entry_replace(s, t, e, TAKE_PTR(n), &prev)) < 0)
                        return r;
                s->revision++;
                commit(s, k, SIM_EVENT_MODIFIED, e->obj, e->blob, old, prev, "delete", actor);
                blob_unref(prev);
                if (ret)
                        *ret = e->obj;
                return 1;
        }
        return remove_entry(s, t, e, "delete", actor, ret);
}

int sim_store_remove(SimStore *s, const SimKind *k, const char *ns, const char *name, const char *actor)
{
        Table *t = table_for(s, k);
        Entry *e = t ? table_find(t, ns, name) : NULL;
        if (!e)
                return -ENOENT;
        return remove_entry(s, t, e, "remove", actor, NULL);
}

/* ---- reads ---- */

int sim_store_foreach(SimStore *s, const SimKind *k, const char *ns, sim_foreach_t cb, void *userdata)
{
        return sim_store_foreach_after(s, k, ns, NULL, NULL, cb, userdata);
}

/* The first index of a walk over ns (NULL: all) after (after_ns, after_name). */
static size_t walk_start(Table *t, const char *ns, const char *after_ns, const char *after_name)
{
        size_t i = 0;
        if (ns && t->kind->namespaced)
                i = table_search(t, ns, "", NULL);
        if (after_name) {
                bool found;
                size_t j = table_search(t, strempty(after_ns), after_name, &found);
                i = MAX(i, found ? j + 1 : j);
        }
        return i;
}

int sim_store_foreach_after(SimStore *s, const SimKind *k, const char *ns, const char *after_ns,
                            const char *after_name, sim_foreach_t cb, void *userdata)
{
        Table *t = table_for(s, k);
        if (!t)
                return -ENOENT;
        for (size_t i = walk_start(t, ns, after_ns, after_name); i < t->n; i++) {
                if (ns && k->namespaced && !streq(E_NS(t->v[i]), ns))
                        break;
                json_object *o = entry_object(s, t->v[i]);
                if (!o)
                        return -ENOMEM;
                int r = cb(o, userdata);
                if (r != 0)
                        return r;
        }
        return 0;
}

int sim_store_foreach_raw(SimStore *s, const SimKind *k, const char *ns, const char *after_ns,
                          const char *after_name, sim_raw_foreach_t cb, void *userdata)
{
        Table *t = table_for(s, k);
        if (!t)
                return -ENOENT;
        for (size_t i = walk_start(t, ns, after_ns, after_name); i < t->n; i++) {
                Entry *e = t->v[i];
                if (ns && k->namespaced && !streq(E_NS(e), ns))
                        break;
                SimRaw raw = {.ns = E_NS(e), .name = E_NAME(e), .json = e->blob->data, .size = e->blob->size, .entry = e};
                int r = cb(&raw, userdata);
                if (r != 0)
                        return r;
        }
        return 0;
}

json_object *sim_store_raw_object(SimStore *s, const SimRaw *raw)
{
        return entry_object(s, raw->entry);
}

#define LABELED_NEEDLE_MAX 384 /* "key":"value": a 317-byte key at most, a 63-byte value */
#define LABELED_NEEDLES_MAX 16

typedef struct Labeled {
        SimStore *s;
        char needles[LABELED_NEEDLES_MAX][LABELED_NEEDLE_MAX];
        size_t n;
        sim_foreach_t cb;
        void *userdata;
} Labeled;

/* Characters JSON writes as they are (the store's JSON escapes no slash): label keys and values use no others. */
static bool json_plain(const char *v, bool slash)
{
        for (const char *p = v; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-' && !(slash && *p == '/'))
                        return false;
        return true;
}

static int labeled_cb(const SimRaw *raw, void *userdata)
{
        Labeled *l = userdata;
        for (size_t i = 0; i < l->n; i++)
                if (!memmem(raw->json, raw->size, l->needles[i], strlen(l->needles[i])))
                        return 0;
        json_object *o = sim_store_raw_object(l->s, raw);
        if (!o)
                return -ENOMEM;
        return l->cb(o, l->userdata);
}

int sim_store_foreach_labeled(SimStore *s, const SimKind *k, const char *ns, json_object *match_labels,
                              sim_foreach_t cb, void *userdata)
{
        Labeled l = {.s = s, .cb = cb, .userdata = userdata};

        if (match_labels && json_object_is_type(match_labels, json_type_object)) {
                json_object_object_foreach(match_labels, key, value) {
                        const char *v = json_object_is_type(value, json_type_string) ? json_object_get_string(value)
                                                                                     : NULL;
                        /* The store's JSON is compact (JSON_C_TO_STRING_PLAIN): "key":"value", no space. */
                        if (!v || !json_plain(key, true) || !json_plain(v, false) || l.n == LABELED_NEEDLES_MAX ||
                            strlen(key) + strlen(v) + 6 > LABELED_NEEDLE_MAX)
                                continue;
                        snprintf(l.needles[l.n++], sizeof(l.needles[0]), "\"%s\":\"%s\"", key, v);
                }
        }
        return sim_store_foreach_raw(s, k, ns, NULL, NULL, labeled_cb, &l);
}

int sim_store_foreach_owned(SimStore *s, const SimKind *k, const char *ns, const char *owner_uid, sim_foreach_t cb,
                            void *userdata)
{
        Table *t = table_for(s, k);
        if (!t)
                return -ENOENT;
        if (isempty(owner_uid))
                return 0;
        for (size_t i = walk_start(t, ns, NULL, NULL); i < t->n; i++) {
                Entry *e = t->v[i];
                if (ns && k->namespaced && !streq(E_NS(e), ns))
                        break;
                if (!streq_ptr(e->owner, owner_uid))
                        continue;
                json_object *o = entry_object(s, e);
                if (!o)
                        return -ENOMEM;
                int r = cb(o, userdata);
                if (r != 0)
                        return r;
        }
        return 0;
}

int sim_store_foreach_pod_on_node(SimStore *s, const char *node, sim_foreach_t cb, void *userdata)
{
        Table *t = table_for(s, &SIM_PODS);
        if (!t || isempty(node))
                return 0;
        for (size_t i = node_search(t, node, "", ""); i < t->n_node && streq(t->by_node[i]->node, node); i++) {
                json_object *o = entry_object(s, t->by_node[i]);
                if (!o)
                        return -ENOMEM;
                int r = cb(o, userdata);
                if (r != 0)
                        return r;
        }
        return 0;
}

/* Index of the first entry whose namespace sorts after ns. */
static size_t ns_end(const Table *t, const char *ns)
{
        size_t lo = 0, hi = t->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (strcmp(E_NS(t->v[mid]), ns) <= 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

size_t sim_store_count_after(SimStore *s, const SimKind *k, const char *ns, const char *after_ns,
                             const char *after_name)
{
        Table *t = table_for(s, k);
        if (!t)
                return 0;
        size_t start = walk_start(t, ns, after_ns, after_name);
        size_t end = ns && k->namespaced ? ns_end(t, ns) : t->n;
        return end > start ? end - start : 0;
}

int sim_store_foreach_raw_on_node(SimStore *s, const char *node, sim_raw_foreach_t cb, void *userdata)
{
        Table *t = table_for(s, &SIM_PODS);
        if (!t || isempty(node))
                return 0;
        for (size_t i = node_search(t, node, "", ""); i < t->n_node && streq(t->by_node[i]->node, node); i++) {
                Entry *e = t->by_node[i];
                SimRaw raw = {.ns = E_NS(e), .name = E_NAME(e), .json = e->blob->data, .size = e->blob->size, .entry = e};
                int r = cb(&raw, userdata);
                if (r != 0)
                        return r;
        }
        return 0;
}

size_t sim_store_count(SimStore *s, const SimKind *k, const char *ns)
{
        Table *t = table_for(s, k);
        size_t c = 0;
        if (!t)
                return 0;
        if (!ns || !k->namespaced)
                return t->n;
        for (size_t i = table_search(t, ns, "", NULL); i < t->n && streq(E_NS(t->v[i]), ns); i++)
                c++;
        return c;
}
