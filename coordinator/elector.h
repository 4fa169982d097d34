/* SPDX-License-Identifier: Apache-2.0 */
/*
 * elector.h — leader election for coordinators: lib/leader's state machine
 * driven from a thread of its own, with the Lease read and written through
 * a client of its own, and changes of leadership delivered to the event
 * loop.
 *
 * Why a thread. The engines' ticks make blocking API calls on the main
 * loop (listing 5,000 ztunnel pods page by page, say). A renewal timer on
 * that loop waits for them, and a tick that outlasts the renew deadline
 * (10 s) costs the lease although the process is healthy: the 5,000-node
 * benchmark lost it 19 times in 3 minutes. client-go runs leader election
 * in its own goroutine for the same reason. Here a pthread runs the rounds
 * — every retry period (jittered ±10 %), and at the deadline by which
 * leadership would lapse — whatever the main loop is doing. A leader first
 * tries client-go's fast path (update the Lease it last saw, one request);
 * otherwise, or when that fails, it reads the Lease, lets the state machine
 * decide and writes what it asks for.
 *
 * What is shared, and the locking rule:
 *   - the MrLeaderElector, which locks itself (leader.h): the thread runs
 *     rounds on it, the main thread fences on it (mr_leader_check before
 *     every write, in the engines and in the client's write guard), so a
 *     coordinator that lost or cannot prove its lease stops before its next
 *     write even while its loop is blocked and no change was delivered;
 *   - the thread's verdict (leading or not, and how many times it changed)
 *     and the stop flag, under the Elector's own mutex, which is never held
 *     across I/O or a call into the state machine;
 *   - an eventfd the thread writes when its verdict changes; the main loop
 *     reads it and calls on_change there, because the engines are not
 *     thread-safe. A loss and a regain both within one blocked stretch of
 *     the loop are still delivered as two calls (false, then true).
 * The thread's KubeClient is used only by the thread while it runs, and by
 * the main thread only after it has been joined (the release).
 *
 * Shutdown: elector_release (or elector_free) sets the stop flag and
 * signals a condition variable the thread waits on between rounds, so it
 * stops at once — or, in the middle of a round, when its Lease request in
 * flight answers or gives up (the renew deadline less a retry period per
 * attempt, one retry). The thread is
 * joined, then the Lease is released so a successor need not wait out the
 * lease duration.
 */
#pragma once

#include <systemd/sd-event.h>

#include "meshroll/kube.h"
#include "meshroll/leader.h"

typedef struct Elector Elector;
/* Called on the thread that runs e's loop, never from the election thread. */
typedef void (*elector_change_t)(Elector *el, bool leading, void *userdata);

/*
 * Starts electing at once. e is referenced (on_change is dispatched from it).
 * client is borrowed for this call only: the election thread talks to the
 * same server with the same credentials and User-Agent through a client of
 * its own (kube_client_new_like), with timeouts under the renew deadline
 * and one retry, since a round repeats every retry period anyway. config is copied. Errors:
 * -EINVAL (config; err names the rule), -ENOMEM, the client's errors, or
 * the eventfd's or pthread_create's, each named in err.
 */
int elector_new(sd_event *e, KubeClient *client, const char *ns, const char *name, const MrLeaderConfig *config,
                elector_change_t on_change, void *userdata, Elector **ret, MrError *err);
/* The state machine, for fencing with mr_leader_check from any thread (borrowed, self-locking). */
MrLeaderElector *elector_state(Elector *el);
/*
 * Stops and joins the election thread, then writes the release record when
 * leading (best effort, blocking) and reports the end of leadership through
 * on_change (without a warning: it is not a loss). No further on_change
 * after it. NULL is fine.
 */
void elector_release(Elector *el);
/* Stops and joins the thread if still running (without releasing), frees. NULL is fine. */
Elector *elector_free(Elector *el);
DEFINE_TRIVIAL_CLEANUP_FUNC(Elector *, elector_free);
