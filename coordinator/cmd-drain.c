/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd-drain.c — `meshroll drain NODE…`: kubectl drain for an operator,
 * with the coordinator's drain engine (drain.h).
 *
 * The steps are kubectl's (shared/reference/kubernetes-api.md §7.5): every
 * node is looked up first (an unknown name stops before anything is
 * written), then cordoned (`spec.unschedulable`, kubectl's patch, no
 * meshroll annotation: this is the operator's cordon, which no rollout will
 * undo), then drained. Two differences, both for speed:
 *
 *   - the nodes are drained together, not one after the other: one Drain
 *     over all of them, `--concurrency` evictions in flight in total;
 *   - a pod's end is seen on a watch of the node's pods, not by polling
 *     each pod once a second, so the command returns when the last pod is
 *     gone rather than up to a second later.
 *
 * DaemonSet pods are always left alone (`--ignore-daemonsets` is accepted
 * and changes nothing); mirror pods too. Pods with emptyDir volumes need
 * `--delete-emptydir-data`, pods without a controller `--force`, exactly as
 * with kubectl; without them nothing is evicted and the error names every
 * such pod. The nodes stay cordoned whatever happens (`kubectl uncordon`
 * undoes it).
 *
 * Output: progress on stderr (one line when the counts change, at most one
 * a second, and one whenever a PodDisruptionBudget starts blocking a pod),
 * then `node/N drained` on stdout per node. Exit: 0 drained; 1 the drain
 * failed or timed out (the message names the pods left and what blocked
 * them); 2 bad usage or an unknown node; 130 interrupted.
 */
#include <signal.h>
#include <stdio.h>

#include "meshroll/log.h"
#include "meshroll/selector.h"
#include "cli.h"
#include "drain.h"
#include "nodes.h"

#define PROGRESS_EVERY USEC_PER_SEC

typedef struct DrainCmd {
        sd_event *event;
        Drain *drain;
        char **nodes;
        int exit_code;
        bool evicting;           /* the pods were listed and checked */
        usec_t last_print;       /* CLOCK_MONOTONIC of the last progress line */
        char last_blocker[600];  /* "pod by pdb" of the last blocking line */
        DrainProgress printed;   /* counts of the last progress line */
} DrainCmd;

static void print_counts(DrainCmd *c, const DrainProgress *p)
{
        fprintf(stderr, "%u/%u gone, %u terminating, %u to evict%s%s\n", p->gone, p->total, p->terminating,
                p->evicting, p->failed ? ", failed: " : "", p->failed ? "see below" : "");
        c->printed = *p;
}

static void on_progress(Drain *d, const DrainProgress *p, void *userdata)
{
        DrainCmd *c = userdata;
        char blocker[sizeof(c->last_blocker)];
        usec_t now = 0;

        /* until the pods are listed and classified every count but total and skipped is 0 */
        if (!c->evicting && (p->evicting || p->terminating || p->gone || p->failed)) {
                c->evicting = true;
                fprintf(stderr, "evicting %u pods (%u DaemonSet and mirror pods left alone)\n", p->total, p->skipped);
        }
        /* one line per blocking PDB (per pod while its PDB is not known yet), not one per 429 */
        if (p->blocked_pod[0]) {
                snprintf(blocker, sizeof(blocker), "%s", p->blocking_pdb[0] ? p->blocking_pdb : p->blocked_pod);
                if (!streq(blocker, c->last_blocker)) {
                        if (p->blocking_pdb[0])
                                fprintf(stderr, "waiting: PodDisruptionBudget %s allows no disruption now (pod %s); "
                                                "retrying as soon as it does\n", p->blocking_pdb, p->blocked_pod);
                        else
                                fprintf(stderr, "waiting: eviction of pod %s refused (429); retrying\n",
                                        p->blocked_pod);
                        snprintf(c->last_blocker, sizeof(c->last_blocker), "%s", blocker);
                }
        } else
                c->last_blocker[0] = 0;

        if (!c->evicting || (p->gone == c->printed.gone && p->terminating == c->printed.terminating &&
                             p->evicting == c->printed.evicting && p->failed == c->printed.failed))
                return;
        (void)sd_event_now(c->event, CLOCK_MONOTONIC, &now);
        if (c->last_print != 0 && now < c->last_print + PROGRESS_EVERY)
                return;
        c->last_print = now;
        print_counts(c, p);
}

