/*
 * raftd's configuration file: `key = value` lines, `#` starts a comment (at the start of a
 * line, or after whitespace). deploy/node.conf.example documents every key and default.
 */
#ifndef RAFTKV_NODE_CONFIG_H
#define RAFTKV_NODE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "log/log.h"
#include "raftkv/raft.h"

/* The node drives the core with a tick of this period; ms settings are converted to ticks. */
#define RK_TICK_MS 10

/* The node's snapshot policy. The other defaults are those of the modules that use the
 * settings: raft_config_defaults (in ticks), the KV store's limits, the LMDB map's size. */
#define RK_SNAPSHOT_DEFAULT_ENTRIES 10000
#define RK_SNAPSHOT_DEFAULT_BYTES ((size_t)64 << 20)
#define RK_SNAPSHOT_DEFAULT_TRAILING_ENTRIES 5000

/* Whether the client and pub ports require a certificate from tls_ca_file. */
enum rk_tls_client_auth {
    RK_TLS_CLIENT_AUTH_REQUIRED, /* refuse a client without one */
    RK_TLS_CLIENT_AUTH_OPTIONAL, /* verify one if presented */
    RK_TLS_CLIENT_AUTH_NONE,     /* encrypt only */
};

struct rk_member {
    raft_id id;
    char *peer_url;   /* peer.<id> */
    char *client_url; /* client.<id>; NULL when not configured */
};

struct rk_config {
    raft_id node_id;
    uint64_t cluster_id;
    char *data_dir;
    /* Start as a new member of a running cluster: the members are not the bootstrap
     * membership, only where to find the cluster; the node waits for the leader to send it
     * the log and campaigns only once the cluster makes it a voter. */
    bool join;
    size_t n_members; /* sorted by id; self included */
    struct rk_member *members;

    char *listen_peer;   /* default: peer.<node_id> */
    char *listen_client; /* default: client.<node_id> */
    char *pub_address;   /* NULL: no change stream */
    char *listen_pub;    /* default: pub_address */
    char *http_address;  /* http://host:port for /health, /status, /metrics; NULL: none */
    bool http_gateway;   /* http_address also serves the JSON gateway's /v1/ (gateway.h) */

    /* TLS: all three or none. With them every address is tls+tcp://, peers must present a
     * certificate from tls_ca_file, and clients as tls_client_auth says. */
    char *tls_cert_file;
    char *tls_key_file;
    char *tls_ca_file;
    enum rk_tls_client_auth tls_client_auth;

    unsigned election_timeout_min_ms;
    unsigned election_timeout_max_ms;
    unsigned heartbeat_interval_ms;
    size_t max_append_entries;
    size_t max_append_bytes;
    size_t max_inflight;
    /* The state machine's settings: their defaults are its own (rk_config_load's
     * fsm_defaults); a machine without them leaves them 0. */
    size_t max_key_bytes;
    size_t max_value_bytes;
    size_t kv_persist_entries;
    size_t kv_persist_bytes;
    uint64_t max_db_bytes;
    size_t snapshot_entries;
    size_t snapshot_bytes;
    size_t snapshot_trailing_entries;
    size_t snapshot_chunk_bytes;
    size_t snapshot_max_inflight_chunks;
    size_t promote_max_lag; /* entries a learner may lag and still be promoted */
    enum rk_log_level log_level;
    enum rk_log_format log_format;
};

/* Reads and checks the file at path, over the defaults: the node's own and the core's,
 * then the state machine's from fsm_defaults (may be NULL). On failure returns nonzero and
 * writes into err a message naming the file, the line and the key, e.g.
 *   node.conf:7: election_timeout_min_ms: expected a number of milliseconds, got "abc"
 * *out is then left empty (nothing to free). */
typedef void (*rk_config_defaults_fn)(struct rk_config *cfg);
int rk_config_load(const char *path, rk_config_defaults_fn fsm_defaults, struct rk_config *out,
                   char *err, size_t err_len);
void rk_config_free(struct rk_config *cfg);

/* The member with this id, or NULL. */
const struct rk_member *rk_config_member(const struct rk_config *cfg, raft_id id);

/* A duration in ms as a whole number of ticks (rounded up). */
unsigned rk_config_ticks(unsigned ms);

#endif
