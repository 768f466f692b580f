/* A rep0 socket with a pool of contexts, each receiving on its own aio. Serves client
 * requests, and the peer transport's acknowledgements (which reply at once). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "log/log.h"
#include "transport/nng_opts.h"
#include "transport/transport.h"

#define DEFAULT_CONTEXTS 1024

struct rk_client_call {
    struct rk_client_server *server;
    nng_ctx ctx;
    nng_aio *aio;
    bool replying; /* the aio's pending operation is the reply, not a receive */
};

struct rk_client_server {
    nng_socket sock;
    nng_listener listener;
    size_t n_calls;
    struct rk_client_call *calls;
    void (*on_request)(void *arg, struct rk_client_call *call, const uint8_t *req, size_t len);
    void *arg;
};

static void call_arm_recv(struct rk_client_call *call)
{
    call->replying = false;
    nng_ctx_recv(call->ctx, call->aio);
}

static void call_cb(void *arg)
{
    struct rk_client_call *call = arg;
    int rv = nng_aio_result(call->aio);
    if (call->replying) {
        if (rv != 0)
            nng_msg_free(nng_aio_get_msg(call->aio));
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
    struct rk_client_server *s = call->server;
    /* From here the call belongs to whoever replies: it may already be re-armed (and even
     * completed again on another thread) by the time on_request returns. */
    s->on_request(s->arg, call, nng_msg_body(msg), nng_msg_len(msg));
    nng_msg_free(msg);
}

void rk_client_server_reply(struct rk_client_server *s, struct rk_client_call *call,
                            const uint8_t *resp, size_t len)
{
    (void)s;
    nng_msg *msg;
    if (nng_msg_alloc(&msg, len) != 0) {
        /* Without memory for the reply the request is abandoned (the client times out and
         * retries); the context must still go back to serving. */
        rk_error("client server: no memory for a %zu-byte reply", len);
        call_arm_recv(call);
        return;
    }
    if (len > 0)
        memcpy(nng_msg_body(msg), resp, len);
    call->replying = true;
    nng_aio_set_msg(call->aio, msg);
    nng_ctx_send(call->ctx, call->aio);
}

static void server_free(struct rk_client_server *s)
{
    /* Our operations are cancelled before the socket closes: with them still pending,
     * NNG 1.5.2's nng_close sometimes never returns (its reaper waits forever on a task;
     * nanomsg/nng#1543, #1813, fixed in 1.8). nng_aio_stop also waits for each callback, so
     * none runs after this returns. */
    for (size_t i = 0; i < s->n_calls; i++) {
        if (s->calls[i].aio)
            nng_aio_stop(s->calls[i].aio);
    }
    nng_close(s->sock);
    for (size_t i = 0; i < s->n_calls; i++) {
        if (s->calls[i].aio)
            nng_aio_free(s->calls[i].aio);
    }
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
    s->calls = calloc(s->n_calls, sizeof *s->calls);
    int rv = s->calls ? nng_rep0_open(&s->sock) : NNG_ENOMEM;
    if (rv != 0) {
        free(s->calls);
        free(s);
        return RAFT_ENOMEM;
    }
    rv = nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, rk_nng_max_msg_bytes(opts->max_msg_bytes));
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
