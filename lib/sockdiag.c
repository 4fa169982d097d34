/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sockdiag.c — see sockdiag.h.
 *
 * The port filter is an OR of port comparisons, laid out so the kernel's
 * verifier (net/ipv4/inet_diag.c inet_diag_bc_audit(): every jump target
 * must be the end, one past it, or an op reachable along the "yes" chain)
 * accepts it:
 *
 *   [S_EQ p1][JMP → end][S_EQ p2][JMP → end] … [D_EQ pn]
 *
 * Each comparison is 8 bytes (the op, then an op whose `no` holds the
 * port); on a match it falls through ("yes" = 8) to its JMP, which jumps to
 * the end (accept); on a miss it skips its JMP ("no" = 12) to the next
 * comparison. The last comparison's "yes" lands on the end (accept) and its
 * "no" one op past it (reject). JMP always takes "no". Kernels without the
 * *_EQ ops (before 4.16) reject the program with EINVAL: the dump is then
 * repeated unfiltered, and the callers' own port checks do the filtering.
 */
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "meshroll/errors.h"
#include "meshroll/sockdiag.h"

#define RECV_BUFFER 32768 /* the kernel's largest dump datagram (af_netlink.c caps max_recvmsg_len at 32 KiB) */
#define RECV_TIMEOUT_SEC 5

static void put_op(uint8_t *at, uint8_t code, uint8_t yes, uint16_t no)
{
        struct inet_diag_bc_op op = { .code = code, .yes = yes, .no = no };
        memcpy(at, &op, sizeof(op));
}

/* Writes the port program into out (room for it checked by the caller); returns its length. */
static size_t build_bytecode(const SockDiagFilter *f, uint8_t *out)
{
        size_t n = f->n_local_ports + f->n_remote_ports, off = 0;
        size_t total = n * 8 + (n - 1) * 4;

        for (size_t i = 0; i < n; i++) {
                bool local = i < f->n_local_ports;
                uint16_t port = local ? f->local_ports[i] : f->remote_ports[i - f->n_local_ports];
                put_op(out + off, local ? INET_DIAG_BC_S_EQ : INET_DIAG_BC_D_EQ, 8, 12);
                put_op(out + off + 4, INET_DIAG_BC_NOP, 0, port);
                off += 8;
                if (i + 1 < n) {
                        put_op(out + off, INET_DIAG_BC_JMP, 4, (uint16_t)(total - off));
                        off += 4;
                }
        }
        return off;
}

int sockdiag_build_request(int family, const SockDiagFilter *f, uint32_t seq, void *buf, size_t size)
{
        static const SockDiagFilter none = {};
        uint8_t bc[SOCKDIAG_PORTS_MAX * 2 * 12];
        size_t bc_len = 0, head_len, len;

        if (family != AF_INET && family != AF_INET6 && family != AF_UNSPEC)
                return -EINVAL;
        if (!f)
                f = &none;
        if (f->n_local_ports > SOCKDIAG_PORTS_MAX || f->n_remote_ports > SOCKDIAG_PORTS_MAX)
                return -EINVAL;
        if (f->n_local_ports + f->n_remote_ports > 0)
                bc_len = build_bytecode(f, bc);

        /*
         * Both families in one walk of the kernel's socket tables: the older
         * TCPDIAG_GETSOCK request (struct inet_diag_req), which the kernel
         * answers as a dump of every family (inet_diag.c
         * inet_diag_dump_compat(), what ss(8) sends when no family is
         * chosen). One family: SOCK_DIAG_BY_FAMILY with inet_diag_req_v2.
         */
        head_len = NLMSG_HDRLEN + (family == AF_UNSPEC ? sizeof(struct inet_diag_req) : sizeof(struct inet_diag_req_v2));
        len = NLMSG_ALIGN(head_len) + (bc_len ? NLA_HDRLEN + NLA_ALIGN(bc_len) : 0);
        if (len > size)
                return -ENOBUFS;
        memset(buf, 0, len);
        struct nlmsghdr h = {
                .nlmsg_len = (uint32_t)len,
                .nlmsg_type = family == AF_UNSPEC ? TCPDIAG_GETSOCK : SOCK_DIAG_BY_FAMILY,
                .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
                .nlmsg_seq = seq,
        };
        memcpy(buf, &h, sizeof(h));
        uint32_t states = f->states ? f->states : ~0u;
        if (family == AF_UNSPEC) {
                struct inet_diag_req req = { .idiag_family = AF_INET, .idiag_states = states };
                memcpy((uint8_t *)buf + NLMSG_HDRLEN, &req, sizeof(req));
        } else {
                struct inet_diag_req_v2 req = { .sdiag_family = (uint8_t)family, .sdiag_protocol = IPPROTO_TCP,
                                                .idiag_states = states };
                memcpy((uint8_t *)buf + NLMSG_HDRLEN, &req, sizeof(req));
        }
        if (bc_len) {
                struct nlattr a = { .nla_len = (uint16_t)(NLA_HDRLEN + bc_len), .nla_type = INET_DIAG_REQ_BYTECODE };
                uint8_t *p = (uint8_t *)buf + NLMSG_ALIGN(head_len);
                memcpy(p, &a, sizeof(a));
                memcpy(p + NLA_HDRLEN, bc, bc_len);
        }
        return (int)len;
}

