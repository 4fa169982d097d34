/* SPDX-License-Identifier: Apache-2.0 */
/*
 * phases.c — the phase registry and the helpers every phase module shares
 * (see phase.h). Adding a phase kind: its module exports a PhaseOps and is
 * listed in `registry` below.
 */
#include <stdarg.h>
#include <stdio.h>

#include "meshroll/log.h"
#include "gateway.h"
#include "phase.h"
#include "sidecar.h"
#include "traffic.h"

static const char *const kind_names[_PHASE_KIND_MAX] = {
        [PHASE_ZTUNNEL] = "ztunnel",
        [PHASE_SIDECAR] = "sidecar",
        [PHASE_GATEWAY] = "gateway",
        [PHASE_TRAFFIC] = "traffic",
};

static const char *const state_names[_PHASE_STATE_MAX] = {
        [PHASE_PENDING] = "Pending",         [PHASE_PROGRESSING] = "Progressing", [PHASE_ROLLING_BACK] = "RollingBack",
        [PHASE_COMPLETED] = "Completed",     [PHASE_ROLLED_BACK] = "RolledBack",
};

const char *phase_kind_to_string(PhaseKind k)
{
        return k < _PHASE_KIND_MAX ? kind_names[k] : "unknown";
}

int phase_kind_from_string(const char *s)
{
        for (int i = 0; i < _PHASE_KIND_MAX; i++)
                if (streq_ptr(s, kind_names[i]))
                        return i;
        return -EINVAL;
}

const char *phase_state_to_string(PhaseState s)
{
        return s < _PHASE_STATE_MAX ? state_names[s] : "Unknown";
}

int phase_state_from_string(const char *s)
{
        for (int i = 0; i < _PHASE_STATE_MAX; i++)
                if (streq_ptr(s, state_names[i]))
                        return i;
        return -EINVAL;
}

/* Each module's ops; NULL where this build has none (the ztunnel phase is the engine's). */
static const PhaseOps *const registry[_PHASE_KIND_MAX] = {
        [PHASE_ZTUNNEL] = NULL,
        [PHASE_SIDECAR] = &sidecar_phase_ops,
        [PHASE_GATEWAY] = &gateway_phase_ops,
        [PHASE_TRAFFIC] = &traffic_phase_ops,
};

const PhaseOps *phase_ops(PhaseKind k)
{
        return k < _PHASE_KIND_MAX ? registry[k] : NULL;
}

int phase_fence(const PhaseCtx *ctx)
{
        return ctx->fence_cb ? ctx->fence_cb(ctx->userdata) : 0;
}

void phase_event(const PhaseCtx *ctx, const KubeEventRef *ref, const char *type, const char *reason, const char *fmt,
                 ...)
{
        KubeEventRef rollout = { .api_version = "meshroll.io/v1alpha1", .kind = "Rollout", .name = ctx->rollout,
                                 .uid = ctx->rollout_uid };
        char msg[KUBE_EVENT_MESSAGE_MAX];
        va_list ap;

        if (phase_fence(ctx) < 0)
                return; /* a coordinator that lost its lease writes nothing, Events included */
        va_start(ap, fmt);
        (void)vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        /* Fire and forget: an Event is a report, not state. */
        (void)kube_event_emit_async(ctx->client, ref ? ref : &rollout, type, reason, msg,
                                    ctx->component ? ctx->component : "meshroll", ctx->clock, NULL, NULL);
}
