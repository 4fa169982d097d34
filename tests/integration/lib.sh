# SPDX-License-Identifier: Apache-2.0
# Sourced by the kubectl integration tests: one simulator per kubectl version,
# and the helpers their cases use.
#
# The caller sets KUBESIM and SCENARIO before start_sim, and KUBECTL and
# VERSION for each kubectl it runs; CURRENT names the case being run.
#   k ARGS…                      the kubectl under test against the simulator, fresh cache per version
#   expect "ARGS" PATTERN…       k ARGS must succeed and print every pattern (grep -E); output in LAST
#   expect_fail "ARGS" PATTERN   k ARGS must fail and say PATTERN
#   fail MESSAGE                 counts a failure in FAILED and returns 1
#   start_sim / stop_sim         a simulator on a free loopback port (URL), audit in $WORK/audit-$VERSION.jsonl

WORK=$(mktemp -d)
SIM_PID=
FAILED=0
CURRENT=
LAST=

cleanup() {
        [ -n "$SIM_PID" ] && kill -TERM "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null
        rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
        echo "FAIL [$CURRENT]: $*"
        FAILED=$((FAILED + 1))
        return 1
}

k() {
        "$KUBECTL" --server "$URL" --cache-dir "$WORK/cache-$VERSION" --request-timeout=20s "$@"
}

expect() {
        local args=$1 out
        shift
        # shellcheck disable=SC2086
        if ! out=$(k $args 2>&1); then
                fail "kubectl $args exited non-zero: $out"
                return 1
        fi
        for pat in "$@"; do
                if ! grep -qE -- "$pat" <<<"$out"; then
                        fail "kubectl $args: output lacks /$pat/:"$'\n'"$out"
                        return 1
                fi
        done
        LAST=$out
}

expect_fail() {
        local args=$1 out
        # shellcheck disable=SC2086
        if out=$(k $args 2>&1); then
                fail "kubectl $args succeeded, expected a failure: $out"
                return 1
        fi
        grep -qE -- "$2" <<<"$out" || fail "kubectl $args: error lacks /$2/: $out"
}

start_sim() {
        SIM_PID=
        "$KUBESIM" --scenario "$SCENARIO" --listen 127.0.0.1:0 --speed 20 --audit "$WORK/audit-$VERSION.jsonl" \
                >"$WORK/url" 2>"$WORK/sim-$VERSION.log" &
        SIM_PID=$!
        for _ in $(seq 200); do
                [ -s "$WORK/url" ] && break
                kill -0 "$SIM_PID" 2>/dev/null || break
                sleep 0.05
        done
        URL=$(head -n1 "$WORK/url")
        if [ -z "$URL" ]; then
                echo "meshroll-kubesim did not start:"
                cat "$WORK/sim-$VERSION.log"
                exit 1
        fi
}

stop_sim() {
        kill -TERM "$SIM_PID" && wait "$SIM_PID" || fail "meshroll-kubesim did not stop cleanly"
        SIM_PID=
}
