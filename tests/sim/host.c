/* One simulated node: the host loop of raft.h around a core, with mem storage, a state
 * machine that is a hash chain of what it applied, snapshots of it, and crashes at chosen
 * points of the loop. Every step is shown to the checks of invariants.c. */
#include <inttypes.h>
#include <string.h>

#include "cluster_internal.h"

/* ---- snapshots of the simulated state machine ---- */

#define SNAP_HEADER 24 /* index, term, hash chain */

static void snap_swap(struct cluster_snapshot *a, struct cluster_snapshot *b)
{
    struct cluster_snapshot t = *a;
    *a = *b;
    *b = t;
}

/* The state machine becomes the one in n->snap: on restart, or on installing a snapshot. */
static void snap_restore(struct cluster *c, struct cluster_node *n)
{
    const struct cluster_snapshot *sn = &n->snap;
    raft_index index = 0;
    raft_term term = 0;
    uint64_t chain = 0;
    if (sn->meta.size >= SNAP_HEADER) {
        memcpy(&index, sn->data, 8);
        memcpy(&term, sn->data + 8, 8);
        memcpy(&chain, sn->data + 16, 8);
    }
    if (!check_snapshot_state(c, n, index, term, chain))
        return;
    n->applied = index;
    n->sm_hash = chain;
}

/* Snapshots the state machine and compacts the log, as raftd does every so many entries. */
static void snap_maybe_take(struct cluster *c, struct cluster_node *n)
{
    unsigned every = c->opts.snapshot_every;
    if (!every || !n->r || n->applied < n->snap.meta.index + every)
        return;
    struct cluster_snapshot *sn = &n->snap;
    raft_index index = n->applied;
    raft_term term = stored_term_at(n, index);
    size_t size = SNAP_HEADER + cluster_rand_below(c, 320);
    grow((void **)&sn->data, &sn->cap, size, 1);
    memcpy(sn->data, &index, 8);
    memcpy(sn->data + 8, &term, 8);
    memcpy(sn->data + 16, &n->sm_hash, 8);
    for (size_t i = SNAP_HEADER; i < size; i++)
        sn->data[i] = (uint8_t)(n->sm_hash >> (8 * (i % 8)));
    sn->meta = (struct raft_snapshot_meta){index, term, size};
    /* A restart needs the configuration at the snapshot's index (raft_restore). */
    raft_configuration_free(&n->snap_conf);
    if (raft_configuration_copy(&n->snap_conf, raft_configuration_at(n->r, index)) != RAFT_OK)
        oom();
    raft_index to = index > c->opts.compact_margin ? index - c->opts.compact_margin : 0;
    int rc = raft_compact(n->r, &sn->meta, to);
    trace_note(c, n->id, "snapshot taken (index, compact to)", index, to);
    if (rc != RAFT_OK)
        cluster_fail(c, n->id,
                     "raft_compact refused n%" PRIu64 "'s snapshot at applied %" PRIu64 "/t%" PRIu64
                     ": %s",
                     n->id, index, term, raft_strerror(rc));
    c->stats_snapshots_taken++;
}

/* An outgoing InstallSnapshot leaves the core without bytes: the host fills them in. */
static bool snap_fill_chunk(struct cluster *c, const struct cluster_node *n, struct raft_msg *m)
{
    struct raft_install_snapshot *is = &m->install_snapshot;
    const struct cluster_snapshot *sn = &n->snap;
    if (sn->meta.index != is->last_index || sn->meta.term != is->last_term ||
        is->offset + is->len > sn->meta.size ||
        is->done != (is->offset + is->len == sn->meta.size)) {
        cluster_fail(c, n->id,
                     "n%" PRIu64 " asked to send bytes %" PRIu64 "+%zu%s of snapshot %" PRIu64
                     "/t%" PRIu64 " but holds %" PRIu64 "/t%" PRIu64 " of %" PRIu64 " bytes",
                     n->id, is->offset, is->len, is->done ? " (done)" : "", is->last_index,
                     is->last_term, sn->meta.index, sn->meta.term, sn->meta.size);
        return false;
    }
    is->data = is->len ? sn->data + is->offset : NULL;
    return true;
}

