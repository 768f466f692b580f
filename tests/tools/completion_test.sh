#!/usr/bin/env bash
# deploy/bash-completion/raft-kv against raft-kv itself: it loads in bash and registers
# for raft-kv; it completes exactly the commands `raft-kv --help` lists, and after each
# command word (or none) exactly the options raft-kv accepts there (asked of raft-kv:
# "raft-kv [COMMAND] OPTION --help" exits 0 only if OPTION goes there), every option the
# help lists being one of them; after an option that takes a value it offers no word of
# its own (file names after those that take a file).
# Usage: completion_test.sh RAFT_KV SCRIPT
set -uo pipefail
kv=$1 script=$2
work=$(mktemp -d /tmp/raftkv-completion-XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
# Two lists (one word a line) that must be equal.
same() { # what, expected, got
    [ "$2" = "$3" ] && return
    diff <(echo "$2") <(echo "$3") >&2
    fail "$1 (< expected, > got)"
}

loaded=$(bash -c 'source "$1" && complete -p raft-kv' bash "$script") || fail "cannot load $script"
[ "$loaded" = "complete -F _raft_kv raft-kv" ] || fail "registered as '$loaded'"

# shellcheck source=/dev/null
source "$script"
# What the completion offers for the words of a command line, the last being completed.
offers() {
    COMP_WORDS=(raft-kv "$@")
    COMP_CWORD=$#
    COMP_LINE="raft-kv $*"
    COMP_POINT=${#COMP_LINE}
    _raft_kv
    [ ${#COMPREPLY[@]} -eq 0 ] || printf '%s\n' "${COMPREPLY[@]}" | sort -u
}

help=$("$kv" --help) || fail "raft-kv --help: exit status $?"
# The commands: the first word of each line of the "commands:" section.
commands=$(echo "$help" | sed -n '/^commands:$/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p;
                                  /^commands:$/,/^$/s/^  \([a-z][a-z-]*\)$/\1/p' | sort -u)
options=$(echo "$help" | grep -o -- '--[a-z][a-z-]*' | sort -u)
[ -n "$commands" ] && [ -n "$options" ] || fail "no commands or no options in --help"
accepts() { "$kv" "$@" --help >/dev/null 2>&1; }
for c in $commands; do
    accepts "$c" || fail "--help lists a command '$c' that raft-kv refuses"
done
accepts no-such-command && fail "raft-kv takes any command word"
same "commands completed" "$commands" "$(offers "")"

# Where raft-kv takes each option the help lists: "--opt", or "--opt=" if it takes a value.
where() { # command words... (none: before the command)
    local o
    for o in $options; do
        if accepts "$@" "$o"; then
            echo "$o"
        elif accepts "$@" "$o=1"; then
            echo "$o="
        fi
    done
}
names() { echo "$1" | tr -d =; }
values() { echo "$1" | sed -n 's/=$//p'; }
before=$(where)
same "options completed before a command" "$(names "$before")" "$(offers -)"
for o in $(values "$before"); do
    [ -z "$(offers "$o" "")" ] || [[ $o == --tls-* ]] ||
        fail "'$o' takes a value, but completion offers words for it"
    same "a command after '$o 1'" "$commands" "$(offers "$o" 1 "")"
    same "a command after '$o=1'" "$commands" "$(offers "$o" = 1 "")"
done
taken_anywhere=$(names "$before")
for c in $commands; do
    after=$(where "$c")
    same "options completed after '$c'" "$(names "$after")" "$(offers "$c" -)"
    same "options completed after '$c --json'" "$(names "$after")" "$(offers "$c" --json -)"
    taken_anywhere+=$'\n'$(names "$after")
    for o in $(values "$after"); do
        [ -z "$(offers "$c" "$o" "")" ] || [[ $o == --tls-* || $o == --value-file ]] ||
            fail "'$c $o' takes a value, but completion offers words for it"
        # The word after its value is an argument: nothing to offer.
        [ -z "$(offers "$c" "$o" 1 "")" ] || fail "'$c $o 1' offers words for an argument"
        # Before the command word, the one after the value is the command.
        values "$before" | grep -qx -- "$o" &&
            same "the command after '$o 1'" "$commands" "$(offers "$o" 1 "")"
    done
done
same "options --help lists and raft-kv takes" "$options" "$(echo "$taken_anywhere" | sort -u)"

# File names after the options that take a file.
touch "$work/ca.pem" "$work/value.bin"
for words in "--tls-ca" "--tls-cert" "--tls-key" "put --value-file" "cas --value-file"; do
    # shellcheck disable=SC2086
    same "files after '$words'" "$work/ca.pem" "$(offers $words "$work/c")"
    # shellcheck disable=SC2086
    same "files after '$words='" "$work/value.bin" "$(offers $words = "$work/v")"
done
# After "--" every word is an argument.
[ -z "$(offers put -- -)" ] || fail "options offered after '--'"
same "a command after '--'" "$commands" "$(offers -- "")"
echo "completion test passed"
