/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes the sock_diag reply parser. The first byte chooses the family
 * (bits 0–1: AF_INET, AF_INET6, both) and where the input is split into
 * two datagrams (the rest), so
 * framing across datagrams is fuzzed along with the content. The parser
 * must deliver exactly the records it counted, and stop at DONE.
 */
#include <stdint.h>
#include <sys/socket.h>

#include "meshroll/sockdiag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check(const ProcNetSocket *s, void *userdata)
{
        size_t *n = userdata;
        (*n)++;
        /* Touch every field so sanitizers see any uninitialised byte. */
        volatile unsigned sink = s->state + s->local_port + s->remote_port + s->local[15] + s->remote[15] +
                                 (unsigned)s->inode + s->uid;
        (void)sink;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        SockDiagParser p;
        ProcNetStats st = {};
        size_t n = 0;
        int r;

        if (size < 1)
                return 0;
        static const int families[4] = { AF_INET, AF_INET6, AF_UNSPEC, AF_UNSPEC };
        int family = families[data[0] & 3];
        size_t split = size > 1 ? (data[0] >> 2) % size : 0;
        data++;
        size--;
        if (split > size)
                split = size;

        /* Sequence 7, as in the recorded replies the corpus starts from. */
        sockdiag_parser_init(&p, family, 7, check, &n, &st);
        r = sockdiag_parser_feed(&p, data, split);
        if (r == 0)
                r = sockdiag_parser_feed(&p, data + split, size - split);
        if (st.sockets != n || st.sockets + st.malformed != st.lines || (r != 0) != p.done)
                __builtin_trap();
        if (p.done && sockdiag_parser_feed(&p, data, size) != 1)
                __builtin_trap(); /* nothing is read after DONE */
        return 0;
}
