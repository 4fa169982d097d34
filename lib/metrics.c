/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.c — see metrics.h. Series live in a per-family array searched
 * linearly: families here have a handful to a few hundred series, and a
 * scrape renders all of them anyway. Output goes through open_memstream so
 * rendering cannot overflow a buffer.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>

#include "meshroll/errors.h"
#include "meshroll/metrics.h"

typedef struct Series {
        char **values;         /* n_labels strings */
        double value;          /* counter / gauge */
        uint64_t *bucket_hits; /* histogram: per bucket, non-cumulative */
        double sum;
        uint64_t count;
} Series;

struct MrMetric {
        MrMetrics *registry;
        MrMetricType type;
        char *name, *help;
        char **labels;
        size_t n_labels;
        double *buckets;
        size_t n_buckets;
        Series *series;
        size_t n_series, cap_series;
};

struct MrMetrics {
        pthread_mutex_t lock;
        MrMetric **families;
        size_t n_families;
};

static bool valid_name(const char *s, bool colon_ok)
{
        if (isempty(s))
                return false;
        for (const char *p = s; *p; p++) {
                bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                             (colon_ok && *p == ':');
                bool digit = *p >= '0' && *p <= '9';
                if (!alpha && !(digit && p != s))
                        return false;
        }
        return true;
}

int mr_metrics_new(MrMetrics **ret)
{
        MrMetrics *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        pthread_mutex_init(&m->lock, NULL);
        *ret = m;
        return 0;
}

static void series_clear(MrMetric *f, Series *s)
{
        for (size_t i = 0; s->values && i < f->n_labels; i++)
                free(s->values[i]);
        free(s->values);
        free(s->bucket_hits);
}

static void family_free(MrMetric *f)
{
        if (!f)
                return;
        for (size_t i = 0; i < f->n_series; i++)
                series_clear(f, &f->series[i]);
        free(f->series);
        for (size_t i = 0; i < f->n_labels; i++)
                free(f->labels[i]);
        free(f->labels);
        free(f->buckets);
        free(f->name);
        free(f->help);
        free(f);
}

MrMetrics *mr_metrics_free(MrMetrics *m)
{
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_families; i++)
                family_free(m->families[i]);
        free(m->families);
        pthread_mutex_destroy(&m->lock);
        free(m);
        return NULL;
}

int mr_metrics_register(MrMetrics *m, MrMetricType type, const char *name, const char *help,
                        const char *const *label_names, const double *buckets, size_t n_buckets,
                        MrMetric **ret)
{
        MrMetric *f;
        size_t n_labels = 0;
        int r = -ENOMEM;

        if (!valid_name(name, true) || type > MR_METRIC_HISTOGRAM)
                return -EINVAL;
        for (; label_names && label_names[n_labels]; n_labels++)
                if (!valid_name(label_names[n_labels], false) || streq(label_names[n_labels], "le") ||
                    n_labels >= MR_METRICS_MAX_LABELS)
                        return -EINVAL;
        if (type == MR_METRIC_HISTOGRAM) {
                if (n_buckets == 0 || n_buckets > MR_METRICS_MAX_BUCKETS)
                        return -EINVAL;
                for (size_t i = 0; i < n_buckets; i++)
                        if (isnan(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1]))
                                return -EINVAL;
        }

        pthread_mutex_lock(&m->lock);
        for (size_t i = 0; i < m->n_families; i++)
                if (streq(m->families[i]->name, name)) {
                        r = -EEXIST;
                        goto out;
                }
        f = calloc(1, sizeof(*f));
        if (!f)
                goto out;
        f->registry = m;
        f->type = type;
        f->name = strdup(name);
        f->help = strdup(strempty(help));
        f->labels = calloc(n_labels + 1, sizeof(char *));
        if (!f->name || !f->help || !f->labels)
                goto fail;
        for (size_t i = 0; i < n_labels; i++)
                if (!(f->labels[f->n_labels++] = strdup(label_names[i])))
                        goto fail;
        if (type == MR_METRIC_HISTOGRAM) {
                f->buckets = calloc(n_buckets, sizeof(double));
                if (!f->buckets)
                        goto fail;
                memcpy(f->buckets, buckets, n_buckets * sizeof(double));
                f->n_buckets = n_buckets;
        }
        MrMetric **nf = reallocarray(m->families, m->n_families + 1, sizeof(MrMetric *));
        if (!nf)
                goto fail;
        m->families = nf;
        m->families[m->n_families++] = f;
        *ret = f;
        r = 0;
        goto out;