static void on_done(Drain *d, int error, const DrainProgress *p, const char *message, void *userdata)
{
        DrainCmd *c = userdata;

        if (c->evicting && p->total > 0 && p->gone != c->printed.gone)
                print_counts(c, p);
        if (error >= 0) {
                for (char **n = c->nodes; *n; n++)
                        printf("node/%s drained\n", *n);
                c->exit_code = 0;
        } else {
                fprintf(stderr, "meshroll drain: error: %s%s\n", message,
                        error == -MR_ECONFIG ? " (flags: --delete-emptydir-data, --force)" : "");
                fprintf(stderr, "meshroll drain: the nodes stay cordoned (kubectl uncordon NODE to undo)\n");
                c->exit_code = 1;
        }
        c->drain = drain_free(d);
        (void)sd_event_exit(c->event, c->exit_code);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        DrainCmd *c = userdata;

        fprintf(stderr, "meshroll drain: %s: stopped; the nodes stay cordoned and pods already evicted are gone\n",
                strsignal((int)si->ssi_signo));
        c->drain = drain_free(c->drain);
        c->exit_code = 130;
        return sd_event_exit(c->event, 130);
}

static void help(void)
{
        printf("Usage: meshroll drain NODE [NODE...] [OPTIONS]\n\n"
               "Cordons the nodes, then evicts their pods through the Eviction API (PodDisruptionBudgets\n"
               "respected), like kubectl drain --ignore-daemonsets, all nodes at once, and returns as soon\n"
               "as the last pod is gone. The nodes stay cordoned (kubectl uncordon NODE).\n\n"
               "  --timeout DUR             give up after DUR (default 0: wait forever)\n"
               "  --grace-period SECONDS    override each pod's terminationGracePeriodSeconds (default -1: the pod's)\n"
               "  --pod-selector SELECTOR   only evict the pods matching this label selector\n"
               "  --delete-emptydir-data    also evict pods with emptyDir volumes (their data is lost)\n"
               "  --force                   also delete pods no controller manages, and those of a deleted DaemonSet\n"
               "  --concurrency N           evictions in flight at once (default 10)\n"
               "  --ignore-daemonsets       accepted for kubectl's sake: DaemonSet pods are always left alone\n"
               "  --server URL, --kubeconfig FILE, --context NAME, --token TOKEN, --insecure-skip-tls-verify\n"
               "                            how to reach the API server (kubectl's rules; in-cluster too)\n"
               "  --log-level LEVEL, --log-format logfmt|json\n\n"
               "Exit status: 0 drained, 1 the drain failed or timed out (what blocked is named),\n"
               "2 bad usage or an unknown node, 130 interrupted.\n");
}

