/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd-cleanup.c — `meshroll cleanup NAME [--apply] [-o table|json]`: the
 * runbook's final cutover, explicit and after a completed Rollout.
 *
 * It reports everything that still points at the old control-plane
 * revision(s), as recorded by the Rollout's own phases (the sidecar phase's
 * tag and namespaces' previous revisions, the gateway phase's `from` when
 * its selector key is istio.io/rev):
 *
 *   - namespaces labelled istio.io/rev=<old> (or a tag still on <old>);
 *   - revision tags (MutatingWebhookConfigurations labelled istio.io/tag)
 *     pointing at <old>;
 *   - pods still injected by <old> (annotation istio.io/rev or
 *     sidecar.istio.io/status), counted per namespace;
 *   - the old gateway Deployment the gateway phase kept running;
 *   - the old istiod Deployment istiod-<old>.
 *
 * With --apply it scales the old gateway Deployment to 0 (only while the
 * Service selects the new one), which is the one step that is safe to
 * automate. It never deletes istiod: removing a control plane is the
 * operator's helm step (`helm uninstall istiod-<old>`), reported as such,
 * once nothing above still needs it. Read-only otherwise; exit 0 after a
 * report, 1 when the Rollout is not Completed or the API fails, 2 on bad
 * flags.
 */
#include <stdio.h>

#include "meshroll/json-util.h"
#include "meshroll/log.h"
#include "cli.h"
#include "gateway.h"
#include "sidecar.h"
#include "spec.h"
#include "status.h"

typedef struct Cleanup {
        KubeClient *client;
        json_object *findings; /* array of {kind, namespace, name, revision, detail, action, applied} */
        char **old;            /* the old revisions, NULL-terminated */
        size_t n_old;
} Cleanup;

static int add_old(Cleanup *c, const char *rev, const char *target)
{
        if (isempty(rev) || streq_ptr(rev, target))
                return 0;
        for (size_t i = 0; i < c->n_old; i++)
                if (streq(c->old[i], rev))
                        return 0;
        char **l = reallocarray(c->old, c->n_old + 2, sizeof(char *));
        if (!l)
                return -ENOMEM;
        c->old = l;
        if (!(l[c->n_old] = strdup(rev)))
                return -ENOMEM;
        l[++c->n_old] = NULL;
        return 0;
}

static bool is_old(const Cleanup *c, const char *rev)
{
        for (size_t i = 0; rev && i < c->n_old; i++)
                if (streq(c->old[i], rev))
                        return true;
        return false;
}

static int add(Cleanup *c, const char *kind, const char *ns, const char *name, const char *rev, const char *detail,
               const char *action, bool applied)
{
        json_object *f = json_object_new_object();
        if (!f || json_object_array_add(c->findings, f) < 0) {
                json_object_put(f);
                return -ENOMEM;
        }
        if (mr_json_set_str(f, "kind", kind) < 0 || mr_json_set_str(f, "namespace", ns) < 0 ||
            mr_json_set_str(f, "name", name) < 0 || mr_json_set_str(f, "revision", rev) < 0 ||
            mr_json_set_str(f, "detail", detail) < 0 || mr_json_set_str(f, "action", action) < 0 ||
            mr_json_set_bool(f, "applied", applied) < 0)
                return -ENOMEM;
        return 0;
}

static int list(Cleanup *c, const KubeResource *res, const char *ns, const char *selector, json_object **ret)
{
        KubeListOptions lo = { .label_selector = selector };
        KubeStatus st;
        int r = kube_list(c->client, res, ns, &lo, ret, NULL, &st);
        if (r < 0)
                return log_error_errno(r, "Cannot list %s: %s", res->plural, st.message[0] ? st.message : "%m");
        return 0;
}

