/*
 * One LMDB environment per node, holding both the Raft log (lmdb_log.c) and the state
 * machine's data (src/kv/), so that a batch of work from the core (new entries, term/vote,
 * applied entries and their effects) commits in ONE durable transaction: group commit.
 */
#ifndef RAFTKV_DB_H
#define RAFTKV_DB_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "raftkv/raft.h"

enum rk_db_err {
    RK_DB_OK = 0,
    RK_DB_EIO = 1,       /* LMDB or filesystem error; message in rk_db_errmsg */
    RK_DB_EFULL = 2,     /* the map reached max_map_bytes: writes refused, reads still work */
    RK_DB_EIDENTITY = 3, /* data dir belongs to another cluster or node id */
    RK_DB_EFORMAT = 4,   /* data dir written by a newer on-disk format */
    RK_DB_ENOMEM = 5,
};

struct rk_db_options {
    const char *path;        /* data dir; created if missing */
    uint64_t cluster_id;     /* stamped on first open, checked on every later open */
    raft_id node_id;         /* likewise */
    size_t initial_map_bytes; /* default 64 MiB */
    size_t max_map_bytes;     /* default 8 GiB; the map doubles when full, up to this */
};

struct rk_db;

int rk_db_open(const struct rk_db_options *opts, struct rk_db **out);
/* On failure of rk_db_open *out is still set (or NULL on ENOMEM) so the message can be
 * read; rk_db_close it afterwards. */
const char *rk_db_errmsg(const struct rk_db *db);
void rk_db_close(struct rk_db *db);

MDB_env *rk_db_env(struct rk_db *db);

/* Runs fn inside one write transaction and commits it with fsync. If the map fills, the
 * transaction is aborted, the map grown and fn run again from scratch, so fn must only
 * write to the transaction (no side effects elsewhere). Returns RK_DB_EFULL when the map
 * cannot grow further. fn returns 0 or an rk_db_err. */
typedef int (*rk_db_write_fn)(MDB_txn *txn, void *arg);
int rk_db_write(struct rk_db *db, rk_db_write_fn fn, void *arg);

/* The write transaction of the rk_db_write in progress (NULL outside one). Modules that
 * write into the batch (the LMDB storage, the KV store) take it from here. */
MDB_txn *rk_db_current_txn(struct rk_db *db);

/* A read-only transaction; end with mdb_txn_abort. */
int rk_db_read_begin(struct rk_db *db, MDB_txn **txn);

struct rk_db_stats {
    size_t map_bytes;
    size_t used_bytes;
    uint64_t commits;
    uint64_t map_grows;
};
void rk_db_stats(struct rk_db *db, struct rk_db_stats *out);

/* LMDB-backed Raft storage (storage.h) in db's environment. */
int rk_lmdb_storage_new(struct rk_db *db, struct rk_storage **out);

#endif
