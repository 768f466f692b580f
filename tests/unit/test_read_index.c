/* Linearizable reads by ReadIndex (Raft dissertation §6.4). */
#include "fixture.h"

/* The leader's latest AppendEntries to `to`, whose context names its read round. */
static uint64_t round_sent_to(const struct fx *f, raft_id to)
{
    const struct fx_msg *s = fx_last(f, to, RAFT_MSG_APPEND);
    return s ? s->m.append.context : 0;
}

static int ack_round(struct fx *f, raft_id from, uint64_t context)
{
    struct raft_msg m = {.type = RAFT_MSG_APPEND_RESP, .from = from, .to = f->id};
    m.term = raft_term_of(f->r);
    m.append_resp =
        (struct raft_append_resp){.success = true, .index = 0, .last_index = 0, .context = context};
    return fx_step(f, &m);
}

/* A leader whose no-op is committed on a majority. */
static struct fx *committed_leader(void)
{
    struct fx *f = fx_new(1, NULL, NULL);
    if (f && fx_elect(f))
        fx_ack_all(f);
    return f;
}

TEST(read_index_on_follower_is_refused)
{
    struct fx *f = fx_new(1, NULL, NULL);
    CHECK(f);
    CHECK_EQ(raft_read_index(f->r, 7), RAFT_ENOTLEADER);
    FX_CHECK_CONTRACT(f);
}

TEST(read_index_waits_for_a_quorum_to_confirm_leadership)
{
    struct fx *f = committed_leader();
    CHECK(f && raft_role_of(f->r) == RAFT_LEADER);
    raft_index commit = raft_commit_of(f->r);
    fx_clear(f);
    CHECK_EQ(raft_read_index(f->r, 7), RAFT_OK);
    fx_drain(f);
    /* Leadership is not confirmed by the leader alone: a round goes out to everyone. */
    CHECK_EQ(f->n_reads, 0);
    uint64_t round = round_sent_to(f, 2);
    CHECK(round > 0);
    CHECK_EQ(round_sent_to(f, 3), round);
    ack_round(f, 2, round);
    CHECK_EQ(f->n_reads, 1);
    CHECK_EQ(f->reads[0].ctx, 7);
    CHECK_EQ(f->reads[0].index, commit);
    FX_CHECK_CONTRACT(f);
}

TEST(read_index_is_not_confirmed_by_answers_to_earlier_rounds)
{
    struct fx *f = committed_leader();
    CHECK(f);
    fx_clear(f);
    CHECK_EQ(raft_read_index(f->r, 1), RAFT_OK);
    fx_drain(f);
    uint64_t round = round_sent_to(f, 2);
    /* An answer sent before the read was asked for proves nothing about now. */
    ack_round(f, 2, round - 1);
    ack_round(f, 3, round - 1);
    CHECK_EQ(f->n_reads, 0);
    ack_round(f, 3, round);
    CHECK_EQ(f->n_reads, 1);
    FX_CHECK_CONTRACT(f);
}

TEST(read_index_waits_for_the_leaders_first_commit_in_its_term)
{
    /* Node 1 holds entries of term 1 it cannot know are committed. */
    struct fx_opts o = {.term = 1, .log = (raft_term[]){1, 1}, .n_log = 2};
    struct fx *f = fx_new(1, &o, NULL);
    CHECK(f && fx_elect(f));
    fx_clear(f);
    CHECK_EQ(raft_read_index(f->r, 9), RAFT_OK);
    fx_drain(f);
    ack_round(f, 2, round_sent_to(f, 2));
    CHECK_EQ(f->n_reads, 0); /* leadership confirmed, but the read index is not known yet */
    fx_ack_all(f);           /* the no-op (index 3) commits */
    CHECK_EQ(raft_commit_of(f->r), 3);
    CHECK_EQ(f->n_reads, 1);
    CHECK_EQ(f->reads[0].ctx, 9);
    CHECK_EQ(f->reads[0].index, 3);
    FX_CHECK_CONTRACT(f);
}

TEST(reads_are_confirmed_in_order)
{
    struct fx *f = committed_leader();
    CHECK(f);
    fx_clear(f);
    CHECK_EQ(raft_read_index(f->r, 1), RAFT_OK);
    fx_drain(f);
    uint64_t first = round_sent_to(f, 2);
    CHECK_EQ(raft_read_index(f->r, 2), RAFT_OK);
    fx_drain(f);
    uint64_t second = round_sent_to(f, 2);
    CHECK(second > first);
    ack_round(f, 2, second); /* confirms both */
    CHECK_EQ(f->n_reads, 2);
    CHECK_EQ(f->reads[0].ctx, 1);
    CHECK_EQ(f->reads[1].ctx, 2);
    FX_CHECK_CONTRACT(f);
}

TEST(pending_reads_are_forgotten_when_the_leader_steps_down)
{
    struct fx *f = committed_leader();
    CHECK(f);
    fx_clear(f);
    CHECK_EQ(raft_read_index(f->r, 5), RAFT_OK);
    fx_drain(f);
    uint64_t round = round_sent_to(f, 2);
    /* A newer leader appears: node 1 must not confirm the read from old answers. */
    fx_append(f, 3, raft_term_of(f->r) + 1, 0, 0, 0, NULL, 0);
    CHECK(raft_role_of(f->r) == RAFT_FOLLOWER);
    ack_round(f, 2, round);
    CHECK_EQ(f->n_reads, 0);
    FX_CHECK_CONTRACT(f);
}

TEST(single_voter_confirms_reads_at_once)
{
    struct fx_opts o = {.n_voters = 1};
    struct fx *f = fx_new(1, &o, NULL);
    CHECK(f);
    fx_campaign(f);
    CHECK(raft_role_of(f->r) == RAFT_LEADER);
    CHECK_EQ(raft_read_index(f->r, 4), RAFT_OK);
    fx_drain(f);
    CHECK_EQ(f->n_reads, 1);
    CHECK_EQ(f->reads[0].index, raft_commit_of(f->r));
    FX_CHECK_CONTRACT(f);
}

TEST_MAIN(TEST_REF(read_index_on_follower_is_refused),
          TEST_REF(read_index_waits_for_a_quorum_to_confirm_leadership),
          TEST_REF(read_index_is_not_confirmed_by_answers_to_earlier_rounds),
          TEST_REF(read_index_waits_for_the_leaders_first_commit_in_its_term),
          TEST_REF(reads_are_confirmed_in_order),
          TEST_REF(pending_reads_are_forgotten_when_the_leader_steps_down),
          TEST_REF(single_voter_confirms_reads_at_once))
