/* SPDX-License-Identifier: Apache-2.0 */
/*
 * yaml-json.h — YAML documents as json-c values, the way Kubernetes reads them.
 *
 * kubectl turns YAML into JSON before anything looks at it
 * (sigs.k8s.io/yaml), so meshroll does the same: kubeconfig files, rollout
 * specs and simulator scenarios are parsed here and then read with the
 * json-util.h getters.
 *
 * Plain scalars are typed by the YAML 1.2 core schema: null/Null/NULL/~/empty
 * → null; true/True/TRUE/false/False/FALSE → boolean; decimal, 0o octal and
 * 0x hex integers (and 0644-style octal, which Kubernetes' YAML 1.1 parser
 * honours and manifests' defaultMode relies on) → integer; decimal floats →
 * double. .inf and .nan are rejected: JSON cannot carry them and kubectl
 * fails on them too. yes/no/on/off stay strings, as in go-yaml v3 decoding
 * into an untyped value. Quoted and block scalars are always strings.
 * Mapping keys are the key scalar's text. Tags !!str, !!int, !!float,
 * !!bool, !!null, !!binary (kept as its base64 text) and !!map/!!seq are
 * understood; any other tag is an error.
 *
 * Anchors and aliases work (an alias is a deep copy, so callers may modify
 * the result freely), as do merge keys (<<). What aliases may add is capped
 * (MR_YAML_MAX_ALIAS_COST), so a "billion laughs" document fails quickly
 * instead of exhausting memory. Duplicate keys and non-scalar keys are
 * errors, as are input over MR_YAML_MAX_SIZE and nesting over
 * MR_YAML_MAX_DEPTH.
 */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

#include "meshroll/errors.h"

#define MR_YAML_MAX_SIZE (4u << 20)
#define MR_YAML_MAX_DEPTH 64
/* Aliases may add at most this much: 32 per node plus the bytes of each string copied. */
#define MR_YAML_MAX_ALIAS_COST (8u << 20)

/*
 * Parses a stream holding at most one non-empty document. On success
 * returns 0 and sets *ret to an owned value; an empty stream or a document
 * that is just null gives *ret == NULL (json-c's null). A stream with a
 * second non-empty document is an error (use mr_yaml_parse_all).
 *
 * Errors (*ret untouched, err filled when not NULL):
 *   -MR_EPARSE  malformed YAML or a rule above broken; the message starts
 *               with "line L, column C: " (1-based).
 *   -MR_ETOOBIG size > MR_YAML_MAX_SIZE, or aliases expand beyond the cap.
 *   -ENOMEM
 */
int mr_yaml_parse(const char *data, size_t size, json_object **ret, MrError *err);

/*
 * Parses a multi-document stream ("---" separated) into an owned JSON array
 * with one element per document, in order. Empty and null documents are
 * skipped, as kubectl skips them, so the array may be empty. Same errors.
 */
int mr_yaml_parse_all(const char *data, size_t size, json_object **ret, MrError *err);
