/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sock_diag: recorded kernel replies (data/sockdiag/tcp{4,6}.bin, every TCP
 * socket of a namespace holding listeners on 15001, 15006 and [::1]:15008
 * and connections to each — recorded with the kernel's own attributes
 * attached), hand-made malformed replies, the request's bytecode, and the
 * kernel's answer to that bytecode on live loopback sockets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "meshroll/errors.h"
#include "meshroll/sockdiag.h"

typedef struct Collected {
        ProcNetSocket s[4096];
        size_t n;
} Collected;

static int collect(const ProcNetSocket *s, void *userdata)
{
        Collected *c = userdata;
        if (c->n < ELEMENTSOF(c->s))
                c->s[c->n] = *s;
        c->n++;
        return 0;
}

static size_t read_data(const char *name, uint8_t *buf, size_t size)
{
        char path[512];
        const char *dir = getenv("MESHROLL_TEST_DATA");
        snprintf(path, sizeof(path), "%s/sockdiag/%s", dir ? dir : "tests/unit/data", name);
        FILE *f = fopen(path, "re");
        assert_non_null(f);
        size_t n = fread(buf, 1, size, f);
        fclose(f);
        return n;
}

static size_t count_where(const Collected *c, uint8_t state, uint16_t local_port, uint16_t remote_port)
{
        size_t n = 0;
        for (size_t i = 0; i < MIN(c->n, ELEMENTSOF(c->s)); i++)
                n += c->s[i].state == state && (!local_port || c->s[i].local_port == local_port) &&
                     (!remote_port || c->s[i].remote_port == remote_port);
        return n;
}

/* The recorded replies carry seq 7. */
static void test_recorded_ipv4(void **state)
{
        uint8_t buf[8192];
        size_t n = read_data("tcp4.bin", buf, sizeof(buf));
        Collected c = {};
        ProcNetStats st = {};
        SockDiagParser p;
        static const uint8_t lo[4] = { 127, 0, 0, 1 };

        sockdiag_parser_init(&p, AF_INET, 7, collect, &c, &st);
        assert_int_equal(sockdiag_parser_feed(&p, buf, n), 1);
        assert_int_equal(c.n, 9);
        assert_int_equal(st.sockets, 9);
        assert_int_equal(st.malformed, 0);
        assert_int_equal(count_where(&c, TCP_STATE_LISTEN, 15001, 0), 1);
        assert_int_equal(count_where(&c, TCP_STATE_ESTABLISHED, 15001, 0), 3);
        assert_int_equal(count_where(&c, TCP_STATE_ESTABLISHED, 0, 15001), 3);
        assert_int_equal(count_where(&c, TCP_STATE_ESTABLISHED, 0, 15006), 2);
        for (size_t i = 0; i < c.n; i++) {
                assert_int_equal(c.s[i].family, AF_INET);
                assert_memory_equal(c.s[i].local, lo, 4);
                assert_true(c.s[i].inode != 0);
        }
        /* Fed in two pieces at a message boundary, the same result. */
        struct nlmsghdr h;
        memcpy(&h, buf, sizeof(h));
        Collected c2 = {};
        sockdiag_parser_init(&p, AF_INET, 7, collect, &c2, NULL);
        assert_int_equal(sockdiag_parser_feed(&p, buf, NLMSG_ALIGN(h.nlmsg_len)), 0);
        assert_int_equal(sockdiag_parser_feed(&p, buf + NLMSG_ALIGN(h.nlmsg_len), n - NLMSG_ALIGN(h.nlmsg_len)), 1);
        assert_int_equal(c2.n, 9);
}

