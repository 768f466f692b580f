/*
 * A second raftkv_fsm (include/raftkv/fsm.h), proving the interface is not the KV store's:
 * a lifecycle with three states and one legal cycle,
 *
 *     init -> running -> stopped -> init
 *
 * A client asks for a state with kv.proto ClientRequest.custom = its name ("init",
 * "running", "stopped"); the node proposes it as Command.custom. Applied, a legal transition
 * answers OK with value = the new state's name and revision = the entry's index, and
 * publishes a ChangeEvent (PUT, key "state", value the new state). Every other transition,
 * an unknown name, another op or a malformed command is answered INVALID with error = the
 * reason and value = the current state's name, and changes nothing (the applied index still
 * advances). validate rejects unknown names and ops other than custom and status; whether a
 * transition is legal is decided at apply, against the state then.
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
    LIFECYCLE_EINVALID = 1, /* validate rejected the request (the answer is in *result) */
    LIFECYCLE_ENOMEM = 2,
    LIFECYCLE_ESNAPSHOT = 3, /* restore: not a lifecycle snapshot of that index */
    LIFECYCLE_ECALLBACK = 4, /* the snapshot's emit or restore's read function failed */
};

/* A new machine in state init with applied index 0. */
int lifecycle_fsm_new(struct raftkv_fsm **out);

const char *lifecycle_state_name(enum lifecycle_state s);

#endif
