/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-agent — meshroll-agent's /proc scan against its peers, in one run.
 *
 * Sets up ≥ 50,000 established loopback TCP sockets (connections to one
 * "ztunnel" port, held by a few child processes, since one process may hold
 * at most RLIMIT_NOFILE descriptors; each child uses its own source address
 * so ephemeral ports do not run out), then times, interleaved and repeated:
 *
 *   agent   meshroll-agent --once --proc /proc --host-pid <holder> --ports P
 *           (walks /proc, reads every process's cgroup, parses net/tcp{,6},
 *           tracks every application socket)
 *   cat     cat /proc/<holder>/net/tcp /proc/<holder>/net/tcp6 > /dev/null
 *           (the least any reader of the same files can do)
 *   ss      ss -tan state established > /dev/null (iproute2, over netlink)
 *
 * and reports medians, the agent/peer ratios against the targets (≤ 1.15×
 * cat, ≤ 0.5× ss), the agent's peak RSS (target ≤ 8 MiB) and CPU per scan,
 * from wait4()'s rusage. Each measured command is a fresh process, so
 * process start-up is in every number alike. Nothing here is a test: it
 * prints numbers (docs/benchmarks.md).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "meshroll/macro.h"

#define MAX_HOLDERS 16

typedef struct Measure {
        double wall[64];          /* seconds */
        double cpu[64];           /* user + system seconds */
        long maxrss_kib;
        unsigned n;
} Measure;

/* Prints a message and returns code, for main's early exits. */
static int die(int code, const char *what)
{
        fprintf(stderr, "bench-agent: %s\n", what);
        return code;
}

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * A child that holds `conns` connections to port from 127.0.0.<src>; reports
 * on ready[1], exits when done[1] is closed (EOF on done[0]).
 */
static pid_t holder(uint16_t port, unsigned src, unsigned conns, const int ready[2], const int done[2])
{
        pid_t pid = fork();
        if (pid != 0)
                return pid;
        /* Only the parent may hold done's write end, or EOF never comes. */
        close(done[1]);
        close(ready[0]);
        int ready_w = ready[1], done_r = done[0];

        struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        struct sockaddr_in from = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000000u | (src & 0xffffffu)) };
        int one = 1;
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0); /* accepting never waits */
        if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
            bind(l, (struct sockaddr *)&to, sizeof(to)) < 0 || listen(l, 4096) < 0)
                _exit(2);
        for (unsigned i = 0; i < conns; i++) {
                int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (c < 0 || bind(c, (struct sockaddr *)&from, sizeof(from)) < 0 ||
                    connect(c, (struct sockaddr *)&to, sizeof(to)) < 0)
                        _exit(3);
                /* SO_REUSEPORT spreads connections over the listeners: accept whatever is queued here. */
                while (accept4(l, NULL, NULL, SOCK_CLOEXEC) >= 0)
                        ;
        }
        /* The last connections may still be on their way into the queue. */
        for (int idle = 0; idle < 200; idle++) {
                if (accept4(l, NULL, NULL, SOCK_CLOEXEC) >= 0)
                        idle = 0;
                else
                        usleep(1000);
        }
        (void)!write(ready_w, "r", 1);
        char ch;
        (void)!read(done_r, &ch, 1);
        _exit(0);
}

/* Runs argv with stdout to /dev/null; returns wall seconds and fills cpu / maxrss. -1 on failure. */
static double run(char *const argv[], double *ret_cpu, long *ret_maxrss)
{
        posix_spawn_file_actions_t fa;
        struct rusage ru;
        pid_t pid;
        int status;

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
        double t0 = now_s();
        if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
                posix_spawn_file_actions_destroy(&fa);
                return -1;
        }
        posix_spawn_file_actions_destroy(&fa);
        if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -1;
        double t = now_s() - t0;
        *ret_cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                   ru.ru_stime.tv_usec / 1e6;
        *ret_maxrss = ru.ru_maxrss;
        return t;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

