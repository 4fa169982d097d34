/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-kube-status.c — kube_status_decode on hostile bodies. The first two
 * bytes are the HTTP code (big-endian, modulo 1000); a NUL in the rest splits
 * the Retry-After header (before) from the body (after), otherwise it is all
 * body. The Status is then also decoded through kube_status_decode_object.
 */
#include <stdint.h>
#include <stdio.h>

#include "meshroll/kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        KubeStatus st;
        char header[64] = "";
        const char *body;
        size_t body_size;

        if (size < 2)
                return 0;
        int code = ((data[0] << 8) | data[1]) % 1000;
        body = (const char *)data + 2;
        body_size = size - 2;

        const char *nul = memchr(body, 0, body_size);
        if (nul) {
                size_t n = MIN((size_t)(nul - body), sizeof(header) - 1);
                memcpy(header, body, n);
                header[n] = 0;
                body_size -= (size_t)(nul - body) + 1;
                body = nul + 1;
        }

        int r = kube_status_decode(code, body, body_size, nul ? header : NULL, &st);
        if ((code >= 200 && code < 300) != (r == 0))
                __builtin_trap();
        if (r < 0 && (strnlen(st.reason, sizeof(st.reason)) >= sizeof(st.reason) ||
                      strnlen(st.message, sizeof(st.message)) >= sizeof(st.message) ||
                      st.retry_after > KUBE_RETRY_AFTER_MAX))
                __builtin_trap();

        _cleanup_(json_object_putp) json_object *o = NULL;
        if (mr_json_parse(body, body_size, 1u << 20, &o) == 0)
                (void)kube_status_decode_object(o, &st);
        return 0;
}
