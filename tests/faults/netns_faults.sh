#!/usr/bin/env bash
# The fault suite of issue 11 (tests/faults/README.md): real raftd processes, each in a
# network namespace of its own, under faults drawn from a seed, with concurrent clients
# (kv-workload) whose history lincheck checks.
#
#   tests/faults/netns_faults.sh [options]
#     --scenario NAME[,NAME...]  a scenario (--list), or all (default: mixed)
#     --nodes N[,N...]           cluster sizes (default: 3)
#     --seconds S                how long each run's clients run (default: 40)
#     --seed N                   the first run's seed; run k uses N+k (default: random)
#     --build DIR                raftd, raft-kv and kv-workload (default: $BUILD, else
#                                build/release): the code under test
#     --tools DIR                lincheck and fault-figures (default: $TOOLS, else
#                                DIR/tests/faults of --build if it has fault-figures, else
#                                build/release/tests/faults)
#     --rows FILE                also append each run's table row to FILE
#     --keep                     keep every run's directory, not only failed ones
#     --list                     print the scenarios and exit
#
# Exit status: 0 every run passed; 1 a run failed (its directory is kept and printed);
# 2 bad usage or missing binaries; 77 no network namespaces here (not root, no ip or nft):
# ctest reports that as skipped.
#
# Layout: one namespace "net" holds a bridge and the clients; each node has a namespace
# with a veth to the bridge and its own address in 198.18.0.0/24 (RFC 2544's benchmarking
# range: nothing outside these namespaces routes to it). Faults on the network are nft rules
# in the nodes' namespaces that drop peer traffic by address, silently as a real network
# does; the clients' traffic, from the net namespace, passes unless a scenario says so.
set -euo pipefail
export LC_ALL=C # EPOCHREALTIME with a decimal point

readonly SKIP=77 SUBNET=198.18.0 PEER_PORT=7001 CLIENT_PORT=7101
# Serving again is asserted, generously; agreement is only reported (note_agreement), so
# a longer wait for it would only spend the budget.
readonly SERVE_DEADLINE_S=30 AGREE_WAIT_S=10
readonly PREFIX=rkf$$
readonly SCENARIOS=(kill-leader kill-node kill-all pause-leader partition oneway-out
    oneway-in isolate-leader loss mixed leader-deaf-7s leader-mute-7s)
readonly PROCESS_FAULTS=(kill-leader kill-node kill-all pause-leader)
readonly NETWORK_FAULTS=(partition oneway-out oneway-in isolate-leader loss)

about() {
    case $1 in
    kill-leader) echo "kill -9 the leader, restart it" ;;
    kill-node) echo "kill -9 a random node, restart it" ;;
    kill-all) echo "kill -9 every node, restart them all" ;;
    pause-leader) echo "SIGSTOP the leader, SIGCONT it (0.5-3 s, past an election timeout)" ;;
    partition) echo "symmetric partition: a random minority (the leader's half the time) cut off" ;;
    oneway-out) echo "one node's (the leader's half the time) outbound peer packets dropped" ;;
    oneway-in) echo "one node's (the leader's half the time) inbound peer packets dropped" ;;
    isolate-leader) echo "the leader cut off from its peers; clients still reach it" ;;
    loss) echo "5-30% of the packets between nodes dropped at random" ;;
    mixed) echo "each cycle: a process fault, a network fault, or one of each at once" ;;
    leader-deaf-7s) echo "issue 11 part 2: followers->leader peer packets dropped for 7 s" ;;
    leader-mute-7s) echo "issue 11 part 2: leader->followers peer packets dropped for 7 s" ;;
    esac
}

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$top/build/release}
tools=${TOOLS:-}
scenarios=mixed
node_counts=3
seconds=40
seed=$(((RANDOM * 32768 + RANDOM) % 1000000000))
rows=""
keep=0

list_scenarios() {
    local s
    for s in "${SCENARIOS[@]}"; do printf '%-16s %s\n' "$s" "$(about "$s")"; done
}

usage() { # EXIT_STATUS: on stderr unless asked for
    local to=1
    (($1 == 0)) || to=2
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&"$to"
    exit "$1"
}

