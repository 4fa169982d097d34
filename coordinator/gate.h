/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gate.h — the connection gate: may ztunnel be replaced on these nodes?
 *
 * Each node's meshroll-agent publishes its counts on the Lease
 * meshroll-agent-<node> (docs/agent.md). A node passes when its report
 *   - exists,
 *   - is fresh: renewTime + leaseDurationSeconds (+ 5 s of clock skew
 *     allowance) is not in the past, and renewTime is not more than those
 *     5 s in the future (an agent whose clock runs ahead would otherwise
 *     look fresh long after it stopped: a frozen agent 1 h ahead passed
 *     the gate for an hour),
 *   - was made while the node carried this group's mark (its
 *     meshroll.io/phase annotation equals phase), so it postdates the drain
 *     it is judging, and
 *   - says the long-lived connections are known and at most threshold.
 * Anything else is "unknown" and the gate waits; what happens at its
 * timeout is the spec's onTimeout action, decided by the engine.
 */
#pragma once

#include <stdint.h>

#include "meshroll/kube.h"

typedef enum GateNodeState {
        GATE_NODE_PASS,
        GATE_NODE_CONNECTIONS, /* fresh report, too many long-lived connections */
        GATE_NODE_NO_REPORT,   /* no Lease */
        GATE_NODE_STALE,       /* Lease not renewed in time */
        GATE_NODE_OLD_REPORT,  /* report not made under this mark yet */
        GATE_NODE_UNKNOWN,     /* the agent does not know ages yet */
        GATE_NODE_AHEAD,       /* renewTime ahead of this clock by more than the allowance: age unknowable */
} GateNodeState;

const char *gate_node_state_to_string(GateNodeState s);

typedef struct GateResult {
        unsigned passed, total;
        int64_t long_lived;           /* sum over nodes with a fresh report */
        char first_blocker[256];      /* "worker-3: 2 long-lived connections" or "" when all pass */
} GateResult;

/*
 * Checks every node (NULL-terminated) at wall time now. Returns 1 when all
 * pass, 0 when the gate must wait (result says why), or an API error.
 */
int gate_check(KubeClient *c, const char *agent_namespace, const char *const *nodes, const char *phase,
               unsigned threshold, usec_t now, GateResult *ret, MrError *err);
