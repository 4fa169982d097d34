/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon HTTP server on a real sd-event loop: a client thread makes
 * requests with libcurl while the main thread runs the loop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/eventfd.h>

#include "meshroll/http-server.h"
#include "meshroll/macro.h"

typedef struct Probe {
        const char *method, *path;
        long code;
        char body[256];
        size_t size;
        char content_type[128];
} Probe;

typedef struct Client {
        uint16_t port;
        Probe *probes;
        size_t n;
        int done_fd;
} Client;

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
        Probe *p = userdata;
        size_t n = size * nmemb, room = sizeof(p->body) - 1 - p->size;
        memcpy(p->body + p->size, data, MIN(n, room));
        p->size += MIN(n, room);
        p->body[p->size] = 0;
        return n;
}

static void *client_thread(void *arg)
{
        Client *c = arg;
        for (size_t i = 0; i < c->n; i++) {
                Probe *p = &c->probes[i];
                char url[128];
                char *ct = NULL;
                CURL *h = curl_easy_init();
                snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", c->port, p->path);
                curl_easy_setopt(h, CURLOPT_URL, url);
                curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, p->method);
                if (streq(p->method, "HEAD"))
                        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
                curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
                curl_easy_setopt(h, CURLOPT_WRITEDATA, p);
                curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
                if (curl_easy_perform(h) == CURLE_OK) {
                        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &p->code);
                        curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
                        snprintf(p->content_type, sizeof(p->content_type), "%s", strempty(ct));
                }
                curl_easy_cleanup(h);
        }
        uint64_t one = 1;
        (void)!write(c->done_fd, &one, sizeof(one));
        return NULL;
}

static int on_done(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int metrics_handler(const char *path, MrHttpReply *reply, void *userdata)
{
        int *calls = userdata;
        (*calls)++;
        reply->content_type = "text/plain; version=0.0.4";
        if (asprintf(&reply->body, "up %d\n", *calls) < 0)
                return -ENOMEM;
        reply->size = strlen(reply->body);
        return 0;
}

static int failing_handler(const char *path, MrHttpReply *reply, void *userdata)
{
        reply->body = strdup("partial");
        return -EIO;
}

static int health_handler(const char *path, MrHttpReply *reply, void *userdata)
{
        reply->status = 503;
        return 0;
}

static void test_routes_and_errors(void **state)
{
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(mr_http_server_freep) MrHttpServer *s = NULL;
        MrError err = {};
        int calls = 0;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(mr_http_server_new(e, "127.0.0.1:0", &s, &err), 0);
        assert_true(mr_http_server_port(s) > 0);
        assert_int_equal(mr_http_server_route(s, "/metrics", metrics_handler, &calls), 0);
        assert_int_equal(mr_http_server_route(s, "/metrics", metrics_handler, &calls), -EEXIST);
        assert_int_equal(mr_http_server_route(s, "/fail", failing_handler, NULL), 0);
        assert_int_equal(mr_http_server_route(s, "/healthz", health_handler, NULL), 0);

        Probe probes[] = {
                { "GET", "/metrics" }, { "GET", "/metrics" }, { "HEAD", "/metrics" }, { "POST", "/metrics" },
                { "GET", "/nope" },    { "GET", "/fail" },    { "GET", "/healthz" },
        };
        Client c = { mr_http_server_port(s), probes, ELEMENTSOF(probes), eventfd(0, EFD_CLOEXEC) };
        sd_event_source *done = NULL;
        assert_int_equal(sd_event_add_io(e, &done, c.done_fd, EPOLLIN, on_done, NULL), 0);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, client_thread, &c), 0);
        assert_int_equal(sd_event_loop(e), 0);
        pthread_join(t, NULL);
        sd_event_source_unref(done);
        close(c.done_fd);

        assert_int_equal(probes[0].code, 200);
        assert_string_equal(probes[0].body, "up 1\n");
        assert_string_equal(probes[0].content_type, "text/plain; version=0.0.4");
        assert_string_equal(probes[1].body, "up 2\n");
        assert_int_equal(probes[2].code, 200);
        assert_int_equal(probes[2].size, 0);
        assert_int_equal(probes[3].code, 405);
        assert_int_equal(probes[4].code, 404);
        assert_int_equal(probes[5].code, 500);
        assert_int_equal(probes[6].code, 503);
}

static void test_bad_addresses(void **state)
{
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        MrHttpServer *s = NULL;
        MrError err = {};
        struct sockaddr_storage ss;
        socklen_t len;

        const char *bad[] = { "", "9090", "127.0.0.1", "127.0.0.1:99999", "127.0.0.1:x", "[::1]9090", "::1:9090",
                              "host.example:80", "[::1:80" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(mr_parse_listen_address(bad[i], &ss, &len), -EINVAL);
        assert_int_equal(mr_parse_listen_address("[::1]:9090", &ss, &len), 0);
        assert_int_equal(ss.ss_family, AF_INET6);
        assert_int_equal(mr_parse_listen_address(":9090", &ss, &len), 0);
        assert_int_equal(ss.ss_family, AF_INET6);
        assert_int_equal(mr_parse_listen_address("0.0.0.0:0", &ss, &len), 0);
        assert_int_equal(ss.ss_family, AF_INET);

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(mr_http_server_new(e, "nonsense", &s, &err), -MR_ECONFIG);
        assert_non_null(strstr(err.message, "nonsense"));
        assert_null(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_routes_and_errors),
                cmocka_unit_test(test_bad_addresses),
        };
        curl_global_init(CURL_GLOBAL_DEFAULT);
        int r = cmocka_run_group_tests(tests, NULL, NULL);
        curl_global_cleanup();
        return r;
}