parse_args() {
    while (($#)); do
        case $1 in
        --keep) keep=1 && shift && continue ;;
        --list) list_scenarios && exit 0 ;;
        -h | --help) usage 0 ;;
        esac
        (($# >= 2)) || usage 2
        case $1 in
        --scenario) scenarios=$2 ;;
        --nodes) node_counts=$2 ;;
        --seconds) seconds=$2 ;;
        --seed) seed=$2 ;;
        --build) build=$2 ;;
        --tools) tools=$2 ;;
        --rows) rows=$2 ;;
        *) usage 2 ;;
        esac
        shift 2
    done
    [[ $scenarios != all ]] || scenarios=$(IFS=,; echo "${SCENARIOS[*]}")
    local s n
    for s in ${scenarios//,/ }; do [[ -n $(about "$s") ]] || usage 2; done
    for n in ${node_counts//,/ }; do [[ $n =~ ^[3-9]$ ]] || usage 2; done
    [[ $seconds =~ ^[1-9][0-9]{0,4}$ && $seed =~ ^[0-9]{1,9}$ ]] || usage 2
    if [[ -z $tools && -x $build/tests/faults/fault-figures ]]; then
        tools=$build/tests/faults
    elif [[ -z $tools ]]; then
        tools=$top/build/release/tests/faults
    fi
}

# Without namespaces there is nothing to test: say why, and let ctest report a skip.
check_can_run() {
    local bin
    for bin in "$build/cmd/raftd" "$build/cmd/raft-kv" "$build/tests/faults/kv-workload" \
        "$tools/lincheck" "$tools/fault-figures"; do
        [[ -x $bin ]] || { echo "netns_faults: not built: $bin" >&2 && exit 2; }
    done
    local why=""
    [[ $(id -u) == 0 ]] || why="needs root to create network namespaces"
    command -v ip >/dev/null || why="needs ip (iproute2)"
    command -v nft >/dev/null || why="needs nft (nftables)"
    if [[ -z $why ]] && ! ip netns add "$PREFIX-probe" 2>/dev/null; then
        why="cannot create a network namespace (ip netns add failed)"
    fi
    ip netns del "$PREFIX-probe" 2>/dev/null || true
    [[ -z $why ]] || { echo "netns_faults: SKIPPED: $why" && exit $SKIP; }
}

# --- the PRNG: the fault schedule depends on the seed alone -----------------------------
# Called in the main shell only (never in $(...)), so that every draw advances one state.
# No draw depends on anything but earlier draws: time decides only how many cycles run, and
# the cluster only which node "the leader" is.
rng=0
rand() { # N: R = a number in [0, N)
    rng=$(((rng * 1103515245 + 12345) % 2147483648))
    R=$(((rng >> 8) % $1))
}

# --- time ---------------------------------------------------------------------------------
now_us() { echo "${EPOCHREALTIME/./}"; }
ms_since() { echo $((($(now_us) - $1) / 1000)); }
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }
mark() { echo "$1 $("$tools/fault-figures" --now)" >>"$run_dir/heals"; }

# --- namespaces ---------------------------------------------------------------------------
in_ns() { # NAME CMD...: run CMD in this run's namespace NAME (net, n1, n2, ...)
    local name=$1
    shift
    ip netns exec "$PREFIX-$name" "$@"
}
addr() { echo "$SUBNET.$((10 + $1))"; }
our_namespaces() { ip netns list | awk '{print $1}' | grep "^$1-" || true; }

