#define _GNU_SOURCE /* pthread_timedjoin_np */
/*
 * Raft RPCs between nodes. Receiving rides on a client server whose handler decodes,
 * hands the message on and acknowledges at once. Sending uses one req0 socket per peer with
 * a fixed pool of contexts ("slots"): a slot is busy from rk_transport_send until the
 * peer's acknowledgement arrives or times out, which bounds what is in flight per peer.
 *
 * A watchdog thread replaces the socket of a peer that acknowledges nothing for
 * silent_peer_ms. Without it a connection whose packets vanish (a one-way partition, no
 * RST) sits in TCP's retransmission backoff for seconds after the network heals, and
 * NNG 1.5.2's dialer sometimes never reconnects at all.
 *
 * The set of peers follows the cluster's configuration (rk_transport_set_peers). A peer
 * taken out of it, or replaced by one at another URL, is retired as a redial retires a
 * socket: a closer thread closes its conns, and the link itself goes with the last thing
 * that uses it (the peer set, a conn whose callbacks may still run, the watchdog).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "log/log.h"
#include "transport/codec.h"
#include "transport/nng_opts.h"
#include "transport/transport.h"

#define DEFAULT_CONTEXTS_PER_PEER 64
#define DEFAULT_SILENT_PEER_MS 1000
/* How long a slot waits for a dead or slow peer, first to connect, then to acknowledge,
 * before it is freed for other messages. Raft retries by itself; holding longer only
 * starves later, more useful messages. */
#define SLOT_TIMEOUT_MS 1000
/* How long stopping waits for the closer to finish the closes it has (threads_stop). */
#define CLOSER_STOP_SECONDS 5
/* A restarted peer is redialed within this backoff range. */
#define RECONNECT_MIN_MS 10
#define RECONNECT_MAX_MS 200

struct peer_conn;

struct send_slot {
    struct peer_conn *conn;
    nng_ctx ctx;
    nng_aio *aio;
    bool awaiting_ack;       /* the aio's pending operation is the ack's receive, not the send */
    enum raft_msg_type type; /* of the message in flight, for its peer's counters */
};

/* One req0 socket towards a peer and its pool of slots; replaced whole on a redial. */
struct peer_conn {
    struct peer_link *link;
    nng_socket sock;
    nng_dialer dialer;
    _Atomic int pipes;     /* connections up: a TLS one once its handshake is done */
    uint64_t tls_failures; /* the dialer's, as last polled; guarded by t->mu */
    size_t n_slots;
    struct send_slot *slots;
    /* Guarded by t->mu. starting counts sends between taking a slot and starting its
     * operation: a retired conn is closed only once none is left. */
    size_t n_free;
    struct send_slot **free_slots;
    size_t starting;
    bool retired;
    struct peer_conn *next_retired; /* in t->retired, guarded by t->mu */
};

struct peer_link {
    struct rk_transport *t;
    raft_id id;
    char *url;
    /* Guarded by t->mu: replaced only by the watchdog; NULL once the link is removed. */
    struct peer_conn *conn;
    /* Guarded by t->mu. Held by the peer set until the link is removed, by each of its conns
     * until closed (their callbacks use the link) and by the watchdog while it checks it. */
    size_t refs;
    bool removed; /* guarded by t->mu */
    /* Monotonic ms of the first send since the last acknowledgement; 0 when none. */
    _Atomic uint64_t unacked_since;
    uint64_t silent_redials; /* since the last acknowledgement; the watchdog's own */
    _Atomic bool acked;      /* an acknowledgement arrived since the last TLS poll */
    _Atomic bool heard;      /* an acknowledgement arrived since the watchdog's last check */
    bool tls_failure_logged; /* since the last acknowledgement; the TLS poll's own */
};

/* One peer's messages by type (rk_peer_msg_stats). Entries are claimed once, lock-free, by
 * the first message to or from a peer of the address book, and never given back, so
 * counters stay monotonic and the table bounded. The last entry (peer 0) takes the rest:
 * senders outside the address book (any id a forged message names: they must not use up
 * the table) and the peers past RAFT_MAX_MEMBERS. */
