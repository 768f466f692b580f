/*
 * The KV state machine: applies committed entries (packed kv.proto Requests) to LMDB, in the batch
 * transactions of db.h. Writes are kept in memory (overlay.h) and stored every
 * persist_entries entries or fewer (or persist_bytes bytes) together with the applied index, so the
 * stored state is always the state at its applied index; a restart re-applies the entries after it
 * from the raft log. Keys carry their create and modify revisions (raft indexes).
 */
#ifndef RAFTKV_KV_H
#define RAFTKV_KV_H

#include <stddef.h>
#include <stdint.h>

#include "raftkv/fsm.h"
#include "raftkv/raft.h"
#include "storage/db.h"

struct rk_kv_limits {
    size_t max_key_bytes; /* at most LMDB's key limit: more is lowered to it, with a warning */
    size_t max_value_bytes;
    /* Most applied entries kept in memory (the overlay) before their writes are stored in
     * one transaction: each store comes after a random count between half this and this,
     * so that the nodes of a cluster do not all store at once. 1 stores each entry's
     * writes in its own batch; 0 means the default. */
    uint64_t persist_entries;
    /* ... or as soon as the overlay holds this many bytes (large values); 0: the default. */
    size_t persist_bytes;
    /* Client sessions kept (session.h); registering one more expires the least recently
     * active. Every node must apply entries alike, so this must be equal on every node of a
     * cluster: raftd does not let it be configured. 0: RK_KV_DEFAULT_MAX_SESSIONS. */
    uint64_t max_sessions;
};
/* LMDB's key limit in Debian's build. */
#define RK_KV_DEFAULT_MAX_KEY_BYTES 511
#define RK_KV_DEFAULT_MAX_VALUE_BYTES ((size_t)1 << 20)
#define RK_KV_DEFAULT_PERSIST_ENTRIES 2048
#define RK_KV_DEFAULT_PERSIST_BYTES ((size_t)16 << 20)
#define RK_KV_DEFAULT_MAX_SESSIONS 10000
void rk_kv_limits_defaults(struct rk_kv_limits *l);
/* A range's answer (kv.proto Range): at most this many keys, and cut before this many
 * packed bytes (but it holds one key, however large, when one matches). */
#define RK_KV_RANGE_MAX_KEYS 1000
#define RK_KV_RANGE_MAX_BYTES ((size_t)4 << 20)

/* Error codes of the KV store beyond the rk_db_err ones it also returns. */
/* restore: the stream is malformed, truncated or fails its CRC */
#define RK_KV_ESNAPSHOT RAFTKV_FSM_EBADSNAPSHOT
#define RK_KV_ECALLBACK 102 /* the snapshot's emit or restore's read function failed */

/*
 * The KV store as a raftkv_fsm (include/raftkv/fsm.h): the node's only way in. The ops
 * are thin adapters over the functions of kv_private.h (which tests/kv also call directly):
 *
 *   prepare        rk_kv_prepare.
 *   query          a get or a range (rk_kv_range), answered from the overlay and one
 *                  LMDB read transaction; read_free frees the request prepare parsed.
 *   apply          rk_kv_apply in rk_db_current_txn(db) (RK_DB_EIO outside rk_db_write).
 *   persist        rk_kv_persist in rk_db_current_txn(db).
 *   applied_index  rk_kv_applied_index.
 *   snapshot       call on a background thread (see rk_db_read_begin: emit must never wait
 *                  for the thread that runs rk_db_write). Streams the store in the format
 *                  below, as of the applied index of one LMDB read transaction, without
 *                  blocking writers. A failing emit ends it with RK_KV_ECALLBACK.
 *   restore        call inside rk_db_write, on its thread. Empties the store, loads the
 *                  stream, checking it as it goes, and sets the applied index to index. A
 *                  malformed stream, or one whose header names another index, returns
 *                  RK_KV_ESNAPSHOT (details in rk_db_errmsg): the caller aborts the
 *                  transaction and the old state stays. rk_db_write may run its fn again
 *                  after growing the map, so the caller's write fn must restart read from
 *                  the first byte each time it is called (rk_db_reserve with about 1.5x the
 *                  snapshot's size first avoids those reruns). Peak space: LMDB does not
 *                  reuse the pages of the emptied store within the restoring transaction, so
 *                  the map needs room for the old and the new state at once.
 *   strerror       static text per code; rk_db_errmsg has details of errors on the writer
 *                  thread.
 *
 * Snapshot format, version 1. Integers are big-endian.
 *   header  32 bytes: magic "raftkvKV" (8 bytes), format version u32 (1), flags u32 (0),
 *           applied index u64, record count u64
 *   record  per key, in ascending memcmp key order (no duplicates): key length u32
 *           (1..LMDB's key limit), value length u32, create revision u64, mod revision u64
 *           (1 <= create <= mod <= applied index), key bytes, value bytes
 *   trailer CRC-32C (Castagnoli) u32 of every byte before it
 * Its size is 36 + the sum over records of 24 + key length + value length.
 */
int rk_kv_fsm_open(struct rk_db *db, const struct rk_kv_limits *limits, struct raftkv_fsm **out);

#define RK_KV_SNAPSHOT_VERSION 1

#endif
