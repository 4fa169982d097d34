/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.h — Prometheus metrics and their text exposition (format 0.0.4).
 *
 * A registry holds metric families (counter, gauge, histogram), each with a
 * fixed list of label names; a series is one combination of label values.
 * Daemons update series from their event loop and render the registry when
 * /metrics is scraped. A mutex guards the registry, so an HTTP thread may
 * render while the loop updates.
 *
 * Rendering follows the text format: "# HELP", "# TYPE", then one sample
 * per line; label values escape \\, \" and \n; histograms emit cumulative
 * _bucket{le=…} lines ending with le="+Inf", then _sum and _count. Series
 * appear in creation order so output is stable for tests.
 *
 * Names must match [a-zA-Z_:][a-zA-Z0-9_:]* and label names
 * [a-zA-Z_][a-zA-Z0-9_]*, checked at registration (-EINVAL). The number of
 * series per family is capped (MR_METRICS_MAX_SERIES); past it updates fail
 * with -MR_ETOOBIG rather than growing without bound on hostile label values.
 */
#pragma once

#include <stddef.h>

#include "meshroll/macro.h"

#define MR_METRICS_MAX_SERIES 10000
#define MR_METRICS_MAX_LABELS 8
#define MR_METRICS_MAX_BUCKETS 32

typedef enum MrMetricType {
        MR_METRIC_COUNTER,
        MR_METRIC_GAUGE,
        MR_METRIC_HISTOGRAM,
} MrMetricType;

typedef struct MrMetrics MrMetrics;
typedef struct MrMetric MrMetric;

int mr_metrics_new(MrMetrics **ret);
MrMetrics *mr_metrics_free(MrMetrics *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(MrMetrics *, mr_metrics_free);

/*
 * Registers a family. label_names is NULL or NULL-terminated (copied).
 * buckets: upper bounds in increasing order for histograms (copied), ignored
 * otherwise. *ret is owned by the registry. -EEXIST for a duplicate name,
 * -EINVAL for bad names, unsorted or too many buckets/labels.
 */
int mr_metrics_register(MrMetrics *m, MrMetricType type, const char *name, const char *help,
                        const char *const *label_names, const double *buckets, size_t n_buckets,
                        MrMetric **ret);

/*
 * Updates the series named by label_values (NULL or as many strings as the
 * family has labels; copied on first use). add: counters and gauges
 * (counters refuse negative amounts with -EINVAL); set: gauges only;
 * observe: histograms only. Wrong type → -EINVAL.
 */
int mr_metric_add(MrMetric *metric, const char *const *label_values, double v);
int mr_metric_set(MrMetric *metric, const char *const *label_values, double v);
int mr_metric_observe(MrMetric *metric, const char *const *label_values, double v);
/* Reads a counter or gauge series; -ENOENT when it does not exist yet. */
int mr_metric_get(MrMetric *metric, const char *const *label_values, double *ret);
/* Drops every series of the family (per-pod gauges are rebuilt each scan). */
void mr_metric_reset(MrMetric *metric);

/* Renders the whole registry. *ret is owned by the caller (free). */
int mr_metrics_render(MrMetrics *m, char **ret, size_t *ret_size);
