/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api.c — routing and verbs of the simulated API server (reference §1,
 * §4–§7): every request becomes a SimResponse with a JSON body and the
 * status code, reason and message the real server would send.
 *
 * Routing follows the URL layout of api-concepts (T7):
 *   /api/v1[/namespaces/NS]/RESOURCE[/NAME[/SUB]]
 *   /apis/GROUP/VERSION[/namespaces/NS]/RESOURCE[/NAME[/SUB]]
 * with /api/v1/namespaces/NAME[/status|/finalize] being the Namespace
 * itself. Each request takes the store lock once for its whole read or
 * write: a PATCH is read-modify-write under that one lock, so it can never
 * lose a race (the real server retries instead; the result is the same).
 *
 * Deliberate simplifications (docs/simulator.md): lists always serve the
 * current state ("Exact" and "NotOlderThan" are treated as "Most Recent");
 * continue tokens carry the list revision and the last key and answer 410
 * once that revision has left the history; server-side apply and dryRun
 * are not implemented (apply → 415).
 */
#include <inttypes.h>
#include <stdio.h>

#include "api.h"
#include "controllers.h"
#include "meshroll/json-util.h"
#include "meshroll/time-util.h"
#include "patch.h"

#define LIST_MAX_ITEMS 100000

typedef struct Route {
        const SimKind *kind;
        char ns[256];   /* "" when not in the URL */
        char name[256]; /* "" for a collection */
        char sub[64];   /* "" or "status", "eviction", … */
        bool has_ns;
} Route;

void sim_response_done(SimResponse *r)
{
        free(r->body);
        sim_watch_free(r->watch);
        *r = (SimResponse){};
}

static const char *query(const SimRequest *req, const char *key)
{
        for (const char *const *q = req->query; q && q[0]; q += 2)
                if (streq(q[0], key))
                        return q[1] ? q[1] : "";
        return NULL;
}

/* ---- Status bodies ---- */

char *sim_status_json(int code, const char *reason, const char *message, const SimKind *k, const char *name,
                      json_object *causes, int retry_after)
{
        _cleanup_(json_object_putp) json_object *st = json_object_new_object();
        if (!st)
                return NULL;
        mr_json_set_str(st, "kind", "Status");
        mr_json_set_str(st, "apiVersion", "v1");
        json_object_object_add(st, "metadata", json_object_new_object());
        mr_json_set_str(st, "status", code < 300 ? "Success" : "Failure");
        if (message)
                mr_json_set_str(st, "message", message);
        if (!isempty(reason))
                mr_json_set_str(st, "reason", reason);
        if (k || !isempty(name) || causes || retry_after > 0) {
                json_object *d = json_object_new_object();
                if (!isempty(name))
                        mr_json_set_str(d, "name", name);
                if (k && !isempty(k->group))
                        mr_json_set_str(d, "group", k->group);
                if (k)
                        mr_json_set_str(d, "kind", streq_ptr(reason, "Invalid") ? k->kind : k->resource);
                if (causes)
                        json_object_object_add(d, "causes", json_object_get(causes));
                if (retry_after > 0)
                        mr_json_set_int(d, "retryAfterSeconds", retry_after);
                json_object_object_add(st, "details", d);
        }
        mr_json_set_int(st, "code", code);
        return strdup(mr_json_compact(st));
}

static void respond_status(SimResponse *resp, int code, const char *reason, const char *message, const SimKind *k,
                           const char *name, json_object *causes, int retry_after)
{
        free(resp->body);
        resp->status = code;
        resp->body = sim_status_json(code, reason, message, k, name, causes, retry_after);
        resp->body_size = resp->body ? strlen(resp->body) : 0;
        if (retry_after > 0)
                resp->retry_after = retry_after;
}

/* Maps a store/patch error to the Status the real server sends. */
static void respond_error(SimResponse *resp, int r, const MrError *err, const SimKind *k, const char *name)
{
        const char *msg = err && err->message[0] ? err->message : mr_strerror(r);
        char buf[1100];
        switch (-r) {
        case ENOENT:
                return respond_status(resp, 404, "NotFound", msg, k, name, NULL, 0);
        case EEXIST:
                return respond_status(resp, 409, "AlreadyExists", msg, k, name, NULL, 0);
        case MR_ECONFLICT:
                return respond_status(resp, 409, "Conflict", msg, k, name, NULL, 0);
        case MR_EINVALID:
                return respond_status(resp, 422, "Invalid", msg, k, name, NULL, 0);
        case MR_EBADREQUEST:
        case EINVAL:
                return respond_status(resp, 400, "BadRequest", msg, NULL, NULL, NULL, 0);
        case MR_EMEDIATYPE:
                return respond_status(resp, 415, "UnsupportedMediaType", msg, NULL, NULL, NULL, 0);
        case MR_ETOOBIG:
                return respond_status(resp, 413, "RequestEntityTooLarge", msg, NULL, NULL, NULL, 0);
        case MR_EGONE:
                return respond_status(resp, 410, "Expired", msg, NULL, NULL, NULL, 0);
        case MR_EFORBIDDEN:
                return respond_status(resp, 403, "Forbidden", msg, k, name, NULL, 0);
        default:
                snprintf(buf, sizeof(buf), "Internal error occurred: %s", msg);
                return respond_status(resp, 500, "InternalError", buf, NULL, NULL, NULL, 0);
        }
}

static void respond_json(SimResponse *resp, int code, json_object *obj)
{
        resp->status = code;
        resp->body = strdup(mr_json_compact(obj));
        resp->body_size = resp->body ? strlen(resp->body) : 0;
        if (!resp->body)
                respond_status(resp, 500, "InternalError", "out of memory", NULL, NULL, NULL, 0);
}

static void not_found_path(SimResponse *resp)
{
        respond_status(resp, 404, "NotFound", "the server could not find the requested resource", NULL, NULL, NULL, 0);
}

/* ---- routing ---- */

static bool copy_seg(char *dst, size_t size, const char *seg, size_t len)
{
        if (len == 0 || len >= size)
                return false;
        memcpy(dst, seg, len);
        dst[len] = 0;
        return true;
}

