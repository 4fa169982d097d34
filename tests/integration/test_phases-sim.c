/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sidecar and gateway phases against the in-process simulator, judged
 * by the cluster's final state (pods' injected revision, the tag's webhook,
 * the Service's selector and endpoints) and the audit log:
 *
 *   - ztunnel → sidecar → gateway completes: every restarted pod carries
 *     the new revision, the tag points at it, the Service selects only the
 *     new gateway's pods and the old gateway still runs;
 *   - rolling the sidecar phase back (whole) moves the tag back and puts
 *     every pod on the old revision again, then pauses the Rollout;
 *   - rolling one namespace back relabels only it and restarts only it;
 *   - rolling the gateway phase back switches the selector back;
 *   - a coordinator stopped mid-batch is replaced by another that finishes
 *     the phase, restarting no Deployment twice; one stopped while the
 *     gateway soaks is replaced by one that does not switch again;
 *   - the default tag also moves istio-injection=enabled namespaces and the
 *     istiod-default-validator webhook;
 *   - new sidecars that never get Ready roll the phase back by themselves,
 *     and so does a metric gate failing while the canary batch soaks (a
 *     fake Prometheus on loopback);
 *   - a target revision that is not installed pauses before any write.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "meshroll/fileio.h"
#include "meshroll/json-util.h"
#include "meshroll/kube.h"
#include "meshroll/yaml-json.h"

#include "engine.h"
#include "http-fixture.h"
#include "sidecar.h"
#include "sim.h"
#include "status.h"

static const char scenario[] =
        "name: phases-test\n"
        "nodes:\n"
        "  - {name: \"n{i}\", count: 2, zone: za}\n"
        "namespaces:\n"
        "  - {name: meshroll}\n"
        "  - {name: pay, labels: {istio.io/rev: prod-stable}}\n"
        "  - {name: shop, labels: {istio.io/rev: prod-stable}}\n"
        "  - {name: legacy, labels: {istio-injection: enabled}}\n"
        "objects:\n"
        "  - apiVersion: admissionregistration.k8s.io/v1\n"
        "    kind: ValidatingWebhookConfiguration\n"
        "    metadata: {name: istiod-default-validator, labels: {istio.io/rev: 1-24-0, istio.io/tag: default}}\n"
        "    webhooks: [{name: validation.istio.io, clientConfig: {service: {name: istiod-1-24-0,"
        " namespace: istio-system, path: /validate}}, sideEffects: None, admissionReviewVersions: [v1]}]\n"
        "istio:\n"
        "  revisions:\n"
        "    - {name: 1-24-0, version: 1.24.0, replicas: 1}\n"
        "    - {name: 1-25-0, version: 1.25.0, replicas: 1}\n"
        "  tags: {default: 1-24-0, prod-stable: 1-24-0}\n"
        "  ztunnel: {revision: 1-24-0, pendingRevision: 1-25-0, updateStrategy: OnDelete,"
        " startupSeconds: 1, shutdownSeconds: 1}\n"
        "  gateways:\n"
        "    - {name: ingress-blue, namespace: istio-ingress, revision: 1-24-0, replicas: 2, startupSeconds: 1,\n"
        "       service: {name: istio-ingressgateway, selector: {istio: ingressgateway, istio.io/rev: 1-24-0}}}\n"
        "    - {name: ingress-green, namespace: istio-ingress, revision: 1-25-0, replicas: 2, startupSeconds: 1}\n"
        "workloads:\n"
        "  - {name: web, namespace: shop, replicas: 2, startupSeconds: 1, shutdownSeconds: 1}\n"
        "  - {name: cart, namespace: shop, replicas: 1, startupSeconds: 1, shutdownSeconds: 1}\n"
        "  - {name: api, namespace: pay, replicas: 2, startupSeconds: 1, shutdownSeconds: 1}\n"
        "  - {name: old, namespace: legacy, replicas: 1, startupSeconds: 1, shutdownSeconds: 1}\n";

#define ROLLOUT_HEAD "apiVersion: meshroll.io/v1alpha1\nkind: Rollout\nmetadata: {name: r1}\nspec:\n"
#define SIDECAR_TAG                                                                                                \
        "  sidecar: {revision: 1-25-0, tag: prod-stable, namespaces: {canary: shop},"                             \
        " restart: {concurrency: 1, timeout: 60s}, soak: 0s}\n"
#define GATEWAY                                                                                                    \
        "  gateway: {service: {namespace: istio-ingress, name: istio-ingressgateway}, from: 1-24-0, to: 1-25-0,"   \
        " timeout: 60s, soak: 0s}\n"

typedef struct Fixture {
        char dir[128], audit[192];
        Sim *sim;
        sd_event *event;
        KubeClient *client;
        Engine *engine;
        bool finished;
        RolloutPhase phase;
        bool stop_when_restarting; /* stop the loop once a sidecar Deployment is Restarting */
        bool stop_when_gateway_soaks; /* stop the loop once the gateway phase soaks (switched) */
        bool stopped;
} Fixture;

static void create(Fixture *f, const KubeResource *res, json_object *obj)
{
        _cleanup_free_ char *path = NULL;
        KubeStatus st;
        assert_int_equal(kube_path(res, NULL, NULL, NULL, &path), 0);
        if (kube_create(f->client, path, obj, NULL, &st) < 0)
                fail_msg("create %s: %s", res->plural, st.message);
}

