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
#   cluster.sh [options] http             the HTTP addresses (/health, /status, /metrics and,
#                                         without -t, the JSON gateway /v1/kv), one a line
#   cluster.sh [options] wipe ID          stop the node and delete its data dir
#   cluster.sh [options] destroy          stop everything and delete the cluster dir
#
# Membership changes (README, "Changing the cluster"), through raft-kv, one at a time:
#   cluster.sh [options] add ID           a new node ID (1..99, never used in this dir): writes
#                                         its config with join = true, starts it, adds it as a
#                                         learner, waits for it to catch up and promotes it
#   cluster.sh [options] promote ID       promote learner ID once it caught up (what add does
#                                         last; resumes an add that gave up)
#   cluster.sh [options] remove ID        remove member ID (it may be dead), then stop it; its
#                                         directory stays (wipe deletes its data)
#   cluster.sh [options] replace OLD NEW  replace a dead or lost node: remove OLD, delete its
#                                         data, add NEW (a new id, with an empty data dir)
#   cluster.sh [options] rolling-restart  restart every node in turn (the leader last), each
#                                         once the one before has caught up
#   cluster.sh [options] members          raft-kv member list
#   cluster.sh [options] move-leader [ID] raft-kv move-leader [ID]
# A change refused while the cluster is busy or has no leader (raft-kv exit status 3), or a
# promotion refused while the learner is behind, is retried for up to RAFTKV_WAIT seconds.
#
# Options (or environment):
#   -d DIR   RAFTKV_CLUSTER_DIR   cluster directory (default ./raftkv-cluster)
#   -n N     RAFTKV_NODES         number of nodes when generating configs (default 3)
#   -p PORT  RAFTKV_BASE_PORT     peer ports PORT+i, client PORT+100+i, pub PORT+200+i,
#                                 HTTP PORT+300+i
#                                 (default: a free range picked at random)
#   -b PATH  RAFTD                the raftd binary (default: build/cmd/raftd, then PATH)
#   -t       RAFTKV_TLS=1         when generating configs: TLS (tls+tcp://) on every port,
#                                 with a CA and certificates made by tls-certs.sh in DIR/tls/:
#                                 ca.crt, nodeI.{crt,key}, client.{crt,key} (for raft-kv:
#                                 --tls-ca DIR/tls/ca.crt --tls-cert DIR/tls/client.crt
#                                 --tls-key DIR/tls/client.key)
#   RAFTKV_CLI                    the raft-kv binary (default: next to raftd, then PATH)
#   RAFTKV_EXTRA_CONF             extra lines appended to every generated config (kept in
#                                 DIR/extra.conf for the nodes added later)
#   RAFTKV_WAIT                   seconds to wait for a leader, a catch-up or a busy cluster
#                                 in membership changes (default 300)
#
# Layout: DIR/cluster.env (node ids, ports, TLS), DIR/nodeI/{node.conf,data/,raftd.log,pid}.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${RAFTKV_CLUSTER_DIR:-./raftkv-cluster}
nodes=${RAFTKV_NODES:-3}
base_port=${RAFTKV_BASE_PORT:-}
raftd=${RAFTD:-}
tls=${RAFTKV_TLS:-0}
wait_secs=${RAFTKV_WAIT:-300}
cli=""
ids=""
retired=""
cluster_id=""

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

