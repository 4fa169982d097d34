/* SPDX-License-Identifier: Apache-2.0 */
/*
 * signals.h — SIGINT and SIGTERM as a file descriptor.
 *
 * The demo is a sequence of bounded waits. Blocking the two signals in every
 * thread (before the simulator starts its own) and reading them from a
 * signalfd makes each wait interruptible in one place: demo_wait() sleeps
 * on the signalfd, so Ctrl-C ends a wait at once and the caller unwinds
 * through its cleanups. Children get the default mask back (procs.c).
 */
#pragma once

#include <signal.h>
#include <stdbool.h>

#include "meshroll/macro.h"

/* Blocks SIGINT and SIGTERM in this thread (call before any thread starts), ignores SIGPIPE, opens the
 * signalfd. -errno. */
int demo_signals_init(void);
/* The signalfd (readable once a signal is pending), or -1 before init. */
int demo_signals_fd(void);
/* True once SIGINT or SIGTERM arrived (sticky); drains the signalfd. */
bool demo_interrupted(void);
/* The signal that interrupted the demo, or 0. */
int demo_signal_received(void);
/* Sleeps d µs, or less when a signal arrives: 0, or -ECANCELED when interrupted. */
int demo_wait(usec_t d);
/* Closes the signalfd (the signals stay blocked until exit). */
void demo_signals_done(void);
