/*
 * A raftd node: one event loop thread owns the Raft core, the LMDB environment and the KV
 * state machine. NNG threads only queue what arrives (peer messages, client requests); the
 * loop drains the whole queue, then writes the core's ready in ONE synced transaction, so
 * everything that arrived during the previous fsync is committed together (group commit).
 */
#ifndef RAFTKV_NODE_H
#define RAFTKV_NODE_H

#include "node/config.h"

enum rk_node_err {
    RK_NODE_OK = 0,
    RK_NODE_EDB,        /* the data dir could not be opened or belongs to something else */
    RK_NODE_ESTORAGE,   /* stable storage failed (read at start, or a synced write) */
    RK_NODE_ERAFT,      /* the core refused the restored state or the configuration */
    RK_NODE_ETRANSPORT, /* a socket could not listen */
    RK_NODE_ENOMEM,
};

struct rk_node;

/* Opens the data dir, restores the core and starts listening. Errors are logged.
 * cfg must outlive the node. */
int rk_node_start(const struct rk_config *cfg, struct rk_node **out);

/* Runs the event loop until rk_node_request_stop, then answers what is still waiting and
 * returns RK_NODE_OK; returns RK_NODE_ESTORAGE if a synced write failed (the node stops:
 * acknowledging anything more could lose it). */
int rk_node_run(struct rk_node *n);

/* Asks the loop to stop after the batch in progress. Async-signal-safe. */
void rk_node_request_stop(struct rk_node *n);

/* Closes the sockets, then the core and the data dir. */
void rk_node_free(struct rk_node *n);

#endif
