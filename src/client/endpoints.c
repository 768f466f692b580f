/* The client's connections (call.h): one req0 socket per endpoint addressed directly, the
 * "any" socket dialed to every configured endpoint, and their bounded close. */
#include "client/call.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/protocol/reqrep0/req.h>

/* Leader hints come from the network: bound how many new addresses they can make us dial. */
#define RK_MAX_ENDPOINTS 64
/* The largest value a node accepts is well below this; the rest is headroom for framing. */
#define RK_MAX_RESPONSE_BYTES ((size_t)65 << 20)
#define RK_RECONNECT_MIN_MS 20
#define RK_RECONNECT_MAX_MS 1000
/* How long raftkv_client_close waits for NNG to close the sockets (normally a few ms). */
#define RK_CLOSE_WAIT_MS 1000
/* Before closing, how long to wait for the replies still owed to requests we abandoned
 * (timed out, cancelled): in all, and since the last one arrived (a node that stopped
 * answering). See closer_drain. */
#define RK_CLOSE_DRAIN_MS 1000
#define RK_CLOSE_QUIET_MS 250
#define RK_CLOSE_POLL_MS 2

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
static int dial(struct raftkv_client *c, nng_socket s, const char *url, nng_dialer *d)
{
    int rv = rk_tls_dialer_create(d, s, url, c->tls);
    if (rv == 0 && (rv = nng_dialer_start(*d, NNG_FLAG_NONBLOCK)) != 0)
        nng_dialer_close(*d);
    if (rv != 0)
        *d = (nng_dialer)NNG_DIALER_INITIALIZER;
    return rv;
}

int rk_endpoint_open(struct raftkv_client *c, struct rk_endpoint *e)
{
    if (e->open)
        return 0;
    int rv = req_socket_open(&e->sock);
    if (rv)
        return rv;
    nng_dialer d;
    if ((rv = nng_pipe_notify(e->sock, NNG_PIPE_EV_ADD_PRE, endpoint_on_pipe, e)) ||
        (rv = nng_pipe_notify(e->sock, NNG_PIPE_EV_REM_POST, endpoint_on_pipe, e)) ||
        (rv = dial(c, e->sock, e->url, &d))) {
        nng_close(e->sock);
        return rv;
    }
    e->open = true;
    return 0;
}

/* Opens the any socket on first use; fails only if no configured endpoint can be dialed
 * at all (e.g. all use a transport NNG lacks). Called with c->mu held. */
int rk_any_open(struct raftkv_client *c)
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
        last = dial(c, c->any, c->eps[i]->url, &c->any_dialers[i]);
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
size_t rk_any_endpoint_of(struct raftkv_client *c, nng_pipe p)
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
    if (!url_valid(url) || rk_tls_url(url) != (c->tls != NULL))
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

/*
 * NNG 1.5.2's nng_close sometimes never returns (its reaper waits forever on a task of a
 * pipe; nanomsg/nng#1543, #1813, fixed in 1.8), also with none of our operations pending.
 * So the sockets close on a thread of their own, waited for at most RK_CLOSE_WAIT_MS; a
 * close that takes longer is left to finish in the background, and the closer then frees
 * what it owns: the endpoints, which the sockets' pipe callbacks use until they close.
 */
struct rk_closer {
    nng_mtx *mu;
    nng_cv *cv;
    bool done, abandoned;
    nng_socket socks[RK_MAX_ENDPOINTS + 1];
    size_t n_socks;
    struct rk_endpoint **eps;
    size_t n_eps;
};

/* Moves the open sockets and the endpoints from the client to k. c->mu held. */
static void closer_fill(struct rk_closer *k, struct raftkv_client *c)
{
    if (c->any_open)
        k->socks[k->n_socks++] = c->any;
    c->any_open = false;
    for (size_t i = 0; i < c->n_eps; i++) {
        if (c->eps[i]->open)
            k->socks[k->n_socks++] = c->eps[i]->sock;
        c->eps[i]->open = false;
    }
    k->eps = c->eps;
    k->n_eps = c->n_eps;
    c->eps = NULL;
    c->n_eps = 0;
}

static bool closer_has_socket(const struct rk_closer *k, uint64_t id)
{
    for (size_t i = 0; i < k->n_socks; i++) {
        if ((uint64_t)nng_socket_id(k->socks[i]) == id)
            return true;
    }
    return false;
}

/* Over the pipes of k's sockets: the replies owed (requests sent, less replies received)
 * and the replies received. NNG counts both per pipe, discarded replies included. */