static void test_recorded_ipv6(void **state)
{
        uint8_t buf[8192];
        size_t n = read_data("tcp6.bin", buf, sizeof(buf));
        Collected c = {};
        SockDiagParser p;
        static const uint8_t mapped_lo[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1 };

        sockdiag_parser_init(&p, AF_INET6, 7, collect, &c, NULL);
        assert_int_equal(sockdiag_parser_feed(&p, buf, n), 1);
        assert_int_equal(c.n, 6);
        assert_int_equal(count_where(&c, TCP_STATE_LISTEN, 0, 0), 2);
        /* IPv4 clients of the dual-stack listener: IPv4-mapped local addresses, as in tcp6. */
        assert_int_equal(count_where(&c, TCP_STATE_ESTABLISHED, 15006, 0), 2);
        assert_int_equal(count_where(&c, TCP_STATE_ESTABLISHED, 15008, 0), 1);
        assert_int_equal(count_where(&c, TCP_STATE_ESTABLISHED, 0, 15008), 1);
        for (size_t i = 0; i < c.n; i++)
                if (c.s[i].local_port == 15006 && c.s[i].state == TCP_STATE_ESTABLISHED) {
                        assert_memory_equal(c.s[i].local, mapped_lo, 16);
                        assert_true(procnet_is_v4mapped(c.s[i].local));
                }
        /* The same records as the answer to a both-families request (TCPDIAG_GETSOCK). */
        uint8_t copy[8192];
        memcpy(copy, buf, n);
        for (size_t off = 0; off + NLMSG_HDRLEN <= n;) {
                struct nlmsghdr h;
                memcpy(&h, copy + off, sizeof(h));
                if (h.nlmsg_type == SOCK_DIAG_BY_FAMILY) {
                        h.nlmsg_type = TCPDIAG_GETSOCK;
                        memcpy(copy + off, &h, sizeof(h));
                }
                off += NLMSG_ALIGN(h.nlmsg_len);
        }
        Collected both = {};
        sockdiag_parser_init(&p, AF_UNSPEC, 7, collect, &both, NULL);
        assert_int_equal(sockdiag_parser_feed(&p, copy, n), 1);
        assert_int_equal(both.n, 6);

        /* A reply parsed for the other family: every record counted malformed, none delivered. */
        Collected none = {};
        ProcNetStats st = {};
        sockdiag_parser_init(&p, AF_INET, 7, collect, &none, &st);
        assert_int_equal(sockdiag_parser_feed(&p, buf, n), 1);
        assert_int_equal(none.n, 0);
        assert_int_equal(st.malformed, 6);
}

static size_t put_msg(uint8_t *at, uint16_t type, uint32_t seq, const void *payload, size_t len)
{
        struct nlmsghdr h = { .nlmsg_len = (uint32_t)(NLMSG_HDRLEN + len), .nlmsg_type = type, .nlmsg_seq = seq };
        memcpy(at, &h, sizeof(h));
        if (len)
                memcpy(at + NLMSG_HDRLEN, payload, len);
        return NLMSG_ALIGN(h.nlmsg_len);
}

