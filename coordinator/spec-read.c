/* SPDX-License-Identifier: Apache-2.0 */
/*
 * spec-read.c — see spec-read.h. Objects are checked against their list of
 * known keys first: an unknown key is an error (a typo must not silently
 * become a default), and its message lists the keys allowed there.
 */
#include <math.h>
#include <stdio.h>

#include "meshroll/json-util.h"
#include "meshroll/selector.h"
#include "spec-read.h"

const char *spec_type_name(json_object *v)
{
        switch (json_object_get_type(v)) {
        case json_type_null:
                return "null";
        case json_type_boolean:
                return "a boolean";
        case json_type_double:
                return "a number";
        case json_type_int:
                return "an integer";
        case json_type_object:
                return "a mapping";
        case json_type_array:
                return "a list";
        case json_type_string:
                return "a string";
        }
        return "something else";
}

int spec_bad(MrError *err, const char *path, const char *key, const char *fmt_expected, json_object *got)
{
        /* Top-level fields have the empty path: "spec: …", not ".spec: …". */
        return mr_error_set(err, MR_ECONFIG, "%s%s%s: expected %s, got %s", path, key && path[0] ? "." : "",
                            strempty(key), fmt_expected, got ? spec_type_name(got) : "nothing");
}

/* An optional object at o[key] (NULL when absent or null); anything else is an error. */
int spec_get_object(json_object *o, const char *key, const char *path, json_object **ret, MrError *err)
{
        json_object *v = NULL;
        *ret = NULL;
        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        if (!json_object_is_type(v, json_type_object))
                return spec_bad(err, path, key, "a mapping", v);
        *ret = v;
        return 0;
}

int spec_check_keys(json_object *o, const char *path, const char *const *allowed, MrError *err)
{
        json_object_object_foreach(o, key, val)
        {
                (void)val;
                bool ok = false;
                for (size_t i = 0; allowed[i] && !ok; i++)
                        ok = streq(key, allowed[i]);
                if (ok)
                        continue;
                char list[512] = "";
                size_t n = 0;
                for (size_t i = 0; allowed[i]; i++)
                        n += (size_t)snprintf(list + MIN(n, sizeof(list) - 1), sizeof(list) - MIN(n, sizeof(list) - 1),
                                              "%s%s", i ? ", " : "", allowed[i]);
                return mr_error_set(err, MR_ECONFIG, "%s%s%s: unknown field (known here: %s)", path, path[0] ? "." : "",
                                    key, list);
        }
        return 0;
}

int spec_get_string(json_object *o, const char *key, const char *path, char **ret, MrError *err)
{
        json_object *v = NULL;
        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0)
                return spec_bad(err, path, key, "a non-empty string", v);
        char *s = strdup(json_object_get_string(v));
        if (!s)
                return mr_error_set(err, -ENOMEM, "out of memory");
        free(*ret);
        *ret = s;
        return 0;
}

int spec_get_bool(json_object *o, const char *key, const char *path, bool *ret, MrError *err)
{
        json_object *v = NULL;
        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        if (!json_object_is_type(v, json_type_boolean))
                return spec_bad(err, path, key, "true or false", v);
        *ret = json_object_get_boolean(v);
        return 0;
}

int spec_get_int(json_object *o, const char *key, const char *path, int64_t min, int64_t max, int64_t *ret,
                   MrError *err)
{
        json_object *v = NULL;
        char expected[96];

        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        snprintf(expected, sizeof(expected), "an integer from %lld to %lld", (long long)min, (long long)max);
        if (!json_object_is_type(v, json_type_int))
                return spec_bad(err, path, key, expected, v);
        int64_t n = json_object_get_int64(v);
        if (n < min || n > max)
                return mr_error_set(err, MR_ECONFIG, "%s.%s: expected %s, got %lld", path, key, expected,
                                    (long long)n);
        *ret = n;
        return 0;
}

int spec_get_uint(json_object *o, const char *key, const char *path, unsigned min, unsigned max, unsigned *ret,
                    MrError *err)
{
        int64_t v = *ret;
        int r = spec_get_int(o, key, path, min, max, &v, err);
        if (r >= 0)
                *ret = (unsigned)v;
        return r;
}

/* "90s", "5m", "1h30m", or integer seconds. */
int spec_get_duration(json_object *o, const char *key, const char *path, usec_t max, usec_t *ret, MrError *err)
{
        json_object *v = NULL;
        usec_t d;

        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        if (json_object_is_type(v, json_type_int)) {
                int64_t n = json_object_get_int64(v);
                if (n < 0 || (usec_t)n > max / USEC_PER_SEC)
                        return mr_error_set(err, MR_ECONFIG, "%s.%s: expected a duration from 0 to %llus, got %lld",
                                            path, key, (unsigned long long)(max / USEC_PER_SEC), (long long)n);
                *ret = (usec_t)n * USEC_PER_SEC;
                return 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return spec_bad(err, path, key, "a duration such as \"90s\" or \"5m\" (or integer seconds)", v);
        if (mr_duration_parse(json_object_get_string(v), &d) < 0 || d > max)
                return mr_error_set(err, MR_ECONFIG,
                                    "%s.%s: expected a duration such as \"90s\" or \"5m\" up to %llus, got \"%s\"",
                                    path, key, (unsigned long long)(max / USEC_PER_SEC), json_object_get_string(v));
        *ret = d;
        return 0;
}

/* A list of non-empty strings into a NULL-terminated array (replacing *ret). */
int spec_get_string_list(json_object *o, const char *key, const char *path, char ***ret, MrError *err)
{
        json_object *v = NULL;
        _cleanup_strv_free_ char **l = NULL;

        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        if (!json_object_is_type(v, json_type_array))
                return spec_bad(err, path, key, "a list of strings", v);
        size_t n = json_object_array_length(v);
        l = calloc(n + 1, sizeof(char *));
        if (!l)
                return mr_error_set(err, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(v, i);
                if (!json_object_is_type(e, json_type_string) || json_object_get_string_len(e) == 0)
                        return mr_error_set(err, MR_ECONFIG, "%s.%s[%zu]: expected a non-empty string, got %s", path,
                                            key, i, spec_type_name(e));
                for (size_t j = 0; j < i; j++)
                        if (streq(l[j], json_object_get_string(e)))
                                return mr_error_set(err, MR_ECONFIG, "%s.%s[%zu]: \"%s\" is listed twice", path, key,
                                                    i, l[j]);
                if (!(l[i] = strdup(json_object_get_string(e))))
                        return mr_error_set(err, -ENOMEM, "out of memory");
        }
        strv_free(*ret);
        *ret = TAKE_PTR(l);
        return 0;
}

int spec_check_selector(const char *s, const char *path, MrError *err)
{
        _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
        MrError e = {};
        if (!s)
                return 0;
        if (mr_selector_parse(s, &sel, &e) < 0)
                return mr_error_set(err, MR_ECONFIG, "%s: not a valid label selector: %s", path, e.message);
        return 0;
}

int spec_get_number(json_object *o, const char *key, const char *path, double min, double max, double *ret,
                    MrError *err)
{
        json_object *v = NULL;
        char expected[96];

        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        snprintf(expected, sizeof(expected), "a number from %g to %g", min, max);
        if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
                return spec_bad(err, path, key, expected, v);
        double d = json_object_get_double(v);
        if (!isfinite(d) || d < min || d > max)
                return mr_error_set(err, MR_ECONFIG, "%s.%s: expected %s, got %g", path, key, expected, d);
        *ret = d;
        return 0;
}
