/* SPDX-License-Identifier: Apache-2.0 */
/*
 * leader.h — leader election with client-go's semantics, as a pure state
 * machine.
 *
 * The elector does no I/O and reads time only through its MrClock. The
 * caller (the coordinator's controller) runs the loop:
 *
 *     every retry_period (jittered) and at mr_leader_deadline():
 *         optionally, mr_leader_renew(e, &record) == 1 → update the Lease last
 *             seen with record, mr_leader_write_done; done unless that failed
 *         read the Lease (kube_lease_get; -ENOENT → observed NULL)
 *         action = mr_leader_observe(e, observed, rv, &record)
 *         CREATE → kube_lease_create with record   WRITE → kube_lease_update with record
 *             then mr_leader_write_done(e, error, answer-or-NULL)
 *         FOLLOW → nothing          LOST → stop mutating now
 *     before every mutation of the cluster: mr_leader_check(e) == 0
 *     on shutdown: mr_leader_release(e, &record) → WRITE it (best effort)
 *
 * Semantics (reference §10.3, client-go tools/leaderelection):
 *   - A follower judges expiry only by its own monotonic clock: the lease
 *     is valid until observed_time + the record's leaseDurationSeconds,
 *     where observed_time is when this elector first saw the current record.
 *     The record's renewTime is never compared with local time, so clock
 *     skew between nodes cannot cause a takeover. A candidate that starts
 *     up therefore waits a full lease duration before taking over a lease
 *     that nobody renews, however old its renewTime.
 *   - Taking over sets acquireTime = renewTime = now and increments
 *     leaseTransitions; renewing keeps acquireTime and leaseTransitions.
 *     An empty holderIdentity (a released lease) can be taken at once.
 *   - The holder must renew successfully within renew_deadline of its last
 *     successful write; otherwise leadership is lost. The deadline counts
 *     from when the write was *decided*, not when the answer came, so a slow
 *     answer cannot stretch it. renew_deadline < lease_duration leaves the
 *     margin in which the old leader has stopped before anyone may take over.
 *   - Release (client-go ReleaseOnCancel) writes holderIdentity "",
 *     leaseDurationSeconds 1, acquireTime = renewTime = now, keeping
 *     leaseTransitions.
 *
 * Threads: every function below that takes an MrLeaderElector locks it for
 * its (short, I/O-free) duration, so one thread may run the rounds while
 * another fences its writes with mr_leader_check() (coordinator/elector.c
 * does exactly this). The clock must then be safe to read from both.
 *
 * Two deliberate differences, both on the safe side:
 *   - Change detection compares the record at full µs precision and the
 *     resourceVersion too (client-go compares a second-precision JSON form),
 *     so any write to the lease restarts a follower's wait.
 *   - A leader that reads a record naming another holder reports LOST at
 *     once, rather than carrying on until its renew deadline.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "meshroll/lease.h"
#include "meshroll/time-util.h"

/* The leader-election view of a Lease's spec (client-go's LeaderElectionRecord). */
typedef struct MrLeaderRecord {
        const char *holder_identity;    /* borrowed; NULL or "" when nobody holds it */
        int32_t lease_duration_seconds;
        usec_t acquire_time;            /* wall µs since the epoch */
        usec_t renew_time;
        int32_t leader_transitions;
} MrLeaderRecord;

typedef struct MrLeaderConfig {
        const char *identity;           /* this candidate; unique per process (e.g. pod name + random); copied */
        usec_t lease_duration;          /* 0 → 15 s; whole seconds (written as leaseDurationSeconds) */
        usec_t renew_deadline;          /* 0 → 10 s */
        usec_t retry_period;            /* 0 → 2 s */
        const MrClock *clock;           /* monotonic for expiry and deadlines, realtime for the record; NULL: system */
} MrLeaderConfig;

