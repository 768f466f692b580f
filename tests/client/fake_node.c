#include "fake_node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/protocol/reqrep0/rep.h>

/* A member change's or move-leader's arguments. n->mu held. */
static void fake_record_member(struct fake_node *n, const Raftkv__Client__Request *env)
{
    const Raftkv__Client__MemberChangeRequest *m = env->member_change;
    if (env->body_case == RAFTKV__CLIENT__REQUEST__BODY_MOVE_LEADER)
        n->last_member_id = env->move_leader->id;
    if (env->body_case != RAFTKV__CLIENT__REQUEST__BODY_MEMBER_CHANGE)
        return;
    n->last_change_kind = m->kind;
    n->last_member_id = m->id;
    snprintf(n->last_peer_address, sizeof n->last_peer_address, "%s", m->peer_address);
    snprintf(n->last_client_address, sizeof n->last_client_address, "%s", m->client_address);
}

static void fake_record(struct fake_node *n, const Raftkv__Client__Request *env,
                        const Raftkv__Kv__Request *req)
{
    nng_mtx_lock(n->mu);
    if (req && req->op_case == RAFTKV__KV__REQUEST__OP_REGISTER_SESSION) {
        n->registrations++;
        nng_mtx_unlock(n->mu);
        return;
    }
    n->requests++;
    n->last_was_status = env->body_case == RAFTKV__CLIENT__REQUEST__BODY_STATUS;
    n->last_body = env->body_case;
    fake_record_member(n, env);
    n->last_op = req ? req->op_case : 0;
    if (req) {
        n->last_session = req->session;
        n->last_sequence = req->sequence;
        n->last_first_incomplete = req->first_incomplete;
    }
    ProtobufCBinaryData *value =
        req && req->op_case == RAFTKV__KV__REQUEST__OP_PUT   ? &req->put->value
        : req && req->op_case == RAFTKV__KV__REQUEST__OP_CAS ? &req->cas->new_value
                                                             : NULL;
    if (value) {
        free(n->last_value);
        n->last_value = malloc(value->len ? value->len : 1);
        n->last_value_len = n->last_value ? value->len : 0;
        if (value->len && n->last_value)
            memcpy(n->last_value, value->data, value->len);
    }
    if (req && req->op_case == RAFTKV__KV__REQUEST__OP_RANGE) {
        const Raftkv__Kv__Range *r = req->range;
        snprintf(n->last_range_key, sizeof n->last_range_key, "%.*s", (int)r->key.len,
                 (const char *)r->key.data);
        snprintf(n->last_range_end, sizeof n->last_range_end, "%.*s", (int)r->range_end.len,
                 (const char *)r->range_end.data);
        n->last_range_limit = r->limit;
        n->last_range_after = r->key.len && r->key.data[r->key.len - 1] == 0;
        n->ranges++;
    }
    if (req && req->op_case == RAFTKV__KV__REQUEST__OP_CAS) {
        n->last_expect_absent = req->cas->expect_absent;
        snprintf(n->last_expected, sizeof n->last_expected, "%.*s", (int)req->cas->expected.len,
                 (const char *)req->cas->expected.data);
    }
    nng_mtx_unlock(n->mu);
}

/* A range's keys from n->keys (last_range_*: the request; a key that ends in a 0 byte
 * is recorded without it, and last_range_after set). kvs has room for every key. */
static void fake_range(const struct fake_node *n, Raftkv__Kv__KeyValue *kvs,
                       Raftkv__Kv__KeyValue **ptrs, Raftkv__Kv__Response *kv)
{
    size_t limit = n->last_range_limit && n->last_range_limit < 1000 ? n->last_range_limit : 1000;
    size_t page = n->range_page && n->range_page < limit ? n->range_page : limit;
    for (size_t i = 0; i < n->n_keys; i++) {
        const char *k = n->keys[i];
        int from = strcmp(k, n->last_range_key);
        if (from < 0 || (from == 0 && n->last_range_after) ||
            (n->last_range_end[0] && strcmp(k, n->last_range_end) >= 0))
            continue;
        if (kv->n_kvs == page) {
            kv->more = true;
            break;
        }
        kvs[kv->n_kvs] = (Raftkv__Kv__KeyValue)RAFTKV__KV__KEY_VALUE__INIT;
        kvs[kv->n_kvs].key = (ProtobufCBinaryData){strlen(k), (uint8_t *)k};
        kvs[kv->n_kvs].value = kvs[kv->n_kvs].key;
        kvs[kv->n_kvs].create_revision = 1;
        kvs[kv->n_kvs].mod_revision = 2;
        ptrs[kv->n_kvs] = &kvs[kv->n_kvs];
        kv->n_kvs++;
    }
    kv->kvs = ptrs;
    kv->revision = n->range_revision;
}

