/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Istio half of the simulator's data plane (sim/dataplane-mesh.c):
 * smooth weighted round-robin gives exact shares; then, on real loopback
 * sockets, a VirtualService's weights decide which version's pods get the
 * connections, a version annotated to fail answers 503 for its share, and
 * each node's /metrics shows istio_requests_total and the duration
 * histogram by destination workload, version and response code.
 *
 * Addresses: 127.<net>.x.y, a net the data plane reserves (as test_sim-dataplane.c).
 * Waits are bounded by a deadline and poll every 10 ms.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dataplane-mesh.h"
#include "loadgen.h"
#include "meshroll/json-util.h"
#include "sim.h"
#include "slowdown.h"

#define WAIT_US (20 * USEC_PER_SEC)

static void test_weighted_pick(void **state)
{
        DpRouting r = {.n = 3};
        unsigned got[3] = {0};

        snprintf(r.subsets[0].name, sizeof(r.subsets[0].name), "v1");
        snprintf(r.subsets[1].name, sizeof(r.subsets[1].name), "v2");
        snprintf(r.subsets[2].name, sizeof(r.subsets[2].name), "v3");
        r.subsets[0].weight = 75;
        r.subsets[1].weight = 25;
        r.subsets[2].weight = 0;
        for (unsigned i = 0; i < 100; i++)
                got[dp_routing_pick(&r)]++;
        assert_int_equal(got[0], 75);
        assert_int_equal(got[1], 25);
        assert_int_equal(got[2], 0);
        /* spread, not bunched: 5 % gets 1 of every 20 */
        r.subsets[0].weight = 95;
        r.subsets[1].weight = 5;
        for (unsigned w = 0; w < 5; w++) {
                unsigned v2 = 0;
                for (unsigned i = 0; i < 20; i++)
                        v2 += dp_routing_pick(&r) == 1;
                assert_int_equal(v2, 1);
        }
        r.subsets[0].weight = r.subsets[1].weight = 0;
        assert_int_equal(dp_routing_pick(&r), -1);
}

static void test_pod_names(void **state)
{
        char w[64], v[32];
        json_object *pod = NULL;
        const char *text =
            "{\"metadata\":{\"name\":\"reviews-v2-5d8f7c-abcde\",\"labels\":{\"version\":\"v2\"},"
            "\"ownerReferences\":[{\"kind\":\"ReplicaSet\",\"name\":\"reviews-v2-5d8f7c\",\"controller\":"
            "true}]}}";
        assert_int_equal(mr_json_parse(text, strlen(text), 1 << 16, &pod), 0);
        dp_pod_workload(pod, w, sizeof(w));
        assert_string_equal(w, "reviews-v2");
        dp_pod_version(mr_json_get(pod, "metadata", "labels", NULL), v, sizeof(v));
        assert_string_equal(v, "v2");
        dp_pod_version(NULL, v, sizeof(v));
        assert_string_equal(v, "latest");
        json_object_put(pod);
}

/* ---- on real sockets ---------------------------------------------------------------------------- */

static const char scenario[] =
    "name: mesh\n"
    "nodes: [{name: \"node-{i}\", count: 2}]\n"
    "namespaces: [{name: shop, labels: {istio.io/dataplane-mode: ambient}}]\n"
    "istio:\n"
    "  revisions: [{name: 1-24-0, version: 1.24.0, replicas: 1}]\n"
    "  tags: {default: 1-24-0}\n"
    "  ztunnel: {revision: 1-24-0, startupSeconds: 1}\n"
    "workloads:\n"
    "  - {name: reviews-v1, namespace: shop, replicas: 2, labels: {app: reviews, version: v1}, "
    "startupSeconds: 1,\n"
    "     service: {name: reviews, selector: {app: reviews}, port: 9080, targetPort: 9080}}\n"
    "  - {name: reviews-v2, namespace: shop, replicas: 2, labels: {app: reviews, version: v2}, "
    "startupSeconds: 1,\n"
    "     podAnnotations: {sim.meshroll.io/error-rate: \"0.25\"}}\n"
    "  - {name: frontend, namespace: shop, replicas: 2, startupSeconds: 1}\n"
    "objects:\n"
    "  - apiVersion: networking.istio.io/v1\n"
    "    kind: DestinationRule\n"
    "    metadata: {name: reviews, namespace: shop}\n"
    "    spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: "
    "v2}}]}\n"
    "  - apiVersion: networking.istio.io/v1\n"
    "    kind: VirtualService\n"
    "    metadata: {name: reviews, namespace: shop}\n"
    "    spec:\n"
    "      hosts: [reviews]\n"
    "      http: [{route: [{destination: {host: reviews, subset: v1}, weight: 100},\n"
    "                      {destination: {host: reviews.shop.svc.cluster.local, subset: v2}, weight: "
    "0}]}]\n";

