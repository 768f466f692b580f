/*
 * A deterministic in-memory Raft cluster: N cores, each with mem storage, driven exactly as
 * raft.h's host loop says, over a simulated network whose every fault is chosen by one
 * seeded PRNG. Used by raft-sim and by the named scenario tests.
 *
 * The fixture checks the Raft safety properties itself, after every step of every node,
 * so any scenario that drives it is also a safety test:
 *   - Election Safety: at most one leader per term, over the whole history.
 *   - Leader Append-Only: a leader never truncates its log or shrinks it.
 *   - Log Matching: every (index, term) ever persisted anywhere has one content and one
 *     predecessor term, which by induction makes equal (index, term) imply equal prefixes.
 *   - Leader Completeness: a new leader holds every entry committed so far.
 *   - State Machine Safety: every node applies, in order, a prefix of one global sequence.
 *   - Linearizable reads: a read index is never below an entry committed before the read
 *     was asked for, and only the node asked answers.
 *   - Snapshots: a snapshot taken, installed or restored holds exactly the state of the
 *     committed sequence at its index; the core only asks the host for bytes of the
 *     snapshot it holds, and hands it chunks in order.
 *   - Votes: a vote or pre-vote goes only to a log at least as up to date as the voter's;
 *     a pre-vote request changes nobody's term or vote.
 *   - Membership (Raft dissertation chapter 4), with every node using the latest
 *     configuration in its log: only a voter of it campaigns or leads; an entry a leader
 *     counts committed is durable on a majority of the voters of the leader's latest
 *     configuration (so learners' and non-members' copies never count); no leader's log
 *     holds two configurations beyond the cluster's commit index; a leader removed by a
 *     committed configuration no longer leads; check-quorum counts the leader's own voters;
 *     and a change is refused as busy exactly when raft.h says so.
 *   - The host contract of raft.h: storage accepts every ready (no gaps), committed entries
 *     are durable before they are applied, a vote is durable before it is granted, an
 *     append or a snapshot's last chunk is acknowledged only once what it speaks for is
 *     durable and matches the leader, a persisted term never goes back and a persisted
 *     vote never changes within a term, and a proposal lands where raft_propose said it
 *     would.
 * The first violation is kept in cluster.violation and recorded in the event trace.
 * cluster_internal.h says which file holds which part.
 */
#ifndef RAFTKV_SIM_CLUSTER_H
#define RAFTKV_SIM_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "raftkv/raft.h"
#include "storage/storage.h"

#define CLUSTER_MAX_NODES 7
#define CLUSTER_RING 256 /* events kept for the failure report */
#define CLUSTER_VOTE_TERMS 4

struct cluster_opts {
    size_t n_nodes; /* node ids are 1..n_nodes */
    /* The last n_spares of them start with an empty bootstrap configuration: they know no
     * member, never campaign, and take part only once a leader adds them (cluster_change).
     * The others are the voters of the bootstrap configuration. */
    size_t n_spares;
    uint64_t seed;
    unsigned election_ticks_min, election_ticks_max, heartbeat_ticks;
    bool pre_vote, check_quorum;
    size_t max_entries_per_msg, max_inflight_msgs;
    size_t snapshot_chunk_bytes, max_inflight_chunks;
    /* Log compaction: every this many applied entries (0: never) a node snapshots its state
     * machine and compacts its log, keeping the last compact_margin entries. */
    unsigned snapshot_every, compact_margin;
};

/* Defaults for tests: 3 nodes, election 10-20 ticks, heartbeat 2, pre-vote and check-quorum
 * on, 8 entries per message. */
void cluster_opts_defaults(struct cluster_opts *o);

/* The network's faults, applied as each message is sent. */
struct cluster_net {
    unsigned drop_permille;
    unsigned dup_permille;
    unsigned delay_min, delay_max; /* ticks, delay_min >= 1; uniform in [min, max] */
    unsigned long_delay_permille;  /* a message held far longer than usual */
    unsigned long_delay_max;
};