static void start_with(Fixture *f, const char *extra_scenario, const char *rollout)
{
        char crd_path[512];
        _cleanup_free_ char *data = NULL;
        MrError err = {};
        size_t size;

        snprintf(f->dir, sizeof(f->dir), "/tmp/meshroll-phases-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->audit, sizeof(f->audit), "%s/audit.jsonl", f->dir);
        char text[4096];
        snprintf(text, sizeof(text), "%s%s", scenario, strempty(extra_scenario));
        SimOptions so = { .scenario_data = text, .scenario_size = strlen(text), .audit_path = f->audit, .speed = 10 };
        if (sim_start(&so, &f->sim, &err) < 0)
                fail_msg("sim_start: %s", err.message);

        KubeConfigOptions ko = { .server = sim_url(f->sim) };
        _cleanup_(kube_config_freep) KubeConfig *config = NULL;
        assert_int_equal(kube_config_load(&ko, &config, &err), 0);
        KubeClientOptions co = { .qps = -1, .max_retries = 2 };
        assert_int_equal(kube_client_new(config, &co, &f->client, &err), 0);
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(kube_client_attach_event(f->client, f->event), 0);

        snprintf(crd_path, sizeof(crd_path), "%s/manifests/crd-rollout.yaml", getenv("MESHROLL_SOURCE_ROOT"));
        _cleanup_(json_object_putp) json_object *crd = NULL, *doc = NULL;
        assert_int_equal(mr_read_file(crd_path, 1 << 20, &data, &size), 0);
        assert_int_equal(mr_yaml_parse(data, size, &crd, NULL), 0);
        create(f, &KUBE_CRDS, crd);
        assert_int_equal(mr_yaml_parse(rollout, strlen(rollout), &doc, NULL), 0);
        create(f, &KUBE_ROLLOUTS, doc);
}

static void start(Fixture *f, const char *rollout)
{
        start_with(f, NULL, rollout);
}

static void on_change(Engine *e, const RolloutStatus *s, void *userdata)
{
        Fixture *f = userdata;
        for (size_t i = 0; f->stop_when_gateway_soaks && i < s->n_phases; i++)
                if (s->phases[i].kind == PHASE_GATEWAY &&
                    streq_ptr(mr_json_get_str(s->phases[i].detail, "stage", NULL), "soak"))
                        f->stopped = true;
        if (!f->stop_when_restarting)
                return;
        for (size_t i = 0; i < s->n_phases; i++) {
                if (s->phases[i].kind != PHASE_SIDECAR)
                        continue;
                json_object *nss = mr_json_get(s->phases[i].detail, "namespaces", NULL);
                for (size_t j = 0; nss && j < json_object_array_length(nss); j++) {
                        json_object *deps = mr_json_get(json_object_array_get_idx(nss, j), "deployments", NULL);
                        for (size_t k = 0; deps && k < json_object_array_length(deps); k++)
                                if (streq_ptr(mr_json_get_str(json_object_array_get_idx(deps, k), "state", NULL),
                                              "Restarting"))
                                        f->stopped = true;
                }
        }
}

static void on_finished(Engine *e, RolloutPhase phase, void *userdata)
{
        Fixture *f = userdata;
        f->finished = true;
        f->phase = phase;
}

static void start_engine(Fixture *f)
{
        EngineOptions o = { .rollout = "r1", .tick = 100 * USEC_PER_MSEC, .on_change = on_change,
                            .on_finished = on_finished, .userdata = f };
        assert_int_equal(engine_new(f->event, f->client, &o, &f->engine), 0);
}

static json_object *get(Fixture *f, const KubeResource *res, const char *ns, const char *name)
{
        _cleanup_free_ char *path = NULL;
        json_object *o = NULL;
        KubeStatus st;
        assert_int_equal(kube_path(res, ns, name, NULL, &path), 0);
        assert_int_equal(kube_get(f->client, path, &o, &st), 0);
        return o;
}

/* Runs the loop until the engine finishes (or the fixture stops it), within d. */
static void run_until_finished(Fixture *f, usec_t d)
{
        usec_t end = mr_now_monotonic(NULL) + d;
        while (!f->finished && !f->stopped) {
                usec_t now = mr_now_monotonic(NULL);
                if (now >= end)
                        fail_msg("the rollout did not finish in time");
                assert_true(sd_event_run(f->event, MIN(end - now, 200 * USEC_PER_MSEC)) >= 0);
        }
}

/* Runs the loop until the Rollout is Paused; its status.reason must be reason. */
static void run_until_paused(Fixture *f, const char *reason, usec_t d)
{
        usec_t end = mr_now_monotonic(NULL) + d;
        for (;;) {
                if (mr_now_monotonic(NULL) >= end)
                        fail_msg("the rollout did not pause in time");
                assert_true(sd_event_run(f->event, 200 * USEC_PER_MSEC) >= 0);
                _cleanup_(json_object_putp) json_object *r = get(f, &KUBE_ROLLOUTS, NULL, "r1");
                if (streq_ptr(mr_json_get_str(r, "status", "phase", NULL), "Paused")) {
                        if (!streq_ptr(mr_json_get_str(r, "status", "reason", NULL), reason))
                                fail_msg("paused with %s (%s), expected %s",
                                         mr_json_get_str(r, "status", "reason", NULL),
                                         mr_json_get_str(r, "status", "message", NULL), reason);
                        return;
                }
        }
}

static void stop(Fixture *f)
{
        f->engine = engine_free(f->engine);
        kube_client_free(f->client);
        sd_event_unref(f->event);
        sim_stop(f->sim);
        unlink(f->audit);
        rmdir(f->dir);
}

static void annotate(Fixture *f, const char *key, const char *value)
{
        _cleanup_(json_object_putp) json_object *patch = json_object_new_object();
        json_object *ann = mr_json_ensure_object(patch, "metadata", "annotations", NULL);
        KubeStatus st;
        assert_int_equal(mr_json_set_str(ann, key, value), 0);
        assert_int_equal(kube_patch(f->client, "/apis/meshroll.io/v1alpha1/rollouts/r1", KUBE_PATCH_MERGE, patch, NULL,
                                    &st),
                         0);
}

/* Every running pod of the namespace's Deployments carries revision want (NULL: no sidecar). */
static void assert_pods_on(Fixture *f, const char *ns, const char *want)
{
        _cleanup_(json_object_putp) json_object *pods = NULL;
        KubeStatus st;
        size_t n = 0;
        assert_int_equal(kube_list(f->client, &KUBE_PODS, ns, NULL, &pods, NULL, &st), 0);
        for (size_t i = 0; i < json_object_array_length(pods); i++) {
                json_object *p = json_object_array_get_idx(pods, i);
                if (mr_json_get(p, "metadata", "deletionTimestamp", NULL))
                        continue;
                n++;
                if (!streq_ptr(sidecar_pod_revision(p), want))
                        fail_msg("pod %s/%s: revision %s, want %s", ns, mr_json_get_str(p, "metadata", "name", NULL),
                                 strna(sidecar_pod_revision(p)), strna(want));
        }
        assert_true(n > 0);
}

/* Waits (bounded) until the scenario's pods of ns exist: the simulator creates them asynchronously. */
static void wait_pods(Fixture *f, const char *ns)
{
        usec_t end = mr_now_monotonic(NULL) + 10 * USEC_PER_SEC;
        for (;;) {
                _cleanup_(json_object_putp) json_object *pods = NULL;
                KubeStatus st;
                assert_int_equal(kube_list(f->client, &KUBE_PODS, ns, NULL, &pods, NULL, &st), 0);
                if (json_object_array_length(pods) > 0)
                        return;
                if (mr_now_monotonic(NULL) >= end)
                        fail_msg("no pods in %s", ns);
                (void)usleep(50 * 1000);
        }
}

static void assert_tag_on(Fixture *f, const char *tag, const char *rev)
{
        char name[128];
        snprintf(name, sizeof(name), "istio-revision-tag-%s", tag);
        _cleanup_(json_object_putp) json_object *mwc = get(f, &KUBE_MUTATINGWEBHOOKS, NULL, name);
        assert_string_equal(mr_json_get_str(mwc, "metadata", "labels", "istio.io/rev", NULL), rev);
        /* the 1.28+ tag Service selects the revision's istiod */
        snprintf(name, sizeof(name), "istiod-revision-tag-%s", tag);
        _cleanup_(json_object_putp) json_object *tsvc = get(f, &KUBE_SERVICES, "istio-system", name);
        assert_string_equal(mr_json_get_str(tsvc, "spec", "selector", "istio.io/rev", NULL), rev);
        assert_string_equal(mr_json_get_str(tsvc, "spec", "selector", "app", NULL), "istiod");
        char svc[64];
        snprintf(svc, sizeof(svc), "istiod-%s", rev);
        json_object *hooks = mr_json_get(mwc, "webhooks", NULL);
        for (size_t i = 0; i < json_object_array_length(hooks); i++)
                assert_string_equal(mr_json_get_str(json_object_array_get_idx(hooks, i), "clientConfig", "service",
                                                    "name", NULL),
                                    svc);
}

/* The Service selects rev and its endpoints are pods of gateway Deployment app only (at least one). */
static void assert_gateway_on(Fixture *f, const char *rev, const char *app)
{
        _cleanup_(json_object_putp) json_object *svc = get(f, &KUBE_SERVICES, "istio-ingress", "istio-ingressgateway");
        assert_string_equal(mr_json_get_str(svc, "spec", "selector", "istio.io/rev", NULL), rev);
        assert_string_equal(mr_json_get_str(svc, "spec", "type", NULL), "LoadBalancer"); /* the rest is kept */
        _cleanup_(json_object_putp) json_object *ep = get(f, &KUBE_ENDPOINTS, "istio-ingress", "istio-ingressgateway");
        json_object *subsets = mr_json_get(ep, "subsets", NULL);
        size_t n = 0;
        for (size_t i = 0; subsets && i < json_object_array_length(subsets); i++) {
                json_object *addrs = mr_json_get(json_object_array_get_idx(subsets, i), "addresses", NULL);
                for (size_t j = 0; addrs && j < json_object_array_length(addrs); j++) {
                        const char *pod = mr_json_get_str(json_object_array_get_idx(addrs, j), "targetRef", "name", NULL);
                        assert_non_null(pod);
                        if (strncmp(pod, app, strlen(app)) != 0)
                                fail_msg("endpoint %s is not a pod of %s", pod, app);
                        n++;
                }
        }
        assert_true(n >= 1);
}

static json_object *phase_detail(json_object *rollout, const char *kind)
{
        json_object *phases = mr_json_get(rollout, "status", "phases", NULL);
        for (size_t i = 0; phases && i < json_object_array_length(phases); i++) {
                json_object *p = json_object_array_get_idx(phases, i);
                if (streq_ptr(mr_json_get_str(p, "kind", NULL), kind) || streq_ptr(mr_json_get_str(p, "name", NULL), kind))
                        return p;
        }
        fail_msg("no phase %s in the status", kind);
        return NULL;
}

/* Distinct restartedAt values the Deployment's template was given (from the audit log). */
static size_t restarts(Fixture *f, const char *ns, const char *name)
{
        _cleanup_free_ char *data = NULL;
        char seen[16][64];
        size_t n = 0;
        assert_int_equal(mr_read_file(f->audit, 256u << 20, &data, NULL), 0);
        for (char *line = data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
                nl = strchr(line, '\n');
                if (nl)
                        *nl = 0;
                _cleanup_(json_object_putp) json_object *o = NULL;
                if (mr_json_parse(line, strlen(line), 1 << 24, &o) < 0)
                        continue;
                if (!streq_ptr(mr_json_get_str(o, "resource", NULL), "deployments") ||
                    !streq_ptr(mr_json_get_str(o, "namespace", NULL), ns) ||
                    !streq_ptr(mr_json_get_str(o, "name", NULL), name))
                        continue;
                const char *v = mr_json_get_str(o, "object", "spec", "template", "metadata", "annotations",
                                                SIDECAR_RESTARTED_AT, NULL);
                bool known = !v;
                for (size_t i = 0; i < n && !known; i++)
                        known = streq(seen[i], v);
                if (!known && n < ELEMENTSOF(seen))
                        snprintf(seen[n++], sizeof(seen[0]), "%s", v);
        }
        return n;
}

/*
 * Runs the meshroll binary with args (NULL-terminated, after the command
 * name), the simulator's URL appended; its stdout goes to *ret_out (owned).
 * Returns the exit code.
 */
static int meshroll(Fixture *f, char **ret_out, const char *const *args)
{
        char exe[512], out[256];
        const char *argv[32];
        size_t n = 0;
        posix_spawn_file_actions_t fa;
        pid_t pid;
        int status;

        snprintf(exe, sizeof(exe), "%s/coordinator/meshroll", getenv("MESHROLL_BUILD_ROOT"));
        snprintf(out, sizeof(out), "%s/out.txt", f->dir);
        argv[n++] = exe;
        for (; *args && n < ELEMENTSOF(argv) - 4; args++)
                argv[n++] = *args;
        argv[n++] = "--server";
        argv[n++] = sim_url(f->sim);
        argv[n] = NULL;
        assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
        assert_int_equal(posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out, O_WRONLY | O_CREAT | O_TRUNC, 0600), 0);
        assert_int_equal(posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0), 0);
        assert_int_equal(posix_spawn(&pid, exe, &fa, NULL, (char **)argv, environ), 0);
        posix_spawn_file_actions_destroy(&fa);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(mr_read_file(out, 1 << 20, ret_out, NULL), 0);
        unlink(out);
        return WEXITSTATUS(status);
}

