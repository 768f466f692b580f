#!/usr/bin/env bash
# Installs the Debian 12 packages raftkv builds and runs with, when any is missing, without
# the packages they only recommend.
#   deploy/install-deps.sh           to build raftkv and run it (deploy/demo.sh, cluster.sh)
#   deploy/install-deps.sh --plot    also gnuplot, for raft-bench --plot
#   deploy/install-deps.sh --tests   also everything a test needs (tests/run.sh), --plot's too
# apt's own output goes to a log file, shown only when apt fails.
set -euo pipefail

# gcc, libc6-dev, make: raftkv is C only (no g++, no dpkg-dev: not build-essential).
# cmake and pkg-config configure it; protobuf-c-compiler generates its messages; the -dev
# packages are its libraries (libnng-dev brings libmbedtls-dev, NNG's TLS).
# openssl: deploy/cluster.sh -t makes a TLS cluster's certificates with it.
packages=(gcc libc6-dev make cmake pkg-config protobuf-c-compiler libprotobuf-c-dev libnng-dev
          liblmdb-dev openssl)
# gnuplot-nox draws raft-bench --plot figures (a font comes with its dependencies).
plot=(gnuplot-nox)
# What only tests need: gnuplot-nox for bench_plot; clang for the fuzz harnesses (tests/fuzz),
# with libclang-rt-14-dev, which holds its libFuzzer and sanitizer runtimes (clang only
# recommends it); iproute2 and nftables for the fault suite's network namespaces and
# partitions (tests/faults); groff-base and mandoc to render and lint the man pages
# (tests/tools/man_test.sh); openssl (above) for the TLS tests; curl, the HTTP client of the
# /health, /metrics and gateway tests; python3-yaml to read the container and Kubernetes
# files (tests/deploy/entrypoint_test.sh).
tests=("${plot[@]}" clang libclang-rt-14-dev iproute2 nftables groff-base mandoc curl
       python3-yaml)

for arg in "$@"; do
  case $arg in
  --plot) packages+=("${plot[@]}") ;;
  --tests) packages+=("${tests[@]}") ;;
  -h | --help)
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "install-deps: unknown option $arg (--plot, --tests)" >&2
    exit 2
    ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

sudo=()
[[ $(id -u) -ne 0 ]] && sudo=(sudo)
log=$(mktemp /tmp/install-deps.XXXXXX.log)
echo "install-deps: installing ${missing[*]} (apt's output: $log)" >&2
# Runs apt-get quietly; on failure shows its whole output, then fails.
apt() {
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q "$@" >>"$log" 2>&1; then
    echo "install-deps: apt-get $1 failed:" >&2
    cat "$log" >&2
    exit 1
  fi
}
apt update
apt install -y --no-install-recommends "${missing[@]}"
rm -f "$log"
echo "install-deps: done" >&2
