/*
 * raft-hostsim: seeded runs of whole raftd nodes — the node's own logic from src/node (the
 * event loop, the ready pipeline with its synced LMDB writes, the client service with its
 * ReadIndex reads and proposals, snapshots produced, sent, received and installed, the KV
 * store) — over the simulated network and clock of sim_io.c. raft-sim checks the core
 * through raft.h; this checks what raftd does around it. Each seed draws a profile: message
 * loss, duplication and delay, partitions, crashes (the node is dropped at a loop turn's
 * end, as kill -9 would leave it: what LMDB committed survives, nothing else) and restarts,
 * slow disks (a node's loop stuck in a synced write for up to 300 ms), and how often
 * snapshots are taken and the KV store persists. Most seeds also change the membership:
 * spare nodes start at once with join = true (they wait for a leader to add them, and never
 * campaign), and the client.proto member requests go to some node, one at a time: add a
 * spare as a learner, promote a learner, remove a member (the leader too; once removed, a
 * node may be stopped for good, and its id is never used again), move the leadership, and
 * now and then one the leader must refuse. Clients put, get, cas and delete a few keys
 * throughout, one attempt per operation; once the faults heal, the leader is asked for its
 * committed configuration and every key is read through it. The history must be
 * linearizable (tests/faults/lincheck.h); the healed cluster must elect a leader that the
 * members of its configuration follow and that answers, and every member must apply
 * everything; and every member list answered OK (and the final one) must show each node
 * as the answers to the member requests allow (what the last accepted one made it, or what
 * one whose outcome is unknown would).
 *
 *     raft-hostsim --seed S [--nodes 3|5] [--ms T]       one run, its history on failure
 *     raft-hostsim --seeds N [--start S] [--nodes 3|5] [--ms T]
 *
 * Data dirs live under $TMPDIR (default /dev/shm if there is one, else /tmp) in a directory
 * removed after each run; on tmpfs the synced writes cost little. A seed replays the same faults
 * and client schedule (the KV store's persist points come from its own clock-seeded generator, so a
 * replay can differ there).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.pb-c.h"
#include "kv.pb-c.h"
#include "lincheck.h"
#include "log/log.h"
#include "node/node_internal.h"
#include "raftd_kv.h"
#include "sim_io.h"

#define KEYS 3
#define CLIENTS 4
#define OP_TIMEOUT_MS 1000
#define HEAL_BOUND_MS 5000    /* after the heal: a leader all follow, reads answered, all applied */
#define ADMIN_TIMEOUT_MS 2000 /* a membership request; a transfer takes two election timeouts */

struct profile {
    unsigned crash_per_s, net_per_s, stall_per_s; /* expected events per simulated second */
    unsigned max_down_ms;
    unsigned snapshot_entries, trailing, chunk_bytes, persist_entries;
    unsigned spares;       /* nodes started with join = true, after the founders */
    unsigned member_per_s; /* membership changes and leadership moves asked for */
};

struct client {
    bool busy;
    struct rk_client_call *call; /* the operation's; answers to earlier ones are ignored */
    uint64_t deadline;
    struct hist_op op;
    uint8_t key[32], value[32], expect[32];
};

/* What a slot is in a configuration: out of it, a learner or a voter (bits, so that a set
 * of them says what a slot may be). */
enum { M_OUT = 1, M_LEARNER = 2, M_VOTER = 4 };

/* The changes first: a change or a move is drawn below ADMIN_LIST. */
enum admin_kind { ADMIN_ADD, ADMIN_PROMOTE, ADMIN_REMOVE, ADMIN_MOVE, ADMIN_LIST, ADMIN_KINDS };
enum admin_outcome {
    ADMIN_OK,
    ADMIN_REFUSED,    /* INVALID */
    ADMIN_NOT_LEADER, /* not proposed */
    ADMIN_UNKNOWN,    /* UNAVAILABLE or no answer: may have taken effect, or may still */
    ADMIN_DOWN,       /* the node was down: nothing sent */
    ADMIN_OUTCOMES
};
typedef uint64_t admin_counts[ADMIN_KINDS][ADMIN_OUTCOMES];

/* The one membership request in flight (the client.proto member requests): one at a time,
 * so that an answer's member list shows no change asked for after it. */
struct admin {
    bool busy;
    struct rk_client_call *call;
    uint64_t deadline;
    enum admin_kind kind;
    raft_id id; /* the member to change, or to move the leadership to (0: any) */
};

/* A member list a leader answered, once it says its configuration is committed. */
struct final_conf {
    bool known;
    raft_id leader;
    uint8_t role[SIM_MAX_NODES + 1]; /* M_OUT, M_LEARNER or M_VOTER */
};

struct run {
    uint64_t seed;
    size_t n;     /* the founders: the bootstrap configuration */
    size_t slots; /* the founders, then the spares */
    struct profile p;
    char dir[256];
    struct rk_config cfg[SIM_MAX_NODES + 1];
    struct rk_node *nodes[SIM_MAX_NODES + 1];
    uint64_t restart_at[SIM_MAX_NODES + 1];
    /* A slow disk: the node's loop is inside a synced write until then, and does nothing
     * else (raftd does not step messages while it syncs); what arrives waits in its queue. */
    uint64_t stalled_until[SIM_MAX_NODES + 1];
    struct client clients[CLIENTS];
    struct admin admin;
    struct final_conf final;
    /* What each slot may be in the configuration, as far as the answers tell (M_* bits):
     * exactly what the last accepted change made it, and what the changes made since,
     * whose outcome is unknown, would. */
    uint8_t may_be[SIM_MAX_NODES + 1];
    bool removal_sent[SIM_MAX_NODES + 1]; /* never added (again): ids are not reused */
    bool retired[SIM_MAX_NODES + 1];      /* removed, then stopped for good */
    raft_id retire;                       /* to stop at the next turn, once removed */
    admin_counts counts;
    uint64_t next_call, next_value;
    /* Every call made: a node may answer one long after its client gave up, or never. */
    struct rk_client_call **calls;
    size_t n_calls, cap_calls;
    raft_id leader_guess;
    struct history hist;
    bool failed;
    char why[512];
    uint64_t crashes, ops;
};

