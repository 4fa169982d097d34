/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "meshroll/json-util.h"
#include "patch.h"

static json_object *J(const char *s)
{
        json_object *o = NULL;
        assert_int_equal(mr_json_parse(s, strlen(s), 1 << 20, &o), 0);
        return o;
}

/* Applies patch of type to target and compares with want (NULL: expect error r). */
static void check(SimPatchType type, const char *target, const char *patch, const char *want, int want_r)
{
        _cleanup_(json_object_putp) json_object *t = J(target);
        _cleanup_(json_object_putp) json_object *out = NULL;
        _cleanup_(json_object_putp) json_object *w = want ? J(want) : NULL;
        MrError err = {};
        int r = sim_patch_apply(type, t, patch, strlen(patch), 1 << 20, &out, &err);
        if (r != want_r)
                fail_msg("patch %s: got %d (%s), want %d", patch, r, err.message, want_r);
        if (want && !mr_json_equal(out, w))
                fail_msg("patch %s: got %s, want %s", patch, mr_json_compact(out), want);
        /* the target is never modified */
        _cleanup_(json_object_putp) json_object *t2 = J(target);
        assert_true(mr_json_equal(t, t2));
}

static void test_content_types(void **state)
{
        assert_int_equal(sim_patch_type_from_content_type("application/json-patch+json"), SIM_PATCH_JSON);
        assert_int_equal(sim_patch_type_from_content_type("application/merge-patch+json; charset=utf-8"), SIM_PATCH_MERGE);
        assert_int_equal(sim_patch_type_from_content_type("application/strategic-merge-patch+json"), SIM_PATCH_STRATEGIC);
        assert_int_equal(sim_patch_type_from_content_type("application/apply-patch+yaml"), -MR_EMEDIATYPE);
        assert_int_equal(sim_patch_type_from_content_type("application/json"), -MR_EMEDIATYPE);
        assert_int_equal(sim_patch_type_from_content_type(NULL), -MR_EMEDIATYPE);
}

static void test_merge_patch(void **state)
{
        /* RFC 7386 appendix A, the interesting rows */
        check(SIM_PATCH_MERGE, "{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}", 0);
        check(SIM_PATCH_MERGE, "{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}", 0);
        check(SIM_PATCH_MERGE, "{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}", 0);
        check(SIM_PATCH_MERGE, "{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}", "{\"a\":{\"b\":\"d\"}}", 0);
        check(SIM_PATCH_MERGE, "{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}", 0);
        check(SIM_PATCH_MERGE, "{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}", 0);
        /* kubectl label / label removal */
        check(SIM_PATCH_MERGE, "{\"metadata\":{\"name\":\"x\",\"labels\":{\"a\":\"1\"}}}",
              "{\"metadata\":{\"labels\":{\"team\":\"a\",\"a\":null}}}",
              "{\"metadata\":{\"name\":\"x\",\"labels\":{\"team\":\"a\"}}}", 0);
        check(SIM_PATCH_MERGE, "{}", "[1]", NULL, -MR_EBADREQUEST);
        check(SIM_PATCH_MERGE, "{}", "{", NULL, -MR_EBADREQUEST);
}

