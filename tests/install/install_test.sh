#!/usr/bin/env bash
# cmake --install as an operator and a library user see it: installs the build into a
# temporary prefix, checks what is there (the shared library's SONAME and exports), builds
# examples/kv_put_get.c against the installed files only (pkg-config, and CMake's
# find_package(raftkv) with the shared and the static library), starts the installed raftd as
# a single-node cluster and runs each build of the example against it.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR LIBDIR VERSION CC [CFLAGS]
#   LIBDIR: CMAKE_INSTALL_LIBDIR; CFLAGS: what a program needs to use this build's library
#   (the sanitizer flags of a sanitizer build), also passed when linking.
set -euo pipefail
# Never `producer | grep -q`: grep -q exits at the first match, the producer may then die of
# SIGPIPE, and pipefail makes the whole pipeline fail. has TEXT PATTERN... greps a string.
has() { local text=$1; shift; grep -q "$@" <<<"$text"; }
build=$1
src=$2
libdir_rel=$3
version=$4
cc=$5
cflags=${6:-}

work=$(mktemp -d /tmp/raftkv-install-XXXXXX)
prefix=$work/prefix
libdir=$prefix/$libdir_rel
raftd_pid=""
ok=0
cleanup() {
    if [ -n "$raftd_pid" ] && kill -0 "$raftd_pid" 2>/dev/null; then
        kill -KILL "$raftd_pid" 2>/dev/null || true
        wait "$raftd_pid" 2>/dev/null || true
    fi
    if [ $ok -eq 1 ]; then rm -rf "$work"; else echo "kept $work" >&2; fi
}
trap cleanup EXIT

# The output of the last step run with `step`, and raftd's log, go with a failure.
fail() {
    echo "FAIL: $*" >&2
    if [ -s "$work/step.log" ]; then
        echo "---- output of the last step" >&2
        tail -n 40 "$work/step.log" >&2
    fi
    if [ -f "$work/node/raftd.log" ]; then
        echo "---- raftd.log" >&2
        tail -n 20 "$work/node/raftd.log" >&2
    fi
    exit 1
}
step() { "$@" >"$work/step.log" 2>&1; }

# 1. Install, and find everything where the README says.
step cmake --install "$build" --prefix "$prefix" || fail "cmake --install"
for f in bin/raftd bin/raft-kv bin/raft-bench; do
    [ -x "$prefix/$f" ] || fail "$f not installed"
done
for f in share/man/man1/raft-kv.1 share/man/man8/raftd.8 share/bash-completion/completions/raft-kv; do
    [ -f "$prefix/$f" ] || fail "$f not installed"
done
[ "$(cd "$prefix/include" && find . -type f | sort | tr '\n' ' ')" = \
    "./raftkv/api.h ./raftkv/client.h " ] ||
    fail "the public headers are include/raftkv/{api,client}.h, and only they: $(cd "$prefix/include" && find . -type f)"
[ -f "$libdir/libraftkv.so.$version" ] || fail "no $libdir_rel/libraftkv.so.$version"
[ "$(readlink "$libdir/libraftkv.so.0")" = "libraftkv.so.$version" ] || fail "libraftkv.so.0 link"
[ "$(readlink "$libdir/libraftkv.so")" = libraftkv.so.0 ] || fail "libraftkv.so link"
[ -f "$libdir/libraftkv.a" ] || fail "no $libdir_rel/libraftkv.a"
for f in pkgconfig/raftkv.pc cmake/raftkv/raftkvConfig.cmake cmake/raftkv/raftkvConfigVersion.cmake; do
    [ -f "$libdir/$f" ] || fail "no $libdir_rel/$f"
done
[[ $("$prefix/bin/raftd" --version) == "raftd $version (git "*")" ]] || fail "raftd --version"
step "$prefix/bin/raft-bench" --help || fail "raft-bench --help"

# 2. The shared library: its SONAME, its dependencies, and exactly the public API exported:
# the functions client.h declares RAFTKV_API, no internal (rk_...) or generated (raftkv__...)
# symbol, nothing of the Raft core (raft_...).
lib=$libdir/libraftkv.so.$version
has "$(readelf -d "$lib")" 'Library soname: \[libraftkv.so.0\]' || fail "SONAME: $(readelf -d "$lib")"
grep -o 'RAFTKV_API[^(]*(' "$prefix/include/raftkv/client.h" | sed -E 's/.*[ *]([A-Za-z0-9_]+)\($/\1/' |
    sort >"$work/api.txt"
[ "$(wc -l <"$work/api.txt")" -ge 10 ] || fail "too few RAFTKV_API functions found in client.h"
# Defined global or weak symbols of the dynamic symbol table.
readelf --dyn-syms -W "$lib" | awk '$7 != "UND" && ($5 == "GLOBAL" || $5 == "WEAK") {print $8}' |
    sed 's/@.*//' | sort >"$work/exported.txt"
diff "$work/api.txt" "$work/exported.txt" >"$work/step.log" ||
    fail "the exports of libraftkv.so differ from client.h's RAFTKV_API (< only declared, > only exported)"

