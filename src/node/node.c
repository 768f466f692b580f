#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kv.pb-c.h"
#include "node/log.h"
#include "node/node.h"
#include "node/queue.h"
#include "node/snapshot.h"
#include "storage/db.h"
#include "storage/storage.h"
#include "transport/transport.h"

/* Room kept free in the map: proposals are refused beyond max_db_bytes minus this, so the
 * node can still persist heartbeats' terms, votes and the entries already in flight. */
#define FULL_HEADROOM_MIN (8u << 20)
/* How often a batch that hit a full map is retried. */
#define FULL_RETRY_MS 1000
/* A loop that fell this many ticks behind (e.g. a slow fsync) resynchronizes its clock
 * instead of firing them all at once. */
#define MAX_TICK_CATCHUP 10
/* How long after a failed snapshot the next is tried. */
#define SNAPSHOT_RETRY_MS 5000
/* A new snapshot restarts every transfer of the old one (the node keeps only its latest):
 * while one is being sent (a chunk left within this time), the next waits, until the log
 * since the latest grows to SNAPSHOT_DEFER_FACTOR times the thresholds. So a follower
 * that needs longer than a snapshot interval to receive one still gets it. */
#define SNAPSHOT_SENDING_MS 1000
#define SNAPSHOT_DEFER_FACTOR 4
/* What an entry costs in the log beyond its data (key, term, type, LMDB node), for
 * snapshot_bytes. */
#define ENTRY_OVERHEAD 32

enum event_type { EV_PEER_MSG, EV_CLIENT_REQUEST, EV_SNAPSHOT_DONE };

struct event {
    struct rk_queue_item item; /* first: the queue hands back items */
    enum event_type type;
    struct raft_msg msg;         /* EV_PEER_MSG; owned */
    struct rk_client_call *call; /* EV_CLIENT_REQUEST */
    size_t len;
    uint8_t data[]; /* the packed ClientRequest */
};

/* A read-only request waiting for its ReadIndex round (index 0 until confirmed), then for
 * the state machine to have applied up to index. */
struct read {
    uint64_t ctx;
    raft_index index;
    struct rk_client_call *call;
    uint8_t *request;
    size_t len;
};

/* A proposal waiting for its entry to commit: it succeeded iff the entry committed at
 * index has this term. */
struct pending {
    raft_index index;
    raft_term term;
    struct rk_client_call *call;
};

/* The state machine's outputs for one ready, one per committed entry. */
struct batch {
    struct rk_node *node;
    const struct raft_ready *rd;
    struct raftkv_buf *responses;
    struct raftkv_buf *changes;
    int fsm_err;  /* the state machine's error that ended the write, if any */
    bool settled; /* the proposals of rd.committed are answered */
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
};

struct rk_node {
    const struct rk_config *cfg;
    struct rk_db *db;
    struct rk_storage *storage;
    struct raftkv_fsm *fsm;
    struct raft *raft;
    struct rk_transport *transport;
    struct rk_client_server *clients;
    struct rk_publisher *pub;
    struct rk_queue queue;
    bool queue_ready;
    atomic_bool stop;
    uint64_t rng;

    struct read *reads; /* FIFO by ctx: confirmed ones first */
    size_t n_reads, cap_reads;
    uint64_t last_read_ctx;
    struct pending *pending; /* FIFO by index, from pending_head */
    size_t pending_head, n_pending, pending_cap;

    struct view view;
    raft_id published_leader;
    raft_term published_term;

    /* A ready whose write hit a full map: the core may not be called until it is written
     * and advanced, so it is retried and the node answers "storage full" meanwhile. */
    bool held;
    struct raft_ready held_rd;
    struct timespec retry_at;
    bool refusing_full; /* proposals refused: the map is within the headroom of full */
    size_t max_request_bytes;
    int fatal;

    struct rk_snapdir snapdir;
    bool snapdir_open;
    uint8_t *chunk_buf;            /* fills outgoing InstallSnapshot chunks */
    int install_fd;                /* the received snapshot being installed, until adopted */
    struct timespec receive_start; /* when the snapshot being received started */
    uint64_t write_us;             /* how long the last batch write took */
    struct timespec chunk_sent_at; /* when this node last sent a snapshot chunk */
    /* The producer: at most one snapshot in progress. */
    struct rk_snap_job job;
    bool job_running;
    struct event *job_event; /* posted by the job when it ends */
    struct timespec snapshot_retry_at;
    /* Entry bytes applied after the latest snapshot (or the log start). */
    uint64_t applied_bytes;
};

static void ts_add_ms(struct timespec *ts, unsigned ms)
{
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    ts->tv_sec += ms / 1000 + ts->tv_nsec / 1000000000L;
    ts->tv_nsec %= 1000000000L;
}

static bool ts_reached(const struct timespec *now, const struct timespec *t)
{
    return now->tv_sec > t->tv_sec || (now->tv_sec == t->tv_sec && now->tv_nsec >= t->tv_nsec);
}

static struct timespec mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts;
}

/* xorshift64*: election timeouts only need to differ between nodes, not be secret. */
static uint32_t node_random(void *arg, uint32_t bound)
{
    struct rk_node *n = arg;
    n->rng ^= n->rng >> 12;
    n->rng ^= n->rng << 25;
    n->rng ^= n->rng >> 27;
    return bound ? (uint32_t)((n->rng * 0x2545F4914F6CDD1DULL) >> 32) % bound : 0;
}

static uint64_t random_seed(raft_id id)
{
    uint64_t seed = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, &seed, sizeof seed) != (ssize_t)sizeof seed)
            seed = 0;
        close(fd);
    }
    struct timespec ts = mono_now();
    seed ^= (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^ (id * 0x9E3779B97F4A7C15ULL);
    return seed ? seed : 1;
}

/* ---- Called from NNG threads: queue and return. ---- */

static void on_peer_msg(void *arg, struct raft_msg *msg)
{
    struct rk_node *n = arg;
    struct event *ev = malloc(sizeof *ev);
    if (!ev) {
        raft_msg_free(msg);
        return; /* Raft tolerates a lost message. */
    }
    ev->type = EV_PEER_MSG;
    ev->msg = *msg;
    rk_queue_push(&n->queue, &ev->item);
}

static void on_client_request(void *arg, struct rk_client_call *call, const uint8_t *req,
                              size_t len)
{
    struct rk_node *n = arg;
    struct event *ev = malloc(sizeof *ev + len);
    if (!ev) {
        /* An empty reply (which the client takes as malformed, and retries) still frees
         * the server's context for the next request; leaving it unanswered would lose it
         * for good. */
        rk_error("out of memory queueing a client request");
        rk_client_server_reply(n->clients, call, NULL, 0);
        return;
    }
    ev->type = EV_CLIENT_REQUEST;
    ev->call = call;
    ev->len = len;
    if (len)
        memcpy(ev->data, req, len);
    rk_queue_push(&n->queue, &ev->item);
}

