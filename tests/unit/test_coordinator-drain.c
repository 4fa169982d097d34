/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The drain engine, twice over.
 *
 * Against a fake API server (the HTTP fixture), where every answer is
 * scripted: kubectl's filters and what is sent for each class of pod, the
 * refusal before any eviction, 429 with the PDB found by listing, the
 * timeout, 404/500 on eviction, a namesake replacement, the grace period in
 * the Eviction body and the concurrency limit (eviction answers are held
 * back so in-flight requests can be counted from their arrival times). The
 * fake's pod watch reports, on each short connection, the pods evicted
 * since the last one, then a bookmark, so the informer reconnects at once.
 *
 * Against the in-process simulator (sim/sim.h), sped up 20×: a real
 * Deployment, DaemonSet and PDB, with the audit log proving what was
 * evicted.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include "drain.h"
#include "http-fixture.h"
#include "meshroll/kube.h"

/* The simulator, in-process (libkubesim). */
#include "sim.h"

/* ---- the fake API server ------------------------------------------------------------------------ */

#define MAX_PODS 16
#define MAX_EVICTIONS 64

typedef struct FakePod {
        const char *json;  /* the Pod as listed */
        json_object *obj;  /* parsed from json */
        int answers[8];    /* HTTP codes for successive evictions; 0 (or past the end) → 201 */
        bool always_429;   /* every eviction is refused */
        bool replace;      /* once evicted, reported as an ADDED namesake with a new UID */
        bool deleted;      /* evicted or deleted; the watch has news */
        usec_t deleted_at; /* the watch tells once the eviction's answer is out */
        bool reported;
        unsigned evictions;
} FakePod;

typedef struct Fake {
        FakePod pods[MAX_PODS];
        size_t n_pods;
        bool daemonset_exists;
        const char *pdb_list;       /* body of GET …/poddisruptionbudgets */
        unsigned eviction_delay_ms; /* 201s are held back this long */
        bool expire_watches;        /* report deletions by 410 and a relist */
        int pdb_allowed;            /* what a PDB watch reports as web-pdb's disruptionsAllowed */
        unsigned pdb_lists, pdb_watches, ds_gets, deletes, posts, expired;
        usec_t eviction_at[MAX_EVICTIONS]; /* arrival times */
        char eviction_body[MAX_EVICTIONS][512];
        char delete_body[4][512];
        unsigned rv;
} Fake;

/* A Pod up to its spec (the caller closes it, e.g. with RUNNING); meta and spec extras start with ",". */
#define POD_X(ns, name, node, meta, spec)                                                                   \
        "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"" name "\",\"namespace\":\"" ns   \
        "\",\"uid\":\"uid-" name "\",\"resourceVersion\":\"5\"" meta "},\"spec\":{\"nodeName\":\"" node     \
        "\"" spec "}"
#define POD(ns, name, node, meta) POD_X(ns, name, node, meta, "")
#define OWNER(kind, name)                                                                                   \
        ",\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"" kind "\",\"name\":\"" name          \
        "\",\"uid\":\"o\",\"controller\":true}]"
#define RUNNING ",\"status\":{\"phase\":\"Running\"}}"

static const char *const STATUS_429 =
    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
    "\"message\":\"Cannot evict pod as it would violate the pod's disruption "
    "budget.\",\"reason\":\"TooManyRequests\","
    "\"details\":{\"causes\":[{\"reason\":\"DisruptionBudget\",\"message\":\"The disruption budget web-pdb "
    "needs 2 "
    "healthy pods and has 2 currently\"}]},\"code\":429}";
static const char *const STATUS_500 =
    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"This "
    "pod has "
    "more than one PodDisruptionBudget, which the eviction subresource does not support.\",\"code\":500}";
static const char *const PDB_LIST =
    "{\"kind\":\"PodDisruptionBudgetList\",\"apiVersion\":\"policy/v1\",\"metadata\":{\"resourceVersion\":\"5\"},\"items\":["
    "{\"metadata\":{\"name\":\"api-pdb\",\"namespace\":\"shop\"},\"spec\":{\"selector\":{\"matchLabels\":{"
    "\"app\":\"api\"}}}},"
    "{\"metadata\":{\"name\":\"nothing\",\"namespace\":\"shop\"},\"spec\":{}},"
    "{\"metadata\":{\"name\":\"web-pdb\",\"namespace\":\"shop\"},\"spec\":{\"selector\":{\"matchLabels\":{"
    "\"app\":\"web\"}}}}]}";

static FakePod *fake_pod(Fake *f, const char *ns, const char *name)
{
        for (size_t i = 0; i < f->n_pods; i++)
                if (streq_ptr(mr_json_get_str(f->pods[i].obj, "metadata", "namespace", NULL), ns) &&
                    streq_ptr(mr_json_get_str(f->pods[i].obj, "metadata", "name", NULL), name))
                        return &f->pods[i];
        return NULL;
}

static FakePod *fake_add(Fake *f, const char *json)
{
        FakePod *p = &f->pods[f->n_pods++];
        *p = (FakePod){.json = json, .obj = json_tokener_parse(json)};
        assert_non_null(p->obj);
        return p;
}

static void fake_free(Fake *f)
{
        for (size_t i = 0; i < f->n_pods; i++)
                json_object_put(f->pods[i].obj);
}

static const char *pod_node(const FakePod *p)
{
        return mr_json_get_str(p->obj, "spec", "nodeName", NULL);
}

