/* Internal state of the Raft core, shared by its files; nothing here is public.
 * Functions shared between the files are named raft__<file>_<verb> (canonical/raft's
 * module__verb): the double underscore keeps them apart from the public raft_* API, and
 * the module part names the file that defines them. Everything else is static. */
#ifndef RAFTKV_RAFT_CORE_H
#define RAFTKV_RAFT_CORE_H

#include "raftkv/raft.h"

/* The log held in memory: everything after the snapshot. */
struct raft_log {
    raft_index snapshot_index;
    raft_term snapshot_term;
    struct raft_entry *entries; /* entries[i].index == snapshot_index + 1 + i */
    size_t n;
    size_t cap;
    raft_index stable;        /* last index the host has made durable */
    raft_index truncate_from; /* durable entries from here on must be deleted (0: none) */
    raft_index commit;
    raft_index applied;
};

int raft__log_init(struct raft_log *l, const struct raft_restore *restore);
void raft__log_free(struct raft_log *l);
raft_index raft__log_last_index(const struct raft_log *l);
raft_term raft__log_last_term(const struct raft_log *l);
/* 0 when index is neither in the log nor the snapshot point. */
raft_term raft__log_term_at(const struct raft_log *l, raft_index index);
const struct raft_entry *raft__log_entry_at(const struct raft_log *l, raft_index index);
/* Appends a copy of e (e->index must be last + 1). */
int raft__log_append(struct raft_log *l, const struct raft_entry *e);
/* Deletes entries from index on, remembering a truncation of durable ones for the host. */
void raft__log_truncate(struct raft_log *l, raft_index index);
/* Drops the entries up to index (durable, applied ones) from memory. */
void raft__log_compact(struct raft_log *l, raft_index index);
/* Empties the log and restarts it after (index, term), the point of an installed snapshot,
 * which also becomes the commit and applied index. */
void raft__log_reset(struct raft_log *l, raft_index index, raft_term term);
/* Raft §5.4.1: a log ending in (last_index, last_term) is at least as up-to-date as ours. */
bool raft__log_is_up_to_date(const struct raft_log *l, raft_index last_index, raft_term last_term);
/* The first index of the run of entries with the same term as the entry at index. */
raft_index raft__log_first_index_of_term_run(const struct raft_log *l, raft_index index);
/* The largest index <= from whose term is term, or 0. */
raft_index raft__log_last_index_of_term(const struct raft_log *l, raft_term term, raft_index from);

enum progress_state {
    PROGRESS_PROBE,     /* next is a guess: one AppendEntries at a time until it matches */
    PROGRESS_REPLICATE, /* next is known good: stream up to max_inflight_msgs at once */
    PROGRESS_SNAPSHOT,  /* the entries it needs are compacted: sending the snapshot */
};

/* A snapshot on its way to one follower, in chunks. */
struct snapshot_transfer {
    struct raft_snapshot_meta meta;
    uint64_t sent;  /* offset of the next chunk to send */
    uint64_t acked; /* bytes the follower holds */
    uint64_t acked_at_heartbeat;
    size_t inflight; /* chunks sent and not yet answered */
    bool done_sent;  /* the last chunk is out */
    bool stalled;    /* no progress for a heartbeat round: the follower may have restarted */
};

/* The leader's view of one follower (etcd's Progress). */
struct progress {
    raft_id id;
    raft_index match;
    raft_index next;
    enum progress_state state;
    bool probe_sent;    /* probe: an AppendEntries is out; wait for its answer or a heartbeat */
    bool recent_active; /* heard from since the last check-quorum round */
    raft_index match_at_heartbeat; /* match at the previous heartbeat, to detect lost appends */
    uint64_t round_sent;           /* latest ReadIndex round sent to this follower */
    uint64_t round_acked;          /* latest ReadIndex round it answered */
    struct snapshot_transfer snap; /* in PROGRESS_SNAPSHOT */
    raft_index *inflight;          /* ring of the last index of each AppendEntries in flight */
    size_t inflight_start;
    size_t inflight_count;
    size_t inflight_cap;
};

