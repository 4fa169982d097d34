/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-selector.c — label and field selector parsers.
 *
 * The input is tried as a label selector string, as a field selector
 * string and, when it is JSON, as a metav1.LabelSelector. Whatever parses
 * must print a canonical form that parses back to the same form, and must
 * be matchable against a fixed label set without crashing.
 */
#include <stdint.h>
#include <stdlib.h>

#include "meshroll/json-util.h"
#include "meshroll/selector.h"

static const char *any_field(json_object *obj, const char *field, void *userdata)
{
        return field[0] == 's' ? "x" : NULL;
}

static void check_round_trip(const MrSelector *s, json_object *labels)
{
        _cleanup_(mr_selector_freep) MrSelector *again = NULL;
        _cleanup_free_ char *str = mr_selector_to_string(s), *str2 = NULL;

        if (!str)
                abort();
        if (mr_selector_parse(str, &again, NULL) < 0)
                abort();
        str2 = mr_selector_to_string(again);
        if (!str2 || !streq(str, str2))
                abort();
        if (mr_selector_matches(s, labels) != mr_selector_matches(again, labels))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(json_object_putp) json_object *labels = NULL, *json = NULL;
        _cleanup_free_ char *s = NULL;
        static const char label_set[] = "{\"app\":\"web\",\"env\":\"a\",\"n\":\"5\",\"istio.io/rev\":\"1-24\",\"k\":\"\"}";

        if (size > 65536)
                return 0;
        s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        if (mr_json_parse(label_set, strlen(label_set), 4096, &labels) < 0)
                abort();

        {
                _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
                MrError err = {};
                if (mr_selector_parse(s, &sel, &err) >= 0)
                        check_round_trip(sel, labels);
                else if (err.error >= 0 || !err.message[0])
                        abort(); /* every failure explains itself */
        }
        {
                _cleanup_(mr_field_selector_freep) MrFieldSelector *f = NULL;
                if (mr_field_selector_parse(s, &f, NULL) >= 0) {
                        (void)mr_field_selector_matches(f, labels, any_field, NULL, NULL);
                        (void)mr_field_selector_validate(f, any_field, NULL, NULL);
                        (void)mr_field_selector_required(f, "spec.nodeName");
                }
        }
        if (mr_json_parse((const char *)data, size, 65536, &json) >= 0) {
                _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
                if (mr_selector_from_json(json, &sel, NULL) >= 0)
                        check_round_trip(sel, labels);
        }
        return 0;
}
