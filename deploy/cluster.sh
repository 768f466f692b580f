#!/usr/bin/env bash
# A local raftkv cluster of raftd processes on 127.0.0.1, kept in one directory.
#
#   cluster.sh [options] start            start every node (generating configs on first use)
#   cluster.sh [options] start ID         start one node
#   cluster.sh [options] stop [ID]        SIGTERM, then wait for a clean exit
#   cluster.sh [options] kill ID          SIGKILL (a crash)
#   cluster.sh [options] restart ID       stop (or reap) then start
#   cluster.sh [options] status           process state, and role/term/applied if raft-kv is found
#   cluster.sh [options] endpoints        the client addresses, comma-separated
#   cluster.sh [options] wipe ID          stop the node and delete its data dir
#   cluster.sh [options] destroy          stop everything and delete the cluster dir
#
# Options (or environment):
#   -d DIR   RAFTKV_CLUSTER_DIR   cluster directory (default ./raftkv-cluster)
#   -n N     RAFTKV_NODES         number of nodes when generating configs (default 3)
#   -p PORT  RAFTKV_BASE_PORT     peer ports PORT+i, client PORT+100+i, pub PORT+200+i
#                                 (default: a free range picked at random)
#   -b PATH  RAFTD                the raftd binary (default: build/cmd/raftd, then PATH)
#   -t       RAFTKV_TLS=1         when generating configs: TLS (tls+tcp://) on every port,
#                                 with a CA and certificates made by openssl in DIR/tls/:
#                                 ca.crt, nodeI.{crt,key}, client.{crt,key} (for raft-kv:
#                                 --tls-ca DIR/tls/ca.crt --tls-cert DIR/tls/client.crt
#                                 --tls-key DIR/tls/client.key)
#   RAFTKV_CLI                    the raft-kv binary, for status (default: next to raftd)
#   RAFTKV_EXTRA_CONF             extra lines appended to every generated config
#
# Layout: DIR/cluster.env (node count, ports, TLS), DIR/nodeI/{node.conf,data/,raftd.log,pid}.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${RAFTKV_CLUSTER_DIR:-./raftkv-cluster}
nodes=${RAFTKV_NODES:-3}
base_port=${RAFTKV_BASE_PORT:-}
raftd=${RAFTD:-}
tls=${RAFTKV_TLS:-0}

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '2,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while getopts "d:n:p:b:th" opt; do
    case $opt in
    d) dir=$OPTARG ;;
    n) nodes=$OPTARG ;;
    p) base_port=$OPTARG ;;
    b) raftd=$OPTARG ;;
    t) tls=1 ;;
    h) usage 0 ;;
    *) usage 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage 2
cmd=$1
id=${2:-}

