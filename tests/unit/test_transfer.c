/*
 * Leadership transfer (Raft dissertation §3.10): the leader brings the target up to date,
 * tells it to campaign at once (TimeoutNow), and takes no proposals meanwhile.
 */
#include "fixture.h"

TEST(target_up_to_date_gets_timeout_now_at_once)
{
    struct fx *f = fx_leader_of_three();
    CHECK(f);
    CHECK_EQ(raft_transfer_leadership(f->r, 3), RAFT_OK);
    fx_drain(f);
    CHECK_EQ(raft_transferee_of(f->r), 3);
    CHECK_EQ(fx_count(f, 3, RAFT_MSG_TIMEOUT_NOW), 1);
    CHECK_EQ(fx_count(f, 2, RAFT_MSG_TIMEOUT_NOW), 0);
    CHECK_EQ(fx_stats(f).transfers_started, 1);
    FX_CHECK_CONTRACT(f);
}

/* §3.10: "the prior leader sends it log entries" until it catches up, and only then
 * TimeoutNow: a target that lacks entries could not win. */
TEST(lagging_target_gets_timeout_now_once_it_catches_up)
{
    struct fx *f = fx_leader_of_three();
    CHECK(f);
    raft_index index;
    CHECK_EQ(fx_propose(f, "x", &index), RAFT_OK);
    fx_append_ok(f, 2, index);
    fx_clear(f);
    CHECK_EQ(raft_transfer_leadership(f->r, 3), RAFT_OK);
    fx_drain(f);
    CHECK_EQ(fx_count(f, 3, RAFT_MSG_TIMEOUT_NOW), 0);
    fx_append_ok(f, 3, index);
    CHECK_EQ(fx_count(f, 3, RAFT_MSG_TIMEOUT_NOW), 1);
    FX_CHECK_CONTRACT(f);
}

/* §3.10: "the prior leader stops accepting new client requests"; reads need no log entry. */
TEST(proposals_and_changes_are_refused_during_a_transfer_but_reads_go_on)
{
    struct fx *f = fx_leader_of_three();
    CHECK(f);
    CHECK_EQ(raft_transfer_leadership(f->r, 2), RAFT_OK);
    fx_drain(f);
    raft_index last = raft_last_index_of(f->r);
    CHECK_EQ(raft_propose(f->r, "x", 1, NULL, NULL), RAFT_EBUSY);
    struct raft_member m4 = {.id = 4};
    CHECK_EQ(raft_add_learner(f->r, &m4, NULL, NULL), RAFT_EBUSY);
    CHECK_EQ(raft_remove(f->r, 3, NULL, NULL), RAFT_EBUSY);
    CHECK_EQ(raft_transfer_leadership(f->r, 3), RAFT_EBUSY);
    CHECK_EQ(raft_last_index_of(f->r), last);
    CHECK_EQ(raft_read_index(f->r, 42), RAFT_OK);
    FX_CHECK_CONTRACT(f);
}

/* §3.10: "If the transfer does not complete after about an election timeout, the prior
 * leader aborts the transfer and resumes accepting client requests." */
TEST(transfer_is_abandoned_after_an_election_timeout_and_proposals_resume)
{
    struct fx *f = fx_leader_of_three();
    CHECK(f);
    CHECK_EQ(raft_transfer_leadership(f->r, 2), RAFT_OK);
    fx_drain(f);
    /* Keep check-quorum content: both followers answer. */
    for (unsigned t = 0; t + 1 < FX_ELECTION_MIN; t++) {
        fx_tick(f, 1);
        fx_ack_all(f);
    }
    CHECK_EQ(raft_transferee_of(f->r), 2);
    CHECK_EQ(raft_propose(f->r, "x", 1, NULL, NULL), RAFT_EBUSY);
    fx_tick(f, 1);
    CHECK_EQ(raft_role_of(f->r), RAFT_LEADER);
    CHECK_EQ(raft_transferee_of(f->r), 0);
    CHECK_EQ(fx_stats(f).transfers_abandoned, 1);
    CHECK_EQ(fx_propose(f, "x", NULL), RAFT_OK);
    FX_CHECK_CONTRACT(f);
}