/* Splits path into at most max segments (pointers into a copy in buf). */
static size_t split(char *buf, const char **segs, size_t max)
{
        size_t n = 0;
        char *save = NULL;
        for (char *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
                if (n == max)
                        return max + 1;
                segs[n++] = t;
        }
        return n;
}

/* 1: routed; 0: not a resource path; -ENOENT: unknown resource. */
static int route(SimStore *s, const char *path, Route *rt)
{
        _cleanup_free_ char *buf = strdup(path);
        const char *segs[9], *group = "", *version;
        size_t n, i;

        *rt = (Route){};
        if (!buf)
                return -ENOMEM;
        n = split(buf, segs, 8);
        if (n > 8 || n < 3)
                return 0;
        if (streq(segs[0], "api")) {
                version = segs[1];
                i = 2;
        } else if (streq(segs[0], "apis") && n >= 4) {
                group = segs[1];
                version = segs[2];
                i = 3;
        } else
                return 0;

        /* /api/v1/namespaces/NAME[/status|/finalize] is the Namespace itself. */
        if (isempty(group) && streq(segs[i], "namespaces") && n - i >= 2 &&
            (n - i == 2 || (n - i == 3 && !sim_store_find_kind(s, group, version, segs[i + 2])))) {
                rt->kind = sim_store_find_kind(s, "", version, "namespaces");
                if (!rt->kind || !copy_seg(rt->name, sizeof(rt->name), segs[i + 1], strlen(segs[i + 1])))
                        return -ENOENT;
                if (n - i == 3 && !copy_seg(rt->sub, sizeof(rt->sub), segs[i + 2], strlen(segs[i + 2])))
                        return -ENOENT;
                return 1;
        }
        if (streq(segs[i], "namespaces") && n - i >= 3) {
                if (!copy_seg(rt->ns, sizeof(rt->ns), segs[i + 1], strlen(segs[i + 1])))
                        return -ENOENT;
                rt->has_ns = true;
                i += 2;
        }
        if (n - i > 3)
                return -ENOENT;
        rt->kind = sim_store_find_kind(s, group, version, segs[i]);
        if (!rt->kind)
                return -ENOENT;
        if (rt->has_ns && !rt->kind->namespaced)
                return -ENOENT;
        if (n - i >= 2 && !copy_seg(rt->name, sizeof(rt->name), segs[i + 1], strlen(segs[i + 1])))
                return -ENOENT;
        if (n - i == 3 && !copy_seg(rt->sub, sizeof(rt->sub), segs[i + 2], strlen(segs[i + 2])))
                return -ENOENT;
        return 1;
}

static const char *route_ns(const Route *rt)
{
        return rt->kind->namespaced && rt->has_ns ? rt->ns : NULL;
}

/* ---- faults ---- */

static bool chance(SimStore *s, double rate)
{
        if (rate <= 0)
                return false;
        if (rate >= 1)
                return true;
        return (double)(sim_store_random(s) >> 11) / (double)(1ULL << 53) < rate;
}

/* Faults apply to every client but those whose User-Agent starts with an exempt prefix. */
static bool faults_for(const SimApi *api, const SimRequest *req)
{
        if (!api->faults)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(api->faults->exempt_user_agents) && api->faults->exempt_user_agents[i][0]; i++)
                if (startswith(strempty(req->user_agent), api->faults->exempt_user_agents[i]))
                        return false;
        return true;
}

/* Lock held. true when a fault answered the request. */
static bool inject_fault(SimApi *api, const SimRequest *req, int verb, SimResponse *resp)
{
        SimFaults *f = api->faults;
        if (!faults_for(api, req) || verb < 0 || verb >= _SIM_VERB_MAX)
                return false;
        resp->delay = f->latency[verb];
        if (chance(api->store, f->spike_rate))
                resp->delay += f->spike_delay;
        if (!chance(api->store, f->error_rate[verb]))
                return false;
        int code = f->error_code[verb] ? f->error_code[verb] : 500;
        switch (code) {
        case 429:
                respond_status(resp, 429, "TooManyRequests", "the server has received too many requests and has asked us to try again later", NULL, NULL, NULL, 1);
                break;
        case 409:
                respond_status(resp, 409, "Conflict", "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again (injected)", NULL, NULL, NULL, 0);
                break;
        case 503:
                respond_status(resp, 503, "ServiceUnavailable", "the server is currently unable to handle the request (injected)", NULL, NULL, NULL, 0);
                break;
        case 504:
                respond_status(resp, 504, "Timeout", "Timeout: request did not complete within the allowed duration (injected)", NULL, NULL, NULL, 0);
                break;
        default:
                respond_status(resp, code, "InternalError", "Internal error occurred: injected fault", NULL, NULL, NULL, 0);
        }
        return true;
}

/* ---- bodies ---- */

static bool is_protobuf(const SimRequest *req)
{
        return (req->content_type && strstr(req->content_type, "protobuf")) ||
               (req->body_size >= 4 && memcmp(req->body, "k8s\0", 4) == 0);
}

static int parse_body(const SimRequest *req, json_object **ret, MrError *err)
{
        if (is_protobuf(req))
                return mr_error_set(err, -MR_EMEDIATYPE,
                                    "the body of the request was in an unknown format - accepted media types include: "
                                    "application/json, application/yaml");
        int r = mr_json_parse(req->body ? req->body : "", req->body_size, SIM_API_BODY_MAX, ret);
        if (r == -MR_ETOOBIG)
                return mr_error_set(err, r, "the request body is too large");
        if (r < 0 || !json_object_is_type(*ret, json_type_object)) {
                if (r == 0)
                        *ret = (json_object_put(*ret), NULL);
                return mr_error_set(err, -MR_EBADREQUEST, "the body of the request could not be decoded as JSON");
        }
        return 0;
}

/* ---- list / get ---- */

/*
 * The walk starts after the continue position (sim_store_foreach_raw, the
 * objects as stored: a page copies their JSON and parses nothing) and keeps
 * at most one page. Past it, with a label or field selector, matches are
 * only counted for remainingItemCount (one filter check each, nothing
 * gathered); without one, every later object of the namespace matches and
 * the store counts them by index, so a page costs its own objects only. A
 * page used to walk from the first object and gather everything after it,
 * which made a 100 000-pod list in pages of 500 cost 200 full walks (bench/).
 */