fail:
        family_free(f);
out:
        pthread_mutex_unlock(&m->lock);
        return r;
}

/* Finds or creates the series. Lock held. */
static int series_get(MrMetric *f, const char *const *values, bool create, Series **ret)
{
        for (size_t i = 0; i < f->n_labels; i++)
                if (!values || !values[i])
                        return -EINVAL;
        for (size_t i = 0; i < f->n_series; i++) {
                bool same = true;
                for (size_t j = 0; j < f->n_labels && same; j++)
                        same = streq(f->series[i].values[j], values[j]);
                if (same) {
                        *ret = &f->series[i];
                        return 0;
                }
        }
        if (!create)
                return -ENOENT;
        if (f->n_series >= MR_METRICS_MAX_SERIES)
                return -MR_ETOOBIG;
        if (f->n_series == f->cap_series) {
                size_t ncap = f->cap_series ? f->cap_series * 2 : 8;
                Series *ns = reallocarray(f->series, ncap, sizeof(Series));
                if (!ns)
                        return -ENOMEM;
                f->series = ns;
                f->cap_series = ncap;
        }
        Series s = {};
        s.values = calloc(f->n_labels + 1, sizeof(char *));
        if (!s.values)
                return -ENOMEM;
        for (size_t j = 0; j < f->n_labels; j++)
                if (!(s.values[j] = strdup(values[j]))) {
                        series_clear(f, &s);
                        return -ENOMEM;
                }
        if (f->type == MR_METRIC_HISTOGRAM && !(s.bucket_hits = calloc(f->n_buckets, sizeof(uint64_t)))) {
                series_clear(f, &s);
                return -ENOMEM;
        }
        f->series[f->n_series] = s;
        *ret = &f->series[f->n_series++];
        return 0;
}

static int update(MrMetric *f, const char *const *values, double v, int op)
{
        Series *s;
        int r;

        /* op: 0 add, 1 set, 2 observe */
        if ((op == 0 && f->type == MR_METRIC_HISTOGRAM) || (op == 1 && f->type != MR_METRIC_GAUGE) ||
            (op == 2 && f->type != MR_METRIC_HISTOGRAM) || (op == 0 && f->type == MR_METRIC_COUNTER && v < 0) ||
            isnan(v))
                return -EINVAL;
        pthread_mutex_lock(&f->registry->lock);
        r = series_get(f, values, true, &s);
        if (r >= 0) {
                if (op == 0)
                        s->value += v;
                else if (op == 1)
                        s->value = v;
                else {
                        size_t i = 0;
                        while (i < f->n_buckets && v > f->buckets[i])
                                i++;
                        if (i < f->n_buckets)
                                s->bucket_hits[i]++;
                        s->sum += v;
                        s->count++;
                }
        }
        pthread_mutex_unlock(&f->registry->lock);
        return r;
}

int mr_metric_add(MrMetric *metric, const char *const *label_values, double v)
{
        return update(metric, label_values, v, 0);
}

int mr_metric_set(MrMetric *metric, const char *const *label_values, double v)
{
        return update(metric, label_values, v, 1);
}

int mr_metric_observe(MrMetric *metric, const char *const *label_values, double v)
{
        return update(metric, label_values, v, 2);
}

int mr_metric_get(MrMetric *metric, const char *const *label_values, double *ret)
{
        Series *s;
        int r;

        if (metric->type == MR_METRIC_HISTOGRAM)
                return -EINVAL;
        pthread_mutex_lock(&metric->registry->lock);
        r = series_get(metric, label_values, false, &s);
        if (r >= 0)
                *ret = s->value;
        pthread_mutex_unlock(&metric->registry->lock);
        return r;
}

