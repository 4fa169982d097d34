/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-kubesim — how fast meshroll-kubesim serves a big cluster, and how
 * much memory it needs to hold one (issue 3, "Speed"; docs/benchmarks.md).
 *
 *   bench-kubesim [--nodes 5000] [--pods 100000] [--watchers 50] [--events 2000]
 *                 [--gets 10000] [--lists 3] [--concurrency 16] [--speed 1]
 *                 [--scheduled | --pinned] [--timeout 1800] [--sim PATH] [--output FILE]
 *
 * Design. The simulator runs as its own process (the binary, spawned with a
 * generated scenario), so its RSS is its own and not the client's. The
 * cluster is built in two steps: the scenario holds only the nodes (the
 * nodes-only RSS is read then), and the benchmark creates the Deployments
 * through the API, 1000 replicas each, and waits until every pod is Ready:
 * the simulated scheduler places every pod (its per-node accounting makes a
 * placement cheap at any size). --pinned builds one Deployment per node with
 * its pods pinned there by spec.template.spec.nodeName instead, which keeps
 * the scheduler out of the build (the only way before it kept per-node
 * allocation: it used to sum every node's pods for every pod it placed).
 *
 * Every request goes through the project's own KubeClient over loopback,
 * blocking and on sd-event. Each measure is taken twice in the same run,
 * against the simulator and against a peer (peer.h): a trivial server that
 * answers the same requests with the same bodies from memory. The ratio
 * simulator/peer is what the report states; absolute rates depend on the
 * machine, the ratio much less (docs/benchmarks.md says how to read it).
 *
 * Bounded: every wait has a deadline (--timeout for the build, fixed ones
 * for the rest); the simulator gets SIGTERM then SIGKILL and dies with the
 * benchmark anyway (PR_SET_PDEATHSIG); the temporary directory (scenario,
 * simulator log) is removed on every exit path. Exit status: 0 when every
 * measure was taken (a missed target is reported, not an error), 1 on
 * failure, 2 on bad usage.
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "meshroll/json-util.h"
#include "meshroll/kube.h"
#include "meshroll/kubeconfig.h"
#include "meshroll/log.h"
#include "meshroll/macro.h"
#include "meshroll/time-util.h"
#include "peer.h"

#ifndef KUBESIM_PATH
#define KUBESIM_PATH "meshroll-kubesim"
#endif

#define GIB (1024.0 * 1024.0 * 1024.0)
#define RSS_TARGET_FULL (1024ULL * 1024 * 1024) /* "well under 1 GiB": the whole scenario */
#define RSS_TARGET_NODES (512ULL * 1024 * 1024) /* the nodes alone: half of it */
#define GET_SAMPLE 1000
#define PAGE "500"
#define ANN_BURST "bench.meshroll.io/burst"
#define PHASE_TIMEOUT (300 * USEC_PER_SEC)

typedef struct Options {
        unsigned nodes, pods, watchers, events, gets, lists, concurrency, timeout;
        double speed;
        bool scheduled;
        const char *sim_path, *output;
} Options;

/* One measure: a rate against the simulator and the same against the peer. */
typedef struct Measure {
        const char *name, *unit;
        double sim, peer; /* NAN when not taken */
        char note[160];
} Measure;

enum { M_LIST_PODS, M_LIST_NODES, M_GET, M_GET_ASYNC, M_WATCH, M_WRITES, _M_MAX };

typedef struct Bench {
        Options o;
        char tmpdir[256], scenario[300], log[300];
        pid_t pid;
        char url[128];
        Peer *peer;
        char **nodes; /* node names, from the API */
        size_t n_nodes;
        char **paths; /* a sample of pod paths for GETs and writes */
        size_t n_paths;
        size_t pods_ready, pods_total;
        double build_s, create_s, sim_cpu_build_s;
        double idle_cpu,
            idle_window_s; /* the simulator's CPU share with no client, over one resync period */
        uint64_t rss_nodes, rss_full, rss_end, hwm;
        Measure m[_M_MAX];
        char token[40]; /* this run's burst annotations: "<token>-<i>", "<token>-sync" */
        char incomplete[512];
} Bench;

/* ---- small helpers ---------------------------------------------------------------------------- */

static usec_t now_us(void)
{
        return mr_now_monotonic(NULL);
}

static double secs(usec_t d)
{
        return (double)d / (double)USEC_PER_SEC;
}

static _printf_(2, 3) void note_incomplete(Bench *b, const char *fmt, ...)
{
        size_t l = strlen(b->incomplete);
        va_list ap;
        if (l && l + 2 < sizeof b->incomplete)
                l += (size_t)snprintf(b->incomplete + l, sizeof b->incomplete - l, "; ");
        va_start(ap, fmt);
        if (l < sizeof b->incomplete)
                vsnprintf(b->incomplete + l, sizeof b->incomplete - l, fmt, ap);
        va_end(ap);
}

static void strv_free_n(char **v, size_t n)
{
        for (size_t i = 0; v && i < n; i++)
                free(v[i]);
        free(v);
}

static int strv_push(char ***v, size_t *n, char *s)
{
        char **w = realloc(*v, (*n + 1) * sizeof *w);
        if (!w) {
                free(s);
                return -ENOMEM;
        }
        w[(*n)++] = s;
        *v = w;
        return 0;
}

/* A "Key:   value kB" line of /proc/PID/status, in bytes; 0 when unreadable. */
static uint64_t proc_status_kb(pid_t pid, const char *key)
{
        char path[64], line[256];
        uint64_t v = 0;
        size_t l = strlen(key);
        snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof line, f))
                if (strneq(line, key, l) && line[l] == ':') {
                        v = strtoull(line + l + 1, NULL, 10) * 1024;
                        break;
                }
        fclose(f);
        return v;
}

