/* One retrying request (call.h): attempts, backoff, leader hints, answers; the pool of
 * finished calls. */
#include "client/call.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/protocol/reqrep0/req.h>

/* Short enough that a client retrying through an election reaches the new leader within
 * 50 ms of its election (a leaderless cluster elects within the election timeout). */
#define RK_BACKOFF_CAP_MS 50u
/* Enough for every call a busy client keeps in flight to find a pooled one. */
#define RK_CALL_POOL_MAX 1024

enum rk_call_state { RK_CALL_SEND, RK_CALL_RECV, RK_CALL_BACKOFF };

/*
 * An attempt runs two operations at once: the request on aio (send, then receive, on a
 * context of its own) and its deadline on timer. NNG's own aio timeouts are not used for
 * requests: NNG 1.5's expiry thread calls a context's cancel function after letting go of
 * its locks, so it can run on a context the completed request's callback has just closed
 * (freed memory: "panic: pthread_mutex_lock: Invalid argument"). Our timer cancels the
 * request under mu instead, and the context is closed only once both operations have
 * ended; whichever of the two callbacks ends last moves the call on, alone. Between
 * attempts timer runs the backoff pause. Closing the client cancels timer: that ends an
 * attempt or a pause at once.
 */
struct rk_call {
    struct raftkv_client *c;
    uint8_t *req;
    size_t req_len;
    bool single; /* one attempt at a fixed endpoint (status) */
    size_t ep;   /* this attempt's target, RK_ANY_ENDPOINT for the any socket */
    size_t prev_ep;
    unsigned tries;
    unsigned backoffs;
    nng_time deadline;
    nng_time attempt_deadline;
    nng_aio *aio;
    /* Only ever sleeps: NNG 1.5 leaves an aio that once slept marked as sleeping, and a
     * later request on it would "succeed" when it times out. */
    nng_aio *timer;
    nng_ctx ctx;
    nng_mtx *mu; /* guards the attempt's state below against the two callbacks */
    enum rk_call_state state;
    unsigned pending;     /* of the attempt's two operations, those not yet ended */
    bool request_pending; /* an operation on aio has not completed */
    bool expired;         /* the timer ended the attempt */
    int rv;               /* how the request ended; 0 with the reply */
    nng_msg *reply;
    rk_call_done_fn done;
    void *done_arg;
    struct rk_call_result res;
    struct rk_call *next; /* in the client's active list, or its pool */
    struct rk_call *prev; /* in the active list */
};

static nng_duration ms_until(nng_time t)
{
    nng_time now = nng_clock();
    return t > now ? (nng_duration)(t - now) : 1;
}

void rk_calls_end(struct raftkv_client *c)
{
    nng_mtx_lock(c->mu);
    /* Attempts and pauses start under c->mu after a look at closing, so every timer that
     * can still run is already running here. The cancels complete on NNG's threads. */
    atomic_store(&c->closing, true);
    for (struct rk_call *call = c->active; call; call = call->next)
        nng_aio_cancel(call->timer);
    while (c->active)
        nng_cv_wait(c->idle);
    nng_mtx_unlock(c->mu);
}
static void call_finish(struct rk_call *call, int status)
{
    if (status == RAFTKV_UNAVAILABLE) {
        char last[sizeof call->res.error];
        memcpy(last, call->res.error, sizeof last);
        snprintf(call->res.error, sizeof call->res.error, "gave up after %u %s; last: %.200s",
                 call->tries, call->tries == 1 ? "attempt" : "attempts", last);
    }
    call->res.status = status;
    call->done(call, call->done_arg);
}

static void call_retry(struct rk_call *call, size_t next, bool backoff);

/* The client is closing: no attempt or pause starts any more. */
static void call_end_closed(struct rk_call *call)
{
    snprintf(call->res.error, sizeof call->res.error, "client closed");
    call_finish(call, RAFTKV_UNAVAILABLE);
}

