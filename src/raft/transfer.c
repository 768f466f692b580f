/* Leadership transfer (Raft dissertation §3.10; etcd's MsgTransferLeader). */
#include "raft/core.h"

void raft__transfer_send_timeout_now(struct raft *r, raft_id to)
{
    struct raft_msg m = {.type = RAFT_MSG_TIMEOUT_NOW, .to = to};
    /* No write of ours needs to precede it: the target already holds our whole log. */
    raft__core_send(r, &r->now, &m);
}

/* The voter other than us that holds the most of our log, or 0. */
static raft_id most_up_to_date_voter(const struct raft *r)
{
    const struct raft_configuration *c = raft__membership_latest(r);
    raft_id best = 0;
    raft_index best_match = 0;
    for (size_t i = 0; i < c->n; i++) {
        const struct raft_member *m = &c->members[i];
        if (m->role != RAFT_VOTER || m->id == r->cfg.id)
            continue;
        if (best == 0 || r->progress[i].match > best_match) {
            best = m->id;
            best_match = r->progress[i].match;
        }
    }
    return best;
}

int raft_transfer_leadership(struct raft *r, raft_id target)
{
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    if (r->transferee)
        return RAFT_EBUSY;
    if (target == 0)
        target = most_up_to_date_voter(r);
    if (target == 0 || target == r->cfg.id)
        return RAFT_EINVAL;
    if (!raft__membership_is_voter(r, target))
        return RAFT_ENOTFOUND;
    r->transferee = target;
    r->transfer_elapsed = 0;
    r->stats.transfers_started++;
    /* §3.10: "the prior leader stops accepting new client requests" (raft_propose), then
     * brings the target's log up to date before telling it to campaign. */
    raft__transfer_on_match(r, &r->progress[raft__membership_slot(r, target)]);
    r->replicate_pending = true;
    return RAFT_OK;
}

raft_id raft_transferee_of(const struct raft *r)
{
    return r->transferee;
}

void raft__transfer_on_match(struct raft *r, const struct progress *pr)
{
    if (r->transferee && pr->id == r->transferee && pr->match == raft__log_last_index(&r->log))
        raft__transfer_send_timeout_now(r, pr->id);
}

/* §3.10: "If the transfer does not complete after about an election timeout, the prior
 * leader aborts the transfer and resumes accepting client requests." */
void raft__transfer_tick(struct raft *r)
{
    if (r->transferee && ++r->transfer_elapsed >= r->cfg.election_ticks_min) {
        r->transferee = 0;
        r->stats.transfers_abandoned++;
    }
}

int raft__transfer_on_timeout_now(struct raft *r, const struct raft_msg *m)
{
    /* Only the leader of our term may ask: anyone else would be a forged disruption. */
    if (r->role != RAFT_FOLLOWER || r->leader != m->from) {
        r->stats.msgs_dropped_stale_term++;
        return RAFT_OK;
    }
    if (r->unelectable || !raft__election_can_campaign(r))
        return RAFT_OK;
    /* No pre-vote: the leader asked for this election, so it cannot disrupt anything. */
    raft__election_start(r, false, true);
    return RAFT_OK;
}
