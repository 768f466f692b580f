/* raftd's state machine, the KV store, as the node's main program takes it: its settings'
 * defaults and how it opens. Shared with the tests of the configuration. */
#ifndef RAFTKV_CMD_RAFTD_KV_H
#define RAFTKV_CMD_RAFTD_KV_H

#include "node/daemon.h"

extern const struct rk_daemon_fsm raftd_kv;

#endif