static void call_fail(struct rk_call *call, const char *what)
{
    struct raftkv_client *c = call->c;
    nng_mtx_lock(c->mu);
    snprintf(call->res.error, sizeof call->res.error, "%s: %s", rk_endpoint_name(c, call->ep),
             what);
    call->res.answer_lost = true;
    if (c->leader == call->ep)
        c->leader = RK_ANY_ENDPOINT;
    nng_mtx_unlock(c->mu);
    call_retry(call, RK_ANY_ENDPOINT, true);
}

static void call_attempt(struct rk_call *call)
{
    struct raftkv_client *c = call->c;
    call->tries++;
    nng_msg *msg = NULL;
    int rv = nng_msg_alloc(&msg, 0);
    if (rv == 0)
        rv = nng_msg_append(msg, call->req, call->req_len);
    if (rv) {
        nng_msg_free(msg);
        call_fail(call, nng_strerror(rv));
        return;
    }
    /* c->mu is held from the closing check until both operations have started, so that
     * rk_calls_end finds the timer running and can cancel it. */
    nng_mtx_lock(c->mu);
    if (atomic_load(&c->closing)) {
        nng_mtx_unlock(c->mu);
        nng_msg_free(msg);
        call_end_closed(call);
        return;
    }
    /* A known leader whose connection has dropped is likely dead: do not wait on it. */
    if (!call->single && call->ep != RK_ANY_ENDPOINT && c->eps[call->ep]->open &&
        atomic_load(&c->eps[call->ep]->pipes) == 0) {
        if (c->leader == call->ep)
            c->leader = RK_ANY_ENDPOINT;
        call->ep = RK_ANY_ENDPOINT;
    }
    nng_socket sock;
    if (call->ep == RK_ANY_ENDPOINT) {
        rv = rk_any_open(c);
        sock = c->any;
    } else {
        rv = rk_endpoint_open(c, c->eps[call->ep]);
        sock = c->eps[call->ep]->sock;
    }
    if (rv || (rv = nng_ctx_open(&call->ctx, sock))) {
        nng_mtx_unlock(c->mu);
        nng_msg_free(msg);
        call_fail(call, nng_strerror(rv));
        return;
    }
    call->attempt_deadline = nng_clock() + c->opts.request_timeout_ms;
    if (call->attempt_deadline > call->deadline)
        call->attempt_deadline = call->deadline;
    nng_mtx_lock(call->mu);
    call->state = RK_CALL_SEND;
    call->pending = 2;
    call->request_pending = true;
    call->expired = false;
    call->rv = 0;
    call->reply = NULL;
    nng_sleep_aio(ms_until(call->attempt_deadline), call->timer);
    nng_aio_set_msg(call->aio, msg);
    nng_ctx_send(call->ctx, call->aio);
    nng_mtx_unlock(call->mu);
    nng_mtx_unlock(c->mu);
}

/* Moves on to endpoint `next`, after a backoff unless we follow a fresh leader hint. */
static void call_retry(struct rk_call *call, size_t next, bool backoff)
{
    struct raftkv_client *c = call->c;
    nng_time now = nng_clock();
    if (call->single || call->tries >= c->opts.attempts || now >= call->deadline) {
        call_finish(call, RAFTKV_UNAVAILABLE);
        return;
    }
    call->prev_ep = call->ep;
    call->ep = next;
    if (!backoff) {
        call_attempt(call);
        return;
    }
    unsigned delay = call->c->opts.retry_delay_ms;
    for (unsigned i = 0; i < call->backoffs && delay < RK_BACKOFF_CAP_MS; i++)
        delay *= 2;
    if (delay > RK_BACKOFF_CAP_MS)
        delay = RK_BACKOFF_CAP_MS;
    /* Near the deadline, sleep half of what is left so one more try fits, until even that
     * would be shorter than the first backoff. */
    uint64_t left = call->deadline - now;
    if (delay > left / 2) {
        if (left / 2 < call->c->opts.retry_delay_ms) {
            call_finish(call, RAFTKV_UNAVAILABLE);
            return;
        }
        delay = (unsigned)(left / 2);
    }
    call->backoffs++;
    nng_mtx_lock(c->mu); /* as in call_attempt: a pause is cut short by rk_calls_end */
    if (atomic_load(&c->closing)) {
        nng_mtx_unlock(c->mu);
        call_end_closed(call);
        return;
    }
    nng_mtx_lock(call->mu);
    call->state = RK_CALL_BACKOFF;
    nng_sleep_aio((nng_duration)delay, call->timer);
    nng_mtx_unlock(call->mu);
    nng_mtx_unlock(c->mu);
}

