/*
 * One LMDB environment per node, holding both the Raft log (lmdb_log.c) and the state
 * machine's data (src/kv/), so that a batch of work from the core (new entries, term/vote,
 * applied entries and their effects) commits in ONE durable transaction: group commit.
 */
#ifndef RAFTKV_DB_H
#define RAFTKV_DB_H

#include <lmdb.h>
#include <stdbool.h>
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
    RK_DB_ECORRUPT = 6, /* stored data is inconsistent or lost (a gap in the log, a record that
                         * fails its checksum, a data.mdb missing or cut short) */
    RK_DB_ELOCKED = 7,  /* another process has the data dir open */
};

struct rk_db_options {
    const char *path;         /* data dir; created if missing */
    uint64_t cluster_id;      /* stamped on first open, checked on every later open */
    raft_id node_id;          /* likewise */
    size_t initial_map_bytes; /* default 64 MiB; a reopened env keeps the size it grew to */
    size_t max_map_bytes;     /* default below; the map doubles when full, up to this */
};
#define RK_DB_DEFAULT_MAX_MAP_BYTES ((size_t)8 << 30)

struct rk_db;
struct rk_storage;

/* Opens the data dir for this process alone (RK_DB_ELOCKED while another holds it), and
 * checks that it cannot lie. The first open writes a node marker, RK_DB_MARKER_FILE, beside
 * the LMDB files; once it is there, a data.mdb that is missing, empty or shorter than its own
 * meta pages say is refused (RK_DB_ECORRUPT) instead of starting afresh or reading past its
 * end, and a marker of another cluster or node id is refused (RK_DB_EIDENTITY). */
int rk_db_open(const struct rk_db_options *opts, struct rk_db **out);
#define RK_DB_MARKER_FILE "raftkv-node"
#define RK_DB_LOCK_FILE "raftkv.lock"
/* What rk_db_open found: a new dir, a marked one, or data without a marker (a dir of a build
 * before markers, or one that crashed before marking it), which it accepted and marked. */
enum rk_db_dir_state { RK_DB_DIR_NEW, RK_DB_DIR_MARKED, RK_DB_DIR_UNMARKED };
enum rk_db_dir_state rk_db_dir_state(const struct rk_db *db);
/* On failure of rk_db_open *out is still set (or NULL on ENOMEM) so the message can be
 * read; rk_db_close it afterwards. */
const char *rk_db_errmsg(const struct rk_db *db);
/* A short, static description of an rk_db_err (rk_db_errmsg has the details). */
const char *rk_db_strerror(int err);
void rk_db_close(struct rk_db *db);

MDB_env *rk_db_env(struct rk_db *db);

/* LMDB's largest key (mdb_env_get_maxkeysize, fixed when LMDB is built), without a db. */
size_t rk_db_max_key_bytes(void);

/* Opens (creating if missing) the named database `name` in the environment, for modules
 * that keep their own data (the log, the KV store). Handles stay valid until rk_db_close.
 * Call at setup, never inside rk_db_write. */
int rk_db_dbi(struct rk_db *db, const char *name, MDB_dbi *out);

/* Runs fn inside one write transaction and commits it with fsync. If the map fills, the
 * transaction is aborted, the map grown and fn run again from scratch, so fn must only
 * write to the transaction (no side effects elsewhere, or undone by rk_db_on_end). Returns
 * RK_DB_EFULL when the map cannot grow further. fn returns 0 or an rk_db_err: RK_DB_EFULL from fn
 * means "the map filled" (rk_db_check maps MDB_MAP_FULL to it), any other error aborts and is
 * returned. Calls must not overlap (one writer thread), and a thread must not hold a read
 * transaction across rk_db_write (growing the map waits for every reader to end). */
typedef int (*rk_db_write_fn)(MDB_txn *txn, void *arg);
int rk_db_write(struct rk_db *db, rk_db_write_fn fn, void *arg);

/* rk_db_write with one more step: once fn has succeeded, before_sync(arg) runs before the
 * transaction commits with fsync, at most once per call (fn may still run again if the
 * commit fills the map). For work that may go out before the write is durable because it
 * does not depend on it: the node answers the clients of committed entries there, whose
 * results rest on the entries being durable on a majority, not on this transaction.
 * before_sync must not write to the transaction. */
typedef void (*rk_db_stage_fn)(void *arg);
int rk_db_write_staged(struct rk_db *db, rk_db_write_fn fn, rk_db_stage_fn before_sync, void *arg);

