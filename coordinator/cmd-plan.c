/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd-plan.c — `meshroll plan -f FILE`: what a rollout would do, changing
 * nothing. For each group: its nodes, on each node the pods a drain would
 * evict, and the PodDisruptionBudgets covering them that allow no
 * disruption right now (a drain there would wait on them). It also checks
 * the target DaemonSet (exists, updateStrategy OnDelete, a revision to roll
 * to). Other phases print their module's description (PhaseOps.describe)
 * and what they would touch now: the sidecar phase's namespaces in order,
 * the gateway phase's Service and new Deployment. Exit 0 when nothing
 * blocks, 1 when something would block or fail.
 */
#include <stdio.h>

#include "meshroll/fileio.h"
#include "meshroll/json-util.h"
#include "meshroll/log.h"
#include "meshroll/selector.h"
#include "cli.h"
#include "gateway.h"
#include "groups.h"
#include "sidecar.h"
#include "spec.h"
#include "ztunnel.h"

/* DaemonSet pods and mirror pods are left alone by a drain. */
static bool evictable(json_object *pod)
{
        json_object *owners = mr_json_get(pod, "metadata", "ownerReferences", NULL);
        if (mr_json_get(pod, "metadata", "annotations", "kubernetes.io/config.mirror", NULL))
                return false;
        for (size_t i = 0; owners && i < json_object_array_length(owners); i++) {
                json_object *o = json_object_array_get_idx(owners, i);
                if (mr_json_get_bool(false, o, "controller", NULL) &&
                    streq_ptr(mr_json_get_str(o, "kind", NULL), "DaemonSet"))
                        return false;
        }
        const char *phase = mr_json_get_str(pod, "status", "phase", NULL);
        return !streq_ptr(phase, "Succeeded") && !streq_ptr(phase, "Failed");
}

/* The PDB in pod's namespace that matches it and allows no disruption, or NULL. */
static json_object *blocking_pdb(json_object *pdbs, json_object *pod)
{
        const char *ns = mr_json_get_str(pod, "metadata", "namespace", NULL);
        json_object *labels = mr_json_get(pod, "metadata", "labels", NULL);

        for (size_t i = 0; i < json_object_array_length(pdbs); i++) {
                json_object *pdb = json_object_array_get_idx(pdbs, i);
                _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
                int64_t allowed = 0;

                if (!streq_ptr(mr_json_get_str(pdb, "metadata", "namespace", NULL), ns))
                        continue;
                json_object *selector = mr_json_get(pdb, "spec", "selector", NULL);
                if (!selector || mr_selector_from_json(selector, &sel, NULL) < 0 || !mr_selector_matches(sel, labels))
                        continue;
                (void)mr_json_get_int(&allowed, pdb, "status", "disruptionsAllowed", NULL);
                if (allowed <= 0)
                        return pdb;
        }
        return NULL;
}

/* The ztunnel phase: the groups, their nodes, the pods a drain would evict and what would block. */
static int plan_ztunnel(KubeClient *client, const RolloutSpec *spec, unsigned *ret_blocked)
{
        _cleanup_(ztunnel_info_freep) ZtunnelInfo *z = NULL;
        _cleanup_(group_plan_freep) GroupPlan *plan = NULL;
        _cleanup_(json_object_putp) json_object *nodes = NULL, *ds_pods = NULL, *pods = NULL, *pdbs = NULL;
        unsigned blocked = 0;
        MrError err = {};
        KubeStatus st;
        int k;

        printf("\nphase ztunnel\n");
        k = ztunnel_inspect(client, spec->target_namespace, spec->target_daemonset, &z, &err);
        if (k < 0) {
                log_error("%s", err.message);
                return 1;
        }
        printf("DaemonSet %s/%s: target revision %s, previous %s, %zu pods\n", spec->target_namespace,
               spec->target_daemonset, strna(z->update_hash), strna(z->previous_hash), z->n_pods);
        if (ztunnel_require_on_delete(z, &err) < 0) {
                printf("BLOCKS: %s\n", err.message);
                blocked++;
        }

        k = kube_list(client, &KUBE_NODES, NULL, NULL, &nodes, NULL, &st);
        if (k >= 0)
                k = kube_list(client, &KUBE_PODS, spec->target_namespace, NULL, &ds_pods, NULL, &st);
        if (k >= 0)
                k = kube_list(client, &KUBE_PODS, NULL, NULL, &pods, NULL, &st);
        if (k >= 0)
                k = kube_list(client, &KUBE_PDBS, NULL, NULL, &pdbs, NULL, &st);
        if (k < 0) {
                log_error_errno(k, "Cannot list the cluster: %s", st.message[0] ? st.message : "%m");
                return 1;
        }
        k = groups_compute(spec, nodes, ds_pods, &plan, &err);
        if (k < 0) {
                log_error("%s", err.message);
                return k == -MR_ECONFIG ? 2 : 1;
        }

        for (size_t g = 0; g < plan->n_groups; g++) {
                const NodeGroup *grp = &plan->groups[g];
                printf("\ngroup %zu/%zu %s: %zu nodes\n", g + 1, plan->n_groups, grp->name, grp->n_nodes);
                for (size_t n = 0; n < grp->n_nodes; n++) {
                        const ZtunnelPod *zp = ztunnel_pod_on(z, grp->nodes[n]);
                        json_object *blockers[64];
                        size_t n_blockers = 0;
                        unsigned evict = 0;

                        for (size_t i = 0; i < json_object_array_length(pods); i++) {
                                json_object *pod = json_object_array_get_idx(pods, i);
                                if (!streq_ptr(mr_json_get_str(pod, "spec", "nodeName", NULL), grp->nodes[n]) ||
                                    !evictable(pod))
                                        continue;
                                evict++;
                                if (blocking_pdb(pdbs, pod) && n_blockers < ELEMENTSOF(blockers))
                                        blockers[n_blockers++] = pod;
                        }
                        printf("  %-30s ztunnel %-10s %u pods to evict\n", grp->nodes[n],
                               zp ? strna(zp->hash) : "(none)", evict);
                        for (size_t i = 0; i < n_blockers; i++) {
                                json_object *pdb = blocking_pdb(pdbs, blockers[i]);
                                printf("    BLOCKS: pod %s/%s: PodDisruptionBudget %s allows no disruption now\n",
                                       mr_json_get_str(blockers[i], "metadata", "namespace", NULL),
                                       mr_json_get_str(blockers[i], "metadata", "name", NULL),
                                       mr_json_get_str(pdb, "metadata", "name", NULL));
                                blocked++;
                        }
                }
        }
        if (plan->n_unplanned > 0) {
                printf("\nnot in any group (they keep their current ztunnel):");
                for (size_t i = 0; i < plan->n_unplanned; i++)
                        printf(" %s", plan->unplanned[i]);
                printf("\n");
        }
        *ret_blocked += blocked;
        return 0;
}

