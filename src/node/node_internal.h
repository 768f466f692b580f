/*
 * Internal to the node (src/node/): the node's state and what its parts share. Each part
 * has its own file, as etcd's raftexample splits its host by job:
 *
 *   loop.c              the event loop: events from NNG threads, ticks, run and stop
 *   ready.c             the ready pipeline: persist, apply, answer, send, advance
 *   client_service.c    client requests: proposals awaiting commit, ReadIndex reads, replies
 *   snapshot_service.c  when to take a snapshot, log compaction, sending and installing them
 *   membership.c        the members: address book, member requests, leadership hand-off
 *   change_stream.c     the change stream: state machine events and leader changes
 *   tls_service.c       TLS configs from the node's files, and the handshakes NNG refused
 *   http_service.c      /health, /status and /metrics over HTTP
 *   metrics.c           the counters and histograms of /metrics, and its text
 *   gateway.c           the HTTP gateway (gateway.h): a client of the cluster, not of the loop
 *   start.c             start-up (data dir, state machine, core, sockets) and shut-down
 *
 * Everything here runs on the event loop's thread, except the on_* callbacks, which NNG
 * threads call and which only queue events (one owner per piece of state). Functions
 * shared between the parts are named part__verb: internal to the node.
 */
#ifndef RAFTKV_NODE_INTERNAL_H
#define RAFTKV_NODE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "client.pb-c.h"
#include "node/metrics.h"
#include "node/node.h"
#include "node/queue.h"
#include "node/snapshot_files.h"
#include "node/text.h"
#include "raftkv/fsm.h"
#include "raftkv/raft.h"
#include "storage/db.h"

enum event_type { EV_PEER_MSG, EV_CLIENT_REQUEST, EV_SNAPSHOT_DONE, EV_HTTP_REQUEST };

struct event {
    struct rk_queue_item item; /* first: the queue hands back items */
    enum event_type type;
    struct raft_msg msg;          /* EV_PEER_MSG; owned */
    struct rk_client_call *call;  /* EV_CLIENT_REQUEST */
    struct rk_http_request *http; /* EV_HTTP_REQUEST, with the route asked (http_service.c) */
    unsigned route;
    size_t len;
    uint8_t data[]; /* the packed client request */
};

/* A read-only request waiting for its ReadIndex round (index 0 until confirmed), then for
 * the state machine to have applied up to index. */
struct read {
    uint64_t ctx;
    raft_index index;
    struct rk_client_call *call;
    void *query; /* the state machine's prepared read (fsm.h) */
};

/* A proposal waiting for its entry to commit: it succeeded iff the entry committed at
 * index has this term. */
struct pending {
    raft_index index;
    raft_term term;
    struct rk_client_call *call;
    bool members; /* a membership change: answered with the members, not the machine's */
};

/* The core's state as of the last raft_advance: answers status requests, drives logging
 * and leader events, and stays readable while a ready is held back. */
struct view {
    enum raft_role role;
    raft_term term;
    raft_id leader;
    raft_index commit;
    raft_index applied;
    raft_index last_index;
    bool learner; /* the latest configuration names this node a learner */
};

/* The role shown to people and monitors: a follower that is a learner shows as one (it
 * never campaigns and never counts towards a quorum). */
static inline const char *node__role_name(const struct view *v)
{
    return v->role == RAFT_FOLLOWER && v->learner ? "learner" : raft_role_name(v->role);
}

struct rk_node {
    const struct rk_config *cfg;
    struct rk_db *db;
    struct rk_storage *storage;
    struct raftkv_fsm *fsm;
    struct raft *raft;
    struct rk_transport *transport;
    struct rk_client_server *clients;
    struct rk_publisher *pub;
    struct rk_http_server *http; /* NULL without http_address */
    struct rk_gateway *gateway;  /* NULL without http_gateway; read by HTTP threads */
    /* TLS service; all NULL without TLS. The peer port always requires a certificate from
     * the CA; the client and pub ports as tls_client_auth says. */
    struct nng_tls_config *tls_peer_listen;
    struct nng_tls_config *tls_peer_dial;
    struct nng_tls_config *tls_clients;
    struct timespec tls_poll_at;
    uint64_t client_tls_refused; /* on the client and pub ports, as of the last poll */
    struct rk_queue queue;
    bool queue_ready;
    struct timespec next_tick;
    atomic_bool stop;
    uint64_t rng;

