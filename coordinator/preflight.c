/* SPDX-License-Identifier: Apache-2.0 */
/*
 * preflight.c — see preflight.h for the design; docs/preflight.md for each
 * check's rules, why it matters and its fix.
 *
 * The Istio model every check shares is derived once per evaluation:
 *   revisions  istiod Deployments (label app=istiod), named by their
 *              istio.io/rev label ("default" without one, as the chart
 *              does); version from app.kubernetes.io/version, else the
 *              image tag;
 *   tags       MutatingWebhookConfigurations labelled istio.io/tag, and
 *              1.28+ tag Services (istio.io/tag), each naming its revision
 *              in istio.io/rev (shared/reference/istio.md §4.1, §4.3).
 * Webhook overlap is istioctl's IST0139 (§6.2): enumerate namespace and pod
 * label sets built from every revision and tag value seen, and report any
 * two injection webhooks that both match one of them.
 *
 * Deployment checks cover a scope: namespaces that will be restarted (the
 * sidecar phase's; all sidecar namespaces for a run without a Rollout) are
 * judged strictly, namespaces that are only drained (ztunnel phase) for
 * what an eviction does to them. System namespaces are left out.
 */
#include <stdarg.h>
#include <stdio.h>

#include "meshroll/json-util.h"
#include "meshroll/log.h"
#include "meshroll/selector.h"
#include "preflight.h"
#include "sidecar.h"
#include "spec.h"
#include "status.h"

#define AGENT_LEASE_PREFIX "meshroll-agent-"
#define LEASE_SKEW_ALLOWANCE (5 * USEC_PER_SEC) /* as gate.c */
#define MAX_NAMES_LISTED 10                     /* nodes named in one finding */
#define MAX_EVENTS 20                           /* Events per kind before the rest is counted */

const char *preflight_severity_to_string(PreflightSeverity s)
{
        static const char *const names[] = { [PREFLIGHT_INFO] = "info", [PREFLIGHT_WARNING] = "warning",
                                              [PREFLIGHT_ERROR] = "error" };
        return s < ELEMENTSOF(names) ? names[s] : "unknown";
}

PreflightReport *preflight_report_free(PreflightReport *r)
{
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n_findings; i++) {
                PreflightFinding *f = &r->findings[i];
                free(f->kind);
                free(f->namespace);
                free(f->name);
                free(f->message);
                free(f->why);
                free(f->fix);
        }
        free(r->findings);
        free(r);
        return NULL;
}

/* ---- evaluation state ------------------------------------------------------------- */

typedef struct CpRevision {
        const char *name;
        json_object *deployment; /* borrowed */
        const char *version;     /* or NULL */
} CpRevision;

typedef struct Tag {
        const char *name, *revision;
        const char *kind, *namespace, *object; /* where it is declared */
} Tag;

typedef struct Eval {
        const PreflightInput *in;
        PreflightReport *rep;
        size_t n_alloc;
        const char *check;
        CpRevision *revs;
        size_t n_revs;
        Tag *tags;
        size_t n_tags;
} Eval;

static char *strf(const char *fmt, ...) _printf_(1, 2);
static char *strf(const char *fmt, ...)
{
        va_list ap;
        char *s;
        va_start(ap, fmt);
        int r = vasprintf(&s, fmt, ap);
        va_end(ap);
        return r < 0 ? NULL : s;
}

/* Adds a finding of the running check. fix is owned (freed on failure too); why is copied. */
static int add(Eval *e, PreflightSeverity sev, bool transient, const char *kind, const char *ns, const char *name,
               const char *why, char *fix, const char *fmt, ...) _printf_(9, 10);
static int add(Eval *e, PreflightSeverity sev, bool transient, const char *kind, const char *ns, const char *name,
               const char *why, char *fix, const char *fmt, ...)
{
        _cleanup_free_ char *owned_fix = fix;
        PreflightReport *r = e->rep;
        va_list ap;

        if (!fix)
                return -ENOMEM;
        if (r->n_findings == e->n_alloc) {
                size_t n = e->n_alloc ? e->n_alloc * 2 : 16;
                PreflightFinding *p = reallocarray(r->findings, n, sizeof(*p));
                if (!p)
                        return -ENOMEM;
                r->findings = p;
                e->n_alloc = n;
        }
        PreflightFinding *f = &r->findings[r->n_findings];
        *f = (PreflightFinding){ .severity = sev, .check = e->check, .transient = transient };
        va_start(ap, fmt);
        int k = vasprintf(&f->message, fmt, ap);
        va_end(ap);
        if (k < 0)
                f->message = NULL;
        f->kind = strdup(kind);
        f->namespace = ns ? strdup(ns) : NULL;
        f->name = strdup(strempty(name));
        f->why = strdup(why);
        f->fix = TAKE_PTR(owned_fix);
        r->n_findings++; /* freed with the report even when a copy failed */
        if (!f->message || !f->kind || (ns && !f->namespace) || !f->name || !f->why)
                return -ENOMEM;
        r->count[sev]++;
        return 0;
}

