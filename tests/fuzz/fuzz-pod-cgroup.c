/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzzes pod_uid_from_cgroup(): any bytes, no NUL termination assumed. */
#include <stdint.h>
#include <stdlib.h>

#include "meshroll/procnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char uid[POD_UID_MAX];
        /* A private copy without a terminator lets ASan catch any read past the end. */
        char *copy = malloc(size ? size : 1);
        if (!copy)
                return 0;
        memcpy(copy, data, size);
        if (pod_uid_from_cgroup(copy, size, uid) == 0 && strlen(uid) != 36)
                __builtin_trap();
        free(copy);
        return 0;
}
