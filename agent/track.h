/* SPDX-License-Identifier: Apache-2.0 */
/*
 * track.h — how long has each socket existed? A table keyed by socket
 * inode that carries first-seen times from one scan to the next.
 *
 * Socket inodes are unique across network namespaces (they live in
 * sockfs), so one table serves the whole node. A scan is a generation:
 * track_begin() opens one, track_see() records each socket found and
 * returns when it was first seen, track_end() forgets every socket not seen
 * in the generation.
 *
 * Memory is the point of the layout: a node may hold tens of thousands of
 * sockets and the agent should stay a few MiB. One open-addressing table
 * (linear probing, load ≤ 3/4) of 8-byte slots: the inode in 32 bits
 * (sockfs numbers sockets with get_next_ino(), an unsigned int, and
 * sock_diag reports them as __u32; a wider value is folded), and the
 * first-seen time in 31 bits of milliseconds since the tracker's epoch plus
 * one bit naming the generation that last saw the socket. track_end()
 * sweeps the sockets of older generations out with backward-shift deletion,
 * so there are no tombstones and no second table: 50,000 sockets take
 * 1 MiB. The epoch moves forward every 6 days (ages beyond 6 days may be
 * clamped to 6 days, far past any long-lived threshold). Times are kept to
 * the millisecond.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "meshroll/macro.h"

typedef struct SocketTracker SocketTracker;

/* max_sockets caps one generation (a scan seeing more gets -MR_ETOOBIG from track_see). */
int track_new(size_t max_sockets, SocketTracker **ret);
SocketTracker *track_free(SocketTracker *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(SocketTracker *, track_free);

/* Starts a generation at time now (monotonic µs; never earlier than the last one). */
int track_begin(SocketTracker *t, usec_t now);
/*
 * Records inode (non-zero) as present in this generation and stores in
 * *ret_first_seen when it was first seen (now, for a new socket; to the
 * millisecond). Seeing the same inode twice in a generation is harmless.
 * -EINVAL outside a generation or for inode 0, -MR_ETOOBIG when the cap is
 * reached, -ENOMEM.
 */
int track_see(SocketTracker *t, uint64_t inode, usec_t *ret_first_seen);
/* Ends the generation: sockets not seen since track_begin are forgotten. */
void track_end(SocketTracker *t);
/* Sockets remembered after the last track_end. */
size_t track_size(const SocketTracker *t);
/* Bytes held by the table (for the agent's own metrics). */
size_t track_memory(const SocketTracker *t);
