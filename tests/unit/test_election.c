/*
 * Leader election (Raft §5.2, §5.4.1), terms (§5.1), pre-vote and check-quorum (Raft
 * dissertation §9.6, §6.2). Node 1 is the server under test; the test plays nodes 2.. itself.
 */
#include "fixture.h"

/* Ticks the node until its role changes; returns how many ticks that took (limit + 1 if never). */
static unsigned ticks_until_role_changes(struct fx *f, unsigned limit)
{
    enum raft_role start = raft_role_of(f->r);
    for (unsigned n = 1; n <= limit; n++) {
        fx_tick(f, 1);
        if (raft_role_of(f->r) != start)
            return n;
    }
    return limit + 1;
}

/* A node of the given options that has just started a (pre-)campaign. */
static struct fx *new_campaigning(struct fx_opts o)
{
    struct fx *f = fx_new(1, &o, NULL);
    if (f)
        fx_campaign(f);
    return f;
}

/* A node of the given options that a bare majority has just elected. */
static struct fx *new_leader(struct fx_opts o)
{
    struct fx *f = fx_new(1, &o, NULL);
    return f && fx_elect(f) ? f : NULL;
}

#define CHECK_ROLE_TERM_VOTE(f, role, term, vote)                                                  \
    do {                                                                                           \
        CHECK_EQ(raft_role_of((f)->r), role);                                                      \
        CHECK_EQ(raft_term_of((f)->r), term);                                                      \
        CHECK_EQ(raft_vote_of((f)->r), vote);                                                      \
    } while (0)

/* Both peers were last asked for a vote (or a pre-vote) of term. */
static bool asked_for_votes(const struct fx *f, raft_term term, bool pre_vote)
{
    for (raft_id p = 2; p <= 3; p++) {
        const struct fx_msg *s = fx_last(f, p, RAFT_MSG_REQUEST_VOTE);
        if (!s || s->m.request_vote.pre_vote != pre_vote || s->m.term != term)
            return false;
    }
    return true;
}

static bool granted_to(const struct fx *f, raft_id to)
{
    const struct fx_msg *s = fx_last(f, to, RAFT_MSG_REQUEST_VOTE_RESP);
    return s && s->m.request_vote_resp.granted;
}

/* §5.2: a follower that hears nothing for an election timeout starts an election; with
 * pre-vote (§9.6) it first asks whether it could win, without raising its term. */
TEST(election_timeout_starts_pre_vote)
{
    struct fx *f = fx_new(1, NULL, NULL);
    CHECK(f);
    unsigned n = ticks_until_role_changes(f, 2 * FX_ELECTION_MAX);
    CHECK(n >= FX_ELECTION_MIN && n <= FX_ELECTION_MIN + 1);
    CHECK_ROLE_TERM_VOTE(f, RAFT_PRE_CANDIDATE, 0, 0);
    for (raft_id p = 2; p <= 3; p++) {
        const struct fx_msg *s = fx_last(f, p, RAFT_MSG_REQUEST_VOTE);
        CHECK(s);
        CHECK(s->m.request_vote.pre_vote);
        CHECK_EQ(s->m.term, 1);
        CHECK_EQ(s->m.request_vote.last_log_index, 0);
        CHECK_EQ(s->m.request_vote.last_log_term, 0);
    }
    CHECK_EQ(fx_stats(f).pre_votes_started, 1);
    CHECK_EQ(fx_stats(f).elections_started, 0);
    CHECK_EQ(f->hs_term, 0);
    FX_CHECK_CONTRACT(f);
}

/* §5.2: election timeouts are chosen randomly from a fixed interval. */
TEST(election_timeout_is_drawn_from_configured_range)
{
    struct fx *shortest = fx_new(1, NULL, NULL);
    struct fx *longest = fx_new(1, &(struct fx_opts){.longest_timeout = true}, NULL);
    CHECK(shortest && longest);
    unsigned a = ticks_until_role_changes(shortest, 3 * FX_ELECTION_MAX);
    unsigned b = ticks_until_role_changes(longest, 3 * FX_ELECTION_MAX);
    CHECK(a >= FX_ELECTION_MIN && a <= FX_ELECTION_MIN + 1);
    CHECK(b >= FX_ELECTION_MAX - 1 && b <= FX_ELECTION_MAX);
    FX_CHECK_CONTRACT(shortest);
    FX_CHECK_CONTRACT(longest);
}

