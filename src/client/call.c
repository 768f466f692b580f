#include "client/call.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/protocol/reqrep0/req.h>

/* Leader hints come from the network: bound how many new addresses they can make us dial. */
#define RK_MAX_ENDPOINTS 64
#define RK_MAX_URL_BYTES 512
/* The largest value a node accepts is well below this; the rest is headroom for framing. */
#define RK_MAX_RESPONSE_BYTES ((size_t)65 << 20)
/* Short enough that a client retrying through an election reaches the new leader within
 * 50 ms of its election (a leaderless cluster elects within the election timeout). */
#define RK_BACKOFF_CAP_MS 50u
#define RK_RECONNECT_MIN_MS 20
#define RK_RECONNECT_MAX_MS 1000
/* Enough for every call a busy client keeps in flight to find a pooled one. */
#define RK_CALL_POOL_MAX 1024

struct rk_endpoint {
    char *url;
    nng_socket sock;
    bool open;
    /* Pipes between ADD_PRE and REM_POST: NNG reports REM_POST exactly for pipes that saw
     * ADD_PRE, so the count is exact. Tells a leader hint to a node we cannot reach. */
    atomic_int pipes;
};

enum rk_call_state { RK_CALL_SEND, RK_CALL_RECV };

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
    enum rk_call_state state;
    nng_aio *aio;
    /* Backoffs sleep on their own aio: NNG 1.5 leaves an aio that once slept marked as
     * sleeping, and a later request on it then "succeeds" when it times out. */
    nng_aio *sleep_aio;
    nng_ctx ctx;
    bool ctx_open;
    rk_call_done_fn done;
    void *done_arg;
    struct rk_call_result res;
    struct rk_call *next_pooled;
};

static void endpoint_on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    struct rk_endpoint *e = arg;
    (void)p;
    atomic_fetch_add(&e->pipes, ev == NNG_PIPE_EV_ADD_PRE ? 1 : -1);
}

static int req_socket_open(nng_socket *s)
{
    int rv = nng_req0_open(s);
    if (rv)
        return rv;
    /* Retries are ours: the protocol must never resend a request by itself. */
    if ((rv = nng_socket_set_ms(*s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) ||
        (rv = nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, RK_MAX_RESPONSE_BYTES)) ||
        (rv = nng_socket_set_ms(*s, NNG_OPT_RECONNMINT, RK_RECONNECT_MIN_MS)) ||
        (rv = nng_socket_set_ms(*s, NNG_OPT_RECONNMAXT, RK_RECONNECT_MAX_MS)))
        nng_close(*s);
    return rv;
}

/* Opens the endpoint's socket on first use. Dialers are non-blocking so they keep
 * redialing a node that is down or restarts, in the background. Called with c->mu held. */
static int endpoint_open(struct rk_endpoint *e)
{
    if (e->open)
        return 0;
    int rv = req_socket_open(&e->sock);
    if (rv)
        return rv;
    if ((rv = nng_pipe_notify(e->sock, NNG_PIPE_EV_ADD_PRE, endpoint_on_pipe, e)) ||
        (rv = nng_pipe_notify(e->sock, NNG_PIPE_EV_REM_POST, endpoint_on_pipe, e)) ||
        (rv = nng_dial(e->sock, e->url, NULL, NNG_FLAG_NONBLOCK))) {
        nng_close(e->sock);
        return rv;
    }
    e->open = true;
    return 0;
}

/* Opens the any socket on first use; fails only if no configured endpoint can be dialed
 * at all (e.g. all use a transport NNG lacks). Called with c->mu held. */
