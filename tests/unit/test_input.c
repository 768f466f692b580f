/*
 * Restart from stable storage (Figure 2 "persistent state"), configuration and proposal
 * errors, and hostile input: what the core must refuse without crashing or changing state.
 */
#include "fixture.h"

static uint64_t drops_of(const struct fx *f)
{
    struct raft_stats st = fx_stats(f);
    return st.msgs_dropped_unknown_peer + st.msgs_dropped_malformed + st.msgs_dropped_stale_term;
}

/* Figure 2: currentTerm, votedFor and log[] survive a restart; a server that restarts never
 * votes twice in a term. */
TEST(restart_restores_term_vote_and_log)
{
    struct fx *f = fx_new(
        1, &(struct fx_opts){.term = 5, .vote = 3, .log = (raft_term[]){1, 3, 5}, .n_log = 3},
        NULL);
    CHECK(f);
    CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER);
    CHECK_EQ(raft_term_of(f->r), 5);
    CHECK_EQ(raft_vote_of(f->r), 3);
    CHECK_EQ(raft_first_index_of(f->r), 1);
    CHECK_EQ(raft_last_index_of(f->r), 3);
    CHECK_EQ(raft_term_at(f->r, 2), 3);
    CHECK_EQ(raft_entry_at(f->r, 3)->term, 5);
    fx_vote_req(f, 2, 5, 3, 5, false);
    const struct fx_msg *s = fx_last(f, 2, RAFT_MSG_REQUEST_VOTE_RESP);
    CHECK(!s || !s->m.request_vote_resp.granted);
    fx_vote_req(f, 3, 5, 3, 5, false);
    s = fx_last(f, 3, RAFT_MSG_REQUEST_VOTE_RESP);
    CHECK(s && s->m.request_vote_resp.granted);
    CHECK_EQ(raft_vote_of(f->r), 3);
    FX_CHECK_CONTRACT(f);
}

/* A restarted server campaigns with its restored log and term. */
TEST(restart_campaigns_with_restored_log)
{
    struct fx *f =
        fx_new(1, &(struct fx_opts){.term = 3, .log = (raft_term[]){1, 3}, .n_log = 2}, NULL);
    CHECK(f);
    fx_campaign(f);
    const struct fx_msg *s = fx_last(f, 2, RAFT_MSG_REQUEST_VOTE);
    CHECK(s);
    CHECK_EQ(s->m.term, 4);
    CHECK_EQ(s->m.request_vote.last_log_index, 2);
    CHECK_EQ(s->m.request_vote.last_log_term, 3);
    FX_CHECK_CONTRACT(f);
}

/* Entries the state machine applied before the restart are not handed out again. */
TEST(restart_does_not_reapply_applied_entries)
{
    struct fx *f = fx_new(
        1, &(struct fx_opts){.term = 1, .log = (raft_term[]){1, 1, 1}, .n_log = 3, .applied = 2},
        NULL);
    CHECK(f);
    CHECK_EQ(raft_applied_of(f->r), 2);
    CHECK(raft_commit_of(f->r) >= 2);
    CHECK_EQ(f->n_applied, 0);
    fx_append(f, 2, 1, 3, 1, 3, NULL, 0);
    CHECK_EQ(f->n_applied, 1);
    CHECK_EQ(f->applied[0].index, 3);
    FX_CHECK_CONTRACT(f);
}

/* After a snapshot the log starts at snapshot_index + 1, and the snapshot's last term still
 * answers the consistency check at snapshot_index. */
TEST(restart_from_snapshot_starts_log_after_it)
{
    struct fx *f = fx_new(1,
                          &(struct fx_opts){.term = 3,
                                            .snapshot_index = 5,
                                            .snapshot_term = 2,
                                            .applied = 5,
                                            .log = (raft_term[]){2, 3},
                                            .n_log = 2},
                          NULL);
    CHECK(f);
    CHECK_EQ(raft_first_index_of(f->r), 6);
    CHECK_EQ(raft_last_index_of(f->r), 7);
    CHECK_EQ(raft_term_at(f->r, 5), 2);
    CHECK(raft_entry_at(f->r, 5) == NULL);
    CHECK_EQ(raft_term_at(f->r, 7), 3);
    fx_append(f, 2, 3, 5, 2, 7, (raft_term[]){2, 3, 3}, 3);
    const struct fx_msg *s = fx_last(f, 2, RAFT_MSG_APPEND_RESP);
    CHECK(s && s->m.append_resp.success);
    CHECK_EQ(raft_last_index_of(f->r), 8);
    CHECK_EQ(f->last_truncate_from, 0);
    CHECK_EQ(f->n_applied, 2);
    CHECK_EQ(f->applied[0].index, 6);
    FX_CHECK_CONTRACT(f);
}

