/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim-env.h — the harness the simulator's controller tests share: a store on
 * a fake clock and controllers driven by hand (sim_controllers_new_manual),
 * so a test advances simulated time exactly and never sleeps.
 *
 * Helpers fail the running cmocka test on any error.
 */
#pragma once

#include "controllers-internal.h"
#include "meshroll/time-util.h"
#include "store.h"

typedef struct Env {
        MrFakeClock fake;
        SimClock clock;
        SimStore *store;
        SimControllers *ctl;
} Env;

/* cmocka group or test setup/teardown: *state becomes the Env. */
int sim_env_setup(void **state);
int sim_env_teardown(void **state);
/* Runs the controllers until nothing is left to do now. */
void sim_env_settle(Env *e);
/* Advances simulated time by d, firing every timer on the way. */
void sim_env_run_for(Env *e, usec_t d);
/* Creates an object from JSON text. */
void sim_env_create(Env *e, const SimKind *k, const char *json);
/* Adds a Node; extra_spec is inserted into spec, alloc replaces status.allocatable (both may be NULL). */
void sim_env_add_node(Env *e, const char *name, const char *extra_spec, const char *alloc);
/* A copy of a stored object's string field (a static buffer, "" when absent). */
const char *sim_env_field(Env *e, const SimKind *k, const char *ns, const char *name, const char *a, const char *b,
                          const char *c);