/* §9.6: once a majority would vote for it, the pre-candidate increments its term, votes for
 * itself and asks for real votes. */
TEST(pre_vote_majority_starts_real_election)
{
    struct fx *f = new_campaigning((struct fx_opts){0});
    CHECK(f);
    CHECK_EQ(raft_role_of(f->r), RAFT_PRE_CANDIDATE);
    fx_clear(f);
    fx_vote_resp(f, 2, 1, true, true);
    CHECK_ROLE_TERM_VOTE(f, RAFT_CANDIDATE, 1, 1);
    CHECK_EQ(f->hs_term, 1);
    CHECK_EQ(f->hs_vote, 1);
    CHECK(asked_for_votes(f, 1, false));
    CHECK_EQ(fx_stats(f).elections_started, 1);
    FX_CHECK_CONTRACT(f);
}

/* §9.6: a pre-vote that a majority refuses leaves the term alone, so a partitioned server
 * cannot inflate terms and disrupt the cluster when it rejoins. */
TEST(pre_vote_rejected_by_majority_keeps_term)
{
    struct fx *f =
        new_campaigning((struct fx_opts){.term = 4, .log = (raft_term[]){4}, .n_log = 1});
    CHECK(f);
    fx_vote_resp(f, 2, 4, false, true);
    fx_vote_resp(f, 3, 4, false, true);
    CHECK_ROLE_TERM_VOTE(f, RAFT_FOLLOWER, 4, 0);
    CHECK_EQ(f->hs_term, 4);
    FX_CHECK_CONTRACT(f);
}

/* §5.1: a rejection that carries a higher term still teaches the pre-candidate that term. */
TEST(pre_vote_rejection_with_higher_term_updates_term)
{
    struct fx *f = new_campaigning((struct fx_opts){.term = 2});
    CHECK(f);
    CHECK_EQ(raft_role_of(f->r), RAFT_PRE_CANDIDATE);
    fx_vote_resp(f, 2, 7, false, true);
    CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER);
    CHECK_EQ(raft_term_of(f->r), 7);
    CHECK_EQ(f->hs_term, 7);
    FX_CHECK_CONTRACT(f);
}

/* §5.2: without pre-vote a follower "increments its current term and transitions to candidate
 * state. It then votes for itself and issues RequestVote RPCs in parallel". */
TEST(election_timeout_without_pre_vote_starts_election)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.no_pre_vote = true}, NULL);
    CHECK(f);
    unsigned n = ticks_until_role_changes(f, 2 * FX_ELECTION_MAX);
    CHECK(n <= FX_ELECTION_MAX);
    CHECK_ROLE_TERM_VOTE(f, RAFT_CANDIDATE, 1, 1);
    CHECK_EQ(f->hs_term, 1);
    CHECK_EQ(f->hs_vote, 1);
    CHECK(asked_for_votes(f, 1, false));
    FX_CHECK_CONTRACT(f);
}

/* §5.2: "A candidate wins an election if it receives votes from a majority of the servers in
 * the full cluster for the same term." */
TEST(candidate_wins_with_votes_from_majority)
{
    struct fx *f = new_campaigning((struct fx_opts){.no_pre_vote = true, .n_voters = 5});
    CHECK(f);
    fx_vote_resp(f, 2, 1, true, false);
    CHECK_EQ(raft_role_of(f->r), RAFT_CANDIDATE);
    fx_vote_resp(f, 2, 1, true, false); /* the same voter twice is still one vote */
    CHECK_EQ(raft_role_of(f->r), RAFT_CANDIDATE);
    fx_vote_resp(f, 4, 1, false, false);
    CHECK_EQ(raft_role_of(f->r), RAFT_CANDIDATE);
    fx_vote_resp(f, 3, 1, true, false);
    CHECK_EQ(raft_role_of(f->r), RAFT_LEADER);
    CHECK_EQ(raft_leader_of(f->r), 1);
    CHECK_EQ(raft_term_of(f->r), 1);
    FX_CHECK_CONTRACT(f);
}

