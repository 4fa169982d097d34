/* SPDX-License-Identifier: Apache-2.0 */
/*
 * selector.c — label and field selectors; see selector.h.
 *
 * Label selectors follow apimachinery's pkg/labels/selector.go (reference
 * §4.3), so a selector the API server accepts parses here and one it
 * rejects is rejected here, with the same kind of message:
 *
 *   - Lexing: whitespace separates; the special symbols are = == != ! ( ) ,
 *     > < (longest match); anything else up to the next whitespace or symbol
 *     is an identifier, and "in"/"notin" are keywords only where an operator
 *     is expected (so a label may be called "in").
 *   - Grammar: requirement (',' requirement)*, where a requirement is
 *     '!'? key, or key op value, or key (in|notin) '(' values ')'. The value
 *     of = may be empty ("k="); "k in ()" is the set {""}, and empty
 *     elements in a list are "" values, as in Go.
 *   - Validation as NewRequirement does: keys are qualified names (optional
 *     DNS-1123 subdomain prefix ≤ 253 and '/', name ≤ 63 of [A-Za-z0-9._-]
 *     starting and ending alphanumeric); values are ≤ 63 characters of the
 *     same alphabet or empty; > and < need an integer.
 *   - Requirements are kept sorted by key (stable, so two terms on one key
 *     keep their order) and value sets sorted and de-duplicated, which makes
 *     the canonical string what kubectl prints.
 *
 * The metav1.LabelSelector form goes through the same requirement checks
 * (LabelSelectorAsSelector): matchLabels become '=' terms; matchExpressions
 * allow In, NotIn (values required), Exists, DoesNotExist (values
 * forbidden). Unknown fields are ignored, as the server's decoder does.
 *
 * Field selectors follow pkg/fields/selector.go: terms split at unescaped
 * commas (empty terms ignored); the first "!=", "==" or "=" in a term
 * splits field from value; values unescape "\\", "\,", "\=" and reject any
 * other escape or a bare ',' or '='. Fields are not validated at parse
 * time: which exist depends on the resource, so the caller's getter says.
 *
 * Everything read from outside is capped: a selector string at
 * MR_SELECTOR_MAX_LENGTH bytes, a selector at MR_SELECTOR_MAX_TERMS terms
 * and a set at MR_SELECTOR_MAX_TERMS values (-MR_ETOOBIG).
 */
#include <stdio.h>

#include "meshroll/json-util.h"
#include "meshroll/selector.h"

typedef enum Op {
        OP_EQUALS,
        OP_DOUBLE_EQUALS,
        OP_NOT_EQUALS,
        OP_IN,
        OP_NOT_IN,
        OP_EXISTS,
        OP_DOES_NOT_EXIST,
        OP_GT,
        OP_LT,
} Op;

typedef struct Requirement {
        char *key;
        Op op;
        char **values; /* sorted, unique */
        size_t n_values;
} Requirement;

struct MrSelector {
        Requirement *reqs;
        size_t n, alloc;
};

typedef struct FieldTerm {
        char *field;
        char *value;
        bool negate;
} FieldTerm;

struct MrFieldSelector {
        FieldTerm *terms;
        size_t n, alloc;
};

/* ---- shared helpers -------------------------------------------------- */

static int grow(void **array, size_t *alloc, size_t n, size_t elem)
{
        if (n < *alloc)
                return 0;
        size_t a = *alloc ? *alloc * 2 : 8;
        void *p = reallocarray(*array, a, elem);
        if (!p)
                return -ENOMEM;
        *array = p;
        *alloc = a;
        return 0;
}