/* ---- Replies to clients. ---- */

static void reply_response(struct rk_node *n, struct rk_client_call *call,
                           const Raftkv__Kv__ClientResponse *resp)
{
    size_t len = raftkv__kv__client_response__get_packed_size(resp);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        rk_error("out of memory packing a client response");
        rk_client_server_reply(n->clients, call, NULL, 0);
        return;
    }
    raftkv__kv__client_response__pack(resp, buf);
    rk_client_server_reply(n->clients, call, buf, len);
    free(buf);
}

static void reply_error(struct rk_node *n, struct rk_client_call *call, Raftkv__Kv__Code code,
                        const char *error)
{
    Raftkv__Kv__ClientResponse resp = RAFTKV__KV__CLIENT_RESPONSE__INIT;
    resp.code = code;
    resp.error = (char *)error;
    reply_response(n, call, &resp);
}

static void reply_not_leader(struct rk_node *n, struct rk_client_call *call)
{
    Raftkv__Kv__NotLeader nl = RAFTKV__KV__NOT_LEADER__INIT;
    nl.leader_id = n->view.leader;
    const struct rk_member *m = rk_config_member(n->cfg, n->view.leader);
    if (m && m->client_url)
        nl.leader_address = m->client_url;
    Raftkv__Kv__ClientResponse resp = RAFTKV__KV__CLIENT_RESPONSE__INIT;
    resp.code = RAFTKV__KV__CODE__NOT_LEADER;
    resp.not_leader = &nl;
    resp.error = n->view.leader ? "not the leader" : "no leader known yet";
    reply_response(n, call, &resp);
}

static void reply_status(struct rk_node *n, struct rk_client_call *call)
{
    Raftkv__Kv__NodeStatus st = RAFTKV__KV__NODE_STATUS__INIT;
    st.id = n->cfg->node_id;
    st.role = (char *)raft_role_name(n->view.role);
    st.term = n->view.term;
    st.leader_id = n->view.leader;
    st.commit_index = n->view.commit;
    st.applied_index = n->view.applied;
    st.last_log_index = n->view.last_index;
    Raftkv__Kv__ClientResponse resp = RAFTKV__KV__CLIENT_RESPONSE__INIT;
    resp.status = &st;
    reply_response(n, call, &resp);
}

static void reply_bytes(struct rk_node *n, struct rk_client_call *call, const struct raftkv_buf *b)
{
    if (b->len)
        rk_client_server_reply(n->clients, call, b->data, b->len);
    else
        reply_error(n, call, RAFTKV__KV__CODE__INTERNAL, "the state machine gave no answer");
}

/* ---- Proposals awaiting commit. ---- */

static int pending_push(struct rk_node *n, raft_index index, raft_term term,
                        struct rk_client_call *call)
{
    if (n->pending_head + n->n_pending == n->pending_cap) {
        if (n->pending_head > 0) {
            memmove(n->pending, n->pending + n->pending_head, n->n_pending * sizeof n->pending[0]);
            n->pending_head = 0;
        } else {
            size_t cap = n->pending_cap ? 2 * n->pending_cap : 64;
            struct pending *p = realloc(n->pending, cap * sizeof *p);
            if (!p)
                return -1;
            n->pending = p;
            n->pending_cap = cap;
        }
    }
    n->pending[n->pending_head + n->n_pending++] = (struct pending){index, term, call};
    return 0;
}

static struct pending *pending_front(struct rk_node *n)
{
    return n->n_pending ? &n->pending[n->pending_head] : NULL;
}

static void pending_pop(struct rk_node *n)
{
    n->pending_head++;
    if (--n->n_pending == 0)
        n->pending_head = 0;
}

static void pending_fail_all(struct rk_node *n, const char *why)
{
    if (n->n_pending)
        rk_info("answering %zu waiting proposals UNAVAILABLE: %s", n->n_pending, why);
    while (n->n_pending) {
        reply_error(n, pending_front(n)->call, RAFTKV__KV__CODE__UNAVAILABLE, why);
        pending_pop(n);
    }
}

static void read_pop(struct rk_node *n, size_t i)
{
    free(n->reads[i].request);
    memmove(&n->reads[i], &n->reads[i + 1], (n->n_reads - i - 1) * sizeof n->reads[0]);
    n->n_reads--;
}

/* Fails the reads still waiting for a round (all of them with all set). A confirmed read
 * stays valid after a change of leader: its state was current when it was confirmed. */
static void reads_fail(struct rk_node *n, const char *why, bool all)
{
    for (size_t i = n->n_reads; i-- > 0;) {
        if (all || n->reads[i].index == 0) {
            reply_error(n, n->reads[i].call, RAFTKV__KV__CODE__UNAVAILABLE, why);
            read_pop(n, i);
        }
    }
}

static void reads_confirm(struct rk_node *n, const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_read_states; i++)
        for (size_t j = 0; j < n->n_reads; j++)
            if (n->reads[j].ctx == rd->read_states[i].ctx)
                n->reads[j].index = rd->read_states[i].index;
}

/* Answers the confirmed reads whose index the state machine has reached. */
static void reads_serve(struct rk_node *n)
{
    raft_index applied = raft_applied_of(n->raft);
    while (n->n_reads && n->reads[0].index && n->reads[0].index <= applied) {
        struct read *rd = &n->reads[0];
        struct raftkv_buf result = {0};
        int rc = n->fsm->ops->query(n->fsm, rd->request, rd->len, &result);
        if (rc == 0)
            reply_bytes(n, rd->call, &result);
        else
            reply_error(n, rd->call, RAFTKV__KV__CODE__UNAVAILABLE,
                        n->fsm->ops->strerror(n->fsm, rc));
        free(result.data);
        read_pop(n, 0);
    }
}

/* Raft dissertation §6.4: a read needs no log write, only a confirmation that this node
 * still leads (raft_read_index) and a state machine caught up to the commit index. */
