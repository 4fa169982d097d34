/* SPDX-License-Identifier: Apache-2.0 */
/*
 * procnet.c — see procnet.h.
 *
 * Tokenising is done with a cursor over the line, never past `end`: each
 * field reader checks the bytes it consumes, so a truncated or garbage line
 * fails cleanly. Only the fields the agent needs are decoded (addresses,
 * ports, state, uid, inode); the timer and queue fields are skipped as
 * tokens. The streaming parser copies at most one partial line
 * (PROCNET_LINE_MAX) between chunks; complete lines are parsed in place.
 */
#include <fcntl.h>
#include <sys/socket.h>

#include "meshroll/errors.h"
#include "meshroll/procnet.h"

typedef struct Cursor {
        const char *p, *end;
} Cursor;

static void skip_spaces(Cursor *c)
{
        while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
                c->p++;
}

/* Returns the next space-delimited token's length and start; 0 at end. */
static size_t next_token(Cursor *c, const char **ret)
{
        skip_spaces(c);
        const char *start = c->p;
        while (c->p < c->end && *c->p != ' ' && *c->p != '\t')
                c->p++;
        *ret = start;
        return (size_t)(c->p - start);
}

static int hexval(char ch)
{
        if (ch >= '0' && ch <= '9')
                return ch - '0';
        if (ch >= 'A' && ch <= 'F')
                return ch - 'A' + 10;
        if (ch >= 'a' && ch <= 'f')
                return ch - 'a' + 10;
        return -1;
}

/* Parses exactly n hex digits into *ret (n <= 16). */
static bool hex_n(const char *s, size_t n, uint64_t *ret)
{
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++) {
                int h = hexval(s[i]);
                if (h < 0)
                        return false;
                v = v << 4 | (uint64_t)h;
        }
        *ret = v;
        return true;
}