/* A phase with a module: its one-line description, and what it would touch now. */
static int plan_phase(KubeClient *client, const RolloutSpec *spec, size_t i, unsigned *blocked)
{
        PhaseKind kind = spec->phases[i];
        const PhaseOps *ops = phase_ops(kind);
        const void *ps = spec->phase_spec[kind];
        _cleanup_free_ char *what = NULL;
        MrError err = {};

        printf("\nphase %s\n", phase_kind_to_string(kind));
        if (ops && ops->describe && ops->describe(ps, &what) < 0)
                return log_oom(), 1;
        printf("  %s\n", what ? what : "(no description)");
        if (kind == PHASE_SIDECAR) {
                _cleanup_strv_free_ char **names = NULL;
                if (sidecar_spec_namespaces(client, ps, &names, &err) < 0) {
                        printf("  BLOCKS: %s\n", err.message);
                        (*blocked)++;
                        return 0;
                }
                printf("  namespaces, in order:");
                for (char **n = names; *n; n++)
                        printf(" %s", *n);
                printf("\n");
        } else if (kind == PHASE_GATEWAY) {
                const GatewaySpec *g = ps;
                _cleanup_(json_object_putp) json_object *svc = NULL, *dnew = NULL;
                _cleanup_free_ char *path = NULL;
                KubeStatus st;
                if (kube_path(&KUBE_SERVICES, g->service_namespace, g->service_name, NULL, &path) < 0)
                        return log_oom(), 1;
                if (kube_get(client, path, &svc, &st) < 0) {
                        printf("  BLOCKS: Service %s/%s: %s\n", g->service_namespace, g->service_name,
                               st.message[0] ? st.message : "cannot be read");
                        (*blocked)++;
                        return 0;
                }
                printf("  Service %s/%s selects %s=%s now\n", g->service_namespace, g->service_name, g->selector_key,
                       strna(mr_json_get_str(svc, "spec", "selector", g->selector_key, NULL)));
                if (gateway_find_deployment(client, g, svc, g->to, g->deployment != NULL, &dnew, &err) < 0) {
                        printf("  BLOCKS: %s\n", err.message);
                        (*blocked)++;
                } else
                        printf("  new gateway: Deployment %s/%s\n", g->service_namespace,
                               mr_json_get_str(dnew, "metadata", "name", NULL));
        }
        return 0;
}

int cmd_plan(Cli *cli, int argc, char **argv)
{
        static const struct option options[] = {
                { "filename", required_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                CLI_COMMON_OPTIONS,
                {},
        };
        _cleanup_(rollout_spec_freep) RolloutSpec *spec = NULL;
        _cleanup_(kube_client_freep) KubeClient *client = NULL;
        const char *file = NULL;
        unsigned blocked = 0;
        MrError err = {};
        int c, k;

        while ((c = getopt_long(argc, argv, "f:h", options, NULL)) >= 0) {
                if (c == 'f')
                        file = optarg;
                else if (c == 'h') {
                        printf("Usage: meshroll plan -f ROLLOUT.yaml [OPTIONS]\n\n"
                               "Shows the phases in order: for ztunnel the node groups, the pods a drain\n"
                               "would evict and what would block; for the others what they would do (the\n"
                               "sidecar phase's namespaces in order, the gateway's Service and Deployments),\n"
                               "without changing anything.\n\n"
                               "  -f, --filename FILE       the Rollout document (YAML)\n" CLI_COMMON_HELP);
                        return 0;
                } else if ((k = cli_parse_common(cli, c, optarg)) != 0)
                        return k;
        }
        if (!file)
                return cli_usage_error("plan", "-f ROLLOUT.yaml is required");
        if (rollout_spec_load_file(file, &spec, &err) < 0)
                return cli_usage_error("plan", "%s", err.message);
        if ((k = cli_client(cli, NULL, &client)) != 0)
                return k;

        printf("Phases:");
        for (size_t i = 0; i < spec->n_phases; i++)
                printf("%s %s", i ? "," : "", phase_kind_to_string(spec->phases[i]));
        printf("\n");
        if (rollout_spec_has_phase(spec, PHASE_ZTUNNEL) && (k = plan_ztunnel(client, spec, &blocked)) != 0)
                return k;
        for (size_t i = 0; i < spec->n_phases; i++)
                if (spec->phases[i] != PHASE_ZTUNNEL && (k = plan_phase(client, spec, i, &blocked)) != 0)
                        return k;
        printf("\n%s\n", blocked ? "Something would block: see BLOCKS above." : "Nothing blocks right now.");
        return blocked ? 1 : 0;
}

