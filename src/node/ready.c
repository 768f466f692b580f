/*
 * The ready pipeline: what the node does with each batch of work from the core
 * (include/raftkv/raft.h), in this order:
 *
 *   1. send rd.msgs             the leader's appends may leave before its own write
 *                               (Raft dissertation §10.2.1)
 *   2. receive snapshot chunks  into their file, synced (snapshot_service.c)
 *   3. write                    one LMDB transaction: install a received snapshot, save
 *                               term/vote and entries, apply the committed entries
 *   4. answer                   the clients of the applied entries, before the fsync
 *   5. sync                     the transaction commits with fsync (group commit)
 *   6. finish                   send acknowledgements (rd.msgs_after_persist), publish
 *                               the changes, advance the core, serve confirmed reads
 *
 * Step 4 comes before 5 because the answers rest on the entries being committed, durable
 * on a majority, not on this transaction: a crash before it commits re-applies them from
 * the log, to the same results. A write that fills the map is held and retried, and the
 * core is not called meanwhile. A snapshot from the leader that the state machine finds
 * malformed is refused (snapshot_service.c). Any other failed write stops the node
 * (n->fatal), since acknowledging anything more could lose it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "node/node_internal.h"
#include "storage/storage.h"
#include "transport/transport.h"

/* How often a batch that hit a full map is retried. */
#define FULL_RETRY_MS 1000

/* The state machine's outputs for one ready, one per committed entry. */
struct batch {
    struct rk_node *node;
    const struct raft_ready *rd;
    struct raftkv_buf *results;
    struct raftkv_buf *events;
    int fsm_err; /* the state machine's error that ended the write, if any */
};

static void batch_reset(struct batch *b)
{
    for (size_t i = 0; i < b->rd->n_committed; i++) {
        free(b->results[i].data);
        free(b->events[i].data);
        b->results[i] = b->events[i] = (struct raftkv_buf){0};
    }
    b->fsm_err = 0;
}

/* Step 3. Runs inside rk_db_write, possibly more than once: it starts from empty outputs,
 * and a snapshot to install is read again from its first byte. The state machine is
 * restored first: the ready's entries come after the snapshot. */
static int batch_write(MDB_txn *txn, void *arg)
{
    (void)txn;
    struct batch *b = arg;
    struct rk_node *n = b->node;
    struct raftkv_fsm *fsm = n->fsm;
    batch_reset(b);
    int rc = 0;
    if (b->rd->install_snapshot) {
        struct rk_snap_reader reader = {n->install_fd, 0, b->rd->snapshot.size};
        b->fsm_err = rc = fsm->ops->restore(fsm, b->rd->snapshot.index, rk_snap_read_fn, &reader);
    }
    if (rc == 0)
        rc = n->storage->ops->save(n->storage, b->rd);
    for (size_t i = 0; rc == 0 && i < b->rd->n_committed; i++)
        b->fsm_err = rc = fsm->ops->apply(fsm, &b->rd->committed[i], &b->results[i], &b->events[i]);
    return rc;
}

/* Step 4: runs once per ready, after batch_write succeeded and before the sync. */
static void batch_answer(void *arg)
{
    struct batch *b = arg;
    for (size_t i = 0; i < b->rd->n_committed; i++)
        clients__settle(b->node, &b->rd->committed[i], &b->results[i]);
}

void ready__send(struct rk_node *n, const struct raft_msg *msgs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        struct raft_msg m = msgs[i];
        int rc = m.type == RAFT_MSG_INSTALL_SNAPSHOT ? snapshots__fill_chunk(n, &m) : 0;
        if (rc != 0) {
            /* The core resends what is not acknowledged. */
            rk_debug("cannot send snapshot %" PRIu64 " bytes %" PRIu64 "+%zu to %" PRIu64 ": %s",
                     m.install_snapshot.last_index, m.install_snapshot.offset,
                     m.install_snapshot.len, m.to, strerror(rc));
            continue;
        }
        rc = rk_transport_send(n->transport, &m);
        if (rc != 0)
            rk_debug("send %s to %llu failed (%d)", raft_msg_type_name(m.type),
                     (unsigned long long)m.to, rc);
    }
}

void ready__view_update(struct rk_node *n)
{
    struct view old = n->view;
    struct raft *r = n->raft;
    const struct raft_member *self =
        raft_configuration_find(raft_configuration_of(r, NULL), n->cfg->node_id);
    n->view = (struct view){raft_role_of(r),
                            raft_term_of(r),
                            raft_leader_of(r),
                            raft_commit_of(r),
                            raft_applied_of(r),
                            raft_last_index_of(r),
                            self && self->role == RAFT_LEARNER};
    rk_log_set_node(n->cfg->node_id, n->view.term, node__role_name(&n->view));
    if (old.role != n->view.role || old.term != n->view.term || old.learner != n->view.learner)
        rk_info("now %s in term %llu", node__role_name(&n->view), (unsigned long long)n->view.term);
    if (n->view.role != RAFT_LEADER)
        clients__fail_waiting(n, "leadership changed, retry", false);
    changes__leader(n);
}

