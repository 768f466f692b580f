/*
 * Log replication (Raft §5.3, §8, dissertation §10.2): the AppendEntries consistency check,
 * conflict truncation, back-tracking, the leader's no-op, heartbeats, batching, pipelining.
 */
#include "fixture.h"

/* Index of the first entry in the last AppendEntries with entries sent to `to` (0: none). */
static raft_index first_index_sent(const struct fx *f, raft_id to)
{
    for (size_t i = f->n_out; i-- > 0;) {
        const struct raft_msg *m = &f->out[i].m;
        if (m->type == RAFT_MSG_APPEND && m->to == to && m->append.n_entries)
            return m->append.entries[0].index;
    }
    return 0;
}

/* §8: "each leader [commits] a blank no-op entry into the log at the start of its term" and
 * sends it to every follower. */
TEST(new_leader_appends_noop_of_its_term)
{
    struct fx *f =
        fx_new(1, &(struct fx_opts){.term = 1, .log = (raft_term[]){1, 1}, .n_log = 2}, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    raft_term t = raft_term_of(f->r);
    CHECK_EQ(t, 2);
    CHECK_EQ(raft_last_index_of(f->r), 3);
    const struct raft_entry *e = raft_entry_at(f->r, 3);
    CHECK(e);
    CHECK_EQ(e->type, RAFT_ENTRY_NOOP);
    CHECK_EQ(e->term, t);
    CHECK_EQ(f->log_last, 3); /* handed to the host for persisting */
    CHECK_EQ(f->log[3], t);
    for (raft_id p = 2; p <= 3; p++) {
        const struct fx_msg *s = fx_last(f, p, RAFT_MSG_APPEND);
        CHECK(s);
        CHECK_EQ(s->m.term, t);
    }
    FX_CHECK_CONTRACT(f);
}

/* Figure 2, AppendEntries receiver: "Reply false if log doesn't contain an entry at
 * prevLogIndex whose term matches prevLogTerm" - here the log is too short; the hint says so. */
TEST(append_rejected_when_log_is_too_short)
{
    struct fx *f =
        fx_new(1, &(struct fx_opts){.term = 1, .log = (raft_term[]){1, 1}, .n_log = 2}, NULL);
    CHECK(f);
    fx_append(f, 2, 1, 3, 1, 0, (raft_term[]){1}, 1);
    const struct fx_msg *s = fx_last(f, 2, RAFT_MSG_APPEND_RESP);
    CHECK(s);
    CHECK(!s->m.append_resp.success);
    CHECK_EQ(s->m.term, 1);
    CHECK_EQ(s->m.append_resp.index, 3);
    CHECK_EQ(s->m.append_resp.conflict_term, 0);
    CHECK_EQ(s->m.append_resp.conflict_index, 3);
    CHECK_EQ(s->m.append_resp.last_index, 2);
    CHECK_EQ(raft_last_index_of(f->r), 2);
    CHECK_EQ(f->log_last, 2);
    CHECK_EQ(raft_leader_of(f->r), 2);
    FX_CHECK_CONTRACT(f);
}

/* ...and here the entry at prevLogIndex has another term: the hint names that term and the
 * first index holding it, so the leader can skip the whole term (§5.3). */
TEST(append_rejected_when_prev_term_differs_with_conflict_hint)
{
    struct fx *f =
        fx_new(1, &(struct fx_opts){.term = 3, .log = (raft_term[]){1, 2, 2, 2}, .n_log = 4}, NULL);
    CHECK(f);
    fx_append(f, 2, 3, 4, 3, 0, (raft_term[]){3}, 1);
    const struct fx_msg *s = fx_last(f, 2, RAFT_MSG_APPEND_RESP);
    CHECK(s);
    CHECK(!s->m.append_resp.success);
    CHECK_EQ(s->m.append_resp.index, 4);
    CHECK_EQ(s->m.append_resp.conflict_term, 2);
    CHECK_EQ(s->m.append_resp.conflict_index, 2);
    CHECK_EQ(s->m.append_resp.last_index, 4);
    CHECK_EQ(raft_term_at(f->r, 4), 2); /* nothing removed on a rejection */
    CHECK_EQ(f->last_truncate_from, 0);
    FX_CHECK_CONTRACT(f);
}

/* §5.3: when the consistency check passes the follower appends the entries and acknowledges
 * them only once they are durable. */
TEST(append_accepted_after_matching_prev_entry)
{
    struct fx *f =
        fx_new(1, &(struct fx_opts){.term = 1, .log = (raft_term[]){1}, .n_log = 1}, NULL);
    CHECK(f);
    fx_append(f, 2, 1, 1, 1, 0, (raft_term[]){1, 1}, 2);
    const struct fx_msg *s = fx_last(f, 2, RAFT_MSG_APPEND_RESP);
    CHECK(s);
    CHECK(s->m.append_resp.success);
    CHECK_EQ(s->m.append_resp.index, 3);
    CHECK_EQ(s->m.append_resp.last_index, 3);
    CHECK(s->after_persist);
    CHECK(s->durable_last >= 3);
    CHECK_EQ(raft_last_index_of(f->r), 3);
    CHECK_EQ(f->log_last, 3);
    FX_CHECK_CONTRACT(f);
}

/* Figure 2: "If an existing entry conflicts with a new one (same index but different terms),
 * delete the existing entry and all that follow it" - durably, via truncate_from. */
TEST(conflicting_entries_are_truncated)
{
    struct fx *f =
        fx_new(1, &(struct fx_opts){.term = 1, .log = (raft_term[]){1, 1, 1}, .n_log = 3}, NULL);
    CHECK(f);
    fx_append(f, 2, 2, 1, 1, 0, (raft_term[]){2}, 1);
    CHECK_EQ(f->last_truncate_from, 2);
    CHECK_EQ(f->log_last, 2);
    CHECK_EQ(f->log[2], 2);
    CHECK_EQ(raft_last_index_of(f->r), 2);
    CHECK_EQ(raft_term_at(f->r, 2), 2);
    CHECK_EQ(raft_term_at(f->r, 3), 0);
    const struct fx_msg *s = fx_last(f, 2, RAFT_MSG_APPEND_RESP);
    CHECK(s);
    CHECK(s->m.append_resp.success);
    CHECK_EQ(s->m.append_resp.index, 2);
    FX_CHECK_CONTRACT(f);
}

/* Figure 2: "Append any new entries not already in the log": a delayed AppendEntries whose
 * entries are already there must not cut off the entries that follow them. */
TEST(matching_entries_are_not_truncated)
{
    struct fx *f =
        fx_new(1, &(struct fx_opts){.term = 1, .log = (raft_term[]){1, 1, 1}, .n_log = 3}, NULL);
    CHECK(f);
    fx_append(f, 2, 1, 1, 1, 0, (raft_term[]){1}, 1);
    const struct fx_msg *s = fx_last(f, 2, RAFT_MSG_APPEND_RESP);
    CHECK(s);
    CHECK(s->m.append_resp.success);
    CHECK_EQ(f->last_truncate_from, 0);
    CHECK_EQ(raft_last_index_of(f->r), 3);
    CHECK_EQ(f->log_last, 3);
    FX_CHECK_CONTRACT(f);
}

/* Figure 2: "If leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of last
 * new entry)"; commit never moves back. */
TEST(follower_commit_follows_leader_up_to_last_new_entry)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.term = 1}, NULL);
    CHECK(f);
    fx_append(f, 2, 1, 0, 0, 5, (raft_term[]){1, 1}, 2);
    CHECK_EQ(raft_commit_of(f->r), 2);
    CHECK_EQ(f->n_applied, 2);
    CHECK_EQ(f->last_applied, 2);
    fx_append(f, 2, 1, 2, 1, 1, NULL, 0);
    CHECK_EQ(raft_commit_of(f->r), 2);
    FX_CHECK_CONTRACT(f);
}

