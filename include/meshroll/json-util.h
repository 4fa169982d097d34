/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json-util.h — json-c with the ownership rules spelled out.
 *
 * json-c reference-counts objects. A root you parsed or created is owned:
 * json_object_put() it (or declare it _cleanup_(json_object_putp)). A child
 * reached through json_object_object_get_ex() or the getters below is
 * borrowed from its parent: valid while the parent lives and is not
 * modified, never put. json_object_object_add() takes ownership of the value
 * it is given.
 *
 * Getters take a NULL-terminated list of object keys, because Kubernetes keys
 * contain dots and slashes ("istio.io/rev"):
 *
 *     const char *rev = mr_json_get_str(pod, "metadata", "labels", "istio.io/rev", NULL);
 *
 * Input from outside is parsed with a size cap and a depth cap, so a hostile
 * server cannot exhaust memory or the stack.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshroll/macro.h"

static inline void json_object_putp(json_object **o)
{
        if (*o)
                json_object_put(*o);
}

#define MR_JSON_MAX_DEPTH 64

/*
 * Parses exactly one JSON value from data[0..size) (trailing whitespace
 * allowed). Returns 0 and an owned *ret, -MR_ETOOBIG when size > max_size,
 * -EBADMSG for invalid JSON, trailing garbage or nesting beyond
 * MR_JSON_MAX_DEPTH, -ENOMEM.
 */
int mr_json_parse(const char *data, size_t size, size_t max_size, json_object **ret);

/* Borrowed child at the key path, or NULL when any step is missing or not an object. */
json_object *mr_json_get(json_object *o, ...) __attribute__((sentinel));
/* Borrowed string at the key path, or NULL when missing or not a string. */
const char *mr_json_get_str(json_object *o, ...) __attribute__((sentinel));
/*
 * Integer at the key path into *ret. Returns 0, -ENOENT when missing or null,
 * -EINVAL when present but not an integer (a string "3" is not an integer).
 */
int mr_json_get_int(int64_t *ret, json_object *o, ...) __attribute__((sentinel));
/* Boolean at the key path; returns def when missing or not a boolean. */
bool mr_json_get_bool(bool def, json_object *o, ...) __attribute__((sentinel));

/*
 * Borrowed object at the key path, creating empty objects for missing steps
 * (replacing nothing: a step that exists but is not an object gives NULL).
 * Returns NULL on allocation failure too.
 */
json_object *mr_json_ensure_object(json_object *o, ...) __attribute__((sentinel));

/* o[key] = string copy of value (NULL value sets JSON null). Returns 0 or -ENOMEM. */
int mr_json_set_str(json_object *o, const char *key, const char *value);
int mr_json_set_int(json_object *o, const char *key, int64_t value);
int mr_json_set_bool(json_object *o, const char *key, bool value);

/* Compact serialization, borrowed from o (valid until o changes or dies). */
const char *mr_json_compact(json_object *o);

/* Deep copy; NULL on allocation failure. Owned. */
json_object *mr_json_copy(json_object *o);

/*
 * The fields of o named by paths (NULL-terminated, each a dotted path of
 * object keys such as "spec.nodeName"), at the same paths in a new object;
 * the rest of o is left out. Values are shared with o by reference (not
 * copied), so the result stays small while o's other parts can be freed.
 * A path absent from o is skipped. Owned; NULL on allocation failure.
 */
json_object *mr_json_project(json_object *o, const char *const *paths);

/* true when both are structurally equal (object key order ignored). */
bool mr_json_equal(json_object *a, json_object *b);
