/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-rollout-spec.c — a Rollout document (a YAML file for `meshroll run
 * -f`, or a custom resource any user with write access to rollouts can
 * create) must give a spec or an error naming the field, never a crash, a
 * leak or a spec that breaks the invariants the engine relies on.
 *
 * The input is YAML, parsed with the same converter the CLI uses; custom
 * resources arrive as JSON, which is YAML too, so one target covers both.
 */
#include <stdint.h>
#include <stdlib.h>

#include "meshroll/json-util.h"
#include "meshroll/yaml-json.h"
#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the engine assumes of any accepted spec (spec.h). */
static void check_invariants(const RolloutSpec *s)
{
        if (!s->name || !s->target_namespace || !s->target_daemonset || !s->agent_namespace)
                abort();
        switch (s->mode) {
        case GROUPING_SIZE:
                if (s->size < 1)
                        abort();
                break;
        case GROUPING_PERCENT:
                if (s->percent < 1 || s->percent > 100)
                        abort();
                break;
        case GROUPING_LABEL:
                if (!s->by_label)
                        abort();
                break;
        case GROUPING_LIST:
                if (s->n_lists == 0 || !s->lists)
                        abort();
                for (size_t i = 0; i < s->n_lists; i++)
                        if (!s->lists[i].name || !s->lists[i].nodes || !s->lists[i].nodes[0])
                                abort();
                break;
        default:
                abort();
        }
        if (s->drain_concurrency < 1 || gate_action_to_string(s->gate_action) == NULL)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(json_object_putp) json_object *doc = NULL;
        _cleanup_(rollout_spec_freep) RolloutSpec *s = NULL;
        MrError e = {};
        int r;

        if (size > 64 * 1024) /* the CLI caps spec files; large inputs only slow the fuzzer */
                return 0;
        if (mr_yaml_parse((const char *)data, size, &doc, &e) < 0)
                return 0;
        r = rollout_spec_from_json(doc, &s, &e);
        if (r == 0) {
                if (!s)
                        abort();
                check_invariants(s);
        } else if (s || e.message[0] == 0)
                abort();
        return 0;
}
