#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Transport and secret hygiene of meshroll and meshroll-agent against meshroll-kubesim
# serving HTTPS with a bearer token (docs/reliability.md, "Security"):
#   - TLS verification is on by default: with no CA configured (the system's trust store),
#     with the wrong CA (a second CA with the same name), and with the right CA but the
#     wrong tls-server-name, meshroll refuses the server; a plain http:// URL to the HTTPS
#     port fails too. The right CA works; --insecure-skip-tls-verify works only when asked.
#   - a wrong token is refused (401) and said so;
#   - the token never appears in anything either binary writes, at debug level: `meshroll
#     plan` in every case above, `meshroll run` and `meshroll controller` doing real work
#     (cordons, evictions, leases), the token given by kubeconfig and by --token, and
#     meshroll-agent writing its Lease and failing on the wrong CA;
#   - the agent's and the controller's /metrics and /healthz (and an unknown path) answer
#     without the token, an Authorization header, PEM material or the kubeconfig's path.
#
# Every wait is bounded (a count of short sleeps); all sockets are on 127.0.0.1.
# Usage: test-security.sh KUBESIM MESHROLL AGENT SCENARIO CRD   (env MESHROLL_KUBECTL: kubectl,
#        needed only to install the CRD for `meshroll run`; without it that part is skipped)
set -uo pipefail

KUBESIM=${1:?usage: test-security.sh KUBESIM MESHROLL AGENT SCENARIO CRD}
MESHROLL=${2:?}
AGENT=${3:?}
SCENARIO=${4:?}
CRD=${5:?}
KUBECTL=${MESHROLL_KUBECTL:-kubectl}
# meson passes paths relative to the build directory; the test works in its own.
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KUBESIM=$(abs "$KUBESIM") MESHROLL=$(abs "$MESHROLL") AGENT=$(abs "$AGENT") SCENARIO=$(abs "$SCENARIO") CRD=$(abs "$CRD")

for tool in openssl curl python3; do
        command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: no $tool"; exit 77; }
done

WORK=$(mktemp -d)
PIDS=()
FAILED=0
cleanup() {
        for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
        for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
        rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
        echo "FAIL: $*"
        FAILED=$((FAILED + 1))
        return 1
}
cd "$WORK" || exit 1

# ---- two CAs with the same subject, a server certificate for 127.0.0.1 from the first ------

