#!/usr/bin/env bash
# The main job: install what is missing, build raftkv, start a three-node local cluster
# (in ./raftkv-cluster, left running), and write and read a key through raft-kv.
#   deploy/demo.sh            start (or reuse) the cluster and show a put and a get
#   deploy/demo.sh stop       stop it and delete its directory
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export RAFTKV_CLUSTER_DIR=${RAFTKV_CLUSTER_DIR:-$PWD/raftkv-cluster}
bin=$top/build/release/cmd
cluster() { "$top/deploy/cluster.sh" -b "$bin/raftd" "$@"; }

if [[ ${1:-} == stop ]]; then
  cluster destroy
  exit 0
fi
"$top/deploy/install-deps.sh"
cmake -S "$top" -B "$top/build/release" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build/release" -j "$(nproc)" --target raftd raft-kv >/dev/null
cluster start
endpoints=$(cluster endpoints)
kv() { "$bin/raft-kv" --endpoints "$endpoints" "$@"; }
echo "+ raft-kv put greeting 'hello, raft'"
kv put greeting 'hello, raft'
echo "+ raft-kv get greeting"
kv get greeting
echo "+ raft-kv status"
kv status
mapfile -t http < <(cluster http)
cat <<MSG

The cluster keeps running in $RAFTKV_CLUSTER_DIR. Talk to it:
  export RAFTKV_ENDPOINTS=$endpoints
  $bin/raft-kv put KEY VALUE | get KEY | delete KEY | cas KEY EXPECTED NEW | list | status
Over HTTP (every node: ${http[*]}):
  curl ${http[0]}/health | /status | /metrics
  curl -X PUT --data-binary VALUE ${http[0]}/v1/kv/KEY;  curl ${http[0]}/v1/kv/KEY
Crash and restart a node:  deploy/cluster.sh -b $bin/raftd kill 1; deploy/cluster.sh -b $bin/raftd start 1
Stop and delete it:        deploy/demo.sh stop
MSG
