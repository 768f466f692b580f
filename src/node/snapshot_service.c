/*
 * The snapshot service: when to take a snapshot of the state machine (a background thread
 * streams it into a file: snapshot_files.h), log compaction once it is kept, the chunks of
 * it that the core sends to followers, and a snapshot received from the leader.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"
#include "node/node_internal.h"
#include "storage/storage.h"

/* How long after a failed snapshot the next is tried. */
#define SNAPSHOT_RETRY_MS 5000
/* A new snapshot restarts every transfer of the old one (the node keeps only its latest):
 * while one is being sent (a chunk left within this time), the next waits, until the log
 * since the latest grows to SNAPSHOT_DEFER_FACTOR times the thresholds. So a follower
 * that needs longer than a snapshot interval to receive one still gets it. */
#define SNAPSHOT_SENDING_MS 1000
#define SNAPSHOT_DEFER_FACTOR 4
/* What an entry costs in the log beyond its data (key, term, type, LMDB node), for
 * snapshot_bytes. */
#define ENTRY_OVERHEAD 32

/* Bytes of the entries applied after index, as far as the core still holds them. */
static uint64_t applied_bytes_after(struct rk_node *n, raft_index index)
{
    uint64_t sum = 0;
    for (raft_index i = index + 1; i <= raft_applied_of(n->raft); i++) {
        const struct raft_entry *e = raft_entry_at(n->raft, i);
        sum += e ? e->len + ENTRY_OVERHEAD : 0;
    }
    return sum;
}

/* The point the next snapshot is measured from: the latest one, or the log start when
 * its file is missing. */
static raft_index snapshot_base(struct rk_node *n)
{
    raft_index start = raft_first_index_of(n->raft) - 1;
    return n->snapdir.latest.index > start ? n->snapdir.latest.index : start;
}

void snapshots__start_counting(struct rk_node *n)
{
    n->applied_bytes = applied_bytes_after(n, snapshot_base(n));
}

void snapshots__count_applied(struct rk_node *n, const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_committed; i++)
        n->applied_bytes += rd->committed[i].len + ENTRY_OVERHEAD;
}

/* ---- Taking a snapshot. ---- */

static void snapshot_done(void *arg)
{
    struct rk_node *n = arg;
    rk_queue_push(&n->queue, &n->job_event->item);
}

static void snapshot_retry_later(struct rk_node *n)
{
    n->snapshot_retry_at = node__now();
    node__add_ms(&n->snapshot_retry_at, SNAPSHOT_RETRY_MS);
}

/* Whether enough was applied since the latest snapshot (more while one is being sent). */
static bool snapshot_due(struct rk_node *n, raft_index applied, raft_index base)
{
    const struct rk_config *cfg = n->cfg;
    raft_index entries = applied > base ? applied - base : 0;
    unsigned factor = 1;
    struct timespec now = node__now(), sending_until = n->chunk_sent_at;
    node__add_ms(&sending_until, SNAPSHOT_SENDING_MS);
    if (!node__reached(&now, &sending_until))
        factor = SNAPSHOT_DEFER_FACTOR;
    return entries >= factor * cfg->snapshot_entries ||
           n->applied_bytes >= factor * (uint64_t)cfg->snapshot_bytes;
}

void snapshots__maybe_start(struct rk_node *n)
{
    raft_index applied = raft_applied_of(n->raft), base = snapshot_base(n);
    /* Without a file for the stored snapshot the node has nothing to send: take one. */
    bool missing = n->snapdir.latest.index == 0 && base > 0;
    struct timespec now = node__now();
    if (n->job_running || n->held || applied == 0 || !(missing || snapshot_due(n, applied, base)) ||
        !node__reached(&now, &n->snapshot_retry_at))
        return;
    /* The snapshot reads what is stored: all that was applied, once persisted. */
    if (ready__persist_fsm(n) != 0) {
        snapshot_retry_later(n);
        return;
    }
    /* Ready before the thread starts: it may end (and post it) at once. */
    n->job_event = calloc(1, sizeof *n->job_event);
    if (n->job_event)
        n->job_event->type = EV_SNAPSHOT_DONE;
    int rc = n->job_event ? rk_snap_produce_start(&n->snapdir, &n->job, n->fsm, snapshot_done, n)
                          : ENOMEM;
    if (rc != 0) {
        rk_error("cannot start a snapshot: %s", strerror(rc));
        free(n->job_event);
        n->job_event = NULL;
        snapshot_retry_later(n);
        return;
    }
    n->job_running = true;
    rk_debug("taking a snapshot: %" PRIu64 " entries, %" PRIu64 " bytes applied since %" PRIu64,
             applied - base, n->applied_bytes, base);
}

