#!/usr/bin/env bash
# deploy/install-deps.sh against stand-ins for dpkg-query, apt-get and id (first in PATH):
# which packages each mode asks apt for, that it asks for no recommended ones, that apt's
# output stays in the log when apt succeeds and is shown when it fails. What Debian then
# installs is not checked here (that needs a fresh machine).
#   install_deps_test.sh SOURCE_DIR
set -uo pipefail
script=$1/deploy/install-deps.sh
work=$(mktemp -d /tmp/install-deps-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/bin"

fail() {
  echo "FAIL: $*" >&2
  echo "--- output:" >&2
  cat "$work/out" >&2
  echo "--- apt-get calls:" >&2
  cat "$work/apt-calls" >&2 2>/dev/null
  exit 1
}

# dpkg-query: the packages listed in $work/installed are installed. apt-get: records its
# arguments, says something, and fails when $work/apt-fails exists.
cat >"$work/bin/dpkg-query" <<'EOF'
#!/usr/bin/env bash
p=${!#}
grep -qx "$p" "$WORK/installed" && printf 'install ok installed' && exit 0
exit 1
EOF
cat >"$work/bin/apt-get" <<'EOF'
#!/usr/bin/env bash
echo "$*" >>"$WORK/apt-calls"
echo "apt chatter: Reading package lists..."
echo "apt chatter on stderr: debconf: delaying package configuration" >&2
[ ! -e "$WORK/apt-fails" ] || { echo "E: Unable to locate package no-such"; exit 100; }
EOF
printf '#!/bin/sh\necho 0\n' >"$work/bin/id"
chmod +x "$work/bin/"*
export WORK=$work PATH=$work/bin:$PATH

run() { # args...: runs the script with nothing installed but $work/installed
  rm -f "$work/apt-calls"
  bash "$script" "$@" >"$work/out" 2>&1
}
# The packages the install asked for, one a line, sorted.
asked() {
  grep -w install "$work/apt-calls" | tr ' ' '\n' | grep -v '^-\|^install$' | sort
}
expect() { # mode, then the packages it must ask for
  local mode=$1
  shift
  printf '%s\n' "$@" | sort >"$work/want"
  asked >"$work/got"
  diff "$work/want" "$work/got" >"$work/diff" || fail "$mode: asked for other packages: $(cat "$work/diff")"
}

base=(gcc libc6-dev make cmake pkg-config protobuf-c-compiler libprotobuf-c-dev libnng-dev
      liblmdb-dev openssl)
: >"$work/installed"
run || fail "default mode: exit status $?"
expect default "${base[@]}"
grep -qw update "$work/apt-calls" || fail "no apt-get update before installing"
grep -q -- '--no-install-recommends' "$work/apt-calls" || fail "recommended packages installed"
grep -q 'apt chatter' "$work/out" && fail "apt's output shown though it succeeded"
grep -q 'install-deps: installing' "$work/out" || fail "does not say what it installs"

run --plot || fail "--plot: exit status $?"
expect --plot "${base[@]}" gnuplot-nox

run --tests || fail "--tests: exit status $?"
expect --tests "${base[@]}" gnuplot-nox clang libclang-rt-14-dev iproute2 nftables groff-base \
  mandoc curl python3-yaml

# Only what is missing; nothing at all when nothing is.
printf '%s\n' cmake openssl clang >"$work/installed"
run --tests || fail "--tests, some installed: exit status $?"
asked | grep -qx 'cmake\|openssl\|clang' && fail "asked for installed packages"
printf '%s\n' "${base[@]}" gnuplot-nox clang libclang-rt-14-dev iproute2 nftables groff-base \
  mandoc curl python3-yaml >"$work/installed"
run --tests || fail "all installed: exit status $?"
[ ! -e "$work/apt-calls" ] || fail "apt-get run though everything is installed"
[ ! -s "$work/out" ] || fail "output though everything is installed"

# apt fails: its output is shown, and the script fails.
: >"$work/installed"
touch "$work/apt-fails"
run && fail "apt-get failed but the script succeeded"
grep -q 'E: Unable to locate package' "$work/out" || fail "apt's error not shown"

run --no-such-flag
[ $? = 2 ] || fail "an unknown option is not a usage error"
echo ok
