/*
 * raftkv Raft core: a deterministic state machine with no I/O, threads, clock, randomness
 * source or globals of its own.
 *
 * The host drives it:
 *
 *     raft_tick(r)               once per tick of its clock
 *     raft_step(r, &msg)         for every message received from a peer
 *     raft_propose(r, ...)       for every client command (leader only)
 *
 * and between those calls collects the work they produced:
 *
 *     if (raft_has_ready(r)) {
 *         struct raft_ready rd;
 *         raft_ready(r, &rd);
 *         send rd.msgs                            (may leave before the write below)
 *         durably write rd.term/vote, truncate at rd.truncate_from, append rd.entries
 *         send rd.msgs_after_persist              (only once that write is durable)
 *         apply rd.committed                      (in order)
 *         raft_advance(r, &rd);
 *     }
 *
 * Everything a raft_ready points to belongs to the core and stays valid until raft_advance;
 * no other raft_* call may be made on the same core in between, except raft_ready again
 * (it returns the same work, e.g. for a host retrying a failed write). A ready with nothing
 * to persist (no hard state change, no truncation, no entries) lets msgs_after_persist go
 * out at once.
 *
 * Every function that can fail returns an enum raft_err (RAFT_OK = 0).
 */
#ifndef RAFTKV_RAFT_H
#define RAFTKV_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftkv/api.h"

typedef uint64_t raft_id;    /* node id; 0 means "none" */
typedef uint64_t raft_term;  /* 0 is the term before any election */
typedef uint64_t raft_index; /* log index; the first entry has index 1 */

enum raft_err {
    RAFT_OK = 0,
    RAFT_ENOMEM,     /* allocation failed; the core is unchanged */
    RAFT_EINVAL,     /* bad argument or configuration */
    RAFT_ENOTLEADER, /* a proposal reached a node that is not the leader */
    RAFT_ETOOBIG,    /* a proposal larger than the configured maximum */
    RAFT_ECORRUPT,   /* restored state is inconsistent (e.g. a gap in the log) */
    RAFT_ERANGE,     /* a message's term is out of range (RAFT_MAX_TERM, RAFT_MAX_TERM_STEP) */
    /* A message contradicts what the node knows for certain: it would rewrite committed
     * entries, comes from a second leader of the node's own term, or acknowledges entries
     * or a heartbeat round the node never sent. Forged, or a peer's bug: the host should
     * say so with the sender. Dropped and counted as malformed. */
    RAFT_ECONFLICT,
    /* A membership change or leadership transfer is refused for now: another change is not
     * committed yet, the leader has not committed an entry of its own term yet (Raft
     * dissertation §4.1, with the fix of raft-dev, 2015), or a leadership transfer is under
     * way (proposals wait for its outcome). Retry later. */
    RAFT_EBUSY,
    RAFT_EEXIST,    /* a member with this id exists (add), or it is a voter already (promote) */
    RAFT_ENOTFOUND, /* no member with this id */
    /* The learner is further behind the leader's log than promote_max_lag entries: a voter
     * that far behind would stall commits until it caught up. */
    RAFT_EBEHIND,
};

/* A message whose term is above RAFT_MAX_TERM, or more than RAFT_MAX_TERM_STEP above the
 * node's own, is dropped as malformed (raft_step returns RAFT_ERANGE): a node would adopt
 * and store such a term for good, and a term near 2^64 would wrap at the next election. A
 * correct cluster reaches neither bound: RAFT_MAX_TERM_STEP is 2^32 elections, over 20
 * years at one every 150 ms. A node whose term reached RAFT_MAX_TERM no longer campaigns. */
#define RAFT_MAX_TERM (UINT64_C(1) << 62)
#define RAFT_MAX_TERM_STEP (UINT64_C(1) << 32)

/* A short, static description of an error code. */
RAFTKV_API const char *raft_strerror(int err);

enum raft_role {
    RAFT_FOLLOWER,
    RAFT_PRE_CANDIDATE, /* running a pre-vote (Raft dissertation §9.6): term not yet raised */
    RAFT_CANDIDATE,
    RAFT_LEADER,
};