gen() { openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=meshroll-test-ca" -keyout "$1.key" -out "$1.pem" 2>/dev/null; }
gen ca && gen wrong-ca || { echo "openssl could not make the CAs"; exit 1; }
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr 2>/dev/null &&
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext.cnf &&
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf \
                -out server.pem 2>/dev/null || { echo "openssl could not sign the server certificate"; exit 1; }

TOKEN=meshroll-test-token-$(openssl rand -hex 16)

"$KUBESIM" --scenario "$SCENARIO" --listen 127.0.0.1:0 --speed 20 --tls-cert server.pem --tls-key server.key \
        --token "$TOKEN" >url 2>sim.log &
PIDS+=($!)
for _ in $(seq 200); do
        [ -s url ] && break
        kill -0 "${PIDS[0]}" 2>/dev/null || break
        sleep 0.05
done
URL=$(head -n1 url)
case $URL in https://127.0.0.1:*) ;; *) echo "meshroll-kubesim did not start with TLS: '$URL'"; cat sim.log; exit 1 ;; esac
HOSTPORT=${URL#https://}

# kubeconfig NAME SERVER CLUSTER-EXTRA TOKEN
kubeconfig() {
        cat >"kc-$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sim
  cluster:
    server: $2
$3
users:
- name: u
  user:
    token: $4
contexts:
- name: c
  context: {cluster: sim, user: u}
current-context: c
EOF
}
kubeconfig good "$URL" "    certificate-authority: $WORK/ca.pem" "$TOKEN"
kubeconfig system-trust "$URL" "" "$TOKEN"
kubeconfig wrong-ca "$URL" "    certificate-authority: $WORK/wrong-ca.pem" "$TOKEN"
kubeconfig wrong-name "$URL" "    certificate-authority: $WORK/ca.pem
    tls-server-name: api.other.example" "$TOKEN"
kubeconfig plain-http "http://$HOSTPORT" "" "$TOKEN"
kubeconfig wrong-token "$URL" "    certificate-authority: $WORK/ca.pem" "not-$TOKEN"

cat >rollout.yaml <<'EOF'
apiVersion: meshroll.io/v1alpha1
kind: Rollout
metadata: {name: security}
spec:
  groups: {size: 1}
  drain: {timeout: 30s}
  connectionGate: {timeout: 1s, onTimeout: proceed}
  readiness: {timeout: 60s, minReadySeconds: 0}
  soak: 0s
EOF

# ---- TLS verification and authentication -----------------------------------------------------

# plan_case NAME ok|refused PATTERN [ARGS…]: `meshroll plan` with kc-NAME at debug level. "ok":
# it read the cluster (it prints the groups; its exit is 1 while a PDB would block, which
# depends on how far the pods are); "refused": it exits non-zero having read nothing.
plan_case() {
        local name=$1 want=$2 pattern=$3 rc
        shift 3
        timeout 30 "$MESHROLL" plan -f rollout.yaml --kubeconfig "kc-$name" --log-level debug "$@" >"plan-$name.log" 2>&1
        rc=$?
        if [ "$want" = ok ] && { [ "$rc" -gt 1 ] || ! grep -q '^group 1/' "plan-$name.log"; }; then
                fail "plan with $name: exit $rc, expected it to read the cluster: $(cat "plan-$name.log")"
        elif [ "$want" = refused ] && { [ "$rc" -eq 0 ] || grep -q '^group 1/' "plan-$name.log"; }; then
                fail "plan with $name read the cluster: the server should have been refused"
        elif ! grep -qiE -- "$pattern" "plan-$name.log"; then
                fail "plan with $name: output lacks /$pattern/: $(cat "plan-$name.log")"
        else
                echo "ok   plan: $name"
        fi
}
plan_case good ok 'group 1/'
plan_case system-trust refused 'certificate'
plan_case wrong-ca refused 'certificate'
plan_case wrong-name refused 'certificate|SSL|name'
plan_case plain-http refused 'Failed'
plan_case wrong-token refused 'Unauthorized'
kubeconfig insecure "$URL" "" "$TOKEN"
plan_case insecure ok 'group 1/' --insecure-skip-tls-verify
# --token on the command line replaces the kubeconfig's (wrong) one
cp kc-wrong-token kc-flag-token
plan_case flag-token ok 'group 1/' --token "$TOKEN"

# ---- the daemons at work, at debug level ------------------------------------------------------

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

if command -v "$KUBECTL" >/dev/null 2>&1 &&
        "$KUBECTL" --kubeconfig kc-good apply --validate=false -f "$CRD" >kubectl.log 2>&1 &&
        echo '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "meshroll"}}' |
        "$KUBECTL" --kubeconfig kc-good apply --validate=false -f - >>kubectl.log 2>&1; then
        # A rollout that cordons and evicts: stopped after a few seconds, whatever it reached.
        timeout -s TERM 8 "$MESHROLL" run -f rollout.yaml --kubeconfig kc-good --log-level debug >run.log 2>&1
        grep -qE 'cordon|drain|evict|batch-1' run.log && echo "ok   run: worked for 8 s" ||
                fail "meshroll run did no work: $(cat run.log)"
else
        echo "skip run: no kubectl to install the CRD ($(cat kubectl.log 2>/dev/null))"
fi

AGENT_PORT=$(free_port)
CTL_PORT=$(free_port)
"$AGENT" --node a-1 --kubeconfig kc-good --log-level debug --listen "127.0.0.1:$AGENT_PORT" --scan-interval 1s \
        --active-interval 1s >agent.log 2>&1 &
PIDS+=($!)
"$AGENT" --node a-2 --kubeconfig kc-wrong-ca --log-level debug --listen "" --scan-interval 1s >agent-wrong-ca.log 2>&1 &
PIDS+=($!)
"$MESHROLL" controller --kubeconfig kc-good --log-level debug --listen "127.0.0.1:$CTL_PORT" --identity security-test \
        >controller.log 2>&1 &
PIDS+=($!)
"$MESHROLL" controller --server "$URL" --token "$TOKEN" --insecure-skip-tls-verify --log-level debug --listen "" \
        --identity security-flags >controller-flags.log 2>&1 &
PIDS+=($!)

# Both servers answer, the wrong-CA agent has said why it cannot write (at most 10 s).
for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$AGENT_PORT/healthz" >/dev/null && curl -sf "http://127.0.0.1:$CTL_PORT/healthz" >/dev/null &&
                grep -qi 'certificate' agent-wrong-ca.log && break
        sleep 0.1
done
grep -qi 'certificate' agent-wrong-ca.log && echo "ok   agent with the wrong CA: refused" ||
        fail "the agent with the wrong CA did not report a certificate problem: $(cat agent-wrong-ca.log)"

for port in "$AGENT_PORT" "$CTL_PORT"; do
        for path in metrics healthz no-such-page; do
                curl -s -D - "http://127.0.0.1:$port/$path" >"endpoint-$port-$path.txt" 2>&1
        done
        grep -q '^# TYPE meshroll_' "endpoint-$port-metrics.txt" || fail "127.0.0.1:$port/metrics: no metrics"
done

sleep 2 # a few more scans and renewals at debug level
for p in "${PIDS[@]:1}"; do kill -TERM "$p" 2>/dev/null; done
for p in "${PIDS[@]:1}"; do wait "$p" 2>/dev/null; done
PIDS=("${PIDS[0]}")

# ---- what was written --------------------------------------------------------------------------

logs=(plan-*.log agent.log agent-wrong-ca.log controller.log controller-flags.log)
[ -f run.log ] && logs+=(run.log)
[ "$(cat "${logs[@]}" | wc -l)" -ge 20 ] || fail "too little output to judge: $(cat "${logs[@]}")"
for f in "${logs[@]}"; do
        if grep -qF -- "$TOKEN" "$f"; then
                fail "$f contains the token: $(grep -F -- "$TOKEN" "$f" | head -3)"
        elif grep -qiE 'bearer [A-Za-z0-9]' "$f"; then
                fail "$f contains an Authorization value: $(grep -iE 'bearer' "$f" | head -3)"
        fi
done
[ "$FAILED" -eq 0 ] && echo "ok   no token in ${#logs[@]} logs ($(cat "${logs[@]}" | wc -l) lines)"

for f in endpoint-*.txt; do
        for secret in "$TOKEN" "Authorization" "Bearer" "BEGIN" "PRIVATE KEY" "$WORK"; do
                grep -qiF -- "$secret" "$f" && fail "$f exposes \"$secret\": $(head -c 400 "$f")"
        done
done
[ "$FAILED" -eq 0 ] && echo "ok   /metrics, /healthz and an unknown path expose no secret"

if [ "$FAILED" -gt 0 ]; then
        echo "$FAILED check(s) failed"
        exit 1
fi
echo "all security checks passed"
