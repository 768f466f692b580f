/* A rep0 socket with a pool of contexts, each receiving on its own aio. Serves client
 * requests, and the peer transport's acknowledgements (which reply at once). Each
 * connection's share is bounded (transport.h says how). */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>

#include "log/log.h"
#include "transport/nng_opts.h"
#include "transport/transport.h"

#define DEFAULT_CONTEXTS 1024
#define IDLE_SWEEP_MS 10000

struct rk_client_call {
    struct rk_client_server *server;
    nng_ctx ctx;
    nng_aio *aio;
    bool replying;    /* the aio's pending operation is the reply, not a receive */
    bool counted;     /* the request is counted in its connection's in_flight */
    nng_pipe pipe;    /* the connection the request came on */
    size_t reply_len; /* of the reply being sent */
    struct timespec arrival;
    unsigned tag;
};

/* One connection's share of the server. */
struct conn {
    nng_pipe pipe;
    unsigned in_flight; /* requests received and not answered yet */
    size_t reply_bytes; /* replies handed to NNG and not sent yet */
    nng_time last_request;
    bool closing; /* being closed: said and counted once */
};

struct rk_client_server {
    nng_socket sock;
    nng_listener listener;
    size_t n_calls;
    struct rk_client_call *calls;
    void (*on_request)(void *arg, struct rk_client_call *call, const uint8_t *req, size_t len);
    void *arg;
    unsigned conn_contexts; /* requests one connection may have unanswered */
    nng_mtx *mu;            /* guards the connections and the counters */
    struct conn *conns;     /* RK_SERVER_MAX_CONNS of them, n_conns in use */
    size_t n_conns;
    struct rk_server_stats stats;
    nng_aio *sweep; /* the idle sweep's timer */
};

static struct conn *conn_find(struct rk_client_server *s, nng_pipe p)
{
    for (size_t i = 0; i < s->n_conns; i++)
        if (nng_pipe_id(s->conns[i].pipe) == nng_pipe_id(p))
            return &s->conns[i];
    return NULL;
}

/* Connections are taken in at ADD_PRE: NNG starts receiving on a pipe before it reports
 * ADD_POST, so a request can arrive before that. NNG reports REM_POST exactly for the pipes
 * that saw ADD_PRE, closed there or not. */
static void conn_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    struct rk_client_server *s = arg;
    bool refuse = false;
    nng_mtx_lock(s->mu);
    struct conn *c = conn_find(s, p);
    if (ev == NNG_PIPE_EV_ADD_PRE && !c && s->n_conns < RK_SERVER_MAX_CONNS) {
        s->conns[s->n_conns++] = (struct conn){.pipe = p, .last_request = nng_clock()};
    } else if (ev == NNG_PIPE_EV_ADD_PRE && !c) {
        refuse = true;
        s->stats.conns_refused++;
    } else if (ev == NNG_PIPE_EV_REM_POST && c)
        *c = s->conns[--s->n_conns];
    nng_mtx_unlock(s->mu);
    if (refuse)
        nng_pipe_close(p);
}

/* Says why a connection is closed (what, for ms), with its address, and closes it. */
static void conn_close(nng_pipe p, const char *what, unsigned ms)
{
    nng_sockaddr sa;
    char addr[64] = "an unknown address";
    if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) == 0 && sa.s_family == NNG_AF_INET) {
        const uint8_t *ip = (const uint8_t *)&sa.s_in.sa_addr; /* network order */
        snprintf(addr, sizeof addr, "%u.%u.%u.%u:%u", ip[0], ip[1], ip[2], ip[3],
                 (unsigned)ntohs(sa.s_in.sa_port));
    }
    rk_warn("closing the connection from %s: %s for %u ms", addr, what, ms);
    nng_pipe_close(p);
}

/* The call's request: counted against its connection, or refused when that holds too much.
 * A request whose connection is already gone is served uncounted; its reply goes nowhere. */
static bool conn_admit(struct rk_client_server *s, struct rk_client_call *call)
{
    bool admit = true;
    nng_mtx_lock(s->mu);
    struct conn *c = conn_find(s, call->pipe);
    call->counted = false;
    if (c && (c->in_flight >= s->conn_contexts || c->reply_bytes >= RK_SERVER_CONN_REPLY_BYTES)) {
        admit = false;
        s->stats.requests_over_limit++;
    } else if (c) {
        c->in_flight++;
        c->last_request = nng_clock();
        call->counted = true;
    }
    nng_mtx_unlock(s->mu);
    return admit;
}