/* The entries after prevLogIndex may come from a deposed leader and differ from the new
 * leader's; an AppendEntries only vouches for the log up to its last entry, so the follower must
 * not commit beyond it. */
TEST(follower_does_not_commit_entries_leader_has_not_vouched_for)
{
    struct fx *f =
        fx_new(1, &(struct fx_opts){.term = 1, .log = (raft_term[]){1, 1, 1}, .n_log = 3}, NULL);
    CHECK(f);
    fx_append(f, 2, 2, 1, 1, 3, NULL, 0);
    CHECK_EQ(raft_commit_of(f->r), 1);
    CHECK_EQ(f->last_applied, 1);
    FX_CHECK_CONTRACT(f);
}

/* A host steps every message that arrived before asking for a ready. If a newer leader's
 * AppendEntries replaces entries an older one sent in the same batch, the acknowledgement of the
 * replaced entries must not go out: after the write they are not on disk. */
TEST(ack_is_not_sent_for_entries_replaced_before_persisting)
{
    struct fx *f = fx_new(
        1, &(struct fx_opts){.n_voters = 5, .term = 1, .log = (raft_term[]){1}, .n_log = 1}, NULL);
    CHECK(f);
    struct raft_entry old[] = {{.term = 1, .index = 2}, {.term = 1, .index = 3}};
    struct raft_msg a = {.type = RAFT_MSG_APPEND, .from = 2, .to = 1, .term = 1};
    a.append =
        (struct raft_append){.prev_index = 1, .prev_term = 1, .n_entries = 2, .entries = old};
    raft_step(f->r, &a);
    struct raft_entry newer[] = {{.term = 2, .index = 2}};
    struct raft_msg b = {.type = RAFT_MSG_APPEND, .from = 3, .to = 1, .term = 2};
    b.append =
        (struct raft_append){.prev_index = 1, .prev_term = 1, .n_entries = 1, .entries = newer};
    raft_step(f->r, &b);
    fx_drain(f);
    CHECK_EQ(f->log_last, 2);
    CHECK_EQ(f->log[2], 2);
    const struct fx_msg *s = fx_last(f, 3, RAFT_MSG_APPEND_RESP);
    CHECK(s && s->m.append_resp.success);
    CHECK_EQ(s->m.append_resp.index, 2);
    for (size_t i = 0; i < f->n_out; i++) {
        const struct raft_msg *m = &f->out[i].m;
        if (m->type == RAFT_MSG_APPEND_RESP && m->to == 2 && m->append_resp.success)
            CHECK(m->append_resp.index < 2);
    }
    FX_CHECK_CONTRACT(f);
}

