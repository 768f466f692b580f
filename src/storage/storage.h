/*
 * Stable storage for the Raft core's persistent state: term, vote, the log and the snapshot
 * position. The host saves each raft_ready through it before acting on the ready, and
 * loads from it on start. Two implementations: in memory (tests and the simulator) and
 * LMDB (raftd).
 */
#ifndef RAFTKV_STORAGE_H
#define RAFTKV_STORAGE_H

#include "raftkv/raft.h"

struct rk_storage;

struct rk_storage_ops {
    /* Fills out with everything stored (applied is left 0: the state machine knows it).
     * The entries are allocated; release them with rk_storage_restore_free. */
    int (*load)(struct rk_storage *s, struct raft_restore *out);
    /* Persists rd's hard state, truncation and entries, atomically. For LMDB this writes
     * into the batch transaction the host has open (see db.h), durable when it commits. */
    int (*save)(struct rk_storage *s, const struct raft_ready *rd);
    /* Records a new snapshot (meta, and conf: the configuration at its index) and deletes
     * the entries up to compact_to, whose term is compact_term, as raft_compact does in
     * memory. For LMDB this writes into the batch transaction, like save. load then
     * reports the snapshot in restore.snapshot and .snapshot_conf, and (compact_to,
     * compact_term) as the log's starting point. */
    int (*compact)(struct rk_storage *s, const struct raft_snapshot_meta *meta,
                   const struct raft_configuration *conf, raft_index compact_to,
                   raft_term compact_term);
    void (*close)(struct rk_storage *s);
};

struct rk_storage {
    const struct rk_storage_ops *ops;
};

/* Frees the entries and configuration a load allocated and zeroes *restore. */
void rk_storage_restore_free(struct raft_restore *restore);

/* In-memory storage: save keeps copies, load returns them. Survives a simulated crash
 * of the core that uses it, which is the point. */
int rk_mem_storage_new(struct rk_storage **out);

#endif
