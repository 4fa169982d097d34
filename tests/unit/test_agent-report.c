/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "meshroll/json-util.h"
#include "pods.h"
#include "report.h"

#define T0 ((usec_t)1795489863 * USEC_PER_SEC)

static json_object *pod_json(const char *uid, const char *ns, const char *name, bool host)
{
        char buf[512];
        json_object *o = NULL;
        snprintf(buf, sizeof(buf),
                 "{\"metadata\":{\"uid\":\"%s\",\"namespace\":\"%s\",\"name\":\"%s\"},\"spec\":{\"hostNetwork\":%s}}",
                 uid, ns, name, host ? "true" : "false");
        assert_int_equal(mr_json_parse(buf, strlen(buf), 1 << 16, &o), 0);
        return o;
}

static void test_pod_cache(void **state)
{
        PodCache c;
        pod_cache_init(&c);
        const char *uids[] = { "c0000000-0000-4000-8000-000000000000", "a0000000-0000-4000-8000-000000000000",
                               "b0000000-0000-4000-8000-000000000000" };
        for (size_t i = 0; i < 3; i++) {
                _cleanup_(json_object_putp) json_object *p = pod_json(uids[i], "shop", uids[i], i == 2);
                assert_int_equal(pod_cache_upsert(&c, p), 0);
        }
        assert_int_equal(c.n, 3);
        assert_string_equal(c.pods[0].uid, uids[1]); /* kept sorted */
        assert_true(pod_cache_find(&c, uids[2])->host_network);
        _cleanup_(json_object_putp) json_object *renamed = pod_json(uids[2], "shop", "renamed", false);
        assert_int_equal(pod_cache_upsert(&c, renamed), 0);
        assert_int_equal(c.n, 3);
        assert_string_equal(pod_cache_find(&c, uids[2])->name, "renamed");
        assert_false(pod_cache_find(&c, uids[2])->host_network);
        pod_cache_remove(&c, renamed);
        assert_null(pod_cache_find(&c, uids[2]));
        assert_int_equal(c.n, 2);
        _cleanup_(json_object_putp) json_object *bad = json_object_new_object();
        assert_int_equal(pod_cache_upsert(&c, bad), -EINVAL);
        pod_cache_clear(&c);
}

static ScanResult *make_scan(size_t n_pods)
{
        ScanResult *r = calloc(1, sizeof(*r));
        r->pods = calloc(n_pods, sizeof(ScanPod));
        r->n_pods = n_pods;
        for (size_t i = 0; i < n_pods; i++) {
                snprintf(r->pods[i].uid, sizeof(r->pods[i].uid), "%08zx-0000-4000-8000-000000000000", i);
                r->pods[i].counts.outbound = (uint32_t)(i % 3);
                r->pods[i].counts.long_lived = (uint32_t)(i % 5 == 0 ? i : 0);
                r->pods[i].counts.oldest = i * USEC_PER_SEC;
                r->total.outbound += r->pods[i].counts.outbound;
                r->total.long_lived += r->pods[i].counts.long_lived;
        }
        r->host.counts.inbound = 4;
        r->total.inbound = 4;
        r->stats.duration = 1500;
        return r;
}

static void test_report_order_and_cap(void **state)
{
        _cleanup_(scan_result_freep) ScanResult *scan = make_scan(300);
        _cleanup_(json_object_putp) json_object *rep = NULL;
        PodCache pods;
        pod_cache_init(&pods);
        _cleanup_(json_object_putp) json_object *p = pod_json(scan->pods[295].uid, "db", "pg-0", false);
        assert_int_equal(pod_cache_upsert(&pods, p), 0);

        ReportContext ctx = { .node = "n1", .observed_at = T0, .phase = "draining", .long_lived_known = true,
                              .long_lived_after = 60 * USEC_PER_SEC };
        assert_int_equal(report_build(scan, &pods, &ctx, &rep), 0);
        pod_cache_clear(&pods);

        int64_t v;
        assert_int_equal(mr_json_get_int(&v, rep, "version", NULL), 0);
        assert_int_equal(v, 1);
        assert_string_equal(mr_json_get_str(rep, "observedAt", NULL), "2026-11-24T03:11:03.000000Z");
        assert_string_equal(mr_json_get_str(rep, "phase", NULL), "draining");
        json_object *list = mr_json_get(rep, "pods", NULL);
        assert_int_equal(json_object_array_length(list), REPORT_MAX_PODS);
        /* pods with no connection at all are not listed: 300 pods, 100 with outbound 0 and no long-lived */
        assert_int_equal(mr_json_get_int(&v, rep, "podsOmitted", NULL), 0);
        assert_true(v > 0);
        /* most long-lived first: pod 295 (295 long-lived), named from the cache */
        json_object *first = json_object_array_get_idx(list, 0);
        assert_string_equal(mr_json_get_str(first, "name", NULL), "pg-0");
        assert_string_equal(mr_json_get_str(first, "namespace", NULL), "db");
        assert_int_equal(mr_json_get_int(&v, first, "longLived", NULL), 0);
        assert_int_equal(v, 295);
        json_object *second = json_object_array_get_idx(list, 1);
        assert_null(mr_json_get_str(second, "name", NULL)); /* unknown to the cache: UID only */
        assert_non_null(mr_json_get_str(second, "uid", NULL));
        assert_int_equal(mr_json_get_int(&v, rep, "total", "established", NULL), 0);
        assert_int_equal(v, scan->total.outbound + 4);
        assert_string_equal(json_object_get_string(mr_json_get(rep, "scan", "durationMs", NULL)), "1.500");
}

