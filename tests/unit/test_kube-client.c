/* SPDX-License-Identifier: Apache-2.0 */
/*
 * End-to-end tests of the blocking client against the in-test HTTP fixture:
 * methods and content types, Status mapping, the retry policy, the rate
 * limiter (through a fake clock and an injected sleep, so nothing sleeps),
 * pagination, caps, TLS, credentials and broken connections.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "http-fixture.h"
#include "meshroll/kube.h"

typedef struct Sleeps {
        MrFakeClock clock;
        unsigned count;
        usec_t total;
} Sleeps;

static void fake_sleep(usec_t d, void *userdata)
{
        Sleeps *s = userdata;
        s->count++;
        s->total += d;
        s->clock.monotonic += d;
        s->clock.realtime += d;
}

static KubeConfig *config_for(const char *url)
{
        KubeConfig *c = calloc(1, sizeof(KubeConfig));
        assert_non_null(c);
        c->server = strdup(url);
        assert_non_null(c->server);
        return c;
}

/* A client whose waits go to *s; qps < 0 disables rate limiting. */
static KubeClient *client_for(const KubeConfig *cfg, Sleeps *s, double qps, unsigned max_retries)
{
        KubeClient *c = NULL;
        MrError err = {};
        mr_fake_clock_init(&s->clock, 1000 * USEC_PER_SEC, 1700000000 * USEC_PER_SEC);
        KubeClientOptions o = {
                .qps = qps, .burst = 2, .max_retries = max_retries, .clock = &s->clock.clock,
                .sleep = fake_sleep, .sleep_userdata = s, .request_timeout = 10 * USEC_PER_SEC,
        };
        int r = kube_client_new(cfg, &o, &c, &err);
        if (r < 0)
                fprintf(stderr, "kube_client_new: %s: %s\n", mr_strerror(r), err.message);
        assert_int_equal(r, 0);
        return c;
}

/* ---- handlers ------------------------------------------------------------------------------ */

static void echo_handler(HttpFixture *f, const HttpRequest *req, HttpResponse *resp, void *userdata)
{
        if (streq(req->method, "POST"))
                resp->status = 201;
        http_respond_fmt(resp, resp->status ? resp->status : 200,
                         "{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"},\"method\":\"%s\"}", req->method);
}

static void test_get_ok(void **state)
{
        HttpFixture *f;
        Sleeps s = {};
        assert_int_equal(http_fixture_start(echo_handler, NULL, &f), 0);
        _cleanup_(kube_config_freep) KubeConfig *cfg = config_for(http_fixture_url(f));
        _cleanup_(kube_client_freep) KubeClient *c = client_for(cfg, &s, -1, 3);
        _cleanup_(json_object_putp) json_object *o = NULL;
        KubeStatus st;

        assert_string_equal(kube_client_server(c), http_fixture_url(f));
        assert_string_equal(kube_client_namespace(c), "default");
        assert_int_equal(kube_get(c, "/api/v1/nodes/n1", &o, &st), 0);
        assert_int_equal(st.http_code, 200);
        assert_string_equal(mr_json_get_str(o, "metadata", "name", NULL), "n1");

        const HttpRequest *req = http_fixture_request(f, 0);
        assert_non_null(req);
        assert_string_equal(req->method, "GET");
        assert_string_equal(req->path, "/api/v1/nodes/n1");
        assert_string_equal(req->accept, "application/json");
        assert_non_null(startswith(req->user_agent, "meshroll/"));
        assert_string_equal(req->authorization, "");
        http_fixture_free(f);
}