void mr_metric_reset(MrMetric *metric)
{
        pthread_mutex_lock(&metric->registry->lock);
        for (size_t i = 0; i < metric->n_series; i++)
                series_clear(metric, &metric->series[i]);
        metric->n_series = 0;
        pthread_mutex_unlock(&metric->registry->lock);
}

static void put_escaped(FILE *f, const char *s, bool quote)
{
        for (; *s; s++) {
                if (*s == '\\')
                        fputs("\\\\", f);
                else if (*s == '\n')
                        fputs("\\n", f);
                else if (quote && *s == '"')
                        fputs("\\\"", f);
                else
                        fputc(*s, f);
        }
}

/* The shortest decimal form that reads back as the same double, as Prometheus clients print. */
static void format_double(double v, char buf[static 32])
{
        if (isinf(v)) {
                snprintf(buf, 32, "%s", v > 0 ? "+Inf" : "-Inf");
                return;
        }
        if (v == (double)(int64_t)v && fabs(v) < 1e15) {
                snprintf(buf, 32, "%lld", (long long)v);
                return;
        }
        for (int precision = 1; precision <= 17; precision++) {
                snprintf(buf, 32, "%.*g", precision, v);
                if (strtod(buf, NULL) == v)
                        return;
        }
}

static void put_value(FILE *f, double v)
{
        char buf[32];
        format_double(v, buf);
        fputs(buf, f);
}

/* name{a="x",b="y"[,le="…"]} */
static void put_labels(FILE *f, const MrMetric *m, const Series *s, const char *le)
{
        if (m->n_labels == 0 && !le)
                return;
        fputc('{', f);
        for (size_t i = 0; i < m->n_labels; i++) {
                fprintf(f, "%s%s=\"", i ? "," : "", m->labels[i]);
                put_escaped(f, s->values[i], true);
                fputc('"', f);
        }
        if (le)
                fprintf(f, "%sle=\"%s\"", m->n_labels ? "," : "", le);
        fputc('}', f);
}

int mr_metrics_render(MrMetrics *m, char **ret, size_t *ret_size)
{
        static const char *const type_names[] = { "counter", "gauge", "histogram" };
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return -ENOMEM;
        pthread_mutex_lock(&m->lock);
        for (size_t i = 0; i < m->n_families; i++) {
                const MrMetric *fam = m->families[i];
                fprintf(f, "# HELP %s ", fam->name);
                put_escaped(f, fam->help, false);
                fprintf(f, "\n# TYPE %s %s\n", fam->name, type_names[fam->type]);
                for (size_t j = 0; j < fam->n_series; j++) {
                        const Series *s = &fam->series[j];
                        if (fam->type != MR_METRIC_HISTOGRAM) {
                                fputs(fam->name, f);
                                put_labels(f, fam, s, NULL);
                                fputc(' ', f);
                                put_value(f, s->value);
                                fputc('\n', f);
                                continue;
                        }
                        uint64_t cumulative = 0;
                        for (size_t b = 0; b <= fam->n_buckets; b++) {
                                char le[32];
                                if (b < fam->n_buckets) {
                                        cumulative += s->bucket_hits[b];
                                        format_double(fam->buckets[b], le);
                                } else {
                                        cumulative = s->count;
                                        snprintf(le, sizeof(le), "+Inf");
                                }
                                fprintf(f, "%s_bucket", fam->name);
                                put_labels(f, fam, s, le);
                                fprintf(f, " %llu\n", (unsigned long long)cumulative);
                        }
                        fprintf(f, "%s_sum", fam->name);
                        put_labels(f, fam, s, NULL);
                        fputc(' ', f);
                        put_value(f, s->sum);
                        fprintf(f, "\n%s_count", fam->name);
                        put_labels(f, fam, s, NULL);
                        fprintf(f, " %llu\n", (unsigned long long)s->count);
                }
        }
        pthread_mutex_unlock(&m->lock);
        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        if (ret_size)
                *ret_size = size;
        return 0;
}
