/* SPDX-License-Identifier: Apache-2.0 */
/*
 * podcache.c — the ztunnel DaemonSet's pods, kept up to date by a watch
 * (contract and the freshness rule: podcache.h).
 *
 * Why. The engine inspects ztunnel on every tick of the ztunnel phase; the
 * DaemonSet and its ControllerRevisions are two small reads, but its pods
 * are one pod per node: at 5,000 nodes a list is ten pages of 500 pods, tens
 * of MB of JSON, and it made ticks last seconds. A watch sends each change
 * once.
 *
 * Design. client-go's informer, reduced to what ZtunnelPod needs: the
 * watch (kube-watch.c, the reflector's list/watch/relist) delivers RESET,
 * ADDED… SYNCED for every (re)list, then changes; each pod becomes a
 * ZtunnelPod plus its controller's uid (owner filtering happens when the
 * engine reads, against the DaemonSet it just read, as a list would). The
 * pods live in an open-addressing hash table keyed by pod uid (linear
 * probing, at most half full, backward-shift deletion, so no tombstones
 * accumulate over a long rollout); a read copies the owner's pods out and
 * sorts them, which at 5,000 pods costs far less than one list page.
 * Memory: about 300 bytes a pod — under 2 MiB at 5,000 nodes; a hostile
 * server cannot grow it past POD_CACHE_MAX pods.
 *
 * The (re)list arrives page by page (KubeWatchOptions.deliver_pages): a
 * page's 500 pods are parsed, turned into entries and freed before the
 * next is asked for, so the first list never holds 5,000 pods' JSON at
 * once (it set the coordinator's peak memory at 5,000 nodes). RESET clears
 * the table and the cache stays unsynced until SYNCED, so a list that fails
 * halfway is never read.
 *
 * Any failure to apply an event (out of memory, a pod without a uid, too
 * many pods) means the cache no longer mirrors the server: the watch is
 * stopped, the cache reports failed and never answers again; its owner
 * replaces it (a new list), and meanwhile lists.
 */
#include <stdlib.h>

#include "meshroll/json-util.h"
#include "podcache.h"

/* More pods than any DaemonSet can have (Kubernetes supports 5,000 nodes). */
#define POD_CACHE_MAX (1u << 18)

typedef struct PodEntry {
        ZtunnelPod pod; /* pod.uid is the key; NULL marks a free slot */
        char *owner;    /* the controller's uid, NULL when the pod has none */
} PodEntry;

struct PodCache {
        char *namespace, *selector;
        pod_cache_changed_t on_change;
        void *userdata;

        KubeWatch *watch;
        bool synced;
        bool failed;
        unsigned syncs;
        char *rv;

        PodEntry *slots;
        size_t cap; /* a power of two, or 0 */
        size_t n;
};

static void entry_done(PodEntry *e)
{
        ztunnel_pod_done(&e->pod);
        free(e->owner);
        *e = (PodEntry){};
}

static void clear_all(PodCache *pc)
{
        for (size_t i = 0; i < pc->cap; i++)
                if (pc->slots[i].pod.uid)
                        entry_done(&pc->slots[i]);
        pc->n = 0;
}

/* FNV-1a: uids are random already, any spreading hash will do. */
static size_t hash_uid(const char *uid)
{
        uint64_t h = UINT64_C(14695981039346656037);
        for (const unsigned char *p = (const unsigned char *)uid; *p; p++)
                h = (h ^ *p) * UINT64_C(1099511628211);
        return (size_t)h;
}

/* The slot holding uid, or the free slot where it would go. cap must be > 0. */
static size_t slot_of(const PodCache *pc, const char *uid)
{
        size_t mask = pc->cap - 1, i = hash_uid(uid) & mask;
        while (pc->slots[i].pod.uid && !streq(pc->slots[i].pod.uid, uid))
                i = (i + 1) & mask;
        return i;
}

static int grow(PodCache *pc)
{
        size_t cap = pc->cap ? pc->cap * 2 : 64;
        PodEntry *old = pc->slots;
        size_t old_cap = pc->cap;

        PodEntry *slots = calloc(cap, sizeof(PodEntry));
        if (!slots)
                return -ENOMEM;
        pc->slots = slots;
        pc->cap = cap;
        for (size_t i = 0; i < old_cap; i++)
                if (old[i].pod.uid)
                        pc->slots[slot_of(pc, old[i].pod.uid)] = old[i];
        free(old);
        return 0;
}