static void test_methods_and_content_types(void **state)
{
        HttpFixture *f;
        Sleeps s = {};
        assert_int_equal(http_fixture_start(echo_handler, NULL, &f), 0);
        _cleanup_(kube_config_freep) KubeConfig *cfg = config_for(http_fixture_url(f));
        _cleanup_(kube_client_freep) KubeClient *c = client_for(cfg, &s, -1, 3);
        _cleanup_(json_object_putp) json_object *body = json_tokener_parse("{\"metadata\":{\"name\":\"x/y\"}}");
        json_object *o = NULL;

        assert_int_equal(kube_create(c, "/api/v1/namespaces/a/configmaps", body, &o, NULL), 0);
        assert_string_equal(mr_json_get_str(o, "method", NULL), "POST");
        json_object_put(o);
        assert_int_equal(kube_replace(c, "/api/v1/namespaces/a/configmaps/x", body, NULL, NULL), 0);
        assert_int_equal(kube_patch(c, "/api/v1/nodes/n1", KUBE_PATCH_MERGE, body, NULL, NULL), 0);
        assert_int_equal(kube_patch(c, "/api/v1/nodes/n1", KUBE_PATCH_STRATEGIC, body, NULL, NULL), 0);
        assert_int_equal(kube_patch(c, "/api/v1/nodes/n1", KUBE_PATCH_JSON, body, NULL, NULL), 0);
        assert_int_equal(kube_delete(c, "/api/v1/nodes/n1", NULL, NULL, NULL), 0);
        assert_int_equal(kube_delete(c, "/api/v1/nodes/n2", body, NULL, NULL), 0);

        static const struct {
                const char *method, *content_type;
                bool body;
        } want[] = {
                { "POST", "application/json", true },
                { "PUT", "application/json", true },
                { "PATCH", "application/merge-patch+json", true },
                { "PATCH", "application/strategic-merge-patch+json", true },
                { "PATCH", "application/json-patch+json", true },
                { "DELETE", "", false },
                { "DELETE", "application/json", true },
        };
        assert_int_equal(http_fixture_count(f), ELEMENTSOF(want));
        for (unsigned i = 0; i < ELEMENTSOF(want); i++) {
                const HttpRequest *req = http_fixture_request(f, i);
                assert_string_equal(req->method, want[i].method);
                assert_string_equal(req->content_type, want[i].content_type);
                if (want[i].body)
                        assert_string_equal(req->body, "{\"metadata\":{\"name\":\"x/y\"}}");
                else
                        assert_int_equal(req->body_size, 0);
        }
        http_fixture_free(f);
}

static void status_handler(HttpFixture *f, const HttpRequest *req, HttpResponse *resp, void *userdata)
{
        if (streq(req->path, "/nf"))
                http_respond(resp, 404, "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"nodes \\\"x\\\" not "
                                        "found\",\"reason\":\"NotFound\",\"code\":404}");
        else if (streq(req->path, "/conflict"))
                http_respond(resp, 409, "{\"kind\":\"Status\",\"reason\":\"Conflict\",\"message\":\"modified\",\"code\":409}");
        else if (streq(req->path, "/exists"))
                http_respond(resp, 409, "{\"kind\":\"Status\",\"reason\":\"AlreadyExists\",\"code\":409}");
        else if (streq(req->path, "/gone"))
                http_respond(resp, 410, "{\"kind\":\"Status\",\"reason\":\"Expired\",\"code\":410}");
        else if (streq(req->path, "/invalid"))
                http_respond(resp, 422, "{\"kind\":\"Status\",\"reason\":\"Invalid\",\"code\":422}");
        else if (streq(req->path, "/forbidden"))
                http_respond(resp, 403, "{\"kind\":\"Status\",\"reason\":\"Forbidden\",\"code\":403}");
        else if (streq(req->path, "/badjson"))
                http_respond(resp, 200, "{\"kind\":");
        else if (streq(req->path, "/empty"))
                http_respond(resp, 200, "");
        else
                http_respond(resp, 500, "oops");
}

static void test_status_mapping(void **state)
{
        HttpFixture *f;
        Sleeps s = {};
        assert_int_equal(http_fixture_start(status_handler, NULL, &f), 0);
        _cleanup_(kube_config_freep) KubeConfig *cfg = config_for(http_fixture_url(f));
        _cleanup_(kube_client_freep) KubeClient *c = client_for(cfg, &s, -1, 3);
        json_object *o = (json_object *)0x1;
        KubeStatus st;

        assert_int_equal(kube_get(c, "/nf", &o, &st), -ENOENT);
        assert_ptr_equal(o, (json_object *)0x1);
        assert_int_equal(st.http_code, 404);
        assert_string_equal(st.reason, "NotFound");
        assert_string_equal(st.message, "nodes \"x\" not found");
        assert_int_equal(kube_replace(c, "/conflict", NULL, NULL, &st), -MR_ECONFLICT);
        assert_int_equal(kube_create(c, "/exists", NULL, NULL, &st), -EEXIST);
        assert_int_equal(kube_get(c, "/gone", NULL, &st), -MR_EGONE);
        assert_int_equal(kube_get(c, "/invalid", NULL, &st), -MR_EINVALID);
        assert_int_equal(kube_get(c, "/forbidden", NULL, &st), -MR_EFORBIDDEN);
        /* none of these 4xx were retried */
        assert_int_equal(http_fixture_count(f), 6);
        assert_int_equal(s.count, 0);

        assert_int_equal(kube_get(c, "/badjson", &o, &st), -EBADMSG);
        o = NULL;
        assert_int_equal(kube_get(c, "/empty", &o, &st), 0);
        assert_null(o);
        http_fixture_free(f);
}

