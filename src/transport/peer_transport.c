/*
 * Raft RPCs between nodes. Receiving rides on a client server whose handler decodes,
 * hands the message on and acknowledges at once. Sending uses one req0 socket per peer with
 * a fixed pool of contexts ("slots"): a slot is busy from rk_transport_send until the
 * peer's acknowledgement arrives or times out, which bounds what is in flight per peer.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "log/log.h"
#include "transport/codec.h"
#include "transport/nng_opts.h"
#include "transport/transport.h"

#define DEFAULT_CONTEXTS_PER_PEER 64
/* How long a slot waits for a dead or slow peer, first to connect, then to acknowledge,
 * before it is freed for other messages. Raft retries by itself; holding longer only
 * starves later, more useful messages. */
#define SLOT_TIMEOUT_MS 1000
/* A restarted peer is redialed within this backoff range. */
#define RECONNECT_MIN_MS 10
#define RECONNECT_MAX_MS 200

struct peer_link;

struct send_slot {
    struct peer_link *link;
    nng_ctx ctx;
    nng_aio *aio;
    bool awaiting_ack; /* the aio's pending operation is the ack's receive, not the send */
};

struct peer_link {
    struct rk_transport *t;
    raft_id id;
    nng_socket sock;
    size_t n_slots;
    struct send_slot *slots;
    size_t n_free; /* guarded by t->mu */
    struct send_slot **free_slots;
};

struct rk_transport {
    uint64_t cluster_id;
    raft_id self;
    size_t max_msg_bytes;
    void (*on_msg)(void *arg, struct raft_msg *msg);
    void *arg;
    pthread_mutex_t mu; /* guards every link's free slot stack */
    size_t n_links;
    struct peer_link *links;
    struct rk_client_server *server;
    _Atomic uint64_t sent, send_dropped, received, recv_malformed, recv_unknown_peer;
};

/* Counts a dropped message and logs it, at counts 1, 2, 4, 8... so that a flood of bad
 * input cannot flood the log as well. */
static void note_drop(_Atomic uint64_t *counter, const char *why, raft_id from, raft_id to)
{
    uint64_t n = atomic_fetch_add_explicit(counter, 1, memory_order_relaxed) + 1;
    if ((n & (n - 1)) == 0)
        rk_warn("transport: dropped message from %" PRIu64 " to %" PRIu64 ": %s (%" PRIu64
                " so far)",
                from, to, why, n);
}

static void count(_Atomic uint64_t *counter)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

static struct peer_link *find_link(struct rk_transport *t, raft_id id)
{
    for (size_t i = 0; i < t->n_links; i++) {
        if (t->links[i].id == id)
            return &t->links[i];
    }
    return NULL;
}

static struct send_slot *slot_acquire(struct peer_link *l)
{
    struct send_slot *sl = NULL;
    pthread_mutex_lock(&l->t->mu);
    if (l->n_free > 0)
        sl = l->free_slots[--l->n_free];
    pthread_mutex_unlock(&l->t->mu);
    return sl;
}

static void slot_release(struct send_slot *sl)
{
    struct peer_link *l = sl->link;
    pthread_mutex_lock(&l->t->mu);
    l->free_slots[l->n_free++] = sl;
    pthread_mutex_unlock(&l->t->mu);
}

static void slot_cb(void *arg)
{
    struct send_slot *sl = arg;
    int rv = nng_aio_result(sl->aio);
    if (sl->awaiting_ack) {
        /* A missing ack (timeout, peer gone) is not counted as a drop: the message may well
         * have arrived. */
        if (rv == 0)
            nng_msg_free(nng_aio_get_msg(sl->aio));
        slot_release(sl);
        return;
    }
    if (rv != 0) {
        nng_msg_free(nng_aio_get_msg(sl->aio));
        note_drop(&sl->link->t->send_dropped, nng_strerror(rv), sl->link->t->self, sl->link->id);
        slot_release(sl);
        return;
    }
    count(&sl->link->t->sent);
    sl->awaiting_ack = true;
    nng_aio_set_timeout(sl->aio, SLOT_TIMEOUT_MS);
    nng_ctx_recv(sl->ctx, sl->aio);
}

