#!/usr/bin/env bash
# docs/man against the programs: every long option a program's --help prints is a tag of
# the OPTIONS section of its man page and the other way round (raft-kv's commands too, in
# COMMANDS); the page names the project's version; groff renders it without a warning
# (-ww) and mandoc -Tlint finds nothing to say. Exits 77 (skipped) after the first checks
# when groff or mandoc is not installed (deploy/install-deps.sh --tests installs both).
# Usage: man_test.sh VERSION MAN_DIR RAFTD RAFT_KV
set -uo pipefail
version=$1 man=$2 raftd=$3 kv=$4
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
same() { # what, expected, got
    [ "$2" = "$3" ] && return
    diff <(echo "$2") <(echo "$3") >&2
    fail "$1 (< --help, > man page)"
}

# The words of the tag lines (the line after each .TP) of a section, as text.
tags() { # page, section
    awk -v s="$2" '/^\.SH / { in_s = ($0 == ".SH " s) } in_s && tag { print; tag = 0 }
                   in_s && /^\.TP/ { tag = 1 }' "$1" |
        sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\c$//'
}
long_options() { grep -o -- '--[a-z][a-z-]*' | sort -u; }

pages=("$man/raftd.8" "$man/raft-kv.1")
for page in "${pages[@]}"; do
    [ -f "$page" ] || fail "no $page"
    grep -q "^\.TH .* \"raftkv $version\" " "$page" || fail "$page does not name raftkv $version"
done
for pair in "$raftd:$man/raftd.8" "$kv:$man/raft-kv.1"; do
    bin=${pair%%:*} page=${pair#*:}
    help=$("$bin" --help) || fail "$bin --help: exit status $?"
    same "$(basename "$page"): options" "$(echo "$help" | long_options)" \
        "$(tags "$page" OPTIONS | long_options)"
done
commands=$("$kv" --help | sed -n '/^commands:$/,/^$/s/^  \([a-z][a-z-]*\)\( .*\)\{0,1\}$/\1/p' |
    sort -u)
[ -n "$commands" ] || fail "no commands in raft-kv --help"
same "raft-kv.1: commands" "$commands" \
    "$(tags "$man/raft-kv.1" COMMANDS | sed -E 's/^\.[A-Z]+ +//; s/"//g' | awk '{ print $1 }' |
        sort -u)"

for tool in groff mandoc; do
    command -v $tool >/dev/null || {
        echo "$tool is not installed: rendering not checked (skipped)"
        exit 77
    }
done
for page in "${pages[@]}"; do
    warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1) || fail "groff failed on $page"
    [ -z "$warnings" ] || fail "groff on $page: $warnings"
    lint=$(mandoc -Tlint "$page" 2>&1) || fail "mandoc -Tlint on $page: $lint"
    [ -z "$lint" ] || fail "mandoc -Tlint on $page: $lint"
done
echo "man page test passed"
