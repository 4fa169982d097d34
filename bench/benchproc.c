/* SPDX-License-Identifier: Apache-2.0 */
/*
 * benchproc.c — see benchproc.h. Children are fork+exec with
 * PR_SET_PDEATHSIG(SIGKILL), so a benchmark killed by a timeout does not
 * leave simulators behind; waits poll waitpid(WNOHANG) every 10 ms up to
 * their bound (wait4 gives the child's rusage: CPU time and peak RSS).
 */
#include <ftw.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchproc.h"
#include "meshroll/kubeconfig.h"
#include "meshroll/macro.h"

usec_t bp_now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / 1000;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

double bp_median(double *v, size_t n)
{
        if (n == 0)
                return 0;
        qsort(v, n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int bp_tmpdir(const char *prefix, char **ret)
{
        const char *t = getenv("TMPDIR");
        char *d;

        if (asprintf(&d, "%s/%s-XXXXXX", isempty(t) ? "/tmp" : t, prefix) < 0)
                return -ENOMEM;
        if (!mkdtemp(d)) {
                int r = -errno;
                free(d);
                return r;
        }
        *ret = d;
        return 0;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        (void)(type == FTW_DP ? rmdir(path) : unlink(path));
        return 0;
}

void bp_rmdir(const char *dir)
{
        if (dir && !getenv("MESHROLL_KEEP_BENCH_DIRS"))
                (void)nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int bp_write_file(const char *path, const char *s)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        size_t len = strlen(s), off = 0;

        if (fd < 0)
                return -errno;
        while (off < len) {
                ssize_t n = write(fd, s + off, len - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                off += (size_t)n;
        }
        return 0;
}

int bp_spawn(char *const argv[], const char *log, BpChild *ret)
{
        pid_t parent = getpid(), pid = fork();

        if (pid < 0)
                return -errno;
        if (pid == 0) {
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
                int out = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (in < 0 || out < 0 || dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
                    dup2(out, STDERR_FILENO) < 0)
                        _exit(127);
                execv(argv[0], argv);
                _exit(127);
        }
        *ret = (BpChild){.pid = pid};
        return 0;
}

int bp_wait(BpChild *c, usec_t timeout)
{
        usec_t end = bp_now() + timeout;

        if (c->reaped || c->pid <= 0)
                return 1;
        for (;;) {
                pid_t p = wait4(c->pid, &c->status, WNOHANG, &c->usage);
                if (p == c->pid) {
                        c->reaped = true;
                        return 1;
                }
                if (p < 0 && errno != EINTR)
                        return -errno;
                if (bp_now() >= end)
                        return 0;
                (void)usleep(10 * 1000);
        }
}

void bp_stop(BpChild *c)
{
        if (c->reaped || c->pid <= 0)
                return;
        (void)kill(c->pid, SIGTERM);
        if (bp_wait(c, 10 * USEC_PER_SEC) != 0)
                return;
        (void)kill(c->pid, SIGKILL);
        (void)bp_wait(c, 10 * USEC_PER_SEC);
}

double bp_cpu_seconds(const BpChild *c)
{
        return (double)c->usage.ru_utime.tv_sec + (double)c->usage.ru_utime.tv_usec / 1e6 +
               (double)c->usage.ru_stime.tv_sec + (double)c->usage.ru_stime.tv_usec / 1e6;
}

uint64_t bp_proc_kb(pid_t pid, const char *key)
{
        char path[64], line[256];
        _cleanup_fclose_ FILE *f = NULL;
        size_t klen = strlen(key);

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        if (!(f = fopen(path, "re")))
                return 0;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, key, klen) == 0 && line[klen] == ':')
                        return strtoull(line + klen + 1, NULL, 10);
        return 0;
}

int bp_sim_start(const char *sim, const char *dir, const char *name, const char *scenario_yaml, double speed,
                 const char *audit, char *const extra[], usec_t timeout, BpChild *ret, char *url, size_t url_size)
{
        _cleanup_free_ char *scenario = NULL, *log = NULL;
        char speed_s[32], *argv[32];
        size_t n = 0;
        BpChild c;
        int r;

        if (asprintf(&scenario, "%s/%s.yaml", dir, name) < 0 || asprintf(&log, "%s/%s.log", dir, name) < 0)
                return -ENOMEM;
        if ((r = bp_write_file(scenario, scenario_yaml)) < 0)
                return r;
        (void)unlink(log);
        snprintf(speed_s, sizeof(speed_s), "%g", speed);
        argv[n++] = (char *)sim;
        argv[n++] = (char *)"--scenario";
        argv[n++] = scenario;
        argv[n++] = (char *)"--speed";
        argv[n++] = speed_s;
        argv[n++] = (char *)"--log-level";
        argv[n++] = (char *)"notice";
        if (audit) {
                argv[n++] = (char *)"--audit";
                argv[n++] = (char *)audit;
        }
        for (size_t i = 0; extra && extra[i] && n < ELEMENTSOF(argv) - 1; i++)
                argv[n++] = extra[i];
        argv[n] = NULL;
        if ((r = bp_spawn(argv, log, &c)) < 0)
                return r;

        /* The URL is the log's first line that starts with http (the simulator prints it on stdout). */
        for (usec_t end = bp_now() + timeout; bp_now() < end;) {
                _cleanup_fclose_ FILE *f = fopen(log, "re");
                char line[512];
                while (f && fgets(line, sizeof(line), f))
                        if (startswith(line, "http://") || startswith(line, "https://")) {
                                line[strcspn(line, "\r\n")] = 0;
                                snprintf(url, url_size, "%s", line);
                                *ret = c;
                                return 0;
                        }
                if (bp_wait(&c, 0) == 1)
                        return -ECHILD;
                (void)usleep(20 * 1000);
        }
        bp_stop(&c);
        return -ETIMEDOUT;
}

int bp_client(const char *url, KubeClient **ret)
{
        _cleanup_(kube_config_freep) KubeConfig *config = NULL;
        KubeConfigOptions co = {.server = url};
        KubeClientOptions o = {.qps = -1, .request_timeout = 30 * USEC_PER_SEC, .user_agent = "meshroll-bench"};
        MrError err = {};
        int r;

        r = kube_config_load(&co, &config, &err);
        if (r < 0)
                return r;
        return kube_client_new(config, &o, ret, &err);
}

void bp_machine(char *buf, size_t size)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/cpuinfo", "re");
        char line[512], model[256] = "unknown CPU";
        struct utsname u = {};
        long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);

        while (f && fgets(line, sizeof(line), f)) {
                char *colon = strchr(line, ':');
                if (startswith(line, "model name") && colon) {
                        snprintf(model, sizeof(model), "%s", colon + 2);
                        model[strcspn(model, "\n")] = 0;
                        break;
                }
        }
        (void)uname(&u);
        snprintf(buf, size, "%ld × %s, %.1f GiB RAM, %s %s", sysconf(_SC_NPROCESSORS_ONLN), model,
                 (double)pages * (double)psize / (1024.0 * 1024 * 1024), u.sysname, u.release);
}

void bp_print_tail(FILE *out, const char *path, unsigned lines)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char **ring = calloc(lines, sizeof(char *)), line[1024];
        size_t n = 0;

        if (!f || !ring) {
                free(ring);
                return;
        }
        while (fgets(line, sizeof(line), f)) {
                free(ring[n % lines]);
                ring[n % lines] = strdup(line);
                n++;
        }
        for (size_t i = n > lines ? n - lines : 0; i < n; i++)
                if (ring[i % lines])
                        fprintf(out, "    %s", ring[i % lines]);
        for (size_t i = 0; i < lines; i++)
                free(ring[i]);
        free(ring);
}