find_raftd() {
    if [ -n "$raftd" ]; then
        [ -x "$raftd" ] || die "raftd not executable: $raftd"
    elif [ -x "$here/../build/cmd/raftd" ]; then
        raftd=$here/../build/cmd/raftd
    elif command -v raftd >/dev/null; then
        raftd=$(command -v raftd)
    else
        die "raftd not found: build it (cmake -B build && make -C build) or set RAFTD / -b"
    fi
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A base port whose 3 ranges of $nodes ports all look free. The ranges stay below Linux's
# ephemeral ports (32768 and up): a node listening there could find its port taken, after
# a restart, by some connection's local end.
pick_base_port() {
    local tries=0 b i busy
    while [ $tries -lt 50 ]; do
        b=$((20000 + (RANDOM % 120) * 100))
        busy=0
        for ((i = 1; i <= nodes; i++)); do
            if port_in_use $((b + i)) || port_in_use $((b + 100 + i)) ||
                port_in_use $((b + 200 + i)); then
                busy=1
                break
            fi
        done
        [ $busy -eq 0 ] && echo $b && return
        tries=$((tries + 1))
    done
    die "no free port range found"
}

# A certificate for $1 (CN), signed by DIR/tls/ca, valid for 127.0.0.1 and localhost.
make_cert() {
    local t=$dir/tls
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$1" \
        -keyout "$t/$1.key" -out "$t/$1.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$t/$1.ext"
    openssl x509 -req -in "$t/$1.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" -CAcreateserial \
        -days 3650 -extfile "$t/$1.ext" -out "$t/$1.crt" 2>/dev/null
    rm -f "$t/$1.csr" "$t/$1.ext"
}

make_tls_files() {
    command -v openssl >/dev/null || die "-t needs openssl"
    mkdir -p "$dir/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=raftkv cluster CA" -keyout "$dir/tls/ca.key" -out "$dir/tls/ca.crt" 2>/dev/null
    local i
    for ((i = 1; i <= nodes; i++)); do make_cert "node$i"; done
    make_cert client
    chmod 600 "$dir"/tls/*.key
}

scheme() {
    if [ "$tls" = 1 ]; then echo tls+tcp; else echo tcp; fi
}

init_cluster() {
    [ -f "$dir/cluster.env" ] && return
    [[ $nodes =~ ^[1-9][0-9]*$ ]] || die "bad node count: $nodes"
    [ -n "$base_port" ] || base_port=$(pick_base_port)
    [[ $base_port =~ ^[1-9][0-9]*$ ]] || die "bad base port: $base_port"
    mkdir -p "$dir"
    [ "$tls" != 1 ] || make_tls_files
    local cluster_id=$((RANDOM * 32768 + RANDOM + 1)) i j s tlsdir
    s=$(scheme)
    tlsdir=$(cd "$dir" && pwd)/tls
    for ((i = 1; i <= nodes; i++)); do
        mkdir -p "$dir/node$i"
        {
            echo "# Generated by cluster.sh; every key: deploy/node.conf.example"
            echo "node_id = $i"
            echo "cluster_id = $cluster_id"
            echo "data_dir = $(cd "$dir" && pwd)/node$i/data"
            for ((j = 1; j <= nodes; j++)); do
                echo "peer.$j = $s://127.0.0.1:$((base_port + j))"
                echo "client.$j = $s://127.0.0.1:$((base_port + 100 + j))"
            done
            echo "pub_address = $s://127.0.0.1:$((base_port + 200 + i))"
            if [ "$tls" = 1 ]; then
                echo "tls_ca_file = $tlsdir/ca.crt"
                echo "tls_cert_file = $tlsdir/node$i.crt"
                echo "tls_key_file = $tlsdir/node$i.key"
            fi
            [ -z "${RAFTKV_EXTRA_CONF:-}" ] || echo "$RAFTKV_EXTRA_CONF"
        } >"$dir/node$i/node.conf"
    done
    printf 'nodes=%s\nbase_port=%s\ntls=%s\n' "$nodes" "$base_port" "$tls" >"$dir/cluster.env"
}

load_cluster() {
    [ -f "$dir/cluster.env" ] || die "no cluster in $dir (run: cluster.sh -d $dir start)"
    # shellcheck disable=SC1091
    . "$dir/cluster.env"
}

check_id() {
    [[ $1 =~ ^[1-9][0-9]*$ ]] && [ "$1" -le "$nodes" ] || die "no node $1 (1..$nodes)"
}

pid_of() {
    local f="$dir/node$1/pid"
    [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

start_node() {
    local i=$1 pid
    if pid=$(pid_of "$i"); then
        echo "node $i already running (pid $pid)"
        return
    fi
    # wait_running reads only what this run logs.
    { wc -c <"$dir/node$i/raftd.log" || echo 0; } >"$dir/node$i/log_offset" 2>/dev/null
    "$raftd" --config "$dir/node$i/node.conf" >>"$dir/node$i/raftd.log" 2>&1 &
    echo $! >"$dir/node$i/pid"
    disown $! # its end is ours to see (pid file), not bash's to announce ("Killed")
}

# Waits until node i logs that it runs; if it exits first, shows its log and returns 1.
wait_running() {
    local i=$1 log pid offset deadline=$((SECONDS + 15))
    log="$dir/node$i/raftd.log"
    pid=$(cat "$dir/node$i/pid")
    offset=$(cat "$dir/node$i/log_offset")
    while [ $SECONDS -lt $deadline ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -c +$((offset + 1)) "$log" | tail -n 20 >&2
            echo "cluster.sh: node $i exited during start (log: $log)" >&2
            return 1
        fi
        if tail -c +$((offset + 1)) "$log" | grep -q ": running: "; then
            return
        fi
        sleep 0.05
    done
    die "node $i did not start within 15 s (log: $log)"
}

stop_node() {
    local i=$1 sig=${2:-TERM} pid deadline=$((SECONDS + 10))
    pid=$(pid_of "$i") || {
        rm -f "$dir/node$i/pid"
        return 0
    }
    kill -"$sig" "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || {
            echo "node $i did not stop within 10 s: SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        }
        sleep 0.02
    done
    rm -f "$dir/node$i/pid"
}

all_ids() {
    seq 1 "$nodes"
}

endpoints() {
    local i out=""
    for i in $(all_ids); do
        out+="${out:+,}$(scheme)://127.0.0.1:$((base_port + 100 + i))"
    done
    echo "$out"
}

status() {
    local i pid cli=${RAFTKV_CLI:-}
    for i in $(all_ids); do
        if pid=$(pid_of "$i"); then
            echo "node $i: running (pid $pid)"
        else
            echo "node $i: stopped"
        fi
    done
    if [ -z "$cli" ]; then
        find_raftd 2>/dev/null || true
        [ -n "$raftd" ] && [ -x "$(dirname "$raftd")/raft-kv" ] && cli=$(dirname "$raftd")/raft-kv
    fi
    if [ -n "$cli" ] && [ "$tls" = 1 ]; then
        "$cli" --endpoints "$(endpoints)" --tls-ca "$dir/tls/ca.crt" \
            --tls-cert "$dir/tls/client.crt" --tls-key "$dir/tls/client.key" status || true
    elif [ -n "$cli" ]; then
        "$cli" --endpoints "$(endpoints)" status || true
    fi
}

# Starts every node of a new or stopped cluster; returns 1 if one exits during start.
start_all() {
    local i
    for i in $(all_ids); do start_node "$i"; done
    for i in $(all_ids); do wait_running "$i" || return 1; done
}

# Forgets a cluster made by this run (its nodes killed), so that init_cluster makes it anew.
forget_new_cluster() {
    local i
    for i in $(all_ids); do stop_node "$i" KILL; done
    for i in $(all_ids); do rm -rf "${dir:?}/node$i"; done
    rm -rf "${dir:?}/tls" "$dir/cluster.env"
}

case $cmd in
start)
    find_raftd
    # Free ports picked here can be taken before the nodes bind them (another cluster
    # starting at the same moment): a new cluster then starts over on other ports.
    picked=0
    [ -f "$dir/cluster.env" ] || [ -n "$base_port" ] || picked=1
    init_cluster
    load_cluster
    if [ -n "$id" ]; then
        check_id "$id"
        start_node "$id"
        wait_running "$id" || die "node $id did not start"
    else
        for attempt in 1 2 3 4 5; do
            start_all && break
            if [ $picked = 1 ] && [ $attempt -lt 5 ] &&
                grep -qs "Address in use" "$dir"/node*/raftd.log; then
                echo "cluster.sh: a port was taken meanwhile; starting over on other ports" >&2
                forget_new_cluster
                base_port=""
                init_cluster
                load_cluster
                continue
            fi
            die "the cluster did not start"
        done
    fi
    echo "endpoints: $(endpoints)"
    ;;
stop)
    load_cluster
    if [ -n "$id" ]; then
        check_id "$id"
        stop_node "$id"
    else
        for i in $(all_ids); do stop_node "$i"; done
    fi
    ;;
kill)
    load_cluster
    check_id "$id"
    stop_node "$id" KILL
    ;;
restart)
    find_raftd
    load_cluster
    check_id "$id"
    stop_node "$id"
    start_node "$id"
    wait_running "$id" || die "node $id did not start"
    ;;
status)
    load_cluster
    status
    ;;
endpoints)
    load_cluster
    endpoints
    ;;
wipe)
    load_cluster
    check_id "$id"
    stop_node "$id"
    rm -rf "$dir/node$id/data"
    ;;
destroy)
    if [ -f "$dir/cluster.env" ]; then
        load_cluster
        for i in $(all_ids); do stop_node "$i"; done
        rm -rf "$dir"
    fi
    ;;
*)
    usage 2
    ;;
esac
