/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>

#include "meshroll/errors.h"
#include "meshroll/metrics.h"

static void test_render_counter_gauge_histogram(void **state)
{
        _cleanup_(mr_metrics_freep) MrMetrics *m = NULL;
        MrMetric *conns, *scans, *dur;
        const double buckets[] = { 0.001, 0.01, 0.1 };

        assert_int_equal(mr_metrics_new(&m), 0);
        assert_int_equal(mr_metrics_register(m, MR_METRIC_GAUGE, "meshroll_agent_connections",
                                             "Established connections through ztunnel.\nBy port.",
                                             (const char *[]){ "port", "pod", NULL }, NULL, 0, &conns),
                         0);
        assert_int_equal(mr_metrics_register(m, MR_METRIC_COUNTER, "meshroll_agent_scans_total", "Scans run.", NULL,
                                             NULL, 0, &scans),
                         0);
        assert_int_equal(mr_metrics_register(m, MR_METRIC_HISTOGRAM, "meshroll_agent_scan_seconds", "Scan time.",
                                             NULL, buckets, 3, &dur),
                         0);

        assert_int_equal(mr_metric_set(conns, (const char *[]){ "15001", "web\"1\\x\ny" }, 12), 0);
        assert_int_equal(mr_metric_set(conns, (const char *[]){ "15006", "web" }, 3), 0);
        assert_int_equal(mr_metric_set(conns, (const char *[]){ "15006", "web" }, 4), 0);
        assert_int_equal(mr_metric_add(scans, NULL, 1), 0);
        assert_int_equal(mr_metric_add(scans, NULL, 2), 0);
        assert_int_equal(mr_metric_observe(dur, NULL, 0.0005), 0);
        assert_int_equal(mr_metric_observe(dur, NULL, 0.05), 0);
        assert_int_equal(mr_metric_observe(dur, NULL, 7), 0);

        _cleanup_free_ char *out = NULL;
        size_t n;
        assert_int_equal(mr_metrics_render(m, &out, &n), 0);
        assert_int_equal(n, strlen(out));
        assert_string_equal(out,
                            "# HELP meshroll_agent_connections Established connections through ztunnel.\\nBy port.\n"
                            "# TYPE meshroll_agent_connections gauge\n"
                            "meshroll_agent_connections{port=\"15001\",pod=\"web\\\"1\\\\x\\ny\"} 12\n"
                            "meshroll_agent_connections{port=\"15006\",pod=\"web\"} 4\n"
                            "# HELP meshroll_agent_scans_total Scans run.\n"
                            "# TYPE meshroll_agent_scans_total counter\n"
                            "meshroll_agent_scans_total 3\n"
                            "# HELP meshroll_agent_scan_seconds Scan time.\n"
                            "# TYPE meshroll_agent_scan_seconds histogram\n"
                            "meshroll_agent_scan_seconds_bucket{le=\"0.001\"} 1\n"
                            "meshroll_agent_scan_seconds_bucket{le=\"0.01\"} 1\n"
                            "meshroll_agent_scan_seconds_bucket{le=\"0.1\"} 2\n"
                            "meshroll_agent_scan_seconds_bucket{le=\"+Inf\"} 3\n"
                            "meshroll_agent_scan_seconds_sum 7.0505\n"
                            "meshroll_agent_scan_seconds_count 3\n");
}

static void test_rules(void **state)
{
        _cleanup_(mr_metrics_freep) MrMetrics *m = NULL;
        MrMetric *c, *g, *h;
        double v;

        assert_int_equal(mr_metrics_new(&m), 0);
        assert_int_equal(mr_metrics_register(m, MR_METRIC_COUNTER, "9bad", "", NULL, NULL, 0, &c), -EINVAL);
        assert_int_equal(mr_metrics_register(m, MR_METRIC_COUNTER, "ok", "", (const char *[]){ "a-b", NULL }, NULL,
                                             0, &c),
                         -EINVAL);
        assert_int_equal(mr_metrics_register(m, MR_METRIC_COUNTER, "ok", "", (const char *[]){ "le", NULL }, NULL, 0,
                                             &c),
                         -EINVAL);
        assert_int_equal(mr_metrics_register(m, MR_METRIC_HISTOGRAM, "h", "", NULL, (const double[]){ 2, 1 }, 2, &h),
                         -EINVAL);
        assert_int_equal(mr_metrics_register(m, MR_METRIC_HISTOGRAM, "h", "", NULL, NULL, 0, &h), -EINVAL);
        assert_int_equal(mr_metrics_register(m, MR_METRIC_COUNTER, "c", "", (const char *[]){ "x", NULL }, NULL, 0, &c),
                         0);
        assert_int_equal(mr_metrics_register(m, MR_METRIC_GAUGE, "c", "", NULL, NULL, 0, &g), -EEXIST);
        assert_int_equal(mr_metrics_register(m, MR_METRIC_GAUGE, "g", "", NULL, NULL, 0, &g), 0);

        assert_int_equal(mr_metric_add(c, (const char *[]){ "a" }, -1), -EINVAL); /* counters only go up */
        assert_int_equal(mr_metric_set(c, (const char *[]){ "a" }, 1), -EINVAL);  /* set is for gauges */
        assert_int_equal(mr_metric_observe(g, NULL, 1), -EINVAL);
        assert_int_equal(mr_metric_add(c, NULL, 1), -EINVAL);                     /* missing label values */
        assert_int_equal(mr_metric_add(g, NULL, NAN), -EINVAL);
        assert_int_equal(mr_metric_get(c, (const char *[]){ "a" }, &v), -ENOENT);
        assert_int_equal(mr_metric_add(c, (const char *[]){ "a" }, 2.5), 0);
        assert_int_equal(mr_metric_get(c, (const char *[]){ "a" }, &v), 0);
        assert_true(v == 2.5);
        assert_int_equal(mr_metric_add(g, NULL, -4), 0);
        assert_int_equal(mr_metric_get(g, NULL, &v), 0);
        assert_true(v == -4);

        mr_metric_reset(c);
        assert_int_equal(mr_metric_get(c, (const char *[]){ "a" }, &v), -ENOENT);
}

static void test_series_cap(void **state)
{
        _cleanup_(mr_metrics_freep) MrMetrics *m = NULL;
        MrMetric *g;
        char label[32];

        assert_int_equal(mr_metrics_new(&m), 0);
        assert_int_equal(mr_metrics_register(m, MR_METRIC_GAUGE, "g", "", (const char *[]){ "k", NULL }, NULL, 0, &g), 0);
        for (int i = 0; i < MR_METRICS_MAX_SERIES; i++) {
                snprintf(label, sizeof(label), "%d", i);
                assert_int_equal(mr_metric_set(g, (const char *[]){ label }, i), 0);
        }
        assert_int_equal(mr_metric_set(g, (const char *[]){ "one-more" }, 1), -MR_ETOOBIG);
        /* existing series still update */
        assert_int_equal(mr_metric_set(g, (const char *[]){ "7" }, 70), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_render_counter_gauge_histogram),
                cmocka_unit_test(test_rules),
                cmocka_unit_test(test_series_cap),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
