/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.c — see log.h.
 *
 * A record is built in fixed stack buffers (a message over 4 KiB is cut,
 * never allocated), then written with a single write(2) so lines from
 * several threads or processes sharing stderr do not interleave. The
 * journal path uses sd_journal_sendv() with one iovec per field.
 *
 * "%m" is expanded here rather than by glibc, because glibc's %m knows only
 * the kernel's errno texts, not meshroll's MR_E* codes.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <time.h>

#include "meshroll/log.h"
#include "meshroll/time-util.h"

#define LOG_MESSAGE_MAX 4096
#define LOG_LINE_MAX 8192
#define LOG_FIELDS_MAX 16

static int max_level = LOG_INFO;
static LogFormat log_format = LOG_FORMAT_LOGFMT;
static bool to_journal = false;
static int log_fd = STDERR_FILENO;

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit",  [LOG_ERR] = "error",
        [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

static bool stderr_is_journal(void)
{
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_open(LogTarget target)
{
        switch (target) {
        case LOG_TARGET_JOURNAL:
                to_journal = true;
                break;
        case LOG_TARGET_STDERR:
                to_journal = false;
                break;
        case LOG_TARGET_AUTO:
        default:
                to_journal = stderr_is_journal();
                break;
        }
}

void log_set_max_level(int level)
{
        max_level = CLAMP(level, LOG_EMERG, LOG_DEBUG);
}

int log_get_max_level(void)
{
        return max_level;
}

int log_level_from_string(const char *s)
{
        if (!s)
                return -EINVAL;
        for (int i = 0; i < (int)ELEMENTSOF(level_names); i++)
                if (streq(s, level_names[i]))
                        return i;
        if (streq(s, "warn"))
                return LOG_WARNING;
        if (streq(s, "err"))
                return LOG_ERR;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == 0)
                return s[0] - '0';
        return -EINVAL;
}

void log_set_format(LogFormat format)
{
        log_format = format;
}

int log_format_from_string(const char *s, LogFormat *ret)
{
        if (streq_ptr(s, "logfmt"))
                *ret = LOG_FORMAT_LOGFMT;
        else if (streq_ptr(s, "json"))
                *ret = LOG_FORMAT_JSON;
        else
                return -EINVAL;
        return 0;
}

void log_set_fd(int fd)
{
        log_fd = fd >= 0 ? fd : STDERR_FILENO;
}

/* Copies fmt to out, replacing %m by the error text with any '%' in it doubled. */
static void expand_m(char *out, size_t size, const char *fmt, int error)
{
        const char *text = mr_strerror(error);
        size_t n = 0;

        for (const char *p = fmt; *p && n + 1 < size; p++) {
                if (p[0] == '%' && p[1] == '%') {
                        if (n + 2 >= size)
                                break;
                        out[n++] = '%';
                        out[n++] = '%';
                        p++;
                } else if (p[0] == '%' && p[1] == 'm') {
                        for (const char *t = text; *t && n + 2 < size; t++) {
                                if (*t == '%')
                                        out[n++] = '%';
                                out[n++] = *t;
                        }
                        p++;
                } else
                        out[n++] = *p;
        }
        out[n] = 0;
}

/* Appends s to buf (at *n, capacity size), truncating; keeps buf NUL-terminated. */
static void put(char *buf, size_t size, size_t *n, const char *s)
{
        while (*s && *n + 1 < size)
                buf[(*n)++] = *s++;
        buf[*n] = 0;
}

/* Appends a logfmt value: bare when safe, else quoted with \" \\ \n \t and \xNN escapes. */
static void put_logfmt_value(char *buf, size_t size, size_t *n, const char *v)
{
        bool quote = !*v;
        for (const char *p = v; *p && !quote; p++)
                if (*p == ' ' || *p == '=' || *p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f)
                        quote = true;
        if (!quote) {
                put(buf, size, n, v);
                return;
        }
        put(buf, size, n, "\"");
        for (const char *p = v; *p; p++) {
                char esc[8];
                unsigned char c = (unsigned char)*p;
                if (c == '"' || c == '\\') {
                        esc[0] = '\\';
                        esc[1] = (char)c;
                        esc[2] = 0;
                } else if (c == '\n')
                        (void)snprintf(esc, sizeof(esc), "\\n");
                else if (c == '\t')
                        (void)snprintf(esc, sizeof(esc), "\\t");
                else if (c < 0x20 || c == 0x7f)
                        (void)snprintf(esc, sizeof(esc), "\\x%02x", c);
                else {
                        esc[0] = (char)c;
                        esc[1] = 0;
                }
                put(buf, size, n, esc);
        }
        put(buf, size, n, "\"");
}

/* Appends a JSON string literal. */
static void put_json_string(char *buf, size_t size, size_t *n, const char *v)
{
        put(buf, size, n, "\"");
        for (const char *p = v; *p; p++) {
                char esc[8];
                unsigned char c = (unsigned char)*p;
                if (c == '"' || c == '\\') {
                        esc[0] = '\\';
                        esc[1] = (char)c;
                        esc[2] = 0;
                } else if (c < 0x20 || c == 0x7f)
                        (void)snprintf(esc, sizeof(esc), "\\u%04x", c);
                else {
                        esc[0] = (char)c;
                        esc[1] = 0;
                }
                put(buf, size, n, esc);
        }
        put(buf, size, n, "\"");
}

static void write_line(const char *line, size_t len)
{
        while (len > 0) {
                ssize_t k = write(log_fd, line, len);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return;
                }
                line += k;
                len -= (size_t)k;
        }
}