static void serve_pods(Fake *f, const HttpRequest *req, HttpResponse *resp)
{
        const char *fs = http_request_arg(req, "fieldSelector");
        const char *node = fs ? startswith(fs, "spec.nodeName=") : NULL;
        char buf[4096];
        size_t l = 0;

        assert_non_null(node);
        if (!http_request_arg(req, "watch")) {
                l += (size_t)snprintf(
                    buf + l, sizeof(buf) - l,
                    "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"10\"},"
                    "\"items\":[");
                bool first = true;
                for (size_t i = 0; i < f->n_pods; i++)
                        if (streq_ptr(pod_node(&f->pods[i]), node) && !f->pods[i].deleted) {
                                l += (size_t)snprintf(buf + l, sizeof(buf) - l, "%s%s", first ? "" : ",",
                                                      f->pods[i].json);
                                first = false;
                        }
                snprintf(buf + l, sizeof(buf) - l, "]}");
                http_respond(resp, 200, buf);
                return;
        }
        /* With expire_watches, news is a 410: the informer lists again and finds the pod absent. */
        if (f->expire_watches)
                for (size_t i = 0; i < f->n_pods; i++)
                        if (f->pods[i].deleted && !f->pods[i].reported &&
                            streq_ptr(pod_node(&f->pods[i]), node)) {
                                f->pods[i].reported = true;
                                f->expired++;
                                http_respond(
                                    resp, 410,
                                    "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"too old "
                                    "resource version\",\"reason\":\"Expired\",\"code\":410}");
                                return;
                        }
        /* A short watch connection: what was evicted since the last one, a bookmark, the end. */
        resp->status = 200;
        for (size_t i = 0; i < f->n_pods; i++) {
                FakePod *p = &f->pods[i];
                if (!p->deleted || p->reported || !streq_ptr(pod_node(p), node) ||
                    mr_now_monotonic(NULL) < p->deleted_at + f->eviction_delay_ms * USEC_PER_MSEC)
                        continue;
                _cleanup_(json_object_putp) json_object *o = mr_json_copy(p->obj);
                char rv[16];
                snprintf(rv, sizeof(rv), "%u", ++f->rv);
                mr_json_set_str(mr_json_get(o, "metadata", NULL), "resourceVersion", rv);
                if (p->replace)
                        mr_json_set_str(mr_json_get(o, "metadata", NULL), "uid", "a-new-uid");
                snprintf(buf, sizeof(buf), "{\"type\":\"%s\",\"object\":%s}\n",
                         p->replace ? "ADDED" : "DELETED",
                         json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
                http_respond_chunk(resp, 0, buf);
                p->reported = true;
        }
        snprintf(buf, sizeof(buf),
                 "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"resourceVersion\":\"%"
                 "u\"}}}\n",
                 f->rv);
        http_respond_chunk(resp, 0, buf);
        resp->hold_ms = 30;
}

static void fake_handler(HttpFixture *hf, const HttpRequest *req, HttpResponse *resp, void *userdata)
{
        Fake *f = userdata;
        char ns[64], name[64], sub[32];

        if (streq(req->path, "/api/v1/pods"))
                return serve_pods(f, req, resp);
        if (sscanf(req->path, "/apis/apps/v1/namespaces/%63[^/]/daemonsets/%63s", ns, name) == 2) {
                f->ds_gets++;
                if (f->daemonset_exists)
                        http_respond_fmt(resp, 200,
                                         "{\"kind\":\"DaemonSet\",\"metadata\":{\"name\":\"%s\"}}", name);
                else
                        http_respond(resp, 404,
                                     "{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":\"NotFound\","
                                     "\"code\":404}");
                return;
        }
        if (sscanf(req->path, "/apis/policy/v1/namespaces/%63[^/]/poddisruptionbudgets", ns) == 1 &&
            http_request_arg(req, "watch")) {
                char ev[512];
                /* a short watch connection: web-pdb as it is now, then the end */
                f->pdb_watches++;
                resp->status = 200;
                snprintf(ev, sizeof(ev),
                         "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"web-pdb\","
                         "\"namespace\":\"%s\",\"resourceVersion\":\"%u\"},\"status\":{"
                         "\"disruptionsAllowed\":%d}}}\n",
                         ns, ++f->rv, f->pdb_allowed);
                http_respond_chunk(resp, 0, ev);
                resp->hold_ms = 30;
                return;
        }
        if (sscanf(req->path, "/apis/policy/v1/namespaces/%63[^/]/poddisruptionbudgets", ns) == 1) {
                f->pdb_lists++;
                http_respond(resp, 200, f->pdb_list ? f->pdb_list : "{\"items\":[]}");
                return;
        }
        int n = sscanf(req->path, "/api/v1/namespaces/%63[^/]/pods/%63[^/]/%31s", ns, name, sub);
        FakePod *p = n >= 2 ? fake_pod(f, ns, name) : NULL;
        if (n == 3 && streq(sub, "eviction") && streq(req->method, "POST")) {
                if (f->posts < MAX_EVICTIONS) {
                        f->eviction_at[f->posts] = mr_now_monotonic(NULL);
                        snprintf(f->eviction_body[f->posts], sizeof(f->eviction_body[0]), "%.*s",
                                 (int)req->body_size, req->body);
                }
                f->posts++;
                if (!p || p->deleted) {
                        http_respond(resp, 404,
                                     "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"code\":404}");
                        return;
                }
                int code = p->always_429                           ? 429
                           : p->evictions < ELEMENTSOF(p->answers) ? p->answers[p->evictions]
                                                                   : 0;
                p->evictions++;
                if (code == 429)
                        http_respond(resp, 429, STATUS_429);
                else if (code == 500)
                        http_respond(resp, 500, STATUS_500);
                else if (code == 404)
                        http_respond(resp, 404,
                                     "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"code\":404}");
                else {
                        p->deleted = true;
                        p->deleted_at = mr_now_monotonic(NULL);
                        resp->status = 201;
                        http_respond_chunk(resp, f->eviction_delay_ms,
                                           "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":"
                                           "\"Success\",\"code\":201}");
                }
                return;
        }
        if (n == 2 && streq(req->method, "DELETE")) {
                if (f->deletes < ELEMENTSOF(f->delete_body))
                        snprintf(f->delete_body[f->deletes], sizeof(f->delete_body[0]), "%.*s",
                                 (int)req->body_size, req->body);
                f->deletes++;
                if (p)
                        p->deleted = true;
                http_respond(resp, p ? 200 : 404, p ? p->json : "{\"kind\":\"Status\",\"code\":404}");
                return;
        }
        http_respond(resp, 404, "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"code\":404}");
}

/* ---- running a drain ---------------------------------------------------------------------------- */

typedef struct Run {
        sd_event *e;
        KubeClient *c;
        Drain *d;
        bool done;
        int error;
        char message[4096];
        DrainProgress final;
        unsigned progress_calls;
        bool saw_blocked;
        DrainProgress blocked; /* the first progress with blocked > 0 and a PDB named */
} Run;

static void on_progress(Drain *d, const DrainProgress *p, void *userdata)
{
        Run *r = userdata;
        r->progress_calls++;
        assert_true(p->total == 0 || p->evicting + p->terminating + p->gone + p->failed <= p->total);
        if (p->blocked > 0 && p->blocking_pdb[0] && !r->saw_blocked) {
                r->saw_blocked = true;
                r->blocked = *p;
        }
}

static void on_done(Drain *d, int error, const DrainProgress *p, const char *message, void *userdata)
{
        Run *r = userdata;
        assert_false(r->done);
        r->done = true;
        r->error = error;
        r->final = *p;
        snprintf(r->message, sizeof(r->message), "%s", message);
        r->d = drain_free(d); /* freeing inside the callback is allowed */
}

static void run_start(Run *r, const char *url)
{
        KubeConfig cfg = {.server = (char *)url};
        KubeClientOptions o = {
            .qps = -1, .backoff_base = 5 * USEC_PER_MSEC, .backoff_cap = 20 * USEC_PER_MSEC};

        assert_int_equal(sd_event_new(&r->e), 0);
        assert_int_equal(kube_client_new(&cfg, &o, &r->c, NULL), 0);
        assert_int_equal(kube_client_attach_event(r->c, r->e), 0);
}

static void run_drain(Run *r, const char *const *nodes, const DrainOptions *o, usec_t max)
{
        usec_t end = mr_now_monotonic(NULL) + max;

        assert_int_equal(drain_start(r->c, r->e, nodes, o, on_progress, on_done, r, &r->d), 0);
        while (!r->done && mr_now_monotonic(NULL) < end)
                assert_true(sd_event_run(r->e, 10 * USEC_PER_MSEC) >= 0);
        assert_true(r->done);
        assert_null(r->d);
}

static void run_stop(Run *r)
{
        drain_free(r->d);
        kube_client_free(r->c);
        sd_event_unref(r->e);
}

static DrainOptions fast_options(void)
{
        return (DrainOptions){.grace_period_seconds = -1,
                              .retry_base = 10 * USEC_PER_MSEC,
                              .retry_cap = 40 * USEC_PER_MSEC,
                              .timeout = 10 * USEC_PER_SEC};
}

/* ---- fixture tests ------------------------------------------------------------------------------ */

static void test_classify_and_evict(void **state)
{
        Fake f = {.daemonset_exists = true};
        HttpFixture *hf;
        Run r = {};

        fake_add(&f, POD("shop", "web-1", "n1",
                         ",\"labels\":{\"app\":\"web\"}" OWNER("ReplicaSet", "web-7f")) RUNNING);
        fake_add(&f, POD("shop", "web-2", "n2",
                         ",\"labels\":{\"app\":\"web\"}" OWNER("ReplicaSet", "web-7f")) RUNNING);
        fake_add(&f, POD("istio-system", "ztunnel-a", "n1", OWNER("DaemonSet", "ztunnel")) RUNNING);
        fake_add(&f, POD("istio-system", "ztunnel-b", "n2", OWNER("DaemonSet", "ztunnel")) RUNNING);
        fake_add(&f, POD("kube-system", "etcd-n1", "n1",
                         ",\"annotations\":{\"kubernetes.io/config.mirror\":\"x\"}") RUNNING);
        fake_add(&f, POD("batch", "job-1", "n1", "") ",\"status\":{\"phase\":\"Succeeded\"}}");
        fake_add(&f, POD("batch", "cron-1", "n1", ",\"labels\":{\"app\":\"batch\"}")
                         RUNNING); /* excluded by the selector */
        assert_int_equal(http_fixture_start(fake_handler, &f, &hf), 0);
        run_start(&r, http_fixture_url(hf));

        DrainOptions o = fast_options();
        o.pod_selector = "app!=batch";
        o.grace_period_seconds = 7;
        const char *nodes[] = {"n1", "n2", NULL};
        run_drain(&r, nodes, &o, 10 * USEC_PER_SEC);

        assert_int_equal(r.error, 0);
        assert_non_null(strstr(r.message, "drained n1, n2"));
        assert_int_equal(r.final.total, 3);
        assert_int_equal(r.final.gone, 3);
        assert_int_equal(r.final.skipped, 3);
        assert_true(r.progress_calls >= 1);

        http_fixture_lock(hf);
        assert_int_equal(f.ds_gets, 1); /* one check per DaemonSet, not per pod */
        assert_int_equal(f.posts, 2);
        for (unsigned i = 0; i < 2; i++) {
                _cleanup_(json_object_putp) json_object *b = json_tokener_parse(f.eviction_body[i]);
                int64_t grace = -1;
                assert_string_equal(mr_json_get_str(b, "apiVersion", NULL), "policy/v1");
                assert_string_equal(mr_json_get_str(b, "kind", NULL), "Eviction");
                assert_string_equal(mr_json_get_str(b, "metadata", "namespace", NULL), "shop");
                assert_int_equal(mr_json_get_int(&grace, b, "deleteOptions", "gracePeriodSeconds", NULL), 0);
                assert_int_equal(grace, 7);
        }
        /* the finished pod is deleted, guarded by its UID */
        assert_int_equal(f.deletes, 1);
        _cleanup_(json_object_putp) json_object *del = json_tokener_parse(f.delete_body[0]);
        assert_string_equal(mr_json_get_str(del, "preconditions", "uid", NULL), "uid-job-1");
        assert_false(fake_pod(&f, "batch", "cron-1")->deleted);
        assert_false(fake_pod(&f, "istio-system", "ztunnel-a")->deleted);
        assert_false(fake_pod(&f, "kube-system", "etcd-n1")->deleted);
        http_fixture_unlock(hf);

        run_stop(&r);
        http_fixture_free(hf);
        fake_free(&f);
}

static void test_own_grace_period(void **state)
{
        Fake f = {};
        HttpFixture *hf;
        Run r = {};

        fake_add(&f, POD("shop", "web-1", "n1", OWNER("ReplicaSet", "web-7f")) RUNNING);
        assert_int_equal(http_fixture_start(fake_handler, &f, &hf), 0);
        run_start(&r, http_fixture_url(hf));
        DrainOptions o = fast_options();
        const char *nodes[] = {"n1", NULL};
        run_drain(&r, nodes, &o, 10 * USEC_PER_SEC);
        assert_int_equal(r.error, 0);

        http_fixture_lock(hf);
        _cleanup_(json_object_putp) json_object *b = json_tokener_parse(f.eviction_body[0]);
        json_object *opts = mr_json_get(b, "deleteOptions", NULL);
        assert_non_null(opts);
        assert_int_equal(json_object_object_length(opts), 0); /* as kubectl: {} unless overridden */
        http_fixture_unlock(hf);

        run_stop(&r);
        http_fixture_free(hf);
        fake_free(&f);
}

static void test_refused_before_any_eviction(void **state)
{
        Fake f = {.daemonset_exists = false};
        HttpFixture *hf;
        Run r = {};

        fake_add(&f, POD("shop", "web-1", "n1", OWNER("ReplicaSet", "web-7f")) RUNNING);
        fake_add(&f, POD_X("shop", "cache-1", "n1", OWNER("ReplicaSet", "cache-1f"),
                           ",\"volumes\":[{\"name\":\"s\",\"emptyDir\":{}}]") RUNNING);
        fake_add(&f, POD("shop", "bare-1", "n1", "") RUNNING);
        fake_add(&f, POD("shop", "orphan-1", "n1", OWNER("DaemonSet", "gone")) RUNNING);
        assert_int_equal(http_fixture_start(fake_handler, &f, &hf), 0);
        run_start(&r, http_fixture_url(hf));

        DrainOptions o = fast_options();
        const char *nodes[] = {"n1", NULL};
        run_drain(&r, nodes, &o, 10 * USEC_PER_SEC);

        assert_int_equal(r.error, -MR_ECONFIG);
        assert_non_null(strstr(r.message, "local storage"));
        assert_non_null(strstr(r.message, "shop/cache-1"));
        assert_non_null(strstr(r.message, "no controller"));
        assert_non_null(strstr(r.message, "shop/bare-1"));
        assert_non_null(strstr(r.message, "DaemonSet is missing"));
        assert_non_null(strstr(r.message, "shop/orphan-1"));
        assert_null(strstr(r.message, "web-1"));
        http_fixture_lock(hf);
        assert_int_equal(f.posts, 0);
        assert_int_equal(f.deletes, 0);
        http_fixture_unlock(hf);
        run_stop(&r);

        /* with both overrides everything goes, the orphaned DaemonSet pod included */
        Run r2 = {};
        run_start(&r2, http_fixture_url(hf));
        o.force = true;
        o.delete_emptydir_data = true;
        run_drain(&r2, nodes, &o, 10 * USEC_PER_SEC);
        assert_int_equal(r2.error, 0);
        assert_int_equal(r2.final.total, 4);
        assert_int_equal(r2.final.gone, 4);
        http_fixture_lock(hf);
        assert_int_equal(f.posts, 4);
        http_fixture_unlock(hf);
        run_stop(&r2);

        http_fixture_free(hf);
        fake_free(&f);
}

/* A 429 with a long backoff: the PDB watch saying disruptionsAllowed 1 sends the eviction again at once. */
static void test_pdb_watch_wakes_blocked_pod(void **state)
{
        Fake f = {.pdb_list = PDB_LIST, .pdb_allowed = 1};
        HttpFixture *hf;
        Run r = {};

        FakePod *p = fake_add(&f, POD("shop", "web-1", "n1",
                                      ",\"labels\":{\"app\":\"web\"}" OWNER("ReplicaSet", "w")) RUNNING);
        p->answers[0] = 429;
        assert_int_equal(http_fixture_start(fake_handler, &f, &hf), 0);
        run_start(&r, http_fixture_url(hf));

        /* the backoff alone would retry after 60 s, far past the drain's 10 s timeout */
        DrainOptions o = fast_options();
        o.retry_base = o.retry_cap = 60 * USEC_PER_SEC;
        const char *nodes[] = {"n1", NULL};
        run_drain(&r, nodes, &o, 20 * USEC_PER_SEC);

        assert_int_equal(r.error, 0);
        assert_true(r.saw_blocked);
        assert_string_equal(r.blocked.blocking_pdb, "shop/web-pdb");
        assert_int_equal(r.final.gone, 1);
        http_fixture_lock(hf);
        assert_int_equal(f.posts, 2);
        assert_int_equal(f.pdb_lists, 1); /* the watch starts from the list's resourceVersion */
        assert_true(f.pdb_watches >= 1);
        http_fixture_unlock(hf);

        run_stop(&r);
        http_fixture_free(hf);
        fake_free(&f);
}

static void test_pdb_blocks_then_allows(void **state)
{
        Fake f = {.pdb_list = PDB_LIST};
        HttpFixture *hf;
        Run r = {};

        FakePod *p = fake_add(&f, POD("shop", "web-1", "n1",
                                      ",\"labels\":{\"app\":\"web\"}" OWNER("ReplicaSet", "w")) RUNNING);
        p->answers[0] = p->answers[1] = p->answers[2] = 429;
        assert_int_equal(http_fixture_start(fake_handler, &f, &hf), 0);
        run_start(&r, http_fixture_url(hf));

        DrainOptions o = fast_options();
        const char *nodes[] = {"n1", NULL};
        run_drain(&r, nodes, &o, 10 * USEC_PER_SEC);

        assert_int_equal(r.error, 0);
        assert_true(r.saw_blocked);
        assert_string_equal(r.blocked.blocking_pdb, "shop/web-pdb");
        assert_string_equal(r.blocked.blocked_pod, "shop/web-1");
        assert_int_equal(r.blocked.blocked, 1);
        assert_int_equal(r.final.gone, 1);
        assert_int_equal(r.final.blocked, 0);
        http_fixture_lock(hf);
        assert_int_equal(f.posts, 4);
        assert_int_equal(f.pdb_lists, 1); /* looked up once, not on every 429 */
        http_fixture_unlock(hf);

        run_stop(&r);
        http_fixture_free(hf);
        fake_free(&f);
}

static void test_timeout_names_the_pdb(void **state)
{
        Fake f = {.pdb_list = PDB_LIST};
        HttpFixture *hf;
        Run r = {};

        FakePod *p = fake_add(&f, POD("shop", "web-1", "n1",
                                      ",\"labels\":{\"app\":\"web\"}" OWNER("ReplicaSet", "w")) RUNNING);
        p->always_429 = true;
        fake_add(&f, POD("shop", "other-1", "n1", OWNER("ReplicaSet", "o")) RUNNING);
        assert_int_equal(http_fixture_start(fake_handler, &f, &hf), 0);
        run_start(&r, http_fixture_url(hf));

        DrainOptions o = fast_options();
        o.timeout = 400 * USEC_PER_MSEC;
        o.retry_base = o.retry_cap = 50 * USEC_PER_MSEC;
        const char *nodes[] = {"n1", NULL};
        usec_t start = mr_now_monotonic(NULL);
        run_drain(&r, nodes, &o, 5 * USEC_PER_SEC);

        assert_int_equal(r.error, -ETIMEDOUT);
        assert_true(mr_now_monotonic(NULL) - start >= 400 * USEC_PER_MSEC);
        assert_non_null(strstr(r.message, "shop/web-1"));
        assert_non_null(strstr(r.message, "shop/web-pdb"));
        assert_null(strstr(r.message, "other-1")); /* it went */
        assert_int_equal(r.final.blocked, 1);
        assert_int_equal(r.final.gone, 1);
        assert_string_equal(r.final.blocking_pdb, "shop/web-pdb");

        run_stop(&r);
        http_fixture_free(hf);
        fake_free(&f);
}

static void test_eviction_answers(void **state)
{
        Fake f = {};
        HttpFixture *hf;
        Run r = {};

        fake_add(&f, POD("shop", "a-1", "n1", OWNER("ReplicaSet", "a")) RUNNING)->answers[0] = 404;
        fake_add(&f, POD("shop", "b-1", "n1", OWNER("ReplicaSet", "b")) RUNNING)->answers[0] = 500;
        fake_add(&f, POD("shop", "c-0", "n1", OWNER("StatefulSet", "c")) RUNNING)->replace = true;
        assert_int_equal(http_fixture_start(fake_handler, &f, &hf), 0);
        run_start(&r, http_fixture_url(hf));

        DrainOptions o = fast_options();
        const char *nodes[] = {"n1", NULL};
        run_drain(&r, nodes, &o, 10 * USEC_PER_SEC);

        /* the 500 fails its pod and the drain; the others were still seen through */
        assert_int_equal(r.error, -EIO);
        assert_non_null(strstr(r.message, "shop/b-1"));
        assert_non_null(strstr(r.message, "more than one PodDisruptionBudget"));
        assert_int_equal(r.final.failed, 1);
        assert_int_equal(r.final.gone, 2); /* 404, and the namesake with a new UID */
        http_fixture_lock(hf);
        assert_int_equal(f.posts, 3); /* the 500 is not retried */
        http_fixture_unlock(hf);

        run_stop(&r);
        http_fixture_free(hf);
        fake_free(&f);
}

static void test_gone_from_relist(void **state)
{
        Fake f = {.expire_watches = true};
        HttpFixture *hf;
        Run r = {};

        fake_add(&f, POD("shop", "web-1", "n1", OWNER("ReplicaSet", "w")) RUNNING);
        fake_add(&f, POD("shop", "web-2", "n1", OWNER("ReplicaSet", "w")) RUNNING);
        assert_int_equal(http_fixture_start(fake_handler, &f, &hf), 0);
        run_start(&r, http_fixture_url(hf));

        DrainOptions o = fast_options();
        const char *nodes[] = {"n1", NULL};
        run_drain(&r, nodes, &o, 10 * USEC_PER_SEC);
        assert_int_equal(r.error, 0);
        assert_int_equal(r.final.gone, 2);
        http_fixture_lock(hf);
        assert_true(f.expired >= 1);
        http_fixture_unlock(hf);

        run_stop(&r);
        http_fixture_free(hf);
        fake_free(&f);
}

static void test_concurrency_limit(void **state)
{
        static const char *const pods[] = {
            POD("shop", "p-0", "n1", OWNER("ReplicaSet", "p")) RUNNING,
            POD("shop", "p-1", "n1", OWNER("ReplicaSet", "p")) RUNNING,
            POD("shop", "p-2", "n1", OWNER("ReplicaSet", "p")) RUNNING,
            POD("shop", "p-3", "n1", OWNER("ReplicaSet", "p")) RUNNING,
            POD("shop", "p-4", "n1", OWNER("ReplicaSet", "p")) RUNNING,
            POD("shop", "p-5", "n1", OWNER("ReplicaSet", "p")) RUNNING,
        };
        Fake f = {.eviction_delay_ms = 150};
        HttpFixture *hf;
        Run r = {};

        for (size_t i = 0; i < ELEMENTSOF(pods); i++)
                fake_add(&f, pods[i]);
        assert_int_equal(http_fixture_start(fake_handler, &f, &hf), 0);
        run_start(&r, http_fixture_url(hf));

        DrainOptions o = fast_options();
        o.concurrency = 2;
        const char *nodes[] = {"n1", NULL};
        run_drain(&r, nodes, &o, 10 * USEC_PER_SEC);
        assert_int_equal(r.error, 0);
        assert_int_equal(r.final.gone, 6);

        http_fixture_lock(hf);
        assert_int_equal(f.posts, 6);
        /* eviction i+2 can only be sent once the answer to eviction i (held 150 ms) is in */
        for (unsigned i = 0; i + 2 < 6; i++)
                assert_true(f.eviction_at[i + 2] - f.eviction_at[i] >= 140 * USEC_PER_MSEC);
        /* and two do go together */
        assert_true(f.eviction_at[1] - f.eviction_at[0] < 100 * USEC_PER_MSEC);
        http_fixture_unlock(hf);

        run_stop(&r);
        http_fixture_free(hf);
        fake_free(&f);
}

static void test_bad_arguments(void **state)
{
        Run r = {};
        Drain *d = NULL;
        const char *none[] = {NULL};
        const char *nodes[] = {"n1", NULL};
        DrainOptions o = {.pod_selector = "app in ("};

        run_start(&r, "http://127.0.0.1:1");
        assert_int_equal(drain_start(r.c, r.e, none, NULL, NULL, on_done, &r, &d), -EINVAL);
        assert_int_equal(drain_start(r.c, r.e, nodes, &o, NULL, on_done, &r, &d), -EINVAL);
        assert_null(d);
        /* started and freed before the loop ever ran: nothing was sent, nothing is called */
        assert_int_equal(drain_start(r.c, r.e, nodes, NULL, NULL, on_done, &r, &d), 0);
        assert_null(drain_free(d));
        assert_true(sd_event_run(r.e, 0) >= 0);
        assert_false(r.done);
        run_stop(&r);
}

/* ---- simulator tests ---------------------------------------------------------------------------- */


#define SIM_SPEED 20.0

typedef struct SimEnv {
        Sim *sim;
        char audit[64];
        Run run;
} SimEnv;

static void sim_env_start(SimEnv *env, const char *scenario)
{
        MrError err = {};
        int fd;

        snprintf(env->audit, sizeof(env->audit), "/tmp/meshroll-drain-audit-XXXXXX");
        fd = mkostemp(env->audit, O_CLOEXEC);
        assert_true(fd >= 0);
        close(fd);
        SimOptions so = {.scenario_data = scenario,
                         .scenario_size = strlen(scenario),
                         .speed = SIM_SPEED,
                         .audit_path = env->audit};
        if (sim_start(&so, &env->sim, &err) < 0)
                fail_msg("sim_start: %s", err.message);
        run_start(&env->run, sim_url(env->sim));
}

static void sim_env_stop(SimEnv *env)
{
        run_stop(&env->run);
        sim_stop(env->sim);
        unlink(env->audit);
}

static bool pod_ready(json_object *pod)
{
        json_object *conds = mr_json_get(pod, "status", "conditions", NULL);
        if (mr_json_get(pod, "metadata", "deletionTimestamp", NULL) || !conds)
                return false;
        for (size_t i = 0; i < json_object_array_length(conds); i++) {
                json_object *c = json_object_array_get_idx(conds, i);
                if (streq_ptr(mr_json_get_str(c, "type", NULL), "Ready"))
                        return streq_ptr(mr_json_get_str(c, "status", NULL), "True");
        }
        return false;
}

/* The pods matching selector (owned array), through the API. */
static json_object *list_pods(SimEnv *env, const char *selector)
{
        json_object *items = NULL;
        KubeListOptions lo = {.label_selector = selector};
        assert_int_equal(kube_list(env->run.c, &KUBE_PODS, NULL, &lo, &items, NULL, NULL), 0);
        return items;
}

/* Counts ready pods matching selector, those on node (when not NULL) apart in *on_node. */
static unsigned count_ready(SimEnv *env, const char *selector, const char *node, unsigned *on_node)
{
        _cleanup_(json_object_putp) json_object *items = list_pods(env, selector);
        unsigned n = 0;
        if (on_node)
                *on_node = 0;
        for (size_t i = 0; i < json_object_array_length(items); i++) {
                json_object *p = json_object_array_get_idx(items, i);
                if (!pod_ready(p))
                        continue;
                n++;
                if (on_node && streq_ptr(mr_json_get_str(p, "spec", "nodeName", NULL), node))
                        (*on_node)++;
        }
        return n;
}

/* Waits (running the loop, bounded) until n pods matching selector are ready, none of them on avoid. */
static void wait_ready(SimEnv *env, const char *selector, unsigned n, const char *avoid)
{
        usec_t end = mr_now_monotonic(NULL) + 20 * USEC_PER_SEC;
        unsigned on_avoid = 0, ready = 0;
        while (mr_now_monotonic(NULL) < end) {
                ready = count_ready(env, selector, avoid, &on_avoid);
                if (ready >= n && on_avoid == 0)
                        return;
                assert_true(sd_event_run(env->run.e, 50 * USEC_PER_MSEC) >= 0);
        }
        fail_msg("%u of %u pods %s ready (%u on %s)", ready, n, selector, on_avoid, strna(avoid));
}

/* The node running the most pods matching selector; how many in *ret_count. */
static void busiest_node(SimEnv *env, const char *selector, char *buf, size_t size, unsigned *ret_count)
{
        _cleanup_(json_object_putp) json_object *items = list_pods(env, selector);
        unsigned best = 0;
        for (size_t i = 0; i < json_object_array_length(items); i++) {
                const char *node =
                    mr_json_get_str(json_object_array_get_idx(items, i), "spec", "nodeName", NULL);
                unsigned k = 0;
                for (size_t j = 0; j < json_object_array_length(items); j++)
                        k += streq_ptr(
                            mr_json_get_str(json_object_array_get_idx(items, j), "spec", "nodeName", NULL),
                            node);
                if (node && k > best) {
                        best = k;
                        snprintf(buf, size, "%s", node);
                }
        }
        *ret_count = best;
}

static void cordon(SimEnv *env, const char *node)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_(json_object_putp) json_object *patch =
            json_tokener_parse("{\"spec\":{\"unschedulable\":true}}");
        assert_int_equal(kube_path(&KUBE_NODES, NULL, node, NULL, &path), 0);
        assert_int_equal(kube_patch(env->run.c, path, KUBE_PATCH_MERGE, patch, NULL, NULL), 0);
}