/* Tags on an old revision, and namespaces that follow them or name an old revision directly. */
static int find_labels(Cleanup *c, const char *target)
{
        _cleanup_(json_object_putp) json_object *tags = NULL, *nss = NULL;
        char detail[256], action[256];
        int r;

        if ((r = list(c, &KUBE_MUTATINGWEBHOOKS, NULL, "istio.io/tag", &tags)) < 0 ||
            (r = list(c, &KUBE_NAMESPACES, NULL, "istio.io/rev", &nss)) < 0)
                return r;
        for (size_t i = 0; i < json_object_array_length(tags); i++) {
                json_object *t = json_object_array_get_idx(tags, i);
                const char *tag = mr_json_get_str(t, "metadata", "labels", "istio.io/tag", NULL);
                const char *rev = mr_json_get_str(t, "metadata", "labels", "istio.io/rev", NULL);
                if (!is_old(c, rev))
                        continue;
                snprintf(detail, sizeof(detail), "tag %s points at %s", strna(tag), rev);
                snprintf(action, sizeof(action), "move it to %s (a sidecar phase with tag: %s) or remove it",
                         strna(target), strna(tag));
                if ((r = add(c, "Tag", NULL, mr_json_get_str(t, "metadata", "name", NULL), rev, detail, action,
                             false)) < 0)
                        return r;
        }
        for (size_t i = 0; i < json_object_array_length(nss); i++) {
                json_object *n = json_object_array_get_idx(nss, i);
                const char *label = mr_json_get_str(n, "metadata", "labels", "istio.io/rev", NULL);
                const char *rev = label;
                /* A tag name resolves to the revision its webhook points at. */
                for (size_t j = 0; j < json_object_array_length(tags); j++) {
                        json_object *t = json_object_array_get_idx(tags, j);
                        if (streq_ptr(mr_json_get_str(t, "metadata", "labels", "istio.io/tag", NULL), label))
                                rev = mr_json_get_str(t, "metadata", "labels", "istio.io/rev", NULL);
                }
                if (!is_old(c, rev))
                        continue;
                snprintf(detail, sizeof(detail), "labelled istio.io/rev=%s%s%s", strna(label),
                         streq_ptr(label, rev) ? "" : " → ", streq_ptr(label, rev) ? "" : strna(rev));
                snprintf(action, sizeof(action), "relabel istio.io/rev=%s and restart its workloads", strna(target));
                if ((r = add(c, "Namespace", NULL, mr_json_get_str(n, "metadata", "name", NULL), rev, detail, action,
                             false)) < 0)
                        return r;
        }
        return 0;
}

/* Pods still injected by an old revision, one finding per namespace and revision. */
static int find_pods(Cleanup *c)
{
        _cleanup_(json_object_putp) json_object *pods = NULL, *counts = json_object_new_object();
        int r;

        if (!counts)
                return -ENOMEM;
        if ((r = list(c, &KUBE_PODS, NULL, NULL, &pods)) < 0)
                return r;
        for (size_t i = 0; i < json_object_array_length(pods); i++) {
                json_object *p = json_object_array_get_idx(pods, i);
                const char *rev = sidecar_pod_revision(p);
                char key[512];
                int64_t n = 0;
                if (!is_old(c, rev) || mr_json_get(p, "metadata", "deletionTimestamp", NULL))
                        continue;
                snprintf(key, sizeof(key), "%s\t%s", strna(mr_json_get_str(p, "metadata", "namespace", NULL)), rev);
                (void)mr_json_get_int(&n, counts, key, NULL);
                if (mr_json_set_int(counts, key, n + 1) < 0)
                        return -ENOMEM;
        }
        json_object_object_foreach(counts, key, val) {
                char ns[256], detail[128], action[320];
                const char *tab = strchr(key, '\t');
                snprintf(ns, sizeof(ns), "%.*s", (int)(tab - key), key);
                snprintf(detail, sizeof(detail), "%lld pod(s) injected by %s", (long long)json_object_get_int64(val),
                         tab + 1);
                snprintf(action, sizeof(action), "restart them (kubectl rollout restart deployment -n %s)", ns);
                if ((r = add(c, "Pods", ns, NULL, tab + 1, detail, action, false)) < 0)
                        return r;
        }
        return 0;
}