int cmd_drain(Cli *cli, int argc, char **argv)
{
        enum { ARG_TIMEOUT = 0x200, ARG_GRACE, ARG_SELECTOR, ARG_EMPTYDIR, ARG_FORCE, ARG_CONCURRENCY, ARG_IGNORE_DS };
        static const struct option options[] = {
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                { "grace-period", required_argument, NULL, ARG_GRACE },
                { "pod-selector", required_argument, NULL, ARG_SELECTOR },
                { "delete-emptydir-data", no_argument, NULL, ARG_EMPTYDIR },
                { "delete-local-data", no_argument, NULL, ARG_EMPTYDIR }, /* kubectl's deprecated alias */
                { "force", no_argument, NULL, ARG_FORCE },
                { "concurrency", required_argument, NULL, ARG_CONCURRENCY },
                { "ignore-daemonsets", optional_argument, NULL, ARG_IGNORE_DS },
                { "help", no_argument, NULL, 'h' },
                CLI_COMMON_OPTIONS,
                {},
        };
        static const KubeClientOptions client_opts = { .request_timeout = 15 * USEC_PER_SEC, .qps = 50, .burst = 100 };
        _cleanup_(kube_client_freep) KubeClient *client = NULL;
        DrainOptions o = { .grace_period_seconds = -1 };
        DrainCmd c = { .exit_code = 1 };
        sigset_t mask;
        char *end;
        int opt, k;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (opt) {
                case 'h':
                        help();
                        return 0;
                case ARG_TIMEOUT:
                        if (mr_duration_parse(optarg, &o.timeout) < 0)
                                return cli_usage_error("drain", "invalid --timeout \"%s\": expected a duration "
                                                                "such as 90s, 5m or 0 (no timeout)", optarg);
                        break;
                case ARG_GRACE:
                        errno = 0;
                        o.grace_period_seconds = strtoll(optarg, &end, 10);
                        if (errno || end == optarg || *end || o.grace_period_seconds < -1)
                                return cli_usage_error("drain", "invalid --grace-period \"%s\": expected seconds "
                                                                "(0 or more), or -1 for each pod's own", optarg);
                        break;
                case ARG_SELECTOR:
                        o.pod_selector = optarg;
                        break;
                case ARG_EMPTYDIR:
                        o.delete_emptydir_data = true;
                        break;
                case ARG_FORCE:
                        o.force = true;
                        break;
                case ARG_CONCURRENCY: {
                        errno = 0;
                        unsigned long n = strtoul(optarg, &end, 10);
                        if (errno || end == optarg || *end || optarg[0] == '-' || n < 1 || n > 1000)
                                return cli_usage_error("drain", "invalid --concurrency \"%s\": expected 1 to 1000",
                                                       optarg);
                        o.concurrency = (unsigned)n;
                        break;
                }
                case ARG_IGNORE_DS:
                        if (optarg && !streq(optarg, "true"))
                                return cli_usage_error("drain", "--ignore-daemonsets=%s: DaemonSet pods are always "
                                                                "left alone", optarg);
                        break;
                default:
                        if ((k = cli_parse_common(cli, opt, optarg)) != 0)
                                return k;
                }
        }
        if (optind >= argc)
                return cli_usage_error("drain", "expected at least one NODE (see meshroll drain --help)");
        for (int i = optind; i < argc; i++)
                if (isempty(argv[i]))
                        return cli_usage_error("drain", "a NODE name is empty");
        if (o.pod_selector) {
                _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
                MrError err = {};
                if (mr_selector_parse(o.pod_selector, &sel, &err) < 0)
                        return cli_usage_error("drain", "invalid --pod-selector \"%s\": %s", o.pod_selector,
                                               err.message);
        }
        c.nodes = argv + optind;

        if ((k = cli_client(cli, &client_opts, &client)) != 0)
                return k;

        /* Every node first: an unknown one stops the command before anything is written. */
        for (char **n = c.nodes; *n; n++) {
                _cleanup_(json_object_putp) json_object *obj = NULL;
                _cleanup_free_ char *path = NULL;
                KubeStatus st;
                k = kube_path(&KUBE_NODES, NULL, *n, NULL, &path);
                if (k >= 0)
                        k = kube_get(client, path, &obj, &st);
                if (k == -ENOENT)
                        return cli_usage_error("drain", "node \"%s\" not found", *n);
                if (k < 0) {
                        log_error_errno(k, "Cannot read node %s: %s", *n, st.message[0] ? st.message : mr_strerror(k));
                        return 1;
                }
        }
        for (char **n = c.nodes; *n; n++) {
                MrError err = {};
                bool already = false;
                k = node_cordon(client, *n, &already, &err);
                if (k < 0) {
                        log_error("%s", err.message);
                        return 1;
                }
                fprintf(stderr, "node/%s %s\n", *n, already ? "already cordoned" : "cordoned");
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
                log_error_errno(-errno, "Failed to block signals: %m");
                return 1;
        }
        k = sd_event_default(&c.event);
        if (k >= 0)
                k = sd_event_add_signal(c.event, NULL, SIGTERM, on_signal, &c);
        if (k >= 0)
                k = sd_event_add_signal(c.event, NULL, SIGINT, on_signal, &c);
        if (k >= 0)
                k = kube_client_attach_event(client, c.event);
        if (k >= 0)
                k = drain_start(client, c.event, (const char *const *)c.nodes, &o, on_progress, on_done, &c,
                                &c.drain);
        if (k >= 0)
                k = sd_event_loop(c.event);
        if (k < 0) {
                log_error_errno(k, "Cannot drain: %m");
                c.exit_code = 1;
        }
        c.drain = drain_free(c.drain);
        /* The client's transfers are on the loop: free it before the loop goes. */
        client = kube_client_free(client);
        sd_event_unref(c.event);
        return c.exit_code;
}
