/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>

#include "meshroll/errors.h"
#include "meshroll/procnet.h"

/* Lines in the kernel's exact layout (trailing spaces included). */
static const char tcp4[] =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode    "
        "                                                 \n"
        "   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1490 1 "
        "00000000458598ea 100 0 0 10 0                      \n"
        "   1: 0100007F:3A99 0100007F:9C40 01 00000000:00000000 02:000AB3F1 00000000  1000        0 51234 2 "
        "0000000000000000 20 4 30 10 -1                     \n"
        "   2: 0100007F:9C40 0100007F:3A99 06 00000000:00000000 03:00001770 00000000     0        0 0 3 "
        "0000000000000000\n";

static const char tcp6[] =
        "  sl  local_address                         remote_address                        st tx_queue rx_queue "
        "tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0000000000000000FFFF00000100007F:3A99 0000000000000000FFFF00000200007F:C350 01 00000000:00000000 "
        "00:00000000 00000000  1337        0 777 1 0000000000000000 20 4 0 10 -1\n"
        "   1: 00000000000000000000000001000000:3A98 00000000000000000000000000000000:0000 0A 00000000:00000000 "
        "00:00000000 00000000     0        0 778 1 0000000000000000 100 0 0 10 0\n";

typedef struct Collected {
        ProcNetSocket s[8];
        size_t n;
        int fail_at; /* return -EIO on this socket index, or -1 */
} Collected;

static int collect(const ProcNetSocket *s, void *userdata)
{
        Collected *c = userdata;
        if ((int)c->n == c->fail_at)
                return -EIO;
        if (c->n < ELEMENTSOF(c->s))
                c->s[c->n] = *s;
        c->n++;
        return 0;
}

static int parse_all(const char *data, size_t size, int family, size_t split, Collected *c, ProcNetStats *st)
{
        ProcNetParser p;
        procnet_parser_init(&p, family, collect, c, st);
        int r = procnet_parser_feed(&p, data, split);
        if (r < 0)
                return r;
        r = procnet_parser_feed(&p, data + split, size - split);
        if (r < 0)
                return r;
        return procnet_parser_finish(&p);
}

static void test_ipv4_fields(void **state)
{
        Collected c = { .fail_at = -1 };
        ProcNetStats st = {};
        char a[INET_ADDRSTRLEN];

        assert_int_equal(parse_all(tcp4, strlen(tcp4), AF_INET, 0, &c, &st), 0);
        assert_int_equal(c.n, 3);
        assert_int_equal(st.lines, 3);
        assert_int_equal(st.sockets, 3);
        assert_int_equal(st.malformed, 0);

        assert_int_equal(c.s[0].state, TCP_STATE_LISTEN);
        assert_int_equal(c.s[0].local_port, 2024);
        assert_int_equal(c.s[0].inode, 1490);

        assert_int_equal(c.s[1].state, TCP_STATE_ESTABLISHED);
        assert_string_equal(inet_ntop(AF_INET, c.s[1].local, a, sizeof(a)), "127.0.0.1");
        assert_int_equal(c.s[1].local_port, 15001);
        assert_int_equal(c.s[1].remote_port, 40000);
        assert_int_equal(c.s[1].uid, 1000);
        assert_int_equal(c.s[1].inode, 51234);

        assert_int_equal(c.s[2].state, TCP_STATE_TIME_WAIT);
        assert_int_equal(c.s[2].inode, 0);
}

static void test_ipv6_and_mapped(void **state)
{
        Collected c = { .fail_at = -1 };
        char a[INET6_ADDRSTRLEN];

        assert_int_equal(parse_all(tcp6, strlen(tcp6), AF_INET6, 0, &c, NULL), 0);
        assert_int_equal(c.n, 2);
        assert_true(procnet_is_v4mapped(c.s[0].local));
        assert_string_equal(inet_ntop(AF_INET6, c.s[0].local, a, sizeof(a)), "::ffff:127.0.0.1");
        assert_string_equal(inet_ntop(AF_INET6, c.s[0].remote, a, sizeof(a)), "::ffff:127.0.0.2");
        assert_int_equal(c.s[0].local_port, 15001);
        assert_int_equal(c.s[0].uid, 1337);
        assert_false(procnet_is_v4mapped(c.s[1].local));
        assert_string_equal(inet_ntop(AF_INET6, c.s[1].local, a, sizeof(a)), "::1");
        assert_int_equal(c.s[1].state, TCP_STATE_LISTEN);
}

