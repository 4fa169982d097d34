/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "meshroll/kube.h"

static size_t safe_strlen(const char *s)
{
        return s ? strlen(s) : 0;
}
#define DECODE(code, body, ra, st) kube_status_decode((code), (body), safe_strlen(body), (ra), (st))

static void test_success(void **state)
{
        KubeStatus st;
        memset(&st, 0x55, sizeof(st));
        assert_int_equal(DECODE(200, "{}", NULL, &st), 0);
        assert_int_equal(st.http_code, 200);
        assert_string_equal(st.reason, "");
        assert_int_equal(st.retry_after, 0);
        assert_int_equal(DECODE(201, NULL, NULL, NULL), 0);
}

static void test_codes(void **state)
{
        static const struct {
                int code;
                int error;
                const char *reason;
        } table[] = {
                { 400, -MR_EBADREQUEST, "BadRequest" }, { 401, -MR_EUNAUTHORIZED, "Unauthorized" },
                { 403, -MR_EFORBIDDEN, "Forbidden" },   { 404, -ENOENT, "NotFound" },
                { 406, -MR_EMEDIATYPE, "NotAcceptable" }, { 409, -MR_ECONFLICT, "Conflict" },
                { 410, -MR_EGONE, "Gone" },             { 415, -MR_EMEDIATYPE, "UnsupportedMediaType" },
                { 422, -MR_EINVALID, "Invalid" },       { 429, -MR_ETOOMANY, "TooManyRequests" },
                { 500, -EIO, "InternalError" },         { 503, -EIO, "ServiceUnavailable" },
                { 504, -EIO, "Timeout" },               { 599, -EIO, "" },
                { 418, -MR_ESERVER, "" },               { 302, -MR_ESERVER, "" },
                { 0, -MR_ETRANSPORT, "" },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                KubeStatus st;
                assert_int_equal(DECODE(table[i].code, "<html>not json</html>", NULL, &st), table[i].error);
                assert_int_equal(st.http_code, table[i].code);
                assert_string_equal(st.reason, table[i].reason);
                assert_non_null(strstr(st.message, "HTTP"));
        }
}

static void test_conflict_vs_exists(void **state)
{
        KubeStatus st;
        const char *exists = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                             "\"message\":\"pods \\\"web-0\\\" already exists\",\"reason\":\"AlreadyExists\",\"code\":409}";
        const char *conflict = "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"Operation cannot be "
                               "fulfilled on leases.coordination.k8s.io \\\"x\\\": the object has been modified\","
                               "\"reason\":\"Conflict\",\"code\":409}";
        assert_int_equal(DECODE(409, exists, NULL, &st), -EEXIST);
        assert_string_equal(st.reason, "AlreadyExists");
        assert_string_equal(st.message, "pods \"web-0\" already exists");
        assert_int_equal(DECODE(409, conflict, NULL, &st), -MR_ECONFLICT);
        assert_string_equal(st.reason, "Conflict");
        /* the HTTP code rules, not the body's code */
        assert_int_equal(DECODE(404, exists, NULL, &st), -ENOENT);
}