/* A NOT_LEADER answer from endpoint `from`: go to the hinted leader, at once unless that
 * sends us straight back where we came from (stale hints during an election). A hint
 * that is missing, malformed, names the answering node or a node whose connection is
 * down sends us to the any socket after a backoff. */
static void call_follow_hint(struct rk_call *call, size_t from, const char *hint)
{
    struct raftkv_client *c = call->c;
    size_t hinted = RK_ANY_ENDPOINT;
    nng_mtx_lock(c->mu);
    if (c->leader == from || c->leader == call->ep)
        c->leader = RK_ANY_ENDPOINT;
    if (hint[0] && rk_endpoints_add(c, hint, &hinted) == RAFTKV_OK) {
        struct rk_endpoint *e = c->eps[hinted];
        if (hinted == from || (e->open && atomic_load(&e->pipes) == 0))
            hinted = RK_ANY_ENDPOINT;
        else
            c->leader = hinted;
    }
    snprintf(call->res.error, sizeof call->res.error, "%s: not the leader (%s)",
             rk_endpoint_name(c, from), hint[0] ? hint : "no hint");
    nng_mtx_unlock(c->mu);
    bool fresh = hinted != RK_ANY_ENDPOINT && hinted != call->prev_ep;
    call_retry(call, hinted, !fresh);
}

/* Decodes a reply and finishes the call, or moves it on. */
static void call_on_response(struct rk_call *call, nng_msg *msg)
{
    struct raftkv_client *c = call->c;
    size_t from = call->ep;
    if (from == RK_ANY_ENDPOINT) {
        nng_mtx_lock(c->mu);
        from = rk_any_endpoint_of(c, nng_msg_get_pipe(msg));
        nng_mtx_unlock(c->mu);
    }
    Raftkv__Client__Response *resp =
        raftkv__client__response__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
    nng_msg_free(msg);
    if (!resp) {
        call_fail(call, "malformed response");
        return;
    }
    if (resp->code == RAFTKV__CLIENT__CODE__NOT_LEADER) {
        char hint[RK_MAX_URL_BYTES + 1] = "";
        if (resp->not_leader && resp->not_leader->leader_address)
            snprintf(hint, sizeof hint, "%s", resp->not_leader->leader_address);
        raftkv__client__response__free_unpacked(resp, NULL);
        call_follow_hint(call, from, hint);
        return;
    }
    if (resp->code == RAFTKV__CLIENT__CODE__UNAVAILABLE) {
        char why[200];
        snprintf(why, sizeof why, "unavailable: %s", resp->error ? resp->error : "");
        raftkv__client__response__free_unpacked(resp, NULL);
        call_fail(call, why);
        return;
    }
    int status;
    switch (resp->code) {
    case RAFTKV__CLIENT__CODE__OK:
        status = RAFTKV_OK;
        break;
    case RAFTKV__CLIENT__CODE__INVALID:
        status = RAFTKV_INVALID;
        break;
    default: /* INTERNAL or a code newer than us: not safe to retry a write blindly */
        status = RAFTKV_EINTERNAL;
        break;
    }
    if (!call->single && from != RK_ANY_ENDPOINT) {
        nng_mtx_lock(c->mu);
        c->leader = from;
        nng_mtx_unlock(c->mu);
    }
    call->res.resp = resp;
    snprintf(call->res.error, sizeof call->res.error, "%s", resp->error ? resp->error : "");
    call_finish(call, status);
}

