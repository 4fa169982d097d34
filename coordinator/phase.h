/* SPDX-License-Identifier: Apache-2.0 */
/*
 * phase.h — the phases of a Rollout, and the contract every phase module
 * implements.
 *
 * A Rollout upgrades the mesh in phases, run one after the other in the
 * order the spec gives (spec.phases; default: the sections present, in the
 * order ztunnel, sidecar, gateway, traffic):
 *
 *   ztunnel  node group by node group (engine.c; spec.target, spec.groups…)
 *   sidecar  namespaces to a new control-plane revision (sidecar.c; spec.sidecar)
 *   gateway  blue/green switch of a gateway Service (gateway.c; spec.gateway)
 *   traffic  an application's versions by route weights (traffic.c; spec.traffic)
 *
 * Each phase has its own status entry (status.phases[], PhaseStatus in
 * status.h): a state, timestamps, a message, and a `detail` object that
 * belongs to the phase module alone (its batches, steps, what it changed
 * and must undo). The engine owns the rollout-level machinery — reading
 * the Rollout, pause/resume, operator requests, writing status with
 * optimistic concurrency, Events, fencing — and calls the current phase's
 * `step` once per tick. A phase module never writes the Rollout itself.
 *
 * The rules a step follows are the engine's (engine.h): read the world,
 * perform the next idempotent action, record in the PhaseStatus what a
 * successor must know *before* depending on it, return. Everything a phase
 * needs after a coordinator restart lives in PhaseStatus.detail; a step
 * that is interrupted after its write but before the status write is
 * simply performed again by the next coordinator, so every write must be
 * safe to repeat (set a label to a value, not toggle it).
 *
 * Fencing: call phase_fence(ctx) immediately before every API write; it
 * fails with -MR_ELOSTLEASE once this coordinator is no longer the leader,
 * and the step must return that error at once.
 *
 * Rollback: when a phase's own checks fail (a timeout, a metric gate) the
 * step moves itself to PHASE_ROLLING_BACK; an operator asks for it with
 * `meshroll rollback --phase NAME [--namespace NS]` (the engine calls the
 * module's `rollback`). A rollback undoes what the phase changed, then the
 * phase ends RolledBack and the engine pauses the Rollout with the reason
 * (status message). Resuming after that goes on with the next phase.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <systemd/sd-event.h>

#include "meshroll/errors.h"
#include "meshroll/events.h"
#include "meshroll/kube.h"
#include "meshroll/time-util.h"

typedef enum PhaseKind {
        PHASE_ZTUNNEL,
        PHASE_SIDECAR,
        PHASE_GATEWAY,
        PHASE_TRAFFIC,
        _PHASE_KIND_MAX,
} PhaseKind;

/* "ztunnel", "sidecar", "gateway", "traffic" — the spec's section names. */
const char *phase_kind_to_string(PhaseKind k);
int phase_kind_from_string(const char *s); /* -EINVAL when unknown */

typedef enum PhaseState {
        PHASE_PENDING,
        PHASE_PROGRESSING,
        PHASE_ROLLING_BACK,
        PHASE_COMPLETED,
        PHASE_ROLLED_BACK,
        _PHASE_STATE_MAX,
} PhaseState;

const char *phase_state_to_string(PhaseState s); /* "Pending", "Progressing", … */
int phase_state_from_string(const char *s);

static inline bool phase_state_finished(PhaseState s)
{
        return s == PHASE_COMPLETED || s == PHASE_ROLLED_BACK;
}

typedef struct PhaseStatus PhaseStatus;   /* status.h */
typedef struct RolloutSpec RolloutSpec;   /* spec.h */
typedef struct RolloutStatus RolloutStatus;
typedef struct MetricGateSet MetricGateSet; /* metric-gate.h */

/* What a step returns besides a negative errno. */
enum {
        PHASE_STAY = 0,    /* nothing to record; wait for the world (next tick) */
        PHASE_ADVANCE = 1, /* the PhaseStatus changed: write it, then step again at once */
};

/*
 * Everything a step may use, valid for one call. The engine fills it.
 * Setting the Rollout's phase (pause/fail) goes through
 * rollout_status_set_phase(ctx->status, …) — e.g. a step that cannot go on
 * without an operator sets ROLLOUT_PAUSED with a reason and returns
 * PHASE_ADVANCE.
 */
typedef struct PhaseCtx {
        KubeClient *client;        /* blocking calls are fine: keep them few per step */
        sd_event *event;
        const char *rollout;       /* the Rollout's name, for logs and Events */
        const char *rollout_uid;   /* for Events on the Rollout; may be NULL */
        const RolloutSpec *spec;
        RolloutStatus *status;
        usec_t now;                /* this coordinator's wall clock, µs */
        MrError *err;              /* set it when returning an error */
        const MrClock *clock;
        const char *component;     /* Events' source component */
        usec_t adopted;            /* when this coordinator took the Rollout over: see phase_elapsed() */

        /* private to the engine */
        int (*fence_cb)(void *userdata);
        void *userdata;
} PhaseCtx;

