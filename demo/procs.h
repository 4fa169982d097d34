/* SPDX-License-Identifier: Apache-2.0 */
/*
 * procs.h — the demo's child processes (agents, the coordinator).
 *
 * Each child is started with posix_spawn in a process group of its own,
 * with the default signal mask and dispositions (the demo blocks SIGINT and
 * SIGTERM for its signalfd), stdin on /dev/null and stdout/stderr where the
 * caller says. Stopping sends SIGTERM to each child's process group, waits a
 * bounded time, then SIGKILLs what is left and reaps everything, so no
 * process outlives the demo on any exit path that runs cleanup.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "meshroll/macro.h"

typedef struct DemoChild {
        pid_t pid;
        bool reaped;
        int status; /* waitpid status once reaped */
        char *name; /* for messages, owned */
} DemoChild;

typedef struct DemoChildren {
        DemoChild *v;
        size_t n;
} DemoChildren;

/*
 * Finds an executable: next to this program (the directory of
 * /proc/self/exe), then in ../SUBDIR of it (the build tree: build/demo/ →
 * build/agent/), then in $PATH. *ret is an owned path. -ENOENT when none.
 */
int demo_find_binary(const char *name, const char *subdir, char **ret);

/*
 * Starts argv[0] (a path) with argv. out_fd and err_fd become its stdout and
 * stderr (-1: /dev/null; 1 or 2: the demo's own). The child is added to set.
 * Returns 0 and *ret_pid, or -errno (the spawn failed: nothing to clean up).
 */
int demo_spawn(DemoChildren *set, const char *name, char *const *argv, int out_fd, int err_fd,
               pid_t *ret_pid);

/*
 * Reaps pid if it has exited, without blocking: 1 and *ret_status when it
 * has (also when reaped before), 0 while it runs, -ENOENT if not in set.
 */
int demo_child_exited(DemoChildren *set, pid_t pid, int *ret_status);

/* Stops one child: SIGTERM to its process group, up to grace, then SIGKILL; reaps. */
void demo_child_stop(DemoChildren *set, pid_t pid, usec_t grace);

/* Stops every child still running (as demo_child_stop, in parallel) and frees the set's entries. */
void demo_children_stop(DemoChildren *set, usec_t grace);

/* Describes a waitpid status into buf: "exited with 3", "killed by SIGTERM". Returns buf. */
char *demo_status_string(int status, char *buf, size_t size);
