#!/usr/bin/env bash
# deploy/docker/entrypoint.sh, the container's entry point, outside a container: the node id
# from a StatefulSet host name's ordinal, its refusals, and a 3-node cluster of it on
# 127.0.0.1, 127.0.0.2 and 127.0.0.3 (one port set, as three pods or compose services have)
# that elects a leader, takes a put, reads it back, reports /health 200 on every node and
# passes the Dockerfile's HEALTHCHECK (raft-kv health), which fails once it is stopped.
# Run with dash, the /bin/sh of Debian's images.
#   entrypoint_test.sh SOURCE_DIR BUILD_CMD_DIR
set -uo pipefail
entry=$1/deploy/docker/entrypoint.sh
bin=$2
export PATH=$bin:$PATH
sh="sh"
command -v dash >/dev/null && sh=dash
work=$(mktemp -d /tmp/entrypoint-test.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.out "$work"/*.log; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}

"$sh" -n "$entry" || fail "$sh -n refuses it"

dry() { # env assignments...: the config the entry point writes, in $work/dry.out
  env -i PATH="$PATH" RAFTKV_CONF="$work/dry.conf" RAFTKV_DRY_RUN=1 "$@" "$sh" "$entry" \
    >"$work/dry.out" 2>&1
}
dry RAFTKV_CLUSTER_ID=9 RAFTKV_PEERS=a,b,c RAFTKV_HOSTNAME=raftkv-0 || fail "dry run: $?"
grep -qx 'node_id = 1' "$work/dry.out" || fail "raftkv-0 is not node 1"
grep -qx 'pub_address = tcp://a:7201' "$work/dry.out" || fail "node 1's pub address is not on a"
grep -qx 'peer.3 = tcp://c:7001' "$work/dry.out" || fail "member 3 is not c"
dry RAFTKV_CLUSTER_ID=9 RAFTKV_PEERS=a,b,c RAFTKV_HOSTNAME=raftkv-2 || fail "dry run: $?"
grep -qx 'node_id = 3' "$work/dry.out" || fail "raftkv-2 is not node 3"
dry RAFTKV_CLUSTER_ID=9 RAFTKV_PEERS=a,b,c RAFTKV_HOSTNAME=raftkv
[ $? = 2 ] && grep -q 'does not end in -<ordinal>' "$work/dry.out" || fail "no ordinal accepted"
dry RAFTKV_CLUSTER_ID=9 RAFTKV_PEERS=a,b,c RAFTKV_NODE_ID=4
[ $? = 2 ] && grep -q 'names 3 members' "$work/dry.out" || fail "node 4 of 3 accepted"
dry RAFTKV_PEERS=a,b,c RAFTKV_NODE_ID=1 && fail "no RAFTKV_CLUSTER_ID accepted"
grep -q RAFTKV_CLUSTER_ID "$work/dry.out" || fail "missing RAFTKV_CLUSTER_ID not named"

# Ports free on the three addresses, below the ephemeral range.
free() { ! (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
for _ in $(seq 50); do
  base=$((20000 + (RANDOM % 120) * 100))
  ok=1
  for i in 1 2 3; do
    for p in 1 2 3 4; do free "127.0.0.$i" $((base + p)) || ok=0; done
  done
  [ "$ok" = 1 ] && break
done
[ "$ok" = 1 ] || fail "no free ports"

for i in 1 2 3; do
  env RAFTKV_CLUSTER_ID=77 RAFTKV_PEERS=127.0.0.1,127.0.0.2,127.0.0.3 RAFTKV_NODE_ID=$i \
    RAFTKV_LISTEN_HOST=127.0.0.$i RAFTKV_PEER_PORT=$((base + 1)) \
    RAFTKV_CLIENT_PORT=$((base + 2)) RAFTKV_PUB_PORT=$((base + 3)) \
    RAFTKV_HTTP_PORT=$((base + 4)) RAFTKV_DATA_DIR="$work/n$i" RAFTKV_CONF="$work/n$i.conf" \
    "$sh" "$entry" >"$work/n$i.log" 2>&1 &
  pids+=($!)
done
endpoints=tcp://127.0.0.1:$((base + 2)),tcp://127.0.0.2:$((base + 2)),tcp://127.0.0.3:$((base + 2))
kv() { raft-kv --endpoints "$endpoints" --timeout 30000 "$@"; }
kv put greeting hello >"$work/kv.out" 2>&1 || fail "put: exit status $?"
[ "$(kv get greeting)" = hello ] || fail "get did not return the value put"

health() { # node: the status line of GET /health
  (
    exec 3<>"/dev/tcp/127.0.0.$1/$((base + 4))" || exit 1
    printf 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
    head -n 1 <&3
  ) 2>/dev/null
}
for i in 1 2 3; do
  deadline=$((SECONDS + 30))
  until [[ $(health $i) == "HTTP/1.1 200"* ]]; do
    [ $SECONDS -lt $deadline ] || fail "node $i: /health is not 200 within 30 s"
    sleep 0.1
  done
  # The Dockerfile's HEALTHCHECK, on this node.
  raft-kv --endpoints "tcp://127.0.0.$i:$((base + 2))" --timeout 30000 health >"$work/hc.out" 2>&1 ||
    fail "node $i: raft-kv health (the HEALTHCHECK) exit status $?"
done

# exec: the entry point's process is raftd, which SIGTERM stops cleanly.
for i in 0 1 2; do kill -TERM "${pids[$i]}"; done
for i in 0 1 2; do
  wait "${pids[$i]}" || fail "node $((i + 1)) exited with status $? on SIGTERM"
done
pids=()
# ... which fails once the node is down.
raft-kv --endpoints "tcp://127.0.0.1:$((base + 2))" --timeout 1000 health >"$work/hc.out" 2>&1
[ $? = 3 ] || fail "raft-kv health (the HEALTHCHECK) on a stopped node: not exit status 3"
echo ok