/* A candidate that a majority refuses cannot win this term and goes back to following. */
TEST(candidate_returns_to_follower_when_majority_rejects)
{
    struct fx *f = new_campaigning((struct fx_opts){.no_pre_vote = true});
    CHECK(f);
    fx_vote_resp(f, 2, 1, false, false);
    fx_vote_resp(f, 3, 1, false, false);
    CHECK_ROLE_TERM_VOTE(f, RAFT_FOLLOWER, 1, 1);
    FX_CHECK_CONTRACT(f);
}

/* §5.2: "If election timeout elapses [as candidate]: start new election", in a new term. */
TEST(candidate_starts_new_election_after_election_timeout)
{
    struct fx *f = new_campaigning((struct fx_opts){.no_pre_vote = true});
    CHECK(f);
    CHECK_EQ(raft_term_of(f->r), 1);
    fx_clear(f);
    unsigned n;
    for (n = 1; n <= 2 * FX_ELECTION_MAX && raft_term_of(f->r) == 1; n++)
        fx_tick(f, 1);
    CHECK(n - 1 >= FX_ELECTION_MIN && n - 1 <= FX_ELECTION_MAX);
    CHECK_ROLE_TERM_VOTE(f, RAFT_CANDIDATE, 2, 1);
    const struct fx_msg *s = fx_last(f, 2, RAFT_MSG_REQUEST_VOTE);
    CHECK(s);
    CHECK_EQ(s->m.term, 2);
    CHECK_EQ(fx_stats(f).elections_started, 2);
    FX_CHECK_CONTRACT(f);
}

/* §5.2: "If the leader's term is at least as large as the candidate's current term, then the
 * candidate recognizes the leader as legitimate and returns to follower state." */
TEST(candidate_steps_down_on_append_from_leader_of_same_term)
{
    struct fx *f = new_campaigning((struct fx_opts){.no_pre_vote = true});
    CHECK(f);
    fx_clear(f);
    fx_append(f, 2, 1, 0, 0, 0, NULL, 0);
    CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER);
    CHECK_EQ(raft_leader_of(f->r), 2);
    CHECK_EQ(raft_term_of(f->r), 1);
    const struct fx_msg *s = fx_last(f, 2, RAFT_MSG_APPEND_RESP);
    CHECK(s);
    CHECK(s->m.append_resp.success);
    FX_CHECK_CONTRACT(f);
}

TEST(pre_candidate_steps_down_on_append_from_leader_of_its_term)
{
    struct fx *f = new_campaigning((struct fx_opts){.term = 2});
    CHECK(f);
    CHECK_EQ(raft_role_of(f->r), RAFT_PRE_CANDIDATE);
    fx_append(f, 3, 2, 0, 0, 0, NULL, 0);
    CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER);
    CHECK_EQ(raft_leader_of(f->r), 3);
    CHECK_EQ(raft_term_of(f->r), 2);
    FX_CHECK_CONTRACT(f);
}

/* §5.2: "Each server will vote for at most one candidate in a given term, on a
 * first-come-first-served basis." A repeated request from the same candidate is re-granted. */
TEST(vote_granted_to_first_candidate_of_a_term_only)
{
    struct fx *f = fx_new(1, NULL, NULL);
    CHECK(f);
    fx_vote_req(f, 2, 1, 0, 0, false);
    CHECK(granted_to(f, 2));
    CHECK_EQ(raft_term_of(f->r), 1);
    CHECK_EQ(raft_vote_of(f->r), 2);
    fx_vote_req(f, 3, 1, 0, 0, false);
    CHECK(!granted_to(f, 3));
    CHECK_EQ(raft_vote_of(f->r), 2);
    fx_clear(f);
    fx_vote_req(f, 2, 1, 0, 0, false);
    CHECK(granted_to(f, 2));
    FX_CHECK_CONTRACT(f);
}

