/* SPDX-License-Identifier: Apache-2.0 */
/*
 * track.c — see track.h for the design. Hashing: inodes are dense small
 * integers, so they are mixed (a murmur3-style 32-bit finaliser) before
 * masking to keep probe runs short. Deletion shifts later members of the
 * probe run back into the hole (Knuth's Algorithm R), so lookups never see
 * a gap inside a run.
 */
#include "meshroll/errors.h"
#include "track.h"

typedef struct Slot {
        uint32_t inode; /* 0 = empty */
        uint32_t stamp; /* bit 31: generation parity; bits 0–30: first seen, ms since the epoch */
} Slot;

struct SocketTracker {
        Slot *slots;
        size_t mask;     /* capacity - 1; capacity is a power of two, or 0 before the first socket */
        size_t used;     /* occupied slots */
        size_t seen;     /* sockets seen in the open generation */
        size_t max;
        usec_t epoch;    /* time of stamp 0 */
        uint32_t now_ms; /* the open generation's time, ms since the epoch */
        uint32_t parity; /* 0 or 1u << 31 */
        bool open, started;
};

#define TABLE_MIN 64
#define STAMP_GEN (UINT32_C(1) << 31)
#define STAMP_MS (STAMP_GEN - 1)
#define REBASE_MS (UINT32_C(1) << 30) /* move the epoch once now is this far from it (~12 days) */

static uint32_t mix(uint32_t x)
{
        x ^= x >> 16;
        x *= 0x85ebca6bu;
        x ^= x >> 13;
        x *= 0xc2b2ae35u;
        x ^= x >> 16;
        return x;
}

static uint32_t key(uint64_t inode)
{
        uint32_t k = (uint32_t)(inode ^ (inode >> 32));
        return k ? k : 1;
}

static size_t home(const SocketTracker *t, uint32_t k)
{
        return mix(k) & t->mask;
}

static Slot *find(const SocketTracker *t, uint32_t k)
{
        if (!t->slots)
                return NULL;
        for (size_t i = home(t, k);; i = (i + 1) & t->mask) {
                if (t->slots[i].inode == k)
                        return &t->slots[i];
                if (t->slots[i].inode == 0)
                        return NULL;
        }
}

/* Inserts a key known to be absent; the caller made room. */
static Slot *insert(SocketTracker *t, uint32_t k, uint32_t stamp)
{
        size_t i = home(t, k);
        while (t->slots[i].inode != 0)
                i = (i + 1) & t->mask;
        t->slots[i] = (Slot){ k, stamp };
        t->used++;
        return &t->slots[i];
}

static int resize(SocketTracker *t, size_t capacity)
{
        Slot *old = t->slots;
        size_t old_cap = old ? t->mask + 1 : 0;
        Slot *s = calloc(capacity, sizeof(Slot));
        if (!s)
                return -ENOMEM;
        t->slots = s;
        t->mask = capacity - 1;
        t->used = 0;
        for (size_t i = 0; i < old_cap; i++)
                if (old[i].inode)
                        (void)insert(t, old[i].inode, old[i].stamp);
        free(old);
        return 0;
}

/* Removes slot i, shifting the rest of its probe run back so no lookup meets a gap. */
static void delete_at(SocketTracker *t, size_t i)
{
        size_t j = i;
        for (;;) {
                t->slots[i].inode = 0;
                for (;;) {
                        j = (j + 1) & t->mask;
                        if (t->slots[j].inode == 0) {
                                t->used--;
                                return;
                        }
                        size_t h = home(t, t->slots[j].inode);
                        /* Leave j where it is if its home lies cyclically in (i, j]. */
                        if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
                                continue;
                        break;
                }
                t->slots[i] = t->slots[j];
                i = j;
        }
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
        free(t->slots);
        free(t);
        return NULL;
}

int track_begin(SocketTracker *t, usec_t now)
{
        if (!t->started) {
                t->epoch = now;
                t->started = true;
        }
        if (now < t->epoch)
                now = t->epoch; /* a clock that went back: age nothing */
        usec_t ms = (now - t->epoch) / USEC_PER_MSEC;
        if (ms >= REBASE_MS) {
                /*
                 * Move the epoch forward so now sits 6 days after it; stamps older
                 * than the new epoch clamp to it, which still makes them ≥ 6 days old.
                 */
                usec_t delta = ms - REBASE_MS / 2;
                for (size_t i = 0; t->slots && i <= t->mask; i++) {
                        uint32_t first = t->slots[i].stamp & STAMP_MS;
                        uint32_t moved = first > delta ? (uint32_t)(first - delta) : 0;
                        t->slots[i].stamp = (t->slots[i].stamp & STAMP_GEN) | moved;
                }
                t->epoch += delta * USEC_PER_MSEC;
                ms -= delta;
        }
        t->now_ms = (uint32_t)ms;
        t->parity ^= STAMP_GEN;
        t->seen = 0;
        t->open = true;
        return 0;
}

int track_see(SocketTracker *t, uint64_t inode, usec_t *ret_first_seen)
{
        if (!t->open || inode == 0)
                return -EINVAL;
        uint32_t k = key(inode);
        Slot *s = find(t, k);
        if (!s) {
                if (t->seen >= t->max)
                        return -MR_ETOOBIG;
                if (!t->slots || (t->used + 1) * 4 > (t->mask + 1) * 3) {
                        int r = resize(t, t->slots ? (t->mask + 1) * 2 : TABLE_MIN);
                        if (r < 0)
                                return r;
                }
                s = insert(t, k, t->parity | t->now_ms);
                t->seen++;
        } else if ((s->stamp & STAMP_GEN) != t->parity) {
                if (t->seen >= t->max)
                        return -MR_ETOOBIG;
                s->stamp = t->parity | (s->stamp & STAMP_MS);
                t->seen++;
        }
        if (ret_first_seen)
                *ret_first_seen = t->epoch + (usec_t)(s->stamp & STAMP_MS) * USEC_PER_MSEC;
        return 0;
}

void track_end(SocketTracker *t)
{
        if (!t->open)
                return;
        t->open = false;
        if (!t->slots)
                return;
        /*
         * Sweep from a slot that ends a run (an empty one), so a run that wraps
         * around the end of the array is swept in order and each deletion only
         * pulls back members not yet visited.
         */
        size_t cap = t->mask + 1, start = 0;
        while (start < cap && t->slots[start].inode != 0)
                start++;
        for (size_t n = 0; n < cap; n++) {
                size_t i = (start + n) & t->mask;
                while (t->slots[i].inode != 0 && (t->slots[i].stamp & STAMP_GEN) != t->parity)
                        delete_at(t, i); /* the slot may now hold a later member: look again */
        }
        /* Give memory back when the node has far fewer sockets than it had. */
        if (cap > TABLE_MIN && t->used * 8 < cap) {
                size_t want = TABLE_MIN;
                while ((t->used + 1) * 4 > want * 3 / 2)
                        want *= 2;
                (void)resize(t, want); /* on -ENOMEM the bigger table simply stays */
        }
}

size_t track_size(const SocketTracker *t)
{
        return t->used;
}

size_t track_memory(const SocketTracker *t)
{
        return t->slots ? (t->mask + 1) * sizeof(Slot) : 0;
}
