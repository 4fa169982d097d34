/* SPDX-License-Identifier: Apache-2.0 */
/*
 * procnet.h — reading TCP sockets and pod identity out of /proc.
 *
 * /proc/net/tcp and /proc/net/tcp6 (include/net/tcp.h, net/ipv4/tcp_ipv4.c
 * get_tcp4_sock(), net/ipv6/tcp_ipv6.c get_tcp6_sock()) print one socket per
 * line after a header line:
 *
 *   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
 *    0: 0100007F:3A99 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 51234 …
 *
 * Addresses are the kernel's in-memory (network-order) bytes printed as
 * host-order 32-bit words ("%08X" per word: one for IPv4, four for IPv6);
 * ports are host-order numbers. The parser is hand-written (no sscanf per
 * line: the agent reads tens of thousands of lines per scan), streams the
 * file in fixed chunks so memory does not grow with the socket count, and
 * treats any line it cannot read as malformed: counted and skipped, never
 * fatal, never read past its end.
 *
 * Pod identity: the kubelet puts each pod's containers in a cgroup whose
 * path carries the pod UID — "pod<uid>" with dashes (cgroupfs driver) or
 * "pod<uid_with_underscores>.slice" (systemd driver), in cgroup v1 and v2
 * layouts alike. pod_uid_from_cgroup() finds it in /proc/PID/cgroup.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "meshroll/macro.h"

/* TCP states as /proc prints them (include/net/tcp_states.h). */
enum {
        TCP_STATE_ESTABLISHED = 0x01,
        TCP_STATE_SYN_SENT = 0x02,
        TCP_STATE_SYN_RECV = 0x03,
        TCP_STATE_FIN_WAIT1 = 0x04,
        TCP_STATE_FIN_WAIT2 = 0x05,
        TCP_STATE_TIME_WAIT = 0x06,
        TCP_STATE_CLOSE = 0x07,
        TCP_STATE_CLOSE_WAIT = 0x08,
        TCP_STATE_LAST_ACK = 0x09,
        TCP_STATE_LISTEN = 0x0A,
        TCP_STATE_CLOSING = 0x0B,
        TCP_STATE_NEW_SYN_RECV = 0x0C,
};

typedef struct ProcNetSocket {
        int family;              /* AF_INET or AF_INET6 */
        uint8_t local[16];       /* network-order bytes; IPv4 uses the first 4 */
        uint8_t remote[16];
        uint16_t local_port, remote_port;
        uint8_t state;           /* TCP_STATE_* */
        uint32_t uid;
        uint64_t inode;          /* 0 for sockets already orphaned (TIME_WAIT) */
} ProcNetSocket;

typedef struct ProcNetStats {
        uint64_t lines;          /* socket lines seen (header excluded) */
        uint64_t sockets;        /* lines parsed and handed to the callback */
        uint64_t malformed;      /* lines skipped as unreadable */
        uint64_t bytes;          /* bytes read */
} ProcNetStats;

/* Return 0 to go on; a negative value stops parsing and is returned. */
typedef int (*procnet_socket_t)(const ProcNetSocket *s, void *userdata);

/*
 * Incremental parser: feed any split of the file; complete lines are parsed
 * as they arrive. The first line of the stream is the header and is skipped.
 * A line longer than PROCNET_LINE_MAX is counted malformed and skipped to
 * its end. Call procnet_parser_finish() at end of file for a last line
 * without a newline.
 */
#define PROCNET_LINE_MAX 512

typedef struct ProcNetParser {
        int family;
        procnet_socket_t cb;
        void *userdata;
        ProcNetStats *stats;     /* borrowed, may be NULL */
        bool header_done;
        bool overlong;           /* skipping the rest of an overlong line */
        size_t partial;
        char line[PROCNET_LINE_MAX];
} ProcNetParser;

void procnet_parser_init(ProcNetParser *p, int family, procnet_socket_t cb, void *userdata, ProcNetStats *stats);
int procnet_parser_feed(ProcNetParser *p, const char *data, size_t size);
int procnet_parser_finish(ProcNetParser *p);

/*
 * Parses one socket line (without its newline) into *ret. Returns 0, or
 * -EBADMSG when the line is not a socket line. Exposed for tests and fuzzing.
 */
int procnet_parse_line(const char *line, size_t size, int family, ProcNetSocket *ret);

/*
 * Reads and parses a whole file, e.g. "<proc>/<pid>/net/tcp6", relative to
 * dirfd (AT_FDCWD for an absolute path), in 64 KiB chunks. Stops after
 * max_bytes (-MR_ETOOBIG; what was parsed so far was delivered). Errors from
 * openat/read as -errno; the callback's negative return is passed up.
 */
int procnet_read_file(int dirfd, const char *path, int family, size_t max_bytes, procnet_socket_t cb,
                      void *userdata, ProcNetStats *stats);

/* True when an AF_INET6 address is IPv4-mapped (::ffff:a.b.c.d). */
bool procnet_is_v4mapped(const uint8_t addr[16]);

#define POD_UID_MAX 37 /* 36 characters and NUL */

/*
 * Finds the pod UID in the text of /proc/PID/cgroup (any cgroup version,
 * systemd or cgroupfs driver) and writes it with dashes, lower case, into
 * ret. Returns 0, -ENOENT when no line names a pod (host processes), or
 * -EBADMSG when two lines name different pods.
 */
int pod_uid_from_cgroup(const char *data, size_t size, char ret[static POD_UID_MAX]);
