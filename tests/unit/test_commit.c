/*
 * Commitment and application (Raft §5.3, §5.4.2 and Figure 8), and a stale leader rejoining
 * after a partition (§5.1, §5.3).
 */
#include "fixture.h"

/* §5.3: "A log entry is committed once the leader that created the entry has replicated it on
 * a majority of the servers"; the leader then tells the followers in later AppendEntries. */
TEST(leader_commits_entry_replicated_on_majority)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.n_voters = 5, .no_check_quorum = true}, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    fx_append_ok(f, 2, 1);
    fx_append_ok(f, 3, 1);
    CHECK_EQ(raft_commit_of(f->r), 1);
    raft_index x;
    CHECK_EQ(fx_propose(f, "x", &x), RAFT_OK);
    CHECK_EQ(x, 2);
    fx_append_ok(f, 2, 2);
    CHECK_EQ(raft_commit_of(f->r), 1); /* leader and node 2: 2 of 5 */
    fx_append_ok(f, 3, 2);
    CHECK_EQ(raft_commit_of(f->r), 2);
    CHECK_EQ(f->n_applied, 2);
    CHECK_EQ(f->applied[0].type, RAFT_ENTRY_NOOP);
    CHECK_EQ(f->applied[1].index, 2);
    CHECK_EQ(f->applied[1].len, 1);
    CHECK_EQ(f->applied[1].head[0], 'x');
    fx_clear(f);
    fx_tick(f, FX_HEARTBEAT);
    const struct fx_msg *s = fx_last(f, 2, RAFT_MSG_APPEND);
    CHECK(s);
    CHECK_EQ(s->m.append.commit, 2);
    FX_CHECK_CONTRACT(f);
}

/* §5.4.2 and Figure 8: "Raft never commits log entries from previous terms by counting
 * replicas. Only log entries from the leader's current term are committed by counting
 * replicas; once an entry from the current term has been committed in this way, then all prior
 * entries are committed indirectly."
 *
 * Figure 8 (c): S1 is leader of term 4 with log [1, 2]; S2 holds [1, 2], S3 holds [1]. S1
 * replicates index 2 (term 2) to S3, so a majority (S1, S2, S3) stores it - yet S5 could still
 * be elected with a term-3 entry at index 2 and overwrite it, so S1 must not commit it. Only
 * when its term-4 entry (the no-op at index 3) reaches a majority are 2 and 3 committed. */
TEST(leader_commits_only_current_term_entries_figure8)
{
    struct fx *s1 = fx_new(1,
                           &(struct fx_opts){.n_voters = 5,
                                             .term = 3,
                                             .log = (raft_term[]){1, 2},
                                             .n_log = 2,
                                             .no_pre_vote = true,
                                             .max_entries_per_msg = 1},
                           NULL);
    CHECK(s1);
    CHECK(fx_elect(s1));
    CHECK_EQ(raft_term_of(s1->r), 4);
    CHECK_EQ(raft_term_at(s1->r, 3), 4);
    struct fx_model s2 = {.id = 2, .term = 4, .log = {0, 1, 2}, .last = 2};
    struct fx_model s3 = {.id = 3, .term = 4, .log = {0, 1}, .last = 1};

    fx_deliver(s1, &s2, NULL, NULL, 0); /* S2 stores index 3 */
    CHECK_EQ(s2.last, 3);
    CHECK_EQ(raft_commit_of(s1->r), 0);
    fx_deliver(s1, &s3, NULL, NULL, 0); /* S3 rejects: it lacks index 2 */
    CHECK_EQ(s3.last, 1);
    fx_deliver(s1, &s3, NULL, NULL, 0); /* S3 stores index 2, term 2 */
    CHECK_EQ(s3.last, 2);
    CHECK_EQ(s3.log[2], 2);
    /* Index 2 is on S1, S2, S3 - a majority of 5 - but it is not of term 4. */
    CHECK_EQ(raft_commit_of(s1->r), 0);
    CHECK_EQ(s1->n_applied, 0);

    fx_deliver(s1, &s3, NULL, NULL, 0); /* S3 stores index 3, term 4 */
    CHECK_EQ(s3.last, 3);
    CHECK_EQ(raft_commit_of(s1->r), 3);
    CHECK_EQ(s1->n_applied, 3);
    CHECK_EQ(s1->applied[1].index, 2);
    CHECK_EQ(s1->applied[1].term, 2);
    CHECK_EQ(s1->applied[2].term, 4);
    FX_CHECK_CONTRACT(s1);
}

/* The leader is one of the majority only for entries it has made durable itself: an entry
 * acknowledged by one follower of three is not committed while the leader's own write is
 * pending, because a crash could lose it from both the leader and the count. */
