/*
 * A fixture that drives one Raft core by hand, the way the Raft paper describes a single
 * server: the test plays every other server by building raft_msg values itself.
 *
 * The fixture plays a host that follows raft.h to the letter: after every call into the core
 * it drains raft_ready, "persists" hard state and entries into a mirror of stable storage,
 * collects the messages, applies committed entries and calls raft_advance. While doing so it
 * checks the contract of raft_ready (see fx_drain in fixture.c); the first breach is kept in
 * violation and every test ends with FX_CHECK_CONTRACT.
 */
#ifndef RAFTKV_TEST_FIXTURE_H
#define RAFTKV_TEST_FIXTURE_H

#include "raftkv/raft.h"
#include "test.h"

#define FX_MAX_MSGS 2048
#define FX_MAX_LOG 512
#define FX_MAX_READS 64

/* Timing every fixture core uses, in ticks. */
#define FX_ELECTION_MIN 10
#define FX_ELECTION_MAX 20
#define FX_HEARTBEAT 3

/* What a test wants to differ from a fresh 3-voter node with pre-vote and check-quorum. */
struct fx_opts {
    size_t n_voters; /* voters are 1..n_voters; 0 means 3 */
    raft_term term;  /* restored hard state */
    raft_id vote;
    raft_index snapshot_index; /* restored snapshot (0: none) */
    raft_term snapshot_term;
    const raft_term *log; /* terms of restored entries snapshot_index+1.. */
    size_t n_log;
    raft_index applied;
    bool no_pre_vote;
    bool no_check_quorum;
    bool longest_timeout; /* random source returns bound - 1 instead of 0 */
    size_t max_entries_per_msg;
    size_t max_bytes_per_msg;
    size_t max_inflight_msgs;
    size_t max_entry_bytes;
    /* Instead of voters 1..n_voters (n_voters still says which peers fx_elect and
     * fx_ack_all speak for). */
    const struct raft_configuration *bootstrap;
    const struct raft_configuration *snapshot_conf; /* restored with the snapshot */
    raft_index promote_max_lag;                     /* 0: the default */
};

/* A message the core handed out, with what was durable at the moment the host sent it. */
struct fx_msg {
    struct raft_msg m; /* deep copy */
    bool after_persist;
    raft_term durable_term;
    raft_id durable_vote;
    raft_index durable_last;
};

struct fx_applied {
    raft_index index;
    raft_term term;
    enum raft_entry_type type;
    size_t len;
    uint8_t head[16]; /* first bytes of the data */
};

struct fx {
    struct raft *r;
    raft_id id;
    size_t n_voters;
    bool longest_timeout;

    struct fx_msg out[FX_MAX_MSGS]; /* messages sent since the last fx_clear */
    size_t n_out;

    /* Mirror of stable storage. */
    raft_term hs_term;
    raft_id hs_vote;
    raft_term log[FX_MAX_LOG + 1]; /* log[i] is the term of stable entry i */
    raft_index log_last;
    raft_index last_truncate_from;

    struct fx_applied applied[FX_MAX_LOG];
    size_t n_applied;
    raft_index last_applied;

    struct raft_read_state reads[FX_MAX_READS]; /* confirmed reads handed out */
    size_t n_reads;

    unsigned readies;
    /* Configurations reported by readies (configuration_changed), and the last one's
     * index and size; the size of the configuration of the last installed snapshot. */
    unsigned conf_reports;
    raft_index conf_index;
    size_t conf_n;
    size_t installed_conf_n;
    char violation[256]; /* empty while the core kept the contract */
};

/* Creates a core (voters 1..n, or opts->bootstrap) for node id with the options (NULL for defaults)
 * and drains its first ready. Returns NULL if raft_new failed; *err (may be NULL) gets its code. */
struct fx *fx_new(raft_id id, const struct fx_opts *opts, int *err);
/* Node 1 leading voters 1 2 3 in term 2, its no-op (index 1) committed and held by every
 * follower, messages cleared; NULL on failure. */
struct fx *fx_leader_of_three(void);

/* Drains every pending ready as the host would. */
void fx_drain(struct fx *f);
/* Forgets the collected messages. */
void fx_clear(struct fx *f);

/* raft_step / raft_tick / raft_campaign / raft_propose followed by fx_drain. */
int fx_step(struct fx *f, const struct raft_msg *m);
void fx_tick(struct fx *f, unsigned n);
void fx_campaign(struct fx *f);
int fx_propose(struct fx *f, const char *data, raft_index *index);