static uint32_t zero_random(void *arg, uint32_t bound)
{
    (void)arg;
    (void)bound;
    return 0;
}

static struct raft_member three_voters[] = {
    {.id = 1, .peer_address = "", .client_address = ""},
    {.id = 2, .peer_address = "", .client_address = ""},
    {.id = 3, .peer_address = "", .client_address = ""},
};

static int new_with_restore(const struct raft_restore *rs)
{
    struct raft_config cfg;
    raft_config_defaults(&cfg);
    cfg.id = 1;
    cfg.bootstrap = (struct raft_configuration){3, three_voters};
    cfg.random = zero_random;
    struct raft *r = NULL;
    int rc = raft_new(&cfg, rs, &r);
    if (rc == RAFT_OK)
        raft_free(r);
    return rc;
}

static int new_with_entries(const struct raft_entry *entries, size_t n, raft_index snapshot)
{
    struct raft_restore rs = {.term = 9,
                              .snapshot_index = snapshot,
                              .snapshot_term = 1,
                              .applied = snapshot,
                              .n_entries = n,
                              .entries = entries};
    return new_with_restore(&rs);
}

/* raft.h: RAFT_ECORRUPT for a restored log that cannot be one Raft wrote. */
TEST(restore_of_inconsistent_log_is_rejected)
{
    const struct raft_entry gap[] = {{.term = 1, .index = 1}, {.term = 1, .index = 3}};
    const struct raft_entry late_start[] = {{.term = 1, .index = 2}, {.term = 1, .index = 3}};
    const struct raft_entry after_snapshot[] = {{.term = 1, .index = 4}};
    const struct raft_entry falling_terms[] = {{.term = 2, .index = 1}, {.term = 1, .index = 2}};
    CHECK_EQ(new_with_entries(gap, 2, 0), RAFT_ECORRUPT);
    CHECK_EQ(new_with_entries(late_start, 2, 0), RAFT_ECORRUPT);
    CHECK_EQ(new_with_entries(after_snapshot, 1, 2), RAFT_ECORRUPT);
    CHECK_EQ(new_with_entries(falling_terms, 2, 0), RAFT_ECORRUPT);
    const struct raft_entry two[] = {{.term = 1, .index = 1}, {.term = 1, .index = 2}};
    struct raft_restore applied_beyond_log = {
        .term = 1, .applied = 3, .n_entries = 2, .entries = two};
    CHECK_EQ(new_with_restore(&applied_beyond_log), RAFT_ECORRUPT);
}

/* currentTerm is durable no later than any entry a node accepted (the host writes both in one
 * transaction), so a log with entries of a term above the restored term is corrupt; starting
 * from it the node could lead a lower term and append behind higher-term entries. */
TEST(restore_with_entries_newer_than_term_is_rejected)
{
    struct raft_restore rs = {
        .term = 1,
        .n_entries = 2,
        .entries = (const struct raft_entry[]){{.term = 1, .index = 1}, {.term = 3, .index = 2}}};
    CHECK_EQ(new_with_restore(&rs), RAFT_ECORRUPT);
    struct raft_restore snap = {.term = 1, .snapshot_index = 4, .snapshot_term = 2, .applied = 4};
    CHECK_EQ(new_with_restore(&snap), RAFT_ECORRUPT);
}

static int new_with_config(raft_id id, struct raft_member *voters, size_t n, unsigned min,
                           unsigned max)
{
    struct raft_config cfg;
    raft_config_defaults(&cfg);
    cfg.id = id;
    cfg.bootstrap = (struct raft_configuration){n, voters};
    cfg.election_ticks_min = min;
    cfg.election_ticks_max = max;
    cfg.random = zero_random;
    struct raft *r = NULL;
    int rc = raft_new(&cfg, NULL, &r);
    if (rc == RAFT_OK)
        raft_free(r);
    return rc;
}

