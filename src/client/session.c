/*
 * The client's session (Raft dissertation §6.3): writes are numbered in a session the
 * cluster registered, so that a write the library resends after a lost answer is applied at
 * most once (kv.proto, Request). The session is registered by the first write that needs it;
 * writes wait in a queue meanwhile, and while RK_SESSION_WINDOW writes are unanswered.
 *
 * A write answered SESSION_EXPIRED (the cluster forgot the session: too many others were
 * registered since it was last used) is sent again in a new session, once, when no copy of
 * it can have been applied: its call reached a node once, with this answer. Otherwise its
 * outcome is unknown and it ends with RAFTKV_SESSION_EXPIRED.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/call.h"
#include "kv.pb-c.h"

/* As the KV store's RK_KV_SESSION_WINDOW: writes numbered further past the first unanswered
 * one are refused. */
#define RK_SESSION_WINDOW 256

struct rk_write {
    struct raftkv_client *c;
    uint8_t *op; /* a packed kv.proto Request with only its op set */
    size_t op_len;
    uint64_t session; /* while sent: its session and sequence */
    uint64_t sequence;
    bool resent; /* once in a new session: a second expiry ends it */
    rk_write_done_fn done;
    void *arg;
    struct rk_write *next; /* in the queue */
};

static void write_end(struct rk_write *w, const struct rk_call_result *res)
{
    w->done(res, w->arg);
    free(w->op);
    free(w);
}

static void write_fail(struct rk_write *w, int status, const char *why)
{
    struct rk_call_result res = {.status = status};
    snprintf(res.error, sizeof res.error, "%s", why);
    write_end(w, &res);
}

/* The lowest sequence of the session not answered yet. c->mu held. */
static uint64_t first_incomplete(const struct rk_session *s)
{
    uint64_t first = s->next_sequence;
    for (size_t i = 0; i < s->n_in_flight; i++)
        if (s->in_flight[i] < first)
            first = s->in_flight[i];
    return first;
}

static void in_flight_remove(struct rk_session *s, uint64_t session, uint64_t sequence)
{
    if (session != s->id)
        return; /* of a session since replaced */
    for (size_t i = 0; i < s->n_in_flight; i++)
        if (s->in_flight[i] == sequence) {
            s->in_flight[i] = s->in_flight[--s->n_in_flight];
            return;
        }
}

/* The request of w in its session: the header fields packed, then the op (protobuf merges
 * concatenated messages), inside the node's envelope. */
static int write_pack(const struct rk_write *w, uint64_t first, uint8_t **buf, size_t *len)
{
    Raftkv__Kv__Request header = RAFTKV__KV__REQUEST__INIT;
    header.session = w->session;
    header.sequence = w->sequence;
    header.first_incomplete = first;
    size_t hlen = raftkv__kv__request__get_packed_size(&header);
    uint8_t *kv = malloc(hlen + w->op_len);
    if (!kv)
        return RAFTKV_ENOMEM;
    raftkv__kv__request__pack(&header, kv);
    memcpy(kv + hlen, w->op, w->op_len);
    int rv = rk_fsm_request_pack(kv, hlen + w->op_len, buf, len);
    free(kv);
    return rv;
}

/* Ends every queued write with status and why. */
static void queue_fail(struct raftkv_client *c, int status, const char *why)
{
    nng_mtx_lock(c->mu);
    struct rk_write *w = c->session.queue;
    c->session.queue = NULL;
    c->session.queue_tail = &c->session.queue;
    c->session.registering = false;
    nng_mtx_unlock(c->mu);
    while (w) {
        struct rk_write *next = w->next;
        write_fail(w, status, why);
        w = next;
    }
}

static void registration_failed(struct raftkv_client *c, int status, const char *why)
{
    char error[sizeof((struct rk_call_result *)0)->error];
    snprintf(error, sizeof error, "registering a session: %.200s", why);
    queue_fail(c, status, error);
}

static void write_call_done(struct rk_call *call, void *arg);
static void register_done(struct rk_call *call, void *arg);

static void register_start(struct raftkv_client *c)
{
    Raftkv__Kv__RegisterSession reg = RAFTKV__KV__REGISTER_SESSION__INIT;
    Raftkv__Kv__Request req = RAFTKV__KV__REQUEST__INIT;
    /* Retries of the call resend it as it is: every copy names this nonce. */
    reg.nonce = ((uint64_t)nng_random() << 32 | nng_random()) | 1;
    req.op_case = RAFTKV__KV__REQUEST__OP_REGISTER_SESSION;
    req.register_session = &reg;
    uint8_t kv[32], *buf;
    size_t len;
    struct rk_call *call;
    int rv = rk_fsm_request_pack(kv, raftkv__kv__request__pack(&req, kv), &buf, &len);
    if (rv == RAFTKV_OK)
        rv = rk_call_start(c, buf, len, RK_ANY_ENDPOINT, register_done, c, &call);
    if (rv != RAFTKV_OK)
        registration_failed(c, rv, "out of memory");
}