usage() {
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
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
[[ $wait_secs =~ ^[1-9][0-9]*$ ]] || die "bad RAFTKV_WAIT: $wait_secs (seconds)"

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

# The raft-kv binary into $cli: RAFTKV_CLI, else the one next to raftd, else PATH's.
# Returns 1 if there is none.
find_cli() {
    [ -z "$cli" ] || return 0
    local r=$raftd
    if [ -n "${RAFTKV_CLI:-}" ]; then
        [ -x "$RAFTKV_CLI" ] || die "raft-kv not executable: $RAFTKV_CLI"
        cli=$RAFTKV_CLI
        return 0
    fi
    if [ -z "$r" ] && [ -x "$here/../build/cmd/raftd" ]; then
        r=$here/../build/cmd/raftd
    elif [ -z "$r" ]; then
        r=$(command -v raftd || true)
    fi
    if [ -n "$r" ] && [ -x "$(dirname "$r")/raft-kv" ]; then
        cli=$(dirname "$r")/raft-kv
    elif command -v raft-kv >/dev/null; then
        cli=$(command -v raft-kv)
    else
        return 1
    fi
}

need_cli() {
    find_cli || die "raft-kv not found: set RAFTKV_CLI, or give -b with raft-kv next to raftd"
}

# raft-kv "$@" against every node of the list, with the cluster's TLS files.
kv() {
    need_cli
    local tls_args=()
    [ "$tls" != 1 ] || tls_args=(--tls-ca "$dir/tls/ca.crt" --tls-cert "$dir/tls/client.crt"
        --tls-key "$dir/tls/client.key")
    "$cli" --endpoints "$(endpoints)" "${tls_args[@]}" "$@"
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A base port whose 4 ranges of $nodes ports all look free. The ranges stay below Linux's
# ephemeral ports (32768 and up): a node listening there could find its port taken, after
# a restart, by some connection's local end.
pick_base_port() {
    local tries=0 b i busy
    while [ $tries -lt 50 ]; do
        b=$((20000 + (RANDOM % 120) * 100))
        busy=0
        for ((i = 1; i <= nodes; i++)); do
            if port_in_use $((b + i)) || port_in_use $((b + 100 + i)) ||
                port_in_use $((b + 200 + i)) || port_in_use $((b + 300 + i)); then
                busy=1
                break
            fi
        done
        [ $busy -eq 0 ] && echo $b && return
        tries=$((tries + 1))
    done
    die "no free port range found"
}

# DIR/tls/$1.{crt,key}, issued by DIR/tls's CA, valid for 127.0.0.1 and localhost.
make_cert() {
    "$here/tls-certs.sh" -d "$dir/tls" cert "$1" 127.0.0.1 localhost || exit 1
}

make_tls_files() {
    command -v openssl >/dev/null || die "-t needs openssl"
    "$here/tls-certs.sh" -d "$dir/tls" ca || exit 1
    local i
    for ((i = 1; i <= nodes; i++)); do make_cert "node$i"; done
    make_cert client
}

scheme() {
    if [ "$tls" = 1 ]; then echo tls+tcp; else echo tcp; fi
}

# Writes DIR/nodeI/node.conf for node $1, with join = $2 and peer/client lines for the ids
# in $3 (a space-separated list, $1 among them).
write_conf() {
    local i=$1 join=$2 members=$3 j s abs
    s=$(scheme)
    abs=$(cd "$dir" && pwd)
    mkdir -p "$dir/node$i"
    {
        echo "# Generated by cluster.sh; every key: deploy/node.conf.example"
        echo "node_id = $i"
        echo "cluster_id = $cluster_id"
        echo "data_dir = $abs/node$i/data"
        if [ "$join" = true ]; then
            echo "# Joins the running cluster (cluster.sh add): the membership is in its log;"
            echo "# these lines only say where to reach members."
            echo "join = true"
        fi
        for j in $members; do
            echo "peer.$j = $s://127.0.0.1:$((base_port + j))"
            echo "client.$j = $s://127.0.0.1:$((base_port + 100 + j))"
        done
        echo "pub_address = $s://127.0.0.1:$((base_port + 200 + i))"
        echo "http_address = $(http_url "$i")"
        # The gateway's plain HTTP would let any local process past the client port's
        # certificates (raftd refuses it with tls_client_auth = required, -t's default).
        [ "$tls" = 1 ] || echo "http_gateway = true"
        if [ "$tls" = 1 ]; then
            echo "tls_ca_file = $abs/tls/ca.crt"
            echo "tls_cert_file = $abs/tls/node$i.crt"
            echo "tls_key_file = $abs/tls/node$i.key"
        fi
        if [ -n "${RAFTKV_EXTRA_CONF:-}" ]; then
            echo "$RAFTKV_EXTRA_CONF"
        elif [ -f "$dir/extra.conf" ]; then
            cat "$dir/extra.conf"
        fi
    } >"$dir/node$i/node.conf"
}

# cluster.env: the node ids (the ones this script runs; the membership itself is in the
# Raft log), the ids of removed members (never used again), ports, TLS and cluster id.
# Written whole, then renamed over the old one.
save_cluster() {
    printf 'ids="%s"\nretired="%s"\nbase_port=%s\ntls=%s\ncluster_id=%s\n' "$ids" "$retired" \
        "$base_port" "$tls" "$cluster_id" >"$dir/cluster.env.tmp"
    mv "$dir/cluster.env.tmp" "$dir/cluster.env"
}

init_cluster() {
    [ -f "$dir/cluster.env" ] && return
    [[ $nodes =~ ^[1-9][0-9]?$ ]] || die "bad node count: $nodes (1..99)"
    [ -n "$base_port" ] || base_port=$(pick_base_port)
    [[ $base_port =~ ^[1-9][0-9]*$ ]] || die "bad base port: $base_port"
    mkdir -p "$dir"
    [ "$tls" != 1 ] || make_tls_files
    [ -z "${RAFTKV_EXTRA_CONF:-}" ] || echo "$RAFTKV_EXTRA_CONF" >"$dir/extra.conf"
    cluster_id=$((RANDOM * 32768 + RANDOM + 1))
    ids=$(seq -s ' ' 1 "$nodes")
    local i
    for i in $ids; do write_conf "$i" false "$ids"; done
    save_cluster
}

load_cluster() {
    [ -f "$dir/cluster.env" ] || die "no cluster in $dir (run: cluster.sh -d $dir start)"
    local nodes=""
    # shellcheck disable=SC1091
    . "$dir/cluster.env"
    # A cluster.env written before membership changes has nodes=N: ids 1..N.
    [ -n "$ids" ] || [ -z "$nodes" ] || ids=$(seq -s ' ' 1 "$nodes")
    [ -n "$ids" ] || die "$dir/cluster.env lists no nodes"
    if [ -z "$cluster_id" ]; then
        local first=${ids%% *}
        cluster_id=$(sed -n 's/^cluster_id = //p' "$dir/node$first/node.conf" 2>/dev/null) ||
            true
    fi
}

in_list() {
    [[ " $ids " == *" $1 "* ]]
}

check_id() {
    if ! [[ $1 =~ ^[1-9][0-9]*$ ]] || ! in_list "$1"; then
        die "no node ${1:-(none given)} (nodes: $ids)"
    fi
}

# An id for a node to add: 1..99 (the port ranges are 100 wide), never a member before (a
# node that comes back under its old id without its data may vote twice in one term), and
# without a data dir.
check_new_id() {
    [[ $1 =~ ^[1-9][0-9]?$ ]] || die "bad node id: ${1:-(none given)} (a new id, 1..99)"
    ! in_list "$1" || die "node $1 is already in the cluster (nodes: $ids)"
    [[ " $retired " != *" $1 "* ]] ||
        die "node $1 was a member before (removed): give the new node a new id"
    [ ! -e "$dir/node$1/data" ] ||
        die "$dir/node$1/data exists (a former node $1?): wipe it first, or use another id"
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
    local i
    for i in $ids; do echo "$i"; done
}

http_url() {
    echo "http://127.0.0.1:$((base_port + 300 + $1))"
}

endpoints() {
    local i out=""
    for i in $(all_ids); do
        out+="${out:+,}$(scheme)://127.0.0.1:$((base_port + 100 + i))"
    done
    echo "$out"
}

status() {
    local i pid
    for i in $(all_ids); do
        if pid=$(pid_of "$i"); then
            echo "node $i: running (pid $pid)"
        else
            echo "node $i: stopped"
        fi
    done
    ! find_cli || kv status || true
}

# --- The membership, as the leader reports it ----------------------------------------------

# `raft-kv --json member list`, reduced to lines the functions below read:
#   leader ID          (0: none known)
#   last INDEX         the leader's last log index
#   committed true|false
#   member ID ROLE MATCH_INDEX HEALTHY    (one per member; ROLE voter or learner)
# Returns raft-kv's exit status when it fails. The JSON is read with grep and sed alone,
# leniently (spacing, leader/leader_id, last_index/last_log_index): the one place to fix if
# raft-kv's field names change.
member_table() {
    local json top obj mid role healthy
    json=$(kv --json member list) || return $?
    json=$(tr -d '\n' <<<"$json")
    # shellcheck disable=SC2001 # a bracket expression, beyond ${json//...}
    top=$(sed 's/"members" *: *\[[^]]*\]//' <<<"$json")
    echo "leader $(json_num "$top" leader leader_id)"
    echo "last $(json_num "$top" last_index last_log_index)"
    if grep -q '"committed" *: *false' <<<"$top"; then
        echo "committed false"
    else
        echo "committed true"
    fi
    grep -o '"members" *: *\[[^]]*\]' <<<"$json" | grep -o '{[^{}]*}' | while read -r obj; do
        mid=$(json_num "$obj" id)
        role=$(grep -o '"role" *: *"[a-z]*"' <<<"$obj" | grep -o '[a-z]*"$' | tr -d '"') || true
        if [ -z "$role" ]; then
            role=voter
            ! grep -q learner <<<"$obj" || role=learner
        fi
        healthy=true
        ! grep -q '"healthy" *: *false' <<<"$obj" || healthy=false
        echo "member $mid $role $(json_num "$obj" match_index) $healthy"
    done
}

# The first of the number fields named $2, $3... in the JSON object $1; 0 if none is there.
json_num() {
    local json=$1 name v
    shift
    for name in "$@"; do
        v=$(grep -o "\"$name\" *: *[0-9]*" <<<"$json" | head -n 1 | grep -o '[0-9]*$') || true
        [ -z "$v" ] || {
            echo "$v"
            return
        }
    done
    echo 0
}

# The role of member $1 in table $2 (member_table's output); nothing if not a member.
role_in() {
    awk -v id="$1" '$1 == "member" && $2 == id { print $3 }' <<<"$2"
}

field_in() { # field_in NAME TABLE: the value of line NAME
    awk -v k="$1" '$1 == k { print $2 }' <<<"$2"
}

# Runs raft-kv "$@" (a membership change) until it is done, for up to RAFTKV_WAIT seconds.
# After any answer but success, the membership is read and judged by "$judge ID TABLE":
# 0 done (an earlier attempt whose answer was lost may have made the change), 1 not yet
# but it may be (a learner behind), 2 not done. raft-kv's exit status 3 (unavailable: no
# leader, another change under way, an answer lost) is retried unless the change is done;
# 2 (refused) only while the judge says 1.
member_change() {
    local judge=$1 mid=$2 deadline=$((SECONDS + wait_secs)) rc out table j next_note=0
    shift 2
    while :; do
        rc=0
        out=$(kv "$@" 2>&1) || rc=$?
        [ $rc != 0 ] || return 0
        [ $rc = 2 ] || [ $rc = 3 ] || die "raft-kv $*: exit status $rc: $out"
        j=1
        if table=$(member_table 2>/dev/null); then
            j=0
            "$judge" "$mid" "$table" || j=$?
        fi
        [ $j != 0 ] || return 0
        [ $rc = 3 ] || [ $j = 1 ] || die "raft-kv $* refused: $out"
        [ $SECONDS -lt $deadline ] || die "raft-kv $*: not done within $wait_secs s: $out"
        if [ $SECONDS -ge $next_note ]; then
            echo "cluster.sh: raft-kv $*: $out; retrying" >&2
            next_note=$((SECONDS + 10))
        fi
        sleep 0.5
    done
}

# Judges for member_change (see there).
added() { [ -n "$(role_in "$1" "$2")" ] || return 2; }
promoted() { # a learner refused a promotion is behind: try again
    case $(role_in "$1" "$2") in
    voter) return 0 ;;
    learner) return 1 ;;
    *) return 2 ;;
    esac
}
removed() {
    [ -z "$(role_in "$1" "$2")" ] || return 2
}