TEST(transfer_ends_when_the_leader_steps_down)
{
    struct fx *f = fx_leader_of_three();
    CHECK(f);
    CHECK_EQ(raft_transfer_leadership(f->r, 2), RAFT_OK);
    fx_append(f, 3, raft_term_of(f->r) + 1, 0, 0, 0, NULL, 0);
    CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER);
    CHECK_EQ(raft_transferee_of(f->r), 0);
    FX_CHECK_CONTRACT(f);
}

TEST(transfer_is_refused_with_the_documented_errors)
{
    struct fx *follower = fx_new(2, NULL, NULL);
    CHECK(follower);
    CHECK_EQ(raft_transfer_leadership(follower->r, 3), RAFT_ENOTLEADER);

    struct fx_conf b;
    struct fx *f = fx_new(1, &(struct fx_opts){.bootstrap = fx_conf(&b, "1 2 l3")}, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    CHECK_EQ(raft_transfer_leadership(f->r, 3), RAFT_ENOTFOUND); /* a learner */
    CHECK_EQ(raft_transfer_leadership(f->r, 9), RAFT_ENOTFOUND);
    CHECK_EQ(raft_transfer_leadership(f->r, 1), RAFT_EINVAL);
    CHECK_EQ(raft_transferee_of(f->r), 0);

    struct fx *alone = fx_new(1, &(struct fx_opts){.n_voters = 1}, NULL);
    CHECK(alone);
    fx_campaign(alone);
    CHECK_EQ(raft_role_of(alone->r), RAFT_LEADER);
    CHECK_EQ(raft_transfer_leadership(alone->r, 0), RAFT_EINVAL);
    FX_CHECK_CONTRACT(f);
    FX_CHECK_CONTRACT(alone);
}

TEST(transfer_to_no_one_in_particular_picks_the_most_up_to_date_voter)
{
    struct fx *f = fx_leader_of_three();
    CHECK(f);
    raft_index index;
    CHECK_EQ(fx_propose(f, "x", &index), RAFT_OK);
    fx_append_ok(f, 3, index);
    fx_clear(f);
    CHECK_EQ(raft_transfer_leadership(f->r, 0), RAFT_OK);
    fx_drain(f);
    CHECK_EQ(raft_transferee_of(f->r), 3);
    CHECK_EQ(fx_count(f, 3, RAFT_MSG_TIMEOUT_NOW), 1);
    FX_CHECK_CONTRACT(f);
}

/* Node 2 follows node 1 in term 2 and holds entry 1. */
static struct fx *follower_of_1(const struct fx_opts *o)
{
    struct fx *f = fx_new(2, o ? o : &(struct fx_opts){0}, NULL);
    if (!f || fx_append(f, 1, 2, 0, 0, 0, (raft_term[]){2}, 1) != RAFT_OK)
        return NULL;
    fx_clear(f);
    return f;
}

static int timeout_now(struct fx *f, raft_id from, raft_term term)
{
    struct raft_msg m = fx_msg_to(f, RAFT_MSG_TIMEOUT_NOW, from, term);
    return fx_step(f, &m);
}

/* §3.10: TimeoutNow makes the target "begin a new election (it would normally do this when
 * its election timer fires)", at once: a pre-vote would be refused by every voter still in
 * the leader's lease. */
TEST(timeout_now_makes_the_follower_campaign_without_pre_vote)
{
    struct fx *f = follower_of_1(NULL); /* pre-vote enabled */
    CHECK(f);
    CHECK_EQ(timeout_now(f, 1, 2), RAFT_OK);
    CHECK_EQ(raft_role_of(f->r), RAFT_CANDIDATE);
    CHECK_EQ(raft_term_of(f->r), 3);
    const struct fx_msg *req = fx_last(f, 3, RAFT_MSG_REQUEST_VOTE);
    CHECK(req);
    CHECK(!req->m.request_vote.pre_vote);
    CHECK(req->m.request_vote.transfer);
    CHECK_EQ(req->m.term, 3);
    CHECK_EQ(fx_stats(f).pre_votes_started, 0);
    FX_CHECK_CONTRACT(f);
}

/* Only the node's own leader may ask; nor does a node that should not lead, or cannot. */
TEST(timeout_now_is_ignored_unless_from_the_leader_to_an_electable_voter)
{
    struct fx *f = follower_of_1(NULL);
    CHECK(f);
    timeout_now(f, 3, 2); /* not the leader */
    timeout_now(f, 1, 1); /* an older term */
    CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER);
    CHECK_EQ(raft_term_of(f->r), 2);
    CHECK_EQ(fx_stats(f).msgs_dropped_stale_term, 2);

    struct fx *unelectable = follower_of_1(NULL);
    CHECK(unelectable);
    raft_set_electable(unelectable->r, false);
    timeout_now(unelectable, 1, 2);
    CHECK_EQ(raft_role_of(unelectable->r), RAFT_FOLLOWER);

    struct fx_conf b;
    struct fx *learner = follower_of_1(&(struct fx_opts){.bootstrap = fx_conf(&b, "1 l2 3")});
    CHECK(learner);
    timeout_now(learner, 1, 2);
    CHECK_EQ(raft_role_of(learner->r), RAFT_FOLLOWER);
    CHECK_EQ(fx_count(learner, 0, RAFT_MSG_REQUEST_VOTE), 0);
    FX_CHECK_CONTRACT(f);
    FX_CHECK_CONTRACT(unelectable);
    FX_CHECK_CONTRACT(learner);
}