static double median(const double *v, unsigned n)
{
        double s[64];
        memcpy(s, v, n * sizeof(double));
        qsort(s, n, sizeof(double), cmp_double);
        return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static unsigned count_lines(const char *path)
{
        FILE *f = fopen(path, "re");
        unsigned n = 0;
        int c;
        if (!f)
                return 0;
        while ((c = getc(f)) != EOF)
                n += c == '\n';
        fclose(f);
        return n;
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                { "sockets", required_argument, NULL, 's' }, { "runs", required_argument, NULL, 'r' },
                { "agent", required_argument, NULL, 'a' },   { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },          {},
        };
        unsigned sockets = 50000, runs = 11;
        const char *agent = AGENT_PATH, *output = NULL;
        uint16_t port = 15001;
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                char *end;
                switch (c) {
                case 's':
                        sockets = (unsigned)strtoul(optarg, &end, 10);
                        if (*end || sockets < 2 || sockets > 200000)
                                return die(2, "--sockets: 2..200000");
                        break;
                case 'r':
                        runs = (unsigned)strtoul(optarg, &end, 10);
                        if (*end || runs < 1 || runs > 64)
                                return die(2, "--runs: 1..64");
                        break;
                case 'a':
                        agent = optarg;
                        break;
                case 'o':
                        output = optarg;
                        break;
                case 'h':
                        printf("Usage: bench-agent [--sockets N] [--runs R] [--agent PATH] [--output FILE]\n");
                        return 0;
                default:
                        return 2;
                }
        }

        /* Descriptors: every holder takes as many as its limit allows. */
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        unsigned conns = (sockets + 1) / 2; /* each connection is two sockets */
        unsigned per = (unsigned)MIN((rlim_t)7000, rl.rlim_cur > 256 ? (rl.rlim_cur - 128) / 2 : 64);
        unsigned n_holders = (conns + per - 1) / per;
        if (n_holders > MAX_HOLDERS)
                return die(1, "too many sockets for the descriptor limit (raise RLIMIT_NOFILE)");

        int ready[2], done[2];
        if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(done, O_CLOEXEC) < 0)
                return die(1, strerror(errno));
        pid_t holders[MAX_HOLDERS];
        double t_setup = now_s();
        for (unsigned h = 0; h < n_holders; h++)
                holders[h] = holder(port, 10 + h, MIN(per, conns - h * per), ready, done);
        int failed = 0;
        for (unsigned h = 0; h < n_holders; h++) {
                char ch;
                if (read(ready[0], &ch, 1) != 1)
                        failed = 1;
        }
        t_setup = now_s() - t_setup;

        char tcp[64], tcp6[64], hostpid[16], ports[16];
        snprintf(tcp, sizeof(tcp), "/proc/%d/net/tcp", (int)holders[0]);
        snprintf(tcp6, sizeof(tcp6), "/proc/%d/net/tcp6", (int)holders[0]);
        snprintf(hostpid, sizeof(hostpid), "%d", (int)holders[0]);
        snprintf(ports, sizeof(ports), "%u", port);
        unsigned lines = count_lines(tcp) + count_lines(tcp6);

        char *agent_argv[] = { (char *)agent, "--once", "--proc", "/proc", "--host-pid", hostpid, "--ports", ports,
                               "--outbound-port", ports, "--log-level", "error", NULL };
        char *cat_argv[] = { "cat", tcp, tcp6, NULL };
        char *ss_argv[] = { "ss", "-tan", "state", "established", NULL };
        Measure m[3] = {};
        const char *names[3] = { "meshroll-agent --once", "cat net/tcp net/tcp6", "ss -tan state established" };
        char *const *cmds[3] = { agent_argv, cat_argv, ss_argv };

        for (unsigned i = 0; i < runs && !failed; i++)
                for (int k = 0; k < 3; k++) { /* interleaved: noise hits all three alike */
                        double cpu;
                        long rss;
                        double t = run(cmds[k], &cpu, &rss);
                        if (t < 0) {
                                fprintf(stderr, "bench-agent: %s failed\n", names[k]);
                                failed = 1;
                                break;
                        }
                        m[k].wall[m[k].n] = t;
                        m[k].cpu[m[k].n++] = cpu;
                        m[k].maxrss_kib = MAX(m[k].maxrss_kib, rss);
                }

        /* Release the holders. */
        close(done[1]);
        for (unsigned h = 0; h < n_holders; h++)
                waitpid(holders[h], NULL, 0);
        if (failed)
                return 1;

        double agent_t = median(m[0].wall, m[0].n), cat_t = median(m[1].wall, m[1].n),
               ss_t = median(m[2].wall, m[2].n);
        char cpu_model[128] = "unknown", line[256];
        FILE *ci = fopen("/proc/cpuinfo", "re");
        while (ci && fgets(line, sizeof(line), ci))
                if (strncmp(line, "model name", 10) == 0) {
                        const char *v = strchr(line, ':');
                        snprintf(cpu_model, sizeof(cpu_model), "%s", v ? v + 2 : line);
                        cpu_model[strcspn(cpu_model, "\n")] = 0;
                        break;
                }
        if (ci)
                fclose(ci);

        FILE *out = output ? fopen(output, "we") : stdout;
        if (!out)
                return die(1, strerror(errno));
        fprintf(out,
                "## meshroll-agent scan\n\n"
                "Machine: %ld CPUs, %s. Command: `bench-agent --sockets %u --runs %u`.\n"
                "%u established loopback sockets (%u connections to port %u in %u holder processes, set up in %.1f s); "
                "the holder's net/tcp and tcp6 have %u lines. Medians of %u interleaved runs, each a fresh process.\n\n"
                "| command | wall (median) | CPU (median) | peak RSS |\n|---|---:|---:|---:|\n",
                sysconf(_SC_NPROCESSORS_ONLN), cpu_model, sockets, runs, conns * 2, conns, port, n_holders, t_setup,
                lines, runs);
        for (int k = 0; k < 3; k++)
                fprintf(out, "| %s | %.1f ms | %.1f ms | %.1f MiB |\n", names[k], median(m[k].wall, m[k].n) * 1e3,
                        median(m[k].cpu, m[k].n) * 1e3, (double)m[k].maxrss_kib / 1024);
        fprintf(out,
                "\n| ratio | measured | target | met |\n|---|---:|---:|---|\n"
                "| agent / cat | %.2f× | ≤ 1.15× | %s |\n"
                "| agent / ss | %.2f× | ≤ 0.50× | %s |\n"
                "| agent peak RSS | %.1f MiB | ≤ 8 MiB | %s |\n",
                agent_t / cat_t, agent_t / cat_t <= 1.15 ? "yes" : "**no**", agent_t / ss_t,
                agent_t / ss_t <= 0.5 ? "yes" : "**no**", (double)m[0].maxrss_kib / 1024,
                m[0].maxrss_kib <= 8 * 1024 ? "yes" : "**no**");
        if (out != stdout)
                fclose(out);
        return 0;
}
