/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_sim-api.c — the simulated API server over real HTTP (libcurl on
 * loopback): every verb, Status bodies, 409s, selectors, pagination,
 * watches (resume, 410), eviction, auth, protobuf DELETE bodies.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>

#include "api.h"
#include "meshroll/json-util.h"

typedef struct Server {
        SimStore *store;
        SimFaults faults;
        SimApi api;
        SimHttp *http;
        char base[64];
} Server;

static Server srv;

static json_object *J(const char *s)
{
        json_object *o = NULL;
        assert_int_equal(mr_json_parse(s, strlen(s), 1 << 20, &o), 0);
        return o;
}

static void put_obj(const SimKind *k, const char *json)
{
        MrError err = {};
        sim_store_lock(srv.store);
        int r = sim_store_create(srv.store, k, J(json), "test", NULL, &err);
        sim_store_unlock(srv.store);
        if (r < 0)
                fail_msg("create: %s", err.message);
}

static int start_server(const char *token)
{
        memset(&srv, 0, sizeof(srv));
        assert_int_equal(sim_store_new(NULL, -1, &srv.store), 0);
        srv.api = (SimApi){.store = srv.store, .faults = &srv.faults, .server_address = "127.0.0.1",
                           .bookmark_interval = 50 * USEC_PER_MSEC};
        MrError err = {};
        assert_int_equal(sim_http_start(&srv.api, &(SimHttpOptions){.listen = "127.0.0.1:0", .token = token}, &srv.http, &err), 0);
        snprintf(srv.base, sizeof(srv.base), "http://127.0.0.1:%u", sim_http_port(srv.http));

        put_obj(&SIM_NAMESPACES, "{\"metadata\":{\"name\":\"default\"}}");
        put_obj(&SIM_NAMESPACES, "{\"metadata\":{\"name\":\"shop\"}}");
        put_obj(&SIM_NODES, "{\"metadata\":{\"name\":\"n1\",\"labels\":{\"node-role.kubernetes.io/worker\":\"\"}},"
                            "\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}],"
                            "\"nodeInfo\":{\"kubeletVersion\":\"v1.32.0\"}}}");
        put_obj(&SIM_NODES, "{\"metadata\":{\"name\":\"n2\"}}");
        for (int i = 0; i < 5; i++) {
                char buf[512];
                snprintf(buf, sizeof(buf),
                         "{\"metadata\":{\"name\":\"web-%d\",\"namespace\":\"shop\",\"labels\":{\"app\":\"%s\"}},"
                         "\"spec\":{\"nodeName\":\"n%d\",\"containers\":[{\"name\":\"c\"}]},"
                         "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.%d\"}}",
                         i, i < 3 ? "web" : "db", i % 2 + 1, i);
                put_obj(&SIM_PODS, buf);
        }
        return 0;
}

static int setup(void **state)
{
        return start_server(NULL);
}

static int teardown(void **state)
{
        srv.http = sim_http_stop(srv.http);
        srv.store = sim_store_free(srv.store);
        return 0;
}

typedef struct Reply {
        long code;
        char *body;
        size_t size;
        char headers[2048];
        json_object *json;
} Reply;

static size_t write_cb(char *p, size_t s, size_t n, void *u)
{
        Reply *r = u;
        char *b = realloc(r->body, r->size + s * n + 1);
        assert_non_null(b);
        memcpy(b + r->size, p, s * n);
        r->size += s * n;
        b[r->size] = 0;
        r->body = b;
        return s * n;
}

static size_t header_cb(char *p, size_t s, size_t n, void *u)
{
        Reply *r = u;
        size_t l = strlen(r->headers);
        snprintf(r->headers + l, sizeof(r->headers) - l, "%.*s", (int)(s * n), p);
        return s * n;
}

static void reply_done(Reply *r)
{
        free(r->body);
        if (r->json)
                json_object_put(r->json);
        *r = (Reply){};
}