typedef struct ListCtx {
        SimStore *store;
        SimFilter *filter;
        size_t limit; /* items kept; 0: LIST_MAX_ITEMS */
        SimRaw *items; /* as stored: a page is copied out without parsing */
        size_t n, cap;
        size_t remaining; /* matches past the page */
        bool counted;     /* stopped after the page: remaining is counted by the store's index */
} ListCtx;

static int list_cb(const SimRaw *raw, void *userdata)
{
        ListCtx *c = userdata;
        if (c->limit > 0 && c->n >= c->limit && !sim_filter_needs_object(c->filter)) {
                c->counted = true; /* everything after the page matches: no need to walk it */
                return 1;
        }
        if (sim_filter_needs_object(c->filter)) {
                size_t mark = sim_store_mark(c->store); /* the tree is only for the filter */
                json_object *obj = sim_store_raw_object(c->store, raw);
                bool match = obj && sim_filter_matches(c->filter, obj);
                sim_store_release(c->store, mark);
                if (!obj)
                        return -ENOMEM;
                if (!match)
                        return 0;
        }
        if (c->limit > 0 && c->n >= c->limit) {
                c->remaining++;
                return 0;
        }
        if (c->n == c->cap) {
                size_t cap = MAX(c->cap * 2, (size_t)64);
                SimRaw *v = realloc(c->items, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                c->items = v;
                c->cap = cap;
        }
        c->items[c->n++] = *raw;
        return c->n >= LIST_MAX_ITEMS ? 1 : 0;
}

/* Continue tokens: base64("RV/ns/name") would do; hex is simpler and just as opaque. */
static char *encode_continue(uint64_t rv, const char *ns, const char *name)
{
        _cleanup_free_ char *raw = NULL;
        char *out;
        if (asprintf(&raw, "%" PRIu64 "\n%s\n%s", rv, ns, name) < 0)
                return NULL;
        size_t n = strlen(raw);
        out = malloc(n * 2 + 1);
        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++)
                snprintf(out + 2 * i, 3, "%02x", (unsigned char)raw[i]);
        return out;
}

static int decode_continue(const char *tok, uint64_t *rv, char **ns, char **name)
{
        size_t n = strlen(tok);
        _cleanup_free_ char *raw = NULL;
        char *a, *b;
        if (n == 0 || n % 2 || n > 2048)
                return -EINVAL;
        raw = malloc(n / 2 + 1);
        if (!raw)
                return -ENOMEM;
        for (size_t i = 0; i < n / 2; i++) {
                unsigned v;
                if (sscanf(tok + 2 * i, "%2x", &v) != 1)
                        return -EINVAL;
                raw[i] = (char)v;
        }
        raw[n / 2] = 0;
        if (strlen(raw) != n / 2 || !(a = strchr(raw, '\n')) || !(b = strchr(a + 1, '\n')))
                return -EINVAL;
        *a = *b = 0;
        char *end;
        *rv = strtoull(raw, &end, 10);
        if (*end)
                return -EINVAL;
        *ns = strdup(a + 1);
        *name = strdup(b + 1);
        return *ns && *name ? 0 : -ENOMEM;
}

static void do_list(SimApi *api, const SimRequest *req, const Route *rt, SimResponse *resp)
{
        const char *limit_s = query(req, "limit"), *cont = query(req, "continue"), *rv = query(req, "resourceVersion");
        _cleanup_free_ char *after_ns = NULL, *after_name = NULL, *next = NULL;
        SimFilter filter;
        MrError err = {};
        ListCtx c = {.store = api->store, .filter = &filter};
        uint64_t list_rv = sim_store_revision(api->store);
        int64_t limit = 0;
        char rvbuf[32], av[128];
        int r;

        if (!isempty(limit_s)) {
                char *end;
                limit = strtoll(limit_s, &end, 10);
                if (*end || limit < 0)
                        limit = 0;
        }
        if (!isempty(cont)) {
                if (!isempty(rv) && !streq(rv, "0"))
                        return respond_status(resp, 400, "BadRequest",
                                              "specifying resource version is not allowed when using continue", NULL,
                                              NULL, NULL, 0);
                if (decode_continue(cont, &list_rv, &after_ns, &after_name) < 0)
                        return respond_status(resp, 400, "BadRequest", "continue key is not valid: invalid token", NULL,
                                              NULL, NULL, 0);
                if (list_rv < sim_store_history_floor(api->store))
                        return respond_status(resp, 410, "Expired",
                                              "The provided continue parameter is too old to display a consistent list "
                                              "result. You can start a new list without the continue parameter.",
                                              NULL, NULL, NULL, 0);
        }
        c.limit = (size_t)limit;
        r = sim_filter_init(&filter, rt->kind, route_ns(rt), query(req, "labelSelector"), query(req, "fieldSelector"),
                            &err);
        if (r < 0)
                return respond_error(resp, r, &err, NULL, NULL);
        r = sim_store_foreach_raw(api->store, rt->kind, route_ns(rt), after_ns, after_name, list_cb, &c);
        sim_filter_done(&filter);
        if (r < 0) {
                free(c.items);
                return respond_error(resp, r, NULL, NULL, NULL);
        }
        size_t n = c.n, remaining = c.remaining;
        if (c.counted)
                remaining = sim_store_count_after(api->store, rt->kind, route_ns(rt), c.items[n - 1].ns,
                                                  c.items[n - 1].name);
        if (remaining > 0)
                next = encode_continue(list_rv, c.items[n - 1].ns, c.items[n - 1].name);
        snprintf(rvbuf, sizeof(rvbuf), "%" PRIu64, list_rv);

        if (sim_table_wanted(req->accept)) {
                _cleanup_free_ json_object **objs = calloc(MAX(n, (size_t)1), sizeof(json_object *));
                bool ok = objs != NULL;
                for (size_t i = 0; ok && i < n; i++)
                        ok = (objs[i] = sim_store_raw_object(api->store, &c.items[i])) != NULL;
                free(c.items);
                if (!ok)
                        return respond_error(resp, -ENOMEM, NULL, NULL, NULL);
                r = sim_table_render(api->store, rt->kind, objs, n, rvbuf, next, query(req, "includeObject"),
                                     sim_store_now(api->store), &resp->body);
                if (r < 0)
                        return respond_error(resp, r, NULL, NULL, NULL);
                resp->status = 200;
                resp->body_size = strlen(resp->body);
                return;
        }

        FILE *f = open_memstream(&resp->body, &resp->body_size);
        if (!f) {
                free(c.items);
                return respond_error(resp, -ENOMEM, NULL, NULL, NULL);
        }
        fprintf(f, "{\"kind\":\"%sList\",\"apiVersion\":\"%s\",\"metadata\":{\"resourceVersion\":\"%s\"", rt->kind->kind,
                sim_kind_api_version(rt->kind, av, sizeof(av)), rvbuf);
        if (next)
                fprintf(f, ",\"continue\":\"%s\",\"remainingItemCount\":%zu", next, remaining);
        fputs("},\"items\":[", f);
        for (size_t i = 0; i < n; i++) {
                if (i)
                        fputc(',', f);
                fwrite(c.items[i].json, 1, c.items[i].size, f);
        }
        fputs("]}", f);
        free(c.items);
        if (fclose(f) != 0) {
                resp->body = NULL;
                return respond_error(resp, -ENOMEM, NULL, NULL, NULL);
        }
        resp->status = 200;
}