/* inflight is a ring of max_inflight slots the caller owns. */
void raft__progress_init(struct progress *pr, raft_id id, raft_index *inflight,
                         size_t max_inflight);
void raft__progress_reset(struct progress *pr, raft_index last_index);
void raft__progress_become_probe(struct progress *pr, raft_index next);
void raft__progress_become_replicate(struct progress *pr);
bool raft__progress_is_paused(const struct progress *pr);
void raft__progress_on_sent(struct progress *pr, raft_index last_sent);
/* Records an acknowledgement of everything up to index; returns whether match moved. */
bool raft__progress_on_ack(struct progress *pr, raft_index index);

/* A list of outgoing messages, each owning deep copies of what it carries. */
struct outbox {
    struct raft_msg *msgs;
    size_t n;
    size_t cap;
};

/* A read waiting for its leadership round to be confirmed by a quorum. */
struct pending_read {
    uint64_t ctx;
    raft_index index; /* 0 until the leader has committed an entry of its term */
    uint64_t round;
};

enum vote_state { VOTE_UNKNOWN = 0, VOTE_GRANTED, VOTE_REJECTED };

/* A configuration entry of the log after the snapshot, decoded. */
struct conf_entry {
    raft_index index;
    struct raft_configuration conf;
};

struct raft {
    struct raft_config cfg; /* cfg.bootstrap is not kept: see snap_conf */

    /* Raft dissertation §4.1: "a server always uses the latest configuration in its log,
     * regardless of whether the entry is committed". The configuration at the snapshot's
     * index, then those of the entries after it, which a truncation can still remove. */
    struct raft_configuration snap_conf;
    struct conf_entry *confs;
    size_t n_confs;
    size_t cap_confs;
    uint64_t conf_generation;          /* counts changes of the latest configuration */
    uint64_t reported_conf_generation; /* the one the last ready reported */

    raft_term term;
    raft_id vote;
    raft_id leader;
    enum raft_role role;
    struct raft_log log;

    /* Per member of the latest configuration, in its order (progress is used only by a
     * leader, votes during an election). Sized for RAFT_MAX_MEMBERS so that following a
     * new configuration never fails; each progress's inflight ring points into
     * inflight_rings. */
    struct progress progress[RAFT_MAX_MEMBERS];
    enum vote_state votes[RAFT_MAX_MEMBERS];
    raft_index *inflight_rings;
    raft_id transferee;        /* leadership transfer under way to it (0: none) */
    unsigned transfer_elapsed; /* ticks since it began */
    bool replicate_pending;    /* new entries or acknowledgements: send at the next ready */
    bool unelectable;          /* raft_set_electable(false): campaigns only late */

    unsigned election_elapsed;
    unsigned heartbeat_elapsed;
    unsigned election_timeout; /* randomized, in [election_ticks_min, election_ticks_max) */

    /* What the host has made durable, to tell what the next ready must persist. */
    raft_term persisted_term;
    raft_id persisted_vote;
    /* Soft state last reported in a ready. */
    enum raft_role reported_role;
    raft_id reported_leader;
    raft_index reported_commit;

    struct raft_snapshot_meta snapshot; /* the latest snapshot the host holds */
    /* Follower: the snapshot being received, and what this batch received of it. */
    struct raft_snapshot_meta incoming; /* size = bytes received so far */
    raft_id incoming_from;              /* the leader sending it ... */
    raft_term incoming_msg_term;        /* ... and in which term */
    struct raft_snapshot_chunk *chunks; /* data owned */
    size_t n_chunks;
    size_t cap_chunks;
    bool install_pending;

    /* ReadIndex: every AppendEntries carries the current round; a read is confirmed once
     * a quorum has answered a round at least as new as its own. */
    uint64_t read_round;
    struct pending_read *reads;
    size_t n_reads;
    size_t cap_reads;
    struct raft_read_state *read_states; /* confirmed, for the next ready */
    size_t n_read_states;
    size_t cap_read_states;

    struct outbox now;           /* may leave before the ready's write is durable */
    struct outbox after_persist; /* acknowledge durable state */