static void fail(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct run *r, const char *fmt, ...)
{
    if (r->failed)
        return;
    r->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
}

static unsigned pick(const unsigned *choices, size_t n)
{
    return choices[sim_rand_below((uint32_t)n)];
}
#define PICK(...)                                                                                  \
    pick((const unsigned[]){__VA_ARGS__},                                                          \
         sizeof((const unsigned[]){__VA_ARGS__}) / sizeof(unsigned))

static void draw_profile(struct run *r)
{
    r->p = (struct profile){
        .crash_per_s = PICK(0, 1, 2),
        .net_per_s = PICK(0, 1, 3),
        .stall_per_s = PICK(0, 2, 5),
        .max_down_ms = PICK(100, 1000),
        .snapshot_entries = PICK(20, 100, 10000),
        .trailing = PICK(0, 5),
        .chunk_bytes = PICK(256, 65536),
        .persist_entries = PICK(1, 8, 64),
    };
    sim.drop_permille = PICK(0, 20, 100);
    sim.dup_permille = PICK(0, 20);
    sim.delay_max = PICK(2, 5, 20);
}

/* Drawn from a generator of their own, so that the seeds with no membership change replay
 * the runs they gave before spares and changes existed. */
static void draw_membership(struct run *r)
{
    uint64_t rng = sim.rng;
    sim.rng = r->seed ^ 0x5851f42d4c957f2dULL;
    r->p.member_per_s = PICK(0, 2, 5);
    r->p.spares = r->p.member_per_s ? PICK(0, 1, 2) : 0;
    if (r->p.spares > SIM_MAX_NODES - r->n)
        r->p.spares = (unsigned)(SIM_MAX_NODES - r->n);
    r->slots = r->n + r->p.spares;
    for (raft_id id = 1; id <= r->slots; id++)
        r->may_be[id] = id <= r->n ? M_VOTER : M_OUT;
    sim.rng = rng;
}

/* ---- nodes ---- */

static bool write_config(struct run *r, raft_id id)
{
    char path[320], data[300];
    snprintf(path, sizeof path, "%s/node%" PRIu64 ".conf", r->dir, id);
    snprintf(data, sizeof data, "%s/data%" PRIu64, r->dir, id);
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    fprintf(f, "node_id = %" PRIu64 "\ncluster_id = 1\ndata_dir = %s\nlog_level = error\n", id,
            data);
    /* A founder lists the founders (the bootstrap configuration); a spare joins: it lists
     * them, where it finds the cluster, and itself. */
    if (id > r->n)
        fprintf(f, "join = true\n");
    for (raft_id m = 1; m <= r->slots; m++) /* never dialed: sim_io.c carries the messages */
        if (m <= r->n || m == id)
            fprintf(f,
                    "peer.%" PRIu64 " = tcp://127.0.0.1:%" PRIu64 "\nclient.%" PRIu64
                    " = tcp://127.0.0.1:%" PRIu64 "\n",
                    m, 17000 + m, m, 17100 + m);
    fprintf(f,
            "snapshot_entries = %u\nsnapshot_trailing_entries = %u\nsnapshot_chunk_bytes = %u\n"
            "kv_persist_entries = %u\n",
            r->p.snapshot_entries, r->p.trailing, r->p.chunk_bytes, r->p.persist_entries);
    if (fclose(f) != 0)
        return false;
    char err[512];
    if (rk_config_load(path, raftd_kv.config_defaults, &r->cfg[id], err, sizeof err) != 0) {
        fail(r, "config: %s", err);
        return false;
    }
    return true;
}

static void node_start(struct run *r, raft_id id)
{
    if (rk_node_start(&r->cfg[id], raftd_kv.open, raftd_kv.arg, &r->nodes[id]) != RK_NODE_OK)
        fail(r, "n%" PRIu64 " did not start again from its data dir", id);
    r->restart_at[id] = 0;
}

/* As kill -9 would: nothing more is written, nothing is answered. */
static void node_crash(struct run *r, raft_id id, bool restart)
{
    rk_node_free(r->nodes[id]);
    r->nodes[id] = NULL;
    r->crashes++;
    r->restart_at[id] = restart ? sim.now_ms + 1 + sim_rand_below(r->p.max_down_ms) : 0;
}

/* A snapshot producer runs on a thread of its own: the run waits for it to end (in real
 * time), so that its end comes at the same loop turn on every replay. */
static void wait_background(struct rk_node *n)
{
    if (!n->job_running)
        return;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += 60;
    struct rk_queue_item *it = rk_queue_take_all(&n->queue, &deadline);
    while (it) {
        struct rk_queue_item *next = it->next;
        rk_queue_push(&n->queue, it);
        it = next;
    }
}

