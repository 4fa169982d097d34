/* SPDX-License-Identifier: Apache-2.0 */
/* rollout-metrics.c — see rollout-metrics.h. */
#include "rollout-metrics.h"

int rollout_metrics_init(RolloutMetrics *m)
{
        static const double step_buckets[] = { 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600 };
        int r;

        *m = (RolloutMetrics){};
        if ((r = mr_metrics_new(&m->registry)) < 0)
                return r;
        if ((r = mr_metrics_register(m->registry, MR_METRIC_GAUGE, "meshroll_rollout_phase",
                                     "1 for each Rollout's current phase.",
                                     (const char *const[]){ "rollout", "phase", NULL }, NULL, 0, &m->phase)) < 0 ||
            (r = mr_metrics_register(m->registry, MR_METRIC_GAUGE, "meshroll_rollout_groups",
                                     "Node groups of each Rollout, by state.",
                                     (const char *const[]){ "rollout", "state", NULL }, NULL, 0, &m->groups)) < 0 ||
            (r = mr_metrics_register(m->registry, MR_METRIC_HISTOGRAM, "meshroll_group_step_seconds",
                                     "Time node groups spent in each state.", (const char *const[]){ "step", NULL },
                                     step_buckets, ELEMENTSOF(step_buckets), &m->step_seconds)) < 0 ||
            (r = mr_metrics_register(m->registry, MR_METRIC_GAUGE, "meshroll_gate_connections",
                                     "Long-lived connections the connection gate saw on a group's nodes.",
                                     (const char *const[]){ "rollout", "group", NULL }, NULL, 0,
                                     &m->gate_connections)) < 0 ||
            (r = mr_metrics_register(m->registry, MR_METRIC_COUNTER, "meshroll_drain_evicted_pods_total",
                                     "Pods drains saw go.", (const char *const[]){ "rollout", NULL }, NULL, 0,
                                     &m->evicted)) < 0 ||
            (r = mr_metrics_register(m->registry, MR_METRIC_GAUGE, "meshroll_leader",
                                     "1 while this coordinator holds the lease.", NULL, NULL, 0, &m->leader)) < 0) {
                rollout_metrics_done(m);
                return r;
        }
        return 0;
}

void rollout_metrics_done(RolloutMetrics *m)
{
        m->registry = mr_metrics_free(m->registry);
}

void rollout_metrics_update(RolloutMetrics *m, const char *rollout, const RolloutStatus *s)
{
        unsigned counts[_GROUP_STATE_MAX] = {};

        for (int p = 0; p < _ROLLOUT_PHASE_MAX; p++)
                (void)mr_metric_set(m->phase, (const char *const[]){ rollout, rollout_phase_to_string(p) },
                                    s->phase == (RolloutPhase)p);
        for (size_t i = 0; i < s->n_groups; i++) {
                counts[s->groups[i].state]++;
                if (s->groups[i].connections >= 0)
                        (void)mr_metric_set(m->gate_connections, (const char *const[]){ rollout, s->groups[i].name },
                                            (double)s->groups[i].connections);
        }
        for (int st = 0; st < _GROUP_STATE_MAX; st++)
                (void)mr_metric_set(m->groups, (const char *const[]){ rollout, group_state_to_string(st) }, counts[st]);
}
