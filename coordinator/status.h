/* SPDX-License-Identifier: Apache-2.0 */
/*
 * status.h — a Rollout's status: the rollout's memory (docs/rollout.md).
 *
 * The engine keeps no state of its own that a successor would need: every
 * step reads this, acts idempotently, and records its progress here before
 * the next step, so a restarted or newly elected coordinator continues
 * exactly where the last one stopped. This module is the model and its JSON
 * form; writing it to the API is the engine's (status subresource, with the
 * object's resourceVersion).
 *
 * Times are wall-clock µs from the coordinator that wrote them; only
 * coordinators compare them (never with timestamps other components wrote).
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "meshroll/errors.h"
#include "meshroll/time-util.h"
#include "phase.h"

typedef enum RolloutPhase {
        ROLLOUT_PENDING,
        ROLLOUT_PROGRESSING,
        ROLLOUT_PAUSED,
        ROLLOUT_COMPLETED,
        ROLLOUT_FAILED,
        _ROLLOUT_PHASE_MAX,
} RolloutPhase;

typedef enum GroupState {
        GROUP_PENDING,
        GROUP_CORDONING,
        GROUP_DRAINING,
        GROUP_GATING,
        GROUP_REPLACING,
        GROUP_VERIFYING,
        GROUP_UNCORDONING,
        GROUP_SOAKING,
        GROUP_DONE,
        GROUP_ROLLING_BACK,
        GROUP_ROLLED_BACK,
        _GROUP_STATE_MAX,
} GroupState;

const char *rollout_phase_to_string(RolloutPhase p);
int rollout_phase_from_string(const char *s); /* -EINVAL when unknown */
const char *group_state_to_string(GroupState s);
int group_state_from_string(const char *s);

/* A group is finished (nothing more to do for it) once Done or RolledBack. */
static inline bool group_state_finished(GroupState s)
{
        return s == GROUP_DONE || s == GROUP_ROLLED_BACK;
}

typedef struct GroupStatus {
        char *name;
        char **nodes;              /* NULL-terminated */
        size_t n_nodes;
        GroupState state;
        usec_t since;              /* when state began; 0 unknown */
        usec_t started_at, finished_at;
        char **operator_cordoned;  /* NULL-terminated, may be NULL */
        char **deleted_nodes;      /* nodes of the group deleted during the rollout (skipped from then on); may be NULL */
        int64_t connections;       /* at the gate; -1 unknown */
        usec_t ready_since;        /* Verifying / RollingBack: all nodes first seen Ready; 0 not yet */
        unsigned rollback_step;    /* RollingBack: 0 template→previous, 1 replace, 2 template→target, 3 uncordon */
        bool rollback_requested;   /* re-draining a finished group to roll it back: the gate leads to RollingBack */
        char *message;
} GroupStatus;

typedef struct Revision {
        char *name;
        char *hash;
} Revision;

/*
 * One phase's record (status.phases[], in the spec's order). detail is the
 * phase module's own object (phase.h): the engine stores it and writes it
 * back unchanged; never NULL once read or created.
 */
struct PhaseStatus {
        PhaseKind kind;
        PhaseState state;
        usec_t since, started_at, finished_at;
        char *message;
        json_object *detail;
};

struct RolloutStatus {
        RolloutPhase phase;
        char *reason, *message;
        int64_t observed_generation;
        usec_t started_at, finished_at;
        Revision target, previous;  /* previous.hash NULL when there is none */
        GroupStatus *groups;        /* the ztunnel phase's groups */
        size_t n_groups;
        bool initialized;           /* the ztunnel phase's groups and revisions are recorded */
        PhaseStatus *phases;        /* every phase of the spec, in its order; n_phases 0: not started */
        size_t n_phases;
};

/* Reads status (borrowed; NULL or {} → an uninitialized status). -MR_EPARSE naming the field. */
int rollout_status_from_json(json_object *status, RolloutStatus **ret, MrError *err);
/*
 * Writes the whole status object, with the derived fields currentGroup,
 * groupsDone and groupsTotal and a Progressing/Paused/Completed/Failed
 * condition (previous conditions are passed in, borrowed, to keep
 * lastTransitionTime when a condition's status does not change). *ret owned.
 */
int rollout_status_to_json(const RolloutStatus *s, json_object *old_conditions, usec_t now, json_object **ret);

/* Index of the first group not finished, or -1 when all are. */
int rollout_status_current(const RolloutStatus *s);
/* Finds a group by name, or NULL. */
GroupStatus *rollout_status_group(RolloutStatus *s, const char *name);

/* Whether node was deleted during the rollout (in g->deleted_nodes). */
bool group_node_deleted(const GroupStatus *g, const char *node);

/* Sets a group's state, stamping since (and startedAt/finishedAt as they apply); clears its message. */
void group_set_state(GroupStatus *g, GroupState state, usec_t now);
/* Replaces a group's message (NULL clears). 0 or -ENOMEM. */
int group_set_message(GroupStatus *g, const char *fmt, ...) _printf_(2, 3);
/* Index of the first phase not finished, or -1 when all are (or none is recorded). */
int rollout_status_current_phase(const RolloutStatus *s);
/* The record of a phase kind, or NULL. */
PhaseStatus *rollout_status_phase(RolloutStatus *s, PhaseKind kind);
/* Appends a Pending phase with an empty detail. 0 or -ENOMEM. */
int rollout_status_add_phase(RolloutStatus *s, PhaseKind kind);
/* Sets a phase's state, stamping since/startedAt/finishedAt as they apply; clears its message. */
void phase_set_state(PhaseStatus *p, PhaseState state, usec_t now);
/* Replaces a phase's message (NULL clears). 0 or -ENOMEM. */
int phase_set_message(PhaseStatus *p, const char *fmt, ...) _printf_(2, 3);

/* Sets phase, reason and message together. 0 or -ENOMEM. */
int rollout_status_set_phase(RolloutStatus *s, RolloutPhase phase, const char *reason, const char *fmt, ...)
        _printf_(4, 5);

RolloutStatus *rollout_status_free(RolloutStatus *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(RolloutStatus *, rollout_status_free);
