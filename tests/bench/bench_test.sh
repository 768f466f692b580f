#!/usr/bin/env bash
# Functional tests of raft-bench against clusters it spawns through deploy/cluster.sh.
# Asserts what a run must produce (no errors, operations counted, every acknowledged
# write found again), never a speed.
#   bench_test.sh RAFT_BENCH CASE      CASE: run | kill_leader | leader_fault | usage | plot
set -uo pipefail
bench=$1
case_name=$2
out=$(mktemp -d /tmp/raft-bench-test.XXXXXX)
trap 'rm -rf "$out"' EXIT

fail() {
    echo "FAIL: $*" >&2
    echo "--- stdout:" >&2
    cat "$out/stdout" >&2 2>/dev/null
    echo "--- stderr:" >&2
    cat "$out/stderr" >&2 2>/dev/null
    exit 1
}

# The first top-level number field NAME of the one-line JSON report.
field() {
    grep -o "\"$1\":[-0-9.]*" "$out/stdout" | head -n 1 | cut -d: -f2
}

run_bench() {
    "$bench" "$@" >"$out/stdout" 2>"$out/stderr"
}

case $case_name in
run)
    run_bench --spawn 3 --duration 2 --clients 8 --conns 2 --json || fail "exit status $?"
    ops=$(field ops)
    errors=$(field errors)
    [ -n "$ops" ] && [ "$ops" -gt 0 ] || fail "no operations counted (ops=$ops)"
    [ "$errors" = 0 ] || fail "errors=$errors"
    grep -q '"command":".*--spawn 3 --clients 8 --conns 2 --duration 2' "$out/stdout" ||
        fail "no reproducing command line"
    # A mix with reads and cas on a prefilled key space, by operation count, in text form.
    run_bench --spawn 3 --ops 300 --clients 4 --keys 50 --prefill --zipf 0.99 \
        --mix put=1,get=1,cas=1 --workers 2 --verify || fail "mixed run: exit status $?"
    grep -Eq '^all +[0-9.]+ +300 +0 ' "$out/stdout" || fail "mixed run: not 300 ops without errors"
    grep -q '^verify: every acknowledged write survived' "$out/stdout" || fail "mixed run: verify"
    grep -q '^reproduce: ' "$out/stdout" || fail "mixed run: no reproduce line"
    ;;
kill_leader)
    run_bench --spawn 3 --duration 4 --clients 8 --kill-leader-at 1.5 --mix put=70,get=10,cas=20 \
        --json || fail "exit status $?"
    grep -q '"leader_fault":{"fault":"kill","node":[1-3],' "$out/stdout" || fail "no leader killed"
    grep -q '"recovered":true' "$out/stdout" || fail "no write succeeded after the kill"
    grep -q '"verify":{"ok":true,' "$out/stdout" || fail "verification failed"
    [ "$(field intact)" -gt 0 ] || fail "nothing verified"
    [ "$(field lost)" = 0 ] || fail "acknowledged writes lost"
    ;;
leader_fault)
    # The graceful faults: the lead is handed over, nothing acknowledged is lost.
    for fault in move term; do
        run_bench --spawn 3 --duration 3 --clients 8 --kill-leader-at 1.5 --leader-fault $fault \
            --verify --json || fail "$fault: exit status $?"
        grep -q "\"leader_fault\":{\"fault\":\"$fault\",\"node\":[1-3]," "$out/stdout" ||
            fail "$fault: not dealt"
        grep -q '"recovered":true' "$out/stdout" || fail "$fault: no write succeeded after it"
        grep -q '"verify":{"ok":true,' "$out/stdout" || fail "$fault: verification failed"
        [ "$(field lost)" = 0 ] || fail "$fault: acknowledged writes lost"
        [ $fault != move ] || grep -q '"move":{"status":"ok","leader":[1-3],' "$out/stdout" ||
            fail "move: the call failed"
    done
    ;;
usage)
    for args in "--endpoints tcp://127.0.0.1:1 --consistency serializable" \
        "--endpoints tcp://127.0.0.1:1 --kill-leader-at 1" \
        "--spawn 3 --endpoints tcp://127.0.0.1:1" \
        "--spawn 3 --value-size 8" \
        "--spawn 3 --mix put=0" \
        "--spawn 3 --plot out.jpg" \
        "--spawn 3 --duration 2 --kill-leader-at 3" \
        "--spawn 3 --leader-fault move" \
        "--spawn 3 --duration 2 --kill-leader-at 1 --leader-fault stop" \
        "--spawn 3 --no-such-option"; do
        # shellcheck disable=SC2086
        run_bench $args
        [ $? = 2 ] || fail "'$args' is not a usage error"
    done
    run_bench --endpoints tcp://127.0.0.1:1 --consistency serializable
    grep -q "only 'linearizable' exists" "$out/stderr" || fail "no reason for --consistency"
    # A malformed endpoint is named before anything is tried.
    run_bench --endpoints tcp://127.0.0.1:1,127.0.0.1:2 --duration 1
    [ $? = 2 ] && grep -q 'bad endpoint "127.0.0.1:2": expected tcp://host:port' "$out/stderr" ||
        fail "a malformed endpoint is not named"
    # A value joined with '=' or in the next word: these refusals need both values read.
    for args in "--spawn=3 --duration=2 --kill-leader-at=3" \
        "--spawn 3 --duration 2 --kill-leader-at 3"; do
        # shellcheck disable=SC2086
        run_bench $args
        [ $? = 2 ] && grep -q 'must fall within --duration' "$out/stderr" || fail "'$args'"
    done
    for args in "--spawn 3 --clients=2 --conns=3" "--spawn 3 --clients 2 --conns 3"; do
        # shellcheck disable=SC2086
        run_bench $args
        [ $? = 2 ] && grep -q 'cannot exceed --clients' "$out/stderr" || fail "'$args'"
    done
    # What is refused is named.
    for args in "--no-such-option" "--json=yes" "-x" "stray" "--clients"; do
        # shellcheck disable=SC2086
        run_bench --spawn 3 $args
        [ $? = 2 ] && grep -q -- "${args%%=*}" "$out/stderr" || fail "'$args' not named"
    done
    for help in --help -h; do
        run_bench --spawn 3 $help || fail "$help: exit status $?"
        for opt in --endpoints --spawn --keep --cluster-script --raftd --clients --conns \
            --duration --ops --value-size --keys --zipf --mix --consistency --prefill \
            --workers --timeout --request-timeout --seed --kill-leader-at --leader-fault \
            --verify --json \
            --plot --help --version; do
            grep -q -- "$opt" "$out/stdout" || fail "$help does not list $opt"
        done
    done
    ;;
plot)
    command -v gnuplot >/dev/null || { echo "gnuplot not installed: skipped"; exit 77; }
    run_bench --spawn 3 --duration 1.5 --clients 4 --plot "$out/p.svg" || fail "exit $?"
    grep -q '<svg' "$out/p.svg" || fail "no svg drawn"
    [ "$(grep -vc '^#' "$out/p.svg.dat")" -ge 10 ] || fail "fewer than 10 buckets of 100 ms"
    ;;
*)
    echo "unknown case $case_name" >&2
    exit 2
    ;;
esac
echo "ok"
