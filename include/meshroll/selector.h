/* SPDX-License-Identifier: Apache-2.0 */
/*
 * selector.h — Kubernetes label and field selectors.
 *
 * Label selectors in both of their forms:
 *   - the string syntax of ?labelSelector= and kubectl -l
 *     ("app=web,tier!=db,env in (a,b),!legacy,zone"): =, ==, !=, in,
 *     notin, exists (bare key), does-not-exist (!key);
 *   - the metav1.LabelSelector object of workload specs
 *     ({"matchLabels":{…},"matchExpressions":[{"key","operator","values"}]}),
 *     operators In, NotIn, Exists, DoesNotExist.
 * Requirements are ANDed. An empty selector matches everything; note that a
 * Deployment/PDB's *null* selector matches nothing — the caller decides
 * which it has (mr_selector_from_json(NULL) is an error, not "everything").
 * Keys and values are validated as the API server does (qualified names,
 * 63-character values), and errors name the offending term.
 *
 * Field selectors ("spec.nodeName=n1,status.phase!=Succeeded"): terms
 * key=value, key==value, key!=value, ANDed; which keys exist depends on the
 * resource, so matching asks the caller for each field's value.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "meshroll/errors.h"

/* Caps on input from outside: bytes of a selector string; terms of a selector and values of a set. */
#define MR_SELECTOR_MAX_LENGTH (256u << 10)
#define MR_SELECTOR_MAX_TERMS 4096u

typedef struct MrSelector MrSelector;

/*
 * Parses the string syntax; NULL, "" or only whitespace is the empty
 * selector. Also accepts apimachinery's "k>n"/"k<n" (integer comparison).
 * Errors: -MR_EPARSE with a message naming the selector and the problem
 * (the server's "found ',', expected: identifier after ','" style),
 * -MR_ETOOBIG beyond MR_SELECTOR_MAX_LENGTH/MR_SELECTOR_MAX_TERMS, -ENOMEM.
 * *ret is owned (mr_selector_free) and untouched on failure.
 */
int mr_selector_parse(const char *s, MrSelector **ret, MrError *err);
/*
 * Parses a metav1.LabelSelector object (borrowed). -MR_EPARSE naming the
 * field on error ("matchExpressions[1].values: must be specified when
 * `operator` is 'In' or 'NotIn'"); NULL → -EINVAL; -MR_ETOOBIG, -ENOMEM.
 * Unknown fields are ignored; null matchLabels/matchExpressions are absent.
 */
int mr_selector_from_json(json_object *label_selector, MrSelector **ret, MrError *err);
/*
 * labels: the metadata.labels object (borrowed), or NULL for none. != and
 * notin match objects without the key. A NULL selector matches nothing.
 */
bool mr_selector_matches(const MrSelector *s, json_object *labels);
bool mr_selector_is_empty(const MrSelector *s);
/*
 * Canonical string form (sorted by key, value sets sorted, as kubectl
 * prints it: "app=web,env in (a,b),!legacy"); "" for the empty selector.
 * Parsing it again gives an equal selector. Owned; NULL on ENOMEM.
 */
char *mr_selector_to_string(const MrSelector *s);
MrSelector *mr_selector_free(MrSelector *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(MrSelector *, mr_selector_free);

typedef struct MrFieldSelector MrFieldSelector;

/*
 * Parses "a=b,c!=d"; NULL or "" is the empty selector; empty terms are
 * ignored; values unescape \\ \, \=. -MR_EPARSE on error (the server's
 * "invalid selector: '…'; can't understand '…'"), -MR_ETOOBIG, -ENOMEM.
 */
int mr_field_selector_parse(const char *s, MrFieldSelector **ret, MrError *err);
/*
 * Returns the value of a field of obj, or NULL when the field is not
 * supported for this resource (matching then fails with -MR_EBADREQUEST).
 * A supported but absent field yields "". mr_field_selector_validate calls
 * it with obj NULL: it must still answer non-NULL for supported fields.
 */
typedef const char *(*mr_field_getter_t)(json_object *obj, const char *field, void *userdata);
/*
 * 1 when obj matches, 0 when not, -MR_EBADREQUEST (with err naming the
 * field, as the server's "field label not supported: x") when a term names
 * a field the getter does not know.
 */
int mr_field_selector_matches(const MrFieldSelector *s, json_object *obj, mr_field_getter_t get, void *userdata,
                              MrError *err);
/* Checks every term's field against the getter without an object: the server rejects up front. */
int mr_field_selector_validate(const MrFieldSelector *s, mr_field_getter_t get, void *userdata, MrError *err);
/* The value an equality term requires for field, or NULL (lets a store use an index, e.g. spec.nodeName). */
const char *mr_field_selector_required(const MrFieldSelector *s, const char *field);
MrFieldSelector *mr_field_selector_free(MrFieldSelector *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(MrFieldSelector *, mr_field_selector_free);
