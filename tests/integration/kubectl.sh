#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The real kubectl (1.32 and the Debian 1.20) against meshroll-kubesim.
#
# For each kubectl version a fresh simulator is started on a loopback port
# with sim/scenarios/small.yaml, and every case below runs against it with
# `kubectl --server URL --cache-dir <fresh dir>`. A case is one function
# named case_<name> that uses `k` (the kubectl under test), `expect` (a
# command that must succeed, with grep patterns its output must contain)
# and `fail`; to add one, write the function and add its name to CASES.
#
# Exit 77 (skipped) only when a kubectl is missing.
set -uo pipefail

SOURCE_ROOT=${MESHROLL_SOURCE_ROOT:?}
KUBESIM=${MESHROLL_KUBESIM:?}
SCENARIO=${MESHROLL_SCENARIO:-$SOURCE_ROOT/sim/scenarios/small.yaml}

CASES=(
        get_nodes
        get_pods
        get_namespaces
        get_leases
        get_events
        get_daemonsets
        get_deployments
        label_namespace
        cordon_uncordon
)

KUBECTLS=()
for var in MESHROLL_KUBECTL MESHROLL_KUBECTL_LEGACY; do
        bin=${!var:-}
        if [ -z "$bin" ] || [ ! -x "$bin" ]; then
                echo "SKIP: $var is not an executable kubectl ('${bin}'); both kubectl 1.32 and 1.20 are needed"
                exit 77
        fi
        KUBECTLS+=("$bin")
done

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# The simulator, then its workloads Ready (20× speed: a few simulated seconds).
start_sim_ready() {
        start_sim
        for _ in $(seq 100); do
                k get deploy web -n shop -o 'jsonpath={.status.readyReplicas}' 2>/dev/null | grep -q '^3$' && break
                sleep 0.1
        done
}

# ---- cases ----

case_get_nodes() {
        expect "get nodes" '^NAME +STATUS +ROLES +AGE +VERSION$' '^a-1 +Ready +worker +[0-9]+s +v1\.' '^b-1 +Ready'
        expect "get nodes -o wide" 'INTERNAL-IP +EXTERNAL-IP +OS-IMAGE +KERNEL-VERSION +CONTAINER-RUNTIME' \
                '^a-2 +Ready .* 10\.[0-9.]+ +<none> +Debian'
        expect "get nodes -o json" '"kind": "List"' '"kind": "Node"' '"name": "a-1"'
        expect "get node b-1 -o jsonpath={.metadata.name}" '^b-1$'
        expect "get no" '^a-1 '
}

case_get_pods() {
        expect "get pods -n shop" '^NAME +READY +STATUS +RESTARTS +AGE$' '^web-[a-z0-9]+-[a-z0-9]{5} +1/1 +Running +0 '
        expect "get pods -A -o wide" '^NAMESPACE +NAME +READY +STATUS +RESTARTS +AGE +IP +NODE +NOMINATED NODE +READINESS GATES$' \
                '^istio-system +ztunnel-[a-z0-9]{5} +1/1 +Running .* 10\.244\.[0-9.]+ +(a|b)-[12] +<none> +<none>$'
        expect "get pods -n shop -o json" '"kind": "Pod"' '"nodeName": "(a|b)-[12]"' '"phase": "Running"'
        expect "get po -n shop -l app=web -o name" '^pod/web-'
        expect "get pods -A --field-selector spec.nodeName=b-1 -o name" '^pod/ztunnel-'
}

case_get_namespaces() {
        expect "get namespaces" '^NAME +STATUS +AGE$' '^shop +Active ' '^istio-system +Active '
        expect "get ns shop -o json" '"kubernetes.io/metadata.name": "shop"'
}

case_get_leases() {
        cat >"$WORK/lease.json" <<'JSON'
{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"meshroll-test","namespace":"default"},
 "spec":{"holderIdentity":"tester","leaseDurationSeconds":15}}
JSON
        expect "create --validate=false -f $WORK/lease.json" 'lease.coordination.k8s.io/meshroll-test created'
        expect "get leases -A" '^NAMESPACE +NAME +HOLDER +AGE$' '^default +meshroll-test +tester '
        expect "get lease meshroll-test -o json" '"holderIdentity": "tester"'
}

case_get_events() {
        # Whatever the controllers recorded: the command works and prints a table or "No resources found".
        expect "get events -A" '(LAST SEEN|No resources found)'
        expect "get events -n shop -o json" '"kind": "List"'
}

case_get_daemonsets() {
        expect "get daemonsets -n istio-system" \
                '^NAME +DESIRED +CURRENT +READY +UP-TO-DATE +AVAILABLE +NODE SELECTOR +AGE$' '^ztunnel +3 +3 +3 +[0-9]+ +3 '
        expect "get ds -A -o wide" 'CONTAINERS +IMAGES +SELECTOR'
        expect "get ds ztunnel -n istio-system -o json" '"kind": "DaemonSet"' '"observedGeneration"'
}

case_get_deployments() {
        expect "get deployments -n shop" '^NAME +READY +UP-TO-DATE +AVAILABLE +AGE$' '^web +3/3 +3 +3 '
        expect "get deploy -A" '^legacy +api +2/2 '
        expect "get deployment web -n shop -o json" '"kind": "Deployment"' '"replicas": 3'
}

case_label_namespace() {
        expect "label namespace shop team=a" '^namespace/shop labeled$'
        expect "get ns shop -o jsonpath={.metadata.labels.team}" '^a$'
        expect_fail "label namespace shop team=b" "'team' already has a value \(a\), and --overwrite is false"
        expect "label namespace shop team=b --overwrite" '^namespace/shop labeled$'
        expect "get ns shop -o jsonpath={.metadata.labels.team}" '^b$'
        expect "label namespace shop team-" '^namespace/shop (un)?labeled$'
        expect "get ns shop --show-labels" 'kubernetes.io/metadata.name=shop'
        if grep -q 'team=' <<<"$LAST"; then fail "label team- left the label: $LAST"; fi
        grep -q '"actor":"kubectl/' "$WORK/audit-$VERSION.jsonl" || fail "the audit log has no kubectl write"
}

case_cordon_uncordon() {
        expect "cordon a-1" '^node/a-1 cordoned$'
        expect "get node a-1 -o jsonpath={.spec.unschedulable}" '^true$'
        expect "get nodes" '^a-1 +Ready,SchedulingDisabled '
        expect "cordon a-1" '^node/a-1 already cordoned$'
        expect "uncordon a-1" '^node/a-1 uncordoned$'
        expect "get node a-1 -o json" '"name": "a-1"'
        if grep -q '"unschedulable"' <<<"$LAST"; then fail "uncordon left spec.unschedulable: $LAST"; fi
        expect "get nodes" '^a-1 +Ready +worker '
}

# ---- driver ----

for KUBECTL in "${KUBECTLS[@]}"; do
        VERSION=$("$KUBECTL" version --client -o json 2>/dev/null | grep -oE '"gitVersion": *"[^"]+"' | head -n1 |
                grep -oE 'v[0-9]+\.[0-9]+' || echo unknown)
        echo "== kubectl $VERSION ($KUBECTL)"
        start_sim_ready
        for c in "${CASES[@]}"; do
                CURRENT="$VERSION $c"
                if "case_$c"; then echo "ok   $CURRENT"; fi
        done
        stop_sim
done

if [ "$FAILED" -gt 0 ]; then
        echo "$FAILED check(s) failed"
        exit 1
fi
echo "all kubectl checks passed"