# member_table, once the cluster answers (a leader elected) within RAFTKV_WAIT seconds.
wait_table() {
    local deadline=$((SECONDS + wait_secs)) out
    until out=$(member_table 2>&1); do
        [ $SECONDS -lt $deadline ] || die "no membership from the cluster within $wait_secs s: $out"
        sleep 0.5
    done
    echo "$out"
}

# Whether node $1 itself names a leader (it heard from one since it started).
knows_leader() {
    local tls_args=()
    [ "$tls" != 1 ] || tls_args=(--tls-ca "$dir/tls/ca.crt" --tls-cert "$dir/tls/client.crt"
        --tls-key "$dir/tls/client.key")
    "$cli" --endpoints "$(scheme)://127.0.0.1:$((base_port + 100 + $1))" "${tls_args[@]}" \
        --timeout 1000 --json status 2>/dev/null | grep -q '"leader" *: *[1-9]'
}

# Waits until the cluster has a leader, its membership is committed, member $1 is healthy
# and holds the leader's log up to where it was when this began, and it names the leader.
wait_caught_up() {
    local mid=$1 deadline=$((SECONDS + wait_secs)) table="" target="" leader match healthy
    need_cli
    while :; do
        if table=$(member_table 2>/dev/null); then
            leader=$(field_in leader "$table")
            if [ "${leader:-0}" != 0 ] && [ "$(field_in committed "$table")" = true ]; then
                [ -n "$target" ] || target=$(field_in last "$table")
                match=$(awk -v id="$mid" '$1 == "member" && $2 == id { print $4 }' <<<"$table")
                healthy=$(awk -v id="$mid" '$1 == "member" && $2 == id { print $5 }' <<<"$table")
                if [ -n "$match" ] && [ "$healthy" = true ] && [ "$match" -ge "$target" ] &&
                    knows_leader "$mid"; then
                    return 0
                fi
            fi
        fi
        [ $SECONDS -lt $deadline ] ||
            die "node $mid did not catch up within $wait_secs s (${target:+log index $target; }membership: $(tr '\n' ';' <<<"$table"))"
        sleep 0.2
    done
}