typedef struct Script {
        unsigned served;
        int codes[8];   /* status per request; 0 → 200 */
        const char *retry_after;
        bool drop_first;
} Script;

static void script_handler(HttpFixture *f, const HttpRequest *req, HttpResponse *resp, void *userdata)
{
        Script *sc = userdata;
        unsigned i = sc->served++;
        if (sc->drop_first && i == 0) {
                resp->drop = true;
                return;
        }
        int code = i < ELEMENTSOF(sc->codes) && sc->codes[i] ? sc->codes[i] : 200;
        if (code == 429 && sc->retry_after)
                http_respond_header(resp, "Retry-After", sc->retry_after);
        if (code == 200 || code == 201)
                http_respond(resp, code, "{\"ok\":true}");
        else
                http_respond_fmt(resp, code, "{\"kind\":\"Status\",\"code\":%d}", code);
}

static void test_retry_after_429(void **state)
{
        HttpFixture *f;
        Sleeps s = {};
        Script sc = { .codes = { 429, 0 }, .retry_after = "7" };
        assert_int_equal(http_fixture_start(script_handler, &sc, &f), 0);
        _cleanup_(kube_config_freep) KubeConfig *cfg = config_for(http_fixture_url(f));
        _cleanup_(kube_client_freep) KubeClient *c = client_for(cfg, &s, -1, 3);

        assert_int_equal(kube_get(c, "/x", NULL, NULL), 0);
        assert_int_equal(http_fixture_count(f), 2);
        assert_int_equal(s.count, 1);
        assert_true(s.total >= 7 * USEC_PER_SEC);

        /* POST is retried on 429 too */
        sc = (Script){ .codes = { 429, 201 } };
        assert_int_equal(kube_create(c, "/x", NULL, NULL, NULL), 0);
        assert_int_equal(http_fixture_count(f), 4);
        http_fixture_free(f);
}

static void test_5xx_retried(void **state)
{
        HttpFixture *f;
        Sleeps s = {};
        Script sc = { .codes = { 503, 500, 0 } };
        assert_int_equal(http_fixture_start(script_handler, &sc, &f), 0);
        _cleanup_(kube_config_freep) KubeConfig *cfg = config_for(http_fixture_url(f));
        _cleanup_(kube_client_freep) KubeClient *c = client_for(cfg, &s, -1, 2);
        KubeStatus st;

        assert_int_equal(kube_get(c, "/x", NULL, &st), 0);
        assert_int_equal(http_fixture_count(f), 3);
        assert_int_equal(s.count, 2);

        /* attempts run out: the last error comes back */
        sc = (Script){ .codes = { 503, 503, 503, 503, 503 } };
        assert_int_equal(kube_patch(c, "/x", KUBE_PATCH_MERGE, NULL, NULL, &st), -EIO);
        assert_int_equal(st.http_code, 503);
        assert_int_equal(http_fixture_count(f), 6);

        /* no_retry */
        sc = (Script){ .codes = { 503, 0 } };
        assert_int_equal(kube_request(c, &(KubeRequest){ .method = "GET", .path = "/x", .no_retry = true }, NULL, &st),
                         -EIO);
        assert_int_equal(http_fixture_count(f), 7);
        http_fixture_free(f);
}