static Reply req(const char *method, const char *path, const char *ctype, const char *body, size_t body_len,
                 const char *extra_header)
{
        Reply r = {};
        char url[1024];
        CURL *c = curl_easy_init();
        struct curl_slist *h = NULL;
        snprintf(url, sizeof(url), "%s%s", srv.base, path);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
        if (body) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
        }
        if (ctype) {
                char hdr[256];
                snprintf(hdr, sizeof(hdr), "Content-Type: %s", ctype);
                h = curl_slist_append(h, hdr);
        }
        if (extra_header)
                h = curl_slist_append(h, extra_header);
        h = curl_slist_append(h, "User-Agent: test-sim-api/1.0");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        assert_int_equal(curl_easy_perform(c), CURLE_OK);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.code);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        if (r.body && (r.body[0] == '{' || r.body[0] == '['))
                (void)mr_json_parse(r.body, r.size, 1 << 24, &r.json);
        return r;
}

#define GET(p) req("GET", p, NULL, NULL, 0, NULL)
#define SEND(m, p, ct, b) req(m, p, ct, b, strlen(b), NULL)

static void assert_status(Reply *r, long code, const char *reason, const char *message)
{
        if (r->code != code)
                fail_msg("HTTP %ld, want %ld: %s", r->code, code, r->body);
        assert_non_null(strcasestr(r->headers, "Content-Type: application/json"));
        assert_string_equal(mr_json_get_str(r->json, "kind", NULL), "Status");
        assert_string_equal(mr_json_get_str(r->json, "apiVersion", NULL), "v1");
        int64_t c = 0;
        assert_int_equal(mr_json_get_int(&c, r->json, "code", NULL), 0);
        assert_int_equal(c, code);
        if (reason)
                assert_string_equal(mr_json_get_str(r->json, "reason", NULL), reason);
        if (message)
                assert_string_equal(mr_json_get_str(r->json, "message", NULL), message);
}

static void test_discovery(void **state)
{
        Reply r = GET("/api/v1");
        assert_int_equal(r.code, 200);
        assert_non_null(strstr(r.body, "{\"name\":\"pods/eviction\",\"singularName\":\"\",\"namespaced\":true,"
                                       "\"kind\":\"Eviction\",\"verbs\":[\"create\"],\"group\":\"policy\",\"version\":\"v1\"}"));
        assert_non_null(strstr(r.body, "\"shortNames\":[\"po\"]"));
        reply_done(&r);
        r = GET("/apis");
        assert_string_equal(mr_json_get_str(r.json, "kind", NULL), "APIGroupList");
        assert_non_null(strstr(r.body, "\"name\":\"policy\""));
        assert_non_null(strstr(r.body, "\"name\":\"coordination.k8s.io\""));
        reply_done(&r);
        r = GET("/apis/apps/v1");
        assert_non_null(strstr(r.body, "\"name\":\"daemonsets\",\"singularName\":\"daemonset\""));
        assert_non_null(strstr(r.body, "\"shortNames\":[\"ds\"]"));
        reply_done(&r);
        r = GET("/apis/policy");
        assert_string_equal(mr_json_get_str(r.json, "preferredVersion", "groupVersion", NULL), "policy/v1");
        reply_done(&r);
        r = GET("/version");
        assert_string_equal(mr_json_get_str(r.json, "major", NULL), "1");
        reply_done(&r);
        r = GET("/openapi/v2");
        assert_status(&r, 404, "NotFound", "the server could not find the requested resource");
        reply_done(&r);
        r = GET("/apis/nope/v1");
        assert_int_equal(r.code, 404);
        reply_done(&r);
}

