#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The project's checksrc: rejects calls that are easy to get wrong, in the
# project's own C. Each rule names the safe alternative.
#   sprintf strcpy strcat strtok atoi gets system  → snprintf, memcpy with a length, strtok_r, safe_atoi …
#   open()/openat() without O_CLOEXEC, socket()/accept4() without SOCK_CLOEXEC, accept() at all
set -uo pipefail
cd "$(dirname "$0")/.."

files=$(git ls-files '*.c' '*.h' 2>/dev/null; git ls-files --others --exclude-standard '*.c' '*.h' 2>/dev/null)
status=0
report() { echo "lint: $1"; status=1; }

for f in $files; do
        [ -f "$f" ] || continue
        # Strip comments and string literals crudely so prose does not trip the rules.
        body=$(perl -0pe 's{/\*.*?\*/}{"\n" x ($& =~ tr/\n//)}gse; s{//[^\n]*}{}g; s{"(?:[^"\\\n]|\\.)*"}{""}g' "$f")
        while IFS=: read -r line call; do
                [ -n "$line" ] && report "$f:$line: banned call ${call%%(*}()"
        done < <(grep -noE '(^|[^_a-zA-Z0-9.>])(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|atoll|gets|system)[[:space:]]*\(' <<<"$body" | sed -E 's/:[^a-z]*/:/')
        while IFS= read -r hit; do
                [ -n "$hit" ] && report "$f:$hit: open() without O_CLOEXEC"
        done < <(grep -nE '(^|[^_a-zA-Z0-9.>])(open|openat)[[:space:]]*\(' <<<"$body" | grep -v 'O_CLOEXEC' | cut -d: -f1)
        while IFS= read -r hit; do
                [ -n "$hit" ] && report "$f:$hit: socket()/accept4() without SOCK_CLOEXEC"
        done < <(grep -nE '(^|[^_a-zA-Z0-9.>])(socket|accept4)[[:space:]]*\(' <<<"$body" | grep -v 'SOCK_CLOEXEC' | cut -d: -f1)
        while IFS= read -r hit; do
                [ -n "$hit" ] && report "$f:$hit: accept() cannot set CLOEXEC atomically; use accept4(…, SOCK_CLOEXEC)"
        done < <(grep -nE '(^|[^_a-zA-Z0-9.>])accept[[:space:]]*\(' <<<"$body" | cut -d: -f1)
done
[ $status -eq 0 ] && echo "lint: clean ($(echo "$files" | wc -w) files)"
exit $status
