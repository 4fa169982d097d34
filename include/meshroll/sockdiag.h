/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sockdiag.h — TCP sockets from the kernel over NETLINK_SOCK_DIAG
 * (inet_diag), the source ss(8) uses, as an alternative to /proc/net/tcp.
 *
 * Why: /proc/net/tcp makes the kernel format every socket of the namespace
 * as text (net/ipv4/tcp_ipv4.c get_tcp4_sock()), and the reader parse it
 * back; at tens of thousands of sockets that formatting alone costs what
 * `ss` costs end to end. inet_diag lets the kernel filter first: the
 * request names the states to dump (idiag_states) and carries a small
 * bytecode program (INET_DIAG_REQ_BYTECODE, net/ipv4/inet_diag.c
 * inet_diag_bc_run()) over local and remote ports, so only the sockets the
 * agent counts are copied out, as fixed binary records.
 *
 * A netlink socket answers for the network namespace it was created in,
 * not the caller's current one (net/netlink/af_netlink.c: the socket keeps
 * sock_net() from creation). sockdiag_open_in_netns() therefore switches
 * the calling thread into the target namespace with setns(2) (CLONE_NEWNET
 * is per thread), creates the socket, and switches back. setns needs
 * CAP_SYS_ADMIN, and opening <proc>/PID/ns/net needs ptrace read access to
 * the process; the caller's own namespace needs neither.
 *
 * The reply parser is bounded like the /proc parser: every nlmsghdr length
 * is checked against the bytes received and the record size before it is
 * read; messages it cannot read are counted as malformed and skipped;
 * it never reads outside the buffer it is given.
 *
 * References: linux/inet_diag.h, linux/sock_diag.h, linux/netlink.h,
 * sock_diag(7), netlink(7), setns(2).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshroll/procnet.h"

#define SOCKDIAG_PORTS_MAX 16

/* Which sockets the kernel should send. */
typedef struct SockDiagFilter {
        uint32_t states;                            /* 1 << TCP_STATE_*; 0 = every state */
        uint16_t local_ports[SOCKDIAG_PORTS_MAX];   /* sent when local port is one of these … */
        size_t n_local_ports;
        uint16_t remote_ports[SOCKDIAG_PORTS_MAX];  /* … or remote port one of these; */
        size_t n_remote_ports;                      /* no ports at all: no port filter */
} SockDiagFilter;

/* Largest request sockdiag_build_request() writes (header, inet_diag_req_v2, bytecode). */
#define SOCKDIAG_REQUEST_MAX 1024

/*
 * Writes a dump request for TCP sockets of family matching f into buf:
 * SOCK_DIAG_BY_FAMILY for AF_INET or AF_INET6; for AF_UNSPEC, both
 * families in one pass over the kernel's tables (TCPDIAG_GETSOCK, as ss
 * does). Returns its length, -EINVAL for another family or more than
 * SOCKDIAG_PORTS_MAX ports, -ENOBUFS when size is too small.
 */
int sockdiag_build_request(int family, const SockDiagFilter *f, uint32_t seq, void *buf, size_t size);

/*
 * Incremental reply parser: feed each datagram received (any number of
 * netlink messages). Each inet_diag_msg of the expected family (either,
 * for AF_UNSPEC) is handed
 * to cb as a ProcNetSocket (ports and addresses as /proc would print them;
 * uid and 32-bit inode). stats (borrowed, may be NULL): lines counts
 * messages, malformed those skipped, bytes what was fed.
 */
typedef struct SockDiagParser {
        int family;
        uint32_t seq;
        procnet_socket_t cb;
        void *userdata;
        ProcNetStats *stats;
        bool done;
} SockDiagParser;

void sockdiag_parser_init(SockDiagParser *p, int family, uint32_t seq, procnet_socket_t cb, void *userdata,
                          ProcNetStats *stats);
/*
 * Returns 0 when more datagrams are to come, 1 once NLMSG_DONE was seen,
 * the kernel's error as -errno (NLMSG_ERROR, or a negative NLMSG_DONE
 * status), or the callback's negative return. Messages of another sequence
 * number are ignored; a message whose length runs past the buffer ends the
 * datagram (counted malformed).
 */
int sockdiag_parser_feed(SockDiagParser *p, const void *data, size_t size);

/* A NETLINK_SOCK_DIAG socket in the calling thread's network namespace. Returns an fd or -errno. */
int sockdiag_open(void);

/*
 * A NETLINK_SOCK_DIAG socket in the network namespace nsfd refers to (an
 * open <proc>/PID/ns/net). The calling thread enters the namespace for the
 * socket() call only. Errors: -EINVAL when nsfd is not a network namespace,
 * -EPERM without CAP_SYS_ADMIN, other -errno. If the thread cannot return
 * to its own namespace afterwards the process aborts: it would otherwise go
 * on in the wrong namespace.
 */
int sockdiag_open_in_netns(int nsfd);

/*
 * Sends one dump request for family and f on fd and parses the whole reply
 * (the same callback and stats as procnet_read_file()). Stops with
 * -MR_ETOOBIG after max_bytes of replies (what was parsed was delivered),
 * -ETIMEDOUT when the kernel does not answer within 5 s, the kernel's
 * -errno, or the callback's negative return.
 */
int sockdiag_dump(int fd, int family, const SockDiagFilter *f, size_t max_bytes, procnet_socket_t cb,
                  void *userdata, ProcNetStats *stats);