static int any_open(struct raftkv_client *c)
{
    if (c->any_open)
        return 0;
    c->any_dialers = calloc(c->n_configured, sizeof *c->any_dialers);
    if (!c->any_dialers)
        return NNG_ENOMEM;
    int rv = req_socket_open(&c->any), dialed = 0, last = 0;
    if (rv)
        return rv;
    for (size_t i = 0; i < c->n_configured; i++) {
        c->any_dialers[i] = (nng_dialer)NNG_DIALER_INITIALIZER;
        last = nng_dial(c->any, c->eps[i]->url, &c->any_dialers[i], NNG_FLAG_NONBLOCK);
        dialed += last == 0;
    }
    if (!dialed) {
        nng_close(c->any);
        return last;
    }
    c->any_open = true;
    return 0;
}

/* Which configured endpoint a reply on the any socket came from. c->mu held. */
static size_t any_endpoint_of(struct raftkv_client *c, nng_pipe p)
{
    int id = nng_dialer_id(nng_pipe_dialer(p));
    for (size_t i = 0; id > 0 && i < c->n_configured; i++) {
        if (nng_dialer_id(c->any_dialers[i]) == id)
            return i;
    }
    return RK_ANY_ENDPOINT;
}

/* Rejects what NNG could never dial, so a typo fails at open (or a bad hint is ignored)
 * rather than costing a try. */
static bool url_valid(const char *url)
{
    nng_url *u = NULL;
    if (!url || !url[0] || strlen(url) > RK_MAX_URL_BYTES || nng_url_parse(&u, url))
        return false;
    nng_url_free(u);
    return true;
}

int rk_endpoints_add(struct raftkv_client *c, const char *url, size_t *index)
{
    if (!url_valid(url))
        return RAFTKV_EUSAGE;
    for (size_t i = 0; i < c->n_eps; i++) {
        if (strcmp(c->eps[i]->url, url) == 0) {
            *index = i;
            return RAFTKV_OK;
        }
    }
    if (c->n_eps == RK_MAX_ENDPOINTS)
        return RAFTKV_EUSAGE;
    struct rk_endpoint **eps = realloc(c->eps, (c->n_eps + 1) * sizeof *eps);
    if (!eps)
        return RAFTKV_ENOMEM;
    c->eps = eps;
    struct rk_endpoint *e = calloc(1, sizeof *e);
    if (!e || !(e->url = strdup(url))) {
        free(e);
        return RAFTKV_ENOMEM;
    }
    atomic_init(&e->pipes, 0);
    *index = c->n_eps;
    eps[c->n_eps++] = e;
    return RAFTKV_OK;
}

/* Closing a socket fails every request on it at once (NNG closes its contexts). Sockets
 * are closed outside c->mu: NNG waits for callbacks that may be waiting for it. */
static void endpoints_shut(struct raftkv_client *c)
{
    nng_socket socks[RK_MAX_ENDPOINTS + 1];
    size_t n = 0;
    nng_mtx_lock(c->mu);
    if (c->any_open)
        socks[n++] = c->any;
    c->any_open = false;
    for (size_t i = 0; i < c->n_eps; i++) {
        if (c->eps[i]->open)
            socks[n++] = c->eps[i]->sock;
        c->eps[i]->open = false;
    }
    nng_mtx_unlock(c->mu);
    for (size_t i = 0; i < n; i++)
        nng_close(socks[i]);
}

void rk_calls_end(struct raftkv_client *c)
{
    nng_mtx_lock(c->mu);
    atomic_store(&c->closing, true);
    nng_mtx_unlock(c->mu);
    endpoints_shut(c);
    nng_mtx_lock(c->mu);
    while (c->in_flight)
        nng_cv_wait(c->idle);
    nng_mtx_unlock(c->mu);
}

void rk_endpoints_close(struct raftkv_client *c)
{
    endpoints_shut(c);
    free(c->any_dialers);
    c->any_dialers = NULL;
    for (size_t i = 0; i < c->n_eps; i++) {
        free(c->eps[i]->url);
        free(c->eps[i]);
    }
    free(c->eps);
    c->eps = NULL;
    c->n_eps = 0;
}

/* For messages: the url of a target. c->mu held. */
static const char *endpoint_name(struct raftkv_client *c, size_t ep)
{
    return ep == RK_ANY_ENDPOINT ? "any endpoint" : c->eps[ep]->url;
}

