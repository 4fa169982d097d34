/* SPDX-License-Identifier: Apache-2.0 */
/*
 * procs.c — spawning and stopping the demo's children (procs.h).
 *
 * posix_spawn, never system() or a shell: arguments are passed as they are.
 * Every child leads its own process group (POSIX_SPAWN_SETPGROUP with 0),
 * so a terminal's Ctrl-C reaches only the demo, which then stops each group
 * itself, in order, and anything a child might have started goes with it.
 * The demo blocks SIGINT/SIGTERM and ignores SIGPIPE; children get the
 * default mask and dispositions back (POSIX_SPAWN_SETSIGMASK/SETSIGDEF),
 * or they could not be stopped with SIGTERM.
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "procs.h"

extern char **environ;

static bool executable(const char *path)
{
        struct stat st;
        return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int demo_find_binary(const char *name, const char *subdir, char **ret)
{
        char self[PATH_MAX], path[PATH_MAX + 256];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

        if (n > 0) {
                self[n] = 0;
                char *slash = strrchr(self, '/');
                if (slash) {
                        *slash = 0;
                        snprintf(path, sizeof(path), "%s/%s", self, name);
                        if (executable(path))
                                return (*ret = strdup(path)) ? 0 : -ENOMEM;
                        if (subdir) {
                                snprintf(path, sizeof(path), "%s/../%s/%s", self, subdir, name);
                                if (executable(path))
                                        return (*ret = strdup(path)) ? 0 : -ENOMEM;
                        }
                }
        }
        const char *p = getenv("PATH");
        if (isempty(p))
                p = "/usr/local/bin:/usr/bin:/bin";
        while (*p) {
                size_t len = strcspn(p, ":");
                if (len > 0 && len < PATH_MAX) {
                        snprintf(path, sizeof(path), "%.*s/%s", (int)len, p, name);
                        if (executable(path))
                                return (*ret = strdup(path)) ? 0 : -ENOMEM;
                }
                p += len + (p[len] == ':');
        }
        return -ENOENT;
}

int demo_spawn(DemoChildren *set, const char *name, char *const *argv, int out_fd, int err_fd,
               pid_t *ret_pid)
{
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, defaults;
        pid_t pid;
        int r;

        DemoChild *v = reallocarray(set->v, set->n + 1, sizeof(DemoChild));
        if (!v)
                return -ENOMEM;
        set->v = v;
        char *copy = strdup(name);
        if (!copy)
                return -ENOMEM;

        sigemptyset(&none);
        sigemptyset(&defaults);
        sigaddset(&defaults, SIGINT);
        sigaddset(&defaults, SIGTERM);
        sigaddset(&defaults, SIGPIPE);
        sigaddset(&defaults, SIGCHLD);
        posix_spawnattr_init(&attr);
        posix_spawnattr_setflags(&attr,
                                 POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        posix_spawnattr_setpgroup(&attr, 0);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &defaults);

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        if (out_fd < 0)
                posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        else if (out_fd != 1)
                posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
        if (err_fd < 0)
                posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        else if (err_fd != 2)
                posix_spawn_file_actions_adddup2(&fa, err_fd, 2);

        r = posix_spawn(&pid, argv[0], &fa, &attr, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (r != 0) {
                free(copy);
                return -r;
        }
        set->v[set->n++] = (DemoChild){.pid = pid, .name = copy};
        if (ret_pid)
                *ret_pid = pid;
        return 0;
}

static DemoChild *find(DemoChildren *set, pid_t pid)
{
        for (size_t i = 0; i < set->n; i++)
                if (set->v[i].pid == pid)
                        return &set->v[i];
        return NULL;
}

/* Reaps c if it has exited; true once it is reaped. */
static bool reap(DemoChild *c)
{
        int status = 0;
        if (c->reaped)
                return true;
        pid_t r = waitpid(c->pid, &status, WNOHANG);
        if (r == c->pid || (r < 0 && errno == ECHILD)) {
                c->status = status;
                c->reaped = true;
        }
        return c->reaped;
}

int demo_child_exited(DemoChildren *set, pid_t pid, int *ret_status)
{
        DemoChild *c = find(set, pid);
        if (!c)
                return -ENOENT;
        if (!reap(c))
                return 0;
        if (ret_status)
                *ret_status = c->status;
        return 1;
}

static void pause_ms(unsigned ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
        (void)nanosleep(&ts, NULL);
}

static usec_t now_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / NSEC_PER_USEC;
}

/* SIGTERM to every live child's group, wait up to grace for all, SIGKILL the rest, reap. */
static void stop_all(DemoChild *v, size_t n, usec_t grace)
{
        for (size_t i = 0; i < n; i++)
                if (!reap(&v[i]))
                        (void)kill(-v[i].pid, SIGTERM);
        usec_t end = now_us() + grace;
        for (;;) {
                bool all = true;
                for (size_t i = 0; i < n; i++)
                        all = reap(&v[i]) && all;
                if (all || now_us() >= end)
                        break;
                pause_ms(20);
        }
        for (size_t i = 0; i < n; i++) {
                if (v[i].reaped)
                        continue;
                (void)kill(-v[i].pid, SIGKILL);
                (void)kill(v[i].pid, SIGKILL);
                int status = 0;
                while (waitpid(v[i].pid, &status, 0) < 0 && errno == EINTR)
                        ;
                v[i].status = status;
                v[i].reaped = true;
        }
}

void demo_child_stop(DemoChildren *set, pid_t pid, usec_t grace)
{
        DemoChild *c = find(set, pid);
        if (c)
                stop_all(c, 1, grace);
}

void demo_children_stop(DemoChildren *set, usec_t grace)
{
        stop_all(set->v, set->n, grace);
        for (size_t i = 0; i < set->n; i++)
                free(set->v[i].name);
        free(set->v);
        *set = (DemoChildren){};
}

char *demo_status_string(int status, char *buf, size_t size)
{
        if (WIFEXITED(status))
                snprintf(buf, size, "exited with %d", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
                snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status),
                         strsignal(WTERMSIG(status)));
        else
                snprintf(buf, size, "status %d", status);
        return buf;
}
