/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lease.c — coordination.k8s.io/v1 Lease helpers; see lease.h.
 *
 * Decoding copies what it keeps, so a KubeLease never borrows from the
 * answer it came from and can outlive it. Encoding starts from a copy of
 * the object as read and overwrites only the fields meshroll models, which
 * is what client-go's LeaseLock.Update does (it PUTs the last fetched Lease
 * with the spec replaced; reference §10.2). Times are always written as
 * MicroTime, whose six fractional digits round-trip exactly.
 *
 * The calls are thin: path building, one kube.h request, decoding of the
 * answer. Retries and rate limiting are the client's; a 409 on PUT is not
 * retried (kube.h never retries 4xx) and comes back as -MR_ECONFLICT.
 */
#include "meshroll/json-util.h"
#include "meshroll/lease.h"

#define LEASE_API_VERSION "coordination.k8s.io/v1"

void kube_lease_done(KubeLease *l)
{
        if (!l)
                return;
        free(l->namespace);
        free(l->name);
        free(l->resource_version);
        free(l->holder_identity);
        json_object_putp(&l->annotations);
        json_object_putp(&l->object);
        *l = (KubeLease){};
}

static int dup_str(const char *s, char **ret)
{
        if (!s) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

/* spec[key] as int32 into *ret (0 when absent or null). */
static int get_int32(json_object *spec, const char *key, int32_t *ret, MrError *err)
{
        int64_t v;
        int r = mr_json_get_int(&v, spec, key, NULL);
        if (r == -ENOENT) {
                *ret = 0;
                return 0;
        }
        if (r < 0 || v < INT32_MIN || v > INT32_MAX)
                return mr_error_set(err, -EBADMSG, "spec.%s: expected a 32-bit integer", key);
        *ret = (int32_t)v;
        return 0;
}

/* spec[key] as a time into *ret (0 when absent or null). */
static int get_time(json_object *spec, const char *key, usec_t *ret, MrError *err)
{
        json_object *v; /* borrowed */
        if (!json_object_object_get_ex(spec, key, &v) || !v) {
                *ret = 0;
                return 0;
        }
        if (!json_object_is_type(v, json_type_string) || kube_time_parse(json_object_get_string(v), ret) < 0)
                return mr_error_set(err, -EBADMSG, "spec.%s: expected an RFC 3339 time", key);
        return 0;
}

int kube_lease_from_json(json_object *o, KubeLease *ret, MrError *err)
{
        _cleanup_(kube_lease_done) KubeLease l = {};
        json_object *spec = NULL, *ann = NULL, *v; /* borrowed from o */
        int r;

        if (!ret)
                return -EINVAL;
        if (!json_object_is_type(o, json_type_object))
                return mr_error_set(err, -EBADMSG, "Lease: expected an object");
        const char *kind = mr_json_get_str(o, "kind", NULL);
        if (kind && !streq(kind, "Lease"))
                return mr_error_set(err, -EBADMSG, "kind: expected Lease, got %s", kind);

        const char *name = mr_json_get_str(o, "metadata", "name", NULL);
        if (isempty(name))
                return mr_error_set(err, -EBADMSG, "metadata.name: expected a non-empty string");
        if (dup_str(name, &l.name) < 0 || dup_str(mr_json_get_str(o, "metadata", "namespace", NULL), &l.namespace) < 0 ||
            dup_str(mr_json_get_str(o, "metadata", "resourceVersion", NULL), &l.resource_version) < 0)
                return mr_error_set(err, -ENOMEM, "out of memory");

        if (json_object_object_get_ex(mr_json_get(o, "metadata", NULL), "annotations", &ann) && ann) {
                if (!json_object_is_type(ann, json_type_object))
                        return mr_error_set(err, -EBADMSG, "metadata.annotations: expected an object");
                json_object_object_foreach(ann, k, av)
                        if (!json_object_is_type(av, json_type_string))
                                return mr_error_set(err, -EBADMSG, "metadata.annotations.%s: expected a string", k);
                l.annotations = mr_json_copy(ann);
                if (!l.annotations)
                        return mr_error_set(err, -ENOMEM, "out of memory");
        }

        if (json_object_object_get_ex(o, "spec", &spec) && spec) {
                if (!json_object_is_type(spec, json_type_object))
                        return mr_error_set(err, -EBADMSG, "spec: expected an object");
                if (json_object_object_get_ex(spec, "holderIdentity", &v) && v) {
                        if (!json_object_is_type(v, json_type_string))
                                return mr_error_set(err, -EBADMSG, "spec.holderIdentity: expected a string");
                        if (dup_str(json_object_get_string(v), &l.holder_identity) < 0)
                                return mr_error_set(err, -ENOMEM, "out of memory");
                }
                if ((r = get_int32(spec, "leaseDurationSeconds", &l.lease_duration_seconds, err)) < 0 ||
                    (r = get_int32(spec, "leaseTransitions", &l.lease_transitions, err)) < 0 ||
                    (r = get_time(spec, "acquireTime", &l.acquire_time, err)) < 0 ||
                    (r = get_time(spec, "renewTime", &l.renew_time, err)) < 0)
                        return r;
        }

        l.object = mr_json_copy(o);
        if (!l.object)
                return mr_error_set(err, -ENOMEM, "out of memory");

        *ret = l;
        l = (KubeLease){};
        return 0;
}

static int set_time(json_object *spec, const char *key, usec_t t)
{
        char buf[KUBE_TIME_MAX];
        if (t == 0) {
                json_object_object_del(spec, key);
                return 0;
        }
        return mr_json_set_str(spec, key, kube_microtime_format(t, buf));
}

/* o[key] as an object, replacing a value of another type (only a hand-made l->object has one). */
static json_object *child_object(json_object *o, const char *key)
{
        json_object *v; /* borrowed */
        if (json_object_object_get_ex(o, key, &v) && !json_object_is_type(v, json_type_object))
                json_object_object_del(o, key);
        return mr_json_ensure_object(o, key, NULL);
}

int kube_lease_to_json(const KubeLease *l, json_object **ret)
{
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *meta, *spec; /* borrowed from o */

        if (!l || !ret || isempty(l->name) || isempty(l->namespace))
                return -EINVAL;

        o = json_object_is_type(l->object, json_type_object) ? mr_json_copy(l->object) : json_object_new_object();
        if (!o)
                return -ENOMEM;
        meta = child_object(o, "metadata");
        spec = child_object(o, "spec");
        if (!meta || !spec)
                return -ENOMEM;

        if (mr_json_set_str(o, "apiVersion", LEASE_API_VERSION) < 0 || mr_json_set_str(o, "kind", "Lease") < 0 ||
            mr_json_set_str(meta, "name", l->name) < 0 || mr_json_set_str(meta, "namespace", l->namespace) < 0)
                return -ENOMEM;
        if (l->resource_version) {
                if (mr_json_set_str(meta, "resourceVersion", l->resource_version) < 0)
                        return -ENOMEM;
        } else
                json_object_object_del(meta, "resourceVersion");
        if (l->annotations) {
                json_object *copy = mr_json_copy(l->annotations);
                if (!copy || json_object_object_add(meta, "annotations", copy) < 0) {
                        json_object_put(copy);
                        return -ENOMEM;
                }
        }

        if (l->holder_identity) {
                if (mr_json_set_str(spec, "holderIdentity", l->holder_identity) < 0)
                        return -ENOMEM;
        } else
                json_object_object_del(spec, "holderIdentity");
        if (l->lease_duration_seconds != 0) {
                if (mr_json_set_int(spec, "leaseDurationSeconds", l->lease_duration_seconds) < 0)
                        return -ENOMEM;
        } else
                json_object_object_del(spec, "leaseDurationSeconds");
        if (set_time(spec, "acquireTime", l->acquire_time) < 0 || set_time(spec, "renewTime", l->renew_time) < 0 ||
            mr_json_set_int(spec, "leaseTransitions", l->lease_transitions) < 0)
                return -ENOMEM;

        *ret = TAKE_PTR(o);
        return 0;
}

/* Decodes a server answer into *l, replacing it. */
static int take_answer(json_object *answer, KubeLease *l)
{
        KubeLease fresh = {};
        int r = kube_lease_from_json(answer, &fresh, NULL);
        if (r < 0)
                return r;
        kube_lease_done(l);
        *l = fresh;
        return 0;
}

int kube_lease_get(KubeClient *c, const char *ns, const char *name, KubeLease *ret, KubeStatus *st)
{
        _cleanup_(json_object_putp) json_object *answer = NULL;
        _cleanup_free_ char *path = NULL;
        KubeLease fresh = {};
        int r;

        if (!c || !ret || isempty(ns) || isempty(name))
                return -EINVAL;
        r = kube_path(&KUBE_LEASES, ns, name, NULL, &path);
        if (r < 0)
                return r;
        r = kube_get(c, path, &answer, st);
        if (r < 0)
                return r;
        r = kube_lease_from_json(answer, &fresh, NULL);
        if (r < 0)
                return r;
        *ret = fresh;
        return 0;
}

int kube_lease_create(KubeClient *c, KubeLease *l, KubeStatus *st)
{
        _cleanup_(json_object_putp) json_object *body = NULL, *answer = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        if (!c || !l)
                return -EINVAL;
        r = kube_lease_to_json(l, &body);
        if (r < 0)
                return r;
        json_object *meta = mr_json_get(body, "metadata", NULL); /* borrowed */
        json_object_object_del(meta, "resourceVersion");
        json_object_object_del(meta, "uid"); /* a copy of a deleted lease must not carry its identity */

        r = kube_path(&KUBE_LEASES, l->namespace, NULL, NULL, &path);
        if (r < 0)
                return r;
        r = kube_create(c, path, body, &answer, st);
        if (r < 0)
                return r;
        return take_answer(answer, l);
}

int kube_lease_update(KubeClient *c, KubeLease *l, KubeStatus *st)
{
        _cleanup_(json_object_putp) json_object *body = NULL, *answer = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        if (!c || !l || isempty(l->resource_version))
                return -EINVAL;
        r = kube_lease_to_json(l, &body);
        if (r < 0)
                return r;
        r = kube_path(&KUBE_LEASES, l->namespace, l->name, NULL, &path);
        if (r < 0)
                return r;
        r = kube_replace(c, path, body, &answer, st);
        if (r < 0)
                return r;
        return take_answer(answer, l);
}
