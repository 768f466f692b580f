/* Leader election (Raft §5.2) with pre-vote (Raft dissertation §9.6). */
#include <assert.h>
#include <string.h>

#include "raft/core.h"

/* How many election timeouts a node that should not lead (raft_set_electable) waits. */
#define UNELECTABLE_TIMEOUTS 4

/* §4.2.1: learners "do not count towards majorities"; a node no configuration names a
 * voter (joining, or removed) waits for a leader instead of disrupting the cluster. */
/* A voter campaigns. So does a node that its latest configuration removed, while that is
 * not known to be committed, if the configuration before named it a voter: it may hold the
 * entry alone (a leader that removed itself and lost the lead before any other voter got
 * it), and then the voters left, whose logs are behind, cannot win without it. Like a leader
 * that removed itself (§4.2.2) it does not count its own vote, and steps down once its
 * removal commits. */
bool raft__election_can_campaign(const struct raft *r)
{
    if (raft__membership_is_voter(r, r->cfg.id))
        return true;
    raft_index at;
    raft_configuration_of(r, &at);
    if (at == 0 || at <= r->log.commit)
        return false;
    const struct raft_member *before =
        raft_configuration_find(raft_configuration_at(r, at - 1), r->cfg.id);
    return before && before->role == RAFT_VOTER;
}

void raft__election_tick(struct raft *r)
{
    unsigned timeout = (r->unelectable ? UNELECTABLE_TIMEOUTS : 1) * r->election_timeout;
    /* Held at the timeout while the node may not campaign: it must not wrap. */
    if (r->election_elapsed < timeout)
        r->election_elapsed++;
    if (r->election_elapsed >= timeout && raft__election_can_campaign(r))
        raft__election_start(r, r->cfg.pre_vote, false);
}

static void election_won(struct raft *r)
{
    if (r->role == RAFT_PRE_CANDIDATE)
        raft__election_start(r, false, false);
    else
        raft__replication_become_leader(r);
}

static size_t count_votes(const struct raft *r, enum vote_state state)
{
    const struct raft_configuration *c = raft__membership_latest(r);
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += c->members[i].role == RAFT_VOTER && r->votes[i] == state;
    return n;
}

void raft__election_start(struct raft *r, bool pre_vote, bool transfer)
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
    memset(r->votes, 0, sizeof r->votes);
    int self = raft__membership_slot(r, r->cfg.id);
    if (self >= 0) /* a node campaigning for its own removal does not count itself */
        r->votes[self] = VOTE_GRANTED;
    if (count_votes(r, VOTE_GRANTED) >= raft__core_quorum(r)) {
        election_won(r);
        return;
    }
    struct raft_msg req = {.type = RAFT_MSG_REQUEST_VOTE, .term = campaign_term};
    req.request_vote.last_log_index = raft__log_last_index(&r->log);
    req.request_vote.last_log_term = raft__log_last_term(&r->log);
    req.request_vote.pre_vote = pre_vote;
    req.request_vote.transfer = transfer;
    const struct raft_configuration *c = raft__membership_latest(r);
    for (size_t i = 0; i < c->n; i++) {
        if (c->members[i].role != RAFT_VOTER || c->members[i].id == r->cfg.id)
            continue;
        req.to = c->members[i].id;
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
    int slot = raft__membership_slot(r, m->from);
    assert(slot >= 0); /* raft_step admits answers from members only */
    if (!raft__membership_is_voter(r, m->from))
        return RAFT_OK; /* a learner's vote does not count (§4.2.1) */
    r->votes[slot] = granted ? VOTE_GRANTED : VOTE_REJECTED;
    if (count_votes(r, VOTE_GRANTED) >= raft__core_quorum(r))
        election_won(r);
    else if (count_votes(r, VOTE_REJECTED) >= raft__core_quorum(r))
        raft__core_become_follower(r, r->term, 0);
    return RAFT_OK;
}