# cluster.sh promote ID: the learner becomes a voter once it has caught up.
promote() {
    local mid=$1
    echo "cluster.sh: promoting node $mid once it has caught up" >&2
    member_change promoted "$mid" member promote "$mid"
}

# cluster.sh add ID (see the header).
add() {
    local mid=$1 s table
    check_new_id "$mid"
    local p
    for p in $((base_port + mid)) $((base_port + 100 + mid)) $((base_port + 200 + mid)) \
        $((base_port + 300 + mid)); do
        ! port_in_use "$p" || die "port $p, for node $mid, is in use"
    done
    need_cli
    table=$(wait_table)
    [ -z "$(role_in "$mid" "$table")" ] || die "node $mid is a member already: $(role_in "$mid" "$table")"
    [ "$tls" != 1 ] || [ -f "$dir/tls/node$mid.crt" ] || make_cert "node$mid"
    write_conf "$mid" true "$ids $mid"
    start_node "$mid"
    wait_running "$mid" || die "node $mid did not start"
    s=$(scheme)
    if ! (member_change added "$mid" member add-learner "$mid" "$s://127.0.0.1:$((base_port + mid))" \
        "$s://127.0.0.1:$((base_port + 100 + mid))"); then
        stop_node "$mid"
        die "node $mid was not added (stopped; its dir is $dir/node$mid)"
    fi
    ids="$ids $mid"
    save_cluster
    echo "cluster.sh: node $mid added as a learner" >&2
    promote "$mid"
    echo "cluster.sh: node $mid is a voter" >&2
}