enum msg_fate { MSG_SENT, MSG_SEND_DROPPED, MSG_RECEIVED, MSG_RECV_DROPPED, MSG_FATES };
struct msg_counts {
    _Atomic raft_id peer;
    _Atomic uint64_t n[MSG_FATES][RAFT_MSG_TYPE_COUNT];
};

struct rk_transport {
    uint64_t cluster_id;
    raft_id self;
    size_t max_msg_bytes;
    size_t slots_per_conn;
    uint64_t silent_ms;
    char advertise_url[RAFT_MAX_ADDRESS + 1]; /* ours, in every envelope; "" when unset */
    void (*on_msg)(void *arg, struct raft_msg *msg, const char *from_address);
    void *arg;
    pthread_mutex_t mu; /* guards every link's conn, and the conns' fields marked so */
    pthread_cond_t cv;  /* the watchdog and the closer wait on it: for stopping, for work */
    bool stopping;      /* guarded by mu */
    bool watchdog_started;
    pthread_t watchdog;
    bool closer_started;
    pthread_t closer;
    struct peer_conn *retired;           /* replaced conns for the closer to close; guarded by mu */
    struct rk_transport *next_abandoned; /* threads_stop */
    /* The peers. Written only by the owner's thread (rk_transport_set_peers), under mu: it
     * reads them freely, every other thread under mu. */
    size_t n_links;
    struct peer_link *links[RAFT_MAX_MEMBERS];
    struct rk_client_server *server;
    nng_tls_config *tls_dial; /* NULL: plain tcp:// */
    _Atomic uint64_t sent, send_dropped, received, recv_malformed, recv_unknown_peer, redials;
    _Atomic uint64_t tls_refused, tls_dials_failed;
    struct msg_counts by_peer[RAFT_MAX_MEMBERS + 1];
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

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

/* The counters of peer id: its entry, claimed now if it has none and claim is set. */
static struct msg_counts *peer_counts(struct rk_transport *t, raft_id id, bool claim)
{
    for (size_t i = 0; id && i < RAFT_MAX_MEMBERS; i++) {
        raft_id seen = 0;
        if (claim && atomic_compare_exchange_strong(&t->by_peer[i].peer, &seen, id))
            return &t->by_peer[i];
        if (!claim)
            seen = atomic_load(&t->by_peer[i].peer);
        if (seen == id)
            return &t->by_peer[i];
        if (seen == 0)
            break;
    }
    return &t->by_peer[RAFT_MAX_MEMBERS];
}

/* in_book: id is a peer of the address book (a link exists), which may claim an entry. */
static void count_peer(struct rk_transport *t, raft_id id, bool in_book, enum msg_fate fate,
                       enum raft_msg_type type)
{
    if ((unsigned)type < RAFT_MSG_TYPE_COUNT)
        count(&peer_counts(t, id, in_book)->n[fate][type]);
}

static struct peer_link *find_link(struct rk_transport *t, raft_id id)
{
    for (size_t i = 0; i < t->n_links; i++) {
        if (t->links[i]->id == id)
            return t->links[i];
    }
    return NULL;
}

/* Drops a reference to l, and frees l with the last one; under t->mu. */
static void link_unref(struct peer_link *l)
{
    if (--l->refs > 0)
        return;
    free(l->url);
    free(l);
}

/* Hands c to the closer, which closes it once no send is starting on it; under t->mu. */
static void conn_retire(struct rk_transport *t, struct peer_conn *c)
{
    c->retired = true;
    c->next_retired = t->retired;
    t->retired = c;
    pthread_cond_broadcast(&t->cv);
}

/* Takes out of service a link that is out of the peer set (or never made it in); under
 * t->mu. */
static void link_remove(struct peer_link *l)
{
    l->removed = true;
    if (l->conn)
        conn_retire(l->t, l->conn);
    l->conn = NULL;
    link_unref(l);
}

/* Takes a free slot of peer id's current conn into *out, NULL when every slot is busy;
 * slot_started must follow a slot. RAFT_EINVAL when id is not a peer. */
static int slot_acquire(struct rk_transport *t, raft_id id, struct send_slot **out)
{
    *out = NULL;
    pthread_mutex_lock(&t->mu);
    struct peer_link *l = find_link(t, id);
    struct peer_conn *c = l ? l->conn : NULL;
    if (c && c->n_free > 0) {
        *out = c->free_slots[--c->n_free];
        c->starting++;
    }
    pthread_mutex_unlock(&t->mu);
    return l ? RAFT_OK : RAFT_EINVAL;
}

/* The slot's operation has started (or the slot went back): its conn may be closed. */
static void slot_started(struct send_slot *sl)
{
    struct peer_conn *c = sl->conn;
    struct rk_transport *t = c->link->t;
    pthread_mutex_lock(&t->mu);
    if (--c->starting == 0 && c->retired)
        pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void slot_release(struct send_slot *sl)
{
    struct peer_conn *c = sl->conn;
    pthread_mutex_lock(&c->link->t->mu);
    c->free_slots[c->n_free++] = sl;
    pthread_mutex_unlock(&c->link->t->mu);
}

static void slot_cb(void *arg)
{
    struct send_slot *sl = arg;
    struct peer_link *l = sl->conn->link;
    int rv = nng_aio_result(sl->aio);
    if (sl->awaiting_ack) {
        /* A missing ack (timeout, peer gone) is not counted as a drop: the message may well
         * have arrived. */
        if (rv == 0) {
            nng_msg_free(nng_aio_get_msg(sl->aio));
            atomic_store(&l->unacked_since, 0);
            atomic_store(&l->acked, true);
            atomic_store(&l->heard, true);
        }
        slot_release(sl);
        return;
    }
    if (rv != 0) {
        nng_msg_free(nng_aio_get_msg(sl->aio));
        note_drop(&l->t->send_dropped, nng_strerror(rv), l->t->self, l->id);
        count_peer(l->t, l->id, true, MSG_SEND_DROPPED, sl->type);
        slot_release(sl);
        return;
    }
    count(&l->t->sent);
    count_peer(l->t, l->id, true, MSG_SENT, sl->type);
    sl->awaiting_ack = true;
    nng_aio_set_timeout(sl->aio, SLOT_TIMEOUT_MS);
    nng_ctx_recv(sl->ctx, sl->aio);
}

static int encode_msg(struct rk_transport *t, const struct raft_msg *msg, nng_msg **out)
{
    uint8_t *buf;
    size_t len;
    int rc = rk_codec_encode(msg, t->cluster_id, t->advertise_url, &buf, &len);
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

/* Notes that something went out which the peer has yet to acknowledge. */
static void link_note_unacked(struct peer_link *l)
{
    uint64_t none = 0;
    atomic_compare_exchange_strong(&l->unacked_since, &none, now_ms());
}

int rk_transport_send(struct rk_transport *t, const struct raft_msg *msg)
{
    struct send_slot *sl;
    if (slot_acquire(t, msg->to, &sl) != RAFT_OK)
        return RAFT_EINVAL;
    if (!sl) {
        note_drop(&t->send_dropped, "all contexts busy", msg->from, msg->to);
        count_peer(t, msg->to, true, MSG_SEND_DROPPED, msg->type);
        return RAFT_OK;
    }
    nng_msg *m;
    int rc = encode_msg(t, msg, &m);
    if (rc != RAFT_OK) {
        slot_release(sl);
        slot_started(sl);
        note_drop(&t->send_dropped, rc == RAFT_ETOOBIG ? "over max_msg_bytes" : raft_strerror(rc),
                  msg->from, msg->to);
        count_peer(t, msg->to, true, MSG_SEND_DROPPED, msg->type);
        return rc;
    }
    link_note_unacked(sl->conn->link);
    sl->awaiting_ack = false;
    sl->type = msg->type;
    nng_aio_set_msg(sl->aio, m);
    nng_aio_set_timeout(sl->aio, SLOT_TIMEOUT_MS);
    nng_ctx_send(sl->ctx, sl->aio);
    slot_started(sl);
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
    char from_address[RAFT_MAX_ADDRESS + 1];
    int rc = rk_codec_decode(buf, len, t->cluster_id, &m, from_address);
    if (rc != RK_CODEC_OK) {
        note_drop(&t->recv_malformed, codec_err_name(rc), 0, t->self);
        return;
    }
    /* Whoever the sender, the core judges it: a node that joins a running cluster knows no
     * member yet, and a lagging follower may not know its new leader. */
    pthread_mutex_lock(&t->mu);
    bool in_book = find_link(t, m.from) != NULL;
    pthread_mutex_unlock(&t->mu);
    if (m.to != t->self) {
        note_drop(&t->recv_unknown_peer, "addressed to another node", m.from, m.to);
        count_peer(t, m.from, in_book, MSG_RECV_DROPPED, m.type);
        raft_msg_free(&m);
        return;
    }
    count(&t->received);
    count_peer(t, m.from, in_book, MSG_RECEIVED, m.type);
    t->on_msg(t->arg, &m, from_address);
}

static void on_peer_request(void *arg, struct rk_client_call *call, const uint8_t *req, size_t len)
{
    struct rk_transport *t = arg;
    deliver(t, req, len);
    rk_client_server_reply(t->server, call, NULL, 0);
}

static int conn_configure(nng_socket sock, size_t max_msg_bytes)
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

/* Non-blocking: a peer that is down now is dialed again and again until it is up. */
static int conn_dial(struct peer_conn *c, const char *url)
{
    nng_dialer d;
    int rv = rk_tls_dialer_create(&d, c->sock, url, c->link->t->tls_dial);
    /* Keepalive only turns on SO_KEEPALIVE: NNG 1.5.2 exposes neither its timings nor
     * TCP_USER_TIMEOUT, and it never fires while data awaits an ACK, so the watchdog is
     * what notices a silent peer. Other transports (ipc) have no such option. */
    if (rv == 0) {
        rv = nng_dialer_set_bool(d, NNG_OPT_TCP_KEEPALIVE, true);
        if (rv == NNG_ENOTSUP)
            rv = 0;
    }
    if (rv == 0)
        rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK);
    c->dialer = d;
    return rv;
}

static void conn_close(struct peer_conn *c)
{
    if (!c)
        return;
    /* As the client server does: operations cancelled before the socket closes (NNG 1.5.2's
     * nng_close can hang with them pending), and nng_aio_stop waits for each callback. A
     * socket that never opened has id 0, which nng_close rejects harmlessly. */
    for (size_t i = 0; i < c->n_slots; i++) {
        if (c->slots[i].aio)
            nng_aio_stop(c->slots[i].aio);
    }
    nng_close(c->sock);
    for (size_t i = 0; i < c->n_slots; i++) {
        if (c->slots[i].aio)
            nng_aio_free(c->slots[i].aio);
    }
    free(c->slots);
    free(c->free_slots);
    free(c);
}

static int conn_open_slots(struct peer_conn *c, size_t n_slots)
{
    c->slots = calloc(n_slots, sizeof *c->slots);
    c->free_slots = calloc(n_slots, sizeof *c->free_slots);
    if (!c->slots || !c->free_slots)
        return NNG_ENOMEM;
    c->n_slots = n_slots;
    for (size_t i = 0; i < n_slots; i++) {
        struct send_slot *sl = &c->slots[i];
        sl->conn = c;
        int rv = nng_aio_alloc(&sl->aio, slot_cb, sl);
        if (rv == 0)
            rv = nng_ctx_open(&sl->ctx, c->sock);
        if (rv != 0)
            return rv;
        c->free_slots[c->n_free++] = sl;
    }
    return 0;
}

/* A fresh socket towards l's peer, its slots ready and its dialer started. */
static void conn_pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void)p;
    struct peer_conn *c = arg;
    atomic_fetch_add(&c->pipes, ev == NNG_PIPE_EV_ADD_POST ? 1 : -1);
}

