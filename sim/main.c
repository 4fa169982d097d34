/* SPDX-License-Identifier: Apache-2.0 */
/*
 * meshroll-kubesim — a simulated Kubernetes API server with simulated
 * kubelets and controllers (docs/simulator.md).
 *
 *   meshroll-kubesim --scenario FILE [--listen 127.0.0.1:PORT] [--speed X]
 *                    [--seed N] [--audit FILE] [--tls-cert F --tls-key F]
 *                    [--token T] [--dataplane] [--log-level LEVEL]
 *
 * Prints its URL on stdout once it serves, runs until SIGTERM or SIGINT,
 * then stops cleanly. Bad flags or a bad scenario: one message, exit 2.
 */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>

#include "meshroll/log.h"
#include "sim.h"

static _noreturn_ _printf_(1, 2) void usage_error(const char *fmt, ...)
{
        va_list ap;
        fprintf(stderr, "meshroll-kubesim: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'meshroll-kubesim --help'.\n");
        exit(2);
}

static void help(void)
{
        printf("Usage: meshroll-kubesim --scenario FILE [OPTIONS]\n\n"
               "A simulated Kubernetes API server (with kubelets and controllers) for tests and demos.\n\n"
               "  --scenario FILE      the cluster to simulate (YAML, see docs/scenario.md)\n"
               "  --listen HOST:PORT   address to serve on (default 127.0.0.1:0: any free port)\n"
               "  --speed X            simulated seconds per real second (default 1)\n"
               "  --seed N             seed for names, uids and fault injection (default 1)\n"
               "  --audit FILE         append one JSON line per write to FILE\n"
               "  --tls-cert FILE      serve HTTPS with this PEM certificate (needs --tls-key)\n"
               "  --tls-key FILE       the PEM private key for --tls-cert\n"
               "  --token TOKEN        require \"Authorization: Bearer TOKEN\"\n"
               "  --dataplane          run node proxies and backends on real loopback sockets\n"
               "                       (each node's address: annotation sim.meshroll.io/address)\n"
               "  --log-level LEVEL    debug, info, notice, warning or error (default info)\n"
               "  --help               this text\n\n"
               "Prints the server URL on stdout when ready; stops on SIGTERM or SIGINT.\n");
}

static int run(int argc, char *argv[])
{
        enum { ARG_SCENARIO = 256, ARG_LISTEN, ARG_SPEED, ARG_SEED, ARG_AUDIT, ARG_CERT, ARG_KEY, ARG_TOKEN, ARG_LOG, ARG_HELP, ARG_DATAPLANE };
        static const struct option options[] = {
                {"scenario", required_argument, NULL, ARG_SCENARIO},
                {"listen", required_argument, NULL, ARG_LISTEN},
                {"speed", required_argument, NULL, ARG_SPEED},
                {"seed", required_argument, NULL, ARG_SEED},
                {"audit", required_argument, NULL, ARG_AUDIT},
                {"tls-cert", required_argument, NULL, ARG_CERT},
                {"tls-key", required_argument, NULL, ARG_KEY},
                {"token", required_argument, NULL, ARG_TOKEN},
                {"log-level", required_argument, NULL, ARG_LOG},
                {"help", no_argument, NULL, ARG_HELP},
                {"dataplane", no_argument, NULL, ARG_DATAPLANE},
                {},
        };
        SimOptions o = {.listen = "127.0.0.1:0", .speed = 1.0, .seed = 1};
        MrError err = {};
        Sim *sim = NULL;
        sigset_t mask;
        int c, sig, r;

        log_open(LOG_TARGET_AUTO);
        opterr = 0;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                char *end;
                switch (c) {
                case ARG_SCENARIO:
                        o.scenario_path = optarg;
                        break;
                case ARG_LISTEN:
                        o.listen = optarg;
                        break;
                case ARG_SPEED:
                        errno = 0;
                        o.speed = strtod(optarg, &end);
                        if (errno || *end || !isfinite(o.speed) || o.speed <= 0 || o.speed > 1e6)
                                usage_error("--speed %s: expected a number > 0", optarg);
                        break;
                case ARG_SEED:
                        errno = 0;
                        o.seed = strtoull(optarg, &end, 10);
                        if (errno || *end || optarg[0] == '-' || !optarg[0])
                                usage_error("--seed %s: expected a non-negative integer", optarg);
                        break;
                case ARG_AUDIT:
                        o.audit_path = optarg;
                        break;
                case ARG_CERT:
                        o.tls_cert = optarg;
                        break;
                case ARG_KEY:
                        o.tls_key = optarg;
                        break;
                case ARG_TOKEN:
                        if (isempty(optarg))
                                usage_error("--token: expected a non-empty token");
                        o.token = optarg;
                        break;
                case ARG_LOG:
                        r = log_level_from_string(optarg);
                        if (r < 0)
                                usage_error("--log-level %s: expected debug, info, notice, warning or error", optarg);
                        log_set_max_level(r);
                        break;
                case ARG_DATAPLANE:
                        o.dataplane = true;
                        break;
                case ARG_HELP:
                        help();
                        return 0;
                default:
                        usage_error("unknown or incomplete option %s", argv[optind - 1]);
                }
        }
        if (optind < argc)
                usage_error("unexpected argument %s", argv[optind]);
        if (!o.scenario_path)
                usage_error("--scenario FILE is required");
        if (!!o.tls_cert != !!o.tls_key)
                usage_error("--tls-cert and --tls-key go together");
        o.tls = o.tls_cert != NULL;

        /* Block the signals before any thread starts, so every thread inherits the mask. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        r = sim_start(&o, &sim, &err);
        if (r < 0) {
                fprintf(stderr, "meshroll-kubesim: %s\n", err.message[0] ? err.message : mr_strerror(r));
                return r == -MR_ECONFIG || r == -MR_EPARSE || r == -MR_EINVALID || r == -EINVAL || r == -ENOENT ||
                                       r == -MR_ETOOBIG
                               ? 2
                               : 1;
        }
        printf("%s\n", sim_url(sim));
        fflush(stdout);
        log_info("Serving the simulated cluster at %s", sim_url(sim));

        if (sigwait(&mask, &sig) != 0)
                sig = SIGTERM;
        log_info("Received %s, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        sim_stop(sim);
        return 0;
}

int main(int argc, char *argv[])
{
        return run(argc, argv);
}
