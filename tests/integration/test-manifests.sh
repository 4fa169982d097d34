#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# manifests/ against the real kubectl and meshroll-kubesim:
#   - static: no Role or ClusterRole anywhere in manifests/ grants "*" (verbs, resources,
#     apiGroups, resourceNames, nonResourceURLs), secrets, RBAC objects, tokens, exec/proxy
#     subresources or the escalate/bind/impersonate verbs, and the agent writes only Leases;
#     both workloads run non-root with no capabilities, no privilege escalation, a read-only
#     root filesystem and no host namespaces; the kustomize base builds and holds the CRD
#     and the coordinator's objects;
#   - for each kubectl (MESHROLL_KUBECTL, and MESHROLL_KUBECTL_LEGACY when set), against a
#     fresh simulator with SCENARIO and a fresh discovery cache: apply the Rollout CRD, apply
#     the sample Rollout (twice: the second is "unchanged"), `get rollouts` prints the printer
#     columns NAME PHASE GROUP DONE TOTAL AGE, the short name (mro) and the category
#     (meshroll) resolve, -o wide adds REASON and MESSAGE, and status written through the
#     status subresource shows in the columns; the coordinator's Deployment and PDB apply.
#
# The simulator serves no OpenAPI (docs/simulator.md), so create/apply run with
# --validate=false, as kubectl.sh does; a real API server validates against the CRD schema.
#
# Usage: test-manifests.sh KUBESIM SCENARIO     (env: MESHROLL_KUBECTL, MESHROLL_KUBECTL_LEGACY,
#        MESHROLL_SOURCE_ROOT). Exit 77 (skipped) only when there is no kubectl at all.
set -uo pipefail