/* Stores what the pod object says (borrowed), replacing the pod of the same uid. */
static int upsert(PodCache *pc, json_object *object, const char *uid)
{
        PodEntry e = {};
        const char *owner = ztunnel_controller_uid(object);
        int r;

        if (pc->cap == 0 || (pc->n + 1) * 2 > pc->cap) {
                if (pc->n + 1 > POD_CACHE_MAX)
                        return -E2BIG;
                if ((r = grow(pc)) < 0)
                        return r;
        }
        r = ztunnel_pod_from_json(object, &e.pod);
        if (r >= 0 && owner && !(e.owner = strdup(owner)))
                r = -ENOMEM;
        if (r < 0) {
                entry_done(&e);
                return r;
        }
        /* the uid read by ztunnel_pod_from_json is the key */
        size_t i = slot_of(pc, uid);
        if (pc->slots[i].pod.uid)
                entry_done(&pc->slots[i]);
        else
                pc->n++;
        pc->slots[i] = e;
        return 0;
}

/* Removes uid, shifting back the entries of its probe run (no tombstones). */
static void erase(PodCache *pc, const char *uid)
{
        if (pc->cap == 0)
                return;
        size_t mask = pc->cap - 1, i = slot_of(pc, uid), j = i;
        if (!pc->slots[i].pod.uid)
                return;
        entry_done(&pc->slots[i]);
        pc->n--;
        for (;;) {
                j = (j + 1) & mask;
                if (!pc->slots[j].pod.uid)
                        return;
                size_t home = hash_uid(pc->slots[j].pod.uid) & mask;
                /* The entry at j may move to the hole at i unless its home lies cyclically in (i, j]. */
                bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
                if (stays)
                        continue;
                pc->slots[i] = pc->slots[j];
                pc->slots[j] = (PodEntry){};
                i = j;
        }
}

static int set_rv(PodCache *pc, const char *rv)
{
        if (isempty(rv) || streq_ptr(rv, pc->rv))
                return 0;
        char *copy = strdup(rv);
        if (!copy)
                return -ENOMEM;
        free(pc->rv);
        pc->rv = copy;
        return 0;
}

int pod_cache_new(const PodCacheOptions *o, PodCache **ret)
{
        if (!o || !ret || isempty(o->namespace) || isempty(o->label_selector))
                return -EINVAL;
        PodCache *pc = calloc(1, sizeof(PodCache));
        if (!pc)
                return -ENOMEM;
        pc->namespace = strdup(o->namespace);
        pc->selector = strdup(o->label_selector);
        pc->on_change = o->on_change;
        pc->userdata = o->userdata;
        if (!pc->namespace || !pc->selector) {
                pod_cache_free(pc);
                return -ENOMEM;
        }
        *ret = pc;
        return 0;
}

PodCache *pod_cache_free(PodCache *pc)
{
        if (!pc)
                return NULL;
        pc->watch = kube_watch_stop(pc->watch);
        clear_all(pc);
        free(pc->slots);
        free(pc->rv);
        free(pc->namespace);
        free(pc->selector);
        free(pc);
        return NULL;
}

int pod_cache_apply(PodCache *pc, KubeWatchEventType type, json_object *object, const char *rv)
{
        const char *uid;
        int r;

        if (!pc)
                return -EINVAL;
        if (!rv)
                rv = mr_json_get_str(object, "metadata", "resourceVersion", NULL);
        switch (type) {
        case KUBE_WATCH_RESET:
                clear_all(pc);
                pc->synced = false;
                return 0;
        case KUBE_WATCH_SYNCED:
                if ((r = set_rv(pc, rv)) < 0)
                        goto fail;
                pc->synced = true;
                pc->syncs++;
                break;
        case KUBE_WATCH_BOOKMARK:
                if ((r = set_rv(pc, rv)) < 0)
                        goto fail;
                return 0;
        case KUBE_WATCH_ADDED:
        case KUBE_WATCH_MODIFIED:
        case KUBE_WATCH_DELETED:
                uid = mr_json_get_str(object, "metadata", "uid", NULL);
                if (isempty(uid)) {
                        r = -EBADMSG;
                        goto fail;
                }
                if (type == KUBE_WATCH_DELETED)
                        erase(pc, uid);
                else if ((r = upsert(pc, object, uid)) < 0)
                        goto fail;
                if ((r = set_rv(pc, rv)) < 0)
                        goto fail;
                if (!pc->synced)
                        return 0; /* part of a (re)list: SYNCED reports it whole */
                break;
        default:
                return 0; /* ERROR: the watch reconnects or relists by itself */
        }
        if (pc->on_change)
                pc->on_change(pc, pc->userdata);
        return 0;
fail:
        /* An event not applied: the cache no longer mirrors the server. */
        pc->synced = false;
        pc->failed = true;
        return r;
}