TEST(leader_counts_itself_only_after_persisting)
{
    struct fx *f = fx_new(1, NULL, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    fx_ack_all(f);
    CHECK_EQ(raft_commit_of(f->r), 1);
    raft_index x = 0;
    CHECK_EQ(raft_propose(f->r, "x", 1, &x, NULL), RAFT_OK);
    CHECK_EQ(x, 2);
    /* Node 2's acknowledgement arrives before the host has written entry 2. */
    struct raft_msg ack = {
        .type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = raft_term_of(f->r)};
    ack.append_resp = (struct raft_append_resp){.success = true, .index = 2, .last_index = 2};
    raft_step(f->r, &ack);
    CHECK_EQ(raft_commit_of(f->r), 1);
    fx_drain(f);
    CHECK_EQ(raft_commit_of(f->r), 2);
    CHECK_EQ(f->last_applied, 2);
    FX_CHECK_CONTRACT(f);
}

/* State machine safety (§5.4.3): every server applies the same entries in index order, each
 * exactly once - however acknowledgements are reordered or repeated. */
TEST(committed_entries_are_applied_in_order_exactly_once)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.n_voters = 5, .no_check_quorum = true}, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    fx_ack_all(f);
    char data[10][4];
    for (int i = 0; i < 10; i++) {
        snprintf(data[i], sizeof data[i], "p%d", i);
        CHECK_EQ(fx_propose(f, data[i], NULL), RAFT_OK); /* indices 2..11 */
    }
    static const struct {
        raft_id from;
        raft_index index;
    } acks[] = {{2, 5}, {3, 3},  {2, 4},  {4, 8},  {3, 9}, {2, 9},
                {3, 3}, {4, 11}, {2, 11}, {3, 11}, {5, 7}, {2, 11}};
    for (size_t i = 0; i < sizeof acks / sizeof acks[0]; i++) {
        fx_append_ok(f, acks[i].from, acks[i].index);
        fx_clear(f);
    }
    CHECK_EQ(raft_commit_of(f->r), 11);
    CHECK_EQ(f->n_applied, 11);
    for (size_t i = 0; i < f->n_applied; i++)
        CHECK_EQ(f->applied[i].index, i + 1);
    for (int i = 0; i < 10; i++)
        CHECK(memcmp(f->applied[i + 1].head, data[i], strlen(data[i])) == 0);
    CHECK_EQ(raft_applied_of(f->r), 11);
    FX_CHECK_CONTRACT(f);
}

/* A retransmitted AppendEntries (the leader's response was lost) changes nothing: no entry is
 * appended or applied twice. */
TEST(follower_applies_retransmitted_entries_once)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.term = 1}, NULL);
    CHECK(f);
    for (int i = 0; i < 3; i++)
        fx_append(f, 2, 1, 0, 0, 2, (raft_term[]){1, 1}, 2);
    CHECK_EQ(f->n_applied, 2);
    CHECK_EQ(f->last_applied, 2);
    CHECK_EQ(f->log_last, 2);
    CHECK_EQ(fx_count(f, 2, RAFT_MSG_APPEND_RESP), 3);
    FX_CHECK_CONTRACT(f);
}

/* Acknowledgements can arrive out of order; an older one must not make the leader forget how
 * far a follower has matched, or commitment would stall or regress. */
TEST(reordered_acks_never_lower_a_followers_match)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.n_voters = 5, .no_check_quorum = true}, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    fx_ack_all(f);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(fx_propose(f, "x", NULL), RAFT_OK); /* indices 2..5 */
    fx_append_ok(f, 2, 5);
    fx_append_ok(f, 2, 3); /* delayed */
    fx_append_ok(f, 3, 5);
    CHECK_EQ(raft_commit_of(f->r), 5); /* leader, 2 and 3 hold 5 */
    FX_CHECK_CONTRACT(f);
}

/* A majority of an even cluster is more than half: 3 of 4. */
TEST(even_cluster_commits_with_more_than_half)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.n_voters = 4}, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    fx_append_ok(f, 2, 1);
    CHECK_EQ(raft_commit_of(f->r), 0);
    fx_append_ok(f, 4, 1);
    CHECK_EQ(raft_commit_of(f->r), 1);
    FX_CHECK_CONTRACT(f);
}

/* A cluster of one is its own majority: it elects itself at once and commits what it has made
 * durable. */