/* The finding of kind (and name, when given) in `meshroll cleanup -o json` output, or NULL. */
static json_object *finding(json_object *report, const char *kind, const char *name)
{
        json_object *l = mr_json_get(report, "findings", NULL);
        for (size_t i = 0; l && i < json_object_array_length(l); i++) {
                json_object *x = json_object_array_get_idx(l, i);
                if (streq_ptr(mr_json_get_str(x, "kind", NULL), kind) &&
                    (!name || streq_ptr(mr_json_get_str(x, "name", NULL), name) ||
                     streq_ptr(mr_json_get_str(x, "namespace", NULL), name)))
                        return x;
        }
        return NULL;
}

/* meshroll cleanup after the full run: what still points at 1-24-0; --apply scales only the old gateway. */
static void check_cleanup(Fixture *f)
{
        _cleanup_free_ char *out = NULL, *out2 = NULL, *bad = NULL;
        _cleanup_(json_object_putp) json_object *report = NULL, *report2 = NULL;

        assert_int_equal(meshroll(f, &out, (const char *const[]){ "cleanup", "r1", "-o", "json", NULL }), 0);
        assert_int_equal(mr_json_parse(out, strlen(out), 1 << 20, &report), 0);
        assert_string_equal(json_object_get_string(json_object_array_get_idx(mr_json_get(report, "oldRevisions", NULL), 0)),
                            "1-24-0");
        assert_non_null(finding(report, "Tag", "istio-revision-tag-default"));      /* the default tag stays on 1-24-0 */
        assert_null(finding(report, "Tag", "istio-revision-tag-prod-stable"));      /* moved */
        assert_non_null(finding(report, "Pods", "legacy"));                         /* istio-injection=enabled */
        assert_null(finding(report, "Pods", "shop"));
        assert_null(finding(report, "Pods", "istio-system"));                       /* ztunnel and istiod: not injected */
        json_object *gw = finding(report, "Deployment", "ingress-blue");
        assert_non_null(gw);
        assert_false(mr_json_get_bool(true, gw, "applied", NULL));
        assert_non_null(finding(report, "ControlPlane", "istiod-1-24-0"));

        assert_int_equal(meshroll(f, &out2, (const char *const[]){ "cleanup", "r1", "--apply", "-o", "json", NULL }), 0);
        assert_int_equal(mr_json_parse(out2, strlen(out2), 1 << 20, &report2), 0);
        assert_true(mr_json_get_bool(false, finding(report2, "Deployment", "ingress-blue"), "applied", NULL));
        _cleanup_(json_object_putp) json_object *blue = get(f, &KUBE_DEPLOYMENTS, "istio-ingress", "ingress-blue");
        _cleanup_(json_object_putp) json_object *istiod = get(f, &KUBE_DEPLOYMENTS, "istio-system", "istiod-1-24-0");
        int64_t replicas = -1;
        assert_int_equal(mr_json_get_int(&replicas, blue, "spec", "replicas", NULL), 0);
        assert_int_equal(replicas, 0);
        assert_int_equal(mr_json_get_int(&replicas, istiod, "spec", "replicas", NULL), 0);
        assert_int_equal(replicas, 1); /* never touched */

        /* bad usage exits 2 */
        assert_int_equal(meshroll(f, &bad, (const char *const[]){ "rollback", "r1", "--phase", "gateway", "--namespace",
                                                                  "x", NULL }),
                         2);
}

