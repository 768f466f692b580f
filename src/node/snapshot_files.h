/*
 * A node's snapshot files, in <data_dir>/snapshots:
 *   <index>.snap   the latest snapshot: the one the stored snapshot meta names. The node
 *                  serves InstallSnapshot chunks from it; older ones are deleted.
 *   local.tmp      a snapshot this node is producing (background thread)
 *   incoming.tmp   a snapshot being received from the leader
 * Every file is fsync'd before it is renamed, and the directory after, so a name that
 * exists after a crash has all its bytes. Temp files and snapshots other than the stored
 * one are left-overs of a crash and deleted at start.
 *
 * A file is the state machine's stream followed by the node's trailer of
 * RK_SNAP_TRAILER_BYTES: magic "RKSC", the CRC-32C of the stream (u32), and the stream's
 * length (u64), big-endian. The trailer travels with the file: the leader checks it before
 * it sends a file and the follower before it installs one, so bytes damaged on a disk or
 * on the way are caught whatever the state machine checks itself.
 *
 * All functions are called from the node's event loop, except what the producer thread
 * does inside rk_snap_produce_start.
 */
#ifndef RAFTKV_NODE_SNAPSHOT_FILES_H
#define RAFTKV_NODE_SNAPSHOT_FILES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "raftkv/fsm.h"
#include "raftkv/raft.h"

struct rk_snapdir {
    char *dir;
    struct raft_snapshot_meta latest; /* index 0: no snapshot file to serve */
    int latest_fd;
    int incoming_fd; /* -1 when none is being received */
    raft_index incoming_index;
};

/* Creates the directory, removes left-overs and opens the file of stored (the snapshot
 * meta storage holds). A missing or short file is logged as an error and leaves
 * latest.index 0: the node then has no snapshot to send until it takes a new one.
 * Returns 0 or an errno. */
int rk_snap_open_dir(const char *data_dir, const struct raft_snapshot_meta *stored,
                     struct rk_snapdir *sd);
void rk_snap_close_dir(struct rk_snapdir *sd);

/* Reads bytes [offset, offset + len) of the latest snapshot, which must be the one at
 * index. Returns 0, ENOENT if the latest is another one (or none), or an errno. */
int rk_snap_read(struct rk_snapdir *sd, raft_index index, uint64_t offset, void *buf, size_t len);

/* Writes a received chunk into incoming.tmp (offset 0 starts it over). */
int rk_snap_write_chunk(struct rk_snapdir *sd, const struct raft_snapshot_chunk *c);
/* Makes what was written durable: the acknowledgement of chunks waits for it. */
int rk_snap_sync_incoming(struct rk_snapdir *sd);

/* Renames a finished temp file (local.tmp or incoming.tmp, fsync'd) to <index>.snap and
 * syncs the directory; *fd is the new file opened for reading. The stored meta does not
 * name it yet: until rk_snap_adopt, a crash leaves it a left-over. */
int rk_snap_publish(struct rk_snapdir *sd, bool incoming, raft_index index, int *fd);
/* The published file at meta (fd from rk_snap_publish) is now the stored one: it becomes
 * the latest, older files are deleted. */
void rk_snap_adopt(struct rk_snapdir *sd, const struct raft_snapshot_meta *meta, int fd);
/* Deletes a temp file or a published file that will not be adopted (fd closed). */
void rk_snap_discard(struct rk_snapdir *sd, bool incoming, raft_index index, int fd);
/* Deletes the latest file (found damaged): the node has no snapshot to send until it
 * takes a new one, as when the file is missing at start. */
void rk_snap_forget_latest(struct rk_snapdir *sd);

#define RK_SNAP_TRAILER_BYTES 16

/* Checks the trailer of the size-byte file fd against its stream. Returns 0, EBADMSG
 * (why says what is wrong), or an errno. Reads the whole file. */
int rk_snap_verify(int fd, uint64_t size, char *why, size_t why_len);

/* A raftkv_snapshot_read_fn over the stream of a snapshot file of size bytes, from
 * offset 0. */
struct rk_snap_reader {
    int fd;
    uint64_t offset;
    uint64_t size; /* the file's; the stream ends RK_SNAP_TRAILER_BYTES before */
};
int rk_snap_read_fn(void *arg, void *buf, size_t cap, size_t *n);

/* The producer: a background thread that streams fsm->ops->snapshot into local.tmp. */
struct rk_snap_job {
    pthread_t thread;
    struct raftkv_fsm *fsm;
    int fd;
    atomic_bool cancel; /* set to make the snapshot end early (shutdown) */
    uint8_t *buf;
    size_t buf_len;
    /* Results, read by the loop once done was called. */
    int rc; /* 0, an fsm error, or an errno of the file (errno_failed) */
    bool errno_failed;
    raft_index index;
    uint64_t size;
    uint32_t crc; /* of the stream so far */
    uint64_t elapsed_us;
    void (*done)(void *arg); /* called on the job's thread as its last act */
    void *done_arg;
};

/* Starts the thread. Returns 0 or an errno (nothing started). */
int rk_snap_produce_start(struct rk_snapdir *sd, struct rk_snap_job *job, struct raftkv_fsm *fsm,
                          void (*done)(void *arg), void *done_arg);
/* Waits for the thread (after done, or after setting cancel) and frees its resources. */
void rk_snap_produce_join(struct rk_snap_job *job);

#endif