static void test_post_not_retried_on_5xx(void **state)
{
        HttpFixture *f;
        Sleeps s = {};
        Script sc = { .codes = { 500, 201 } };
        assert_int_equal(http_fixture_start(script_handler, &sc, &f), 0);
        _cleanup_(kube_config_freep) KubeConfig *cfg = config_for(http_fixture_url(f));
        _cleanup_(kube_client_freep) KubeClient *c = client_for(cfg, &s, -1, 5);

        assert_int_equal(kube_create(c, "/x", NULL, NULL, NULL), -EIO);
        assert_int_equal(http_fixture_count(f), 1);
        assert_int_equal(s.count, 0);
        http_fixture_free(f);
}

static void test_rate_limit(void **state)
{
        HttpFixture *f;
        Sleeps s = {};
        assert_int_equal(http_fixture_start(echo_handler, NULL, &f), 0);
        _cleanup_(kube_config_freep) KubeConfig *cfg = config_for(http_fixture_url(f));
        _cleanup_(kube_client_freep) KubeClient *c = client_for(cfg, &s, 2.0, 3); /* 2 qps, burst 2 */

        for (int i = 0; i < 6; i++)
                assert_int_equal(kube_get(c, "/x", NULL, NULL), 0);
        /* the burst of 2 goes at once, the other 4 wait half a second each (on the fake clock) */
        assert_int_equal(s.count, 4);
        assert_true(s.total >= 1900 * USEC_PER_MSEC && s.total <= 2100 * USEC_PER_MSEC);
        http_fixture_free(f);
}

static void page_handler(HttpFixture *f, const HttpRequest *req, HttpResponse *resp, void *userdata)
{
        unsigned *expire_once = userdata;
        const char *cont = http_request_arg(req, "continue");
        const char *page = !cont ? "1" : cont;

        if (cont && streq(cont, "2") && *expire_once) {
                (*expire_once)--;
                http_respond(resp, 410, "{\"kind\":\"Status\",\"reason\":\"Expired\",\"code\":410}");
                return;
        }
        if (streq(page, "1"))
                http_respond(resp, 200, "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"77\",\"continue\":\"2\"},"
                                        "\"items\":[{\"metadata\":{\"name\":\"a\"}},{\"metadata\":{\"name\":\"b\"}}]}");
        else if (streq(page, "2"))
                http_respond(resp, 200, "{\"metadata\":{\"resourceVersion\":\"77\",\"continue\":\"3\"},"
                                        "\"items\":[{\"metadata\":{\"name\":\"c\"}}]}");
        else
                http_respond(resp, 200, "{\"metadata\":{\"resourceVersion\":\"77\"},\"items\":[{\"metadata\":{\"name\":\"d\"}}]}");
}