/* The audit log's eviction records, as an owned array of their lines (parsed). */
static json_object *audit_evictions(SimEnv *env)
{
        json_object *out = json_object_new_array();
        FILE *f = fopen(env->audit, "re");
        char line[16384];
        assert_non_null(f);
        while (fgets(line, sizeof(line), f)) {
                json_object *o = json_tokener_parse(line);
                if (o && streq_ptr(mr_json_get_str(o, "verb", NULL), "evict"))
                        json_object_array_add(out, o);
                else
                        json_object_put(o);
        }
        fclose(f);
        return out;
}

#define SCENARIO(pdb)                                                                                       \
        "name: drain\n"                                                                                     \
        "nodes:\n"                                                                                          \
        "  - {name: \"{pool}-{i}\", count: 2, pool: a}\n"                                                   \
        "workloads:\n"                                                                                      \
        "  - {name: agent, namespace: kube-system, kind: DaemonSet, startupSeconds: 1}\n"                   \
        "  - {name: web, namespace: shop, replicas: 3, startupSeconds: 3, shutdownSeconds: 2,\n"            \
        "     strategy: {maxSurge: 1, maxUnavailable: 0}" pdb "}\n"

static void test_sim_daemonset_skipped_replacements_elsewhere(void **state)
{
        SimEnv env = {};
        char node[64] = "";
        unsigned k = 0;

        sim_env_start(&env, SCENARIO(""));
        wait_ready(&env, "app=web", 3, NULL);
        wait_ready(&env, "app=agent", 2, NULL);
        busiest_node(&env, "app=web", node, sizeof(node), &k);
        assert_true(k >= 2);
        cordon(&env, node);

        DrainOptions o = fast_options();
        o.timeout = 30 * USEC_PER_SEC;
        o.grace_period_seconds = 1;
        const char *nodes[] = {node, NULL};
        run_drain(&env.run, nodes, &o, 35 * USEC_PER_SEC);
        assert_int_equal(env.run.error, 0);
        assert_int_equal(env.run.final.skipped, 1); /* the agent */
        assert_int_equal(env.run.final.total, k);
        assert_int_equal(env.run.final.gone, k);

        /* the Deployment is whole again, on the other node; the DaemonSet pod stayed */
        wait_ready(&env, "app=web", 3, node);
        unsigned on_node = 0;
        assert_int_equal(count_ready(&env, "app=agent", node, &on_node), 2);
        assert_int_equal(on_node, 1);

        _cleanup_(json_object_putp) json_object *ev = audit_evictions(&env);
        assert_int_equal(json_object_array_length(ev), k);
        for (size_t i = 0; i < k; i++) {
                json_object *rec = json_object_array_get_idx(ev, i);
                int64_t grace = -1;
                assert_string_equal(mr_json_get_str(rec, "namespace", NULL), "shop");
                assert_int_equal(
                    mr_json_get_int(&grace, rec, "object", "deleteOptions", "gracePeriodSeconds", NULL), 0);
                assert_int_equal(grace, 1);
        }
        sim_env_stop(&env);
}