/* Writes received chunks, in order, into the snapshot being received. */
static void snap_receive_chunks(struct cluster *c, struct cluster_node *n,
                                const struct raft_ready *rd)
{
    /* raft.h: in a ready that installs a snapshot, its last chunk is the last one (raftd
     * writes them all to one file, which it then installs). */
    const struct raft_snapshot_chunk *last =
        rd->n_snapshot_chunks ? &rd->snapshot_chunks[rd->n_snapshot_chunks - 1] : NULL;
    if (rd->install_snapshot && last && (!last->done || last->index != rd->snapshot.index)) {
        cluster_fail(c, n->id,
                     "n%" PRIu64 " handed a chunk of snapshot %" PRIu64
                     " after the last one of %" PRIu64 ", which the same ready installs",
                     n->id, last->index, rd->snapshot.index);
        return;
    }
    for (size_t i = 0; i < rd->n_snapshot_chunks; i++) {
        const struct raft_snapshot_chunk *ch = &rd->snapshot_chunks[i];
        struct cluster_snapshot *in = &n->incoming;
        if (ch->offset == 0)
            in->meta = (struct raft_snapshot_meta){ch->index, ch->term, 0};
        if (in->meta.index != ch->index || in->meta.term != ch->term ||
            in->meta.size != ch->offset) {
            cluster_fail(c, n->id,
                         "n%" PRIu64 " handed chunk at %" PRIu64 " of snapshot %" PRIu64
                         "/t%" PRIu64 " after %" PRIu64 " bytes of %" PRIu64 "/t%" PRIu64,
                         n->id, ch->offset, ch->index, ch->term, in->meta.size, in->meta.index,
                         in->meta.term);
            return;
        }
        grow((void **)&in->data, &in->cap, ch->offset + ch->len, 1);
        if (ch->len)
            memcpy(in->data + ch->offset, ch->data, ch->len);
        in->meta.size += ch->len;
        if (ch->done) {
            snap_swap(&n->received, in);
            in->meta = (struct raft_snapshot_meta){0};
        }
    }
}

static void snap_install(struct cluster *c, struct cluster_node *n, const struct raft_ready *rd)
{
    const struct raft_snapshot_meta *want = &rd->snapshot;
    const struct raft_snapshot_meta *got = &n->received.meta;
    if (got->index != want->index || got->term != want->term || got->size != want->size) {
        cluster_fail(c, n->id,
                     "n%" PRIu64 " told to install snapshot %" PRIu64 "/t%" PRIu64
                     " but received %" PRIu64 "/t%" PRIu64,
                     n->id, want->index, want->term, got->index, got->term);
        return;
    }
    if (want->index < n->applied)
        cluster_fail(c, n->id,
                     "n%" PRIu64 " installs snapshot %" PRIu64 " below its applied %" PRIu64, n->id,
                     want->index, n->applied);
    snap_swap(&n->snap, &n->received);
    n->received.meta = (struct raft_snapshot_meta){0};
    raft_configuration_free(&n->snap_conf);
    if (raft_configuration_copy(&n->snap_conf, rd->snapshot_conf) != RAFT_OK)
        oom();
    n->log_base = want->index;
    n->base_term = want->term;
    n->log_n = 0;
    snap_restore(c, n);
    c->stats_snapshots_installed++;
    trace_note(c, n->id, "snapshot installed (index, term)", want->index, want->term);
}

/* The host's side of sending: snapshot bytes filled in, and the checks see every message
 * before the network does. */
static void node_send(struct cluster *c, const struct cluster_node *n, const struct raft_msg *msgs,
                      size_t count)
{
    for (size_t i = 0; i < count; i++) {
        struct raft_msg filled = msgs[i];
        const struct raft_msg *m = &filled;
        if (m->type == RAFT_MSG_INSTALL_SNAPSHOT && !snap_fill_chunk(c, n, &filled))
            continue;
        check_ack_durable(c, n, m);
        net_send(c, m);
    }
}

/* ---- the host loop of one node ---- */

void host_crash(struct cluster *c, struct cluster_node *n, enum cluster_crash_point at)
{
    if (n->r)
        raft_free(n->r);
    n->r = NULL;
    n->applied = 0;
    n->sm_hash = 0;
    n->lead_term = 0;
    n->role = RAFT_FOLLOWER;
    n->crash_at = CRASH_NONE;
    n->dirty = false;
    n->crashes++;
    trace_event(c, n->id, EV_CRASH, at, 0, 0, 0, 0);
}