static void nodes_turn(struct run *r)
{
    for (raft_id id = 1; id <= r->slots && !r->failed; id++) {
        struct rk_node *n = r->nodes[id];
        if (!n || sim.now_ms < r->stalled_until[id])
            continue;
        /* raftd sets its log lines' node once per ready; here the nodes share the process. */
        rk_log_set_node(id, n->view.term, raft_role_name(n->view.role));
        loop__turn(n, false);
        if (n->fatal)
            fail(r, "n%" PRIu64 " stopped: its storage failed (%d)", id, n->fatal);
        wait_background(n);
    }
}

/* ---- faults ---- */

static bool per_ms(unsigned per_s)
{
    return per_s && sim_rand_below(1000) < per_s;
}

static void change_network(struct run *r)
{
    memset(sim.blocked, 0, sizeof sim.blocked);
    unsigned kind = sim_rand_below(3);
    if (kind == 0)
        return; /* healed */
    raft_id alone = 1 + sim_rand_below((uint32_t)r->slots);
    for (raft_id a = 1; a <= r->slots; a++)
        for (raft_id b = 1; b <= r->slots; b++) {
            bool cut = kind == 1 ? (a == alone) != (b == alone) /* one node cut off */
                                 : a == alone && b != alone;    /* it hears, is not heard */
            sim.blocked[a][b] = cut;
        }
}

static void inject_faults(struct run *r)
{
    if (per_ms(r->p.net_per_s))
        change_network(r);
    if (per_ms(r->p.crash_per_s)) {
        raft_id id = 1 + sim_rand_below((uint32_t)r->slots);
        if (r->leader_guess && sim_rand_below(2))
            id = r->leader_guess;
        if (r->nodes[id])
            node_crash(r, id, true);
    }
    if (per_ms(r->p.stall_per_s))
        r->stalled_until[1 + sim_rand_below((uint32_t)r->slots)] =
            sim.now_ms + 1 + sim_rand_below(300);
    for (raft_id id = 1; id <= r->slots; id++)
        if (!r->nodes[id] && r->restart_at[id] && sim.now_ms >= r->restart_at[id])
            node_start(r, id);
}

static void heal(struct run *r)
{
    memset(sim.blocked, 0, sizeof sim.blocked);
    memset(r->stalled_until, 0, sizeof r->stalled_until);
    sim.drop_permille = sim.dup_permille = 0;
    sim.delay_max = 2;
    for (raft_id id = 1; id <= r->slots; id++)
        if (!r->nodes[id] && !r->retired[id])
            node_start(r, id);
}

/* ---- clients ---- */

static struct hist_bytes bytes_of(uint8_t *p, size_t len)
{
    return (struct hist_bytes){p, len, true};
}

static void record(struct run *r, struct client *cl, enum hist_outcome outcome)
{
    cl->op.outcome = outcome;
    cl->op.complete_ns = sim.now_ms * 1000000;
    /* A read that did not complete tells nothing; lincheck leaves it out either way. */
    if (history_add(&r->hist, &cl->op) != 0)
        fail(r, "out of memory recording the history");
    cl->busy = false;
    free(cl->op.result.data);
    cl->op.result = (struct hist_bytes){0};
}

static uint8_t *pack_request(const Raftkv__Client__Request *req, size_t *len)
{
    *len = raftkv__client__request__get_packed_size(req);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (!buf)
        abort();
    raftkv__client__request__pack(req, buf);
    return buf;
}

/* Packs op as raftd's clients send it: a client.proto Request around a kv.proto Request. */
static uint8_t *pack(const struct hist_op *op, size_t *len)
{
    Raftkv__Kv__Request kreq = RAFTKV__KV__REQUEST__INIT;
    Raftkv__Kv__Put put = RAFTKV__KV__PUT__INIT;
    Raftkv__Kv__Get get = RAFTKV__KV__GET__INIT;
    Raftkv__Kv__Delete del = RAFTKV__KV__DELETE__INIT;
    Raftkv__Kv__CompareAndSwap cas = RAFTKV__KV__COMPARE_AND_SWAP__INIT;
    ProtobufCBinaryData key = {op->key.len, op->key.data};
    switch (op->kind) {
    case HIST_PUT:
        put.key = key;
        put.value = (ProtobufCBinaryData){op->value.len, op->value.data};
        kreq.op_case = RAFTKV__KV__REQUEST__OP_PUT;
        kreq.put = &put;
        break;
    case HIST_GET:
        get.key = key;
        kreq.op_case = RAFTKV__KV__REQUEST__OP_GET;
        kreq.get = &get;
        break;
    case HIST_DELETE:
        del.key = key;
        kreq.op_case = RAFTKV__KV__REQUEST__OP_DELETE;
        kreq.delete_ = &del;
        break;
    case HIST_CAS:
        cas.key = key;
        cas.new_value = (ProtobufCBinaryData){op->value.len, op->value.data};
        cas.expected = (ProtobufCBinaryData){op->expect.len, op->expect.data};
        cas.expect_absent = !op->expect.present;
        kreq.op_case = RAFTKV__KV__REQUEST__OP_CAS;
        kreq.cas = &cas;
        break;
    }
    size_t klen = raftkv__kv__request__get_packed_size(&kreq);
    uint8_t *kbuf = malloc(klen ? klen : 1);
    if (!kbuf)
        abort();
    raftkv__kv__request__pack(&kreq, kbuf);
    Raftkv__Client__Request creq = RAFTKV__CLIENT__REQUEST__INIT;
    creq.body_case = RAFTKV__CLIENT__REQUEST__BODY_FSM;
    creq.fsm = (ProtobufCBinaryData){klen, kbuf};
    uint8_t *buf = pack_request(&creq, len);
    free(kbuf);
    return buf;
}

