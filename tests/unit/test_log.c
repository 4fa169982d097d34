/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <sys/mman.h>

#include "meshroll/json-util.h"
#include "meshroll/log.h"

static int capture_fd = -1;

/* Returns what was logged since the last call (static buffer). */
static const char *captured(void)
{
        static char buf[16384];
        off_t end = lseek(capture_fd, 0, SEEK_END);
        assert_true(end >= 0 && end < (off_t)sizeof(buf));
        assert_int_equal(pread(capture_fd, buf, (size_t)end, 0), end);
        buf[end] = 0;
        assert_int_equal(ftruncate(capture_fd, 0), 0);
        assert_int_equal(lseek(capture_fd, 0, SEEK_SET), 0);
        return buf;
}

static int setup(void **state)
{
        capture_fd = memfd_create("log", MFD_CLOEXEC);
        assert_true(capture_fd >= 0);
        log_open(LOG_TARGET_STDERR);
        log_set_fd(capture_fd);
        log_set_format(LOG_FORMAT_LOGFMT);
        log_set_max_level(LOG_INFO);
        return 0;
}

static int teardown(void **state)
{
        log_set_fd(-1);
        close(capture_fd);
        return 0;
}

static void test_logfmt_line(void **state)
{
        log_info_fields(LOG_FIELDS("node", "n1", "group", "zone a"), "Cordoned %s", "n1");
        const char *out = captured();
        assert_non_null(strstr(out, " level=info msg=\"Cordoned n1\" node=n1 group=\"zone a\"\n"));
        assert_true(strncmp(out, "time=", 5) == 0);
        assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out));
}

static void test_errno_returned_and_m_expanded(void **state)
{
        errno = 42;
        int r = log_error_errno(-MR_ECONFLICT, "Failed to update lease %s: %m (100%% sure)", "l1");
        assert_int_equal(r, -MR_ECONFLICT);
        assert_int_equal(errno, 42); /* preserved */
        const char *out = captured();
        assert_non_null(strstr(out, "msg=\"Failed to update lease l1: Conflict: the object was modified "
                                    "concurrently (100% sure)\""));
        assert_non_null(strstr(out, " error=\"Conflict:"));
        /* positive errors are returned negative too */
        assert_int_equal(log_warning_errno(ENOENT, "x"), -ENOENT);
        captured();
}

static void test_level_filter(void **state)
{
        log_debug("hidden %d", 1);
        assert_string_equal(captured(), "");
        /* filtered records still return the error */
        assert_int_equal(log_debug_errno(-EIO, "hidden"), -EIO);
        log_set_max_level(LOG_DEBUG);
        log_debug("shown");
        assert_non_null(strstr(captured(), "level=debug msg=shown"));
        log_set_max_level(LOG_INFO);
}

static void test_logfmt_escapes(void **state)
{
        log_info_fields(LOG_FIELDS("path", "a\"b\\c\nd"), "x");
        assert_non_null(strstr(captured(), "path=\"a\\\"b\\\\c\\nd\""));
}

static void test_json_format(void **state)
{
        log_set_format(LOG_FORMAT_JSON);
        log_error_errno_fields(-ENOENT, LOG_FIELDS("node", "n\"1"), "Lost \"%s\"", "it");
        log_set_format(LOG_FORMAT_LOGFMT);
        const char *out = captured();
        _cleanup_(json_object_putp) json_object *o = NULL;
        assert_int_equal(mr_json_parse(out, strlen(out), 1 << 20, &o), 0);
        assert_string_equal(mr_json_get_str(o, "level", NULL), "error");
        assert_string_equal(mr_json_get_str(o, "msg", NULL), "Lost \"it\"");
        assert_string_equal(mr_json_get_str(o, "node", NULL), "n\"1");
        assert_string_equal(mr_json_get_str(o, "error", NULL), strerror(ENOENT));
}

static void test_long_message_is_one_line(void **state)
{
        char big[10000];
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        log_info("%s", big);
        const char *out = captured();
        assert_true(strlen(out) <= 8192);
        assert_int_equal(out[strlen(out) - 1], '\n');
        assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
}

static void test_level_parse(void **state)
{
        assert_int_equal(log_level_from_string("debug"), LOG_DEBUG);
        assert_int_equal(log_level_from_string("warn"), LOG_WARNING);
        assert_int_equal(log_level_from_string("3"), LOG_ERR);
        assert_int_equal(log_level_from_string("loud"), -EINVAL);
        LogFormat f;
        assert_int_equal(log_format_from_string("json", &f), 0);
        assert_int_equal(f, LOG_FORMAT_JSON);
        assert_int_equal(log_format_from_string("xml", &f), -EINVAL);
}

static void test_journal_detection(void **state)
{
        /* A JOURNAL_STREAM naming some other inode must not divert logs from stderr. */
        setenv("JOURNAL_STREAM", "1:1", 1);
        log_open(LOG_TARGET_AUTO);
        log_info("still here");
        assert_non_null(strstr(captured(), "msg=\"still here\""));
        unsetenv("JOURNAL_STREAM");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_logfmt_line),
                cmocka_unit_test(test_errno_returned_and_m_expanded),
                cmocka_unit_test(test_level_filter),
                cmocka_unit_test(test_logfmt_escapes),
                cmocka_unit_test(test_json_format),
                cmocka_unit_test(test_long_message_is_one_line),
                cmocka_unit_test(test_level_parse),
                cmocka_unit_test(test_journal_detection),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
