/* SPDX-License-Identifier: Apache-2.0 */
/*
 * traffic-run.h — `meshroll-demo --traffic`: the traffic phase on a
 * simulated cluster with real loopback traffic (docs/demo.md, "The traffic
 * phase").
 */
#pragma once

#include <stdio.h>

#include "demo.h"
#include "runs.h"

typedef struct DemoTrafficRun {
        bool completed;   /* the phase finished: 100 % on v2, v1 scaled down */
        bool rolled_back; /* the phase rolled back (a gate failed) and the Rollout paused */
        bool timed_out;
        char phase[32], reason[64], message[512];
        unsigned weight_v1, weight_v2; /* the VirtualService's weights at the end */
        usec_t wall;                   /* meshroll run's start → the outcome, real µs */
        DemoTraffic traffic;           /* over the same span */
        uint64_t failed_budget;        /* failed requests a working gate allows (docs/demo.md) */
} DemoTrafficRun;

/*
 * Builds the cluster (reviews-v1 and -v2 behind a DestinationRule and a
 * VirtualService, a frontend calling reviews), starts its traffic, writes
 * o->targets_file, runs `meshroll run` with a traffic phase (gated when
 * o->prometheus) and waits for its outcome. 0 whatever the outcome;
 * -ECANCELED, -ETIMEDOUT, -errno (logged) when it could not be carried out.
 */
int demo_traffic_run(const DemoOptions *o, const DemoPaths *paths, usec_t deadline, DemoTrafficRun *ret);

/* The report, as text and JSON; whether the outcome is the one expected (completed, or rolled back with
 * --fail-share and --prometheus, within the budget). */
void demo_traffic_report(FILE *f, const DemoOptions *o, const DemoTrafficRun *t);
int demo_traffic_report_json(const char *path, const DemoOptions *o, const DemoTrafficRun *t);
bool demo_traffic_ok(const DemoOptions *o, const DemoTrafficRun *t);