static void test_get_list_selectors(void **state)
{
        Reply r = GET("/api/v1/namespaces/shop/pods/web-1");
        assert_int_equal(r.code, 200);
        assert_string_equal(mr_json_get_str(r.json, "metadata", "name", NULL), "web-1");
        reply_done(&r);

        r = GET("/api/v1/namespaces/shop/pods/nope");
        assert_status(&r, 404, "NotFound", "pods \"nope\" not found");
        assert_string_equal(mr_json_get_str(r.json, "details", "kind", NULL), "pods");
        assert_string_equal(mr_json_get_str(r.json, "details", "name", NULL), "nope");
        reply_done(&r);
        r = GET("/apis/apps/v1/namespaces/shop/daemonsets/z");
        assert_status(&r, 404, "NotFound", "daemonsets.apps \"z\" not found");
        assert_string_equal(mr_json_get_str(r.json, "details", "group", NULL), "apps");
        reply_done(&r);

        r = GET("/api/v1/pods?labelSelector=app%3Dweb&fieldSelector=spec.nodeName%3Dn1");
        assert_string_equal(mr_json_get_str(r.json, "kind", NULL), "PodList");
        json_object *items = mr_json_get(r.json, "items", NULL);
        assert_int_equal(json_object_array_length(items), 2); /* web-0, web-2 */
        assert_string_equal(mr_json_get_str(json_object_array_get_idx(items, 1), "metadata", "name", NULL), "web-2");
        reply_done(&r);

        r = GET("/api/v1/pods?fieldSelector=spec.bogus%3D1");
        assert_status(&r, 400, "BadRequest", "field label not supported: spec.bogus");
        reply_done(&r);
        r = GET("/api/v1/nodes?fieldSelector=spec.unschedulable%3Dfalse");
        assert_int_equal(json_object_array_length(mr_json_get(r.json, "items", NULL)), 2);
        reply_done(&r);
        r = GET("/api/v1/namespaces/nope/pods");
        assert_int_equal(json_object_array_length(mr_json_get(r.json, "items", NULL)), 0);
        reply_done(&r);
        r = GET("/api/v1/namespaces/shop/nodes");
        assert_int_equal(r.code, 404);
        reply_done(&r);
}

static void test_pagination(void **state)
{
        char path[1024];
        Reply r = GET("/api/v1/namespaces/shop/pods?limit=2");
        const char *rv = mr_json_get_str(r.json, "metadata", "resourceVersion", NULL);
        char list_rv[32];
        snprintf(list_rv, sizeof(list_rv), "%s", rv);
        int64_t remaining = 0;
        assert_int_equal(mr_json_get_int(&remaining, r.json, "metadata", "remainingItemCount", NULL), 0);
        assert_int_equal(remaining, 3);
        char names[256] = "";
        for (int page = 0; page < 5; page++) {
                json_object *items = mr_json_get(r.json, "items", NULL);
                for (size_t i = 0; i < json_object_array_length(items); i++) {
                        size_t l = strlen(names);
                        snprintf(names + l, sizeof(names) - l, "%s ",
                                 mr_json_get_str(json_object_array_get_idx(items, i), "metadata", "name", NULL));
                }
                assert_string_equal(mr_json_get_str(r.json, "metadata", "resourceVersion", NULL), list_rv);
                const char *cont = mr_json_get_str(r.json, "metadata", "continue", NULL);
                if (!cont)
                        break;
                snprintf(path, sizeof(path), "/api/v1/namespaces/shop/pods?limit=2&continue=%s", cont);
                /* a write in between does not change the list's revision */
                put_obj(&SIM_CONFIGMAPS, page == 0 ? "{\"metadata\":{\"name\":\"x\",\"namespace\":\"shop\"}}"
                                                   : "{\"metadata\":{\"name\":\"y\",\"namespace\":\"shop\"}}");
                reply_done(&r);
                r = GET(path);
                assert_int_equal(r.code, 200);
        }
        assert_string_equal(names, "web-0 web-1 web-2 web-3 web-4 ");
        reply_done(&r);

        r = GET("/api/v1/namespaces/shop/pods?limit=2&continue=zz");
        assert_status(&r, 400, "BadRequest", NULL);
        reply_done(&r);
        /* a token whose revision left the history → 410 */
        r = GET("/api/v1/namespaces/shop/pods?limit=1");
        snprintf(path, sizeof(path), "/api/v1/namespaces/shop/pods?limit=1&continue=%s",
                 mr_json_get_str(r.json, "metadata", "continue", NULL));
        reply_done(&r);
        sim_store_lock(srv.store);
        sim_store_set_history_limit(srv.store, 1);
        sim_store_unlock(srv.store);
        put_obj(&SIM_CONFIGMAPS, "{\"metadata\":{\"name\":\"z1\",\"namespace\":\"shop\"}}");
        put_obj(&SIM_CONFIGMAPS, "{\"metadata\":{\"name\":\"z2\",\"namespace\":\"shop\"}}");
        r = GET(path);
        assert_status(&r, 410, "Expired", NULL);
        reply_done(&r);
}