static void respond_object(SimApi *api, const SimRequest *req, const Route *rt, SimResponse *resp, int code,
                           json_object *obj)
{
        if (sim_table_wanted(req->accept)) {
                char rv[32];
                snprintf(rv, sizeof(rv), "%s", strempty(mr_json_get_str(obj, "metadata", "resourceVersion", NULL)));
                int r = sim_table_render(api->store, rt->kind, &obj, 1, rv, NULL, query(req, "includeObject"),
                                         sim_store_now(api->store), &resp->body);
                if (r < 0)
                        return respond_error(resp, r, NULL, NULL, NULL);
                resp->status = code;
                resp->body_size = strlen(resp->body);
                return;
        }
        respond_json(resp, code, obj);
}

static json_object *lookup(SimApi *api, const Route *rt, SimResponse *resp)
{
        json_object *obj = sim_store_get(api->store, rt->kind, route_ns(rt), rt->name);
        if (!obj) {
                char gr[256], msg[600];
                snprintf(msg, sizeof(msg), "%s \"%s\" not found", sim_kind_group_resource(rt->kind, gr, sizeof(gr)),
                         rt->name);
                respond_status(resp, 404, "NotFound", msg, rt->kind, rt->name, NULL, 0);
        }
        return obj;
}

/*
 * The watchGoneRate fault: what the real server sends for a resourceVersion
 * that has left its history — HTTP 200, one ERROR event carrying a 410
 * Expired Status, end of stream — so the client must list again.
 */
static void gone_fault(SimResponse *resp, const char *rv)
{
        char msg[300];
        snprintf(msg, sizeof(msg), "too old resource version: %s (injected)", rv);
        _cleanup_free_ char *st = sim_status_json(410, "Expired", msg, NULL, NULL, NULL, 0);
        if (!st || asprintf(&resp->body, "{\"type\":\"ERROR\",\"object\":%s}\n", st) < 0) {
                resp->body = NULL;
                return;
        }
        resp->status = 200;
        resp->body_size = strlen(resp->body);
}

static void do_watch(SimApi *api, const SimRequest *req, const Route *rt, SimResponse *resp)
{
        SimFilter filter;
        MrError err = {};
        SimWatchOptions o = {
                .resource_version = query(req, "resourceVersion"),
                .bookmarks = streq_ptr(query(req, "allowWatchBookmarks"), "true"),
                .bookmark_interval = api->bookmark_interval,
        };
        const char *ts = query(req, "timeoutSeconds");
        usec_t now = mr_now_monotonic(NULL), timeout = 0;
        int r;

        if (streq_ptr(query(req, "sendInitialEvents"), "true"))
                return respond_status(resp, 422, "Invalid", "sendInitialEvents is not supported by this server", NULL,
                                      NULL, NULL, 0);
        if (!isempty(ts)) {
                char *end;
                long long v = strtoll(ts, &end, 10);
                if (!*end && v > 0)
                        timeout = (usec_t)v * USEC_PER_SEC;
        }
        if (!timeout) /* the real server picks [minRequestTimeout, 2×) with 1800 s */
                timeout = (1800 + sim_store_random(api->store) % 1800) * USEC_PER_SEC;
        if (faults_for(api, req) && api->faults->watch_drop_after)
                timeout = MIN(timeout, api->faults->watch_drop_after);
        if (faults_for(api, req) && !isempty(o.resource_version) && !streq(o.resource_version, "0") &&
            chance(api->store, api->faults->watch_gone_rate))
                return gone_fault(resp, o.resource_version);
        o.deadline = now + timeout;

        /* A single-object watch is a watch with a metadata.name field selector. */
        _cleanup_free_ char *fs = NULL;
        const char *field_selector = query(req, "fieldSelector");
        if (!isempty(rt->name)) {
                if (asprintf(&fs, "metadata.name=%s%s%s", rt->name, isempty(field_selector) ? "" : ",",
                             strempty(field_selector)) < 0)
                        return respond_error(resp, -ENOMEM, NULL, NULL, NULL);
                field_selector = fs;
        }
        r = sim_filter_init(&filter, rt->kind, route_ns(rt), query(req, "labelSelector"), field_selector, &err);
        if (r < 0)
                return respond_error(resp, r, &err, NULL, NULL);
        r = sim_watch_new(api->store, &filter, &o, &resp->watch, &err);
        if (r < 0)
                return respond_error(resp, r, &err, NULL, NULL);
        resp->status = 200;
}

/* ---- writes ---- */

static bool namespace_exists(SimApi *api, const Route *rt, SimResponse *resp)
{
        if (!rt->kind->namespaced || sim_store_get(api->store, &SIM_NAMESPACES, NULL, rt->ns))
                return true;
        char msg[300];
        snprintf(msg, sizeof(msg), "namespaces \"%s\" not found", rt->ns);
        respond_status(resp, 404, "NotFound", msg, &SIM_NAMESPACES, rt->ns, NULL, 0);
        return false;
}