/* Where a crash requested with cluster_crash_at hits the node's next ready. */
enum cluster_crash_point {
    CRASH_NONE,
    CRASH_BEFORE_PERSIST, /* rd.msgs already sent, nothing written */
    CRASH_AFTER_PERSIST,  /* written, nothing acknowledged or applied */
    CRASH_AFTER_VOTE,     /* (internal) just sent a granted vote: see vote_crash_permille */
};

struct cluster_logent {
    raft_term term;
    uint64_t hash; /* of type and data */
};

/* A snapshot of the simulated state machine: bytes holding (index, term, hash chain of the
 * applied sequence) and filler, so that transfers take several chunks. */
struct cluster_snapshot {
    struct raft_snapshot_meta meta; /* meta.size bytes of data (while receiving: so far) */
    uint8_t *data;
    size_t cap;
};

struct cluster_node {
    raft_id id;
    bool joins;     /* a spare: started with an empty bootstrap */
    bool added;     /* a leader accepted to add it; a removed node is never added again */
    struct raft *r; /* NULL while crashed */
    struct rk_storage *st;
    /* Mirror of what storage holds durably, kept to check the core against. */
    raft_term hs_term;
    raft_id hs_vote;
    raft_index log_base; /* the stored log starts after an installed snapshot at this index */
    raft_term base_term;
    struct cluster_logent *log; /* log[i] is index log_base + 1 + i */
    size_t log_n, log_cap;
    /* The host's durable snapshot files: the latest one held, the one being received and
     * the last one received complete (until installed). */
    struct cluster_snapshot snap, incoming, received;
    /* The configuration at snap's index, kept with it as raftd keeps it in LMDB. */
    struct raft_configuration snap_conf;
    /* The node's state machine: how far it applied and a hash chain of what. */
    raft_index applied;
    uint64_t sm_hash;
    /* Observed state, to see transitions. */
    enum raft_role role;
    raft_term term;
    raft_term lead_term; /* term in which it is leader (0: not leader) */
    raft_index lead_last;
    enum cluster_crash_point crash_at;
    bool unelectable; /* its host cannot store new entries (storage full): raft_set_electable */
    uint64_t isolated_since; /* tick from which it leads without a majority it can reach */
    raft_index lead_conf;    /* as leader: index of its latest configuration, last checked */
    bool dirty;              /* stepped, ready not yet processed */
    uint64_t crashes;
    /* The vote requests it received, per candidate and kind (0: vote, 1: pre-vote), for the
     * latest few terms (one ready may answer several): whether any request for that term came
     * from a log at least as up to date as its own was then (a repeated request may be
     * granted again, Raft §5.2, after the voter's log has moved on). */
    struct cluster_vote_asked {
        raft_term term;
        bool up_to_date;
    } asked[CLUSTER_MAX_NODES + 1][2][CLUSTER_VOTE_TERMS];
};

struct cluster_pending {
    uint64_t at, seq;
    struct raft_msg m;
};

/* One committed entry of the global applied sequence. */
struct cluster_committed {
    raft_term term;
    enum raft_entry_type type;
    size_t len;
    uint8_t *data;
    uint64_t chain; /* hash chain over the sequence up to here, to compare state machines */
};

struct cluster_read {
    raft_id node;
    raft_index min_index; /* everything up to here was committed when the read was issued */
    raft_index index;     /* 0 until the node confirms the read */
};

struct cluster_proposal {
    raft_id node;
    raft_index index;
    raft_term term;
    raft_index applied_at; /* 0 until some node applies it */
};

enum cluster_event_kind {
    EV_SEND,
    EV_DELIVER,
    EV_DROP,
    EV_PERSIST,
    EV_APPLY,
    EV_ROLE,
    EV_PROPOSE,
    EV_CRASH,
    EV_RESTART,
    EV_NET,
    EV_NOTE,
    EV_VIOLATION,
};

