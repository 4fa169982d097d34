/* SPDX-License-Identifier: Apache-2.0 */
/*
 * meshroll-agent — counts the node's connections through ztunnel and
 * publishes them on a Lease. main() only parses flags and runs the loop;
 * the work is in agent.c (daemon) and scan.c/report.c (--once).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "meshroll-config.h"
#include "meshroll/json-util.h"
#include "meshroll/log.h"
#include "agent.h"
#include "report.h"

enum {
        ARG_NODE = 0x100,
        ARG_NAMESPACE,
        ARG_HOLDER,
        ARG_PROC,
        ARG_PORTS,
        ARG_OUTBOUND_PORT,
        ARG_HBONE_PORT,
        ARG_LONG_LIVED_AFTER,
        ARG_SCAN_INTERVAL,
        ARG_IDLE_INTERVAL,
        ARG_ACTIVE_INTERVAL,
        ARG_LISTEN,
        ARG_LOCAL_ADDR,
        ARG_NO_HOST,
        ARG_HOST_PID,
        ARG_SOURCE,
        ARG_ONCE,
        ARG_JSON,
        ARG_SERVER,
        ARG_KUBECONFIG,
        ARG_CONTEXT,
        ARG_TOKEN,
        ARG_INSECURE,
        ARG_LOG_LEVEL,
        ARG_LOG_FORMAT,
        ARG_VERSION,
};

typedef struct Args {
        AgentOptions agent;
        KubeConfigOptions kube;
        bool once, json;
} Args;

static void help(void)
{
        printf("Usage: meshroll-agent [OPTIONS]\n"
               "\n"
               "Counts established and long-lived TCP connections through ztunnel in every pod\n"
               "network namespace of this node and publishes them on the Lease\n"
               "meshroll-agent-<node>, for the meshroll coordinator's connection gate.\n"
               "\n"
               "  --node NAME               this node (default $NODE_NAME)\n"
               "  --namespace NS            namespace of the Lease (default meshroll)\n"
               "  --holder ID               Lease holderIdentity (default meshroll-agent/<node>)\n"
               "  --proc DIR                proc root (default /proc; /host/proc in the DaemonSet)\n"
               "  --ports LIST              application ports, comma-separated (default 15001,15006)\n"
               "  --outbound-port PORT      which of them is outbound capture (default 15001)\n"
               "  --hbone-port PORT         HBONE port, 0 to ignore (default 15008)\n"
               "  --long-lived-after DUR    age that makes a connection long-lived (default 60s)\n"
               "  --scan-interval DUR       scans while idle (default 10s)\n"
               "  --idle-interval DUR       Lease renewals while idle (default 5m)\n"
               "  --active-interval DUR     scans and reports while the node is marked (default 2s)\n"
               "  --listen HOST:PORT        /metrics and /healthz (default :9477; \"\" disables)\n"
               "  --local-addr ADDR         count only sockets with this local address\n"
               "  --no-host                 do not count the host network namespace\n"
               "  --host-pid PID            a process in the host network namespace (default 1)\n"
               "  --source auto|netlink|proc  read sockets over netlink sock_diag, from /proc/<pid>/net/tcp{,6},\n"
               "                            or netlink where it works and /proc elsewhere (default auto)\n"
               "  --once                    scan once, print, exit (no Lease written)\n"
               "  --json                    with --once: print the report document as JSON\n"
               "  --server URL, --kubeconfig FILE, --context NAME, --token TOKEN,\n"
               "  --insecure-skip-tls-verify  how to reach the API server (as kubectl)\n"
               "  --log-level LEVEL         debug, info, notice, warning, error (default info)\n"
               "  --log-format FORMAT       logfmt or json (default logfmt)\n"
               "  --version, -h --help\n");
}

/* Prints a usage error naming the flag and returns 2, the exit code for bad input. */
static int usage_error(const char *flag, const char *value, const char *expected)
{
        fprintf(stderr, "meshroll-agent: invalid %s \"%s\": expected %s\n", flag, value, expected);
        return 2;
}