/* The call's request is answered (reply_len bytes to send; 0 when dropped). */
static void conn_answered(struct rk_client_server *s, struct rk_client_call *call, size_t reply_len)
{
    nng_mtx_lock(s->mu);
    struct conn *c = call->counted ? conn_find(s, call->pipe) : NULL;
    if (c) {
        c->in_flight--;
        c->reply_bytes += reply_len;
    }
    call->counted = c != NULL;
    nng_mtx_unlock(s->mu);
}

static void conn_sent(struct rk_client_server *s, struct rk_client_call *call, bool too_slow)
{
    nng_pipe p = call->pipe;
    nng_mtx_lock(s->mu);
    struct conn *c = conn_find(s, p);
    if (c && call->counted)
        c->reply_bytes -= call->reply_len;
    bool close = too_slow && c && !c->closing;
    if (close) {
        c->closing = true;
        s->stats.conns_closed_slow++;
    }
    nng_mtx_unlock(s->mu);
    if (close)
        conn_close(p, "it took no reply", RK_SERVER_REPLY_TIMEOUT_MS);
}

/* Closes the connections idle for RK_SERVER_IDLE_MS, every IDLE_SWEEP_MS. */
static void sweep_cb(void *arg)
{
    struct rk_client_server *s = arg;
    if (nng_aio_result(s->sweep) != 0)
        return; /* stopped */
    nng_pipe idle[64];
    size_t n = 0;
    nng_time now = nng_clock();
    nng_mtx_lock(s->mu);
    for (size_t i = 0; i < s->n_conns && n < sizeof idle / sizeof idle[0]; i++) {
        struct conn *c = &s->conns[i];
        if (!c->closing && !c->in_flight && !c->reply_bytes &&
            now - c->last_request >= RK_SERVER_IDLE_MS) {
            c->closing = true;
            idle[n++] = c->pipe;
        }
    }
    s->stats.conns_closed_idle += n;
    nng_mtx_unlock(s->mu);
    for (size_t i = 0; i < n; i++)
        conn_close(idle[i], "it sent no request", RK_SERVER_IDLE_MS);
    nng_sleep_aio(IDLE_SWEEP_MS, s->sweep);
}

static void call_arm_recv(struct rk_client_call *call)
{
    call->replying = false;
    nng_aio_set_timeout(call->aio, NNG_DURATION_INFINITE);
    nng_ctx_recv(call->ctx, call->aio);
}

static void call_cb(void *arg)
{
    struct rk_client_call *call = arg;
    int rv = nng_aio_result(call->aio);
    struct rk_client_server *s = call->server;
    if (call->replying) {
        if (rv != 0)
            nng_msg_free(nng_aio_get_msg(call->aio));
        conn_sent(s, call, rv == NNG_ETIMEDOUT);
        if (rv != NNG_ECLOSED)
            call_arm_recv(call);
        return;
    }
    if (rv != 0) {
        if (rv != NNG_ECLOSED)
            call_arm_recv(call);
        return;
    }
    nng_msg *msg = nng_aio_get_msg(call->aio);
    call->pipe = nng_msg_get_pipe(msg);
    clock_gettime(CLOCK_MONOTONIC, &call->arrival);
    call->tag = 0;
    if (!conn_admit(s, call)) {
        nng_msg_free(msg);
        call_arm_recv(call);
        return;
    }
    /* From here the call belongs to whoever replies: it may already be re-armed (and even
     * completed again on another thread) by the time on_request returns. */
    s->on_request(s->arg, call, nng_msg_body(msg), nng_msg_len(msg));
    nng_msg_free(msg);
}

void rk_client_server_reply(struct rk_client_server *s, struct rk_client_call *call,
                            const uint8_t *resp, size_t len)
{
    nng_msg *msg;
    if (nng_msg_alloc(&msg, len) != 0) {
        /* Without memory for the reply the request is abandoned (the client times out and
         * retries); the context must still go back to serving. */
        rk_error("client server: no memory for a %zu-byte reply", len);
        conn_answered(s, call, 0);
        call_arm_recv(call);
        return;
    }
    if (len > 0)
        memcpy(nng_msg_body(msg), resp, len);
    conn_answered(s, call, len);
    call->replying = true;
    call->reply_len = len;
    nng_aio_set_msg(call->aio, msg);
    nng_aio_set_timeout(call->aio, RK_SERVER_REPLY_TIMEOUT_MS);
    nng_ctx_send(call->ctx, call->aio);
}

struct timespec rk_client_call_arrival(const struct rk_client_call *call)
{
    return call->arrival;
}