static bool decimal(const char *s, size_t n, uint64_t max, uint64_t *ret)
{
        uint64_t v = 0;
        if (n == 0 || n > 20)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                uint64_t d = (uint64_t)(s[i] - '0');
                if (v > (max - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        *ret = v;
        return true;
}

/* "0100007F:1F90" (IPv4) or 32 hex digits ":" 4 hex digits (IPv6). */
static bool address(const char *s, size_t n, int family, uint8_t addr[16], uint16_t *port)
{
        size_t words = family == AF_INET ? 1 : 4;
        uint64_t v;

        if (n != words * 8 + 1 + 4 || s[words * 8] != ':')
                return false;
        memset(addr, 0, 16);
        for (size_t w = 0; w < words; w++) {
                if (!hex_n(s + w * 8, 8, &v))
                        return false;
                /* The kernel printed the in-memory word as a host-order number: store it back as memory. */
                uint32_t word = (uint32_t)v;
                memcpy(addr + w * 4, &word, 4);
        }
        if (!hex_n(s + words * 8 + 1, 4, &v))
                return false;
        *port = (uint16_t)v;
        return true;
}

int procnet_parse_line(const char *line, size_t size, int family, ProcNetSocket *ret)
{
        Cursor c = { line, line + size };
        ProcNetSocket s = { .family = family };
        const char *t;
        size_t n;
        uint64_t v;

        if (family != AF_INET && family != AF_INET6)
                return -EINVAL;

        /* "sl": decimal followed by ':' */
        n = next_token(&c, &t);
        if (n < 2 || t[n - 1] != ':' || !decimal(t, n - 1, UINT64_MAX, &v))
                return -EBADMSG;
        n = next_token(&c, &t);
        if (!address(t, n, family, s.local, &s.local_port))
                return -EBADMSG;
        n = next_token(&c, &t);
        if (!address(t, n, family, s.remote, &s.remote_port))
                return -EBADMSG;
        n = next_token(&c, &t);
        if (n != 2 || !hex_n(t, 2, &v))
                return -EBADMSG;
        s.state = (uint8_t)v;
        /* tx_queue:rx_queue, tr:tm->when, retrnsmt */
        for (int i = 0; i < 3; i++)
                if (next_token(&c, &t) == 0)
                        return -EBADMSG;
        n = next_token(&c, &t);
        if (!decimal(t, n, UINT32_MAX, &v))
                return -EBADMSG;
        s.uid = (uint32_t)v;
        /* timeout */
        if (next_token(&c, &t) == 0)
                return -EBADMSG;
        n = next_token(&c, &t);
        if (!decimal(t, n, UINT64_MAX, &v))
                return -EBADMSG;
        s.inode = v;

        *ret = s;
        return 0;
}

void procnet_parser_init(ProcNetParser *p, int family, procnet_socket_t cb, void *userdata, ProcNetStats *stats)
{
        *p = (ProcNetParser){ .family = family, .cb = cb, .userdata = userdata, .stats = stats };
}

static int handle_line(ProcNetParser *p, const char *line, size_t size)
{
        ProcNetSocket s;

        if (!p->header_done) {
                p->header_done = true;
                return 0;
        }
        /* Blank lines (a trailing "\n\n") carry nothing. */
        bool blank = true;
        for (size_t i = 0; i < size && blank; i++)
                blank = line[i] == ' ' || line[i] == '\t' || line[i] == '\r';
        if (blank)
                return 0;
        if (p->stats)
                p->stats->lines++;
        if (procnet_parse_line(line, size, p->family, &s) < 0) {
                if (p->stats)
                        p->stats->malformed++;
                return 0;
        }
        if (p->stats)
                p->stats->sockets++;
        return p->cb ? p->cb(&s, p->userdata) : 0;
}

int procnet_parser_feed(ProcNetParser *p, const char *data, size_t size)
{
        const char *end = data + size;
        int r;

        if (p->stats)
                p->stats->bytes += size;
        while (data < end) {
                const char *nl = memchr(data, '\n', (size_t)(end - data));
                size_t chunk = (size_t)((nl ? nl : end) - data);

                if (p->overlong) {
                        /* Still inside a line we already gave up on. */
                        if (!nl)
                                return 0;
                        p->overlong = false;
                        data = nl + 1;
                        continue;
                }
                if (p->partial + chunk >= PROCNET_LINE_MAX) {
                        if (p->header_done && p->stats) {
                                p->stats->lines++;
                                p->stats->malformed++;
                        }
                        p->header_done = true;
                        p->partial = 0;
                        p->overlong = !nl;
                        data = nl ? nl + 1 : end;
                        continue;
                }
                if (!nl) {
                        memcpy(p->line + p->partial, data, chunk);
                        p->partial += chunk;
                        return 0;
                }
                if (p->partial > 0) {
                        memcpy(p->line + p->partial, data, chunk);
                        r = handle_line(p, p->line, p->partial + chunk);
                        p->partial = 0;
                } else
                        r = handle_line(p, data, chunk);
                if (r < 0)
                        return r;
                data = nl + 1;
        }
        return 0;
}

int procnet_parser_finish(ProcNetParser *p)
{
        int r = 0;
        if (p->partial > 0 && !p->overlong)
                r = handle_line(p, p->line, p->partial);
        p->partial = 0;
        p->overlong = false;
        return r;
}

int procnet_read_file(int dirfd, const char *path, int family, size_t max_bytes, procnet_socket_t cb,
                      void *userdata, ProcNetStats *stats)
{
        _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        ProcNetParser p;
        char buf[65536];
        size_t total = 0;
        int r;

        if (fd < 0)
                return -errno;
        procnet_parser_init(&p, family, cb, userdata, stats);
        for (;;) {
                ssize_t k = read(fd, buf, sizeof(buf));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                if (total + (size_t)k > max_bytes) {
                        (void)procnet_parser_feed(&p, buf, max_bytes - total);
                        return -MR_ETOOBIG;
                }
                total += (size_t)k;
                r = procnet_parser_feed(&p, buf, (size_t)k);
                if (r < 0)
                        return r;
        }
        return procnet_parser_finish(&p);
}

bool procnet_is_v4mapped(const uint8_t addr[16])
{
        static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        return memcmp(addr, prefix, sizeof(prefix)) == 0;
}

/*
 * Looks for "pod" followed by a UUID (8-4-4-4-12 hex, '-' or '_' as
 * separator) at a path-component boundary: after '/', '-' or '_' as in
 * "/kubepods/burstable/pod<uid>/…" or "kubepods-besteffort-pod<uid>.slice".
 */
static bool uid_at(const char *s, const char *end, char out[static POD_UID_MAX])
{
        static const int groups[] = { 8, 4, 4, 4, 12 };
        const char *p = s;
        size_t n = 0;

        for (size_t g = 0; g < ELEMENTSOF(groups); g++) {
                if (g > 0) {
                        if (p >= end || (*p != '-' && *p != '_'))
                                return false;
                        out[n++] = '-';
                        p++;
                }
                for (int i = 0; i < groups[g]; i++, p++) {
                        if (p >= end || hexval(*p) < 0)
                                return false;
                        char ch = *p;
                        out[n++] = (char)(ch >= 'A' && ch <= 'F' ? ch - 'A' + 'a' : ch);
                }
        }
        /* The UID must end the component: '/', '.', newline or end. */
        if (p < end && *p != '/' && *p != '.' && *p != '\n')
                return false;
        out[n] = 0;
        return true;
}

int pod_uid_from_cgroup(const char *data, size_t size, char ret[static POD_UID_MAX])
{
        const char *end = data + size;
        char found[POD_UID_MAX] = "", cand[POD_UID_MAX];

        for (const char *p = data; p + 3 < end; p++) {
                if (memcmp(p, "pod", 3) != 0)
                        continue;
                if (p > data && p[-1] != '/' && p[-1] != '-' && p[-1] != '_')
                        continue;
                if (!uid_at(p + 3, end, cand))
                        continue;
                if (found[0] && !streq(found, cand))
                        return -EBADMSG;
                memcpy(found, cand, sizeof(found));
        }
        if (!found[0])
                return -ENOENT;
        memcpy(ret, found, POD_UID_MAX);
        return 0;
}