RAFTKV_API const char *raft_role_name(enum raft_role role);

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 0,
    RAFT_ENTRY_NOOP = 1, /* appended by each new leader (Raft §8) so it can commit its term */
    /* A configuration (raft_configuration_encode): the whole membership from its index on. */
    RAFT_ENTRY_CONFIG = 2,
};

/* ---- Membership (Raft dissertation chapter 4) ----
 *
 * A configuration lists every member: voters, which elect leaders and count towards every
 * quorum, and learners, which receive the log and snapshots but never vote and never count.
 * It changes one server at a time by configuration entries in the log, and every node uses
 * the latest configuration in its log, committed or not (§4.1): a configuration entry that
 * is truncated away rolls the node back to the one before. Snapshots carry the
 * configuration at their index. Each member's addresses are opaque to the core: the host
 * uses them to reach it. */
enum raft_member_role {
    RAFT_VOTER = 0,
    RAFT_LEARNER = 1,
};

RAFTKV_API const char *raft_member_role_name(enum raft_member_role role);

#define RAFT_MAX_ADDRESS 255 /* bytes of an address, at most */
#define RAFT_MAX_MEMBERS 64  /* members of a configuration, at most */

struct raft_member {
    raft_id id;
    enum raft_member_role role;
    char *peer_address;   /* NUL-terminated; "" when unknown */
    char *client_address; /* NUL-terminated; "" when unknown */
};

struct raft_configuration {
    size_t n;
    struct raft_member *members; /* distinct ids, none 0 */
};

/* Deep-copies src into dst (whose previous contents are not freed). */
RAFTKV_API int raft_configuration_copy(struct raft_configuration *dst,
                                       const struct raft_configuration *src);
/* Frees what the configuration holds (not conf itself) and empties it. */
RAFTKV_API void raft_configuration_free(struct raft_configuration *conf);
/* The member with this id, or NULL. */
RAFTKV_API const struct raft_member *raft_configuration_find(const struct raft_configuration *conf,
                                                             raft_id id);
/* Whether a and b list the same members (ids, roles, addresses) in the same order. */
RAFTKV_API bool raft_configuration_equal(const struct raft_configuration *a,
                                         const struct raft_configuration *b);
/* How many of conf's members are voters. */
RAFTKV_API size_t raft_configuration_voters(const struct raft_configuration *conf);
/* Whether conf is one the core accepts: at most RAFT_MAX_MEMBERS members, distinct nonzero
 * ids, addresses of at most RAFT_MAX_ADDRESS bytes, known roles. An empty configuration is
 * valid (a node that joins an existing cluster knows no members yet). */
RAFTKV_API bool raft_configuration_is_valid(const struct raft_configuration *conf);
/* The bytes of a configuration entry, in a format of the core's own (versioned): *buf is
 * allocated (free it). The host also uses them to keep a snapshot's configuration. */
RAFTKV_API int raft_configuration_encode(const struct raft_configuration *conf, uint8_t **buf,
                                         size_t *len);
/* The inverse: RAFT_EINVAL for bytes that are not a valid encoded configuration. */
RAFTKV_API int raft_configuration_decode(const uint8_t *buf, size_t len,
                                         struct raft_configuration *conf);

struct raft_entry {
    raft_term term;
    raft_index index;
    enum raft_entry_type type;
    size_t len;
    uint8_t *data; /* len bytes; NULL when len == 0 */
};

enum raft_msg_type {
    RAFT_MSG_REQUEST_VOTE,
    RAFT_MSG_REQUEST_VOTE_RESP,
    RAFT_MSG_APPEND,
    RAFT_MSG_APPEND_RESP,
    RAFT_MSG_INSTALL_SNAPSHOT,
    RAFT_MSG_INSTALL_SNAPSHOT_RESP,
    /* From a leader transferring its leadership (Raft dissertation §3.10): campaign now. */
    RAFT_MSG_TIMEOUT_NOW,
};
/* The number of types, for tables indexed by type: TIMEOUT_NOW stays the last. */
#define RAFT_MSG_TYPE_COUNT (RAFT_MSG_TIMEOUT_NOW + 1)

RAFTKV_API const char *raft_msg_type_name(enum raft_msg_type type);

