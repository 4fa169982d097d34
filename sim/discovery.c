/* SPDX-License-Identifier: Apache-2.0 */
/*
 * discovery.c — /version, /api, /apis and the per-group-version resource
 * lists, in the legacy (non-aggregated) format (reference §2.2–2.5).
 *
 * Aggregated discovery is deliberately not served: kubectl 1.32 asks for it
 * with an Accept list that ends in plain application/json, and a legacy
 * answer with Content-Type application/json makes it fall back to the
 * per-group-version GETs that kubectl 1.20 always does — one code path for
 * both. Everything is generated from the kinds the store serves, CRD-declared
 * ones included, so a new CRD shows up in discovery at once.
 */
#include <stdio.h>

#include "api.h"
#include "meshroll/json-util.h"

typedef struct Collect {
        const char *group;   /* filter, or NULL */
        const char *version; /* filter, or NULL */
        const SimKind *kinds[256];
        size_t n;
} Collect;

static int collect_cb(const SimKind *k, void *userdata)
{
        Collect *c = userdata;
        if (c->group && !streq(k->group, c->group))
                return 0;
        if (c->version && !streq(k->version, c->version))
                return 0;
        if (c->n < ELEMENTSOF(c->kinds))
                c->kinds[c->n++] = k;
        return 0;
}

static json_object *strv_json(const char *const *v, size_t max)
{
        json_object *a = json_object_new_array();
        for (size_t i = 0; a && i < max && v[i]; i++)
                json_object_array_add(a, json_object_new_string(v[i]));
        return a;
}

static json_object *verbs_json(const char *verbs)
{
        json_object *a = json_object_new_array();
        const char *p = verbs;
        while (a && p && *p) {
                size_t n = strcspn(p, " ");
                if (n > 0)
                        json_object_array_add(a, json_object_new_string_len(p, (int)n));
                p += n;
                p += strspn(p, " ");
        }
        return a;
}

static json_object *resource_entry(const char *name, const char *singular, const SimKind *k, const char *verbs,
                                   bool with_names)
{
        json_object *r = json_object_new_object();
        if (!r)
                return NULL;
        mr_json_set_str(r, "name", name);
        mr_json_set_str(r, "singularName", singular);
        mr_json_set_bool(r, "namespaced", k->namespaced);
        mr_json_set_str(r, "kind", k->kind);
        json_object_object_add(r, "verbs", verbs_json(verbs));
        if (with_names && k->short_names[0])
                json_object_object_add(r, "shortNames", strv_json(k->short_names, ELEMENTSOF(k->short_names)));
        if (with_names && k->categories[0])
                json_object_object_add(r, "categories", strv_json(k->categories, ELEMENTSOF(k->categories)));
        return r;
}

static json_object *resource_list(const char *group_version, Collect *c)
{
        json_object *o = json_object_new_object(), *res = json_object_new_array();
        char name[256];

        if (!o || !res) {
                json_object_put(o);
                json_object_put(res);
                return NULL;
        }
        mr_json_set_str(o, "kind", "APIResourceList");
        mr_json_set_str(o, "apiVersion", "v1");
        mr_json_set_str(o, "groupVersion", group_version);
        for (size_t i = 0; i < c->n; i++) {
                const SimKind *k = c->kinds[i];
                json_object_array_add(res, resource_entry(k->resource, k->singular, k, k->verbs, true));
                if (k->has_status) {
                        snprintf(name, sizeof(name), "%s/status", k->resource);
                        json_object_array_add(res, resource_entry(name, "", k, "get patch update", false));
                }
                for (size_t j = 0; j < ELEMENTSOF(k->subresources) && k->subresources[j]; j++) {
                        const char *sub = k->subresources[j];
                        snprintf(name, sizeof(name), "%s/%s", k->resource, sub);
                        if (streq(sub, "eviction")) {
                                /* kubectl drain uses eviction only with group+version here (§2.4). */
                                json_object *e = resource_entry(name, "", k, "create", false);
                                mr_json_set_str(e, "kind", "Eviction");
                                mr_json_set_str(e, "group", "policy");
                                mr_json_set_str(e, "version", "v1");
                                json_object_array_add(res, e);
                        } else if (streq(sub, "finalize"))
                                json_object_array_add(res, resource_entry(name, "", k, "update", false));
                        else if (streq(sub, "proxy"))
                                json_object_array_add(res, resource_entry(name, "", k, "create delete get patch update", false));
                }
        }
        json_object_object_add(o, "resources", res);
        return o;
}

static int group_versions_cb(const SimKind *k, void *userdata)
{
        json_object *groups = userdata; /* name → array of versions (insertion ordered) */
        json_object *versions;
        if (isempty(k->group))
                return 0;
        if (!json_object_object_get_ex(groups, k->group, &versions)) {
                versions = json_object_new_array();
                json_object_object_add(groups, k->group, versions);
        }
        for (size_t i = 0; i < json_object_array_length(versions); i++)
                if (streq(json_object_get_string(json_object_array_get_idx(versions, i)), k->version))
                        return 0;
        json_object_array_add(versions, json_object_new_string(k->version));
        return 0;
}

