/* SPDX-License-Identifier: Apache-2.0 */
/* pods.c — see pods.h. */
#include "meshroll/json-util.h"
#include "pods.h"

void pod_cache_init(PodCache *c)
{
        *c = (PodCache){};
}

static void info_clear(PodInfo *p)
{
        free(p->namespace);
        free(p->name);
}

void pod_cache_clear(PodCache *c)
{
        for (size_t i = 0; i < c->n; i++)
                info_clear(&c->pods[i]);
        free(c->pods);
        *c = (PodCache){};
}

/* Index of uid, or where it would go (with *found false). */
static size_t position(const PodCache *c, const char *uid, bool *found)
{
        size_t lo = 0, hi = c->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int r = strcmp(c->pods[mid].uid, uid);
                if (r == 0) {
                        *found = true;
                        return mid;
                }
                if (r < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *found = false;
        return lo;
}

int pod_cache_upsert(PodCache *c, json_object *pod)
{
        const char *uid = mr_json_get_str(pod, "metadata", "uid", NULL);
        const char *ns = mr_json_get_str(pod, "metadata", "namespace", NULL);
        const char *name = mr_json_get_str(pod, "metadata", "name", NULL);
        PodInfo info = {};
        bool found;

        if (!uid || strlen(uid) >= POD_UID_MAX || !ns || !name)
                return -EINVAL;
        memcpy(info.uid, uid, strlen(uid) + 1);
        info.host_network = mr_json_get_bool(false, pod, "spec", "hostNetwork", NULL);
        info.namespace = strdup(ns);
        info.name = strdup(name);
        if (!info.namespace || !info.name) {
                info_clear(&info);
                return -ENOMEM;
        }

        size_t i = position(c, uid, &found);
        if (found) {
                info_clear(&c->pods[i]);
                c->pods[i] = info;
                return 0;
        }
        if (c->n == c->cap) {
                size_t ncap = c->cap ? c->cap * 2 : 64;
                PodInfo *np = reallocarray(c->pods, ncap, sizeof(PodInfo));
                if (!np) {
                        info_clear(&info);
                        return -ENOMEM;
                }
                c->pods = np;
                c->cap = ncap;
        }
        memmove(c->pods + i + 1, c->pods + i, (c->n - i) * sizeof(PodInfo));
        c->pods[i] = info;
        c->n++;
        return 0;
}

void pod_cache_remove(PodCache *c, json_object *pod)
{
        const char *uid = mr_json_get_str(pod, "metadata", "uid", NULL);
        bool found;

        if (!uid)
                return;
        size_t i = position(c, uid, &found);
        if (!found)
                return;
        info_clear(&c->pods[i]);
        memmove(c->pods + i, c->pods + i + 1, (c->n - i - 1) * sizeof(PodInfo));
        c->n--;
}

const PodInfo *pod_cache_find(const PodCache *c, const char *uid)
{
        bool found;
        size_t i = position(c, uid, &found);
        return found ? &c->pods[i] : NULL;
}