void sockdiag_parser_init(SockDiagParser *p, int family, uint32_t seq, procnet_socket_t cb, void *userdata,
                          ProcNetStats *stats)
{
        *p = (SockDiagParser){ .family = family, .seq = seq, .cb = cb, .userdata = userdata, .stats = stats };
}

static void count_malformed(SockDiagParser *p)
{
        if (p->stats) {
                p->stats->lines++;
                p->stats->malformed++;
        }
}

/* One SOCK_DIAG_BY_FAMILY message's payload (size checked ≥ the record by the caller). */
static int handle_socket(SockDiagParser *p, const uint8_t *payload)
{
        struct inet_diag_msg m;
        ProcNetSocket s = {};

        memcpy(&m, payload, sizeof(m)); /* payload alignment is the sender's business: copy */
        if (p->family == AF_UNSPEC ? m.idiag_family != AF_INET && m.idiag_family != AF_INET6
                                   : m.idiag_family != p->family) {
                count_malformed(p);
                return 0;
        }
        s.family = m.idiag_family;
        memcpy(s.local, m.id.idiag_src, m.idiag_family == AF_INET ? 4 : 16);
        memcpy(s.remote, m.id.idiag_dst, m.idiag_family == AF_INET ? 4 : 16);
        s.local_port = ntohs(m.id.idiag_sport);
        s.remote_port = ntohs(m.id.idiag_dport);
        s.state = m.idiag_state;
        s.uid = m.idiag_uid;
        s.inode = m.idiag_inode;
        if (p->stats) {
                p->stats->lines++;
                p->stats->sockets++;
        }
        return p->cb ? p->cb(&s, p->userdata) : 0;
}

int sockdiag_parser_feed(SockDiagParser *p, const void *data, size_t size)
{
        const uint8_t *at = data, *end = at + size;
        int r;

        if (p->stats)
                p->stats->bytes += size;
        while (!p->done && (size_t)(end - at) >= NLMSG_HDRLEN) {
                struct nlmsghdr h;
                memcpy(&h, at, sizeof(h));
                if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > (size_t)(end - at)) {
                        /* A length we cannot trust: nothing after it in this datagram can be framed. */
                        count_malformed(p);
                        return 0;
                }
                const uint8_t *payload = at + NLMSG_HDRLEN;
                size_t plen = h.nlmsg_len - NLMSG_HDRLEN;
                size_t step = MIN((size_t)NLMSG_ALIGN(h.nlmsg_len), (size_t)(end - at));
                at += step;

                if (h.nlmsg_seq != p->seq)
                        continue; /* an answer to someone else's request on this socket */
                switch (h.nlmsg_type) {
                case NLMSG_DONE: {
                        int status = 0;
                        if (plen >= sizeof(status))
                                memcpy(&status, payload, sizeof(status));
                        p->done = true;
                        return status < 0 ? (status > -MR_ERRNO_BASE ? status : -EPROTO) : 1;
                }
                case NLMSG_ERROR: {
                        struct nlmsgerr e;
                        if (plen < sizeof(e.error)) {
                                count_malformed(p);
                                continue;
                        }
                        memcpy(&e.error, payload, sizeof(e.error));
                        if (e.error == 0)
                                continue; /* an acknowledgement */
                        p->done = true;
                        return e.error < 0 && e.error > -MR_ERRNO_BASE ? e.error : -EPROTO;
                }
                case SOCK_DIAG_BY_FAMILY:
                case TCPDIAG_GETSOCK: /* the answer to a both-families request */
                        if (plen < sizeof(struct inet_diag_msg)) {
                                count_malformed(p);
                                continue;
                        }
                        r = handle_socket(p, payload);
                        if (r < 0)
                                return r;
                        break;
                default:
                        break; /* NLMSG_NOOP, NLMSG_OVERRUN and anything new: nothing to count */
                }
        }
        if (at < end && !p->done)
                count_malformed(p); /* trailing bytes too short for a header */
        return p->done ? 1 : 0;
}