static void test_create_update_conflict(void **state)
{
        Reply r = SEND("POST", "/apis/coordination.k8s.io/v1/namespaces/shop/leases", "application/json",
                       "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":\"l1\"},"
                       "\"spec\":{\"holderIdentity\":\"a\"}}");
        assert_int_equal(r.code, 201);
        char rv[32];
        snprintf(rv, sizeof(rv), "%s", mr_json_get_str(r.json, "metadata", "resourceVersion", NULL));
        assert_string_equal(mr_json_get_str(r.json, "metadata", "namespace", NULL), "shop");
        reply_done(&r);

        r = SEND("POST", "/apis/coordination.k8s.io/v1/namespaces/shop/leases", "application/json",
                 "{\"metadata\":{\"name\":\"l1\"}}");
        assert_status(&r, 409, "AlreadyExists", "leases.coordination.k8s.io \"l1\" already exists");
        reply_done(&r);
        r = SEND("POST", "/apis/coordination.k8s.io/v1/namespaces/ghost/leases", "application/json",
                 "{\"metadata\":{\"name\":\"l1\"}}");
        assert_status(&r, 404, "NotFound", "namespaces \"ghost\" not found");
        reply_done(&r);
        r = SEND("POST", "/apis/coordination.k8s.io/v1/namespaces/shop/leases", "application/json",
                 "{\"metadata\":{\"name\":\"l2\",\"namespace\":\"other\"}}");
        assert_status(&r, 400, "BadRequest", NULL);
        reply_done(&r);
        r = SEND("POST", "/apis/coordination.k8s.io/v1/namespaces/shop/leases", "application/json", "{not json");
        assert_status(&r, 400, "BadRequest", NULL);
        reply_done(&r);

        /* PUT: stale RV → 409, no RV on a Lease → 422, right RV → 200 */
        r = SEND("PUT", "/apis/coordination.k8s.io/v1/namespaces/shop/leases/l1", "application/json",
                 "{\"metadata\":{\"name\":\"l1\",\"resourceVersion\":\"1\"},\"spec\":{\"holderIdentity\":\"b\"}}");
        assert_status(&r, 409, "Conflict",
                      "Operation cannot be fulfilled on leases.coordination.k8s.io \"l1\": the object has been modified; "
                      "please apply your changes to the latest version and try again");
        reply_done(&r);
        r = SEND("PUT", "/apis/coordination.k8s.io/v1/namespaces/shop/leases/l1", "application/json",
                 "{\"metadata\":{\"name\":\"l1\"},\"spec\":{\"holderIdentity\":\"b\"}}");
        assert_status(&r, 422, "Invalid", NULL);
        assert_string_equal(mr_json_get_str(r.json, "details", "kind", NULL), "Lease");
        reply_done(&r);
        char body[256];
        snprintf(body, sizeof(body), "{\"metadata\":{\"name\":\"l1\",\"resourceVersion\":\"%s\"},\"spec\":{\"holderIdentity\":\"b\"}}", rv);
        r = SEND("PUT", "/apis/coordination.k8s.io/v1/namespaces/shop/leases/l1", "application/json", body);
        assert_int_equal(r.code, 200);
        assert_string_equal(mr_json_get_str(r.json, "spec", "holderIdentity", NULL), "b");
        reply_done(&r);
        r = SEND("PUT", "/apis/coordination.k8s.io/v1/namespaces/shop/leases/l1", "application/json",
                 "{\"metadata\":{\"name\":\"other\"}}");
        assert_status(&r, 400, "BadRequest", "the name of the object (other) does not match the name on the URL (l1)");
        reply_done(&r);

        /* status subresource: only status changes */
        r = SEND("PUT", "/api/v1/namespaces/shop/pods/web-0/status", "application/json",
                 "{\"metadata\":{\"name\":\"web-0\"},\"spec\":{\"nodeName\":\"zzz\"},\"status\":{\"phase\":\"Succeeded\"}}");
        assert_int_equal(r.code, 200);
        assert_string_equal(mr_json_get_str(r.json, "status", "phase", NULL), "Succeeded");
        assert_string_equal(mr_json_get_str(r.json, "spec", "nodeName", NULL), "n1");
        reply_done(&r);
        r = SEND("PUT", "/api/v1/namespaces/shop/configmaps/x/status", "application/json", "{}");
        assert_int_equal(r.code, 404);
        reply_done(&r);
        r = SEND("POST", "/api/v1/namespaces/shop/pods", "application/vnd.kubernetes.protobuf", "k8s\0\x0a\x00");
        assert_status(&r, 415, "UnsupportedMediaType", NULL);
        reply_done(&r);
}