static void test_malformed(void **state)
{
        uint8_t buf[4096] = {};
        struct inet_diag_msg m = { .idiag_family = AF_INET, .idiag_state = TCP_STATE_ESTABLISHED,
                                   .id.idiag_sport = htons(15001), .idiag_inode = 42 };
        Collected c = {};
        ProcNetStats st = {};
        SockDiagParser p;
        size_t n = 0;

        n += put_msg(buf + n, SOCK_DIAG_BY_FAMILY, 1, &m, sizeof(m));
        n += put_msg(buf + n, SOCK_DIAG_BY_FAMILY, 1, &m, sizeof(m) - 1); /* short record */
        n += put_msg(buf + n, SOCK_DIAG_BY_FAMILY, 2, &m, sizeof(m));     /* someone else's sequence */
        n += put_msg(buf + n, NLMSG_NOOP, 1, NULL, 0);
        n += put_msg(buf + n, SOCK_DIAG_BY_FAMILY, 1, &m, sizeof(m));
        sockdiag_parser_init(&p, AF_INET, 1, collect, &c, &st);
        assert_int_equal(sockdiag_parser_feed(&p, buf, n), 0);
        assert_int_equal(c.n, 2);
        assert_int_equal(c.s[0].local_port, 15001);
        assert_int_equal(c.s[0].inode, 42);
        assert_int_equal(st.malformed, 1);

        /* A length running past the datagram: counted, and the rest of the datagram dropped. */
        struct nlmsghdr h = { .nlmsg_len = 4000, .nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_seq = 1 };
        memcpy(buf, &h, sizeof(h));
        assert_int_equal(sockdiag_parser_feed(&p, buf, 100), 0);
        assert_int_equal(st.malformed, 2);
        /* A length shorter than a header. */
        h.nlmsg_len = 3;
        memcpy(buf, &h, sizeof(h));
        assert_int_equal(sockdiag_parser_feed(&p, buf, 64), 0);
        assert_int_equal(st.malformed, 3);
        /* Trailing bytes too short for a header. */
        assert_int_equal(sockdiag_parser_feed(&p, buf, 5), 0);
        assert_int_equal(st.malformed, 4);
        assert_int_equal(c.n, 2);

        /* The kernel's errors come back as -errno; an acknowledgement is not one. */
        int err = 0;
        n = put_msg(buf, NLMSG_ERROR, 1, &err, sizeof(err));
        err = -EPERM;
        n += put_msg(buf + n, NLMSG_ERROR, 1, &err, sizeof(err));
        sockdiag_parser_init(&p, AF_INET, 1, collect, &c, NULL);
        assert_int_equal(sockdiag_parser_feed(&p, buf, n), -EPERM);
        /* A failed dump's DONE carries its status. */
        err = -EINTR;
        n = put_msg(buf, NLMSG_DONE, 1, &err, sizeof(err));
        sockdiag_parser_init(&p, AF_INET, 1, collect, &c, NULL);
        assert_int_equal(sockdiag_parser_feed(&p, buf, n), -EINTR);
        /* An error code outside errno's range is a protocol error, not a domain code. */
        err = -MR_ETOOBIG;
        n = put_msg(buf, NLMSG_ERROR, 1, &err, sizeof(err));
        sockdiag_parser_init(&p, AF_INET, 1, collect, &c, NULL);
        assert_int_equal(sockdiag_parser_feed(&p, buf, n), -EPROTO);
        /* DONE without a status (old kernels) ends the dump. */
        n = put_msg(buf, NLMSG_DONE, 1, NULL, 0);
        sockdiag_parser_init(&p, AF_INET, 1, collect, &c, NULL);
        assert_int_equal(sockdiag_parser_feed(&p, buf, n), 1);
        /* Nothing is read after DONE. */
        assert_int_equal(sockdiag_parser_feed(&p, buf, n), 1);
}

static int stop_at_first(const ProcNetSocket *s, void *userdata)
{
        return -ECANCELED;
}

static void test_callback_stops(void **state)
{
        uint8_t buf[8192];
        size_t n = read_data("tcp4.bin", buf, sizeof(buf));
        SockDiagParser p;
        sockdiag_parser_init(&p, AF_INET, 7, stop_at_first, NULL, NULL);
        assert_int_equal(sockdiag_parser_feed(&p, buf, n), -ECANCELED);
}

