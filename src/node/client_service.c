/*
 * The client service: takes client requests off the loop's queue, proposes writes and
 * keeps them until their entry commits, runs reads through a ReadIndex round (Raft
 * dissertation §6.4), and answers every request exactly once.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/version.h"
#include "client.pb-c.h"
#include "log/log.h"
#include "node/node_internal.h"
#include "transport/transport.h"

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

/* ---- Replies: the envelope of client.proto around the state machine's answers. ---- */

void clients__reply(struct rk_node *n, struct rk_client_call *call,
                    const Raftkv__Client__Response *resp)
{
    size_t len = raftkv__client__response__get_packed_size(resp);
    uint8_t *buf = malloc(len ? len : 1);
    metrics__client_reply(n, call, buf ? resp->code : RAFTKV__CLIENT__CODE__INTERNAL);
    if (!buf) {
        rk_error("out of memory packing a client response");
        rk_client_server_reply(n->clients, call, NULL, 0);
        return;
    }
    raftkv__client__response__pack(resp, buf);
    rk_client_server_reply(n->clients, call, buf, len);
    free(buf);
}

void clients__reply_error(struct rk_node *n, struct rk_client_call *call, Raftkv__Client__Code code,
                          const char *error)
{
    Raftkv__Client__Response resp = RAFTKV__CLIENT__RESPONSE__INIT;
    resp.code = code;
    resp.error = (char *)error;
    clients__reply(n, call, &resp);
}

void clients__reply_unavailable(struct rk_node *n, struct rk_client_call *call, const char *why)
{
    clients__reply_error(n, call, RAFTKV__CLIENT__CODE__UNAVAILABLE, why);
}

void clients__reply_not_leader(struct rk_node *n, struct rk_client_call *call)
{
    Raftkv__Client__NotLeader nl = RAFTKV__CLIENT__NOT_LEADER__INIT;
    nl.leader_id = n->view.leader;
    nl.leader_address = (char *)members__client_address(n, n->view.leader);
    Raftkv__Client__Response resp = RAFTKV__CLIENT__RESPONSE__INIT;
    resp.code = RAFTKV__CLIENT__CODE__NOT_LEADER;
    resp.not_leader = &nl;
    resp.error = n->view.leader ? "not the leader" : "no leader known yet";
    clients__reply(n, call, &resp);
}

/* The members, the snapshots and the storage. */
static void status_parts(struct rk_node *n, struct node_status *out)
{
    raft_index conf_index;
    const struct raft_configuration *conf = raft_configuration_of(n->raft, &conf_index);
    out->st.n_members = conf->n <= RAFT_MAX_MEMBERS ? conf->n : RAFT_MAX_MEMBERS;
    struct raft_configuration shown = {out->st.n_members, conf->members};
    members__fill(n, &shown, out->members, out->member_ptrs);
    out->st.members = out->member_ptrs;

    Raftkv__Client__SnapshotStatus snap = RAFTKV__CLIENT__SNAPSHOT_STATUS__INIT;
    snap.index = n->snapdir.latest.index;
    snap.term = n->snapdir.latest.term;
    snap.bytes = n->snapdir.latest.size;
    snap.taken = n->snapshots_taken;
    snap.taken_bytes = n->snapshot_taken_bytes;
    snap.sent_bytes = n->snapshot_sent_bytes;
    snap.installed_bytes = n->snapshot_installed_bytes;
    out->snapshot = snap;
    out->st.snapshot = &out->snapshot;

    struct rk_db_stats db;
    rk_db_stats(n->db, &db);
    Raftkv__Client__StorageStatus storage = RAFTKV__CLIENT__STORAGE_STATUS__INIT;
    storage.map_bytes = db.map_bytes;
    storage.used_bytes = db.used_bytes;
    storage.max_bytes = n->cfg->max_db_bytes;
    storage.commits = db.commits;
    out->storage = storage;
    out->st.storage = &out->storage;
}

