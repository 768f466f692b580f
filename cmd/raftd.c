/* raftd: one member of a raftkv cluster, with the key-value store as its state machine. */
#include "kv/kv.h"
#include "log/log.h"
#include "node/daemon.h"

static int open_kv(struct rk_db *db, const struct rk_config *cfg, void *arg,
                   struct raftkv_fsm **out)
{
    (void)arg;
    struct rk_kv_limits limits = {cfg->max_key_bytes, cfg->max_value_bytes, cfg->kv_persist_entries,
                                  cfg->kv_persist_bytes};
    if (rk_kv_fsm_open(db, &limits, out) != 0) {
        rk_error("cannot open the key-value data in %s: %s", cfg->data_dir, rk_db_errmsg(db));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    return rk_daemon_main(argc, argv, "raftd", open_kv, NULL);
}