static void test_strategic_maps(void **state)
{
        /* cordon / uncordon */
        check(SIM_PATCH_STRATEGIC, "{\"spec\":{\"podCIDR\":\"x\"}}", "{\"spec\":{\"unschedulable\":true}}",
              "{\"spec\":{\"podCIDR\":\"x\",\"unschedulable\":true}}", 0);
        check(SIM_PATCH_STRATEGIC, "{\"spec\":{\"unschedulable\":true}}", "{\"spec\":{\"unschedulable\":null}}",
              "{\"spec\":{}}", 0);
        /* rollout restart */
        check(SIM_PATCH_STRATEGIC, "{\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"a\":\"b\"}}}}}",
              "{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"kubectl.kubernetes.io/restartedAt\":\"t\"}}}}}",
              "{\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"a\":\"b\"},\"annotations\":"
              "{\"kubectl.kubernetes.io/restartedAt\":\"t\"}}}}}",
              0);
        /* $patch directives on maps */
        check(SIM_PATCH_STRATEGIC, "{\"a\":{\"x\":1,\"y\":2}}", "{\"a\":{\"$patch\":\"replace\",\"z\":3}}",
              "{\"a\":{\"z\":3}}", 0);
        check(SIM_PATCH_STRATEGIC, "{\"a\":{\"x\":1},\"b\":1}", "{\"a\":{\"$patch\":\"delete\"}}", "{\"b\":1}", 0);
        check(SIM_PATCH_STRATEGIC, "{\"a\":{\"x\":1,\"y\":2}}", "{\"a\":{\"$retainKeys\":[\"y\",\"z\"],\"z\":3}}",
              "{\"a\":{\"y\":2,\"z\":3}}", 0);
        check(SIM_PATCH_STRATEGIC, "{}", "{\"a\":{\"$patch\":\"bogus\"}}", NULL, -MR_EBADREQUEST);
        check(SIM_PATCH_STRATEGIC, "{}", "[]", NULL, -MR_EBADREQUEST);
}

static void test_strategic_lists(void **state)
{
        const char *pod = "{\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"a:1\",\"env\":[{\"name\":\"X\",\"value\":\"1\"}]},"
                          "{\"name\":\"istio-proxy\",\"image\":\"p:1\"}],\"tolerations\":[{\"key\":\"a\"}]}}";
        /* merge by name: only the named container changes, env merged by name */
        check(SIM_PATCH_STRATEGIC, pod,
              "{\"$setElementOrder/containers\":[{\"name\":\"app\"},{\"name\":\"istio-proxy\"}],"
              "\"spec\":{\"containers\":[{\"name\":\"istio-proxy\",\"image\":\"p:2\"},"
              "{\"name\":\"app\",\"env\":[{\"name\":\"Y\",\"value\":\"2\"}]}]}}",
              "{\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"a:1\",\"env\":[{\"name\":\"X\",\"value\":\"1\"},"
              "{\"name\":\"Y\",\"value\":\"2\"}]},{\"name\":\"istio-proxy\",\"image\":\"p:2\"}],"
              "\"tolerations\":[{\"key\":\"a\"}]}}",
              0);
        /* new element appended, $patch delete removes, atomic list replaced */
        check(SIM_PATCH_STRATEGIC, pod,
              "{\"spec\":{\"containers\":[{\"name\":\"app\",\"$patch\":\"delete\"},{\"name\":\"new\",\"image\":\"n\"}],"
              "\"tolerations\":[{\"key\":\"b\"}]}}",
              "{\"spec\":{\"containers\":[{\"name\":\"istio-proxy\",\"image\":\"p:1\"},{\"name\":\"new\",\"image\":\"n\"}],"
              "\"tolerations\":[{\"key\":\"b\"}]}}",
              0);
        /* list replace directive */
        check(SIM_PATCH_STRATEGIC, pod, "{\"spec\":{\"containers\":[{\"$patch\":\"replace\"},{\"name\":\"only\"}]}}",
              "{\"spec\":{\"containers\":[{\"name\":\"only\"}],\"tolerations\":[{\"key\":\"a\"}]}}", 0);
        /* conditions by type; finalizers union; deleteFromPrimitiveList */
        check(SIM_PATCH_STRATEGIC,
              "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"},{\"type\":\"PodScheduled\",\"status\":\"True\"}]},"
              "\"metadata\":{\"finalizers\":[\"a\",\"b\"]}}",
              "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]},"
              "\"metadata\":{\"finalizers\":[\"c\",\"a\"],\"$deleteFromPrimitiveList/finalizers\":[\"b\"]}}",
              "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"},{\"type\":\"PodScheduled\",\"status\":\"True\"}]},"
              "\"metadata\":{\"finalizers\":[\"a\",\"c\"]}}",
              0);
        /* a keyed list element without its key */
        check(SIM_PATCH_STRATEGIC, pod, "{\"spec\":{\"containers\":[{\"image\":\"x\"}]}}", NULL, -MR_EBADREQUEST);
}