static int encode_msg(struct rk_transport *t, const struct raft_msg *msg, nng_msg **out)
{
    uint8_t *buf;
    size_t len;
    int rc = rk_codec_encode(msg, t->cluster_id, &buf, &len);
    if (rc != RK_CODEC_OK)
        return rc == RK_CODEC_ENOMEM ? RAFT_ENOMEM : RAFT_EINVAL;
    /* The receiver's NNG would close the connection on it, taking down every other message
     * in flight on that connection, so it never leaves. */
    if (len > t->max_msg_bytes)
        rc = RAFT_ETOOBIG;
    else if (nng_msg_alloc(out, len) != 0)
        rc = RAFT_ENOMEM;
    else
        memcpy(nng_msg_body(*out), buf, len);
    free(buf);
    return rc;
}

int rk_transport_send(struct rk_transport *t, const struct raft_msg *msg)
{
    struct peer_link *l = find_link(t, msg->to);
    if (!l)
        return RAFT_EINVAL;
    struct send_slot *sl = slot_acquire(l);
    if (!sl) {
        note_drop(&t->send_dropped, "all contexts busy", msg->from, msg->to);
        return RAFT_OK;
    }
    nng_msg *m;
    int rc = encode_msg(t, msg, &m);
    if (rc != RAFT_OK) {
        slot_release(sl);
        note_drop(&t->send_dropped, rc == RAFT_ETOOBIG ? "over max_msg_bytes" : raft_strerror(rc),
                  msg->from, msg->to);
        return rc;
    }
    sl->awaiting_ack = false;
    nng_aio_set_msg(sl->aio, m);
    nng_aio_set_timeout(sl->aio, SLOT_TIMEOUT_MS);
    nng_ctx_send(sl->ctx, sl->aio);
    return RAFT_OK;
}

static const char *codec_err_name(int rc)
{
    switch (rc) {
    case RK_CODEC_EVERSION:
        return "unknown wire version";
    case RK_CODEC_ECLUSTER:
        return "another cluster";
    case RK_CODEC_ENOMEM:
        return "out of memory";
    default:
        return "malformed";
    }
}

static void deliver(struct rk_transport *t, const uint8_t *buf, size_t len)
{
    struct raft_msg m;
    int rc = rk_codec_decode(buf, len, t->cluster_id, &m);
    if (rc != RK_CODEC_OK) {
        note_drop(&t->recv_malformed, codec_err_name(rc), 0, t->self);
        return;
    }
    if (m.to != t->self || !find_link(t, m.from)) {
        note_drop(&t->recv_unknown_peer, "unknown sender or recipient", m.from, m.to);
        raft_msg_free(&m);
        return;
    }
    count(&t->received);
    t->on_msg(t->arg, &m);
}

static void on_peer_request(void *arg, struct rk_client_call *call, const uint8_t *req, size_t len)
{
    struct rk_transport *t = arg;
    deliver(t, req, len);
    rk_client_server_reply(t->server, call, NULL, 0);
}

static int link_configure(nng_socket sock, size_t max_msg_bytes)
{
    int rv = nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, max_msg_bytes);
    /* No resends: Raft decides what to retransmit, and a resent request could duplicate
     * a message the peer already has. */
    if (rv == 0)
        rv = nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    if (rv == 0)
        rv = nng_socket_set_ms(sock, NNG_OPT_RECONNMINT, RECONNECT_MIN_MS);
    if (rv == 0)
        rv = nng_socket_set_ms(sock, NNG_OPT_RECONNMAXT, RECONNECT_MAX_MS);
    return rv;
}

static int link_open(struct rk_transport *t, struct peer_link *l, raft_id id, size_t n_slots)
{
    l->t = t;
    l->id = id;
    l->slots = calloc(n_slots, sizeof *l->slots);
    l->free_slots = calloc(n_slots, sizeof *l->free_slots);
    if (!l->slots || !l->free_slots)
        return NNG_ENOMEM;
    l->n_slots = n_slots;
    int rv = nng_req0_open(&l->sock);
    if (rv == 0)
        rv = link_configure(l->sock, t->max_msg_bytes);
    for (size_t i = 0; i < n_slots && rv == 0; i++) {
        struct send_slot *sl = &l->slots[i];
        sl->link = l;
        rv = nng_aio_alloc(&sl->aio, slot_cb, sl);
        if (rv == 0)
            rv = nng_ctx_open(&sl->ctx, l->sock);
        if (rv == 0)
            l->free_slots[l->n_free++] = sl;
    }
    return rv;
}

