/* SPDX-License-Identifier: Apache-2.0 */
/*
 * track.h — how long has each socket existed? A table keyed by socket
 * inode that carries first-seen times from one scan to the next.
 *
 * Socket inodes are unique across network namespaces (they live in
 * sockfs), so one table serves the whole node. A scan is a generation:
 * track_begin() opens one, track_see() records each socket found and
 * returns when it was first seen, track_end() forgets every socket not seen
 * in the generation. Internally the generation is written into a fresh
 * open-addressing table (linear probing, load ≤ 1/2) looked up against the
 * previous one, then the two swap: no tombstones, no deletion pass, and
 * memory bounded by twice the live socket count.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "meshroll/macro.h"

typedef struct SocketTracker SocketTracker;

/* max_sockets caps the table (a scan seeing more gets -MR_ETOOBIG from track_see). */
int track_new(size_t max_sockets, SocketTracker **ret);
SocketTracker *track_free(SocketTracker *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(SocketTracker *, track_free);

/* Starts a generation at time now. */
int track_begin(SocketTracker *t, usec_t now);
/*
 * Records inode (non-zero) as present in this generation and stores in
 * *ret_first_seen when it was first seen (now, for a new socket). Seeing
 * the same inode twice in a generation is harmless. -MR_ETOOBIG when the cap
 * is reached, -ENOMEM.
 */
int track_see(SocketTracker *t, uint64_t inode, usec_t *ret_first_seen);
/* Ends the generation: sockets not seen since track_begin are forgotten. */
void track_end(SocketTracker *t);
/* Sockets remembered after the last track_end. */
size_t track_size(const SocketTracker *t);
/* Bytes held by the tables (for the agent's own metrics). */
size_t track_memory(const SocketTracker *t);