static int on_event(KubeWatch *w, KubeWatchEventType type, json_object *object, void *userdata)
{
        /* kube-watch has set its resourceVersion from this event (or from the list) before calling us. */
        return pod_cache_apply(userdata, type, object, kube_watch_resource_version(w));
}

static void on_stop(KubeWatch *w, int error, void *userdata)
{
        PodCache *pc = userdata;
        pc->synced = false;
        pc->failed = true;
}

int pod_cache_start(PodCache *pc, KubeClient *c)
{
        if (!pc || !c)
                return -EINVAL;
        if (pc->watch)
                return -EBUSY;
        KubeWatchOptions o = {
            .resource = &KUBE_PODS, .ns = pc->namespace, .label_selector = pc->selector, .deliver_pages = true};
        return kube_watch_start(c, &o, on_event, on_stop, pc, &pc->watch);
}

bool pod_cache_is_for(const PodCache *pc, const char *ns, const char *label_selector)
{
        return pc && streq_ptr(pc->namespace, ns) && streq_ptr(pc->selector, label_selector);
}

bool pod_cache_synced(const PodCache *pc)
{
        return pc && pc->synced && !pc->failed;
}

bool pod_cache_failed(const PodCache *pc)
{
        return pc && pc->failed;
}

const char *pod_cache_resource_version(const PodCache *pc)
{
        return pc ? pc->rv : NULL;
}

size_t pod_cache_size(const PodCache *pc)
{
        return pc ? pc->n : 0;
}

unsigned pod_cache_syncs(const PodCache *pc)
{
        return pc ? pc->syncs : 0;
}

/* KEP-5504's form: a positive decimal integer without leading zeros. */
static bool rv_valid(const char *s)
{
        if (isempty(s) || s[0] == '0')
                return false;
        for (const char *p = s; *p; p++)
                if (*p < '0' || *p > '9')
                        return false;
        return true;
}

int pod_cache_rv_compare(const char *a, const char *b, int *ret)
{
        if (!ret || !rv_valid(a) || !rv_valid(b))
                return -EINVAL;
        size_t la = strlen(a), lb = strlen(b);
        int c = la != lb ? (la < lb ? -1 : 1) : strcmp(a, b);
        *ret = c < 0 ? -1 : c > 0 ? 1 : 0;
        return 0;
}

int pod_cache_fill(const PodCache *pc, const char *min_rv, ZtunnelInfo *z)
{
        size_t count = 0;
        int c;

        if (!pc || !z || !z->uid)
                return -EINVAL;
        if (!pod_cache_synced(pc) || !pc->rv)
                return 0;
        if (min_rv && (pod_cache_rv_compare(pc->rv, min_rv, &c) < 0 || c < 0))
                return 0;
        for (size_t i = 0; i < pc->cap; i++)
                count += pc->slots[i].pod.uid && streq_ptr(pc->slots[i].owner, z->uid);
        if (count == 0)
                return 1;
        z->pods = calloc(count, sizeof(ZtunnelPod));
        if (!z->pods)
                return -ENOMEM;
        for (size_t i = 0; i < pc->cap; i++) {
                const PodEntry *e = &pc->slots[i];
                if (!e->pod.uid || !streq_ptr(e->owner, z->uid))
                        continue;
                ZtunnelPod *p = &z->pods[z->n_pods++]; /* counted first: ztunnel_info_free frees a partial copy */
                *p = (ZtunnelPod){
                    .node = strdup(e->pod.node),
                    .name = strdup(e->pod.name),
                    .uid = strdup(e->pod.uid),
                    .hash = e->pod.hash ? strdup(e->pod.hash) : NULL,
                    .ready = e->pod.ready,
                    .terminating = e->pod.terminating,
                    .restarts = e->pod.restarts,
                };
                if (!p->node || !p->name || !p->uid || (e->pod.hash && !p->hash))
                        return -ENOMEM;
        }
        ztunnel_info_sort_pods(z);
        return 1;
}