/* §4.2.3: a server that heard from its leader within the minimum election timeout ignores
 * RequestVote, but etcd's campaignTransfer: a campaign the leader asked for must win. */
TEST(voter_in_its_leader_lease_grants_a_transfer_vote_but_not_a_normal_one)
{
    struct fx *f = follower_of_1(NULL);
    CHECK(f);
    fx_vote_req(f, 3, 3, 1, 2, false);
    CHECK_EQ(raft_term_of(f->r), 2);
    CHECK_EQ(fx_count(f, 3, RAFT_MSG_REQUEST_VOTE_RESP), 0);
    struct raft_msg m = fx_msg_to(f, RAFT_MSG_REQUEST_VOTE, 3, 3);
    m.request_vote = (struct raft_request_vote){
        .last_log_index = 1, .last_log_term = 2, .pre_vote = false, .transfer = true};
    CHECK_EQ(fx_step(f, &m), RAFT_OK);
    CHECK_EQ(raft_term_of(f->r), 3);
    CHECK_EQ(raft_vote_of(f->r), 3);
    const struct fx_msg *resp = fx_last(f, 3, RAFT_MSG_REQUEST_VOTE_RESP);
    CHECK(resp && resp->m.request_vote_resp.granted);
    FX_CHECK_CONTRACT(f);
}

/* The whole hand-over: the old leader steps down on the target's RequestVote. */
TEST(leader_steps_down_for_the_transfer_target_campaign)
{
    struct fx *f = fx_leader_of_three();
    CHECK(f);
    CHECK_EQ(raft_transfer_leadership(f->r, 2), RAFT_OK);
    raft_term term = raft_term_of(f->r);
    struct raft_msg m = fx_msg_to(f, RAFT_MSG_REQUEST_VOTE, 2, term + 1);
    m.request_vote = (struct raft_request_vote){
        .last_log_index = raft_last_index_of(f->r), .last_log_term = term, .transfer = true};
    CHECK_EQ(fx_step(f, &m), RAFT_OK);
    CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER);
    CHECK_EQ(raft_vote_of(f->r), 2);
    CHECK_EQ(raft_transferee_of(f->r), 0);
    FX_CHECK_CONTRACT(f);
}

TEST_MAIN(TEST_REF(target_up_to_date_gets_timeout_now_at_once),
          TEST_REF(lagging_target_gets_timeout_now_once_it_catches_up),
          TEST_REF(proposals_and_changes_are_refused_during_a_transfer_but_reads_go_on),
          TEST_REF(transfer_is_abandoned_after_an_election_timeout_and_proposals_resume),
          TEST_REF(transfer_ends_when_the_leader_steps_down),
          TEST_REF(transfer_is_refused_with_the_documented_errors),
          TEST_REF(transfer_to_no_one_in_particular_picks_the_most_up_to_date_voter),
          TEST_REF(timeout_now_makes_the_follower_campaign_without_pre_vote),
          TEST_REF(timeout_now_is_ignored_unless_from_the_leader_to_an_electable_voter),
          TEST_REF(voter_in_its_leader_lease_grants_a_transfer_vote_but_not_a_normal_one),
          TEST_REF(leader_steps_down_for_the_transfer_target_campaign))
