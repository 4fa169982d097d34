/* SPDX-License-Identifier: Apache-2.0 */
/*
 * scan.c — see scan.h for what a scan does and why.
 *
 * All paths are opened relative to one directory fd on the proc root, so a
 * test points the agent at a recorded tree and production at /host/proc with
 * the same code. Per-pod bookkeeping is a small array searched linearly: a
 * node runs at most a few hundred pods, and the per-socket work (the hot
 * path) touches only the tracker's hash table.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "meshroll/errors.h"
#include "meshroll/sockdiag.h"
#include "meshroll/time-util.h"
#include "scan.h"

#define CGROUP_FILE_MAX 65536

static const char *const source_names[_SCAN_SOURCE_MAX] = {
        [SCAN_SOURCE_AUTO] = "auto",
        [SCAN_SOURCE_NETLINK] = "netlink",
        [SCAN_SOURCE_PROC] = "proc",
};

const char *scan_source_to_string(ScanSource s)
{
        return s >= 0 && s < _SCAN_SOURCE_MAX ? source_names[s] : NULL;
}

int scan_source_from_string(const char *s, ScanSource *ret)
{
        for (int i = 0; i < _SCAN_SOURCE_MAX; i++)
                if (s && streq(s, source_names[i])) {
                        *ret = (ScanSource)i;
                        return 0;
                }
        return -EINVAL;
}

void scan_options_init(ScanOptions *o)
{
        *o = (ScanOptions){
                .proc_root = "/proc",
                .app_ports = { 15001, 15006 },
                .n_app_ports = 2,
                .outbound_port = 15001,
                .hbone_port = 15008,
                .scan_host = true,
                .host_pid = 1,
                .long_lived_after = 60 * USEC_PER_SEC,
        };
}

int scan_options_set_local_addr(ScanOptions *o, const char *addr)
{
        struct in_addr a4;
        uint8_t a6[16];

        if (inet_pton(AF_INET, addr, &a4) == 1) {
                memset(o->local_addr, 0, 10);
                o->local_addr[10] = o->local_addr[11] = 0xff;
                memcpy(o->local_addr + 12, &a4, 4);
        } else if (inet_pton(AF_INET6, addr, a6) == 1)
                memcpy(o->local_addr, a6, 16);
        else
                return -EINVAL;
        o->filter_local = true;
        return 0;
}

typedef struct CountContext {
        const ScanOptions *o;
        SocketTracker *tracker;
        usec_t now;
        ScanCounts *counts;
} CountContext;

static bool is_app_port(const ScanOptions *o, uint16_t port)
{
        for (size_t i = 0; i < o->n_app_ports; i++)
                if (o->app_ports[i] == port)
                        return true;
        return false;
}

static int count_socket(const ProcNetSocket *s, void *userdata)
{
        CountContext *c = userdata;
        const ScanOptions *o = c->o;
        ScanCounts *n = c->counts;

        if (s->state != TCP_STATE_ESTABLISHED)
                return 0;
        if (o->filter_local) {
                uint8_t local[16];
                if (s->family == AF_INET) {
                        memset(local, 0, 10);
                        local[10] = local[11] = 0xff;
                        memcpy(local + 12, s->local, 4);
                } else
                        memcpy(local, s->local, 16);
                if (memcmp(local, o->local_addr, 16) != 0)
                        return 0;
        }

        if (is_app_port(o, s->local_port)) {
                if (s->local_port == o->outbound_port)
                        n->outbound++;
                else
                        n->inbound++;
                if (s->inode == 0)
                        return 0;
                usec_t first;
                int r = track_see(c->tracker, s->inode, &first);
                if (r < 0)
                        return r;
                usec_t age = c->now > first ? c->now - first : 0;
                if (age >= o->long_lived_after)
                        n->long_lived++;
                n->oldest = MAX(n->oldest, age);
        } else if (o->hbone_port && s->local_port == o->hbone_port)
                n->hbone_inbound++;
        else if (o->hbone_port && s->remote_port == o->hbone_port)
                n->hbone_outbound++;
        return 0;
}

/* Identity of a namespace file: its nsfs device and inode. */
typedef struct NsId {
        dev_t dev;
        ino_t ino;
} NsId;

