/* Leader election (Raft §5.2) with pre-vote (Raft dissertation §9.6). */
#include <assert.h>
#include <string.h>

#include "raft/core.h"

/* How many election timeouts a node that should not lead (raft_set_electable) waits. */
#define UNELECTABLE_TIMEOUTS 4

void raft__election_tick(struct raft *r)
{
    unsigned timeouts = r->unelectable ? UNELECTABLE_TIMEOUTS : 1;
    if (++r->election_elapsed >= timeouts * r->election_timeout)
        raft__election_start(r, r->cfg.pre_vote);
}

static void election_won(struct raft *r)
{
    if (r->role == RAFT_PRE_CANDIDATE)
        raft__election_start(r, false);
    else
        raft__replication_become_leader(r);
}

static size_t count_votes(const struct raft *r, enum vote_state state)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_voters; i++)
        n += r->votes[i] == state;
    return n;
}

void raft__election_start(struct raft *r, bool pre_vote)
{
    if (r->term >= RAFT_MAX_TERM) { /* the next term would be out of range */
        raft__core_reset_election_timer(r);
        return;
    }
    raft_term campaign_term = r->term + 1;
    if (pre_vote) {
        /* Ask first whether we could win, without raising our term: a node that cannot
         * reach a majority must not disrupt the cluster when it comes back. */
        r->role = RAFT_PRE_CANDIDATE;
        r->stats.pre_votes_started++;
    } else {
        r->term = campaign_term;
        r->vote = r->cfg.id;
        r->role = RAFT_CANDIDATE;
        r->stats.elections_started++;
    }
    r->leader = 0;
    raft__core_reset_election_timer(r);
    memset(r->votes, 0, r->n_voters * sizeof *r->votes);
    r->votes[raft__core_voter_slot(r, r->cfg.id)] = VOTE_GRANTED;
    if (count_votes(r, VOTE_GRANTED) >= raft__core_quorum(r)) {
        election_won(r);
        return;
    }
    struct raft_msg req = {.type = RAFT_MSG_REQUEST_VOTE, .term = campaign_term};
    req.request_vote.last_log_index = raft__log_last_index(&r->log);
    req.request_vote.last_log_term = raft__log_last_term(&r->log);
    req.request_vote.pre_vote = pre_vote;
    for (size_t i = 0; i < r->n_voters; i++) {
        if (r->voters[i] == r->cfg.id)
            continue;
        req.to = r->voters[i];
        /* Our own vote and term must be durable before anyone counts on them. */
        raft__core_send(r, &r->after_persist, &req);
    }
}

int raft__election_on_request_vote(struct raft *r, const struct raft_msg *m)
{
    const struct raft_request_vote *rv = &m->request_vote;
    /* One vote per term (§5.2); a pre-vote for a later term binds nothing. */
    bool can_vote = r->vote == m->from || (r->vote == 0 && r->leader == 0) ||
                    (rv->pre_vote && m->term > r->term);
    bool granted =
        can_vote && raft__log_is_up_to_date(&r->log, rv->last_log_index, rv->last_log_term);
    struct raft_msg resp = {.type = RAFT_MSG_REQUEST_VOTE_RESP, .to = m->from};
    resp.term = granted ? m->term : r->term;
    resp.request_vote_resp.granted = granted;
    resp.request_vote_resp.pre_vote = rv->pre_vote;
    if (granted && !rv->pre_vote) {
        r->vote = m->from;
        raft__core_reset_election_timer(r);
    }
    /* The vote is visible only once durable: a restarted node must not vote twice. */
    return raft__core_send(r, &r->after_persist, &resp);
}

int raft__election_on_request_vote_resp(struct raft *r, const struct raft_msg *m)
{
    bool pre_vote = m->request_vote_resp.pre_vote;
    bool expected = pre_vote ? r->role == RAFT_PRE_CANDIDATE : r->role == RAFT_CANDIDATE;
    raft_term campaign_term = pre_vote ? r->term + 1 : r->term;
    bool granted = m->request_vote_resp.granted;
    if (!expected || (granted && m->term != campaign_term))
        return RAFT_OK; /* an answer to an earlier campaign */
    int slot = raft__core_voter_slot(r, m->from);
    assert(slot >= 0); /* raft_step admits only voters */
    r->votes[slot] = granted ? VOTE_GRANTED : VOTE_REJECTED;
    if (count_votes(r, VOTE_GRANTED) >= raft__core_quorum(r))
        election_won(r);
    else if (count_votes(r, VOTE_REJECTED) >= raft__core_quorum(r))
        raft__core_become_follower(r, r->term, 0);
    return RAFT_OK;
}
