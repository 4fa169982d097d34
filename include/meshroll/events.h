/* SPDX-License-Identifier: Apache-2.0 */
/*
 * events.h — Kubernetes Events (core/v1), written the way a controller does.
 *
 * The coordinator reports every transition as an Event on the Rollout and on
 * each Node, so `kubectl describe rollout` and `kubectl get events` tell the
 * story. An event is written exactly as client-go's tools/record writes a
 * new one (reference/kubernetes-api.md §11.4):
 *
 *   POST /api/v1/namespaces/<ns>/events
 *   {"apiVersion":"v1","kind":"Event",
 *    "metadata":{"name":"<involved name>.<hex ns timestamp>","namespace":"<ns>"},
 *    "involvedObject":{apiVersion, kind, [namespace], name, [uid], [resourceVersion]},
 *    "reason":…, "message":…, "type":"Normal"|"Warning",
 *    "source":{"component":…,"host":…}, "reportingComponent":…, "reportingInstance":…,
 *    "firstTimestamp":now, "lastTimestamp":now, "count":1, "eventTime":null}
 *
 *   - <ns> is the involved object's namespace, or "default" for a
 *     cluster-scoped object (Node, Rollout): with eventTime unset the server
 *     requires the event's namespace to equal involvedObject.namespace, and
 *     accepts "" or "default" for cluster-scoped objects (§11.3).
 *   - eventTime stays null, so the legacy validation applies (no action
 *     field, no qualified-name rule for reportingComponent).
 *   - message is cut to 1024 bytes at a UTF-8 character boundary (the
 *     events.k8s.io/v1 limit, which the same storage serves).
 *   - host / reportingInstance is this machine's host name: in a pod, the
 *     pod's name.
 *
 * Repeats are not correlated: every call creates a new Event (client-go
 * would PATCH count and lastTimestamp of an identical recent one). Callers
 * emit on transitions, not on every poll.
 *
 * Emitting is best effort. These functions never log; a failure is returned
 * and the caller decides whether it is worth a line (it rarely should stop
 * anything: an Event is a report, not state).
 */
#pragma once

#include <json-c/json.h>

#include "meshroll/kube.h"
#include "meshroll/time-util.h"

#define KUBE_EVENT_NORMAL "Normal"
#define KUBE_EVENT_WARNING "Warning"

/* Longest message sent, in bytes (longer ones are cut at a character boundary). */
#define KUBE_EVENT_MESSAGE_MAX 1024
/* Longest reason accepted (the server's limit for events with eventTime; kept always). */
#define KUBE_EVENT_REASON_MAX 128

/* The object an event is about (an ObjectReference). All strings borrowed. */
typedef struct KubeEventRef {
        const char *api_version;      /* required: "v1", "meshroll.io/v1alpha1" */
        const char *kind;             /* required: "Node", "Rollout" */
        const char *namespace;        /* NULL or "" for cluster-scoped objects */
        const char *name;             /* required */
        const char *uid;              /* optional; `kubectl describe` matches events by it */
        const char *resource_version; /* optional */
} KubeEventRef;

/* The namespace an event about ref goes to: ref's own, or "default". Borrowed. */
const char *kube_event_namespace(const KubeEventRef *ref);

/*
 * Builds the Event object described above for wall time now (µs since the
 * epoch) into *ret (owned). instance is source.host and reportingInstance
 * (NULL or "": left out). Pure: the name comes from now alone.
 * Errors: -EINVAL (missing involved apiVersion, kind or name; type not
 * Normal or Warning; reason empty or longer than KUBE_EVENT_REASON_MAX;
 * component empty), -ENOMEM.
 */
int kube_event_build(const KubeEventRef *involved, const char *type, const char *reason, const char *message,
                     const char *component, const char *instance, usec_t now, json_object **ret);

/*
 * Creates an event about involved (blocking, with the client's retries).
 * type is KUBE_EVENT_NORMAL or KUBE_EVENT_WARNING; message may be NULL;
 * component is source.component and reportingComponent ("meshroll").
 * clock: NULL for the system clock. Names are unique within the process
 * (two events in the same nanosecond get consecutive timestamps in their
 * names); should the server still hold the name (another process), the
 * create is retried once with metadata.generateName "<name>.".
 * Returns 0, the build errors above, or the client's error for the POST
 * (kube.h: -MR_EFORBIDDEN without RBAC for events, -ENOENT when the
 * namespace does not exist, -MR_EINVALID, transport errors, …).
 */
int kube_event_emit(KubeClient *c, const KubeEventRef *involved, const char *type, const char *reason,
                    const char *message, const char *component, const MrClock *clock);

/*
 * The same on the client's event loop (kube_client_attach_event): the POST
 * is started and the function returns. cb (may be NULL: fire and forget) is
 * called once from the loop with the outcome, as for kube_request_async; it
 * is not called when the call is cancelled, e.g. by kube_client_free. There
 * is no generateName retry here: a name clash reaches cb as -EEXIST.
 * Errors: the build errors above, -ENXIO (no event loop attached), -ENOMEM.
 */
int kube_event_emit_async(KubeClient *c, const KubeEventRef *involved, const char *type, const char *reason,
                          const char *message, const char *component, const MrClock *clock,
                          kube_callback_t cb, void *userdata);