static bool is_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])? — names and label values */
static bool is_qualified_token(const char *s, size_t n)
{
        if (n == 0 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
                        return false;
        return true;
}

/* RFC 1123 subdomain: dot-separated labels of [a-z0-9-], alphanumeric at both ends. */
static bool is_dns1123_subdomain(const char *s, size_t n)
{
        if (n == 0 || n > 253)
                return false;
        size_t start = 0;
        for (size_t i = 0; i <= n; i++) {
                if (i < n && s[i] != '.') {
                        bool lower_alnum = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9');
                        if (!lower_alnum && s[i] != '-')
                                return false;
                        continue;
                }
                if (i == start || s[start] == '-' || s[i - 1] == '-')
                        return false;
                start = i + 1;
        }
        return true;
}

#define QUALIFIED_NAME_RULE                                                                                \
        "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "       \
        "alphanumeric character"

/* Returns NULL when key is a valid qualified name, else why not (static). */
static const char *label_key_problem(const char *key)
{
        const char *slash = strchr(key, '/');
        const char *name = key;

        if (slash) {
                if (strchr(slash + 1, '/'))
                        return "a qualified name " QUALIFIED_NAME_RULE
                               " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
                if (slash == key)
                        return "prefix part must be non-empty";
                if (!is_dns1123_subdomain(key, (size_t)(slash - key)))
                        return (size_t)(slash - key) > 253
                                       ? "prefix part must be no more than 253 characters"
                                       : "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
                                         "alphanumeric characters, '-' or '.', and must start and end with an "
                                         "alphanumeric character";
                name = slash + 1;
        }
        size_t n = strlen(name);
        if (n == 0)
                return "name part must be non-empty";
        if (n > 63)
                return "name part must be no more than 63 characters";
        if (!is_qualified_token(name, n))
                return "name part " QUALIFIED_NAME_RULE;
        return NULL;
}

static const char *label_value_problem(const char *v)
{
        size_t n = strlen(v);
        if (n > 63)
                return "must be no more than 63 characters";
        if (n > 0 && !is_qualified_token(v, n))
                return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
                       "or '.', and must start and end with an alphanumeric character";
        return NULL;
}

/* Go's strconv.ParseInt(s, 10, 64): optional sign, decimal digits, no spaces, no overflow. */
static bool parse_int64(const char *s, int64_t *ret)
{
        const char *d = s + (*s == '+' || *s == '-');
        if (*d < '0' || *d > '9')
                return false;
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (errno != 0 || *end != '\0')
                return false;
        *ret = v;
        return true;
}

/* ---- requirements ----------------------------------------------------- */

static void requirement_done(Requirement *r)
{
        free(r->key);
        for (size_t i = 0; i < r->n_values; i++)
                free(r->values[i]);
        free(r->values);
        *r = (Requirement){};
}

static int cmp_strp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts and de-duplicates the value set (set semantics, as sets.String). */
static void values_normalize(Requirement *r)
{
        if (r->n_values < 2)
                return;
        qsort(r->values, r->n_values, sizeof(char *), cmp_strp);
        size_t k = 1;
        for (size_t i = 1; i < r->n_values; i++) {
                if (streq(r->values[i], r->values[k - 1]))
                        free(r->values[i]);
                else
                        r->values[k++] = r->values[i];
        }
        r->n_values = k;
}

static int values_add(Requirement *r, size_t *alloc, const char *v, size_t n, MrError *err)
{
        if (r->n_values >= MR_SELECTOR_MAX_TERMS)
                return mr_error_set(err, -MR_ETOOBIG, "more than %u values for key \"%s\"",
                                    MR_SELECTOR_MAX_TERMS, r->key);
        if (grow((void **)&r->values, alloc, r->n_values, sizeof(char *)) < 0)
                return mr_error_set(err, -ENOMEM, "out of memory");
        r->values[r->n_values] = strndup(v, n);
        if (!r->values[r->n_values])
                return mr_error_set(err, -ENOMEM, "out of memory");
        r->n_values++;
        return 0;
}

static const char *op_name(Op op)
{
        static const char *const names[] = {
                [OP_EQUALS] = "=",          [OP_DOUBLE_EQUALS] = "==", [OP_NOT_EQUALS] = "!=",
                [OP_IN] = "in",             [OP_NOT_IN] = "notin",     [OP_EXISTS] = "exists",
                [OP_DOES_NOT_EXIST] = "!",  [OP_GT] = "gt",            [OP_LT] = "lt",
        };
        return names[op];
}

/* NewRequirement's checks. Returns 0 or -MR_EPARSE with a message naming key and problem. */
static int requirement_validate(const Requirement *r, MrError *err)
{
        const char *why = label_key_problem(r->key);
        if (why)
                return mr_error_set(err, -MR_EPARSE, "key \"%s\": %s", r->key, why);

        switch (r->op) {
        case OP_IN:
        case OP_NOT_IN:
                if (r->n_values == 0)
                        return mr_error_set(err, -MR_EPARSE,
                                            "key \"%s\": for 'in', 'notin' operators, values set can't be empty",
                                            r->key);
                break;
        case OP_EQUALS:
        case OP_DOUBLE_EQUALS:
        case OP_NOT_EQUALS:
                if (r->n_values != 1)
                        return mr_error_set(err, -MR_EPARSE,
                                            "key \"%s\": exact-match compatibility requires one single value",
                                            r->key);
                break;
        case OP_EXISTS:
        case OP_DOES_NOT_EXIST:
                if (r->n_values != 0)
                        return mr_error_set(err, -MR_EPARSE,
                                            "key \"%s\": values set must be empty for exists and does not exist",
                                            r->key);
                break;
        case OP_GT:
        case OP_LT: {
                int64_t v;
                if (r->n_values != 1)
                        return mr_error_set(err, -MR_EPARSE,
                                            "key \"%s\": for 'Gt', 'Lt' operators, exactly one value is required",
                                            r->key);
                if (!parse_int64(r->values[0], &v))
                        return mr_error_set(err, -MR_EPARSE,
                                            "key \"%s\": for 'Gt', 'Lt' operators, the value must be an integer",
                                            r->key);
                break;
        }
        }

        for (size_t i = 0; i < r->n_values; i++) {
                why = label_value_problem(r->values[i]);
                if (why)
                        return mr_error_set(err, -MR_EPARSE, "invalid label value: \"%s\": at key: \"%s\": %s",
                                            r->values[i], r->key, why);
        }
        return 0;
}

/* Validates *r and moves it into s (r is emptied either way). */
static int selector_add(MrSelector *s, Requirement *r, MrError *err)
{
        int e;

        if (s->n >= MR_SELECTOR_MAX_TERMS)
                e = mr_error_set(err, -MR_ETOOBIG, "more than %u requirements", MR_SELECTOR_MAX_TERMS);
        else if ((e = requirement_validate(r, err)) >= 0 &&
                 (e = grow((void **)&s->reqs, &s->alloc, s->n, sizeof(Requirement))) < 0)
                e = mr_error_set(err, e, "out of memory");
        if (e < 0) {
                requirement_done(r);
                return e;
        }
        values_normalize(r);
        s->reqs[s->n++] = *r;
        *r = (Requirement){};
        return 0;
}

/* Stable sort by key: insertion sort, as selectors are short and mostly sorted already. */
static void selector_sort(MrSelector *s)
{
        for (size_t i = 1; i < s->n; i++) {
                Requirement t = s->reqs[i];
                size_t j = i;
                while (j > 0 && strcmp(s->reqs[j - 1].key, t.key) > 0) {
                        s->reqs[j] = s->reqs[j - 1];
                        j--;
                }
                s->reqs[j] = t;
        }
}

MrSelector *mr_selector_free(MrSelector *s)
{
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n; i++)
                requirement_done(&s->reqs[i]);
        free(s->reqs);
        free(s);
        return NULL;
}

