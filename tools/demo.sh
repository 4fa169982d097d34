#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make demo`: start meshroll-kubesim with the demo scenario on a loopback
# port, let its controllers bring the cluster up, and show it through the
# real kubectl — the same commands a user can paste while it runs. Bounded
# in time; stops the simulator and removes its temp files on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
sim="$build/sim/meshroll-kubesim"
scenario=${MESHROLL_DEMO_SCENARIO:-sim/scenarios/demo.yaml}
speed=${MESHROLL_DEMO_SPEED:-10}
kubectl=${KUBECTL:-kubectl}

[ -x "$sim" ] || { echo "demo: $sim is not built (run make build)" >&2; exit 1; }
[ -f "$scenario" ] || { echo "demo: scenario $scenario not found" >&2; exit 1; }
command -v "$kubectl" >/dev/null || { echo "demo: kubectl not found; set KUBECTL=" >&2; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() {
        [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
        rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

"$sim" --scenario "$scenario" --speed "$speed" --listen 127.0.0.1:0 --audit "$tmp/audit.jsonl" >"$tmp/url" 2>"$tmp/sim.log" &
pid=$!
for _ in $(seq 100); do
        [ -s "$tmp/url" ] && break
        kill -0 "$pid" 2>/dev/null || { cat "$tmp/sim.log" >&2; exit 1; }
        sleep 0.1
done
url=$(head -n1 "$tmp/url")
[ -n "$url" ] || { echo "demo: simulator did not report its URL" >&2; cat "$tmp/sim.log" >&2; exit 1; }

k() { "$kubectl" --server "$url" --cache-dir "$tmp/kube-cache" "$@"; }
echo "meshroll demo: simulated cluster at $url (speed ×$speed)"
echo "look yourself:  kubectl --server $url get pods -A -o wide"
echo

# Wait (bounded) until every pod the scenario creates is Ready.
for _ in $(seq 60); do
        notready=$(k get pods -A --no-headers 2>/dev/null | awk '{split($3, r, "/"); if (r[1] != r[2] || $4 != "Running") n++} END {print n+0}')
        total=$(k get pods -A --no-headers 2>/dev/null | wc -l)
        [ "$total" -gt 0 ] && [ "$notready" -eq 0 ] && break
        sleep 0.5
done

echo "== kubectl get nodes -L topology.kubernetes.io/zone"
k get nodes -L topology.kubernetes.io/zone
echo
echo "== kubectl get daemonsets,deployments -A"
k get daemonsets,deployments -A
echo
echo "== kubectl get pods -A -o wide"
k get pods -A -o wide
echo
echo "== kubectl get pdb -A"
k get pdb -A
echo
echo "demo: the simulator wrote $(wc -l <"$tmp/audit.jsonl") audited writes; the ztunnel rollout itself arrives with the coordinator."
