/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes the /proc/net/tcp{,6} parser. The first byte chooses the family
 * (bit 0) and where the input is split into two feeds (the rest), so chunk
 * boundaries are fuzzed along with the content.
 */
#include <stdint.h>
#include <sys/socket.h>

#include "meshroll/procnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check(const ProcNetSocket *s, void *userdata)
{
        size_t *n = userdata;
        (*n)++;
        /* Touch every field so sanitizers see any uninitialised byte. */
        volatile unsigned sink = s->state + s->local_port + s->remote_port + s->local[15] + s->remote[15];
        (void)sink;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        ProcNetParser p;
        ProcNetStats st = {};
        size_t n = 0;

        if (size < 1)
                return 0;
        int family = data[0] & 1 ? AF_INET6 : AF_INET;
        size_t split = size > 1 ? (data[0] >> 1) % size : 0;
        data++;
        size--;
        if (split > size)
                split = size;

        procnet_parser_init(&p, family, check, &n, &st);
        (void)procnet_parser_feed(&p, (const char *)data, split);
        (void)procnet_parser_feed(&p, (const char *)data + split, size - split);
        (void)procnet_parser_finish(&p);
        if (st.sockets != n || st.sockets + st.malformed != st.lines)
                __builtin_trap();
        return 0;
}
