#!/usr/bin/env bash
# fault-figures on small histories whose figures are known (ctest fault_figures):
#   test_fault_figures.sh FAULT_FIGURES
set -euo pipefail
figures=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
failed=0

# NAME EXPECTED HISTORY [HEALS]: the figures must hold every key=value of EXPECTED.
check() {
    printf '%s' "$3" >"$dir/history"
    printf '%s' "${4:-}" >"$dir/heals"
    local got kv
    got=$("$figures" "$dir/history" "$dir/heals" 2>"$dir/stderr")
    for kv in $2; do
        if [[ " $got " != *" $kv "* ]]; then
            echo "FAIL $1: expected $kv, got: $got"
            failed=$((failed + 1))
            return
        fi
    done
    echo "ok   $1"
}

# Times in ms (the format's ns, shortened by the suffix).
check "linearizable, served after each heal" \
    "ops=5 ok=4 unknown=1 lost=0 stale=0 unread=0 heals=2 unserved=0 heal_ms=300 gap_ms=2000" \
    '1 1000000000 1100000000 put "k" "a" ok
2 1200000000 1300000000 get "k" ok "a"
1 1400000000 1500000000 cas "k" "a" "b" unknown
2 3000000000 3100000000 delete "k" ok
0 4000000000 4100000000 get "k" notfound
' 'heal 1000000000
heal 2800000000
'

check "issue 11: put a applied twice, after put b" "lost=0 stale=1" \
    '1 1000000000 1100000000 put "k" "a" ok
3 1010000000 1015000000 get "k" ok "a"
2 1020000000 1030000000 put "k" "b" ok
3 1032000000 1035000000 get "k" ok "b"
3 1060000000 1070000000 get "k" ok "a"
0 2000000000 2100000000 get "k" ok "b"
'

check "a retried cas answered mismatch with its own new value" "stale=1" \
    '1 1000000000 1100000000 cas "k" - "a" mismatch "a"
'

check "the final read shows an older acknowledged write" "lost=1 stale=1" \
    '1 1000000000 1100000000 put "k" "a" ok
2 1200000000 1300000000 put "k" "b" ok
0 2000000000 2100000000 get "k" ok "a"
'

check "an overwrite of unknown outcome loses nothing" "lost=0 stale=0" \
    '1 1000000000 1100000000 put "k" "a" ok
2 1200000000 1300000000 put "k" "b" unknown
0 2000000000 2100000000 get "k" ok "b"
'

check "not found at the end, a put acknowledged after every delete" "lost=1" \
    '1 1000000000 1100000000 delete "k" ok
2 1200000000 1300000000 put "k" "a" ok
0 2000000000 2100000000 get "k" notfound
'

check "no write after the last heal, a final read without answer" \
    "heals=1 unserved=1 unread=1" \
    '1 1000000000 1100000000 put "k" "a" ok
0 2000000000 2100000000 get "k" unknown
' 'heal 1500000000
'

echo "$((7 - failed)) passed, $failed failed"
((failed == 0))