static int parse_port(const char *s, uint16_t *ret)
{
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (!*s || *end || errno || v > 65535)
                return -EINVAL;
        *ret = (uint16_t)v;
        return 0;
}

static int parse_ports(const char *s, ScanOptions *o)
{
        _cleanup_free_ char *copy = strdup(s);
        char *save = NULL;
        size_t n = 0;

        if (!copy)
                return -ENOMEM;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (n >= SCAN_PORTS_MAX || parse_port(tok, &o->app_ports[n]) < 0 || o->app_ports[n] == 0)
                        return -EINVAL;
                n++;
        }
        if (n == 0)
                return -EINVAL;
        o->n_app_ports = n;
        return 0;
}

/* Returns 0 to go on, or the exit code (0 for --help/--version, 2 for bad flags). */
static int parse_argv(int argc, char **argv, Args *a, bool *exit_now)
{
        static const struct option options[] = {
                { "node", required_argument, NULL, ARG_NODE },
                { "namespace", required_argument, NULL, ARG_NAMESPACE },
                { "holder", required_argument, NULL, ARG_HOLDER },
                { "proc", required_argument, NULL, ARG_PROC },
                { "ports", required_argument, NULL, ARG_PORTS },
                { "outbound-port", required_argument, NULL, ARG_OUTBOUND_PORT },
                { "hbone-port", required_argument, NULL, ARG_HBONE_PORT },
                { "long-lived-after", required_argument, NULL, ARG_LONG_LIVED_AFTER },
                { "scan-interval", required_argument, NULL, ARG_SCAN_INTERVAL },
                { "idle-interval", required_argument, NULL, ARG_IDLE_INTERVAL },
                { "active-interval", required_argument, NULL, ARG_ACTIVE_INTERVAL },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "local-addr", required_argument, NULL, ARG_LOCAL_ADDR },
                { "no-host", no_argument, NULL, ARG_NO_HOST },
                { "host-pid", required_argument, NULL, ARG_HOST_PID },
                { "source", required_argument, NULL, ARG_SOURCE },
                { "once", no_argument, NULL, ARG_ONCE },
                { "json", no_argument, NULL, ARG_JSON },
                { "server", required_argument, NULL, ARG_SERVER },
                { "kubeconfig", required_argument, NULL, ARG_KUBECONFIG },
                { "context", required_argument, NULL, ARG_CONTEXT },
                { "token", required_argument, NULL, ARG_TOKEN },
                { "insecure-skip-tls-verify", no_argument, NULL, ARG_INSECURE },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "log-format", required_argument, NULL, ARG_LOG_FORMAT },
                { "version", no_argument, NULL, ARG_VERSION },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        AgentOptions *o = &a->agent;
        LogFormat format;
        int c, level;

        *exit_now = false;
        o->node = getenv("NODE_NAME");
        o->listen = ":9477";
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case ARG_NODE:
                        o->node = optarg;
                        break;
                case ARG_NAMESPACE:
                        o->namespace = optarg;
                        break;
                case ARG_HOLDER:
                        o->holder = optarg;
                        break;
                case ARG_PROC:
                        o->scan.proc_root = optarg;
                        break;
                case ARG_PORTS:
                        if (parse_ports(optarg, &o->scan) < 0)
                                return usage_error("--ports", optarg, "1 to 8 comma-separated ports");
                        break;
                case ARG_OUTBOUND_PORT:
                        if (parse_port(optarg, &o->scan.outbound_port) < 0)
                                return usage_error("--outbound-port", optarg, "a port number");
                        break;
                case ARG_HBONE_PORT:
                        if (parse_port(optarg, &o->scan.hbone_port) < 0)
                                return usage_error("--hbone-port", optarg, "a port number (0 to ignore)");
                        break;
                case ARG_LONG_LIVED_AFTER:
                        if (mr_duration_parse(optarg, &o->scan.long_lived_after) < 0)
                                return usage_error("--long-lived-after", optarg, "a duration such as 60s or 2m");
                        break;
                case ARG_SCAN_INTERVAL:
                        if (mr_duration_parse(optarg, &o->scan_interval) < 0 || o->scan_interval < USEC_PER_MSEC * 100)
                                return usage_error("--scan-interval", optarg, "a duration of at least 100ms");
                        break;
                case ARG_IDLE_INTERVAL:
                        if (mr_duration_parse(optarg, &o->idle_interval) < 0 || o->idle_interval < USEC_PER_SEC)
                                return usage_error("--idle-interval", optarg, "a duration of at least 1s");
                        break;
                case ARG_ACTIVE_INTERVAL:
                        if (mr_duration_parse(optarg, &o->active_interval) < 0 ||
                            o->active_interval < USEC_PER_MSEC * 100)
                                return usage_error("--active-interval", optarg, "a duration of at least 100ms");
                        break;
                case ARG_LISTEN:
                        o->listen = optarg;
                        break;
                case ARG_LOCAL_ADDR:
                        if (scan_options_set_local_addr(&o->scan, optarg) < 0)
                                return usage_error("--local-addr", optarg, "an IPv4 or IPv6 address");
                        break;
                case ARG_NO_HOST:
                        o->scan.scan_host = false;
                        break;
                case ARG_HOST_PID: {
                        char *end;
                        errno = 0;
                        long v = strtol(optarg, &end, 10);
                        if (!*optarg || *end || errno || v < 1 || v > INT32_MAX)
                                return usage_error("--host-pid", optarg, "a process ID");
                        o->scan.host_pid = (pid_t)v;
                        break;
                }
                case ARG_SOURCE:
                        if (scan_source_from_string(optarg, &o->scan.source) < 0)
                                return usage_error("--source", optarg, "auto, netlink or proc");
                        break;
                case ARG_ONCE:
                        a->once = true;
                        break;
                case ARG_JSON:
                        a->json = true;
                        break;
                case ARG_SERVER:
                        a->kube.server = optarg;
                        break;
                case ARG_KUBECONFIG:
                        a->kube.kubeconfig = optarg;
                        break;
                case ARG_CONTEXT:
                        a->kube.context = optarg;
                        break;
                case ARG_TOKEN:
                        a->kube.token = optarg;
                        break;
                case ARG_INSECURE:
                        a->kube.insecure_skip_tls_verify = true;
                        break;
                case ARG_LOG_LEVEL:
                        level = log_level_from_string(optarg);
                        if (level < 0)
                                return usage_error("--log-level", optarg, "debug, info, notice, warning or error");
                        log_set_max_level(level);
                        break;
                case ARG_LOG_FORMAT:
                        if (log_format_from_string(optarg, &format) < 0)
                                return usage_error("--log-format", optarg, "logfmt or json");
                        log_set_format(format);
                        break;
                case ARG_VERSION:
                        printf("meshroll-agent %s\n", MESHROLL_VERSION);
                        *exit_now = true;
                        return 0;
                case 'h':
                        help();
                        *exit_now = true;
                        return 0;
                default:
                        return 2; /* getopt printed what was wrong */
                }
        }
        if (optind < argc)
                return usage_error("argument", argv[optind], "no positional arguments");
        if (a->json && !a->once)
                return usage_error("--json", "", "to be used with --once");
        if (!a->once && isempty(o->node))
                return usage_error("--node", "", "the node name (or $NODE_NAME)");
        return 0;
}