/* Both operations of the attempt have ended: the call is this thread's alone. */
static void call_attempt_end(struct rk_call *call)
{
    nng_ctx_close(call->ctx);
    if (call->reply) {
        call_on_response(call, call->reply);
        return;
    }
    int rv = call->expired && call->rv == NNG_ECANCELED ? NNG_ETIMEDOUT : call->rv;
    call_fail(call, nng_strerror(rv));
}

/* Ends one of the attempt's operations (call->mu held, and released here). */
static void call_op_end(struct rk_call *call)
{
    bool last = --call->pending == 0;
    nng_mtx_unlock(call->mu);
    if (last)
        call_attempt_end(call);
}

static void call_on_aio(void *arg)
{
    struct rk_call *call = arg;
    int rv = nng_aio_result(call->aio);
    nng_msg *msg = nng_aio_get_msg(call->aio);
    nng_aio_set_msg(call->aio, NULL);
    nng_mtx_lock(call->mu);
    if (call->state == RK_CALL_SEND) {
        /* A request NNG accepted is no longer on the aio; one still there was not sent
         * and is ours to free. */
        if (rv == 0 && !msg && !call->expired) {
            call->state = RK_CALL_RECV;
            nng_ctx_recv(call->ctx, call->aio);
            nng_mtx_unlock(call->mu);
            return;
        }
        nng_msg_free(msg);
        msg = NULL;
        if (rv == 0)
            rv = call->expired ? NNG_ETIMEDOUT : NNG_EINTERNAL;
    } else if (rv == 0 && !msg) {
        rv = NNG_EINTERNAL;
    }
    call->request_pending = false;
    call->rv = rv;
    call->reply = msg;
    nng_aio_cancel(call->timer);
    call_op_end(call);
}

static void call_on_timer(void *arg)
{
    struct rk_call *call = arg;
    nng_mtx_lock(call->mu);
    if (call->state == RK_CALL_BACKOFF) {
        nng_mtx_unlock(call->mu);
        call_attempt(call);
        return;
    }
    /* The attempt's deadline, or the client closing. The request's context is open until
     * this callback has ended too, so the cancel cannot reach a closed one. */
    call->expired = true;
    if (call->request_pending)
        nng_aio_cancel(call->aio);
    call_op_end(call);
}

/* A pooled call with its aios, or a new one. c->mu held. */
static struct rk_call *call_take(struct raftkv_client *c)
{
    struct rk_call *call = c->pool;
    if (call) {
        c->pool = call->next;
        c->n_pool--;
        nng_aio *aio = call->aio, *timer = call->timer;
        nng_mtx *mu = call->mu;
        memset(call, 0, sizeof *call);
        call->aio = aio;
        call->timer = timer;
        call->mu = mu;
        return call;
    }
    call = calloc(1, sizeof *call);
    if (call && (nng_mtx_alloc(&call->mu) || nng_aio_alloc(&call->aio, call_on_aio, call) ||
                 nng_aio_alloc(&call->timer, call_on_timer, call))) {
        if (call->aio)
            nng_aio_free(call->aio);
        if (call->mu)
            nng_mtx_free(call->mu);
        free(call);
        call = NULL;
    }
    return call;
}