/* ---- Keeping it: log compaction. ---- */

struct compaction {
    struct rk_node *node;
    const struct raft_snapshot_meta *meta;
    const struct raft_configuration *conf;
    raft_index compact_to;
    raft_term compact_term;
};

static int compaction_write(MDB_txn *txn, void *arg)
{
    (void)txn;
    struct compaction *c = arg;
    struct rk_storage *s = c->node->storage;
    return s->ops->compact(s, c->meta, c->conf, c->compact_to, c->compact_term);
}

/* Records the snapshot at meta (published as fd) in storage, then in the core, deleting
 * the log up to it less the trailing margin. */
static int snapshot_compact(struct rk_node *n, const struct raft_snapshot_meta *meta, int fd)
{
    raft_index start = raft_first_index_of(n->raft) - 1;
    raft_index trailing = n->cfg->snapshot_trailing_entries;
    raft_index to = meta->index > start + trailing ? meta->index - trailing : start;
    /* Kept with the snapshot: a node restored from it, or sent it, knows the members. The
     * core holds meta->index (between its snapshot and its last entry, as finish checked). */
    struct compaction c = {n, meta, raft_configuration_at(n->raft, meta->index), to,
                           raft_term_at(n->raft, to)};
    int rc = rk_db_write(n->db, compaction_write, &c);
    if (rc != RK_DB_OK) {
        rk_error("cannot record the snapshot at index %" PRIu64 ": %s", meta->index,
                 rk_db_errmsg(n->db));
        if (rc != RK_DB_EFULL && rc != RK_DB_ENOMEM)
            n->fatal = RK_NODE_ESTORAGE;
        return rc;
    }
    rc = raft_compact(n->raft, meta, to);
    if (rc != RAFT_OK) {
        /* Storage is compacted already: the core and storage would disagree. */
        rk_error("the core refused the snapshot at index %" PRIu64 ": %s; stopping", meta->index,
                 raft_strerror(rc));
        n->fatal = RK_NODE_ERAFT;
        return rc;
    }
    rk_snap_adopt(&n->snapdir, meta, fd);
    n->applied_bytes = applied_bytes_after(n, meta->index);
    rk_info("log compacted up to index %" PRIu64 " (snapshot at %" PRIu64 ")", to, meta->index);
    return 0;
}

void snapshots__finish(struct rk_node *n)
{
    struct rk_snap_job *job = &n->job;
    rk_snap_produce_join(job);
    n->job_running = false;
    n->job_event = NULL; /* the loop frees the event */
    struct raft_snapshot_meta meta = {job->index, raft_term_at(n->raft, job->index), job->size};
    double secs = (double)job->elapsed_us / 1e6;
    if (job->rc != 0) {
        rk_error("snapshot failed: %s",
                 job->errno_failed ? strerror(job->rc) : n->fsm->ops->strerror(n->fsm, job->rc));
        rk_snap_discard(&n->snapdir, false, 0, -1);
        snapshot_retry_later(n);
        return;
    }
    /* Older than what was installed meanwhile, or the core cannot be called now. */
    if (meta.index <= n->snapdir.latest.index || meta.term == 0 || n->held) {
        rk_snap_discard(&n->snapdir, false, 0, -1);
        return;
    }
    rk_info("snapshot at index %" PRIu64 ": %" PRIu64 " bytes in %.3f s (%.1f MB/s)", meta.index,
            meta.size, secs, secs > 0 ? (double)meta.size / 1e6 / secs : 0.0);
    int fd;
    int rc = rk_snap_publish(&n->snapdir, false, meta.index, &fd);
    if (rc != 0)
        rk_error("cannot keep the snapshot at index %" PRIu64 ": %s", meta.index, strerror(rc));
    if (rc == 0)
        rc = snapshot_compact(n, &meta, fd);
    if (rc == 0) {
        n->snapshots_taken++;
        n->snapshot_taken_bytes += meta.size;
        metrics__observe(&n->metrics.snapshot_take, METRICS_SECONDS, secs);
    }
    if (rc != 0) {
        rk_snap_discard(&n->snapdir, false, fd >= 0 ? meta.index : 0, fd);
        snapshot_retry_later(n);
    }
}

/* ---- Sending it. ---- */

/* Before the first chunk of each transfer: a file damaged on this disk is not sent but
 * deleted, and a new snapshot taken in its place (snapshots__maybe_start, at once). */