/* Names pods for --once when the API is reachable; otherwise UIDs are printed. */
static void once_resolve_pods(Args *a, PodCache *pods)
{
        _cleanup_(kube_config_freep) KubeConfig *config = NULL;
        _cleanup_(kube_client_freep) KubeClient *client = NULL;
        _cleanup_(json_object_putp) json_object *items = NULL;
        _cleanup_free_ char *selector = NULL;
        MrError err = {};

        if (isempty(a->agent.node))
                return;
        KubeClientOptions co = { .max_retries = 1, .request_timeout = 5 * USEC_PER_SEC };
        if (kube_config_load(&a->kube, &config, &err) < 0 || kube_client_new(config, &co, &client, &err) < 0) {
                log_debug("No API access for pod names: %s", err.message);
                return;
        }
        if (asprintf(&selector, "spec.nodeName=%s", a->agent.node) < 0)
                return;
        KubeListOptions lo = { .field_selector = selector };
        int r = kube_list(client, &KUBE_PODS, NULL, &lo, &items, NULL, NULL);
        if (r < 0) {
                log_warning_errno(r, "Could not list pods on %s, printing UIDs: %m", a->agent.node);
                return;
        }
        for (size_t i = 0; i < json_object_array_length(items); i++)
                (void)pod_cache_upsert(pods, json_object_array_get_idx(items, i));
}

