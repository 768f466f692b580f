/*
 * A second raftkv_fsm (include/raftkv/fsm.h), proving the interface is not the KV store's:
 * a lifecycle with three states and one legal cycle,
 *
 *     init -> running -> stopped -> init
 *
 * It speaks its own protocol, in plain text, inside the node's envelope (client.proto): a
 * request is the name of the state asked for ("init", "running", "stopped"), proposed as
 * it is. Applied, a legal transition answers "OK <state> <index>" and publishes the event
 * "<state> <index>" under the topic "lifecycle/". Every other transition, an unknown name
 * or malformed bytes in an entry are answered "INVALID <current state>: <reason>" and
 * change nothing (the applied index still advances). prepare refuses unknown names;
 * whether a transition is legal is decided at apply, against the state then.
 *
 * The state lives in memory with the applied index, under a mutex, so snapshot (on another
 * thread) copies a consistent pair. Snapshot format: "LCY1", the state (one byte: 0 init,
 * 1 running, 2 stopped), the applied index (big-endian u64): 13 bytes.
 *
 * Limits of an in-memory machine, acceptable for a test one: it cannot roll back with a
 * failed node batch (the entries stay applied in memory, so a retried batch answers them
 * empty), and a restarted node must restore it from its latest snapshot and the log after it.
 * It lives in tests/ and shares nothing with the KV store.
 */
#ifndef RAFTKV_TESTS_LIFECYCLE_H
#define RAFTKV_TESTS_LIFECYCLE_H

#include "raftkv/fsm.h"

enum lifecycle_state {
    LIFECYCLE_INIT = 0,
    LIFECYCLE_RUNNING = 1,
    LIFECYCLE_STOPPED = 2,
};

/* Error codes of the lifecycle machine's ops. */
enum lifecycle_err {
    LIFECYCLE_OK = 0,
    LIFECYCLE_ENOMEM = 2,
    LIFECYCLE_ESNAPSHOT = RAFTKV_FSM_EBADSNAPSHOT, /* restore: not a lifecycle snapshot of that
                                                    * index */
    LIFECYCLE_ECALLBACK = 4, /* the snapshot's emit or restore's read function failed */
};

/* A new machine in state init with applied index 0. */
int lifecycle_fsm_new(struct raftkv_fsm **out);

const char *lifecycle_state_name(enum lifecycle_state s);

#endif
