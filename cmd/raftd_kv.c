#include "raftd_kv.h"

#include "kv/kv.h"
#include "log/log.h"

static void kv_config_defaults(struct rk_config *cfg)
{
    struct rk_kv_limits limits;
    rk_kv_limits_defaults(&limits);
    cfg->max_key_bytes = limits.max_key_bytes;
    cfg->max_value_bytes = limits.max_value_bytes;
    cfg->kv_persist_entries = limits.persist_entries;
    cfg->kv_persist_bytes = limits.persist_bytes;
}

static int open_kv(struct rk_db *db, const struct rk_config *cfg, void *arg,
                   struct raftkv_fsm **out)
{
    (void)arg;
    struct rk_kv_limits limits = {
        .max_key_bytes = cfg->max_key_bytes,
        .max_value_bytes = cfg->max_value_bytes,
        .persist_entries = cfg->kv_persist_entries,
        .persist_bytes = cfg->kv_persist_bytes,
    };
    if (rk_kv_fsm_open(db, &limits, out) != 0) {
        rk_error("cannot open the key-value data in %s: %s", cfg->data_dir, rk_db_errmsg(db));
        return -1;
    }
    return 0;
}

const struct rk_daemon_fsm raftd_kv = {kv_config_defaults, open_kv, NULL};