/* Grows the map as rk_db_write would (doubling, up to max_map_bytes) until bytes more than
 * are in use fit, so that one large write (restoring a snapshot of known size) fills no map
 * on the way and is not run again after each doubling. Call outside rk_db_write, on its
 * thread; like a growing rk_db_write, it waits for open read transactions to end. Returns
 * RK_DB_EFULL (map grown to the maximum) when they cannot fit. */
int rk_db_reserve(struct rk_db *db, size_t bytes);

/* Tells fn(arg, committed) when each transaction of rk_db_write ends, committed or
 * aborted (fn is then run again, or the error returned). For a module that keeps the
 * effects of a batch in memory too (the KV store's overlay): it undoes them on an abort.
 * One listener; call at setup. */
void rk_db_on_end(struct rk_db *db, void (*fn)(void *arg, bool committed), void *arg);

/* The write transaction of the rk_db_write in progress (NULL outside one). Modules that
 * write into the batch (the LMDB storage, the KV store) take it from here. */
MDB_txn *rk_db_current_txn(struct rk_db *db);

/* A read-only transaction; end it with rk_db_read_end (not mdb_txn_abort): growing the
 * map remaps the file, which LMDB allows only while no transaction is open. A long read
 * (a state machine snapshot on a background thread) never blocks writers (LMDB MVCC),
 * except that an rk_db_write whose map must grow waits, inside rk_db_write, until that
 * read ends. So a thread holding a read transaction must never wait for the writer thread,
 * or the two deadlock once the map fills. While a read is open, LMDB cannot reuse the
 * pages freed since it began: the file grows by what is written meanwhile. LMDB ties a
 * read transaction to its thread: one per thread, and not while that thread writes. */
int rk_db_read_begin(struct rk_db *db, MDB_txn **txn);
void rk_db_read_end(struct rk_db *db, MDB_txn *txn);

/* Small records in the "meta" database: n uint64 values under a name, stored big-endian.
 * get fills vals with zeros when the record is absent (*found, if not NULL, says which)
 * and returns RK_DB_ECORRUPT when its size is not n values. */
int rk_db_meta_get(struct rk_db *db, MDB_txn *txn, const char *name, uint64_t *vals, size_t n,
                   bool *found);
int rk_db_meta_put(struct rk_db *db, MDB_txn *txn, const char *name, const uint64_t *vals,
                   size_t n);
/* A meta record of any bytes: get allocates *buf (NULL and *len 0 when absent). */
int rk_db_meta_get_bytes(struct rk_db *db, MDB_txn *txn, const char *name, uint8_t **buf,
                         size_t *len);
int rk_db_meta_put_bytes(struct rk_db *db, MDB_txn *txn, const char *name, const uint8_t *buf,
                         size_t len);

/* Error helpers for code working in db's transactions: rk_db_check maps an LMDB return
 * code to an rk_db_err (MDB_MAP_FULL -> RK_DB_EFULL, so rk_db_write grows the map) and
 * records "what: reason" as the message (a full disk says "disk full"); rk_db_fail records a
 * formatted message and returns code. Both return 0 for success. */
int rk_db_check(struct rk_db *db, int mdb_rc, const char *what);
int rk_db_fail(struct rk_db *db, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Big-endian uint64 keys sort in index order under LMDB's default memcmp comparison. */
static inline void rk_db_encode_u64(uint8_t *out, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}
static inline uint64_t rk_db_decode_u64(const uint8_t *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | in[i];
    return v;
}

struct rk_db_stats {
    size_t map_bytes;
    size_t used_bytes;
    uint64_t commits;
    uint64_t map_grows;
};
void rk_db_stats(struct rk_db *db, struct rk_db_stats *out);
/* How long the last successful commit of a write took, in ns: mdb_txn_commit, which writes
 * the dirty pages, fsyncs them, writes the meta page and fsyncs again. */
uint64_t rk_db_last_commit_ns(struct rk_db *db);

/* LMDB-backed Raft storage (storage.h) in db's environment: entries in the "log" database,
 * term/vote, the log's starting point and the latest snapshot's meta in "meta" (set by a
 * ready's install_snapshot, which also clears the log, and by compact; the state machine
 * side of a snapshot is the host's). save and compact must run inside rk_db_write (they
 * write into rk_db_current_txn) and, like load, return rk_db_err codes, so the host's write
 * fn can return their result as is. compact only moves the log start and the snapshot meta
 * forward (an older one is ignored) and refuses (RK_DB_ECORRUPT) a compact_to past
 * meta->index or whose stored entry has another term than compact_term. Call at setup,
 * never inside rk_db_write. */
int rk_lmdb_storage_new(struct rk_db *db, struct rk_storage **out);

#endif
