#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The traffic phase end to end without Prometheus (no metric gates), so it
# runs wherever the demo does: `meshroll-demo --traffic` builds a cluster with
# reviews-v1 and reviews-v2 behind a DestinationRule and a VirtualService,
# drives real loopback traffic through the simulator's data plane and runs
# the real `meshroll run` with a traffic phase. Asserted from --report-json:
#   1. the phase completes: 100 % on v2, v1 gone from the route, no request
#      failed and no connection was reset while the weights moved;
#   2. --fail-share without gates: nothing stops the switch (the metric
#      gates are what would), so the phase completes and the 503s show up in
#      the failed requests — the counterpart of test-traffic-prometheus.sh;
#   3. `meshroll rollback NAME --phase traffic` while the first step (10 %)
#      pauses: the phase puts 100 % back on v1 and the Rollout pauses
#      (RolledBack, "requested by an operator"), no request failing;
#   4. bad flags exit 2 with a message naming them.
#
# Usage: test-traffic.sh MESHROLL-DEMO MESHROLL    Exit 77 (skipped) only when jq is missing.
set -uo pipefail

DEMO=${1:?usage: test-traffic.sh MESHROLL-DEMO MESHROLL}
MESHROLL=${2:?usage: test-traffic.sh MESHROLL-DEMO MESHROLL}
command -v jq >/dev/null || { echo "SKIP: jq is not installed"; exit 77; }
[ -x "$DEMO" ] || { echo "FAIL: $DEMO is not built"; exit 1; }

tmp=$(mktemp -d)
mkdir -p "$tmp/t"
export TMPDIR=$tmp/t
demo_pid=
cleanup() {
        [ -n "$demo_pid" ] && kill -TERM "$demo_pid" 2>/dev/null && wait "$demo_pid" 2>/dev/null
        rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check DESCRIPTION JQ-EXPRESSION FILE
        if jq -e "$2" "$3" >/dev/null; then echo "ok: $1"; else fail "$1 ($2)"; fi
}
run_demo() { # run_demo LOG ARGS...
        local log=$1
        shift
        "$DEMO" "$@" >"$log" 2>&1 &
        demo_pid=$!
        wait "$demo_pid"
        local rc=$?
        demo_pid=
        return $rc
}
common=(--traffic --connections 20 --rate 10 --speed 10 --step-pause 1s --timeout 90s)

echo "== 1. a healthy v2, no gates"
run_demo "$tmp/1.log" "${common[@]}" --report-json "$tmp/1.json"
rc=$?
sed 's/^/   | /' "$tmp/1.log"
[ $rc -eq 0 ] || fail "the demo exited $rc"
check "the phase completed" '.completed == true and .phase == "Completed"' "$tmp/1.json"
check "100 % on v2 at the end" '.weightV2 == 100 and .weightV1 == 0' "$tmp/1.json"
check "traffic flowed" '.requestsOk > 100' "$tmp/1.json"
check "no request failed, no connection reset" '.requestsFailed == 0 and .connectionsReset == 0' "$tmp/1.json"

echo "== 2. v2 fails 20 % of its requests, no gates: the switch goes through"
run_demo "$tmp/2.log" "${common[@]}" --fail-share 0.2 --report-json "$tmp/2.json"
rc=$?
sed 's/^/   | /' "$tmp/2.log"
[ $rc -eq 0 ] || fail "the demo exited $rc"
check "the phase completed" '.completed == true and .weightV2 == 100' "$tmp/2.json"
check "the 503s reached the clients" '.requests503 > 0 and .requestsFailed >= .requests503' "$tmp/2.json"

echo "== 3. an operator rolls the phase back mid-way: meshroll rollback --phase traffic"
"$DEMO" "${common[@]}" --step-pause 60s --report-json "$tmp/3.json" >"$tmp/3.log" 2>&1 &
demo_pid=$!
server=
for _ in $(seq 1 300); do
        server=$(sed -n 's/.* run -f .* --server \(http[^ ]*\) .*/\1/p' "$tmp/3.log" | head -1)
        [ -n "$server" ] && grep -q "v2  10 %" "$tmp/3.log" && break
        sleep 0.1
done
if [ -n "$server" ] && grep -q "v2  10 %" "$tmp/3.log"; then
        "$MESHROLL" rollback reviews-v2 --phase traffic --server "$server" >"$tmp/3-rollback.log" 2>&1 ||
                fail "meshroll rollback exited $?: $(cat "$tmp/3-rollback.log")"
else
        fail "the first step (10 % on v2) never showed"
fi
wait "$demo_pid"
demo_pid=
sed 's/^/   | /' "$tmp/3.log"
check "the phase rolled back on the operator's request" \
        '.rolledBack == true and (.message | test("requested by an operator"))' "$tmp/3.json"
check "100 % back on v1, no request failed" '.weightV1 == 100 and .weightV2 == 0 and .requestsFailed == 0' "$tmp/3.json"

echo "== 4. bad flags"
for args in "--traffic --fail-share 2" "--fail-share 0.1" "--traffic --prometheus ftp://x" "--traffic --step-pause soon"; do
        # shellcheck disable=SC2086
        out=$("$DEMO" $args 2>&1)
        rc=$?
        if [ $rc -eq 2 ] && [ -n "$out" ]; then echo "ok: $args → exit 2: $out"; else fail "$args: exit $rc ($out)"; fi
done

[ $fails -eq 0 ] && echo "PASS" || echo "$fails check(s) failed"
exit $((fails > 0))