TEST(single_voter_commits_once_its_own_write_is_durable)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.n_voters = 1}, NULL);
    CHECK(f);
    fx_campaign(f);
    CHECK_EQ(raft_role_of(f->r), RAFT_LEADER);
    CHECK_EQ(raft_term_of(f->r), 1);
    CHECK_EQ(raft_commit_of(f->r), 1);
    CHECK_EQ(raft_propose(f->r, "solo", 4, NULL, NULL), RAFT_OK);
    CHECK_EQ(raft_commit_of(f->r), 1);
    fx_drain(f);
    CHECK_EQ(raft_commit_of(f->r), 2);
    CHECK_EQ(f->last_applied, 2);
    CHECK(memcmp(f->applied[1].head, "solo", 4) == 0);
    CHECK_EQ(f->n_out, 0);
    FX_CHECK_CONTRACT(f);
}

/* A leader cut off by a partition keeps its term and accepts proposals it cannot commit. When
 * it hears from the leader the others elected meanwhile (§5.1) it steps down, and the new
 * leader's log overwrites its uncommitted entries (§5.3) - they are never applied. */
TEST(stale_leader_rejoins_steps_down_and_loses_uncommitted_entries)
{
    struct fx *f = fx_new(
        1, &(struct fx_opts){.term = 1, .log = (raft_term[]){1}, .n_log = 1, .no_pre_vote = true},
        NULL);
    CHECK(f);
    CHECK(fx_elect(f)); /* term 2, no-op at 2 */
    CHECK_EQ(raft_term_of(f->r), 2);
    CHECK_EQ(fx_propose(f, "lost-x", NULL), RAFT_OK); /* 3 */
    CHECK_EQ(fx_propose(f, "lost-y", NULL), RAFT_OK); /* 4 */
    CHECK_EQ(raft_commit_of(f->r), 0);
    fx_clear(f);

    /* Meanwhile nodes 2 and 3 elected node 2 in term 3: its log is [1, 3, 3], committed. */
    fx_append(f, 2, 3, 3, 3, 3, NULL, 0);
    CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER);
    CHECK_EQ(raft_term_of(f->r), 3);
    CHECK_EQ(raft_leader_of(f->r), 2);
    CHECK_EQ(f->hs_term, 3);
    CHECK_EQ(f->hs_vote, 0);
    const struct fx_msg *s = fx_last(f, 2, RAFT_MSG_APPEND_RESP);
    CHECK(s);
    CHECK(!s->m.append_resp.success);
    CHECK_EQ(s->m.term, 3);
    CHECK_EQ(s->m.append_resp.conflict_term, 2);
    CHECK_EQ(s->m.append_resp.conflict_index, 2);
    CHECK_EQ(s->m.append_resp.last_index, 4);
    CHECK_EQ(raft_commit_of(f->r), 0); /* commit is not taken from a failed check */
    CHECK_EQ(raft_propose(f->r, "z", 1, NULL, NULL), RAFT_ENOTLEADER);

    /* Node 2 has no term-2 entries, so it resends from index 2. */
    fx_append(f, 2, 3, 1, 1, 3, (raft_term[]){3, 3}, 2);
    CHECK_EQ(f->last_truncate_from, 2);
    CHECK_EQ(raft_last_index_of(f->r), 3);
    CHECK_EQ(raft_term_at(f->r, 2), 3);
    CHECK_EQ(raft_term_at(f->r, 3), 3);
    CHECK_EQ(raft_term_at(f->r, 4), 0);
    CHECK_EQ(raft_commit_of(f->r), 3);
    CHECK_EQ(f->n_applied, 3);
    for (size_t i = 0; i < f->n_applied; i++) {
        CHECK_EQ(f->applied[i].index, i + 1);
        CHECK(memcmp(f->applied[i].head, "lost", 4) != 0);
    }
    CHECK_EQ(f->applied[1].term, 3);
    s = fx_last(f, 2, RAFT_MSG_APPEND_RESP);
    CHECK(s->m.append_resp.success);
    CHECK_EQ(s->m.append_resp.index, 3);
    FX_CHECK_CONTRACT(f);
}

TEST_MAIN(TEST_REF(leader_commits_entry_replicated_on_majority),
          TEST_REF(leader_commits_only_current_term_entries_figure8),
          TEST_REF(leader_counts_itself_only_after_persisting),
          TEST_REF(committed_entries_are_applied_in_order_exactly_once),
          TEST_REF(follower_applies_retransmitted_entries_once),
          TEST_REF(reordered_acks_never_lower_a_followers_match),
          TEST_REF(even_cluster_commits_with_more_than_half),
          TEST_REF(single_voter_commits_once_its_own_write_is_durable),
          TEST_REF(stale_leader_rejoins_steps_down_and_loses_uncommitted_entries))
