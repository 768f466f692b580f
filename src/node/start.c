/*
 * Start-up and shut-down: the data dir and the state machine in it, the core restored from
 * storage (and the state machine caught up with the latest snapshot), then the sockets;
 * and the same in reverse.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"
#include "node/gateway.h"
#include "node/node_internal.h"
#include "raftkv/client.h"
#include "storage/storage.h"
#include "transport/http_server.h"
#include "transport/transport.h"

/* xorshift64*: election timeouts only need to differ between nodes, not be secret. */
static uint32_t node_random(void *arg, uint32_t bound)
{
    struct rk_node *n = arg;
    n->rng ^= n->rng >> 12;
    n->rng ^= n->rng << 25;
    n->rng ^= n->rng >> 27;
    return bound ? (uint32_t)((n->rng * 0x2545F4914F6CDD1DULL) >> 32) % bound : 0;
}

/* The node's batches are rk_db_write transactions: their end is the machine's. */
static void fsm_batch_end(void *arg, bool committed)
{
    struct raftkv_fsm *fsm = arg;
    fsm->ops->batch_end(fsm, committed);
}

/* What only the operator can resolve: another process has the dir, or its data is lost,
 * damaged or of another format. (A dir of another cluster or node stays RK_NODE_EDB, a
 * runtime failure, as tests/cluster's bad_config has it.) */
static bool db_refused(int rc)
{
    return rc == RK_DB_ELOCKED || rc == RK_DB_ECORRUPT || rc == RK_DB_EFORMAT ||
           rc == RK_DB_EIDENTITY;
}

static int open_db(struct rk_node *n, rk_node_fsm_open_fn open_fsm, void *arg)
{
    const struct rk_config *cfg = n->cfg;
    struct rk_db_options opts = {
        .path = cfg->data_dir,
        .cluster_id = cfg->cluster_id,
        .node_id = cfg->node_id,
        .initial_map_bytes = cfg->max_db_bytes < (64u << 20) ? cfg->max_db_bytes : 64u << 20,
        .max_map_bytes = cfg->max_db_bytes,
    };
    int rc = rk_db_open(&opts, &n->db);
    if (rc != RK_DB_OK) {
        rk_error("cannot open data dir %s: %s", cfg->data_dir,
                 n->db ? rk_db_errmsg(n->db) : "out of memory");
        return db_refused(rc) ? RK_NODE_EDATADIR : RK_NODE_EDB;
    }
    if (rk_db_dir_state(n->db) == RK_DB_DIR_UNMARKED)
        rk_info("data dir %s held data but no %s (made by an older raftkv, or before a crash): "
                "marked it as node %" PRIu64 " of cluster %" PRIu64,
                cfg->data_dir, RK_DB_MARKER_FILE, (uint64_t)cfg->node_id, cfg->cluster_id);
    if (rk_lmdb_storage_new(n->db, &n->storage) != 0) {
        rk_error("cannot open the raft log in %s: %s", cfg->data_dir, rk_db_errmsg(n->db));
        return RK_NODE_ESTORAGE;
    }
    if (open_fsm(n->db, cfg, arg, &n->fsm) != 0)
        return RK_NODE_ESTORAGE;
    if (n->fsm->ops->batch_end)
        rk_db_on_end(n->db, fsm_batch_end, n->fsm);
    return RK_NODE_OK;
}

static void raft_config_fill(struct rk_node *n, struct raft_config *rc,
                             const struct raft_configuration *bootstrap)
{
    const struct rk_config *cfg = n->cfg;
    raft_config_defaults(rc);
    rc->id = cfg->node_id;
    rc->bootstrap = *bootstrap;
    rc->election_ticks_min = rk_config_ticks(cfg->election_timeout_min_ms);
    rc->election_ticks_max = rk_config_ticks(cfg->election_timeout_max_ms);
    rc->heartbeat_ticks = rk_config_ticks(cfg->heartbeat_interval_ms);
    rc->max_entries_per_msg = cfg->max_append_entries;
    rc->max_bytes_per_msg = cfg->max_append_bytes;
    rc->max_inflight_msgs = cfg->max_inflight;
    rc->max_entry_bytes = n->max_request_bytes;
    rc->snapshot_chunk_bytes = cfg->snapshot_chunk_bytes;
    rc->max_inflight_chunks = cfg->snapshot_max_inflight_chunks;
    rc->promote_max_lag = cfg->promote_max_lag;
    rc->random = node_random;
    rc->random_arg = n;
}

