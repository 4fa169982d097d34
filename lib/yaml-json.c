/* SPDX-License-Identifier: Apache-2.0 */
/*
 * yaml-json.c — see yaml-json.h for what the conversion promises.
 *
 * Design: libyaml's event API (not its document loader) drives an explicit
 * stack of open containers, so nesting costs heap, never C stack, and the
 * depth cap is a simple counter. Each finished node carries two numbers up
 * to its parent: its "cost" (32 per node plus string bytes) and its height.
 * An anchor remembers both, so an alias can be priced before it is copied:
 * the sum of alias costs is capped (billion laughs), and depth + height of an
 * aliased subtree is checked against the depth cap.
 *
 * Anchors hold a reference to the finished node inside the tree; nothing in
 * the tree is modified after its node ends, so the alias's deep copy sees
 * exactly what the anchor named. Merge keys (<<) are collected while their
 * mapping is open and applied when it ends, so explicit keys win wherever
 * they appear and earlier merge sources win over later ones (YAML merge
 * spec; go-yaml does the same).
 *
 * Scalar typing (plain scalars only; see the header) is hand-written over
 * the core schema's regular expressions rather than strtoll/strtod alone,
 * because those accept forms YAML does not ("0x" prefixes with signs and
 * spaces, "infinity", hex floats).
 *
 * Reference: YAML 1.2.2 §10.3 (core schema), https://yaml.org/type/merge.html.
 */
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <yaml.h>

#include "meshroll/json-util.h"
#include "meshroll/yaml-json.h"

#define NODE_COST 32u
#define TAG_PREFIX "tag:yaml.org,2002:"

typedef struct Anchor {
        char *name;
        json_object *value; /* a reference into the document tree */
        size_t cost;
        unsigned height;
} Anchor;

typedef struct Frame {
        json_object *node; /* owned: the open mapping or sequence */
        bool mapping;
        char *key; /* mapping: the key waiting for its value, owned */
        bool key_is_merge;
        yaml_mark_t key_mark;
        json_object *merges; /* mapping: array of merge sources, owned, or NULL */
        bool merge_seen;
        char *anchor; /* owned, or NULL */
        size_t cost;
        unsigned height; /* of the tallest child; scalars have height 0 */
} Frame;

typedef struct Parser {
        yaml_parser_t yp;
        Frame stack[MR_YAML_MAX_DEPTH];
        unsigned depth;
        Anchor *anchors;
        size_t n_anchors, n_anchors_alloc;
        size_t alias_cost;
        json_object *doc; /* the finished document value */
        bool doc_done;
        MrError *err;
} Parser;

static int fail_at(Parser *p, const yaml_mark_t *m, int r, const char *fmt, ...) _printf_(4, 5);

static int fail_at(Parser *p, const yaml_mark_t *m, int r, const char *fmt, ...)
{
        char what[768];
        va_list ap;

        va_start(ap, fmt);
        (void)vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        return mr_error_set(p->err, r, "line %zu, column %zu: %s", m->line + 1, m->column + 1, what);
}

static void frame_clear(Frame *f)
{
        json_object_put(f->node);
        json_object_put(f->merges);
        free(f->key);
        free(f->anchor);
        *f = (Frame){};
}

static void anchors_clear(Parser *p)
{
        for (size_t i = 0; i < p->n_anchors; i++) {
                free(p->anchors[i].name);
                json_object_put(p->anchors[i].value);
        }
        p->n_anchors = 0;
}

static void parser_done(Parser *p)
{
        while (p->depth > 0)
                frame_clear(&p->stack[--p->depth]);
        anchors_clear(p);
        free(p->anchors);
        json_object_put(p->doc);
        yaml_parser_delete(&p->yp);
}

static const Anchor *anchor_find(const Parser *p, const char *name)
{
        /* Newest first: a redefined anchor names its latest node (YAML 1.2 §3.2.2.2). */
        for (size_t i = p->n_anchors; i > 0; i--)
                if (streq(p->anchors[i - 1].name, name))
                        return &p->anchors[i - 1];
        return NULL;
}