static void test_patch(void **state)
{
        /* cordon / uncordon as kubectl sends them */
        Reply r = SEND("PATCH", "/api/v1/nodes/n1", "application/strategic-merge-patch+json", "{\"spec\":{\"unschedulable\":true}}");
        assert_int_equal(r.code, 200);
        assert_true(mr_json_get_bool(false, r.json, "spec", "unschedulable", NULL));
        reply_done(&r);
        r = GET("/api/v1/nodes?fieldSelector=spec.unschedulable%3Dtrue");
        assert_int_equal(json_object_array_length(mr_json_get(r.json, "items", NULL)), 1);
        reply_done(&r);
        r = SEND("PATCH", "/api/v1/nodes/n1", "application/strategic-merge-patch+json", "{\"spec\":{\"unschedulable\":null}}");
        assert_null(mr_json_get(r.json, "spec", "unschedulable", NULL));
        reply_done(&r);
        /* label namespace */
        r = SEND("PATCH", "/api/v1/namespaces/shop?fieldManager=kubectl-label", "application/merge-patch+json",
                 "{\"metadata\":{\"labels\":{\"team\":\"a\"}}}");
        assert_int_equal(r.code, 200);
        assert_string_equal(mr_json_get_str(r.json, "metadata", "labels", "team", NULL), "a");
        assert_string_equal(mr_json_get_str(r.json, "metadata", "labels", "kubernetes.io/metadata.name", NULL), "shop");
        reply_done(&r);
        /* JSON patch with a failing test; RV precondition in a merge patch */
        r = SEND("PATCH", "/api/v1/namespaces/shop", "application/json-patch+json",
                 "[{\"op\":\"test\",\"path\":\"/metadata/labels/team\",\"value\":\"b\"}]");
        assert_status(&r, 422, "Invalid", NULL);
        reply_done(&r);
        r = SEND("PATCH", "/api/v1/namespaces/shop", "application/merge-patch+json",
                 "{\"metadata\":{\"resourceVersion\":\"2\",\"labels\":{\"x\":\"y\"}}}");
        assert_status(&r, 409, "Conflict", NULL);
        reply_done(&r);
        r = SEND("PATCH", "/api/v1/namespaces/shop", "application/apply-patch+yaml", "metadata: {}");
        assert_status(&r, 415, "UnsupportedMediaType", NULL);
        reply_done(&r);
        r = SEND("PATCH", "/api/v1/namespaces/ghost", "application/merge-patch+json", "{}");
        assert_status(&r, 404, "NotFound", "namespaces \"ghost\" not found");
        reply_done(&r);
        r = SEND("PATCH", "/api/v1/namespaces/shop", "application/merge-patch+json", "{\"metadata\":{\"name\":\"zz\"}}");
        assert_status(&r, 422, "Invalid", NULL);
        reply_done(&r);
}