/* Looks at the core after each call into it, to see role changes as they happen. */
static void node_observe(struct cluster *c, struct cluster_node *n)
{
    enum raft_role role = raft_role_of(n->r);
    raft_term term = raft_term_of(n->r);
    if (role != n->role || term != n->term)
        trace_event(c, n->id, EV_ROLE, role, term, raft_leader_of(n->r), raft_last_index_of(n->r),
                    raft_commit_of(n->r));
    bool campaigns = role != n->role || term != n->term;
    n->role = role;
    n->term = term;
    if (role != RAFT_LEADER) {
        if (campaigns && role != RAFT_FOLLOWER)
            check_campaigner(c, n);
        n->lead_term = 0;
        return;
    }
    if (n->lead_term != term) {
        check_campaigner(c, n);
        check_new_leader(c, n, term);
        check_leader_commit(c, n, term);
        n->lead_term = term;
        n->lead_last = raft_last_index_of(n->r);
        n->lead_conf = UINT64_MAX; /* not checked yet */
        check_leader_configuration(c, n);
        c->stats_elections_won++;
        return;
    }
    raft_index last = raft_last_index_of(n->r);
    check_leader_log(c, n, last);
    check_leader_commit(c, n, term);
    check_leader_configuration(c, n);
    n->lead_last = last;
}

static void node_persist(struct cluster *c, struct cluster_node *n, const struct raft_ready *rd)
{
    check_leader_truncation(c, n, rd);
    int rc = n->st->ops->save(n->st, rd);
    if (rc != RAFT_OK) {
        cluster_fail(c, n->id,
                     "storage refused the ready of n%" PRIu64 " (%s): truncate_from=%" PRIu64
                     " first entry=%" PRIu64 " stored last=%" PRIu64,
                     n->id, raft_strerror(rc), rd->truncate_from,
                     rd->n_entries ? rd->entries[0].index : 0, stored_last(n));
        return;
    }
    snap_receive_chunks(c, n, rd);
    if (rd->install_snapshot)
        snap_install(c, n, rd);
    if (rd->hard_state_changed) {
        check_hard_state(c, n, rd);
        n->hs_term = rd->term;
        n->hs_vote = rd->vote;
    }
    if (rd->truncate_from > n->log_base && rd->truncate_from <= stored_last(n)) {
        n->log_n = rd->truncate_from - n->log_base - 1;
        c->stats_truncations++;
    }
    grow((void **)&n->log, &n->log_cap, n->log_n + rd->n_entries, sizeof *n->log);
    for (size_t i = 0; i < rd->n_entries; i++) {
        const struct raft_entry *e = &rd->entries[i];
        raft_term prev = stored_term_at(n, e->index - 1);
        uint64_t h = entry_hash(e);
        check_persisted_entry(c, n, e, prev, h);
        n->log[n->log_n++] = (struct cluster_logent){e->term, h};
    }
    if (rd->hard_state_changed || rd->truncate_from || rd->n_entries) {
        struct cluster_event ev = {.node = n->id,
                                   .kind = EV_PERSIST,
                                   .a = n->hs_term,
                                   .b = n->hs_vote,
                                   .c = rd->truncate_from};
        ev.msg.flag1 = rd->hard_state_changed;
        if (rd->n_entries) {
            ev.d = rd->entries[0].index;
            ev.e = rd->entries[rd->n_entries - 1].index;
        }
        trace_push(c, &ev);
    }
}

static void node_apply(struct cluster *c, struct cluster_node *n, const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_committed; i++) {
        const struct raft_entry *e = &rd->committed[i];
        uint64_t h = entry_hash(e);
        if (!check_apply(c, n, e, h))
            return;
        n->applied = e->index;
        n->sm_hash = chain_step(n->sm_hash, h);
    }
    if (rd->n_committed)
        trace_event(c, n->id, EV_APPLY, rd->committed[0].index, n->applied, rd->commit, 0, 0);
}

static bool granted_vote(const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_msgs_after_persist; i++) {
        const struct raft_msg *m = &rd->msgs_after_persist[i];
        if (m->type == RAFT_MSG_REQUEST_VOTE_RESP && m->request_vote_resp.granted &&
            !m->request_vote_resp.pre_vote)
            return true;
    }
    return false;
}