# Namespaces of runs that died without cleaning up (their pid is gone): their processes
# are raftd and kv-workload of this suite.
remove_leftovers() {
    local ns pid
    for ns in $(our_namespaces 'rkf[0-9]*'); do
        pid=${ns#rkf}
        pid=${pid%%-*}
        [[ $pid != "$$" ]] && kill -0 "$pid" 2>/dev/null && continue
        echo "removing namespace $ns, left by an earlier run"
        # shellcheck disable=SC2046
        kill -KILL $(ip netns pids "$ns") 2>/dev/null || true
        ip netns del "$ns" || true
    done
}

net_up() {
    local i
    ip netns add "$PREFIX-net"
    ip -n "$PREFIX-net" link set lo up
    ip -n "$PREFIX-net" link add br0 type bridge
    ip -n "$PREFIX-net" addr add "$SUBNET.1/24" dev br0
    ip -n "$PREFIX-net" link set br0 up
    for ((i = 1; i <= n; i++)); do
        ip netns add "$PREFIX-n$i"
        ip -n "$PREFIX-net" link add "v$i" type veth peer name eth0 netns "$PREFIX-n$i"
        ip -n "$PREFIX-net" link set "v$i" master br0 up
        ip -n "$PREFIX-n$i" link set lo up
        ip -n "$PREFIX-n$i" addr add "$(addr "$i")/24" dev eth0
        ip -n "$PREFIX-n$i" link set eth0 up
        in_ns "n$i" nft -f - <<'EOF'
table inet rkf {
    chain input { type filter hook input priority 0; policy accept; }
    chain output { type filter hook output priority 0; policy accept; }
}
EOF
    done
}

# Whatever still runs in them goes too, or it would outlive the run.
net_down() {
    local ns
    for ns in $(our_namespaces "$PREFIX"); do
        # shellcheck disable=SC2046
        kill -KILL $(ip netns pids "$ns") 2>/dev/null || true
        ip netns del "$ns" || true
    done
}

# --- nodes --------------------------------------------------------------------------------
declare -a pids=()

write_configs() {
    local i j
    for ((i = 1; i <= n; i++)); do
        mkdir -p "$run_dir/node$i"
        {
            echo "node_id = $i"
            echo "cluster_id = $((run_seed + 1))"
            echo "data_dir = $run_dir/node$i/data"
            for ((j = 1; j <= n; j++)); do
                echo "peer.$j = tcp://$(addr "$j"):$PEER_PORT"
                echo "client.$j = tcp://$(addr "$j"):$CLIENT_PORT"
            done
        } >"$run_dir/node$i/node.conf"
    done
}

start_node() {
    local d=$run_dir/node$1
    touch "$d/raftd.log"
    stat -c %s "$d/raftd.log" >"$d/log_offset"
    # Not through in_ns: $! must be raftd itself, not a subshell running a function.
    ip netns exec "$PREFIX-n$1" "$build/cmd/raftd" --config "$d/node.conf" >>"$d/raftd.log" 2>&1 &
    pids[$1]=$!
}

# Until node i logs that it runs; fails if it exits first or takes over 30 s.
wait_running() {
    local d=$run_dir/node$1 deadline=$((SECONDS + 30))
    while ! tail -c +$(($(cat "$d/log_offset") + 1)) "$d/raftd.log" | grep -q ": running: "; do
        if ! kill -0 "${pids[$1]}" 2>/dev/null; then
            problem "node $1 exited while starting"
            return 1
        fi
        ((SECONDS < deadline)) || { problem "node $1 did not start within 30 s" && return 1; }
        sleep 0.05
    done
}

kill_node() {
    kill -KILL "${pids[$1]}" 2>/dev/null || true
    wait "${pids[$1]}" 2>/dev/null || true
    pids[$1]=""
}

# SIGTERM, then SIGKILL after 15 s: a clean stop is what raftd promises, but not this test.
stop_node() {
    local pid=${pids[$1]:-} deadline=$((SECONDS + 15))
    [[ -n $pid ]] || return 0
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
    kill_node "$1"
}

status() {
    in_ns net "$build/cmd/raft-kv" --endpoints "$endpoints" --timeout 2000 \
        --request-timeout 500 --json status 2>/dev/null || true
}

# The node of the highest term that says it leads; none when no node does.
leader() {
    status | grep -o '"role":"leader","id":[0-9]*,"term":[0-9]*' | sort -t: -k4,4n |
        tail -n 1 | sed 's/.*"id":\([0-9]*\).*/\1/' || true
}

# Until every node answers and names the same leader in the same term, at most
# AGREE_WAIT_S; prints how long that took in ms.
wait_agreed() {
    local start views deadline=$((SECONDS + AGREE_WAIT_S))
    start=$(now_us)
    while :; do
        views=$(status | grep -o '"term":[0-9]*,"leader":[1-9][0-9]*' || true)
        [[ $(sort -u <<<"$views" | wc -l) != 1 || $(wc -l <<<"$views") != "$n" ]] || break
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
    ms_since "$start"
}

# Until the cluster acknowledges a write (of a key the workload does not use), at most
# SERVE_DEADLINE_S; prints how long that took in ms.
wait_serving() {
    local start deadline=$((SECONDS + SERVE_DEADLINE_S))
    start=$(now_us)
    until in_ns net "$build/cmd/raft-kv" --endpoints "$endpoints" --timeout 2000 \
        --request-timeout 300 put probe "$1" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
    ms_since "$start"
}

# --- faults -------------------------------------------------------------------------------
declare -a killed=() paused=()
lead=""  # this cycle's leader (a random node when none answers as one)
any=""   # this cycle's random node
desc=""  # what this cycle did

others_of() { # ID...: the addresses of every node but these, comma-separated
    local i out=""
    for ((i = 1; i <= n; i++)); do
        [[ " $* " == *" $i "* ]] || out+="${out:+, }$(addr "$i")"
    done
    echo "$out"
}

# ID in|out ADDRESSES [MATCH...]: drop node ID's peer packets from or to ADDRESSES.
drop() {
    local id=$1 hook=input field=saddr set=$3
    [[ $2 != out ]] || hook=output field=daddr
    shift 3
    in_ns "n$id" nft add rule inet rkf "$hook" ip "$field" "{ $set }" "$@" drop
}

kill_nodes() {
    local i
    for i; do
        kill_node "$i"
        killed+=("$i")
    done
}

pause_node() {
    kill -STOP "${pids[$1]}"
    paused+=("$1")
}

# A node that is the leader half the time.
leader_or_any() {
    rand 2
    T=$any
    ((R)) || T=$lead
}

partition() {
    local minority=() i
    rand $(((n - 1) / 2))
    local size=$((R + 1))
    leader_or_any
    minority+=("$T")
    while ((${#minority[@]} < size)); do
        rand "$n"
        [[ " ${minority[*]} " == *" $((R + 1)) "* ]] || minority+=("$((R + 1))")
    done
    for i in "${minority[@]}"; do
        drop "$i" in "$(others_of "${minority[@]}")"
        drop "$i" out "$(others_of "${minority[@]}")"
    done
    desc+="partition {${minority[*]}} from the rest"
}

one_way() { # in|out
    leader_or_any
    drop "$T" "$1" "$(others_of "$T")"
    desc+="drop node $T's ${1}bound peer packets"
}

loss() {
    local i
    rand 26
    local percent=$((R + 5))
    for ((i = 1; i <= n; i++)); do
        drop "$i" in "$(others_of "$i")" numgen random mod 100 "<" "$percent"
    done
    desc+="$percent% loss between nodes"
}

# KIND: starts that fault; targets come from the PRNG and this cycle's leader.
apply() {
    [[ -z $desc ]] || desc+=" + "
    case $1 in
    kill-leader) kill_nodes "$lead"; desc+="kill -9 node $lead (leader)" ;;
    kill-node) kill_nodes "$any"; desc+="kill -9 node $any" ;;
    kill-all) kill_nodes "${all_ids[@]}"; desc+="kill -9 all nodes" ;;
    pause-leader) pause_node "$lead"; desc+="SIGSTOP node $lead (leader)" ;;
    partition) partition ;;
    oneway-out) one_way out ;;
    oneway-in) one_way in ;;
    isolate-leader)
        drop "$lead" in "$(others_of "$lead")"
        drop "$lead" out "$(others_of "$lead")"
        desc+="isolate node $lead (leader) from its peers" ;;
    loss) loss ;;
    leader-deaf-7s)
        drop "$lead" in "$(others_of "$lead")"
        desc+="drop followers->leader ($lead) peer packets" ;;
    leader-mute-7s)
        drop "$lead" out "$(others_of "$lead")"
        desc+="drop leader ($lead)->followers peer packets" ;;
    esac
}