static void test_json_patch(void **state)
{
        const char *doc = "{\"metadata\":{\"resourceVersion\":\"5\",\"labels\":{\"a/b\":\"1\"}},\"list\":[1,2,3]}";
        check(SIM_PATCH_JSON, doc, "[{\"op\":\"test\",\"path\":\"/metadata/resourceVersion\",\"value\":\"5\"},"
                                   "{\"op\":\"replace\",\"path\":\"/metadata/labels/a~1b\",\"value\":\"2\"},"
                                   "{\"op\":\"add\",\"path\":\"/list/1\",\"value\":9},{\"op\":\"add\",\"path\":\"/list/-\",\"value\":4},"
                                   "{\"op\":\"remove\",\"path\":\"/list/0\"}]",
              "{\"metadata\":{\"resourceVersion\":\"5\",\"labels\":{\"a/b\":\"2\"}},\"list\":[9,2,3,4]}", 0);
        check(SIM_PATCH_JSON, doc, "[{\"op\":\"move\",\"from\":\"/list\",\"path\":\"/moved\"},"
                                   "{\"op\":\"copy\",\"from\":\"/moved/0\",\"path\":\"/first\"}]",
              "{\"metadata\":{\"resourceVersion\":\"5\",\"labels\":{\"a/b\":\"1\"}},\"moved\":[1,2,3],\"first\":1}", 0);
        /* failed test: the whole patch fails (atomic) */
        check(SIM_PATCH_JSON, doc, "[{\"op\":\"remove\",\"path\":\"/list\"},"
                                   "{\"op\":\"test\",\"path\":\"/metadata/resourceVersion\",\"value\":\"4\"}]",
              NULL, -MR_EINVALID);
        check(SIM_PATCH_JSON, doc, "[{\"op\":\"remove\",\"path\":\"/nope\"}]", NULL, -MR_EINVALID);
        check(SIM_PATCH_JSON, doc, "[{\"op\":\"replace\",\"path\":\"/nope\",\"value\":1}]", NULL, -MR_EINVALID);
        check(SIM_PATCH_JSON, doc, "[{\"op\":\"add\",\"path\":\"/list/7\",\"value\":1}]", NULL, -MR_EINVALID);
        check(SIM_PATCH_JSON, doc, "[{\"op\":\"add\",\"path\":\"/list/01\",\"value\":1}]", NULL, -MR_EINVALID);
        check(SIM_PATCH_JSON, doc, "[{\"op\":\"move\",\"from\":\"/metadata\",\"path\":\"/metadata/x\"}]", NULL, -MR_EINVALID);
        check(SIM_PATCH_JSON, doc, "[{\"op\":\"frobnicate\",\"path\":\"/a\"}]", NULL, -MR_EBADREQUEST);
        check(SIM_PATCH_JSON, doc, "{\"op\":\"add\"}", NULL, -MR_EBADREQUEST);
        check(SIM_PATCH_JSON, doc, "[{\"op\":\"add\",\"path\":\"x\",\"value\":1}]", NULL, -MR_EBADREQUEST);
        check(SIM_PATCH_JSON, doc, "[{\"op\":\"replace\",\"path\":\"\",\"value\":[]}]", NULL, -MR_EINVALID);
        check(SIM_PATCH_JSON, "{}", "[{\"op\":\"add\",\"path\":\"/a\",\"value\":null}]", "{\"a\":null}", 0);
}

static void test_size_cap(void **state)
{
        _cleanup_(json_object_putp) json_object *t = J("{}");
        json_object *out = NULL;
        MrError err = {};
        assert_int_equal(sim_patch_apply(SIM_PATCH_MERGE, t, "{\"a\":1}", 7, 4, &out, &err), -MR_ETOOBIG);
        assert_null(out);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_content_types), cmocka_unit_test(test_merge_patch),
                cmocka_unit_test(test_strategic_maps), cmocka_unit_test(test_strategic_lists),
                cmocka_unit_test(test_json_patch),    cmocka_unit_test(test_size_cap),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
