/* Log compaction and InstallSnapshot (Raft §7), chunked by byte offset with a bounded
 * window per follower. The core never touches snapshot bytes it sends: the host fills
 * each outgoing chunk from its own copy of the snapshot. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "raft/core.h"

int raft_compact(struct raft *r, const struct raft_snapshot_meta *meta, raft_index compact_to)
{
    if (meta->index == 0 || meta->index > r->log.applied || compact_to > meta->index ||
        raft_term_at(r, meta->index) != meta->term)
        return RAFT_EINVAL;
    /* The snapshot stands for the entries it covers, configuration entries included. */
    int rv = raft__membership_on_compact(r, meta->index);
    if (rv != RAFT_OK)
        return rv;
    r->snapshot = *meta;
    raft__log_compact(&r->log, compact_to);
    /* The host keeps only its latest snapshot: transfers of an older one start over. */
    for (size_t i = 0; i < raft__membership_latest(r)->n; i++)
        if (r->progress[i].state == PROGRESS_SNAPSHOT)
            raft__snapshot_start_transfer(r, &r->progress[i]);
    return RAFT_OK;
}

void raft__snapshot_start_transfer(struct raft *r, struct progress *pr)
{
    pr->state = PROGRESS_SNAPSHOT;
    memset(&pr->snap, 0, sizeof pr->snap);
    pr->snap.meta = r->snapshot;
}

void raft__snapshot_send_chunks(struct raft *r, struct progress *pr)
{
    struct snapshot_transfer *t = &pr->snap;
    assert(t->sent <= t->meta.size); /* answers beyond the snapshot's size are dropped */
    while (t->inflight < r->cfg.max_inflight_chunks && !t->done_sent) {
        uint64_t left = t->meta.size - t->sent;
        struct raft_msg m = {.type = RAFT_MSG_INSTALL_SNAPSHOT, .to = pr->id};
        struct raft_install_snapshot *s = &m.install_snapshot;
        s->last_index = t->meta.index;
        s->last_term = t->meta.term;
        s->conf = r->snap_conf; /* deep-copied by raft__core_send */
        s->offset = t->sent;
        s->len = left < r->cfg.snapshot_chunk_bytes ? (size_t)left : r->cfg.snapshot_chunk_bytes;
        s->done = s->len == left;
        if (raft__core_send(r, &r->now, &m) != RAFT_OK)
            return; /* as if lost: the heartbeat round resends */
        t->sent += s->len;
        t->inflight++;
        t->done_sent = s->done;
    }
}

/* A heartbeat round without progress means chunks were lost: resend from what is held. */
void raft__snapshot_on_heartbeat(struct progress *pr)
{
    struct snapshot_transfer *t = &pr->snap;
    t->stalled = t->acked == t->acked_at_heartbeat;
    if (t->stalled) {
        t->sent = t->acked;
        t->inflight = 0;
        t->done_sent = false;
    }
    t->acked_at_heartbeat = t->acked;
}

static int respond(struct raft *r, const struct raft_msg *m, bool done, bool rejected)
{
    struct raft_msg resp = {.type = RAFT_MSG_INSTALL_SNAPSHOT_RESP, .to = m->from};
    resp.install_snapshot_resp.last_index = m->install_snapshot.last_index;
    resp.install_snapshot_resp.offset = r->incoming.size;
    resp.install_snapshot_resp.done = done;
    resp.install_snapshot_resp.rejected = rejected;
    /* Acknowledged bytes must be written first, and a done must be installed. */
    return raft__core_send(r, &r->after_persist, &resp);
}

static int queue_chunk(struct raft *r, const struct raft_install_snapshot *s)
{
    if (r->n_chunks == r->cap_chunks) {
        size_t cap = r->cap_chunks ? r->cap_chunks * 2 : 8;
        struct raft_snapshot_chunk *grown = realloc(r->chunks, cap * sizeof *grown);
        if (!grown)
            return RAFT_ENOMEM;
        r->chunks = grown;
        r->cap_chunks = cap;
    }
    uint8_t *data = NULL;
    if (s->len) {
        data = malloc(s->len);
        if (!data)
            return RAFT_ENOMEM;
        memcpy(data, s->data, s->len);
    }
    r->chunks[r->n_chunks++] = (struct raft_snapshot_chunk){
        .index = s->last_index,
        .term = s->last_term,
        .offset = s->offset,
        .len = s->len,
        .data = data,
        .done = s->done,
    };
    return RAFT_OK;
}

void raft__snapshot_clear_chunks(struct raft *r)
{
    for (size_t i = 0; i < r->n_chunks; i++)
        free((void *)r->chunks[i].data);
    r->n_chunks = 0;
}