struct fsm_restore {
    struct raftkv_fsm *fsm;
    raft_index index;
    int fd;
    uint64_t size;
};

static int fsm_restore_write(MDB_txn *txn, void *arg)
{
    (void)txn;
    struct fsm_restore *fr = arg;
    struct rk_snap_reader reader = {fr->fd, 0, fr->size};
    return fr->fsm->ops->restore(fr->fsm, fr->index, rk_snap_read_fn, &reader);
}

/* A state machine behind the latest snapshot (one kept in memory starts empty) is restored
 * from it: the log before it may be gone. */
static int fsm_catch_up(struct rk_node *n, struct raft_restore *restore)
{
    const struct raft_snapshot_meta *snap = &restore->snapshot;
    if (restore->applied >= snap->index)
        return RK_NODE_OK;
    if (n->snapdir.latest.index != snap->index) {
        if (restore->applied >= restore->snapshot_index)
            return RK_NODE_OK; /* the log still holds what it misses */
        rk_error("the state machine applied %" PRIu64 " but the log starts after %" PRIu64
                 " and the snapshot file is missing: wipe the data dir to rejoin",
                 restore->applied, restore->snapshot_index);
        return RK_NODE_ESTORAGE;
    }
    char why[160];
    int rc = rk_snap_verify(n->snapdir.latest_fd, n->snapdir.latest.size, why, sizeof why);
    if (rc != 0) {
        rk_error("the snapshot file at index %" PRIu64 " in %s is damaged (%s) and the state "
                 "machine needs it: restore the data dir from a backup, or wipe it and add the "
                 "node back through a membership change",
                 snap->index, n->snapdir.dir, rc == EBADMSG ? why : strerror(rc));
        return RK_NODE_EDATADIR;
    }
    struct fsm_restore fr = {n->fsm, snap->index, n->snapdir.latest_fd, n->snapdir.latest.size};
    rc = rk_db_write(n->db, fsm_restore_write, &fr);
    if (rc != 0) {
        rk_error("cannot restore the state machine from the snapshot at %" PRIu64 ": %s",
                 snap->index, n->fsm->ops->strerror(n->fsm, rc));
        return RK_NODE_ESTORAGE;
    }
    rk_info("state machine restored from the snapshot at index %" PRIu64, snap->index);
    restore->applied = snap->index;
    return RK_NODE_OK;
}

/* Creates the core from restore, which it frees. */
static int core_new(struct rk_node *n, struct raft_restore *restore)
{
    struct raft_configuration bootstrap;
    struct raft_config rcfg;
    int rc = members__bootstrap(n, &bootstrap);
    if (rc == RAFT_OK) {
        raft_config_fill(n, &rcfg, &bootstrap);
        rc = raft_new(&rcfg, restore, &n->raft);
    }
    free(bootstrap.members);
    rk_storage_restore_free(restore);
    if (rc != RAFT_OK) {
        n->raft = NULL;
        rk_error("cannot start the raft core: %s", raft_strerror(rc));
        return RK_NODE_ERAFT;
    }
    return RK_NODE_OK;
}

int start__core_again(struct rk_node *n)
{
    struct raft_stats stats;
    struct raft_restore restore;
    raft_stats_of(n->raft, &stats);
    raft_free(n->raft);
    n->raft = NULL;
    int rc = n->storage->ops->load(n->storage, &restore);
    if (rc != 0) {
        rk_error("cannot read the raft log: %s", rk_db_errmsg(n->db));
        return RK_NODE_ESTORAGE;
    }
    rc = n->fsm->ops->applied_index(n->fsm, &restore.applied);
    if (rc != 0) {
        rk_storage_restore_free(&restore);
        rk_error("cannot read the applied index: %s", n->fsm->ops->strerror(n->fsm, rc));
        return RK_NODE_ESTORAGE;
    }
    restore.snapshot = n->snapdir.latest;
    restore.stats = &stats;
    rc = core_new(n, &restore);
    if (rc == RK_NODE_OK)
        ready__view_update(n);
    return rc;
}