int rk_call_start(struct raftkv_client *c, uint8_t *req, size_t len, size_t endpoint,
                  rk_call_done_fn done, void *arg, struct rk_call **out)
{
    nng_mtx_lock(c->mu);
    struct rk_call *call = call_take(c);
    if (!call) {
        nng_mtx_unlock(c->mu);
        free(req);
        return RAFTKV_ENOMEM;
    }
    call->next = c->active;
    if (c->active)
        c->active->prev = call;
    c->active = call;
    call->c = c;
    call->req = req;
    call->req_len = len;
    call->done = done;
    call->done_arg = arg;
    call->prev_ep = RK_ANY_ENDPOINT;
    call->single = endpoint != RK_ANY_ENDPOINT;
    call->ep = call->single ? endpoint : c->leader;
    nng_mtx_unlock(c->mu);
    call->deadline = nng_clock() + c->opts.timeout_ms;
    *out = call;
    call_attempt(call);
    return RAFTKV_OK;
}

const struct rk_call_result *rk_call_result(const struct rk_call *call)
{
    return &call->res;
}

unsigned rk_call_tries(const struct rk_call *call)
{
    return call->tries;
}

void rk_call_free(struct rk_call *call)
{
    if (!call)
        return;
    struct raftkv_client *c = call->c;
    if (call->res.resp)
        raftkv__client__response__free_unpacked(call->res.resp, NULL);
    free(call->req);
    nng_mtx_lock(c->mu);
    if (call->prev)
        call->prev->next = call->next;
    else
        c->active = call->next;
    if (call->next)
        call->next->prev = call->prev;
    bool pooled = c->n_pool < RK_CALL_POOL_MAX;
    if (pooled) {
        /* Its aios may still be in a callback that is returning: the next call starts its
         * operations from here, which NNG allows, and nothing else touches them. */
        call->next = c->pool;
        c->pool = call;
        c->n_pool++;
    }
    if (!c->active)
        nng_cv_wake(c->idle);
    nng_mtx_unlock(c->mu);
    if (!pooled) {
        /* Reaped, not freed: nng_aio_free would wait for the callback that may be running
         * this (a done callback freeing its call). Nothing touches the call after
         * call_finish, nor its mutex after the last callback let go of it. */
        nng_aio_reap(call->aio);
        nng_aio_reap(call->timer);
        nng_mtx_free(call->mu);
        free(call);
    }
}

void rk_calls_pool_free(struct raftkv_client *c)
{
    while (c->pool) {
        struct rk_call *call = c->pool;
        c->pool = call->next;
        /* Waits for a callback that freed the call and is still returning. */
        nng_aio_free(call->aio);
        nng_aio_free(call->timer);
        nng_mtx_free(call->mu);
        free(call);
    }
    c->n_pool = 0;
}

int rk_wait_init(struct rk_wait *w)
{
    *w = (struct rk_wait){0};
    if (nng_mtx_alloc(&w->mu))
        return RAFTKV_ENOMEM;
    if (nng_cv_alloc(&w->cv, w->mu)) {
        nng_mtx_free(w->mu);
        return RAFTKV_ENOMEM;
    }
    return RAFTKV_OK;
}

void rk_wait_wake(struct rk_wait *w)
{
    nng_mtx_lock(w->mu);
    w->done = true;
    nng_cv_wake(w->cv);
    nng_mtx_unlock(w->mu);
}

void rk_wait_until_woken(struct rk_wait *w)
{
    nng_mtx_lock(w->mu);
    while (!w->done)
        nng_cv_wait(w->cv);
    nng_mtx_unlock(w->mu);
}

void rk_wait_fini(struct rk_wait *w)
{
    nng_cv_free(w->cv);
    nng_mtx_free(w->mu);
}

static void call_wake(struct rk_call *call, void *arg)
{
    (void)call;
    rk_wait_wake(arg);
}

int rk_call_run(struct raftkv_client *c, uint8_t *req, size_t len, size_t endpoint,
                struct rk_call **out)
{
    struct rk_wait w;
    int rv = rk_wait_init(&w);
    if (rv != RAFTKV_OK) {
        free(req);
        return rv;
    }
    rv = rk_call_start(c, req, len, endpoint, call_wake, &w, out);
    if (rv == RAFTKV_OK)
        rk_wait_until_woken(&w);
    rk_wait_fini(&w);
    return rv;
}
