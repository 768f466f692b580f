#!/usr/bin/env bash
# deploy/systemd/: `systemd-analyze verify` accepts raftd.service without a word (it exits 0
# on unknown keys, so any output fails the test), and systemd-sysusers reads raftkv.sysusers.
# verify needs ExecStart's binary to exist: it checks a copy that runs the built raftd.
# Without systemd's tools (Debian package systemd; not in containers) it is skipped, saying so.
#   systemd_verify_test.sh SOURCE_DIR RAFTD
set -uo pipefail
src=$1/deploy/systemd
raftd=$2
command -v systemd-analyze >/dev/null || {
  echo "SKIPPED: systemd-analyze not found (Debian package systemd): raftd.service not verified"
  exit 77
}
work=$(mktemp -d /tmp/systemd-verify-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "FAIL: $*" >&2
  cat "$work/out" >&2 2>/dev/null
  exit 1
}

verify() { # unit file: exit status of systemd-analyze verify, its output in $work/out
  SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$1" >"$work/out" 2>&1
}

mkdir "$work/unit"
sed "s|^ExecStart=/usr/local/bin/raftd |ExecStart=$raftd |" "$src/raftd.service" \
  >"$work/unit/raftd.service"
grep -q "^ExecStart=$raftd --config /etc/raftkv/node.conf$" "$work/unit/raftd.service" ||
  fail "ExecStart is not '/usr/local/bin/raftd --config /etc/raftkv/node.conf'"
grep -qx 'Type=notify' "$work/unit/raftd.service" || fail "not Type=notify"
verify "$work/unit/raftd.service" || fail "systemd-analyze verify: exit status $?"
[ ! -s "$work/out" ] || fail "systemd-analyze verify has something to say"

# The check above can fail: verify speaks up about a key it does not know.
echo 'NoSuchKey=1' >>"$work/unit/raftd.service"
verify "$work/unit/raftd.service"
grep -q NoSuchKey "$work/out" || fail "verify said nothing of an unknown key: the check above proves nothing"

if command -v systemd-sysusers >/dev/null; then
  mkdir "$work/root"
  systemd-sysusers --dry-run --root="$work/root" "$src/raftkv.sysusers" >"$work/out" 2>&1 ||
    fail "systemd-sysusers refuses raftkv.sysusers"
  grep -q "Creating user 'raftkv'" "$work/out" || fail "raftkv.sysusers creates no user raftkv"
else
  echo "systemd-sysusers not found: raftkv.sysusers not checked"
fi
echo ok
