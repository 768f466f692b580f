#!/bin/bash
# How much the simulators catch: each mutant changes one line of the core or of the node (a
# bug someone could plausibly write), is built in a scratch copy of the tree, and must be
# caught by the CI seed budget of raft-sim (tests/sim/CMakeLists.txt), by the named
# scenarios, or, for the node's own code, by raft-hostsim's CI budget (tests/hostsim).
# Prints one line per mutant: the seeds it fails, the first failing seed with its
# violation, and the scenarios that fail. Not part of ctest: about half a minute per mutant.
#
#     tests/sim/mutants.sh             every mutant
#     tests/sim/mutants.sh NAME...     only these
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
names=() files=() froms=() tos=()
mutant() { names+=("$1") files+=("$2") froms+=("$3") tos+=("$4"); }

# Elections
mutant timeout-not-randomized src/raft/core.c \
    'r->election_timeout = r->cfg.election_ticks_min + r->cfg.random(r->cfg.random_arg, span);' \
    'r->election_timeout = r->cfg.election_ticks_min + 0 * span;'
mutant timer-not-reset-by-leader src/raft/core.c \
    '    r->leader = m->from;
    r->election_elapsed = 0;' \
    '    r->leader = m->from;'
mutant pre-vote-raises-term src/raft/core.c \
    'bool pre_vote_req = is_vote_request(m) && m->request_vote.pre_vote;' \
    'bool pre_vote_req = false;'
mutant pre-vote-ignores-log src/raft/election.c \
    'can_vote && raft__log_is_up_to_date(&r->log, rv->last_log_index, rv->last_log_term);' \
    'can_vote && (rv->pre_vote || raft__log_is_up_to_date(&r->log, rv->last_log_index, rv->last_log_term));'
mutant vote-ignores-log src/raft/election.c \
    'can_vote && raft__log_is_up_to_date(&r->log, rv->last_log_index, rv->last_log_term);' \
    'can_vote;'
mutant vote-twice-in-a-term src/raft/election.c \
    'bool can_vote = r->vote == m->from || (r->vote == 0 && r->leader == 0) ||' \
    'bool can_vote = true ||'
mutant check-quorum-never-forgets src/raft/replication.c \
    '        pr->recent_active = false;' \
    ''
mutant quorum-one-short src/raft/core.c \
    'return voters / 2 + 1;' \
    'return voters / 2;'
# Replication and commitment
mutant commit-earlier-terms-by-count src/raft/replication.c \
    'if (replicas >= raft__core_quorum(r) && raft__log_term_at(&r->log, candidate) == r->term)' \
    'if (replicas >= raft__core_quorum(r))'
mutant follower-commit-uncapped src/raft/replication.c \
    'raft_index commit = min_index(a->commit, last_new);' \
    'raft_index commit = min_index(a->commit, raft__log_last_index(&r->log));'
mutant heartbeat-prev-off-by-one src/raft/replication.c \
    'raft_index prev = pr->match >= r->log.snapshot_index ? pr->match : 0;' \
    'raft_index prev = pr->match >= r->log.snapshot_index ? pr->match + 1 : 0;'
mutant ack-without-matching-prev src/raft/replication.c \
    'if (prev > raft__log_last_index(&r->log) || raft__log_term_at(&r->log, prev) != prev_term)' \
    'if (prev > raft__log_last_index(&r->log))'
# Snapshots
mutant snapshot-chunk-acked-as-done src/raft/snapshot.c \
    '    return respond(r, m, false, false);
}' \
    '    return respond(r, m, true, false);
}'
mutant snapshot-held-beyond-commit src/raft/snapshot.c \
    'if (s->last_index <= r->log.commit || raft__log_term_at(&r->log, s->last_index) == s->last_term)' \
    'if (s->last_index <= r->log.commit + 1 || raft__log_term_at(&r->log, s->last_index) == s->last_term)'
mutant snapshot-chunks-after-install src/raft/snapshot.c \
    '    if (r->install_pending)
        return RAFT_OK;' \
    '    if (r->install_pending && 0)
        return RAFT_OK;'
# The node around the core (raft-hostsim)
mutant node-reads-unconfirmed src/node/client_service.c \
    'while (n->n_reads && n->reads[0].index && n->reads[0].index <= applied) {' \
    'while (n->n_reads && n->reads[0].index <= applied) {'
mutant node-installs-without-restoring src/node/ready.c \
    '    if (b->rd->install_snapshot) {' \
    '    if (b->rd->install_snapshot && b->rd->n_committed > 1000000) {'
# Membership and leadership transfer
mutant second-change-while-uncommitted src/raft/membership.c \
    'if (r->transferee || index > r->log.commit ||' \
    'if (r->transferee || index > r->log.commit + 1000000 ||'
mutant change-before-own-term-commit src/raft/membership.c \
    'raft__log_term_at(&r->log, r->log.commit) != r->term)' \
    'raft__log_term_at(&r->log, r->log.commit) > r->term)'