/* Step 6: what follows a durable write of rd. */
static void ready_finish(struct rk_node *n, struct raft_ready *rd, struct batch *b)
{
    if (rd->install_snapshot)
        snapshots__installed(n, rd);
    ready__send(n, rd->msgs_after_persist, rd->n_msgs_after_persist);
    snapshots__count_applied(n, rd);
    changes__publish(n, b->events, rd->n_committed);
    rk_debug("batch: %zu entries, %zu committed, %zu+%zu msgs, written in %" PRIu64 " us",
             rd->n_entries, rd->n_committed, rd->n_msgs, rd->n_msgs_after_persist, n->write_us);
    clients__reads_confirm(n, rd);
    raft_advance(n->raft, rd);
    if (members__commit_moved(n) != RAFT_OK)
        rk_error("out of memory following the committed membership");
    ready__view_update(n);
    clients__reads_serve(n);
}

/* b: the batch that failed, if any (its state machine's error, or storage's). */
static const char *write_error(struct rk_node *n, const struct batch *b, int rc)
{
    return b && b->fsm_err == rc ? n->fsm->ops->strerror(n->fsm, rc) : rk_db_errmsg(n->db);
}

static void ready_hold(struct rk_node *n, struct raft_ready *rd, int rc)
{
    if (!n->held)
        rk_error("cannot persist a batch (%s): holding it, retrying every %d ms; raise "
                 "max_db_bytes and restart if this persists",
                 rc == RK_DB_EFULL ? "storage full" : "out of memory", FULL_RETRY_MS);
    n->held = true;
    n->held_rd = *rd;
    n->retry_at = node__now();
    node__add_ms(&n->retry_at, FULL_RETRY_MS);
    clients__fail_waiting(n, "storage full", true);
}

static void count_batch(struct rk_node *n, const struct raft_ready *rd)
{
    struct metrics *m = &n->metrics;
    metrics__observe(&m->batch_write, METRICS_SECONDS, (double)n->write_us / 1e6);
    metrics__observe(&m->db_commit, METRICS_SECONDS, (double)rk_db_last_commit_ns(n->db) / 1e9);
    metrics__observe(&m->batch_entries, METRICS_COUNT, (double)rd->n_entries);
    metrics__observe(&m->batch_msgs, METRICS_COUNT,
                     (double)(rd->n_msgs + rd->n_msgs_after_persist));
}

/* Steps 3-6 of rd. Returns false if rd is held back or failed. */
static bool ready_write(struct rk_node *n, struct raft_ready *rd)
{
    size_t k = rd->n_committed ? rd->n_committed : 1;
    struct batch b = {n, rd, calloc(k, sizeof(struct raftkv_buf)),
                      calloc(k, sizeof(struct raftkv_buf)), 0};
    char refused[256] = "";
    struct timespec start = node__now();
    int rc = b.results && b.events ? rk_db_write_staged(n->db, batch_write, batch_answer, &b)
                                   : RK_DB_ENOMEM;
    struct timespec end = node__now();
    n->write_us =
        (uint64_t)((end.tv_sec - start.tv_sec) * 1000000L + (end.tv_nsec - start.tv_nsec) / 1000L);
    if (rc == RK_DB_OK) {
        count_batch(n, rd);
        ready_finish(n, rd, &b);
        n->held = false;
    } else if (rc == RK_DB_EFULL || rc == RK_DB_ENOMEM) {
        ready_hold(n, rd, rc);
    } else if (rd->install_snapshot && b.fsm_err == rc && rc == RAFTKV_FSM_EBADSNAPSHOT) {
        snprintf(refused, sizeof refused, "%s", write_error(n, &b, rc));
    } else {
        rk_error("synced write%s failed: %s; stopping",
                 rd->install_snapshot ? " installing a snapshot" : "", write_error(n, &b, rc));
        n->fatal = RK_NODE_ESTORAGE;
    }
    if (b.results && b.events)
        batch_reset(&b);
    free(b.results);
    free(b.events);
    if (refused[0]) /* last: it replaces the core that rd belongs to */
        snapshots__refuse(n, rd->snapshot.index, refused);
    return rc == RK_DB_OK;
}

void ready__process(struct rk_node *n)
{
    if (n->held) {
        struct timespec now = node__now();
        if (!node__reached(&now, &n->retry_at) || !ready_write(n, &n->held_rd))
            return;
        rk_info("storage accepted the held batch again");
    }
    while (!n->fatal && raft_has_ready(n->raft)) {
        struct raft_ready rd;
        raft_ready(n->raft, &rd);
        if (rd.configuration_changed)
            members__changed(n, &rd);
        ready__send(n, rd.msgs, rd.n_msgs);
        if (snapshots__receive(n, &rd) != 0 || !ready_write(n, &rd))
            return;
    }
}

static int persist_write(MDB_txn *txn, void *arg)
{
    (void)txn;
    struct raftkv_fsm *fsm = arg;
    return fsm->ops->persist(fsm);
}

int ready__persist_fsm(struct rk_node *n)
{
    if (!n->fsm->ops->persist)
        return 0;
    int rc = rk_db_write(n->db, persist_write, n->fsm);
    if (rc != RK_DB_OK)
        rk_error("cannot store the state machine's applied state: %s", write_error(n, NULL, rc));
    return rc;
}