static void test_delete(void **state)
{
        /* a bound pod is marked, and the object comes back */
        Reply r = req("DELETE", "/api/v1/namespaces/shop/pods/web-1", "application/json",
                      "{\"gracePeriodSeconds\":5}", 24, NULL);
        assert_int_equal(r.code, 200);
        assert_string_equal(mr_json_get_str(r.json, "kind", NULL), "Pod");
        int64_t g = 0;
        assert_int_equal(mr_json_get_int(&g, r.json, "metadata", "deletionGracePeriodSeconds", NULL), 0);
        assert_int_equal(g, 5);
        reply_done(&r);
        /* protobuf DeleteOptions (kubectl 1.32): Unknown{2: raw{1: gracePeriodSeconds=0}} */
        static const char pb[] = "k8s\0\x0a\x00\x12\x02\x08\x00";
        r = req("DELETE", "/api/v1/namespaces/shop/pods/web-2", "application/vnd.kubernetes.protobuf", pb, sizeof(pb) - 1, NULL);
        assert_int_equal(r.code, 200);
        reply_done(&r);
        r = GET("/api/v1/namespaces/shop/pods/web-2");
        assert_int_equal(r.code, 404);
        reply_done(&r);
        /* others: Status Success */
        put_obj(&SIM_CONFIGMAPS, "{\"metadata\":{\"name\":\"cm\",\"namespace\":\"shop\"}}");
        r = GET("/api/v1/namespaces/shop/configmaps/cm");
        char uid[64];
        snprintf(uid, sizeof(uid), "%s", mr_json_get_str(r.json, "metadata", "uid", NULL));
        reply_done(&r);
        r = req("DELETE", "/api/v1/namespaces/shop/configmaps/cm", "application/json",
                "{\"preconditions\":{\"uid\":\"wrong\"}}", 33, NULL);
        assert_status(&r, 409, "Conflict", NULL);
        reply_done(&r);
        r = req("DELETE", "/api/v1/namespaces/shop/configmaps/cm?gracePeriodSeconds=0", NULL, NULL, 0, NULL);
        assert_int_equal(r.code, 200);
        assert_string_equal(mr_json_get_str(r.json, "status", NULL), "Success");
        assert_string_equal(mr_json_get_str(r.json, "details", "uid", NULL), uid);
        reply_done(&r);
        r = req("DELETE", "/api/v1/namespaces/shop/configmaps/cm", NULL, NULL, 0, NULL);
        assert_status(&r, 404, "NotFound", "configmaps \"cm\" not found");
        reply_done(&r);
        r = req("DELETE", "/api/v1/namespaces/shop/pods?labelSelector=app%3Ddb", NULL, NULL, 0, NULL);
        assert_int_equal(r.code, 200);
        reply_done(&r);
        r = GET("/api/v1/namespaces/shop/pods?labelSelector=app%3Ddb");
        json_object *items = mr_json_get(r.json, "items", NULL);
        for (size_t i = 0; i < json_object_array_length(items); i++)
                assert_non_null(mr_json_get(json_object_array_get_idx(items, i), "metadata", "deletionTimestamp", NULL));
        reply_done(&r);
        r = SEND("POST", "/api/v1/namespaces/shop/pods/web-0", "application/json", "{}");
        assert_status(&r, 405, "MethodNotAllowed", NULL);
        reply_done(&r);
}

