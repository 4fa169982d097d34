/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-patch.c — the three patch flavours on hostile input.
 *
 * Input layout: first byte selects the patch type (mod 3); the rest is
 * "<target JSON>\n<patch JSON>" (a missing newline patches an empty
 * object). Patches come straight from API clients, so no input may crash,
 * leak or loop.
 */
#include <stdint.h>
#include <string.h>

#include "meshroll/json-util.h"
#include "patch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(json_object_putp) json_object *target = NULL;
        _cleanup_(json_object_putp) json_object *out = NULL;
        const char *text, *nl;
        size_t len;
        MrError err;

        if (size < 1 || size > 1 << 16)
                return 0;
        SimPatchType type = (SimPatchType)(data[0] % 3);
        text = (const char *)data + 1;
        len = size - 1;
        nl = memchr(text, '\n', len);
        if (nl) {
                if (mr_json_parse(text, (size_t)(nl - text), 1 << 16, &target) < 0)
                        return 0;
                len -= (size_t)(nl - text) + 1;
                text = nl + 1;
        } else
                target = json_object_new_object();
        if (sim_patch_apply(type, target, text, len, 1 << 16, &out, &err) == 0 && out)
                (void)mr_json_compact(out);
        return 0;
}