struct raft_request_vote {
    raft_index last_log_index;
    raft_term last_log_term;
    bool pre_vote; /* msg.term is then the term the sender would campaign in */
    /* The campaign follows a TimeoutNow: the leader itself asked for it, so voters grant
     * it although they heard from that leader recently (no leader lease). */
    bool transfer;
};

struct raft_request_vote_resp {
    bool granted;
    bool pre_vote;
};

/* An AppendEntries; with no entries it is a heartbeat. */
struct raft_append {
    raft_index prev_index;
    raft_term prev_term;
    raft_index commit;
    uint64_t context; /* echoed in the response (ReadIndex rounds) */
    size_t n_entries;
    struct raft_entry *entries;
};

struct raft_append_resp {
    bool success;
    raft_index index; /* success: last index matched; rejection: the rejected prev_index */
    /* Fast back-tracking hint on rejection (Raft §5.3): the follower's term at prev_index
     * (0 if its log is too short) and the first index it holds of that term (or its last
     * index + 1 when its log is too short). */
    raft_term conflict_term;
    raft_index conflict_index;
    raft_index last_index; /* the follower's last log index */
    uint64_t context;      /* the request's */
};

struct raft_install_snapshot {
    raft_index last_index;
    raft_term last_term;
    struct raft_configuration conf; /* the configuration at last_index */
    uint64_t offset;
    size_t len;
    uint8_t *data;
    bool done;
};

struct raft_install_snapshot_resp {
    raft_index last_index;
    uint64_t offset;
    bool done;
    bool rejected;
};

struct raft_msg {
    enum raft_msg_type type;
    raft_id from;
    raft_id to;
    raft_term term;
    union {
        struct raft_request_vote request_vote;
        struct raft_request_vote_resp request_vote_resp;
        struct raft_append append;
        struct raft_append_resp append_resp;
        struct raft_install_snapshot install_snapshot;
        struct raft_install_snapshot_resp install_snapshot_resp;
    };
};

/* Deep-copies src (entries, data, configuration) into dst. Free the copy with raft_msg_free. */
RAFTKV_API int raft_msg_copy(struct raft_msg *dst, const struct raft_msg *src);
/* Frees what raft_msg_copy allocated inside msg (not msg itself). */
RAFTKV_API void raft_msg_free(struct raft_msg *msg);

/* Supplies randomness to the core (randomized election timeouts). Must return a value in
 * [0, bound). The host decides where it comes from: a seeded PRNG in tests, any source in
 * production. */
typedef uint32_t (*raft_random_fn)(void *arg, uint32_t bound);

struct raft_config {
    raft_id id;
    /* The membership of a new cluster (every member, this node included; copied), used
     * until the log or a snapshot holds a configuration. Empty (n == 0) for a node that
     * joins a running cluster: it waits for a leader to send it the log, and campaigns
     * only once a configuration names it a voter. */
    struct raft_configuration bootstrap;

    /* Timing, in ticks. Election timeouts are drawn uniformly from [min, max). */
    unsigned election_ticks_min; /* default 15 */
    unsigned election_ticks_max; /* default 30 */
    unsigned heartbeat_ticks;    /* default 5 */

    bool pre_vote;     /* Raft dissertation §9.6; default true */
    bool check_quorum; /* a leader steps down without a quorum for an election timeout;
                          default true */

    size_t max_entries_per_msg;  /* default 64 */
    size_t max_bytes_per_msg;    /* default 1 MiB; at least one entry is always sent */
    size_t max_inflight_msgs;    /* AppendEntries in flight per follower; default 32 */
    size_t snapshot_chunk_bytes; /* InstallSnapshot chunk size; default 1 MiB */
    size_t max_inflight_chunks;  /* InstallSnapshot chunks in flight per follower; default 4 */
    size_t max_entry_bytes;      /* largest proposal; default 8 MiB */
    /* A learner is promoted only when its log is at most this many entries behind the
     * leader's last index (RAFT_EBEHIND otherwise); default 1000. */
    raft_index promote_max_lag;

    raft_random_fn random;
    void *random_arg;
};

/* Fills cfg with the defaults above (id, bootstrap and random left unset). */
RAFTKV_API void raft_config_defaults(struct raft_config *cfg);