static void log_to_stream(int level, int error, const char *const *fields, const char *msg)
{
        char line[LOG_LINE_MAX], ts[KUBE_TIME_MAX + 8];
        size_t n = 0;
        usec_t now = mr_now_realtime(NULL);
        time_t sec = (time_t)(now / USEC_PER_SEC);
        struct tm tm;

        (void)gmtime_r(&sec, &tm);
        (void)snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
                       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(now % USEC_PER_SEC / 1000));
        line[0] = 0;

        if (log_format == LOG_FORMAT_JSON) {
                put(line, sizeof(line), &n, "{\"time\":\"");
                put(line, sizeof(line), &n, ts);
                put(line, sizeof(line), &n, "\",\"level\":\"");
                put(line, sizeof(line), &n, level_names[level]);
                put(line, sizeof(line), &n, "\",\"msg\":");
                put_json_string(line, sizeof(line), &n, msg);
                if (error != 0) {
                        put(line, sizeof(line), &n, ",\"error\":");
                        put_json_string(line, sizeof(line), &n, mr_strerror(error));
                }
                for (size_t i = 0; fields && fields[i] && fields[i + 1] && i < 2 * LOG_FIELDS_MAX; i += 2) {
                        put(line, sizeof(line), &n, ",");
                        put_json_string(line, sizeof(line), &n, fields[i]);
                        put(line, sizeof(line), &n, ":");
                        put_json_string(line, sizeof(line), &n, fields[i + 1]);
                }
                /* Keep the object closed even when the line was cut. */
                if (n > sizeof(line) - 4)
                        n = sizeof(line) - 4;
                line[n] = 0;
                put(line, sizeof(line), &n, "}");
        } else {
                put(line, sizeof(line), &n, "time=");
                put(line, sizeof(line), &n, ts);
                put(line, sizeof(line), &n, " level=");
                put(line, sizeof(line), &n, level_names[level]);
                put(line, sizeof(line), &n, " msg=");
                put_logfmt_value(line, sizeof(line), &n, msg);
                if (error != 0) {
                        put(line, sizeof(line), &n, " error=");
                        put_logfmt_value(line, sizeof(line), &n, mr_strerror(error));
                }
                for (size_t i = 0; fields && fields[i] && fields[i + 1] && i < 2 * LOG_FIELDS_MAX; i += 2) {
                        put(line, sizeof(line), &n, " ");
                        put(line, sizeof(line), &n, fields[i]);
                        put(line, sizeof(line), &n, "=");
                        put_logfmt_value(line, sizeof(line), &n, fields[i + 1]);
                }
        }
        if (n > sizeof(line) - 2)
                n = sizeof(line) - 2;
        line[n++] = '\n';
        write_line(line, n);
}

static void log_to_journal(int level, int error, const char *file, int line, const char *func,
                           const char *const *fields, const char *msg)
{
        char priority[32], code_line[32], err_buf[32];
        char field_buf[LOG_FIELDS_MAX][512];
        _cleanup_free_ char *m = NULL, *code_file = NULL, *code_func = NULL;
        struct iovec iov[6 + LOG_FIELDS_MAX];
        size_t k = 0;

        if (asprintf(&m, "MESSAGE=%s", msg) < 0 || asprintf(&code_file, "CODE_FILE=%s", file) < 0 ||
            asprintf(&code_func, "CODE_FUNC=%s", func) < 0) {
                log_to_stream(level, error, fields, msg);
                return;
        }
        (void)snprintf(priority, sizeof(priority), "PRIORITY=%d", level);
        (void)snprintf(code_line, sizeof(code_line), "CODE_LINE=%d", line);
        iov[k++] = (struct iovec){ m, strlen(m) };
        iov[k++] = (struct iovec){ priority, strlen(priority) };
        iov[k++] = (struct iovec){ code_file, strlen(code_file) };
        iov[k++] = (struct iovec){ code_line, strlen(code_line) };
        iov[k++] = (struct iovec){ code_func, strlen(code_func) };
        if (error != 0) {
                (void)snprintf(err_buf, sizeof(err_buf), "ERRNO=%d", error < 0 ? -error : error);
                iov[k++] = (struct iovec){ err_buf, strlen(err_buf) };
        }
        for (size_t i = 0, f = 0; fields && fields[i] && fields[i + 1] && f < LOG_FIELDS_MAX; i += 2, f++) {
                size_t n = 0;
                /* Journal field names are upper-case letters, digits and '_'. */
                for (const char *p = fields[i]; *p && n < 64; p++)
                        field_buf[f][n++] = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
                field_buf[f][n++] = '=';
                field_buf[f][n] = 0;
                put(field_buf[f], sizeof(field_buf[f]), &n, fields[i + 1]);
                iov[k++] = (struct iovec){ field_buf[f], n };
        }
        if (sd_journal_sendv(iov, (int)k) < 0)
                log_to_stream(level, error, fields, msg);
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *const *fields,
                 const char *format, ...)
{
        int saved_errno = errno;
        char fmt[LOG_MESSAGE_MAX], msg[LOG_MESSAGE_MAX];
        va_list ap;

        level = CLAMP(level, LOG_EMERG, LOG_DEBUG);
        expand_m(fmt, sizeof(fmt), format, error);
        va_start(ap, format);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        (void)vsnprintf(msg, sizeof(msg), fmt, ap);
#pragma GCC diagnostic pop
        va_end(ap);

        if (to_journal)
                log_to_journal(level, error, file, line, func, fields, msg);
        else
                log_to_stream(level, error, fields, msg);

        errno = saved_errno;
        return error < 0 ? error : -error;
}
