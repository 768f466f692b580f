#!/bin/sh
# raftd in a container: writes the node's config from the environment, then runs raftd.
# The Dockerfile installs it as raftkv-entrypoint; compose.yaml and deploy/k8s/ use it.
#
#   RAFTKV_CLUSTER_ID    required: the cluster's id (a positive integer, the same on every node)
#   RAFTKV_PEERS         required: every member's host name or address, comma-separated;
#                        member i (1, 2, ...) is the i-th
#   RAFTKV_NODE_ID       this node's id; without it, the ordinal at the end of the host name
#                        plus 1 (a StatefulSet's pod raftkv-0 is node 1)
#   RAFTKV_PEER_PORT, RAFTKV_CLIENT_PORT, RAFTKV_PUB_PORT, RAFTKV_HTTP_PORT
#                        7001, 7101, 7201, 7301: the same on every member
#   RAFTKV_LISTEN_HOST   what raftd binds (default 0.0.0.0: every interface)
#   RAFTKV_DATA_DIR      default /var/lib/raftkv/data
#   RAFTKV_CONF          where the config is written (default /var/lib/raftkv/node.conf)
#   RAFTKV_EXTRA_CONF    lines appended to the config (deploy/node.conf.example has every key)
#   RAFTKV_HOSTNAME      the host name to take the ordinal from (default: the kernel's)
#   RAFTKV_DRY_RUN=1     print the config and exit instead of running raftd
# Checked by tests/deploy/entrypoint_test.sh (a 3-node cluster of it on 127.0.0.1-3, and the
# ordinal and refusals); with `sh -n` and under dash.
set -eu

die() {
    echo "raftkv-entrypoint: $*" >&2
    exit 2
}

: "${RAFTKV_CLUSTER_ID:?raftkv-entrypoint: RAFTKV_CLUSTER_ID is required}"
: "${RAFTKV_PEERS:?raftkv-entrypoint: RAFTKV_PEERS is required (host,host,host)}"
peer_port=${RAFTKV_PEER_PORT:-7001}
client_port=${RAFTKV_CLIENT_PORT:-7101}
pub_port=${RAFTKV_PUB_PORT:-7201}
http_port=${RAFTKV_HTTP_PORT:-7301}
listen=${RAFTKV_LISTEN_HOST:-0.0.0.0}
data_dir=${RAFTKV_DATA_DIR:-/var/lib/raftkv/data}
conf=${RAFTKV_CONF:-/var/lib/raftkv/node.conf}

id=${RAFTKV_NODE_ID:-}
if [ -z "$id" ]; then
    host=${RAFTKV_HOSTNAME:-$(cat /proc/sys/kernel/hostname)}
    ordinal=${host##*-}
    case $ordinal in
    '' | *[!0-9]*) die "RAFTKV_NODE_ID unset, and host name \"$host\" does not end in -<ordinal>" ;;
    esac
    id=$((ordinal + 1))
fi
case $id in
'' | *[!0-9]* | 0*) die "bad node id \"$id\"" ;;
esac

# Member i's host: the i-th of RAFTKV_PEERS.
n=0
self=""
peers=""
old_ifs=$IFS
IFS=,
for h in $RAFTKV_PEERS; do
    [ -n "$h" ] || die "RAFTKV_PEERS has an empty entry: \"$RAFTKV_PEERS\""
    n=$((n + 1))
    peers="${peers}peer.$n = tcp://$h:$peer_port
client.$n = tcp://$h:$client_port
"
    [ "$n" -ne "$id" ] || self=$h
done
IFS=$old_ifs
[ -n "$self" ] || die "node id $id, but RAFTKV_PEERS names $n members"

mkdir -p "$(dirname "$conf")"
{
    echo "# Written by raftkv-entrypoint from the environment."
    echo "node_id = $id"
    echo "cluster_id = $RAFTKV_CLUSTER_ID"
    echo "data_dir = $data_dir"
    printf '%s' "$peers"
    echo "pub_address = tcp://$self:$pub_port"
    echo "listen_peer = tcp://$listen:$peer_port"
    echo "listen_client = tcp://$listen:$client_port"
    echo "listen_pub = tcp://$listen:$pub_port"
    echo "http_address = http://$listen:$http_port"
    [ -z "${RAFTKV_EXTRA_CONF:-}" ] || echo "$RAFTKV_EXTRA_CONF"
} >"$conf"

if [ "${RAFTKV_DRY_RUN:-0}" = 1 ]; then
    cat "$conf"
    exit 0
fi
exec raftd --config "$conf"
