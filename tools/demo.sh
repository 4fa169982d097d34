#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make demo`: build meshroll-demo, meshroll-agent and meshroll, then run the
# demo (docs/demo.md): a simulated cluster with real loopback traffic whose
# ztunnel is upgraded by meshroll group by group, then in place, with both
# runs side by side. Extra arguments go to the demo:
#   tools/demo.sh build --nodes 6 --groups 3 --fault never-ready
#   make demo DEMO_ARGS="--connections 500 --speed 10"
# The demo bounds itself (--timeout, default 600s) and stops every process
# and socket it started on any exit, Ctrl-C included: exec hands it the
# terminal's signals directly.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[ $# -gt 0 ] && shift

[ -f "$build/build.ninja" ] || meson setup "$build"
ninja -C "$build" demo/meshroll-demo agent/meshroll-agent coordinator/meshroll
exec "$build/demo/meshroll-demo" "$@"
