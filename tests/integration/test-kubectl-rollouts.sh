#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The real kubectl against meshroll-kubesim's controllers (sim/scenarios/small.yaml):
#   - kubectl drain --ignore-daemonsets --delete-emptydir-data is blocked by a PDB
#     (429 → retry → global timeout, node left cordoned with the unschedulable taint),
#     then allowed once the budget permits;
#   - kubectl rollout restart + rollout status deployment;
#   - rollout status daemonset: refused for OnDelete, followed to the end for RollingUpdate.
# Usage: test-kubectl-rollouts.sh KUBESIM SCENARIO   (env MESHROLL_KUBECTL: kubectl to use)
set -euo pipefail

kubesim=$1
scenario=$2
kubectl=${MESHROLL_KUBECTL:-kubectl}
command -v "$kubectl" >/dev/null 2>&1 || { echo "no kubectl: skipped"; exit 77; }

work=$(mktemp -d)
sim_pid=
cleanup() {
        [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
        rm -rf "$work"
}
trap cleanup EXIT

"$kubesim" --scenario "$scenario" --speed 20 >"$work/url" 2>"$work/sim.log" &
sim_pid=$!
for _ in $(seq 100); do [ -s "$work/url" ] && break; sleep 0.1; done
url=$(head -n1 "$work/url")
[ -n "$url" ] || { cat "$work/sim.log"; echo "kubesim did not start"; exit 1; }
cat >"$work/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: sim, cluster: {server: "$url"}}]
users: [{name: u, user: {}}]
contexts: [{name: sim, context: {cluster: sim, user: u}}]
current-context: sim
KC
export KUBECONFIG=$work/kubeconfig
k() { "$kubectl" --request-timeout=20s "$@"; }
fail() { echo "FAIL: $*"; cat "$work/sim.log" | tail -20; exit 1; }

# Wait for the scenario to settle: every pod Ready.
for _ in $(seq 100); do
        notready=$(k get pods -A --no-headers | awk '{split($3,a,"/"); if (a[1]!=a[2]) n++} END {print n+0}')
        total=$(k get pods -A --no-headers | wc -l)
        [ "$total" -gt 0 ] && [ "$notready" -eq 0 ] && break
        sleep 0.2
done
[ "$notready" -eq 0 ] || fail "pods not ready"

# The node hosting a web pod.
node=$(k -n shop get pods -l app=web -o jsonpath='{.items[0].spec.nodeName}')

# 1. A PDB that allows nothing blocks the drain.
k -n shop patch pdb web --type=merge -p '{"spec":{"minAvailable":3}}' >/dev/null
for _ in $(seq 50); do
        [ "$(k -n shop get pdb web -o jsonpath='{.status.disruptionsAllowed}')" = 0 ] && break
        sleep 0.1
done
if k drain "$node" --ignore-daemonsets --delete-emptydir-data --timeout=7s >"$work/drain1" 2>&1; then
        fail "drain succeeded against a PDB that allows no disruption"
fi
grep -q "Cannot evict pod as it would violate the pod's disruption budget" "$work/drain1" || fail "no PDB message: $(cat "$work/drain1")"
[ "$(k get node "$node" -o jsonpath='{.spec.unschedulable}')" = true ] || fail "node not cordoned"
k get node "$node" -o jsonpath='{.spec.taints[*].key}' | grep -q node.kubernetes.io/unschedulable || fail "no unschedulable taint"

# 2. Once the budget allows it, the same drain completes.
k -n shop patch pdb web --type=merge -p '{"spec":{"minAvailable":2}}' >/dev/null
k drain "$node" --ignore-daemonsets --delete-emptydir-data --timeout=60s >"$work/drain2" 2>&1 || fail "drain: $(cat "$work/drain2")"
grep -q "node/$node drained" "$work/drain2" || fail "no drained line"
[ "$(k get pods -A --field-selector spec.nodeName="$node" --no-headers | grep -vc ztunnel || true)" = 0 ] || fail "pods left on $node"
k uncordon "$node" >/dev/null
for _ in $(seq 50); do
        k get node "$node" -o jsonpath='{.spec.taints[*].key}' | grep -q unschedulable || break
        sleep 0.1
done

# 3. rollout restart + rollout status deployment.
k -n shop rollout restart deployment/web | grep -q "deployment.apps/web restarted" || fail "restart"
k -n shop rollout status deployment/web --timeout=60s | tail -n1 | grep -q 'deployment "web" successfully rolled out' ||
        fail "rollout status deployment"
[ "$(k -n shop get rs --no-headers | wc -l)" -eq 2 ] || fail "expected two ReplicaSets"

# 4. rollout status daemonset: OnDelete is refused, RollingUpdate followed to completion.
if k -n istio-system rollout status ds/ztunnel --timeout=5s >"$work/ds1" 2>&1; then fail "OnDelete status succeeded"; fi
grep -q "only available for RollingUpdate" "$work/ds1" || fail "OnDelete message: $(cat "$work/ds1")"
k -n istio-system patch ds ztunnel --type=merge \
        -p '{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":1,"maxSurge":0}}}}' >/dev/null
k -n istio-system rollout status ds/ztunnel --timeout=90s >"$work/ds2" || fail "rollout status ds: $(cat "$work/ds2")"
grep -q 'daemon set "ztunnel" successfully rolled out' "$work/ds2" || fail "ds not rolled out"
grep -q "new pods have been updated" "$work/ds2" || fail "ds rollout had no progress lines"
echo "ok"