static int check_before_sending(struct rk_node *n, raft_index index)
{
    char why[160];
    int rc = n->snapdir.latest.index == index
                 ? rk_snap_verify(n->snapdir.latest_fd, n->snapdir.latest.size, why, sizeof why)
                 : ENOENT;
    if (rc == EBADMSG) {
        n->snapshots_damaged++;
        rk_error("the snapshot file at index %" PRIu64 " is damaged (%s): deleted, not sent; "
                 "taking a new one",
                 index, why);
        rk_snap_forget_latest(&n->snapdir);
    }
    return rc;
}

int snapshots__fill_chunk(struct rk_node *n, struct raft_msg *m)
{
    struct raft_install_snapshot *s = &m->install_snapshot;
    int rc = s->offset == 0 ? check_before_sending(n, s->last_index) : 0;
    if (rc == 0 && !s->data && s->len > 0) {
        if (s->len > n->cfg->snapshot_chunk_bytes)
            return EINVAL;
        rc = rk_snap_read(&n->snapdir, s->last_index, s->offset, n->chunk_buf, s->len);
        s->data = n->chunk_buf;
    }
    if (rc == 0) {
        n->chunk_sent_at = node__now();
        n->snapshot_sent_bytes += s->len;
    }
    return rc;
}

/* ---- Receiving one from the leader. ---- */

int snapshots__receive(struct rk_node *n, const struct raft_ready *rd)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < rd->n_snapshot_chunks; i++) {
        if (rd->snapshot_chunks[i].offset == 0)
            n->receive_start = node__now();
        rc = rk_snap_write_chunk(&n->snapdir, &rd->snapshot_chunks[i]);
    }
    if (rc == 0 && rd->n_snapshot_chunks)
        rc = rk_snap_sync_incoming(&n->snapdir);
    if (rc == 0 && rd->install_snapshot)
        rc = rk_snap_publish(&n->snapdir, true, rd->snapshot.index, &n->install_fd);
    char why[160];
    int bad = rc == 0 && rd->install_snapshot
                  ? rk_snap_verify(n->install_fd, rd->snapshot.size, why, sizeof why)
                  : 0;
    if (bad == EBADMSG) {
        snapshots__refuse(n, rd->snapshot.index, why);
        return bad;
    }
    rc = rc ? rc : bad;
    if (rc != 0) {
        rk_error("cannot write the snapshot received from the leader in %s: %s; stopping",
                 n->snapdir.dir, strerror(rc));
        n->fatal = RK_NODE_ESTORAGE;
    }
    /* Room for the restored state (with LMDB's overhead) at once, rather than a restore
     * run again after each doubling of the map. A map that cannot grow enough fails the
     * write, which reports it. */
    if (rc == 0 && rd->install_snapshot)
        rk_db_reserve(n->db, rd->snapshot.size + rd->snapshot.size / 2);
    return rc;
}

/* Bytes off the network, forged or corrupted, must not stop the node. Nothing of the batch
 * that would have installed them was stored, so the core starts again from storage, as
 * after a crash before that write; the leader, which saw no acknowledgement, sends the
 * snapshot again from its first byte. */
void snapshots__refuse(struct rk_node *n, raft_index index, const char *why)
{
    n->snapshots_refused++;
    rk_error("refused the snapshot at index %" PRIu64 " received from node %" PRIu64
             ": %s; the leader will send it again (%" PRIu64 " refused so far)",
             index, raft_leader_of(n->raft), why, n->snapshots_refused);
    rk_snap_discard(&n->snapdir, true, index, n->install_fd);
    n->install_fd = -1;
    int rc = start__core_again(n);
    if (rc != RK_NODE_OK)
        n->fatal = rc;
}

void snapshots__installed(struct rk_node *n, const struct raft_ready *rd)
{
    rk_snap_adopt(&n->snapdir, &rd->snapshot, n->install_fd);
    n->install_fd = -1;
    n->applied_bytes = 0;
    struct timespec now = node__now();
    double total = (double)(now.tv_sec - n->receive_start.tv_sec) +
                   (double)(now.tv_nsec - n->receive_start.tv_nsec) / 1e9;
    double write = (double)n->write_us / 1e6;
    double mb = (double)rd->snapshot.size / 1e6;
    n->snapshot_installed_bytes += rd->snapshot.size;
    metrics__observe(&n->metrics.snapshot_install, METRICS_SECONDS, total);
    rk_info("installed the snapshot at index %" PRIu64 " (term %" PRIu64 ", %" PRIu64
            " bytes) from the leader: received and installed in %.3f s (%.1f MB/s), of which "
            "the install's write %.3f s (%.1f MB/s)",
            rd->snapshot.index, rd->snapshot.term, rd->snapshot.size, total,
            total > 0 ? mb / total : 0.0, write, write > 0 ? mb / write : 0.0);
}
