#!/usr/bin/env bash
# deploy/cluster.sh's membership changes with raft-kv, as README's "Changing the cluster"
# runs them: start 3 nodes, grow to 5 (add 4, add 5), shrink to 3 (remove the leader and a
# follower), replace a killed node with a new one, restart every node in turn. Writes go on
# during some steps; after each step every acknowledged key must be readable.
# Usage: cluster_sh_members_test.sh RAFTD RAFT_KV
set -euo pipefail
raftd=$1
kv_bin=$2
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/raftkv-clustersh-members-XXXXXX)
ok=0
writer=""
cleanup() {
    [ -z "$writer" ] || kill "$writer" 2>/dev/null || true
    "$top/deploy/cluster.sh" -d "$work/c" destroy >/dev/null 2>&1 || true
    if [ $ok -eq 1 ]; then rm -rf "$work"; else echo "kept $work" >&2; fi
}
trap cleanup EXIT

# Deadlines, not timings: a loaded 2-core machine may be slow, never wrong.
export RAFTKV_CLI=$kv_bin RAFTKV_WAIT=120
cluster() { "$top/deploy/cluster.sh" -d "$work/c" -b "$raftd" "$@"; }
# Through every node of the cluster's list as it is now.
kv() { "$kv_bin" --endpoints "$(cluster endpoints)" "$@"; }
fail() {
    echo "FAIL: $*" >&2
    kv member list >&2 || true
    for log in "$work"/c/node*/raftd.log; do
        echo "---- $log" >&2
        tail -n 15 "$log" >&2
    done
    exit 1
}

# Polls "$@" (a command) every 100 ms for up to 60 s.
wait_for() {
    local deadline=$((SECONDS + 60))
    until "$@"; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}

# The members as "ID:ROLE ..." sorted by id, from raft-kv --json member list (its field
# names read leniently, as cluster.sh does).
members() {
    kv --json member list | tr -d '\n' | grep -o '"members" *: *\[[^]]*\]' | grep -o '{[^{}]*}' |
        while read -r obj; do
            printf '%s:%s\n' "$(grep -o '"id" *: *[0-9]*' <<<"$obj" | grep -o '[0-9]*$')" \
                "$(grep -o '"role" *: *"[a-z]*"' <<<"$obj" | grep -o '[a-z]*"$' | tr -d '"')"
        done | sort -n | tr '\n' ' ' | sed 's/ $//'
}
members_are() { [ "$(members)" = "$1" ]; }
expect_members() {
    wait_for members_are "$1" || fail "members: '$(members)', expected '$1'"
}

# cluster.sh "$@" fails, saying $1.
expect_refused() {
    local st=0 out what=$1
    shift
    out=$(cluster "$@" 2>&1) || st=$?
    if [ $st = 0 ] || [[ $out != *"$what"* ]]; then fail "cluster.sh $*: status $st, '$out'"; fi
}

leader_id() {
    kv --json status | grep -o '"role":"leader","id":[0-9]*' | grep -o '[0-9]*$' | head -n 1
}

# Keys written and acknowledged: "key value" lines.
acked=$work/acked
: >"$acked"
put_keys() { # put_keys TAG N
    local i
    for ((i = 1; i <= $2; i++)); do
        [ "$(kv put "$1-$i" "value of $1-$i")" = OK ] || fail "put $1-$i"
        echo "$1-$i value of $1-$i" >>"$acked"
    done
}
check_keys() { # every acknowledged key, read through the leader (linearizable)
    local key value n=0
    while read -r key value; do
        [ "$(kv get "$key")" = "$value" ] || fail "$1: $key is '$(kv get "$key" || true)'"
        n=$((n + 1))
    done <"$acked"
    echo "$1: $n keys readable"
}

# A client putting keys while a step runs; it records those acknowledged. It uses the
# endpoints given at its start (a node it names may be gone: the others redirect it).
start_writer() {
    local eps
    eps=$(cluster endpoints)
    (
        i=0
        while :; do
            i=$((i + 1))
            if [ "$("$kv_bin" --endpoints "$eps" --timeout 10000 put "$1-$i" "w$i" 2>/dev/null)" = OK ]
            then
                echo "$1-$i w$i" >>"$acked"
            fi
        done
    ) &
    writer=$!
}
stop_writer() {
    kill "$writer"
    wait "$writer" 2>/dev/null || true
    writer=""
}