/* Figure 2, "Persistent state on all servers ... updated on stable storage before responding
 * to RPCs": the vote and term are in the ready and the grant only leaves after persisting. */
TEST(vote_is_durable_before_it_is_sent)
{
    struct fx *f =
        fx_new(1, &(struct fx_opts){.term = 3, .log = (raft_term[]){1}, .n_log = 1}, NULL);
    CHECK(f);
    unsigned readies = f->readies;
    fx_vote_req(f, 2, 4, 1, 1, false);
    CHECK(f->readies > readies);
    const struct fx_msg *s = fx_last(f, 2, RAFT_MSG_REQUEST_VOTE_RESP);
    CHECK(s);
    CHECK(s->m.request_vote_resp.granted);
    CHECK_EQ(s->m.term, 4);
    CHECK(s->after_persist);
    CHECK_EQ(s->durable_term, 4);
    CHECK_EQ(s->durable_vote, 2);
    FX_CHECK_CONTRACT(f);
}

struct up_to_date_case {
    raft_index last_index;
    raft_term last_term;
    bool granted;
};

/* Voter log: index 1 of term 1, index 2 of term 2; voter term 2. */
static const struct up_to_date_case up_to_date_cases[] = {
    {1, 1, false}, /* older last term */
    {5, 1, false}, /* longer, but older last term */
    {1, 2, false}, /* same last term, shorter */
    {2, 2, true},  /* identical */
    {3, 2, true},  /* same last term, longer */
    {1, 3, true},  /* newer last term, shorter */
};

/* §5.4.1: "the voter denies its vote if its own log is more up-to-date than that of the
 * candidate" - compare last terms first, then lengths. */
static void check_up_to_date_rule(bool *test_failed_, bool pre_vote)
{
    for (size_t i = 0; i < sizeof up_to_date_cases / sizeof up_to_date_cases[0]; i++) {
        const struct up_to_date_case *c = &up_to_date_cases[i];
        struct fx *f =
            fx_new(1, &(struct fx_opts){.term = 2, .log = (raft_term[]){1, 2}, .n_log = 2}, NULL);
        CHECK(f);
        fx_vote_req(f, 2, 3, c->last_index, c->last_term, pre_vote);
        if (granted_to(f, 2) != c->granted)
            fprintf(stderr, "case %zu: candidate last %" PRIu64 "/%" PRIu64 "\n", i, c->last_index,
                    c->last_term);
        CHECK_EQ(granted_to(f, 2), c->granted);
        if (c->granted)
            CHECK_EQ(fx_last(f, 2, RAFT_MSG_REQUEST_VOTE_RESP)->m.request_vote_resp.pre_vote,
                     pre_vote);
        CHECK_EQ(raft_vote_of(f->r), (!pre_vote && c->granted) ? 2 : 0);
        FX_CHECK_CONTRACT(f);
    }
}

TEST(vote_rejected_when_candidate_log_is_behind)
{
    check_up_to_date_rule(test_failed_, false);
}

TEST(pre_vote_rejected_when_candidate_log_is_behind)
{
    check_up_to_date_rule(test_failed_, true);
}

/* §5.2: a candidate has voted for itself, so it refuses a rival of the same term. */
TEST(candidate_rejects_rival_candidate_of_its_term)
{
    struct fx *f = new_campaigning((struct fx_opts){.no_pre_vote = true});
    CHECK(f);
    fx_vote_req(f, 2, 1, 5, 1, false);
    CHECK(!granted_to(f, 2));
    CHECK_EQ(raft_role_of(f->r), RAFT_CANDIDATE);
    CHECK_EQ(raft_vote_of(f->r), 1);
    FX_CHECK_CONTRACT(f);
}

/* With check-quorum a leader that hears from a majority is not deposed by a RequestVote of a
 * higher term (dissertation §4.2.3): it keeps its term and role. */
