/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json-util.c — see json-util.h. Thin, checked wrappers over json-c: the
 * tokener is run with a depth cap and in strict mode, and the size cap is
 * enforced before any byte is parsed.
 */
#include <stdarg.h>

#include "meshroll/errors.h"
#include "meshroll/json-util.h"

int mr_json_parse(const char *data, size_t size, size_t max_size, json_object **ret)
{
        if (size > max_size)
                return -MR_ETOOBIG;
        if (size > INT32_MAX)
                return -MR_ETOOBIG;
        /*
         * RFC 8259 allows no control characters but whitespace between tokens,
         * and none unescaped in strings; json-c lets some through (and a NUL
         * would end its input early), so they are refused here. Raw tab, CR and
         * LF inside strings are tolerated, as json-c does.
         */
        for (size_t i = 0; i < size; i++) {
                unsigned char c = (unsigned char)data[i];
                if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
                        return -EBADMSG;
        }

        json_tokener *tok = json_tokener_new_ex(MR_JSON_MAX_DEPTH);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);

        json_object *o = json_tokener_parse_ex(tok, data, (int)size);
        enum json_tokener_error jerr = json_tokener_get_error(tok);
        size_t consumed = json_tokener_get_parse_end(tok);
        if (!o && jerr == json_tokener_continue) {
                /*
                 * A top-level number or literal ("0", "true") is only complete once
                 * the tokener sees the end: json-c's end-of-input is a NUL byte.
                 */
                o = json_tokener_parse_ex(tok, "", 1);
                jerr = json_tokener_get_error(tok);
                consumed = size;
        }
        json_tokener_free(tok);

        if (!o || jerr != json_tokener_success) {
                /* A NULL object with success is the literal null: no API body is that. */
                json_object_put(o);
                return -EBADMSG;
        }
        for (size_t i = consumed; i < size; i++)
                if (data[i] != ' ' && data[i] != '\t' && data[i] != '\r' && data[i] != '\n') {
                        json_object_put(o);
                        return -EBADMSG;
                }
        *ret = o;
        return 0;
}

static json_object *get_path(json_object *o, va_list ap)
{
        const char *key;
        while (o && (key = va_arg(ap, const char *))) {
                json_object *child;
                if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &child))
                        return NULL;
                o = child;
        }
        return o;
}

json_object *mr_json_get(json_object *o, ...)
{
        va_list ap;
        va_start(ap, o);
        json_object *r = get_path(o, ap);
        va_end(ap);
        return r;
}

const char *mr_json_get_str(json_object *o, ...)
{
        va_list ap;
        va_start(ap, o);
        json_object *r = get_path(o, ap);
        va_end(ap);
        return json_object_is_type(r, json_type_string) ? json_object_get_string(r) : NULL;
}

int mr_json_get_int(int64_t *ret, json_object *o, ...)
{
        va_list ap;
        va_start(ap, o);
        json_object *r = get_path(o, ap);
        va_end(ap);
        if (!r)
                return -ENOENT;
        if (json_object_is_type(r, json_type_int)) {
                *ret = json_object_get_int64(r);
                return 0;
        }
        if (json_object_is_type(r, json_type_double)) {
                double d = json_object_get_double(r);
                /* Range first: casting a double outside int64_t (4e99, NaN) is undefined behaviour. */
                if (!(d >= -0x1p63 && d < 0x1p63) || d != (double)(int64_t)d)
                        return -EINVAL;
                *ret = (int64_t)d;
                return 0;
        }
        return -EINVAL;
}

bool mr_json_get_bool(bool def, json_object *o, ...)
{
        va_list ap;
        va_start(ap, o);
        json_object *r = get_path(o, ap);
        va_end(ap);
        return json_object_is_type(r, json_type_boolean) ? json_object_get_boolean(r) : def;
}

json_object *mr_json_ensure_object(json_object *o, ...)
{
        va_list ap;
        const char *key;

        va_start(ap, o);
        while (o && (key = va_arg(ap, const char *))) {
                json_object *child;
                if (!json_object_is_type(o, json_type_object)) {
                        o = NULL;
                        break;
                }
                if (json_object_object_get_ex(o, key, &child) && child) {
                        o = child;
                        continue;
                }
                child = json_object_new_object();
                if (!child || json_object_object_add(o, key, child) < 0) {
                        json_object_put(child);
                        o = NULL;
                        break;
                }
                o = child;
        }
        va_end(ap);
        return json_object_is_type(o, json_type_object) ? o : NULL;
}

static int set_owned(json_object *o, const char *key, json_object *v, bool null_ok)
{
        if (!v && !null_ok)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

int mr_json_set_str(json_object *o, const char *key, const char *value)
{
        return set_owned(o, key, value ? json_object_new_string(value) : NULL, !value);
}

int mr_json_set_int(json_object *o, const char *key, int64_t value)
{
        return set_owned(o, key, json_object_new_int64(value), false);
}

int mr_json_set_bool(json_object *o, const char *key, bool value)
{
        return set_owned(o, key, json_object_new_boolean(value), false);
}

const char *mr_json_compact(json_object *o)
{
        return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

json_object *mr_json_copy(json_object *o)
{
        json_object *copy = NULL;
        if (!o)
                return NULL;
        if (json_object_deep_copy(o, &copy, NULL) < 0)
                return NULL;
        return copy;
}

json_object *mr_json_project(json_object *o, const char *const *paths)
{
        _cleanup_(json_object_putp) json_object *out = json_object_new_object();
        if (!out)
                return NULL;
        for (const char *const *p = paths; p && *p; p++) {
                json_object *from = o, *to = out;
                const char *key = *p;
                for (;;) {
                        char k[256];
                        const char *dot = strchr(key, '.');
                        size_t l = dot ? (size_t)(dot - key) : strlen(key);
                        if (l == 0 || l >= sizeof k)
                                break;
                        memcpy(k, key, l);
                        k[l] = 0;
                        json_object *v;
                        if (!json_object_is_type(from, json_type_object) || !json_object_object_get_ex(from, k, &v) ||
                            !v)
                                break;
                        if (!dot) {
                                if (json_object_object_add(to, k, json_object_get(v)) < 0) {
                                        json_object_put(v);
                                        return NULL;
                                }
                                break;
                        }
                        json_object *next;
                        if (!json_object_object_get_ex(to, k, &next) || !next) {
                                if (!(next = json_object_new_object()) || json_object_object_add(to, k, next) < 0) {
                                        json_object_put(next);
                                        return NULL;
                                }
                        }
                        from = v;
                        to = next;
                        key = dot + 1;
                }
        }
        return TAKE_PTR(out);
}

bool mr_json_equal(json_object *a, json_object *b)
{
        return json_object_equal(a, b) == 1;
}
