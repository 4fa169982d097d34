/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kube-path.c — the resource table and API paths (see kube.h).
 *
 * Paths follow the layout of the API concepts doc (reference §T7):
 *
 *   core        /api/v1[/namespaces/NS]/PLURAL[/NAME[/SUB]]
 *   group       /apis/GROUP/VERSION[/namespaces/NS]/PLURAL[/NAME[/SUB]]
 *
 * Every component a caller supplies is percent-escaped (RFC 3986: all but
 * the unreserved characters), so a name can never smuggle a "/" or a "?"
 * into the path; "." and ".." are refused outright because the server would
 * (and a proxy might resolve them). Query values get the same escaping, which
 * turns the "=" and "," of selectors into %3D and %2C as client-go does.
 */
#include <stdarg.h>
#include <stdio.h>

#include "meshroll/kube.h"

const KubeResource KUBE_NODES = { "", "v1", "nodes", "Node", false };
const KubeResource KUBE_PODS = { "", "v1", "pods", "Pod", true };
const KubeResource KUBE_NAMESPACES = { "", "v1", "namespaces", "Namespace", false };
const KubeResource KUBE_SERVICES = { "", "v1", "services", "Service", true };
const KubeResource KUBE_ENDPOINTS = { "", "v1", "endpoints", "Endpoints", true };
const KubeResource KUBE_EVENTS = { "", "v1", "events", "Event", true };
const KubeResource KUBE_CONFIGMAPS = { "", "v1", "configmaps", "ConfigMap", true };
const KubeResource KUBE_DAEMONSETS = { "apps", "v1", "daemonsets", "DaemonSet", true };
const KubeResource KUBE_DEPLOYMENTS = { "apps", "v1", "deployments", "Deployment", true };
const KubeResource KUBE_REPLICASETS = { "apps", "v1", "replicasets", "ReplicaSet", true };
const KubeResource KUBE_CONTROLLERREVISIONS = { "apps", "v1", "controllerrevisions", "ControllerRevision", true };
const KubeResource KUBE_PDBS = { "policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true };
const KubeResource KUBE_LEASES = { "coordination.k8s.io", "v1", "leases", "Lease", true };
const KubeResource KUBE_MUTATINGWEBHOOKS = { "admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
                                             "MutatingWebhookConfiguration", false };
const KubeResource KUBE_CRDS = { "apiextensions.k8s.io", "v1", "customresourcedefinitions",
                                 "CustomResourceDefinition", false };
const KubeResource KUBE_EVENTS_V1 = { "events.k8s.io", "v1", "events", "Event", true };
/* Cluster-scoped: a rollout moves nodes (docs/rollout.md). */
const KubeResource KUBE_ROLLOUTS = { "meshroll.io", "v1alpha1", "rollouts", "Rollout", false };
/* Istio's routing objects, served as networking.istio.io/v1 since Istio 1.22. */
const KubeResource KUBE_DESTINATIONRULES = { "networking.istio.io", "v1", "destinationrules", "DestinationRule", true };
const KubeResource KUBE_VIRTUALSERVICES = { "networking.istio.io", "v1", "virtualservices", "VirtualService", true };

/* Paths and queries built here never exceed this; a caller's 1 MiB name is a bug, not a path. */
#define PATH_MAX_LEN (64u * 1024u)

typedef struct Buf {
        char *p;
        size_t len, alloc;
        int error;
} Buf;

static void buf_reserve(Buf *b, size_t more)
{
        if (b->error)
                return;
        if (b->len + more + 1 > PATH_MAX_LEN) {
                b->error = -EINVAL;
                return;
        }
        if (b->len + more + 1 <= b->alloc)
                return;
        size_t n = MAX(b->alloc * 2, b->len + more + 1);
        char *q = realloc(b->p, n);
        if (!q) {
                b->error = -ENOMEM;
                return;
        }
        b->p = q;
        b->alloc = n;
}

static void buf_put(Buf *b, const char *s, size_t n)
{
        buf_reserve(b, n);
        if (b->error)
                return;
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = 0;
}

static void buf_puts(Buf *b, const char *s)
{
        buf_put(b, s, strlen(s));
}

static bool unreserved(unsigned char ch)
{
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
               ch == '.' || ch == '_' || ch == '~';
}

static void buf_put_escaped(Buf *b, const char *s)
{
        static const char hex[] = "0123456789ABCDEF";
        for (; *s; s++) {
                unsigned char ch = (unsigned char)*s;
                if (unreserved(ch))
                        buf_put(b, s, 1);
                else {
                        char e[3] = { '%', hex[ch >> 4], hex[ch & 15] };
                        buf_put(b, e, 3);
                }
        }
}

/* A path component a caller gave us: non-empty, and not a dot segment. */
static bool component_ok(const char *s)
{
        return !isempty(s) && !streq(s, ".") && !streq(s, "..");
}

int kube_path(const KubeResource *res, const char *ns, const char *name, const char *subresource, char **ret)
{
        Buf b = {};

        if (!res || !ret || isempty(res->version) || isempty(res->plural))
                return -EINVAL;
        if (!res->namespaced || isempty(ns))
                ns = NULL;
        if (name && !component_ok(name))
                return -EINVAL;
        if (subresource && (!name || !component_ok(subresource)))
                return -EINVAL;
        if (ns && !component_ok(ns))
                return -EINVAL;
        if (res->namespaced && name && !ns)
                return -EINVAL;

        if (isempty(res->group))
                buf_puts(&b, "/api/");
        else {
                buf_puts(&b, "/apis/");
                buf_puts(&b, res->group);
                buf_puts(&b, "/");
        }
        buf_puts(&b, res->version);
        if (ns) {
                buf_puts(&b, "/namespaces/");
                buf_put_escaped(&b, ns);
        }
        buf_puts(&b, "/");
        buf_puts(&b, res->plural);
        if (name) {
                buf_puts(&b, "/");
                buf_put_escaped(&b, name);
        }
        if (subresource) {
                buf_puts(&b, "/");
                buf_put_escaped(&b, subresource);
        }
        if (b.error) {
                free(b.p);
                return b.error;
        }
        *ret = b.p;
        return 0;
}

int kube_path_append_query(char **path, ...)
{
        Buf b = {};
        va_list ap;
        bool first;

        if (!path || !*path)
                return -EINVAL;
        buf_puts(&b, *path);
        first = !strchr(*path, '?');

        va_start(ap, path);
        for (;;) {
                const char *key = va_arg(ap, const char *);
                if (!key)
                        break;
                const char *value = va_arg(ap, const char *);
                if (!value)
                        continue;
                buf_puts(&b, first ? "?" : "&");
                first = false;
                buf_put_escaped(&b, key);
                buf_puts(&b, "=");
                buf_put_escaped(&b, value);
        }
        va_end(ap);

        if (b.error) {
                free(b.p);
                return b.error;
        }
        free(*path);
        *path = b.p;
        return 0;
}