/* Sends what the session and its window allow, or registers the session. */
static void pump(struct raftkv_client *c)
{
    struct rk_session *s = &c->session;
    struct rk_write *send = NULL, **tail = &send;
    bool do_register = false;
    nng_mtx_lock(c->mu);
    if (atomic_load(&c->closing)) {
        nng_mtx_unlock(c->mu);
        queue_fail(c, RAFTKV_UNAVAILABLE, "client closed");
        return;
    }
    if (!s->id && s->queue && !s->registering)
        s->registering = do_register = true;
    while (s->id && s->queue && s->next_sequence - first_incomplete(s) < RK_SESSION_WINDOW &&
           s->n_in_flight < s->cap_in_flight) {
        struct rk_write *w = s->queue;
        s->queue = w->next;
        w->next = NULL;
        w->session = s->id;
        w->sequence = s->next_sequence++;
        s->in_flight[s->n_in_flight++] = w->sequence;
        *tail = w;
        tail = &w->next;
    }
    if (!s->queue)
        s->queue_tail = &s->queue;
    uint64_t first = first_incomplete(s);
    nng_mtx_unlock(c->mu);
    if (do_register)
        register_start(c);
    while (send) {
        struct rk_write *w = send;
        send = w->next;
        uint8_t *buf;
        size_t len;
        struct rk_call *call;
        int rv = write_pack(w, first, &buf, &len);
        if (rv == RAFTKV_OK)
            rv = rk_call_start(c, buf, len, RK_ANY_ENDPOINT, write_call_done, w, &call);
        if (rv != RAFTKV_OK) {
            nng_mtx_lock(c->mu);
            in_flight_remove(&c->session, w->session, w->sequence);
            nng_mtx_unlock(c->mu);
            write_fail(w, rv, "out of memory");
        }
    }
}

/* The session id in a registration's answer, or 0. */
static uint64_t registered_id(const struct rk_call_result *r)
{
    if (r->status != RAFTKV_OK || !r->resp)
        return 0;
    Raftkv__Kv__Response *a =
        raftkv__kv__response__unpack(NULL, r->resp->fsm.len, r->resp->fsm.data);
    uint64_t id = a && a->code == RAFTKV__KV__CODE__OK ? a->revision : 0;
    if (a)
        raftkv__kv__response__free_unpacked(a, NULL);
    return id;
}

static void register_done(struct rk_call *call, void *arg)
{
    struct raftkv_client *c = arg;
    const struct rk_call_result *r = rk_call_result(call);
    uint64_t id = registered_id(r);
    if (id) {
        nng_mtx_lock(c->mu);
        c->session.id = id;
        c->session.next_sequence = 1;
        c->session.n_in_flight = 0; /* those of an older session are no longer counted */
        c->session.registering = false;
        nng_mtx_unlock(c->mu);
        pump(c);
    } else if (r->status == RAFTKV_OK) {
        registration_failed(c, RAFTKV_EINTERNAL, "the cluster gave no session id");
    } else {
        registration_failed(c, r->status, r->error);
    }
    /* Last: close waits for the active calls, and the writes queued behind this one have
     * ended or started by now. */
    rk_call_free(call);
}

static bool session_expired(const struct rk_call_result *r)
{
    if (r->status != RAFTKV_OK || !r->resp)
        return false;
    Raftkv__Kv__Response *a =
        raftkv__kv__response__unpack(NULL, r->resp->fsm.len, r->resp->fsm.data);
    bool expired = a && a->code == RAFTKV__KV__CODE__SESSION_EXPIRED;
    if (a)
        raftkv__kv__response__free_unpacked(a, NULL);
    return expired;
}

static void write_call_done(struct rk_call *call, void *arg)
{
    struct rk_write *w = arg;
    struct raftkv_client *c = w->c;
    const struct rk_call_result *r = rk_call_result(call);
    bool expired = session_expired(r);
    /* One attempt, answered "expired": that copy was not applied and there is no other.
     * Once only: a session that expires before its first write is a cluster registering
     * sessions faster than this client can use one. */
    bool resend = expired && rk_call_tries(call) == 1 && !w->resent;
    w->resent |= resend;
    nng_mtx_lock(c->mu);
    in_flight_remove(&c->session, w->session, w->sequence);
    if (expired && c->session.id == w->session)
        c->session.id = 0;
    if (resend) {
        w->next = c->session.queue;
        if (!c->session.queue)
            c->session.queue_tail = &w->next;
        c->session.queue = w;
    }
    nng_mtx_unlock(c->mu);
    if (!resend)
        write_end(w, r);
    pump(c);
    rk_call_free(call); /* last, as in register_done */
}

int rk_write_start(struct raftkv_client *c, uint8_t *op, size_t op_len, rk_write_done_fn done,
                   void *arg)
{
    struct rk_write *w = calloc(1, sizeof *w);
    if (!w) {
        free(op);
        return RAFTKV_ENOMEM;
    }
    *w = (struct rk_write){.c = c, .op = op, .op_len = op_len, .done = done, .arg = arg};
    nng_mtx_lock(c->mu);
    bool closing = atomic_load(&c->closing);
    if (!closing) {
        *c->session.queue_tail = w;
        c->session.queue_tail = &w->next;
    }
    nng_mtx_unlock(c->mu);
    if (closing)
        write_fail(w, RAFTKV_UNAVAILABLE, "client closed");
    else
        pump(c);
    return RAFTKV_OK;
}

int rk_session_init(struct rk_session *s)
{
    s->queue_tail = &s->queue;
    s->cap_in_flight = RK_SESSION_WINDOW;
    s->in_flight = calloc(s->cap_in_flight, sizeof *s->in_flight);
    return s->in_flight ? RAFTKV_OK : RAFTKV_ENOMEM;
}

void rk_session_free(struct rk_session *s)
{
    free(s->in_flight);
    s->in_flight = NULL;
}