static void test_every_split_point(void **state)
{
        Collected whole = { .fail_at = -1 };
        assert_int_equal(parse_all(tcp4, strlen(tcp4), AF_INET, 0, &whole, NULL), 0);
        for (size_t split = 0; split <= strlen(tcp4); split++) {
                Collected c = { .fail_at = -1 };
                assert_int_equal(parse_all(tcp4, strlen(tcp4), AF_INET, split, &c, NULL), 0);
                assert_int_equal(c.n, whole.n);
                assert_memory_equal(c.s, whole.s, sizeof(ProcNetSocket) * whole.n);
        }
        /* byte by byte */
        Collected c = { .fail_at = -1 };
        ProcNetParser p;
        procnet_parser_init(&p, AF_INET, collect, &c, NULL);
        for (size_t i = 0; i < strlen(tcp4); i++)
                assert_int_equal(procnet_parser_feed(&p, tcp4 + i, 1), 0);
        assert_int_equal(procnet_parser_finish(&p), 0);
        assert_int_equal(c.n, whole.n);
}

static void test_malformed_lines_skipped(void **state)
{
        static const char *bad[] = {
                "   1: 0100007F:3A99",                                                    /* truncated */
                "   1: 0100007G:3A99 0100007F:9C40 01 0:0 0:0 0 0 0 1",                   /* non-hex */
                "   1: 0100007F3A99 0100007F:9C40 01 0:0 0:0 0 0 0 1",                    /* no colon */
                "   1: 0100007F:3A99 0100007F:9C40 1 0:0 0:0 0 0 0 1",                    /* short state */
                "   x: 0100007F:3A99 0100007F:9C40 01 0:0 0:0 0 0 0 1",                   /* bad sl */
                "   1: 0100007F:3A99 0100007F:9C40 01 0:0 0:0 0 abc 0 1",                 /* bad uid */
                "   1: 0100007F:3A99 0100007F:9C40 01 0:0 0:0 0 0 0 99999999999999999999", /* inode overflow */
                "   1: 0100007F:3A99 0100007F:9C40 01 0:0 0:0 0 4294967296 0 1",          /* uid overflow */
                "\x01\x02\xff garbage",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                ProcNetSocket s;
                assert_int_equal(procnet_parse_line(bad[i], strlen(bad[i]), AF_INET, &s), -EBADMSG);
        }
        /* In a stream they are counted and the good line after them still parsed. */
        char stream[2048];
        int n = snprintf(stream, sizeof(stream), "header\n%s\n%s\n%s\n", bad[0], bad[1],
                         "   2: 0100007F:3A99 0100007F:9C40 01 0:0 0:0 0 0 0 42");
        Collected c = { .fail_at = -1 };
        ProcNetStats st = {};
        assert_int_equal(parse_all(stream, (size_t)n, AF_INET, 0, &c, &st), 0);
        assert_int_equal(st.lines, 3);
        assert_int_equal(st.malformed, 2);
        assert_int_equal(c.n, 1);
        assert_int_equal(c.s[0].inode, 42);
        /* an IPv4 line given to the IPv6 parser is malformed, not misread */
        ProcNetSocket s;
        const char *v4 = "   2: 0100007F:3A99 0100007F:9C40 01 0:0 0:0 0 0 0 42";
        assert_int_equal(procnet_parse_line(v4, strlen(v4), AF_INET6, &s), -EBADMSG);
}

static void test_overlong_line(void **state)
{
        char stream[4096];
        size_t n = 0;
        n += (size_t)snprintf(stream, sizeof(stream), "header\n");
        memset(stream + n, 'A', 1500);
        n += 1500;
        n += (size_t)snprintf(stream + n, sizeof(stream) - n,
                              "\n   2: 0100007F:3A99 0100007F:9C40 01 0:0 0:0 0 0 0 42\n");
        for (size_t split = 0; split < n; split += 97) {
                Collected c = { .fail_at = -1 };
                ProcNetStats st = {};
                assert_int_equal(parse_all(stream, n, AF_INET, split, &c, &st), 0);
                assert_int_equal(st.malformed, 1);
                assert_int_equal(c.n, 1);
                assert_int_equal(c.s[0].inode, 42);
        }
}

static void test_callback_error_stops(void **state)
{
        Collected c = { .fail_at = 1 };
        assert_int_equal(parse_all(tcp4, strlen(tcp4), AF_INET, 0, &c, NULL), -EIO);
        assert_int_equal(c.n, 1);
}