    /* Client service. */
    struct read *reads; /* FIFO by ctx: confirmed ones first */
    size_t n_reads, cap_reads;
    uint64_t last_read_ctx;
    struct pending *pending; /* FIFO by index, from pending_head */
    size_t pending_head, n_pending, pending_cap;
    size_t max_request_bytes;
    bool refusing_full; /* writes and leadership refused: the map is nearly full (loop.c) */

    struct view view;
    raft_id published_leader;
    raft_term published_term;

    /* A ready whose write hit a full map: the core may not be called until it is written
     * and advanced, so it is retried and the node answers "storage full" meanwhile. */
    bool held;
    struct raft_ready held_rd;
    struct timespec retry_at;
    uint64_t write_us; /* how long the last batch write took */
    struct metrics metrics;
    uint64_t bad_msgs; /* peer messages dropped as forged: term out of range, or conflicting */
    int fatal;

    /* Snapshot service. */
    struct rk_snapdir snapdir;
    bool snapdir_open;
    uint8_t *chunk_buf;            /* fills outgoing InstallSnapshot chunks */
    int install_fd;                /* the received snapshot being installed, until adopted */
    struct timespec receive_start; /* when the snapshot being received started */
    struct timespec chunk_sent_at; /* when this node last sent a snapshot chunk */
    struct rk_snap_job job;        /* the producer: at most one snapshot in progress */
    bool job_running;
    struct event *job_event; /* posted by the job when it ends */
    struct timespec snapshot_retry_at;
    uint64_t applied_bytes;     /* entry bytes applied after the latest snapshot (or log start) */
    uint64_t snapshots_refused; /* received snapshots found damaged or malformed */
    uint64_t snapshots_damaged; /* own snapshot files found damaged before sending one */
    uint64_t snapshots_taken;   /* and kept */
    uint64_t snapshot_taken_bytes, snapshot_sent_bytes, snapshot_installed_bytes;

    /* Membership: a move-leader request waiting for the transfer's outcome. */
    struct raft_configuration committed_conf; /* the configuration at the commit index */
    /* Senders heard from while the node knows no configuration (it joins), with the address
     * they gave: the leader that adds it may be missing from its config file. */
    struct rk_heard {
        raft_id id;
        char url[RAFT_MAX_ADDRESS + 1];
    } heard[RAFT_MAX_MEMBERS];
    size_t n_heard;
    struct rk_client_call *moving;
    raft_id moving_to;
    struct timespec moving_deadline; /* for a node that stepped down to hear who won */
};

/* ---- The environment (env.c): the host simulator (tests/hostsim) links its own. ---- */

/* CLOCK_MONOTONIC. */
struct timespec node__now(void);
/* A seed for the node's random numbers (election timeouts), never 0. */
uint64_t node__seed(raft_id id);

static inline void node__add_ms(struct timespec *ts, unsigned ms)
{
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    ts->tv_sec += ms / 1000 + ts->tv_nsec / 1000000000L;
    ts->tv_nsec %= 1000000000L;
}

static inline bool node__reached(const struct timespec *now, const struct timespec *t)
{
    return now->tv_sec > t->tv_sec || (now->tv_sec == t->tv_sec && now->tv_nsec >= t->tv_nsec);
}

/* ---- loop.c ---- */

/* NNG threads: queue a message from a peer (and the address it gave) for the loop. */
void loop__on_peer_msg(void *arg, struct raft_msg *msg, const char *from_address);
/* One turn of the loop: handles what is queued (first waiting for it until the next tick
 * when wait is set), ticks the core when a tick is due, writes the core's ready and starts
 * a snapshot when one is due. */
void loop__turn(struct rk_node *n, bool wait);
/* Takes what is queued without waiting; answers client requests with why (when given). */
void loop__answer_queued(struct rk_node *n, const char *why);

/* ---- ready.c ---- */

/* Persists, applies and answers every ready the core has, until none is left or one is
 * held back (storage full) or fails (n->fatal). */