static void test_retry_after(void **state)
{
        KubeStatus st;
        const char *pdb = "{\"kind\":\"Status\",\"reason\":\"TooManyRequests\",\"message\":\"Cannot evict pod\","
                          "\"details\":{\"retryAfterSeconds\":10},\"code\":429}";
        assert_int_equal(DECODE(429, pdb, NULL, &st), -MR_ETOOMANY);
        assert_int_equal(st.retry_after, 10 * USEC_PER_SEC);
        /* the header wins */
        assert_int_equal(DECODE(429, pdb, "3", &st), -MR_ETOOMANY);
        assert_int_equal(st.retry_after, 3 * USEC_PER_SEC);
        assert_int_equal(DECODE(503, NULL, " 2\r\n", &st), -EIO);
        assert_int_equal(st.retry_after, 2 * USEC_PER_SEC);
        /* dates, junk and negatives are ignored; huge values are capped */
        assert_int_equal(DECODE(429, NULL, "Wed, 21 Oct 2015 07:28:00 GMT", &st), -MR_ETOOMANY);
        assert_int_equal(st.retry_after, 0);
        assert_int_equal(DECODE(429, NULL, "-5", &st), -MR_ETOOMANY);
        assert_int_equal(st.retry_after, 0);
        assert_int_equal(DECODE(429, NULL, "99999999999999999999999", &st), -MR_ETOOMANY);
        assert_int_equal(st.retry_after, KUBE_RETRY_AFTER_MAX);
        assert_int_equal(DECODE(429, "{\"details\":{\"retryAfterSeconds\":-1}}", NULL, &st), -MR_ETOOMANY);
        assert_int_equal(st.retry_after, 0);
        assert_int_equal(DECODE(429, "{\"details\":{\"retryAfterSeconds\":9223372036854775807}}", NULL, &st),
                         -MR_ETOOMANY);
        assert_int_equal(st.retry_after, KUBE_RETRY_AFTER_MAX);
}

static void test_truncation_and_control_chars(void **state)
{
        KubeStatus st;
        char body[4096];
        char longmsg[2000];
        memset(longmsg, 'm', sizeof(longmsg) - 1);
        longmsg[sizeof(longmsg) - 1] = 0;
        snprintf(body, sizeof(body), "{\"reason\":\"%s\",\"message\":\"a\\nb\\u0007c%s\"}", longmsg, longmsg);
        assert_int_equal(DECODE(422, body, NULL, &st), -MR_EINVALID);
        assert_int_equal(strlen(st.reason), sizeof(st.reason) - 1);
        assert_int_equal(strlen(st.message), sizeof(st.message) - 1);
        assert_memory_equal(st.message, "a b c", 5);
}

static void test_decode_object(void **state)
{
        KubeStatus st;
        _cleanup_(json_object_putp) json_object *o = json_tokener_parse(
                "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"too old resource version: 1 (5)\","
                "\"reason\":\"Expired\",\"code\":410}");
        assert_non_null(o);
        assert_int_equal(kube_status_decode_object(o, &st), -MR_EGONE);
        assert_int_equal(st.http_code, 410);
        assert_string_equal(st.reason, "Expired");
        assert_string_equal(st.message, "too old resource version: 1 (5)");

        assert_int_equal(kube_status_decode_object(NULL, &st), -EIO);
        assert_int_equal(st.http_code, 500);
        _cleanup_(json_object_putp) json_object *ok = json_tokener_parse("{\"code\":200}");
        assert_int_equal(kube_status_decode_object(ok, NULL), 0);
}

static void test_strings(void **state)
{
        assert_string_equal(kube_patch_content_type(KUBE_PATCH_MERGE), "application/merge-patch+json");
        assert_string_equal(kube_patch_content_type(KUBE_PATCH_STRATEGIC), "application/strategic-merge-patch+json");
        assert_string_equal(kube_patch_content_type(KUBE_PATCH_JSON), "application/json-patch+json");
        assert_string_equal(kube_watch_event_type_to_string(KUBE_WATCH_ADDED), "ADDED");
        assert_string_equal(kube_watch_event_type_to_string(KUBE_WATCH_BOOKMARK), "BOOKMARK");
        assert_string_equal(kube_watch_event_type_to_string(KUBE_WATCH_SYNCED), "SYNCED");
        assert_null(kube_watch_event_type_to_string(_KUBE_WATCH_EVENT_TYPE_MAX));
        assert_null(kube_watch_event_type_to_string((KubeWatchEventType)-1));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_success),
                cmocka_unit_test(test_codes),
                cmocka_unit_test(test_conflict_vs_exists),
                cmocka_unit_test(test_retry_after),
                cmocka_unit_test(test_truncation_and_control_chars),
                cmocka_unit_test(test_decode_object),
                cmocka_unit_test(test_strings),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
