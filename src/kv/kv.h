/*
 * The KV state machine: applies committed entries (kv.proto Command) to LMDB, in the batch
 * transaction of db.h, together with the applied index, so a restart never re-applies or
 * loses an applied entry. Keys carry their create and modify revisions (raft indexes).
 */
#ifndef RAFTKV_KV_H
#define RAFTKV_KV_H

#include <stddef.h>
#include <stdint.h>

#include "raftkv/fsm.h"
#include "raftkv/raft.h"
#include "storage/db.h"

struct rk_bytes {
    uint8_t *data; /* malloc'd; NULL when len == 0 */
    size_t len;
};
void rk_bytes_free(struct rk_bytes *b);

struct rk_kv_limits {
    size_t max_key_bytes;   /* default and most: LMDB's key limit (511 bytes in Debian's build) */
    size_t max_value_bytes; /* default 1 MiB */
};
void rk_kv_limits_defaults(struct rk_kv_limits *l);

/* Error codes of the KV store beyond the rk_db_err ones it also returns. */
#define RK_KV_EINVALID 100  /* validate rejected the request (the answer is in *response) */
#define RK_KV_ESNAPSHOT 101 /* restore: the stream is malformed, truncated or fails its CRC */
#define RK_KV_ECALLBACK 102 /* the snapshot's emit or restore's read function failed */

/*
 * THE FSM PATH: the KV store as a raftkv_fsm (include/raftkv/fsm.h). The node moves to it;
 * the rk_kv_* functions below are the older direct API, kept while the node still calls
 * them, and are what the fsm ops run (one implementation, two entry points).
 *
 *   validate       rk_kv_validate.
 *   apply          rk_kv_apply in rk_db_current_txn(db) (RK_DB_EIO outside rk_db_write).
 *                  A Command's custom op is answered INVALID: "the KV store has no custom
 *                  operations".
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
 *                  the first byte each time it is called. Peak space: LMDB does not reuse the
 *                  pages of the emptied store within the restoring transaction, so the map
 *                  needs room for the old and the new state at once.
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

/* The older direct API (see above). */
struct rk_kv;

int rk_kv_open(struct rk_db *db, const struct rk_kv_limits *limits, struct rk_kv **out);
void rk_kv_close(struct rk_kv *kv);

/* The last applied index, as stored; inside rk_db_write (on its thread) as the batch
 * left it so far. */
int rk_kv_applied_index(struct rk_kv *kv, raft_index *out);

/* Checks a packed kv.proto ClientRequest against the limits before it is proposed.
 * Returns 0 if acceptable; otherwise RK_KV_EINVALID with *response filled with a packed
 * ClientResponse (code INVALID, a clear error) for the client, or RK_DB_ENOMEM. */
int rk_kv_validate(struct rk_kv *kv, const uint8_t *req, size_t len, struct rk_bytes *response);

/* Applies one committed entry inside the current rk_db_write transaction: normal entries
 * carry a packed Command; no-op and config entries only move the applied index. An entry
 * at or below the applied index is skipped (nothing returned). Returns an rk_db_err (the
 * write fn can return it as is); on error nothing is returned in response/change.
 * *response gets the packed ClientResponse for the proposing client (empty for no-ops);
 * *change gets a packed ChangeEvent when the entry changed a key (empty otherwise).
 * A malformed command is answered INVALID and applied as a no-op: every node does the same. */
int rk_kv_apply(struct rk_kv *kv, MDB_txn *txn, const struct raft_entry *e,
                struct rk_bytes *response, struct rk_bytes *change);

#endif