static json_object *api_group(const char *name, json_object *versions)
{
        json_object *g = json_object_new_object(), *vs = json_object_new_array();
        char gv[256];
        mr_json_set_str(g, "name", name);
        for (size_t i = 0; i < json_object_array_length(versions); i++) {
                const char *v = json_object_get_string(json_object_array_get_idx(versions, i));
                json_object *e = json_object_new_object();
                snprintf(gv, sizeof(gv), "%s/%s", name, v);
                mr_json_set_str(e, "groupVersion", gv);
                mr_json_set_str(e, "version", v);
                if (i == 0)
                        json_object_object_add(g, "preferredVersion", mr_json_copy(e));
                json_object_array_add(vs, e);
        }
        json_object_object_add(g, "versions", vs);
        return g;
}

static char *finish(json_object *o)
{
        char *s = o ? strdup(mr_json_compact(o)) : NULL;
        json_object_put(o);
        return s;
}

int sim_discovery_handle(SimStore *s, const char *path, const char *server_address, char **ret_body,
                         int *ret_status)
{
        _cleanup_(json_object_putp) json_object *groups = NULL;
        json_object *o = NULL;
        const char *rest;

        if (streq(path, "/version")) {
                o = json_object_new_object();
                mr_json_set_str(o, "major", "1");
                mr_json_set_str(o, "minor", "32");
                mr_json_set_str(o, "gitVersion", "v1.32.0-meshroll-kubesim");
                mr_json_set_str(o, "gitCommit", "0000000000000000000000000000000000000000");
                mr_json_set_str(o, "gitTreeState", "clean");
                mr_json_set_str(o, "buildDate", "2024-12-11T00:00:00Z");
                mr_json_set_str(o, "goVersion", "go1.23.3");
                mr_json_set_str(o, "compiler", "gc");
                mr_json_set_str(o, "platform", "linux/amd64");
        } else if (streq(path, "/api") || streq(path, "/api/")) {
                json_object *cidr = json_object_new_object(), *a = json_object_new_array(),
                            *vs = json_object_new_array();
                o = json_object_new_object();
                mr_json_set_str(o, "kind", "APIVersions");
                json_object_array_add(vs, json_object_new_string("v1"));
                json_object_object_add(o, "versions", vs);
                mr_json_set_str(cidr, "clientCIDR", "0.0.0.0/0");
                mr_json_set_str(cidr, "serverAddress", strempty(server_address));
                json_object_array_add(a, cidr);
                json_object_object_add(o, "serverAddressByClientCIDRs", a);
        } else if (streq(path, "/api/v1") || streq(path, "/api/v1/")) {
                Collect c = {.group = "", .version = "v1"};
                sim_store_foreach_kind(s, collect_cb, &c);
                o = resource_list("v1", &c);
        } else if (streq(path, "/apis") || streq(path, "/apis/")) {
                json_object *list = json_object_new_array();
                groups = json_object_new_object();
                sim_store_foreach_kind(s, group_versions_cb, groups);
                o = json_object_new_object();
                mr_json_set_str(o, "kind", "APIGroupList");
                mr_json_set_str(o, "apiVersion", "v1");
                json_object_object_foreach(groups, name, versions) json_object_array_add(list, api_group(name, versions));
                json_object_object_add(o, "groups", list);
        } else if ((rest = startswith(path, "/apis/"))) {
                char group[256];
                const char *slash = strchr(rest, '/');
                size_t glen = slash ? (size_t)(slash - rest) : strlen(rest);
                const char *version = slash ? slash + 1 : NULL;
                json_object *versions;

                if (glen == 0 || glen >= sizeof(group) || (version && (strchr(version, '/') || !*version)))
                        return 0;
                memcpy(group, rest, glen);
                group[glen] = 0;
                groups = json_object_new_object();
                sim_store_foreach_kind(s, group_versions_cb, groups);
                if (!json_object_object_get_ex(groups, group, &versions))
                        return 0;
                if (!version) {
                        o = api_group(group, versions);
                        mr_json_set_str(o, "kind", "APIGroup");
                        mr_json_set_str(o, "apiVersion", "v1");
                } else {
                        Collect c = {.group = group, .version = version};
                        char gv[512];
                        sim_store_foreach_kind(s, collect_cb, &c);
                        if (c.n == 0)
                                return 0;
                        snprintf(gv, sizeof(gv), "%s/%s", group, version);
                        o = resource_list(gv, &c);
                }
        } else
                return 0;

        *ret_body = finish(o);
        if (!*ret_body)
                return -ENOMEM;
        *ret_status = 200;
        return 1;
}