heal() {
    local i
    mark heal
    for ((i = 1; i <= n; i++)); do
        in_ns "n$i" nft flush chain inet rkf input
        in_ns "n$i" nft flush chain inet rkf output
    done
    for i in "${paused[@]}"; do kill -CONT "${pids[$i]}"; done
    for i in "${killed[@]}"; do start_node "$i"; done
    for i in "${killed[@]}"; do wait_running "$i" || return 1; done
    killed=() paused=()
}

# KINDS=(...) for this cycle of scenario $1.
choose_kinds() {
    KINDS=("$1")
    [[ $1 == mixed ]] || return 0
    rand 3
    local both=$R
    rand ${#PROCESS_FAULTS[@]}
    local p=${PROCESS_FAULTS[R]}
    rand ${#NETWORK_FAULTS[@]}
    local w=${NETWORK_FAULTS[R]}
    case $both in
    0) KINDS=("$p") ;;
    1) KINDS=("$w") ;;
    *) KINDS=("$p" "$w") ;;
    esac
}

# One fault cycle: fault, hold, heal, wait until writes are served, a quiet pause.
# Returns 1 when the run is to stop: too little time left, or a problem.
cycle() {
    local kind hold quiet served
    choose_kinds "$scenario"
    rand 2500
    hold=$((500 + R))
    [[ $scenario != *-7s ]] || hold=7000
    rand 700
    quiet=$((300 + R))
    rand "$n"
    any=$((R + 1))
    (($(ms_since "$t0") + hold + 4000 < seconds * 1000)) || return 1
    lead=$(leader)
    lead=${lead:-$any}
    desc=""
    cycles=$((cycles + 1))
    for kind in "${KINDS[@]}"; do apply "$kind"; done
    log "cycle $cycles: $desc for $hold ms"
    sleep_ms "$hold"
    heal || return 1
    if ! served=$(wait_serving "c$cycles"); then
        problem "no write acknowledged within ${SERVE_DEADLINE_S} s of heal $cycles"
        return 1
    fi
    note_agreement "$served"
    alive || return 1
    sleep_ms "$quiet"
}