static int conn_open(struct peer_link *l, struct peer_conn **out)
{
    struct peer_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NNG_ENOMEM;
    c->link = l;
    int rv = nng_req0_open(&c->sock);
    if (rv == 0)
        rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_POST, conn_pipe_event, c);
    if (rv == 0)
        rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, conn_pipe_event, c);
    if (rv == 0)
        rv = conn_configure(c->sock, l->t->max_msg_bytes);
    if (rv == 0)
        rv = conn_open_slots(c, l->t->slots_per_conn);
    if (rv == 0)
        rv = conn_dial(c, l->url);
    if (rv != 0) {
        conn_close(c);
        return rv;
    }
    pthread_mutex_lock(&l->t->mu);
    l->refs++;
    pthread_mutex_unlock(&l->t->mu);
    *out = c;
    return 0;
}

/* Replaces l's conn by a fresh one, and retires the old one. */
static void link_redial(struct peer_link *l, uint64_t silent_for_ms)
{
    struct rk_transport *t = l->t;
    struct peer_conn *fresh;
    int rv = conn_open(l, &fresh);
    uint64_t n = ++l->silent_redials;
    if ((n & (n - 1)) == 0)
        rk_warn("transport: peer %" PRIu64 " silent for %" PRIu64 " ms, %s (%" PRIu64 " in a row)",
                l->id, silent_for_ms, rv == 0 ? "redialing" : nng_strerror(rv), n);
    if (rv != 0)
        return;
    pthread_mutex_lock(&t->mu);
    if (l->removed) {
        /* The peer left the set while its socket was being replaced. */
        conn_retire(t, fresh);
    } else {
        conn_retire(t, l->conn);
        l->conn = fresh;
        /* The fresh conn gets a full silent_ms of its own. */
        atomic_store(&l->unacked_since, 0);
        count(&t->redials);
    }
    pthread_mutex_unlock(&t->mu);
}