struct cluster_event {
    uint64_t tick;
    raft_id node;
    enum cluster_event_kind kind;
    uint64_t a, b, c, d, e; /* meaning depends on kind */
    const char *note;       /* a static string, for EV_NOTE */
    struct {
        enum raft_msg_type type;
        raft_id from, to;
        raft_term term;
        uint64_t x, y, z, w, v; /* the fields worth showing of each type */
        bool flag1, flag2;
    } msg;
};

struct cluster_lm; /* Log Matching registry, private */

/* What a driver asks a leader for (cluster_change). */
enum cluster_change {
    CHANGE_ADD,      /* raft_add_learner, address "sim://<id>" */
    CHANGE_PROMOTE,  /* raft_promote */
    CHANGE_REMOVE,   /* raft_remove */
    CHANGE_TRANSFER, /* raft_transfer_leadership (0: to the most up-to-date voter) */
    CHANGE_KINDS,
};

struct cluster {
    struct cluster_opts opts;
    struct raft_config cfg; /* bootstrap: the non-spare nodes, all voters */
    struct raft_member boot_members[CLUSTER_MAX_NODES];
    char addresses[CLUSTER_MAX_NODES + 1][32];        /* "sim://<id>" */
    struct cluster_node nodes[CLUSTER_MAX_NODES + 1]; /* indexed by id; [0] unused */
    uint64_t now;
    uint64_t rng[4];
    struct cluster_net net;
    /* How often a delivered message is left unprocessed until the tick's deliveries are
     * done, so that the core sees several steps before one ready, as a real host batching
     * its group commit does. */
    unsigned batch_permille;
    /* How often a node crashes right after granting a vote: a restart that forgot the vote
     * could then vote again in the same term. */
    unsigned vote_crash_permille;
    bool blocked[CLUSTER_MAX_NODES + 1][CLUSTER_MAX_NODES + 1]; /* [from][to] */

    struct cluster_pending *pending;
    size_t n_pending, cap_pending;
    struct cluster_pending *due; /* scratch for the messages being delivered */
    size_t cap_due;
    uint64_t next_seq;

    /* History the checks run against. */
    raft_id *leader_of_term;
    size_t n_terms;
    struct cluster_committed *committed; /* committed[i - 1] is index i */
    size_t n_committed, cap_committed;
    /* commit_term[i - 1]: the term of the leader that first counted index i committed. */
    raft_term *commit_term;
    size_t n_commit_term, cap_commit_term;
    struct cluster_proposal *proposals; /* by command number */
    size_t n_proposals, cap_proposals;
    struct cluster_read *reads; /* by ctx */
    size_t n_reads, cap_reads;
    struct cluster_lm *lm;
    /* The latest configuration of the committed (applied) sequence: the bootstrap until a
     * configuration entry is applied. */
    struct raft_configuration committed_conf;

    char violation[512];
    bool failed;

    struct cluster_event ring[CLUSTER_RING];
    uint64_t n_events;
    FILE *trace; /* when set, every event is printed here as it happens */

    uint64_t last_seq[CLUSTER_MAX_NODES + 1][CLUSTER_MAX_NODES + 1]; /* delivered, per link */
    uint64_t stats_delivered, stats_dropped, stats_reordered, stats_duplicated;
    uint64_t stats_elections_won, stats_truncations, stats_snapshots_taken,
        stats_snapshots_installed;
    /* cluster_change outcomes per kind: accepted, refused as the core documents. */
    uint64_t stats_changes_accepted[CHANGE_KINDS], stats_changes_refused[CHANGE_KINDS];
    uint64_t stats_confs_committed; /* configuration entries in the committed sequence */
};

int cluster_new(const struct cluster_opts *opts, struct cluster **out);
void cluster_free(struct cluster *c);

/* The fixture's PRNG, also handed to the cores. */
uint64_t cluster_rand(struct cluster *c);
uint32_t cluster_rand_below(struct cluster *c, uint32_t bound);

/* One tick of time: deliver the messages due now, then tick every live node. */
void cluster_tick(struct cluster *c);
void cluster_ticks(struct cluster *c, unsigned n);
/* Delivers every pending message, ignoring delays, until none are left (or a bound on the
 * number of rounds is hit). Returns the number delivered. */
