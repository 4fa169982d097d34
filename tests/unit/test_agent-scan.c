/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's /proc scan against a recorded tree (every dedup and skip rule),
 * long-lived ageing across scans, and real loopback sockets read back from
 * the live /proc.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "meshroll/errors.h"
#include "scan.h"

static char root[256];

#define HDR4 "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
#define HDR6                                                                                                       \
        "  sl  local_address                         remote_address                        st tx_queue rx_queue " \
        "tr tm->when retrnsmt   uid  timeout inode\n"
/* state 01 = ESTABLISHED, 0A = LISTEN; ports: 3A99 = 15001, 3A9E = 15006, 3AA0 = 15008 */
#define V4(sl, local, remote, st, inode)                                                                            \
        "   " sl ": " local " " remote " " st " 00000000:00000000 00:00000000 00000000  1337        0 " inode      \
        " 1 0000000000000000 20 4 30 10 -1\n"
#define MAPPED(a) "0000000000000000FFFF0000" a

static void put_file(const char *rel, const char *content)
{
        char path[512], dir[512];
        snprintf(path, sizeof(path), "%s/%s", root, rel);
        snprintf(dir, sizeof(dir), "%s", path);
        for (char *p = dir + strlen(root) + 1; (p = strchr(p, '/')); p++) {
                *p = 0;
                (void)mkdir(dir, 0755);
                *p = '/';
        }
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
        close(fd);
}

/* ns/net files: a hard link shares the inode, as two processes in one netns do. */
static void link_file(const char *from, const char *to)
{
        char a[512], b[512];
        snprintf(a, sizeof(a), "%s/%s", root, from);
        snprintf(b, sizeof(b), "%s/%s", root, to);
        put_file(to, "");
        unlink(b);
        assert_int_equal(link(a, b), 0);
}

static const char POD_A[] = "0::/kubepods.slice/kubepods-burstable.slice/"
                            "kubepods-burstable-pod11111111_2222_3333_4444_555555555555.slice/cri-containerd-a.scope\n";
static const char POD_B[] = "12:memory:/kubepods/besteffort/pod22222222-0000-4000-8000-000000000002/b\n";
static const char POD_C[] = "0::/kubepods/pod33333333-0000-4000-8000-000000000003/c\n";
static const char POD_D[] = "0::/kubepods/pod44444444-0000-4000-8000-000000000004/d\n";