void clients__status(struct rk_node *n, struct node_status *out)
{
    struct raft_stats rs;
    struct rk_transport_stats ts;
    raft_stats_of(n->raft, &rs);
    rk_transport_stats(n->transport, &ts);
    Raftkv__Client__RaftStats raft = RAFTKV__CLIENT__RAFT_STATS__INIT;
    raft.msgs_dropped_unknown_peer = rs.msgs_dropped_unknown_peer;
    raft.msgs_dropped_stale_term = rs.msgs_dropped_stale_term;
    raft.msgs_dropped_malformed = rs.msgs_dropped_malformed;
    raft.elections_started = rs.elections_started;
    raft.pre_votes_started = rs.pre_votes_started;
    raft.leader_stepped_down_no_quorum = rs.leader_stepped_down_no_quorum;
    raft.append_rejections = rs.append_rejections;
    raft.snapshots_sent = rs.snapshots_sent;
    raft.snapshots_installed = rs.snapshots_installed;
    raft.snapshots_refused = n->snapshots_refused;
    raft.snapshots_damaged = n->snapshots_damaged;
    raft.configuration_changes = rs.configuration_changes;
    raft.transfers_started = rs.transfers_started;
    raft.transfers_abandoned = rs.transfers_abandoned;
    Raftkv__Client__TransportStats transport = RAFTKV__CLIENT__TRANSPORT_STATS__INIT;
    transport.sent = ts.sent;
    transport.send_dropped = ts.send_dropped;
    transport.received = ts.received;
    transport.recv_malformed = ts.recv_malformed;
    transport.recv_unknown_peer = ts.recv_unknown_peer;
    transport.recv_oversized = ts.recv_oversized;
    transport.redials = ts.redials;
    struct rk_server_stats ss = {0};
    rk_client_server_stats(n->clients, &ss);
    rk_transport_server_stats(n->transport, &ss);
    Raftkv__Client__ServerStats servers = RAFTKV__CLIENT__SERVER_STATS__INIT;
    servers.conns_refused = ss.conns_refused;
    servers.conns_closed_slow = ss.conns_closed_slow;
    servers.conns_closed_idle = ss.conns_closed_idle;
    servers.requests_over_limit = ss.requests_over_limit;
    transport.tls_refused = ts.tls_refused;
    transport.tls_dials_failed = ts.tls_dials_failed;
    transport.client_tls_refused = n->client_tls_refused;

    Raftkv__Client__NodeStatus st = RAFTKV__CLIENT__NODE_STATUS__INIT;
    st.id = n->cfg->node_id;
    st.role = (char *)node__role_name(&n->view);
    st.term = n->view.term;
    st.leader_id = n->view.leader;
    st.commit_index = n->view.commit;
    st.applied_index = n->view.applied;
    st.last_log_index = n->view.last_index;
    st.version = (char *)rk_version();
    out->raft = raft;
    out->transport = transport;
    out->servers = servers;
    out->st = st;
    out->st.raft = &out->raft;
    out->st.transport = &out->transport;
    out->st.servers = &out->servers;
    status_parts(n, out);
}

static void reply_status(struct rk_node *n, struct rk_client_call *call)
{
    struct node_status s;
    clients__status(n, &s);
    Raftkv__Client__Response resp = RAFTKV__CLIENT__RESPONSE__INIT;
    resp.status = &s.st;
    clients__reply(n, call, &resp);
}

/* The state machine's answer, as it is. */
static void reply_fsm(struct rk_node *n, struct rk_client_call *call, const struct raftkv_buf *b)
{
    if (!b->len) {
        clients__reply_error(n, call, RAFTKV__CLIENT__CODE__INTERNAL,
                             "the state machine gave no answer");
        return;
    }
    Raftkv__Client__Response resp = RAFTKV__CLIENT__RESPONSE__INIT;
    resp.fsm = (ProtobufCBinaryData){b->len, b->data};
    clients__reply(n, call, &resp);
}

/* ---- Proposals awaiting commit. ---- */

static int pending_push(struct rk_node *n, raft_index index, raft_term term,
                        struct rk_client_call *call, bool members)
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
    n->pending[n->pending_head + n->n_pending++] = (struct pending){index, term, call, members};
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
        bool committed = p->index == e->index && p->term == e->term;
        n->metrics.proposals[committed ? PROPOSAL_COMMITTED : PROPOSAL_ABANDONED]++;
        if (committed && p->members)
            members__reply_list(n, p->call);
        else if (committed)
            reply_fsm(n, p->call, result);
        else
            clients__reply_error(n, p->call, RAFTKV__CLIENT__CODE__UNAVAILABLE,
                                 "leadership changed, retry");
        pending_pop(n);
    }
}