static void test_full_run(void **state)
{
        Fixture f = {};
        start(&f, ROLLOUT_HEAD "  groups: {size: 1}\n"
                               "  drain: {timeout: 60s}\n"
                               "  connectionGate: {timeout: 1s, onTimeout: proceed}\n"
                               "  readiness: {timeout: 20s, minReadySeconds: 1}\n"
                               "  soak: 0s\n" SIDECAR_TAG GATEWAY);
        wait_pods(&f, "shop");
        assert_pods_on(&f, "shop", "1-24-0");
        start_engine(&f);
        run_until_finished(&f, 120 * USEC_PER_SEC);
        assert_int_equal(f.phase, ROLLOUT_COMPLETED);

        assert_tag_on(&f, "prod-stable", "1-25-0");
        assert_pods_on(&f, "shop", "1-25-0");
        assert_pods_on(&f, "pay", "1-25-0");
        assert_pods_on(&f, "legacy", "1-24-0"); /* istio-injection=enabled follows the default tag: untouched */
        assert_gateway_on(&f, "1-25-0", "ingress-green");
        _cleanup_(json_object_putp) json_object *blue = get(&f, &KUBE_DEPLOYMENTS, "istio-ingress", "ingress-blue");
        int64_t replicas = 0;
        assert_int_equal(mr_json_get_int(&replicas, blue, "spec", "replicas", NULL), 0);
        assert_int_equal(replicas, 2); /* the old gateway keeps running until meshroll cleanup */
        assert_int_equal(restarts(&f, "shop", "web"), 1);
        assert_int_equal(restarts(&f, "pay", "api"), 1);
        assert_int_equal(restarts(&f, "legacy", "old"), 0);

        _cleanup_(json_object_putp) json_object *r = get(&f, &KUBE_ROLLOUTS, NULL, "r1");
        json_object *sc = phase_detail(r, "sidecar");
        json_object *nss = mr_json_get(sc, "detail", "namespaces", NULL);
        assert_int_equal(json_object_array_length(nss), 2);
        /* the canary first */
        assert_string_equal(mr_json_get_str(json_object_array_get_idx(nss, 0), "name", NULL), "shop");
        assert_string_equal(mr_json_get_str(json_object_array_get_idx(nss, 0), "state", NULL), "Upgraded");
        check_cleanup(&f);
        stop(&f);
}