# Reported, not asserted: the cluster serves without the node left out, and raftd cannot
# yet promise that every node rejoins (tests/faults/README.md, "Found").
note_agreement() {
    local agreed
    if agreed=$(wait_agreed); then
        agreed=$(($1 + agreed))
        ((agreed <= agreed_max)) || agreed_max=$agreed
        log "  healed: a write acknowledged after $1 ms, every node named the same leader" \
            "after $agreed ms"
    else
        disagreed=$((disagreed + 1))
        log "  healed: a write acknowledged after $1 ms; WARNING: the nodes did not all name" \
            "the same leader within ${AGREE_WAIT_S} s"
    fi
}

alive() {
    local i
    for ((i = 1; i <= n; i++)); do
        [[ -z ${pids[i]:-} ]] || kill -0 "${pids[i]}" 2>/dev/null ||
            { problem "node $i exited by itself (log: $run_dir/node$i/raftd.log)" && return 1; }
    done
}

# --- one run ------------------------------------------------------------------------------
problems=()
problem() { problems+=("$*"); }
log() {
    local ms
    ms=$(ms_since "$t0")
    printf '  [%3d.%d s] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*" |
        tee -a "$run_dir/faults.log"
}

start_cluster() {
    local i
    net_up
    write_configs
    for ((i = 1; i <= n; i++)); do start_node "$i"; done
    for ((i = 1; i <= n; i++)); do wait_running "$i" || return 1; done
    endpoints=""
    for ((i = 1; i <= n; i++)); do endpoints+="${endpoints:+,}tcp://$(addr "$i"):$CLIENT_PORT"; done
    if ! wait_serving start >/dev/null; then
        problem "no write acknowledged within ${SERVE_DEADLINE_S} s of start"
        return 1
    fi
}

stop_cluster() {
    local i
    if [[ -n ${workload:-} ]]; then
        kill -KILL "$workload" 2>/dev/null || true
        wait "$workload" 2>/dev/null || true
    fi
    workload=""
    for ((i = 1; i <= n; i++)); do stop_node "$i"; done
    net_down
}

# Sanitizer reports and crashes in the node logs fail the run (the ASan build's point).
check_logs() {
    local i
    for ((i = 1; i <= n; i++)); do
        if grep -Eq "ERROR: (Address|Leak|Thread)Sanitizer|runtime error:" \
            "$run_dir/node$i/raftd.log"; then
            problem "a sanitizer report in $run_dir/node$i/raftd.log"
        fi
    done
}

# Runs lincheck and fault-figures on the history; sets F[...] and lin.
check_history() {
    local rc=0 kv figures
    [[ -s $run_dir/history ]] || { problem "no history" && return 0; }
    "$tools/lincheck" "$run_dir/history" >"$run_dir/lincheck.out" 2>&1 || rc=$?
    case $rc in
    0) lin=yes ;;
    1) lin=no && problem "not linearizable" ;;
    *) lin=undecided && problem "lincheck could not decide (exit $rc)" ;;
    esac
    if ! figures=$("$tools/fault-figures" "$run_dir/history" "$run_dir/heals" \
        2>"$run_dir/stale"); then
        problem "fault-figures failed: $(cat "$run_dir/stale")"
        return 0
    fi
    for kv in $figures; do F[${kv%%=*}]=${kv#*=}; done
    ((F[lost] == 0)) || problem "${F[lost]} acknowledged writes lost"
    ((F[stale] == 0)) || problem "${F[stale]} reads saw a value they could not see"
    ((F[unread] == 0)) || problem "${F[unread]} keys unreadable after the faults"
}

