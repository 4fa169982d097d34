/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd-ctl.c — the operator's handles on a running Rollout: status, pause,
 * resume, rollback, abort. Each is one read or one patch; the engine (in
 * `meshroll run` or the controller) acts on it at its next tick, so these
 * work the same whoever is running the rollout.
 */
#include <stdio.h>
#include <time.h>

#include "meshroll/json-util.h"
#include "meshroll/log.h"
#include "cli.h"
#include "status.h"

static int parse_name(Cli *cli, const char *cmd, int argc, char **argv, const char *usage, const char **ret_name,
                      const char **ret_group)
{
        static const struct option options[] = {
                { "group", required_argument, NULL, 'g' },
                { "help", no_argument, NULL, 'h' },
                CLI_COMMON_OPTIONS,
                {},
        };
        int c, k;

        *ret_name = NULL;
        if (ret_group)
                *ret_group = NULL;
        while ((c = getopt_long(argc, argv, "g:h", options, NULL)) >= 0) {
                if (c == 'g' && ret_group)
                        *ret_group = optarg;
                else if (c == 'h') {
                        printf("Usage: meshroll %s %s\n\n" CLI_COMMON_HELP, cmd, usage);
                        return -1;
                } else if (c == 'g')
                        return cli_usage_error(cmd, "--group is only for rollback");
                else if ((k = cli_parse_common(cli, c, optarg)) != 0)
                        return k;
        }
        if (optind + 1 != argc)
                return cli_usage_error(cmd, "expected exactly one Rollout name (usage: meshroll %s %s)", cmd, usage);
        *ret_name = argv[optind];
        if (ret_group && !*ret_group)
                return cli_usage_error(cmd, "--group NAME is required");
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
        const char *name;
        int k = parse_name(cli, "pause", argc, argv, "NAME", &name, NULL);
        if (k != 0)
                return k < 0 ? 0 : k;
        return patch_rollout(cli, name, "{\"spec\":{\"paused\":true}}", "pause requested (after the current step)");
}

int cmd_resume(Cli *cli, int argc, char **argv)
{
        const char *name;
        int k = parse_name(cli, "resume", argc, argv, "NAME", &name, NULL);
        if (k != 0)
                return k < 0 ? 0 : k;
        return patch_rollout(cli, name, "{\"spec\":{\"paused\":false}}", "resume requested");
}

int cmd_abort(Cli *cli, int argc, char **argv)
{
        const char *name;
        int k = parse_name(cli, "abort", argc, argv, "NAME", &name, NULL);
        if (k != 0)
                return k < 0 ? 0 : k;
        return patch_rollout(cli, name, "{\"metadata\":{\"annotations\":{\"meshroll.io/abort\":\"true\"}}}",
                             "abort requested: the current group is uncordoned and the rollout marked Failed");
}

int cmd_rollback(Cli *cli, int argc, char **argv)
{
        _cleanup_(json_object_putp) json_object *patch = NULL;
        const char *name, *group;
        int k = parse_name(cli, "rollback", argc, argv, "NAME --group GROUP", &name, &group);
        if (k != 0)
                return k < 0 ? 0 : k;
        patch = json_object_new_object();
        json_object *ann = patch ? mr_json_ensure_object(patch, "metadata", "annotations", NULL) : NULL;
        if (!ann || mr_json_set_str(ann, "meshroll.io/rollback", group) < 0) {
                log_oom();
                return 1;
        }
        return patch_rollout(cli, name, mr_json_compact(patch), "rollback of the group requested");
}

static const char *ago(usec_t t, char *buf, size_t size)
{
        if (!t)
                return "-";
        usec_t now = mr_now_realtime(NULL);
        return mr_duration_format(now > t ? now - t : 0, buf, size);
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

        int k = parse_name(cli, "status", argc, argv, "NAME", &name, NULL);
        if (k != 0)
                return k < 0 ? 0 : k;
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
        if (s->n_groups == 0) {
                printf("Groups:   not computed yet (no coordinator has picked the rollout up)\n");
                return 0;
        }
        printf("\n%-20s %-12s %-6s %-10s %-6s %s\n", "GROUP", "STATE", "NODES", "SINCE", "CONNS", "MESSAGE");
        for (size_t i = 0; i < s->n_groups; i++) {
                const GroupStatus *g = &s->groups[i];
                char conns[24] = "-";
                if (g->connections >= 0)
                        snprintf(conns, sizeof(conns), "%lld", (long long)g->connections);
                printf("%-20s %-12s %-6zu %-10s %-6s %s\n", g->name, group_state_to_string(g->state), g->n_nodes,
                       ago(g->since, buf, sizeof(buf)), conns, strempty(g->message));
        }
        return 0;
}
