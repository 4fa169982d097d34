/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "meshroll/errors.h"
#include "meshroll/json-util.h"
#include "meshroll/yaml-json.h"

/* Parses s and compares its compact JSON with want. */
static void check(const char *s, const char *want)
{
        _cleanup_(json_object_putp) json_object *o = NULL;
        MrError e = {};
        int r = mr_yaml_parse(s, strlen(s), &o, &e);
        if (r < 0)
                fail_msg("%s: %s", s, e.message);
        assert_string_equal(o ? mr_json_compact(o) : "null", want);
}

/* Expects a failure r whose message contains want. */
static void check_fail(const char *s, int r, const char *want)
{
        json_object *o = (json_object *)0x1;
        MrError e = {};
        assert_int_equal(mr_yaml_parse(s, strlen(s), &o, &e), r);
        assert_ptr_equal(o, (json_object *)0x1);
        if (!strstr(e.message, want))
                fail_msg("message \"%s\" lacks \"%s\"", e.message, want);
}

static void test_scalar_typing(void **state)
{
        check("a: 1\nb: -2\nc: +3\nd: 0x1F\ne: 0o17\nf: 0644\ng: 09", "{\"a\":1,\"b\":-2,\"c\":3,\"d\":31,\"e\":15,\"f\":420,\"g\":9}");
        check("[true, True, TRUE, false, FALSE, yes, no, on, off, y]",
              "[true,true,true,false,false,\"yes\",\"no\",\"on\",\"off\",\"y\"]");
        check("- ~\n- null\n- Null\n- NULL\n-\n- nil\n", "[null,null,null,null,null,\"nil\"]");
        check("[1.5, -.5, 1e3, 2.]", "[1.5,-0.5,1000.0,2.0]");
        check("[\"1\", '2', \"true\", 'null']", "[\"1\",\"2\",\"true\",\"null\"]");
        check("[1_000, 0x, 0xZZ, 1.2.3, 2026-01-02, 10.0.0.1, -]",
              "[\"1_000\",\"0x\",\"0xZZ\",\"1.2.3\",\"2026-01-02\",\"10.0.0.1\",\"-\"]");
        check("[9223372036854775807, -9223372036854775808, 18446744073709551615, 99999999999999999999]",
              "[9223372036854775807,-9223372036854775808,18446744073709551615,1e+20]");
        check("[0xFFFFFFFFFFFFFFFFF]", "[\"0xFFFFFFFFFFFFFFFFF\"]");
        check("a: |\n  line1\n  true\nb: >\n  folded\n  text\n", "{\"a\":\"line1\\ntrue\\n\",\"b\":\"folded text\\n\"}");
}

static void test_tags(void **state)
{
        check("[!!str 12, !!int \"12\", !!float 3, !!bool \"true\", !!null '', ! 5, !!binary aGk=]",
              "[\"12\",12,3.0,true,null,\"5\",\"aGk=\"]");
        check("!!map {a: !!seq [1]}", "{\"a\":[1]}");
        check_fail("a: !!int abc", -MR_EPARSE, "line 1, column 4: \"abc\" is not a valid !!int");
        check_fail("a: !custom x", -MR_EPARSE, "unsupported tag !custom");
        check_fail("a: !!set {x}", -MR_EPARSE, "unsupported tag");
}

static void test_special_floats_rejected(void **state)
{
        check_fail("x: .inf", -MR_EPARSE, "line 1, column 4: .inf cannot be represented in JSON");
        check_fail("- -.Inf", -MR_EPARSE, "cannot be represented");
        check_fail("- .nan", -MR_EPARSE, "cannot be represented");
        check_fail("- 1e999", -MR_EPARSE, "cannot be represented");
        check("- '.inf'", "[\".inf\"]");
}