void rk_client_call_set_tag(struct rk_client_call *call, unsigned tag)
{
    call->tag = tag;
}

unsigned rk_client_call_tag(const struct rk_client_call *call)
{
    return call->tag;
}

void rk_client_server_stats(struct rk_client_server *s, struct rk_server_stats *out)
{
    nng_mtx_lock(s->mu);
    out->conns_refused += s->stats.conns_refused;
    out->conns_closed_slow += s->stats.conns_closed_slow;
    out->conns_closed_idle += s->stats.conns_closed_idle;
    out->requests_over_limit += s->stats.requests_over_limit;
    nng_mtx_unlock(s->mu);
}

static void server_free(struct rk_client_server *s)
{
    /* Our operations are cancelled before the socket closes: with them still pending,
     * NNG 1.5.2's nng_close sometimes never returns (its reaper waits forever on a task;
     * nanomsg/nng#1543, #1813, fixed in 1.8). nng_aio_stop also waits for each callback, so
     * none runs after this returns. */
    if (s->sweep)
        nng_aio_stop(s->sweep);
    for (size_t i = 0; i < s->n_calls; i++) {
        if (s->calls[i].aio)
            nng_aio_stop(s->calls[i].aio);
    }
    nng_close(s->sock);
    for (size_t i = 0; i < s->n_calls; i++) {
        if (s->calls[i].aio)
            nng_aio_free(s->calls[i].aio);
    }
    nng_aio_free(s->sweep);
    if (s->mu)
        nng_mtx_free(s->mu);
    free(s->conns);
    free(s->calls);
    free(s);
}

static int server_open_calls(struct rk_client_server *s)
{
    for (size_t i = 0; i < s->n_calls; i++) {
        struct rk_client_call *call = &s->calls[i];
        call->server = s;
        int rv = nng_aio_alloc(&call->aio, call_cb, call);
        if (rv == 0)
            rv = nng_ctx_open(&call->ctx, s->sock);
        if (rv != 0)
            return rv;
    }
    return 0;
}

int rk_client_server_start(const struct rk_client_server_options *opts,
                           struct rk_client_server **out)
{
    *out = NULL;
    struct rk_client_server *s = calloc(1, sizeof *s);
    if (!s)
        return RAFT_ENOMEM;
    s->on_request = opts->on_request;
    s->arg = opts->arg;
    s->n_calls = opts->contexts ? opts->contexts : DEFAULT_CONTEXTS;
    s->conn_contexts = (unsigned)(opts->conn_contexts ? opts->conn_contexts : s->n_calls / 4);
    s->conn_contexts = s->conn_contexts < 8 ? 8 : s->conn_contexts;
    s->calls = calloc(s->n_calls, sizeof *s->calls);
    s->conns = calloc(RK_SERVER_MAX_CONNS, sizeof *s->conns);
    int rv = s->calls && s->conns && nng_mtx_alloc(&s->mu) == 0 &&
                     nng_aio_alloc(&s->sweep, sweep_cb, s) == 0
                 ? nng_rep0_open(&s->sock)
                 : NNG_ENOMEM;
    if (rv != 0) {
        nng_aio_free(s->sweep);
        if (s->mu)
            nng_mtx_free(s->mu);
        free(s->conns);
        free(s->calls);
        free(s);
        return RAFT_ENOMEM;
    }
    rv = nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, rk_nng_max_msg_bytes(opts->max_msg_bytes));
    if (rv == 0)
        rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_PRE, conn_event, s);
    if (rv == 0)
        rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, conn_event, s);
    if (rv == 0)
        rv = server_open_calls(s);
    if (rv == 0)
        rv = rk_tls_listener_create(&s->listener, s->sock, opts->listen_url, opts->tls);
    if (rv == 0)
        rv = nng_listener_start(s->listener, 0);
    if (rv != 0) {
        rk_error("client server: cannot listen on %s: %s", opts->listen_url, nng_strerror(rv));
        server_free(s);
        return rk_nng_err(rv);
    }
    /* Published before the first receive is armed, so on_request may already use *out. */
    *out = s;
    for (size_t i = 0; i < s->n_calls; i++)
        call_arm_recv(&s->calls[i]);
    nng_sleep_aio(IDLE_SWEEP_MS, s->sweep);
    return RAFT_OK;
}

uint64_t rk_client_server_tls_refusals(struct rk_client_server *s, nng_stat *all)
{
    return rk_tls_listener_refusals(all, s->listener);
}

void rk_client_server_stop(struct rk_client_server *s)
{
    if (s)
        server_free(s);
}