/* metadata.name, marked as having been through here. */
static json_object *project_name(json_object *item)
{
        static const char *const paths[] = { "metadata.name", NULL };
        json_object *o = mr_json_project(item, paths);
        if (o && mr_json_set_bool(o, "projected", true) < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static void test_list_pagination(void **state)
{
        HttpFixture *f;
        Sleeps s = {};
        unsigned expire_once = 0;
        assert_int_equal(http_fixture_start(page_handler, &expire_once, &f), 0);
        _cleanup_(kube_config_freep) KubeConfig *cfg = config_for(http_fixture_url(f));
        _cleanup_(kube_client_freep) KubeClient *c = client_for(cfg, &s, -1, 3);
        json_object *items = NULL;
        char *rv = NULL;

        KubeListOptions lo = { .label_selector = "app=web", .field_selector = "spec.nodeName=n1", .limit = 2,
                               .resource_version = "0" };
        assert_int_equal(kube_list(c, &KUBE_PODS, "shop", &lo, &items, &rv, NULL), 0);
        assert_int_equal(json_object_array_length(items), 4);
        assert_string_equal(mr_json_get_str(json_object_array_get_idx(items, 3), "metadata", "name", NULL), "d");
        assert_string_equal(rv, "77");
        json_object_put(items);
        free(rv);

        assert_int_equal(http_fixture_count(f), 3);
        const HttpRequest *r0 = http_fixture_request(f, 0), *r1 = http_fixture_request(f, 1);
        assert_string_equal(r0->path, "/api/v1/namespaces/shop/pods");
        assert_string_equal(http_request_arg(r0, "labelSelector"), "app=web");
        assert_string_equal(http_request_arg(r0, "fieldSelector"), "spec.nodeName=n1");
        assert_string_equal(http_request_arg(r0, "limit"), "2");
        assert_string_equal(http_request_arg(r0, "resourceVersion"), "0");
        assert_null(http_request_arg(r0, "continue"));
        assert_string_equal(http_request_arg(r1, "continue"), "2");
        assert_null(http_request_arg(r1, "resourceVersion"));

        /* an expired continue token restarts the list once; project applies to every item of every page */
        expire_once = 1;
        KubeListOptions projected = { .project = project_name };
        assert_int_equal(kube_list(c, &KUBE_PODS, NULL, &projected, &items, NULL, NULL), 0);
        assert_int_equal(json_object_array_length(items), 4);
        for (size_t i = 0; i < 4; i++) {
                json_object *it = json_object_array_get_idx(items, i);
                assert_non_null(mr_json_get_str(it, "metadata", "name", NULL));
                assert_true(mr_json_get_bool(false, it, "projected", NULL));
        }
        json_object_put(items);
        assert_int_equal(http_fixture_count(f), 3 + 5);
        assert_string_equal(http_fixture_request(f, 3)->path, "/api/v1/pods");
        assert_string_equal(http_request_arg(http_fixture_request(f, 3), "limit"), "500");

        /* ... but only once */
        expire_once = 2;
        KubeStatus st;
        assert_int_equal(kube_list(c, &KUBE_PODS, NULL, NULL, &items, NULL, &st), -MR_EGONE);
        http_fixture_free(f);
}

static void big_handler(HttpFixture *f, const HttpRequest *req, HttpResponse *resp, void *userdata)
{
        char *b = malloc(8192 + 32);
        assert_non_null(b);
        size_t n = (size_t)snprintf(b, 32, "{\"x\":\"");
        memset(b + n, 'a', 8192);
        memcpy(b + n + 8192, "\"}", 3);
        http_respond(resp, 200, b);
        free(b);
}

static void test_size_cap(void **state)
{
        HttpFixture *f;
        Sleeps s = {};
        KubeClient *c = NULL;
        KubeStatus st;
        assert_int_equal(http_fixture_start(big_handler, NULL, &f), 0);
        _cleanup_(kube_config_freep) KubeConfig *cfg = config_for(http_fixture_url(f));
        mr_fake_clock_init(&s.clock, 0, 0);
        KubeClientOptions o = { .qps = -1, .max_response_size = 4096, .sleep = fake_sleep, .sleep_userdata = &s };
        assert_int_equal(kube_client_new(cfg, &o, &c, NULL), 0);
        assert_int_equal(kube_get(c, "/x", NULL, &st), -MR_ETOOBIG);
        assert_int_equal(http_fixture_count(f), 1);
        kube_client_free(c);

        o.max_response_size = 16384;
        assert_int_equal(kube_client_new(cfg, &o, &c, NULL), 0);
        assert_int_equal(kube_get(c, "/x", NULL, &st), 0);
        kube_client_free(c);
        http_fixture_free(f);
}

static void test_dropped_connection(void **state)
{
        HttpFixture *f;
        Sleeps s = {};
        Script sc = { .drop_first = true };
        assert_int_equal(http_fixture_start(script_handler, &sc, &f), 0);
        _cleanup_(kube_config_freep) KubeConfig *cfg = config_for(http_fixture_url(f));
        _cleanup_(kube_client_freep) KubeClient *c = client_for(cfg, &s, -1, 3);
        KubeStatus st;

        /* GET: the server dropped the first attempt; the retry gets through */
        assert_int_equal(kube_get(c, "/x", NULL, &st), 0);
        assert_int_equal(http_fixture_count(f), 2);

        /*
         * POST: the server may have acted; not retried. A fresh client, because libcurl itself
         * resends once when a *reused* keep-alive connection turns out dead before any answer.
         */
        sc = (Script){ .drop_first = true };
        _cleanup_(kube_client_freep) KubeClient *c2 = client_for(cfg, &s, -1, 3);
        assert_int_equal(kube_create(c2, "/x", NULL, NULL, &st), -MR_ETRANSPORT);
        assert_int_equal(st.http_code, 0);
        assert_true(strlen(st.message) > 0);
        assert_int_equal(http_fixture_count(f), 3);
        http_fixture_free(f);
}

static void test_connection_refused(void **state)
{
        HttpFixture *f;
        Sleeps s = {};
        char url[64];
        assert_int_equal(http_fixture_start(echo_handler, NULL, &f), 0);
        snprintf(url, sizeof(url), "%s", http_fixture_url(f));
        http_fixture_free(f); /* nobody listens there any more */

        _cleanup_(kube_config_freep) KubeConfig *cfg = config_for(url);
        _cleanup_(kube_client_freep) KubeClient *c = client_for(cfg, &s, -1, 2);
        KubeStatus st;
        assert_int_equal(kube_create(c, "/x", NULL, NULL, &st), -ECONNREFUSED);
        assert_int_equal(s.count, 2); /* refused: safe to retry even a POST */
}

static void test_bad_config(void **state)
{
        KubeClient *c = NULL;
        MrError err = {};
        _cleanup_(kube_config_freep) KubeConfig *cfg = config_for("ftp://127.0.0.1:1");
        assert_int_equal(kube_client_new(cfg, NULL, &c, &err), -MR_ECONFIG);
        assert_non_null(strstr(err.message, "ftp://"));
        assert_null(c);

        _cleanup_(kube_config_freep) KubeConfig *cfg2 = config_for("https://127.0.0.1:1");
        cfg2->ca_file = strdup("/nonexistent/ca.pem");
        assert_int_equal(kube_client_new(cfg2, NULL, &c, &err), -MR_ECONFIG);
        assert_non_null(strstr(err.message, "/nonexistent/ca.pem"));
}

/* ---- TLS ------------------------------------------------------------------------------------- */

static int tls_get(const char *url, const char *ca_file, bool insecure, const char *server_name, bool client_cert)
{
        Sleeps s = {};
        _cleanup_(kube_config_freep) KubeConfig *cfg = config_for(url);
        if (ca_file)
                cfg->ca_file = strdup(http_fixture_cert_path(ca_file));
        cfg->insecure_skip_tls_verify = insecure;
        if (server_name)
                cfg->tls_server_name = strdup(server_name);
        if (client_cert) {
                cfg->client_cert_data = http_fixture_read_file(http_fixture_cert_path("client.pem"),
                                                               &cfg->client_cert_data_size);
                cfg->client_key_data = http_fixture_read_file(http_fixture_cert_path("client-key.pem"),
                                                              &cfg->client_key_data_size);
        }
        _cleanup_(kube_client_freep) KubeClient *c = client_for(cfg, &s, -1, 1);
        return kube_get(c, "/version", NULL, NULL);
}

static void test_tls(void **state)
{
        HttpFixture *f;
        assert_int_equal(http_fixture_start_tls(echo_handler, NULL, false, &f), 0);
        const char *url = http_fixture_url(f);

        assert_int_equal(tls_get(url, "ca.pem", false, NULL, false), 0);
        assert_int_equal(tls_get(url, "other-ca.pem", false, NULL, false), -MR_ETLS);
        assert_int_equal(tls_get(url, NULL, false, NULL, false), -MR_ETLS); /* the system CAs do not know ours */
        assert_int_equal(tls_get(url, NULL, true, NULL, false), 0);
        assert_int_equal(tls_get(url, "ca.pem", false, "kube.test", false), 0);
        assert_int_equal(tls_get(url, "ca.pem", false, "wrong.test", false), -MR_ETLS);
        /* TLS failures are not retried and never reached the handler */
        assert_int_equal(http_fixture_count(f), 3);
        http_fixture_free(f);
}

static void test_tls_client_cert(void **state)
{
        HttpFixture *f;
        assert_int_equal(http_fixture_start_tls(echo_handler, NULL, true, &f), 0);
        assert_int_equal(tls_get(http_fixture_url(f), "ca.pem", false, NULL, true), 0);
        assert_int_equal(http_fixture_count(f), 1);
        http_fixture_free(f);
}

/* ---- credentials ----------------------------------------------------------------------------- */

typedef struct TokenServer {
        const char *token_file;
        const char *valid;       /* the token the server accepts */
        const char *rotate_to;   /* on a 401, the server "rotates": writes this and accepts it */
} TokenServer;

static void write_file(const char *path, const char *s)
{
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
        close(fd);
        assert_int_equal(rename(tmp, path), 0); /* the kubelet's atomic swap */
}

static void token_handler(HttpFixture *f, const HttpRequest *req, HttpResponse *resp, void *userdata)
{
        TokenServer *ts = userdata;
        char want[256];
        snprintf(want, sizeof(want), "Bearer %s", ts->valid);
        if (streq(req->authorization, want)) {
                http_respond(resp, 200, "{}");
                return;
        }
        if (ts->rotate_to) {
                write_file(ts->token_file, ts->rotate_to);
                ts->valid = ts->rotate_to;
                ts->rotate_to = NULL;
        }
        http_respond(resp, 401, "{\"kind\":\"Status\",\"reason\":\"Unauthorized\",\"message\":\"Unauthorized\",\"code\":401}");
}

static void test_token_file_rotation(void **state)
{
        HttpFixture *f;
        Sleeps s = {};
        char dir[] = "/tmp/meshroll-test-token-XXXXXX", path[128];
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/token", dir);
        write_file(path, "token-one");

        TokenServer ts = { .token_file = path, .valid = "token-one" };
        assert_int_equal(http_fixture_start(token_handler, &ts, &f), 0);
        _cleanup_(kube_config_freep) KubeConfig *cfg = config_for(http_fixture_url(f));
        cfg->token_file = strdup(path);
        _cleanup_(kube_client_freep) KubeClient *c = client_for(cfg, &s, -1, 3);

        assert_int_equal(kube_get(c, "/x", NULL, NULL), 0);
        assert_string_equal(http_fixture_request(f, 0)->authorization, "Bearer token-one");

        /* the kubelet rotates the file: the next request carries the new token */
        write_file(path, "token-number-two");
        http_fixture_lock(f);
        ts.valid = "token-number-two";
        http_fixture_unlock(f);
        assert_int_equal(kube_get(c, "/x", NULL, NULL), 0);
        assert_string_equal(http_fixture_request(f, 1)->authorization, "Bearer token-number-two");

        /* rotated behind our back: 401, re-read, one more try */
        http_fixture_lock(f);
        ts.rotate_to = "token-three-is-longer";
        ts.valid = "nobody-has-this";
        http_fixture_unlock(f);
        assert_int_equal(kube_get(c, "/x", NULL, NULL), 0);
        assert_int_equal(http_fixture_count(f), 4);
        assert_string_equal(http_fixture_request(f, 3)->authorization, "Bearer token-three-is-longer");

        /* a 401 that persists is returned after that one extra try */
        http_fixture_lock(f);
        ts.valid = "nobody-has-this";
        http_fixture_unlock(f);
        KubeStatus st;
        assert_int_equal(kube_get(c, "/x", NULL, &st), -MR_EUNAUTHORIZED);
        assert_int_equal(http_fixture_count(f), 6);
        assert_string_equal(st.reason, "Unauthorized");

        http_fixture_free(f);
        unlink(path);
        rmdir(dir);
}

static void test_static_token(void **state)
{
        HttpFixture *f;
        Sleeps s = {};
        TokenServer ts = { .valid = "s3cret" };
        assert_int_equal(http_fixture_start(token_handler, &ts, &f), 0);
        _cleanup_(kube_config_freep) KubeConfig *cfg = config_for(http_fixture_url(f));
        cfg->token = strdup("s3cret");
        _cleanup_(kube_client_freep) KubeClient *c = client_for(cfg, &s, -1, 3);
        assert_int_equal(kube_get(c, "/x", NULL, NULL), 0);
        assert_string_equal(http_fixture_request(f, 0)->authorization, "Bearer s3cret");
        http_fixture_free(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_get_ok),
                cmocka_unit_test(test_methods_and_content_types),
                cmocka_unit_test(test_status_mapping),
                cmocka_unit_test(test_retry_after_429),
                cmocka_unit_test(test_5xx_retried),
                cmocka_unit_test(test_post_not_retried_on_5xx),
                cmocka_unit_test(test_rate_limit),
                cmocka_unit_test(test_list_pagination),
                cmocka_unit_test(test_size_cap),
                cmocka_unit_test(test_dropped_connection),
                cmocka_unit_test(test_connection_refused),
                cmocka_unit_test(test_bad_config),
                cmocka_unit_test(test_tls),
                cmocka_unit_test(test_tls_client_cert),
                cmocka_unit_test(test_token_file_rotation),
                cmocka_unit_test(test_static_token),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