TEST(new_rejects_invalid_configuration)
{
    CHECK_EQ(new_with_config(1, three_voters, 3, 10, 20), RAFT_OK);
    /* A node that joins a running cluster is in no configuration yet. */
    CHECK_EQ(new_with_config(4, three_voters, 3, 10, 20), RAFT_OK);
    CHECK_EQ(new_with_config(4, three_voters, 0, 10, 20), RAFT_OK);
    CHECK_EQ(new_with_config(0, three_voters, 3, 10, 20), RAFT_EINVAL);
    CHECK_EQ(new_with_config(1, three_voters, 3, 20, 10), RAFT_EINVAL);
    /* Duplicates would make a quorum of fewer distinct servers than a majority. */
    struct raft_member twice[] = {three_voters[0], three_voters[1], three_voters[1]};
    CHECK_EQ(new_with_config(1, twice, 3, 10, 20), RAFT_EINVAL);
    struct raft_member zero[] = {three_voters[0], {.id = 0, .peer_address = ""}};
    CHECK_EQ(new_with_config(1, zero, 2, 10, 20), RAFT_EINVAL);
}

/* §5.1: "The leader handles all client requests"; the others say so instead of appending. */
TEST(propose_on_non_leader_returns_enotleader)
{
    struct fx *f = fx_new(1, NULL, NULL);
    CHECK(f);
    CHECK_EQ(raft_propose(f->r, "x", 1, NULL, NULL), RAFT_ENOTLEADER);
    fx_campaign(f);
    CHECK_EQ(raft_role_of(f->r), RAFT_PRE_CANDIDATE);
    CHECK_EQ(raft_propose(f->r, "x", 1, NULL, NULL), RAFT_ENOTLEADER);
    fx_vote_resp(f, 2, 1, true, true);
    CHECK_EQ(raft_role_of(f->r), RAFT_CANDIDATE);
    CHECK_EQ(raft_propose(f->r, "x", 1, NULL, NULL), RAFT_ENOTLEADER);
    CHECK_EQ(raft_last_index_of(f->r), 0);
    CHECK(!raft_has_ready(f->r));
    FX_CHECK_CONTRACT(f);
}

/* raft_propose says where the entry went and keeps its own copy of the data. */
TEST(propose_returns_index_and_term_and_copies_data)
{
    struct fx *f = fx_new(1, NULL, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    char buf[] = "hello";
    raft_index index = 0;
    raft_term term = 0;
    CHECK_EQ(raft_propose(f->r, buf, 5, &index, &term), RAFT_OK);
    memcpy(buf, "XXXXX", 5);
    CHECK_EQ(index, 2);
    CHECK_EQ(term, raft_term_of(f->r));
    const struct raft_entry *e = raft_entry_at(f->r, 2);
    CHECK(e);
    CHECK_EQ(e->type, RAFT_ENTRY_NORMAL);
    CHECK_EQ(e->len, 5);
    CHECK(memcmp(e->data, "hello", 5) == 0);
    fx_drain(f);
    FX_CHECK_CONTRACT(f);
}

TEST(propose_larger_than_max_entry_bytes_is_rejected)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.max_entry_bytes = 64}, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    static uint8_t buf[65];
    raft_index last = raft_last_index_of(f->r);
    CHECK_EQ(raft_propose(f->r, buf, 65, NULL, NULL), RAFT_ETOOBIG);
    CHECK_EQ(raft_last_index_of(f->r), last);
    CHECK_EQ(raft_propose(f->r, buf, 64, NULL, NULL), RAFT_OK);
    fx_drain(f);
    FX_CHECK_CONTRACT(f);
}

/* raft.h: until raft_advance, raft_ready hands out the same work again (a host retrying a
 * failed write must not lose or duplicate anything). */