static int anchor_add(Parser *p, const char *name, json_object *value, size_t cost, unsigned height)
{
        if (p->n_anchors == p->n_anchors_alloc) {
                size_t n = MAX(p->n_anchors_alloc * 2, (size_t)16);
                Anchor *a = realloc(p->anchors, n * sizeof(Anchor));
                if (!a)
                        return -ENOMEM;
                p->anchors = a;
                p->n_anchors_alloc = n;
        }
        char *copy = strdup(name);
        if (!copy)
                return -ENOMEM;
        p->anchors[p->n_anchors++] = (Anchor){
                .name = copy,
                .value = json_object_get(value),
                .cost = cost,
                .height = height,
        };
        return 0;
}

/* ---- scalar typing ---------------------------------------------------- */

static bool all_digits(const char *s, const char *digits)
{
        if (!*s)
                return false;
        for (; *s; s++)
                if (!strchr(digits, *s))
                        return false;
        return true;
}

static bool is_null(const char *s)
{
        return streq(s, "") || streq(s, "~") || streq(s, "null") || streq(s, "Null") || streq(s, "NULL");
}

static int is_bool(const char *s)
{
        if (streq(s, "true") || streq(s, "True") || streq(s, "TRUE"))
                return 1;
        if (streq(s, "false") || streq(s, "False") || streq(s, "FALSE"))
                return 0;
        return -1;
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool is_float_syntax(const char *s)
{
        size_t int_digits = 0, frac_digits = 0;

        if (*s == '+' || *s == '-')
                s++;
        while (*s >= '0' && *s <= '9')
                s++, int_digits++;
        if (*s == '.') {
                s++;
                while (*s >= '0' && *s <= '9')
                        s++, frac_digits++;
                if (int_digits == 0 && frac_digits == 0)
                        return false;
        } else if (int_digits == 0)
                return false;
        if (*s == 'e' || *s == 'E') {
                s++;
                if (*s == '+' || *s == '-')
                        s++;
                if (!all_digits(s, "0123456789"))
                        return false;
                return true;
        }
        return *s == 0;
}

static bool is_special_float(const char *s)
{
        if (*s == '+' || *s == '-')
                s++;
        return streq(s, ".inf") || streq(s, ".Inf") || streq(s, ".INF") || streq(s, ".nan") ||
               streq(s, ".NaN") || streq(s, ".NAN");
}

/* Unsigned magnitude of digits in base; false on overflow. */
static bool parse_magnitude(const char *s, unsigned base, uint64_t *ret)
{
        uint64_t v = 0;
        for (; *s; s++) {
                unsigned d = *s >= '0' && *s <= '9' ? (unsigned)(*s - '0')
                             : *s >= 'a' && *s <= 'f' ? (unsigned)(*s - 'a' + 10)
                                                      : (unsigned)(*s - 'A' + 10);
                if (v > (UINT64_MAX - d) / base)
                        return false;
                v = v * base + d;
        }
        *ret = v;
        return true;
}

/* strtod in the C locale: a program that called setlocale() must not turn "1.5" into 1. */
static double c_strtod(const char *s)
{
        locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        double d = c ? strtod_l(s, NULL, c) : strtod(s, NULL);

        if (c)
                freelocale(c);
        return d;
}

typedef enum Kind { KIND_STRING, KIND_NULL, KIND_BOOL, KIND_INT, KIND_FLOAT, KIND_SPECIAL_FLOAT } Kind;

/*
 * Types a plain scalar. Returns the kind; for KIND_INT/KIND_FLOAT/KIND_BOOL
 * *ret holds a new value. Integers beyond int64 become uint64 when positive
 * and doubles when decimal; non-decimal ones that overflow stay strings, as
 * go-yaml leaves what it cannot resolve a string.
 */
static Kind resolve_plain(const char *s, json_object **ret)
{
        const char *body = s, *digits;
        bool negative = false;
        unsigned base = 10;
        uint64_t mag;
        int b;

        if (is_null(s))
                return KIND_NULL;
        b = is_bool(s);
        if (b >= 0) {
                *ret = json_object_new_boolean(b);
                return KIND_BOOL;
        }
        if (is_special_float(s))
                return KIND_SPECIAL_FLOAT;

        if (*body == '+' || *body == '-')
                negative = *body++ == '-';
        digits = body;
        if ((digits = startswith(body, "0x")) && all_digits(digits, "0123456789abcdefABCDEF"))
                base = 16;
        else if ((digits = startswith(body, "0o")) && all_digits(digits, "01234567"))
                base = 8;
        else if (body[0] == '0' && body[1] && all_digits(body + 1, "01234567"))
                base = 8, digits = body + 1;
        else if (all_digits(body, "0123456789"))
                digits = body;
        else
                digits = NULL;

        if (digits) {
                if (parse_magnitude(digits, base, &mag)) {
                        if (!negative && mag > (uint64_t)INT64_MAX)
                                *ret = json_object_new_uint64(mag);
                        else if (!negative)
                                *ret = json_object_new_int64((int64_t)mag);
                        else if (mag <= (uint64_t)INT64_MAX + 1)
                                *ret = json_object_new_int64(mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN
                                                                                            : -(int64_t)mag);
                        else if (base == 10)
                                goto as_float;
                        else
                                return KIND_STRING;
                        return KIND_INT;
                }
                if (base != 10)
                        return KIND_STRING;
                goto as_float;
        }
        if (!is_float_syntax(s))
                return KIND_STRING;
as_float: {
        double d = c_strtod(s);
        if (!isfinite(d))
                return KIND_SPECIAL_FLOAT;
        *ret = json_object_new_double(d);
        return KIND_FLOAT;
}
}

/* ---- building the tree ------------------------------------------------ */

static int merge_source_check(Parser *p, json_object *v, const yaml_mark_t *m)
{
        if (json_object_is_type(v, json_type_object))
                return 0;
        if (json_object_is_type(v, json_type_array)) {
                size_t n = json_object_array_length(v);
                for (size_t i = 0; i < n; i++)
                        if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_object))
                                goto bad;
                return 0;
        }
