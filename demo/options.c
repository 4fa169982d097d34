/* SPDX-License-Identifier: Apache-2.0 */
/*
 * options.c — meshroll-demo's flags (options.h). Numbers are parsed with
 * strtoul/strtod and checked against their ranges; a bad value gets one
 * message that names the flag and the expected range, and exit code 2.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>

#include "meshroll-config.h"
#include "meshroll/errors.h"
#include "meshroll/time-util.h"
#include "options.h"

#ifndef MESHROLL_MANIFESTS_DIR
#define MESHROLL_MANIFESTS_DIR "/usr/share/meshroll/manifests"
#endif

enum {
        ARG_NODES = 0x100,
        ARG_GROUPS,
        ARG_CONNECTIONS,
        ARG_SPEED,
        ARG_RATE,
        ARG_SCENARIO,
        ARG_FAULT,
        ARG_REPORT_JSON,
        ARG_SKIP_INPLACE,
        ARG_TIMEOUT,
        ARG_MANIFESTS,
        ARG_NEW_IMAGE,
        ARG_CLIENT,
        ARG_SERVICE,
        ARG_VERBOSE,
        ARG_VERSION,
        ARG_TRAFFIC,
        ARG_FAIL_SHARE,
        ARG_PROMETHEUS,
        ARG_TARGETS_FILE,
        ARG_STEP_PAUSE,
};

static void help(void)
{
        printf("Usage: meshroll-demo [OPTIONS]   (also: meshroll demo [OPTIONS], make demo)\n\n"
               "Upgrades ztunnel on a simulated cluster with real loopback traffic, first with meshroll\n"
               "(drain, wait for connections, replace, uncordon — group by group), then in place with a\n"
               "RollingUpdate, and prints both side by side: requests, failures, connections reset.\n\n"
               "  --nodes N             simulated nodes (default 12)\n"
               "  --groups G            zones, one node group each, after a canary of 1 node (default 4)\n"
               "  --connections C       long-lived client connections (default 200)\n"
               "  --rate R              requests per second on each connection (default 2)\n"
               "  --speed X             simulated time runs X times faster (default 5)\n"
               "  --scenario FILE       a meshroll-kubesim scenario instead of the generated one\n"
               "  --client NS/SELECTOR  the client pods (default shop/app=frontend)\n"
               "  --service NS/NAME     the Service they call (default shop/orders)\n"
               "  --new-image IMAGE     the ztunnel image to upgrade to (default " DEMO_NEW_IMAGE ")\n"
               "  --fault never-ready   the new ztunnel never becomes Ready: watch the canary roll back\n"
               "  --skip-inplace        skip the in-place comparison run\n"
               "  --report-json FILE    also write the report as JSON (docs/demo.md)\n"
               "  --timeout DUR         bound on the whole demo (default 600s)\n"
               "  --manifests DIR       where crd-rollout.yaml is (default %s)\n"
               "  --verbose             agents and coordinator log at info level\n"
               "\nThe traffic phase instead (an application's version switch by Istio route weights):\n"
               "  --traffic             shift shop/reviews from v1 to v2 in steps 10, 50, 100 %%\n"
               "  --fail-share F        v2 answers 503 to this share of its requests (0 to 1)\n"
               "  --prometheus URL      gate each step on v2's 5xx ratio <= 0.1 %% from this Prometheus\n"
               "  --targets-file FILE   write the nodes' /metrics addresses there (Prometheus file_sd)\n"
               "  --step-pause DUR      each step's pause (default 5s)\n"
               "\nExit status: 0 when meshroll's run reset no connection and failed no request (with\n"
               "--fault: and rolled the canary back), 1 otherwise, 2 for bad flags, 130 when interrupted.\n",
               MESHROLL_MANIFESTS_DIR);
}

static int bad(const char *flag, const char *value, const char *expected)
{
        fprintf(stderr, "meshroll-demo: %s \"%s\": expected %s\n", flag, value, expected);
        return -MR_ECONFIG;
}

static int parse_uint(const char *flag, const char *s, unsigned min, unsigned max, unsigned *ret)
{
        char *end;
        char expected[64];
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        snprintf(expected, sizeof(expected), "an integer from %u to %u", min, max);
        if (errno != 0 || end == s || *end || s[0] == '-' || v < min || v > max)
                return bad(flag, s, expected);
        *ret = (unsigned)v;
        return 0;
}

static int parse_double(const char *flag, const char *s, double min, double max, double *ret)
{
        char *end;
        char expected[64];
        errno = 0;
        double v = strtod(s, &end);
        snprintf(expected, sizeof(expected), "a number from %g to %g", min, max);
        if (errno != 0 || end == s || *end || !isfinite(v) || v < min || v > max)
                return bad(flag, s, expected);
        *ret = v;
        return 0;
}

/* "ns/rest" → two owned strings. */
static int split_slash(const char *flag, const char *s, char **ret_ns, char **ret_rest)
{
        const char *slash = strchr(s, '/');
        if (!slash || slash == s || !slash[1])
                return bad(flag, s, "NAMESPACE/VALUE");
        char *ns = strndup(s, (size_t)(slash - s)), *rest = strdup(slash + 1);
        if (!ns || !rest) {
                free(ns);
                free(rest);
                return -ENOMEM;
        }
        free(*ret_ns);
        free(*ret_rest);
        *ret_ns = ns;
        *ret_rest = rest;
        return 0;
}