static void do_create(SimApi *api, const SimRequest *req, const Route *rt, const char *actor, SimResponse *resp)
{
        _cleanup_(json_object_putp) json_object *obj = NULL;
        json_object *ret = NULL, *meta;
        MrError err = {};
        int r;

        if (rt->kind->namespaced && !rt->has_ns)
                return respond_status(resp, 405, "MethodNotAllowed", "the server does not allow this method on the requested resource", NULL, NULL, NULL, 0);
        if ((r = parse_body(req, &obj, &err)) < 0)
                return respond_error(resp, r, &err, rt->kind, NULL);
        meta = mr_json_ensure_object(obj, "metadata", NULL);
        if (!meta)
                return respond_status(resp, 400, "BadRequest", "metadata must be an object", NULL, NULL, NULL, 0);
        if (rt->kind->namespaced) {
                const char *ns = mr_json_get_str(meta, "namespace", NULL);
                if (!isempty(ns) && !streq(ns, rt->ns))
                        return respond_status(resp, 400, "BadRequest",
                                              "the namespace of the provided object does not match the namespace sent on the request",
                                              NULL, NULL, NULL, 0);
                if (mr_json_set_str(meta, "namespace", rt->ns) < 0)
                        return respond_error(resp, -ENOMEM, NULL, NULL, NULL);
                if (!namespace_exists(api, rt, resp))
                        return;
        }
        /* What PrepareForCreate does: status is the server's. */
        if (rt->kind == &SIM_PODS) {
                json_object *st = json_object_new_object();
                mr_json_set_str(st, "phase", "Pending");
                mr_json_set_str(st, "qosClass", "BestEffort");
                json_object_object_add(obj, "status", st);
        } else if (rt->kind->has_status && rt->kind != &SIM_NODES && rt->kind != &SIM_NAMESPACES)
                json_object_object_del(obj, "status");

        /* The store takes a reference and drops it on failure; ours keeps meta's name alive for the error. */
        r = sim_store_create(api->store, rt->kind, json_object_get(obj), actor, &ret, &err);
        if (r < 0)
                return respond_error(resp, r, &err, rt->kind, mr_json_get_str(meta, "name", NULL));
        respond_json(resp, 201, ret);
}

static bool conflict_fault(SimApi *api, const SimRequest *req, const Route *rt, SimResponse *resp)
{
        char gr[256], msg[700];
        if (!faults_for(api, req) || !streq(rt->sub, "status") || !chance(api->store, api->faults->conflict_rate))
                return false;
        snprintf(msg, sizeof(msg),
                 "Operation cannot be fulfilled on %s \"%s\": the object has been modified; please apply your "
                 "changes to the latest version and try again",
                 sim_kind_group_resource(rt->kind, gr, sizeof(gr)), rt->name);
        respond_status(resp, 409, "Conflict", msg, rt->kind, rt->name, NULL, 0);
        return true;
}

static void do_update(SimApi *api, const SimRequest *req, const Route *rt, const char *actor, SimResponse *resp)
{
        _cleanup_(json_object_putp) json_object *obj = NULL;
        json_object *ret = NULL, *meta;
        MrError err = {};
        const char *name;
        int r;

        if ((r = parse_body(req, &obj, &err)) < 0)
                return respond_error(resp, r, &err, rt->kind, rt->name);
        meta = mr_json_ensure_object(obj, "metadata", NULL);
        name = meta ? mr_json_get_str(meta, "name", NULL) : NULL;
        if (!meta || !streq_ptr(name, rt->name)) {
                char msg[700];
                snprintf(msg, sizeof(msg), "the name of the object (%s) does not match the name on the URL (%s)",
                         strempty(name), rt->name);
                return respond_status(resp, 400, "BadRequest", msg, NULL, NULL, NULL, 0);
        }
        if (rt->kind->namespaced) {
                const char *ns = mr_json_get_str(meta, "namespace", NULL);
                if (!isempty(ns) && !streq(ns, rt->ns))
                        return respond_status(resp, 400, "BadRequest",
                                              "the namespace of the provided object does not match the namespace sent on the request",
                                              NULL, NULL, NULL, 0);
                mr_json_set_str(meta, "namespace", rt->ns);
        }
        if (!lookup(api, rt, resp))
                return;
        if (conflict_fault(api, req, rt, resp))
                return;
        r = sim_store_update(api->store, rt->kind, TAKE_PTR(obj),
                             SIM_UPDATE_CHECK_RV | (streq(rt->sub, "status") ? SIM_UPDATE_STATUS : 0), actor, &ret, &err);
        if (r < 0)
                return respond_error(resp, r, &err, rt->kind, rt->name);
        respond_json(resp, 200, ret);
}

static void do_patch(SimApi *api, const SimRequest *req, const Route *rt, const char *actor, SimResponse *resp)
{
        _cleanup_(json_object_putp) json_object *patched = NULL;
        json_object *cur, *ret = NULL;
        MrError err = {};
        int type, r;

        /* Custom resources (the Istio kinds are CRDs on a real cluster) have no strategic merge patch. */
        bool custom = rt->kind->require_rv && rt->kind != &SIM_LEASES;
        type = sim_patch_type_from_content_type(req->content_type);
        if (type < 0 || (type == SIM_PATCH_STRATEGIC && custom)) {
                char msg[512];
                snprintf(msg, sizeof(msg),
                         "the body of the request was in an unknown format - accepted media types include: "
                         "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml%s",
                         custom ? "" : ", application/strategic-merge-patch+json");
                return respond_status(resp, 415, "UnsupportedMediaType", msg, NULL, NULL, NULL, 0);
        }
        if (!(cur = lookup(api, rt, resp)))
                return;
        if (conflict_fault(api, req, rt, resp))
                return;
        r = sim_patch_apply((SimPatchType)type, cur, req->body ? req->body : "", req->body_size, SIM_API_BODY_MAX,
                            &patched, &err);
        if (r < 0)
                return respond_error(resp, r, &err, rt->kind, rt->name);
        /* The URL names the object: a patch may not rename or move it. */
        json_object *meta = mr_json_ensure_object(patched, "metadata", NULL);
        if (!meta || !streq_ptr(mr_json_get_str(meta, "name", NULL), rt->name) ||
            (rt->kind->namespaced && !streq_ptr(mr_json_get_str(meta, "namespace", NULL), rt->ns))) {
                err = (MrError){};
                mr_error_set(&err, -MR_EINVALID, "%s \"%s\" is invalid: metadata.name: Invalid value: field is immutable",
                             rt->kind->kind, rt->name);
                return respond_error(resp, -MR_EINVALID, &err, rt->kind, rt->name);
        }
        if (isempty(mr_json_get_str(meta, "resourceVersion", NULL)))
                mr_json_set_str(meta, "resourceVersion", mr_json_get_str(cur, "metadata", "resourceVersion", NULL));
        r = sim_store_update(api->store, rt->kind, TAKE_PTR(patched),
                             SIM_UPDATE_CHECK_RV | SIM_UPDATE_PATCH | (streq(rt->sub, "status") ? SIM_UPDATE_STATUS : 0),
                             actor, &ret, &err);
        if (r < 0)
                return respond_error(resp, r, &err, rt->kind, rt->name);
        respond_json(resp, 200, ret);
}

