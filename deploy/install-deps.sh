#!/usr/bin/env bash
# Installs the Debian 12 packages raftkv builds and runs with, when any is missing.
#   deploy/install-deps.sh           to build and run
#   deploy/install-deps.sh --tests   also what only the tests need (tests/run.sh)
set -euo pipefail
# gnuplot-nox draws raft-bench --plot figures (and lets its test run).
packages=(build-essential cmake pkg-config libprotobuf-c-dev protobuf-c-compiler libnng-dev
          liblmdb-dev gnuplot-nox)
# clang: libFuzzer for tests/fuzz. iproute2, nftables: the fault suite's network
# namespaces, links and partitions (tests/faults). groff-base, mandoc: render and lint the
# man pages (tests/tools/man_test.sh; about 1.3 MB together).
[[ ${1:-} == --tests ]] && packages+=(clang iproute2 nftables groff-base mandoc)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "install-deps: installing ${missing[*]}" >&2
sudo=""
[[ $(id -u) -ne 0 ]] && sudo=sudo
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