/* Dials every peer. Non-blocking: a peer that is down now is dialed again and again until it
 * is up. */
static int links_dial(struct rk_transport *t, const struct rk_peer *peers)
{
    for (size_t i = 0; i < t->n_links; i++) {
        int rv = nng_dial(t->links[i].sock, peers[i].url, NULL, NNG_FLAG_NONBLOCK);
        if (rv != 0) {
            rk_error("transport: cannot dial peer %" PRIu64 " at %s: %s", peers[i].id, peers[i].url,
                     nng_strerror(rv));
            return rv;
        }
    }
    return 0;
}

static void link_close(struct peer_link *l)
{
    /* Fails pending operations with NNG_ECLOSED; nng_aio_free waits for their callbacks. (Not
     * stopped first as the server's are: cancelling a request whose copy is still being
     * written makes NNG 1.5.2 leak that message more often.) A socket that never opened has
     * id 0, which nng_close rejects harmlessly. */
    nng_close(l->sock);
    for (size_t i = 0; i < l->n_slots; i++) {
        if (l->slots[i].aio)
            nng_aio_free(l->slots[i].aio);
    }
    free(l->slots);
    free(l->free_slots);
}

static void transport_free(struct rk_transport *t)
{
    /* The server goes first, so that on_msg is never called once stop returns. */
    rk_client_server_stop(t->server);
    for (size_t i = 0; i < t->n_links; i++)
        link_close(&t->links[i]);
    free(t->links);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

int rk_transport_start(const struct rk_transport_options *opts, struct rk_transport **out)
{
    *out = NULL;
    if (!opts->on_msg || !opts->listen_url || (opts->n_peers > 0 && !opts->peers))
        return RAFT_EINVAL;
    struct rk_transport *t = calloc(1, sizeof *t);
    if (!t)
        return RAFT_ENOMEM;
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t);
        return RAFT_ENOMEM;
    }
    t->cluster_id = opts->cluster_id;
    t->self = opts->self;
    t->max_msg_bytes = rk_nng_max_msg_bytes(opts->max_msg_bytes);
    t->on_msg = opts->on_msg;
    t->arg = opts->arg;
    size_t per_peer = opts->contexts_per_peer ? opts->contexts_per_peer : DEFAULT_CONTEXTS_PER_PEER;
    t->links = calloc(opts->n_peers ? opts->n_peers : 1, sizeof *t->links);
    int rv = t->links ? 0 : NNG_ENOMEM;
    for (size_t i = 0; i < opts->n_peers && rv == 0; i++) {
        t->n_links = i + 1;
        rv = link_open(t, &t->links[i], opts->peers[i].id, per_peer);
    }
    if (rv != 0) {
        rk_error("transport: cannot set up peer sockets: %s", nng_strerror(rv));
        transport_free(t);
        return rk_nng_err(rv);
    }
    /* Enough receiving contexts for every peer's full pool of sends at once. */
    struct rk_client_server_options so = {
        .listen_url = opts->listen_url,
        .max_msg_bytes = t->max_msg_bytes,
        .contexts = per_peer * (opts->n_peers ? opts->n_peers : 1),
        .on_request = on_peer_request,
        .arg = t,
    };
    /* Listen before dialing: a busy address then fails the start before any connection is
     * made, and NNG 1.5.2 leaks a socket closed while its dial is mid-handshake. */
    int rc = rk_client_server_start(&so, &t->server);
    if (rc == RAFT_OK)
        rc = rk_nng_err(links_dial(t, opts->peers));
    if (rc != RAFT_OK) {
        transport_free(t);
        return rc;
    }
    *out = t;
    return RAFT_OK;
}

static uint64_t load(_Atomic uint64_t *counter)
{
    return atomic_load_explicit(counter, memory_order_relaxed);
}

void rk_transport_stats(struct rk_transport *t, struct rk_transport_stats *out)
{
    *out = (struct rk_transport_stats){
        .sent = load(&t->sent),
        .send_dropped = load(&t->send_dropped),
        .received = load(&t->received),
        .recv_malformed = load(&t->recv_malformed),
        .recv_unknown_peer = load(&t->recv_unknown_peer),
    };
}

void rk_transport_stop(struct rk_transport *t)
{
    if (t)
        transport_free(t);
}
