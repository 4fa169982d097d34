#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The traffic phase gated by the real Prometheus (Debian's `prometheus`
# package, tools/install-deps.sh). The test starts Prometheus on loopback
# with its own temporary directory, a 1 s scrape interval and short
# retention; its targets are the demo's node proxies (:15020/metrics), read
# from a file_sd file the demo writes once its cluster is up. Then
# `meshroll-demo --traffic --prometheus URL` runs the real `meshroll run`
# with a traffic phase whose gate is v2's 5xx ratio (reporter="source")
# ≤ 0.1 %:
#   1. a healthy v2 passes every step: the phase completes, 100 % on v2, no
#      request failed; Prometheus did scrape istio_requests_total;
#   2. a v2 that answers 503 to 30 % of its requests is rolled back by the
#      gate at the first step (10 %): the Rollout pauses RolledBack, 100 % is
#      back on v1, and the failed requests stay within the demo's budget
#      (fail share × 10 % × request rate × (3 gate intervals + 12 s); the
#      report prints it).
# The healthy run goes first: its v2 series, stale but inside the second
# run's rate window, could only dilute the second run's error ratio, never
# fail the first.
#
# Usage: test-traffic-prometheus.sh MESHROLL-DEMO
# Exit 77 (skipped) only when the prometheus package is not installed.
set -uo pipefail

DEMO=${1:?usage: test-traffic-prometheus.sh MESHROLL-DEMO}
PROMETHEUS=${MESHROLL_PROMETHEUS:-$(command -v prometheus)}
if [ -z "$PROMETHEUS" ] || [ ! -x "$PROMETHEUS" ]; then
        echo "SKIP: the prometheus server is not installed (Debian package prometheus; tools/install-deps.sh installs it)"
        exit 77
fi
command -v jq >/dev/null || { echo "SKIP: jq is not installed"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl is not installed"; exit 77; }
[ -x "$DEMO" ] || { echo "FAIL: $DEMO is not built"; exit 1; }

tmp=$(mktemp -d)
mkdir -p "$tmp/t" "$tmp/data"
export TMPDIR=$tmp/t
demo_pid=
prom_pid=
cleanup() {
        [ -n "$demo_pid" ] && kill -TERM "$demo_pid" 2>/dev/null && wait "$demo_pid" 2>/dev/null
        [ -n "$prom_pid" ] && kill -TERM "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null
        rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check DESCRIPTION JQ-EXPRESSION FILE
        if jq -e "$2" "$3" >/dev/null; then echo "ok: $1"; else fail "$1 ($2)"; fi
}

# A free loopback port for Prometheus.
port=
for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 20000))
        if [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then port=$p; break; fi
done
[ -n "$port" ] || { echo "FAIL: no free port"; exit 1; }
url=http://127.0.0.1:$port

echo '[]' >"$tmp/targets.json"
cat >"$tmp/prometheus.yml" <<CONF
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
scrape_configs:
  - job_name: meshroll-demo
    file_sd_configs:
      - files: ['$tmp/targets.json']
        refresh_interval: 1s
CONF
"$PROMETHEUS" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
        --storage.tsdb.retention.time=1h --web.listen-address="127.0.0.1:$port" \
        --log.level=warn >"$tmp/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 1 100); do
        curl -fsS "$url/-/ready" >/dev/null 2>&1 && break
        sleep 0.1
done
if ! curl -fsS "$url/-/ready" >/dev/null 2>&1; then
        cat "$tmp/prometheus.log"
        echo "FAIL: prometheus did not become ready on $url"
        exit 1
fi
echo "prometheus $("$PROMETHEUS" --version 2>&1 | head -1 | awk '{print $3}') ready on $url"

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
common=(--traffic --connections 20 --rate 10 --speed 10 --step-pause 5s --timeout 100s
        --prometheus "$url" --targets-file "$tmp/targets.json")

echo "== 1. a healthy v2 passes every gated step"
run_demo "$tmp/1.log" "${common[@]}" --report-json "$tmp/1.json"
rc=$?
sed 's/^/   | /' "$tmp/1.log"
[ $rc -eq 0 ] || fail "the demo exited $rc"
check "the phase completed" '.completed == true and .phase == "Completed"' "$tmp/1.json"
check "100 % on v2 at the end" '.weightV2 == 100 and .weightV1 == 0' "$tmp/1.json"
check "no request failed" '.requestsOk > 100 and .requestsFailed == 0' "$tmp/1.json"
curl -fsS "$url/api/v1/query" --data-urlencode 'query=sum(istio_requests_total{destination_workload="reviews-v2"})' >"$tmp/q.json"
check "prometheus scraped the proxies' istio_requests_total" \
        '.status == "success" and (.data.result[0].value[1] | tonumber) > 0' "$tmp/q.json"

echo "== 2. a v2 answering 503 to 30 % of its requests is rolled back by the gate"
run_demo "$tmp/2.log" "${common[@]}" --fail-share 0.3 --report-json "$tmp/2.json"
rc=$?
sed 's/^/   | /' "$tmp/2.log"
[ $rc -eq 0 ] || fail "the demo exited $rc"
check "the phase rolled back and the Rollout paused" '.rolledBack == true and .reason == "RolledBack"' "$tmp/2.json"
check "the gate named itself" '.message | test("gate v2-error-rate failed")' "$tmp/2.json"
check "100 % back on v1" '.weightV1 == 100 and .weightV2 == 0' "$tmp/2.json"
check "some requests failed (the canary share), within the budget" \
        '.requests503 > 0 and .requestsFailed <= .failedBudget' "$tmp/2.json"
jq -r '"   failed \(.requestsFailed) of \(.requestsSent) requests (budget \(.failedBudget)) in \(.seconds) s"' "$tmp/2.json"

[ $fails -eq 0 ] && echo "PASS" || echo "$fails check(s) failed"
exit $((fails > 0))
