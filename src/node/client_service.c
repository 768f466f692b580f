/*
 * The client service: takes client requests off the loop's queue, proposes writes and
 * keeps them until their entry commits, runs reads through a ReadIndex round (Raft
 * dissertation §6.4), and answers every request exactly once.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "kv.pb-c.h"
#include "node/log.h"
#include "node/node_internal.h"
#include "transport/transport.h"

/* Room kept free in the map: proposals are refused beyond max_db_bytes minus this, so the
 * node can still persist heartbeats' terms, votes and the entries already in flight. */
#define FULL_HEADROOM_MIN (8u << 20)

void clients__on_request(void *arg, struct rk_client_call *call, const uint8_t *req, size_t len)
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

/* ---- Replies. ---- */

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

void clients__reply_unavailable(struct rk_node *n, struct rk_client_call *call, const char *why)
{
    reply_error(n, call, RAFTKV__KV__CODE__UNAVAILABLE, why);
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

void clients__settle(struct rk_node *n, const struct raft_entry *e, const struct raftkv_buf *result)
{
    struct pending *p;
    while ((p = pending_front(n)) && p->index <= e->index) {
        if (p->index == e->index && p->term == e->term)
            reply_bytes(n, p->call, result);
        else
            reply_error(n, p->call, RAFTKV__KV__CODE__UNAVAILABLE, "leadership changed, retry");
        pending_pop(n);
    }
}

/* ---- Reads. ---- */

static void read_pop(struct rk_node *n, size_t i)
{
    free(n->reads[i].request);
    memmove(&n->reads[i], &n->reads[i + 1], (n->n_reads - i - 1) * sizeof n->reads[0]);
    n->n_reads--;
}

void clients__fail_waiting(struct rk_node *n, const char *why, bool all_reads)
{
    if (n->n_pending)
        rk_info("answering %zu waiting proposals UNAVAILABLE: %s", n->n_pending, why);
    while (n->n_pending) {
        reply_error(n, pending_front(n)->call, RAFTKV__KV__CODE__UNAVAILABLE, why);
        pending_pop(n);
    }
    /* A confirmed read stays valid after a change of leader: its state was current when
     * it was confirmed. */
    for (size_t i = n->n_reads; i-- > 0;) {
        if (all_reads || n->reads[i].index == 0) {
            reply_error(n, n->reads[i].call, RAFTKV__KV__CODE__UNAVAILABLE, why);
            read_pop(n, i);
        }
    }
}

void clients__reads_confirm(struct rk_node *n, const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_read_states; i++)
        for (size_t j = 0; j < n->n_reads; j++)
            if (n->reads[j].ctx == rd->read_states[i].ctx)
                n->reads[j].index = rd->read_states[i].index;
}

void clients__reads_serve(struct rk_node *n)
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

/* ---- Requests. ---- */

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

void clients__handle(struct rk_node *n, struct event *ev)
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
