/* The core's lifecycle, term rules, message dispatch and the ready/advance handshake. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "raft/core.h"

void raft_config_defaults(struct raft_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->election_ticks_min = 15;
    cfg->election_ticks_max = 30;
    cfg->heartbeat_ticks = 5;
    cfg->pre_vote = true;
    cfg->check_quorum = true;
    cfg->max_entries_per_msg = 64;
    cfg->max_bytes_per_msg = 1 << 20;
    cfg->max_inflight_msgs = 32;
    cfg->snapshot_chunk_bytes = 1 << 20;
    cfg->max_inflight_chunks = 4;
    cfg->max_entry_bytes = 8 << 20;
    cfg->promote_max_lag = 1000;
}

static bool config_is_valid(const struct raft_config *cfg)
{
    /* The node need not be in the bootstrap configuration: one joining a running cluster
     * starts with none. */
    if (cfg->id == 0 || !cfg->random || !raft_configuration_is_valid(&cfg->bootstrap))
        return false;
    if (cfg->election_ticks_min == 0 || cfg->election_ticks_max <= cfg->election_ticks_min ||
        cfg->heartbeat_ticks == 0 || cfg->heartbeat_ticks >= cfg->election_ticks_min)
        return false;
    if (cfg->max_entries_per_msg == 0 || cfg->max_inflight_msgs == 0 ||
        cfg->snapshot_chunk_bytes == 0 || cfg->max_inflight_chunks == 0)
        return false;
    return true;
}

/* The configuration entries of a restored log after the snapshot are in effect again. */
static int restore_configurations(struct raft *r)
{
    for (raft_index i = r->snapshot.index + 1; i <= raft__log_last_index(&r->log); i++) {
        const struct raft_entry *e = raft__log_entry_at(&r->log, i);
        if (e && e->type == RAFT_ENTRY_CONFIG) {
            int rv = raft__membership_on_append(r, e);
            if (rv != RAFT_OK)
                return rv == RAFT_EINVAL ? RAFT_ECORRUPT : rv;
        }
    }
    return RAFT_OK;
}

int raft_new(const struct raft_config *cfg, const struct raft_restore *restore, struct raft **out)
{
    if (!config_is_valid(cfg))
        return RAFT_EINVAL;
    struct raft *r = calloc(1, sizeof *r);
    if (!r)
        return RAFT_ENOMEM;
    r->cfg = *cfg;
    r->cfg.bootstrap = (struct raft_configuration){0}; /* the caller's: snap_conf holds it */
    bool restored_conf = restore && restore->snapshot_conf.n;
    if (restored_conf && !raft_configuration_is_valid(&restore->snapshot_conf)) {
        free(r);
        return RAFT_ECORRUPT;
    }
    if (restore)
        r->snapshot = restore->snapshot;
    int rv = raft__membership_init(r, restored_conf ? &restore->snapshot_conf : &cfg->bootstrap);
    if (rv == RAFT_OK)
        rv = raft__log_init(&r->log, restore);
    if (rv == RAFT_OK)
        rv = restore_configurations(r);
    /* The host persists a term before any entry or snapshot of it. */
    if (rv == RAFT_OK && restore &&
        (raft__log_last_term(&r->log) > restore->term || restore->snapshot_term > restore->term))
        rv = RAFT_ECORRUPT;
    if (rv != RAFT_OK) {
        raft_free(r);
        return rv;
    }
    if (restore) {
        r->term = r->persisted_term = restore->term;
        r->vote = r->persisted_vote = restore->vote;
        if (restore->stats)
            r->stats = *restore->stats;
    }
    r->role = r->reported_role = RAFT_FOLLOWER;
    r->reported_commit = r->log.commit;
    raft__core_reset_election_timer(r);
    *out = r;
    return RAFT_OK;
}

static void outbox_clear(struct outbox *box)
{
    for (size_t i = 0; i < box->n; i++)
        raft_msg_free(&box->msgs[i]);
    box->n = 0;
}

