/*
 * Client sessions of the KV store: exactly-once writes (Raft dissertation §6.3, "Implementing
 * linearizable semantics"). A client registers a session through the log; the session's id
 * is the index of that entry. It numbers its writes and resends a retried write with the same
 * number; the store keeps the answer of each write it applied and answers a copy with the
 * first answer instead of applying it again.
 *
 * All session state lives in the store's own records, under keys that start with byte 0x00
 * (clients may not use them), so that the overlay, its undo on an aborted batch, the stored
 * state and snapshots carry it with the keys' state and no second copy can drift:
 *
 *   "\0s" session id (u64 BE)              the session: the lowest sequence whose answer is
 *                                          kept, its registration's nonce (u64 BE each);
 *                                          mod revision = last activity
 *   "\0n" nonce (u64 BE)                   the session the registration of nonce opened
 *   "\0a" session id, sequence (u64 BE)    the packed Response a write was first answered
 *
 * Expiry is decided by the log alone, never by a clock: registering a session when
 * limits.max_sessions exist removes the least recently active one (lowest mod revision). Both
 * bounds are the same on every node (the window is compiled in; kv.h on max_sessions), because
 * every node must apply the same entries the same way. A session keeps at most RK_KV_SESSION_WINDOW
 * answers: the client acknowledges the answers it has with first_incomplete, and a write beyond the
 * window is refused.
 */
#ifndef RAFTKV_KV_SESSION_H
#define RAFTKV_KV_SESSION_H

#include "kv.pb-c.h"
#include "kv/kv_private.h"

#define RK_KV_RESERVED_KEY_BYTE 0x00
#define RK_KV_SESSION_WINDOW 256

/* Applies a RegisterSession at index: answers a copy of a registration with the session
 * it opened; otherwise expires the least recently active session when there are too many,
 * then opens the session index. *session gets the session's id. */
int rk_kv_session_register(struct rk_kv *kv, MDB_txn *txn, raft_index index,
                           const Raftkv__Kv__RegisterSession *reg, uint64_t *session);

/* What a session's write at index gets before it runs. */
struct rk_kv_session_check {
    bool run;               /* apply it, then rk_kv_session_remember its answer */
    Raftkv__Kv__Code code;  /* !run: the answer's code when there is no cached one */
    char why[160];          /* !run: the answer's error text */
    struct rk_bytes cached; /* !run: the first answer, when it is a copy (malloc'd) */
};
int rk_kv_session_check(struct rk_kv *kv, MDB_txn *txn, const Raftkv__Kv__Request *req,
                        struct rk_kv_session_check *out);

/* Keeps the answer of a write that ran at index and moves the session's window. */
int rk_kv_session_remember(struct rk_kv *kv, MDB_txn *txn, raft_index index,
                           const Raftkv__Kv__Request *req, const struct rk_bytes *answer);

#endif