TEST(ready_returns_same_work_until_advance)
{
    struct fx *f = fx_new(1, NULL, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    fx_ack_all(f);
    CHECK_EQ(raft_propose(f->r, "x", 1, NULL, NULL), RAFT_OK);
    CHECK(raft_has_ready(f->r));
    struct raft_ready a, b;
    raft_ready(f->r, &a);
    size_t n_entries = a.n_entries, n_msgs = a.n_msgs, n_after = a.n_msgs_after_persist;
    raft_index first = n_entries ? a.entries[0].index : 0;
    raft_ready(f->r, &b);
    CHECK_EQ(b.n_entries, n_entries);
    CHECK_EQ(b.n_msgs, n_msgs);
    CHECK_EQ(b.n_msgs_after_persist, n_after);
    CHECK_EQ(n_entries, 1);
    CHECK_EQ(b.entries[0].index, first);
    CHECK_EQ(b.term, a.term);
    raft_advance(f->r, &b);
    f->log[first] = b.entries[0].term; /* the fixture's mirror of what the host wrote */
    f->log_last = first;
    fx_drain(f);
    FX_CHECK_CONTRACT(f);
}

/* An answer from a server outside the configuration must not move the term or count
 * towards anything, or a stray process could depose the leader; id 0 is no server at all.
 * (Requests from non-members are taken: see test_membership.) */
TEST(answer_from_non_member_or_id_0_is_dropped_and_counted)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.term = 2}, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    fx_clear(f);
    raft_term term = raft_term_of(f->r);
    struct raft_stats before = fx_stats(f);
    CHECK_EQ(fx_append_ok(f, 9, raft_last_index_of(f->r)), RAFT_EINVAL);
    struct raft_msg vote = fx_msg_to(f, RAFT_MSG_REQUEST_VOTE_RESP, 9, term + 5);
    CHECK_EQ(fx_step(f, &vote), RAFT_EINVAL);
    struct raft_msg snap = fx_msg_to(f, RAFT_MSG_INSTALL_SNAPSHOT_RESP, 9, term + 5);
    CHECK_EQ(fx_step(f, &snap), RAFT_EINVAL);
    CHECK_EQ(fx_append(f, 0, term + 5, 0, 0, 1, (raft_term[]){term + 5}, 1), RAFT_EINVAL);
    CHECK_EQ(fx_stats(f).msgs_dropped_unknown_peer - before.msgs_dropped_unknown_peer, 4);
    CHECK_EQ(raft_term_of(f->r), term);
    CHECK_EQ(raft_role_of(f->r), RAFT_LEADER);
    CHECK_EQ(raft_commit_of(f->r), 0);
    CHECK_EQ(f->n_out, 0);
    FX_CHECK_CONTRACT(f);
}

TEST(message_addressed_to_another_node_is_dropped_and_counted)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.term = 2}, NULL);
    CHECK(f);
    struct raft_msg m = {.type = RAFT_MSG_REQUEST_VOTE, .from = 2, .to = 3, .term = 3};
    fx_step(f, &m);
    CHECK_EQ(drops_of(f), 1);
    CHECK_EQ(raft_term_of(f->r), 2);
    CHECK_EQ(f->n_out, 0);
    FX_CHECK_CONTRACT(f);
}

static void step_append(struct fx *f, raft_index prev, raft_term prev_term,
                        struct raft_entry *entries, size_t n)
{
    struct raft_msg m = {.type = RAFT_MSG_APPEND, .from = 2, .to = 1, .term = 2};
    m.append = (struct raft_append){
        .prev_index = prev, .prev_term = prev_term, .n_entries = n, .entries = entries};
    fx_step(f, &m);
}

/* AppendEntries that no correct leader sends are dropped whole: nothing appended, nothing
 * acknowledged, no crash (ASan checks the latter). */
