/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sidecar.c — the sidecar phase (design in sidecar.h; docs/rollout.md).
 *
 * The phase is a small state machine whose whole state lives in
 * PhaseStatus.detail, written by the engine after every step that changed
 * it, so any coordinator resumes it:
 *
 *   detail = {
 *     "revision": "1-25-0",
 *     "tag": {"name": "prod-stable", "from": "1-24-0"},          # with a tag
 *     "namespaces": [{"name", "batch", "state", "from",            # from: the revision its sidecars had
 *                     "labels": {"istio.io/rev": …, "istio-injection": …},   # as found (null: absent)
 *                     "deployments": [{"name", "state", "restartedAt", "since", "message"}],
 *                     "message"}],
 *     "batch": 0, "stage": "restart" | "soak", "soakSince": µs,
 *     "rollback": {"scope": null | "NS", "resume": "Progressing" | "Completed", "reason": "…"},
 *     "gates": …, "gateBaselines": …                               # metric-gate.c's
 *   }
 *
 * A Deployment goes Pending → Restarting → Done (forward) and, when rolled
 * back, Undo → Undoing → Undone. Entering Restarting/Undoing records the
 * restartedAt value *before* the template is patched with it, so a
 * coordinator interrupted in between patches the same value again: one
 * restart per decision, never two. Every other write sets a value (labels,
 * the tag's webhook and Service), so repeating it is harmless.
 *
 * Deadlines are measured from a Deployment's own start, or from the phase's
 * `since` when that is later (the engine moves it on resume), so resuming a
 * paused rollback gives each wait a fresh timeout.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "meshroll/json-util.h"
#include "meshroll/log.h"
#include "meshroll/selector.h"
#include "sidecar.h"
#include "spec-read.h"
#include "spec.h"
#include "status.h"

#define LABEL_REV "istio.io/rev"
#define LABEL_INJECTION "istio-injection"
#define LABEL_TAG "istio.io/tag"

/* ---- spec ----------------------------------------------------------------------------- */

SidecarSpec *sidecar_spec_free(SidecarSpec *s)
{
        if (!s)
                return NULL;
        free(s->revision);
        free(s->istio_namespace);
        free(s->tag);
        free(s->selector);
        strv_free(s->list);
        free(s->canary);
        free(s);
        return NULL;
}

/* Revision and tag names end up in label values and object names: a DNS label. */
static int check_name(const char *v, const char *path, const char *key, MrError *err)
{
        size_t n = strlen(v);
        bool ok = n > 0 && n <= 63;
        for (size_t i = 0; ok && i < n; i++)
                ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') || (v[i] == '-' && i > 0 && i + 1 < n);
        if (!ok)
                return mr_error_set(err, MR_ECONFIG,
                                    "%s.%s: expected a DNS label (lowercase letters, digits, '-'; up to 63), got \"%s\"",
                                    path, key, v);
        return 0;
}

int sidecar_spec_parse(json_object *section, const char *path, SidecarSpec **ret, MrError *err)
{
        static const char *const keys[] = { "revision", "istioNamespace", "tag", "namespaces", "restart", "soak", NULL };
        static const char *const ns_keys[] = { "selector", "list", "canary", "batchSize", NULL };
        static const char *const restart_keys[] = { "concurrency", "timeout", NULL };
        _cleanup_(sidecar_spec_freep) SidecarSpec *s = calloc(1, sizeof(SidecarSpec));
        char nspath[256], rpath[256];
        json_object *ns = NULL, *restart = NULL;
        int r;

        if (!s || !(s->istio_namespace = strdup("istio-system")))
                return -ENOMEM;
        s->batch_size = 1;
        s->concurrency = 4;
        s->restart_timeout = 10 * USEC_PER_MINUTE;
        s->soak = 30 * USEC_PER_SEC;
        snprintf(nspath, sizeof(nspath), "%s.namespaces", path);
        snprintf(rpath, sizeof(rpath), "%s.restart", path);

        if ((r = spec_check_keys(section, path, keys, err)) < 0 ||
            (r = spec_get_string(section, "revision", path, &s->revision, err)) < 0 ||
            (r = spec_get_string(section, "istioNamespace", path, &s->istio_namespace, err)) < 0 ||
            (r = spec_get_string(section, "tag", path, &s->tag, err)) < 0 ||
            (r = spec_get_duration(section, "soak", path, 24 * 3600 * USEC_PER_SEC, &s->soak, err)) < 0 ||
            (r = spec_get_object(section, "namespaces", path, &ns, err)) < 0 ||
            (r = spec_get_object(section, "restart", path, &restart, err)) < 0)
                return r;
        if (!s->revision)
                return mr_error_set(err, MR_ECONFIG, "%s.revision: required (the target control-plane revision)", path);
        if ((r = check_name(s->revision, path, "revision", err)) < 0 ||
            (s->tag && (r = check_name(s->tag, path, "tag", err)) < 0) ||
            (r = check_name(s->istio_namespace, path, "istioNamespace", err)) < 0)
                return r;
        if (s->tag && streq(s->tag, s->revision))
                return mr_error_set(err, MR_ECONFIG, "%s.tag: \"%s\" is the revision's own name, not a tag", path,
                                    s->tag);
        if (ns && ((r = spec_check_keys(ns, nspath, ns_keys, err)) < 0 ||
                   (r = spec_get_string(ns, "selector", nspath, &s->selector, err)) < 0 ||
                   (r = spec_get_string_list(ns, "list", nspath, &s->list, err)) < 0 ||
                   (r = spec_get_string(ns, "canary", nspath, &s->canary, err)) < 0 ||
                   (r = spec_get_uint(ns, "batchSize", nspath, 1, 10000, &s->batch_size, err)) < 0))
                return r;
        if (restart && ((r = spec_check_keys(restart, rpath, restart_keys, err)) < 0 ||
                        (r = spec_get_uint(restart, "concurrency", rpath, 1, 1000, &s->concurrency, err)) < 0 ||
                        (r = spec_get_duration(restart, "timeout", rpath, 24 * 3600 * USEC_PER_SEC,
                                               &s->restart_timeout, err)) < 0))
                return r;
        if (s->restart_timeout == 0)
                return mr_error_set(err, MR_ECONFIG, "%s.timeout: expected a duration above 0", rpath);
        if (s->selector && s->list)
                return mr_error_set(err, MR_ECONFIG, "%s: give either selector or list, not both", nspath);
        if (s->selector && (r = spec_check_selector(s->selector, nspath, err)) < 0)
                return r;
        if (!s->tag && !s->selector && !s->list)
                return mr_error_set(err, MR_ECONFIG,
                                    "%s: expected a selector or a list (without a tag there is no default set of "
                                    "namespaces)",
                                    nspath);
        if (s->canary && s->list) {
                bool found = false;
                for (char **i = s->list; *i; i++)
                        found = found || streq(*i, s->canary);
                if (!found)
                        return mr_error_set(err, MR_ECONFIG, "%s.canary: \"%s\" is not in %s.list", nspath, s->canary,
                                            nspath);
        }
        *ret = TAKE_PTR(s);
        return 0;
}

/* ---- pure helpers --------------------------------------------------------------------- */

const char *sidecar_pod_revision(json_object *pod)
{
        /* Only injection writes sidecar.istio.io/status; other pods (ztunnel) may carry istio.io/rev too. */
        const char *status = mr_json_get_str(pod, "metadata", "annotations", "sidecar.istio.io/status", NULL);
        if (!status)
                return NULL;
        const char *rev = mr_json_get_str(pod, "metadata", "annotations", "istio.io/rev", NULL);
        if (rev)
                return rev;
        /* The injector's status is JSON; a value we cannot read is "not injected by a known revision". */
        static _Thread_local char buf[64];
        _cleanup_(json_object_putp) json_object *o = NULL;
        if (mr_json_parse(status, strlen(status), 1 << 16, &o) < 0)
                return NULL;
        const char *v = mr_json_get_str(o, "revision", NULL);
        if (!v || strlen(v) >= sizeof(buf))
                return NULL;
        snprintf(buf, sizeof(buf), "%s", v);
        return buf;
}

int sidecar_deployment_rolled_out(json_object *d, const char **ret_why)
{
        int64_t gen = 0, observed = -1, replicas = 1, updated = 0, total = 0, available = 0;

        (void)mr_json_get_int(&gen, d, "metadata", "generation", NULL);
        (void)mr_json_get_int(&observed, d, "status", "observedGeneration", NULL);
        (void)mr_json_get_int(&replicas, d, "spec", "replicas", NULL);
        (void)mr_json_get_int(&updated, d, "status", "updatedReplicas", NULL);
        (void)mr_json_get_int(&total, d, "status", "replicas", NULL);
        (void)mr_json_get_int(&available, d, "status", "availableReplicas", NULL);

        if (observed < gen) {
                *ret_why = "waiting for the deployment spec update to be observed";
                return 0;
        }
        json_object *conds = mr_json_get(d, "status", "conditions", NULL);
        for (size_t i = 0; conds && json_object_is_type(conds, json_type_array) && i < json_object_array_length(conds);
             i++) {
                json_object *c = json_object_array_get_idx(conds, i);
                if (streq_ptr(mr_json_get_str(c, "type", NULL), "Progressing") &&
                    streq_ptr(mr_json_get_str(c, "reason", NULL), "ProgressDeadlineExceeded")) {
                        *ret_why = "the deployment exceeded its progress deadline";
                        return 0;
                }
        }
        if (updated < replicas) {
                *ret_why = "new replicas are being updated";
                return 0;
        }
        if (total > updated) {
                *ret_why = "old replicas are pending termination";
                return 0;
        }
        if (available < updated) {
                *ret_why = "updated replicas are not all available yet";
                return 0;
        }
        *ret_why = NULL;
        return 1;
}

size_t sidecar_batches(size_t n, bool canary, unsigned batch_size, size_t *starts)
{
        size_t nb = 0, i = 0;
        if (batch_size == 0)
                batch_size = 1;
        if (canary && n > 0) {
                starts[nb++] = 0;
                i = 1;
        }
        for (; i < n; i += batch_size)
                starts[nb++] = i;
        starts[nb] = n;
        return nb;
}

/* ---- the namespaces ------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int sidecar_spec_namespaces(KubeClient *c, const SidecarSpec *s, char ***ret, MrError *err)
{
        _cleanup_(json_object_putp) json_object *items = NULL;
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_free_ char *sel = NULL;
        KubeStatus st;
        size_t n = 0, cap;
        int r;

        if (!s->list && !s->selector && asprintf(&sel, LABEL_REV "=%s", s->tag) < 0)
                return -ENOMEM;
        KubeListOptions lo = { .label_selector = s->list ? NULL : s->selector ? s->selector : sel };
        r = kube_list(c, &KUBE_NAMESPACES, NULL, &lo, &items, NULL, &st);
        if (r < 0)
                return mr_error_set(err, r, "listing namespaces: %s", st.message[0] ? st.message : mr_strerror(r));
        if (sel && streq(s->tag, "default")) {
                /* The default tag also injects namespaces labelled istio-injection=enabled (istio.md §4.1). */
                _cleanup_(json_object_putp) json_object *more = NULL;
                KubeListOptions lo2 = { .label_selector = LABEL_INJECTION "=enabled" };
                r = kube_list(c, &KUBE_NAMESPACES, NULL, &lo2, &more, NULL, &st);
                if (r < 0)
                        return mr_error_set(err, r, "listing namespaces: %s",
                                            st.message[0] ? st.message : mr_strerror(r));
                for (size_t j = 0; j < json_object_array_length(more); j++)
                        if (json_object_array_add(items, json_object_get(json_object_array_get_idx(more, j))) < 0)
                                return -ENOMEM;
        }
        cap = json_object_array_length(items) + 1;
        if (s->list) {
                size_t k = 0;
                while (s->list[k])
                        k++;
                cap = k + 1;
        }
        if (!(l = calloc(cap, sizeof(char *))))
                return -ENOMEM;
        if (s->list) {
                for (char **i = s->list; *i; i++) {
                        bool found = false;
                        for (size_t j = 0; j < json_object_array_length(items) && !found; j++)
                                found = streq_ptr(mr_json_get_str(json_object_array_get_idx(items, j), "metadata",
                                                                  "name", NULL),
                                                  *i);
                        if (!found)
                                return mr_error_set(err, MR_ECONFIG,
                                                    "spec.sidecar.namespaces.list: namespace \"%s\" does not exist", *i);
                        if (!(l[n++] = strdup(*i)))
                                return -ENOMEM;
                }
        } else {
                for (size_t j = 0; j < json_object_array_length(items); j++) {
                        const char *name = mr_json_get_str(json_object_array_get_idx(items, j), "metadata", "name",
                                                           NULL);
                        bool dup = false;
                        for (size_t k = 0; name && k < n && !dup; k++)
                                dup = streq(l[k], name); /* in both lists of the default tag */
                        if (name && !dup && !(l[n++] = strdup(name)))
                                return -ENOMEM;
                }
                qsort(l, n, sizeof(char *), cmp_str);
        }
        if (n == 0)
                return mr_error_set(err, MR_ECONFIG, "spec.sidecar.namespaces: no namespace matches %s",
                                    s->selector ? s->selector : sel);
        if (s->canary) {
                size_t k = 0;
                while (k < n && !streq(l[k], s->canary))
                        k++;
                if (k == n)
                        return mr_error_set(err, MR_ECONFIG,
                                            "spec.sidecar.namespaces.canary: \"%s\" is not among the phase's "
                                            "namespaces",
                                            s->canary);
                char *canary = l[k];
                memmove(l + 1, l, k * sizeof(char *));
                l[0] = canary;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* ---- detail helpers ------------------------------------------------------------------- */

static int64_t d_int(json_object *o, const char *key)
{
        int64_t v = 0;
        (void)mr_json_get_int(&v, o, key, NULL);
        return v;
}

static int d_set_int(json_object *o, const char *key, int64_t v)
{
        return mr_json_set_int(o, key, v);
}

static const char *d_str(json_object *o, const char *key)
{
        return mr_json_get_str(o, key, NULL);
}

static size_t arr_len(json_object *a)
{
        return a && json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

/* Replaces o[key] with msg when it differs; *changed set then. */
static int set_message(json_object *o, const char *key, const char *msg, bool *changed)
{
        if (streq_ptr(d_str(o, key), msg))
                return 0;
        *changed = true;
        return mr_json_set_str(o, key, msg);
}

static int phase_message(PhaseStatus *ps, bool *changed, const char *fmt, ...) _printf_(3, 4);
static int phase_message(PhaseStatus *ps, bool *changed, const char *fmt, ...)
{
        _cleanup_free_ char *m = NULL;
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(&m, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        if (streq_ptr(ps->message, m))
                return 0;
        *changed = true;
        free(ps->message);
        ps->message = TAKE_PTR(m);
        return 0;
}

/* ---- API helpers ---------------------------------------------------------------------- */

static int api_error(MrError *err, int r, const KubeStatus *st, const char *what)
{
        return mr_error_set(err, r, "%s: %s", what, st->message[0] ? st->message : mr_strerror(r));
}

/* The revision a tag names now (its webhook's istio.io/rev label), or NULL when there is no such tag. */
static int tag_revision(KubeClient *c, const char *tag, char **ret, MrError *err)
{
        _cleanup_(json_object_putp) json_object *items = NULL;
        _cleanup_free_ char *sel = NULL;
        KubeStatus st;
        int r;

        if (asprintf(&sel, LABEL_TAG "=%s", tag) < 0)
                return -ENOMEM;
        KubeListOptions lo = { .label_selector = sel };
        if ((r = kube_list(c, &KUBE_MUTATINGWEBHOOKS, NULL, &lo, &items, NULL, &st)) < 0)
                return api_error(err, r, &st, "listing MutatingWebhookConfigurations");
        *ret = NULL;
        if (arr_len(items) == 0)
                return 0;
        const char *rev = mr_json_get_str(json_object_array_get_idx(items, 0), "metadata", "labels", LABEL_REV, NULL);
        if (rev && !(*ret = strdup(rev)))
                return -ENOMEM;
        return 0;
}

/* What a namespace's labels inject from: the revision, resolved through tags; NULL when none. */
static int labels_revision(KubeClient *c, json_object *labels, char **ret, MrError *err)
{
        const char *inj = mr_json_get_str(labels, LABEL_INJECTION, NULL);
        const char *rev = mr_json_get_str(labels, LABEL_REV, NULL);
        const char *name = inj ? (streq(inj, "enabled") ? "default" : NULL) : rev;
        int r;

        *ret = NULL;
        if (!name)
                return 0;
        if ((r = tag_revision(c, name, ret, err)) < 0)
                return r;
        if (!*ret && !(*ret = strdup(name)))
                return -ENOMEM;
        return 0;
}

/* The target revision must be installed: istiod-<rev> and its canonical injector webhook. */
static int check_revision(KubeClient *c, const SidecarSpec *s, const char *rev, json_object **ret_webhook,
                          MrError *err)
{
        _cleanup_(json_object_putp) json_object *items = NULL, *d = NULL;
        _cleanup_free_ char *sel = NULL, *path = NULL, *name = NULL;
        KubeStatus st;
        int r;

        if (asprintf(&name, "istiod-%s", rev) < 0 || kube_path(&KUBE_DEPLOYMENTS, s->istio_namespace, name, NULL, &path) < 0)
                return -ENOMEM;
        r = kube_get(c, path, &d, &st);
        if (r == -ENOENT)
                return mr_error_set(err, MR_ECONFIG, "revision %s is not installed: no Deployment %s/%s", rev,
                                    s->istio_namespace, name);
        if (r < 0)
                return api_error(err, r, &st, "reading istiod");
        if (asprintf(&sel, LABEL_REV "=%s,!" LABEL_TAG, rev) < 0)
                return -ENOMEM;
        KubeListOptions lo = { .label_selector = sel };
        if ((r = kube_list(c, &KUBE_MUTATINGWEBHOOKS, NULL, &lo, &items, NULL, &st)) < 0)
                return api_error(err, r, &st, "listing MutatingWebhookConfigurations");
        if (arr_len(items) != 1)
                return mr_error_set(err, MR_ECONFIG,
                                    "revision %s: expected one injector webhook labelled %s (the revision's own), "
                                    "found %zu",
                                    rev, sel, arr_len(items));
        if (ret_webhook)
                *ret_webhook = json_object_get(json_object_array_get_idx(items, 0));
        return 0;
}

static const KubeResource VALIDATING_WEBHOOKS = {
        .group = "admissionregistration.k8s.io", .version = "v1", .plural = "validatingwebhookconfigurations",
        .kind = "ValidatingWebhookConfiguration", .namespaced = false,
};

/* istiod-default-validator, when present: label istio.io/rev and each webhook's service to rev's istiod. */
static int move_default_validator(PhaseCtx *ctx, const SidecarSpec *s, const char *rev)
{
        _cleanup_(json_object_putp) json_object *vwc = NULL;
        _cleanup_free_ char *path = NULL, *svc = NULL;
        KubeStatus st;
        int r;

        if (kube_path(&VALIDATING_WEBHOOKS, NULL, "istiod-default-validator", NULL, &path) < 0 ||
            asprintf(&svc, "istiod-%s", rev) < 0)
                return -ENOMEM;
        r = kube_get(ctx->client, path, &vwc, &st);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return api_error(ctx->err, r, &st, "reading ValidatingWebhookConfiguration istiod-default-validator");
        json_object *labels = mr_json_ensure_object(vwc, "metadata", "labels", NULL);
        json_object *hooks = mr_json_get(vwc, "webhooks", NULL);
        if (!labels || mr_json_set_str(labels, LABEL_REV, rev) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < arr_len(hooks); i++) {
                json_object *service = mr_json_get(json_object_array_get_idx(hooks, i), "clientConfig", "service", NULL);
                if (service && (mr_json_set_str(service, "name", svc) < 0 ||
                                mr_json_set_str(service, "namespace", s->istio_namespace) < 0))
                        return -ENOMEM;
        }
        if ((r = phase_fence(ctx)) < 0)
                return r;
        if ((r = kube_replace(ctx->client, path, vwc, NULL, &st)) < 0)
                return api_error(ctx->err, r, &st, "moving istiod-default-validator");
        return 0;
}

/*
 * Points tag at rev (istioctl tag set --overwrite): the tag's webhook takes
 * rev's canonical clientConfig and label; the 1.28+ tag Service its selector.
 */
static int move_tag(PhaseCtx *ctx, const SidecarSpec *s, const char *tag, const char *rev)
{
        _cleanup_(json_object_putp) json_object *canon = NULL, *items = NULL, *svc = NULL;
        _cleanup_free_ char *sel = NULL, *path = NULL, *svc_name = NULL;
        KubeStatus st;
        int r;

        if ((r = check_revision(ctx->client, s, rev, &canon, ctx->err)) < 0)
                return r;
        json_object *cw = json_object_array_get_idx(mr_json_get(canon, "webhooks", NULL), 0);
        json_object *cc = mr_json_get(cw, "clientConfig", NULL);
        if (!cc)
                return mr_error_set(ctx->err, MR_ECONFIG, "revision %s: its injector webhook has no clientConfig", rev);

        if (asprintf(&sel, LABEL_TAG "=%s", tag) < 0)
                return -ENOMEM;
        KubeListOptions lo = { .label_selector = sel };
        if ((r = kube_list(ctx->client, &KUBE_MUTATINGWEBHOOKS, NULL, &lo, &items, NULL, &st)) < 0)
                return api_error(ctx->err, r, &st, "listing MutatingWebhookConfigurations");
        if (arr_len(items) == 0)
                return mr_error_set(ctx->err, MR_ECONFIG,
                                    "spec.sidecar.tag: no revision tag %s (no MutatingWebhookConfiguration labelled %s)",
                                    tag, sel);
        for (size_t i = 0; i < arr_len(items); i++) {
                json_object *mwc = json_object_array_get_idx(items, i);
                const char *name = mr_json_get_str(mwc, "metadata", "name", NULL);
                json_object *labels = mr_json_ensure_object(mwc, "metadata", "labels", NULL);
                json_object *hooks = mr_json_get(mwc, "webhooks", NULL);
                _cleanup_free_ char *p = NULL;
                if (!labels || mr_json_set_str(labels, LABEL_REV, rev) < 0)
                        return -ENOMEM;
                for (size_t j = 0; j < arr_len(hooks); j++) {
                        json_object *h = json_object_array_get_idx(hooks, j);
                        json_object *copy = mr_json_copy(cc);
                        if (!copy || json_object_object_add(h, "clientConfig", copy) < 0)
                                return -ENOMEM;
                        json_object *reinv = mr_json_get(cw, "reinvocationPolicy", NULL);
                        if (reinv && json_object_object_add(h, "reinvocationPolicy", json_object_get(reinv)) < 0)
                                return -ENOMEM;
                }
                if (kube_path(&KUBE_MUTATINGWEBHOOKS, NULL, name, NULL, &p) < 0)
                        return -ENOMEM;
                if ((r = phase_fence(ctx)) < 0)
                        return r;
                if ((r = kube_replace(ctx->client, p, mwc, NULL, &st)) < 0)
                        return api_error(ctx->err, r, &st, "moving the tag's webhook");
        }

        /* The default tag also names the validating revision (istio.md §4.1, §4.2 step 4). */
        if (streq(tag, "default") && (r = move_default_validator(ctx, s, rev)) < 0)
                return r;

        /* The 1.28+ tag Service, when the install has one. */
        if (asprintf(&svc_name, "istiod-revision-tag-%s", tag) < 0 ||
            kube_path(&KUBE_SERVICES, s->istio_namespace, svc_name, NULL, &path) < 0)
                return -ENOMEM;
        r = kube_get(ctx->client, path, &svc, &st);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return api_error(ctx->err, r, &st, "reading the tag's Service");
        json_object *labels = mr_json_ensure_object(svc, "metadata", "labels", NULL);
        json_object *selector = json_object_new_object();
        json_object *spec = mr_json_ensure_object(svc, "spec", NULL);
        if (!labels || !selector || !spec || mr_json_set_str(labels, LABEL_REV, rev) < 0 ||
            mr_json_set_str(selector, "app", "istiod") < 0 || mr_json_set_str(selector, LABEL_REV, rev) < 0 ||
            json_object_object_add(spec, "selector", selector) < 0) {
                json_object_put(selector);
                return -ENOMEM;
        }
        if ((r = phase_fence(ctx)) < 0)
                return r;
        if ((r = kube_replace(ctx->client, path, svc, NULL, &st)) < 0)
                return api_error(ctx->err, r, &st, "moving the tag's Service");
        return 0;
}

/* Sets a namespace's injection labels: each key to its value, null removing it. */
static int set_ns_labels(PhaseCtx *ctx, const char *ns, const char *rev, const char *injection)
{
        _cleanup_(json_object_putp) json_object *patch = json_object_new_object();
        _cleanup_free_ char *path = NULL;
        json_object *labels;
        KubeStatus st;
        int r;

        if (!patch || !(labels = mr_json_ensure_object(patch, "metadata", "labels", NULL)) ||
            mr_json_set_str(labels, LABEL_REV, rev) < 0 || mr_json_set_str(labels, LABEL_INJECTION, injection) < 0 ||
            kube_path(&KUBE_NAMESPACES, NULL, ns, NULL, &path) < 0)
                return -ENOMEM;
        if ((r = phase_fence(ctx)) < 0)
                return r;
        if ((r = kube_patch(ctx->client, path, KUBE_PATCH_MERGE, patch, NULL, &st)) < 0)
                return mr_error_set(ctx->err, r, "relabelling namespace %s: %s", ns,
                                    st.message[0] ? st.message : mr_strerror(r));
        return 0;
}

static bool skip_injection(json_object *deployment)
{
        return streq_ptr(mr_json_get_str(deployment, "spec", "template", "metadata", "labels",
                                         "sidecar.istio.io/inject", NULL),
                         "false") ||
               streq_ptr(mr_json_get_str(deployment, "spec", "template", "metadata", "annotations",
                                         "sidecar.istio.io/inject", NULL),
                         "false");
}

/* The Deployments of a namespace to restart, as a detail array (owned). */
static int list_deployments(PhaseCtx *ctx, const char *ns, json_object **ret)
{
        _cleanup_(json_object_putp) json_object *items = NULL, *out = json_object_new_array();
        KubeStatus st;
        int r;

        if (!out)
                return -ENOMEM;
        if ((r = kube_list(ctx->client, &KUBE_DEPLOYMENTS, ns, NULL, &items, NULL, &st)) < 0)
                return mr_error_set(ctx->err, r, "listing Deployments in %s: %s", ns,
                                    st.message[0] ? st.message : mr_strerror(r));
        for (size_t i = 0; i < arr_len(items); i++) {
                json_object *d = json_object_array_get_idx(items, i);
                json_object *e = json_object_new_object();
                if (!e || json_object_array_add(out, e) < 0) {
                        json_object_put(e);
                        return -ENOMEM;
                }
                if (mr_json_set_str(e, "name", mr_json_get_str(d, "metadata", "name", NULL)) < 0 ||
                    mr_json_set_str(e, "state", skip_injection(d) ? "Skipped" : "Pending") < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(out);
        return 0;
}

/* Patches the template's restartedAt, unless it already holds value. */
static int restart_deployment(PhaseCtx *ctx, const char *ns, json_object *d, const char *name, const char *value)
{
        _cleanup_(json_object_putp) json_object *patch = json_object_new_object();
        _cleanup_free_ char *path = NULL;
        json_object *ann;
        KubeStatus st;
        int r;

        if (streq_ptr(mr_json_get_str(d, "spec", "template", "metadata", "annotations", SIDECAR_RESTARTED_AT, NULL),
                      value))
                return 0;
        if (!patch || !(ann = mr_json_ensure_object(patch, "spec", "template", "metadata", "annotations", NULL)) ||
            mr_json_set_str(ann, SIDECAR_RESTARTED_AT, value) < 0 ||
            kube_path(&KUBE_DEPLOYMENTS, ns, name, NULL, &path) < 0)
                return -ENOMEM;
        if ((r = phase_fence(ctx)) < 0)
                return r;
        if ((r = kube_patch(ctx->client, path, KUBE_PATCH_MERGE, patch, NULL, &st)) < 0)
                return mr_error_set(ctx->err, r, "restarting Deployment %s/%s: %s", ns, name,
                                    st.message[0] ? st.message : mr_strerror(r));
        return 1;
}

/*
 * Checks the running pods of a rolled-out Deployment against want (NULL:
 * not checked). 1 all on want, 0 with *ret_msg (owned) naming a pod that is not.
 */
static int verify_pods(PhaseCtx *ctx, const char *ns, json_object *d, const char *want, char **ret_msg)
{
        _cleanup_(mr_selector_freep) MrSelector *sel = NULL;
        _cleanup_(json_object_putp) json_object *items = NULL;
        _cleanup_free_ char *s = NULL;
        KubeStatus st;
        int r;

        *ret_msg = NULL;
        if (!want || skip_injection(d))
                return 1;
        if (mr_selector_from_json(mr_json_get(d, "spec", "selector", NULL), &sel, ctx->err) < 0 ||
            !(s = mr_selector_to_string(sel)))
                return mr_error_set(ctx->err, MR_EPARSE, "Deployment %s/%s: unreadable selector", ns,
                                    strna(mr_json_get_str(d, "metadata", "name", NULL)));
        KubeListOptions lo = { .label_selector = s };
        if ((r = kube_list(ctx->client, &KUBE_PODS, ns, &lo, &items, NULL, &st)) < 0)
                return mr_error_set(ctx->err, r, "listing pods in %s: %s", ns,
                                    st.message[0] ? st.message : mr_strerror(r));
        for (size_t i = 0; i < arr_len(items); i++) {
                json_object *p = json_object_array_get_idx(items, i);
                const char *phase = mr_json_get_str(p, "status", "phase", NULL);
                if (mr_json_get(p, "metadata", "deletionTimestamp", NULL) || streq_ptr(phase, "Succeeded") ||
                    streq_ptr(phase, "Failed"))
                        continue;
                const char *rev = sidecar_pod_revision(p);
                if (!streq_ptr(rev, want))
                        return asprintf(ret_msg, "pod %s/%s runs %s%s, expected revision %s", ns,
                                        strna(mr_json_get_str(p, "metadata", "name", NULL)),
                                        rev ? "revision " : "", rev ? rev : "no sidecar", want) < 0
                                       ? -ENOMEM
                                       : 0;
        }
        return 1;
}

/* ---- the state machine ---------------------------------------------------------------- */

static json_object *ns_array(PhaseStatus *ps)
{
        return mr_json_get(ps->detail, "namespaces", NULL);
}

static json_object *ns_find(PhaseStatus *ps, const char *name)
{
        json_object *a = ns_array(ps);
        for (size_t i = 0; i < arr_len(a); i++)
                if (streq_ptr(d_str(json_object_array_get_idx(a, i), "name"), name))
                        return json_object_array_get_idx(a, i);
        return NULL;
}

static int64_t n_batches(PhaseStatus *ps)
{
        json_object *a = ns_array(ps);
        int64_t n = 0;
        for (size_t i = 0; i < arr_len(a); i++)
                n = MAX(n, d_int(json_object_array_get_idx(a, i), "batch") + 1);
        return n;
}

/* Pending → Progressing: records the namespaces, their labels and revisions, and the tag's. */
static int plan(PhaseCtx *ctx, const SidecarSpec *s, PhaseStatus *ps)
{
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_(json_object_putp) json_object *arr = json_object_new_array();
        size_t n = 0;
        int r;

        if (!arr)
                return -ENOMEM;
        if ((r = check_revision(ctx->client, s, s->revision, NULL, ctx->err)) < 0 ||
            (r = sidecar_spec_namespaces(ctx->client, s, &names, ctx->err)) < 0)
                return r;
        while (names[n])
                n++;
        _cleanup_free_ size_t *starts = calloc(n + 2, sizeof(size_t));
        if (!starts)
                return -ENOMEM;
        size_t nb = sidecar_batches(n, s->canary != NULL, s->batch_size, starts);
        for (size_t b = 0; b < nb; b++)
                for (size_t i = starts[b]; i < starts[b + 1]; i++) {
                        _cleanup_(json_object_putp) json_object *nso = NULL;
                        _cleanup_free_ char *path = NULL, *from = NULL;
                        KubeStatus st;
                        json_object *e = json_object_new_object(), *labels = json_object_new_object();
                        if (!e || !labels || json_object_array_add(arr, e) < 0) {
                                json_object_put(e);
                                json_object_put(labels);
                                return -ENOMEM;
                        }
                        if (json_object_object_add(e, "labels", labels) < 0)
                                return -ENOMEM;
                        if (kube_path(&KUBE_NAMESPACES, NULL, names[i], NULL, &path) < 0)
                                return -ENOMEM;
                        if ((r = kube_get(ctx->client, path, &nso, &st)) < 0)
                                return api_error(ctx->err, r, &st, names[i]);
                        json_object *nl = mr_json_get(nso, "metadata", "labels", NULL);
                        if ((r = labels_revision(ctx->client, nl, &from, ctx->err)) < 0)
                                return r;
                        if (mr_json_set_str(e, "name", names[i]) < 0 || d_set_int(e, "batch", (int64_t)b) < 0 ||
                            mr_json_set_str(e, "state", "Pending") < 0 || mr_json_set_str(e, "from", from) < 0 ||
                            mr_json_set_str(labels, LABEL_REV, mr_json_get_str(nl, LABEL_REV, NULL)) < 0 ||
                            mr_json_set_str(labels, LABEL_INJECTION, mr_json_get_str(nl, LABEL_INJECTION, NULL)) < 0)
                                return -ENOMEM;
                }
        if (s->tag) {
                _cleanup_free_ char *from = NULL;
                json_object *t = json_object_new_object();
                if (!t || json_object_object_add(ps->detail, "tag", t) < 0) {
                        json_object_put(t);
                        return -ENOMEM;
                }
                if ((r = tag_revision(ctx->client, s->tag, &from, ctx->err)) < 0)
                        return r;
                if (!from)
                        return mr_error_set(ctx->err, MR_ECONFIG,
                                            "spec.sidecar.tag: no revision tag %s (no MutatingWebhookConfiguration "
                                            "labelled " LABEL_TAG "=%s)",
                                            s->tag, s->tag);
                if (mr_json_set_str(t, "name", s->tag) < 0 || mr_json_set_str(t, "from", from) < 0)
                        return -ENOMEM;
        }
        if (json_object_object_add(ps->detail, "namespaces", TAKE_PTR(arr)) < 0 ||
            mr_json_set_str(ps->detail, "revision", s->revision) < 0 || d_set_int(ps->detail, "batch", 0) < 0 ||
            mr_json_set_str(ps->detail, "stage", s->tag ? "tag" : "restart") < 0)
                return -ENOMEM;
        phase_set_state(ps, PHASE_PROGRESSING, ctx->now);
        if (phase_set_message(ps, "%zu namespaces in %zu batches to revision %s%s%s", n, nb, s->revision,
                              s->tag ? " via tag " : "", strempty(s->tag)) < 0)
                return -ENOMEM;
        phase_event(ctx, NULL, KUBE_EVENT_NORMAL, "SidecarPhaseStarted", "sidecar phase: %s", ps->message);
        return PHASE_ADVANCE;
}

static void ns_event(PhaseCtx *ctx, const char *ns, bool warning, const char *reason, const char *msg)
{
        KubeEventRef ref = { .api_version = "v1", .kind = "Namespace", .name = ns };
        phase_event(ctx, &ref, warning ? KUBE_EVENT_WARNING : KUBE_EVENT_NORMAL, reason, "Rollout %s: %s", ctx->rollout,
                    msg);
        phase_event(ctx, NULL, warning ? KUBE_EVENT_WARNING : KUBE_EVENT_NORMAL, reason, "namespace %s: %s", ns, msg);
}

typedef struct Drive {
        const char *pending, *running, *done; /* the three states of this direction */
        const char *want;                     /* the revision pods must carry, or NULL */
        bool all_done;
        char *failure;                        /* owned: what failed (a deadline, a pod's revision) */
} Drive;

/*
 * Moves the Deployments of one namespace entry along d's states, within
 * *budget concurrent restarts. Sets *changed when the detail changed.
 */
static int drive_namespace(PhaseCtx *ctx, const SidecarSpec *s, PhaseStatus *ps, json_object *nse, Drive *d,
                           unsigned *budget, bool *changed)
{
        const char *ns = d_str(nse, "name");
        json_object *deps = mr_json_get(nse, "deployments", NULL);
        int r;

        for (size_t i = 0; i < arr_len(deps); i++) {
                json_object *e = json_object_array_get_idx(deps, i);
                const char *state = d_str(e, "state");
                if (streq_ptr(state, d->running))
                        continue;
                if (streq_ptr(state, d->pending)) {
                        if (*budget == 0) {
                                d->all_done = false;
                                continue;
                        }
                        char t[KUBE_TIME_MAX];
                        (*budget)--;
                        if (mr_json_set_str(e, "state", d->running) < 0 ||
                            mr_json_set_str(e, "restartedAt", kube_microtime_format(ctx->now, t)) < 0 ||
                            d_set_int(e, "since", (int64_t)ctx->now) < 0)
                                return -ENOMEM;
                        *changed = true;
                        d->all_done = false;
                }
        }
        /* Running ones: patch (once per recorded value), then wait and verify. */
        for (size_t i = 0; i < arr_len(deps); i++) {
                json_object *e = json_object_array_get_idx(deps, i);
                const char *name = d_str(e, "name");
                if (!streq_ptr(d_str(e, "state"), d->running))
                        continue;
                _cleanup_(json_object_putp) json_object *obj = NULL;
                _cleanup_free_ char *path = NULL, *bad = NULL;
                const char *why = NULL;
                KubeStatus st;
                if (kube_path(&KUBE_DEPLOYMENTS, ns, name, NULL, &path) < 0)
                        return -ENOMEM;
                r = kube_get(ctx->client, path, &obj, &st);
                if (r == -ENOENT) {
                        /* Deleted meanwhile: nothing left to restart. */
                        if (mr_json_set_str(e, "state", "Gone") < 0)
                                return -ENOMEM;
                        *changed = true;
                        continue;
                }
                if (r < 0)
                        return api_error(ctx->err, r, &st, name);
                if ((r = restart_deployment(ctx, ns, obj, name, d_str(e, "restartedAt"))) < 0)
                        return r;
                if (r > 0) {
                        d->all_done = false;
                        continue;
                }
                r = sidecar_deployment_rolled_out(obj, &why);
                if (r > 0 && (r = verify_pods(ctx, ns, obj, d->want, &bad)) < 0)
                        return r;
                if (r > 0) {
                        if (mr_json_set_str(e, "state", d->done) < 0 || mr_json_set_str(e, "message", NULL) < 0)
                                return -ENOMEM;
                        *changed = true;
                        continue;
                }
                d->all_done = false;
                usec_t start = MAX((usec_t)d_int(e, "since"), ps->since);
                if (bad && !d->failure) {
                        /* Rolled out, but on the wrong revision: waiting will not fix it. */
                        d->failure = TAKE_PTR(bad);
                } else if (phase_elapsed(ctx, start) > s->restart_timeout && !d->failure) {
                        char buf[32];
                        if (asprintf(&d->failure, "Deployment %s/%s did not roll out within %s: %s", ns, name,
                                     mr_duration_format(s->restart_timeout, buf, sizeof(buf)),
                                     bad ? bad : strna(why)) < 0)
                                return -ENOMEM;
                }
                if ((r = set_message(e, "message", bad ? bad : why, changed)) < 0)
                        return r;
        }
        return 0;
}

/* Counts entries of nse's deployments in state. */
static unsigned count_state(json_object *nse, const char *state)
{
        json_object *deps = mr_json_get(nse, "deployments", NULL);
        unsigned n = 0;
        for (size_t i = 0; i < arr_len(deps); i++)
                n += streq_ptr(d_str(json_object_array_get_idx(deps, i), "state"), state);
        return n;
}

/* Starts a whole-phase rollback (automatic or asked for). */
static int begin_rollback(PhaseCtx *ctx, PhaseStatus *ps, const char *scope, const char *reason)
{
        json_object *rb = json_object_new_object();
        PhaseState before = ps->state;

        if (!rb || json_object_object_add(ps->detail, "rollback", rb) < 0) {
                json_object_put(rb);
                return -ENOMEM;
        }
        if (mr_json_set_str(rb, "scope", scope) < 0 ||
            mr_json_set_str(rb, "resume", phase_state_to_string(before == PHASE_ROLLING_BACK ? PHASE_PROGRESSING
                                                                                             : before)) < 0 ||
            mr_json_set_str(rb, "reason", reason) < 0)
                return -ENOMEM;
        /* Which namespaces to undo: all that were touched (whole), or the one. */
        json_object *a = ns_array(ps);
        for (size_t i = 0; i < arr_len(a); i++) {
                json_object *nse = json_object_array_get_idx(a, i);
                if (scope && !streq_ptr(d_str(nse, "name"), scope))
                        continue;
                if (streq_ptr(d_str(nse, "state"), "RolledBack"))
                        continue;
                if (mr_json_set_str(nse, "state", "RollingBack") < 0)
                        return -ENOMEM;
                json_object *deps = mr_json_get(nse, "deployments", NULL);
                for (size_t j = 0; j < arr_len(deps); j++) {
                        json_object *e = json_object_array_get_idx(deps, j);
                        const char *st = d_str(e, "state");
                        bool touched = streq_ptr(st, "Restarting") || streq_ptr(st, "Done") ||
                                       streq_ptr(st, "Undoing") || streq_ptr(st, "Undone");
                        if (mr_json_set_str(e, "state", touched ? "Undo" : "Skipped") < 0)
                                return -ENOMEM;
                }
        }
        phase_set_state(ps, PHASE_ROLLING_BACK, ctx->now);
        if (phase_set_message(ps, "rolling back%s%s: %s", scope ? " namespace " : "", strempty(scope), reason) < 0)
                return -ENOMEM;
        return 0;
}

/* The labels a namespace goes back to: with a tag, pinned to the tag's old revision when only it rolls back. */
static int restore_labels(PhaseCtx *ctx, PhaseStatus *ps, json_object *nse, bool pin)
{
        json_object *tag = mr_json_get(ps->detail, "tag", NULL);
        const char *ns = d_str(nse, "name");
        if (tag && pin)
                return set_ns_labels(ctx, ns, d_str(tag, "from"), NULL);
        if (tag)
                return 0; /* the tag moves back; the namespace's own labels never changed */
        return set_ns_labels(ctx, ns, mr_json_get_str(nse, "labels", LABEL_REV, NULL),
                             mr_json_get_str(nse, "labels", LABEL_INJECTION, NULL));
}

static int step_rollback(PhaseCtx *ctx, const SidecarSpec *s, PhaseStatus *ps)
{
        json_object *rb = mr_json_get(ps->detail, "rollback", NULL);
        json_object *tag = mr_json_get(ps->detail, "tag", NULL);
        const char *scope = d_str(rb, "scope");
        json_object *a = ns_array(ps);
        bool changed = false;
        unsigned budget = s->concurrency;
        int r;

        /* First the injection source goes back (idempotent, done every step until the restarts finish). */
        if (!d_str(rb, "restored")) {
                if (tag && !scope && (r = move_tag(ctx, s, d_str(tag, "name"), d_str(tag, "from"))) < 0)
                        return r;
                for (size_t i = 0; i < arr_len(a); i++) {
                        json_object *nse = json_object_array_get_idx(a, i);
                        if (!streq_ptr(d_str(nse, "state"), "RollingBack"))
                                continue;
                        /* A namespace whose batch never started kept its labels (no tag) or follows the tag. */
                        if (!mr_json_get(nse, "deployments", NULL) && !scope && !tag)
                                continue;
                        if ((r = restore_labels(ctx, ps, nse, scope != NULL)) < 0)
                                return r;
                }
                if (mr_json_set_str(rb, "restored", "true") < 0)
                        return -ENOMEM;
                return PHASE_ADVANCE;
        }

        Drive d = { .pending = "Undo", .running = "Undoing", .done = "Undone", .all_done = true };
        for (size_t i = 0; i < arr_len(a); i++) {
                json_object *nse = json_object_array_get_idx(a, i);
                if (!streq_ptr(d_str(nse, "state"), "RollingBack"))
                        continue;
                d.want = tag ? d_str(tag, "from") : d_str(nse, "from");
                unsigned running = count_state(nse, "Undoing");
                budget = budget > running ? budget - running : 0;
                if ((r = drive_namespace(ctx, s, ps, nse, &d, &budget, &changed)) < 0) {
                        free(d.failure);
                        return r;
                }
        }
        if (d.failure) {
                _cleanup_free_ char *f = TAKE_PTR(d.failure);
                if (phase_set_message(ps, "rollback stuck: %s", f) < 0 ||
                    rollout_status_set_phase(ctx->status, ROLLOUT_PAUSED, "SidecarRollbackStuck",
                                             "phase sidecar: rollback stuck: %s; paused (resume to wait again)", f) < 0)
                        return -ENOMEM;
                return PHASE_ADVANCE;
        }
        if (!d.all_done)
                return changed ? PHASE_ADVANCE : PHASE_STAY;

        for (size_t i = 0; i < arr_len(a); i++) {
                json_object *nse = json_object_array_get_idx(a, i);
                if (!streq_ptr(d_str(nse, "state"), "RollingBack"))
                        continue;
                if (mr_json_set_str(nse, "state", "RolledBack") < 0)
                        return -ENOMEM;
                ns_event(ctx, d_str(nse, "name"), true, "SidecarRolledBack", "sidecars back on the previous revision");
        }
        /* Copies: the rollback record (which holds these strings) goes now. */
        _cleanup_free_ char *reason = strdup(strempty(d_str(rb, "reason")));
        _cleanup_free_ char *resume = strdup(strempty(d_str(rb, "resume")));
        _cleanup_free_ char *ns = scope ? strdup(scope) : NULL;
        if (!reason || !resume || (scope && !ns))
                return -ENOMEM;
        json_object_object_del(ps->detail, "rollback");
        if (ns) {
                /* One namespace: the phase carries on (or stays Completed) without it. */
                int st = phase_state_from_string(resume);
                phase_set_state(ps, st == PHASE_COMPLETED ? PHASE_COMPLETED : PHASE_PROGRESSING, ctx->now);
                if (phase_set_message(ps, "namespace %s rolled back (%s)", ns, reason) < 0)
                        return -ENOMEM;
                return PHASE_ADVANCE;
        }
        phase_set_state(ps, PHASE_ROLLED_BACK, ctx->now);
        if (phase_set_message(ps, "%s%s%s", reason, tag ? "; tag moved back to " : "; namespaces relabelled back",
                              tag ? d_str(tag, "from") : "") < 0)
                return -ENOMEM;
        return PHASE_ADVANCE;
}

/* The current batch: relabel, restart, wait, verify; then soak with the gates. */
static int step_progress(PhaseCtx *ctx, const SidecarSpec *s, PhaseStatus *ps)
{
        json_object *a = ns_array(ps);
        json_object *tag = mr_json_get(ps->detail, "tag", NULL);
        const char *stage = d_str(ps->detail, "stage");
        int64_t batch = d_int(ps->detail, "batch"), nb = n_batches(ps);
        bool changed = false;
        int r;

        if (streq_ptr(stage, "tag")) {
                if ((r = move_tag(ctx, s, d_str(tag, "name"), s->revision)) < 0)
                        return r;
                if (mr_json_set_str(ps->detail, "stage", "restart") < 0)
                        return -ENOMEM;
                phase_event(ctx, NULL, KUBE_EVENT_NORMAL, "SidecarTagMoved", "revision tag %s moved from %s to %s",
                            d_str(tag, "name"), d_str(tag, "from"), s->revision);
                return PHASE_ADVANCE;
        }
        if (batch >= nb) {
                size_t done = 0, back = 0;
                for (size_t i = 0; i < arr_len(a); i++) {
                        const char *st = d_str(json_object_array_get_idx(a, i), "state");
                        done += streq_ptr(st, "Upgraded");
                        back += streq_ptr(st, "RolledBack");
                }
                phase_set_state(ps, PHASE_COMPLETED, ctx->now);
                if (phase_set_message(ps, "%zu namespaces on revision %s%s%s%s", done, s->revision,
                                      tag ? " (tag " : "", tag ? d_str(tag, "name") : "", tag ? ")" : "") < 0)
                        return -ENOMEM;
                if (back && phase_set_message(ps, "%zu namespaces on revision %s, %zu rolled back", done,
                                              s->revision, back) < 0)
                        return -ENOMEM;
                return PHASE_ADVANCE;
        }

        if (streq_ptr(stage, "soak")) {
                usec_t since = (usec_t)d_int(ps->detail, "soakSince");
                r = phase_gates_check(ctx, ctx->spec->gates[PHASE_SIDECAR], ps, since, &changed);
                if (r == -MR_EGATE) {
                        _cleanup_free_ char *why = NULL;
                        if (asprintf(&why, "batch %lld: %s", (long long)batch + 1, ctx->err->message) < 0)
                                return -ENOMEM;
                        if ((r = begin_rollback(ctx, ps, NULL, why)) < 0)
                                return r;
                        return PHASE_ADVANCE;
                }
                if (r < 0)
                        return r;
                if (r == 0 || phase_elapsed(ctx, since) < s->soak) {
                        char buf[32];
                        if ((r = phase_message(ps, &changed, "batch %lld/%lld: soaking (%s)", (long long)batch + 1,
                                               (long long)nb, mr_duration_format(s->soak, buf, sizeof(buf)))) < 0)
                                return r;
                        return changed ? PHASE_ADVANCE : PHASE_STAY;
                }
                if (d_set_int(ps->detail, "batch", batch + 1) < 0 || mr_json_set_str(ps->detail, "stage", "restart") < 0)
                        return -ENOMEM;
                return PHASE_ADVANCE;
        }

        /* restart: start each namespace of the batch, then drive its Deployments. */
        for (size_t i = 0; i < arr_len(a); i++) {
                json_object *nse = json_object_array_get_idx(a, i);
                if (d_int(nse, "batch") != batch || !streq_ptr(d_str(nse, "state"), "Pending"))
                        continue;
                const char *ns = d_str(nse, "name");
                json_object *deps = NULL;
                if (!tag && (r = set_ns_labels(ctx, ns, s->revision, NULL)) < 0)
                        return r;
                if ((r = list_deployments(ctx, ns, &deps)) < 0)
                        return r;
                if (json_object_object_add(nse, "deployments", deps) < 0) {
                        json_object_put(deps);
                        return -ENOMEM;
                }
                if (mr_json_set_str(nse, "state", "Restarting") < 0)
                        return -ENOMEM;
                ns_event(ctx, ns, false, "SidecarRestarting", "restarting Deployments onto the new revision");
                changed = true;
        }
        unsigned running = 0;
        for (size_t i = 0; i < arr_len(a); i++) {
                json_object *nse = json_object_array_get_idx(a, i);
                if (d_int(nse, "batch") == batch && streq_ptr(d_str(nse, "state"), "Restarting"))
                        running += count_state(nse, "Restarting");
        }
        unsigned budget = s->concurrency > running ? s->concurrency - running : 0;
        Drive d = { .pending = "Pending", .running = "Restarting", .done = "Done", .want = s->revision,
                    .all_done = true };
        size_t in_batch = 0, upgraded = 0;
        bool all = true;
        for (size_t i = 0; i < arr_len(a); i++) {
                json_object *nse = json_object_array_get_idx(a, i);
                if (d_int(nse, "batch") != batch)
                        continue;
                in_batch++;
                if (!streq_ptr(d_str(nse, "state"), "Restarting")) {
                        upgraded += !streq_ptr(d_str(nse, "state"), "Pending");
                        continue;
                }
                d.all_done = true;
                if ((r = drive_namespace(ctx, s, ps, nse, &d, &budget, &changed)) < 0) {
                        free(d.failure);
                        return r;
                }
                if (d.all_done && !d.failure) {
                        if (mr_json_set_str(nse, "state", "Upgraded") < 0)
                                return -ENOMEM;
                        ns_event(ctx, d_str(nse, "name"), false, "SidecarUpgraded", "every Deployment restarted and verified");
                        changed = true;
                        upgraded++;
                }
                all = all && d.all_done;
        }
        if (d.failure) {
                _cleanup_free_ char *f = TAKE_PTR(d.failure);
                if ((r = begin_rollback(ctx, ps, NULL, f)) < 0)
                        return r;
                return PHASE_ADVANCE;
        }
        if (all) {
                if (mr_json_set_str(ps->detail, "stage", "soak") < 0 || d_set_int(ps->detail, "soakSince", (int64_t)ctx->now) < 0)
                        return -ENOMEM;
                return PHASE_ADVANCE;
        }
        if ((r = phase_message(ps, &changed, "batch %lld/%lld: restarting (%zu/%zu namespaces done)", (long long)batch + 1,
                               (long long)nb, upgraded, in_batch)) < 0)
                return r;
        return changed ? PHASE_ADVANCE : PHASE_STAY;
}

static int sidecar_step(PhaseCtx *ctx, const void *spec, PhaseStatus *ps)
{
        const SidecarSpec *s = spec;
        int r;

        switch (ps->state) {
        case PHASE_PENDING:
                r = plan(ctx, s, ps);
                if (r == -MR_ECONFIG) {
                        /* Nothing changed yet: the operator fixes the cluster or the spec, then resumes. */
                        if (phase_set_message(ps, "%s", ctx->err->message) < 0 ||
                            rollout_status_set_phase(ctx->status, ROLLOUT_PAUSED, "SidecarPreflight",
                                                     "phase sidecar cannot start: %s; paused", ctx->err->message) < 0)
                                return -ENOMEM;
                        return PHASE_ADVANCE;
                }
                return r;
        case PHASE_PROGRESSING:
                return step_progress(ctx, s, ps);
        case PHASE_ROLLING_BACK:
                return step_rollback(ctx, s, ps);
        default:
                return PHASE_STAY;
        }
}

static int sidecar_rollback(PhaseCtx *ctx, const void *spec, PhaseStatus *ps, const char *scope)
{
        json_object *rb = mr_json_get(ps->detail, "rollback", NULL);
        (void)spec;

        if (scope && !ns_find(ps, scope))
                return mr_error_set(ctx->err, -EINVAL, "namespace %s is not part of the sidecar phase", scope);
        if (rb && !d_str(rb, "scope"))
                return 0; /* the whole phase rolls back already */
        if (rb && scope && streq_ptr(d_str(rb, "scope"), scope))
                return 0;
        if (rb && scope)
                return mr_error_set(ctx->err, -EBUSY, "namespace %s is rolling back; ask again once it is done",
                                    d_str(rb, "scope"));
        if (rb) {
                /* Escalate a one-namespace rollback to the whole phase; restart its undo (idempotent). */
                json_object_object_del(ps->detail, "rollback");
        }
        return begin_rollback(ctx, ps, scope, "rollback requested by an operator");
}

static void sidecar_free_spec(void *p)
{
        (void)sidecar_spec_free(p);
}

static int sidecar_parse(json_object *section, const char *path, void **ret, MrError *err)
{
        SidecarSpec *s = NULL;
        int r = sidecar_spec_parse(section, path, &s, err);
        if (r < 0)
                return r;
        *ret = s;
        return 0;
}

static int sidecar_describe(const void *spec, char **ret)
{
        const SidecarSpec *s = spec;
        _cleanup_free_ char *which = NULL, *head = NULL;
        char soak[32], timeout[32];
        int r = 0;

        if (s->list) {
                size_t size = 0;
                FILE *f = open_memstream(&which, &size);
                if (!f)
                        return -ENOMEM;
                fputs("namespaces ", f);
                for (char **i = s->list; *i; i++)
                        fprintf(f, "%s%s", i == s->list ? "" : ", ", *i);
                if (fclose(f) != 0)
                        return -ENOMEM;
        } else if (s->selector)
                r = asprintf(&which, "the namespaces matching %s", s->selector);
        else
                r = asprintf(&which, "the namespaces labelled istio.io/rev=%s", s->tag);
        if (r < 0) {
                which = NULL; /* asprintf leaves it undefined on failure */
                return -ENOMEM;
        }
        if (s->tag)
                r = asprintf(&head, "move tag %s to revision %s, then restart %s", s->tag, s->revision, which);
        else
                r = asprintf(&head, "relabel %s istio.io/rev=%s and restart them", which, s->revision);
        if (r < 0) {
                head = NULL;
                return -ENOMEM;
        }
        r = asprintf(ret, "%s; %s%s%sbatches of %u, %u restarts at once, %s each, soak %s", head,
                     s->canary ? "canary " : "", strempty(s->canary), s->canary ? " first, " : "", s->batch_size,
                     s->concurrency, mr_duration_format(s->restart_timeout, timeout, sizeof(timeout)),
                     mr_duration_format(s->soak, soak, sizeof(soak)));
        return r < 0 ? -ENOMEM : 0;
}

const PhaseOps sidecar_phase_ops = {
        .kind = PHASE_SIDECAR,
        .parse = sidecar_parse,
        .free_spec = sidecar_free_spec,
        .step = sidecar_step,
        .rollback = sidecar_rollback,
        .describe = sidecar_describe,
};
