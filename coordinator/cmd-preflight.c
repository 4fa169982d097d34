/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd-preflight.c — `meshroll preflight [-f ROLLOUT.yaml | NAME] [-o table|wide|json]`:
 * the upgrade's checks (preflight.h) against the cluster, changing nothing.
 *
 * Without a Rollout the checks run cluster-wide with defaults (every
 * sidecar namespace may be restarted, ztunnel istio-system/ztunnel). The
 * table is kubectl's: upper-case headers, columns padded to the widest
 * cell; `wide` adds why and the fix; `json` is the whole report.
 * Exit: 0 without errors (warnings allowed), 1 with errors or when the API
 * failed, 2 for bad input.
 */
#include <stdio.h>

#include "meshroll/json-util.h"
#include "meshroll/log.h"
#include "cli.h"
#include "preflight.h"
#include "spec.h"

#define MAX_SKIP 64

typedef enum Output { OUTPUT_TABLE, OUTPUT_WIDE, OUTPUT_JSON } Output;

static void print_table(const PreflightReport *r, bool wide)
{
        static const char *const headers[] = { "SEVERITY", "CHECK", "OBJECT", "MESSAGE", "WHY", "FIX" };
        size_t cols = wide ? 6 : 4, width[6];
        _cleanup_free_ char **objects = calloc(r->n_findings + 1, sizeof(char *));

        if (!objects) {
                log_oom();
                return;
        }
        for (size_t c = 0; c < cols; c++)
                width[c] = strlen(headers[c]);
        for (size_t i = 0; i < r->n_findings; i++) {
                const PreflightFinding *f = &r->findings[i];
                if (asprintf(&objects[i], "%s/%s%s%s", f->kind, strempty(f->namespace), f->namespace ? "/" : "",
                             f->name) < 0)
                        objects[i] = NULL;
                const char *cells[] = { preflight_severity_to_string(f->severity), f->check, strna(objects[i]),
                                        f->message, f->why, f->fix };
                for (size_t c = 0; c < cols; c++)
                        width[c] = MAX(width[c], strlen(cells[c]));
        }
        for (size_t c = 0; c < cols; c++)
                printf("%-*s%s", c + 1 < cols ? (int)width[c] : 0, headers[c], c + 1 < cols ? "   " : "\n");
        for (size_t i = 0; i < r->n_findings; i++) {
                const PreflightFinding *f = &r->findings[i];
                const char *cells[] = { preflight_severity_to_string(f->severity), f->check, strna(objects[i]),
                                        f->message, f->why, f->fix };
                for (size_t c = 0; c < cols; c++)
                        printf("%-*s%s", c + 1 < cols ? (int)width[c] : 0, cells[c], c + 1 < cols ? "   " : "\n");
                free(objects[i]);
        }
}

/* The Rollout NAME from the cluster, as its spec. Exit code on failure (after logging). */
static int load_named(KubeClient *client, const char *name, RolloutSpec **ret)
{
        _cleanup_(json_object_putp) json_object *obj = NULL;
        _cleanup_free_ char *path = NULL;
        MrError err = {};
        KubeStatus st = {};
        int r;

        if (kube_path(&KUBE_ROLLOUTS, NULL, name, NULL, &path) < 0)
                return log_oom(), 1;
        r = kube_get(client, path, &obj, &st);
        if (r == -ENOENT)
                return cli_usage_error("preflight", "no Rollout \"%s\" in the cluster", name);
        if (r < 0) {
                log_error_errno(r, "Cannot read Rollout %s: %s", name, st.message[0] ? st.message : "%m");
                return 1;
        }
        if (rollout_spec_from_json(obj, ret, &err) < 0)
                return cli_usage_error("preflight", "Rollout %s: %s", name, err.message);
        return 0;
}

