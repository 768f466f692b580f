/* Test nodes: a transport plus a sink that keeps every message it is handed. */
#ifndef RAFTKV_TEST_PEER_UTIL_H
#define RAFTKV_TEST_PEER_UTIL_H

#include <pthread.h>
#include <stdio.h>

#include "msg_util.h"
#include "transport/transport.h"

#define TEST_CLUSTER 77

struct test_node {
    raft_id id;
    char url[64];
    pthread_mutex_t mu;
    size_t n_msgs, cap;
    struct raft_msg *msgs;
    struct rk_transport *t;
    char last_from[RAFT_MAX_ADDRESS + 1]; /* the address the last message came with */
};

static inline void test_sink(void *arg, struct raft_msg *m, const char *from_address)
{
    struct test_node *n = arg;
    pthread_mutex_lock(&n->mu);
    snprintf(n->last_from, sizeof n->last_from, "%s", from_address);
    if (n->n_msgs == n->cap) {
        n->cap = n->cap ? n->cap * 2 : 64;
        n->msgs = realloc(n->msgs, n->cap * sizeof *n->msgs);
    }
    n->msgs[n->n_msgs++] = *m;
    pthread_mutex_unlock(&n->mu);
}

static inline size_t test_node_count(struct test_node *n)
{
    pthread_mutex_lock(&n->mu);
    size_t c = n->n_msgs;
    pthread_mutex_unlock(&n->mu);
    return c;
}

static inline void test_node_init(struct test_node *n, raft_id id)
{
    memset(n, 0, sizeof *n);
    n->id = id;
    pthread_mutex_init(&n->mu, NULL);
    snprintf(n->url, sizeof n->url, "tcp://127.0.0.1:%d", test_free_port());
}

/* Starts n's transport with the given nodes as peers (n itself is skipped). */
static inline int test_node_start(struct test_node *n, struct test_node **peers, size_t n_peers,
                                  size_t max_msg_bytes, size_t contexts_per_peer)
{
    struct rk_peer list[8];
    size_t k = 0;
    for (size_t i = 0; i < n_peers; i++) {
        if (peers[i] != n)
            list[k++] = (struct rk_peer){peers[i]->id, peers[i]->url};
    }
    struct rk_transport_options o = {
        .cluster_id = TEST_CLUSTER,
        .self = n->id,
        .listen_url = n->url,
        .n_peers = k,
        .peers = list,
        .max_msg_bytes = max_msg_bytes,
        .contexts_per_peer = contexts_per_peer,
        .on_msg = test_sink,
        .arg = n,
        .advertise_url = n->url,
    };
    return rk_transport_start(&o, &n->t);
}

/* Inits the nodes of all[] as nodes 1..n, each on its own loopback port. */
static inline void test_nodes_init(struct test_node **all, size_t n)
{
    for (size_t i = 0; i < n; i++)
        test_node_init(all[i], (raft_id)(i + 1));
}

/* Starts every node of all[] with the others as peers and the same limits. */
static inline int test_nodes_start(struct test_node **all, size_t n, size_t max_msg_bytes,
                                   size_t contexts_per_peer)
{
    for (size_t i = 0; i < n; i++) {
        int rc = test_node_start(all[i], all, n, max_msg_bytes, contexts_per_peer);
        if (rc != RAFT_OK)
            return rc;
    }
    return RAFT_OK;
}

/* Stops the transport and forgets what the sink held. */
static inline void test_node_stop(struct test_node *n)
{
    rk_transport_stop(n->t);
    n->t = NULL;
    for (size_t i = 0; i < n->n_msgs; i++)
        raft_msg_free(&n->msgs[i]);
    free(n->msgs);
    n->msgs = NULL;
    n->n_msgs = n->cap = 0;
}

static inline void test_nodes_stop(struct test_node **all, size_t n)
{
    for (size_t i = 0; i < n; i++)
        test_node_stop(all[i]);
}

static inline struct rk_transport_stats test_stats(struct rk_transport *t)
{
    struct rk_transport_stats s;
    rk_transport_stats(t, &s);
    return s;
}

/* Sends m, sending again while it is dropped for want of a free context. */
static inline bool test_send(struct rk_transport *t, const struct raft_msg *m, uint64_t deadline)
{
    for (;;) {
        uint64_t before = test_stats(t).send_dropped;
        if (rk_transport_send(t, m) != RAFT_OK)
            return false;
        if (test_stats(t).send_dropped == before)
            return true;
        if (test_now_ms() > deadline)
            return false;
        test_pause();
    }
}

#endif