void host_drain(struct cluster *c, struct cluster_node *n)
{
    n->dirty = false;
    if (!n->r)
        return;
    node_observe(c, n);
    for (int rounds = 0; raft_has_ready(n->r); rounds++) {
        if (rounds == 1000) {
            cluster_fail(c, n->id, "n%" PRIu64 " keeps reporting work after 1000 readies", n->id);
            return;
        }
        struct raft_ready rd;
        raft_ready(n->r, &rd);
        node_send(c, n, rd.msgs, rd.n_msgs);
        if (n->crash_at == CRASH_BEFORE_PERSIST) {
            host_crash(c, n, CRASH_BEFORE_PERSIST);
            return;
        }
        node_persist(c, n, &rd);
        if (n->crash_at == CRASH_AFTER_PERSIST) {
            host_crash(c, n, CRASH_AFTER_PERSIST);
            return;
        }
        node_send(c, n, rd.msgs_after_persist, rd.n_msgs_after_persist);
        if (granted_vote(&rd) && roll_permille(c, c->vote_crash_permille)) {
            host_crash(c, n, CRASH_AFTER_VOTE);
            return;
        }
        node_apply(c, n, &rd);
        check_reads(c, n, &rd);
        raft_advance(n->r, &rd);
        node_observe(c, n);
        snap_maybe_take(c, n);
    }
}

int host_start(struct cluster *c, struct cluster_node *n)
{
    struct raft_restore rs;
    int rc = n->st->ops->load(n->st, &rs);
    if (rc != RAFT_OK)
        return rc;
    check_restore(c, n, &rs);
    /* The state machine comes back from the host's latest snapshot, if any, and the
     * configuration with it. */
    rs.snapshot = n->snap.meta;
    rs.applied = n->snap.meta.index;
    if (rs.applied)
        snap_restore(c, n);
    raft_configuration_free(&rs.snapshot_conf);
    if (raft_configuration_copy(&rs.snapshot_conf, &n->snap_conf) != RAFT_OK)
        oom();
    struct raft_config cfg = c->cfg;
    cfg.id = n->id;
    if (n->joins)
        cfg.bootstrap = (struct raft_configuration){0};
    rc = raft_new(&cfg, &rs, &n->r);
    trace_event(c, n->id, EV_RESTART, rs.term, rs.vote, rs.n_entries, rc, 0);
    rk_storage_restore_free(&rs);
    if (rc != RAFT_OK) {
        n->r = NULL;
        cluster_fail(c, n->id, "raft_new refused the restored state of n%" PRIu64 ": %s", n->id,
                     raft_strerror(rc));
        return rc;
    }
    n->role = RAFT_FOLLOWER;
    n->term = raft_term_of(n->r);
    if (n->unelectable)
        raft_set_electable(n->r, false);
    host_drain(c, n);
    return RAFT_OK;
}

void host_receive(struct cluster *c, struct cluster_node *n, const struct raft_msg *m)
{
    /* The simulated network loses, delays and repeats messages but never corrupts one: a
     * message refused as malformed was sent malformed, by the core. */
    raft_term term = raft_term_of(n->r);
    raft_id vote = raft_vote_of(n->r);
    struct raft_stats before, after;
    raft_stats_of(n->r, &before);
    check_vote_asked(n, m);
    int rc = raft_step(n->r, m);
    raft_stats_of(n->r, &after);
    /* Raft dissertation §9.6: a pre-vote asks without disrupting anyone. */
    if (m->type == RAFT_MSG_REQUEST_VOTE && m->request_vote.pre_vote &&
        (raft_term_of(n->r) != term || raft_vote_of(n->r) != vote))
        cluster_fail(c, n->id,
                     "a pre-vote request from n%" PRIu64 " moved n%" PRIu64 " from term %" PRIu64
                     " vote %" PRIu64 " to term %" PRIu64 " vote %" PRIu64,
                     m->from, n->id, term, vote, raft_term_of(n->r), raft_vote_of(n->r));
    /* (An answer from a node no longer a member is dropped as unknown: not malformed.) */
    if (after.msgs_dropped_malformed != before.msgs_dropped_malformed || rc == RAFT_ERANGE)
        cluster_fail(c, n->id,
                     "n%" PRIu64 " refused a %s from n%" PRIu64 " of term %" PRIu64
                     " as malformed: %s",
                     n->id, raft_msg_type_name(m->type), m->from, m->term, raft_strerror(rc));
    node_observe(c, n); /* every leader is seen, even one that lasts a single step */
    if (roll_permille(c, c->batch_permille))
        n->dirty = true;
    else
        host_drain(c, n);
}

void host_drain_batched(struct cluster *c)
{
    for (size_t i = 1; i <= c->opts.n_nodes; i++)
        if (c->nodes[i].dirty)
            host_drain(c, &c->nodes[i]);
}