/* The KV store's answer, packed into out (freed by the caller). */
static int fake_kv_answer(const struct fake_node *n, bool registration, ProtobufCBinaryData *out)
{
    Raftkv__Kv__Response kv = RAFTKV__KV__RESPONSE__INIT;
    kv.code = registration ? RAFTKV__KV__CODE__OK : n->code;
    kv.value.data = (uint8_t *)n->value;
    kv.value.len = n->value_len;
    kv.error = (char *)(n->error ? n->error : "");
    kv.create_revision = n->create_revision;
    kv.mod_revision = n->mod_revision;
    kv.revision = registration ? FAKE_SESSION_ID : n->revision;
    Raftkv__Kv__KeyValue *kvs = calloc(n->n_keys + 1, sizeof *kvs);
    Raftkv__Kv__KeyValue **ptrs = calloc(n->n_keys + 1, sizeof *ptrs);
    if (kvs && ptrs && !registration && n->last_op == RAFTKV__KV__REQUEST__OP_RANGE)
        fake_range(n, kvs, ptrs, &kv);
    out->len = raftkv__kv__response__get_packed_size(&kv);
    out->data = kvs && ptrs ? malloc(out->len ? out->len : 1) : NULL;
    if (out->data)
        raftkv__kv__response__pack(&kv, out->data);
    free(ptrs);
    free(kvs);
    return out->data ? 0 : -1;
}

static bool is_member_request(Raftkv__Client__Request__BodyCase body)
{
    return body == RAFTKV__CLIENT__REQUEST__BODY_MEMBER_LIST ||
           body == RAFTKV__CLIENT__REQUEST__BODY_MEMBER_CHANGE ||
           body == RAFTKV__CLIENT__REQUEST__BODY_MOVE_LEADER;
}

/* The envelope's code of the next answer: the script's, then node_code. n->mu held. */
static Raftkv__Client__Code fake_next_code(struct fake_node *n, bool registration)
{
    if (registration || !n->n_next_codes)
        return n->node_code;
    Raftkv__Client__Code code = n->next_codes[0];
    memmove(n->next_codes, n->next_codes + 1, --n->n_next_codes * sizeof n->next_codes[0]);
    return code;
}

static void fake_answer(struct fake_node *n, bool registration,
                        Raftkv__Client__Request__BodyCase body)
{
    bool status_request = body == RAFTKV__CLIENT__REQUEST__BODY_STATUS;
    Raftkv__Client__Response resp = RAFTKV__CLIENT__RESPONSE__INIT;
    Raftkv__Client__NotLeader nl = RAFTKV__CLIENT__NOT_LEADER__INIT;
    Raftkv__Client__NodeStatus st = RAFTKV__CLIENT__NODE_STATUS__INIT;
    Raftkv__Client__RaftStats raft = RAFTKV__CLIENT__RAFT_STATS__INIT;
    Raftkv__Client__TransportStats transport = RAFTKV__CLIENT__TRANSPORT_STATS__INIT;
    /* A node answers its status whatever it answers to the KV store's requests. */
    Raftkv__Client__Code code = n->answer_status && status_request
                                    ? RAFTKV__CLIENT__CODE__OK
                                    : fake_next_code(n, registration);
    resp.code = code;
    resp.error = (char *)(n->error ? n->error : "");
    if (code == RAFTKV__CLIENT__CODE__NOT_LEADER) {
        nl.leader_address = (char *)(n->hint ? n->hint : "");
        resp.not_leader = &nl;
    }
    if (n->answer_status && status_request) {
        st.id = n->status_id;
        st.role = (char *)(n->status_role ? n->status_role : "leader");
        st.term = n->status_term ? n->status_term : 4;
        st.leader_id = n->status_role ? n->status_leader : n->status_id;
        st.commit_index = 10;
        st.applied_index = 9;
        st.last_log_index = 11;
        raft.elections_started = 3;
        raft.transfers_started = 2;
        transport.sent = 7;
        st.raft = &raft;
        st.transport = &transport;
        resp.status = &st;
    } else if (is_member_request(body)) {
        if (code == RAFTKV__CLIENT__CODE__OK || code == RAFTKV__CLIENT__CODE__INVALID)
            resp.members = (Raftkv__Client__MemberList *)n->members;
    } else if (code == RAFTKV__CLIENT__CODE__OK &&
               fake_kv_answer(n, registration, &resp.fsm) != 0) {
        return;
    }
    nng_msg *msg;
    size_t len = raftkv__client__response__get_packed_size(&resp);
    if (nng_msg_alloc(&msg, len) == 0) {
        raftkv__client__response__pack(&resp, nng_msg_body(msg));
        if (nng_sendmsg(n->sock, msg, 0))
            nng_msg_free(msg);
    }
    free(resp.fsm.data);
}