static raft_id target(struct run *r)
{
    if (r->leader_guess && r->nodes[r->leader_guess] && sim_rand_below(10))
        return r->leader_guess;
    return 1 + sim_rand_below((uint32_t)r->slots);
}

/* A call to node to, kept until the run ends. */
static struct rk_client_call *call_new(struct run *r, raft_id to)
{
    if (r->n_calls == r->cap_calls) {
        r->cap_calls = r->cap_calls ? 2 * r->cap_calls : 256;
        r->calls = realloc(r->calls, r->cap_calls * sizeof *r->calls);
    }
    struct rk_client_call *call = malloc(sizeof *call);
    if (!r->calls || !call)
        abort();
    *call = (struct rk_client_call){.id = ++r->next_call, .node = to};
    r->calls[r->n_calls++] = call;
    return call;
}

/* Starts an operation at node to (0: the leader as far as known, or any). */
static void client_start(struct run *r, struct client *cl, enum hist_kind kind, unsigned key,
                         raft_id to)
{
    cl->op = (struct hist_op){.client = (uint64_t)(cl - r->clients) + 1, .kind = kind};
    int kl = key < KEYS ? snprintf((char *)cl->key, sizeof cl->key, "k%u", key)
                        : snprintf((char *)cl->key, sizeof cl->key, "u%" PRIu64, r->next_value);
    cl->op.key = bytes_of(cl->key, (size_t)kl);
    if (kind == HIST_PUT || kind == HIST_CAS) {
        int vl = snprintf((char *)cl->value, sizeof cl->value, "v%" PRIu64, ++r->next_value);
        cl->op.value = bytes_of(cl->value, (size_t)vl);
    }
    if (kind == HIST_CAS && sim_rand_below(4)) {
        /* Expect a value some client wrote lately, so that some cas succeed. */
        uint64_t v = r->next_value > 3 ? r->next_value - 1 - sim_rand_below(3) : 1;
        int el = snprintf((char *)cl->expect, sizeof cl->expect, "v%" PRIu64, v);
        cl->op.expect = bytes_of(cl->expect, (size_t)el);
    }
    cl->op.invoke_ns = sim.now_ms * 1000000;
    cl->call = call_new(r, to ? to : target(r));
    cl->deadline = sim.now_ms + OP_TIMEOUT_MS;
    cl->busy = true;
    r->ops++;
    size_t len;
    uint8_t *req = pack(&cl->op, &len);
    bool sent = sim_client_request(cl->call, req, len);
    free(req);
    if (!sent)
        record(r, cl, HIST_FAILED); /* the node is down: nothing was sent */
}

static void clients_act(struct run *r)
{
    for (size_t i = 0; i < CLIENTS; i++) {
        struct client *cl = &r->clients[i];
        if (cl->busy && sim.now_ms >= cl->deadline)
            record(r, cl, HIST_UNKNOWN); /* timed out: may have taken effect, or not */
        else if (!cl->busy && sim_rand_below(10) == 0) {
            unsigned k = sim_rand_below(10);
            enum hist_kind kind = k < 4   ? HIST_PUT
                                  : k < 7 ? HIST_GET
                                  : k < 9 ? HIST_CAS
                                          : HIST_DELETE;
            /* One put in four goes to a key of its own, which nothing writes again. */
            unsigned key = kind == HIST_PUT && sim_rand_below(4) == 0 ? KEYS : sim_rand_below(KEYS);
            client_start(r, cl, kind, key, 0);
        }
    }
}

static void follow_hint(struct run *r, const Raftkv__Client__Response *resp)
{
    const char *hint = resp->not_leader ? resp->not_leader->leader_address : NULL;
    r->leader_guess = 0;
    for (raft_id id = 1; hint && id <= r->slots; id++)
        if (!strcmp(rk_config_member(&r->cfg[id], id)->client_url, hint))
            r->leader_guess = id;
}

static void keep_result(struct client *cl, const ProtobufCBinaryData *v, bool present)
{
    cl->op.result = (struct hist_bytes){malloc(v->len + 1), v->len, present};
    if (!cl->op.result.data)
        abort();
    if (v->len)
        memcpy(cl->op.result.data, v->data, v->len);
}

static enum hist_outcome kv_outcome(struct client *cl, const Raftkv__Kv__Response *k)
{
    switch (k->code) {
    case RAFTKV__KV__CODE__OK:
        if (cl->op.kind == HIST_GET)
            keep_result(cl, &k->value, true);
        return HIST_OK;
    case RAFTKV__KV__CODE__NOT_FOUND:
        return HIST_NOTFOUND;
    case RAFTKV__KV__CODE__CAS_MISMATCH:
        keep_result(cl, &k->value, k->create_revision != 0);
        return HIST_MISMATCH;
    default:
        return HIST_FAILED; /* INVALID: refused, not applied */
    }
}

static void kv_on_reply(struct run *r, struct client *cl, const Raftkv__Client__Response *c)
{
    Raftkv__Kv__Response *k = c->code == RAFTKV__CLIENT__CODE__OK
                                  ? raftkv__kv__response__unpack(NULL, c->fsm.len, c->fsm.data)
                                  : NULL;
    if (c->code == RAFTKV__CLIENT__CODE__OK && !k) {
        fail(r, "n%" PRIu64 " answered call %" PRIu64 " with a malformed response", cl->call->node,
             cl->call->id);
    } else if (k) {
        r->leader_guess = cl->call->node;
        record(r, cl, kv_outcome(cl, k));
    } else if (c->code == RAFTKV__CLIENT__CODE__NOT_LEADER) {
        follow_hint(r, c);
        record(r, cl, HIST_FAILED); /* not proposed */
    } else if (c->code == RAFTKV__CLIENT__CODE__INVALID) {
        record(r, cl, HIST_FAILED);
    } else {
        record(r, cl, HIST_UNKNOWN); /* UNAVAILABLE (e.g. leadership changed): maybe applied */
    }
    raftkv__kv__response__free_unpacked(k, NULL);
}

