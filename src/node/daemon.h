/*
 * The main program of a node: parses `--config FILE` (and --help, --version), sets up
 * logging and signals, runs the node until SIGTERM or SIGINT. raftd runs it with the KV
 * store; a program with another state machine runs it with its own open_fsm.
 */
#ifndef RAFTKV_NODE_DAEMON_H
#define RAFTKV_NODE_DAEMON_H

#include "node/node.h"

/* What a program gives the node of its state machine. */
struct rk_daemon_fsm {
    rk_config_defaults_fn config_defaults; /* its settings' defaults; may be NULL */
    rk_node_fsm_open_fn open;
    void *arg; /* for open */
};

/* Returns the process exit status: 0 clean stop, 1 runtime failure, 2 usage or configuration
 * error, or a data dir refused. name is the program's name in messages. */
int rk_daemon_main(int argc, char **argv, const char *name, const struct rk_daemon_fsm *fsm);

#endif
