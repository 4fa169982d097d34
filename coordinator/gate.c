/* SPDX-License-Identifier: Apache-2.0 */
/* gate.c — see gate.h. One GET per node: groups are small and the gate polls slowly. */
#include <stdio.h>

#include "meshroll/json-util.h"
#include "gate.h"

#define SKEW_ALLOWANCE (5 * USEC_PER_SEC)

const char *gate_node_state_to_string(GateNodeState s)
{
        static const char *const names[] = {
                [GATE_NODE_PASS] = "pass",           [GATE_NODE_CONNECTIONS] = "connections",
                [GATE_NODE_NO_REPORT] = "no report", [GATE_NODE_STALE] = "stale report",
                [GATE_NODE_OLD_REPORT] = "report predates the drain", [GATE_NODE_UNKNOWN] = "ages not known yet",
                [GATE_NODE_AHEAD] = "report dated ahead of this clock (clock skew)",
        };
        return s < ELEMENTSOF(names) ? names[s] : "unknown";
}

static GateNodeState judge(json_object *lease, const char *phase, unsigned threshold, usec_t now, int64_t *ret_ll)
{
        const char *renew = mr_json_get_str(lease, "spec", "renewTime", NULL);
        const char *seen_phase = mr_json_get_str(lease, "metadata", "annotations", "meshroll.io/phase", NULL);
        const char *ll = mr_json_get_str(lease, "metadata", "annotations", "meshroll.io/long-lived", NULL);
        int64_t duration = 0;
        usec_t renewed;
        char *end;

        *ret_ll = -1;
        if (!renew || kube_time_parse(renew, &renewed) < 0 ||
            mr_json_get_int(&duration, lease, "spec", "leaseDurationSeconds", NULL) < 0 || duration <= 0 ||
            renewed + (usec_t)duration * USEC_PER_SEC + SKEW_ALLOWANCE < now)
                return GATE_NODE_STALE;
        if (renewed > now + SKEW_ALLOWANCE)
                return GATE_NODE_AHEAD;
        if (!streq_ptr(seen_phase, phase))
                return GATE_NODE_OLD_REPORT;
        if (!ll)
                return GATE_NODE_UNKNOWN;
        errno = 0;
        long long n = strtoll(ll, &end, 10);
        if (errno || *end || end == ll || n < 0)
                return GATE_NODE_UNKNOWN;
        *ret_ll = n;
        return n <= threshold ? GATE_NODE_PASS : GATE_NODE_CONNECTIONS;
}

int gate_check(KubeClient *c, const char *agent_namespace, const char *const *nodes, const char *phase,
               unsigned threshold, usec_t now, GateResult *ret, MrError *err)
{
        GateResult res = {};
        KubeStatus st;
        int r;

        for (const char *const *n = nodes; *n; n++) {
                _cleanup_free_ char *name = NULL, *path = NULL;
                _cleanup_(json_object_putp) json_object *lease = NULL;
                GateNodeState s;
                int64_t ll;

                res.total++;
                if (asprintf(&name, "meshroll-agent-%s", *n) < 0 ||
                    kube_path(&KUBE_LEASES, agent_namespace, name, NULL, &path) < 0)
                        return mr_error_set(err, -ENOMEM, "out of memory");
                r = kube_get(c, path, &lease, &st);
                if (r == -ENOENT)
                        s = GATE_NODE_NO_REPORT;
                else if (r < 0)
                        return mr_error_set(err, r, "reading Lease %s/%s: %s", agent_namespace, name,
                                            st.message[0] ? st.message : mr_strerror(r));
                else
                        s = judge(lease, phase, threshold, now, &ll);
                if (s == GATE_NODE_PASS || s == GATE_NODE_CONNECTIONS)
                        res.long_lived += ll;
                if (s == GATE_NODE_PASS) {
                        res.passed++;
                        continue;
                }
                if (res.first_blocker[0])
                        continue;
                if (s == GATE_NODE_CONNECTIONS)
                        snprintf(res.first_blocker, sizeof(res.first_blocker), "%s: %lld long-lived connections", *n,
                                 (long long)ll);
                else
                        snprintf(res.first_blocker, sizeof(res.first_blocker), "%s: %s", *n,
                                 gate_node_state_to_string(s));
        }
        *ret = res;
        return res.passed == res.total;
}
