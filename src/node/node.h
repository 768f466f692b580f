/*
 * A raftd node: one event loop thread owns the Raft core, the LMDB environment and the
 * state machine (a raftkv_fsm: the KV store in raftd, any other in a program of its own).
 * NNG threads only queue what arrives (peer messages, client requests); the loop drains the
 * whole queue, then writes the core's ready in ONE synced transaction, so everything that
 * arrived during the previous fsync is committed together (group commit). The state
 * machine applies committed entries in that transaction; one that keeps its latest state
 * in memory (the KV store's overlay) is asked to persist it before each snapshot and when
 * the node stops.
 *
 * Snapshots: once snapshot_entries entries (or snapshot_bytes bytes of them) were applied
 * since the latest snapshot, a background thread streams the state machine into a file
 * (node/snapshot_files.h); the loop then deletes the log up to the snapshot less
 * snapshot_trailing_entries and serves the file to followers that need it in chunks.
 */
#ifndef RAFTKV_NODE_H
#define RAFTKV_NODE_H

#include "node/config.h"
#include "raftkv/fsm.h"

struct rk_db;

enum rk_node_err {
    RK_NODE_OK = 0,
    RK_NODE_EDB,        /* the data dir could not be opened */
    RK_NODE_EDATADIR,   /* the data dir is refused: in use by another process, of another
                         * cluster or node, or its data is lost, damaged or of another
                         * on-disk format */
    RK_NODE_ESTORAGE,   /* stable storage failed (read at start, or a synced write) */
    RK_NODE_ERAFT,      /* the core refused the restored state or the configuration */
    RK_NODE_ETRANSPORT, /* a socket could not listen */
    RK_NODE_ENOMEM,
    RK_NODE_ECONFIG, /* a file the configuration names is missing or invalid (TLS) */
};

struct rk_node;

/* Opens the state machine in the node's LMDB environment (at start, outside rk_db_write).
 * Returns 0 or nonzero after logging why. The node closes it with fsm->ops->close. */
typedef int (*rk_node_fsm_open_fn)(struct rk_db *db, const struct rk_config *cfg, void *arg,
                                   struct raftkv_fsm **out);

/* Opens the data dir and the state machine through open_fsm, restores the core and starts
 * listening. Errors are logged. cfg must outlive the node. */
int rk_node_start(const struct rk_config *cfg, rk_node_fsm_open_fn open_fsm, void *arg,
                  struct rk_node **out);

/* Runs the event loop until rk_node_request_stop, then answers what is still waiting and
 * returns RK_NODE_OK; returns RK_NODE_ESTORAGE if a synced write failed (the node stops:
 * acknowledging anything more could lose it). */
int rk_node_run(struct rk_node *n);

/* Asks the loop to stop after the batch in progress. Async-signal-safe. */
void rk_node_request_stop(struct rk_node *n);

/* Closes the sockets, then the core and the data dir. */
void rk_node_free(struct rk_node *n);

#endif