/* ---- membership requests ---- */

static const char *const admin_names[ADMIN_KINDS] = {"add-learner", "promote", "remove",
                                                     "move-leader", "member-list"};

static uint8_t *pack_admin(const struct run *r, size_t *len)
{
    const struct admin *a = &r->admin;
    Raftkv__Client__Request req = RAFTKV__CLIENT__REQUEST__INIT;
    Raftkv__Client__MemberListRequest list = RAFTKV__CLIENT__MEMBER_LIST_REQUEST__INIT;
    Raftkv__Client__MemberChangeRequest change = RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__INIT;
    Raftkv__Client__MoveLeaderRequest move = RAFTKV__CLIENT__MOVE_LEADER_REQUEST__INIT;
    if (a->kind == ADMIN_LIST) {
        req.body_case = RAFTKV__CLIENT__REQUEST__BODY_MEMBER_LIST;
        req.member_list = &list;
    } else if (a->kind == ADMIN_MOVE) {
        move.id = a->id;
        req.body_case = RAFTKV__CLIENT__REQUEST__BODY_MOVE_LEADER;
        req.move_leader = &move;
    } else {
        change.kind =
            a->kind == ADMIN_ADD       ? RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__KIND__ADD_LEARNER
            : a->kind == ADMIN_PROMOTE ? RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__KIND__PROMOTE
                                       : RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__KIND__REMOVE;
        change.id = a->id;
        if (a->kind == ADMIN_ADD) {
            /* Its addresses as its own config file gives them. */
            const struct rk_member *m = rk_config_member(&r->cfg[a->id], a->id);
            change.peer_address = m->peer_url;
            change.client_address = m->client_url;
        }
        req.body_case = RAFTKV__CLIENT__REQUEST__BODY_MEMBER_CHANGE;
        req.member_change = &change;
    }
    return pack_request(&req, len);
}

/* The role a change gives its member (0: a move or a list changes none). */
static uint8_t change_result(enum admin_kind kind)
{
    return kind == ADMIN_ADD       ? M_LEARNER
           : kind == ADMIN_PROMOTE ? M_VOTER
           : kind == ADMIN_REMOVE  ? M_OUT
                                   : 0;
}

static void admin_settle(struct run *r, enum admin_outcome outcome)
{
    struct admin *a = &r->admin;
    r->counts[a->kind][outcome]++;
    if (outcome == ADMIN_UNKNOWN)
        r->may_be[a->id] |= change_result(a->kind);
    a->busy = false;
}

static void admin_start(struct run *r, enum admin_kind kind, raft_id id, raft_id to)
{
    struct admin *a = &r->admin;
    *a = (struct admin){true, call_new(r, to), sim.now_ms + ADMIN_TIMEOUT_MS, kind, id};
    if (kind == ADMIN_REMOVE)
        r->removal_sent[id] = true;
    size_t len;
    uint8_t *req = pack_admin(r, &len);
    bool sent = sim_client_request(a->call, req, len);
    free(req);
    if (!sent)
        admin_settle(r, ADMIN_DOWN);
}

static void admin_expire(struct run *r)
{
    if (r->admin.busy && sim.now_ms >= r->admin.deadline)
        admin_settle(r, ADMIN_UNKNOWN);
}

/* Whether a change of this kind for id is one to ask for: one that may succeed, or (wild)
 * one the leader must refuse. A voter is removed only while three are certain. */
static bool apt(const struct run *r, enum admin_kind kind, raft_id id, bool wild)
{
    uint8_t m = r->may_be[id];
    size_t voters = 0;
    for (raft_id v = 1; v <= r->slots; v++)
        voters += r->may_be[v] == M_VOTER;
    switch (kind) {
    case ADMIN_ADD: /* a spare maybe out, never asked to leave; wild: a certain member */
        return wild ? m == M_LEARNER || m == M_VOTER
                    : id > r->n && !r->removal_sent[id] && (m & M_OUT) && !(m & M_VOTER);
    case ADMIN_REMOVE: /* wild: one removed */
        return wild ? r->removal_sent[id] && m == M_OUT
                    : (m & M_LEARNER) || ((m & M_VOTER) && voters >= 3);
    case ADMIN_PROMOTE:
        return wild || (m & M_LEARNER);
    default:
        return wild || (m & M_VOTER);
    }
}

/* A membership change or a leadership move, sent to some node (the leader as far as known,
 * or any): the leader itself may be removed or moved from. */
static void admin_change(struct run *r)
{
    enum admin_kind kind = (enum admin_kind)sim_rand_below(ADMIN_LIST);
    bool wild = sim_rand_below(8) == 0;
    raft_id ids[SIM_MAX_NODES];
    size_t k = 0;
    for (raft_id id = 1; id <= r->slots; id++)
        if (apt(r, kind, id, wild))
            ids[k++] = id;
    raft_id id = k ? ids[sim_rand_below((uint32_t)k)] : 0;
    if (kind == ADMIN_REMOVE && r->leader_guess && apt(r, kind, r->leader_guess, wild) &&
        sim_rand_below(3) == 0)
        id = r->leader_guess;
    if (kind == ADMIN_MOVE && sim_rand_below(3) == 0)
        id = 0; /* to the voter with the most of the log */
    if (id || kind == ADMIN_MOVE)
        admin_start(r, kind, id, target(r));
}

