#!/usr/bin/env bash
# How long a new member takes to catch up with a loaded cluster, and to be promoted.
#
#   bench/learner_catchup.sh [-k KEYS] [-s VALUE_SIZE] [-B BUILD_DIR] [-d DIR] [-K]
#
# Starts a 3-node cluster with deploy/cluster.sh in DIR (default: a new temporary directory),
# writes KEYS keys of VALUE_SIZE bytes with raft-bench --prefill (default 100,000 x 1,000 bytes,
# ~100 MB: more than snapshot_bytes, so the learner gets a snapshot and then the log), then
# adds node 4 by hand and times each step:
#   add-learner  raft-kv member add-learner 4 ... (the call itself)
#   catch-up     from the add until the learner's match_index reaches the leader's last index
#                as the add answered it (raft-kv member list --json, polled every 20 ms)
#   promote      raft-kv member promote 4 (the call itself; retried while refused as behind)
# and prints the data directories' sizes. The cluster is destroyed afterwards unless -K.
# BUILD_DIR holds cmd/raftd, cmd/raft-kv and bench/raft-bench (default: build/release,
# which tests/run.sh makes).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
keys=100000
value_size=1000
build=$here/build/release
dir=""
keep=0
usage() {
    sed -n '2,/^set -/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit "$1"
}
while getopts "k:s:B:d:Kh" opt; do
    case $opt in
    k) keys=$OPTARG ;;
    s) value_size=$OPTARG ;;
    B) build=$OPTARG ;;
    d) dir=$OPTARG ;;
    K) keep=1 ;;
    h) usage 0 ;;
    *) usage 2 ;;
    esac
done
[ -n "$dir" ] || dir=$(mktemp -d /tmp/learner-catchup.XXXXXX)/cluster
cluster() { RAFTD=$build/cmd/raftd bash "$here/deploy/cluster.sh" -d "$dir" -n 3 "$@"; }
kv() { "$build/cmd/raft-kv" --endpoints "$endpoints" "$@"; }
now_ms() { date +%s%3N; }
# The first number field $1 of the JSON on stdin ($2: inside the member with id $2).
num() {
    local json
    json=$(cat)
    [ -z "${2:-}" ] || json=$(grep -o "{\"id\":$2,[^{}]*}" <<<"$json")
    grep -o "\"$1\":[0-9]*" <<<"$json" | head -n 1 | cut -d: -f2
}

node4_pid=""
finish() {
    [ -z "$node4_pid" ] || kill "$node4_pid" 2>/dev/null || true
    if [ $keep = 1 ]; then
        cluster stop >/dev/null 2>&1 || true
        echo "kept: $dir"
    else
        cluster destroy >/dev/null 2>&1 || true
        rmdir "$(dirname "$dir")" 2>/dev/null || true
    fi
}
trap finish EXIT

cluster start >/dev/null
endpoints=$(cluster endpoints)
echo "cluster: $dir ($endpoints)"
t=$(now_ms)
"$build/bench/raft-bench" --endpoints "$endpoints" --prefill --keys "$keys" \
    --value-size "$value_size" --ops 1 --clients 64 | grep '^prefill'
echo "load: $keys keys of $value_size bytes in $((($(now_ms) - t) / 1000)) s"
echo "data dirs before the add: $(du -sm "$dir"/node[123]/data | awk '{printf "%s MB ", $1}')"

# Node 4's config: node 1's, with its own id, data dir and publisher port, and join = true
# (it learns the membership from the log). cluster.sh add would do the same, but times
# nothing and polls its promotion every 0.5 s.
base_port=$(sed -n 's/^base_port=//p' "$dir/cluster.env")
mkdir -p "$dir/node4"
{
    sed -e 's/^node_id = .*/node_id = 4/' -e "s#/node1/data#/node4/data#" \
        -e "s#^pub_address = \(.*\):[0-9]*#pub_address = \1:$((base_port + 204))#" \
        "$dir/node1/node.conf"
    echo "join = true"
    echo "peer.4 = tcp://127.0.0.1:$((base_port + 4))"
    echo "client.4 = tcp://127.0.0.1:$((base_port + 104))"
} >"$dir/node4/node.conf"
"$build/cmd/raftd" --config "$dir/node4/node.conf" >"$dir/node4/raftd.log" 2>&1 &
node4_pid=$!
until grep -q ': running: ' "$dir/node4/raftd.log"; do
    kill -0 $node4_pid || { cat "$dir/node4/raftd.log"; exit 1; }
    sleep 0.05
done

t0=$(now_ms)
added=$(kv --json member add-learner 4 "tcp://127.0.0.1:$((base_port + 4))" \
    "tcp://127.0.0.1:$((base_port + 104))")
t_added=$(now_ms)
target=$(num last_index <<<"$added")
deadline=$((SECONDS + 600))
while :; do
    match=$(kv --json member list | num match_index 4) || true
    [ "${match:-0}" -lt "$target" ] || break
    [ $SECONDS -lt $deadline ] || { echo "no catch-up within 600 s (match ${match:-?})"; exit 1; }
    sleep 0.02
done
t_caught=$(now_ms)
# Refused while the learner is behind (the log moved on); an answer lost after it was made
# leaves it a voter, which the next promote refuses: the role says which.
until out=$(kv member promote 4 2>&1) || kv --json member list | grep -q '{"id":4,"role":"voter"'; do
    [ $SECONDS -lt $deadline ] || { echo "not promoted: $out"; exit 1; }
    sleep 0.02
done
t_promoted=$(now_ms)
echo "add-learner: $((t_added - t0)) ms"
echo "catch-up to index $target: $((t_caught - t0)) ms after the add"
echo "promote: $((t_promoted - t_caught)) ms"
echo "data dirs after: $(du -sm "$dir"/node[1234]/data | awk '{printf "%s MB ", $1}')"
echo "node 4's log: $(grep -c . "$dir/node4/raftd.log") lines; snapshot lines:"
grep -i snapshot "$dir/node4/raftd.log" | head -n 5 || true
