/* Log replication (Raft §5.3) and commitment (§5.4.2), with batching and pipelining. */
#include <assert.h>

#include "raft/core.h"

int raft__replication_propose(struct raft *r, enum raft_entry_type type, const void *data,
                              size_t len, raft_index *index)
{
    /* Only a leader adds entries of its own, and no entry is of a later term than ours. */
    assert(r->role == RAFT_LEADER && raft__log_last_term(&r->log) <= r->term);
    struct raft_entry e = {
        .term = r->term,
        .index = raft__log_last_index(&r->log) + 1,
        .type = type,
        .len = len,
        .data = (uint8_t *)data,
    };
    int rv = raft__log_append(&r->log, &e);
    if (rv != RAFT_OK)
        return rv;
    if (type == RAFT_ENTRY_CONFIG && (rv = raft__membership_on_append(r, &e)) != RAFT_OK) {
        raft__log_truncate(&r->log, e.index);
        return rv;
    }
    if (index)
        *index = e.index;
    /* Sent at the next ready, so proposals made together travel together. */
    r->replicate_pending = true;
    return RAFT_OK;
}

int raft__replication_become_leader(struct raft *r)
{
    r->role = RAFT_LEADER;
    r->leader = r->cfg.id;
    r->heartbeat_elapsed = 0;
    r->election_elapsed = 0;
    for (size_t i = 0; i < raft__membership_latest(r)->n; i++)
        raft__progress_reset(&r->progress[i], raft__log_last_index(&r->log));
    /* Raft §8: a leader commits nothing of earlier terms until it commits an entry of its
     * own, so it appends one at once. */
    return raft__replication_propose(r, RAFT_ENTRY_NOOP, NULL, 0, NULL);
}

static struct progress *progress_of(struct raft *r, raft_id id)
{
    int slot = raft__membership_slot(r, id);
    return slot < 0 ? NULL : &r->progress[slot];
}

static raft_index min_index(raft_index a, raft_index b)
{
    return a < b ? a : b;
}

/* Builds and queues one AppendEntries for pr from pr->next, bounded in count and bytes. */
static void send_append(struct raft *r, struct progress *pr)
{
    raft_index last = raft__log_last_index(&r->log);
    struct raft_msg m = {.type = RAFT_MSG_APPEND, .to = pr->id};
    m.append.prev_index = pr->next - 1;
    m.append.prev_term = raft__log_term_at(&r->log, m.append.prev_index);
    m.append.commit = r->log.commit;
    m.append.context = r->read_round;
    size_t bytes = 0;
    for (raft_index i = pr->next; i <= last && m.append.n_entries < r->cfg.max_entries_per_msg;
         i++) {
        size_t len = raft__log_entry_at(&r->log, i)->len;
        if (m.append.n_entries && bytes + len > r->cfg.max_bytes_per_msg)
            break;
        bytes += len;
        m.append.n_entries++;
    }
    if (m.append.n_entries)
        m.append.entries = (struct raft_entry *)raft__log_entry_at(&r->log, pr->next);
    if (raft__core_send(r, &r->now, &m) != RAFT_OK)
        return; /* as if lost: the heartbeat round resends */
    pr->round_sent = m.append.context;
    raft__progress_on_sent(pr, m.append.prev_index + m.append.n_entries);
}

/* An empty AppendEntries at the follower's match point: always consistent, so it asserts
 * leadership and carries the commit index without risking a spurious rejection. */
static void send_heartbeat(struct raft *r, struct progress *pr)
{
    struct raft_msg m = {.type = RAFT_MSG_APPEND, .to = pr->id};
    /* Below our first entry the match point's term is gone; index 0 matches any log. */
    raft_index prev = pr->match >= r->log.snapshot_index ? pr->match : 0;
    m.append.prev_index = prev;
    m.append.prev_term = raft__log_term_at(&r->log, prev);
    m.append.commit = min_index(r->log.commit, prev);
    m.append.context = r->read_round;
    if (raft__core_send(r, &r->now, &m) == RAFT_OK)
        pr->round_sent = m.append.context;
}

static void replicate_to(struct raft *r, struct progress *pr)
{
    assert(pr->id != r->cfg.id); /* the leader's own progress is its log.stable */
    raft_index last = raft__log_last_index(&r->log);
    bool sent = false;
    /* Raft §7: what it needs next was compacted away; only the snapshot has it. */
    if (pr->state != PROGRESS_SNAPSHOT && pr->next <= r->log.snapshot_index)
        raft__snapshot_start_transfer(r, pr);
    if (pr->state == PROGRESS_SNAPSHOT) {
        raft__snapshot_send_chunks(r, pr);
        return;
    }
    while (!raft__progress_is_paused(pr)) {
        bool pending = pr->next <= last;
        /* A probe must go out even when empty: it is how the match point is found. */
        if (!pending && !(pr->state == PROGRESS_PROBE && pr->match < last))
            break;
        send_append(r, pr);
        sent = true;
        if (pr->state == PROGRESS_PROBE)
            break;
    }
    /* A read waits for this round. A new commit index alone does not warrant a message:
     * the next append or heartbeat carries it, and a follower that got one now would
     * spend a synced write on applying just when the next append needs the disk. */
    if (!sent && pr->round_sent < r->read_round)
        send_heartbeat(r, pr);
}