/* A snapshot of the state machine: its state after applying every entry up to index. The
 * host holds its bytes (size of them) and can read any range of them. */
struct raft_snapshot_meta {
    raft_index index; /* 0: no snapshot */
    raft_term term;   /* term of the entry at index */
    uint64_t size;
};

struct raft_stats;

/* What a node recovered from stable storage at start. */
struct raft_restore {
    raft_term term;
    raft_id vote;
    /* Entries up to here were compacted away; they live in the snapshot (0 if none). */
    raft_index snapshot_index;
    raft_term snapshot_term;
    struct raft_snapshot_meta snapshot; /* the latest snapshot, index >= snapshot_index */
    /* The configuration at snapshot.index, as raft_configuration_at gave it when the
     * snapshot was taken or ready.snapshot_conf when it was installed; empty: the
     * bootstrap configuration (raft_config) is used. */
    struct raft_configuration snapshot_conf;
    raft_index applied; /* last index the state machine has applied */
    size_t n_entries;
    const struct raft_entry *entries; /* contiguous, starting at snapshot_index + 1; copied */
    /* Counters to go on from (NULL: zero): a host that starts a new core within one
     * process keeps them counting up. */
    const struct raft_stats *stats;
};

struct raft;

/* Creates a core in the follower role. restore may be NULL for an empty node. */
RAFTKV_API int raft_new(const struct raft_config *cfg, const struct raft_restore *restore,
                        struct raft **out);
RAFTKV_API void raft_free(struct raft *r);

/* Advances the logical clock by one tick. */
RAFTKV_API void raft_tick(struct raft *r);

/* Processes one message from a peer. Messages from unknown senders, addressed to another
 * node, or otherwise malformed are dropped and counted; they never crash the core. */
RAFTKV_API int raft_step(struct raft *r, const struct raft_msg *msg);

/* Appends a normal entry with a copy of data to the leader's log. On success *index and
 * *term (either may be NULL) say where it went: the proposal succeeded if and when the
 * entry committed at *index has term *term. RAFT_EBUSY while a leadership transfer is
 * under way. */
RAFTKV_API int raft_propose(struct raft *r, const void *data, size_t len, raft_index *index,
                            raft_term *term);

/* Asks for a linearizable read (ReadIndex, Raft dissertation §6.4). The leader notes its
 * commit index (once it has committed an entry of its term), confirms with a round of
 * heartbeats that it still leads, and then hands back (ctx, index) in raft_ready's
 * read_states: the host serves the read once it has applied up to index. A read pending
 * when the node stops leading is forgotten: the host fails it when the role changes.
 * Returns RAFT_ENOTLEADER on a follower. */
RAFTKV_API int raft_read_index(struct raft *r, uint64_t ctx);

/* Membership changes, one server at a time (Raft dissertation §4.1-4.3), proposed on the
 * leader as a configuration entry: on success *index and *term (either may be NULL) say
 * where it went, as for raft_propose. Each is refused with RAFT_EBUSY while another change
 * is uncommitted, before the leader has committed an entry of its own term, or during a
 * leadership transfer; RAFT_ENOTLEADER on a follower.
 *
 * raft_add_learner adds m (its role is ignored: it joins as a learner; RAFT_EEXIST if its
 * id is a member, RAFT_EINVAL if its addresses are too long). raft_promote makes a learner
 * a voter (RAFT_ENOTFOUND, RAFT_EEXIST for a voter, RAFT_EBEHIND when it lags). raft_remove
 * removes any member (RAFT_ENOTFOUND; RAFT_EINVAL for the last voter); a leader that removes
 * itself keeps leading until the change commits (§4.2.2: without counting itself), then
 * steps down and hands the lead to the most up-to-date voter (TimeoutNow). Should it lose the
 * lead before the change commits, it may still campaign (without counting itself) until it
 * learns the change committed: it may be the only node holding the change, and the voters
 * left, whose logs are behind, could not win without it. */
RAFTKV_API int raft_add_learner(struct raft *r, const struct raft_member *m, raft_index *index,
                                raft_term *term);