static void members_act(struct run *r)
{
    raft_id id = r->retire;
    if (id) {
        r->retired[id] = true;
        r->retire = 0;
        if (r->nodes[id])
            node_crash(r, id, false);
        r->restart_at[id] = 0;
    }
    admin_expire(r);
    if (!r->admin.busy && per_ms(r->p.member_per_s))
        admin_change(r);
}

/* A nonempty set of roles, as "out|learner". */
static void role_set(uint8_t set, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s", set & M_OUT ? "|out" : "", set & M_LEARNER ? "|learner" : "",
             set & M_VOTER ? "|voter" : "");
    memmove(buf, buf + 1, strlen(buf));
}

/* Every slot's role in a configuration must be one the answers allow. */
static void check_roles(struct run *r, const uint8_t role[SIM_MAX_NODES + 1], const char *what)
{
    for (raft_id id = 1; id <= r->slots && !r->failed; id++) {
        if (role[id] & r->may_be[id])
            continue;
        char is[32], may[32];
        role_set(role[id], is, sizeof is);
        role_set(r->may_be[id], may, sizeof may);
        fail(r, "Membership: %s has n%" PRIu64 " %s, but the answers allow only %s", what, id, is,
             may);
    }
}

/* The roles a member list gives the slots; false (the run failed) if it names others. */
static bool list_roles(struct run *r, const Raftkv__Client__MemberList *l,
                       uint8_t role[SIM_MAX_NODES + 1])
{
    for (raft_id id = 0; id <= SIM_MAX_NODES; id++)
        role[id] = M_OUT;
    for (size_t i = 0; i < l->n_members; i++) {
        const Raftkv__Client__Member *m = l->members[i];
        bool slot = m->id >= 1 && m->id <= r->slots && role[m->id] == M_OUT;
        uint8_t as = !strcmp(m->role, "voter")     ? M_VOTER
                     : !strcmp(m->role, "learner") ? M_LEARNER
                                                   : 0;
        if (!slot || !as) {
            fail(r, "n%" PRIu64 " answered a member list naming n%" PRIu64 " (%s)",
                 r->admin.call->node, m->id, m->role);
            return false;
        }
        role[m->id] = as;
    }
    return true;
}

/* An accepted request: its member list must show what it asked for, and nothing the answers
 * before it rule out. */
static void admin_accepted(struct run *r, const struct final_conf *seen)
{
    struct admin *a = &r->admin;
    char what[96];
    snprintf(what, sizeof what, "n%" PRIu64 "'s OK to %s n%" PRIu64, a->call->node,
             admin_names[a->kind], a->id);
    if (a->kind == ADMIN_LIST) {
        r->final = *seen;
    } else if (a->kind == ADMIN_MOVE) {
        if (!seen->leader || seen->leader > r->slots || seen->role[seen->leader] != M_VOTER ||
            (a->id && seen->leader != a->id))
            fail(r, "%s names n%" PRIu64 " the leader", what, seen->leader);
        r->leader_guess = seen->leader;
        check_roles(r, seen->role, what);
    } else {
        r->may_be[a->id] = change_result(a->kind);
        check_roles(r, seen->role, what);
        if (a->kind == ADMIN_REMOVE && sim_rand_below(2))
            r->retire = a->id; /* once the answering node's turn is over */
    }
    admin_settle(r, ADMIN_OK);
}

static void admin_on_reply(struct run *r, const Raftkv__Client__Response *c)
{
    struct admin *a = &r->admin;
    if (c->code == RAFTKV__CLIENT__CODE__NOT_LEADER) {
        follow_hint(r, c);
        admin_settle(r, ADMIN_NOT_LEADER);
    } else if (c->code == RAFTKV__CLIENT__CODE__INVALID) {
        admin_settle(r, ADMIN_REFUSED);
    } else if (c->code != RAFTKV__CLIENT__CODE__OK) {
        admin_settle(r, ADMIN_UNKNOWN); /* UNAVAILABLE: maybe proposed, maybe committed */
    } else if (!c->members) {
        fail(r, "n%" PRIu64 " answered a membership request OK without the members", a->call->node);
    } else {
        struct final_conf seen = {c->members->committed, c->members->leader_id, {0}};
        if (list_roles(r, c->members, seen.role))
            admin_accepted(r, &seen);
    }
}

static void on_reply(void *arg, struct rk_client_call *call, const uint8_t *resp, size_t len)
{
    struct run *r = arg;
    struct client *cl = NULL;
    for (size_t i = 0; i < CLIENTS; i++)
        if (r->clients[i].busy && r->clients[i].call == call)
            cl = &r->clients[i];
    bool admin = r->admin.busy && r->admin.call == call;
    if (!cl && !admin)
        return; /* an answer after its client gave up */
    Raftkv__Client__Response *c = raftkv__client__response__unpack(NULL, len, resp);
    if (!c)
        fail(r, "n%" PRIu64 " answered call %" PRIu64 " with a malformed response", call->node,
             call->id);
    else if (admin)
        admin_on_reply(r, c);
    else
        kv_on_reply(r, cl, c);
    raftkv__client__response__free_unpacked(c, NULL);
}

/* ---- the end: a healed cluster elects, answers and converges ---- */

static void tick(struct run *r)
{
    sim.now_ms++;
    sim_deliver_due();
    nodes_turn(r);
}

