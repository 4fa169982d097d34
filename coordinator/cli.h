/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli.h — what every meshroll subcommand shares: the API flags (as kubectl
 * spells them), logging flags, and the exit-code convention:
 *   0 success; 1 the operation failed (a rollout Failed, an API error);
 *   2 bad input (flags, spec file, kubeconfig) — one message naming it.
 */
#pragma once

#include <getopt.h>

#include "meshroll/kube.h"

typedef struct Cli {
        KubeConfigOptions kube;
        const char *lease_namespace;  /* --lease-namespace, default meshroll */
        const char *identity;         /* --identity, default $POD_NAME or hostname-pid */
        bool leader_elect;            /* --leader-elect (default true) */
        usec_t tick;                  /* --tick, default 1 s */
} Cli;

/* Long options every subcommand accepts; values ≥ 0x1000 are handled by cli_parse_common. */
#define CLI_COMMON_OPTIONS                                                                                         \
        { "server", required_argument, NULL, 0x1000 }, { "kubeconfig", required_argument, NULL, 0x1001 },         \
                { "context", required_argument, NULL, 0x1002 }, { "token", required_argument, NULL, 0x1003 },     \
                { "insecure-skip-tls-verify", no_argument, NULL, 0x1004 },                                        \
                { "log-level", required_argument, NULL, 0x1005 }, { "log-format", required_argument, NULL, 0x1006 }, \
                { "lease-namespace", required_argument, NULL, 0x1007 },                                           \
                { "identity", required_argument, NULL, 0x1008 },                                                  \
                { "leader-elect", optional_argument, NULL, 0x1009 }, { "tick", required_argument, NULL, 0x100a }

#define CLI_COMMON_HELP                                                                                            \
        "  --server URL, --kubeconfig FILE, --context NAME, --token TOKEN, --insecure-skip-tls-verify\n"          \
        "                            how to reach the API server (kubectl's rules; in-cluster too)\n"             \
        "  --lease-namespace NS      namespace of the election Lease (default meshroll)\n"                          \
        "  --identity ID             this coordinator's identity (default $POD_NAME, else host-pid)\n"             \
        "  --leader-elect[=false]    elect a leader before mutating (default true)\n"                               \
        "  --tick DUR                reconcile interval (default 1s)\n"                                             \
        "  --log-level LEVEL, --log-format logfmt|json\n"

void cli_init(Cli *cli);
/* Handles one common option; returns 0, or 2 after printing a usage error. */
int cli_parse_common(Cli *cli, int opt, const char *arg);
/* Prints "meshroll <cmd>: <message>" to stderr and returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) _printf_(2, 3);

/* Loads the configuration and creates a client (opts may be NULL). Returns 0, or an exit code (1 or 2) after logging. */
int cli_client(const Cli *cli, const KubeClientOptions *opts, KubeClient **ret);

int cmd_run(Cli *cli, int argc, char **argv);
int cmd_controller(Cli *cli, int argc, char **argv);
int cmd_plan(Cli *cli, int argc, char **argv);
int cmd_preflight(Cli *cli, int argc, char **argv);
int cmd_status(Cli *cli, int argc, char **argv);
int cmd_pause(Cli *cli, int argc, char **argv);
int cmd_resume(Cli *cli, int argc, char **argv);
int cmd_rollback(Cli *cli, int argc, char **argv);
int cmd_abort(Cli *cli, int argc, char **argv);
int cmd_drain(Cli *cli, int argc, char **argv);
int cmd_cleanup(Cli *cli, int argc, char **argv);