void raft_free(struct raft *r)
{
    if (!r)
        return;
    outbox_clear(&r->now);
    outbox_clear(&r->after_persist);
    free(r->now.msgs);
    free(r->after_persist.msgs);
    raft__snapshot_clear_chunks(r);
    free(r->chunks);
    free(r->reads);
    free(r->read_states);
    raft__log_free(&r->log);
    raft__membership_free(r);
    free(r);
}

size_t raft__core_quorum(const struct raft *r)
{
    return raft_configuration_voters(raft__membership_latest(r)) / 2 + 1;
}

int raft__core_send(struct raft *r, struct outbox *box, const struct raft_msg *msg)
{
    if (box->n == box->cap) {
        size_t cap = box->cap ? box->cap * 2 : 16;
        struct raft_msg *grown = realloc(box->msgs, cap * sizeof *grown);
        if (!grown)
            return RAFT_ENOMEM;
        box->msgs = grown;
        box->cap = cap;
    }
    int rv = raft_msg_copy(&box->msgs[box->n], msg);
    if (rv != RAFT_OK)
        return rv;
    box->msgs[box->n].from = r->cfg.id;
    box->msgs[box->n].term = msg->term ? msg->term : r->term;
    box->n++;
    return RAFT_OK;
}

void raft__core_drop_acks_from(struct raft *r, raft_index index)
{
    struct outbox *box = &r->after_persist;
    size_t kept = 0;
    for (size_t i = 0; i < box->n; i++) {
        const struct raft_msg *m = &box->msgs[i];
        /* An ack says "I store these entries": once they are replaced before being written,
         * sending it could let an older leader count us towards committing them. */
        if (m->type == RAFT_MSG_APPEND_RESP && m->append_resp.success &&
            m->append_resp.index >= index)
            raft_msg_free(&box->msgs[i]);
        else
            box->msgs[kept++] = box->msgs[i];
    }
    box->n = kept;
}

void raft__core_reset_election_timer(struct raft *r)
{
    unsigned span = r->cfg.election_ticks_max - r->cfg.election_ticks_min;
    r->election_elapsed = 0;
    r->election_timeout = r->cfg.election_ticks_min + r->cfg.random(r->cfg.random_arg, span);
}

void raft__core_become_follower(struct raft *r, raft_term term, raft_id leader)
{
    if (term > r->term) {
        r->term = term;
        r->vote = 0;
    }
    if (r->role == RAFT_LEADER) {
        raft__read_index_forget(r);
        r->transferee = 0; /* whoever leads next, the transfer is over */
    }
    r->role = RAFT_FOLLOWER;
    r->leader = leader;
    r->heartbeat_elapsed = 0;
    raft__core_reset_election_timer(r);
}

bool raft__core_follow(struct raft *r, const struct raft_msg *m)
{
    if (r->role == RAFT_LEADER) {
        r->stats.msgs_dropped_malformed++; /* two leaders in one term cannot happen */
        return false;
    }
    if (r->role != RAFT_FOLLOWER)
        raft__core_become_follower(r, m->term, m->from);
    r->leader = m->from;
    r->election_elapsed = 0;
    return true;
}

void raft_tick(struct raft *r)
{
    if (r->role == RAFT_LEADER) {
        raft__transfer_tick(r);
        raft__replication_tick(r);
    } else
        raft__election_tick(r);
}

void raft_campaign(struct raft *r)
{
    if (r->role != RAFT_LEADER && !r->unelectable && raft__election_can_campaign(r))
        raft__election_start(r, r->cfg.pre_vote, false);
}

void raft_set_electable(struct raft *r, bool electable)
{
    bool stop = r->unelectable != !electable && !electable && r->role != RAFT_FOLLOWER;
    r->unelectable = !electable;
    if (stop)
        raft__core_become_follower(r, r->term, r->role == RAFT_LEADER ? 0 : r->leader);
}

