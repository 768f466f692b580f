/* Internals shared by the KV store's sources (kv.c: apply; kv_snapshot.c: the snapshot). */
#ifndef RAFTKV_KV_PRIVATE_H
#define RAFTKV_KV_PRIVATE_H

#include "kv/kv.h"

/* A "kv" record: create and mod revision (big-endian u64), then the value bytes. */
#define RK_KV_RECORD_HEADER 16
/* The meta record holding the applied index. */
#define RK_KV_APPLIED "kv_applied"

struct rk_kv {
    struct raftkv_fsm base; /* first, so the fsm ops can cast */
    struct rk_db *db;
    MDB_dbi data;
    struct rk_kv_limits limits;
};

/* The fsm's snapshot and restore (kv.h documents both and the format). */
int rk_kv_snapshot(struct rk_kv *kv, raftkv_snapshot_emit_fn emit, void *arg, raft_index *index);
int rk_kv_restore(struct rk_kv *kv, MDB_txn *txn, raft_index index, raftkv_snapshot_read_fn read,
                  void *arg);

#endif