table=()
row_header() {
    echo "| scenario | nodes | seed | cycles | ops ok/failed/unknown | linearizable |" \
        "acked writes lost | heal->write ms | heal->agreed ms | write gap ms | result |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
}

# The heal figure says how many heals no write followed before the clients stopped.
row() {
    local heal=${F[heal_ms]}
    ((F[unserved] == 0)) || heal+=" (${F[unserved]} unserved)"
    local agreed=$agreed_max
    ((disagreed == 0)) || agreed+=" (${disagreed} over ${AGREE_WAIT_S} s)"
    local r="| $scenario | $n | $run_seed | $cycles | ${F[ok]}/${F[failed]}/${F[unknown]} | $lin"
    r+=" | ${F[lost]} | $heal | $agreed | ${F[gap_ms]} | $1 |"
    echo "$r"
    table+=("$r")
    [[ -z $rows ]] || echo "$r" >>"$rows"
}

# The first 40 lines of a file (lincheck's witness can hold thousands).
show() {
    [[ -s $1 ]] || return 0
    sed -n '1,40p' "$1"
    (($(wc -l <"$1") <= 40)) || echo "  ... (all of it in $1)"
}

run_one() {
    run_dir=$out/$scenario-${n}n-seed$run_seed
    mkdir -p "$run_dir"
    touch "$run_dir/heals"
    rng=$run_seed problems=() killed=() paused=() all_ids=()
    cycles=0 agreed_max=0 disagreed=0 lin=- workload=""
    mapfile -t all_ids < <(seq "$n")
    declare -gA F=([ok]=- [failed]=- [unknown]=- [lost]=- [heal_ms]=- [unserved]=0 [gap_ms]=-)
    echo "== $scenario, $n nodes, seed $run_seed, ${seconds} s: $(about "$scenario")"
    t0=$(now_us)
    if start_cluster; then
        ip netns exec "$PREFIX-net" "$build/tests/faults/kv-workload" --endpoints "$endpoints" \
            --history "$run_dir/history" --clients 6 --keys 4 --seconds "$seconds" \
            --request-timeout 300 --timeout 5000 --seed "$run_seed" >"$run_dir/workload.log" 2>&1 &
        workload=$!
        t0=$(now_us)
        sleep 1
        while cycle; do :; done
        wait "$workload" || problem "kv-workload failed (exit $?)"
        workload=""
        alive || true
        check_history
    fi
    stop_cluster
    check_logs
    if ((${#problems[@]} == 0)); then
        row pass
        ((keep)) || rm -rf "$run_dir"
        return 0
    fi
    row FAIL
    echo "FAILED: $scenario, $n nodes, seed $run_seed: $(IFS=';'; echo "${problems[*]}")"
    show "$run_dir/stale"
    show "$run_dir/lincheck.out"
    echo "history, heal times and node logs kept in $run_dir"
    echo "again: $0 --build $build --scenario $scenario --nodes $n --seconds $seconds" \
        "--seed $run_seed"
    return 1
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT
    [[ -z ${n:-} ]] || stop_cluster
    net_down
    # A failed run says where it is kept; an interrupted or broken one says it here.
    ((rc < 2)) || [[ ! -d ${run_dir:-} ]] || echo "netns_faults: exit $rc; kept $run_dir" >&2
    [[ ! -d ${out:-} ]] || rmdir "$out" 2>/dev/null || true
    exit "$rc"
}

main() {
    parse_args "$@"
    check_can_run
    remove_leftovers
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    out=$(mktemp -d /tmp/raftkv-netns-XXXXXX)
    echo "netns_faults: seed $seed, build $build, tools $tools"
    local k=0 failed=0
    for scenario in ${scenarios//,/ }; do
        for n in ${node_counts//,/ }; do
            run_seed=$((seed + k))
            k=$((k + 1))
            run_one || failed=$((failed + 1))
        done
    done
    echo
    row_header
    printf '%s\n' "${table[@]}"
    echo "$((k - failed)) passed, $failed failed"
    ((failed == 0))
}

main "$@"; exit # one line: an edit of this file during a run cannot run more of it
