/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runs.h — the demo's two runs, each on a fresh simulated cluster with the
 * same traffic: meshroll's rollout, and the in-place RollingUpdate.
 */
#pragma once

#include "demo.h"

typedef struct DemoPaths {
        const char *agent;     /* meshroll-agent */
        const char *meshroll;  /* meshroll */
        const char *manifests; /* directory with crd-rollout.yaml */
        const char *dir;       /* private temporary directory */
} DemoPaths;

/*
 * Starts the cluster and its traffic, one agent per node, changes the
 * ztunnel image and runs `meshroll run` to the end; fills run (counters over
 * the upgrade only). Every process and socket it started is gone when it
 * returns. 0 whatever the rollout's outcome; -ECANCELED, -ETIMEDOUT,
 * -MR_ECONFIG (logged) or -errno when the run could not be carried out.
 */
int demo_run_meshroll(const DemoOptions *o, const char *scenario_yaml, const DemoPaths *paths,
                      usec_t deadline, DemoRun *run);

/* The same cluster, upgraded by the DaemonSet controller itself (RollingUpdate, no drain, no meshroll). */
int demo_run_inplace(const DemoOptions *o, const char *scenario_yaml, usec_t deadline, DemoRun *run);