/* ---- Reads. ---- */

static void read_pop(struct rk_node *n, size_t i)
{
    n->fsm->ops->read_free(n->fsm, n->reads[i].query);
    memmove(&n->reads[i], &n->reads[i + 1], (n->n_reads - i - 1) * sizeof n->reads[0]);
    n->n_reads--;
}

void clients__fail_waiting(struct rk_node *n, const char *why, bool all)
{
    /* After a change of leader, a proposal already committed still gets its result when
     * this node applies it (as a leader that removed itself does its own removal's). */
    raft_index keep = all ? 0 : n->view.commit;
    size_t kept = 0;
    while (kept < n->n_pending && n->pending[n->pending_head + kept].index <= keep)
        kept++;
    if (n->n_pending > kept)
        rk_info("answering %zu waiting proposals UNAVAILABLE: %s", n->n_pending - kept, why);
    n->metrics.proposals[PROPOSAL_ABANDONED] += n->n_pending - kept;
    for (; n->n_pending > kept; n->n_pending--)
        clients__reply_error(n, n->pending[n->pending_head + n->n_pending - 1].call,
                             RAFTKV__CLIENT__CODE__UNAVAILABLE, why);
    if (n->n_pending == 0)
        n->pending_head = 0;
    /* A confirmed read stays valid after a change of leader: its state was current when
     * it was confirmed. */
    for (size_t i = n->n_reads; i-- > 0;) {
        if (all || n->reads[i].index == 0) {
            clients__reply_error(n, n->reads[i].call, RAFTKV__CLIENT__CODE__UNAVAILABLE, why);
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
        int rc = n->fsm->ops->query(n->fsm, rd->query, &result);
        if (rc == 0)
            reply_fsm(n, rd->call, &result);
        else
            clients__reply_error(n, rd->call, RAFTKV__CLIENT__CODE__UNAVAILABLE,
                                 n->fsm->ops->strerror(n->fsm, rc));
        free(result.data);
        read_pop(n, 0);
    }
}

/* Raft dissertation §6.4: a read needs no log write, only a confirmation that this node
 * still leads (raft_read_index) and a state machine caught up to the commit index. Takes
 * query (the state machine's prepared read). */
static void read_request(struct rk_node *n, struct rk_client_call *call, void *query)
{
    if (n->n_reads == n->cap_reads) {
        size_t cap = n->cap_reads ? 2 * n->cap_reads : 64;
        struct read *grown = realloc(n->reads, cap * sizeof *grown);
        if (!grown) {
            n->fsm->ops->read_free(n->fsm, query);
            clients__reply_error(n, call, RAFTKV__CLIENT__CODE__UNAVAILABLE, "out of memory");
            return;
        }
        n->reads = grown;
        n->cap_reads = cap;
    }
    int rc = raft_read_index(n->raft, ++n->last_read_ctx);
    if (rc != RAFT_OK) {
        n->fsm->ops->read_free(n->fsm, query);
        if (rc == RAFT_ENOTLEADER)
            clients__reply_not_leader(n, call);
        else
            clients__reply_error(n, call, RAFTKV__CLIENT__CODE__UNAVAILABLE, raft_strerror(rc));
        return;
    }
    n->reads[n->n_reads++] = (struct read){n->last_read_ctx, 0, call, query};
}

/* ---- Requests. ---- */

/* Proposes entry (the request's own bytes when the state machine left it empty) and
 * keeps the call until it commits. */
static void propose(struct rk_node *n, struct rk_client_call *call, const struct raftkv_buf *entry,
                    ProtobufCBinaryData request)
{
    const uint8_t *data = entry->len ? entry->data : request.data;
    size_t len = entry->len ? entry->len : request.len;
    raft_index index;
    raft_term term;
    int rc = raft_propose(n->raft, data, len, &index, &term);
    if (rc != RAFT_OK)
        n->metrics.proposals[rc == RAFT_ENOTLEADER ? PROPOSAL_NOT_LEADER
                             : rc == RAFT_ETOOBIG  ? PROPOSAL_TOO_BIG
                             : rc == RAFT_EBUSY    ? PROPOSAL_BUSY
                                                   : PROPOSAL_FAILED]++;
    if (rc == RAFT_ENOTLEADER)
        clients__reply_not_leader(n, call);
    else if (rc == RAFT_ETOOBIG)
        clients__reply_error(n, call, RAFTKV__CLIENT__CODE__INVALID, "request too large");
    else if (rc == RAFT_EBUSY)
        clients__reply_error(n, call, RAFTKV__CLIENT__CODE__UNAVAILABLE,
                             "the leadership is being transferred, retry");
    else if (rc != RAFT_OK)
        clients__reply_error(n, call, RAFTKV__CLIENT__CODE__UNAVAILABLE, raft_strerror(rc));
    else
        clients__await(n, index, term, call, false);
}

void clients__await(struct rk_node *n, raft_index index, raft_term term,
                    struct rk_client_call *call, bool members)
{
    /* The entry may still commit; the client retries and sees the result then. */
    if (pending_push(n, index, term, call, members) != 0)
        clients__reply_error(n, call, RAFTKV__CLIENT__CODE__UNAVAILABLE, "out of memory");
}

/* A request for the state machine, on the leader: prepare says what to do with it. */
static void fsm_request(struct rk_node *n, struct rk_client_call *call, ProtobufCBinaryData request)
{
    struct raftkv_prepared p;
    int rc = n->fsm->ops->prepare(n->fsm, request.data, request.len, &p);
    if (rc != 0) {
        clients__reply_error(n, call, RAFTKV__CLIENT__CODE__UNAVAILABLE,
                             n->fsm->ops->strerror(n->fsm, rc));
        return;
    }
    switch (p.kind) {
    case RAFTKV_PREPARE_REFUSE:
        clients__reply_error(n, call, RAFTKV__CLIENT__CODE__INVALID, p.why);
        break;
    case RAFTKV_PREPARE_READ:
        if (n->fsm->ops->query) {
            read_request(n, call, p.read); /* served even when full: it writes nothing */
            break;
        }
        if (n->fsm->ops->read_free)
            n->fsm->ops->read_free(n->fsm, p.read);
        clients__reply_error(n, call, RAFTKV__CLIENT__CODE__INTERNAL,
                             "the state machine prepared a read but answers none (no query op)");
        break;
    case RAFTKV_PREPARE_PROPOSE:
        if (n->refusing_full)
            clients__reply_error(n, call, RAFTKV__CLIENT__CODE__UNAVAILABLE, "storage full");
        else
            propose(n, call, &p.entry, request);
        free(p.entry.data);
        break;
    }
}

/* The request's kind, for metrics: its field in the envelope's oneof ("status",
 * "member_change"...) or, for the state machine, the machine's own name for it. */
static const char *request_name(struct rk_node *n, const Raftkv__Client__Request *req)
{
    if (req->body_case == RAFTKV__CLIENT__REQUEST__BODY_FSM)
        return n->fsm->ops->request_name
                   ? n->fsm->ops->request_name(n->fsm, req->fsm.data, req->fsm.len)
                   : NULL;
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
        &raftkv__client__request__descriptor, (unsigned)req->body_case);
    return f ? f->name : NULL;
}

