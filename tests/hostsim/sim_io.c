/* The host simulator's world (sim_io.h): simulated sockets and clock, linked in place of
 * NNG's (src/transport) and of src/node/clock.c. */
#include "sim_io.h"

#include <stdlib.h>
#include <string.h>

#include "node/node_internal.h"
#include "transport/http_server.h"
#include "transport/transport.h"

struct sim_world sim;

struct rk_transport {
    raft_id self;
    bool peer[SIM_MAX_NODES + 1]; /* the address book: whom it can send to */
    void (*on_msg)(void *arg, struct raft_msg *msg, const char *from_address);
    const char *advertise_url; /* the node's config's, valid while it runs */
    void *arg;
    struct rk_transport_stats stats;
};

struct rk_client_server {
    raft_id self;
    void (*on_request)(void *arg, struct rk_client_call *call, const uint8_t *req, size_t len);
    void *arg;
};

uint32_t sim_rand_below(uint32_t bound)
{
    uint64_t z = (sim.rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return bound ? (uint32_t)(z % bound) : 0;
}

struct timespec node__now(void)
{
    /* Far from zero, so that no deadline computed from it is ever "before the epoch". */
    uint64_t ms = sim.now_ms + 1000000;
    return (struct timespec){.tv_sec = (time_t)(ms / 1000),
                             .tv_nsec = (long)(ms % 1000) * 1000000L};
}

uint64_t node__seed(raft_id id)
{
    uint64_t seed = (sim.seed + id) * 0x9e3779b97f4a7c15ULL;
    return seed ? seed : 1;
}

/* ---- the peer transport ---- */

static void network_hold(const struct raft_msg *m, uint64_t delay)
{
    if (sim.n_msgs == sim.cap_msgs) {
        size_t cap = sim.cap_msgs ? 2 * sim.cap_msgs : 256;
        struct sim_msg *msgs = realloc(sim.msgs, cap * sizeof *msgs);
        if (!msgs)
            abort();
        sim.msgs = msgs;
        sim.cap_msgs = cap;
    }
    struct sim_msg *s = &sim.msgs[sim.n_msgs];
    if (raft_msg_copy(&s->m, m) != RAFT_OK)
        abort();
    s->at = sim.now_ms + delay;
    s->seq = sim.seq++;
    sim.n_msgs++;
}

int rk_transport_start(const struct rk_transport_options *opts, struct rk_transport **out)
{
    struct rk_transport *t = calloc(1, sizeof *t);
    if (!t)
        return RAFT_ENOMEM;
    *t = (struct rk_transport){.self = opts->self,
                               .on_msg = opts->on_msg,
                               .arg = opts->arg,
                               .advertise_url = opts->advertise_url ? opts->advertise_url : ""};
    rk_transport_set_peers(t, opts->peers, opts->n_peers);
    sim.transports[opts->self] = t;
    *out = t;
    return RAFT_OK;
}

/* As NNG's: a node reaches only the members it has an address for. */
int rk_transport_set_peers(struct rk_transport *t, const struct rk_peer *peers, size_t n_peers)
{
    memset(t->peer, 0, sizeof t->peer);
    for (size_t i = 0; i < n_peers; i++)
        if (peers[i].id <= SIM_MAX_NODES)
            t->peer[peers[i].id] = true;
    return RAFT_OK;
}

int rk_transport_send(struct rk_transport *t, const struct raft_msg *msg)
{
    if (msg->to == 0 || msg->to > SIM_MAX_NODES || !t->peer[msg->to])
        return RAFT_EINVAL;
    t->stats.sent++;
    sim.sent++;
    if (sim.blocked[msg->from][msg->to] || sim_rand_below(1000) < sim.drop_permille) {
        sim.dropped++;
        return RAFT_OK;
    }
    int copies = sim_rand_below(1000) < sim.dup_permille ? 2 : 1;
    for (int i = 0; i < copies; i++)
        network_hold(msg, 1 + sim_rand_below(sim.delay_max ? sim.delay_max : 1));
    return RAFT_OK;
}

void sim_deliver_due(void)
{
    /* Oldest first among the due ones: ties keep the order they were sent in. */
    for (;;) {
        size_t best = sim.n_msgs;
        for (size_t i = 0; i < sim.n_msgs; i++)
            if (sim.msgs[i].at <= sim.now_ms &&
                (best == sim.n_msgs || sim.msgs[i].at < sim.msgs[best].at ||
                 (sim.msgs[i].at == sim.msgs[best].at && sim.msgs[i].seq < sim.msgs[best].seq)))
                best = i;
        if (best == sim.n_msgs)
            return;
        struct raft_msg m = sim.msgs[best].m;
        sim.msgs[best] = sim.msgs[--sim.n_msgs];
        struct rk_transport *t = sim.transports[m.to];
        if (!t || sim.blocked[m.from][m.to]) {
            raft_msg_free(&m);
            sim.dropped++;
            continue;
        }
        t->stats.received++;
        sim.delivered++;
        /* As NNG's: the address the sender gives with each message. */
        struct rk_transport *from = sim.transports[m.from];
        t->on_msg(t->arg, &m, from ? from->advertise_url : ""); /* takes m's allocations */
    }
}

void sim_network_clear(void)
{
    for (size_t i = 0; i < sim.n_msgs; i++)
        raft_msg_free(&sim.msgs[i].m);
    free(sim.msgs);
    sim.msgs = NULL;
    sim.n_msgs = sim.cap_msgs = 0;
}

void rk_transport_stats(struct rk_transport *t, struct rk_transport_stats *out)
{
    *out = t->stats;
}

size_t rk_transport_peer_msg_stats(struct rk_transport *t, struct rk_peer_msg_stats *out,
                                   size_t cap)
{
    (void)t;
    (void)out;
    (void)cap;
    return 0;
}

void rk_transport_server_stats(struct rk_transport *t, struct rk_server_stats *out)
{
    (void)t;
    (void)out;
}

void rk_transport_tls_poll(struct rk_transport *t, nng_stat *all)
{
    (void)t;
    (void)all;
}

void rk_transport_stop(struct rk_transport *t)
{
    if (sim.transports[t->self] == t)
        sim.transports[t->self] = NULL;
    free(t);
}

/* ---- the client port ---- */

int rk_client_server_start(const struct rk_client_server_options *opts,
                           struct rk_client_server **out)
{
    struct rk_client_server *s = calloc(1, sizeof *s);
    if (!s)
        return RAFT_ENOMEM;
    /* The node's id is the transport's, started just before. */
    for (raft_id id = 1; id <= SIM_MAX_NODES; id++)
        if (sim.transports[id] && sim.transports[id]->arg == opts->arg)
            s->self = id;
    s->on_request = opts->on_request;
    s->arg = opts->arg;
    sim.client_ports[s->self] = s;
    *out = s;
    return RAFT_OK;
}

bool sim_client_request(struct rk_client_call *call, const uint8_t *req, size_t len)
{
    struct rk_client_server *s = sim.client_ports[call->node];
    if (!s)
        return false;
    call->arrival = node__now();
    call->tag = 0;
    s->on_request(s->arg, call, req, len);
    return true;
}

void rk_client_server_reply(struct rk_client_server *s, struct rk_client_call *call,
                            const uint8_t *resp, size_t len)
{
    (void)s;
    if (sim.on_reply)
        sim.on_reply(sim.reply_arg, call, resp, len);
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
    (void)s;
    (void)out;
}

uint64_t rk_client_server_tls_refusals(struct rk_client_server *s, nng_stat *all)
{
    (void)s;
    (void)all;
    return 0;
}

void rk_client_server_stop(struct rk_client_server *s)
{
    if (sim.client_ports[s->self] == s)
        sim.client_ports[s->self] = NULL;
    free(s);
}

/* ---- no change stream, no HTTP: the driver configures neither ---- */

int rk_publisher_start(const char *listen_url, nng_tls_config *tls, struct rk_publisher **out)
{
    (void)listen_url;
    (void)tls;
    *out = NULL;
    return RAFT_EINVAL;
}

void rk_publisher_send(struct rk_publisher *p, const char *topic, const uint8_t *payload,
                       size_t len)
{
    (void)p;
    (void)topic;
    (void)payload;
    (void)len;
}

uint64_t rk_publisher_tls_refusals(struct rk_publisher *p, nng_stat *all)
{
    (void)p;
    (void)all;
    return 0;
}

void rk_publisher_stop(struct rk_publisher *p)
{
    (void)p;
}

int rk_http_server_start(const char *url, size_t max_body, rk_http_on_request on_request, void *arg,
                         struct rk_http_server **out)
{
    (void)url;
    (void)max_body;
    (void)on_request;
    (void)arg;
    *out = NULL;
    return RAFT_EINVAL;
}

void rk_http_reply(struct rk_http_request *req, uint16_t status, const char *content_type,
                   const void *body, size_t len)
{
    (void)req;
    (void)status;
    (void)content_type;
    (void)body;
    (void)len;
}

void rk_http_server_quiesce(struct rk_http_server *s)
{
    (void)s;
}

void rk_http_server_stop(struct rk_http_server *s)
{
    (void)s;
}