static void read_request(struct rk_node *n, struct event *ev)
{
    if (n->n_reads == n->cap_reads) {
        size_t cap = n->cap_reads ? 2 * n->cap_reads : 64;
        struct read *grown = realloc(n->reads, cap * sizeof *grown);
        if (!grown) {
            reply_error(n, ev->call, RAFTKV__KV__CODE__UNAVAILABLE, "out of memory");
            return;
        }
        n->reads = grown;
        n->cap_reads = cap;
    }
    uint8_t *copy = malloc(ev->len ? ev->len : 1);
    if (!copy) {
        reply_error(n, ev->call, RAFTKV__KV__CODE__UNAVAILABLE, "out of memory");
        return;
    }
    memcpy(copy, ev->data, ev->len);
    int rc = raft_read_index(n->raft, ++n->last_read_ctx);
    if (rc != RAFT_OK) {
        free(copy);
        if (rc == RAFT_ENOTLEADER)
            reply_not_leader(n, ev->call);
        else
            reply_error(n, ev->call, RAFTKV__KV__CODE__UNAVAILABLE, raft_strerror(rc));
        return;
    }
    n->reads[n->n_reads++] = (struct read){n->last_read_ctx, 0, ev->call, copy, ev->len};
}

/* Answers the proposals that the committed entry e settles. */
static void pending_settle(struct rk_node *n, const struct raft_entry *e,
                           const struct raftkv_buf *response)
{
    struct pending *p;
    while ((p = pending_front(n)) && p->index <= e->index) {
        if (p->index == e->index && p->term == e->term)
            reply_bytes(n, p->call, response);
        else
            reply_error(n, p->call, RAFTKV__KV__CODE__UNAVAILABLE, "leadership changed, retry");
        pending_pop(n);
    }
}

/* ---- Client requests. ---- */

static bool storage_nearly_full(struct rk_node *n)
{
    struct rk_db_stats st;
    rk_db_stats(n->db, &st);
    uint64_t max = n->cfg->max_db_bytes;
    uint64_t headroom = max / 20 > FULL_HEADROOM_MIN ? max / 20 : FULL_HEADROOM_MIN;
    bool full = st.used_bytes + headroom >= max;
    if (full != n->refusing_full)
        full ? rk_error("storage nearly full (%zu of %llu bytes used): refusing writes; raise "
                        "max_db_bytes and restart",
                        st.used_bytes, (unsigned long long)max)
             : rk_info("storage has room again: accepting writes");
    n->refusing_full = full;
    return full;
}

/* The request's operation as a replicated Command (same fields, without status). */
static int command_pack(const Raftkv__Kv__ClientRequest *req, uint8_t **out, size_t *out_len)
{
    Raftkv__Kv__Command cmd = RAFTKV__KV__COMMAND__INIT;
    cmd.client_id = req->client_id;
    cmd.sequence = req->sequence;
    switch (req->op_case) {
    case RAFTKV__KV__CLIENT_REQUEST__OP_PUT:
        cmd.op_case = RAFTKV__KV__COMMAND__OP_PUT;
        cmd.put = req->put;
        break;
    case RAFTKV__KV__CLIENT_REQUEST__OP_GET:
        cmd.op_case = RAFTKV__KV__COMMAND__OP_GET;
        cmd.get = req->get;
        break;
    case RAFTKV__KV__CLIENT_REQUEST__OP_DELETE:
        cmd.op_case = RAFTKV__KV__COMMAND__OP_DELETE;
        cmd.delete_ = req->delete_;
        break;
    case RAFTKV__KV__CLIENT_REQUEST__OP_CAS:
        cmd.op_case = RAFTKV__KV__COMMAND__OP_CAS;
        cmd.cas = req->cas;
        break;
    case RAFTKV__KV__CLIENT_REQUEST__OP_CUSTOM:
        cmd.op_case = RAFTKV__KV__COMMAND__OP_CUSTOM;
        cmd.custom = req->custom;
        break;
    default:
        return -1;
    }
    *out_len = raftkv__kv__command__get_packed_size(&cmd);
    *out = malloc(*out_len ? *out_len : 1);
    if (!*out)
        return -1;
    raftkv__kv__command__pack(&cmd, *out);
    return 0;
}

static void propose_request(struct rk_node *n, struct event *ev,
                            const Raftkv__Kv__ClientRequest *req)
{
    struct raftkv_buf invalid = {0};
    int rc = n->fsm->ops->validate(n->fsm, ev->data, ev->len, &invalid);
    if (rc != 0 && invalid.len)
        reply_bytes(n, ev->call, &invalid);
    else if (rc != 0)
        reply_error(n, ev->call, RAFTKV__KV__CODE__UNAVAILABLE, n->fsm->ops->strerror(n->fsm, rc));
    free(invalid.data);
    if (rc != 0)
        return;
    uint8_t *cmd;
    size_t len;
    if (command_pack(req, &cmd, &len) != 0) {
        reply_error(n, ev->call, RAFTKV__KV__CODE__INTERNAL, "out of memory");
        return;
    }
    raft_index index;
    raft_term term;
    rc = raft_propose(n->raft, cmd, len, &index, &term);
    free(cmd);
    if (rc == RAFT_ENOTLEADER)
        reply_not_leader(n, ev->call);
    else if (rc == RAFT_ETOOBIG)
        reply_error(n, ev->call, RAFTKV__KV__CODE__INVALID, "request too large");
    else if (rc != RAFT_OK)
        reply_error(n, ev->call, RAFTKV__KV__CODE__UNAVAILABLE, raft_strerror(rc));
    else if (pending_push(n, index, term, ev->call) != 0)
        /* The entry may still commit; the client retries and sees the result then. */
        reply_error(n, ev->call, RAFTKV__KV__CODE__UNAVAILABLE, "out of memory");
}

static void handle_client_request(struct rk_node *n, struct event *ev)
{
    Raftkv__Kv__ClientRequest *req = raftkv__kv__client_request__unpack(NULL, ev->len, ev->data);
    if (!req) {
        rk_debug("malformed client request (%zu bytes)", ev->len);
        reply_error(n, ev->call, RAFTKV__KV__CODE__INVALID, "malformed request");
        return;
    }
    if (req->op_case == RAFTKV__KV__CLIENT_REQUEST__OP_STATUS)
        reply_status(n, ev->call);
    else if (req->op_case == RAFTKV__KV__CLIENT_REQUEST__OP__NOT_SET)
        reply_error(n, ev->call, RAFTKV__KV__CODE__INVALID, "request without an operation");
    else if (n->held)
        reply_error(n, ev->call, RAFTKV__KV__CODE__UNAVAILABLE, "storage full");
    else if (raft_role_of(n->raft) != RAFT_LEADER)
        reply_not_leader(n, ev->call);
    else if (req->op_case == RAFTKV__KV__CLIENT_REQUEST__OP_GET && n->fsm->ops->query)
        read_request(n, ev); /* served even when storage is full: it writes nothing */
    else if (storage_nearly_full(n))
        reply_error(n, ev->call, RAFTKV__KV__CODE__UNAVAILABLE, "storage full");
    else
        propose_request(n, ev, req);
    raftkv__kv__client_request__free_unpacked(req, NULL);
}

