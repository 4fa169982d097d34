/* SPDX-License-Identifier: Apache-2.0 */
/*
 * patch.c — JSON merge patch (RFC 7386), strategic merge patch and JSON
 * patch (RFC 6902); see patch.h.
 *
 * Every flavour works on a deep copy of the target, so a patch that fails
 * halfway leaves the stored object untouched (JSON patch is atomic per
 * RFC 6902 §5).
 *
 * Strategic merge patch is RFC 7386 plus the Go struct tags of the built-in
 * types. Instead of carrying the schema, lists are merged by the merge key
 * of the field *name* (containers/env/volumes/… by name, conditions and
 * node addresses by type, ports by containerPort or port, ownerReferences
 * by uid, volumeMounts by mountPath), which is what those names mean in
 * every built-in type; primitive lists with the merge strategy (finalizers)
 * are unioned; every other list is replaced, as the real server does for
 * atomic lists (tolerations and taints included: they carry no patch
 * strategy in core/v1). Directives: $patch (replace, delete, merge, in maps
 * and as list elements), $retainKeys, $deleteFromPrimitiveList/<field> and
 * $setElementOrder/<field> (accepted; order is not enforced).
 */
#include <stdio.h>

#include "meshroll/json-util.h"
#include "patch.h"

#define SMP_MAX_DEPTH 64

int sim_patch_type_from_content_type(const char *ct)
{
        static const struct {
                const char *type;
                SimPatchType patch;
        } map[] = {
                {"application/json-patch+json", SIM_PATCH_JSON},
                {"application/merge-patch+json", SIM_PATCH_MERGE},
                {"application/strategic-merge-patch+json", SIM_PATCH_STRATEGIC},
        };
        size_t len;

        if (!ct)
                return -MR_EMEDIATYPE;
        len = strcspn(ct, "; \t");
        for (size_t i = 0; i < ELEMENTSOF(map); i++)
                if (strlen(map[i].type) == len && strncasecmp(ct, map[i].type, len) == 0)
                        return (int)map[i].patch;
        return -MR_EMEDIATYPE;
}

/* ---- RFC 7386 ---- */