TEST(malformed_append_is_dropped_and_counted)
{
    struct fx *f =
        fx_new(1, &(struct fx_opts){.term = 2, .log = (raft_term[]){1}, .n_log = 1}, NULL);
    CHECK(f);
    struct raft_entry gap[] = {{.term = 2, .index = 2}, {.term = 2, .index = 4}};
    struct raft_entry wrong_start[] = {{.term = 2, .index = 5}};
    struct raft_entry future_term[] = {{.term = 3, .index = 2}};
    struct raft_entry falling_term[] = {{.term = 2, .index = 2}, {.term = 1, .index = 3}};
    struct raft_entry below_prev_term[] = {{.term = 0, .index = 2}};
    struct raft_entry no_data[] = {{.term = 2, .index = 2, .len = 8, .data = NULL}};
    step_append(f, 1, 1, gap, 2);
    step_append(f, 1, 1, wrong_start, 1);
    step_append(f, 1, 1, future_term, 1);
    step_append(f, 1, 1, falling_term, 2);
    step_append(f, 1, 1, below_prev_term, 1);
    step_append(f, 1, 1, no_data, 1);
    step_append(f, 1, 1, NULL, 3);
    step_append(f, 0, 3, NULL, 0); /* a term for the entry before the first: none has one */
    CHECK_EQ(fx_stats(f).msgs_dropped_malformed, 8);
    CHECK_EQ(raft_last_index_of(f->r), 1);
    CHECK_EQ(f->log_last, 1);
    for (size_t i = 0; i < f->n_out; i++)
        CHECK(f->out[i].m.type != RAFT_MSG_APPEND_RESP || !f->out[i].m.append_resp.success);
    /* A well-formed one still works afterwards. */
    step_append(f, 1, 1, (struct raft_entry[]){{.term = 2, .index = 2}}, 1);
    CHECK_EQ(raft_last_index_of(f->r), 2);
    FX_CHECK_CONTRACT(f);
}

/* Raft §5.4.1: committed entries are never replaced. A leader that sends another entry at
 * a committed index is forged or broken: dropped, counted, and told apart (ECONFLICT) so
 * that the host logs its sender. So is a second leader of the node's own term. */
TEST(append_contradicting_committed_history_is_refused)
{
    struct fx *f = fx_new(
        1, &(struct fx_opts){.term = 2, .log = (raft_term[]){1, 2}, .n_log = 2, .applied = 2},
        NULL);
    CHECK(f);
    CHECK_EQ(raft_commit_of(f->r), 2);
    uint64_t malformed = fx_stats(f).msgs_dropped_malformed;
    struct raft_msg m = {.type = RAFT_MSG_APPEND, .from = 2, .to = 1, .term = 2};
    struct raft_entry other[] = {{.term = 1, .index = 2}};
    m.append =
        (struct raft_append){.prev_index = 1, .prev_term = 1, .n_entries = 1, .entries = other};
    CHECK_EQ(fx_step(f, &m), RAFT_ECONFLICT);
    CHECK_EQ(fx_stats(f).msgs_dropped_malformed, malformed + 1);
    CHECK_EQ(raft_term_at(f->r, 2), 2);
    CHECK_EQ(raft_last_index_of(f->r), 2);
    CHECK_EQ(f->last_truncate_from, 0);
    FX_CHECK_CONTRACT(f);
}

TEST(append_to_the_leader_of_its_own_term_is_refused)
{
    struct fx *f = fx_new(1, NULL, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    struct raft_msg m = fx_msg_to(f, RAFT_MSG_APPEND, 2, raft_term_of(f->r));
    m.append = (struct raft_append){.prev_index = raft_last_index_of(f->r),
                                    .prev_term = raft_term_of(f->r)};
    CHECK_EQ(fx_step(f, &m), RAFT_ECONFLICT);
    CHECK_EQ(raft_role_of(f->r), RAFT_LEADER);
    FX_CHECK_CONTRACT(f);
}

TEST(message_of_unknown_type_is_dropped_and_counted)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.term = 2}, NULL);
    CHECK(f);
    struct raft_msg m = {.type = (enum raft_msg_type)77, .from = 2, .to = 1, .term = 9};
    fx_step(f, &m);
    CHECK_EQ(fx_stats(f).msgs_dropped_malformed, 1);
    CHECK_EQ(raft_term_of(f->r), 2);
    FX_CHECK_CONTRACT(f);
}