KUBESIM=${1:?usage: test-manifests.sh KUBESIM SCENARIO}
SCENARIO=${2:?usage: test-manifests.sh KUBESIM SCENARIO}
SOURCE_ROOT=${MESHROLL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
MANIFESTS=$SOURCE_ROOT/manifests

KUBECTLS=()
for bin in "${MESHROLL_KUBECTL:-}" "${MESHROLL_KUBECTL_LEGACY:-}"; do
        [ -n "$bin" ] && [ -x "$bin" ] && KUBECTLS+=("$bin")
done
if [ ${#KUBECTLS[@]} -eq 0 ] && command -v kubectl >/dev/null 2>&1; then
        KUBECTLS+=("$(command -v kubectl)")
fi
if [ ${#KUBECTLS[@]} -eq 0 ]; then
        echo "SKIP: no kubectl (MESHROLL_KUBECTL='${MESHROLL_KUBECTL:-}', none in PATH)"
        exit 77
fi
[ -z "${MESHROLL_KUBECTL_LEGACY:-}" ] && echo "note: MESHROLL_KUBECTL_LEGACY not set; testing one kubectl"

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
CURRENT=static

# ---- static checks -------------------------------------------------------------------------

# wildcard_rules FILE…: prints FILE:LINE: TEXT for every "*" scalar inside a Role or
# ClusterRole document. Comments are dropped first; in a role, rules are the only place a
# bare or quoted "*" can appear, in flow ([*], ["*"]) or block (- "*") style.
wildcard_rules() {
        awk '
                FNR == 1 { flush() }
                /^---/ { flush(); next }
                {
                        line = $0
                        sub(/[[:space:]]+#.*$/, "", line); sub(/^[[:space:]]*#.*$/, "", line)
                        if (line ~ /^kind:[[:space:]]*[A-Za-z]+/) {
                                k = line; sub(/^kind:[[:space:]]*/, "", k); sub(/[[:space:]]*$/, "", k); kind = k
                        }
                        buf[++n] = FILENAME ":" FNR ": " line
                        star[n] = (line ~ /(^|[[:space:],:[-])["'\'']?[*]["'\'']?([],[:space:]]|$)/)
                }
                function flush(   i) {
                        if (kind == "Role" || kind == "ClusterRole")
                                for (i = 1; i <= n; i++) if (star[i]) print buf[i]
                        kind = ""; n = 0
                }
                END { flush() }
        ' "$@"
}

# The checker must catch every spelling, or a clean result means nothing.
cat >"$WORK/bad.yaml" <<'YAML'
kind: ClusterRole
rules:
  - apiGroups: ["*"]
    resources: [pods]
  - apiGroups: [""]
    resources:
      - '*'
  - verbs: [get, *]
  - verbs:
      - *
---
kind: ConfigMap   # not a role: a "*" here is data
data: {pattern: "*"}
YAML
[ "$(wildcard_rules "$WORK/bad.yaml" | wc -l)" -eq 4 ] ||
        fail "the wildcard checker missed a spelling: $(wildcard_rules "$WORK/bad.yaml")"

mapfile -t yamls < <(find "$MANIFESTS" -name '*.yaml' -o -name '*.yml' | sort)
[ ${#yamls[@]} -gt 0 ] || fail "no manifests under $MANIFESTS"
hits=$(wildcard_rules "${yamls[@]}")
[ -z "$hits" ] || fail "wildcards in RBAC rules:"$'\n'"$hits"
roles=$(grep -lE '^kind: *(Cluster)?Role$' "${yamls[@]}" | wc -l)
[ "$roles" -ge 2 ] || fail "expected the agent's and the coordinator's roles, found roles in $roles file(s)"

# role_rules FILE…: "FILE:LINE: resources=[…] verbs=[…]" for every rule of every Role and
# ClusterRole (comments dropped; flow-style lists, as manifests/ writes them).
role_rules() {
        awk '
                FNR == 1 { flush() }
                /^---/ { flush(); next }
                {
                        line = $0
                        sub(/[[:space:]]+#.*$/, "", line); sub(/^[[:space:]]*#.*$/, "", line)
                        if (line ~ /^kind:[[:space:]]*[A-Za-z]+/) {
                                k = line; sub(/^kind:[[:space:]]*/, "", k); sub(/[[:space:]]*$/, "", k); kind = k
                        }
                        if (line ~ /^[[:space:]]*-[[:space:]]*apiGroups:/) { emit(); start = FILENAME ":" FNR; res = ""; verbs = "" }
                        if (line ~ /^[[:space:]]*(-[[:space:]]*)?resources:/) { res = line; sub(/^[^:]*:[[:space:]]*/, "", res) }
                        if (line ~ /^[[:space:]]*(-[[:space:]]*)?verbs:/) { verbs = line; sub(/^[^:]*:[[:space:]]*/, "", verbs) }
                }
                function emit() {
                        if ((kind == "Role" || kind == "ClusterRole") && start != "")
                                print start ": resources=" res " verbs=" verbs
                        start = ""
                }
                function flush() { emit(); kind = "" }
                END { flush() }
        ' "$@"
}

# Least privilege beyond wildcards: no rule may read secrets, touch RBAC or service-account
# tokens, exec into or proxy to pods and nodes, or use the escalate/bind/impersonate verbs;
# the agent writes nothing but Leases. The checker is tried on a bad role first.
FORBIDDEN_RES='"(secrets|roles|clusterroles|rolebindings|clusterrolebindings|serviceaccounts/token|pods/exec|pods/attach|pods/portforward|pods/proxy|nodes/proxy|services/proxy|certificatesigningrequests[^"]*)"'
FORBIDDEN_VERBS='"(escalate|bind|impersonate)"'
WRITE_VERBS='"(create|update|patch|delete|deletecollection)"'
cat >"$WORK/bad-role.yaml" <<'YAML'
kind: ClusterRole
rules:
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get"]
  - apiGroups: ["rbac.authorization.k8s.io"]
    resources: ["clusterroles"]
    verbs: ["escalate", "bind"]
  - apiGroups: [""]
    resources: ["pods/exec"]   # a comment with "secrets" does not count
    verbs: ["create"]
YAML
[ "$(role_rules "$WORK/bad-role.yaml" | grep -cE "resources=.*$FORBIDDEN_RES|verbs=.*$FORBIDDEN_VERBS")" -eq 3 ] ||
        fail "the rule checker missed a forbidden rule: $(role_rules "$WORK/bad-role.yaml")"
rules=$(role_rules "${yamls[@]}")
[ "$(grep -c . <<<"$rules")" -ge 10 ] || fail "found only these RBAC rules: $rules"
# A rule the checker cannot read (block-style lists, nonResourceURLs) must not pass unread.
unread=$(grep -vE 'resources=\[[^]]+\] verbs=\[[^]]+\]$' <<<"$rules")
[ -z "$unread" ] || fail "RBAC rules not in the flow style the checker reads ([a, b]):"$'\n'"$unread"
hits=$(grep -E "resources=.*$FORBIDDEN_RES|verbs=.*$FORBIDDEN_VERBS" <<<"$rules")
[ -z "$hits" ] || fail "RBAC rules grant what meshroll never needs:"$'\n'"$hits"
agent_writes=$(grep '/agent/' <<<"$rules" | grep -E "verbs=.*$WRITE_VERBS" | grep -vE 'resources=\["leases"\]')
[ -z "$agent_writes" ] || fail "the agent may write more than its Lease:"$'\n'"$agent_writes"

# Both workloads run as non-root, without privilege escalation, with every capability dropped
# and none added, on a read-only root filesystem, in none of the host's namespaces; the agent's
# only host mount, /proc, is read-only.
for w in "$MANIFESTS/agent/daemonset.yaml" "$MANIFESTS/coordinator/deployment.yaml"; do
        body=$(sed -e 's/[[:space:]]*#.*$//' "$w")
        for want in 'runAsNonRoot: true' 'allowPrivilegeEscalation: false' 'readOnlyRootFilesystem: true' \
                'drop: \["ALL"\]' 'type: RuntimeDefault'; do
                grep -qE "$want" <<<"$body" || fail "$w: no '$want'"
        done
        for bad in 'privileged: true' 'hostPID: true' 'hostIPC: true' 'hostNetwork: true' 'runAsUser: 0$' \
                '^[[:space:]]*add:' 'allowPrivilegeEscalation: true'; do
                ! grep -qE "$bad" <<<"$body" || fail "$w: '$bad'"
        done
done
grep -A2 'mountPath: /host/proc' "$MANIFESTS/agent/daemonset.yaml" | grep -q 'readOnly: true' ||
        fail "the agent's /host/proc mount is not read-only"
[ "$(grep -c 'hostPath:' "$MANIFESTS/agent/daemonset.yaml")" -eq 1 ] ||
        fail "the agent mounts more of the host than /proc"

# The kustomize base builds (offline) and holds what it should. kubectl 1.20's bundled
# kustomize is too old for the base's layout; the first kubectl listed is the current one.
if out=$("${KUBECTLS[0]}" kustomize "$MANIFESTS" 2>&1); then
        for want in 'kind: CustomResourceDefinition' 'name: rollouts.meshroll.io' 'kind: Deployment' \
                'name: meshroll-coordinator' 'kind: PodDisruptionBudget' 'kind: DaemonSet'; do
                grep -q "$want" <<<"$out" || fail "kubectl kustomize manifests/: no '$want'"
        done
else
        fail "kubectl kustomize manifests/: $out"
fi
[ "$FAILED" -eq 0 ] && echo "ok   static"

# ---- against the simulator -----------------------------------------------------------------

# Writes the Rollout's status through the status subresource: kubectl patch --subresource
# (1.24+), else a PUT with curl. Returns 2 when neither is available.
write_status() {
        local status='{"phase":"Progressing","reason":"GroupStarted","message":"group zone-a: draining","currentGroup":"zone-a","groupsDone":1,"groupsTotal":3}'
        if "$KUBECTL" patch --help 2>/dev/null | grep -q -- '--subresource'; then
                k patch rollout ztunnel-1-25 --subresource=status --type=merge -p "{\"status\":$status}" >/dev/null
        elif command -v curl >/dev/null 2>&1; then
                local obj
                obj=$(k get rollout ztunnel-1-25 -o json) || return 1
                obj=$(sed -e '$ s/}[[:space:]]*$//' <<<"$obj")
                curl -sf -X PUT -H 'Content-Type: application/json' --data-binary "$obj, \"status\": $status}" \
                        "$URL/apis/meshroll.io/v1alpha1/rollouts/ztunnel-1-25/status" >/dev/null
        else
                return 2
        fi
}

run_kubectl() {
        start_sim
        CURRENT="$VERSION crd"
        expect "apply --validate=false -f $MANIFESTS/crd-rollout.yaml" \
                'customresourcedefinition.apiextensions.k8s.io/rollouts.meshroll.io (created|configured)' &&
                expect "get crd rollouts.meshroll.io -o jsonpath={.spec.scope}" '^Cluster$' &&
                echo "ok   $CURRENT"

        CURRENT="$VERSION sample"
        expect "apply --validate=false -f $MANIFESTS/samples/rollout.yaml" '^rollout.meshroll.io/ztunnel-1-25 created$' &&
                expect "apply --validate=false -f $MANIFESTS/samples/rollout.yaml" '^rollout.meshroll.io/ztunnel-1-25 unchanged$' &&
                expect "get rollout ztunnel-1-25 -o jsonpath={.spec.connectionGate.onTimeout}" '^pause$' &&
                echo "ok   $CURRENT"

        CURRENT="$VERSION columns"
        expect "get rollouts" '^NAME +PHASE +GROUP +DONE +TOTAL +AGE$' '^ztunnel-1-25 +[0-9smhd]+$' &&
                expect "get mro" '^NAME +PHASE +GROUP +DONE +TOTAL +AGE$' '^ztunnel-1-25 ' &&
                expect "get meshroll" '^NAME +PHASE +GROUP +DONE +TOTAL +AGE$' '^ztunnel-1-25 ' &&
                expect "get rollouts.meshroll.io -o wide" '^NAME +PHASE +GROUP +DONE +TOTAL +AGE +REASON +MESSAGE$' &&
                expect "get mro -o name" '^rollout.meshroll.io/ztunnel-1-25$' &&
                echo "ok   $CURRENT"

        CURRENT="$VERSION status"
        write_status
        case $? in
        0)
                expect "get rollouts" '^ztunnel-1-25 +Progressing +zone-a +1 +3 +[0-9smhd]+$' &&
                        expect "get mro -o wide" '^ztunnel-1-25 +Progressing +zone-a +1 +3 +[0-9smhd]+ +GroupStarted +group zone-a: draining$' &&
                        echo "ok   $CURRENT"
                ;;
        2) echo "skip $CURRENT: neither kubectl patch --subresource nor curl" ;;
        *) fail "could not write the status" ;;
        esac

        CURRENT="$VERSION coordinator"
        expect "apply --validate=false -f $MANIFESTS/namespace.yaml" '^namespace/meshroll (created|unchanged)' &&
                expect "apply --validate=false -f $MANIFESTS/coordinator/deployment.yaml" \
                        '^deployment.apps/meshroll-coordinator created$' \
                        '^poddisruptionbudget.policy/meshroll-coordinator created$' &&
                expect "-n meshroll get deployment meshroll-coordinator -o jsonpath={.spec.replicas}" '^2$' &&
                expect "-n meshroll get pdb meshroll-coordinator -o jsonpath={.spec.maxUnavailable}" '^1$' &&
                echo "ok   $CURRENT"
        stop_sim
}

for KUBECTL in "${KUBECTLS[@]}"; do
        VERSION=$("$KUBECTL" version --client -o json 2>/dev/null | grep -oE '"gitVersion": *"[^"]+"' | head -n1 |
                grep -oE 'v[0-9]+\.[0-9]+' || echo unknown)
        echo "== kubectl $VERSION ($KUBECTL)"
        run_kubectl
done

if [ "$FAILED" -gt 0 ]; then
        echo "$FAILED check(s) failed"
        exit 1
fi
echo "all manifest checks passed"
