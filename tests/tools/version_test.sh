#!/usr/bin/env bash
# --version of raftd, raft-kv and raft-bench: the project's version and the git revision
# they were built from, as src/cli/git_revision.cmake finds it (checked here on throwaway
# repositories: a commit, an edit, a new commit, a directory that is not a checkout).
# Usage: version_test.sh CMAKE SOURCE_DIR VERSION RAFTD RAFT_KV RAFT_BENCH
set -uo pipefail
cmake=$1 src=$2 version=$3
shift 3
work=$(mktemp -d /tmp/raftkv-version-XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# The programs: one line, the same revision in each.
revision=
for bin in "$@"; do
    name=$(basename "$bin")
    out=$("$bin" --version) || fail "$name --version: exit status $?"
    [[ $out =~ ^$name\ $version\ \(git\ ([A-Za-z0-9._+-]+)(, modified)?\)$ ]] ||
        fail "$name --version printed '$out'"
    rev=${BASH_REMATCH[1]}
    [ -z "$revision" ] || [ "$rev" = "$revision" ] || fail "$name: revision $rev, not $revision"
    revision=$rev
    echo "$out"
done
# Built from a checkout git can read: a commit of it (describe's last word, after a tag).
if top=$(git -C "$src" rev-parse --show-toplevel 2>/dev/null) &&
    [ "$(realpath "$top")" = "$(realpath "$src")" ]; then
    commit=${revision##*-g}
    git -C "$src" rev-parse -q --verify "$commit^{commit}" >/dev/null ||
        fail "revision $revision is no commit of $src"
else
    [ "$revision" = unknown ] || fail "revision $revision, outside a git checkout"
fi

# The generator. Prints the header's revision, then " modified" if so.
header=$work/revision.h
describe() {
    "$cmake" -DSOURCE_DIR="$1" -DOUT="$header" -P "$src/src/cli/git_revision.cmake" ||
        fail "git_revision.cmake failed on $1"
    sed -n 's/^#define RAFTKV_GIT_REVISION "\(.*\)"$/\1/p' "$header" | tr -d '\n'
    grep -q '^#define RAFTKV_GIT_MODIFIED 1$' "$header" && printf ' modified'
    echo
}
if ! command -v git >/dev/null; then
    echo "git is not installed: only the revision of a directory that is no checkout is checked"
    mkdir "$work/plain"
    [ "$(describe "$work/plain")" = unknown ] || fail "no checkout: not unknown"
    exit 0
fi
repo=$work/repo
g() { git -C "$repo" -c user.name=test -c user.email=test@example.com "$@" >/dev/null; }
mkdir "$repo" && g init -q && echo one >"$repo/file" && g add file && g commit -q -m one ||
    fail "cannot make a git repository"
first=$(git -C "$repo" rev-parse --short HEAD)
[ "$(describe "$repo")" = "$first" ] || fail "a clean checkout: '$(describe "$repo")', not $first"
# Unchanged: not rewritten, so nothing is compiled again.
before=$(stat -c %y "$header")
sleep 0.01
describe "$repo" >/dev/null
[ "$(stat -c %y "$header")" = "$before" ] || fail "the header was rewritten with the same text"
echo two >"$repo/file"
[ "$(describe "$repo")" = "$first modified" ] || fail "an edited file: '$(describe "$repo")'"
g commit -q -a -m two
second=$(git -C "$repo" rev-parse --short HEAD)
[ "$second" != "$first" ] && [ "$(describe "$repo")" = "$second" ] ||
    fail "a new commit: '$(describe "$repo")', not $second"
# A directory inside a checkout that is not one itself (a tarball unpacked there).
mkdir "$repo/unpacked"
[ "$(describe "$repo/unpacked")" = unknown ] || fail "inside another checkout: not unknown"
echo "version test passed"