static size_t len(json_object *a)
{
        return a && json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

/* Each non-null element of a JSON array (a NULL array is empty). `continue` works; `break` would not. */
#define CONCAT_(a, b) a##b
#define CONCAT(a, b) CONCAT_(a, b)
#define FOREACH_(item, array, i, n)                                                                        \
        for (size_t i = 0, n = len(array); i < n; i++)                                                     \
                for (json_object *item = json_object_array_get_idx(array, i); item; item = NULL)
#define FOREACH(item, array) FOREACH_(item, array, CONCAT(i_, __LINE__), CONCAT(n_, __LINE__))

static const char *meta(json_object *o, const char *field)
{
        return mr_json_get_str(o, "metadata", field, NULL);
}

static const char *label(json_object *o, const char *key)
{
        return mr_json_get_str(o, "metadata", "labels", key, NULL);
}

static bool strv_has(char **l, const char *s)
{
        for (char **i = l; i && *i; i++)
                if (streq(*i, s))
                        return true;
        return false;
}

/* ---- versions ---------------------------------------------------------------------- */

/* "1.25.0", "v1.25", "1.25.0-distroless" → major, minor. -EINVAL otherwise. */
static int version_parse(const char *s, long *major, long *minor)
{
        char *end;

        if (!s)
                return -EINVAL;
        if (*s == 'v')
                s++;
        if (*s < '0' || *s > '9')
                return -EINVAL;
        *major = strtol(s, &end, 10);
        if (*end != '.' || end[1] < '0' || end[1] > '9')
                return -EINVAL;
        *minor = strtol(end + 1, &end, 10);
        return 0;
}

/* The tag of an image reference ("docker.io/istio/pilot:1.25.0@sha256:…" → "1.25.0@…"), or NULL. */
static const char *image_tag(const char *image)
{
        if (!image)
                return NULL;
        const char *start = strrchr(image, '/'), *colon = NULL;
        for (const char *p = start ? start : image; *p && *p != '@'; p++)
                if (*p == ':')
                        colon = p;
        return colon ? colon + 1 : NULL;
}

/* The image of the first container that is not an injected istio-proxy, else of the first container. */
static const char *first_image(json_object *pod_spec)
{
        json_object *cs = mr_json_get(pod_spec, "containers", NULL);
        FOREACH (c, cs)
                if (!streq_ptr(mr_json_get_str(c, "name", NULL), "istio-proxy"))
                        return mr_json_get_str(c, "image", NULL);
        return len(cs) ? mr_json_get_str(json_object_array_get_idx(cs, 0), "image", NULL) : NULL;
}

/* Minor versions between a and b, or -1 when either does not parse; majors apart count as 100. */
static long minor_distance(const char *a, const char *b)
{
        long ma, ia, mb, ib;
        if (version_parse(a, &ma, &ia) < 0 || version_parse(b, &mb, &ib) < 0)
                return -1;
        if (ma != mb)
                return 100;
        return ia > ib ? ia - ib : ib - ia;
}

/* ---- the Istio model ----------------------------------------------------------------- */

static const CpRevision *revision_find(const Eval *e, const char *name)
{
        for (size_t i = 0; i < e->n_revs; i++)
                if (streq_ptr(e->revs[i].name, name))
                        return &e->revs[i];
        return NULL;
}

static const Tag *tag_find(const Eval *e, const char *name)
{
        for (size_t i = 0; i < e->n_tags; i++)
                if (streq_ptr(e->tags[i].name, name))
                        return &e->tags[i];
        return NULL;
}

static int model_build(Eval *e)
{
        const PreflightInput *in = e->in;
        size_t nd = len(in->deployments), nt = len(in->webhooks) + len(in->services);

        e->revs = calloc(nd ? nd : 1, sizeof(CpRevision));
        e->tags = calloc(nt ? nt : 1, sizeof(Tag));
        if (!e->revs || !e->tags)
                return -ENOMEM;
        FOREACH (d, in->deployments) {
                if (!streq_ptr(label(d, "app"), "istiod"))
                        continue;
                const char *rev = label(d, "istio.io/rev");
                CpRevision *r = &e->revs[e->n_revs++];
                r->name = isempty(rev) ? "default" : rev;
                r->deployment = d;
                r->version = label(d, "app.kubernetes.io/version");
                if (!r->version)
                        r->version = image_tag(first_image(mr_json_get(d, "spec", "template", "spec", NULL)));
        }
        FOREACH (w, in->webhooks) {
                const char *tag = label(w, "istio.io/tag");
                if (isempty(tag) || tag_find(e, tag))
                        continue;
                e->tags[e->n_tags++] = (Tag){ .name = tag, .revision = label(w, "istio.io/rev"),
                                              .kind = "MutatingWebhookConfiguration", .object = meta(w, "name") };
        }
        FOREACH (s, in->services) {
                const char *tag = label(s, "istio.io/tag");
                if (isempty(tag) || tag_find(e, tag))
                        continue;
                e->tags[e->n_tags++] = (Tag){ .name = tag, .revision = label(s, "istio.io/rev"), .kind = "Service",
                                              .namespace = meta(s, "namespace"), .object = meta(s, "name") };
        }
        return 0;
}

/* "1-24-0, 1-25-0" or "none" (owned; NULL on ENOMEM). */
static char *revision_names(const Eval *e, bool tags)
{
        size_t n = tags ? e->n_tags : e->n_revs;
        char *s = strdup(n ? "" : "none");
        for (size_t i = 0; s && i < n; i++) {
                char *t = strf("%s%s%s", s, i ? ", " : "", tags ? e->tags[i].name : e->revs[i].name);
                free(s);
                s = t;
        }
        return s;
}

/* The revision the ztunnel template connects to: its istio.io/rev annotation, else its XDS_ADDRESS. */
static const char *ztunnel_revision(json_object *ds, char *buf, size_t size)
{
        const char *rev = mr_json_get_str(ds, "spec", "template", "metadata", "annotations", "istio.io/rev", NULL);
        if (!rev)
                rev = mr_json_get_str(ds, "metadata", "annotations", "istio.io/rev", NULL);
        if (rev)
                return rev;
        FOREACH (c, mr_json_get(ds, "spec", "template", "spec", "containers", NULL))
                FOREACH (env, mr_json_get(c, "env", NULL)) {
                        const char *v = mr_json_get_str(env, "value", NULL);
                        if (!streq_ptr(mr_json_get_str(env, "name", NULL), "XDS_ADDRESS") || !v)
                                continue;
                        if (startswith(v, "istiod."))
                                return "default";
                        const char *r = startswith(v, "istiod-"), *dot = r ? strchr(r, '.') : NULL;
                        if (dot && (size_t)(dot - r) < size) {
                                snprintf(buf, size, "%.*s", (int)(dot - r), r);
                                return buf;
                        }
                }
        return NULL;
}

/* ---- namespaces --------------------------------------------------------------------- */

static bool ns_ambient(json_object *ns)
{
        return streq_ptr(label(ns, "istio.io/dataplane-mode"), "ambient");
}

static bool ns_sidecar(json_object *ns)
{
        return streq_ptr(label(ns, "istio-injection"), "enabled") || !isempty(label(ns, "istio.io/rev"));
}

static json_object *ns_find(const Eval *e, const char *name)
{
        FOREACH (ns, e->in->namespaces)
                if (streq_ptr(meta(ns, "name"), name))
                        return ns;
        return NULL;
}

static bool ns_system(const Eval *e, const char *name)
{
        return !name || startswith(name, "kube-") || streq_ptr(name, e->in->istio_namespace) ||
               streq_ptr(name, e->in->agent_namespace);
}

/* IST0123: istio-injection, plus istio.io/rev and an ambient data-plane mode unless injection is disabled. */
static int check_injection_labels(Eval *e)
{
        static const char why[] =
                "A namespace must choose one injection mode and one revision. With two, the pods a drain or a "
                "restart recreates land on a revision or a data-plane mode the upgrade did not plan "
                "(istioctl analyze IST0123).";

        FOREACH (ns, e->in->namespaces) {
                const char *name = meta(ns, "name"), *inj = label(ns, "istio-injection"), *rev = label(ns, "istio.io/rev");
                bool counted = !inj || streq(inj, "enabled");
                bool ambient = counted && ns_ambient(ns);
                int r = 0;

                if (streq_ptr(name, e->in->istio_namespace))
                        continue;
                rev = counted ? rev : NULL;
                if (inj && rev)
                        r = add(e, PREFLIGHT_ERROR, false, "Namespace", NULL, name, why,
                                strf("kubectl label namespace %s istio-injection-   (keep istio.io/rev=%s), or remove "
                                     "istio.io/rev",
                                     name, rev),
                                "labelled both istio-injection=%s and istio.io/rev=%s%s: istio-injection wins, the "
                                "revision label is ignored",
                                inj, rev, ambient ? " and istio.io/dataplane-mode=ambient" : "");
                else if (rev && ambient)
                        r = add(e, PREFLIGHT_ERROR, false, "Namespace", NULL, name, why,
                                strf("kubectl label namespace %s istio.io/rev-   (stay ambient; put istio.io/rev on "
                                     "waypoints and gateways), or remove istio.io/dataplane-mode for sidecars",
                                     name),
                                "ambient (istio.io/dataplane-mode=ambient) and labelled istio.io/rev=%s: new pods get "
                                "sidecars from that revision and leave ambient mode",
                                rev);
                else if (inj && ambient)
                        r = add(e, PREFLIGHT_ERROR, false, "Namespace", NULL, name, why,
                                strf("kubectl label namespace %s istio-injection-   (stay ambient), or remove "
                                     "istio.io/dataplane-mode for sidecars",
                                     name),
                                "ambient (istio.io/dataplane-mode=ambient) and labelled istio-injection=enabled: new "
                                "pods get sidecars and leave ambient mode");
                if (r < 0)
                        return r;
        }
        return 0;
}

static int check_namespace_revision(Eval *e)
{
        static const char why[] =
                "Every pod created in this namespace — each one a drain or a restart recreates — asks for a "
                "control plane that does not exist: it gets no sidecar and drops out of the mesh.";
        _cleanup_free_ char *revs = revision_names(e, false), *tags = revision_names(e, true);

        if (!revs || !tags)
                return -ENOMEM;
        FOREACH (ns, e->in->namespaces) {
                const char *name = meta(ns, "name"), *inj = label(ns, "istio-injection"), *rev = label(ns, "istio.io/rev");
                int r = 0;

                if (streq_ptr(name, e->in->istio_namespace))
                        continue;
                if (inj && !streq(inj, "enabled"))
                        continue; /* injection disabled: the revision label is moot */
                if (!isempty(rev) && !inj && !revision_find(e, rev) && !tag_find(e, rev))
                        r = add(e, PREFLIGHT_ERROR, false, "Namespace", NULL, name, why,
                                strf("kubectl label namespace %s istio.io/rev=<one of: %s%s%s> --overwrite", name, tags,
                                     e->n_tags ? ", " : "", revs),
                                "istio.io/rev=%s names no revision (revisions: %s) and no tag (tags: %s)", rev, revs,
                                tags);
                else if (inj && !tag_find(e, "default") && !revision_find(e, "default"))
                        r = add(e, PREFLIGHT_ERROR, false, "Namespace", NULL, name, why,
                                strf("create the default tag (istioctl tag set default --revision <rev>), or "
                                     "kubectl label namespace %s istio-injection- istio.io/rev=<rev>",
                                     name),
                                "istio-injection=enabled needs the default revision (a tag \"default\" or an istiod "
                                "without revision) and there is none (revisions: %s; tags: %s)",
                                revs, tags);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int check_tag_revision(Eval *e)
{
        static const char why[] =
                "Pods in namespaces using this tag are sent to a control plane that does not exist: its webhook "
                "fails (failurePolicy Fail), so the pods a drain or a restart recreates cannot be created.";
        _cleanup_free_ char *revs = revision_names(e, false);

        if (!revs)
                return -ENOMEM;
        for (size_t i = 0; i < e->n_tags; i++) {
                const Tag *t = &e->tags[i];
                int r;
                if (!isempty(t->revision) && revision_find(e, t->revision))
                        continue;
                r = add(e, PREFLIGHT_ERROR, false, t->kind, t->namespace, t->object, why,
                        strf("istioctl tag set %s --revision <one of: %s> --overwrite (or relabel %s %s istio.io/rev "
                             "and point its webhooks at that revision's istiod Service)",
                             t->name, revs, t->kind, t->object),
                        "revision tag %s points at revision \"%s\", which has no istiod Deployment (revisions: %s)",
                        t->name, strempty(t->revision), revs);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- webhooks (IST0139) ---------------------------------------------------------------- */

typedef struct Hook {
        json_object *config;         /* the MutatingWebhookConfiguration (borrowed) */
        const char *name;            /* webhooks[].name */
        MrSelector *ns_sel, *obj_sel;
} Hook;

static void hooks_free(Hook *h, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                mr_selector_free(h[i].ns_sel);
                mr_selector_free(h[i].obj_sel);
        }
        free(h);
}

/* A webhook's selector; absent means everything (admission webhooks' default). */
static int hook_selector(json_object *w, const char *field, MrSelector **ret)
{
        json_object *s = mr_json_get(w, field, NULL);
        return s ? mr_selector_from_json(s, ret, NULL) : mr_selector_parse(NULL, ret, NULL);
}

static bool istio_webhook_config(json_object *mwc)
{
        if (label(mwc, "istio.io/rev"))
                return true;
        FOREACH (w, mr_json_get(mwc, "webhooks", NULL))
                if (endswith(strempty(mr_json_get_str(w, "name", NULL)), "istio.io"))
                        return true;
        return false;
}

static int values_add(json_object *set, const char *v)
{
        if (isempty(v) || json_object_object_get_ex(set, v, NULL))
                return 0;
        return json_object_object_add(set, v, NULL) < 0 ? -ENOMEM : 0;
}

/* Every revision or tag value the Istio webhooks name: labels and istio.io/rev selector values. */
static int webhook_values(json_object *w, json_object *set)
{
        static const char *const fields[] = { "namespaceSelector", "objectSelector" };
        int r = 0;
        for (size_t f = 0; f < ELEMENTSOF(fields) && r >= 0; f++) {
                r = values_add(set, mr_json_get_str(w, fields[f], "matchLabels", "istio.io/rev", NULL));
                FOREACH (x, mr_json_get(w, fields[f], "matchExpressions", NULL)) {
                        if (!streq_ptr(mr_json_get_str(x, "key", NULL), "istio.io/rev"))
                                continue;
                        FOREACH (v, mr_json_get(x, "values", NULL))
                                if (r >= 0)
                                        r = values_add(set, json_object_get_string(v));
                }
        }
        return r;
}

static json_object *label_set(const char *k1, const char *v1, const char *rev)
{
        json_object *o = json_object_new_object();
        if (o && k1 && mr_json_set_str(o, k1, v1) < 0)
                goto fail;
        if (o && rev && mr_json_set_str(o, "istio.io/rev", rev) < 0)
                goto fail;
        return o;
fail:
        json_object_put(o);
        return NULL;
}

/* {}, {k=a}, {k=b}, each also with istio.io/rev=<v> for every value: istioctl's enumeration. */
static json_object *label_sets(const char *key, const char *a, const char *b, json_object *values)
{
        json_object *sets = json_object_new_array();
        const char *k[] = { NULL, key, key }, *v[] = { NULL, a, b };
        if (!sets)
                return NULL;
        for (size_t i = 0; i < 3; i++) {
                json_object *s = label_set(k[i], v[i], NULL);
                if (!s || json_object_array_add(sets, s) < 0)
                        goto fail;
                json_object_object_foreach(values, rev, unused)
                {
                        (void)unused;
                        s = label_set(k[i], v[i], rev);
                        if (!s || json_object_array_add(sets, s) < 0)
                                goto fail;
                }
        }
        return sets;
fail:
        json_object_put(sets);
        return NULL;
}

static bool service_exists(const Eval *e, const char *ns, const char *name)
{
        FOREACH (s, e->in->services)
                if (streq_ptr(meta(s, "name"), name) && streq_ptr(meta(s, "namespace"), ns))
                        return true;
        return false;
}

static int check_webhook_overlap(Eval *e)
{
        static const char why_overlap[] =
                "Two injection webhooks match the same pods: each pod is injected twice, by two revisions, or "
                "by whichever answers last (istioctl analyze IST0139). Moving a tag or a label then does not "
                "decide which revision a restarted pod gets.";
        static const char why_service[] =
                "The webhook calls a Service that does not exist: with failurePolicy Fail every pod it matches "
                "fails to be created, so drained and restarted pods never come back.";
        _cleanup_(json_object_putp) json_object *values = json_object_new_object(), *reported = json_object_new_object();
        _cleanup_(json_object_putp) json_object *ns_sets = NULL, *obj_sets = NULL;
        Hook *hooks = NULL;
        size_t n = 0, cap = 0;
        int r = 0;

        if (!values || !reported)
                return -ENOMEM;
        FOREACH (mwc, e->in->webhooks) {
                if (!istio_webhook_config(mwc))
                        continue;
                if ((r = values_add(values, label(mwc, "istio.io/rev"))) < 0 ||
                    (r = values_add(values, label(mwc, "istio.io/tag"))) < 0)
                        goto out;
                FOREACH (w, mr_json_get(mwc, "webhooks", NULL)) {
                        const char *svc = mr_json_get_str(w, "clientConfig", "service", "name", NULL),
                                   *svc_ns = mr_json_get_str(w, "clientConfig", "service", "namespace", NULL);
                        if (svc && !service_exists(e, svc_ns, svc) &&
                            (r = add(e, PREFLIGHT_ERROR, false, "MutatingWebhookConfiguration", NULL, meta(mwc, "name"),
                                     why_service,
                                     strf("point the webhook at an existing istiod Service, or delete "
                                          "MutatingWebhookConfiguration %s if its revision is gone",
                                          meta(mwc, "name")),
                                     "webhook %s calls Service %s/%s, which does not exist",
                                     strna(mr_json_get_str(w, "name", NULL)), strna(svc_ns), svc)) < 0)
                                goto out;
                        if ((r = webhook_values(w, values)) < 0)
                                goto out;
                        if (n == cap) {
                                size_t c = cap ? cap * 2 : 8;
                                Hook *p = reallocarray(hooks, c, sizeof(Hook));
                                if (!p) {
                                        r = -ENOMEM;
                                        goto out;
                                }
                                hooks = p;
                                cap = c;
                        }
                        hooks[n] = (Hook){ .config = mwc, .name = strna(mr_json_get_str(w, "name", NULL)) };
                        n++;
                        if (hook_selector(w, "namespaceSelector", &hooks[n - 1].ns_sel) < 0 ||
                            hook_selector(w, "objectSelector", &hooks[n - 1].obj_sel) < 0) {
                                /* An invalid selector: the API server would not have stored it; match nothing. */
                                hooks[n - 1].ns_sel = mr_selector_free(hooks[n - 1].ns_sel);
                                hooks[n - 1].obj_sel = mr_selector_free(hooks[n - 1].obj_sel);
                        }
                }
        }
        ns_sets = label_sets("istio-injection", "enabled", "disabled", values);
        obj_sets = label_sets("sidecar.istio.io/inject", "true", "false", values);
        if (!ns_sets || !obj_sets) {
                r = -ENOMEM;
                goto out;
        }
        FOREACH (nl, ns_sets)
                FOREACH (ol, obj_sets) {
                        const Hook *first = NULL;
                        for (size_t i = 0; i < n; i++) {
                                const Hook *h = &hooks[i];
                                if (!mr_selector_matches(h->ns_sel, nl) || !mr_selector_matches(h->obj_sel, ol))
                                        continue;
                                if (!first) {
                                        first = h;
                                        continue;
                                }
                                _cleanup_free_ char *key = strf("%s/%s|%s/%s", meta(first->config, "name"), first->name,
                                                                meta(h->config, "name"), h->name);
                                if (!key) {
                                        r = -ENOMEM;
                                        goto out;
                                }
                                if (json_object_object_get_ex(reported, key, NULL))
                                        continue;
                                if (json_object_object_add(reported, key, NULL) < 0) {
                                        r = -ENOMEM;
                                        goto out;
                                }
                                r = add(e, PREFLIGHT_ERROR, false, "MutatingWebhookConfiguration", NULL,
                                        meta(h->config, "name"), why_overlap,
                                        strf("make the selectors exclusive (a tag and a revision must not share a "
                                             "name; only the default tag selects istio-injection=enabled), or delete "
                                             "the stale MutatingWebhookConfiguration"),
                                        "webhook %s overlaps webhook %s of %s: both inject pods with namespace labels "
                                        "%s and pod labels %s",
                                        h->name, first->name, meta(first->config, "name"), mr_json_compact(nl),
                                        mr_json_compact(ol));
                                if (r < 0)
                                        goto out;
                        }
                }
out:
        hooks_free(hooks, n);
        return r;
}

/* ---- control plane ---------------------------------------------------------------------- */

static int check_one_target(Eval *e, const char *rev, const char *wanted_by)
{
        static const char why_missing[] = "The rollout moves workloads to this revision: without its istiod, "
                                          "proxies moved there get no configuration and certificates.";
        static const char why_ready[] = "Proxies moved to a control plane that is not Ready cannot fetch "
                                        "configuration or certificates; the rollout waits until it is.";
        _cleanup_free_ char *revs = revision_names(e, false);
        const CpRevision *r = revision_find(e, rev);
        int64_t want = 1, ready = 0, avail = 0, gen = 0, seen = 0;

        if (!revs)
                return -ENOMEM;
        if (!r) {
                const Tag *t = tag_find(e, rev);
                if (t)
                        r = revision_find(e, t->revision);
                if (!r)
                        return add(e, PREFLIGHT_ERROR, false, "Namespace", NULL, e->in->istio_namespace, why_missing,
                                   strf("install istiod for revision %s (helm install istiod-%s istio/istiod --set "
                                        "revision=%s) before the rollout",
                                        rev, rev, rev),
                                   "target revision %s (%s) has no istiod Deployment (revisions: %s)", rev, wanted_by,
                                   revs);
        }
        json_object *d = r->deployment;
        (void)mr_json_get_int(&want, d, "spec", "replicas", NULL);
        (void)mr_json_get_int(&ready, d, "status", "readyReplicas", NULL);
        (void)mr_json_get_int(&avail, d, "status", "availableReplicas", NULL);
        (void)mr_json_get_int(&gen, d, "metadata", "generation", NULL);
        (void)mr_json_get_int(&seen, d, "status", "observedGeneration", NULL);
        if (want > 0 && ready >= want && avail >= want && seen >= gen)
                return 0;
        return add(e, PREFLIGHT_ERROR, true, "Deployment", meta(d, "namespace"), meta(d, "name"), why_ready,
                   strf("kubectl -n %s rollout status deployment %s; kubectl -n %s describe pods -l "
                        "app=istiod,istio.io/rev=%s",
                        meta(d, "namespace"), meta(d, "name"), meta(d, "namespace"), r->name),
                   "target revision %s (%s) is not Ready: %lld of %lld replicas ready, %lld available", r->name,
                   wanted_by, (long long)ready, (long long)want, (long long)avail);
}

static int check_target_revision(Eval *e)
{
        const PreflightInput *in = e->in;
        char buf[128];
        int r;

        for (char **t = in->target_revisions; t && *t; t++)
                if ((r = check_one_target(e, *t, "the sidecar phase")) < 0)
                        return r;
        if (!in->ztunnel_phase || !in->ztunnel)
                return 0;
        const char *zrev = ztunnel_revision(in->ztunnel, buf, sizeof(buf));
        if (!zrev)
                return add(e, PREFLIGHT_INFO, false, "DaemonSet", meta(in->ztunnel, "namespace"), meta(in->ztunnel, "name"),
                           "The control plane the new ztunnel will use could not be checked.",
                           strf("set the istio.io/rev annotation (the chart's `revision` value) on the template"),
                           "the ztunnel template names no revision (annotation istio.io/rev or XDS_ADDRESS)");
        if (strv_has(in->target_revisions, zrev))
                return 0;
        return check_one_target(e, zrev, "the ztunnel template's");
}

static int check_version_skew(Eval *e)
{
        static const char why_ztunnel[] =
                "ztunnel is replaced in place, node by node, so old and new ztunnels carry traffic to each other "
                "for the whole rollout; Istio supports one minor version of skew, and in-place upgrades may not "
                "skip a minor.";
        static const char why_cp[] = "ztunnel and istio-cni 1.x work with control plane 1.x and 1.x+1: the "
                                     "control plane must be upgraded first, and by at most one minor.";
        static const char why_rev[] = "While namespaces move, proxies of both revisions run side by side and "
                                      "talk to each other; Istio tests one minor version of skew between them.";
        const PreflightInput *in = e->in;
        char buf[128];
        int r;

        if (in->ztunnel_phase && in->ztunnel) {
                const char *ns = meta(in->ztunnel, "namespace"), *name = meta(in->ztunnel, "name");
                const char *want = image_tag(first_image(mr_json_get(in->ztunnel, "spec", "template", "spec", NULL)));
                _cleanup_(json_object_putp) json_object *seen = json_object_new_object();
                if (!seen)
                        return -ENOMEM;
                FOREACH (p, in->ztunnel_pods) {
                        const char *have = image_tag(first_image(mr_json_get(p, "spec", NULL)));
                        if (!have || json_object_object_get_ex(seen, have, NULL) || minor_distance(have, want) <= 1)
                                continue;
                        if (json_object_object_add(seen, have, NULL) < 0)
                                return -ENOMEM;
                        r = add(e, PREFLIGHT_ERROR, false, "DaemonSet", ns, name, why_ztunnel,
                                strf("upgrade through each minor version in turn (one Rollout per minor)"),
                                "ztunnel pods run %s and the template %s: more than one minor version apart", have,
                                want);
                        if (r < 0)
                                return r;
                }
                const char *zrev = ztunnel_revision(in->ztunnel, buf, sizeof(buf));
                const Tag *t = zrev ? tag_find(e, zrev) : NULL;
                const CpRevision *cp = revision_find(e, t ? t->revision : zrev);
                long d = cp ? minor_distance(cp->version, want) : -1;
                long zma, zmi, cma, cmi;
                if (d >= 0 && version_parse(want, &zma, &zmi) == 0 && version_parse(cp->version, &cma, &cmi) == 0 &&
                    (zma > cma || (zma == cma && zmi > cmi) || d > 1)) {
                        /* Out of order by one minor is unsupported but usually works: a warning. */
                        r = add(e, d > 1 ? PREFLIGHT_ERROR : PREFLIGHT_WARNING, false, "DaemonSet", ns, name, why_cp,
                                strf("upgrade the control plane first, to %s's minor version or one above it", want),
                                "the new ztunnel %s and its control plane %s (%s) are %s", want, cp->name, cp->version,
                                d > 1 ? "more than one minor version apart" : "out of order: ztunnel is newer");
                        if (r < 0)
                                return r;
                }
        }
        for (char **t = in->target_revisions; t && *t; t++) {
                const CpRevision *to = revision_find(e, *t);
                for (size_t i = 0; to && i < e->n_revs; i++) {
                        const CpRevision *from = &e->revs[i];
                        if (from == to || minor_distance(from->version, to->version) <= 1)
                                continue;
                        r = add(e, PREFLIGHT_WARNING, false, "Deployment", meta(from->deployment, "namespace"),
                                meta(from->deployment, "name"), why_rev,
                                strf("move through an intermediate revision, or make sure no workload of revision %s "
                                     "talks to one on %s during the move",
                                     from->name, to->name),
                                "revision %s (%s) and the target %s (%s) are more than one minor version apart",
                                from->name, strna(from->version), to->name, strna(to->version));
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

/* ---- ztunnel and agents --------------------------------------------------------------------- */

static int check_ztunnel_strategy(Eval *e)
{
        const PreflightInput *in = e->in;

        if (!in->ztunnel_phase)
                return 0;
        if (!in->ztunnel)
                return add(e, in->ztunnel_optional ? PREFLIGHT_INFO : PREFLIGHT_ERROR, false, "DaemonSet", NULL,
                           in->ztunnel_ref, "meshroll replaces ztunnel node by node; there is nothing to replace.",
                           strf("name the DaemonSet in spec.target (namespace, daemonSet)"),
                           "no ztunnel DaemonSet %s%s", in->ztunnel_ref,
                           in->ztunnel_optional ? ": the ztunnel and agent checks are skipped" : "");
        const char *type = mr_json_get_str(in->ztunnel, "spec", "updateStrategy", "type", NULL);
        if (streq_ptr(type, "OnDelete"))
                return 0;
        const char *ns = meta(in->ztunnel, "namespace"), *name = meta(in->ztunnel, "name");
        return add(e, PREFLIGHT_ERROR, false, "DaemonSet", ns, name,
                   "Under RollingUpdate the DaemonSet controller replaces ztunnel on every node by itself, without "
                   "a drain, resetting every connection through it; meshroll needs OnDelete to choose where and "
                   "when.",
                   strf("kubectl -n %s patch daemonset %s -p '{\"spec\":{\"updateStrategy\":{\"type\":\"OnDelete\"}}}' "
                        "(before changing its image or revision)",
                        ns, name),
                   "updateStrategy is %s, not OnDelete", type ? type : "RollingUpdate (the default)");
}

static json_object *node_find(const Eval *e, const char *name)
{
        FOREACH (n, e->in->nodes)
                if (streq_ptr(meta(n, "name"), name))
                        return n;
        return NULL;
}

static json_object *lease_find(const Eval *e, const char *node)
{
        FOREACH (l, e->in->leases) {
                const char *n = startswith(strempty(meta(l, "name")), AGENT_LEASE_PREFIX);
                if (n && streq(n, node))
                        return l;
        }
        return NULL;
}

static bool lease_fresh(json_object *lease, usec_t now)
{
        const char *renew = mr_json_get_str(lease, "spec", "renewTime", NULL);
        int64_t duration = 0;
        usec_t renewed;
        return renew && kube_time_parse(renew, &renewed) == 0 &&
               mr_json_get_int(&duration, lease, "spec", "leaseDurationSeconds", NULL) == 0 && duration > 0 &&
               renewed + (usec_t)duration * USEC_PER_SEC + LEASE_SKEW_ALLOWANCE >= now;
}

static int agents_finding(Eval *e, json_object *names, unsigned total, bool stale)
{
        size_t n = len(names);
        _cleanup_free_ char *list = strdup("");

        if (n == 0)
                return 0;
        for (size_t i = 0; list && i < MIN(n, (size_t)MAX_NAMES_LISTED); i++) {
                char *t = strf("%s%s%s", list, i ? ", " : "", json_object_get_string(json_object_array_get_idx(names, i)));
                free(list);
                list = t;
        }
        if (!list)
                return -ENOMEM;
        return add(e, e->in->gate_blocks ? PREFLIGHT_ERROR : PREFLIGHT_WARNING, true, "Node", NULL,
                   json_object_get_string(json_object_array_get_idx(names, 0)),
                   "The connection gate waits for each drained node's agent to report its long-lived "
                   "connections; without a fresh report it times out, then pauses or rolls back the rollout.",
                   strf("run meshroll-agent on these nodes (manifests/: the agent DaemonSet) and check its logs; "
                        "or set spec.connectionGate.onTimeout: proceed to accept the resets"),
                   "%zu of %u ztunnel nodes %s (Lease %s/%s<node>): %s%s", n, total,
                   stale ? "have a stale agent report" : "have no agent report", e->in->agent_namespace,
                   AGENT_LEASE_PREFIX, list, n > MAX_NAMES_LISTED ? ", …" : "");
}

static int by_string(const void *a, const void *b)
{
        return strcmp(json_object_get_string(*(json_object *const *)a), json_object_get_string(*(json_object *const *)b));
}

static int check_agents(Eval *e)
{
        const PreflightInput *in = e->in;
        _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
        _cleanup_(json_object_putp) json_object *seen = json_object_new_object(), *missing = json_object_new_array(),
                                                *stale = json_object_new_array();
        unsigned total = 0;
        int r;

        if (!in->ztunnel_phase || !in->ztunnel)
                return 0;
        if (!seen || !missing || !stale)
                return -ENOMEM;
        if (in->node_selector && mr_selector_parse(in->node_selector, &sel, NULL) < 0)
                return 0; /* the spec's parser reports a bad selector */
        FOREACH (p, in->ztunnel_pods) {
                const char *node = mr_json_get_str(p, "spec", "nodeName", NULL);
                if (isempty(node) || json_object_object_get_ex(seen, node, NULL))
                        continue;
                if (json_object_object_add(seen, node, NULL) < 0)
                        return -ENOMEM;
                if (sel && !mr_selector_matches(sel, mr_json_get(node_find(e, node), "metadata", "labels", NULL)))
                        continue;
                total++;
                json_object *lease = lease_find(e, node);
                json_object *to = !lease ? missing : !lease_fresh(lease, in->now) ? stale : NULL;
                if (to && json_object_array_add(to, json_object_new_string(node)) < 0)
                        return -ENOMEM;
        }
        json_object_array_sort(missing, by_string);
        json_object_array_sort(stale, by_string);
        if ((r = agents_finding(e, missing, total, false)) < 0)
                return r;
        return agents_finding(e, stale, total, true);
}

/* ---- PodDisruptionBudgets ------------------------------------------------------------------------ */

/* An IntOrString scaled against total: percentages round up (round_up) or down, as the controllers do. */
static int int_or_percent(json_object *v, int64_t total, bool round_up, int64_t *ret)
{
        if (!v)
                return -ENOENT;
        if (json_object_is_type(v, json_type_int)) {
                *ret = json_object_get_int64(v);
                return 0;
        }
        const char *s = json_object_get_string(v);
        char *end;
        errno = 0;
        long long p = strtoll(strempty(s), &end, 10);
        if (!json_object_is_type(v, json_type_string) || errno || end == s || !streq(end, "%") || p < 0)
                return -EINVAL;
        *ret = round_up ? (p * total + 99) / 100 : p * total / 100;
        return 0;
}

static bool pdb_matches(json_object *pdb, json_object *deployment)
{
        _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
        json_object *s = mr_json_get(pdb, "spec", "selector", NULL);
        if (!s || !streq_ptr(meta(pdb, "namespace"), meta(deployment, "namespace")))
                return false; /* policy/v1: a null selector matches nothing */
        if (mr_selector_from_json(s, &sel, NULL) < 0)
                return false;
        return mr_selector_matches(sel, mr_json_get(deployment, "spec", "template", "metadata", "labels", NULL));
}

static int64_t replicas(json_object *d)
{
        int64_t n = 1;
        (void)mr_json_get_int(&n, d, "spec", "replicas", NULL);
        return n;
}

/* The pods a PDB expects: status.expectedPods, else the replicas of the Deployments it selects. */
static int64_t pdb_expected(const Eval *e, json_object *pdb)
{
        int64_t n = 0;
        if (mr_json_get_int(&n, pdb, "status", "expectedPods", NULL) == 0 && n > 0)
                return n;
        n = 0;
        FOREACH (d, e->in->deployments)
                if (pdb_matches(pdb, d))
                        n += replicas(d);
        return n;
}

/* Why pdb can never allow an eviction of its expected pods, into buf; false when it can. */
static bool pdb_impossible(const Eval *e, json_object *pdb, char *buf, size_t size)
{
        json_object *min = mr_json_get(pdb, "spec", "minAvailable", NULL), *max = mr_json_get(pdb, "spec", "maxUnavailable", NULL);
        int64_t expected = pdb_expected(e, pdb), v;

        if (expected <= 0)
                return false;
        if (min && int_or_percent(min, expected, true, &v) == 0 && v >= expected) {
                snprintf(buf, size, "minAvailable %s needs %lld of its %lld pods available: no pod may ever be evicted",
                         json_object_get_string(min), (long long)v, (long long)expected);
                return true;
        }
        if (max && int_or_percent(max, expected, true, &v) == 0 && v <= 0) {
                snprintf(buf, size, "maxUnavailable %s: no pod may ever be evicted", json_object_get_string(max));
                return true;
        }
        return false;
}

static int check_pdb_impossible(Eval *e)
{
        static const char why[] = "A drain evicts pods through the Eviction API, which honours PodDisruptionBudgets: "
                                  "a budget that never allows a disruption blocks the drain until its timeout, and the "
                                  "rollout pauses on that node group.";
        char buf[256];
        int r;

        if (!e->in->ztunnel_phase)
                return 0;
        FOREACH (pdb, e->in->pdbs) {
                if (!pdb_impossible(e, pdb, buf, sizeof(buf)))
                        continue;
                r = add(e, PREFLIGHT_ERROR, false, "PodDisruptionBudget", meta(pdb, "namespace"), meta(pdb, "name"), why,
                        strf("allow at least one disruption: kubectl -n %s patch pdb %s --type merge -p "
                             "'{\"spec\":{\"maxUnavailable\":1,\"minAvailable\":null}}', or scale the workload up",
                             meta(pdb, "namespace"), meta(pdb, "name")),
                        "%s", buf);
                if (r < 0)
                        return r;
        }
        /* The Eviction API refuses (500) a pod that more than one budget selects. */
        FOREACH (d, e->in->deployments) {
                const char *first = NULL, *second = NULL;
                FOREACH (pdb, e->in->pdbs)
                        if (pdb_matches(pdb, d)) {
                                if (!first)
                                        first = meta(pdb, "name");
                                else if (!second)
                                        second = meta(pdb, "name");
                        }
                if (!second || replicas(d) <= 0)
                        continue;
                r = add(e, PREFLIGHT_ERROR, false, "Deployment", meta(d, "namespace"), meta(d, "name"), why,
                        strf("keep one PodDisruptionBudget for these pods: kubectl -n %s delete pdb %s (or narrow its "
                             "selector)",
                             meta(d, "namespace"), second),
                        "its pods are selected by PodDisruptionBudgets %s and %s: the Eviction API refuses pods with "
                        "more than one",
                        first, second);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int check_pdb_blocking(Eval *e)
{
        char buf[256];
        int r;

        if (!e->in->ztunnel_phase)
                return 0;
        FOREACH (pdb, e->in->pdbs) {
                int64_t allowed, healthy = 0, desired = 0;
                if (pdb_expected(e, pdb) <= 0 || pdb_impossible(e, pdb, buf, sizeof(buf)) ||
                    mr_json_get_int(&allowed, pdb, "status", "disruptionsAllowed", NULL) < 0 || allowed > 0)
                        continue;
                (void)mr_json_get_int(&healthy, pdb, "status", "currentHealthy", NULL);
                (void)mr_json_get_int(&desired, pdb, "status", "desiredHealthy", NULL);
                r = add(e, PREFLIGHT_ERROR, true, "PodDisruptionBudget", meta(pdb, "namespace"), meta(pdb, "name"),
                        "A drain now would wait on this budget: evictions of its pods are refused (429) until "
                        "enough of them are healthy again.",
                        strf("kubectl -n %s get pods -l <the budget's selector>: make the unhealthy pods Ready (or "
                             "scale up) before the rollout",
                             meta(pdb, "namespace")),
                        "allows no disruption right now: %lld healthy, %lld required", (long long)healthy,
                        (long long)desired);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- Deployments -------------------------------------------------------------------------------- */

enum { SCOPE_NONE, SCOPE_DRAINED, SCOPE_RESTARTED };

static int scope(const Eval *e, json_object *d)
{
        const char *ns = meta(d, "namespace");
        if (ns_system(e, ns) || replicas(d) <= 0)
                return SCOPE_NONE;
        if (strv_has(e->in->restart_namespaces, ns))
                return SCOPE_RESTARTED;
        if (e->in->restart_mesh) {
                json_object *o = ns_find(e, ns);
                if (o && ns_sidecar(o))
                        return SCOPE_RESTARTED;
        }
        return e->in->ztunnel_phase ? SCOPE_DRAINED : SCOPE_NONE;
}

/* maxSurge and maxUnavailable as the Deployment controller resolves them (surge up, unavailable down). */
static void strategy(json_object *d, bool *ret_recreate, int64_t *ret_surge, int64_t *ret_unavailable)
{
        json_object *ru = mr_json_get(d, "spec", "strategy", "rollingUpdate", NULL);
        json_object *def = json_object_new_string("25%");
        int64_t n = replicas(d);

        *ret_recreate = streq_ptr(mr_json_get_str(d, "spec", "strategy", "type", NULL), "Recreate");
        if (int_or_percent(mr_json_get(ru, "maxSurge", NULL), n, true, ret_surge) < 0 &&
            int_or_percent(def, n, true, ret_surge) < 0)
                *ret_surge = 1;
        if (int_or_percent(mr_json_get(ru, "maxUnavailable", NULL), n, false, ret_unavailable) < 0 &&
            int_or_percent(def, n, false, ret_unavailable) < 0)
                *ret_unavailable = 0;
        json_object_put(def);
}

static bool has_readiness_probe(json_object *d)
{
        FOREACH (c, mr_json_get(d, "spec", "template", "spec", "containers", NULL))
                if (!streq_ptr(mr_json_get_str(c, "name", NULL), "istio-proxy") && mr_json_get(c, "readinessProbe", NULL))
                        return true;
        return false;
}

static int check_single_replica(Eval *e)
{
        int r;
        FOREACH (d, e->in->deployments) {
                int s = scope(e, d);
                bool recreate;
                int64_t surge, unavailable;
                if (s == SCOPE_NONE || replicas(d) != 1)
                        continue;
                strategy(d, &recreate, &surge, &unavailable);
                bool outage = s == SCOPE_RESTARTED && (recreate || surge == 0 || !has_readiness_probe(d));
                r = add(e, outage ? PREFLIGHT_ERROR : PREFLIGHT_WARNING, false, "Deployment", meta(d, "namespace"),
                        meta(d, "name"),
                        s == SCOPE_RESTARTED
                                ? "Its namespace will be restarted. With one replica, its connections are cut and, "
                                  "unless a surge pod is Ready first, nothing serves while the new pod starts."
                                : "A drain evicts the only pod: nothing serves until its replacement is scheduled "
                                  "elsewhere and Ready.",
                        strf("kubectl -n %s scale deployment %s --replicas=2 (and a PodDisruptionBudget "
                             "maxUnavailable: 1)",
                             meta(d, "namespace"), meta(d, "name")),
                        "runs a single replica%s", outage ? (recreate           ? " with strategy Recreate"
                                                             : surge == 0       ? " with maxSurge 0"
                                                                                : " without a readiness probe")
                                                          : "");
                if (r < 0)
                        return r;
        }
        return 0;
}

static int check_rolling_update(Eval *e)
{
        int r;
        FOREACH (d, e->in->deployments) {
                bool recreate;
                int64_t surge, unavailable;
                if (scope(e, d) != SCOPE_RESTARTED)
                        continue;
                strategy(d, &recreate, &surge, &unavailable);
                if (!recreate && (surge > 0 || unavailable > 0))
                        continue;
                r = add(e, PREFLIGHT_ERROR, false, "Deployment", meta(d, "namespace"), meta(d, "name"),
                        "Its namespace will be restarted. Recreate stops every pod before starting new ones; with "
                        "maxSurge and maxUnavailable both 0 the controller falls back to taking a pod down before "
                        "its replacement is up.",
                        strf("kubectl -n %s patch deployment %s -p "
                             "'{\"spec\":{\"strategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"maxSurge\":1,"
                             "\"maxUnavailable\":0}}}}'",
                             meta(d, "namespace"), meta(d, "name")),
                        recreate ? "strategy Recreate: a restart stops every pod first"
                                 : "maxSurge and maxUnavailable both resolve to 0 for %lld replicas",
                        (long long)replicas(d));
                if (r < 0)
                        return r;
        }
        return 0;
}

static int check_readiness_probe(Eval *e)
{
        int r;
        FOREACH (d, e->in->deployments) {
                int s = scope(e, d);
                if (s == SCOPE_NONE || has_readiness_probe(d))
                        continue;
                r = add(e, s == SCOPE_RESTARTED ? PREFLIGHT_ERROR : PREFLIGHT_WARNING, false, "Deployment",
                        meta(d, "namespace"), meta(d, "name"),
                        "Without a readiness probe a new pod counts as Ready the moment it starts: a restart or a "
                        "drain moves on, and sends traffic, before the application serves.",
                        strf("add a readinessProbe to the application containers of deployment %s/%s",
                             meta(d, "namespace"), meta(d, "name")),
                        "no container has a readiness probe");
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- evaluation ------------------------------------------------------------------------------- */

static const struct {
        const char *name;
        int (*run)(Eval *e);
} checks[] = {
        { "injection-labels", check_injection_labels },
        { "namespace-revision", check_namespace_revision },
        { "tag-revision", check_tag_revision },
        { "webhook-overlap", check_webhook_overlap },
        { "target-revision", check_target_revision },
        { "version-skew", check_version_skew },
        { "ztunnel-strategy", check_ztunnel_strategy },
        { "agents", check_agents },
        { "pdb-impossible", check_pdb_impossible },
        { "pdb-blocking", check_pdb_blocking },
        { "single-replica", check_single_replica },
        { "rolling-update", check_rolling_update },
        { "readiness-probe", check_readiness_probe },
};

const char *const *preflight_check_names(void)
{
        static const char *names[ELEMENTSOF(checks) + 1];
        for (size_t i = 0; i < ELEMENTSOF(checks); i++)
                names[i] = checks[i].name;
        return names;
}

/* Errors first, then warnings, then info; otherwise in the order found (stable). */
static int sort_findings(PreflightReport *r)
{
        PreflightFinding *sorted = calloc(r->n_findings ? r->n_findings : 1, sizeof(*sorted));
        size_t n = 0;
        if (!sorted)
                return -ENOMEM;
        for (int s = _PREFLIGHT_SEVERITY_MAX - 1; s >= 0; s--)
                for (size_t i = 0; i < r->n_findings; i++)
                        if ((int)r->findings[i].severity == s)
                                sorted[n++] = r->findings[i];
        free(r->findings);
        r->findings = sorted;
        return 0;
}

int preflight_evaluate(const PreflightInput *in, char *const *skip, PreflightReport **ret, MrError *err)
{
        _cleanup_(preflight_report_freep) PreflightReport *rep = NULL;
        Eval e = { .in = in };
        int r;

        for (char *const *s = skip; s && *s; s++) {
                bool known = false;
                for (size_t i = 0; i < ELEMENTSOF(checks); i++)
                        known = known || streq(*s, checks[i].name);
                if (!known)
                        return mr_error_set(err, -EINVAL,
                                            "unknown preflight check \"%s\" to skip (checks: injection-labels, "
                                            "namespace-revision, tag-revision, webhook-overlap, target-revision, "
                                            "version-skew, ztunnel-strategy, agents, pdb-impossible, pdb-blocking, "
                                            "single-replica, rolling-update, readiness-probe)",
                                            *s);
        }
        rep = calloc(1, sizeof(*rep));
        if (!rep)
                return mr_error_set(err, -ENOMEM, "out of memory");
        e.rep = rep;
        r = model_build(&e);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(checks); i++) {
                if (strv_has((char **)skip, checks[i].name))
                        continue;
                e.check = checks[i].name;
                r = checks[i].run(&e);
                rep->n_checks++;
        }
        free(e.revs);
        free(e.tags);
        if (r >= 0)
                r = sort_findings(rep);
        if (r < 0)
                return mr_error_set(err, r, "preflight: out of memory");
        *ret = TAKE_PTR(rep);
        return 0;
}

/* ---- output ------------------------------------------------------------------------------------- */

json_object *preflight_report_to_json(const PreflightReport *r)
{
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *summary = json_object_new_object(), *list = json_object_new_array();
        bool ok = o && summary && list;

        if (ok) {
                json_object_object_add(o, "apiVersion", json_object_new_string("meshroll.io/v1alpha1"));
                json_object_object_add(o, "kind", json_object_new_string("PreflightReport"));
                json_object_object_add(o, "summary", summary);
                json_object_object_add(o, "findings", list);
                summary = list = NULL;
                json_object *s = mr_json_get(o, "summary", NULL);
                ok = mr_json_set_int(s, "errors", r->count[PREFLIGHT_ERROR]) == 0 &&
                     mr_json_set_int(s, "warnings", r->count[PREFLIGHT_WARNING]) == 0 &&
                     mr_json_set_int(s, "info", r->count[PREFLIGHT_INFO]) == 0 &&
                     mr_json_set_int(s, "checks", r->n_checks) == 0;
        }
        json_object_put(summary);
        json_object_put(list);
        for (size_t i = 0; ok && i < r->n_findings; i++) {
                const PreflightFinding *f = &r->findings[i];
                json_object *item = json_object_new_object(), *obj = json_object_new_object();
                ok = item && obj && json_object_array_add(mr_json_get(o, "findings", NULL), item) == 0;
                if (!ok) {
                        json_object_put(item);
                        json_object_put(obj);
                        break;
                }
                ok = mr_json_set_str(item, "severity", preflight_severity_to_string(f->severity)) == 0 &&
                     mr_json_set_str(item, "check", f->check) == 0 &&
                     json_object_object_add(item, "object", obj) == 0 && mr_json_set_str(obj, "kind", f->kind) == 0 &&
                     (!f->namespace || mr_json_set_str(obj, "namespace", f->namespace) == 0) &&
                     mr_json_set_str(obj, "name", f->name) == 0 && mr_json_set_str(item, "message", f->message) == 0 &&
                     mr_json_set_str(item, "why", f->why) == 0 && mr_json_set_str(item, "fix", f->fix) == 0 &&
                     (!f->transient || mr_json_set_bool(item, "transient", true) == 0);
        }
        return ok ? TAKE_PTR(o) : NULL;
}

char *preflight_report_summary(const PreflightReport *r, unsigned n)
{
        char *s = strdup("");
        unsigned shown = 0;

        for (size_t i = 0; s && i < r->n_findings && shown < n; i++) {
                const PreflightFinding *f = &r->findings[i];
                if (f->severity != PREFLIGHT_ERROR)
                        continue;
                char *t = strf("%s%s%s/%s%s%s: %s", s, shown ? "; " : "", f->kind, strempty(f->namespace),
                               f->namespace ? "/" : "", f->name, f->message);
                free(s);
                s = t;
                shown++;
        }
        if (s && r->count[PREFLIGHT_ERROR] > shown) {
                char *t = strf("%s; and %u more", s, r->count[PREFLIGHT_ERROR] - shown);
                free(s);
                s = t;
        }
        return s;
}

/* ---- listing the cluster ------------------------------------------------------------------------ */

/*
 * The lists of one object per node (ztunnel's pods, the agents' Leases,
 * Nodes) are kept projected to the fields the checks read: at 5,000 nodes
 * their whole JSON set the coordinator's peak memory. A check that reads
 * another field of these must add it here.
 */
/* Name and node, and each container's name and image only (first_image()). */
static json_object *project_ztunnel_pod(json_object *pod)
{
        static const char *const paths[] = { "metadata.name", "metadata.namespace", "spec.nodeName", NULL };
        static const char *const container_paths[] = { "name", "image", NULL };
        _cleanup_(json_object_putp) json_object *o = mr_json_project(pod, paths);
        json_object *containers = mr_json_get(pod, "spec", "containers", NULL), *spec, *kept = NULL;

        if (!o)
                return NULL;
        if (!containers || !json_object_is_type(containers, json_type_array))
                return TAKE_PTR(o);
        if (!(spec = mr_json_ensure_object(o, "spec", NULL)) || !(kept = json_object_new_array()) ||
            json_object_object_add(spec, "containers", kept) < 0) {
                json_object_put(kept);
                return NULL;
        }
        FOREACH (c, containers) {
                json_object *p = mr_json_project(c, container_paths);
                if (!p || json_object_array_add(kept, p) < 0) {
                        json_object_put(p);
                        return NULL;
                }
        }
        return TAKE_PTR(o);
}

/* What lease_find() and lease_fresh() read. */
static json_object *project_lease(json_object *lease)
{
        static const char *const paths[] = { "metadata.name", "spec.renewTime", "spec.leaseDurationSeconds", NULL };
        return mr_json_project(lease, paths);
}

static json_object *project_node(json_object *node)
{
        static const char *const paths[] = { "metadata.name", "metadata.labels", NULL };
        return mr_json_project(node, paths);
}

static int list_projected(KubeClient *c, const KubeResource *res, const char *ns, const char *selector,
                          json_object *(*project)(json_object *item), json_object **ret, MrError *err)
{
        KubeListOptions lo = { .label_selector = selector, .project = project };
        KubeStatus st = {};
        int r = kube_list(c, res, ns, &lo, ret, NULL, &st);
        if (r < 0)
                return mr_error_set(err, r, "preflight: listing %s%s%s: %s", res->plural, ns ? " in " : "", strempty(ns),
                                    st.message[0] ? st.message : mr_strerror(r));
        return 0;
}

static int list(KubeClient *c, const KubeResource *res, const char *ns, const char *selector, json_object **ret,
                MrError *err)
{
        return list_projected(c, res, ns, selector, NULL, ret, err);
}

/* Appends the items of more (borrowed) to into. */
static int extend(json_object *into, json_object *more)
{
        FOREACH (o, more)
                if (json_object_array_add(into, json_object_get(o)) < 0) {
                        json_object_put(o);
                        return -ENOMEM;
                }
        return 0;
}

typedef struct Listed {
        json_object *namespaces, *deployments, *pdbs, *webhooks, *services, *nodes, *leases, *ztunnel, *ztunnel_pods;
} Listed;

static void listed_free(Listed *l)
{
        json_object *all[] = { l->namespaces, l->deployments, l->pdbs,    l->webhooks,    l->services,
                               l->nodes,      l->leases,      l->ztunnel, l->ztunnel_pods };
        for (size_t i = 0; i < ELEMENTSOF(all); i++)
                json_object_put(all[i]);
}

static int list_services(KubeClient *c, Listed *l, const char *istio_ns, MrError *err)
{
        _cleanup_(json_object_putp) json_object *done = json_object_new_object();
        int r;

        if (!done || !(l->services = json_object_new_array()))
                return mr_error_set(err, -ENOMEM, "out of memory");
        /* The Istio namespace (tag Services), and every namespace a webhook calls into. */
        for (size_t i = 0; i <= len(l->webhooks); i++) {
                json_object *mwc = i < len(l->webhooks) ? json_object_array_get_idx(l->webhooks, i) : NULL;
                const char *nss[64];
                size_t n = 0;
                if (!mwc)
                        nss[n++] = istio_ns;
                FOREACH (w, mr_json_get(mwc, "webhooks", NULL)) {
                        const char *ns = mr_json_get_str(w, "clientConfig", "service", "namespace", NULL);
                        if (ns && n < ELEMENTSOF(nss))
                                nss[n++] = ns;
                }
                for (size_t k = 0; k < n; k++) {
                        _cleanup_(json_object_putp) json_object *items = NULL;
                        if (json_object_object_get_ex(done, nss[k], NULL))
                                continue;
                        if (json_object_object_add(done, nss[k], NULL) < 0)
                                return mr_error_set(err, -ENOMEM, "out of memory");
                        if ((r = list(c, &KUBE_SERVICES, nss[k], NULL, &items, err)) < 0)
                                return r;
                        if (extend(l->services, items) < 0)
                                return mr_error_set(err, -ENOMEM, "out of memory");
                }
        }
        return 0;
}

static int list_ztunnel(KubeClient *c, Listed *l, const char *ns, const char *name, MrError *err)
{
        _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
        _cleanup_free_ char *path = NULL, *selector = NULL;
        KubeStatus st = {};
        int r;

        if (kube_path(&KUBE_DAEMONSETS, ns, name, NULL, &path) < 0)
                return mr_error_set(err, -ENOMEM, "out of memory");
        r = kube_get(c, path, &l->ztunnel, &st);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return mr_error_set(err, r, "preflight: reading DaemonSet %s/%s: %s", ns, name,
                                    st.message[0] ? st.message : mr_strerror(r));
        json_object *s = mr_json_get(l->ztunnel, "spec", "selector", NULL);
        if (!s || mr_selector_from_json(s, &sel, NULL) < 0 || mr_selector_is_empty(sel))
                return mr_error_set(err, -EBADMSG, "preflight: DaemonSet %s/%s has no usable spec.selector", ns, name);
        if (!(selector = mr_selector_to_string(sel)))
                return mr_error_set(err, -ENOMEM, "out of memory");
        return list_projected(c, &KUBE_PODS, ns, selector, project_ztunnel_pod, &l->ztunnel_pods, err);
}

/*
 * The namespaces the sidecar phase will restart, from the listed namespaces:
 * namespaces.list, else namespaces.selector, else those labelled
 * istio.io/rev=<tag> — the set sidecar_spec_namespaces() computes, without
 * asking the API again. Owned, NULL-terminated.
 */
static int sidecar_namespaces(const SidecarSpec *s, json_object *namespaces, char ***ret, MrError *err)
{
        _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
        _cleanup_strv_free_ char **l = calloc(len(namespaces) + 1, sizeof(char *));
        size_t n = 0;

        if (!l)
                return mr_error_set(err, -ENOMEM, "out of memory");
        if (!s->list && s->selector && mr_selector_parse(s->selector, &sel, err) < 0)
                return -MR_ECONFIG;
        FOREACH (ns, namespaces) {
                const char *name = meta(ns, "name");
                bool in = s->list     ? strv_has(s->list, strempty(name))
                          : sel       ? mr_selector_matches(sel, mr_json_get(ns, "metadata", "labels", NULL))
                          : s->tag    ? streq_ptr(label(ns, "istio.io/rev"), s->tag)
                                      : false;
                if (in && name && !(l[n++] = strdup(name)))
                        return mr_error_set(err, -ENOMEM, "out of memory");
        }
        *ret = TAKE_PTR(l);
        return 0;
}

int preflight_run(KubeClient *c, const RolloutSpec *spec, const PreflightOptions *o, PreflightReport **ret,
                  MrError *err)
{
        _cleanup_strv_free_ char **restart = NULL;
        char *targets[2] = {};
        static const PreflightOptions defaults = {};
        _cleanup_(listed_free) Listed l = {};
        _cleanup_free_ char *zref = NULL;
        int r;

        if (!o)
                o = &defaults;
        const SidecarSpec *sidecar = spec && rollout_spec_has_phase(spec, PHASE_SIDECAR) ? spec->phase_spec[PHASE_SIDECAR]
                                                                                          : NULL;
        const char *zns = spec && spec->target_namespace ? spec->target_namespace : "istio-system";
        const char *zname = spec && spec->target_daemonset ? spec->target_daemonset : "ztunnel";
        PreflightInput in = {
                .istio_namespace = o->istio_namespace ? o->istio_namespace
                                   : sidecar && sidecar->istio_namespace ? sidecar->istio_namespace
                                                                         : zns,
                .agent_namespace = o->agent_namespace          ? o->agent_namespace
                                   : spec && spec->agent_namespace ? spec->agent_namespace
                                                                   : "meshroll",
                .ztunnel_phase = !spec || rollout_spec_has_phase(spec, PHASE_ZTUNNEL),
                .ztunnel_optional = !spec,
                .gate_blocks = !spec || spec->gate_action != GATE_PROCEED,
                .node_selector = spec ? spec->node_selector : NULL,
                .restart_mesh = !spec,
                .now = mr_now_realtime(o->clock),
        };
        if (!(zref = strf("%s/%s", zns, zname)))
                return mr_error_set(err, -ENOMEM, "out of memory");
        in.ztunnel_ref = zref;

        if ((r = list(c, &KUBE_NAMESPACES, NULL, NULL, &l.namespaces, err)) < 0 ||
            (r = list(c, &KUBE_DEPLOYMENTS, NULL, NULL, &l.deployments, err)) < 0 ||
            (r = list(c, &KUBE_MUTATINGWEBHOOKS, NULL, NULL, &l.webhooks, err)) < 0 ||
            (r = list_services(c, &l, in.istio_namespace, err)) < 0)
                return r;
        if (in.ztunnel_phase) {
                if ((r = list(c, &KUBE_PDBS, NULL, NULL, &l.pdbs, err)) < 0 ||
                    (r = list_ztunnel(c, &l, zns, zname, err)) < 0 ||
                    (r = list_projected(c, &KUBE_LEASES, in.agent_namespace, NULL, project_lease, &l.leases, err)) < 0)
                        return r;
                if (in.node_selector &&
                    (r = list_projected(c, &KUBE_NODES, NULL, NULL, project_node, &l.nodes, err)) < 0)
                        return r;
        }
        if (sidecar) {
                targets[0] = sidecar->revision;
                in.target_revisions = targets;
                if ((r = sidecar_namespaces(sidecar, l.namespaces, &restart, err)) < 0)
                        return r;
                in.restart_namespaces = restart;
        }
        in.namespaces = l.namespaces;
        in.deployments = l.deployments;
        in.pdbs = l.pdbs;
        in.webhooks = l.webhooks;
        in.services = l.services;
        in.nodes = l.nodes;
        in.leases = l.leases;
        in.ztunnel = l.ztunnel;
        in.ztunnel_pods = l.ztunnel_pods;
        /* The Rollout's spec.preflight.skip, and the caller's. */
        size_t n = 0;
        for (char *const *i = o->skip; i && *i; i++)
                n++;
        for (char **i = spec ? spec->preflight_skip : NULL; i && *i; i++)
                n++;
        _cleanup_free_ char **skip = calloc(n + 1, sizeof(char *));
        if (!skip)
                return mr_error_set(err, -ENOMEM, "out of memory");
        n = 0;
        for (char *const *i = o->skip; i && *i; i++)
                skip[n++] = *i;
        for (char **i = spec ? spec->preflight_skip : NULL; i && *i; i++)
                skip[n++] = *i;
        return preflight_evaluate(&in, skip, ret, err);
}

/* ---- before a rollout ----------------------------------------------------------------------------- */

static void finding_event(PhaseCtx *ctx, const PreflightFinding *f, const char *reason)
{
        phase_event(ctx, NULL, KUBE_EVENT_WARNING, reason, "%s %s%s%s: %s (fix: %s)", f->kind, strempty(f->namespace),
                    f->namespace ? "/" : "", f->name, f->message, f->fix);
}

int preflight_before_rollout(PhaseCtx *ctx, usec_t waited)
{
        _cleanup_(preflight_report_freep) PreflightReport *rep = NULL;
        _cleanup_free_ char *summary = NULL;
        PreflightOptions o = { .clock = ctx->clock };
        unsigned events[_PREFLIGHT_SEVERITY_MAX] = {};
        bool all_transient = true;
        int r;

        r = preflight_run(ctx->client, ctx->spec, &o, &rep, ctx->err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < rep->n_findings; i++)
                if (rep->findings[i].severity == PREFLIGHT_ERROR)
                        all_transient = all_transient && rep->findings[i].transient;
        if (rep->count[PREFLIGHT_ERROR] > 0) {
                if (!(summary = preflight_report_summary(rep, 3)))
                        return mr_error_set(ctx->err, -ENOMEM, "out of memory");
                /* Awaited, not reported: the engine calls again until they clear or the wait is over. */
                if (all_transient && waited < ctx->spec->preflight_wait_timeout)
                        return mr_error_set(ctx->err, -EAGAIN, "waiting before the first step for: %s", summary);
        }
        for (size_t i = 0; i < rep->n_findings; i++) {
                const PreflightFinding *f = &rep->findings[i];
                if (f->severity == PREFLIGHT_INFO || events[f->severity]++ >= MAX_EVENTS)
                        continue;
                finding_event(ctx, f, f->severity == PREFLIGHT_ERROR ? "PreflightFailed" : "PreflightWarning");
        }
        for (int sev = PREFLIGHT_WARNING; sev <= PREFLIGHT_ERROR; sev++)
                if (rep->count[sev] > MAX_EVENTS)
                        phase_event(ctx, NULL, KUBE_EVENT_WARNING,
                                    sev == PREFLIGHT_ERROR ? "PreflightFailed" : "PreflightWarning",
                                    "and %u more preflight %ss (meshroll preflight lists them)",
                                    rep->count[sev] - MAX_EVENTS, preflight_severity_to_string(sev));
        if (rep->count[PREFLIGHT_ERROR] == 0)
                return 0;
        char waited_for[64] = "";
        if (all_transient) {
                char d[32];
                snprintf(waited_for, sizeof waited_for, " still, after waiting %s",
                         mr_duration_format(waited, d, sizeof d));
        }
        log_warning("Rollout %s: preflight found %u errors%s; paused: %s", ctx->rollout, rep->count[PREFLIGHT_ERROR],
                    waited_for, summary);
        if (rollout_status_set_phase(ctx->status, ROLLOUT_PAUSED, "PreflightFailed",
                                     "preflight found %u error%s%s: %s; fix them (meshroll preflight -f ROLLOUT.yaml "
                                     "lists them) or resume to go on anyway",
                                     rep->count[PREFLIGHT_ERROR], rep->count[PREFLIGHT_ERROR] == 1 ? "" : "s",
                                     waited_for, summary) < 0)
                return mr_error_set(ctx->err, -ENOMEM, "out of memory");
        return 1;
}
