/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-replay.c — runs a fuzz target over a corpus without libFuzzer.
 *
 * Linked with each fuzz-<name>.c in normal builds so every CI run replays
 * the stored corpus (and any crash reproducer added to it) under the same
 * sanitizers as the other tests. Arguments are files or directories; a
 * directory's regular files are replayed in name order. An input over 4 MiB
 * is a corpus mistake and fails the run.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "meshroll/macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX (4u << 20)

static int replay_file(const char *path)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ uint8_t *buf = NULL;
        struct stat st;
        size_t n = 0;

        if (fd < 0 || fstat(fd, &st) < 0) {
                fprintf(stderr, "%s: cannot open: %s\n", path, strerror(errno));
                return -errno;
        }
        if ((size_t)st.st_size > REPLAY_MAX) {
                fprintf(stderr, "%s: larger than %u bytes\n", path, REPLAY_MAX);
                return -EFBIG;
        }
        buf = malloc((size_t)st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (n < (size_t)st.st_size) {
                ssize_t k = read(fd, buf + n, (size_t)st.st_size - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                n += (size_t)k;
        }
        (void)LLVMFuzzerTestOneInput(buf, n);
        return 0;
}

static int cmp_names(const struct dirent **a, const struct dirent **b)
{
        return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
        unsigned ok = 0, failed = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        failed++;
                        continue;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (replay_file(argv[i]) < 0)
                                failed++;
                        else
                                ok++;
                        continue;
                }
                struct dirent **list;
                int n = scandir(argv[i], &list, NULL, cmp_names);
                if (n < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        failed++;
                        continue;
                }
                for (int j = 0; j < n; j++) {
                        char path[4096];
                        if (list[j]->d_name[0] != '.' &&
                            snprintf(path, sizeof(path), "%s/%s", argv[i], list[j]->d_name) < (int)sizeof(path) &&
                            stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                                if (replay_file(path) < 0)
                                        failed++;
                                else
                                        ok++;
                        }
                        free(list[j]);
                }
                free(list);
        }
        printf("fuzz-replay: %u passed, %u failed\n", ok, failed);
        return failed > 0 || ok == 0 ? 1 : 0;
}
