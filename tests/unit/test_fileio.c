/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "meshroll/errors.h"
#include "meshroll/fileio.h"
#include "meshroll/macro.h"

static void write_file(const char *path, size_t size)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        for (size_t i = 0; i < size; i++) {
                char c = (char)('a' + i % 26);
                assert_int_equal(write(fd, &c, 1), 1);
        }
        close(fd);
}

static void test_sizes_around_cap(void **state)
{
        char path[] = "/tmp/meshroll-fileio-XXXXXX";
        int fd = mkostemp(path, O_CLOEXEC);
        assert_true(fd >= 0);
        close(fd);

        const size_t sizes[] = { 0, 1, 4095, 4096, 4097, 10000 };
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                _cleanup_free_ char *buf = NULL;
                size_t n = 99;
                write_file(path, sizes[i]);
                assert_int_equal(mr_read_file(path, 10000, &buf, &n), 0);
                assert_int_equal(n, sizes[i]);
                assert_int_equal(strlen(buf), sizes[i]);
                if (sizes[i] > 0)
                        assert_int_equal(buf[sizes[i] - 1], 'a' + (sizes[i] - 1) % 26);
        }
        char *untouched = (char *)0x1;
        write_file(path, 10001);
        assert_int_equal(mr_read_file(path, 10000, &untouched, NULL), -MR_ETOOBIG);
        assert_ptr_equal(untouched, (char *)0x1);
        unlink(path);
        assert_int_equal(mr_read_file(path, 10, &untouched, NULL), -ENOENT);
        assert_int_equal(mr_read_file("/tmp", 10, &untouched, NULL), -EISDIR);
}

static void test_procfs_file_reports_zero_size(void **state)
{
        /* /proc files stat as 0 bytes; the buffer must grow past the first guess. */
        _cleanup_free_ char *buf = NULL;
        size_t n;
        assert_int_equal(mr_read_file("/proc/self/status", 1 << 20, &buf, &n), 0);
        assert_true(n > 100);
        assert_non_null(strstr(buf, "Name:"));
        _cleanup_free_ char *small = NULL;
        assert_int_equal(mr_read_file("/proc/self/status", 16, &small, &n), -MR_ETOOBIG);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sizes_around_cap),
                cmocka_unit_test(test_procfs_file_reports_zero_size),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
