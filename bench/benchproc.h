/* SPDX-License-Identifier: Apache-2.0 */
/*
 * benchproc.h — what bench-drain and bench-rollout share: child processes
 * that die with the benchmark (PR_SET_PDEATHSIG) and are always reaped
 * within a bound, a simulator started on a scenario string, a temporary
 * directory removed on exit, a KubeClient on a URL, medians, the machine.
 *
 * Every wait is bounded; nothing here logs: errors are returned as negative
 * errno and the caller says what failed.
 */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "meshroll/kube.h"
#include "meshroll/macro.h"

static inline void bp_fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(bp_fclosep)

typedef struct BpChild {
        pid_t pid;
        struct rusage usage; /* filled when reaped */
        int status;          /* wait status when reaped */
        bool reaped;
} BpChild;

/* Monotonic microseconds. */
usec_t bp_now(void);
/* The median of n values (sorts v in place); 0 when n is 0. */
double bp_median(double *v, size_t n);

/* Creates a fresh directory under $TMPDIR (or /tmp); *ret owned. */
int bp_tmpdir(const char *prefix, char **ret);
/* Removes dir and everything under it. Accepts NULL. */
void bp_rmdir(const char *dir);
/* Writes s to path (created 0600, truncated). */
int bp_write_file(const char *path, const char *s);

/*
 * Starts argv (argv[0] a path) with stdout and stderr appended to log
 * (NULL: /dev/null) and stdin from /dev/null; the child gets SIGKILL if the
 * benchmark dies. Returns 0 or -errno.
 */
int bp_spawn(char *const argv[], const char *log, BpChild *ret);
/* Waits up to timeout for c to exit on its own. 1 exited (c reaped), 0 still running, -errno. */
int bp_wait(BpChild *c, usec_t timeout);
/* SIGTERM, 10 s, then SIGKILL; reaps. Accepts a zero or reaped child. */
void bp_stop(BpChild *c);
/* The child's CPU seconds (user + system) once reaped. */
double bp_cpu_seconds(const BpChild *c);
/* A field of /proc/PID/status in KiB (VmRSS, VmHWM), 0 when unknown. */
uint64_t bp_proc_kb(pid_t pid, const char *key);

/*
 * Starts meshroll-kubesim at sim on scenario_yaml (written to dir/name.yaml),
 * with --speed, --audit audit (NULL: none) and extra arguments (NULL-ended,
 * may be NULL); its log goes to dir/name.log. Waits up to timeout for its
 * URL (written to url, size ≥ 64). -ETIMEDOUT, -ECHILD (it exited), -errno.
 */
int bp_sim_start(const char *sim, const char *dir, const char *name, const char *scenario_yaml, double speed,
                 const char *audit, char *const extra[], usec_t timeout, BpChild *ret, char *url, size_t url_size);

/* A client on url, unlimited QPS, 30 s requests. */
int bp_client(const char *url, KubeClient **ret);

/* "8 × Intel(R) …, 15.6 GiB RAM, Linux 6.1.0": the machine the report was made on. */
void bp_machine(char *buf, size_t size);
/* Prints the last lines of a log file to f, indented, for a failed run. */
void bp_print_tail(FILE *f, const char *path, unsigned lines);
