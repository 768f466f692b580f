/* raft-bench's command line: parsing, and the line that reproduces a run. */
#ifndef RAFTKV_BENCH_OPTIONS_H
#define RAFTKV_BENCH_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/cli_options.h"

enum op_kind { OP_PUT, OP_GET, OP_CAS, N_KINDS };

extern const char *const op_kind_names[N_KINDS];

/* What --leader-fault does to the leader at --kill-leader-at. */
enum leader_fault { FAULT_KILL, FAULT_TERM, FAULT_MOVE, N_FAULTS };

extern const char *const leader_fault_names[N_FAULTS];  /* "kill", "term", "move" */
extern const char *const leader_fault_labels[N_FAULTS]; /* "kill -9 leader", ... */

struct bench_options {
    const char *endpoints; /* --endpoints; NULL with --spawn */
    int spawn;             /* --spawn N: nodes to start, 0 = use endpoints */
    unsigned clients;
    unsigned conns;    /* 0 until resolved: min(clients, 16) */
    double duration_s; /* 0 with --ops */
    uint64_t ops;
    unsigned value_size;
    uint64_t keys;
    double zipf; /* 0 = uniform */
    unsigned mix[N_KINDS];
    bool prefill;
    bool verify;
    double fault_at_s; /* --kill-leader-at; < 0: no fault */
    enum leader_fault fault;
    const char *plot;
    unsigned workers; /* 0: issue from the completion callback */
    unsigned timeout_ms, request_timeout_ms;
    uint64_t seed;
    bool json;
    bool keep;
    const char *script; /* cluster.sh */
    const char *raftd;
    bool tls;                /* --tls: spawn a TLS cluster */
    struct rk_cli_tls files; /* --tls-ca, --tls-cert, --tls-key */
};

/* Fills defaults and parses argv. Returns 0 to run, 1 after --help or --version, 2 on a
 * usage error (said why on stderr). */
int options_parse(struct bench_options *o, int argc, char **argv);
/* The full command line of this run, every choice spelled out (defaults too), so that it
 * reproduces the run. prog is argv[0]. */
void options_command(const struct bench_options *o, const char *prog, char *out, size_t size);
/* "put=100,get=0,cas=0" */
void options_mix(const struct bench_options *o, char *out, size_t size);

#endif