    struct raft_stats stats;
};

/* core.c */
/* A majority of the voters of the latest configuration. */
size_t raft__core_quorum(const struct raft *r);
int raft__core_send(struct raft *r, struct outbox *box, const struct raft_msg *msg);
void raft__core_become_follower(struct raft *r, raft_term term, raft_id leader);
/* Takes m (AppendEntries or InstallSnapshot of our term) as from the leader; false when
 * we lead this term ourselves. */
bool raft__core_follow(struct raft *r, const struct raft_msg *m);
/* Withdraws queued acknowledgements of entries from index on, which were just replaced. */
void raft__core_drop_acks_from(struct raft *r, raft_index index);
void raft__core_reset_election_timer(struct raft *r);

/* configuration.c */
/* Whether buf holds a valid encoded configuration (raft_configuration_decode would take it). */
bool raft__configuration_is_encoding(const uint8_t *buf, size_t len);

/* membership.c */
int raft__membership_init(struct raft *r, const struct raft_configuration *snap_conf);
void raft__membership_free(struct raft *r);
const struct raft_configuration *raft__membership_latest(const struct raft *r);
/* The slot of a member of the latest configuration in progress/votes, or -1. */
int raft__membership_slot(const struct raft *r, raft_id id);
bool raft__membership_is_voter(const struct raft *r, raft_id id);
/* Follows a configuration entry just appended to the log (RAFT_ENTRY_CONFIG only). */
int raft__membership_on_append(struct raft *r, const struct raft_entry *e);
/* Forgets the configuration entries from index on, which the log just dropped. */
void raft__membership_on_truncate(struct raft *r, raft_index index);
/* Takes conf (copied) as the configuration at the snapshot just installed. */
int raft__membership_on_install(struct raft *r, const struct raft_configuration *conf);
/* Folds the configuration entries up to index into the snapshot's configuration. */
int raft__membership_on_compact(struct raft *r, raft_index index);
/* A leader that is no voter of its committed latest configuration steps down (§4.2.2). */
void raft__membership_on_commit(struct raft *r);

/* transfer.c */
void raft__transfer_tick(struct raft *r);
/* The follower pr's match just moved: a target now up to date is told to campaign. */
void raft__transfer_on_match(struct raft *r, const struct progress *pr);
void raft__transfer_send_timeout_now(struct raft *r, raft_id to);
int raft__transfer_on_timeout_now(struct raft *r, const struct raft_msg *m);

/* election.c */
/* transfer: the campaign follows a TimeoutNow (never with pre_vote). */
void raft__election_start(struct raft *r, bool pre_vote, bool transfer);
/* Whether this node may campaign: a voter of its latest configuration. */
bool raft__election_can_campaign(const struct raft *r);
int raft__election_on_request_vote(struct raft *r, const struct raft_msg *m);
int raft__election_on_request_vote_resp(struct raft *r, const struct raft_msg *m);
void raft__election_tick(struct raft *r);

/* snapshot.c */
void raft__snapshot_start_transfer(struct raft *r, struct progress *pr);
void raft__snapshot_send_chunks(struct raft *r, struct progress *pr);
void raft__snapshot_on_heartbeat(struct progress *pr);
int raft__snapshot_on_install(struct raft *r, const struct raft_msg *m);
int raft__snapshot_on_install_resp(struct raft *r, const struct raft_msg *m);
void raft__snapshot_clear_chunks(struct raft *r);

/* read_index.c */
void raft__read_index_on_commit(struct raft *r);
void raft__read_index_confirm(struct raft *r);
void raft__read_index_forget(struct raft *r);

/* replication.c */
int raft__replication_become_leader(struct raft *r);
int raft__replication_on_append(struct raft *r, const struct raft_msg *m);
int raft__replication_on_append_resp(struct raft *r, const struct raft_msg *m);
void raft__replication_tick(struct raft *r);
void raft__replication_flush(struct raft *r);
void raft__replication_maybe_commit(struct raft *r);
int raft__replication_propose(struct raft *r, enum raft_entry_type type, const void *data,
                              size_t len, raft_index *index);

#endif