void clients__handle(struct rk_node *n, struct event *ev)
{
    Raftkv__Client__Request *req = raftkv__client__request__unpack(NULL, ev->len, ev->data);
    if (req)
        rk_client_call_set_tag(ev->call, metrics__op(&n->metrics, request_name(n, req)));
    if (!req) {
        rk_debug("malformed client request (%zu bytes)", ev->len);
        clients__reply_error(n, ev->call, RAFTKV__CLIENT__CODE__INVALID, "malformed request");
        return;
    }
    if (req->body_case == RAFTKV__CLIENT__REQUEST__BODY_STATUS)
        reply_status(n, ev->call);
    else if (members__handles(req))
        members__handle(n, ev->call, req);
    else if (req->body_case != RAFTKV__CLIENT__REQUEST__BODY_FSM)
        clients__reply_error(n, ev->call, RAFTKV__CLIENT__CODE__INVALID, "request without a body");
    else if (n->held)
        clients__reply_error(n, ev->call, RAFTKV__CLIENT__CODE__UNAVAILABLE, "storage full");
    else if (raft_role_of(n->raft) != RAFT_LEADER)
        clients__reply_not_leader(n, ev->call);
    else
        fsm_request(n, ev->call, req->fsm);
    raftkv__client__request__free_unpacked(req, NULL);
}