TEST(leader_with_quorum_ignores_higher_term_vote_request)
{
    struct fx *f = new_leader((struct fx_opts){0});
    CHECK(f);
    fx_ack_all(f);
    raft_term t = raft_term_of(f->r);
    fx_vote_req(f, 2, t + 1, 99, t, false);
    fx_vote_req(f, 3, t + 1, 99, t, true);
    CHECK_EQ(raft_role_of(f->r), RAFT_LEADER);
    CHECK_EQ(raft_term_of(f->r), t);
    CHECK(!granted_to(f, 2));
    CHECK(!granted_to(f, 3));
    FX_CHECK_CONTRACT(f);
}

/* Figure 2, RequestVote receiver: "Reply false if term < currentTerm". */
TEST(vote_rejected_for_candidate_of_older_term)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.term = 3}, NULL);
    CHECK(f);
    fx_vote_req(f, 2, 2, 9, 2, false);
    CHECK(!granted_to(f, 2));
    const struct fx_msg *s = fx_last(f, 2, RAFT_MSG_REQUEST_VOTE_RESP);
    if (s)
        CHECK_EQ(s->m.term, 3);
    CHECK_EQ(raft_term_of(f->r), 3);
    CHECK_EQ(raft_vote_of(f->r), 0);
    FX_CHECK_CONTRACT(f);
}

/* §9.6: a pre-vote is a question, not a vote: granting one changes neither term nor vote. */
TEST(pre_vote_granted_without_changing_term_or_vote)
{
    struct fx *f =
        fx_new(1, &(struct fx_opts){.term = 2, .log = (raft_term[]){1, 2}, .n_log = 2}, NULL);
    CHECK(f);
    fx_vote_req(f, 2, 3, 2, 2, true);
    const struct fx_msg *s = fx_last(f, 2, RAFT_MSG_REQUEST_VOTE_RESP);
    CHECK(s);
    CHECK(s->m.request_vote_resp.granted);
    CHECK(s->m.request_vote_resp.pre_vote);
    CHECK_EQ(s->m.term, 3);
    CHECK_EQ(raft_term_of(f->r), 2);
    CHECK_EQ(raft_vote_of(f->r), 0);
    CHECK_EQ(f->hs_term, 2);
    CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER);
    /* The real vote of term 3 is still free. */
    fx_vote_req(f, 3, 3, 2, 2, false);
    CHECK(granted_to(f, 3));
    CHECK_EQ(raft_vote_of(f->r), 3);
    FX_CHECK_CONTRACT(f);
}

/* §5.1: "If a server receives a request with a stale term number, it rejects the request", and
 * "If one server's current term is smaller than the other's, then it updates its current term
 * to the larger value." */
TEST(follower_adopts_higher_term_from_any_message)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.term = 1, .vote = 1}, NULL);
    CHECK(f);
    fx_append(f, 2, 3, 0, 0, 0, NULL, 0);
    CHECK_ROLE_TERM_VOTE(f, RAFT_FOLLOWER, 3, 0);
    CHECK_EQ(raft_leader_of(f->r), 2);
    CHECK_EQ(f->hs_term, 3);
    FX_CHECK_CONTRACT(f);
}

/* §5.1: "If a candidate or leader discovers that its term is out of date, it immediately
 * reverts to follower state." */
TEST(candidate_reverts_to_follower_on_higher_term)
{
    struct fx *f = new_campaigning((struct fx_opts){.no_pre_vote = true});
    CHECK(f);
    fx_append(f, 3, 5, 0, 0, 0, NULL, 0);
    CHECK_ROLE_TERM_VOTE(f, RAFT_FOLLOWER, 5, 0);
    CHECK_EQ(raft_leader_of(f->r), 3);
    FX_CHECK_CONTRACT(f);
}

TEST(leader_reverts_to_follower_on_response_with_higher_term)
{
    struct fx *f = new_leader((struct fx_opts){0});
    CHECK(f);
    raft_term t = raft_term_of(f->r);
    struct raft_msg m = {.type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = t + 3};
    m.append_resp.index = 0;
    m.append_resp.last_index = 0;
    fx_step(f, &m);
    CHECK_ROLE_TERM_VOTE(f, RAFT_FOLLOWER, t + 3, 0);
    CHECK(raft_leader_of(f->r) != 1);
    CHECK(raft_propose(f->r, "x", 1, NULL, NULL) == RAFT_ENOTLEADER);
    FX_CHECK_CONTRACT(f);
}

