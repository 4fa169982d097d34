/* SPDX-License-Identifier: Apache-2.0 */
/*
 * track.c — see track.h for the design. Hashing: inodes are dense small
 * integers, so they are mixed (splitmix64 finaliser) before masking to
 * keep probe runs short.
 */
#include "meshroll/errors.h"
#include "track.h"

typedef struct Slot {
        uint64_t inode; /* 0 = empty */
        usec_t first_seen;
} Slot;

typedef struct Table {
        Slot *slots;
        size_t mask; /* capacity - 1; capacity is a power of two */
        size_t used;
} Table;

struct SocketTracker {
        Table cur;  /* the generation being built */
        Table prev; /* the last complete generation */
        size_t max;
        usec_t now;
        bool open;
};

#define TABLE_MIN 64

static uint64_t mix(uint64_t x)
{
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9ULL;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebULL;
        x ^= x >> 31;
        return x;
}

static void table_clear(Table *t)
{
        free(t->slots);
        *t = (Table){};
}

static int table_init(Table *t, size_t capacity)
{
        Slot *s = calloc(capacity, sizeof(Slot));
        if (!s)
                return -ENOMEM;
        free(t->slots);
        *t = (Table){ .slots = s, .mask = capacity - 1 };
        return 0;
}

static Slot *table_find(const Table *t, uint64_t inode)
{
        if (!t->slots)
                return NULL;
        for (size_t i = mix(inode) & t->mask;; i = (i + 1) & t->mask) {
                if (t->slots[i].inode == inode)
                        return &t->slots[i];
                if (t->slots[i].inode == 0)
                        return NULL;
        }
}

/* Inserts without checking the load (callers grow first). Returns the slot. */
static Slot *table_insert(Table *t, uint64_t inode, usec_t first_seen)
{
        size_t i = mix(inode) & t->mask;
        while (t->slots[i].inode != 0 && t->slots[i].inode != inode)
                i = (i + 1) & t->mask;
        if (t->slots[i].inode == 0) {
                t->slots[i] = (Slot){ inode, first_seen };
                t->used++;
        }
        return &t->slots[i];
}

static int table_grow(Table *t)
{
        Table bigger = {};
        int r = table_init(&bigger, (t->mask + 1) * 2);
        if (r < 0)
                return r;
        for (size_t i = 0; i <= t->mask; i++)
                if (t->slots[i].inode)
                        (void)table_insert(&bigger, t->slots[i].inode, t->slots[i].first_seen);
        table_clear(t);
        *t = bigger;
        return 0;
}

int track_new(size_t max_sockets, SocketTracker **ret)
{
        SocketTracker *t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->max = max_sockets ? max_sockets : SIZE_MAX / 4;
        *ret = t;
        return 0;
}

SocketTracker *track_free(SocketTracker *t)
{
        if (!t)
                return NULL;
        table_clear(&t->cur);
        table_clear(&t->prev);
        free(t);
        return NULL;
}

int track_begin(SocketTracker *t, usec_t now)
{
        /* Size the new generation like the last one, so a steady node never rehashes. */
        size_t cap = TABLE_MIN;
        while (cap < (t->prev.used + 1) * 2)
                cap *= 2;
        int r = table_init(&t->cur, cap);
        if (r < 0)
                return r;
        t->now = now;
        t->open = true;
        return 0;
}

int track_see(SocketTracker *t, uint64_t inode, usec_t *ret_first_seen)
{
        if (!t->open || inode == 0)
                return -EINVAL;
        Slot *s = table_find(&t->cur, inode);
        if (!s) {
                if (t->cur.used >= t->max)
                        return -MR_ETOOBIG;
                if ((t->cur.used + 1) * 2 > t->cur.mask + 1) {
                        int r = table_grow(&t->cur);
                        if (r < 0)
                                return r;
                }
                const Slot *old = table_find(&t->prev, inode);
                s = table_insert(&t->cur, inode, old ? old->first_seen : t->now);
        }
        if (ret_first_seen)
                *ret_first_seen = s->first_seen;
        return 0;
}

void track_end(SocketTracker *t)
{
        if (!t->open)
                return;
        table_clear(&t->prev);
        t->prev = t->cur;
        t->cur = (Table){};
        t->open = false;
}

size_t track_size(const SocketTracker *t)
{
        return t->prev.used;
}

size_t track_memory(const SocketTracker *t)
{
        size_t n = 0;
        if (t->prev.slots)
                n += (t->prev.mask + 1) * sizeof(Slot);
        if (t->cur.slots)
                n += (t->cur.mask + 1) * sizeof(Slot);
        return n;
}