/* Merges patch into *target in place (target owned, may be replaced). */
static int merge_into(json_object **target, json_object *patch)
{
        if (!json_object_is_type(patch, json_type_object)) {
                json_object *c = mr_json_copy(patch);
                if (!c && patch)
                        return -ENOMEM;
                json_object_put(*target);
                *target = c;
                return 0;
        }
        if (!*target || !json_object_is_type(*target, json_type_object)) {
                json_object_put(*target);
                *target = json_object_new_object();
                if (!*target)
                        return -ENOMEM;
        }
        json_object_object_foreach(patch, key, val) {
                if (!val) {
                        json_object_object_del(*target, key);
                        continue;
                }
                json_object *cur = NULL;
                if (json_object_object_get_ex(*target, key, &cur))
                        cur = json_object_get(cur);
                int r = merge_into(&cur, val);
                if (r < 0) {
                        json_object_put(cur);
                        return r;
                }
                if (json_object_object_add(*target, key, cur) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int sim_merge_patch(json_object *target, json_object *patch, json_object **ret)
{
        json_object *t = mr_json_copy(target);
        int r;
        if (!t && target)
                return -ENOMEM;
        r = merge_into(&t, patch);
        if (r < 0) {
                json_object_put(t);
                return r;
        }
        *ret = t;
        return 0;
}

/* ---- strategic merge patch ---- */

static const char *merge_key_for(const char *field, json_object *elem)
{
        static const struct {
                const char *field, *key;
        } keys[] = {
                {"containers", "name"},       {"initContainers", "name"}, {"ephemeralContainers", "name"},
                {"env", "name"},              {"volumes", "name"},        {"imagePullSecrets", "name"},
                {"volumeMounts", "mountPath"}, {"conditions", "type"},    {"addresses", "type"},
                {"ownerReferences", "uid"},   {"hostAliases", "ip"},      {"volumeDevices", "devicePath"},
                {"topologySpreadConstraints", "topologyKey"},
        };
        if (!field)
                return NULL;
        if (streq(field, "ports"))
                return elem && json_object_object_get_ex(elem, "containerPort", NULL) ? "containerPort" : "port";
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (streq(field, keys[i].field))
                        return keys[i].key;
        return NULL;
}

static bool primitive_merge_list(const char *field)
{
        return field && streq(field, "finalizers");
}

static int smp_into(json_object **target, json_object *patch, const char *field, int depth, MrError *err);

static json_object *find_by_key(json_object *arr, const char *key, json_object *value, size_t *ret_idx)
{
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
                json_object *e = json_object_array_get_idx(arr, i), *v;
                if (json_object_is_type(e, json_type_object) && json_object_object_get_ex(e, key, &v) &&
                    mr_json_equal(v, value)) {
                        if (ret_idx)
                                *ret_idx = i;
                        return e;
                }
        }
        return NULL;
}

static int smp_list(json_object **target, json_object *patch, const char *field, int depth, MrError *err)
{
        size_t n = json_object_array_length(patch);
        const char *key = n > 0 ? merge_key_for(field, json_object_array_get_idx(patch, 0)) : merge_key_for(field, NULL);
        bool primitive = primitive_merge_list(field);

        /* A {"$patch":"replace"} element turns the whole list into a replacement. */
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(patch, i);
                if (streq_ptr(mr_json_get_str(e, "$patch", NULL), "replace")) {
                        json_object *out = json_object_new_array();
                        if (!out)
                                return -ENOMEM;
                        for (size_t j = 0; j < n; j++)
                                if (j != i && json_object_array_add(out, mr_json_copy(json_object_array_get_idx(patch, j))) < 0) {
                                        json_object_put(out);
                                        return -ENOMEM;
                                }
                        json_object_put(*target);
                        *target = out;
                        return 0;
                }
        }

        if ((!key && !primitive) || !*target || !json_object_is_type(*target, json_type_array))
                return merge_into(target, patch);

        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(patch, i), *kv = NULL;
                size_t idx;
                if (primitive) {
                        bool present = false;
                        for (size_t j = 0; j < json_object_array_length(*target) && !present; j++)
                                present = mr_json_equal(json_object_array_get_idx(*target, j), e);
                        if (!present && json_object_array_add(*target, mr_json_copy(e)) < 0)
                                return -ENOMEM;
                        continue;
                }
                if (!json_object_is_type(e, json_type_object) || !json_object_object_get_ex(e, key, &kv))
                        return mr_error_set(err, -MR_EBADREQUEST, "map: %s does not contain declared merge key: %s",
                                            mr_json_compact(e), key);
                json_object *cur = find_by_key(*target, key, kv, &idx);
                if (streq_ptr(mr_json_get_str(e, "$patch", NULL), "delete")) {
                        if (cur)
                                json_object_array_del_idx(*target, idx, 1);
                        continue;
                }
                if (!cur) {
                        json_object *add = NULL;
                        int r = smp_into(&add, e, NULL, depth + 1, err);
                        if (r < 0 || json_object_array_add(*target, add) < 0) {
                                /* A nested error after smp_into built part of the item (found by fuzz-patch). */
                                json_object_put(add);
                                return r < 0 ? r : -ENOMEM;
                        }
                        continue;
                }
                json_object *merged = json_object_get(cur);
                int r = smp_into(&merged, e, NULL, depth + 1, err);
                if (r < 0) {
                        json_object_put(merged);
                        return r;
                }
                if (json_object_array_put_idx(*target, idx, merged) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static int smp_into(json_object **target, json_object *patch, const char *field, int depth, MrError *err)
{
        const char *directive;
        json_object *v;

        if (depth > SMP_MAX_DEPTH)
                return mr_error_set(err, -MR_EBADREQUEST, "patch nested too deeply");
        if (json_object_is_type(patch, json_type_array))
                return smp_list(target, patch, field, depth, err);
        if (!json_object_is_type(patch, json_type_object))
                return merge_into(target, patch);

        directive = mr_json_get_str(patch, "$patch", NULL);
        if (directive && streq(directive, "delete")) {
                json_object_put(*target);
                *target = NULL;
                return 1; /* the caller drops the key */
        }
        if (directive && !streq(directive, "replace") && !streq(directive, "merge"))
                return mr_error_set(err, -MR_EBADREQUEST, "Unknown patch type: %s", directive);
        if (!*target || !json_object_is_type(*target, json_type_object) || streq_ptr(directive, "replace")) {
                json_object_put(*target);
                *target = json_object_new_object();
                if (!*target)
                        return -ENOMEM;
        }

        if (json_object_object_get_ex(patch, "$retainKeys", &v) && json_object_is_type(v, json_type_array)) {
                /* Collect first: deleting while iterating a json-c object is not safe. */
                _cleanup_strv_free_ char **drop = calloc(json_object_object_length(*target) + 1, sizeof(char *));
                size_t nd = 0;
                if (!drop)
                        return -ENOMEM;
                json_object_object_foreach(*target, tk, tv) {
                        (void)tv;
                        bool keep = false;
                        for (size_t i = 0; i < json_object_array_length(v) && !keep; i++)
                                keep = streq_ptr(json_object_get_string(json_object_array_get_idx(v, i)), tk);
                        if (!keep && !(drop[nd++] = strdup(tk)))
                                return -ENOMEM;
                }
                for (size_t i = 0; i < nd; i++)
                        json_object_object_del(*target, drop[i]);
        }

        json_object_object_foreach(patch, key, val) {
                const char *sub;
                if (streq(key, "$patch") || streq(key, "$retainKeys") || startswith(key, "$setElementOrder/"))
                        continue;
                if ((sub = startswith(key, "$deleteFromPrimitiveList/"))) {
                        json_object *list;
                        if (!json_object_object_get_ex(*target, sub, &list) || !json_object_is_type(list, json_type_array) ||
                            !json_object_is_type(val, json_type_array))
                                continue;
                        for (size_t i = json_object_array_length(list); i > 0; i--)
                                for (size_t j = 0; j < json_object_array_length(val); j++)
                                        if (mr_json_equal(json_object_array_get_idx(list, i - 1), json_object_array_get_idx(val, j))) {
                                                json_object_array_del_idx(list, i - 1, 1);
                                                break;
                                        }
                        continue;
                }
                if (key[0] == '$')
                        return mr_error_set(err, -MR_EBADREQUEST, "unknown patch directive: %s", key);
                if (!val) {
                        json_object_object_del(*target, key);
                        continue;
                }
                json_object *cur = NULL;
                if (json_object_object_get_ex(*target, key, &cur))
                        cur = json_object_get(cur);
                int r = smp_into(&cur, val, key, depth + 1, err);
                if (r < 0) {
                        json_object_put(cur);
                        return r;
                }
                if (r > 0 || !cur) {
                        json_object_put(cur);
                        json_object_object_del(*target, key);
                        continue;
                }
                if (json_object_object_add(*target, key, cur) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int sim_strategic_merge_patch(json_object *target, json_object *patch, json_object **ret, MrError *err)
{
        json_object *t;
        int r;

        if (!json_object_is_type(patch, json_type_object))
                return mr_error_set(err, -MR_EBADREQUEST, "the strategic merge patch must be a JSON object");
        t = mr_json_copy(target);
        if (!t && target)
                return -ENOMEM;
        r = smp_into(&t, patch, NULL, 0, err);
        if (r < 0) {
                json_object_put(t);
                return r;
        }
        if (!t) /* "$patch":"delete" at the top: an empty document */
                t = json_object_new_object();
        *ret = t;
        return t ? 0 : -ENOMEM;
}

/* ---- RFC 6902 ---- */

/* Decodes one reference token (RFC 6901 §4: ~1 → /, ~0 → ~). Owned. */
static char *pointer_token(const char *s, size_t len)
{
        char *t = malloc(len + 1), *o = t;
        if (!t)
                return NULL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] == '~' && i + 1 < len && (s[i + 1] == '0' || s[i + 1] == '1')) {
                        *o++ = s[i + 1] == '0' ? '~' : '/';
                        i++;
                } else
                        *o++ = s[i];
        }
        *o = 0;
        return t;
}

/* Parses an array index token: digits without leading zeros. -EINVAL otherwise. */
static int array_index(const char *tok, size_t *ret)
{
        size_t v = 0;
        if (!*tok || (tok[0] == '0' && tok[1]))
                return -EINVAL;
        for (const char *p = tok; *p; p++) {
                if (*p < '0' || *p > '9' || v > 100000000)
                        return -EINVAL;
                v = v * 10 + (size_t)(*p - '0');
        }
        *ret = v;
        return 0;
}

/*
 * Resolves path to its parent container (borrowed) and last token (owned).
 * The root path "" gives *parent NULL and *last NULL.
 */
static int resolve(json_object *root, const char *path, json_object **parent, char **last, MrError *err)
{
        json_object *cur = root;
        const char *p = path;

        *parent = NULL;
        *last = NULL;
        if (!*path)
                return 0;
        if (*path != '/')
                return mr_error_set(err, -MR_EBADREQUEST, "invalid JSON pointer: %s", path);
        for (;;) {
                const char *start = p + 1, *end = strchr(start, '/');
                size_t len = end ? (size_t)(end - start) : strlen(start);
                _cleanup_free_ char *tok = pointer_token(start, len);
                if (!tok)
                        return -ENOMEM;
                if (!end) {
                        *parent = cur;
                        *last = TAKE_PTR(tok);
                        return 0;
                }
                if (json_object_is_type(cur, json_type_object)) {
                        if (!json_object_object_get_ex(cur, tok, &cur) || !cur)
                                return mr_error_set(err, -MR_EINVALID, "doc is missing path: \"%s\"", path);
                } else if (json_object_is_type(cur, json_type_array)) {
                        size_t idx;
                        if (array_index(tok, &idx) < 0 || idx >= json_object_array_length(cur))
                                return mr_error_set(err, -MR_EINVALID, "doc is missing path: \"%s\"", path);
                        cur = json_object_array_get_idx(cur, idx);
                } else
                        return mr_error_set(err, -MR_EINVALID, "doc is missing path: \"%s\"", path);
                p = end;
        }
}

static json_object *pointer_get(json_object *root, const char *path, MrError *err, int *r)
{
        json_object *parent, *v = NULL;
        _cleanup_free_ char *last = NULL;

        *r = resolve(root, path, &parent, &last, err);
        if (*r < 0)
                return NULL;
        if (!last)
                return root;
        if (json_object_is_type(parent, json_type_object) && json_object_object_get_ex(parent, last, &v))
                return v; /* NULL for a JSON null that is present */
        if (json_object_is_type(parent, json_type_array)) {
                size_t idx;
                if (array_index(last, &idx) == 0 && idx < json_object_array_length(parent))
                        return json_object_array_get_idx(parent, idx);
        }
        *r = mr_error_set(err, -MR_EINVALID, "doc is missing path: \"%s\"", path);
        return NULL;
}

static int array_insert(json_object *arr, size_t idx, json_object *val)
{
        size_t n = json_object_array_length(arr);
        _cleanup_free_ json_object **tail = calloc(n - idx + 1, sizeof(json_object *));
        if (!tail) {
                json_object_put(val);
                return -ENOMEM;
        }
        for (size_t i = idx; i < n; i++)
                tail[i - idx] = json_object_get(json_object_array_get_idx(arr, i));
        json_object_array_del_idx(arr, idx, n - idx);
        int r = json_object_array_add(arr, val) < 0 ? -ENOMEM : 0;
        for (size_t i = 0; i < n - idx; i++)
                if (json_object_array_add(arr, tail[i]) < 0)
                        r = -ENOMEM;
        return r;
}

/* Adds val (owned) at path in *root. */
static int op_add(json_object **root, const char *path, json_object *val, MrError *err)
{
        json_object *parent;
        _cleanup_free_ char *last = NULL;
        int r = resolve(*root, path, &parent, &last, err);
        if (r < 0) {
                json_object_put(val);
                return r;
        }
        if (!last) {
                json_object_put(*root);
                *root = val;
                return 0;
        }
        if (json_object_is_type(parent, json_type_object))
                return json_object_object_add(parent, last, val) < 0 ? -ENOMEM : 0;
        if (json_object_is_type(parent, json_type_array)) {
                size_t idx, n = json_object_array_length(parent);
                if (streq(last, "-"))
                        idx = n;
                else if (array_index(last, &idx) < 0 || idx > n) {
                        json_object_put(val);
                        return mr_error_set(err, -MR_EINVALID, "add operation does not apply: doc is missing path: \"%s\"", path);
                }
                return array_insert(parent, idx, val);
        }
        json_object_put(val);
        return mr_error_set(err, -MR_EINVALID, "add operation does not apply: doc is missing path: \"%s\"", path);
}

/* Removes the value at path; *ret_removed (optional) receives it (owned). */
static int op_remove(json_object **root, const char *path, json_object **ret_removed, MrError *err)
{
        json_object *parent, *v;
        _cleanup_free_ char *last = NULL;
        int r = resolve(*root, path, &parent, &last, err);
        if (r < 0)
                return r;
        if (!last) {
                if (ret_removed)
                        *ret_removed = TAKE_PTR(*root);
                return 0;
        }
        if (json_object_is_type(parent, json_type_object) && json_object_object_get_ex(parent, last, &v)) {
                if (ret_removed)
                        *ret_removed = json_object_get(v);
                json_object_object_del(parent, last);
                return 0;
        }
        if (json_object_is_type(parent, json_type_array)) {
                size_t idx;
                if (array_index(last, &idx) == 0 && idx < json_object_array_length(parent)) {
                        if (ret_removed)
                                *ret_removed = json_object_get(json_object_array_get_idx(parent, idx));
                        json_object_array_del_idx(parent, idx, 1);
                        return 0;
                }
        }
        return mr_error_set(err, -MR_EINVALID, "remove operation does not apply: doc is missing path: \"%s\"", path);
}

static int apply_op(json_object **root, json_object *op, MrError *err)
{
        const char *name = mr_json_get_str(op, "op", NULL);
        const char *path = mr_json_get_str(op, "path", NULL);
        const char *from = mr_json_get_str(op, "from", NULL);
        json_object *value = NULL;
        bool has_value = json_object_object_get_ex(op, "value", &value);
        int r;

        if (!json_object_is_type(op, json_type_object) || !name || !path)
                return mr_error_set(err, -MR_EBADREQUEST, "invalid JSON patch operation: %s", mr_json_compact(op));
        if (streq(name, "add") || streq(name, "replace")) {
                if (!has_value)
                        return mr_error_set(err, -MR_EBADREQUEST, "%s operation has no value", name);
                if (streq(name, "replace")) {
                        (void)pointer_get(*root, path, err, &r);
                        if (r < 0)
                                return mr_error_set(err, -MR_EINVALID,
                                                    "replace operation does not apply: doc is missing key: %s", path);
                        if (*path && (r = op_remove(root, path, NULL, err)) < 0)
                                return r;
                }
                json_object *c = mr_json_copy(value);
                if (!c && value)
                        return -ENOMEM;
                return op_add(root, path, c, err);
        }
        if (streq(name, "remove"))
                return op_remove(root, path, NULL, err);
        if (streq(name, "test")) {
                json_object *cur = pointer_get(*root, path, err, &r);
                if (r < 0)
                        return r;
                if (!mr_json_equal(cur, value))
                        return mr_error_set(err, -MR_EINVALID, "testing value %s failed: test failed", path);
                return 0;
        }
        if (streq(name, "move") || streq(name, "copy")) {
                json_object *v = NULL;
                if (!from)
                        return mr_error_set(err, -MR_EBADREQUEST, "%s operation has no from", name);
                if (streq(name, "move")) {
                        size_t fl = strlen(from);
                        if (strneq(path, from, fl) && (path[fl] == '/' ) )
                                return mr_error_set(err, -MR_EINVALID, "move operation: from %s is a prefix of path %s", from, path);
                        if ((r = op_remove(root, from, &v, err)) < 0)
                                return r;
                        if (!*root)
                                *root = json_object_new_object();
                } else {
                        json_object *src = pointer_get(*root, from, err, &r);
                        if (r < 0)
                                return r;
                        v = mr_json_copy(src);
                        if (!v && src)
                                return -ENOMEM;
                }
                return op_add(root, path, v, err);
        }
        return mr_error_set(err, -MR_EBADREQUEST, "Unexpected kind: %s", name);
}

int sim_json_patch(json_object *target, json_object *ops, json_object **ret, MrError *err)
{
        _cleanup_(json_object_putp) json_object *t = NULL;

        if (!json_object_is_type(ops, json_type_array))
                return mr_error_set(err, -MR_EBADREQUEST, "json: cannot unmarshal object into Go value of type jsonpatch.Patch");
        t = mr_json_copy(target);
        if (!t && target)
                return -ENOMEM;
        for (size_t i = 0; i < json_object_array_length(ops); i++) {
                int r = apply_op(&t, json_object_array_get_idx(ops, i), err);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(t);
        return 0;
}

int sim_patch_apply(SimPatchType type, json_object *target, const char *patch, size_t size, size_t max_size,
                    json_object **ret, MrError *err)
{
        _cleanup_(json_object_putp) json_object *p = NULL;
        json_object *out = NULL;
        int r;

        r = mr_json_parse(patch, size, max_size, &p);
        if (r == -MR_ETOOBIG)
                return mr_error_set(err, r, "the patch is larger than %zu bytes", max_size);
        if (r < 0)
                return mr_error_set(err, -MR_EBADREQUEST, "error decoding patch: invalid JSON");
        switch (type) {
        case SIM_PATCH_JSON:
                r = sim_json_patch(target, p, &out, err);
                break;
        case SIM_PATCH_MERGE:
                if (!json_object_is_type(p, json_type_object))
                        return mr_error_set(err, -MR_EBADREQUEST, "the merge patch must be a JSON object");
                r = sim_merge_patch(target, p, &out);
                break;
        case SIM_PATCH_STRATEGIC:
                r = sim_strategic_merge_patch(target, p, &out, err);
                break;
        default:
                return mr_error_set(err, -MR_EMEDIATYPE, "unsupported patch type");
        }
        if (r == -ENOMEM)
                return mr_error_set(err, r, "out of memory");
        if (r < 0)
                return r;
        if (!out || !json_object_is_type(out, json_type_object)) {
                json_object_put(out);
                return mr_error_set(err, -MR_EINVALID, "the patched document is not a JSON object");
        }
        *ret = out;
        return 0;
}
