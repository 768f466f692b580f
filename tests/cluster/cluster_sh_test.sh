#!/usr/bin/env bash
# deploy/cluster.sh and raft-kv together, as the README uses them: start three nodes, put
# and get, kill the leader, restart it and a wiped node, stop cleanly.
# Usage: cluster_sh_test.sh RAFTD RAFT_KV
set -euo pipefail
raftd=$1
kv_bin=$2
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/raftkv-clustersh-XXXXXX)
ok=0
cleanup() {
    "$top/deploy/cluster.sh" -d "$work/c" destroy >/dev/null 2>&1 || true
    if [ $ok -eq 1 ]; then rm -rf "$work"; else echo "kept $work" >&2; fi
}
trap cleanup EXIT

cluster() { "$top/deploy/cluster.sh" -d "$work/c" -b "$raftd" "$@"; }
fail() {
    echo "FAIL: $*" >&2
    for log in "$work"/c/node*/raftd.log; do
        echo "---- $log" >&2
        tail -n 15 "$log" >&2
    done
    exit 1
}

cluster start >/dev/null
endpoints=$(cluster endpoints)
kv() { "$kv_bin" --endpoints "$endpoints" "$@"; }

# Polls "$@" (a command) every 50 ms for up to 10 s.
wait_for() {
    local deadline=$((SECONDS + 10))
    until "$@"; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.05
    done
}

# The id of the node that says it leads, if any.
leader_id() {
    kv --json status | grep -o '"role":"leader","id":[0-9]*' | grep -o '[0-9]*$' | head -n 1
}
has_leader() { [ -n "$(leader_id)" ]; }

# applied index of node $1 >= $2
applied_at_least() {
    local applied
    applied=$("$kv_bin" --endpoints "$(echo "$endpoints" | cut -d, -f"$1")" --json status |
        grep -o '"applied":[0-9]*' | grep -o '[0-9]*$')
    [ -n "$applied" ] && [ "$applied" -ge "$2" ]
}

revision_of() { grep -o '"revision":[0-9]*' | grep -o '[0-9]*$'; }

[ "$(kv put greeting 'hello, raft')" = OK ] || fail "put"
[ "$(kv get greeting)" = 'hello, raft' ] || fail "get"

# cluster.sh http: every node's HTTP port, with the gateway: the demo's curl lines work.
mapfile -t http < <(cluster http)
[ ${#http[@]} -eq 3 ] || fail "cluster.sh http: ${http[*]}"
for url in "${http[@]}"; do
    [[ $(curl -s "$url/v1/kv/greeting?raw") == 'hello, raft' ]] || fail "gateway get at $url"
done
[ "$(curl -s -X PUT --data-binary 'over http' "${http[1]}/v1/kv/via-http" -o /dev/null \
    -w '%{http_code}')" = 200 ] || fail "gateway put"
[ "$(kv get via-http)" = 'over http' ] || fail "a put through the gateway, read with raft-kv"
wait_for has_leader || fail "no leader"
leader=$(leader_id)

# health: a quorum answers and a leader serves a read. The leader it names is the one the
# nodes name (an election in between makes it try again).
health_is() { # expected start of the line, up to the leader's id
    local out
    out=$(kv health) && [[ $out == "$1$(leader_id) (term "* ]]
}
wait_for health_is "healthy: 3 of 3 nodes answered, leader " || fail "health: '$(kv health)'"

cluster kill "$leader"
wait_for health_is "healthy: 2 of 3 nodes answered, leader " || fail "health: '$(kv health)'"
rev=$(kv --json put after-kill yes | revision_of) || fail "put after killing leader $leader"
[ "$(kv get after-kill)" = yes ] || fail "get after kill"
cluster start "$leader" >/dev/null
wait_for applied_at_least "$leader" "$rev" || fail "old leader $leader did not catch up to $rev"

# A node that lost its disk rejoins empty and catches up from the leader's log.
victim=$(( leader % 3 + 1 ))
cluster wipe "$victim"
[ ! -e "$work/c/node$victim/data" ] || fail "wipe left the data dir"
cluster start "$victim" >/dev/null
rev=$(kv --json put after-wipe yes | revision_of) || fail "put after wipe"
wait_for applied_at_least "$victim" "$rev" || fail "wiped node $victim did not catch up to $rev"

# Without a quorum: health and a write fail with status 3 and say how many nodes answered.
cluster stop 1 >/dev/null
cluster stop 2 >/dev/null
st=0 && out=$(kv --timeout 1000 health) || st=$?
[ $st = 3 ] && [ "$out" = "unhealthy: 1 of 3 nodes answered, no quorum" ] ||
    fail "health: status $st, '$out'"
st=0 && out=$(kv --timeout 1000 put k v 2>&1) || st=$?
[ $st = 3 ] && [[ $out == *"1 of 3 nodes answered, no quorum"* ]] || fail "put: status $st, '$out'"
# A quorum of the endpoints given (node 3 alone), but no leader can serve a read.
st=0 && out=$("$kv_bin" --endpoints "$(echo "$endpoints" | cut -d, -f3)" --timeout 1000 health) ||
    st=$?
[ $st = 3 ] && [[ $out == "unhealthy: 1 of 1 node answered, "*"; no leader served a read: "* ]] ||
    fail "health of node 3: status $st, '$out'"

cluster stop
cluster status | grep -q running && fail "a node still runs after stop"
for i in 1 2 3; do
    # The last run of each node ended with a clean stop.
    awk '/: running: /{s=0} /: stopping$/{s=1} END{exit !s}' "$work/c/node$i/raftd.log" ||
        fail "node $i did not stop cleanly"
done
# Sanitizer builds report leaks and errors at exit into the logs.
if grep -l "Sanitizer" "$work"/c/node*/raftd.log; then fail "sanitizer report in a node log"; fi
ok=1
echo "cluster.sh test passed"
