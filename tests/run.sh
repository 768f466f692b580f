#!/usr/bin/env bash
# Builds raftkv twice (optimised, and with AddressSanitizer + UndefinedBehaviorSanitizer)
# and runs the whole test suite (ctest) against both. Installs missing packages first.
#   tests/run.sh            both builds
#   tests/run.sh --fast     the optimised build only
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/deploy/install-deps.sh" --tests
jobs=$(nproc)
run() { # name, cmake flags...
  local dir=$top/build/$1; shift
  cmake -S "$top" -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  (cd "$dir" && ctest --output-on-failure -j "$jobs")
}
run release -DCMAKE_BUILD_TYPE=RelWithDebInfo
[[ ${1:-} == --fast ]] && exit 0
# See tests/lsan-nng.supp for why leaks inside NNG are not reported.
ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS="suppressions=$top/tests/lsan-nng.supp:print_suppressions=0" \
  run asan -DCMAKE_BUILD_TYPE=Debug -DRAFTKV_SANITIZE=ON
# The fuzz harnesses (tests/fuzz), built with clang, each for a short while over its seeds.
fuzz=$top/build/fuzz
CC=clang cmake -S "$top" -B "$fuzz" -DCMAKE_BUILD_TYPE=Debug -DRAFTKV_SANITIZE=ON \
  -DRAFTKV_FUZZ=ON >/dev/null
cmake --build "$fuzz" -j "$jobs" --target fuzz_peer fuzz_client fuzz_snapshot fuzz_config fuzz_gateway
(cd "$fuzz" && ctest --output-on-failure -j "$jobs" -L fuzz)