/* ---- DeleteOptions ---- */

typedef struct DeleteOpts {
        int64_t grace; /* -1: unset */
        char uid[128], rv[64];
        bool has_uid, has_rv;
} DeleteOpts;

static bool pb_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
        *v = 0;
        for (int shift = 0; *p < end && shift < 64; shift += 7) {
                unsigned char b = *(*p)++;
                *v |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80))
                        return true;
        }
        return false;
}

/* Walks one protobuf message; calls back for length-delimited and varint fields. */
static bool pb_walk(const unsigned char *p, const unsigned char *end,
                    bool (*cb)(unsigned field, unsigned wire, uint64_t v, const unsigned char *data, size_t len, void *u),
                    void *u)
{
        while (p < end) {
                uint64_t key, v = 0;
                const unsigned char *data = NULL;
                if (!pb_varint(&p, end, &key))
                        return false;
                unsigned wire = key & 7, field = (unsigned)(key >> 3);
                switch (wire) {
                case 0:
                        if (!pb_varint(&p, end, &v))
                                return false;
                        break;
                case 1:
                        if (end - p < 8)
                                return false;
                        p += 8;
                        break;
                case 2:
                        if (!pb_varint(&p, end, &v) || v > (uint64_t)(end - p))
                                return false;
                        data = p;
                        p += v;
                        break;
                case 5:
                        if (end - p < 4)
                                return false;
                        p += 4;
                        break;
                default:
                        return false;
                }
                if (!cb(field, wire, v, data, data ? (size_t)v : 0, u))
                        return false;
        }
        return true;
}

static bool pb_preconditions(unsigned field, unsigned wire, uint64_t v, const unsigned char *data, size_t len, void *u)
{
        DeleteOpts *o = u;
        if (wire == 2 && field == 1 && len < sizeof(o->uid)) {
                memcpy(o->uid, data, len);
                o->uid[len] = 0;
                o->has_uid = true;
        } else if (wire == 2 && field == 2 && len < sizeof(o->rv)) {
                memcpy(o->rv, data, len);
                o->rv[len] = 0;
                o->has_rv = true;
        }
        return true;
}

static bool pb_delete_options(unsigned field, unsigned wire, uint64_t v, const unsigned char *data, size_t len, void *u)
{
        DeleteOpts *o = u;
        if (field == 1 && wire == 0)
                o->grace = (int64_t)v;
        else if (field == 2 && wire == 2)
                return pb_walk(data, data + len, pb_preconditions, o);
        return true;
}

static bool pb_unknown(unsigned field, unsigned wire, uint64_t v, const unsigned char *data, size_t len, void *u)
{
        /* runtime.Unknown{1: typeMeta, 2: raw}: raw is the DeleteOptions message. */
        if (field == 2 && wire == 2)
                return pb_walk(data, data + len, pb_delete_options, u);
        return true;
}

/* Reads DeleteOptions from the query and the body (JSON, or protobuf per T4). */
static int delete_options(const SimRequest *req, DeleteOpts *o, MrError *err)
{
        const char *g = query(req, "gracePeriodSeconds");
        *o = (DeleteOpts){.grace = -1};
        if (req->body_size >= 4 && memcmp(req->body, "k8s\0", 4) == 0) {
                const unsigned char *p = (const unsigned char *)req->body + 4;
                DeleteOpts tmp = *o;
                if (pb_walk(p, (const unsigned char *)req->body + req->body_size, pb_unknown, &tmp))
                        *o = tmp; /* undecodable: ignored, the pod's own grace period applies */
        } else if (req->body_size > 0 && !is_protobuf(req)) {
                _cleanup_(json_object_putp) json_object *b = NULL;
                int64_t v;
                if (mr_json_parse(req->body, req->body_size, SIM_API_BODY_MAX, &b) < 0)
                        return mr_error_set(err, -MR_EBADREQUEST, "the body of the request could not be decoded as DeleteOptions");
                if (mr_json_get_int(&v, b, "gracePeriodSeconds", NULL) == 0)
                        o->grace = v;
                const char *uid = mr_json_get_str(b, "preconditions", "uid", NULL);
                const char *rv = mr_json_get_str(b, "preconditions", "resourceVersion", NULL);
                if (uid) {
                        snprintf(o->uid, sizeof(o->uid), "%s", uid);
                        o->has_uid = true;
                }
                if (rv) {
                        snprintf(o->rv, sizeof(o->rv), "%s", rv);
                        o->has_rv = true;
                }
        }
        if (!isempty(g)) {
                char *end;
                long long v = strtoll(g, &end, 10);
                if (*end)
                        return mr_error_set(err, -MR_EBADREQUEST, "invalid gracePeriodSeconds: %s", g);
                o->grace = v;
        }
        return 0;
}

static void delete_success(SimResponse *resp, const SimKind *k, const char *name, json_object *last)
{
        _cleanup_(json_object_putp) json_object *st = json_object_new_object();
        json_object *d = json_object_new_object();
        mr_json_set_str(st, "kind", "Status");
        mr_json_set_str(st, "apiVersion", "v1");
        json_object_object_add(st, "metadata", json_object_new_object());
        mr_json_set_str(st, "status", "Success");
        mr_json_set_str(d, "name", name);
        if (!isempty(k->group))
                mr_json_set_str(d, "group", k->group);
        mr_json_set_str(d, "kind", k->resource);
        mr_json_set_str(d, "uid", mr_json_get_str(last, "metadata", "uid", NULL));
        json_object_object_add(st, "details", d);
        respond_json(resp, 200, st);
}

