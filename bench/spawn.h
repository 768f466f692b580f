/*
 * A local cluster started for one benchmark run through deploy/cluster.sh, in a fresh
 * temporary directory, and destroyed after it.
 */
#ifndef RAFTKV_BENCH_SPAWN_H
#define RAFTKV_BENCH_SPAWN_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct spawned {
    char dir[PATH_MAX];
    const char *script; /* cluster.sh */
    const char *raftd;  /* NULL: cluster.sh finds it */
    int nodes;
    bool tls;             /* cluster.sh -t: TLS, with certificates in DIR/tls */
    char endpoints[1024]; /* comma-separated */
    /* With tls: the files a client needs. */
    char tls_ca[PATH_MAX + 16], tls_cert[PATH_MAX + 16], tls_key[PATH_MAX + 16];
};

/* Creates the directory and starts n nodes; on failure prints why (with cluster.sh's
 * output) and leaves nothing running. Returns 0 or -1. */
int spawn_start(struct spawned *s, const char *script, const char *raftd, int nodes, bool tls);
/* Sends sig to node id and returns at once (no wait for its exit); *pid gets its pid.
 * Returns 0 or -1. */
int spawn_signal(struct spawned *s, uint64_t id, int sig, pid_t *pid);
/* Stops every node; deletes the directory unless keep (then prints where it is). */
void spawn_destroy(struct spawned *s, bool keep);

#endif