static void pause_ms(unsigned ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

/* GET /metrics from addr:15020 (whole answer, owned). */
static char *scrape(const char *addr, uint16_t port)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
        const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n";
        size_t cap = 1 << 20, len = 0;
        char *buf = malloc(cap + 1);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_non_null(buf);
        assert_true(fd >= 0);
        assert_int_equal(inet_pton(AF_INET, addr, &sa.sin_addr), 1);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)(sizeof(req) - 1));
        for (;;) {
                ssize_t n = recv(fd, buf + len, cap - len, 0);
                assert_true(n >= 0);
                if (n == 0 || len + (size_t)n >= cap)
                        break;
                len += (size_t)n;
        }
        buf[len] = 0;
        close(fd);
        return buf;
}

/* The sum over both nodes of the istio_requests_total samples whose line contains every needle. */
static double requests(const char *addrs[2], const char *needle1, const char *needle2)
{
        double total = 0;
        for (int i = 0; i < 2; i++) {
                _cleanup_free_ char *text = scrape(addrs[i], 15020);
                for (char *line = text; line && *line;) {
                        char *nl = strchr(line, '\n');
                        if (nl)
                                *nl = 0;
                        if (startswith(line, "istio_requests_total{") && strstr(line, needle1) &&
                            (!needle2 || strstr(line, needle2))) {
                                const char *sp = strrchr(line, ' ');
                                total += sp ? strtod(sp + 1, NULL) : 0;
                        }
                        line = nl ? nl + 1 : NULL;
                }
        }
        return total;
}

static void set_weights(Sim *sim, unsigned v1, unsigned v2)
{
        SimStore *st = sim_get_store(sim);
        char text[512];
        json_object *vs = NULL;
        snprintf(
            text, sizeof(text),
            "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\",\"metadata\":{\"name\":"
            "\"reviews\",\"namespace\":\"shop\"},\"spec\":{\"hosts\":[\"reviews\"],\"http\":[{\"route\":["
            "{\"destination\":{\"host\":\"reviews\",\"subset\":\"v1\"},\"weight\":%u},"
            "{\"destination\":{\"host\":\"reviews\",\"subset\":\"v2\"},\"weight\":%u}]}]}}",
            v1, v2);
        assert_int_equal(mr_json_parse(text, strlen(text), 1 << 16, &vs), 0);
        sim_store_lock(st);
        json_object *cur = sim_store_get(st, &SIM_VIRTUALSERVICES, "shop", "reviews");
        assert_non_null(cur);
        json_object_object_add(mr_json_ensure_object(vs, "metadata", NULL), "resourceVersion",
                               json_object_get(mr_json_get(cur, "metadata", "resourceVersion", NULL)));
        int r = sim_store_update(st, &SIM_VIRTUALSERVICES, vs, 0, "test", NULL, NULL);
        sim_store_unlock(st);
        assert_true(r >= 0);
}

