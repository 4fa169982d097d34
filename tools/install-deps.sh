#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what building and testing meshroll needs, from Debian's packages
# only, and nothing that is already there. Run as root, or as a user with sudo.
#
# kubectl: the machine image ships kubectl 1.32 as /usr/bin/kubectl. Debian's
# kubernetes-client (kubectl 1.20) would overwrite that file, so it is not
# installed: its .deb is downloaded and unpacked into .deps/kubectl-1.20/, where
# the integration tests find it as the second, older client.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
        gcc make pkg-config meson ninja-build
        libcurl4-openssl-dev libjson-c-dev libsystemd-dev libcmocka-dev libmicrohttpd-dev libyaml-dev
        openssl ca-certificates iproute2 procps jq
        # the traffic phase's metric gates against a real Prometheus (tests/integration/test-traffic-prometheus.sh)
        prometheus curl
)

SUDO=
if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "install-deps: not root and no sudo: install ${packages[*]} by hand" >&2; exit 1; }
        SUDO=sudo
fi

missing=()
for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

updated=no
apt_update() {
        [ "$updated" = yes ] && return 0
        $SUDO apt-get update -qq
        updated=yes
}

if [ ${#missing[@]} -gt 0 ]; then
        echo "install-deps: installing ${missing[*]}"
        apt_update
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

legacy=.deps/kubectl-1.20
if [ ! -x "$legacy/kubectl" ]; then
        mkdir -p "$legacy/pkg"
        apt_update
        if (cd "$legacy/pkg" && apt-get download -qq kubernetes-client >/dev/null 2>&1); then
                dpkg-deb -x "$legacy"/pkg/kubernetes-client_*.deb "$legacy/root"
                ln -sf "root/usr/bin/kubectl" "$legacy/kubectl"
                rm -rf "$legacy/pkg"
                echo "install-deps: kubectl $("$legacy/kubectl" version --client --short 2>/dev/null || echo 1.20) in $legacy"
        else
                rm -rf "$legacy"
                echo "install-deps: could not download kubernetes-client; the kubectl 1.20 tests will be skipped" >&2
        fi
fi
exit 0
