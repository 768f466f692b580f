/*
 * The host simulator's world: what raftd's node logic (src/node, linked as is) sees of the
 * outside when it runs in tests/hostsim instead of raftd. This file's functions replace, at
 * link time, NNG's sockets (transport.h: the peer transport, the client port, the change
 * stream; http_server.h) and the node's clock (node__now): messages between nodes go
 * through a simulated network the driver controls, client requests come from the driver
 * and their answers go back to it, and time is the driver's. One world per process.
 */
#ifndef RAFTKV_TESTS_HOSTSIM_SIM_IO_H
#define RAFTKV_TESTS_HOSTSIM_SIM_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "raftkv/raft.h"

/* Slots for the founders (3 or 5) and the spares that may join them. */
#define SIM_MAX_NODES 7

/* A message a node sent, held by the network until it is delivered or dropped. */
struct sim_msg {
    uint64_t at; /* delivery time, ms */
    uint64_t seq;
    struct raft_msg m; /* deep copy */
};

/* A client request the driver made, while a node holds it; the driver owns it (a node that
 * crashes forgets its calls without a word, as a dead process would). */
struct rk_client_call {
    uint64_t id;
    raft_id node;
    struct timespec arrival; /* set by sim_client_request */
    unsigned tag;
};

/* How the driver hears of the nodes' answers to its client calls. */
typedef void (*sim_on_reply)(void *arg, struct rk_client_call *call, const uint8_t *resp,
                             size_t len);

struct sim_world {
    uint64_t now_ms;
    uint64_t seq;
    uint64_t rng;
    uint64_t seed; /* the run's: the nodes' own random seeds come from it */
    /* The network's faults, per message: dropped, duplicated, delayed in [1, delay_max]. */
    unsigned drop_permille, dup_permille, delay_max;
    bool blocked[SIM_MAX_NODES + 1][SIM_MAX_NODES + 1]; /* [from][to] */
    struct sim_msg *msgs;
    size_t n_msgs, cap_msgs;
    /* Each node's transport and client port while it runs (NULL while down). */
    struct rk_transport *transports[SIM_MAX_NODES + 1];
    struct rk_client_server *client_ports[SIM_MAX_NODES + 1];
    sim_on_reply on_reply;
    void *reply_arg;
    uint64_t sent, delivered, dropped;
};

extern struct sim_world sim;

/* A random number below bound, from the world's seeded generator. */
uint32_t sim_rand_below(uint32_t bound);
/* Delivers every message due by now to its node (if it runs; else it is lost). */
void sim_deliver_due(void);
/* Hands a client request (a packed client.proto Request) to call->node's client port;
 * false if the node is down (the request is lost, as a refused connection would be). */
bool sim_client_request(struct rk_client_call *call, const uint8_t *req, size_t len);
/* Drops every message in flight (before the world is reused). */
void sim_network_clear(void);

#endif