void ready__process(struct rk_node *n);
/* Takes in the core's state after an advance (or at start). */
void ready__view_update(struct rk_node *n);
/* Stores what the state machine keeps in memory only (fsm.h, persist). */
int ready__persist_fsm(struct rk_node *n);
/* Sends msgs, filling InstallSnapshot chunks from the snapshot file. */
void ready__send(struct rk_node *n, const struct raft_msg *msgs, size_t count);

/* ---- client_service.c ---- */

/* NNG threads: queue a client request for the loop. */
void clients__on_request(void *arg, struct rk_client_call *call, const uint8_t *req, size_t len);
void clients__handle(struct rk_node *n, struct event *ev);
/* Answers the proposals that the committed entry e settles with result. */
void clients__settle(struct rk_node *n, const struct raft_entry *e,
                     const struct raftkv_buf *result);
/* ReadIndex rounds confirmed in rd. */
void clients__reads_confirm(struct rk_node *n, const struct raft_ready *rd);
/* Answers the confirmed reads whose index the state machine has reached. */
void clients__reads_serve(struct rk_node *n);
/* Answers UNAVAILABLE (why) everything waiting (all), or what a lost leadership leaves
 * undecided: proposals not yet committed and unconfirmed reads. */
void clients__fail_waiting(struct rk_node *n, const char *why, bool all);
void clients__reply_unavailable(struct rk_node *n, struct rk_client_call *call, const char *why);
void clients__reply(struct rk_node *n, struct rk_client_call *call,
                    const Raftkv__Client__Response *resp);
void clients__reply_error(struct rk_node *n, struct rk_client_call *call, Raftkv__Client__Code code,
                          const char *error);
/* NOT_LEADER, naming the leader the node knows. */
void clients__reply_not_leader(struct rk_node *n, struct rk_client_call *call);
/* Keeps call until the entry at (index, term) commits: answered then with the state
 * machine's result, or with the members (a membership change). */
void clients__await(struct rk_node *n, raft_index index, raft_term term,
                    struct rk_client_call *call, bool members);
/* The node's status as client.proto's NodeStatus; st points into the struct. */
struct node_status {
    Raftkv__Client__NodeStatus st;
    Raftkv__Client__RaftStats raft;
    Raftkv__Client__TransportStats transport;
    Raftkv__Client__ServerStats servers;
    Raftkv__Client__Member members[RAFT_MAX_MEMBERS];
    Raftkv__Client__Member *member_ptrs[RAFT_MAX_MEMBERS];
    Raftkv__Client__SnapshotStatus snapshot;
    Raftkv__Client__StorageStatus storage;
};
void clients__status(struct rk_node *n, struct node_status *out);

/* ---- http_service.c ---- */

/* Starts the HTTP server on http_address, if set. */
int http__start(struct rk_node *n);
void http__handle(struct rk_node *n, struct event *ev);
/* Answers a queued HTTP request with 503: why. */
void http__reply_unavailable(struct event *ev, const char *why);
/* Why the node should not get traffic now (/health answers 503), or NULL. */
const char *http__unhealthy(const struct rk_node *n);
/* NodeStatus's walkers: whether f is a single unsigned number; f's value in m. */
bool http__is_number(const ProtobufCFieldDescriptor *f);
uint64_t http__number_at(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f);
const void *http__pointer_at(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f);

/* ---- metrics.c (and metrics.h) ---- */

/* Counts the reply to call (its operation is the call's tag) and its latency. */
void metrics__client_reply(struct rk_node *n, struct rk_client_call *call,
                           Raftkv__Client__Code code);
/* The body of /metrics. */
void metrics__write(struct rk_node *n, struct text *t);

/* ---- snapshot_service.c ---- */

/* Takes a snapshot in the background once enough was applied since the latest. */
void snapshots__maybe_start(struct rk_node *n);
/* The producer thread ended (EV_SNAPSHOT_DONE): keep its snapshot and compact the log. */
void snapshots__finish(struct rk_node *n);
/* Writes the snapshot chunks of rd to their file, durably, before the write that
 * acknowledges them; a complete one is checked against its trailer. Returns 0, or nonzero:
 * n->fatal set, or the snapshot refused (snapshots__refuse: rd is the old core's). */