/* The same for a vote: granted, then overtaken by a newer term in the same batch. The grant
 * may still leave, because the newer term on disk forbids any other vote in the old one. */
TEST(vote_overtaken_by_newer_term_before_persisting_stays_safe)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.term = 4}, NULL);
    CHECK(f);
    struct raft_msg v = {.type = RAFT_MSG_REQUEST_VOTE, .from = 2, .to = 1, .term = 5};
    raft_step(f->r, &v);
    struct raft_msg a = {.type = RAFT_MSG_APPEND, .from = 3, .to = 1, .term = 6};
    raft_step(f->r, &a);
    fx_drain(f);
    CHECK_EQ(f->hs_term, 6);
    CHECK_EQ(raft_leader_of(f->r), 3);
    FX_CHECK_CONTRACT(f);
}

/* §5.3: "After a rejection, the leader decrements nextIndex and retries"; with the conflict hint
 * it skips a whole conflicting term (or the missing tail) per round trip. */
TEST(leader_backtracks_with_conflict_hint)
{
    static const raft_term leader_log[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
    struct fx *f = fx_new(1,
                          &(struct fx_opts){.term = 6,
                                            .log = leader_log,
                                            .n_log = 10,
                                            .no_pre_vote = true,
                                            .max_entries_per_msg = 64},
                          NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    CHECK_EQ(raft_term_of(f->r), 7);
    struct fx_model m = {.id = 2, .term = 6, .log = {0, 1, 1, 1, 4, 4, 4, 4}, .last = 7};
    struct fx_sent sent[32];
    size_t n_sent = 0;
    for (int round = 0; round < 20 && !fx_model_matches(f, &m); round++)
        if (!fx_deliver(f, &m, sent, &n_sent, 32))
            break;
    CHECK(fx_model_matches(f, &m));
    size_t rejections = 0;
    for (size_t i = 0; i < n_sent; i++)
        rejections += !sent[i].success;
    /* log too short (-> 8), term 4 at index 7 (-> end of term 4 or start of it), match */
    CHECK(n_sent >= 3);
    CHECK_EQ(rejections, 2);
    CHECK(sent[0].prev_index >= 10);
    CHECK_EQ(sent[1].prev_index, 7);
    CHECK(sent[2].prev_index == 5 || sent[2].prev_index == 3);
    CHECK(sent[2].success);
    CHECK_EQ(fx_stats(f).append_rejections, 2);
    FX_CHECK_CONTRACT(f);
}

/* A follower in probe state (new leader, or after a rejection) gets one AppendEntries at a time
 * until it answers, so the leader does not stream entries that would be rejected. */
TEST(leader_probes_follower_one_append_at_a_time)
{
    struct fx *f = fx_new(1, NULL, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    CHECK_EQ(fx_count_appends_with_entries(f, 2), 1); /* the no-op */
    fx_propose(f, "a", NULL);
    fx_propose(f, "b", NULL);
    CHECK_EQ(fx_count_appends_with_entries(f, 2), 1);
    fx_clear(f);
    fx_append_ok(f, 2, 1);
    CHECK(fx_count_appends_with_entries(f, 2) >= 1);
    const struct fx_msg *s = fx_nth(f, 2, RAFT_MSG_APPEND, 0);
    CHECK(s);
    CHECK_EQ(s->m.append.prev_index, 1);
    FX_CHECK_CONTRACT(f);
}

TEST(leader_returns_to_probing_after_rejection)
{
    struct fx *f = fx_new(1, NULL, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    fx_ack_all(f);
    fx_propose(f, "a", NULL); /* index 2 */
    fx_propose(f, "b", NULL); /* index 3 */
    fx_clear(f);
    /* The AppendEntries carrying 2 was lost; the one carrying 3 is rejected. */
    fx_append_reject(f, 2, 2, 0, 2, 1);
    CHECK_EQ(fx_count_appends_with_entries(f, 2), 1);
    const struct fx_msg *probe = fx_nth(f, 2, RAFT_MSG_APPEND, 0);
    CHECK(probe);
    CHECK_EQ(probe->m.append.prev_index, 1);
    CHECK_EQ(probe->m.append.entries[0].index, 2);
    raft_index probe_last = probe->m.append.prev_index + probe->m.append.n_entries;
    fx_propose(f, "c", NULL);
    CHECK_EQ(fx_count_appends_with_entries(f, 2), 1);
    fx_clear(f);
    fx_append_ok(f, 2, probe_last);
    const struct fx_msg *next = fx_nth(f, 2, RAFT_MSG_APPEND, 0);
    CHECK(next);
    CHECK_EQ(next->m.append.prev_index, probe_last);
    FX_CHECK_CONTRACT(f);
}

/* Dissertation §10.2.1/§10.2.2: in replicate state the leader pipelines up to
 * max_inflight_msgs AppendEntries per follower, sent before its own write is durable. */
TEST(leader_pipelines_up_to_max_inflight_appends)
{
    struct fx *f =
        fx_new(1, &(struct fx_opts){.max_inflight_msgs = 3, .max_entries_per_msg = 1}, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    fx_ack_all(f);
    fx_clear(f);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(fx_propose(f, "x", NULL), RAFT_OK); /* indices 2..6 */
    CHECK_EQ(fx_count_appends_with_entries(f, 2), 3);
    for (size_t i = 0; i < 3; i++) {
        const struct fx_msg *s = fx_nth(f, 2, RAFT_MSG_APPEND, i);
        CHECK_EQ(s->m.append.n_entries, 1);
        CHECK_EQ(s->m.append.entries[0].index, 2 + i);
        CHECK(!s->after_persist);
    }
    fx_clear(f);
    fx_append_ok(f, 2, 2);
    CHECK_EQ(fx_count_appends_with_entries(f, 2), 1);
    CHECK_EQ(first_index_sent(f, 2), 5);
    fx_clear(f);
    fx_append_ok(f, 2, 4);
    CHECK_EQ(fx_count_appends_with_entries(f, 2), 1);
    CHECK_EQ(first_index_sent(f, 2), 6);
    FX_CHECK_CONTRACT(f);
}

/* §5.3: "if network packets are lost, the leader retries AppendEntries RPCs indefinitely". */
TEST(leader_retries_lost_append_entries)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.no_check_quorum = true}, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    fx_ack_all(f);
    raft_index x;
    CHECK_EQ(fx_propose(f, "x", &x), RAFT_OK);
    CHECK_EQ(first_index_sent(f, 2), x);
    fx_clear(f); /* lost, and node 2 stays silent */
    unsigned ticks = 0;
    while (ticks < 4 * FX_HEARTBEAT && first_index_sent(f, 2) != x) {
        fx_tick(f, 1);
        ticks++;
    }
    CHECK_EQ(first_index_sent(f, 2), x);
    FX_CHECK_CONTRACT(f);
}

/* Batching: a lagging follower is caught up in AppendEntries of at most max_entries_per_msg. */
TEST(append_carries_at_most_max_entries_per_msg)
{
    static const raft_term leader_log[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    struct fx *f = fx_new(1,
                          &(struct fx_opts){.term = 1,
                                            .log = leader_log,
                                            .n_log = 10,
                                            .no_pre_vote = true,
                                            .max_entries_per_msg = 4},
                          NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    struct fx_model m = {.id = 2, .term = 2};
    struct fx_sent sent[64];
    size_t n_sent = 0;
    for (int round = 0; round < 30 && !fx_model_matches(f, &m); round++)
        if (!fx_deliver(f, &m, sent, &n_sent, 64))
            break;
    CHECK(fx_model_matches(f, &m));
    size_t carrying = 0;
    for (size_t i = 0; i < n_sent; i++) {
        CHECK(sent[i].n_entries <= 4);
        carrying += sent[i].n_entries > 0;
    }
    CHECK(carrying >= 3); /* 11 entries, 4 at a time */
    FX_CHECK_CONTRACT(f);
}

/* max_bytes_per_msg bounds an AppendEntries, except that one entry is always sent so a large
 * entry cannot get stuck. */
TEST(append_respects_max_bytes_per_msg_but_sends_at_least_one_entry)
{
    enum { SMALL = 100, BIG = 3000, LIMIT = 1000 };
    struct fx *f = fx_new(1, &(struct fx_opts){.max_bytes_per_msg = LIMIT}, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    static uint8_t buf[BIG];
    memset(buf, 'v', sizeof buf);
    /* Node 2 is still being probed, so these pile up for it. */
    for (int i = 0; i < 12; i++) {
        size_t len = i == 5 ? BIG : SMALL;
        CHECK_EQ(raft_propose(f->r, buf, len, NULL, NULL), RAFT_OK);
        fx_drain(f);
    }
    struct fx_model m = {.id = 2, .term = raft_term_of(f->r)};
    bool batched = false, big_alone = false;
    for (int round = 0; round < 30 && !fx_model_matches(f, &m); round++) {
        for (size_t i = 0; i < f->n_out; i++) {
            const struct raft_msg *a = &f->out[i].m;
            if (a->type != RAFT_MSG_APPEND || a->to != 2 || a->append.n_entries == 0)
                continue;
            size_t bytes = 0;
            for (size_t k = 0; k < a->append.n_entries; k++)
                bytes += a->append.entries[k].len;
            CHECK(a->append.n_entries == 1 || bytes <= LIMIT);
            batched |= a->append.n_entries > 1;
            big_alone |= a->append.n_entries == 1 && bytes == BIG;
        }
        struct fx_sent sent[64];
        size_t n_sent = 0;
        if (!fx_deliver(f, &m, sent, &n_sent, 64))
            break;
    }
    CHECK(fx_model_matches(f, &m));
    CHECK(batched);
    CHECK(big_alone);
    FX_CHECK_CONTRACT(f);
}

/* §5.2: "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log entries) to all
 * followers", here every heartbeat_ticks; they carry the commit index. */
TEST(leader_sends_heartbeat_every_heartbeat_ticks)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.no_check_quorum = true}, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    fx_ack_all(f);
    CHECK_EQ(raft_commit_of(f->r), 1);
    fx_clear(f);
    fx_tick(f, FX_HEARTBEAT - 1);
    CHECK_EQ(fx_count(f, 0, RAFT_MSG_APPEND), 0);
    fx_tick(f, 1);
    for (raft_id p = 2; p <= 3; p++) {
        CHECK_EQ(fx_count(f, p, RAFT_MSG_APPEND), 1);
        const struct fx_msg *s = fx_last(f, p, RAFT_MSG_APPEND);
        CHECK_EQ(s->m.append.n_entries, 0);
        CHECK_EQ(s->m.append.commit, 1);
    }
    fx_clear(f);
    fx_tick(f, 10 * FX_HEARTBEAT);
    CHECK_EQ(fx_count(f, 2, RAFT_MSG_APPEND), 10);
    CHECK_EQ(fx_count(f, 3, RAFT_MSG_APPEND), 10);
    CHECK_EQ(fx_count_appends_with_entries(f, 0), 0);
    FX_CHECK_CONTRACT(f);
}

TEST(snapshot_of_entries_held_does_not_discard_what_follows_them)
{
    /* Node 1 holds 1..3 of term 1 and acknowledged them; a delayed snapshot up to index 2
     * arrives. Raft §7: it must keep entry 3, which a leader may count as replicated. */
    struct fx *f =
        fx_new(1, &(struct fx_opts){.term = 1, .log = (raft_term[]){1, 1, 1}, .n_log = 3}, NULL);
    CHECK(f);
    uint8_t byte = 7;
    struct raft_msg m = {.type = RAFT_MSG_INSTALL_SNAPSHOT, .from = 2, .to = 1, .term = 1};
    m.install_snapshot = (struct raft_install_snapshot){
        .last_index = 2, .last_term = 1, .offset = 0, .len = 1, .data = &byte, .done = true};
    fx_step(f, &m);
    CHECK_EQ(raft_last_index_of(f->r), 3);
    CHECK_EQ(f->log_last, 3);
    CHECK_EQ(fx_stats(f).snapshots_installed, 0);
    const struct fx_msg *s = fx_last(f, 2, RAFT_MSG_INSTALL_SNAPSHOT_RESP);
    CHECK(s && s->m.install_snapshot_resp.done && !s->m.install_snapshot_resp.rejected);
    FX_CHECK_CONTRACT(f);
}

/* A follower answers every chunk of a snapshot it already holds with "done": a late copy of
 * such an answer about an earlier snapshot, which moves nothing, must not restart the
 * transfer under way (each restart sent a new window, whose answers restarted it again). */
TEST(late_answer_about_an_earlier_snapshot_does_not_restart_the_transfer)
{
    struct fx *f =
        fx_new(1, &(struct fx_opts){.term = 1, .log = (raft_term[]){1}, .n_log = 1}, NULL);
    CHECK(f);
    CHECK(fx_elect(f)); /* term 2, its no-op at 2 */
    CHECK_EQ(fx_propose(f, "a", NULL), RAFT_OK);
    CHECK_EQ(fx_append_ok(f, 2, 3), RAFT_OK); /* 1..3 commit with node 2 */
    CHECK_EQ(raft_commit_of(f->r), 3);
    CHECK_EQ(raft_compact(f->r, &(struct raft_snapshot_meta){3, 2, 100}, 3), RAFT_OK);
    /* Node 3 holds nothing: it needs the snapshot at 3. */
    CHECK_EQ(fx_append_reject(f, 3, 1, 0, 1, 0), RAFT_OK);
    CHECK(fx_count(f, 3, RAFT_MSG_INSTALL_SNAPSHOT) > 0);
    CHECK_EQ(fx_propose(f, "b", NULL), RAFT_OK);
    CHECK_EQ(fx_append_ok(f, 2, 4), RAFT_OK);
    CHECK_EQ(raft_compact(f->r, &(struct raft_snapshot_meta){4, 2, 100}, 4), RAFT_OK);
    /* Node 3 installed the snapshot at 3: the transfer of the one at 4 goes on. */
    struct raft_msg done = fx_msg_to(f, RAFT_MSG_INSTALL_SNAPSHOT_RESP, 3, 2);
    done.install_snapshot_resp = (struct raft_install_snapshot_resp){.last_index = 3, .done = true};
    CHECK_EQ(fx_step(f, &done), RAFT_OK);
    fx_clear(f);
    CHECK_EQ(fx_step(f, &done), RAFT_OK); /* the same answer again, late */
    CHECK_EQ(fx_count(f, 3, RAFT_MSG_INSTALL_SNAPSHOT), 0);
    FX_CHECK_CONTRACT(f);
}

/* The chunks of a ready all belong to the snapshot it installs: the host writes them to one
 * file. A newer snapshot's chunk arriving in the same batch would start that file over, so
 * it waits for the next one (raft-hostsim --seed 664 --nodes 3 refused such a file). */
TEST(newer_snapshot_is_not_taken_in_the_batch_that_installs_one)
{
    struct fx *f = fx_new(2, NULL, NULL);
    CHECK(f);
    uint8_t a = 1, b = 2;
    struct fx_conf conf;
    const struct raft_configuration *three = fx_conf(&conf, "1 2 3");
    struct raft_msg done = fx_msg_to(f, RAFT_MSG_INSTALL_SNAPSHOT, 1, 2);
    done.install_snapshot = (struct raft_install_snapshot){
        .last_index = 5, .last_term = 2, .len = 1, .data = &a, .done = true, .conf = *three};
    struct raft_msg next = fx_msg_to(f, RAFT_MSG_INSTALL_SNAPSHOT, 1, 2);
    next.install_snapshot = (struct raft_install_snapshot){
        .last_index = 9, .last_term = 2, .len = 1, .data = &b, .conf = *three};
    CHECK_EQ(raft_step(f->r, &done), RAFT_OK);
    CHECK_EQ(raft_step(f->r, &next), RAFT_OK);
    struct raft_ready rd;
    raft_ready(f->r, &rd);
    CHECK(rd.install_snapshot);
    CHECK_EQ(rd.snapshot.index, 5);
    CHECK_EQ(rd.n_snapshot_chunks, 1);
    CHECK_EQ(rd.snapshot_chunks[0].index, 5);
    fx_drain(f);
    /* It went unanswered; sent again, it is taken: the answer holds its byte. */
    CHECK(!fx_last(f, 1, RAFT_MSG_INSTALL_SNAPSHOT_RESP) ||
          fx_last(f, 1, RAFT_MSG_INSTALL_SNAPSHOT_RESP)->m.install_snapshot_resp.last_index == 5);
    CHECK_EQ(fx_step(f, &next), RAFT_OK);
    const struct fx_msg *resp = fx_last(f, 1, RAFT_MSG_INSTALL_SNAPSHOT_RESP);
    CHECK(resp && resp->m.install_snapshot_resp.last_index == 9 &&
          resp->m.install_snapshot_resp.offset == 1 && !resp->m.install_snapshot_resp.rejected);
    FX_CHECK_CONTRACT(f);
}

TEST_MAIN(TEST_REF(snapshot_of_entries_held_does_not_discard_what_follows_them),
          TEST_REF(newer_snapshot_is_not_taken_in_the_batch_that_installs_one),
          TEST_REF(late_answer_about_an_earlier_snapshot_does_not_restart_the_transfer),
          TEST_REF(new_leader_appends_noop_of_its_term),
          TEST_REF(append_rejected_when_log_is_too_short),
          TEST_REF(append_rejected_when_prev_term_differs_with_conflict_hint),
          TEST_REF(append_accepted_after_matching_prev_entry),
          TEST_REF(conflicting_entries_are_truncated), TEST_REF(matching_entries_are_not_truncated),
          TEST_REF(follower_commit_follows_leader_up_to_last_new_entry),
          TEST_REF(follower_does_not_commit_entries_leader_has_not_vouched_for),
          TEST_REF(ack_is_not_sent_for_entries_replaced_before_persisting),
          TEST_REF(vote_overtaken_by_newer_term_before_persisting_stays_safe),
          TEST_REF(leader_backtracks_with_conflict_hint),
          TEST_REF(leader_probes_follower_one_append_at_a_time),
          TEST_REF(leader_returns_to_probing_after_rejection),
          TEST_REF(leader_pipelines_up_to_max_inflight_appends),
          TEST_REF(leader_retries_lost_append_entries),
          TEST_REF(append_carries_at_most_max_entries_per_msg),
          TEST_REF(append_respects_max_bytes_per_msg_but_sends_at_least_one_entry),
          TEST_REF(leader_sends_heartbeat_every_heartbeat_ticks))
