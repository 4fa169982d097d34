/* SPDX-License-Identifier: Apache-2.0 */
/*
 * meshroll — upgrade an Istio mesh without dropping traffic.
 * main() dispatches to a subcommand; each lives in its own cmd-*.c.
 */
#include <limits.h>
#include <stdio.h>

#include "meshroll-config.h"
#include "meshroll/log.h"
#include "cli.h"

/*
 * `meshroll demo …` runs meshroll-demo with the same arguments. The demo
 * links the simulator, which this production binary must not, so it is a
 * program of its own: the one next to this executable (installed side by
 * side), else build/demo/ beside build/coordinator/ (the build tree), else
 * the first in $PATH. Returns only when no exec worked.
 */
static int cmd_demo(Cli *cli, int argc, char **argv)
{
        char self[PATH_MAX], path[PATH_MAX + 32];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

        argv[0] = (char *)"meshroll-demo";
        if (n > 0) {
                self[n] = 0;
                char *slash = strrchr(self, '/');
                if (slash) {
                        *slash = 0;
                        snprintf(path, sizeof(path), "%s/meshroll-demo", self);
                        execv(path, argv);
                        snprintf(path, sizeof(path), "%s/../demo/meshroll-demo", self);
                        execv(path, argv);
                }
        }
        execvp("meshroll-demo", argv);
        fprintf(stderr, "meshroll demo: cannot run meshroll-demo (%s); it is installed next to meshroll, or "
                        "built in build/demo/ (make demo)\n",
                strerror(errno));
        return 1;
}

static const struct {
        const char *name;
        int (*run)(Cli *cli, int argc, char **argv);
        const char *help;
} commands[] = {
        { "run", cmd_run, "run a Rollout from a file in the foreground" },
        { "controller", cmd_controller, "reconcile every Rollout in the cluster (leader-elected daemon)" },
        { "preflight", cmd_preflight, "check what would make the upgrade fail or drop traffic (-o table|wide|json)" },
        { "plan", cmd_plan, "show the groups, their nodes and what would block, changing nothing" },
        { "status", cmd_status, "show a Rollout's progress" },
        { "pause", cmd_pause, "pause a Rollout after its current step" },
        { "resume", cmd_resume, "resume a paused Rollout" },
        { "rollback", cmd_rollback, "roll back a node group (--group NAME) or a phase (--phase sidecar|gateway|traffic [--namespace NS])" },
        { "cleanup", cmd_cleanup, "after a completed Rollout: what still points at the old revision (--apply scales the old gateway to 0)" },
        { "abort", cmd_abort, "stop a Rollout and uncordon its current group" },
        { "drain", cmd_drain, "cordon nodes and evict their pods, like kubectl drain, faster" },
        { "demo", cmd_demo, "upgrade ztunnel on a simulated cluster with real traffic, then in place, side by side" },
};

static void help(void)
{
        printf("Usage: meshroll COMMAND [OPTIONS]\n\n"
               "Upgrades Istio's ztunnel node group by node group: cordon, drain, wait until the\n"
               "node's long-lived connections are gone, replace ztunnel, wait until it is Ready,\n"
               "uncordon. Every step is recorded in the Rollout, so any coordinator can resume.\n\n"
               "Commands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                printf("  %-12s %s\n", commands[i].name, commands[i].help);
        printf("\n`meshroll COMMAND --help` for a command's options.\n");
}

int main(int argc, char **argv)
{
        Cli cli;

        log_open(LOG_TARGET_AUTO);
        cli_init(&cli);
        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help")) {
                help();
                return argc < 2 ? 2 : 0;
        }
        if (streq(argv[1], "--version") || streq(argv[1], "version")) {
                printf("meshroll %s\n", MESHROLL_VERSION);
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(argv[1], commands[i].name))
                        return commands[i].run(&cli, argc - 1, argv + 1);
        fprintf(stderr, "meshroll: unknown command \"%s\" (see meshroll --help)\n", argv[1]);
        return 2;
}