static void test_eviction(void **state)
{
        Reply r = SEND("POST", "/api/v1/namespaces/shop/pods/web-0/eviction", "application/json",
                       "{\"apiVersion\":\"policy/v1\",\"kind\":\"Eviction\",\"metadata\":{\"name\":\"web-0\",\"namespace\":\"shop\"}}");
        assert_int_equal(r.code, 201);
        assert_string_equal(r.body, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Success\",\"code\":201}");
        reply_done(&r);
        r = GET("/api/v1/namespaces/shop/pods/web-0");
        assert_non_null(mr_json_get(r.json, "metadata", "deletionTimestamp", NULL));
        assert_non_null(strstr(r.body, "\"reason\":\"EvictionByEvictionAPI\""));
        reply_done(&r);
        r = SEND("POST", "/api/v1/namespaces/shop/pods/web-1/eviction", "application/json",
                 "{\"apiVersion\":\"policy/v1beta1\",\"kind\":\"Eviction\",\"metadata\":{\"name\":\"web-9\"}}");
        assert_status(&r, 400, "BadRequest", "name in URL does not match name in Eviction object");
        reply_done(&r);
        r = SEND("POST", "/api/v1/namespaces/shop/pods/ghost/eviction", "application/json",
                 "{\"apiVersion\":\"policy/v1beta1\",\"kind\":\"Eviction\",\"metadata\":{\"name\":\"ghost\"}}");
        assert_status(&r, 404, "NotFound", "pods \"ghost\" not found");
        reply_done(&r);

        /* A PDB with no disruptions left: 429 with the cause, no Retry-After. */
        put_obj(&SIM_PDBS, "{\"metadata\":{\"name\":\"web-pdb\",\"namespace\":\"shop\"},\"spec\":{\"minAvailable\":3,"
                           "\"selector\":{\"matchLabels\":{\"app\":\"web\"}}}}");
        sim_store_lock(srv.store);
        json_object *pdb = mr_json_copy(sim_store_get(srv.store, &SIM_PDBS, "shop", "web-pdb"));
        json_object_object_add(pdb, "status", J("{\"observedGeneration\":1,\"disruptionsAllowed\":0,\"currentHealthy\":3,"
                                                "\"desiredHealthy\":3,\"expectedPods\":3}"));
        assert_int_equal(sim_store_update(srv.store, &SIM_PDBS, pdb, SIM_UPDATE_STATUS, "test", NULL, NULL), 0);
        json_object *pod = mr_json_copy(sim_store_get(srv.store, &SIM_PODS, "shop", "web-1"));
        json_object_object_add(mr_json_get(pod, "status", NULL), "conditions", J("[{\"type\":\"Ready\",\"status\":\"True\"}]"));
        assert_int_equal(sim_store_update(srv.store, &SIM_PODS, pod, SIM_UPDATE_STATUS, "test", NULL, NULL), 0);
        sim_store_unlock(srv.store);
        r = SEND("POST", "/api/v1/namespaces/shop/pods/web-1/eviction", "application/json",
                 "{\"apiVersion\":\"policy/v1\",\"kind\":\"Eviction\",\"metadata\":{\"name\":\"web-1\"}}");
        assert_status(&r, 429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.");
        assert_null(strcasestr(r.headers, "Retry-After"));
        assert_non_null(strstr(r.body, "\"causes\":[{\"reason\":\"DisruptionBudget\",\"message\":\"The disruption budget "
                                       "web-pdb needs 3 healthy pods and has 3 currently\"}]"));
        reply_done(&r);
        /* two PDBs: 500 without a reason */
        put_obj(&SIM_PDBS, "{\"metadata\":{\"name\":\"all\",\"namespace\":\"shop\"},\"spec\":{\"selector\":{}}}");
        r = SEND("POST", "/api/v1/namespaces/shop/pods/web-1/eviction", "application/json",
                 "{\"apiVersion\":\"policy/v1\",\"kind\":\"Eviction\",\"metadata\":{\"name\":\"web-1\"}}");
        assert_status(&r, 500, NULL, "This pod has more than one PodDisruptionBudget, which the eviction subresource does "
                                     "not support.");
        assert_null(mr_json_get(r.json, "reason", NULL));
        reply_done(&r);
}

typedef struct WatchCtx {
        const char *path;
        Reply reply;
} WatchCtx;

static void *watch_thread(void *arg)
{
        WatchCtx *w = arg;
        w->reply = GET(w->path);
        return NULL;
}

static void test_watch(void **state)
{
        /* resume from a list RV: only later changes, in order, then the timeout ends the stream */
        Reply r = GET("/api/v1/namespaces/shop/pods?limit=500&resourceVersion=0");
        char path[512];
        snprintf(path, sizeof(path), "/api/v1/namespaces/shop/pods?allowWatchBookmarks=true&labelSelector=app%%3Dweb"
                                     "&resourceVersion=%s&timeoutSeconds=1&watch=true",
                 mr_json_get_str(r.json, "metadata", "resourceVersion", NULL));
        reply_done(&r);
        WatchCtx w = {.path = path};
        pthread_t t;
        pthread_create(&t, NULL, watch_thread, &w);
        usleep(100000);
        Reply p = SEND("PATCH", "/api/v1/namespaces/shop/pods/web-0", "application/merge-patch+json",
                       "{\"metadata\":{\"labels\":{\"v\":\"2\"}}}");
        reply_done(&p);
        p = SEND("PATCH", "/api/v1/namespaces/shop/pods/web-1", "application/merge-patch+json",
                 "{\"metadata\":{\"labels\":{\"app\":\"gone\"}}}");
        reply_done(&p);
        pthread_join(t, NULL);
        assert_int_equal(w.reply.code, 200);
        assert_non_null(strcasestr(w.reply.headers, "Content-Type: application/json"));
        assert_non_null(strcasestr(w.reply.headers, "Transfer-Encoding: chunked"));
        char *first = strstr(w.reply.body, "{\"type\":\"MODIFIED\"");
        char *second = strstr(w.reply.body, "{\"type\":\"DELETED\"");
        assert_non_null(first);
        assert_non_null(second);
        assert_true(first < second);
        assert_non_null(strstr(w.reply.body, "{\"type\":\"BOOKMARK\""));
        reply_done(&w.reply);

        /* too old → HTTP 200 and one ERROR event */
        sim_store_lock(srv.store);
        sim_store_set_history_limit(srv.store, 1);
        sim_store_unlock(srv.store);
        put_obj(&SIM_CONFIGMAPS, "{\"metadata\":{\"name\":\"a\",\"namespace\":\"shop\"}}");
        put_obj(&SIM_CONFIGMAPS, "{\"metadata\":{\"name\":\"b\",\"namespace\":\"shop\"}}");
        r = GET("/api/v1/namespaces/shop/pods?watch=true&resourceVersion=2");
        assert_int_equal(r.code, 200);
        assert_non_null(strstr(r.body, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\","
                                       "\"metadata\":{},\"status\":\"Failure\",\"message\":\"too old resource version: 2"));
        assert_non_null(strstr(r.body, "\"reason\":\"Expired\",\"code\":410}}\n"));
        reply_done(&r);

        /* initial state for an unset RV, single-object watch by name */
        r = GET("/api/v1/namespaces/shop/pods/web-3?watch=1&timeoutSeconds=1");
        assert_non_null(strstr(r.body, "{\"type\":\"ADDED\""));
        assert_null(strstr(r.body, "web-4"));
        reply_done(&r);
}

static void test_table(void **state)
{
        const char *accept = "Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
                             "g=meta.k8s.io,application/json";
        Reply r = req("GET", "/api/v1/nodes?limit=500", NULL, NULL, 0, accept);
        assert_string_equal(mr_json_get_str(r.json, "kind", NULL), "Table");
        assert_non_null(strstr(r.body, "\"cells\":[\"n1\",\"Ready\",\"worker\","));
        assert_non_null(strstr(r.body, "\"cells\":[\"n2\",\"Unknown\",\"<none>\","));
        assert_non_null(strstr(r.body, "\"kind\":\"PartialObjectMetadata\""));
        reply_done(&r);
        r = req("GET", "/api/v1/namespaces/shop/pods/web-0", NULL, NULL, 0, accept);
        assert_non_null(strstr(r.body, "\"cells\":[\"web-0\",\"0/1\",\"Running\",\"0\","));
        reply_done(&r);
}

static void test_auth_and_faults(void **state)
{
        teardown(state);
        start_server("s3cret");
        Reply r = GET("/api/v1/nodes");
        assert_status(&r, 401, "Unauthorized", "Unauthorized");
        reply_done(&r);
        r = req("GET", "/api/v1/nodes", NULL, NULL, 0, "Authorization: Bearer wrong");
        assert_int_equal(r.code, 401);
        reply_done(&r);
        r = req("GET", "/api/v1/nodes", NULL, NULL, 0, "Authorization: Bearer s3cret");
        assert_int_equal(r.code, 200);
        reply_done(&r);

        sim_store_lock(srv.store);
        srv.faults.error_rate[SIM_VERB_LIST] = 1.0;
        srv.faults.error_code[SIM_VERB_LIST] = 429;
        srv.faults.conflict_rate = 1.0;
        sim_store_unlock(srv.store);
        r = req("GET", "/api/v1/nodes", NULL, NULL, 0, "Authorization: Bearer s3cret");
        assert_status(&r, 429, "TooManyRequests", NULL);
        assert_non_null(strcasestr(r.headers, "Retry-After: 1"));
        reply_done(&r);
        r = req("PATCH", "/api/v1/nodes/n1/status", "application/merge-patch+json", "{}", 2, "Authorization: Bearer s3cret");
        assert_status(&r, 409, "Conflict", NULL);
        reply_done(&r);
}

int main(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_discovery, setup, teardown),
                cmocka_unit_test_setup_teardown(test_get_list_selectors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pagination, setup, teardown),
                cmocka_unit_test_setup_teardown(test_create_update_conflict, setup, teardown),
                cmocka_unit_test_setup_teardown(test_patch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
                cmocka_unit_test_setup_teardown(test_eviction, setup, teardown),
                cmocka_unit_test_setup_teardown(test_watch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_table, setup, teardown),
                cmocka_unit_test_setup_teardown(test_auth_and_faults, setup, teardown),
        };
        int r = cmocka_run_group_tests(tests, NULL, NULL);
        curl_global_cleanup();
        return r;
}