static void test_report_unknown_long_lived(void **state)
{
        _cleanup_(scan_result_freep) ScanResult *scan = make_scan(2);
        _cleanup_(json_object_putp) json_object *rep = NULL;
        ReportContext ctx = { .observed_at = T0 };
        int64_t v;

        assert_int_equal(report_build(scan, NULL, &ctx, &rep), 0);
        assert_null(mr_json_get(rep, "total", "longLived", NULL));
        assert_int_equal(mr_json_get_int(&v, rep, "total", "longLived", NULL), -ENOENT);
        assert_null(mr_json_get_str(rep, "node", NULL));
}

static void test_lease_body(void **state)
{
        _cleanup_(scan_result_freep) ScanResult *scan = make_scan(6);
        _cleanup_(json_object_putp) json_object *rep = NULL, *lease = NULL, *again = NULL, *idle = NULL;
        ReportContext ctx = { .node = "n1", .observed_at = T0, .phase = "g2", .long_lived_known = true };

        assert_int_equal(report_build(scan, NULL, &ctx, &rep), 0);
        assert_int_equal(report_lease(NULL, "meshroll", "meshroll-agent-n1", "meshroll-agent/n1", 10, T0, rep, &lease),
                         0);
        assert_string_equal(mr_json_get_str(lease, "kind", NULL), "Lease");
        assert_string_equal(mr_json_get_str(lease, "metadata", "namespace", NULL), "meshroll");
        assert_string_equal(mr_json_get_str(lease, "spec", "holderIdentity", NULL), "meshroll-agent/n1");
        assert_string_equal(mr_json_get_str(lease, "spec", "renewTime", NULL), "2026-11-24T03:11:03.000000Z");
        assert_string_equal(mr_json_get_str(lease, "spec", "acquireTime", NULL), "2026-11-24T03:11:03.000000Z");
        assert_string_equal(mr_json_get_str(lease, "metadata", "annotations", "meshroll.io/long-lived", NULL), "5");
        assert_string_equal(mr_json_get_str(lease, "metadata", "annotations", "meshroll.io/established", NULL), "10"); /* 6 outbound + the host's 4 inbound */
        assert_string_equal(mr_json_get_str(lease, "metadata", "annotations", "meshroll.io/phase", NULL), "g2");
        assert_string_equal(mr_json_get_str(lease, "metadata", "labels", "meshroll.io/node", NULL), "n1");
        const char *doc = mr_json_get_str(lease, "metadata", "annotations", "meshroll.io/connections", NULL);
        _cleanup_(json_object_putp) json_object *parsed = NULL;
        assert_int_equal(mr_json_parse(doc, strlen(doc), 1 << 20, &parsed), 0);
        assert_true(mr_json_equal(parsed, rep));

        /* The server's copy comes back with a resourceVersion and someone else's annotation. */
        json_object *meta = mr_json_get(lease, "metadata", NULL);
        mr_json_set_str(meta, "resourceVersion", "42");
        mr_json_set_str(mr_json_get(lease, "metadata", "annotations", NULL), "team/owner", "sre");
        json_object_object_add(meta, "managedFields", json_object_new_array());
        assert_int_equal(report_lease(lease, "meshroll", "meshroll-agent-n1", "meshroll-agent/n1", 10,
                                      T0 + 2 * USEC_PER_SEC, rep, &again),
                         0);
        assert_string_equal(mr_json_get_str(again, "metadata", "resourceVersion", NULL), "42");
        assert_string_equal(mr_json_get_str(again, "metadata", "annotations", "team/owner", NULL), "sre");
        assert_null(mr_json_get(again, "metadata", "managedFields", NULL));
        assert_string_equal(mr_json_get_str(again, "spec", "acquireTime", NULL), "2026-11-24T03:11:03.000000Z");
        assert_string_equal(mr_json_get_str(again, "spec", "renewTime", NULL), "2026-11-24T03:11:05.000000Z");
        /* the original is untouched */
        assert_null(mr_json_get(mr_json_get(lease, "metadata", NULL), "managedFields", "x", NULL));

        /* Idle and not yet knowing ages: the phase and long-lived annotations go away. */
        _cleanup_(json_object_putp) json_object *rep2 = NULL;
        ReportContext ctx2 = { .node = "n1", .observed_at = T0 };
        assert_int_equal(report_build(scan, NULL, &ctx2, &rep2), 0);
        assert_int_equal(report_lease(again, "meshroll", "meshroll-agent-n1", "h", 900, T0, rep2, &idle), 0);
        assert_null(mr_json_get(idle, "metadata", "annotations", "meshroll.io/phase", NULL));
        assert_null(mr_json_get(idle, "metadata", "annotations", "meshroll.io/long-lived", NULL));
        int64_t d;
        assert_int_equal(mr_json_get_int(&d, idle, "spec", "leaseDurationSeconds", NULL), 0);
        assert_int_equal(d, 900);
}

static void test_table(void **state)
{
        _cleanup_(scan_result_freep) ScanResult *scan = make_scan(3);
        _cleanup_(json_object_putp) json_object *rep = NULL;
        ReportContext ctx = { .observed_at = T0 };
        char *buf = NULL;
        size_t size = 0;

        assert_int_equal(report_build(scan, NULL, &ctx, &rep), 0);
        FILE *f = open_memstream(&buf, &size);
        report_print_table(f, rep);
        fclose(f);
        assert_non_null(strstr(buf, "NAMESPACE"));
        assert_non_null(strstr(buf, "TOTAL"));
        assert_non_null(strstr(buf, "Long-lived counts need"));
        free(buf);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pod_cache),
                cmocka_unit_test(test_report_order_and_cap),
                cmocka_unit_test(test_report_unknown_long_lived),
                cmocka_unit_test(test_lease_body),
                cmocka_unit_test(test_table),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
