/* SPDX-License-Identifier: Apache-2.0 */
/*
 * report.h — what the demo prints at the end, and the same numbers as JSON.
 */
#pragma once

#include <stdio.h>

#include "demo.h"

/* Prints the per-group table and the two runs side by side (inplace may be NULL or not ran). */
void demo_report_print(FILE *f, const DemoOptions *o, const DemoRun *meshroll, const DemoRun *inplace);

/*
 * Writes the JSON report to path (replaced atomically: path.tmp then
 * rename). Errors: -errno, -ENOMEM. Schema in docs/demo.md.
 */
int demo_report_write_json(const char *path, const DemoOptions *o, const DemoRun *meshroll,
                           const DemoRun *inplace);

/* Whether the meshroll run is what the demo promises: completed (or, with the fault, rolled back) with no
 * reset and no failed request. */
bool demo_report_ok(const DemoOptions *o, const DemoRun *meshroll);
