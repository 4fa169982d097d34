/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine.h — runs one Rollout: its phases in order (phase.h); the ztunnel
 * phase, group by group, is the engine's own.
 *
 * The engine is a level-triggered reconciler on the coordinator's sd-event
 * loop. Every tick (and at once after a step advanced) it reads the Rollout,
 * looks at the world, performs the next idempotent step of the current
 * group, and records the result in the Rollout's status before moving on
 * (docs/rollout.md has the state machine). Nothing a successor needs lives
 * only in memory: kill the coordinator anywhere and the next one continues.
 * The one long-running step, the drain, runs asynchronously on the loop
 * (drain.h); a new leader simply starts it again, since evicting what is
 * already gone is a no-op.
 *
 * Fencing: with a leader elector, every write is preceded by
 * mr_leader_check(); a coordinator that lost its lease stops before its
 * next write and cancels its drain.
 *
 * Time: durations (soak, timeouts, minReadySeconds) are measured on this
 * coordinator's wall clock against times that coordinators recorded in the
 * status, never against timestamps other components wrote.
 */
#pragma once

#include <systemd/sd-event.h>

#include "meshroll/kube.h"
#include "meshroll/leader.h"
#include "rollout-metrics.h"
#include "status.h"

typedef struct Engine Engine;

/* Called after every status change the engine wrote (for progress output). status borrowed. */
typedef void (*engine_change_t)(Engine *e, const RolloutStatus *status, void *userdata);
/* Called when the rollout reaches Completed or Failed (the engine then idles). */
typedef void (*engine_finished_t)(Engine *e, RolloutPhase phase, void *userdata);

typedef struct EngineOptions {
        const char *rollout;          /* the Rollout's name (cluster-scoped) */
        const char *component;        /* for Events, default "meshroll" */
        usec_t tick;                  /* default 1 s */
        const MrClock *clock;         /* NULL: system clock */
        MrLeaderElector *elector;     /* borrowed; NULL: no fencing (single coordinator) */
        RolloutMetrics *metrics;      /* borrowed; NULL: none */
        engine_change_t on_change;
        engine_finished_t on_finished;
        void *userdata;
} EngineOptions;

/* client must be attached to e (the drain is asynchronous). Both borrowed. */
int engine_new(sd_event *e, KubeClient *client, const EngineOptions *o, Engine **ret);
Engine *engine_free(Engine *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(Engine *, engine_free);

/*
 * Re-read the Rollout now. An engine that saw its Rollout finish idles;
 * kicking it makes it look again (an operator asked to roll part of a
 * Completed Rollout back).
 */
void engine_kick(Engine *e);

/* Leadership was lost (or regained): stop every mutation in flight / resume ticking. */
void engine_set_active(Engine *e, bool active);
