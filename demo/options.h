/* SPDX-License-Identifier: Apache-2.0 */
/*
 * options.h — meshroll-demo's command line.
 */
#pragma once

#include "demo.h"

/*
 * Parses argv into *o (defaults first). Returns 0 to run, 1 after printing
 * --help or --version (exit 0), or -MR_ECONFIG after printing one message
 * naming the flag and what was expected (exit 2).
 */
int demo_options_parse(int argc, char **argv, DemoOptions *o);
void demo_options_done(DemoOptions *o);