/* A socket whose connection is up is redialed after silent_ms without an acknowledgement;
 * one without a connection (its dialer still connecting, or a TLS handshake under way)
 * only after this many times that: its dialer retries by itself, a slow handshake (TLS on
 * a loaded host) must be let finish, and NNG 1.5.2's TLS listener can stop serving every
 * connection, for good, after one was closed during its handshake. */
#define SILENT_UNCONNECTED_FACTOR 8

static void link_check(struct peer_link *l)
{
    if (atomic_exchange(&l->heard, false))
        l->silent_redials = 0;
    uint64_t since = atomic_load(&l->unacked_since);
    if (since == 0)
        return;
    pthread_mutex_lock(&l->t->mu);
    bool up = atomic_load(&l->conn->pipes) > 0;
    pthread_mutex_unlock(&l->t->mu);
    uint64_t now = now_ms();
    uint64_t allowed = l->t->silent_ms * (up ? 1 : SILENT_UNCONNECTED_FACTOR);
    if (now >= since + allowed)
        link_redial(l, now - since);
}

/* Checks every link a few times per silent_ms, so that a silent peer is redialed within
 * about 1.25 silent_ms. The links it checks are held, so that set_peers may remove them
 * meanwhile. */
static void *watchdog_run(void *arg)
{
    struct rk_transport *t = arg;
    uint64_t period_ms = t->silent_ms / 4 ? t->silent_ms / 4 : 1;
    pthread_mutex_lock(&t->mu);
    while (!t->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + period_ms * 1000000;
        until.tv_sec += (time_t)(ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&t->cv, &t->mu, &until);
        if (t->stopping)
            break;
        struct peer_link *held[RAFT_MAX_MEMBERS];
        size_t n = t->n_links;
        for (size_t i = 0; i < n; i++) {
            held[i] = t->links[i];
            held[i]->refs++;
        }
        pthread_mutex_unlock(&t->mu);
        for (size_t i = 0; i < n; i++)
            link_check(held[i]);
        pthread_mutex_lock(&t->mu);
        for (size_t i = 0; i < n; i++)
            link_unref(held[i]);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* A retired conn no send is starting on (closing it then would free a slot under the
 * sender), unlinked from t->retired; NULL if none. Under t->mu. */
static struct peer_conn *retired_take(struct rk_transport *t)
{
    struct peer_conn **pc = &t->retired;
    while (*pc && (*pc)->starting > 0)
        pc = &(*pc)->next_retired;
    struct peer_conn *c = *pc;
    if (c)
        *pc = c->next_retired;
    return c;
}

/* Closes the retired conns, off the watchdog's and the owner's threads: NNG 1.5.2's
 * nng_close can hang for good, and the watchdog must go on redialing the other peers
 * meanwhile (once it hung in a close, a restarted follower was never dialed again). Ends
 * once stopping, with every retired conn closed. */
static void *closer_run(void *arg)
{
    struct rk_transport *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        struct peer_conn *c = retired_take(t);
        if (!c && !t->retired && t->stopping)
            break;
        if (!c) {
            pthread_cond_wait(&t->cv, &t->mu);
            continue;
        }
        struct peer_link *l = c->link;
        pthread_mutex_unlock(&t->mu);
        conn_close(c);
        pthread_mutex_lock(&t->mu);
        link_unref(l);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* Transports whose closer was left behind in a hung close (threads_stop). */
static pthread_mutex_t abandoned_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rk_transport *abandoned;

/* Stops the watchdog and the closer (which closes what is retired first). Returns false
 * when the closer is stuck in a close (NNG 1.5.2's nng_close of a req socket can hang for
 * good: nanomsg/nng#648, #1543): it is left behind, with what it still uses, rather than
 * waited for. That bounds this wait only: once one close hung, closing the node's other
 * sockets was seen to hang as well. */
static bool threads_stop(struct rk_transport *t)
{
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (t->watchdog_started)
        pthread_join(t->watchdog, NULL);
    if (!t->closer_started)
        return true;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += CLOSER_STOP_SECONDS;
    if (pthread_timedjoin_np(t->closer, NULL, &deadline) == 0)
        return true;
    rk_error("transport: closing a peer socket hung in NNG for %d s: leaving it behind",
             CLOSER_STOP_SECONDS);
    pthread_detach(t->closer);
    /* What the closer still uses stays allocated, and reachable: it is not a leak. */
    pthread_mutex_lock(&abandoned_mu);
    t->next_abandoned = abandoned;
    abandoned = t;
    pthread_mutex_unlock(&abandoned_mu);
    return false;
}

static int sync_init(struct rk_transport *t)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return RAFT_ENOMEM;
    int rc =
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&t->cv, &ca) == 0
            ? RAFT_OK
            : RAFT_ENOMEM;
    pthread_condattr_destroy(&ca);
    if (rc == RAFT_OK && pthread_mutex_init(&t->mu, NULL) != 0) {
        pthread_cond_destroy(&t->cv);
        rc = RAFT_ENOMEM;
    }
    return rc;
}

static void transport_free(struct rk_transport *t)
{
    if (!threads_stop(t)) {
        rk_client_server_stop(t->server);
        return;
    }
    /* The server goes first, so that on_msg is never called once stop returns. */
    rk_client_server_stop(t->server);
    /* Alone now: the closer has closed every retired conn, and with it let go of the links. */
    for (size_t i = 0; i < t->n_links; i++) {
        conn_close(t->links[i]->conn);
        free(t->links[i]->url);
        free(t->links[i]);
    }
    if (t->tls_dial)
        nng_tls_config_free(t->tls_dial);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* A link to p with its conn dialing, not yet in the peer set. */
static int link_open(struct rk_transport *t, const struct rk_peer *p, struct peer_link **out)
{
    struct peer_link *l = calloc(1, sizeof *l);
    char *url = strdup(p->url);
    if (!l || !url) {
        free(l);
        free(url);
        return RAFT_ENOMEM;
    }
    *l = (struct peer_link){.t = t, .id = p->id, .url = url, .refs = 1};
    int rv = conn_open(l, &l->conn);
    if (rv != 0) {
        rk_error("transport: cannot dial peer %" PRIu64 " at %s: %s", l->id, l->url,
                 nng_strerror(rv));
        free(url);
        free(l);
        return rk_nng_err(rv);
    }
    *out = l;
    return RAFT_OK;
}

/* Whether peers can be a peer set: at most RAFT_MAX_MEMBERS, each with a URL and a distinct
 * nonzero id. */
static bool peers_valid(const struct rk_peer *peers, size_t n)
{
    if (n > RAFT_MAX_MEMBERS || (n > 0 && !peers))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (peers[i].id == 0 || !peers[i].url || !peers[i].url[0])
            return false;
        for (size_t j = 0; j < i; j++) {
            if (peers[j].id == peers[i].id)
                return false;
        }
    }
    return true;
}

static bool links_contain(struct peer_link *const *links, size_t n, const struct peer_link *l)
{
    for (size_t i = 0; i < n; i++) {
        if (links[i] == l)
            return true;
    }
    return false;
}

/* Removes every link of from[] that is not in keep[]; under t->mu. */
static void links_remove_missing(struct peer_link *const *from, size_t n_from,
                                 struct peer_link *const *keep, size_t n_keep)
{
    for (size_t i = 0; i < n_from; i++) {
        if (!links_contain(keep, n_keep, from[i]))
            link_remove(from[i]);
    }
}

int rk_transport_set_peers(struct rk_transport *t, const struct rk_peer *peers, size_t n_peers)
{
    if (!peers_valid(peers, n_peers))
        return RAFT_EINVAL;
    /* Dialed before anything changes, so that a failure leaves the peer set as it was. */
    struct peer_link *next[RAFT_MAX_MEMBERS];
    size_t n = 0;
    int rc = RAFT_OK;
    for (size_t i = 0; i < n_peers && rc == RAFT_OK; i++) {
        if (peers[i].id == t->self)
            continue;
        struct peer_link *l = find_link(t, peers[i].id);
        if (!l || strcmp(l->url, peers[i].url) != 0)
            rc = link_open(t, &peers[i], &l);
        if (rc == RAFT_OK)
            next[n++] = l;
    }
    pthread_mutex_lock(&t->mu);
    if (rc != RAFT_OK) {
        links_remove_missing(next, n, t->links, t->n_links);
    } else {
        links_remove_missing(t->links, t->n_links, next, n);
        memcpy(t->links, next, n * sizeof *next);
        t->n_links = n;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int rk_transport_start(const struct rk_transport_options *opts, struct rk_transport **out)
{
    *out = NULL;
    if (!opts->on_msg || !opts->listen_url || !peers_valid(opts->peers, opts->n_peers) ||
        (opts->advertise_url && strlen(opts->advertise_url) > RAFT_MAX_ADDRESS))
        return RAFT_EINVAL;
    struct rk_transport *t = calloc(1, sizeof *t);
    if (!t)
        return RAFT_ENOMEM;
    if (sync_init(t) != RAFT_OK) {
        free(t);
        return RAFT_ENOMEM;
    }
    t->cluster_id = opts->cluster_id;
    t->self = opts->self;
    t->max_msg_bytes = rk_nng_max_msg_bytes(opts->max_msg_bytes);
    t->slots_per_conn =
        opts->contexts_per_peer ? opts->contexts_per_peer : DEFAULT_CONTEXTS_PER_PEER;
    t->silent_ms = opts->silent_peer_ms ? opts->silent_peer_ms : DEFAULT_SILENT_PEER_MS;
    t->on_msg = opts->on_msg;
    t->arg = opts->arg;
    if (opts->advertise_url)
        strcpy(t->advertise_url, opts->advertise_url);
    t->tls_dial = opts->tls_dial;
    if (t->tls_dial)
        nng_tls_config_hold(t->tls_dial);
    /* Enough receiving contexts for the first peers' full pools of sends at once. Peers
     * added later share them: a context is held only while a message is decoded and
     * queued, and requests beyond wait in NNG meanwhile. */
    struct rk_client_server_options so = {
        .listen_url = opts->listen_url,
        .max_msg_bytes = t->max_msg_bytes,
        .contexts = t->slots_per_conn * (opts->n_peers ? opts->n_peers : 1),
        .conn_contexts = t->slots_per_conn,
        .tls = opts->tls_listen,
        .on_request = on_peer_request,
        .arg = t,
    };
    /* Listen before dialing: a busy address then fails the start before any connection is
     * made, and NNG 1.5.2 leaks a socket closed while its dial is mid-handshake. */
    int rc = rk_client_server_start(&so, &t->server);
    /* The closer first: it is what takes back a peer set that fails half-dialed. */
    if (rc == RAFT_OK)
        rc = pthread_create(&t->closer, NULL, closer_run, t) == 0 ? RAFT_OK : RAFT_ENOMEM;
    t->closer_started = rc == RAFT_OK;
    if (rc == RAFT_OK)
        rc = rk_transport_set_peers(t, opts->peers, opts->n_peers);
    if (rc == RAFT_OK)
        rc = pthread_create(&t->watchdog, NULL, watchdog_run, t) == 0 ? RAFT_OK : RAFT_ENOMEM;
    t->watchdog_started = rc == RAFT_OK;
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
        .redials = load(&t->redials),
        .tls_refused = load(&t->tls_refused),
        .tls_dials_failed = load(&t->tls_dials_failed),
    };
}

/* Loads a fate's counters into to; returns whether any is nonzero. */
static bool load_types(uint64_t *to, _Atomic uint64_t *from)
{
    bool any = false;
    for (size_t i = 0; i < RAFT_MSG_TYPE_COUNT; i++)
        any |= (to[i] = load(&from[i])) != 0;
    return any;
}

size_t rk_transport_peer_msg_stats(struct rk_transport *t, struct rk_peer_msg_stats *out,
                                   size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i <= RAFT_MAX_MEMBERS && n < cap; i++) {
        struct msg_counts *c = &t->by_peer[i];
        raft_id peer = atomic_load(&c->peer);
        if (!peer && i < RAFT_MAX_MEMBERS)
            continue;
        out[n].peer = peer;
        bool any = load_types(out[n].sent, c->n[MSG_SENT]);
        any |= load_types(out[n].send_dropped, c->n[MSG_SEND_DROPPED]);
        any |= load_types(out[n].received, c->n[MSG_RECEIVED]);
        any |= load_types(out[n].recv_dropped, c->n[MSG_RECV_DROPPED]);
        n += peer || any; /* the overflow entry only once it counted something */
    }
    return n;
}

void rk_transport_server_stats(struct rk_transport *t, struct rk_server_stats *out)
{
    rk_client_server_stats(t->server, out);
}

/* Counts the failed handshakes of l's dialer since the last poll, and logs the first of
 * them since the peer last acknowledged anything. */
static void link_tls_poll(struct peer_link *l, nng_stat *all)
{
    struct rk_transport *t = l->t;
    pthread_mutex_lock(&t->mu);
    struct peer_conn *c = l->conn;
    uint64_t total = rk_tls_dialer_failures(all, c->dialer);
    uint64_t fresh = total > c->tls_failures ? total - c->tls_failures : 0;
    c->tls_failures = total;
    pthread_mutex_unlock(&t->mu);
    if (atomic_exchange(&l->acked, false))
        l->tls_failure_logged = false;
    if (fresh == 0)
        return;
    atomic_fetch_add_explicit(&t->tls_dials_failed, fresh, memory_order_relaxed);
    if (l->tls_failure_logged)
        return;
    l->tls_failure_logged = true;
    rk_warn("transport: TLS handshake with peer %" PRIu64 " at %s failed: its certificate is "
            "not from the cluster's CA, or it refused ours (logged again only after it has "
            "answered)",
            l->id, l->url);
}

void rk_transport_tls_poll(struct rk_transport *t, nng_stat *all)
{
    uint64_t total = rk_client_server_tls_refusals(t->server, all);
    uint64_t before = atomic_exchange(&t->tls_refused, total);
    if (total > before && rk_tls_refusals_loggable(before, total))
        rk_warn("transport: %" PRIu64 " TLS handshake(s) refused on the peer port so far: a "
                "node or program without a certificate from the cluster's CA (NNG does not "
                "say from where)",
                total);
    for (size_t i = 0; i < t->n_links; i++)
        link_tls_poll(t->links[i], all);
}

void rk_transport_stop(struct rk_transport *t)
{
    if (t)
        transport_free(t);
}