/*
 * Time spent since `since` (a time recorded in the status, possibly by
 * another coordinator with another clock), measured from no earlier than
 * the moment this coordinator took the Rollout over. Use it for every
 * timeout, soak and pause: clock skew between coordinators can then only
 * lengthen a wait, never cut it short (a successor 90 s ahead must not see
 * a drain "time out" the moment it takes over).
 */
static inline usec_t phase_elapsed(const PhaseCtx *ctx, usec_t since)
{
        usec_t base = since > ctx->adopted ? since : ctx->adopted;
        return ctx->now > base ? ctx->now - base : 0;
}

/* 0 when this coordinator may write; -MR_ELOSTLEASE otherwise. Call before every write. */
int phase_fence(const PhaseCtx *ctx);

/*
 * Emits an Event (fire and forget). ref NULL: on the Rollout. type
 * KUBE_EVENT_NORMAL or KUBE_EVENT_WARNING; reason CamelCase.
 */
void phase_event(const PhaseCtx *ctx, const KubeEventRef *ref, const char *type, const char *reason,
                 const char *fmt, ...) _printf_(5, 6);

/*
 * The metric gates of a phase (spec.<phase>.gates; for ztunnel spec.gates),
 * evaluated by metric-gate.c over the phase's own record in
 * ps->detail["gates"]. Call at the phase's checkpoints (after each batch,
 * each weight step, each soak): returns 1 when every gate has passed its
 * consecutive checks since `since` (the checkpoint's start; the record is
 * reset when since changes), 0 while checks go on (not yet enough
 * consecutive passes; the next check is due later: stay), -MR_EGATE when a
 * gate failed (err names the gate, its query's value and the threshold:
 * roll the phase back), other negative errno on a local failure. A NULL or
 * empty set passes at once. *changed is set when the record changed (the
 * step should return PHASE_ADVANCE so it is written).
 */
int phase_gates_check(const PhaseCtx *ctx, const MetricGateSet *gates, PhaseStatus *ps, usec_t since,
                      bool *changed);

/*
 * Before a phase starts (the engine calls it while the phase is Pending):
 * measures the baseline of every relative gate (`baseline: 1.2`) and records
 * it in ps->detail["gateBaselines"]. 1 when every baseline is recorded (or
 * none is needed), 0 to try again later (onError: wait), -MR_EGATE when a
 * baseline cannot be measured and the gate fails closed (the phase does not
 * start; the engine pauses the Rollout with err's message). *changed as
 * above.
 */
int phase_gates_baseline(const PhaseCtx *ctx, const MetricGateSet *gates, PhaseStatus *ps, bool *changed);

/*
 * The operations of one phase kind. Implemented by each module and listed
 * in phases.c. The ztunnel phase is the engine's own and has no ops.
 */
typedef struct PhaseOps {
        PhaseKind kind;

        /*
         * Reads spec.<section> (borrowed; a mapping) into a new spec object of
         * the module's own type. path is "spec.sidecar" etc. for messages;
         * unknown keys are errors, as everywhere in a Rollout; "gates" is read
         * by the caller (spec.c) and never reaches this parser. -MR_ECONFIG
         * with err naming the field, or -ENOMEM.
         */
        int (*parse)(json_object *section, const char *path, void **ret, MrError *err);
        void (*free_spec)(void *spec);

        /*
         * One step of the phase (ps->state is PENDING, PROGRESSING or
         * ROLLING_BACK; never called when finished or when the Rollout is
         * paused). The module moves ps through its states with
         * phase_set_state() (status.h); PENDING → PROGRESSING is its first
         * step. PHASE_STAY, PHASE_ADVANCE or negative errno (err set).
         */
        int (*step)(PhaseCtx *ctx, const void *spec, PhaseStatus *ps);

        /*
         * An operator asked to roll this phase back (scope: NULL for the whole
         * phase, or a namespace for the sidecar phase; -EINVAL with err set
         * for a scope the phase does not understand). Only records the request
         * in ps (state ROLLING_BACK and what to undo); the next steps do the
         * work. May be called on a Completed phase (undoing a finished phase
         * is allowed); the engine refuses it for a Pending one.
         */
        int (*rollback)(PhaseCtx *ctx, const void *spec, PhaseStatus *ps, const char *scope);

        /* One line for `meshroll plan`: what the phase would do. Optional. */
        int (*describe)(const void *spec, char **ret);
} PhaseOps;

/* The ops of a kind, or NULL for PHASE_ZTUNNEL and kinds this build does not have. */
const PhaseOps *phase_ops(PhaseKind k);