static void test_sidecar_rollback_whole(void **state)
{
        Fixture f = {};
        start(&f, ROLLOUT_HEAD SIDECAR_TAG);
        start_engine(&f);
        run_until_finished(&f, 90 * USEC_PER_SEC);
        assert_int_equal(f.phase, ROLLOUT_COMPLETED);
        assert_pods_on(&f, "pay", "1-25-0");

        annotate(&f, "meshroll.io/rollback-phase", "sidecar");
        f.finished = false;
        engine_kick(f.engine);
        run_until_paused(&f, "RolledBack", 90 * USEC_PER_SEC);
        assert_tag_on(&f, "prod-stable", "1-24-0");
        assert_pods_on(&f, "shop", "1-24-0");
        assert_pods_on(&f, "pay", "1-24-0");
        assert_int_equal(restarts(&f, "shop", "web"), 2);
        _cleanup_(json_object_putp) json_object *r = get(&f, &KUBE_ROLLOUTS, NULL, "r1");
        assert_string_equal(mr_json_get_str(phase_detail(r, "sidecar"), "state", NULL), "RolledBack");
        assert_null(mr_json_get(r, "metadata", "annotations", "meshroll.io/rollback-phase", NULL));
        stop(&f);
}

static void test_sidecar_rollback_namespace(void **state)
{
        Fixture f = {};
        /* Without a tag: each namespace is relabelled to the revision. */
        start(&f, ROLLOUT_HEAD "  sidecar: {revision: 1-25-0, namespaces: {list: [shop, pay], batchSize: 2},"
                               " restart: {timeout: 60s}, soak: 0s}\n");
        start_engine(&f);
        run_until_finished(&f, 90 * USEC_PER_SEC);
        assert_int_equal(f.phase, ROLLOUT_COMPLETED);
        _cleanup_(json_object_putp) json_object *shop = get(&f, &KUBE_NAMESPACES, NULL, "shop");
        assert_string_equal(mr_json_get_str(shop, "metadata", "labels", "istio.io/rev", NULL), "1-25-0");
        assert_pods_on(&f, "shop", "1-25-0");
        assert_pods_on(&f, "pay", "1-25-0");

        annotate(&f, "meshroll.io/rollback-phase", "sidecar/shop");
        f.finished = false;
        engine_kick(f.engine);
        run_until_finished(&f, 90 * USEC_PER_SEC);
        assert_int_equal(f.phase, ROLLOUT_COMPLETED);
        _cleanup_(json_object_putp) json_object *shop2 = get(&f, &KUBE_NAMESPACES, NULL, "shop");
        assert_string_equal(mr_json_get_str(shop2, "metadata", "labels", "istio.io/rev", NULL), "prod-stable");
        assert_pods_on(&f, "shop", "1-24-0");
        assert_pods_on(&f, "pay", "1-25-0"); /* untouched */
        assert_int_equal(restarts(&f, "shop", "web"), 2);
        assert_int_equal(restarts(&f, "pay", "api"), 1);
        stop(&f);
}