static void do_delete(SimApi *api, const SimRequest *req, const Route *rt, const char *actor, SimResponse *resp)
{
        DeleteOpts o;
        MrError err = {};
        json_object *ret = NULL;
        int r;

        if ((r = delete_options(req, &o, &err)) < 0)
                return respond_error(resp, r, &err, NULL, NULL);
        r = sim_store_delete(api->store, rt->kind, route_ns(rt), rt->name, o.grace, o.has_uid ? o.uid : NULL,
                             o.has_rv ? o.rv : NULL, actor, &ret, &err);
        if (r < 0)
                return respond_error(resp, r, &err, rt->kind, rt->name);
        /* Pods return the object (ReturnDeletedObject); others a Status once gone. */
        if (r > 0 || rt->kind == &SIM_PODS)
                return respond_json(resp, 200, ret);
        delete_success(resp, rt->kind, rt->name, ret);
}

typedef struct Names {
        char **v;
        size_t n;
        SimFilter *filter;
} Names;

static int names_cb(json_object *obj, void *userdata)
{
        Names *c = userdata;
        if (!sim_filter_matches(c->filter, obj))
                return 0;
        char **v = realloc(c->v, (c->n + 2) * sizeof(char *));
        if (!v)
                return -ENOMEM;
        c->v = v;
        c->v[c->n] = strdup(strempty(mr_json_get_str(obj, "metadata", "name", NULL)));
        c->v[++c->n] = NULL;
        return 0;
}

static void do_deletecollection(SimApi *api, const SimRequest *req, const Route *rt, const char *actor, SimResponse *resp)
{
        SimFilter filter;
        MrError err = {};
        DeleteOpts o;
        Names c = {.filter = &filter};
        int r;

        if ((r = delete_options(req, &o, &err)) < 0)
                return respond_error(resp, r, &err, NULL, NULL);
        r = sim_filter_init(&filter, rt->kind, route_ns(rt), query(req, "labelSelector"), query(req, "fieldSelector"), &err);
        if (r < 0)
                return respond_error(resp, r, &err, NULL, NULL);
        r = sim_store_foreach(api->store, rt->kind, route_ns(rt), names_cb, &c);
        sim_filter_done(&filter);
        for (size_t i = 0; r >= 0 && i < c.n; i++)
                (void)sim_store_delete(api->store, rt->kind, route_ns(rt), c.v[i], o.grace, NULL, NULL, actor, NULL, NULL);
        strv_free(c.v);
        if (r < 0)
                return respond_error(resp, r, NULL, NULL, NULL);
        /* The real server answers with the list of what it deleted; an empty list reads the same to clients. */
        char av[128];
        _cleanup_free_ char *body = NULL;
        if (asprintf(&body, "{\"kind\":\"%sList\",\"apiVersion\":\"%s\",\"metadata\":{\"resourceVersion\":\"%" PRIu64 "\"},\"items\":[]}",
                     rt->kind->kind, sim_kind_api_version(rt->kind, av, sizeof(av)), sim_store_revision(api->store)) < 0)
                return respond_error(resp, -ENOMEM, NULL, NULL, NULL);
        resp->status = 200;
        resp->body_size = strlen(body);
        resp->body = TAKE_PTR(body);
}

/* ---- eviction (§7) ---- */

static void do_evict(SimApi *api, const SimRequest *req, const Route *rt, const char *actor, SimResponse *resp)
{
        _cleanup_(json_object_putp) json_object *ev = NULL;
        SimEvictionDenial denial = {};
        MrError err = {};
        json_object *pod;
        const char *av, *kind, *name;
        int64_t grace = -1;
        int r;

        if ((r = parse_body(req, &ev, &err)) < 0)
                return respond_error(resp, r, &err, NULL, NULL);
        av = mr_json_get_str(ev, "apiVersion", NULL);
        kind = mr_json_get_str(ev, "kind", NULL);
        if (!streq_ptr(kind, "Eviction") || !(streq_ptr(av, "policy/v1") || streq_ptr(av, "policy/v1beta1")))
                return respond_status(resp, 400, "BadRequest",
                                      "the body of the request was not a policy/v1 or policy/v1beta1 Eviction", NULL,
                                      NULL, NULL, 0);
        name = mr_json_get_str(ev, "metadata", "name", NULL);
        if (!streq_ptr(name, rt->name))
                return respond_status(resp, 400, "BadRequest", "name in URL does not match name in Eviction object",
                                      NULL, NULL, NULL, 0);
        (void)mr_json_get_int(&grace, ev, "deleteOptions", "gracePeriodSeconds", NULL);
        if (!(pod = lookup(api, rt, resp)))
                return;

        r = sim_eviction_admit_ex(api->store, pod, &denial, &err);
        if (r == -MR_ETOOMANY) {
                _cleanup_(json_object_putp) json_object *causes = json_object_new_array();
                json_object *c = json_object_new_object();
                mr_json_set_str(c, "reason", "DisruptionBudget");
                mr_json_set_str(c, "message", denial.cause);
                json_object_array_add(causes, c);
                respond_status(resp, 429, "TooManyRequests", err.message, NULL, NULL, denial.cause[0] ? causes : NULL,
                               denial.retry_after);
                return;
        }
        if (r == -EIO)
                return respond_status(resp, 500, NULL, err.message, NULL, NULL, NULL, 0);
        if (r < 0)
                return respond_error(resp, r, &err, rt->kind, rt->name);

        /* The DisruptionTarget condition (PodDisruptionConditions), then a graceful delete. */
        pod = sim_store_get(api->store, &SIM_PODS, rt->ns, rt->name);
        if (pod && !mr_json_get(pod, "metadata", "deletionTimestamp", NULL)) {
                _cleanup_(json_object_putp) json_object *n = mr_json_copy(pod);
                json_object *st = mr_json_ensure_object(n, "status", NULL);
                json_object *conds = mr_json_get(st, "conditions", NULL);
                char now[KUBE_TIME_MAX];
                if (st && (!conds || !json_object_is_type(conds, json_type_array))) {
                        conds = json_object_new_array();
                        json_object_object_add(st, "conditions", conds);
                }
                if (conds) {
                        json_object *c = json_object_new_object();
                        mr_json_set_str(c, "type", "DisruptionTarget");
                        mr_json_set_str(c, "status", "True");
                        mr_json_set_str(c, "lastProbeTime", NULL);
                        mr_json_set_str(c, "lastTransitionTime", kube_time_format(sim_store_now(api->store), now));
                        mr_json_set_str(c, "reason", "EvictionByEvictionAPI");
                        mr_json_set_str(c, "message", "Eviction API: evicting");
                        json_object_array_add(conds, c);
                        (void)sim_store_update(api->store, &SIM_PODS, TAKE_PTR(n), SIM_UPDATE_STATUS, actor, NULL, NULL);
                }
        }
        sim_store_audit(api->store, "evict", actor, &SIM_PODS, rt->ns, rt->name, ev);
        r = sim_store_delete(api->store, &SIM_PODS, rt->ns, rt->name, grace, NULL, NULL, actor, NULL, &err);
        if (r < 0 && r != -ENOENT)
                return respond_error(resp, r, &err, rt->kind, rt->name);
        respond_status(resp, 201, NULL, NULL, NULL, NULL, NULL, 0);
}

