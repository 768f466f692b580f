/*
 * The KV store's write-behind overlay: keys written by applied entries and not yet stored
 * in LMDB. Committed entries are durable in the raft log, so the store does not have to
 * write each one's random B-tree pages at once: it keeps the latest record per key here
 * and stores them all together every so often (kv.c, rk_kv_persist), in key order, where
 * a batch of many keys shares the pages it writes.
 *
 * Changes are transactional with the node's LMDB batch: each change inside a batch is
 * logged, and rk_overlay_end undoes them when the batch's transaction aborts (rk_db_write
 * then runs the batch again from the start) or keeps them when it commits.
 *
 * One thread only: the node's event loop (applies, queries, and the end of each batch).
 */
#ifndef RAFTKV_KV_OVERLAY_H
#define RAFTKV_KV_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The latest state of one key: a value with its revisions, or deleted. */
struct rk_overlay_rec {
    bool deleted;
    uint64_t create;
    uint64_t mod;
    size_t key_len;
    size_t value_len;
    uint8_t *key;   /* points into the record's own allocation */
    uint8_t *value; /* likewise; NULL when value_len == 0 */
};

struct rk_overlay_undo;

struct rk_overlay {
    void *root;   /* tsearch tree of struct rk_overlay_rec *, by key */
    size_t count; /* keys in the tree */
    size_t bytes; /* their records' memory */
    /* The open batch's changes, oldest first; in_batch from its first change to its end. */
    struct rk_overlay_undo *undo;
    size_t n_undo;
    size_t cap_undo;
    bool in_batch;
    uint64_t batch_applied; /* *applied when the batch began, restored if it aborts */
};

/* The record of key, or NULL when the overlay does not hold the key. */
const struct rk_overlay_rec *rk_overlay_get(const struct rk_overlay *ov, const void *key,
                                            size_t key_len);

/* Marks the start of a change inside a batch: call before each change, with the applied
 * index the store had before it (only the first call of a batch keeps it). */
void rk_overlay_begin(struct rk_overlay *ov, uint64_t applied);

/* Sets key to value (deleted: the key is gone) with its revisions. Returns 0 or ENOMEM
 * (the overlay is unchanged then). */
int rk_overlay_set(struct rk_overlay *ov, const void *key, size_t key_len, bool deleted,
                   uint64_t create, uint64_t mod, const void *value, size_t value_len);

/* Calls fn on every record in ascending key order until fn returns non-zero; returns that
 * value or 0. */
int rk_overlay_each(const struct rk_overlay *ov,
                    int (*fn)(void *arg, const struct rk_overlay_rec *r), void *arg);
/* The same for the records with keys in [from, to) (to_len 0: no upper bound). It still
 * walks the whole tree, which tsearch cannot enter at a key: O(count). */
int rk_overlay_range(const struct rk_overlay *ov, const void *from, size_t from_len, const void *to,
                     size_t to_len, int (*fn)(void *arg, const struct rk_overlay_rec *r),
                     void *arg);

/* Empties the overlay (its records were stored, or a snapshot replaced the state).
 * Returns 0 or ENOMEM (the overlay is unchanged then). */
int rk_overlay_clear(struct rk_overlay *ov);

/* Ends the batch: keeps its changes if committed, else undoes them and restores *applied. */
void rk_overlay_end(struct rk_overlay *ov, bool committed, uint64_t *applied);

/* Frees everything. */
void rk_overlay_free(struct rk_overlay *ov);

#endif