/* Rejects what no correct peer sends; the network and the codec are not trusted. */
static bool msg_is_well_formed(const struct raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_APPEND:
        if ((m->append.n_entries && !m->append.entries) ||
            (m->append.prev_index == 0 && m->append.prev_term != 0))
            return false;
        for (size_t i = 0; i < m->append.n_entries; i++) {
            const struct raft_entry *e = &m->append.entries[i];
            raft_term prev_term = i ? m->append.entries[i - 1].term : m->append.prev_term;
            if (e->index != m->append.prev_index + 1 + i || e->term < prev_term ||
                e->term > m->term || (e->len && !e->data) || e->type > RAFT_ENTRY_CONFIG)
                return false;
            /* Every node would follow it at once (§4.1): it must be a configuration. */
            if (e->type == RAFT_ENTRY_CONFIG && !raft__configuration_is_encoding(e->data, e->len))
                return false;
        }
        return true;
    case RAFT_MSG_INSTALL_SNAPSHOT:
        /* A snapshot is of at least one entry, and entries have terms from 1 on. */
        return m->install_snapshot.last_index > 0 && m->install_snapshot.last_term > 0 &&
               m->install_snapshot.last_term <= m->term &&
               (m->install_snapshot.len == 0 || m->install_snapshot.data) &&
               raft_configuration_is_valid(&m->install_snapshot.conf);
    case RAFT_MSG_TIMEOUT_NOW:
    case RAFT_MSG_REQUEST_VOTE:
    case RAFT_MSG_REQUEST_VOTE_RESP:
    case RAFT_MSG_APPEND_RESP:
    case RAFT_MSG_INSTALL_SNAPSHOT_RESP:
        return true;
    }
    return false;
}

static bool is_vote_request(const struct raft_msg *m)
{
    return m->type == RAFT_MSG_REQUEST_VOTE;
}

/* A node that heard from a live leader within the minimum election timeout does not let a
 * candidate disrupt it (Raft dissertation §4.2.3; etcd's check-quorum lease). */
static bool in_leader_lease(const struct raft *r)
{
    return r->cfg.check_quorum && r->leader != 0 && r->election_elapsed < r->cfg.election_ticks_min;
}

/* Raft §5.1: terms order everything; returns false when m must go no further. */
static bool step_term(struct raft *r, const struct raft_msg *m)
{
    if (m->term > r->term) {
        /* etcd's campaignTransfer: a campaign the leader asked for breaks its own lease. */
        if (is_vote_request(m) && !m->request_vote.transfer && in_leader_lease(r))
            return false;
        bool pre_vote_req = is_vote_request(m) && m->request_vote.pre_vote;
        bool pre_vote_granted = m->type == RAFT_MSG_REQUEST_VOTE_RESP &&
                                m->request_vote_resp.pre_vote && m->request_vote_resp.granted;
        /* A pre-vote is about a future term: it must not change ours. */
        bool from_leader = m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_INSTALL_SNAPSHOT;
        if (!pre_vote_req && !pre_vote_granted)
            raft__core_become_follower(r, m->term, from_leader ? m->from : 0);
        return true;
    }
    if (m->term < r->term) {
        r->stats.msgs_dropped_stale_term++;
        if (m->type == RAFT_MSG_APPEND) {
            /* Tell a stale leader about the newer term so it steps down (with pre-vote it
             * would otherwise never learn it from a partitioned-and-healed follower). */
            struct raft_msg resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from};
            resp.append_resp.index = m->append.prev_index;
            resp.append_resp.last_index = raft__log_last_index(&r->log);
            raft__core_send(r, &r->after_persist, &resp);
        } else if (m->type == RAFT_MSG_INSTALL_SNAPSHOT) {
            struct raft_msg resp = {.type = RAFT_MSG_INSTALL_SNAPSHOT_RESP, .to = m->from};
            resp.install_snapshot_resp.last_index = m->install_snapshot.last_index;
            resp.install_snapshot_resp.rejected = true;
            raft__core_send(r, &r->after_persist, &resp);
        } else if (is_vote_request(m) && m->request_vote.pre_vote) {
            struct raft_msg resp = {.type = RAFT_MSG_REQUEST_VOTE_RESP, .to = m->from};
            resp.request_vote_resp.pre_vote = true;
            raft__core_send(r, &r->after_persist, &resp);
        }
        return false;
    }
    return true;
}