size_t cluster_deliver_all(struct cluster *c);
/* Discards every message in flight. */
void cluster_drop_all(struct cluster *c);

/* Blocks all traffic between side[] and the other nodes, both ways. */
void cluster_partition(struct cluster *c, const raft_id *side, size_t n);
void cluster_block(struct cluster *c, raft_id from, raft_id to);
void cluster_heal(struct cluster *c);

/* Crashes a node now: the core is freed, everything not saved is lost. */
void cluster_crash(struct cluster *c, raft_id id);
/* Crashes the node in the middle of its next ready. */
void cluster_crash_at(struct cluster *c, raft_id id, enum cluster_crash_point at);
/* Restarts a crashed node from its storage (applied 0: its state machine is rebuilt). */
int cluster_restart(struct cluster *c, raft_id id);
bool cluster_is_up(const struct cluster *c, raft_id id);

/* Asks node at for a membership change or a leadership transfer concerning id, then runs
 * its host loop; returns the core's answer. The refusals raft.h documents are normal
 * outcomes, counted; any other error fails the run, and so does an EBUSY that no rule of
 * raft.h explains, or an acceptance that one forbids. */
int cluster_change(struct cluster *c, raft_id at, enum cluster_change op, raft_id id);
const char *cluster_change_name(enum cluster_change op);
/* Whether id is in the latest configuration of the current leader (cluster_leader), or
 * without one in the committed configuration: the nodes liveness is asked of. */
bool cluster_is_member(const struct cluster *c, raft_id id);

/* raft_campaign on a node, then the host loop. */
void cluster_campaign(struct cluster *c, raft_id id);
/* Makes a node's storage full (electable false) or gives it room again; it holds across
 * restarts. A leader or candidate whose storage fills must step down at once. */
void cluster_set_electable(struct cluster *c, raft_id id, bool electable);
/* Proposes a unique command; *cmd gets its number. Returns raft_propose's result. */
int cluster_propose_cmd(struct cluster *c, raft_id id, uint64_t *cmd);
/* Asks a node for a linearizable read (raft_read_index); *ctx gets its number. */
int cluster_read(struct cluster *c, raft_id id, uint64_t *ctx);
/* True once some node applied command cmd. */
bool cluster_cmd_applied(const struct cluster *c, uint64_t cmd);

/* The live leader of the highest term, or 0. */
raft_id cluster_leader(const struct cluster *c);
/* A leader that every live member (cluster_is_member) follows in the same term, or 0. */
raft_id cluster_stable_leader(const struct cluster *c);
/* True when every live member applied everything any node applied. */
bool cluster_converged(const struct cluster *c);
/* Ticks until pred holds or max_ticks passed; returns whether it held. */
bool cluster_run_until(struct cluster *c, bool (*pred)(const struct cluster *c),
                       unsigned max_ticks);

/* The durable log as storage holds it: term at index (0 if absent; the snapshot's term at
 * the index the stored log starts after). */
raft_term cluster_stored_term(const struct cluster *c, raft_id id, raft_index index);
raft_index cluster_stored_last(const struct cluster *c, raft_id id);

/* Records a violation (only the first is kept), e.g. of liveness, found by the driver. */
__attribute__((format(printf, 3, 4))) void cluster_fail(struct cluster *c, raft_id node,
                                                        const char *fmt, ...);
/* Records a free-form note in the trace. */
void cluster_note(struct cluster *c, const char *what, uint64_t a, uint64_t b);
/* Prints the last events kept (all of them up to CLUSTER_RING). */
void cluster_dump_trace(const struct cluster *c, FILE *out, size_t last);
/* Prints each node's role, term, log, commit and latest configuration (v: voter,
 * l: learner). */
void cluster_dump_state(const struct cluster *c, FILE *out);

/* Whether raft.h lets node id campaign: a voter of its latest configuration, or a node that
 * configuration removes while it is not known committed, if it was a voter before
 * (raft_remove). */
bool cluster_may_campaign(const struct raft *r, raft_id id);

#endif