/* Hand-built messages from peer `from` to the fixture's node, stepped and drained. */
/* A message of type from a peer to the node under test, its body left empty. */
struct raft_msg fx_msg_to(const struct fx *f, enum raft_msg_type type, raft_id from,
                          raft_term term);
int fx_vote_req(struct fx *f, raft_id from, raft_term term, raft_index last_index,
                raft_term last_term, bool pre_vote);
int fx_vote_resp(struct fx *f, raft_id from, raft_term term, bool granted, bool pre_vote);
/* AppendEntries carrying entries prev_index+1.. with the given terms (n may be 0). */
int fx_append(struct fx *f, raft_id from, raft_term term, raft_index prev_index,
              raft_term prev_term, raft_index commit, const raft_term *terms, size_t n);
int fx_append_ok(struct fx *f, raft_id from, raft_index index);
int fx_append_reject(struct fx *f, raft_id from, raft_index rejected_prev, raft_term conflict_term,
                     raft_index conflict_index, raft_index last_index);

/* AppendEntries carrying copies of entries (prev_index+1.. in order). */
int fx_append_entries(struct fx *f, raft_id from, raft_term term, raft_index prev_index,
                      raft_term prev_term, raft_index commit, const struct raft_entry *entries,
                      size_t n);

/* A configuration written as ids separated by spaces, "l" before a learner's: "1 2 l3".
 * Addresses are "p<id>" and "c<id>". Held in b. */
struct fx_conf {
    struct raft_member members[RAFT_MAX_MEMBERS];
    char addresses[RAFT_MAX_MEMBERS][2][24];
    struct raft_configuration conf;
};
const struct raft_configuration *fx_conf(struct fx_conf *b, const char *spec);
/* A RAFT_ENTRY_CONFIG entry of that configuration; its data lives in buf (cap bytes). */
struct raft_entry fx_conf_entry(raft_term term, raft_index index, const char *spec, uint8_t *buf,
                                size_t cap);
/* Whether the core's latest configuration is spec. */
bool fx_conf_is(const struct fx *f, const char *spec);

/* Makes the node leader of the next term with votes (and pre-votes) from a bare majority. */
bool fx_elect(struct fx *f);
/* Every peer acknowledges the leader's whole log, which puts it into the replicate state. */
void fx_ack_all(struct fx *f);

/* The core's counters (raft_stats_of). */
struct raft_stats fx_stats(const struct fx *f);

/* Collected messages to `to` (0: anyone) of a type; nth (0-based) or the last one. */
size_t fx_count(const struct fx *f, raft_id to, enum raft_msg_type type);
/* Counts only AppendEntries that carry entries. */
size_t fx_count_appends_with_entries(const struct fx *f, raft_id to);
const struct fx_msg *fx_nth(const struct fx *f, raft_id to, enum raft_msg_type type, size_t nth);
const struct fx_msg *fx_last(const struct fx *f, raft_id to, enum raft_msg_type type);

/* A follower of the paper, used to answer a leader's AppendEntries in multi-step exchanges. */
struct fx_model {
    raft_id id;
    raft_term term;
    raft_term log[FX_MAX_LOG + 1];
    raft_index last;
};
struct raft_msg fx_model_append(struct fx_model *m, const struct raft_msg *append);

/* What the leader sent in one AppendEntries and whether the model accepted it. */
struct fx_sent {
    raft_index prev_index;
    size_t n_entries;
    bool success;
};

/* Delivers every collected AppendEntries addressed to model m, in order, removes them from the
 * outbox, steps the answers into the core and records what was delivered in sent (may be NULL).
 * Returns how many were delivered. */
size_t fx_deliver(struct fx *f, struct fx_model *m, struct fx_sent *sent, size_t *n_sent,
                  size_t max_sent);
/* Whether the model's log equals the core's. */
bool fx_model_matches(const struct fx *f, const struct fx_model *m);

#define FX_CHECK_CONTRACT(f)                                                                       \
    do {                                                                                           \
        if ((f)->violation[0])                                                                     \
            fprintf(stderr, "ready contract broken: %s\n", (f)->violation);                        \
        CHECK((f)->violation[0] == '\0');                                                          \
    } while (0)

#endif
