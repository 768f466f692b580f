/* Internals of the KV store (kv.c: apply; kv_snapshot.c: the snapshot), for its sources and
 * its tests. */
#ifndef RAFTKV_KV_PRIVATE_H
#define RAFTKV_KV_PRIVATE_H

#include <protobuf-c/protobuf-c.h>

#include "kv.pb-c.h"
#include "kv/kv.h"
#include "kv/overlay.h"

/* A "kv" record: create and mod revision (big-endian u64), then the value bytes. */
#define RK_KV_RECORD_HEADER 16
/* The meta record holding the applied index. */
#define RK_KV_APPLIED "kv_applied"

struct rk_bytes {
    uint8_t *data; /* malloc'd; NULL when len == 0 */
    size_t len;
};
void rk_bytes_free(struct rk_bytes *b);

/* The functions the fsm ops run (kv.h documents the ops), on an rk_kv handle. */
struct rk_kv;

int rk_kv_open(struct rk_db *db, const struct rk_kv_limits *limits, struct rk_kv **out);
void rk_kv_close(struct rk_kv *kv);

/* The last applied index, as stored (entries applied since are in the overlay); inside
 * rk_db_write (on its thread) as the batch left it so far. */
int rk_kv_applied_index(struct rk_kv *kv, raft_index *out);

/* Parses a packed kv.proto Request (the fsm's prepare, fsm.h): a get becomes a read (the
 * parsed request, freed by raftkv__kv__request__free_unpacked), a put, delete or cas a
 * proposal of the request's own bytes; one that breaks the limits is refused with the
 * limit named in why. Returns 0. */
int rk_kv_prepare(struct rk_kv *kv, const uint8_t *req, size_t len, struct raftkv_prepared *out);
/* The name of a request's operation, its field in Request's oneof ("put", "get"...), read
 * from the wire without unpacking; NULL when the bytes hold none. */
const char *rk_kv_request_name(const uint8_t *req, size_t len);

/* Applies one committed entry inside the current rk_db_write transaction: normal entries
 * carry a packed kv.proto Request; no-op and config entries only move the applied index. Its
 * writes go to the overlay, which is stored (rk_kv_persist, in the same transaction) once
 * between half and all of limits.persist_entries entries (drawn at random for each store)
 * were applied since it last was. An entry at or below the
 * applied index is skipped (nothing returned). Returns an rk_db_err (the
 * write fn can return it as is); on error nothing is returned in response/change.
 * *response gets the packed kv.proto Response for the proposing client (empty for no-ops);
 * *change gets a packed ChangeEvent when the entry changed a key (empty otherwise).
 * A malformed command is answered INVALID and applied as a no-op: every node does the same. */
int rk_kv_apply(struct rk_kv *kv, MDB_txn *txn, const struct raft_entry *e,
                struct rk_bytes *response, struct rk_bytes *change);

/* A batch's transaction ended (the fsm's batch_end): an aborted one's overlay changes are
 * undone from the undo log, so that the batch, run again, gives the same answers. */
void rk_kv_batch_end(struct rk_kv *kv, bool committed);

/* Stores the overlay's records and the applied index in txn (inside rk_db_write), and
 * empties the overlay. Returns an rk_db_err. */
int rk_kv_persist(struct rk_kv *kv, MDB_txn *txn);

struct rk_kv {
    struct raftkv_fsm base; /* first, so the fsm ops can cast */
    struct rk_db *db;
    MDB_dbi data;
    struct rk_kv_limits limits;
    struct rk_overlay ov;    /* applied writes not stored yet */
    uint64_t applied;        /* the last applied index: stored_applied + the overlay's */
    uint64_t stored_applied; /* the applied index stored with the data */
    uint64_t batch_stored;   /* stored_applied when the open batch began */
    uint64_t persist_after;  /* entries after stored_applied that make the next store */
    uint64_t rng;            /* xorshift64 state for persist_after */
};

/* A key's record as the store holds it, the overlay's first, else LMDB's (txn). */
struct rk_kv_record {
    bool found;
    uint64_t create;
    uint64_t mod;
    /* points into the map or the overlay: valid until the next write */
    ProtobufCBinaryData value;
};
int rk_kv_record_get(struct rk_kv *kv, MDB_txn *txn, const void *key, size_t key_len,
                     struct rk_kv_record *r);
/* Writes a record (or deletes key) in the overlay, as applied at index. */
int rk_kv_record_set(struct rk_kv *kv, raft_index index, const void *key, size_t key_len,
                     bool deleted, uint64_t create, const void *value, size_t value_len);

/* Answers a range read (kv.proto Range) as of the state applied so far, the overlay's and
 * txn's, with the packed Response in *out: at most limit keys (0 or more than
 * RK_KV_RANGE_MAX_KEYS: that many), cut before RK_KV_RANGE_MAX_BYTES, never a reserved key.
 * The overlay is walked whole (rk_overlay_range). Returns an rk_db_err. */
int rk_kv_range(struct rk_kv *kv, MDB_txn *txn, const Raftkv__Kv__Range *req, struct rk_bytes *out);

/* The fsm's snapshot and restore (kv.h documents both and the format). */
int rk_kv_snapshot(struct rk_kv *kv, raftkv_snapshot_emit_fn emit, void *arg, raft_index *index);
int rk_kv_restore(struct rk_kv *kv, MDB_txn *txn, raft_index index, raftkv_snapshot_read_fn read,
                  void *arg);

#endif