int snapshots__receive(struct rk_node *n, const struct raft_ready *rd);
/* The received snapshot in rd is now the node's state: its file is the latest. */
void snapshots__installed(struct rk_node *n, const struct raft_ready *rd);
/* Fills an InstallSnapshot from the core (which carries no bytes) from the file. */
int snapshots__fill_chunk(struct rk_node *n, struct raft_msg *m);
/* Counts applied entries towards the next snapshot's snapshot_bytes. */
void snapshots__count_applied(struct rk_node *n, const struct raft_ready *rd);
/* Where the next snapshot is measured from, at start. */
void snapshots__start_counting(struct rk_node *n);

/* The snapshot received at index (install_fd holds it) is damaged, or the state machine
 * found it malformed: refuses it without stopping. */
void snapshots__refuse(struct rk_node *n, raft_index index, const char *why);

/* ---- start.c ---- */

/* Starts the core again from storage, as a restart of the node would, keeping its
 * counters: what the core held beyond storage (a batch that was not written) is gone. */
int start__core_again(struct rk_node *n);

/* ---- membership.c ---- */

struct rk_peer;

/* The membership of a new cluster (the config file's members, all voters), or none when
 * the node joins a running one. Points into the node's config; free conf->members only. */
int members__bootstrap(struct rk_node *n, struct raft_configuration *conf);
/* The peers to reach: the members of the latest configuration and of the committed one
 * (until a removal commits, the removed node may still lead, and must hear its answers),
 * but this node; the config file's and the senders heard from while it knows no
 * configuration (it joins). *peers is
 * allocated (NULL on failure); its URLs point into the configurations or the config file. */
int members__peers(struct rk_node *n, const struct raft_configuration *latest,
                   struct rk_peer **peers, size_t *n_peers);
/* The latest configuration changed (rd.configuration_changed): the address book follows
 * it, before rd's messages leave (they may be for a new member). */
void members__changed(struct rk_node *n, const struct raft_ready *rd);
/* After an advance (and at start): keeps the committed configuration, and drops from the
 * address book the members a committed change removed. */
int members__commit_moved(struct rk_node *n);
/* A message came from id, which gave address: a node that knows no configuration yet adds
 * it to its address book (its config file may not name the leader that added it). */
void members__heard_from(struct rk_node *n, raft_id id, const char *address);
/* The client address of member id: the latest configuration's, else the config file's;
 * NULL when unknown. */
const char *members__client_address(struct rk_node *n, raft_id id);
/* Whether the node has a single voter, itself: it needs nobody's vote. */
bool members__alone(struct rk_node *n);
bool members__handles(const Raftkv__Client__Request *req);
void members__handle(struct rk_node *n, struct rk_client_call *call,
                     const Raftkv__Client__Request *req);
/* Fills members (and ptrs, pointing at them) with conf's members as client.proto's Member,
 * with the leader's knowledge of their replication; the strings point into conf. */
void members__fill(struct rk_node *n, const struct raft_configuration *conf,
                   Raftkv__Client__Member *members, Raftkv__Client__Member **ptrs);
/* Answers call with the members as this node knows them. */
void members__reply_list(struct rk_node *n, struct rk_client_call *call);
/* After each ready: answers a move-leader request once its transfer is decided. */
void members__transfer_check(struct rk_node *n);
/* Stopping: a leader first hands its leadership to the most up-to-date voter, waiting at
 * most about two election timeouts, so that clients need not wait out an election. */
void members__hand_off(struct rk_node *n);

/* ---- change_stream.c ---- */

/* Publishes the events of the applied entries (one per entry, empty ones skipped). */
void changes__publish(struct rk_node *n, const struct raftkv_buf *events, size_t count);
/* Logs and publishes the leader in n->view if it changed. */
void changes__leader(struct rk_node *n);

/* ---- TLS service (tls_service.c). ---- */

/* Builds the TLS configs from the node's files, if it has any. RK_NODE_ECONFIG after
 * logging which file is missing or invalid. */
int tls__start(struct rk_node *n);
/* About once a second: counts and logs the handshakes NNG refused since the last poll. */
void tls__poll(struct rk_node *n);
void tls__free(struct rk_node *n);

#endif
