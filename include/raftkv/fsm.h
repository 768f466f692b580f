/*
 * The replicated state machine a raftkv node drives. The KV store (src/kv/) is one
 * implementation; anything that can apply entries deterministically, stream a snapshot of
 * itself and restore from one can be another (tests/lifecycle/ holds a second).
 *
 * The machine owns its protocol. A client's request reaches the node in an envelope
 * (proto/client.proto) whose payload is the machine's own bytes; the node hands them to
 * prepare, which parses them once and says what to do: propose an entry, serve a read, or
 * refuse. The entry's bytes come back to apply on every node; the answers of apply and
 * query go back to the client, as they are, in the envelope. The node never reads them.
 *
 * When the node calls what:
 *   prepare, query, read_free  on the leader, from the node's event loop, outside batches
 *   request_name               on any node, from the event loop, outside batches
 *   apply, persist, restore    from the event loop, inside one of the node's batches: a
 *                              transaction of the node's LMDB environment that commits
 *                              with fsync after the batch (a machine keeping its data in
 *                              that environment writes atomically with the raft log)
 *   applied_index              at start
 *   snapshot                   from a background thread, concurrently with apply: it must
 *                              capture a consistent point-in-time view without blocking
 *                              apply for long
 *
 * A batch may fail after apply ran (the map filled: the batch runs again at once in a
 * bigger map, or is held and run again later, from its first entry). The node tells the
 * machine how each batch ended (batch_end): one that keeps applied state in memory undoes
 * what an aborted batch applied, so that the rerun gives the same answers and events (the
 * KV store does this with its overlay).
 *
 * Every function returns 0 or a positive error code of the implementation (strerror
 * describes it). One code is shared: restore returns RAFTKV_FSM_EBADSNAPSHOT when the
 * stream is not a valid snapshot of that index (truncated, corrupt, forged). The node then
 * refuses the snapshot and lives on; any other error of restore stops it.
 */
#ifndef RAFTKV_FSM_H
#define RAFTKV_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftkv/raft.h"

#define RAFTKV_FSM_EBADSNAPSHOT 1000

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

/* What the node does with a client request, as prepare decides. */
enum raftkv_prepare_kind {
    /* Append an entry to the log: entry's bytes, or, when entry is empty, the request's
     * own bytes. The client gets apply's answer once the entry commits. */
    RAFTKV_PREPARE_PROPOSE,
    /* A read: once a ReadIndex round (Raft dissertation §6.4) has confirmed that the
     * applied state covers every write acknowledged before the request arrived, the node
     * calls query(read), then read_free(read). */
    RAFTKV_PREPARE_READ,
    /* Refuse at once: the client gets INVALID with why. */
    RAFTKV_PREPARE_REFUSE,
};

struct raftkv_prepared {
    enum raftkv_prepare_kind kind;
    struct raftkv_buf entry; /* PROPOSE */
    void *read;              /* READ: the machine's parsed request */
    char why[192];           /* REFUSE */
};

struct raftkv_fsm;

struct raftkv_fsm_ops {
    /* Parses a client request (the payload of the envelope) and fills *out. Runs on the
     * leader only: apply must not depend on anything prepare checked (a machine configured
     * with other limits elsewhere still applies what the others apply). */
    int (*prepare)(struct raftkv_fsm *fsm, const uint8_t *request, size_t len,
                   struct raftkv_prepared *out);
    /* Answers a read prepared by prepare from the state applied so far. NULL for a machine
     * that never prepares reads. */
    int (*query)(struct raftkv_fsm *fsm, void *read, struct raftkv_buf *result);
    /* Frees a read prepared by prepare, answered or not. */
    void (*read_free)(struct raftkv_fsm *fsm, void *read);
    /* Applies one committed entry (normal, no-op or configuration) and records index as
     * applied. *result is the answer for the client that proposed it (may be empty for
     * entries no client waits on), *event is published on the change stream under
     * event_topic when not empty. An entry the machine cannot parse is answered with an
     * error in *result and still applied: every node must do the same. A non-zero return
     * means the node could not apply it (e.g. storage full) and will retry the whole
     * batch. Entries at or below the applied index are ignored. */
    int (*apply)(struct raftkv_fsm *fsm, const struct raft_entry *entry, struct raftkv_buf *result,
                 struct raftkv_buf *event);
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
     * index to index, atomically with the node's batch. Like apply it may run again if the
     * batch fails: read then starts again from the first byte. */
    int (*restore)(struct raftkv_fsm *fsm, raft_index index, raftkv_snapshot_read_fn read,
                   void *arg);
    /* Called after each batch, from the event loop: committed, or aborted (everything
     * apply, persist and restore did in it is gone from the node's storage, and the batch
     * will run again). NULL for a machine that keeps nothing of a batch in memory, or that
     * accepts answering a rerun differently. */
    void (*batch_end)(struct raftkv_fsm *fsm, bool committed);
    /* Names the kind of a client request (the envelope's payload) for the node's metrics,
     * e.g. "put": a short snake_case name that lives as long as the machine, or NULL when
     * it cannot tell. Runs on any node, from the event loop, for every request: it should
     * not parse more than it needs. NULL: every request of the machine is "unknown". */
    const char *(*request_name)(struct raftkv_fsm *fsm, const uint8_t *request, size_t len);
    /* A short description of an error code returned above. */
    const char *(*strerror)(struct raftkv_fsm *fsm, int err);
    void (*close)(struct raftkv_fsm *fsm);
    /* The change stream's topic for this machine's events, e.g. "kv/"; NULL: its events are
     * not published. */
    const char *event_topic;
};

/* Implementations embed this as their first member. */
struct raftkv_fsm {
    const struct raftkv_fsm_ops *ops;
};

#endif /* RAFTKV_FSM_H */