/* utime + stime of a process, in seconds. */
static double proc_cpu_s(pid_t pid)
{
        char path[64], buf[1024];
        unsigned long long ut = 0, st = 0;
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return NAN;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *p = strrchr(buf, ')'); /* comm may hold spaces */
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
                return NAN;
        return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int client_new(const char *url, KubeClient **ret)
{
        _cleanup_(kube_config_freep) KubeConfig *config = NULL;
        KubeConfigOptions ko = {.server = url};
        KubeClientOptions co = {
            .qps = -1, /* unlimited: the benchmark measures the server, not the client's limiter */
            .max_retries = 2,
            .request_timeout = 300 * USEC_PER_SEC,
            .user_agent = "meshroll-bench",
        };
        MrError err = {};
        int r = kube_config_load(&ko, &config, &err);
        if (r < 0)
                return r;
        return kube_client_new(config, &co, ret, &err);
}

/* ---- the simulator process ---------------------------------------------------------------------- */

static int write_scenario(Bench *b)
{
        static const char *const zones[] = {"zone-a", "zone-b", "zone-c"};
        unsigned pools = MIN(10u, b->o.nodes), per_node = b->o.nodes ? b->o.pods / b->o.nodes + 1 : 0;
        FILE *f = fopen(b->scenario, "wxe");
        if (!f)
                return -errno;
        fprintf(f, "# Generated by bench-kubesim: nodes only; the Deployments are created through the API.\n"
                   "name: bench-kubesim\nnodes:\n");
        for (unsigned p = 0; p < pools; p++) {
                unsigned count = b->o.nodes / pools + (p < b->o.nodes % pools);
                fprintf(f,
                        "  - {name: \"{pool}-{i}\", count: %u, pool: pool-%c, zone: %s,"
                        " capacity: {cpu: \"64\", memory: 256Gi, pods: \"%u\"}}\n",
                        count, 'a' + p, zones[p % ELEMENTSOF(zones)], MAX(110u, per_node + 10));
        }
        return fclose(f) == 0 ? 0 : -errno;
}

/* Reads the URL the simulator prints when it serves. */
static int read_url(Bench *b, int fd)
{
        usec_t deadline = now_us() + 120 * USEC_PER_SEC;
        size_t off = 0;
        while (now_us() < deadline) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                int r = poll(&pfd, 1, 200);
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r > 0) {
                        ssize_t n = read(fd, b->url + off, sizeof b->url - 1 - off);
                        if (n <= 0)
                                return -EPIPE; /* exited before serving */
                        off += (size_t)n;
                        b->url[off] = 0;
                        char *nl = strchr(b->url, '\n');
                        if (nl) {
                                *nl = 0;
                                return 0;
                        }
                        if (off == sizeof b->url - 1)
                                return -EBADMSG;
                }
        }
        return -ETIMEDOUT;
}

static int sim_spawn(Bench *b)
{
        char speed[32];
        int p[2];
        snprintf(speed, sizeof speed, "%g", b->o.speed);
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0) {
                int r = -errno;
                close(p[0]);
                close(p[1]);
                return r;
        }
        if (pid == 0) {
                /* Dies with the benchmark, whatever happens to it. */
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                int log = open(b->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (dup2(p[1], STDOUT_FILENO) < 0 || log < 0 || dup2(log, STDERR_FILENO) < 0)
                        _exit(127);
                execl(b->o.sim_path, b->o.sim_path, "--scenario", b->scenario, "--listen", "127.0.0.1:0",
                      "--speed", speed, "--log-level", "warning", (char *)NULL);
                _exit(127);
        }
        close(p[1]);
        b->pid = pid;
        int r = read_url(b, p[0]);
        close(p[0]);
        return r;
}

static void sim_kill(Bench *b)
{
        if (b->pid <= 0)
                return;
        (void)kill(b->pid, SIGTERM);
        for (int i = 0; i < 200; i++) { /* 10 s to stop cleanly */
                if (waitpid(b->pid, NULL, WNOHANG) == b->pid) {
                        b->pid = 0;
                        return;
                }
                usleep(50 * 1000);
        }
        (void)kill(b->pid, SIGKILL);
        (void)waitpid(b->pid, NULL, 0);
        b->pid = 0;
}

/* The tail of the simulator's log, on failure. */
static void print_sim_log(const Bench *b)
{
        char line[512];
        FILE *f = fopen(b->log, "re");
        if (!f)
                return;
        fprintf(stderr, "bench-kubesim: the simulator's log (%s):\n", b->log);
        for (int i = 0; i < 40 && fgets(line, sizeof line, f); i++)
                fprintf(stderr, "  %s", line);
        fclose(f);
}

/* ---- building the cluster ------------------------------------------------------------------------ */