static void test_request(void **state)
{
        uint8_t buf[SOCKDIAG_REQUEST_MAX];
        SockDiagFilter f = { .states = 1u << TCP_STATE_ESTABLISHED, .local_ports = { 15001, 15006, 15008 },
                             .n_local_ports = 3, .remote_ports = { 15008 }, .n_remote_ports = 1 };
        int len = sockdiag_build_request(AF_INET6, &f, 9, buf, sizeof(buf));
        struct nlmsghdr h;
        struct inet_diag_req_v2 req;
        struct nlattr a;

        /* header, request, attribute header, 4 comparisons of 8 bytes and 3 jumps of 4 */
        size_t bc_len = 4 * 8 + 3 * 4;
        assert_int_equal(len, NLMSG_ALIGN(NLMSG_HDRLEN + sizeof(req)) + NLA_HDRLEN + bc_len);
        memcpy(&h, buf, sizeof(h));
        assert_int_equal(h.nlmsg_len, len);
        assert_int_equal(h.nlmsg_type, SOCK_DIAG_BY_FAMILY);
        assert_int_equal(h.nlmsg_flags, NLM_F_REQUEST | NLM_F_DUMP);
        assert_int_equal(h.nlmsg_seq, 9);
        memcpy(&req, buf + NLMSG_HDRLEN, sizeof(req));
        assert_int_equal(req.sdiag_family, AF_INET6);
        assert_int_equal(req.sdiag_protocol, IPPROTO_TCP);
        assert_int_equal(req.idiag_states, 1u << TCP_STATE_ESTABLISHED);
        memcpy(&a, buf + NLMSG_HDRLEN + sizeof(req), sizeof(a));
        assert_int_equal(a.nla_type, INET_DIAG_REQ_BYTECODE);
        assert_int_equal(a.nla_len, NLA_HDRLEN + bc_len);

        const uint8_t *bc = buf + NLMSG_HDRLEN + sizeof(req) + NLA_HDRLEN;
        struct inet_diag_bc_op op;
        static const struct {
                uint8_t code;
                uint16_t port;
        } expect[] = { { INET_DIAG_BC_S_EQ, 15001 }, { INET_DIAG_BC_S_EQ, 15006 }, { INET_DIAG_BC_S_EQ, 15008 },
                       { INET_DIAG_BC_D_EQ, 15008 } };
        size_t off = 0;
        for (size_t i = 0; i < ELEMENTSOF(expect); i++) {
                memcpy(&op, bc + off, sizeof(op));
                assert_int_equal(op.code, expect[i].code);
                assert_int_equal(op.yes, 8);
                assert_int_equal(op.no, 12);
                memcpy(&op, bc + off + 4, sizeof(op));
                assert_int_equal(op.no, expect[i].port);
                off += 8;
                if (i + 1 < ELEMENTSOF(expect)) {
                        memcpy(&op, bc + off, sizeof(op));
                        assert_int_equal(op.code, INET_DIAG_BC_JMP);
                        assert_int_equal(op.yes, 4);
                        assert_int_equal(op.no, bc_len - off); /* to the end: accept */
                        off += 4;
                }
        }

        /* No ports: no bytecode; no states: every state. */
        SockDiagFilter all = {};
        assert_int_equal(sockdiag_build_request(AF_INET, &all, 1, buf, sizeof(buf)),
                         NLMSG_ALIGN(NLMSG_HDRLEN + sizeof(req)));
        memcpy(&req, buf + NLMSG_HDRLEN, sizeof(req));
        assert_int_equal(req.idiag_states, ~0u);

        /* Both families: the TCPDIAG_GETSOCK request, with the same program. */
        len = sockdiag_build_request(AF_UNSPEC, &f, 3, buf, sizeof(buf));
        struct inet_diag_req v1;
        assert_int_equal(len, NLMSG_ALIGN(NLMSG_HDRLEN + sizeof(v1)) + NLA_HDRLEN + bc_len);
        memcpy(&h, buf, sizeof(h));
        assert_int_equal(h.nlmsg_type, TCPDIAG_GETSOCK);
        memcpy(&v1, buf + NLMSG_HDRLEN, sizeof(v1));
        assert_int_equal(v1.idiag_states, 1u << TCP_STATE_ESTABLISHED);
        memcpy(&a, buf + NLMSG_ALIGN(NLMSG_HDRLEN + sizeof(v1)), sizeof(a));
        assert_int_equal(a.nla_type, INET_DIAG_REQ_BYTECODE);

        assert_int_equal(sockdiag_build_request(AF_UNIX, &f, 1, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(sockdiag_build_request(AF_INET, &f, 1, buf, 40), -ENOBUFS);
        f.n_local_ports = SOCKDIAG_PORTS_MAX + 1;
        assert_int_equal(sockdiag_build_request(AF_INET, &f, 1, buf, sizeof(buf)), -EINVAL);
}

static int listen_any(int family, uint16_t *ret_port)
{
        struct sockaddr_storage ss = {};
        socklen_t sl;
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        if (family == AF_INET) {
                struct sockaddr_in *sa = (struct sockaddr_in *)&ss;
                sa->sin_family = AF_INET;
                sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                sl = sizeof(*sa);
        } else {
                struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;
                sa->sin6_family = AF_INET6;
                sa->sin6_addr = in6addr_loopback;
                sl = sizeof(*sa);
        }
        assert_int_equal(bind(fd, (struct sockaddr *)&ss, sl), 0);
        assert_int_equal(listen(fd, 16), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
        *ret_port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
        return fd;
}

static void connect_n(int family, uint16_t port, int n, int *fds)
{
        for (int i = 0; i < n; i++) {
                fds[i] = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (family == AF_INET) {
                        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                        assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
                } else {
                        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(port),
                                                   .sin6_addr = in6addr_loopback };
                        assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
                }
        }
}

/*
 * The kernel runs the bytecode: of connections to two ports (IPv4 and
 * IPv6), a filter on one local port returns exactly that port's accepted
 * sockets, and a remote-port filter exactly their clients.
 */
static void test_live_filter(void **state)
{
        uint16_t pa, pb, p6;
        int la = listen_any(AF_INET, &pa), lb = listen_any(AF_INET, &pb), l6 = listen_any(AF_INET6, &p6);
        int ca[3], cb[2], c6[2];

        connect_n(AF_INET, pa, 3, ca);
        connect_n(AF_INET, pb, 2, cb);
        connect_n(AF_INET6, p6, 2, c6);

        int fd = sockdiag_open();
        assert_true(fd >= 0);
        Collected c = {};
        ProcNetStats st = {};
        SockDiagFilter f = { .states = 1u << TCP_STATE_ESTABLISHED, .local_ports = { pa }, .n_local_ports = 1 };
        assert_int_equal(sockdiag_dump(fd, AF_INET, &f, 1 << 20, collect, &c, &st), 0);
        /* Accepted but not yet accept()ed: the kernel lists them ESTABLISHED all the same. */
        assert_int_equal(c.n, 3);
        assert_int_equal(count_where(&c, TCP_STATE_ESTABLISHED, pa, 0), 3);

        c = (Collected){};
        f = (SockDiagFilter){ .states = 1u << TCP_STATE_ESTABLISHED, .local_ports = { pa, pb }, .n_local_ports = 2,
                              .remote_ports = { pb }, .n_remote_ports = 1 };
        assert_int_equal(sockdiag_dump(fd, AF_INET, &f, 1 << 20, collect, &c, NULL), 0);
        assert_int_equal(c.n, 3 + 2 + 2);
        assert_int_equal(count_where(&c, TCP_STATE_ESTABLISHED, 0, pb), 2);

        c = (Collected){};
        f = (SockDiagFilter){ .states = 1u << TCP_STATE_ESTABLISHED, .local_ports = { p6 }, .n_local_ports = 1 };
        assert_int_equal(sockdiag_dump(fd, AF_INET6, &f, 1 << 20, collect, &c, NULL), 0);
        assert_int_equal(c.n, 2);
        assert_int_equal(c.s[0].family, AF_INET6);

        /* Both families in one dump; records of either family are delivered. */
        c = (Collected){};
        f = (SockDiagFilter){ .states = 1u << TCP_STATE_ESTABLISHED, .local_ports = { pa, p6 }, .n_local_ports = 2 };
        assert_int_equal(sockdiag_dump(fd, AF_UNSPEC, &f, 1 << 20, collect, &c, NULL), 0);
        assert_int_equal(c.n, 3 + 2);
        size_t v6 = 0;
        for (size_t i = 0; i < c.n; i++)
                v6 += c.s[i].family == AF_INET6;
        assert_int_equal(v6, 2);

        /* LISTEN only, no port filter: at least our three listeners. */
        c = (Collected){};
        f = (SockDiagFilter){ .states = 1u << TCP_STATE_LISTEN };
        assert_int_equal(sockdiag_dump(fd, AF_INET, &f, 1 << 20, collect, &c, NULL), 0);
        assert_true(count_where(&c, TCP_STATE_LISTEN, pa, 0) == 1 && count_where(&c, TCP_STATE_LISTEN, pb, 0) == 1);

        /* The byte cap stops a dump. */
        f = (SockDiagFilter){};
        assert_int_equal(sockdiag_dump(fd, AF_INET, &f, 16, collect, &c, NULL), -MR_ETOOBIG);
        close(fd);

        for (int i = 0; i < 3; i++)
                close(ca[i]);
        for (int i = 0; i < 2; i++) {
                close(cb[i]);
                close(c6[i]);
        }
        close(la);
        close(lb);
        close(l6);
}

/* A socket opened through setns answers for that namespace (root only; skipped otherwise). */
static void test_open_in_netns(void **state)
{
        int ready[2], go[2];
        char ch;
        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        assert_int_equal(pipe2(go, O_CLOEXEC), 0);
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                if (unshare(CLONE_NEWNET) < 0)
                        _exit(77);
                (void)!write(ready[1], "r", 1);
                (void)!read(go[0], &ch, 1);
                _exit(0);
        }
        close(ready[1]);
        close(go[0]);
        if (read(ready[0], &ch, 1) != 1) {
                int status;
                waitpid(child, &status, 0);
                close(ready[0]);
                close(go[1]);
                skip();
        }
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)child);
        int nsfd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(nsfd >= 0);

        /* Our own listener is visible here … */
        uint16_t port;
        int l = listen_any(AF_INET, &port);
        SockDiagFilter f = { .states = 1u << TCP_STATE_LISTEN, .local_ports = { port }, .n_local_ports = 1 };
        Collected c = {};
        int fd = sockdiag_open();
        assert_true(fd >= 0);
        assert_int_equal(sockdiag_dump(fd, AF_INET, &f, 1 << 20, collect, &c, NULL), 0);
        assert_int_equal(c.n, 1);
        close(fd);
        /* … and not from inside the child's empty namespace, */
        c = (Collected){};
        fd = sockdiag_open_in_netns(nsfd);
        assert_true(fd >= 0);
        assert_int_equal(sockdiag_dump(fd, AF_INET, &f, 1 << 20, collect, &c, NULL), 0);
        assert_int_equal(c.n, 0);
        close(fd);
        /* while this thread is back in its own. */
        char self[64] = {}, again[64];
        assert_true(readlink("/proc/thread-self/ns/net", self, sizeof(self)) > 0);
        snprintf(again, sizeof(again), "/proc/%d/ns/net", (int)getpid());
        char mine[64] = {};
        assert_true(readlink(again, mine, sizeof(mine)) > 0);
        assert_string_equal(self, mine);

        /* Not a namespace: EINVAL from setns. */
        int notns = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
        assert_int_equal(sockdiag_open_in_netns(notns), -EINVAL);
        close(notns);

        close(l);
        close(nsfd);
        (void)!write(go[1], "g", 1);
        close(go[1]);
        close(ready[0]);
        waitpid(child, NULL, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_recorded_ipv4), cmocka_unit_test(test_recorded_ipv6),
                cmocka_unit_test(test_malformed),     cmocka_unit_test(test_callback_stops),
                cmocka_unit_test(test_request),       cmocka_unit_test(test_live_filter),
                cmocka_unit_test(test_open_in_netns),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
