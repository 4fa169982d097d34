#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The timed fuzz runs of docs/reliability.md (`make fuzz`): builds every
# tests/fuzz/fuzz-*.c as a libFuzzer binary with clang and ASan+UBSan, the
# whole library instrumented for coverage (-fsanitize=fuzzer-no-link, so
# libFuzzer is guided by the parsers' branches, not only the harness's), then
# runs each target for a bounded time, one at a time, seeded with its stored
# corpus, and prints one line per target: executions, seconds, corpus size,
# new inputs and crashes.
#
# A local activity (CI only replays the corpora, `meson test --suite fuzz`).
# Nothing under tests/ is modified: the grown corpus and any crash
# reproducer stay in $BUILD/fuzz-work/<target>/; `--merge` additionally
# writes the inputs that add coverage over the stored corpus to
# $BUILD/fuzz-new/<target>/ (libFuzzer -merge=1), to pick a few from.
#
# usage: tools/fuzz.sh [--seconds N] [--merge] [--build DIR] [target…]
#        (targets by name: rollout-spec, procnet, …; default all)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-180}
build=${FUZZ_BUILD:-build-fuzz}
merge=no
targets=()
while [ $# -gt 0 ]; do
        case $1 in
        --seconds) seconds=$2; shift 2 ;;
        --build) build=$2; shift 2 ;;
        --merge) merge=yes; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
        esac
done
case $seconds in ''|*[!0-9]*) echo "fuzz.sh: --seconds: expected a whole number, got \"$seconds\"" >&2; exit 2 ;; esac

command -v clang >/dev/null || { echo "fuzz.sh: clang is required (Debian: clang libclang-rt-dev)" >&2; exit 1; }

if [ ${#targets[@]} -eq 0 ]; then
        for f in tests/fuzz/fuzz-*.c; do
                name=${f#tests/fuzz/fuzz-}; name=${name%.c}
                [ "$name" = replay ] || targets+=("$name")
        done
fi
for t in "${targets[@]}"; do
        [ -f "tests/fuzz/fuzz-$t.c" ] || { echo "fuzz.sh: no target \"$t\" (tests/fuzz/fuzz-$t.c)" >&2; exit 2; }
done

if [ ! -f "$build/build.ninja" ]; then
        CC=clang meson setup "$build" -Dfuzzer=true -Db_sanitize=address,undefined -Db_lundef=false \
                -Dc_args=-fsanitize=fuzzer-no-link >/dev/null
fi
ninja -C "$build" "${targets[@]/#/tests/fuzz/fuzz-}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

printf '%-14s %12s %8s %8s %8s %8s %s\n' target executions seconds corpus new crashes notes
status=0
for t in "${targets[@]}"; do
        work=$build/fuzz-work/$t
        rm -rf "$work"
        mkdir -p "$work/corpus" "$work/artifacts"
        cp tests/fuzz/corpus/$t/* "$work/corpus/" 2>/dev/null || true
        stored=$(find "$work/corpus" -type f | wc -l)
        start=$(date +%s)
        rc=0
        "$build/tests/fuzz/fuzz-$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
                -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1 || rc=$?
        took=$(( $(date +%s) - start ))
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
        grown=$(find "$work/corpus" -type f | wc -l)
        crashes=$(find "$work/artifacts" -type f | wc -l)
        notes=""
        [ "$rc" -ne 0 ] && { notes="exit $rc, see $work/log"; status=1; }
        if [ "$merge" = yes ]; then
                rm -rf "$build/fuzz-new/$t" "$work/merged"
                mkdir -p "$build/fuzz-new/$t" "$work/merged"
                cp tests/fuzz/corpus/$t/* "$work/merged/" 2>/dev/null || true
                "$build/tests/fuzz/fuzz-$t" -merge=1 "$work/merged" "$work/corpus" >"$work/merge.log" 2>&1 || true
                for f in "$work/merged"/*; do
                        [ -e "tests/fuzz/corpus/$t/$(basename "$f")" ] || cp "$f" "$build/fuzz-new/$t/"
                done
                notes="$notes $(find "$build/fuzz-new/$t" -type f | wc -l) add coverage"
        fi
        printf '%-14s %12s %8s %8s %8s %8s %s\n' "$t" "${execs:-?}" "$took" "$grown" $((grown - stored)) "$crashes" "$notes"
done
exit $status
