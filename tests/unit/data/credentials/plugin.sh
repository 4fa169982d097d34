#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# A fake exec credential plugin for test_credentials.c. $1 picks the
# behaviour; the test passes API, EXPIRY, COUNT_FILE and INFO_FILE through
# exec.env, which also checks that exec.env reaches the plugin.
mode=$1
if [ -n "$COUNT_FILE" ]; then
        echo run >>"$COUNT_FILE"
        n=$(wc -l <"$COUNT_FILE" | tr -d ' ')
else
        n=0
fi
[ -n "$INFO_FILE" ] && printf '%s' "$KUBERNETES_EXEC_INFO" >"$INFO_FILE"
exp=""
[ -n "$EXPIRY" ] && exp=",\"expirationTimestamp\":\"$EXPIRY\""
case "$mode" in
token)
        printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"token":"tok-%s"%s}}\n' "$API" "$n" "$exp" ;;
cert)
        printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"clientCertificateData":"CERT-%s","clientKeyData":"KEY-%s"}}\n' "$API" "$n" "$n" ;;
lone-cert)
        printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"clientCertificateData":"CERT"}}\n' "$API" ;;
no-status)
        printf '{"apiVersion":"%s","kind":"ExecCredential"}\n' "$API" ;;
bad-expiry)
        printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"token":"t","expirationTimestamp":"tomorrow"}}\n' "$API" ;;
wrong-api)
        printf '{"apiVersion":"client.authentication.k8s.io/v1alpha1","kind":"ExecCredential","status":{"token":"t"}}\n' ;;
bad-json)
        printf '{"apiVersion": "%s", "status": {' "$API" ;;
empty)
        ;;
fail)
        echo "plugin: not logged in" >&2
        exit 3 ;;
sleep)
        exec sleep 30 ;;
flood)
        exec yes ;;
*)
        echo "unknown mode $mode" >&2
        exit 2 ;;
esac