/* §5.1: a request with a stale term is rejected - and for AppendEntries the answer carries the
 * newer term, so a deposed leader learns it must step down. */
TEST(stale_term_append_is_answered_with_current_term)
{
    struct fx *f =
        fx_new(1, &(struct fx_opts){.term = 5, .log = (raft_term[]){1}, .n_log = 1}, NULL);
    CHECK(f);
    fx_append(f, 2, 3, 1, 1, 1, (raft_term[]){3}, 1);
    const struct fx_msg *s = fx_last(f, 2, RAFT_MSG_APPEND_RESP);
    CHECK(s);
    CHECK_EQ(s->m.term, 5);
    CHECK(!s->m.append_resp.success);
    CHECK_EQ(raft_term_of(f->r), 5);
    CHECK_EQ(raft_leader_of(f->r), 0);
    CHECK_EQ(raft_last_index_of(f->r), 1);
    CHECK_EQ(raft_commit_of(f->r), 0);
    FX_CHECK_CONTRACT(f);
}

/* §5.1 without check-quorum's lease: a leader that sees a RequestVote of a higher term steps
 * down and, the candidate's log being up to date, votes for it. */
TEST(leader_without_check_quorum_steps_down_for_higher_term_candidate)
{
    struct fx *f = new_leader((struct fx_opts){.no_check_quorum = true});
    CHECK(f);
    raft_term t = raft_term_of(f->r);
    fx_vote_req(f, 2, t + 1, raft_last_index_of(f->r), t, false);
    CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER);
    CHECK_EQ(raft_term_of(f->r), t + 1);
    CHECK(granted_to(f, 2));
    FX_CHECK_CONTRACT(f);
}

/* A vote from an earlier term says nothing about this election. */
TEST(vote_response_of_older_term_is_ignored)
{
    struct fx *f = new_campaigning((struct fx_opts){.no_pre_vote = true, .n_voters = 5, .term = 4});
    CHECK(f);
    CHECK_EQ(raft_term_of(f->r), 5);
    fx_vote_resp(f, 2, 4, true, false);
    fx_vote_resp(f, 3, 4, true, false);
    CHECK_EQ(raft_role_of(f->r), RAFT_CANDIDATE);
    CHECK(fx_stats(f).msgs_dropped_stale_term >= 2);
    fx_vote_resp(f, 2, 5, true, false);
    fx_vote_resp(f, 3, 5, true, false);
    CHECK_EQ(raft_role_of(f->r), RAFT_LEADER);
    FX_CHECK_CONTRACT(f);
}

/* Dissertation §4.2.3: servers that hear from a current leader within the minimum election
 * timeout disregard RequestVote (and pre-vote) so a removed or partitioned server cannot
 * depose a healthy leader. */
TEST(follower_ignores_votes_while_leader_is_alive)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.term = 2, .longest_timeout = true}, NULL);
    CHECK(f);
    fx_append(f, 2, 2, 0, 0, 0, NULL, 0);
    CHECK_EQ(raft_leader_of(f->r), 2);
    fx_tick(f, FX_ELECTION_MIN - 1);
    fx_vote_req(f, 3, 3, 0, 0, true);
    CHECK(!granted_to(f, 3));
    fx_vote_req(f, 3, 3, 0, 0, false);
    CHECK(!granted_to(f, 3));
    CHECK_EQ(raft_term_of(f->r), 2);
    CHECK_EQ(raft_vote_of(f->r), 0);
    CHECK_EQ(raft_leader_of(f->r), 2);
    FX_CHECK_CONTRACT(f);
}

/* ...but once the leader has been silent for the election timeout, votes are granted again. */
TEST(follower_votes_again_after_leader_silent_for_election_timeout)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.term = 2, .longest_timeout = true}, NULL);
    CHECK(f);
    fx_append(f, 2, 2, 0, 0, 0, NULL, 0);
    fx_tick(f, FX_ELECTION_MIN);
    CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER); /* its own timeout is longer */
    fx_vote_req(f, 3, 3, 0, 0, false);
    CHECK(granted_to(f, 3));
    CHECK_EQ(raft_term_of(f->r), 3);
    CHECK_EQ(raft_vote_of(f->r), 3);
    FX_CHECK_CONTRACT(f);
}