/* ---- The ready: persist, apply, answer. ---- */

static void batch_reset(struct batch *b)
{
    for (size_t i = 0; i < b->rd->n_committed; i++) {
        free(b->responses[i].data);
        free(b->changes[i].data);
        b->responses[i] = b->changes[i] = (struct raftkv_buf){0};
    }
    b->fsm_err = 0;
}

/* Runs inside rk_db_write, possibly more than once: it starts from empty outputs, and a
 * snapshot to install is read again from its first byte. The state machine is restored
 * first: the ready's entries come after the snapshot. */
static int batch_write(MDB_txn *txn, void *arg)
{
    (void)txn;
    struct batch *b = arg;
    struct rk_node *n = b->node;
    struct raftkv_fsm *fsm = n->fsm;
    batch_reset(b);
    int rc = 0;
    if (b->rd->install_snapshot) {
        struct rk_snap_reader reader = {n->install_fd, 0};
        b->fsm_err = rc = fsm->ops->restore(fsm, b->rd->snapshot.index, rk_snap_read_fn, &reader);
    }
    if (rc == 0)
        rc = n->storage->ops->save(n->storage, b->rd);
    for (size_t i = 0; rc == 0 && i < b->rd->n_committed; i++)
        b->fsm_err = rc =
            fsm->ops->apply(fsm, &b->rd->committed[i], &b->responses[i], &b->changes[i]);
    /* The answers rest on the entries being committed, durable on a majority, not on this
     * transaction: a crash before it commits re-applies them from the log, to the same
     * results. So the clients need not wait for this fsync. Were the write run again (the
     * map grew), its results would be the same: they are answered once. */
    if (rc == 0 && !b->settled) {
        for (size_t i = 0; i < b->rd->n_committed; i++)
            pending_settle(n, &b->rd->committed[i], &b->responses[i]);
        b->settled = true;
    }
    return rc;
}

/* An InstallSnapshot from the core carries no bytes: they come from the snapshot file. */
static int fill_chunk(struct rk_node *n, struct raft_msg *m)
{
    struct raft_install_snapshot *s = &m->install_snapshot;
    if (s->data || s->len == 0)
        return 0;
    if (s->len > n->cfg->snapshot_chunk_bytes)
        return EINVAL;
    int rc = rk_snap_read(&n->snapdir, s->last_index, s->offset, n->chunk_buf, s->len);
    s->data = n->chunk_buf;
    return rc;
}

static void send_msgs(struct rk_node *n, const struct raft_msg *msgs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        struct raft_msg m = msgs[i];
        int rc = m.type == RAFT_MSG_INSTALL_SNAPSHOT ? fill_chunk(n, &m) : 0;
        if (rc != 0) {
            /* The core resends what is not acknowledged. */
            rk_debug("cannot send snapshot %" PRIu64 " bytes %" PRIu64 "+%zu to %" PRIu64 ": %s",
                     m.install_snapshot.last_index, m.install_snapshot.offset,
                     m.install_snapshot.len, m.to, strerror(rc));
            continue;
        }
        if (m.type == RAFT_MSG_INSTALL_SNAPSHOT)
            n->chunk_sent_at = mono_now();
        rc = rk_transport_send(n->transport, &m);
        if (rc != 0)
            rk_debug("send %s to %llu failed (%d)", raft_msg_type_name(m.type),
                     (unsigned long long)m.to, rc);
    }
}

static void publish_changes(struct rk_node *n, const struct batch *b)
{
    if (!n->pub)
        return;
    for (size_t i = 0; i < b->rd->n_committed; i++)
        if (b->changes[i].len)
            rk_publisher_send(n->pub, RK_TOPIC_KV, b->changes[i].data, b->changes[i].len);
}

static void publish_leader(struct rk_node *n)
{
    if (n->published_leader == n->view.leader && n->published_term == n->view.term)
        return;
    n->published_leader = n->view.leader;
    n->published_term = n->view.term;
    if (n->view.leader)
        rk_info("leader is %llu", (unsigned long long)n->view.leader);
    if (!n->pub)
        return;
    Raftkv__Kv__LeaderEvent ev = RAFTKV__KV__LEADER_EVENT__INIT;
    ev.term = n->view.term;
    ev.leader_id = n->view.leader;
    uint8_t buf[32];
    size_t len = raftkv__kv__leader_event__pack(&ev, buf);
    rk_publisher_send(n->pub, RK_TOPIC_LEADER, buf, len);
}

/* Takes in the core's state after an advance (or at start). */
static void view_update(struct rk_node *n)
{
    struct view old = n->view;
    struct raft *r = n->raft;
    n->view = (struct view){raft_role_of(r),   raft_term_of(r),    raft_leader_of(r),
                            raft_commit_of(r), raft_applied_of(r), raft_last_index_of(r)};
    rk_log_set_node(n->cfg->node_id, n->view.term, raft_role_name(n->view.role));
    if (old.role != n->view.role || old.term != n->view.term)
        rk_info("now %s in term %llu", raft_role_name(n->view.role),
                (unsigned long long)n->view.term);
    if (n->view.role != RAFT_LEADER) {
        pending_fail_all(n, "leadership changed, retry");
        reads_fail(n, "leadership changed, retry", false);
    }
    publish_leader(n);
}

/* The received snapshot in rd is now the node's state: its file is the latest. */
static void install_finish(struct rk_node *n, const struct raft_ready *rd)
{
    rk_snap_adopt(&n->snapdir, &rd->snapshot, n->install_fd);
    n->install_fd = -1;
    n->applied_bytes = 0;
    struct timespec now = mono_now();
    double total = (double)(now.tv_sec - n->receive_start.tv_sec) +
                   (double)(now.tv_nsec - n->receive_start.tv_nsec) / 1e9;
    double write = (double)n->write_us / 1e6;
    double mb = (double)rd->snapshot.size / 1e6;
    rk_info("installed the snapshot at index %" PRIu64 " (term %" PRIu64 ", %" PRIu64
            " bytes) from the leader: received and installed in %.3f s (%.1f MB/s), of which "
            "the install's write %.3f s (%.1f MB/s)",
            rd->snapshot.index, rd->snapshot.term, rd->snapshot.size, total,
            total > 0 ? mb / total : 0.0, write, write > 0 ? mb / write : 0.0);
}