static void test_gateway_rollback(void **state)
{
        Fixture f = {};
        start(&f, ROLLOUT_HEAD GATEWAY);
        start_engine(&f);
        run_until_finished(&f, 90 * USEC_PER_SEC);
        assert_int_equal(f.phase, ROLLOUT_COMPLETED);
        assert_gateway_on(&f, "1-25-0", "ingress-green");

        annotate(&f, "meshroll.io/rollback-phase", "gateway");
        f.finished = false;
        engine_kick(f.engine);
        run_until_paused(&f, "RolledBack", 90 * USEC_PER_SEC);
        assert_gateway_on(&f, "1-24-0", "ingress-blue");
        /* cleanup is for a Completed rollout only */
        _cleanup_free_ char *out = NULL;
        assert_int_equal(meshroll(&f, &out, (const char *const[]){ "cleanup", "r1", NULL }), 1);
        stop(&f);
}

static void test_sidecar_resumes(void **state)
{
        Fixture f = { .stop_when_restarting = true };
        start(&f, ROLLOUT_HEAD SIDECAR_TAG);
        start_engine(&f);
        run_until_finished(&f, 90 * USEC_PER_SEC);
        assert_true(f.stopped);
        /* The first coordinator dies mid-batch (freed without any cleanup); a second one takes over. */
        f.engine = engine_free(f.engine);
        f.stop_when_restarting = false;
        f.stopped = false;
        start_engine(&f);
        run_until_finished(&f, 90 * USEC_PER_SEC);
        assert_int_equal(f.phase, ROLLOUT_COMPLETED);
        assert_pods_on(&f, "shop", "1-25-0");
        assert_pods_on(&f, "pay", "1-25-0");
        assert_int_equal(restarts(&f, "shop", "web"), 1);
        assert_int_equal(restarts(&f, "shop", "cart"), 1);
        assert_int_equal(restarts(&f, "pay", "api"), 1);
        stop(&f);
}

/*
 * New sidecars that never get Ready: the canary namespace's restart misses
 * its deadline, the phase rolls back by itself (tag back, the restarted
 * Deployment restarted again onto the old revision) and pauses the Rollout;
 * the second batch is never touched.
 */
static void test_restart_timeout_rolls_back(void **state)
{
        Fixture f = {};
        start_with(&f, "faults: {neverReadyImages: [docker.io/istio/proxyv2:1-25-0]}\n",
                   ROLLOUT_HEAD "  sidecar: {revision: 1-25-0, tag: prod-stable, namespaces: {canary: shop},"
                                " restart: {concurrency: 1, timeout: 3s}, soak: 0s}\n");
        wait_pods(&f, "shop");
        start_engine(&f);
        run_until_paused(&f, "RolledBack", 90 * USEC_PER_SEC);
        assert_tag_on(&f, "prod-stable", "1-24-0");
        _cleanup_(json_object_putp) json_object *r = get(&f, &KUBE_ROLLOUTS, NULL, "r1");
        json_object *sc = phase_detail(r, "sidecar");
        assert_string_equal(mr_json_get_str(sc, "state", NULL), "RolledBack");
        assert_non_null(strstr(mr_json_get_str(sc, "message", NULL), "did not roll out within 3.0s"));
        /* wait for the old revision's pods to be the only ones left (the stuck new ones terminate) */
        usec_t end = mr_now_monotonic(NULL) + 30 * USEC_PER_SEC;
        for (;;) {
                _cleanup_(json_object_putp) json_object *d = get(&f, &KUBE_DEPLOYMENTS, "shop", "cart");
                const char *why;
                if (sidecar_deployment_rolled_out(d, &why) > 0)
                        break;
                assert_true(mr_now_monotonic(NULL) < end);
                (void)usleep(100 * 1000);
        }
        assert_pods_on(&f, "shop", "1-24-0");
        assert_pods_on(&f, "pay", "1-24-0");
        /* Deployments restart in name order, one at a time: cart first; web never started. */
        assert_int_equal(restarts(&f, "shop", "cart"), 2);
        assert_int_equal(restarts(&f, "shop", "web"), 0);
        assert_int_equal(restarts(&f, "pay", "api"), 0);
        stop(&f);
}

/* A Prometheus whose error rate is 50 %, whatever it is asked. */
static void on_prometheus(HttpFixture *h, const HttpRequest *req, HttpResponse *resp, void *userdata)
{
        http_respond(resp, 200,
                     "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":"
                     "[{\"metric\":{},\"value\":[1795489863,\"0.5\"]}]}}");
}

/*
 * A metric gate that fails while the canary batch soaks: the phase rolls
 * back (tag back, the canary's Deployments restarted onto the old
 * revision), the Rollout pauses naming the gate, and the next batch is
 * never touched.
 */
static void test_gate_failure_rolls_back(void **state)
{
        HttpFixture *prom = NULL;
        char rollout[1024];
        Fixture f = {};

        assert_int_equal(http_fixture_start(on_prometheus, NULL, &prom), 0);
        snprintf(rollout, sizeof(rollout),
                 ROLLOUT_HEAD "  prometheus: %s\n"
                              "  sidecar:\n"
                              "    revision: 1-25-0\n"
                              "    tag: prod-stable\n"
                              "    namespaces: {canary: shop}\n"
                              "    restart: {timeout: 60s}\n"
                              "    soak: 30s\n"
                              "    gates: [{name: error-rate, query: 'sum(rate(x[1m]))', threshold: 0.01, interval: 1s,"
                              " checks: 2}]\n",
                 http_fixture_url(prom));
        start(&f, rollout);
        start_engine(&f);
        run_until_paused(&f, "RolledBack", 90 * USEC_PER_SEC);
        assert_true(http_fixture_count(prom) >= 1);
        _cleanup_(json_object_putp) json_object *r = get(&f, &KUBE_ROLLOUTS, NULL, "r1");
        assert_non_null(strstr(mr_json_get_str(r, "status", "message", NULL), "error-rate"));
        assert_tag_on(&f, "prod-stable", "1-24-0");
        assert_pods_on(&f, "shop", "1-24-0");
        assert_pods_on(&f, "pay", "1-24-0");
        assert_int_equal(restarts(&f, "shop", "web"), 2);
        assert_int_equal(restarts(&f, "shop", "cart"), 2);
        assert_int_equal(restarts(&f, "pay", "api"), 0);
        stop(&f);
        http_fixture_free(prom);
}

