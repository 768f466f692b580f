/*
 * The replicated state machine a raftkv node drives. The KV store (src/kv/) is one
 * implementation; anything that can apply entries deterministically, stream a snapshot of
 * itself and restore from one can be another.
 *
 * Threads: apply, persist, applied_index and restore are called from the node's event
 * loop, inside the node's batch (for machines that keep their state in the node's LMDB
 * environment, the batch is the write transaction of rk_db_write, so applying is atomic
 * with the log write).
 * snapshot is called from a background thread, concurrently with apply: it must capture a
 * consistent point-in-time view without blocking apply for long.
 *
 * Every function returns 0 or a positive error code of the implementation.
 */
#ifndef RAFTKV_FSM_H
#define RAFTKV_FSM_H

#include <stddef.h>
#include <stdint.h>

#include "raftkv/raft.h"

/* A heap buffer handed from the state machine to the node, which frees it. */
struct raftkv_buf {
    uint8_t *data; /* malloc'd; NULL when len == 0 */
    size_t len;
};

/* Receives a snapshot's bytes in order; returns 0 to go on. */
typedef int (*raftkv_snapshot_emit_fn)(void *arg, const void *data, size_t len);
/* Supplies a snapshot's bytes in order: fills up to cap bytes into buf, sets *n (0 at the
 * end); returns 0 or an error. */
typedef int (*raftkv_snapshot_read_fn)(void *arg, void *buf, size_t cap, size_t *n);

struct raftkv_fsm;

struct raftkv_fsm_ops {
    /* Checks a client request (a packed kv.proto ClientRequest) before it is proposed.
     * Returns 0 to propose it; otherwise fills *result with the answer for the client.
     * Only the node that receives the request checks it, so apply must not depend on it. */
    int (*validate)(struct raftkv_fsm *fsm, const uint8_t *request, size_t len,
                    struct raftkv_buf *result);
    /* Applies one committed entry (normal, no-op or configuration) and records index as
     * applied. *result is the answer for the client that proposed it (may be empty),
     * *event is published on the change stream when not empty. An entry the machine
     * cannot parse is answered with an error in *result and still applied: every node
     * must do the same. A non-zero return means the node could not apply it (e.g. storage
     * full) and will retry the whole batch. The batch also runs again when its transaction
     * aborts (the map grew): a machine that keeps applied state in memory must then undo
     * what the batch applied (the KV store does, through rk_db_on_end), so that the rerun
     * gives the same answers and events. Entries at or below the applied index are
     * ignored. */
    int (*apply)(struct raftkv_fsm *fsm, const struct raft_entry *entry, struct raftkv_buf *result,
                 struct raftkv_buf *event);
    /* Answers a read-only request (a packed ClientRequest the machine reads without
     * writing: for the KV store, a get) from the state applied so far, without the log.
     * The node calls it, outside any batch, once a ReadIndex round has confirmed that
     * the state covers every write acknowledged before the request arrived. NULL for a
     * machine whose requests all go through the log. */
    int (*query)(struct raftkv_fsm *fsm, const uint8_t *request, size_t len,
                 struct raftkv_buf *result);
    /* Stores, in the node's batch, whatever the machine applied but keeps in memory only
     * (the KV store keeps its latest writes in memory and stores them every so often: the
     * raft log holds them meanwhile). The node calls it before a snapshot, so that the
     * snapshot covers everything applied, and when it stops. NULL for a machine that
     * stores each apply at once or keeps all its state in memory. */
    int (*persist)(struct raftkv_fsm *fsm);
    /* The last applied index, as stored: a restart re-applies the entries after it. */
    int (*applied_index)(struct raftkv_fsm *fsm, raft_index *index);
    /* Streams the whole state, as of one applied index reported in *index, through emit. */
    int (*snapshot)(struct raftkv_fsm *fsm, raftkv_snapshot_emit_fn emit, void *arg,
                    raft_index *index);
    /* Replaces the whole state with a snapshot read through read, and sets the applied
     * index to index, atomically with the node's batch. */
    int (*restore)(struct raftkv_fsm *fsm, raft_index index, raftkv_snapshot_read_fn read,
                   void *arg);
    /* A short description of an error code returned above. */
    const char *(*strerror)(struct raftkv_fsm *fsm, int err);
    void (*close)(struct raftkv_fsm *fsm);
};

/* Implementations embed this as their first member. */
struct raftkv_fsm {
    const struct raftkv_fsm_ops *ops;
};

#endif /* RAFTKV_FSM_H */
