/* SPDX-License-Identifier: Apache-2.0 */
/*
 * coordinate.h — one `meshroll run` against the demo cluster, relayed and
 * timed group by group.
 */
#pragma once

#include "cluster.h"
#include "demo.h"
#include "procs.h"

typedef struct DemoCoordinateOptions {
        const char *meshroll;     /* the meshroll binary */
        const char *dir;          /* a private directory for the Rollout file */
        DemoCluster *cluster;     /* borrowed */
        DemoChildren *children;   /* the coordinator is added here (stopped by the caller on any path) */
        usec_t readiness_timeout; /* spec.readiness.timeout */
        bool verbose;             /* the coordinator logs at info level */
        usec_t deadline;          /* monotonic µs */
} DemoCoordinateOptions;

/*
 * Writes the Rollout (groups by zone with a canary of 1, gate threshold 0),
 * runs `meshroll run -f` on it, prints its progress lines prefixed, polls
 * the Rollout's status every 200 ms to time each group's steps, and returns
 * once the rollout completed (the coordinator exits), paused (a rollback,
 * a gate timeout: the coordinator is stopped), failed, or the deadline
 * passed. Fills run's phase, reason, message, groups, completed,
 * rolled_back and timed_out. Returns 0 (whatever the outcome), -ECANCELED
 * on SIGINT/SIGTERM, or -errno when the coordinator could not be started.
 */
int demo_coordinate(const DemoCoordinateOptions *o, DemoRun *run);