bad:
        return fail_at(p, m, -MR_EPARSE, "merge key << expects a mapping or a sequence of mappings");
}

/* Hands a finished value (owned, may be NULL for null) to the open container or the document. */
static int add_value(Parser *p, json_object *v, size_t cost, unsigned height, const char *anchor,
                     const yaml_mark_t *m)
{
        int r;

        if (anchor) {
                r = anchor_add(p, anchor, v, cost, height);
                if (r < 0) {
                        json_object_put(v);
                        return r;
                }
        }

        if (p->depth == 0) {
                /* libyaml guarantees one root node per document. */
                json_object_put(p->doc);
                p->doc = v;
                p->doc_done = true;
                return 0;
        }

        Frame *f = &p->stack[p->depth - 1];
        f->cost += cost;
        f->height = MAX(f->height, height);
        if (!f->mapping) {
                if (json_object_array_add(f->node, v) < 0) {
                        json_object_put(v);
                        return -ENOMEM;
                }
                return 0;
        }

        if (f->key_is_merge) {
                r = merge_source_check(p, v, &f->key_mark);
                if (r < 0) {
                        json_object_put(v);
                        return r;
                }
                if (!f->merges) {
                        f->merges = json_object_new_array();
                        if (!f->merges) {
                                json_object_put(v);
                                return -ENOMEM;
                        }
                }
                f->key_is_merge = false;
                if (json_object_array_add(f->merges, v) < 0) {
                        json_object_put(v);
                        return -ENOMEM;
                }
                return 0;
        }

        _cleanup_free_ char *key = TAKE_PTR(f->key);
        if (json_object_object_add(f->node, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

/* A scalar (or an alias to one) in key position. */
static int set_key(Parser *p, Frame *f, const char *text, bool plain, const yaml_mark_t *m)
{
        if (plain && streq(text, "<<")) {
                if (f->merge_seen)
                        return fail_at(p, m, -MR_EPARSE, "duplicate merge key <<");
                f->merge_seen = true;
                f->key_is_merge = true;
                f->key_mark = *m;
                return 0;
        }
        if (json_object_object_get_ex(f->node, text, NULL))
                return fail_at(p, m, -MR_EPARSE, "duplicate key \"%s\"", text);
        f->key = strdup(text);
        if (!f->key)
                return -ENOMEM;
        f->key_mark = *m;
        f->cost += NODE_COST + strlen(text);
        return 0;
}

static bool expecting_key(const Parser *p)
{
        const Frame *f = p->depth > 0 ? &p->stack[p->depth - 1] : NULL;
        return f && f->mapping && !f->key && !f->key_is_merge;
}

static int on_scalar(Parser *p, const yaml_event_t *e)
{
        const char *text = (const char *)e->data.scalar.value;
        const char *tag = (const char *)e->data.scalar.tag;
        const char *anchor = (const char *)e->data.scalar.anchor;
        const yaml_mark_t *m = &e->start_mark;
        bool plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tag;
        json_object *v = NULL;
        Kind kind = KIND_STRING;
        const char *t = tag ? startswith(tag, TAG_PREFIX) : NULL;

        if (strlen(text) != e->data.scalar.length)
                return fail_at(p, m, -MR_EPARSE, "NUL character in scalar");

        if (tag && !streq(tag, "!") &&
            (!t || !(streq(t, "str") || streq(t, "binary") || streq(t, "int") || streq(t, "float") ||
                     streq(t, "bool") || streq(t, "null"))))
                return fail_at(p, m, -MR_EPARSE, "unsupported tag %s", tag);

        if (expecting_key(p))
                /* Keys are their text: kubectl turns 1, true and null keys into strings too. */
                return set_key(p, &p->stack[p->depth - 1], text, plain, m);

        if (plain || (t && !streq(t, "str") && !streq(t, "binary")))
                kind = resolve_plain(text, &v);

        if (kind == KIND_SPECIAL_FLOAT)
                return fail_at(p, m, -MR_EPARSE, "%s cannot be represented in JSON", text);
        if (t && streq(t, "float") && kind == KIND_INT) {
                double d = json_object_get_double(v);
                json_object_put(v);
                v = json_object_new_double(d);
                kind = KIND_FLOAT;
        }
        if (t && ((streq(t, "int") && kind != KIND_INT) || (streq(t, "float") && kind != KIND_FLOAT) ||
                  (streq(t, "bool") && kind != KIND_BOOL) || (streq(t, "null") && kind != KIND_NULL))) {
                json_object_put(v);
                return fail_at(p, m, -MR_EPARSE, "\"%s\" is not a valid !!%s", text, t);
        }
        if (kind == KIND_STRING)
                v = json_object_new_string_len(text, (int)e->data.scalar.length);
        if (kind != KIND_NULL && !v)
                return -ENOMEM;
        return add_value(p, v, NODE_COST + e->data.scalar.length, 0, anchor, m);
}

static int on_alias(Parser *p, const yaml_event_t *e)
{
        const char *name = (const char *)e->data.alias.anchor;
        const yaml_mark_t *m = &e->start_mark;
        const Anchor *a = anchor_find(p, name);
        json_object *copy = NULL;

        if (!a)
                return fail_at(p, m, -MR_EPARSE, "alias *%s names no anchor defined before it", name);

        if (expecting_key(p)) {
                if (json_object_is_type(a->value, json_type_object) ||
                    json_object_is_type(a->value, json_type_array))
                        return fail_at(p, m, -MR_EPARSE, "a mapping key must be a scalar");
                return set_key(p, &p->stack[p->depth - 1], a->value ? json_object_get_string(a->value) : "null",
                               false, m);
        }

        if (a->cost > MR_YAML_MAX_ALIAS_COST - p->alias_cost)
                return fail_at(p, m, -MR_ETOOBIG, "aliases expand beyond %u bytes", MR_YAML_MAX_ALIAS_COST);
        p->alias_cost += a->cost;
        if (p->depth + a->height > MR_YAML_MAX_DEPTH)
                return fail_at(p, m, -MR_EPARSE, "alias *%s nests deeper than %d levels", name, MR_YAML_MAX_DEPTH);

        if (a->value) {
                copy = mr_json_copy(a->value);
                if (!copy)
                        return -ENOMEM;
        }
        return add_value(p, copy, a->cost, a->height, NULL, m);
}

static int on_start(Parser *p, const yaml_event_t *e, bool mapping)
{
        const char *tag = (const char *)(mapping ? e->data.mapping_start.tag : e->data.sequence_start.tag);
        const char *anchor = (const char *)(mapping ? e->data.mapping_start.anchor : e->data.sequence_start.anchor);
        const yaml_mark_t *m = &e->start_mark;

        if (expecting_key(p))
                return fail_at(p, m, -MR_EPARSE, "a mapping key must be a scalar");
        if (tag && !streq(tag, "!") && !streq(tag, mapping ? TAG_PREFIX "map" : TAG_PREFIX "seq"))
                return fail_at(p, m, -MR_EPARSE, "unsupported tag %s", tag);
        if (p->depth >= MR_YAML_MAX_DEPTH)
                return fail_at(p, m, -MR_EPARSE, "nesting deeper than %d levels", MR_YAML_MAX_DEPTH);

        Frame *f = &p->stack[p->depth];
        *f = (Frame){ .mapping = mapping };
        f->node = mapping ? json_object_new_object() : json_object_new_array();
        if (!f->node)
                return -ENOMEM;
        if (anchor) {
                f->anchor = strdup(anchor);
                if (!f->anchor) {
                        frame_clear(f);
                        return -ENOMEM;
                }
        }
        p->depth++;
        return 0;
}

/* Applies collected merge sources: keys not yet present, earlier sources first. */
static int apply_merges(Frame *f)
{
        size_t n = json_object_array_length(f->merges);

        for (size_t i = 0; i < n; i++) {
                json_object *src = json_object_array_get_idx(f->merges, i); /* borrowed */
                size_t k = json_object_is_type(src, json_type_array) ? json_object_array_length(src) : 1;
                for (size_t j = 0; j < k; j++) {
                        json_object *map = json_object_is_type(src, json_type_array)
                                                   ? json_object_array_get_idx(src, j)
                                                   : src;
                        json_object_object_foreach(map, key, val)
                        {
                                if (json_object_object_get_ex(f->node, key, NULL))
                                        continue;
                                if (json_object_object_add(f->node, key, json_object_get(val)) < 0) {
                                        json_object_put(val);
                                        return -ENOMEM;
                                }
                        }
                }
        }
        return 0;
}

static int on_end(Parser *p)
{
        Frame *f = &p->stack[p->depth - 1];
        int r;

        if (f->merges) {
                r = apply_merges(f);
                if (r < 0)
                        return r;
        }

        json_object *node = TAKE_PTR(f->node);
        _cleanup_free_ char *anchor = TAKE_PTR(f->anchor);
        size_t cost = f->cost + NODE_COST;
        unsigned height = f->height + 1;
        frame_clear(f);
        p->depth--;
        return add_value(p, node, cost, height, anchor, &(yaml_mark_t){});
}

static int parser_error(Parser *p)
{
        const yaml_parser_t *y = &p->yp;

        if (y->error == YAML_MEMORY_ERROR)
                return mr_error_set(p->err, -ENOMEM, "out of memory parsing YAML");
        if (y->context)
                return mr_error_set(p->err, -MR_EPARSE, "line %zu, column %zu: %s %s started at line %zu, column %zu",
                                    y->problem_mark.line + 1, y->problem_mark.column + 1, strna(y->problem),
                                    y->context, y->context_mark.line + 1, y->context_mark.column + 1);
        return mr_error_set(p->err, -MR_EPARSE, "line %zu, column %zu: %s", y->problem_mark.line + 1,
                            y->problem_mark.column + 1, strna(y->problem));
}

static void yaml_event_deletep(yaml_event_t *e)
{
        yaml_event_delete(e);
}

/*
 * Runs the whole stream. Each finished non-null document is passed to
 * on_doc (which takes ownership); documents are separate anchor scopes.
 */
static int parse_stream(const char *data, size_t size, MrError *err,
                        int (*on_doc)(Parser *p, json_object *doc, const yaml_mark_t *m, void *userdata),
                        void *userdata)
{
        Parser p = { .err = err };
        yaml_mark_t doc_mark = {};
        int r = 0;

        if (!data)
                data = "";
        if (size > MR_YAML_MAX_SIZE)
                return mr_error_set(err, -MR_ETOOBIG, "YAML input of %zu bytes exceeds the %u byte limit", size,
                                    MR_YAML_MAX_SIZE);
        if (!yaml_parser_initialize(&p.yp))
                return mr_error_set(err, -ENOMEM, "out of memory parsing YAML");
        yaml_parser_set_input_string(&p.yp, (const unsigned char *)data, size);

        for (bool done = false; !done && r >= 0;) {
                _cleanup_(yaml_event_deletep) yaml_event_t e = {};

                if (!yaml_parser_parse(&p.yp, &e)) {
                        r = parser_error(&p);
                        break;
                }
                switch (e.type) {
                case YAML_STREAM_END_EVENT:
                        done = true;
                        break;
                case YAML_DOCUMENT_START_EVENT:
                        doc_mark = e.start_mark;
                        break;
                case YAML_DOCUMENT_END_EVENT:
                        anchors_clear(&p);
                        p.alias_cost = 0;
                        if (p.doc_done && p.doc)
                                r = on_doc(&p, TAKE_PTR(p.doc), &doc_mark, userdata);
                        p.doc_done = false;
                        break;
                case YAML_SCALAR_EVENT:
                        r = on_scalar(&p, &e);
                        break;
                case YAML_ALIAS_EVENT:
                        r = on_alias(&p, &e);
                        break;
                case YAML_SEQUENCE_START_EVENT:
                case YAML_MAPPING_START_EVENT:
                        r = on_start(&p, &e, e.type == YAML_MAPPING_START_EVENT);
                        break;
                case YAML_SEQUENCE_END_EVENT:
                case YAML_MAPPING_END_EVENT:
                        r = on_end(&p);
                        break;
                default:
                        break;
                }
        }
        if (r == -ENOMEM)
                (void)mr_error_set(err, r, "out of memory parsing YAML");
        parser_done(&p);
        return r;
}

static int one_doc(Parser *p, json_object *doc, const yaml_mark_t *m, void *userdata)
{
        json_object **slot = userdata;

        if (*slot) {
                json_object_put(doc);
                return fail_at(p, m, -MR_EPARSE, "a second YAML document where one was expected");
        }
        *slot = doc;
        return 0;
}

int mr_yaml_parse(const char *data, size_t size, json_object **ret, MrError *err)
{
        _cleanup_(json_object_putp) json_object *doc = NULL;
        int r;

        r = parse_stream(data, size, err, one_doc, &doc);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(doc);
        return 0;
}

static int append_doc(Parser *p, json_object *doc, const yaml_mark_t *m, void *userdata)
{
        if (json_object_array_add(userdata, doc) < 0) {
                json_object_put(doc);
                return -ENOMEM;
        }
        return 0;
}

int mr_yaml_parse_all(const char *data, size_t size, json_object **ret, MrError *err)
{
        _cleanup_(json_object_putp) json_object *docs = json_object_new_array();
        int r;

        if (!docs)
                return mr_error_set(err, -ENOMEM, "out of memory parsing YAML");
        r = parse_stream(data, size, err, append_doc, docs);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(docs);
        return 0;
}
