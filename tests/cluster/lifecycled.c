/* lifecycled: a raftd node whose state machine is the lifecycle machine of
 * tests/lifecycle instead of the KV store, for real-process tests of the fsm API. */
#include "lifecycle.h"
#include "node/daemon.h"
#include "log/log.h"

static int open_lifecycle(struct rk_db *db, const struct rk_config *cfg, void *arg,
                          struct raftkv_fsm **out)
{
    (void)db; /* the machine keeps its state in memory; snapshots carry it over restarts */
    (void)cfg;
    (void)arg;
    if (lifecycle_fsm_new(out) != 0) {
        rk_error("cannot create the lifecycle machine: out of memory");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const struct rk_daemon_fsm lifecycle = {NULL, open_lifecycle, NULL};
    return rk_daemon_main(argc, argv, "lifecycled", &lifecycle);
}