static int run_once(Args *a)
{
        _cleanup_(track_freep) SocketTracker *tracker = NULL;
        _cleanup_(scan_result_freep) ScanResult *res = NULL;
        _cleanup_(json_object_putp) json_object *report = NULL;
        PodCache pods;
        int r;

        pod_cache_init(&pods);
        once_resolve_pods(a, &pods);
        a->agent.scan.skip_pod = NULL;
        r = track_new(0, &tracker);
        if (r >= 0)
                r = scan_run(&a->agent.scan, tracker, mr_now_monotonic(NULL), &res);
        if (r < 0) {
                pod_cache_clear(&pods);
                return log_error_errno(r, "Scan of %s failed: %m", a->agent.scan.proc_root);
        }
        ReportContext ctx = { .node = a->agent.node, .observed_at = mr_now_realtime(NULL),
                              .long_lived_after = a->agent.scan.long_lived_after };
        r = report_build(res, &pods, &ctx, &report);
        pod_cache_clear(&pods);
        if (r < 0)
                return log_error_errno(r, "Failed to build the report: %m");
        if (a->json)
                printf("%s\n", json_object_to_json_string_ext(report, JSON_C_TO_STRING_PRETTY |
                                                                              JSON_C_TO_STRING_SPACED |
                                                                              JSON_C_TO_STRING_NOSLASHESCAPE));
        else
                report_print_table(stdout, report);
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        log_info("Received %s, stopping.", strsignal((int)si->ssi_signo));
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int run(int argc, char **argv)
{
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(kube_config_freep) KubeConfig *config = NULL;
        _cleanup_(kube_client_freep) KubeClient *client = NULL;
        _cleanup_(agent_freep) Agent *agent = NULL;
        Args a = {};
        MrError err = {};
        bool exit_now;
        sigset_t mask;
        int r;

        log_open(LOG_TARGET_AUTO);
        agent_options_init(&a.agent);
        r = parse_argv(argc, argv, &a, &exit_now);
        if (r != 0 || exit_now)
                return r;
        if (a.once)
                return run_once(&a) < 0 ? 1 : 0;

        r = kube_config_load(&a.kube, &config, &err);
        if (r < 0) {
                log_error("%s", err.message);
                return r == -MR_ECONFIG ? 2 : 1;
        }
        r = kube_client_new(config, NULL, &client, &err);
        if (r < 0) {
                log_error("Cannot use the API server configuration: %s", err.message);
                return 2;
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
                log_error_errno(-errno, "Failed to block signals: %m");
                return 1;
        }
        r = sd_event_default(&e);
        if (r >= 0)
                r = sd_event_add_signal(e, NULL, SIGTERM, on_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(e, NULL, SIGINT, on_signal, NULL);
        if (r >= 0)
                r = sd_event_set_watchdog(e, true);
        if (r >= 0)
                r = kube_client_attach_event(client, e);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the event loop: %m");
                return 1;
        }

        r = agent_new(e, client, &a.agent, &agent, &err);
        if (r < 0) {
                log_error("%s", err.message);
                return r == -MR_ECONFIG ? 2 : 1;
        }
        log_info_fields(LOG_FIELDS("node", a.agent.node), "meshroll-agent %s on node %s: Lease %s/meshroll-agent-%s, "
                        "metrics on port %u", MESHROLL_VERSION, a.agent.node, a.agent.namespace, a.agent.node,
                        agent_metrics_port(agent));
        r = sd_event_loop(e);
        (void)sd_notify(false, "STOPPING=1");
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                return 1;
        }
        return 0;
}

int main(int argc, char **argv)
{
        return run(argc, argv);
}