static nng_duration ms_until(nng_time t)
{
    nng_time now = nng_clock();
    return t > now ? (nng_duration)(t - now) : 1;
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

static void call_fail(struct rk_call *call, const char *what)
{
    struct raftkv_client *c = call->c;
    nng_mtx_lock(c->mu);
    snprintf(call->res.error, sizeof call->res.error, "%s: %s", endpoint_name(c, call->ep), what);
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
    /* c->mu is held from the closing check through nng_ctx_send: raftkv_client_close marks
     * the client closing under it before closing any socket, so a send never races a
     * close (NNG 1.5 can crash on a context used while its socket closes). */
    nng_mtx_lock(c->mu);
    if (atomic_load(&c->closing)) {
        nng_mtx_unlock(c->mu);
        nng_msg_free(msg);
        snprintf(call->res.error, sizeof call->res.error, "client closed");
        call_retry(call, RK_ANY_ENDPOINT, false);
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
        rv = any_open(c);
        sock = c->any;
    } else {
        rv = endpoint_open(c->eps[call->ep]);
        sock = c->eps[call->ep]->sock;
    }
    if (rv || (rv = nng_ctx_open(&call->ctx, sock))) {
        nng_mtx_unlock(c->mu);
        nng_msg_free(msg);
        call_fail(call, nng_strerror(rv));
        return;
    }
    call->ctx_open = true;
    call->attempt_deadline = nng_clock() + c->opts.request_timeout_ms;
    if (call->attempt_deadline > call->deadline)
        call->attempt_deadline = call->deadline;
    call->state = RK_CALL_SEND;
    nng_aio_set_msg(call->aio, msg);
    nng_aio_set_timeout(call->aio, ms_until(call->attempt_deadline));
    nng_ctx_send(call->ctx, call->aio);
    nng_mtx_unlock(c->mu);
}

/* Moves on to endpoint `next`, after a backoff unless we follow a fresh leader hint. */
static void call_retry(struct rk_call *call, size_t next, bool backoff)
{
    if (call->ctx_open) {
        nng_ctx_close(call->ctx);
        call->ctx_open = false;
    }
    nng_time now = nng_clock();
    if (call->single || call->tries >= call->c->opts.attempts || now >= call->deadline ||
        atomic_load(&call->c->closing)) {
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
    nng_sleep_aio((nng_duration)delay, call->sleep_aio);
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
             endpoint_name(c, from), hint[0] ? hint : "no hint");
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
        from = any_endpoint_of(c, nng_msg_get_pipe(msg));
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
    nng_ctx_close(call->ctx);
    call->ctx_open = false;
    if (!call->single && from != RK_ANY_ENDPOINT) {
        nng_mtx_lock(c->mu);
        c->leader = from;
        nng_mtx_unlock(c->mu);
    }
    call->res.resp = resp;
    snprintf(call->res.error, sizeof call->res.error, "%s", resp->error ? resp->error : "");
    call_finish(call, status);
}

static void call_on_aio(void *arg)
{
    struct rk_call *call = arg;
    int rv = nng_aio_result(call->aio);
    switch (call->state) {
    case RK_CALL_SEND: {
        /* A request NNG accepted is no longer on the aio. One still there was not sent,
         * whatever the result says (NNG 1.5 can report a timed-out operation as a success
         * on an aio that once slept): it is ours to free, or it leaks. */
        nng_msg *unsent = nng_aio_get_msg(call->aio);
        nng_aio_set_msg(call->aio, NULL);
        if (rv || unsent) {
            nng_msg_free(unsent);
            call_fail(call, rv ? nng_strerror(rv) : "request not sent");
            return;
        }
        call->state = RK_CALL_RECV;
        nng_aio_set_timeout(call->aio, ms_until(call->attempt_deadline));
        nng_ctx_recv(call->ctx, call->aio);
        return;
    }
    case RK_CALL_RECV: {
        nng_msg *reply = nng_aio_get_msg(call->aio);
        nng_aio_set_msg(call->aio, NULL); /* no stale pointer for the next send's check */
        if (rv || !reply) {
            nng_msg_free(reply);
            call_fail(call, rv ? nng_strerror(rv) : "no reply");
        } else {
            call_on_response(call, reply);
        }
        return;
    }
    }
}

static void call_on_sleep(void *arg)
{
    call_attempt(arg);
}

/* A pooled call with its aios, or a new one. c->mu held. */
static struct rk_call *call_take(struct raftkv_client *c)
{
    struct rk_call *call = c->pool;
    if (call) {
        c->pool = call->next_pooled;
        c->n_pool--;
        nng_aio *aio = call->aio, *sleep_aio = call->sleep_aio;
        memset(call, 0, sizeof *call);
        call->aio = aio;
        call->sleep_aio = sleep_aio;
        return call;
    }
    call = calloc(1, sizeof *call);
    if (call && (nng_aio_alloc(&call->aio, call_on_aio, call) ||
                 nng_aio_alloc(&call->sleep_aio, call_on_sleep, call))) {
        if (call->aio)
            nng_aio_free(call->aio);
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
    c->in_flight++;
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

void rk_call_free(struct rk_call *call)
{
    if (!call)
        return;
    struct raftkv_client *c = call->c;
    if (call->ctx_open)
        nng_ctx_close(call->ctx);
    if (call->res.resp)
        raftkv__client__response__free_unpacked(call->res.resp, NULL);
    free(call->req);
    nng_mtx_lock(c->mu);
    bool pooled = c->n_pool < RK_CALL_POOL_MAX;
    if (pooled) {
        /* Its aios may still be in this callback: the next call starts its operations
         * from here, which NNG allows, and nothing else touches them. */
        call->next_pooled = c->pool;
        c->pool = call;
        c->n_pool++;
    }
    if (--c->in_flight == 0)
        nng_cv_wake(c->idle);
    nng_mtx_unlock(c->mu);
    if (!pooled) {
        /* Reaped, not freed: nng_aio_free would wait for the callback that may be running
         * this (a done callback freeing its call). Nothing touches the call after
         * call_finish. */
        nng_aio_reap(call->aio);
        nng_aio_reap(call->sleep_aio);
        free(call);
    }
}

void rk_calls_pool_free(struct raftkv_client *c)
{
    while (c->pool) {
        struct rk_call *call = c->pool;
        c->pool = call->next_pooled;
        /* Waits for a callback that freed the call and is still returning. */
        nng_aio_free(call->aio);
        nng_aio_free(call->sleep_aio);
        free(call);
    }
    c->n_pool = 0;
}

struct rk_call_waiter {
    nng_mtx *mu;
    nng_cv *cv;
    bool done;
};

static void call_wake(struct rk_call *call, void *arg)
{
    struct rk_call_waiter *w = arg;
    (void)call;
    nng_mtx_lock(w->mu);
    w->done = true;
    nng_cv_wake(w->cv);
    nng_mtx_unlock(w->mu);
}

int rk_call_run(struct raftkv_client *c, uint8_t *req, size_t len, size_t endpoint,
                struct rk_call **out)
{
    struct rk_call_waiter w = {0};
    int rv;
    if (nng_mtx_alloc(&w.mu)) {
        free(req);
        return RAFTKV_ENOMEM;
    }
    if (nng_cv_alloc(&w.cv, w.mu)) {
        nng_mtx_free(w.mu);
        free(req);
        return RAFTKV_ENOMEM;
    }
    rv = rk_call_start(c, req, len, endpoint, call_wake, &w, out);
    if (rv == RAFTKV_OK) {
        nng_mtx_lock(w.mu);
        while (!w.done)
            nng_cv_wait(w.cv);
        nng_mtx_unlock(w.mu);
    }
    nng_cv_free(w.cv);
    nng_mtx_free(w.mu);
    return rv;
}