static void test_weights_errors_metrics(void **state)
{
        SimDataplaneOptions dpo = {}; /* net 0: a free one, reserved */
        SimOptions so = {.scenario_data = scenario,
                         .scenario_size = strlen(scenario),
                         .speed = 10 / test_slowdown(),
                         .dataplane = true,
                         .dataplane_options = &dpo};
        SimLoadgenOptions lo = {.client_namespace = "shop",
                                .client_selector = "app=frontend",
                                .service = "shop/reviews",
                                .connections_per_pod = 4,
                                .rate = 50,
                                .requests_per_connection = 4};
        SimLoadgen *lg = NULL;
        SimLoadgenCounters c;
        Sim *sim = NULL;
        MrError err = {};
        char a0[32], a1[32];
        const char *addrs[2] = {a0, a1};

        if (sim_start(&so, &sim, &err) < 0)
                fail_msg("sim_start: %s", err.message);
        SimDataplaneNode n;
        assert_int_equal(sim_dataplane_get_node(sim_get_dataplane(sim), "node-1", &n), 0);
        snprintf(a0, sizeof(a0), "%s", n.address);
        assert_int_equal(sim_dataplane_get_node(sim_get_dataplane(sim), "node-2", &n), 0);
        snprintf(a1, sizeof(a1), "%s", n.address);
        if (sim_loadgen_start(sim_get_dataplane(sim), &lo, &lg, &err) < 0)
                fail_msg("loadgen: %s", err.message);

        /* 100 % on v1: no request reaches v2, none fails */
        usec_t deadline = sim_dataplane_now() + WAIT_US;
        do {
                pause_ms(10);
                sim_loadgen_get_counters(lg, &c);
        } while (c.requests_ok < 300 && sim_dataplane_now() < deadline);
        assert_true(c.requests_ok >= 300);
        assert_int_equal(c.requests_error, 0);
        assert_true(requests(addrs, "destination_workload=\"reviews-v1\"", "reporter=\"source\"") >= 300);
        assert_true(requests(addrs, "destination_workload=\"reviews-v1\"", "source_workload=\"frontend\"") >=
                    300);
        assert_int_equal(requests(addrs, "destination_workload=\"reviews-v2\"", NULL), 0);

        /* half to v2, which fails a quarter of its requests */
        set_weights(sim, 50, 50);
        deadline = sim_dataplane_now() + WAIT_US;
        do {
                pause_ms(10);
        } while (requests(addrs, "destination_workload=\"reviews-v2\"", "response_code=\"503\"") < 20 &&
                 sim_dataplane_now() < deadline);
        double v2_ok = requests(addrs, "destination_version=\"v2\"", "response_code=\"200\"");
        double v2_503 = requests(addrs, "destination_version=\"v2\"", "response_code=\"503\"");
        assert_true(v2_503 >= 20);
        assert_int_equal(requests(addrs, "destination_version=\"v1\"", "response_code=\"503\""), 0);
        /* one in four of v2's answers (both reporters count each request: the ratio holds) */
        double ratio = v2_503 / (v2_ok + v2_503);
        if (ratio < 0.2 || ratio > 0.3)
                fail_msg("v2 answered 503 to %.3f of its requests, expected 0.25", ratio);
        sim_loadgen_get_counters(lg, &c);
        assert_true(c.requests_error > 0);
        assert_true(c.requests_failed >= c.requests_error);

        /* the histogram is there with Istio's buckets */
        _cleanup_free_ char *text = scrape(a0, 15020);
        assert_non_null(strstr(text, "HTTP/1.1 200 OK\r\n"));
        assert_non_null(strstr(text, "# TYPE istio_request_duration_milliseconds histogram"));
        assert_non_null(strstr(text, "le=\"3600000\""));
        assert_non_null(strstr(text, "istio_request_duration_milliseconds_count{"));

        /* back to v1 alone: v2 gets no new connection (counts stop growing once its connections recycle) */
        set_weights(sim, 100, 0);
        pause_ms(500);
        double before = requests(addrs, "destination_version=\"v2\"", NULL);
        pause_ms(500);
        assert_true(requests(addrs, "destination_version=\"v2\"", NULL) == before);

        sim_loadgen_stop(lg);
        sim_stop(sim);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_weighted_pick),
            cmocka_unit_test(test_pod_names),
            cmocka_unit_test(test_weights_errors_metrics),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
