/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nodes.c — see nodes.h. Each call reads the node, decides from what it
 * finds, and writes one JSON merge patch carrying the resourceVersion it
 * read; a conflict (someone wrote the node in between) is retried from a
 * fresh read a few times.
 */
#include "meshroll/json-util.h"
#include "nodes.h"

#define CONFLICT_RETRIES 5

static int node_path(const char *node, char **ret)
{
        return kube_path(&KUBE_NODES, NULL, node, NULL, ret);
}

/*
 * {"metadata":{"resourceVersion":rv,"annotations":{…}},"spec":{…}}: each
 * annotation is set to its value, deleted (null) when the value is NULL, or
 * left out when its flag is false; unschedulable -1 leaves it, 0 clears it
 * (kubectl uncordon's null), 1 sets it.
 */
static int build_patch(const char *rv, bool set_phase, const char *phase, bool set_by, const char *by,
                       int unschedulable, json_object **ret)
{
        _cleanup_(json_object_putp) json_object *p = json_object_new_object();
        json_object *meta, *ann;

        if (!p || !(meta = mr_json_ensure_object(p, "metadata", NULL)) ||
            !(ann = mr_json_ensure_object(p, "metadata", "annotations", NULL)))
                return -ENOMEM;
        if (mr_json_set_str(meta, "resourceVersion", rv) < 0 ||
            (set_phase && mr_json_set_str(ann, NODE_ANNOTATION_PHASE, phase) < 0) ||
            (set_by && mr_json_set_str(ann, NODE_ANNOTATION_CORDONED_BY, by) < 0))
                return -ENOMEM;
        if (unschedulable >= 0) {
                json_object *spec = mr_json_ensure_object(p, "spec", NULL);
                if (!spec || (unschedulable ? mr_json_set_bool(spec, "unschedulable", true)
                                            : mr_json_set_str(spec, "unschedulable", NULL)) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(p);
        return 0;
}

/* The phase mark is ours when it reads "<rollout>/…". */
static bool phase_is_ours(const char *phase, const char *rollout)
{
        const char *rest = phase ? startswith(phase, rollout) : NULL;
        return rest && *rest == '/';
}

int node_cordon_and_mark(KubeClient *c, const char *node, const char *rollout, const char *phase,
                         bool *ret_operator_cordoned, MrError *err)
{
        _cleanup_free_ char *path = NULL;
        KubeStatus st;
        int r;

        if ((r = node_path(node, &path)) < 0)
                return mr_error_set(err, r, "node %s: %s", node, mr_strerror(r));
        for (unsigned attempt = 0;; attempt++) {
                _cleanup_(json_object_putp) json_object *obj = NULL, *patch = NULL;
                r = kube_get(c, path, &obj, &st);
                if (r < 0)
                        return mr_error_set(err, r, "node %s: %s", node, st.message[0] ? st.message : mr_strerror(r));

                const char *rv = mr_json_get_str(obj, "metadata", "resourceVersion", NULL);
                const char *by = mr_json_get_str(obj, "metadata", "annotations", NODE_ANNOTATION_CORDONED_BY, NULL);
                const char *cur = mr_json_get_str(obj, "metadata", "annotations", NODE_ANNOTATION_PHASE, NULL);
                bool unschedulable = mr_json_get_bool(false, obj, "spec", "unschedulable", NULL);
                bool ours = streq_ptr(by, rollout);
                bool operator = unschedulable && !ours;

                if (unschedulable && streq_ptr(cur, phase)) {
                        *ret_operator_cordoned = operator;
                        return 0; /* already there */
                }
                r = build_patch(rv, true, phase, !operator, rollout, operator ? -1 : 1, &patch);
                if (r < 0)
                        return mr_error_set(err, r, "node %s: %s", node, mr_strerror(r));
                r = kube_patch(c, path, KUBE_PATCH_MERGE, patch, NULL, &st);
                if (r == -MR_ECONFLICT && attempt < CONFLICT_RETRIES)
                        continue;
                if (r < 0)
                        return mr_error_set(err, r, "cordoning node %s: %s", node,
                                            st.message[0] ? st.message : mr_strerror(r));
                *ret_operator_cordoned = operator;
                return 0;
        }
}

int node_cordon(KubeClient *c, const char *node, bool *ret_already, MrError *err)
{
        _cleanup_(json_object_putp) json_object *obj = NULL, *patch = NULL;
        _cleanup_free_ char *path = NULL;
        KubeStatus st;
        int r;

        if ((r = node_path(node, &path)) < 0)
                return mr_error_set(err, r, "node %s: %s", node, mr_strerror(r));
        r = kube_get(c, path, &obj, &st);
        if (r == -ENOENT)
                return mr_error_set(err, r, "node %s not found", node);
        if (r < 0)
                return mr_error_set(err, r, "node %s: %s", node, st.message[0] ? st.message : mr_strerror(r));
        if (mr_json_get_bool(false, obj, "spec", "unschedulable", NULL)) {
                if (ret_already)
                        *ret_already = true;
                return 0;
        }
        /* One field, kubectl's patch: no resourceVersion guard, the last writer of the same value wins. */
        json_object *spec;
        if (!(patch = json_object_new_object()) || !(spec = mr_json_ensure_object(patch, "spec", NULL)) ||
            mr_json_set_bool(spec, "unschedulable", true) < 0)
                return mr_error_set(err, -ENOMEM, "node %s: %s", node, mr_strerror(-ENOMEM));
        r = kube_patch(c, path, KUBE_PATCH_MERGE, patch, NULL, &st);
        if (r < 0)
                return mr_error_set(err, r, "cordoning node %s: %s", node, st.message[0] ? st.message : mr_strerror(r));
        if (ret_already)
                *ret_already = false;
        return 0;
}

int node_uncordon_and_unmark(KubeClient *c, const char *node, const char *rollout, MrError *err)
{
        _cleanup_free_ char *path = NULL;
        KubeStatus st;
        int r;

        if ((r = node_path(node, &path)) < 0)
                return mr_error_set(err, r, "node %s: %s", node, mr_strerror(r));
        for (unsigned attempt = 0;; attempt++) {
                _cleanup_(json_object_putp) json_object *obj = NULL, *patch = NULL;
                r = kube_get(c, path, &obj, &st);
                if (r == -ENOENT)
                        return 0;
                if (r < 0)
                        return mr_error_set(err, r, "node %s: %s", node, st.message[0] ? st.message : mr_strerror(r));

                const char *rv = mr_json_get_str(obj, "metadata", "resourceVersion", NULL);
                const char *by = mr_json_get_str(obj, "metadata", "annotations", NODE_ANNOTATION_CORDONED_BY, NULL);
                const char *cur = mr_json_get_str(obj, "metadata", "annotations", NODE_ANNOTATION_PHASE, NULL);
                bool cordoned_by_us = streq_ptr(by, rollout), marked_by_us = phase_is_ours(cur, rollout);

                /* Another rollout's (or an operator's) cordon and mark are not ours to undo. */
                if (!cordoned_by_us && !marked_by_us)
                        return 0;
                r = build_patch(rv, marked_by_us, NULL, cordoned_by_us, NULL, cordoned_by_us ? 0 : -1, &patch);
                if (r < 0)
                        return mr_error_set(err, r, "node %s: %s", node, mr_strerror(r));
                r = kube_patch(c, path, KUBE_PATCH_MERGE, patch, NULL, &st);
                if (r == -MR_ECONFLICT && attempt < CONFLICT_RETRIES)
                        continue;
                if (r == -ENOENT)
                        return 0;
                if (r < 0)
                        return mr_error_set(err, r, "uncordoning node %s: %s", node,
                                            st.message[0] ? st.message : mr_strerror(r));
                return 0;
        }
}