void demo_options_done(DemoOptions *o)
{
        free(o->client_namespace);
        free(o->client_selector);
        free(o->service);
        *o = (DemoOptions){};
}

int demo_options_parse(int argc, char **argv, DemoOptions *o)
{
        static const struct option options[] = {
            {"nodes", required_argument, NULL, ARG_NODES},
            {"groups", required_argument, NULL, ARG_GROUPS},
            {"connections", required_argument, NULL, ARG_CONNECTIONS},
            {"speed", required_argument, NULL, ARG_SPEED},
            {"rate", required_argument, NULL, ARG_RATE},
            {"scenario", required_argument, NULL, ARG_SCENARIO},
            {"fault", required_argument, NULL, ARG_FAULT},
            {"report-json", required_argument, NULL, ARG_REPORT_JSON},
            {"skip-inplace", no_argument, NULL, ARG_SKIP_INPLACE},
            {"timeout", required_argument, NULL, ARG_TIMEOUT},
            {"manifests", required_argument, NULL, ARG_MANIFESTS},
            {"new-image", required_argument, NULL, ARG_NEW_IMAGE},
            {"client", required_argument, NULL, ARG_CLIENT},
            {"service", required_argument, NULL, ARG_SERVICE},
            {"verbose", no_argument, NULL, ARG_VERBOSE},
            {"traffic", no_argument, NULL, ARG_TRAFFIC},
            {"fail-share", required_argument, NULL, ARG_FAIL_SHARE},
            {"prometheus", required_argument, NULL, ARG_PROMETHEUS},
            {"targets-file", required_argument, NULL, ARG_TARGETS_FILE},
            {"step-pause", required_argument, NULL, ARG_STEP_PAUSE},
            {"version", no_argument, NULL, ARG_VERSION},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        char *service_ns = NULL, *service_name = NULL;
        bool nodes_set = false, groups_set = false, new_image_set = false;
        int c, r = 0;

        *o = (DemoOptions){.nodes = 12,
                           .groups = 4,
                           .connections = 200,
                           .speed = 5,
                           .rate = 2,
                           .timeout = 600 * USEC_PER_SEC,
                           .manifests = MESHROLL_MANIFESTS_DIR,
                           .new_image = DEMO_NEW_IMAGE,
                           .step_pause = 5 * USEC_PER_SEC};
        o->client_namespace = strdup("shop");
        o->client_selector = strdup("app=frontend");
        o->service = strdup("shop/orders");
        if (!o->client_namespace || !o->client_selector || !o->service)
                return -ENOMEM;

        optind = 1;
        while (r >= 0 && (c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case ARG_NODES:
                        r = parse_uint("--nodes", optarg, 1, 100, &o->nodes);
                        nodes_set = true;
                        break;
                case ARG_GROUPS:
                        r = parse_uint("--groups", optarg, 1, 26, &o->groups);
                        groups_set = true;
                        break;
                case ARG_CONNECTIONS:
                        r = parse_uint("--connections", optarg, 1, 3000, &o->connections);
                        break;
                case ARG_SPEED:
                        r = parse_double("--speed", optarg, 0.1, 100, &o->speed);
                        break;
                case ARG_RATE:
                        r = parse_double("--rate", optarg, 0.1, 100, &o->rate);
                        break;
                case ARG_SCENARIO:
                        o->scenario = optarg;
                        break;
                case ARG_FAULT:
                        if (!streq(optarg, "never-ready"))
                                r = bad("--fault", optarg, "never-ready");
                        o->never_ready = true;
                        break;
                case ARG_REPORT_JSON:
                        o->report_json = optarg;
                        break;
                case ARG_SKIP_INPLACE:
                        o->skip_inplace = true;
                        break;
                case ARG_TIMEOUT:
                        if (mr_duration_parse(optarg, &o->timeout) < 0 || o->timeout < USEC_PER_SEC)
                                r = bad("--timeout", optarg,
                                        "a duration of at least 1s (\"600s\", \"10m\")");
                        break;
                case ARG_MANIFESTS:
                        o->manifests = optarg;
                        break;
                case ARG_NEW_IMAGE:
                        if (isempty(optarg) || strchr(optarg, '"') || strchr(optarg, ','))
                                r = bad("--new-image", optarg, "an image reference");
                        o->new_image = optarg;
                        new_image_set = true;
                        break;
                case ARG_CLIENT:
                        r = split_slash("--client", optarg, &o->client_namespace, &o->client_selector);
                        break;
                case ARG_SERVICE:
                        r = split_slash("--service", optarg, &service_ns, &service_name);
                        if (r >= 0) {
                                free(o->service);
                                o->service = strdup(optarg);
                                r = o->service ? 0 : -ENOMEM;
                        }
                        break;
                case ARG_VERBOSE:
                        o->verbose = true;
                        break;
                case ARG_TRAFFIC:
                        o->traffic = true;
                        break;
                case ARG_FAIL_SHARE:
                        r = parse_double("--fail-share", optarg, 0, 1, &o->fail_share);
                        break;
                case ARG_PROMETHEUS:
                        if (!startswith(optarg, "http://") && !startswith(optarg, "https://"))
                                r = bad("--prometheus", optarg, "an http:// or https:// URL");
                        o->prometheus = optarg;
                        break;
                case ARG_TARGETS_FILE:
                        o->targets_file = optarg;
                        break;
                case ARG_STEP_PAUSE:
                        if (mr_duration_parse(optarg, &o->step_pause) < 0 || o->step_pause > 3600 * USEC_PER_SEC)
                                r = bad("--step-pause", optarg, "a duration up to 1h (\"5s\")");
                        break;
                case ARG_VERSION:
                        printf("meshroll-demo %s\n", MESHROLL_VERSION);
                        r = 1;
                        break;
                case 'h':
                        help();
                        r = 1;
                        break;
                default:
                        r = -MR_ECONFIG; /* getopt printed the message */
                }
                if (r == 1)
                        break;
        }
        free(service_ns);
        free(service_name);
        if (r != 0)
                return r;
        if (optind < argc) {
                fprintf(stderr, "meshroll-demo: unexpected argument \"%s\" (see --help)\n", argv[optind]);
                return -MR_ECONFIG;
        }
        if (o->scenario && (nodes_set || groups_set)) {
                fprintf(stderr, "meshroll-demo: --nodes and --groups describe the generated scenario; "
                                "they cannot be combined with --scenario\n");
                return -MR_ECONFIG;
        }
        if (o->groups > o->nodes) {
                fprintf(stderr, "meshroll-demo: --groups %u: expected at most --nodes (%u)\n", o->groups,
                        o->nodes);
                return -MR_ECONFIG;
        }
        if (!o->traffic && (o->fail_share > 0 || o->prometheus || o->targets_file)) {
                fprintf(stderr, "meshroll-demo: --fail-share, --prometheus and --targets-file belong to --traffic\n");
                return -MR_ECONFIG;
        }
        if (o->traffic && o->scenario) {
                fprintf(stderr, "meshroll-demo: --traffic generates its own scenario; drop --scenario\n");
                return -MR_ECONFIG;
        }
        if (o->scenario && !new_image_set)
                o->new_image = NULL; /* a user's scenario: upgrade to what it pends, or to --new-image */
        return 0;
}