typedef enum MrLeaderAction {
        MR_LEADER_FOLLOW,               /* another holder's lease is valid: nothing to write */
        MR_LEADER_CREATE,               /* no Lease exists: create it with the record */
        MR_LEADER_WRITE,                /* update the Lease with the record (acquire or renew), guarded by rv */
        MR_LEADER_LOST,                 /* was leading, is no longer: stop mutating now */
} MrLeaderAction;

typedef struct MrLeaderElector MrLeaderElector;

/*
 * Validates the configuration as client-go's NewLeaderElector does:
 * lease_duration > renew_deadline > 1.2 × retry_period, all > 0, a
 * non-empty identity, and lease_duration a whole number of seconds.
 * -EINVAL otherwise (with err naming the rule), -ENOMEM.
 */
int mr_leader_new(const MrLeaderConfig *config, MrLeaderElector **ret, MrError *err);
MrLeaderElector *mr_leader_free(MrLeaderElector *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(MrLeaderElector *, mr_leader_free);

/*
 * One round of client-go's tryAcquireOrRenew. observed is the record just
 * read (borrowed; NULL when the Lease does not exist) and resource_version
 * its metadata.resourceVersion (borrowed, may be NULL). For CREATE and WRITE
 * *ret_record is filled (its holder_identity borrowed from the elector) and
 * the elector waits for mr_leader_write_done(). Returns the action (>= 0).
 * LOST is returned once per loss; the elector is then a follower again.
 */
MrLeaderAction mr_leader_observe(MrLeaderElector *e, const MrLeaderRecord *observed, const char *resource_version,
                                 MrLeaderRecord *ret_record);

/*
 * client-go's fast path (1.30+, "optimistically update leader lock"): a
 * leader whose lease is still valid by its own clock renews without reading
 * first. Returns 1 and fills *ret_record (holder borrowed from the elector;
 * acquireTime and leaseTransitions kept) when that applies: the caller
 * updates the Lease it last read or wrote, guarded by that resourceVersion,
 * and reports through mr_leader_write_done() as for a WRITE. On any error
 * the round falls back to reading the Lease (observe). Returns 0 when not
 * leading, or when the last record seen does not name us.
 */
int mr_leader_renew(MrLeaderElector *e, MrLeaderRecord *ret_record);

/*
 * Reports the outcome of the CREATE/WRITE that observe asked for: error 0
 * and the server's answer (borrowed; NULL: the record as written), or the
 * negative error (-MR_ECONFLICT, -EEXIST: another candidate won the race).
 * new_resource_version is the answer's resourceVersion (borrowed, may be
 * NULL). Without a pending write this does nothing.
 */
void mr_leader_write_done(MrLeaderElector *e, int error, const MrLeaderRecord *answer,
                          const char *new_resource_version);

/*
 * The fence before every mutation: 0 while this elector leads and its last
 * successful renewal is younger than renew_deadline, else -MR_ELOSTLEASE
 * (and the elector becomes a follower).
 */
int mr_leader_check(MrLeaderElector *e);
bool mr_leader_is_leader(MrLeaderElector *e);

/* Monotonic time at which leadership lapses without a renewal; USEC_INFINITY when not leading. */
usec_t mr_leader_deadline(MrLeaderElector *e);
/* The configured retry period (after defaults): the polling interval for followers and renewals. */
usec_t mr_leader_retry_period(const MrLeaderElector *e);
/* The configured renew deadline (after defaults). */
usec_t mr_leader_renew_deadline(const MrLeaderElector *e);

/*
 * On shutdown (client-go ReleaseOnCancel): when leading, fills *ret_record
 * with the release record, stops leading and returns 1; the caller writes
 * it (best effort: failure just means followers wait out the lease).
 * Returns 0 when there is nothing to release.
 */
int mr_leader_release(MrLeaderElector *e, MrLeaderRecord *ret_record);

/* The record view of a lease (strings borrowed from l). */
void mr_leader_record_from_lease(const KubeLease *l, MrLeaderRecord *ret);
/* Writes a record into l's spec fields (holder copied). 0 or -ENOMEM (l unchanged then). */
int mr_leader_record_to_lease(const MrLeaderRecord *r, KubeLease *l);