int cmd_preflight(Cli *cli, int argc, char **argv)
{
        static const struct option options[] = {
                { "filename", required_argument, NULL, 'f' },
                { "output", required_argument, NULL, 'o' },
                { "skip", required_argument, NULL, 's' },
                { "istio-namespace", required_argument, NULL, 'i' },
                { "help", no_argument, NULL, 'h' },
                CLI_COMMON_OPTIONS,
                {},
        };
        _cleanup_(rollout_spec_freep) RolloutSpec *spec = NULL;
        _cleanup_(kube_client_freep) KubeClient *client = NULL;
        _cleanup_(preflight_report_freep) PreflightReport *report = NULL;
        _cleanup_strv_free_ char **skip = calloc(MAX_SKIP + 1, sizeof(char *));
        PreflightOptions po = {};
        const char *file = NULL, *name = NULL;
        Output output = OUTPUT_TABLE;
        size_t n_skip = 0;
        MrError err = {};
        int c, k;

        if (!skip)
                return log_oom(), 1;
        while ((c = getopt_long(argc, argv, "f:o:h", options, NULL)) >= 0) {
                if (c == 'f')
                        file = optarg;
                else if (c == 'o') {
                        if (streq(optarg, "table"))
                                output = OUTPUT_TABLE;
                        else if (streq(optarg, "wide"))
                                output = OUTPUT_WIDE;
                        else if (streq(optarg, "json"))
                                output = OUTPUT_JSON;
                        else
                                return cli_usage_error("preflight", "invalid -o \"%s\": expected table, wide or json",
                                                       optarg);
                } else if (c == 's') {
                        _cleanup_free_ char *copy = strdup(optarg);
                        char *save = NULL;
                        if (!copy)
                                return log_oom(), 1;
                        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                                if (n_skip == MAX_SKIP)
                                        return cli_usage_error("preflight", "--skip: at most %d checks", MAX_SKIP);
                                if (!(skip[n_skip++] = strdup(t)))
                                        return log_oom(), 1;
                        }
                } else if (c == 'i')
                        po.istio_namespace = optarg;
                else if (c == 'h') {
                        printf("Usage: meshroll preflight [-f ROLLOUT.yaml | NAME] [-o table|wide|json] [OPTIONS]\n\n"
                               "Checks, from the API alone, what would make the upgrade fail or drop traffic:\n"
                               "injection labels, revisions and tags, overlapping webhooks, the target control\n"
                               "plane, version skew, ztunnel's update strategy, the agents, PodDisruptionBudgets\n"
                               "and the Deployments that will be drained or restarted. Without a Rollout the\n"
                               "checks run cluster-wide with defaults. Exit 1 when any finding is an error.\n\n"
                               "  -f, --filename FILE       the Rollout document (YAML)\n"
                               "  NAME                      a Rollout in the cluster\n"
                               "  -o, --output FORMAT       table (default), wide (adds why and fix), json\n"
                               "  --skip CHECK[,CHECK…]     checks not to run (docs/preflight.md lists them)\n"
                               "  --istio-namespace NS      where istiod and the tag Services live (default: the\n"
                               "                            ztunnel target's namespace, istio-system)\n" CLI_COMMON_HELP);
                        return 0;
                } else if ((k = cli_parse_common(cli, c, optarg)) != 0)
                        return k;
        }
        if (optind < argc)
                name = argv[optind++];
        if (optind < argc)
                return cli_usage_error("preflight", "unexpected argument \"%s\"", argv[optind]);
        if (file && name)
                return cli_usage_error("preflight", "give -f ROLLOUT.yaml or a Rollout NAME, not both");
        if (file && rollout_spec_load_file(file, &spec, &err) < 0)
                return cli_usage_error("preflight", "%s", err.message);
        if ((k = cli_client(cli, NULL, &client)) != 0)
                return k;
        if (name && (k = load_named(client, name, &spec)) != 0)
                return k;

        po.skip = skip;
        k = preflight_run(client, spec, &po, &report, &err);
        if (k == -EINVAL)
                return cli_usage_error("preflight", "%s", err.message);
        if (k < 0) {
                log_error("%s", err.message);
                return 1;
        }
        if (output == OUTPUT_JSON) {
                _cleanup_(json_object_putp) json_object *j = preflight_report_to_json(report);
                if (!j)
                        return log_oom(), 1;
                printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        } else {
                if (report->n_findings > 0) {
                        print_table(report, output == OUTPUT_WIDE);
                        printf("\n");
                }
                printf("%u checks: %u errors, %u warnings, %u info%s\n", report->n_checks,
                       report->count[PREFLIGHT_ERROR], report->count[PREFLIGHT_WARNING], report->count[PREFLIGHT_INFO],
                       report->n_findings && output == OUTPUT_TABLE ? " (-o wide: why and how to fix)" : "");
        }
        return report->count[PREFLIGHT_ERROR] > 0 ? 1 : 0;
}
