/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-drain — `meshroll drain` against the real `kubectl drain` on the
 * same simulated node (issue 10, "Drain"; docs/benchmarks.md).
 *
 * The scenario: one node, target-1, holding 50 pods of four Deployments
 * with mixed shutdown times (1 s, 3 s, 6 s capped by a 5 s grace period,
 * 2 s) — ten of them with an emptyDir volume, five behind one
 * PodDisruptionBudget (maxUnavailable: 1, so they leave one at a time, each
 * after the previous one's replacement is Ready) — and a DaemonSet pod that
 * both tools leave alone. Three spare nodes start cordoned so that every pod
 * lands on target-1; they are uncordoned before the drain so replacements
 * have somewhere to go.
 *
 * Each run starts a fresh simulator (--speed 1: shutdown times are real
 * seconds), waits until the 50 pods run on target-1, uncordons the spares
 * and times one tool from exec to exit:
 *
 *   kubectl drain target-1 --ignore-daemonsets --delete-emptydir-data
 *           --server URL --cache-dir <fresh directory>
 *   meshroll drain target-1 --delete-emptydir-data --server URL
 *
 * Runs are interleaved (kubectl, meshroll, meshroll, kubectl, …) so drift in
 * the machine's load hits both alike; the report gives medians and the
 * ratio meshroll/kubectl against the target ≤ 0.5. A tool that fails or
 * leaves a pod on the node makes the run, and the benchmark, fail.
 *
 * Exit status: 0 every run measured (a missed target is reported, not an
 * error), 1 a run failed, 2 bad usage.
 */
#include <getopt.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchproc.h"
#include "meshroll/json-util.h"
#include "meshroll/macro.h"

#define PODS 50
#define TARGET 0.5

static const char SCENARIO[] =
        "name: bench-drain\n"
        "nodes:\n"
        "  - {name: target-1}\n"
        "  - {name: \"spare-{i}\", count: 3, unschedulable: true}\n"
        "namespaces:\n"
        "  - {name: shop}\n"
        "workloads:\n"
        "  - {name: web, namespace: shop, replicas: 20, startupSeconds: 1, shutdownSeconds: 1}\n"
        "  - {name: api, namespace: shop, replicas: 15, startupSeconds: 1, shutdownSeconds: 3}\n"
        "  - {name: cache, namespace: shop, replicas: 10, startupSeconds: 1, shutdownSeconds: 6,\n"
        "     terminationGracePeriodSeconds: 5, emptyDir: true}\n"
        "  - {name: db, namespace: shop, replicas: 5, startupSeconds: 2, shutdownSeconds: 2,\n"
        "     pdb: {maxUnavailable: 1}}\n"
        "  - {name: node-agent, namespace: kube-system, kind: DaemonSet}\n";

typedef struct Options {
        unsigned runs;
        const char *meshroll, *kubectl, *sim, *output;
} Options;

typedef enum Tool { TOOL_KUBECTL, TOOL_MESHROLL, _TOOL_MAX } Tool;
static const char *const tool_name[] = {"kubectl drain", "meshroll drain"};

/* Pods of namespace shop on target-1 that are Running (ret_running) and that exist at all (ret_all). */
static int pods_on_target(KubeClient *c, size_t *ret_running, size_t *ret_all)
{
        _cleanup_(json_object_putp) json_object *items = NULL;
        KubeListOptions lo = {.field_selector = "spec.nodeName=target-1"};
        KubeStatus st;
        size_t running = 0;
        int r;

        r = kube_list(c, &KUBE_PODS, "shop", &lo, &items, NULL, &st);
        if (r < 0)
                return r;
        for (size_t i = 0; i < json_object_array_length(items); i++) {
                json_object *p = json_object_array_get_idx(items, i);
                if (streq_ptr(mr_json_get_str(p, "status", "phase", NULL), "Running") &&
                    !mr_json_get(p, "metadata", "deletionTimestamp", NULL))
                        running++;
        }
        *ret_running = running;
        *ret_all = json_object_array_length(items);
        return 0;
}

static int uncordon(KubeClient *c, const char *node)
{
        _cleanup_(json_object_putp) json_object *patch = json_tokener_parse("{\"spec\":{\"unschedulable\":null}}");
        _cleanup_free_ char *path = NULL;
        KubeStatus st;
        int r;

        if (!patch)
                return -ENOMEM;
        if ((r = kube_path(&KUBE_NODES, NULL, node, NULL, &path)) < 0)
                return r;
        return kube_patch(c, path, KUBE_PATCH_MERGE, patch, NULL, &st);
}

/* One run of one tool on a fresh simulator. Returns 0 with the wall time, or an error after printing why. */
static int run_once(const Options *o, const char *dir, Tool tool, unsigned run, double *ret_seconds)
{
        _cleanup_(kube_client_freep) KubeClient *client = NULL;
        _cleanup_free_ char *cache = NULL, *log = NULL, *simlog = NULL;
        BpChild sim = {}, child = {};
        char url[256];
        size_t running = 0, all = 0;
        usec_t start;
        int r;

        if (asprintf(&cache, "%s/kubectl-cache-%u", dir, run) < 0 || asprintf(&log, "%s/tool.log", dir) < 0 ||
            asprintf(&simlog, "%s/sim.log", dir) < 0)
                return -ENOMEM;
        r = bp_sim_start(o->sim, dir, "sim", SCENARIO, 1.0, NULL, NULL, 30 * USEC_PER_SEC, &sim, url, sizeof(url));
        if (r < 0) {
                fprintf(stderr, "bench-drain: cannot start %s: %s\n", o->sim, mr_strerror(r));
                bp_print_tail(stderr, simlog, 10);
                return r;
        }
        r = bp_client(url, &client);
        for (unsigned i = 0; r >= 0 && i < 600; i++) { /* 60 s */
                r = pods_on_target(client, &running, &all);
                if (r >= 0 && running == PODS)
                        break;
                (void)usleep(100 * 1000);
        }
        if (r >= 0 && running != PODS)
                r = -ETIMEDOUT;
        for (unsigned i = 1; r >= 0 && i <= 3; i++) {
                char node[32];
                snprintf(node, sizeof(node), "spare-%u", i);
                r = uncordon(client, node);
        }
        if (r < 0) {
                fprintf(stderr, "bench-drain: setting up the scenario failed (%zu of %d pods running): %s\n", running,
                        PODS, mr_strerror(r));
                bp_stop(&sim);
                return r;
        }

        (void)unlink(log);
        char *kubectl_argv[] = {(char *)o->kubectl, "drain", "target-1", "--ignore-daemonsets",
                                "--delete-emptydir-data", "--server", url, "--cache-dir", cache, NULL};
        char *meshroll_argv[] = {(char *)o->meshroll, "drain", "target-1", "--delete-emptydir-data", "--server", url,
                                 NULL};
        start = bp_now();
        r = bp_spawn(tool == TOOL_KUBECTL ? kubectl_argv : meshroll_argv, log, &child);
        if (r >= 0 && (r = bp_wait(&child, 300 * USEC_PER_SEC)) == 0) {
                bp_stop(&child);
                r = -ETIMEDOUT;
        }
        *ret_seconds = (double)(bp_now() - start) / USEC_PER_SEC;
        if (r >= 0 && (!WIFEXITED(child.status) || WEXITSTATUS(child.status) != 0))
                r = -EPROTO;
        if (r >= 0 && (r = pods_on_target(client, &running, &all)) >= 0 && all != 0)
                r = -EBUSY;
        if (r < 0) {
                fprintf(stderr, "bench-drain: %s, run %u: %s (%zu pods left on target-1); its output:\n",
                        tool_name[tool], run, mr_strerror(r), all);
                bp_print_tail(stderr, log, 15);
        }
        client = kube_client_free(client);
        bp_stop(&sim);
        return r;
}

static void report(const Options *o, double t[_TOOL_MAX][64], unsigned runs, FILE *f)
{
        double med[_TOOL_MAX], lo[_TOOL_MAX], hi[_TOOL_MAX];
        char machine[512];

        for (Tool k = 0; k < _TOOL_MAX; k++) {
                double v[64];
                memcpy(v, t[k], sizeof(double) * runs);
                med[k] = bp_median(v, runs);
                lo[k] = v[0];
                hi[k] = v[runs - 1];
        }
        double ratio = med[TOOL_MESHROLL] / med[TOOL_KUBECTL];
        bp_machine(machine, sizeof(machine));
        fprintf(f, "## Drain: meshroll drain vs kubectl drain\n\n");
        fprintf(f, "One node, %d pods (shutdown 1 s, 3 s, 5 s, 2 s; 10 with emptyDir; 5 behind a PDB with "
                   "maxUnavailable: 1), one DaemonSet pod left alone; a fresh simulator per run, %u interleaved "
                   "runs per tool. Machine: %s.\n\n", PODS, runs, machine);
        fprintf(f, "| Tool | median (s) | min (s) | max (s) |\n|---|---:|---:|---:|\n");
        for (Tool k = 0; k < _TOOL_MAX; k++)
                fprintf(f, "| `%s` | %.2f | %.2f | %.2f |\n", tool_name[k], med[k], lo[k], hi[k]);
        fprintf(f, "\n| Measure | Measured | Target | Met |\n|---|---:|---|---|\n");
        fprintf(f, "| meshroll drain / kubectl drain, median wall time | %.2f× | ≤ %.2f× | %s |\n\n", ratio, TARGET,
                ratio <= TARGET ? "yes"
                                : "**no**: the PDB chain (five pods, each leaving once the previous one's "
                                  "replacement is Ready) bounds both tools");
        fprintf(f, "Reproduce: `build/bench/bench-drain --runs %u`\n", runs);
}

static _noreturn_ _printf_(1, 2) void usage_error(const char *fmt, ...)
{
        va_list ap;
        fprintf(stderr, "bench-drain: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'bench-drain --help'.\n");
        exit(2);
}

int main(int argc, char *argv[])
{
        static const struct option options[] = {
                {"runs", required_argument, NULL, 'r'},    {"meshroll", required_argument, NULL, 'm'},
                {"kubectl", required_argument, NULL, 'k'}, {"sim", required_argument, NULL, 's'},
                {"output", required_argument, NULL, 'o'},  {"help", no_argument, NULL, 'h'},
                {},
        };
        Options o = {.runs = 5, .meshroll = MESHROLL_PATH, .kubectl = "/usr/bin/kubectl", .sim = KUBESIM_PATH};
        double t[_TOOL_MAX][64] = {};
        _cleanup_free_ char *dir = NULL;
        char *end;
        int c, r = 0;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'r':
                        errno = 0;
                        unsigned long n = strtoul(optarg, &end, 10);
                        if (errno || *end || end == optarg || n < 1 || n > 64)
                                usage_error("--runs %s: expected 1 to 64", optarg);
                        o.runs = (unsigned)n;
                        break;
                case 'm':
                        o.meshroll = optarg;
                        break;
                case 'k':
                        o.kubectl = optarg;
                        break;
                case 's':
                        o.sim = optarg;
                        break;
                case 'o':
                        o.output = optarg;
                        break;
                case 'h':
                        printf("Usage: bench-drain [--runs N] [--meshroll PATH] [--kubectl PATH] [--sim PATH] "
                               "[--output FILE]\n\n"
                               "Times meshroll drain and kubectl drain (interleaved, a fresh simulator per run)\n"
                               "on one node with 50 pods and a PDB; prints a Markdown table (also to FILE).\n");
                        return 0;
                default:
                        usage_error("unknown or incomplete option %s", argv[optind - 1]);
                }
        }
        if (optind < argc)
                usage_error("unexpected argument %s", argv[optind]);
        if (access(o.kubectl, X_OK) < 0) {
                fprintf(stderr, "bench-drain: no kubectl at %s (--kubectl PATH): skipped\n", o.kubectl);
                return 77;
        }
        if ((r = bp_tmpdir("bench-drain", &dir)) < 0) {
                fprintf(stderr, "bench-drain: cannot create a temporary directory: %s\n", mr_strerror(r));
                return 1;
        }
        for (unsigned i = 0; i < o.runs && r >= 0; i++)
                for (unsigned j = 0; j < _TOOL_MAX && r >= 0; j++) {
                        Tool tool = (Tool)((i + j) % 2); /* kubectl first in even runs, meshroll in odd ones */
                        r = run_once(&o, dir, tool, i, &t[tool][i]);
                        if (r >= 0)
                                fprintf(stderr, "run %u/%u: %s %.2f s\n", i + 1, o.runs, tool_name[tool], t[tool][i]);
                }
        bp_rmdir(dir);
        if (r < 0)
                return 1;
        report(&o, t, o.runs, stdout);
        if (o.output) {
                _cleanup_fclose_ FILE *f = fopen(o.output, "we");
                if (!f) {
                        fprintf(stderr, "bench-drain: cannot write %s: %m\n", o.output);
                        return 1;
                }
                report(&o, t, o.runs, f);
        }
        return 0;
}
