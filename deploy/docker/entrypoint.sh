#!/bin/sh
# raftd in a container: writes the node's config from the environment, then runs raftd.
# The Dockerfile installs it as raftkv-entrypoint; compose.yaml and deploy/k8s/ use it.
#   raftkv-entrypoint           write the config and exec raftd
#   raftkv-entrypoint health    the HEALTHCHECK: raft-kv health on this node's client port
#                               (127.0.0.1), with its TLS files when it has them
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
# TLS (README, "TLS"): with the cluster's CA, this node's certificate and its key, every
# address is tls+tcp:// and raftd speaks only TLS on its peer, client and pub ports;
# without any of them, plain tcp://. Some of them without the others is refused (exit 2).
#   RAFTKV_TLS_DIR       a directory holding ca.crt, tls.crt and tls.key (a Kubernetes TLS
#                        Secret's layout, as cert-manager writes it)
#   RAFTKV_TLS_CA, RAFTKV_TLS_CERT, RAFTKV_TLS_KEY
#                        the files one by one (each one over RAFTKV_TLS_DIR's); raft-kv reads
#                        the same variables, so raft-kv run in the container needs no --tls-*
#   RAFTKV_EXTRA_CONF can set tls_client_auth (default: clients must present a certificate).
# The HTTP port (/health, /status, /metrics) is plain http:// even then: raftd has no TLS
# for it.
# Checked by tests/deploy/entrypoint_test.sh (3-node clusters of it on 127.0.0.1-3, plain and
# with TLS, and the ordinal and refusals); with `sh -n` and under dash.
set -eu

die() {
    echo "raftkv-entrypoint: $*" >&2
    exit 2
}

# The TLS files into tls_ca, tls_cert and tls_key: all three, or none (scheme tcp).
tls_files() {
    d=${RAFTKV_TLS_DIR:-}
    tls_ca=${RAFTKV_TLS_CA:-${d:+$d/ca.crt}}
    tls_cert=${RAFTKV_TLS_CERT:-${d:+$d/tls.crt}}
    tls_key=${RAFTKV_TLS_KEY:-${d:+$d/tls.key}}
    scheme=tcp
    [ -n "$tls_ca$tls_cert$tls_key" ] || return 0
    missing=""
    tls_need CA RAFTKV_TLS_CA "$tls_ca"
    tls_need certificate RAFTKV_TLS_CERT "$tls_cert"
    tls_need key RAFTKV_TLS_KEY "$tls_key"
    [ -z "$missing" ] || die "TLS needs the CA, the certificate and the key (RAFTKV_TLS_DIR with\
 ca.crt, tls.crt and tls.key, or RAFTKV_TLS_CA, RAFTKV_TLS_CERT and RAFTKV_TLS_KEY); missing:\
${missing#,}"
    scheme=tls+tcp
}

tls_need() { # what variable path: adds what to $missing unless path is a file
    if [ -z "$3" ]; then
        missing="$missing, $1 ($2 unset)"
    elif [ ! -f "$3" ]; then
        missing="$missing, $1 (no file $3)"
    fi
}

tls_files
client_port=${RAFTKV_CLIENT_PORT:-7101}
if [ "${1:-}" = health ]; then
    set --
    [ "$scheme" = tcp ] || set -- --tls-ca "$tls_ca" --tls-cert "$tls_cert" --tls-key "$tls_key"
    exec raft-kv --endpoints "$scheme://127.0.0.1:$client_port" "$@" --timeout 3000 health
fi
[ $# = 0 ] || die "unknown argument \"$1\" (none runs raftd; \"health\" is the HEALTHCHECK)"

: "${RAFTKV_CLUSTER_ID:?raftkv-entrypoint: RAFTKV_CLUSTER_ID is required}"
: "${RAFTKV_PEERS:?raftkv-entrypoint: RAFTKV_PEERS is required (host,host,host)}"
peer_port=${RAFTKV_PEER_PORT:-7001}
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
    peers="${peers}peer.$n = $scheme://$h:$peer_port
client.$n = $scheme://$h:$client_port
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
    echo "pub_address = $scheme://$self:$pub_port"
    echo "listen_peer = $scheme://$listen:$peer_port"
    echo "listen_client = $scheme://$listen:$client_port"
    echo "listen_pub = $scheme://$listen:$pub_port"
    echo "http_address = http://$listen:$http_port"
    if [ "$scheme" != tcp ]; then
        echo "tls_ca_file = $tls_ca"
        echo "tls_cert_file = $tls_cert"
        echo "tls_key_file = $tls_key"
    fi
    [ -z "${RAFTKV_EXTRA_CONF:-}" ] || echo "$RAFTKV_EXTRA_CONF"
} >"$conf"

if [ "${RAFTKV_DRY_RUN:-0}" = 1 ]; then
    cat "$conf"
    exit 0
fi
exec raftd --config "$conf"
