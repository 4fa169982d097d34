/* SPDX-License-Identifier: Apache-2.0 */
/*
 * scan.h — one pass over /proc: the node's connections through ztunnel,
 * per pod.
 *
 * In ambient mode (in-pod redirection) ztunnel's sockets live in each pod's
 * network namespace, visible only through /proc/<pid-in-that-pod>/net/tcp{,6}
 * (see shared/reference/istio.md §1.2). A scan therefore:
 *
 *   1. lists <proc>/[0-9]* in numeric order;
 *   2. reads each process's cgroup file to find its pod UID (procnet.h);
 *      processes without one belong to the host;
 *   3. keeps one process per network namespace — by the ns/net inode when
 *      readable (CAP_SYS_PTRACE), else one per pod UID — and skips pods
 *      sharing the host's namespace (hostNetwork), which is read once from
 *      <proc>/1/net;
 *   4. reads that namespace's TCP sockets — over NETLINK_SOCK_DIAG
 *      (sockdiag.h: the kernel filters by state and port, so only counted
 *      sockets cross into user space) or by streaming the process's
 *      net/tcp and net/tcp6 through the /proc parser — and counts
 *      ESTABLISHED sockets: local port in app_ports (15001 outbound,
 *      15006 inbound plaintext) are application connections; local port
 *      hbone_port (15008) inbound tunnels; remote port hbone_port outbound
 *      tunnels;
 *   5. asks the tracker when each application connection was first seen:
 *      those older than long_lived_after are long-lived — the connections
 *      a ztunnel restart would cut.
 *
 * A process that exits mid-scan is not an error: the next process of the
 * same pod is tried. Unreadable files are counted in the stats, not fatal.
 *
 * Source, per namespace (ScanSource). netlink: a sock_diag socket opened
 * in the namespace — directly when it is the agent's own (compared by the
 * ns/net device and inode), otherwise after setns(2) into <proc>/PID/ns/net,
 * which needs CAP_SYS_ADMIN (and CAP_SYS_PTRACE to open another user's
 * ns/net). proc: net/tcp{,6}, no privilege. auto tries netlink and falls
 * back to /proc for each namespace where netlink cannot be used (counted).
 * Both yield the same counts: the same sockets, states, ports and inodes.
 */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "meshroll/procnet.h"
#include "track.h"

#define SCAN_PORTS_MAX 8

typedef enum ScanSource {
        SCAN_SOURCE_AUTO,       /* netlink where it works, /proc elsewhere (per namespace) */
        SCAN_SOURCE_NETLINK,    /* netlink only: a namespace it cannot reach is a read error */
        SCAN_SOURCE_PROC,       /* /proc/<pid>/net/tcp{,6} only */
        _SCAN_SOURCE_MAX,
} ScanSource;

/* "auto", "netlink", "proc"; from_string returns -EINVAL for anything else. */
const char *scan_source_to_string(ScanSource s);
int scan_source_from_string(const char *s, ScanSource *ret);

typedef struct ScanOptions {
        const char *proc_root;                  /* "/proc", or /host/proc, or a test tree */
        uint16_t app_ports[SCAN_PORTS_MAX];     /* 15001, 15006 */
        size_t n_app_ports;
        uint16_t outbound_port;                 /* which app port is outbound (15001) */
        uint16_t hbone_port;                    /* 15008; 0 disables */
        bool scan_host;                         /* count the host namespace too */
        pid_t host_pid;                         /* whose view is the host's: 1 (default); the demo names itself */
        bool filter_local;                      /* count only sockets whose local address is local_addr */
        uint8_t local_addr[16];                 /* IPv4-mapped IPv6 form for IPv4 addresses */
        usec_t long_lived_after;                /* 60 s by default */
        size_t max_file_bytes;                  /* per net/tcp file or netlink dump; 0 → 64 MiB */
        ScanSource source;                      /* SCAN_SOURCE_AUTO by default */
        /*
         * Optional: returns true for pods to leave out — those the API says use
         * the host network, when the agent cannot compare namespace inodes.
         */
        bool (*skip_pod)(const char *uid, void *userdata);
        void *skip_userdata;
} ScanOptions;

/* Fills the defaults: /proc, ports 15001/15006, outbound 15001, HBONE 15008, host on, 60 s. */
void scan_options_init(ScanOptions *o);
/* Parses an IPv4 or IPv6 address into o->local_addr and sets filter_local. -EINVAL if not an address. */
int scan_options_set_local_addr(ScanOptions *o, const char *addr);

typedef struct ScanCounts {
        uint32_t outbound;        /* ESTABLISHED on the outbound app port */
        uint32_t inbound;         /* ESTABLISHED on the other app ports */
        uint32_t hbone_inbound;   /* ESTABLISHED with local port hbone_port */
        uint32_t hbone_outbound;  /* ESTABLISHED with remote port hbone_port */
        uint32_t long_lived;      /* app connections older than long_lived_after */
        usec_t oldest;            /* age of the oldest app connection, 0 if none */
} ScanCounts;

typedef struct ScanPod {
        char uid[POD_UID_MAX];    /* "" for the host namespace */
        pid_t pid;                /* the process whose view was read */
        uint64_t netns;           /* ns/net inode, or 0 when unreadable */
        ScanSource source;        /* how it was read: SCAN_SOURCE_NETLINK or SCAN_SOURCE_PROC */
        ScanCounts counts;
} ScanPod;

typedef struct ScanStats {
        uint32_t processes;       /* /proc entries looked at */
        uint32_t namespaces;      /* network namespaces read */
        uint32_t vanished;        /* processes that exited mid-scan */
        uint32_t read_errors;     /* files that could not be read (other than vanished) */
        uint32_t netlink;         /* namespaces read over sock_diag */
        uint32_t proc;            /* namespaces read from net/tcp{,6} */
        uint32_t fallbacks;       /* of those, namespaces where auto could not use netlink */
        ProcNetStats lines;       /* totals from the parser (malformed lines among them) */
        usec_t duration;          /* wall time of the scan */
} ScanStats;

typedef struct ScanResult {
        ScanPod *pods;            /* pods with a namespace of their own, in UID order */
        size_t n_pods;
        ScanPod host;             /* the host namespace (when scan_host) */
        ScanCounts total;         /* pods + host; oldest = max */
        ScanStats stats;
} ScanResult;

/*
 * Runs one scan at time now (monotonic µs; ages are relative to it).
 * tracker (borrowed) carries first-seen times between scans. On success
 * *ret is owned by the caller (scan_result_free). Errors: -ENOENT/-EACCES
 * when proc_root itself cannot be listed, -MR_ETOOBIG when the tracker's
 * cap is hit, -ENOMEM.
 */
int scan_run(const ScanOptions *o, SocketTracker *tracker, usec_t now, ScanResult **ret);
ScanResult *scan_result_free(ScanResult *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(ScanResult *, scan_result_free);