/* What follows a durable write of rd: acknowledgements, answers, events, advance. */
static void ready_finish(struct rk_node *n, struct raft_ready *rd, struct batch *b)
{
    if (rd->install_snapshot)
        install_finish(n, rd);
    send_msgs(n, rd->msgs_after_persist, rd->n_msgs_after_persist);
    for (size_t i = 0; i < rd->n_committed; i++)
        n->applied_bytes += rd->committed[i].len + ENTRY_OVERHEAD;
    publish_changes(n, b);
    rk_debug("batch: %zu entries, %zu committed, %zu+%zu msgs, written in %" PRIu64 " us",
             rd->n_entries, rd->n_committed, rd->n_msgs, rd->n_msgs_after_persist, n->write_us);
    reads_confirm(n, rd);
    raft_advance(n->raft, rd);
    view_update(n);
    reads_serve(n);
}

/* b: the batch that failed, if any (its state machine's error, or storage's). */
static const char *write_error(struct rk_node *n, const struct batch *b, int rc)
{
    return b && b->fsm_err == rc ? n->fsm->ops->strerror(n->fsm, rc) : rk_db_errmsg(n->db);
}

/* Writes rd and, once durable, finishes it. Returns false if rd is held back. */
static bool ready_write(struct rk_node *n, struct raft_ready *rd)
{
    size_t k = rd->n_committed ? rd->n_committed : 1;
    struct batch b = {
        n, rd,   calloc(k, sizeof(struct raftkv_buf)), calloc(k, sizeof(struct raftkv_buf)),
        0, false};
    struct timespec start = mono_now();
    int rc = b.responses && b.changes ? rk_db_write(n->db, batch_write, &b) : RK_DB_ENOMEM;
    struct timespec end = mono_now();
    n->write_us =
        (uint64_t)((end.tv_sec - start.tv_sec) * 1000000L + (end.tv_nsec - start.tv_nsec) / 1000L);
    if (rc == RK_DB_OK) {
        ready_finish(n, rd, &b);
        n->held = false;
    } else if (rc == RK_DB_EFULL || rc == RK_DB_ENOMEM) {
        if (!n->held)
            rk_error("cannot persist a batch (%s): holding it, retrying every %d ms; raise "
                     "max_db_bytes and restart if this persists",
                     rc == RK_DB_EFULL ? "storage full" : "out of memory", FULL_RETRY_MS);
        n->held = true;
        n->held_rd = *rd;
        n->retry_at = mono_now();
        ts_add_ms(&n->retry_at, FULL_RETRY_MS);
        pending_fail_all(n, "storage full");
        reads_fail(n, "storage full", true);
    } else {
        rk_error("synced write%s failed: %s; stopping",
                 rd->install_snapshot ? " installing a snapshot" : "", write_error(n, &b, rc));
        n->fatal = RK_NODE_ESTORAGE;
    }
    if (b.responses && b.changes)
        batch_reset(&b);
    free(b.responses);
    free(b.changes);
    return rc == RK_DB_OK;
}

/* The snapshot bytes of rd go to their file, durably, before the write that acknowledges
 * them; a complete one is renamed to its final name, to be installed by the write. */
static int ready_files(struct rk_node *n, const struct raft_ready *rd)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < rd->n_snapshot_chunks; i++) {
        if (rd->snapshot_chunks[i].offset == 0)
            n->receive_start = mono_now();
        rc = rk_snap_write_chunk(&n->snapdir, &rd->snapshot_chunks[i]);
    }
    if (rc == 0 && rd->n_snapshot_chunks)
        rc = rk_snap_sync_incoming(&n->snapdir);
    if (rc == 0 && rd->install_snapshot)
        rc = rk_snap_publish(&n->snapdir, true, rd->snapshot.index, &n->install_fd);
    if (rc != 0) {
        rk_error("cannot write the snapshot received from the leader in %s: %s; stopping",
                 n->snapdir.dir, strerror(rc));
        n->fatal = RK_NODE_ESTORAGE;
    }
    /* Room for the restored state (with LMDB's overhead) at once, rather than a restore
     * run again after each doubling of the map. A map that cannot grow enough fails the
     * write, which reports it. */
    if (rc == 0 && rd->install_snapshot)
        rk_db_reserve(n->db, rd->snapshot.size + rd->snapshot.size / 2);
    return rc;
}

static void process_ready(struct rk_node *n)
{
    if (n->held) {
        struct timespec now = mono_now();
        if (!ts_reached(&now, &n->retry_at) || !ready_write(n, &n->held_rd))
            return;
        rk_info("storage accepted the held batch again");
    }
    while (!n->fatal && raft_has_ready(n->raft)) {
        struct raft_ready rd;
        raft_ready(n->raft, &rd);
        /* The leader's appends may leave before its own write (Raft §10.2.1). */
        send_msgs(n, rd.msgs, rd.n_msgs);
        if (ready_files(n, &rd) != 0 || !ready_write(n, &rd))
            return;
    }
}

/* ---- Snapshots of the state machine and log compaction. ---- */

/* Bytes of the entries applied after index, as far as the core still holds them. */
static uint64_t applied_bytes_after(struct rk_node *n, raft_index index)
{
    uint64_t sum = 0;
    for (raft_index i = index + 1; i <= raft_applied_of(n->raft); i++) {
        const struct raft_entry *e = raft_entry_at(n->raft, i);
        sum += e ? e->len + ENTRY_OVERHEAD : 0;
    }
    return sum;
}

/* The point the next snapshot is measured from: the latest one, or the log start when
 * its file is missing. */
static raft_index snapshot_base(struct rk_node *n)
{
    raft_index start = raft_first_index_of(n->raft) - 1;
    return n->snapdir.latest.index > start ? n->snapdir.latest.index : start;
}

static void snapshot_done(void *arg)
{
    struct rk_node *n = arg;
    rk_queue_push(&n->queue, &n->job_event->item);
}

static int persist_write(MDB_txn *txn, void *arg)
{
    (void)txn;
    struct raftkv_fsm *fsm = arg;
    return fsm->ops->persist(fsm);
}

/* Stores what the state machine keeps in memory only (fsm.h, persist). */
static int fsm_persist(struct rk_node *n)
{
    if (!n->fsm->ops->persist)
        return 0;
    int rc = rk_db_write(n->db, persist_write, n->fsm);
    if (rc != RK_DB_OK)
        rk_error("cannot store the state machine's applied state: %s", write_error(n, NULL, rc));
    return rc;
}

static void snapshot_retry_later(struct rk_node *n)
{
    n->snapshot_retry_at = mono_now();
    ts_add_ms(&n->snapshot_retry_at, SNAPSHOT_RETRY_MS);
}