RAFTKV_API int raft_promote(struct raft *r, raft_id id, raft_index *index, raft_term *term);
RAFTKV_API int raft_remove(struct raft *r, raft_id id, raft_index *index, raft_term *term);

/* Leadership transfer (Raft dissertation §3.10) to target, a voter (0: the voter with the
 * most of the log). The leader stops taking proposals, brings the target's log up to date
 * and sends it TimeoutNow; the target campaigns at once, without pre-vote. After an
 * election timeout without a new leader the transfer is abandoned and proposals resume.
 * RAFT_ENOTLEADER on a follower; RAFT_EBUSY while a transfer is under way; RAFT_ENOTFOUND
 * for a target that is not a voter, RAFT_EINVAL for the leader itself or when no other
 * voter exists. */
RAFTKV_API int raft_transfer_leadership(struct raft *r, raft_id target);
/* The target of the transfer under way, or 0. */
RAFTKV_API raft_id raft_transferee_of(const struct raft *r);

/* Starts an election now (pre-vote first when enabled), as if the election timeout fired;
 * not on a node that should not lead (raft_set_electable) nor on one that is not a voter
 * (but see raft_remove). */
RAFTKV_API void raft_campaign(struct raft *r);

/* Whether this node should lead; a new core should. One that should not (its host cannot
 * persist new entries: storage full) steps down when told so while it leads or runs an
 * election, since a leader that cannot append stalls every write; and it campaigns only
 * after hearing from no leader for four election timeouts, so that any node that can lead
 * wins first, and a cluster whose nodes are all full still elects one (which serves reads).
 * It still votes, replicates and applies. Calling it again with the same value changes
 * nothing. */
RAFTKV_API void raft_set_electable(struct raft *r, bool electable);

/* Tells the core the host has taken a snapshot (meta.index <= applied) and dropped the
 * log entries up to compact_to (<= meta.index; the host keeps a trailing margin for slow
 * followers) from its storage. The core drops them from memory; followers that need them
 * get the snapshot instead. Call it between raft_advance and the next raft_ready. */
RAFTKV_API int raft_compact(struct raft *r, const struct raft_snapshot_meta *meta,
                            raft_index compact_to);

/* A piece of a snapshot received from the leader, in order: offset 0 starts a new one. */
struct raft_snapshot_chunk {
    raft_index index; /* the snapshot it belongs to */
    raft_term term;
    uint64_t offset;
    size_t len;
    const uint8_t *data;
    bool done; /* the last chunk: the snapshot is complete */
};

struct raft_read_state {
    uint64_t ctx;
    raft_index index;
};

/* The batch of work the core hands to the host. */
struct raft_ready {
    /* Hard state to persist with this batch (term and vote always both set). */
    bool hard_state_changed;
    raft_term term;
    raft_id vote;

    /* Snapshot chunks to write, in order, to the snapshot being received. */
    size_t n_snapshot_chunks;
    const struct raft_snapshot_chunk *snapshot_chunks;
    /* When install_snapshot is set, the received snapshot is complete (its last chunk is the
     * last one above: no chunk of another follows it): before anything else in this ready,
     * atomically replace the state machine with it (applied = its index), delete every log
     * entry and make (index, term) the log's starting point. */
    bool install_snapshot;
    struct raft_snapshot_meta snapshot;
    /* With install_snapshot: the snapshot's configuration, to keep with it
     * (raft_restore.snapshot_conf). */
    const struct raft_configuration *snapshot_conf;

    /* Delete stable entries with index >= truncate_from before appending (0: none). */
    raft_index truncate_from;
    /* Entries to append durably. */
    size_t n_entries;
    const struct raft_entry *entries;

    /* Messages that may be sent at once, before the write above is durable (the leader's
     * AppendEntries, Raft dissertation §10.2.1). An InstallSnapshot among them comes with
     * data == NULL: the host fills it with bytes [offset, offset + len) of its snapshot
     * (install_snapshot.last_index) before sending. */
    size_t n_msgs;
    const struct raft_msg *msgs;
    /* Messages that acknowledge this batch (votes, append responses): send them only once
     * the write above is durable. */
    size_t n_msgs_after_persist;
    const struct raft_msg *msgs_after_persist;