/* The old gateway the gateway phase kept: scaled to 0 with --apply while the Service selects the new one. */
static int find_gateway(Cleanup *c, const GatewaySpec *g, const PhaseStatus *ps, bool apply)
{
        _cleanup_(json_object_putp) json_object *svc = NULL, *d = NULL, *patch = NULL;
        _cleanup_free_ char *path = NULL, *dpath = NULL;
        const char *old = mr_json_get_str(ps->detail, "oldDeployment", NULL);
        char detail[256];
        KubeStatus st;
        int64_t replicas = 0;
        int r;

        if (!old)
                return 0;
        if (kube_path(&KUBE_SERVICES, g->service_namespace, g->service_name, NULL, &path) < 0 ||
            kube_path(&KUBE_DEPLOYMENTS, g->service_namespace, old, NULL, &dpath) < 0)
                return -ENOMEM;
        r = kube_get(c->client, dpath, &d, &st);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_error_errno(r, "Cannot read Deployment %s/%s: %s", g->service_namespace, old,
                                       st.message[0] ? st.message : "%m");
        (void)mr_json_get_int(&replicas, d, "spec", "replicas", NULL);
        if (replicas == 0)
                return 0;
        r = kube_get(c->client, path, &svc, &st);
        if (r < 0)
                return log_error_errno(r, "Cannot read Service %s/%s: %s", g->service_namespace, g->service_name,
                                       st.message[0] ? st.message : "%m");
        const char *cur = mr_json_get_str(svc, "spec", "selector", g->selector_key, NULL);
        if (!streq_ptr(cur, g->to)) {
                snprintf(detail, sizeof(detail), "%lld replicas; Service %s selects %s=%s", (long long)replicas,
                         g->service_name, g->selector_key, strna(cur));
                return add(c, "Deployment", g->service_namespace, old, g->from, detail,
                           "keep it: the Service still selects the old gateway", false);
        }
        snprintf(detail, sizeof(detail), "old gateway, %lld replicas, no longer selected by Service %s",
                 (long long)replicas, g->service_name);
        if (apply) {
                static const char body[] = "{\"spec\":{\"replicas\":0}}";
                if (mr_json_parse(body, sizeof(body) - 1, 1 << 10, &patch) < 0)
                        return log_oom();
                r = kube_patch(c->client, dpath, KUBE_PATCH_MERGE, patch, NULL, &st);
                if (r < 0)
                        return log_error_errno(r, "Cannot scale Deployment %s/%s to 0: %s", g->service_namespace, old,
                                               st.message[0] ? st.message : "%m");
        }
        return add(c, "Deployment", g->service_namespace, old, g->from, detail,
                   apply ? "scaled to 0" : "scale to 0 (meshroll cleanup --apply)", apply);
}

static int find_istiod(Cleanup *c, const char *istio_ns)
{
        for (size_t i = 0; i < c->n_old; i++) {
                _cleanup_(json_object_putp) json_object *d = NULL;
                _cleanup_free_ char *name = NULL, *path = NULL, *action = NULL;
                KubeStatus st;
                if (asprintf(&name, "istiod-%s", c->old[i]) < 0 ||
                    kube_path(&KUBE_DEPLOYMENTS, istio_ns, name, NULL, &path) < 0)
                        return -ENOMEM;
                int r = kube_get(c->client, path, &d, &st);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return log_error_errno(r, "Cannot read Deployment %s/%s: %s", istio_ns, name,
                                               st.message[0] ? st.message : "%m");
                if (asprintf(&action, "once nothing above remains: helm uninstall %s -n %s (meshroll never deletes it)",
                             name, istio_ns) < 0)
                        return -ENOMEM;
                if ((r = add(c, "ControlPlane", istio_ns, name, c->old[i], "old istiod still installed", action,
                             false)) < 0)
                        return r;
        }
        return 0;
}

static void print_table(const Cleanup *c, const char *rollout)
{
        size_t n = json_object_array_length(c->findings);
        printf("Rollout %s: old revision%s:", rollout, c->n_old == 1 ? "" : "s");
        for (size_t i = 0; i < c->n_old; i++)
                printf(" %s", c->old[i]);
        printf("%s\n", c->n_old ? "" : " none recorded");
        if (n == 0) {
                printf("Nothing points at the old revision any more.\n");
                return;
        }
        printf("\n%-12s %-40s %-10s %-44s %s\n", "KIND", "NAME", "REVISION", "WHAT", "ACTION");
        for (size_t i = 0; i < n; i++) {
                json_object *f = json_object_array_get_idx(c->findings, i);
                const char *ns = mr_json_get_str(f, "namespace", NULL), *name = mr_json_get_str(f, "name", NULL);
                char full[300];
                snprintf(full, sizeof(full), "%s%s%s", strempty(ns), ns && name ? "/" : "", strempty(name));
                printf("%-12s %-40s %-10s %-44s %s\n", mr_json_get_str(f, "kind", NULL), full,
                       strna(mr_json_get_str(f, "revision", NULL)), strna(mr_json_get_str(f, "detail", NULL)),
                       strna(mr_json_get_str(f, "action", NULL)));
        }
}

