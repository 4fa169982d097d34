/* SPDX-License-Identifier: Apache-2.0 */
/* report.c — see report.h for the document and where it goes. */
#include <stdio.h>

#include "meshroll/json-util.h"
#include "meshroll/time-util.h"
#include "report.h"

static int put(json_object *o, const char *key, json_object *v)
{
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static json_object *seconds_or_null(bool known, usec_t v)
{
        return known ? json_object_new_int64((int64_t)(v / USEC_PER_SEC)) : NULL;
}

/* {"established":…, …}; returns NULL on ENOMEM. */
static json_object *counts_json(const ScanCounts *c, bool long_lived_known)
{
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        if (!o)
                return NULL;
        if (mr_json_set_int(o, "established", (int64_t)c->outbound + c->inbound) < 0 ||
            mr_json_set_int(o, "outbound", c->outbound) < 0 || mr_json_set_int(o, "inbound", c->inbound) < 0 ||
            json_object_object_add(o, "longLived",
                                   long_lived_known ? json_object_new_int64(c->long_lived) : NULL) < 0 ||
            json_object_object_add(o, "oldestSeconds", seconds_or_null(long_lived_known, c->oldest)) < 0 ||
            mr_json_set_int(o, "hboneInbound", c->hbone_inbound) < 0 ||
            mr_json_set_int(o, "hboneOutbound", c->hbone_outbound) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static int cmp_pods(const void *a, const void *b)
{
        const ScanPod *x = *(const ScanPod *const *)a, *y = *(const ScanPod *const *)b;
        if (x->counts.long_lived != y->counts.long_lived)
                return x->counts.long_lived > y->counts.long_lived ? -1 : 1;
        uint32_t ex = x->counts.outbound + x->counts.inbound, ey = y->counts.outbound + y->counts.inbound;
        if (ex != ey)
                return ex > ey ? -1 : 1;
        return strcmp(x->uid, y->uid);
}

int report_build(const ScanResult *scan, const PodCache *pods, const ReportContext *ctx, json_object **ret)
{
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *list = json_object_new_array();
        _cleanup_free_ const ScanPod **order = NULL;
        char when[KUBE_TIME_MAX];
        size_t n = 0, omitted = 0;

        if (!o || !list)
                return -ENOMEM;
        if (scan->n_pods > 0) {
                order = calloc(scan->n_pods, sizeof(*order));
                if (!order)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < scan->n_pods; i++)
                if (scan->pods[i].counts.outbound + scan->pods[i].counts.inbound + scan->pods[i].counts.hbone_inbound +
                            scan->pods[i].counts.hbone_outbound >
                    0)
                        order[n++] = &scan->pods[i];
        if (n > 0)
                qsort(order, n, sizeof(*order), cmp_pods);

        for (size_t i = 0; i < n; i++) {
                if (i >= REPORT_MAX_PODS) {
                        omitted = n - i;
                        break;
                }
                const PodInfo *info = pods ? pod_cache_find(pods, order[i]->uid) : NULL;
                json_object *p = counts_json(&order[i]->counts, ctx->long_lived_known);
                if (!p)
                        return -ENOMEM;
                if (json_object_array_add(list, p) < 0) {
                        json_object_put(p);
                        return -ENOMEM;
                }
                if (mr_json_set_str(p, "namespace", info ? info->namespace : NULL) < 0 ||
                    mr_json_set_str(p, "name", info ? info->name : NULL) < 0 ||
                    mr_json_set_str(p, "uid", order[i]->uid) < 0)
                        return -ENOMEM;
        }

        _cleanup_(json_object_putp) json_object *scan_o = json_object_new_object();
        char ms[32];
        snprintf(ms, sizeof(ms), "%.3f", (double)scan->stats.duration / 1000.0);
        if (!scan_o || mr_json_set_int(o, "version", REPORT_SCHEMA_VERSION) < 0 ||
            mr_json_set_str(o, "node", ctx->node) < 0 ||
            mr_json_set_str(o, "observedAt", kube_microtime_format(ctx->observed_at, when)) < 0 ||
            mr_json_set_str(o, "phase", ctx->phase) < 0 ||
            mr_json_set_int(o, "longLivedAfterSeconds", (int64_t)(ctx->long_lived_after / USEC_PER_SEC)) < 0 ||
            put(o, "total", counts_json(&scan->total, ctx->long_lived_known)) < 0 ||
            put(o, "pods", TAKE_PTR(list)) < 0 || mr_json_set_int(o, "podsOmitted", (int64_t)omitted) < 0 ||
            put(scan_o, "durationMs", json_object_new_double_s((double)scan->stats.duration / 1000.0, ms)) < 0 ||
            mr_json_set_int(scan_o, "namespaces", scan->stats.namespaces) < 0 ||
            mr_json_set_int(scan_o, "netlinkNamespaces", scan->stats.netlink) < 0 ||
            mr_json_set_int(scan_o, "procNamespaces", scan->stats.proc) < 0 ||
            mr_json_set_int(scan_o, "netlinkFallbacks", scan->stats.fallbacks) < 0 ||
            mr_json_set_int(scan_o, "malformedLines", (int64_t)scan->stats.lines.malformed) < 0 ||
            mr_json_set_int(scan_o, "readErrors", scan->stats.read_errors) < 0 ||
            put(o, "scan", TAKE_PTR(scan_o)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

int report_lease(json_object *previous, const char *ns, const char *name, const char *holder,
                 unsigned duration_seconds, usec_t now, json_object *report, json_object **ret)
{
        _cleanup_(json_object_putp) json_object *lease = previous ? mr_json_copy(previous) : json_object_new_object();
        char when[KUBE_TIME_MAX], buf[32];
        int64_t v;

        if (!lease)
                return -ENOMEM;
        json_object *meta = mr_json_ensure_object(lease, "metadata", NULL);
        json_object *spec = mr_json_ensure_object(lease, "spec", NULL);
        json_object *ann = mr_json_ensure_object(lease, "metadata", "annotations", NULL);
        if (!meta || !spec || !ann)
                return -ENOMEM;
        /* Fields the server owns or that would make a PUT fail needlessly. */
        json_object_object_del(meta, "managedFields");

        kube_microtime_format(now, when);
        if (mr_json_set_str(lease, "apiVersion", "coordination.k8s.io/v1") < 0 ||
            mr_json_set_str(lease, "kind", "Lease") < 0 || mr_json_set_str(meta, "name", name) < 0 ||
            mr_json_set_str(meta, "namespace", ns) < 0 || mr_json_set_str(spec, "holderIdentity", holder) < 0 ||
            mr_json_set_int(spec, "leaseDurationSeconds", duration_seconds) < 0 ||
            mr_json_set_str(spec, "renewTime", when) < 0)
                return -ENOMEM;
        if (!mr_json_get_str(spec, "acquireTime", NULL) && mr_json_set_str(spec, "acquireTime", when) < 0)
                return -ENOMEM;
        json_object *labels = mr_json_ensure_object(lease, "metadata", "labels", NULL);
        if (!labels || mr_json_set_str(labels, "app.kubernetes.io/name", "meshroll-agent") < 0 ||
            mr_json_set_str(labels, "meshroll.io/node", mr_json_get_str(report, "node", NULL)) < 0)
                return -ENOMEM;

        if (mr_json_set_str(ann, ANNOTATION_CONNECTIONS, mr_json_compact(report)) < 0 ||
            mr_json_set_str(ann, ANNOTATION_OBSERVED_AT, mr_json_get_str(report, "observedAt", NULL)) < 0)
                return -ENOMEM;
        if (mr_json_get_int(&v, report, "total", "established", NULL) == 0) {
                snprintf(buf, sizeof(buf), "%lld", (long long)v);
                if (mr_json_set_str(ann, ANNOTATION_ESTABLISHED, buf) < 0)
                        return -ENOMEM;
        }
        if (mr_json_get_int(&v, report, "total", "longLived", NULL) == 0) {
                snprintf(buf, sizeof(buf), "%lld", (long long)v);
                if (mr_json_set_str(ann, ANNOTATION_LONG_LIVED, buf) < 0)
                        return -ENOMEM;
        } else
                json_object_object_del(ann, ANNOTATION_LONG_LIVED);
        const char *phase = mr_json_get_str(report, "phase", NULL);
        if (phase) {
                if (mr_json_set_str(ann, ANNOTATION_PHASE, phase) < 0)
                        return -ENOMEM;
        } else
                json_object_object_del(ann, ANNOTATION_PHASE);
        *ret = TAKE_PTR(lease);
        return 0;
}

static void print_row(FILE *f, const char *ns, const char *name, json_object *c)
{
        int64_t out = 0, in = 0, ll = 0, age = 0, hi = 0, ho = 0;
        char ll_s[24] = "-", age_s[24] = "-";

        (void)mr_json_get_int(&out, c, "outbound", NULL);
        (void)mr_json_get_int(&in, c, "inbound", NULL);
        (void)mr_json_get_int(&hi, c, "hboneInbound", NULL);
        (void)mr_json_get_int(&ho, c, "hboneOutbound", NULL);
        if (mr_json_get_int(&ll, c, "longLived", NULL) == 0)
                snprintf(ll_s, sizeof(ll_s), "%lld", (long long)ll);
        if (mr_json_get_int(&age, c, "oldestSeconds", NULL) == 0)
                snprintf(age_s, sizeof(age_s), "%llds", (long long)age);
        fprintf(f, "%-20s %-36s %8lld %8lld %10s %7s %8lld %9lld\n", ns, name, (long long)out, (long long)in, ll_s,
                age_s, (long long)hi, (long long)ho);
}

void report_print_table(FILE *f, json_object *report)
{
        json_object *pods = mr_json_get(report, "pods", NULL);
        int64_t omitted = 0;

        fprintf(f, "%-20s %-36s %8s %8s %10s %7s %8s %9s\n", "NAMESPACE", "POD", "OUTBOUND", "INBOUND",
                "LONG-LIVED", "OLDEST", "HBONE-IN", "HBONE-OUT");
        for (size_t i = 0; pods && i < json_object_array_length(pods); i++) {
                json_object *p = json_object_array_get_idx(pods, i);
                const char *ns = mr_json_get_str(p, "namespace", NULL);
                const char *name = mr_json_get_str(p, "name", NULL);
                print_row(f, ns ? ns : "?", name ? name : mr_json_get_str(p, "uid", NULL), p);
        }
        print_row(f, "TOTAL", "(pods and host)", mr_json_get(report, "total", NULL));
        if (mr_json_get_int(&omitted, report, "podsOmitted", NULL) == 0 && omitted > 0)
                fprintf(f, "(%lld more pods not listed)\n", (long long)omitted);
        if (!mr_json_get(report, "total", "longLived", NULL))
                fprintf(f, "Long-lived counts need the agent to watch sockets over time; run it as a daemon.\n");
}
