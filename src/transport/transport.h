/*
 * NNG transport between raftd nodes, for clients and for change streams.
 *
 * NNG callbacks never touch node state: they hand what arrived to the on_* callbacks,
 * which must only queue it for the node's event loop (one owner per piece of state).
 */
#ifndef RAFTKV_TRANSPORT_H
#define RAFTKV_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "raftkv/raft.h"
#include "tls/tls.h"

struct rk_peer {
    raft_id id;
    const char *url; /* e.g. tcp://127.0.0.1:7001 */
};

struct rk_transport_stats {
    uint64_t sent;
    uint64_t send_dropped; /* no free context towards the peer, the peer is down, or the
                              message is over max_msg_bytes (refused before sending) */
    uint64_t received;
    uint64_t recv_malformed; /* undecodable, wrong version or wrong cluster */
    /* Addressed to another node id: the sender has this node's address under another id
     * (a stale address book, a reused address). Messages from any sender are delivered. */
    uint64_t recv_unknown_peer;
    /* Dropped by the socket's max message size. Always 0 with NNG 1.5.2: it closes the
     * connection on such a message without telling the socket's user. Senders refuse
     * messages over their own max_msg_bytes instead (send_dropped, RAFT_ETOOBIG). */
    uint64_t recv_oversized;
    uint64_t redials; /* sockets replaced because their peer acknowledged nothing for
                         silent_peer_ms */
    /* With TLS, as of the last rk_transport_tls_poll (tls.h says what NNG counts):
     * handshakes on our listener that failed, and our dials to a peer whose handshake
     * failed (its certificate is not from the CA, or it refused ours). */
    uint64_t tls_refused;
    uint64_t tls_dials_failed;
};

/*
 * Raft RPCs. Every raft_msg (request or response) travels as an NNG req/rep request to the
 * rep socket of its recipient, which acknowledges it at once with an empty reply: Raft's
 * messages are one-way and their responses come later, after a durable write. Each peer
 * has a pool of NNG contexts so several AppendEntries are in flight at once; when all are
 * busy the message is dropped and counted (Raft tolerates loss). Dialers redial a
 * restarted peer by themselves. A peer that acknowledges nothing sent to it for
 * silent_peer_ms (its packets vanish: a partition, a dead host, a wedged NNG dialer) gets
 * a fresh socket, and again each silent_peer_ms while it stays silent; the messages in
 * flight on the old one are dropped. A socket whose connection is not up yet (still
 * connecting, or in its TLS handshake) gets 8 silent_peer_ms before it is replaced.
 */
struct rk_transport_options {
    uint64_t cluster_id;
    raft_id self;
    const char *listen_url;
    size_t n_peers; /* the first peer set, as rk_transport_set_peers takes it */
    const struct rk_peer *peers;
    size_t max_msg_bytes;     /* set as NNG_OPT_RECVMAXSZ on every socket; default 64 MiB */
    size_t contexts_per_peer; /* default 64 */
    /* Default 1000. About an election timeout, so that a follower cut off by a healed
     * partition is back within one; a much smaller bound would redial peers that are
     * merely slow to acknowledge (a loaded host, a large message on a slow link). */
    unsigned silent_peer_ms;
    /* TLS for tls+tcp:// addresses (both NULL: plain tcp://): the listener's, which should
     * require a certificate from the cluster's CA, and the dialers'. The transport holds
     * its own references. */
    nng_tls_config *tls_listen;
    nng_tls_config *tls_dial;
    /* Called from an NNG thread with a decoded message addressed to self, from any sender,
     * a peer or not: the core judges senders (a node that joins a running cluster knows no
     * member yet). The callee owns msg's allocations (raft_msg_free); the struct itself is
     * valid only during the call, so queue a shallow copy of *msg. from_address is the
     * address the sender says it takes messages at ("" when it says none), valid only
     * during the call. */
    void (*on_msg)(void *arg, struct raft_msg *msg, const char *from_address);
    void *arg;
    /* This node's address as peers dial it, sent with every message (NULL: none), so that
     * a node that does not know it yet can answer. */
    const char *advertise_url;
};

struct rk_transport;

int rk_transport_start(const struct rk_transport_options *opts, struct rk_transport **out);
/* Makes peers the peer set, as the cluster's configuration changes: a peer whose id is new
 * is dialed, one whose URL changed is closed and dialed again at the new one, one that is
 * gone is closed (by a thread of the transport's: never blocks) and its memory freed, and
 * an unchanged one is left alone (its connection and messages in flight). An entry whose id
 * is self is skipped, so the whole configuration may be passed. RAFT_EINVAL for more than
 * RAFT_MAX_MEMBERS entries, an id 0 or twice, a NULL or empty URL (leave out members whose
 * address is unknown); RAFT_EINVAL or RAFT_ENOMEM when a new peer cannot be dialed (a bad
 * URL). On error the peer set is as it was. Call it from the thread that calls the other
 * rk_transport functions. */
int rk_transport_set_peers(struct rk_transport *t, const struct rk_peer *peers, size_t n_peers);
/* Encodes and sends asynchronously; never blocks. Returns RAFT_OK also when the message is
 * dropped for lack of a free context (counted), RAFT_EINVAL when msg->to is not a peer,
 * RAFT_ETOOBIG when encoded it exceeds max_msg_bytes, RAFT_ENOMEM. */
int rk_transport_send(struct rk_transport *t, const struct raft_msg *msg);
void rk_transport_stats(struct rk_transport *t, struct rk_transport_stats *out);

