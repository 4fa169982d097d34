/* SPDX-License-Identifier: Apache-2.0 */
/*
 * spec-read.h — typed readers for the fields of a Rollout document, shared
 * by spec.c and the phase modules' parsers.
 *
 * Each reader knows the field's full path, so an error always says where
 * ("spec.drain.timeout") and what was expected; absent (or null) fields
 * leave *ret untouched, so callers set defaults first. All return 0 or
 * -MR_ECONFIG / -ENOMEM with err set.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "meshroll/errors.h"
#include "meshroll/time-util.h"

/* "a mapping", "a string", … for messages. */
const char *spec_type_name(json_object *v);
/* "path.key: expected <expected>, got <type of got>". Returns -MR_ECONFIG. */
int spec_bad(MrError *err, const char *path, const char *key, const char *expected, json_object *got);
/* An optional mapping at o[key]: *ret NULL when absent or null. */
int spec_get_object(json_object *o, const char *key, const char *path, json_object **ret, MrError *err);
/* Every key of o must be in allowed (NULL-terminated); the message lists them. */
int spec_check_keys(json_object *o, const char *path, const char *const *allowed, MrError *err);
/* A non-empty string (replaces *ret). */
int spec_get_string(json_object *o, const char *key, const char *path, char **ret, MrError *err);
int spec_get_bool(json_object *o, const char *key, const char *path, bool *ret, MrError *err);
int spec_get_int(json_object *o, const char *key, const char *path, int64_t min, int64_t max, int64_t *ret,
                 MrError *err);
int spec_get_uint(json_object *o, const char *key, const char *path, unsigned min, unsigned max, unsigned *ret,
                  MrError *err);
/* A finite number (integer or decimal) from min to max. */
int spec_get_number(json_object *o, const char *key, const char *path, double min, double max, double *ret,
                    MrError *err);
/* "90s", "5m", "1h30m", or integer seconds, up to max. */
int spec_get_duration(json_object *o, const char *key, const char *path, usec_t max, usec_t *ret, MrError *err);
/* A list of distinct non-empty strings, NULL-terminated (replaces *ret). */
int spec_get_string_list(json_object *o, const char *key, const char *path, char ***ret, MrError *err);
/* s (may be NULL) must parse as a label selector; path names the field. */
int spec_check_selector(const char *s, const char *path, MrError *err);
