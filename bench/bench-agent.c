/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-agent — meshroll-agent's scan against its peers, in one run.
 *
 * Sets up N established loopback TCP sockets (default 100,000: 50,000
 * connections to one "ztunnel" port, so the agent tracks 50,000 sockets),
 * held by a few child processes (one process may hold at most
 * RLIMIT_NOFILE descriptors). As root each holder unshares a network
 * namespace of its own, so the sockets are spread over several namespaces
 * as on a node with many pods; otherwise all share the host's and each
 * holder uses its own source address so ephemeral ports do not run out.
 *
 * The agent sees the holders as pods through a recorded proc root: one
 * entry per holder whose cgroup names a pod UID and whose net/ and ns/ are
 * the holder's, and "1" for the host (this process). Timed, interleaved
 * and repeated, each a fresh process:
 *
 *   agent netlink  meshroll-agent --once --proc ROOT --source netlink
 *                  (sock_diag from inside each namespace, kernel-side filter)
 *   agent proc     meshroll-agent --once --proc ROOT --source proc
 *                  (parses every namespace's net/tcp and tcp6)
 *   cat            cat of the net/tcp and net/tcp6 the agent reads: every
 *                  holder's and the host's (the least any reader of the
 *                  same files can do)
 *   ss             ss -tan state established, once per namespace, the
 *                  host's included (iproute2 over netlink; it has no
 *                  all-namespaces mode)
 *
 * and reports medians, the agent/peer ratios against #10's targets
 * (≤ 1.15× cat, ≤ 0.5× ss), each agent's peak RSS (target ≤ 8 MiB) and CPU
 * per scan, from wait4()'s rusage. Nothing here is a test: it prints
 * numbers (docs/benchmarks.md).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "meshroll/macro.h"

#define MAX_HOLDERS 16
#define MAX_PROCS (MAX_HOLDERS + 1) /* processes in one measured command (ss runs once per namespace) */

typedef struct Measure {
        double wall[64];          /* seconds */
        double cpu[64];           /* user + system seconds */
        long maxrss_kib;
        unsigned n;
} Measure;

/* One measured command: a program run once, or once in each of several network namespaces. */
typedef struct Command {
        const char *name;
        char **argv;
        const char *netns[MAX_PROCS]; /* /proc/PID/ns/net to run in; none: run here once */
        unsigned n_netns;
} Command;

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

/* Brings lo up in the calling process's (new) network namespace. */
static int loopback_up(void)
{
        struct ifreq ifr = {};
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
        int r = ioctl(fd, SIOCGIFFLAGS, &ifr);
        if (r >= 0) {
                ifr.ifr_flags |= IFF_UP;
                r = ioctl(fd, SIOCSIFFLAGS, &ifr);
        }
        close(fd);
        return r;
}