/* Whether the leader of the final configuration still leads, and all its members follow (a
 * leader whose configuration removed it is about to step down). */
static bool members_follow(const struct run *r)
{
    raft_id leader = r->final.leader;
    if (!r->final.known || leader < 1 || leader > r->slots || r->final.role[leader] != M_VOTER ||
        !r->nodes[leader] || r->nodes[leader]->view.role != RAFT_LEADER)
        return false;
    for (raft_id id = 1; id <= r->slots; id++)
        if (r->final.role[id] != M_OUT && (!r->nodes[id] || r->nodes[id]->view.leader != leader))
            return false;
    return true;
}

/* The running node that leads in the highest term, or 0. */
static raft_id some_leader(const struct run *r)
{
    raft_id leader = 0;
    for (raft_id id = 1; id <= r->slots; id++)
        if (r->nodes[id] && r->nodes[id]->view.role == RAFT_LEADER &&
            (!leader || r->nodes[id]->view.term > r->nodes[leader]->view.term))
            leader = id;
    return leader;
}

/* Asks whichever node leads for its members until one answers with a committed
 * configuration whose members all follow it (removed nodes and spares never added are no
 * members: they need not). The leader, or 0 at the deadline. */
static raft_id final_configuration(struct run *r, uint64_t until)
{
    while (!r->failed && !members_follow(r) && sim.now_ms < until) {
        admin_expire(r);
        if (!r->admin.busy) {
            r->final.known = false;
            raft_id leader = some_leader(r);
            if (leader)
                admin_start(r, ADMIN_LIST, 0, leader);
        }
        tick(r);
    }
    return members_follow(r) ? r->final.leader : 0;
}

/* A member that has not applied the leader's commit index yet, or 0. */
static raft_id lagging(const struct run *r, raft_id leader)
{
    for (raft_id id = 1; id <= r->slots; id++)
        if (r->final.role[id] != M_OUT &&
            r->nodes[id]->view.applied != r->nodes[leader]->view.commit)
            return id;
    return 0;
}

/* Reads every key through the leader; each must be answered. */
static void final_reads(struct run *r, raft_id leader)
{
    for (unsigned key = 0; key < KEYS && !r->failed; key++) {
        struct client *cl = &r->clients[0];
        client_start(r, cl, HIST_GET, key, leader);
        while (cl->busy && !r->failed && sim.now_ms < cl->deadline)
            tick(r);
        if (cl->busy || cl->op.outcome == HIST_UNKNOWN || cl->op.outcome == HIST_FAILED)
            fail(r, "Liveness: the final read of k%u through leader n%" PRIu64 " was not answered",
                 key, leader);
    }
}

static int digest_emit(void *arg, const void *data, size_t len)
{
    uint64_t *h = arg;
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++)
        *h = (*h ^ p[i]) * 0x100000001b3ULL;
    return 0;
}

/* State Machine Safety on the real store: once every member applied the same index, their
 * state machines hold the same state, byte for byte as a snapshot streams it. */
static void check_states(struct run *r)
{
    uint64_t first = 0;
    raft_index first_index = 0;
    raft_id first_id = 0;
    for (raft_id id = 1; id <= r->slots && !r->failed; id++) {
        struct rk_node *n = r->nodes[id];
        uint64_t h = 0xcbf29ce484222325ULL;
        raft_index index = 0;
        if (r->final.role[id] == M_OUT)
            continue;
        if (ready__persist_fsm(n) != 0 || n->fsm->ops->snapshot(n->fsm, digest_emit, &h, &index))
            fail(r, "n%" PRIu64 " could not stream its state machine", id);
        else if (!first_id)
            first = h, first_index = index, first_id = id;
        else if (h != first || index != first_index)
            fail(r,
                 "State Machine Safety: n%" PRIu64 " holds another state at index %" PRIu64
                 " than n%" PRIu64 " at %" PRIu64,
                 id, index, first_id, first_index);
    }
}

static void finish(struct run *r)
{
    for (size_t i = 0; i < CLIENTS; i++)
        if (r->clients[i].busy)
            record(r, &r->clients[i], HIST_UNKNOWN);
    heal(r);
    /* A membership request still on its way (a transfer moves the leader) ends first. */
    while (!r->failed && r->admin.busy) {
        admin_expire(r);
        tick(r);
    }
    uint64_t until = sim.now_ms + HEAL_BOUND_MS;
    raft_id leader = final_configuration(r, until);
    if (!leader) {
        fail(r,
             "Liveness: no leader answered a committed configuration whose members all follow "
             "it within %d ms of the heal",
             HEAL_BOUND_MS);
        return;
    }
    r->leader_guess = leader;
    check_roles(r, r->final.role, "the leader's committed configuration");
    final_reads(r, leader);
    while (!r->failed && lagging(r, leader) && sim.now_ms < until + HEAL_BOUND_MS)
        tick(r);
    raft_id behind = r->failed ? 0 : lagging(r, leader);
    if (behind)
        fail(r,
             "Liveness: n%" PRIu64 " (following n%" PRIu64 ", its log up to %" PRIu64
             ") applied %" PRIu64 ", not leader n%" PRIu64 "'s commit index %" PRIu64,
             behind, r->nodes[behind]->view.leader, r->nodes[behind]->view.last_index,
             r->nodes[behind]->view.applied, leader, r->nodes[leader]->view.commit);
    check_states(r);
}

