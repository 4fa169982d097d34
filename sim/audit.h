/* SPDX-License-Identifier: Apache-2.0 */
/*
 * audit.h — the simulator's audit log: one JSON object per line for every
 * write, so a test can prove what a client did (and in which order).
 *
 *   {"time":"2026-11-24T03:11:03.123456Z","verb":"patch","actor":"kubectl/v1.32.0 …",
 *    "apiVersion":"v1","resource":"nodes","namespace":"","name":"n1",
 *    "resourceVersion":"42","object":{…}}
 *
 * time is simulated time (MicroTime). verb is create, update, patch,
 * update-status, delete (marked for graceful deletion or removed by a
 * client), remove (final removal by a controller), or evict.
 */
#pragma once

#include <json-c/json.h>

#include "store.h"

/*
 * Appends one record to fd (one write(2) per record, so concurrent writers
 * never interleave lines). obj borrowed, may be NULL; rv may be NULL.
 * Returns 0 or -errno; a short write is -EIO.
 */
int sim_audit_write(int fd, usec_t now, const char *verb, const char *actor, const SimKind *k, const char *ns,
                    const char *name, const char *rv, json_object *obj);