static void test_read_file_and_cap(void **state)
{
        char path[] = "/tmp/meshroll-procnet-XXXXXX";
        int fd = mkostemp(path, O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, tcp4, strlen(tcp4)), (ssize_t)strlen(tcp4));
        close(fd);

        Collected c = { .fail_at = -1 };
        ProcNetStats st = {};
        assert_int_equal(procnet_read_file(AT_FDCWD, path, AF_INET, 1 << 20, collect, &c, &st), 0);
        assert_int_equal(c.n, 3);
        assert_int_equal(st.bytes, strlen(tcp4));

        Collected c2 = { .fail_at = -1 };
        assert_int_equal(procnet_read_file(AT_FDCWD, path, AF_INET, 200, collect, &c2, NULL), -MR_ETOOBIG);
        assert_true(c2.n < 3);
        unlink(path);
        assert_int_equal(procnet_read_file(AT_FDCWD, path, AF_INET, 1 << 20, collect, &c2, NULL), -ENOENT);
}

static void test_pod_uid_from_cgroup(void **state)
{
        static const struct {
                const char *cgroup;
                int r;
                const char *uid;
        } cases[] = {
                /* cgroup v2, systemd driver */
                { "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2f1c7d3e_9a4b_4c2d_8e1f_0a1b2c3d4e5f.slice/"
                  "cri-containerd-4b1d.scope\n",
                  0, "2f1c7d3e-9a4b-4c2d-8e1f-0a1b2c3d4e5f" },
                /* cgroup v2, guaranteed QoS, systemd driver */
                { "0::/kubepods.slice/kubepods-pod2F1C7D3E_9A4B_4C2D_8E1F_0A1B2C3D4E5F.slice/cri-containerd-1.scope\n",
                  0, "2f1c7d3e-9a4b-4c2d-8e1f-0a1b2c3d4e5f" },
                /* cgroup v1, cgroupfs driver, several controllers naming the same pod */
                { "12:memory:/kubepods/besteffort/pod0a1b2c3d-0000-4000-8000-000000000001/abcdef\n"
                  "11:cpu,cpuacct:/kubepods/besteffort/pod0a1b2c3d-0000-4000-8000-000000000001/abcdef\n"
                  "1:name=systemd:/\n",
                  0, "0a1b2c3d-0000-4000-8000-000000000001" },
                /* cgroup v2, cgroupfs driver */
                { "0::/kubepods/burstable/pod0a1b2c3d-0000-4000-8000-000000000002/c0ffee", 0,
                  "0a1b2c3d-0000-4000-8000-000000000002" },
                /* host processes */
                { "0::/system.slice/kubelet.service\n", -ENOENT, NULL },
                { "0::/\n", -ENOENT, NULL },
                { "", -ENOENT, NULL },
                /* "pod" not at a component boundary, or a short UID */
                { "0::/kubepods/ipod0a1b2c3d-0000-4000-8000-000000000002/x\n", -ENOENT, NULL },
                { "0::/kubepods/pod0a1b2c3d-0000-4000-8000-00000000000/x\n", -ENOENT, NULL },
                { "0::/kubepods/pod0a1b2c3d-0000-4000-8000-0000000000023/x\n", -ENOENT, NULL },
                /* two different pods: refuse to guess */
                { "1:cpu:/kubepods/pod0a1b2c3d-0000-4000-8000-000000000001/x\n"
                  "2:memory:/kubepods/pod0a1b2c3d-0000-4000-8000-000000000002/x\n",
                  -EBADMSG, NULL },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char uid[POD_UID_MAX] = "unchanged";
                int r = pod_uid_from_cgroup(cases[i].cgroup, strlen(cases[i].cgroup), uid);
                if (r != cases[i].r)
                        fail_msg("case %zu: got %d, want %d", i, r, cases[i].r);
                if (cases[i].uid)
                        assert_string_equal(uid, cases[i].uid);
                else
                        assert_string_equal(uid, "unchanged");
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ipv4_fields),
                cmocka_unit_test(test_ipv6_and_mapped),
                cmocka_unit_test(test_every_split_point),
                cmocka_unit_test(test_malformed_lines_skipped),
                cmocka_unit_test(test_overlong_line),
                cmocka_unit_test(test_callback_error_stops),
                cmocka_unit_test(test_read_file_and_cap),
                cmocka_unit_test(test_pod_uid_from_cgroup),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