static void test_sim_pdb_blocks_until_replacements_ready(void **state)
{
        SimEnv env = {};
        char node[64] = "";
        unsigned k = 0;

        sim_env_start(&env, SCENARIO(", pdb: {minAvailable: 2}"));
        wait_ready(&env, "app=web", 3, NULL);
        busiest_node(&env, "app=web", node, sizeof(node), &k);
        assert_true(k >= 2); /* so one eviction must wait for a replacement */
        cordon(&env, node);

        DrainOptions o = fast_options();
        o.timeout = 30 * USEC_PER_SEC;
        o.retry_base = 50 * USEC_PER_MSEC;
        o.retry_cap = 200 * USEC_PER_MSEC;
        const char *nodes[] = {node, NULL};
        run_drain(&env.run, nodes, &o, 35 * USEC_PER_SEC);
        assert_int_equal(env.run.error, 0);
        assert_true(env.run.saw_blocked);
        assert_string_equal(env.run.blocked.blocking_pdb, "shop/web");
        assert_non_null(startswith(env.run.blocked.blocked_pod, "shop/web-"));
        assert_int_equal(env.run.final.gone, k);
        wait_ready(&env, "app=web", 3, node);
        sim_env_stop(&env);
}

static void test_sim_pdb_timeout(void **state)
{
        SimEnv env = {};
        char node[64] = "";
        unsigned k = 0;

        sim_env_start(&env, SCENARIO(", pdb: {minAvailable: 3}"));
        wait_ready(&env, "app=web", 3, NULL);
        busiest_node(&env, "app=web", node, sizeof(node), &k);
        cordon(&env, node);

        DrainOptions o = fast_options();
        o.timeout = 1500 * USEC_PER_MSEC;
        o.retry_base = 50 * USEC_PER_MSEC;
        o.retry_cap = 200 * USEC_PER_MSEC;
        const char *nodes[] = {node, NULL};
        run_drain(&env.run, nodes, &o, 10 * USEC_PER_SEC);
        assert_int_equal(env.run.error, -ETIMEDOUT);
        assert_non_null(strstr(env.run.message, "shop/web"));
        assert_string_equal(env.run.final.blocking_pdb, "shop/web");
        assert_int_equal(env.run.final.blocked, k);
        assert_int_equal(env.run.final.gone, 0);
        _cleanup_(json_object_putp) json_object *ev = audit_evictions(&env);
        assert_int_equal(json_object_array_length(ev), 0); /* every eviction was refused */
        sim_env_stop(&env);
}

