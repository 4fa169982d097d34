#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole test command (`make check`, `.ci/run`): install what is missing,
# build with -Werror, run every suite (unit, integration, fuzz corpora), then
# the same suites again under AddressSanitizer + UndefinedBehaviorSanitizer,
# then the source lint. Stops at the first failing stage.
set -euo pipefail
cd "$(dirname "$0")/.."

# Twice the cores: the integration suites mostly wait on simulated time (a pass uses about a
# third of one core), and each reserves its own ports and 127.<net> addresses.
jobs=$(( $(nproc 2>/dev/null || echo 2) * 2 ))
start=$(date +%s)
stage() { printf '\n==> %s (%ss)\n' "$*" $(( $(date +%s) - start )); }

stage "dependencies"
tools/install-deps.sh

legacy_opt=()
[ -x .deps/kubectl-1.20/kubectl ] && legacy_opt=(-Dkubectl_legacy="$PWD/.deps/kubectl-1.20/kubectl")

setup() {
        local dir=$1; shift
        if [ -f "$dir/build.ninja" ]; then
                meson setup --reconfigure "$dir" -Dwerror=true "${legacy_opt[@]}" "$@" >/dev/null
        else
                meson setup "$dir" -Dwerror=true "${legacy_opt[@]}" "$@" >/dev/null
        fi
}

stage "build (-Werror)"
setup build
ninja -C build

stage "tests"
meson test -C build --print-errorlogs --num-processes "$jobs"

stage "build with AddressSanitizer + UndefinedBehaviorSanitizer"
setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
ninja -C build-asan

stage "tests under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        meson test -C build-asan --print-errorlogs --num-processes "$jobs" --timeout-multiplier 3

stage "lint"
tools/lint.sh

stage "all checks passed"