/* Reads <dir>/tcp and <dir>/tcp6 into counts. Returns 0 or the first fatal error; -ENOENT if tcp is gone. */
static int scan_proc(int procfd, const char *dir, CountContext *c, ScanStats *stats)
{
        static const struct {
                const char *file;
                int family;
        } files[] = { { "tcp", AF_INET }, { "tcp6", AF_INET6 } };
        size_t max = c->o->max_file_bytes ? c->o->max_file_bytes : (64u << 20);
        int r;

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                char path[PATH_MAX];
                (void)snprintf(path, sizeof(path), "%s/%s", dir, files[i].file);
                r = procnet_read_file(procfd, path, files[i].family, max, count_socket, c, &stats->lines);
                if (r == -MR_ETOOBIG || r == -ENOMEM)
                        return r;
                if (r == -ENOENT || r == -ESRCH) {
                        /* tcp6 may be absent on a kernel without IPv6; tcp absent means the process is gone. */
                        if (i == 0)
                                return -ENOENT;
                        continue;
                }
                if (r < 0)
                        stats->read_errors++;
        }
        return 0;
}

/* The kernel filter: ESTABLISHED, local port one the agent counts, or remote port HBONE. */
static void netlink_filter(const ScanOptions *o, SockDiagFilter *f)
{
        *f = (SockDiagFilter){ .states = 1u << TCP_STATE_ESTABLISHED };
        for (size_t i = 0; i < o->n_app_ports && f->n_local_ports < SOCKDIAG_PORTS_MAX; i++)
                f->local_ports[f->n_local_ports++] = o->app_ports[i];
        if (o->hbone_port) {
                f->local_ports[f->n_local_ports++] = o->hbone_port;
                f->remote_ports[f->n_remote_ports++] = o->hbone_port;
        }
}

/*
 * Reads the namespace <ns_path> names over sock_diag into c->counts.
 * Counts go to a scratch copy first and are added only when both dumps
 * succeeded, so a failure part-way can fall back to /proc without counting
 * twice. Returns 0, -ENOENT when the process is gone, a fatal error
 * (-MR_ETOOBIG, -ENOMEM), or another -errno meaning "netlink cannot be used
 * here".
 */
