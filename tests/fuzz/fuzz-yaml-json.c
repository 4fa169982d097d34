/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-yaml-json.c — YAML→JSON must never crash, leak or hang, and what it
 * accepts must serialize to JSON that parses back to the same value.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "meshroll/json-util.h"
#include "meshroll/yaml-json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(json_object_putp) json_object *one = NULL, *all = NULL;
        MrError e = {};

        if (mr_yaml_parse_all((const char *)data, size, &all, &e) == 0) {
                size_t n = json_object_array_length(all);
                for (size_t i = 0; i < n; i++) {
                        /* The conversion's depth cap equals the JSON parser's, so a round trip always works. */
                        _cleanup_(json_object_putp) json_object *back = NULL;
                        json_object *doc = json_object_array_get_idx(all, i); /* borrowed */
                        const char *s = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN);
                        /* A trailing space ends a bare top-level number, which json-c otherwise awaits more of. */
                        _cleanup_free_ char *text = NULL;
                        if (asprintf(&text, "%s ", s) < 0)
                                abort();
                        if (mr_json_parse(text, strlen(text), 64u << 20, &back) < 0 || !mr_json_equal(doc, back))
                                abort();
                }
        } else if (e.message[0] == 0)
                abort();
        (void)mr_yaml_parse((const char *)data, size, &one, &e);
        return 0;
}