/* §5.2: "Followers remain in follower state as long as they receive valid RPCs from a leader";
 * heartbeats reset the election timer. */
TEST(heartbeats_keep_follower_from_campaigning)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.term = 1}, NULL);
    CHECK(f);
    for (int i = 0; i < 20; i++) {
        fx_append(f, 2, 1, 0, 0, 0, NULL, 0);
        fx_tick(f, FX_ELECTION_MIN - 1);
        CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER);
    }
    CHECK_EQ(raft_term_of(f->r), 1);
    CHECK_EQ(fx_count(f, 0, RAFT_MSG_REQUEST_VOTE), 0);
    FX_CHECK_CONTRACT(f);
}

/* Dissertation §6.2 (check quorum): a leader that has not heard from a majority for an
 * election timeout steps down, so clients of a partitioned leader time out and retry. */
TEST(leader_steps_down_without_quorum_for_election_timeout)
{
    struct fx *f = new_leader((struct fx_opts){0});
    CHECK(f);
    raft_term t = raft_term_of(f->r);
    fx_clear(f);
    unsigned n = 0;
    for (n = 1; n <= 3 * FX_ELECTION_MAX && raft_role_of(f->r) == RAFT_LEADER; n++) {
        fx_tick(f, 1);
        fx_clear(f);
    }
    n--;
    CHECK(n >= FX_ELECTION_MIN);
    CHECK(n <= 2 * FX_ELECTION_MAX);
    CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER);
    CHECK_EQ(raft_term_of(f->r), t);
    CHECK_EQ(fx_stats(f).leader_stepped_down_no_quorum, 1);
    FX_CHECK_CONTRACT(f);
}

TEST(leader_keeps_leadership_while_majority_responds)
{
    struct fx *f = new_leader((struct fx_opts){0});
    CHECK(f);
    raft_term t = raft_term_of(f->r);
    fx_ack_all(f);
    fx_clear(f);
    for (unsigned i = 0; i < 5 * FX_ELECTION_MAX; i++) {
        fx_tick(f, 1);
        bool to_2 = fx_count(f, 2, RAFT_MSG_APPEND) > 0;
        fx_clear(f);
        if (to_2) /* node 2 answers, node 3 is gone */
            fx_append_ok(f, 2, raft_last_index_of(f->r));
        fx_clear(f);
    }
    CHECK_EQ(raft_role_of(f->r), RAFT_LEADER);
    CHECK_EQ(raft_term_of(f->r), t);
    FX_CHECK_CONTRACT(f);
}

TEST(leader_without_check_quorum_stays_leader)
{
    struct fx *f = new_leader((struct fx_opts){.no_check_quorum = true});
    CHECK(f);
    for (unsigned i = 0; i < 5 * FX_ELECTION_MAX; i++) {
        fx_tick(f, 1);
        fx_clear(f);
    }
    CHECK_EQ(raft_role_of(f->r), RAFT_LEADER);
    FX_CHECK_CONTRACT(f);
}

/* A node whose host cannot store new entries (storage full) should not lead: it would
 * stall every write. It votes, and campaigns only after four election timeouts without a
 * leader, so that a node with room wins first; with room again it campaigns as usual. */
TEST(node_that_should_not_lead_campaigns_late_and_votes)
{
    struct fx *f = fx_new(1, NULL, NULL);
    CHECK(f);
    raft_set_electable(f->r, false);
    fx_campaign(f);
    CHECK_ROLE_TERM_VOTE(f, RAFT_FOLLOWER, 0, 0);
    fx_vote_req(f, 2, 1, 0, 0, false);
    CHECK(granted_to(f, 2));
    CHECK_ROLE_TERM_VOTE(f, RAFT_FOLLOWER, 1, 2);
    unsigned n = ticks_until_role_changes(f, 8 * FX_ELECTION_MAX);
    CHECK(n >= 4 * FX_ELECTION_MIN && n <= 4 * FX_ELECTION_MAX);
    CHECK_EQ(raft_role_of(f->r), RAFT_PRE_CANDIDATE);
    struct fx *g = fx_new(1, NULL, NULL);
    CHECK(g);
    raft_set_electable(g->r, false);
    raft_set_electable(g->r, true);
    n = ticks_until_role_changes(g, 2 * FX_ELECTION_MAX);
    CHECK(n >= FX_ELECTION_MIN && n <= FX_ELECTION_MAX);
    FX_CHECK_CONTRACT(f);
    FX_CHECK_CONTRACT(g);
}

