/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "meshroll/errors.h"

static void test_project_errors_have_texts(void **state)
{
        for (int e = MR_ERRNO_BASE; e < MR_ERRNO_MAX; e++) {
                assert_non_null(mr_errno_name(-e));
                assert_non_null(mr_strerror(-e));
                assert_null(strstr(mr_strerror(-e), "Unknown"));
        }
        assert_string_equal(mr_errno_name(-MR_ECONFLICT), "ECONFLICT");
        assert_string_equal(mr_errno_name(ENOENT), "ENOENT");
        assert_null(mr_errno_name(-999));
}

static void test_strerror_system_and_unknown(void **state)
{
        assert_string_equal(mr_strerror(-ENOENT), strerror(ENOENT));
        assert_non_null(strstr(mr_strerror(-(MR_ERRNO_MAX + 5)), "Unknown meshroll error"));
}

static void test_error_set_and_prefix(void **state)
{
        MrError e = {};
        assert_int_equal(mr_error_set(&e, MR_ECONFIG, "users[%d].user.token: expected a string", 1), -MR_ECONFIG);
        assert_int_equal(e.error, -MR_ECONFIG);
        assert_string_equal(e.message, "users[1].user.token: expected a string");
        mr_error_prefix(&e, "%s", "/home/a/.kube/config");
        assert_int_equal(e.error, -MR_ECONFIG);
        assert_string_equal(e.message, "/home/a/.kube/config: users[1].user.token: expected a string");
        /* NULL error object: only the return value. */
        assert_int_equal(mr_error_set(NULL, -EINVAL, "x"), -EINVAL);
        mr_error_prefix(NULL, "x"); /* must not crash */
}

static void test_error_message_truncates(void **state)
{
        MrError e = {};
        char big[4000];
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        mr_error_set(&e, -EINVAL, "%s", big);
        assert_int_equal(strlen(e.message), sizeof(e.message) - 1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_project_errors_have_texts),
                cmocka_unit_test(test_strerror_system_and_unknown),
                cmocka_unit_test(test_error_set_and_prefix),
                cmocka_unit_test(test_error_message_truncates),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