# 3. The example, built from the installed files alone, three ways.
mkdir -p "$work/example"
cp "$src/examples/kv_put_get.c" "$src/examples/CMakeLists.txt" "$work/example/"
export PKG_CONFIG_PATH=$libdir/pkgconfig
[ "$(pkg-config --modversion raftkv)" = "$version" ] || fail "pkg-config --modversion raftkv"
# shellcheck disable=SC2046,SC2086  # word splitting of flags is wanted
step "$cc" $cflags -std=c11 -Wall -Wextra -Werror -o "$work/kv_put_get_pc" \
    "$work/example/kv_put_get.c" $(pkg-config --cflags --libs raftkv) -Wl,-rpath,"$libdir" ||
    fail "cc with pkg-config --cflags --libs raftkv"
# The static archive with pkg-config --static's dependencies (Requires.private, Libs.private).
static_libs=$(pkg-config --static --libs raftkv)
# shellcheck disable=SC2046,SC2086
step "$cc" $cflags -std=c11 -o "$work/kv_put_get_pc_static" "$work/example/kv_put_get.c" \
    $(pkg-config --cflags raftkv) "$libdir/libraftkv.a" ${static_libs//-lraftkv/} ||
    fail "cc with libraftkv.a and pkg-config --static --libs raftkv"
step cmake -S "$work/example" -B "$work/example/build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$cflags" || fail "cmake configure of the example"
grep -qx "raftkv_DIR:PATH=$libdir/cmake/raftkv" "$work/example/build/CMakeCache.txt" ||
    fail "find_package(raftkv) found another raftkv: $(grep raftkv_DIR "$work/example/build/CMakeCache.txt")"
step cmake --build "$work/example/build" || fail "cmake --build of the example"

needs_shared() { # program: it loads libraftkv.so.0 from the prefix
    has "$(readelf -d "$1")" 'Shared library: \[libraftkv.so.0\]' &&
        has "$(ldd "$1")" "libraftkv.so.0 => $libdir/libraftkv.so.0 "
}
needs_shared "$work/kv_put_get_pc" || fail "kv_put_get_pc does not load $libdir/libraftkv.so.0"
needs_shared "$work/example/build/kv_put_get" || fail "kv_put_get (CMake) does not load the installed library"
for p in "$work/kv_put_get_pc_static" "$work/example/build/kv_put_get_static"; do
    ! has "$(readelf -d "$p")" libraftkv || fail "$p needs libraftkv.so, though linked with libraftkv.a"
done

# 4. The installed raftd, one node on free ports of 127.0.0.1: it elects itself at once.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { # below the ephemeral ports, which a connection's local end may take
    local p
    while :; do
        p=$((20000 + RANDOM % 12000))
        port_in_use "$p" || { echo "$p"; return; }
    done
}
mkdir -p "$work/node"
start_raftd() {
    peer=$(free_port)
    client=$(free_port)
    [ "$peer" != "$client" ] || client=$((peer + 1))
    cat >"$work/node/node.conf" <<EOF
node_id = 1
cluster_id = 1
data_dir = $work/node/data
peer.1 = tcp://127.0.0.1:$peer
client.1 = tcp://127.0.0.1:$client
EOF
    "$prefix/bin/raftd" --config "$work/node/node.conf" >"$work/node/raftd.log" 2>&1 &
    raftd_pid=$!
    local deadline=$((SECONDS + 60))
    while [ $SECONDS -lt $deadline ]; do
        grep -q ': running: ' "$work/node/raftd.log" && return 0
        kill -0 "$raftd_pid" 2>/dev/null || return 1
        sleep 0.05
    done
    fail "raftd did not start within 60 s"
}
tries=0
until start_raftd; do
    wait "$raftd_pid" || true
    tries=$((tries + 1))
    # Another process may take a port between the check and raftd's bind: new ports then.
    if ! grep -q 'Address in use' "$work/node/raftd.log" || [ $tries -ge 5 ]; then
        fail "raftd exited at start"
    fi
done
endpoint=tcp://127.0.0.1:$client
kv() { "$prefix/bin/raft-kv" --endpoints "$endpoint" --timeout 30000 "$@"; }
deadline=$((SECONDS + 60))
until has "$(kv --json status 2>/dev/null || true)" '"role":"leader"'; do
    [ $SECONDS -lt $deadline ] || fail "the node did not lead within 60 s: $(kv status 2>&1)"
    sleep 0.1
done

# 5. Each build of the example puts a key of its own and prints it back; raft-kv, another
# client, reads the same value.
for p in kv_put_get_pc kv_put_get_pc_static example/build/kv_put_get example/build/kv_put_get_static; do
    key=install/$(basename "$p")
    value="written by $p, $$"
    "$work/$p" "$key" "$value" "$endpoint" >"$work/out.txt" 2>"$work/step.log" || fail "$p: exit status $?"
    [ "$(cat "$work/out.txt")" = "$value" ] || fail "$p printed '$(cat "$work/out.txt")', not '$value'"
    [ "$(kv get "$key" 2>&1)" = "$value" ] || fail "raft-kv get $key: $(kv get "$key" 2>&1)"
done

# 6. SIGTERM stops the node cleanly.
kill -TERM "$raftd_pid"
deadline=$((SECONDS + 30))
while kill -0 "$raftd_pid" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "raftd did not stop within 30 s of SIGTERM"
    sleep 0.05
done
status=0
wait "$raftd_pid" || status=$?
raftd_pid=""
[ $status -eq 0 ] || fail "raftd exited with status $status after SIGTERM"
ok=1
echo "install test: OK: programs, headers, libraftkv.so.$version and .a, 4 builds of the example"