static int start_raft(struct rk_node *n)
{
    struct raft_restore restore;
    int rc = n->storage->ops->load(n->storage, &restore);
    if (rc != 0) {
        rk_error("cannot read the raft log in %s: %s", n->cfg->data_dir, rk_db_errmsg(n->db));
        return db_refused(rc) ? RK_NODE_EDATADIR : RK_NODE_ESTORAGE;
    }
    rc = n->fsm->ops->applied_index(n->fsm, &restore.applied);
    if (rc != 0) {
        rk_storage_restore_free(&restore);
        rk_error("cannot read the applied index: %s", n->fsm->ops->strerror(n->fsm, rc));
        return RK_NODE_ESTORAGE;
    }
    rc = rk_snap_open_dir(n->cfg->data_dir, &restore.snapshot, &n->snapdir);
    n->snapdir_open = rc == 0;
    if (rc != 0) {
        rk_storage_restore_free(&restore);
        rk_error("cannot open the snapshot directory in %s: %s", n->cfg->data_dir, strerror(rc));
        return RK_NODE_ESTORAGE;
    }
    rc = fsm_catch_up(n, &restore);
    if (rc != RK_NODE_OK) {
        rk_storage_restore_free(&restore);
        return rc;
    }
    rk_info("restored term %" PRIu64 ", vote %" PRIu64 ", %zu log entries after index %" PRIu64
            ", applied %" PRIu64 ", snapshot at %" PRIu64,
            restore.term, restore.vote, restore.n_entries, restore.snapshot_index, restore.applied,
            restore.snapshot.index);
    rc = core_new(n, &restore);
    if (rc != RK_NODE_OK)
        return rc;
    rc = members__commit_moved(n);
    if (rc != RAFT_OK)
        return RK_NODE_ENOMEM;
    /* The only voter needs nobody's vote: no reason to wait out an election timeout. */
    if (members__alone(n))
        raft_campaign(n->raft);
    snapshots__start_counting(n);
    ready__view_update(n);
    return RK_NODE_OK;
}

/* The gateway's client, on the client addresses of the config file: this node's first, so
 * that it is tried first while no leader is known. */
static int start_gateway(struct rk_node *n)
{
    const struct rk_config *cfg = n->cfg;
    if (!cfg->http_gateway)
        return RK_NODE_OK;
    const char **urls = calloc(cfg->n_members + 1, sizeof *urls);
    if (!urls)
        return RK_NODE_ENOMEM;
    const struct rk_member *self = rk_config_member(cfg, cfg->node_id);
    size_t n_urls = 0;
    urls[n_urls++] = self->client_url ? self->client_url : cfg->listen_client;
    for (size_t i = 0; i < cfg->n_members; i++)
        if (cfg->members[i].client_url && &cfg->members[i] != self)
            urls[n_urls++] = cfg->members[i].client_url;
    bool tls = cfg->tls_ca_file != NULL;
    struct rk_gateway_options opts = {
        .n_endpoints = n_urls,
        .endpoints = urls,
        .tls_ca_file = tls ? cfg->tls_ca_file : NULL,
        .tls_cert_file = tls ? cfg->tls_cert_file : NULL,
        .tls_key_file = tls ? cfg->tls_key_file : NULL,
        .max_value_bytes = cfg->max_value_bytes,
    };
    int rc = rk_gateway_open(&opts, &n->gateway);
    free(urls);
    if (rc != 0) {
        rk_error("cannot start the HTTP gateway: %s", raftkv_status_str(rc));
        return rc == RAFTKV_ENOMEM ? RK_NODE_ENOMEM : RK_NODE_ECONFIG;
    }
    return RK_NODE_OK;
}

static int start_sockets(struct rk_node *n)
{
    const struct rk_config *cfg = n->cfg;
    struct rk_peer *peers;
    size_t n_peers;
    if (members__peers(n, raft_configuration_of(n->raft, NULL), &peers, &n_peers) != RAFT_OK)
        return RK_NODE_ENOMEM;
    struct rk_transport_options topts = {
        .cluster_id = cfg->cluster_id,
        .self = cfg->node_id,
        .listen_url = cfg->listen_peer,
        .n_peers = n_peers,
        .peers = peers,
        /* At least one entry always goes out, whatever max_append_bytes says. */
        .max_msg_bytes = (cfg->max_append_bytes + n->max_request_bytes > cfg->snapshot_chunk_bytes
                              ? cfg->max_append_bytes + n->max_request_bytes
                              : cfg->snapshot_chunk_bytes) +
                         (64u << 10),
        /* A peer that acknowledges nothing for two election timeouts is redialed: after a
         * silent drop heals, TCP's retransmission backoff would keep the link dead for
         * seconds, and the cluster without a quorum. */
        .silent_peer_ms = 2 * cfg->election_timeout_max_ms,
        .tls_listen = n->tls_peer_listen,
        .tls_dial = n->tls_peer_dial,
        .on_msg = loop__on_peer_msg,
        .arg = n,
        .advertise_url = rk_config_member(cfg, cfg->node_id)->peer_url,
    };
    int rc = rk_transport_start(&topts, &n->transport);
    free(peers);
    if (rc != 0) {
        rk_error("cannot listen for peers on %s (%d)", cfg->listen_peer, rc);
        return RK_NODE_ETRANSPORT;
    }
    struct rk_client_server_options copts = {
        .listen_url = cfg->listen_client,
        .max_msg_bytes = n->max_request_bytes + (4u << 10),
        .tls = n->tls_clients,
        .on_request = clients__on_request,
        .arg = n,
    };
    if (rk_client_server_start(&copts, &n->clients) != 0) {
        rk_error("cannot listen for clients on %s", cfg->listen_client);
        return RK_NODE_ETRANSPORT;
    }
    if (cfg->listen_pub && rk_publisher_start(cfg->listen_pub, n->tls_clients, &n->pub) != 0) {
        rk_error("cannot listen for subscribers on %s", cfg->listen_pub);
        return RK_NODE_ETRANSPORT;
    }
    /* Before the HTTP server: its threads read n->gateway. */
    rc = start_gateway(n);
    return rc == RK_NODE_OK ? http__start(n) : rc;
}

