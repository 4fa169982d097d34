#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# meshroll-demo end to end, small and fast: the simulator with its real data
# plane in the demo's process, one real meshroll-agent per node and the real
# `meshroll run` as children. Asserted from --report-json:
#   1. the meshroll run completed with 0 connections reset and 0 failed
#      requests, and traffic flowed (> 0 requests answered); every group is
#      Done and its gate saw 0 long-lived connections; the in-place
#      RollingUpdate of the same cluster reset connections (> 0) and failed
#      requests; the demo exits 0;
#   2. --fault never-ready --skip-inplace: the canary group rolls back (rollout
#      Paused, reason RolledBack), the other groups stay Pending, still 0
#      resets, and the in-place run is skipped;
#   3. a bad flag exits 2 with a message naming it.
# After each run no meshroll-agent or meshroll process started by the demo is
# left (they run in process groups of their own; the demo stops them).
#
# Usage: test-demo.sh MESHROLL-DEMO      Exit 77 (skipped) only when jq is missing.
set -uo pipefail

DEMO=${1:?usage: test-demo.sh MESHROLL-DEMO}
command -v jq >/dev/null || { echo "SKIP: jq is not installed"; exit 77; }
[ -x "$DEMO" ] || { echo "FAIL: $DEMO is not built"; exit 1; }

tmp=$(mktemp -d)
mkdir -p "$tmp/t"
export TMPDIR=$tmp/t     # the demo's Rollout file, so its coordinator can be found by its command line
demo_pid=
last_pid=
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

# Runs the demo in the background (so a TERM to this script reaches it) and waits.
run_demo() { # run_demo LOG ARGS...
        local log=$1
        shift
        "$DEMO" "$@" >"$log" 2>&1 &
        demo_pid=$!
        last_pid=$demo_pid
        wait "$demo_pid"
        local rc=$?
        demo_pid=
        return $rc
}

# The demo's agents name its PID (--host-pid); its coordinator's Rollout file is under $TMPDIR.
leftovers() {
        { pgrep -f -- "--host-pid $last_pid( |\$)"; pgrep -f -- "$TMPDIR/meshroll-demo-"; } | tr '\n' ' '
}

echo "== the meshroll run and the in-place run"
run_demo "$tmp/demo.log" --nodes 6 --groups 3 --connections 60 --speed 10 --timeout 240s \
        --report-json "$tmp/report.json"
rc=$?
sed -n '/== Report/,$p' "$tmp/demo.log"
[ "$rc" -eq 0 ] || { fail "the demo exited $rc"; tail -40 "$tmp/demo.log"; }
if [ -s "$tmp/report.json" ]; then
        r=$tmp/report.json
        check "meshroll completed" '.meshroll.completed == true and .meshroll.phase == "Completed"' "$r"
        check "meshroll reset no connection" '.meshroll.connectionsReset == 0' "$r"
        check "meshroll failed no request" '.meshroll.requestsFailed == 0' "$r"
        check "traffic flowed during the meshroll run" '.meshroll.requestsOk > 0' "$r"
        check "a canary and one group per zone" '(.meshroll.groups | length) == 4 and .meshroll.groups[0].name == "canary"' "$r"
        check "every group Done, its gate at 0" '[.meshroll.groups[] | select(.state != "Done" or .connectionsAtGate != 0)] | length == 0' "$r"
        check "the in-place run completed" '.inPlace.completed == true' "$r"
        check "the in-place run reset connections" '.inPlace.connectionsReset > 0' "$r"
        check "the in-place run failed requests" '.inPlace.requestsFailed > 0 and .inPlace.successPercent < 100' "$r"
else
        fail "no JSON report"
fi
left=$(leftovers)
[ -z "${left// /}" ] || fail "processes left behind: $left"

echo "== --fault never-ready: the canary rolls back"
run_demo "$tmp/fault.log" --nodes 6 --groups 3 --connections 60 --speed 10 --timeout 240s \
        --fault never-ready --skip-inplace --report-json "$tmp/fault.json"
rc=$?
sed -n '/== Report/,$p' "$tmp/fault.log"
[ "$rc" -eq 0 ] || { fail "the demo with --fault exited $rc"; tail -40 "$tmp/fault.log"; }
if [ -s "$tmp/fault.json" ]; then
        r=$tmp/fault.json
        check "the rollout paused after a rollback" '.meshroll.rolledBack == true and .meshroll.phase == "Paused" and .meshroll.reason == "RolledBack"' "$r"
        check "the canary is RolledBack" '.meshroll.groups[0].state == "RolledBack"' "$r"
        check "the other groups were not touched" '[.meshroll.groups[1:][] | select(.state != "Pending")] | length == 0' "$r"
        check "no reset, no failed request" '.meshroll.connectionsReset == 0 and .meshroll.requestsFailed == 0' "$r"
        check "no in-place run" '.inPlace == null' "$r"
        grep -q "rolled the canary group back" "$tmp/fault.log" || fail "the rollback is not reported in the output"
else
        fail "no JSON report with --fault"
fi
left=$(leftovers)
[ -z "${left// /}" ] || fail "processes left behind: $left"

echo "== a bad flag"
"$DEMO" --nodes 0 >"$tmp/bad.log" 2>&1
rc=$?
[ "$rc" -eq 2 ] && grep -q -- "--nodes" "$tmp/bad.log" || fail "--nodes 0 exited $rc: $(cat "$tmp/bad.log")"

[ "$fails" -eq 0 ] && echo "PASS" || echo "$fails failure(s)"
[ "$fails" -eq 0 ]