static int list_node_names(Bench *b, KubeClient *c)
{
        _cleanup_(json_object_putp) json_object *items = NULL;
        KubeStatus st = {};
        int r = kube_list(c, &KUBE_NODES, NULL, NULL, &items, NULL, &st);
        if (r < 0)
                return r;
        for (size_t i = 0; i < json_object_array_length(items); i++) {
                const char *name =
                    mr_json_get_str(json_object_array_get_idx(items, i), "metadata", "name", NULL);
                char *s = strdup(strempty(name));
                if (!s || strv_push(&b->nodes, &b->n_nodes, s) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static unsigned namespace_count(const Bench *b)
{
        return MAX(1u, (b->o.nodes + 9) / 10); /* ten Deployments per namespace, like small teams */
}

static int create_namespaces(Bench *b, KubeClient *c)
{
        char buf[256];
        for (unsigned i = 0; i < namespace_count(b); i++) {
                _cleanup_(json_object_putp) json_object *o = NULL;
                KubeStatus st = {};
                snprintf(
                    buf, sizeof buf,
                    "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"bench-%u\"}}",
                    i);
                int r = mr_json_parse(buf, strlen(buf), sizeof buf, &o);
                if (r < 0)
                        return r;
                r = kube_create(c, "/api/v1/namespaces", o, NULL, &st);
                if (r < 0 && r != -EEXIST)
                        return r;
        }
        return 0;
}

/* Deployment i: 1000 pods left to the scheduler (or, --pinned, pinned to node i). */
static int create_deployment(Bench *b, KubeClient *c, size_t i, unsigned replicas, const char *node)
{
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *path = NULL;
        char ns[32], name[300], buf[2048], pin[320] = "";
        KubeStatus st = {};

        snprintf(ns, sizeof ns, "bench-%zu", i % namespace_count(b));
        if (node) {
                snprintf(name, sizeof name, "pin-%s", node);
                snprintf(pin, sizeof pin, "\"nodeName\":\"%s\",", node);
        } else
                snprintf(name, sizeof name, "load-%zu", i);
        snprintf(
            buf, sizeof buf,
            "{\"apiVersion\":\"apps/"
            "v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\"},"
            "\"spec\":{\"replicas\":%u,\"selector\":{\"matchLabels\":{\"app\":\"%s\"}},"
            "\"template\":{\"metadata\":{\"labels\":{\"app\":\"%s\",\"bench\":\"kubesim\"},"
            "\"annotations\":{\"sim.meshroll.io/startup-seconds\":\"0\"}},"
            "\"spec\":{%s\"containers\":[{\"name\":\"app\",\"image\":\"registry.k8s.io/pause:3.9\"}]}}}}",
            name, ns, replicas, name, name, pin);
        int r = mr_json_parse(buf, strlen(buf), sizeof buf, &o);
        if (r < 0)
                return r;
        r = kube_path(&KUBE_DEPLOYMENTS, ns, NULL, NULL, &path);
        if (r < 0)
                return r;
        return kube_create(c, path, o, NULL, &st);
}

/* Sums status.readyReplicas and status.replicas over every Deployment. */
static int count_ready(KubeClient *c, size_t *ret_ready, size_t *ret_total)
{
        _cleanup_(json_object_putp) json_object *items = NULL;
        KubeStatus st = {};
        size_t ready = 0, total = 0;
        int r = kube_list(c, &KUBE_DEPLOYMENTS, NULL, NULL, &items, NULL, &st);
        if (r < 0)
                return r;
        for (size_t i = 0; i < json_object_array_length(items); i++) {
                json_object *d = json_object_array_get_idx(items, i);
                int64_t v;
                if (mr_json_get_int(&v, d, "status", "readyReplicas", NULL) == 0 && v > 0)
                        ready += (size_t)v;
                if (mr_json_get_int(&v, d, "status", "replicas", NULL) == 0 && v > 0)
                        total += (size_t)v;
        }
        *ret_ready = ready;
        *ret_total = total;
        return 0;
}

static int build_cluster(Bench *b, KubeClient *c)
{
        size_t n_deploy;
        usec_t t0 = now_us(), last_print = t0;
        double cpu0 = proc_cpu_s(b->pid);
        int r;

        if (b->o.pods == 0)
                return 0;
        r = create_namespaces(b, c);
        if (r < 0)
                return log_error_errno(r, "Failed to create the namespaces: %m");
        n_deploy = b->o.scheduled ? (b->o.pods + 999) / 1000 : b->n_nodes;
        for (size_t i = 0; i < n_deploy; i++) {
                unsigned replicas = b->o.scheduled
                                        ? MIN(1000u, b->o.pods - (unsigned)i * 1000)
                                        : b->o.pods / (unsigned)n_deploy + (i < b->o.pods % n_deploy);
                if (replicas == 0)
                        continue;
                r = create_deployment(b, c, i, replicas, b->o.scheduled ? NULL : b->nodes[i]);
                if (r < 0)
                        return log_error_errno(r, "Failed to create Deployment %zu: %m", i);
        }
        b->create_s = secs(now_us() - t0);

        usec_t deadline = t0 + b->o.timeout * USEC_PER_SEC;
        for (;;) {
                r = count_ready(c, &b->pods_ready, &b->pods_total);
                if (r < 0)
                        return log_error_errno(r, "Failed to list Deployments: %m");
                usec_t n = now_us();
                if (b->pods_ready >= b->o.pods)
                        break;
                if (n >= deadline) {
                        note_incomplete(b, "build: %zu of %u pods Ready after %u s (--timeout)",
                                        b->pods_ready, b->o.pods, b->o.timeout);
                        break;
                }
                if (n - last_print >= 10 * USEC_PER_SEC) {
                        fprintf(stderr, "bench-kubesim: %zu/%u pods Ready after %.0f s\n", b->pods_ready,
                                b->o.pods, secs(n - t0));
                        last_print = n;
                }
                usleep(250 * 1000);
        }
        b->build_s = secs(now_us() - t0);
        b->sim_cpu_build_s = proc_cpu_s(b->pid) - cpu0;
        return 0;
}

/* ---- LIST ---------------------------------------------------------------------------------------- */

/*
 * One full paginated list, as kubectl does it (limit 500, follow continue),
 * page by page so the client never holds the whole list. capture: add every
 * page to the peer's table. Returns the number of items.
 */
static int list_pass(KubeClient *c, const char *base, Peer *capture, Bench *sample, size_t *ret_items)
{
        _cleanup_free_ char *cont = NULL;
        size_t items = 0;
        int r;

        do {
                _cleanup_(json_object_putp) json_object *body = NULL;
                _cleanup_free_ char *path = strdup(base);
                KubeStatus st = {};
                if (!path)
                        return -ENOMEM;
                r = kube_path_append_query(&path, "limit", PAGE, "continue", cont, NULL);
                if (r < 0)
                        return r;
                KubeRequest req = {.method = "GET", .path = path};
                r = kube_request(c, &req, &body, &st);
                if (r < 0)
                        return r;
                json_object *list = mr_json_get(body, "items", NULL); /* borrowed */
                size_t n = list ? json_object_array_length(list) : 0;
                if (capture) {
                        char key[2048];
                        const char *data = mr_json_compact(body);
                        snprintf(key, sizeof key, "%s|%s", base, strempty(cont));
                        r = peer_add(capture, key, data, strlen(data));
                        if (r < 0)
                                return r;
                }
                for (size_t i = 0; sample && i < n; i++) {
                        /* Every k-th pod, so the sample spans namespaces and nodes. */
                        size_t k = MAX((size_t)1, (size_t)sample->o.pods / GET_SAMPLE);
                        if ((items + i) % k != 0 || sample->n_paths >= GET_SAMPLE)
                                continue;
                        json_object *pod = json_object_array_get_idx(list, i);
                        char *p = NULL;
                        r = kube_path(&KUBE_PODS, mr_json_get_str(pod, "metadata", "namespace", NULL),
                                      mr_json_get_str(pod, "metadata", "name", NULL), NULL, &p);
                        if (r < 0 || (r = strv_push(&sample->paths, &sample->n_paths, p)) < 0)
                                return r;
                }
                items += n;
                free(cont);
                cont = NULL;
                const char *next = mr_json_get_str(body, "metadata", "continue", NULL);
                if (!isempty(next) && !(cont = strdup(next)))
                        return -ENOMEM;
        } while (cont);
        *ret_items = items;
        return 0;
}

/* passes timed full lists; the rate is objects per second. */
static int measure_list(const char *url, const char *base, unsigned passes, double *ret_rate,
                        size_t *ret_items)
{
        _cleanup_(kube_client_freep) KubeClient *c = NULL;
        size_t items = 0, total = 0;
        int r = client_new(url, &c);
        if (r < 0)
                return r;
        r = list_pass(c, base, NULL, NULL, &items); /* warm-up: connection, caches */
        if (r < 0)
                return r;
        usec_t t0 = now_us();
        for (unsigned i = 0; i < passes; i++) {
                r = list_pass(c, base, NULL, NULL, &items);
                if (r < 0)
                        return r;
                total += items;
        }
        *ret_rate = (double)total / secs(now_us() - t0);
        *ret_items = items;
        return 0;
}

/* ---- GET ----------------------------------------------------------------------------------------- */

static int measure_get(const char *url, char **paths, size_t n_paths, unsigned count, double *ret_rate)
{
        _cleanup_(kube_client_freep) KubeClient *c = NULL;
        int r = client_new(url, &c);
        if (r < 0)
                return r;
        usec_t t0 = now_us();
        for (unsigned i = 0; i < count; i++) {
                _cleanup_(json_object_putp) json_object *o = NULL;
                KubeStatus st = {};
                r = kube_get(c, paths[i % n_paths], &o, &st);
                if (r < 0)
                        return r;
        }
        *ret_rate = (double)count / secs(now_us() - t0);
        return 0;
}

/* Requests kept in flight on an event loop; shared by the async GETs and the write burst. */
typedef struct Flight {
        KubeClient *c;
        char **paths;
        size_t n_paths;
        size_t total, started, done;
        const char *method; /* "GET" or "PATCH" */
        const char *token;  /* PATCH: the burst's annotation value prefix */
        int error;
        usec_t t_done;
} Flight;

static void flight_next(Flight *f);

static void flight_cb(KubeClient *c, int error, json_object *body, const KubeStatus *status, void *userdata)
{
        Flight *f = userdata;
        if (error < 0 && f->error == 0)
                f->error = error;
        if (++f->done == f->total)
                f->t_done = now_us();
        flight_next(f);
}

static void flight_next(Flight *f)
{
        if (f->error < 0 || f->started >= f->total)
                return;
        size_t i = f->started++;
        _cleanup_(json_object_putp) json_object *patch = NULL;
        KubeRequest req = {.method = f->method, .path = f->paths[i % f->n_paths]};
        if (streq(f->method, "PATCH")) {
                char buf[256];
                snprintf(buf, sizeof buf, "{\"metadata\":{\"annotations\":{\"" ANN_BURST "\":\"%s-%zu\"}}}",
                         f->token, i);
                if (mr_json_parse(buf, strlen(buf), sizeof buf, &patch) < 0) {
                        f->error = -ENOMEM;
                        return;
                }
                req.body = patch;
                req.content_type = kube_patch_content_type(KUBE_PATCH_MERGE);
        }
        int r = kube_request_async(f->c, &req, flight_cb, f, NULL);
        if (r < 0)
                f->error = r;
}

/* Runs e until done() or the deadline; -ETIMEDOUT then. */
static int run_until(sd_event *e, bool (*done)(void *), void *userdata, usec_t deadline)
{
        while (!done(userdata)) {
                if (now_us() >= deadline)
                        return -ETIMEDOUT;
                int r = sd_event_run(e, 100 * USEC_PER_MSEC);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool flight_done(void *userdata)
{
        Flight *f = userdata;
        return f->error < 0 || f->done == f->total;
}

static int measure_get_async(const char *url, char **paths, size_t n_paths, unsigned count,
                             unsigned concurrency, double *ret_rate)
{
        _cleanup_(kube_client_freep) KubeClient *c = NULL;
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        int r = client_new(url, &c);
        if (r < 0)
                return r;
        if ((r = sd_event_new(&e)) < 0 || (r = kube_client_attach_event(c, e)) < 0)
                return r;
        Flight f = {.c = c, .paths = paths, .n_paths = n_paths, .total = count, .method = "GET"};
        usec_t t0 = now_us();
        for (unsigned i = 0; i < concurrency; i++)
                flight_next(&f);
        r = run_until(e, flight_done, &f, t0 + PHASE_TIMEOUT);
        if (r < 0)
                return r;
        if (f.error < 0)
                return f.error;
        *ret_rate = (double)count / secs(f.t_done - t0);
        return 0;
}

/* ---- watch fan-out ------------------------------------------------------------------------------- */

typedef struct Fanout Fanout;

typedef struct Watcher {
        Fanout *f;
        KubeWatch *w;
        uint8_t *seen; /* one bit per burst event */
        size_t n_seen;
        bool synced;
} Watcher;

struct Fanout {
        Watcher *ws;
        size_t n, events;
        char token[40];
        size_t synced, complete;
        Peer *capture; /* watcher 0 records the burst's events for the peer */
        int error;
};

static int watch_handler(KubeWatch *w, KubeWatchEventType type, json_object *object, void *userdata)
{
        Watcher *x = userdata;
        Fanout *f = x->f;
        size_t tl = strlen(f->token);

        if (type != KUBE_WATCH_MODIFIED && type != KUBE_WATCH_ADDED)
                return 0;
        const char *v = mr_json_get_str(object, "metadata", "annotations", ANN_BURST, NULL);
        if (!v || !strneq(v, f->token, tl) || v[tl] != '-')
                return 0;
        if (streq(v + tl + 1, "sync")) {
                if (!x->synced) {
                        x->synced = true;
                        f->synced++;
                }
                return 0;
        }
        char *end;
        unsigned long long i = strtoull(v + tl + 1, &end, 10);
        if (*end || i >= f->events || (x->seen[i / 8] & (1u << (i % 8))))
                return 0;
        x->seen[i / 8] |= (uint8_t)(1u << (i % 8));
        if (++x->n_seen == f->events)
                f->complete++;
        if (f->capture && x == &f->ws[0]) {
                const char *data = mr_json_compact(object);
                if (peer_add_watch_event(f->capture, "{\"type\":\"MODIFIED\",\"object\":", 28) < 0 ||
                    peer_add_watch_event(f->capture, data, strlen(data)) < 0 ||
                    peer_add_watch_event(f->capture, "}\n", 2) < 0)
                        f->error = -ENOMEM;
        }
        return 0;
}

static void watch_stopped(KubeWatch *w, int error, void *userdata)
{
        Watcher *x = userdata;
        if (error < 0 && x->f->error == 0)
                x->f->error = error;
}

static bool fanout_synced(void *userdata)
{
        Fanout *f = userdata;
        return f->error < 0 || f->synced == f->n;
}

static bool fanout_complete(void *userdata)
{
        Fanout *f = userdata;
        return f->error < 0 || f->complete == f->n;
}

/* The list resourceVersion of pods now: where the watches start (no initial list). */
static int pods_rv(KubeClient *c, char **ret)
{
        _cleanup_(json_object_putp) json_object *o = NULL;
        KubeStatus st = {};
        int r = kube_get(c, "/api/v1/pods?limit=1", &o, &st);
        if (r < 0)
                return r;
        const char *rv = mr_json_get_str(o, "metadata", "resourceVersion", NULL);
        return rv && (*ret = strdup(rv)) ? 0 : -EBADMSG;
}

/*
 * W watches on every pod from the current resourceVersion; against the
 * simulator, one marker write that every watcher must see (so all are
 * connected), then the burst of writes, timed until every watcher has seen
 * every one of them. Against the peer (writes == NULL) the stream holds the
 * burst already: timed from the start until every watcher has it all.
 * Returns events delivered per second, and with writes the writes' rate.
 */
static int measure_watch(const char *url, Bench *b, Peer *capture, bool writes, double *ret_rate,
                         double *ret_write_rate)
{
        _cleanup_(kube_client_freep) KubeClient *c = NULL;
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_free_ char *rv = NULL;
        Fanout f = {.n = b->o.watchers, .events = b->o.events, .capture = capture};
        /* Both live until the loop is gone: a call still pending after a timeout points at them. */
        Flight fl = {}, marker = {};
        int r;

        snprintf(f.token, sizeof f.token, "%s", b->token);
        r = client_new(url, &c);
        if (r < 0)
                return r;
        if ((r = sd_event_new(&e)) < 0 || (r = kube_client_attach_event(c, e)) < 0)
                return r;
        if (writes && (r = pods_rv(c, &rv)) < 0)
                return r;
        f.ws = calloc(f.n, sizeof *f.ws);
        if (!f.ws)
                return -ENOMEM;
        for (size_t i = 0; i < f.n && r >= 0; i++) {
                f.ws[i].f = &f;
                f.ws[i].seen = calloc(f.events / 8 + 1, 1);
                if (!f.ws[i].seen) {
                        r = -ENOMEM;
                        break;
                }
                KubeWatchOptions wo = {
                    .resource = &KUBE_PODS, .resource_version = rv ? rv : "1", .timeout_seconds = 600};
                r = kube_watch_start(c, &wo, watch_handler, watch_stopped, &f.ws[i], &f.ws[i].w);
        }
        usec_t t0 = now_us(), t_writes = 0;
        if (r >= 0 && writes) {
                /* The marker: a write every watcher must see before the clock starts. */
                _cleanup_(json_object_putp) json_object *patch = NULL;
                char buf[256];
                snprintf(buf, sizeof buf, "{\"metadata\":{\"annotations\":{\"" ANN_BURST "\":\"%s-sync\"}}}",
                         f.token);
                r = mr_json_parse(buf, strlen(buf), sizeof buf, &patch);
                if (r >= 0) {
                        KubeRequest req = {.method = "PATCH",
                                           .path = b->paths[0],
                                           .body = patch,
                                           .content_type = kube_patch_content_type(KUBE_PATCH_MERGE)};
                        /* Counted as started, so flight_cb does not follow it with a numbered write. */
                        marker = (Flight){.c = c,
                                          .paths = b->paths,
                                          .n_paths = 1,
                                          .total = 1,
                                          .started = 1,
                                          .method = "PATCH"};
                        r = kube_request_async(c, &req, flight_cb, &marker, NULL);
                }
                if (r >= 0)
                        r = run_until(e, fanout_synced, &f, now_us() + 120 * USEC_PER_SEC);
                if (r >= 0 && marker.error < 0)
                        r = marker.error;
                t0 = now_us();
                fl = (Flight){.c = c,
                              .paths = b->paths,
                              .n_paths = b->n_paths,
                              .total = f.events,
                              .method = "PATCH",
                              .token = f.token};
                for (unsigned i = 0; r >= 0 && i < b->o.concurrency; i++)
                        flight_next(&fl);
        }
        if (r >= 0)
                r = run_until(e, fanout_complete, &f, t0 + PHASE_TIMEOUT);
        usec_t t1 = now_us();
        if (r >= 0 && writes) {
                r = run_until(e, flight_done, &fl, t1 + 60 * USEC_PER_SEC);
                t_writes = fl.t_done - t0;
        }
        if (r >= 0 && f.error < 0)
                r = f.error;
        if (r >= 0 && fl.error < 0)
                r = fl.error;
        if (r == -ETIMEDOUT)
                note_incomplete(b, "watch fan-out (%s): %zu of %zu watchers complete after %.0f s",
                                writes ? "simulator" : "peer", f.complete, f.n, secs(now_us() - t0));
        for (size_t i = 0; i < f.n; i++) {
                kube_watch_stop(f.ws[i].w);
                free(f.ws[i].seen);
        }
        free(f.ws);
        if (r < 0)
                return r;
        *ret_rate = (double)(f.n * f.events) / secs(t1 - t0);
        if (ret_write_rate)
                *ret_write_rate = t_writes ? (double)f.events / secs(t_writes) : NAN;
        return 0;
}

/* ---- the report ---------------------------------------------------------------------------------- */

static void cpu_model(char *buf, size_t size)
{
        char line[512];
        snprintf(buf, size, "unknown");
        FILE *f = fopen("/proc/cpuinfo", "re");
        if (!f)
                return;
        while (fgets(line, sizeof line, f)) {
                char *colon = strchr(line, ':');
                if (strneq(line, "model name", 10) && colon) {
                        colon += strspn(colon + 1, " \t") + 1;
                        colon[strcspn(colon, "\n")] = 0;
                        snprintf(buf, size, "%s", colon);
                        break;
                }
        }
        fclose(f);
}

static void fmt_rate(char *buf, size_t size, double v)
{
        if (isnan(v))
                snprintf(buf, size, "—");
        else if (v >= 100)
                snprintf(buf, size, "%.0f", v);
        else
                snprintf(buf, size, "%.1f", v);
}

static void report(const Bench *b, int argc, char *argv[], FILE *out)
{
        char model[256], when[64], s1[32], s2[32], ratio[32];
        cpu_set_t set;
        struct utsname u = {};
        time_t t = time(NULL);
        struct tm tm;

        cpu_model(model, sizeof model);
        CPU_ZERO(&set);
        int ncpu = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                               : (int)sysconf(_SC_NPROCESSORS_ONLN);
        (void)uname(&u);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime_r(&t, &tm));

        fprintf(out, "# meshroll-kubesim benchmark\n\n");
        fprintf(out, "| | |\n|---|---|\n");
        fprintf(out, "| Machine | %d CPUs (nproc), %s, %.1f GiB RAM, Linux %s |\n", ncpu, model,
                (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / GIB, u.release);
        fprintf(out, "| Date | %s |\n", when);
        fprintf(out, "| Command | `");
        for (int i = 0; i < argc; i++)
                fprintf(out, "%s%s", i ? " " : "", argv[i]);
        fprintf(out, "` |\n");
        fprintf(out, "| Cluster | %zu nodes, %zu of %u pods Ready (%s), %u namespaces, --speed %g |\n",
                b->n_nodes, b->pods_ready, b->o.pods,
                b->o.scheduled ? "placed by the simulated scheduler" : "one Deployment per node, pinned",
                namespace_count(b), b->o.speed);
        fprintf(out, "| Peer | a trivial HTTP server (libmicrohttpd, thread per connection) answering the "
                     "same requests "
                     "with the same bodies from memory |\n\n");

        fprintf(out, "| Measure | Simulator | Peer | Simulator/peer | Note |\n|---|---:|---:|---:|---|\n");
        for (int i = 0; i < _M_MAX; i++) {
                const Measure *m = &b->m[i];
                fmt_rate(s1, sizeof s1, m->sim);
                fmt_rate(s2, sizeof s2, m->peer);
                if (isnan(m->sim) || isnan(m->peer))
                        snprintf(ratio, sizeof ratio, "—");
                else
                        snprintf(ratio, sizeof ratio, "%.2f", m->sim / m->peer);
                fprintf(out, "| %s (%s) | %s | %s | %s | %s |\n", m->name, m->unit, s1, s2, ratio, m->note);
        }

        fprintf(out, "\n| Resource | Value | Target | Met |\n|---|---:|---|---|\n");
        fprintf(out, "| Build: create %zu Deployments + %u namespaces (API) | %.1f s | — | — |\n",
                b->o.scheduled ? (size_t)(b->o.pods + 999) / 1000 : b->n_nodes, namespace_count(b),
                b->create_s);
        fprintf(out,
                "| Build: first create until every pod Ready | %.1f s (simulator CPU %.1f s) | — | — |\n",
                b->build_s, b->sim_cpu_build_s);
        fprintf(out,
                "| Simulator CPU with no client, over %.0f s (one controller resync period) | %.0f %% of a "
                "CPU | — | — |\n",
                b->idle_window_s, b->idle_cpu * 100.0);
        fprintf(out, "| Simulator RSS, %zu nodes only | %.0f MiB | < 512 MiB (well under 1 GiB) | %s |\n",
                b->n_nodes, (double)b->rss_nodes / 1048576.0,
                b->rss_nodes < RSS_TARGET_NODES ? "yes" : "**no**");
        fprintf(out, "| Simulator RSS, %zu nodes + %zu pods, built | %.0f MiB | < 1 GiB | %s |\n",
                b->n_nodes, b->pods_ready, (double)b->rss_full / 1048576.0,
                b->rss_full < RSS_TARGET_FULL ? "yes" : "**no**");
        fprintf(out, "| Simulator RSS at the end / peak (VmHWM) | %.0f / %.0f MiB | < 1 GiB peak | %s |\n",
                (double)b->rss_end / 1048576.0, (double)b->hwm / 1048576.0,
                b->hwm < RSS_TARGET_FULL ? "yes" : "**no**");
        if (b->incomplete[0])
                fprintf(out, "\n**Incomplete:** %s\n", b->incomplete);
        fprintf(
            out,
            "\nRates are per second of wall time; higher is better. Simulator/peer: the simulator's rate as "
            "a "
            "share of what the same client gets from a server that does no work (1.00 = the simulator adds "
            "nothing). See docs/benchmarks.md.\n");
}

/* ---- main ---------------------------------------------------------------------------------------- */

static _noreturn_ _printf_(1, 2) void usage_error(const char *fmt, ...)
{
        va_list ap;
        fprintf(stderr, "bench-kubesim: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'bench-kubesim --help'.\n");
        exit(2);
}

static void help(void)
{
        printf(
            "Usage: bench-kubesim [OPTIONS]\n\n"
            "Builds a big simulated cluster in meshroll-kubesim and measures LIST, GET and watch fan-out\n"
            "against it and against a trivial peer server, and the simulator's RSS (docs/benchmarks.md).\n\n"
            "  --nodes N         nodes (default 5000, at most 50000)\n"
            "  --pods N          pods (default 100000)\n"
            "  --watchers N      concurrent pod watches (default 50)\n"
            "  --events N        writes in the watch burst (default 2000, at most 15000)\n"
            "  --gets N          GET requests per measure (default 10000)\n"
            "  --lists N         timed full LISTs of pods (default 3; nodes: 3×)\n"
            "  --concurrency N   async requests in flight (default 16)\n"
            "  --speed X         the simulator's --speed (default 1)\n"
            "  --scheduled       let the simulated scheduler place pods (the default)\n"
            "  --pinned          one Deployment per node, its pods pinned there (no scheduling)\n"
            "  --timeout SEC     how long the build may take (default 1800)\n"
            "  --sim PATH        the meshroll-kubesim binary (default: the one built alongside)\n"
            "  --output FILE     also write the Markdown report to FILE\n"
            "  --help            this text\n");
}

static unsigned parse_uint(const char *opt, const char *v, unsigned lo, unsigned hi)
{
        char *end;
        errno = 0;
        unsigned long n = strtoul(v, &end, 10);
        if (errno || *end || !*v || v[0] == '-' || n < lo || n > hi)
                usage_error("%s %s: expected an integer from %u to %u", opt, v, lo, hi);
        return (unsigned)n;
}

static void parse_args(Options *o, int argc, char *argv[])
{
        enum {
                A_NODES = 256,
                A_PODS,
                A_WATCHERS,
                A_EVENTS,
                A_GETS,
                A_LISTS,
                A_CONC,
                A_SPEED,
                A_SCHED,
                A_PINNED,
                A_TIMEOUT,
                A_SIM,
                A_OUT,
                A_HELP
        };
        static const struct option options[] = {
            {"nodes", required_argument, NULL, A_NODES},
            {"pods", required_argument, NULL, A_PODS},
            {"watchers", required_argument, NULL, A_WATCHERS},
            {"events", required_argument, NULL, A_EVENTS},
            {"gets", required_argument, NULL, A_GETS},
            {"lists", required_argument, NULL, A_LISTS},
            {"concurrency", required_argument, NULL, A_CONC},
            {"speed", required_argument, NULL, A_SPEED},
            {"scheduled", no_argument, NULL, A_SCHED},
            {"pinned", no_argument, NULL, A_PINNED},
            {"timeout", required_argument, NULL, A_TIMEOUT},
            {"sim", required_argument, NULL, A_SIM},
            {"output", required_argument, NULL, A_OUT},
            {"help", no_argument, NULL, A_HELP},
            {},
        };
        int c;
        *o = (Options){.nodes = 5000,
                       .pods = 100000,
                       .watchers = 50,
                       .events = 2000,
                       .gets = 10000,
                       .lists = 3,
                       .concurrency = 16,
                       .timeout = 1800,
                       .speed = 1.0,
                       .scheduled = true,
                       .sim_path = KUBESIM_PATH};
        opterr = 0;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                char *end;
                switch (c) {
                case A_NODES:
                        o->nodes = parse_uint("--nodes", optarg, 1, 50000);
                        break;
                case A_PODS:
                        o->pods = parse_uint("--pods", optarg, 0, 2000000);
                        break;
                case A_WATCHERS:
                        o->watchers = parse_uint("--watchers", optarg, 1, 500);
                        break;
                case A_EVENTS:
                        /* The simulator keeps 20 000 writes of history; a burst must fit in it. */
                        o->events = parse_uint("--events", optarg, 1, 15000);
                        break;
                case A_GETS:
                        o->gets = parse_uint("--gets", optarg, 1, 10000000);
                        break;
                case A_LISTS:
                        o->lists = parse_uint("--lists", optarg, 1, 1000);
                        break;
                case A_CONC:
                        o->concurrency = parse_uint("--concurrency", optarg, 1, 256);
                        break;
                case A_SPEED:
                        errno = 0;
                        o->speed = strtod(optarg, &end);
                        if (errno || *end || !isfinite(o->speed) || o->speed <= 0 || o->speed > 1e6)
                                usage_error("--speed %s: expected a number > 0", optarg);
                        break;
                case A_SCHED:
                        o->scheduled = true;
                        break;
                case A_PINNED:
                        o->scheduled = false;
                        break;
                case A_TIMEOUT:
                        o->timeout = parse_uint("--timeout", optarg, 1, 86400);
                        break;
                case A_SIM:
                        o->sim_path = optarg;
                        break;
                case A_OUT:
                        o->output = optarg;
                        break;
                case A_HELP:
                        help();
                        exit(0);
                default:
                        usage_error("unknown or incomplete option %s", argv[optind - 1]);
                }
        }
        if (optind < argc)
                usage_error("unexpected argument %s", argv[optind]);
        if (access(o->sim_path, X_OK) < 0)
                usage_error("--sim %s: not an executable file", o->sim_path);
}

/* Every measure against the simulator, then the same against the peer. */
static int measure_all(Bench *b)
{
        _cleanup_(kube_client_freep) KubeClient *c = NULL;
        size_t items;
        Measure *m = b->m;
        int r;

        r = client_new(b->url, &c);
        if (r < 0)
                return log_error_errno(r, "Failed to create the client: %m");
        /* One untimed pass of each list fills the peer's table with the very pages the simulator sent. */
        r = list_pass(c, "/api/v1/pods", b->peer, b, &items);
        if (r >= 0)
                r = list_pass(c, "/api/v1/nodes", b->peer, NULL, &items);
        if (r < 0)
                return log_error_errno(r, "Failed to list: %m");
        for (size_t i = 0; i < b->n_paths; i++) {
                _cleanup_(json_object_putp) json_object *o = NULL;
                KubeStatus st = {};
                r = kube_get(c, b->paths[i], &o, &st);
                if (r < 0)
                        return log_error_errno(r, "Failed to get %s: %m", b->paths[i]);
                const char *data = mr_json_compact(o);
                r = peer_add(b->peer, b->paths[i], data, strlen(data));
                if (r < 0)
                        return r;
        }
        if (b->n_paths == 0)
                note_incomplete(b, "no pods: GET and watch not measured");

        fprintf(stderr, "bench-kubesim: LIST\n");
        r = measure_list(b->url, "/api/v1/pods", b->o.lists, &m[M_LIST_PODS].sim, &items);
        if (r < 0)
                return log_error_errno(r, "LIST pods failed: %m");
        snprintf(m[M_LIST_PODS].note, sizeof m[0].note, "%zu pods, pages of " PAGE ", %.1f MB per list",
                 items, (double)peer_bytes(b->peer, "/api/v1/pods|") / 1e6);
        r = measure_list(b->url, "/api/v1/nodes", b->o.lists * 3, &m[M_LIST_NODES].sim, &items);
        if (r < 0)
                return log_error_errno(r, "LIST nodes failed: %m");
        snprintf(m[M_LIST_NODES].note, sizeof m[0].note, "%zu nodes, pages of " PAGE ", %.1f MB per list",
                 items, (double)peer_bytes(b->peer, "/api/v1/nodes|") / 1e6);

        if (b->n_paths > 0) {
                fprintf(stderr, "bench-kubesim: GET\n");
                r = measure_get(b->url, b->paths, b->n_paths, b->o.gets, &m[M_GET].sim);
                if (r < 0)
                        return log_error_errno(r, "GET failed: %m");
                snprintf(m[M_GET].note, sizeof m[0].note, "%u GETs of %zu distinct pods, one at a time",
                         b->o.gets, b->n_paths);
                r = measure_get_async(b->url, b->paths, b->n_paths, b->o.gets, b->o.concurrency,
                                      &m[M_GET_ASYNC].sim);
                if (r < 0)
                        return log_error_errno(r, "async GET failed: %m");
                snprintf(m[M_GET_ASYNC].note, sizeof m[0].note,
                         "%u GETs, %u in flight (sd-event, curl multi)", b->o.gets, b->o.concurrency);

                fprintf(stderr, "bench-kubesim: watch fan-out\n");
                r = measure_watch(b->url, b, b->peer, true, &m[M_WATCH].sim, &m[M_WRITES].sim);
                if (r < 0)
                        return log_error_errno(r, "Watch fan-out failed: %m");
                snprintf(m[M_WATCH].note, sizeof m[0].note,
                         "%u watches on all pods, %u writes; events delivered until every watcher saw every "
                         "write",
                         b->o.watchers, b->o.events);
                snprintf(
                    m[M_WRITES].note, sizeof m[0].note,
                    "merge PATCH of a pod annotation, %u in flight, while the watches stream (peer: none)",
                    b->o.concurrency);
        }
        b->rss_end = proc_status_kb(b->pid, "VmRSS");
        b->hwm = proc_status_kb(b->pid, "VmHWM");
        /* The peer gets the machine to itself: the simulator's background work must not slow it down. */
        sim_kill(b);

        /* The same against the peer. */
        r = peer_start(b->peer);
        if (r < 0)
                return log_error_errno(r, "Failed to start the peer: %m");
        fprintf(stderr, "bench-kubesim: the peer (%s)\n", peer_url(b->peer));
        const char *purl = peer_url(b->peer);
        r = measure_list(purl, "/api/v1/pods", b->o.lists, &m[M_LIST_PODS].peer, &items);
        if (r >= 0)
                r = measure_list(purl, "/api/v1/nodes", b->o.lists * 3, &m[M_LIST_NODES].peer, &items);
        if (r >= 0 && b->n_paths > 0)
                r = measure_get(purl, b->paths, b->n_paths, b->o.gets, &m[M_GET].peer);
        if (r >= 0 && b->n_paths > 0)
                r = measure_get_async(purl, b->paths, b->n_paths, b->o.gets, b->o.concurrency,
                                      &m[M_GET_ASYNC].peer);
        if (r >= 0 && b->n_paths > 0)
                r = measure_watch(purl, b, NULL, false, &m[M_WATCH].peer, NULL);
        if (r < 0)
                return log_error_errno(r, "Measuring the peer failed: %m");
        return 0;
}

static int run(int argc, char *argv[])
{
        Bench b = {};
        int r;

        parse_args(&b.o, argc, argv);
        signal(SIGPIPE, SIG_IGN);
        static const struct {
                const char *name, *unit;
        } names[_M_MAX] = {
            [M_LIST_PODS] = {"LIST pods", "objects/s"},
            [M_LIST_NODES] = {"LIST nodes", "objects/s"},
            [M_GET] = {"GET pod, blocking", "requests/s"},
            [M_GET_ASYNC] = {"GET pod, async", "requests/s"},
            [M_WATCH] = {"Watch fan-out", "events/s"},
            [M_WRITES] = {"Writes during fan-out", "requests/s"},
        };
        for (int i = 0; i < _M_MAX; i++)
                b.m[i] = (Measure){.name = names[i].name, .unit = names[i].unit, .sim = NAN, .peer = NAN};
        snprintf(b.token, sizeof b.token, "b%llx",
                 (unsigned long long)(mr_now_realtime(NULL) / USEC_PER_MSEC));

        const char *tmp = getenv("TMPDIR");
        snprintf(b.tmpdir, sizeof b.tmpdir, "%s/meshroll-bench-XXXXXX", isempty(tmp) ? "/tmp" : tmp);
        if (!mkdtemp(b.tmpdir))
                return log_error_errno(-errno, "Failed to create a directory under %s: %m",
                                       isempty(tmp) ? "/tmp" : tmp);
        snprintf(b.scenario, sizeof b.scenario, "%s/scenario.yaml", b.tmpdir);
        snprintf(b.log, sizeof b.log, "%s/kubesim.log", b.tmpdir);

        r = peer_new(&b.peer);
        if (r >= 0)
                r = write_scenario(&b);
        if (r < 0) {
                log_error_errno(r, "Failed to write %s: %m", b.scenario);
                goto finish;
        }
        fprintf(stderr, "bench-kubesim: starting %s with %u nodes\n", b.o.sim_path, b.o.nodes);
        r = sim_spawn(&b);
        if (r < 0) {
                log_error_errno(r, "The simulator did not start: %m");
                print_sim_log(&b);
                goto finish;
        }
        {
                _cleanup_(kube_client_freep) KubeClient *c = NULL;
                r = client_new(b.url, &c);
                if (r >= 0)
                        r = list_node_names(&b, c);
                if (r < 0) {
                        log_error_errno(r, "Failed to list the nodes at %s: %m", b.url);
                        goto finish;
                }
                usleep(500 * 1000); /* let the controllers' first pass over the nodes finish */
                b.rss_nodes = proc_status_kb(b.pid, "VmRSS");
                fprintf(stderr, "bench-kubesim: %zu nodes, RSS %.0f MiB; creating %u pods\n", b.n_nodes,
                        (double)b.rss_nodes / 1048576.0, b.o.pods);
                r = build_cluster(&b, c);
                if (r < 0)
                        goto finish;
                b.rss_full = proc_status_kb(b.pid, "VmRSS");
                /* The controllers resync every object every 30 simulated seconds: watch one period idle. */
                b.idle_window_s = MIN(30.0 / b.o.speed, 60.0);
                double cpu0 = proc_cpu_s(b.pid);
                usleep((useconds_t)(b.idle_window_s * 1e6));
                b.idle_cpu = (proc_cpu_s(b.pid) - cpu0) / b.idle_window_s;
                fprintf(stderr, "bench-kubesim: %zu pods Ready in %.1f s, RSS %.0f MiB\n", b.pods_ready,
                        b.build_s, (double)b.rss_full / 1048576.0);
        }
        r = measure_all(&b);
        if (r < 0) {
                print_sim_log(&b);
                goto finish;
        }

        {
                char *text = NULL;
                size_t size = 0;
                FILE *m = open_memstream(&text, &size);
                if (!m) {
                        r = log_oom();
                        goto finish;
                }
                report(&b, argc, argv, m);
                fclose(m);
                fputs(text, stdout);
                fflush(stdout);
                if (b.o.output) {
                        FILE *f = fopen(b.o.output, "we");
                        if (!f || fputs(text, f) < 0 || fclose(f) != 0)
                                r = log_error_errno(-errno, "Failed to write %s: %m", b.o.output);
                }
                free(text);
        }

finish:
        sim_kill(&b);
        peer_free(b.peer);
        (void)unlink(b.scenario);
        (void)unlink(b.log);
        (void)rmdir(b.tmpdir);
        strv_free_n(b.nodes, b.n_nodes);
        strv_free_n(b.paths, b.n_paths);
        return r < 0 ? 1 : 0;
}

int main(int argc, char *argv[])
{
        log_open(LOG_TARGET_AUTO);
        return run(argc, argv);
}