static void test_structure(void **state)
{
        check("", "null");
        check("# only a comment\n", "null");
        check("---\n...\n", "null");
        check("x", "\"x\"");
        check("a:\n  b:\n    - c: 1\n      d: [x, {e: f}]\n", "{\"a\":{\"b\":[{\"c\":1,\"d\":[\"x\",{\"e\":\"f\"}]}]}}");
        check("{1: a, true: b, ~: c, 1.5: d}", "{\"1\":\"a\",\"true\":\"b\",\"~\":\"c\",\"1.5\":\"d\"}");
        check("a:\nb: ''\n", "{\"a\":null,\"b\":\"\"}");
        /* A trailing empty document is tolerated by the single-document reader. */
        check("a: 1\n---\n", "{\"a\":1}");
}

static void test_errors_have_positions(void **state)
{
        check_fail("a: 1\nb: [1, 2\nc: 3\n", -MR_EPARSE, "line ");
        check_fail("a: 1\n  b: 2\n", -MR_EPARSE, "line 2, column 4: mapping values are not allowed");
        check_fail("a: 1\nb: 2\na: 3\n", -MR_EPARSE, "line 3, column 1: duplicate key \"a\"");
        check_fail("? [a, b]\n: c\n", -MR_EPARSE, "line 1, column 3: a mapping key must be a scalar");
        check_fail("{a: 1}: x\n", -MR_EPARSE, "mapping key must be a scalar");
        check_fail("a: *nope\n", -MR_EPARSE, "line 1, column 4: alias *nope names no anchor");
        check_fail("a: \"x\\0y\"\n", -MR_EPARSE, "NUL character");
        check_fail("a: 1\n---\nb: 2\n", -MR_EPARSE, "line 2, column 1: a second YAML document");
        check_fail("\t- x", -MR_EPARSE, "line 1");
}

static void test_anchors_and_merge(void **state)
{
        check("base: &b {x: 1, y: [2]}\ncopy: *b\n", "{\"base\":{\"x\":1,\"y\":[2]},\"copy\":{\"x\":1,\"y\":[2]}}");
        check("a: &v 5\nb: *v\n*v : c\n", "{\"a\":5,\"b\":5,\"5\":\"c\"}");
        check("a: &n\nb: *n\n", "{\"a\":null,\"b\":null}");
        /* Redefinition: the newest anchor wins. */
        check("- &a 1\n- &a 2\n- *a\n", "[1,2,2]");
        /* Merge: explicit keys win wherever they appear; earlier sources win. */
        check("d: &d {a: 1, b: 2}\ne: &e {b: 3, c: 4}\nm:\n  a: 0\n  <<: [*d, *e]\n",
              "{\"d\":{\"a\":1,\"b\":2},\"e\":{\"b\":3,\"c\":4},\"m\":{\"a\":0,\"b\":2,\"c\":4}}");
        check("m:\n  <<: {a: 1}\n  a: 2\n", "{\"m\":{\"a\":2}}");
        check("m: {\"<<\": 1}", "{\"m\":{\"<<\":1}}");
        check_fail("m:\n  <<: 5\n", -MR_EPARSE, "line 2, column 3: merge key << expects a mapping");
        check_fail("m: {<<: {a: 1}, <<: {b: 2}}", -MR_EPARSE, "duplicate merge key");
        /* An anchor on a node is not visible inside it. */
        check_fail("a: &x [*x]\n", -MR_EPARSE, "names no anchor");
        /* Anchors do not cross documents. */
        {
                const char *s = "a: &x 1\n---\nb: *x\n";
                json_object *o = NULL;
                MrError e = {};
                assert_int_equal(mr_yaml_parse_all(s, strlen(s), &o, &e), -MR_EPARSE);
        }
}

static void test_alias_copies_are_independent(void **state)
{
        const char *s = "a: &x {k: v}\nb: *x\n";
        _cleanup_(json_object_putp) json_object *o = NULL;
        assert_int_equal(mr_yaml_parse(s, strlen(s), &o, NULL), 0);
        assert_int_equal(mr_json_set_str(mr_json_get(o, "b", NULL), "k", "changed"), 0);
        assert_string_equal(mr_json_get_str(o, "a", "k", NULL), "v");
}