void raft__replication_flush(struct raft *r)
{
    r->replicate_pending = false;
    if (r->role != RAFT_LEADER)
        return;
    /* Learners too (§4.2.1): they get the log, only their acks do not count. */
    for (size_t i = 0; i < raft__membership_latest(r)->n; i++)
        if (r->progress[i].id != r->cfg.id)
            replicate_to(r, &r->progress[i]);
}

/* What voter slot i holds durably: the leader's own write counts once it is durable. A
 * leader that removed itself is no member: §4.2.2, it "does not count itself in
 * majorities". */
static raft_index voter_match(const struct raft *r, size_t i)
{
    return r->progress[i].id == r->cfg.id ? r->log.stable : r->progress[i].match;
}

/* Counts itself once its own write is durable (log.stable), others by their match. */
void raft__replication_maybe_commit(struct raft *r)
{
    const struct raft_configuration *c = raft__membership_latest(r);
    raft_index best = r->log.commit;
    for (size_t i = 0; i < c->n; i++) {
        raft_index candidate = voter_match(r, i);
        if (c->members[i].role != RAFT_VOTER || candidate <= best)
            continue;
        size_t replicas = 0;
        for (size_t j = 0; j < c->n; j++)
            replicas += c->members[j].role == RAFT_VOTER && voter_match(r, j) >= candidate;
        /* Raft §5.4.2 (Figure 8): only an entry of the current term is committed by
         * counting replicas; earlier ones are committed indirectly through it. */
        if (replicas >= raft__core_quorum(r) && raft__log_term_at(&r->log, candidate) == r->term)
            best = candidate;
    }
    if (best > r->log.commit) {
        /* The term check above also keeps acks beyond our log from counting. */
        assert(best <= raft__log_last_index(&r->log));
        r->log.commit = best;
        raft__read_index_on_commit(r);
        raft__membership_on_commit(r);
    }
}

static int respond(struct raft *r, const struct raft_msg *m, bool success, raft_index index)
{
    struct raft_msg resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from};
    resp.append_resp.success = success;
    resp.append_resp.index = index;
    resp.append_resp.last_index = raft__log_last_index(&r->log);
    resp.append_resp.context = m->append.context;
    if (!success) {
        raft_index prev = m->append.prev_index;
        if (prev > raft__log_last_index(&r->log)) {
            resp.append_resp.conflict_index = raft__log_last_index(&r->log) + 1;
        } else {
            resp.append_resp.conflict_term = raft__log_term_at(&r->log, prev);
            resp.append_resp.conflict_index = raft__log_first_index_of_term_run(&r->log, prev);
        }
    }
    /* An acknowledgement speaks for entries that must be durable first. */
    return raft__core_send(r, &r->after_persist, &resp);
}

/* Appends what the leader sent after prev, replacing a conflicting suffix (§5.3). */
static int append_from_leader(struct raft *r, const struct raft_entry *entries, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct raft_entry *e = &entries[i];
        if (e->index <= raft__log_last_index(&r->log)) {
            if (raft__log_term_at(&r->log, e->index) == e->term)
                continue;
            assert(e->index > r->log.commit); /* raft__replication_on_append checked */
            raft__log_truncate(&r->log, e->index);
            raft__core_drop_acks_from(r, e->index);
            raft__membership_on_truncate(r, e->index);
        }
        int rv = raft__log_append(&r->log, e);
        if (rv != RAFT_OK)
            return rv;
        if (e->type == RAFT_ENTRY_CONFIG && (rv = raft__membership_on_append(r, e)) != RAFT_OK) {
            raft__log_truncate(&r->log, e->index);
            return rv;
        }
    }
    return RAFT_OK;
}

int raft__replication_on_append(struct raft *r, const struct raft_msg *m)
{
    if (!raft__core_follow(r, m))
        return RAFT_ECONFLICT;

    const struct raft_append *a = &m->append;
    raft_index prev = a->prev_index;
    const struct raft_entry *entries = a->entries;
    size_t n = a->n_entries;
    /* The committed prefix matches every leader's log (§5.4): skip over it. */
    while (prev < r->log.commit && n) {
        prev++;
        entries++;
        n--;
    }
    if (prev < r->log.commit)
        return respond(r, m, true, r->log.commit);
    raft_term prev_term = entries != a->entries ? entries[-1].term : a->prev_term;
    /* Here prev == commit at most: an entry there that differs from ours would rewrite
     * committed history, which no leader holding every committed entry sends (§5.4). */
    if (prev == r->log.commit && raft__log_term_at(&r->log, prev) != prev_term) {
        r->stats.msgs_dropped_malformed++;
        return RAFT_ECONFLICT;
    }
    if (prev > raft__log_last_index(&r->log) || raft__log_term_at(&r->log, prev) != prev_term)
        return respond(r, m, false, a->prev_index);

    int rv = append_from_leader(r, entries, n);
    if (rv != RAFT_OK)
        return rv;
    raft_index last_new = prev + n;
    raft_index commit = min_index(a->commit, last_new);
    if (commit > r->log.commit)
        r->log.commit = commit;
    assert(r->log.commit <= raft__log_last_index(&r->log));
    return respond(r, m, true, last_new);
}