/* The default tag also moves the namespaces labelled istio-injection=enabled, and only those here. */
static void test_default_tag(void **state)
{
        Fixture f = {};
        start(&f, ROLLOUT_HEAD "  sidecar: {revision: 1-25-0, tag: default, restart: {timeout: 60s}, soak: 0s}\n");
        wait_pods(&f, "legacy");
        start_engine(&f);
        run_until_finished(&f, 90 * USEC_PER_SEC);
        assert_int_equal(f.phase, ROLLOUT_COMPLETED);
        assert_tag_on(&f, "default", "1-25-0");
        assert_tag_on(&f, "prod-stable", "1-24-0");
        /* the default revision validates too */
        _cleanup_free_ char *vpath = NULL;
        _cleanup_(json_object_putp) json_object *vwc = NULL;
        KubeStatus st;
        assert_int_equal(kube_path(&(KubeResource){ .group = "admissionregistration.k8s.io", .version = "v1",
                                                     .plural = "validatingwebhookconfigurations" },
                                   NULL, "istiod-default-validator", NULL, &vpath),
                         0);
        assert_int_equal(kube_get(f.client, vpath, &vwc, &st), 0);
        assert_string_equal(mr_json_get_str(vwc, "metadata", "labels", "istio.io/rev", NULL), "1-25-0");
        assert_string_equal(mr_json_get_str(json_object_array_get_idx(mr_json_get(vwc, "webhooks", NULL), 0),
                                            "clientConfig", "service", "name", NULL),
                            "istiod-1-25-0");
        assert_pods_on(&f, "legacy", "1-25-0");
        assert_int_equal(restarts(&f, "legacy", "old"), 1);
        assert_int_equal(restarts(&f, "shop", "web"), 0);
        stop(&f);
}

/* A coordinator stopped after the switch, while the gateway soaks: the next one finishes without switching again. */
static void test_gateway_resumes(void **state)
{
        Fixture f = { .stop_when_gateway_soaks = true };
        start(&f, ROLLOUT_HEAD "  gateway: {service: {namespace: istio-ingress, name: istio-ingressgateway},"
                               " from: 1-24-0, to: 1-25-0, timeout: 60s, soak: 2s}\n");
        start_engine(&f);
        run_until_finished(&f, 90 * USEC_PER_SEC);
        assert_true(f.stopped);
        f.engine = engine_free(f.engine);
        f.stop_when_gateway_soaks = false;
        f.stopped = false;
        start_engine(&f);
        run_until_finished(&f, 90 * USEC_PER_SEC);
        assert_int_equal(f.phase, ROLLOUT_COMPLETED);
        assert_gateway_on(&f, "1-25-0", "ingress-green");

        /* The Service was written by meshroll exactly once. */
        _cleanup_free_ char *data = NULL;
        unsigned writes = 0;
        assert_int_equal(mr_read_file(f.audit, 256u << 20, &data, NULL), 0);
        for (char *line = data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
                nl = strchr(line, '\n');
                if (nl)
                        *nl = 0;
                _cleanup_(json_object_putp) json_object *o = NULL;
                if (mr_json_parse(line, strlen(line), 1 << 24, &o) < 0)
                        continue;
                const char *actor = mr_json_get_str(o, "actor", NULL);
                if (streq_ptr(mr_json_get_str(o, "resource", NULL), "services") &&
                    streq_ptr(mr_json_get_str(o, "name", NULL), "istio-ingressgateway") && actor &&
                    strncmp(actor, "meshroll", 8) == 0)
                        writes++;
        }
        assert_int_equal(writes, 1);
        stop(&f);
}

/* Runs the loop until the Rollout is Paused with reason (bounded); the last status names what it did instead. */
static void wait_paused_with(Fixture *f, const char *reason, usec_t d)
{
        usec_t end = mr_now_monotonic(NULL) + d;
        for (;;) {
                assert_true(sd_event_run(f->event, 200 * USEC_PER_MSEC) >= 0);
                _cleanup_(json_object_putp) json_object *r = get(f, &KUBE_ROLLOUTS, NULL, "r1");
                if (streq_ptr(mr_json_get_str(r, "status", "phase", NULL), "Paused") &&
                    streq_ptr(mr_json_get_str(r, "status", "reason", NULL), reason))
                        return;
                if (mr_now_monotonic(NULL) >= end)
                        fail_msg("not paused with %s: %s (%s)", reason, mr_json_get_str(r, "status", "reason", NULL),
                                 mr_json_get_str(r, "status", "message", NULL));
        }
}

/*
 * A target revision that is not installed: the engine's preflight pauses
 * first; an operator who resumes anyway meets the phase's own check, which
 * pauses again before any write.
 */