/* Raft §7: the snapshot replaces the whole log; the state machine is reset to it. */
static void install(struct raft *r)
{
    raft__core_drop_acks_from(r, r->incoming.index + 1);
    raft__log_reset(&r->log, r->incoming.index, r->incoming.term);
    r->snapshot = r->incoming;
    r->install_pending = true;
    memset(&r->incoming, 0, sizeof r->incoming);
    r->stats.snapshots_installed++;
}

int raft__snapshot_on_install(struct raft *r, const struct raft_msg *m)
{
    if (!raft__core_follow(r, m))
        return RAFT_ECONFLICT;

    const struct raft_install_snapshot *s = &m->install_snapshot;
    /* Raft §7: if we hold the snapshot's last entry, Log Matching says we hold everything
     * before it, and what follows it must survive: we may have acknowledged it. So it is
     * not installed, only answered as held. */
    if (s->last_index <= r->log.commit || raft__log_term_at(&r->log, s->last_index) == s->last_term)
        return respond(r, m, true, false);
    /* A ready's chunks are all the installed snapshot's (raft.h): the host writes them to
     * the one file it then installs, and a newer snapshot's first chunk would start that file
     * over. Dropped, as if lost: the leader sends it again. */
    if (r->install_pending)
        return RAFT_OK;
    /* Two leaders' snapshots at the same index need not be the same bytes: a transfer
     * resumes only from the leader (and term) it began with. */
    bool same_sender = r->incoming_from == m->from && r->incoming_msg_term == m->term;
    if (s->offset == 0) {
        r->incoming = (struct raft_snapshot_meta){.index = s->last_index, .term = s->last_term};
        r->incoming_from = m->from;
        r->incoming_msg_term = m->term;
        same_sender = true;
    }
    bool in_order = same_sender && r->incoming.index == s->last_index &&
                    r->incoming.term == s->last_term && r->incoming.size == s->offset;
    if (!in_order) {
        if (!same_sender || r->incoming.index != s->last_index || r->incoming.term != s->last_term)
            memset(&r->incoming, 0, sizeof r->incoming);
        return respond(r, m, false, true); /* says where to resume */
    }
    int rv = queue_chunk(r, s);
    if (rv != RAFT_OK)
        return rv;
    r->incoming.size += s->len;
    if (s->done) {
        rv = raft__membership_on_install(r, &s->conf);
        if (rv != RAFT_OK)
            return rv;
        install(r);
        r->incoming.size = r->snapshot.size; /* the answer reports the whole size */
        rv = respond(r, m, true, false);
        r->incoming.size = 0;
        return rv;
    }
    return respond(r, m, false, false);
}

int raft__snapshot_on_install_resp(struct raft *r, const struct raft_msg *m)
{
    if (r->role != RAFT_LEADER)
        return RAFT_OK;
    int slot = raft__membership_slot(r, m->from);
    assert(slot >= 0); /* raft_step admits answers from other members only */
    struct progress *pr = &r->progress[slot];
    const struct raft_install_snapshot_resp *resp = &m->install_snapshot_resp;
    pr->recent_active = true;
    if (resp->done) {
        /* Whether it just installed it or already held it, it has everything up to there. */
        bool moved = raft__progress_on_ack(pr, resp->last_index);
        bool this_transfer =
            pr->state == PROGRESS_SNAPSHOT && pr->snap.meta.index == resp->last_index;
        if (this_transfer)
            r->stats.snapshots_sent++;
        /* A late answer about an earlier snapshot, which tells nothing new, must not restart
         * the transfer under way: a follower answers every chunk of a snapshot it holds
         * already, so each such answer restarting a window of chunks multiplied the traffic
         * without bound (raft-sim --seed 1084927). */
        if (moved || this_transfer) {
            raft__progress_become_probe(pr, pr->match + 1);
            raft__transfer_on_match(r, pr);
            raft__replication_maybe_commit(r);
        }
        r->replicate_pending = true;
        return RAFT_OK;
    }
    struct snapshot_transfer *t = &pr->snap;
    if (pr->state != PROGRESS_SNAPSHOT || t->meta.index != resp->last_index ||
        resp->offset > t->meta.size)
        return RAFT_OK; /* about a transfer that is over, or another leader's */
    if (resp->offset > t->acked) {
        /* It holds more than we knew, whatever else the answer says. */
        t->acked = resp->offset;
        t->stalled = false;
        if (t->sent < t->acked)
            t->sent = t->acked;
        if (!resp->rejected && t->inflight)
            t->inflight--;
    } else if (resp->rejected && (resp->offset == t->acked ? t->sent == t->acked : t->stalled)) {
        /* Resume where it stands. Other rejections are stale: chunks that arrived out of
         * order, answered before the ones now in flight; rewinding for each of them would
         * resend the window each time and multiply the traffic. Going back is right only
         * after a round without progress (the follower restarted and lost what it had). */
        t->sent = t->acked = resp->offset;
        t->inflight = 0;
        t->done_sent = false;
        t->stalled = false;
    }
    r->replicate_pending = true;
    return RAFT_OK;
}
