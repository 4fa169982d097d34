/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "meshroll/errors.h"
#include "meshroll/json-util.h"

#define PARSE(s, o) mr_json_parse((s), strlen(s), 1 << 20, (o))

static void test_parse_ok_and_trailing_space(void **state)
{
        _cleanup_(json_object_putp) json_object *o = NULL;
        assert_int_equal(PARSE("{\"a\":1}  \n", &o), 0);
        int64_t v;
        assert_int_equal(mr_json_get_int(&v, o, "a", NULL), 0);
        assert_int_equal(v, 1);
}

static void test_parse_rejects(void **state)
{
        json_object *o = (json_object *)0x1;
        assert_int_equal(PARSE("{\"a\":1} x", &o), -EBADMSG);
        assert_int_equal(PARSE("{\"a\":", &o), -EBADMSG);
        assert_int_equal(PARSE("", &o), -EBADMSG);
        assert_int_equal(PARSE("null", &o), -EBADMSG);
        assert_int_equal(mr_json_parse("{}", 2, 1, &o), -MR_ETOOBIG);
        /* nesting beyond the cap */
        char deep[300];
        memset(deep, '[', 200);
        deep[200] = 0;
        assert_int_equal(PARSE(deep, &o), -EBADMSG);
        assert_ptr_equal(o, (json_object *)0x1); /* untouched on failure */
}

static void test_parse_scalars_and_control_bytes(void **state)
{
        /* Top-level scalars end at the end of input (json-c alone waits for more). */
        static const char *ok[] = { "0", "12.5", "-0.5e3 ", "true", "false", "\"s\"", " 7\n" };
        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                _cleanup_(json_object_putp) json_object *o = NULL;
                if (PARSE(ok[i], &o) != 0)
                        fail_msg("\"%s\" should parse", ok[i]);
        }
        _cleanup_(json_object_putp) json_object *n = NULL;
        assert_int_equal(PARSE("-0.5e3", &n), 0);
        assert_true(json_object_get_double(n) == -500.0);

        static const struct {
                const char *data;
                size_t size;
        } bad[] = {
                { "{}\0", 3 },            /* a NUL is not whitespace */
                { "{\"a\":\"x\x01y\"}", 11 }, /* raw control byte in a string */
                { "\x1b[1m{}", 7 },
                { "1 2", 3 },
                { "12a", 3 },
                { "[1,]", 4 },
                { "tru", 3 },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                json_object *o = NULL;
                if (mr_json_parse(bad[i].data, bad[i].size, 1 << 20, &o) != -EBADMSG)
                        fail_msg("bad case %zu parsed", i);
        }
}

static void test_getters(void **state)
{
        _cleanup_(json_object_putp) json_object *o = NULL;
        assert_int_equal(PARSE("{\"metadata\":{\"name\":\"n1\",\"labels\":{\"istio.io/rev\":\"1-24\"},"
                               "\"generation\":3,\"x\":\"3\",\"d\":2.0,\"f\":2.5},\"spec\":{\"unschedulable\":true}}",
                               &o),
                         0);
        assert_string_equal(mr_json_get_str(o, "metadata", "labels", "istio.io/rev", NULL), "1-24");
        assert_null(mr_json_get_str(o, "metadata", "generation", NULL));
        assert_null(mr_json_get_str(o, "metadata", "name", "deeper", NULL));
        int64_t v = -1;
        assert_int_equal(mr_json_get_int(&v, o, "metadata", "generation", NULL), 0);
        assert_int_equal(v, 3);
        assert_int_equal(mr_json_get_int(&v, o, "metadata", "x", NULL), -EINVAL);
        assert_int_equal(mr_json_get_int(&v, o, "metadata", "d", NULL), 0);
        assert_int_equal(v, 2);
        assert_int_equal(mr_json_get_int(&v, o, "metadata", "f", NULL), -EINVAL);
        assert_int_equal(mr_json_get_int(&v, o, "metadata", "missing", NULL), -ENOENT);
        assert_true(mr_json_get_bool(false, o, "spec", "unschedulable", NULL));
        assert_true(mr_json_get_bool(true, o, "spec", "missing", NULL));
        assert_null(mr_json_get(NULL, "a", NULL));
}

static void test_ensure_and_set(void **state)
{
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *ann = mr_json_ensure_object(o, "metadata", "annotations", NULL);
        assert_non_null(ann);
        assert_int_equal(mr_json_set_str(ann, "meshroll.io/phase", "draining"), 0);
        assert_int_equal(mr_json_set_int(ann, "n", 5), 0);
        assert_int_equal(mr_json_set_bool(ann, "b", true), 0);
        assert_int_equal(mr_json_set_str(ann, "gone", NULL), 0);
        assert_string_equal(mr_json_compact(o), "{\"metadata\":{\"annotations\":{\"meshroll.io/phase\":\"draining\","
                                                "\"n\":5,\"b\":true,\"gone\":null}}}");
        /* a step that is not an object is never replaced */
        assert_null(mr_json_ensure_object(o, "metadata", "annotations", "n", "x", NULL));
        assert_ptr_equal(mr_json_ensure_object(o, "metadata", "annotations", NULL), ann);
}

static void test_copy_and_equal(void **state)
{
        _cleanup_(json_object_putp) json_object *a = NULL, *b = NULL, *c = NULL;
        assert_int_equal(PARSE("{\"x\":[1,{\"y\":\"z\"}],\"k\":true}", &a), 0);
        assert_int_equal(PARSE("{\"k\":true,\"x\":[1,{\"y\":\"z\"}]}", &b), 0);
        assert_true(mr_json_equal(a, b));
        c = mr_json_copy(a);
        assert_non_null(c);
        assert_true(mr_json_equal(a, c));
        mr_json_set_str(c, "k", "changed");
        assert_false(mr_json_equal(a, c));
        assert_null(mr_json_copy(NULL));
}

static void test_project(void **state)
{
        static const char doc[] = "{\"metadata\":{\"name\":\"p\",\"labels\":{\"a.b/c\":\"1\"},\"managedFields\":[1,2]},"
                                  "\"spec\":{\"nodeName\":\"n1\",\"containers\":[{\"image\":\"x\"}]},\"status\":{\"phase\":\"Running\"}}";
        static const char *const paths[] = { "metadata.name", "metadata.labels", "spec.nodeName", "spec.missing",
                                             "nothere.at.all", "status", "", NULL };
        json_object *o = NULL;
        assert_int_equal(mr_json_parse(doc, strlen(doc), 1 << 10, &o), 0);
        json_object *p = mr_json_project(o, paths);
        assert_non_null(p);
        assert_string_equal(mr_json_compact(p), "{\"metadata\":{\"name\":\"p\",\"labels\":{\"a.b/c\":\"1\"}},"
                                                "\"spec\":{\"nodeName\":\"n1\"},\"status\":{\"phase\":\"Running\"}}");
        /* Shared by reference: the projection outlives the original. */
        json_object_put(o);
        assert_string_equal(mr_json_get_str(p, "status", "phase", NULL), "Running");
        json_object_put(p);
        json_object *empty = mr_json_project(NULL, paths);
        assert_string_equal(mr_json_compact(empty), "{}");
        json_object_put(empty);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_ok_and_trailing_space),
                cmocka_unit_test(test_parse_rejects),
                cmocka_unit_test(test_parse_scalars_and_control_bytes),
                cmocka_unit_test(test_getters),
                cmocka_unit_test(test_ensure_and_set),
                cmocka_unit_test(test_copy_and_equal),
                cmocka_unit_test(test_project),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
