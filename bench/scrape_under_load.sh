#!/usr/bin/env bash
# How big a scrape of /metrics is, and how long it takes while the cluster is loaded.
#
#   bench/scrape_under_load.sh [-c CLIENTS] [-t SECONDS] [-n SCRAPES] [-B BUILD_DIR] [-d DIR] [-K]
#
# Starts a 3-node cluster with deploy/cluster.sh in DIR (default: a new temporary directory),
# finds the leader by the nodes' HTTP ports (cluster.sh http),
# and while raft-bench runs CLIENTS closed-loop clients (default 256) for SECONDS (default
# 20) against it, scrapes the leader's /metrics with curl SCRAPES times (default 300, one
# after the other). Prints the size of the last scrape, curl's time_total per scrape
# (median, p99, max), the load average at the end, what promtool check metrics says of
# the last scrape (when promtool is installed) and raft-bench's summary. The cluster is
# destroyed afterwards unless -K. BUILD_DIR holds cmd/raftd and bench/raft-bench (default:
# build/release).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
clients=256
secs=20
scrapes=300
build=$here/build/release
dir=""
keep=0
usage() {
    sed -n '2,/^set -/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit "$1"
}
while getopts "c:t:n:B:d:Kh" opt; do
    case $opt in
    c) clients=$OPTARG ;;
    t) secs=$OPTARG ;;
    n) scrapes=$OPTARG ;;
    B) build=$OPTARG ;;
    d) dir=$OPTARG ;;
    K) keep=1 ;;
    h) usage 0 ;;
    *) usage 2 ;;
    esac
done
command -v curl >/dev/null || { echo "scrape_under_load.sh: curl is needed" >&2; exit 2; }
[ -n "$dir" ] || dir=$(mktemp -d /tmp/scrape-under-load.XXXXXX)/cluster
cluster() { RAFTD=$build/cmd/raftd bash "$here/deploy/cluster.sh" -d "$dir" -n 3 "$@"; }

bench_pid=""
finish() {
    [ -z "$bench_pid" ] || kill "$bench_pid" 2>/dev/null || true
    if [ $keep = 1 ]; then
        cluster stop >/dev/null 2>&1 || true
        echo "kept: $dir"
    else
        cluster destroy >/dev/null 2>&1 || true
        rm -f "$(dirname "$dir")"/{bench.out,times,metrics.txt} 2>/dev/null || true
        rmdir "$(dirname "$dir")" 2>/dev/null || true
    fi
}
trap finish EXIT

cluster start >/dev/null
endpoints=$(cluster endpoints)
mapfile -t http_urls < <(cluster http)

leader_url=""
deadline=$((SECONDS + 60))
while [ -z "$leader_url" ]; do
    for url in "${http_urls[@]}"; do
        if curl -s "$url/status" | grep -q '"role":"leader"'; then leader_url=$url; fi
    done
    [ -n "$leader_url" ] || [ $SECONDS -lt $deadline ] || { echo "no leader" >&2; exit 1; }
    sleep 0.1
done
echo "cluster: $dir, leader's metrics at $leader_url/metrics"

out=$(dirname "$dir")
"$build/bench/raft-bench" --endpoints "$endpoints" --clients "$clients" --duration "$secs" \
    >"$out/bench.out" 2>&1 &
bench_pid=$!
sleep 2 # past the clients' connecting
: >"$out/times"
for _ in $(seq "$scrapes"); do
    kill -0 $bench_pid 2>/dev/null || break
    curl -s -o /dev/null -w '%{time_total}\n' "$leader_url/metrics" >>"$out/times"
done
load=$(cut -d' ' -f1-3 /proc/loadavg)
wait $bench_pid || { cat "$out/bench.out"; exit 1; }
bench_pid=""
curl -s "$leader_url/metrics" >"$out/metrics.txt"
echo "/metrics on the leader: $(wc -c <"$out/metrics.txt") bytes, $(grep -vc '^#' "$out/metrics.txt") samples"
if command -v promtool >/dev/null; then
    promtool check metrics <"$out/metrics.txt" && echo "promtool check metrics: no problem found"
fi
sort -n "$out/times" | awk -v load="$load" '
    { t[NR] = $1 }
    END {
        if (NR == 0) { print "no scrape finished during the load"; exit 1 }
        p99 = int(NR * 0.99); if (p99 < 1) p99 = 1
        printf "%d scrapes under load: median %.1f ms, p99 %.1f ms, max %.1f ms\n",
               NR, t[int((NR + 1) / 2)] * 1000, t[p99] * 1000, t[NR] * 1000
        print "load average (1, 5, 15 min): " load
    }'
echo "raft-bench:"
cat "$out/bench.out"