static void test_billion_laughs(void **state)
{
        char doc[4096];
        size_t n = 0;
        n += (size_t)snprintf(doc + n, sizeof(doc) - n, "l0: &l0 \"lololololololololololololololololololololol\"\n");
        for (int i = 1; i < 12; i++)
                n += (size_t)snprintf(doc + n, sizeof(doc) - n,
                                      "l%d: &l%d [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d]\n", i,
                                      i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
        check_fail(doc, -MR_ETOOBIG, "aliases expand beyond");
}

static void test_depth_and_size_caps(void **state)
{
        char deep[400];
        json_object *o = NULL;
        MrError e = {};

        memset(deep, '[', MR_YAML_MAX_DEPTH);
        memset(deep + MR_YAML_MAX_DEPTH, ']', MR_YAML_MAX_DEPTH);
        deep[2 * MR_YAML_MAX_DEPTH] = 0;
        check(deep, deep); /* exactly at the cap: fine */
        memset(deep, '[', 100);
        memset(deep + 100, ']', 100);
        deep[200] = 0;
        check_fail(deep, -MR_EPARSE, "nesting deeper than 64 levels");

        /* An alias whose subtree would push past the cap. */
        char *s = malloc(4096);
        assert_non_null(s);
        size_t n = (size_t)snprintf(s, 4096, "a: &a ");
        for (int i = 0; i < 40; i++)
                s[n++] = '[';
        for (int i = 0; i < 40; i++)
                s[n++] = ']';
        n += (size_t)snprintf(s + n, 4096 - n, "\nb: ");
        for (int i = 0; i < 40; i++)
                s[n++] = '[';
        s[n++] = '*', s[n++] = 'a';
        for (int i = 0; i < 40; i++)
                s[n++] = ']';
        s[n] = 0;
        check_fail(s, -MR_EPARSE, "alias *a nests deeper");
        free(s);

        assert_int_equal(mr_yaml_parse("a", MR_YAML_MAX_SIZE + 1, &o, &e), -MR_ETOOBIG);
        assert_null(o);
}

static void test_multi_document(void **state)
{
        const char *s = "---\nkind: A\n---\n# empty\n---\nkind: B\n---\nnull\n...\n---\n[1]\n";
        _cleanup_(json_object_putp) json_object *o = NULL;
        MrError e = {};
        assert_int_equal(mr_yaml_parse_all(s, strlen(s), &o, &e), 0);
        assert_string_equal(mr_json_compact(o), "[{\"kind\":\"A\"},{\"kind\":\"B\"},[1]]");

        _cleanup_(json_object_putp) json_object *empty = NULL;
        assert_int_equal(mr_yaml_parse_all("", 0, &empty, &e), 0);
        assert_string_equal(mr_json_compact(empty), "[]");

        json_object *bad = NULL;
        const char *b = "a: 1\n---\nb: [\n";
        assert_int_equal(mr_yaml_parse_all(b, strlen(b), &bad, &e), -MR_EPARSE);
        assert_null(bad);
        assert_non_null(strstr(e.message, "line 4"));
}

static void test_not_nul_terminated(void **state)
{
        /* The parser reads exactly size bytes. */
        char buf[8] = { 'a', ':', ' ', '1', '2', 'X', 'X', 'X' };
        _cleanup_(json_object_putp) json_object *o = NULL;
        assert_int_equal(mr_yaml_parse(buf, 5, &o, NULL), 0);
        assert_string_equal(mr_json_compact(o), "{\"a\":12}");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_scalar_typing),
                cmocka_unit_test(test_tags),
                cmocka_unit_test(test_special_floats_rejected),
                cmocka_unit_test(test_structure),
                cmocka_unit_test(test_errors_have_positions),
                cmocka_unit_test(test_anchors_and_merge),
                cmocka_unit_test(test_alias_copies_are_independent),
                cmocka_unit_test(test_billion_laughs),
                cmocka_unit_test(test_depth_and_size_caps),
                cmocka_unit_test(test_multi_document),
                cmocka_unit_test(test_not_nul_terminated),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