static bool is_response(const struct raft_msg *m)
{
    return m->type == RAFT_MSG_REQUEST_VOTE_RESP || m->type == RAFT_MSG_APPEND_RESP ||
           m->type == RAFT_MSG_INSTALL_SNAPSHOT_RESP;
}

int raft_step(struct raft *r, const struct raft_msg *m)
{
    /* Requests come from anyone: a lagging node must follow a leader, and vote for a
     * candidate, that joined after the configuration it knows (§4.1). Answers come only
     * from members: the leader keeps state for those alone. */
    if (m->from == 0 || m->to != r->cfg.id || m->from == r->cfg.id ||
        (is_response(m) && raft__membership_slot(r, m->from) < 0)) {
        r->stats.msgs_dropped_unknown_peer++;
        return RAFT_EINVAL;
    }
    if (!msg_is_well_formed(m)) {
        r->stats.msgs_dropped_malformed++;
        return RAFT_EINVAL;
    }
    if (m->term > RAFT_MAX_TERM || (m->term > r->term && m->term - r->term > RAFT_MAX_TERM_STEP)) {
        r->stats.msgs_dropped_malformed++;
        return RAFT_ERANGE;
    }
    if (!step_term(r, m))
        return RAFT_OK;
    switch (m->type) {
    case RAFT_MSG_REQUEST_VOTE:
        return raft__election_on_request_vote(r, m);
    case RAFT_MSG_REQUEST_VOTE_RESP:
        return raft__election_on_request_vote_resp(r, m);
    case RAFT_MSG_APPEND:
        return raft__replication_on_append(r, m);
    case RAFT_MSG_APPEND_RESP:
        return raft__replication_on_append_resp(r, m);
    case RAFT_MSG_INSTALL_SNAPSHOT:
        return raft__snapshot_on_install(r, m);
    case RAFT_MSG_INSTALL_SNAPSHOT_RESP:
        return raft__snapshot_on_install_resp(r, m);
    case RAFT_MSG_TIMEOUT_NOW:
        return raft__transfer_on_timeout_now(r, m);
    }
    return RAFT_OK;
}

int raft_propose(struct raft *r, const void *data, size_t len, raft_index *index, raft_term *term)
{
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    if (len > r->cfg.max_entry_bytes)
        return RAFT_ETOOBIG;
    if (r->transferee)
        return RAFT_EBUSY; /* §3.10: the target must catch up with a log that stands still */
    raft_index at;
    int rv = raft__replication_propose(r, RAFT_ENTRY_NORMAL, data, len, &at);
    if (rv != RAFT_OK)
        return rv;
    if (index)
        *index = at;
    if (term)
        *term = r->term;
    return RAFT_OK;
}

/* Applied entries must be durable here: a state machine ahead of the local log could not
 * be rebuilt after a crash. */
static raft_index applicable_index(const struct raft *r)
{
    return r->log.commit < r->log.stable ? r->log.commit : r->log.stable;
}

bool raft_has_ready(const struct raft *r)
{
    return r->term != r->persisted_term || r->vote != r->persisted_vote || r->log.truncate_from ||
           r->n_chunks || r->install_pending || r->n_read_states ||
           r->log.stable < raft__log_last_index(&r->log) || r->now.n || r->after_persist.n ||
           r->replicate_pending || r->log.applied < applicable_index(r) ||
           r->role != r->reported_role || r->leader != r->reported_leader ||
           r->log.commit != r->reported_commit || r->conf_generation != r->reported_conf_generation;
}

static const struct raft_entry *log_slice(const struct raft_log *l, raft_index from, raft_index to,
                                          size_t *n)
{
    *n = to >= from ? (size_t)(to - from + 1) : 0;
    return *n ? raft__log_entry_at(l, from) : NULL;
}

