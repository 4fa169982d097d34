/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim.h — a whole simulated cluster behind one handle: store, controllers
 * and the HTTP API server. meshroll-kubesim's main() is a thin wrapper;
 * tests link this in-process (production binaries never do).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "dataplane.h"
#include "meshroll/errors.h"
#include "scenario.h"
#include "store.h"

typedef struct Sim Sim;

typedef struct SimOptions {
        const char *scenario_path;   /* or scenario_data */
        const char *scenario_data;
        size_t scenario_size;
        const char *listen;          /* "127.0.0.1:0" (default): any free port */
        double speed;                /* 0 → 1 */
        uint64_t seed;
        const char *audit_path;      /* JSON lines of every write, or NULL */
        bool tls;                    /* serve HTTPS with tls_cert/tls_key */
        const char *tls_cert, *tls_key; /* PEM files */
        const char *token;           /* when set, require "Authorization: Bearer <token>" */
        bool dataplane;              /* run the real data plane (dataplane.h, docs/dataplane.md) */
        const SimDataplaneOptions *dataplane_options; /* NULL: defaults */
} SimOptions;

/* Loads the scenario, starts controllers and the server. err names what failed. */
int sim_start(const SimOptions *opts, Sim **ret, MrError *err);
/* "http://127.0.0.1:PORT" (borrowed). */
const char *sim_url(const Sim *sim);
SimStore *sim_get_store(Sim *sim);
/* Faults may be changed while running (under the store lock). Borrowed. */
SimFaults *sim_get_faults(Sim *sim);
/* The data plane (borrowed), or NULL when SimOptions.dataplane was false. */
SimDataplane *sim_get_dataplane(Sim *sim);
/* Stops the server and controllers, closes every connection. Returns NULL. */
Sim *sim_stop(Sim *sim);