/* A leader or candidate told it should no longer lead steps down at once, keeping its
 * term. */
TEST(leader_or_candidate_that_should_not_lead_steps_down)
{
    struct fx *f = new_leader((struct fx_opts){0});
    CHECK(f);
    raft_term term = raft_term_of(f->r);
    raft_set_electable(f->r, false);
    fx_drain(f);
    CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER);
    CHECK_EQ(raft_term_of(f->r), term);
    CHECK_EQ(raft_leader_of(f->r), 0);
    CHECK_EQ(fx_propose(f, "x", NULL), RAFT_ENOTLEADER);
    struct fx *c = new_campaigning((struct fx_opts){.no_pre_vote = true});
    CHECK(c);
    raft_set_electable(c->r, false);
    fx_vote_resp(c, 2, 1, true, false);
    CHECK_ROLE_TERM_VOTE(c, RAFT_FOLLOWER, 1, 1);
    FX_CHECK_CONTRACT(f);
    FX_CHECK_CONTRACT(c);
}

TEST_MAIN(TEST_REF(election_timeout_starts_pre_vote),
          TEST_REF(node_that_should_not_lead_campaigns_late_and_votes),
          TEST_REF(leader_or_candidate_that_should_not_lead_steps_down),
          TEST_REF(election_timeout_is_drawn_from_configured_range),
          TEST_REF(pre_vote_majority_starts_real_election),
          TEST_REF(pre_vote_rejected_by_majority_keeps_term),
          TEST_REF(pre_vote_rejection_with_higher_term_updates_term),
          TEST_REF(election_timeout_without_pre_vote_starts_election),
          TEST_REF(candidate_wins_with_votes_from_majority),
          TEST_REF(candidate_returns_to_follower_when_majority_rejects),
          TEST_REF(candidate_starts_new_election_after_election_timeout),
          TEST_REF(candidate_steps_down_on_append_from_leader_of_same_term),
          TEST_REF(pre_candidate_steps_down_on_append_from_leader_of_its_term),
          TEST_REF(vote_granted_to_first_candidate_of_a_term_only),
          TEST_REF(vote_is_durable_before_it_is_sent),
          TEST_REF(vote_rejected_when_candidate_log_is_behind),
          TEST_REF(pre_vote_rejected_when_candidate_log_is_behind),
          TEST_REF(candidate_rejects_rival_candidate_of_its_term),
          TEST_REF(leader_with_quorum_ignores_higher_term_vote_request),
          TEST_REF(vote_rejected_for_candidate_of_older_term),
          TEST_REF(pre_vote_granted_without_changing_term_or_vote),
          TEST_REF(follower_adopts_higher_term_from_any_message),
          TEST_REF(candidate_reverts_to_follower_on_higher_term),
          TEST_REF(leader_reverts_to_follower_on_response_with_higher_term),
          TEST_REF(stale_term_append_is_answered_with_current_term),
          TEST_REF(leader_without_check_quorum_steps_down_for_higher_term_candidate),
          TEST_REF(vote_response_of_older_term_is_ignored),
          TEST_REF(follower_ignores_votes_while_leader_is_alive),
          TEST_REF(follower_votes_again_after_leader_silent_for_election_timeout),
          TEST_REF(heartbeats_keep_follower_from_campaigning),
          TEST_REF(leader_steps_down_without_quorum_for_election_timeout),
          TEST_REF(leader_keeps_leadership_while_majority_responds),
          TEST_REF(leader_without_check_quorum_stays_leader))