# cluster.sh remove ID (see the header).
remove() {
    local mid=$1 rest="" i
    check_id "$mid"
    member_change removed "$mid" member remove "$mid"
    stop_node "$mid"
    for i in $ids; do [ "$i" = "$mid" ] || rest+="${rest:+ }$i"; done
    ids=$rest
    retired+="${retired:+ }$mid"
    save_cluster
    echo "cluster.sh: node $mid removed" >&2
}

# cluster.sh rolling-restart: each node stopped with SIGTERM (a leader hands off its lead
# first) and started again, the leader last; the next one only once this one caught up.
rolling_restart() {
    local table leader order="" i
    table=$(wait_table)
    leader=$(field_in leader "$table")
    for i in $ids; do [ "$i" = "$leader" ] || order+="$i "; done
    ! in_list "$leader" || order+=$leader
    for i in $order; do
        echo "cluster.sh: restarting node $i" >&2
        stop_node "$i"
        start_node "$i"
        wait_running "$i" || die "node $i did not start"
        wait_caught_up "$i"
    done
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
    rm -rf "${dir:?}/tls" "$dir/cluster.env" "$dir/extra.conf"
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
                ids=""
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
http)
    load_cluster
    # As each node's config says (a config written before cluster.sh gave HTTP has none).
    for i in $(all_ids); do sed -n 's/^http_address = //p' "$dir/node$i/node.conf"; done
    ;;
wipe)
    load_cluster
    # Also a node removed earlier, whose directory was kept.
    if ! [[ $id =~ ^[1-9][0-9]*$ ]] || ! [ -d "$dir/node$id" ]; then check_id "$id"; fi
    stop_node "$id"
    rm -rf "$dir/node$id/data"
    ;;
add)
    find_raftd
    load_cluster
    add "$id"
    ;;
promote)
    load_cluster
    check_id "$id"
    promote "$id"
    ;;
remove)
    load_cluster
    remove "$id"
    ;;
replace)
    find_raftd
    load_cluster
    new=${3:-}
    [ $# = 3 ] || die "usage: cluster.sh replace OLD NEW"
    check_id "$id"
    [ "$new" != "$id" ] || die "replace $id $new: the new node needs a new id"
    check_new_id "$new"
    remove "$id"
    rm -rf "$dir/node$id/data"
    echo "cluster.sh: node $id's data deleted" >&2
    add "$new"
    ;;
rolling-restart)
    find_raftd
    load_cluster
    rolling_restart
    ;;
members)
    load_cluster
    kv member list
    ;;
move-leader)
    load_cluster
    if [ -n "$id" ]; then kv move-leader "$id"; else kv move-leader; fi
    ;;
destroy)
    if [ -f "$dir/cluster.env" ]; then
        load_cluster
        # Every node with a directory here: those in the list, and any removed one.
        for n in "$dir"/node*/; do
            n=${n%/}
            n=${n##*/node}
            [[ $n =~ ^[0-9]+$ ]] && stop_node "$n"
        done
        rm -rf "$dir"
    fi
    ;;
*)
    usage 2
    ;;
esac