/* ---- dispatch ---- */

static int verb_of(const SimRequest *req, const Route *rt)
{
        const char *m = req->method;
        const char *w = query(req, "watch");
        if (streq(m, "GET") && (streq_ptr(w, "true") || streq_ptr(w, "1")) && isempty(rt->sub))
                return SIM_VERB_WATCH; /* also GET …/NAME?watch=true, the deprecated single-object watch */
        if (streq(m, "GET"))
                return isempty(rt->name) ? SIM_VERB_LIST : SIM_VERB_GET;
        if (streq(m, "POST"))
                return SIM_VERB_CREATE;
        if (streq(m, "PUT"))
                return SIM_VERB_UPDATE;
        if (streq(m, "PATCH"))
                return SIM_VERB_PATCH;
        if (streq(m, "DELETE"))
                return SIM_VERB_DELETE;
        return -1;
}

static void method_not_allowed(SimResponse *resp, const char *method, const SimKind *k)
{
        char gr[256], msg[400];
        snprintf(msg, sizeof(msg), "%s is not supported on resources of kind \"%s\"", method,
                 sim_kind_group_resource(k, gr, sizeof(gr)));
        respond_status(resp, 405, "MethodNotAllowed", msg, NULL, NULL, NULL, 0);
}

static void dispatch(SimApi *api, const SimRequest *req, const Route *rt, SimResponse *resp)
{
        const char *m = req->method, *actor = req->user_agent ? req->user_agent : "unknown";
        bool collection = isempty(rt->name);
        int verb = verb_of(req, rt);

        if (!isempty(rt->sub) && !streq(rt->sub, "status") &&
            !(rt->kind == &SIM_PODS && streq(rt->sub, "eviction")) &&
            !(rt->kind == &SIM_NAMESPACES && streq(rt->sub, "finalize")))
                return not_found_path(resp);
        if (streq(rt->sub, "status") && !rt->kind->has_status)
                return not_found_path(resp);
        if (inject_fault(api, req, verb, resp))
                return;

        if (streq(rt->sub, "eviction")) {
                if (!streq(m, "POST"))
                        return method_not_allowed(resp, m, rt->kind);
                return do_evict(api, req, rt, actor, resp);
        }
        if (streq(m, "GET")) {
                if (verb == SIM_VERB_WATCH)
                        return do_watch(api, req, rt, resp);
                if (collection)
                        return do_list(api, req, rt, resp);
                size_t size;
                const char *json = sim_table_wanted(req->accept)
                                           ? NULL
                                           : sim_store_get_json(api->store, rt->kind, route_ns(rt), rt->name, &size);
                if (json) { /* as stored: nothing to parse */
                        resp->body = memdup_nul(json, size);
                        resp->body_size = size;
                        resp->status = resp->body ? 200 : 0;
                        return;
                }
                json_object *obj = lookup(api, rt, resp);
                if (obj)
                        respond_object(api, req, rt, resp, 200, obj);
                return;
        }
        if (streq(m, "POST") && collection && isempty(rt->sub))
                return do_create(api, req, rt, actor, resp);
        if (streq(m, "PUT") && !collection)
                return do_update(api, req, rt, actor, resp);
        if (streq(m, "PATCH") && !collection)
                return do_patch(api, req, rt, actor, resp);
        if (streq(m, "DELETE") && !collection && isempty(rt->sub))
                return do_delete(api, req, rt, actor, resp);
        if (streq(m, "DELETE") && collection)
                return do_deletecollection(api, req, rt, actor, resp);
        method_not_allowed(resp, m, rt->kind);
}

void sim_api_handle(SimApi *api, const SimRequest *req, SimResponse *resp)
{
        Route rt;
        int r;

        *resp = (SimResponse){.retry_after = 0};
        if (req->body_size > SIM_API_BODY_MAX)
                return respond_status(resp, 413, "RequestEntityTooLarge", "the request body is too large", NULL, NULL, NULL, 0);
        if (streq(req->path, "/healthz") || streq(req->path, "/readyz") || streq(req->path, "/livez")) {
                resp->status = 200;
                resp->body = strdup("ok");
                resp->body_size = 2;
                resp->content_type = "text/plain; charset=utf-8";
                return;
        }

        sim_store_lock(api->store);
        if (streq(req->method, "GET")) {
                char *body = NULL;
                int status = 0;
                r = sim_discovery_handle(api->store, req->path, api->server_address, &body, &status);
                if (r != 0) {
                        sim_store_unlock(api->store);
                        if (r < 0)
                                return respond_error(resp, r, NULL, NULL, NULL);
                        resp->status = status;
                        resp->body = body;
                        resp->body_size = strlen(body);
                        return;
                }
        }
        r = route(api->store, req->path, &rt);
        if (r <= 0)
                not_found_path(resp);
        else
                dispatch(api, req, &rt, resp);
        sim_store_unlock(api->store);
        if (!resp->body && !resp->watch)
                respond_status(resp, 500, "InternalError", "Internal error occurred: out of memory", NULL, NULL, NULL, 0);
}