cluster start >/dev/null
# A cluster.env from before membership changes ("nodes=3"): the script still reads it, and
# writes the list form at the first change.
sed -i 's/^ids="1 2 3"$/nodes=3/; /^cluster_id=/d' "$work/c/cluster.env"
grep -q '^nodes=3$' "$work/c/cluster.env" || fail "cluster.env: $(cat "$work/c/cluster.env")"
[ "$(cluster endpoints | tr ',' '\n' | wc -l)" = 3 ] || fail "endpoints of nodes=3"

put_keys start 20
expect_members "1:voter 2:voter 3:voter"
check_keys "3 nodes"

# Refused before anything changes: an id in use, one past the port ranges, no id.
expect_refused "already" add 3
expect_refused "1..99" add 100
expect_refused "no node 9" remove 9

# Grow 3 -> 5, with writes going on during the second addition.
cluster add 4 || fail "add 4"
grep -q '^ids="1 2 3 4"$' "$work/c/cluster.env" || fail "cluster.env: $(cat "$work/c/cluster.env")"
grep -q '^join = true$' "$work/c/node4/node.conf" || fail "node4.conf has no join = true"
expect_members "1:voter 2:voter 3:voter 4:voter"
start_writer grow
cluster add 5 || fail "add 5"
stop_writer
expect_members "1:voter 2:voter 3:voter 4:voter 5:voter"
[ "$(cluster endpoints | tr ',' '\n' | wc -l)" = 5 ] || fail "endpoints after add 5"
put_keys five 10
check_keys "5 nodes"

# Shrink 5 -> 3: the leader first (it hands off its lead), then a follower.
leader=$(leader_id)
[ -n "$leader" ] || fail "no leader"
cluster remove "$leader" || fail "remove leader $leader"
[ -z "$(cluster status | grep "^node $leader:" || true)" ] || fail "node $leader still listed"
[ ! -e "$work/c/node$leader/pid" ] || fail "removed node $leader still runs"
[ -d "$work/c/node$leader/data" ] || fail "remove deleted node $leader's data"
# A removed id is never used again, even once its data is gone.
cluster wipe "$leader"
expect_refused "new id" add "$leader"
put_keys four 5
follower=""
for e in $(cluster endpoints | tr ',' ' '); do
    i=$((${e##*:} % 100)) # client port: base (a multiple of 100) + 100 + id
    [ "$i" = "$(leader_id)" ] || follower=$i
done
[ -n "$follower" ] || fail "no follower found"
cluster remove "$follower" || fail "remove follower $follower"
remaining=$(for i in 1 2 3 4 5; do
    [ "$i" = "$leader" ] || [ "$i" = "$follower" ] || echo "$i:voter"
done | tr '\n' ' ' | sed 's/ $//')
expect_members "$remaining"
put_keys three 10
check_keys "back to 3 nodes"

# A node dies and loses its disk: replace it with a new node 6.
dead=$(echo "$remaining" | tr ' ' '\n' | head -n 1 | cut -d: -f1)
cluster kill "$dead"
cluster replace "$dead" 6 || fail "replace $dead 6"
[ ! -e "$work/c/node$dead/data" ] || fail "replace kept node $dead's data"
expected=$(for m in $remaining "6:voter"; do [ "${m%%:*}" = "$dead" ] || echo "$m"; done |
    sort -n | tr '\n' ' ' | sed 's/ $//')
expect_members "$expected"
put_keys replaced 10
check_keys "after replacing node $dead with 6"

# Every node restarted in turn, while a client writes.
start_writer rolling
cluster rolling-restart || fail "rolling-restart"
stop_writer
expect_members "$expected"
put_keys rolled 10
check_keys "after a rolling restart"
for m in $expected; do
    i=${m%%:*}
    grep -q ': stopping$' "$work/c/node$i/raftd.log" || fail "node $i was not stopped cleanly"
done

# move-leader: the lead moves to the node named.
target=""
for m in $expected; do [ "${m%%:*}" = "$(leader_id)" ] || target=${m%%:*}; done
cluster move-leader "$target" >/dev/null || fail "move-leader $target"
leader_is() { [ "$(leader_id)" = "$1" ]; }
wait_for leader_is "$target" || fail "leader is '$(leader_id)', not $target"
check_keys "after move-leader"

cluster stop
cluster status | grep -q running && fail "a node still runs after stop"
# Sanitizer builds report leaks and errors at exit into the logs.
if grep -l "Sanitizer" "$work"/c/node*/raftd.log; then fail "sanitizer report in a node log"; fi
ok=1
echo "cluster.sh membership test passed"