static void snapshot_maybe_start(struct rk_node *n)
{
    const struct rk_config *cfg = n->cfg;
    raft_index applied = raft_applied_of(n->raft), base = snapshot_base(n);
    /* Without a file for the stored snapshot the node has nothing to send: take one. */
    bool missing = n->snapdir.latest.index == 0 && base > 0;
    raft_index entries = applied > base ? applied - base : 0;
    unsigned factor = 1;
    struct timespec now = mono_now(), sending_until = n->chunk_sent_at;
    ts_add_ms(&sending_until, SNAPSHOT_SENDING_MS);
    if (!ts_reached(&now, &sending_until))
        factor = SNAPSHOT_DEFER_FACTOR;
    bool due = entries >= factor * cfg->snapshot_entries ||
               n->applied_bytes >= factor * (uint64_t)cfg->snapshot_bytes;
    if (n->job_running || n->held || applied == 0 || !(due || missing) ||
        !ts_reached(&now, &n->snapshot_retry_at))
        return;
    /* The snapshot reads what is stored: all that was applied, once persisted. */
    if (fsm_persist(n) != 0) {
        snapshot_retry_later(n);
        return;
    }
    /* Ready before the thread starts: it may end (and post it) at once. */
    n->job_event = calloc(1, sizeof *n->job_event);
    if (n->job_event)
        n->job_event->type = EV_SNAPSHOT_DONE;
    int rc = n->job_event ? rk_snap_produce_start(&n->snapdir, &n->job, n->fsm, snapshot_done, n)
                          : ENOMEM;
    if (rc != 0) {
        rk_error("cannot start a snapshot: %s", strerror(rc));
        free(n->job_event);
        n->job_event = NULL;
        snapshot_retry_later(n);
        return;
    }
    n->job_running = true;
    rk_debug("taking a snapshot: %" PRIu64 " entries, %" PRIu64 " bytes applied since %" PRIu64,
             applied - base, n->applied_bytes, base);
}

struct compaction {
    struct rk_node *node;
    const struct raft_snapshot_meta *meta;
    raft_index compact_to;
    raft_term compact_term;
};

static int compaction_write(MDB_txn *txn, void *arg)
{
    (void)txn;
    struct compaction *c = arg;
    struct rk_storage *s = c->node->storage;
    return s->ops->compact(s, c->meta, c->compact_to, c->compact_term);
}

/* Records the snapshot at meta (published as fd) in storage, then in the core, deleting
 * the log up to it less the trailing margin. */
static int snapshot_compact(struct rk_node *n, const struct raft_snapshot_meta *meta, int fd)
{
    raft_index start = raft_first_index_of(n->raft) - 1;
    raft_index trailing = n->cfg->snapshot_trailing_entries;
    raft_index to = meta->index > start + trailing ? meta->index - trailing : start;
    struct compaction c = {n, meta, to, raft_term_at(n->raft, to)};
    int rc = rk_db_write(n->db, compaction_write, &c);
    if (rc != RK_DB_OK) {
        rk_error("cannot record the snapshot at index %" PRIu64 ": %s", meta->index,
                 rk_db_errmsg(n->db));
        if (rc != RK_DB_EFULL && rc != RK_DB_ENOMEM)
            n->fatal = RK_NODE_ESTORAGE;
        return rc;
    }
    rc = raft_compact(n->raft, meta, to);
    if (rc != RAFT_OK) {
        /* Storage is compacted already: the core and storage would disagree. */
        rk_error("the core refused the snapshot at index %" PRIu64 ": %s; stopping", meta->index,
                 raft_strerror(rc));
        n->fatal = RK_NODE_ERAFT;
        return rc;
    }
    rk_snap_adopt(&n->snapdir, meta, fd);
    n->applied_bytes = applied_bytes_after(n, meta->index);
    rk_info("log compacted up to index %" PRIu64 " (snapshot at %" PRIu64 ")", to, meta->index);
    return 0;
}

/* The producer ended: keep its snapshot if it is newer than the latest and can be used. */
static void snapshot_finish(struct rk_node *n)
{
    struct rk_snap_job *job = &n->job;
    rk_snap_produce_join(job);
    n->job_running = false;
    n->job_event = NULL; /* handle_event frees it */
    struct raft_snapshot_meta meta = {job->index, raft_term_at(n->raft, job->index), job->size};
    double secs = (double)job->elapsed_us / 1e6;
    if (job->rc != 0) {
        rk_error("snapshot failed: %s",
                 job->errno_failed ? strerror(job->rc) : n->fsm->ops->strerror(n->fsm, job->rc));
        rk_snap_discard(&n->snapdir, false, 0, -1);
        snapshot_retry_later(n);
        return;
    }
    /* Older than what was installed meanwhile, or the core cannot be called now. */
    if (meta.index <= n->snapdir.latest.index || meta.term == 0 || n->held) {
        rk_snap_discard(&n->snapdir, false, 0, -1);
        return;
    }
    rk_info("snapshot at index %" PRIu64 ": %" PRIu64 " bytes in %.3f s (%.1f MB/s)", meta.index,
            meta.size, secs, secs > 0 ? (double)meta.size / 1e6 / secs : 0.0);
    int fd;
    int rc = rk_snap_publish(&n->snapdir, false, meta.index, &fd);
    if (rc != 0)
        rk_error("cannot keep the snapshot at index %" PRIu64 ": %s", meta.index, strerror(rc));
    if (rc == 0)
        rc = snapshot_compact(n, &meta, fd);
    if (rc != 0) {
        rk_snap_discard(&n->snapdir, false, fd >= 0 ? meta.index : 0, fd);
        snapshot_retry_later(n);
    }
}

/* ---- The loop. ---- */

static void handle_event(struct rk_node *n, struct event *ev)
{
    if (ev->type == EV_CLIENT_REQUEST) {
        handle_client_request(n, ev);
    } else if (ev->type == EV_SNAPSHOT_DONE) {
        snapshot_finish(n);
    } else {
        /* While a ready is held the core may not be called: the message is lost, which
         * Raft tolerates. */
        if (!n->held) {
            int rc = raft_step(n->raft, &ev->msg);
            if (rc != RAFT_OK)
                rk_debug("dropped %s from %llu: %s", raft_msg_type_name(ev->msg.type),
                         (unsigned long long)ev->msg.from, raft_strerror(rc));
        }
        raft_msg_free(&ev->msg);
    }
    free(ev);
}

static void tick_due(struct rk_node *n, struct timespec *next_tick)
{
    struct timespec now = mono_now();
    for (int i = 0; ts_reached(&now, next_tick); i++) {
        if (i == MAX_TICK_CATCHUP) {
            *next_tick = now;
            ts_add_ms(next_tick, RK_TICK_MS);
            break;
        }
        if (!n->held)
            raft_tick(n->raft);
        ts_add_ms(next_tick, RK_TICK_MS);
    }
}

