#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `meshroll preflight` against meshroll-kubesim:
#   - sim/scenarios/broken-preflight.yaml: every check reports its finding (the objects the scenario
#     breaks on purpose), in the table and in -o json, and the exit code is 1;
#   - sim/scenarios/small.yaml with an agent Lease per node: no errors, exit 0;
#   - a Rollout file: its connectionGate (onTimeout proceed) turns missing agents into warnings, its
#     spec.preflight.skip and --skip leave checks out;
#   - bad input exits 2 naming what was wrong;
#   - `meshroll run` of a Rollout there: the engine pauses it before its first step (PreflightFailed,
#     the first errors in the message, one Event per error) and cordons nothing (needs kubectl).
# The simulated cluster settles in a few seconds (istiod, PDB status): each run is retried, bounded.
# Usage: test-preflight.sh KUBESIM MESHROLL SCENARIO_DIR
set -euo pipefail

kubesim=$1
meshroll=$2
scenarios=$3
work=$(mktemp -d)
sim_pid=
failed=0
cleanup() {
        [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
        rm -rf "$work"
}
trap cleanup EXIT

fail() {
        echo "FAIL: $*"
        failed=$((failed + 1))
}

start_sim() {
        [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
        : >"$work/url"
        "$kubesim" --scenario "$1" --speed 20 >"$work/url" 2>"$work/sim.log" &
        sim_pid=$!
        for _ in $(seq 100); do [ -s "$work/url" ] && break; sleep 0.1; done
        url=$(head -n1 "$work/url")
        [ -n "$url" ] || { cat "$work/sim.log"; echo "kubesim did not start"; exit 1; }
}

# preflight ARGS…: runs meshroll preflight against the simulator; output in $out, exit code in $rc.
preflight() {
        rc=0
        out=$("$meshroll" preflight --server "$url" "$@" 2>&1) || rc=$?
}

# ---- the broken cluster --------------------------------------------------------------------------

start_sim "$scenarios/broken-preflight.yaml"
checks="injection-labels namespace-revision tag-revision webhook-overlap target-revision version-skew
        ztunnel-strategy agents pdb-impossible pdb-blocking single-replica rolling-update readiness-probe"
# Until every check has reported (the PDB's status and the never-Ready pods take a moment).
for _ in $(seq 60); do
        preflight -o json
        missing=0
        for c in $checks; do
                jq -e --arg c "$c" '[.findings[] | select(.check == $c)] | length > 0' <<<"$out" >/dev/null || missing=1
        done
        [ "$missing" = 0 ] && break
        sleep 0.5
done
[ "$rc" = 1 ] || fail "broken cluster: exit $rc, expected 1"
expected=(
        "error injection-labels Namespace//both"
        "error injection-labels Namespace//ambient-rev"
        "error namespace-revision Namespace//lost"
        "error tag-revision MutatingWebhookConfiguration//istio-revision-tag-old"
        "error webhook-overlap MutatingWebhookConfiguration//istio-revision-tag-old"
        "error webhook-overlap MutatingWebhookConfiguration//istio-sidecar-injector-1-24-0-copy"
        "error target-revision Deployment/istio-system/istiod-1-25-0"
        "error version-skew DaemonSet/istio-system/ztunnel"
        "error ztunnel-strategy DaemonSet/istio-system/ztunnel"
        "error agents Node//w-1"
        "error pdb-impossible PodDisruptionBudget/shop/ledger"
        "error pdb-blocking PodDisruptionBudget/shop/flaky"
        "error single-replica Deployment/legacy/solo"
        "error rolling-update Deployment/legacy/batch"
        "error readiness-probe Deployment/legacy/noprobe"
)
got=$(jq -r '.findings[] | "\(.severity) \(.check) \(.object.kind)/\(.object.namespace // "")/\(.object.name)"' <<<"$out")
for e in "${expected[@]}"; do
        grep -qxF -- "$e" <<<"$got" || fail "broken cluster: no finding \"$e\"; got:"$'\n'"$got"
done
# Missing agents: w-2 and w-3 in one finding, named in its message.
jq -e '[.findings[] | select(.check == "agents" and (.message | test("2 of 3 .*no agent report")))] | length == 1' \
        <<<"$out" >/dev/null || fail "broken cluster: the missing agents are not reported as one finding"
jq -e '.findings | all(.why != "" and .fix != "" and .message != "")' <<<"$out" >/dev/null ||
        fail "broken cluster: a finding lacks why, fix or message"
jq -e '.summary.errors == (.findings | map(select(.severity == "error")) | length) and .summary.checks == 13' \
        <<<"$out" >/dev/null || fail "broken cluster: the summary does not count the findings"

preflight
[ "$rc" = 1 ] || fail "broken cluster (table): exit $rc, expected 1"
grep -qE '^SEVERITY +CHECK +OBJECT +MESSAGE$' <<<"$out" || fail "table: no header line: $out"
for c in $checks; do
        grep -qE "^error +$c +" <<<"$out" || fail "table: no row for $c"
done
grep -qE '^13 checks: [0-9]+ errors, ' <<<"$out" || fail "table: no summary line"
preflight -o wide
grep -qE '^SEVERITY +CHECK +OBJECT +MESSAGE +WHY +FIX$' <<<"$out" || fail "wide: no WHY and FIX columns"
grep -qF "kubectl -n istio-system patch daemonset ztunnel" <<<"$out" || fail "wide: the OnDelete fix is missing"

# A Rollout file: the gate proceeds on timeout (agents are warnings), its skip list and --skip apply.
cat >"$work/rollout.yaml" <<'EOF'
apiVersion: meshroll.io/v1alpha1
kind: Rollout
metadata: {name: r}
spec:
  groups: {size: 1}
  connectionGate: {timeout: 1m, onTimeout: proceed}
  preflight: {skip: [version-skew]}
EOF
preflight -f "$work/rollout.yaml" --skip pdb-blocking,webhook-overlap -o json
[ "$rc" = 1 ] || fail "rollout file: exit $rc, expected 1"
jq -e '[.findings[] | select(.check == "agents")] | length > 0 and all(.severity == "warning")' <<<"$out" \
        >/dev/null || fail "rollout file: agents are not warnings with onTimeout proceed: $out"
jq -e '[.findings[] | select(.check == "version-skew" or .check == "pdb-blocking" or .check == "webhook-overlap")]
        | length == 0' <<<"$out" >/dev/null || fail "rollout file: skipped checks still report"
jq -e '.summary.checks == 10' <<<"$out" >/dev/null || fail "rollout file: 10 checks expected to run"

# Bad input: exit 2 and the message names it.
preflight -o yaml
[ "$rc" = 2 ] && grep -qF 'invalid -o "yaml"' <<<"$out" || fail "-o yaml: exit $rc: $out"
preflight --skip agnets
[ "$rc" = 2 ] && grep -qF '"agnets"' <<<"$out" || fail "--skip agnets: exit $rc: $out"
preflight no-such-rollout
[ "$rc" = 2 ] && grep -qF 'no Rollout "no-such-rollout"' <<<"$out" || fail "unknown Rollout: exit $rc: $out"
printf 'apiVersion: meshroll.io/v1alpha1\nkind: Rollout\nmetadata: {name: r}\nspec: {preflight: {skip: [nope]}}\n' \
        >"$work/bad.yaml"
preflight -f "$work/bad.yaml"
[ "$rc" = 2 ] && grep -qF 'spec.preflight.skip: unknown check "nope"' <<<"$out" || fail "bad skip in file: exit $rc: $out"

# ---- before a Rollout: the engine pauses it (PreflightFailed), moving nothing -------------------------

kubectl=${MESHROLL_KUBECTL:-kubectl}
if command -v "$kubectl" >/dev/null 2>&1 && [ -n "${MESHROLL_SOURCE_ROOT:-}" ]; then
        k() { "$kubectl" --server "$url" --cache-dir "$work/cache" --request-timeout=20s "$@"; }
        k create --validate=false -f "$MESHROLL_SOURCE_ROOT/manifests/crd-rollout.yaml" >/dev/null
        cat >"$work/run.yaml" <<'EOF'
apiVersion: meshroll.io/v1alpha1
kind: Rollout
metadata: {name: broken}
spec:
  groups: {size: 1}
  connectionGate: {timeout: 1m, onTimeout: pause}
EOF
        "$meshroll" run -f "$work/run.yaml" --server "$url" --leader-elect=false >"$work/run.log" 2>&1 &
        run_pid=$!
        phase=
        for _ in $(seq 100); do
                phase=$(k get rollout broken -o jsonpath='{.status.phase}' 2>/dev/null || true)
                [ "$phase" = Paused ] && break
                sleep 0.2
        done
        kill "$run_pid" 2>/dev/null; wait "$run_pid" 2>/dev/null || true
        reason=$(k get rollout broken -o jsonpath='{.status.reason}')
        message=$(k get rollout broken -o jsonpath='{.status.message}')
        [ "$phase" = Paused ] && [ "$reason" = PreflightFailed ] ||
                fail "run: the Rollout is \"$phase\" ($reason), expected Paused (PreflightFailed):"$'\n'"$(tail -5 "$work/run.log")"
        grep -qE '^preflight found [0-9]+ errors: .*; and [0-9]+ more; fix them' <<<"$message" ||
                fail "run: the pause message does not name the first errors: $message"
        [ "$(k get rollout broken -o jsonpath='{.spec.paused}')" = true ] || fail "run: spec.paused was not set"
        events=$(k get events -n default -o json | jq '[.items[] | select(.reason == "PreflightFailed" and
                .involvedObject.kind == "Rollout" and .involvedObject.name == "broken")] | length')
        [ "$events" -ge 10 ] || fail "run: $events PreflightFailed Events on the Rollout, expected one per error"
        cordoned=$(k get nodes -o json | jq '[.items[] | select(.spec.unschedulable == true)] | length')
        [ "$cordoned" = 0 ] || fail "run: $cordoned nodes cordoned by a Rollout that preflight paused"
else
        echo "no kubectl or MESHROLL_SOURCE_ROOT: the engine's preflight pause is not checked here"
fi

# ---- a healthy cluster ---------------------------------------------------------------------------

start_sim "$scenarios/small.yaml"
# What meshroll-agent would publish: a fresh Lease per node.
curl -sf -X POST -H 'Content-Type: application/json' "$url/api/v1/namespaces" \
        -d '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"meshroll"}}' >/dev/null
now=$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)
for node in $(curl -sf "$url/api/v1/nodes" | jq -r '.items[].metadata.name'); do
        curl -sf -X POST -H 'Content-Type: application/json' \
                "$url/apis/coordination.k8s.io/v1/namespaces/meshroll/leases" \
                -d "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":\"meshroll-agent-$node\",\"namespace\":\"meshroll\"},\"spec\":{\"holderIdentity\":\"$node\",\"renewTime\":\"$now\",\"leaseDurationSeconds\":900}}" \
                >/dev/null
done
# Until istiod and the budgets have settled.
for _ in $(seq 60); do
        preflight
        [ "$rc" = 0 ] && break
        sleep 0.5
done
[ "$rc" = 0 ] || fail "healthy cluster: exit $rc, expected 0:"$'\n'"$out"
grep -qE '^13 checks: 0 errors, ' <<<"$out" || fail "healthy cluster: $out"
preflight -o json
jq -e '.summary.errors == 0' <<<"$out" >/dev/null || fail "healthy cluster (json): $out"

if [ "$failed" -gt 0 ]; then
        echo "--- simulator log (last lines)"
        tail -20 "$work/sim.log"
        exit 1
fi
echo "ok: meshroll preflight on a broken and a healthy cluster"
