/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "meshroll/errors.h"
#include "meshroll/json-util.h"
#include "meshroll/selector.h"

static json_object *parse_json(const char *s)
{
        json_object *o = NULL;
        if (!s)
                return NULL;
        assert_int_equal(mr_json_parse(s, strlen(s), 1 << 20, &o), 0);
        return o;
}

/* Valid selectors and their canonical form. */
static void test_parse_valid(void **state)
{
        static const struct {
                const char *in, *canonical;
        } cases[] = {
                { NULL, "" },
                { "", "" },
                { "  \t ", "" },
                { "app=web", "app=web" },
                { "app==web", "app==web" },
                { "app!=web", "app!=web" },
                { "app", "app" },
                { "!legacy", "!legacy" },
                { " ! legacy ", "!legacy" },
                { "tier=db,app=web", "app=web,tier=db" },
                { "app = web , tier != db", "app=web,tier!=db" },
                { "env in (b,a,b)", "env in (a,b)" },
                { "env notin (a, b)", "env notin (a,b)" },
                { "env in(a)", "env in (a)" },
                { "env in ()", "env in ()" },
                { "env in (a,)", "env in (,a)" },
                { "env in (,a)", "env in (,a)" },
                { "env in (a,,b)", "env in (,a,b)" },
                { "k=", "k=" },
                { "k=,j", "j,k=" },
                { "in=x", "in=x" }, /* keywords are only keywords where an operator goes */
                { "k in (in,notin)", "k in (in,notin)" },
                { "replicas>3", "replicas>3" },
                { "replicas<10", "replicas<10" },
                { "istio.io/rev=1-24", "istio.io/rev=1-24" },
                { "example.com/My_Name.x-y=V.a_b-9", "example.com/My_Name.x-y=V.a_b-9" },
                { "b=2,a=1,b!=3", "a=1,b=2,b!=3" }, /* stable: b=2 stays before b!=3 */
                { "app=web,app", "app=web,app" },
                { "x=a\n,y=b", "x=a,y=b" },
                { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa="
                  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
                  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa="
                  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(mr_selector_freep) MrSelector *s = NULL, *again = NULL;
                _cleanup_free_ char *str = NULL, *str2 = NULL;
                MrError err = {};
                int r = mr_selector_parse(cases[i].in, &s, &err);
                if (r < 0)
                        fail_msg("case %zu \"%s\": %s", i, strna(cases[i].in), err.message);
                str = mr_selector_to_string(s);
                assert_non_null(str);
                if (!streq(str, cases[i].canonical))
                        fail_msg("case %zu \"%s\": got \"%s\", want \"%s\"", i, strna(cases[i].in), str,
                                 cases[i].canonical);
                assert_int_equal(mr_selector_is_empty(s), cases[i].canonical[0] == '\0');
                /* the canonical form parses to itself */
                assert_int_equal(mr_selector_parse(str, &again, NULL), 0);
                str2 = mr_selector_to_string(again);
                assert_string_equal(str, str2);
        }
}

/* Invalid selectors: the error says what and where. */
static void test_parse_invalid(void **state)
{
        static const struct {
                const char *in, *message;
        } cases[] = {
                { ",", "found ',', expected: !, identifier, or 'end of string'" },
                { "a,", "found '', expected: identifier after ','" },
                { "a,,b", "found ',', expected: identifier after ','" },
                { "a=b c", "found 'c', expected: ',' or 'end of string'" },
                { "a b", "unable to parse requirement: found 'b', expected: [!=, =, ==, in, notin, >, <]" },
                { "=a", "found '=', expected: !, identifier, or 'end of string'" },
                { "!", "unable to parse requirement: found '', expected: identifier" },
                { "!=a", "found '!=', expected: !, identifier, or 'end of string'" },
                { "!a=b", "found '=', expected: ',' or 'end of string'" },
                { "a=(b)", "found '(', expected: identifier" },
                { "a in b", "found 'b', expected: '('" },
                { "a in (b", "found '', expected: ',' or ')'" },
                { "a in (b c)", "found 'c', expected: ',' or ')'" },
                { "a in (=)", "found '=', expected: ',', ')' or identifier" },
                { "a notin", "found '', expected: '('" },
                { "a=b=c", "found '=', expected: ',' or 'end of string'" },
                { "a>b", "for 'Gt', 'Lt' operators, the value must be an integer" },
                { "a>", "for 'Gt', 'Lt' operators, the value must be an integer" },
                { "a<-1", "invalid label value: \"-1\"" }, /* label values start alphanumeric, even here */
                { "a<1.5", "for 'Gt', 'Lt' operators, the value must be an integer" },
                { "a>99999999999999999999", "the value must be an integer" },
                { "a/b/c=x", "a qualified name must consist of" },
                { "/b=x", "prefix part must be non-empty" },
                { "a/=x", "name part must be non-empty" },
                { "Example.com/b=x", "prefix part a lowercase RFC 1123 subdomain" },
                { "ex..com/b=x", "prefix part a lowercase RFC 1123 subdomain" },
                { "-ex.com/b=x", "prefix part a lowercase RFC 1123 subdomain" },
                { "-a=x", "key \"-a\": name part must consist of" },
                { "a_=x", "name part must consist of" },
                { "a&b=x", "name part must consist of" },
                { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=x",
                  "name part must be no more than 63 characters" },
                { "a=-x", "invalid label value: \"-x\": at key: \"a\": a valid label must be an empty string" },
                { "a=x_", "invalid label value: \"x_\"" },
                { "a in (ok,b@d)", "invalid label value: \"b@d\"" },
                { "a=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
                  "must be no more than 63 characters" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                MrSelector *s = (MrSelector *)0x1;
                MrError err = {};
                int r = mr_selector_parse(cases[i].in, &s, &err);
                if (r != -MR_EPARSE || err.error != -MR_EPARSE || !strstr(err.message, cases[i].message))
                        fail_msg("case %zu \"%s\": got %d \"%s\", want \"%s\"", i, cases[i].in, r, err.message,
                                 cases[i].message);
                /* the message names the selector */
                assert_non_null(strstr(err.message, cases[i].in));
                assert_ptr_equal(s, (MrSelector *)0x1);
                /* the same failure without an MrError */
                assert_int_equal(mr_selector_parse(cases[i].in, &s, NULL), -MR_EPARSE);
                assert_ptr_equal(s, (MrSelector *)0x1);
        }
        /* a 254-character prefix is too long; 253 is fine */
        char key[300];
        MrSelector *s = NULL;
        MrError err = {};
        memset(key, 'a', 254);
        memcpy(key + 254, "/b=x", 5);
        assert_int_equal(mr_selector_parse(key, &s, &err), -MR_EPARSE);
        assert_non_null(strstr(err.message, "prefix part must be no more than 253 characters"));
        assert_int_equal(mr_selector_parse(key + 1, &s, NULL), 0);
        s = mr_selector_free(s);
        assert_int_equal(mr_selector_parse("a=b", NULL, NULL), -EINVAL);
}

static void test_caps(void **state)
{
        size_t n = MR_SELECTOR_MAX_LENGTH + 1;
        _cleanup_free_ char *big = malloc(n + 1);
        MrSelector *s = NULL;
        MrFieldSelector *f = NULL;
        MrError err = {};

        assert_non_null(big);
        memset(big, 'a', n);
        big[n] = 0;
        assert_int_equal(mr_selector_parse(big, &s, &err), -MR_ETOOBIG);
        assert_int_equal(mr_field_selector_parse(big, &f, &err), -MR_ETOOBIG);

        /* MR_SELECTOR_MAX_TERMS + 1 terms "a,a,a…" */
        n = 2 * (MR_SELECTOR_MAX_TERMS + 1) - 1;
        for (size_t i = 0; i < n; i++)
                big[i] = i % 2 ? ',' : 'a';
        big[n] = 0;
        assert_int_equal(mr_selector_parse(big, &s, &err), -MR_ETOOBIG);
        big[n - 2] = 0; /* exactly at the cap */
        assert_int_equal(mr_selector_parse(big, &s, &err), 0);
        s = mr_selector_free(s);
}

static void test_matches(void **state)
{
        static const struct {
                const char *selector, *labels;
                bool match;
        } cases[] = {
                { "", NULL, true },
                { "", "{}", true },
                { "app=web", "{\"app\":\"web\"}", true },
                { "app==web", "{\"app\":\"web\"}", true },
                { "app=web", "{\"app\":\"db\"}", false },
                { "app=web", NULL, false },
                { "app!=web", NULL, true }, /* != matches objects without the key */
                { "app!=web", "{\"app\":\"db\"}", true },
                { "app!=web", "{\"app\":\"web\"}", false },
                { "app", "{\"app\":\"\"}", true },
                { "app", "{\"other\":\"x\"}", false },
                { "!app", "{\"other\":\"x\"}", true },
                { "!app", "{\"app\":\"x\"}", false },
                { "env in (a,b)", "{\"env\":\"b\"}", true },
                { "env in (a,b)", "{\"env\":\"c\"}", false },
                { "env in (a,b)", "{}", false },
                { "env notin (a,b)", "{}", true },
                { "env notin (a,b)", "{\"env\":\"a\"}", false },
                { "env notin (a,b)", "{\"env\":\"c\"}", true },
                { "env in ()", "{\"env\":\"\"}", true },
                { "k=", "{\"k\":\"\"}", true },
                { "k=", "{}", false },
                { "n>3", "{\"n\":\"4\"}", true },
                { "n>3", "{\"n\":\"3\"}", false },
                { "n>3", "{\"n\":\"x\"}", false },
                { "n>3", "{}", false },
                { "n<3", "{\"n\":\"-10\"}", true },
                { "n<3", "{\"n\":\"+2\"}", true },
                { "n<3", "{\"n\":\" 2\"}", false },
                { "app=web,tier!=db", "{\"app\":\"web\",\"tier\":\"cache\"}", true },
                { "app=web,tier!=db", "{\"app\":\"web\",\"tier\":\"db\"}", false },
                { "istio.io/rev=1-24", "{\"istio.io/rev\":\"1-24\"}", true },
                { "app=web", "{\"app\":5}", false }, /* non-string label counts as absent */
                { "app!=web", "{\"app\":5}", true },
                { "app=web", "[\"app\"]", false },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(mr_selector_freep) MrSelector *s = NULL;
                _cleanup_(json_object_putp) json_object *labels = parse_json(cases[i].labels);
                assert_int_equal(mr_selector_parse(cases[i].selector, &s, NULL), 0);
                if (mr_selector_matches(s, labels) != cases[i].match)
                        fail_msg("case %zu: \"%s\" on %s: want %d", i, cases[i].selector, strna(cases[i].labels),
                                 cases[i].match);
        }
        assert_false(mr_selector_matches(NULL, NULL));
}

static void test_from_json(void **state)
{
        static const struct {
                const char *json, *canonical;
        } cases[] = {
                { "{}", "" },
                { "{\"matchLabels\":null,\"matchExpressions\":null}", "" },
                { "{\"matchLabels\":{\"app\":\"ztunnel\",\"a\":\"b\"}}", "a=b,app=ztunnel" },
                { "{\"matchLabels\":{\"k\":\"\"}}", "k=" },
                { "{\"matchExpressions\":[{\"key\":\"env\",\"operator\":\"In\",\"values\":[\"b\",\"a\"]}]}",
                  "env in (a,b)" },
                { "{\"matchExpressions\":[{\"key\":\"env\",\"operator\":\"NotIn\",\"values\":[\"a\"]}]}",
                  "env notin (a)" },
                { "{\"matchExpressions\":[{\"key\":\"x\",\"operator\":\"Exists\"}]}", "x" },
                { "{\"matchExpressions\":[{\"key\":\"x\",\"operator\":\"DoesNotExist\",\"values\":[]}]}", "!x" },
                { "{\"matchExpressions\":[{\"key\":\"x\",\"operator\":\"Exists\",\"values\":null}]}", "x" },
                { "{\"matchLabels\":{\"z\":\"1\"},\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\"}],"
                  "\"unknown\":1}",
                  "a,z=1" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(mr_selector_freep) MrSelector *s = NULL;
                _cleanup_(json_object_putp) json_object *o = parse_json(cases[i].json);
                _cleanup_free_ char *str = NULL;
                MrError err = {};
                if (mr_selector_from_json(o, &s, &err) < 0)
                        fail_msg("case %zu: %s", i, err.message);
                str = mr_selector_to_string(s);
                assert_non_null(str);
                if (!streq(str, cases[i].canonical))
                        fail_msg("case %zu: got \"%s\", want \"%s\"", i, str, cases[i].canonical);
        }
}

static void test_from_json_invalid(void **state)
{
        static const struct {
                const char *json, *message;
        } cases[] = {
                { "[]", "label selector: expected an object" },
                { "{\"matchLabels\":[]}", "matchLabels: expected an object" },
                { "{\"matchLabels\":{\"a\":1}}", "matchLabels.a: expected a string" },
                { "{\"matchLabels\":{\"a b\":\"x\"}}", "matchLabels: key \"a b\": name part must consist of" },
                { "{\"matchLabels\":{\"a\":\"-x\"}}", "matchLabels: invalid label value: \"-x\"" },
                { "{\"matchExpressions\":{}}", "matchExpressions: expected an array" },
                { "{\"matchExpressions\":[1]}", "matchExpressions[0]: expected an object" },
                { "{\"matchExpressions\":[{\"operator\":\"Exists\"}]}", "matchExpressions[0].key: expected a string" },
                { "{\"matchExpressions\":[{\"key\":\"a\"}]}", "matchExpressions[0].operator: expected a string" },
                { "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\"},{\"key\":\"a\",\"operator\":\"in\","
                  "\"values\":[\"x\"]}]}",
                  "matchExpressions[1].operator: \"in\" is not a valid label selector operator" },
                { "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Gt\",\"values\":[\"1\"]}]}",
                  "\"Gt\" is not a valid label selector operator" },
                { "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\"}]}",
                  "matchExpressions[0].values: must be specified when `operator` is 'In' or 'NotIn'" },
                { "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"NotIn\",\"values\":[]}]}",
                  "matchExpressions[0].values: must be specified" },
                { "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\",\"values\":[\"x\"]}]}",
                  "matchExpressions[0].values: may not be specified when `operator` is 'Exists' or 'DoesNotExist'" },
                { "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"DoesNotExist\",\"values\":[\"x\"]}]}",
                  "may not be specified" },
                { "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":\"x\"}]}",
                  "matchExpressions[0].values: expected an array" },
                { "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[\"x\",2]}]}",
                  "matchExpressions[0].values[1]: expected a string" },
                { "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[\"x_\"]}]}",
                  "matchExpressions[0]: invalid label value: \"x_\"" },
                { "{\"matchExpressions\":[{\"key\":\"\",\"operator\":\"Exists\"}]}",
                  "matchExpressions[0]: key \"\": name part must be non-empty" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(json_object_putp) json_object *o = parse_json(cases[i].json);
                MrSelector *s = (MrSelector *)0x1;
                MrError err = {};
                int r = mr_selector_from_json(o, &s, &err);
                if (r != -MR_EPARSE || !strstr(err.message, cases[i].message))
                        fail_msg("case %zu: got %d \"%s\", want \"%s\"", i, r, err.message, cases[i].message);
                assert_ptr_equal(s, (MrSelector *)0x1);
                assert_int_equal(mr_selector_from_json(o, &s, NULL), -MR_EPARSE);
                assert_ptr_equal(s, (MrSelector *)0x1);
        }

        /* a null selector (Deployment/PDB) matches nothing: the caller must decide, so it is an error */
        MrSelector *s = NULL;
        MrError err = {};
        assert_int_equal(mr_selector_from_json(NULL, &s, &err), -EINVAL);
        assert_null(s);
}

/* A getter for a pod-like object: metadata.name, spec.nodeName, status.phase. */
static const char *pod_field(json_object *obj, const char *field, void *userdata)
{
        unsigned *calls = userdata;
        const char *v = NULL;
        if (calls)
                (*calls)++;
        if (streq(field, "metadata.name"))
                v = mr_json_get_str(obj, "metadata", "name", NULL);
        else if (streq(field, "spec.nodeName"))
                v = mr_json_get_str(obj, "spec", "nodeName", NULL);
        else if (streq(field, "status.phase"))
                v = mr_json_get_str(obj, "status", "phase", NULL);
        else
                return NULL;
        return strempty(v);
}

static void test_field_selectors(void **state)
{
        static const struct {
                const char *selector;
                int match; /* against POD */
        } cases[] = {
                { NULL, 1 },
                { "", 1 },
                { ",,", 1 },
                { "spec.nodeName=n1", 1 },
                { "spec.nodeName==n1", 1 },
                { "spec.nodeName!=n1", 0 },
                { "spec.nodeName=n2", 0 },
                { "spec.nodeName=n1,status.phase!=Succeeded", 1 },
                { "spec.nodeName=n1,status.phase=Succeeded", 0 },
                { "spec.nodeName=n1,", 1 },
                { "status.phase=", 0 },
                { "metadata.name=a\\,b\\=c\\\\", 1 },
                { "metadata.name!=a", 1 },
                { "spec.nodeName=n1,bogus=x", -MR_EBADREQUEST },
                { "spec.nodeName=n2,bogus=x", -MR_EBADREQUEST }, /* unsupported even when another term fails */
                { "spec.nodeName =n1", -MR_EBADREQUEST },        /* no trimming, as the server */
        };
        _cleanup_(json_object_putp) json_object *pod =
                parse_json("{\"metadata\":{\"name\":\"a,b=c\\\\\"},\"spec\":{\"nodeName\":\"n1\"},"
                           "\"status\":{\"phase\":\"Running\"}}");
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(mr_field_selector_freep) MrFieldSelector *f = NULL;
                MrError err = {};
                if (mr_field_selector_parse(cases[i].selector, &f, &err) < 0)
                        fail_msg("case %zu: %s", i, err.message);
                int r = mr_field_selector_matches(f, pod, pod_field, NULL, &err);
                if (r != cases[i].match)
                        fail_msg("case %zu \"%s\": got %d, want %d", i, strna(cases[i].selector), r, cases[i].match);
                if (r == -MR_EBADREQUEST) {
                        assert_non_null(strstr(err.message, "field label not supported: "));
                        assert_int_equal(mr_field_selector_validate(f, pod_field, NULL, NULL), -MR_EBADREQUEST);
                } else
                        assert_int_equal(mr_field_selector_validate(f, pod_field, NULL, NULL), 0);
        }
}

static void test_field_selector_invalid(void **state)
{
        static const struct {
                const char *in, *message;
        } cases[] = {
                { "spec.nodeName", "invalid selector: 'spec.nodeName'; can't understand 'spec.nodeName'" },
                { "a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'" },
                { "a=b=c", "invalid field selector: unescaped character in value: '='" },
                { "a=b\\,c,d=e\\", "invalid field selector: invalid escape sequence: \\" },
                { "a=\\n", "invalid field selector: invalid escape sequence: \\n" },
                { "a!b", "can't understand 'a!b'" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                MrFieldSelector *f = (MrFieldSelector *)0x1;
                MrError err = {};
                int r = mr_field_selector_parse(cases[i].in, &f, &err);
                if (r != -MR_EPARSE || !strstr(err.message, cases[i].message))
                        fail_msg("case %zu \"%s\": got %d \"%s\", want \"%s\"", i, cases[i].in, r, err.message,
                                 cases[i].message);
                assert_ptr_equal(f, (MrFieldSelector *)0x1);
                assert_int_equal(mr_field_selector_parse(cases[i].in, &f, NULL), -MR_EPARSE);
                assert_ptr_equal(f, (MrFieldSelector *)0x1);
        }
}

static void test_field_selector_required(void **state)
{
        _cleanup_(mr_field_selector_freep) MrFieldSelector *f = NULL;
        unsigned calls = 0;

        assert_int_equal(mr_field_selector_parse("status.phase!=Failed,spec.nodeName==n\\=1,x=a!=b", &f, NULL),
                         -MR_EPARSE);
        assert_int_equal(mr_field_selector_parse("status.phase!=Failed,spec.nodeName==n\\=1,x==y", &f, NULL), 0);
        assert_string_equal(mr_field_selector_required(f, "spec.nodeName"), "n=1");
        assert_null(mr_field_selector_required(f, "status.phase")); /* != is no index key */
        assert_null(mr_field_selector_required(f, "metadata.name"));
        assert_string_equal(mr_field_selector_required(f, "x"), "y");
        assert_int_equal(mr_field_selector_parse("x!==y", &f, NULL), -MR_EPARSE); /* "!=" splits first */
        assert_null(mr_field_selector_required(NULL, "x"));
        /* validate asks the getter without an object */
        assert_int_equal(mr_field_selector_validate(f, pod_field, &calls, NULL), -MR_EBADREQUEST);
        assert_int_equal(calls, 3);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_valid),
                cmocka_unit_test(test_parse_invalid),
                cmocka_unit_test(test_caps),
                cmocka_unit_test(test_matches),
                cmocka_unit_test(test_from_json),
                cmocka_unit_test(test_from_json_invalid),
                cmocka_unit_test(test_field_selectors),
                cmocka_unit_test(test_field_selector_invalid),
                cmocka_unit_test(test_field_selector_required),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