static void test_missing_revision_pauses(void **state)
{
        _cleanup_(json_object_putp) json_object *patch = NULL;
        KubeStatus st;
        Fixture f = {};

        start(&f, ROLLOUT_HEAD "  sidecar: {revision: 1-26-0, tag: prod-stable}\n");
        start_engine(&f);
        wait_paused_with(&f, "PreflightFailed", 30 * USEC_PER_SEC);
        assert_int_equal(mr_json_parse("{\"spec\":{\"paused\":false}}", 25, 1 << 10, &patch), 0);
        assert_int_equal(kube_patch(f.client, "/apis/meshroll.io/v1alpha1/rollouts/r1", KUBE_PATCH_MERGE, patch, NULL,
                                    &st),
                         0);
        wait_paused_with(&f, "SidecarPreflight", 30 * USEC_PER_SEC);
        _cleanup_(json_object_putp) json_object *r = get(&f, &KUBE_ROLLOUTS, NULL, "r1");
        assert_non_null(strstr(mr_json_get_str(r, "status", "message", NULL), "istiod-1-26-0"));
        assert_tag_on(&f, "prod-stable", "1-24-0");
        assert_int_equal(restarts(&f, "shop", "web"), 0);
        stop(&f);
}

/* The new istiod's image crash-loops (never Ready) until the test clears the fault. */
#define ISTIOD_NOT_READY "faults:\n  neverReadyImages: [docker.io/istio/pilot:1.25.0]\n"

static void clear_never_ready(Fixture *f)
{
        _cleanup_(json_object_putp) json_object *patch = NULL;
        KubeStatus st;
        static const char body[] = "{\"data\":{\"neverReadyImages\":\"\"}}";
        assert_int_equal(mr_json_parse(body, strlen(body), 1 << 10, &patch), 0);
        assert_int_equal(kube_patch(f->client, "/api/v1/namespaces/kube-system/configmaps/kubesim-faults",
                                    KUBE_PATCH_MERGE, patch, NULL, &st),
                         0);
}

/* Runs the loop until the Rollout's status.reason is reason (phase and message as they are then), within d. */
static json_object *run_until_reason(Fixture *f, const char *reason, usec_t d)
{
        usec_t end = mr_now_monotonic(NULL) + d;
        for (;;) {
                assert_true(sd_event_run(f->event, 200 * USEC_PER_MSEC) >= 0);
                json_object *r = get(f, &KUBE_ROLLOUTS, NULL, "r1");
                if (streq_ptr(mr_json_get_str(r, "status", "reason", NULL), reason))
                        return r;
                if (mr_now_monotonic(NULL) >= end)
                        fail_msg("no status.reason %s in time: %s (%s)", reason,
                                 mr_json_get_str(r, "status", "reason", NULL),
                                 mr_json_get_str(r, "status", "message", NULL));
                json_object_put(r);
        }
}

/*
 * Errors that may clear by themselves (the target istiod not Ready yet) are
 * awaited where an operator sees them: Pending, reason PreflightWaiting,
 * the message naming the Deployment. Once istiod is Ready the Rollout
 * starts and completes; nothing was paused and nothing was restarted while
 * it waited.
 */
static void test_preflight_waits(void **state)
{
        Fixture f = {};

        start_with(&f, ISTIOD_NOT_READY, ROLLOUT_HEAD SIDECAR_TAG);
        start_engine(&f);
        _cleanup_(json_object_putp) json_object *r = run_until_reason(&f, "PreflightWaiting", 30 * USEC_PER_SEC);
        assert_string_equal(mr_json_get_str(r, "status", "phase", NULL), "Pending");
        assert_non_null(strstr(mr_json_get_str(r, "status", "message", NULL), "istiod-1-25-0"));
        assert_non_null(strstr(mr_json_get_str(r, "status", "message", NULL), "10m"));
        json_object *phases = mr_json_get(r, "status", "phases", NULL);
        assert_true(!phases || json_object_array_length(phases) == 0); /* not started */
        assert_false(mr_json_get_bool(false, r, "spec", "paused", NULL));
        assert_int_equal(restarts(&f, "shop", "web"), 0);
        assert_tag_on(&f, "prod-stable", "1-24-0");

        clear_never_ready(&f);
        run_until_finished(&f, 120 * USEC_PER_SEC);
        assert_int_equal(f.phase, ROLLOUT_COMPLETED);
        assert_tag_on(&f, "prod-stable", "1-25-0");
        stop(&f);
}

/* Awaited longer than spec.preflight.waitTimeout, the errors pause the Rollout, saying how long it waited. */
static void test_preflight_wait_times_out(void **state)
{
        Fixture f = {};

        start_with(&f, ISTIOD_NOT_READY, ROLLOUT_HEAD "  preflight: {waitTimeout: 2s}\n" SIDECAR_TAG);
        start_engine(&f);
        json_object_put(run_until_reason(&f, "PreflightWaiting", 30 * USEC_PER_SEC));
        run_until_paused(&f, "PreflightFailed", 30 * USEC_PER_SEC);
        _cleanup_(json_object_putp) json_object *r = get(&f, &KUBE_ROLLOUTS, NULL, "r1");
        assert_non_null(strstr(mr_json_get_str(r, "status", "message", NULL), "still, after waiting"));
        assert_non_null(strstr(mr_json_get_str(r, "status", "message", NULL), "istiod-1-25-0"));
        assert_int_equal(restarts(&f, "shop", "web"), 0);
        assert_tag_on(&f, "prod-stable", "1-24-0");
        stop(&f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full_run),
                cmocka_unit_test(test_sidecar_rollback_whole),
                cmocka_unit_test(test_sidecar_rollback_namespace),
                cmocka_unit_test(test_gateway_rollback),
                cmocka_unit_test(test_sidecar_resumes),
                cmocka_unit_test(test_missing_revision_pauses),
                cmocka_unit_test(test_preflight_waits),
                cmocka_unit_test(test_preflight_wait_times_out),
                cmocka_unit_test(test_restart_timeout_rolls_back),
                cmocka_unit_test(test_gate_failure_rolls_back),
                cmocka_unit_test(test_default_tag),
                cmocka_unit_test(test_gateway_resumes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
