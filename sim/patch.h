/* SPDX-License-Identifier: Apache-2.0 */
/*
 * patch.h — the three PATCH flavours the API server accepts
 * (reference/kubernetes-api.md §6.2):
 *
 *   application/json-patch+json             RFC 6902 operations
 *   application/merge-patch+json            RFC 7386 merge patch
 *   application/strategic-merge-patch+json  Kubernetes strategic merge patch
 *
 * Server-side apply (application/apply-patch+yaml) is not implemented: the
 * content-type mapping reports it as unsupported (415), as for any other.
 */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

#include "meshroll/errors.h"

typedef enum SimPatchType {
        SIM_PATCH_JSON,
        SIM_PATCH_MERGE,
        SIM_PATCH_STRATEGIC,
} SimPatchType;

/* Maps a Content-Type (parameters ignored) to a patch type; -MR_EMEDIATYPE when unsupported. */
int sim_patch_type_from_content_type(const char *content_type);

/*
 * Applies patch (size bytes of JSON, at most max_size) to target (borrowed,
 * not modified) and returns the patched document in *ret (owned).
 * Errors, with err naming the problem as the real server's message does:
 * -MR_EBADREQUEST when the patch is not valid JSON of the right shape,
 * -MR_ETOOBIG past max_size, -MR_EINVALID when a well-formed patch cannot be
 * applied (a JSON-patch path that does not exist, a failed "test"),
 * -ENOMEM.
 */
int sim_patch_apply(SimPatchType type, json_object *target, const char *patch, size_t size, size_t max_size,
                    json_object **ret, MrError *err);

/* The same on already-parsed patches (borrowed). */
int sim_merge_patch(json_object *target, json_object *patch, json_object **ret);
int sim_strategic_merge_patch(json_object *target, json_object *patch, json_object **ret, MrError *err);
int sim_json_patch(json_object *target, json_object *ops, json_object **ret, MrError *err);