    /* Reads confirmed since the last ready: serve each once applied >= index. */
    size_t n_read_states;
    const struct raft_read_state *read_states;

    /* Committed entries to apply, in order. They are always already durable locally. */
    size_t n_committed;
    const struct raft_entry *committed;

    /* The latest configuration (committed or not) and the index of its entry (0: the
     * bootstrap configuration); configuration_changed when it differs from the previous
     * ready's: the host follows it (its address book). */
    bool configuration_changed;
    const struct raft_configuration *configuration;
    raft_index configuration_index;

    /* Soft state, for the host's information. */
    bool soft_state_changed;
    enum raft_role role;
    raft_id leader;
    raft_index commit;
};

RAFTKV_API bool raft_has_ready(const struct raft *r);
/* Fills rd with the pending work. Call only when raft_has_ready. */
RAFTKV_API void raft_ready(struct raft *r, struct raft_ready *rd);
/* Tells the core the host has durably done everything in rd (and applied rd.committed). */
RAFTKV_API void raft_advance(struct raft *r, const struct raft_ready *rd);

/* Read-only views of the core's state. */
RAFTKV_API raft_id raft_id_of(const struct raft *r);
RAFTKV_API enum raft_role raft_role_of(const struct raft *r);
RAFTKV_API raft_term raft_term_of(const struct raft *r);
RAFTKV_API raft_id raft_vote_of(const struct raft *r);
RAFTKV_API raft_id raft_leader_of(const struct raft *r);
RAFTKV_API raft_index raft_commit_of(const struct raft *r);
RAFTKV_API raft_index raft_applied_of(const struct raft *r);
RAFTKV_API raft_index raft_last_index_of(const struct raft *r);
RAFTKV_API raft_index raft_first_index_of(const struct raft *r); /* first index held in memory */
/* Term of the entry at index, or 0 if it is not held (compacted or beyond the log).
 * raft_term_at(r, snapshot_index) is the snapshot's term. */
RAFTKV_API raft_term raft_term_at(const struct raft *r, raft_index index);
/* The entry at index, or NULL if it is not held. Valid until the next call into the core. */
RAFTKV_API const struct raft_entry *raft_entry_at(const struct raft *r, raft_index index);

/* The latest configuration in the log (committed or not) and its entry's index (0: the
 * bootstrap configuration). Valid until the next call into the core. */
RAFTKV_API const struct raft_configuration *raft_configuration_of(const struct raft *r,
                                                                  raft_index *index);
/* The configuration in effect at index, which must be between the latest snapshot's index
 * and the last index: what the host keeps with a snapshot taken at index. NULL when index
 * is out of that range. Valid until the next call into the core. */
RAFTKV_API const struct raft_configuration *raft_configuration_at(const struct raft *r,
                                                                  raft_index index);

/* What a leader knows of a member's replication. */
struct raft_member_progress {
    raft_index match;   /* last index known to be in its log */
    raft_index next;    /* next index to send it */
    bool recent_active; /* heard from within the current check-quorum round (or the last) */
    bool snapshot;      /* being sent a snapshot */
};
/* RAFT_ENOTLEADER on a follower, RAFT_ENOTFOUND for an id that is not a member; for the
 * leader itself, match is its durable last index. */
RAFTKV_API int raft_member_progress_of(const struct raft *r, raft_id id,
                                       struct raft_member_progress *out);

/* Counters of what the core dropped or did, for metrics and tests. */
struct raft_stats {
    uint64_t msgs_dropped_unknown_peer;
    uint64_t msgs_dropped_stale_term;
    uint64_t msgs_dropped_malformed;
    uint64_t elections_started;
    uint64_t pre_votes_started;
    uint64_t leader_stepped_down_no_quorum;
    uint64_t append_rejections;
    uint64_t snapshots_sent;
    uint64_t snapshots_installed;
    uint64_t configuration_changes; /* proposed by this node as leader */
    uint64_t transfers_started;
    uint64_t transfers_abandoned; /* no new leader within an election timeout */
};
RAFTKV_API void raft_stats_of(const struct raft *r, struct raft_stats *out);

#endif /* RAFTKV_RAFT_H */