/* Takes what is queued without waiting; answers client requests with why (when given). */
static void answer_queued(struct rk_node *n, const char *why)
{
    struct timespec now = mono_now();
    struct rk_queue_item *it = rk_queue_take_all(&n->queue, &now);
    while (it) {
        struct event *ev = (struct event *)it;
        it = it->next;
        if (ev->type == EV_PEER_MSG)
            raft_msg_free(&ev->msg);
        else if (ev->type == EV_CLIENT_REQUEST && why)
            reply_error(n, ev->call, RAFTKV__KV__CODE__UNAVAILABLE, why);
        free(ev);
    }
}

static void drain(struct rk_node *n, const struct timespec *deadline)
{
    struct rk_queue_item *it = rk_queue_take_all(&n->queue, deadline);
    while (it) {
        struct rk_queue_item *next = it->next;
        handle_event(n, (struct event *)it);
        it = next;
    }
}

int rk_node_run(struct rk_node *n)
{
    struct timespec next_tick = mono_now();
    ts_add_ms(&next_tick, RK_TICK_MS);
    rk_info("running: client %s, peer %s%s%s", n->cfg->listen_client, n->cfg->listen_peer,
            n->cfg->listen_pub ? ", pub " : "", n->cfg->listen_pub ? n->cfg->listen_pub : "");
    while (!atomic_load(&n->stop) && !n->fatal) {
        drain(n, &next_tick);
        tick_due(n, &next_tick);
        process_ready(n);
        snapshot_maybe_start(n);
    }
    pending_fail_all(n, "node shutting down");
    reads_fail(n, "node shutting down", true);
    answer_queued(n, "node shutting down");
    /* Spares the next start re-applying the entries (a crash would leave them in the log). */
    if (!n->fatal && !n->held)
        fsm_persist(n);
    rk_info("stopping");
    return n->fatal;
}

void rk_node_request_stop(struct rk_node *n)
{
    atomic_store(&n->stop, true);
}

/* ---- Start and stop. ---- */

static int open_db(struct rk_node *n, rk_node_fsm_open_fn open_fsm, void *arg)
{
    const struct rk_config *cfg = n->cfg;
    struct rk_db_options opts = {
        .path = cfg->data_dir,
        .cluster_id = cfg->cluster_id,
        .node_id = cfg->node_id,
        .initial_map_bytes = cfg->max_db_bytes < (64u << 20) ? cfg->max_db_bytes : 64u << 20,
        .max_map_bytes = cfg->max_db_bytes,
    };
    int rc = rk_db_open(&opts, &n->db);
    if (rc != RK_DB_OK) {
        rk_error("cannot open data dir %s: %s", cfg->data_dir,
                 n->db ? rk_db_errmsg(n->db) : "out of memory");
        return RK_NODE_EDB;
    }
    if (rk_lmdb_storage_new(n->db, &n->storage) != 0) {
        rk_error("cannot open the raft log in %s: %s", cfg->data_dir, rk_db_errmsg(n->db));
        return RK_NODE_ESTORAGE;
    }
    return open_fsm(n->db, cfg, arg, &n->fsm) == 0 ? RK_NODE_OK : RK_NODE_ESTORAGE;
}

static void raft_config_fill(struct rk_node *n, struct raft_config *rc, raft_id *voters)
{
    const struct rk_config *cfg = n->cfg;
    raft_config_defaults(rc);
    for (size_t i = 0; i < cfg->n_members; i++)
        voters[i] = cfg->members[i].id;
    rc->id = cfg->node_id;
    rc->n_voters = cfg->n_members;
    rc->voters = voters;
    rc->election_ticks_min = rk_config_ticks(cfg->election_timeout_min_ms);
    rc->election_ticks_max = rk_config_ticks(cfg->election_timeout_max_ms);
    rc->heartbeat_ticks = rk_config_ticks(cfg->heartbeat_interval_ms);
    rc->max_entries_per_msg = cfg->max_append_entries;
    rc->max_bytes_per_msg = cfg->max_append_bytes;
    rc->max_inflight_msgs = cfg->max_inflight;
    rc->max_entry_bytes = n->max_request_bytes;
    rc->snapshot_chunk_bytes = cfg->snapshot_chunk_bytes;
    rc->max_inflight_chunks = cfg->snapshot_max_inflight_chunks;
    rc->random = node_random;
    rc->random_arg = n;
}

struct fsm_restore {
    struct raftkv_fsm *fsm;
    raft_index index;
    int fd;
};

static int fsm_restore_write(MDB_txn *txn, void *arg)
{
    (void)txn;
    struct fsm_restore *fr = arg;
    struct rk_snap_reader reader = {fr->fd, 0};
    return fr->fsm->ops->restore(fr->fsm, fr->index, rk_snap_read_fn, &reader);
}

/* A state machine behind the latest snapshot (one kept in memory starts empty) is restored
 * from it: the log before it may be gone. */
static int fsm_catch_up(struct rk_node *n, struct raft_restore *restore)
{
    const struct raft_snapshot_meta *snap = &restore->snapshot;
    if (restore->applied >= snap->index)
        return RK_NODE_OK;
    if (n->snapdir.latest.index != snap->index) {
        if (restore->applied >= restore->snapshot_index)
            return RK_NODE_OK; /* the log still holds what it misses */
        rk_error("the state machine applied %" PRIu64 " but the log starts after %" PRIu64
                 " and the snapshot file is missing: wipe the data dir to rejoin",
                 restore->applied, restore->snapshot_index);
        return RK_NODE_ESTORAGE;
    }
    struct fsm_restore fr = {n->fsm, snap->index, n->snapdir.latest_fd};
    int rc = rk_db_write(n->db, fsm_restore_write, &fr);
    if (rc != 0) {
        rk_error("cannot restore the state machine from the snapshot at %" PRIu64 ": %s",
                 snap->index, n->fsm->ops->strerror(n->fsm, rc));
        return RK_NODE_ESTORAGE;
    }
    rk_info("state machine restored from the snapshot at index %" PRIu64, snap->index);
    restore->applied = snap->index;
    return RK_NODE_OK;
}

