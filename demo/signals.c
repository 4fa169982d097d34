/* SPDX-License-Identifier: Apache-2.0 */
/*
 * signals.c — SIGINT/SIGTERM as a signalfd (signals.h).
 *
 * Process-wide state on purpose: there is one signal disposition per
 * process, so a handle passed around would only pretend otherwise. The
 * signals are blocked before any thread exists, so the simulator's threads
 * inherit the mask and the signalfd is the only receiver.
 */
#include <poll.h>
#include <sys/signalfd.h>

#include "signals.h"

static int signal_fd = -1;
static int received;

int demo_signals_init(void)
{
        sigset_t mask;

        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0)
                return -EINVAL;
        /* Writes to a child's closed pipe or a peer's closed socket are errors, not deaths. */
        (void)signal(SIGPIPE, SIG_IGN);
        signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        return signal_fd < 0 ? -errno : 0;
}

int demo_signals_fd(void)
{
        return signal_fd;
}

bool demo_interrupted(void)
{
        struct signalfd_siginfo si;

        while (signal_fd >= 0 && read(signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                if (!received)
                        received = (int)si.ssi_signo;
        return received != 0;
}

int demo_signal_received(void)
{
        return received;
}

int demo_wait(usec_t d)
{
        struct pollfd p = {.fd = signal_fd, .events = POLLIN};
        usec_t ms = (d + USEC_PER_MSEC - 1) / USEC_PER_MSEC;

        if (demo_interrupted())
                return -ECANCELED;
        (void)poll(&p, signal_fd >= 0 ? 1 : 0, (int)MIN(ms, (usec_t)INT32_MAX));
        return demo_interrupted() ? -ECANCELED : 0;
}

void demo_signals_done(void)
{
        /* The signals stay blocked: one arriving now must not kill the process before it reports. */
        if (signal_fd >= 0)
                (void)close(signal_fd);
        signal_fd = -1;
}