/* Messages exchanged with one peer, by type (enum raft_msg_type). Sent: handed to NNG;
 * send_dropped: as rk_transport_stats counts them; received: delivered to on_msg;
 * recv_dropped: addressed to another node id. */
struct rk_peer_msg_stats {
    raft_id peer; /* 0: the others: senders outside the address book, and the peers past
                   * the first RAFT_MAX_MEMBERS the node has met */
    uint64_t sent[RAFT_MSG_TYPE_COUNT], send_dropped[RAFT_MSG_TYPE_COUNT];
    uint64_t received[RAFT_MSG_TYPE_COUNT], recv_dropped[RAFT_MSG_TYPE_COUNT];
};
/* Fills out (up to cap) with the peers messages went to or came from since the start, in
 * the order first met, a removed peer included (its counters stay monotonic); returns how
 * many were filled. */
size_t rk_transport_peer_msg_stats(struct rk_transport *t, struct rk_peer_msg_stats *out,
                                   size_t cap);
struct rk_server_stats;
/* Adds the counters of the server peers send to (transport.h, rk_server_stats) to out. */
void rk_transport_server_stats(struct rk_transport *t, struct rk_server_stats *out);
/* Updates the TLS counters from all (a snapshot of nng_stats_get) and logs a peer whose
 * handshake fails: once per peer until a message to it is acknowledged again, and the
 * listener's refusals at their 1st, 2nd, 4th, 8th... (NNG does not say whose they are). */
void rk_transport_tls_poll(struct rk_transport *t, nng_stat *all);

void rk_transport_stop(struct rk_transport *t);

/*
 * Client requests: an NNG rep socket with a pool of contexts. Each request (a packed
 * kv.proto ClientRequest) is handed to on_request with a handle; the node answers it
 * later, from its event loop, with rk_client_server_reply (exactly once per handle).
 *
 * Bounded, so that one connection cannot take the server from the others: a connection
 * holds at most a quarter of the contexts (at least 8) with requests not yet answered, and
 * at most RK_SERVER_CONN_REPLY_BYTES of replies not yet sent; requests past either are
 * dropped unanswered (the client times out and retries). A reply the connection does not
 * take within RK_SERVER_REPLY_TIMEOUT_MS (it stopped reading) closes the connection, and
 * so does RK_SERVER_IDLE_MS without a request. At most RK_SERVER_MAX_CONNS connections;
 * more are closed at once.
 */
#define RK_SERVER_REPLY_TIMEOUT_MS 5000
#define RK_SERVER_IDLE_MS (10 * 60 * 1000)
#define RK_SERVER_CONN_REPLY_BYTES ((size_t)64 << 20)
#define RK_SERVER_MAX_CONNS 4096

struct rk_server_stats {
    uint64_t conns_refused;       /* over RK_SERVER_MAX_CONNS */
    uint64_t conns_closed_slow;   /* did not take a reply in time */
    uint64_t conns_closed_idle;   /* no request for RK_SERVER_IDLE_MS */
    uint64_t requests_over_limit; /* dropped: the connection had too much unanswered */
};
struct rk_client_call; /* one received request awaiting its reply */

struct rk_client_server_options {
    const char *listen_url;
    size_t max_msg_bytes; /* NNG_OPT_RECVMAXSZ; default 64 MiB */
    size_t contexts;      /* concurrent requests served; default 1024 */
    size_t conn_contexts; /* of them, one connection's at most; default a quarter (>= 8) */
    nng_tls_config *tls;  /* for a tls+tcp:// listen_url; NULL for plain tcp:// */

    /* req is valid only during the call. */
    void (*on_request)(void *arg, struct rk_client_call *call, const uint8_t *req, size_t len);
    void *arg;
};

struct rk_client_server;

int rk_client_server_start(const struct rk_client_server_options *opts,
                           struct rk_client_server **out);
/* Sends the reply (the bytes are copied) and re-arms the call's context. */
void rk_client_server_reply(struct rk_client_server *s, struct rk_client_call *call,
                            const uint8_t *resp, size_t len);
/* Failed TLS handshakes on the listener, from a snapshot of nng_stats_get (tls.h). */
uint64_t rk_client_server_tls_refusals(struct rk_client_server *s, nng_stat *all);
void rk_client_server_stop(struct rk_client_server *s);
/* Adds the server's counters to out. */
void rk_client_server_stats(struct rk_client_server *s, struct rk_server_stats *out);
/* When the call's request arrived (CLOCK_MONOTONIC), to measure its latency to the reply. */
struct timespec rk_client_call_arrival(const struct rk_client_call *call);
/* A number the server's user keeps with a call until it replies (what kind of request it
 * is, for metrics); 0 when the request arrives. */
void rk_client_call_set_tag(struct rk_client_call *call, unsigned tag);
unsigned rk_client_call_tag(const struct rk_client_call *call);

/*
 * Change stream: an NNG pub socket. Each message is a topic followed by a payload: the
 * state machine's events under its own topic (fsm.h, event_topic; raftd's KV store: "kv/"
 * + kv.proto ChangeEvent), and "leader/" + client.proto LeaderEvent. Subscribers filter by
 * topic prefix.
 */
#define RK_TOPIC_LEADER "leader/"

struct rk_publisher;

/* tls: for a tls+tcp:// listen_url; NULL for plain tcp://. */
int rk_publisher_start(const char *listen_url, nng_tls_config *tls, struct rk_publisher **out);
void rk_publisher_send(struct rk_publisher *p, const char *topic, const uint8_t *payload,
                       size_t len);
uint64_t rk_publisher_tls_refusals(struct rk_publisher *p, nng_stat *all);
void rk_publisher_stop(struct rk_publisher *p);

#endif