int rk_node_start(const struct rk_config *cfg, rk_node_fsm_open_fn open_fsm, void *arg,
                  struct rk_node **out)
{
    *out = NULL;
    struct rk_node *n = calloc(1, sizeof *n);
    if (!n)
        return RK_NODE_ENOMEM;
    n->cfg = cfg;
    n->install_fd = -1;
    metrics__init(&n->metrics);
    atomic_init(&n->stop, false);
    n->rng = node__seed(cfg->node_id);
    /* A CAS carries two values; protobuf framing adds little beyond that. */
    n->max_request_bytes = cfg->max_key_bytes + 2 * cfg->max_value_bytes + 1024;
    rk_log_set_node(cfg->node_id, 0, "follower");
    n->chunk_buf = malloc(cfg->snapshot_chunk_bytes);
    int rc = n->chunk_buf && rk_queue_init(&n->queue) == 0 ? RK_NODE_OK : RK_NODE_ENOMEM;
    n->queue_ready = rc == RK_NODE_OK;
    /* First: a bad file is a configuration error, to be told before anything is opened. */
    if (rc == RK_NODE_OK)
        rc = tls__start(n);
    if (rc == RK_NODE_OK)
        rc = open_db(n, open_fsm, arg);
    if (rc == RK_NODE_OK)
        rc = start_raft(n);
    if (rc == RK_NODE_OK)
        rc = start_sockets(n);
    n->next_tick = node__now();
    node__add_ms(&n->next_tick, RK_TICK_MS);
    if (rc != RK_NODE_OK) {
        rk_node_free(n);
        return rc;
    }
    *out = n;
    return RK_NODE_OK;
}

void rk_node_free(struct rk_node *n)
{
    if (!n)
        return;
    /* Sockets first: once they are closed no NNG thread can queue anything more. */
    if (n->clients)
        rk_client_server_stop(n->clients);
    if (n->transport)
        rk_transport_stop(n->transport);
    if (n->pub)
        rk_publisher_stop(n->pub);
    /* The gateway's calls are answered through the HTTP server: they end first, once no
     * HTTP thread can start one. */
    rk_http_server_quiesce(n->http);
    rk_gateway_close(n->gateway);
    /* Answers what it still holds: the loop no longer does. */
    rk_http_server_stop(n->http);
    tls__free(n);
    /* The producer holds a read of the state machine: it ends before the machine closes. */
    if (n->job_running) {
        atomic_store(&n->job.cancel, true);
        rk_snap_produce_join(&n->job);
    }
    if (n->queue_ready) {
        loop__answer_queued(n, NULL);
        rk_queue_destroy(&n->queue);
    }
    if (n->raft)
        raft_free(n->raft);
    /* Reads still waiting: a node freed without running down (the host simulator's crash). */
    for (size_t i = 0; n->fsm && i < n->n_reads; i++)
        n->fsm->ops->read_free(n->fsm, n->reads[i].query);
    if (n->fsm)
        n->fsm->ops->close(n->fsm);
    if (n->install_fd >= 0)
        close(n->install_fd);
    if (n->snapdir_open)
        rk_snap_close_dir(&n->snapdir);
    free(n->chunk_buf);
    if (n->storage)
        n->storage->ops->close(n->storage);
    if (n->db)
        rk_db_close(n->db);
    raft_configuration_free(&n->committed_conf);
    free(n->pending);
    free(n->reads);
    free(n);
}
