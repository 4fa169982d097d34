/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fileio.h — reading small files from outside with a hard size cap.
 *
 * Configuration files, token files and spec files are read whole; a file
 * larger than the caller's cap (or a FIFO that never ends) fails with
 * -MR_ETOOBIG instead of eating memory. The buffer grows with what is read,
 * so a 4 MiB cap does not cost 4 MiB for a 200-byte token.
 */
#pragma once

#include <stddef.h>

/*
 * Reads path into a NUL-terminated buffer (owned by the caller) and its
 * length (NUL excluded; ret_size may be NULL). Errors: -errno from
 * open/read, -EISDIR, -MR_ETOOBIG when the file has more than max bytes,
 * -ENOMEM. *ret is untouched on failure.
 */
int mr_read_file(const char *path, size_t max, char **ret, size_t *ret_size);
