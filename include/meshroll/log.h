/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.h — structured logging for the daemons and the CLI.
 *
 * One event, one record. Where stderr is connected to the journal (systemd
 * sets $JOURNAL_STREAM to stderr's "dev:ino"), records go to journald through
 * sd_journal_send() with PRIORITY, MESSAGE, CODE_FILE/LINE/FUNC, ERRNO and
 * the caller's fields upper-cased (NODE=…, GROUP=…). Otherwise each record is
 * one line on stderr, in logfmt by default:
 *
 *     time=2026-11-24T03:11:03.123Z level=info msg="Cordoned node" node=n1
 *
 * or one JSON object per line with --log-format=json.
 *
 * Library code (lib/) logs at debug level at most; the daemon layer logs a
 * failure once, where it is handled, and returns the error in the same
 * statement:
 *
 *     return log_error_errno(r, "Failed to evict %s/%s: %m", ns, name);
 *
 * "%m" expands to mr_strerror(error), so project errors (MR_E*) read well too.
 * Secrets never go through this module: callers log names, not tokens.
 */
#pragma once

#include <syslog.h>

#include "meshroll/errors.h"
#include "meshroll/macro.h"

typedef enum LogFormat {
        LOG_FORMAT_LOGFMT,
        LOG_FORMAT_JSON,
} LogFormat;

typedef enum LogTarget {
        LOG_TARGET_AUTO,    /* journal when stderr is the journal stream, else stderr */
        LOG_TARGET_STDERR,
        LOG_TARGET_JOURNAL,
} LogTarget;

/* Chooses the target; with LOG_TARGET_AUTO inspects $JOURNAL_STREAM. Safe to call again. */
void log_open(LogTarget target);

void log_set_max_level(int level);
int log_get_max_level(void);

/* "debug", "info", "notice", "warning", "error" (or a syslog number) → level; -EINVAL otherwise. */
int log_level_from_string(const char *s);

void log_set_format(LogFormat format);
/* "logfmt" or "json" → format; -EINVAL otherwise. */
int log_format_from_string(const char *s, LogFormat *ret);

/* Writes stderr-target records to fd instead of 2 (tests capture logs this way). */
void log_set_fd(int fd);

/*
 * Emits one record. fields is NULL or a NULL-terminated list of key, value
 * pairs (keys lower-case ASCII; values any string, escaped as needed).
 * Returns -abs(error), or 0 when error is 0, so callers can return it.
 * Never fails and preserves errno.
 */
int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *const *fields, const char *format, ...) _printf_(7, 8);

#define LOG_FIELDS(...) ((const char *const[]){__VA_ARGS__, NULL})

#define log_full_errno_fields(level, error, fields, ...)                                                    \
        ({                                                                                                 \
                int _level = (level), _e = (error);                                                       \
                _level <= log_get_max_level()                                                              \
                        ? log_internal(_level, _e, __FILE__, __LINE__, __func__, fields, __VA_ARGS__)     \
                        : (_e < 0 ? _e : -_e);                                                             \
        })
#define log_full_errno(level, error, ...) log_full_errno_fields(level, error, NULL, __VA_ARGS__)
#define log_full(level, ...) (void)log_full_errno(level, 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(error, ...) log_full_errno(LOG_DEBUG, error, __VA_ARGS__)
#define log_info_errno(error, ...) log_full_errno(LOG_INFO, error, __VA_ARGS__)
#define log_notice_errno(error, ...) log_full_errno(LOG_NOTICE, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, error, __VA_ARGS__)

/* With structured fields: log_info_fields(LOG_FIELDS("node", n, "group", g), "Cordoned %s", n); */
#define log_info_fields(fields, ...) (void)log_full_errno_fields(LOG_INFO, 0, fields, __VA_ARGS__)
#define log_notice_fields(fields, ...) (void)log_full_errno_fields(LOG_NOTICE, 0, fields, __VA_ARGS__)
#define log_warning_fields(fields, ...) (void)log_full_errno_fields(LOG_WARNING, 0, fields, __VA_ARGS__)
#define log_error_errno_fields(error, fields, ...) log_full_errno_fields(LOG_ERR, error, fields, __VA_ARGS__)

/* Log-and-return for allocation failures, the one error that needs no context. */
#define log_oom() log_error_errno(-ENOMEM, "Out of memory.")