static int closer_count(const struct rk_closer *k, uint64_t *owed, uint64_t *received)
{
    nng_stat *all;
    int rv = nng_stats_get(&all);
    if (rv)
        return rv;
    *owed = *received = 0;
    for (nng_stat *s = nng_stat_child(all); s; s = nng_stat_next(s)) {
        if (strcmp(nng_stat_name(s), "pipe") != 0)
            continue;
        nng_stat *sock = nng_stat_find(s, "socket"), *tx = nng_stat_find(s, "tx_msgs"),
                 *rx = nng_stat_find(s, "rx_msgs");
        if (!sock || !tx || !rx || !closer_has_socket(k, nng_stat_value(sock)))
            continue;
        uint64_t t = nng_stat_value(tx), r = nng_stat_value(rx);
        *owed += t > r ? t - r : 0;
        *received += r;
    }
    nng_stats_free(all);
    return 0;
}

/* NNG 1.5.2's nng_close can also hang when a message arrives on a pipe as it closes: the
 * close stress test hangs so within seconds when replies to the requests it abandoned
 * come in during the close. So wait until no reply is owed any more, or none has come
 * for RK_CLOSE_QUIET_MS (a node that will not answer), at most RK_CLOSE_DRAIN_MS. */
static void closer_drain(const struct rk_closer *k)
{
    nng_time now = nng_clock(), end = now + RK_CLOSE_DRAIN_MS, quiet = now + RK_CLOSE_QUIET_MS;
    uint64_t owed, received, before = UINT64_MAX;
    while (closer_count(k, &owed, &received) == 0 && owed && (now = nng_clock()) < end) {
        if (received != before)
            quiet = now + RK_CLOSE_QUIET_MS;
        else if (now >= quiet)
            return;
        before = received;
        nng_msleep(RK_CLOSE_POLL_MS);
    }
}

static void closer_close(struct rk_closer *k)
{
    for (size_t i = 0; i < k->n_socks; i++)
        nng_close(k->socks[i]);
    for (size_t i = 0; i < k->n_eps; i++) {
        free(k->eps[i]->url);
        free(k->eps[i]);
    }
    free(k->eps);
}

static void closer_free(struct rk_closer *k)
{
    if (k->cv)
        nng_cv_free(k->cv);
    if (k->mu)
        nng_mtx_free(k->mu);
    free(k);
}

static void closer_run(void *arg)
{
    struct rk_closer *k = arg;
    closer_close(k);
    nng_mtx_lock(k->mu);
    k->done = true;
    bool abandoned = k->abandoned;
    nng_cv_wake(k->cv);
    nng_mtx_unlock(k->mu);
    if (abandoned)
        closer_free(k);
}

/* Runs the closer on a thread of its own and waits for it within the bound. */
static void closer_wait(struct rk_closer *k)
{
    nng_thread *t;
    if (nng_mtx_alloc(&k->mu) || nng_cv_alloc(&k->cv, k->mu) ||
        nng_thread_create(&t, closer_run, k)) {
        closer_close(k); /* no resources for a thread: unbounded, as NNG is */
        closer_free(k);
        return;
    }
    nng_time until = nng_clock() + RK_CLOSE_WAIT_MS;
    nng_mtx_lock(k->mu);
    while (!k->done && nng_cv_until(k->cv, until) != NNG_ETIMEDOUT)
        ;
    bool done = k->done;
    k->abandoned = !done;
    nng_mtx_unlock(k->mu);
    if (!done) {
        fprintf(stderr,
                "raftkv client: NNG has not closed the sockets within %d ms; they close in "
                "the background\n",
                RK_CLOSE_WAIT_MS);
        return; /* the thread's handle stays behind with it: joining could hang */
    }
    nng_thread_destroy(t);
    closer_free(k);
}

void rk_endpoints_close(struct raftkv_client *c)
{
    struct rk_closer *k = calloc(1, sizeof *k), unbounded = {0};
    nng_mtx_lock(c->mu);
    closer_fill(k ? k : &unbounded, c);
    nng_mtx_unlock(c->mu);
    closer_drain(k ? k : &unbounded);
    if (k)
        closer_wait(k);
    else
        closer_close(&unbounded);
    free(c->any_dialers);
    c->any_dialers = NULL;
}

const char *rk_endpoint_name(struct raftkv_client *c, size_t ep)
{
    return ep == RK_ANY_ENDPOINT ? "any endpoint" : c->eps[ep]->url;
}