static void test_sim_unmanaged_and_emptydir_refused(void **state)
{
        static const char scenario[] =
            "name: drain-refused\n"
            "nodes:\n"
            "  - {name: \"{pool}-{i}\", count: 2, pool: a}\n"
            "workloads:\n"
            "  - {name: cache, namespace: shop, replicas: 1, emptyDir: true,\n"
            "     nodeSelector: {kubernetes.io/hostname: a-1}}\n"
            "  - {name: web, namespace: shop, replicas: 1, nodeSelector: {kubernetes.io/hostname: a-1}}\n"
            "objects:\n"
            "  - apiVersion: v1\n"
            "    kind: Pod\n"
            "    metadata: {name: bare, namespace: shop, labels: {app: bare}}\n"
            "    spec: {nodeName: a-1, containers: [{name: c, image: busybox}]}\n";
        SimEnv env = {};

        sim_env_start(&env, scenario);
        wait_ready(&env, "app in (cache,web,bare)", 3, NULL);

        DrainOptions o = fast_options();
        const char *nodes[] = {"a-1", NULL};
        run_drain(&env.run, nodes, &o, 10 * USEC_PER_SEC);
        assert_int_equal(env.run.error, -MR_ECONFIG);
        assert_non_null(strstr(env.run.message, "shop/bare"));
        assert_non_null(strstr(env.run.message, "shop/cache-"));
        assert_null(strstr(env.run.message, "shop/web-"));

        _cleanup_(json_object_putp) json_object *ev = audit_evictions(&env);
        assert_int_equal(json_object_array_length(ev), 0);
        assert_int_equal(count_ready(&env, "app in (cache,web,bare)", NULL, NULL), 3);
        sim_env_stop(&env);
}


int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bad_arguments),
                cmocka_unit_test(test_classify_and_evict),
                cmocka_unit_test(test_own_grace_period),
                cmocka_unit_test(test_refused_before_any_eviction),
                cmocka_unit_test(test_pdb_blocks_then_allows),
                cmocka_unit_test(test_pdb_watch_wakes_blocked_pod),
                cmocka_unit_test(test_timeout_names_the_pdb),
                cmocka_unit_test(test_eviction_answers),
                cmocka_unit_test(test_gone_from_relist),
                cmocka_unit_test(test_concurrency_limit),
                cmocka_unit_test(test_sim_daemonset_skipped_replacements_elsewhere),
                cmocka_unit_test(test_sim_pdb_blocks_until_replacements_ready),
                cmocka_unit_test(test_sim_pdb_timeout),
                cmocka_unit_test(test_sim_unmanaged_and_emptydir_refused),
        };
        return cmocka_run_group_tests_name(TEST_NAME, tests, NULL, NULL);
}