static int scan_netlink(int procfd, const char *ns_path, const NsId *self, CountContext *c, ScanStats *stats)
{
        _cleanup_close_ int nsfd = -EBADF, fd = -EBADF;
        size_t max = c->o->max_file_bytes ? c->o->max_file_bytes : (64u << 20);
        ScanCounts scratch = *c->counts;
        CountContext sc = *c;
        ProcNetStats lines = {};
        SockDiagFilter f;
        struct stat st;
        int r;

        nsfd = openat(procfd, ns_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (nsfd < 0)
                return errno == ESRCH ? -ENOENT : -errno;
        if (fstat(nsfd, &st) < 0)
                return -errno;
        if (self && st.st_dev == self->dev && st.st_ino == self->ino)
                fd = sockdiag_open(); /* our own namespace: no privilege needed */
        else
                fd = sockdiag_open_in_netns(nsfd);
        if (fd < 0)
                return fd;

        netlink_filter(c->o, &f);
        sc.counts = &scratch;
        r = sockdiag_dump(fd, AF_UNSPEC, &f, max, count_socket, &sc, &lines); /* IPv4 and IPv6 in one pass */
        if (r < 0)
                return r;
        *c->counts = scratch;
        stats->lines.lines += lines.lines;
        stats->lines.sockets += lines.sockets;
        stats->lines.malformed += lines.malformed;
        stats->lines.bytes += lines.bytes;
        return 0;
}

/*
 * Reads one network namespace: <pid_dir>/ns/net over netlink and/or
 * <pid_dir>/net/tcp{,6}, as o->source says. *ret_source says which one
 * answered. Returns 0, 1 when --source=netlink could not read it (a read
 * error, counted), -ENOENT when the process is gone, or a fatal error.
 */
static int scan_namespace(int procfd, const char *pid_dir, const NsId *self, CountContext *c, ScanStats *stats,
                          ScanSource *ret_source)
{
        char path[PATH_MAX];
        int r;

        if (c->o->source != SCAN_SOURCE_PROC) {
                /* The proc root's own net/ is the reader's: its namespace is self/ns/net. */
                (void)snprintf(path, sizeof(path), "%s/ns/net", streq(pid_dir, ".") ? "self" : pid_dir);
                r = scan_netlink(procfd, path, self, c, stats);
                if (r >= 0 || r == -MR_ETOOBIG || r == -ENOMEM) {
                        if (r >= 0) {
                                stats->netlink++;
                                *ret_source = SCAN_SOURCE_NETLINK;
                        }
                        return r;
                }
                if (c->o->source == SCAN_SOURCE_NETLINK) {
                        if (r == -ENOENT)
                                return r;
                        stats->read_errors++;
                        return 1;
                }
                stats->fallbacks++;
        }
        (void)snprintf(path, sizeof(path), "%s/net", pid_dir);
        r = scan_proc(procfd, path, c, stats);
        if (r >= 0) {
                stats->proc++;
                *ret_source = SCAN_SOURCE_PROC;
        }
        return r;
}

static int read_small_file(int procfd, const char *path, char *buf, size_t size, size_t *ret_len)
{
        _cleanup_close_ int fd = openat(procfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        size_t n = 0;

        if (fd < 0)
                return -errno;
        while (n < size) {
                ssize_t k = read(fd, buf + n, size - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t)k;
        }
        *ret_len = n;
        return 0;
}

static int cmp_pid(const void *a, const void *b)
{
        pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
        return (x > y) - (x < y);
}

static int cmp_pod(const void *a, const void *b)
{
        return strcmp(((const ScanPod *)a)->uid, ((const ScanPod *)b)->uid);
}

/* Numeric entries of the proc root, sorted. */
static int list_pids(int procfd, pid_t **ret, size_t *ret_n)
{
        int fd = openat(procfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        _cleanup_free_ pid_t *pids = NULL;
        size_t n = 0, cap = 0;
        DIR *d;
        struct dirent *de;

        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                int r = -errno;
                close(fd);
                return r;
        }
        while ((errno = 0, de = readdir(d))) {
                char *end;
                if (de->d_name[0] < '1' || de->d_name[0] > '9')
                        continue;
                unsigned long v = strtoul(de->d_name, &end, 10);
                if (*end || v > INT32_MAX)
                        continue;
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 256;
                        pid_t *np = reallocarray(pids, ncap, sizeof(pid_t));
                        if (!np) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        pids = np;
                        cap = ncap;
                }
                pids[n++] = (pid_t)v;
        }
        closedir(d);
        if (n > 1)
                qsort(pids, n, sizeof(pid_t), cmp_pid);
        *ret = TAKE_PTR(pids);
        *ret_n = n;
        return 0;
}

static uint64_t netns_inode(int procfd, const char *path)
{
        struct stat st;
        return fstatat(procfd, path, &st, 0) == 0 ? (uint64_t)st.st_ino : 0;
}

static void add_counts(ScanCounts *t, const ScanCounts *c)
{
        t->outbound += c->outbound;
        t->inbound += c->inbound;
        t->hbone_inbound += c->hbone_inbound;
        t->hbone_outbound += c->hbone_outbound;
        t->long_lived += c->long_lived;
        t->oldest = MAX(t->oldest, c->oldest);
}

int scan_run(const ScanOptions *o, SocketTracker *tracker, usec_t now, ScanResult **ret)
{
        _cleanup_close_ int procfd = -EBADF;
        _cleanup_free_ pid_t *pids = NULL;
        _cleanup_(scan_result_freep) ScanResult *res = NULL;
        size_t n_pids = 0, cap = 0;
        usec_t start = mr_now_monotonic(NULL);
        uint64_t host_ns;
        int r;

        procfd = open(o->proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (procfd < 0)
                return -errno;
        r = list_pids(procfd, &pids, &n_pids);
        if (r < 0)
                return r;
        res = calloc(1, sizeof(*res));
        if (!res)
                return -ENOMEM;
        r = track_begin(tracker, now);
        if (r < 0)
                return r;

        char host_dir[32], host_ns_path[48];
        struct stat self_st;
        NsId self_ns = {}, *self = NULL;
        if (stat("/proc/thread-self/ns/net", &self_st) >= 0) {
                self_ns = (NsId){ self_st.st_dev, self_st.st_ino };
                self = &self_ns;
        }
        snprintf(host_dir, sizeof(host_dir), "%d", (int)(o->host_pid > 0 ? o->host_pid : 1));
        snprintf(host_ns_path, sizeof(host_ns_path), "%s/ns/net", host_dir);
        host_ns = netns_inode(procfd, host_ns_path);
        if (o->scan_host) {
                CountContext c = { o, tracker, now, &res->host.counts };
                res->host.pid = o->host_pid > 0 ? o->host_pid : 1;
                res->host.netns = host_ns;
                r = scan_namespace(procfd, host_dir, self, &c, &res->stats, &res->host.source);
                if (r == -ENOENT) /* no such process in this view: the reader's own namespace */
                        r = scan_namespace(procfd, ".", self, &c, &res->stats, &res->host.source);
                if (r == -ENOENT)
                        res->stats.read_errors++;
                else if (r < 0)
                        return r;
                else if (r == 0)
                        res->stats.namespaces++;
        }

        for (size_t i = 0; i < n_pids; i++) {
                char path[64], cgroup[CGROUP_FILE_MAX], uid[POD_UID_MAX];
                size_t len = 0;
                ScanPod *pod = NULL;

                res->stats.processes++;
                (void)snprintf(path, sizeof(path), "%d/cgroup", (int)pids[i]);
                r = read_small_file(procfd, path, cgroup, sizeof(cgroup), &len);
                if (r == -ENOENT || r == -ESRCH) {
                        res->stats.vanished++;
                        continue;
                }
                if (r < 0) {
                        res->stats.read_errors++;
                        continue;
                }
                if (pod_uid_from_cgroup(cgroup, len, uid) < 0)
                        continue; /* a host process, or a cgroup naming two pods: nothing to count */

                (void)snprintf(path, sizeof(path), "%d/ns/net", (int)pids[i]);
                uint64_t ns = netns_inode(procfd, path);
                if ((ns != 0 && ns == host_ns) || (o->skip_pod && o->skip_pod(uid, o->skip_userdata)))
                        continue; /* hostNetwork pod: its sockets are the host's */

                bool seen = false;
                for (size_t j = 0; j < res->n_pods && !seen; j++)
                        seen = streq(res->pods[j].uid, uid) || (ns != 0 && res->pods[j].netns == ns);
                if (seen)
                        continue;

                if (res->n_pods == cap) {
                        size_t ncap = cap ? cap * 2 : 32;
                        ScanPod *np = reallocarray(res->pods, ncap, sizeof(ScanPod));
                        if (!np)
                                return -ENOMEM;
                        res->pods = np;
                        cap = ncap;
                }
                pod = &res->pods[res->n_pods];
                *pod = (ScanPod){ .pid = pids[i], .netns = ns };
                memcpy(pod->uid, uid, sizeof(uid));

                CountContext c = { o, tracker, now, &pod->counts };
                (void)snprintf(path, sizeof(path), "%d", (int)pids[i]);
                r = scan_namespace(procfd, path, self, &c, &res->stats, &pod->source);
                if (r == -ENOENT) {
                        /* Exited between reading cgroup and net: a later process of the pod may still answer. */
                        res->stats.vanished++;
                        continue;
                }
                if (r < 0)
                        return r;
                if (r > 0)
                        continue; /* unreadable over netlink, counted in read_errors */
                res->n_pods++;
                res->stats.namespaces++;
        }
        track_end(tracker);

        if (res->n_pods > 1) /* qsort's array may not be NULL, even when empty */
                qsort(res->pods, res->n_pods, sizeof(ScanPod), cmp_pod);
        if (o->scan_host)
                add_counts(&res->total, &res->host.counts);
        for (size_t i = 0; i < res->n_pods; i++)
                add_counts(&res->total, &res->pods[i].counts);
        res->stats.duration = mr_now_monotonic(NULL) - start;
        *ret = TAKE_PTR(res);
        return 0;
}

ScanResult *scan_result_free(ScanResult *r)
{
        if (!r)
                return NULL;
        free(r->pods);
        free(r);
        return NULL;
}