/* ---- the string syntax ------------------------------------------------ */

typedef enum TokenType {
        TOK_END,
        TOK_IDENT,
        TOK_NOT,       /* ! */
        TOK_NOT_EQUALS,
        TOK_EQUALS,
        TOK_DOUBLE_EQUALS,
        TOK_GT,
        TOK_LT,
        TOK_OPEN,
        TOK_CLOSE,
        TOK_COMMA,
} TokenType;

typedef struct Token {
        TokenType type;
        const char *text;
        size_t len;
} Token;

typedef struct Lexer {
        const char *s;
        size_t pos;
} Lexer;

static bool is_space(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_symbol(char c)
{
        return strchr("=!(),<>", c) && c != '\0';
}

static Token lex(Lexer *l)
{
        while (is_space(l->s[l->pos]))
                l->pos++;

        const char *p = l->s + l->pos;
        Token t = { .text = p, .len = 1 };

        if (*p == '\0') {
                t.type = TOK_END;
                t.len = 0;
        } else if (p[0] == '!' && p[1] == '=') {
                t.type = TOK_NOT_EQUALS;
                t.len = 2;
        } else if (p[0] == '=' && p[1] == '=') {
                t.type = TOK_DOUBLE_EQUALS;
                t.len = 2;
        } else if (is_symbol(*p)) {
                static const struct {
                        char c;
                        TokenType type;
                } symbols[] = { { '!', TOK_NOT }, { '=', TOK_EQUALS }, { '>', TOK_GT },   { '<', TOK_LT },
                                { '(', TOK_OPEN }, { ')', TOK_CLOSE }, { ',', TOK_COMMA } };
                for (size_t i = 0; i < ELEMENTSOF(symbols); i++)
                        if (symbols[i].c == *p)
                                t.type = symbols[i].type;
        } else {
                t.type = TOK_IDENT;
                t.len = 0;
                while (p[t.len] && !is_space(p[t.len]) && !is_symbol(p[t.len]))
                        t.len++;
        }
        l->pos += t.len;
        return t;
}

static Token peek(const Lexer *l)
{
        Lexer copy = *l;
        return lex(&copy);
}

static bool token_is(const Token *t, const char *word)
{
        return t->type == TOK_IDENT && t->len == strlen(word) && memcmp(t->text, word, t->len) == 0;
}

#define FOUND(err, t, expected)                                                                            \
        mr_error_set(err, -MR_EPARSE, "found '%.*s', expected: %s", (int)(t).len, (t).text, expected)

/* '(' values ')' after in/notin. */
static int parse_value_set(Lexer *l, Requirement *r, MrError *err)
{
        size_t alloc = 0;
        Token t = lex(l);
        int e;

        if (t.type != TOK_OPEN)
                return FOUND(err, t, "'('");

        t = peek(l);
        if (t.type == TOK_CLOSE) { /* "()" is the set {""} */
                (void)lex(l);
                return values_add(r, &alloc, "", 0, err);
        }
        if (t.type != TOK_IDENT && t.type != TOK_COMMA)
                return FOUND(err, t, "',', ')' or identifier");

        /* Elements separated by commas; an empty element is the value "". */
        bool expect_value = true;
        for (;;) {
                t = lex(l);
                if (t.type == TOK_IDENT && expect_value) {
                        if ((e = values_add(r, &alloc, t.text, t.len, err)) < 0)
                                return e;
                        expect_value = false;
                } else if (t.type == TOK_COMMA) {
                        if (expect_value && (e = values_add(r, &alloc, "", 0, err)) < 0)
                                return e;
                        expect_value = true;
                } else if (t.type == TOK_CLOSE) {
                        if (expect_value && (e = values_add(r, &alloc, "", 0, err)) < 0)
                                return e;
                        return 0;
                } else
                        return FOUND(err, t, expect_value ? "',', ')' or identifier" : "',' or ')'");
        }
}

static int parse_requirement(Lexer *l, Requirement *r, MrError *err)
{
        bool negated = false;
        size_t alloc = 0;
        Token t = lex(l);

        if (t.type == TOK_NOT) {
                negated = true;
                t = lex(l);
        }
        if (t.type != TOK_IDENT)
                return FOUND(err, t, "identifier");
        r->key = strndup(t.text, t.len);
        if (!r->key)
                return mr_error_set(err, -ENOMEM, "out of memory");

        Token next = peek(l);
        if (negated || next.type == TOK_END || next.type == TOK_COMMA) {
                /* "!k=v" leaves "=v" for the caller to reject, as Go does. */
                r->op = negated ? OP_DOES_NOT_EXIST : OP_EXISTS;
                return 0;
        }

        t = lex(l);
        switch (t.type) {
        case TOK_EQUALS:
                r->op = OP_EQUALS;
                break;
        case TOK_DOUBLE_EQUALS:
                r->op = OP_DOUBLE_EQUALS;
                break;
        case TOK_NOT_EQUALS:
                r->op = OP_NOT_EQUALS;
                break;
        case TOK_GT:
                r->op = OP_GT;
                break;
        case TOK_LT:
                r->op = OP_LT;
                break;
        default:
                if (token_is(&t, "in"))
                        r->op = OP_IN;
                else if (token_is(&t, "notin"))
                        r->op = OP_NOT_IN;
                else
                        return FOUND(err, t, "[!=, =, ==, in, notin, >, <]");
        }

        if (r->op == OP_IN || r->op == OP_NOT_IN)
                return parse_value_set(l, r, err);

        next = peek(l);
        if (next.type == TOK_END || next.type == TOK_COMMA) /* "k=" is the empty value */
                return values_add(r, &alloc, "", 0, err);
        t = lex(l);
        if (t.type != TOK_IDENT)
                return FOUND(err, t, "identifier");
        return values_add(r, &alloc, t.text, t.len, err);
}

int mr_selector_parse(const char *s, MrSelector **ret, MrError *err)
{
        _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
        Lexer l = { .s = strempty(s) };
        int e = 0;

        if (!ret)
                return -EINVAL;
        if (strnlen(l.s, MR_SELECTOR_MAX_LENGTH + 1) > MR_SELECTOR_MAX_LENGTH)
                return mr_error_set(err, -MR_ETOOBIG, "label selector longer than %u bytes",
                                    MR_SELECTOR_MAX_LENGTH);
        sel = calloc(1, sizeof(*sel));
        if (!sel)
                return mr_error_set(err, -ENOMEM, "out of memory");

        Token t = peek(&l);
        while (t.type != TOK_END) {
                if (t.type != TOK_IDENT && t.type != TOK_NOT) {
                        e = FOUND(err, t, "!, identifier, or 'end of string'");
                        break;
                }
                Requirement r = {};
                e = parse_requirement(&l, &r, err);
                if (e < 0) {
                        requirement_done(&r);
                        (void)mr_error_prefix(err, "unable to parse requirement");
                        break;
                }
                e = selector_add(sel, &r, err);
                if (e < 0)
                        break;

                t = lex(&l);
                if (t.type == TOK_END)
                        break;
                if (t.type != TOK_COMMA) {
                        e = FOUND(err, t, "',' or 'end of string'");
                        break;
                }
                t = peek(&l);
                if (t.type != TOK_IDENT && t.type != TOK_NOT) {
                        e = FOUND(err, t, "identifier after ','");
                        break;
                }
        }
        if (e < 0) {
                (void)mr_error_prefix(err, "label selector \"%s\"", l.s);
                return e; /* not mr_error_prefix's return: it is 0 when err is NULL */
        }

        selector_sort(sel);
        *ret = TAKE_PTR(sel);
        return 0;
}

/* ---- metav1.LabelSelector ------------------------------------------------ */

static int expression_from_json(json_object *expr, size_t index, Requirement *r, MrError *err)
{
        json_object *values;
        size_t alloc = 0;
        int e;

        if (!json_object_is_type(expr, json_type_object))
                return mr_error_set(err, -MR_EPARSE, "matchExpressions[%zu]: expected an object", index);

        const char *key = mr_json_get_str(expr, "key", NULL);
        if (!key)
                return mr_error_set(err, -MR_EPARSE, "matchExpressions[%zu].key: expected a string", index);
        r->key = strdup(key);
        if (!r->key)
                return mr_error_set(err, -ENOMEM, "out of memory");

        const char *op = mr_json_get_str(expr, "operator", NULL);
        if (!op)
                return mr_error_set(err, -MR_EPARSE, "matchExpressions[%zu].operator: expected a string", index);
        if (streq(op, "In"))
                r->op = OP_IN;
        else if (streq(op, "NotIn"))
                r->op = OP_NOT_IN;
        else if (streq(op, "Exists"))
                r->op = OP_EXISTS;
        else if (streq(op, "DoesNotExist"))
                r->op = OP_DOES_NOT_EXIST;
        else
                return mr_error_set(err, -MR_EPARSE,
                                    "matchExpressions[%zu].operator: \"%s\" is not a valid label selector operator",
                                    index, op);

        if (json_object_object_get_ex(expr, "values", &values) && values) { /* borrowed; null is absent */
                if (!json_object_is_type(values, json_type_array))
                        return mr_error_set(err, -MR_EPARSE, "matchExpressions[%zu].values: expected an array",
                                            index);
                size_t n = json_object_array_length(values);
                for (size_t i = 0; i < n; i++) {
                        json_object *v = json_object_array_get_idx(values, i); /* borrowed */
                        if (!json_object_is_type(v, json_type_string))
                                return mr_error_set(err, -MR_EPARSE,
                                                    "matchExpressions[%zu].values[%zu]: expected a string", index, i);
                        if ((e = values_add(r, &alloc, json_object_get_string(v),
                                            (size_t)json_object_get_string_len(v), err)) < 0)
                                return e;
                }
        }

        if ((r->op == OP_IN || r->op == OP_NOT_IN) && r->n_values == 0)
                return mr_error_set(err, -MR_EPARSE,
                                    "matchExpressions[%zu].values: must be specified when `operator` is 'In' or "
                                    "'NotIn'",
                                    index);
        if ((r->op == OP_EXISTS || r->op == OP_DOES_NOT_EXIST) && r->n_values > 0)
                return mr_error_set(err, -MR_EPARSE,
                                    "matchExpressions[%zu].values: may not be specified when `operator` is "
                                    "'Exists' or 'DoesNotExist'",
                                    index);
        return 0;
}

int mr_selector_from_json(json_object *label_selector, MrSelector **ret, MrError *err)
{
        _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
        json_object *labels, *exprs; /* borrowed */
        int e;

        if (!ret)
                return -EINVAL;
        if (!label_selector)
                return mr_error_set(err, -EINVAL, "null label selector (matches nothing)");
        if (!json_object_is_type(label_selector, json_type_object))
                return mr_error_set(err, -MR_EPARSE, "label selector: expected an object");

        sel = calloc(1, sizeof(*sel));
        if (!sel)
                return mr_error_set(err, -ENOMEM, "out of memory");

        if (json_object_object_get_ex(label_selector, "matchLabels", &labels) && labels) {
                if (!json_object_is_type(labels, json_type_object))
                        return mr_error_set(err, -MR_EPARSE, "matchLabels: expected an object");
                json_object_object_foreach(labels, k, v) {
                        size_t alloc = 0;
                        Requirement r = { .op = OP_EQUALS };
                        if (!json_object_is_type(v, json_type_string))
                                return mr_error_set(err, -MR_EPARSE, "matchLabels.%s: expected a string", k);
                        r.key = strdup(k);
                        if (!r.key)
                                return mr_error_set(err, -ENOMEM, "out of memory");
                        e = values_add(&r, &alloc, json_object_get_string(v), (size_t)json_object_get_string_len(v),
                                       err);
                        if (e >= 0)
                                e = selector_add(sel, &r, err);
                        requirement_done(&r);
                        if (e < 0) {
                                (void)mr_error_prefix(err, "matchLabels");
                                return e;
                        }
                }
        }

        if (json_object_object_get_ex(label_selector, "matchExpressions", &exprs) && exprs) {
                if (!json_object_is_type(exprs, json_type_array))
                        return mr_error_set(err, -MR_EPARSE, "matchExpressions: expected an array");
                size_t n = json_object_array_length(exprs);
                for (size_t i = 0; i < n; i++) {
                        Requirement r = {};
                        e = expression_from_json(json_object_array_get_idx(exprs, i), i, &r, err);
                        if (e >= 0 && (e = selector_add(sel, &r, err)) < 0)
                                (void)mr_error_prefix(err, "matchExpressions[%zu]", i);
                        requirement_done(&r);
                        if (e < 0)
                                return e;
                }
        }

        selector_sort(sel);
        *ret = TAKE_PTR(sel);
        return 0;
}

/* ---- matching and printing ------------------------------------------------ */

static bool has_value(const Requirement *r, const char *v)
{
        return bsearch(&v, r->values, r->n_values, sizeof(char *), cmp_strp) != NULL;
}

static bool requirement_matches(const Requirement *r, json_object *labels)
{
        json_object *jv = NULL; /* borrowed */
        const char *v = NULL;

        /* A label whose value is not a string (never on a real object) counts as absent. */
        if (labels && json_object_object_get_ex(labels, r->key, &jv) && json_object_is_type(jv, json_type_string))
                v = json_object_get_string(jv);

        switch (r->op) {
        case OP_EQUALS:
        case OP_DOUBLE_EQUALS:
        case OP_IN:
                return v && has_value(r, v);
        case OP_NOT_EQUALS:
        case OP_NOT_IN:
                return !v || !has_value(r, v);
        case OP_EXISTS:
                return v;
        case OP_DOES_NOT_EXIST:
                return !v;
        case OP_GT:
        case OP_LT: {
                int64_t have, want;
                if (!v || r->n_values != 1 || !parse_int64(v, &have) || !parse_int64(r->values[0], &want))
                        return false;
                return r->op == OP_GT ? have > want : have < want;
        }
        }
        return false;
}

bool mr_selector_matches(const MrSelector *s, json_object *labels)
{
        if (!s)
                return false;
        if (labels && !json_object_is_type(labels, json_type_object))
                labels = NULL;
        for (size_t i = 0; i < s->n; i++)
                if (!requirement_matches(&s->reqs[i], labels))
                        return false;
        return true;
}

bool mr_selector_is_empty(const MrSelector *s)
{
        return !s || s->n == 0;
}

char *mr_selector_to_string(const MrSelector *s)
{
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return NULL;

        for (size_t i = 0; s && i < s->n; i++) {
                const Requirement *r = &s->reqs[i];
                if (i > 0)
                        fputc(',', f);
                switch (r->op) {
                case OP_EXISTS:
                        fputs(r->key, f);
                        break;
                case OP_DOES_NOT_EXIST:
                        fprintf(f, "!%s", r->key);
                        break;
                case OP_IN:
                case OP_NOT_IN:
                        fprintf(f, "%s %s (", r->key, op_name(r->op));
                        for (size_t j = 0; j < r->n_values; j++)
                                fprintf(f, "%s%s", j > 0 ? "," : "", r->values[j]);
                        fputc(')', f);
                        break;
                case OP_GT:
                case OP_LT:
                        fprintf(f, "%s%s%s", r->key, r->op == OP_GT ? ">" : "<", r->values[0]);
                        break;
                case OP_EQUALS:
                case OP_DOUBLE_EQUALS:
                case OP_NOT_EQUALS:
                        fprintf(f, "%s%s%s", r->key, op_name(r->op), r->values[0]);
                        break;
                }
        }
        if (ferror(f)) {
                fclose(f);
                free(buf);
                return NULL;
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* ---- field selectors ---------------------------------------------------- */

MrFieldSelector *mr_field_selector_free(MrFieldSelector *s)
{
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n; i++) {
                free(s->terms[i].field);
                free(s->terms[i].value);
        }
        free(s->terms);
        free(s);
        return NULL;
}

/* Unescapes a field selector value (\\ \, \=) into a new string. */
static int unescape_value(const char *v, size_t n, char **ret, MrError *err)
{
        _cleanup_free_ char *out = malloc(n + 1);
        size_t k = 0;

        if (!out)
                return mr_error_set(err, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                if (v[i] == '\\') {
                        if (i + 1 >= n)
                                return mr_error_set(err, -MR_EPARSE,
                                                    "invalid field selector: invalid escape sequence: \\");
                        if (v[i + 1] != '\\' && v[i + 1] != ',' && v[i + 1] != '=')
                                return mr_error_set(err, -MR_EPARSE,
                                                    "invalid field selector: invalid escape sequence: \\%c", v[i + 1]);
                        out[k++] = v[++i];
                } else if (v[i] == ',' || v[i] == '=')
                        return mr_error_set(err, -MR_EPARSE,
                                            "invalid field selector: unescaped character in value: '%c'", v[i]);
                else
                        out[k++] = v[i];
        }
        out[k] = '\0';
        *ret = TAKE_PTR(out);
        return 0;
}

static int field_term_parse(MrFieldSelector *s, const char *whole, const char *term, size_t n, MrError *err)
{
        size_t at = 0, oplen = 0;
        bool negate = false;
        int e;

        for (at = 0; at < n; at++) {
                if (at + 1 < n && (term[at] == '!' || term[at] == '=') && term[at + 1] == '=') {
                        negate = term[at] == '!';
                        oplen = 2;
                        break;
                }
                if (term[at] == '=') {
                        oplen = 1;
                        break;
                }
        }
        if (oplen == 0)
                return mr_error_set(err, -MR_EPARSE, "invalid selector: '%s'; can't understand '%.*s'", whole,
                                    (int)n, term);

        if (s->n >= MR_SELECTOR_MAX_TERMS)
                return mr_error_set(err, -MR_ETOOBIG, "field selector: more than %u terms", MR_SELECTOR_MAX_TERMS);
        if (grow((void **)&s->terms, &s->alloc, s->n, sizeof(FieldTerm)) < 0)
                return mr_error_set(err, -ENOMEM, "out of memory");

        FieldTerm t = { .negate = negate };
        t.field = strndup(term, at);
        if (!t.field)
                return mr_error_set(err, -ENOMEM, "out of memory");
        e = unescape_value(term + at + oplen, n - at - oplen, &t.value, err);
        if (e < 0) {
                free(t.field);
                return e;
        }
        s->terms[s->n++] = t;
        return 0;
}

int mr_field_selector_parse(const char *s, MrFieldSelector **ret, MrError *err)
{
        _cleanup_(mr_field_selector_freep) MrFieldSelector *sel = NULL;
        const char *str = strempty(s);
        int e;

        if (!ret)
                return -EINVAL;
        size_t len = strnlen(str, MR_SELECTOR_MAX_LENGTH + 1);
        if (len > MR_SELECTOR_MAX_LENGTH)
                return mr_error_set(err, -MR_ETOOBIG, "field selector longer than %u bytes",
                                    MR_SELECTOR_MAX_LENGTH);
        sel = calloc(1, sizeof(*sel));
        if (!sel)
                return mr_error_set(err, -ENOMEM, "out of memory");

        /* Split at commas not escaped by a backslash; empty terms are ignored. */
        size_t start = 0;
        bool escaped = false;
        for (size_t i = 0; i <= len; i++) {
                if (i < len) {
                        if (escaped) {
                                escaped = false;
                                continue;
                        }
                        if (str[i] == '\\')
                                escaped = true;
                        if (str[i] != ',')
                                continue;
                }
                if (i > start && (e = field_term_parse(sel, str, str + start, i - start, err)) < 0)
                        return e;
                start = i + 1;
        }

        *ret = TAKE_PTR(sel);
        return 0;
}

static int field_terms_check(const MrFieldSelector *s, json_object *obj, mr_field_getter_t get, void *userdata,
                             MrError *err)
{
        bool match = true;

        if (!s || !get)
                return -EINVAL;
        for (size_t i = 0; i < s->n; i++) {
                const FieldTerm *t = &s->terms[i];
                const char *v = get(obj, t->field, userdata);
                if (!v)
                        return mr_error_set(err, -MR_EBADREQUEST, "field label not supported: %s", t->field);
                if (streq(v, t->value) == t->negate)
                        match = false;
        }
        return match;
}

int mr_field_selector_matches(const MrFieldSelector *s, json_object *obj, mr_field_getter_t get, void *userdata,
                              MrError *err)
{
        return field_terms_check(s, obj, get, userdata, err);
}

int mr_field_selector_validate(const MrFieldSelector *s, mr_field_getter_t get, void *userdata, MrError *err)
{
        int r = field_terms_check(s, NULL, get, userdata, err);
        return r < 0 ? r : 0;
}

const char *mr_field_selector_required(const MrFieldSelector *s, const char *field)
{
        for (size_t i = 0; s && field && i < s->n; i++)
                if (!s->terms[i].negate && streq(s->terms[i].field, field))
                        return s->terms[i].value;
        return NULL;
}
