#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Makes the TLS fixtures for the HTTP test server: a CA, a server certificate
# for 127.0.0.1 / ::1 / localhost / kube.test signed by it, a client
# certificate signed by it, and an unrelated CA (a "wrong CA" for tests).
# Usage: gen-certs.sh OUTDIR. EC P-256 keys: fast to make, fine for tests.
set -eu
out=$1
mkdir -p "$out"
cd "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca-key.pem
openssl req -x509 -new -key ca-key.pem -subj "/CN=meshroll test CA" -days 3650 -sha256 \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out ca.pem 2>/dev/null

key other-ca-key.pem
openssl req -x509 -new -key other-ca-key.pem -subj "/CN=some other CA" -days 3650 -sha256 \
        -addext "basicConstraints=critical,CA:TRUE" -out other-ca.pem 2>/dev/null

key server-key.pem
openssl req -new -key server-key.pem -subj "/CN=kube.test" -out "$tmp/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:kube.test\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' > "$tmp/server.ext"
openssl x509 -req -in "$tmp/server.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -CAserial "$tmp/ca.srl" \
        -days 3650 -sha256 -extfile "$tmp/server.ext" -out server.pem 2>/dev/null

key client-key.pem
openssl req -new -key client-key.pem -subj "/CN=meshroll-test-client/O=system:masters" -out "$tmp/client.csr" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' > "$tmp/client.ext"
openssl x509 -req -in "$tmp/client.csr" -CA ca.pem -CAkey ca-key.pem -CAserial "$tmp/ca.srl" -CAcreateserial \
        -days 3650 -sha256 -extfile "$tmp/client.ext" -out client.pem 2>/dev/null