/* An acknowledgement of entries the leader never had cannot commit anything. */
TEST(ack_beyond_leader_log_cannot_commit)
{
    struct fx *f = fx_new(1, NULL, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    raft_index last = raft_last_index_of(f->r);
    uint64_t malformed = fx_stats(f).msgs_dropped_malformed;
    CHECK_EQ(fx_append_ok(f, 2, 100), RAFT_ECONFLICT);
    CHECK_EQ(fx_append_ok(f, 3, UINT64_MAX), RAFT_ECONFLICT);
    CHECK_EQ(fx_stats(f).msgs_dropped_malformed, malformed + 2);
    CHECK(raft_commit_of(f->r) <= last);
    CHECK(f->last_applied <= last);
    CHECK_EQ(fx_propose(f, "x", NULL), RAFT_OK);
    CHECK(raft_commit_of(f->r) <= raft_last_index_of(f->r));
    FX_CHECK_CONTRACT(f);
}

/* One forged message must not move a node's term for good: a term near 2^64 would wrap
 * at the next election and leave the cluster without a leader, across restarts. */
TEST(term_out_of_range_is_dropped_and_counted)
{
    struct fx *f = fx_new(1, NULL, NULL);
    CHECK(f);
    raft_term forged[] = {UINT64_MAX, RAFT_MAX_TERM + 1, RAFT_MAX_TERM_STEP + 1};
    for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
        uint64_t malformed = fx_stats(f).msgs_dropped_malformed;
        struct raft_msg m = fx_msg_to(f, RAFT_MSG_APPEND_RESP, 2, forged[i]);
        CHECK_EQ(fx_step(f, &m), RAFT_ERANGE);
        CHECK_EQ(fx_vote_req(f, 3, forged[i], 0, 0, false), RAFT_ERANGE);
        CHECK_EQ(fx_stats(f).msgs_dropped_malformed, malformed + 2);
        CHECK_EQ(raft_term_of(f->r), 0);
    }
    /* A step as large as the bound is a term like any other. */
    CHECK_EQ(fx_vote_req(f, 3, RAFT_MAX_TERM_STEP, 0, 0, false), RAFT_OK);
    CHECK_EQ(raft_term_of(f->r), RAFT_MAX_TERM_STEP);
    FX_CHECK_CONTRACT(f);
}

/* A response naming a ReadIndex round the leader never sent would confirm reads that no
 * quorum has seen. */
TEST(answer_to_a_round_never_sent_is_dropped)
{
    struct fx *f = fx_new(1, NULL, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    fx_ack_all(f);
    CHECK_EQ(raft_read_index(f->r, 7), RAFT_OK);
    fx_drain(f);
    struct raft_msg m = fx_msg_to(f, RAFT_MSG_APPEND_RESP, 2, raft_term_of(f->r));
    m.append_resp = (struct raft_append_resp){
        .success = true, .index = raft_last_index_of(f->r), .context = UINT64_MAX};
    uint64_t malformed = fx_stats(f).msgs_dropped_malformed;
    CHECK_EQ(fx_step(f, &m), RAFT_ECONFLICT);
    CHECK_EQ(fx_stats(f).msgs_dropped_malformed, malformed + 1);
    CHECK_EQ(f->n_reads, 0);
    FX_CHECK_CONTRACT(f);
}

TEST_MAIN(TEST_REF(restart_restores_term_vote_and_log),
          TEST_REF(restart_campaigns_with_restored_log),
          TEST_REF(restart_does_not_reapply_applied_entries),
          TEST_REF(restart_from_snapshot_starts_log_after_it),
          TEST_REF(restore_of_inconsistent_log_is_rejected),
          TEST_REF(restore_with_entries_newer_than_term_is_rejected),
          TEST_REF(new_rejects_invalid_configuration),
          TEST_REF(append_contradicting_committed_history_is_refused),
          TEST_REF(append_to_the_leader_of_its_own_term_is_refused),
          TEST_REF(propose_on_non_leader_returns_enotleader),
          TEST_REF(propose_returns_index_and_term_and_copies_data),
          TEST_REF(propose_larger_than_max_entry_bytes_is_rejected),
          TEST_REF(ready_returns_same_work_until_advance),
          TEST_REF(answer_from_non_member_or_id_0_is_dropped_and_counted),
          TEST_REF(message_addressed_to_another_node_is_dropped_and_counted),
          TEST_REF(malformed_append_is_dropped_and_counted),
          TEST_REF(message_of_unknown_type_is_dropped_and_counted),
          TEST_REF(ack_beyond_leader_log_cannot_commit),
          TEST_REF(term_out_of_range_is_dropped_and_counted),
          TEST_REF(answer_to_a_round_never_sent_is_dropped))