static int start_raft(struct rk_node *n)
{
    struct raft_restore restore;
    int rc = n->storage->ops->load(n->storage, &restore);
    if (rc != 0) {
        rk_error("cannot read the raft log: %s", rk_db_errmsg(n->db));
        return RK_NODE_ESTORAGE;
    }
    rc = n->fsm->ops->applied_index(n->fsm, &restore.applied);
    if (rc != 0) {
        rk_storage_restore_free(&restore);
        rk_error("cannot read the applied index: %s", n->fsm->ops->strerror(n->fsm, rc));
        return RK_NODE_ESTORAGE;
    }
    rc = rk_snap_open_dir(n->cfg->data_dir, &restore.snapshot, &n->snapdir);
    n->snapdir_open = rc == 0;
    if (rc != 0) {
        rk_storage_restore_free(&restore);
        rk_error("cannot open the snapshot directory in %s: %s", n->cfg->data_dir, strerror(rc));
        return RK_NODE_ESTORAGE;
    }
    rc = fsm_catch_up(n, &restore);
    if (rc != RK_NODE_OK) {
        rk_storage_restore_free(&restore);
        return rc;
    }
    rk_info("restored term %" PRIu64 ", vote %" PRIu64 ", %zu log entries after index %" PRIu64
            ", applied %" PRIu64 ", snapshot at %" PRIu64,
            restore.term, restore.vote, restore.n_entries, restore.snapshot_index, restore.applied,
            restore.snapshot.index);
    raft_id *voters = calloc(n->cfg->n_members, sizeof *voters);
    struct raft_config rcfg;
    rc = voters ? RAFT_OK : RAFT_ENOMEM;
    if (rc == RAFT_OK) {
        raft_config_fill(n, &rcfg, voters);
        rc = raft_new(&rcfg, &restore, &n->raft);
    }
    free(voters);
    rk_storage_restore_free(&restore);
    if (rc != RAFT_OK) {
        rk_error("cannot start the raft core: %s", raft_strerror(rc));
        return RK_NODE_ERAFT;
    }
    /* The only voter needs nobody's vote: no reason to wait out an election timeout. */
    if (n->cfg->n_members == 1)
        raft_campaign(n->raft);
    n->applied_bytes = applied_bytes_after(n, snapshot_base(n));
    view_update(n);
    return RK_NODE_OK;
}

static int start_sockets(struct rk_node *n)
{
    const struct rk_config *cfg = n->cfg;
    struct rk_peer *peers = calloc(cfg->n_members, sizeof *peers);
    if (!peers)
        return RK_NODE_ENOMEM;
    size_t n_peers = 0;
    for (size_t i = 0; i < cfg->n_members; i++)
        if (cfg->members[i].id != cfg->node_id)
            peers[n_peers++] = (struct rk_peer){cfg->members[i].id, cfg->members[i].peer_url};
    struct rk_transport_options topts = {
        .cluster_id = cfg->cluster_id,
        .self = cfg->node_id,
        .listen_url = cfg->listen_peer,
        .n_peers = n_peers,
        .peers = peers,
        /* At least one entry always goes out, whatever max_append_bytes says. */
        .max_msg_bytes = (cfg->max_append_bytes + n->max_request_bytes > cfg->snapshot_chunk_bytes
                              ? cfg->max_append_bytes + n->max_request_bytes
                              : cfg->snapshot_chunk_bytes) +
                         (64u << 10),
        .on_msg = on_peer_msg,
        .arg = n,
    };
    int rc = rk_transport_start(&topts, &n->transport);
    free(peers);
    if (rc != 0) {
        rk_error("cannot listen for peers on %s (%d)", cfg->listen_peer, rc);
        return RK_NODE_ETRANSPORT;
    }
    struct rk_client_server_options copts = {
        .listen_url = cfg->listen_client,
        .max_msg_bytes = n->max_request_bytes + (4u << 10),
        .on_request = on_client_request,
        .arg = n,
    };
    if (rk_client_server_start(&copts, &n->clients) != 0) {
        rk_error("cannot listen for clients on %s", cfg->listen_client);
        return RK_NODE_ETRANSPORT;
    }
    if (cfg->listen_pub && rk_publisher_start(cfg->listen_pub, &n->pub) != 0) {
        rk_error("cannot listen for subscribers on %s", cfg->listen_pub);
        return RK_NODE_ETRANSPORT;
    }
    return RK_NODE_OK;
}

int rk_node_start(const struct rk_config *cfg, rk_node_fsm_open_fn open_fsm, void *arg,
                  struct rk_node **out)
{
    *out = NULL;
    struct rk_node *n = calloc(1, sizeof *n);
    if (!n)
        return RK_NODE_ENOMEM;
    n->cfg = cfg;
    n->install_fd = -1;
    atomic_init(&n->stop, false);
    n->rng = random_seed(cfg->node_id);
    /* A CAS carries two values; protobuf framing adds little beyond that. */
    n->max_request_bytes = cfg->max_key_bytes + 2 * cfg->max_value_bytes + 1024;
    rk_log_set_node(cfg->node_id, 0, "follower");
    n->chunk_buf = malloc(cfg->snapshot_chunk_bytes);
    int rc = n->chunk_buf && rk_queue_init(&n->queue) == 0 ? RK_NODE_OK : RK_NODE_ENOMEM;
    n->queue_ready = rc == RK_NODE_OK;
    if (rc == RK_NODE_OK)
        rc = open_db(n, open_fsm, arg);
    if (rc == RK_NODE_OK)
        rc = start_raft(n);
    if (rc == RK_NODE_OK)
        rc = start_sockets(n);
    if (rc != RK_NODE_OK) {
        rk_node_free(n);
        return rc;
    }
    *out = n;
    return RK_NODE_OK;
}

void rk_node_free(struct rk_node *n)
{
    if (!n)
        return;
    /* Sockets first: once they are closed no NNG thread can queue anything more. */
    if (n->clients)
        rk_client_server_stop(n->clients);
    if (n->transport)
        rk_transport_stop(n->transport);
    if (n->pub)
        rk_publisher_stop(n->pub);
    /* The producer holds a read of the state machine: it ends before the machine closes. */
    if (n->job_running) {
        atomic_store(&n->job.cancel, true);
        rk_snap_produce_join(&n->job);
    }
    if (n->queue_ready) {
        answer_queued(n, NULL);
        rk_queue_destroy(&n->queue);
    }
    if (n->raft)
        raft_free(n->raft);
    if (n->fsm)
        n->fsm->ops->close(n->fsm);
    if (n->install_fd >= 0)
        close(n->install_fd);
    if (n->snapdir_open)
        rk_snap_close_dir(&n->snapdir);
    free(n->chunk_buf);
    if (n->storage)
        n->storage->ops->close(n->storage);
    if (n->db)
        rk_db_close(n->db);
    free(n->pending);
    free(n->reads);
    free(n);
}
