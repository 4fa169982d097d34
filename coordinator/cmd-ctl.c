/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd-ctl.c — the operator's handles on a running Rollout: status, pause,
 * resume, rollback (of a ztunnel group with --group, of the sidecar or
 * gateway phase with --phase, of one sidecar namespace with --namespace),
 * abort. `status` shows every phase's state and message, the ztunnel
 * groups and the sidecar phase's namespaces (or the status as JSON with
 * -o json). Each is one read or one patch; the engine (in
 * `meshroll run` or the controller) acts on it at its next tick, so these
 * work the same whoever is running the rollout.
 */
#include <stdio.h>
#include <time.h>

#include "meshroll/json-util.h"
#include "meshroll/log.h"
#include "cli.h"
#include "status.h"

typedef struct CtlArgs {
        const char *name;
        const char *group;     /* rollback --group */
        const char *phase;     /* rollback --phase */
        const char *ns;        /* rollback --namespace */
        const char *output;    /* status -o */
} CtlArgs;

static int parse_name(Cli *cli, const char *cmd, int argc, char **argv, const char *usage, CtlArgs *a)
{
        static const struct option options[] = {
                { "group", required_argument, NULL, 'g' },
                { "phase", required_argument, NULL, 'p' },
                { "namespace", required_argument, NULL, 'n' },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                CLI_COMMON_OPTIONS,
                {},
        };
        bool rollback = streq(cmd, "rollback"), status = streq(cmd, "status");
        int c, k;

        *a = (CtlArgs){};
        while ((c = getopt_long(argc, argv, "g:p:n:o:h", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: meshroll %s %s\n\n" CLI_COMMON_HELP, cmd, usage);
                        return -1;
                } else if ((c == 'g' || c == 'p' || c == 'n') && !rollback)
                        return cli_usage_error(cmd, "--group, --phase and --namespace are only for rollback");
                else if (c == 'o' && !status)
                        return cli_usage_error(cmd, "-o is only for status");
                else if (c == 'g')
                        a->group = optarg;
                else if (c == 'p')
                        a->phase = optarg;
                else if (c == 'n')
                        a->ns = optarg;
                else if (c == 'o')
                        a->output = optarg;
                else if ((k = cli_parse_common(cli, c, optarg)) != 0)
                        return k;
        }
        if (optind + 1 != argc)
                return cli_usage_error(cmd, "expected exactly one Rollout name (usage: meshroll %s %s)", cmd, usage);
        a->name = argv[optind];
        if (a->output && !streq(a->output, "json") && !streq(a->output, "table"))
                return cli_usage_error(cmd, "-o: expected json or table, got \"%s\"", a->output);
        if (!rollback)
                return 0;
        if (!!a->group == !!a->phase)
                return cli_usage_error(cmd, "expected either --group NAME or --phase sidecar|gateway|traffic");
        if (a->phase && !streq(a->phase, "sidecar") && !streq(a->phase, "gateway") && !streq(a->phase, "traffic"))
                return cli_usage_error(cmd,
                                       "--phase: expected sidecar, gateway or traffic, got \"%s\" (ztunnel rolls back by "
                                       "--group)",
                                       a->phase);
        if (a->ns && !streq_ptr(a->phase, "sidecar"))
                return cli_usage_error(cmd, "--namespace is only for --phase sidecar");
        if (a->ns && (isempty(a->ns) || strchr(a->ns, '/')))
                return cli_usage_error(cmd, "--namespace: expected a namespace name, got \"%s\"", a->ns);
        return 0;
}

/* Merge-patches the Rollout; prints what was asked. */
static int patch_rollout(Cli *cli, const char *name, const char *json, const char *done)
{
        _cleanup_(kube_client_freep) KubeClient *client = NULL;
        _cleanup_(json_object_putp) json_object *patch = NULL;
        _cleanup_free_ char *path = NULL;
        KubeStatus st;
        int k;

        if ((k = cli_client(cli, NULL, &client)) != 0)
                return k;
        if (mr_json_parse(json, strlen(json), 1 << 16, &patch) < 0 || kube_path(&KUBE_ROLLOUTS, NULL, name, NULL, &path) < 0) {
                log_oom();
                return 1;
        }
        k = kube_patch(client, path, KUBE_PATCH_MERGE, patch, NULL, &st);
        if (k == -ENOENT) {
                log_error("Rollout %s not found", name);
                return 1;
        }
        if (k < 0) {
                log_error_errno(k, "Cannot update Rollout %s: %s", name, st.message[0] ? st.message : "%m");
                return 1;
        }
        printf("rollout %s: %s\n", name, done);
        return 0;
}

int cmd_pause(Cli *cli, int argc, char **argv)
{
        CtlArgs a;
        int k = parse_name(cli, "pause", argc, argv, "NAME", &a);
        if (k != 0)
                return k < 0 ? 0 : k;
        const char *name = a.name;
        return patch_rollout(cli, name, "{\"spec\":{\"paused\":true}}", "pause requested (after the current step)");
}

int cmd_resume(Cli *cli, int argc, char **argv)
{
        CtlArgs a;
        int k = parse_name(cli, "resume", argc, argv, "NAME", &a);
        if (k != 0)
                return k < 0 ? 0 : k;
        const char *name = a.name;
        return patch_rollout(cli, name, "{\"spec\":{\"paused\":false}}", "resume requested");
}

int cmd_abort(Cli *cli, int argc, char **argv)
{
        CtlArgs a;
        int k = parse_name(cli, "abort", argc, argv, "NAME", &a);
        if (k != 0)
                return k < 0 ? 0 : k;
        const char *name = a.name;
        return patch_rollout(cli, name, "{\"metadata\":{\"annotations\":{\"meshroll.io/abort\":\"true\"}}}",
                             "abort requested: the current group is uncordoned and the rollout marked Failed");
}

int cmd_rollback(Cli *cli, int argc, char **argv)
{
        _cleanup_(json_object_putp) json_object *patch = NULL;
        _cleanup_free_ char *value = NULL;
        CtlArgs a;
        int k = parse_name(cli, "rollback", argc, argv,
                           "NAME (--group GROUP | --phase sidecar|gateway|traffic [--namespace NS])", &a);
        if (k != 0)
                return k < 0 ? 0 : k;
        patch = json_object_new_object();
        json_object *ann = patch ? mr_json_ensure_object(patch, "metadata", "annotations", NULL) : NULL;
        if (!ann || (a.phase && asprintf(&value, "%s%s%s", a.phase, a.ns ? "/" : "", strempty(a.ns)) < 0) ||
            mr_json_set_str(ann, a.group ? "meshroll.io/rollback" : "meshroll.io/rollback-phase",
                            a.group ? a.group : value) < 0) {
                log_oom();
                return 1;
        }
        return patch_rollout(cli, a.name, mr_json_compact(patch),
                             a.group ? "rollback of the group requested"
                             : a.ns  ? "rollback of the namespace requested (relabelled back and restarted)"
                                     : "rollback of the phase requested");
}

static const char *ago(usec_t t, char *buf, size_t size)
{
        if (!t)
                return "-";
        usec_t now = mr_now_realtime(NULL);
        return mr_duration_format(now > t ? now - t : 0, buf, size);
}

/* The sidecar phase's namespaces (its detail, borrowed): batch, state, Deployments restarted. */
static void print_sidecar(json_object *detail)
{
        json_object *nss = mr_json_get(detail, "namespaces", NULL);
        if (!nss || !json_object_is_type(nss, json_type_array) || json_object_array_length(nss) == 0)
                return;
        printf("\n%-24s %-6s %-12s %-12s %s\n", "NAMESPACE", "BATCH", "STATE", "DEPLOYMENTS", "FROM");
        for (size_t i = 0; i < json_object_array_length(nss); i++) {
                json_object *n = json_object_array_get_idx(nss, i);
                json_object *deps = mr_json_get(n, "deployments", NULL);
                size_t total = 0, done = 0;
                int64_t batch = 0;
                char d[32] = "-";
                (void)mr_json_get_int(&batch, n, "batch", NULL);
                for (size_t j = 0; deps && json_object_is_type(deps, json_type_array) &&
                                   j < json_object_array_length(deps);
                     j++) {
                        const char *st = mr_json_get_str(json_object_array_get_idx(deps, j), "state", NULL);
                        if (streq_ptr(st, "Skipped") || streq_ptr(st, "Gone"))
                                continue;
                        total++;
                        done += streq_ptr(st, "Done") || streq_ptr(st, "Undone");
                }
                if (deps)
                        snprintf(d, sizeof(d), "%zu/%zu", done, total);
                printf("%-24s %-6lld %-12s %-12s %s\n", strna(mr_json_get_str(n, "name", NULL)), (long long)batch + 1,
                       strna(mr_json_get_str(n, "state", NULL)), d, strna(mr_json_get_str(n, "from", NULL)));
        }
}

int cmd_status(Cli *cli, int argc, char **argv)
{
        _cleanup_(kube_client_freep) KubeClient *client = NULL;
        _cleanup_(json_object_putp) json_object *obj = NULL;
        _cleanup_(rollout_status_freep) RolloutStatus *s = NULL;
        _cleanup_free_ char *path = NULL;
        const char *name;
        MrError err = {};
        KubeStatus st;
        char buf[32];
        CtlArgs a;

        int k = parse_name(cli, "status", argc, argv, "NAME [-o table|json]", &a);
        if (k != 0)
                return k < 0 ? 0 : k;
        name = a.name;
        if ((k = cli_client(cli, NULL, &client)) != 0)
                return k;
        if (kube_path(&KUBE_ROLLOUTS, NULL, name, NULL, &path) < 0) {
                log_oom();
                return 1;
        }
        k = kube_get(client, path, &obj, &st);
        if (k < 0) {
                log_error_errno(k, "Cannot read Rollout %s: %s", name, st.message[0] ? st.message : "%m");
                return 1;
        }
        if (streq_ptr(a.output, "json")) {
                json_object *status = mr_json_get(obj, "status", NULL);
                printf("%s\n", status ? json_object_to_json_string_ext(status, JSON_C_TO_STRING_PRETTY |
                                                                                   JSON_C_TO_STRING_NOSLASHESCAPE)
                                       : "{}");
                return 0;
        }
        k = rollout_status_from_json(mr_json_get(obj, "status", NULL), &s, &err);
        if (k < 0) {
                log_error("Rollout %s has a status this meshroll cannot read: %s", name, err.message);
                return 1;
        }
        printf("Rollout:  %s\nPhase:    %s%s%s\n", name, rollout_phase_to_string(s->phase),
               isempty(s->reason) ? "" : " — ", strempty(s->reason));
        if (!isempty(s->message))
                printf("Message:  %s\n", s->message);
        if (s->target.hash)
                printf("Revision: %s (previous %s)\n", s->target.hash, strna(s->previous.hash));
        if (s->n_phases == 0 && s->n_groups == 0) {
                printf("Phases:   not started yet (no coordinator has picked the rollout up)\n");
                return 0;
        }
        if (s->n_phases > 0) {
                printf("\n%-10s %-12s %-10s %s\n", "PHASE", "STATE", "SINCE", "MESSAGE");
                for (size_t i = 0; i < s->n_phases; i++) {
                        const PhaseStatus *p = &s->phases[i];
                        printf("%-10s %-12s %-10s %s\n", phase_kind_to_string(p->kind), phase_state_to_string(p->state),
                               ago(p->since, buf, sizeof(buf)), strempty(p->message));
                }
        }
        if (s->n_groups > 0) {
                printf("\n%-20s %-12s %-6s %-10s %-6s %s\n", "GROUP", "STATE", "NODES", "SINCE", "CONNS", "MESSAGE");
                for (size_t i = 0; i < s->n_groups; i++) {
                        const GroupStatus *g = &s->groups[i];
                        char conns[24] = "-";
                        if (g->connections >= 0)
                                snprintf(conns, sizeof(conns), "%lld", (long long)g->connections);
                        printf("%-20s %-12s %-6zu %-10s %-6s %s\n", g->name, group_state_to_string(g->state), g->n_nodes,
                               ago(g->since, buf, sizeof(buf)), conns, strempty(g->message));
                }
        }
        for (size_t i = 0; i < s->n_phases; i++)
                if (s->phases[i].kind == PHASE_SIDECAR)
                        print_sidecar(s->phases[i].detail);
        return 0;
}