static void check_history(struct run *r)
{
    struct lincheck_options o = {0};
    struct lincheck_result res;
    enum lincheck_verdict v = lincheck_history(&r->hist, &o, &res);
    if (v != LINCHECK_OK) {
        fail(r, "%s",
             v == LINCHECK_VIOLATION ? "Linearizability: the history is not linearizable"
                                     : "the linearizability check ran out of budget");
        lincheck_result_print(stdout, &r->hist, &res);
    }
    lincheck_result_free(&res);
}

/* ---- runs ---- */

static void print_counts(admin_counts c)
{
    printf("membership requests tried (ok/refused/not leader/unknown):");
    for (int k = 0; k < ADMIN_LIST; k++)
        printf("%s %s %" PRIu64 " (%" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64 ")", k ? "," : "",
               admin_names[k],
               c[k][ADMIN_OK] + c[k][ADMIN_REFUSED] + c[k][ADMIN_NOT_LEADER] + c[k][ADMIN_UNKNOWN],
               c[k][ADMIN_OK], c[k][ADMIN_REFUSED], c[k][ADMIN_NOT_LEADER], c[k][ADMIN_UNKNOWN]);
    printf("\n");
}

static bool run_seed(uint64_t seed, size_t nodes, unsigned ms, bool loud, admin_counts totals)
{
    static struct run r;
    memset(&r, 0, sizeof r);
    sim_network_clear();
    memset(&sim, 0, sizeof sim);
    sim.seed = sim.rng = seed;
    sim.on_reply = on_reply;
    sim.reply_arg = &r;
    r.seed = seed;
    r.n = nodes;
    draw_profile(&r);
    draw_membership(&r);
    struct stat st;
    const char *tmp = getenv("TMPDIR")                                    ? getenv("TMPDIR")
                      : stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm"
                                                                          : "/tmp";
    snprintf(r.dir, sizeof r.dir, "%s/raft-hostsim-XXXXXX", tmp);
    if (!mkdtemp(r.dir)) {
        printf("seed %" PRIu64 ": cannot make a directory under %s: %s\n", seed, tmp,
               strerror(errno));
        return false;
    }
    for (raft_id id = 1; id <= r.slots && !r.failed; id++)
        if (write_config(&r, id))
            node_start(&r, id);
    while (!r.failed && sim.now_ms < ms) {
        inject_faults(&r);
        clients_act(&r);
        members_act(&r);
        tick(&r);
    }
    if (!r.failed)
        finish(&r);
    if (!r.failed)
        check_history(&r);
    for (raft_id id = 1; id <= r.slots; id++) {
        if (r.nodes[id])
            node_crash(&r, id, false);
        rk_config_free(&r.cfg[id]);
    }
    for (size_t i = 0; i < r.n_calls; i++)
        free(r.calls[i]);
    free(r.calls);
    if (r.failed) {
        printf("seed %" PRIu64 " FAILED at %" PRIu64 " ms: %s (replay: raft-hostsim --seed %" PRIu64
               " --nodes %zu --ms %u)\n",
               seed, sim.now_ms, r.why, seed, nodes, ms);
        if (loud)
            for (size_t i = 0; i < r.hist.n; i++)
                history_write_op(stdout, &r.hist.ops[i]);
    } else if (loud) {
        printf("seed %" PRIu64 " ok: %u spares, %" PRIu64 " operations, %" PRIu64
               " crashes, %" PRIu64 " messages delivered, %" PRIu64 " dropped\n",
               seed, r.p.spares, r.ops, r.crashes, sim.delivered, sim.dropped);
    }
    if (loud)
        print_counts(r.counts);
    for (int k = 0; k < ADMIN_KINDS; k++)
        for (int o = 0; o < ADMIN_OUTCOMES; o++)
            totals[k][o] += r.counts[k][o];
    history_free(&r.hist);
    sim_network_clear();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", r.dir);
    if (system(cmd) != 0)
        printf("seed %" PRIu64 ": could not remove %s\n", seed, r.dir);
    return !r.failed;
}

static int usage(void)
{
    fprintf(stderr, "usage: raft-hostsim (--seed S | --seeds N [--start S]) [--nodes 3|5] "
                    "[--ms T]\n");
    return 2;
}

int main(int argc, char **argv)
{
    uint64_t start = 1, count = 0;
    size_t nodes = 3;
    unsigned ms = 4000;
    bool single = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        unsigned long long v = strtoull(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--seed")) {
            start = v;
            count = 1;
            single = true;
        } else if (!strcmp(argv[i], "--seeds")) {
            count = v;
        } else if (!strcmp(argv[i], "--start")) {
            start = v;
        } else if (!strcmp(argv[i], "--nodes")) {
            nodes = (size_t)v;
        } else if (!strcmp(argv[i], "--ms")) {
            ms = (unsigned)v;
        } else {
            return usage();
        }
    }
    if (argc % 2 == 0 || !count || (nodes != 3 && nodes != 5) || ms < 100)
        return usage();
    rk_log_set_level(RK_LOG_ERROR);
    uint64_t failed = 0, first = 0;
    admin_counts totals = {{0}};
    for (uint64_t s = start; s < start + count; s++)
        if (!run_seed(s, nodes, ms, single, totals) && !failed++)
            first = s;
    if (!single) {
        printf("raft-hostsim: %" PRIu64 " seeds from %" PRIu64 " (nodes=%zu ms=%u): %" PRIu64
               " passed, %" PRIu64 " failed",
               count, start, nodes, ms, count - failed, failed);
        if (failed)
            printf(", first failing seed %" PRIu64, first);
        printf("\n");
        print_counts(totals);
    }
    return failed ? 1 : 0;
}
