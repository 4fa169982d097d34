/* SPDX-License-Identifier: Apache-2.0 */
/*
 * elector.h — leader election for coordinators: lib/leader's pure state
 * machine driven on the event loop, with the Lease read and written through
 * the API.
 *
 * Every retry period (jittered ±10 %), and at the deadline by which
 * leadership would lapse, the elector reads the Lease, lets the state
 * machine decide, and writes what it asks for. Gaining and losing
 * leadership are reported through a callback; the engine's fence
 * (mr_leader_check before every write) works off the same state machine,
 * so a coordinator that misses its renew deadline stops writing even if
 * this timer has not run yet. On shutdown the Lease is released so a
 * successor need not wait out the lease duration.
 */
#pragma once

#include <systemd/sd-event.h>

#include "meshroll/kube.h"
#include "meshroll/leader.h"

typedef struct Elector Elector;
typedef void (*elector_change_t)(Elector *el, bool leading, void *userdata);

/* client attached to e; both borrowed. config copied. */
int elector_new(sd_event *e, KubeClient *client, const char *ns, const char *name, const MrLeaderConfig *config,
                elector_change_t on_change, void *userdata, Elector **ret, MrError *err);
/* The state machine, for fencing (borrowed). */
MrLeaderElector *elector_state(Elector *el);
/* Writes the release record when leading (best effort, blocking). */
void elector_release(Elector *el);
Elector *elector_free(Elector *el);
DEFINE_TRIVIAL_CLEANUP_FUNC(Elector *, elector_free);