static int setup_tree(void **state)
{
        snprintf(root, sizeof(root), "/tmp/meshroll-proc-XXXXXX");
        assert_non_null(mkdtemp(root));

        /* host: PID 1, one app connection in the host namespace (e.g. the demo's node proxy) */
        put_file("1/cgroup", "0::/init.scope\n");
        put_file("1/ns/net", "");
        put_file("1/net/tcp", HDR4 V4("0", "0100007F:3A99", "0100007F:D431", "01", "9001")
                                      V4("1", "00000000:3A99", "00000000:0000", "0A", "9000"));
        put_file("1/net/tcp6", HDR6);

        /* pod A: two processes sharing one netns */
        put_file("100/cgroup", POD_A);
        put_file("100/ns/net", "");
        put_file("100/net/tcp", HDR4 V4("0", "0100007F:3A99", "0A000005:9C40", "01", "1001")
                                        V4("1", "0100007F:3A99", "0A000005:9C41", "01", "1002")
                                        V4("2", "0500000A:3A9E", "0700000A:C000", "01", "1003")
                                        V4("3", "00000000:3A99", "00000000:0000", "0A", "1004")
                                        V4("4", "0500000A:3A99", "0700000A:C001", "06", "0")
                                        "   5: this line is garbage\n");
        put_file("100/net/tcp6", HDR6 V4("0", MAPPED("0500000A") ":3A9E", MAPPED("0800000A") ":C002", "01", "1005")
                                         V4("1", MAPPED("0500000A") ":3AA0", MAPPED("0800000A") ":C003", "01", "1006")
                                         V4("2", MAPPED("0500000A") ":C004", MAPPED("0900000A") ":3AA0", "01", "1007"));
        put_file("101/cgroup", POD_A);
        link_file("100/ns/net", "101/ns/net");
        put_file("101/net/tcp", HDR4 V4("0", "0100007F:3A99", "0A000005:9C40", "01", "1001"));
        put_file("101/net/tcp6", HDR6);

        /* pod B: ns/net unreadable (no CAP_SYS_PTRACE): deduplicated by UID */
        put_file("200/cgroup", POD_B);
        put_file("200/net/tcp", HDR4 V4("0", "0100007F:3A99", "0A000006:9C40", "01", "2001"));
        put_file("201/cgroup", POD_B);
        put_file("201/net/tcp", HDR4 V4("0", "0100007F:3A99", "0A000006:9C40", "01", "2001"));

        /* pod C: hostNetwork, shares PID 1's netns: skipped */
        put_file("300/cgroup", POD_C);
        link_file("1/ns/net", "300/ns/net");
        put_file("300/net/tcp", HDR4 V4("0", "0100007F:3A99", "0100007F:D431", "01", "9001"));

        /* a host process */
        put_file("400/cgroup", "0::/system.slice/kubelet.service\n");
        put_file("400/net/tcp", HDR4);

        /* pod D: the first process exits between cgroup and net; the second answers */
        put_file("500/cgroup", POD_D);
        put_file("501/cgroup", POD_D);
        put_file("501/ns/net", "");
        put_file("501/net/tcp", HDR4 V4("0", "0100007F:3A99", "0A000007:9C40", "01", "5001"));

        /* not processes */
        put_file("self", "");
        put_file("sys/x", "");
        return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static int teardown_tree(void **state)
{
        return nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const ScanPod *find_pod(const ScanResult *r, const char *uid)
{
        for (size_t i = 0; i < r->n_pods; i++)
                if (streq(r->pods[i].uid, uid))
                        return &r->pods[i];
        return NULL;
}

static void test_recorded_tree(void **state)
{
        ScanOptions o;
        _cleanup_(track_freep) SocketTracker *t = NULL;
        _cleanup_(scan_result_freep) ScanResult *r = NULL;

        scan_options_init(&o);
        o.proc_root = root;
        assert_int_equal(track_new(0, &t), 0);
        assert_int_equal(scan_run(&o, t, 1000 * USEC_PER_SEC, &r), 0);

        assert_int_equal(r->n_pods, 3); /* A, B, D — not C (hostNetwork) */
        const ScanPod *a = find_pod(r, "11111111-2222-3333-4444-555555555555");
        const ScanPod *b = find_pod(r, "22222222-0000-4000-8000-000000000002");
        const ScanPod *d = find_pod(r, "44444444-0000-4000-8000-000000000004");
        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(d);
        assert_null(find_pod(r, "33333333-0000-4000-8000-000000000003"));

        assert_int_equal(a->pid, 100);
        assert_int_equal(a->counts.outbound, 2);
        assert_int_equal(a->counts.inbound, 2);       /* 15006 over IPv4 and IPv4-mapped IPv6 */
        assert_int_equal(a->counts.hbone_inbound, 1);
        assert_int_equal(a->counts.hbone_outbound, 1);
        assert_int_equal(a->counts.long_lived, 0);    /* first sighting */

        assert_int_equal(b->pid, 200);
        assert_int_equal(b->netns, 0);
        assert_int_equal(b->counts.outbound, 1);
        assert_int_equal(d->pid, 501);
        assert_int_equal(d->counts.outbound, 1);

        assert_int_equal(r->host.counts.outbound, 1);
        assert_int_equal(r->total.outbound, 2 + 1 + 1 + 1);
        assert_int_equal(r->total.inbound, 2);
        assert_int_equal(r->stats.namespaces, 4); /* host, A, B, D */
        assert_int_equal(r->stats.vanished, 1);
        assert_int_equal(r->stats.lines.malformed, 1);
        /* app sockets with an inode: host 1, A 4 (15001 ×2, 15006 ×2), B 1, D 1 */
        assert_int_equal(track_size(t), 7);
        /* A recorded tree has no namespace to enter: auto read every one from its files. */
        assert_int_equal(r->stats.proc, 4);
        assert_int_equal(r->stats.netlink, 0);
        assert_true(r->stats.fallbacks >= 4);
        assert_int_equal(a->source, SCAN_SOURCE_PROC);

        /* netlink only: nothing can be read, and that shows as read errors, never as zero counts. */
        _cleanup_(track_freep) SocketTracker *t2 = NULL;
        _cleanup_(scan_result_freep) ScanResult *r2 = NULL;
        o.source = SCAN_SOURCE_NETLINK;
        assert_int_equal(track_new(0, &t2), 0);
        assert_int_equal(scan_run(&o, t2, 1000 * USEC_PER_SEC, &r2), 0);
        assert_int_equal(r2->n_pods, 0);
        assert_int_equal(r2->stats.netlink, 0);
        assert_int_equal(r2->stats.proc, 0);
        assert_true(r2->stats.read_errors >= 3);
        assert_int_equal(r2->total.outbound, 0);
}

static void test_source_names(void **state)
{
        ScanSource s;
        assert_int_equal(scan_source_from_string("netlink", &s), 0);
        assert_int_equal(s, SCAN_SOURCE_NETLINK);
        assert_int_equal(scan_source_from_string("proc", &s), 0);
        assert_int_equal(s, SCAN_SOURCE_PROC);
        assert_int_equal(scan_source_from_string("auto", &s), 0);
        assert_int_equal(s, SCAN_SOURCE_AUTO);
        assert_int_equal(scan_source_from_string("Netlink", &s), -EINVAL);
        assert_int_equal(scan_source_from_string(NULL, &s), -EINVAL);
        assert_string_equal(scan_source_to_string(SCAN_SOURCE_PROC), "proc");
        assert_null(scan_source_to_string(_SCAN_SOURCE_MAX));
}

static void test_long_lived_across_scans(void **state)
{
        ScanOptions o;
        _cleanup_(track_freep) SocketTracker *t = NULL;
        usec_t t0 = 1000 * USEC_PER_SEC;

        scan_options_init(&o);
        o.proc_root = root;
        assert_int_equal(track_new(0, &t), 0);
        for (int i = 0; i < 3; i++) {
                _cleanup_(scan_result_freep) ScanResult *r = NULL;
                usec_t now = t0 + (usec_t)i * 30 * USEC_PER_SEC; /* 0 s, 30 s, 60 s */
                assert_int_equal(scan_run(&o, t, now, &r), 0);
                const ScanPod *a = find_pod(r, "11111111-2222-3333-4444-555555555555");
                if (i < 2)
                        assert_int_equal(a->counts.long_lived, 0);
                else {
                        assert_int_equal(a->counts.long_lived, 4);
                        assert_int_equal(a->counts.oldest, 60 * USEC_PER_SEC);
                        assert_int_equal(r->total.long_lived, 4 + 1 + 1 + 1);
                }
        }

        /* One of pod A's connections closes and a new one opens: only the new one is young. */
        put_file("100/net/tcp", HDR4 V4("0", "0100007F:3A99", "0A000005:9C40", "01", "1001")
                                        V4("1", "0100007F:3A99", "0A000005:9C49", "01", "1099"));
        _cleanup_(scan_result_freep) ScanResult *r = NULL;
        assert_int_equal(scan_run(&o, t, t0 + 90 * USEC_PER_SEC, &r), 0);
        const ScanPod *a = find_pod(r, "11111111-2222-3333-4444-555555555555");
        assert_int_equal(a->counts.outbound, 2);
        assert_int_equal(a->counts.long_lived, 2); /* 1001 (v4) and 1005 (v6) */
        assert_int_equal(a->counts.oldest, 90 * USEC_PER_SEC);

        /* The closed socket was forgotten: if inode 1002 came back it would be new. */
        put_file("100/net/tcp", HDR4 V4("0", "0100007F:3A99", "0A000005:9C41", "01", "1002"));
        _cleanup_(scan_result_freep) ScanResult *r2 = NULL;
        assert_int_equal(scan_run(&o, t, t0 + 200 * USEC_PER_SEC, &r2), 0);
        a = find_pod(r2, "11111111-2222-3333-4444-555555555555");
        assert_int_equal(a->counts.long_lived, 1); /* only the v6 one */
}

static void test_local_addr_filter(void **state)
{
        ScanOptions o;
        _cleanup_(track_freep) SocketTracker *t = NULL;
        _cleanup_(scan_result_freep) ScanResult *r = NULL;

        scan_options_init(&o);
        o.proc_root = root;
        assert_int_equal(scan_options_set_local_addr(&o, "10.0.0.5"), 0);
        assert_int_equal(track_new(0, &t), 0);
        assert_int_equal(scan_run(&o, t, 0, &r), 0);
        /* Only pod A's sockets with local 10.0.0.5: 15006 (v4 and mapped v6) and the 15008 pair. */
        assert_int_equal(r->total.outbound, 0);
        assert_int_equal(r->total.inbound, 2);
        assert_int_equal(r->total.hbone_inbound, 1);
        assert_int_equal(r->total.hbone_outbound, 1);
        assert_int_equal(scan_options_set_local_addr(&o, "not-an-address"), -EINVAL);
        assert_int_equal(scan_options_set_local_addr(&o, "::1"), 0);
}

static void test_missing_root(void **state)
{
        ScanOptions o;
        _cleanup_(track_freep) SocketTracker *t = NULL;
        ScanResult *r = NULL;

        scan_options_init(&o);
        o.proc_root = "/nonexistent/proc";
        assert_int_equal(track_new(0, &t), 0);
        assert_int_equal(scan_run(&o, t, 0, &r), -ENOENT);
        assert_null(r);
}

static void test_tracker_cap(void **state)
{
        ScanOptions o;
        _cleanup_(track_freep) SocketTracker *t = NULL;
        ScanResult *r = NULL;

        scan_options_init(&o);
        o.proc_root = root;
        assert_int_equal(track_new(3, &t), 0);
        assert_int_equal(scan_run(&o, t, 0, &r), -MR_ETOOBIG);
}

static void test_tracker_growth(void **state)
{
        _cleanup_(track_freep) SocketTracker *t = NULL;
        usec_t first;

        assert_int_equal(track_new(0, &t), 0);
        assert_int_equal(track_see(t, 5, &first), -EINVAL); /* no generation open */
        assert_int_equal(track_begin(t, 10 * USEC_PER_MSEC), 0);
        for (uint64_t i = 1; i <= 10000; i++)
                assert_int_equal(track_see(t, i, &first), 0);
        assert_int_equal(track_see(t, 0, &first), -EINVAL);
        track_end(t);
        assert_int_equal(track_size(t), 10000);
        assert_int_equal(track_begin(t, 20 * USEC_PER_MSEC), 0);
        for (uint64_t i = 5001; i <= 15000; i++) {
                assert_int_equal(track_see(t, i, &first), 0);
                assert_int_equal(first, (i <= 10000 ? 10 : 20) * USEC_PER_MSEC);
        }
        track_end(t);
        assert_int_equal(track_size(t), 10000);
        /* 8 bytes a socket at a load of at most 3/4 */
        assert_true(track_memory(t) >= 10000 * 8 * 4 / 3 && track_memory(t) <= 10000 * 8 * 4);
}

/*
 * Established sockets with local port `port`, as `ss -Htn state established
 * sport = :PORT` lists them; -1 when ss is not installed.
 */
/* Established sockets with local port `port` (and, with src, that local address) as ss(8) lists them. */
static int count_ss_established_in(const char *netns, const char *src, uint16_t port)
{
        char filter[96], buf[65536], net_arg[96];
        int fds[2], n = 0;
        size_t len = 0;
        pid_t pid;
        posix_spawn_file_actions_t fa;

        if (access("/usr/bin/ss", X_OK) < 0 && access("/bin/ss", X_OK) < 0)
                return -1;
        if (netns && access("/usr/bin/nsenter", X_OK) < 0)
                return -1;
        if (src)
                snprintf(filter, sizeof(filter), "src %s:%u", src, port);
        else
                snprintf(filter, sizeof(filter), "sport = :%u", port);
        snprintf(net_arg, sizeof(net_arg), "--net=%s", netns ? netns : "");
        char *argv_host[] = { "ss", "-Htn", "state", "established", filter, NULL };
        char *argv_ns[] = { "nsenter", net_arg, "ss", "-Htn", "state", "established", filter, NULL };
        char **argv = netns ? argv_ns : argv_host;
        assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
        assert_int_equal(posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ), 0);
        posix_spawn_file_actions_destroy(&fa);
        close(fds[1]);
        for (ssize_t k; len < sizeof(buf) - 1 && (k = read(fds[0], buf + len, sizeof(buf) - 1 - len)) > 0;)
                len += (size_t)k;
        close(fds[0]);
        buf[len] = 0;
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -1; /* e.g. nsenter not allowed */
        for (char *p = buf; (p = strchr(p, '\n')); p++)
                n++;
        return n;
}

static int count_ss_established(const char *src, uint16_t port)
{
        return count_ss_established_in(NULL, src, port);
}

/*
 * Real sockets: accepted connections on an ephemeral loopback port, counted
 * from the live /proc. The proc root is a directory whose "1" links to this
 * process, so the "host" namespace read is the test's own, whatever PID 1 is.
 */
static void test_real_loopback_sockets(void **state)
{
        char live[256], target[64];
        snprintf(live, sizeof(live), "%s/live", root);
        assert_int_equal(mkdir(live, 0755), 0);
        snprintf(target, sizeof(target), "/proc/%d", (int)getpid());
        snprintf(live + strlen(live), sizeof(live) - strlen(live), "/1");
        assert_int_equal(symlink(target, live), 0);
        live[strlen(live) - 2] = 0;

        /*
         * Addresses of this test's own (127.0.0.77 serves, 127.0.0.78 connects), so sockets of other
         * programs on this host's loopback — tests running in parallel — can never match its filters.
         */
        int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f00004d) };
        struct sockaddr_in ca = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f00004e) };
        socklen_t sl = sizeof(sa);
        assert_true(lfd >= 0);
        assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(lfd, 16), 0);
        assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);

        int clients[7], servers[7];
        for (int i = 0; i < 7; i++) {
                clients[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                assert_int_equal(bind(clients[i], (struct sockaddr *)&ca, sizeof(ca)), 0);
                assert_int_equal(connect(clients[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
                servers[i] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                assert_true(servers[i] >= 0);
        }

        ScanOptions o;
        _cleanup_(track_freep) SocketTracker *t = NULL;
        scan_options_init(&o);
        o.proc_root = live;
        o.app_ports[0] = ntohs(sa.sin_port);
        o.n_app_ports = 1;
        o.outbound_port = ntohs(sa.sin_port);
        o.hbone_port = 0;
        assert_int_equal(scan_options_set_local_addr(&o, "127.0.0.77"), 0);
        assert_int_equal(track_new(0, &t), 0);

        _cleanup_(scan_result_freep) ScanResult *r = NULL;
        assert_int_equal(scan_run(&o, t, 0, &r), 0);
        assert_int_equal(r->host.counts.outbound, 7);

        /* The live namespace is this process's own: auto read it over netlink, without privilege. */
        assert_int_equal(r->host.source, SCAN_SOURCE_NETLINK);

        /* The same view through the real /proc, naming this process as the host's (--host-pid), from each source. */
        static const ScanSource sources[] = { SCAN_SOURCE_PROC, SCAN_SOURCE_NETLINK, SCAN_SOURCE_AUTO };
        for (size_t i = 0; i < ELEMENTSOF(sources); i++) {
                ScanOptions live_o = o;
                _cleanup_(track_freep) SocketTracker *t2 = NULL;
                _cleanup_(scan_result_freep) ScanResult *r_live = NULL;
                live_o.proc_root = "/proc";
                live_o.host_pid = getpid();
                live_o.source = sources[i];
                assert_int_equal(track_new(0, &t2), 0);
                assert_int_equal(scan_run(&live_o, t2, 0, &r_live), 0);
                assert_int_equal(r_live->host.counts.outbound, 7);
                assert_int_equal(r_live->host.pid, getpid());
                assert_int_equal(r_live->host.source, sources[i] == SCAN_SOURCE_PROC ? SCAN_SOURCE_PROC
                                                                                     : SCAN_SOURCE_NETLINK);
                /* Both sources see the same sockets: the same inodes go into the tracker. */
                assert_int_equal(track_size(t2), 7);
        }

        /* And what ss(8) says about the same sockets (iproute2, when installed). */
        int ss = count_ss_established("127.0.0.77", ntohs(sa.sin_port));
        if (ss >= 0)
                assert_int_equal(ss, 7);

        for (int i = 0; i < 3; i++) {
                close(clients[i]);
                close(servers[i]);
        }
        _cleanup_(scan_result_freep) ScanResult *r2 = NULL;
        assert_int_equal(scan_run(&o, t, 61 * USEC_PER_SEC, &r2), 0);
        assert_int_equal(r2->host.counts.outbound, 4);
        assert_int_equal(r2->host.counts.long_lived, 4);
        for (int i = 3; i < 7; i++) {
                close(clients[i]);
                close(servers[i]);
        }
        close(lfd);
}

/* Brings lo up in the calling process's network namespace. */
static int loopback_up(void)
{
        struct ifreq ifr = {};
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
        int r = ioctl(fd, SIOCGIFFLAGS, &ifr);
        if (r >= 0) {
                ifr.ifr_flags |= IFF_UP;
                r = ioctl(fd, SIOCSIFFLAGS, &ifr);
        }
        close(fd);
        return r < 0 ? -errno : 0;
}

/*
 * A pod in a network namespace of its own: a child process unshares a new
 * netns (root only), holds 5 connections to port 15001 there, and a recorded
 * proc root presents it as a pod whose net/ is the child's. The agent must
 * count those 5 — and none of the test's own sockets.
 */
static void test_network_namespace(void **state)
{
        int ready[2], go[2];
        char c;

        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        assert_int_equal(pipe2(go, O_CLOEXEC), 0);
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                int lfd, fds[10];
                struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                          .sin_port = htons(15001) };
                if (unshare(CLONE_NEWNET) < 0 || loopback_up() < 0)
                        _exit(77);
                lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 16) < 0)
                        _exit(1);
                for (int i = 0; i < 5; i++) {
                        fds[2 * i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                        if (connect(fds[2 * i], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
                            (fds[2 * i + 1] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
                                _exit(1);
                }
                (void)!write(ready[1], "r", 1);
                (void)!read(go[0], &c, 1); /* hold the sockets until the parent has scanned */
                _exit(0);
        }
        close(ready[1]);
        close(go[0]);
        if (read(ready[0], &c, 1) != 1) {
                int status;
                waitpid(child, &status, 0);
                close(ready[0]);
                close(go[1]);
                if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
                        skip(); /* not allowed to create a network namespace (not root) */
                fail_msg("the namespace child failed (status %d)", status);
        }

        /* The recorded tree's pod 700: its cgroup names a pod, its net/ and ns/ are the child's. */
        char link[512], target[64];
        put_file("700/cgroup", "0::/kubepods/pod77777777-0000-4000-8000-000000000007/c\n");
        snprintf(link, sizeof(link), "%s/700/net", root);
        snprintf(target, sizeof(target), "/proc/%d/net", (int)child);
        assert_int_equal(symlink(target, link), 0);
        snprintf(link, sizeof(link), "%s/700/ns", root);
        snprintf(target, sizeof(target), "/proc/%d/ns", (int)child);
        assert_int_equal(symlink(target, link), 0);

        /* Every source counts the 5: netlink from inside the namespace (setns), /proc from its files. */
        static const ScanSource sources[] = { SCAN_SOURCE_AUTO, SCAN_SOURCE_NETLINK, SCAN_SOURCE_PROC };
        for (size_t i = 0; i < ELEMENTSOF(sources); i++) {
                ScanOptions o;
                _cleanup_(track_freep) SocketTracker *t = NULL;
                _cleanup_(scan_result_freep) ScanResult *r = NULL;
                scan_options_init(&o);
                o.proc_root = root;
                o.source = sources[i];
                assert_int_equal(track_new(0, &t), 0);
                assert_int_equal(scan_run(&o, t, 0, &r), 0);
                const ScanPod *p = find_pod(r, "77777777-0000-4000-8000-000000000007");
                assert_non_null(p);
                assert_int_equal(p->counts.outbound, 5);
                assert_int_equal(p->source, sources[i] == SCAN_SOURCE_PROC ? SCAN_SOURCE_PROC : SCAN_SOURCE_NETLINK);
        }

        /* And ss(8), run inside the namespace, agrees. */
        snprintf(target, sizeof(target), "/proc/%d/ns/net", (int)child);
        int ss = count_ss_established_in(target, NULL, 15001);
        if (ss >= 0)
                assert_int_equal(ss, 5);

        (void)!write(go[1], "g", 1);
        close(go[1]);
        close(ready[0]);
        int status;
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_recorded_tree, setup_tree, teardown_tree),
                cmocka_unit_test(test_source_names),
                cmocka_unit_test_setup_teardown(test_long_lived_across_scans, setup_tree, teardown_tree),
                cmocka_unit_test_setup_teardown(test_local_addr_filter, setup_tree, teardown_tree),
                cmocka_unit_test_setup_teardown(test_missing_root, setup_tree, teardown_tree),
                cmocka_unit_test_setup_teardown(test_tracker_cap, setup_tree, teardown_tree),
                cmocka_unit_test_setup_teardown(test_tracker_growth, setup_tree, teardown_tree),
                cmocka_unit_test_setup_teardown(test_real_loopback_sockets, setup_tree, teardown_tree),
                cmocka_unit_test_setup_teardown(test_network_namespace, setup_tree, teardown_tree),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
