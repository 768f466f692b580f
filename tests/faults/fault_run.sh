#!/usr/bin/env bash
# One fault run on a real local cluster, checked for linearizability:
#   tests/faults/fault_run.sh [SECONDS] [NODES]      (defaults 20, 3)
# Starts a cluster (deploy/cluster.sh), runs kv-workload against it while the leader or a
# random node is killed (kill -9) and restarted or paused (SIGSTOP) for longer than an
# election timeout, then checks the recorded history with lincheck and prints its verdict.
# Exit status: lincheck's (0 linearizable, 1 not, 2 undecided). It uses only 127.0.0.1 and
# kill/SIGSTOP, so it needs no root; netns_faults.sh, which ctest runs, adds partitions,
# one-way drops and loss in network namespaces (tests/faults/README.md).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$top/build/release}
seconds=${1:-20}
nodes=${2:-3}
dir=$(mktemp -d /tmp/raftkv-faults-XXXXXX)
cluster() { RAFTKV_CLUSTER_DIR=$dir/cluster RAFTKV_NODES=$nodes RAFTD=$build/cmd/raftd \
  "$top/deploy/cluster.sh" "$@" >/dev/null; }
trap 'cluster destroy || true' EXIT
cluster start
endpoints=$(RAFTKV_CLUSTER_DIR=$dir/cluster "$top/deploy/cluster.sh" endpoints)
leader() { # the id of the node that says it leads, or a random one
  "$build/cmd/raft-kv" --endpoints "$endpoints" --timeout 1000 --json status 2>/dev/null |
    grep -o '"role":"leader","id":[0-9]*' | head -1 | grep -o '[0-9]*$' || echo $((RANDOM % nodes + 1))
}
"$build/tests/faults/kv-workload" --endpoints "$endpoints" --history "$dir/history" \
  --clients 6 --keys 3 --seconds "$seconds" --request-timeout 300 --timeout 3000 &
workload=$!
end=$((SECONDS + seconds - 2))
while ((SECONDS < end)); do
  sleep 1.5
  id=$(leader)
  case $((RANDOM % 3)) in
    0) echo "fault: kill -9 node $id"; cluster kill "$id"; sleep 0.5; cluster start "$id" ;;
    1) echo "fault: SIGSTOP node $id for 1 s"; pid=$(cat "$dir/cluster/node$id/pid")
       kill -STOP "$pid"; sleep 1; kill -CONT "$pid" ;;
    2) id=$((RANDOM % nodes + 1)); echo "fault: kill -9 node $id"; cluster kill "$id"
       sleep 0.3; cluster start "$id" ;;
  esac
done
wait "$workload"
echo "history: $dir/history"
set +e
"$build/tests/faults/lincheck" "$dir/history"
rc=$?
cp "$dir/history" "/tmp/raftkv-faults-last.history"
echo "lincheck exit $rc (history kept as /tmp/raftkv-faults-last.history)"
exit $rc