void raft_ready(struct raft *r, struct raft_ready *rd)
{
    if (r->replicate_pending)
        raft__replication_flush(r);
    memset(rd, 0, sizeof *rd);
    rd->hard_state_changed = r->term != r->persisted_term || r->vote != r->persisted_vote;
    rd->term = r->term;
    rd->vote = r->vote;
    rd->snapshot_chunks = r->chunks;
    rd->n_snapshot_chunks = r->n_chunks;
    rd->install_snapshot = r->install_pending;
    rd->snapshot = r->snapshot;
    rd->snapshot_conf = r->install_pending ? &r->snap_conf : NULL;
    rd->truncate_from = r->log.truncate_from;
    rd->entries =
        log_slice(&r->log, r->log.stable + 1, raft__log_last_index(&r->log), &rd->n_entries);
    rd->msgs = r->now.msgs;
    rd->n_msgs = r->now.n;
    rd->msgs_after_persist = r->after_persist.msgs;
    rd->n_msgs_after_persist = r->after_persist.n;
    rd->read_states = r->read_states;
    rd->n_read_states = r->n_read_states;
    rd->committed = log_slice(&r->log, r->log.applied + 1, applicable_index(r), &rd->n_committed);
    rd->configuration = raft_configuration_of(r, &rd->configuration_index);
    rd->configuration_changed = r->conf_generation != r->reported_conf_generation;
    rd->soft_state_changed = r->role != r->reported_role || r->leader != r->reported_leader ||
                             r->log.commit != r->reported_commit;
    rd->role = r->role;
    rd->leader = r->leader;
    rd->commit = r->log.commit;
}

void raft_advance(struct raft *r, const struct raft_ready *rd)
{
    r->persisted_term = rd->term;
    r->persisted_vote = rd->vote;
    r->log.truncate_from = 0;
    if (rd->n_entries)
        r->log.stable = rd->entries[rd->n_entries - 1].index;
    if (rd->n_committed)
        r->log.applied = rd->committed[rd->n_committed - 1].index;
    /* Only what is held is durable, and only what is committed and durable is applied. */
    assert(r->log.stable <= raft__log_last_index(&r->log));
    assert(r->log.applied <= r->log.commit && r->log.applied <= r->log.stable);
    r->reported_role = rd->role;
    r->reported_leader = rd->leader;
    r->reported_commit = rd->commit;
    r->reported_conf_generation = r->conf_generation; /* nothing ran since raft_ready */
    outbox_clear(&r->now);
    outbox_clear(&r->after_persist);
    raft__snapshot_clear_chunks(r);
    r->install_pending = false;
    r->n_read_states = 0;
    /* The leader counts itself towards a quorum only once its own write is durable
     * (Raft dissertation §10.2.1). */
    if (r->role == RAFT_LEADER && rd->n_entries)
        raft__replication_maybe_commit(r);
}

raft_id raft_id_of(const struct raft *r)
{
    return r->cfg.id;
}

enum raft_role raft_role_of(const struct raft *r)
{
    return r->role;
}

raft_term raft_term_of(const struct raft *r)
{
    return r->term;
}

raft_id raft_vote_of(const struct raft *r)
{
    return r->vote;
}

raft_id raft_leader_of(const struct raft *r)
{
    return r->leader;
}

raft_index raft_commit_of(const struct raft *r)
{
    return r->log.commit;
}

raft_index raft_applied_of(const struct raft *r)
{
    return r->log.applied;
}

raft_index raft_last_index_of(const struct raft *r)
{
    return raft__log_last_index(&r->log);
}

raft_index raft_first_index_of(const struct raft *r)
{
    return r->log.snapshot_index + 1;
}

raft_term raft_term_at(const struct raft *r, raft_index index)
{
    return raft__log_term_at(&r->log, index);
}

const struct raft_entry *raft_entry_at(const struct raft *r, raft_index index)
{
    return raft__log_entry_at(&r->log, index);
}

void raft_stats_of(const struct raft *r, struct raft_stats *out)
{
    *out = r->stats;
}