mutant learner-counts-in-quorum src/raft/replication.c \
    'replicas += c->members[j].role == RAFT_VOTER && voter_match(r, j) >= candidate;' \
    'replicas += voter_match(r, j) >= candidate;'
mutant removed-leader-keeps-leading src/raft/membership.c \
    'if (r->role != RAFT_LEADER || index > r->log.commit || raft__membership_is_voter(r, r->cfg.id))' \
    'if (r->role != RAFT_LEADER || index > r->log.commit || true)'
mutant truncation-keeps-configuration src/raft/membership.c \
    'while (kept && r->confs[kept - 1].index >= index)' \
    'while (0 && kept && r->confs[kept - 1].index >= index)'
mutant learner-campaigns src/raft/election.c \
    '    if (raft__membership_is_voter(r, r->cfg.id))
        return true;' \
    '    if (raft__membership_slot(r, r->cfg.id) >= 0)
        return true;'
mutant removed-node-never-finishes-its-removal src/raft/election.c \
    'if (at == 0 || at <= r->log.commit)' \
    'if (true)'
mutant timeout-now-before-catch-up src/raft/transfer.c \
    'if (r->transferee && pr->id == r->transferee && pr->match == raft__log_last_index(&r->log))' \
    'if (r->transferee && pr->id == r->transferee)'
# Reads
mutant read-before-own-commit src/raft/read_index.c \
    'return raft__log_term_at(&r->log, r->log.commit) == r->term;' \
    'return raft__log_term_at(&r->log, r->log.commit) <= r->term;'

scratch=$(mktemp -d /tmp/raftkv-mutants.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
cp -a "$repo/CMakeLists.txt" "$repo/src" "$repo/include" "$repo/tests" "$repo/proto" \
    "$repo/cmd" "$repo/bench" "$scratch/"
cmake -S "$scratch" -B "$scratch/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
# raft-hostsim needs the node, which may not build in every worktree: without it the node's
# mutants are not judged (the core's still are, by raft-sim and the scenarios).
build() {
    cmake --build "$scratch/build" -j2 --target raft-sim test_sim_scenarios >/dev/null &&
        { cmake --build "$scratch/build" -j2 --target raft-hostsim >/dev/null 2>&1 ||
              rm -f "$scratch/build/tests/hostsim/raft-hostsim"; }
}

# Replaces the one occurrence of $2 in file $1 by $3 (literally); fails if not exactly one.
replace_once() {
    local text
    text=$(<"$1")
    local rest=${text#*"$2"}
    if [ "$rest" = "$text" ] || [[ $rest == *"$2"* ]]; then
        echo "mutants.sh: the line to change is not in $1 exactly once" >&2
        return 1
    fi
    printf '%s\n' "${text%%"$2"*}$3$rest" >"$1"
}

run() {
    local b=$scratch/build/tests out failed first scen host hfirst
    out=$({ "$b/sim/raft-sim" --seeds 2000 --start 1 --nodes 3
            "$b/sim/raft-sim" --seeds 800 --start 100001 --nodes 5; } 2>&1 || true)
    failed=$(grep -c ' FAILED at tick' <<<"$out" || true)
    first=$(grep -m1 ' FAILED at tick' <<<"$out" || true)
    scen=$("$b/sim/test_sim_scenarios" 2>&1 | awk '$NF == "FAIL" {print $1}' | paste -sd, - || true)
    out=$({ "$b/hostsim/raft-hostsim" --seeds 100 --start 1 --nodes 3
            "$b/hostsim/raft-hostsim" --seeds 40 --start 1001 --nodes 5; } 2>&1 || true)
    host=$(grep -c ' FAILED at ' <<<"$out" || true)
    [ -x "$b/hostsim/raft-hostsim" ] || host="(not built) 0"
    hfirst=$(grep -m1 ' FAILED at ' <<<"$out" || true)
    printf '%-32s seeds failed: %4s/2800  scenarios failed: %s  hostsim seeds failed: %s/140\n' \
        "$1" "$failed" "${scen:-none}" "$host"
    [ -n "$first" ] && printf '%32s first: %s\n' '' "$first"
    [ -n "$hfirst" ] && printf '%32s hostsim first: %s\n' '' "$hfirst"
    return 0
}

build
run "(no mutant)"
for i in "${!names[@]}"; do
    if [ $# -gt 0 ] && [[ " $* " != *" ${names[$i]} "* ]]; then continue; fi
    f=$scratch/${files[$i]}
    cp "$f" "$f.orig"
    replace_once "$f" "${froms[$i]}" "${tos[$i]}"
    if build; then run "${names[$i]}"; else echo "${names[$i]}: does not build"; fi
    mv "$f.orig" "$f"
    touch "$f" # older than the mutant's objects otherwise: make would keep them
done
