/* SPDX-License-Identifier: Apache-2.0 */
/*
 * audit.c — see audit.h. Records are built as json-c objects and written
 * with a single write(2) each: the log is append-only (O_APPEND), so lines
 * from the HTTP threads and the controller thread never interleave.
 */
#include <errno.h>
#include <unistd.h>

#include "audit.h"
#include "meshroll/json-util.h"
#include "meshroll/time-util.h"

int sim_audit_write(int fd, usec_t now, const char *verb, const char *actor, const SimKind *k, const char *ns,
                    const char *name, const char *rv, json_object *obj)
{
        _cleanup_(json_object_putp) json_object *rec = NULL;
        char tbuf[KUBE_TIME_MAX], av[128];
        const char *line;
        size_t len, off = 0;

        if (fd < 0)
                return 0;
        rec = json_object_new_object();
        if (!rec)
                return -ENOMEM;
        if (mr_json_set_str(rec, "time", kube_microtime_format(now, tbuf)) < 0 ||
            mr_json_set_str(rec, "verb", verb) < 0 || mr_json_set_str(rec, "actor", strempty(actor)) < 0 ||
            mr_json_set_str(rec, "apiVersion", k ? sim_kind_api_version(k, av, sizeof(av)) : "") < 0 ||
            mr_json_set_str(rec, "resource", k ? k->resource : "") < 0 ||
            mr_json_set_str(rec, "namespace", strempty(ns)) < 0 || mr_json_set_str(rec, "name", strempty(name)) < 0 ||
            mr_json_set_str(rec, "resourceVersion", strempty(rv)) < 0)
                return -ENOMEM;
        if (obj && json_object_object_add(rec, "object", json_object_get(obj)) < 0)
                return -ENOMEM;

        line = mr_json_compact(rec);
        len = strlen(line);
        /* The record and its newline go out in one write: copy into one buffer. */
        _cleanup_free_ char *buf = malloc(len + 1);
        if (!buf)
                return -ENOMEM;
        memcpy(buf, line, len);
        buf[len++] = '\n';
        while (off < len) {
                ssize_t n = write(fd, buf + off, len - off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                off += (size_t)n;
        }
        return 0;
}