int cmd_cleanup(Cli *cli, int argc, char **argv)
{
        static const struct option options[] = {
                { "apply", no_argument, NULL, 'a' },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                CLI_COMMON_OPTIONS,
                {},
        };
        _cleanup_(kube_client_freep) KubeClient *client = NULL;
        _cleanup_(json_object_putp) json_object *obj = NULL, *findings = json_object_new_array();
        _cleanup_(rollout_spec_freep) RolloutSpec *spec = NULL;
        _cleanup_(rollout_status_freep) RolloutStatus *s = NULL;
        _cleanup_free_ char *path = NULL;
        const char *output = "table", *target = NULL, *istio_ns = "istio-system";
        bool apply = false;
        MrError err = {};
        KubeStatus st;
        int c, k;

        if (!findings)
                return log_oom(), 1;
        while ((c = getopt_long(argc, argv, "o:h", options, NULL)) >= 0) {
                if (c == 'a')
                        apply = true;
                else if (c == 'o')
                        output = optarg;
                else if (c == 'h') {
                        printf("Usage: meshroll cleanup NAME [--apply] [-o table|json]\n\n"
                               "After a completed Rollout: reports what still points at the old control-plane\n"
                               "revision (namespaces, tags, injected pods, the old gateway, the old istiod).\n\n"
                               "  --apply                   scale the old gateway Deployment to 0 (istiod is never\n"
                               "                            deleted: that is the operator's helm step)\n"
                               "  -o, --output table|json   output format (default table)\n" CLI_COMMON_HELP);
                        return 0;
                } else if ((k = cli_parse_common(cli, c, optarg)) != 0)
                        return k;
        }
        if (optind + 1 != argc)
                return cli_usage_error("cleanup", "expected exactly one Rollout name (usage: meshroll cleanup NAME "
                                                  "[--apply] [-o table|json])");
        if (!streq(output, "table") && !streq(output, "json"))
                return cli_usage_error("cleanup", "-o: expected table or json, got \"%s\"", output);
        const char *name = argv[optind];
        if ((k = cli_client(cli, NULL, &client)) != 0)
                return k;
        if (kube_path(&KUBE_ROLLOUTS, NULL, name, NULL, &path) < 0)
                return log_oom(), 1;
        k = kube_get(client, path, &obj, &st);
        if (k < 0) {
                log_error_errno(k, "Cannot read Rollout %s: %s", name, st.message[0] ? st.message : "%m");
                return 1;
        }
        if (rollout_spec_from_json(obj, &spec, &err) < 0 ||
            rollout_status_from_json(mr_json_get(obj, "status", NULL), &s, &err) < 0) {
                log_error("Rollout %s: %s", name, err.message);
                return 1;
        }
        if (s->phase != ROLLOUT_COMPLETED) {
                log_error("Rollout %s is %s: cleanup is for a Completed rollout (meshroll status %s)", name,
                          rollout_phase_to_string(s->phase), name);
                return 1;
        }

        Cleanup cl = { .client = client, .findings = findings };
        const SidecarSpec *sc = spec->phase_spec[PHASE_SIDECAR];
        const GatewaySpec *gw = spec->phase_spec[PHASE_GATEWAY];
        PhaseStatus *sps = rollout_status_phase(s, PHASE_SIDECAR);
        PhaseStatus *gps = rollout_status_phase(s, PHASE_GATEWAY);
        k = 0;
        if (sc && sps && sps->state == PHASE_COMPLETED) {
                json_object *nss = mr_json_get(sps->detail, "namespaces", NULL);
                target = sc->revision;
                istio_ns = sc->istio_namespace;
                k = add_old(&cl, mr_json_get_str(sps->detail, "tag", "from", NULL), target);
                for (size_t i = 0; k >= 0 && nss && i < json_object_array_length(nss); i++)
                        k = add_old(&cl, mr_json_get_str(json_object_array_get_idx(nss, i), "from", NULL), target);
        }
        if (k >= 0 && gw && gps && gps->state == PHASE_COMPLETED && streq(gw->selector_key, "istio.io/rev")) {
                if (!target)
                        target = gw->to;
                k = add_old(&cl, gw->from, gw->to);
        }
        if (k >= 0)
                k = find_labels(&cl, target);
        if (k >= 0)
                k = find_pods(&cl);
        if (k >= 0 && gw && gps && gps->state == PHASE_COMPLETED)
                k = find_gateway(&cl, gw, gps, apply);
        if (k >= 0)
                k = find_istiod(&cl, istio_ns);
        if (k < 0) {
                strv_free(cl.old);
                return 1;
        }
        if (streq(output, "json")) {
                _cleanup_(json_object_putp) json_object *out = json_object_new_object(), *old = json_object_new_array();
                for (size_t i = 0; old && i < cl.n_old; i++)
                        (void)json_object_array_add(old, json_object_new_string(cl.old[i]));
                if (!out || !old || mr_json_set_str(out, "rollout", name) < 0 ||
                    json_object_object_add(out, "oldRevisions", json_object_get(old)) < 0 ||
                    json_object_object_add(out, "findings", json_object_get(findings)) < 0) {
                        strv_free(cl.old);
                        return log_oom(), 1;
                }
                printf("%s\n", json_object_to_json_string_ext(out, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        } else
                print_table(&cl, name);
        strv_free(cl.old);
        return 0;
}