int sockdiag_open(void)
{
        struct timeval tv = { .tv_sec = RECV_TIMEOUT_SEC };
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        if (fd < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

int sockdiag_open_in_netns(int nsfd)
{
        _cleanup_close_ int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC | O_NOCTTY);
        int fd;

        if (self < 0)
                return -errno;
        if (setns(nsfd, CLONE_NEWNET) < 0)
                return -errno;
        fd = sockdiag_open();
        if (setns(self, CLONE_NEWNET) < 0)
                abort(); /* we got in with the same privileges a moment ago: never go on in the wrong namespace */
        return fd;
}

static int dump_once(int fd, int family, const SockDiagFilter *f, size_t max_bytes, procnet_socket_t cb,
                     void *userdata, ProcNetStats *stats, bool *ret_delivered)
{
        static uint32_t next_seq = 1;
        uint8_t req[SOCKDIAG_REQUEST_MAX];
        struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
        uint32_t seq = __atomic_fetch_add(&next_seq, 1, __ATOMIC_RELAXED);
        SockDiagParser p;
        size_t total = 0;
        int len, r;

        len = sockdiag_build_request(family, f, seq, req, sizeof(req));
        if (len < 0)
                return len;
        for (;;) {
                if (sendto(fd, req, (size_t)len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) >= 0)
                        break;
                if (errno != EINTR)
                        return -errno;
        }

        _cleanup_free_ uint8_t *buf = malloc(RECV_BUFFER);
        if (!buf)
                return -ENOMEM;
        sockdiag_parser_init(&p, family, seq, cb, userdata, stats);
        for (;;) {
                struct iovec iov = { buf, RECV_BUFFER };
                struct msghdr mh = { .msg_name = &kernel, .msg_namelen = sizeof(kernel), .msg_iov = &iov,
                                     .msg_iovlen = 1 };
                ssize_t k = recvmsg(fd, &mh, 0);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
                }
                if (k == 0)
                        return -EPROTO;
                if (mh.msg_flags & MSG_TRUNC)
                        return -EMSGSIZE;
                if (kernel.nl_pid != 0)
                        continue; /* not from the kernel */
                if (total + (size_t)k > max_bytes)
                        return -MR_ETOOBIG;
                total += (size_t)k;
                uint64_t before = stats ? stats->sockets : 0;
                r = sockdiag_parser_feed(&p, buf, (size_t)k);
                if (stats && stats->sockets != before)
                        *ret_delivered = true;
                if (r != 0)
                        return r < 0 ? r : 0;
        }
}

int sockdiag_dump(int fd, int family, const SockDiagFilter *f, size_t max_bytes, procnet_socket_t cb,
                  void *userdata, ProcNetStats *stats)
{
        ProcNetStats local = {};
        bool delivered = false;

        if (!stats)
                stats = &local;
        int r = dump_once(fd, family, f, max_bytes, cb, userdata, stats, &delivered);
        if (r == -EINVAL && f && f->n_local_ports + f->n_remote_ports > 0 && !delivered) {
                /* A kernel without the *_EQ bytecode ops: ask for every socket of those states instead. */
                SockDiagFilter states_only = { .states = f->states };
                r = dump_once(fd, family, &states_only, max_bytes, cb, userdata, stats, &delivered);
        }
        return r;
}