/* A rejection's hint says where the follower's log may still agree with ours. */
static raft_index next_after_rejection(const struct raft *r, const struct raft_append_resp *ar)
{
    raft_index next = ar->conflict_index;
    if (ar->conflict_term) {
        raft_index last_of_term =
            raft__log_last_index_of_term(&r->log, ar->conflict_term, ar->index);
        if (last_of_term)
            next = last_of_term + 1;
    }
    return next < ar->index ? next : ar->index;
}

int raft__replication_on_append_resp(struct raft *r, const struct raft_msg *m)
{
    if (r->role != RAFT_LEADER)
        return RAFT_OK;
    struct progress *pr = progress_of(r, m->from);
    assert(pr && pr->id != r->cfg.id); /* raft_step admits answers from other members only */
    const struct raft_append_resp *ar = &m->append_resp;
    pr->recent_active = true;
    /* A round we never sent cannot be answered: it would confirm reads not yet asked. */
    if (ar->context > pr->round_sent) {
        r->stats.msgs_dropped_malformed++;
        return RAFT_ECONFLICT;
    }
    /* Any answer in our term, even a rejection, shows it still follows us. */
    if (ar->context > pr->round_acked) {
        pr->round_acked = ar->context;
        raft__read_index_confirm(r);
    }
    if (pr->state == PROGRESS_SNAPSHOT)
        return RAFT_OK; /* about appends sent before the transfer began */
    if (ar->success) {
        /* A follower holds at most what we sent it; more would make its match absurd. */
        if (ar->index > raft__log_last_index(&r->log)) {
            r->stats.msgs_dropped_malformed++;
            return RAFT_ECONFLICT;
        }
        if (raft__progress_on_ack(pr, ar->index)) {
            if (pr->state == PROGRESS_PROBE)
                raft__progress_become_replicate(pr);
            raft__transfer_on_match(r, pr);
            raft__replication_maybe_commit(r);
        }
        pr->probe_sent = false;
        r->replicate_pending = true;
        return RAFT_OK;
    }
    r->stats.append_rejections++;
    /* Only a rejection at the match point itself (a heartbeat's) can show lost entries; a
     * delayed rejection of an older append may also report a shorter log. */
    if (ar->index == pr->match && ar->last_index < pr->match) {
        /* The follower lost entries it had acknowledged (its disk was wiped): Raft assumes
         * this never happens; start over from what it holds so it can catch up. */
        pr->match = ar->last_index;
        raft__progress_become_probe(pr, ar->last_index + 1);
        r->replicate_pending = true;
        return RAFT_OK;
    }
    bool stale =
        pr->state == PROGRESS_REPLICATE ? ar->index <= pr->match : ar->index != pr->next - 1;
    if (stale)
        return RAFT_OK;
    raft__progress_become_probe(pr, next_after_rejection(r, ar));
    r->replicate_pending = true;
    return RAFT_OK;
}

/* Raft dissertation §6.2: a leader that cannot reach a majority steps down, so that
 * clients stuck with it look elsewhere. */
static bool leader_has_quorum(struct raft *r)
{
    const struct raft_configuration *c = raft__membership_latest(r);
    size_t active = 0;
    for (size_t i = 0; i < c->n; i++) {
        struct progress *pr = &r->progress[i];
        active += c->members[i].role == RAFT_VOTER && (pr->id == r->cfg.id || pr->recent_active);
        pr->recent_active = false;
    }
    return active >= raft__core_quorum(r);
}

static void heartbeat(struct raft *r)
{
    for (size_t i = 0; i < raft__membership_latest(r)->n; i++) {
        struct progress *pr = &r->progress[i];
        if (pr->id == r->cfg.id)
            continue;
        if (pr->state == PROGRESS_SNAPSHOT) {
            raft__snapshot_on_heartbeat(pr);
            continue; /* its chunks keep it from campaigning */
        }
        /* No progress for a whole heartbeat with appends in flight: one was lost.
         * Resend from the match point. */
        if (pr->state == PROGRESS_REPLICATE && pr->match == pr->match_at_heartbeat &&
            pr->next - 1 > pr->match)
            raft__progress_become_probe(pr, pr->match + 1);
        pr->match_at_heartbeat = pr->match;
        pr->probe_sent = false;
        send_heartbeat(r, pr);
    }
    r->replicate_pending = true;
}

void raft__replication_tick(struct raft *r)
{
    if (++r->election_elapsed >= r->cfg.election_ticks_min) {
        r->election_elapsed = 0;
        if (r->cfg.check_quorum && !leader_has_quorum(r)) {
            r->stats.leader_stepped_down_no_quorum++;
            raft__core_become_follower(r, r->term, 0);
            return;
        }
    }
    if (++r->heartbeat_elapsed >= r->cfg.heartbeat_ticks) {
        r->heartbeat_elapsed = 0;
        heartbeat(r);
    }
}