/* Whether this process may create network namespaces (root, or CAP_SYS_ADMIN). */
static bool can_unshare_net(void)
{
        pid_t pid = fork();
        if (pid == 0)
                _exit(unshare(CLONE_NEWNET) == 0 ? 0 : 1);
        int status;
        return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/*
 * A child that holds `conns` connections to port from 127.0.0.<src>, in a
 * network namespace of its own when own_netns; reports on ready[1], exits
 * when done[1] is closed (EOF on done[0]).
 */
static pid_t holder(uint16_t port, unsigned src, unsigned conns, bool own_netns, const int ready[2],
                    const int done[2])
{
        pid_t pid = fork();
        if (pid != 0)
                return pid;
        /* Only the parent may hold done's write end, or EOF never comes. */
        close(done[1]);
        close(ready[0]);
        int ready_w = ready[1], done_r = done[0];

        if (own_netns && (unshare(CLONE_NEWNET) < 0 || loopback_up() < 0))
                _exit(4);
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

/* Starts argv with stdout to /dev/null, inside the network namespace netns when given. */
static pid_t spawn(char *const argv[], const char *netns)
{
        pid_t pid = fork();
        if (pid != 0)
                return pid;
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null < 0 || dup2(null, STDOUT_FILENO) < 0)
                _exit(126);
        if (netns) {
                int fd = open(netns, O_RDONLY | O_CLOEXEC);
                if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
                        _exit(126);
        }
        execvp(argv[0], argv);
        _exit(127);
}

/*
 * Runs a command (each of its processes one after the other); returns wall
 * seconds and fills CPU (summed) and peak RSS (largest). -1 on failure.
 */
static double run(const Command *c, double *ret_cpu, long *ret_maxrss)
{
        double t0 = now_s(), cpu = 0;
        long rss = 0;
        unsigned n = c->n_netns ? c->n_netns : 1;

        for (unsigned i = 0; i < n; i++) {
                struct rusage ru;
                int status;
                pid_t pid = spawn(c->argv, c->n_netns ? c->netns[i] : NULL);
                if (pid < 0 || wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        return -1;
                cpu += (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                       ru.ru_stime.tv_usec / 1e6;
                rss = MAX(rss, ru.ru_maxrss);
        }
        *ret_cpu = cpu;
        *ret_maxrss = rss;
        return now_s() - t0;
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

static int write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "we");
        if (!f)
                return -1;
        fputs(text, f);
        return fclose(f);
}

/*
 * The recorded proc root: "1" is this process (the host namespace, no app
 * sockets); each holder an entry whose cgroup names a pod and whose net/
 * and ns/ are the holder's own.
 */
static int make_proc_root(char *root, const pid_t *holders, unsigned n, bool pods)
{
        char path[512], target[64];

        snprintf(target, sizeof(target), "/proc/%d", (int)getpid());
        snprintf(path, sizeof(path), "%s/1", root);
        if (symlink(target, path) < 0)
                return -1;
        for (unsigned h = 0; pods && h < n; h++) {
                static const char *const links[] = { "net", "ns" };
                char cgroup[128];
                snprintf(path, sizeof(path), "%s/%d", root, (int)holders[h]);
                if (mkdir(path, 0755) < 0)
                        return -1;
                snprintf(path, sizeof(path), "%s/%d/cgroup", root, (int)holders[h]);
                snprintf(cgroup, sizeof(cgroup), "0::/kubepods/besteffort/pod%08x-0000-4000-8000-%012x/bench\n",
                         h + 1, (unsigned)holders[h]);
                if (write_file(path, cgroup) < 0)
                        return -1;
                for (size_t i = 0; i < ELEMENTSOF(links); i++) {
                        snprintf(path, sizeof(path), "%s/%d/%s", root, (int)holders[h], links[i]);
                        snprintf(target, sizeof(target), "/proc/%d/%s", (int)holders[h], links[i]);
                        if (symlink(target, path) < 0)
                                return -1;
                }
        }
        return 0;
}

static void remove_proc_root(const char *root, const pid_t *holders, unsigned n)
{
        char path[512];
        for (unsigned h = 0; h < n; h++) {
                static const char *const names[] = { "net", "ns", "cgroup", "" };
                for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                        snprintf(path, sizeof(path), "%s/%d/%s", root, (int)holders[h], names[i]);
                        (void)remove(path);
                }
        }
        snprintf(path, sizeof(path), "%s/1", root);
        (void)remove(path);
        (void)rmdir(root);
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                { "sockets", required_argument, NULL, 's' }, { "runs", required_argument, NULL, 'r' },
                { "agent", required_argument, NULL, 'a' },   { "output", required_argument, NULL, 'o' },
                { "no-netns", no_argument, NULL, 'n' },      { "help", no_argument, NULL, 'h' },
                {},
        };
        unsigned sockets = 100000, runs = 11;
        const char *agent = AGENT_PATH, *output = NULL;
        bool want_netns = true;
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
                case 'n':
                        want_netns = false;
                        break;
                case 'h':
                        printf("Usage: bench-agent [--sockets N] [--runs R] [--agent PATH] [--no-netns] [--output FILE]\n");
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
        if (n_holders < 4 && conns >= 8)
                n_holders = 4; /* several namespaces even at small sizes */
        per = (conns + n_holders - 1) / n_holders;
        if (n_holders > MAX_HOLDERS)
                return die(1, "too many sockets for the descriptor limit (raise RLIMIT_NOFILE)");
        bool netns = want_netns && can_unshare_net();

        int ready[2], done[2];
        if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(done, O_CLOEXEC) < 0)
                return die(1, strerror(errno));
        pid_t holders[MAX_HOLDERS];
        double t_setup = now_s();
        for (unsigned h = 0; h < n_holders; h++)
                holders[h] = holder(port, 10 + h, MIN(per, conns - h * per), netns, ready, done);
        int failed = 0;
        for (unsigned h = 0; h < n_holders; h++) {
                char ch;
                if (read(ready[0], &ch, 1) != 1)
                        failed = 1;
        }
        t_setup = now_s() - t_setup;

        char root[] = "/tmp/bench-agent-XXXXXX";
        if (!failed && (!mkdtemp(root) || make_proc_root(root, holders, n_holders, netns) < 0)) {
                fprintf(stderr, "bench-agent: cannot build the proc root %s: %s\n", root, strerror(errno));
                failed = 1;
        }

        /*
         * The files cat reads and the namespaces ss runs in: the host's (this
         * process's), then every holder's — or, without namespaces, the one
         * namespace all share.
         */
        unsigned n_ns = netns ? n_holders + 1 : 1, lines = 0;
        char files[2 * (MAX_HOLDERS + 1)][64], ns_paths[MAX_HOLDERS + 1][64];
        char *cat_argv[2 * (MAX_HOLDERS + 1) + 2] = { "cat" };
        for (unsigned i = 0; i < n_ns; i++) {
                int pid = netns ? (i == 0 ? (int)getpid() : (int)holders[i - 1]) : (int)holders[0];
                snprintf(files[2 * i], sizeof(files[0]), "/proc/%d/net/tcp", pid);
                snprintf(files[2 * i + 1], sizeof(files[0]), "/proc/%d/net/tcp6", pid);
                snprintf(ns_paths[i], sizeof(ns_paths[0]), "/proc/%d/ns/net", pid);
                cat_argv[1 + 2 * i] = files[2 * i];
                cat_argv[2 + 2 * i] = files[2 * i + 1];
                if (!failed)
                        lines += count_lines(files[2 * i]) + count_lines(files[2 * i + 1]);
        }
        char ports[16];
        snprintf(ports, sizeof(ports), "%u", port);
        /* Without namespaces the holders are the host: the agent reads them as "1" (the first holder). */
        char host_pid[16];
        snprintf(host_pid, sizeof(host_pid), "%d", netns ? 1 : (int)holders[0]);
        char *agent_nl[] = { (char *)agent, "--once", "--proc", netns ? root : "/proc", "--host-pid", host_pid,
                             "--ports", ports, "--outbound-port", ports, "--source", "netlink",
                             "--log-level", "error", NULL };
        char *agent_proc[] = { (char *)agent, "--once", "--proc", netns ? root : "/proc", "--host-pid", host_pid,
                               "--ports", ports, "--outbound-port", ports, "--source", "proc",
                               "--log-level", "error", NULL };
        char *ss_argv[] = { "ss", "-tan", "state", "established", NULL };
        Command cmds[4] = {
                { "meshroll-agent --once --source netlink", agent_nl, {}, 0 },
                { "meshroll-agent --once --source proc", agent_proc, {}, 0 },
                { "cat net/tcp net/tcp6 (the same files)", cat_argv, {}, 0 },
                { "ss -tan state established (in each namespace)", ss_argv, {}, 0 },
        };
        if (netns) {
                cmds[3].n_netns = n_ns;
                for (unsigned h = 0; h < n_ns; h++)
                        cmds[3].netns[h] = ns_paths[h];
        }
        Measure m[4] = {};

        for (unsigned i = 0; i < runs && !failed; i++)
                for (int k = 0; k < 4; k++) { /* interleaved: noise hits all four alike */
                        double cpu;
                        long rss;
                        double t = run(&cmds[k], &cpu, &rss);
                        if (t < 0) {
                                fprintf(stderr, "bench-agent: %s failed\n", cmds[k].name);
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
        if (root[strlen(root) - 1] != 'X')
                remove_proc_root(root, holders, n_holders);
        if (failed)
                return 1;

        double t[4];
        for (int k = 0; k < 4; k++)
                t[k] = median(m[k].wall, m[k].n);
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
                "Machine: %ld CPUs, %s. Command: `bench-agent --sockets %u --runs %u%s`.\n"
                "%u established loopback sockets: %u connections to port %u (the agent tracks %u sockets) "
                "held by %u processes %s, set up in %.1f s; the net/tcp and tcp6 read (host's included) have %u lines. "
                "Medians of %u interleaved runs, each command a fresh process (ss: one per namespace, "
                "times summed).\n\n"
                "| command | wall (median) | CPU (median) | peak RSS |\n|---|---:|---:|---:|\n",
                sysconf(_SC_NPROCESSORS_ONLN), cpu_model, sockets, runs, want_netns ? "" : " --no-netns",
                conns * 2, conns, port, conns, n_holders,
                netns ? "each in a network namespace of its own" : "in the host network namespace", t_setup,
                lines, runs);
        for (int k = 0; k < 4; k++)
                fprintf(out, "| %s | %.1f ms | %.1f ms | %.1f MiB |\n", cmds[k].name, t[k] * 1e3,
                        median(m[k].cpu, m[k].n) * 1e3, (double)m[k].maxrss_kib / 1024);
        fprintf(out, "\n| ratio | measured | target | met |\n|---|---:|---:|---|\n");
        static const char *const src[2] = { "netlink", "proc" };
        for (int a = 0; a < 2; a++) {
                fprintf(out, "| agent (%s) / cat | %.2f× | ≤ 1.15× | %s |\n", src[a], t[a] / t[2],
                        t[a] / t[2] <= 1.15 ? "yes" : "**no**");
                fprintf(out, "| agent (%s) / ss | %.2f× | ≤ 0.50× | %s |\n", src[a], t[a] / t[3],
                        t[a] / t[3] <= 0.5 ? "yes" : "**no**");
        }
        for (int a = 0; a < 2; a++)
                fprintf(out, "| agent (%s) peak RSS | %.1f MiB | ≤ 8 MiB | %s |\n", src[a],
                        (double)m[a].maxrss_kib / 1024, m[a].maxrss_kib <= 8 * 1024 ? "yes" : "**no**");
        if (out != stdout)
                fclose(out);
        return 0;
}
