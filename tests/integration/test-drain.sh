#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `meshroll drain` against meshroll-kubesim, judged by exit codes, messages,
# the cluster's final state and the simulator's audit log:
#   - bad usage and an unknown node: exit 2, nothing written;
#   - a pod with an emptyDir and no --delete-emptydir-data: exit 1 naming it
#     and the flag, node cordoned, nothing evicted;
#   - a PDB that allows nothing: exit 1 at --timeout naming the PDB and the pod;
#   - the rest (--pod-selector): every pod evicted through the Eviction API
#     (never deleted), the DaemonSet pod left alone, one behind a
#     maxUnavailable: 1 budget at a time, exit 0 and "node/N drained".
# Usage: test-drain.sh MESHROLL KUBESIM   (env MESHROLL_KUBECTL: kubectl, to uncordon the spares)
set -euo pipefail

meshroll=$1
kubesim=$2
kubectl=${MESHROLL_KUBECTL:-kubectl}
command -v "$kubectl" >/dev/null 2>&1 || { echo "no kubectl: skipped"; exit 77; }
command -v jq >/dev/null 2>&1 || { echo "no jq: skipped"; exit 77; }

work=$(mktemp -d)
sim_pid=
cleanup() {
        [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
        rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -20 "$work/sim.log"; exit 1; }

# Every pod starts on target-1: the spares are cordoned until the drain begins.
cat >"$work/scenario.yaml" <<'EOF'
name: drain-test
nodes:
  - {name: target-1}
  - {name: "spare-{i}", count: 2, unschedulable: true}
namespaces:
  - {name: shop}
workloads:
  - {name: web, namespace: shop, replicas: 4, shutdownSeconds: 1}
  - {name: cache, namespace: shop, replicas: 2, shutdownSeconds: 2, emptyDir: true}
  - {name: db, namespace: shop, replicas: 3, startupSeconds: 2, shutdownSeconds: 2, pdb: {maxUnavailable: 1}}
  - {name: stuck, namespace: shop, replicas: 2, pdb: {minAvailable: 2}}
  - {name: node-agent, namespace: kube-system, kind: DaemonSet}
EOF

"$kubesim" --scenario "$work/scenario.yaml" --speed 20 --audit "$work/audit.jsonl" >"$work/url" 2>"$work/sim.log" &
sim_pid=$!
for _ in $(seq 100); do [ -s "$work/url" ] && break; sleep 0.1; done
url=$(head -n1 "$work/url")
[ -n "$url" ] || { cat "$work/sim.log"; echo "kubesim did not start"; exit 1; }
k() { "$kubectl" --server "$url" --cache-dir "$work/cache" --request-timeout=20s "$@"; }
drain() { "$meshroll" drain --server "$url" "$@"; }
# audit records of verb $1 by meshroll on pods of namespace shop
audited() { jq -c "select(.verb == \"$1\" and (.actor | startswith(\"meshroll/\")) and .resource == \"pods\")" "$work/audit.jsonl" | wc -l; }

for _ in $(seq 100); do
        n=$(k get pods -n shop --field-selector spec.nodeName=target-1,status.phase=Running -o name | wc -l)
        [ "$n" -eq 11 ] && break
        sleep 0.2
done
[ "$n" -eq 11 ] || fail "expected 11 running pods on target-1, found $n"

# bad usage: exit 2, nothing written
set +e
out=$(drain 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "at least one NODE" <<<"$out" || fail "no node: rc $rc, $out"
out=$(drain target-1 --timeout soon 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q 'invalid --timeout "soon"' <<<"$out" || fail "bad --timeout: rc $rc, $out"
out=$(drain target-1 --pod-selector 'app in (' 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q 'invalid --pod-selector' <<<"$out" || fail "bad --pod-selector: rc $rc, $out"
out=$(drain target-1 nope-7 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q 'node "nope-7" not found' <<<"$out" || fail "unknown node: rc $rc, $out"
set -e
[ "$(k get node target-1 -o jsonpath='{.spec.unschedulable}')" = "" ] || fail "an unknown node in the list still cordoned target-1"

# emptyDir without the flag: refused before any eviction, naming the pods and the flag
set +e
out=$(drain target-1 --pod-selector 'app!=stuck' 2>&1); rc=$?
set -e
[ $rc -eq 1 ] || fail "emptyDir without --delete-emptydir-data: rc $rc, $out"
grep -q "local storage" <<<"$out" && grep -q "shop/cache-" <<<"$out" && grep -q -- "--delete-emptydir-data" <<<"$out" ||
        fail "the refusal does not name the pods and the flag: $out"
grep -q "node/target-1 cordoned" <<<"$out" || fail "no cordon reported: $out"
[ "$(k get node target-1 -o jsonpath='{.spec.unschedulable}')" = "true" ] || fail "target-1 not cordoned"
[ "$(audited evict)" -eq 0 ] || fail "pods were evicted although the drain was refused"

k uncordon spare-1 spare-2 >/dev/null

# a budget that allows nothing: exit 1 at the timeout, naming the PDB and a pod
set +e
out=$(drain target-1 --pod-selector app=stuck --timeout 3s 2>&1); rc=$?
set -e
[ $rc -eq 1 ] || fail "PDB blocking: rc $rc, $out"
grep -q "already cordoned" <<<"$out" || fail "second cordon not reported as already done: $out"
grep -q "timed out after 3" <<<"$out" && grep -q "PodDisruptionBudget shop/stuck" <<<"$out" &&
        grep -q "shop/stuck-" <<<"$out" || fail "the timeout does not name the PDB and the pods: $out"
[ "$(k get pods -n shop -l app=stuck --field-selector spec.nodeName=target-1 -o name | wc -l)" -eq 2 ] ||
        fail "a pod behind the blocking PDB is gone"

# the rest drains: evicted (never deleted), the DaemonSet pod stays, exit 0
out=$(drain target-1 --pod-selector 'app!=stuck' --delete-emptydir-data --ignore-daemonsets 2>&1) ||
        fail "drain failed: $out"
grep -q "^node/target-1 drained" <<<"$out" || fail "no 'node/target-1 drained': $out"
grep -q "evicting 9 pods (1 DaemonSet and mirror pods left alone)" <<<"$out" || fail "wrong pod counts: $out"
left=$(k get pods -n shop --field-selector spec.nodeName=target-1 -o name | grep -vc stuck || true)
[ "$left" -eq 0 ] || fail "$left pods other than stuck-* are still on target-1"
[ "$(k get pods -n kube-system --field-selector spec.nodeName=target-1 -o name | wc -l)" -eq 1 ] ||
        fail "the DaemonSet pod on target-1 was touched"
[ "$(audited evict)" -eq 9 ] || fail "expected 9 evictions by meshroll, audit has $(audited evict)"
# the simulator also records the deletion an accepted eviction makes: every one must follow an eviction
names() { jq -r "select(.verb == \"$1\" and (.actor | startswith(\"meshroll/\")) and .resource == \"pods\") | .name" "$work/audit.jsonl" | sort -u; }
[ -z "$(comm -13 <(names evict) <(names delete))" ] || fail "meshroll deleted pods it did not evict: $(comm -13 <(names evict) <(names delete))"
[ "$(k get node target-1 -o jsonpath='{.spec.unschedulable}')" = "true" ] || fail "target-1 uncordoned"
echo "ok"
