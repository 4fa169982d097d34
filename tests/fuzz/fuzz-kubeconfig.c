/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-kubeconfig.c — a hostile kubeconfig must give a KubeConfig or a
 * message, never a crash or a leak. Run twice: with the file's own
 * current-context and with a context named "x".
 */
#include <stdint.h>
#include <stdlib.h>

#include "meshroll/kubeconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char *const contexts[] = { NULL, "x" };

        for (size_t i = 0; i < ELEMENTSOF(contexts); i++) {
                _cleanup_(kube_config_freep) KubeConfig *c = NULL;
                MrError e = {};
                int r = kube_config_load_data((const char *)data, size, "/fuzz/kubeconfig", contexts[i], &c, &e);
                if (r == 0 && (!c || !c->server))
                        abort();
                if (r < 0 && (c || e.message[0] == 0))
                        abort();
        }
        return 0;
}
