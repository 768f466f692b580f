/*
 * The KV state machine: applies committed entries (kv.proto Command) to LMDB, in the batch
 * transaction of db.h, together with the applied index, so a restart never re-applies or
 * loses an applied entry. Keys carry their create and modify revisions (raft indexes).
 */
#ifndef RAFTKV_KV_H
#define RAFTKV_KV_H

#include <stddef.h>
#include <stdint.h>

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

struct rk_kv;

int rk_kv_open(struct rk_db *db, const struct rk_kv_limits *limits, struct rk_kv **out);
void rk_kv_close(struct rk_kv *kv);

/* The last applied index, as stored. */
int rk_kv_applied_index(struct rk_kv *kv, raft_index *out);

/* rk_kv_validate's answer for a rejected request (distinct from every rk_db_err). */
#define RK_KV_EINVALID 100

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