static void fake_serve(void *arg)
{
    struct fake_node *n = arg;
    while (!atomic_load(&n->stopping)) {
        nng_msg *msg;
        int rv = nng_recvmsg(n->sock, &msg, 0);
        if (rv == NNG_ETIMEDOUT)
            continue;
        if (rv)
            return;
        Raftkv__Client__Request *env =
            raftkv__client__request__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
        nng_msg_free(msg);
        if (!env)
            continue;
        Raftkv__Kv__Request *req =
            env->body_case == RAFTKV__CLIENT__REQUEST__BODY_FSM
                ? raftkv__kv__request__unpack(NULL, env->fsm.len, env->fsm.data)
                : NULL;
        fake_record(n, env, req);
        bool registration = req && req->op_case == RAFTKV__KV__REQUEST__OP_REGISTER_SESSION;
        Raftkv__Client__Request__BodyCase body = env->body_case;
        if (req)
            raftkv__kv__request__free_unpacked(req, NULL);
        raftkv__client__request__free_unpacked(env, NULL);
        if (n->delay_ms_max)
            nng_msleep(nng_random() % (n->delay_ms_max + 1));
        nng_mtx_lock(n->mu); /* tests may change the canned answer meanwhile */
        bool ignore = n->silent || (!registration && n->ignore_next > 0);
        if (!n->silent && ignore)
            n->ignore_next--;
        if (!ignore)
            fake_answer(n, registration, body);
        nng_mtx_unlock(n->mu);
    }
}

static int fake_listen(nng_socket sock, char *url, size_t size)
{
    nng_listener l;
    int port, rv = nng_listen(sock, url[0] ? url : "tcp://127.0.0.1:0", &l, 0);
    if (rv || (rv = nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port)))
        return rv;
    snprintf(url, size, "tcp://127.0.0.1:%d", port);
    return 0;
}

int fake_node_start(struct fake_node *n)
{
    int rv = nng_mtx_alloc(&n->mu);
    if (rv)
        return rv;
    atomic_init(&n->stopping, false);
    if ((rv = nng_rep0_open(&n->sock)) == 0 &&
        ((rv = nng_socket_set_ms(n->sock, NNG_OPT_RECVTIMEO, 20)) ||
         (rv = fake_listen(n->sock, n->url, sizeof n->url)) ||
         (rv = nng_thread_create(&n->thread, fake_serve, n))))
        nng_close(n->sock);
    if (rv)
        nng_mtx_free(n->mu);
    return rv;
}

void fake_node_stop(struct fake_node *n)
{
    /* The thread stops receiving before the socket closes: NNG 1.5.2's nng_close can hang
     * when it ends a receive in progress (nanomsg/nng#1813). */
    atomic_store(&n->stopping, true);
    nng_thread_destroy(n->thread);
    nng_close(n->sock);
    nng_mtx_free(n->mu);
    free(n->last_value);
}

unsigned fake_node_requests(struct fake_node *n)
{
    nng_mtx_lock(n->mu);
    unsigned r = n->requests;
    nng_mtx_unlock(n->mu);
    return r;
}

unsigned fake_node_registrations(struct fake_node *n)
{
    nng_mtx_lock(n->mu);
    unsigned r = n->registrations;
    nng_mtx_unlock(n->mu);
    return r;
}

void fake_dead_url(char *buf, size_t size)
{
    nng_socket s;
    snprintf(buf, size, "tcp://127.0.0.1:1");
    if (nng_rep0_open(&s))
        return;
    char url[64] = "";
    if (fake_listen(s, url, sizeof url) == 0)
        snprintf(buf, size, "%s", url);
    nng_close(s);
}

const Raftkv__Client__MemberList *fake_member_list(void)
{
    static Raftkv__Client__Member voter = RAFTKV__CLIENT__MEMBER__INIT,
                                  learner = RAFTKV__CLIENT__MEMBER__INIT;
    static Raftkv__Client__Member *members[] = {&voter, &learner};
    static Raftkv__Client__MemberList list = RAFTKV__CLIENT__MEMBER_LIST__INIT;
    voter.id = 1;
    voter.role = "voter";
    voter.peer_address = "tcp://127.0.0.1:7001";
    voter.client_address = "tcp://127.0.0.1:7101";
    voter.match_index = 20;
    voter.healthy = true;
    learner.id = 4;
    learner.role = "learner";
    learner.peer_address = "tcp://127.0.0.1:7004";
    learner.client_address = "tcp://127.0.0.1:7104";
    learner.match_index = 12;
    list.leader_id = 1;
    list.term = 5;
    list.n_members = 2;
    list.members = members;
    list.configuration_index = 18;
    list.committed = true;
    list.last_log_index = 20;
    return &list;
}
